/*
 * Live event streams (server-sent events).
 *
 * A stream is a libmicrohttpd connection whose response is a content
 * reader over the client's buffer: with nothing to send, the reader
 * suspends the connection (no busy loop, no thread per client). The hub,
 * one thread with a store connection of its own, fills the buffers and
 * resumes the connections. It reads the log past each client's cursor
 * when a commit says a run has new events: in-process through
 * durin_store_on_events() on every store handle of this process, across
 * processes through PostgreSQL's NOTIFY durin_events (one per run and
 * transaction). It never polls the log; a heartbeat comment goes out on
 * idle streams so proxies keep them open.
 *
 * A run's stream replays the log after the client's Last-Event-ID (or
 * ?after=SEQ), then goes live, and ends after the run's terminal event:
 * `id:` is the event's seq, so a client that reconnects gets every event
 * exactly once, in order, whichever server it reconnects to. The all-runs
 * stream is live only: events committed after the client connected, ids
 * "RUN/SEQ" for reference.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <microhttpd.h>

#include "durin/util.h"
#include "server/server.h"

/* Events read per run and round; a client further behind gets more in
 * the next round. */
#define READ_BATCH 500
/* Bytes buffered for a slow client before the hub stops reading for it
 * (it catches up from the log once the buffer drains). */
#define CLIENT_HIGH_WATER (1 << 20)
/* How long a stopping server waits for its streams to send their end. */
#define END_WAIT_MS 2000

struct client {
  struct client *next, **pprev;
  struct hub *hub;
  struct MHD_Connection *conn;
  pthread_mutex_t mu; /* the buffer and the flags below */
  char *buf;
  size_t len, off, cap;
  int suspended; /* the reader suspended the connection */
  int ended;     /* send what is buffered, then end the stream */
  int behind;    /* stopped at the high-water mark: read more later */
  int dead;      /* libmicrohttpd let go of it: the hub frees it */
  /* What it follows: one run (from cursor), or all (run_id ""). */
  char run_id[32];
  int64_t cursor;
  int has_tenant;
  char tenant[128];
  char types[256]; /* all-runs: ",a,b," or "" for every type */
  int64_t since_ms;
  int64_t last_send_ms;
  int fresh; /* just connected: catch up from the log */
};

#define WOKEN_MAX    4096
#define TENANT_CACHE 1024

struct hub {
  struct srv *srv;
  pthread_t th;
  int started;
  pthread_mutex_t mu; /* clients and woken */
  int efd;
  int stop;
  struct client *clients;
  char (*woken)[32];
  int nwoken;
  int wake_all; /* too many to list: every run with a client */
  struct durin_store *st;
  struct {
    char id[32];
    char tenant[128];
  } tenants[TENANT_CACHE];
};

/* ---- the client's side (libmicrohttpd's threads) ---- */

static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max)
{
  struct client *c = cls;
  ssize_t n = 0;

  (void)pos;
  pthread_mutex_lock(&c->mu);
  if (c->len > c->off) {
    size_t k = c->len - c->off;

    if (k > max)
      k = max;
    memcpy(out, c->buf + c->off, k);
    c->off += k;
    if (c->off == c->len)
      c->off = c->len = 0;
    n = (ssize_t)k;
    /* Drained below the mark: the hub reads on for it. */
    if (c->behind && c->len - c->off < CLIENT_HIGH_WATER / 2) {
      c->behind = 0;
      c->fresh = 1;
      eventfd_write(c->hub->efd, 1);
    }
  } else if (c->ended) {
    n = MHD_CONTENT_READER_END_OF_STREAM;
  } else {
    c->suspended = 1;
    MHD_suspend_connection(c->conn);
  }
  pthread_mutex_unlock(&c->mu);
  return n;
}

/*
 * libmicrohttpd is done with the client's response (the connection
 * closed). The hub unlinks and frees it on its next round: taking the
 * hub's lock here could deadlock with the hub resuming a connection
 * (libmicrohttpd may hold its cleanup lock while calling this).
 */
