/*
 * The review artifact's builder (lib/review/): the failing lines a check's
 * output is cited by, the fold of hand-made events (the evaluator's
 * verdicts and its steps by role, as the evaluator's contract says),
 * and REVIEW.md's rendering.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "durin/git.h"
#include "durin/review.h"
#include "test.h"

static char *cited(const char *output)
{
  json_t *c = durin_review_cite(output, DURIN_REVIEW_CITE_MAX), *l;
  char *out = calloc(1, 4096);
  size_t i, n = 0;

  json_array_foreach(c, i, l)
    n += (size_t)snprintf(
        out + n, 4096 - n, "%lld:%s|",
        (long long)json_integer_value(json_object_get(l, "line")),
        json_string_value(json_object_get(l, "text")));
  json_decref(c);
  return out;
}

static void expect_cited(const char *output, const char *want)
{
  char *got = cited(output);

  if (strcmp(got, want))
    fail_msg("cited '%s', wanted '%s' from:\n%s", got, want, output);
  free(got);
}

static void test_cite(void **state)
{
  (void)state;
  expect_cited("ok 1\nnot ok 2 - sum\nok 3\n", "2:not ok 2 - sum|");
  expect_cited("compiling\nsrc/a.c:3:1: error: expected ';'\n",
               "2:src/a.c:3:1: error: expected ';'|");
  expect_cited("test_x ... FAILED\nAssertionError: 2 != 3\n",
               "1:test_x ... FAILED|2:AssertionError: 2 != 3|");
  expect_cited("Traceback (most recent call last):\n  x\npanic: boom",
               "1:Traceback (most recent call last):|3:panic: boom|");
  /* Counts of nothing are not failures; a count of some is. */
  expect_cited("5 passed, 0 failed\nno errors\n0 failure(s)\n", "");
  expect_cited("4 passed, 1 failed, 0 errors\n",
               "1:4 passed, 1 failed, 0 errors|");
  expect_cited("", "");
  expect_cited(NULL, "");
  {
    /* At most max lines; a long line is cut. */
    char buf[8192] = "";
    json_t *c;
    int i;

    for (i = 0; i < 30; i++)
      strcat(buf, "error\n");
    c = durin_review_cite(buf, 20);
    assert_int_equal(json_array_size(c), 20);
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(c, 19), "line")), 20);
    json_decref(c);
    memset(buf, 'x', 1000);
    memcpy(buf, "error ", 6);
    buf[1000] = 0;
    c = durin_review_cite(buf, 20);
    assert_int_equal(strlen(json_string_value(
                         json_object_get(json_array_get(c, 0), "text"))),
                     300);
    json_decref(c);
  }
}

static void add(struct durin_review *rv, int64_t seq, int64_t step,
                const char *type, const char *data)
{
  struct durin_event ev = { seq, 1000 + seq, step, type, data };

  durin_review_add_event(rv, &ev);
}

static struct durin_review *sample(enum durin_run_status st, int verdicts)
{
  struct durin_run_info ri;
  struct durin_review *rv;

