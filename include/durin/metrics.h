/*
 * Metrics: a small registry of counters, gauges and histograms with fixed
 * buckets, each family with a fixed list of label names, rendered as
 * Prometheus text (format 0.0.4) and as an OTLP/JSON request.
 *
 * There is no process-wide registry: whoever owns one (the worker's
 * caller, `durin serve`) creates it and hands it to the code that
 * observes and to the code that renders. A family is registered once at
 * setup under its OpenTelemetry name and unit ("gen_ai.client.token.usage",
 * "{token}"); rendering names it as the OpenTelemetry-to-Prometheus
 * compatibility rules say: dots become underscores, the unit becomes a
 * suffix ("s": _seconds; annotations such as "{token}" none), counters
 * end in _total.
 *
 * Threads: every function may be called from any thread; one mutex per
 * registry guards the series. An observation finds its series by its
 * label values (a hash, then a compare) and allocates only the first time
 * a label set is seen: the worker's loop pays a lock and a few adds.
 */
#ifndef DURIN_METRICS_H
#define DURIN_METRICS_H

#include <stdint.h>

#include "durin/util.h"

struct durin_metrics;
struct durin_metric; /* a family, owned by its registry */

enum durin_metric_type {
  DURIN_METRIC_COUNTER,
  DURIN_METRIC_GAUGE,
  DURIN_METRIC_HISTOGRAM,
};

#define DURIN_METRIC_MAX_LABELS 8
#define DURIN_METRIC_MAX_BOUNDS 32

/* The advised bucket boundaries of the GenAI conventions. */
extern const double durin_metric_token_bounds[14];
extern const double durin_metric_duration_bounds[14];

struct durin_metrics *durin_metrics_new(void);
void durin_metrics_free(struct durin_metrics *m);

/*
 * Registers a family: name and unit as OpenTelemetry has them, labels its
 * attribute names (NULL-terminated, at most DURIN_METRIC_MAX_LABELS;
 * rendered with dots as underscores), bounds a histogram's upper bounds,
 * ascending (copied; +Inf is implied). Returns NULL when out of memory or
 * given more labels or bounds than the limits; observing NULL is a no-op.
 */
struct durin_metric *
durin_metrics_add(struct durin_metrics *m, enum durin_metric_type type,
                  const char *name, const char *unit, const char *help,
                  const char *const *labels, const double *bounds, int nbounds);

/*
 * Observations; values holds one value per label of the family, in order
 * (NULL or "" for an attribute that does not apply: not rendered).
 * add: a counter's increment (or a gauge's); set: a gauge's value;
 * observe: a histogram's sample.
 */
void durin_metric_add(struct durin_metric *f, const char *const *values,
                      double v);
void durin_metric_set(struct durin_metric *f, const char *const *values,
                      double v);
void durin_metric_observe(struct durin_metric *f, const char *const *values,
                          double v);

/* Appends the registry as Prometheus text 0.0.4 to out. 0, or
 * DURIN_ENOMEM if out is full. */
int durin_metrics_render(struct durin_metrics *m, struct durin_buf *out);

/*
 * Appends the registries ms[0..n) (NULL entries skipped) as one OTLP/JSON
 * ExportMetricsServiceRequest: one resource, whose attributes are
 * resource_attrs (the JSON text of its "attributes" array; NULL:
 * service.name "durin" alone), one scope "durin", and every family that
 * has a series: counters as monotonic cumulative sums, gauges as gauges,
 * histograms as cumulative explicit-bucket histograms, each point from
 * its registry's creation (startTimeUnixNano) to now. Cumulative: a push
 * that is lost loses nothing, the next carries the totals. 0, or
 * DURIN_ENOMEM if out is full.
 */
int durin_metrics_render_otlp(struct durin_metrics *const *ms, int n,
                              const char *resource_attrs,
                              struct durin_buf *out);

/* A monotonic clock in seconds, for latencies. */
double durin_metrics_clock(void);

/* The Content-Type of durin_metrics_render's text. */
#define DURIN_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
