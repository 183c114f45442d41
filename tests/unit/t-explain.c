/*
 * The fold of `durin explain` on logs written by hand: arguments equal up
 * to key order and whitespace are one call, a step's tokens split over its
 * calls add up, a loop is found after the failure that started it and not
 * in a run that only looks around, store events of step 0 belong to the
 * step in progress, a result whose call the log lacks still counts, and a
 * pending approval waits until now.
 */
#include <stdio.h>

#include "cli/explain.h"
#include "test.h"

struct log {
  struct cli_explain *x;
  struct durin_run_info ri;
  int64_t seq, ts;
};

static void log_start(struct log *l, enum durin_run_status st, int64_t now)
{
  memset(l, 0, sizeof(*l));
  snprintf(l->ri.id, sizeof(l->ri.id), "rtest");
  l->ri.name = "t";
  l->ri.status = st;
  l->ri.attempt = 1;
  l->ts = 1000;
  l->x = cli_explain_new(&l->ri, now);
  assert_non_null(l->x);
}

/* Appends an event dt ms after the one before. */
static void ev(struct log *l, int64_t step, int64_t dt, const char *type,
               const char *data)
{
  struct durin_event e = { ++l->seq, l->ts += dt, step, type, data };

  assert_int_equal(cli_explain_event(&e, l->x), 0);
}

/* A step: a response of tokens with one bash call of cmd (its arguments
 * as written), then its result. */
static void bash_step(struct log *l, int64_t step, const char *args, int ok,
                      const char *output)
{
  char d[1024];
  json_t *j =
      json_pack("{s:[{s:s,s:s,s:s}],s:i,s:i,s:f,s:i}", "tool_calls", "id", "c",
                "name", "bash", "arguments", args, "input_tokens", 1000,
                "output_tokens", 1, "cost_usd", 0.01, "duration_ms", 5);
  char *s = json_dumps(j, JSON_COMPACT);

  ev(l, step, 10, "model_response", s);
  free(s);
  json_decref(j);
  j = json_pack("{s:s,s:s,s:b,s:s,s:i,s:i}", "call_id", "c", "name", "bash",
                "ok", ok, "output", output, "exit_code", ok ? 0 : 1,
                "duration_ms", 20);
  s = json_dumps(j, JSON_COMPACT);
  snprintf(d, sizeof(d), "%s", s);
  free(s);
  json_decref(j);
  ev(l, step, 20, "tool_result", d);
}

static json_t *report(struct log *l)
{
  json_t *r = cli_explain_report(l->x);

  assert_non_null(r);
  cli_explain_free(l->x);
  l->x = NULL;
  return r;
}

static json_int_t num(json_t *o, const char *path)
{
  char k[64];
  const char *dot = strchr(path, '.');

  if (!dot)
    return json_integer_value(json_object_get(o, path));
  snprintf(k, sizeof(k), "%.*s", (int)(dot - path), path);
  return num(json_object_get(o, k), dot + 1);
}

static void test_loop_after_failure(void **state)
{
  const char *a = "{\"command\":\"a\",\"timeout_s\":5}";
  const char *a2 = "{ \"timeout_s\": 5,\n  \"command\": \"a\" }";
  struct log l;
  json_t *r, *loop, *ff;
  int64_t step = 1;
  int i;

  (void)state;
  log_start(&l, DURIN_RUN_BUDGET_EXCEEDED, 0);
  bash_step(&l, step++, "{\"command\":\"ls\"}", 1, "exit code 0\nsrc\n");
  bash_step(&l, step++, "{\"command\":\"npm install\"}", 0,
            "exit code 1\nnpm WARN old\nnpm ERR! ERESOLVE could not\n");
  for (i = 0; i < 4; i++) {
    bash_step(&l, step++, i % 2 ? a : a2, 0, "exit code 1\nboom failed\n");
    /* A store event of step 0 in the middle of the loop. */
    ev(&l, 0, 1, "lease_expired", "{}");
    bash_step(&l, step++, "{\"command\":\"b\"}", 0, "exit code 2\nno\n");
  }
  ev(&l, 0, 5, "budget_exceeded", "{\"reason\":\"step budget of 10\"}");
  r = report(&l);
  assert_int_equal(num(r, "totals.steps"), 10);
  assert_int_equal(num(r, "totals.tokens"), 10010);
  assert_int_equal(num(r, "totals.leases_expired"), 4);
  assert_int_equal(json_array_size(json_object_get(r, "loops")), 1);
  loop = json_array_get(json_object_get(r, "loops"), 0);
  assert_int_equal(num(loop, "first_step"), 3);
  assert_int_equal(num(loop, "last_step"), 10);
  assert_int_equal(num(loop, "distinct_calls"), 2);
  assert_int_equal(num(loop, "failed"), 8);
  assert_int_equal(num(loop, "tokens"), 8008);
  ff = json_object_get(loop, "first_failure");
  assert_int_equal(num(ff, "step"), 2);
  assert_string_equal(json_string_value(json_object_get(ff, "error")),
                      "npm ERR! ERESOLVE could not");
  /* a, written two ways, is one call failing 4 times. */
  assert_int_equal(
      num(json_array_get(json_object_get(r, "repeated_failures"), 0),
          "failures"),
      4);
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(r, "outcome"), "stopped_by")),
                      "budget_exceeded");
  assert_non_null(strstr(json_string_value(json_object_get(r, "headline")),
                         "2-command retry loop (steps 3-10"));
  json_decref(r);
}

