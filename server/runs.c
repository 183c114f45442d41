/*
 * /v1/runs: create (an inline spec, or a registered agent plus
 * overrides), list (filters, keyset pages), get, the controls (cancel,
 * pause, unpause, resume with a resolution) and the event log in pages.
 * A run is created through the same path as `durin submit`
 * (cli_submit_spec), after the server's spec policy has judged it.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <microhttpd.h>

#include "cli/cmd.h"
#include "durin/harness.h"
#include "durin/spec.h"
#include "durin/util.h"
#include "server/server.h"
#include "server/specpolicy.h"
#include "server/workspaces.h"

/* ---- a run as JSON ---- */

static int last_checks(const struct durin_event *ev, void *arg)
{
  *(json_t **)arg = json_loads(ev->data, 0, NULL);
  return 0;
}

/* A limit, or null for none (0 in a spec's budget). */
static json_t *limit(int64_t v)
{
  return v > 0 ? json_integer(v) : json_null();
}

/* The run's limits, from its resolved spec: what "used of limit" is
 * measured against. */
static json_t *budget_json(const char *spec_json)
{
  struct durin_spec spec;
  json_t *b;

  memset(&spec, 0, sizeof(spec));
  if (!spec_json || durin_spec_parse(spec_json, NULL, &spec, NULL))
    return json_null();
  b = json_pack("{s:o,s:o,s:o,s:o,s:o}", "steps", limit(spec.budget.steps),
                "tokens", limit(spec.budget.tokens), "dollars",
                spec.budget.dollars > 0 ? json_real(spec.budget.dollars) :
                                          json_null(),
                "wall_clock_s",
                limit(spec.budget.wall_clock_ms > 0 ?
                          (spec.budget.wall_clock_ms + 999) / 1000 :
                          0),
                "tool_calls", limit(spec.budget.tool_calls));
  durin_spec_clear(&spec);
  return b;
}

