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
#include "otel/fields.h"

/* OTLP's Span.SpanKind and Status.StatusCode. */
enum { KIND_INTERNAL = 1, KIND_CLIENT = 3 };
enum { STATUS_OK = 1, STATUS_ERROR = 2 };

struct durin_otel_fold {
  struct durin_otel_run run; /* strings copied below */
  char *strs[6];
  char trace_id[33], root_id[17], parent_id[17];
  struct durin_buf *out; /* where completed spans go (OTLP/JSON text) */
  size_t *count;         /* ... counted */
  size_t mark;           /* where the span being written starts in out */
  struct w {             /* where a list of attributes is being written */
    struct durin_buf *b;
    int n;   /* items of the list so far */
    int err; /* the first append that failed */
  } w;
  int err;            /* an append that failed: the output is short */
  json_t *calls;      /* call_id -> {arguments} of the open step (content) */
  json_t *policies;   /* call_id -> its policy decision's span event (text) */
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

/* ---- writing ---- */

/*
 * Spans are written as OTLP/JSON text straight into one buffer: a step's
 * two spans cost a few appends, not a tree of objects built, serialized
 * and freed (bench/otel). w is where a list of attributes is being
 * written; its first error sticks.
 */
static void putn(struct w *w, const char *s, size_t n)
{
  if (!w->err)
    w->err = durin_buf_add(w->b, s, n);
}

static void put(struct w *w, const char *s)
{
  putn(w, s, strlen(s));
}

/* A literal: its length is known where it is written. */
#define PUT(w, lit) putn(w, "" lit, sizeof(lit) - 1)

static void put_str(struct w *w, const char *s)
{
  if (!w->err)
    w->err = durin_buf_add_jstr(w->b, s);
}

static void put_int(struct w *w, int64_t v)
{
  char s[24], *p = s + sizeof(s);
  uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;

  do
    *--p = (char)('0' + u % 10);
  while (u /= 10);
  if (v < 0)
    *--p = '-';
  putn(w, p, (size_t)(s + sizeof(s) - p));
}

/* {"key":K,"value":{"TYPE": — the caller writes the value and "}}". */
static void attr_open(struct w *w, const char *k, const char *type)
{
  put(w, w->n++ ? ",{\"key\":" : "{\"key\":");
  put_str(w, k);
  PUT(w, ",\"value\":{\"");
  put(w, type);
  PUT(w, "\":");
}

static void attr_str(struct w *w, const char *k, const char *v)
{
  if (!v)
    return;
  attr_open(w, k, "stringValue");
  put_str(w, v);
  PUT(w, "}}");
}

/* OTLP/JSON carries int64 as a decimal string. */
static void attr_int(struct w *w, const char *k, int64_t v)
{
  attr_open(w, k, "intValue");
  PUT(w, "\"");
  put_int(w, v);
  PUT(w, "\"}}");
}

static void attr_double(struct w *w, const char *k, double v)
{
  char s[32];

  snprintf(s, sizeof(s), "%.17g", v == v && v - v == 0 ? v : 0.0);
  attr_open(w, k, "doubleValue");
  put(w, s);
  PUT(w, "}}");
}

static void attr_bool(struct w *w, const char *k, int v)
{
  attr_open(w, k, "boolValue");
  put(w, v ? "true}}" : "false}}");
}

static void attr_str_array(struct w *w, const char *k, const char *v)
{
  attr_open(w, k, "arrayValue");
  PUT(w, "{\"values\":[{\"stringValue\":");
  put_str(w, v);
  PUT(w, "}]}}}");
}

static void put_nanos(struct w *w, int64_t ms)
{
  PUT(w, "\"");
  if (ms > 0) {
    put_int(w, ms);
    PUT(w, "000000");
  } else {
    PUT(w, "0");
  }
  PUT(w, "\"");
}

static const char *str(json_t *o, const char *k)
{
  return json_string_value(json_object_get(o, k));
}

/* ---- spans ---- */

/*
 * A span: open it (its attributes come next, through the w returned),
 * then close it with its events and status. One completed by an event at
 * or before what was sent (a resumed fold) is taken back out.
 */
static struct w *span_open(struct durin_otel_fold *f, const char *id,
                           const char *parent, const char *name, int kind,
                           int64_t start, int64_t end)
{
  struct w *w = &f->w;

  if (end < start)
    end = start;
  w->b = f->out;
  w->n = 0;
  w->err = f->out ? 0 : DURIN_EINVAL; /* no output: nothing written */
  f->mark = f->out ? f->out->len : 0;
  /* After another span of the list, or first in it. */
  if (f->out && f->out->len && f->out->buf[f->out->len - 1] != '[')
    PUT(w, ",");
  PUT(w, "{\"traceId\":\"");
  putn(w, f->trace_id, 32);
  PUT(w, "\",\"spanId\":\"");
  putn(w, id, 16);
  if (parent && *parent) {
    PUT(w, "\",\"parentSpanId\":\"");
    putn(w, parent, 16);
  }
  PUT(w, "\",\"name\":");
  put_str(w, name);
  PUT(w, ",\"kind\":");
  put_int(w, kind);
  PUT(w, ",\"startTimeUnixNano\":");
  put_nanos(w, start);
  PUT(w, ",\"endTimeUnixNano\":");
  put_nanos(w, end);
  PUT(w, ",\"attributes\":[");
  return w;
}

/* events: span events as JSON text (or NULL); code 0: no status. */
static void span_close(struct durin_otel_fold *f, const char *events, int code,
                       const char *message)
{
  struct w *w = &f->w;

  PUT(w, "],\"events\":[");
  if (events)
    put(w, events);
  PUT(w, "]");
  if (code) {
    PUT(w, ",\"status\":{\"code\":");
    put_int(w, code);
    if (message) {
      PUT(w, ",\"message\":");
      put_str(w, message);
    }
    PUT(w, "}");
  }
  PUT(w, "}");
  if (w->err && f->out && !f->err)
    f->err = w->err;
  if (!w->err && f->seq > f->sent) {
    if (f->count)
      (*f->count)++;
  } else if (f->out) {
    f->out->len = f->mark; /* sent already, or not whole: not emitted */
    if (f->out->alloc)
      f->out->buf[f->mark] = 0;
  }
  w->err = 0;
}

/* A child of the root. */
static struct w *child_open(struct durin_otel_fold *f, const char *id,
                            const char *name, int kind, int64_t start,
                            int64_t end)
{
  return span_open(f, id, f->root_id, name, kind, start, end);
}

static void common_model_attrs(struct durin_otel_fold *f, struct w *a)
{
  attr_str(a, "gen_ai.provider.name", f->run.provider);
  attr_str(a, "gen_ai.request.model", f->run.model);
  attr_str(a, "gen_ai.conversation.id", f->run.run_id);
  if (f->run.server_address) {
    attr_str(a, "server.address", f->run.server_address);
    attr_int(a, "server.port", f->run.server_port);
  }
}

/* The event's document, for what only content needs (the rare path:
 * OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT). */
static json_t *document(const struct durin_event *ev)
{
  json_t *d = json_loads(ev->data ? ev->data : "{}", 0, NULL);

  return d ? d : json_object();
}

/* gen_ai.output.messages: the response as the conventions shape it. */
static void output_messages(struct w *a, json_t *d)
{
  json_t *msg = json_pack("[{s:s,s:[],s:s*}]", "role", "assistant", "parts",
                          "finish_reason", str(d, "finish_reason"));
  json_t *parts = json_object_get(json_array_get(msg, 0), "parts"), *c;
  char *text;
  size_t i;

  if (str(d, "text"))
    json_array_append_new(parts, json_pack("{s:s,s:s}", "type", "text",
                                           "content", str(d, "text")));
  json_array_foreach(json_object_get(d, "tool_calls"), i, c)
    json_array_append_new(parts,
                          json_pack("{s:s,s:s*,s:s*,s:s*}", "type", "tool_call",
                                    "id", str(c, "id"), "name", str(c, "name"),
                                    "arguments", str(c, "arguments")));
  if ((text = json_dumps(msg, JSON_COMPACT))) {
    attr_str(a, "gen_ai.output.messages", text);
    free(text);
  }
  json_decref(msg);
}

static void on_model(struct durin_otel_fold *f, const struct durin_event *ev,
                     const struct fields *d)
{
  char id[17], name[256];
  int64_t start = fhas(d, FLD_DURATION_MS) ?
                      ev->ts_ms - fint(d, FLD_DURATION_MS) :
                      f->step_start;
  json_t *doc = NULL, *c;
  struct w *a;
  size_t i;

  durin_otel_chat_span_id(f->run.run_id, ev->step, id);
  snprintf(name, sizeof(name), "chat %s", f->run.model ? f->run.model : "");
  a = child_open(f, id, name, KIND_CLIENT, start, ev->ts_ms);
  attr_str(a, "gen_ai.operation.name", "chat");
  common_model_attrs(f, a);
  attr_str(a, "gen_ai.response.model", fstr(d, FLD_MODEL));
  attr_int(a, "gen_ai.usage.input_tokens", fint(d, FLD_INPUT_TOKENS));
  attr_int(a, "gen_ai.usage.output_tokens", fint(d, FLD_OUTPUT_TOKENS));
  if (fhas(d, FLD_CACHE_READ_TOKENS))
    attr_int(a, "gen_ai.usage.cache_read.input_tokens",
             fint(d, FLD_CACHE_READ_TOKENS));
  if (fhas(d, FLD_CACHE_WRITE_TOKENS))
    attr_int(a, "gen_ai.usage.cache_creation.input_tokens",
             fint(d, FLD_CACHE_WRITE_TOKENS));
  if (fstr(d, FLD_FINISH_REASON))
    attr_str_array(a, "gen_ai.response.finish_reasons",
                   fstr(d, FLD_FINISH_REASON));
  attr_int(a, "durin.step", ev->step);
  /* The evaluator's calls (docs/internals/evaluator.md). */
  if (fstr(d, FLD_ROLE))
    attr_str(a, "durin.role", fstr(d, FLD_ROLE));
  attr_double(a, "durin.cost_usd", fnum(d, FLD_COST_USD));
  if (fint(d, FLD_RETRIES))
    attr_int(a, "durin.retries", fint(d, FLD_RETRIES));
  if (f->run.capture_content) {
    doc = document(ev);
    output_messages(a, doc);
  }
  span_close(f, NULL, 0, NULL);
  /* Only content needs a call's arguments at its result. */
  json_array_foreach(json_object_get(doc, "tool_calls"), i, c)
    json_object_set_new(f->calls, str(c, "id") ? str(c, "id") : "",
                        json_pack("{s:s*}", "arguments", str(c, "arguments")));
  json_decref(doc);
}

static void on_model_error(struct durin_otel_fold *f,
                           const struct durin_event *ev, const struct fields *d)
{
  char id[17], name[256];
  struct w *a;

  span_id(f, "chat-error", NULL, ev->seq, id);
  snprintf(name, sizeof(name), "chat %s", f->run.model ? f->run.model : "");
  a = child_open(f, id, name, KIND_CLIENT, f->step_start, ev->ts_ms);
  attr_str(a, "gen_ai.operation.name", "chat");
  common_model_attrs(f, a);
  attr_str(a, "error.type", "model_error");
  span_close(f, NULL, STATUS_ERROR,
             fstr(d, FLD_ERROR) ? fstr(d, FLD_ERROR) : "model_error");
}

/* A policy decision: an event of its call's span, kept as text until the
 * call's result ends that span. */
static void on_policy(struct durin_otel_fold *f, const struct durin_event *ev,
                      const struct fields *d)
{
  struct durin_buf b;
  struct w a = { &b, 0, 0 };

  durin_buf_init(&b, 0);
  PUT(&a, "{\"timeUnixNano\":");
  put_nanos(&a, ev->ts_ms);
  PUT(&a, ",\"name\":\"durin.policy\",\"attributes\":[");
  attr_str(&a, "durin.policy.decision", fstr(d, FLD_DECISION));
  attr_str(&a, "durin.policy.origin", fstr(d, FLD_ORIGIN));
  attr_str(&a, "durin.policy.rule", fstr(d, FLD_RULE));
  PUT(&a, "]}");
  if (!a.err)
    json_object_set_new(f->policies,
                        fstr(d, FLD_CALL_ID) ? fstr(d, FLD_CALL_ID) : "",
                        json_stringn(b.buf, b.len));
  durin_buf_release(&b);
}

static void on_tool(struct durin_otel_fold *f, const struct durin_event *ev,
                    const struct fields *d)
{
  const char *call_id = fstr(d, FLD_CALL_ID) ? fstr(d, FLD_CALL_ID) : "";
  json_t *pol = json_object_get(f->policies, call_id);
  char id[17], name[256];
  int timed_out = fint(d, FLD_TIMED_OUT), ok = fint(d, FLD_OK);
  struct w *a;

  span_id(f, "tool", call_id, ev->step, id);
  snprintf(name, sizeof(name), "execute_tool %s",
           fstr(d, FLD_NAME) ? fstr(d, FLD_NAME) : "");
  a = child_open(f, id, name, KIND_INTERNAL,
                 ev->ts_ms - fint(d, FLD_DURATION_MS), ev->ts_ms);
  attr_str(a, "gen_ai.operation.name", "execute_tool");
  attr_str(a, "gen_ai.tool.name", fstr(d, FLD_NAME));
  attr_str(a, "gen_ai.tool.call.id", call_id);
  attr_str(a, "gen_ai.tool.type", "function");
  attr_int(a, "durin.step", ev->step);
  attr_str(a, "durin.tool.effect", fstr(d, FLD_EFFECT));
  if (fhas(d, FLD_EXIT_CODE) && fint(d, FLD_EXIT_CODE) >= 0)
    attr_int(a, "durin.tool.exit_code", fint(d, FLD_EXIT_CODE));
  if (fint(d, FLD_REUSED))
    attr_bool(a, "durin.tool.reused", 1);
  if (f->run.capture_content) {
    json_t *doc = document(ev);

    attr_str(a, "gen_ai.tool.call.arguments",
             str(json_object_get(f->calls, call_id), "arguments"));
    attr_str(a, "gen_ai.tool.call.result", str(doc, "output"));
    json_decref(doc);
  }
  if (timed_out)
    attr_str(a, "error.type", "timeout");
  else if (!ok)
    attr_str(a, "error.type", "tool_error");
  span_close(f, json_string_value(pol), ok && !timed_out ? 0 : STATUS_ERROR,
             timed_out ? "the tool call timed out" :
             !ok       ? "the tool call failed" :
                         NULL);
}

static void on_approval_requested(struct durin_otel_fold *f,
                                  const struct durin_event *ev,
                                  const struct fields *d)
{
  json_object_set_new(f->waits, fstr(d, FLD_ID) ? fstr(d, FLD_ID) : "",
                      json_pack("{s:s*,s:s*,s:I}", "tool", fstr(d, FLD_TOOL),
                                "call_id", fstr(d, FLD_CALL_ID), "ts",
                                (json_int_t)ev->ts_ms));
}

/* The wait for a person, from the request to the decision or expiry. */
static void on_approval_end(struct durin_otel_fold *f,
                            const struct durin_event *ev,
                            const struct fields *d, const char *state)
{
  const char *aid = fstr(d, FLD_ID) ? fstr(d, FLD_ID) : "";
  json_t *wt = json_object_get(f->waits, aid);
  char id[17], name[256];
  struct w *a;

  if (!wt)
    return;
  span_id(f, "approval", aid, 0, id);
  snprintf(name, sizeof(name), "durin.approval %s",
           str(wt, "tool") ? str(wt, "tool") : "");
  a = child_open(f, id, name, KIND_INTERNAL,
                 json_integer_value(json_object_get(wt, "ts")), ev->ts_ms);
  attr_str(a, "durin.approval.id", aid);
  attr_str(a, "durin.approval.state", state);
  attr_str(a, "gen_ai.tool.name", str(wt, "tool"));
  attr_str(a, "gen_ai.tool.call.id", str(wt, "call_id"));
  attr_str(a, "durin.approval.decided_by", fstr(d, FLD_BY));
  span_close(f, NULL, 0, NULL);
  json_object_del(f->waits, aid);
}

/* One of the run's own moments. A span of no length under the root, not
 * an event of it: the root is sent when the run ends, and an exporter
 * resuming mid-run holds nothing from before. */
static void on_moment(struct durin_otel_fold *f, const struct durin_event *ev,
                      const struct fields *d)
{
  char name[96], id[17];
  struct w *a;

  snprintf(name, sizeof(name), "durin.%s", ev->type);
  span_id(f, "moment", ev->type, ev->seq, id);
  a = child_open(f, id, name, KIND_INTERNAL, ev->ts_ms, ev->ts_ms);
  attr_int(a, "durin.step", ev->step);
  attr_str(a, "durin.reason", fstr(d, FLD_REASON));
  attr_str(a, "durin.control.action", fstr(d, FLD_ACTION));
  attr_str(a, "durin.control.by", fstr(d, FLD_BY));
  if (fhas(d, FLD_ATTEMPT))
    attr_int(a, "durin.attempt", fint(d, FLD_ATTEMPT));
  span_close(f, NULL, 0, NULL);
}

static void on_finished(struct durin_otel_fold *f, const struct durin_event *ev,
                        const struct fields *d)
{
  char name[256];
  const char *status = fstr(d, FLD_STATUS) ? fstr(d, FLD_STATUS) : "";
  int ok = !strcmp(status, "succeeded");
  struct w *a;

  snprintf(name, sizeof(name), "invoke_agent %s",
           f->run.name ? f->run.name : "");
  a = span_open(f, f->root_id, f->parent_id, name, KIND_INTERNAL, f->started_ms,
                ev->ts_ms);
  attr_str(a, "gen_ai.operation.name", "invoke_agent");
  attr_str(a, "gen_ai.provider.name", f->run.provider);
  attr_str(a, "gen_ai.request.model", f->run.model);
  attr_str(a, "gen_ai.agent.name", f->run.name);
  attr_str(a, "gen_ai.agent.id", f->run.run_id);
  attr_str(a, "gen_ai.conversation.id", f->run.run_id);
  attr_str(a, "durin.run.status", status);
  attr_str(a, "durin.run.reason", fstr(d, FLD_REASON));
  if (!ok)
    attr_str(a, "error.type", status);
  span_close(f, NULL, ok ? STATUS_OK : STATUS_ERROR,
             ok                  ? NULL :
             fstr(d, FLD_REASON) ? fstr(d, FLD_REASON) :
                                   status);
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
  json_decref(f->calls);
  json_decref(f->policies);
  json_decref(f->waits);
  free(f);
}

typedef void (*on_event)(struct durin_otel_fold *f,
                         const struct durin_event *ev, const struct fields *d);

static void on_decided(struct durin_otel_fold *f, const struct durin_event *ev,
                       const struct fields *d)
{
  on_approval_end(f, ev, d, fstr(d, FLD_DECISION) ? fstr(d, FLD_DECISION) : "");
}

static void on_expired(struct durin_otel_fold *f, const struct durin_event *ev,
                       const struct fields *d)
{
  on_approval_end(f, ev, d, "expired");
}

/* The events a trace shows; the log's others (plans, checkpoints, ...)
 * are not even parsed. */
static const struct {
  const char *type;
  on_event fn;
  int ends_step; /* commits a step: the next starts from here */
} handlers[] = {
  { "model_response", on_model, 1 },
  { "tool_result", on_tool, 1 },
  { "model_error", on_model_error, 1 },
  { "policy", on_policy, 0 },
  { "approval_requested", on_approval_requested, 0 },
  { "approval_decided", on_decided, 0 },
  { "approval_expired", on_expired, 0 },
  { "run_finished", on_finished, 0 },
  { "compaction", on_moment, 0 },
  { "resumed", on_moment, 0 },
  { "lease_expired", on_moment, 0 },
  { "control", on_moment, 0 },
  { "needs_human", on_moment, 0 },
  { "budget_exceeded", on_moment, 0 },
  { "call_repeated", on_moment, 0 },
  { "cancelled", on_moment, 0 },
};

void durin_otel_fold_event(struct durin_otel_fold *f,
                           const struct durin_event *ev)
{
  struct fields d;
  size_t i;

  if (!f->started_ms)
    f->started_ms = ev->ts_ms;
  if (!f->step_start)
    f->step_start = ev->ts_ms;
  f->seq = ev->seq;
  /* A new step: the calls and policies of the last one are done. */
  if (ev->step > f->step || !f->step_first) {
    if (ev->step > f->step) {
      if (json_object_size(f->calls))
        json_object_clear(f->calls);
      if (json_object_size(f->policies))
        json_object_clear(f->policies);
    }
    f->step = ev->step;
    f->step_first = ev->seq;
  }
  for (i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
    if (!strcmp(ev->type, handlers[i].type))
      break;
  if (i == sizeof(handlers) / sizeof(handlers[0]))
    return;
  /* Data that is not an object leaves d empty: the span still goes. */
  durin__otel_fields(ev->data ? ev->data : "{}",
                     ev->data ? strlen(ev->data) : 2, &d);
  handlers[i].fn(f, ev, &d);
  if (handlers[i].ends_step)
    f->step_start = ev->ts_ms;
}

int64_t durin_otel_fold_seq(const struct durin_otel_fold *f)
{
  return f->seq;
}

int durin_otel_fold_ended(const struct durin_otel_fold *f)
{
  return f->ended;
}

void durin_otel_fold_sent(struct durin_otel_fold *f, int64_t seq)
{
  f->sent = seq;
}

int64_t durin_otel_fold_resume_point(const struct durin_otel_fold *f)
{
  return f->step_first > 1 ? f->step_first - 1 : 0;
}

void durin_otel_fold_output(struct durin_otel_fold *f, struct durin_buf *spans,
                            size_t *count)
{
  f->out = spans;
  f->count = count;
}

int durin_otel_fold_failed(const struct durin_otel_fold *f)
{
  return f->err;
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

/* A resource attribute; service.name is written first, on its own. */
static void resource_attr(void *arg, const char *k, const char *v)
{
  if (strcmp(k, "service.name"))
    attr_str(arg, k, v);
}

static void find_service(void *arg, const char *k, const char *v)
{
  char **name = arg;

  if (!strcmp(k, "service.name")) {
    free(*name);
    *name = strdup(v);
  }
}

int durin_otel_request_open(const struct durin_otel_resource *res,
                            struct durin_buf *out)
{
  struct w w = { out, 0, 0 };
  char *named = NULL;

  /* OTEL_SERVICE_NAME, else OTEL_RESOURCE_ATTRIBUTES' service.name, as
   * the SDKs (and the metrics pusher) have it. */
  if (!(res && res->service_name && *res->service_name))
    durin_otel_kv_each(res ? res->attributes : NULL, find_service, &named);
  PUT(&w, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
  attr_str(&w, "service.name",
           res && res->service_name && *res->service_name ? res->service_name :
           named && *named                                ? named :
                                                            "durin");
  free(named);
  durin_otel_kv_each(res ? res->attributes : NULL, resource_attr, &w);
  PUT(&w, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"durin\",\"version\":");
  put_str(&w, DURIN_VERSION);
  PUT(&w, "},\"spans\":[");
  return w.err;
}

int durin_otel_request_close(struct durin_buf *out)
{
  return durin_buf_adds(out, "]}]}]}");
}
