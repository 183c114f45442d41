/*
 * Outbound webhooks (docs/api/webhooks.md): the subscriptions' routes and
 * the thread that delivers the store's outbox.
 *
 * The outbox is filled by a trigger on the event log, in the event's own
 * transaction, whoever wrote it (this serve's worker, another serve, a
 * `durin worker`, a decision from the CLI). One thread per serve delivers
 * it, with a store connection of its own:
 *
 *   idle --(wake, NOTIFY, 1 s tick, a retry falls due)--> look
 *   look --(something due)--> take (a lease on up to BATCH rows)
 *   take --> for each row: build the payload, POST it, record the outcome
 *        (delivered; a retry at now + backoff; failed after 24 h)
 *   --> look again at once after a full batch, else idle
 *
 * Taking is a conditional write, so two servers never hold one row at
 * once; a server killed while it holds rows loses nothing: their lease
 * runs out and any server takes them again. Delivery is therefore at
 * least once, and receivers dedupe on webhook-id, which is the row's id
 * and never changes. The payload is built when it is sent, from the run
 * as it is then and the event that made the row, so a throttled
 * run.progress reports the latest usage.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <curl/curl.h>
#include <microhttpd.h>
#include <sodium.h>

#include "cli/cmd.h"
#include "durin/harness.h"
#include "durin/spec.h"
#include "durin/util.h"
#include "server/server.h"

/* Rows taken at once, and how long they are this server's. A row is only
 * sent while its lease has at least POST_MS + LEASE_MARGIN_MS left, so
 * no other server takes it during the POST. */
#define BATCH           16
#define LEASE_MS        30000
#define LEASE_MARGIN_MS 5000
#define POST_MS         10000
#define CONNECT_MS      5000
/* Longest sleep: rows written by other processes are found this soon
 * even on SQLite, where nothing wakes this one. */
#define IDLE_MS 1000
/* Retries: BACKOFF_MS doubled per attempt (DURIN_WEBHOOK_BACKOFF_MS
 * shrinks the first for tests), jittered by +-20%, capped at an hour,
 * until a day after the event. */
#define BACKOFF_MS     5000
#define BACKOFF_MAX_MS (3600 * 1000)
#define GIVE_UP_MS     (24 * 3600 * 1000)
/* Bytes of a receiver's error answer kept for last_error and the log. */
#define ANSWER_KEEP 200

/* The start of a receiver's answer. */
struct answer {
  char text[ANSWER_KEEP + 1];
  size_t len;
};

struct webhooks {
  struct srv *srv;
  pthread_t th;
  int started;
  int efd;             /* webhooks_wake() and stop */
  atomic_int stopping; /* also read by curl's progress callback */
  int64_t backoff_ms;  /* the first retry's delay */
  struct durin_store *st;
  CURL *curl;
  /* The handle's buffers: curl may write to them while it lives. */
  struct answer ans;
  char errbuf[CURL_ERROR_SIZE];
};

/* One taken row, copied out of the store's callback. */
struct delivery {
  char *id, *sub_id, *run_id, *type, *url, *secret;
  int64_t seq, created_ms, attempts;
};

/* ---- the payload ---- */

static int got_event(const struct durin_event *ev, void *arg)
{
  json_t **out = arg;

  json_decref(*out);
  *out = json_pack("{s:I,s:I,s:o?}", "step", (json_int_t)ev->step, "ts_ms",
                   (json_int_t)ev->ts_ms, "data",
                   json_loads(ev->data ? ev->data : "{}", 0, NULL));
  return 0;
}

static int got_approval(const struct durin_approval *a, void *arg)
{
  json_t **out = arg;

  *out = json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s?,s:I,s:I}", "id", a->id, "tool",
                   a->tool ? a->tool : "", "rule", a->rule ? a->rule : "",
                   "state", durin_approval_state_name(a->state), "decided_by",
                   a->decided_by, "comment", a->comment, "requested_ms",
                   (json_int_t)a->requested_ms, "expires_ms",
                   (json_int_t)a->expires_ms);
  if (*out && a->decided_ms)
    json_object_set_new(*out, "decided_ms", json_integer(a->decided_ms));
  return 0;
}

