/* durin ls: one line per run. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "durin/util.h"

/* The statuses come from the store's own list, so they never drift. */
static void ls_usage(FILE *f)
{
  int i;

  fputs("usage: durin ls [--json] [--status STATUS]... [--limit N]\n\n"
        "Lists runs, oldest first: id, status, steps, tokens, cost, age, "
        "name.\n\n"
        "  --json           one JSON object per run\n"
        "  --status STATUS  only runs in STATUS (repeat for several)\n"
        "  --limit N        at most N runs\n\n"
        "STATUS is one of:",
        f);
  for (i = 0; i < DURIN_RUN__COUNT; i++)
    fprintf(f, "%s%s", i % 6 ? ", " : (i ? ",\n  " : "\n  "),
            durin_run_status_name((enum durin_run_status)i));
  fputs("\n", f);
}

struct ls_ctx {
  int json;
  int64_t now;
};

static int print_run(const struct durin_run_info *ri, void *arg)
{
  struct ls_ctx *c = arg;
  char age[32];

  if (c->json) {
    printf("{\"id\":\"%s\",\"name\":\"%s\",\"status\":\"%s\",\"steps\":%lld,"
           "\"tokens\":%lld,\"cost_usd\":%.6f,\"created_ms\":%lld}\n",
           ri->id, ri->name, durin_run_status_name(ri->status),
           (long long)ri->usage.steps,
           (long long)(ri->usage.input_tokens + ri->usage.output_tokens),
           ri->usage.cost_usd, (long long)ri->created_ms);
    return 0;
  }
  durin_fmt_duration(c->now - ri->created_ms, age, sizeof(age));
  printf("%-22s %-16s %6lld %9lld  $%-9.4f %8s ago  %s\n", ri->id,
         durin_run_status_name(ri->status), (long long)ri->usage.steps,
         (long long)(ri->usage.input_tokens + ri->usage.output_tokens),
         ri->usage.cost_usd, age, ri->name);
  return 0;
}

int cmd_ls(int argc, char **argv, struct cli *cli)
{
  struct durin_run_filter f;
  struct durin_err err = { 0 };
  struct ls_ctx c;
  int i, r;

  if (cli_wants_help(argc, argv)) {
    ls_usage(stdout);
    return EXIT_OK;
  }
  memset(&f, 0, sizeof(f));
  memset(&c, 0, sizeof(c));
  for (i = 1; i < argc; i++) {
    enum durin_run_status st;

    if (!strcmp(argv[i], "--json")) {
      c.json = 1;
    } else if (!strcmp(argv[i], "--status") && i + 1 < argc) {
      if (durin_run_status_parse(argv[++i], &st)) {
        cli_error("ls: unknown status '%s'", argv[i]);
        ls_usage(stderr);
        return EXIT_USAGE;
      }
      f.status_mask |= 1 << st;
    } else if (!strcmp(argv[i], "--limit") && i + 1 < argc) {
      char *end;
      long n = strtol(argv[++i], &end, 10);

      if (!*argv[i] || *end || n < 1 || n > INT_MAX) {
        cli_error("ls: --limit wants a number of runs >= 1, not '%s'", argv[i]);
        return EXIT_USAGE;
      }
      f.limit = (int)n;
    } else {
      cli_bad_arg("ls", argv[i], NULL);
      ls_usage(stderr);
      return EXIT_USAGE;
    }
  }
  if ((r = cli_open_store(cli)))
    return r;
  c.now = durin_now_ms();
  if (!c.json)
    printf("%-22s %-16s %6s %9s  %-10s %12s  %s\n", "RUN", "STATUS", "STEPS",
           "TOKENS", "COST", "CREATED", "NAME");
  r = durin_store_run_list(cli->store, &f, print_run, &c, &err);
  if (r) {
    cli_error("%s", err.msg);
    return cli_exit_for(r);
  }
  return EXIT_OK;
}
