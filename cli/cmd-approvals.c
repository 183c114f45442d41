/*
 * durin approvals [--run ID] [--all] [--json]
 * durin approvals [--json] ID     what a reviewer needs to decide
 * durin approve ID [--args JSON] [--comment TEXT]
 * durin reject ID --reason TEXT
 *
 * A decision is one store transaction: the approval, an event in the
 * run's log, and the run back in the queue, where any worker (or a
 * waiting `durin run`) picks it up.
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "durin/harness.h"
#include "durin/policy.h"
#include "durin/tools.h"
#include "durin/util.h"

static const char approvals_usage[] =
    "usage: durin approvals [--run ID] [--all] [--json]\n"
    "       durin approvals [--json] APPROVAL\n\n"
    "Lists the tool calls waiting for a person's decision (with --all,\n"
    "decided ones too); one past its deadline shows as expired, as it can\n"
    "no longer be decided. Given an approval id, shows what a reviewer needs:\n"
    "the run's goal and plan, the exact call and the agent's reason, the\n"
    "cost so far and the workspace diff so far; with --json, all of it\n"
    "as one object (as GET /v1/approvals/ID answers).\n\n"
    "Decide with 'durin approve ID' or 'durin reject ID --reason TEXT'.\n";

static const char approve_usage[] =
    "usage: durin approve APPROVAL [--args JSON] [--comment TEXT]\n\n"
    "Lets the waiting call run, exactly as shown by 'durin approvals ID'.\n"
    "With --args it runs with these arguments instead: they must fit the\n"
    "tool's schema and the policy (the spec's, and $DURIN_POLICY's) must\n"
    "not deny them; the run checks them again. The run goes on on\n"
    "whichever worker is free (or when one starts).\n"
    "DURIN_REVIEWER (else USER, else the account's name) names who\n"
    "decided.\n";

static const char reject_usage[] =
    "usage: durin reject APPROVAL --reason TEXT\n\n"
    "Refuses the waiting call. The agent gets the reason as the call's\n"
    "result and goes on; the same call rejected approvals.max_rejections\n"
    "times stops the run as needs_human.\n";

/* DURIN_REVIEWER, else USER, else the account's name (cron, sudo -i and
 * containers often leave USER unset); "uid N" only for a nameless uid. */
static void reviewer(char *out, size_t len)
{
  const char *who = getenv("DURIN_REVIEWER");
  struct passwd *pw;

  if (!who || !*who)
    who = getenv("USER");
  if ((!who || !*who) && (pw = getpwuid(getuid())) && pw->pw_name)
    who = pw->pw_name;
  if (who && *who)
    snprintf(out, len, "%s", who);
  else
    snprintf(out, len, "uid %u", (unsigned)getuid());
}

/* "in 3h12m", "5m02s ago": durin_fmt_duration, with its direction. */
static void when(int64_t ms, int64_t now, char *out, size_t len)
{
  char d[20];

  durin_fmt_duration(ms > now ? ms - now : now - ms, d, sizeof(d));
  snprintf(out, len, "%s%s%s", ms > now ? "in " : "", d,
           ms > now ? "" : " ago");
}

struct listing {
  int json, n;
  int64_t now;
};

static int list_one(const struct durin_approval *a, void *arg)
{
  struct listing *l = arg;
  char age[32], exp[32], args[61];

  if (l->json) {
    json_t *o = cli_approval_json(a, l->now);
    char *s = json_dumps(o, JSON_COMPACT);

    printf("%s\n", s);
    free(s);
    json_decref(o);
    l->n++;
    return 0;
  }
  if (l->n++ == 0)
    printf("%-12s  %-21s  %-10s  %-9s  %-12s  %-14s  %s\n", "APPROVAL", "RUN",
           "TOOL", "STATE", "ASKED", "EXPIRES", "ARGUMENTS");
  when(a->requested_ms, l->now, age, sizeof(age));
  if (a->state == DURIN_APPROVAL_PENDING) /* also when just past it */
    when(a->expires_ms, l->now, exp, sizeof(exp));
  else
    snprintf(exp, sizeof(exp), "-");
  snprintf(args, sizeof(args), "%s", a->call_args);
  if (strlen(a->call_args) > 60)
    memcpy(args + 56, " ...", 5);
  printf("%-12s  %-21s  %-10s  %-9s  %-12s  %-14s  %s\n", a->id, a->run_id,
         a->tool,
         durin_approval_state_name(cli_approval_shown_state(a, l->now)), age,
         exp, args);
  return 0;
}

