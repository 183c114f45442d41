/* The run state machine, driven by hand: no store, no model, no tools. */
#include <stdio.h>

#include "durin/harness.h"
#include "durin/util.h"
#include "test.h"

static int64_t seq;

static struct durin_spec *make_spec(const char *extra)
{
  static char dir[] = "/tmp";
  struct durin_spec *s = calloc(1, sizeof(*s));
  struct durin_err err = { 0 };
  char json[4096];

  snprintf(json, sizeof(json),
           "{\"goal\":\"g\",\"workspace\":\"%s\",\"model\":{\"provider\":"
           "\"script\",\"turns\":[]}%s}",
           dir, extra);
  if (durin_spec_parse(json, NULL, s, &err))
    fail_msg("spec: %s", err.msg);
  return s;
}

static void free_spec(struct durin_spec *s)
{
  durin_spec_clear(s);
  free(s);
}

/* The policy's decision for the pending DURIN_ACT_POLICY. */
static void decide(struct durin_harness *h, enum durin_policy_action a,
                   const char *rule)
{
  struct durin_policy_decision d = { 0 };
  struct durin_completion c = { 0 };

  d.action = a;
  snprintf(d.origin, sizeof(d.origin), "spec");
  snprintf(d.rule, sizeof(d.rule), "%s", rule);
  snprintf(d.why, sizeof(d.why), "test");
  c.kind = DURIN_DONE_POLICY;
  c.decision = &d;
  assert_int_equal(durin_harness_complete(h, &c), 0);
}

/* The next action, with every policy question answered "allow". */
static void next(struct durin_harness *h, int64_t now, struct durin_action *act)
{
  durin_harness_next(h, now, act);
  while (act->kind == DURIN_ACT_POLICY) {
    decide(h, DURIN_POLICY_ALLOW, "default");
    durin_harness_next(h, now, act);
  }
}

static void commit(struct durin_harness *h, struct durin_action *act)
{
  struct durin_completion c = { 0 };
  size_t i;

  assert_int_equal(act->kind, DURIN_ACT_COMMIT);
  for (i = 0; i < act->nevents; i++)
    act->events[i].seq = ++seq;
  c.kind = DURIN_DONE_COMMIT;
  assert_int_equal(durin_harness_complete(h, &c), 0);
}

static void answer(struct durin_harness *h, const char *name, const char *args)
{
  struct durin_model_response r = { 0 };
  struct durin_completion c = { 0 };

  r.input_tokens = 100;
  r.output_tokens = 10;
  if (name) {
    r.calls = calloc(1, sizeof(*r.calls));
    r.ncalls = 1;
    r.calls[0].id = strdup("c1");
    r.calls[0].name = strdup(name);
    r.calls[0].args = strdup(args);
  } else {
    r.text = strdup("thinking");
  }
  c.kind = DURIN_DONE_MODEL;
  c.resp = &r;
  assert_int_equal(durin_harness_complete(h, &c), 0);
  durin_model_response_clear(&r);
}

static void tool_done(struct durin_harness *h, const char *out)
{
  struct durin_tool_result r = { 0 };
  struct durin_completion c = { 0 };

  r.ok = 1;
  r.output = strdup(out);
  c.kind = DURIN_DONE_TOOL;
  c.tool = &r;
  assert_int_equal(durin_harness_complete(h, &c), 0);
}

static void simple(struct durin_harness *h, enum durin_completion_kind k)
{
  struct durin_completion c = { 0 };

  c.kind = k;
  assert_int_equal(durin_harness_complete(h, &c), 0);
}

static struct durin_harness *started(struct durin_spec *s)
{
  struct durin_harness *h;
  struct durin_action act;

  assert_int_equal(durin_harness_new(s, "rtest", &h, NULL), 0);
  next(h, 1000, &act);
  assert_int_equal(act.nevents, 1);
  assert_string_equal(act.events[0].type, "run_started");
  commit(h, &act);
  return h;
}

/* The data of the n-th tool_result event of a commit, or NULL. */
static const char *nth_result(struct durin_action *act, int n)
{
  size_t i;

  for (i = 0; i < act->nevents; i++)
    if (!strcmp(act->events[i].type, "tool_result") && n-- == 0)
      return act->events[i].data;
  return NULL;
}

static int has_event(struct durin_action *act, const char *type)
{
  size_t i;

  for (i = 0; i < act->nevents; i++)
    if (!strcmp(act->events[i].type, type))
      return 1;
  return 0;
}