  memset(&ri, 0, sizeof(ri));
  snprintf(ri.id, sizeof(ri.id), "r0001");
  ri.name = "demo";
  ri.spec_json = verdicts ? "{\"goal\":\"fix it\",\"evaluator\":{}}" :
                            "{\"goal\":\"fix it\"}";
  ri.model = "script:x";
  ri.workspace = "/tmp/runs/r0001/workspace";
  ri.reason = "an evaluator said fail";
  ri.status = st;
  ri.created_ms = 1000;
  ri.started_ms = 1000;
  ri.finished_ms = 4000;
  ri.usage.steps = 3;
  ri.usage.input_tokens = 300;
  ri.usage.output_tokens = 30;
  ri.usage.model_calls = 3;
  ri.usage.cost_usd = 0.5;
  rv = durin_review_new(&ri);
  add(rv, 1, 0, "run_started", "{}");
  add(rv, 2, 1, "model_response",
      "{\"text\":\"x\",\"tool_calls\":[{\"id\":\"c1\",\"name\":\"bash\","
      "\"arguments\":\"{\\\"command\\\":\\\"make\\\\ntest\\\"}\"}],"
      "\"input_tokens\":100,\"output_tokens\":10,\"cost_usd\":0.1}");
  add(rv, 3, 1, "tool_result",
      "{\"call_id\":\"c1\",\"name\":\"bash\",\"ok\":false,\"exit_code\":2,"
      "\"output\":\"x\",\"duration_ms\":1500}");
  add(rv, 4, 1, "plan_updated",
      "{\"plan\":[{\"step\":\"a\",\"status\":"
      "\"done\"},{\"step\":\"b | *c*\",\"status\":"
      "\"pending\"}]}");
  add(rv, 5, 2, "checks",
      "{\"passed\":false,\"attempt\":1,\"results\":[{\"name\":\"t\",\"ok\":"
      "false,\"exit_code\":1,\"timed_out\":false,\"output\":\"ok\\nFAIL: "
      "```x```\\n\"}]}");
  add(rv, 6, 2, "evaluation_started", "{\"attempt\":1,\"model\":\"x\"}");
  add(rv, 7, 2, "model_response",
      "{\"role\":\"evaluator\",\"tool_calls\":[{\"id\":\"e1\",\"name\":"
      "\"read_file\",\"arguments\":\"{\\\"path\\\":\\\"a.c\\\"}\"}],"
      "\"input_tokens\":150,\"output_tokens\":15,\"cost_usd\":0.25}");
  add(rv, 8, 2, "tool_result",
      "{\"role\":\"evaluator\",\"call_id\":\"e1\",\"name\":\"read_file\","
      "\"ok\":true,\"exit_code\":-1,\"duration_ms\":1}");
  if (verdicts)
    add(rv, 9, 2, "verdict",
        "{\"attempt\":1,\"verdict\":\"needs_human\",\"reasons\":[\"the spec "
        "is ambiguous\"],\"source\":\"evaluator\",\"usage\":{}}");
  add(rv, 10, 2, "not json", "[1");
  add(rv, 11, 2, "run_finished",
      "{\"status\":\"failed\",\"reason\":\"r\",\"summary\":\"did `it`\"}");
  return rv;
}

static const char *jpath(json_t *j, const char *a, const char *b)
{
  json_t *v = json_object_get(j, a);

  return json_string_value(b ? json_object_get(v, b) : v);
}

static void test_fold(void **state)
{
  struct durin_review *rv = sample(DURIN_RUN_NEEDS_HUMAN, 1);
  json_t *j, *t, *u;

  (void)state;
  durin_review_set_diff(rv, "git", "aaa", "bbb", " 1 file changed\n", "+x\n",
                        0);
  j = durin_review_json(rv);
  assert_int_equal(json_integer_value(json_object_get(j, "v")), 1);
  assert_string_equal(jpath(j, "goal", NULL), "fix it");
  assert_string_equal(jpath(j, "status", NULL), "needs_human");
  assert_string_equal(jpath(j, "summary", NULL), "did `it`");
  assert_string_equal(jpath(j, "diff", "source"), "git");
  assert_string_equal(jpath(j, "diff", "from"), "aaa");
  /* The timeline: the agent's call, then the evaluator's, by role. */
  t = json_object_get(j, "timeline");
  assert_int_equal(json_array_size(t), 2);
  assert_string_equal(jpath(json_array_get(t, 0), "args", NULL), "make test");
  assert_string_equal(jpath(json_array_get(t, 0), "role", NULL), "agent");
  assert_string_equal(jpath(json_array_get(t, 1), "role", NULL), "evaluator");
  assert_string_equal(jpath(json_array_get(t, 1), "args", NULL), "a.c");
  /* The evaluator's usage apart; the agent's is the rest. */
  u = json_object_get(j, "usage");
  assert_int_equal(json_integer_value(json_object_get(
                       json_object_get(u, "evaluator"), "input_tokens")),
                   150);
  assert_int_equal(json_integer_value(json_object_get(
                       json_object_get(u, "agent"), "input_tokens")),
                   150);
  assert_true(json_real_value(json_object_get(json_object_get(u, "agent"),
                                              "cost_usd")) == 0.25);
  assert_string_equal(jpath(j, "evaluator", "verdict"), "needs_human");
  assert_int_equal(json_integer_value(json_object_get(
                       json_object_get(j, "time"), "duration_ms")),
                   3000);
  /* A needs_human verdict: what it says, and the commands that go on. */
  t = json_object_get(j, "needs_person");
  assert_int_equal(json_array_size(t), 1);
  assert_string_equal(jpath(json_array_get(t, 0), "kind", NULL), "verdict");
  assert_string_equal(jpath(json_array_get(t, 0), "what", NULL),
                      "the evaluator asks a person to judge: the spec is "
                      "ambiguous");
  assert_string_equal(jpath(json_array_get(t, 0), "command", NULL),
                      "durin resume r0001  |  durin cancel r0001");
  json_decref(j);
  durin_review_free(rv);
  /* Ended failed: the failed checks, with the command that goes on. */
  rv = sample(DURIN_RUN_FAILED, 0);
  j = durin_review_json(rv);
  t = json_object_get(j, "needs_person");
  assert_int_equal(json_array_size(t), 1);
  assert_string_equal(jpath(json_array_get(t, 0), "kind", NULL), "checks");
  assert_string_equal(jpath(json_array_get(t, 0), "what", NULL),
                      "acceptance checks failed: 't'");
  assert_string_equal(jpath(json_array_get(t, 0), "command", NULL),
                      "durin continue r0001 \"MESSAGE\"");
  json_decref(j);
  durin_review_free(rv);
}

