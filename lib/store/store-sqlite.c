/*
 * The embedded store: one SQLite file in WAL mode.
 *
 * Durability: synchronous=FULL by default, so a commit that returned is on
 * disk (the WAL is fsync'd at every commit). Writers take the database
 * write lock at BEGIN (BEGIN IMMEDIATE), so a fence checked at the start of
 * a transaction holds until its commit. Readers never block writers (WAL).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "durin/store.h"
#include "durin/util.h"
#include "store/backends.h"
#include "store/sqlite-int.h"

static const char *const stmt_sql[ST__COUNT] = {
  [ST_FENCE] = "UPDATE runs SET lease_expires_ms = ?3 "
               "WHERE id = ?1 AND lease_epoch = ?2 RETURNING cancel_requested",
  [ST_SEQ_RESERVE] = "UPDATE runs SET last_seq = last_seq + ?2, "
                     "progress_ms = ?3 WHERE id = ?1 RETURNING last_seq",
  [ST_EVENT_INSERT] = "INSERT INTO events(run_id, seq, ts_ms, step, type, "
                      "data) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
  [ST_CKPT_PUT] = "INSERT INTO checkpoints(run_id, step, data) "
                  "VALUES(?1, ?2, ?3) ON CONFLICT(run_id) DO UPDATE SET "
                  "step = excluded.step, data = excluded.data",
  [ST_LEDGER_INTENT] =
      "INSERT INTO ledger(run_id, step, call_idx, call_id, tool, effect, "
      "args_hash, idem_key, args, done, intent_ms) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10)",
  [ST_LEDGER_OUTCOME] = "UPDATE ledger SET done = 1, outcome = ?4, "
                        "outcome_ms = ?5 WHERE run_id = ?1 AND step = ?2 "
                        "AND call_idx = ?3",
  [ST_PENDING_PUT] = "INSERT INTO pending(run_id, step, response) "
                     "VALUES(?1, ?2, ?3) ON CONFLICT(run_id) DO UPDATE SET "
                     "step = excluded.step, response = excluded.response",
  [ST_PENDING_CLEAR] = "DELETE FROM pending WHERE run_id = ?1",
  /* One statement with "unchanged" encoded as NULL parameters. */
  [ST_RUN_UPDATE] =
      "UPDATE runs SET updated_ms = ?2,"
      " status = coalesce(?3, status),"
      " pause_requested = CASE WHEN ?3 = 'paused' THEN 0 ELSE "
      "pause_requested END,"
      " reason = CASE WHEN ?4 IS NULL THEN reason WHEN ?4 = '' THEN NULL "
      "ELSE ?4 END,"
      " started_ms = coalesce(?5, started_ms),"
      " finished_ms = coalesce(?6, finished_ms),"
      " lease_owner = CASE WHEN ?7 THEN NULL ELSE lease_owner END,"
      " lease_expires_ms = CASE WHEN ?7 THEN NULL ELSE lease_expires_ms "
      "END,"
      " steps = coalesce(?8, steps),"
      " input_tokens = coalesce(?9, input_tokens),"
      " output_tokens = coalesce(?10, output_tokens),"
      " model_calls = coalesce(?11, model_calls),"
      " tool_calls = coalesce(?12, tool_calls),"
      " retries = coalesce(?13, retries),"
      " cost_usd = coalesce(?14, cost_usd)"
      " WHERE id = ?1",
  [ST_RUN_GET] = "SELECT " RUN_COLS " FROM runs WHERE id = ?1",
};

/*
 * Schema migrations, applied in order; PRAGMA user_version records how many
 * have run. Never edit a shipped entry: append a new one.
 */
