/*
 * The PostgreSQL driver (libpq). Statements are sent with PQexecParams,
 * typed from their bindings (text, int8, float8; NULL untyped), with the
 * ?N parameters rewritten to $N. Rows come back whole and are stepped
 * through here.
 *
 * Writers: READ COMMITTED, and the fence is a conditional UPDATE, so its
 * row lock holds to COMMIT and a claimer that moves the epoch waits for it.
 * Exclusive writers (claims, the watchdog) also take one transaction-level
 * advisory lock, the counterpart of SQLite's single writer.
 *
 * A lost connection fails the statement in flight (DB_GONE) and, outside a
 * transaction, is re-established before the next one, with backoff; the
 * callers' fencing makes a retried step safe.
 *
 * A transaction runs in libpq's pipeline mode from its BEGIN to its
 * COMMIT, both queued: statements whose results nobody reads (a step's
 * events, checkpoint, run row: db_step_nowait) or whose values may come
 * later (db_step_deferred) never wait; their results are read with the
 * next statement that must be answered or at COMMIT. With the fence
 * checked by the server (durin_fence()), a step is one round trip. If a
 * statement failed, the transaction is poisoned: every later statement
 * and the COMMIT fail with that error, and nothing of it is durable; no
 * caller is ever told a write landed that did not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/socket.h>

#include <libpq-fe.h>

#include "durin/util.h"
#include "store/db.h"

#define MAXP       64
#define CLAIM_LOCK "4242001"
#define NCACHE     256 /* statements kept prepared per connection */

struct pdb {
  struct db base;
  PGconn *c;
  PGconn *lc; /* LISTEN on lchan: workers waiting for work, streams */
  char lchan[32];
  char *url;
  char msg[600];
  int code;
  int64_t changes;
  int64_t retry_at_ms; /* no reconnect before this (backoff) */
  /* The session's server process (pid and start: pids are reused), and
   * the lost one's. */
  int pid, lost_pid;
  char started[64], lost_started[64];
  int backoff_ms;
  /* Statements prepared on this connection, by a hash of their text and
   * parameter types: parsed and planned once, not at every step. */
  uint64_t cache[NCACHE];
  int ncache;
  /* The transaction in progress and its pipeline. */
  int txn;      /* between BEGIN and COMMIT/ROLLBACK */
  int pipe;     /* in pipeline mode */
  int poisoned; /* a pipelined statement failed: code and msg say how */
  /* Results sent for and not yet read, oldest at head: where each one's
   * first row goes (out NULL: nowhere). */
  struct want {
    int64_t *out;
    int n;
  } * want;
  int head, nwant, awant;
};

struct pst {
  struct db_stmt base;
  char *sql;
  uint64_t hash; /* of sql, for the session's statement cache */
  int n;         /* highest parameter number */
  const char *v[MAXP];
  char num[MAXP][32];
  Oid type[MAXP];
  PGresult *res;
  int row, nrows, ran;
};

#define PDB(d) ((struct pdb *)(d))
#define PST(s) ((struct pst *)(s))

static int64_t mono_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_msg(struct pdb *d, int code, const char *m)
{
  size_t n;

  d->code = code;
  snprintf(d->msg, sizeof(d->msg), "%s", m ? m : "unknown error");
  n = strlen(d->msg);
  while (n && (d->msg[n - 1] == '\n' || d->msg[n - 1] == ' '))
    d->msg[--n] = '\0';
}

/*
 * A process stopped inside a transaction (SIGSTOP, a debugger, a frozen
 * VM) would hold its locks for as long as its connection lives, and the
 * claim lock would stop every worker. The server ends such a session
 * after 10 s idle in a transaction; its transaction rolls back, and the
 * fence keeps the process out when it wakes. durin's own transactions
 * never wait on anything but the database.
 */
static void session_init(struct pdb *d)
{
  PGresult *r = PQexec(
      d->c, "SELECT set_config('idle_in_transaction_session_timeout', '10s', "
            "false), CAST(backend_start AS TEXT) FROM pg_stat_activity "
            "WHERE pid = pg_backend_pid()");

  d->pid = PQbackendPID(d->c);
  d->started[0] = '\0';
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
    snprintf(d->started, sizeof(d->started), "%s", PQgetvalue(r, 0, 1));
  PQclear(r);
}

/* Reconnects a lost connection, at most once per backoff period (50 ms,
 * doubling to 2 s), so a restarting server is not hammered. */
