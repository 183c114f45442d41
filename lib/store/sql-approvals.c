/*
 * Approvals. A request is written inside the asking run's fenced commit;
 * a decision or an expiry is one exclusive transaction that
 * changes the row only while it is still pending, appends the run's event
 * and puts the run back in the queue, so two reviewers (or a reviewer and
 * the watchdog) can never both decide one approval.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "durin/store.h"
#include "durin/util.h"
#include "store/sql-int.h"

#define APPROVAL_COLS                                                \
 "id, run_id, step, call_idx, call_id, tool, call_args, call_hash, " \
 "args, args_hash, reason, rule, state, on_expiry, decided_by, "     \
 "comment, requested_ms, expires_ms, coalesce(decided_ms, 0) FROM "  \
 "approvals "

static const char *col(struct db_stmt *st, int i)
{
  return db_col_text(st, i);
}

static void row_to_approval(struct db_stmt *st, struct durin_approval *a)
{
  memset(a, 0, sizeof(*a));
  snprintf(a->id, sizeof(a->id), "%s", col(st, 0));
  snprintf(a->run_id, sizeof(a->run_id), "%s", col(st, 1));
  a->step = db_col_int64(st, 2);
  a->call_idx = db_col_int(st, 3);
  a->call_id = col(st, 4);
  a->tool = col(st, 5);
  a->call_args = col(st, 6);
  a->call_hash = col(st, 7);
  a->args = col(st, 8);
  a->args_hash = col(st, 9);
  a->reason = col(st, 10);
  a->rule = col(st, 11);
  if (durin_approval_state_parse(col(st, 12), &a->state))
    a->state = DURIN_APPROVAL_CANCELLED;
  a->on_expiry = col(st, 13);
  a->decided_by = col(st, 14);
  a->comment = col(st, 15);
  a->requested_ms = db_col_int64(st, 16);
  a->expires_ms = db_col_int64(st, 17);
  a->decided_ms = db_col_int64(st, 18);
}

int durin_txn_approval_request(struct durin_txn *txn,
                               const struct durin_approval *a,
                               struct durin_err *err)
{
  struct durin_store *q = txn->q;
  struct db_stmt *st;
  int r;

  txn->wrote = 1;
  if (db_prepare(
          q->db,
          "INSERT INTO approvals(id, run_id, step, call_idx, call_id, tool, "
          "call_args, call_hash, args, args_hash, reason, rule, state, "
          "on_expiry, requested_ms, expires_ms) VALUES(?1, ?2, ?3, ?4, ?5, "
          "?6, ?7, ?8, ?7, ?8, ?9, ?10, 'pending', ?11, ?12, ?13) "
          "ON CONFLICT DO NOTHING",
          &st) != DB_OK)
    return durin__sq_fail(q, err, "recording approval request");
  db_bind_text(st, 1, a->id);
  db_bind_text(st, 2, a->run_id);
  db_bind_int64(st, 3, a->step);
  db_bind_int64(st, 4, a->call_idx);
  db_bind_text(st, 5, a->call_id);
  db_bind_text(st, 6, a->tool);
  db_bind_text(st, 7, a->call_args);
  db_bind_text(st, 8, a->call_hash);
  db_bind_text(st, 9, a->reason);
  db_bind_text(st, 10, a->rule);
  db_bind_text(st, 11, a->on_expiry);
  db_bind_int64(st, 12, a->requested_ms);
  db_bind_int64(st, 13, a->expires_ms);
  r = durin__sq_step_nowait(q, st, "recording approval request", err);
  db_finalize(st);
  return r;
}

/* Runs a SELECT of APPROVAL_COLS, calling cb per row; returns the count. */
static int select_rows(struct durin_store *q, struct db_stmt *st,
                       durin_approval_cb cb, void *arg, int *n,
                       const char *what, struct durin_err *err)
{
  struct durin_approval a;
  int rc, r = 0;

  *n = 0;
  while ((rc = db_step(st)) == DB_ROW) {
    (*n)++;
    if (cb && !r) {
      row_to_approval(st, &a);
      r = cb(&a, arg);
    }
  }
  if (rc != DB_DONE)
    r = durin__sq_fail(q, err, what);
  db_finalize(st);
  return r;
}

int durin_store_approval_get(struct durin_store *q, const char *prefix,
                             durin_approval_cb cb, void *arg,
                             struct durin_err *err)
{
  struct db_stmt *st;
  int r, n;

