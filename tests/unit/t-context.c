/*
 * Phases and context resets (docs/internals/context.md), the harness
 * driven by hand: no store, no model, no tools. A small driver answers
 * every action the way the worker would, keeps the log and the last
 * checkpoint, and can "crash" the harness and restore it from them.
 */
#include <stdio.h>

#include "durin/harness.h"
#include "durin/util.h"
#include "test.h"

struct drv {
  struct durin_spec spec;
  struct durin_harness *h;
  struct durin_event *log;
  size_t nlog;
  int64_t seq, now;
  char *ck; /* the last checkpoint committed */
  /* Every request: its bytes (as JSON text) and its first message. */
  size_t max_request;
  int64_t requests, summaries;
};

static void drv_spec(struct drv *d, const char *extra)
{
  struct durin_err err = { 0 };
  char json[4096];

  snprintf(json, sizeof(json),
           "{\"goal\":\"GOAL-7 make the tests pass\",\"workspace\":\"/tmp\","
           "\"model\":{\"provider\":\"script\",\"turns\":[]},"
           "\"budget\":{\"steps\":20000,\"tool_calls\":40000}%s}",
           extra);
  if (durin_spec_parse(json, NULL, &d->spec, &err))
    fail_msg("spec: %s", err.msg);
}

static void drv_free(struct drv *d)
{
  size_t i;

  durin_harness_free(d->h);
  for (i = 0; i < d->nlog; i++) {
    free((char *)d->log[i].type);
    free((char *)d->log[i].data);
  }
  free(d->log);
  free(d->ck);
  durin_spec_clear(&d->spec);
}

static int64_t count_events(const struct drv *d, const char *type)
{
  size_t i;
  int64_t n = 0;

  for (i = 0; i < d->nlog; i++)
    n += !strcmp(d->log[i].type, type);
  return n;
}

/* The data of the last event of type, parsed (new reference), or NULL. */
static json_t *last_event(const struct drv *d, const char *type)
{
  size_t i = d->nlog;

  while (i-- > 0)
    if (!strcmp(d->log[i].type, type))
      return json_loads(d->log[i].data, 0, NULL);
  return NULL;
}

static void complete(struct drv *d, struct durin_completion *c)
{
  c->now_ms = d->now;
  assert_int_equal(durin_harness_complete(d->h, c), 0);
}

static void commit(struct drv *d, struct durin_action *act)
{
  struct durin_completion c = { 0 };
  size_t i;

  d->log = realloc(d->log, (d->nlog + act->nevents) * sizeof(*d->log));
  for (i = 0; i < act->nevents; i++) {
    act->events[i].seq = ++d->seq;
    d->log[d->nlog] = act->events[i];
    d->log[d->nlog].type = strdup(act->events[i].type);
    d->log[d->nlog].data = strdup(act->events[i].data);
    d->nlog++;
  }
  if (act->checkpoint) {
    free(d->ck);
    d->ck = strdup(act->checkpoint);
  }
  c.kind = DURIN_DONE_COMMIT;
  complete(d, &c);
}

static void start(struct drv *d)
{
  struct durin_action act;

  assert_int_equal(durin_harness_new(&d->spec, "rctx", &d->h, NULL), 0);
  d->now = 1000;
  durin_harness_next(d->h, d->now, &act);
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  commit(d, &act);
}

/* A crash: the harness is gone; a new one restores from the checkpoint
 * and the log, as the worker does. */
static void crash_restore(struct drv *d)
{
  struct durin_err err = { 0 };
  size_t i;

  durin_harness_free(d->h);
  assert_int_equal(durin_harness_new(&d->spec, "rctx", &d->h, &err), 0);
  if (durin_harness_restore(d->h, d->ck, 2, &err))
    fail_msg("restore: %s", err.msg);
  for (i = 0; i < d->nlog; i++)
    if (d->log[i].seq >= durin_harness_window(d->h) &&
        durin_harness_load_event(d->h, &d->log[i], &err))
      fail_msg("load: %s", err.msg);
}

/* The bytes of a request as JSON text: system prompt, tools, messages. */
static size_t request_bytes(const struct durin_action *act)
{
  size_t n = act->model.system ? strlen(act->model.system) : 0, i;
  char *t = json_dumps(act->model.tools, JSON_COMPACT);
  json_t *m;

  n += strlen(t);
  free(t);
  json_array_foreach(act->model.messages, i, m) {
    t = json_dumps(m, JSON_COMPACT);
    n += strlen(t) + 1;
    free(t);
  }
  return n;
}

