/*
 * durin limits [set SCOPE N | rm SCOPE]: how many runs of a tenant or a
 * concurrency key the workers hold at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"

static const char limits_usage[] =
    "usage: durin limits [--json]        list the limits\n"
    "       durin limits set SCOPE N     at most N runs of SCOPE at once\n"
    "       durin limits rm SCOPE        remove the limit\n\n"
    "SCOPE is tenant:NAME or key:NAME (a concurrency key). Tenants have no\n"
    "limit unless set; a concurrency key without one runs one at a time.\n"
    "With --json, one {\"scope\": SCOPE, \"max\": N} object per line.\n";

static int print_limit(const char *scope, int64_t max, void *arg)
{
  const int *json = arg;

  if (*json) {
    json_t *o = json_pack("{s:s,s:I}", "scope", scope, "max", (json_int_t)max);
    char *s = json_dumps(o, JSON_COMPACT);

    printf("%s\n", s);
    free(s);
    json_decref(o);
  } else {
    printf("%-40s %lld\n", scope, (long long)max);
  }
  return 0;
}

int cmd_limits(int argc, char **argv, struct cli *cli)
{
  struct durin_err err = { 0 };
  char *end;
  long long n = -1;
  int code, r, json = 0;

  if (cli_wants_help(argc, argv)) {
    fputs(limits_usage, stdout);
    return EXIT_OK;
  }
  if (argc == 2 && !strcmp(argv[1], "--json"))
    json = 1, argc = 1;
  if (argc > 1 && strcmp(argv[1], "set") && strcmp(argv[1], "rm"))
    return cli_bad_arg("limits", argv[1], limits_usage);
  if ((code = cli_open_store(cli)))
    return code;
  if (argc == 1) {
    r = durin_store_limit_list(cli->store, print_limit, &json, &err);
  } else if (argc == 4 && !strcmp(argv[1], "set")) {
    n = strtoll(argv[3], &end, 10);
    if (!*argv[3] || *end || n < 0) {
      cli_error("limits: N must be a whole number >= 0, not '%s'", argv[3]);
      return EXIT_USAGE;
    }
    r = durin_store_limit_set(cli->store, argv[2], n, &err);
  } else if (argc == 3 && !strcmp(argv[1], "rm")) {
    r = durin_store_limit_set(cli->store, argv[2], -1, &err);
  } else {
    fputs(limits_usage, stderr);
    return EXIT_USAGE;
  }
  if (r) {
    cli_error("%s", err.msg);
    return r == DURIN_EINVAL ? EXIT_USAGE : cli_exit_for(r);
  }
  return EXIT_OK;
}
