/*
 * The control plane's tables (server/, docs/internals/api.md): pages of
 * runs, where a run came from, API tokens, agents, idempotency keys,
 * webhook subscriptions and their outbox, workers' heartbeats, shared
 * settings. Plain statements on whichever connection asks: the HTTP
 * server has connections of its own, never the worker's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "durin/store.h"
#include "durin/util.h"
#include "store/sql-int.h"

static const char *col(struct db_stmt *st, int i)
{
  return db_col_text(st, i);
}

/* Steps st through its rows with each_row(st, arg) until it returns
 * nonzero; finalizes st. Returns that, or a store error. */
static int rows(struct durin_store *q, struct db_stmt *st,
                int (*each_row)(struct db_stmt *st, void *arg), void *arg,
                const char *what, struct durin_err *err)
{
  int rc, r = 0;

  while ((rc = db_step(st)) == DB_ROW)
    if ((r = each_row(st, arg)))
      break;
  if (!r && rc != DB_DONE)
    r = durin__sq_fail(q, err, what);
  db_finalize(st);
  return r;
}

/* Runs one write statement in a transaction of its own. */
static int write1(struct durin_store *q, struct db_stmt *st, const char *what,
                  struct durin_err *err)
{
  int rc = db_step(st);

  db_finalize(st);
  if (rc == DB_CONSTRAINT)
    return durin_err_set(err, DURIN_EEXIST, "%s: already exists", what);
  if (rc != DB_DONE)
    return durin__sq_fail(q, err, what);
  return 0;
}

/* --- runs: where they came from, and pages --- */

int durin__sq_run_extras(struct durin_store *q, const struct durin_run_new *n,
                         struct durin_err *err)
{
  struct db_stmt *st;
  int r = 0;

  if (n->agent || n->created_by) {
    if (db_prepare(q->db,
                   "UPDATE runs SET agent = ?2, agent_version = ?3, "
                   "created_by = ?4 WHERE id = ?1",
                   &st) != DB_OK)
      return durin__sq_fail(q, err, "creating run");
    db_bind_text(st, 1, n->id);
    db_bind_text(st, 2, n->agent);
    if (n->agent)
      db_bind_int64(st, 3, n->agent_version);
    db_bind_text(st, 4, n->created_by);
    if ((r = durin__sq_step_done(q, st, "creating run", err))) {
      db_finalize(st);
      return r;
    }
    db_finalize(st);
  }
  if (n->labels_json) {
    json_t *l = json_loads(n->labels_json, 0, NULL), *v;
    const char *k;

    if (!json_is_object(l)) {
      json_decref(l);
      return durin_err_set(err, DURIN_EINVAL, "labels: not a JSON object");
    }
    if (db_prepare(q->db,
                   "INSERT INTO run_labels(run_id, key, value) "
                   "VALUES(?1, ?2, ?3)",
                   &st) != DB_OK) {
      json_decref(l);
      return durin__sq_fail(q, err, "creating run");
    }
    json_object_foreach(l, k, v) {
      if (!json_is_string(v))
        continue;
      db_bind_text(st, 1, n->id);
      db_bind_text(st, 2, k);
      db_bind_text(st, 3, json_string_value(v));
      if ((r = durin__sq_step_done(q, st, "labelling run", err)))
        break;
    }
    db_finalize(st);
    json_decref(l);
    if (r)
      return r;
  }
  if (n->idem_key) {
    if (db_prepare(q->db,
                   "INSERT INTO idempotency(tenant, key, run_id, "
                   "request_hash, created_ms) VALUES(coalesce(?1, "
                   "'default'), ?2, ?3, ?4, ?5)",
                   &st) != DB_OK)
      return durin__sq_fail(q, err, "creating run");
    db_bind_text(st, 1, n->tenant);
    db_bind_text(st, 2, n->idem_key);
    db_bind_text(st, 3, n->id);
    db_bind_text(st, 4, n->idem_hash ? n->idem_hash : "");
    db_bind_int64(st, 5, n->now_ms);
    r = db_step(st);
    db_finalize(st);
    if (r == DB_CONSTRAINT)
      return durin_err_set(err, DURIN_EEXIST,
                           "idempotency key '%s' was already used",
                           n->idem_key);
    if (r != DB_DONE)
      return durin__sq_fail(q, err, "recording idempotency key");
    r = 0;
  }
  if (n->delivery) {
    struct durin_trigger_delivery d = *n->delivery;

    d.run_id = n->id;
    if ((r = durin__sq_delivery_insert(q, &d, err)))
      return r;
  }
  if (n->webhooks_json) {
    json_t *a = json_loads(n->webhooks_json, 0, NULL), *w;
    size_t i;

    json_array_foreach(a, i, w) {
      struct durin_webhook_sub sub;
      json_t *ev = json_object_get(w, "events"), *e;
      size_t j;
      char events[512] = "";

      memset(&sub, 0, sizeof(sub));
      snprintf(sub.id, sizeof(sub.id), "wh%s%02zu", n->id + 1, i);
      sub.run_id = n->id;
      sub.tenant = n->tenant ? n->tenant : "default";
      sub.url = json_string_value(json_object_get(w, "url"));
      json_array_foreach(ev, j, e) {
        size_t len = strlen(events);

        snprintf(events + len, sizeof(events) - len, "%s%s", len ? "," : "",
                 json_string_value(e));
      }
      sub.events = events;
      sub.secret = n->webhook_secret ? n->webhook_secret : "";
      sub.created_ms = n->now_ms;
      sub.created_by = n->created_by;
      if (!sub.url)
        continue;
      if ((r = durin_store_webhook_add(q, &sub, err)))
        break;
    }
    json_decref(a);
  }
  return r;
}

