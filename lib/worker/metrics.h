/*
 * What the worker observes for /metrics (lib/worker/metrics.c): the
 * GenAI conventions' client metrics at each model call, and durin's own
 * at each step commit, tool call, sandbox start, lease change and
 * watchdog pass. Every
 * function is a no-op on a NULL struct (a worker without a registry) and
 * is called on the loop's thread; the registry's mutex makes the render
 * on an HTTP thread safe.
 */
#ifndef DURIN_WORKER_METRICS_H
#define DURIN_WORKER_METRICS_H

#include <stdint.h>

#include "durin/metrics.h"
#include "durin/model.h"
#include "durin/store.h"
#include "durin/tools.h"

struct durin__wmetrics;

/* Registers the worker's families in m; NULL if m is NULL. */
struct durin__wmetrics *durin__wmetrics_new(struct durin_metrics *m);
void durin__wmetrics_free(struct durin__wmetrics *wm);

/* A model call ended: resp on success (rc 0), else rc and no resp. The
 * run's tenant and agent label its dollars. */
void durin__wmetrics_model(struct durin__wmetrics *wm,
                           const struct durin_model_cfg *cfg,
                           const struct durin_model_response *resp, int rc,
                           int64_t latency_ms, const char *tenant,
                           const char *agent);
/* A step's commit is durable, seconds after it was queued. */
void durin__wmetrics_commit(struct durin__wmetrics *wm, double seconds);
/* A tool call ended, seconds after it was started. */
void durin__wmetrics_tool(struct durin__wmetrics *wm, const char *tool,
                          int sandboxed, const struct durin_tool_result *res,
                          double seconds);
/* A command's sandbox started (res->sandbox_start_us; nothing when it is
 * 0). durin__wmetrics_tool observes it for a tool call; a check's is
 * observed on its own. */
void durin__wmetrics_sandbox(struct durin__wmetrics *wm,
                             const struct durin_tool_result *res);
/* How many runs the worker holds now. */
void durin__wmetrics_leases(struct durin__wmetrics *wm, int held);
/* What a watchdog pass recovered. */
void durin__wmetrics_watchdog(struct durin__wmetrics *wm,
                              const struct durin_watchdog_report *rep);

#endif
