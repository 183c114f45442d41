/*
 * The store on SQL: runs, the event log, checkpoints, the ledger and
 * pending steps, written once for both databases behind store/db.h:
 * "sqlite:PATH" (the embedded default, one file in WAL mode) and
 * "postgres://..." (many workers on many hosts).
 *
 * Every write for a run begins with the fence, a conditional UPDATE of its
 * row on the lease epoch: on SQLite the writer holds the database's write
 * lock from BEGIN, on PostgreSQL the row lock, so in both a fence checked
 * at the start of a transaction holds until its commit. Readers never
 * block writers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "durin/store.h"
#include "durin/util.h"
#include "store/sql-int.h"
#include "store/sql-schedules.h"

static const char *const stmt_sql[ST__COUNT] = {
  [ST_FENCE] = "UPDATE runs SET lease_expires_ms = ?3, commit_token = ?4 "
               "WHERE id = ?1 AND lease_epoch = ?2 RETURNING cancel_requested",
  [ST_SEQ_RESERVE] = "UPDATE runs SET last_seq = last_seq + ?2, "
                     "progress_ms = ?3 WHERE id = ?1 RETURNING last_seq",
  [ST_CKPT_PUT] = "INSERT INTO checkpoints(run_id, step, data) "
                  "VALUES(?1, ?2, ?3) ON CONFLICT(run_id) DO UPDATE SET "
                  "step = excluded.step, data = excluded.data",
  [ST_LEDGER_INTENT] =
      "INSERT INTO ledger(run_id, step, call_idx, call_id, tool, effect, "
      "args_hash, idem_key, args, done, intent_ms, contained) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?11)",
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
      " reason = CASE WHEN CAST(?4 AS TEXT) IS NULL THEN reason WHEN ?4 = '' THEN NULL "
      "ELSE ?4 END,"
      " started_ms = coalesce(?5, started_ms),"
      " finished_ms = coalesce(?6, finished_ms),"
      " lease_owner = CASE WHEN ?7 = 1 THEN NULL ELSE lease_owner END,"
      " lease_expires_ms = CASE WHEN ?7 = 1 THEN NULL ELSE lease_expires_ms "
      "END,"
      " steps = coalesce(?8, steps),"
      " input_tokens = coalesce(?9, input_tokens),"
      " output_tokens = coalesce(?10, output_tokens),"
      " model_calls = coalesce(?11, model_calls),"
      " tool_calls = coalesce(?12, tool_calls),"
      " retries = coalesce(?13, retries),"
      " cost_usd = coalesce(?14, cost_usd),"
      /* events numbered after a deferred fence, counted here */
      " last_seq = last_seq + coalesce(?15, 0),"
      " progress_ms = coalesce(?16, progress_ms),"
      /* an operator's resolution holds until a step commits */
      " resolve = NULL"
      " WHERE id = ?1",
  [ST_RUN_GET] = "SELECT " RUN_COLS " FROM runs WHERE id = ?1",
  /* The fence checked by the server: lost, it fails the transaction
   * (durin_fail, migration 4); it also checks the caller's last_seq.
   * Plain SQL: a PL/pgSQL function around the UPDATE cost three times
   * as much on every step. */
  [ST_FENCE_DEFERRED] =
      "WITH f AS (UPDATE runs SET lease_expires_ms = ?3, commit_token = ?5 "
      "WHERE id = ?1 AND lease_epoch = ?2 RETURNING cancel_requested, "
      "last_seq) SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM f) THEN "
      "durin_fail('DU001', ?1, ?2, 0) WHEN (SELECT last_seq FROM f) <> ?4 "
      "THEN durin_fail('DU002', ?1, (SELECT last_seq FROM f), ?4) ELSE "
      "(SELECT cancel_requested FROM f) END",
  [ST_TOKEN_GET] = "SELECT commit_token FROM runs WHERE id = ?1",
};

/*
 * Schema both databases share, I64 being their 64-bit integer type
 * (SQLite's INTEGER is one). The SQLite expansions are the text its
 * shipped migrations always had. Nothing indexes lease_expires_ms: every
 * fenced write moves it. A limit's scope is "tenant:NAME" or "key:NAME".
 */
#define QUEUE_INDEXES_AND_LIMITS(I64)                                         \
 "CREATE INDEX runs_ready ON runs(tenant, priority DESC, created_ms) "        \
 "  WHERE lease_owner IS NULL AND status IN ('queued', 'running', "           \
 "  'evaluating');"                                                           \
 "CREATE INDEX runs_held ON runs(lease_owner) WHERE lease_owner IS NOT NULL;" \
 "CREATE INDEX runs_held_tenant ON runs(tenant) "                             \
 "  WHERE lease_owner IS NOT NULL;"                                           \
 "CREATE INDEX runs_held_key ON runs(concurrency_key) "                       \
 "  WHERE lease_owner IS NOT NULL AND concurrency_key IS NOT NULL;"           \
 "CREATE INDEX runs_signal ON runs(lease_owner) "                             \
 "  WHERE cancel_requested = 1 OR pause_requested = 1;"                       \
 "CREATE UNIQUE INDEX runs_dedupe ON runs(tenant, dedupe_key) "               \
 "  WHERE dedupe_key IS NOT NULL AND status NOT IN ('succeeded', "            \
 "  'failed', 'cancelled', 'budget_exceeded');"                               \
 "CREATE TABLE queue_limits("                                                 \
 "  scope TEXT PRIMARY KEY,"                                                  \
 "  max_running " I64 " NOT NULL"                                             \
 ");"

/* When each tenant was last served a claim: a store-wide serial that
 * claims, serialized by the claim lock, count up (sql-queue.c). It breaks
 * fair share's ties between tenants holding equally many runs. */
#define QUEUE_SERVED(I64)     \
 "CREATE TABLE queue_served(" \
 "  tenant TEXT PRIMARY KEY," \
 "  served " I64 " NOT NULL"  \
 ");"                         \
 "CREATE INDEX queue_served_serial ON queue_served(served);"

/* How far each run's trace was exported, and who exports it now
 * (lib/otel/export.c): seq is the last event whose spans were sent;
 * fold_from where the fold resumes (the start of the step open then). */
#define OTEL_CURSOR(I64)         \
 "CREATE TABLE otel_cursor("     \
 "  run_id TEXT PRIMARY KEY,"    \
 "  seq " I64 " NOT NULL,"       \
 "  fold_from " I64 " NOT NULL," \
 "  owner TEXT,"                 \
 "  until_ms " I64 ");"

/* The vault (lib/store/sql-secrets.c): values sealed under a master key
 * the store never holds, as base64 text (the database layer binds text,
 * not blobs); key_id says which key sealed them. */
#define SECRETS_TABLE(I64)        \
 "CREATE TABLE secrets("          \
 "  tenant TEXT NOT NULL,"        \
 "  name TEXT NOT NULL,"          \
 "  scope TEXT,"                  \
 "  key_id TEXT NOT NULL,"        \
 "  nonce TEXT NOT NULL,"         \
 "  ciphertext TEXT NOT NULL,"    \
 "  version " I64 " NOT NULL,"    \
 "  created_ms " I64 " NOT NULL," \
 "  updated_ms " I64 " NOT NULL," \
 "  created_by TEXT,"             \
 "  PRIMARY KEY(tenant, name));"

/* Inbound triggers (lib/store/sql-triggers.c, docs/internals/triggers.md):
 * a definition per name, and every delivery received, whatever became of
 * it. A delivery that started a run holds its run id, and the unique
 * index over those makes a redelivery find that run instead of making
 * another: the row is written in the run's own transaction. Refused and
 * ignored deliveries may repeat (anyone can send one). */