static int get_approval(struct cli *cli, const char *prefix,
                        struct cli_approval *h)
{
  struct durin_err err = { 0 };
  int r;

  memset(h, 0, sizeof(*h));
  if ((r = cli_open_store(cli)))
    return r;
  r = cli_approval_get(cli->store, prefix, h, &err);
  if (r) {
    cli_error("%s", err.msg);
    return r == DURIN_EINVAL ? EXIT_USAGE : cli_exit_for(r);
  }
  return 0;
}

static void print_indented(const char *text)
{
  const char *p = text, *nl;

  while (*p) {
    nl = strchr(p, '\n');
    printf("  %.*s\n", (int)(nl ? nl - p : (int)strlen(p)), p);
    if (!nl)
      break;
    p = nl + 1;
  }
}

/* Everything a reviewer needs to decide, on one screen. */
static int review(struct cli *cli, const char *prefix)
{
  struct cli_approval h;
  struct durin_run_info ri;
  struct durin_checkpoint ck;
  struct durin_spec spec;
  struct durin_err err = { 0 };
  char *ckt = NULL, *pretty, buf[64];
  int64_t step, now = durin_now_ms();
  json_t *args, *it;
  size_t k;
  int r;

  if ((r = get_approval(cli, prefix, &h)))
    return r;
  if ((r = durin_store_run_get(cli->store, h.a.run_id, &ri, &err))) {
    cli_error("%s", err.msg);
    cli_approval_clear(&h);
    return cli_exit_for(r);
  }
  memset(&ck, 0, sizeof(ck));
  memset(&spec, 0, sizeof(spec));
  if (durin_store_checkpoint_get(cli->store, ri.id, &step, &ckt, NULL) == 0)
    durin_checkpoint_parse(ckt, &ck, NULL);
  free(ckt);
  durin_spec_parse(ri.spec_json, NULL, &spec, NULL);

  printf("approval  %s  %s", h.a.id,
         durin_approval_state_name(cli_approval_shown_state(&h.a, now)));
  if (cli_approval_shown_state(&h.a, now) != h.a.state) {
    when(h.a.expires_ms, now, buf, sizeof(buf));
    printf(" (deadline passed %s; the run goes on as on_expiry '%s' says "
           "when a worker takes it)",
           buf, h.a.on_expiry);
  } else if (h.a.state == DURIN_APPROVAL_PENDING) {
    when(h.a.expires_ms, now, buf, sizeof(buf));
    printf(" (expires %s, then %s)", buf, h.a.on_expiry);
  } else if (h.a.decided_by) {
    printf(" by %s%s%s", h.a.decided_by, h.a.comment ? ": " : "",
           h.a.comment ? h.a.comment : "");
  }
  printf("\nrun       %s (%s), %s\n", ri.id, ri.name,
         durin_run_status_name(ri.status));
  printf("goal\n");
  print_indented(spec.goal ? spec.goal : "(unknown)");
  if (json_array_size(ck.plan)) {
    printf("plan\n");
    json_array_foreach(ck.plan, k, it)
      printf("  [%s] %s\n", json_string_value(json_object_get(it, "status")),
             json_string_value(json_object_get(it, "step")));
  }
  printf("spent     $%.4f, %lld steps, %lld tool calls, %lld tokens\n",
         ri.usage.cost_usd, (long long)ri.usage.steps,
         (long long)ri.usage.tool_calls,
         (long long)(ri.usage.input_tokens + ri.usage.output_tokens));
  printf("call      %s (%s), step %lld, asked by policy %s\n", h.a.tool,
         h.a.call_id, (long long)h.a.step, h.a.rule ? h.a.rule : "?");
  args = json_loads(h.a.call_args, 0, NULL);
  pretty = json_dumps(args, JSON_INDENT(2) | JSON_SORT_KEYS);
  printf("arguments (sha256 %s)\n", h.a.call_hash);
  print_indented(pretty ? pretty : h.a.call_args);
  free(pretty);
  json_decref(args);
  if (h.a.state == DURIN_APPROVAL_EDITED) {
    printf("approved with edited arguments (sha256 %s)\n", h.a.args_hash);
    print_indented(h.a.args);
  }
  if (h.a.reason && *h.a.reason) {
    printf("the agent said\n");
    print_indented(h.a.reason);
  }
  printf("workspace diff so far\n");
  fflush(stdout);
  r = cli_print_diff(cli, ri.id, 0, stdout);
  if (cli_approval_shown_state(&h.a, now) == DURIN_APPROVAL_PENDING)
    printf("\ndecide: durin approve %s [--args JSON] [--comment TEXT]\n"
           "        durin reject %s --reason TEXT\n",
           h.a.id, h.a.id);
  durin_checkpoint_clear(&ck);
  durin_spec_clear(&spec);
  durin_run_info_clear(&ri);
  cli_approval_clear(&h);
  return r;
}

