/*
 * Inbound triggers' rows (include/durin/store.h, server/triggers.c): the
 * definitions, and every delivery received. A delivery that starts a run
 * is written by durin__sq_run_extras in the run's own transaction, so the
 * unique index over (trigger, delivery) where a run is named makes a
 * redelivery, however many servers race on it, find the one run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sql-int.h"

void durin_trigger_def_clear(struct durin_trigger_def *t)
{
  if (!t)
    return;
  free(t->name);
  free(t->tenant);
  free(t->kind);
  free(t->secret);
  free(t->config);
  free(t->spec);
  free(t->untrusted_spec);
  free(t->created_by);
  memset(t, 0, sizeof(t[0]));
}

#define TRIGGER_COLS                                                      \
 "name, tenant, kind, secret, config, spec, untrusted_spec, created_ms, " \
 "created_by"

static void row_to_def(struct db_stmt *st, struct durin_trigger_def *t)
{
  t->name = durin__sq_col_dup(st, 0);
  t->tenant = durin__sq_col_dup(st, 1);
  t->kind = durin__sq_col_dup(st, 2);
  t->secret = durin__sq_col_dup(st, 3);
  t->config = durin__sq_col_dup(st, 4);
  t->spec = durin__sq_col_dup(st, 5);
  t->untrusted_spec = durin__sq_col_dup(st, 6);
  t->created_ms = db_col_int64(st, 7);
  t->created_by = durin__sq_col_dup(st, 8);
}

int durin_store_trigger_add(struct durin_store *q,
                            const struct durin_trigger_def *t,
                            struct durin_err *err)
{
  struct db_stmt *st;
  int rc;

  if (db_prepare(q->db,
                 "INSERT INTO triggers(" TRIGGER_COLS ") VALUES(?1, ?2, ?3, "
                 "?4, ?5, ?6, CAST(?7 AS TEXT), ?8, CAST(?9 AS TEXT)) ON "
                 "CONFLICT(name) DO NOTHING",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "adding a trigger");
  db_bind_text(st, 1, t->name);
  db_bind_text(st, 2, t->tenant ? t->tenant : "default");
  db_bind_text(st, 3, t->kind);
  db_bind_text(st, 4, t->secret);
  db_bind_text(st, 5, t->config);
  db_bind_text(st, 6, t->spec);
  db_bind_text(st, 7, t->untrusted_spec);
  db_bind_int64(st, 8, t->created_ms);
  db_bind_text(st, 9, t->created_by);
  rc = db_step(st);
  db_finalize(st);
  if (rc != DB_DONE)
    return durin__sq_fail(q, err, "adding a trigger");
  if (db_changes(q->db) == 0)
    return durin_err_set(err, DURIN_EEXIST,
                         "a trigger named '%s' exists already (remove it "
                         "first with 'durin trigger rm %s', or pick "
                         "another name)",
                         t->name, t->name);
  return 0;
}

int durin_store_trigger_get(struct durin_store *q, const char *name,
                            struct durin_trigger_def *out,
                            struct durin_err *err)
{
  struct db_stmt *st;
  int rc;

  if (db_prepare(q->db, "SELECT " TRIGGER_COLS " FROM triggers WHERE name = ?1",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "reading a trigger");
  db_bind_text(st, 1, name);
  rc = db_step(st);
  if (rc == DB_ROW) {
    row_to_def(st, out);
    db_finalize(st);
    return 0;
  }
  db_finalize(st);
  if (rc != DB_DONE)
    return durin__sq_fail(q, err, "reading a trigger");
  return durin_err_set(err, DURIN_ENOTFOUND,
                       "no trigger '%s' (list them with 'durin trigger ls')",
                       name);
}

int durin_store_trigger_list(struct durin_store *q, const char *tenant,
                             durin_trigger_def_cb cb, void *arg,
                             struct durin_err *err)
{
  struct db_stmt *st;
  int rc, r = 0;

  if (db_prepare(q->db,
                 "SELECT " TRIGGER_COLS " FROM triggers WHERE CAST(?1 AS "
                 "TEXT) IS NULL OR tenant = ?1 ORDER BY name",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "listing triggers");
  db_bind_text(st, 1, tenant);
  while ((rc = db_step(st)) == DB_ROW) {
    struct durin_trigger_def t;

    memset(&t, 0, sizeof(t));
    row_to_def(st, &t);
    r = cb(&t, arg);
    durin_trigger_def_clear(&t);
    if (r)
      break;
  }
  if (!r && rc != DB_DONE)
    r = durin__sq_fail(q, err, "listing triggers");
  db_finalize(st);
  return r;
}

int durin_store_trigger_delete(struct durin_store *q, const char *tenant,
                               const char *name, struct durin_err *err)
{
  struct db_stmt *st = NULL;
  int r;

  if ((r = durin__sq_begin(q, 0, err)))
    return r;
  if (db_prepare(q->db,
                 "DELETE FROM triggers WHERE name = ?1 AND (CAST(?2 AS TEXT) "
                 "IS NULL OR tenant = ?2)",
                 &st) != DB_OK) {
    r = durin__sq_fail(q, err, "removing a trigger");
    goto out;
  }
  db_bind_text(st, 1, name);
  db_bind_text(st, 2, tenant);
  if ((r = durin__sq_step_done(q, st, "removing a trigger", err)))
    goto out;
  db_finalize(st);
  st = NULL;
  if (db_changes(q->db) == 0) {
    r = durin_err_set(err, DURIN_ENOTFOUND,
                      "no trigger '%s' (list them with 'durin trigger ls')",
                      name);
    goto out;
  }
  /* A new trigger of the name starts with no history to dedupe on. */
  if (db_prepare(q->db,
                 "DELETE FROM trigger_deliveries WHERE trigger_name = ?1",
                 &st) != DB_OK) {
    r = durin__sq_fail(q, err, "removing a trigger");
    goto out;
  }
  db_bind_text(st, 1, name);
  r = durin__sq_step_done(q, st, "removing a trigger", err);
