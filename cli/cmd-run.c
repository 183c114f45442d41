/*
 * durin run SPEC and durin resume ID: submit (run) and drive a run in this
 * process with live progress, through the worker limited to that run (the
 * one engine, DESIGN 5). Killing the process loses nothing: the run
 * continues from its last committed step with `durin resume`.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "durin/harness.h"
#include "durin/policy.h"
#include "durin/sandbox.h"
#include "durin/spec.h"
#include "durin/util.h"
#include "durin/worker.h"

static volatile sig_atomic_t stop_flag, hard_sig;
/* The worker driving the run, while it does (for the signal handler). */
static struct durin_worker *volatile driving;

/*
 * The first SIGINT/SIGTERM stops at the next step boundary, so no tool is
 * cut off mid-call; a second one quits at once, as a crash would (the run
 * still resumes from its last commit). durin_worker_stop() only wakes the
 * loop (uv_async_send is async-signal-safe).
 */
static void on_signal(int sig)
{
  static const char msg[] = "\ndurin: stopping after the current step "
                            "(interrupt again to quit now)\n";
  struct durin_worker *w = driving;

  if (stop_flag) {
    if (!w) {
      signal(sig, SIG_DFL);
      raise(sig);
      return;
    }
    hard_sig = sig;
    durin_worker_stop(w, 1);
    return;
  }
  stop_flag = 1;
  if (write(2, msg, sizeof(msg) - 1) < 0)
    stop_flag = 1;
  if (w)
    durin_worker_stop(w, 0);
}

struct progress {
  int tty;
  int json;
  const char *run_id;
  int64_t t0;
  int status_shown;
};

static void clear_status(struct progress *p)
{
  if (p->tty && p->status_shown) {
    fputs("\r\033[K", stderr);
    p->status_shown = 0;
  }
}

static void on_action(void *arg, const struct durin_action *act,
                      const struct durin_usage *u, int64_t committed)
{
  struct progress *p = arg;
  char el[32], what[160];

  (void)committed;
  if (!p->tty || p->json)
    return;
  switch (act->kind) {
  case DURIN_ACT_MODEL:
    snprintf(what, sizeof(what), "waiting for the model");
    break;
  case DURIN_ACT_TOOL:
    snprintf(what, sizeof(what), "running %s", act->tool->name);
    break;
  case DURIN_ACT_CHECKS:
    snprintf(what, sizeof(what), "running acceptance checks");
    break;
  case DURIN_ACT_COMMIT:
    snprintf(what, sizeof(what), "committing");
    break;
  case DURIN_ACT_SNAPSHOT:
    snprintf(what, sizeof(what), "committing the workspace to git");
    break;
  case DURIN_ACT_INTENT:
    snprintf(what, sizeof(what), "recording intent");
    break;
  case DURIN_ACT_OUTCOME:
    snprintf(what, sizeof(what), "recording outcome");
    break;
  case DURIN_ACT_DONE:
  default:
    clear_status(p);
    return;
  }
  durin_fmt_duration(durin_mono_ms() - p->t0, el, sizeof(el));
  fprintf(stderr, "\r\033[Kstep %lld | %s | %lld tokens | $%.4f | %s",
          (long long)act->step, what,
          (long long)(u->input_tokens + u->output_tokens), u->cost_usd, el);
  fflush(stderr);
  p->status_shown = 1;
}

static void on_event(void *arg, const struct durin_event *ev)
{
  struct progress *p = arg;

  clear_status(p);
  if (p->json)
    cli_print_event_json(stdout, p->run_id, ev);
  else
    cli_print_event(stdout, p->run_id, ev);
  fflush(stdout);
}

static void on_notice(void *arg, const char *msg)
{
  struct progress *p = arg;

  clear_status(p);
  fprintf(stderr, "durin: %s\n", msg);
}

/* DURIN_TRACE=harness: one stderr line per state transition. */
static void on_transition(void *arg, enum durin_step_state from,
                          enum durin_step_state to)
{
  struct progress *p = arg;

  clear_status(p);
  fprintf(stderr, "durin: trace: run %s: %s -> %s\n", p->run_id,
          durin_step_state_name(from), durin_step_state_name(to));
}

/* How this process drives a run. */
struct drive_cfg {
  int json;
  int resolve; /* indeterminate unsafe call: -1 ask, 0 skip, 1 retry */
  int wait;    /* a run waiting for approval: wait here for the decision */
  const struct durin_sandbox *sb;
  const struct durin_policy *policy;
};

/*
 * The run waits for a person: holding nothing, watch its row until the
 * decision puts it back in the queue. Returns 1 to drive it again here,
 * 0 if it went elsewhere or the wait was interrupted (*code says how).
 */
