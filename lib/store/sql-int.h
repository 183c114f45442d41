/*
 * Internals of the store, shared by its files: the connection (SQLite or
 * PostgreSQL, store/db.h), its prepared statements and the helpers every
 * statement uses. The durin_store_* and durin_txn_* functions of
 * durin/store.h are written directly over them; only the database
 * underneath has two implementations.
 */
#ifndef DURIN_STORE_SQL_INT_H
#define DURIN_STORE_SQL_INT_H

#include <jansson.h>

#include "durin/store.h"
#include "store/db.h"

/* The columns durin__sq_row_to_run() reads; SPEC is the expression for
 * the spec. */
#define RUN_COLS_WITH(SPEC)                                            \
 "id, name, " SPEC ", model, workspace, reason, lease_owner, status, " \
 "created_ms, started_ms, updated_ms, finished_ms, lease_epoch, "      \
 "lease_expires_ms, attempt, last_seq, cancel_requested, steps, "      \
 "input_tokens, output_tokens, model_calls, tool_calls, retries, "     \
 "cost_usd, pause_requested, tenant, dedupe_key, concurrency_key, "    \
 "priority, not_before_ms, recoveries, max_recoveries, "               \
 "coalesce(resolve, -1)"
#define RUN_COLS \
 RUN_COLS_WITH("(SELECT spec FROM run_specs s WHERE s.run_id = runs.id)")
/* Listings leave the spec out: it can be large and nobody shows it. */
#define RUN_COLS_LIST RUN_COLS_WITH("NULL")

/* Statements prepared once per connection. */
enum {
  ST_FENCE,
  ST_SEQ_RESERVE,
  ST_CKPT_PUT,
  ST_LEDGER_INTENT,
  ST_LEDGER_OUTCOME,
  ST_PENDING_PUT,
  ST_PENDING_CLEAR,
  ST_RUN_UPDATE,
  ST_RUN_GET,
  ST_FENCE_DEFERRED, /* PostgreSQL only */
  ST_TOKEN_GET,
  ST__COUNT
};

/* A run's last event sequence as this connection committed it. */
#define SQ_SEQ_SLOTS 4096
struct sq_seq_slot {
  char id[32]; /* "" if empty */
  uint64_t epoch;
  int64_t last;
};

/* A run the open transaction fenced (sql-fence.c). */
struct sq_note {
  char id[32];
  uint64_t epoch;
  int64_t last;  /* its last_seq, -1 if not known */
  int checked;   /* last was sent with a deferred fence, which checks it */
  int *cancel;   /* a deferred fence's: where its cancel flag goes */
  int64_t *flag; /* ... and where the server's answer lands first */
  int64_t pend_n, pend_ms; /* events numbered here, not yet in last_seq */
};

/* Where deferred fences' answers land: chunks that never move while the
 * transaction is open (the driver writes into them). */
#define SQ_FLAG_CHUNK 64
struct sq_flags {
  int64_t v[SQ_FLAG_CHUNK];
  struct sq_flags *next;
};

/* The open transaction; a store has at most one (in_txn). */
struct durin_txn {
  struct durin_store *q;
  int wrote; /* events, a checkpoint or an approval: worth a crash test */
};

struct durin_store {
  struct db *db;
  char *url;  /* as opened, for durin_store_url() */
  char *path; /* for messages: the file, or the postgres URL */
  int pg;     /* PostgreSQL (else SQLite) */
  struct db_stmt *st[ST__COUNT];
  int in_txn;
  struct durin_txn txn;
  struct sq_seq_slot seq[SQ_SEQ_SLOTS];
  struct sq_note *notes;
  int nnotes, anotes;
  int sp_mark;            /* notes before the open savepoint */
  struct sq_flags *flags; /* for deferred fences' answers */
  int nflags;             /* used in this transaction */
  char token[17];         /* this transaction's, in its fenced runs' rows */
  uint64_t token_seed, token_count;
  /* In-process wake of event streams (durin_store_on_events): runs whose
   * events the open transaction appended. */
  void (*ev_hook)(void *arg, const char *run_id);
  void *ev_hook_arg;
  char (*ev_runs)[32];
  int nev_runs, aev_runs;
#define SQ_EV_BATCH 8
  struct db_stmt *ev_ins[SQ_EV_BATCH + 1]; /* inserts of k events */
};

/* Options parsed from a sqlite: URL's query string. */
struct durin_store_opts {
  int sync_full;       /* synchronous=FULL (default 1) */
  int busy_timeout_ms; /* how long to wait for a lock (default 5000) */
};

