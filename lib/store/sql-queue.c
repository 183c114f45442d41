/*
 * The queue: claims, heartbeats, signals, the watchdog, pause, dedupe and
 * limits. Every state change is one conditional statement (or one
 * exclusive transaction: SQLite's write lock, PostgreSQL's advisory lock),
 * so two workers can never both believe they claimed a run: the second
 * UPDATE finds lease_owner already set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "durin/store.h"
#include "durin/util.h"
#include "store/sql-int.h"

#define READY                                               \
 "lease_owner IS NULL AND status IN ('queued', 'running', " \
 "'evaluating')"
#define TERMINAL "('succeeded', 'failed', 'cancelled', 'budget_exceeded')"
/* READY for one row found by its id, worded so that it does not imply the
 * runs_ready index's predicate: otherwise PostgreSQL may scan that whole
 * index (every ready run) for the one id instead of using the primary key. */
#define READY_BY_ID                                                    \
 "coalesce(lease_owner, '') = '' AND status IN ('queued', 'running', " \
 "'evaluating')"

static int prep(struct durin_store *q, const char *sql, struct db_stmt **st,
                const char *what, struct durin_err *err)
{
  if (db_prepare(q->db, sql, st) != DB_OK)
    return durin__sq_fail(q, err, what);
  return 0;
}

int durin_store_run_find_active(struct durin_store *q, const char *tenant,
                                const char *dedupe_key, char id[32],
                                struct durin_err *err)
{
  struct db_stmt *st;
  int r, rc;

  if (!tenant)
    tenant = "default";
  r = prep(q,
           "SELECT id FROM runs WHERE tenant = ?1 AND dedupe_key = ?2 AND "
           "status NOT IN " TERMINAL,
           &st, "finding run by dedupe key", err);
  if (r)
    return r;
  db_bind_text(st, 1, tenant);
  db_bind_text(st, 2, dedupe_key);
  rc = db_step(st);
  if (rc == DB_ROW)
    snprintf(id, 32, "%s", db_col_text(st, 0));
  else if (rc == DB_DONE)
    r = DURIN_ENOTFOUND;
  else
    r = durin__sq_fail(q, err, "finding run by dedupe key");
  db_finalize(st);
  return r;
}

/* Runs one bound statement and reports how many rows it changed. */
static int run_changes(struct durin_store *q, struct db_stmt *st,
                       const char *what, int *changed, struct durin_err *err)
{
  int rc = db_step(st);

  while (rc == DB_ROW)
    rc = db_step(st);
  if (rc != DB_DONE) {
    int r = durin__sq_fail(q, err, what);

    db_finalize(st);
    return r;
  }
  *changed = db_changes(q->db);
  db_finalize(st);
  return 0;
}

int durin_store_run_pause(struct durin_store *q, const char *id, int64_t now_ms,
                          struct durin_err *err)
{
  struct db_stmt *st;
  int r, changed = 0;

  /* Nobody holds it: paused now. Held: the holder pauses at a boundary. */
  r = prep(q,
           "UPDATE runs SET pause_requested = CASE WHEN lease_owner IS NULL "
           "THEN 0 ELSE 1 END, status = CASE WHEN lease_owner IS NULL THEN "
           "'paused' ELSE status END, updated_ms = ?2 WHERE id = ?1 AND "
           "status IN ('queued', 'running', 'evaluating', 'paused')",
           &st, "pausing run", err);
  if (r)
    return r;
  db_bind_text(st, 1, id);
  db_bind_int64(st, 2, now_ms);
  r = run_changes(q, st, "pausing run", &changed, err);
  if (!r && !changed)
    r = durin_err_set(err, DURIN_ESTATE,
                      "run '%s' cannot be paused: it has ended or waits for "
                      "a human (see 'durin show %s')",
                      id, id);
  return r;
}

