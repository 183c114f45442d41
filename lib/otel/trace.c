/*
 * A run's trace, folded from its log (include/durin/otel.h).
 *
 * Each span is complete when the event that ends it is committed, and is
 * emitted then, with ids that only the run and that event decide:
 *
 *   trace     the caller's (traceparent), else SHA-256("durin trace RUN")
 *   root      SHA-256("durin span RUN root")        invoke_agent {name}
 *   chat      ... "RUN chat STEP" (one per step)    chat {model}
 *   tool      ... "RUN tool STEP CALL_ID"           execute_tool {name}
 *   approval  ... "RUN approval ID"                 durin.approval {tool}
 *
 * The root span ends with the run (run_finished). The run's own moments
 * (compactions, resumes and recoveries, control events, stops) are spans
 * of no length under it, named durin.TYPE. A policy decision is an event
 * of its call's span. An exporter resuming mid-run folds again from the
 * start of the step then open and emits only the spans ended past what
 * it sent (durin_otel_fold_sent).
 *
 * Times come from the log: a span ends at its event's commit time and
 * starts its recorded duration before (model_response.duration_ms,
 * tool_result.duration_ms), or at the step's start where none is
 * recorded. Steps commit once, after their calls ran, so a call's end is
 * its step's commit: close, and the same on every replay.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/otel.h"
#include "durin/util.h"

/* OTLP's Span.SpanKind and Status.StatusCode. */
enum { KIND_INTERNAL = 1, KIND_CLIENT = 3 };
enum { STATUS_OK = 1, STATUS_ERROR = 2 };

struct durin_otel_fold {
  struct durin_otel_run run; /* strings copied below */
  char *strs[6];
  char trace_id[33], root_id[17], parent_id[17];
  json_t *out;        /* spans completed */
  json_t *calls;      /* call_id -> {name, arguments} of the open step */
  json_t *policies;   /* call_id -> span event of its policy decision */
  json_t *waits;      /* approval id -> {tool, call_id, ts} */
  int64_t step;       /* the open step's number */
  int64_t step_first; /* the open step's first event */
  int64_t sent;       /* spans ended by events up to this seq were sent */
  int64_t seq;        /* the event being folded */
  int64_t step_start; /* when it started: the last step's commit */
  int64_t started_ms; /* the run's first event */
  int ended;
};

/* ---- ids ---- */

static void hex_id(const char *what, size_t bytes, char *out)
{
  char h[65];
  size_t i;

  durin_sha256_hex(what, strlen(what), h);
  memcpy(out, h, bytes * 2);
  out[bytes * 2] = 0;
  /* An all-zero id is invalid in OTLP; a hash is never that in practice,
   * but the rule costs nothing. */
  for (i = 0; i < bytes * 2 && out[i] == '0'; i++)
    ;
  if (i == bytes * 2)
    out[bytes * 2 - 1] = '1';
}

static void span_id(const struct durin_otel_fold *f, const char *fmt,
                    const char *a, int64_t n, char out[17])
{
  char what[512];

  snprintf(what, sizeof(what), "durin span %s %s %lld %s", f->run.run_id, fmt,
           (long long)n, a ? a : "");
  hex_id(what, 8, out);
}

/* "00-TRACE-SPAN-FLAGS": the trace and parent ids, or 0 if malformed. */
static int parse_traceparent(const char *tp, char trace[33], char span[17])
{
  size_t i;

  if (!tp || strlen(tp) < 55 || strncmp(tp, "00-", 3) || tp[35] != '-' ||
      tp[52] != '-')
    return 0;
  for (i = 3; i < 52; i++)
    if (i != 35 && !strchr("0123456789abcdef", tp[i]))
      return 0;
  memcpy(trace, tp + 3, 32);
  trace[32] = 0;
  memcpy(span, tp + 36, 16);
  span[16] = 0;
  return strspn(trace, "0") != 32 && strspn(span, "0") != 16;
}

void durin_otel_trace_id(const struct durin_otel_run *run, char out[33])
{
  char what[128], span[17];

  if (parse_traceparent(run->traceparent, out, span))
    return;
  snprintf(what, sizeof(what), "durin trace %s", run->run_id);
  hex_id(what, 16, out);
}

