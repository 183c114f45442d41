/*
 * OpenTelemetry traces as a projection of the durable log.
 *
 * A run's trace is computed from its committed events, never recorded on
 * the side: one trace per run, a root `invoke_agent {name}` span, a `chat
 * {model}` span per model call, an `execute_tool {name}` span per tool
 * call, and durin's own spans and span events for approval waits, policy
 * decisions, compactions and recoveries, shaped as the GenAI semantic
 * conventions (v1.41) say. Trace and span ids are derived from the run and
 * the event, so the same log gives the same spans, whoever computes them
 * and however often. See docs/internals/observability.md.
 */
#ifndef DURIN_OTEL_H
#define DURIN_OTEL_H

#include <stdint.h>

#include <jansson.h>

#include "durin/error.h"
#include "durin/store.h"
#include "durin/util.h"

/* What the projection needs of a run besides its events. */
struct durin_otel_run {
  const char *run_id;
  const char *name;           /* the spec's name: the agent's name */
  const char *provider;       /* "openai", "anthropic", "script" */
  const char *model;          /* the requested model */
  const char *server_address; /* the model's host, or NULL */
  int server_port;
  /* A W3C traceparent the run was submitted with: the run's trace is
   * then the caller's, its root a child of the caller's span. */
  const char *traceparent;
  /* Message and tool content in spans (the conventions' opt-in). */
  int capture_content;
  /* When the run started (the root span's start); 0: its first event. */
  int64_t started_ms;
};

struct durin_otel_fold;

/* A fold over one run's events, in seq order, from the first. */
struct durin_otel_fold *durin_otel_fold_new(const struct durin_otel_run *run);
void durin_otel_fold_free(struct durin_otel_fold *f);
/* Adds the spans this event completes to the fold's output. */
void durin_otel_fold_event(struct durin_otel_fold *f,
                           const struct durin_event *ev);
/*
 * Where the spans the fold completes go: appended to spans as OTLP/JSON
 * Span objects, comma-separated (a JSON array's inside, which may start
 * with other spans or right after a '['), each counted in *count (may be
 * NULL). Until it is set, nothing is written.
 */
void durin_otel_fold_output(struct durin_otel_fold *f, struct durin_buf *spans,
                            size_t *count);
/* An append failed (out of memory): spans are missing; fold again. */
int durin_otel_fold_failed(const struct durin_otel_fold *f);
/*
 * Resuming: a fold that starts at resume_point() of an earlier one (the
 * event before the step then open) and is told what was sent (up to seq)
 * gives exactly the spans the earlier one had not.
 */
void durin_otel_fold_sent(struct durin_otel_fold *f, int64_t seq);
int64_t durin_otel_fold_resume_point(const struct durin_otel_fold *f);

/* A step's chat span id: known before its response is, so the model
 * request carries it (a W3C traceparent, out: 56 bytes). */
void durin_otel_chat_span_id(const char *run_id, int64_t step, char out[17]);
void durin_otel_traceparent(const char *run_id, const char *parent,
                            int64_t step, char out[56]);

/* The run's trace and root span ids, as hex (33 and 17 bytes). */
void durin_otel_trace_id(const struct durin_otel_run *run, char out[33]);
void durin_otel_root_span_id(const struct durin_otel_run *run, char out[17]);

/* What wraps spans for sending: the service and resource attributes. */
struct durin_otel_resource {
  const char *service_name; /* OTEL_SERVICE_NAME; NULL: "durin" */
  /* OTEL_RESOURCE_ATTRIBUTES ("k=v,k=v", percent-encoded values), or NULL. */
  const char *attributes;
};

/* Calls fn for each k=v of "k=v,k=v" with v percent-decoded: the form of
 * OTEL_RESOURCE_ATTRIBUTES and OTEL_EXPORTER_OTLP_HEADERS. */
int durin_otel_kv_each(const char *spec,
                       void (*fn)(void *arg, const char *k, const char *v),
                       void *arg);

/* An OTLP ExportTraceServiceRequest (JSON) is written in three parts:
 * open, the spans (durin_otel_fold_output), close. */
int durin_otel_request_open(const struct durin_otel_resource *res,
                            struct durin_buf *out);
int durin_otel_request_close(struct durin_buf *out);

/* The last event folded; whether it was the run's end. */
int64_t durin_otel_fold_seq(const struct durin_otel_fold *f);
int durin_otel_fold_ended(const struct durin_otel_fold *f);

struct durin_spec;
/*
 * Fills run from a run's row and its resolved spec (parsed into spec,
 * which the caller clears; the model's host goes into host): pointers
 * into ri, spec and host.
 */
void durin_otel_run_of(const struct durin_run_info *ri, struct durin_spec *spec,
                       char host[256], struct durin_otel_run *run);

/* How durin_otel_run_trace reads a run. */
struct durin_otel_opts {
  const struct durin_otel_resource *resource; /* NULL: the defaults */
  int capture_content;
};

/*
 * The whole trace of run_id from its log, as an ExportTraceServiceRequest:
 * what `durin trace ID` prints and a debug bundle's trace.json holds.
 */
int durin_otel_run_trace(struct durin_store *st, const char *run_id,
                         const struct durin_otel_opts *o, json_t **out,
                         struct durin_err *err);

/* ---- the exporter (lib/otel/export.c) ---- */

struct durin_otel_exporter_opts {
  const char *store_url; /* it opens a store connection of its own */
  const char *owner;     /* its name in the cursors' holds (unique) */
  /* Where to POST: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or
   * OTEL_EXPORTER_OTLP_ENDPOINT + "/v1/traces". NULL or "": no exporter. */
  const char *endpoint;
  const char *headers; /* OTEL_EXPORTER_OTLP_HEADERS: "k=v,k=v" */
  /* OTEL_EXPORTER_OTLP_TRACES_HEADERS: they replace headers' same names. */
  const char *traces_headers;
  const char *service_name, *resource_attributes;
  int capture_content;
  /* How often to look for new events: OTEL_BSP_SCHEDULE_DELAY (5 s). */
  int64_t poll_ms;
  /* Spans per request, about (a round stops folding runs past it):
   * OTEL_BSP_MAX_EXPORT_BATCH_SIZE (512). */
  int64_t max_batch;
  int64_t timeout_ms; /* per request (default 10 s) */
  void (*on_log)(void *arg, const char *line);
  void *log_arg;
};

struct durin_otel_exporter_stats {
  int64_t batches, failures, dropped;
};

struct durin_otel_exporter;

/* Starts the exporter's thread; *out is NULL (and 0 returned) when no
 * endpoint is set. */
int durin_otel_exporter_start(const struct durin_otel_exporter_opts *o,
                              struct durin_otel_exporter **out,
                              struct durin_err *err);
/* Stops it (what it had not sent waits in the store for the next one). */
void durin_otel_exporter_stop(struct durin_otel_exporter *x);

#endif
