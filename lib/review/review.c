/*
 * The review artifact's builder: a fold over the run's log into the few
 * things review.json holds (docs/internals/review.md has the schema).
 *
 * Each event updates one part: checks attempts, verdicts, the last plan,
 * the timeline (a call's arguments come from the model_response that
 * asked for it, its end from its tool_result), usage by role, commits,
 * delivery, what needs a person. Nothing refers back to an earlier
 * event's text once its event is folded, so memory is the review's size.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "durin/redact.h"
#include "durin/review.h"

struct usage_part {
  int64_t steps, input_tokens, output_tokens, model_calls;
  double cost_usd;
};

struct durin_review {
  struct durin_run_info ri; /* copied strings */
  json_t *spec;             /* the run's spec, parsed (or NULL) */
  json_t *plan;
  json_t *checks;   /* every checks event's data, with citations */
  json_t *verdicts; /* every verdict event's data */
  json_t *timeline; /* the last DURIN_REVIEW_TIMELINE_MAX calls */
  int64_t calls_dropped;
  json_t *asked;     /* call_id -> {"tool", "args", "step"} of the last step */
  json_t *approvals; /* from the approvals table, by id */
  json_t *policy_asks; /* call_id -> approval id, from policy events */
  json_t *commits;     /* workspace_commit events */
  json_t *phases;      /* each phase_ended event's artifact */
  int64_t resets;      /* context_reset events */
  json_t *delivery;    /* the last delivered / delivery_failed */
  json_t *needs_human; /* the last needs_human event's data */
  json_t *budget;      /* the budget_exceeded event's data */
  json_t *diff;
  char *summary;
  char *finished_reason;
  struct usage_part eval;
  int64_t first_ms, last_ms;
};

static char *dup0(const char *s)
{
  return s ? strdup(s) : NULL;
}

struct durin_review *durin_review_new(const struct durin_run_info *ri)
{
  struct durin_review *rv = calloc(1, sizeof(*rv));

  if (!rv)
    return NULL;
  rv->ri = *ri;
  rv->ri.name = dup0(ri->name);
  rv->ri.spec_json = dup0(ri->spec_json);
  rv->ri.model = dup0(ri->model);
  rv->ri.workspace = dup0(ri->workspace);
  rv->ri.reason = dup0(ri->reason);
  rv->ri.lease_owner = NULL;
  rv->ri.tenant = dup0(ri->tenant);
  rv->ri.dedupe_key = NULL;
  rv->ri.concurrency_key = NULL;
  if (ri->spec_json)
    rv->spec = json_loads(ri->spec_json, 0, NULL);
  rv->checks = json_array();
  rv->verdicts = json_array();
  rv->timeline = json_array();
  rv->asked = json_object();
  rv->approvals = json_object();
  rv->policy_asks = json_object();
  rv->commits = json_array();
  rv->phases = json_array();
  return rv;
}

void durin_review_free(struct durin_review *rv)
{
  if (!rv)
    return;
  durin_run_info_clear(&rv->ri);
  json_decref(rv->spec);
  json_decref(rv->plan);
  json_decref(rv->checks);
  json_decref(rv->verdicts);
  json_decref(rv->timeline);
  json_decref(rv->asked);
  json_decref(rv->approvals);
  json_decref(rv->policy_asks);
  json_decref(rv->commits);
  json_decref(rv->phases);
  json_decref(rv->delivery);
  json_decref(rv->needs_human);
  json_decref(rv->budget);
  json_decref(rv->diff);
  free(rv->summary);
  free(rv->finished_reason);
  free(rv);
}

const struct durin_run_info *durin_review_run(const struct durin_review *rv)
{
  return &rv->ri;
}

/* ---- citing the failing lines ---- */

static const char *const fail_words[] = {
  "error",
  "fail",
  "assert",
  "expected",
  "panic",
  "traceback",
  "exception",
  "abort",
  "fatal",
  "not ok",
  "segmentation fault",
  "undefined reference",
  "mismatch",
  NULL,
};