#define TRIGGERS_TABLES(I64)                                              \
 "CREATE TABLE triggers("                                                 \
 "  name TEXT PRIMARY KEY,"                                               \
 "  tenant TEXT NOT NULL,"                                                \
 "  kind TEXT NOT NULL,"                                                  \
 "  secret TEXT NOT NULL,"                                                \
 "  config TEXT NOT NULL,"                                                \
 "  spec TEXT NOT NULL,"                                                  \
 "  untrusted_spec TEXT,"                                                 \
 "  created_ms " I64 " NOT NULL,"                                         \
 "  created_by TEXT);"                                                    \
 "CREATE TABLE trigger_deliveries("                                       \
 "  trigger_name TEXT NOT NULL,"                                          \
 "  delivery TEXT NOT NULL,"                                              \
 "  received_ms " I64 " NOT NULL,"                                        \
 "  event TEXT,"                                                          \
 "  outcome TEXT NOT NULL,"                                               \
 "  reason TEXT,"                                                         \
 "  run_id TEXT,"                                                         \
 "  sender TEXT,"                                                         \
 "  association TEXT,"                                                    \
 "  body_sha256 TEXT);"                                                   \
 "CREATE INDEX trigger_deliveries_by ON "                                 \
 "  trigger_deliveries(trigger_name, received_ms);"                       \
 "CREATE UNIQUE INDEX trigger_deliveries_once ON "                        \
 "  trigger_deliveries(trigger_name, delivery) WHERE run_id IS NOT NULL;" \
 "CREATE INDEX trigger_deliveries_body ON "                               \
 "  trigger_deliveries(trigger_name, body_sha256) WHERE run_id IS NOT NULL;"

/* Whether a call's attempt runs in a layer of its own (lib/worker/calls.c). */
#define LEDGER_CONTAINED \
 "ALTER TABLE ledger ADD COLUMN contained INTEGER NOT NULL DEFAULT 0;"

#define APPROVALS_TABLE(I64)                                \
 "CREATE TABLE approvals("                                  \
 "  id TEXT PRIMARY KEY,"                                   \
 "  run_id TEXT NOT NULL,"                                  \
 "  step " I64 " NOT NULL,"                                 \
 "  call_idx INTEGER NOT NULL,"                             \
 "  call_id TEXT NOT NULL,"                                 \
 "  tool TEXT NOT NULL,"                                    \
 "  call_args TEXT NOT NULL,"                               \
 "  call_hash TEXT NOT NULL,"                               \
 "  args TEXT NOT NULL,"                                    \
 "  args_hash TEXT NOT NULL,"                               \
 "  reason TEXT,"                                           \
 "  rule TEXT,"                                             \
 "  state TEXT NOT NULL,"                                   \
 "  on_expiry TEXT NOT NULL,"                               \
 "  decided_by TEXT,"                                       \
 "  comment TEXT,"                                          \
 "  requested_ms " I64 " NOT NULL,"                         \
 "  expires_ms " I64 " NOT NULL,"                           \
 "  decided_ms " I64 ","                                    \
 "  UNIQUE(run_id, step, call_idx)"                         \
 ");"                                                       \
 "CREATE INDEX approvals_pending ON approvals(expires_ms) " \
 "  WHERE state = 'pending';"

/*
 * The control plane (server/, docs/internals/api.md): who made a run and
 * from what (agent and version, labels, the API token's name), API
 * tokens (hashes only), agents (a named spec, a version per change),
 * idempotency keys of run creation, webhook subscriptions and their
 * outbox, the workers' heartbeats, and settings the servers of one store
 * share. Keyset pages over runs go by (created_ms, id).
 */
#define CONTROL_PLANE(I64)                                                  \
 "ALTER TABLE runs ADD COLUMN agent TEXT;"                                  \
 "ALTER TABLE runs ADD COLUMN agent_version " I64 ";"                       \
 "ALTER TABLE runs ADD COLUMN created_by TEXT;"                             \
 "ALTER TABLE runs ADD COLUMN resolve INTEGER;"                             \
 "CREATE INDEX runs_page ON runs(created_ms, id);"                          \
 "CREATE INDEX runs_tenant_page ON runs(tenant, created_ms, id);"           \
 "CREATE TABLE run_labels("                                                 \
 "  run_id TEXT NOT NULL,"                                                  \
 "  key TEXT NOT NULL,"                                                     \
 "  value TEXT NOT NULL,"                                                   \
 "  PRIMARY KEY(run_id, key)"                                               \
 ");"                                                                       \
 "CREATE INDEX run_labels_kv ON run_labels(key, value);"                    \
 "CREATE TABLE api_tokens("                                                 \
 "  id TEXT PRIMARY KEY,"                                                   \
 "  name TEXT NOT NULL,"                                                    \
 "  role TEXT NOT NULL,"                                                    \
 "  tenant TEXT,"                                                           \
 "  hash TEXT NOT NULL UNIQUE,"                                             \
 "  created_ms " I64 " NOT NULL,"                                           \
 "  revoked_ms " I64 ");"                                                   \
 "CREATE UNIQUE INDEX api_tokens_name ON api_tokens(name) "                 \
 "  WHERE revoked_ms IS NULL;"                                              \
 "CREATE TABLE agents("                                                     \
 "  tenant TEXT NOT NULL,"                                                  \
 "  name TEXT NOT NULL,"                                                    \
 "  version " I64 " NOT NULL,"                                              \
 "  spec TEXT NOT NULL,"                                                    \
 "  created_ms " I64 " NOT NULL,"                                           \
 "  created_by TEXT,"                                                       \
 "  PRIMARY KEY(tenant, name, version)"                                     \
 ");"                                                                       \
 "CREATE TABLE idempotency("                                                \
 "  tenant TEXT NOT NULL,"                                                  \
 "  key TEXT NOT NULL,"                                                     \
 "  run_id TEXT NOT NULL,"                                                  \
 "  request_hash TEXT NOT NULL,"                                            \
 "  created_ms " I64 " NOT NULL,"                                           \
 "  PRIMARY KEY(tenant, key)"                                               \
 ");"                                                                       \
 "CREATE TABLE webhook_subs("                                               \
 "  id TEXT PRIMARY KEY,"                                                   \
 "  tenant TEXT,"                                                           \
 "  run_id TEXT,"                                                           \
 "  url TEXT NOT NULL,"                                                     \
 "  events TEXT NOT NULL,"                                                  \
 "  secret TEXT NOT NULL,"                                                  \
 "  created_ms " I64 " NOT NULL,"                                           \
 "  created_by TEXT"                                                        \
 ");"                                                                       \
 "CREATE INDEX webhook_subs_run ON webhook_subs(run_id);"                   \
 "CREATE TABLE webhook_outbox("                                             \
 "  id TEXT PRIMARY KEY,"                                                   \
 "  sub_id TEXT NOT NULL,"                                                  \
 "  run_id TEXT NOT NULL,"                                                  \
 "  seq " I64 " NOT NULL,"                                                  \
 "  type TEXT NOT NULL,"                                                    \
 "  created_ms " I64 " NOT NULL,"                                           \
 "  next_ms " I64 " NOT NULL,"                                              \
 "  attempts INTEGER NOT NULL DEFAULT 0,"                                   \
 "  lease_until " I64 " NOT NULL DEFAULT 0,"                                \
 "  delivered_ms " I64 ","                                                  \
 "  failed_ms " I64 ","                                                     \
 "  last_error TEXT"                                                        \
 ");"                                                                       \
 "CREATE INDEX webhook_outbox_due ON webhook_outbox(next_ms) "              \
 "  WHERE delivered_ms IS NULL AND failed_ms IS NULL;"                      \
 "CREATE INDEX webhook_outbox_run ON webhook_outbox(sub_id, run_id, type) " \
 "  WHERE delivered_ms IS NULL AND failed_ms IS NULL;"                      \
 "CREATE TABLE workers("                                                    \
 "  owner TEXT PRIMARY KEY,"                                                \
 "  kind TEXT NOT NULL,"                                                    \
 "  started_ms " I64 " NOT NULL,"                                           \
 "  beat_ms " I64 " NOT NULL,"                                              \
 "  max_runs INTEGER NOT NULL,"                                             \
 "  info TEXT"                                                              \
 ");"                                                                       \
 "CREATE TABLE settings("                                                   \
 "  key TEXT PRIMARY KEY,"                                                  \
 "  value TEXT NOT NULL"                                                    \
 ");"

