/*
 * The durable store: runs (the job record), the append-only event log,
 * checkpoints, the side-effect ledger and the pending model response of an
 * unfinished step.
 *
 * One implementation (lib/store/sql-*.c) serves every store, written over
 * the database seam lib/store/db.h; the URL's scheme ("sqlite:PATH",
 * "postgres://...") only picks its driver, db-sqlite.c or db-pg.c, like
 * sqlite's VFS under one SQL engine. Nothing in this interface is specific
 * to one database.
 *
 * Fencing (DESIGN 3.2): every write for a run happens inside a transaction
 * that first calls durin_txn_fence() with the lease epoch the writer holds.
 * The fence is a conditional update of the run row; if another process has
 * claimed the run since, it fails with DURIN_EFENCED and the writer must
 * roll back and drop the run. One transaction may fence several runs (group
 * commit).
 *
 * Threads: a struct durin_store is used by one thread at a time.
 */
#ifndef DURIN_STORE_H
#define DURIN_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "durin/error.h"

struct durin_store;
struct durin_txn;
struct durin_trigger_delivery;
typedef struct json_t json_t;

/* The run's durable status. Stored as its text name. */
enum durin_run_status {
  DURIN_RUN_QUEUED = 0,
  DURIN_RUN_RUNNING,
  DURIN_RUN_WAITING_APPROVAL,
  DURIN_RUN_SLEEPING,
  DURIN_RUN_EVALUATING,
  DURIN_RUN_PAUSED,
  DURIN_RUN_NEEDS_HUMAN,
  DURIN_RUN_SUCCEEDED,
  DURIN_RUN_FAILED,
  DURIN_RUN_CANCELLED,
  DURIN_RUN_BUDGET_EXCEEDED,
  DURIN_RUN__COUNT
};

const char *durin_run_status_name(enum durin_run_status s);
/* Returns 0 and sets *out, or DURIN_EINVAL for an unknown name. */
int durin_run_status_parse(const char *name, enum durin_run_status *out);
/* True for succeeded, failed, cancelled, budget_exceeded. */
int durin_run_status_terminal(enum durin_run_status s);

/* Usage totals of a run; kept in the checkpoint and mirrored in the row. */
struct durin_usage {
  int64_t steps;
  int64_t input_tokens;
  int64_t output_tokens;
  int64_t model_calls;
  int64_t tool_calls;
  int64_t retries;
  double cost_usd;
};

/* What submit writes: the pinned, fully resolved run. */
struct durin_run_new {
  const char *id;
  const char *name;
  const char *spec_json; /* resolved spec, model pinned */
  const char *model;     /* "provider:model", for listings */
  const char *workspace; /* absolute path of the run's workspace */
  int64_t now_ms;
  /* Queue placement (see durin_store_queue_claim). */
  const char *tenant;          /* NULL: "default" */
  int64_t priority;            /* higher first, within a tenant */
  const char *dedupe_key;      /* one active run per (tenant, key) */
  const char *concurrency_key; /* e.g. a repository; see queue limits */
  int64_t not_before_ms;       /* delayed start; 0: at once */
  int64_t max_recoveries;      /* lost leases before the run fails; 0: 10 */
  /* Created already held by this owner (a foreground `durin run`), so no
   * worker claims it in between; NULL: queued for any worker. */
  const char *owner;
  int64_t lease_until_ms;
  /* From the control plane (all may be NULL / 0). */
  const char *agent;          /* the registered agent it was made from */
  int64_t agent_version;      /* ... and the version it pinned */
  const char *labels_json;    /* {"key": "value", ...} */
  const char *created_by;     /* the API token's name */
  const char *idem_key;       /* Idempotency-Key: one run per (tenant, key) */
  const char *idem_hash;      /* the request's hash, to tell a reuse */
  const char *webhooks_json;  /* [{"url", "events": [...]}]: the run's own */
  const char *webhook_secret; /* signs the run's own webhooks */
  /* The inbound trigger's delivery that made it (NULL: none), recorded
   * with the run in its transaction; DURIN_EEXIST if that delivery
   * already made a run (durin_store_delivery_run finds it). */
  const struct durin_trigger_delivery *delivery;
};

/* A run row, as read. Strings are owned by the struct; see _clear. */
struct durin_run_info {
  char id[32];
  char *name;
  char *spec_json;
  char *model;
  char *workspace;
  char *reason;
  char *lease_owner;
  enum durin_run_status status;
  int64_t created_ms, started_ms, updated_ms, finished_ms;
  uint64_t lease_epoch;
  int64_t lease_expires_ms;
  int64_t attempt;
  int64_t last_seq;
  int cancel_requested;
  int pause_requested;
  struct durin_usage usage;
  char *tenant;
  char *dedupe_key;
  char *concurrency_key;
  int64_t priority;
  int64_t not_before_ms;
  int64_t recoveries; /* leases the watchdog found expired */
  int64_t max_recoveries;
  /* An operator's resolution of an indeterminate call, applied by the
   * next holder (durin_harness_resolve): -1 none, 0 skip, 1 run again. */
  int resolve;
};

void durin_run_info_clear(struct durin_run_info *ri);

/* A partial update of a run row. NULL / negative fields are unchanged. */
struct durin_run_update {
  const enum durin_run_status *status;
  const char *reason; /* NULL: unchanged; "" clears */
  const struct durin_usage *usage;
  int64_t started_ms;  /* < 0: unchanged */
  int64_t finished_ms; /* < 0: unchanged */
  int release_lease;   /* clear owner and expiry */
  int64_t now_ms;
};

/* One event of the append-only log. */
struct durin_event {
  int64_t seq; /* assigned by the store on append */
  int64_t ts_ms;
  int64_t step;
  const char *type;
  const char *data; /* JSON object text */
};