static const char *const migrations[] = {
  /* 1: the first schema. */
  "CREATE TABLE runs("
  "  id TEXT PRIMARY KEY,"
  "  name TEXT NOT NULL,"
  "  status TEXT NOT NULL,"
  "  reason TEXT,"
  "  model TEXT NOT NULL,"
  "  workspace TEXT NOT NULL,"
  "  created_ms INTEGER NOT NULL,"
  "  started_ms INTEGER,"
  "  updated_ms INTEGER NOT NULL,"
  "  finished_ms INTEGER,"
  "  lease_owner TEXT,"
  "  lease_epoch INTEGER NOT NULL DEFAULT 0,"
  "  lease_expires_ms INTEGER,"
  "  attempt INTEGER NOT NULL DEFAULT 0,"
  "  cancel_requested INTEGER NOT NULL DEFAULT 0,"
  "  last_seq INTEGER NOT NULL DEFAULT 0,"
  "  steps INTEGER NOT NULL DEFAULT 0,"
  "  input_tokens INTEGER NOT NULL DEFAULT 0,"
  "  output_tokens INTEGER NOT NULL DEFAULT 0,"
  "  model_calls INTEGER NOT NULL DEFAULT 0,"
  "  tool_calls INTEGER NOT NULL DEFAULT 0,"
  "  retries INTEGER NOT NULL DEFAULT 0,"
  "  cost_usd REAL NOT NULL DEFAULT 0"
  ");"
  /* The spec is written once; kept out of the run row, which every step
   * rewrites, so a long system prompt is not rewritten with it. */
  "CREATE TABLE run_specs("
  "  run_id TEXT PRIMARY KEY,"
  "  spec TEXT NOT NULL"
  ");"
  "CREATE INDEX runs_status ON runs(status, created_ms);"
  /* A rowid table: event rows are kilobytes, and WITHOUT ROWID tables
   * spill rows over about a quarter page into overflow pages. */
  "CREATE TABLE events("
  "  run_id TEXT NOT NULL,"
  "  seq INTEGER NOT NULL,"
  "  ts_ms INTEGER NOT NULL,"
  "  step INTEGER NOT NULL,"
  "  type TEXT NOT NULL,"
  "  data TEXT NOT NULL,"
  "  UNIQUE(run_id, seq)"
  ");"
  /* Small rows keyed by run: one b-tree, no separate key index. */
  "CREATE TABLE checkpoints("
  "  run_id TEXT PRIMARY KEY,"
  "  step INTEGER NOT NULL,"
  "  data TEXT NOT NULL"
  ") WITHOUT ROWID;"
  "CREATE TABLE ledger("
  "  run_id TEXT NOT NULL,"
  "  step INTEGER NOT NULL,"
  "  call_idx INTEGER NOT NULL,"
  "  call_id TEXT NOT NULL,"
  "  tool TEXT NOT NULL,"
  "  effect TEXT NOT NULL,"
  "  args_hash TEXT NOT NULL,"
  "  idem_key TEXT NOT NULL,"
  "  args TEXT NOT NULL,"
  "  done INTEGER NOT NULL,"
  "  outcome TEXT,"
  "  intent_ms INTEGER NOT NULL,"
  "  outcome_ms INTEGER,"
  "  PRIMARY KEY(run_id, step, call_idx)"
  ");"
  "CREATE TABLE pending("
  "  run_id TEXT PRIMARY KEY,"
  "  step INTEGER NOT NULL,"
  "  response TEXT NOT NULL"
  ");",
  /* 2: the queue. A run is ready for a worker when nobody holds it, it
   * is not paused or ended, and its not_before has passed. */
  "ALTER TABLE runs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';"
  "ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;"
  "ALTER TABLE runs ADD COLUMN dedupe_key TEXT;"
  "ALTER TABLE runs ADD COLUMN concurrency_key TEXT;"
  "ALTER TABLE runs ADD COLUMN not_before_ms INTEGER NOT NULL DEFAULT 0;"
  "ALTER TABLE runs ADD COLUMN pause_requested INTEGER NOT NULL DEFAULT 0;"
  "ALTER TABLE runs ADD COLUMN recoveries INTEGER NOT NULL DEFAULT 0;"
  "ALTER TABLE runs ADD COLUMN max_recoveries INTEGER NOT NULL DEFAULT 10;"
  "ALTER TABLE runs ADD COLUMN progress_ms INTEGER;"
  "CREATE INDEX runs_ready ON runs(tenant, priority DESC, created_ms) "
  "  WHERE lease_owner IS NULL AND status IN ('queued', 'running', "
  "  'evaluating');"
  /* Nothing here indexes lease_expires_ms: every fenced write moves it. */
  "CREATE INDEX runs_held ON runs(lease_owner) WHERE lease_owner IS NOT NULL;"
  "CREATE INDEX runs_held_tenant ON runs(tenant) "
  "  WHERE lease_owner IS NOT NULL;"
  "CREATE INDEX runs_held_key ON runs(concurrency_key) "
  "  WHERE lease_owner IS NOT NULL AND concurrency_key IS NOT NULL;"
  "CREATE INDEX runs_signal ON runs(lease_owner) "
  "  WHERE cancel_requested = 1 OR pause_requested = 1;"
  "CREATE UNIQUE INDEX runs_dedupe ON runs(tenant, dedupe_key) "
  "  WHERE dedupe_key IS NOT NULL AND status NOT IN ('succeeded', "
  "  'failed', 'cancelled', 'budget_exceeded');"
  /* scope is "tenant:NAME" or "key:NAME". */
  "CREATE TABLE queue_limits("
  "  scope TEXT PRIMARY KEY,"
  "  max_running INTEGER NOT NULL"
  ");",
  /* 3: approvals. One row per asked call; (run, step, call) is the key a
   * replayed step finds its decision by. */
  "CREATE TABLE approvals("
  "  id TEXT PRIMARY KEY,"
  "  run_id TEXT NOT NULL,"
  "  step INTEGER NOT NULL,"
  "  call_idx INTEGER NOT NULL,"
  "  call_id TEXT NOT NULL,"
  "  tool TEXT NOT NULL,"
  "  call_args TEXT NOT NULL,"
  "  call_hash TEXT NOT NULL,"
  "  args TEXT NOT NULL,"
  "  args_hash TEXT NOT NULL,"
  "  reason TEXT,"
  "  rule TEXT,"
  "  state TEXT NOT NULL,"
  "  on_expiry TEXT NOT NULL,"
  "  decided_by TEXT,"
  "  comment TEXT,"
  "  requested_ms INTEGER NOT NULL,"
  "  expires_ms INTEGER NOT NULL,"
  "  decided_ms INTEGER,"
  "  UNIQUE(run_id, step, call_idx)"
  ");"
  "CREATE INDEX approvals_pending ON approvals(expires_ms) "
  "  WHERE state = 'pending';",
};

