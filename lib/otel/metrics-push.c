/*
 * The OTLP metrics pusher (include/durin/otel-metrics.h): a thread that
 * wakes every interval, renders the process's registry and whatever the
 * collect hook reads for it (the store's gauges) as one OTLP/JSON
 * ExportMetricsServiceRequest, and POSTs it on one kept-alive connection;
 * stopped, it pushes once more, so the totals at exit arrive.
 *
 * Nothing is queued or sent again: every point is cumulative, so the next
 * push carries whatever a failed one held. A network error, 429 or
 * 502-504 (which OTLP/HTTP says may be retried) and any other refusal
 * differ only in what the log says; the log says when pushes start
 * failing and when they work again, not at every interval.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "durin/otel-metrics.h"
#include "durin/otel.h"
#include "durin/util.h"
#include "otel/http.h"

/* A push is a few hundred series: 16 MiB is a runaway. */
#define PUSH_CAP (16u << 20)

struct durin_otel_metrics {
  struct durin_otel_metrics_opts o;
  char *endpoint;
  char *resource; /* the resource's attributes, as JSON text */
  struct curl_slist *headers;
  struct durin__otel_client http; /* the thread's, kept alive */
  pthread_t thread;
  int started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stopping;
  /* The last push's outcome, so the log says only what changed: 0 took
   * it, -1 no answer, else the HTTP status. */
  long failing;
};