/* One side-effect ledger row (DESIGN 3.3). */
struct durin_ledger_entry {
  char run_id[32];
  int64_t step;
  int call_idx;
  const char *call_id;
  const char *tool;
  const char *effect;    /* "pure", "idempotent" or "unsafe" */
  const char *args_hash; /* sha256 hex of the canonical arguments */
  const char *idem_key;
  const char *args;
  int contained;       /* it runs in a layer of its own (so a restorer may
                          run it again when its outcome is unknown) */
  int done;            /* outcome recorded */
  const char *outcome; /* JSON result, when done */
  int64_t intent_ms, outcome_ms;
};

/* An approval's state (DESIGN 4): pending until a person decides or it
 * expires; every other state is final. */
enum durin_approval_state {
  DURIN_APPROVAL_PENDING = 0,
  DURIN_APPROVAL_APPROVED,
  DURIN_APPROVAL_REJECTED,
  DURIN_APPROVAL_EDITED, /* approved with arguments a person changed */
  DURIN_APPROVAL_EXPIRED,
  DURIN_APPROVAL_CANCELLED, /* the run ended before a decision */
  DURIN_APPROVAL__COUNT
};

const char *durin_approval_state_name(enum durin_approval_state s);
int durin_approval_state_parse(const char *name,
                               enum durin_approval_state *out);

/*
 * One approval: a tool call a policy said to ask about. call_args is what
 * the model asked for and call_hash its sha256 (canonical JSON); args and
 * args_hash are what may run: the same unless a person edited them. At
 * execution the call must hash to call_hash and args to args_hash.
 */
struct durin_approval {
  char id[32];
  char run_id[32];
  int64_t step;
  int call_idx;
  const char *call_id;
  const char *tool;
  const char *call_args;
  const char *call_hash;
  const char *args;
  const char *args_hash;
  const char *reason; /* what the agent said with the call */
  const char *rule;   /* the policy rule that asked */
  enum durin_approval_state state;
  const char *on_expiry; /* "reject" or "needs_human" */
  const char *decided_by;
  const char *comment; /* the reviewer's comment or rejection reason */
  int64_t requested_ms, expires_ms, decided_ms;
};

/* A person's decision (durin_store_approval_decide). */
struct durin_approval_decision {
  const char *id;
  enum durin_approval_state state; /* approved, rejected or edited */
  const char *args;                /* edited: the new arguments (validated) */
  const char *args_hash;           /* edited: their sha256 */
  const char *who;
  const char *comment;
  int64_t now_ms;
};

typedef int (*durin_approval_cb)(const struct durin_approval *a, void *arg);

/* Filters for listings; zero values match everything. */
struct durin_run_filter {
  int status_mask; /* bit (1 << status); 0 = all */
  int limit;
};

/* A run a claim took. */
struct durin_claim {
  char id[32];
  uint64_t epoch;
  int64_t attempt;
  int64_t last_seq; /* the run's log, as the claim found it */
};

/* A run a worker holds, as its heartbeat or signal poll sees it. */
struct durin_held {
  char id[32];
  uint64_t epoch;
  int cancel_requested;
  int pause_requested;
};

struct durin_watchdog_opts {
  int64_t now_ms;
  int64_t stall_ms;   /* no progress event for this long: stalled; 0: off */
  int stall_escalate; /* stalled runs go to needs_human (else restarted) */
};

struct durin_watchdog_report {
  int requeued; /* lease expired: back in the queue */
  int failed;   /* lease expired once too often: failed */
  int stalled;  /* no progress: restarted or escalated */
  int expired;  /* approvals past their deadline: expired, run woken */
};

typedef int (*durin_run_cb)(const struct durin_run_info *ri, void *arg);
typedef int (*durin_held_cb)(const struct durin_held *h, void *arg);
typedef int (*durin_limit_cb)(const char *scope, int64_t max, void *arg);
typedef int (*durin_event_cb)(const struct durin_event *ev, void *arg);
typedef int (*durin_ledger_cb)(const struct durin_ledger_entry *e, void *arg);

/*
 * The control plane's reads and writes (lib/store/sql-api.c). A page of
 * runs is keyed by (created_ms, id), newest first: a cursor is the last
 * row's key, so runs created meanwhile never shift a page.
 */
struct durin_run_query {
  int status_mask; /* bit (1 << status); 0: all */
  const char *tenant, *agent;
  const char *label_key, *label_value;         /* a label that must match */
  int64_t created_after_ms, created_before_ms; /* 0: open */
  int64_t cursor_ms; /* from the previous page's last row; 0: first */
  const char *cursor_id;
  int limit; /* rows, 1..1000 */
};
/* Runs matching qy, newest first, at most qy->limit; *more is set when
 * another page follows. ri's agent fields are in durin_run_meta. */
int durin_store_run_query(struct durin_store *s,
                          const struct durin_run_query *qy, durin_run_cb cb,
                          void *arg, int *more, struct durin_err *err);

/* What a run's row holds about where it came from. */
struct durin_run_meta {
  char *agent;
  int64_t agent_version;
  char *created_by;
  char *labels_json; /* {"key": "value"} */
};
int durin_store_run_meta(struct durin_store *s, const char *id,
                         struct durin_run_meta *out, struct durin_err *err);
void durin_run_meta_clear(struct durin_run_meta *m);

/* The run an Idempotency-Key made, and the hash of its request;
 * DURIN_ENOTFOUND if none. */
int durin_store_idem_get(struct durin_store *s, const char *tenant,
                         const char *key, char run_id[32], char hash[65],
                         struct durin_err *err);

