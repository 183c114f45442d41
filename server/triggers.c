/*
 * /v1/triggers: inbound webhooks that start runs (docs/internals/
 * triggers.md). Admins define triggers; POST /v1/triggers/{name} is where
 * GitHub (or any Standard Webhooks sender) delivers. That route takes no
 * bearer token: the delivery's signature, under a secret of the vault,
 * is its authentication. What it does, in order:
 *
 *   unknown trigger            404, nothing recorded (nothing to tell)
 *   bad or missing signature   401, recorded refused (a hash of the body)
 *   not JSON                   400, recorded refused
 *   filtered out               200 {"ignored": true, "reason"}, recorded
 *   author not trusted         200 ignored, or the stricter spec's run
 *   a redelivery               200 with the first delivery's run
 *   accepted                   202 {"run_id", "delivery"}
 *
 * The accepted delivery's row is written in its run's transaction, under
 * a unique index (lib/store/sql-triggers.c): many servers receiving the
 * same delivery at once start one run.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "cli/cmd.h"
#include "durin/secret.h"
#include "durin/spec.h"
#include "durin/store.h"
#include "durin/trigger.h"
#include "durin/util.h"
#include "server.h"
#include "specpolicy.h"
#include "workspaces.h"

static json_t *trigger_json(const struct durin_trigger_def *t, int full)
{
  json_t *c = json_loads(t->config, 0, NULL), *o;
  char url[128];

  snprintf(url, sizeof(url), "/v1/triggers/%s", t->name);
  o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:s?}", "name", t->name, "tenant",
                t->tenant, "kind", t->kind, "secret", t->secret, "url", url,
                "created_ms", (json_int_t)t->created_ms, "created_by",
                t->created_by);
  if (!o)
    goto out;
  json_object_set_new(o, "events",
                      json_object_get(c, "events") ?
                          json_incref(json_object_get(c, "events")) :
                          json_array());
  json_object_set_new(o, "where",
                      json_object_get(c, "where") ?
                          json_incref(json_object_get(c, "where")) :
                          json_array());
  json_object_set_new(o, "goal",
                      json_incref(json_object_get(c, "goal")) ?: json_null());
  json_object_set_new(
      o, "labels", json_incref(json_object_get(c, "labels")) ?: json_object());
  json_object_set_new(o, "untrusted",
                      json_incref(json_object_get(c, "untrusted")) ?:
                          json_string("ignore"));
  if (full) {
    json_t *s = json_loads(t->spec, 0, NULL);

    json_object_set_new(o, "spec", s ? s : json_null());
    s = t->untrusted_spec ? json_loads(t->untrusted_spec, 0, NULL) : NULL;
    json_object_set_new(o, "untrusted_spec", s ? s : json_null());
  }
out:
  json_decref(c);
  return o;
}

/* ---- management ---- */

static int list_one(const struct durin_trigger_def *t, void *arg)
{
  json_array_append_new(arg, trigger_json(t, 0));
  return 0;
}

/* GET /v1/triggers[?tenant=T] */
static int list_triggers(struct req *r)
{
  struct durin_err err = { 0 };
  const char *tenant;
  json_t *arr;
  int rc = srv_list_tenant(r, &tenant);

  if (rc < 0)
    return 0;
  arr = json_array();
  if (rc == 0 &&
      (rc = durin_store_trigger_list(r->store, tenant, list_one, arr, &err))) {
    json_decref(arr);
    return reply_store_error(r, rc, &err);
  }
  return reply_json(r, 200, json_pack("{s:o}", "triggers", arr));
}

/* The request's trigger, if the token may see it; 0 after answering 404
 * (the same whether there is none or it is another tenant's). */
