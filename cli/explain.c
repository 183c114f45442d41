/*
 * The postmortem fold of `durin explain` (explain.h).
 *
 * One pass over the log keeps three lists: the steps (each with its model
 * tokens, dollars and time, and the plan item in progress when it began),
 * the tool calls in order (each with its normalized arguments and its
 * result), and the approvals asked for. Everything the report says is
 * computed from those lists at the end, so every figure is a sum over
 * the same steps and the tables add up to the totals:
 *
 *   a step's tokens and dollars are split evenly over the calls it made
 *   (the per-tool table), or go to "(no tool call)" when it made none;
 *   a step's time is from the end of the step before to its last event.
 *
 * A retry loop is a stretch of consecutive calls drawn from at most
 * LOOP_KEYS distinct calls (tool and normalized arguments), each of them
 * made at least twice, with at least two failures among them: the same
 * two or three commands alternating while they fail.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/util.h"
#include "explain.h"

#define LOOP_KEYS   3
#define LINE_MAX_   200
#define TAIL_LINES  5
#define LAST_ERRORS 3
#define SHOWN_MAX   120

struct call {
  size_t step; /* index in steps */
  int idx;     /* its place among the step's calls */
  char *id, *name;
  char *key;      /* name, a newline, the canonical arguments */
  json_int_t kid; /* the same number for the same key */
  char *shown;    /* what a person recognizes: bash's command, else arguments */
  int done, ok, timed_out;
  int64_t exit_code, duration_ms;
  char *output;
};

struct step {
  int64_t step;
  int64_t start_ms, end_ms;
  int64_t in, out, model_ms;
  double cost;
  int model_calls;
  int ncalls;
  size_t phase;
};

struct approval {
  char *id, *tool;
  int64_t requested_ms, ended_ms; /* ended_ms 0: still pending */
  char *state;
};

struct cli_explain {
  const struct durin_run_info *ri;
  int64_t now_ms;
  int oom;
  int64_t events, first_ms, last_ms;
  struct step *steps;
  size_t nsteps, capsteps;
  struct call *calls;
  size_t ncalls, capcalls;
  char **phases; /* plan items by first appearance; [0] before any plan */
  size_t nphases, capphases, phase;
  size_t agent_phase; /* the phase an evaluation interrupted */
  struct approval *appr;
  size_t nappr, capappr;
  json_t *keys; /* call key -> kid */
  json_t *model_errors, *checks;
  json_t *finished; /* run_finished's data */
  char *stop_type, *stop_reason;
  int64_t resumes, leases_expired, compactions;
  void *grown; /* GROW's new block, before it is the array's */
};

/* Makes room for one more element of arr (n used of cap): 0, or -1 with
 * x->oom set and arr as it was. */
#define GROW(x, arr, n, cap)                                      \
 ((n) < (cap) ? 0 :                                               \
  ((x)->grown = realloc((arr), grow_cap(cap) * sizeof(*(arr)))) ? \
                ((arr) = (x)->grown, (cap) = grow_cap(cap), 0) :  \
                ((x)->oom = 1, -1))

static size_t grow_cap(size_t cap)
{
  return cap ? cap * 2 : 16;
}

static const char *str(json_t *o, const char *k)
{
  const char *v = json_string_value(json_object_get(o, k));

  return v ? v : "";
}

static char *dup(const char *s)
{
  return strdup(s ? s : "");
}

/* A percentage of part in whole, to a tenth, in 0..100. */
static double share(double part, double whole)
{
  double p;

  if (whole <= 0 || part <= 0)
    return 0;
  p = (double)(int64_t)(part * 1000.0 / whole + 0.5) / 10.0;
  return p > 100 ? 100 : p;
}

struct cli_explain *cli_explain_new(const struct durin_run_info *ri,
                                    int64_t now_ms)
{
  struct cli_explain *x = calloc(1, sizeof(*x));

  if (!x)
    return NULL;
  x->ri = ri;
  x->now_ms = now_ms;
  x->keys = json_object();
  x->model_errors = json_array();
  x->checks = json_array();
  x->phases = calloc(16, sizeof(char *));
  x->capphases = 16;
  if (!x->keys || !x->model_errors || !x->checks || !x->phases ||
      !(x->phases[0] = strdup("before any plan"))) {
    cli_explain_free(x);
    return NULL;
  }
  x->nphases = 1;
  return x;
}

void cli_explain_free(struct cli_explain *x)
{
  size_t i;

  if (!x)
    return;
  for (i = 0; i < x->ncalls; i++) {
    struct call *c = &x->calls[i];

    free(c->id);
    free(c->name);
    free(c->key);
    free(c->shown);
    free(c->output);
  }
  for (i = 0; i < x->nphases; i++)
    free(x->phases[i]);
  for (i = 0; i < x->nappr; i++) {
    free(x->appr[i].id);
    free(x->appr[i].tool);
    free(x->appr[i].state);
  }
  free(x->calls);
  free(x->steps);
  free(x->phases);
  free(x->appr);
  json_decref(x->keys);
  json_decref(x->model_errors);
  json_decref(x->checks);
  json_decref(x->finished);
  free(x->stop_type);
  free(x->stop_reason);
  free(x);
}

/* The step an event of step number n belongs to: a new one for a higher
 * number; store and watchdog events (step 0) to the step in progress. */
static struct step *step_of(struct cli_explain *x, const struct durin_event *ev)
{
  struct step *s;