/* The outbox row an event makes for each subscription that wants it, in
 * the event's own transaction (a trigger, so every writer of events, the
 * harness's, the watchdog's and the decisions', makes them alike).
 * Progress is throttled: one undelivered progress row per subscription
 * and run at most; it is delivered with the run as it is then. */
#define WEBHOOK_TYPE_OF(E)                              \
 "CASE " E " WHEN 'run_started' THEN 'run.started' "    \
 "WHEN 'model_response' THEN 'run.progress' "           \
 "WHEN 'approval_requested' THEN 'approval.requested' " \
 "WHEN 'approval_decided' THEN 'approval.decided' "     \
 "WHEN 'approval_expired' THEN 'approval.decided' "     \
 "ELSE 'run.finished' END"
#define WEBHOOK_EVENT_TEST                                          \
 "(NEW.type = 'model_response' OR NEW.type = 'run_started' OR "     \
 "NEW.type = 'run_finished' OR NEW.type = 'approval_requested' OR " \
 "NEW.type = 'approval_decided' OR NEW.type = 'approval_expired')"
#define WEBHOOK_OUTBOX_INSERT(T)                                          \
 "INSERT INTO webhook_outbox(id, sub_id, run_id, seq, type, created_ms, " \
 "next_ms) SELECT 'msg_' || s.id || '_' || NEW.run_id || '_' || "         \
 "NEW.seq, s.id, NEW.run_id, NEW.seq, " T ", NEW.ts_ms, NEW.ts_ms "       \
 "FROM webhook_subs s WHERE (s.run_id = NEW.run_id OR (s.run_id IS "      \
 "NULL AND (s.tenant IS NULL OR s.tenant = (SELECT tenant FROM runs r "   \
 "WHERE r.id = NEW.run_id)))) AND (',' || s.events || ',') LIKE "         \
 "('%,' || " T " || ',%') AND (" T " <> 'run.progress' OR NOT EXISTS "    \
 "(SELECT 1 FROM webhook_outbox o WHERE o.sub_id = s.id AND o.run_id = "  \
 "NEW.run_id AND o.type = 'run.progress' AND o.delivered_ms IS NULL "     \
 "AND o.failed_ms IS NULL)) ON CONFLICT DO NOTHING"

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
  "ALTER TABLE runs ADD COLUMN progress_ms INTEGER;" QUEUE_INDEXES_AND_LIMITS(
      "INTEGER"),
  /* 3: approvals. One row per asked call; (run, step, call) is the key a
   * replayed step finds its decision by. */
  APPROVALS_TABLE("INTEGER"),
  /* 4: the transaction that last fenced a run, so a writer that lost
   * its connection during COMMIT can ask whether it landed. */
  "ALTER TABLE runs ADD COLUMN commit_token TEXT;",
  /* 5: fair share's memory (sql-queue.c). */
  QUEUE_SERVED("INTEGER"),
  /* 6: a call that runs in a layer of its own says so in its intent, so a
   * restorer knows from the ledger alone that it may simply run again. */
  LEDGER_CONTAINED,
  /* 7: the control plane. The trigger's test is cheap first: no
   * subscription at all (the usual case) costs one b-tree seek per event;
   * ORs rather than IN, which SQLite would build a temporary index for at
   * every event. */
  CONTROL_PLANE(
      "INTEGER") "CREATE TRIGGER events_webhooks AFTER INSERT ON events WHEN EXISTS "
                 "(SELECT 1 FROM webhook_subs) AND " WEBHOOK_EVENT_TEST
                 " BEGIN " WEBHOOK_OUTBOX_INSERT(
                     WEBHOOK_TYPE_OF("NEW.type")) "; END;",
  /* 8: the trace exporter's cursors. */
  OTEL_CURSOR("INTEGER"),
  /* 9: the vault. */
  SECRETS_TABLE("INTEGER"),
  /* 10: inbound triggers and their deliveries. */
  TRIGGERS_TABLES("INTEGER"),
  /* 11: schedules and their ticks. */
  SCHEDULES_TABLES("INTEGER"),
};

#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* The same schema on PostgreSQL, numbered alike: version 1 creates all
 * of SQLite's 1..3, so a version means the same tables in both. */