static int alive(struct pdb *d)
{
  int64_t now;

  if (PQstatus(d->c) == CONNECTION_OK)
    return 1;
  /* Never inside a transaction: what it wrote died with the session,
   * and the rest must not land on a new one outside it. Only its
   * ROLLBACK (which ends it here) reconnects. */
  if (d->txn) {
    set_msg(d, DB_GONE,
            "the connection to PostgreSQL was lost inside a "
            "transaction; nothing of it was committed");
    return 0;
  }
  now = mono_ms();
  if (now < d->retry_at_ms) {
    set_msg(d, DB_GONE, "the PostgreSQL server is unreachable; retrying");
    return 0;
  }
  if (d->pid) {
    d->lost_pid = d->pid;
    memcpy(d->lost_started, d->started, sizeof(d->started));
  }
  d->pid = 0;
  PQreset(d->c);
  d->ncache = 0; /* a new session has none prepared */
  if (PQstatus(d->c) == CONNECTION_OK) {
    session_init(d);
    d->backoff_ms = 0;
    return 1;
  }
  d->backoff_ms = d->backoff_ms ? d->backoff_ms * 2 : 50;
  if (d->backoff_ms > 2000)
    d->backoff_ms = 2000;
  d->retry_at_ms = now + d->backoff_ms;
  set_msg(d, DB_GONE, PQerrorMessage(d->c));
  return 0;
}

/* Maps a failed result to a DB_ code, remembering its message. */
static int failed(struct pdb *d, PGresult *res)
{
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  int code = DB_ERROR;

  if (PQstatus(d->c) != CONNECTION_OK)
    code = DB_GONE;
  else if (state && !strncmp(state, "23", 2))
    code = DB_CONSTRAINT;
  else if (state && !strcmp(state, "DU001"))
    code = DB_FENCED;
  else if (state && (!strcmp(state, "40001") || !strcmp(state, "40P01") ||
                     !strcmp(state, "55P03") || !strcmp(state, "DU002")))
    code = DB_BUSY;
  set_msg(d, code, res ? PQresultErrorMessage(res) : PQerrorMessage(d->c));
  return code;
}

static void p_close(struct db *db)
{
  PQfinish(PDB(db)->lc);
  PQfinish(PDB(db)->c);
  free(PDB(db)->want);
  free(PDB(db)->url);
  free(db);
}

/* ?N becomes $N outside quotes; the highest N is the parameter count. */
static char *translate(const char *sql, int *n)
{
  char *out = malloc(strlen(sql) + 1), *o = out;
  int quote = 0;

  *n = 0;
  if (!out)
    return NULL;
  for (; *sql; sql++) {
    if (*sql == '\'')
      quote = !quote;
    if (!quote && *sql == '?' && sql[1] >= '0' && sql[1] <= '9') {
      int k = atoi(sql + 1);

      if (k > *n)
        *n = k;
      *o++ = '$';
      continue;
    }
    *o++ = *sql;
  }
  *o = '\0';
  return out;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
  const unsigned char *b = p;

  while (n--)
    h = (h ^ *b++) * 1099511628211ull;
  return h;
}

static int p_prepare(struct db *db, const char *sql, int persistent,
                     struct db_stmt **out)
{
  struct pst *s = calloc(1, sizeof(*s));

  (void)persistent;
  if (!s)
    return DB_ERROR;
  s->sql = translate(sql, &s->n);
  if (!s->sql || s->n > MAXP) {
    free(s->sql);
    free(s);
    set_msg(PDB(db), DB_ERROR, "statement has too many parameters");
    return DB_ERROR;
  }
  s->hash = fnv(14695981039346656037ull, s->sql, strlen(s->sql));
  s->base.db = db;
  *out = &s->base;
  return DB_OK;
}

static void p_bind_text(struct db_stmt *st, int i, const char *v)
{
  if (i < 1 || i > MAXP)
    return;
  PST(st)->v[i - 1] = v;
  PST(st)->type[i - 1] = v ? 25 : 0; /* text */
}

static void p_bind_int64(struct db_stmt *st, int i, int64_t v)
{
  if (i < 1 || i > MAXP)
    return;
  snprintf(PST(st)->num[i - 1], 32, "%lld", (long long)v);
  PST(st)->v[i - 1] = PST(st)->num[i - 1];
  PST(st)->type[i - 1] = 20; /* int8 */
}