/* The agent's last finish summary: the checkpoint's, else the event's. */
static json_t *summary_of(struct durin_store *st, const char *run_id,
                          json_t *event_data)
{
  struct durin_checkpoint ck;
  char *text = NULL;
  int64_t step;
  json_t *s = NULL;

  memset(&ck, 0, sizeof(ck));
  if (durin_store_checkpoint_get(st, run_id, &step, &text, NULL) == 0 &&
      durin_checkpoint_parse(text, &ck, NULL) == 0 && ck.summary)
    s = json_string(ck.summary);
  durin_checkpoint_clear(&ck);
  free(text);
  if (!s && json_is_string(json_object_get(event_data, "summary")))
    s = json_copy(json_object_get(event_data, "summary"));
  return s ? s : json_null();
}

/*
 * The body for d, as the run is now: NULL with err set when it cannot be
 * read (DURIN_ENOTFOUND: the run is gone, so the row never will be).
 */
static char *payload(struct durin_store *st, const struct delivery *d,
                     struct durin_err *err)
{
  struct durin_run_info ri;
  json_t *ev = NULL, *data, *body, *edata;
  char when[40], *text;
  int rc;

  memset(&ri, 0, sizeof(ri));
  if ((rc = durin_store_run_get(st, d->run_id, &ri, err)))
    return NULL;
  if ((rc = durin_store_events_read(st, d->run_id, d->seq, 1, got_event, &ev,
                                    err))) {
    durin_run_info_clear(&ri);
    return NULL;
  }
  edata = ev ? json_object_get(ev, "data") : NULL;
  data = json_pack(
      "{s:s,s:s,s:s,s:I,s:I,s:s,s:s?,s:f,s:{s:I,s:I,s:I,s:I,s:I,s:I}}",
      "run_id", ri.id, "name", ri.name ? ri.name : "", "tenant",
      ri.tenant ? ri.tenant : "default", "seq", (json_int_t)d->seq, "step",
      ev ? json_integer_value(json_object_get(ev, "step")) : 0, "status",
      durin_run_status_name(ri.status), "reason", ri.reason, "cost_usd",
      ri.usage.cost_usd, "usage", "steps", (json_int_t)ri.usage.steps,
      "input_tokens", (json_int_t)ri.usage.input_tokens, "output_tokens",
      (json_int_t)ri.usage.output_tokens, "model_calls",
      (json_int_t)ri.usage.model_calls, "tool_calls",
      (json_int_t)ri.usage.tool_calls, "retries", (json_int_t)ri.usage.retries);
  if (!data) {
    json_decref(ev);
    durin_run_info_clear(&ri);
    durin_err_set(err, DURIN_ENOMEM, "cannot build the payload");
    return NULL;
  }
  if (!ri.reason)
    json_object_set_new(data, "reason", json_null());
  json_object_set(data, "event", edata ? edata : json_null());
  if (!strcmp(d->type, "run.finished"))
    json_object_set_new(data, "summary", summary_of(st, ri.id, edata));
  if (!strncmp(d->type, "approval.", 9)) {
    const char *aid = json_string_value(json_object_get(edata, "id"));
    json_t *a = NULL;

    if (aid)
      durin_store_approval_get(st, aid, got_approval, &a, NULL);
    json_object_set_new(data, "approval",
                        a   ? a :
                        aid ? json_pack("{s:s}", "id", aid) :
                              json_null());
  }
  /* When it happened (the event), not when it is sent (the header). */
  durin_fmt_time(ev ? json_integer_value(json_object_get(ev, "ts_ms")) :
                      d->created_ms,
                 when, sizeof(when));
  body = json_pack("{s:s,s:s,s:o}", "type", d->type, "timestamp", when, "data",
                   data);
  text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  json_decref(ev);
  durin_run_info_clear(&ri);
  if (!text)
    durin_err_set(err, DURIN_ENOMEM, "cannot encode the payload");
  return text;
}

