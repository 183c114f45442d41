/*
 * The trace exporter: a thread that sends the spans of committed events
 * over OTLP/HTTP (JSON), past a durable cursor per run in the store.
 *
 * Each round it lists runs whose log goes past their cursor, holds each
 * one's cursor for a while (so two exporters on one store do not both
 * send it), folds its events from where the last fold stopped, sends the
 * spans those events end for all of them in one request (on one kept-
 * alive connection), and moves the cursors only once the collector took
 * them. A process killed between the send and the move leaves the
 * cursor where it was: the next exporter sends that batch again, as the
 * same spans (their ids are the run's and the event's), and the hold it
 * left expires. Retryable failures (a network error, 429, 502-504) back
 * off and keep the cursor; any other refusal drops the batch, said in
 * the log, so one bad span cannot stop a run's trace for good.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "durin/otel.h"
#include "durin/spec.h"
#include "durin/util.h"

/* Runs looked at per round; events folded per run and round. */
#define RUNS_PER_ROUND   64
#define EVENTS_PER_BATCH 2000
/* Spans per request, about: a round stops folding runs past it. */
#define SPANS_PER_REQUEST 4096
/* How long a cursor is held: a dead exporter's runs wait this long. */
#define HOLD_MS 30000
/* Runs updated this long before a round began are looked at again in the
 * next; every FULL_MS a round looks at every run (one that slipped by,
 * one a dead exporter left). */
#define SLACK_MS 120000
#define FULL_MS  60000

struct durin_otel_exporter {
  struct durin_otel_exporter_opts o;
  char *endpoint, *owner, *service, *attributes, *store_url;
  struct curl_slist *headers;
  CURL *curl; /* the thread's, kept alive */
  struct durin_store *st;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stopping;
  int64_t backoff_ms;
  struct durin_otel_exporter_stats stats;
};

static void say(struct durin_otel_exporter *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void say(struct durin_otel_exporter *x, const char *fmt, ...)
{
  char line[512];
  va_list ap;

  if (!x->o.on_log)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  x->o.on_log(x->o.log_arg, line);
}

/* ---- sending ---- */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
  (void)p;
  (void)arg;
  return size * n;
}

enum sent { SENT, RETRY, DROPPED };

