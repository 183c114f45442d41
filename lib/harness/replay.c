/*
 * Replaying a run's log: the checkpoint as it was right after step N
 * committed, computed from the events alone (a fork at step N,
 * docs/internals/fork.md). Pure: no store, no I/O.
 *
 * The log is scanned in seq order in three phases:
 *   BEFORE --step N's model_response (or run_started for N = 0)--> IN
 *   IN --an event that is not step N's commit--> DONE
 * Each event up to the end of step N's commit is applied to a checkpoint
 * the way lib/harness/harness.c changed it when it made that event:
 *
 *   step                                        +1 per model_response
 *   turn, usage.steps                           +1 per agent model_response
 *   usage model_calls, tokens, cost, retries    every model_response's own
 *   usage.tool_calls                            an agent one's "calls_counted"
 *   eval_usage                                  the evaluator's model_responses
 *                                               (role "evaluator")
 *   window_start, handoff                       the last compaction
 *   started_ms                                  run_started's time
 *   eval_attempts                               the last checks' or
 *                                               evaluation_started's attempt
 *   plan                                        the last plan_updated
 *   summary                                     the finish call's, when
 *                                               checks ran or it passed
 *   rejections                                  calls rejected (or left to
 *                                               expire) by a person
 *   git_commit                                  the last workspace_commit
 *   phase                                       run_started's, the last
 *                                               phase_complete's or
 *                                               phase_ended's "state"
 *   artifacts                                   each phase_ended's artifact,
 *                                               kept as the harness keeps
 *                                               it (durin__summary_keep)
 *   reset                                       the last context_reset's
 *                                               "state"
 *   step, usage of a summary step               its model_response (role
 *                                               "summary"): not the agent's
 *                                               steps or turns
 *   guard                                       the calls a model_response's
 *                                               "guard" names, counted as
 *                                               their tool_results come
 *   run_continued / forked                      reset to their checkpoint
 *
 * A commit's events are contiguous in the log. Step N's commit starts at
 * its model_response (or the "resumed" before it) and ends before the
 * first event that cannot be part of it: another step's, a control event
 * (step 0), "resumed" or "model_error" (a later commit's first events),
 * "run_continued" or "forked", and the evaluator's steps. Step N must be the
 * agent's, and no evaluation may be open when its commit ends (the checkpoint's
 * "eval", with the clock of the evaluation, is not in the log): a fork goes on
 * as the agent. A commit that ended the run between two steps (cancelled, over
 * budget, a failed model call after step N) says so in its run_finished
 * ("between_steps"); its one event before run_finished (and a "resumed"
 * before that) is left out too. Step 0's commit is the opening one, from
 * run_started.
 */
#include <stdlib.h>
#include <string.h>

#include "durin/harness.h"
#include "harness/summary.h"
#include "harness/guard.h"

enum phase { BEFORE, IN, DONE };

struct durin_replay {
  int64_t want;
  enum phase phase;
  struct durin_checkpoint ck;
  int64_t steps_seen; /* the steps in the log */
  int eval_step;      /* step `want` is the evaluator's */
  int summary_step;   /* step `want` is a summary's */
  int64_t eval_open;  /* the attempt of an evaluation under way, or 0 */
  int saw_start;

  /* The end of step N's commit, and the event before it. */
  int64_t end_seq, end_ms, prev_end_seq;
  int ended; /* step N's commit holds run_finished */

  /* The step being applied. */
  json_t *mr;        /* its model_response */
  json_t *calls;     /* call id -> arguments text (its model_response) */
  json_t *approvals; /* call id -> approval id (its policy events) */
  char finish_id[128];
  int results; /* its tool_results so far (the index of the next) */
  /* Every approval asked for: id -> the call's arguments hash. */
  json_t *asked;
};

int durin_replay_new(int64_t step, struct durin_replay **out,
                     struct durin_err *err)
{
  struct durin_replay *r;

  if (step < 0)
    return durin_err_set(err, DURIN_EINVAL,
                         "step %lld does not exist: steps count from 0",
                         (long long)step);
  r = calloc(1, sizeof(*r));
  if (!r)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  r->want = step;
  r->ck.plan = json_array();
  r->ck.rejections = json_object();
  r->calls = json_object();
  r->approvals = json_object();
  r->asked = json_object();
  *out = r;
  return 0;
}