static const char *const pg_migrations[] = {
  "CREATE TABLE runs("
  "  id TEXT PRIMARY KEY,"
  "  name TEXT NOT NULL,"
  "  status TEXT NOT NULL,"
  "  reason TEXT,"
  "  model TEXT NOT NULL,"
  "  workspace TEXT NOT NULL,"
  "  created_ms BIGINT NOT NULL,"
  "  started_ms BIGINT,"
  "  updated_ms BIGINT NOT NULL,"
  "  finished_ms BIGINT,"
  "  lease_owner TEXT,"
  "  lease_epoch BIGINT NOT NULL DEFAULT 0,"
  "  lease_expires_ms BIGINT,"
  "  attempt BIGINT NOT NULL DEFAULT 0,"
  "  cancel_requested INTEGER NOT NULL DEFAULT 0,"
  "  last_seq BIGINT NOT NULL DEFAULT 0,"
  "  steps BIGINT NOT NULL DEFAULT 0,"
  "  input_tokens BIGINT NOT NULL DEFAULT 0,"
  "  output_tokens BIGINT NOT NULL DEFAULT 0,"
  "  model_calls BIGINT NOT NULL DEFAULT 0,"
  "  tool_calls BIGINT NOT NULL DEFAULT 0,"
  "  retries BIGINT NOT NULL DEFAULT 0,"
  "  cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,"
  "  tenant TEXT NOT NULL DEFAULT 'default',"
  "  priority BIGINT NOT NULL DEFAULT 0,"
  "  dedupe_key TEXT,"
  "  concurrency_key TEXT,"
  "  not_before_ms BIGINT NOT NULL DEFAULT 0,"
  "  pause_requested INTEGER NOT NULL DEFAULT 0,"
  "  recoveries BIGINT NOT NULL DEFAULT 0,"
  "  max_recoveries BIGINT NOT NULL DEFAULT 10,"
  "  progress_ms BIGINT"
  ");"
  "CREATE TABLE run_specs(run_id TEXT PRIMARY KEY, spec TEXT NOT NULL);"
  "CREATE INDEX runs_status ON runs(status, created_ms);"
  "CREATE TABLE events("
  "  run_id TEXT NOT NULL,"
  "  seq BIGINT NOT NULL,"
  "  ts_ms BIGINT NOT NULL,"
  "  step BIGINT NOT NULL,"
  "  type TEXT NOT NULL,"
  "  data TEXT NOT NULL,"
  "  PRIMARY KEY(run_id, seq)"
  ");"
  "CREATE TABLE checkpoints("
  "  run_id TEXT PRIMARY KEY,"
  "  step BIGINT NOT NULL,"
  "  data TEXT NOT NULL"
  ");"
  "CREATE TABLE ledger("
  "  run_id TEXT NOT NULL,"
  "  step BIGINT NOT NULL,"
  "  call_idx INTEGER NOT NULL,"
  "  call_id TEXT NOT NULL,"
  "  tool TEXT NOT NULL,"
  "  effect TEXT NOT NULL,"
  "  args_hash TEXT NOT NULL,"
  "  idem_key TEXT NOT NULL,"
  "  args TEXT NOT NULL,"
  "  done INTEGER NOT NULL,"
  "  outcome TEXT,"
  "  intent_ms BIGINT NOT NULL,"
  "  outcome_ms BIGINT,"
  "  PRIMARY KEY(run_id, step, call_idx)"
  ");"
  "CREATE TABLE pending("
  "  run_id TEXT PRIMARY KEY,"
  "  step BIGINT NOT NULL,"
  "  response TEXT NOT NULL"
  ");" QUEUE_INDEXES_AND_LIMITS("BIGINT") APPROVALS_TABLE("BIGINT"),
  "",
  "",
  /* 4: the commit token as on SQLite, and the error the fence checked
   * by the server raises (ST_FENCE_DEFERRED): a lost lease (DU001) or
   * an event log that moved on under the holder (DU002, never expected:
   * only the holder appends) fails the transaction. */
  "ALTER TABLE runs ADD COLUMN commit_token TEXT;"
  "CREATE FUNCTION durin_fail(p_code TEXT, p_run TEXT, p_a BIGINT,"
  "  p_b BIGINT) RETURNS INTEGER LANGUAGE plpgsql AS $$\n"
  "BEGIN\n"
  "  IF p_code = 'DU001' THEN\n"
  "    RAISE EXCEPTION 'lease on run ''%'' lost: epoch % is no longer "
  "current (another process took the run over)', p_run, p_a"
  "      USING ERRCODE = 'DU001';\n"
  "  END IF;\n"
  "  RAISE EXCEPTION 'run ''%'': its event log is at % but its holder "
  "expected %; writing again', p_run, p_a, p_b USING ERRCODE = 'DU002';\n"
  "END $$;",
  QUEUE_SERVED("BIGINT"),
  LEDGER_CONTAINED,
  /* 7: the control plane. The trigger tests inside its function, with no
   * WHEN (which PostgreSQL parses again at every insert), and returns at
   * once without a subscription. Event streams in other processes are
   * woken by a NOTIFY per run the store queues before COMMIT
   * (durin__sq_exec), not by a trigger. */
  CONTROL_PLANE(
      "BIGINT") "CREATE FUNCTION durin_webhooks() RETURNS trigger LANGUAGE plpgsql AS "
                "$$\nBEGIN\n  IF NOT " WEBHOOK_EVENT_TEST
                " OR NOT EXISTS (SELECT 1 FROM "
                "webhook_subs) THEN\n    RETURN NULL;\n  END IF;\n  " WEBHOOK_OUTBOX_INSERT(
                    WEBHOOK_TYPE_OF(
                        "NEW.type")) ";\n  RETURN NULL;\n"
                                     "END $$;"
                                     "CREATE TRIGGER events_webhooks AFTER INSERT ON events FOR EACH ROW "
                                     "EXECUTE FUNCTION durin_webhooks();",
  OTEL_CURSOR("BIGINT"),
  SECRETS_TABLE("BIGINT"),
  TRIGGERS_TABLES("BIGINT"),
  SCHEDULES_TABLES("BIGINT"),
};

int durin__sq_fail(struct durin_store *q, struct durin_err *err,
                   const char *what)
{
  int rc = db_errcode(q->db);
  int code = DURIN_ESTORE;

  if (rc == DB_BUSY || rc == DB_GONE)
    code = DURIN_EBUSY;
  else if (rc == DB_FENCED)
    code = DURIN_EFENCED;
  return durin_err_set(err, code, "store '%s': %s: %s", q->path, what,
                       db_errmsg(q->db));
}

/* After a COMMIT: tells the in-process listener which runs have new
 * events; after a ROLLBACK, forgets them. A wake too many is harmless
 * (a stream reads the log past its cursor); one too few is not. */
static void ev_hook_end(struct durin_store *q, int committed)
{
  int i, n = q->nev_runs;

  q->nev_runs = 0;
  for (i = 0; committed && q->ev_hook && i < n; i++)
    q->ev_hook(q->ev_hook_arg, q->ev_runs[i]);
}

void durin__sq_ev_note(struct durin_store *q, const char *run_id)
{
  int i;

  if (!q->ev_hook && !q->pg)
    return;
  for (i = 0; i < q->nev_runs; i++)
    if (!strcmp(q->ev_runs[i], run_id))
      return;
  if (q->nev_runs == q->aev_runs) {
    int na = q->aev_runs ? q->aev_runs * 2 : 16;
    char(*nr)[32] = realloc(q->ev_runs, (size_t)na * sizeof(*nr));

    if (!nr)
      return;
    q->ev_runs = nr;
    q->aev_runs = na;
  }
  snprintf(q->ev_runs[q->nev_runs++], 32, "%s", run_id);
}

/* Before a COMMIT on PostgreSQL: the runs with new events, for event
 * streams in other processes, as NOTIFY payloads of comma-separated run
 * ids (a group commit of a hundred runs is one or a few NOTIFYs, not a
 * hundred). Queued in the transaction's pipeline (no round trip) and
 * delivered by the server only if it commits. */
#define EV_NOTIFY_MAX 7000 /* the server takes payloads under 8000 bytes */
static void ev_notify(struct durin_store *q)
{
  char sql[EV_NOTIFY_MAX + 64];
  int i, off = 0;

  for (i = 0; i <= q->nev_runs; i++) {
    const char *id = i < q->nev_runs ? q->ev_runs[i] : NULL;

    /* Run ids are the store's own ("r" and hex); never quote one. */
    if (id && strchr(id, '\''))
      continue;
    if (off && (!id || off + strlen(id) + 4 > EV_NOTIFY_MAX)) {
      snprintf(sql + off, sizeof(sql) - (size_t)off, "'");
      db_exec(q->db, sql);
      off = 0;
    }
    if (!id)
      break;
    off += snprintf(sql + off, sizeof(sql) - (size_t)off, "%s%s",
                    off ? "," : "NOTIFY durin_events, '", id);
  }
}

int durin__sq_exec(struct durin_store *q, const char *sql,
                   struct durin_err *err)
{
  int rc;

  if (q->pg && q->nev_runs && !strcmp(sql, "COMMIT"))
    ev_notify(q);
  rc = db_exec(q->db, sql);

  if (q->nev_runs && (!strcmp(sql, "COMMIT") || !strcmp(sql, "ROLLBACK")))
    ev_hook_end(q, rc == DB_OK && sql[0] == 'C');
  if (rc != DB_OK)
    return durin__sq_fail(q, err, "running SQL");
  return 0;
}

void durin_store_on_events(struct durin_store *q,
                           void (*cb)(void *arg, const char *run_id), void *arg)
{
  q->ev_hook = cb;
  q->ev_hook_arg = arg;
  q->nev_runs = 0;
}

int durin_store_events_fd(struct durin_store *q)
{
  return q->db->ops->listen_fd(q->db, "durin_events");
}

struct split {
  void (*cb)(void *arg, const char *run_id);
  void *arg;
};

