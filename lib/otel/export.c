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
#include "otel/http.h"

/* Runs looked at per round; events folded per run and round. */
#define RUNS_PER_ROUND   64
#define EVENTS_PER_BATCH 2000
/* Runs whose folds are kept between rounds. */
#define MAX_HELD 1024
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
  struct durin__otel_client http; /* the thread's, kept alive */
  struct durin_store *st;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stopping;
  int64_t backoff_ms;
  struct durin_otel_exporter_stats stats;
  struct held *held; /* MAX_HELD of them */
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

enum sent { SENT, RETRY, DROPPED };

static enum sent post(struct durin_otel_exporter *x, const char *body,
                      size_t len, long *status)
{
  *status = durin__otel_post(&x->http, body, len);
  if (*status < 0) {
    *status = 0;
    return RETRY;
  }
  if (*status >= 200 && *status < 300)
    return SENT;
  /* OTLP/HTTP: these may be retried; any other refusal may not. */
  if (*status == 429 || *status == 502 || *status == 503 || *status == 504)
    return RETRY;
  return DROPPED;
}

/* ---- the runs held ---- */

/*
 * A run this exporter holds keeps its fold from round to round: a round
 * reads only the events committed since the last, and writes the hold
 * on only when it moves the cursor (which renews it) or when half of it
 * is gone. A run is let go when its trace ended, when another exporter
 * took it, when a send failed (it folds again from the cursor), or when
 * it was quiet for half a hold.
 */
struct held {
  char run_id[32];
  struct durin_otel_fold *f; /* NULL: a free slot */
  int64_t until_ms;          /* the hold, as last written */
  int64_t from;              /* the next event to read */
  int64_t catch_up;          /* a new fold reads at least up to here */
  int ended;                 /* its root span was sent */
};

static struct held *held_find(struct durin_otel_exporter *x, const char *id)
{
  int i;

  for (i = 0; i < MAX_HELD; i++)
    if (x->held[i].f && !strcmp(x->held[i].run_id, id))
      return &x->held[i];
  return NULL;
}

static void held_drop(struct held *h)
{
  durin_otel_fold_free(h->f);
  memset(h, 0, sizeof(*h));
}

/* A fold for a run just claimed: it starts where the cursor says and
 * emits only what the cursor did not take. */
static struct held *held_new(struct durin_otel_exporter *x,
                             const struct durin_otel_cursor *c, int64_t until)
{
  struct durin_err err = { 0 };
  struct durin_run_info ri;
  struct durin_otel_run run;
  struct durin_spec spec;
  struct held *h = NULL;
  char host[256];
  int i;

  for (i = 0; i < MAX_HELD && !h; i++)
    if (!x->held[i].f)
      h = &x->held[i];
  if (!h || durin_store_run_get(x->st, c->run_id, &ri, &err))
    return NULL;
  durin_otel_run_of(&ri, &spec, host, &run);
  run.capture_content = x->o.capture_content;
  if ((h->f = durin_otel_fold_new(&run))) {
    durin_otel_fold_sent(h->f, c->seq);
    snprintf(h->run_id, sizeof(h->run_id), "%s", ri.id);
    h->until_ms = until;
    h->from = c->fold_from > 0 ? c->fold_from : 1;
    h->catch_up = c->seq;
  }
  durin_spec_clear(&spec);
  durin_run_info_clear(&ri);
  return h->f ? h : NULL;
}

/* ---- one round ---- */

struct round {
  struct durin_buf req; /* the request: every run's spans, in one */
  size_t nspans;
  struct held *runs[RUNS_PER_ROUND]; /* folded this round */
  struct durin_otel_cursor moved[RUNS_PER_ROUND];
  int n;
};

static int fold_one(const struct durin_event *ev, void *arg)
{
  durin_otel_fold_event(arg, ev);
  return 0;
}

/* Folds what h's run committed since the last round (a batch of it) into
 * the round. */
