/* Helpers shared by the subcommands. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd.h"
#include "durin/policy.h"
#include "durin/sandbox.h"
#include "durin/tools.h"
#include "durin/util.h"
#include "durin/worker.h"

void cli_error(const char *fmt, ...)
{
  va_list ap;

  fputs("durin: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

int cli_exit_for(int code)
{
  switch (code) {
  case 0:
    return EXIT_OK;
  case DURIN_EFENCED:
  case DURIN_EBUSY:
    return EXIT_OWNED;
  case DURIN_ENOTFOUND:
    return EXIT_NOT_FOUND;
  case DURIN_ESPEC:
    return EXIT_SPEC;
  case DURIN_EURL:
  case DURIN_ESTORE:
  case DURIN_ESCHEMA:
  case DURIN_EIO:
    return EXIT_STORE;
  case DURIN_EINVAL:
    return EXIT_USAGE;
  default:
    return EXIT_RUN_FAILED;
  }
}

int cli_exit_for_status(enum durin_run_status st)
{
  switch (st) {
  case DURIN_RUN_SUCCEEDED:
    return EXIT_OK;
  case DURIN_RUN_NEEDS_HUMAN:
  case DURIN_RUN_WAITING_APPROVAL:
  case DURIN_RUN_PAUSED:
    return EXIT_NEEDS_HUMAN;
  case DURIN_RUN_RUNNING:
  case DURIN_RUN_QUEUED:
    return EXIT_INTERRUPTED;
  default:
    return EXIT_RUN_FAILED;
  }
}

int cli_open_store(struct cli *cli)
{
  struct durin_err err = { 0 };
  int r;

  if (cli->store)
    return 0;
  r = durin_store_open(cli->store_url, &cli->store, &err);
  if (r) {
    cli_error("%s", err.msg);
    return EXIT_STORE;
  }
  return 0;
}

int cli_run_arg(int argc, char **argv, struct cli *cli, const char *cmd,
                const char *usage, const char *flag, int *on, char id[32])
{
  const char *arg = NULL;
  int i, r;

  if (cli_wants_help(argc, argv)) {
    fputs(usage, stdout);
    return EXIT_OK;
  }
  for (i = 1; i < argc; i++) {
    if (flag && !strcmp(argv[i], flag))
      *on = 1;
    else if (argv[i][0] != '-' && !arg)
      arg = argv[i];
    else
      return cli_bad_arg(cmd, argv[i], usage);
  }
  if (!arg) {
    fputs(usage, stderr);
    return EXIT_USAGE;
  }
  return (r = cli_resolve(cli, arg, id)) ? r : -1;
}

int cli_resolve(struct cli *cli, const char *arg, char id[32])
{
  struct durin_err err = { 0 };
  int r = cli_open_store(cli);

  if (r)
    return r;
  r = durin_store_run_resolve(cli->store, arg, id, &err);
  if (r) {
    cli_error("%s", err.msg);
    return cli_exit_for(r);
  }
  return 0;
}

/* The directory of a "sqlite:PATH[?...]" store's file ("." when none). */
static void sqlite_dir(const char *url, char *out, size_t len)
{
  char *slash;

  snprintf(out, len, "%s", url + 7);
  out[strcspn(out, "?")] = '\0';
  slash = strrchr(out, '/');
  if (!slash)
    snprintf(out, len, ".");
  else
    *(slash == out ? slash + 1 : slash) = '\0';
}

int cli_data_dir(struct cli *cli, char *out, size_t len)
{
  const char *env = getenv("DURIN_DATA_DIR");
  const char *url = cli->store_url;
  char dir[PATH_MAX], *abs;

  if (env && *env) {
    snprintf(out, len, "%s", env);
    return 0;
  }
  if (strncmp(url, "sqlite:", 7) != 0) {
    cli_error("set DURIN_DATA_DIR: run workspaces are kept next to the "
              "store only for sqlite stores");
    return EXIT_USAGE;
  }
  /* Workspaces live in "runs/" beside the database file. */
  sqlite_dir(url, dir, sizeof(dir));
  abs = realpath(dir, NULL);
  if (!abs) {
    cli_error("cannot find the store directory '%s': %s", dir, strerror(errno));
    return EXIT_STORE;
  }
  snprintf(out, len, "%s/runs", abs);
  free(abs);
  return 0;
}

