/*
 * durin approvals [--run ID] [--all] [--json]
 * durin approvals ID              what a reviewer needs to decide
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
    "       durin approvals APPROVAL\n\n"
    "Lists the tool calls waiting for a person's decision (with --all,\n"
    "decided ones too); one past its deadline shows as expired, as it can\n"
    "no longer be decided. Given an approval id, shows what a reviewer needs:\n"
    "the run's goal and plan, the exact call and the agent's reason, the\n"
    "cost so far and the workspace diff so far.\n\n"
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

/*
 * The state a reviewer should see. A pending request past its deadline is
 * expired: it can no longer be decided (a decision expires it instead),
 * and the watchdog of the next worker, or a waiting `durin run`, records
 * the expiry and wakes the run. This is a read: it changes nothing.
 */
static enum durin_approval_state shown_state(const struct durin_approval *a,
                                             int64_t now)
{
  if (a->state == DURIN_APPROVAL_PENDING && a->expires_ms <= now)
    return DURIN_APPROVAL_EXPIRED;
  return a->state;
}

static json_t *approval_json(const struct durin_approval *a, int64_t now)
{
  json_t *o =
      json_pack("{s:s,s:s,s:I,s:i,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:s}", "id",
                a->id, "run", a->run_id, "step", (json_int_t)a->step, "call",
                a->call_idx, "call_id", a->call_id, "tool", a->tool, "state",
                durin_approval_state_name(shown_state(a, now)), "rule",
                a->rule ? a->rule : "", "args_hash", a->args_hash,
                "requested_ms", (json_int_t)a->requested_ms, "expires_ms",
                (json_int_t)a->expires_ms, "on_expiry", a->on_expiry);

  json_object_set_new(o, "arguments", json_loads(a->call_args, 0, NULL));
  if (a->state == DURIN_APPROVAL_EDITED)
    json_object_set_new(o, "approved_arguments", json_loads(a->args, 0, NULL));
  if (a->reason)
    json_object_set_new(o, "reason", json_string(a->reason));
  if (a->decided_by)
    json_object_set_new(o, "decided_by", json_string(a->decided_by));
  if (a->comment)
    json_object_set_new(o, "comment", json_string(a->comment));
  if (a->decided_ms)
    json_object_set_new(o, "decided_ms", json_integer(a->decided_ms));
  return o;
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
    json_t *o = approval_json(a, l->now);
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
         a->tool, durin_approval_state_name(shown_state(a, l->now)), age, exp,
         args);
  return 0;
}

/* A copy of one approval, its strings owned. */
struct held {
  struct durin_approval a;
  char *s[12];
};

static const char *keep(struct held *h, int i, const char *v)
{
  h->s[i] = v ? strdup(v) : NULL;
  return h->s[i];
}

static int hold(const struct durin_approval *a, void *arg)
{
  struct held *h = arg;

  h->a = *a;
  h->a.call_id = keep(h, 0, a->call_id);
  h->a.tool = keep(h, 1, a->tool);
  h->a.call_args = keep(h, 2, a->call_args);
  h->a.call_hash = keep(h, 3, a->call_hash);
  h->a.args = keep(h, 4, a->args);
  h->a.args_hash = keep(h, 5, a->args_hash);
  h->a.reason = keep(h, 6, a->reason);
  h->a.rule = keep(h, 7, a->rule);
  h->a.on_expiry = keep(h, 8, a->on_expiry);
  h->a.decided_by = keep(h, 9, a->decided_by);
  h->a.comment = keep(h, 10, a->comment);
  return 0;
}

static void held_clear(struct held *h)
{
  int i;

  for (i = 0; i < 12; i++)
    free(h->s[i]);
  memset(h, 0, sizeof(*h));
}

