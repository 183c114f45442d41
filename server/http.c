/*
 * The HTTP side of durin serve: libmicrohttpd's daemon, the caps on what
 * a request may cost, authentication, per-token rate limits, routing and
 * the one error shape every answer shares.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "durin/util.h"
#include "server/server.h"
#include "server/workspaces.h"

/* Store connections for requests: opened as needed, kept for reuse. */
#define POOL_MAX 32

/* Per-token buckets for rate limits. */
#define BUCKETS 256

struct bucket {
  char name[128];
  double tokens;
  int64_t at_ms;
};

struct srv {
  struct srv_opts o;
  char *listen, *store_url, *data_dir, *workspace_root;
  struct MHD_Daemon *d;
  int port;
  char *tls_cert, *tls_key;

  pthread_mutex_t mu; /* the pool and the buckets */
  pthread_cond_t cv;
  struct durin_store *pool[POOL_MAX];
  int npool, open_count;
  struct bucket buckets[BUCKETS];

  struct hub *hub;
  struct webhooks *webhooks;
};

/* Liveness: the process answers (it asks nothing of the store). It says
 * whether requests need a token, so a client (the dashboard) on a
 * --no-auth serve knows not to ask for one. */
static int healthz(struct req *r)
{
  return reply_json(
      r, 200,
      json_pack("{s:s,s:b}", "status", "ok", "auth", !r->srv->o.no_auth));
}

static const struct route http_routes[] = {
  { "GET", "/healthz", ROLE_NONE, healthz },
  { NULL, NULL, ROLE_NONE, NULL },
};

/* Every route, by the file that answers it. */
static const struct route *const route_tables[] = {
  http_routes,          /* here: /healthz */
  srv_run_routes,       /* runs.c */
  srv_fork_routes,      /* fork.c: fork and continue */
  srv_approval_routes,  /* approvals.c */
  srv_admin_routes,     /* admin.c */
  srv_stream_routes,    /* hub.c */
  srv_webhook_routes,   /* webhooks.c */
  srv_secret_routes,    /* secrets.c */
  srv_trigger_routes,   /* triggers.c: inbound webhooks */
  srv_schedule_routes,  /* schedules.c */
  srv_workspace_routes, /* workspaces.c */
  srv_openapi_routes,   /* openapi.c */
  srv_diff_routes,      /* diff.c */
  srv_review_routes,    /* review.c */
  srv_timeline_routes,  /* timeline.c */
  srv_web_routes,       /* web.c: the dashboard */
  srv_metrics_routes,   /* metrics.c: /metrics */
  NULL,
};

/* ---- the store pool ---- */

static struct durin_store *pool_get(struct srv *s, struct durin_err *err)
{
  struct durin_store *st = NULL;

  pthread_mutex_lock(&s->mu);
  while (!s->npool && s->open_count >= POOL_MAX)
    pthread_cond_wait(&s->cv, &s->mu);
  if (s->npool)
    st = s->pool[--s->npool];
  else
    s->open_count++;
  pthread_mutex_unlock(&s->mu);
  if (st)
    return st;
  if (durin_store_open(s->store_url, &st, err)) {
    pthread_mutex_lock(&s->mu);
    s->open_count--;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
  }
  /* Its commits wake streams in this process (and other processes'
   * through NOTIFY): a decision, a cancel, a resume. */
  durin_store_on_events(st, srv_events_committed, s);
  return st;
}

