/*
 * The vault's rows (include/durin/store.h, lib/secret/secret.c): sealed
 * values keyed by tenant and name. The store never sees a plaintext
 * value or the master key; a listing does not even read the sealed ones.
 * A write is conditional on the version its writer read, so two
 * rotations at once cannot both land on the same version.
 */
#include <stdlib.h>
#include <string.h>

#include "store/sql-int.h"

void durin_secret_row_clear(struct durin_secret_row *r)
{
  if (!r)
    return;
  free(r->tenant);
  free(r->name);
  free(r->scope);
  free(r->key_id);
  free(r->nonce);
  free(r->ciphertext);
  free(r->created_by);
  memset(r, 0, sizeof(*r));
}

int durin_store_secret_put(struct durin_store *q,
                           const struct durin_secret_row *row, int64_t prev,
                           struct durin_err *err)
{
  struct db_stmt *st;
  int rc;

  /* Parameters are numbered without gaps, and a text one that may be
   * NULL is cast: PostgreSQL must infer every parameter's type. */
  if (db_prepare(q->db,
                 prev ? "UPDATE secrets SET scope = coalesce(CAST(?3 AS TEXT), "
                        "scope), key_id = ?4, nonce = ?5, ciphertext = ?6, "
                        "version = ?7, updated_ms = ?8 WHERE tenant = ?1 AND "
                        "name = ?2 AND version = ?9" :
                        "INSERT INTO secrets(tenant, name, scope, key_id, "
                        "nonce, ciphertext, version, updated_ms, created_ms, "
                        "created_by) VALUES(?1, ?2, CAST(?3 AS TEXT), ?4, ?5, "
                        "?6, ?7, ?8, ?9, CAST(?10 AS TEXT)) ON "
                        "CONFLICT(tenant, name) DO NOTHING",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "writing a secret");
  db_bind_text(st, 1, row->tenant);
  db_bind_text(st, 2, row->name);
  db_bind_text(st, 3, row->scope);
  db_bind_text(st, 4, row->key_id);
  db_bind_text(st, 5, row->nonce);
  db_bind_text(st, 6, row->ciphertext);
  db_bind_int64(st, 7, row->version);
  db_bind_int64(st, 8, row->updated_ms);
  if (prev) {
    db_bind_int64(st, 9, prev);
  } else {
    db_bind_int64(st, 9, row->created_ms);
    db_bind_text(st, 10, row->created_by);
  }
  rc = db_step(st);
  db_finalize(st);
  if (rc != DB_DONE)
    return durin__sq_fail(q, err, "writing a secret");
  if (db_changes(q->db) != 1)
    return durin_err_set(err, DURIN_EBUSY,
                         "secret '%s' was changed by another writer meanwhile",
                         row->name);
  return 0;
}

#define SECRET_META \
 "tenant, name, scope, key_id, version, created_ms, updated_ms, created_by"

static void row_read(struct db_stmt *st, struct durin_secret_row *r)
{
  memset(r, 0, sizeof(*r));
  r->tenant = durin__sq_col_dup(st, 0);
  r->name = durin__sq_col_dup(st, 1);
  r->scope = durin__sq_col_dup(st, 2);
  r->key_id = durin__sq_col_dup(st, 3);
  r->version = db_col_int64(st, 4);
  r->created_ms = db_col_int64(st, 5);
  r->updated_ms = db_col_int64(st, 6);
  r->created_by = durin__sq_col_dup(st, 7);
}

int durin_store_secret_get(struct durin_store *q, const char *tenant,
                           const char *name, struct durin_secret_row *out,
                           struct durin_err *err)
{
  struct db_stmt *st;
  int rc;

  memset(out, 0, sizeof(*out));
  if (db_prepare(q->db,
                 "SELECT " SECRET_META ", nonce, ciphertext FROM secrets "
                 "WHERE tenant = ?1 AND name = ?2",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "reading a secret");
  db_bind_text(st, 1, tenant);
  db_bind_text(st, 2, name);
  rc = db_step(st);
  if (rc == DB_ROW) {
    row_read(st, out);
    out->nonce = durin__sq_col_dup(st, 8);
    out->ciphertext = durin__sq_col_dup(st, 9);
  }
  db_finalize(st);
  if (rc == DB_DONE)
    return durin_err_set(err, DURIN_ENOTFOUND, "no secret '%s' in tenant '%s'",
                         name, tenant);
  if (rc != DB_ROW)
    return durin__sq_fail(q, err, "reading a secret");
  return 0;
}

int durin_store_secret_list(struct durin_store *q, const char *tenant,
                            durin_secret_row_cb cb, void *arg,
                            struct durin_err *err)
{
  struct db_stmt *st;
  int r = 0, rc;

  if (db_prepare(q->db,
                 "SELECT " SECRET_META " FROM secrets WHERE CAST(?1 AS TEXT) "
                 "IS NULL OR tenant = ?1 ORDER BY tenant, name",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "listing secrets");
  db_bind_text(st, 1, tenant);
  while (!r && (rc = db_step(st)) == DB_ROW) {
    struct durin_secret_row row;

    row_read(st, &row);
    r = cb(&row, arg);
    durin_secret_row_clear(&row);
  }
  if (!r && rc != DB_DONE)
    r = durin__sq_fail(q, err, "listing secrets");
  db_finalize(st);
  return r;
}

int durin_store_secret_delete(struct durin_store *q, const char *tenant,
                              const char *name, struct durin_err *err)
{
  struct db_stmt *st;
  int rc;

  if (db_prepare(q->db, "DELETE FROM secrets WHERE tenant = ?1 AND name = ?2",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "deleting a secret");
  db_bind_text(st, 1, tenant);
  db_bind_text(st, 2, name);
  rc = db_step(st);
  db_finalize(st);
  if (rc != DB_DONE)
    return durin__sq_fail(q, err, "deleting a secret");
  if (db_changes(q->db) != 1)
    return durin_err_set(err, DURIN_ENOTFOUND, "no secret '%s' in tenant '%s'",
                         name, tenant);
  return 0;
}