/* ---- signing (https://www.standardwebhooks.com) ---- */

/*
 * "v1," + base64 of HMAC-SHA256 over "id.timestamp.body", keyed with the
 * bytes the secret encodes after its "whsec_" prefix.
 */
static int sign(const char *secret, const char *id, const char *ts,
                const char *body, char *out, size_t len)
{
  unsigned char key[128], mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state h;
  const char *b64 = secret;
  size_t klen = 0;

  if (!strncmp(b64, "whsec_", 6))
    b64 += 6;
  if (sodium_base642bin(key, sizeof(key), b64, strlen(b64), NULL, &klen, NULL,
                        sodium_base64_VARIANT_ORIGINAL) ||
      !klen)
    return -1;
  crypto_auth_hmacsha256_init(&h, key, klen);
  crypto_auth_hmacsha256_update(&h, (const unsigned char *)id, strlen(id));
  crypto_auth_hmacsha256_update(&h, (const unsigned char *)".", 1);
  crypto_auth_hmacsha256_update(&h, (const unsigned char *)ts, strlen(ts));
  crypto_auth_hmacsha256_update(&h, (const unsigned char *)".", 1);
  crypto_auth_hmacsha256_update(&h, (const unsigned char *)body, strlen(body));
  crypto_auth_hmacsha256_final(&h, mac);
  sodium_memzero(key, sizeof(key));
  if (len < 3 + sodium_base64_ENCODED_LEN(sizeof(mac),
                                          sodium_base64_VARIANT_ORIGINAL))
    return -1;
  memcpy(out, "v1,", 3);
  sodium_bin2base64(out + 3, len - 3, mac, sizeof(mac),
                    sodium_base64_VARIANT_ORIGINAL);
  return 0;
}

/* ---- the POST ---- */

static size_t keep_answer(char *p, size_t size, size_t n, void *arg)
{
  struct answer *a = arg;
  size_t got = size * n, room = ANSWER_KEEP - a->len;

  if (got < room)
    room = got;
  memcpy(a->text + a->len, p, room);
  a->len += room;
  a->text[a->len] = 0;
  return got;
}

/* Ends a transfer at once when the server stops. */
static int stop_check(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
                      curl_off_t un)
{
  struct webhooks *w = arg;

  (void)dt, (void)dn, (void)ut, (void)un;
  return atomic_load(&w->stopping) ? 1 : 0;
}

enum outcome { SENT, REFUSED, INTERRUPTED };

/* POSTs body to d->url, signed; why says what went wrong otherwise. */
static enum outcome post(struct webhooks *w, const struct delivery *d,
                         const char *body, char *why, size_t whylen)
{
  struct curl_slist *hd = NULL;
  struct answer *ans = &w->ans;
  char ts[32], line[256], sig[128];
  long code = 0;
  CURLcode rc;

  snprintf(ts, sizeof(ts), "%lld", (long long)(durin_now_ms() / 1000));
  if (sign(d->secret, d->id, ts, body, sig, sizeof(sig))) {
    snprintf(why, whylen, "the subscription's secret is not whsec_BASE64");
    return REFUSED;
  }
  hd = curl_slist_append(hd, "Content-Type: application/json");
  snprintf(line, sizeof(line), "webhook-id: %s", d->id);
  hd = curl_slist_append(hd, line);
  snprintf(line, sizeof(line), "webhook-timestamp: %s", ts);
  hd = curl_slist_append(hd, line);
  snprintf(line, sizeof(line), "webhook-signature: %s", sig);
  hd = curl_slist_append(hd, line);
  /* No "Expect: 100-continue" round trip for larger bodies. */
  hd = curl_slist_append(hd, "Expect:");
  curl_easy_setopt(w->curl, CURLOPT_URL, d->url);
  curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, hd);
  curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(w->curl, CURLOPT_POSTFIELDSIZE_LARGE,
                   (curl_off_t)strlen(body));
  ans->len = 0;
  ans->text[0] = 0;
  w->errbuf[0] = 0;
  rc = curl_easy_perform(w->curl);
  curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(hd);
  if (rc == CURLE_ABORTED_BY_CALLBACK) {
    snprintf(why, whylen, "interrupted: the server stopped");
    return INTERRUPTED;
  }
  if (rc != CURLE_OK) {
    snprintf(why, whylen, "%s",
             *w->errbuf ? w->errbuf : curl_easy_strerror(rc));
    return REFUSED;
  }
  curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &code);
  if (code >= 200 && code < 300)
    return SENT;
  durin_utf8_sanitize(ans->text, ans->len);
  ans->text[strcspn(ans->text, "\r\n")] = 0;
  snprintf(why, whylen, "HTTP %ld%s%s", code, *ans->text ? ": " : "",
           ans->text);
  return REFUSED;
}