struct query_ctx {
  durin_run_cb cb;
  void *arg;
  int limit, shown, *more, r;
};

static int query_row(struct db_stmt *st, void *arg)
{
  struct query_ctx *c = arg;
  struct durin_run_info ri;

  if (c->shown == c->limit) {
    *c->more = 1;
    return 1;
  }
  durin__sq_row_to_run(st, &ri);
  c->shown++;
  c->r = c->cb(&ri, c->arg);
  durin_run_info_clear(&ri);
  return c->r ? 1 : 0;
}

int durin_store_run_query(struct durin_store *q,
                          const struct durin_run_query *qy, durin_run_cb cb,
                          void *arg, int *more, struct durin_err *err)
{
  struct query_ctx c = { cb, arg, qy->limit, 0, more, 0 };
  struct db_stmt *st;
  char sql[2048], statuses[512] = "";
  int s, r;

  *more = 0;
  if (c.limit <= 0 || c.limit > 1000)
    c.limit = 100;
  for (s = 0; s < DURIN_RUN__COUNT; s++)
    if (qy->status_mask & (1 << s)) {
      size_t len = strlen(statuses);

      snprintf(statuses + len, sizeof(statuses) - len, "%s'%s'",
               len ? ", " : "", durin_run_status_name(s));
    }
  /* Every filter is bound (NULL: off), so the text is one of a few. The
   * casts: PostgreSQL cannot type a NULL parameter it first meets in IS
   * NULL ("could not determine data type of parameter"). */
  snprintf(sql, sizeof(sql),
           "SELECT " RUN_COLS_LIST " FROM runs WHERE "
           "(CAST(?1 AS TEXT) IS NULL OR tenant = ?1) AND "
           "(CAST(?2 AS TEXT) IS NULL OR agent = ?2) AND "
           "(CAST(?3 AS TEXT) IS NULL OR EXISTS (SELECT 1 FROM run_labels l "
           "WHERE l.run_id = runs.id AND l.key = ?3 AND "
           "(CAST(?4 AS TEXT) IS NULL OR l.value = ?4))) AND "
           "(?5 = 0 OR created_ms >= ?5) AND (?6 = 0 OR created_ms < ?6) AND "
           "(?7 = 0 OR created_ms < ?7 OR (created_ms = ?7 AND id < ?8)) "
           "%s%s%s ORDER BY created_ms DESC, id DESC LIMIT %d",
           *statuses ? "AND status IN (" : "", statuses, *statuses ? ")" : "",
           c.limit + 1);
  if (db_prepare(q->db, sql, &st) != DB_OK)
    return durin__sq_fail(q, err, "listing runs");
  db_bind_text(st, 1, qy->tenant);
  db_bind_text(st, 2, qy->agent);
  db_bind_text(st, 3, qy->label_key);
  db_bind_text(st, 4, qy->label_value);
  db_bind_int64(st, 5, qy->created_after_ms);
  db_bind_int64(st, 6, qy->created_before_ms);
  db_bind_int64(st, 7, qy->cursor_ms);
  db_bind_text(st, 8, qy->cursor_id ? qy->cursor_id : "");
  r = rows(q, st, query_row, &c, "listing runs", err);
  return c.r ? c.r : (r > 0 ? 0 : r);
}