static int find(struct req *r, struct durin_trigger_def *t)
{
  struct durin_err err = { 0 };
  int rc = durin_store_trigger_get(r->store, r->param[0], t, &err);

  if (rc == 0 && !req_sees_tenant(r, t->tenant)) {
    durin_trigger_def_clear(t);
    rc = DURIN_ENOTFOUND;
  }
  if (rc == DURIN_ENOTFOUND) {
    reply_error(r, 404, "not_found",
                "no trigger '%s' (list them with GET /v1/triggers)",
                r->param[0]);
    return 0;
  }
  if (rc) {
    reply_store_error(r, rc, &err);
    return 0;
  }
  return 1;
}

/* GET /v1/triggers/{name}: with its pinned specs. */
static int get_trigger(struct req *r)
{
  struct durin_trigger_def t;

  memset(&t, 0, sizeof(t));
  if (!find(r, &t))
    return 0;
  reply_json(r, 200, trigger_json(&t, 1));
  durin_trigger_def_clear(&t);
  return 0;
}

/* DELETE /v1/triggers/{name}: and its deliveries. */
static int delete_trigger(struct req *r)
{
  struct durin_trigger_def t;
  struct durin_err err = { 0 };
  int rc;

  memset(&t, 0, sizeof(t));
  if (!find(r, &t))
    return 0;
  rc = durin_store_trigger_delete(r->store, t.tenant, t.name, &err);
  durin_trigger_def_clear(&t);
  if (rc)
    return reply_store_error(r, rc, &err);
  return reply_json(r, 200,
                    json_pack("{s:s,s:b}", "name", r->param[0], "deleted", 1));
}

/* A spec of the create request (field), checked, as text to pin; NULL
 * after answering. Its workspace is an admin's directory under the
 * server's root (ws: {"dir": PATH}), or none (an empty one per run). */
static char *pin_spec(struct req *r, json_t *spec, json_t *ws,
                      const char *field)
{
  struct durin_spec s;
  struct durin_err err = { 0 };
  char dir[PATH_MAX] = "", *text, *check;
  json_t *copy;
  int rc;

  if (!json_is_object(spec)) {
    reply_error_field(r, 400, "bad_field", field,
                      "give the trigger's spec as '%s' (an object)", field);
    return NULL;
  }
  if (json_object_get(spec, "workspace")) {
    reply_error_field(r, 422, "spec_policy", field,
                      "a spec sent over the API names no host directory: "
                      "give {\"workspace\": {\"dir\": PATH}} beside it");
    return NULL;
  }
  if (ws) {
    const char *path = json_string_value(json_object_get(ws, "dir"));

    if (!json_is_object(ws) || !path || json_object_size(ws) != 1) {
      reply_error_field(r, 400, "bad_field", "workspace",
                        "workspace is {\"dir\": PATH}, a directory under the "
                        "server's --workspace-root");
      return NULL;
    }
    if (srv_workspace_under_root(r, path, "workspace.dir", dir, sizeof(dir)))
      return NULL;
  }
  copy = json_deep_copy(spec);
  if (*dir)
    json_object_set_new(copy, "workspace", json_string(dir));
  text = json_dumps(copy, JSON_COMPACT);
  /* Without one, each run gets an empty workspace (start); checked
   * here as if it had one. */
  if (!*dir)
    json_object_set_new(copy, "workspace", json_string(srv_data_dir(r->srv)));
  check = json_dumps(copy, JSON_COMPACT);
  json_decref(copy);
  rc = durin_spec_parse(check, NULL, &s, &err);
  free(check);
  if (rc) {
    reply_error_field(r, 422, "bad_spec", field, "bad spec: %.400s", err.msg);
    free(text);
    return NULL;
  }
  durin_spec_clear(&s);
  return text;
}

/* POST /v1/triggers {name, kind, secret, spec, workspace?, events?,
 * where?, goal?, labels?, untrusted?, untrusted_spec?}: 201. */
