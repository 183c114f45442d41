/*
 * Schedules' rows and the claim of a tick (include/durin/store.h,
 * docs/internals/schedules.md).
 *
 * Exactly once per tick rests on one conditional write: every scheduler
 * that sees a tick due tries to move next_fire_ms from that tick to the
 * next, and only the transaction whose UPDATE changed the row goes on to
 * create the run and record the tick, before its COMMIT. On SQLite the
 * writer holds the database's write lock from BEGIN; on PostgreSQL the
 * second UPDATE waits for the first's row lock and then finds the row no
 * longer matching (READ COMMITTED re-checks the WHERE on the new row).
 * A crash before COMMIT leaves the tick unclaimed for anyone to redo; a
 * crash after it leaves the run and the history in place.
 */
#include <stdlib.h>
#include <string.h>

#include "durin/util.h"
#include "store/sql-int.h"

static const char *const overlap_names[] = {
  [DURIN_OVERLAP_SKIP] = "skip",
  [DURIN_OVERLAP_QUEUE] = "queue",
  [DURIN_OVERLAP_CANCEL] = "cancel-previous",
};

const char *durin_overlap_name(enum durin_overlap o)
{
  return (unsigned)o < 3 ? overlap_names[o] : "skip";
}

int durin_overlap_parse(const char *name, enum durin_overlap *out)
{
  for (int i = 0; i < 3; i++)
    if (name && !strcmp(name, overlap_names[i])) {
      *out = (enum durin_overlap)i;
      return 0;
    }
  return DURIN_EINVAL;
}

void durin_schedule_clear(struct durin_schedule *sc)
{
  if (!sc)
    return;
  free(sc->tenant);
  free(sc->name);
  free(sc->cron);
  free(sc->tz);
  free(sc->spec_json);
  free(sc->last_run_id);
  free(sc->last_run_status);
  free(sc->created_by);
  memset(sc, 0, sizeof(*sc));
}

static const char *tenant_or_default(const char *t)
{
  return t && *t ? t : "default";
}

int durin_store_schedule_add(struct durin_store *q,
                             const struct durin_schedule *sc,
                             struct durin_err *err)
{
  struct db_stmt *st;
  int rc;

  if (db_prepare(q->db,
                 "INSERT INTO schedules(tenant, name, cron, tz, spec, "
                 "overlap, catchup, paused, next_fire_ms, created_ms, "
                 "created_by) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                 "?10, CAST(?11 AS TEXT)) ON CONFLICT(tenant, name) DO "
                 "NOTHING",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "adding a schedule");
  db_bind_text(st, 1, tenant_or_default(sc->tenant));
  db_bind_text(st, 2, sc->name);
  db_bind_text(st, 3, sc->cron);
  db_bind_text(st, 4, sc->tz);
  db_bind_text(st, 5, sc->spec_json);
  db_bind_text(st, 6, durin_overlap_name(sc->overlap));
  db_bind_int64(st, 7, sc->catchup);
  db_bind_int64(st, 8, sc->paused ? 1 : 0);
  db_bind_int64(st, 9, sc->next_fire_ms);
  db_bind_int64(st, 10, sc->created_ms);
  db_bind_text(st, 11, sc->created_by);
  rc = db_step(st);
  db_finalize(st);
  if (rc != DB_DONE)
    return durin__sq_fail(q, err, "adding a schedule");
  if (db_changes(q->db) != 1)
    return durin_err_set(err, DURIN_EEXIST,
                         "schedule '%s' already exists: remove it first "
                         "('durin schedule rm %s')",
                         sc->name, sc->name);
  return 0;
}

#define SCHEDULE_COLS                                                      \
 "s.tenant, s.name, s.cron, s.tz, s.spec, s.overlap, s.catchup, "          \
 "s.paused, s.next_fire_ms, s.last_fire_ms, s.last_run_id, s.created_ms, " \
 "s.created_by, r.status"
#define SCHEDULE_FROM \
 " FROM schedules s LEFT JOIN runs r ON r.id = s.last_run_id"

