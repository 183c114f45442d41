/* What the trace exporter and the metrics pusher share of OTLP/HTTP. */
#ifndef DURIN_OTEL_HTTP_H
#define DURIN_OTEL_HTTP_H

#include <signal.h>

#include <curl/curl.h>

/*
 * The request headers: Content-Type (JSON), then those of generic
 * (OTEL_EXPORTER_OTLP_HEADERS) and of specific (the signal's own,
 * OTEL_EXPORTER_OTLP_TRACES_HEADERS or ..._METRICS_HEADERS), "k=v,k=v"
 * percent-encoded, where a specific one replaces a generic one of the same
 * name (case-insensitive). NULL when out of memory.
 */
struct curl_slist *durin__otel_headers(const char *generic,
                                       const char *specific);

/* What is kept of a collector's answer, for the log. */
#define DURIN_OTEL_ANSWER_CAP 2048

/*
 * One kept-alive connection to a collector: the trace exporter's and the
 * metrics pusher's, each on its own thread. Fill url, headers and
 * timeout_ms (and give_up, which a transfer in progress checks to stop
 * early); durin__otel_post makes the handle on first use.
 */
struct durin__otel_client {
  const char *url;
  struct curl_slist *headers;
  long timeout_ms;
  const volatile sig_atomic_t *give_up; /* may be NULL */
  CURL *curl;
  char answer[DURIN_OTEL_ANSWER_CAP]; /* the last answer's first bytes */
  size_t answer_len;
};

/* POSTs body (JSON); the HTTP status, or -1 when there was no answer. */
long durin__otel_post(struct durin__otel_client *c, const char *body,
                      size_t len);
void durin__otel_client_close(struct durin__otel_client *c);

#endif