static int create_trigger(struct req *r)
{
  static const char *const fields[] = {
    "name",  "kind", "secret", "spec",      "workspace",      "events",
    "where", "goal", "labels", "untrusted", "untrusted_spec", NULL,
  };
  static const char *const config_keys[] = { "events", "where",     "goal",
                                             "labels", "untrusted", NULL };
  struct durin_trigger_def t;
  struct durin_secret_row row;
  struct durin_err err = { 0 };
  const char *name = NULL, *kind = NULL, *secret = NULL, *tenant;
  json_t *body, *config = NULL;
  char *spec = NULL, *uspec = NULL, *config_text = NULL;
  int rc, i;

  memset(&t, 0, sizeof(t));
  memset(&row, 0, sizeof(row));
  if (!(body = req_json(r)))
    return 0;
  if (req_unknown_field(r, body, fields) ||
      req_opt_string(r, body, "name", &name) ||
      req_opt_string(r, body, "kind", &kind) ||
      req_opt_string(r, body, "secret", &secret) ||
      srv_act_tenant(r, 1, &tenant) < 0)
    goto out;
  if (durin_trigger_name_check(name, &err)) {
    reply_error_field(r, 400, "bad_field", "name", "%s", err.msg);
    goto out;
  }
  if (!kind || (strcmp(kind, "github") && strcmp(kind, "standard"))) {
    reply_error_field(r, 400, "bad_field", "kind",
                      "kind is \"github\" (X-Hub-Signature-256) or "
                      "\"standard\" (Standard Webhooks)");
    goto out;
  }
  if (durin_secret_name_check(secret, &err)) {
    reply_error_field(r, 400, "bad_field", "secret", "%s", err.msg);
    goto out;
  }
  rc = durin_store_secret_get(r->store, tenant, secret, &row, &err);
  durin_secret_row_clear(&row);
  if (rc == DURIN_ENOTFOUND) {
    reply_error_field(r, 422, "not_found", "secret",
                      "no secret '%s' in tenant '%s': store the webhook's "
                      "secret first (PUT /v1/secrets/%s)",
                      secret, tenant, secret);
    goto out;
  }
  if (rc) {
    reply_store_error(r, rc, &err);
    goto out;
  }
  config = json_object();
  for (i = 0; config_keys[i]; i++)
    if (json_object_get(body, config_keys[i]) &&
        !json_is_null(json_object_get(body, config_keys[i])))
      json_object_set(config, config_keys[i],
                      json_object_get(body, config_keys[i]));
  if (durin_trigger_config_check(config, &err)) {
    reply_error(r, 400, "bad_field", "%s", err.msg);
    goto out;
  }
  if (!(spec = pin_spec(r, json_object_get(body, "spec"),
                        json_object_get(body, "workspace"), "spec")))
    goto out;
  if (json_object_get(body, "untrusted_spec") &&
      !(uspec = pin_spec(r, json_object_get(body, "untrusted_spec"),
                         json_object_get(body, "workspace"), "untrusted_spec")))
    goto out;
  if (uspec && !json_object_get(config, "untrusted"))
    json_object_set_new(config, "untrusted", json_string("spec"));
  if (!uspec && json_is_string(json_object_get(config, "untrusted")) &&
      !strcmp(json_string_value(json_object_get(config, "untrusted")),
              "spec")) {
    reply_error_field(r, 400, "bad_field", "untrusted_spec",
                      "untrusted \"spec\" needs the stricter spec as "
                      "'untrusted_spec'");
    goto out;
  }
  config_text = json_dumps(config, JSON_COMPACT);
  t.name = (char *)name;
  t.tenant = (char *)tenant;
  t.kind = (char *)kind;
  t.secret = (char *)secret;
  t.config = config_text;
  t.spec = spec;
  t.untrusted_spec = uspec;
  t.created_ms = durin_now_ms();
  t.created_by = r->who.name;
  if ((rc = durin_store_trigger_add(r->store, &t, &err))) {
    if (rc == DURIN_EEXIST)
      reply_error_field(r, 409, "exists", "name", "%s", err.msg);
    else
      reply_store_error(r, rc, &err);
    goto out;
  }
  reply_json(r, 201, trigger_json(&t, 1));
out:
  json_decref(body);
  json_decref(config);
  free(spec);
  free(uspec);
  free(config_text);
  return 0;
}

