/*
 * The worker's metrics (lib/worker/metrics.h). Names, units and
 * attributes of the model call's metrics follow the OpenTelemetry GenAI
 * semantic conventions (gen_ai.client.token.usage and
 * gen_ai.client.operation.duration, with their advised buckets); durin's
 * own are under durin.*. Each observation is a lock and a few adds on a
 * series found by its label values; none allocates once its label set
 * has been seen.
 */
#include <stdlib.h>

#include "worker/metrics.h"

struct durin__wmetrics {
  struct durin_metric *tokens, *duration, *cost;
  struct durin_metric *steps, *commit, *tool, *sandbox, *leases, *recoveries;
};

static const char *const genai_labels[] = {
  "gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model",
  "gen_ai.response.model", "gen_ai.token.type",    NULL,
};
static const char *const duration_labels[] = {
  "gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model",
  "gen_ai.response.model", "error.type",           NULL,
};
static const char *const cost_labels[] = { "tenant", "agent", "model", NULL };
static const char *const tool_labels[] = { "tool", "sandboxed", "error.type",
                                           NULL };
static const char *const recovery_labels[] = { "kind", NULL };

/* Step commits: from a fraction of a millisecond (group commit on a fast
 * disk) to seconds (a busy PostgreSQL). */
static const double commit_bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                        0.025,  0.05,  0.1,    0.25,  0.5,
                                        1,      2.5,   5,      10 };
/* A sandbox's start: a few milliseconds, more with an overlay workspace
 * or the egress proxy, far more on a starved host. */
static const double sandbox_bounds[] = { 0.001, 0.0025, 0.005, 0.0075, 0.01,
                                         0.015, 0.025,  0.05,  0.1,    0.25,
                                         0.5,   1,      2.5,   5 };
/* Tool calls: a file read to a test suite. */
static const double tool_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                      0.5,   1,    2.5,   5,    10,  30,
                                      60,    120,  300,   600 };

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

struct durin__wmetrics *durin__wmetrics_new(struct durin_metrics *m)
{
  struct durin__wmetrics *wm;

  if (!m || !(wm = calloc(1, sizeof(*wm))))
    return NULL;
  wm->tokens = durin_metrics_add(
      m, DURIN_METRIC_HISTOGRAM, "gen_ai.client.token.usage", "{token}",
      "Number of input and output tokens used.", genai_labels,
      durin_metric_token_bounds, N(durin_metric_token_bounds));
  wm->duration = durin_metrics_add(
      m, DURIN_METRIC_HISTOGRAM, "gen_ai.client.operation.duration", "s",
      "GenAI operation duration.", duration_labels,
      durin_metric_duration_bounds, N(durin_metric_duration_bounds));
  wm->cost =
      durin_metrics_add(m, DURIN_METRIC_COUNTER, "durin.model.cost", "USD",
                        "Dollars spent on model calls, at the run's prices.",
                        cost_labels, NULL, 0);
  wm->steps = durin_metrics_add(m, DURIN_METRIC_COUNTER,
                                "durin.steps.committed", "{step}",
                                "Steps committed to the store.", NULL, NULL, 0);
  wm->commit = durin_metrics_add(
      m, DURIN_METRIC_HISTOGRAM, "durin.step.commit.duration", "s",
      "Time from a step's commit being queued to its being durable.", NULL,
      commit_bounds, N(commit_bounds));
  wm->tool = durin_metrics_add(
      m, DURIN_METRIC_HISTOGRAM, "durin.tool.call.duration", "s",
      "Tool call duration, process start (in the sandbox if sandboxed) "
      "included.",
      tool_labels, tool_bounds, N(tool_bounds));
  wm->sandbox = durin_metrics_add(
      m, DURIN_METRIC_HISTOGRAM, "durin.sandbox.start.duration", "s",
      "Time from the start of setting a sandbox up to the exec of its "
      "command (tool calls and acceptance checks).",
      NULL, sandbox_bounds, N(sandbox_bounds));
  wm->leases =
      durin_metrics_add(m, DURIN_METRIC_GAUGE, "durin.leases.held", "{lease}",
                        "Runs this process holds a lease on.", NULL, NULL, 0);
  wm->recoveries = durin_metrics_add(
      m, DURIN_METRIC_COUNTER, "durin.recoveries", "{run}",
      "Runs this process's watchdog recovered: requeued (lease expired), "
      "failed (recoveries used up), stalled.",
      recovery_labels, NULL, 0);
  /* Shown from the first scrape, not from the first step. */
  durin_metric_add(wm->steps, NULL, 0);
  durin_metric_set(wm->leases, NULL, 0);
  return wm;
}