#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

int durin__sq_fail(struct sq *q, struct durin_err *err, const char *what)
{
  int rc = sqlite3_errcode(q->db);
  int code = DURIN_ESTORE;

  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
    code = DURIN_EBUSY;
  return durin_err_set(err, code, "store '%s': %s: %s", q->path, what,
                       sqlite3_errmsg(q->db));
}

int durin__sq_exec(struct sq *q, const char *sql, struct durin_err *err)
{
  char *msg = NULL;
  int rc = sqlite3_exec(q->db, sql, NULL, NULL, &msg);

  if (rc != SQLITE_OK) {
    int code = rc == SQLITE_BUSY ? DURIN_EBUSY : DURIN_ESTORE;

    durin_err_set(err, code, "store '%s': %s", q->path,
                  msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return code;
  }
  return 0;
}

static int migrate(struct sq *q, struct durin_err *err)
{
  sqlite3_stmt *st = NULL;
  int version = 0, r, i;
  char sql[64];

  r = durin__sq_exec(q, "BEGIN IMMEDIATE", err);
  if (r)
    return r;
  if (sqlite3_prepare_v2(q->db, "PRAGMA user_version", -1, &st, NULL) ||
      sqlite3_step(st) != SQLITE_ROW) {
    r = durin__sq_fail(q, err, "reading schema version");
    goto out;
  }
  version = sqlite3_column_int(st, 0);
  if (version > N_MIGRATIONS) {
    r = durin_err_set(err, DURIN_ESCHEMA,
                      "store '%s' has schema version %d but this durin knows "
                      "only up to %d: upgrade durin",
                      q->path, version, N_MIGRATIONS);
    goto out;
  }
  for (i = version; i < N_MIGRATIONS; i++) {
    r = durin__sq_exec(q, migrations[i], err);
    if (r)
      goto out;
  }
  snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", N_MIGRATIONS);
  r = durin__sq_exec(q, sql, err);
out:
  sqlite3_finalize(st);
  if (r) {
    durin__sq_exec(q, "ROLLBACK", NULL);
    return r;
  }
  return durin__sq_exec(q, "COMMIT", err);
}

static void sq_close(void *impl)
{
  struct sq *q = impl;
  int i;

  if (!q)
    return;
  for (i = 0; i < ST__COUNT; i++)
    sqlite3_finalize(q->st[i]);
  sqlite3_close(q->db);
  free(q->path);
  free(q);
}

static int sq_open(const char *rest, const struct durin_store_opts *o,
                   void **impl, struct durin_err *err)
{
  struct sq *q = calloc(1, sizeof(*q));
  char dir[4096], pragmas[256];
  const char *slash;
  int r, i;

  if (!q)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  q->path = strdup(rest);
  /* Create the store's directory, as a user running the default expects. */
  slash = strrchr(rest, '/');
  if (slash && slash != rest && (size_t)(slash - rest) < sizeof(dir)) {
    memcpy(dir, rest, (size_t)(slash - rest));
    dir[slash - rest] = '\0';
    if (access(dir, F_OK) != 0) {
      r = durin_mkdirs(dir, err);
      if (r) {
        durin_err_prefix(err, "cannot open store 'sqlite:%s'", rest);
        goto out;
      }
    }
  }
  if (sqlite3_open_v2(rest, &q->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                          SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK) {
    r = durin_err_set(err, DURIN_ESTORE, "cannot open store 'sqlite:%s': %s",
                      rest, q->db ? sqlite3_errmsg(q->db) : "out of memory");
    goto out;
  }
  sqlite3_extended_result_codes(q->db, 0);
  sqlite3_busy_timeout(q->db, o->busy_timeout_ms);
  snprintf(pragmas, sizeof(pragmas),
           "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; "
           "PRAGMA foreign_keys=ON;",
           o->sync_full ? "FULL" : "NORMAL");
  r = durin__sq_exec(q, pragmas, err);
  if (r) {
    durin_err_prefix(err,
                     "cannot open store 'sqlite:%s' (is the directory "
                     "writable?)",
                     rest);
    goto out;
  }
  r = migrate(q, err);
  if (r)
    goto out;
  for (i = 0; i < ST__COUNT; i++) {
    if (sqlite3_prepare_v3(q->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                           &q->st[i], NULL) != SQLITE_OK) {
      r = durin__sq_fail(q, err, "preparing statements");
      goto out;
    }
  }
  *impl = q;
  q = NULL;
out:
  sq_close(q);
  return r;
}

char *durin__sq_col_dup(sqlite3_stmt *st, int i)
{
  const unsigned char *t = sqlite3_column_text(st, i);

  return t ? strdup((const char *)t) : NULL;
}

static int sq_run_create(void *impl, const struct durin_run_new *n,
                         struct durin_err *err)
{
  struct sq *q = impl;
  sqlite3_stmt *st = NULL;
  int r = 0, rc;

  r = durin__sq_exec(q, "BEGIN IMMEDIATE", err);
  if (r)
    return r;
  if (sqlite3_prepare_v2(
          q->db,
          "INSERT INTO runs(id, name, status, model, workspace, created_ms, "
          "updated_ms, tenant, priority, dedupe_key, concurrency_key, "
          "not_before_ms, max_recoveries, lease_owner, lease_expires_ms, "
          "progress_ms) VALUES(?1, ?2, 'queued', ?3, ?4, ?5, ?5, "
          "coalesce(?6, 'default'), ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?5)",
          -1, &st, NULL) != SQLITE_OK) {
    r = durin__sq_fail(q, err, "creating run");
    goto out;
  }
  sqlite3_bind_text(st, 1, n->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, n->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, n->model, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, n->workspace, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, n->now_ms);
  sqlite3_bind_text(st, 6, n->tenant, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 7, n->priority);
  sqlite3_bind_text(st, 8, n->dedupe_key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 9, n->concurrency_key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 10, n->not_before_ms);
  sqlite3_bind_int64(st, 11, n->max_recoveries > 0 ? n->max_recoveries : 10);
  sqlite3_bind_text(st, 12, n->owner, -1, SQLITE_STATIC);
  if (n->owner)
    sqlite3_bind_int64(st, 13, n->lease_until_ms);
  rc = sqlite3_step(st);
  if (rc == SQLITE_CONSTRAINT && n->dedupe_key) {
    /* The unique index on (tenant, dedupe_key) over active runs. */
    r = durin_err_set(err, DURIN_EEXIST,
                      "a run with dedupe key '%s' is already active",
                      n->dedupe_key);
    goto out;
  }
  if (rc != SQLITE_DONE) {
    r = durin__sq_fail(q, err, "creating run");
    goto out;
  }
  sqlite3_finalize(st);
  st = NULL;
  if (sqlite3_prepare_v2(q->db,
                         "INSERT INTO run_specs(run_id, spec) VALUES(?1, ?2)",
                         -1, &st, NULL) != SQLITE_OK) {
    r = durin__sq_fail(q, err, "creating run");
    goto out;
  }
  sqlite3_bind_text(st, 1, n->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, n->spec_json, -1, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_DONE)
    r = durin__sq_fail(q, err, "creating run");
out:
  sqlite3_finalize(st);
  if (r) {
    durin__sq_exec(q, "ROLLBACK", NULL);
    return r;
  }
  return durin__sq_exec(q, "COMMIT", err);
}

void durin__sq_row_to_run(sqlite3_stmt *st, struct durin_run_info *ri)
{
  const unsigned char *id = sqlite3_column_text(st, 0);

  memset(ri, 0, sizeof(*ri));
  snprintf(ri->id, sizeof(ri->id), "%s", id ? (const char *)id : "");
  ri->name = durin__sq_col_dup(st, 1);
  ri->spec_json = durin__sq_col_dup(st, 2);
  ri->model = durin__sq_col_dup(st, 3);
  ri->workspace = durin__sq_col_dup(st, 4);
  ri->reason = durin__sq_col_dup(st, 5);
  ri->lease_owner = durin__sq_col_dup(st, 6);
  if (durin_run_status_parse((const char *)sqlite3_column_text(st, 7),
                             &ri->status))
    ri->status = DURIN_RUN_FAILED;
  ri->created_ms = sqlite3_column_int64(st, 8);
  ri->started_ms = sqlite3_column_int64(st, 9);
  ri->updated_ms = sqlite3_column_int64(st, 10);
  ri->finished_ms = sqlite3_column_int64(st, 11);
  ri->lease_epoch = (uint64_t)sqlite3_column_int64(st, 12);
  ri->lease_expires_ms = sqlite3_column_int64(st, 13);
  ri->attempt = sqlite3_column_int64(st, 14);
  ri->last_seq = sqlite3_column_int64(st, 15);
  ri->cancel_requested = sqlite3_column_int(st, 16);
  ri->usage.steps = sqlite3_column_int64(st, 17);
  ri->usage.input_tokens = sqlite3_column_int64(st, 18);
  ri->usage.output_tokens = sqlite3_column_int64(st, 19);
  ri->usage.model_calls = sqlite3_column_int64(st, 20);
  ri->usage.tool_calls = sqlite3_column_int64(st, 21);
  ri->usage.retries = sqlite3_column_int64(st, 22);
  ri->usage.cost_usd = sqlite3_column_double(st, 23);
  ri->pause_requested = sqlite3_column_int(st, 24);
  ri->tenant = durin__sq_col_dup(st, 25);
  ri->dedupe_key = durin__sq_col_dup(st, 26);
  ri->concurrency_key = durin__sq_col_dup(st, 27);
  ri->priority = sqlite3_column_int64(st, 28);
  ri->not_before_ms = sqlite3_column_int64(st, 29);
  ri->recoveries = sqlite3_column_int64(st, 30);
  ri->max_recoveries = sqlite3_column_int64(st, 31);
}

static int sq_run_get(void *impl, const char *id, struct durin_run_info *out,
                      struct durin_err *err)
{
  struct sq *q = impl;
  sqlite3_stmt *st = q->st[ST_RUN_GET];
  int r = 0, rc;

  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    durin__sq_row_to_run(st, out);
  else if (rc == SQLITE_DONE)
    r = durin_err_set(err, DURIN_ENOTFOUND, "no run '%s' in this store", id);
  else
    r = durin__sq_fail(q, err, "reading run");
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return r;
}

static int sq_run_resolve(void *impl, const char *prefix, char id[32],
                          struct durin_err *err)
{
  struct sq *q = impl;
  sqlite3_stmt *st = NULL;
  int r = 0, n = 0, rc;

  if (sqlite3_prepare_v2(q->db,
                         "SELECT id FROM runs WHERE substr(id, 1, length(?1)) "
                         "= ?1 ORDER BY id LIMIT 2",
                         -1, &st, NULL) != SQLITE_OK)
    return durin__sq_fail(q, err, "finding run");
  sqlite3_bind_text(st, 1, prefix, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (n++ == 0)
      snprintf(id, 32, "%s", (const char *)sqlite3_column_text(st, 0));
  }
  if (rc != SQLITE_DONE)
    r = durin__sq_fail(q, err, "finding run");
  else if (n == 0)
    r = durin_err_set(err, DURIN_ENOTFOUND,
                      "no run '%s' in this store (see 'durin ls')", prefix);
  else if (n > 1)
    r = durin_err_set(err, DURIN_EINVAL,
                      "run id '%s' is ambiguous: give more characters", prefix);
  sqlite3_finalize(st);
  return r;
}

static int sq_run_list(void *impl, const struct durin_run_filter *f,
                       durin_run_cb cb, void *arg, struct durin_err *err)
{
  struct sq *q = impl;
  sqlite3_stmt *st = NULL;
  struct durin_run_info ri;
  int r = 0, rc, shown = 0;

  if (sqlite3_prepare_v2(q->db,
                         "SELECT " RUN_COLS_LIST " FROM runs ORDER BY "
                         "created_ms, "
                         "id",
                         -1, &st, NULL) != SQLITE_OK)
    return durin__sq_fail(q, err, "listing runs");
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    durin__sq_row_to_run(st, &ri);
    if (!f || !f->status_mask || (f->status_mask & (1 << ri.status))) {
      r = cb(&ri, arg);
      shown++;
    }
    durin_run_info_clear(&ri);
    if (r || (f && f->limit && shown >= f->limit))
      break;
  }
  if (!r && rc != SQLITE_ROW && rc != SQLITE_DONE)
    r = durin__sq_fail(q, err, "listing runs");
  sqlite3_finalize(st);
  return r;
}

static int sq_run_claim(void *impl, const char *id, const char *owner,
                        int64_t now_ms, int64_t ttl_ms, uint64_t *epoch,
                        struct durin_err *err)
{
  struct sq *q = impl;
  sqlite3_stmt *st = NULL;
  int r = 0, rc;

  /*
   * One conditional update: terminal runs cannot be claimed, and the epoch
   * moves forward atomically with the new owner.
   */
  if (sqlite3_prepare_v2(
          q->db,
          "UPDATE runs SET lease_epoch = lease_epoch + 1, lease_owner = ?2, "
          "lease_expires_ms = ?3, attempt = attempt + 1, updated_ms = ?4, "
          "started_ms = coalesce(started_ms, ?4) WHERE id = ?1 AND status NOT "
          "IN ('succeeded', 'failed', 'cancelled', 'budget_exceeded') "
          "RETURNING lease_epoch",
          -1, &st, NULL) != SQLITE_OK)
    return durin__sq_fail(q, err, "claiming run");
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, now_ms + ttl_ms);
  sqlite3_bind_int64(st, 4, now_ms);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *epoch = (uint64_t)sqlite3_column_int64(st, 0);
    rc = sqlite3_step(st);
  } else if (rc == SQLITE_DONE) {
    r = durin_err_set(err, DURIN_ESTATE, "run '%s' has ended or does not exist",
                      id);
  }
  if (!r && rc != SQLITE_DONE)
    r = durin__sq_fail(q, err, "claiming run");
  sqlite3_finalize(st);
  return r;
}