static void test_unsafe_call_goes_through_ledger(void **state)
{
  struct durin_spec *s = make_spec("");
  struct durin_harness *h = started(s);
  struct durin_action act;

  (void)state;
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_MODEL);
  assert_int_equal(act.model.turn, 0);
  answer(h, "bash", "{\"command\":\"true\"}");
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_INTENT);
  assert_int_equal(act.nintents, 1);
  assert_string_equal(act.intents[0].effect, "unsafe");
  assert_int_equal(act.intents[0].step, 1);
  assert_non_null(act.pending);
  simple(h, DURIN_DONE_INTENT);
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_TOOL);
  assert_string_equal(act.tool->name, "bash");
  assert_string_equal(act.tool_ctx.idem_key, "rtest:1:0");
  tool_done(h, "exit code 0\n");
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_OUTCOME);
  assert_non_null(strstr(act.outcome, "exit code 0"));
  simple(h, DURIN_DONE_OUTCOME);
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_string_equal(act.events[0].type, "model_response");
  /* Each call's policy decision comes just before its result. */
  assert_string_equal(act.events[1].type, "policy");
  assert_non_null(strstr(act.events[1].data, "\"decision\":\"allow\""));
  assert_string_equal(act.events[2].type, "tool_result");
  assert_true(act.clear_pending);
  assert_int_equal(act.step, 1);
  assert_non_null(strstr(act.checkpoint, "\"step\":1"));
  commit(h, &act);
  assert_int_equal(json_array_size(durin_harness_messages(h)), 2);
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_MODEL);
  assert_int_equal(act.model.turn, 1);
  /* The goal is pinned first, then the window. */
  assert_int_equal(json_array_size(act.model.messages), 3);
  durin_harness_free(h);
  free_spec(s);
}

static void test_pure_call_needs_no_ledger(void **state)
{
  struct durin_spec *s = make_spec("");
  struct durin_harness *h = started(s);
  struct durin_action act;

  (void)state;
  next(h, 1000, &act);
  answer(h, "read_file", "{\"path\":\"x\"}");
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_TOOL);
  tool_done(h, "content");
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  durin_harness_free(h);
  free_spec(s);
}

static void check_refused(const char *name, const char *args,
                          const char *expect)
{
  struct durin_spec *s = make_spec(",\"limits\":{\"max_arg_bytes\":100}");
  struct durin_harness *h = started(s);
  struct durin_action act;

  next(h, 1000, &act);
  answer(h, name, args);
  next(h, 1000, &act);
  /* Never run: the step commits with an error result for the model. */
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_string_equal(act.events[1].type, "tool_result");
  if (!strstr(act.events[1].data, expect))
    fail_msg("'%s' not in %s", expect, act.events[1].data);
  commit(h, &act);
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_MODEL);
  durin_harness_free(h);
  free_spec(s);
}

static void test_malformed_calls(void **state)
{
  (void)state;
  check_refused("rm_rf", "{}", "no tool named 'rm_rf'");
  check_refused("bash", "{\"command\": ", "not valid JSON");
  check_refused("bash", "[1]", "must be a JSON object");
  check_refused("bash", "{\"command\": 5}", "must be a string");
  check_refused("bash", "{}", "needs argument 'command'");
  check_refused("bash", "{\"command\":\"x\",\"cwd\":\"/\"}",
                "no argument 'cwd'");
  check_refused("bash",
                "{\"command\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
                "over the limit");
  check_refused("update_plan", "{\"plan\":[{\"step\":1}]}", "plan[0]");
}

static void test_step_budget(void **state)
{
  struct durin_spec *s = make_spec(",\"budget\":{\"steps\":1}");
  struct durin_harness *h = started(s);
  struct durin_action act;

  (void)state;
  next(h, 1000, &act);
  answer(h, NULL, NULL);
  next(h, 1000, &act);
  commit(h, &act);
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_int_equal(act.status, DURIN_RUN_BUDGET_EXCEEDED);
  assert_true(has_event(&act, "budget_exceeded"));
  assert_true(has_event(&act, "run_finished"));
  commit(h, &act);
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_DONE);
  assert_int_equal(act.status, DURIN_RUN_BUDGET_EXCEEDED);
  assert_non_null(strstr(act.reason, "step budget"));
  durin_harness_free(h);
  free_spec(s);
}