static const char *pinned(const struct durin_action *act)
{
  return json_string_value(
      json_object_get(json_array_get(act->model.messages, 0), "content"));
}

/* Answers a model action with n calls c1..cn. */
static void answer_n(struct drv *d, int n, const char *const *names,
                     const char *const *args)
{
  struct durin_model_response r = { 0 };
  struct durin_completion c = { 0 };
  char id[16];
  int i;

  r.input_tokens = 10;
  r.calls = calloc((size_t)n, sizeof(*r.calls));
  r.ncalls = n;
  for (i = 0; i < n; i++) {
    snprintf(id, sizeof(id), "c%d", i + 1);
    r.calls[i].id = strdup(id);
    r.calls[i].name = strdup(names[i]);
    r.calls[i].args = strdup(args[i]);
  }
  c.kind = DURIN_DONE_MODEL;
  c.resp = &r;
  complete(d, &c);
  durin_model_response_clear(&r);
}

/* Answers a model action with one call (or text when name is NULL). */
static void answer(struct drv *d, const char *name, const char *args)
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
  complete(d, &c);
  durin_model_response_clear(&r);
}

/*
 * Runs the current step up to its commit (into *out, not made): every
 * tool answers with output (tool_ok), the phase check with check_ok.
 * finish_step makes the commit too, the tools succeeding.
 */
static void run_step(struct drv *d, const char *output, int tool_ok,
                     int check_ok, struct durin_action *out)
{
  struct durin_action act;
  struct durin_completion c;

  for (;;) {
    memset(&c, 0, sizeof(c));
    durin_harness_next(d->h, d->now, &act);
    switch (act.kind) {
    case DURIN_ACT_POLICY: {
      struct durin_policy_decision dec = { 0 };

      dec.action = DURIN_POLICY_ALLOW;
      c.kind = DURIN_DONE_POLICY;
      c.decision = &dec;
      complete(d, &c);
      break;
    }
    case DURIN_ACT_INTENT:
      c.kind = DURIN_DONE_INTENT;
      complete(d, &c);
      break;
    case DURIN_ACT_OUTCOME:
      c.kind = DURIN_DONE_OUTCOME;
      complete(d, &c);
      break;
    case DURIN_ACT_TOOL: {
      struct durin_tool_result r = { 0 };

      r.ok = tool_ok;
      r.exit_code = tool_ok ? 0 : -1;
      r.output = strdup(output);
      c.kind = DURIN_DONE_TOOL;
      c.tool = &r;
      complete(d, &c);
      break;
    }
    case DURIN_ACT_CHECKS: {
      struct durin_check_result cr = { 0 };

      assert_int_equal(act.nchecks, 1);
      cr.name = act.checks[0].name;
      cr.ok = check_ok;
      cr.exit_code = check_ok ? 0 : 1;
      cr.output = check_ok ? "" : "PLAN.md missing";
      c.kind = DURIN_DONE_CHECKS;
      c.checks = &cr;
      c.nchecks = 1;
      complete(d, &c);
      break;
    }
    case DURIN_ACT_COMMIT:
      *out = act;
      return;
    case DURIN_ACT_MODEL:
    case DURIN_ACT_DIFF:
    case DURIN_ACT_SNAPSHOT:
    case DURIN_ACT_DONE:
    default:
      fail_msg("unexpected action %d inside a step", act.kind);
    }
  }
}

static void finish_step(struct drv *d, const char *output, int check_ok)
{
  struct durin_action act;

  run_step(d, output, 1, check_ok, &act);
  commit(d, &act);
}

/* The next model request, checked against the cap; counted. */
static void model(struct drv *d, struct durin_action *act, size_t cap)
{
  d->now += 10;
  durin_harness_next(d->h, d->now, act);
  assert_int_equal(act->kind, DURIN_ACT_MODEL);
  if (request_bytes(act) > d->max_request)
    d->max_request = request_bytes(act);
  if (cap && request_bytes(act) > cap)
    fail_msg("request %lld has %zu bytes, over the cap of %zu",
             (long long)d->requests, request_bytes(act), cap);
  d->requests++;
  d->summaries += act->model.summary;
}