static void p_bind_double(struct db_stmt *st, int i, double v)
{
  if (i < 1 || i > MAXP)
    return;
  snprintf(PST(st)->num[i - 1], 32, "%.17g", v);
  PST(st)->v[i - 1] = PST(st)->num[i - 1];
  PST(st)->type[i - 1] = 701; /* float8 */
}

/* The prepared statement's name for s: 1 if this session has it, 0 if
 * the caller is to prepare it now, -1 if the cache is full (unnamed). */
static int cached(struct pdb *d, struct pst *s, char name[32])
{
  uint64_t key = fnv(s->hash, s->type, sizeof(s->type[0]) * (size_t)s->n);
  int i;

  snprintf(name, 32, "d%016llx", (unsigned long long)key);
  for (i = 0; i < d->ncache && d->cache[i] != key; i++)
    ;
  if (i < d->ncache)
    return 1;
  if (d->ncache == NCACHE)
    return -1;
  d->cache[d->ncache++] = key; /* the caller prepares it now */
  return 0;
}

/* Remembers that one more result is coming, and where its first row's
 * first n values go. */
static int expect(struct pdb *d, int64_t *out, int n)
{
  if (d->nwant == d->awant) {
    int a = d->awant ? d->awant * 2 : 32;
    struct want *w = realloc(d->want, (size_t)a * sizeof(*w));

    if (!w)
      return -1;
    d->want = w;
    d->awant = a;
  }
  d->want[d->nwant].out = out;
  d->want[d->nwant++].n = n;
  return 0;
}

/* The first row's first n columns, as integers. */
static void first_row(PGresult *r, int64_t *out, int n)
{
  int i;

  for (i = 0; i < n && i < PQnfields(r); i++)
    out[i] = PQgetisnull(r, 0, i) ? 0 : strtoll(PQgetvalue(r, 0, i), NULL, 10);
}

/* Reads the queued results but the last keep; the first failure poisons
 * the transaction. */
static void drain(struct pdb *d, int keep)
{
  PGresult *r;

  while (d->head < d->nwant - keep) {
    struct want w = d->want[d->head++];

    while ((r = PQgetResult(d->c))) {
      ExecStatusType es = PQresultStatus(r);

      if (es == PGRES_FATAL_ERROR && !d->poisoned) {
        d->poisoned = 1;
        failed(d, r);
      } else if (es == PGRES_TUPLES_OK && w.out && PQntuples(r) > 0) {
        first_row(r, w.out, w.n);
      }
      PQclear(r);
    }
    if (PQstatus(d->c) != CONNECTION_OK && !d->poisoned) {
      d->poisoned = 1;
      set_msg(d, DB_GONE, PQerrorMessage(d->c));
    }
  }
  if (d->head == d->nwant)
    d->head = d->nwant = 0;
}

static int enter_pipe(struct pdb *d)
{
  if (!d->pipe) {
    if (!PQenterPipelineMode(d->c))
      return -1;
    d->pipe = 1;
  }
  return 0;
}

/* Queues SQL text without parameters (BEGIN, a savepoint, COMMIT). */
static int queue_plain(struct pdb *d, const char *sql)
{
  if (enter_pipe(d) ||
      !PQsendQueryParams(d->c, sql, 0, NULL, NULL, NULL, NULL, 0))
    return -1;
  return expect(d, NULL, 0);
}

/* Queues s (and its PREPARE the first time) in the pipeline; out, if not
 * NULL, receives its first value when it is read. */
static int queue(struct pdb *d, struct pst *s, int64_t *out, int nout)
{
  char name[32];

  if (enter_pipe(d))
    return -1;
  switch (cached(d, s, name)) {
  case -1:
    if (!PQsendQueryParams(d->c, s->sql, s->n, s->type, s->v, NULL, NULL, 0))
      return -1;
    return expect(d, out, nout);
  case 0:
    if (!PQsendPrepare(d->c, name, s->sql, s->n, s->type) || expect(d, NULL, 0))
      return -1;
    break;
  default:
    break;
  }
  if (!PQsendQueryPrepared(d->c, name, s->n, s->v, NULL, NULL, 0))
    return -1;
  return expect(d, out, nout);
}

