/*
 * GET /v1/runs/{id}/timeline: the run's log folded into one row per step,
 * so a long run reads at a glance (the dashboard's timeline and chart) in
 * one request of a few hundred bytes per step instead of the whole log.
 *
 * A step is the events that carry its number: its model response, each
 * call's policy decision, approval and result, and marks for everything
 * else (plan updates, checks, compactions, resumes, control events, the
 * run's end). The store writes control and watchdog events with step 0;
 * past the first step those belong to the step in progress when they came,
 * so a group starts only at a higher step number, and the log's order (seq)
 * is the truth. Pages hold whole steps. See docs/internals/dashboard.md for
 * the shape.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/util.h"
#include "server/server.h"

#define DEFAULT_STEPS 2000
#define MAX_STEPS     5000
/* Events read per round trip to the store. */
#define BATCH 2000
/* Bytes of text kept (cut at a character): the model's words, a call's output.
 */
#define TEXT_MAX   300
#define OUTPUT_MAX 200

/* The running totals through event upto: the model responses up to it. */
struct totals {
  char run[32];
  int64_t upto;
  int64_t tokens;
  double cost;
  int64_t last_ts;
};

struct fold {
  int64_t limit; /* steps in the page */
  json_t *steps; /* the page */
  json_t *cur;   /* the step being filled (in steps) */
  int64_t cur_step;
  json_t *calls; /* call_id -> call object of cur */
  json_t *waits; /* approval id -> call object (the page) */
  int64_t prev_end_ms;
  struct totals at_last; /* the totals before the last step opened */
  int64_t tokens;        /* running totals */
  double cost;
  int64_t last_seq; /* the last event folded */
  int64_t next_after;
  int full; /* an event of the step past the page was seen */
};

/* s cut to at most max bytes at a character boundary ("..." when cut). */
static json_t *excerpt(const char *s, size_t max)
{
  size_t n;
  char *b;
  json_t *j;

  if (!s)
    return json_null();
  n = strlen(s);
  if (n <= max)
    return json_string(s);
  while (max && ((unsigned char)s[max] & 0xC0) == 0x80)
    max--;
  if (!(b = malloc(max + 4)))
    return json_null();
  memcpy(b, s, max);
  memcpy(b + max, "...", 4);
  j = json_string(b);
  free(b);
  return j ? j : json_null();
}

static const char *str(json_t *o, const char *k)
{
  const char *v = json_string_value(json_object_get(o, k));

  return v ? v : "";
}

static json_int_t num(json_t *o, const char *k)
{
  return json_integer_value(json_object_get(o, k));
}

/* Closes the step being filled: its times and running totals. */
static void close_step(struct fold *f)
{
  int64_t start, end;

  if (!f->cur)
    return;
  start = json_integer_value(json_object_get(f->cur, "start_ms"));
  end = json_integer_value(json_object_get(f->cur, "end_ms"));
  json_object_set_new(f->cur, "duration_ms", json_integer(end - start));
  json_object_set_new(f->cur, "tokens", json_integer(f->tokens));
  json_object_set_new(f->cur, "cost_usd", json_real(f->cost));
  f->next_after = json_integer_value(json_object_get(f->cur, "last_seq"));
  f->prev_end_ms = end;
  f->cur = NULL;
  json_object_clear(f->calls);
}

static void open_step(struct fold *f, const struct durin_event *ev)
{
  int64_t start = f->prev_end_ms ? f->prev_end_ms : ev->ts_ms;

  f->at_last.upto = ev->seq - 1;
  f->at_last.tokens = f->tokens;
  f->at_last.cost = f->cost;
  f->at_last.last_ts = f->prev_end_ms;

  f->cur =
      json_pack("{s:I,s:I,s:I,s:I,s:I,s:n,s:[],s:[]}", "step",
                (json_int_t)ev->step, "first_seq", (json_int_t)ev->seq,
                "last_seq", (json_int_t)ev->seq, "start_ms", (json_int_t)start,
                "end_ms", (json_int_t)ev->ts_ms, "model", "calls", "marks");
  f->cur_step = ev->step;
  json_array_append_new(f->steps, f->cur);
}