void cli_owner_name(char *out, size_t len)
{
  char host[256] = "localhost";

  gethostname(host, sizeof(host) - 1);
  snprintf(out, len, "%s:%d", host, (int)getpid());
}

int cli_lease_live(const struct durin_run_info *ri)
{
  char host[256] = "", mine[256] = "";
  const char *colon;
  long pid;

  if (!ri->lease_owner)
    return 0;
  colon = strrchr(ri->lease_owner, ':');
  if (colon) {
    snprintf(host, sizeof(host), "%.*s", (int)(colon - ri->lease_owner),
             ri->lease_owner);
    gethostname(mine, sizeof(mine) - 1);
    pid = strtol(colon + 1, NULL, 10);
    /*
     * On this host the owner's pid is the truth: a dead owner holds
     * nothing, and a live one (busy in a long tool call, past its lease)
     * still drives the run.
     */
    if (!strcmp(host, mine) && pid > 0)
      return kill((pid_t)pid, 0) == 0 || errno == EPERM;
  }
  return ri->lease_expires_ms >= durin_now_ms();
}

int cli_wants_help(int argc, char **argv)
{
  int i;

  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--"))
      break;
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
      return 1;
  }
  return 0;
}

static void print_trunc(FILE *f, const char *s, size_t max)
{
  size_t i;

  for (i = 0; s && s[i] && i < max; i++)
    fputc(s[i] == '\n' || s[i] == '\r' ? ' ' : s[i], f);
  if (s && strlen(s) > max)
    fputs("...", f);
}

