/*
 * The SQLite driver: one file in WAL mode. Durability: synchronous=FULL by
 * default, so a commit that returned is on disk. Writers take the write
 * lock at BEGIN (BEGIN IMMEDIATE), so a fence checked at the start of a
 * transaction holds until its commit, and every writer is exclusive.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "store/db.h"

struct sdb {
  struct db base;
  sqlite3 *h;
  char *path;
  char msg[512];
};

struct sst {
  struct db_stmt base;
  sqlite3_stmt *st;
};

#define SDB(d) ((struct sdb *)(d))
#define SST(s) (((struct sst *)(s))->st)

static int code_of(int rc)
{
  switch (rc) {
  case SQLITE_OK:
    return DB_OK;
  case SQLITE_ROW:
    return DB_ROW;
  case SQLITE_DONE:
    return DB_DONE;
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return DB_BUSY;
  case SQLITE_CONSTRAINT:
    return DB_CONSTRAINT;
  default:
    return DB_ERROR;
  }
}

static void s_close(struct db *d)
{
  sqlite3_close(SDB(d)->h);
  free(SDB(d)->path);
  free(d);
}

static int s_prepare(struct db *d, const char *sql, int persistent,
                     struct db_stmt **out)
{
  struct sst *s = calloc(1, sizeof(*s));
  int rc;

  if (!s)
    return DB_ERROR;
  rc = sqlite3_prepare_v3(SDB(d)->h, sql, -1,
                          persistent ? SQLITE_PREPARE_PERSISTENT : 0, &s->st,
                          NULL);
  if (rc != SQLITE_OK) {
    free(s);
    return code_of(rc);
  }
  s->base.db = d;
  *out = &s->base;
  return DB_OK;
}

/* Text stays the caller's until the statement has stepped (as
 * SQLITE_STATIC): no copy on the hot path. */
static void s_bind_text(struct db_stmt *st, int i, const char *v)
{
  sqlite3_bind_text(SST(st), i, v, -1, SQLITE_STATIC);
}

static void s_bind_int64(struct db_stmt *st, int i, int64_t v)
{
  sqlite3_bind_int64(SST(st), i, v);
}

static void s_bind_double(struct db_stmt *st, int i, double v)
{
  sqlite3_bind_double(SST(st), i, v);
}

static int s_step(struct db_stmt *st)
{
  return code_of(sqlite3_step(SST(st)));
}

static const char *s_col_text(struct db_stmt *st, int i)
{
  return (const char *)sqlite3_column_text(SST(st), i);
}

static int64_t s_col_int64(struct db_stmt *st, int i)
{
  return sqlite3_column_int64(SST(st), i);
}

static double s_col_double(struct db_stmt *st, int i)
{
  return sqlite3_column_double(SST(st), i);
}

static int s_step_deferred(struct db_stmt *st, int64_t *out, int n)
{
  int rc = s_step(st), i;

  for (i = 0; rc == DB_ROW && i < n; i++)
    out[i] = s_col_int64(st, i);
  return rc;
}

static void s_reset(struct db_stmt *st)
{
  sqlite3_reset(SST(st));
}

static void s_clear(struct db_stmt *st)
{
  sqlite3_clear_bindings(SST(st));
}

static void s_finalize(struct db_stmt *st)
{
  sqlite3_finalize(SST(st));
  free(st);
}

static int s_exec(struct db *d, const char *sql)
{
  char *msg = NULL;
  int rc = sqlite3_exec(SDB(d)->h, sql, NULL, NULL, &msg);

  snprintf(SDB(d)->msg, sizeof(SDB(d)->msg), "%s",
           msg ? msg : sqlite3_errstr(rc));
  sqlite3_free(msg);
  return code_of(rc);
}

static int64_t s_changes(struct db *d)
{
  return sqlite3_changes(SDB(d)->h);
}

static int s_errcode(struct db *d)
{
  return code_of(sqlite3_errcode(SDB(d)->h));
}

static const char *s_errmsg(struct db *d)
{
  const char *m = sqlite3_errmsg(SDB(d)->h);

  /* sqlite3_exec's message is the better one right after an exec. */
  return SDB(d)->msg[0] && !strcmp(m, "not an error") ? SDB(d)->msg : m;
}