static void test_tool_budget_and_dollars(void **state)
{
  struct durin_spec *s =
      make_spec(",\"budget\":{\"tool_calls\":1,\"wall_clock_s\":5}");
  struct durin_harness *h = started(s);
  struct durin_action act;

  (void)state;
  next(h, 1000, &act);
  answer(h, "read_file", "{\"path\":\"x\"}");
  next(h, 1000, &act);
  tool_done(h, "x");
  next(h, 1000, &act);
  commit(h, &act);
  next(h, 1000, &act);
  answer(h, "read_file", "{\"path\":\"y\"}");
  next(h, 1000, &act);
  /* The tool-call budget is checked before the call: it does not run. */
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_int_equal(act.status, DURIN_RUN_BUDGET_EXCEEDED);
  assert_non_null(strstr(act.events[1].data, "budget exceeded"));
  durin_harness_free(h);
  free_spec(s);

  s = make_spec(",\"budget\":{\"wall_clock_s\":5}");
  h = started(s);
  next(h, 7000, &act);
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_int_equal(act.status, DURIN_RUN_BUDGET_EXCEEDED);
  durin_harness_free(h);
  free_spec(s);
}

static void checks_done(struct durin_harness *h, int ok)
{
  struct durin_check_result r = { "tests", ok, ok ? 0 : 1, 0, "1 failed" };
  struct durin_completion c = { 0 };

  c.kind = DURIN_DONE_CHECKS;
  c.checks = &r;
  c.nchecks = 1;
  assert_int_equal(durin_harness_complete(h, &c), 0);
}

static void test_finish_and_checks(void **state)
{
  struct durin_spec *s =
      make_spec(",\"checks\":[{\"run\":\"true\"}],\"max_eval_attempts\":2");
  struct durin_harness *h = started(s);
  struct durin_action act;

  (void)state;
  next(h, 1000, &act);
  answer(h, "finish", "{\"summary\":\"done\"}");
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_CHECKS);
  checks_done(h, 0);
  next(h, 1000, &act);
  /* A failed check goes back to the model; the run continues. */
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_int_equal(act.status, DURIN_RUN_RUNNING);
  assert_non_null(strstr(act.events[1].data, "not accepted"));
  assert_non_null(strstr(act.events[1].data, "1 failed"));
  commit(h, &act);
  next(h, 1000, &act);
  answer(h, "finish", "{\"summary\":\"done\"}");
  next(h, 1000, &act);
  checks_done(h, 0);
  next(h, 1000, &act);
  assert_int_equal(act.status, DURIN_RUN_FAILED);
  commit(h, &act);
  durin_harness_free(h);
  free_spec(s);

  s = make_spec(",\"checks\":[{\"run\":\"true\"}]");
  h = started(s);
  next(h, 1000, &act);
  answer(h, "finish", "{\"summary\":\"done\"}");
  next(h, 1000, &act);
  checks_done(h, 1);
  next(h, 1000, &act);
  assert_int_equal(act.status, DURIN_RUN_SUCCEEDED);
  commit(h, &act);
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_DONE);
  durin_harness_free(h);
  free_spec(s);
}

static void test_checks_with_no_results_fail(void **state)
{
  struct durin_spec *s = make_spec(",\"checks\":[{\"run\":\"true\"}],"
                                   "\"max_eval_attempts\":1");
  struct durin_harness *h = started(s);
  struct durin_completion c = { 0 };
  struct durin_action act;

  (void)state;
  next(h, 1000, &act);
  answer(h, "finish", "{\"summary\":\"done\"}");
  next(h, 1000, &act);
  c.kind = DURIN_DONE_CHECKS;
  assert_int_equal(durin_harness_complete(h, &c), 0);
  next(h, 1000, &act);
  assert_int_equal(act.status, DURIN_RUN_FAILED);
  durin_harness_free(h);
  free_spec(s);
}

/* Restores a harness that stopped after its intent (and maybe outcome). */
static struct durin_harness *resumed(struct durin_spec *s, int done,
                                     const char *tool, const char *args)
{
  struct durin_harness *h;
  struct durin_ledger_entry e;
  struct durin_err err = { 0 };
  char hash[65], resp[512];
  json_t *a = json_loads(args, 0, NULL);
  char *canon = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);

  durin_sha256_hex(canon, strlen(canon), hash);
  free(canon);
  json_decref(a);
  assert_int_equal(durin_harness_new(s, "rtest", &h, NULL), 0);
  assert_int_equal(
      durin_harness_restore(h,
                            "{\"v\":1,\"step\":0,\"turn\":0,\"window_start\":"
                            "1,\"started_ms\":1,\"eval_attempts\":0,\"usage\":"
                            "{\"steps\":0,\"input_tokens\":0,\"output_tokens"
                            "\":0,\"model_calls\":0,\"tool_calls\":0,"
                            "\"retries\":0,\"cost_usd\":0},\"plan\":[]}",
                            2, &err),
      0);
  a = json_string(args);
  canon = json_dumps(a, JSON_ENCODE_ANY);
  json_decref(a);
  snprintf(resp, sizeof(resp),
           "{\"text\":null,\"tool_calls\":[{\"id\":\"c1\",\"name\":\"%s\","
           "\"arguments\":%s}],\"input_tokens\":5,\"output_tokens\":1}",
           tool, canon);
  free(canon);
  memset(&e, 0, sizeof(e));
  e.step = 1;
  e.call_idx = 0;
  e.args_hash = hash;
  e.done = done;
  e.outcome = done ? "{\"call_id\":\"c1\",\"name\":\"bash\",\"ok\":true,"
                     "\"output\":\"recorded\"}" :
                     NULL;
  if (durin_harness_load_pending(h, 1, resp, &e, 1, &err))
    fail_msg("load_pending: %s", err.msg);
  return h;
}