/* ---- deliveries ---- */

static int delivery_one(const struct durin_trigger_delivery *d, void *arg)
{
  json_array_append_new(
      arg,
      json_pack("{s:s,s:I,s:s?,s:s,s:s?,s:s?,s:s?,s:s?,s:s?}", "delivery",
                d->delivery, "received_ms", (json_int_t)d->received_ms, "event",
                d->event, "outcome", d->outcome, "reason", d->reason, "run_id",
                d->run_id, "sender", d->sender, "author_association",
                d->association, "body_sha256", d->body_sha256));
  return 0;
}

/* GET /v1/triggers/{name}/deliveries[?limit=N]: newest first. */
static int list_deliveries(struct req *r)
{
  struct durin_trigger_def t;
  struct durin_err err = { 0 };
  const char *l = req_arg(r, "limit");
  json_t *arr;
  int rc;

  memset(&t, 0, sizeof(t));
  if (!find(r, &t))
    return 0;
  arr = json_array();
  rc = durin_store_delivery_list(r->store, t.name, l ? atoi(l) : 100,
                                 delivery_one, arr, &err);
  durin_trigger_def_clear(&t);
  if (rc) {
    json_decref(arr);
    return reply_store_error(r, rc, &err);
  }
  return reply_json(r, 200, json_pack("{s:o}", "deliveries", arr));
}

/* ---- receiving ---- */

/* One delivery being received. */
struct inbound {
  struct req *r;
  struct durin_trigger_def t;
  struct durin_trigger_delivery d;
  json_t *config, *payload;
  char event[160];
  char reason[512];
  char sha[65];
};

/* Records the delivery as it turned out (not accepted: no run). A store
 * failure here is logged: the answer stands. */
static void record(struct inbound *in, const char *outcome)
{
  struct durin_err err = { 0 };

  in->d.outcome = outcome;
  in->d.reason = in->reason;
  in->d.event = *in->event ? in->event : NULL;
  if (durin_store_delivery_add(in->r->store, &in->d, &err))
    srv_log(in->r->srv, "trigger '%s': cannot record a delivery: %s",
            in->t.name, err.msg);
}

/* Checks the signature; 0, or nonzero after answering (and recording). */
static int verify(struct inbound *in)
{
  struct req *r = in->r;
  struct durin_master_key *k = NULL;
  struct durin_secret_value v = { 0 };
  struct durin_err err = { 0 };
  int github = !strcmp(in->t.kind, "github"), rc;

  /* Unsigned: refused before the master key is loaded and the secret
   * opened (the verifiers look at the headers before the key). */
  if (github ? !req_header(r, "X-Hub-Signature-256") :
               !req_header(r, "webhook-signature"))
    goto check;
  rc = durin_master_key_load(&k, &err);
  if (!rc)
    rc = durin_secret_get(r->store, k, in->t.tenant, in->t.secret, &v, &err);
  durin_master_key_free(k);
  if (rc) {
    /* The server's own trouble: the sender may retry later. */
    srv_log(r->srv, "trigger '%s': cannot open secret '%s': %s", in->t.name,
            in->t.secret, err.msg);
    snprintf(in->reason, sizeof(in->reason),
             "this server cannot open the trigger's secret '%s'", in->t.secret);
    record(in, "refused");
    reply_error(r, 503, "unavailable",
                "the trigger cannot check signatures now; retry later");
    return -1;
  }
check:
  if (github)
    rc = durin_trigger_verify_github(
        v.data, v.len, r->body ? r->body : "", r->body_len,
        req_header(r, "X-Hub-Signature-256"), &err);
  else
    rc = durin_trigger_verify_standard(
        (const char *)v.data, req_header(r, "webhook-id"),
        req_header(r, "webhook-timestamp"), req_header(r, "webhook-signature"),
        r->body ? r->body : "", r->body_len, durin_now_ms() / 1000, &err);
  durin_secret_value_clear(&v);
  if (rc) {
    snprintf(in->reason, sizeof(in->reason), "%s", err.msg);
    record(in, "refused");
    reply_error(r, 401, "bad_signature", "%s", err.msg);
    return -1;
  }
  return 0;
}