  if (db_prepare(q->db,
                 "SELECT " APPROVAL_COLS
                 "WHERE substr(id, 1, length(CAST(?1 AS TEXT))) = ?1 "
                 "ORDER BY id LIMIT 2",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "finding approval");
  db_bind_text(st, 1, prefix);
  /* Count first: an ambiguous prefix must not act on the first match. */
  r = select_rows(q, st, NULL, NULL, &n, "finding approval", err);
  if (r)
    return r;
  if (n == 0)
    return durin_err_set(err, DURIN_ENOTFOUND,
                         "no approval '%s' in this store (see 'durin "
                         "approvals')",
                         prefix);
  if (n > 1)
    return durin_err_set(err, DURIN_EINVAL,
                         "approval id '%s' is ambiguous: give more characters",
                         prefix);
  if (db_prepare(q->db,
                 "SELECT " APPROVAL_COLS
                 "WHERE substr(id, 1, length(CAST(?1 AS TEXT))) = ?1",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "finding approval");
  db_bind_text(st, 1, prefix);
  return select_rows(q, st, cb, arg, &n, "finding approval", err);
}

int durin_store_approval_list(struct durin_store *q, const char *run_id,
                              int64_t step, int pending_only,
                              durin_approval_cb cb, void *arg,
                              struct durin_err *err)
{
  struct db_stmt *st;
  int n;

  if (db_prepare(q->db,
                 "SELECT " APPROVAL_COLS
                 "WHERE (CAST(?1 AS TEXT) IS NULL OR run_id = ?1) AND "
                 "(?2 < 0 OR step = ?2) AND "
                 "(?3 = 0 OR state = 'pending') "
                 "ORDER BY requested_ms, run_id, step, call_idx",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "listing approvals");
  db_bind_text(st, 1, run_id);
  db_bind_int64(st, 2, step);
  db_bind_int64(st, 3, pending_only);
  return select_rows(q, st, cb, arg, &n, "listing approvals", err);
}

/* Puts a run that waits for a decision back in the queue. */
static int wake(struct durin_store *q, const char *run_id, int64_t now,
                struct durin_err *err)
{
  int r = durin__sq_notify(q, err);

  if (r)
    return r;
  return durin__sq_exec_id(q,
                           "UPDATE runs SET status = 'running', reason = '', "
                           "updated_ms = ?2 WHERE id = ?1 AND status = "
                           "'waiting_approval'",
                           run_id, now, "waking run", err);
}

/* Moves a pending approval to state; 0 rows changed is DURIN_ESTATE. */
static int set_state(struct durin_store *q,
                     const struct durin_approval_decision *d, const char *state,
                     struct durin_err *err)
{
  struct db_stmt *st;
  int r;

  if (db_prepare(q->db,
                 "UPDATE approvals SET state = ?2, args = "
                 "coalesce(?3, args), args_hash = coalesce(?4, "
                 "args_hash), decided_by = ?5, comment = ?6, "
                 "decided_ms = ?7 WHERE id = ?1 AND state = 'pending'",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "deciding approval");
  db_bind_text(st, 1, d->id);
  db_bind_text(st, 2, state);
  db_bind_text(st, 3, d->args);
  db_bind_text(st, 4, d->args_hash);
  db_bind_text(st, 5, d->who);
  db_bind_text(st, 6, d->comment);
  db_bind_int64(st, 7, d->now_ms);
  r = durin__sq_step_done(q, st, "deciding approval", err);
  if (!r && db_changes(q->db) != 1)
    r = durin_err_set(err, DURIN_ESTATE, "approval '%s' is no longer pending",
                      d->id);
  db_finalize(st);
  return r;
}

/* Expires one pending approval: row, event, run woken. */
static int expire_one(struct durin_store *q, const char *id, const char *run_id,
                      int64_t step, const char *on_expiry, int64_t now,
                      struct durin_err *err)
{
  struct durin_approval_decision d;
  int r;

  memset(&d, 0, sizeof(d));
  d.id = id;
  d.who = "durin";
  d.comment = "no decision before the deadline";
  d.now_ms = now;
  r = set_state(q, &d, "expired", err);
  if (!r)
    r = durin__sq_event_json(
        q, run_id, step, now, "approval_expired",
        json_pack("{s:s,s:s}", "id", id, "on_expiry", on_expiry), err);
  if (!r)
    r = wake(q, run_id, now, err);
  return r;
}

int durin__sq_approvals_expire(struct durin_store *q, int64_t now_ms, int *n,
                               struct durin_err *err)
{
  struct due {
    char id[32], run_id[32], on_expiry[16];
    int64_t step;
  } *due = NULL;
  struct db_stmt *st;
  int nd = 0, rc, r = 0, i;

  if (db_prepare(q->db,
                 "SELECT id, run_id, step, on_expiry FROM approvals "
                 "WHERE state = 'pending' AND expires_ms <= ?1",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "finding expired approvals");
  db_bind_int64(st, 1, now_ms);
  while ((rc = db_step(st)) == DB_ROW) {
    struct due *x;

    due = realloc(due, (size_t)(nd + 1) * sizeof(*due));
    x = &due[nd++];
    snprintf(x->id, sizeof(x->id), "%s", col(st, 0));
    snprintf(x->run_id, sizeof(x->run_id), "%s", col(st, 1));
    x->step = db_col_int64(st, 2);
    snprintf(x->on_expiry, sizeof(x->on_expiry), "%s", col(st, 3));
  }
  if (rc != DB_DONE)
    r = durin__sq_fail(q, err, "finding expired approvals");
  db_finalize(st);
  for (i = 0; !r && i < nd; i++)
    r = expire_one(q, due[i].id, due[i].run_id, due[i].step, due[i].on_expiry,
                   now_ms, err);
  if (!r)
    *n += nd;
  free(due);
  return r;
}

int durin__sq_approvals_cancel(struct durin_store *q, const char *run_id,
                               int64_t now_ms, struct durin_err *err)
{
  return durin__sq_exec_id(q,
                           "UPDATE approvals SET state = 'cancelled', "
                           "decided_by = 'durin', comment = 'the run ended', "
                           "decided_ms = ?2 WHERE run_id = ?1 AND state = "
                           "'pending'",
                           run_id, now_ms, "cancelling approvals", err);
}

struct found {
  int n;
  char id[32], run_id[32], on_expiry[16];
  int64_t step, expires_ms;
  enum durin_approval_state state;
};

static int remember(const struct durin_approval *a, void *arg)
{
  struct found *f = arg;

  f->n++;
  snprintf(f->id, sizeof(f->id), "%s", a->id);
  snprintf(f->run_id, sizeof(f->run_id), "%s", a->run_id);
  snprintf(f->on_expiry, sizeof(f->on_expiry), "%s", a->on_expiry);
  f->step = a->step;
  f->expires_ms = a->expires_ms;
  f->state = a->state;
  return 0;
}

static int decide(struct durin_store *q,
                  const struct durin_approval_decision *d,
                  enum durin_approval_state *final, struct durin_err *err)
{
  struct found f;
  json_t *data;
  int r;

  memset(&f, 0, sizeof(f));
  r = durin_store_approval_get(q, d->id, remember, &f, err);
  if (r)
    return r;
  *final = f.state;
  if (f.state != DURIN_APPROVAL_PENDING)
    return durin_err_set(err, DURIN_ESTATE,
                         "approval '%s' is already %s; nothing was changed",
                         f.id, durin_approval_state_name(f.state));
  if (f.expires_ms <= d->now_ms) {
    /* Past its deadline: it expires now, whatever the reviewer wanted. */
    r = expire_one(q, f.id, f.run_id, f.step, f.on_expiry, d->now_ms, err);
    if (r)
      return r;
    *final = DURIN_APPROVAL_EXPIRED;
    return DURIN_ETIMEDOUT;
  }
  {
    struct durin_approval_decision full = *d;

    full.id = f.id;
    r = set_state(q, &full, durin_approval_state_name(d->state), err);
  }
  if (r)
    return r;
  *final = d->state;
  data = json_pack("{s:s,s:s,s:s}", "id", f.id, "decision",
                   durin_approval_state_name(d->state), "by",
                   d->who ? d->who : "");
  if (d->comment)
    json_object_set_new(data, "comment", json_string(d->comment));
  if (d->state == DURIN_APPROVAL_EDITED && d->args)
    json_object_set_new(data, "arguments", json_string(d->args));
  r = durin__sq_event_json(q, f.run_id, f.step, d->now_ms, "approval_decided",
                           data, err);
  if (!r)
    r = wake(q, f.run_id, d->now_ms, err);
  return r;
}

int durin_store_approval_decide(struct durin_store *q,
                                const struct durin_approval_decision *d,
                                enum durin_approval_state *final,
                                struct durin_err *err)
{
  int r;

  r = durin__sq_begin(q, 1, err);
  if (r)
    return r;
  r = decide(q, d, final, err);
  if (r && r != DURIN_ETIMEDOUT) {
    durin__sq_exec(q, "ROLLBACK", NULL);
    return r;
  }
  /* An expiry found on the way is kept: the approval is expired now. */
  {
    int c = durin__sq_exec(q, "COMMIT", err);

    if (c)
      return c;
  }
  if (r == DURIN_ETIMEDOUT)
    return durin_err_set(err, DURIN_ESTATE,
                         "approval '%s' expired before this decision; it "
                         "can no longer be decided (the run went on as its "
                         "expiry setting says)",
                         d->id);
  return 0;
}