static void client_free(void *cls)
{
  struct client *c = cls;

  pthread_mutex_lock(&c->mu);
  c->dead = 1;
  pthread_mutex_unlock(&c->mu);
  eventfd_write(c->hub->efd, 1);
}

static void client_destroy(struct client *c)
{
  pthread_mutex_destroy(&c->mu);
  free(c->buf);
  free(c);
}

/* Unlinks and frees the clients libmicrohttpd let go of (hub->mu held). */
static void reap(struct hub *h)
{
  struct client **pp = &h->clients, *c;

  while ((c = *pp)) {
    int dead;

    pthread_mutex_lock(&c->mu);
    dead = c->dead;
    pthread_mutex_unlock(&c->mu);
    if (!dead) {
      pp = &c->next;
      continue;
    }
    *pp = c->next;
    if (c->next)
      c->next->pprev = pp;
    client_destroy(c);
  }
}

/* ---- filling buffers (the hub's thread) ---- */

static void put(struct client *c, const char *s, size_t n)
{
  if (c->len + n + 1 > c->cap) {
    size_t cap = c->cap ? c->cap : 4096;
    char *nb;

    while (cap < c->len + n + 1)
      cap *= 2;
    nb = realloc(c->buf, cap);
    if (!nb)
      return;
    c->buf = nb;
    c->cap = cap;
  }
  memcpy(c->buf + c->len, s, n);
  c->len += n;
}

/* Wakes the client's connection if its reader is waiting (c->mu held). A
 * suspended connection is never closed by libmicrohttpd, so one that is
 * suspended is alive. */
static void kick(struct client *c)
{
  if (c->suspended && !c->dead) {
    c->suspended = 0;
    MHD_resume_connection(c->conn);
  }
}

/*
 * One event as an SSE frame: "id: ID\ndata: JSON\n\n", with run_id in the
 * JSON for the all-runs stream. Built once per event and copied to every
 * client that gets it: with a thousand clients on a run, building it per
 * client was most of the hub's time.
 */
static char *event_frame(const char *run_id, const struct durin_event *ev,
                         int all, size_t *len)
{
  json_t *j = srv_event_json(ev);
  char *data, *frame = NULL;
  int n;

  if (all)
    json_object_set_new(j, "run_id", json_string(run_id));
  data = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!data)
    return NULL;
  n = all ?
          asprintf(&frame, "id: %s/%lld\ndata: %s\n\n", run_id,
                   (long long)ev->seq, data) :
          asprintf(&frame, "id: %lld\ndata: %s\n\n", (long long)ev->seq, data);
  free(data);
  if (n < 0)
    return NULL;
  *len = (size_t)n;
  return frame;
}

/* The stream's last frame: `end` when the run is over (nothing more will
 * come), `closing` when only this connection is (the server stops; the
 * client reconnects with Last-Event-ID, to it or another). */
static void end_stream(struct client *c, const char *event, const char *why)
{
  char line[200];

  snprintf(line, sizeof(line), "event: %s\ndata: {\"reason\":\"%s\"}\n\n",
           event, why);
  put(c, line, strlen(line));
  c->ended = 1;
}

static int terminal_event(const struct durin_event *ev)
{
  return !strcmp(ev->type, "run_finished");
}

struct read_ctx {
  struct hub *h;
  const char *run_id;
  int64_t from; /* the smallest cursor of the clients read for */
  int n;
  int64_t last;
};

