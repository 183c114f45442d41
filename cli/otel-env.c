/*
 * The trace exporter of `durin worker` and `durin serve`, configured as
 * every OpenTelemetry SDK is: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as
 * is) or OTEL_EXPORTER_OTLP_ENDPOINT (+ "/v1/traces"),
 * OTEL_EXPORTER_OTLP_HEADERS and OTEL_EXPORTER_OTLP_TRACES_HEADERS,
 * OTEL_EXPORTER_OTLP_TIMEOUT (ms), OTEL_SERVICE_NAME,
 * OTEL_RESOURCE_ATTRIBUTES, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT,
 * OTEL_BSP_SCHEDULE_DELAY (ms between rounds) and
 * OTEL_BSP_MAX_EXPORT_BATCH_SIZE (spans per request, about);
 * OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it off.
 * Nothing set, nothing sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "durin/otel.h"

static const char *env(const char *name)
{
  const char *v = getenv(name);

  return v && *v ? v : NULL;
}

int cli_otel_start(const char *store_url, const char *owner,
                   void (*on_log)(void *, const char *),
                   struct durin_otel_exporter **out)
{
  struct durin_otel_exporter_opts o;
  struct durin_err err = { 0 };
  char endpoint[2048], headers[4096];
  const char *base = env("OTEL_EXPORTER_OTLP_ENDPOINT");
  const char *h1 = env("OTEL_EXPORTER_OTLP_HEADERS");
  const char *h2 = env("OTEL_EXPORTER_OTLP_TRACES_HEADERS");
  const char *v;

  *out = NULL;
  if (((v = env("OTEL_SDK_DISABLED")) && !strcmp(v, "true")) ||
      ((v = env("OTEL_TRACES_EXPORTER")) && !strcmp(v, "none")))
    return 0;
  if ((v = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")))
    snprintf(endpoint, sizeof(endpoint), "%s", v);
  else if (base)
    snprintf(endpoint, sizeof(endpoint), "%s%sv1/traces", base,
             base[strlen(base) - 1] == '/' ? "" : "/");
  else
    return 0;
  snprintf(headers, sizeof(headers), "%s%s%s", h1 ? h1 : "",
           h1 && h2 ? "," : "", h2 ? h2 : "");
  memset(&o, 0, sizeof(o));
  o.store_url = store_url;
  o.owner = owner;
  o.endpoint = endpoint;
  o.headers = headers;
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