/* The review as one JSON object, the shape GET /v1/approvals/ID answers
 * (cli_approval_review_json); a diff that cannot be made is null with
 * diff_error, not a failure. */
static int review_json(struct cli *cli, const char *prefix)
{
  struct cli_approval h;
  struct durin_err err = { 0 }, derr = { 0 };
  char *diff = NULL, *text;
  size_t len = 0;
  json_t *o = NULL;
  FILE *f;
  int r;

  if ((r = get_approval(cli, prefix, &h)))
    return r;
  if (!(f = open_memstream(&diff, &len)))
    durin_err_set(&derr, DURIN_ENOMEM, "out of memory");
  else if (cli_diff_write(cli->store, h.a.run_id, 0, f, &derr) && !derr.msg[0])
    durin_err_set(&derr, DURIN_EIO, "cannot make the diff");
  if (f)
    fclose(f);
  if (derr.msg[0]) {
    free(diff);
    diff = NULL;
  }
  r = cli_approval_review_json(cli->store, &h.a, durin_now_ms(), diff, derr.msg,
                               &o, &err);
  free(diff);
  cli_approval_clear(&h);
  if (r) {
    cli_error("%s", err.msg);
    return cli_exit_for(r);
  }
  text = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (!text) {
    cli_error("out of memory");
    return EXIT_STORE;
  }
  printf("%s\n", text);
  free(text);
  return EXIT_OK;
}

int cmd_approvals(int argc, char **argv, struct cli *cli)
{
  struct listing l = { 0, 0, durin_now_ms() };
  struct durin_err err = { 0 };
  const char *run = NULL, *one = NULL;
  char id[32];
  int all = 0, i, r;

  if (cli_wants_help(argc, argv)) {
    fputs(approvals_usage, stdout);
    return EXIT_OK;
  }
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--run") && i + 1 < argc)
      run = argv[++i];
    else if (!strcmp(argv[i], "--all"))
      all = 1;
    else if (!strcmp(argv[i], "--json"))
      l.json = 1;
    else if (argv[i][0] != '-' && !one)
      one = argv[i];
    else
      return cli_bad_arg("approvals", argv[i], approvals_usage);
  }
  if (one)
    return l.json ? review_json(cli, one) : review(cli, one);
  if (run && (r = cli_resolve(cli, run, id)))
    return r;
  if ((r = cli_open_store(cli)))
    return r;
  r = durin_store_approval_list(cli->store, run ? id : NULL, -1, !all, list_one,
                                &l, &err);
  if (r) {
    cli_error("%s", err.msg);
    return cli_exit_for(r);
  }
  if (!l.n && !l.json)
    printf("no %sapprovals%s\n", all ? "" : "pending ",
           run ? " for this run" : "");
  return EXIT_OK;
}

/* Checks --args as the run would (cli_approval_check_edit); prints why
 * not. Returns an exit code. */
