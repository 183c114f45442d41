/*
 * The worker: many runs on one libuv event loop (DESIGN 5).
 *
 * It claims ready runs from the queue, restores each from the store and
 * performs its harness's actions asynchronously: model calls through
 * libcurl's multi-socket interface, tool processes through pidfds and
 * pipes, file tools on libuv's thread pool, and every store write on one
 * store thread, where all the writes that arrive in one loop turn share a
 * transaction (group commit; each run behind its own savepoint and fence).
 * It heartbeats all its leases in one write, polls for cancel and pause
 * four times a second, and (optionally) runs the watchdog.
 *
 * The store given to a worker is used only from its store thread while
 * durin_worker_run() runs (limited to one run id: from the loop's thread,
 * the caller's).
 *
 * Limited to one run id (opts.run_id), the same engine drives that run
 * alone, the way curl_easy_perform() drives libcurl's multi engine: this
 * is what `durin run`, `durin resume` and `durin cancel` use. There is no
 * other driver.
 */
#ifndef DURIN_WORKER_H
#define DURIN_WORKER_H

#include <stdint.h>

#include "durin/error.h"
#include "durin/harness.h"
#include "durin/policy.h"
#include "durin/store.h"
#include "durin/tools.h"

struct durin_worker;
struct durin_metrics;

/* A provider's rate limit in this worker. */
struct durin_worker_limit {
  const char *provider; /* "openai", "anthropic" */
  double rpm, tpm;      /* requests, tokens per minute; 0: unlimited */
};

struct durin_worker_opts {
  const char *owner;    /* unique per process: "host:pid:nonce" */
  int max_runs;         /* runs in flight at once (waiting ones excluded) */
  int64_t lease_ttl_ms; /* heartbeats every third of it */
  int64_t poll_ms;      /* how often to look for work when there is room */
  int watchdog;         /* also recover expired leases and stalls */
  int64_t stall_ms;     /* no progress for this long: stalled (0: off) */
  int stall_escalate;   /* stalled: needs_human instead of a restart */
  /* Tool calls and checks run in it; NULL: on the host (--sandbox none). */
  const struct durin_sandbox *sandbox;
  /* The server's policy, on top of each run's own (may be NULL). */
  const struct durin_policy *policy;
  const struct durin_worker_limit *limits;
  int nlimits;
  /* MCP servers of the worker's own (their spec's mcp entries; may be
   * NULL): started with it, shared by the runs whose specs name them
   * with "scope": "worker" (docs/internals/mcp.md). Must outlive it. */
  const struct durin_spec *mcp_servers;
  /* In the workers' roll call: "worker" (default) or "serve". */
  const char *kind;
  /* Where it counts model calls, tokens, dollars, commits and tool calls
   * (include/durin/metrics.h); NULL: nowhere. Owned by the caller, who
   * renders it from any thread; it must outlive the worker. */
  struct durin_metrics *metrics;
  /* Log lines (claims, ends, lost leases, recoveries); may be NULL. */
  void (*on_log)(void *arg, const char *line);

  /*
   * Drive only this run (NULL: claim from the queue). It is taken with
   * durin_store_run_claim() whoever holds it (the caller checks that no
   * live process does), and the loop ends once the run reaches a
   * stopping state, waits for approval, is let go (durin_worker_stop) or
   * is lost; durin_worker_result() then says which. max_runs and poll_ms
   * do not apply; the watchdog runs only if asked.
   */
  const char *run_id;
  /* With run_id: an indeterminate unsafe call is asked about (-1),
   * skipped (0) or run again (1); durin_harness_resolve(). */
  int resolve;

  /* Hooks, each called on the loop thread; any may be NULL. */
  /* Before each action of a run starts (a progress display). */
  void (*on_action)(void *arg, const struct durin_action *act,
                    const struct durin_usage *usage, int64_t step);
  /* Each event of a step, once its commit is durable. */
  void (*on_event)(void *arg, const struct durin_event *ev);
  /* Every harness state transition (tracing). */
  void (*on_transition)(void *arg, enum durin_step_state from,
                        enum durin_step_state to);
  /* Notices about a run, without its id: model retries, store retries. */
  void (*on_notice)(void *arg, const char *msg);
  void *arg;
};

/* How the run of a worker limited to one run id came out. */
struct durin_worker_result {
  enum durin_run_status status; /* as it stopped here */
  char reason[512];
  int stopped; /* let go (stop, pause) before the run ended */
};

struct durin_worker_stats {
  int64_t claimed;  /* runs taken from the queue */
  int64_t finished; /* runs that reached a stopping state here */
  int64_t dropped;  /* runs lost to another holder or let go */
  int64_t steps;    /* step commits */
  int64_t batches;  /* store transactions for writes */
  int64_t writes;   /* fenced writes in them */
  int64_t model_calls;
  int live;    /* runs held and doing something */
  int waiting; /* runs held in backoff or rate-limit waits */
};

int durin_worker_new(struct durin_store *s, const struct durin_worker_opts *o,
                     struct durin_worker **out, struct durin_err *err);
/*
 * Runs the loop until the worker is stopped and has let go of every run.
 * Returns 0, or an error if the loop could not start.
 */
int durin_worker_run(struct durin_worker *w);
/*
 * Asks the worker to stop (safe from any thread or a signal handler):
 * no more claims; runs let go at their next step boundary (model calls
 * are dropped, tools finish) and their leases are released. hard: stop at
 * once, leaving the leases to expire.
 */
void durin_worker_stop(struct durin_worker *w, int hard);
/* Looks for work now rather than at the next poll (safe from any
 * thread): a run was queued or woken in this process. */
void durin_worker_wake(struct durin_worker *w);
void durin_worker_stats(const struct durin_worker *w,
                        struct durin_worker_stats *out);
/*
 * After durin_worker_run() of a worker limited to one run id: fills res
 * and returns 0, or returns the error the run was lost to, with err's
 * message: DURIN_EFENCED if another process took it over, a store error
 * if the store failed (nothing committed is lost either way).
 */
int durin_worker_result(const struct durin_worker *w,
                        struct durin_worker_result *res, struct durin_err *err);
void durin_worker_free(struct durin_worker *w);

/*
 * Runs one shell command to its end through the worker's process runner,
 * on an event loop of its own (in box's sandbox, if it has one: see
 * durin_proc_spawn), with a timeout that kills its process group and an
 * output cap. For callers without a loop: the CLI's sandbox self-test.
 * Fails only if the command cannot be started; blocks until it ends.
 */
int durin_worker_run_command(const struct durin_proc_box *box, const char *dir,
                             const char *command, const char *const *extra_env,
                             int64_t timeout_ms, size_t output_cap,
                             struct durin_tool_result *res);

#endif