static void pool_put(struct srv *s, struct durin_store *st)
{
  pthread_mutex_lock(&s->mu);
  s->pool[s->npool++] = st;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* ---- answers ---- */

int reply_response(struct req *r, int status, struct MHD_Response *resp)
{
  if (r->resp)
    MHD_destroy_response(r->resp);
  r->status = status;
  r->resp = resp;
  return 0;
}

int reply_json(struct req *r, int status, json_t *j)
{
  char *text = json_dumps(j, JSON_COMPACT);
  size_t len = text ? strlen(text) : 0;
  struct MHD_Response *resp;

  json_decref(j);
  if (!text)
    return reply_error(r, 500, "internal", "cannot encode the answer");
  /* A newline: curl output and logs read better. */
  text = realloc(text, len + 2);
  text[len++] = '\n';
  text[len] = 0;
  resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
  MHD_add_response_header(resp, "Content-Type", "application/json");
  return reply_response(r, status, resp);
}

static int reply_verror(struct req *r, int status, const char *code,
                        const char *field, const char *fmt, va_list ap)
{
  char msg[1024];
  json_t *e;

  vsnprintf(msg, sizeof(msg), fmt, ap);
  e = json_pack("{s:s,s:s}", "code", code, "message", msg);
  if (field)
    json_object_set_new(e, "field", json_string(field));
  return reply_json(r, status, json_pack("{s:o}", "error", e));
}

int reply_error(struct req *r, int status, const char *code, const char *fmt,
                ...)
{
  va_list ap;
  int rc;

  va_start(ap, fmt);
  rc = reply_verror(r, status, code, NULL, fmt, ap);
  va_end(ap);
  return rc;
}

int reply_error_field(struct req *r, int status, const char *code,
                      const char *field, const char *fmt, ...)
{
  va_list ap;
  int rc;

  va_start(ap, fmt);
  rc = reply_verror(r, status, code, field, fmt, ap);
  va_end(ap);
  return rc;
}

int reply_store_error(struct req *r, int code, const struct durin_err *err)
{
  if (code == DURIN_ENOTFOUND)
    return reply_error(r, 404, "not_found", "%s", err->msg);
  if (code == DURIN_ESTATE)
    return reply_error(r, 409, "conflict", "%s", err->msg);
  if (code == DURIN_EEXIST)
    return reply_error(r, 409, "conflict", "%s", err->msg);
  if (code == DURIN_EINVAL || code == DURIN_ESPEC)
    return reply_error(r, 422, "invalid", "%s", err->msg);
  if (code == DURIN_EBUSY) {
    reply_error(r, 503, "unavailable",
                "the store cannot be reached for now (%s); retry shortly",
                err->msg);
    MHD_add_response_header(r->resp, "Retry-After", "1");
    return 0;
  }
  srv_log(r->srv, "%s %s: %s", r->method, r->path, err->msg);
  return reply_error(r, 500, "store",
                     "the store failed (%s); nothing committed was lost, "
                     "retry the request",
                     err->msg);
}

const char *req_arg(struct req *r, const char *name)
{
  return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *req_header(struct req *r, const char *name)
{
  return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

json_t *req_json(struct req *r)
{
  json_error_t je;
  json_t *j;

  if (!r->body_len) {
    reply_error(r, 400, "bad_request",
                "this request needs a JSON object as its body");
    return NULL;
  }
  j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
  if (!j) {
    reply_error(r, 400, "bad_json",
                "the body is not valid JSON: %s (line %d, column %d)", je.text,
                je.line, je.column);
    return NULL;
  }
  if (!json_is_object(j)) {
    json_decref(j);
    reply_error(r, 400, "bad_json", "the body must be a JSON object");
    return NULL;
  }
  return j;
}

/* An unknown field: 400 naming it, with the nearest known one. */
int req_unknown_field(struct req *r, json_t *body, const char *const *known)
{
  const char *key, *best;
  json_t *v;

  json_object_foreach(body, key, v) {
    if (durin_known_word(key, known, &best))
      continue;
    if (best)
      reply_error_field(r, 400, "unknown_field", key,
                        "field '%s' is not known; did you mean '%s'?", key,
                        best);
    else
      reply_error_field(r, 400, "unknown_field", key,
                        "field '%s' is not known (see /v1/openapi.json)", key);
    return 1;
  }
  return 0;
}

/* A string field of body, or NULL; answers 400 if it is not a string. */
int req_opt_string(struct req *r, json_t *body, const char *name,
                   const char **out)
{
  json_t *v = json_object_get(body, name);

  *out = NULL;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_string(v)) {
    reply_error_field(r, 400, "bad_field", name, "field '%s' must be a string",
                      name);
    return -1;
  }
  *out = json_string_value(v);
  return 0;
}

int req_opt_int(struct req *r, json_t *body, const char *name, int64_t *out)
{
  json_t *v = json_object_get(body, name);

  if (!v || json_is_null(v))
    return 0;
  if (!json_is_integer(v)) {
    reply_error_field(r, 400, "bad_field", name,
                      "field '%s' must be an integer", name);
    return -1;
  }
  *out = json_integer_value(v);
  return 0;
}

int req_sees_tenant(const struct req *r, const char *tenant)
{
  return !r->who.has_tenant || (tenant && !strcmp(r->who.tenant, tenant));
}

int req_run(struct req *r, const char *id, struct durin_run_info *ri)
{
  struct durin_err err = { 0 };
  int rc;

  memset(ri, 0, sizeof(*ri));
  rc = durin_store_run_get(r->store, id, ri, &err);
  if (rc == DURIN_ENOTFOUND || (!rc && !req_sees_tenant(r, ri->tenant))) {
    if (!rc)
      durin_run_info_clear(ri);
    reply_error(r, 404, "not_found",
                "no run '%s' (list runs with GET /v1/runs)", id);
    return -1;
  }
  if (rc) {
    reply_store_error(r, rc, &err);
    return -1;
  }
  return 0;
}

/* ---- who asks ---- */

struct tok_ctx {
  struct who *w;
};

static int got_token(const struct durin_token *t, void *arg)
{
  struct who *w = arg;

  snprintf(w->name, sizeof(w->name), "%s", t->name);
  w->role = role_parse(t->role);
  w->has_tenant = t->tenant != NULL;
  snprintf(w->tenant, sizeof(w->tenant), "%s", t->tenant ? t->tenant : "");
  return 0;
}

/* Whether host (a Host header: NAME[:PORT] or [V6]:PORT) names this
 * machine's loopback. */
static int loopback_host(const char *host)
{
  static const char *const names[] = { "127.0.0.1", "localhost", "[::1]",
                                       NULL };
  size_t n;
  int i;

  for (i = 0; names[i]; i++) {
    n = strlen(names[i]);
    if (!strncasecmp(host, names[i], n) && (!host[n] || host[n] == ':'))
      return 1;
  }
  return 0;
}

/*
 * Without tokens (--no-auth), any program that can reach the port is an
 * admin, and so would be any web page the user's browser shows: a page
 * may POST to 127.0.0.1 without asking (a "simple" request), and a DNS
 * name rebound to 127.0.0.1 reads the answers. So such a serve takes only
 * requests addressed to a loopback name (Host), and from a browser only
 * those of its own pages (Origin, which browsers send on every cross-site
 * POST and every fetch but a same-origin GET). Answers 403 and returns -1
 * otherwise.
 */
static int local_only(struct req *r)
{
  const char *host = req_header(r, "Host"), *origin = req_header(r, "Origin");
  const char *rest;

  if (!host || !loopback_host(host)) {
    reply_error(r, 403, "forbidden",
                "this serve runs without tokens (--no-auth) and answers only "
                "requests to a loopback address (127.0.0.1, localhost), not "
                "'%s'",
                host ? host : "(no Host)");
    return -1;
  }
  if (!origin)
    return 0;
  rest = !strncmp(origin, "http://", 7)  ? origin + 7 :
         !strncmp(origin, "https://", 8) ? origin + 8 :
                                           NULL;
  if (rest && !strcasecmp(rest, host))
    return 0;
  reply_error(r, 403, "forbidden",
              "this serve runs without tokens (--no-auth) and takes no "
              "request from another site's page (Origin '%s'); start it with "
              "tokens to use it from elsewhere",
              origin);
  return -1;
}

/* Fills r->who from the Authorization header; answers 401 if it cannot. */
static int authenticate(struct req *r)
{
  const char *h = req_header(r, "Authorization");
  struct durin_err err = { 0 };
  char hash[65];
  int rc;

  if (r->srv->o.no_auth) {
    if (local_only(r))
      return -1;
    snprintf(r->who.name, sizeof(r->who.name), "local");
    r->who.role = ROLE_ADMIN;
    return 0;
  }
  if (!h || strncasecmp(h, "Bearer ", 7) != 0 || !h[7]) {
    reply_error(r, 401, "unauthorized",
                "send an API token as 'Authorization: Bearer TOKEN' (make "
                "one with 'durin token create NAME --role viewer')");
    MHD_add_response_header(r->resp, "WWW-Authenticate", "Bearer");
    return -1;
  }
  token_hash(h + 7, hash);
  rc = durin_store_token_find(r->store, hash, got_token, &r->who, &err);
  if (rc == DURIN_ENOTFOUND) {
    /* The same answer for unknown and revoked: nothing to learn. */
    reply_error(r, 401, "unauthorized",
                "the token is not valid (revoked, mistyped or from another "
                "store); ask an admin for a new one");
    MHD_add_response_header(r->resp, "WWW-Authenticate", "Bearer");
    return -1;
  }
  if (rc) {
    reply_store_error(r, rc, &err);
    return -1;
  }
  return 0;
}

/* A token bucket per token name: 429 with Retry-After when empty. */
static int rate_limited(struct req *r)
{
  struct srv *s = r->srv;
  struct bucket *b = NULL;
  uint64_t hv = 1469598103934665603ULL;
  const char *c;
  int64_t now = durin_now_ms();
  double wait_s = 0;
  int i;

  if (s->o.rate <= 0)
    return 0;
  for (c = r->who.name; *c; c++)
    hv = (hv ^ (unsigned char)*c) * 1099511628211ULL;
  pthread_mutex_lock(&s->mu);
  /* Open addressing; a full table shares the last slot probed. */
  for (i = 0; i < BUCKETS; i++) {
    b = &s->buckets[(hv + (uint64_t)i) % BUCKETS];
    if (!b->name[0] || !strcmp(b->name, r->who.name))
      break;
  }
  if (!b->name[0] || strcmp(b->name, r->who.name)) {
    snprintf(b->name, sizeof(b->name), "%s", r->who.name);
    b->tokens = s->o.burst;
    b->at_ms = now;
  }
  b->tokens += (double)(now - b->at_ms) / 1000.0 * s->o.rate;
  if (b->tokens > s->o.burst)
    b->tokens = s->o.burst;
  b->at_ms = now;
  if (b->tokens >= 1)
    b->tokens -= 1;
  else
    wait_s = (1 - b->tokens) / s->o.rate;
  pthread_mutex_unlock(&s->mu);
  if (wait_s > 0) {
    char ra[32];

    reply_error(r, 429, "rate_limited",
                "token '%s' sent more than %g requests a second; retry "
                "after the time in Retry-After",
                r->who.name, s->o.rate);
    snprintf(ra, sizeof(ra), "%d", (int)ceil(wait_s));
    MHD_add_response_header(r->resp, "Retry-After", ra);
    return 1;
  }
  return 0;
}

/* ---- routing ---- */

/* Matches path against pattern ("{}" is one segment), filling params. */
static int match(const char *pattern, char *path, const char **params)
{
  const char *p = pattern;
  char *q = path;
  int n = 0;

  while (*p && *q) {
    if (p[0] == '{' && p[1] == '}') {
      char *end = strchr(q, '/');
      size_t len = end ? (size_t)(end - q) : strlen(q);

      if (!len || n == REQ_MAX_PARAMS)
        return 0;
      params[n++] = q;
      p += 2;
      q += len;
      continue;
    }
    if (*p != *q)
      return 0;
    p++;
    q++;
  }
  return !*p && !*q;
}

static void dispatch(struct req *r)
{
  const struct route *found = NULL;
  int path_known = 0, t, i;
  char allowed[128] = "";

  if (r->too_big) {
    reply_error(r, 413, "too_large",
                "the body is larger than this server takes (%lld bytes for "
                "JSON, %lld for an archive); send less",
                (long long)r->srv->o.max_body, (long long)r->srv->o.max_upload);
    return;
  }
  for (t = 0; route_tables[t] && !found; t++)
    for (i = 0; route_tables[t][i].method && !found; i++) {
      const struct route *rt = &route_tables[t][i];
      const char *params[REQ_MAX_PARAMS] = { 0 };
      char *copy = strdup(r->path);
      int m = copy && match(rt->pattern, copy, params);

      free(copy);
      if (!m)
        continue;
      path_known = 1;
      if (strcmp(rt->method, r->method)) {
        size_t len = strlen(allowed);

        snprintf(allowed + len, sizeof(allowed) - len, "%s%s", len ? ", " : "",
                 rt->method);
        continue;
      }
      found = rt;
    }
  if (!found && path_known) {
    reply_error(r, 405, "method_not_allowed", "%s is not allowed on %s; use %s",
                r->method, r->path, allowed);
    MHD_add_response_header(r->resp, "Allow", allowed);
    return;
  }
  if (!found) {
    reply_error(r, 404, "not_found",
                "no endpoint %s %s (the API is described at "
                "/v1/openapi.json)",
                r->method, r->path);
    return;
  }
  /* The params point into r->path, split at its slashes. */
  {
    const char *params[REQ_MAX_PARAMS] = { 0 };
    char *p;

    match(found->pattern, r->path, params);
    for (i = 0; i < REQ_MAX_PARAMS; i++)
      r->param[i] = params[i];
    for (i = 0; i < REQ_MAX_PARAMS && params[i]; i++)
      if ((p = strchr(params[i], '/')))
        *p = 0;
  }
  if (found->min_role == ROLE_NONE) {
    found->fn(r);
    return;
  }
  if (authenticate(r) || rate_limited(r))
    return;
  if (r->who.role < found->min_role) {
    reply_error(r, 403, "forbidden",
                "token '%s' is a %s; this needs the %s role (ask an admin)",
                r->who.name, role_name(r->who.role),
                role_name(found->min_role));
    return;
  }
  found->fn(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
  struct srv *s = cls;
  struct req *r = *con_cls;
  struct durin_err err = { 0 };
  enum MHD_Result ret;

  (void)version;
  if (!r) {
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    /* Uploads get theirs; never the unauthenticated trigger route, whose
     * name may say "workspace". */
    int64_t cap =
        strncmp(url, "/v1/triggers/", 13) &&
                (strstr(url, "/workspaces") || strstr(url, "/workspace")) ?
            s->o.max_upload :
            s->o.max_body;

    r = calloc(1, sizeof(*r));
    if (!r)
      return MHD_NO;
    r->srv = s;
    r->conn = conn;
    r->method = method;
    r->path = strdup(url);
    r->body_cap = (size_t)cap;
    if (cl && strtoll(cl, NULL, 10) > cap)
      r->too_big = 1;
    *con_cls = r;
    return MHD_YES;
  }
  if (*upload_size) {
    if (!r->too_big && r->body_len + *upload_size > r->body_cap)
      r->too_big = 1;
    if (!r->too_big) {
      char *nb = realloc(r->body, r->body_len + *upload_size + 1);

      if (!nb)
        return MHD_NO;
      r->body = nb;
      memcpy(r->body + r->body_len, upload, *upload_size);
      r->body_len += *upload_size;
      r->body[r->body_len] = 0;
    }
    *upload_size = 0;
    return MHD_YES;
  }
  /* The dashboard's files need no store: its pages load, and say what is
   * wrong, while the store is away. */
  if (!strcmp(r->path, "/") || !strncmp(r->path, "/ui/", 4))
    dispatch(r);
  else if (!(r->store = pool_get(s, &err)))
    reply_error(r, 503, "unavailable",
                "the store cannot be reached (%s); retry shortly", err.msg);
  else
    dispatch(r);
  if (r->store) {
    pool_put(s, r->store);
    r->store = NULL;
  }
  if (!r->resp)
    reply_error(r, 500, "internal", "no answer was made");
  ret = MHD_queue_response(conn, (unsigned)r->status, r->resp);
  MHD_destroy_response(r->resp);
  r->resp = NULL;
  return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
  struct req *r = *con_cls;

  (void)cls;
  (void)conn;
  (void)toe;
  if (!r)
    return;
  free(r->path);
  free(r->body);
  free(r);
  *con_cls = NULL;
}

/* ---- life ---- */

static int parse_listen(const char *listen, struct sockaddr_in *sa,
                        struct durin_err *err)
{
  char host[64];
  const char *colon = strrchr(listen, ':');
  long port;

  memset(sa, 0, sizeof(*sa));
  sa->sin_family = AF_INET;
  if (!colon || (size_t)(colon - listen) >= sizeof(host))
    return durin_err_set(err, DURIN_EINVAL,
                         "--listen '%s': give ADDR:PORT, e.g. 127.0.0.1:7700",
                         listen);
  memcpy(host, listen, (size_t)(colon - listen));
  host[colon - listen] = 0;
  port = strtol(colon + 1, NULL, 10);
  if (port < 0 || port > 65535 ||
      inet_pton(AF_INET, *host ? host : "0.0.0.0", &sa->sin_addr) != 1)
    return durin_err_set(err, DURIN_EINVAL,
                         "--listen '%s': '%s' is not an IPv4 address or the "
                         "port is out of range",
                         listen, host);
  sa->sin_port = htons((uint16_t)port);
  return 0;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
  struct srv *s = cls;
  char line[512];

  vsnprintf(line, sizeof(line), fmt, ap);
  line[strcspn(line, "\n")] = 0;
  srv_log(s, "http: %s", line);
}

int srv_start(const struct srv_opts *o, struct srv **out, struct durin_err *err)
{
  struct sockaddr_in sa;
  struct srv *s;
  const union MHD_DaemonInfo *info;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                   MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  int r;

  *out = NULL;
  if ((r = parse_listen(o->listen ? o->listen : "127.0.0.1:7700", &sa, err)))
    return r;
  if (o->no_auth && ntohl(sa.sin_addr.s_addr) >> 24 != 127)
    return durin_err_set(err, DURIN_EINVAL,
                         "--no-auth serves without tokens, so it listens on "
                         "loopback only; use --listen 127.0.0.1:PORT or make "
                         "tokens ('durin token create')");
  s = calloc(1, sizeof(*s));
  if (!s)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  s->o = *o;
  s->store_url = strdup(o->store_url);
  s->data_dir = strdup(o->data_dir);
  s->o.store_url = s->store_url;
  s->o.data_dir = s->data_dir;
  if (!s->o.threads)
    s->o.threads = 4;
  if (!s->o.max_conns)
    s->o.max_conns = 4096;
  if (!s->o.timeout_s)
    s->o.timeout_s = 60;
  if (!s->o.max_header)
    s->o.max_header = 64 * 1024;
  if (!s->o.max_body)
    s->o.max_body = 1 << 20;
  if (!s->o.max_upload)
    s->o.max_upload = 100 << 20;
  if (!s->o.max_unpack)
    s->o.max_unpack = 1LL << 30;
  if (!s->o.stream_heartbeat_ms)
    s->o.stream_heartbeat_ms = 15000;
  if (s->o.rate > 0 && s->o.burst < 1)
    s->o.burst = s->o.rate * 2 < 10 ? 10 : s->o.rate * 2;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  if (o->tls_cert || o->tls_key) {
    if (!o->tls_cert || !o->tls_key ||
        durin_file_read(o->tls_cert, 1 << 20, &s->tls_cert, NULL, err) ||
        durin_file_read(o->tls_key, 1 << 20, &s->tls_key, NULL, err)) {
      if (!o->tls_cert || !o->tls_key)
        durin_err_set(err, DURIN_EINVAL,
                      "HTTPS needs both --tls-cert and --tls-key (PEM files)");
      srv_stop(s);
      return DURIN_EINVAL;
    }
    flags |= MHD_USE_TLS;
  }
  if ((r = hub_start(s, &s->hub, err)) ||
      (r = webhooks_start(s, &s->webhooks, err))) {
    srv_stop(s);
    return r;
  }
  /* 32 KiB of stack per pool thread is libmicrohttpd's own use; handlers
   * build JSON on the heap. */
  s->d =
      s->tls_cert ?
          MHD_start_daemon(
              flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
              mhd_log, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
              MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->o.threads,
              MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->o.max_conns,
              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->o.timeout_s,
              MHD_OPTION_CONNECTION_MEMORY_LIMIT, s->o.max_header,
              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
              MHD_OPTION_HTTPS_MEM_CERT, s->tls_cert, MHD_OPTION_HTTPS_MEM_KEY,
              s->tls_key, MHD_OPTION_END) :
          MHD_start_daemon(
              flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
              mhd_log, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
              MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->o.threads,
              MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->o.max_conns,
              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->o.timeout_s,
              MHD_OPTION_CONNECTION_MEMORY_LIMIT, s->o.max_header,
              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
  if (!s->d) {
    int e = errno;

    srv_stop(s);
    return durin_err_set(err, DURIN_EIO,
                         "cannot listen on %s: %s (is another server on that "
                         "port? pick another with --listen)",
                         o->listen ? o->listen : "127.0.0.1:7700", strerror(e));
  }
  info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  s->port = info ? info->port : ntohs(sa.sin_port);
  *out = s;
  return 0;
}

int srv_port(const struct srv *s)
{
  return s->port;
}

void srv_stop(struct srv *s)
{
  int i;

  if (!s)
    return;
  /* Streams end first, so the daemon's stop does not wait on them; their
   * clients are freed as the daemon closes them, so the hub goes last. */
  if (s->hub)
    hub_end_all(s->hub);
  if (s->d)
    MHD_stop_daemon(s->d);
  if (s->hub)
    hub_stop(s->hub);
  if (s->webhooks)
    webhooks_stop(s->webhooks);
  for (i = 0; i < s->npool; i++)
    durin_store_close(s->pool[i]);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s->tls_cert);
  free(s->tls_key);
  free(s->store_url);
  free(s->data_dir);
  free(s);
}

void srv_events_committed(void *arg, const char *run_id)
{
  struct srv *s = arg;

  if (s->hub)
    hub_wake(s->hub, run_id);
  if (s->webhooks)
    webhooks_wake(s->webhooks);
}

const char *srv_data_dir(const struct srv *s)
{
  return s->data_dir;
}

const struct srv_opts *srv_options(const struct srv *s)
{
  return &s->o;
}

struct hub *srv_hub(struct srv *s)
{
  return s->hub;
}

void srv_log(struct srv *s, const char *fmt, ...)
{
  char line[1024];
  va_list ap;

  if (!s->o.on_log)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  s->o.on_log(s->o.log_arg, line);
}

void srv_wake_worker(struct srv *s)
{
  if (s->o.wake_worker)
    s->o.wake_worker(s->o.wake_arg);
}