static int deliver(const struct durin_event *ev, void *arg)
{
  struct read_ctx *rc = arg;
  struct client *c;
  char *frame = NULL;
  size_t len = 0;

  rc->n++;
  rc->last = ev->seq;
  for (c = rc->h->clients; c; c = c->next) {
    if (strcmp(c->run_id, rc->run_id) || ev->seq <= c->cursor || c->behind ||
        c->ended)
      continue;
    if (!frame && !(frame = event_frame(rc->run_id, ev, 0, &len)))
      return 0;
    pthread_mutex_lock(&c->mu);
    put(c, frame, len);
    c->cursor = ev->seq;
    if (terminal_event(ev))
      end_stream(c, "end", "run ended");
    else if (c->len - c->off > CLIENT_HIGH_WATER)
      c->behind = 1;
    kick(c);
    pthread_mutex_unlock(&c->mu);
  }
  free(frame);
  return 0;
}

/* Reads run_id's new events for its clients; returns 1 if more remain. */
static int serve_run(struct hub *h, const char *run_id)
{
  struct read_ctx rc = { h, run_id, INT64_MAX, 0, 0 };
  struct durin_err err = { 0 };
  struct client *c;
  int any = 0;

  for (c = h->clients; c; c = c->next)
    if (!strcmp(c->run_id, run_id) && !c->behind && !c->ended) {
      any = 1;
      if (c->cursor < rc.from)
        rc.from = c->cursor;
    }
  if (!any)
    return 0;
  if (durin_store_events_read(h->st, run_id, rc.from + 1, READ_BATCH, deliver,
                              &rc, &err)) {
    srv_log(h->srv, "streams: reading run %s: %s", run_id, err.msg);
    return 1;
  }
  if (rc.n == READ_BATCH)
    return 1;
  /* Nothing new for a client that just connected: a run that ended
   * without a terminal event in reach (or long ago) ends its stream. */
  if (rc.n == 0) {
    struct durin_run_info ri;

    if (durin_store_run_get(h->st, run_id, &ri, NULL) == 0) {
      if (durin_run_status_terminal(ri.status))
        for (c = h->clients; c; c = c->next)
          if (!strcmp(c->run_id, run_id) && !c->ended &&
              c->cursor >= ri.last_seq) {
            pthread_mutex_lock(&c->mu);
            end_stream(c, "end", "run ended");
            kick(c);
            pthread_mutex_unlock(&c->mu);
          }
      durin_run_info_clear(&ri);
    }
  }
  return 0;
}

static const char *tenant_of(struct hub *h, const char *run_id)
{
  uint64_t hv = 1469598103934665603ULL;
  const char *p;
  int slot;
  struct durin_run_info ri;

  for (p = run_id; *p; p++)
    hv = (hv ^ (unsigned char)*p) * 1099511628211ULL;
  slot = (int)(hv % TENANT_CACHE);
  if (!strcmp(h->tenants[slot].id, run_id))
    return h->tenants[slot].tenant;
  if (durin_store_run_get(h->st, run_id, &ri, NULL))
    return NULL;
  snprintf(h->tenants[slot].id, sizeof(h->tenants[slot].id), "%s", run_id);
  snprintf(h->tenants[slot].tenant, sizeof(h->tenants[slot].tenant), "%s",
           ri.tenant ? ri.tenant : "default");
  durin_run_info_clear(&ri);
  return h->tenants[slot].tenant;
}

/* The all-runs clients: what run_id committed since they connected.
 * Each keeps no per-run cursor; the hub's own (seen) does: per run, the
 * last seq it has passed on. */
struct seen {
  char id[32];
  int64_t last;
};

#define SEEN_SLOTS 8192
static struct seen *seen_slot(struct seen *tab, const char *run_id)
{
  uint64_t hv = 1469598103934665603ULL;
  const char *p;

  for (p = run_id; *p; p++)
    hv = (hv ^ (unsigned char)*p) * 1099511628211ULL;
  return &tab[hv % SEEN_SLOTS];
}

struct all_ctx {
  struct hub *h;
  const char *run_id;
  const char *tenant;
  int64_t last;
  int64_t min_since;
};

