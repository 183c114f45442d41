/* The loop and storm breakers' bookkeeping (harness/guard.c), by hand. */
#include <stdio.h>

#include "harness/guard.h"
#include "test.h"

static const struct durin__guard_limits deflim = { 3, 8, 10 };

/* Counts one call of tool with args ending as (ok, exit_code, out);
 * returns the trips, the events freed unless asked for. */
static int add(json_t **g, const struct durin__guard_limits *lim,
               const char *tool, const char *args, int ok, int exit_code,
               const char *out, int64_t step, json_t **loop, json_t **storm)
{
  struct durin__guard_call c = { 0 };
  json_t *res = json_pack("{s:b,s:i,s:s,s:i}", "ok", ok, "exit_code", exit_code,
                          "output", out, "duration_ms", 5);
  json_t *l, *s;
  int r;

  c.tool = tool;
  c.args = args;
  c.result = res;
  c.step = step;
  c.input_tokens = 100;
  c.output_tokens = 10;
  c.cost_usd = 0.25;
  r = durin__guard_add(g, lim, &c, &l, &s);
  json_decref(res);
  if (loop)
    *loop = l;
  else
    json_decref(l);
  if (storm)
    *storm = s;
  else
    json_decref(s);
  return r;
}

static void test_canonical(void **state)
{
  char *a, *b;

  (void)state;
  a = durin__guard_canonical("{\"command\":\"npm install\",\"timeout_s\":60}");
  b = durin__guard_canonical(
      "{ \"timeout_s\" : 60,\n \"command\": \"  npm \\t\\n install \" }");
  assert_string_equal(a, b);
  assert_string_equal(a, "{\"command\":\"npm install\",\"timeout_s\":60}");
  free(b);
  b = durin__guard_canonical("{\"command\":\"npm ci\",\"timeout_s\":60}");
  assert_string_not_equal(a, b);
  free(a);
  free(b);
  /* Nested values too; an empty call is {}. */
  a = durin__guard_canonical("{\"a\":{\"y\":[\" x  y \"],\"b\":1}}");
  assert_string_equal(a, "{\"a\":{\"b\":1,\"y\":[\"x y\"]}}");
  free(a);
  a = durin__guard_canonical("");
  assert_string_equal(a, "{}");
  free(a);
}

/* Three failures of the same call (whitespace and key order aside, pids
 * and times aside), other calls between them: a loop, named. */
static void test_loop(void **state)
{
  json_t *g = NULL, *loop = NULL;

  (void)state;
  assert_int_equal(add(&g, &deflim, "bash", "{\"command\":\"npm install\"}", 0,
                       1, "npm ERR! code E404 (pid 101, 18:00:01)", 1, NULL,
                       NULL),
                   0);
  assert_int_equal(add(&g, &deflim, "bash", "{\"command\":\"ls\"}", 1, 0, "a",
                       2, NULL, NULL),
                   0);
  assert_int_equal(add(&g, &deflim, "read_file", "{\"path\":\"x\"}", 0, 1,
                       "no such file", 2, NULL, NULL),
                   0);
  assert_int_equal(add(&g, &deflim, "bash", "{\"command\":\"  npm   install\"}",
                       0, 1, "npm ERR! code E404 (pid 20202, 18:00:59)", 3,
                       NULL, NULL),
                   0);
  /* The same call failing another way starts its count again. */
  assert_int_equal(add(&g, &deflim, "bash", "{\"command\":\"npm install\"}", 0,
                       2, "npm ERR! code E404 (pid 3, 18:01:02)", 4, NULL,
                       NULL),
                   0);
  assert_int_equal(add(&g, &deflim, "bash", "{\"command\":\"npm install\"}", 0,
                       2, "npm ERR! code E404 (pid 4, 18:01:03)", 5, NULL,
                       NULL),
                   0);
  assert_int_equal(add(&g, &deflim, "bash", "{\"command\":\"npm install\"}", 0,
                       2, "npm ERR! code E404 (pid 5, 18:01:04)", 6, &loop,
                       NULL),
                   DURIN__GUARD_LOOP);
  assert_non_null(loop);
  assert_string_equal(json_string_value(json_object_get(loop, "tool")), "bash");
  assert_string_equal(json_string_value(json_object_get(loop, "arguments")),
                      "{\"command\":\"npm install\"}");
  assert_int_equal(json_integer_value(json_object_get(loop, "times")), 3);
  assert_int_equal(json_integer_value(json_object_get(loop, "exit_code")), 2);
  assert_int_equal(json_integer_value(json_object_get(loop, "first_step")), 4);
  assert_int_equal(json_integer_value(json_object_get(loop, "last_step")), 6);
  assert_int_equal(json_integer_value(json_object_get(loop, "input_tokens")),
                   300);
  assert_int_equal(json_integer_value(json_object_get(loop, "output_tokens")),
                   30);
  assert_true(json_real_value(json_object_get(loop, "cost_usd")) == 0.75);
  assert_non_null(strstr(json_string_value(json_object_get(loop, "error")),
                         "npm ERR! code E404 (pid 5"));
  json_decref(loop);
  /* Stopped: the count starts again, two more failures do not trip. */
  assert_int_equal(add(&g, &deflim, "bash", "{\"command\":\"npm install\"}", 0,
                       2, "npm ERR! code E404 (pid 6, 18:01:05)", 7, NULL,
                       NULL),
                   0);
  assert_int_equal(json_integer_value(json_object_get(g, "loops_stopped")), 1);
  /* Per tool: calls, failures, time, output tokens (a byte in 3). */
  assert_int_equal(
      json_integer_value(json_object_get(
          json_object_get(json_object_get(g, "tools"), "bash"), "calls")),
      7);
  assert_int_equal(
      json_integer_value(json_object_get(
          json_object_get(json_object_get(g, "tools"), "bash"), "failed")),
      6);
  assert_int_equal(
      json_integer_value(json_object_get(
          json_object_get(json_object_get(g, "tools"), "read_file"), "tokens")),
      4); /* "no such file": 12 bytes */
  /* At most five failures are kept, the latest. */
  assert_int_equal(json_array_size(json_object_get(g, "failures")), 5);
  assert_int_equal(
      json_integer_value(json_object_get(
          json_array_get(json_object_get(g, "failures"), 4), "step")),
      7);
  json_decref(g);
}

