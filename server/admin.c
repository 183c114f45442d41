/*
 * The control plane's administration: agents (a named spec per tenant;
 * each change is a new version, and a run made from an agent pins the
 * version it was made from), API tokens, the queue's limits, and the roll
 * call of workers.
 *
 * Reading is a viewer's, writing an admin's. A tenant token reads and
 * writes in its tenant only, and learns nothing of the others: another
 * tenant's agent or token is "not found". Limits are the server's, so
 * only a token of no tenant sets them. Every write is logged with the
 * token that made it.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "durin/spec.h"
#include "durin/util.h"
#include "server/server.h"
#include "server/specpolicy.h"
#include "server/workspaces.h"

#define NAME_MAX_LEN 64

/* ---- names and tenants ---- */

/* Agent, token and tenant names: [A-Za-z0-9._-]{1,64}, so they sit in a
 * URL path, a log line and a limit's scope without quoting. */
/* Names become path components (a schedule's workspace): never "." or
 * "..", nor any other name starting with '.'. */
static int valid_name(const char *s)
{
  size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                       "0123456789._-");

  return n >= 1 && n <= NAME_MAX_LEN && !s[n] && s[0] != '.';
}

int srv_name_ok(const char *s)
{
  return s && valid_name(s);
}

static int bad_name(struct req *r, const char *field, const char *what,
                    const char *s)
{
  return reply_error_field(r, 400, "bad_name", field,
                           "%s '%s' is not a name: use 1 to %d letters, "
                           "digits, '.', '_' or '-', not starting with '.'",
                           what, s, NAME_MAX_LEN);
}

/*
 * The tenant a request about agents acts in: a tenant token's own; for
 * others ?tenant= or "default". Returns 0 with *out set; -1 after
 * answering (a bad name, or a tenant token that named another tenant:
 * 403 for a write); 1 for a read of a tenant the token may not see,
 * which the caller answers as if there were nothing.
 */
int srv_act_tenant(struct req *r, int write, const char **out)
{
  const char *t = req_arg(r, "tenant");

  *out = NULL;
  if (r->who.has_tenant) {
    if (t && strcmp(t, r->who.tenant)) {
      if (!write)
        return 1;
      reply_error_field(r, 403, "forbidden", "tenant",
                        "token '%s' works in tenant '%s' only", r->who.name,
                        r->who.tenant);
      return -1;
    }
    *out = r->who.tenant;
    return 0;
  }
  if (t && !valid_name(t)) {
    bad_name(r, "tenant", "tenant", t);
    return -1;
  }
  *out = t ? t : "default";
  return 0;
}

int srv_list_tenant(struct req *r, const char **out)
{
  int rc = srv_act_tenant(r, 0, out);

  if (rc == 0 && !r->who.has_tenant && !req_arg(r, "tenant"))
    *out = NULL;
  return rc;
}

int srv_body_tenant(struct req *r, const char **tenant)
{
  if (!r->who.has_tenant)
    return 0;
  if (*tenant && strcmp(*tenant, r->who.tenant)) {
    reply_error_field(r, 403, "forbidden", "tenant",
                      "token '%s' works in tenant '%s' only", r->who.name,
                      r->who.tenant);
    return -1;
  }
  *tenant = r->who.tenant;
  return 0;
}

/* ---- agents ---- */

static json_t *agent_json(const struct durin_agent *a, int with_spec)
{
  json_t *o =
      json_pack("{s:s,s:s,s:I,s:I,s:s?}", "name", a->name, "tenant", a->tenant,
                "version", (json_int_t)a->version, "created_ms",
                (json_int_t)a->created_ms, "created_by", a->created_by);

  if (o && with_spec) {
    json_t *spec = json_loads(a->spec_json, 0, NULL);

    json_object_set_new(o, "spec", spec ? spec : json_null());
  }
  return o;
}

struct agent_out {
  json_t *json;
  int with_spec;
};

static int got_agent(const struct durin_agent *a, void *arg)
{
  struct agent_out *ao = arg;

  ao->json = agent_json(a, ao->with_spec);
  return 0;
}

static int list_one_agent(const struct durin_agent *a, void *arg)
{
  json_array_append_new(arg, agent_json(a, 0));
  return 0;
}