void cli_print_event(FILE *f, const char *run_id, const struct durin_event *ev)
{
  json_t *d = json_loads(ev->data, 0, NULL);
  const char *t = ev->type;

  (void)run_id;
  fprintf(f, "[step %lld] ", (long long)ev->step);
  /* The evaluator's own steps (docs/internals/evaluator.md). */
  if (json_is_string(json_object_get(d, "role")))
    fprintf(f, "%s ", json_string_value(json_object_get(d, "role")));
  if (!strcmp(t, "model_response")) {
    json_t *calls = json_object_get(d, "tool_calls"), *c;
    size_t i;

    fprintf(f, "model: %lld in / %lld out tokens",
            (long long)json_integer_value(json_object_get(d, "input_tokens")),
            (long long)json_integer_value(json_object_get(d, "output_tokens")));
    if (json_is_string(json_object_get(d, "text"))) {
      fputs(": ", f);
      print_trunc(f, json_string_value(json_object_get(d, "text")), 100);
    }
    json_array_foreach(calls, i, c) {
      fprintf(f, "\n[step %lld]   call %s ", (long long)ev->step,
              json_string_value(json_object_get(c, "name")));
      print_trunc(f, json_string_value(json_object_get(c, "arguments")), 90);
    }
  } else if (!strcmp(t, "tool_result")) {
    json_t *env = json_object_get(d, "secrets_env"), *g;
    size_t i;

    fprintf(f, "%s %s%s", json_string_value(json_object_get(d, "name")),
            json_is_true(json_object_get(d, "ok")) ? "ok" : "FAILED",
            json_is_true(json_object_get(d, "reused")) ?
                " (recorded outcome reused, not re-run)" :
                "");
    /* An env grant: the command held the value (the spec's last resort). */
    json_array_foreach(env, i, g)
      fprintf(f, " [env grant: %s in %s]",
              json_string_value(json_object_get(g, "secret")),
              json_string_value(json_object_get(g, "env")));
    fprintf(f, ": ");
    print_trunc(f, json_string_value(json_object_get(d, "output")), 100);
  } else if (!strcmp(t, "checks")) {
    json_t *res = json_object_get(d, "results"), *c;
    size_t i;

    fprintf(f, "acceptance checks %s (attempt %lld)",
            json_is_true(json_object_get(d, "passed")) ? "PASSED" : "FAILED",
            (long long)json_integer_value(json_object_get(d, "attempt")));
    json_array_foreach(res, i, c)
      fprintf(f, "; %s: %s", json_string_value(json_object_get(c, "name")),
              json_is_true(json_object_get(c, "ok")) ? "pass" : "fail");
  } else if (!strcmp(t, "evaluation_started")) {
    fprintf(f, "evaluation %lld started (model %s:%s; first message %zu bytes)",
            (long long)json_integer_value(json_object_get(d, "attempt")),
            json_string_value(json_object_get(d, "provider")),
            json_string_value(json_object_get(d, "model")),
            json_string_length(json_object_get(d, "context")));
  } else if (!strcmp(t, "verdict")) {
    json_t *rs = json_object_get(d, "reasons"), *r;
    size_t i;

    fprintf(f, "verdict %s (evaluation %lld, %s)",
            json_string_value(json_object_get(d, "verdict")),
            (long long)json_integer_value(json_object_get(d, "attempt")),
            json_string_value(json_object_get(d, "source")));
    json_array_foreach(rs, i, r) {
      fputs(i ? "; " : ": ", f);
      print_trunc(f, json_string_value(r), 160);
    }
  } else if (!strcmp(t, "run_finished")) {
    fprintf(f, "run %s: %s", json_string_value(json_object_get(d, "status")),
            json_string_value(json_object_get(d, "reason")));
  } else if (!strcmp(t, "run_started")) {
    fprintf(f, "run started (model %s:%s)",
            json_string_value(json_object_get(d, "provider")),
            json_string_value(json_object_get(d, "model")));
  } else if (!strcmp(t, "resumed")) {
    fprintf(f, "resumed from step %lld (attempt %lld)",
            (long long)json_integer_value(json_object_get(d, "from_step")),
            (long long)json_integer_value(json_object_get(d, "attempt")));
  } else if (!strcmp(t, "needs_human") || !strcmp(t, "budget_exceeded") ||
             !strcmp(t, "cancelled")) {
    fprintf(f, "%s: %s", t, json_string_value(json_object_get(d, "reason")));
  } else if (!strcmp(t, "policy")) {
    fprintf(f, "policy: %s %s (%s %s)",
            json_string_value(json_object_get(d, "decision")),
            json_string_value(json_object_get(d, "tool")),
            json_string_value(json_object_get(d, "origin")),
            json_string_value(json_object_get(d, "rule")));
    if (json_object_get(d, "approval"))
      fprintf(f, ", approval %s %s",
              json_string_value(
                  json_object_get(json_object_get(d, "approval"), "id")),
              json_string_value(
                  json_object_get(json_object_get(d, "approval"), "state")));
  } else if (!strcmp(t, "approval_requested")) {
    fprintf(f, "waiting for approval %s: %s ",
            json_string_value(json_object_get(d, "id")),
            json_string_value(json_object_get(d, "tool")));
    print_trunc(f, json_string_value(json_object_get(d, "arguments")), 80);
  } else if (!strcmp(t, "approval_decided")) {
    fprintf(f, "approval %s %s by %s",
            json_string_value(json_object_get(d, "id")),
            json_string_value(json_object_get(d, "decision")),
            json_string_value(json_object_get(d, "by")));
    if (json_is_string(json_object_get(d, "comment"))) {
      fputs(": ", f);
      print_trunc(f, json_string_value(json_object_get(d, "comment")), 80);
    }
  } else if (!strcmp(t, "loop_detected")) {
    fprintf(f, "loop: %s ", json_string_value(json_object_get(d, "tool")));
    print_trunc(f, json_string_value(json_object_get(d, "arguments")), 80);
    fprintf(f, " failed the same way %lld times (exit code %lld): ",
            (long long)json_integer_value(json_object_get(d, "times")),
            (long long)json_integer_value(json_object_get(d, "exit_code")));
    print_trunc(f, json_string_value(json_object_get(d, "error")), 120);
  } else if (!strcmp(t, "phase_complete")) {
    fprintf(f, "phase '%s' complete: %s",
            json_string_value(json_object_get(d, "phase")),
            json_string_value(json_object_get(d, "why")));
  } else if (!strcmp(t, "phase_check")) {
    fprintf(f, "phase '%s' check %s (exit code %lld)",
            json_string_value(json_object_get(d, "phase")),
            json_is_true(json_object_get(d, "ok")) ? "passed" : "not yet",
            (long long)json_integer_value(json_object_get(d, "exit_code")));
  } else if (!strcmp(t, "phase_ended") || !strcmp(t, "context_reset")) {
    json_t *a = json_object_get(d, "artifact"), *c;
    size_t i;

    if (!strcmp(t, "phase_ended"))
      fprintf(f, "phase '%s' ended, '%s' begins; artifact:",
              json_string_value(json_object_get(d, "phase")),
              json_string_value(json_object_get(d, "next")));
    else {
      a = json_object_get(d, "handoff");
      fprintf(
          f,
          "context reset %lld (request %lld bytes, cap %lld); "
          "handoff:",
          (long long)json_integer_value(json_object_get(d, "count")),
          (long long)json_integer_value(json_object_get(d, "request_bytes")),
          (long long)json_integer_value(json_object_get(d, "cap_bytes")));
    }
    fprintf(f, " %zu decided, %zu found, %zu open",
            json_array_size(json_object_get(a, "decided")),
            json_array_size(json_object_get(a, "found")),
            json_array_size(json_object_get(a, "commitments")));
    json_array_foreach(json_object_get(a, "commitments"), i, c) {
      fputs(i ? "; " : ": ", f);
      print_trunc(f, json_string_value(c), 80);
    }
  } else if (!strcmp(t, "storm_detected")) {
    fprintf(f, "storm: %s", json_string_value(json_object_get(d, "reason")));
  } else if (!strcmp(t, "approval_expired")) {
    fprintf(f, "approval %s expired (then: %s)",
            json_string_value(json_object_get(d, "id")),
            json_string_value(json_object_get(d, "on_expiry")));
  } else if (!strcmp(t, "approval_refused")) {
    fprintf(f, "approval %s refused at execution: %s",
            json_string_value(json_object_get(d, "id")),
            json_string_value(json_object_get(d, "why")));
  } else if (!strcmp(t, "forked")) {
    fprintf(f, "forked from %s at step %lld (commit %.12s)",
            json_string_value(json_object_get(d, "from")),
            (long long)json_integer_value(json_object_get(d, "at_step")),
            json_string_value(json_object_get(d, "commit")));
  } else if (!strcmp(t, "run_continued")) {
    fprintf(f, "continued (attempt %lld): ",
            (long long)json_integer_value(json_object_get(d, "attempt")));
    print_trunc(f, json_string_value(json_object_get(d, "message")), 100);
  } else if (!strcmp(t, "model_error")) {
    fprintf(f, "model error: %s",
            json_string_value(json_object_get(d, "error")));
  } else if (!strcmp(t, "plan_updated")) {
    json_t *plan = json_object_get(d, "plan"), *it;
    size_t i;

    fputs("plan:", f);
    json_array_foreach(plan, i, it)
      fprintf(f, " [%s] %s;", json_string_value(json_object_get(it, "status")),
              json_string_value(json_object_get(it, "step")));
  } else {
    fprintf(f, "%s ", t);
    print_trunc(f, ev->data, 120);
  }
  fputc('\n', f);
  json_decref(d);
}