static int get_approval(struct cli *cli, const char *prefix, struct held *h)
{
  struct durin_err err = { 0 };
  int r;

  memset(h, 0, sizeof(*h));
  if ((r = cli_open_store(cli)))
    return r;
  r = durin_store_approval_get(cli->store, prefix, hold, h, &err);
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
  struct held h;
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
    held_clear(&h);
    return cli_exit_for(r);
  }
  memset(&ck, 0, sizeof(ck));
  memset(&spec, 0, sizeof(spec));
  if (durin_store_checkpoint_get(cli->store, ri.id, &step, &ckt, NULL) == 0)
    durin_checkpoint_parse(ckt, &ck, NULL);
  free(ckt);
  durin_spec_parse(ri.spec_json, NULL, &spec, NULL);

  printf("approval  %s  %s", h.a.id,
         durin_approval_state_name(shown_state(&h.a, now)));
  if (shown_state(&h.a, now) != h.a.state) {
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
  r = cli_print_diff(cli, ri.id, 0);
  if (shown_state(&h.a, now) == DURIN_APPROVAL_PENDING)
    printf("\ndecide: durin approve %s [--args JSON] [--comment TEXT]\n"
           "        durin reject %s --reason TEXT\n",
           h.a.id, h.a.id);
  durin_checkpoint_clear(&ck);
  durin_spec_clear(&spec);
  durin_run_info_clear(&ri);
  held_clear(&h);
  return r;
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
    return review(cli, one);
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

/* Checks edited arguments as the run would: the tool's schema, then the
 * spec's policy and the server's ($DURIN_POLICY). Fills canonical text and
 * hash. Returns an exit code. */
static int check_edit(struct cli *cli, const struct durin_approval *a,
                      const char *text, char **canon, char hash[65])
{
  struct durin_run_info ri;
  struct durin_spec spec;
  struct durin_err err = { 0 };
  struct durin_policy *pol = NULL, *server = NULL;
  const struct durin_tool_def *def = durin_tool_find(a->tool);
  struct durin_policy_decision d;
  json_t *args = NULL;
  int r;

  if (!def) {
    cli_error("approval %s is for unknown tool '%s'", a->id, a->tool);
    return EXIT_SPEC;
  }
  if ((r = durin_store_run_get(cli->store, a->run_id, &ri, &err))) {
    cli_error("%s", err.msg);
    return cli_exit_for(r);
  }
  r = durin_spec_parse(ri.spec_json, NULL, &spec, &err);
  durin_run_info_clear(&ri);
  if (r) {
    cli_error("stored spec of run %s: %s", a->run_id, err.msg);
    return EXIT_SPEC;
  }
  if (durin_tool_args_parse(def, text, (size_t)spec.max_arg_bytes, &args,
                            &err)) {
    json_t *schema = durin_tool_schema(def), *v;
    const char *k;
    char names[256] = "";
    size_t off = 0;

    json_object_foreach(json_object_get(schema, "properties"), k, v)
      off += (size_t)snprintf(names + off,
                              off < sizeof(names) ? sizeof(names) - off : 0,
                              "%s%s", off ? ", " : "", k);
    json_decref(schema);
    cli_error("--args for %s: %s (its arguments: %s); nothing was decided",
              a->tool, err.msg, names);
    durin_spec_clear(&spec);
    return EXIT_USAGE;
  }
  if (!durin_policy_parse(spec.policy, "spec", &pol, &err) &&
      cli_server_policy(NULL, &server) == 0) {
    struct durin_policy_state st = { 0, 0 };
    const struct durin_policy *layers[2] = { pol, server };

    durin_policy_decide(layers, 2, spec.workspace, a->tool, args, &st, &d);
    durin_policy_free(pol);
    durin_policy_free(server);
    if (d.action == DURIN_POLICY_DENY) {
      cli_error("the policy denies the edited call (%s %s: %s); nothing was "
                "decided",
                d.origin, d.rule, d.why);
      json_decref(args);
      durin_spec_clear(&spec);
      return EXIT_USAGE;
    }
  }
  *canon = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);
  durin_sha256_hex(*canon, strlen(*canon), hash);
  json_decref(args);
  durin_spec_clear(&spec);
  return 0;
}

static int decide(struct cli *cli, const char *prefix,
                  enum durin_approval_state st, const char *args_text,
                  const char *comment)
{
  struct durin_approval_decision d;
  enum durin_approval_state final = DURIN_APPROVAL_PENDING;
  struct durin_err err = { 0 };
  struct held h;
  char who[128], hash[65], *canon = NULL;
  int r;

  if ((r = get_approval(cli, prefix, &h)))
    return r;
  if (args_text && (r = check_edit(cli, &h.a, args_text, &canon, hash)) != 0) {
    held_clear(&h);
    return r;
  }
  reviewer(who, sizeof(who));
  memset(&d, 0, sizeof(d));
  d.id = h.a.id;
  d.state = st;
  if (canon && strcmp(hash, h.a.call_hash)) {
    d.state = DURIN_APPROVAL_EDITED;
    d.args = canon;
    d.args_hash = hash;
  }
  d.who = who;
  d.comment = comment;
  d.now_ms = durin_now_ms();
  r = durin_store_approval_decide(cli->store, &d, &final, &err);
  if (r) {
    cli_error("%s", err.msg);
    if (final == DURIN_APPROVAL_EXPIRED)
      cli_error("see 'durin logs %s' for what the run did instead", h.a.run_id);
    free(canon);
    held_clear(&h);
    return r == DURIN_ESTATE ? EXIT_NEEDS_HUMAN : cli_exit_for(r);
  }
  printf("approval %s %s; run %s goes on when a worker takes it (or 'durin "
         "resume %s')\n",
         h.a.id, durin_approval_state_name(d.state), h.a.run_id, h.a.run_id);
  free(canon);
  held_clear(&h);
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