/* The agent's template workspace, if it names one: a directory under the
 * server's workspace root, written back as its real path so that a link
 * moved later cannot lead its runs elsewhere. */
static int agent_workspace(struct req *r, json_t *spec)
{
  json_t *ws = json_object_get(spec, "workspace");
  char dir[PATH_MAX];

  if (!ws)
    return 0;
  if (!json_is_string(ws))
    return reply_error_field(r, 422, "spec_policy", "spec.workspace",
                             "spec.workspace is a directory under the "
                             "server's workspace root, as a string"),
           -1;
  if (srv_workspace_under_root(r, json_string_value(ws), "spec.workspace", dir,
                               sizeof(dir)))
    return -1;
  json_object_set_new(spec, "workspace", json_string(dir));
  return 0;
}

/*
 * Judges an agent's spec before it is stored, as a run's would be judged,
 * so that a bad one is refused now rather than at every run made from it:
 * parsed (the words the CLI uses for a bad spec), then the server's spec
 * policy. The parser wants an existing workspace; a run's own is made at
 * its creation, so "/" stands in when the agent names none.
 */
static int check_agent_spec(struct req *r, const char *tenant, json_t *spec)
{
  const struct srv_opts *o = srv_options(r->srv);
  struct durin_spec ds;
  struct durin_err err = { 0 };
  const char *field = NULL;
  json_t *copy;
  char *text, path[128];
  int rc;

  if (agent_workspace(r, spec))
    return -1;
  copy = json_deep_copy(spec);
  if (!json_object_get(copy, "workspace"))
    json_object_set_new(copy, "workspace", json_string("/"));
  text = json_dumps(copy, JSON_COMPACT);
  json_decref(copy);
  if (!text)
    return reply_error(r, 500, "internal", "cannot encode the spec"), -1;
  rc = durin_spec_parse(text, NULL, &ds, &err);
  free(text);
  if (rc)
    return reply_error(r, 422, "bad_spec", "bad spec: %s", err.msg), -1;
  if (o->policy && spec_policy_check(o->policy, tenant, &ds, &field, &err)) {
    snprintf(path, sizeof(path), "spec%s%s", field ? "." : "",
             field ? field : "");
    reply_error_field(r, 422, "spec_policy", path, "%s", err.msg);
    durin_spec_clear(&ds);
    return -1;
  }
  durin_spec_clear(&ds);
  return 0;
}

/* PUT /v1/agents/{name}[?tenant=T] {"spec": {...}} */
static int put_agent(struct req *r)
{
  static const char *const fields[] = { "spec", NULL };
  struct durin_agent a;
  struct durin_err err = { 0 };
  struct agent_out ao = { NULL, 0 };
  const char *name = r->param[0], *tenant;
  json_t *body, *spec;
  char *text = NULL;
  int64_t version = 0;
  int changed = 0, rc;

  if (!valid_name(name))
    return bad_name(r, "name", "agent name", name);
  if (srv_act_tenant(r, 1, &tenant))
    return 0;
  if (!(body = req_json(r)))
    return 0;
  if (req_unknown_field(r, body, fields))
    goto out;
  spec = json_object_get(body, "spec");
  if (!json_is_object(spec)) {
    reply_error_field(r, 400, "bad_field", "spec",
                      "give the agent's spec as 'spec' (an object)");
    goto out;
  }
  if (check_agent_spec(r, tenant, spec))
    goto out;
  /* Sorted keys: the same spec sent again is the same text, and so no
   * new version. */
  text = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS);
  memset(&a, 0, sizeof(a));
  a.tenant = tenant;
  a.name = name;
  a.spec_json = text;
  a.created_by = r->who.name;
  a.created_ms = durin_now_ms();
  rc = durin_store_agent_put(r->store, &a, &version, &changed, &err);
  if (!rc)
    rc = durin_store_agent_get(r->store, tenant, name, version, got_agent, &ao,
                               &err);
  if (rc) {
    reply_store_error(r, rc, &err);
    goto out;
  }
  if (changed)
    srv_log(r->srv, "agent '%s' (tenant %s): version %lld by token '%s'", name,
            tenant, (long long)version, r->who.name);
  reply_json(r, changed ? 201 : 200, ao.json);