int cli_ls_args(struct cli *cli, int argc, char **argv, const char *cmd,
                const char *usage, const char **tenant, int *json)
{
  int i, r;

  *tenant = NULL;
  *json = 0;
  for (i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--tenant") && i + 1 < argc)
      *tenant = argv[++i];
    else if (!strcmp(argv[i], "--json"))
      *json = 1;
    else
      return cli_bad_arg(cmd, argv[i], usage);
  }
  if ((r = cli_open_store(cli)))
    return r;
  return -1;
}

int cli_ls_end(const char *cmd, int json, json_t *arr, int r,
               const struct durin_err *err)
{
  if (json && !r)
    cli_print_json(arr);
  json_decref(arr);
  if (r) {
    cli_error("%s: %s", cmd, err->msg);
    return cli_exit_for(r);
  }
  return EXIT_OK;
}

void cli_print_json(json_t *j)
{
  char *s = json_dumps(j, JSON_INDENT(2));

  printf("%s\n", s ? s : "null");
  free(s);
}

void cli_print_event_json(FILE *f, const char *run_id,
                          const struct durin_event *ev)
{
  char ts[40];
  json_t *d = json_loads(ev->data, 0, NULL), *o;
  char *s;

  durin_fmt_time(ev->ts_ms, ts, sizeof(ts));
  o = json_pack("{s:s,s:I,s:I,s:s,s:s,s:o}", "run", run_id, "seq",
                (json_int_t)ev->seq, "step", (json_int_t)ev->step, "time", ts,
                "type", ev->type, "data", d ? d : json_null());
  s = json_dumps(o, JSON_COMPACT);
  fprintf(f, "%s\n", s);
  free(s);
  json_decref(o);
}

