/* durin explain ID [--json]: a run's postmortem, from its log alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "durin/util.h"
#include "explain.h"

static const char explain_usage[] =
    "usage: durin explain [--json] ID\n\n"
    "Explains a run from its event log, without running anything again:\n"
    "why it stopped; where its tokens, dollars and time went (model calls,\n"
    "tools, waiting for a person), by tool and by the plan step in\n"
    "progress; calls that failed again and again with the same arguments,\n"
    "and retry loops (the same few calls alternating while they fail) with\n"
    "what they cost and what failed first; its last errors; and its\n"
    "acceptance checks. A step's tokens and dollars are split evenly over\n"
    "the calls it made. ID may be abbreviated to any unique prefix.\n\n"
    "  --json   the report as one JSON object (see docs/cli/README.md)\n";

static json_int_t num(json_t *o, const char *k)
{
  return json_integer_value(json_object_get(o, k));
}

static double real(json_t *o, const char *k)
{
  return json_number_value(json_object_get(o, k));
}

static const char *str(json_t *o, const char *k)
{
  const char *v = json_string_value(json_object_get(o, k));

  return v ? v : "";
}

static const char *dur(json_int_t ms, char *b, size_t n)
{
  durin_fmt_duration(ms, b, n);
  return b;
}

/* text, folded at word boundaries into lines of at most width. */
static void print_wrapped(const char *text, int width)
{
  const char *p = text;

  while (*p) {
    int n = (int)strlen(p), cut = n;

    if (n > width) {
      for (cut = width; cut > 0 && p[cut] != ' '; cut--)
        ;
      if (!cut)
        cut = width;
    }
    printf("%.*s\n", cut, p);
    p += cut;
    while (*p == ' ')
      p++;
  }
}

static void print_tools(json_t *tools)
{
  char a[32], b[32], c[32];
  json_t *t;
  size_t i;

  if (!json_array_size(tools))
    return;
  printf("\n%-16s %6s %6s %8s %8s %8s %9s %6s %9s %6s\n", "tool", "calls",
         "failed", "time", "p50", "max", "tokens", "share", "dollars", "share");
  json_array_foreach(tools, i, t)
    printf("%-16.16s %6lld %6lld %8s %8s %8s %9lld %5.1f%% %9.4f %5.1f%%\n",
           str(t, "name"), (long long)num(t, "calls"),
           (long long)num(t, "failed"), dur(num(t, "duration_ms"), a, 32),
           dur(num(t, "p50_ms"), b, 32), dur(num(t, "max_ms"), c, 32),
           (long long)num(t, "tokens"), real(t, "token_share"),
           real(t, "cost_usd"), real(t, "cost_share"));
}

static void print_phases(json_t *phases)
{
  char a[32], steps[48];
  json_t *p;
  size_t i;

  if (!json_array_size(phases))
    return;
  printf("\n%-34s %-9s %9s %6s %9s %8s\n", "phase (plan step in progress)",
         "steps", "tokens", "share", "dollars", "time");
  json_array_foreach(phases, i, p) {
    snprintf(steps, sizeof(steps), "%lld-%lld", (long long)num(p, "first_step"),
             (long long)num(p, "last_step"));
    printf("%-34.34s %-9s %9lld %5.1f%% %9.4f %8s\n", str(p, "name"), steps,
           (long long)num(p, "tokens"), real(p, "token_share"),
           real(p, "cost_usd"), dur(num(p, "duration_ms"), a, 32));
  }
}

/* A failed call on one line: step, tool, command, how it ended. */
static void print_call(const char *indent, json_t *c)
{
  printf("%sstep %lld %s `%s`", indent, (long long)num(c, "step"),
         str(c, "tool"), str(c, "command"));
  if (json_is_true(json_object_get(c, "timed_out")))
    printf(" (timed out)");
  else if (num(c, "exit_code") >= 0)
    printf(" (exit %lld)", (long long)num(c, "exit_code"));
  if (*str(c, "error"))
    printf(": %s", str(c, "error"));
  putchar('\n');
}

static void print_lines(const char *indent, const char *s)
{
  while (s && *s) {
    const char *nl = strchr(s, '\n');
    int n = nl ? (int)(nl - s) : (int)strlen(s);

    if (n)
      printf("%s| %.*s\n", indent, n, s);
    s = nl ? nl + 1 : s + n;
  }
}

