/*
 * GET /metrics: the process's metrics registry (include/durin/metrics.h)
 * and the store's counts, as Prometheus text 0.0.4. It is answered on
 * serve's API listener and, for `durin worker --metrics-listen ADDR`, on
 * a small listener of its own (one libmicrohttpd thread with its own
 * store connection). It needs no token, like /healthz: a scraper has
 * none, and what it shows is counts, tenant and agent names, not runs;
 * bind the listener to loopback or a private network.
 *
 * The store's counts are read at each scrape into a registry made for
 * that scrape, so two scrapes at once never share a gauge.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "durin/metrics.h"
#include "durin/store.h"
#include "server/server.h"

/* A scrape's answer is a few hundred series: 16 MiB is a runaway. */
#define METRICS_CAP (16u << 20)

struct store_gauges {
  struct durin_metric *runs, *pending, *oldest;
  int64_t now_ms;
};

static int on_gauge(const struct durin_store_gauge *g, void *arg)
{
  struct store_gauges *sg = arg;

  if (!strcmp(g->what, "runs")) {
    const char *v[2] = { g->tenant, g->status };

    durin_metric_set(sg->runs, v, (double)g->count);
  } else {
    const char *v[1] = { g->tenant };
    int64_t age = sg->now_ms - g->oldest_ms;

    durin_metric_set(sg->pending, v, (double)g->count);
    durin_metric_set(sg->oldest, v, (double)(age > 0 ? age : 0) / 1000.0);
  }
  return 0;
}

/* The store's counts in a registry of their own; *failed set when st
 * did not answer (or is NULL): store_up 0. */
static struct durin_metrics *store_read(struct durin_store *st, int *failed)
{
  static const char *const by_status[] = { "tenant", "status", NULL };
  static const char *const by_tenant[] = { "tenant", NULL };
  struct durin_metrics *g = durin_metrics_new();
  struct durin_metric *up;
  struct store_gauges sg;
  struct durin_err err = { 0 };
  int r;

  *failed = 1;
  if (!g)
    return NULL;
  sg.runs = durin_metrics_add(
      g, DURIN_METRIC_GAUGE, "durin.queue.depth", "{run}",
      "Runs not finished, by tenant and status, read from the store.",
      by_status, NULL, 0);
  sg.pending = durin_metrics_add(
      g, DURIN_METRIC_GAUGE, "durin.approvals.pending", "{approval}",
      "Approvals waiting for a person, by tenant, read from the store.",
      by_tenant, NULL, 0);
  sg.oldest = durin_metrics_add(
      g, DURIN_METRIC_GAUGE, "durin.approvals.oldest_pending.age", "s",
      "How long the oldest pending approval has waited for a person.",
      by_tenant, NULL, 0);
  up = durin_metrics_add(g, DURIN_METRIC_GAUGE, "durin.store.up", "1",
                         "1 if the store answered this scrape's queries.", NULL,
                         NULL, 0);
  sg.now_ms = durin_now_ms();
  r = st ? durin_store_gauges(st, on_gauge, &sg, &err) : DURIN_EIO;
  durin_metric_set(up, NULL, r ? 0 : 1);
  *failed = r != 0;
  return g;
}

struct durin_metrics *metrics_store_read(struct durin_store *st)
{
  int failed;

  return store_read(st, &failed);
}

/* The store's side, in a registry of its own; st NULL: store_up 0. */
static int render_store(struct durin_store *st, struct durin_buf *out)
{
  struct durin_metrics *g = metrics_store_read(st);
  int r;

  if (!g)
    return DURIN_ENOMEM;
  r = durin_metrics_render(g, out);
  durin_metrics_free(g);
  return r;
}

/* ---- the store's counts for the OTLP pusher ---- */

struct metrics_store_source {
  char *store_url;
  struct durin_store *st; /* the reader's thread's */
};

struct metrics_store_source *metrics_store_source_new(const char *store_url)
{
  struct metrics_store_source *s = calloc(1, sizeof(*s));

  if (s && !(s->store_url = strdup(store_url))) {
    free(s);
    s = NULL;
  }
  return s;
}

struct durin_metrics *metrics_store_source_read(void *arg)
{
  struct metrics_store_source *s = arg;
  struct durin_err err = { 0 };
  struct durin_metrics *g;
  int failed;

  /* Opened at the first read, on the reader's thread; a connection that
   * failed a read is opened again at the next. */
  if (!s->st && durin_store_open(s->store_url, &s->st, &err))
    s->st = NULL;
  g = store_read(s->st, &failed);
  if (failed && s->st) {
    durin_store_close(s->st);
    s->st = NULL;
  }
  return g;
}

