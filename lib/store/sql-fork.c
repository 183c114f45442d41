/*
 * Fork and continue in the store (docs/internals/fork.md): a new run made
 * of a prefix of another's log, and a finished run put back in the queue
 * with a new instruction. Each is one transaction: a crash leaves either
 * nothing or all of it.
 */
#include <stdio.h>
#include <string.h>

#include "durin/store.h"
#include "durin/util.h"
#include "store/sql-int.h"

/* Runs one bound statement to its end; *changes gets the rows it changed
 * (may be NULL). DB_CONSTRAINT is returned as DURIN_EEXIST. */
static int run1(struct durin_store *q, const char *what, struct db_stmt *st,
                int64_t *changes, struct durin_err *err)
{
  int rc = db_step(st);

  if (rc == DB_CONSTRAINT) {
    db_finalize(st);
    return durin_err_set(err, DURIN_EEXIST, "store '%s': %s: %s", q->path, what,
                         "a unique key is taken");
  }
  if (rc != DB_DONE && rc != DB_ROW) {
    int r = durin__sq_fail(q, err, what);

    db_finalize(st);
    return r;
  }
  if (changes)
    *changes = db_changes(q->db);
  db_finalize(st);
  return 0;
}

static int prep(struct durin_store *q, const char *sql, struct db_stmt **st,
                const char *what, struct durin_err *err)
{
  if (db_prepare(q->db, sql, st) != DB_OK)
    return durin__sq_fail(q, err, what);
  return 0;
}

static int put_checkpoint(struct durin_store *q, const char *run_id,
                          int64_t step, const char *data, struct durin_err *err)
{
  struct db_stmt *st = q->st[ST_CKPT_PUT];

  db_bind_text(st, 1, run_id);
  db_bind_int64(st, 2, step);
  db_bind_text(st, 3, data);
  return durin__sq_step_done(q, st, "writing checkpoint", err);
}

static int end_txn(struct durin_store *q, int r, struct durin_err *err)
{
  if (r) {
    durin__sq_exec(q, "ROLLBACK", NULL);
    return r;
  }
  return durin__sq_exec(q, "COMMIT", err);
}

/* The new run's row: usage as its checkpoint says, its log as long as
 * the copied prefix. */
static int fork_row(struct durin_store *q, const struct durin_run_fork *f,
                    struct durin_err *err)
{
  const struct durin_usage *u = f->usage;
  struct db_stmt *st;
  int r;

  if ((r = prep(q,
                "UPDATE runs SET last_seq = ?2, steps = ?3, input_tokens = ?4, "
                "output_tokens = ?5, model_calls = ?6, tool_calls = ?7, "
                "retries = ?8, cost_usd = ?9 WHERE id = ?1",
                &st, "forking run", err)))
    return r;
  db_bind_text(st, 1, f->run->id);
  db_bind_int64(st, 2, f->through_seq);
  db_bind_int64(st, 3, u->steps);
  db_bind_int64(st, 4, u->input_tokens);
  db_bind_int64(st, 5, u->output_tokens);
  db_bind_int64(st, 6, u->model_calls);
  db_bind_int64(st, 7, u->tool_calls);
  db_bind_int64(st, 8, u->retries);
  db_bind_double(st, 9, u->cost_usd);
  return run1(q, "forking run", st, NULL, err);
}

int durin_store_run_fork(struct durin_store *q, const struct durin_run_fork *f,
                         struct durin_err *err)
{
  struct db_stmt *st;
  int64_t copied = 0;
  int r;