static int check_edit(struct cli *cli, const struct durin_approval *a,
                      const char *text, struct cli_edit *e)
{
  struct durin_policy *server = NULL;
  struct durin_err err = { 0 };
  int r;

  /* A $DURIN_POLICY that does not load is said (by cli_server_policy);
   * the spec's policy still judges the call. */
  cli_server_policy(NULL, &server);
  r = cli_approval_check_edit(cli->store, a, text, server, e, &err);
  durin_policy_free(server);
  if (r == DURIN_EINVAL) {
    cli_error("--args for %s: %s (its arguments: %s); nothing was decided",
              a->tool, err.msg, e->arg_names);
    return EXIT_USAGE;
  }
  if (r == DURIN_EACCES) {
    cli_error("the policy denies the edited call (%s %s: %s); nothing was "
              "decided",
              e->denied.origin, e->denied.rule, e->denied.why);
    return EXIT_USAGE;
  }
  if (r)
    cli_error("%s", err.msg);
  return cli_exit_for(r);
}

static int decide(struct cli *cli, const char *prefix,
                  enum durin_approval_state st, const char *args_text,
                  const char *comment)
{
  struct cli_decision d;
  struct cli_edit edit;
  struct durin_err err = { 0 };
  struct cli_approval h;
  char who[128];
  int r;

  memset(&edit, 0, sizeof(edit));
  if ((r = get_approval(cli, prefix, &h)))
    return r;
  if (args_text && (r = check_edit(cli, &h.a, args_text, &edit)) != 0) {
    cli_edit_clear(&edit);
    cli_approval_clear(&h);
    return r;
  }
  reviewer(who, sizeof(who));
  memset(&d, 0, sizeof(d));
  d.state = st;
  d.edit = args_text ? &edit : NULL;
  d.who = who;
  d.comment = comment;
  r = cli_approval_decide(cli->store, &h.a, &d, &err);
  cli_edit_clear(&edit);
  if (r) {
    cli_error("%s", err.msg);
    if (d.final == DURIN_APPROVAL_EXPIRED)
      cli_error("see 'durin logs %s' for what the run did instead", h.a.run_id);
    cli_approval_clear(&h);
    return r == DURIN_ESTATE ? EXIT_NEEDS_HUMAN : cli_exit_for(r);
  }
  printf("approval %s %s; run %s goes on when a worker takes it (or 'durin "
         "resume %s')\n",
         h.a.id, durin_approval_state_name(d.state), h.a.run_id, h.a.run_id);
  cli_approval_clear(&h);
  return EXIT_OK;
}

int cmd_approve(int argc, char **argv, struct cli *cli)
{
  const char *id = NULL, *args = NULL, *comment = NULL;
  int i;

  if (cli_wants_help(argc, argv)) {
    fputs(approve_usage, stdout);
    return EXIT_OK;
  }
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--args") && i + 1 < argc)
      args = argv[++i];
    else if (!strcmp(argv[i], "--comment") && i + 1 < argc)
      comment = argv[++i];
    else if (argv[i][0] != '-' && !id)
      id = argv[i];
    else
      return cli_bad_arg("approve", argv[i], approve_usage);
  }
  if (!id) {
    fputs(approve_usage, stderr);
    return EXIT_USAGE;
  }
  return decide(cli, id, DURIN_APPROVAL_APPROVED, args, comment);
}

int cmd_reject(int argc, char **argv, struct cli *cli)
{
  const char *id = NULL, *reason = NULL;
  int i;

  if (cli_wants_help(argc, argv)) {
    fputs(reject_usage, stdout);
    return EXIT_OK;
  }
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--reason") && i + 1 < argc)
      reason = argv[++i];
    else if (argv[i][0] != '-' && !id)
      id = argv[i];
    else
      return cli_bad_arg("reject", argv[i], reject_usage);
  }
  if (!id || !reason || !*reason) {
    cli_error("reject: give the approval id and --reason TEXT (the agent is "
              "told the reason)");
    return EXIT_USAGE;
  }
  return decide(cli, id, DURIN_APPROVAL_REJECTED, NULL, reason);
}