/* An API token; the store keeps its hash, never the token. */
struct durin_token {
  char id[32];
  const char *name, *role, *tenant; /* tenant NULL: all tenants */
  int64_t created_ms, revoked_ms;
};
typedef int (*durin_token_cb)(const struct durin_token *t, void *arg);
/* DURIN_EEXIST if an unrevoked token has the name. */
int durin_store_token_create(struct durin_store *s, const struct durin_token *t,
                             const char *hash, struct durin_err *err);
/* The unrevoked token with this hash; DURIN_ENOTFOUND if none. */
int durin_store_token_find(struct durin_store *s, const char *hash,
                           durin_token_cb cb, void *arg, struct durin_err *err);
int durin_store_token_list(struct durin_store *s, durin_token_cb cb, void *arg,
                           struct durin_err *err);
/* Revokes the unrevoked token named name (or with this id). */
int durin_store_token_revoke(struct durin_store *s, const char *name,
                             int64_t now_ms, struct durin_err *err);

/* Agents: a named spec per tenant; each change is a new version. */
struct durin_agent {
  const char *tenant, *name, *spec_json, *created_by;
  int64_t version, created_ms;
};
typedef int (*durin_agent_cb)(const struct durin_agent *a, void *arg);
/* Stores spec as the agent's next version (*version), unless it equals
 * the latest one (then *version is that one and *changed 0). */
int durin_store_agent_put(struct durin_store *s, const struct durin_agent *a,
                          int64_t *version, int *changed,
                          struct durin_err *err);
/* Version 0: the latest. DURIN_ENOTFOUND if none. */
int durin_store_agent_get(struct durin_store *s, const char *tenant,
                          const char *name, int64_t version, durin_agent_cb cb,
                          void *arg, struct durin_err *err);
/* The latest version of each agent of tenant (NULL: every tenant). */
int durin_store_agent_list(struct durin_store *s, const char *tenant,
                           durin_agent_cb cb, void *arg, struct durin_err *err);

/* Webhook subscriptions: server-wide (run_id NULL; tenant NULL: every
 * tenant) or a run's own. events: comma-separated types. */
struct durin_webhook_sub {
  char id[32];
  const char *tenant, *run_id, *url, *events, *secret, *created_by;
  int64_t created_ms;
};
typedef int (*durin_webhook_sub_cb)(const struct durin_webhook_sub *w,
                                    void *arg);
int durin_store_webhook_add(struct durin_store *s,
                            const struct durin_webhook_sub *w,
                            struct durin_err *err);
/* tenant NULL: all; run subscriptions are not listed. */
int durin_store_webhook_list(struct durin_store *s, const char *tenant,
                             durin_webhook_sub_cb cb, void *arg,
                             struct durin_err *err);
int durin_store_webhook_get(struct durin_store *s, const char *id,
                            durin_webhook_sub_cb cb, void *arg,
                            struct durin_err *err);
int durin_store_webhook_remove(struct durin_store *s, const char *id,
                               struct durin_err *err);

/* One delivery of the outbox, taken for a while by one deliverer. */
struct durin_delivery {
  const char *id, *sub_id, *run_id, *type, *url, *secret;
  int64_t seq, created_ms, attempts;
};
typedef int (*durin_delivery_cb)(const struct durin_delivery *d, void *arg);
/* Takes up to max due deliveries until now + lease_ms (a conditional
 * write: two servers never take one at once). */
int durin_store_outbox_take(struct durin_store *s, int64_t now_ms,
                            int64_t lease_ms, int max, durin_delivery_cb cb,
                            void *arg, struct durin_err *err);
/* Its outcome: delivered, or next try at next_ms (failed: given up). */
int durin_store_outbox_done(struct durin_store *s, const char *id,
                            int delivered, int failed, int64_t now_ms,
                            int64_t next_ms, const char *error,
                            struct durin_err *err);
/* The earliest next_ms of an undelivered one; 0 if none. */
int64_t durin_store_outbox_next(struct durin_store *s);

/* Workers: each one's heartbeat (kind "worker" or "serve"). */
struct durin_worker_row {
  const char *owner, *kind, *info;
  int64_t started_ms, beat_ms, max_runs;
  int64_t held; /* runs it holds now */
};
typedef int (*durin_worker_row_cb)(const struct durin_worker_row *w, void *arg);
int durin_store_worker_beat(struct durin_store *s,
                            const struct durin_worker_row *w,
                            struct durin_err *err);
int durin_store_worker_gone(struct durin_store *s, const char *owner,
                            struct durin_err *err);
int durin_store_worker_list(struct durin_store *s, durin_worker_row_cb cb,
                            void *arg, struct durin_err *err);

/*
 * What /metrics reads from the store when it is scraped
 * (lib/store/sql-metrics.c), in two cheap queries: runs that are not
 * finished, by tenant and status (an index range on status; finished
 * runs are never counted), and pending approvals by tenant with the
 * oldest one's request time. cb gets one row each: what is "runs"
 * (status set) or "approvals" (oldest_ms set).
 */
struct durin_store_gauge {
  const char *what;
  const char *tenant;
  const char *status; /* runs */
  int64_t count;
  int64_t oldest_ms; /* approvals: the oldest pending one's request */
};
typedef int (*durin_store_gauge_cb)(const struct durin_store_gauge *g,
                                    void *arg);
int durin_store_gauges(struct durin_store *s, durin_store_gauge_cb cb,
                       void *arg, struct durin_err *err);

/* A setting all servers of the store share. _init stores value unless
 * the key has one, and returns the one that holds (free() it). */
int durin_store_setting_init(struct durin_store *s, const char *key,
                             const char *value, char **out,
                             struct durin_err *err);

/*
 * Waking event streams. In-process: after each commit through this
 * handle that appended events, cb(arg, run_id) once per run, on the
 * committing thread (NULL: off). Across processes: a descriptor readable
 * when any process committed events (PostgreSQL: LISTEN durin_events);
 * -1 on SQLite; _drain passes each run id (may repeat) to cb.
 */
