/*
 * The blocking HTTP transport for single-run drivers: one transfer through
 * libcurl's multi interface, polled in 200 ms slices so the caller can
 * abandon it, with a response cap and Retry-After capture.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "durin/model.h"
#include "model/http-int.h"

#define sink durin_http_sink

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
  struct sink *s = arg;

  if (durin_buf_add(s->body, p, sz * n)) {
    s->too_big = 1;
    return 0;
  }
  return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
  struct sink *s = arg;
  size_t len = sz * n;

  if (len > 12 && !strncasecmp(p, "retry-after:", 12)) {
    size_t v = len - 12;

    if (v >= s->ra_len)
      v = s->ra_len - 1;
    memcpy(s->retry_after, p + 12, v);
    s->retry_after[v] = '\0';
    while (v > 0 &&
           (s->retry_after[v - 1] == '\r' || s->retry_after[v - 1] == '\n' ||
            s->retry_after[v - 1] == ' '))
      s->retry_after[--v] = '\0';
  }
  return len;
}

CURL *durin_http_easy(const struct durin_http_req *req, int64_t timeout_ms,
                      struct durin_http_sink *s, struct curl_slist **hdrs,
                      char *ebuf)
{
  CURL *c = curl_easy_init();
  int i;

  *hdrs = NULL;
  if (!c)
    return NULL;
  for (i = 0; i < 8 && req->headers[i]; i++)
    *hdrs = curl_slist_append(*hdrs, req->headers[i]);
  curl_easy_setopt(c, CURLOPT_URL, req->url);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_USERAGENT, "durin/0.1");
  return c;
}

int durin_http_done(CURL *c, CURLcode rc, const struct durin_http_sink *s,
                    const char *url, const char *ebuf, long *status,
                    struct durin_err *err)
{
  if (s->too_big)
    return durin_err_set(err, DURIN_ETOOBIG,
                         "model response from '%s' exceeds %zu bytes", url,
                         s->body->cap);
  if (rc == CURLE_OPERATION_TIMEDOUT)
    return durin_err_set(err, DURIN_ETIMEDOUT, "request to '%s' timed out",
                         url);
  if (rc != CURLE_OK) {
    int transient = rc == CURLE_COULDNT_CONNECT || rc == CURLE_RECV_ERROR ||
                    rc == CURLE_SEND_ERROR || rc == CURLE_GOT_NOTHING ||
                    rc == CURLE_PARTIAL_FILE ||
                    rc == CURLE_COULDNT_RESOLVE_HOST;

    return durin_err_set(err, transient ? DURIN_ERETRY : DURIN_EMODEL,
                         "request to '%s' failed: %s", url,
                         *ebuf ? ebuf : curl_easy_strerror(rc));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
  return 0;
}

int durin_http_post(const struct durin_http_req *req, int64_t timeout_ms,
                    size_t cap, long *status, struct durin_buf *body,
                    char *retry_after, size_t ra_len,
                    const struct durin_stop *stop, struct durin_err *err)
{
  struct curl_slist *hdrs = NULL;
  struct sink s = { body, retry_after, ra_len, 0 };
  char ebuf[CURL_ERROR_SIZE] = "";
  CURL *c = durin_http_easy(req, timeout_ms, &s, &hdrs, ebuf);
  CURLM *m;
  CURLcode rc = CURLE_OK;
  int running = 1, r = 0;

  (void)cap;
  if (!c)
    return durin_err_set(err, DURIN_ENOMEM, "cannot create an HTTP handle");
  m = curl_multi_init();
  if (!m || curl_multi_add_handle(m, c) != CURLM_OK) {
    curl_multi_cleanup(m);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return durin_err_set(err, DURIN_ENOMEM, "cannot start an HTTP transfer");
  }
  while (running) {
    CURLMsg *msg;
    int left;

    if (curl_multi_perform(m, &running) != CURLM_OK)
      break;
    while ((msg = curl_multi_info_read(m, &left)))
      if (msg->msg == CURLMSG_DONE)
        rc = msg->data.result;
    if (!running)
      break;
    if (durin_stop_requested(stop)) {
      r = durin_err_set(err, DURIN_ECANCELED, "request to '%s' abandoned",
                        req->url);
      break;
    }
    curl_multi_poll(m, NULL, 0, 200, NULL);
  }
  curl_multi_remove_handle(m, c);
  curl_multi_cleanup(m);
  if (!r)
    r = durin_http_done(c, rc, &s, req->url, ebuf, status, err);
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(c);
  return r;
}
