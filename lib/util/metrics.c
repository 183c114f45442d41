/*
 * The metrics registry (include/durin/metrics.h): families in registration
 * order, each with its series in a small open hash keyed by the label
 * values. One mutex per registry: the worker's loop observes a few times
 * a step, an HTTP thread renders on a scrape, and neither holds it for
 * long. A series is allocated the first time its label set is seen and
 * lives as long as the registry, so later observations only add.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "durin/metrics.h"

const double durin_metric_token_bounds[14] = {
  1,     4,     16,     64,      256,     1024,     4096,
  16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
};
const double durin_metric_duration_bounds[14] = {
  0.01, 0.02, 0.04, 0.08,  0.16,  0.32,  0.64,
  1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
};

#define SERIES_BUCKETS 64

struct series {
  struct series *next;  /* in its hash bucket */
  struct series *older; /* in registration order, newest first */
  unsigned hash;
  char *values[DURIN_METRIC_MAX_LABELS]; /* NULL: not set */
  double value;                          /* counter, gauge; histogram sum */
  uint64_t count;                        /* histogram */
  uint64_t *buckets; /* histogram: per bound, not cumulative; +Inf last */
};

struct durin_metric {
  struct durin_metrics *m;
  struct durin_metric *next;
  enum durin_metric_type type;
  char *otel_name, *unit, *help;
  char *prom_name; /* with its unit suffix and, for counters, _total */
  int nlabels;
  char *labels[DURIN_METRIC_MAX_LABELS]; /* OpenTelemetry attribute names */
  int nbounds;
  double bounds[DURIN_METRIC_MAX_BOUNDS];
  struct series *hash[SERIES_BUCKETS];
  struct series *newest;
  int nseries;
};

struct durin_metrics {
  pthread_mutex_t mu;
  struct durin_metric *head, *tail;
  int64_t start_ns; /* wall clock: where cumulative points start */
};