/* The run's spec with the goal rendered, as text; NULL after answering
 * (a template the payload does not fill refuses the delivery). */
static char *render_spec(struct inbound *in, const char *pinned,
                         char **labels_text)
{
  struct durin_err err = { 0 };
  json_t *spec = json_loads(pinned, 0, NULL), *labels, *v;
  const char *goal = json_string_value(json_object_get(in->config, "goal"));
  const char *k;
  char *text = NULL, *out;

  labels =
      json_pack("{s:s,s:s}", "trigger", in->t.name, "delivery", in->d.delivery);
  if (!spec || !labels)
    goto refuse_nomem;
  if (goal) {
    if (durin_trigger_render(goal, in->payload, &text, &err))
      goto refuse;
    json_object_set_new(spec, "goal", json_string(text));
    free(text);
    text = NULL;
  }
  json_object_foreach(json_object_get(in->config, "labels"), k, v) {
    if (durin_trigger_render(json_string_value(v), in->payload, &text, &err))
      goto refuse;
    /* Labels are short: one line of at most 256 bytes. */
    text[strcspn(text, "\r\n")] = 0;
    if (strlen(text) > 256)
      text[256] = 0;
    json_object_set_new(labels, k, json_string(text));
    free(text);
    text = NULL;
  }
  *labels_text = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS);
  out = json_dumps(spec, JSON_COMPACT);
  json_decref(spec);
  json_decref(labels);
  return out;
refuse_nomem:
  durin_err_set(&err, DURIN_ENOMEM, "out of memory");
refuse:
  free(text);
  json_decref(spec);
  json_decref(labels);
  snprintf(in->reason, sizeof(in->reason), "%s", err.msg);
  record(in, "refused");
  reply_error(in->r, 422, "bad_payload", "%s", err.msg);
  return NULL;
}

static int reply_run(struct inbound *in, int status, const char *run_id)
{
  return reply_json(in->r, status,
                    json_pack("{s:s,s:s,s:s,s:b}", "run_id", run_id, "delivery",
                              in->d.delivery, "trigger", in->t.name,
                              "redelivery", status != 202));
}