static CURL *curl_new(struct webhooks *w)
{
  CURL *c = curl_easy_init();

  if (!c)
    return NULL;
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(c, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)POST_MS);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_MS);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "durin/0.1");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep_answer);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &w->ans);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, w->errbuf);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, stop_check);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, w);
  return c;
}

/* ---- delivering ---- */

/* The delay before attempt n + 1, after n failed ones. */
static int64_t backoff(const struct webhooks *w, int64_t attempts)
{
  int64_t d = w->backoff_ms;
  uint32_t r = 0;

  while (--attempts > 0 && d < BACKOFF_MAX_MS)
    d *= 2;
  if (d > BACKOFF_MAX_MS)
    d = BACKOFF_MAX_MS;
  durin_random(&r, sizeof(r));
  /* +-20%, so many rows failed together do not come back together. */
  d = d * 8 / 10 + (int64_t)((double)d * 0.4 * (r / 4294967296.0));
  return d > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d;
}

/* Gives a row back untried: due at once, for whichever server looks. */
static void release(struct webhooks *w, const struct delivery *d,
                    const char *why)
{
  struct durin_err err = { 0 };
  int64_t now = durin_now_ms();

  if (durin_store_outbox_done(w->st, d->id, 0, 0, now, now, why, &err))
    srv_log(w->srv, "webhook %s: %s (its lease will run out)", d->id, err.msg);
}

static void deliver(struct webhooks *w, const struct delivery *d)
{
  struct durin_err err = { 0 };
  char why[512] = "";
  char *body = payload(w->st, d, &err);
  enum outcome o = REFUSED;
  int64_t now, next = 0;
  int failed = 0;

  if (body)
    o = post(w, d, body, why, sizeof(why));
  else
    snprintf(why, sizeof(why), "cannot read the run: %.400s", err.msg);
  free(body);
  if (o == INTERRUPTED) {
    release(w, d, why);
    return;
  }
  now = durin_now_ms();
  if (o != SENT) {
    /* A run that is gone will not come back; anything else might. */
    failed = (!body && err.code == DURIN_ENOTFOUND) ||
             now >= d->created_ms + GIVE_UP_MS;
    next = now + backoff(w, d->attempts);
    if (next > d->created_ms + GIVE_UP_MS)
      next = d->created_ms + GIVE_UP_MS;
    if (failed)
      srv_log(w->srv,
              "webhook %s (%s) to %s: %s; given up after %lld "
              "attempt(s)",
              d->id, d->type, d->url, why, (long long)d->attempts);
    else
      srv_log(w->srv,
              "webhook %s (%s) to %s: %s; attempt %lld, next in "
              "%lld ms",
              d->id, d->type, d->url, why, (long long)d->attempts,
              (long long)(next - now));
  }
  memset(&err, 0, sizeof(err));
  if (durin_store_outbox_done(w->st, d->id, o == SENT, failed, now,
                              o == SENT ? now : next, o == SENT ? NULL : why,
                              &err))
    /* Its lease runs out and it is sent again: at least once. */
    srv_log(w->srv, "webhook %s: cannot record the outcome: %s", d->id,
            err.msg);
}