int durin_store_run_unpause(struct durin_store *q, const char *id,
                            int64_t now_ms, struct durin_err *err)
{
  struct db_stmt *st;
  int r, changed = 0;

  r = prep(q,
           "UPDATE runs SET status = CASE WHEN last_seq > 0 THEN 'running' "
           "ELSE 'queued' END, pause_requested = 0, updated_ms = ?2 "
           "WHERE id = ?1 AND (status = 'paused' OR pause_requested = 1)",
           &st, "unpausing run", err);
  if (r)
    return r;
  db_bind_text(st, 1, id);
  db_bind_int64(st, 2, now_ms);
  r = run_changes(q, st, "unpausing run", &changed, err);
  if (!r && !changed)
    r = durin_err_set(err, DURIN_ESTATE, "run '%s' is not paused", id);
  if (!r)
    r = durin__sq_notify(q, err);
  return r;
}

int durin_store_run_requeue(struct durin_store *q, const char *id, int resolve,
                            const char *who, int64_t now_ms,
                            struct durin_err *err)
{
  struct db_stmt *st;
  int r, changed = 0;

  if ((r = durin__sq_begin(q, 1, err)))
    return r;
  r = prep(q,
           "UPDATE runs SET status = CASE WHEN last_seq > 0 THEN 'running' "
           "ELSE 'queued' END, reason = NULL, resolve = ?3, updated_ms = ?2 "
           "WHERE id = ?1 AND status = 'needs_human' AND lease_owner IS NULL",
           &st, "resuming run", err);
  if (!r) {
    db_bind_text(st, 1, id);
    db_bind_int64(st, 2, now_ms);
    if (resolve >= 0)
      db_bind_int64(st, 3, resolve);
    r = run_changes(q, st, "resuming run", &changed, err);
  }
  if (!r && !changed)
    r = durin_err_set(err, DURIN_ESTATE,
                      "run '%s' does not need a human (or a process holds "
                      "it): only a needs_human run can be resumed",
                      id);
  if (!r)
    r = durin__sq_event_json(q, id, 0, now_ms, "control",
                             json_pack("{s:s,s:s?,s:s}", "action", "resume",
                                       "by", who, "resolution",
                                       resolve < 0 ? "none" :
                                       resolve     ? "retry-call" :
                                                     "skip-call"),
                             err);
  if (!r)
    r = durin__sq_notify(q, err);
  if (r) {
    durin__sq_exec(q, "ROLLBACK", NULL);
    return r;
  }
  return durin__sq_exec(q, "COMMIT", err);
}

/* Candidates loaded at a time per tenant. */
#define PAGE 64

/* What the claim knows about one tenant with ready runs. */
struct tenant {
  char *name;
  int64_t held, limit; /* limit < 0: none */
  /* The serial of its last claimed pick (0: never), then of this claim's
   * last pick; claimed: the serial to record once the claim held. */
  int64_t served, claimed;
  struct cand {
    char id[32];
    char *key;
  } c[PAGE];
  int nc, next;
  /* Where the loaded page of candidates ended, to load the one after. */
  int more;
  int64_t last_prio, last_created;
  char last_id[32];
};

/* Loads t's next page of claimable runs, in priority then age order. */
static int load_cands(struct durin_store *q, struct db_stmt *cand,
                      struct tenant *t, int64_t now_ms, struct durin_err *err)
{
  int first = t->last_id[0] == 0, rc, i;