/* The call call_id of the current step, made (named name) if new. */
static json_t *call_of(struct fold *f, const char *call_id, const char *name)
{
  json_t *c = json_object_get(f->calls, call_id);

  if (c) {
    if (!*str(c, "name") && name && *name)
      json_object_set_new(c, "name", json_string(name));
    return c;
  }
  c = json_pack("{s:s,s:s,s:n,s:n,s:b,s:n,s:n,s:n}", "call_id", call_id, "name",
                name ? name : "", "ok", "duration_ms", "reused", 0, "output",
                "policy", "approval");
  json_array_append_new(json_object_get(f->cur, "calls"), c);
  json_object_set_new(f->calls, call_id, json_incref(c));
  return c;
}

static void on_model(struct fold *f, json_t *d)
{
  json_t *calls = json_object_get(d, "tool_calls"), *c, *dur;
  json_int_t in = num(d, "input_tokens"), out = num(d, "output_tokens");
  double cost = json_number_value(json_object_get(d, "cost_usd"));
  size_t i;

  dur = json_object_get(d, "duration_ms");
  json_object_set_new(
      f->cur, "model",
      json_pack(
          "{s:I,s:I,s:f,s:o,s:I,s:o,s:o}", "input_tokens", in, "output_tokens",
          out, "cost_usd", cost, "finish_reason",
          json_is_string(json_object_get(d, "finish_reason")) ?
              json_string(str(d, "finish_reason")) :
              json_null(),
          "retries", num(d, "retries"), "duration_ms",
          json_is_integer(dur) ? json_incref(dur) : json_null(), "text",
          excerpt(json_string_value(json_object_get(d, "text")), TEXT_MAX)));
  f->tokens += in + out;
  f->cost += cost;
  json_array_foreach(calls, i, c)
    call_of(f, str(c, "id"), str(c, "name"));
}

static void on_policy(struct fold *f, json_t *d)
{
  json_t *c = call_of(f, str(d, "call_id"), str(d, "tool"));
  const char *origin = str(d, "origin");
  char rule[256];

  /* As approvals name it: "spec:ask-touch"; a built-in rule by its name. */
  snprintf(rule, sizeof(rule), "%s%s%s",
           strcmp(origin, "builtin") ? origin : "",
           strcmp(origin, "builtin") ? ":" : "", str(d, "rule"));
  json_object_set_new(
      c, "policy",
      json_pack("{s:s,s:s}", "decision", str(d, "decision"), "rule", rule));
}

static void on_approval_requested(struct fold *f, json_t *d, int64_t ts)
{
  json_t *c = call_of(f, str(d, "call_id"), str(d, "tool"));

  json_object_set_new(c, "approval",
                      json_pack("{s:s,s:s,s:n,s:n,s:I}", "id", str(d, "id"),
                                "state", "pending", "by", "wait_ms",
                                "requested_ms", (json_int_t)ts));
  json_object_set(f->waits, str(d, "id"), c);
}

/* A decision, expiry or refusal of an approval the page saw asked for. */
static void on_approval_end(struct fold *f, json_t *d, int64_t ts,
                            const char *state)
{
  json_t *c = json_object_get(f->waits, str(d, "id"));
  json_t *a = c ? json_object_get(c, "approval") : NULL;

  if (!a)
    return;
  json_object_set_new(a, "state", json_string(*state ? state : "decided"));
  if (json_is_string(json_object_get(d, "by")))
    json_object_set_new(a, "by", json_string(str(d, "by")));
  json_object_set_new(a, "wait_ms", json_integer(ts - num(a, "requested_ms")));
}

static void on_result(struct fold *f, json_t *d)
{
  json_t *c = call_of(f, str(d, "call_id"), str(d, "name"));

  json_object_set(c, "ok", json_object_get(d, "ok"));
  json_object_set(c, "duration_ms", json_object_get(d, "duration_ms"));
  json_object_set_new(c, "reused",
                      json_boolean(json_is_true(json_object_get(d, "reused"))));
  json_object_set_new(
      c, "output",
      excerpt(json_string_value(json_object_get(d, "output")), OUTPUT_MAX));
}

/* One line for a mark, in out. */
#define RET(...)                 \
 do {                            \
  snprintf(out, n, __VA_ARGS__); \
  return;                        \
 } while (0)