  if (x->nsteps && ev->step <= x->steps[x->nsteps - 1].step)
    return &x->steps[x->nsteps - 1];
  if (ev->step <= 0)
    return NULL;
  if (GROW(x, x->steps, x->nsteps, x->capsteps))
    return NULL;
  s = &x->steps[x->nsteps];
  memset(s, 0, sizeof(*s));
  s->step = ev->step;
  s->start_ms = x->nsteps ? x->steps[x->nsteps - 1].end_ms : x->first_ms;
  s->end_ms = ev->ts_ms;
  s->phase = x->phase;
  x->nsteps++;
  return s;
}

/* The canonical text of a call's arguments (a JSON string or object):
 * keys sorted, no whitespace, so equal calls compare equal. */
static char *canonical(json_t *args, json_t **parsed)
{
  json_t *j = json_is_string(args) ?
                  json_loads(json_string_value(args), JSON_DECODE_ANY, NULL) :
                  json_incref(args);
  char *s;

  if (!j)
    return dup(json_string_value(args));
  s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
  *parsed = j;
  return s ? s : dup("");
}

static void add_call(struct cli_explain *x, struct step *s, json_t *tc)
{
  const char *id = str(tc, "id"), *name = str(tc, "name");
  json_t *parsed = NULL;
  struct call *c;
  char *canon;
  size_t i, sidx = (size_t)(s - x->steps);

  for (i = x->ncalls; i-- > 0 && x->calls[i].step == sidx;)
    if (*id && !strcmp(x->calls[i].id, id))
      return; /* the same response again (after a resume) */
  if (GROW(x, x->calls, x->ncalls, x->capcalls))
    return;
  c = &x->calls[x->ncalls];
  memset(c, 0, sizeof(*c));
  canon = canonical(json_object_get(tc, "arguments"), &parsed);
  c->step = sidx;
  c->idx = s->ncalls;
  c->id = dup(id);
  c->name = dup(name);
  c->key = malloc(strlen(name) + strlen(canon ? canon : "") + 2);
  if (c->key)
    sprintf(c->key, "%s\n%s", name, canon ? canon : "");
  if (json_is_string(json_object_get(parsed, "command")))
    c->shown = dup(str(parsed, "command"));
  else
    c->shown = dup(canon);
  free(canon);
  json_decref(parsed);
  if (!c->id || !c->name || !c->key || !c->shown) {
    x->oom = 1;
    return;
  }
  if (!json_object_get(x->keys, c->key) &&
      json_object_set_new(
          x->keys, c->key,
          json_integer((json_int_t)json_object_size(x->keys)))) {
    x->oom = 1;
    return;
  }
  c->kid = json_integer_value(json_object_get(x->keys, c->key));
  c->exit_code = -1;
  s->ncalls++;
  x->ncalls++;
}

static void on_model(struct cli_explain *x, struct step *s, json_t *d)
{
  json_t *tc;
  size_t i;

  s->in += json_integer_value(json_object_get(d, "input_tokens"));
  s->out += json_integer_value(json_object_get(d, "output_tokens"));
  s->cost += json_number_value(json_object_get(d, "cost_usd"));
  s->model_ms += json_integer_value(json_object_get(d, "duration_ms"));
  s->model_calls++;
  json_array_foreach(json_object_get(d, "tool_calls"), i, tc)
    add_call(x, s, tc);
}

static void on_result(struct cli_explain *x, struct step *s, json_t *d)
{
  const char *id = str(d, "call_id");
  struct call *c = NULL;
  size_t i;

  for (i = x->ncalls; i-- > 0;)
    if (!strcmp(x->calls[i].id, id)) {
      c = &x->calls[i];
      break;
    }
  if (!c) {
    /* A result whose call the log does not show: count it anyway. */
    json_t *tc = json_pack("{s:s,s:s,s:s}", "id", id, "name", str(d, "name"),
                           "arguments", "{}");

    if (!s || !tc) {
      json_decref(tc);
      return;
    }
    add_call(x, s, tc);
    json_decref(tc);
    if (!x->ncalls || strcmp(x->calls[x->ncalls - 1].id, id))
      return;
    c = &x->calls[x->ncalls - 1];
  }
  free(c->output);
  c->output = dup(str(d, "output"));
  c->done = 1;
  c->ok = json_is_true(json_object_get(d, "ok"));
  c->timed_out = json_is_true(json_object_get(d, "timed_out"));
  c->exit_code = json_is_integer(json_object_get(d, "exit_code")) ?
                     json_integer_value(json_object_get(d, "exit_code")) :
                     -1;
  c->duration_ms = json_integer_value(json_object_get(d, "duration_ms"));
}

/* The phase named name (made at its first appearance) is the current one. */
static void enter_phase(struct cli_explain *x, const char *name)
{
  size_t i;

  for (i = 0; i < x->nphases; i++)
    if (!strcmp(x->phases[i], name)) {
      x->phase = i;
      return;
    }
  if (GROW(x, x->phases, x->nphases, x->capphases))
    return;
  if (!(x->phases[x->nphases] = strdup(name))) {
    x->oom = 1;
    return;
  }
  x->phase = x->nphases++;
}

static void on_plan(struct cli_explain *x, json_t *d)
{
  json_t *plan = json_object_get(d, "plan"), *it;
  const char *name = NULL;
  size_t i, done = 0;

  json_array_foreach(plan, i, it) {
    if (!strcmp(str(it, "status"), "in_progress")) {
      name = str(it, "step");
      break;
    }
    done += !strcmp(str(it, "status"), "done");
  }
  if (!name)
    name = json_array_size(plan) && done == json_array_size(plan) ?
               "after the plan was done" :
               "no plan step in progress";
  enter_phase(x, name);
}