static void test_split_adds_up(void **state)
{
  struct log l;
  json_t *r, *t;
  json_int_t sum = 0;
  size_t i;

  (void)state;
  log_start(&l, DURIN_RUN_SUCCEEDED, 0);
  /* 10 tokens over 3 calls, one of them with no result in the log; a
   * result whose call the log lacks; then a step with no call at all. */
  ev(&l, 1, 10, "model_response",
     "{\"input_tokens\":7,\"output_tokens\":3,\"cost_usd\":0.03,"
     "\"tool_calls\":[{\"id\":\"x\",\"name\":\"read_file\",\"arguments\":\"{}"
     "\"},{\"id\":\"y\",\"name\":\"bash\",\"arguments\":\"{\\\"command\\\":"
     "\\\"true\\\"}\"},{\"id\":\"z\",\"name\":\"bash\",\"arguments\":\"{}\"}]}");
  ev(&l, 1, 1, "tool_result", "{\"call_id\":\"x\",\"ok\":true}");
  ev(&l, 1, 1, "tool_result", "{\"call_id\":\"y\",\"ok\":false}");
  ev(&l, 1, 1, "tool_result",
     "{\"call_id\":\"ghost\",\"name\":\"edit_file\",\"ok\":false}");
  ev(&l, 2, 10, "model_response",
     "{\"input_tokens\":5,\"output_tokens\":0,\"cost_usd\":0.01}");
  ev(&l, 2, 1, "run_finished",
     "{\"status\":\"succeeded\",\"reason\":\"done\",\"summary\":\"ok\"}");
  r = report(&l);
  assert_int_equal(num(r, "totals.tokens"), 15);
  assert_int_equal(num(r, "totals.tool_calls"), 4);
  assert_int_equal(num(r, "totals.failed_calls"), 2);
  json_array_foreach(json_object_get(r, "tools"), i, t)
    sum += num(t, "tokens");
  assert_int_equal(sum, 15);
  assert_null(json_object_get(r, "loops") ?
                  json_array_get(json_object_get(r, "loops"), 0) :
                  NULL);
  assert_non_null(
      strstr(json_string_value(json_object_get(r, "headline")), "succeeded"));
  json_decref(r);
}

static void test_pending_approval(void **state)
{
  struct log l;
  json_t *r;

  (void)state;
  /* The log starts at 1000 and asks at 1100; now is five seconds on. */
  log_start(&l, DURIN_RUN_WAITING_APPROVAL, 6100);
  ev(&l, 1, 0, "plan_updated",
     "{\"plan\":[{\"step\":\"one\",\"status\":\"in_progress\"}]}");
  ev(&l, 1, 100, "approval_requested",
     "{\"id\":\"ap1\",\"tool\":\"bash\",\"call_id\":\"c\"}");
  r = report(&l);
  assert_int_equal(num(r, "totals.waiting_human_ms"), 5000);
  assert_int_equal(num(r, "totals.wall_ms"), 5100);
  assert_string_equal(
      json_string_value(json_object_get(
          json_array_get(json_object_get(r, "approvals"), 0), "state")),
      "pending");
  json_decref(r);
}

static void test_empty(void **state)
{
  struct log l;
  json_t *r;

  (void)state;
  log_start(&l, DURIN_RUN_QUEUED, 0);
  r = report(&l);
  assert_int_equal(num(r, "events"), 0);
  assert_int_equal(num(r, "totals.wall_ms"), 0);
  assert_int_equal(json_array_size(json_object_get(r, "tools")), 0);
  json_decref(r);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_loop_after_failure),
    cmocka_unit_test(test_split_adds_up),
    cmocka_unit_test(test_pending_approval),
    cmocka_unit_test(test_empty),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