static enum sent post(struct durin_otel_exporter *x, const char *body,
                      size_t len, long *status)
{
  CURLcode rc;

  *status = 0;
  /* One handle for the thread's life: its connection is kept alive. */
  if (!x->curl && !(x->curl = curl_easy_init()))
    return RETRY;
  curl_easy_setopt(x->curl, CURLOPT_URL, x->endpoint);
  curl_easy_setopt(x->curl, CURLOPT_POST, 1L);
  curl_easy_setopt(x->curl, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(x->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, x->headers);
  curl_easy_setopt(x->curl, CURLOPT_TIMEOUT_MS, (long)x->o.timeout_ms);
  curl_easy_setopt(x->curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(x->curl, CURLOPT_WRITEFUNCTION, discard);
  rc = curl_easy_perform(x->curl);
  if (rc == CURLE_OK)
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, status);
  if (rc != CURLE_OK)
    return RETRY;
  if (*status >= 200 && *status < 300)
    return SENT;
  /* OTLP/HTTP: these may be retried; any other refusal may not. */
  if (*status == 429 || *status == 502 || *status == 503 || *status == 504)
    return RETRY;
  return DROPPED;
}

/* ---- one round ---- */

/* What a round folded of one run, to move its cursor once sent. */
struct moved {
  char run_id[32];
  int64_t seq, fold_from;
};

struct round {
  json_t *spans; /* of every run of the round */
  struct moved moved[RUNS_PER_ROUND];
  int n;
};

static int fold_one(const struct durin_event *ev, void *arg)
{
  durin_otel_fold_event(arg, ev);
  return 0;
}

/* Folds what run_id's log holds past its cursor (a batch of it) into the
 * round, if this exporter may hold the run. */
static void fold_run(struct durin_otel_exporter *x, const char *run_id,
                     struct round *rd)
{
  struct durin_err err = { 0 };
  struct durin_run_info ri;
  struct durin_otel_run run;
  struct durin_spec spec;
  struct durin_otel_fold *f;
  int64_t now = durin_now_ms(), seq = 0, from = 0, first;
  char host[256];

  if (durin_store_otel_claim(x->st, run_id, x->owner, now, now + HOLD_MS, &seq,
                             &from, &err))
    return; /* another exporter has it, or the store said no: later */
  if (durin_store_run_get(x->st, run_id, &ri, &err))
    return;
  durin_otel_run_of(&ri, &spec, host, &run);
  run.capture_content = x->o.capture_content;
  first = from > 0 ? from : 1;
  if ((f = durin_otel_fold_new(&run))) {
    durin_otel_fold_sent(f, seq);
    if (!durin_store_events_read(x->st, ri.id, first,
                                 seq - first + 1 + EVENTS_PER_BATCH, fold_one,
                                 f, &err) &&
        durin_otel_fold_seq(f) > seq) {
      json_t *spans = durin_otel_fold_take(f);

      json_array_extend(rd->spans, spans);
      json_decref(spans);
      snprintf(rd->moved[rd->n].run_id, 32, "%s", ri.id);
      rd->moved[rd->n].seq = durin_otel_fold_seq(f);
      rd->moved[rd->n].fold_from = durin_otel_fold_resume_point(f);
      rd->n++;
    }
    durin_otel_fold_free(f);
  }
  durin_spec_clear(&spec);
  durin_run_info_clear(&ri);
}

/* Sends the round's spans in one request and moves the cursors of what
 * went (or was refused for good); 1 if the collector must be waited for. */
static int send_round(struct durin_otel_exporter *x, struct round *rd)
{
  struct durin_otel_resource res = { x->service, x->attributes };
  struct durin_err err = { 0 };
  enum sent sent = SENT;
  json_t *req;
  char *body = NULL;
  long status = 0;
  int i;

  if (json_array_size(rd->spans)) {
    req = durin_otel_request(&res, json_incref(rd->spans));
    body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body)
      return 1;
    sent = post(x, body, strlen(body), &status);
    free(body);
  }
  if (sent == RETRY) {
    say(x,
        "traces: the collector at %s did not take %zu span(s) (%s); trying "
        "again later",
        x->endpoint, json_array_size(rd->spans),
        status ? "a retryable answer" : "no answer");
    x->stats.failures++;
    return 1;
  }
  if (sent == DROPPED) {
    say(x,
        "traces: the collector at %s refused %zu span(s) (HTTP %ld); "
        "dropped them",
        x->endpoint, json_array_size(rd->spans), status);
    x->stats.dropped++;
  } else if (json_array_size(rd->spans)) {
    x->stats.batches++;
  }
  for (i = 0; i < rd->n; i++)
    durin_store_otel_advance(x->st, rd->moved[i].run_id, x->owner,
                             rd->moved[i].seq, rd->moved[i].fold_from, &err);
  return 0;
}

/* ---- the thread ---- */

struct pending {
  char ids[RUNS_PER_ROUND][32];
  int n;
};

static int note_pending(const struct durin_otel_cursor *c, void *arg)
{
  struct pending *p = arg;

  if (p->n < RUNS_PER_ROUND)
    snprintf(p->ids[p->n++], 32, "%s", c->run_id);
  return 0;
}

/* Waits ms or until stopped; 1 if stopping. */
static int nap(struct durin_otel_exporter *x, int64_t ms)
{
  struct timespec ts;
  int stop;

  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += (time_t)(ms / 1000);
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&x->mu);
  if (!x->stopping)
    pthread_cond_timedwait(&x->cv, &x->mu, &ts);
  stop = x->stopping;
  pthread_mutex_unlock(&x->mu);
  return stop;
}