static void row_read(struct db_stmt *st, struct durin_schedule *sc, int spec)
{
  memset(sc, 0, sizeof(*sc));
  sc->tenant = durin__sq_col_dup(st, 0);
  sc->name = durin__sq_col_dup(st, 1);
  sc->cron = durin__sq_col_dup(st, 2);
  sc->tz = durin__sq_col_dup(st, 3);
  sc->spec_json = spec ? durin__sq_col_dup(st, 4) : NULL;
  if (durin_overlap_parse(db_col_text(st, 5), &sc->overlap))
    sc->overlap = DURIN_OVERLAP_SKIP;
  sc->catchup = db_col_int64(st, 6);
  sc->paused = db_col_int(st, 7);
  sc->next_fire_ms = db_col_int64(st, 8);
  sc->last_fire_ms = db_col_int64(st, 9);
  sc->last_run_id = durin__sq_col_dup(st, 10);
  sc->created_ms = db_col_int64(st, 11);
  sc->created_by = durin__sq_col_dup(st, 12);
  sc->last_run_status = durin__sq_col_dup(st, 13);
}

int durin_store_schedule_get(struct durin_store *q, const char *tenant,
                             const char *name, struct durin_schedule *out,
                             struct durin_err *err)
{
  struct db_stmt *st;
  int r = 0, rc;

  if (db_prepare(q->db,
                 "SELECT " SCHEDULE_COLS SCHEDULE_FROM
                 " WHERE s.tenant = ?1 AND s.name = ?2",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "reading a schedule");
  db_bind_text(st, 1, tenant_or_default(tenant));
  db_bind_text(st, 2, name);
  rc = db_step(st);
  if (rc == DB_ROW)
    row_read(st, out, 1);
  else if (rc == DB_DONE)
    r = durin_err_set(err, DURIN_ENOTFOUND,
                      "no schedule '%s' (see 'durin schedule ls')", name);
  else
    r = durin__sq_fail(q, err, "reading a schedule");
  db_finalize(st);
  return r;
}

int durin_store_schedule_list(struct durin_store *q, const char *tenant,
                              int64_t due_ms, durin_schedule_cb cb, void *arg,
                              struct durin_err *err)
{
  struct db_stmt *st;
  struct durin_schedule sc;
  int r = 0, rc;

