/*
 * durin trace ID: the run's OpenTelemetry trace, computed from its log, as
 * the OTLP/JSON request an exporter sends (include/durin/otel.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "durin/otel.h"

static const char trace_usage[] =
    "usage: durin trace [--content] ID\n"
    "\n"
    "Prints the run's trace as OTLP/JSON (an ExportTraceServiceRequest):\n"
    "one trace per run, a root 'invoke_agent NAME' span, a 'chat MODEL'\n"
    "span per model call, an 'execute_tool NAME' span per tool call, and\n"
    "spans for approval waits, with the GenAI semantic conventions'\n"
    "attributes. It is computed from the log: the same run gives the same\n"
    "trace and span ids every time. OTEL_SERVICE_NAME and\n"
    "OTEL_RESOURCE_ATTRIBUTES set the resource.\n"
    "\n"
    "  --content   include message and tool content (as\n"
    "              OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true)\n";

int cmd_trace(int argc, char **argv, struct cli *cli)
{
  struct durin_otel_resource res = { getenv("OTEL_SERVICE_NAME"),
                                     getenv("OTEL_RESOURCE_ATTRIBUTES") };
  struct durin_otel_opts o = { &res, 0 };
  struct durin_err err = { 0 };
  const char *cap =
      getenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT");
  char id[32], *text;
  json_t *req;
  int r;

  o.capture_content = cap && !strcmp(cap, "true");
  if ((r = cli_run_arg(argc, argv, cli, "trace", trace_usage, "--content",
                       &o.capture_content, id)) >= 0)
    return r;
  if ((r = durin_otel_run_trace(cli->store, id, &o, &req, &err))) {
    cli_error("%s", err.msg);
    return cli_exit_for(r);
  }
  text = json_dumps(req, JSON_INDENT(2));
  json_decref(req);
  if (!text) {
    cli_error("cannot write the trace: out of memory");
    return EXIT_STORE;
  }
  puts(text);
  free(text);
  return EXIT_OK;
}