static char *dup0(const char *s)
{
  return strdup(s ? s : "");
}

static void delivery_clear(struct delivery *d)
{
  free(d->id);
  free(d->sub_id);
  free(d->run_id);
  free(d->type);
  free(d->url);
  free(d->secret);
  memset(d, 0, sizeof(*d));
}

struct batch {
  struct delivery d[BATCH];
  int n;
};

static int took(const struct durin_delivery *d, void *arg)
{
  struct batch *b = arg;
  struct delivery *x = &b->d[b->n];

  if (b->n == BATCH)
    return 0;
  x->id = dup0(d->id);
  x->sub_id = dup0(d->sub_id);
  x->run_id = dup0(d->run_id);
  x->type = dup0(d->type);
  x->url = dup0(d->url);
  x->secret = dup0(d->secret);
  x->seq = d->seq;
  x->created_ms = d->created_ms;
  x->attempts = d->attempts;
  if (!x->id || !x->sub_id || !x->run_id || !x->type || !x->url || !x->secret) {
    delivery_clear(x);
    return 0;
  }
  b->n++;
  return 0;
}

/* Takes what is due and delivers it; returns how many rows it took, or
 * -1 when the store did not answer. */
static int deliver_due(struct webhooks *w)
{
  struct batch b;
  struct durin_err err = { 0 };
  int64_t until = durin_now_ms() + LEASE_MS;
  int i;

  memset(&b, 0, sizeof(b));
  if (durin_store_outbox_take(w->st, until - LEASE_MS, LEASE_MS, BATCH, took,
                              &b, &err)) {
    srv_log(w->srv, "webhooks: cannot take deliveries: %s", err.msg);
    for (i = 0; i < b.n; i++)
      delivery_clear(&b.d[i]);
    return -1;
  }
  for (i = 0; i < b.n; i++) {
    if (atomic_load(&w->stopping))
      release(w, &b.d[i], "not attempted: the server stopped");
    else if (durin_now_ms() + POST_MS + LEASE_MARGIN_MS > until)
      release(w, &b.d[i], "not attempted: the batch ran past its lease");
    else
      deliver(w, &b.d[i]);
    delivery_clear(&b.d[i]);
  }
  return b.n;
}

static void *deliver_main(void *arg)
{
  struct webhooks *w = arg;

  while (!atomic_load(&w->stopping)) {
    int64_t now = durin_now_ms(), next = durin_store_outbox_next(w->st);
    int64_t wait_ms = IDLE_MS;
    struct pollfd pf[2];
    int nfd = 1, pgfd;
    eventfd_t v;

    if (next && next <= now) {
      int n = deliver_due(w);

      if (n == BATCH)
        continue;
      /* Nothing taken though something looked due (another server took
       * it first, or the store failed): not a busy loop. */
      wait_ms = n > 0 ? 0 : 100;
    } else if (next && next - now < wait_ms) {
      wait_ms = next - now;
    }
    pf[0].fd = w->efd;
    pf[0].events = POLLIN;
    /* PostgreSQL: other processes' commits of events end the wait. */
    if ((pgfd = durin_store_events_fd(w->st)) >= 0) {
      pf[1].fd = pgfd;
      pf[1].events = POLLIN;
      nfd = 2;
    }
    if (wait_ms > 0 && poll(pf, (nfds_t)nfd, (int)wait_ms) > 0) {
      if (pf[0].revents & POLLIN)
        eventfd_read(w->efd, &v);
      if (nfd == 2 && (pf[1].revents & (POLLIN | POLLERR | POLLHUP)))
        durin_store_events_drain(w->st, NULL, NULL);
    }
  }
  return NULL;
}

