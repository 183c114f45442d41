/*
 * HTTP on the worker's event loop: libcurl's multi-socket interface driven
 * by libuv (curl tells us which sockets to watch and when its timer is
 * due; we tell it which socket became ready). Any number of transfers run
 * at once on one thread; connections to the same host are reused. Each
 * response is capped, and its Retry-After kept for the backoff.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "worker/worker-int.h"

/* One transfer: its request's headers, its capped body, its Retry-After. */
struct uvh_xfer {
  struct uvh *h;
  CURL *easy;
  struct curl_slist *hdrs;
  struct durin_buf body;
  int too_big;
  char ra[128];
  char ctype[128], sid[256]; /* Content-Type, Mcp-Session-Id */
  uvh_meta_cb cb_meta;
  char ebuf[CURL_ERROR_SIZE];
  char *url;
  uvh_done_cb cb;
  void *arg;
};

struct uvh {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  int closing;
};

/* One watched socket. */
struct sock {
  uv_poll_t poll;
  curl_socket_t fd;
  struct uvh *h;
};

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
  struct uvh_xfer *x = arg;

  if (durin_buf_add(&x->body, p, sz * n)) {
    x->too_big = 1;
    return 0;
  }
  return sz * n;
}

/* The value of header line p (len bytes) if it is name's, into out. */
static void header_value(const char *p, size_t len, const char *name, char *out,
                         size_t size)
{
  size_t k = strlen(name), v;

  if (len <= k || strncasecmp(p, name, k))
    return;
  p += k;
  v = len - k;
  while (v > 0 && (*p == ' ' || *p == '\t')) {
    p++;
    v--;
  }
  while (v > 0 && (p[v - 1] == '\r' || p[v - 1] == '\n' || p[v - 1] == ' '))
    v--;
  if (v >= size)
    v = size - 1;
  memcpy(out, p, v);
  out[v] = '\0';
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
  struct uvh_xfer *x = arg;
  size_t len = sz * n;

  header_value(p, len, "content-type:", x->ctype, sizeof(x->ctype));
  header_value(p, len, "mcp-session-id:", x->sid, sizeof(x->sid));

  if (len > 12 && !strncasecmp(p, "retry-after:", 12)) {
    size_t v = len - 12;

    /* The value alone: no optional white space around it (RFC 9110 5.6.3). */
    p += 12;
    while (v > 0 && (*p == ' ' || *p == '\t')) {
      p++;
      v--;
    }
    if (v >= sizeof(x->ra))
      v = sizeof(x->ra) - 1;
    memcpy(x->ra, p, v);
    x->ra[v] = '\0';
    while (v > 0 && (x->ra[v - 1] == '\r' || x->ra[v - 1] == '\n' ||
                     x->ra[v - 1] == ' ' || x->ra[v - 1] == '\t'))
      x->ra[--v] = '\0';
  }
  return len;
}

/* x's easy handle for req; 0, or -1 if it cannot be made. */
static int xfer_easy(struct uvh_xfer *x, const struct durin_http_req *req,
                     int64_t timeout_ms)
{
  CURL *c = curl_easy_init();
  int i;

  if (!c)
    return -1;
  x->easy = c;
  for (i = 0; i < 8 && req->headers[i]; i++)
    x->hdrs = curl_slist_append(x->hdrs, req->headers[i]);
  curl_easy_setopt(c, CURLOPT_URL, req->url);
  /* The body must outlive the call: POSTFIELDS would not copy it. */
  curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, req->body);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->hdrs);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->ebuf);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_USERAGENT, "durin/0.1");
  curl_easy_setopt(c, CURLOPT_PRIVATE, x);
  return 0;
}

/* Reads a finished transfer: 0 with *status, or DURIN_ERETRY for a
 * transient failure, DURIN_ETIMEDOUT, DURIN_ETOOBIG, DURIN_EMODEL. */
static int xfer_done(const struct uvh_xfer *x, CURLcode rc, long *status,
                     struct durin_err *err)
{
  if (x->too_big)
    return durin_err_set(err, DURIN_ETOOBIG,
                         "model response from '%s' exceeds %zu bytes", x->url,
                         x->body.cap);
  if (rc == CURLE_OPERATION_TIMEDOUT)
    return durin_err_set(err, DURIN_ETIMEDOUT, "request to '%s' timed out",
                         x->url);
  if (rc != CURLE_OK) {
    int transient = rc == CURLE_COULDNT_CONNECT || rc == CURLE_RECV_ERROR ||
                    rc == CURLE_SEND_ERROR || rc == CURLE_GOT_NOTHING ||
                    rc == CURLE_PARTIAL_FILE ||
                    rc == CURLE_COULDNT_RESOLVE_HOST;

    return durin_err_set(err, transient ? DURIN_ERETRY : DURIN_EMODEL,
                         "request to '%s' failed: %s", x->url,
                         *x->ebuf ? x->ebuf : curl_easy_strerror(rc));
  }
  curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, status);
  return 0;
}