json_t *srv_run_json(struct durin_store *st, const struct durin_run_info *ri,
                     int full)
{
  struct durin_run_meta meta;
  json_t *o, *lease = json_null();

  if (ri->lease_owner)
    lease = json_pack("{s:s,s:I,s:I}", "owner", ri->lease_owner, "epoch",
                      (json_int_t)ri->lease_epoch, "expires_ms",
                      (json_int_t)ri->lease_expires_ms);
  o = json_pack(
      "{s:s,s:s,s:s,s:s?,s:s,s:s,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I,s:I,s:I,"
      "s:I},s:f,s:I,s:I,s:I,s:o,s:b,s:b,s:I}",
      "id", ri->id, "name", ri->name ? ri->name : "", "status",
      durin_run_status_name(ri->status), "reason", ri->reason, "tenant",
      ri->tenant ? ri->tenant : "default", "model", ri->model ? ri->model : "",
      "created_ms", (json_int_t)ri->created_ms, "started_ms",
      (json_int_t)ri->started_ms, "updated_ms", (json_int_t)ri->updated_ms,
      "finished_ms", (json_int_t)ri->finished_ms, "usage", "steps",
      (json_int_t)ri->usage.steps, "input_tokens",
      (json_int_t)ri->usage.input_tokens, "output_tokens",
      (json_int_t)ri->usage.output_tokens, "model_calls",
      (json_int_t)ri->usage.model_calls, "tool_calls",
      (json_int_t)ri->usage.tool_calls, "retries",
      (json_int_t)ri->usage.retries, "cost_usd", ri->usage.cost_usd, "attempts",
      (json_int_t)ri->attempt, "recoveries", (json_int_t)ri->recoveries,
      "priority", (json_int_t)ri->priority, "lease", lease, "cancel_requested",
      ri->cancel_requested, "pause_requested", ri->pause_requested, "last_seq",
      (json_int_t)ri->last_seq);
  if (!o)
    return json_pack("{s:s,s:s}", "id", ri->id, "status",
                     durin_run_status_name(ri->status));
  if (!ri->started_ms)
    json_object_set_new(o, "started_ms", json_null());
  if (!ri->finished_ms)
    json_object_set_new(o, "finished_ms", json_null());
  if (!ri->reason)
    json_object_set_new(o, "reason", json_null());
  if (st && durin_store_run_meta(st, ri->id, &meta, NULL) == 0) {
    json_object_set_new(o, "agent",
                        meta.agent ? json_string(meta.agent) : json_null());
    json_object_set_new(o, "agent_version",
                        meta.agent ? json_integer(meta.agent_version) :
                                     json_null());
    json_object_set_new(o, "created_by",
                        meta.created_by ? json_string(meta.created_by) :
                                          json_null());
    json_object_set_new(
        o, "labels",
        json_loads(meta.labels_json ? meta.labels_json : "{}", 0, NULL));
    durin_run_meta_clear(&meta);
  }
  if (full && st) {
    struct durin_checkpoint ck;
    char *ckt = NULL;
    json_t *checks = NULL;
    int64_t step;

    memset(&ck, 0, sizeof(ck));
    if (durin_store_checkpoint_get(st, ri->id, &step, &ckt, NULL) == 0)
      durin_checkpoint_parse(ckt, &ck, NULL);
    free(ckt);
    json_object_set_new(o, "plan",
                        ck.plan ? json_incref(ck.plan) : json_array());
    json_object_set_new(o, "summary",
                        ck.summary ? json_string(ck.summary) : json_null());
    /* Only a run whose checks ran has their event (found from the end:
     * the last attempt is near it); the others' logs are not searched. */
    if (ck.eval_attempts > 0)
      durin_store_event_last(st, ri->id, "checks", last_checks, &checks, NULL);
    durin_checkpoint_clear(&ck);
    json_object_set_new(o, "checks", checks ? checks : json_null());
    json_object_set_new(o, "dedupe_key",
                        ri->dedupe_key ? json_string(ri->dedupe_key) :
                                         json_null());
    json_object_set_new(o, "concurrency_key",
                        ri->concurrency_key ? json_string(ri->concurrency_key) :
                                              json_null());
    json_object_set_new(o, "max_recoveries", json_integer(ri->max_recoveries));
    json_object_set_new(o, "budget", budget_json(ri->spec_json));
  }
  return o;
}

/* ---- create ---- */

static const char *const create_fields[] = {
  "spec",           "agent",
  "agent_version",  "overrides",
  "tenant",         "priority",
  "dedupe_key",     "concurrency_key",
  "labels",         "not_before_ms",
  "max_recoveries", "model",
  "workspace",      NULL,
};

/* RFC 7386 merge patch of patch into target (both objects). */
static void merge_patch(json_t *target, json_t *patch)
{
  const char *k;
  json_t *v;

  json_object_foreach(patch, k, v) {
    json_t *t = json_object_get(target, k);

    if (json_is_null(v))
      json_object_del(target, k);
    else if (json_is_object(v) && json_is_object(t))
      merge_patch(t, v);
    else
      json_object_set(target, k, v);
  }
}

struct agent_spec {
  json_t *spec;
  int64_t version;
};

static int got_agent(const struct durin_agent *a, void *arg)
{
  struct agent_spec *as = arg;

  as->spec = json_loads(a->spec_json, 0, NULL);
  as->version = a->version;
  return 0;
}

static int created(struct req *r, const char *id, int status, int replayed)
{
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  char loc[128];
  int rc = durin_store_run_get(r->store, id, &ri, &err);

  if (rc)
    return reply_store_error(r, rc, &err);
  reply_json(r, status, srv_run_json(r->store, &ri, 0));
  durin_run_info_clear(&ri);
  snprintf(loc, sizeof(loc), "/v1/runs/%s", id);
  MHD_add_response_header(r->resp, "Location", loc);
  if (replayed)
    MHD_add_response_header(r->resp, "Idempotent-Replayed", "true");
  return 0;
}