/* Lines that only count no failure: "0 failed", "no errors", "0 errors". */
static int counts_none(const char *low)
{
  static const char *const none[] = { "0 fail",  "0 error",  "no error",
                                      "no fail", "0 assert", NULL };
  const char *p;
  int i;

  for (i = 0; none[i]; i++)
    for (p = low; (p = strstr(p, none[i])); p++)
      if (p == low || !isdigit((unsigned char)p[-1]))
        return 1;
  return 0;
}

static int says_failure(const char *low)
{
  int i, hit = 0;

  for (i = 0; fail_words[i] && !hit; i++)
    hit = strstr(low, fail_words[i]) != NULL;
  /* "5 passed, 0 failed" says nothing failed; "1 failed, 0 errors" does. */
  if (hit && counts_none(low)) {
    const char *p;

    for (p = low; *p; p++)
      if (isdigit((unsigned char)*p) && *p != '0' &&
          (p == low || !isdigit((unsigned char)p[-1])) &&
          (strstr(p, " fail") == p + strspn(p, "0123456789") ||
           strstr(p, " error") == p + strspn(p, "0123456789")))
        return 1;
    return 0;
  }
  return hit;
}

json_t *durin_review_cite(const char *output, int max)
{
  json_t *out = json_array();
  const char *p = output ? output : "", *nl;
  char low[512];
  int64_t lineno = 0;

  while (*p && (int)json_array_size(out) < max) {
    size_t len, i;

    nl = strchr(p, '\n');
    len = nl ? (size_t)(nl - p) : strlen(p);
    lineno++;
    for (i = 0; i < len && i < sizeof(low) - 1; i++)
      low[i] = (char)tolower((unsigned char)p[i]);
    low[i] = 0;
    if (says_failure(low)) {
      size_t keep = len > 300 ? 300 : len;
      char *text = strndup(p, keep);

      /* Cut at 300 bytes, but not inside a UTF-8 sequence. */
      if (text) {
        while (keep > 0 && ((unsigned char)text[keep] & 0xC0) == 0x80 &&
               keep < len)
          text[--keep] = 0;
        json_array_append_new(out, json_pack("{s:I,s:s}", "line",
                                             (json_int_t)lineno, "text", text));
        free(text);
      }
    }
    if (!nl)
      break;
    p = nl + 1;
  }
  return out;
}

/* ---- folding the log ---- */

static const char *jstr(const json_t *o, const char *key)
{
  return json_string_value(json_object_get(o, key));
}

static int64_t jint(const json_t *o, const char *key)
{
  return (int64_t)json_integer_value(json_object_get(o, key));
}

static int is_evaluator(const json_t *data)
{
  const char *role = jstr(data, "role");

  return role && !strcmp(role, "evaluator");
}

/* A call's arguments in a line: bash's command, a file tool's path, a
 * summary, a verdict, a plan's length, or else the JSON text; at most 160
 * bytes. */