/* A payload is run ids separated by commas (ev_notify). */
static void split_ids(void *arg, const char *payload)
{
  struct split *sp = arg;
  char id[32];
  const char *p = payload, *comma;

  while (p && *p) {
    size_t n;

    comma = strchr(p, ',');
    n = comma ? (size_t)(comma - p) : strlen(p);
    if (n && n < sizeof(id)) {
      memcpy(id, p, n);
      id[n] = 0;
      sp->cb(sp->arg, id);
    }
    p = comma ? comma + 1 : NULL;
  }
}

int durin_store_events_drain(struct durin_store *q,
                             void (*cb)(void *arg, const char *run_id),
                             void *arg)
{
  struct split sp = { cb, arg };

  return q->db->ops->listen_drain(q->db, cb ? split_ids : NULL, &sp);
}

int durin__sq_begin(struct durin_store *q, int exclusive, struct durin_err *err)
{
  if (q->db->ops->begin(q->db, exclusive) != DB_OK) {
    int r = durin__sq_fail(q, err, "starting a transaction");

    /* A failure after BEGIN went through leaves it open. */
    db_exec(q->db, "ROLLBACK");
    return r;
  }
  return 0;
}

/* The schema version, read without any lock; -1 if it cannot be read
 * (a database durin has not set up yet). */
static int peek_version(struct durin_store *q)
{
  struct db_stmt *st;
  int v = -1;

  if (db_prepare(q->db,
                 q->pg ? "SELECT version FROM durin_schema" :
                         "PRAGMA user_version",
                 &st) != DB_OK)
    return -1;
  if (db_step(st) == DB_ROW)
    v = db_col_int(st, 0);
  db_finalize(st);
  return v;
}

static int migrate(struct durin_store *q, struct durin_err *err)
{
  const char *const *m = q->pg ? pg_migrations : migrations;
  int version = 0, r, i;

  /* Up to date, the usual case: no exclusive lock just to open. */
  if (peek_version(q) == N_MIGRATIONS)
    return 0;
  r = durin__sq_begin(q, 1, err);
  if (r)
    return r;
  if (q->db->ops->schema_version(q->db, &version) != DB_OK) {
    r = durin__sq_fail(q, err, "reading schema version");
    goto out;
  }
  if (version > N_MIGRATIONS) {
    r = durin_err_set(err, DURIN_ESCHEMA,
                      "store '%s' has schema version %d but this durin knows "
                      "only up to %d: upgrade durin",
                      q->path, version, N_MIGRATIONS);
    goto out;
  }
  for (i = version; i < N_MIGRATIONS && !r; i++)
    if (*m[i])
      r = durin__sq_exec(q, m[i], err);
  if (!r && version != N_MIGRATIONS &&
      q->db->ops->set_schema_version(q->db, N_MIGRATIONS) != DB_OK)
    r = durin__sq_fail(q, err, "writing schema version");
out:
  if (r) {
    durin__sq_exec(q, "ROLLBACK", NULL);
    return r;
  }
  return durin__sq_exec(q, "COMMIT", err);
}

void durin_store_close(struct durin_store *q)
{
  int i;

  if (!q)
    return;
  for (i = 0; i < ST__COUNT; i++)
    db_finalize(q->st[i]);
  for (i = 0; i <= SQ_EV_BATCH; i++)
    db_finalize(q->ev_ins[i]);
  if (q->db)
    q->db->ops->close(q->db);
  free(q->notes);
  free(q->ev_runs);
  durin__sq_flags_free(q);
  free(q->path);
  free(q->url);
  free(q);
}

const char *durin_store_url(const struct durin_store *q)
{
  return q->url;
}

/* The statements every step uses, prepared once per connection. */
static int prepare_all(struct durin_store *q, struct durin_err *err)
{
  int i;

  for (i = 0; i < ST__COUNT; i++)
    if ((q->pg || i != ST_FENCE_DEFERRED) &&
        db_prepare_persistent(q->db, stmt_sql[i], &q->st[i]) != DB_OK)
      return durin__sq_fail(q, err, "preparing statements");
  return 0;
}

int durin__sq_open_sqlite(const char *rest, const struct durin_store_opts *o,
                          struct durin_store **out, struct durin_err *err)
{
  struct durin_store *q = calloc(1, sizeof(*q));
  char dir[4096], msg[600];
  const char *slash;
  int r;

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
  if (db_sqlite_open(rest, o->sync_full, o->busy_timeout_ms, &q->db, msg,
                     sizeof(msg)) != DB_OK) {
    r = durin_err_set(err, DURIN_ESTORE,
                      "cannot open store 'sqlite:%s': %s (is the directory "
                      "writable?)",
                      rest, msg);
    goto out;
  }
  r = migrate(q, err);
  if (!r)
    r = prepare_all(q, err);
  if (r)
    goto out;
  *out = q;
  q = NULL;
out:
  durin_store_close(q);
  return r;
}

/* The URL for messages: a password in it (refused, but said) is not
 * repeated; neither is anything after "password=". */
static void shown_url(const char *url, char *out, size_t len)
{
  const char *at, *colon, *slash = strstr(url, "://"), *kw;

  snprintf(out, len, "%s", url);
  if (slash && (at = strchr(slash + 3, '@')) &&
      (!strchr(slash + 3, '/') || at < strchr(slash + 3, '/')) &&
      (colon = memchr(slash + 3, ':', (size_t)(at - slash - 3))))
    snprintf(out, len, "%.*s:***%s", (int)(colon - url), url, at);
  if ((kw = strstr(out, "password=")))
    snprintf(out + (kw - out), len - (size_t)(kw - out), "password=***");
}

/* rest is what follows "postgres:" ("//user@host:port/db?..."); libpq
 * takes the URL whole. */
int durin__sq_open_pg(const char *rest, struct durin_store **out,
                      struct durin_err *err)
{
  struct durin_store *q = calloc(1, sizeof(*q));
  char msg[600], shown[512];
  int r;

  if (!q)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  if (asprintf(&q->path, "postgres:%s", rest) < 0) {
    free(q);
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  }
  q->pg = 1;
  shown_url(q->path, shown, sizeof(shown));
  r = db_pg_open(q->path, &q->db, msg, sizeof(msg));
  if (r == DB_GONE) {
    r = durin_err_set(err, DURIN_EBUSY, "cannot reach store '%s': %s", shown,
                      msg);
    goto out;
  }
  if (r == DB_MISUSE) {
    r = durin_err_set(err, DURIN_EINVAL, "store '%s': %s", shown, msg);
    goto out;
  }
  if (r != DB_OK) {
    r = durin_err_set(err, DURIN_ESTORE,
                      "cannot open store '%s': %s (are the URL's user, "
                      "host, port and database, and the passfile, right?)",
                      shown, msg);
    goto out;
  }
  r = migrate(q, err);
  if (!r)
    r = prepare_all(q, err);
  if (r)
    goto out;
  *out = q;
  q = NULL;
out:
  durin_store_close(q);
  return r;
}

char *durin__sq_col_dup(struct db_stmt *st, int i)
{
  const char *t = db_col_text(st, i);

  return t ? strdup(t) : NULL;
}

int durin__sq_run_insert(struct durin_store *q, const struct durin_run_new *n,
                         struct durin_err *err)
{
  struct db_stmt *st = NULL;
  int r = 0, rc;