/* The key made a run for another request: 422, never that run. */
static int idem_reused(struct req *r, const char *idem)
{
  return reply_error(r, 422, "idempotency_key_reused",
                     "Idempotency-Key '%s' was used for a different request; "
                     "use a new key for a new run",
                     idem);
}

static int create_run(struct req *r)
{
  struct cli cli = { srv_options(r->srv)->store_url, r->store };
  struct cli_submit o;
  struct durin_spec spec;
  struct durin_err err = { 0 };
  struct agent_spec as = { NULL, 0 };
  json_t *body, *spec_j = NULL, *labels, *ws;
  const char *agent = NULL, *tenant = NULL, *idem, *field = NULL;
  char id[32], hash[65], prior_hash[65], *spec_text = NULL, *labels_text = NULL;
  char ws_dir[PATH_MAX] = "";
  int64_t agent_version = 0;
  int code, rc;

  if (srv_options(r->srv)->unsandboxed)
    return reply_error(r, 422, "spec_policy",
                       "this server runs tool calls without the sandbox "
                       "(--sandbox none), so it takes no runs over the "
                       "network; restart it with the sandbox on");
  if (!(body = req_json(r)))
    return 0;
  if (req_unknown_field(r, body, create_fields))
    goto out;
  memset(&o, 0, sizeof(o));
  if (req_opt_string(r, body, "agent", &agent) ||
      req_opt_string(r, body, "tenant", &tenant) ||
      req_opt_string(r, body, "dedupe_key", &o.dedupe_key) ||
      req_opt_string(r, body, "concurrency_key", &o.concurrency_key) ||
      req_opt_string(r, body, "model", &o.model) ||
      req_opt_int(r, body, "agent_version", &agent_version) ||
      req_opt_int(r, body, "priority", &o.priority) ||
      req_opt_int(r, body, "not_before_ms", &o.not_before_ms) ||
      req_opt_int(r, body, "max_recoveries", &o.retry_budget))
    goto out;
  /* A tenant token works in its tenant; others name one (or default). */
  if (srv_body_tenant(r, &tenant))
    goto out;
  o.tenant = tenant;
  labels = json_object_get(body, "labels");
  if (labels) {
    const char *k;
    json_t *v;

    if (!json_is_object(labels)) {
      reply_error_field(r, 400, "bad_field", "labels",
                        "labels must be an object of strings");
      goto out;
    }
    json_object_foreach(labels, k, v)
      if (!json_is_string(v)) {
        reply_error_field(r, 400, "bad_field", "labels",
                          "label '%s' must be a string", k);
        goto out;
      }
    labels_text = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS);
  }
  /* The same key with the same request: the run it made. */
  idem = req_header(r, "Idempotency-Key");
  {
    char *canon = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);

    durin_sha256_hex(canon, strlen(canon), hash);
    free(canon);
  }
  if (idem) {
    rc = durin_store_idem_get(r->store, tenant, idem, id, prior_hash, &err);
    if (rc == 0) {
      if (strcmp(hash, prior_hash))
        idem_reused(r, idem);
      else
        created(r, id, 200, 1);
      goto out;
    }
    if (rc != DURIN_ENOTFOUND) {
      reply_store_error(r, rc, &err);
      goto out;
    }
  }
  /* The spec: inline, or an agent's (pinned version) with overrides. */
  if (agent) {
    json_t *ov = json_object_get(body, "overrides");

    if (json_object_get(body, "spec")) {
      reply_error_field(r, 400, "bad_field", "spec",
                        "give 'spec' or 'agent', not both");
      goto out;
    }
    rc = durin_store_agent_get(r->store, tenant ? tenant : "default", agent,
                               agent_version, got_agent, &as, &err);
    if (rc) {
      reply_store_error(r, rc, &err);
      goto out;
    }
    spec_j = as.spec;
    as.spec = NULL;
    if (ov && !json_is_object(ov)) {
      reply_error_field(r, 400, "bad_field", "overrides",
                        "overrides must be an object merged into the agent's "
                        "spec (RFC 7386)");
      goto out;
    }
    /* The template is the agent's, which an admin chose; a run's own
     * directory is the request's "workspace" (admins only). */
    if (json_object_get(ov, "workspace")) {
      reply_error_field(r, 422, "spec_policy", "overrides.workspace",
                        "overrides do not change the agent's workspace; "
                        "give the run's as 'workspace' ({\"upload\": ID} "
                        "or, as an admin, {\"dir\": PATH})");
      goto out;
    }
    if (ov)
      merge_patch(spec_j, ov);
    o.agent = agent;
    o.agent_version = as.version;
  } else {
    spec_j = json_incref(json_object_get(body, "spec"));
    if (!json_is_object(spec_j)) {
      reply_error_field(r, 400, "bad_field", "spec",
                        "give the run's spec as 'spec' (an object), or a "
                        "registered agent as 'agent'");
      goto out;
    }
    if (json_object_get(spec_j, "workspace")) {
      reply_error_field(r, 422, "spec_policy", "spec.workspace",
                        "a spec sent over the API names no host directory: "
                        "upload the workspace (POST /v1/workspaces) or, as "
                        "an admin, give {\"workspace\": {\"dir\": ...}}");
      goto out;
    }
  }
  /* Where the run's files come from. */
  ws = json_object_get(body, "workspace");
  if (srv_workspace_for_run(
          r, ws, json_string_value(json_object_get(spec_j, "workspace")),
          ws_dir, sizeof(ws_dir)))
    goto out;
  json_object_set_new(spec_j, "workspace", json_string(ws_dir));
  /* A caller's W3C trace context: the run's trace joins it (the spec
   * checks its form, and a bad one is refused as the spec's field). */
  if (req_header(r, "traceparent") && !json_object_get(spec_j, "traceparent"))
    json_object_set_new(spec_j, "traceparent",
                        json_string(req_header(r, "traceparent")));
  spec_text = json_dumps(spec_j, JSON_COMPACT);
  if (durin_spec_parse(spec_text, NULL, &spec, &err)) {
    reply_error(r, 422, "bad_spec", "bad spec: %s", err.msg);
    goto out;
  }
  if (srv_options(r->srv)->policy &&
      spec_policy_check(srv_options(r->srv)->policy,
                        tenant ? tenant : "default", &spec, &field, &err)) {
    reply_error_field(r, 422, "spec_policy", field, "%s", err.msg);
    durin_spec_clear(&spec);
    goto out;
  }
  o.labels_json = labels_text;
  o.created_by = r->who.name;
  o.idem_key = idem;
  o.idem_hash = hash;
  code = cli_submit_spec(&cli, srv_data_dir(r->srv), &spec, &o, id, &err);
  if (code) {
    if (code == EXIT_SPEC)
      reply_error(r, 422, "bad_spec", "%s", err.msg);
    else
      reply_store_error(r, DURIN_ESTORE, &err);
    goto out;
  }
  if (o.idem_reused) {
    /* Another request with the key won the race: its run is the answer,
     * unless it was another request (then the refusal above). */
    if (durin_store_idem_get(r->store, tenant, idem, id, prior_hash, &err))
      reply_store_error(r, DURIN_ESTORE, &err);
    else if (strcmp(hash, prior_hash))
      idem_reused(r, idem);
    else
      created(r, id, 200, 1);
    goto out;
  }
  srv_wake_worker(r->srv);
  created(r, id, o.deduped ? 200 : 201, 0);