/* A request, not a fenced write: the holder of the lease acts on it, so
 * cancelling never races a step's commit. */
static int sq_run_request_cancel(void *impl, const char *id,
                                 struct durin_err *err)
{
  struct sq *q = impl;
  sqlite3_stmt *st = NULL;
  int r = 0;

  if (sqlite3_prepare_v2(q->db,
                         "UPDATE runs SET cancel_requested = 1 WHERE id = ?1",
                         -1, &st, NULL) != SQLITE_OK)
    return durin__sq_fail(q, err, "cancelling run");
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_DONE)
    r = durin__sq_fail(q, err, "cancelling run");
  else if (sqlite3_changes(q->db) == 0)
    r = durin_err_set(err, DURIN_ENOTFOUND, "no run '%s'", id);
  sqlite3_finalize(st);
  return r;
}

/* BEGIN IMMEDIATE takes the write lock up front: the fence that follows
 * then holds until COMMIT, and a busy store fails here, before any work. */
static int sq_txn_begin(void *impl, void **txn, struct durin_err *err)
{
  struct sq *q = impl;
  int r;

  if (q->in_txn)
    return durin_err_set(err, DURIN_ESTATE, "transaction already open");
  r = durin__sq_exec(q, "BEGIN IMMEDIATE", err);
  if (r)
    return r;
  q->in_txn = 1;
  *txn = q;
  return 0;
}