static int meta_row(struct db_stmt *st, void *arg)
{
  struct durin_run_meta *m = arg;

  m->agent = durin__sq_col_dup(st, 0);
  m->agent_version = db_col_int64(st, 1);
  m->created_by = durin__sq_col_dup(st, 2);
  return 1;
}

struct labels_ctx {
  json_t *o;
};

static int label_row(struct db_stmt *st, void *arg)
{
  struct labels_ctx *c = arg;

  json_object_set_new(c->o, col(st, 0), json_string(col(st, 1)));
  return 0;
}

int durin_store_run_meta(struct durin_store *q, const char *id,
                         struct durin_run_meta *out, struct durin_err *err)
{
  struct labels_ctx lc = { json_object() };
  struct db_stmt *st;
  int r;

  memset(out, 0, sizeof(*out));
  if (db_prepare(q->db,
                 "SELECT agent, agent_version, created_by FROM runs WHERE "
                 "id = ?1",
                 &st) != DB_OK) {
    json_decref(lc.o);
    return durin__sq_fail(q, err, "reading run");
  }
  db_bind_text(st, 1, id);
  r = rows(q, st, meta_row, out, "reading run", err);
  if (r == 0) {
    json_decref(lc.o);
    return durin_err_set(err, DURIN_ENOTFOUND, "no run '%s'", id);
  }
  if (r < 0) {
    json_decref(lc.o);
    return r;
  }
  if (db_prepare(q->db,
                 "SELECT key, value FROM run_labels WHERE run_id = ?1 "
                 "ORDER BY key",
                 &st) != DB_OK) {
    json_decref(lc.o);
    durin_run_meta_clear(out);
    return durin__sq_fail(q, err, "reading labels");
  }
  db_bind_text(st, 1, id);
  r = rows(q, st, label_row, &lc, "reading labels", err);
  out->labels_json = json_dumps(lc.o, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(lc.o);
  return r;
}

void durin_run_meta_clear(struct durin_run_meta *m)
{
  free(m->agent);
  free(m->created_by);
  free(m->labels_json);
  memset(m, 0, sizeof(*m));
}

struct idem_ctx {
  char *run_id, *hash;
};

static int idem_row(struct db_stmt *st, void *arg)
{
  struct idem_ctx *c = arg;

  snprintf(c->run_id, 32, "%s", col(st, 0));
  snprintf(c->hash, 65, "%s", col(st, 1));
  return 1;
}

int durin_store_idem_get(struct durin_store *q, const char *tenant,
                         const char *key, char run_id[32], char hash[65],
                         struct durin_err *err)
{
  struct idem_ctx c = { run_id, hash };
  struct db_stmt *st;
  int r;