void durin_replay_free(struct durin_replay *r)
{
  if (!r)
    return;
  durin_checkpoint_clear(&r->ck);
  json_decref(r->mr);
  json_decref(r->calls);
  json_decref(r->approvals);
  json_decref(r->asked);
  free(r);
}

static const char *str(json_t *o, const char *key)
{
  return json_string_value(json_object_get(o, key));
}

static int starts(const char *s, const char *prefix)
{
  return s && !strncmp(s, prefix, strlen(prefix));
}

static int is_evaluator(json_t *data)
{
  const char *role = str(data, "role");

  return role && !strcmp(role, "evaluator");
}

/* A summary step's (a phase's end, a context reset). */
static int is_summary(json_t *data)
{
  const char *role = str(data, "role");

  return role && !strcmp(role, "summary");
}

/* A summary step: a step of the run, in its tokens and dollars. */
static void on_summary_response(struct durin_replay *r, json_t *d)
{
  struct durin_usage *u = &r->ck.usage;

  r->ck.step++;
  u->model_calls++;
  u->input_tokens += json_integer_value(json_object_get(d, "input_tokens"));
  u->output_tokens += json_integer_value(json_object_get(d, "output_tokens"));
  u->cost_usd += json_number_value(json_object_get(d, "cost_usd"));
  u->retries += json_integer_value(json_object_get(d, "retries"));
}

/* A state the harness logged whole (the phase, the last reset). */
static void take_state(json_t **field, json_t *d)
{
  json_t *st = json_object_get(d, "state");

  if (!json_is_object(st))
    return;
  json_decref(*field);
  *field = json_deep_copy(st);
}

/* The finish call's summary, from its arguments as the model sent them. */
static void take_summary(struct durin_replay *r)
{
  const char *args = str(r->calls, r->finish_id);
  json_t *a = args ? json_loads(args, 0, NULL) : NULL;
  const char *s = str(a, "summary");

  if (s) {
    free(r->ck.summary);
    r->ck.summary = strdup(s);
  }
  json_decref(a);
}

/* The evaluator's step: a step of the run, counted in its tokens and
 * dollars and in eval_usage, not in the agent's steps, turns or calls. */
static void on_eval_response(struct durin_replay *r, json_t *d)
{
  struct durin_usage *u = &r->ck.usage, *e = &r->ck.eval_usage;
  int64_t in = json_integer_value(json_object_get(d, "input_tokens"));
  int64_t out = json_integer_value(json_object_get(d, "output_tokens"));
  double cost = json_number_value(json_object_get(d, "cost_usd"));

  r->ck.step++;
  u->model_calls++;
  u->input_tokens += in;
  u->output_tokens += out;
  u->cost_usd += cost;
  u->retries += json_integer_value(json_object_get(d, "retries"));
  e->steps++;
  e->model_calls++;
  e->input_tokens += in;
  e->output_tokens += out;
  e->cost_usd += cost;
  e->tool_calls += json_integer_value(json_object_get(d, "calls_counted"));
}

/* context.reset_at in tokens: how densely the provider counted. */
static void take_density(struct durin_replay *r, json_t *d)
{
  int64_t text = json_integer_value(json_object_get(d, "request_text"));

  if (text > 0) {
    r->ck.density[0] = text;
    r->ck.density[1] = json_integer_value(json_object_get(d, "input_tokens"));
  }
}

static void on_model_response(struct durin_replay *r, json_t *d)
{
  struct durin_usage *u = &r->ck.usage;
  json_t *c, *counted = json_object_get(d, "calls_counted");
  size_t i;

  r->ck.step++;
  r->ck.turn++;
  u->steps++;
  u->model_calls++;
  u->input_tokens += json_integer_value(json_object_get(d, "input_tokens"));
  u->output_tokens += json_integer_value(json_object_get(d, "output_tokens"));
  u->cost_usd += json_number_value(json_object_get(d, "cost_usd"));
  u->retries += json_integer_value(json_object_get(d, "retries"));
  if (counted)
    u->tool_calls += json_integer_value(counted);
  json_object_clear(r->calls);
  json_object_clear(r->approvals);
  r->finish_id[0] = 0;
  r->results = 0;
  json_array_foreach(json_object_get(d, "tool_calls"), i, c) {
    if (str(c, "id") && str(c, "arguments"))
      json_object_set(r->calls, str(c, "id"), json_object_get(c, "arguments"));
  }
}

