/* What the trace exporter and the metrics pusher share of OTLP/HTTP. */
#ifndef DURIN_OTEL_HTTP_H
#define DURIN_OTEL_HTTP_H

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

#endif