void durin_otel_chat_span_id(const char *run_id, int64_t step, char out[17])
{
  char what[128];

  snprintf(what, sizeof(what), "durin span %s chat %lld", run_id,
           (long long)step);
  hex_id(what, 8, out);
}

void durin_otel_traceparent(const char *run_id, const char *parent,
                            int64_t step, char out[56])
{
  struct durin_otel_run run;
  char trace[33], span[17];

  memset(&run, 0, sizeof(run));
  run.run_id = run_id;
  run.traceparent = parent;
  durin_otel_trace_id(&run, trace);
  durin_otel_chat_span_id(run_id, step, span);
  snprintf(out, 56, "00-%s-%s-01", trace, span);
}

void durin_otel_root_span_id(const struct durin_otel_run *run, char out[17])
{
  char what[128];

  snprintf(what, sizeof(what), "durin span %s root", run->run_id);
  hex_id(what, 8, out);
}

/* ---- attributes ---- */

static void attr_str(json_t *attrs, const char *k, const char *v)
{
  if (v)
    json_array_append_new(
        attrs, json_pack("{s:s,s:{s:s}}", "key", k, "value", "stringValue", v));
}

/* OTLP/JSON carries int64 as a decimal string. */
static void attr_int(json_t *attrs, const char *k, int64_t v)
{
  char s[24];

  snprintf(s, sizeof(s), "%lld", (long long)v);
  json_array_append_new(
      attrs, json_pack("{s:s,s:{s:s}}", "key", k, "value", "intValue", s));
}

static void attr_double(json_t *attrs, const char *k, double v)
{
  json_array_append_new(
      attrs, json_pack("{s:s,s:{s:f}}", "key", k, "value", "doubleValue", v));
}

static void attr_bool(json_t *attrs, const char *k, int v)
{
  json_array_append_new(
      attrs, json_pack("{s:s,s:{s:b}}", "key", k, "value", "boolValue", v));
}

static void attr_str_array(json_t *attrs, const char *k, const char *v)
{
  json_array_append_new(attrs,
                        json_pack("{s:s,s:{s:{s:[{s:s}]}}}", "key", k, "value",
                                  "arrayValue", "values", "stringValue", v));
}

static const char *str(json_t *o, const char *k)
{
  return json_string_value(json_object_get(o, k));
}

static int64_t num(json_t *o, const char *k)
{
  return json_integer_value(json_object_get(o, k));
}

/* ---- spans ---- */

/* A span ended by the event being folded: out, unless it was sent. */
static void emit(struct durin_otel_fold *f, json_t *span)
{
  if (f->seq > f->sent)
    json_array_append_new(f->out, span);
  else
    json_decref(span);
}

static char *nanos(int64_t ms, char out[32])
{
  snprintf(out, 32, "%lld000000", (long long)(ms > 0 ? ms : 0));
  return out;
}

/* A span (attributes and events empty), parented to the root. */
static json_t *span_new(struct durin_otel_fold *f, const char *id,
                        const char *name, int kind, int64_t start, int64_t end)
{
  char s[32], e[32];

  if (end < start)
    end = start;
  return json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:[],s:[]}", "traceId",
                   f->trace_id, "spanId", id, "parentSpanId", f->root_id,
                   "name", name, "kind", kind, "startTimeUnixNano",
                   nanos(start, s), "endTimeUnixNano", nanos(end, e),
                   "attributes", "events");
}

static json_t *attrs_of(json_t *span)
{
  return json_object_get(span, "attributes");
}

static void set_error(json_t *span, const char *type, const char *message)
{
  attr_str(attrs_of(span), "error.type", type);
  json_object_set_new(span, "status",
                      json_pack("{s:i,s:s}", "code", STATUS_ERROR, "message",
                                message ? message : type));
}

/* A span event at ms with name and its attributes (taken). */
static json_t *event_new(int64_t ms, const char *name, json_t *attrs)
{
  char t[32];

  return json_pack("{s:s,s:s,s:o}", "timeUnixNano", nanos(ms, t), "name", name,
                   "attributes", attrs ? attrs : json_array());
}