/* Ends pipeline mode: a sync point, every result read. */
static void pipe_end(struct pdb *d)
{
  PGresult *r;

  if (!d->pipe)
    return;
  if (PQpipelineSync(d->c)) {
    drain(d, 0);
    /* The sync's own result, then nothing. */
    while ((r = PQgetResult(d->c))) {
      ExecStatusType es = PQresultStatus(r);

      PQclear(r);
      if (es == PGRES_PIPELINE_SYNC)
        break;
    }
  } else if (!d->poisoned) {
    d->poisoned = 1;
    set_msg(d, DB_GONE, PQerrorMessage(d->c));
  }
  PQexitPipelineMode(d->c);
  d->pipe = 0;
  d->head = d->nwant = 0;
}

/* A statement that must be answered while the pipeline holds others:
 * send it, read what came before, then its own result. */
static PGresult *run_piped(struct pdb *d, struct pst *s, const char *plain)
{
  PGresult *r, *mine = NULL;

  if (plain ? queue_plain(d, plain) != 0 : queue(d, s, NULL, 0) != 0) {
    d->poisoned = 1;
    set_msg(d, DB_GONE, PQerrorMessage(d->c));
    return NULL;
  }
  PQsendFlushRequest(d->c);
  PQflush(d->c);
  drain(d, 1);
  d->head++; /* our own */
  while ((r = PQgetResult(d->c))) {
    if (!mine)
      mine = r;
    else
      PQclear(r);
  }
  if (d->head == d->nwant)
    d->head = d->nwant = 0;
  return mine;
}

/* Runs s as a prepared statement of this session, preparing it the first
 * time. A full cache leaves the statement unnamed: parsed every time. */
static PGresult *run(struct pdb *d, struct pst *s)
{
  char name[32];
  int c = cached(d, s, name);

  if (c < 0)
    return PQexecParams(d->c, s->sql, s->n, s->type, s->v, NULL, NULL, 0);
  if (c == 0) {
    PGresult *r = PQprepare(d->c, name, s->sql, s->n, s->type);

    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      d->ncache--; /* not prepared after all */
      return r;    /* the error, as the statement's */
    }
    PQclear(r);
  }
  return PQexecPrepared(d->c, name, s->n, s->v, NULL, NULL, 0);
}

static int p_step(struct db_stmt *st)
{
  struct pst *s = PST(st);
  struct pdb *d = PDB(st->db);

  if (!s->ran) {
    ExecStatusType es;

    if (d->poisoned)
      return d->code;
    if (d->pipe) {
      s->res = run_piped(d, s, NULL);
      if (d->poisoned) {
        PQclear(s->res);
        s->res = NULL;
        return d->code;
      }
    } else {
      if (!alive(d))
        return DB_GONE;
      s->res = run(d, s);
    }
    es = PQresultStatus(s->res);
    if (es != PGRES_TUPLES_OK && es != PGRES_COMMAND_OK) {
      int code = failed(d, s->res);

      PQclear(s->res);
      s->res = NULL;
      return code;
    }
    s->ran = 1;
    s->row = -1;
    s->nrows = PQntuples(s->res);
    d->changes = atoll(PQcmdTuples(s->res));
  }
  if (++s->row < s->nrows)
    return DB_ROW;
  return DB_DONE;
}

static int p_step_later(struct db_stmt *st, int64_t *out, int n)
{
  struct pst *s = PST(st);
  struct pdb *d = PDB(st->db);

  if (!d->txn) {
    int rc = p_step(st);

    if (rc == DB_ROW && out)
      first_row(s->res, out, n);
    return rc;
  }
  if (d->poisoned)
    return d->code;
  if (queue(d, s, out, n) != 0) {
    d->poisoned = 1;
    set_msg(d, DB_GONE, PQerrorMessage(d->c));
    return d->code;
  }
  d->changes = 1; /* not known yet; callers of this do not ask */
  s->ran = 1;
  s->row = s->nrows = 0;
  return DB_DONE;
}

static int p_step_nowait(struct db_stmt *st)
{
  return p_step_later(st, NULL, 0);
}

static int p_step_deferred(struct db_stmt *st, int64_t *out, int n)
{
  return p_step_later(st, out, n);
}

static const char *p_col_text(struct db_stmt *st, int i)
{
  struct pst *s = PST(st);

  if (!s->res || s->row >= s->nrows || PQgetisnull(s->res, s->row, i))
    return NULL;
  return PQgetvalue(s->res, s->row, i);
}

static int64_t p_col_int64(struct db_stmt *st, int i)
{
  const char *t = p_col_text(st, i);

  if (!t)
    return 0;
  if (*t == 't' || *t == 'f') /* a boolean */
    return *t == 't';
  return strtoll(t, NULL, 10);
}