  for (i = 0; i < t->nc; i++)
    free(t->c[i].key);
  t->nc = t->next = t->more = 0;
  db_bind_text(cand, 1, t->name);
  db_bind_int64(cand, 2, now_ms);
  db_bind_int64(cand, 3, first);
  db_bind_int64(cand, 4, t->last_prio);
  db_bind_int64(cand, 5, t->last_created);
  db_bind_text(cand, 6, t->last_id);
  db_bind_int64(cand, 7, PAGE);
  while ((rc = db_step(cand)) == DB_ROW) {
    const char *key = db_col_text(cand, 1);
    struct cand *c = &t->c[t->nc++];

    snprintf(c->id, sizeof(c->id), "%s", db_col_text(cand, 0));
    c->key = key ? strdup(key) : NULL;
    t->last_prio = db_col_int64(cand, 2);
    t->last_created = db_col_int64(cand, 3);
  }
  if (t->nc)
    memcpy(t->last_id, t->c[t->nc - 1].id, sizeof(t->last_id));
  t->more = t->nc == PAGE;
  db_reset(cand);
  return rc == DB_DONE ? 0 : durin__sq_fail(q, err, "listing ready runs");
}

/* A tenant's ready runs, a page at a time: priority, then age. */
#define CANDS                                                          \
 "SELECT id, concurrency_key, priority, created_ms FROM runs "         \
 "WHERE tenant = ?1 AND " READY " AND pause_requested = 0 AND "        \
 "not_before_ms <= ?2 AND (?3 = 1 OR priority < ?4 OR (priority = ?4 " \
 "AND (created_ms > ?5 OR (created_ms = ?5 AND id > ?6)))) "           \
 "ORDER BY priority DESC, created_ms, id LIMIT ?7"

/* Lists the tenants with ready runs and each one's first page of them;
 * *cand is the prepared page query, kept for later pages. */
static int load_tenants(struct durin_store *q, int64_t now_ms,
                        struct tenant **out, int *nout, struct db_stmt **cand,
                        struct durin_err *err)
{
  struct db_stmt *next = NULL;
  struct tenant *t = NULL;
  char *last = strdup("");
  int n = 0, r, rc;

  /* The next tenant with ready runs, how many it holds, its limit and
   * when it was last served: one statement, one round trip. */
  r = prep(q,
           "SELECT t.tenant, (SELECT count(*) FROM runs h WHERE h.tenant = "
           "t.tenant AND h.lease_owner IS NOT NULL), coalesce((SELECT "
           "max_running FROM queue_limits WHERE scope = 'tenant:' || "
           "t.tenant), -1), coalesce((SELECT served FROM queue_served s "
           "WHERE s.tenant = t.tenant), 0) FROM (SELECT tenant FROM runs "
           "WHERE " READY " AND tenant > ?1 ORDER BY tenant LIMIT 1) t",
           &next, "listing tenants", err);
  /* On PostgreSQL the candidates are locked as they are listed, and a
   * run another writer holds locked (a cancel, a claim by id) is passed
   * over, not waited for. Claimers do not contend here: they take the
   * claim lock first. */
  if (!r)
    r = prep(q, q->pg ? CANDS " FOR UPDATE SKIP LOCKED" : CANDS, cand,
             "listing ready runs", err);
  while (!r) {
    struct tenant *x;

    db_bind_text(next, 1, last);
    rc = db_step(next);
    if (rc == DB_DONE)
      break;
    if (rc != DB_ROW) {
      r = durin__sq_fail(q, err, "listing tenants");
      break;
    }
    free(last);
    last = strdup(db_col_text(next, 0));
    t = realloc(t, (size_t)(n + 1) * sizeof(*t));
    x = &t[n++];
    memset(x, 0, sizeof(*x));
    x->name = strdup(last);
    x->held = db_col_int64(next, 1);
    x->limit = db_col_int64(next, 2);
    x->served = db_col_int64(next, 3);
    db_reset(next);
    r = load_cands(q, *cand, x, now_ms, err);
  }
  db_finalize(next);
  free(last);
  *out = t;
  *nout = n;
  return r;
}

static void tenants_free(struct tenant *t, int n)
{
  int i, j;

  for (i = 0; i < n; i++) {
    free(t[i].name);
    for (j = 0; j < t[i].nc; j++)
      free(t[i].c[j].key);
  }
  free(t);
}