static void on_approval(struct cli_explain *x, const char *t, json_t *d,
                        int64_t ts)
{
  const char *id = str(d, "id");
  struct approval *a;
  size_t i;

  if (!strcmp(t, "approval_requested")) {
    if (GROW(x, x->appr, x->nappr, x->capappr))
      return;
    a = &x->appr[x->nappr];
    memset(a, 0, sizeof(*a));
    a->id = dup(id);
    a->tool = dup(str(d, "tool"));
    a->state = dup("pending");
    a->requested_ms = ts;
    if (!a->id || !a->tool || !a->state) {
      x->oom = 1;
      return;
    }
    x->nappr++;
    return;
  }
  for (i = 0; i < x->nappr; i++) {
    a = &x->appr[i];
    if (strcmp(a->id, id) || a->ended_ms)
      continue;
    a->ended_ms = ts;
    free(a->state);
    a->state = dup(!strcmp(t, "approval_expired") ? "expired" :
                   *str(d, "decision")            ? str(d, "decision") :
                                                    "decided");
  }
}

/* The first line of text that names a failure (else its first line),
 * past the "exit code N" that bash puts first; a new string. */
static char *error_line(const char *text)
{
  static const char *words[] = { "err",     "fail",   "fatal",     "denied",
                                 "cannot",  "unable", "not found", "panic",
                                 "invalid", "refused" };
  const char *p = text ? text : "", *first = NULL, *pick = NULL;
  char *out;
  size_t n, i, k;

  while (*p && !pick) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    int skip = !strncmp(p, "exit code ", 10) || !strncmp(p, "timed out ", 10);

    while (len && isspace((unsigned char)p[len - 1]))
      len--;
    if (len && !skip) {
      if (!first)
        first = p;
      for (i = 0; i < sizeof(words) / sizeof(words[0]) && !pick; i++)
        for (k = 0; k + strlen(words[i]) <= len && !pick; k++)
          if (!strncasecmp(p + k, words[i], strlen(words[i])))
            pick = p;
    }
    p = nl ? nl + 1 : p + strlen(p);
  }
  if (!pick)
    pick = first ? first : "";
  n = strcspn(pick, "\n");
  while (n && isspace((unsigned char)pick[n - 1]))
    n--;
  while (n && isspace((unsigned char)*pick))
    pick++, n--;
  if (n > LINE_MAX_)
    n = LINE_MAX_;
  if (!(out = malloc(n + 1)))
    return NULL;
  memcpy(out, pick, n);
  out[n] = 0;
  durin_utf8_sanitize(out, n);
  return out;
}

static json_t *error_line_json(const char *text)
{
  char *l = error_line(text);
  json_t *j = json_string(l ? l : "");

  free(l);
  return j ? j : json_null();
}

/* The last TAIL_LINES non-empty lines of text. */
static json_t *tail_json(const char *text)
{
  const char *p, *end;
  int lines = 0;
  char *s;
  json_t *j;

  if (!text)
    text = "";
  p = end = text + strlen(text);
  while (p > text && lines < TAIL_LINES) {
    p--;
    if (*p == '\n' && p + 1 < end && p[1] != '\n')
      lines++;
  }
  if (lines == TAIL_LINES || *p == '\n')
    p++;
  if (end - p > 1000)
    p = end - 1000;
  if (!(s = strdup(p)))
    return json_null();
  durin_utf8_sanitize(s, strlen(s));
  j = json_string(s);
  free(s);
  return j ? j : json_null();
}

static json_t *shown_json(const char *s)
{
  char b[SHOWN_MAX + 4];
  size_t n = strlen(s);

  if (n <= SHOWN_MAX)
    return json_string(s);
  n = SHOWN_MAX;
  while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
    n--;
  memcpy(b, s, n);
  memcpy(b + n, "...", 4);
  return json_string(b);
}

static void on_checks(struct cli_explain *x, json_t *d, int64_t step)
{
  json_t *failed = json_array(), *r, *o;
  size_t i;

  json_array_foreach(json_object_get(d, "results"), i, r) {
    if (json_is_true(json_object_get(r, "ok")))
      continue;
    json_array_append_new(
        failed,
        json_pack("{s:s,s:I,s:b,s:o}", "name", str(r, "name"), "exit_code",
                  json_integer_value(json_object_get(r, "exit_code")),
                  "timed_out", json_is_true(json_object_get(r, "timed_out")),
                  "line", error_line_json(str(r, "output"))));
  }
  o = json_pack("{s:I,s:I,s:b,s:o}", "attempt",
                json_integer_value(json_object_get(d, "attempt")), "step",
                (json_int_t)step, "passed",
                json_is_true(json_object_get(d, "passed")), "failed", failed);
  if (!o || json_array_append_new(x->checks, o))
    x->oom = 1;
}

static void set_stop(struct cli_explain *x, const char *type, json_t *d)
{
  free(x->stop_type);
  free(x->stop_reason);
  x->stop_type = dup(type);
  x->stop_reason = dup(str(d, "reason"));
}