static int sq_txn_commit(void *txn, struct durin_err *err)
{
  struct sq *q = txn;
  int r = durin__sq_exec(q, "COMMIT", err);

  if (r)
    durin__sq_exec(q, "ROLLBACK", NULL);
  q->in_txn = 0;
  return r;
}

static void sq_txn_rollback(void *txn)
{
  struct sq *q = txn;

  durin__sq_exec(q, "ROLLBACK", NULL);
  q->in_txn = 0;
}

/* Runs a reset, bound statement to completion. */
int durin__sq_step_done(struct sq *q, sqlite3_stmt *st, const char *what,
                        struct durin_err *err)
{
  int rc = sqlite3_step(st);

  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    return durin__sq_fail(q, err, what);
  return 0;
}

static int sq_txn_fence(void *txn, const char *run_id, uint64_t epoch,
                        int64_t lease_until_ms, int *cancel_requested,
                        struct durin_err *err)
{
  struct sq *q = txn;
  sqlite3_stmt *st = q->st[ST_FENCE];
  int rc, fenced = 0, cancel = 0;

  sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, (int64_t)epoch);
  sqlite3_bind_int64(st, 3, lease_until_ms);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    fenced = 1;
    cancel = sqlite3_column_int(st, 0);
    rc = sqlite3_step(st);
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE)
    return durin__sq_fail(q, err, "checking lease");
  if (cancel_requested)
    *cancel_requested = cancel;
  if (!fenced)
    return durin_err_set(err, DURIN_EFENCED,
                         "lease on run '%s' lost: epoch %llu is no longer "
                         "current (another process took the run over)",
                         run_id, (unsigned long long)epoch);
  return 0;
}