static int wait_for_decision(struct cli *cli, const char *id, int *code)
{
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  int tick;

  fprintf(stderr,
          "durin: waiting here for the decision ('durin approvals' lists "
          "it); Ctrl-C stops waiting, and a worker or 'durin resume %s' "
          "goes on after it\n",
          id);
  for (tick = 0; !stop_flag; tick++) {
    usleep(200 * 1000);
    /* The deadline holds without a serve: expire what is due, once a
     * second, as the watchdog would. */
    if (tick % 5 == 4) {
      struct durin_watchdog_opts wo = { durin_now_ms(), 0, 0 };
      struct durin_watchdog_report rep = { 0, 0, 0, 0 };

      durin_store_watchdog(cli->store, &wo, &rep, NULL);
    }
    if (durin_store_run_get(cli->store, id, &ri, &err)) {
      cli_error("%s", err.msg);
      *code = cli_exit_for(err.code);
      return 0;
    }
    if (ri.status != DURIN_RUN_WAITING_APPROVAL) {
      int here = !ri.lease_owner;

      if (!here)
        fprintf(stderr, "durin: run %s was decided and is now driven by %s\n",
                id, ri.lease_owner);
      *code = cli_exit_for_status(ri.status);
      durin_run_info_clear(&ri);
      return here;
    }
    durin_run_info_clear(&ri);
  }
  *code = EXIT_NEEDS_HUMAN;
  return 0;
}

/*
 * One pass of the worker limited to run id, until the run stops, waits,
 * is let go or is lost. Returns 0 and *res, or the error it was lost to.
 */
static int drive_once(struct cli *cli, const char *id,
                      const struct durin_worker_opts *o,
                      struct durin_worker_result *res, struct durin_err *err)
{
  struct durin_worker *w = NULL;
  int r;

  r = durin_worker_new(cli->store, o, &w, err);
  if (r)
    return r;
  driving = w;
  /* A signal that came before the worker did still counts. */
  if (stop_flag)
    durin_worker_stop(w, 0);
  r = durin_worker_run(w);
  if (!r)
    r = durin_worker_result(w, res, err);
  else
    durin_err_set(err, r, "cannot start an event loop for run '%s'", id);
  driving = NULL;
  durin_worker_free(w);
  /* Quit at once, as asked: the same end as before the worker existed. */
  if (hard_sig) {
    signal(hard_sig, SIG_DFL);
    raise(hard_sig);
  }
  return r;
}

/* Drives the run and prints its outcome; returns the exit code. */
static int drive(struct cli *cli, const char *id, const struct drive_cfg *cfg)
{
  struct durin_worker_opts o;
  struct durin_worker_result res;
  struct durin_err err = { 0 };
  struct durin_run_info ri;
  struct progress p;
  char owner[300];
  int r;

  memset(&p, 0, sizeof(p));
  p.tty = isatty(2);
  p.json = cfg->json;
  p.run_id = id;
  p.t0 = durin_mono_ms();
  cli_owner_name(owner, sizeof(owner));
  memset(&o, 0, sizeof(o));
  o.owner = owner;
  o.run_id = id;
  o.lease_ttl_ms = 60000;
  o.resolve = cfg->resolve;
  o.sandbox = cfg->sb;
  o.policy = cfg->policy;
  o.on_action = on_action;
  o.on_event = on_event;
  o.on_notice = on_notice;
  if (getenv("DURIN_TRACE") && strstr(getenv("DURIN_TRACE"), "harness"))
    o.on_transition = on_transition;
  o.arg = &p;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

again:
  r = drive_once(cli, id, &o, &res, &err);
  clear_status(&p);
  if (r) {
    cli_error("%s", err.msg);
    if (r == DURIN_EFENCED)
      cli_error("run '%s' is now driven elsewhere; this process stops", id);
    else
      cli_error("nothing committed was lost; continue with 'durin resume "
                "%s'",
                id);
    return cli_exit_for(r);
  }
  if (res.status == DURIN_RUN_WAITING_APPROVAL && !res.stopped) {
    int code = EXIT_NEEDS_HUMAN;

    fprintf(stderr, "durin: run %s %s\n", id, res.reason);
    if (cfg->wait && wait_for_decision(cli, id, &code))
      goto again;
    if (!cfg->wait || stop_flag)
      return EXIT_NEEDS_HUMAN;
    return code;
  }
  if (durin_store_run_get(cli->store, id, &ri, &err) == 0) {
    if (cfg->json) {
      printf("{\"run\":\"%s\",\"status\":\"%s\",\"steps\":%lld,"
             "\"input_tokens\":%lld,\"output_tokens\":%lld,"
             "\"cost_usd\":%.6f}\n",
             id, durin_run_status_name(ri.status), (long long)ri.usage.steps,
             (long long)ri.usage.input_tokens,
             (long long)ri.usage.output_tokens, ri.usage.cost_usd);
    } else {
      printf("\n");
      cli_print_summary(stdout, &ri);
    }
    durin_run_info_clear(&ri);
  }
  if (res.stopped && res.status == DURIN_RUN_PAUSED)
    fprintf(stderr,
            "durin: run %s was paused; 'durin unpause %s' puts it "
            "back in the queue\n",
            id, id);
  else if (res.stopped)
    fprintf(stderr, "durin: stopped by signal; resume with 'durin resume %s'\n",
            id);
  else if (res.status == DURIN_RUN_NEEDS_HUMAN)
    fprintf(stderr, "durin: run needs a human: %s\n", res.reason);
  else if (res.status == DURIN_RUN_PAUSED)
    fprintf(stderr, "durin: run paused: %s\n", res.reason);
  return cli_exit_for_status(res.status);
}