int cli_explain_event(const struct durin_event *ev, void *fold)
{
  struct cli_explain *x = fold;
  const char *t = ev->type;
  struct step *s;
  json_t *d;

  if (!x->events++)
    x->first_ms = ev->ts_ms;
  x->last_ms = ev->ts_ms;
  s = step_of(x, ev);
  if (s)
    s->end_ms = ev->ts_ms;
  d = json_loads(ev->data ? ev->data : "{}", 0, NULL);
  if (!d)
    return 0;
  if (!strcmp(t, "model_response") && s)
    on_model(x, s, d);
  else if (!strcmp(t, "tool_result"))
    on_result(x, s, d);
  else if (!strcmp(t, "plan_updated"))
    on_plan(x, d);
  else if (!strcmp(t, "evaluation_started")) {
    /* The evaluator's steps are a phase of their own; the agent's plan
     * step goes on after its verdict. */
    x->agent_phase = x->phase;
    enter_phase(x, "evaluation");
  } else if (!strcmp(t, "verdict"))
    x->phase = x->agent_phase;
  else if (!strncmp(t, "approval_", 9))
    on_approval(x, t, d, ev->ts_ms);
  else if (!strcmp(t, "checks"))
    on_checks(x, d, s ? s->step : 0);
  else if (!strcmp(t, "model_error"))
    json_array_append_new(x->model_errors,
                          json_pack("{s:I,s:s}", "step",
                                    (json_int_t)(s ? s->step : 0), "error",
                                    str(d, "error")));
  else if (!strcmp(t, "needs_human") || !strcmp(t, "budget_exceeded") ||
           !strcmp(t, "cancelled"))
    set_stop(x, t, d);
  else if (!strcmp(t, "run_finished")) {
    json_decref(x->finished);
    x->finished = json_incref(d);
  } else if (!strcmp(t, "resumed"))
    x->resumes++;
  else if (!strcmp(t, "lease_expired"))
    x->leases_expired++;
  else if (!strcmp(t, "compaction"))
    x->compactions++;
  json_decref(d);
  return 0;
}

/*
 * The report.
 */

/* A step's tokens and dollars that call c carries (an even split). */
static int64_t call_tokens(const struct cli_explain *x, const struct call *c)
{
  const struct step *s = &x->steps[c->step];
  int64_t t = s->in + s->out;

  return t / s->ncalls + (c->idx < t % s->ncalls ? 1 : 0);
}

static double call_cost(const struct cli_explain *x, const struct call *c)
{
  const struct step *s = &x->steps[c->step];

  return s->cost / s->ncalls;
}

struct totals {
  int64_t in, out, tokens, model_ms, tools_ms, wait_ms, wall_ms;
  double cost;
  int64_t model_calls, failed;
};

static int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

  return x < y ? -1 : x > y;
}

static int by_tokens(const void *a, const void *b)
{
  json_int_t x = json_integer_value(
                 json_object_get(*(json_t *const *)a, "tokens")),
             y = json_integer_value(
                 json_object_get(*(json_t *const *)b, "tokens"));

  return x > y ? -1 : x < y;
}

/* The per-tool table, most tokens first. */
static json_t *tools_json(struct cli_explain *x, const struct totals *tt)
{
  json_t *rows = json_object(), *arr = json_array(), *r, **v;
  int64_t *durs = malloc((x->ncalls + 1) * sizeof(int64_t));
  int64_t none_tokens = 0;
  double none_cost = 0;
  const char *name;
  size_t i, j, n;

  if (!rows || !arr || !durs)
    goto out;
  for (i = 0; i < x->ncalls; i++) {
    struct call *c = &x->calls[i];

    r = json_object_get(rows, c->name);
    if (!r) {
      r = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:f}", "name", c->name,
                    "calls", 0, "failed", 0, "duration_ms", 0, "p50_ms", 0,
                    "max_ms", 0, "tokens", 0, "cost_usd", 0.0);
      json_object_set_new(rows, c->name, r);
    }
#define ADD(k, n)     \
 json_object_set_new( \
     r, k, json_integer(json_integer_value(json_object_get(r, k)) + (n)))
    ADD("calls", 1);
    ADD("failed", c->done && !c->ok);
    ADD("duration_ms", c->duration_ms);
    ADD("tokens", call_tokens(x, c));
#undef ADD
    json_object_set_new(
        r, "cost_usd",
        json_real(json_real_value(json_object_get(r, "cost_usd")) +
                  call_cost(x, c)));
  }
  for (i = 0; i < x->nsteps; i++)
    if (!x->steps[i].ncalls) {
      none_tokens += x->steps[i].in + x->steps[i].out;
      none_cost += x->steps[i].cost;
    }
  json_object_foreach(rows, name, r) {
    for (i = 0, n = 0; i < x->ncalls; i++)
      if (!strcmp(x->calls[i].name, name) && x->calls[i].done)
        durs[n++] = x->calls[i].duration_ms;
    qsort(durs, n, sizeof(int64_t), cmp_i64);
    json_object_set_new(r, "p50_ms", json_integer(n ? durs[(n - 1) / 2] : 0));
    json_object_set_new(r, "max_ms", json_integer(n ? durs[n - 1] : 0));
    json_array_append(arr, r);
  }
  if (none_tokens || none_cost > 0)
    json_array_append_new(
        arr, json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:f}", "name",
                       "(no tool call)", "calls", 0, "failed", 0, "duration_ms",
                       0, "p50_ms", 0, "max_ms", 0, "tokens",
                       (json_int_t)none_tokens, "cost_usd", none_cost));
  n = json_array_size(arr);
  if (!(v = malloc((n + 1) * sizeof(*v))))
    goto out;
  for (i = 0; i < n; i++)
    v[i] = json_incref(json_array_get(arr, i));
  qsort(v, n, sizeof(*v), by_tokens);
  json_array_clear(arr);
  for (j = 0; j < n; j++) {
    json_object_set_new(v[j], "token_share",
                        json_real(share((double)json_integer_value(
                                            json_object_get(v[j], "tokens")),
                                        (double)tt->tokens)));
    json_object_set_new(
        v[j], "cost_share",
        json_real(share(json_real_value(json_object_get(v[j], "cost_usd")),
                        tt->cost)));
    json_array_append_new(arr, v[j]);
  }
  free(v);