out:
  srv_workspace_done(ws_dir);
  json_decref(spec_j);
  json_decref(as.spec);
  json_decref(body);
  free(spec_text);
  free(labels_text);
  return 0;
}

/* ---- list ---- */

struct list_ctx {
  struct req *r;
  json_t *arr;
  char last_id[32];
  int64_t last_ms;
};

static int list_one(const struct durin_run_info *ri, void *arg)
{
  struct list_ctx *c = arg;

  json_array_append_new(c->arr, srv_run_json(c->r->store, ri, 0));
  snprintf(c->last_id, sizeof(c->last_id), "%s", ri->id);
  c->last_ms = ri->created_ms;
  return 0;
}

static int64_t arg_ms(struct req *r, const char *name, int *bad)
{
  const char *v = req_arg(r, name);
  char *end;
  long long n;

  if (!v)
    return 0;
  n = strtoll(v, &end, 10);
  if (*end || n < 0) {
    reply_error_field(r, 400, "bad_query", name,
                      "'%s' must be milliseconds since the epoch", name);
    *bad = 1;
  }
  return n;
}

static int list_runs(struct req *r)
{
  struct durin_run_query qy;
  struct list_ctx c = { r, json_array(), "", 0 };
  struct durin_err err = { 0 };
  const char *status = req_arg(r, "status"), *label = req_arg(r, "label");
  const char *cursor = req_arg(r, "cursor"), *limit = req_arg(r, "limit");
  char key[256], cur_id[32] = "";
  int more = 0, bad = 0, rc;
  json_t *page;

  memset(&qy, 0, sizeof(qy));
  if (status) {
    char buf[256], *tok, *save;

    snprintf(buf, sizeof(buf), "%s", status);
    for (tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
      enum durin_run_status s;

      if (durin_run_status_parse(tok, &s)) {
        json_decref(c.arr);
        return reply_error_field(
            r, 400, "bad_query", "status",
            "'%s' is not a run status (queued, running, waiting_approval, "
            "sleeping, evaluating, paused, needs_human, succeeded, failed, "
            "cancelled, budget_exceeded)",
            tok);
      }
      qy.status_mask |= 1 << s;
    }
  }
  qy.tenant = req_arg(r, "tenant");
  if (r->who.has_tenant) {
    if (qy.tenant && strcmp(qy.tenant, r->who.tenant)) {
      json_decref(c.arr);
      return reply_json(r, 200, json_pack("{s:[],s:n}", "runs", "next_cursor"));
    }
    qy.tenant = r->who.tenant;
  }
  qy.agent = req_arg(r, "agent");
  if (label) {
    const char *eq = strchr(label, '=');

    snprintf(key, sizeof(key), "%.*s",
             eq ? (int)(eq - label) : (int)strlen(label), label);
    qy.label_key = key;
    qy.label_value = eq ? eq + 1 : NULL;
  }
  qy.created_after_ms = arg_ms(r, "created_after", &bad);
  if (!bad)
    qy.created_before_ms = arg_ms(r, "created_before", &bad);
  if (bad) {
    json_decref(c.arr);
    return 0;
  }
  if (cursor) {
    long long ms;

    if (sscanf(cursor, "%lld.%31s", &ms, cur_id) != 2) {
      json_decref(c.arr);
      return reply_error_field(r, 400, "bad_query", "cursor",
                               "the cursor is not one this server made; "
                               "pass next_cursor from the previous page");
    }
    qy.cursor_ms = ms;
    qy.cursor_id = cur_id;
  }
  qy.limit = limit ? atoi(limit) : 50;
  if (qy.limit < 1 || qy.limit > 1000) {
    json_decref(c.arr);
    return reply_error_field(r, 400, "bad_query", "limit",
                             "limit is 1 to 1000");
  }
  rc = durin_store_run_query(r->store, &qy, list_one, &c, &more, &err);
  if (rc) {
    json_decref(c.arr);
    return reply_store_error(r, rc, &err);
  }
  page = json_pack("{s:o}", "runs", c.arr);
  if (more) {
    char next[64];

    snprintf(next, sizeof(next), "%lld.%s", (long long)c.last_ms, c.last_id);
    json_object_set_new(page, "next_cursor", json_string(next));
  } else {
    json_object_set_new(page, "next_cursor", json_null());
  }
  return reply_json(r, 200, page);
}