int webhooks_start(struct srv *s, struct webhooks **out, struct durin_err *err)
{
  struct webhooks *w = calloc(1, sizeof(*w));
  const char *env = getenv("DURIN_WEBHOOK_BACKOFF_MS");
  int r;

  *out = NULL;
  if (!w)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  w->srv = s;
  atomic_init(&w->stopping, 0);
  w->backoff_ms = env && atoll(env) > 0 ? atoll(env) : BACKOFF_MS;
  w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (w->efd < 0) {
    r = durin_err_set(err, DURIN_EIO, "cannot make the webhook sender: %s",
                      strerror(errno));
    webhooks_stop(w);
    return r;
  }
  if ((r = durin_store_open(srv_options(s)->store_url, &w->st, err))) {
    webhooks_stop(w);
    return r;
  }
  if (!(w->curl = curl_new(w)) ||
      pthread_create(&w->th, NULL, deliver_main, w)) {
    webhooks_stop(w);
    return durin_err_set(err, DURIN_EIO, "cannot start the webhook sender");
  }
  w->started = 1;
  *out = w;
  return 0;
}

void webhooks_wake(struct webhooks *w)
{
  if (w)
    eventfd_write(w->efd, 1);
}

void webhooks_stop(struct webhooks *w)
{
  if (!w)
    return;
  atomic_store(&w->stopping, 1);
  if (w->started) {
    eventfd_write(w->efd, 1);
    pthread_join(w->th, NULL);
  }
  if (w->efd >= 0)
    close(w->efd);
  if (w->curl)
    curl_easy_cleanup(w->curl);
  durin_store_close(w->st);
  free(w);
}

/* ---- the routes ---- */

/* "whsec_" + base64 of 32 random bytes: what Standard Webhooks expects. */
static int secret_new(char *out, size_t len)
{
  unsigned char key[32];
  char b64[64];

  if (durin_random(key, sizeof(key)))
    return -1;
  sodium_bin2base64(b64, sizeof(b64), key, sizeof(key),
                    sodium_base64_VARIANT_ORIGINAL);
  sodium_memzero(key, sizeof(key));
  snprintf(out, len, "whsec_%s", b64);
  return 0;
}

/* A subscription as the API shows it (never its secret). */
static json_t *sub_json(const struct durin_webhook_sub *s)
{
  json_t *events = json_array(), *o;
  char buf[512], *tok, *save;

  snprintf(buf, sizeof(buf), "%s", s->events ? s->events : "");
  for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
    json_array_append_new(events, json_string(tok));
  o = json_pack("{s:s,s:s,s:o,s:s?,s:s?,s:I,s:s?}", "id", s->id, "url", s->url,
                "events", events, "tenant", s->tenant, "run_id", s->run_id,
                "created_ms", (json_int_t)s->created_ms, "created_by",
                s->created_by);
  if (o && !s->tenant)
    json_object_set_new(o, "tenant", json_null());
  if (o && !s->run_id)
    json_object_del(o, "run_id");
  return o;
}

/* events: an array of known types, or absent (all); into list ("a,b"). */
static int parse_events(struct req *r, json_t *ev, char *list, size_t len)
{
  json_t *e;
  size_t i;
  int k;

  *list = 0;
  if (!ev || json_is_null(ev)) {
    for (k = 0; durin_webhook_events[k]; k++)
      snprintf(list + strlen(list), len - strlen(list), "%s%s", k ? "," : "",
               durin_webhook_events[k]);
    return 0;
  }
  if (!json_is_array(ev) || !json_array_size(ev))
    return reply_error_field(r, 400, "bad_field", "events",
                             "events is a non-empty array of event types "
                             "(or absent: all of them)"),
           -1;
  /* In the canonical order, each once. */
  for (k = 0; durin_webhook_events[k]; k++)
    json_array_foreach(ev, i, e)
      if (json_is_string(e) &&
          !strcmp(json_string_value(e), durin_webhook_events[k])) {
        snprintf(list + strlen(list), len - strlen(list), "%s%s",
                 *list ? "," : "", durin_webhook_events[k]);
        break;
      }
  json_array_foreach(ev, i, e) {
    const char *name = json_string_value(e);

    for (k = 0; name && durin_webhook_events[k]; k++)
      if (!strcmp(name, durin_webhook_events[k]))
        break;
    if (!name || !durin_webhook_events[k])
      return reply_error_field(r, 422, "bad_field", "events",
                               "'%s' is not an event type (run.started, "
                               "run.progress, approval.requested, "
                               "approval.decided, run.finished)",
                               name ? name : "(not a string)"),
             -1;
  }
  return 0;
}