static double p_col_double(struct db_stmt *st, int i)
{
  const char *t = p_col_text(st, i);

  return t ? strtod(t, NULL) : 0;
}

static void p_reset(struct db_stmt *st)
{
  PQclear(PST(st)->res);
  PST(st)->res = NULL;
  PST(st)->ran = 0;
}

static void p_clear(struct db_stmt *st)
{
  memset(PST(st)->v, 0, sizeof(PST(st)->v));
  memset(PST(st)->type, 0, sizeof(PST(st)->type));
}

static void p_finalize(struct db_stmt *st)
{
  p_reset(st);
  free(PST(st)->sql);
  free(st);
}

static int exec_plain(struct pdb *d, const char *sql);

/* COMMIT goes at the end of the pipeline, so a transaction whose other
 * statements nobody waited for is one round trip; it fails if anything
 * before it did. */
static int commit(struct pdb *d)
{
  if (d->poisoned) {
    pipe_end(d);
    return d->code;
  }
  if (queue_plain(d, "COMMIT") != 0) {
    d->poisoned = 1;
    set_msg(d, DB_GONE, PQerrorMessage(d->c));
  }
  if (durin_fault_hit("commit_cut")) {
    PQflush(d->c);
    shutdown(PQsocket(d->c), SHUT_RDWR);
  }
  pipe_end(d);
  if (d->poisoned)
    return d->code; /* the caller's ROLLBACK ends it */
  d->txn = 0;
  return DB_OK;
}

static int p_exec(struct db *db, const char *sql)
{
  struct pdb *d = PDB(db);
  int code;

  if (!strcmp(sql, "COMMIT") && d->pipe)
    return commit(d);
  if (!strcmp(sql, "COMMIT") || !strcmp(sql, "ROLLBACK")) {
    int poisoned;

    pipe_end(d);
    poisoned = d->poisoned;
    if (poisoned && !strcmp(sql, "COMMIT"))
      return d->code;
    d->poisoned = 0;
    /* COMMIT runs in the transaction's own session or not at all (a new
     * one would "commit" nothing and say so with a warning, not an
     * error); ROLLBACK may reconnect: a lost session rolled back. */
    if (!strcmp(sql, "ROLLBACK"))
      d->txn = 0;
    code = exec_plain(d, sql);
    d->txn = 0;
    if (poisoned) {
      /* What a failed pipeline prepared may be gone: start afresh. */
      exec_plain(d, "DEALLOCATE ALL");
      d->ncache = 0;
    }
    return code;
  }
  if (d->pipe) {
    PGresult *r;

    if (d->poisoned)
      return d->code;
    /* A savepoint's start and release, a NOTIFY, are never read: queue
     * them. */
    if (!strncmp(sql, "SAVEPOINT ", 10) || !strncmp(sql, "RELEASE ", 8) ||
        !strncmp(sql, "NOTIFY ", 7)) {
      if (queue_plain(d, sql) != 0) {
        d->poisoned = 1;
        set_msg(d, DB_GONE, PQerrorMessage(d->c));
        return d->code;
      }
      return DB_OK;
    }
    /* Several statements (a migration) go as a simple query, which a
     * pipeline cannot hold: end it, the transaction goes on. */
    if (strchr(sql, ';')) {
      pipe_end(d);
      return d->poisoned ? d->code : exec_plain(d, sql);
    }
    r = run_piped(d, NULL, sql);
    if (d->poisoned) {
      PQclear(r);
      return d->code;
    }
    code = PQresultStatus(r) == PGRES_COMMAND_OK ||
                   PQresultStatus(r) == PGRES_TUPLES_OK ?
               DB_OK :
               failed(d, r);
    PQclear(r);
    return code;
  }
  return exec_plain(d, sql);
}

static int exec_plain(struct pdb *d, const char *sql)
{
  PGresult *res;
  int code = DB_OK;

  if (!alive(d))
    return DB_GONE;
  res = PQexec(d->c, sql);
  if (PQresultStatus(res) != PGRES_COMMAND_OK &&
      PQresultStatus(res) != PGRES_TUPLES_OK)
    code = failed(d, res);
  else
    d->changes = atoll(PQcmdTuples(res));
  PQclear(res);
  return code;
}

static int64_t p_changes(struct db *db)
{
  return PDB(db)->changes;
}