/* ---- one run ---- */

static int get_run(struct req *r)
{
  struct durin_run_info ri;

  if (req_run(r, r->param[0], &ri))
    return 0;
  reply_json(r, 200, srv_run_json(r->store, &ri, 1));
  durin_run_info_clear(&ri);
  return 0;
}

/* The run after a control: 202, the change happens at the holder's next
 * step boundary (or at once for a run nobody holds). */
static int after_control(struct req *r, const char *id, const char *what)
{
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  int rc = durin_store_run_get(r->store, id, &ri, &err);

  srv_log(r->srv, "run %s: %s by token '%s'", id, what, r->who.name);
  srv_wake_worker(r->srv);
  if (rc)
    return reply_store_error(r, rc, &err);
  reply_json(r, 202, srv_run_json(r->store, &ri, 0));
  durin_run_info_clear(&ri);
  return 0;
}

/* Records who asked for a control in the run's log (the audit trail). */
static void audit(struct req *r, const char *id, const char *action,
                  json_t *extra)
{
  struct durin_err err = { 0 };
  json_t *d = json_pack("{s:s,s:s,s:s}", "action", action, "by", r->who.name,
                        "role", role_name(r->who.role));

  if (extra)
    json_object_update(d, extra);
  json_decref(extra);
  if (durin_store_control_event(r->store, id, "control", d, durin_now_ms(),
                                &err))
    srv_log(r->srv, "run %s: cannot record the %s in its log: %s", id, action,
            err.msg);
  json_decref(d);
}