static void say(struct durin_otel_metrics *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void say(struct durin_otel_metrics *p, const char *fmt, ...)
{
  char line[768];
  va_list ap;

  if (!p->o.on_log)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  p->o.on_log(p->o.log_arg, line);
}

/* ---- the resource and the headers ---- */

static void attr(json_t *attrs, const char *k, const char *v)
{
  json_array_append_new(
      attrs, json_pack("{s:s,s:{s:s}}", "key", k, "value", "stringValue", v));
}

struct resource {
  json_t *attrs;
  const char *service; /* service.name from the attributes */
  int has_instance;
};

/* service.name waits for OTEL_SERVICE_NAME's precedence; the rest goes
 * as written. */
static void resource_attr(void *arg, const char *k, const char *v)
{
  struct resource *r = arg;

  if (!strcmp(k, "service.name")) {
    free((char *)r->service);
    r->service = strdup(v);
    return;
  }
  if (!strcmp(k, "service.instance.id"))
    r->has_instance = 1;
  attr(r->attrs, k, v);
}

static char *resource_json(const struct durin_otel_metrics_opts *o)
{
  struct resource r = { json_array(), NULL, 0 };
  json_t *all = json_array();
  char *text = NULL;

  if (!r.attrs || !all)
    goto out;
  durin_otel_kv_each(o->resource_attributes, resource_attr, &r);
  /* OTEL_SERVICE_NAME wins over the attributes' service.name. */
  attr(all, "service.name",
       o->service_name && *o->service_name ? o->service_name :
       r.service                           ? r.service :
                                             "durin");
  if (!r.has_instance && o->instance_id && *o->instance_id)
    attr(all, "service.instance.id", o->instance_id);
  json_array_extend(all, r.attrs);
  text = json_dumps(all, JSON_COMPACT);
out:
  free((char *)r.service);
  json_decref(r.attrs);
  json_decref(all);
  return text;
}

/* ---- one push ---- */

/* The answer's text for the log: one line, its message if it has one. */
static const char *answer_text(struct durin_otel_metrics *p)
{
  char *c, *a = p->http.answer;

  for (c = a; *c; c++)
    if (*c == '\n' || *c == '\r')
      *c = ' ';
  if (strlen(a) > 200)
    strcpy(a + 197, "...");
  return a;
}

static void push(struct durin_otel_metrics *p)
{
  struct durin_metrics *regs[2] = { p->o.metrics, NULL };
  struct durin_buf b;
  long status;
  int ok;

  regs[1] = p->o.collect ? p->o.collect(p->o.collect_arg) : NULL;
  durin_buf_init(&b, PUSH_CAP);
  if (durin_metrics_render_otlp(regs, 2, p->resource, &b)) {
    say(p, "metrics: cannot render the metrics (out of memory)");
    goto out;
  }
  status = durin__otel_post(&p->http, b.buf, b.len);
  ok = status >= 200 && status < 300;
  if (ok && p->failing)
    say(p, "metrics: the collector at %s takes the metrics again", p->endpoint);
  else if (!ok && status != p->failing && status < 0)
    say(p,
        "metrics: no answer from the collector at %s; the next push carries "
        "the totals",
        p->endpoint);
  else if (!ok && status != p->failing && (status == 429 || status >= 502))
    say(p,
        "metrics: the collector at %s did not take the metrics (HTTP %ld); "
        "the next push carries the totals",
        p->endpoint, status);
  else if (!ok && status != p->failing)
    say(p,
        "metrics: the collector at %s refused the metrics (HTTP %ld: %s); "
        "pushing again at the next interval",
        p->endpoint, status, answer_text(p));
  else if (ok && strstr(p->http.answer, "rejectedDataPoints"))
    say(p, "metrics: the collector at %s took part of the metrics: %s",
        p->endpoint, answer_text(p));
  p->failing = ok ? 0 : status;
out:
  durin_buf_release(&b);
  durin_metrics_free(regs[1]);
}

/* ---- the thread ---- */

/* Waits until the monotonic time at_ms or until stopped; 1 if stopping. */
static int wait_until(struct durin_otel_metrics *p, int64_t at_ms)
{
  struct timespec ts = { (time_t)(at_ms / 1000),
                         (long)(at_ms % 1000) * 1000000L };
  int stop;

  pthread_mutex_lock(&p->mu);
  while (!p->stopping &&
         pthread_cond_timedwait(&p->cv, &p->mu, &ts) != ETIMEDOUT)
    ;
  stop = p->stopping;
  pthread_mutex_unlock(&p->mu);
  return stop;
}

static void *push_thread(void *arg)
{
  struct durin_otel_metrics *p = arg;
  int64_t next = durin_mono_ms() + p->o.interval_ms;

  while (!wait_until(p, next)) {
    push(p);
    /* Every interval from the start; a push slower than one does not
     * make the next ones pile up. */
    next += p->o.interval_ms;
    if (next <= durin_mono_ms())
      next = durin_mono_ms() + p->o.interval_ms;
  }
  push(p); /* the totals at exit */
  return NULL;
}

int durin_otel_metrics_start(const struct durin_otel_metrics_opts *o,
                             struct durin_otel_metrics **out,
                             struct durin_err *err)
{
  struct durin_otel_metrics *p;
  pthread_condattr_t ca;

  *out = NULL;
  if (!o->endpoint || !*o->endpoint)
    return 0; /* nothing set, nothing sent */
  if (!(p = calloc(1, sizeof(*p))))
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  p->o = *o;
  if (p->o.interval_ms <= 0)
    p->o.interval_ms = 60000;
  if (p->o.timeout_ms <= 0)
    p->o.timeout_ms = 10000;
  p->endpoint = strdup(o->endpoint);
  p->resource = resource_json(o);
  p->headers = durin__otel_headers(o->headers, o->metrics_headers);
  pthread_mutex_init(&p->mu, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);
  p->http.url = p->endpoint;
  p->http.headers = p->headers;
  p->http.timeout_ms = (long)p->o.timeout_ms;
  p->http.give_up = p->o.give_up;
  if (!p->endpoint || !p->resource || !p->headers) {
    durin_otel_metrics_stop(p);
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  }
  if (pthread_create(&p->thread, NULL, push_thread, p)) {
    durin_otel_metrics_stop(p);
    return durin_err_set(err, DURIN_EIO, "cannot start the metrics pusher");
  }
  p->started = 1;
  say(p, "metrics: pushing to %s every %lld ms", p->endpoint,
      (long long)p->o.interval_ms);
  *out = p;
  return 0;
}

void durin_otel_metrics_stop(struct durin_otel_metrics *p)
{
  if (!p)
    return;
  pthread_mutex_lock(&p->mu);
  p->stopping = 1;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  if (p->started)
    pthread_join(p->thread, NULL);
  durin__otel_client_close(&p->http);
  curl_slist_free_all(p->headers);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p->endpoint);
  free(p->resource);
  free(p);
}