/* Held runs under a concurrency key, remembered across one claim. */
struct keycount {
  char *key;
  int64_t held, limit;
};

static int key_lookup(struct durin_store *q, struct keycount **kc, int *nk,
                      const char *key, struct keycount **out,
                      struct durin_err *err)
{
  struct db_stmt *st;
  struct keycount *k;
  int i, r;

  for (i = 0; i < *nk; i++) {
    if (!strcmp((*kc)[i].key, key)) {
      *out = &(*kc)[i];
      return 0;
    }
  }
  *kc = realloc(*kc, (size_t)(*nk + 1) * sizeof(**kc));
  k = &(*kc)[(*nk)++];
  k->key = strdup(key);
  k->held = 0;
  k->limit = 1;
  *out = k;
  /* Held runs and the limit in one statement, as for a tenant. A key
   * without a configured limit: one run at a time. */
  r = prep(q,
           "SELECT (SELECT count(*) FROM runs WHERE concurrency_key = ?1 AND "
           "lease_owner IS NOT NULL), coalesce((SELECT max_running FROM "
           "queue_limits WHERE scope = 'key:' || ?1), 1)",
           &st, "counting held runs", err);
  if (r)
    return r;
  db_bind_text(st, 1, key);
  if (db_step(st) == DB_ROW) {
    k->held = db_col_int64(st, 0);
    k->limit = db_col_int64(st, 1);
  } else {
    r = durin__sq_fail(q, err, "counting held runs");
  }
  db_finalize(st);
  return r;
}

/* The last serial any claim handed out (0: none yet). */
static int served_last(struct durin_store *q, int64_t *serial,
                       struct durin_err *err)
{
  struct db_stmt *st;
  int r;

  r = prep(q, "SELECT coalesce(max(served), 0) FROM queue_served", &st,
           "reading fair share", err);
  if (r)
    return r;
  if (db_step(st) == DB_ROW)
    *serial = db_col_int64(st, 0);
  else
    r = durin__sq_fail(q, err, "reading fair share");
  db_finalize(st);
  return r;
}

/* Records, for each tenant this claim served, its last claimed pick. */
static int served_record(struct durin_store *q, struct tenant *t, int nt,
                         struct durin_err *err)
{
  struct db_stmt *st = NULL;
  int r, i;

  r = prep(q,
           "INSERT INTO queue_served(tenant, served) VALUES(?1, ?2) "
           "ON CONFLICT(tenant) DO UPDATE SET served = excluded.served",
           &st, "recording fair share", err);
  for (i = 0; !r && i < nt; i++) {
    if (!t[i].claimed)
      continue;
    db_bind_text(st, 1, t[i].name);
    db_bind_int64(st, 2, t[i].claimed);
    r = durin__sq_step_done(q, st, "recording fair share", err);
  }
  db_finalize(st);
  return r;
}

/*
 * Claims the picks in out[0..n) in one UPDATE per CLAIM_CHUNK (its
 * parameters: 3 + the ids), found by primary key. A pick that changed since
 * it was listed (cancelled, claimed by id) returns no row and keeps epoch
 * 0.
 */
#define CLAIM_CHUNK 48
static int claim_picks(struct durin_store *q, const char *owner, int64_t now_ms,
                       int64_t ttl_ms, struct durin_claim *out, int n,
                       struct durin_err *err)
{
  char sql[1024];
  int from, r = 0;