void metrics_store_source_free(struct metrics_store_source *s)
{
  if (!s)
    return;
  durin_store_close(s->st);
  free(s->store_url);
  free(s);
}

/* m's text then the store's, as a response; NULL when out of memory. */
static struct MHD_Response *metrics_response(struct durin_store *st,
                                             struct durin_metrics *m)
{
  struct MHD_Response *resp;
  struct durin_buf b;
  size_t len;
  char *text;

  durin_buf_init(&b, METRICS_CAP);
  if ((m && durin_metrics_render(m, &b)) || render_store(st, &b)) {
    durin_buf_release(&b);
    return NULL;
  }
  text = durin_buf_detach(&b, &len);
  resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
  if (!resp) {
    free(text);
    return NULL;
  }
  MHD_add_response_header(resp, "Content-Type", DURIN_METRICS_CONTENT_TYPE);
  return resp;
}

static int get_metrics(struct req *r)
{
  struct MHD_Response *resp =
      metrics_response(r->store, srv_options(r->srv)->metrics);

  if (!resp)
    return reply_error(r, 500, "internal", "cannot make the answer");
  return reply_response(r, 200, resp);
}

const struct route srv_metrics_routes[] = {
  { "GET", "/metrics", ROLE_NONE, get_metrics },
  { NULL, NULL, ROLE_NONE, NULL },
};

/* ---- `durin worker --metrics-listen ADDR` ---- */

struct metrics_listener {
  struct MHD_Daemon *d;
  struct durin_metrics *m;
  char *store_url;
  struct durin_store *st; /* opened at the first scrape; its one thread's */
  int port;
};

static enum MHD_Result on_scrape(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
  static const char not_found[] = "only GET /metrics is answered here\n";
  struct metrics_listener *l = cls;
  struct MHD_Response *resp;
  struct durin_err err = { 0 };
  enum MHD_Result ret;
  int status = 200;

  (void)version;
  (void)upload;
  (void)upload_size;
  if (!*con_cls) { /* the headers: answer once the request is whole */
    *con_cls = l;
    return MHD_YES;
  }
  if (strcmp(method, "GET") || strcmp(url, "/metrics")) {
    status = 404;
    resp = MHD_create_response_from_buffer(
        sizeof(not_found) - 1, (void *)not_found, MHD_RESPMEM_PERSISTENT);
  } else {
    /* A store that went away is opened again at the next scrape. */
    if (!l->st && durin_store_open(l->store_url, &l->st, &err))
      l->st = NULL;
    resp = metrics_response(l->st, l->m);
    if (!resp)
      status = 500;
    if (!resp)
      resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
  }
  if (!resp)
    return MHD_NO;
  ret = MHD_queue_response(conn, (unsigned)status, resp);
  MHD_destroy_response(resp);
  return ret;
}

int metrics_listen(const char *addr, const char *store_url,
                   struct durin_metrics *m, struct metrics_listener **out,
                   struct durin_err *err)
{
  struct metrics_listener *l;
  struct sockaddr_in sa;
  const union MHD_DaemonInfo *info;
  const char *colon = strrchr(addr, ':');
  char host[64];
  char *end;
  long port;

  *out = NULL;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  port = colon ? strtol(colon + 1, &end, 10) : strtol(addr, &end, 10);
  if (!colon)
    snprintf(host, sizeof(host), "127.0.0.1");
  else
    snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
  if (*end || port < 0 || port > 65535 || !*host ||
      inet_pton(AF_INET, host, &sa.sin_addr) != 1)
    return durin_err_set(err, DURIN_EINVAL,
                         "--metrics-listen '%s' is not ADDR:PORT (an IPv4 "
                         "address, e.g. 127.0.0.1:9464) or PORT",
                         addr);
  sa.sin_port = htons((uint16_t)port);
  if (!(l = calloc(1, sizeof(*l))) || !(l->store_url = strdup(store_url))) {
    free(l);
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  }
  l->m = m;
  l->d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0,
      NULL, NULL, on_scrape, l, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
  if (!l->d) {
    free(l->store_url);
    free(l);
    return durin_err_set(err, DURIN_EIO,
                         "cannot listen on '%s' for metrics (in use?)", addr);
  }
  info = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_BIND_PORT);
  l->port = info ? info->port : (int)port;
  *out = l;
  return 0;
}

int metrics_listen_port(const struct metrics_listener *l)
{
  return l->port;
}

void metrics_listen_stop(struct metrics_listener *l)
{
  if (!l)
    return;
  MHD_stop_daemon(l->d);
  durin_store_close(l->st);
  free(l->store_url);
  free(l);
}
