/*
 * OTLP metrics export: a thread that POSTs a process's metrics registries
 * (include/durin/metrics.h) as an OTLP/HTTP JSON ExportMetricsServiceRequest
 * every interval, and once more when stopped (lib/otel/metrics-push.c).
 *
 * Every point is cumulative (from the registry's creation to now), so a
 * push the collector did not take loses nothing: the next one carries the
 * totals. A failed push is therefore not sent again; the next interval's
 * is. One kept-alive connection for the thread's life.
 *
 * Threads: start and stop from one thread (the owner's); the registries
 * are read under their own mutexes, and collect runs on the pusher's
 * thread.
 */
#ifndef DURIN_OTEL_METRICS_H
#define DURIN_OTEL_METRICS_H

#include <signal.h>
#include <stdint.h>

#include "durin/error.h"
#include "durin/metrics.h"

struct durin_otel_metrics_opts {
  /* Where to POST: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, or
   * OTEL_EXPORTER_OTLP_ENDPOINT + "/v1/metrics". NULL or "": no pusher. */
  const char *endpoint;
  /* Request headers, "k=v,k=v" percent-encoded (OTEL_EXPORTER_OTLP_HEADERS),
   * then the metrics' own (OTEL_EXPORTER_OTLP_METRICS_HEADERS), whose keys
   * win over the first's. Either may be NULL. */
  const char *headers, *metrics_headers;
  /* The resource: OTEL_SERVICE_NAME (NULL: service.name from attributes,
   * else "durin"), OTEL_RESOURCE_ATTRIBUTES ("k=v,k=v"), and
   * service.instance.id unless the attributes have one: cumulative points
   * must tell one process's from another's. */
  const char *service_name, *resource_attributes, *instance_id;
  /* The process's registry (not owned; outlives the pusher). */
  struct durin_metrics *metrics;
  /* Called on the pusher's thread before each push, may be NULL: a
   * registry of values read for this push (the store's gauges), handed
   * over (freed after the push), or NULL. */
  struct durin_metrics *(*collect)(void *arg);
  void *collect_arg;
  int64_t interval_ms; /* OTEL_METRIC_EXPORT_INTERVAL; <= 0: 60000 */
  int64_t timeout_ms;  /* per push; <= 0: 10000 */
  /* Set (by a signal handler, say) when the process must not wait: a
   * push under way gives up within about a second. May be NULL. */
  const volatile sig_atomic_t *give_up;
  void (*on_log)(void *arg, const char *line);
  void *log_arg;
};

struct durin_otel_metrics;

/* Starts the pusher's thread; *out is NULL (and 0 returned) when no
 * endpoint is set. */
int durin_otel_metrics_start(const struct durin_otel_metrics_opts *o,
                             struct durin_otel_metrics **out,
                             struct durin_err *err);
/* Pushes the totals one last time, then stops and frees (NULL: nothing). */
void durin_otel_metrics_stop(struct durin_otel_metrics *p);

#endif