static const char run_usage[] =
    "usage: durin run [--json] [--model PROVIDER:NAME] [--policy FILE]\n"
    "                 [--no-wait] [--sandbox none] SPEC\n\n"
    "Submits the agent spec SPEC (a JSON file) and drives the run in this\n"
    "process until it ends, showing progress on a terminal and one line per\n"
    "event otherwise. The run's workspace is a copy of the spec's\n"
    "'workspace' directory, kept beside the store; 'durin diff ID' shows\n"
    "what the agent changed.\n\n"
    "  --json           events as JSON lines, then a JSON summary\n"
    "  --policy FILE    the server's policy (also DURIN_POLICY), applied on\n"
    "                   top of the spec's; it can only tighten it\n"
    "  --no-wait        when a call needs approval, exit (status 2) instead\n"
    "                   of waiting here for the decision\n"
    "  --sandbox none   run tool calls on this host, unprotected (loudly\n"
    "                   logged; the default runs each one in the sandbox,\n"
    "                   see 'durin sandbox --help')\n"
    "  --model P:NAME   use this model instead of the spec's (also\n"
    "                   DURIN_MODEL); e.g. openai:gpt-4o-mini or\n"
    "                   anthropic:claude-sonnet-4-5\n\n"
    "The model, its base URL (the spec's, else OPENAI_BASE_URL or\n"
    "ANTHROPIC_BASE_URL, else the provider's) and its price are pinned\n"
    "when the run is submitted.\n"
    "Killing durin loses nothing: 'durin resume ID' continues the run.\n"
    "Exit status: 0 if the run succeeded; see 'durin --help'.\n";

int cmd_run(int argc, char **argv, struct cli *cli)
{
  struct cli_submit sub;
  const char *spec_path = NULL, *sandbox = NULL, *policy = NULL;
  struct drive_cfg cfg = { 0, -1, 1, NULL, NULL };
  struct durin_policy *pol = NULL;
  struct durin_sandbox sb;
  char id[32], owner[300];
  int i, code;

  if (cli_wants_help(argc, argv)) {
    fputs(run_usage, stdout);
    return EXIT_OK;
  }
  memset(&sub, 0, sizeof(sub));
  sub.model = getenv("DURIN_MODEL");
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json"))
      cfg.json = 1;
    else if (!strcmp(argv[i], "--no-wait"))
      cfg.wait = 0;
    else if (!strcmp(argv[i], "--policy") && i + 1 < argc)
      policy = argv[++i];
    else if (!strcmp(argv[i], "--model") && i + 1 < argc)
      sub.model = argv[++i];
    else if (!strcmp(argv[i], "--sandbox") && i + 1 < argc)
      sandbox = argv[++i];
    else if (argv[i][0] == '-')
      return cli_bad_arg("run", argv[i], run_usage);
    else if (!spec_path)
      spec_path = argv[i];
    else {
      cli_error("run: give one spec file");
      return EXIT_USAGE;
    }
  }
  if (!spec_path) {
    fputs(run_usage, stderr);
    return EXIT_USAGE;
  }
  if ((code = cli_server_policy(policy, &pol)))
    return code;
  if ((code = cli_sandbox(cli, sandbox, &sb, &cfg.sb))) {
    durin_policy_free(pol);
    return code;
  }
  cfg.policy = pol;
  /* Created already held by this process, so no worker takes it first. */
  cli_owner_name(owner, sizeof(owner));
  sub.owner = owner;
  code = cli_submit(cli, spec_path, &sub, id);
  if (!code) {
    if (!cfg.json)
      printf("run %s submitted\n", id);
    fflush(stdout);
    code = drive(cli, id, &cfg);
  }
  if (cfg.sb)
    durin_sandbox_close(&sb);
  durin_policy_free(pol);
  return code;
}