static void test_no_evaluator(void **state)
{
  struct durin_review *rv = sample(DURIN_RUN_FAILED, 0);
  json_t *j;

  (void)state;
  durin_review_set_diff_note(rv, "the run's workspace is gone");
  j = durin_review_json(rv);
  assert_true(json_is_null(
      json_object_get(json_object_get(j, "evaluator"), "verdict")));
  assert_false(json_is_true(
      json_object_get(json_object_get(j, "evaluator"), "configured")));
  assert_string_equal(jpath(j, "evaluator", "note"), "no evaluator configured");
  assert_string_equal(jpath(j, "diff", "source"), "none");
  json_decref(j);
  durin_review_free(rv);
}

/* A result whose call the log never showed asked (a pending step's
 * reused outcome): in the timeline all the same, without arguments. */
static void test_unasked_result(void **state)
{
  struct durin_review *rv = sample(DURIN_RUN_SUCCEEDED, 0);
  json_t *j, *t;

  (void)state;
  add(rv, 30, 3, "tool_result",
      "{\"call_id\":\"zz\",\"name\":\"bash\",\"ok\":true,\"exit_code\":0,"
      "\"reused\":true}");
  j = durin_review_json(rv);
  t = json_array_get(json_object_get(j, "timeline"), 2);
  assert_string_equal(jpath(t, "tool", NULL), "bash");
  assert_string_equal(jpath(t, "args", NULL), "");
  assert_true(json_is_true(json_object_get(t, "reused")));
  json_decref(j);
  durin_review_free(rv);
}