  for (from = 0; !r && from < n; from += CLAIM_CHUNK) {
    int k = n - from < CLAIM_CHUNK ? n - from : CLAIM_CHUNK, i, off, rc;
    struct db_stmt *st;

    off = snprintf(sql, sizeof(sql),
                   "UPDATE runs SET lease_epoch = lease_epoch + 1, "
                   "lease_owner = ?1, lease_expires_ms = ?2, attempt = "
                   "attempt + 1, updated_ms = ?3, progress_ms = ?3, "
                   "started_ms = coalesce(started_ms, ?3) WHERE id IN (");
    for (i = 0; i < k; i++)
      off += snprintf(sql + off, sizeof(sql) - (size_t)off, "%s?%d",
                      i ? ", " : "", i + 4);
    snprintf(sql + off, sizeof(sql) - (size_t)off,
             ") AND " READY_BY_ID " RETURNING id, lease_epoch, attempt, "
             "last_seq");
    r = prep(q, sql, &st, "claiming runs", err);
    if (r)
      break;
    db_bind_text(st, 1, owner);
    db_bind_int64(st, 2, now_ms + ttl_ms);
    db_bind_int64(st, 3, now_ms);
    for (i = 0; i < k; i++)
      db_bind_text(st, i + 4, out[from + i].id);
    while ((rc = db_step(st)) == DB_ROW) {
      const char *id = db_col_text(st, 0);

      for (i = from; i < from + k; i++) {
        if (!strcmp(out[i].id, id)) {
          out[i].epoch = (uint64_t)db_col_int64(st, 1);
          out[i].attempt = db_col_int64(st, 2);
          out[i].last_seq = db_col_int64(st, 3);
          break;
        }
      }
    }
    if (rc != DB_DONE)
      r = durin__sq_fail(q, err, "claiming runs");
    db_finalize(st);
  }
  return r;
}

int durin_store_queue_claim(struct durin_store *q, const char *owner,
                            int64_t now_ms, int64_t ttl_ms, int max,
                            struct durin_claim *out, int *n,
                            struct durin_err *err)
{
  struct tenant *t = NULL;
  struct keycount *kc = NULL;
  struct db_stmt *cand = NULL;
  int64_t serial = 0;
  int nt = 0, nk = 0, r, i, kept, *who = NULL;

  *n = 0;
  if (max <= 0)
    return 0;
  r = durin__sq_begin(q, 1, err);
  if (r)
    return r;
  r = served_last(q, &serial, err);
  if (!r)
    r = load_tenants(q, now_ms, &t, &nt, &cand, err);
  if (!r && !(who = calloc((size_t)max, sizeof(*who))))
    r = durin_err_set(err, DURIN_ENOMEM, "claiming runs: out of memory");
  /*
   * Fair share: each pick goes to the tenant holding the fewest runs
   * (counting this claim's picks) that still has a claimable candidate,
   * so one tenant's backlog never starves another's single run. A tie
   * goes to the tenant served least recently: with one free slot every
   * tenant holds nothing at each claim, and without this the first name
   * would win them all. "Recently" is a serial, not a clock: claims are
   * serialized by the claim lock, so it orders every worker's claims on
   * one store without trusting their clocks.
   */
  while (!r && *n < max) {
    struct tenant *best = NULL;
    struct cand *c = NULL;

    for (i = 0; !r && i < nt; i++) {
      struct tenant *x = &t[i];

      if (x->limit >= 0 && x->held >= x->limit)
        continue;
      if (x->next >= x->nc && x->more)
        r = load_cands(q, cand, x, now_ms, err);
      if (x->next >= x->nc)
        continue;
      if (!best || x->held < best->held ||
          (x->held == best->held && x->served < best->served))
        best = x;
    }
    if (!best)
      break;
    while (!r && best->next < best->nc) {
      struct cand *x = &best->c[best->next++];
      struct keycount *k = NULL;

      if (x->key) {
        r = key_lookup(q, &kc, &nk, x->key, &k, err);
        if (r || (k->limit >= 0 && k->held >= k->limit))
          continue;
        k->held++;
      }
      c = x;
      break;
    }
    if (r || !c)
      continue;
    memset(&out[*n], 0, sizeof(out[*n]));
    snprintf(out[*n].id, sizeof(out[*n].id), "%s", c->id);
    who[(*n)++] = (int)(best - t);
    best->held++;
    best->served = ++serial;
  }
  db_finalize(cand);
  for (i = 0; i < nk; i++)
    free(kc[i].key);
  free(kc);
  if (!r)
    r = claim_picks(q, owner, now_ms, ttl_ms, out, *n, err);
  /* Only picks that were claimed count as service; they are in serial
   * order, so a tenant's last one is its latest. */
  for (i = 0; !r && i < *n; i++)
    if (out[i].epoch)
      t[who[i]].claimed = serial - *n + i + 1;
  if (!r)
    r = served_record(q, t, nt, err);
  tenants_free(t, nt);
  free(who);
  if (r) {
    durin__sq_exec(q, "ROLLBACK", NULL);
    *n = 0;
    return r;
  }
  r = durin__sq_exec(q, "COMMIT", err);
  for (i = kept = 0; !r && i < *n; i++) {
    if (out[i].epoch == 0)
      continue; /* not claimed after all */
    out[kept] = out[i];
    durin__sq_seq_known(q, out[kept].id, out[kept].epoch, out[kept].last_seq);
    kept++;
  }
  *n = r ? 0 : kept;
  if (!r && *n)
    durin_fault_point("after_claim");
  return r;
}