static int p_errcode(struct db *db)
{
  return PDB(db)->code;
}

static const char *p_errmsg(struct db *db)
{
  return PDB(db)->msg;
}

/* BEGIN (and an exclusive writer's lock) open the pipeline: nothing
 * waits for them, their failure fails what follows. */
static int p_begin(struct db *db, int exclusive)
{
  struct pdb *d = PDB(db);

  if (d->txn) {
    set_msg(d, DB_ERROR, "a transaction is already open");
    return DB_ERROR;
  }
  if (!alive(d))
    return DB_GONE;
  d->txn = 1;
  if (queue_plain(d, "BEGIN") != 0 ||
      (exclusive &&
       queue_plain(d, "SELECT pg_advisory_xact_lock(" CLAIM_LOCK ")") != 0)) {
    d->poisoned = 1;
    set_msg(d, DB_GONE, PQerrorMessage(d->c));
    return DB_GONE;
  }
  return DB_OK;
}

static int p_schema_version(struct db *db, int *v)
{
  struct pdb *d = PDB(db);
  PGresult *res;
  int code;

  code = p_exec(db, "CREATE TABLE IF NOT EXISTS durin_schema(version "
                    "INTEGER NOT NULL); INSERT INTO durin_schema(version) "
                    "SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM durin_schema)");
  if (code)
    return code;
  pipe_end(d);
  if (d->poisoned)
    return d->code;
  res = PQexec(d->c, "SELECT version FROM durin_schema");
  if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
    code = failed(d, res);
    PQclear(res);
    return code ? code : DB_ERROR;
  }
  *v = atoi(PQgetvalue(res, 0, 0));
  PQclear(res);
  return DB_OK;
}

static int p_set_schema_version(struct db *db, int v)
{
  char sql[64];

  snprintf(sql, sizeof(sql), "UPDATE durin_schema SET version = %d", v);
  return p_exec(db, sql);
}

static int64_t p_size_bytes(struct db *db)
{
  PGresult *res =
      PQexec(PDB(db)->c, "SELECT pg_database_size(current_database())");
  int64_t n = -1;

  if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
    n = atoll(PQgetvalue(res, 0, 0));
  PQclear(res);
  return n;
}

/*
 * The lost session's server process may still be reading what was sent
 * before the loss, a COMMIT among it. Ended (pg_terminate_backend) and
 * gone from pg_stat_activity, it has committed or rolled back for good.
 */
static int p_settle(struct db *db)
{
  struct pdb *d = PDB(db);
  char pid[16];
  const char *v[2] = { pid, d->lost_started };
  PGresult *r;
  int gone;

  if (!alive(d))
    return DB_GONE;
  if (!d->lost_pid)
    return DB_OK;
  snprintf(pid, sizeof(pid), "%d", d->lost_pid);
  r = PQexecParams(d->c,
                   "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   "WHERE pid = CAST($1 AS INTEGER) AND "
                   "CAST(backend_start AS TEXT) = $2",
                   2, NULL, v, NULL, NULL, 0);
  gone = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 0;
  PQclear(r);
  if (!gone)
    return PQstatus(d->c) == CONNECTION_OK ? DB_BUSY : DB_GONE;
  d->lost_pid = 0;
  return DB_OK;
}

static int p_notify(struct db *db)
{
  return p_exec(db, "NOTIFY durin_work");
}

static int p_listen_fd(struct db *db, const char *channel)
{
  struct pdb *d = PDB(db);
  PGresult *res;
  char sql[64];

  if (d->lc && PQstatus(d->lc) == CONNECTION_OK && !strcmp(d->lchan, channel))
    return PQsocket(d->lc);
  PQfinish(d->lc);
  d->lc = PQconnectdb(d->url);
  if (PQstatus(d->lc) != CONNECTION_OK) {
    PQfinish(d->lc);
    d->lc = NULL;
    return -1;
  }
  snprintf(d->lchan, sizeof(d->lchan), "%s", channel);
  snprintf(sql, sizeof(sql), "LISTEN %s", d->lchan);
  res = PQexec(d->lc, sql);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    PQclear(res);
    PQfinish(d->lc);
    d->lc = NULL;
    return -1;
  }
  PQclear(res);
  PQsetnonblocking(d->lc, 1);
  return PQsocket(d->lc);
}