out:
  db_finalize(st);
  if (r) {
    durin__sq_exec(q, "ROLLBACK", NULL);
    return r;
  }
  return durin__sq_exec(q, "COMMIT", err);
}

/* Inserts d (on the open transaction, if any). A delivery that names a
 * run it already started is DURIN_EEXIST. */
int durin__sq_delivery_insert(struct durin_store *q,
                              const struct durin_trigger_delivery *d,
                              struct durin_err *err)
{
  struct db_stmt *st;
  int rc;

  if (db_prepare(q->db,
                 "INSERT INTO trigger_deliveries(trigger_name, delivery, "
                 "received_ms, event, outcome, reason, run_id, sender, "
                 "association, body_sha256) VALUES(?1, ?2, ?3, CAST(?4 AS "
                 "TEXT), ?5, CAST(?6 AS TEXT), CAST(?7 AS TEXT), CAST(?8 AS "
                 "TEXT), CAST(?9 AS TEXT), CAST(?10 AS TEXT))",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "recording a delivery");
  db_bind_text(st, 1, d->trigger);
  db_bind_text(st, 2, d->delivery ? d->delivery : "");
  db_bind_int64(st, 3, d->received_ms);
  db_bind_text(st, 4, d->event);
  db_bind_text(st, 5, d->outcome);
  db_bind_text(st, 6, d->reason);
  db_bind_text(st, 7, d->run_id);
  db_bind_text(st, 8, d->sender);
  db_bind_text(st, 9, d->association);
  db_bind_text(st, 10, d->body_sha256);
  rc = db_step(st);
  db_finalize(st);
  if (rc == DB_CONSTRAINT)
    return durin_err_set(err, DURIN_EEXIST,
                         "delivery '%s' of trigger '%s' started a run already",
                         d->delivery, d->trigger);
  if (rc != DB_DONE)
    return durin__sq_fail(q, err, "recording a delivery");
  return 0;
}

int durin_store_delivery_add(struct durin_store *q,
                             const struct durin_trigger_delivery *d,
                             struct durin_err *err)
{
  return durin__sq_delivery_insert(q, d, err);
}

/* The run and delivery of the first delivery of trigger whose column
 * (sql's ?2) is key and that started a run; DURIN_ENOTFOUND if none. */
static int delivery_lookup(struct durin_store *q, const char *sql,
                           const char *trigger, const char *key,
                           char run_id[32], char *delivery, size_t dlen,
                           struct durin_err *err)
{
  struct db_stmt *st;
  int rc;