  if ((r = durin__sq_begin(q, 0, err)))
    return r;
  r = durin__sq_run_insert(q, f->run, err);
  /* The prefix, with its own seqs: a window_start in it means the same
   * event in both logs. */
  if (!r &&
      !(r = prep(q,
                 "INSERT INTO events(run_id, seq, ts_ms, step, type, data) "
                 "SELECT ?1, seq, ts_ms, step, type, data FROM events WHERE "
                 "run_id = ?2 AND seq <= ?3 ORDER BY seq",
                 &st, "copying events", err))) {
    db_bind_text(st, 1, f->run->id);
    db_bind_text(st, 2, f->from);
    db_bind_int64(st, 3, f->through_seq);
    r = run1(q, "copying events", st, &copied, err);
  }
  if (!r && copied != f->through_seq)
    r = durin_err_set(err, DURIN_ESTATE,
                      "run '%s' has %lld events up to seq %lld, not %lld: "
                      "its log has gaps or was changed",
                      f->from, (long long)copied, (long long)f->through_seq,
                      (long long)f->through_seq);
  /* The copies are history, not news: no webhook announces them. */
  if (!r && !(r = prep(q,
                       "DELETE FROM webhook_outbox WHERE run_id = ?1 AND "
                       "seq <= ?2",
                       &st, "forking run", err))) {
    db_bind_text(st, 1, f->run->id);
    db_bind_int64(st, 2, f->through_seq);
    r = run1(q, "forking run", st, NULL, err);
  }
  if (!r)
    r = fork_row(q, f, err);
  if (!r)
    r = durin__sq_events_append(q, f->run->id, f->events, f->nevents, err);
  if (!r)
    r = put_checkpoint(q, f->run->id, f->step, f->checkpoint, err);
  if (!r && !f->run->owner)
    r = durin__sq_notify(q, err);
  if (!r)
    durin_fault_point("fork_before_commit");
  return end_txn(q, r, err);
}

int durin_store_run_continue(struct durin_store *q,
                             const struct durin_run_continue *c,
                             struct durin_err *err)
{
  struct db_stmt *st;
  int64_t changed = 0;
  int r;

  if ((r = durin__sq_begin(q, 0, err)))
    return r;
  /* Only an ended run that nobody holds: the condition is the check, so
   * two continues at once put it back once. */
  if (!(r = prep(q,
                 "UPDATE runs SET status = 'queued', reason = NULL, "
                 "finished_ms = NULL, updated_ms = ?2, cancel_requested = 0, "
                 "pause_requested = 0, recoveries = 0, resolve = NULL, "
                 "lease_owner = ?3, lease_expires_ms = ?4 WHERE id = ?1 AND "
                 "status IN ('succeeded', 'failed', 'cancelled', "
                 "'budget_exceeded') AND lease_owner IS NULL",
                 &st, "continuing run", err))) {
    db_bind_text(st, 1, c->id);
    db_bind_int64(st, 2, c->now_ms);
    db_bind_text(st, 3, c->owner);
    if (c->owner)
      db_bind_int64(st, 4, c->lease_until_ms);
    r = run1(q, "continuing run", st, &changed, err);
    if (r == DURIN_EEXIST)
      r = durin_err_set(err, DURIN_EEXIST,
                        "run '%s' cannot go on: another active run of its "
                        "tenant has its dedupe key; wait for that one to end",
                        c->id);
  }
  if (!r && !changed)
    r = durin_err_set(err, DURIN_ESTATE,
                      "run '%s' has not ended (or a process holds it): only "
                      "a succeeded, failed, cancelled or budget_exceeded run "
                      "can be continued",
                      c->id);
  if (!r && c->spec_json &&
      !(r = prep(q, "UPDATE run_specs SET spec = ?2 WHERE run_id = ?1", &st,
                 "continuing run", err))) {
    db_bind_text(st, 1, c->id);
    db_bind_text(st, 2, c->spec_json);
    r = run1(q, "continuing run", st, NULL, err);
  }
  if (!r)
    r = put_checkpoint(q, c->id, c->step, c->checkpoint, err);
  if (!r)
    r = durin__sq_events_append(q, c->id, c->events, c->nevents, err);
  if (!r && !c->owner)
    r = durin__sq_notify(q, err);
  if (!r)
    durin_fault_point("continue_before_commit");
  return end_txn(q, r, err);
}