/* Cancel or pause: refused for an ended run (409); recorded with who. */
static int stop_control(struct req *r, int pause)
{
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  int rc;

  if (req_run(r, r->param[0], &ri))
    return 0;
  if (durin_run_status_terminal(ri.status)) {
    reply_error(r, 409, "conflict", "run '%s' has already ended (%s)", ri.id,
                durin_run_status_name(ri.status));
    durin_run_info_clear(&ri);
    return 0;
  }
  rc = pause ? durin_store_run_pause(r->store, ri.id, durin_now_ms(), &err) :
               durin_store_run_request_cancel(r->store, ri.id, &err);
  if (!rc)
    audit(r, ri.id, pause ? "pause" : "cancel", NULL);
  durin_run_info_clear(&ri);
  if (rc)
    return reply_store_error(r, rc, &err);
  return after_control(r, r->param[0],
                       pause ? "pause requested" : "cancel requested");
}

static int cancel_run(struct req *r)
{
  return stop_control(r, 0);
}

static int pause_run(struct req *r)
{
  return stop_control(r, 1);
}

static int unpause_run(struct req *r)
{
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  int rc;

  if (req_run(r, r->param[0], &ri))
    return 0;
  rc = durin_store_run_unpause(r->store, ri.id, durin_now_ms(), &err);
  if (!rc)
    audit(r, ri.id, "unpause", NULL);
  durin_run_info_clear(&ri);
  if (rc)
    return reply_store_error(r, rc, &err);
  return after_control(r, r->param[0], "unpaused");
}

static int resume_run(struct req *r)
{
  static const char *const fields[] = { "resolution", NULL };
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  json_t *body = NULL;
  const char *res = NULL;
  int resolve = -1, rc;

  if (r->body_len) {
    if (!(body = req_json(r)))
      return 0;
    if (req_unknown_field(r, body, fields) ||
        req_opt_string(r, body, "resolution", &res)) {
      json_decref(body);
      return 0;
    }
  }
  if (res && !strcmp(res, "retry-call"))
    resolve = 1;
  else if (res && !strcmp(res, "skip-call"))
    resolve = 0;
  else if (res) {
    reply_error_field(r, 400, "bad_field", "resolution",
                      "resolution is 'retry-call' (run the indeterminate "
                      "call again) or 'skip-call' (record it as not run)");
    json_decref(body);
    return 0;
  }
  json_decref(body);
  if (req_run(r, r->param[0], &ri))
    return 0;
  rc = durin_store_run_requeue(r->store, ri.id, resolve, r->who.name,
                               durin_now_ms(), &err);
  durin_run_info_clear(&ri);
  if (rc)
    return reply_store_error(r, rc, &err);
  return after_control(r, r->param[0], "resumed");
}