out:
  free(durs);
  json_decref(rows);
  return arr ? arr : json_array();
}

static json_t *phases_json(struct cli_explain *x, const struct totals *tt)
{
  json_t *arr = json_array();
  size_t p, i;

  for (p = 0; p < x->nphases; p++) {
    int64_t n = 0, first = 0, last = 0, tokens = 0, ms = 0;
    double cost = 0;

    for (i = 0; i < x->nsteps; i++) {
      const struct step *s = &x->steps[i];

      if (s->phase != p)
        continue;
      if (!n++)
        first = s->step;
      last = s->step;
      tokens += s->in + s->out;
      cost += s->cost;
      ms += s->end_ms - s->start_ms;
    }
    if (!n)
      continue;
    json_array_append_new(
        arr,
        json_pack("{s:s,s:I,s:I,s:I,s:I,s:f,s:I,s:f,s:f}", "name", x->phases[p],
                  "steps", (json_int_t)n, "first_step", (json_int_t)first,
                  "last_step", (json_int_t)last, "tokens", (json_int_t)tokens,
                  "cost_usd", cost, "duration_ms", (json_int_t)ms,
                  "token_share", share((double)tokens, (double)tt->tokens),
                  "cost_share", share(cost, tt->cost)));
  }
  return arr;
}

static int failed(const struct call *c)
{
  return c->done && !c->ok;
}

static json_t *call_json(const struct cli_explain *x, const struct call *c)
{
  return json_pack("{s:I,s:s,s:o,s:I,s:b,s:o}", "step",
                   (json_int_t)x->steps[c->step].step, "tool", c->name,
                   "command", shown_json(c->shown), "exit_code",
                   (json_int_t)c->exit_code, "timed_out", c->timed_out, "error",
                   error_line_json(c->output));
}

/* The same call (tool and normalized arguments) failing twice or more. */
static json_t *repeated_json(struct cli_explain *x)
{
  json_t *arr = json_array();
  char *seen = calloc(x->ncalls + 1, 1);
  size_t i, j;

  if (!seen)
    return arr;
  for (i = 0; i < x->ncalls; i++) {
    size_t n = 1, last = i;
    json_t *o;

    if (seen[i] || !failed(&x->calls[i]))
      continue;
    for (j = i + 1; j < x->ncalls; j++)
      if (!seen[j] && failed(&x->calls[j]) &&
          x->calls[i].kid == x->calls[j].kid) {
        seen[j] = 1;
        n++;
        last = j;
      }
    if (n < 2)
      continue;
    o = call_json(x, &x->calls[i]);
    json_object_set_new(o, "failures", json_integer((json_int_t)n));
    json_object_set_new(o, "first_step",
                        json_integer(x->steps[x->calls[i].step].step));
    json_object_set_new(o, "last_step",
                        json_integer(x->steps[x->calls[last].step].step));
    json_object_del(o, "step");
    json_array_append_new(arr, o);
  }
  free(seen);
  return arr;
}

/* The calls a loop is made of: every one but plan bookkeeping. */
static int loop_part(const struct call *c)
{
  return strcmp(c->name, "update_plan") != 0;
}

/* How many of seq[i..j] have seq[k]'s key. */
static size_t key_count(struct cli_explain *x, const size_t *seq, size_t i,
                        size_t j, size_t k)
{
  size_t n = 0;

  for (; i <= j; i++)
    n += x->calls[seq[i]].kid == x->calls[seq[k]].kid;
  return n;
}

static size_t distinct(struct cli_explain *x, const size_t *seq, size_t i,
                       size_t j, size_t *firsts)
{
  size_t n = 0, a, b;

  for (a = i; a <= j; a++) {
    for (b = 0; b < n; b++)
      if (x->calls[seq[a]].kid == x->calls[seq[firsts[b]]].kid)
        break;
    if (b == n) {
      if (n == LOOP_KEYS)
        return LOOP_KEYS + 1;
      firsts[n++] = a;
    }
  }
  return n;
}

static json_t *loop_json(struct cli_explain *x, const struct totals *tt,
                         const size_t *seq, size_t i, size_t j,
                         size_t from_call)
{
  size_t firsts[LOOP_KEYS + 1], nk = distinct(x, seq, i, j, firsts), k, nf = 0;
  int64_t s0 = x->steps[x->calls[seq[i]].step].step;
  int64_t s1 = x->steps[x->calls[seq[j]].step].step, tokens = 0, nsteps = 0;
  double cost = 0;
  json_t *cmds = json_array(), *o, *first = json_null();

  for (k = 0; k < x->nsteps; k++)
    if (x->steps[k].step >= s0 && x->steps[k].step <= s1) {
      nsteps++;
      tokens += x->steps[k].in + x->steps[k].out;
      cost += x->steps[k].cost;
    }
  for (k = i; k <= j; k++)
    nf += failed(&x->calls[seq[k]]);
  for (k = 0; k < nk; k++)
    json_array_append_new(cmds, shown_json(x->calls[seq[firsts[k]]].shown));
  /* What failed first: the run's first failure since the last loop. */
  for (k = from_call; k <= seq[j]; k++)
    if (failed(&x->calls[k])) {
      first = call_json(x, &x->calls[k]);
      break;
    }
  o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:I,s:f,s:f,s:f,s:o}",
                "first_step", (json_int_t)s0, "last_step", (json_int_t)s1,
                "steps", (json_int_t)nsteps, "distinct_calls", (json_int_t)nk,
                "calls", (json_int_t)(j - i + 1), "failed", (json_int_t)nf,
                "commands", cmds, "tokens", (json_int_t)tokens, "cost_usd",
                cost, "token_share", share((double)tokens, (double)tt->tokens),
                "cost_share", share(cost, tt->cost), "first_failure", first);
  return o;
}