static int deliver_all(const struct durin_event *ev, void *arg)
{
  struct all_ctx *a = arg;
  struct client *c;
  char typ[80], *frame = NULL;
  size_t len = 0;

  a->last = ev->seq;
  snprintf(typ, sizeof(typ), ",%s,", ev->type);
  for (c = a->h->clients; c; c = c->next) {
    if (c->run_id[0] || c->ended || ev->ts_ms < c->since_ms)
      continue;
    if (c->has_tenant && (!a->tenant || strcmp(c->tenant, a->tenant)))
      continue;
    if (c->types[0] && !strstr(c->types, typ))
      continue;
    if (!frame && !(frame = event_frame(a->run_id, ev, 1, &len)))
      return 0;
    pthread_mutex_lock(&c->mu);
    if (c->len - c->off < CLIENT_HIGH_WATER)
      put(c, frame, len);
    kick(c);
    pthread_mutex_unlock(&c->mu);
  }
  free(frame);
  return 0;
}

static void serve_all(struct hub *h, struct seen *seen, const char *run_id)
{
  struct all_ctx a = { h, run_id, NULL, 0, INT64_MAX };
  struct seen *s = seen_slot(seen, run_id);
  struct client *c;
  int64_t from = 1;

  for (c = h->clients; c; c = c->next)
    if (!c->run_id[0] && !c->ended && c->since_ms < a.min_since)
      a.min_since = c->since_ms;
  if (a.min_since == INT64_MAX)
    return;
  if (!strcmp(s->id, run_id))
    from = s->last + 1;
  a.tenant = tenant_of(h, run_id);
  a.last = from - 1;
  /* A run first seen here: its events since the oldest client came. */
  if (durin_store_events_read(h->st, run_id, from, READ_BATCH, deliver_all, &a,
                              NULL) == 0) {
    snprintf(s->id, sizeof(s->id), "%s", run_id);
    s->last = a.last;
  }
}

static void heartbeat(struct hub *h, int64_t now)
{
  struct client *c;
  int64_t every = srv_options(h->srv)->stream_heartbeat_ms;

  for (c = h->clients; c; c = c->next) {
    if (c->ended || now - c->last_send_ms < every)
      continue;
    pthread_mutex_lock(&c->mu);
    put(c, ": keepalive\n\n", 13);
    c->last_send_ms = now;
    kick(c);
    pthread_mutex_unlock(&c->mu);
  }
}

static void on_notify(void *arg, const char *run_id)
{
  struct hub *h = arg;

  if (h->nwoken < WOKEN_MAX) {
    int i;

    for (i = 0; i < h->nwoken; i++)
      if (!strcmp(h->woken[i], run_id))
        return;
    snprintf(h->woken[h->nwoken++], 32, "%s", run_id);
  } else {
    h->wake_all = 1;
  }
}

