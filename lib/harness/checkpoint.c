/*
 * The checkpoint: the small resumable state of a run after each committed
 * step (DESIGN 3.4). It refers to the log (window_start) instead of copying
 * the conversation, so its size does not grow with the number of steps.
 */
#include <stdlib.h>
#include <string.h>

#include "durin/harness.h"

/*
 * The same, with the handoff given as its JSON text (NULL: none): it only
 * changes at a compaction, so the harness serializes it then, not at every
 * step. The text is spliced in as the last member.
 */
char *durin_checkpoint_dump_with(const struct durin_checkpoint *c,
                                 const char *handoff_text)
{
  struct durin_checkpoint bare = *c;
  char *s, *out;
  size_t n;

  bare.handoff = NULL;
  s = durin_checkpoint_dump(&bare);
  if (!s || !handoff_text)
    return s;
  n = strlen(s); /* "{...}" */
  if (asprintf(&out, "%.*s,\"handoff\":%s}", (int)(n - 1), s, handoff_text) < 0)
    out = NULL;
  free(s);
  return out;
}

static json_t *usage_json(const struct durin_usage *u)
{
  return json_pack(
      "{s:I,s:I,s:I,s:I,s:I,s:I,s:f}", "steps", (json_int_t)u->steps,
      "input_tokens", (json_int_t)u->input_tokens, "output_tokens",
      (json_int_t)u->output_tokens, "model_calls", (json_int_t)u->model_calls,
      "tool_calls", (json_int_t)u->tool_calls, "retries",
      (json_int_t)u->retries, "cost_usd", u->cost_usd);
}

static int usage_parse(json_t *u, struct durin_usage *out, json_error_t *je)
{
  json_int_t s1, s2, s3, s4, s5, s6;
  double cost;

  if (json_unpack_ex(u, je, 0, "{s:I,s:I,s:I,s:I,s:I,s:I,s:F}", "steps", &s1,
                     "input_tokens", &s2, "output_tokens", &s3, "model_calls",
                     &s4, "tool_calls", &s5, "retries", &s6, "cost_usd", &cost))
    return -1;
  out->steps = s1;
  out->input_tokens = s2;
  out->output_tokens = s3;
  out->model_calls = s4;
  out->tool_calls = s5;
  out->retries = s6;
  out->cost_usd = cost;
  return 0;
}

char *durin_checkpoint_dump(const struct durin_checkpoint *c)
{
  const struct durin_usage *u = &c->usage;
  json_t *j;
  char *s;

  j = json_pack("{s:i,s:I,s:I,s:I,s:I,s:I}", "v", 1, "step",
                (json_int_t)c->step, "turn", (json_int_t)c->turn,
                "window_start", (json_int_t)c->window_start, "started_ms",
                (json_int_t)c->started_ms, "eval_attempts",
                (json_int_t)c->eval_attempts);
  json_object_set_new(j, "usage", usage_json(u));
  json_object_set_new(j, "plan", c->plan ? json_incref(c->plan) : json_array());
  if (c->summary)
    json_object_set_new(j, "summary", json_string(c->summary));
  if (json_object_size(c->rejections))
    json_object_set(j, "rejections", c->rejections);
  if (c->eval)
    json_object_set(j, "eval", c->eval);
  if (c->eval_usage.model_calls || c->eval_usage.steps)
    json_object_set_new(j, "eval_usage", usage_json(&c->eval_usage));
  if (c->handoff)
    json_object_set(j, "handoff", c->handoff);
  if (c->git_commit[0])
    json_object_set_new(j, "git_commit", json_string(c->git_commit));
  if (c->phase)
    json_object_set(j, "phase", c->phase);
  if (c->artifacts)
    json_object_set(j, "artifacts", c->artifacts);
  if (c->reset)
    json_object_set(j, "reset", c->reset);
  if (c->guard)
    json_object_set(j, "guard", c->guard);
  if (c->density[1] > 0)
    json_object_set_new(j, "density",
                        json_pack("[I,I]", (json_int_t)c->density[0],
                                  (json_int_t)c->density[1]));
  s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  return s;
}

int durin_checkpoint_parse(const char *text, struct durin_checkpoint *c,
                           struct durin_err *err)
{
  json_t *j, *u, *plan, *rej = NULL, *handoff = NULL, *ev = NULL, *eu = NULL;
  json_t *phase = NULL, *arts = NULL, *reset = NULL, *guard = NULL;
  json_error_t je;
  const char *summary = NULL, *git = NULL;
  json_int_t v = 0, step, turn, ws, st, ea;

  memset(c, 0, sizeof(*c));
  j = json_loads(text, 0, &je);
  if (!j)
    return durin_err_set(err, DURIN_EPARSE, "checkpoint is not JSON: %s",
                         je.text);
  if (json_unpack_ex(
          j, &je, 0,
          "{s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o,s?s,s?o,s?o,s?o,s?o,s?s,s?o,s?o,s?o,"
          "s?o}",
          "v", &v, "step", &step, "turn", &turn, "window_start", &ws,
          "started_ms", &st, "eval_attempts", &ea, "usage", &u, "plan", &plan,
          "summary", &summary, "rejections", &rej, "handoff", &handoff, "eval",
          &ev, "eval_usage", &eu, "git_commit", &git, "phase", &phase,
          "artifacts", &arts, "reset", &reset, "guard", &guard) ||
      usage_parse(u, &c->usage, &je) ||
      (eu && usage_parse(eu, &c->eval_usage, &je)) || v != 1 ||
      !json_is_array(plan) || (rej && !json_is_object(rej)) ||
      (handoff && !json_is_object(handoff)) || (ev && !json_is_object(ev)) ||
      (git && strlen(git) >= sizeof(c->git_commit)) ||
      (phase && !json_is_object(phase)) || (arts && !json_is_array(arts)) ||
      (reset && !json_is_object(reset)) || (guard && !json_is_object(guard))) {
    json_decref(j);
    return durin_err_set(err, DURIN_EPARSE, "checkpoint is malformed: %s",
                         je.text);
  }
  c->step = step;
  c->turn = turn;
  c->window_start = ws;
  c->started_ms = st;
  c->eval_attempts = ea;
  c->plan = json_incref(plan);
  c->summary = summary ? strdup(summary) : NULL;
  c->rejections = rej ? json_incref(rej) : json_object();
  c->handoff = handoff ? json_incref(handoff) : NULL;
  c->eval = ev ? json_incref(ev) : NULL;
  if (git)
    snprintf(c->git_commit, sizeof(c->git_commit), "%s", git);
  c->phase = phase ? json_incref(phase) : NULL;
  c->artifacts = arts ? json_incref(arts) : NULL;
  c->reset = reset ? json_incref(reset) : NULL;
  c->guard = guard ? json_incref(guard) : NULL;
  {
    json_t *d = json_object_get(j, "density");

    c->density[0] = json_integer_value(json_array_get(d, 0));
    c->density[1] = json_integer_value(json_array_get(d, 1));
  }
  json_decref(j);
  return 0;
}

void durin_checkpoint_clear(struct durin_checkpoint *c)
{
  json_decref(c->plan);
  json_decref(c->rejections);
  json_decref(c->handoff);
  json_decref(c->eval);
  json_decref(c->phase);
  json_decref(c->artifacts);
  json_decref(c->reset);
  json_decref(c->guard);
  free(c->summary);
  memset(c, 0, sizeof(*c));
}