/* A success of the call clears its count. */
static void test_success_clears(void **state)
{
  json_t *g = NULL;
  const char *a = "{\"command\":\"make\"}";

  (void)state;
  assert_int_equal(add(&g, &deflim, "bash", a, 0, 1, "err", 1, NULL, NULL), 0);
  assert_int_equal(add(&g, &deflim, "bash", a, 0, 1, "err", 2, NULL, NULL), 0);
  assert_int_equal(add(&g, &deflim, "bash", a, 1, 0, "ok", 3, NULL, NULL), 0);
  assert_int_equal(json_array_size(json_object_get(g, "loops")), 0);
  assert_int_equal(add(&g, &deflim, "bash", a, 0, 1, "err", 4, NULL, NULL), 0);
  assert_int_equal(add(&g, &deflim, "bash", a, 0, 1, "err", 5, NULL, NULL), 0);
  assert_int_equal(add(&g, &deflim, "bash", a, 0, 1, "err", 6, NULL, NULL),
                   DURIN__GUARD_LOOP);
  json_decref(g);
}

/* Eight failures in the last ten calls: a storm; its window starts
 * again. Off with 0. The loop table stays bounded. */
static void test_storm_and_bounds(void **state)
{
  json_t *g = NULL, *storm = NULL;
  struct durin__guard_limits nostorm = { 3, 0, 10 };
  char args[64];
  int i;

  (void)state;
  add(&g, &deflim, "bash", "{\"command\":\"true\"}", 1, 0, "", 1, NULL, NULL);
  add(&g, &deflim, "bash", "{\"command\":\"true\"}", 1, 0, "", 1, NULL, NULL);
  for (i = 0; i < 7; i++) {
    snprintf(args, sizeof(args), "{\"command\":\"try %d\"}", i);
    assert_int_equal(add(&g, &deflim, "bash", args, 0, 1, "no", 2, NULL, NULL),
                     0);
  }
  assert_int_equal(add(&g, &deflim, "read_file", "{\"path\":\"q\"}", 0, -1,
                       "no", 3, NULL, &storm),
                   DURIN__GUARD_STORM);
  assert_int_equal(json_integer_value(json_object_get(storm, "failures")), 8);
  assert_int_equal(json_integer_value(json_object_get(storm, "window")), 10);
  assert_int_equal(json_array_size(json_object_get(storm, "recent")), 10);
  assert_string_equal(
      json_string_value(json_object_get(
          json_array_get(json_object_get(storm, "recent"), 9), "tool")),
      "read_file");
  json_decref(storm);
  assert_int_equal(json_array_size(json_object_get(g, "window")), 0);
  assert_int_equal(json_integer_value(json_object_get(g, "storms")), 1);
  /* Forty distinct failing calls, the storm breaker off: 32 kept. */
  for (i = 0; i < 40; i++) {
    snprintf(args, sizeof(args), "{\"command\":\"other %d\"}", i);
    assert_int_equal(
        add(&g, &nostorm, "bash", args, 0, 1, "no", 4 + i, NULL, NULL), 0);
  }
  assert_int_equal(json_array_size(json_object_get(g, "loops")), 32);
  assert_int_equal(json_array_size(json_object_get(g, "window")), 0);
  json_decref(g);
}