/* A run whose first call the policy asks about; copies the request. */
static void asked(struct durin_spec *s, struct durin_action *act, char *pending,
                  size_t plen, struct durin_approval *req)
{
  struct durin_harness *h = started(s);

  durin_harness_next(h, 1000, act);
  answer(h, "bash", "{\"command\":\"rm -rf build\"}");
  durin_harness_next(h, 1000, act);
  assert_int_equal(act->kind, DURIN_ACT_POLICY);
  assert_string_equal(act->tool->name, "bash");
  decide(h, DURIN_POLICY_ASK, "ask-rm");
  durin_harness_next(h, 2000, act);
  /* One commit parks the run: no checkpoint, the step stays open with
   * its response, the request is recorded, the lease goes. */
  assert_int_equal(act->kind, DURIN_ACT_COMMIT);
  assert_int_equal(act->status, DURIN_RUN_WAITING_APPROVAL);
  assert_null(act->checkpoint);
  assert_false(act->clear_pending);
  assert_true(act->update.release_lease);
  assert_non_null(act->pending);
  assert_non_null(act->approval);
  assert_true(has_event(act, "policy"));
  assert_true(has_event(act, "approval_requested"));
  assert_false(has_event(act, "tool_result"));
  assert_int_equal(act->approval->step, 1);
  assert_int_equal(act->approval->state, DURIN_APPROVAL_PENDING);
  assert_string_equal(act->approval->call_args,
                      "{\"command\":\"rm -rf build\"}");
  assert_int_equal(act->approval->expires_ms, 2000 + 24 * 3600 * 1000);
  assert_string_equal(act->approval->rule, "spec:ask-rm");
  snprintf(pending, plen, "%s", act->pending);
  *req = *act->approval;
  req->call_id = strdup(req->call_id);
  req->tool = strdup(req->tool);
  req->call_args = strdup(req->call_args);
  req->call_hash = strdup(req->call_hash);
  req->args = req->call_args;
  req->args_hash = req->call_hash;
  commit(h, act);
  durin_harness_next(h, 2000, act);
  assert_int_equal(act->kind, DURIN_ACT_DONE);
  assert_int_equal(act->status, DURIN_RUN_WAITING_APPROVAL);
  assert_non_null(strstr(act->reason, "durin approve"));
  durin_harness_free(h);
}

static void req_free(struct durin_approval *a)
{
  free((char *)a->call_id);
  free((char *)a->tool);
  free((char *)a->call_args);
  free((char *)a->call_hash);
}

/* The run taken up again after the decision a: the same step replays. */
static struct durin_harness *replayed(struct durin_spec *s, const char *ck,
                                      const char *pending,
                                      const struct durin_approval *a)
{
  struct durin_harness *h;
  struct durin_err err = { 0 };

  assert_int_equal(durin_harness_new(s, "rtest", &h, NULL), 0);
  assert_int_equal(durin_harness_restore(h, ck, 2, &err), 0);
  if (durin_harness_load_pending(h, 1, pending, NULL, 0, &err) ||
      durin_harness_load_approval(h, a, &err))
    fail_msg("replay: %s", err.msg);
  return h;
}

/* Replays the step with decision a up to the asked call's policy
 * question, answers it "ask" again, and returns the next action. */
static struct durin_harness *replay_asked(struct durin_spec *s, const char *ck,
                                          const char *pending,
                                          const struct durin_approval *a,
                                          struct durin_action *act)
{
  struct durin_harness *h = replayed(s, ck, pending, a);

  durin_harness_next(h, 3000, act);
  assert_int_equal(act->kind, DURIN_ACT_POLICY);
  decide(h, DURIN_POLICY_ASK, "ask-rm");
  durin_harness_next(h, 3000, act);
  return h;
}

