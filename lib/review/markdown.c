/*
 * REVIEW.md: review.json as a page a person reads in a minute. The order
 * is what a reviewer asks first: how did it end, does it need me, what
 * did it claim and did a judge agree, what changed, then the detail
 * (checks, timeline, approvals, cost).
 *
 * Text from the log (outputs, reasons, arguments) goes into fenced blocks
 * or is put on one line with its Markdown quoted, so an agent's output
 * cannot make headings or links of its own in the page.
 */
#include <inttypes.h>
#include <string.h>

#include <jansson.h>

#include "durin/review.h"

static const char *jstr(const json_t *o, const char *key)
{
  return json_string_value(json_object_get(o, key));
}

static int64_t jint(const json_t *o, const char *key)
{
  return (int64_t)json_integer_value(json_object_get(o, key));
}

/* One line of inline text: line breaks become spaces, and the characters
 * Markdown acts on inline are escaped. */
static void inline_text(struct durin_buf *b, const char *s)
{
  for (; s && *s; s++) {
    if (*s == '\n' || *s == '\r' || *s == '\t')
      durin_buf_add(b, " ", 1);
    else if (strchr("\\`*_[]<>#|", *s)) {
      durin_buf_add(b, "\\", 1);
      durin_buf_add(b, s, 1);
    } else
      durin_buf_add(b, s, 1);
  }
}

/* A fenced block that text cannot close: longer than its longest run of
 * backticks. */
static void fenced(struct durin_buf *b, const char *lang, const char *text)
{
  size_t run = 0, most = 0, n, i;
  const char *p;

  for (p = text ? text : ""; *p; p++) {
    run = *p == '`' ? run + 1 : 0;
    if (run > most)
      most = run;
  }
  n = most >= 3 ? most + 1 : 3;
  for (i = 0; i < n; i++)
    durin_buf_add(b, "`", 1);
  durin_buf_addf(b, "%s\n", lang ? lang : "");
  if (text && *text) {
    durin_buf_adds(b, text);
    if (text[strlen(text) - 1] != '\n')
      durin_buf_add(b, "\n", 1);
  }
  for (i = 0; i < n; i++)
    durin_buf_add(b, "`", 1);
  durin_buf_add(b, "\n\n", 2);
}

static void fmt_ms(struct durin_buf *b, int64_t ms)
{
  char t[40];

  if (ms <= 0) {
    durin_buf_adds(b, "-");
    return;
  }
  durin_fmt_time(ms, t, sizeof(t));
  durin_buf_adds(b, t);
}

static void outcome(struct durin_buf *b, const json_t *r)
{
  const json_t *run = json_object_get(r, "run");
  const char *reason = jstr(r, "reason");

  durin_buf_addf(b, "# Review of run %s", jstr(run, "id"));
  if (jstr(run, "name") && *jstr(run, "name")) {
    durin_buf_adds(b, " (");
    inline_text(b, jstr(run, "name"));
    durin_buf_adds(b, ")");
  }
  durin_buf_addf(b, "\n\n**Outcome: %s**", jstr(r, "status"));
  if (reason && *reason) {
    durin_buf_adds(b, " — ");
    inline_text(b, reason);
  }
  durin_buf_adds(b, "\n\n");
  if (!json_is_true(json_object_get(r, "terminal")))
    durin_buf_addf(b,
                   "> The run has not ended (status %s): this review is "
                   "what it has done so far.\n\n",
                   jstr(r, "status"));
  durin_buf_adds(b, "## Goal\n\n");
  fenced(b, "text", jstr(r, "goal") ? jstr(r, "goal") : "(no goal)");
}

static void needs(struct durin_buf *b, const json_t *r)
{
  const json_t *list = json_object_get(r, "needs_person"), *n;
  size_t i;

  durin_buf_adds(b, "## What needs a person\n\n");
  if (!json_array_size(list)) {
    durin_buf_adds(b, "Nothing.\n\n");
    return;
  }
  json_array_foreach(list, i, n) {
    durin_buf_adds(b, "- ");
    inline_text(b, jstr(n, "what"));
    durin_buf_addf(b, "  \n  `%s`\n", jstr(n, "command"));
  }
  durin_buf_adds(b, "\n");
}