static void common_model_attrs(struct durin_otel_fold *f, json_t *a)
{
  attr_str(a, "gen_ai.provider.name", f->run.provider);
  attr_str(a, "gen_ai.request.model", f->run.model);
  attr_str(a, "gen_ai.conversation.id", f->run.run_id);
  if (f->run.server_address) {
    attr_str(a, "server.address", f->run.server_address);
    attr_int(a, "server.port", f->run.server_port);
  }
}

static void on_model(struct durin_otel_fold *f, const struct durin_event *ev,
                     json_t *d)
{
  char id[17], name[256];
  json_t *span, *a, *calls = json_object_get(d, "tool_calls"), *c;
  int64_t dur = num(d, "duration_ms");
  int64_t start = json_is_integer(json_object_get(d, "duration_ms")) ?
                      ev->ts_ms - dur :
                      f->step_start;
  size_t i;

  durin_otel_chat_span_id(f->run.run_id, ev->step, id);
  snprintf(name, sizeof(name), "chat %s", f->run.model ? f->run.model : "");
  span = span_new(f, id, name, KIND_CLIENT, start, ev->ts_ms);
  a = attrs_of(span);
  attr_str(a, "gen_ai.operation.name", "chat");
  common_model_attrs(f, a);
  if (str(d, "model"))
    attr_str(a, "gen_ai.response.model", str(d, "model"));
  attr_int(a, "gen_ai.usage.input_tokens", num(d, "input_tokens"));
  attr_int(a, "gen_ai.usage.output_tokens", num(d, "output_tokens"));
  if (json_object_get(d, "cache_read_tokens"))
    attr_int(a, "gen_ai.usage.cache_read.input_tokens",
             num(d, "cache_read_tokens"));
  if (json_object_get(d, "cache_write_tokens"))
    attr_int(a, "gen_ai.usage.cache_creation.input_tokens",
             num(d, "cache_write_tokens"));
  if (str(d, "finish_reason"))
    attr_str_array(a, "gen_ai.response.finish_reasons",
                   str(d, "finish_reason"));
  attr_int(a, "durin.step", ev->step);
  attr_double(a, "durin.cost_usd",
              json_number_value(json_object_get(d, "cost_usd")));
  if (num(d, "retries"))
    attr_int(a, "durin.retries", num(d, "retries"));
  if (f->run.capture_content) {
    json_t *msg = json_pack("[{s:s,s:[],s:s*}]", "role", "assistant", "parts",
                            "finish_reason", str(d, "finish_reason"));
    json_t *parts = json_object_get(json_array_get(msg, 0), "parts");
    char *text;

    if (str(d, "text"))
      json_array_append_new(parts, json_pack("{s:s,s:s}", "type", "text",
                                             "content", str(d, "text")));
    json_array_foreach(calls, i, c)
      json_array_append_new(parts, json_pack("{s:s,s:s*,s:s*,s:s*}", "type",
                                             "tool_call", "id", str(c, "id"),
                                             "name", str(c, "name"),
                                             "arguments", str(c, "arguments")));
    if ((text = json_dumps(msg, JSON_COMPACT))) {
      attr_str(a, "gen_ai.output.messages", text);
      free(text);
    }
    json_decref(msg);
  }
  emit(f, span);
  json_array_foreach(calls, i, c)
    json_object_set_new(f->calls, str(c, "id") ? str(c, "id") : "",
                        json_pack("{s:s*,s:s*}", "name", str(c, "name"),
                                  "arguments", str(c, "arguments")));
}

static void on_model_error(struct durin_otel_fold *f,
                           const struct durin_event *ev, json_t *d)
{
  char id[17], name[256];
  json_t *span;

  span_id(f, "chat-error", NULL, ev->seq, id);
  snprintf(name, sizeof(name), "chat %s", f->run.model ? f->run.model : "");
  span = span_new(f, id, name, KIND_CLIENT, f->step_start, ev->ts_ms);
  attr_str(attrs_of(span), "gen_ai.operation.name", "chat");
  common_model_attrs(f, attrs_of(span));
  set_error(span, "model_error", str(d, "error"));
  emit(f, span);
}