static int held_rows(struct durin_store *q, struct db_stmt *st,
                     durin_held_cb cb, void *arg, const char *what,
                     struct durin_err *err)
{
  int r = 0, rc;

  while ((rc = db_step(st)) == DB_ROW) {
    struct durin_held h;

    memset(&h, 0, sizeof(h));
    snprintf(h.id, sizeof(h.id), "%s", db_col_text(st, 0));
    h.epoch = (uint64_t)db_col_int64(st, 1);
    h.cancel_requested = db_col_int(st, 2);
    h.pause_requested = db_col_int(st, 3);
    if (cb && !r)
      r = cb(&h, arg);
  }
  if (rc != DB_DONE)
    r = durin__sq_fail(q, err, what);
  db_finalize(st);
  return r;
}

int durin_store_lease_renew(struct durin_store *q, const char *owner,
                            int64_t until_ms, durin_held_cb cb, void *arg,
                            struct durin_err *err)
{
  struct db_stmt *st;
  int r;

  /* Renewing a lease that ran out is safe while nobody took the run: the
   * watchdog moves the epoch and clears the owner when it re-queues. */
  r = prep(q,
           "UPDATE runs SET lease_expires_ms = ?2 WHERE lease_owner = ?1 "
           "RETURNING id, lease_epoch, cancel_requested, pause_requested",
           &st, "renewing leases", err);
  if (r)
    return r;
  db_bind_text(st, 1, owner);
  db_bind_int64(st, 2, until_ms);
  return held_rows(q, st, cb, arg, "renewing leases", err);
}

int durin_store_signals(struct durin_store *q, const char *owner,
                        durin_held_cb cb, void *arg, struct durin_err *err)
{
  struct db_stmt *st;
  int r;

  r = prep(q,
           "SELECT id, lease_epoch, cancel_requested, pause_requested FROM "
           "runs WHERE lease_owner = ?1 AND (cancel_requested = 1 OR "
           "pause_requested = 1)",
           &st, "reading run signals", err);
  if (r)
    return r;
  db_bind_text(st, 1, owner);
  return held_rows(q, st, cb, arg, "reading run signals", err);
}

/* One run the watchdog acts on. */
struct lost {
  char id[32];
  char *owner;
  uint64_t epoch;
  int64_t recoveries, max_recoveries, progress_ms, step;
};

static int wd_event(struct durin_store *q, const struct lost *l, int64_t now,
                    const char *type, json_t *data, struct durin_err *err)
{
  return durin__sq_event_json(q, l->id, l->step, now, type, data, err);
}

/*
 * Moves the run on, conditional on the epoch the scan saw: a holder that
 * renewed or wrote in between keeps its run. Returns 1 if it moved.
 */