/* The tool names a request offers, comma-separated, into buf. */
static const char *tool_names(const struct durin_action *act, char *buf,
                              size_t len)
{
  size_t i, off = 0;
  json_t *t;

  buf[0] = 0;
  json_array_foreach(act->model.tools, i, t)
    off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "",
                            json_string_value(json_object_get(t, "name")));
  return buf;
}

/* The replayed checkpoint of step n equals what its commit wrote. */
static void expect_replay_at(struct drv *d, int64_t n, const char *want_text)
{
  struct durin_replay *r;
  struct durin_replay_result res;
  struct durin_checkpoint got;
  struct durin_err err = { 0 };
  json_t *want = json_loads(want_text, 0, NULL), *g;
  char *text;
  size_t i;
  int rc = 0;

  assert_int_equal(durin_replay_new(n, &r, &err), 0);
  for (i = 0; i < d->nlog && rc == 0; i++)
    rc = durin_replay_add(r, &d->log[i], &err);
  if (rc < 0 || durin_replay_result(r, &got, &res, &err))
    fail_msg("replay to step %lld: %s", (long long)n, err.msg);
  durin_replay_free(r);
  text = durin_checkpoint_dump(&got);
  g = json_loads(text, 0, NULL);
  if (!json_equal(g, want)) {
    char *w = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT);
    char *gg = json_dumps(g, JSON_SORT_KEYS | JSON_COMPACT);

    fail_msg("step %lld replayed:\n%s\ncommitted:\n%s", (long long)n, gg, w);
  }
  free(text);
  json_decref(g);
  json_decref(want);
  durin_checkpoint_clear(&got);
}

static const char artifact_args[] =
    "{\"decided\":[\"DECIDED-1 use the fast parser\"],"
    "\"found\":[\"FOUND-1 tests live in t/\"],"
    "\"commitments\":[\"OPEN-1 fix test_parse\"],\"notes\":\"NOTE-1\"}";

/* A phase ends at update_plan: its summary is a model call with the
 * artifact tool; the artifact is logged, and the next phase's requests
 * carry it, the goal and the plan instead of the old messages; each
 * phase offers its own tools and refuses the others. */