double durin_metrics_clock(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct durin_metrics *durin_metrics_new(void)
{
  struct durin_metrics *m = calloc(1, sizeof(*m));
  struct timespec now;

  if (!m)
    return NULL;
  pthread_mutex_init(&m->mu, NULL);
  clock_gettime(CLOCK_REALTIME, &now);
  m->start_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
  return m;
}

static void series_free(struct series *s)
{
  int i;

  for (i = 0; i < DURIN_METRIC_MAX_LABELS; i++)
    free(s->values[i]);
  free(s->buckets);
  free(s);
}

static void family_free(struct durin_metric *f)
{
  struct series *s, *older;
  int i;

  for (s = f->newest; s; s = older) {
    older = s->older;
    series_free(s);
  }
  for (i = 0; i < f->nlabels; i++)
    free(f->labels[i]);
  free(f->otel_name);
  free(f->unit);
  free(f->help);
  free(f->prom_name);
  free(f);
}

void durin_metrics_free(struct durin_metrics *m)
{
  struct durin_metric *f, *next;

  if (!m)
    return;
  for (f = m->head; f; f = next) {
    next = f->next;
    family_free(f);
  }
  pthread_mutex_destroy(&m->mu);
  free(m);
}

/* The Prometheus suffix of an OpenTelemetry unit ("" for annotations
 * like "{token}" and for "1"). */
static const char *unit_suffix(const char *unit)
{
  static const struct {
    const char *unit, *suffix;
  } map[] = {
    { "s", "seconds" }, { "ms", "milliseconds" }, { "By", "bytes" },
    { "USD", "usd" },   { "%", "percent" },
  };
  size_t i;

  if (!unit || !*unit || unit[0] == '{' || !strcmp(unit, "1"))
    return "";
  for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
    if (!strcmp(unit, map[i].unit))
      return map[i].suffix;
  return unit;
}

/* Dots and other characters Prometheus names do not allow: '_'. */
static void sanitize(char *s)
{
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9') || *s == '_' || *s == ':'))
      *s = '_';
}

struct durin_metric *
durin_metrics_add(struct durin_metrics *m, enum durin_metric_type type,
                  const char *name, const char *unit, const char *help,
                  const char *const *labels, const double *bounds, int nbounds)
{
  struct durin_metric *f;
  const char *suffix = unit_suffix(unit);
  size_t len;
  int i;

  if (!m || nbounds < 0 || nbounds > DURIN_METRIC_MAX_BOUNDS)
    return NULL;
  if (!(f = calloc(1, sizeof(*f))))
    return NULL;
  f->m = m;
  f->type = type;
  f->otel_name = strdup(name);
  f->unit = strdup(unit ? unit : "");
  f->help = strdup(help ? help : "");
  len = strlen(name) + strlen(suffix) + 16;
  f->prom_name = malloc(len);
  if (!f->otel_name || !f->unit || !f->help || !f->prom_name)
    goto fail;
  snprintf(f->prom_name, len, "%s%s%s%s", name, *suffix ? "_" : "", suffix,
           type == DURIN_METRIC_COUNTER ? "_total" : "");
  sanitize(f->prom_name);
  for (i = 0; labels && labels[i]; i++) {
    if (i == DURIN_METRIC_MAX_LABELS || !(f->labels[i] = strdup(labels[i])))
      goto fail;
    f->nlabels = i + 1;
  }
  f->nbounds = type == DURIN_METRIC_HISTOGRAM ? nbounds : 0;
  for (i = 0; i < f->nbounds; i++)
    f->bounds[i] = bounds[i];
  pthread_mutex_lock(&m->mu);
  if (m->tail)
    m->tail->next = f;
  else
    m->head = f;
  m->tail = f;
  pthread_mutex_unlock(&m->mu);
  return f;
fail:
  family_free(f);
  return NULL;
}

static int value_set(const char *v)
{
  return v && *v;
}

static unsigned values_hash(const struct durin_metric *f,
                            const char *const *values)
{
  unsigned h = 2166136261u;
  int i;

  for (i = 0; i < f->nlabels; i++) {
    const char *p = values && value_set(values[i]) ? values[i] : "";

    while (*p)
      h = (h ^ (unsigned char)*p++) * 16777619u;
    h = (h ^ 0xffu) * 16777619u; /* "a","" differs from "","a" */
  }
  return h;
}

/* The series of these label values, made the first time (under mu).
 * NULL only when out of memory: the observation is lost. */
static struct series *series_get(struct durin_metric *f,
                                 const char *const *values)
{
  unsigned h = values_hash(f, values);
  struct series *s;
  int i;

  for (s = f->hash[h % SERIES_BUCKETS]; s; s = s->next) {
    if (s->hash != h)
      continue;
    for (i = 0; i < f->nlabels; i++) {
      const char *v = values && value_set(values[i]) ? values[i] : NULL;

      if (!v != !s->values[i] || (v && strcmp(v, s->values[i])))
        break;
    }
    if (i == f->nlabels)
      return s;
  }
  if (!(s = calloc(1, sizeof(*s))))
    return NULL;
  s->hash = h;
  for (i = 0; i < f->nlabels; i++)
    if (values && value_set(values[i]) && !(s->values[i] = strdup(values[i]))) {
      series_free(s);
      return NULL;
    }
  if (f->type == DURIN_METRIC_HISTOGRAM &&
      !(s->buckets = calloc((size_t)f->nbounds + 1, sizeof(uint64_t)))) {
    series_free(s);
    return NULL;
  }
  s->next = f->hash[h % SERIES_BUCKETS];
  f->hash[h % SERIES_BUCKETS] = s;
  s->older = f->newest;
  f->newest = s;
  f->nseries++;
  return s;
}

void durin_metric_add(struct durin_metric *f, const char *const *values,
                      double v)
{
  struct series *s;

  if (!f || f->type == DURIN_METRIC_HISTOGRAM)
    return;
  pthread_mutex_lock(&f->m->mu);
  if ((s = series_get(f, values)))
    s->value += v;
  pthread_mutex_unlock(&f->m->mu);
}

void durin_metric_set(struct durin_metric *f, const char *const *values,
                      double v)
{
  struct series *s;

  if (!f || f->type != DURIN_METRIC_GAUGE)
    return;
  pthread_mutex_lock(&f->m->mu);
  if ((s = series_get(f, values)))
    s->value = v;
  pthread_mutex_unlock(&f->m->mu);
}

void durin_metric_observe(struct durin_metric *f, const char *const *values,
                          double v)
{
  struct series *s;
  int i;

  if (!f || f->type != DURIN_METRIC_HISTOGRAM || isnan(v))
    return;
  /* Buckets are upper bounds, inclusive (le). */
  for (i = 0; i < f->nbounds && v > f->bounds[i]; i++)
    ;
  pthread_mutex_lock(&f->m->mu);
  if ((s = series_get(f, values))) {
    s->buckets[i]++;
    s->count++;
    s->value += v;
  }
  pthread_mutex_unlock(&f->m->mu);
}

/* ---- Prometheus text ---- */

/* The shortest text that reads back as v; Prometheus spells infinities
 * +Inf and -Inf. */
static void fmt_double(char *out, size_t len, double v)
{
  int prec;

  if (isinf(v)) {
    snprintf(out, len, "%s", v > 0 ? "+Inf" : "-Inf");
    return;
  }
  if (isnan(v)) {
    snprintf(out, len, "NaN");
    return;
  }
  for (prec = 6; prec < 17; prec++) {
    snprintf(out, len, "%.*g", prec, v);
    if (strtod(out, NULL) == v)
      return;
  }
  snprintf(out, len, "%.17g", v);
}

/* A label value or HELP text, escaped: backslash, newline, and (in label
 * values) the double quote. */
static int add_escaped(struct durin_buf *b, const char *s, int quote)
{
  const char *p;
  int r = 0;

  for (p = s; *p && !r; p++) {
    if (*p == '\\')
      r = durin_buf_add(b, "\\\\", 2);
    else if (*p == '\n')
      r = durin_buf_add(b, "\\n", 2);
    else if (*p == '"' && quote)
      r = durin_buf_add(b, "\\\"", 2);
    else
      r = durin_buf_add(b, p, 1);
  }
  return r;
}

static int add_label_name(struct durin_buf *b, const char *name)
{
  char tmp[128];

  snprintf(tmp, sizeof(tmp), "%s", name);
  sanitize(tmp);
  return durin_buf_adds(b, tmp);
}

/* {a="x",b="y"} with le last for a bucket (le NULL: none); nothing at
 * all when no label is set. */
static int add_labels(struct durin_buf *b, const struct durin_metric *f,
                      const struct series *s, const char *le)
{
  int i, n = 0, r = 0;

  for (i = 0; i < f->nlabels && !r; i++) {
    if (!s->values[i])
      continue;
    r = durin_buf_adds(b, n++ ? "," : "{");
    r = r ? r : add_label_name(b, f->labels[i]);
    r = r ? r : durin_buf_adds(b, "=\"");
    r = r ? r : add_escaped(b, s->values[i], 1);
    r = r ? r : durin_buf_adds(b, "\"");
  }
  if (!r && le)
    r = durin_buf_addf(b, "%sle=\"%s\"", n++ ? "," : "{", le);
  if (!r && n)
    r = durin_buf_adds(b, "}");
  return r;
}

static int render_series(struct durin_buf *b, const struct durin_metric *f,
                         const struct series *s)
{
  char num[64], le[64];
  uint64_t cum = 0;
  int i, r;

  if (f->type != DURIN_METRIC_HISTOGRAM) {
    fmt_double(num, sizeof(num), s->value);
    r = durin_buf_adds(b, f->prom_name);
    r = r ? r : add_labels(b, f, s, NULL);
    return r ? r : durin_buf_addf(b, " %s\n", num);
  }
  for (i = 0, r = 0; i <= f->nbounds && !r; i++) {
    cum += s->buckets[i];
    if (i < f->nbounds)
      fmt_double(le, sizeof(le), f->bounds[i]);
    else
      snprintf(le, sizeof(le), "+Inf");
    r = durin_buf_addf(b, "%s_bucket", f->prom_name);
    r = r ? r : add_labels(b, f, s, le);
    r = r ? r : durin_buf_addf(b, " %llu\n", (unsigned long long)cum);
  }
  fmt_double(num, sizeof(num), s->value);
  r = r ? r : durin_buf_addf(b, "%s_sum", f->prom_name);
  r = r ? r : add_labels(b, f, s, NULL);
  r = r ? r : durin_buf_addf(b, " %s\n", num);
  r = r ? r : durin_buf_addf(b, "%s_count", f->prom_name);
  r = r ? r : add_labels(b, f, s, NULL);
  return r ? r : durin_buf_addf(b, " %llu\n", (unsigned long long)s->count);
}

static const char *type_name(enum durin_metric_type t)
{
  return t == DURIN_METRIC_COUNTER ? "counter" :
         t == DURIN_METRIC_GAUGE   ? "gauge" :
                                     "histogram";
}

int durin_metrics_render(struct durin_metrics *m, struct durin_buf *out)
{
  const struct durin_metric *f;
  const struct series *s;
  int r = 0;

  pthread_mutex_lock(&m->mu);
  for (f = m->head; f && !r; f = f->next) {
    r = durin_buf_addf(out, "# HELP %s ", f->prom_name);
    r = r ? r : add_escaped(out, f->help, 0);
    r = r ? r :
            durin_buf_addf(out, "\n# TYPE %s %s\n", f->prom_name,
                           type_name(f->type));
    /* Oldest series first: a stable order from scrape to scrape. */
    {
      const struct series **v =
          f->nseries ? malloc((size_t)f->nseries * sizeof(*v)) : NULL;
      int i = f->nseries;

      if (f->nseries && !v) {
        r = DURIN_ENOMEM;
        break;
      }
      for (s = f->newest; s; s = s->older)
        v[--i] = s;
      for (i = 0; i < f->nseries && !r; i++)
        r = render_series(out, f, v[i]);
      free(v);
    }
  }
  pthread_mutex_unlock(&m->mu);
  return r ? DURIN_ENOMEM : 0;
}

/* ---- OTLP/JSON ---- */

/* A JSON string's contents. */
static int add_json_str(struct durin_buf *b, const char *s)
{
  const unsigned char *p;
  int r = durin_buf_adds(b, "\"");

  for (p = (const unsigned char *)s; *p && !r; p++) {
    if (*p == '"' || *p == '\\')
      r = durin_buf_addf(b, "\\%c", *p);
    else if (*p < 0x20)
      r = durin_buf_addf(b, "\\u%04x", *p);
    else
      r = durin_buf_add(b, p, 1);
  }
  return r ? r : durin_buf_adds(b, "\"");
}

/* A double as OTLP/JSON has it: a number, or the strings proto3's JSON
 * mapping gives the values JSON has no number for. */
static int add_json_double(struct durin_buf *b, double v)
{
  char num[64];

  if (isnan(v))
    return durin_buf_adds(b, "\"NaN\"");
  if (isinf(v))
    return durin_buf_adds(b, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
  fmt_double(num, sizeof(num), v);
  return durin_buf_adds(b, num);
}

static int otlp_attrs(struct durin_buf *b, const struct durin_metric *f,
                      const struct series *s)
{
  int i, n = 0, r = durin_buf_adds(b, "\"attributes\":[");

  for (i = 0; i < f->nlabels && !r; i++) {
    if (!s->values[i])
      continue;
    r = durin_buf_adds(b, n++ ? ",{\"key\":" : "{\"key\":");
    r = r ? r : add_json_str(b, f->labels[i]);
    r = r ? r : durin_buf_adds(b, ",\"value\":{\"stringValue\":");
    r = r ? r : add_json_str(b, s->values[i]);
    r = r ? r : durin_buf_adds(b, "}}");
  }
  return r ? r : durin_buf_adds(b, "]");
}

static int otlp_point(struct durin_buf *b, const struct durin_metric *f,
                      const struct series *s, const char *times)
{
  int i, r = durin_buf_adds(b, "{");

  r = r ? r : otlp_attrs(b, f, s);
  r = r ? r : durin_buf_adds(b, times);
  if (f->type != DURIN_METRIC_HISTOGRAM) {
    r = r ? r : durin_buf_adds(b, ",\"asDouble\":");
    r = r ? r : add_json_double(b, s->value);
    return r ? r : durin_buf_adds(b, "}");
  }
  r = r ? r :
          durin_buf_addf(
              b, ",\"count\":\"%llu\",\"sum\":", (unsigned long long)s->count);
  r = r ? r : add_json_double(b, s->value);
  r = r ? r : durin_buf_adds(b, ",\"bucketCounts\":[");
  for (i = 0; i <= f->nbounds && !r; i++)
    r = durin_buf_addf(b, "%s\"%llu\"", i ? "," : "",
                       (unsigned long long)s->buckets[i]);
  r = r ? r : durin_buf_adds(b, "],\"explicitBounds\":[");
  for (i = 0; i < f->nbounds && !r; i++) {
    r = i ? durin_buf_adds(b, ",") : 0;
    r = r ? r : add_json_double(b, f->bounds[i]);
  }
  return r ? r : durin_buf_adds(b, "]}");
}

/* m's families as Metric objects, each after a comma but the very first
 * (*nf counts them across registries); under m's mutex. */
static int otlp_registry(struct durin_buf *out, struct durin_metrics *m,
                         int64_t now_ns, int *nf)
{
  const struct durin_metric *f;
  const struct series *s;
  char times[128];
  int r = 0;

  snprintf(times, sizeof(times),
           ",\"startTimeUnixNano\":\"%lld\",\"timeUnixNano\":\"%lld\"",
           (long long)m->start_ns, (long long)now_ns);
  pthread_mutex_lock(&m->mu);
  for (f = m->head; f && !r; f = f->next) {
    int np = 0;

    if (!f->nseries)
      continue; /* as an SDK does: no points, no metric */
    r = durin_buf_adds(out, (*nf)++ ? ",{\"name\":" : "{\"name\":");
    r = r ? r : add_json_str(out, f->otel_name);
    r = r ? r : durin_buf_adds(out, ",\"unit\":");
    r = r ? r : add_json_str(out, f->unit);
    r = r ? r : durin_buf_adds(out, ",\"description\":");
    r = r ? r : add_json_str(out, f->help);
    r = r ? r :
            durin_buf_adds(out, f->type == DURIN_METRIC_COUNTER ?
                                    ",\"sum\":{\"aggregationTemporality\":2,"
                                    "\"isMonotonic\":true,\"dataPoints\":[" :
                                f->type == DURIN_METRIC_GAUGE ?
                                    ",\"gauge\":{\"dataPoints\":[" :
                                    ",\"histogram\":{"
                                    "\"aggregationTemporality\":2,"
                                    "\"dataPoints\":[");
    for (s = f->newest; s && !r; s = s->older) {
      r = np++ ? durin_buf_adds(out, ",") : 0;
      r = r ? r : otlp_point(out, f, s, times);
    }
    r = r ? r : durin_buf_adds(out, "]}}");
  }
  pthread_mutex_unlock(&m->mu);
  return r;
}

int durin_metrics_render_otlp(struct durin_metrics *const *ms, int n,
                              const char *resource_attrs, struct durin_buf *out)
{
  struct timespec now;
  int64_t now_ns;
  int r, i, nf = 0;

  clock_gettime(CLOCK_REALTIME, &now);
  now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
  r = durin_buf_adds(out, "{\"resourceMetrics\":[{\"resource\":{"
                          "\"attributes\":");
  r = r ? r :
          durin_buf_adds(out, resource_attrs ?
                                  resource_attrs :
                                  "[{\"key\":\"service.name\",\"value\":{"
                                  "\"stringValue\":\"durin\"}}]");
  r = r ? r :
          durin_buf_adds(out, "},\"scopeMetrics\":[{\"scope\":{\"name\":"
                              "\"durin\",\"version\":\"" DURIN_VERSION
                              "\"},\"metrics\":[");
  for (i = 0; i < n && !r; i++)
    if (ms[i])
      r = otlp_registry(out, ms[i], now_ns, &nf);
  r = r ? r : durin_buf_adds(out, "]}]}]}");
  return r ? DURIN_ENOMEM : 0;
}