static int wd_move(struct durin_store *q, const struct lost *l, int64_t now,
                   const char *status, const char *reason, int count,
                   int *moved, struct durin_err *err)
{
  struct db_stmt *st;
  int r;

  r = prep(q,
           "UPDATE runs SET lease_epoch = lease_epoch + 1, lease_owner = NULL, "
           "lease_expires_ms = NULL, recoveries = recoveries + ?3, "
           "status = coalesce(?4, status), reason = coalesce(?5, reason), "
           "finished_ms = CASE WHEN ?4 = 'failed' THEN ?6 ELSE finished_ms "
           "END, updated_ms = ?6 WHERE id = ?1 AND lease_epoch = ?2",
           &st, "recovering run", err);
  if (r)
    return r;
  db_bind_text(st, 1, l->id);
  db_bind_int64(st, 2, (int64_t)l->epoch);
  db_bind_int64(st, 3, count);
  db_bind_text(st, 4, status);
  db_bind_text(st, 5, reason);
  db_bind_int64(st, 6, now);
  return run_changes(q, st, "recovering run", moved, err);
}

static int wd_scan(struct durin_store *q, const char *sql, int64_t a, int64_t b,
                   struct lost **out, int *n, struct durin_err *err)
{
  struct db_stmt *st;
  int r, rc;

  *out = NULL;
  *n = 0;
  r = prep(q, sql, &st, "scanning leases", err);
  if (r)
    return r;
  db_bind_int64(st, 1, a);
  db_bind_int64(st, 2, b);
  while ((rc = db_step(st)) == DB_ROW) {
    struct lost *l;

    *out = realloc(*out, (size_t)(*n + 1) * sizeof(**out));
    l = &(*out)[(*n)++];
    snprintf(l->id, sizeof(l->id), "%s", db_col_text(st, 0));
    l->owner = durin__sq_col_dup(st, 1);
    l->epoch = (uint64_t)db_col_int64(st, 2);
    l->recoveries = db_col_int64(st, 3);
    l->max_recoveries = db_col_int64(st, 4);
    l->progress_ms = db_col_int64(st, 5);
    l->step = db_col_int64(st, 6);
  }
  if (rc != DB_DONE)
    r = durin__sq_fail(q, err, "scanning leases");
  db_finalize(st);
  return r;
}

static void lost_free(struct lost *l, int n)
{
  int i;

  for (i = 0; i < n; i++)
    free(l[i].owner);
  free(l);
}

#define LOST_COLS                                                    \
 "SELECT id, lease_owner, lease_epoch, recoveries, max_recoveries, " \
 "coalesce(progress_ms, updated_ms), steps + 1 FROM runs WHERE "     \
 "lease_owner IS NOT NULL AND status NOT IN " TERMINAL " AND "

int durin_store_watchdog(struct durin_store *q,
                         const struct durin_watchdog_opts *o,
                         struct durin_watchdog_report *rep,
                         struct durin_err *err)
{
  struct lost *l = NULL;
  int n = 0, i, r, moved;
  char reason[600];