static json_t *loops_json(struct cli_explain *x, const struct totals *tt)
{
  json_t *arr = json_array();
  size_t *seq = malloc((x->ncalls + 1) * sizeof(size_t));
  size_t n = 0, i, j, k, nf, from_call = 0;
  size_t firsts[LOOP_KEYS + 1];

  if (!seq)
    return arr;
  for (i = 0; i < x->ncalls; i++)
    if (loop_part(&x->calls[i]))
      seq[n++] = i;
  for (i = 0; i + 1 < n;) {
    json_int_t kids[LOOP_KEYS];
    size_t nk = 0, b;

    /* The longest stretch from i of at most LOOP_KEYS distinct calls, */
    for (j = i; j < n; j++) {
      for (b = 0; b < nk && kids[b] != x->calls[seq[j]].kid; b++)
        ;
      if (b == nk && nk == LOOP_KEYS)
        break;
      if (b == nk)
        kids[nk++] = x->calls[seq[j]].kid;
    }
    j--;
    /* less a tail of calls made once in it. */
    while (j > i && key_count(x, seq, i, j, j) == 1)
      j--;
    nk = distinct(x, seq, i, j, firsts);
    for (k = i, nf = 0; k <= j; k++)
      nf += failed(&x->calls[seq[k]]);
    if (j - i + 1 >= 4 && j - i + 1 >= 2 * nk && nf >= 2 &&
        key_count(x, seq, i, j, i) >= 2) {
      json_array_append_new(arr, loop_json(x, tt, seq, i, j, from_call));
      from_call = seq[j] + 1;
      i = j + 1;
    } else {
      i++;
    }
  }
  free(seq);
  return arr;
}

/* The call made most often with the same arguments (3 times or more),
 * failing or not: a run stuck calling list_files shows here. */
static json_t *most_repeated_json(struct cli_explain *x,
                                  const struct totals *tt)
{
  size_t nk = json_object_size(x->keys), i, best = 0, first = 0, last = 0;
  int64_t *count = calloc(nk + 1, sizeof(int64_t)), tokens = 0, seen = 0;
  double cost = 0;
  json_t *o;

  if (!count)
    return json_null();
  for (i = 0; i < x->ncalls; i++)
    count[x->calls[i].kid]++;
  for (i = 1; i < nk; i++)
    if (count[i] > count[best])
      best = i;
  if (!nk || count[best] < 3) {
    free(count);
    return json_null();
  }
  for (i = 0; i < x->ncalls; i++) {
    if (x->calls[i].kid != (json_int_t)best)
      continue;
    if (!seen++)
      first = i;
    last = i;
    tokens += call_tokens(x, &x->calls[i]);
    cost += call_cost(x, &x->calls[i]);
  }
  o = json_pack("{s:s,s:o,s:I,s:I,s:I,s:I,s:f,s:f,s:f}", "tool",
                x->calls[first].name, "command",
                shown_json(x->calls[first].shown), "calls",
                (json_int_t)count[best], "first_step",
                (json_int_t)x->steps[x->calls[first].step].step, "last_step",
                (json_int_t)x->steps[x->calls[last].step].step, "tokens",
                (json_int_t)tokens, "cost_usd", cost, "token_share",
                share((double)tokens, (double)tt->tokens), "cost_share",
                share(cost, tt->cost));
  free(count);
  return o ? o : json_null();
}

static json_t *last_errors_json(struct cli_explain *x)
{
  json_t *arr = json_array(), *o;
  size_t i, n = 0;

  for (i = x->ncalls; i-- > 0 && n < LAST_ERRORS;) {
    if (!failed(&x->calls[i]))
      continue;
    o = call_json(x, &x->calls[i]);
    json_object_set_new(o, "tail", tail_json(x->calls[i].output));
    json_array_insert_new(arr, 0, o);
    n++;
  }
  return arr;
}

static json_t *approvals_json(struct cli_explain *x, struct totals *tt,
                              int waiting)
{
  json_t *arr = json_array();
  size_t i;

  for (i = 0; i < x->nappr; i++) {
    struct approval *a = &x->appr[i];
    int64_t end = a->ended_ms ? a->ended_ms : waiting ? x->now_ms : 0;
    int64_t w = end > a->requested_ms ? end - a->requested_ms : 0;

    tt->wait_ms += w;
    json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:I}", "id", a->id,
                                         "tool", a->tool, "state", a->state,
                                         "wait_ms", (json_int_t)w));
  }
  return arr;
}

/* A call as the headline names it: bash's command in backquotes, another
 * tool by its name and arguments. */
static void fmt_cmd(char *out, size_t n, json_t *call)
{
  const char *c = str(call, "command");

  if (!strcmp(str(call, "tool"), "bash") || !*c)
    snprintf(out, n, "`%s`", *c ? c : str(call, "tool"));
  else
    snprintf(out, n, "%s `%s`", str(call, "tool"), c);
}

