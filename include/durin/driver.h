/*
 * The single-run driver: performs the harness's actions against a store, a
 * model provider and the tools, in this thread, until the run stops. This
 * is what `durin run` and `durin resume` use; the worker (many runs on one
 * event loop) performs the same actions asynchronously.
 */
#ifndef DURIN_DRIVER_H
#define DURIN_DRIVER_H

#include <signal.h>

#include "durin/harness.h"
#include "durin/store.h"

struct durin_driver_opts {
  const char *owner;    /* lease owner, e.g. "host:pid" */
  int64_t lease_ttl_ms; /* lease length; renewed by every write */
  int resolve;          /* indeterminate unsafe call: -1 ask, 0 skip, 1 retry */
  /* Tool calls and checks run in it; NULL runs them on the host (the
   * operator's explicit --sandbox none). */
  const struct durin_sandbox *sandbox;
  /* The server's policy, applied on top of the spec's (may be NULL). */
  const struct durin_policy *policy;
  /* Called before each action is performed (progress display). */
  void (*on_action)(void *arg, const struct durin_action *act,
                    const struct durin_usage *usage, int64_t step);
  /* Called for each event once it is durable. */
  void (*on_event)(void *arg, const struct durin_event *ev);
  /* Called on every harness state transition (tracing); may be NULL. */
  void (*on_transition)(void *arg, enum durin_step_state from,
                        enum durin_step_state to);
  /* Called with notices (retries, lease renewals); may be NULL. */
  void (*on_notice)(void *arg, const char *msg);
  void *arg;
  /* Set asynchronously (signal handler) to stop at the next boundary. */
  volatile sig_atomic_t *stop;
};

struct durin_drive_result {
  enum durin_run_status status;
  char reason[512];
  int stopped; /* the driver let go (stop flag) before the run ended */
};

/*
 * Claims run_id and drives it until it ends, needs a human, or *stop is
 * set. Fails with DURIN_EFENCED if another process took the run over, or a
 * store error; nothing committed is lost in either case.
 */
int durin_drive(struct durin_store *s, const char *run_id,
                const struct durin_driver_opts *o,
                struct durin_drive_result *res, struct durin_err *err);

/*
 * Loads run_id's committed state into a new harness h: its checkpoint (if
 * it has one), the context window's events, and an unfinished step. attempt
 * is the lease attempt, for the log.
 */
int durin_run_load(struct durin_store *s, const char *run_id,
                   struct durin_harness *h, int64_t attempt,
                   struct durin_err *err);

/*
 * The writes of a step's commit action (DESIGN 3.1), inside txn after its
 * fence: events, checkpoint, a waiting step's response and approval
 * request, the run row, the end of the pending step. Shared by the driver
 * and the worker so both commit the same way.
 */
int durin_commit_write(struct durin_txn *txn, const char *run_id,
                       struct durin_action *act, struct durin_err *err);

/* A run's policy layers: its spec's, then the server's. */
struct durin_run_policy {
  struct durin_policy *spec;
  const struct durin_policy *server;
};

int durin_run_policy_init(struct durin_run_policy *p,
                          const struct durin_spec *spec,
                          const struct durin_policy *server,
                          struct durin_err *err);
/* Decides a DURIN_ACT_POLICY action (reads the workspace for links). */
void durin_run_policy_decide(const struct durin_run_policy *p,
                             const struct durin_action *act,
                             struct durin_policy_decision *d);
void durin_run_policy_clear(struct durin_run_policy *p);

#endif