/* Starts the run of spec_text; answers. */
static void start(struct inbound *in, const char *pinned)
{
  struct req *r = in->r;
  struct cli cli = { srv_options(r->srv)->store_url, r->store };
  struct cli_submit o;
  struct durin_spec spec;
  struct durin_err err = { 0 };
  const char *field = NULL;
  char *text, *labels = NULL, id[32], key[400], ws[PATH_MAX] = "";
  int staged = 0, code;

  if (srv_options(r->srv)->unsandboxed) {
    snprintf(in->reason, sizeof(in->reason),
             "this server runs tool calls without the sandbox");
    record(in, "refused");
    reply_error(r, 422, "spec_policy",
                "this server runs tool calls without the sandbox (--sandbox "
                "none), so it starts no runs from outside; restart it with "
                "the sandbox on");
    return;
  }
  if (!(text = render_spec(in, pinned, &labels)))
    return;
  /* No directory pinned: an empty workspace, staged for this run. */
  {
    json_t *j = json_loads(text, 0, NULL);

    if (j && !json_object_get(j, "workspace")) {
      if (srv_workspace_for_run(r, NULL, NULL, ws, sizeof(ws))) {
        json_decref(j);
        goto out;
      }
      staged = 1;
      json_object_set_new(j, "workspace", json_string(ws));
      free(text);
      text = json_dumps(j, JSON_COMPACT);
    }
    json_decref(j);
  }
  if (durin_spec_parse(text, NULL, &spec, &err)) {
    snprintf(in->reason, sizeof(in->reason), "bad spec: %.400s", err.msg);
    record(in, "refused");
    reply_error(r, 422, "bad_spec", "%s", in->reason);
    goto out;
  }
  if (srv_options(r->srv)->policy &&
      spec_policy_check(srv_options(r->srv)->policy, in->t.tenant, &spec,
                        &field, &err)) {
    snprintf(in->reason, sizeof(in->reason), "spec policy: %.400s", err.msg);
    durin_spec_clear(&spec);
    record(in, "refused");
    reply_error_field(r, 422, "spec_policy", field, "%s", err.msg);
    goto out;
  }
  memset(&o, 0, sizeof(o));
  snprintf(key, sizeof(key), "trigger:%s:%s", in->t.name, in->d.delivery);
  o.tenant = in->t.tenant;
  o.dedupe_key = key;
  o.labels_json = labels;
  o.created_by = in->t.name;
  o.delivery = &in->d;
  in->d.outcome = "accepted";
  in->d.reason = in->reason;
  in->d.event = *in->event ? in->event : NULL;
  code = cli_submit_spec(&cli, srv_data_dir(r->srv), &spec, &o, id, &err);
  if (code) {
    snprintf(in->reason, sizeof(in->reason), "cannot start the run: %.400s",
             err.msg);
    record(in, "refused");
    if (code == EXIT_SPEC)
      reply_error(r, 422, "bad_spec", "%s", err.msg);
    else
      reply_store_error(r, DURIN_ESTORE, &err);
    goto out;
  }
  if (o.deduped) {
    reply_run(in, 200, id);
    goto out;
  }
  srv_wake_worker(r->srv);
  reply_run(in, 202, id);
out:
  if (staged)
    srv_workspace_done(ws);
  free(text);
  free(labels);
}

