/*
 * The blocking HTTP transport for single-run drivers: one transfer through
 * libcurl's multi interface, polled in 200 ms slices so the caller can
 * abandon it, with a response cap and Retry-After capture.
 *
 * Going away with the blocking driver (issue 13, "one engine"): only
 * durin_model_call uses it; how a transfer is set up and read lives with
 * the event-loop transport in lib/worker/uv-http.c.
 */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "durin/model.h"
#include "model/http-int.h"

#define sink durin_http_sink

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