static void test_phase_boundary(void **state)
{
  struct drv d = { 0 };
  struct durin_action act;
  char names[256], *ck1;
  json_t *ev, *ck;

  (void)state;
  drv_spec(&d, ",\"context\":{\"max_bytes\":60000},"
               "\"phases\":[{\"name\":\"planning\",\"share\":0.5,"
               "\"tools\":[\"read_file\",\"update_plan\"],"
               "\"until\":\"update_plan\"},{\"name\":\"execution\"}]");
  start(&d);
  ev = last_event(&d, "run_started");
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(ev, "phase"), "name")),
      "planning");
  json_decref(ev);
  model(&d, &act, 30000);
  assert_string_equal(tool_names(&act, names, sizeof(names)),
                      "read_file,update_plan,run_status");
  assert_non_null(strstr(pinned(&act), "phase 1 of 2, 'planning'"));
  answer(&d, "read_file", "{\"path\":\"a.txt\"}");
  finish_step(&d, "CONTENT-OF-A", 1);
  /* A tool the phase does not have is refused, not run. */
  model(&d, &act, 30000);
  answer(&d, "bash", "{\"command\":\"rm -rf x\"}");
  finish_step(&d, "never", 1);
  ev = last_event(&d, "tool_result");
  assert_non_null(strstr(json_string_value(json_object_get(ev, "output")),
                         "not one of the tools of phase 'planning'"));
  json_decref(ev);
  model(&d, &act, 30000);
  answer(&d, "update_plan",
         "{\"plan\":[{\"step\":\"PLAN-STEP-1\",\"status\":\"pending\"}]}");
  finish_step(&d, "", 1);
  assert_int_equal(count_events(&d, "phase_complete"), 1);
  ck1 = strdup(d.ck);
  /* The summary step: the artifact tool, the whole phase, the question. */
  model(&d, &act, 30000);
  assert_true(act.model.summary);
  assert_int_equal(act.model.turn, 0);
  assert_string_equal(tool_names(&act, names, sizeof(names)), "artifact");
  {
    char *all = json_dumps(act.model.messages, JSON_COMPACT);

    assert_non_null(strstr(all, "CONTENT-OF-A"));
    assert_non_null(strstr(all, "Phase 'planning' ends here"));
    free(all);
  }
  answer(&d, "artifact", artifact_args);
  durin_harness_next(d.h, d.now, &act);
  assert_int_equal(act.kind, DURIN_ACT_COMMIT);
  assert_string_equal(act.events[0].type, "model_response");
  assert_non_null(strstr(act.events[0].data, "\"role\":\"summary\""));
  commit(&d, &act);
  assert_int_equal(count_events(&d, "phase_ended"), 1);
  ev = last_event(&d, "phase_ended");
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(ev, "artifact"), "phase")),
                      "planning");
  assert_string_equal(
      json_string_value(json_array_get(
          json_object_get(json_object_get(ev, "artifact"), "files_read"), 0)),
      "a.txt");
  json_decref(ev);
  ck = json_loads(d.ck, 0, NULL);
  assert_int_equal(json_array_size(json_object_get(ck, "artifacts")), 1);
  assert_int_equal(json_integer_value(
                       json_object_get(json_object_get(ck, "phase"), "index")),
                   1);
  /* The summary is a step of the run, counted in its usage, not in the
   * agent's steps. */
  assert_int_equal(json_integer_value(json_object_get(ck, "step")), 4);
  assert_int_equal(json_integer_value(
                       json_object_get(json_object_get(ck, "usage"), "steps")),
                   3);
  assert_int_equal(json_integer_value(json_object_get(
                       json_object_get(ck, "usage"), "model_calls")),
                   4);
  json_decref(ck);
  /* The next phase: only the pinned message, which holds the goal, the
   * plan and the artifact; none of the old turns; all the tools. */
  model(&d, &act, 0);
  assert_false(act.model.summary);
  assert_int_equal(json_array_size(act.model.messages), 1);
  assert_non_null(strstr(pinned(&act), "GOAL-7"));
  assert_non_null(strstr(pinned(&act), "PLAN-STEP-1"));
  assert_non_null(strstr(pinned(&act), "DECIDED-1"));
  assert_non_null(strstr(pinned(&act), "FOUND-1"));
  assert_non_null(strstr(pinned(&act), "OPEN-1"));
  assert_non_null(strstr(pinned(&act), "phase 2 of 2, 'execution'"));
  {
    char *all = json_dumps(act.model.messages, JSON_COMPACT);

    assert_null(strstr(all, "CONTENT-OF-A"));
    free(all);
  }
  assert_non_null(strstr(tool_names(&act, names, sizeof(names)), "bash"));
  /* The log alone gives each checkpoint back. */
  expect_replay_at(&d, 3, ck1);
  answer(&d, "bash", "{\"command\":\"true\"}");
  finish_step(&d, "ok", 1);
  expect_replay_at(&d, 5, d.ck);
  free(ck1);
  drv_free(&d);
}

/* A phase that ends after a number of steps, and one that ends when its
 * check passes (run after each of its steps). */
static void test_phase_steps_and_check(void **state)
{
  struct drv d = { 0 };
  struct durin_action act;
  json_t *ev;
  char *ck5;

  (void)state;
  drv_spec(&d, ",\"phases\":[{\"name\":\"explore\",\"until\":{\"steps\":2}},"
               "{\"name\":\"plan\",\"until\":{\"check\":\"test -f PLAN.md\"}},"
               "{\"name\":\"work\"}]");
  start(&d);
  model(&d, &act, 0);
  answer(&d, "list_files", "{\"path\":\".\"}");
  finish_step(&d, "a b", 1);
  assert_int_equal(count_events(&d, "phase_complete"), 0);
  model(&d, &act, 0);
  answer(&d, NULL, NULL);
  finish_step(&d, "", 1);
  assert_int_equal(count_events(&d, "phase_complete"), 1);
  model(&d, &act, 0);
  assert_true(act.model.summary);
  answer(&d, NULL, NULL); /* no artifact: its text is the summary */
  finish_step(&d, "", 1);
  ev = last_event(&d, "phase_ended");
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(ev, "artifact"), "source")),
                      "text");
  assert_string_equal(json_string_value(json_object_get(ev, "next")), "plan");
  json_decref(ev);
  /* The check runs after each step: failing, then passing. */
  model(&d, &act, 0);
  answer(&d, "list_files", "{\"path\":\".\"}");
  finish_step(&d, "x", 0);
  assert_int_equal(count_events(&d, "phase_check"), 1);
  assert_int_equal(count_events(&d, "phase_complete"), 1);
  model(&d, &act, 0);
  answer(&d, "list_files", "{\"path\":\".\"}");
  finish_step(&d, "x", 1);
  ck5 = strdup(d.ck);
  assert_int_equal(count_events(&d, "phase_check"), 2);
  assert_int_equal(count_events(&d, "phase_complete"), 2);
  model(&d, &act, 0);
  assert_true(act.model.summary);
  assert_int_equal(act.model.turn, 1);
  answer(&d, "artifact", artifact_args);
  finish_step(&d, "", 1);
  model(&d, &act, 0);
  assert_non_null(strstr(pinned(&act), "phase 3 of 3, 'work'"));
  assert_non_null(strstr(pinned(&act), "Phase 'explore' ended"));
  assert_non_null(strstr(pinned(&act), "Phase 'plan' ended"));
  expect_replay_at(&d, 5, ck5);
  free(ck5);
  drv_free(&d);
}