#define CK0                                                              \
 "{\"v\":1,\"step\":0,\"turn\":0,\"window_start\":1,\"started_ms\":1,"   \
 "\"eval_attempts\":0,\"usage\":{\"steps\":0,\"input_tokens\":0,"        \
 "\"output_tokens\":0,\"model_calls\":0,\"tool_calls\":0,\"retries\":0," \
 "\"cost_usd\":0},\"plan\":[]}"

static void test_approval_approved_and_tampered(void **state)
{
  struct durin_spec *s = make_spec("");
  struct durin_approval req, a;
  struct durin_action act;
  struct durin_harness *h;
  char pending[1024];

  (void)state;
  asked(s, &act, pending, sizeof(pending), &req);
  a = req;
  a.state = DURIN_APPROVAL_APPROVED;
  h = replay_asked(s, CK0, pending, &a, &act);
  /* Approved: the call goes on to its intent and runs. */
  assert_int_equal(act.kind, DURIN_ACT_INTENT);
  simple(h, DURIN_DONE_INTENT);
  durin_harness_next(h, 3000, &act);
  assert_int_equal(act.kind, DURIN_ACT_TOOL);
  assert_string_equal(json_string_value(json_object_get(act.args, "command")),
                      "rm -rf build");
  durin_harness_free(h);

  /* The recorded arguments no longer hash to what was approved. */
  a.args = "{\"command\":\"rm -rf /\"}";
  h = replay_asked(s, CK0, pending, &a, &act);
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_true(has_event(&act, "approval_refused"));
  assert_non_null(strstr(nth_result(&act, 0), "refused"));
  durin_harness_free(h);

  /* An approval for other arguments does not cover this call. */
  a.args = req.args;
  a.call_hash = "0000";
  h = replay_asked(s, CK0, pending, &a, &act);
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_non_null(strstr(nth_result(&act, 0), "not the call that was"));
  durin_harness_free(h);
  req_free(&req);
  free_spec(s);
}

static void test_approval_edited(void **state)
{
  struct durin_spec *s = make_spec("");
  struct durin_approval req, a;
  struct durin_action act;
  struct durin_harness *h;
  char pending[1024], hash[65];
  const char *edit = "{\"command\":\"rm -rf build/tmp\"}";

  (void)state;
  asked(s, &act, pending, sizeof(pending), &req);
  a = req;
  a.state = DURIN_APPROVAL_EDITED;
  a.args = edit;
  durin_sha256_hex(edit, strlen(edit), hash);
  a.args_hash = hash;
  /* The edited arguments are judged again: a deny still stands. */
  h = replay_asked(s, CK0, pending, &a, &act);
  assert_int_equal(act.kind, DURIN_ACT_POLICY);
  assert_string_equal(json_string_value(json_object_get(act.args, "command")),
                      "rm -rf build/tmp");
  decide(h, DURIN_POLICY_ASK, "ask-rm");
  durin_harness_next(h, 3000, &act);
  assert_int_equal(act.kind, DURIN_ACT_INTENT);
  assert_non_null(strstr(act.intents[0].args, "build/tmp"));
  simple(h, DURIN_DONE_INTENT);
  durin_harness_next(h, 3000, &act);
  assert_int_equal(act.kind, DURIN_ACT_TOOL);
  tool_done(h, "exit code 0\n");
  durin_harness_next(h, 3000, &act);
  assert_int_equal(act.kind, DURIN_ACT_OUTCOME);
  assert_non_null(strstr(act.outcome, "a reviewer edited this call"));
  durin_harness_free(h);

  h = replay_asked(s, CK0, pending, &a, &act);
  decide(h, DURIN_POLICY_DENY, "no-rm");
  durin_harness_next(h, 3000, &act);
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_non_null(strstr(nth_result(&act, 0), "denied by policy"));
  durin_harness_free(h);
  req_free(&req);
  free_spec(s);
}

