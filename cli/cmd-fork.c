/*
 * durin fork ID --at-step N [--goal TEXT] and durin continue ID MESSAGE:
 * a new run from a step of another (its log and its workspace's git
 * commit), and a new instruction for an ended run. Both drive the run in
 * this process afterwards, as `durin resume` does, unless --queue leaves
 * it to the workers. The work is in cli/fork.c (shared with the API).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "durin/policy.h"
#include "durin/sandbox.h"
#include "durin/util.h"

/* The options both commands share with `durin resume`. */
struct drive_opts {
  int json, wait, queue;
  const char *sandbox, *policy;
};

/* Takes argv[*i] if it is one of the drive options; 1 if it was. */
static int drive_opt(int argc, char **argv, int *i, struct drive_opts *d)
{
  if (!strcmp(argv[*i], "--json"))
    d->json = 1;
  else if (!strcmp(argv[*i], "--no-wait"))
    d->wait = 0;
  else if (!strcmp(argv[*i], "--queue"))
    d->queue = 1;
  else if (!strcmp(argv[*i], "--sandbox") && *i + 1 < argc)
    d->sandbox = argv[++*i];
  else if (!strcmp(argv[*i], "--policy") && *i + 1 < argc)
    d->policy = argv[++*i];
  else
    return 0;
  return 1;
}

/* The sandbox and policy, made before the run is, so a host that cannot
 * drive it says so before anything changes. */
static int drive_prepare(struct cli *cli, const struct drive_opts *d,
                         struct durin_sandbox *sb,
                         const struct durin_sandbox **sbp,
                         struct durin_policy **pol)
{
  int r;

  *sbp = NULL;
  *pol = NULL;
  if (d->queue)
    return 0;
  if ((r = cli_server_policy(d->policy, pol)))
    return r;
  if ((r = cli_sandbox(cli, d->sandbox, sb, sbp))) {
    durin_policy_free(*pol);
    *pol = NULL;
  }
  return r;
}

static void drive_release(struct durin_sandbox *sb,
                          const struct durin_sandbox *sbp,
                          struct durin_policy *pol)
{
  if (sbp)
    durin_sandbox_close(sb);
  durin_policy_free(pol);
}

/* A whole number >= 0, or -1. */
static int64_t count_arg(const char *s)
{
  char *end;
  long long v;

  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < 0)
    return -1;
  return v;
}

static const char fork_usage[] =
    "usage: durin fork [--goal TEXT] [--queue] [--json] [--no-wait]\n"
    "                  [--sandbox none] [--policy FILE] ID --at-step N\n\n"
    "Makes a new run whose history is run ID's up to step N and whose\n"
    "workspace is the git commit of step N on ID's branch durin/ID; the\n"
    "original is not changed. The fork gets its own branch durin/NEW from\n"
    "that commit, has spent what ID had spent by step N, and goes on from\n"
    "there, driven in this process (as 'durin resume' would).\n\n"
    "  --at-step N   the step to fork at (0: before the first)\n"
    "  --goal TEXT   a new goal: it replaces the spec's, and the agent is\n"
    "                told that it changed\n"
    "  --queue       leave the fork to the workers; print its id\n"
    "  --json, --no-wait, --sandbox none, --policy FILE: as for 'durin run'\n\n"
    "Only a run with git checkpoints (a workspace that is a git repository)\n"
    "can be forked.\n";

int cmd_fork(int argc, char **argv, struct cli *cli)
{
  struct drive_opts d = { 0, 1, 0, NULL, NULL };
  struct cli_fork o;
  struct durin_err err = { 0 };
  struct durin_sandbox sb;
  const struct durin_sandbox *sbp = NULL;
  struct durin_policy *pol = NULL;
  const char *arg = NULL, *step = NULL;
  char from[32], id[32], data[PATH_MAX], owner[300];
  int i, r;

  if (cli_wants_help(argc, argv)) {
    fputs(fork_usage, stdout);
    return EXIT_OK;
  }
  memset(&o, 0, sizeof(o));
  for (i = 1; i < argc; i++) {
    if (drive_opt(argc, argv, &i, &d))
      continue;
    if (!strcmp(argv[i], "--at-step") && i + 1 < argc)
      step = argv[++i];
    else if (!strcmp(argv[i], "--goal") && i + 1 < argc)
      o.goal = argv[++i];
    else if (argv[i][0] == '-')
      return cli_bad_arg("fork", argv[i], fork_usage);
    else if (!arg)
      arg = argv[i];
    else
      return cli_bad_arg("fork", argv[i], fork_usage);
  }
  if (!arg || !step) {
    cli_error("fork: give the run and the step: durin fork ID --at-step N");
    fputs(fork_usage, stderr);
    return EXIT_USAGE;
  }
  if ((o.at_step = count_arg(step)) < 0) {
    cli_error("fork: --at-step takes a step number (0, 1, ...), not '%s'",
              step);
    return EXIT_USAGE;
  }
  if (o.goal && !*o.goal) {
    cli_error("fork: --goal is empty; leave it out to keep the run's goal");
    return EXIT_USAGE;
  }
  if ((r = cli_resolve(cli, arg, from)) ||
      (r = cli_data_dir(cli, data, sizeof(data))) ||
      (r = drive_prepare(cli, &d, &sb, &sbp, &pol)))
    return r;
  o.from = from;
  if (!d.queue) {
    cli_owner_name(owner, sizeof(owner));
    o.owner = owner;
  }
  r = cli_fork_run(cli->store, data, &o, id, &err);
  if (r) {
    cli_error("%s", err.msg);
    drive_release(&sb, sbp, pol);
    return r == DURIN_ESTATE ? EXIT_RUN_FAILED : cli_exit_for(r);
  }
  if (d.json && d.queue)
    printf("{\"run\":\"%s\",\"forked_from\":\"%s\",\"at_step\":%lld}\n", id,
           from, (long long)o.at_step);
  else if (!d.json)
    printf("run %s forked from %s at step %lld\n", id, from,
           (long long)o.at_step);
  fflush(stdout);
  r = d.queue ? EXIT_OK : cli_drive(cli, id, d.json, d.wait, sbp, pol);
  drive_release(&sb, sbp, pol);
  return r;
}