/* Open the store over one database driver (sql-store.c); store.c picks
 * which by the URL's scheme. rest is what follows "sqlite:" or
 * "postgres:" (libpq reads the query string itself). */
int durin__sq_open_sqlite(const char *rest, const struct durin_store_opts *o,
                          struct durin_store **out, struct durin_err *err);
int durin__sq_open_pg(const char *rest, struct durin_store **out,
                      struct durin_err *err);

/* Fills err from the connection's last error; returns the durin code. */
int durin__sq_fail(struct durin_store *q, struct durin_err *err,
                   const char *what);
/* BEGIN for a writer; exclusive ones (claims, the watchdog, decisions)
 * are serialized with each other on every database. */
int durin__sq_begin(struct durin_store *q, int exclusive,
                    struct durin_err *err);
/* Wakes idle workers at this transaction's commit (PostgreSQL). */
int durin__sq_notify(struct durin_store *q, struct durin_err *err);
/* Runs SQL text without results. */
int durin__sq_exec(struct durin_store *q, const char *sql,
                   struct durin_err *err);
char *durin__sq_col_dup(struct db_stmt *st, int i);
/* Runs a bound statement to its end and resets it. */
int durin__sq_step_done(struct durin_store *q, struct db_stmt *st,
                        const char *what, struct durin_err *err);
/* The same for a write whose result nobody reads (pipelined on
 * PostgreSQL; inside a transaction only). */
int durin__sq_step_nowait(struct durin_store *q, struct db_stmt *st,
                          const char *what, struct durin_err *err);
/* Reads a row selected with RUN_COLS into ri. */
void durin__sq_row_to_run(struct db_stmt *st, struct durin_run_info *ri);
void durin__sq_flags_free(struct durin_store *q);
/* Events of run_id numbered without asking whose last_seq bump is still
 * to be written: 1 and how many (and the last one's time), consumed. */
int durin__sq_seq_pending(struct durin_store *q, const char *run_id, int64_t *n,
                          int64_t *progress_ms);
/* Remembers run_id's last_seq at epoch, as a claim just saw it. */
void durin__sq_seq_known(struct durin_store *q, const char *run_id,
                         uint64_t epoch, int64_t last);
/* durin_txn_events_append() without marking the transaction: the store's
 * own events (approvals expired or cancelled) are not a step's write. */
int durin__sq_events_append(struct durin_store *q, const char *run_id,
                            struct durin_event *ev, size_t n,
                            struct durin_err *err);
/* Notes that the open transaction appended events of run_id, for the
 * in-process listener (durin_store_on_events). */
void durin__sq_ev_note(struct durin_store *q, const char *run_id);
/* Appends one event whose data is data (consumed). */
int durin__sq_event_json(struct durin_store *q, const char *run_id,
                         int64_t step, int64_t now, const char *type,
                         json_t *data, struct durin_err *err);
/* Runs sql with ?1 = id and ?2 = now, a write nobody reads back. */
int durin__sq_exec_id(struct durin_store *q, const char *sql, const char *id,
                      int64_t now, const char *what, struct durin_err *err);

/* The run's rows (runs, run_specs, extras) inside an open transaction:
 * durin_store_run_create without its BEGIN and COMMIT. */
int durin__sq_run_insert(struct durin_store *q, const struct durin_run_new *n,
                         struct durin_err *err);
/* Inside run creation: a run's agent, labels, creator, idempotency key
 * and own webhooks (sql-api.c). */
int durin__sq_run_extras(struct durin_store *q, const struct durin_run_new *n,
                         struct durin_err *err);
/* Records a trigger's delivery on the open transaction, if any
 * (sql-triggers.c); DURIN_EEXIST when it names a run and the delivery
 * started one already. */
int durin__sq_delivery_insert(struct durin_store *q,
                              const struct durin_trigger_delivery *d,
                              struct durin_err *err);

/* Approvals (sql-approvals.c). */
/* Inside a transaction: pending approvals of a run that ended. */
int durin__sq_approvals_cancel(struct durin_store *q, const char *run_id,
                               int64_t now_ms, struct durin_err *err);
/* Inside the watchdog's transaction: expires approvals past their
 * deadline and wakes their runs; counts them in *n. */
int durin__sq_approvals_expire(struct durin_store *q, int64_t now_ms, int *n,
                               struct durin_err *err);

#endif