out:
  free(text);
  json_decref(body);
  return 0;
}

/* GET /v1/agents[?tenant=T]: the latest version of each. */
static int list_agents(struct req *r)
{
  struct durin_err err = { 0 };
  const char *tenant = req_arg(r, "tenant");
  json_t *arr;
  int rc;

  if (r->who.has_tenant) {
    if (tenant && strcmp(tenant, r->who.tenant))
      return reply_json(r, 200, json_pack("{s:[]}", "agents"));
    tenant = r->who.tenant;
  }
  arr = json_array();
  rc = durin_store_agent_list(r->store, tenant, list_one_agent, arr, &err);
  if (rc) {
    json_decref(arr);
    return reply_store_error(r, rc, &err);
  }
  return reply_json(r, 200, json_pack("{s:o}", "agents", arr));
}

/* GET /v1/agents/{name}[?version=N][&tenant=T] */
static int get_agent(struct req *r)
{
  struct durin_err err = { 0 };
  struct agent_out ao = { NULL, 1 };
  const char *tenant, *v = req_arg(r, "version");
  long long version = 0;
  char *end;
  int rc;

  if (v) {
    version = strtoll(v, &end, 10);
    if (!*v || *end || version < 1)
      return reply_error_field(r, 400, "bad_query", "version",
                               "version is a number from 1 (leave it out "
                               "for the latest)");
  }
  rc = srv_act_tenant(r, 0, &tenant);
  if (rc < 0)
    return 0;
  if (rc > 0)
    return reply_error(r, 404, "not_found", "no agent '%s'", r->param[0]);
  rc = durin_store_agent_get(r->store, tenant, r->param[0], version, got_agent,
                             &ao, &err);
  if (rc)
    return reply_store_error(r, rc, &err);
  return reply_json(r, 200, ao.json);
}

/* ---- tokens ---- */

struct token_find {
  struct req *r;
  const char *name;
  char id[32];
  int found;
};

/* The unrevoked token of that name, if the request may see it. */
static int find_token(const struct durin_token *t, void *arg)
{
  struct token_find *f = arg;

  if (t->revoked_ms || strcmp(t->name, f->name) ||
      !req_sees_tenant(f->r, t->tenant))
    return 0;
  snprintf(f->id, sizeof(f->id), "%s", t->id);
  f->found = 1;
  return 1;
}

struct token_list {
  struct req *r;
  json_t *arr;
};

static int list_one_token(const struct durin_token *t, void *arg)
{
  struct token_list *c = arg;

  /* Untenanted tokens are only an untenanted reader's to see. */
  if (req_sees_tenant(c->r, t->tenant))
    json_array_append_new(c->arr, token_json(t));
  return 0;
}

/* POST /v1/tokens {"name", "role", "tenant"?}: the token is in the answer,
 * once; the store keeps its hash. */
static int create_token(struct req *r)
{
  static const char *const fields[] = { "name", "role", "tenant", NULL };
  struct durin_token t;
  struct durin_err err = { 0 };
  const char *name = NULL, *role = NULL, *tenant = NULL;
  json_t *body, *o;
  char tok[80];
  int rc;

  if (!(body = req_json(r)))
    return 0;
  if (req_unknown_field(r, body, fields) ||
      req_opt_string(r, body, "name", &name) ||
      req_opt_string(r, body, "role", &role) ||
      req_opt_string(r, body, "tenant", &tenant))
    goto out;
  if (!name) {
    reply_error_field(r, 400, "bad_field", "name",
                      "name the token (who or what uses it)");
    goto out;
  }
  if (!valid_name(name)) {
    bad_name(r, "name", "token name", name);
    goto out;
  }
  if (role_parse(role) == ROLE_NONE) {
    reply_error_field(r, 400, "bad_field", "role",
                      "role is viewer, operator or admin");
    goto out;
  }
  /* A tenant's admin makes tokens of its tenant, never wider ones. */
  if (r->who.has_tenant) {
    if (tenant && strcmp(tenant, r->who.tenant)) {
      reply_error_field(r, 403, "forbidden", "tenant",
                        "token '%s' makes tokens of tenant '%s' only",
                        r->who.name, r->who.tenant);
      goto out;
    }
    tenant = r->who.tenant;
  } else if (tenant && !valid_name(tenant)) {
    bad_name(r, "tenant", "tenant", tenant);
    goto out;
  }
  memset(&t, 0, sizeof(t));
  t.name = name;
  t.role = role;
  t.tenant = tenant;
  rc = token_issue(r->store, &t, tok, sizeof(tok), &err);
  if (rc == DURIN_EEXIST) {
    reply_error_field(r, 409, "conflict", "name",
                      "a token named '%s' exists: revoke it first (DELETE "
                      "/v1/tokens/%s) or pick another name",
                      name, name);
    goto out;
  }
  if (rc) {
    reply_store_error(r, rc, &err);
    goto out;
  }
  srv_log(r->srv, "token '%s' (%s, tenant %s) created by token '%s'", name,
          role, tenant ? tenant : "*", r->who.name);
  o = token_json(&t);
  json_object_set_new(o, "token", json_string(tok));
  reply_json(r, 201, o);
out:
  json_decref(body);
  return 0;
}