void durin_store_on_events(struct durin_store *s,
                           void (*cb)(void *arg, const char *run_id),
                           void *arg);
int durin_store_events_fd(struct durin_store *s);
int durin_store_events_drain(struct durin_store *s,
                             void (*cb)(void *arg, const char *run_id),
                             void *arg);

/*
 * Opens the store named by url ("sqlite:PATH[?sync=full|normal]", or
 * "postgres://USER@HOST:PORT/DB?..." as libpq reads it). Fails
 * with DURIN_EURL for an unknown scheme and a message naming the schemes
 * this build supports, and with DURIN_EBUSY when the store cannot be
 * reached for now (a PostgreSQL server down, starting or stopping):
 * opening again later may succeed. Other failures are DURIN_ESTORE.
 */
int durin_store_open(const char *url, struct durin_store **out,
                     struct durin_err *err);
void durin_store_close(struct durin_store *s);
const char *durin_store_url(const struct durin_store *s);

int durin_store_run_create(struct durin_store *s, const struct durin_run_new *n,
                           struct durin_err *err);
/* Reads the run with exactly this id; DURIN_ENOTFOUND if none. */
int durin_store_run_get(struct durin_store *s, const char *id,
                        struct durin_run_info *out, struct durin_err *err);
/* Finds the one run whose id starts with prefix (like git's short hashes). */
int durin_store_run_resolve(struct durin_store *s, const char *prefix,
                            char id[32], struct durin_err *err);
/* Calls cb for each run matching f, oldest first; spec_json is NULL. */
int durin_store_run_list(struct durin_store *s,
                         const struct durin_run_filter *f, durin_run_cb cb,
                         void *arg, struct durin_err *err);
/*
 * Takes the run's lease for owner until now + ttl: the epoch is incremented
 * (fencing every earlier holder), the attempt counted, and the new epoch
 * returned. Fails with DURIN_ESTATE if the run is terminal.
 */
int durin_store_run_claim(struct durin_store *s, const char *id,
                          const char *owner, int64_t now_ms, int64_t ttl_ms,
                          uint64_t *epoch, struct durin_err *err);
/* Flags the run for cancellation; the holder of the lease acts on it. */
int durin_store_run_request_cancel(struct durin_store *s, const char *id,
                                   struct durin_err *err);

/*
 * The queue (DESIGN 3.5). Runs ready for a worker are those nobody holds,
 * not paused, needing no human and not ended, whose not_before has passed.
 */

/* The active run with this dedupe key in tenant; DURIN_ENOTFOUND if none. */
int durin_store_run_find_active(struct durin_store *s, const char *tenant,
                                const char *dedupe_key, char id[32],
                                struct durin_err *err);
/*
 * Pauses a run: one nobody holds becomes paused at once; a held one is
 * flagged, and its holder pauses it at the next step boundary.
 */
int durin_store_run_pause(struct durin_store *s, const char *id, int64_t now_ms,
                          struct durin_err *err);
/*
 * Puts a run that needs a human back in the queue, with the operator's
 * resolution of its indeterminate call (-1: none, 0: skip it, 1: run it
 * again) for whichever worker claims it; DURIN_ESTATE if it does not
 * need a human. Appends a control event naming who and the resolution.
 */
int durin_store_run_requeue(struct durin_store *s, const char *id, int resolve,
                            const char *who, int64_t now_ms,
                            struct durin_err *err);
/* Appends one event (data is not consumed) to run_id's log outside any
 * lease: the audit trail of a control (who cancelled, paused, resumed).
 * Safe while a worker holds the run: its next commit finds the log
 * moved and numbers its events after it. */
int durin_store_control_event(struct durin_store *s, const char *run_id,
                              const char *type, json_t *data, int64_t now_ms,
                              struct durin_err *err);
/*
 * A fork (lib/store/sql-fork.c, docs/internals/fork.md), in one
 * transaction: the new run's rows (as durin_store_run_create makes them),
 * the original's events 1..through_seq copied with the same seqs (no
 * webhook announces them), then events appended after them (their seqs
 * assigned), the checkpoint at step, and the row's usage. The original
 * is only read. DURIN_ESTATE if its log does not hold through_seq events.
 */
struct durin_run_fork {
  const char *from;
  int64_t through_seq;
  const struct durin_run_new *run;
  int64_t step;
  const char *checkpoint;
  const struct durin_usage *usage;
  struct durin_event *events;
  size_t nevents;
};
int durin_store_run_fork(struct durin_store *s, const struct durin_run_fork *f,
                         struct durin_err *err);
/*
 * Continue: an ended run (succeeded, failed, cancelled, budget_exceeded)
 * nobody holds goes back to the queue (reason, finish time, flags and
 * recoveries cleared; held by owner until lease_until_ms when owner is
 * set, as a foreground `durin continue` takes it), with a new spec when
 * spec_json is set (a raised budget), the checkpoint at step, and events
 * appended, in one transaction. DURIN_ESTATE if the run has not ended or
 * is held; DURIN_EEXIST if another active run took its dedupe key.
 */
struct durin_run_continue {
  const char *id;
  const char *spec_json; /* NULL: unchanged */
  int64_t step;
  const char *checkpoint;
  struct durin_event *events;
  size_t nevents;
  const char *owner;
  int64_t lease_until_ms;
  int64_t now_ms;
};
int durin_store_run_continue(struct durin_store *s,
                             const struct durin_run_continue *c,
                             struct durin_err *err);
/* Puts a paused run back in the queue (DURIN_ESTATE if not paused). */
int durin_store_run_unpause(struct durin_store *s, const char *id,
                            int64_t now_ms, struct durin_err *err);
