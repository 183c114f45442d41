/*
 * durin submit SPEC: queue a run for the workers and print its id at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "durin/util.h"

static const char submit_usage[] =
    "usage: durin submit [options] SPEC\n\n"
    "Queues the agent spec SPEC for the workers ('durin worker' or 'durin\n"
    "serve') and prints the run id at once, and nothing else on stdout (a\n"
    "deduplicated submit prints the active run's id, and a note on\n"
    "stderr). Follow it with 'durin logs -f ID'.\n\n"
    "  --tenant T            the run's tenant (default 'default'); workers\n"
    "                        share themselves fairly between tenants\n"
    "  --priority N          higher runs first within a tenant (default 0)\n"
    "  --dedupe-key K        while a run of this tenant with key K is active,\n"
    "                        submitting again returns that run\n"
    "  --concurrency-key K   runs sharing K run one at a time (or as many as\n"
    "                        'durin limits set key:K N' allows)\n"
    "  --not-before TIME     start no earlier than TIME: +30s, +5m, +2h, or\n"
    "                        an ISO 8601 UTC time (2026-12-01T09:00:00Z)\n"
    "  --retry-budget N      how often the run may lose its worker before it\n"
    "                        fails (default 10)\n"
    "  --model P:NAME        use this model instead of the spec's\n"
    "  --json                print {\"run\": ID, \"deduplicated\": BOOL}\n";

int64_t cli_parse_duration(const char *s)
{
  char *end;
  double v = strtod(s, &end);

  if (end == s || v < 0)
    return -1;
  if (!strcmp(end, "ms"))
    return (int64_t)v;
  if (!*end || !strcmp(end, "s"))
    return (int64_t)(v * 1000);
  if (!strcmp(end, "m"))
    return (int64_t)(v * 60000);
  if (!strcmp(end, "h"))
    return (int64_t)(v * 3600000);
  return -1;
}

/* "+DURATION" from now, or an ISO 8601 UTC time; -1 if malformed. */
static int64_t parse_time(const char *s)
{
  struct tm tm;
  const char *end;

  if (*s == '+') {
    int64_t d = cli_parse_duration(s + 1);

    return d < 0 ? -1 : durin_now_ms() + d;
  }
  memset(&tm, 0, sizeof(tm));
  end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end || (*end && strcmp(end, "Z")))
    return -1;
  return (int64_t)timegm(&tm) * 1000;
}

static int int_arg(const char *opt, const char *v, int64_t *out)
{
  char *end;
  long long n = strtoll(v, &end, 10);

  if (!*v || *end) {
    cli_error("submit: %s wants a whole number, not '%s'", opt, v);
    return EXIT_USAGE;
  }
  *out = n;
  return 0;
}

int cmd_submit(int argc, char **argv, struct cli *cli)
{
  struct cli_submit sub;
  const char *spec_path = NULL;
  char id[32];
  int json = 0, i, code;

  if (cli_wants_help(argc, argv)) {
    fputs(submit_usage, stdout);
    return EXIT_OK;
  }
  memset(&sub, 0, sizeof(sub));
  sub.model = getenv("DURIN_MODEL");
  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

    if (!strcmp(a, "--json")) {
      json = 1;
      continue;
    }
    if (a[0] != '-') {
      if (spec_path) {
        cli_error("submit: give one spec file");
        return EXIT_USAGE;
      }
      spec_path = a;
      continue;
    }
    if (!v) {
      cli_error("submit: %s needs a value", a);
      return EXIT_USAGE;
    }
    i++;
    if (!strcmp(a, "--tenant"))
      sub.tenant = v;
    else if (!strcmp(a, "--dedupe-key"))
      sub.dedupe_key = v;
    else if (!strcmp(a, "--concurrency-key"))
      sub.concurrency_key = v;
    else if (!strcmp(a, "--model"))
      sub.model = v;
    else if (!strcmp(a, "--priority")) {
      if ((code = int_arg(a, v, &sub.priority)))
        return code;
    } else if (!strcmp(a, "--retry-budget")) {
      if ((code = int_arg(a, v, &sub.retry_budget)))
        return code;
      if (sub.retry_budget < 1) {
        cli_error("submit: --retry-budget must be at least 1");
        return EXIT_USAGE;
      }
    } else if (!strcmp(a, "--not-before")) {
      sub.not_before_ms = parse_time(v);
      if (sub.not_before_ms < 0) {
        cli_error("submit: --not-before wants +30s, +5m, +2h or a UTC time "
                  "like 2026-12-01T09:00:00Z, not '%s'",
                  v);
        return EXIT_USAGE;
      }
    } else {
      return cli_bad_arg("submit", a, submit_usage);
    }
  }
  if (!spec_path) {
    fputs(submit_usage, stderr);
    return EXIT_USAGE;
  }
  code = cli_submit(cli, spec_path, &sub, id);
  if (code)
    return code;
  if (json)
    printf("{\"run\":\"%s\",\"deduplicated\":%s}\n", id,
           sub.deduped ? "true" : "false");
  else
    printf("%s\n", id); /* only the id: scripts take it with $(...) */
  if (!json && sub.deduped)
    fprintf(stderr, "durin: run %s is already active with dedupe key '%s'\n",
            id, sub.dedupe_key);
  return EXIT_OK;
}