/* GET /v1/tokens: metadata only, revoked ones too. */
static int list_tokens(struct req *r)
{
  struct durin_err err = { 0 };
  struct token_list c = { r, json_array() };
  int rc = durin_store_token_list(r->store, list_one_token, &c, &err);

  if (rc) {
    json_decref(c.arr);
    return reply_store_error(r, rc, &err);
  }
  return reply_json(r, 200, json_pack("{s:o}", "tokens", c.arr));
}

/* DELETE /v1/tokens/{name}: 204; the token answers 401 from now on. */
static int revoke_token(struct req *r)
{
  struct durin_err err = { 0 };
  struct token_find f = { r, r->param[0], "", 0 };
  int rc = durin_store_token_list(r->store, find_token, &f, &err);

  if (rc && rc != 1)
    return reply_store_error(r, rc, &err);
  if (!f.found)
    return reply_error(r, 404, "not_found",
                       "no token named '%s' (list them with GET /v1/tokens)",
                       r->param[0]);
  /* By id: the one judged visible above, not one made since by name. */
  rc = durin_store_token_revoke(r->store, f.id, durin_now_ms(), &err);
  if (rc)
    return reply_store_error(r, rc, &err);
  srv_log(r->srv, "token '%s' revoked by token '%s'", r->param[0], r->who.name);
  return reply_response(
      r, 204, MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT));
}

/* ---- limits ---- */

struct limit_list {
  struct req *r;
  json_t *arr;
};

static int list_one_limit(const char *scope, int64_t max, void *arg)
{
  struct limit_list *c = arg;

  /* A tenant's token sees its tenant's limit: concurrency keys are one
   * namespace for all tenants, and their names are others' business. */
  if (c->r->who.has_tenant &&
      (strncmp(scope, "tenant:", 7) || strcmp(scope + 7, c->r->who.tenant)))
    return 0;
  json_array_append_new(
      c->arr, json_pack("{s:s,s:I}", "scope", scope, "max", (json_int_t)max));
  return 0;
}

/* GET /v1/limits */
static int list_limits(struct req *r)
{
  struct durin_err err = { 0 };
  struct limit_list c = { r, json_array() };
  int rc = durin_store_limit_list(r->store, list_one_limit, &c, &err);

  if (rc) {
    json_decref(c.arr);
    return reply_store_error(r, rc, &err);
  }
  return reply_json(r, 200, json_pack("{s:o}", "limits", c.arr));
}

static int valid_scope(const char *s)
{
  if (!strncmp(s, "tenant:", 7))
    return s[7] != 0;
  if (!strncmp(s, "key:", 4))
    return s[4] != 0;
  return 0;
}

/* PUT /v1/limits/{scope} {"max": N}: at most N runs of the scope held at
 * once; a negative N or null removes the limit (durin limits set / rm). */