/* A crash while the summary is asked for (its answer not yet durable):
 * the restored run asks again, and the log ends with one artifact. The
 * same for a reset. */
static void test_summary_crash_resumes_once(void **state)
{
  struct drv d = { 0 };
  struct durin_action act;
  int i;

  (void)state;
  drv_spec(&d, ",\"phases\":[{\"name\":\"a\",\"until\":\"update_plan\"},"
               "{\"name\":\"b\"}]");
  start(&d);
  model(&d, &act, 0);
  answer(&d, "update_plan",
         "{\"plan\":[{\"step\":\"s\",\"status\":\"done\"}]}");
  finish_step(&d, "", 1);
  model(&d, &act, 0);
  assert_true(act.model.summary);
  answer(&d, "artifact", artifact_args); /* answered, then lost */
  crash_restore(&d);
  model(&d, &act, 0);
  assert_true(act.model.summary);
  assert_int_equal(act.model.turn, 0);
  answer(&d, "artifact", artifact_args);
  finish_step(&d, "", 1);
  model(&d, &act, 0);
  assert_false(act.model.summary);
  assert_int_equal(count_events(&d, "phase_ended"), 1);
  /* After the commit, a crash does not redo it. */
  crash_restore(&d);
  model(&d, &act, 0);
  assert_false(act.model.summary);
  assert_int_equal(count_events(&d, "phase_ended"), 1);
  drv_free(&d);

  memset(&d, 0, sizeof(d));
  drv_spec(&d, ",\"context\":{\"max_bytes\":40000,\"reset_at\":0.25}");
  start(&d);
  for (i = 0; i < 40; i++) {
    model(&d, &act, 10000);
    if (act.model.summary)
      break;
    answer(&d, "bash", "{\"command\":\"make\"}");
    finish_step(&d,
                "............................................"
                "............................................",
                1);
  }
  assert_true(act.model.summary);
  crash_restore(&d);
  model(&d, &act, 10000);
  assert_true(act.model.summary);
  answer(&d, "artifact", artifact_args);
  finish_step(&d, "", 1);
  model(&d, &act, 10000);
  assert_false(act.model.summary);
  assert_int_equal(count_events(&d, "context_reset"), 1);
  assert_int_equal(json_array_size(act.model.messages), 1);
  drv_free(&d);
}

/*
 * A 10,000-step run with context.reset_at: no request (the agent's nor a
 * summary's) is larger than the cap, and every one of the agent's carries
 * the goal, the plan and the latest handoff.
 */