static int p_listen_drain(struct db *db,
                          void (*cb)(void *arg, const char *payload), void *arg)
{
  struct pdb *d = PDB(db);
  PGnotify *n;
  int count = 0;

  if (!d->lc || !PQconsumeInput(d->lc) || PQstatus(d->lc) != CONNECTION_OK) {
    PQfinish(d->lc);
    d->lc = NULL;
    return -1;
  }
  while ((n = PQnotifies(d->lc))) {
    count++;
    if (cb)
      cb(arg, n->extra);
    PQfreemem(n);
  }
  return count;
}

static const struct db_ops pg_ops = {
  .name = "postgres",
  .close = p_close,
  .prepare = p_prepare,
  .bind_text = p_bind_text,
  .bind_int64 = p_bind_int64,
  .bind_double = p_bind_double,
  .step = p_step,
  .step_nowait = p_step_nowait,
  .step_deferred = p_step_deferred,
  .col_text = p_col_text,
  .col_int64 = p_col_int64,
  .col_double = p_col_double,
  .reset = p_reset,
  .clear = p_clear,
  .finalize = p_finalize,
  .exec = p_exec,
  .changes = p_changes,
  .errcode = p_errcode,
  .errmsg = p_errmsg,
  .begin = p_begin,
  .schema_version = p_schema_version,
  .set_schema_version = p_set_schema_version,
  .size_bytes = p_size_bytes,
  .settle = p_settle,
  .notify = p_notify,
  .listen_fd = p_listen_fd,
  .listen_drain = p_listen_drain,
};

/* Notices ("relation already exists, skipping") are not for users. */
static void quiet(void *arg, const char *msg)
{
  (void)arg;
  (void)msg;
}

#define PASS_HOWTO                                                         \
 "keep the password in libpq's passfile (~/.pgpass, or the file "          \
 "PGPASSFILE names, mode 0600) or in a service file (PGSERVICEFILE, then " \
 "DURIN_STORE=postgresql:///?service=NAME)"

/*
 * The password comes from libpq's passfile or service file only: a URL
 * or a variable is seen by every process that can read this one's
 * environment or command line, and ends up in shell histories and unit
 * files. Refused with where to put it instead.
 */
static int password_elsewhere(const char *url, char *msg, size_t len)
{
  char *perr = NULL;
  PQconninfoOption *o = PQconninfoParse(url, &perr), *i;
  int found = 0;

  if (!o) {
    snprintf(msg, len, "the store URL does not parse: %s",
             perr ? perr : "out of memory");
    PQfreemem(perr);
    return DB_ERROR;
  }
  for (i = o; i->keyword; i++)
    if (!strcmp(i->keyword, "password") && i->val && *i->val)
      found = 1;
  PQconninfoFree(o);
  if (found) {
    snprintf(msg, len,
             "the store URL holds a password; take it out and " PASS_HOWTO);
    return DB_MISUSE;
  }
  if (getenv("PGPASSWORD")) {
    snprintf(msg, len, "PGPASSWORD is set; unset it and " PASS_HOWTO);
    return DB_MISUSE;
  }
  return DB_OK;
}

int db_pg_open(const char *url, struct db **out, char *msg, size_t len)
{
  struct pdb *d;

  int r = password_elsewhere(url, msg, len);

  if (r != DB_OK)
    return r;
  if (!(d = calloc(1, sizeof(*d)))) {
    snprintf(msg, len, "out of memory");
    return DB_ERROR;
  }
  d->base.ops = &pg_ops;
  d->url = strdup(url);
  d->c = PQconnectdb(url);
  if (PQstatus(d->c) != CONNECTION_OK) {
    /* DB_GONE only when the server is down or not yet (or no longer)
     * accepting connections, which waiting can cure; a server that
     * answers and refuses us (password, database, URL) is DB_ERROR. A
     * server that came up between the two asks gets one more try. */
    PGPing ping = PQping(url);
    int code = ping == PQPING_NO_RESPONSE || ping == PQPING_REJECT ? DB_GONE :
                                                                     DB_ERROR;

    if (ping == PQPING_OK) {
      PQfinish(d->c);
      d->c = PQconnectdb(url);
    }
    if (PQstatus(d->c) != CONNECTION_OK) {
      set_msg(d, code, PQerrorMessage(d->c));
      snprintf(msg, len, "%s", d->msg);
      p_close(&d->base);
      return code;
    }
  }
  PQsetNoticeProcessor(d->c, quiet, NULL);
  session_init(d);
  *out = &d->base;
  return DB_OK;
}