  memset(rep, 0, sizeof(*rep));
  r = durin__sq_begin(q, 1, err);
  if (r)
    return r;
  r = wd_scan(q, LOST_COLS "lease_expires_ms < ?1 AND ?2 = ?2", o->now_ms, 0,
              &l, &n, err);
  for (i = 0; !r && i < n; i++) {
    struct lost *x = &l[i];
    int fail = x->recoveries + 1 > x->max_recoveries;

    if (fail)
      snprintf(reason, sizeof(reason),
               "the run lost its worker %lld times (last '%s'); its retry "
               "budget of %lld recoveries is used up",
               (long long)x->recoveries + 1, x->owner,
               (long long)x->max_recoveries);
    r = wd_move(q, x, o->now_ms, fail ? "failed" : NULL, fail ? reason : NULL,
                1, &moved, err);
    if (r || !moved)
      continue;
    r = wd_event(q, x, o->now_ms, "lease_expired",
                 json_pack("{s:s,s:I,s:I,s:I}", "owner", x->owner, "epoch",
                           (json_int_t)x->epoch, "recoveries",
                           (json_int_t)x->recoveries + 1, "max_recoveries",
                           (json_int_t)x->max_recoveries),
                 err);
    if (!r && fail)
      r = wd_event(q, x, o->now_ms, "run_finished",
                   json_pack("{s:s,s:s}", "status", "failed", "reason", reason),
                   err);
    if (fail)
      rep->failed++;
    else
      rep->requeued++;
  }
  lost_free(l, n);
  l = NULL;
  n = 0;
  if (!r && o->stall_ms > 0)
    r = wd_scan(q,
                LOST_COLS "lease_expires_ms >= ?1 AND "
                          "coalesce(progress_ms, updated_ms) < ?2",
                o->now_ms, o->now_ms - o->stall_ms, &l, &n, err);
  for (i = 0; !r && i < n; i++) {
    struct lost *x = &l[i];

    snprintf(reason, sizeof(reason), "stalled: no progress for %lld s on '%s'",
             (long long)((o->now_ms - x->progress_ms) / 1000), x->owner);
    r = wd_move(q, x, o->now_ms, o->stall_escalate ? "needs_human" : NULL,
                o->stall_escalate ? reason : NULL, 0, &moved, err);
    if (r || !moved)
      continue;
    r = wd_event(q, x, o->now_ms, "stalled",
                 json_pack("{s:s,s:I,s:s,s:s}", "owner", x->owner, "idle_ms",
                           (json_int_t)(o->now_ms - x->progress_ms), "action",
                           o->stall_escalate ? "escalate" : "restart", "reason",
                           reason),
                 err);
    rep->stalled++;
  }
  lost_free(l, n);
  if (!r)
    r = durin__sq_approvals_expire(q, o->now_ms, &rep->expired, err);
  if (!r && (rep->requeued || rep->stalled))
    r = durin__sq_notify(q, err);
  if (r) {
    durin__sq_exec(q, "ROLLBACK", NULL);
    return r;
  }
  return durin__sq_exec(q, "COMMIT", err);
}

int durin_store_limit_set(struct durin_store *q, const char *scope, int64_t max,
                          struct durin_err *err)
{
  struct db_stmt *st;
  int r, changed;

  if (strncmp(scope, "tenant:", 7) && strncmp(scope, "key:", 4))
    return durin_err_set(err, DURIN_EINVAL,
                         "limit scope '%s' must be 'tenant:NAME' or "
                         "'key:NAME'",
                         scope);
  r = prep(q,
           max < 0 ? "DELETE FROM queue_limits WHERE scope = ?1" :
                     "INSERT INTO queue_limits(scope, max_running) "
                     "VALUES(?1, ?2) ON CONFLICT(scope) DO UPDATE SET "
                     "max_running = excluded.max_running",
           &st, "setting queue limit", err);
  if (r)
    return r;
  db_bind_text(st, 1, scope);
  if (max >= 0)
    db_bind_int64(st, 2, max);
  return run_changes(q, st, "setting queue limit", &changed, err);
}

int durin_store_limit_list(struct durin_store *q, durin_limit_cb cb, void *arg,
                           struct durin_err *err)
{
  struct db_stmt *st;
  int r, rc;

  r = prep(q, "SELECT scope, max_running FROM queue_limits ORDER BY scope", &st,
           "listing queue limits", err);
  if (r)
    return r;
  while ((rc = db_step(st)) == DB_ROW && !r)
    r = cb(db_col_text(st, 0), db_col_int64(st, 1), arg);
  if (!r && rc != DB_DONE && rc != DB_ROW)
    r = durin__sq_fail(q, err, "listing queue limits");
  db_finalize(st);
  return r;
}