static void test_ten_thousand_steps_under_the_cap(void **state)
{
  struct drv d = { 0 };
  struct durin_action act;
  char out[1500], want[64], plan[200];
  int64_t step = 0, resets = 0;
  json_t *ev;

  (void)state;
  memset(out, 'x', sizeof(out) - 1);
  out[sizeof(out) - 1] = 0;
  drv_spec(&d, ",\"context\":{\"max_bytes\":40000,\"reset_at\":0.25}");
  start(&d);
  while (step < 10000) {
    model(&d, &act, 10000);
    if (act.model.summary) {
      char args[200];

      snprintf(args, sizeof(args),
               "{\"commitments\":[\"HANDOFF-%lld go on with the plan\"]}",
               (long long)resets + 1);
      answer(&d, "artifact", args);
      finish_step(&d, "", 1);
      resets++;
      continue;
    }
    step++;
    assert_non_null(strstr(pinned(&act), "GOAL-7"));
    if (step > 1) {
      snprintf(want, sizeof(want), "PLAN-%lld", (long long)((step - 2) / 100));
      assert_non_null(strstr(pinned(&act), want));
    }
    if (resets) {
      snprintf(want, sizeof(want), "HANDOFF-%lld ", (long long)resets);
      if (!strstr(pinned(&act), want))
        fail_msg("step %lld: the request lacks the latest handoff (%s)",
                 (long long)step, want);
      snprintf(want, sizeof(want), "HANDOFF-%lld ", (long long)resets - 1);
      assert_null(strstr(pinned(&act), want));
    }
    if (step % 100 == 1) {
      snprintf(plan, sizeof(plan),
               "{\"plan\":[{\"step\":\"PLAN-%lld\",\"status\":\"pending\"}]}",
               (long long)(step / 100));
      answer(&d, "update_plan", plan);
    } else {
      answer(&d, "bash", "{\"command\":\"make test\"}");
    }
    finish_step(&d, out, 1);
  }
  assert_true(resets > 100);
  assert_int_equal(count_events(&d, "context_reset"), resets);
  assert_int_equal(d.summaries, resets);
  assert_true(d.max_request <= 10000);
  ev = last_event(&d, "context_reset");
  assert_int_equal(json_integer_value(json_object_get(ev, "count")), resets);
  json_decref(ev);
  print_message("10000 steps, %lld resets, largest request %zu bytes "
                "(cap 10000)\n",
                (long long)resets, d.max_request);
  drv_free(&d);
}

/* reset_at in tokens: counted at a third of the bytes, or denser when
 * the provider says so; a spec whose cap cannot hold its fixed part is
 * refused before the run starts; bad values are refused by name. */
static void test_reset_at_tokens_and_errors(void **state)
{
  struct durin_spec s = { 0 };
  struct durin_err err = { 0 };
  struct durin_harness *h;
  static const char *const bad[] = {
    "\"reset_at\":0",
    "\"reset_at\":1.5",
    "\"reset_at\":100",
    "\"reset_at\":\"x\"",
  };
  char json[512];
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    snprintf(json, sizeof(json),
             "{\"goal\":\"g\",\"workspace\":\"/tmp\",\"model\":{\"provider\":"
             "\"script\",\"turns\":[]},\"context\":{%s}}",
             bad[i]);
    assert_int_not_equal(durin_spec_parse(json, NULL, &s, &err), 0);
    assert_non_null(strstr(err.msg, "context.reset_at"));
    durin_spec_clear(&s);
  }
  assert_int_not_equal(
      durin_spec_parse("{\"goal\":\"g\",\"workspace\":\"/tmp\",\"model\":"
                       "{\"provider\":\"script\",\"turns\":[]},\"phases\":"
                       "[{\"name\":\"a\"},{\"name\":\"b\"}]}",
                       NULL, &s, &err),
      0);
  assert_non_null(strstr(err.msg, "phases[0].until"));
  durin_spec_clear(&s);
  assert_int_not_equal(
      durin_spec_parse("{\"goal\":\"g\",\"workspace\":\"/tmp\",\"model\":"
                       "{\"provider\":\"script\",\"turns\":[]},\"phases\":"
                       "[{\"name\":\"a\",\"until\":\"update_plan\","
                       "\"tools\":[\"nope\"]},{\"name\":\"b\"}]}",
                       NULL, &s, &err),
      0);
  assert_non_null(strstr(err.msg, "phases[0].tools[0]"));
  durin_spec_clear(&s);
  /* A phase's share too small for the tools: refused at the start. */
  assert_int_equal(
      durin_spec_parse("{\"goal\":\"g\",\"workspace\":\"/tmp\",\"model\":"
                       "{\"provider\":\"script\",\"turns\":[]},\"context\":"
                       "{\"max_bytes\":20000},\"phases\":[{\"name\":\"tiny\","
                       "\"share\":0.05,\"until\":\"update_plan\"},"
                       "{\"name\":\"b\"}]}",
                       NULL, &s, &err),
      0);
  assert_int_not_equal(durin_harness_new(&s, "r", &h, &err), 0);
  assert_non_null(strstr(err.msg, "phase 'tiny'"));
  durin_spec_clear(&s);
}

