/*
 * A run's MCP servers on the worker's loop (lib/worker/mcp.c): started as
 * the run is restored, their tools handed to the harness, one call at a
 * time, restarted with backoff when they die. Loop thread only.
 */
#ifndef DURIN_WORKER_MCP_H
#define DURIN_WORKER_MCP_H

#include <jansson.h>
#include <uv.h>

#include "durin/spec.h"
#include "durin/tools.h"
#include "worker/worker-int.h"

struct wmcp;
struct wmcp_pool;

struct wmcp_ops {
  /* Every server listed its tools (rc 0), or one could not start (why
   * says which and why). Runs once. */
  void (*ready)(void *arg, int rc, const char *why);
  /* Something an operator should read: a server died, restarted, was
   * cut off. */
  void (*notice)(void *arg, const char *msg);
  /* notifications/progress for the call in flight. */
  void (*progress)(void *arg, const char *server, json_t *params);
};

/*
 * Starts spec's servers: stdio ones in box's sandbox (box->sandbox NULL:
 * plain children) with the spec's workspace, HTTP ones with headers[i]
 * ("Name: value", nheaders[i] of them; secrets opened by the caller, kept
 * by the caller until wmcp_free). Those with "scope": "worker" are pool's
 * (may be NULL: then they are missing, and ready says so). NULL when out
 * of memory.
 */
struct wmcp *wmcp_start(uv_loop_t *loop, struct uvh *http,
                        const struct durin_spec *spec,
                        const struct durin_proc_box *box,
                        char *const *const *headers, const int *nheaders,
                        struct wmcp_pool *pool, const struct wmcp_ops *ops,
                        void *arg);
/* Stops everything; no callback runs after it. NULL is fine. */
void wmcp_free(struct wmcp *set);

/*
 * The worker's shared servers (durin worker --mcp-servers): servers's
 * mcp entries (borrowed until wmcp_pool_free), started now as plain
 * children in the current directory, kept up (restarted like a run's),
 * and used by every run whose spec names one with "scope": "worker". log
 * gets what an operator should read. Free it after every set that uses
 * it.
 */
struct wmcp_pool *wmcp_pool_start(uv_loop_t *loop, struct uvh *http,
                                  const struct durin_spec *servers,
                                  void (*log)(void *arg, const char *line),
                                  void *arg);
void wmcp_pool_free(struct wmcp_pool *pool);

/* Once ready: the tools for durin_harness_add_tools (valid until
 * wmcp_free), and what the mcp_tools event records. */
const struct durin_tool_def *const *wmcp_tools(struct wmcp *set, int *n);
json_t *wmcp_record(struct wmcp *set);

/* Calls def (an MCP tool) with args; cb runs once with the result (the
 * callee's to keep), possibly before this returns. */
typedef void (*wmcp_call_cb)(void *arg, struct durin_tool_result *res);
int wmcp_call(struct wmcp *set, const struct durin_tool_def *def, json_t *args,
              const char *idem_key, int64_t timeout_ms, size_t cap,
              wmcp_call_cb cb, void *arg);
/* Stops the call in flight: notifications/cancelled to its server, and
 * its callback runs with res->stopped. */
void wmcp_call_stop(struct wmcp *set, const char *reason);
int wmcp_busy(const struct wmcp *set);

#endif