/*
 * Claims up to max ready runs for owner, each with a lease until now + ttl
 * and a new epoch. Fair share: the tenant holding the fewest runs goes
 * first, then priority (higher first), then age. Per-tenant and
 * per-concurrency-key limits (queue_limits; a concurrency key without a
 * limit allows one run at a time) count the runs currently held.
 */
int durin_store_queue_claim(struct durin_store *s, const char *owner,
                            int64_t now_ms, int64_t ttl_ms, int max,
                            struct durin_claim *out, int *n,
                            struct durin_err *err);
/*
 * The heartbeat: extends the lease of every run owner holds, in one write,
 * and reports each (with its cancel and pause flags). A run owner thinks
 * it holds but that is not reported has been taken from it.
 */
int durin_store_lease_renew(struct durin_store *s, const char *owner,
                            int64_t until_ms, durin_held_cb cb, void *arg,
                            struct durin_err *err);
/* The runs owner holds that were asked to cancel or pause (cheap; polled). */
int durin_store_signals(struct durin_store *s, const char *owner,
                        durin_held_cb cb, void *arg, struct durin_err *err);
/*
 * Recovery: runs whose lease expired go back to the queue with a new epoch
 * (fencing the lost holder) and a lease_expired event, or end as failed
 * once they used up their recoveries; runs held but without progress for
 * stall_ms get a stalled event and are restarted or escalated.
 */
int durin_store_watchdog(struct durin_store *s,
                         const struct durin_watchdog_opts *o,
                         struct durin_watchdog_report *rep,
                         struct durin_err *err);
/* Limits on runs held at once: scope "tenant:NAME" or "key:NAME"; a
 * negative max removes the limit. */
int durin_store_limit_set(struct durin_store *s, const char *scope, int64_t max,
                          struct durin_err *err);
int durin_store_limit_list(struct durin_store *s, durin_limit_cb cb, void *arg,
                           struct durin_err *err);

/*
 * A write transaction. Every write for a run goes in one, after that run's
 * fence; nothing in it is visible or durable until durin_txn_commit()
 * returns 0, and then all of it is (DESIGN 3.1).
 *
 * A store has one open transaction at most (durin_txn_begin() fails with
 * DURIN_ESTATE while one is open); txn belongs to the store and is
 * usable until it ends. durin_txn_commit() ends txn whatever it returns,
 * and returns:
 *   0                   everything in txn is durable (synchronous=FULL on
 *                       SQLite; the server's fsync on PostgreSQL);
 *   DURIN_EFENCED       a deferred fence failed: a run's lease moved on, or
 *                       its log moved behind the holder (DURIN_EBUSY then);
 *                       nothing landed; the holder drops the run;
 *   DURIN_EBUSY         the store could not take it now (lock, a restarting
 *                       server, a lost connection before COMMIT was sent):
 *                       nothing landed; write it again, its fence decides;
 *   DURIN_EINDOUBT      PostgreSQL only: the connection was lost after
 *                       COMMIT was sent and the store did not answer within
 *                       5 s whether it landed (the run row's commit token
 *                       tells, once it answers); the writer must not write
 *                       again nor go on: it lets the run go, and its next
 *                       holder restores what is there;
 *   DURIN_ESTORE, ...   any other failure; nothing landed.
 * durin_txn_rollback() discards txn and ends it (NULL: nothing).
 */
int durin_txn_begin(struct durin_store *s, struct durin_txn **txn,
                    struct durin_err *err);
int durin_txn_commit(struct durin_txn *txn, struct durin_err *err);
void durin_txn_rollback(struct durin_txn *txn);
/*
 * A nested point inside txn: _end(txn, 0) undoes everything written since
 * it, _end(txn, 1) keeps it. Group commit puts each run's writes behind
 * one, so a fenced run drops out without failing the others.
 */
int durin_txn_savepoint(struct durin_txn *txn, struct durin_err *err);
int durin_txn_savepoint_end(struct durin_txn *txn, int keep,
                            struct durin_err *err);
/*
 * Asserts inside txn that run_id's lease epoch is still epoch, and extends
 * the lease to lease_until_ms. DURIN_EFENCED if not.
 */
int durin_txn_fence(struct durin_txn *txn, const char *run_id, uint64_t epoch,
                    int64_t lease_until_ms, struct durin_err *err);
/*
 * The same, also reporting the run's cancel flag: the holder learns of a
 * `durin cancel` from the writes it makes anyway, without another query.
 */
int durin_txn_fence_check(struct durin_txn *txn, const char *run_id,
                          uint64_t epoch, int64_t lease_until_ms,
                          int *cancel_requested, struct durin_err *err);
/*
 * The same, checked when txn commits where the store can (PostgreSQL): the
 * fence then travels with the transaction's writes, and a step is one
 * round trip. A lost lease fails durin_txn_commit() with DURIN_EFENCED and
 * nothing of txn lands; *cancel_requested (may be NULL) is set by a
 * commit that succeeds, so it must outlive it. It may also fail here, as
 * durin_txn_fence_check() does (SQLite; a run this connection has not
 * claimed or written at this epoch). With several runs in txn, one lost
 * lease fails them all: a caller that wants the others to land writes
 * them again, each fenced with durin_txn_fence_check() behind its
 * savepoint (the worker's group commit does).
 */
int durin_txn_fence_deferred(struct durin_txn *txn, const char *run_id,
                             uint64_t epoch, int64_t lease_until_ms,
                             int *cancel_requested, struct durin_err *err);