static void print_report(json_t *rep)
{
  json_t *tot = json_object_get(rep, "totals"), *it, *f, *x;
  char a[32], b[32], c[32], d[32], e[32];
  size_t i, k;

  printf("run       %s (%s)\n\n", str(rep, "run"), str(rep, "name"));
  print_wrapped(str(rep, "headline"), 76);
  printf("\nsteps     %lld (%lld model calls, %lld tool calls, %lld failed)\n",
         (long long)num(tot, "steps"), (long long)num(tot, "model_calls"),
         (long long)num(tot, "tool_calls"),
         (long long)num(tot, "failed_calls"));
  printf("tokens    %lld (%lld in, %lld out)\n", (long long)num(tot, "tokens"),
         (long long)num(tot, "input_tokens"),
         (long long)num(tot, "output_tokens"));
  printf("cost      $%.4f\n", real(tot, "cost_usd"));
  printf("time      %s: model %s, tools %s, waiting for a person %s, "
         "other %s\n",
         dur(num(tot, "wall_ms"), a, 32), dur(num(tot, "model_ms"), b, 32),
         dur(num(tot, "tools_ms"), c, 32),
         dur(num(tot, "waiting_human_ms"), d, 32),
         dur(num(tot, "other_ms"), e, 32));
  printf("attempts  %lld (%lld recoveries, %lld resumes, %lld leases "
         "expired)\n",
         (long long)num(tot, "attempts"), (long long)num(tot, "recoveries"),
         (long long)num(tot, "resumes"), (long long)num(tot, "leases_expired"));
  print_tools(json_object_get(rep, "tools"));
  print_phases(json_object_get(rep, "phases"));
  if (json_array_size(json_object_get(rep, "loops")))
    printf("\nretry loops\n");
  json_array_foreach(json_object_get(rep, "loops"), i, it) {
    printf("  steps %lld-%lld: %lld calls (%lld failed) of %lld command%s, "
           "%lld tokens (%.1f%%), $%.4f (%.1f%%)\n",
           (long long)num(it, "first_step"), (long long)num(it, "last_step"),
           (long long)num(it, "calls"), (long long)num(it, "failed"),
           (long long)num(it, "distinct_calls"),
           num(it, "distinct_calls") == 1 ? "" : "s",
           (long long)num(it, "tokens"), real(it, "token_share"),
           real(it, "cost_usd"), real(it, "cost_share"));
    json_array_foreach(json_object_get(it, "commands"), k, x)
      printf("    `%s`\n", json_string_value(x));
    if (json_is_object(f = json_object_get(it, "first_failure")))
      print_call("    first failure: ", f);
  }
  if (json_array_size(json_object_get(rep, "repeated_failures")))
    printf("\nrepeated failing calls (same tool and arguments)\n");
  json_array_foreach(json_object_get(rep, "repeated_failures"), i, it)
    printf("  %lldx %s `%s` (steps %lld-%lld): %s\n",
           (long long)num(it, "failures"), str(it, "tool"), str(it, "command"),
           (long long)num(it, "first_step"), (long long)num(it, "last_step"),
           str(it, "error"));
  if (json_array_size(json_object_get(rep, "last_errors")))
    printf("\nlast errors\n");
  json_array_foreach(json_object_get(rep, "last_errors"), i, it) {
    print_call("  ", it);
    print_lines("      ", str(it, "tail"));
  }
  if (json_array_size(json_object_get(rep, "model_errors")))
    printf("\nmodel errors\n");
  json_array_foreach(json_object_get(rep, "model_errors"), i, it)
    printf("  step %lld: %s\n", (long long)num(it, "step"), str(it, "error"));
  if (json_array_size(json_object_get(rep, "checks")))
    printf("\nchecks\n");
  json_array_foreach(json_object_get(rep, "checks"), i, it) {
    printf("  attempt %lld (step %lld): %s\n", (long long)num(it, "attempt"),
           (long long)num(it, "step"),
           json_is_true(json_object_get(it, "passed")) ? "passed" : "failed");
    json_array_foreach(json_object_get(it, "failed"), k, f)
      printf("    %s failed (%s%lld): %s\n", str(f, "name"),
             json_is_true(json_object_get(f, "timed_out")) ? "timed out, " :
                                                             "exit ",
             (long long)num(f, "exit_code"), str(f, "line"));
  }
  if (json_array_size(json_object_get(rep, "approvals")))
    printf("\napprovals\n");
  json_array_foreach(json_object_get(rep, "approvals"), i, it)
    printf("  %s %s: %s, waited %s\n", str(it, "id"), str(it, "tool"),
           str(it, "state"), dur(num(it, "wait_ms"), a, 32));
}

int cmd_explain(int argc, char **argv, struct cli *cli)
{
  struct durin_err err = { 0 };
  json_t *rep = NULL;
  int json = 0, r;
  char id[32];

  if ((r = cli_run_arg(argc, argv, cli, "explain", explain_usage, "--json",
                       &json, id)) >= 0)
    return r;
  if ((r = cli_explain_run(cli->store, id, durin_now_ms(), &rep, &err))) {
    cli_error("%s", err.msg);
    return cli_exit_for(r);
  }
  if (json) {
    cli_print_json(rep);
  } else if (!num(rep, "events")) {
    printf("run %s (%s) is %s and has no events yet: nothing to explain\n",
           str(rep, "run"), str(rep, "name"), str(rep, "status"));
  } else {
    print_report(rep);
  }
  json_decref(rep);
  return EXIT_OK;
}