/* With a cap in tokens, a provider that counts more tokens per byte than
 * a third makes the window smaller: the next request stays under the cap
 * in the provider's own count. */
static void test_reset_at_tokens_follows_the_provider(void **state)
{
  struct drv d = { 0 };
  struct durin_action act;
  int i;

  (void)state;
  drv_spec(&d, ",\"context\":{\"max_bytes\":200000,\"reset_at\":4000}");
  start(&d);
  for (i = 0; i < 300; i++) {
    struct durin_model_response r = { 0 };
    struct durin_completion c = { 0 };

    /* The first request may use a third of the bytes per token; after
     * it, the provider's count (one token per two bytes) rules, also
     * after a restore (the checkpoint keeps it). */
    if (i > 0)
      crash_restore(&d);
    model(&d, &act, i ? 8000 : 12000);
    if (act.model.summary)
      break;
    r.input_tokens = (int64_t)request_bytes(&act) / 2;
    r.output_tokens = 5;
    r.calls = calloc(1, sizeof(*r.calls));
    r.ncalls = 1;
    r.calls[0].id = strdup("c1");
    r.calls[0].name = strdup("bash");
    r.calls[0].args = strdup("{\"command\":\"make\"}");
    c.kind = DURIN_DONE_MODEL;
    c.resp = &r;
    complete(&d, &c);
    durin_model_response_clear(&r);
    finish_step(&d,
                "......................................................."
                "......................................................."
                "...................................",
                1);
  }
  assert_true(act.model.summary);
  /* It came past the point where a third of the bytes would have let
   * the window grow over the cap in the provider's count. */
  print_message("largest request %zu bytes (cap 8000)\n", d.max_request);
  assert_true(d.max_request > 5000 && d.max_request <= 8000);
  drv_free(&d);
}

/* Verbose artifacts do not crowd out what matters now: after four
 * phases whose artifacts are as long as they may be, the latest reset's
 * handoff and the current phase open the pinned message, and the
 * checkpoint keeps briefs and pointers, not the artifacts whole. */
static void test_latest_handoff_first_and_checkpoint_small(void **state)
{
  struct drv d = { 0 };
  struct durin_action act;
  struct durin_buf big;
  char item[320];
  int i, k;

  (void)state;
  memset(item, 'w', 300);
  item[300] = 0;
  durin_buf_init(&big, 0);
  durin_buf_adds(&big, "{");
  for (k = 0; k < 3; k++) {
    durin_buf_addf(&big, "%s\"%s\":[", k ? "," : "",
                   k == 0 ? "decided" :
                   k == 1 ? "found" :
                            "commitments");
    for (i = 0; i < 8; i++)
      durin_buf_addf(&big, "%s\"%d %s\"", i ? "," : "", i, item);
    durin_buf_adds(&big, "]");
  }
  durin_buf_addf(&big, ",\"notes\":\"%s%s%s\"}", item, item, item);
  drv_spec(&d, ",\"context\":{\"max_bytes\":80000,\"reset_at\":0.5},"
               "\"phases\":[{\"name\":\"p1\",\"until\":{\"steps\":1}},"
               "{\"name\":\"p2\",\"until\":{\"steps\":1}},"
               "{\"name\":\"p3\",\"until\":{\"steps\":1}},"
               "{\"name\":\"p4\",\"until\":{\"steps\":1}},{\"name\":\"p5\"}]");
  start(&d);
  for (i = 0; i < 200; i++) {
    model(&d, &act, 40000);
    if (act.model.summary) {
      int reset = count_events(&d, "phase_ended") == 4;

      answer(&d, "artifact",
             reset ? "{\"commitments\":[\"HANDOFF-LATEST keep going\"]}" :
                     big.buf);
      finish_step(&d, "", 1);
      if (reset)
        break;
      continue;
    }
    answer(&d, "bash", "{\"command\":\"make\"}");
    finish_step(&d, item, 1);
  }
  assert_int_equal(count_events(&d, "phase_ended"), 4);
  assert_int_equal(count_events(&d, "context_reset"), 1);
  model(&d, &act, 40000);
  assert_false(act.model.summary);
  assert_non_null(strstr(pinned(&act), "phase 5 of 5, 'p5'"));
  assert_non_null(strstr(pinned(&act), "HANDOFF-LATEST"));
  /* The newest artifact before the older ones, which are pointers. */
  assert_true(strstr(pinned(&act), "Phase 'p4' ended") <
              strstr(pinned(&act), "Phase 'p3' ended"));
  assert_non_null(strstr(pinned(&act), "Its artifact is its phase_ended"));
  print_message("checkpoint %zu bytes after 4 verbose phases and a reset\n",
                strlen(d.ck));
  assert_true(strlen(d.ck) < 16000);
  answer(&d, "bash", "{\"command\":\"make\"}");
  finish_step(&d, "ok", 1);
  {
    json_t *ck = json_loads(d.ck, 0, NULL);

    expect_replay_at(&d, json_integer_value(json_object_get(ck, "step")), d.ck);
    json_decref(ck);
  }
  durin_buf_release(&big);
  drv_free(&d);
}