  if (db_prepare(
          q->db,
          "INSERT INTO runs(id, name, status, model, workspace, created_ms, "
          "updated_ms, tenant, priority, dedupe_key, concurrency_key, "
          "not_before_ms, max_recoveries, lease_owner, lease_expires_ms, "
          "progress_ms) VALUES(?1, ?2, 'queued', ?3, ?4, ?5, ?5, "
          "coalesce(?6, 'default'), ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?5)",
          &st) != DB_OK) {
    r = durin__sq_fail(q, err, "creating run");
    goto out;
  }
  db_bind_text(st, 1, n->id);
  db_bind_text(st, 2, n->name);
  db_bind_text(st, 3, n->model);
  db_bind_text(st, 4, n->workspace);
  db_bind_int64(st, 5, n->now_ms);
  db_bind_text(st, 6, n->tenant);
  db_bind_int64(st, 7, n->priority);
  db_bind_text(st, 8, n->dedupe_key);
  db_bind_text(st, 9, n->concurrency_key);
  db_bind_int64(st, 10, n->not_before_ms);
  db_bind_int64(st, 11, n->max_recoveries > 0 ? n->max_recoveries : 10);
  db_bind_text(st, 12, n->owner);
  if (n->owner)
    db_bind_int64(st, 13, n->lease_until_ms);
  rc = db_step(st);
  if (rc == DB_CONSTRAINT && n->dedupe_key) {
    /* The unique index on (tenant, dedupe_key) over active runs. */
    r = durin_err_set(err, DURIN_EEXIST,
                      "a run with dedupe key '%s' is already active",
                      n->dedupe_key);
    goto out;
  }
  if (rc != DB_DONE) {
    r = durin__sq_fail(q, err, "creating run");
    goto out;
  }
  db_finalize(st);
  st = NULL;
  if (db_prepare(q->db, "INSERT INTO run_specs(run_id, spec) VALUES(?1, ?2)",
                 &st) != DB_OK) {
    r = durin__sq_fail(q, err, "creating run");
    goto out;
  }
  db_bind_text(st, 1, n->id);
  db_bind_text(st, 2, n->spec_json);
  if (db_step(st) != DB_DONE)
    r = durin__sq_fail(q, err, "creating run");
  if (!r)
    r = durin__sq_run_extras(q, n, err);
out:
  db_finalize(st);
  return r;
}

int durin_store_run_create(struct durin_store *q, const struct durin_run_new *n,
                           struct durin_err *err)
{
  int r = durin__sq_begin(q, 0, err);

  if (r)
    return r;
  r = durin__sq_run_insert(q, n, err);
  /* A queued run: idle workers need not wait for their next poll. */
  if (!r && !n->owner)
    r = durin__sq_notify(q, err);
  if (r) {
    durin__sq_exec(q, "ROLLBACK", NULL);
    return r;
  }
  return durin__sq_exec(q, "COMMIT", err);
}

void durin__sq_row_to_run(struct db_stmt *st, struct durin_run_info *ri)
{
  const char *id = db_col_text(st, 0);

  memset(ri, 0, sizeof(*ri));
  snprintf(ri->id, sizeof(ri->id), "%s", id ? id : "");
  ri->name = durin__sq_col_dup(st, 1);
  ri->spec_json = durin__sq_col_dup(st, 2);
  ri->model = durin__sq_col_dup(st, 3);
  ri->workspace = durin__sq_col_dup(st, 4);
  ri->reason = durin__sq_col_dup(st, 5);
  ri->lease_owner = durin__sq_col_dup(st, 6);
  if (durin_run_status_parse(db_col_text(st, 7), &ri->status))
    ri->status = DURIN_RUN_FAILED;
  ri->created_ms = db_col_int64(st, 8);
  ri->started_ms = db_col_int64(st, 9);
  ri->updated_ms = db_col_int64(st, 10);
  ri->finished_ms = db_col_int64(st, 11);
  ri->lease_epoch = (uint64_t)db_col_int64(st, 12);
  ri->lease_expires_ms = db_col_int64(st, 13);
  ri->attempt = db_col_int64(st, 14);
  ri->last_seq = db_col_int64(st, 15);
  ri->cancel_requested = db_col_int(st, 16);
  ri->usage.steps = db_col_int64(st, 17);
  ri->usage.input_tokens = db_col_int64(st, 18);
  ri->usage.output_tokens = db_col_int64(st, 19);
  ri->usage.model_calls = db_col_int64(st, 20);
  ri->usage.tool_calls = db_col_int64(st, 21);
  ri->usage.retries = db_col_int64(st, 22);
  ri->usage.cost_usd = db_col_double(st, 23);
  ri->pause_requested = db_col_int(st, 24);
  ri->tenant = durin__sq_col_dup(st, 25);
  ri->dedupe_key = durin__sq_col_dup(st, 26);
  ri->concurrency_key = durin__sq_col_dup(st, 27);
  ri->priority = db_col_int64(st, 28);
  ri->not_before_ms = db_col_int64(st, 29);
  ri->recoveries = db_col_int64(st, 30);
  ri->max_recoveries = db_col_int64(st, 31);
  ri->resolve = (int)db_col_int64(st, 32);
}

int durin_store_run_get(struct durin_store *q, const char *id,
                        struct durin_run_info *out, struct durin_err *err)
{
  struct db_stmt *st = q->st[ST_RUN_GET];
  int r = 0, rc;

  db_bind_text(st, 1, id);
  rc = db_step(st);
  if (rc == DB_ROW)
    durin__sq_row_to_run(st, out);
  else if (rc == DB_DONE)
    r = durin_err_set(err, DURIN_ENOTFOUND, "no run '%s' in this store", id);
  else
    r = durin__sq_fail(q, err, "reading run");
  db_reset(st);
  db_clear(st);
  return r;
}

int durin_store_run_resolve(struct durin_store *q, const char *prefix,
                            char id[32], struct durin_err *err)
{
  struct db_stmt *st = NULL;
  int r = 0, n = 0, rc;

  if (db_prepare(
          q->db,
          "SELECT id FROM runs WHERE substr(id, 1, length(CAST(?1 AS TEXT))) "
          "= ?1 ORDER BY id LIMIT 2",
          &st) != DB_OK)
    return durin__sq_fail(q, err, "finding run");
  db_bind_text(st, 1, prefix);
  while ((rc = db_step(st)) == DB_ROW) {
    if (n++ == 0)
      snprintf(id, 32, "%s", db_col_text(st, 0));
  }
  if (rc != DB_DONE)
    r = durin__sq_fail(q, err, "finding run");
  else if (n == 0)
    r = durin_err_set(err, DURIN_ENOTFOUND,
                      "no run '%s' in this store (see 'durin ls')", prefix);
  else if (n > 1)
    r = durin_err_set(err, DURIN_EINVAL,
                      "run id '%s' is ambiguous: give more characters", prefix);
  db_finalize(st);
  return r;
}