static void test_markdown(void **state)
{
  struct durin_review *rv = sample(DURIN_RUN_NEEDS_HUMAN, 1);
  struct durin_buf md;
  json_t *j;

  (void)state;
  durin_review_set_diff(rv, "workspace", NULL, NULL, " a | 1 +\n", "+```\n", 0);
  j = durin_review_json(rv);
  durin_buf_init(&md, 1 << 20);
  assert_int_equal(durin_review_markdown(j, &md), 0);
  /* A run that has not ended says so, under the outcome. */
  assert_non_null(strstr(md.buf, "# Review of run r0001 (demo)\n\n"
                                 "**Outcome: needs_human** — an evaluator "
                                 "said fail\n\n> The run has not ended"));
  assert_non_null(strstr(md.buf, "\n## What needs a person\n\n- the "
                                 "evaluator asks a person to judge: the spec "
                                 "is ambiguous  \n  `durin resume r0001  |  "
                                 "durin cancel r0001`\n"));
  /* Plan items: text that would be Markdown is quoted. */
  assert_non_null(strstr(md.buf, "- [x] a\n- [ ] b \\| \\*c\\* (pending)\n"));
  assert_non_null(strstr(md.buf, "Verdict: **needs_human**, after 1 "
                                 "attempt(s).\n\n- the spec is ambiguous\n"));
  /* The failing line, cited with its number; the output fenced by a
   * fence longer than any it holds. */
  assert_non_null(strstr(md.buf, "### FAIL `t` (exit 1)\n\nFailing lines:\n\n"
                                 "- line 2: `FAIL: \\`\\`\\`x\\`\\`\\``\n"));
  assert_non_null(strstr(md.buf, "````text\nok\nFAIL: ```x```\n````\n"));
  assert_non_null(strstr(md.buf, "````diff\n+```\n````\n"));
  assert_non_null(strstr(md.buf, "| 1 | bash | make test | failed (exit 2) "
                                 "| 1.5s |\n"));
  assert_non_null(strstr(md.buf, "| 2 | read_file (evaluator) | a.c | ok |"));
  assert_non_null(strstr(md.buf, "| evaluator | 1 | 150 | 15 | $0.2500 |\n"));
  assert_non_null(strstr(md.buf, "| total | 4 | 300 | 30 | $0.5000 |\n"));
  durin_buf_release(&md);
  json_decref(j);
  durin_review_free(rv);
}

static void test_diff_cut(void **state)
{
  struct durin_review *rv = sample(DURIN_RUN_SUCCEEDED, 0);
  size_t n = DURIN_REVIEW_DIFF_MAX + 5000, i;
  char *big = malloc(n + 1);
  const char *p;
  json_t *j;

  (void)state;
  for (i = 0; i < n; i++)
    big[i] = i % 100 == 99 ? '\n' : 'x';
  big[n] = 0;
  durin_review_set_diff(rv, "workspace", NULL, NULL, "", big, 0);
  j = durin_review_json(rv);
  p = jpath(j, "diff", "patch");
  assert_true(strlen(p) <= DURIN_REVIEW_DIFF_MAX);
  assert_int_equal(p[strlen(p) - 1], '\n');
  assert_true(
      json_is_true(json_object_get(json_object_get(j, "diff"), "truncated")));
  assert_non_null(strstr(jpath(j, "diff", "note"), "cut at 256 KiB"));
  json_decref(j);
  free(big);
  durin_review_free(rv);
}

static void put(const char *dir, const char *name, const char *text)
{
  char p[4096];
  FILE *f;

  snprintf(p, sizeof(p), "%s/%s", dir, name);
  assert_non_null(f = fopen(p, "w"));
  fputs(text, f);
  fclose(f);
}

static void commit(struct durin_git *g, const char *parent, int step,
                   char id[DURIN_GIT_HEX])
{
  struct durin_git_commit_opts o = { 0 };
  struct durin_err err = { 0 };
  int changed;

  o.branch = "durin/r0001";
  o.parent = parent;
  o.message = "step";
  o.time_s = 1000 + step;
  if (durin_git_snapshot(g, &o, id, &changed, &err))
    fail_msg("snapshot: %s", err.msg);
}

/* With git checkpoints in the log, the diff is from the run's initial
 * commit to its last, made from the repository; and the branch is what
 * a delivery pushes. */
