/*
 * The OpenTelemetry exporters of `durin worker` and `durin serve`,
 * configured as every OpenTelemetry SDK is. Nothing set, nothing sent;
 * OTEL_SDK_DISABLED=true turns both off.
 *
 * Traces: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is) or
 * OTEL_EXPORTER_OTLP_ENDPOINT (+ "/v1/traces"), OTEL_EXPORTER_OTLP_HEADERS
 * and OTEL_EXPORTER_OTLP_TRACES_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT (ms),
 * OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
 * OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, OTEL_BSP_SCHEDULE_DELAY
 * (ms between rounds, default 5000) and OTEL_BSP_MAX_EXPORT_BATCH_SIZE
 * (spans per request, about; default 512); OTEL_TRACES_EXPORTER=none turns
 * them off.
 *
 * Metrics: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT (as is) or
 * OTEL_EXPORTER_OTLP_ENDPOINT (+ "/v1/metrics"), the headers with
 * OTEL_EXPORTER_OTLP_METRICS_HEADERS, OTEL_METRIC_EXPORT_INTERVAL (ms,
 * default 60000), OTEL_METRIC_EXPORT_TIMEOUT (default 30000) and
 * OTEL_EXPORTER_OTLP_METRICS_TIMEOUT or OTEL_EXPORTER_OTLP_TIMEOUT
 * (default 10000; a push waits the shorter), the same resource;
 * OTEL_METRICS_EXPORTER without "otlp" in its list ("none",
 * "prometheus") turns them off.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "durin/otel-metrics.h"
#include "durin/otel.h"
#include "server/server.h"

static const char *env(const char *name)
{
  const char *v = getenv(name);

  return v && *v ? v : NULL;
}

/* The signal's own endpoint (used as is), else the base one + path. 0 if
 * neither is set. */
static int endpoint_of(const char *own, const char *path, char *out, size_t len)
{
  const char *base = env("OTEL_EXPORTER_OTLP_ENDPOINT"), *v;

  if ((v = env(own)))
    snprintf(out, len, "%s", v);
  else if (base)
    snprintf(out, len, "%s%s%s", base, base[strlen(base) - 1] == '/' ? "" : "/",
             path);
  else
    return 0;
  return 1;
}

static int sdk_disabled(void)
{
  const char *v = env("OTEL_SDK_DISABLED");

  return v && !strcmp(v, "true");
}

int cli_otel_start(const char *store_url, const char *owner,
                   void (*on_log)(void *, const char *),
                   struct durin_otel_exporter **out)
{
  struct durin_otel_exporter_opts o;
  struct durin_err err = { 0 };
  char endpoint[2048];
  const char *v;

  *out = NULL;
  if (sdk_disabled() ||
      ((v = env("OTEL_TRACES_EXPORTER")) && !strcmp(v, "none")) ||
      !endpoint_of("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "v1/traces", endpoint,
                   sizeof(endpoint)))
    return 0;
  memset(&o, 0, sizeof(o));
  o.store_url = store_url;
  o.owner = owner;
  o.endpoint = endpoint;
  o.headers = env("OTEL_EXPORTER_OTLP_HEADERS");
  o.traces_headers = env("OTEL_EXPORTER_OTLP_TRACES_HEADERS");
  o.service_name = env("OTEL_SERVICE_NAME");
  o.resource_attributes = env("OTEL_RESOURCE_ATTRIBUTES");
  o.capture_content =
      (v = env("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")) &&
      !strcmp(v, "true");
  o.timeout_ms = (v = env("OTEL_EXPORTER_OTLP_TIMEOUT")) ? atoll(v) : 0;
  o.poll_ms = (v = env("OTEL_BSP_SCHEDULE_DELAY")) ? atoll(v) : 0;
  o.max_batch = (v = env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")) ? atoll(v) : 0;
  o.on_log = on_log;
  if (durin_otel_exporter_start(&o, out, &err)) {
    cli_error("%s", err.msg);
    return EXIT_USAGE;
  }
  return 0;
}

/* ---- metrics ---- */

/* Whether OTEL_METRICS_EXPORTER (a list) leaves OTLP on: unset, or "otlp"
 * among its items. */
static int otlp_metrics_exporter(void)
{
  const char *v = env("OTEL_METRICS_EXPORTER"), *p;
  size_t n;

  if (!v)
    return 1;
  for (p = v; *p; p += n) {
    p += strspn(p, ", ");
    n = strcspn(p, ", ");
    if (n == 4 && !strncmp(p, "otlp", 4))
      return 1;
  }
  return 0;
}

int cli_otel_metrics_wanted(void)
{
  char endpoint[2048];

  return !sdk_disabled() && otlp_metrics_exporter() &&
         endpoint_of("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "v1/metrics",
                     endpoint, sizeof(endpoint));
}

/* A variable in ms: its value, def when unset, not a number or <= 0. */
static int64_t env_ms(const char *name, int64_t def)
{
  const char *v = env(name);
  char *end;
  long long ms = v ? strtoll(v, &end, 10) : 0;

  return v && !*end && ms > 0 ? (int64_t)ms : def;
}

struct cli_metrics_push {
  struct durin_otel_metrics *pusher;
  struct metrics_store_source *store;
};

int cli_otel_metrics_start(const char *store_url, const char *owner,
                           struct durin_metrics *m,
                           const volatile sig_atomic_t *give_up,
                           void (*on_log)(void *, const char *),
                           struct cli_metrics_push **out)
{
  struct durin_otel_metrics_opts o;
  struct durin_err err = { 0 };
  struct cli_metrics_push *p;
  char endpoint[2048];
  int64_t timeout;

  *out = NULL;
  if (!m || !cli_otel_metrics_wanted())
    return 0;
  endpoint_of("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "v1/metrics", endpoint,
              sizeof(endpoint));
  if (!(p = calloc(1, sizeof(*p))) ||
      !(p->store = metrics_store_source_new(store_url))) {
    free(p);
    cli_error("out of memory");
    return EXIT_STORE;
  }
  memset(&o, 0, sizeof(o));
  o.endpoint = endpoint;
  o.headers = env("OTEL_EXPORTER_OTLP_HEADERS");
  o.metrics_headers = env("OTEL_EXPORTER_OTLP_METRICS_HEADERS");
  o.service_name = env("OTEL_SERVICE_NAME");
  o.resource_attributes = env("OTEL_RESOURCE_ATTRIBUTES");
  o.instance_id = owner;
  o.metrics = m;
  /* What /metrics adds at a scrape, read for each push. */
  o.collect = metrics_store_source_read;
  o.collect_arg = p->store;
  o.interval_ms = env_ms("OTEL_METRIC_EXPORT_INTERVAL", 60000);
  /* The reader's limit on an export and the exporter's on a request: a
   * push waits the shorter. */
  o.timeout_ms = env_ms("OTEL_METRIC_EXPORT_TIMEOUT", 30000);
  timeout = env_ms("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
                   env_ms("OTEL_EXPORTER_OTLP_TIMEOUT", 10000));
  if (timeout < o.timeout_ms)
    o.timeout_ms = timeout;
  o.give_up = give_up;
  o.on_log = on_log;
  if (durin_otel_metrics_start(&o, &p->pusher, &err)) {
    cli_error("%s", err.msg);
    metrics_store_source_free(p->store);
    free(p);
    return EXIT_USAGE;
  }
  *out = p;
  return 0;
}

void cli_otel_metrics_stop(struct cli_metrics_push *p)
{
  if (!p)
    return;
  durin_otel_metrics_stop(p->pusher); /* the last push reads the store */
  metrics_store_source_free(p->store);
  free(p);
}