/* The paragraph on top: the outcome, then the biggest story. */
static char *headline(json_t *rep)
{
  json_t *out = json_object_get(rep, "outcome"),
         *tot = json_object_get(rep, "totals"), *loops, *big = NULL, *l, *mr;
  const char *status = str(out, "status"), *reason = str(out, "reason");
  char b[2048], cmd[256], dur[32], words[64];
  size_t i, n = 0;
  int told;
  double tokens = (double)json_integer_value(json_object_get(tot, "tokens"));

#define PUT(...)                                             \
 do {                                                        \
  if (n < sizeof(b))                                         \
   n += (size_t)snprintf(b + n, sizeof(b) - n, __VA_ARGS__); \
 } while (0)
  snprintf(words, sizeof(words), "%s", status);
  for (i = 0; words[i]; i++)
    if (words[i] == '_')
      words[i] = ' ';
  durin_fmt_duration(json_integer_value(json_object_get(tot, "wall_ms")), dur,
                     sizeof(dur));
  PUT("%s%s%s.", words, *reason ? ": " : "", reason);
  PUT(" %lld step%s, %lld tokens, $%.4f, %s.",
      (long long)json_integer_value(json_object_get(tot, "steps")),
      json_integer_value(json_object_get(tot, "steps")) == 1 ? "" : "s",
      (long long)json_integer_value(json_object_get(tot, "tokens")),
      json_real_value(json_object_get(tot, "cost_usd")), dur);
  loops = json_object_get(rep, "loops");
  json_array_foreach(loops, i, l)
    if (!big || json_integer_value(json_object_get(l, "tokens")) >
                    json_integer_value(json_object_get(big, "tokens")))
      big = l;
  told = big || json_array_size(json_object_get(rep, "repeated_failures"));
  if (big) {
    json_t *ff = json_object_get(big, "first_failure");

    PUT(" Spent %g%% of its tokens (%lld of %.0f) and %g%% of its dollars in "
        "a %lld-command retry loop (steps %lld-%lld, %lld calls, %lld failed)",
        json_real_value(json_object_get(big, "token_share")),
        (long long)json_integer_value(json_object_get(big, "tokens")), tokens,
        json_real_value(json_object_get(big, "cost_share")),
        (long long)json_integer_value(json_object_get(big, "distinct_calls")),
        (long long)json_integer_value(json_object_get(big, "first_step")),
        (long long)json_integer_value(json_object_get(big, "last_step")),
        (long long)json_integer_value(json_object_get(big, "calls")),
        (long long)json_integer_value(json_object_get(big, "failed")));
    if (json_is_object(ff)) {
      fmt_cmd(cmd, sizeof(cmd), ff);
      PUT(" after %s failed (step %lld)", cmd,
          (long long)json_integer_value(json_object_get(ff, "step")));
      if (*str(ff, "error"))
        PUT(" with '%s'", str(ff, "error"));
    }
    PUT(".");
  } else if (json_array_size(json_object_get(rep, "repeated_failures"))) {
    json_t *r = json_array_get(json_object_get(rep, "repeated_failures"), 0);

    fmt_cmd(cmd, sizeof(cmd), r);
    PUT(" %s failed %lld times with the same arguments (steps %lld-%lld)", cmd,
        (long long)json_integer_value(json_object_get(r, "failures")),
        (long long)json_integer_value(json_object_get(r, "first_step")),
        (long long)json_integer_value(json_object_get(r, "last_step")));
    if (*str(r, "error"))
      PUT(": '%s'", str(r, "error"));
    PUT(".");
  } else if (json_is_object(mr = json_object_get(rep, "most_repeated")) &&
             json_real_value(json_object_get(mr, "token_share")) >= 50) {
    fmt_cmd(cmd, sizeof(cmd), mr);
    told = 1;
    PUT(" It made the same call, %s, %lld times (steps %lld-%lld): %g%% of "
        "its tokens.",
        cmd, (long long)json_integer_value(json_object_get(mr, "calls")),
        (long long)json_integer_value(json_object_get(mr, "first_step")),
        (long long)json_integer_value(json_object_get(mr, "last_step")),
        json_real_value(json_object_get(mr, "token_share")));
  }
  {
    json_t *ck = json_object_get(rep, "checks");
    json_t *last = json_array_get(ck, json_array_size(ck) - 1);
    json_t *f = json_array_get(json_object_get(last, "failed"), 0);

    if (last && !json_is_true(json_object_get(last, "passed")) && f) {
      told = 1;
      PUT(" Its checks failed on attempt %lld: '%s'",
          (long long)json_integer_value(json_object_get(last, "attempt")),
          str(f, "name"));
      if (*str(f, "line"))
        PUT(" said '%s'", str(f, "line"));
      PUT(".");
    }
  }
  if (!told && strcmp(status, "succeeded")) {
    json_t *le = json_object_get(rep, "last_errors");
    json_t *e = json_array_get(le, json_array_size(le) - 1);

    if (e) {
      fmt_cmd(cmd, sizeof(cmd), e);
      PUT(" The last failed call was %s at step %lld", cmd,
          (long long)json_integer_value(json_object_get(e, "step")));
      if (*str(e, "error"))
        PUT(": '%s'", str(e, "error"));
      PUT(".");
      told = 1;
    }
  }
  if (!told && json_array_size(json_object_get(rep, "phases")) > 1) {
    json_t *ph = json_object_get(rep, "phases"), *p, *top = NULL;

    json_array_foreach(ph, i, p)
      if (!top || json_integer_value(json_object_get(p, "tokens")) >
                      json_integer_value(json_object_get(top, "tokens")))
        top = p;
    PUT(" Most of its tokens went to '%s' (%g%%, steps %lld-%lld).",
        str(top, "name"), json_real_value(json_object_get(top, "token_share")),
        (long long)json_integer_value(json_object_get(top, "first_step")),
        (long long)json_integer_value(json_object_get(top, "last_step")));
  }
  if (json_integer_value(json_object_get(tot, "waiting_human_ms")) > 0) {
    durin_fmt_duration(
        json_integer_value(json_object_get(tot, "waiting_human_ms")), dur,
        sizeof(dur));
    PUT(" It waited %s for a person to decide on %zu approval%s.", dur,
        json_array_size(json_object_get(rep, "approvals")),
        json_array_size(json_object_get(rep, "approvals")) == 1 ? "" : "s");
  }
#undef PUT
  return strdup(b);
}