static void test_approval_rejected_twice(void **state)
{
  struct durin_spec *s = make_spec("");
  struct durin_approval req, a;
  struct durin_action act;
  struct durin_harness *h;
  char pending[1024], *ck;

  (void)state;
  asked(s, &act, pending, sizeof(pending), &req);
  a = req;
  a.state = DURIN_APPROVAL_REJECTED;
  a.decided_by = "alice";
  a.comment = "not the build dir";
  h = replay_asked(s, CK0, pending, &a, &act);
  /* The model is told, the step commits, the run goes on. */
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_int_equal(act.status, DURIN_RUN_RUNNING);
  assert_non_null(
      strstr(nth_result(&act, 0), "rejected by alice: not the build dir"));
  assert_non_null(strstr(act.checkpoint, "\"rejections\""));
  ck = strdup(act.checkpoint);
  commit(h, &act);
  durin_harness_free(h);

  /* Rejected again (as the next step's identical call, say): the limit
   * of 2 stops the run for a person instead of a loop. */
  {
    struct durin_err err = { 0 };
    struct durin_approval b = a;
    char resp2[1024];

    assert_int_equal(durin_harness_new(s, "rtest", &h, NULL), 0);
    assert_int_equal(durin_harness_restore(h, ck, 3, &err), 0);
    snprintf(resp2, sizeof(resp2), "%s", pending);
    assert_int_equal(durin_harness_load_pending(h, 2, resp2, NULL, 0, &err), 0);
    b.step = 2;
    assert_int_equal(durin_harness_load_approval(h, &b, &err), 0);
  }
  durin_harness_next(h, 4000, &act);
  decide(h, DURIN_POLICY_ASK, "ask-rm");
  durin_harness_next(h, 4000, &act);
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_int_equal(act.status, DURIN_RUN_NEEDS_HUMAN);
  assert_true(has_event(&act, "needs_human"));
  assert_false(has_event(&act, "run_finished"));
  assert_int_equal(act.update.finished_ms, -1);
  commit(h, &act);
  durin_harness_next(h, 4000, &act);
  assert_int_equal(act.kind, DURIN_ACT_DONE);
  assert_int_equal(act.status, DURIN_RUN_NEEDS_HUMAN);
  assert_non_null(strstr(act.reason, "max_rejections"));
  durin_harness_free(h);
  free(ck);
  req_free(&req);
  free_spec(s);
}

static void test_approval_expired_and_denied(void **state)
{
  struct durin_spec *s =
      make_spec(",\"approvals\":{\"on_expiry\":\"needs_human\"}");
  struct durin_approval req, a;
  struct durin_action act;
  struct durin_harness *h;
  char pending[1024];

  (void)state;
  asked(s, &act, pending, sizeof(pending), &req);
  a = req;
  a.state = DURIN_APPROVAL_EXPIRED;
  a.on_expiry = "needs_human";
  h = replay_asked(s, CK0, pending, &a, &act);
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_int_equal(act.status, DURIN_RUN_NEEDS_HUMAN);
  assert_non_null(strstr(nth_result(&act, 0), "expired"));
  durin_harness_free(h);
  req_free(&req);

  /* Deny: never runs, the model is told which rule. */
  h = started(s);
  durin_harness_next(h, 1000, &act);
  answer(h, "bash", "{\"command\":\"curl x\"}");
  durin_harness_next(h, 1000, &act);
  decide(h, DURIN_POLICY_DENY, "no-curl");
  durin_harness_next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_int_equal(act.status, DURIN_RUN_RUNNING);
  assert_non_null(
      strstr(nth_result(&act, 0), "denied by policy (spec no-curl)"));
  assert_non_null(strstr(act.events[1].data, "\"decision\":\"deny\""));
  durin_harness_free(h);
  free_spec(s);
}

static void test_resume_reuses_outcome(void **state)
{
  struct durin_spec *s = make_spec("");
  struct durin_harness *h = resumed(s, 1, "bash", "{\"command\":\"x\"}");
  struct durin_action act;

  (void)state;
  next(h, 1000, &act);
  /* No model call, no tool run: the recorded outcome is the result. */
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_true(has_event(&act, "resumed"));
  assert_non_null(strstr(act.events[2].data, "recorded"));
  assert_non_null(strstr(act.events[2].data, "\"reused\":true"));
  durin_harness_free(h);
  free_spec(s);
}