static void test_share(void **state)
{
  (void)state;
  assert_int_equal(durin__guard_share(10, 3, 0), 4);
  assert_int_equal(durin__guard_share(10, 3, 1), 3);
  assert_int_equal(durin__guard_share(10, 3, 2), 3);
  assert_int_equal(durin__guard_share(10, 0, 0), 0);
}

/* Work that gets somewhere is no loop: a test whose failing value moves
 * between edits, an edit retried with other indentation. Noise that
 * moves (a duration, a time) is still the same failure. */
static void test_progress_is_no_loop(void **state)
{
  static const char *const outs[] = {
    "FAILED test_parse - assert 3 == 4\n1 failed in 0.31s",
    "FAILED test_parse - assert 2 == 4\n1 failed in 0.29s",
    "FAILED test_parse - assert 1 == 4\n1 failed in 0.33s",
  };
  static const char *const edits[] = {
    "{\"path\":\"p.py\",\"old_string\":\"  x = 1\",\"new_string\":\"y\"}",
    "{\"path\":\"p.py\",\"old_string\":\"    x = 1\",\"new_string\":\"y\"}",
    "{\"path\":\"p.py\",\"old_string\":\"\\tx = 1\",\"new_string\":\"y\"}",
  };
  struct durin__guard_limits lim = deflim;
  json_t *g = NULL;
  int i;

  (void)state;
  lim.failures = 0; /* the storm breaker is another test's */
  for (i = 0; i < 3; i++) {
    assert_int_equal(add(&g, &lim, "bash", "{\"command\":\"pytest\"}", 0, 1,
                         outs[i], 2 * i + 1, NULL, NULL),
                     0);
    assert_int_equal(add(&g, &lim, "edit_file", edits[i], 0, 1,
                         "error: old_string was not found in p.py", 2 * i + 2,
                         NULL, NULL),
                     0);
  }
  /* The same assertion three times, only its time moving: a loop. */
  for (i = 0; i < 3; i++) {
    char out[80];

    snprintf(out, sizeof(out), "FAILED - assert 3 == 4\n1 failed in 0.%ds",
             31 + i);
    assert_int_equal(add(&g, &lim, "bash", "{\"command\":\"pytest -x\"}", 0, 1,
                         out, 10 + i, NULL, NULL),
                     i == 2 ? DURIN__GUARD_LOOP : 0);
  }
  json_decref(g);
}

/* A command that answers no without a word (grep finding nothing, test
 * -f on a missing file) is no error for the storm breaker; an exit 1
 * that says something is. */
static void test_quiet_no_is_no_storm(void **state)
{
  json_t *g = NULL;
  char cmd[64];
  int i;

  (void)state;
  for (i = 0; i < 10; i++) {
    snprintf(cmd, sizeof(cmd), "{\"command\":\"grep -r x%d .\"}", i);
    assert_int_equal(
        add(&g, &deflim, "bash", cmd, 0, 1, "exit code 1\n", i + 1, NULL, NULL),
        0);
  }
  for (i = 0; i < 8; i++)
    if (add(&g, &deflim, "bash", "{\"command\":\"make\"}", 0, 1,
            i % 2 ? "exit code 1\nmake: *** [all] Error 1" :
                    "exit code 1\nmake: *** [all] Error 2",
            20 + i, NULL, NULL) == DURIN__GUARD_STORM)
      break;
  assert_int_equal(i, 7);
  json_decref(g);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_canonical),
    cmocka_unit_test(test_loop),
    cmocka_unit_test(test_progress_is_no_loop),
    cmocka_unit_test(test_quiet_no_is_no_storm),
    cmocka_unit_test(test_success_clears),
    cmocka_unit_test(test_storm_and_bounds),
    cmocka_unit_test(test_share),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