static void on_policy(struct durin_otel_fold *f, const struct durin_event *ev,
                      json_t *d)
{
  json_t *a = json_array();

  attr_str(a, "durin.policy.decision", str(d, "decision"));
  attr_str(a, "durin.policy.origin", str(d, "origin"));
  attr_str(a, "durin.policy.rule", str(d, "rule"));
  json_object_set_new(f->policies, str(d, "call_id") ? str(d, "call_id") : "",
                      event_new(ev->ts_ms, "durin.policy", a));
}

static void on_tool(struct durin_otel_fold *f, const struct durin_event *ev,
                    json_t *d)
{
  const char *call_id = str(d, "call_id") ? str(d, "call_id") : "";
  json_t *call = json_object_get(f->calls, call_id);
  json_t *pol = json_object_get(f->policies, call_id), *span, *a;
  char id[17], name[256];
  int64_t dur = num(d, "duration_ms");

  span_id(f, "tool", call_id, ev->step, id);
  snprintf(name, sizeof(name), "execute_tool %s", str(d, "name"));
  span = span_new(f, id, name, KIND_INTERNAL, ev->ts_ms - dur, ev->ts_ms);
  a = attrs_of(span);
  attr_str(a, "gen_ai.operation.name", "execute_tool");
  attr_str(a, "gen_ai.tool.name", str(d, "name"));
  attr_str(a, "gen_ai.tool.call.id", call_id);
  attr_str(a, "gen_ai.tool.type", "function");
  attr_int(a, "durin.step", ev->step);
  if (str(d, "effect"))
    attr_str(a, "durin.tool.effect", str(d, "effect"));
  if (num(d, "exit_code") >= 0 && json_object_get(d, "exit_code"))
    attr_int(a, "durin.tool.exit_code", num(d, "exit_code"));
  if (json_is_true(json_object_get(d, "reused")))
    attr_bool(a, "durin.tool.reused", 1);
  if (f->run.capture_content) {
    attr_str(a, "gen_ai.tool.call.arguments", str(call, "arguments"));
    attr_str(a, "gen_ai.tool.call.result", str(d, "output"));
  }
  if (pol)
    json_array_append(json_object_get(span, "events"), pol);
  if (json_is_true(json_object_get(d, "timed_out")))
    set_error(span, "timeout", "the tool call timed out");
  else if (!json_is_true(json_object_get(d, "ok")))
    set_error(span, "tool_error", "the tool call failed");
  emit(f, span);
}

static void on_approval_requested(struct durin_otel_fold *f,
                                  const struct durin_event *ev, json_t *d)
{
  json_object_set_new(f->waits, str(d, "id") ? str(d, "id") : "",
                      json_pack("{s:s*,s:s*,s:I}", "tool", str(d, "tool"),
                                "call_id", str(d, "call_id"), "ts",
                                (json_int_t)ev->ts_ms));
}

/* The wait for a person, from the request to the decision or expiry. */
static void on_approval_end(struct durin_otel_fold *f,
                            const struct durin_event *ev, json_t *d,
                            const char *state)
{
  const char *aid = str(d, "id") ? str(d, "id") : "";
  json_t *w = json_object_get(f->waits, aid), *span, *a;
  char id[17], name[256];

  if (!w)
    return;
  span_id(f, "approval", aid, 0, id);
  snprintf(name, sizeof(name), "durin.approval %s", str(w, "tool"));
  span = span_new(f, id, name, KIND_INTERNAL, num(w, "ts"), ev->ts_ms);
  a = attrs_of(span);
  attr_str(a, "durin.approval.id", aid);
  attr_str(a, "durin.approval.state", state);
  attr_str(a, "gen_ai.tool.name", str(w, "tool"));
  attr_str(a, "gen_ai.tool.call.id", str(w, "call_id"));
  if (str(d, "by"))
    attr_str(a, "durin.approval.decided_by", str(d, "by"));
  emit(f, span);
  json_object_del(f->waits, aid);
}