/* A log written before "calls_counted": a result made without running the
 * tool has exit code -1, no duration and is not reused. Approximate: a
 * tool that failed at once with exit code -1 is not counted either. */
static void count_old_result(struct durin_replay *r, json_t *d)
{
  json_t *mr = r->mr;
  const char *name = str(d, "name");

  if (!mr || json_object_get(mr, "calls_counted"))
    return;
  if (!name || !strcmp(name, "finish") || !strcmp(name, "update_plan"))
    return;
  if (json_is_true(json_object_get(d, "reused")) ||
      json_integer_value(json_object_get(d, "exit_code")) != -1 ||
      json_integer_value(json_object_get(d, "duration_ms")) > 0 ||
      starts(str(d, "output"), "outcome unknown: this call was started"))
    r->ck.usage.tool_calls++;
}

/* Counts a call of the step in the breakers as the harness did when the
 * step committed (harness.c guard_count): the model_response's "guard"
 * names the calls counted and the limits; the spend is shared alike. */
static void count_guard(struct durin_replay *r, json_t *d, int idx)
{
  json_t *g = json_object_get(r->mr, "guard"), *calls, *lim, *v, *loop, *storm;
  json_t *tc = json_array_get(json_object_get(r->mr, "tool_calls"), idx);
  struct durin__guard_limits gl;
  struct durin__guard_call gc;
  int n, k = -1;
  size_t i;

  calls = json_object_get(g, "calls");
  lim = json_object_get(g, "limits");
  n = (int)json_array_size(calls);
  json_array_foreach(calls, i, v)
    if (json_integer_value(v) == idx)
      k = (int)i;
  /* Only the agent's own results, each the call the response names. */
  if (k < 0 || !str(d, "name") || json_object_get(d, "role") ||
      !str(tc, "id") || !str(d, "call_id") ||
      strcmp(str(tc, "id"), str(d, "call_id")))
    return;
  gl.repeat = json_integer_value(json_array_get(lim, 0));
  gl.failures = json_integer_value(json_array_get(lim, 1));
  gl.window = json_integer_value(json_array_get(lim, 2));
  memset(&gc, 0, sizeof(gc));
  gc.tool = str(d, "name");
  gc.args = str(tc, "arguments");
  gc.result = d;
  gc.step = r->ck.step;
  gc.input_tokens = durin__guard_share(
      json_integer_value(json_object_get(r->mr, "input_tokens")), n, k);
  gc.output_tokens = durin__guard_share(
      json_integer_value(json_object_get(r->mr, "output_tokens")), n, k);
  gc.cost_usd = json_number_value(json_object_get(r->mr, "cost_usd")) / n;
  durin__guard_add(&r->ck.guard, &gl, &gc, &loop, &storm);
  json_decref(loop);
  json_decref(storm);
}

static void on_tool_result(struct durin_replay *r, json_t *d)
{
  const char *name = str(d, "name"), *out = str(d, "output");
  const char *id = str(d, "call_id");
  const char *ap = id ? str(r->approvals, id) : NULL;

  if (name && !strcmp(name, "finish") && !r->finish_id[0] && id &&
      !starts(out, "error:")) {
    snprintf(r->finish_id, sizeof(r->finish_id), "%s", id);
    /* Accepted without checks, or by them: the summary is the run's. */
    if (json_is_true(json_object_get(d, "ok")))
      take_summary(r);
  }
  /* A person said no (or let the request expire, which means no). */
  if (ap && (starts(out, "rejected by ") ||
             starts(out, "not run: the request for approval ("))) {
    const char *hash = str(r->asked, ap);

    if (hash)
      json_object_set_new(
          r->ck.rejections, hash,
          json_integer(
              json_integer_value(json_object_get(r->ck.rejections, hash)) + 1));
  }
}

/* A checkpoint recorded in the log (run_continued, forked) replaces what
 * was replayed so far. */
static int reset_to(struct durin_replay *r, json_t *ck, struct durin_err *err)
{
  struct durin_checkpoint c;
  char *text;
  int rc;

  if (!json_is_object(ck))
    return 0;
  text = json_dumps(ck, JSON_COMPACT);
  rc = durin_checkpoint_parse(text, &c, err);
  free(text);
  if (rc)
    return rc;
  durin_checkpoint_clear(&r->ck);
  r->ck = c;
  return 0;
}