static const char continue_usage[] =
    "usage: durin continue [--add-steps N] [--add-tokens N] [--add-dollars D]\n"
    "                      [--add-tool-calls N] [--add-time DURATION]\n"
    "                      [--queue] [--json] [--no-wait] [--sandbox none]\n"
    "                      [--policy FILE] ID MESSAGE\n\n"
    "Gives run ID, which has ended (succeeded, failed, cancelled or\n"
    "budget_exceeded), a new instruction: MESSAGE joins its conversation\n"
    "and the run goes on from its last step with its context and its\n"
    "workspace, as a new attempt in the same log, driven in this process\n"
    "(as 'durin resume' would). Its acceptance checks start counting\n"
    "again; its budget does not: what it spent stays spent.\n\n"
    "  --add-steps N, --add-tokens N, --add-dollars D, --add-tool-calls N,\n"
    "  --add-time DURATION   raise the run's budget by that much (a budget\n"
    "                the spec does not set stays unlimited)\n"
    "  --queue       leave the run to the workers\n"
    "  --json, --no-wait, --sandbox none, --policy FILE: as for 'durin run'\n";

int cmd_continue(int argc, char **argv, struct cli *cli)
{
  struct drive_opts d = { 0, 1, 0, NULL, NULL };
  struct cli_continue o;
  struct durin_err err = { 0 };
  struct durin_sandbox sb;
  const struct durin_sandbox *sbp = NULL;
  struct durin_policy *pol = NULL;
  const char *arg = NULL;
  char id[32], owner[300], *end;
  int64_t attempt = 0;
  int i, r;

  if (cli_wants_help(argc, argv)) {
    fputs(continue_usage, stdout);
    return EXIT_OK;
  }
  memset(&o, 0, sizeof(o));
  for (i = 1; i < argc; i++) {
    int64_t *count = NULL;

    if (drive_opt(argc, argv, &i, &d))
      continue;
    if (!strcmp(argv[i], "--add-steps") && i + 1 < argc)
      count = &o.add_steps;
    else if (!strcmp(argv[i], "--add-tokens") && i + 1 < argc)
      count = &o.add_tokens;
    else if (!strcmp(argv[i], "--add-tool-calls") && i + 1 < argc)
      count = &o.add_tool_calls;
    else if (!strcmp(argv[i], "--add-dollars") && i + 1 < argc) {
      o.add_dollars = strtod(argv[++i], &end);
      if (*end || end == argv[i] || o.add_dollars < 0) {
        cli_error("continue: --add-dollars takes an amount such as 0.50, "
                  "not '%s'",
                  argv[i]);
        return EXIT_USAGE;
      }
      continue;
    } else if (!strcmp(argv[i], "--add-time") && i + 1 < argc) {
      o.add_wall_clock_ms = cli_parse_duration(argv[++i]);
      if (o.add_wall_clock_ms < 0) {
        cli_error("continue: --add-time takes a duration such as 30s, 5m "
                  "or 2h, not '%s'",
                  argv[i]);
        return EXIT_USAGE;
      }
      continue;
    } else if (argv[i][0] == '-')
      return cli_bad_arg("continue", argv[i], continue_usage);
    else if (!arg)
      arg = argv[i];
    else if (!o.message)
      o.message = argv[i];
    else
      return cli_bad_arg("continue", argv[i], continue_usage);
    if (count && (*count = count_arg(argv[++i])) < 0) {
      cli_error("continue: %s takes a whole number, not '%s'", argv[i - 1],
                argv[i]);
      return EXIT_USAGE;
    }
  }
  if (!arg || !o.message || !*o.message) {
    cli_error("continue: give the run and its new instruction: durin "
              "continue ID \"MESSAGE\"");
    fputs(continue_usage, stderr);
    return EXIT_USAGE;
  }
  if ((r = cli_resolve(cli, arg, id)) ||
      (r = drive_prepare(cli, &d, &sb, &sbp, &pol)))
    return r;
  o.id = id;
  if (!d.queue) {
    cli_owner_name(owner, sizeof(owner));
    o.owner = owner;
  }
  r = cli_continue_run(cli->store, &o, &attempt, &err);
  if (r) {
    cli_error("%s", err.msg);
    drive_release(&sb, sbp, pol);
    return r == DURIN_ESTATE ? EXIT_RUN_FAILED : cli_exit_for(r);
  }
  if (d.json && d.queue)
    printf("{\"run\":\"%s\",\"attempt\":%lld}\n", id, (long long)attempt);
  else if (!d.json)
    printf("run %s continued (attempt %lld)\n", id, (long long)attempt);
  fflush(stdout);
  r = d.queue ? EXIT_OK : cli_drive(cli, id, d.json, d.wait, sbp, pol);
  drive_release(&sb, sbp, pol);
  return r;
}