static void summary_plan(struct durin_buf *b, const json_t *r)
{
  const json_t *plan = json_object_get(r, "plan"), *p;
  size_t i;

  durin_buf_adds(b, "## The agent's summary\n\n");
  if (jstr(r, "summary"))
    fenced(b, "text", jstr(r, "summary"));
  else
    durin_buf_adds(b, "The agent gave none.\n\n");
  durin_buf_adds(b, "## Plan\n\n");
  if (!json_array_size(plan)) {
    durin_buf_adds(b, "The agent set none.\n\n");
    return;
  }
  json_array_foreach(plan, i, p) {
    const char *st = jstr(p, "status");

    durin_buf_addf(b, "- [%s] ",
                   st && !strcmp(st, "done")        ? "x" :
                   st && !strcmp(st, "in_progress") ? "~" :
                                                      " ");
    inline_text(b, jstr(p, "step") ? jstr(p, "step") : json_string_value(p));
    if (st && strcmp(st, "done"))
      durin_buf_addf(b, " (%s)", st);
    durin_buf_adds(b, "\n");
  }
  durin_buf_adds(b, "\n");
}

static void artifact_list(struct durin_buf *b, const json_t *a, const char *key,
                          const char *title)
{
  const json_t *l = json_object_get(a, key), *v;
  size_t i;

  if (!json_array_size(l))
    return;
  durin_buf_addf(b, "%s:\n\n", title);
  json_array_foreach(l, i, v) {
    durin_buf_adds(b, "- ");
    inline_text(b, json_string_value(v));
    durin_buf_adds(b, "\n");
  }
  durin_buf_adds(b, "\n");
}

/* The artifacts of the run's phases, and its context resets
 * (docs/internals/context.md). */
static void phases(struct durin_buf *b, const json_t *r)
{
  const json_t *ps = json_object_get(r, "phases"), *a;
  int64_t resets = json_integer_value(json_object_get(r, "context_resets"));
  size_t i;

  if (!json_array_size(ps) && !resets)
    return;
  durin_buf_adds(b, "## Phases and context\n\n");
  json_array_foreach(ps, i, a) {
    durin_buf_adds(b, "### Phase ");
    inline_text(b, jstr(a, "phase"));
    durin_buf_addf(
        b, " (ended after step %lld; events %lld to %lld)\n\n",
        (long long)json_integer_value(json_object_get(a, "step")),
        (long long)json_integer_value(json_object_get(a, "from_seq")),
        (long long)json_integer_value(json_object_get(a, "through_seq")));
    artifact_list(b, a, "decided", "Decided");
    artifact_list(b, a, "found", "Found");
    artifact_list(b, a, "commitments", "Left open");
    if (jstr(a, "notes")) {
      durin_buf_adds(b, "Notes: ");
      inline_text(b, jstr(a, "notes"));
      durin_buf_adds(b, "\n\n");
    }
  }
  if (resets)
    durin_buf_addf(b,
                   "The context was reset %lld time(s) to stay within "
                   "`context.reset_at`; each handoff is a `context_reset` "
                   "event in `durin logs`.\n\n",
                   (long long)resets);
}

static void evaluator(struct durin_buf *b, const json_t *r)
{
  const json_t *e = json_object_get(r, "evaluator"), *why;
  size_t i;

  durin_buf_adds(b, "## Evaluator\n\n");
  if (!jstr(e, "verdict")) {
    durin_buf_addf(b, "No verdict: %s.\n\n", jstr(e, "note"));
    return;
  }
  durin_buf_addf(b, "Verdict: **%s**", jstr(e, "verdict"));
  if (jstr(e, "source") && strcmp(jstr(e, "source"), "evaluator"))
    durin_buf_addf(b, " (%s)", jstr(e, "source"));
  durin_buf_addf(b, ", after %zu attempt(s).\n\n",
                 json_array_size(json_object_get(e, "verdicts")));
  json_array_foreach(json_object_get(e, "reasons"), i, why) {
    durin_buf_adds(b, "- ");
    inline_text(b, json_string_value(why));
    durin_buf_adds(b, "\n");
  }
  if (i)
    durin_buf_adds(b, "\n");
}