static void test_resume_unsafe_indeterminate(void **state)
{
  struct durin_spec *s = make_spec("");
  struct durin_harness *h = resumed(s, 0, "bash", "{\"command\":\"x\"}");
  struct durin_action act;

  (void)state;
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_int_equal(act.status, DURIN_RUN_NEEDS_HUMAN);
  assert_true(has_event(&act, "needs_human"));
  assert_null(act.checkpoint);
  assert_false(act.clear_pending);
  commit(h, &act);
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_DONE);
  assert_int_equal(act.status, DURIN_RUN_NEEDS_HUMAN);
  durin_harness_free(h);

  /* An operator says: do not repeat it. The decision is the ledger's
   * outcome for the call, then the step commits. */
  h = resumed(s, 0, "bash", "{\"command\":\"x\"}");
  durin_harness_resolve(h, 0);
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_OUTCOME);
  assert_non_null(strstr(act.outcome, "outcome unknown"));
  simple(h, DURIN_DONE_OUTCOME);
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_non_null(strstr(nth_result(&act, 0), "outcome unknown"));
  durin_harness_free(h);

  /* An operator says: run it again. */
  h = resumed(s, 0, "bash", "{\"command\":\"x\"}");
  durin_harness_resolve(h, 1);
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_TOOL);
  durin_harness_free(h);

  /* It ran in a layer of its own that was discarded: nobody is asked, it
   * runs again with the same key, its change set goes with its outcome
   * and the log says why it ran twice. */
  h = resumed(s, 0, "bash", "{\"command\":\"x\"}");
  assert_int_equal(durin_harness_call_contained(h, 2, 0), DURIN_ENOTFOUND);
  assert_int_equal(durin_harness_call_contained(h, 1, 0), 0);
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_TOOL);
  assert_string_equal(act.tool_ctx.idem_key, "rtest:1:0");
  {
    struct durin_tool_result r = { 0 };
    struct durin_completion c = { 0 };

    r.ok = 1;
    r.output = strdup("done");
    r.changes = json_pack("{s:s,s:i}", "layer", "s1-c0/e2", "files_added", 1);
    c.kind = DURIN_DONE_TOOL;
    c.tool = &r;
    assert_int_equal(durin_harness_complete(h, &c), 0);
  }
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_OUTCOME);
  assert_non_null(strstr(act.outcome, "\"layer\":\"s1-c0/e2\""));
  simple(h, DURIN_DONE_OUTCOME);
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_int_equal(act.status, DURIN_RUN_RUNNING);
  assert_true(has_event(&act, "call_repeated"));
  durin_harness_free(h);
  free_spec(s);
}

static void test_resume_idempotent_reruns(void **state)
{
  struct durin_spec *s = make_spec("");
  struct durin_harness *h =
      resumed(s, 0, "write_file", "{\"path\":\"a\",\"content\":\"b\"}");
  struct durin_action act;

  (void)state;
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_TOOL);
  assert_string_equal(act.tool_ctx.idem_key, "rtest:1:0");
  durin_harness_free(h);
  free_spec(s);
}

static void test_window_and_checkpoint_stay_small(void **state)
{
  struct durin_spec *s = make_spec(",\"budget\":{\"steps\":0},"
                                   "\"context\":{\"max_messages\":20}");
  struct durin_harness *h = started(s);
  struct durin_action act;
  size_t ck10 = 0, ck500 = 0;
  int i, compactions = 0;

  (void)state;
  for (i = 1; i <= 500; i++) {
    next(h, 1000, &act);
    assert_int_equal(act.kind, DURIN_ACT_MODEL);
    assert_true(json_array_size(act.model.messages) <= 1 + 20 + 2);
    answer(h, "read_file", "{\"path\":\"x\"}");
    next(h, 1000, &act);
    tool_done(h, "content");
    next(h, 1000, &act);
    compactions += has_event(&act, "compaction");
    if (i == 10)
      ck10 = strlen(act.checkpoint);
    if (i == 500)
      ck500 = strlen(act.checkpoint);
    commit(h, &act);
  }
  assert_true(compactions > 10);
  /* Only the numbers in it grow: a few digits, not the history. */
  assert_true(ck500 < ck10 + 16);
  assert_true(durin_harness_window(h) > 900);
  durin_harness_free(h);
  free_spec(s);
}

static void test_window_bounded_by_bytes(void **state)
{
  struct durin_spec *s = make_spec(",\"budget\":{\"steps\":0},"
                                   "\"context\":{\"max_bytes\":20000}");
  struct durin_harness *h = started(s);
  struct durin_action act;
  char *big = malloc(4001);
  int i;

  (void)state;
  memset(big, 'o', 4000);
  big[4000] = '\0';
  for (i = 1; i <= 100; i++) {
    size_t total = 0, k;
    json_t *m;

    next(h, 1000, &act);
    assert_int_equal(act.kind, DURIN_ACT_MODEL);
    json_array_foreach(act.model.messages, k, m)
      total += json_string_length(json_object_get(m, "content"));
    /* The limit, plus at most the step that triggers the next compaction. */
    assert_true(total <= 20000 + 4100);
    answer(h, "read_file", "{\"path\":\"x\"}");
    next(h, 1000, &act);
    tool_done(h, big);
    next(h, 1000, &act);
    commit(h, &act);
  }
  free(big);
  durin_harness_free(h);
  free_spec(s);
}