static void *run_thread(void *arg)
{
  struct durin_otel_exporter *x = arg;
  struct durin_err err = { 0 };
  int64_t last_full = 0, since = 0, begun;
  struct pending p;
  struct round rd;
  int i, wait;

  do {
    begun = durin_now_ms();
    if (!x->st && durin_store_open(x->store_url, &x->st, &err)) {
      say(x, "traces: cannot open the store: %s", err.msg);
      continue;
    }
    if (begun - last_full >= FULL_MS) {
      since = 0;
      last_full = begun;
    }
    p.n = 0;
    wait = 0;
    if (durin_store_otel_pending(x->st, x->owner, begun, since, RUNS_PER_ROUND,
                                 note_pending, &p, &err)) {
      say(x, "traces: %s", err.msg);
      continue;
    }
    rd.spans = json_array();
    rd.n = 0;
    for (i = 0; i < p.n && json_array_size(rd.spans) < SPANS_PER_REQUEST; i++)
      fold_run(x, p.ids[i], &rd);
    wait = send_round(x, &rd);
    json_decref(rd.spans);
    since = begun - SLACK_MS;
    /* A full round means more is waiting: go on at once. */
    if (wait)
      x->backoff_ms = x->backoff_ms ? x->backoff_ms * 2 : 1000;
    else
      x->backoff_ms = 0;
    if (x->backoff_ms > 60000)
      x->backoff_ms = 60000;
    if (!wait && (p.n == RUNS_PER_ROUND || i < p.n))
      continue;
  } while (!nap(x, x->backoff_ms ? x->backoff_ms : x->o.poll_ms));
  return NULL;
}

/* A request header from OTEL_EXPORTER_OTLP_HEADERS. */
static void add_header(void *arg, const char *k, const char *v)
{
  struct curl_slist **l = arg;
  char line[1024];

  snprintf(line, sizeof(line), "%s: %s", k, v);
  *l = curl_slist_append(*l, line);
}

int durin_otel_exporter_start(const struct durin_otel_exporter_opts *o,
                              struct durin_otel_exporter **out,
                              struct durin_err *err)
{
  struct durin_otel_exporter *x;

  *out = NULL;
  if (!o->endpoint || !*o->endpoint)
    return 0; /* nothing set, nothing sent */
  if (!(x = calloc(1, sizeof(*x))))
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  x->o = *o;
  x->endpoint = strdup(o->endpoint);
  x->owner = strdup(o->owner ? o->owner : "exporter");
  x->store_url = strdup(o->store_url ? o->store_url : "");
  x->service = o->service_name ? strdup(o->service_name) : NULL;
  x->attributes =
      o->resource_attributes ? strdup(o->resource_attributes) : NULL;
  if (x->o.poll_ms <= 0)
    x->o.poll_ms = 1000;
  if (x->o.timeout_ms <= 0)
    x->o.timeout_ms = 10000;
  x->headers = curl_slist_append(NULL, "Content-Type: application/json");
  durin_otel_kv_each(o->headers, add_header, &x->headers);
  pthread_mutex_init(&x->mu, NULL);
  pthread_cond_init(&x->cv, NULL);
  if (pthread_create(&x->thread, NULL, run_thread, x)) {
    durin_otel_exporter_stop(x);
    return durin_err_set(err, DURIN_EIO, "cannot start the trace exporter");
  }
  say(x, "traces: exporting to %s", x->endpoint);
  *out = x;
  return 0;
}

void durin_otel_exporter_stop(struct durin_otel_exporter *x)
{
  if (!x)
    return;
  pthread_mutex_lock(&x->mu);
  x->stopping = 1;
  pthread_cond_broadcast(&x->cv);
  pthread_mutex_unlock(&x->mu);
  if (x->thread)
    pthread_join(x->thread, NULL);
  if (x->st)
    durin_store_close(x->st);
  if (x->curl)
    curl_easy_cleanup(x->curl);
  curl_slist_free_all(x->headers);
  pthread_mutex_destroy(&x->mu);
  pthread_cond_destroy(&x->cv);
  free(x->endpoint);
  free(x->owner);
  free(x->store_url);
  free(x->service);
  free(x->attributes);
  free(x);
}