static const char resume_usage[] =
    "usage: durin resume [--json] [--retry-call | --skip-call] [--force]\n"
    "                    [--policy FILE] [--no-wait] [--sandbox none] ID\n\n"
    "Continues run ID from its last committed step, in this process. Tool\n"
    "calls whose outcome was recorded are not run again. A call with side\n"
    "effects that was started before a crash but whose outcome is unknown\n"
    "stops the run as needs_human; after checking the workspace, choose:\n\n"
    "  --retry-call   run that call again\n"
    "  --skip-call    do not run it; tell the agent its outcome is unknown\n"
    "  --force        take the run over even if another live process\n"
    "                 holds its lease\n"
    "  --json         events as JSON lines\n"
    "  --policy FILE  the server's policy (also DURIN_POLICY)\n"
    "  --no-wait      when a call needs approval, exit instead of waiting\n"
    "  --sandbox none run tool calls on this host, unprotected\n\n"
    "A run waiting for approval goes on once it is decided ('durin\n"
    "approvals'); resuming it before then waits for the decision here.\n"
    "A run the loop breaker stopped (needs_human) or the storm breaker\n"
    "paused goes on here too, the breaker's count started again.\n";

/* Refuses to take over a run a live process is driving. */
static int check_owner(const struct durin_run_info *ri, int force)
{
  if (force || !cli_lease_live(ri))
    return 0;
  cli_error("run '%s' is being driven by %s; use 'durin cancel' to stop "
            "it, or --force to take it over",
            ri->id, ri->lease_owner);
  return EXIT_OWNED;
}

int cmd_resume(int argc, char **argv, struct cli *cli)
{
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  const char *arg = NULL, *sandbox = NULL, *policy = NULL;
  struct drive_cfg cfg = { 0, -1, 1, NULL, NULL };
  struct durin_policy *pol = NULL;
  struct durin_sandbox sb;
  int force = 0, i, r;
  char id[32];

  if (cli_wants_help(argc, argv)) {
    fputs(resume_usage, stdout);
    return EXIT_OK;
  }
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json"))
      cfg.json = 1;
    else if (!strcmp(argv[i], "--no-wait"))
      cfg.wait = 0;
    else if (!strcmp(argv[i], "--policy") && i + 1 < argc)
      policy = argv[++i];
    else if (!strcmp(argv[i], "--retry-call"))
      cfg.resolve = 1;
    else if (!strcmp(argv[i], "--skip-call"))
      cfg.resolve = 0;
    else if (!strcmp(argv[i], "--force"))
      force = 1;
    else if (!strcmp(argv[i], "--sandbox") && i + 1 < argc)
      sandbox = argv[++i];
    else if (argv[i][0] == '-')
      return cli_bad_arg("resume", argv[i], resume_usage);
    else
      arg = argv[i];
  }
  if (!arg) {
    fputs(resume_usage, stderr);
    return EXIT_USAGE;
  }
  if ((r = cli_resolve(cli, arg, id)))
    return r;
  r = durin_store_run_get(cli->store, id, &ri, &err);
  if (r) {
    cli_error("%s", err.msg);
    return cli_exit_for(r);
  }
  if (durin_run_status_terminal(ri.status)) {
    cli_error("run '%s' has already ended (%s); nothing to resume", id,
              durin_run_status_name(ri.status));
    r = cli_exit_for_status(ri.status);
    durin_run_info_clear(&ri);
    return r;
  }
  r = check_owner(&ri, force);
  if (!r && ri.status == DURIN_RUN_WAITING_APPROVAL) {
    /* Nothing to drive until a person decides. */
    fprintf(stderr, "durin: run %s %s\n", id, ri.reason ? ri.reason : "");
    if (!cfg.wait || !wait_for_decision(cli, id, &r)) {
      durin_run_info_clear(&ri);
      return cfg.wait ? r : EXIT_NEEDS_HUMAN;
    }
    r = 0;
  }
  durin_run_info_clear(&ri);
  if (r || (r = cli_server_policy(policy, &pol)))
    return r;
  if ((r = cli_sandbox(cli, sandbox, &sb, &cfg.sb))) {
    durin_policy_free(pol);
    return r;
  }
  cfg.policy = pol;
  r = drive(cli, id, &cfg);
  if (cfg.sb)
    durin_sandbox_close(&sb);
  durin_policy_free(pol);
  return r;
}

int cli_drive(struct cli *cli, const char *id, int json, int wait,
              const struct durin_sandbox *sb, const struct durin_policy *policy)
{
  struct drive_cfg cfg = { json, -1, wait, sb, policy };

  return drive(cli, id, &cfg);
}