/*
 * The durability writes. Each goes into txn after run_id's fence and
 * lands with its commit or not at all.
 *
 * events_append: appends n events to the run's log; each ev[i].seq gets
 *   its contiguous sequence (the log has no gaps; readers page by seq).
 *   Also moves the run's progress time (the watchdog's stall clock).
 * checkpoint_put: the run's one checkpoint becomes data, as of step (a
 *   committed step's state; replaces the previous one).
 * run_update: the run row: status, reason, usage totals, times, and the
 *   lease (released, or kept) as u says.
 * ledger_intent: a call with side effects is about to be dispatched: run,
 *   step, call, tool, effect, arguments and their hash, idempotency key
 *   (DESIGN 3.3). Durable before the call starts; written once per call.
 * ledger_outcome: the call's result (JSON, with its change set when it ran
 *   in a layer); DURIN_ENOTFOUND without its intent. After it is durable
 *   the call is never run again: a restorer reuses the result.
 * pending_put: the model response of a step that is still open (its
 *   calls' intents point into it); pending_clear ends it with the step's
 *   commit.
 */
int durin_txn_events_append(struct durin_txn *txn, const char *run_id,
                            struct durin_event *ev, size_t n,
                            struct durin_err *err);
int durin_txn_checkpoint_put(struct durin_txn *txn, const char *run_id,
                             int64_t step, const char *data,
                             struct durin_err *err);
int durin_txn_run_update(struct durin_txn *txn, const char *run_id,
                         const struct durin_run_update *u,
                         struct durin_err *err);
int durin_txn_ledger_intent(struct durin_txn *txn,
                            const struct durin_ledger_entry *e,
                            struct durin_err *err);
int durin_txn_ledger_outcome(struct durin_txn *txn, const char *run_id,
                             int64_t step, int call_idx, const char *outcome,
                             int64_t now_ms, struct durin_err *err);
int durin_txn_pending_put(struct durin_txn *txn, const char *run_id,
                          int64_t step, const char *response,
                          struct durin_err *err);
int durin_txn_pending_clear(struct durin_txn *txn, const char *run_id,
                            struct durin_err *err);

/* Calls cb for events with seq >= from_seq, at most max (0: all). */
int durin_store_events_read(struct durin_store *s, const char *run_id,
                            int64_t from_seq, int64_t max, durin_event_cb cb,
                            void *arg, struct durin_err *err);
/* Calls cb for the run's last event of that type; DURIN_ENOTFOUND (without
 * a message) if it has none. */
int durin_store_event_last(struct durin_store *s, const char *run_id,
                           const char *type, durin_event_cb cb, void *arg,
                           struct durin_err *err);
/* The latest checkpoint; DURIN_ENOTFOUND if none. free() *data. */
int durin_store_checkpoint_get(struct durin_store *s, const char *run_id,
                               int64_t *step, char **data,
                               struct durin_err *err);
int durin_store_ledger_read(struct durin_store *s, const char *run_id,
                            int64_t step, durin_ledger_cb cb, void *arg,
                            struct durin_err *err);
/* The pending response of an unfinished step; DURIN_ENOTFOUND if none. */
int durin_store_pending_get(struct durin_store *s, const char *run_id,
                            int64_t *step, char **response,
                            struct durin_err *err);
int64_t durin_store_size_bytes(struct durin_store *s);

/*
 * Waking idle workers. A descriptor that becomes readable when another
 * process made work ready (a run submitted or let go, an approval
 * decided, a run re-queued, a pause lifted): PostgreSQL's LISTEN/NOTIFY on
 * a connection of its own, so it may be watched from another thread than
 * the store's. -1 when the store has none (SQLite: workers poll).
 * durin_store_wakeup_drain() consumes what arrived: the number of
 * signals, or -1 if the channel broke (the next _fd reopens it).
 */
int durin_store_wakeup_fd(struct durin_store *s);
int durin_store_wakeup_drain(struct durin_store *s);

/*
 * Approvals. A run that waits for one is a row with status
 * waiting_approval and no lease; a decision or the watchdog's expiry puts
 * it back in the queue, and whichever worker claims it replays the
 * waiting step with the decision.
 */

/* Records a pending approval inside a run's fenced commit. Writing the
 * same (run, step, call) again keeps the first record. */
int durin_txn_approval_request(struct durin_txn *txn,
                               const struct durin_approval *a,
                               struct durin_err *err);
/* Calls cb once with the approval whose id starts with prefix;
 * DURIN_ENOTFOUND if none, DURIN_EINVAL if the prefix is ambiguous. */
int durin_store_approval_get(struct durin_store *s, const char *prefix,
                             durin_approval_cb cb, void *arg,
                             struct durin_err *err);
/* Approvals of run_id (NULL: every run) at step (< 0: any step), oldest
 * first; only pending ones if pending_only. */
int durin_store_approval_list(struct durin_store *s, const char *run_id,
                              int64_t step, int pending_only,
                              durin_approval_cb cb, void *arg,
                              struct durin_err *err);
/*
 * Decides a pending approval in one transaction: the row, an
 * approval_decided event in the run's log, and the run back in the queue.
 * DURIN_ESTATE if it is no longer pending (*final says what it is), or if
 * its deadline has passed: then it is expired here, as the watchdog would.
 */
int durin_store_approval_decide(struct durin_store *s,
                                const struct durin_approval_decision *d,
                                enum durin_approval_state *final,
                                struct durin_err *err);

/* ---- the trace exporter's cursors (lib/otel/export.c) ---- */

/* A run whose log has events past its exported cursor. */
struct durin_otel_cursor {
  const char *run_id;
  int64_t last_seq;  /* the run's last event */
  int64_t seq;       /* the last event whose spans were sent (0: none) */
  int64_t fold_from; /* where the fold resumes (0: the start) */
  int held;          /* durin_store_otel_claim/advance: still owner's */
};
typedef int (*durin_otel_cursor_cb)(const struct durin_otel_cursor *c,
                                    void *arg);

/*
 * Calls cb for up to limit runs updated at or after since_ms whose log
 * goes past their cursor and that owner may export now (no other holder,
 * or its hold ended before now_ms), least recently updated first.
 */