  /* The due ones through the partial index; a listing by its key. */
  if (db_prepare(q->db,
                 due_ms > 0 ?
                     "SELECT " SCHEDULE_COLS SCHEDULE_FROM
                     " WHERE s.paused = 0 AND s.next_fire_ms <= ?2 AND "
                     "(CAST(?1 AS TEXT) IS NULL OR s.tenant = ?1) ORDER BY "
                     "s.next_fire_ms" :
                     "SELECT " SCHEDULE_COLS SCHEDULE_FROM
                     " WHERE CAST(?1 AS TEXT) IS NULL OR s.tenant = ?1 "
                     "ORDER BY s.tenant, s.name",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "listing schedules");
  db_bind_text(st, 1, tenant);
  if (due_ms > 0)
    db_bind_int64(st, 2, due_ms);
  while ((rc = db_step(st)) == DB_ROW) {
    row_read(st, &sc, due_ms > 0);
    r = cb(&sc, arg);
    durin_schedule_clear(&sc);
    if (r)
      break;
  }
  if (!r && rc != DB_ROW && rc != DB_DONE)
    r = durin__sq_fail(q, err, "listing schedules");
  db_finalize(st);
  return r;
}

/* Runs a write on (tenant, name) in its own transaction; how many rows
 * of the first statement it changed in *n. */
static int write_named(struct durin_store *q, const char *const *sqls, int nsql,
                       const char *tenant, const char *name, const int64_t *i3,
                       int64_t *n, const char *what, struct durin_err *err)
{
  int r = durin__sq_begin(q, 0, err);

  if (r)
    return r;
  for (int i = 0; i < nsql && !r; i++) {
    struct db_stmt *st;

    if (db_prepare(q->db, sqls[i], &st) != DB_OK) {
      r = durin__sq_fail(q, err, what);
      break;
    }
    db_bind_text(st, 1, tenant_or_default(tenant));
    db_bind_text(st, 2, name);
    if (i3 && i == 0) {
      db_bind_int64(st, 3, i3[0]);
      db_bind_int64(st, 4, i3[1]);
    }
    if (db_step(st) != DB_DONE)
      r = durin__sq_fail(q, err, what);
    else if (i == 0)
      *n = db_changes(q->db);
    db_finalize(st);
  }
  if (r) {
    durin__sq_exec(q, "ROLLBACK", NULL);
    return r;
  }
  return durin__sq_exec(q, "COMMIT", err);
}

int durin_store_schedule_remove(struct durin_store *q, const char *tenant,
                                const char *name, struct durin_err *err)
{
  static const char *const sqls[] = {
    "DELETE FROM schedules WHERE tenant = ?1 AND name = ?2",
    "DELETE FROM schedule_ticks WHERE tenant = ?1 AND name = ?2",
  };
  int64_t n = 0;
  int r = write_named(q, sqls, 2, tenant, name, NULL, &n, "removing a schedule",
                      err);

  if (!r && !n)
    r = durin_err_set(err, DURIN_ENOTFOUND,
                      "no schedule '%s' (see 'durin schedule ls')", name);
  return r;
}

int durin_store_schedule_set_paused(struct durin_store *q, const char *tenant,
                                    const char *name, int paused,
                                    int64_t next_fire_ms, struct durin_err *err)
{
  static const char *const sqls[] = {
    /* Resuming an active schedule keeps its tick. */
    "UPDATE schedules SET paused = ?3, next_fire_ms = CASE WHEN ?3 = 1 "
    "THEN 0 WHEN paused = 1 THEN ?4 ELSE next_fire_ms END WHERE tenant = ?1 "
    "AND name = ?2",
  };
  int64_t v[2] = { paused ? 1 : 0, next_fire_ms }, n = 0;
  int r =
      write_named(q, sqls, 1, tenant, name, v, &n,
                  paused ? "pausing a schedule" : "resuming a schedule", err);

  if (!r && !n)
    r = durin_err_set(err, DURIN_ENOTFOUND,
                      "no schedule '%s' (see 'durin schedule ls')", name);
  return r;
}

static int fire_in_txn(struct durin_store *q,
                       const struct durin_schedule_fire *f,
                       struct durin_err *err)
{
  struct db_stmt *st = NULL;
  const char *tenant = tenant_or_default(f->tenant);
  int r = 0;