static void checks(struct durin_buf *b, const json_t *r)
{
  const json_t *ck = json_object_get(r, "checks");
  const json_t *last = json_object_get(ck, "last"), *c, *l;
  size_t i, k;

  durin_buf_adds(b, "## Checks\n\n");
  if (!json_is_object(last)) {
    durin_buf_adds(b, "No checks ran.\n\n");
    return;
  }
  durin_buf_addf(
      b, "Attempt %" PRId64 " of %zu: %s.\n\n", jint(last, "attempt"),
      json_array_size(json_object_get(ck, "attempts")),
      json_is_true(json_object_get(last, "passed")) ? "passed" : "failed");
  json_array_foreach(json_object_get(last, "results"), i, c) {
    int ok = json_is_true(json_object_get(c, "ok"));

    durin_buf_addf(b, "### %s `", ok ? "PASS" : "FAIL");
    inline_text(b, jstr(c, "name"));
    durin_buf_addf(
        b, "` (exit %" PRId64 "%s)\n\n", jint(c, "exit_code"),
        json_is_true(json_object_get(c, "timed_out")) ? ", timed out" : "");
    if (json_array_size(json_object_get(c, "failing_lines"))) {
      durin_buf_adds(b, "Failing lines:\n\n");
      json_array_foreach(json_object_get(c, "failing_lines"), k, l) {
        durin_buf_addf(b, "- line %" PRId64 ": `", jint(l, "line"));
        inline_text(b, jstr(l, "text"));
        durin_buf_adds(b, "`\n");
      }
      durin_buf_adds(b, "\n");
    }
    if (!ok)
      fenced(b, "text", jstr(c, "output"));
  }
}

static void diff(struct durin_buf *b, const json_t *r)
{
  const json_t *d = json_object_get(r, "diff");

  durin_buf_adds(b, "## Changes\n\n");
  if (!json_is_object(d) || !strcmp(jstr(d, "source"), "none")) {
    durin_buf_addf(b, "No diff: %s.\n\n",
                   json_is_object(d) ? jstr(d, "note") : "none was made");
    return;
  }
  if (!strcmp(jstr(d, "source"), "git"))
    durin_buf_addf(b, "From commit %.12s to %.12s (branch durin/%s).\n\n",
                   jstr(d, "from") ? jstr(d, "from") : "(empty tree)",
                   jstr(d, "to"), jstr(json_object_get(r, "run"), "id"));
  else
    durin_buf_adds(b, "The workspace against its start.\n\n");
  if (!jstr(d, "patch") || !*jstr(d, "patch")) {
    durin_buf_adds(b, "Nothing changed.\n\n");
    return;
  }
  fenced(b, "", jstr(d, "stat"));
  if (json_is_true(json_object_get(d, "truncated")))
    durin_buf_addf(b, "> %s\n\n", jstr(d, "note"));
  fenced(b, "diff", jstr(d, "patch"));
}

static void commits(struct durin_buf *b, const json_t *r)
{
  const json_t *cs = json_object_get(r, "commits"), *c;
  size_t i;

  if (!json_array_size(cs))
    return;
  durin_buf_adds(b, "## Commits\n\n| step | commit | files | + | - |\n"
                    "|---|---|---|---|---|\n");
  json_array_foreach(cs, i, c)
    durin_buf_addf(
        b,
        "| %" PRId64 " | %.12s | %" PRId64 " | %" PRId64 " | %" PRId64 " |\n",
        jint(c, "step"), jstr(c, "commit") ? jstr(c, "commit") : "?",
        jint(c, "files"), jint(c, "insertions"), jint(c, "deletions"));
  durin_buf_adds(b, "\n");
}

static void timeline(struct durin_buf *b, const json_t *r)
{
  const json_t *tl = json_object_get(r, "timeline"), *t;
  size_t i;

  durin_buf_adds(b, "## Timeline\n\n");
  if (!json_array_size(tl)) {
    durin_buf_adds(b, "No tool calls.\n\n");
    return;
  }
  if (jint(r, "timeline_dropped"))
    durin_buf_addf(b, "(the first %" PRId64 " calls are left out)\n\n",
                   jint(r, "timeline_dropped"));
  durin_buf_adds(b, "| step | tool | arguments | result | time |\n"
                    "|---|---|---|---|---|\n");
  json_array_foreach(tl, i, t) {
    char d[32];

    durin_fmt_duration(jint(t, "duration_ms"), d, sizeof(d));
    durin_buf_addf(b, "| %" PRId64 " | %s%s | ", jint(t, "step"),
                   jstr(t, "tool"),
                   strcmp(jstr(t, "role"), "evaluator") ? "" : " (evaluator)");
    inline_text(b, jstr(t, "args"));
    if (json_is_true(json_object_get(t, "ok")))
      durin_buf_adds(b, " | ok");
    else if (jint(t, "exit_code") >= 0)
      durin_buf_addf(b, " | failed (exit %" PRId64 ")", jint(t, "exit_code"));
    else
      durin_buf_adds(b, " | failed");
    if (jstr(t, "approval"))
      durin_buf_addf(b, ", approval %s", jstr(t, "approval"));
    durin_buf_addf(b, " | %s |\n", d);
  }
  durin_buf_adds(b, "\n");
}