static void mark_text(const char *t, json_t *d, char *out, size_t n)
{
  if (!strcmp(t, "run_started"))
    RET("started on %s:%s", str(d, "provider"), str(d, "model"));
  if (!strcmp(t, "plan_updated")) {
    json_t *plan = json_object_get(d, "plan"), *it;
    size_t i, done = 0;

    json_array_foreach(plan, i, it)
      done += !strcmp(str(it, "status"), "done");
    RET("plan: %zu of %zu done", done, json_array_size(plan));
  }
  if (!strcmp(t, "checks"))
    RET("checks %s (attempt %lld)",
        json_is_true(json_object_get(d, "passed")) ? "passed" : "failed",
        (long long)num(d, "attempt"));
  if (!strcmp(t, "resumed"))
    RET("resumed from step %lld (attempt %lld)", (long long)num(d, "from_step"),
        (long long)num(d, "attempt"));
  if (!strcmp(t, "control"))
    RET("%s by %s", str(d, "action"), *str(d, "by") ? str(d, "by") : "the CLI");
  if (!strcmp(t, "run_finished"))
    RET("run %s: %s", str(d, "status"), str(d, "reason"));
  if (!strcmp(t, "model_error"))
    RET("model error: %s", str(d, "error"));
  if (!strcmp(t, "approval_refused"))
    RET("approval %s refused at execution: %s", str(d, "id"), str(d, "why"));
  if (!strcmp(t, "compaction"))
    RET("context compacted");
  if (!strcmp(t, "phase_ended"))
    RET("phase %s ended; %s begins", str(d, "phase"), str(d, "next"));
  if (!strcmp(t, "context_reset"))
    RET("context reset %lld: the window began again from a handoff",
        (long long)num(d, "count"));
  if (!strcmp(t, "phase_complete"))
    RET("phase %s complete: %s", str(d, "phase"), str(d, "why"));
  if (!strcmp(t, "forked"))
    RET("forked from %s at step %lld", str(d, "from"),
        (long long)num(d, "at_step"));
  if (!strcmp(t, "run_continued"))
    RET("continued (attempt %lld): %s", (long long)num(d, "attempt"),
        str(d, "message"));
  if (json_is_string(json_object_get(d, "reason")))
    RET("%s: %s", t, str(d, "reason"));
  RET("%s", t);
}

#undef RET

static void on_mark(struct fold *f, const struct durin_event *ev, json_t *d)
{
  char text[1024];
  json_t *m;

  mark_text(ev->type, d, text, sizeof(text));
  durin_utf8_sanitize(text, strlen(text));
  m = json_pack("{s:s,s:I,s:I,s:o}", "type", ev->type, "seq",
                (json_int_t)ev->seq, "ts_ms", (json_int_t)ev->ts_ms, "text",
                excerpt(text, TEXT_MAX));
  if (m)
    json_array_append_new(json_object_get(f->cur, "marks"), m);
}

static int fold_one(const struct durin_event *ev, void *arg)
{
  struct fold *f = arg;
  const char *t = ev->type;
  json_t *d;

  if (!f->cur || ev->step > f->cur_step) {
    if (f->cur && (int64_t)json_array_size(f->steps) >= f->limit) {
      f->full = 1;
      return 1;
    }
    close_step(f);
    open_step(f, ev);
  }
  f->last_seq = ev->seq;
  json_object_set_new(f->cur, "last_seq", json_integer(ev->seq));
  json_object_set_new(f->cur, "end_ms", json_integer(ev->ts_ms));
  d = json_loads(ev->data ? ev->data : "{}", 0, NULL);
  if (!d)
    d = json_object();
  if (!strcmp(t, "model_response"))
    on_model(f, d);
  else if (!strcmp(t, "policy"))
    on_policy(f, d);
  else if (!strcmp(t, "approval_requested"))
    on_approval_requested(f, d, ev->ts_ms);
  else if (!strcmp(t, "approval_decided"))
    on_approval_end(f, d, ev->ts_ms, str(d, "decision"));
  else if (!strcmp(t, "approval_expired")) {
    on_approval_end(f, d, ev->ts_ms, "expired");
    on_mark(f, ev, d);
  } else if (!strcmp(t, "tool_result"))
    on_result(f, d);
  else
    on_mark(f, ev, d);
  json_decref(d);
  return 0;
}

/*
 * The totals at the start of the last step each page ended with, per run:
 * a client that follows a live run asks again from there (after =
 * first_seq - 1 of its last step), and the log before it never changes,
 * so the next answer reads only what came since instead of the whole log
 * again. A small table per process, oldest out first.
 */
#define TOTALS_KEPT 64

static pthread_mutex_t kept_mu = PTHREAD_MUTEX_INITIALIZER;
static struct totals kept[TOTALS_KEPT];
static unsigned kept_next;