void cli_print_summary(FILE *f, const struct durin_run_info *ri)
{
  char dur[32];
  int64_t end = ri->finished_ms ? ri->finished_ms : ri->updated_ms;

  durin_fmt_duration(ri->started_ms ? end - ri->started_ms : 0, dur,
                     sizeof(dur));
  fprintf(f, "run       %s (%s)\n", ri->id, ri->name);
  fprintf(f, "status    %s\n", durin_run_status_name(ri->status));
  if (ri->reason && *ri->reason)
    fprintf(f, "reason    %s\n", ri->reason);
  fprintf(f, "model     %s\n", ri->model);
  fprintf(f, "steps     %lld\n", (long long)ri->usage.steps);
  fprintf(f, "tokens    %lld (%lld in, %lld out)\n",
          (long long)(ri->usage.input_tokens + ri->usage.output_tokens),
          (long long)ri->usage.input_tokens,
          (long long)ri->usage.output_tokens);
  fprintf(f, "cost      $%.4f\n", ri->usage.cost_usd);
  fprintf(f, "tools     %lld calls\n", (long long)ri->usage.tool_calls);
  fprintf(f, "duration  %s\n", dur);
  fprintf(f, "attempts  %lld\n", (long long)ri->attempt);
  fprintf(f, "workspace %s\n", ri->workspace);
}

/*
 * Runs `true` in the sandbox, as a tool call would, so that a host that
 * cannot build it is told before any run starts rather than in every tool
 * call's output.
 */
static int probe(const struct durin_sandbox *sb, struct durin_err *err)
{
  struct durin_proc_box box = { sb, NULL };
  struct durin_tool_result res;
  int r = 0;

  if (durin_worker_run_command(&box, NULL, "true", NULL, 10000, 4096, &res))
    return durin_err_set(err, DURIN_EIO, "cannot start %s", sb->helper);
  if (!res.ok) {
    res.output[strcspn(res.output, "\n")] = 0;
    r = durin_err_set(err, DURIN_EIO, "this host cannot build the sandbox (%s)",
                      *res.output ? res.output : "no reason given");
  }
  durin_tool_result_clear(&res);
  return r;
}

/* Keeps the store's directory (sqlite stores) and $DURIN_DATA_DIR out of
 * every spec bind of sb's calls. */