static int s_begin(struct db *d, int exclusive)
{
  (void)exclusive; /* every SQLite writer is */
  return s_exec(d, "BEGIN IMMEDIATE");
}

static int s_schema_version(struct db *d, int *v)
{
  sqlite3_stmt *st;
  int rc;

  if (sqlite3_prepare_v2(SDB(d)->h, "PRAGMA user_version", -1, &st, NULL))
    return DB_ERROR;
  rc = sqlite3_step(st);
  *v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? DB_OK : code_of(rc);
}

static int s_set_schema_version(struct db *d, int v)
{
  char sql[64];

  snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
  return s_exec(d, sql);
}

static int64_t s_size_bytes(struct db *d)
{
  char wal[4200];
  struct stat st;
  int64_t total = 0;

  if (stat(SDB(d)->path, &st) == 0)
    total += st.st_size;
  snprintf(wal, sizeof(wal), "%s-wal", SDB(d)->path);
  if (stat(wal, &st) == 0)
    total += st.st_size;
  return total;
}

static int s_settle(struct db *d)
{
  (void)d;
  return DB_OK;
}

static int s_notify(struct db *d)
{
  (void)d;
  return DB_OK;
}

static int s_listen_fd(struct db *d, const char *channel)
{
  (void)d;
  (void)channel;
  return -1;
}

static int s_listen_drain(struct db *d,
                          void (*cb)(void *arg, const char *payload), void *arg)
{
  (void)d;
  (void)cb;
  (void)arg;
  return -1;
}

static const struct db_ops sqlite_ops = {
  .name = "sqlite",
  .close = s_close,
  .prepare = s_prepare,
  .bind_text = s_bind_text,
  .bind_int64 = s_bind_int64,
  .bind_double = s_bind_double,
  .step = s_step,
  .step_nowait = s_step,
  .step_deferred = s_step_deferred,
  .col_text = s_col_text,
  .col_int64 = s_col_int64,
  .col_double = s_col_double,
  .reset = s_reset,
  .clear = s_clear,
  .finalize = s_finalize,
  .exec = s_exec,
  .changes = s_changes,
  .errcode = s_errcode,
  .errmsg = s_errmsg,
  .begin = s_begin,
  .schema_version = s_schema_version,
  .set_schema_version = s_set_schema_version,
  .size_bytes = s_size_bytes,
  .settle = s_settle,
  .notify = s_notify,
  .listen_fd = s_listen_fd,
  .listen_drain = s_listen_drain,
};

int db_sqlite_open(const char *path, int sync_full, int busy_timeout_ms,
                   struct db **out, char *msg, size_t len)
{
  struct sdb *d = calloc(1, sizeof(*d));
  char pragmas[256];
  int rc, waited;

  if (!d) {
    snprintf(msg, len, "out of memory");
    return DB_ERROR;
  }
  d->base.ops = &sqlite_ops;
  d->path = strdup(path);
  rc = sqlite3_open_v2(
      path, &d->h,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    snprintf(msg, len, "%s", d->h ? sqlite3_errmsg(d->h) : "out of memory");
    s_close(&d->base);
    return DB_ERROR;
  }
  sqlite3_extended_result_codes(d->h, 0);
  sqlite3_busy_timeout(d->h, busy_timeout_ms);
  snprintf(pragmas, sizeof(pragmas),
           "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; "
           "PRAGMA foreign_keys=ON;",
           sync_full ? "FULL" : "NORMAL");
  /* Two processes opening a new file at once (a worker and `durin
   * submit`) can find it locked while the other switches it to WAL, a
   * lock the busy handler is not asked about: wait for it as for any. */
  for (waited = 0;
       (rc = s_exec(&d->base, pragmas)) == DB_BUSY && waited < busy_timeout_ms;
       waited += 20)
    usleep(20000);
  if (rc != DB_OK) {
    snprintf(msg, len, "%s", d->msg);
    s_close(&d->base);
    return rc;
  }
  *out = &d->base;
  return DB_OK;
}