/* One of the run's own moments, an event of the root span. */
static void on_moment(struct durin_otel_fold *f, const struct durin_event *ev,
                      json_t *d)
{
  json_t *a = json_array(), *span;
  char name[96], id[17];

  attr_int(a, "durin.step", ev->step);
  if (str(d, "reason"))
    attr_str(a, "durin.reason", str(d, "reason"));
  if (str(d, "action"))
    attr_str(a, "durin.control.action", str(d, "action"));
  if (str(d, "by"))
    attr_str(a, "durin.control.by", str(d, "by"));
  if (json_object_get(d, "attempt"))
    attr_int(a, "durin.attempt", num(d, "attempt"));
  snprintf(name, sizeof(name), "durin.%s", ev->type);
  /* A span of no length under the root, not an event of it: the root is
   * sent when the run ends, and an exporter resuming mid-run holds
   * nothing from before. */
  span_id(f, "moment", ev->type, ev->seq, id);
  span = span_new(f, id, name, KIND_INTERNAL, ev->ts_ms, ev->ts_ms);
  json_object_set_new(span, "attributes", a);
  emit(f, span);
}

static void on_finished(struct durin_otel_fold *f, const struct durin_event *ev,
                        json_t *d)
{
  char name[256], s[32], e[32];
  json_t *span, *a;
  const char *status = str(d, "status") ? str(d, "status") : "";

  snprintf(name, sizeof(name), "invoke_agent %s",
           f->run.name ? f->run.name : "");
  span =
      json_pack("{s:s,s:s,s:s,s:i,s:s,s:s,s:[],s:[]}", "traceId", f->trace_id,
                "spanId", f->root_id, "name", name, "kind", KIND_INTERNAL,
                "startTimeUnixNano", nanos(f->started_ms, s), "endTimeUnixNano",
                nanos(ev->ts_ms, e), "attributes", "events");
  if (*f->parent_id)
    json_object_set_new(span, "parentSpanId", json_string(f->parent_id));
  a = attrs_of(span);
  attr_str(a, "gen_ai.operation.name", "invoke_agent");
  attr_str(a, "gen_ai.provider.name", f->run.provider);
  attr_str(a, "gen_ai.request.model", f->run.model);
  attr_str(a, "gen_ai.agent.name", f->run.name);
  attr_str(a, "gen_ai.agent.id", f->run.run_id);
  attr_str(a, "gen_ai.conversation.id", f->run.run_id);
  attr_str(a, "durin.run.status", status);
  if (str(d, "reason"))
    attr_str(a, "durin.run.reason", str(d, "reason"));
  if (!strcmp(status, "succeeded"))
    json_object_set_new(span, "status", json_pack("{s:i}", "code", STATUS_OK));
  else
    set_error(span, status, str(d, "reason"));
  emit(f, span);
  f->ended = 1;
}

/* ---- the fold ---- */

static char *keep(struct durin_otel_fold *f, int i, const char *s)
{
  f->strs[i] = s ? strdup(s) : NULL;
  return f->strs[i];
}

struct durin_otel_fold *durin_otel_fold_new(const struct durin_otel_run *run)
{
  struct durin_otel_fold *f = calloc(1, sizeof(*f));
  char trace[33];

  if (!f)
    return NULL;
  f->run = *run;
  f->run.run_id = keep(f, 0, run->run_id ? run->run_id : "");
  f->run.name = keep(f, 1, run->name);
  f->run.provider = keep(f, 2, run->provider);
  f->run.model = keep(f, 3, run->model);
  f->run.server_address = keep(f, 4, run->server_address);
  f->run.traceparent = keep(f, 5, run->traceparent);
  durin_otel_trace_id(&f->run, f->trace_id);
  durin_otel_root_span_id(&f->run, f->root_id);
  if (!parse_traceparent(f->run.traceparent, trace, f->parent_id))
    f->parent_id[0] = 0;
  f->started_ms = run->started_ms;
  f->out = json_array();
  f->calls = json_object();
  f->policies = json_object();
  f->waits = json_object();
  return f;
}

void durin_otel_fold_free(struct durin_otel_fold *f)
{
  int i;

  if (!f)
    return;
  for (i = 0; i < 6; i++)
    free(f->strs[i]);
  json_decref(f->out);
  json_decref(f->calls);
  json_decref(f->policies);
  json_decref(f->waits);
  free(f);
}