static void *hub_main(void *arg)
{
  struct hub *h = arg;
  struct seen *seen = calloc(SEEN_SLOTS, sizeof(*seen));
  char(*mine)[32] = calloc(WOKEN_MAX, 32);
  int64_t hb = srv_options(h->srv)->stream_heartbeat_ms;

  while (seen && mine) {
    struct pollfd pf[2];
    int nfd = 1, n, i, all, again = 0;
    int pgfd = durin_store_events_fd(h->st);
    struct client *c;
    eventfd_t v;

    pf[0].fd = h->efd;
    pf[0].events = POLLIN;
    if (pgfd >= 0) {
      pf[1].fd = pgfd;
      pf[1].events = POLLIN;
      nfd = 2;
    }
    poll(pf, (nfds_t)nfd, (int)(hb < 1000 ? hb : 1000));
    if (pf[0].revents & POLLIN)
      eventfd_read(h->efd, &v);
    pthread_mutex_lock(&h->mu);
    reap(h);
    if (h->stop) {
      pthread_mutex_unlock(&h->mu);
      break;
    }
    if (nfd == 2 && (pf[1].revents & (POLLIN | POLLERR | POLLHUP)))
      durin_store_events_drain(h->st, on_notify, h);
    n = h->nwoken;
    memcpy(mine, h->woken, (size_t)n * 32);
    all = h->wake_all;
    h->nwoken = 0;
    h->wake_all = 0;
    /* New clients, and those woken at their high-water mark, catch up. */
    for (c = h->clients; c; c = c->next)
      if (c->fresh) {
        c->fresh = 0;
        if (c->run_id[0] && n < WOKEN_MAX)
          snprintf(mine[n++], 32, "%s", c->run_id);
      }
    if (all)
      for (c = h->clients; c; c = c->next)
        if (c->run_id[0] && n < WOKEN_MAX)
          snprintf(mine[n++], 32, "%s", c->run_id);
    for (i = 0; i < n; i++) {
      int j, dup = 0;

      for (j = 0; j < i && !dup; j++)
        dup = !strcmp(mine[j], mine[i]);
      if (dup)
        continue;
      if (serve_run(h, mine[i]))
        again = 1, on_notify(h, mine[i]);
      serve_all(h, seen, mine[i]);
    }
    heartbeat(h, durin_now_ms());
    pthread_mutex_unlock(&h->mu);
    if (again)
      eventfd_write(h->efd, 1);
  }
  free(seen);
  free(mine);
  return NULL;
}

int hub_start(struct srv *s, struct hub **out, struct durin_err *err)
{
  struct hub *h = calloc(1, sizeof(*h));
  int r;

  *out = NULL;
  if (!h)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  h->srv = s;
  pthread_mutex_init(&h->mu, NULL);
  h->woken = calloc(WOKEN_MAX, 32);
  h->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (!h->woken || h->efd < 0) {
    hub_stop(h);
    return durin_err_set(err, DURIN_EIO, "cannot make the stream hub: %s",
                         strerror(errno));
  }
  if ((r = durin_store_open(srv_options(s)->store_url, &h->st, err))) {
    hub_stop(h);
    return r;
  }
  durin_store_on_events(h->st, srv_events_committed, s);
  if (pthread_create(&h->th, NULL, hub_main, h)) {
    hub_stop(h);
    return durin_err_set(err, DURIN_EIO, "cannot start the stream hub");
  }
  h->started = 1;
  *out = h;
  return 0;
}

/* Whether libmicrohttpd has let go of every stream (each sent to its end). */
static int all_sent(struct hub *h)
{
  struct client *c;
  int dead = 1;

  pthread_mutex_lock(&h->mu);
  for (c = h->clients; c && dead; c = c->next) {
    pthread_mutex_lock(&c->mu);
    dead = c->dead;
    pthread_mutex_unlock(&c->mu);
  }
  pthread_mutex_unlock(&h->mu);
  return dead;
}

void hub_end_all(struct hub *h)
{
  struct client *c;
  int waited;

  if (!h)
    return;
  pthread_mutex_lock(&h->mu);
  h->stop = 1;
  for (c = h->clients; c; c = c->next) {
    pthread_mutex_lock(&c->mu);
    if (!c->ended)
      end_stream(c, "closing", "server stopping");
    kick(c);
    pthread_mutex_unlock(&c->mu);
  }
  pthread_mutex_unlock(&h->mu);
  if (h->efd >= 0)
    eventfd_write(h->efd, 1);
  if (h->started) {
    pthread_join(h->th, NULL);
    h->started = 0;
    /* The resumed connections send their "end" from libmicrohttpd's
     * threads; the daemon's stop, next, closes whatever is still open.
     * A moment for them (bounded: a client that does not read is cut). */
    for (waited = 0; waited < END_WAIT_MS && !all_sent(h); waited += 10)
      usleep(10 * 1000);
  }
}