void durin__wmetrics_free(struct durin__wmetrics *wm)
{
  free(wm);
}

/* A low-cardinality error.type for a failed call. */
static const char *model_error_type(int rc)
{
  switch (rc) {
  case DURIN_ECANCELED:
    return "cancelled";
  case DURIN_EMODEL:
    return "model_error";
  default:
    return "_OTHER";
  }
}

void durin__wmetrics_model(struct durin__wmetrics *wm,
                           const struct durin_model_cfg *cfg,
                           const struct durin_model_response *resp, int rc,
                           int64_t latency_ms, const char *tenant,
                           const char *agent)
{
  const char *resp_model =
      resp && resp->model && *resp->model ? resp->model : NULL;
  const char *v[5] = { "chat", cfg->provider, cfg->name, resp_model, NULL };

  if (!wm)
    return;
  if (rc || !resp)
    v[4] = model_error_type(rc);
  durin_metric_observe(wm->duration, v,
                       (double)(latency_ms > 0 ? latency_ms : 0) / 1000.0);
  if (rc || !resp)
    return;
  v[4] = "input";
  durin_metric_observe(wm->tokens, v, (double)resp->input_tokens);
  v[4] = "output";
  durin_metric_observe(wm->tokens, v, (double)resp->output_tokens);
  {
    const char *c[3] = { tenant && *tenant ? tenant : "default", agent,
                         cfg->name };

    durin_metric_add(wm->cost, c, durin_model_response_cost(cfg, resp));
  }
}

void durin__wmetrics_commit(struct durin__wmetrics *wm, double seconds)
{
  if (!wm)
    return;
  durin_metric_add(wm->steps, NULL, 1);
  durin_metric_observe(wm->commit, NULL, seconds);
}

void durin__wmetrics_tool(struct durin__wmetrics *wm, const char *tool,
                          int sandboxed, const struct durin_tool_result *res,
                          double seconds)
{
  const char *v[3] = { tool, sandboxed ? "true" : "false", NULL };

  if (!wm)
    return;
  if (res->timed_out)
    v[2] = "timeout";
  else if (res->stopped)
    v[2] = "stopped";
  else if (!res->ok)
    v[2] = "tool_error";
  durin_metric_observe(wm->tool, v, seconds);
  durin__wmetrics_sandbox(wm, res);
}

void durin__wmetrics_sandbox(struct durin__wmetrics *wm,
                             const struct durin_tool_result *res)
{
  if (wm && res->sandbox_start_us > 0)
    durin_metric_observe(wm->sandbox, NULL,
                         (double)res->sandbox_start_us / 1e6);
}

void durin__wmetrics_leases(struct durin__wmetrics *wm, int held)
{
  if (wm)
    durin_metric_set(wm->leases, NULL, held);
}

void durin__wmetrics_watchdog(struct durin__wmetrics *wm,
                              const struct durin_watchdog_report *rep)
{
  const char *v[1];

  if (!wm)
    return;
  v[0] = "requeued";
  if (rep->requeued)
    durin_metric_add(wm->recoveries, v, rep->requeued);
  v[0] = "failed";
  if (rep->failed)
    durin_metric_add(wm->recoveries, v, rep->failed);
  v[0] = "stalled";
  if (rep->stalled)
    durin_metric_add(wm->recoveries, v, rep->stalled);
}
