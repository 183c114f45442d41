/*
 * The SQL databases the store runs on, behind one small statement
 * interface shaped like SQLite's (prepare, bind, step, column), so the
 * store's logic (sql-*.c) is written once for SQLite and PostgreSQL, like
 * a VFS below sqlite or git's ref backends below refs.c.
 *
 * SQL text uses numbered parameters (?1, ?2, ...) and the subset both
 * engines share: RETURNING, ON CONFLICT, partial indexes, CAST. What still
 * differs (how a writer takes the write lock, schema versions, size) is a
 * driver method.
 *
 * Threads: a struct db is used by one thread at a time.
 */
#ifndef DURIN_STORE_DB_H
#define DURIN_STORE_DB_H

#include <stdint.h>

/* What db_step() returns besides errors. */
enum {
  DB_OK = 0,
  DB_ROW = 100,
  DB_DONE = 101,
  DB_ERROR = 1,
  DB_BUSY = 5,        /* locked, or a serialization failure: try again */
  DB_CONSTRAINT = 19, /* a unique or check constraint */
  DB_GONE = 26,       /* the connection to the server is lost */
  DB_FENCED = 27,     /* a fence checked by the server failed */
  DB_MISUSE = 21,     /* refused before asking the server (the message says) */
};

struct db;
struct db_stmt;

struct db_ops {
  const char *name; /* "sqlite", "postgres" */
  void (*close)(struct db *db);
  int (*prepare)(struct db *db, const char *sql, int persistent,
                 struct db_stmt **out);
  void (*bind_text)(struct db_stmt *st, int i, const char *v);
  void (*bind_int64)(struct db_stmt *st, int i, int64_t v);
  void (*bind_double)(struct db_stmt *st, int i, double v);
  int (*step)(struct db_stmt *st);
  /* Inside a transaction, for a statement whose rows and count nobody
   * reads: it may be sent without waiting for its result (PostgreSQL's
   * pipeline mode), and a failure then fails the transaction's later
   * statements and its COMMIT. Returns DB_DONE or an error. */
  int (*step_nowait)(struct db_stmt *st);
  /* The same, for a statement whose first row the caller wants: out[0..n)
   * receive its first n columns (integers) by the transaction's next
   * answered statement or its COMMIT at the latest (at once on SQLite),
   * and are left alone if there is no row. out must stay valid until
   * then. */
  int (*step_deferred)(struct db_stmt *st, int64_t *out, int n);
  const char *(*col_text)(struct db_stmt *st, int i);
  int64_t (*col_int64)(struct db_stmt *st, int i);
  double (*col_double)(struct db_stmt *st, int i);
  void (*reset)(struct db_stmt *st); /* keeps the bindings */
  void (*clear)(struct db_stmt *st); /* forgets them */
  void (*finalize)(struct db_stmt *st);
  int (*exec)(struct db *db, const char *sql); /* several statements */
  int64_t (*changes)(struct db *db);           /* rows the last one changed */
  int (*errcode)(struct db *db);
  const char *(*errmsg)(struct db *db);
  /* BEGIN for a writer; exclusive: also serialize with every other
   * exclusive writer (claims, the watchdog) until COMMIT. */
  int (*begin)(struct db *db, int exclusive);
  int (*schema_version)(struct db *db, int *v);
  int (*set_schema_version)(struct db *db, int v);
  int64_t (*size_bytes)(struct db *db);
  /* After a lost connection: makes sure its session can no longer
   * commit anything (ended on the server, gone). DB_OK once it is, DB_BUSY
   * while it is not yet, DB_GONE while the server cannot be reached.
   * SQLite: DB_OK. */
  int (*settle)(struct db *db);
  /* Tells every listener that work may be ready, at this transaction's
   * commit (PostgreSQL NOTIFY); a no-op where there are none. */
  int (*notify)(struct db *db);
  /* A separate connection that listens on channel ("durin_work" for
   * workers, "durin_events" for event streams; one channel per
   * connection): its descriptor, or -1 if this database has none
   * (SQLite: workers poll, streams are woken in-process). */
  int (*listen_fd)(struct db *db, const char *channel);
  /* Consumes what arrived on it, passing each payload to cb (may be
   * NULL): how many signals, or -1 if it broke (it is reopened by the
   * next listen_fd). */
  int (*listen_drain)(struct db *db, void (*cb)(void *arg, const char *payload),
                      void *arg);
};

struct db {
  const struct db_ops *ops;
};

struct db_stmt {
  struct db *db;
};

/* Opening: path for SQLite (with its pragmas), a libpq URL for Postgres.
 * Return DB_OK or fill msg. */
int db_sqlite_open(const char *path, int sync_full, int busy_timeout_ms,
                   struct db **out, char *msg, size_t len);
int db_pg_open(const char *url, struct db **out, char *msg, size_t len);

static inline int db_prepare(struct db *db, const char *sql,
                             struct db_stmt **out)
{
  return db->ops->prepare(db, sql, 0, out);
}
static inline int db_prepare_persistent(struct db *db, const char *sql,
                                        struct db_stmt **out)
{
  return db->ops->prepare(db, sql, 1, out);
}
static inline void db_bind_text(struct db_stmt *st, int i, const char *v)
{
  st->db->ops->bind_text(st, i, v);
}
static inline void db_bind_int64(struct db_stmt *st, int i, int64_t v)
{
  st->db->ops->bind_int64(st, i, v);
}
static inline void db_bind_double(struct db_stmt *st, int i, double v)
{
  st->db->ops->bind_double(st, i, v);
}
static inline int db_step(struct db_stmt *st)
{
  return st->db->ops->step(st);
}
static inline int db_step_nowait(struct db_stmt *st)
{
  return st->db->ops->step_nowait(st);
}
static inline int db_step_deferred(struct db_stmt *st, int64_t *out, int n)
{
  return st->db->ops->step_deferred(st, out, n);
}
static inline const char *db_col_text(struct db_stmt *st, int i)
{
  return st->db->ops->col_text(st, i);
}
static inline int64_t db_col_int64(struct db_stmt *st, int i)
{
  return st->db->ops->col_int64(st, i);
}
static inline int db_col_int(struct db_stmt *st, int i)
{
  return (int)st->db->ops->col_int64(st, i);
}
static inline double db_col_double(struct db_stmt *st, int i)
{
  return st->db->ops->col_double(st, i);
}
static inline void db_reset(struct db_stmt *st)
{
  st->db->ops->reset(st);
}
static inline void db_clear(struct db_stmt *st)
{
  st->db->ops->clear(st);
}
static inline void db_finalize(struct db_stmt *st)
{
  if (st)
    st->db->ops->finalize(st);
}
static inline int db_exec(struct db *db, const char *sql)
{
  return db->ops->exec(db, sql);
}
static inline int64_t db_changes(struct db *db)
{
  return db->ops->changes(db);
}
static inline int db_errcode(struct db *db)
{
  return db->ops->errcode(db);
}
static inline const char *db_errmsg(struct db *db)
{
  return db->ops->errmsg(db);
}

#endif