json_t *cli_explain_report(struct cli_explain *x)
{
  const struct durin_run_info *ri = x->ri;
  struct totals tt;
  json_t *rep, *outcome, *tools, *approvals;
  int waiting = ri->status == DURIN_RUN_WAITING_APPROVAL;
  int64_t end = x->last_ms, other;
  size_t i;
  char *h;
  const char *reason = ri->reason ? ri->reason : "", *stopped_by = NULL;

  if (x->oom)
    return NULL;
  memset(&tt, 0, sizeof(tt));
  for (i = 0; i < x->nsteps; i++) {
    tt.in += x->steps[i].in;
    tt.out += x->steps[i].out;
    tt.cost += x->steps[i].cost;
    tt.model_ms += x->steps[i].model_ms;
    tt.model_calls += x->steps[i].model_calls;
  }
  tt.tokens = tt.in + tt.out;
  for (i = 0; i < x->ncalls; i++) {
    tt.tools_ms += x->calls[i].duration_ms;
    tt.failed += failed(&x->calls[i]);
  }
  approvals = approvals_json(x, &tt, waiting);
  if (waiting && x->now_ms > end)
    end = x->now_ms;
  tt.wall_ms = x->events ? end - x->first_ms : 0;
  other = tt.wall_ms - tt.model_ms - tt.tools_ms - tt.wait_ms;
  if (x->finished) {
    stopped_by = "run_finished";
    if (*str(x->finished, "reason"))
      reason = str(x->finished, "reason");
  }
  if (x->stop_type) {
    stopped_by = x->stop_type;
    if (*x->stop_reason)
      reason = x->stop_reason;
  }
  outcome = json_pack(
      "{s:s,s:s,s:s?,s:O?}", "status", durin_run_status_name(ri->status),
      "reason", reason, "stopped_by", stopped_by, "summary",
      x->finished && json_is_string(json_object_get(x->finished, "summary")) ?
          json_object_get(x->finished, "summary") :
          NULL);
  tools = tools_json(x, &tt);
  rep = json_pack(
      "{s:s,s:s,s:s,s:s,s:I,s:o,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:I,s:I,"
      "s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I},s:o,s:o,s:o,s:o,s:O,s:O,s:o}",
      "run", ri->id, "name", ri->name ? ri->name : "", "status",
      durin_run_status_name(ri->status), "reason", reason, "events",
      (json_int_t)x->events, "outcome", outcome, "totals", "steps",
      (json_int_t)x->nsteps, "model_calls", (json_int_t)tt.model_calls,
      "tool_calls", (json_int_t)x->ncalls, "failed_calls",
      (json_int_t)tt.failed, "input_tokens", (json_int_t)tt.in, "output_tokens",
      (json_int_t)tt.out, "tokens", (json_int_t)tt.tokens, "cost_usd", tt.cost,
      "wall_ms", (json_int_t)tt.wall_ms, "model_ms", (json_int_t)tt.model_ms,
      "tools_ms", (json_int_t)tt.tools_ms, "waiting_human_ms",
      (json_int_t)tt.wait_ms, "other_ms", (json_int_t)(other > 0 ? other : 0),
      "attempts", (json_int_t)ri->attempt, "recoveries",
      (json_int_t)ri->recoveries, "resumes", (json_int_t)x->resumes,
      "leases_expired", (json_int_t)x->leases_expired, "compactions",
      (json_int_t)x->compactions, "tools", tools, "phases", phases_json(x, &tt),
      "repeated_failures", repeated_json(x), "loops", loops_json(x, &tt),
      "model_errors", x->model_errors, "checks", x->checks, "approvals",
      approvals);
  if (!rep)
    return NULL;
  json_object_set_new(rep, "last_errors", last_errors_json(x));
  json_object_set_new(rep, "most_repeated", most_repeated_json(x, &tt));
  h = headline(rep);
  json_object_set_new(rep, "headline", json_string(h ? h : ""));
  free(h);
  return rep;
}

int cli_explain_run(struct durin_store *st, const char *id, int64_t now_ms,
                    json_t **out, struct durin_err *err)
{
  struct durin_run_info ri;
  struct cli_explain *x = NULL;
  json_t *rep = NULL;
  int r;

  *out = NULL;
  if ((r = durin_store_run_get(st, id, &ri, err)))
    return r;
  if (!(x = cli_explain_new(&ri, now_ms))) {
    r = durin_err_set(err, DURIN_ENOMEM, "out of memory");
    goto out;
  }
  if ((r = durin_store_events_read(st, id, 1, 0, cli_explain_event, x, err)))
    goto out;
  if (!(rep = cli_explain_report(x))) {
    r = durin_err_set(err, DURIN_ENOMEM, "out of memory");
    goto out;
  }
  *out = rep;
out:
  cli_explain_free(x);
  durin_run_info_clear(&ri);
  return r;
}