static int apply(struct durin_replay *r, const struct durin_event *ev,
                 json_t *d, struct durin_err *err)
{
  const char *t = ev->type;

  if (!strcmp(t, "run_started")) {
    r->ck.started_ms = ev->ts_ms;
    r->ck.window_start = 1;
    r->saw_start = 1;
    if (json_is_object(json_object_get(d, "phase"))) {
      json_decref(r->ck.phase);
      r->ck.phase = json_deep_copy(json_object_get(d, "phase"));
    }
  } else if (!strcmp(t, "model_response")) {
    if (is_evaluator(d)) {
      on_eval_response(r, d);
      return 0;
    }
    take_density(r, d);
    if (is_summary(d)) {
      on_summary_response(r, d);
      return 0;
    }
    on_model_response(r, d);
    json_decref(r->mr);
    r->mr = json_incref(d);
  } else if (!strcmp(t, "tool_result")) {
    if (is_evaluator(d))
      return 0;
    count_old_result(r, d);
    on_tool_result(r, d);
    count_guard(r, d, r->results++);
  } else if (!strcmp(t, "policy")) {
    json_t *ap = json_object_get(d, "approval");

    if (str(d, "call_id") && str(ap, "id"))
      json_object_set(r->approvals, str(d, "call_id"),
                      json_object_get(ap, "id"));
  } else if (!strcmp(t, "approval_requested")) {
    if (str(d, "id") && str(d, "args_hash"))
      json_object_set(r->asked, str(d, "id"), json_object_get(d, "args_hash"));
  } else if (!strcmp(t, "plan_updated")) {
    json_decref(r->ck.plan);
    r->ck.plan = json_deep_copy(json_object_get(d, "plan"));
    if (!json_is_array(r->ck.plan)) {
      json_decref(r->ck.plan);
      r->ck.plan = json_array();
    }
  } else if (!strcmp(t, "checks")) {
    r->ck.eval_attempts = json_integer_value(json_object_get(d, "attempt"));
    take_summary(r);
  } else if (!strcmp(t, "evaluation_started")) {
    /* Without checks the finish itself counts the attempt. */
    r->ck.eval_attempts = json_integer_value(json_object_get(d, "attempt"));
    r->eval_open = r->ck.eval_attempts ? r->ck.eval_attempts : 1;
  } else if (!strcmp(t, "verdict")) {
    r->eval_open = 0;
  } else if (!strcmp(t, "compaction")) {
    r->ck.window_start = json_integer_value(json_object_get(d, "window_start"));
    json_decref(r->ck.handoff);
    r->ck.handoff = json_deep_copy(json_object_get(d, "handoff"));
  } else if (!strcmp(t, "phase_complete")) {
    take_state(&r->ck.phase, d);
  } else if (!strcmp(t, "phase_ended")) {
    take_state(&r->ck.phase, d);
    if (json_is_object(json_object_get(d, "artifact")))
      durin__summary_keep(&r->ck.artifacts, json_object_get(d, "artifact"));
  } else if (!strcmp(t, "context_reset")) {
    take_state(&r->ck.reset, d);
  } else if (!strcmp(t, "workspace_commit")) {
    /* A snapshot that changed nothing keeps the commit and logs none. */
    if (str(d, "commit") && strlen(str(d, "commit")) < sizeof(r->ck.git_commit))
      snprintf(r->ck.git_commit, sizeof(r->ck.git_commit), "%s",
               str(d, "commit"));
  } else if (!strcmp(t, "run_continued") || !strcmp(t, "forked")) {
    r->eval_open = 0;
    return reset_to(r, json_object_get(d, "checkpoint"), err);
  }
  /* Every other type (control events, the evaluator's, ones added later)
   * changes nothing the checkpoint holds. */
  return 0;
}

