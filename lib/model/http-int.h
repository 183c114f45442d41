/*
 * How a model HTTP transfer is set up and read, defined in
 * lib/worker/uv-http.c (the event-loop transport). The blocking transport
 * (http.c) is the only other user and goes with the blocking driver;
 * then these can become static in uv-http.c.
 */
#ifndef DURIN_MODEL_HTTP_INT_H
#define DURIN_MODEL_HTTP_INT_H

#include <curl/curl.h>

#include "durin/model.h"

/* Where a transfer's body and Retry-After go. */
struct durin_http_sink {
  struct durin_buf *body; /* capped */
  char *retry_after;
  size_t ra_len;
  int too_big;
};

/* An easy handle for req writing into s; *hdrs and the handle are the
 * caller's to free. ebuf has CURL_ERROR_SIZE bytes. */
CURL *durin_http_easy(const struct durin_http_req *req, int64_t timeout_ms,
                      struct durin_http_sink *s, struct curl_slist **hdrs,
                      char *ebuf);
/* Reads a finished transfer: 0 with *status, or DURIN_ERETRY for a
 * transient failure, DURIN_ETIMEDOUT, DURIN_ETOOBIG, DURIN_EMODEL. */
int durin_http_done(CURL *c, CURLcode rc, const struct durin_http_sink *s,
                    const char *url, const char *ebuf, long *status,
                    struct durin_err *err);

#endif