static void approvals(struct durin_buf *b, const json_t *r)
{
  const json_t *as = json_object_get(r, "approvals"), *a;
  size_t i;

  durin_buf_adds(b, "## Approvals\n\n");
  if (!json_array_size(as)) {
    durin_buf_adds(b, "None were asked.\n\n");
    return;
  }
  json_array_foreach(as, i, a) {
    durin_buf_addf(b, "- %s: %s `", jstr(a, "id"), jstr(a, "tool"));
    inline_text(b, jstr(a, "args"));
    durin_buf_addf(b, "` (rule %s, step %" PRId64 "): **%s**", jstr(a, "rule"),
                   jint(a, "step"), jstr(a, "state"));
    if (jstr(a, "decided_by")) {
      durin_buf_adds(b, " by ");
      inline_text(b, jstr(a, "decided_by"));
      durin_buf_adds(b, " at ");
      fmt_ms(b, jint(a, "decided_ms"));
    }
    if (jstr(a, "comment")) {
      durin_buf_adds(b, ": ");
      inline_text(b, jstr(a, "comment"));
    }
    durin_buf_adds(b, "\n");
  }
  durin_buf_adds(b, "\n");
}

static void delivery(struct durin_buf *b, const json_t *r)
{
  const json_t *d = json_object_get(r, "delivery");

  if (!json_is_object(d))
    return;
  durin_buf_adds(b, "## Delivery\n\n");
  if (json_is_true(json_object_get(d, "ok")))
    durin_buf_addf(b, "Pushed branch %s (commit %.12s) to ", jstr(d, "branch"),
                   jstr(d, "commit") ? jstr(d, "commit") : "?");
  else
    durin_buf_adds(b, "Failed: ");
  inline_text(b, json_is_true(json_object_get(d, "ok")) ? jstr(d, "remote") :
                                                          jstr(d, "error"));
  durin_buf_adds(b, "\n\n");
}

static void usage_line(struct durin_buf *b, const char *who, const json_t *u)
{
  durin_buf_addf(
      b, "| %s | %" PRId64 " | %" PRId64 " | %" PRId64 " | $%.4f |\n", who,
      jint(u, "steps"), jint(u, "input_tokens"), jint(u, "output_tokens"),
      json_number_value(json_object_get(u, "cost_usd")));
}

static void cost(struct durin_buf *b, const json_t *r)
{
  const json_t *u = json_object_get(r, "usage"),
               *t = json_object_get(r, "time");
  char d[32];

  durin_fmt_duration(jint(t, "duration_ms"), d, sizeof(d));
  durin_buf_adds(b, "## Cost and time\n\n| who | steps | input tokens | "
                    "output tokens | cost |\n|---|---|---|---|---|\n");
  usage_line(b, "agent", json_object_get(u, "agent"));
  usage_line(b, "evaluator", json_object_get(u, "evaluator"));
  usage_line(b, "total", u);
  durin_buf_addf(b, "\n%" PRId64 " tool call(s). Started ",
                 jint(u, "tool_calls"));
  fmt_ms(b, jint(t, "started_ms"));
  durin_buf_adds(b, ", finished ");
  fmt_ms(b, jint(t, "finished_ms"));
  durin_buf_addf(b, " (%s).\n", d);
}

int durin_review_markdown(const json_t *review, struct durin_buf *out)
{
  outcome(out, review);
  needs(out, review);
  summary_plan(out, review);
  phases(out, review);
  evaluator(out, review);
  checks(out, review);
  diff(out, review);
  commits(out, review);
  delivery(out, review);
  timeline(out, review);
  approvals(out, review);
  cost(out, review);
  return 0;
}
