/*
 * POST /v1/runs/{id}/fork and POST /v1/runs/{id}/continue: the API of
 * `durin fork` and `durin continue` (cli/fork.c does the work;
 * docs/internals/fork.md). Same roles and tenant rules as the other
 * controls of a run: an operator of the run's tenant.
 */
#include <stdio.h>
#include <string.h>

#include <microhttpd.h>

#include "cli/cmd.h"
#include "durin/util.h"
#include "server/server.h"

static const char *const fork_fields[] = { "at_step", "goal", NULL };

static int fork_run(struct req *r)
{
  struct durin_run_info ri, nri;
  struct durin_err err = { 0 };
  struct cli_fork o;
  json_t *body;
  char id[32], from[32], loc[128];
  int64_t step = -1;
  int rc;

  if (srv_options(r->srv)->unsandboxed)
    return reply_error(r, 422, "spec_policy",
                       "this server runs tool calls without the sandbox "
                       "(--sandbox none), so it takes no runs over the "
                       "network; restart it with the sandbox on");
  if (!(body = req_json(r)))
    return 0;
  memset(&o, 0, sizeof(o));
  if (req_unknown_field(r, body, fork_fields) ||
      req_opt_int(r, body, "at_step", &step) ||
      req_opt_string(r, body, "goal", &o.goal))
    goto out;
  if (step < 0) {
    reply_error_field(r, 400, "bad_field", "at_step",
                      "at_step is the step to fork at: 0 (before the "
                      "first) or a step the run committed");
    goto out;
  }
  if (o.goal && !*o.goal) {
    reply_error_field(r, 400, "bad_field", "goal",
                      "goal is empty: leave it out to keep the run's goal");
    goto out;
  }
  if (req_run(r, r->param[0], &ri))
    goto out;
  snprintf(from, sizeof(from), "%s", ri.id);
  durin_run_info_clear(&ri);
  o.from = from;
  o.at_step = step;
  o.created_by = r->who.name;
  rc = cli_fork_run(r->store, srv_data_dir(r->srv), &o, id, &err);
  if (rc) {
    reply_store_error(r, rc, &err);
    goto out;
  }
  srv_log(r->srv, "run %s: forked from %s at step %lld by token '%s'", id,
          o.from, (long long)step, r->who.name);
  srv_wake_worker(r->srv);
  if ((rc = durin_store_run_get(r->store, id, &nri, &err))) {
    reply_store_error(r, rc, &err);
    goto out;
  }
  reply_json(r, 201, srv_run_json(r->store, &nri, 0));
  durin_run_info_clear(&nri);
  snprintf(loc, sizeof(loc), "/v1/runs/%s", id);
  MHD_add_response_header(r->resp, "Location", loc);
out:
  json_decref(body);
  return 0;
}

static const char *const continue_fields[] = {
  "message",        "add_steps",  "add_tokens", "add_dollars",
  "add_tool_calls", "add_time_s", NULL,
};

/* A non-negative number field of body (0 when absent); 400 if not. */
static int opt_amount(struct req *r, json_t *body, const char *name,
                      double *out)
{
  json_t *v = json_object_get(body, name);

  *out = 0;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_number(v) || json_number_value(v) < 0) {
    reply_error_field(r, 400, "bad_field", name,
                      "field '%s' is an amount to add to the run's budget: "
                      "a number, 0 or more",
                      name);
    return -1;
  }
  *out = json_number_value(v);
  return 0;
}

static int continue_run(struct req *r)
{
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  struct cli_continue o;
  double steps, tokens, dollars, calls, secs;
  json_t *body;
  int64_t attempt = 0;
  char id[32];
  int rc;

  if (!(body = req_json(r)))
    return 0;
  memset(&o, 0, sizeof(o));
  if (req_unknown_field(r, body, continue_fields) ||
      req_opt_string(r, body, "message", &o.message) ||
      opt_amount(r, body, "add_steps", &steps) ||
      opt_amount(r, body, "add_tokens", &tokens) ||
      opt_amount(r, body, "add_dollars", &dollars) ||
      opt_amount(r, body, "add_tool_calls", &calls) ||
      opt_amount(r, body, "add_time_s", &secs))
    goto out;
  if (!o.message || !*o.message) {
    reply_error_field(r, 400, "bad_field", "message",
                      "message is the run's new instruction: a string that "
                      "is not empty");
    goto out;
  }
  o.add_steps = (int64_t)steps;
  o.add_tokens = (int64_t)tokens;
  o.add_dollars = dollars;
  o.add_tool_calls = (int64_t)calls;
  o.add_wall_clock_ms = (int64_t)(secs * 1000);
  if (req_run(r, r->param[0], &ri))
    goto out;
  snprintf(id, sizeof(id), "%s", ri.id);
  durin_run_info_clear(&ri);
  o.id = id;
  rc = cli_continue_run(r->store, &o, &attempt, &err);
  if (rc) {
    reply_store_error(r, rc, &err);
    goto out;
  }
  srv_log(r->srv, "run %s: continued (attempt %lld) by token '%s'", id,
          (long long)attempt, r->who.name);
  srv_wake_worker(r->srv);
  if ((rc = durin_store_run_get(r->store, id, &ri, &err))) {
    reply_store_error(r, rc, &err);
    goto out;
  }
  reply_json(r, 202, srv_run_json(r->store, &ri, 0));
  durin_run_info_clear(&ri);
out:
  json_decref(body);
  return 0;
}

const struct route srv_fork_routes[] = {
  { "POST", "/v1/runs/{}/fork", ROLE_OPERATOR, fork_run },
  { "POST", "/v1/runs/{}/continue", ROLE_OPERATOR, continue_run },
  { NULL, NULL, ROLE_NONE, NULL },
};