/* ---- the event log in pages ---- */

struct ev_ctx {
  json_t *arr;
  int64_t last;
};

json_t *srv_event_json(const struct durin_event *ev)
{
  json_t *data = json_loads(ev->data ? ev->data : "{}", 0, NULL);

  return json_pack("{s:I,s:I,s:I,s:s,s:o}", "seq", (json_int_t)ev->seq, "ts_ms",
                   (json_int_t)ev->ts_ms, "step", (json_int_t)ev->step, "type",
                   ev->type, "data", data ? data : json_object());
}

static int ev_one(const struct durin_event *ev, void *arg)
{
  struct ev_ctx *c = arg;

  json_array_append_new(c->arr, srv_event_json(ev));
  c->last = ev->seq;
  return 0;
}

static int list_events(struct req *r)
{
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  struct ev_ctx c = { NULL, 0 };
  const char *after = req_arg(r, "after"), *limit = req_arg(r, "limit");
  int64_t from = after ? atoll(after) : 0;
  int64_t max = limit ? atoll(limit) : 500;
  int rc;

  if (from < 0 || max < 1 || max > 5000)
    return reply_error(r, 400, "bad_query",
                       "after is a sequence number (0: from the start) and "
                       "limit 1 to 5000");
  if (req_run(r, r->param[0], &ri))
    return 0;
  c.arr = json_array();
  c.last = from;
  rc = durin_store_events_read(r->store, ri.id, from + 1, max + 1, ev_one, &c,
                               &err);
  if (rc) {
    json_decref(c.arr);
    durin_run_info_clear(&ri);
    return reply_store_error(r, rc, &err);
  }
  {
    int more = json_array_size(c.arr) > (size_t)max;

    if (more) {
      json_array_remove(c.arr, json_array_size(c.arr) - 1);
      c.last = json_integer_value(json_object_get(
          json_array_get(c.arr, json_array_size(c.arr) - 1), "seq"));
    }
    reply_json(r, 200,
               json_pack("{s:o,s:I,s:b,s:s}", "events", c.arr, "next_after",
                         (json_int_t)c.last, "more", more, "run_status",
                         durin_run_status_name(ri.status)));
  }
  durin_run_info_clear(&ri);
  return 0;
}

/* ---- health ---- */

static int readyz(struct req *r)
{
  struct durin_err err = { 0 };
  int more = 0, rc;
  struct durin_run_query qy;

  memset(&qy, 0, sizeof(qy));
  qy.limit = 1;
  qy.tenant = "\x01";
  rc = durin_store_run_query(r->store, &qy, NULL, NULL, &more, &err);
  if (rc)
    return reply_error(r, 503, "unavailable", "the store does not answer: %s",
                       err.msg);
  return reply_json(r, 200, json_pack("{s:s}", "status", "ready"));
}

const struct route srv_run_routes[] = {
  { "GET", "/readyz", ROLE_NONE, readyz },
  { "POST", "/v1/runs", ROLE_OPERATOR, create_run },
  { "GET", "/v1/runs", ROLE_VIEWER, list_runs },
  { "GET", "/v1/runs/{}", ROLE_VIEWER, get_run },
  { "POST", "/v1/runs/{}/cancel", ROLE_OPERATOR, cancel_run },
  { "POST", "/v1/runs/{}/pause", ROLE_OPERATOR, pause_run },
  { "POST", "/v1/runs/{}/unpause", ROLE_OPERATOR, unpause_run },
  { "POST", "/v1/runs/{}/resume", ROLE_OPERATOR, resume_run },
  { "GET", "/v1/runs/{}/events", ROLE_VIEWER, list_events },
  { NULL, NULL, ROLE_NONE, NULL },
};