int durin_store_otel_pending(struct durin_store *s, const char *owner,
                             int64_t now_ms, int64_t since_ms, int limit,
                             durin_otel_cursor_cb cb, void *arg,
                             struct durin_err *err);
/*
 * Holds the cursors of the n runs c names for owner until until_ms, in
 * one transaction: c[i].held says which it got (not one another
 * exporter holds past now_ms), and seq and fold_from where their cursors
 * are.
 */
int durin_store_otel_claim(struct durin_store *s, const char *owner,
                           int64_t now_ms, int64_t until_ms,
                           struct durin_otel_cursor *c, int n,
                           struct durin_err *err);
/* Moves the n cursors of c on to their seq and fold_from, and holds them
 * on until until_ms, in one transaction; c[i].held is 0 where owner no
 * longer held it (another exporter took over: it sends from where it
 * found it). */
int durin_store_otel_advance(struct durin_store *s, const char *owner,
                             int64_t until_ms, struct durin_otel_cursor *c,
                             int n, struct durin_err *err);

/* ---- the vault's rows (lib/secret/, lib/store/sql-secrets.c) ---- */

/* A secret as stored: its value sealed (include/durin/secret.h). Strings
 * are owned by whoever filled it (durin_secret_row_clear frees those
 * durin_store_secret_get filled). A listing leaves nonce and ciphertext
 * NULL: values never leave the store there. */
struct durin_secret_row {
  char *tenant;
  char *name;
  char *scope; /* NULL, or e.g. "agent:NAME" */
  char *key_id;
  char *nonce;      /* base64 */
  char *ciphertext; /* base64, with its tag */
  int64_t version;
  int64_t created_ms, updated_ms;
  char *created_by; /* may be NULL */
};
void durin_secret_row_clear(struct durin_secret_row *r);
typedef int (*durin_secret_row_cb)(const struct durin_secret_row *r, void *arg);

/*
 * Writes row as version row->version of (tenant, name), if the stored
 * version is still prev (0: there is none): a new row keeps created_ms
 * and created_by as given, a rotation keeps the stored ones, and its
 * scope when row->scope is NULL. DURIN_EBUSY when prev is no longer the
 * stored version (another writer came first: read again).
 */
int durin_store_secret_put(struct durin_store *s,
                           const struct durin_secret_row *row, int64_t prev,
                           struct durin_err *err);
/* Tenant's secret name, sealed value included; DURIN_ENOTFOUND if none. */
int durin_store_secret_get(struct durin_store *s, const char *tenant,
                           const char *name, struct durin_secret_row *out,
                           struct durin_err *err);
/* Tenant's secrets (NULL: every tenant's) by tenant and name: metadata
 * only, never nonce or ciphertext. */
int durin_store_secret_list(struct durin_store *s, const char *tenant,
                            durin_secret_row_cb cb, void *arg,
                            struct durin_err *err);
/* Deletes tenant's secret name; DURIN_ENOTFOUND if there was none. */
int durin_store_secret_delete(struct durin_store *s, const char *tenant,
                              const char *name, struct durin_err *err);

/* ---- inbound triggers (lib/trigger/, lib/store/sql-triggers.c) ---- */

/* A trigger's definition. Strings are owned by whoever filled it
 * (durin_trigger_def_clear frees those the store filled). config is the
 * JSON of its filters, templates and untrusted-sender rule; spec and
 * untrusted_spec the pinned specs' JSON (untrusted_spec may be NULL). */
struct durin_trigger_def {
  char *name;
  char *tenant;
  char *kind;   /* "github" or "standard" */
  char *secret; /* the vault secret's name, never its value */
  char *config;
  char *spec;
  char *untrusted_spec;
  int64_t created_ms;
  char *created_by; /* may be NULL */
};
void durin_trigger_def_clear(struct durin_trigger_def *t);
typedef int (*durin_trigger_def_cb)(const struct durin_trigger_def *t,
                                    void *arg);

/* Adds t; DURIN_EEXIST if a trigger has the name (names are global:
 * the receiving URL carries no tenant). */
int durin_store_trigger_add(struct durin_store *s,
                            const struct durin_trigger_def *t,
                            struct durin_err *err);
/* Trigger name, whatever its tenant; DURIN_ENOTFOUND if none. */
int durin_store_trigger_get(struct durin_store *s, const char *name,
                            struct durin_trigger_def *out,
                            struct durin_err *err);
/* Tenant's triggers (NULL: every tenant's) by name. */
int durin_store_trigger_list(struct durin_store *s, const char *tenant,
                             durin_trigger_def_cb cb, void *arg,
                             struct durin_err *err);
/* Deletes trigger name of tenant (NULL: any) and its deliveries;
 * DURIN_ENOTFOUND if there was none. */
int durin_store_trigger_delete(struct durin_store *s, const char *tenant,
                               const char *name, struct durin_err *err);

/* A delivery received by a trigger, whatever became of it. */
struct durin_trigger_delivery {
  const char *trigger;
  const char *delivery; /* X-GitHub-Delivery / webhook-id ("" if none) */
  int64_t received_ms;
  const char *event;   /* "issues.labeled"; may be NULL */
  const char *outcome; /* "accepted", "ignored" or "refused" */
  const char *reason;  /* may be NULL */
  const char *run_id;  /* the run it started; NULL for the others */
  const char *sender, *association; /* as the payload says; may be NULL */
  const char *body_sha256;          /* hex; never the body */
};
typedef int (*durin_trigger_delivery_cb)(const struct durin_trigger_delivery *d,
                                         void *arg);

/* Records a delivery that started no run (ignored or refused). */
int durin_store_delivery_add(struct durin_store *s,
                             const struct durin_trigger_delivery *d,
                             struct durin_err *err);