  /* The claim. */
  if (db_prepare(q->db,
                 "UPDATE schedules SET next_fire_ms = ?4, last_fire_ms = "
                 "CASE WHEN ?6 = 1 THEN ?3 ELSE last_fire_ms END, "
                 "last_run_id = coalesce(CAST(?5 AS TEXT), last_run_id) "
                 "WHERE tenant = ?1 AND name = ?2 AND next_fire_ms = ?3 AND "
                 "paused = 0",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "claiming a schedule's tick");
  db_bind_text(st, 1, tenant);
  db_bind_text(st, 2, f->name);
  db_bind_int64(st, 3, f->tick_ms);
  db_bind_int64(st, 4, f->next_ms);
  db_bind_text(st, 5, f->run ? f->run->id : NULL);
  db_bind_int64(st, 6, strcmp(f->outcome, "missed") ? 1 : 0);
  if (db_step(st) != DB_DONE) {
    r = durin__sq_fail(q, err, "claiming a schedule's tick");
    goto out;
  }
  if (db_changes(q->db) != 1) {
    r = durin_err_set(err, DURIN_ESTATE,
                      "tick %lld of schedule '%s' was claimed elsewhere",
                      (long long)f->tick_ms, f->name);
    goto out;
  }
  db_finalize(st);
  st = NULL;
  if (f->cancel_run) {
    if (db_prepare(q->db,
                   /* A run nobody holds because it waits (a person, a
                    * timer, a pause) goes back to the queue, so that a
                    * worker takes it, sees the flag and ends it, as
                    * deciding an approval wakes it. */
                   "UPDATE runs SET cancel_requested = 1, status = CASE "
                   "WHEN lease_owner IS NULL AND status IN "
                   "('waiting_approval', 'sleeping', 'paused', "
                   "'needs_human') THEN 'running' ELSE status END, "
                   "updated_ms = ?2 WHERE id = ?1 AND status NOT IN "
                   "('succeeded', 'failed', 'cancelled', 'budget_exceeded')",
                   &st) != DB_OK) {
      r = durin__sq_fail(q, err, "cancelling the previous run");
      goto out;
    }
    db_bind_text(st, 1, f->cancel_run);
    db_bind_int64(st, 2, f->now_ms);
    if (db_step(st) != DB_DONE) {
      r = durin__sq_fail(q, err, "cancelling the previous run");
      goto out;
    }
    db_finalize(st);
    st = NULL;
  }
  if (f->run && (r = durin__sq_run_insert(q, f->run, err)))
    goto out;
  if (db_prepare(q->db,
                 "INSERT INTO schedule_ticks(tenant, name, tick_ms, outcome, "
                 "missed, run_id, at_ms, detail) VALUES(?1, ?2, ?3, ?4, ?5, "
                 "CAST(?6 AS TEXT), ?7, CAST(?8 AS TEXT))",
                 &st) != DB_OK) {
    r = durin__sq_fail(q, err, "recording a schedule's tick");
    goto out;
  }
  db_bind_text(st, 1, tenant);
  db_bind_text(st, 2, f->name);
  db_bind_int64(st, 3, f->tick_ms);
  db_bind_text(st, 4, f->outcome);
  db_bind_int64(st, 5, f->missed);
  db_bind_text(st, 6, f->run ? f->run->id : NULL);
  db_bind_int64(st, 7, f->now_ms);
  db_bind_text(st, 8, f->detail);
  if (db_step(st) != DB_DONE)
    r = durin__sq_fail(q, err, "recording a schedule's tick");
  /* A queued run: idle workers need not wait for their next poll. */
  if (!r && f->run && (f->run->owner == NULL))
    r = durin__sq_notify(q, err);
out:
  db_finalize(st);
  return r;
}

int durin_store_schedule_fire(struct durin_store *q,
                              const struct durin_schedule_fire *f,
                              struct durin_err *err)
{
  int r = durin__sq_begin(q, 0, err);

  if (r)
    return r;
  r = fire_in_txn(q, f, err);
  if (!r)
    durin_fault_point("schedule_fire");
  if (r) {
    durin__sq_exec(q, "ROLLBACK", NULL);
    return r;
  }
  r = durin__sq_exec(q, "COMMIT", err);
  if (!r)
    durin_fault_point("schedule_fired");
  return r;
}

int durin_store_schedule_ticks(struct durin_store *q, const char *tenant,
                               const char *name, int limit,
                               durin_schedule_tick_cb cb, void *arg,
                               struct durin_err *err)
{
  struct db_stmt *st;
  int r = 0, rc;

  if (db_prepare(q->db,
                 "SELECT tick_ms, outcome, missed, run_id, at_ms, detail FROM "
                 "schedule_ticks WHERE tenant = ?1 AND name = ?2 ORDER BY "
                 "tick_ms DESC LIMIT ?3",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "listing a schedule's ticks");
  db_bind_text(st, 1, tenant_or_default(tenant));
  db_bind_text(st, 2, name);
  db_bind_int64(st, 3, limit > 0 ? limit : 50);
  while ((rc = db_step(st)) == DB_ROW) {
    struct durin_schedule_tick t = {
      .tick_ms = db_col_int64(st, 0),
      .outcome = db_col_text(st, 1),
      .missed = db_col_int64(st, 2),
      .run_id = db_col_text(st, 3),
      .at_ms = db_col_int64(st, 4),
      .detail = db_col_text(st, 5),
    };

    if ((r = cb(&t, arg)))
      break;
  }
  if (!r && rc != DB_ROW && rc != DB_DONE)
    r = durin__sq_fail(q, err, "listing a schedule's ticks");
  db_finalize(st);
  return r;
}