/*
 * Sequence numbers come from the run row (last_seq), bumped by n in one
 * statement inside the writer's transaction: contiguous per run, no gap on
 * rollback, and no MAX(seq) scan that would grow with the log.
 */
int durin__sq_events_append(void *txn, const char *run_id,
                            struct durin_event *ev, size_t n,
                            struct durin_err *err)
{
  struct sq *q = txn;
  sqlite3_stmt *st = q->st[ST_SEQ_RESERVE];
  int64_t last;
  size_t i;
  int rc;

  if (n == 0)
    return 0;
  sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, (int64_t)n);
  sqlite3_bind_int64(st, 3, ev[n - 1].ts_ms);
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    sqlite3_reset(st);
    return rc == SQLITE_DONE ?
               durin_err_set(err, DURIN_ENOTFOUND, "no run '%s'", run_id) :
               durin__sq_fail(q, err, "reserving event sequence");
  }
  last = sqlite3_column_int64(st, 0);
  durin__sq_step_done(q, st, "reserving event sequence", NULL);
  st = q->st[ST_EVENT_INSERT];
  for (i = 0; i < n; i++) {
    int r;

    ev[i].seq = last - (int64_t)n + 1 + (int64_t)i;
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, ev[i].seq);
    sqlite3_bind_int64(st, 3, ev[i].ts_ms);
    sqlite3_bind_int64(st, 4, ev[i].step);
    sqlite3_bind_text(st, 5, ev[i].type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, ev[i].data, -1, SQLITE_STATIC);
    r = durin__sq_step_done(q, st, "appending event", err);
    if (r)
      return r;
  }
  return 0;
}

int durin__sq_event_json(struct sq *q, const char *run_id, int64_t step,
                         int64_t now, const char *type, json_t *data,
                         struct durin_err *err)
{
  struct durin_event ev;
  char *text = json_dumps(data, JSON_COMPACT);
  int r;

  json_decref(data);
  memset(&ev, 0, sizeof(ev));
  ev.ts_ms = now;
  ev.step = step;
  ev.type = type;
  ev.data = text;
  r = durin__sq_events_append(q, run_id, &ev, 1, err);
  free(text);
  return r;
}

int durin__sq_exec_id(struct sq *q, const char *sql, const char *id,
                      int64_t now, const char *what, struct durin_err *err)
{
  sqlite3_stmt *st;
  int r;

  if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
    return durin__sq_fail(q, err, what);
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, now);
  r = durin__sq_step_done(q, st, what, err);
  sqlite3_finalize(st);
  return r;
}

/* Only the latest checkpoint is kept: the log is the history. */
static int sq_checkpoint_put(void *txn, const char *run_id, int64_t step,
                             const char *data, struct durin_err *err)
{
  struct sq *q = txn;
  sqlite3_stmt *st = q->st[ST_CKPT_PUT];

  sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, step);
  sqlite3_bind_text(st, 3, data, -1, SQLITE_STATIC);
  return durin__sq_step_done(q, st, "writing checkpoint", err);
}

static int sq_run_update(void *txn, const char *run_id,
                         const struct durin_run_update *u,
                         struct durin_err *err)
{
  struct sq *q = txn;
  sqlite3_stmt *st = q->st[ST_RUN_UPDATE];
  int r;

  sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, u->now_ms);
  if (u->status)
    sqlite3_bind_text(st, 3, durin_run_status_name(*u->status), -1,
                      SQLITE_STATIC);
  if (u->reason)
    sqlite3_bind_text(st, 4, u->reason, -1, SQLITE_STATIC);
  if (u->started_ms >= 0)
    sqlite3_bind_int64(st, 5, u->started_ms);
  if (u->finished_ms >= 0)
    sqlite3_bind_int64(st, 6, u->finished_ms);
  sqlite3_bind_int(st, 7, u->release_lease);
  if (u->usage) {
    sqlite3_bind_int64(st, 8, u->usage->steps);
    sqlite3_bind_int64(st, 9, u->usage->input_tokens);
    sqlite3_bind_int64(st, 10, u->usage->output_tokens);
    sqlite3_bind_int64(st, 11, u->usage->model_calls);
    sqlite3_bind_int64(st, 12, u->usage->tool_calls);
    sqlite3_bind_int64(st, 13, u->usage->retries);
    sqlite3_bind_double(st, 14, u->usage->cost_usd);
  }
  r = durin__sq_step_done(q, st, "updating run", err);
  /* A run that ends leaves no question open. */
  if (!r && u->status && durin_run_status_terminal(*u->status))
    r = durin__sq_approvals_cancel(q, run_id, u->now_ms, err);
  return r;
}

static int sq_ledger_intent(void *txn, const struct durin_ledger_entry *e,
                            struct durin_err *err)
{
  struct sq *q = txn;
  sqlite3_stmt *st = q->st[ST_LEDGER_INTENT];

  sqlite3_bind_text(st, 1, e->run_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, e->step);
  sqlite3_bind_int(st, 3, e->call_idx);
  sqlite3_bind_text(st, 4, e->call_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, e->tool, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 6, e->effect, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 7, e->args_hash, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 8, e->idem_key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 9, e->args, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 10, e->intent_ms);
  return durin__sq_step_done(q, st, "recording ledger intent", err);
}

/* An outcome without its intent is a bug somewhere: refuse it loudly. */
static int sq_ledger_outcome(void *txn, const char *run_id, int64_t step,
                             int call_idx, const char *outcome, int64_t now_ms,
                             struct durin_err *err)
{
  struct sq *q = txn;
  sqlite3_stmt *st = q->st[ST_LEDGER_OUTCOME];
  int r;

  sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, step);
  sqlite3_bind_int(st, 3, call_idx);
  sqlite3_bind_text(st, 4, outcome, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, now_ms);
  r = durin__sq_step_done(q, st, "recording ledger outcome", err);
  if (!r && sqlite3_changes(q->db) == 0)
    r = durin_err_set(err, DURIN_ENOTFOUND,
                      "no ledger intent for run '%s' step %lld call %d", run_id,
                      (long long)step, call_idx);
  return r;
}

static int sq_pending_put(void *txn, const char *run_id, int64_t step,
                          const char *response, struct durin_err *err)
{
  struct sq *q = txn;
  sqlite3_stmt *st = q->st[ST_PENDING_PUT];

  sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, step);
  sqlite3_bind_text(st, 3, response, -1, SQLITE_STATIC);
  return durin__sq_step_done(q, st, "recording pending response", err);
}

static int sq_pending_clear(void *txn, const char *run_id,
                            struct durin_err *err)
{
  struct sq *q = txn;
  sqlite3_stmt *st = q->st[ST_PENDING_CLEAR];

  sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
  return durin__sq_step_done(q, st, "clearing pending response", err);
}

static int sq_events_read(void *impl, const char *run_id, int64_t from_seq,
                          int64_t max, durin_event_cb cb, void *arg,
                          struct durin_err *err)
{
  struct sq *q = impl;
  sqlite3_stmt *st = NULL;
  int r = 0, rc;

  if (sqlite3_prepare_v2(q->db,
                         "SELECT seq, ts_ms, step, type, data FROM events "
                         "WHERE run_id = ?1 AND seq >= ?2 ORDER BY seq "
                         "LIMIT ?3",
                         -1, &st, NULL) != SQLITE_OK)
    return durin__sq_fail(q, err, "reading events");
  sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, from_seq);
  sqlite3_bind_int64(st, 3, max > 0 ? max : -1);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    struct durin_event ev;

    ev.seq = sqlite3_column_int64(st, 0);
    ev.ts_ms = sqlite3_column_int64(st, 1);
    ev.step = sqlite3_column_int64(st, 2);
    ev.type = (const char *)sqlite3_column_text(st, 3);
    ev.data = (const char *)sqlite3_column_text(st, 4);
    r = cb(&ev, arg);
    if (r)
      break;
  }
  if (!r && rc != SQLITE_DONE)
    r = durin__sq_fail(q, err, "reading events");
  sqlite3_finalize(st);
  return r;
}

static int sq_checkpoint_get(void *impl, const char *run_id, int64_t *step,
                             char **data, struct durin_err *err)
{
  struct sq *q = impl;
  sqlite3_stmt *st = NULL;
  int r = 0, rc;

  if (sqlite3_prepare_v2(q->db,
                         "SELECT step, data FROM checkpoints WHERE run_id = ?1",
                         -1, &st, NULL) != SQLITE_OK)
    return durin__sq_fail(q, err, "reading checkpoint");
  sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *step = sqlite3_column_int64(st, 0);
    *data = durin__sq_col_dup(st, 1);
  } else if (rc == SQLITE_DONE) {
    r = durin_err_set(err, DURIN_ENOTFOUND, "run '%s' has no checkpoint",
                      run_id);
  } else {
    r = durin__sq_fail(q, err, "reading checkpoint");
  }
  sqlite3_finalize(st);
  return r;
}