static void test_git_diff_and_push(void **state)
{
  struct durin_review *rv = sample(DURIN_RUN_SUCCEEDED, 0);
  struct durin_err err = { 0 };
  struct durin_git *g = NULL;
  char dir[256], ws[300], bare[300], c0[DURIN_GIT_HEX], c1[DURIN_GIT_HEX];
  char c2[DURIN_GIT_HEX], data[400], cmd[700], tip[DURIN_GIT_HEX];
  const char *from, *to;
  json_t *j;
  FILE *p;

  (void)state;
  assert_int_equal(durin_mktmpdir("t-review", dir, sizeof(dir)), 0);
  snprintf(ws, sizeof(ws), "%s/ws", dir);
  snprintf(bare, sizeof(bare), "%s/remote.git", dir);
  assert_int_equal(durin_mkdirs(ws, &err), 0);
  put(ws, "a.txt", "one\n");
  assert_int_equal(durin_git_open(ws, DURIN_GIT_CREATE, NULL, &g, &err), 0);
  commit(g, NULL, 0, c0);
  put(ws, "a.txt", "two\n");
  commit(g, c0, 1, c1);
  put(ws, "b.txt", "new\n");
  commit(g, c1, 2, c2);
  durin_git_close(g);
  /* No checkpoints in the log: nothing to diff from git. */
  assert_int_equal(durin_review_git_range(rv, &from, &to), 0);
  assert_int_equal(durin_review_git_diff(rv, ws, &err), 0);
  snprintf(data, sizeof(data), "{\"commit\":\"%s\",\"parent\":null,\"step\":0}",
           c0);
  add(rv, 20, 0, "workspace_commit", data);
  snprintf(data, sizeof(data),
           "{\"commit\":\"%s\",\"parent\":\"%s\",\"step\":1,\"files\":1,"
           "\"insertions\":1,\"deletions\":1}",
           c1, c0);
  add(rv, 21, 1, "workspace_commit", data);
  snprintf(data, sizeof(data),
           "{\"commit\":\"%s\",\"parent\":\"%s\",\"step\":2,\"files\":1,"
           "\"insertions\":1,\"deletions\":0}",
           c2, c1);
  add(rv, 22, 2, "workspace_commit", data);
  assert_int_equal(durin_review_git_range(rv, &from, &to), 1);
  assert_string_equal(from, c0);
  assert_string_equal(to, c2);
  assert_int_equal(durin_review_git_diff(rv, ws, &err), 1);
  j = durin_review_json(rv);
  assert_string_equal(jpath(j, "diff", "source"), "git");
  assert_string_equal(jpath(j, "diff", "from"), c0);
  assert_string_equal(jpath(j, "diff", "to"), c2);
  assert_non_null(strstr(jpath(j, "diff", "patch"), "-one\n+two\n"));
  assert_non_null(strstr(jpath(j, "diff", "patch"), "+new\n"));
  assert_string_equal(jpath(j, "diff", "stat"),
                      " 2 files changed, 2 insertions(+), 1 deletion(-)\n");
  assert_int_equal(json_array_size(json_object_get(j, "commits")), 3);
  json_decref(j);

  /* Delivery: the branch to a bare repository, not forced. */
  snprintf(cmd, sizeof(cmd), "git init -q --bare %s", bare);
  assert_int_equal(system(cmd), 0);
  assert_int_equal(
      durin_git_push(ws, "durin/r0001", bare, "review/x", tip, &err), 0);
  assert_string_equal(tip, c2);
  snprintf(cmd, sizeof(cmd), "git -C %s rev-parse review/x", bare);
  assert_non_null(p = popen(cmd, "r"));
  assert_non_null(fgets(data, sizeof(data), p));
  pclose(p);
  assert_int_equal(strncmp(data, c2, 40), 0);
  assert_int_equal(durin_git_push(ws, "durin/r0002", bare, NULL, tip, &err),
                   DURIN_ENOTFOUND);
  assert_non_null(strstr(err.msg, "no branch 'durin/r0002' to deliver"));
  assert_int_equal(
      durin_git_push(ws, "durin/r0001", "/nonexistent/x.git", NULL, tip, &err),
      DURIN_EIO);
  assert_non_null(strstr(err.msg, "cannot push to '/nonexistent/x.git'"));
  durin_review_free(rv);
  durin_tree_remove(dir);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_cite),
    cmocka_unit_test(test_fold),
    cmocka_unit_test(test_no_evaluator),
    cmocka_unit_test(test_unasked_result),
    cmocka_unit_test(test_markdown),
    cmocka_unit_test(test_diff_cut),
    cmocka_unit_test(test_git_diff_and_push),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