/* Whether ev, seen inside step N's commit, belongs to a later one. */
static int ends_commit(struct durin_replay *r, const struct durin_event *ev,
                       json_t *d)
{
  const char *t = ev->type;

  if (ev->step != r->want)
    return 1;
  if (!strcmp(t, "resumed") || !strcmp(t, "model_error") ||
      !strcmp(t, "run_continued") || !strcmp(t, "forked") ||
      !strcmp(t, "run_started") || !strcmp(t, "model_response") ||
      !strcmp(t, "control"))
    return 1;
  if (is_evaluator(d) || is_summary(d))
    return 1;
  return 0;
}

int durin_replay_add(struct durin_replay *r, const struct durin_event *ev,
                     struct durin_err *err)
{
  json_t *d;
  json_error_t je;
  int rc, evaluator;

  if (r->phase == DONE)
    return 1;
  d = json_loads(ev->data ? ev->data : "{}", 0, &je);
  if (!d)
    return durin_err_set(err, DURIN_EPARSE, "event %lld is not JSON: %s",
                         (long long)ev->seq, je.text);
  if (r->phase == IN) {
    if (ends_commit(r, ev, d)) {
      r->phase = DONE;
      json_decref(d);
      return 1;
    }
    if (!strcmp(ev->type, "run_finished") &&
        json_is_true(json_object_get(d, "between_steps"))) {
      /* The commit after step N's began with the event before this. */
      r->end_seq = r->prev_end_seq;
      r->phase = DONE;
      json_decref(d);
      return 1;
    }
    if (!strcmp(ev->type, "run_finished"))
      r->ended = 1;
  }
  rc = apply(r, ev, d, err);
  evaluator = is_evaluator(d) || is_summary(d);
  if (!rc && !strcmp(ev->type, "model_response")) {
    if (is_summary(d) && ev->step == r->want && r->phase == BEFORE)
      r->summary_step = 1;
    else if (evaluator && ev->step == r->want && r->phase == BEFORE)
      r->eval_step = 1;
    r->steps_seen = r->ck.step;
  }
  json_decref(d);
  if (rc)
    return rc;
  r->prev_end_seq = r->end_seq;
  r->end_seq = ev->seq;
  r->end_ms = ev->ts_ms;
  /* Step 0's commit opens with run_started (a workspace_commit of the
   * initial tree may follow it). */
  if (r->phase == BEFORE && r->want == 0 && !strcmp(ev->type, "run_started"))
    r->phase = IN;
  if (r->phase == BEFORE && r->want > 0 &&
      !strcmp(ev->type, "model_response") && r->ck.step == r->want &&
      ev->step == r->want && !r->eval_step && !evaluator)
    r->phase = IN;
  return 0;
}

int durin_replay_result(struct durin_replay *r, struct durin_checkpoint *ck,
                        struct durin_replay_result *res, struct durin_err *err)
{
  if (r->phase == BEFORE) {
    if (r->summary_step)
      return durin_err_set(err, DURIN_ESTATE,
                           "step %lld is a summary of the agent's context (a "
                           "phase's end or a context reset): fork at the "
                           "agent's step before it (%lld)",
                           (long long)r->want, (long long)r->want - 1);
    if (r->eval_step)
      return durin_err_set(err, DURIN_ESTATE,
                           "step %lld is the evaluator's: fork at a step where "
                           "the agent acted (before the evaluation began, or "
                           "after its verdict)",
                           (long long)r->want);
    if (!r->saw_start)
      return durin_err_set(err, DURIN_ENOTFOUND,
                           "the run has not started: it has no step %lld",
                           (long long)r->want);
    return durin_err_set(err, DURIN_ENOTFOUND,
                         "the run has no step %lld: its log holds steps 0 "
                         "to %lld",
                         (long long)r->want, (long long)r->steps_seen);
  }
  if (r->eval_open)
    return durin_err_set(err, DURIN_ESTATE,
                         "step %lld ends with the evaluator's review of the "
                         "agent's work under way (attempt %lld): fork at a "
                         "step before its finish, or at the agent's first "
                         "step after the verdict",
                         (long long)r->want, (long long)r->eval_open);
  memset(res, 0, sizeof(*res));
  res->through_seq = r->end_seq;
  res->through_ms = r->end_ms;
  res->ended = r->ended;
  snprintf(res->git_commit, sizeof(res->git_commit), "%s", r->ck.git_commit);
  *ck = r->ck;
  memset(&r->ck, 0, sizeof(r->ck));
  r->ck.plan = json_array();
  r->ck.rejections = json_object();
  return 0;
}