  if (db_prepare(q->db, sql, &st) != DB_OK)
    return durin__sq_fail(q, err, "reading a delivery");
  db_bind_text(st, 1, trigger);
  db_bind_text(st, 2, key);
  rc = db_step(st);
  if (rc == DB_ROW) {
    const char *id = db_col_text(st, 0), *dv = db_col_text(st, 1);

    snprintf(run_id, 32, "%s", id ? id : "");
    if (delivery)
      snprintf(delivery, dlen, "%s", dv ? dv : "");
    db_finalize(st);
    return 0;
  }
  db_finalize(st);
  if (rc != DB_DONE)
    return durin__sq_fail(q, err, "reading a delivery");
  return durin_err_set(err, DURIN_ENOTFOUND,
                       "no such delivery of trigger '%s' started a run",
                       trigger);
}

int durin_store_delivery_run(struct durin_store *q, const char *trigger,
                             const char *delivery, char run_id[32],
                             struct durin_err *err)
{
  return delivery_lookup(q,
                         "SELECT run_id, delivery FROM trigger_deliveries "
                         "WHERE trigger_name = ?1 AND delivery = ?2 AND "
                         "run_id IS NOT NULL",
                         trigger, delivery, run_id, NULL, 0, err);
}

int durin_store_delivery_run_by_body(struct durin_store *q, const char *trigger,
                                     const char *body_sha256, char run_id[32],
                                     char delivery[128], struct durin_err *err)
{
  return delivery_lookup(q,
                         "SELECT run_id, delivery FROM trigger_deliveries "
                         "WHERE trigger_name = ?1 AND body_sha256 = ?2 AND "
                         "run_id IS NOT NULL ORDER BY received_ms LIMIT 1",
                         trigger, body_sha256, run_id, delivery, 128, err);
}

int durin_store_delivery_list(struct durin_store *q, const char *trigger,
                              int limit, durin_trigger_delivery_cb cb,
                              void *arg, struct durin_err *err)
{
  struct db_stmt *st;
  int rc, r = 0;

  if (db_prepare(q->db,
                 "SELECT trigger_name, delivery, received_ms, event, outcome, "
                 "reason, run_id, sender, association, body_sha256 FROM "
                 "trigger_deliveries WHERE trigger_name = ?1 ORDER BY "
                 "received_ms DESC LIMIT ?2",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "listing deliveries");
  db_bind_text(st, 1, trigger);
  db_bind_int64(st, 2, limit > 0 ? limit : 100);
  while ((rc = db_step(st)) == DB_ROW) {
    struct durin_trigger_delivery d;

    d.trigger = db_col_text(st, 0);
    d.delivery = db_col_text(st, 1);
    d.received_ms = db_col_int64(st, 2);
    d.event = db_col_text(st, 3);
    d.outcome = db_col_text(st, 4);
    d.reason = db_col_text(st, 5);
    d.run_id = db_col_text(st, 6);
    d.sender = db_col_text(st, 7);
    d.association = db_col_text(st, 8);
    d.body_sha256 = db_col_text(st, 9);
    if ((r = cb(&d, arg)))
      break;
  }
  if (!r && rc != DB_DONE)
    r = durin__sq_fail(q, err, "listing deliveries");
  db_finalize(st);
  return r;
}