  if (db_prepare(q->db,
                 "SELECT run_id, request_hash FROM idempotency WHERE "
                 "tenant = coalesce(?1, 'default') AND key = ?2",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "reading idempotency key");
  db_bind_text(st, 1, tenant);
  db_bind_text(st, 2, key);
  r = rows(q, st, idem_row, &c, "reading idempotency key", err);
  if (r == 0)
    return durin_err_set(err, DURIN_ENOTFOUND, "no such key");
  return r > 0 ? 0 : r;
}

/* --- tokens --- */

struct token_ctx {
  durin_token_cb cb;
  void *arg;
  int n, r;
};

static int token_row(struct db_stmt *st, void *arg)
{
  struct token_ctx *c = arg;
  struct durin_token t;

  memset(&t, 0, sizeof(t));
  snprintf(t.id, sizeof(t.id), "%s", col(st, 0));
  t.name = col(st, 1);
  t.role = col(st, 2);
  t.tenant = col(st, 3);
  t.created_ms = db_col_int64(st, 4);
  t.revoked_ms = db_col_int64(st, 5);
  c->n++;
  c->r = c->cb ? c->cb(&t, c->arg) : 0;
  return c->r ? 1 : 0;
}

#define TOKEN_COLS \
 "id, name, role, tenant, created_ms, coalesce(revoked_ms, 0) FROM api_tokens "

int durin_store_token_create(struct durin_store *q, const struct durin_token *t,
                             const char *hash, struct durin_err *err)
{
  struct db_stmt *st;
  int r;

  if (db_prepare(q->db,
                 "INSERT INTO api_tokens(id, name, role, tenant, hash, "
                 "created_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "creating token");
  db_bind_text(st, 1, t->id);
  db_bind_text(st, 2, t->name);
  db_bind_text(st, 3, t->role);
  db_bind_text(st, 4, t->tenant);
  db_bind_text(st, 5, hash);
  db_bind_int64(st, 6, t->created_ms);
  r = write1(q, st, "creating token", err);
  if (r == DURIN_EEXIST)
    return durin_err_set(err, DURIN_EEXIST,
                         "a token named '%s' exists: revoke it first "
                         "('durin token revoke %s') or pick another name",
                         t->name, t->name);
  return r;
}

int durin_store_token_find(struct durin_store *q, const char *hash,
                           durin_token_cb cb, void *arg, struct durin_err *err)
{
  struct token_ctx c = { cb, arg, 0, 0 };
  struct db_stmt *st;
  int r;

  if (db_prepare(q->db,
                 "SELECT " TOKEN_COLS "WHERE hash = ?1 AND revoked_ms IS NULL",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "reading token");
  db_bind_text(st, 1, hash);
  r = rows(q, st, token_row, &c, "reading token", err);
  if (r < 0)
    return r;
  if (!c.n)
    return durin_err_set(err, DURIN_ENOTFOUND, "no such token");
  return c.r;
}

int durin_store_token_list(struct durin_store *q, durin_token_cb cb, void *arg,
                           struct durin_err *err)
{
  struct token_ctx c = { cb, arg, 0, 0 };
  struct db_stmt *st;
  int r;

  if (db_prepare(q->db, "SELECT " TOKEN_COLS "ORDER BY created_ms, id", &st) !=
      DB_OK)
    return durin__sq_fail(q, err, "listing tokens");
  r = rows(q, st, token_row, &c, "listing tokens", err);
  return r < 0 ? r : c.r;
}

int durin_store_token_revoke(struct durin_store *q, const char *name,
                             int64_t now_ms, struct durin_err *err)
{
  struct db_stmt *st;
  int r;

  if (db_prepare(q->db,
                 "UPDATE api_tokens SET revoked_ms = ?2 WHERE (name = ?1 OR "
                 "id = ?1) AND revoked_ms IS NULL",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "revoking token");
  db_bind_text(st, 1, name);
  db_bind_int64(st, 2, now_ms);
  if ((r = write1(q, st, "revoking token", err)))
    return r;
  if (db_changes(q->db) == 0)
    return durin_err_set(err, DURIN_ENOTFOUND,
                         "no token named '%s' (see 'durin token ls')", name);
  return 0;
}

/* --- agents --- */

struct agent_ctx {
  durin_agent_cb cb;
  void *arg;
  int n, r;
};

static int agent_row(struct db_stmt *st, void *arg)
{
  struct agent_ctx *c = arg;
  struct durin_agent a;

  memset(&a, 0, sizeof(a));
  a.tenant = col(st, 0);
  a.name = col(st, 1);
  a.version = db_col_int64(st, 2);
  a.spec_json = col(st, 3);
  a.created_ms = db_col_int64(st, 4);
  a.created_by = col(st, 5);
  c->n++;
  c->r = c->cb ? c->cb(&a, c->arg) : 0;
  return c->r ? 1 : 0;
}

#define AGENT_COLS "tenant, name, version, spec, created_ms, created_by "

struct latest {
  int64_t version;
  char *spec;
};

static int latest_row(struct db_stmt *st, void *arg)
{
  struct latest *l = arg;

  l->version = db_col_int64(st, 0);
  l->spec = durin__sq_col_dup(st, 1);
  return 1;
}

int durin_store_agent_put(struct durin_store *q, const struct durin_agent *a,
                          int64_t *version, int *changed, struct durin_err *err)
{
  struct latest l = { 0, NULL };
  struct db_stmt *st = NULL;
  int r;

  /* Exclusive: two servers registering at once get two versions. */
  if ((r = durin__sq_begin(q, 1, err)))
    return r;
  if (db_prepare(q->db,
                 "SELECT version, spec FROM agents WHERE tenant = ?1 AND "
                 "name = ?2 ORDER BY version DESC LIMIT 1",
                 &st) != DB_OK) {
    r = durin__sq_fail(q, err, "registering agent");
    goto out;
  }
  db_bind_text(st, 1, a->tenant);
  db_bind_text(st, 2, a->name);
  r = rows(q, st, latest_row, &l, "registering agent", err);
  st = NULL;
  if (r < 0)
    goto out;
  r = 0;
  *changed = !l.spec || strcmp(l.spec, a->spec_json) != 0;
  *version = *changed ? l.version + 1 : l.version;
  if (!*changed)
    goto out;
  if (db_prepare(q->db,
                 "INSERT INTO agents(tenant, name, version, spec, created_ms, "
                 "created_by) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                 &st) != DB_OK) {
    r = durin__sq_fail(q, err, "registering agent");
    goto out;
  }
  db_bind_text(st, 1, a->tenant);
  db_bind_text(st, 2, a->name);
  db_bind_int64(st, 3, *version);
  db_bind_text(st, 4, a->spec_json);
  db_bind_int64(st, 5, a->created_ms);
  db_bind_text(st, 6, a->created_by);
  r = durin__sq_step_done(q, st, "registering agent", err);
out:
  db_finalize(st);
  free(l.spec);
  if (r) {
    durin__sq_exec(q, "ROLLBACK", NULL);
    return r;
  }
  return durin__sq_exec(q, "COMMIT", err);
}

int durin_store_agent_get(struct durin_store *q, const char *tenant,
                          const char *name, int64_t version, durin_agent_cb cb,
                          void *arg, struct durin_err *err)
{
  struct agent_ctx c = { cb, arg, 0, 0 };
  struct db_stmt *st;
  int r;

  if (db_prepare(q->db,
                 "SELECT " AGENT_COLS "FROM agents WHERE tenant = ?1 AND "
                 "name = ?2 AND (?3 = 0 OR version = ?3) ORDER BY version "
                 "DESC LIMIT 1",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "reading agent");
  db_bind_text(st, 1, tenant);
  db_bind_text(st, 2, name);
  db_bind_int64(st, 3, version);
  r = rows(q, st, agent_row, &c, "reading agent", err);
  if (r < 0)
    return r;
  if (!c.n)
    return version ? durin_err_set(err, DURIN_ENOTFOUND,
                                   "agent '%s' has no version %lld", name,
                                   (long long)version) :
                     durin_err_set(err, DURIN_ENOTFOUND,
                                   "no agent '%s' (register it with PUT "
                                   "/v1/agents/%s)",
                                   name, name);
  return c.r;
}

int durin_store_agent_list(struct durin_store *q, const char *tenant,
                           durin_agent_cb cb, void *arg, struct durin_err *err)
{
  struct agent_ctx c = { cb, arg, 0, 0 };
  struct db_stmt *st;
  int r;

  if (db_prepare(q->db,
                 "SELECT " AGENT_COLS
                 "FROM agents a WHERE (CAST(?1 AS TEXT) IS NULL OR "
                 "tenant = ?1) AND version = (SELECT max(version) FROM "
                 "agents b WHERE b.tenant = a.tenant AND b.name = a.name) "
                 "ORDER BY tenant, name",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "listing agents");
  db_bind_text(st, 1, tenant);
  r = rows(q, st, agent_row, &c, "listing agents", err);
  return r < 0 ? r : c.r;
}

/* --- webhooks --- */

struct sub_ctx {
  durin_webhook_sub_cb cb;
  void *arg;
  int n, r;
};

static int sub_row(struct db_stmt *st, void *arg)
{
  struct sub_ctx *c = arg;
  struct durin_webhook_sub w;

  memset(&w, 0, sizeof(w));
  snprintf(w.id, sizeof(w.id), "%s", col(st, 0));
  w.tenant = col(st, 1);
  w.run_id = col(st, 2);
  w.url = col(st, 3);
  w.events = col(st, 4);
  w.secret = col(st, 5);
  w.created_ms = db_col_int64(st, 6);
  w.created_by = col(st, 7);
  c->n++;
  c->r = c->cb ? c->cb(&w, c->arg) : 0;
  return c->r ? 1 : 0;
}

#define SUB_COLS                                                         \
 "id, tenant, run_id, url, events, secret, created_ms, created_by FROM " \
 "webhook_subs "

int durin_store_webhook_add(struct durin_store *q,
                            const struct durin_webhook_sub *w,
                            struct durin_err *err)
{
  struct db_stmt *st;

  if (db_prepare(q->db,
                 "INSERT INTO webhook_subs(id, tenant, run_id, url, events, "
                 "secret, created_ms, created_by) VALUES(?1, ?2, ?3, ?4, ?5, "
                 "?6, ?7, ?8)",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "adding webhook");
  db_bind_text(st, 1, w->id);
  db_bind_text(st, 2, w->tenant);
  db_bind_text(st, 3, w->run_id);
  db_bind_text(st, 4, w->url);
  db_bind_text(st, 5, w->events);
  db_bind_text(st, 6, w->secret);
  db_bind_int64(st, 7, w->created_ms);
  db_bind_text(st, 8, w->created_by);
  return write1(q, st, "adding webhook", err);
}

int durin_store_webhook_list(struct durin_store *q, const char *tenant,
                             durin_webhook_sub_cb cb, void *arg,
                             struct durin_err *err)
{
  struct sub_ctx c = { cb, arg, 0, 0 };
  struct db_stmt *st;
  int r;

  if (db_prepare(q->db,
                 "SELECT " SUB_COLS
                 "WHERE run_id IS NULL AND (CAST(?1 AS TEXT) IS NULL OR "
                 "tenant = ?1) ORDER BY created_ms, id",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "listing webhooks");
  db_bind_text(st, 1, tenant);
  r = rows(q, st, sub_row, &c, "listing webhooks", err);
  return r < 0 ? r : c.r;
}

int durin_store_webhook_get(struct durin_store *q, const char *id,
                            durin_webhook_sub_cb cb, void *arg,
                            struct durin_err *err)
{
  struct sub_ctx c = { cb, arg, 0, 0 };
  struct db_stmt *st;
  int r;

  if (db_prepare(q->db, "SELECT " SUB_COLS "WHERE id = ?1", &st) != DB_OK)
    return durin__sq_fail(q, err, "reading webhook");
  db_bind_text(st, 1, id);
  r = rows(q, st, sub_row, &c, "reading webhook", err);
  if (r < 0)
    return r;
  if (!c.n)
    return durin_err_set(err, DURIN_ENOTFOUND, "no webhook '%s'", id);
  return c.r;
}

int durin_store_webhook_remove(struct durin_store *q, const char *id,
                               struct durin_err *err)
{
  struct db_stmt *st;
  int r;

  if (db_prepare(q->db, "DELETE FROM webhook_subs WHERE id = ?1", &st) != DB_OK)
    return durin__sq_fail(q, err, "removing webhook");
  db_bind_text(st, 1, id);
  if ((r = write1(q, st, "removing webhook", err)))
    return r;
  if (db_changes(q->db) == 0)
    return durin_err_set(err, DURIN_ENOTFOUND, "no webhook '%s'", id);
  return 0;
}

struct take_ctx {
  char (*ids)[160];
  int n, max;
};

static int take_id(struct db_stmt *st, void *arg)
{
  struct take_ctx *c = arg;

  if (c->n < c->max)
    snprintf(c->ids[c->n++], 160, "%s", col(st, 0));
  return 0;
}

struct deliver_ctx {
  durin_delivery_cb cb;
  void *arg;
  int r;
};

static int delivery_row(struct db_stmt *st, void *arg)
{
  struct deliver_ctx *c = arg;
  struct durin_delivery d;

  memset(&d, 0, sizeof(d));
  d.id = col(st, 0);
  d.sub_id = col(st, 1);
  d.run_id = col(st, 2);
  d.seq = db_col_int64(st, 3);
  d.type = col(st, 4);
  d.created_ms = db_col_int64(st, 5);
  d.attempts = db_col_int64(st, 6);
  d.url = col(st, 7);
  d.secret = col(st, 8);
  c->r = c->cb(&d, c->arg);
  return c->r ? 1 : 0;
}

int durin_store_outbox_take(struct durin_store *q, int64_t now_ms,
                            int64_t lease_ms, int max, durin_delivery_cb cb,
                            void *arg, struct durin_err *err)
{
  struct take_ctx t = { NULL, 0, max > 0 ? max : 1 };
  struct deliver_ctx c = { cb, arg, 0 };
  struct db_stmt *st;
  int r, i;

  t.ids = calloc((size_t)t.max, sizeof(*t.ids));
  if (!t.ids)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  /* A conditional write: only rows nobody holds move to this taker. A
   * row whose subscription is gone is given up. */
  if ((r = durin__sq_begin(q, 1, err))) {
    free(t.ids);
    return r;
  }
  if (db_prepare(q->db,
                 "UPDATE webhook_outbox SET failed_ms = ?1, last_error = "
                 "'subscription removed' WHERE delivered_ms IS NULL AND "
                 "failed_ms IS NULL AND next_ms <= ?1 AND NOT EXISTS "
                 "(SELECT 1 FROM webhook_subs s WHERE s.id = "
                 "webhook_outbox.sub_id)",
                 &st) != DB_OK) {
    r = durin__sq_fail(q, err, "taking deliveries");
    goto out;
  }
  db_bind_int64(st, 1, now_ms);
  r = durin__sq_step_done(q, st, "taking deliveries", err);
  db_finalize(st);
  if (r)
    goto out;
  if (db_prepare(q->db,
                 "UPDATE webhook_outbox SET lease_until = ?2, attempts = "
                 "attempts + 1 WHERE id IN (SELECT id FROM webhook_outbox "
                 "WHERE delivered_ms IS NULL AND failed_ms IS NULL AND "
                 "next_ms <= ?1 AND lease_until <= ?1 ORDER BY next_ms, "
                 "created_ms, seq LIMIT ?3) RETURNING id",
                 &st) != DB_OK) {
    r = durin__sq_fail(q, err, "taking deliveries");
    goto out;
  }
  db_bind_int64(st, 1, now_ms);
  db_bind_int64(st, 2, now_ms + lease_ms);
  db_bind_int64(st, 3, t.max);
  r = rows(q, st, take_id, &t, "taking deliveries", err);
out:
  if (r) {
    durin__sq_exec(q, "ROLLBACK", NULL);
    free(t.ids);
    return r;
  }
  if ((r = durin__sq_exec(q, "COMMIT", err))) {
    free(t.ids);
    return r;
  }
  for (i = 0; i < t.n && !c.r; i++) {
    if (db_prepare(q->db,
                   "SELECT o.id, o.sub_id, o.run_id, o.seq, o.type, "
                   "o.created_ms, o.attempts, s.url, s.secret FROM "
                   "webhook_outbox o JOIN webhook_subs s ON s.id = o.sub_id "
                   "WHERE o.id = ?1",
                   &st) != DB_OK) {
      free(t.ids);
      return durin__sq_fail(q, err, "reading delivery");
    }
    db_bind_text(st, 1, t.ids[i]);
    if ((r = rows(q, st, delivery_row, &c, "reading delivery", err)) < 0) {
      free(t.ids);
      return r;
    }
  }
  free(t.ids);
  return c.r;
}

int durin_store_outbox_done(struct durin_store *q, const char *id,
                            int delivered, int failed, int64_t now_ms,
                            int64_t next_ms, const char *error,
                            struct durin_err *err)
{
  struct db_stmt *st;

  if (db_prepare(q->db,
                 "UPDATE webhook_outbox SET delivered_ms = CASE WHEN ?2 = 1 "
                 "THEN ?4 END, failed_ms = CASE WHEN ?3 = 1 THEN ?4 END, "
                 "next_ms = ?5, lease_until = 0, last_error = ?6 WHERE "
                 "id = ?1",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "recording delivery");
  db_bind_text(st, 1, id);
  db_bind_int64(st, 2, delivered);
  db_bind_int64(st, 3, failed);
  db_bind_int64(st, 4, now_ms);
  db_bind_int64(st, 5, next_ms);
  db_bind_text(st, 6, error);
  return write1(q, st, "recording delivery", err);
}

static int next_row(struct db_stmt *st, void *arg)
{
  *(int64_t *)arg = db_col_int64(st, 0);
  return 1;
}

int64_t durin_store_outbox_next(struct durin_store *q)
{
  struct db_stmt *st;
  int64_t next = 0;

  if (db_prepare(q->db,
                 "SELECT coalesce(min(CASE WHEN next_ms > lease_until THEN "
                 "next_ms ELSE lease_until END), 0) FROM "
                 "webhook_outbox WHERE delivered_ms IS NULL AND failed_ms "
                 "IS NULL",
                 &st) != DB_OK)
    return 0;
  rows(q, st, next_row, &next, "reading outbox", NULL);
  return next;
}

/* --- workers --- */

int durin_store_worker_beat(struct durin_store *q,
                            const struct durin_worker_row *w,
                            struct durin_err *err)
{
  struct db_stmt *st;

  if (db_prepare(q->db,
                 "INSERT INTO workers(owner, kind, started_ms, beat_ms, "
                 "max_runs, info) VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT "
                 "(owner) DO UPDATE SET beat_ms = ?4, info = ?6",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "recording heartbeat");
  db_bind_text(st, 1, w->owner);
  db_bind_text(st, 2, w->kind);
  db_bind_int64(st, 3, w->started_ms);
  db_bind_int64(st, 4, w->beat_ms);
  db_bind_int64(st, 5, w->max_runs);
  db_bind_text(st, 6, w->info);
  return write1(q, st, "recording heartbeat", err);
}

int durin_store_worker_gone(struct durin_store *q, const char *owner,
                            struct durin_err *err)
{
  struct db_stmt *st;

  if (db_prepare(q->db, "DELETE FROM workers WHERE owner = ?1", &st) != DB_OK)
    return durin__sq_fail(q, err, "removing worker");
  db_bind_text(st, 1, owner);
  return write1(q, st, "removing worker", err);
}

struct wrow_ctx {
  durin_worker_row_cb cb;
  void *arg;
  int r;
};

static int wrow(struct db_stmt *st, void *arg)
{
  struct wrow_ctx *c = arg;
  struct durin_worker_row w;

  memset(&w, 0, sizeof(w));
  w.owner = col(st, 0);
  w.kind = col(st, 1);
  w.started_ms = db_col_int64(st, 2);
  w.beat_ms = db_col_int64(st, 3);
  w.max_runs = db_col_int64(st, 4);
  w.info = col(st, 5);
  w.held = db_col_int64(st, 6);
  c->r = c->cb(&w, c->arg);
  return c->r ? 1 : 0;
}

int durin_store_worker_list(struct durin_store *q, durin_worker_row_cb cb,
                            void *arg, struct durin_err *err)
{
  struct wrow_ctx c = { cb, arg, 0 };
  struct db_stmt *st;
  int r;

  if (db_prepare(q->db,
                 "SELECT owner, kind, started_ms, beat_ms, max_runs, info, "
                 "(SELECT count(*) FROM runs r WHERE r.lease_owner = "
                 "workers.owner) FROM workers ORDER BY started_ms, owner",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "listing workers");
  r = rows(q, st, wrow, &c, "listing workers", err);
  return r < 0 ? r : c.r;
}

/* --- settings --- */

static int setting_row(struct db_stmt *st, void *arg)
{
  *(char **)arg = durin__sq_col_dup(st, 0);
  return 1;
}

int durin_store_setting_init(struct durin_store *q, const char *key,
                             const char *value, char **out,
                             struct durin_err *err)
{
  struct db_stmt *st;
  int r;

  *out = NULL;
  if (db_prepare(q->db,
                 "INSERT INTO settings(key, value) VALUES(?1, ?2) ON "
                 "CONFLICT (key) DO NOTHING",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "writing setting");
  db_bind_text(st, 1, key);
  db_bind_text(st, 2, value);
  if ((r = write1(q, st, "writing setting", err)))
    return r;
  if (db_prepare(q->db, "SELECT value FROM settings WHERE key = ?1", &st) !=
      DB_OK)
    return durin__sq_fail(q, err, "reading setting");
  db_bind_text(st, 1, key);
  r = rows(q, st, setting_row, out, "reading setting", err);
  if (r < 0)
    return r;
  return *out ? 0 : durin_err_set(err, DURIN_ENOTFOUND, "no setting '%s'", key);
}

int durin_store_control_event(struct durin_store *q, const char *run_id,
                              const char *type, json_t *data, int64_t now_ms,
                              struct durin_err *err)
{
  int r;

  if ((r = durin__sq_begin(q, 0, err)))
    return r;
  r = durin__sq_event_json(q, run_id, 0, now_ms, type, json_incref(data), err);
  if (r) {
    durin__sq_exec(q, "ROLLBACK", NULL);
    return r;
  }
  return durin__sq_exec(q, "COMMIT", err);
}