static int guard(struct cli *cli, struct durin_sandbox *sb)
{
  const char *data = getenv("DURIN_DATA_DIR");
  struct durin_err err = { 0 };
  char dir[PATH_MAX];
  int r = 0;

  if (!strncmp(cli->store_url, "sqlite:", 7)) {
    /* The database, its WAL and, by default, the data directory. */
    sqlite_dir(cli->store_url, dir, sizeof(dir));
    r = durin_sandbox_forbid(sb, dir, "the store's directory", &err);
  }
  if (!r && data && *data)
    r = durin_sandbox_forbid(sb, data, "the data directory", &err);
  if (r) {
    cli_error("%s", err.msg);
    return EXIT_STORE;
  }
  return 0;
}

int cli_sandbox(struct cli *cli, const char *mode, struct durin_sandbox *sb,
                const struct durin_sandbox **out)
{
  struct durin_err err = { 0 };
  char exe[PATH_MAX];
  ssize_t n;
  int r;

  *out = NULL;
  if (cli_private_mounts())
    return EXIT_STORE;
  if (mode && !strcmp(mode, "none")) {
    fprintf(stderr,
            "durin: WARNING: --sandbox none: tool calls and checks run on "
            "this host as uid %d, with only rlimits around them. A command "
            "the model writes can read, change or send anything this user "
            "can. Use it only for trusted specs.\n",
            (int)geteuid());
    return 0;
  }
  if (mode && strcmp(mode, "on")) {
    cli_error("--sandbox is 'on' (the default) or 'none', not '%s'", mode);
    return EXIT_USAGE;
  }
  n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  exe[n > 0 ? n : 0] = 0;
  if (durin_sandbox_open(sb, exe, &err) || probe(sb, &err)) {
    cli_error("%s", err.msg);
    cli_error("tool calls run sandboxed by default; fix the above, or run "
              "with --sandbox none to run them on this host unprotected");
    durin_sandbox_close(sb);
    return EXIT_SANDBOX;
  }
  if ((r = guard(cli, sb))) {
    durin_sandbox_close(sb);
    return r;
  }
  *out = sb;
  return 0;
}

int cli_private_mounts(void)
{
  static int done;

  if (done || geteuid() != 0)
    return 0;
  /* Host mounts still reach us (slave); ours never reach the host. */
  if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL)) {
    cli_error("cannot make a private mount namespace: %m");
    return EXIT_STORE;
  }
  done = 1;
  return 0;
}

int cli_load_spec(const char *path, struct durin_spec *spec)
{
  struct durin_err err = { 0 };
  char *text = NULL, *abs, *slash;
  int r;

  if (durin_file_read(path, 64 << 20, &text, NULL, &err)) {
    cli_error("%s", err.msg);
    return EXIT_SPEC;
  }
  abs = realpath(path, NULL);
  slash = abs ? strrchr(abs, '/') : NULL;
  if (slash)
    *slash = 0;
  r = durin_spec_parse(text, abs, spec, &err);
  free(text);
  free(abs);
  if (r) {
    cli_error("bad spec '%s': %s", path, err.msg);
    return EXIT_SPEC;
  }
  return 0;
}

int cli_server_policy(const char *path, struct durin_policy **out)
{
  struct durin_err err = { 0 };
  json_error_t je;
  json_t *j;
  int r;

  *out = NULL;
  if (!path)
    path = getenv("DURIN_POLICY");
  if (!path || !*path)
    return 0;
  j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
  if (!j) {
    cli_error("policy file '%s': %s (line %d); fix it, or leave --policy and "
              "DURIN_POLICY unset to use the specs' policies alone",
              path, je.text, je.line);
    return EXIT_SPEC;
  }
  r = durin_policy_parse(j, "server", out, &err);
  json_decref(j);
  if (r) {
    cli_error("policy file '%s': %s", path, err.msg);
    return EXIT_SPEC;
  }
  return 0;
}