/* A breaker that stops the step which ended its phase for a person
 * does not lose the phase's end: the resumed run writes its summary. */
static void test_phase_end_survives_a_breaker_stop(void **state)
{
  static const char *const names[] = { "update_plan", "read_file" };
  static const char *const args[] = {
    "{\"plan\":[{\"step\":\"s\",\"status\":\"pending\"}]}",
    "{\"path\":\"missing\"}"
  };
  struct drv d = { 0 };
  struct durin_action act;
  json_t *ck;

  (void)state;
  drv_spec(&d, ",\"breakers\":{\"repeat\":1,\"failures\":0,\"window\":10},"
               "\"phases\":[{\"name\":\"a\",\"until\":\"update_plan\"},"
               "{\"name\":\"b\"}]");
  start(&d);
  model(&d, &act, 0);
  answer_n(&d, 2, names, args);
  run_step(&d, "error: no such file", 0, 1, &act);
  assert_int_equal(act.status, DURIN_RUN_NEEDS_HUMAN);
  commit(&d, &act);
  assert_int_equal(count_events(&d, "loop_detected"), 1);
  assert_int_equal(count_events(&d, "phase_complete"), 1);
  /* Resumed: the phase's summary comes first. */
  crash_restore(&d);
  ck = json_loads(d.ck, 0, NULL);
  assert_true(
      json_is_true(json_object_get(json_object_get(ck, "phase"), "due")));
  json_decref(ck);
  model(&d, &act, 0);
  assert_true(act.model.summary);
  drv_free(&d);
}

/* A breaker trip in a step that ends the run anyway changes nothing:
 * no loop is logged or counted as stopped, and the log replays to the
 * same checkpoint. */
static void test_no_trip_in_a_final_step(void **state)
{
  static const char *const names[] = { "read_file", "finish" };
  static const char *const args[] = { "{\"path\":\"missing\"}",
                                      "{\"summary\":\"done\"}" };
  struct drv d = { 0 };
  struct durin_action act;
  json_t *ck;

  (void)state;
  drv_spec(&d, ",\"breakers\":{\"repeat\":1,\"failures\":1,\"window\":10}");
  start(&d);
  model(&d, &act, 0);
  answer_n(&d, 2, names, args);
  run_step(&d, "error: no such file", 0, 1, &act);
  assert_int_equal(act.status, DURIN_RUN_SUCCEEDED);
  commit(&d, &act);
  assert_int_equal(count_events(&d, "loop_detected"), 0);
  assert_int_equal(count_events(&d, "storm_detected"), 0);
  ck = json_loads(d.ck, 0, NULL);
  assert_int_equal(json_integer_value(json_object_get(
                       json_object_get(ck, "guard"), "loops_stopped")),
                   0);
  assert_int_equal(json_integer_value(
                       json_object_get(json_object_get(ck, "guard"), "storms")),
                   0);
  json_decref(ck);
  expect_replay_at(&d, 1, d.ck);
  drv_free(&d);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_phase_boundary),
    cmocka_unit_test(test_phase_steps_and_check),
    cmocka_unit_test(test_summary_crash_resumes_once),
    cmocka_unit_test(test_ten_thousand_steps_under_the_cap),
    cmocka_unit_test(test_reset_at_tokens_and_errors),
    cmocka_unit_test(test_reset_at_tokens_follows_the_provider),
    cmocka_unit_test(test_latest_handoff_first_and_checkpoint_small),
    cmocka_unit_test(test_phase_end_survives_a_breaker_stop),
    cmocka_unit_test(test_no_trip_in_a_final_step),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