/* An http(s) URL with a host, as curl parses it. */
static int url_ok(const char *url)
{
  CURLU *u;
  char *scheme = NULL, *host = NULL;
  int ok;

  if (strlen(url) > 2048 || strpbrk(url, " \t\r\n"))
    return 0;
  if (!(u = curl_url()))
    return 0;
  ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
       curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
       curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
       (!strcmp(scheme, "http") || !strcmp(scheme, "https")) && *host;
  curl_free(scheme);
  curl_free(host);
  curl_url_cleanup(u);
  return ok;
}

static int add_webhook(struct req *r)
{
  static const char *const fields[] = { "url", "events", "tenant", NULL };
  struct durin_webhook_sub sub;
  struct durin_err err = { 0 };
  json_t *body, *v, *out;
  const char *url, *tenant = NULL;
  char events[512], secret[80], loc[96];
  int rc;

  if (!(body = req_json(r)))
    return 0;
  if (req_unknown_field(r, body, fields))
    goto out;
  url = json_string_value(json_object_get(body, "url"));
  if (!url || !url_ok(url)) {
    reply_error_field(r, 400, "bad_field", "url",
                      "url must be an http:// or https:// URL");
    goto out;
  }
  if (parse_events(r, json_object_get(body, "events"), events, sizeof(events)))
    goto out;
  v = json_object_get(body, "tenant");
  if (v && !json_is_null(v) && !json_is_string(v)) {
    reply_error_field(r, 400, "bad_field", "tenant",
                      "tenant must be a string (or absent: every tenant)");
    goto out;
  }
  tenant = json_string_value(v);
  /* A tenant token subscribes to its own tenant's runs only. */
  if (srv_body_tenant(r, &tenant))
    goto out;
  memset(&sub, 0, sizeof(sub));
  if (durin_run_id_new(sub.id) || secret_new(secret, sizeof(secret))) {
    reply_error(r, 500, "internal", "cannot draw a random id or secret");
    goto out;
  }
  /* "wh" + the rest of a run id: time-ordered and unique like one. */
  memmove(sub.id + 2, sub.id + 1, strlen(sub.id + 1) + 1);
  memcpy(sub.id, "wh", 2);
  sub.tenant = tenant;
  sub.url = url;
  sub.events = events;
  sub.secret = secret;
  sub.created_ms = durin_now_ms();
  sub.created_by = r->who.name;
  if ((rc = durin_store_webhook_add(r->store, &sub, &err))) {
    reply_store_error(r, rc, &err);
    goto out;
  }
  srv_log(r->srv, "webhook %s to %s added by token '%s'", sub.id, url,
          r->who.name);
  out = sub_json(&sub);
  /* Shown once: the store keeps it to sign with, the API never shows it
   * again. */
  json_object_set_new(out, "secret", json_string(secret));
  reply_json(r, 201, out);
  snprintf(loc, sizeof(loc), "/v1/webhooks/%s", sub.id);
  MHD_add_response_header(r->resp, "Location", loc);
out:
  sodium_memzero(secret, sizeof(secret));
  json_decref(body);
  return 0;
}

static int list_one(const struct durin_webhook_sub *s, void *arg)
{
  json_array_append_new(arg, sub_json(s));
  return 0;
}

