/*
 * The trace exporter's cursors (include/durin/store.h, lib/otel/export.c):
 * per run, how far its spans were sent, and which exporter sends them now.
 * A hold expires, so an exporter that died leaves nothing stuck: the next
 * one resumes from the cursor, and may send the last batch again, which
 * is harmless (a span's ids are its run's and its event's).
 */
#include <string.h>

#include "store/sql-int.h"

int durin_store_otel_pending(struct durin_store *q, const char *owner,
                             int64_t now_ms, int64_t since_ms, int limit,
                             durin_otel_cursor_cb cb, void *arg,
                             struct durin_err *err)
{
  struct db_stmt *st;
  int r = 0, rc;

  if (db_prepare(q->db,
                 "SELECT r.id, r.last_seq, coalesce(c.seq, 0), "
                 "coalesce(c.fold_from, 0) FROM runs r LEFT JOIN otel_cursor c "
                 "ON c.run_id = r.id WHERE r.updated_ms >= ?1 AND r.last_seq > "
                 "coalesce(c.seq, 0) AND (c.owner IS NULL OR c.owner = ?2 OR "
                 "c.until_ms < ?3) ORDER BY r.updated_ms LIMIT ?4",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "reading trace cursors");
  db_bind_int64(st, 1, since_ms);
  db_bind_text(st, 2, owner);
  db_bind_int64(st, 3, now_ms);
  db_bind_int64(st, 4, limit);
  while (!r && (rc = db_step(st)) == DB_ROW) {
    struct durin_otel_cursor c;

    c.run_id = db_col_text(st, 0);
    c.last_seq = db_col_int64(st, 1);
    c.seq = db_col_int64(st, 2);
    c.fold_from = db_col_int64(st, 3);
    r = cb(&c, arg);
  }
  if (!r && rc != DB_DONE)
    r = durin__sq_fail(q, err, "reading trace cursors");
  db_finalize(st);
  return r;
}

/* One run's hold: taken when free, expired or already ours, and where its
 * cursor is; DURIN_EBUSY when another exporter holds it. */
static int claim_one(struct durin_store *q, struct durin_otel_cursor *c,
                     const char *owner, int64_t now_ms, int64_t until_ms,
                     struct durin_err *err)
{
  struct db_stmt *st;
  int rc;

  if (db_prepare(q->db,
                 "INSERT INTO otel_cursor(run_id, seq, fold_from, owner, "
                 "until_ms) VALUES(?1, 0, 0, ?2, ?3) ON CONFLICT(run_id) DO "
                 "UPDATE SET owner = ?2, until_ms = ?3 WHERE otel_cursor.owner "
                 "IS NULL OR otel_cursor.owner = ?2 OR otel_cursor.until_ms < "
                 "?4",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "holding a trace cursor");
  db_bind_text(st, 1, c->run_id);
  db_bind_text(st, 2, owner);
  db_bind_int64(st, 3, until_ms);
  db_bind_int64(st, 4, now_ms);
  rc = db_step(st);
  db_finalize(st);
  if (rc != DB_DONE)
    return durin__sq_fail(q, err, "holding a trace cursor");
  if (db_changes(q->db) != 1)
    return DURIN_EBUSY;
  if (db_prepare(q->db,
                 "SELECT seq, fold_from FROM otel_cursor WHERE run_id = ?1",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "reading a trace cursor");
  db_bind_text(st, 1, c->run_id);
  rc = db_step(st);
  if (rc == DB_ROW) {
    c->seq = db_col_int64(st, 0);
    c->fold_from = db_col_int64(st, 1);
  }
  db_finalize(st);
  if (rc != DB_ROW)
    return durin__sq_fail(q, err, "reading a trace cursor");
  return 0;
}

/* Commits a batch's transaction, or rolls it back on r (or when the commit
 * fails): then none of its cursors is held. */
static int end_batch(struct durin_store *q, struct durin_otel_cursor *c, int n,
                     int r, struct durin_err *err)
{
  int i;

  if (!r && !(r = durin__sq_exec(q, "COMMIT", err)))
    return 0;
  durin__sq_exec(q, "ROLLBACK", NULL);
  for (i = 0; i < n; i++)
    c[i].held = 0;
  return r;
}

int durin_store_otel_claim(struct durin_store *q, const char *owner,
                           int64_t now_ms, int64_t until_ms,
                           struct durin_otel_cursor *c, int n,
                           struct durin_err *err)
{
  int r = 0, i;

  for (i = 0; i < n; i++)
    c[i].held = 0;
  if (!n)
    return 0;
  /* One transaction for the round's runs: one commit, not one each. */
  if ((r = durin__sq_begin(q, 0, err)))
    return r;
  for (i = 0; i < n && !r; i++) {
    r = claim_one(q, &c[i], owner, now_ms, until_ms, err);
    c[i].held = !r;
    if (r == DURIN_EBUSY)
      r = 0;
  }
  return end_batch(q, c, n, r, err);
}

int durin_store_otel_advance(struct durin_store *q, const char *owner,
                             int64_t until_ms, struct durin_otel_cursor *c,
                             int n, struct durin_err *err)
{
  struct db_stmt *st = NULL;
  int r = 0, i;

  if (!n)
    return 0;
  if ((r = durin__sq_begin(q, 0, err)))
    return r;
  if (db_prepare(q->db,
                 "UPDATE otel_cursor SET seq = ?3, fold_from = ?4, until_ms = "
                 "?5 WHERE run_id = ?1 AND owner = ?2 AND seq <= ?3",
                 &st) != DB_OK)
    r = durin__sq_fail(q, err, "moving a trace cursor");
  for (i = 0; i < n && !r; i++) {
    db_bind_text(st, 1, c[i].run_id);
    db_bind_text(st, 2, owner);
    db_bind_int64(st, 3, c[i].seq);
    db_bind_int64(st, 4, c[i].fold_from);
    db_bind_int64(st, 5, until_ms);
    if (db_step(st) != DB_DONE)
      r = durin__sq_fail(q, err, "moving a trace cursor");
    else
      c[i].held = db_changes(q->db) == 1;
    db_reset(st);
  }
  db_finalize(st);
  return end_batch(q, c, n, r, err);
}