static void check_done(struct uvh *h)
{
  CURLMsg *msg;
  int left;

  while ((msg = curl_multi_info_read(h->multi, &left))) {
    struct uvh_xfer *x = NULL;
    struct durin_err err = { 0 };
    long status = 0;
    int r;

    if (msg->msg != CURLMSG_DONE)
      continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    r = xfer_done(x, msg->data.result, &status, &err);
    if (x->cb_meta)
      x->cb_meta(x->arg, r, status, x->body.buf, x->body.len, x->ctype, x->sid,
                 &err);
    else
      x->cb(x->arg, r, status, x->body.buf, x->body.len, x->ra, &err);
    uvh_xfer_free(x);
  }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
  struct sock *s = p->data;
  int flags = 0, running;

  if (status < 0)
    flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(s->h->multi, s->fd, flags, &running);
  check_done(s->h);
}

static void on_timer(uv_timer_t *t)
{
  struct uvh *h = t->data;
  int running;

  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(h);
}

static int timer_cb(CURLM *m, long timeout_ms, void *arg)
{
  struct uvh *h = arg;

  (void)m;
  if (timeout_ms < 0)
    uv_timer_stop(&h->timer);
  else
    uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
  return 0;
}

static void sock_free(uv_handle_t *hd)
{
  free(hd->data);
}

static int socket_cb(CURL *e, curl_socket_t fd, int what, void *arg,
                     void *sockp)
{
  struct uvh *h = arg;
  struct sock *s = sockp;
  int events = 0;

  (void)e;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      uv_poll_stop(&s->poll);
      uv_close((uv_handle_t *)&s->poll, sock_free);
      curl_multi_assign(h->multi, fd, NULL);
    }
    return 0;
  }
  if (!s) {
    s = calloc(1, sizeof(*s));
    if (!s)
      return -1;
    s->fd = fd;
    s->h = h;
    if (uv_poll_init_socket(h->loop, &s->poll, fd)) {
      free(s);
      return -1;
    }
    s->poll.data = s;
    curl_multi_assign(h->multi, fd, s);
  }
  if (what & CURL_POLL_IN)
    events |= UV_READABLE;
  if (what & CURL_POLL_OUT)
    events |= UV_WRITABLE;
  uv_poll_start(&s->poll, events, on_poll);
  return 0;
}

struct uvh *uvh_new(uv_loop_t *loop)
{
  struct uvh *h = calloc(1, sizeof(*h));

  if (!h)
    return NULL;
  h->loop = loop;
  h->multi = curl_multi_init();
  if (!h->multi) {
    free(h);
    return NULL;
  }
  uv_timer_init(loop, &h->timer);
  h->timer.data = h;
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  /* Many runs talk to one provider: keep plenty of connections. */
  curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 20000L);
  return h;
}

static void uvh_free_cb(uv_handle_t *hd)
{
  free(hd->data);
}

void uvh_free(struct uvh *h)
{
  if (!h)
    return;
  curl_multi_cleanup(h->multi);
  uv_close((uv_handle_t *)&h->timer, uvh_free_cb);
}

struct uvh_xfer *uvh_post(struct uvh *h, const struct durin_http_req *req,
                          int64_t timeout_ms, size_t cap, uvh_done_cb cb,
                          void *arg)
{
  struct uvh_xfer *x = calloc(1, sizeof(*x));

  if (!x)
    return NULL;
  x->h = h;
  x->cb = cb;
  x->arg = arg;
  x->url = strdup(req->url);
  durin_buf_init(&x->body, cap);
  if (xfer_easy(x, req, timeout_ms) ||
      curl_multi_add_handle(h->multi, x->easy) != CURLM_OK) {
    uvh_xfer_free(x);
    return NULL;
  }
  return x;
}

void uvh_xfer_free(struct uvh_xfer *x)
{
  if (!x)
    return;
  if (x->easy) {
    curl_multi_remove_handle(x->h->multi, x->easy);
    curl_easy_cleanup(x->easy);
  }
  curl_slist_free_all(x->hdrs);
  durin_buf_release(&x->body);
  free(x->url);
  free(x);
}

struct uvh_xfer *uvh_post_meta(struct uvh *h, const struct durin_http_req *req,
                               int64_t timeout_ms, size_t cap, uvh_meta_cb cb,
                               void *arg)
{
  struct uvh_xfer *x = uvh_post(h, req, timeout_ms, cap, NULL, arg);

  if (x)
    x->cb_meta = cb;
  return x;
}
