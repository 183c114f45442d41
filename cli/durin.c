/*
 * durin: the command line. A git-style table of subcommands; global
 * options come before the subcommand name.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cmd.h"
#include "durin-version.h"
#include "durin/util.h"

struct command {
  const char *name;
  int (*fn)(int argc, char **argv, struct cli *cli);
  const char *summary;
};

static int cmd_help(int argc, char **argv, struct cli *cli);

static const struct command commands[] = {
  { "help", cmd_help, "describe durin, or one command (durin help CMD)" },
  { "run", cmd_run, "submit an agent spec and drive the run here" },
  { "submit", cmd_submit, "queue an agent spec for the workers" },
  { "schedule", cmd_schedule, "runs that start themselves on a cron schedule" },
  { "serve", cmd_serve, "the HTTP API, event streams, webhooks and a worker" },
  { "worker", cmd_worker, "drive queued runs (many at once)" },
  { "resume", cmd_resume, "continue a run from its last committed step" },
  { "fork", cmd_fork, "a new run from a run's step N (log and workspace)" },
  { "continue", cmd_continue, "give an ended run a new instruction" },
  { "ls", cmd_ls, "list runs" },
  { "show", cmd_show, "show a run's status, usage and result" },
  { "logs", cmd_logs, "print a run's event log (-f to follow)" },
  { "explain", cmd_explain, "why a run ended and where its budget went" },
  { "cancel", cmd_cancel, "cancel a run" },
  { "pause", cmd_pause, "pause a run (a worker lets go of it)" },
  { "unpause", cmd_unpause, "queue a paused run again" },
  { "limits", cmd_limits, "concurrency limits per tenant and key" },
  { "sandbox", cmd_sandbox, "run one command in the tools' sandbox" },
  { "policy", cmd_policy, "explain a policy decision for one tool call" },
  { "approvals", cmd_approvals, "tool calls waiting for a person's decision" },
  { "approve", cmd_approve, "let a waiting tool call run (or edit it)" },
  { "reject", cmd_reject, "refuse a waiting tool call, with a reason" },
  { "diff", cmd_diff, "the run's workspace against its start" },
  { "log", cmd_log, "the run's workspace history: a git commit per step" },
  { "review", cmd_review, "the run's review: outcome, checks, diff, cost" },
  { "trace", cmd_trace, "the run's OpenTelemetry trace, from its log" },
  { "bundle", cmd_bundle, "a run's postmortem bundle (.tar.zst)" },
  { "token", cmd_token, "API tokens for durin serve" },
  { "webhook", cmd_webhook, "the secret that signs runs' own webhooks" },
  { "secret", cmd_secret,
    "the vault: encrypted secrets (set, ls, rm, keygen)" },
  { "trigger", cmd_trigger,
    "inbound webhooks that start runs (add, ls, rm, deliveries)" },
  { NULL, NULL, NULL },
};

static void usage(FILE *f)
{
  int i;

  fprintf(f, "usage: durin [--store URL] <command> [options]\n\n"
             "durin is a durable runtime for long-running AI agents.\n\n"
             "commands:\n");
  for (i = 0; commands[i].name; i++)
    fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
  fprintf(f,
          "\nglobal options:\n"
          "  --store URL   the store (default $DURIN_STORE, else "
          "sqlite:./.durin/durin.db);\n"
          "                sqlite:PATH[?sync=full|normal]\n"
          "  --version     print the version\n\n"
          "exit codes:\n"
          "  0   success (for run/resume: the run succeeded)\n"
          "  1   the run ended failed, cancelled or over budget\n"
          "  2   the run stopped and needs a person (needs_human)\n"
          "  3   another process owns the run\n"
          "  4   the store cannot be opened or written (bundle: its file)\n"
          "  5   no such run\n"
          "  64  bad command line\n"
          "  65  bad agent spec\n"
          "  70  the sandbox cannot be built on this host (see --sandbox)\n"
          "  130 interrupted; the run can be resumed\n\n"
          "'durin help <command>' (or 'durin <command> --help') describes a\n"
          "command.\n");
}

static const struct command *find_command(const char *name)
{
  int i;

  for (i = 0; commands[i].name; i++)
    if (!strcmp(commands[i].name, name))
      return &commands[i];
  return NULL;
}

/* durin help [CMD]: git's way to reach a command's help. */
static int cmd_help(int argc, char **argv, struct cli *cli)
{
  const struct command *c;
  char *help_argv[] = { NULL, "--help", NULL };

  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
      !strcmp(argv[1], "help")) {
    usage(stdout);
    return EXIT_OK;
  }
  if (argc > 2 || !(c = find_command(argv[1]))) {
    cli_error("help: '%s' is not a durin command (see 'durin --help')",
              argv[argc > 2 ? 2 : 1]);
    return EXIT_USAGE;
  }
  help_argv[0] = argv[1];
  return c->fn(2, help_argv, cli);
}

int cli_bad_arg(const char *cmd, const char *arg, const char *usage_text)
{
  if (arg[0] == '-' && arg[1])
    cli_error("%s: unknown option '%s'", cmd, arg);
  else
    cli_error("%s: unexpected argument '%s'", cmd, arg);
  if (usage_text)
    fputs(usage_text, stderr);
  return EXIT_USAGE;
}

/* DURIN_CRASH_AT fault injection: die as a real crash would. */
static void crash_hook(const char *point)
{
  (void)point;
  raise(SIGKILL);
}

/*
 * With a standard descriptor closed, the next open() would take its number
 * and a stray write to "stdout" could land in the store's database file
 * (SQLite warns of this). Fill any gap with /dev/null first.
 */
static void sanitize_stdfds(void)
{
  int fd;

  while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2)
    ;
  if (fd > 2)
    close(fd);
}

int main(int argc, char **argv)
{
  struct cli cli;
  struct durin_err err = { 0 };
  const struct command *cmd;
  const char *env;
  int i = 1, r;

  sanitize_stdfds();
  memset(&cli, 0, sizeof(cli));
  env = getenv("DURIN_STORE");
  cli.store_url = env && *env ? env : "sqlite:./.durin/durin.db";
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (!strcmp(argv[i], "--store") && i + 1 < argc) {
      cli.store_url = argv[++i];
    } else if (!strncmp(argv[i], "--store=", 8)) {
      cli.store_url = argv[i] + 8;
    } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return EXIT_OK;
    } else if (!strcmp(argv[i], "--version")) {
      printf("durin %s (%s)\n", DURIN_VERSION, DURIN_COMMIT);
      return EXIT_OK;
    } else {
      cli_error("unknown option '%s' (see 'durin --help')", argv[i]);
      return EXIT_USAGE;
    }
  }
  if (i >= argc) {
    usage(stderr);
    return EXIT_USAGE;
  }
  if (durin_fault_configure(getenv("DURIN_CRASH_AT"), crash_hook, &err)) {
    cli_error("DURIN_CRASH_AT: %s", err.msg);
    return EXIT_USAGE;
  }
  cmd = find_command(argv[i]);
  if (!cmd) {
    cli_error("'%s' is not a durin command (see 'durin --help')", argv[i]);
    return EXIT_USAGE;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  signal(SIGPIPE, SIG_IGN);
  r = cmd->fn(argc - i, argv + i, &cli);
  durin_store_close(cli.store);
  curl_global_cleanup();
  return r;
}