void hub_stop(struct hub *h)
{
  struct client *c, *next;

  if (!h)
    return;
  hub_end_all(h);
  /* The daemon has stopped: every client left is the hub's to free. */
  for (c = h->clients; c; c = next) {
    next = c->next;
    client_destroy(c);
  }
  if (h->efd >= 0)
    close(h->efd);
  durin_store_close(h->st);
  free(h->woken);
  pthread_mutex_destroy(&h->mu);
  free(h);
}

void hub_wake(struct hub *h, const char *run_id)
{
  pthread_mutex_lock(&h->mu);
  on_notify(h, run_id);
  pthread_mutex_unlock(&h->mu);
  eventfd_write(h->efd, 1);
}

/* ---- the endpoints ---- */

static int start_stream(struct req *r, struct client *c)
{
  struct hub *h = srv_hub(r->srv);
  struct MHD_Response *resp;

  c->hub = h;
  c->conn = r->conn;
  c->fresh = 1;
  c->last_send_ms = durin_now_ms();
  pthread_mutex_init(&c->mu, NULL);
  /* Reconnect quickly: the log has everything since the last id. */
  put(c, "retry: 1000\n\n", 13);
  resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, reader,
                                           c, client_free);
  if (!resp) {
    client_destroy(c);
    return reply_error(r, 500, "internal", "cannot start the stream");
  }
  MHD_add_response_header(resp, "Content-Type", "text/event-stream");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  MHD_add_response_header(resp, "X-Accel-Buffering", "no");
  pthread_mutex_lock(&h->mu);
  c->next = h->clients;
  if (h->clients)
    h->clients->pprev = &c->next;
  h->clients = c;
  c->pprev = &h->clients;
  pthread_mutex_unlock(&h->mu);
  eventfd_write(h->efd, 1);
  return reply_response(r, 200, resp);
}

static int run_stream(struct req *r)
{
  struct durin_run_info ri;
  const char *last = req_header(r, "Last-Event-ID");
  const char *after = req_arg(r, "after");
  struct client *c;
  char *end;
  long long from = 0;

  if (last || after) {
    from = strtoll(last ? last : after, &end, 10);
    if (*end || from < 0)
      return reply_error(r, 400, "bad_query",
                         "Last-Event-ID (or ?after=) is the seq of the last "
                         "event seen, a number; '%s' is not",
                         last ? last : after);
  }
  if (req_run(r, r->param[0], &ri))
    return 0;
  c = calloc(1, sizeof(*c));
  if (!c) {
    durin_run_info_clear(&ri);
    return reply_error(r, 500, "internal", "out of memory");
  }
  snprintf(c->run_id, sizeof(c->run_id), "%s", ri.id);
  c->cursor = from;
  durin_run_info_clear(&ri);
  return start_stream(r, c);
}

static int all_stream(struct req *r)
{
  const char *tenant = req_arg(r, "tenant"), *types = req_arg(r, "types");
  struct client *c = calloc(1, sizeof(*c));

  if (!c)
    return reply_error(r, 500, "internal", "out of memory");
  if (r->who.has_tenant) {
    if (tenant && strcmp(tenant, r->who.tenant)) {
      free(c);
      return reply_error_field(r, 403, "forbidden", "tenant",
                               "token '%s' sees tenant '%s' only", r->who.name,
                               r->who.tenant);
    }
    tenant = r->who.tenant;
  }
  if (tenant) {
    c->has_tenant = 1;
    snprintf(c->tenant, sizeof(c->tenant), "%s", tenant);
  }
  if (types)
    snprintf(c->types, sizeof(c->types), ",%s,", types);
  c->since_ms = durin_now_ms();
  return start_stream(r, c);
}

const struct route srv_stream_routes[] = {
  { "GET", "/v1/runs/{}/events/stream", ROLE_VIEWER, run_stream },
  { "GET", "/v1/events/stream", ROLE_VIEWER, all_stream },
  { NULL, NULL, ROLE_NONE, NULL },
};
