/*
 * /v1/approvals: the tool calls waiting for a person, what a reviewer
 * needs to decide one (the shape of `durin approvals ID --json`), and
 * the decision. An edit is judged exactly as `durin approve --args`
 * judges it (cli_approval_check_edit: the tool's schema, then the run's
 * policy under the server's), and a decision is the CLI's one store
 * transaction, with the token's name as who decided.
 *
 * An approval belongs to its run's tenant: a tenant's token sees only
 * those, and another tenant's is answered 404, as for runs.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "durin/util.h"
#include "server/server.h"

/* Whether the request may see run id's approvals: the run's tenant is
 * its own (a run that is gone shows nothing). */
static int sees_run(struct req *r, const char *id)
{
  struct durin_run_info ri;
  int ok;

  if (!r->who.has_tenant)
    return 1;
  if (durin_store_run_get(r->store, id, &ri, NULL))
    return 0;
  ok = req_sees_tenant(r, ri.tenant);
  durin_run_info_clear(&ri);
  return ok;
}

/*
 * The approval r->param[0] names, in full (no prefixes over the API: an
 * ambiguous one would tell of others' approvals). Answers 404 for none
 * and for another tenant's, alike, and returns -1.
 */
static int find_approval(struct req *r, struct cli_approval *h)
{
  struct durin_err err = { 0 };
  const char *id = r->param[0];
  int rc = cli_approval_get(r->store, id, h, &err);

  if (!rc && (strcmp(h->a.id, id) || !sees_run(r, h->a.run_id))) {
    cli_approval_clear(h);
    rc = DURIN_ENOTFOUND;
  }
  if (rc == DURIN_ENOTFOUND || rc == DURIN_EINVAL) {
    reply_error(r, 404, "not_found",
                "no approval '%s' (list them with GET /v1/approvals)", id);
    return -1;
  }
  if (rc) {
    reply_store_error(r, rc, &err);
    return -1;
  }
  return 0;
}

/* ---- listing ---- */

struct listing {
  json_t *arr;
  int64_t now;
};

static int list_one(const struct durin_approval *a, void *arg)
{
  struct listing *l = arg;

  json_array_append_new(l->arr, cli_approval_json(a, l->now));
  return 0;
}

/* The name of run id for a listing, or JSON false if the request may not
 * see it (another tenant's, or gone). */
static json_t *run_name_for(struct req *r, const char *id)
{
  struct durin_run_info ri;
  json_t *name;

  if (durin_store_run_get(r->store, id, &ri, NULL))
    return json_false();
  name = req_sees_tenant(r, ri.tenant) ? json_string(ri.name ? ri.name : "") :
                                         json_false();
  durin_run_info_clear(&ri);
  return name ? name : json_string("");
}

/* Names each approval's run (`run_name`, so a list tells two runs apart)
 * and drops those of runs the request may not see; one look per run, after
 * the store's listing, so no query runs inside its callback. */
static void name_runs(struct req *r, json_t *arr)
{
  json_t *seen = json_object(), *a, *name;
  const char *run;
  size_t i = 0;

  while (i < json_array_size(arr)) {
    a = json_array_get(arr, i);
    run = json_string_value(json_object_get(a, "run"));
    if (!(name = json_object_get(seen, run))) {
      json_object_set_new(seen, run, run_name_for(r, run));
      name = json_object_get(seen, run);
    }
    if (json_is_string(name)) {
      json_object_set(a, "run_name", name);
      i++;
    } else {
      json_array_remove(arr, i);
    }
  }
  json_decref(seen);
}

static int list_approvals(struct req *r)
{
  struct listing l = { NULL, durin_now_ms() };
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  const char *run = req_arg(r, "run"), *state = req_arg(r, "state");
  char id[32] = "";
  int rc;

  if (state && strcmp(state, "pending") && strcmp(state, "all"))
    return reply_error_field(r, 400, "bad_query", "state",
                             "state is 'pending' (the default: waiting for "
                             "a decision) or 'all'");
  if (run) {
    if (req_run(r, run, &ri))
      return 0;
    snprintf(id, sizeof(id), "%s", ri.id);
    durin_run_info_clear(&ri);
  }
  l.arr = json_array();
  rc = durin_store_approval_list(r->store, run ? id : NULL, -1,
                                 !state || !strcmp(state, "pending"), list_one,
                                 &l, &err);
  if (rc) {
    json_decref(l.arr);
    return reply_store_error(r, rc, &err);
  }
  name_runs(r, l.arr);
  return reply_json(r, 200, json_pack("{s:o}", "approvals", l.arr));
}

/* ---- one, for a reviewer ---- */

static int get_approval(struct req *r)
{
  struct cli_approval h;
  struct durin_err err = { 0 }, derr = { 0 };
  char *diff = NULL;
  size_t len;
  json_t *o = NULL;
  int rc;

  if (find_approval(r, &h))
    return 0;
  /* A diff that cannot be made is said in the review, not a failure. */
  srv_run_diff(r, h.a.run_id, 0, &diff, &len, &derr);
  rc = cli_approval_review_json(r->store, &h.a, durin_now_ms(), diff, derr.msg,
                                &o, &err);
  free(diff);
  cli_approval_clear(&h);
  if (rc)
    return reply_store_error(r, rc, &err);
  return reply_json(r, 200, o);
}

/* ---- deciding ---- */