/* The kept totals of run at or before seq, or zeros for the start. */
static void totals_find(const char *run, int64_t seq, struct totals *t)
{
  int i;

  memset(t, 0, sizeof(*t));
  snprintf(t->run, sizeof(t->run), "%s", run);
  pthread_mutex_lock(&kept_mu);
  for (i = 0; i < TOTALS_KEPT; i++)
    if (!strcmp(kept[i].run, run) && kept[i].upto <= seq &&
        kept[i].upto > t->upto)
      *t = kept[i];
  pthread_mutex_unlock(&kept_mu);
}

static void totals_keep(const struct totals *t)
{
  int i;

  pthread_mutex_lock(&kept_mu);
  for (i = 0; i < TOTALS_KEPT && strcmp(kept[i].run, t->run); i++)
    ;
  if (i == TOTALS_KEPT)
    i = (int)(kept_next++ % TOTALS_KEPT);
  if (kept[i].upto <= t->upto || strcmp(kept[i].run, t->run))
    kept[i] = *t;
  pthread_mutex_unlock(&kept_mu);
}

static int total_one(const struct durin_event *ev, void *arg)
{
  struct totals *t = arg;
  json_t *d;

  if (ev->seq > t->upto)
    return 1;
  t->last_ts = ev->ts_ms;
  if (strcmp(ev->type, "model_response"))
    return 0;
  if ((d = json_loads(ev->data, 0, NULL))) {
    t->tokens += num(d, "input_tokens") + num(d, "output_tokens");
    t->cost += json_number_value(json_object_get(d, "cost_usd"));
    json_decref(d);
  }
  return 0;
}

static int get_timeline(struct req *r)
{
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  struct fold f;
  struct totals t = { "", 0, 0, 0, 0 };
  const char *after = req_arg(r, "after"), *limit = req_arg(r, "limit");
  int64_t from = after ? atoll(after) : 0, got;
  int rc = 0;

  memset(&f, 0, sizeof(f));
  f.limit = limit ? atoll(limit) : DEFAULT_STEPS;
  if (from < 0 || f.limit < 1 || f.limit > MAX_STEPS)
    return reply_error(r, 400, "bad_query",
                       "after is an event's seq (0: from the start) and limit "
                       "a number of steps, 1 to %d",
                       MAX_STEPS);
  if (req_run(r, r->param[0], &ri))
    return 0;
  if (from > 0) {
    int64_t kept_upto;

    totals_find(ri.id, from, &t);
    kept_upto = t.upto;
    t.upto = from;
    if (kept_upto < from)
      rc = durin_store_events_read(r->store, ri.id, kept_upto + 1,
                                   from - kept_upto, total_one, &t, &err);
    f.tokens = t.tokens;
    f.cost = t.cost;
    f.prev_end_ms = t.last_ts;
  }
  f.steps = json_array();
  f.calls = json_object();
  f.waits = json_object();
  f.last_seq = f.next_after = from;
  /* Whole steps: read in batches until the page is full or the log ends. */
  while (!rc && !f.full) {
    int64_t before = f.last_seq;

    rc = durin_store_events_read(r->store, ri.id, f.last_seq + 1, BATCH,
                                 fold_one, &f, &err);
    if (rc == 1)
      rc = 0;
    got = f.last_seq - before;
    if (got < BATCH)
      break;
  }
  if (rc) {
    json_decref(f.steps);
    reply_store_error(r, rc, &err);
  } else {
    close_step(&f);
    if (f.at_last.upto > 0) {
      snprintf(f.at_last.run, sizeof(f.at_last.run), "%s", ri.id);
      totals_keep(&f.at_last);
    }
    reply_json(r, 200,
               json_pack("{s:s,s:s,s:I,s:o,s:b,s:I}", "run", ri.id, "status",
                         durin_run_status_name(ri.status), "last_seq",
                         (json_int_t)ri.last_seq, "steps", f.steps, "more",
                         f.full, "next_after", (json_int_t)f.next_after));
  }
  json_decref(f.calls);
  json_decref(f.waits);
  durin_run_info_clear(&ri);
  return 0;
}

const struct route srv_timeline_routes[] = {
  { "GET", "/v1/runs/{}/timeline", ROLE_VIEWER, get_timeline },
  { NULL, NULL, ROLE_NONE, NULL },
};