static int list_webhooks(struct req *r)
{
  struct durin_err err = { 0 };
  const char *tenant = req_arg(r, "tenant");
  json_t *arr = json_array();
  int rc;

  if (r->who.has_tenant) {
    if (tenant && strcmp(tenant, r->who.tenant))
      return reply_json(r, 200, json_pack("{s:o}", "webhooks", arr));
    tenant = r->who.tenant;
  }
  if ((rc = durin_store_webhook_list(r->store, tenant, list_one, arr, &err))) {
    json_decref(arr);
    return reply_store_error(r, rc, &err);
  }
  return reply_json(r, 200, json_pack("{s:o}", "webhooks", arr));
}

struct one_sub {
  json_t *j;
  char *tenant;
  int has_tenant;
};

static int got_sub(const struct durin_webhook_sub *s, void *arg)
{
  struct one_sub *o = arg;

  o->j = sub_json(s);
  o->has_tenant = s->tenant != NULL;
  o->tenant = s->tenant ? strdup(s->tenant) : NULL;
  return 0;
}

/* The subscription in param 0, if the request may see it; else 404 (a
 * tenant learns nothing of others' subscriptions). */
static int find_sub(struct req *r, struct one_sub *o)
{
  struct durin_err err = { 0 };
  int rc;

  memset(o, 0, sizeof(*o));
  rc = durin_store_webhook_get(r->store, r->param[0], got_sub, o, &err);
  if (rc == DURIN_ENOTFOUND ||
      (!rc && !req_sees_tenant(r, o->has_tenant ? o->tenant : NULL))) {
    json_decref(o->j);
    free(o->tenant);
    memset(o, 0, sizeof(*o));
    reply_error(r, 404, "not_found",
                "no webhook '%s' (list them with GET /v1/webhooks)",
                r->param[0]);
    return -1;
  }
  if (rc) {
    reply_store_error(r, rc, &err);
    return -1;
  }
  return 0;
}

static int get_webhook(struct req *r)
{
  struct one_sub o;

  if (find_sub(r, &o))
    return 0;
  free(o.tenant);
  return reply_json(r, 200, o.j);
}

static int remove_webhook(struct req *r)
{
  struct durin_err err = { 0 };
  struct one_sub o;
  int rc;

  if (find_sub(r, &o))
    return 0;
  json_decref(o.j);
  free(o.tenant);
  /* Its undelivered rows are given up at the next take. */
  if ((rc = durin_store_webhook_remove(r->store, r->param[0], &err)))
    return reply_store_error(r, rc, &err);
  srv_log(r->srv, "webhook %s removed by token '%s'", r->param[0], r->who.name);
  return reply_response(
      r, 204, MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT));
}

/* The store-wide secret that signs runs' own notify.webhooks. */
static int run_secret(struct req *r)
{
  struct durin_err err = { 0 };
  char *secret = NULL;
  int rc;

  if (r->who.has_tenant)
    return reply_error(r, 403, "forbidden",
                       "token '%s' works in tenant '%s' only; the secret "
                       "that signs runs' own webhooks is shared by every "
                       "tenant (ask an admin without a tenant)",
                       r->who.name, r->who.tenant);
  if ((rc = cli_webhook_secret(r->store, &secret, &err)))
    return reply_store_error(r, rc, &err);
  reply_json(r, 200, json_pack("{s:s}", "secret", secret));
  sodium_memzero(secret, strlen(secret));
  free(secret);
  return 0;
}

const struct route srv_webhook_routes[] = {
  { "POST", "/v1/webhooks", ROLE_ADMIN, add_webhook },
  { "GET", "/v1/webhooks", ROLE_ADMIN, list_webhooks },
  /* Before /v1/webhooks/{}: "secret" is no subscription's id. */
  { "GET", "/v1/webhooks/secret", ROLE_ADMIN, run_secret },
  { "GET", "/v1/webhooks/{}", ROLE_ADMIN, get_webhook },
  { "DELETE", "/v1/webhooks/{}", ROLE_ADMIN, remove_webhook },
  { NULL, NULL, ROLE_NONE, NULL },
};