static void test_cancel(void **state)
{
  struct durin_spec *s = make_spec("");
  struct durin_harness *h = started(s);
  struct durin_action act;

  (void)state;
  durin_harness_cancel(h, "stop");
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_int_equal(act.status, DURIN_RUN_CANCELLED);
  commit(h, &act);
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_DONE);
  assert_int_equal(act.status, DURIN_RUN_CANCELLED);
  durin_harness_free(h);
  free_spec(s);
}

static void test_cancel_mid_step(void **state)
{
  struct durin_spec *s = make_spec("");
  struct durin_harness *h = started(s);
  struct durin_model_response r = { 0 };
  struct durin_completion c = { 0 };
  struct durin_action act;
  int i;

  (void)state;
  next(h, 1000, &act);
  r.calls = calloc(2, sizeof(*r.calls));
  r.ncalls = 2;
  for (i = 0; i < 2; i++) {
    r.calls[i].id = strdup(i ? "c2" : "c1");
    r.calls[i].name = strdup("read_file");
    r.calls[i].args = strdup("{\"path\":\"x\"}");
  }
  c.kind = DURIN_DONE_MODEL;
  c.resp = &r;
  assert_int_equal(durin_harness_complete(h, &c), 0);
  durin_model_response_clear(&r);
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_TOOL);
  tool_done(h, "first");
  durin_harness_cancel(h, "stop now");
  next(h, 1000, &act);
  /* The second call never starts; the step commits as cancelled. */
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_int_equal(act.status, DURIN_RUN_CANCELLED);
  assert_true(has_event(&act, "cancelled"));
  assert_non_null(strstr(nth_result(&act, 0), "first"));
  assert_non_null(strstr(nth_result(&act, 1), "not run"));
  durin_harness_free(h);

  /* A model call abandoned for the cancel ends the run as cancelled. */
  h = started(s);
  next(h, 1000, &act);
  durin_harness_cancel(h, "stop now");
  memset(&c, 0, sizeof(c));
  c.kind = DURIN_DONE_MODEL_ERROR;
  c.error = "abandoned";
  assert_int_equal(durin_harness_complete(h, &c), 0);
  next(h, 1000, &act);
  assert_int_equal(act.status, DURIN_RUN_CANCELLED);
  assert_false(has_event(&act, "model_error"));
  durin_harness_free(h);
  free_spec(s);
}

static void test_model_error_fails_run(void **state)
{
  struct durin_spec *s = make_spec("");
  struct durin_harness *h = started(s);
  struct durin_completion c = { 0 };
  struct durin_action act;

  (void)state;
  next(h, 1000, &act);
  c.kind = DURIN_DONE_MODEL_ERROR;
  c.error = "HTTP 401";
  c.retries = 2;
  assert_int_equal(durin_harness_complete(h, &c), 0);
  next(h, 1000, &act);
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_int_equal(act.status, DURIN_RUN_FAILED);
  assert_true(has_event(&act, "model_error"));
  assert_false(has_event(&act, "run_started"));
  durin_harness_free(h);
  free_spec(s);
}

static void test_unexpected_completion(void **state)
{
  struct durin_spec *s = make_spec("");
  struct durin_harness *h = started(s);
  struct durin_completion c = { 0 };

  (void)state;
  c.kind = DURIN_DONE_TOOL;
  assert_int_equal(durin_harness_complete(h, &c), DURIN_ESTATE);
  durin_harness_free(h);
  free_spec(s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_unsafe_call_goes_through_ledger),
    cmocka_unit_test(test_pure_call_needs_no_ledger),
    cmocka_unit_test(test_malformed_calls),
    cmocka_unit_test(test_step_budget),
    cmocka_unit_test(test_tool_budget_and_dollars),
    cmocka_unit_test(test_finish_and_checks),
    cmocka_unit_test(test_checks_with_no_results_fail),
    cmocka_unit_test(test_resume_reuses_outcome),
    cmocka_unit_test(test_resume_unsafe_indeterminate),
    cmocka_unit_test(test_resume_idempotent_reruns),
    cmocka_unit_test(test_window_and_checkpoint_stay_small),
    cmocka_unit_test(test_window_bounded_by_bytes),
    cmocka_unit_test(test_cancel),
    cmocka_unit_test(test_cancel_mid_step),
    cmocka_unit_test(test_model_error_fails_run),
    cmocka_unit_test(test_unexpected_completion),
    cmocka_unit_test(test_approval_approved_and_tampered),
    cmocka_unit_test(test_approval_edited),
    cmocka_unit_test(test_approval_rejected_twice),
    cmocka_unit_test(test_approval_expired_and_denied),
  };

  return cmocka_run_group_tests_name("harness", tests, NULL, NULL);
}