void durin_otel_fold_event(struct durin_otel_fold *f,
                           const struct durin_event *ev)
{
  const char *t = ev->type;
  json_t *d;

  if (!f->started_ms)
    f->started_ms = ev->ts_ms;
  if (!f->step_start)
    f->step_start = ev->ts_ms;
  f->seq = ev->seq;
  /* A new step: the calls and policies of the last one are done. */
  if (ev->step > f->step || !f->step_first) {
    if (ev->step > f->step) {
      json_object_clear(f->calls);
      json_object_clear(f->policies);
    }
    f->step = ev->step;
    f->step_first = ev->seq;
  }
  d = json_loads(ev->data ? ev->data : "{}", 0, NULL);
  if (!d)
    d = json_object();
  if (!strcmp(t, "model_response"))
    on_model(f, ev, d);
  else if (!strcmp(t, "model_error"))
    on_model_error(f, ev, d);
  else if (!strcmp(t, "policy"))
    on_policy(f, ev, d);
  else if (!strcmp(t, "tool_result"))
    on_tool(f, ev, d);
  else if (!strcmp(t, "approval_requested"))
    on_approval_requested(f, ev, d);
  else if (!strcmp(t, "approval_decided"))
    on_approval_end(f, ev, d, str(d, "decision") ? str(d, "decision") : "");
  else if (!strcmp(t, "approval_expired"))
    on_approval_end(f, ev, d, "expired");
  else if (!strcmp(t, "run_finished"))
    on_finished(f, ev, d);
  else if (!strcmp(t, "compaction") || !strcmp(t, "resumed") ||
           !strcmp(t, "lease_expired") || !strcmp(t, "control") ||
           !strcmp(t, "needs_human") || !strcmp(t, "budget_exceeded") ||
           !strcmp(t, "call_repeated") || !strcmp(t, "cancelled"))
    on_moment(f, ev, d);
  json_decref(d);
  /* Whatever commits a step ends it: the next starts from here. */
  if (!strcmp(t, "model_response") || !strcmp(t, "tool_result") ||
      !strcmp(t, "model_error"))
    f->step_start = ev->ts_ms;
}

int64_t durin_otel_fold_seq(const struct durin_otel_fold *f)
{
  return f->seq;
}

void durin_otel_fold_sent(struct durin_otel_fold *f, int64_t seq)
{
  f->sent = seq;
}

int64_t durin_otel_fold_resume_point(const struct durin_otel_fold *f)
{
  return f->step_first > 1 ? f->step_first - 1 : 0;
}

json_t *durin_otel_fold_take(struct durin_otel_fold *f)
{
  json_t *out = f->out;

  f->out = json_array();
  return out;
}

/* ---- the request ---- */

int durin_otel_kv_each(const char *spec,
                       void (*fn)(void *arg, const char *k, const char *v),
                       void *arg)
{
  char *copy, *item, *save = NULL, *eq, *v, *w;

  if (!spec)
    return 0;
  if (!(copy = strdup(spec)))
    return -1;
  for (item = strtok_r(copy, ",", &save); item;
       item = strtok_r(NULL, ",", &save)) {
    if (!(eq = strchr(item, '=')) || eq == item)
      continue;
    *eq = 0;
    for (v = w = eq + 1; *v; v++, w++) {
      unsigned x;

      if (*v == '%' && sscanf(v + 1, "%2x", &x) == 1) {
        *w = (char)x;
        v += 2;
      } else {
        *w = *v;
      }
    }
    *w = 0;
    while (*item == ' ')
      item++;
    fn(arg, item, eq + 1);
  }
  free(copy);
  return 0;
}

/* A resource attribute; service.name is OTEL_SERVICE_NAME's. */
static void resource_attr(void *attrs, const char *k, const char *v)
{
  if (strcmp(k, "service.name"))
    attr_str(attrs, k, v);
}

json_t *durin_otel_request(const struct durin_otel_resource *res, json_t *spans)
{
  json_t *attrs = json_array();

  attr_str(attrs, "service.name",
           res && res->service_name && *res->service_name ? res->service_name :
                                                            "durin");
  durin_otel_kv_each(res ? res->attributes : NULL, resource_attr, attrs);
  return json_pack("{s:[{s:{s:o},s:[{s:{s:s,s:s},s:o}]}]}", "resourceSpans",
                   "resource", "attributes", attrs, "scopeSpans", "scope",
                   "name", "durin", "version", DURIN_VERSION, "spans", spans);
}