static void fold_run(struct durin_otel_exporter *x, struct held *h,
                     struct round *rd)
{
  struct durin_err err = { 0 };
  struct durin_otel_cursor *m;
  int64_t before = durin_otel_fold_seq(h->f);
  size_t mark = rd->req.len, spans = rd->nspans;
  /* A new fold reads again what the cursor took of the open step, and a
   * batch more, so that it always moves the cursor on. */
  int64_t limit = EVENTS_PER_BATCH +
                  (h->catch_up >= h->from ? h->catch_up - h->from + 1 : 0);

  durin_otel_fold_output(h->f, &rd->req, &rd->nspans);
  if (durin_store_events_read(x->st, h->run_id, h->from, limit, fold_one, h->f,
                              &err) ||
      durin_otel_fold_seq(h->f) <= before) {
    /* Not read to the end: what it wrote goes again next round. */
    rd->req.len = mark;
    rd->req.buf[mark] = 0;
    rd->nspans = spans;
    if (durin_otel_fold_seq(h->f) > before)
      held_drop(h);
    return;
  }
  h->from = durin_otel_fold_seq(h->f) + 1;
  h->catch_up = 0;
  if (durin_otel_fold_failed(h->f)) {
    held_drop(h); /* out of memory: fold again from the cursor */
    return;
  }
  m = &rd->moved[rd->n];
  m->run_id = h->run_id;
  m->seq = durin_otel_fold_seq(h->f);
  m->fold_from = durin_otel_fold_resume_point(h->f);
  rd->runs[rd->n++] = h;
  h->ended = durin_otel_fold_ended(h->f);
}

/* Sends the round's spans in one request and moves the cursors of what
 * went (or was refused for good); 1 if the collector must be waited for. */
static int send_round(struct durin_otel_exporter *x, struct round *rd)
{
  struct durin_err err = { 0 };
  enum sent sent = SENT;
  long status = 0;
  int64_t until = durin_now_ms() + HOLD_MS;
  int i;

  if (rd->nspans)
    sent = durin_otel_request_close(&rd->req) ?
               RETRY :
               post(x, rd->req.buf, rd->req.len, &status);
  if (sent == RETRY) {
    say(x,
        "traces: the collector at %s did not take %zu span(s) (%s); trying "
        "again later",
        x->endpoint, rd->nspans, status ? "a retryable answer" : "no answer");
    x->stats.failures++;
    /* What they folded is not kept: they fold again from their cursors. */
    for (i = 0; i < rd->n; i++)
      held_drop(rd->runs[i]);
    return 1;
  }
  if (sent == DROPPED) {
    say(x,
        "traces: the collector at %s refused %zu span(s) (HTTP %ld); "
        "dropped them",
        x->endpoint, rd->nspans, status);
    x->stats.dropped++;
  } else if (rd->nspans) {
    x->stats.batches++;
  }
  if (durin_store_otel_advance(x->st, x->owner, until, rd->moved, rd->n, &err))
    say(x, "traces: %s", err.msg);
  for (i = 0; i < rd->n; i++) {
    if (!rd->moved[i].held || rd->runs[i]->ended)
      held_drop(rd->runs[i]);
    else
      rd->runs[i]->until_ms = until;
  }
  return 0;
}

/* ---- the thread ---- */

struct pending {
  struct durin_otel_cursor c[RUNS_PER_ROUND];
  char ids[RUNS_PER_ROUND][32];
  int n;
};

static int note_pending(const struct durin_otel_cursor *c, void *arg)
{
  struct pending *p = arg;

  if (p->n < RUNS_PER_ROUND) {
    snprintf(p->ids[p->n], 32, "%s", c->run_id);
    p->c[p->n] = *c;
    p->c[p->n].run_id = p->ids[p->n];
    p->n++;
  }
  return 0;
}

/* The runs of a round: the ones held on, and the ones that must be
 * claimed (new, or half their hold gone), claimed in one transaction. */