static json_t *brief_args(const char *tool, const char *args)
{
  json_t *a = args ? json_loads(args, JSON_DECODE_ANY, NULL) : NULL;
  const char *keys[] = { "command", "path",    "summary",
                         "message", "verdict", NULL };
  const char *s = NULL;
  char buf[164];
  size_t n;
  int i;

  (void)tool;
  if (json_is_array(json_object_get(a, "plan"))) {
    snprintf(buf, sizeof(buf), "a plan of %zu step(s)",
             json_array_size(json_object_get(a, "plan")));
    json_decref(a);
    return json_string(buf);
  }
  for (i = 0; keys[i] && json_is_object(a) && !s; i++)
    s = jstr(a, keys[i]);
  if (!s)
    s = args ? args : "";
  n = strlen(s);
  if (n > 160) {
    n = 157;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
      n--;
    snprintf(buf, sizeof(buf), "%.*s...", (int)n, s);
  } else {
    snprintf(buf, sizeof(buf), "%s", s);
  }
  for (i = 0; buf[i]; i++)
    if (buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t')
      buf[i] = ' ';
  json_decref(a);
  return json_string(buf);
}

static void on_model_response(struct durin_review *rv,
                              const struct durin_event *ev, json_t *d)
{
  json_t *calls = json_object_get(d, "tool_calls"), *c;
  int role_eval = is_evaluator(d);
  size_t i;

  if (role_eval) {
    rv->eval.steps++;
    rv->eval.model_calls++;
    rv->eval.input_tokens += jint(d, "input_tokens");
    rv->eval.output_tokens += jint(d, "output_tokens");
    rv->eval.cost_usd += json_number_value(json_object_get(d, "cost_usd"));
  }
  json_array_foreach(calls, i, c) {
    const char *id = jstr(c, "id"), *name = jstr(c, "name");

    if (!id)
      continue;
    json_object_set_new(rv->asked, id,
                        json_pack("{s:s,s:o,s:I,s:s}", "tool",
                                  name ? name : "?", "args",
                                  brief_args(name, jstr(c, "arguments")),
                                  "step", (json_int_t)ev->step, "role",
                                  role_eval ? "evaluator" : "agent"));
  }
}

static void on_tool_result(struct durin_review *rv,
                           const struct durin_event *ev, json_t *d)
{
  const char *id = jstr(d, "call_id"), *name = jstr(d, "name");
  json_t *asked = id ? json_object_get(rv->asked, id) : NULL;
  json_t *t;
  json_t *args = asked && json_object_get(asked, "args") ?
                     json_incref(json_object_get(asked, "args")) :
                     json_string("");

  /* "o" takes args' reference, also when the pack fails. */
  t = json_pack("{s:I,s:I,s:s,s:o,s:b,s:I,s:I,s:s}", "seq", (json_int_t)ev->seq,
                "step", (json_int_t)ev->step, "tool",
                name ? name : (asked ? jstr(asked, "tool") : "?"), "args", args,
                "ok", json_is_true(json_object_get(d, "ok")), "exit_code",
                (json_int_t)jint(d, "exit_code"), "duration_ms",
                (json_int_t)jint(d, "duration_ms"), "role",
                is_evaluator(d) ? "evaluator" : "agent");
  if (!t)
    return;
  if (id)
    json_object_set_new(t, "call_id", json_string(id));
  if (json_is_true(json_object_get(d, "timed_out")))
    json_object_set_new(t, "timed_out", json_true());
  if (json_is_true(json_object_get(d, "reused")))
    json_object_set_new(t, "reused", json_true());
  if (id && json_object_get(rv->policy_asks, id))
    json_object_set(t, "approval", json_object_get(rv->policy_asks, id));
  if (json_array_size(rv->timeline) >= DURIN_REVIEW_TIMELINE_MAX) {
    json_array_remove(rv->timeline, 0);
    rv->calls_dropped++;
  }
  json_array_append_new(rv->timeline, t);
}

static void on_checks(struct durin_review *rv, json_t *d)
{
  json_t *copy = json_deep_copy(d), *res, *c;
  size_t i;

  if (!copy)
    return;
  res = json_object_get(copy, "results");
  json_array_foreach(res, i, c) {
    json_object_set_new(
        c, "failing_lines",
        json_is_true(json_object_get(c, "ok")) ?
            json_array() :
            durin_review_cite(jstr(c, "output"), DURIN_REVIEW_CITE_MAX));
  }
  json_array_append_new(rv->checks, copy);
}

static void set_obj(json_t **slot, json_t *d)
{
  json_decref(*slot);
  *slot = json_deep_copy(d);
}

void durin_review_add_event(struct durin_review *rv,
                            const struct durin_event *ev)
{
  json_t *d;
  const char *t = ev->type;

  if (!rv || !t || !ev->data || !(d = json_loads(ev->data, 0, NULL)))
    return;
  if (!json_is_object(d))
    goto out;
  if (!rv->first_ms || ev->ts_ms < rv->first_ms)
    rv->first_ms = ev->ts_ms;
  if (ev->ts_ms > rv->last_ms)
    rv->last_ms = ev->ts_ms;
  if (!strcmp(t, "model_response")) {
    on_model_response(rv, ev, d);
  } else if (!strcmp(t, "tool_result")) {
    on_tool_result(rv, ev, d);
  } else if (!strcmp(t, "policy")) {
    json_t *ap = json_object_get(d, "approval");
    const char *id = jstr(d, "call_id");

    if (id && jstr(ap, "id"))
      json_object_set(rv->policy_asks, id, json_object_get(ap, "id"));
  } else if (!strcmp(t, "plan_updated")) {
    json_decref(rv->plan);
    rv->plan = json_incref(json_object_get(d, "plan"));
  } else if (!strcmp(t, "checks")) {
    on_checks(rv, d);
  } else if (!strcmp(t, "verdict")) {
    json_array_append(rv->verdicts, d);
  } else if (!strcmp(t, "phase_ended")) {
    if (json_is_object(json_object_get(d, "artifact")))
      json_array_append(rv->phases, json_object_get(d, "artifact"));
  } else if (!strcmp(t, "context_reset")) {
    rv->resets++;
  } else if (!strcmp(t, "workspace_commit")) {
    json_t *c = json_deep_copy(d);

    json_object_set_new(c, "seq", json_integer(ev->seq));
    json_array_append_new(rv->commits, c);
  } else if (!strcmp(t, "delivered") || !strcmp(t, "delivery_failed")) {
    set_obj(&rv->delivery, d);
    json_object_set_new(rv->delivery, "ok",
                        json_boolean(!strcmp(t, "delivered")));
    json_object_set_new(rv->delivery, "ts_ms", json_integer(ev->ts_ms));
  } else if (!strcmp(t, "needs_human")) {
    set_obj(&rv->needs_human, d);
  } else if (!strcmp(t, "budget_exceeded")) {
    set_obj(&rv->budget, d);
  } else if (!strcmp(t, "run_finished")) {
    free(rv->summary);
    free(rv->finished_reason);
    rv->summary = dup0(jstr(d, "summary"));
    rv->finished_reason = dup0(jstr(d, "reason"));
  } else if (!strcmp(t, "resumed") || !strcmp(t, "run_started")) {
    /* A new holder or a new run: the calls asked before are answered or
     * replayed by a model_response of their own. */
  }
out:
  json_decref(d);
}

void durin_review_add_approval(struct durin_review *rv,
                               const struct durin_approval *a)
{
  json_t *o;

  if (!rv || !a)
    return;
  o = json_pack(
      "{s:s,s:I,s:s,s:s,s:s,s:s,s:I,s:I}", "id", a->id, "step",
      (json_int_t)a->step, "tool", a->tool ? a->tool : "", "args",
      a->call_args ? a->call_args : "", "rule", a->rule ? a->rule : "", "state",
      durin_approval_state_name(a->state), "requested_ms",
      (json_int_t)a->requested_ms, "expires_ms", (json_int_t)a->expires_ms);
  if (!o)
    return;
  json_object_set_new(o, "args", brief_args(a->tool, a->call_args));
  json_object_set_new(o, "decided_by",
                      a->decided_by && *a->decided_by ?
                          json_string(a->decided_by) :
                          json_null());
  json_object_set_new(o, "comment",
                      a->comment && *a->comment ? json_string(a->comment) :
                                                  json_null());
  json_object_set_new(o, "decided_ms",
                      a->decided_ms ? json_integer(a->decided_ms) :
                                      json_null());
  if (a->state == DURIN_APPROVAL_EDITED)
    json_object_set_new(o, "edited_args", json_string(a->args ? a->args : ""));
  json_object_set_new(rv->approvals, a->id, o);
}

/* ---- the diff ---- */

/* The patch as JSON text (a byte that is not UTF-8 becomes '?'), cut at
 * the last line end within DURIN_REVIEW_DIFF_MAX. */
static json_t *capped_patch(const char *patch, int *cut)
{
  size_t n = patch ? strlen(patch) : 0;
  json_t *s;
  char *c;

  if (n > DURIN_REVIEW_DIFF_MAX) {
    *cut = 1;
    n = DURIN_REVIEW_DIFF_MAX;
  }
  if (!(c = strndup(patch ? patch : "", n)))
    return NULL;
  if (*cut && strrchr(c, '\n'))
    strrchr(c, '\n')[1] = 0;
  durin_utf8_sanitize(c, strlen(c));
  s = json_string(c);
  free(c);
  return s;
}

void durin_review_set_diff(struct durin_review *rv, const char *source,
                           const char *from, const char *to, const char *stat,
                           const char *patch, int cut)
{
  json_t *d, *p;
  char *st = dup0(stat ? stat : "");

  if (!rv || !st)
    goto out;
  durin_utf8_sanitize(st, strlen(st));
  p = capped_patch(patch, &cut);
  d = json_pack("{s:s,s:s,s:o,s:b}", "source", source, "stat", st, "patch",
                p ? p : json_string(""), "truncated", cut);
  if (!d)
    goto out;
  json_object_set_new(d, "from", from ? json_string(from) : json_null());
  json_object_set_new(d, "to", to ? json_string(to) : json_null());
  if (cut)
    json_object_set_new(d, "note",
                        json_pack("s", "the diff was cut at 256 KiB; see "
                                       "the whole with 'durin diff' or git"));
  json_decref(rv->diff);
  rv->diff = d;
out:
  free(st);
}

void durin_review_set_diff_note(struct durin_review *rv, const char *note)
{
  if (!rv)
    return;
  json_decref(rv->diff);
  rv->diff = json_pack("{s:s,s:n,s:n,s:s,s:s,s:b,s:s}", "source", "none",
                       "from", "to", "stat", "", "patch", "", "truncated", 0,
                       "note", note ? note : "no diff");
}

static void redact_field(json_t *o, const char *key,
                         const struct durin_redactor *red)
{
  const char *in = json_string_value(json_object_get(o, key));
  struct durin_buf b;
  size_t hits = 0;

  if (!in)
    return;
  durin_buf_init(&b, 0);
  if (!durin_redact(red, in, strlen(in), &b, &hits) && hits)
    json_object_set_new(o, key, json_string(b.buf));
  durin_buf_release(&b);
}

void durin_review_redact_diff(struct durin_review *rv,
                              const struct durin_redactor *red)
{
  if (!rv || !red || !rv->diff)
    return;
  redact_field(rv->diff, "patch", red);
  redact_field(rv->diff, "stat", red);
}

int durin_review_git_range(const struct durin_review *rv, const char **from,
                           const char **to)
{
  size_t n = rv ? json_array_size(rv->commits) : 0;
  json_t *first, *last;

  if (!n)
    return 0;
  first = json_array_get(rv->commits, 0);
  last = json_array_get(rv->commits, n - 1);
  /* The initial commit (step 0) is where the run started; otherwise the
   * first step's commit's parent is. */
  *from =
      jint(first, "step") == 0 ? jstr(first, "commit") : jstr(first, "parent");
  *to = jstr(last, "commit");
  return *to != NULL;
}

/* ---- the artifact ---- */

static json_t *usage_json(int64_t steps, int64_t in, int64_t out, int64_t calls,
                          double cost)
{
  return json_pack("{s:I,s:I,s:I,s:I,s:f}", "steps", (json_int_t)steps,
                   "input_tokens", (json_int_t)in, "output_tokens",
                   (json_int_t)out, "model_calls", (json_int_t)calls,
                   "cost_usd", cost);
}

static json_t *evaluator_json(const struct durin_review *rv)
{
  size_t n = json_array_size(rv->verdicts);
  int configured = rv->spec && json_object_get(rv->spec, "evaluator") &&
                   !json_is_null(json_object_get(rv->spec, "evaluator"));
  json_t *e, *last = n ? json_array_get(rv->verdicts, n - 1) : NULL;

  e = json_pack("{s:b,s:O}", "configured", configured || n, "verdicts",
                rv->verdicts);
  if (last) {
    json_object_set_new(
        e, "verdict",
        json_string(jstr(last, "verdict") ? jstr(last, "verdict") : "fail"));
    json_object_set(e, "reasons",
                    json_object_get(last, "reasons") ?
                        json_object_get(last, "reasons") :
                        json_array());
    json_object_set(e, "source", json_object_get(last, "source"));
  } else {
    json_object_set_new(e, "verdict", json_null());
    json_object_set_new(e, "reasons", json_array());
    json_object_set_new(
        e, "note",
        json_string(configured ? "no verdict yet" : "no evaluator configured"));
  }
  return e;
}

static void need(json_t *list, const char *kind, const char *what,
                 const char *command)
{
  json_array_append_new(list, json_pack("{s:s,s:s,s:s}", "kind", kind, "what",
                                        what, "command", command));
}

/* The `durin continue` option that raises the budget a reason names. */
static const char *budget_flag(const char *why)
{
  if (!why)
    return "--add-steps 10";
  if (strstr(why, "tool-call"))
    return "--add-tool-calls 10";
  if (strstr(why, "token"))
    return "--add-tokens 100000";
  if (strstr(why, "dollar"))
    return "--add-dollars 1";
  if (strstr(why, "wall-clock"))
    return "--add-time 10m";
  return "--add-steps 10";
}

/* What a person has to do, each with the command that does it. */
static json_t *needs_person(const struct durin_review *rv)
{
  const char *id = rv->ri.id;
  json_t *list = json_array(), *a, *last;
  char what[1200], cmd[400];
  const char *k;
  size_t n;

  json_object_foreach(rv->approvals, k, a) {
    if (strcmp(jstr(a, "state"), "pending"))
      continue;
    snprintf(what, sizeof(what), "approval %s of %s (%s) waits for a decision",
             k, jstr(a, "tool"), jstr(a, "args"));
    snprintf(cmd, sizeof(cmd),
             "durin approve %s  |  durin reject %s --reason TEXT", k, k);
    need(list, "approval", what, cmd);
  }
  n = json_array_size(rv->verdicts);
  last = n ? json_array_get(rv->verdicts, n - 1) : NULL;
  if (rv->ri.status == DURIN_RUN_NEEDS_HUMAN && last && jstr(last, "verdict") &&
      !strcmp(jstr(last, "verdict"), "needs_human")) {
    /* The evaluator could not decide: a person judges, then lets the
     * agent go on, or cancels the run. */
    json_t *why;
    size_t i, len;

    len = (size_t)snprintf(what, sizeof(what),
                           "the evaluator asks a person to judge:");
    json_array_foreach(json_object_get(last, "reasons"), i, why) {
      if (len < sizeof(what))
        len += (size_t)snprintf(what + len, sizeof(what) - len, "%s %s",
                                i ? ";" : "", json_string_value(why));
    }
    snprintf(cmd, sizeof(cmd), "durin resume %s  |  durin cancel %s", id, id);
    need(list, "verdict", what, cmd);
  } else if (rv->ri.status == DURIN_RUN_NEEDS_HUMAN) {
    const char *why = rv->needs_human ? jstr(rv->needs_human, "reason") : NULL;

    snprintf(what, sizeof(what), "the run stopped for a person: %s",
             why ? why : (rv->ri.reason ? rv->ri.reason : "no reason given"));
    if (rv->needs_human && jstr(rv->needs_human, "tool"))
      snprintf(cmd, sizeof(cmd),
               "durin resume %s --retry-call  |  durin resume %s --skip-call",
               id, id);
    else
      snprintf(cmd, sizeof(cmd), "durin resume %s", id);
    need(list, "needs_human", what, cmd);
  }
  n = json_array_size(rv->checks);
  if (n &&
      !json_is_true(
          json_object_get(json_array_get(rv->checks, n - 1), "passed")) &&
      durin_run_status_terminal(rv->ri.status)) {
    json_t *res = json_object_get(json_array_get(rv->checks, n - 1), "results");
    json_t *c;
    size_t i, len = 0;

    len += (size_t)snprintf(what, sizeof(what), "acceptance checks failed:");
    json_array_foreach(res, i, c) {
      if (!json_is_true(json_object_get(c, "ok")) && len < sizeof(what))
        len += (size_t)snprintf(what + len, sizeof(what) - len, " '%s'",
                                jstr(c, "name") ? jstr(c, "name") : "?");
    }
    snprintf(cmd, sizeof(cmd), "durin continue %s \"MESSAGE\"", id);
    need(list, "checks", what, cmd);
  }
  if (rv->ri.status == DURIN_RUN_BUDGET_EXCEEDED) {
    const char *why = rv->budget ? jstr(rv->budget, "reason") : rv->ri.reason;

    snprintf(what, sizeof(what), "the run spent its budget: %s",
             why ? why : "budget exceeded");
    snprintf(cmd, sizeof(cmd), "durin continue %s %s \"MESSAGE\"",
             budget_flag(why), id);
    need(list, "budget", what, cmd);
  }
  if (rv->delivery && !json_is_true(json_object_get(rv->delivery, "ok"))) {
    snprintf(what, sizeof(what), "delivering the branch failed: %s",
             jstr(rv->delivery, "error") ? jstr(rv->delivery, "error") : "?");
    snprintf(cmd, sizeof(cmd), "git -C %s push REMOTE durin/%s",
             rv->ri.workspace ? rv->ri.workspace : ".", id);
    need(list, "delivery", what, cmd);
  }
  return list;
}

json_t *durin_review_json(const struct durin_review *rv)
{
  const struct durin_run_info *ri = &rv->ri;
  const struct durin_usage *u = &ri->usage;
  json_t *j, *approvals = json_array(), *a, *usage;
  const char *goal = rv->spec ? jstr(rv->spec, "goal") : NULL, *k;
  int terminal = durin_run_status_terminal(ri->status);
  int64_t end_ms = ri->finished_ms ? ri->finished_ms : ri->updated_ms;
  int64_t start_ms = ri->started_ms ? ri->started_ms : ri->created_ms;
  size_t n;

  json_object_foreach(rv->approvals, k, a)
    json_array_append(approvals, a);
  /* The run's step counter is the agent's; tokens, calls and cost
   * include the evaluator's (its steps come from the log). */
  usage = usage_json(u->steps + rv->eval.steps, u->input_tokens,
                     u->output_tokens, u->model_calls, u->cost_usd);
  json_object_set_new(usage, "tool_calls", json_integer(u->tool_calls));
  json_object_set_new(usage, "agent",
                      usage_json(u->steps,
                                 u->input_tokens - rv->eval.input_tokens,
                                 u->output_tokens - rv->eval.output_tokens,
                                 u->model_calls - rv->eval.model_calls,
                                 u->cost_usd - rv->eval.cost_usd));
  json_object_set_new(usage, "evaluator",
                      usage_json(rv->eval.steps, rv->eval.input_tokens,
                                 rv->eval.output_tokens, rv->eval.model_calls,
                                 rv->eval.cost_usd));
  n = json_array_size(rv->checks);
  j = json_pack(
      "{s:i,s:{s:s,s:s?,s:s?,s:s?,s:I},s:s?,s:s,s:b,s:s,s:s?,s:O?,s:O,"
      "s:{s:b,s:O?,s:O},s:o,s:o,s:{s:I,s:I,s:I,s:I},s:O,s:I,s:o,s:O,s:O?,"
      "s:o}",
      "v", DURIN_REVIEW_VERSION, "run", "id", ri->id, "name", ri->name,
      "tenant", ri->tenant, "model", ri->model, "attempt",
      (json_int_t)ri->attempt, "goal", goal, "status",
      durin_run_status_name(ri->status), "terminal", terminal, "reason",
      ri->reason && *ri->reason ?
          ri->reason :
          (rv->finished_reason ? rv->finished_reason : ""),
      "summary", rv->summary, "plan", rv->plan, "diff",
      rv->diff ? rv->diff : json_null(), "checks", "passed",
      n && json_is_true(
               json_object_get(json_array_get(rv->checks, n - 1), "passed")),
      "last", n ? json_array_get(rv->checks, n - 1) : NULL, "attempts",
      rv->checks, "evaluator", evaluator_json(rv), "usage", usage, "time",
      "created_ms", (json_int_t)ri->created_ms, "started_ms",
      (json_int_t)ri->started_ms, "finished_ms", (json_int_t)ri->finished_ms,
      "duration_ms", (json_int_t)(end_ms > start_ms ? end_ms - start_ms : 0),
      "timeline", rv->timeline, "timeline_dropped",
      (json_int_t)rv->calls_dropped, "approvals", approvals, "commits",
      rv->commits, "delivery", rv->delivery, "needs_person", needs_person(rv));
  if (j) {
    json_object_set(j, "phases", rv->phases);
    json_object_set_new(j, "context_resets", json_integer(rv->resets));
  }
  if (j && !rv->plan)
    json_object_set_new(j, "plan", json_null());
  if (j && !rv->summary)
    json_object_set_new(j, "summary", json_null());
  if (j && !n)
    json_object_set_new(json_object_get(j, "checks"), "last", json_null());
  if (j && !rv->delivery)
    json_object_set_new(j, "delivery", json_null());
  if (j && !goal)
    json_object_set_new(j, "goal", json_null());
  return j;
}