/* The run trigger's delivery started; DURIN_ENOTFOUND if none. */
int durin_store_delivery_run(struct durin_store *s, const char *trigger,
                             const char *delivery, char run_id[32],
                             struct durin_err *err);
/* The run a delivery of trigger with this body (its SHA-256, hex) started,
 * and that delivery's id; DURIN_ENOTFOUND if none. GitHub's signature does
 * not cover the delivery id: a signed body sent again under a new id is a
 * replay, found by its body. */
int durin_store_delivery_run_by_body(struct durin_store *s, const char *trigger,
                                     const char *body_sha256, char run_id[32],
                                     char delivery[128], struct durin_err *err);
/* Trigger's deliveries, newest first, at most limit (0: 100). */
int durin_store_delivery_list(struct durin_store *s, const char *trigger,
                              int limit, durin_trigger_delivery_cb cb,
                              void *arg, struct durin_err *err);
/*
 * Schedules (lib/store/sql-schedules.c, docs/internals/schedules.md): a
 * cron expression in a zone and a spec pinned when it was added. The
 * tick at next_fire_ms is claimed by a conditional write of next_fire_ms
 * in the transaction that also creates its run, so one tick makes one
 * run whichever process claims it and whatever crashed in between.
 */
enum durin_overlap {
  DURIN_OVERLAP_SKIP,   /* no run while the previous one is not ended */
  DURIN_OVERLAP_QUEUE,  /* always a new run */
  DURIN_OVERLAP_CANCEL, /* cancel the previous one, then a new run */
};
const char *durin_overlap_name(enum durin_overlap o);
/* 0, or DURIN_EINVAL for a name other than skip, queue, cancel-previous. */
int durin_overlap_parse(const char *name, enum durin_overlap *out);

struct durin_schedule {
  char *tenant, *name, *cron, *tz;
  char *spec_json; /* resolved at add; each tick's run is submitted from it */
  enum durin_overlap overlap;
  int64_t catchup; /* missed ticks run after downtime, the latest first */
  int paused;
  int64_t next_fire_ms;  /* the tick to claim; 0 while paused */
  int64_t last_fire_ms;  /* the last tick claimed; 0: none yet */
  char *last_run_id;     /* the last tick's run; NULL: none */
  char *last_run_status; /* its status as read (listings); NULL: none */
  int64_t created_ms;
  char *created_by;
};
void durin_schedule_clear(struct durin_schedule *sc);
typedef int (*durin_schedule_cb)(const struct durin_schedule *sc, void *arg);

/* Adds sc (tenant NULL: "default"); DURIN_EEXIST if tenant has one of
 * that name. */
int durin_store_schedule_add(struct durin_store *s,
                             const struct durin_schedule *sc,
                             struct durin_err *err);
/* DURIN_ENOTFOUND if tenant has no schedule name. */
int durin_store_schedule_get(struct durin_store *s, const char *tenant,
                             const char *name, struct durin_schedule *out,
                             struct durin_err *err);
/* By tenant and name; tenant NULL: every tenant's. due_ms > 0: only
 * those not paused whose tick is at or before it. */
int durin_store_schedule_list(struct durin_store *s, const char *tenant,
                              int64_t due_ms, durin_schedule_cb cb, void *arg,
                              struct durin_err *err);
/* Removes the schedule and its ticks (its runs stay);
 * DURIN_ENOTFOUND if none. */
int durin_store_schedule_remove(struct durin_store *s, const char *tenant,
                                const char *name, struct durin_err *err);
/* Pauses (paused 1) or resumes it with its next tick at next_fire_ms:
 * ticks while paused are not caught up. DURIN_ENOTFOUND if none. */
int durin_store_schedule_set_paused(struct durin_store *s, const char *tenant,
                                    const char *name, int paused,
                                    int64_t next_fire_ms,
                                    struct durin_err *err);

/* What became of a tick. */
struct durin_schedule_fire {
  const char *tenant, *name;
  int64_t tick_ms; /* the tick claimed: next_fire_ms must still be it */
  int64_t next_ms; /* next_fire_ms after it */
  /* "fired" (run set), "skipped" (overlap), "missed" (catch-up: ticks
   * tick_ms up to before next_ms not run, count of them in missed),
   * "failed" (its run could not be made: detail says why). */
  const char *outcome;
  int64_t missed;
  const struct durin_run_new *run;
  const char *cancel_run; /* cancel-previous: flagged in the same txn */
  const char *detail;     /* why (a skip, a spec that failed); may be NULL */
  int64_t now_ms;
};
/*
 * Claims f->tick_ms and records its outcome in one transaction: moves
 * next_fire_ms from tick_ms to next_ms if it is still tick_ms and the
 * schedule is not paused, creates the run, flags the previous run
 * cancelled, and appends the tick to the history. DURIN_ESTATE when the
 * tick was no longer there (another process claimed it, or the schedule
 * was paused, changed or removed): nothing was written.
 */
int durin_store_schedule_fire(struct durin_store *s,
                              const struct durin_schedule_fire *f,
                              struct durin_err *err);
struct durin_schedule_tick {
  int64_t tick_ms;
  const char *outcome; /* fired, skipped, missed, failed */
  int64_t missed;      /* missed: how many ticks */
  const char *run_id;  /* fired: the run; NULL otherwise */
  int64_t at_ms;       /* when it was recorded */
  const char *detail;  /* may be NULL */
};
typedef int (*durin_schedule_tick_cb)(const struct durin_schedule_tick *t,
                                      void *arg);
/* The schedule's last limit ticks, newest first. */
int durin_store_schedule_ticks(struct durin_store *s, const char *tenant,
                               const char *name, int limit,
                               durin_schedule_tick_cb cb, void *arg,
                               struct durin_err *err);

#endif