static int put_limit(struct req *r)
{
  static const char *const fields[] = { "max", NULL };
  struct durin_err err = { 0 };
  const char *scope = r->param[0];
  json_t *body, *max;
  int64_t n = -1;
  int rc;

  if (r->who.has_tenant)
    return reply_error(r, 403, "forbidden",
                       "limits are the server's: token '%s' of tenant '%s' "
                       "may read its tenant's, not set them",
                       r->who.name, r->who.tenant);
  if (!valid_scope(scope))
    return reply_error_field(r, 400, "bad_scope", "scope",
                             "limit scope '%s' must be 'tenant:NAME' or "
                             "'key:NAME' (a concurrency key)",
                             scope);
  if (!(body = req_json(r)))
    return 0;
  max = json_object_get(body, "max");
  if (req_unknown_field(r, body, fields))
    goto out;
  if (!max || !(json_is_null(max) || json_is_integer(max))) {
    reply_error_field(r, 400, "bad_field", "max",
                      "max is the number of runs held at once (0 or more), "
                      "or null to remove the limit");
    goto out;
  }
  if (json_is_integer(max) && json_integer_value(max) >= 0)
    n = json_integer_value(max);
  rc = durin_store_limit_set(r->store, scope, n, &err);
  if (rc) {
    reply_store_error(r, rc, &err);
    goto out;
  }
  if (n >= 0)
    srv_log(r->srv, "limit %s: %lld by token '%s'", scope, (long long)n,
            r->who.name);
  else
    srv_log(r->srv, "limit %s: removed by token '%s'", scope, r->who.name);
  /* Workers read limits when they claim: a raised one may let runs go. */
  srv_wake_worker(r->srv);
  reply_json(r, 200,
             json_pack("{s:s,s:o}", "scope", scope, "max",
                       n >= 0 ? json_integer(n) : json_null()));
out:
  json_decref(body);
  return 0;
}

/* ---- workers ---- */

struct worker_list {
  json_t *arr;
  int64_t now_ms;
};

static int list_one_worker(const struct durin_worker_row *w, void *arg)
{
  struct worker_list *c = arg;
  json_t *info = w->info ? json_loads(w->info, 0, NULL) : NULL;
  int64_t age = c->now_ms - w->beat_ms;

  json_array_append_new(
      c->arr,
      json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:o}", "owner", w->owner, "kind",
                w->kind ? w->kind : "worker", "started_ms",
                (json_int_t)w->started_ms, "beat_ms", (json_int_t)w->beat_ms,
                "heartbeat_age_ms", (json_int_t)(age > 0 ? age : 0), "max_runs",
                (json_int_t)w->max_runs, "held", (json_int_t)w->held, "info",
                info ? info : json_object()));
  return 0;
}

/* GET /v1/whoami: the request's own token, so a client (the dashboard)
 * shows only what that token may do. */
static int whoami(struct req *r)
{
  return reply_json(
      r, 200,
      json_pack("{s:s,s:s,s:o,s:b}", "name", r->who.name, "role",
                role_name(r->who.role), "tenant",
                r->who.has_tenant ? json_string(r->who.tenant) : json_null(),
                "auth", !srv_options(r->srv)->no_auth));
}

/* GET /v1/workers: each worker's last heartbeat. A worker that stopped
 * cleanly is gone; one that died stays, its heartbeat ageing. */
static int list_workers(struct req *r)
{
  struct durin_err err = { 0 };
  struct worker_list c = { json_array(), durin_now_ms() };
  int rc = durin_store_worker_list(r->store, list_one_worker, &c, &err);

  if (rc) {
    json_decref(c.arr);
    return reply_store_error(r, rc, &err);
  }
  return reply_json(r, 200, json_pack("{s:o}", "workers", c.arr));
}

const struct route srv_admin_routes[] = {
  { "GET", "/v1/agents", ROLE_VIEWER, list_agents },
  { "GET", "/v1/agents/{}", ROLE_VIEWER, get_agent },
  { "PUT", "/v1/agents/{}", ROLE_ADMIN, put_agent },
  { "POST", "/v1/tokens", ROLE_ADMIN, create_token },
  { "GET", "/v1/tokens", ROLE_ADMIN, list_tokens },
  { "DELETE", "/v1/tokens/{}", ROLE_ADMIN, revoke_token },
  { "GET", "/v1/limits", ROLE_VIEWER, list_limits },
  { "PUT", "/v1/limits/{}", ROLE_ADMIN, put_limit },
  { "GET", "/v1/workers", ROLE_VIEWER, list_workers },
  { "GET", "/v1/whoami", ROLE_VIEWER, whoami },
  { NULL, NULL, ROLE_NONE, NULL },
};