/* 409: the approval is no longer pending. The code tells an expired one
 * from a decided one, the message says what it is ("is already
 * approved"), in the one error shape of every answer. */
static int already(struct req *r, enum durin_approval_state st, const char *msg)
{
  return reply_error(
      r, 409, st == DURIN_APPROVAL_EXPIRED ? "expired" : "already_decided",
      "%s", msg);
}

/* The edit's refusal: 422 naming the field at fault. */
static int refused(struct req *r, const struct durin_approval *a, int rc,
                   const struct cli_edit *e, const struct durin_err *err)
{
  if (rc == DURIN_EINVAL)
    return reply_error_field(r, 422, "invalid_arguments", "args",
                             "%s (the arguments of %s: %s); nothing was "
                             "decided",
                             err->msg, a->tool, e->arg_names);
  if (rc == DURIN_EACCES)
    return reply_error_field(r, 422, "policy_denied", "args",
                             "%s; nothing was decided", err->msg);
  return reply_store_error(r, rc, err);
}

/* The approval after the decision, as the listing shows it. */
static int decided(struct req *r, const char *id)
{
  struct cli_approval h;
  struct durin_err err = { 0 };
  int rc = cli_approval_get(r->store, id, &h, &err);

  if (rc)
    return reply_store_error(r, rc, &err);
  reply_json(r, 200, cli_approval_json(&h.a, durin_now_ms()));
  cli_approval_clear(&h);
  return 0;
}

/* A string field of body (absent or null: NULL); 400 if not a string. */
static int string_field(struct req *r, json_t *body, const char *name,
                        const char **out)
{
  json_t *v = body ? json_object_get(body, name) : NULL;

  *out = NULL;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_string(v)) {
    reply_error_field(r, 400, "bad_field", name, "field '%s' must be a string",
                      name);
    return -1;
  }
  *out = json_string_value(v);
  return 0;
}

/*
 * Decides the approval for the request: state with comment, and for an
 * approval maybe edited arguments (args_j, any JSON: the schema says
 * whether it fits). Answers the request.
 */
static int decide(struct req *r, enum durin_approval_state state,
                  json_t *args_j, const char *comment)
{
  struct cli_approval h;
  struct cli_edit edit;
  struct cli_decision d;
  struct durin_err err = { 0 };
  char *args = NULL;
  int rc;

  memset(&edit, 0, sizeof(edit));
  if (find_approval(r, &h))
    return 0;
  /* No longer pending, or past its deadline: the edit is moot, and the
   * decision below answers what it is (expiring it if it must). */
  if (args_j && cli_approval_shown_state(&h.a, durin_now_ms()) ==
                    DURIN_APPROVAL_PENDING) {
    args = json_dumps(args_j, JSON_COMPACT | JSON_ENCODE_ANY);
    rc = cli_approval_check_edit(r->store, &h.a, args ? args : "",
                                 srv_options(r->srv)->tool_policy, &edit, &err);
    if (rc) {
      refused(r, &h.a, rc, &edit, &err);
      goto out;
    }
  }
  memset(&d, 0, sizeof(d));
  d.state = state;
  d.edit = edit.canon ? &edit : NULL;
  d.who = r->who.name;
  d.comment = comment;
  rc = cli_approval_decide(r->store, &h.a, &d, &err);
  if (rc == DURIN_ESTATE) {
    already(r, d.final, err.msg);
    goto out;
  }
  if (rc) {
    reply_store_error(r, rc, &err);
    goto out;
  }
  srv_log(r->srv, "approval %s of run %s: %s by token '%s'", h.a.id, h.a.run_id,
          durin_approval_state_name(d.state), r->who.name);
  srv_wake_worker(r->srv);
  decided(r, h.a.id);
out:
  free(args);
  cli_edit_clear(&edit);
  cli_approval_clear(&h);
  return 0;
}

static int approve(struct req *r)
{
  static const char *const fields[] = { "args", "comment", NULL };
  json_t *body = NULL, *args;
  const char *comment = NULL;

  if (r->body_len && !(body = req_json(r)))
    return 0;
  args = body ? json_object_get(body, "args") : NULL;
  if (json_is_null(args))
    args = NULL;
  if (!(body && req_unknown_field(r, body, fields)) &&
      !string_field(r, body, "comment", &comment))
    decide(r, DURIN_APPROVAL_APPROVED, args, comment);
  json_decref(body);
  return 0;
}

static int reject(struct req *r)
{
  static const char *const fields[] = { "reason", NULL };
  json_t *body;
  const char *reason = NULL;

  if (!(body = req_json(r)))
    return 0;
  if (!req_unknown_field(r, body, fields) &&
      !string_field(r, body, "reason", &reason)) {
    if (!reason || !*reason)
      reply_error_field(r, 400, "bad_field", "reason",
                        "a rejection needs a 'reason': the agent is told it "
                        "as the call's result");
    else
      decide(r, DURIN_APPROVAL_REJECTED, NULL, reason);
  }
  json_decref(body);
  return 0;
}

const struct route srv_approval_routes[] = {
  { "GET", "/v1/approvals", ROLE_VIEWER, list_approvals },
  { "GET", "/v1/approvals/{}", ROLE_VIEWER, get_approval },
  { "POST", "/v1/approvals/{}/approve", ROLE_OPERATOR, approve },
  { "POST", "/v1/approvals/{}/reject", ROLE_OPERATOR, reject },
  { NULL, NULL, ROLE_NONE, NULL },
};
