/* durin show ID: status, usage, plan and result of one run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "durin/harness.h"
#include "durin/util.h"

static const char show_usage[] =
    "usage: durin show [--json] ID\n\n"
    "Shows a run: status and reason, model, steps, tokens, cost, duration,\n"
    "attempts, the agent's plan and summary, and the last acceptance check.\n"
    "ID may be abbreviated to any unique prefix.\n";

/* The last checks and the last verdict of the run's log. */
struct last {
  char *checks;
  char *verdict;
};

static int last_checks(const struct durin_event *ev, void *arg)
{
  struct last *l = arg;
  char **out = !strcmp(ev->type, "checks")  ? &l->checks :
               !strcmp(ev->type, "verdict") ? &l->verdict :
                                              NULL;

  if (out) {
    free(*out);
    *out = strdup(ev->data);
  }
  return 0;
}

/* The evaluator's spend (in the run's totals) and its last verdict. */
static void print_evaluator(const struct durin_checkpoint *ck,
                            const char *verdict, int ended)
{
  const struct durin_usage *u = &ck->eval_usage;
  json_t *v = verdict ? json_loads(verdict, 0, NULL) : NULL, *r;
  size_t k;

  if (u->steps || u->model_calls)
    printf("evaluator %lld steps, %lld tokens (%lld in, %lld out), $%.4f "
           "(counted in the totals above)\n",
           (long long)u->steps, (long long)(u->input_tokens + u->output_tokens),
           (long long)u->input_tokens, (long long)u->output_tokens,
           u->cost_usd);
  if (ck->eval)
    printf("verdict   (evaluation %lld %s)\n",
           (long long)json_integer_value(json_object_get(ck->eval, "attempt")),
           ended ? "cut short: the run ended without one" : "in progress");
  else if (v)
    printf("verdict   %s (attempt %lld, %s)\n",
           json_string_value(json_object_get(v, "verdict")),
           (long long)json_integer_value(json_object_get(v, "attempt")),
           json_string_value(json_object_get(v, "source")));
  json_array_foreach(json_object_get(v, "reasons"), k, r)
    printf("  - %s\n", json_string_value(r));
  json_decref(v);
}

/* The run's grants (spec "secrets"): which secret goes where. An env
 * grant is flagged: the command holds that value. */
static void print_grants(const struct durin_run_info *ri)
{
  json_t *spec = json_loads(ri->spec_json ? ri->spec_json : "{}", 0, NULL);
  json_t *g = json_object_get(spec, "secrets"), *x;
  size_t k;

  json_array_foreach(g, k, x) {
    const char *sec = json_string_value(json_object_get(x, "secret"));
    const char *host = json_string_value(json_object_get(x, "host"));

    if (host)
      printf("%-9s %s: header %s added by the proxy for %s\n",
             k ? "" : "secrets", sec,
             json_string_value(json_object_get(x, "header")), host);
    else
      printf("%-9s %s: in variable %s of %s's commands (env grant: the "
             "command holds the value)\n",
             k ? "" : "secrets", sec,
             json_string_value(json_object_get(x, "env")),
             json_string_value(json_object_get(x, "tool")));
  }
  json_decref(spec);
}

/* A run a schedule started names it and its tick (its labels). */
static void print_schedule(struct durin_store *store, const char *id)
{
  struct durin_run_meta meta;
  json_t *l;

  memset(&meta, 0, sizeof(meta));
  if (durin_store_run_meta(store, id, &meta, NULL))
    return;
  l = meta.labels_json ? json_loads(meta.labels_json, 0, NULL) : NULL;
  if (json_string_value(json_object_get(l, "schedule")))
    printf("schedule  %s, tick %s ('durin schedule history %s')\n",
           json_string_value(json_object_get(l, "schedule")),
           json_string_value(json_object_get(l, "schedule_tick")) ?
               json_string_value(json_object_get(l, "schedule_tick")) :
               "?",
           json_string_value(json_object_get(l, "schedule")));
  json_decref(l);
  durin_run_meta_clear(&meta);
}