int durin_store_run_list(struct durin_store *q,
                         const struct durin_run_filter *f, durin_run_cb cb,
                         void *arg, struct durin_err *err)
{
  struct db_stmt *st = NULL;
  struct durin_run_info ri;
  int r = 0, rc, shown = 0;

  if (db_prepare(q->db,
                 "SELECT " RUN_COLS_LIST " FROM runs ORDER BY "
                 "created_ms, "
                 "id",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "listing runs");
  while ((rc = db_step(st)) == DB_ROW) {
    durin__sq_row_to_run(st, &ri);
    if (!f || !f->status_mask || (f->status_mask & (1 << ri.status))) {
      r = cb(&ri, arg);
      shown++;
    }
    durin_run_info_clear(&ri);
    if (r || (f && f->limit && shown >= f->limit))
      break;
  }
  if (!r && rc != DB_ROW && rc != DB_DONE)
    r = durin__sq_fail(q, err, "listing runs");
  db_finalize(st);
  return r;
}

int durin_store_run_claim(struct durin_store *q, const char *id,
                          const char *owner, int64_t now_ms, int64_t ttl_ms,
                          uint64_t *epoch, struct durin_err *err)
{
  struct db_stmt *st = NULL;
  int r = 0, rc;

  /*
   * One conditional update: terminal runs cannot be claimed, and the epoch
   * moves forward atomically with the new owner.
   */
  if (db_prepare(
          q->db,
          "UPDATE runs SET lease_epoch = lease_epoch + 1, lease_owner = ?2, "
          "lease_expires_ms = ?3, attempt = attempt + 1, updated_ms = ?4, "
          "started_ms = coalesce(started_ms, ?4) WHERE id = ?1 AND status NOT "
          "IN ('succeeded', 'failed', 'cancelled', 'budget_exceeded') "
          "RETURNING lease_epoch, last_seq",
          &st) != DB_OK)
    return durin__sq_fail(q, err, "claiming run");
  db_bind_text(st, 1, id);
  db_bind_text(st, 2, owner);
  db_bind_int64(st, 3, now_ms + ttl_ms);
  db_bind_int64(st, 4, now_ms);
  rc = db_step(st);
  if (rc == DB_ROW) {
    *epoch = (uint64_t)db_col_int64(st, 0);
    durin__sq_seq_known(q, id, *epoch, db_col_int64(st, 1));
    rc = db_step(st);
  } else if (rc == DB_DONE) {
    r = durin_err_set(err, DURIN_ESTATE, "run '%s' has ended or does not exist",
                      id);
  }
  if (!r && rc != DB_DONE)
    r = durin__sq_fail(q, err, "claiming run");
  db_finalize(st);
  if (!r)
    durin_fault_point("after_claim");
  return r;
}

/* A request, not a fenced write: the holder of the lease acts on it, so
 * cancelling never races a step's commit. */
int durin_store_run_request_cancel(struct durin_store *q, const char *id,
                                   struct durin_err *err)
{
  struct db_stmt *st = NULL;
  int r = 0;

  if (db_prepare(q->db, "UPDATE runs SET cancel_requested = 1 WHERE id = ?1",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "cancelling run");
  db_bind_text(st, 1, id);
  if (db_step(st) != DB_DONE)
    r = durin__sq_fail(q, err, "cancelling run");
  else if (db_changes(q->db) == 0)
    r = durin_err_set(err, DURIN_ENOTFOUND, "no run '%s'", id);
  db_finalize(st);
  return r;
}

/* Resets and unbinds st after a step that returned rc. */
static int step_end(struct durin_store *q, struct db_stmt *st, int rc,
                    const char *what, struct durin_err *err)
{
  db_reset(st);
  db_clear(st);
  if (rc != DB_DONE && rc != DB_ROW)
    return durin__sq_fail(q, err, what);
  return 0;
}

/* The same for a write nobody reads back: on PostgreSQL it is pipelined,
 * and its failure fails the transaction's commit instead. */
int durin__sq_step_nowait(struct durin_store *q, struct db_stmt *st,
                          const char *what, struct durin_err *err)
{
  return step_end(q, st, db_step_nowait(st), what, err);
}

/* Runs a reset, bound statement to completion. */
int durin__sq_step_done(struct durin_store *q, struct db_stmt *st,
                        const char *what, struct durin_err *err)
{
  return step_end(q, st, db_step(st), what, err);
}

int durin__sq_exec_id(struct durin_store *q, const char *sql, const char *id,
                      int64_t now, const char *what, struct durin_err *err)
{
  struct db_stmt *st;
  int r;

  if (db_prepare(q->db, sql, &st) != DB_OK)
    return durin__sq_fail(q, err, what);
  db_bind_text(st, 1, id);
  db_bind_int64(st, 2, now);
  r = durin__sq_step_nowait(q, st, what, err);
  db_finalize(st);
  return r;
}

/* Only the latest checkpoint is kept: the log is the history. */
int durin_txn_checkpoint_put(struct durin_txn *txn, const char *run_id,
                             int64_t step, const char *data,
                             struct durin_err *err)
{
  struct durin_store *q = txn->q;
  struct db_stmt *st = q->st[ST_CKPT_PUT];

  txn->wrote = 1;
  db_bind_text(st, 1, run_id);
  db_bind_int64(st, 2, step);
  db_bind_text(st, 3, data);
  return durin__sq_step_nowait(q, st, "writing checkpoint", err);
}

int durin_txn_run_update(struct durin_txn *txn, const char *run_id,
                         const struct durin_run_update *u,
                         struct durin_err *err)
{
  struct durin_store *q = txn->q;
  struct db_stmt *st = q->st[ST_RUN_UPDATE];
  int64_t seq_n, seq_ms;
  int r;

  db_bind_text(st, 1, run_id);
  db_bind_int64(st, 2, u->now_ms);
  if (durin__sq_seq_pending(q, run_id, &seq_n, &seq_ms)) {
    db_bind_int64(st, 15, seq_n);
    db_bind_int64(st, 16, seq_ms);
  }
  if (u->status)
    db_bind_text(st, 3, durin_run_status_name(*u->status));
  if (u->reason)
    db_bind_text(st, 4, u->reason);
  if (u->started_ms >= 0)
    db_bind_int64(st, 5, u->started_ms);
  if (u->finished_ms >= 0)
    db_bind_int64(st, 6, u->finished_ms);
  db_bind_int64(st, 7, u->release_lease);
  if (u->usage) {
    db_bind_int64(st, 8, u->usage->steps);
    db_bind_int64(st, 9, u->usage->input_tokens);
    db_bind_int64(st, 10, u->usage->output_tokens);
    db_bind_int64(st, 11, u->usage->model_calls);
    db_bind_int64(st, 12, u->usage->tool_calls);
    db_bind_int64(st, 13, u->usage->retries);
    db_bind_double(st, 14, u->usage->cost_usd);
  }
  r = durin__sq_step_nowait(q, st, "updating run", err);
  /* Let go without an end: the run is ready for someone else. */
  if (!r && u->release_lease && !u->status)
    r = durin__sq_notify(q, err);
  /* A run that ends leaves no question open. */
  if (!r && u->status && durin_run_status_terminal(*u->status))
    r = durin__sq_approvals_cancel(q, run_id, u->now_ms, err);
  return r;
}

int durin_txn_ledger_intent(struct durin_txn *txn,
                            const struct durin_ledger_entry *e,
                            struct durin_err *err)
{
  struct durin_store *q = txn->q;
  struct db_stmt *st = q->st[ST_LEDGER_INTENT];

  db_bind_text(st, 1, e->run_id);
  db_bind_int64(st, 2, e->step);
  db_bind_int64(st, 3, e->call_idx);
  db_bind_text(st, 4, e->call_id);
  db_bind_text(st, 5, e->tool);
  db_bind_text(st, 6, e->effect);
  db_bind_text(st, 7, e->args_hash);
  db_bind_text(st, 8, e->idem_key);
  db_bind_text(st, 9, e->args);
  db_bind_int64(st, 10, e->intent_ms);
  db_bind_int64(st, 11, e->contained);
  return durin__sq_step_nowait(q, st, "recording ledger intent", err);
}

/* An outcome without its intent is a bug somewhere: refuse it loudly. */
int durin_txn_ledger_outcome(struct durin_txn *txn, const char *run_id,
                             int64_t step, int call_idx, const char *outcome,
                             int64_t now_ms, struct durin_err *err)
{
  struct durin_store *q = txn->q;
  struct db_stmt *st = q->st[ST_LEDGER_OUTCOME];
  int r;

  db_bind_text(st, 1, run_id);
  db_bind_int64(st, 2, step);
  db_bind_int64(st, 3, call_idx);
  db_bind_text(st, 4, outcome);
  db_bind_int64(st, 5, now_ms);
  r = durin__sq_step_done(q, st, "recording ledger outcome", err);
  if (!r && db_changes(q->db) == 0)
    r = durin_err_set(err, DURIN_ENOTFOUND,
                      "no ledger intent for run '%s' step %lld call %d", run_id,
                      (long long)step, call_idx);
  return r;
}

int durin_txn_pending_put(struct durin_txn *txn, const char *run_id,
                          int64_t step, const char *response,
                          struct durin_err *err)
{
  struct durin_store *q = txn->q;
  struct db_stmt *st = q->st[ST_PENDING_PUT];

  db_bind_text(st, 1, run_id);
  db_bind_int64(st, 2, step);
  db_bind_text(st, 3, response);
  return durin__sq_step_nowait(q, st, "recording pending response", err);
}

int durin_txn_pending_clear(struct durin_txn *txn, const char *run_id,
                            struct durin_err *err)
{
  struct durin_store *q = txn->q;
  struct db_stmt *st = q->st[ST_PENDING_CLEAR];

  db_bind_text(st, 1, run_id);
  return durin__sq_step_nowait(q, st, "clearing pending response", err);
}

/* The event of a row of "SELECT seq, ts_ms, step, type, data" (its text
 * points into the row). */
static void event_of_row(struct db_stmt *st, struct durin_event *ev)
{
  ev->seq = db_col_int64(st, 0);
  ev->ts_ms = db_col_int64(st, 1);
  ev->step = db_col_int64(st, 2);
  ev->type = db_col_text(st, 3);
  ev->data = db_col_text(st, 4);
}

int durin_store_events_read(struct durin_store *q, const char *run_id,
                            int64_t from_seq, int64_t max, durin_event_cb cb,
                            void *arg, struct durin_err *err)
{
  struct db_stmt *st = NULL;
  int r = 0, rc;

  if (db_prepare(q->db,
                 "SELECT seq, ts_ms, step, type, data FROM events "
                 "WHERE run_id = ?1 AND seq >= ?2 ORDER BY seq "
                 "LIMIT ?3",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "reading events");
  db_bind_text(st, 1, run_id);
  db_bind_int64(st, 2, from_seq);
  db_bind_int64(st, 3, max > 0 ? max : INT64_MAX);
  while ((rc = db_step(st)) == DB_ROW) {
    struct durin_event ev;

    event_of_row(st, &ev);
    r = cb(&ev, arg);
    if (r)
      break;
  }
  if (!r && rc != DB_DONE)
    r = durin__sq_fail(q, err, "reading events");
  db_finalize(st);
  return r;
}

int durin_store_event_last(struct durin_store *q, const char *run_id,
                           const char *type, durin_event_cb cb, void *arg,
                           struct durin_err *err)
{
  struct db_stmt *st = NULL;
  struct durin_event ev;
  int r = DURIN_ENOTFOUND, rc;

  /* Backwards along the (run_id, seq) index: the latest comes first. */
  if (db_prepare(q->db,
                 "SELECT seq, ts_ms, step, type, data FROM events "
                 "WHERE run_id = ?1 AND type = ?2 ORDER BY seq DESC LIMIT 1",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "reading events");
  db_bind_text(st, 1, run_id);
  db_bind_text(st, 2, type);
  rc = db_step(st);
  if (rc == DB_ROW) {
    event_of_row(st, &ev);
    r = cb(&ev, arg);
  } else if (rc != DB_DONE) {
    r = durin__sq_fail(q, err, "reading events");
  }
  db_finalize(st);
  return r;
}

/* One run's (step, text) row of sql; DURIN_ENOTFOUND (without a message)
 * if it has none. */
static int step_text(struct durin_store *q, const char *sql, const char *run_id,
                     int64_t *step, char **text, const char *what,
                     struct durin_err *err)
{
  struct db_stmt *st = NULL;
  int r = 0, rc;

  if (db_prepare(q->db, sql, &st) != DB_OK)
    return durin__sq_fail(q, err, what);
  db_bind_text(st, 1, run_id);
  rc = db_step(st);
  if (rc == DB_ROW) {
    *step = db_col_int64(st, 0);
    *text = durin__sq_col_dup(st, 1);
  } else if (rc == DB_DONE) {
    r = DURIN_ENOTFOUND;
  } else {
    r = durin__sq_fail(q, err, what);
  }
  db_finalize(st);
  return r;
}

int durin_store_checkpoint_get(struct durin_store *q, const char *run_id,
                               int64_t *step, char **data,
                               struct durin_err *err)
{
  int r = step_text(q, "SELECT step, data FROM checkpoints WHERE run_id = ?1",
                    run_id, step, data, "reading checkpoint", err);

  if (r == DURIN_ENOTFOUND)
    durin_err_set(err, r, "run '%s' has no checkpoint", run_id);
  return r;
}

int durin_store_ledger_read(struct durin_store *q, const char *run_id,
                            int64_t step, durin_ledger_cb cb, void *arg,
                            struct durin_err *err)
{
  struct db_stmt *st = NULL;
  int r = 0, rc;

  if (db_prepare(q->db,
                 "SELECT step, call_idx, call_id, tool, effect, "
                 "args_hash, idem_key, args, done, outcome, intent_ms, "
                 "outcome_ms, contained FROM ledger WHERE run_id = ?1 AND "
                 "(?2 < 0 OR step = ?2) ORDER BY step, call_idx",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "reading ledger");
  db_bind_text(st, 1, run_id);
  db_bind_int64(st, 2, step);
  while ((rc = db_step(st)) == DB_ROW) {
    struct durin_ledger_entry e;

    memset(&e, 0, sizeof(e));
    snprintf(e.run_id, sizeof(e.run_id), "%s", run_id);
    e.step = db_col_int64(st, 0);
    e.call_idx = db_col_int(st, 1);
    e.call_id = db_col_text(st, 2);
    e.tool = db_col_text(st, 3);
    e.effect = db_col_text(st, 4);
    e.args_hash = db_col_text(st, 5);
    e.idem_key = db_col_text(st, 6);
    e.args = db_col_text(st, 7);
    e.done = db_col_int(st, 8);
    e.outcome = db_col_text(st, 9);
    e.intent_ms = db_col_int64(st, 10);
    e.outcome_ms = db_col_int64(st, 11);
    e.contained = db_col_int(st, 12);
    r = cb(&e, arg);
    if (r)
      break;
  }
  if (!r && rc != DB_DONE)
    r = durin__sq_fail(q, err, "reading ledger");
  db_finalize(st);
  return r;
}

int durin_store_pending_get(struct durin_store *q, const char *run_id,
                            int64_t *step, char **response,
                            struct durin_err *err)
{
  return step_text(q, "SELECT step, response FROM pending WHERE run_id = ?1",
                   run_id, step, response, "reading pending response", err);
}

int durin_store_wakeup_fd(struct durin_store *q)
{
  return q->db->ops->listen_fd(q->db, "durin_work");
}

int durin_store_wakeup_drain(struct durin_store *q)
{
  return q->db->ops->listen_drain(q->db, NULL, NULL);
}

int durin__sq_notify(struct durin_store *q, struct durin_err *err)
{
  if (q->db->ops->notify(q->db) != DB_OK)
    return durin__sq_fail(q, err, "waking workers");
  return 0;
}

int64_t durin_store_size_bytes(struct durin_store *q)
{
  return q->db->ops->size_bytes(q->db);
}