/* POST /v1/triggers/{name}: a delivery. No bearer token: the signature. */
static int receive(struct req *r)
{
  struct inbound in;
  struct durin_err err = { 0 };
  const char *id, *assoc, *action, *pinned;
  json_error_t je;
  char run_id[32], idbuf[208];
  int rc;

  memset(&in, 0, sizeof(in));
  in.r = r;
  rc = durin_store_trigger_get(r->store, r->param[0], &in.t, &err);
  if (rc == DURIN_ENOTFOUND) {
    reply_error(r, 404, "not_found", "no such trigger");
    goto out;
  }
  if (rc) {
    reply_store_error(r, rc, &err);
    goto out;
  }
  in.config = json_loads(in.t.config, 0, NULL);
  durin_sha256_hex(r->body ? r->body : "", r->body_len, in.sha);
  id = req_header(r, !strcmp(in.t.kind, "github") ? "X-GitHub-Delivery" :
                                                    "webhook-id");
  /* Recorded even when refused, so capped: the header is anyone's. */
  snprintf(idbuf, sizeof(idbuf), "%.200s", id ? id : "");
  in.d.trigger = in.t.name;
  in.d.delivery = idbuf;
  in.d.received_ms = durin_now_ms();
  in.d.body_sha256 = in.sha;
  if (verify(&in))
    goto out;
  if (!*in.d.delivery || strlen(id) > 200) {
    snprintf(in.reason, sizeof(in.reason),
             "no X-GitHub-Delivery header (or one over 200 bytes): a "
             "delivery needs an id to be started once");
    record(&in, "refused");
    reply_error(r, 400, "bad_request", "%s", in.reason);
    goto out;
  }
  in.payload = json_loadb(r->body ? r->body : "", r->body_len, 0, &je);
  if (!json_is_object(in.payload)) {
    snprintf(in.reason, sizeof(in.reason), "the body is not a JSON object (%s)",
             je.text);
    record(&in, "refused");
    reply_error(r, 400, "bad_json", "%s", in.reason);
    goto out;
  }
  /* The event: GitHub's header and the payload's action; a Standard
   * Webhooks payload's "type". */
  if (!strcmp(in.t.kind, "github")) {
    action = json_string_value(json_object_get(in.payload, "action"));
    snprintf(in.event, sizeof(in.event), "%.80s%s%.60s",
             req_header(r, "X-GitHub-Event") ? req_header(r, "X-GitHub-Event") :
                                               "",
             action ? "." : "", action ? action : "");
  } else {
    snprintf(in.event, sizeof(in.event), "%.150s",
             json_string_value(json_object_get(in.payload, "type")) ?: "");
  }
  in.d.sender = durin_trigger_sender(in.payload);
  in.d.association = assoc = durin_trigger_association(in.payload);
  if (!durin_trigger_match(in.config, in.event, in.payload, in.reason,
                           sizeof(in.reason))) {
    record(&in, "ignored");
    reply_json(r, 200,
               json_pack("{s:b,s:s}", "ignored", 1, "reason", in.reason));
    goto out;
  }
  /* Already started: the same run, nothing new. */
  if (durin_store_delivery_run(r->store, in.t.name, in.d.delivery, run_id,
                               NULL) == 0) {
    snprintf(in.reason, sizeof(in.reason),
             "a redelivery: run %s was started by this delivery already",
             run_id);
    record(&in, "ignored");
    reply_run(&in, 200, run_id);
    goto out;
  }
  /* GitHub signs the body only, not X-GitHub-Delivery: the same signed
   * body under a new delivery id is a replay of the first, not news. */
  if (!strcmp(in.t.kind, "github")) {
    char first[128];

    if (durin_store_delivery_run_by_body(r->store, in.t.name, in.sha, run_id,
                                         first, NULL) == 0) {
      snprintf(in.reason, sizeof(in.reason),
               "a replay: this signed body started run %s already (delivery "
               "%.100s); GitHub signs the body, not the delivery id",
               run_id, first);
      record(&in, "ignored");
      reply_run(&in, 200, run_id);
      goto out;
    }
  }
  pinned = in.t.spec;
  /* A Standard Webhooks sender is a service holding the secret: its
   * payload is judged by the trust rule only if it names an author. */
  if (!durin_trigger_trusted(assoc) &&
      (assoc || strcmp(in.t.kind, "standard"))) {
    const char *mode =
        json_string_value(json_object_get(in.config, "untrusted"));

    if (!mode || strcmp(mode, "spec") || !in.t.untrusted_spec) {
      snprintf(in.reason, sizeof(in.reason),
               "sender '%.100s' is %s, not OWNER, MEMBER or COLLABORATOR: "
               "untrusted senders are ignored (give the trigger "
               "--untrusted-spec to run them under a stricter spec)",
               in.d.sender ? in.d.sender : "?",
               assoc ? assoc : "of no author_association");
      record(&in, "ignored");
      reply_json(r, 200,
                 json_pack("{s:b,s:s}", "ignored", 1, "reason", in.reason));
      goto out;
    }
    snprintf(in.reason, sizeof(in.reason),
             "sender '%.100s' is %s: started under the untrusted spec",
             in.d.sender ? in.d.sender : "?", assoc ? assoc : "unknown");
    pinned = in.t.untrusted_spec;
  }
  start(&in, pinned);
out:
  durin_trigger_def_clear(&in.t);
  json_decref(in.config);
  json_decref(in.payload);
  return 0;
}

const struct route srv_trigger_routes[] = {
  { "GET", "/v1/triggers", ROLE_OPERATOR, list_triggers },
  { "POST", "/v1/triggers", ROLE_ADMIN, create_trigger },
  { "GET", "/v1/triggers/{}", ROLE_OPERATOR, get_trigger },
  { "DELETE", "/v1/triggers/{}", ROLE_ADMIN, delete_trigger },
  /* The signature is the authentication (receive). */
  { "POST", "/v1/triggers/{}", ROLE_NONE, receive },
  { "GET", "/v1/triggers/{}/deliveries", ROLE_OPERATOR, list_deliveries },
  { NULL, NULL, ROLE_NONE, NULL },
};