static int sq_ledger_read(void *impl, const char *run_id, int64_t step,
                          durin_ledger_cb cb, void *arg, struct durin_err *err)
{
  struct sq *q = impl;
  sqlite3_stmt *st = NULL;
  int r = 0, rc;

  if (sqlite3_prepare_v2(q->db,
                         "SELECT step, call_idx, call_id, tool, effect, "
                         "args_hash, idem_key, args, done, outcome, intent_ms, "
                         "outcome_ms FROM ledger WHERE run_id = ?1 AND "
                         "(?2 < 0 OR step = ?2) ORDER BY step, call_idx",
                         -1, &st, NULL) != SQLITE_OK)
    return durin__sq_fail(q, err, "reading ledger");
  sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, step);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    struct durin_ledger_entry e;

    memset(&e, 0, sizeof(e));
    snprintf(e.run_id, sizeof(e.run_id), "%s", run_id);
    e.step = sqlite3_column_int64(st, 0);
    e.call_idx = sqlite3_column_int(st, 1);
    e.call_id = (const char *)sqlite3_column_text(st, 2);
    e.tool = (const char *)sqlite3_column_text(st, 3);
    e.effect = (const char *)sqlite3_column_text(st, 4);
    e.args_hash = (const char *)sqlite3_column_text(st, 5);
    e.idem_key = (const char *)sqlite3_column_text(st, 6);
    e.args = (const char *)sqlite3_column_text(st, 7);
    e.done = sqlite3_column_int(st, 8);
    e.outcome = (const char *)sqlite3_column_text(st, 9);
    e.intent_ms = sqlite3_column_int64(st, 10);
    e.outcome_ms = sqlite3_column_int64(st, 11);
    r = cb(&e, arg);
    if (r)
      break;
  }
  if (!r && rc != SQLITE_DONE)
    r = durin__sq_fail(q, err, "reading ledger");
  sqlite3_finalize(st);
  return r;
}

static int sq_pending_get(void *impl, const char *run_id, int64_t *step,
                          char **response, struct durin_err *err)
{
  struct sq *q = impl;
  sqlite3_stmt *st = NULL;
  int r = 0, rc;

  if (sqlite3_prepare_v2(q->db,
                         "SELECT step, response FROM pending WHERE run_id = ?1",
                         -1, &st, NULL) != SQLITE_OK)
    return durin__sq_fail(q, err, "reading pending response");
  sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *step = sqlite3_column_int64(st, 0);
    *response = durin__sq_col_dup(st, 1);
  } else if (rc == SQLITE_DONE) {
    r = DURIN_ENOTFOUND;
  } else {
    r = durin__sq_fail(q, err, "reading pending response");
  }
  sqlite3_finalize(st);
  return r;
}

static int64_t sq_size_bytes(void *impl)
{
  struct sq *q = impl;
  char wal[4200];
  struct stat st;
  int64_t total = 0;

  if (stat(q->path, &st) == 0)
    total += st.st_size;
  snprintf(wal, sizeof(wal), "%s-wal", q->path);
  if (stat(wal, &st) == 0)
    total += st.st_size;
  return total;
}

const struct durin_store_ops durin__store_sqlite_ops = {
  .scheme = "sqlite",
  .open = sq_open,
  .close = sq_close,
  .run_create = sq_run_create,
  .run_get = sq_run_get,
  .run_resolve = sq_run_resolve,
  .run_list = sq_run_list,
  .run_claim = sq_run_claim,
  .run_request_cancel = sq_run_request_cancel,
  .run_find_active = durin__sq_run_find_active,
  .run_pause = durin__sq_run_pause,
  .run_unpause = durin__sq_run_unpause,
  .queue_claim = durin__sq_queue_claim,
  .lease_renew = durin__sq_lease_renew,
  .signals = durin__sq_signals,
  .watchdog = durin__sq_watchdog,
  .limit_set = durin__sq_limit_set,
  .limit_list = durin__sq_limit_list,
  .txn_savepoint = durin__sq_txn_savepoint,
  .txn_savepoint_end = durin__sq_txn_savepoint_end,
  .txn_begin = sq_txn_begin,
  .txn_commit = sq_txn_commit,
  .txn_rollback = sq_txn_rollback,
  .txn_fence = sq_txn_fence,
  .events_append = durin__sq_events_append,
  .checkpoint_put = sq_checkpoint_put,
  .run_update = sq_run_update,
  .ledger_intent = sq_ledger_intent,
  .ledger_outcome = sq_ledger_outcome,
  .pending_put = sq_pending_put,
  .pending_clear = sq_pending_clear,
  .events_read = sq_events_read,
  .checkpoint_get = sq_checkpoint_get,
  .ledger_read = sq_ledger_read,
  .pending_get = sq_pending_get,
  .size_bytes = sq_size_bytes,
  .approval_request = durin__sq_approval_request,
  .approval_get = durin__sq_approval_get,
  .approval_list = durin__sq_approval_list,
  .approval_decide = durin__sq_approval_decide,
};