int cmd_show(int argc, char **argv, struct cli *cli)
{
  struct durin_run_info ri;
  struct durin_checkpoint ck;
  struct durin_err err = { 0 };
  char id[32], *ckt = NULL, *checks = NULL;
  struct last last = { 0 };
  int64_t step;
  int json = 0, r;

  if ((r = cli_run_arg(argc, argv, cli, "show", show_usage, "--json", &json,
                       id)) >= 0)
    return r;
  r = durin_store_run_get(cli->store, id, &ri, &err);
  if (r) {
    cli_error("%s", err.msg);
    return cli_exit_for(r);
  }
  memset(&ck, 0, sizeof(ck));
  if (durin_store_checkpoint_get(cli->store, id, &step, &ckt, NULL) == 0)
    durin_checkpoint_parse(ckt, &ck, NULL);
  durin_store_events_read(cli->store, id, 1, 0, last_checks, &last, NULL);
  checks = last.checks;
  if (json) {
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:s?,s:s,s:I,s:I,s:I,s:I,s:f,s:I,s:I,s:I,s:I,s:s,s:O?,"
        "s:s?}",
        "id", ri.id, "name", ri.name, "status",
        durin_run_status_name(ri.status), "reason", ri.reason, "model",
        ri.model, "steps", (json_int_t)ri.usage.steps, "input_tokens",
        (json_int_t)ri.usage.input_tokens, "output_tokens",
        (json_int_t)ri.usage.output_tokens, "tool_calls",
        (json_int_t)ri.usage.tool_calls, "cost_usd", ri.usage.cost_usd,
        "created_ms", (json_int_t)ri.created_ms, "started_ms",
        (json_int_t)ri.started_ms, "finished_ms", (json_int_t)ri.finished_ms,
        "attempts", (json_int_t)ri.attempt, "workspace", ri.workspace, "plan",
        ck.plan, "summary", ck.summary);
    char *s;

    if (checks)
      json_object_set_new(o, "checks", json_loads(checks, 0, NULL));
    if (last.verdict)
      json_object_set_new(o, "verdict", json_loads(last.verdict, 0, NULL));
    if (ck.eval_usage.model_calls)
      json_object_set_new(
          o, "evaluator_usage",
          json_pack("{s:I,s:I,s:I,s:I,s:f}", "steps",
                    (json_int_t)ck.eval_usage.steps, "input_tokens",
                    (json_int_t)ck.eval_usage.input_tokens, "output_tokens",
                    (json_int_t)ck.eval_usage.output_tokens, "tool_calls",
                    (json_int_t)ck.eval_usage.tool_calls, "cost_usd",
                    ck.eval_usage.cost_usd));
    if (ck.git_commit[0])
      json_object_set_new(o, "git_commit", json_string(ck.git_commit));
    if (ck.phase)
      json_object_set(o, "phase", ck.phase);
    if (ck.reset)
      json_object_set_new(o, "context_resets",
                          json_incref(json_object_get(ck.reset, "count")));
    {
      json_t *spec = json_loads(ri.spec_json ? ri.spec_json : "{}", 0, NULL);
      json_t *g = json_object_get(spec, "secrets");

      /* Names, hosts and variables; values are never in the spec. */
      if (json_array_size(g))
        json_object_set(o, "secrets", g);
      json_decref(spec);
    }
    s = json_dumps(o, JSON_INDENT(2));
    printf("%s\n", s);
    free(s);
    json_decref(o);
  } else {
    size_t k;
    json_t *it;

    cli_print_summary(stdout, &ri);
    print_schedule(cli->store, ri.id);
    print_grants(&ri);
    if (json_array_size(ck.plan)) {
      printf("plan\n");
      json_array_foreach(ck.plan, k, it)
        printf("  [%s] %s\n", json_string_value(json_object_get(it, "status")),
               json_string_value(json_object_get(it, "step")));
    }
    if (ck.phase) {
      json_t *a;

      printf("phase     %s (%lld of the spec's phases ended:",
             json_string_value(json_object_get(ck.phase, "name")),
             (long long)json_array_size(ck.artifacts));
      json_array_foreach(ck.artifacts, k, a)
        printf(" %s", json_string_value(json_object_get(a, "phase")));
      printf(")\n");
    }
    if (ck.reset)
      printf("context   reset %lld time(s) at context.reset_at\n",
             (long long)json_integer_value(json_object_get(ck.reset, "count")));
    if (ck.summary)
      printf("summary   %s\n", ck.summary);
    if (ck.git_commit[0])
      printf("commit    %.12s on durin/%s ('durin log %s')\n", ck.git_commit,
             ri.id, ri.id);
    if (checks) {
      json_t *c = json_loads(checks, 0, NULL), *res, *x;

      res = json_object_get(c, "results");
      printf("checks    %s (attempt %lld)\n",
             json_is_true(json_object_get(c, "passed")) ? "passed" : "FAILED",
             (long long)json_integer_value(json_object_get(c, "attempt")));
      json_array_foreach(res, k, x) {
        const char *o = json_string_value(json_object_get(x, "output"));

        printf("  %s: %s (exit %lld)\n",
               json_string_value(json_object_get(x, "name")),
               json_is_true(json_object_get(x, "ok")) ? "pass" : "fail",
               (long long)json_integer_value(json_object_get(x, "exit_code")));
        /* The check's own output, indented, so a reader sees why. */
        while (o && *o) {
          const char *nl = strchr(o, '\n');
          int n = nl ? (int)(nl - o) : (int)strlen(o);

          printf("    | %.*s\n", n, o);
          o = nl ? nl + 1 : o + n;
        }
      }
      json_decref(c);
    } else {
      json_t *spec = json_loads(ri.spec_json ? ri.spec_json : "{}", 0, NULL);

      /* Without checks, "done" is only the agent's word: say so. */
      if (json_array_size(json_object_get(spec, "checks")))
        printf("checks    none run yet\n");
      else
        printf("checks    none configured (the agent's finish is not "
               "verified)\n");
      json_decref(spec);
    }
    print_evaluator(&ck, last.verdict, durin_run_status_terminal(ri.status));
  }
  r = EXIT_OK;
  free(ckt);
  free(checks);
  free(last.verdict);
  durin_checkpoint_clear(&ck);
  durin_run_info_clear(&ri);
  return r;
}