static void take_runs(struct durin_otel_exporter *x, struct pending *p,
                      int64_t now, struct held **runs, int *n)
{
  struct durin_otel_cursor claim[RUNS_PER_ROUND];
  struct durin_err err = { 0 };
  int64_t until = now + HOLD_MS;
  struct held *h;
  int i, k = 0;

  *n = 0;
  for (i = 0; i < p->n; i++) {
    h = held_find(x, p->c[i].run_id);
    if (h && h->until_ms - now > HOLD_MS / 2 &&
        durin_otel_fold_seq(h->f) >= p->c[i].seq)
      runs[(*n)++] = h;
    else
      claim[k++] = p->c[i];
  }
  if (durin_store_otel_claim(x->st, x->owner, now, until, claim, k, &err)) {
    say(x, "traces: %s", err.msg);
    return;
  }
  for (i = 0; i < k; i++) {
    h = held_find(x, claim[i].run_id);
    /* Held on, and nobody moved its cursor past the fold: go on. */
    if (h && claim[i].held && durin_otel_fold_seq(h->f) >= claim[i].seq) {
      h->until_ms = until;
      runs[(*n)++] = h;
      continue;
    }
    if (h)
      held_drop(h);
    if (claim[i].held && (h = held_new(x, &claim[i], until)))
      runs[(*n)++] = h;
  }
}

/* Lets go of the runs quiet for half a hold: the next event claims them
 * again, as any exporter may. */
static void let_go(struct durin_otel_exporter *x, int64_t now)
{
  int i;

  for (i = 0; i < MAX_HELD; i++)
    if (x->held[i].f && x->held[i].until_ms - now <= HOLD_MS / 2)
      held_drop(&x->held[i]);
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
  struct durin_otel_resource res = { x->service, x->attributes };
  struct durin_err err = { 0 };
  int64_t last_full = 0, since = 0, begun;
  struct held *runs[RUNS_PER_ROUND];
  struct pending p;
  struct round rd;
  int i, n, wait;

  /* So that top -H, and bench/otel, can tell its CPU from the rest. */
  pthread_setname_np(pthread_self(), "durin-otel");
  durin_buf_init(&rd.req, 0);
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
    take_runs(x, &p, begun, runs, &n);
    /* The round's request buffer is kept: no pages faulted in anew. */
    durin_buf_reset(&rd.req);
    rd.nspans = 0;
    rd.n = 0;
    if (durin_otel_request_open(&res, &rd.req)) {
      wait = 1;
      continue;
    }
    for (i = 0; i < n && rd.nspans < (size_t)x->o.max_batch; i++)
      fold_run(x, runs[i], &rd);
    wait = send_round(x, &rd);
    let_go(x, begun);
    since = begun - SLACK_MS;
    if (wait)
      x->backoff_ms = x->backoff_ms ? x->backoff_ms * 2 : 1000;
    else
      x->backoff_ms = 0;
    if (x->backoff_ms > 60000)
      x->backoff_ms = 60000;
    /* A full round means more is waiting: go on at once. */
    if (!wait && (p.n == RUNS_PER_ROUND || i < n))
      continue;
  } while (!nap(x, x->backoff_ms ? x->backoff_ms : x->o.poll_ms));
  durin_buf_release(&rd.req);
  for (i = 0; i < MAX_HELD; i++)
    if (x->held[i].f)
      held_drop(&x->held[i]);
  return NULL;
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
  if (!(x->held = calloc(MAX_HELD, sizeof(*x->held)))) {
    free(x);
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  }
  x->endpoint = strdup(o->endpoint);
  x->owner = strdup(o->owner ? o->owner : "exporter");
  x->store_url = strdup(o->store_url ? o->store_url : "");
  x->service = o->service_name ? strdup(o->service_name) : NULL;
  x->attributes =
      o->resource_attributes ? strdup(o->resource_attributes) : NULL;
  if (x->o.poll_ms <= 0)
    x->o.poll_ms = 5000;
  if (x->o.max_batch <= 0)
    x->o.max_batch = 512;
  if (x->o.timeout_ms <= 0)
    x->o.timeout_ms = 10000;
  x->headers = durin__otel_headers(o->headers, o->traces_headers);
  x->http.url = x->endpoint;
  x->http.headers = x->headers;
  x->http.timeout_ms = (long)x->o.timeout_ms;
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
  durin__otel_client_close(&x->http);
  curl_slist_free_all(x->headers);
  pthread_mutex_destroy(&x->mu);
  pthread_cond_destroy(&x->cv);
  free(x->endpoint);
  free(x->owner);
  free(x->store_url);
  free(x->service);
  free(x->attributes);
  free(x->held);
  free(x);
}
