/*
 * The evaluator's fixed parts (docs/internals/evaluator.md): its system
 * prompt, its tools and their schemas, the context it starts from, and the
 * reading of its verdict. The harness (harness.c) drives it; nothing here
 * does I/O or keeps state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/util.h"
#include "harness/eval.h"

static const char default_system[] =
    "You are an independent reviewer of an AI agent's work. You did not do "
    "the work and you have not seen the conversation that produced it: "
    "what you know is the goal, the acceptance criteria, the checks that "
    "ran, the change to the workspace, and the files themselves.\n\n"
    "Decide whether the work meets the goal and every criterion. The "
    "agent's summary is a claim to verify, not evidence. Read the files the "
    "change touches; if you have bash, run commands to test what is "
    "claimed (the workspace is read-only and there is no network: you can "
    "look and run, not change). Do not fix anything yourself.\n\n"
    "End by calling the verdict tool once:\n"
    "- \"pass\" only when every criterion is met and nothing you found "
    "contradicts it;\n"
    "- \"fail\" with reasons the agent can act on (which criterion, which "
    "file, what is wrong), when something is missing or broken;\n"
    "- \"needs_human\" with reasons, when a person must decide (the goal is "
    "ambiguous, or checking it needs access you do not have).\n"
    "If you cannot tell, the answer is \"fail\".";

static const struct durin_tool_param verdict_params[] = {
  { "verdict", DURIN_PARAM_STRING, 1, "\"pass\", \"fail\" or \"needs_human\"" },
  { NULL, 0, 0, NULL },
};

/* Its schema is its own (an enum and a list of reasons); the harness reads
 * the arguments itself, so a malformed verdict is a verdict (fail). */
static struct durin_tool_def verdict_def = {
  "verdict",
  "Give your decision, once, when you have made it. pass: every "
  "criterion is met. fail: something is missing or wrong (say what, "
  "where). needs_human: a person must decide (say why).",
  DURIN_EFFECT_PURE,
  verdict_params,
  NULL,
};

char *durin__eval_system(const struct durin_spec_evaluator *e)
{
  char *s;

  if (!e->instructions || !*e->instructions)
    return strdup(default_system);
  if (asprintf(&s, "%s\n\nInstructions for this evaluation:\n%s",
               default_system, e->instructions) < 0)
    return NULL;
  return s;
}

const struct durin_tool_def *durin__eval_verdict_def(void)
{
  static json_t *schema;

  /* Made once, never changed, never freed: like the builtin tables. */
  if (!schema)
    schema = json_pack(
        "{s:s,s:{s:{s:s,s:[sss],s:s},s:{s:s,s:{s:s},s:s}},s:[s],s:b}", "type",
        "object", "properties", "verdict", "type", "string", "enum", "pass",
        "fail", "needs_human", "description", "your decision", "reasons",
        "type", "array", "items", "type", "string", "description",
        "why: required for fail and needs_human, one finding each", "required",
        "verdict", "additionalProperties", 0);
  verdict_def.schema = schema;
  return &verdict_def;
}

int durin__eval_tool_defs(unsigned tools, const struct durin_tool_def **defs,
                          int max)
{
  static const struct {
    unsigned bit;
    const char *name;
  } t[] = {
    { DURIN_EVAL_READ_FILE, "read_file" },
    { DURIN_EVAL_LIST_FILES, "list_files" },
    { DURIN_EVAL_BASH, "bash" },
  };
  int n = 0;
  size_t i;

  for (i = 0; i < sizeof(t) / sizeof(*t) && n < max - 1; i++)
    if ((tools & t[i].bit) && durin_tool_find(t[i].name))
      defs[n++] = durin_tool_find(t[i].name);
  defs[n++] = durin__eval_verdict_def();
  return n;
}

/* The last cap bytes of s, cut at a line start, with a note. */
static void add_tail(struct durin_buf *b, const char *s, size_t cap)
{
  size_t n = strlen(s);
  const char *from = s;

  if (n > cap) {
    from = s + n - cap;
    while (*from && *from != '\n')
      from++;
    if (*from)
      from++;
    durin_buf_addf(b, "[... %zu bytes cut; the last part follows]\n",
                   (size_t)(from - s));
  }
  durin_buf_adds(b, from);
  if (n && s[n - 1] != '\n')
    durin_buf_adds(b, "\n");
}

char *durin__eval_context(const struct durin_spec *spec, const char *summary,
                          json_t *checks, const char *diff, size_t cap)
{
  const struct durin_spec_evaluator *e = &spec->evaluator;
  struct durin_buf b;
  size_t i, used, diff_cap, out_cap;
  json_t *c;
  int k;

  durin_buf_init(&b, 0);
  durin_buf_adds(&b, "# Goal\n");
  durin_buf_adds(&b, spec->goal);
  durin_buf_adds(&b, "\n\n# Acceptance criteria\n");
  if (!e->ncriteria)
    durin_buf_adds(&b, "None were written: judge the work against the goal, "
                       "and the checks below.\n");
  for (k = 0; k < e->ncriteria; k++)
    durin_buf_addf(&b, "- %s\n", e->criteria[k]);
  durin_buf_adds(&b, "\n# The agent's summary (a claim to verify)\n");
  durin_buf_adds(&b, summary && *summary ? summary : "(none given)");
  durin_buf_adds(&b, "\n\n# Acceptance checks\n");
  if (!json_array_size(checks))
    durin_buf_adds(&b, "The spec has no shell checks.\n");
  /* Check outputs and the diff share what is left; the diff gets most. */
  used = b.len;
  out_cap = cap > used ? (cap - used) / 4 : 0;
  if (json_array_size(checks))
    out_cap /= json_array_size(checks);
  json_array_foreach(checks, i, c) {
    const char *out = json_string_value(json_object_get(c, "output"));

    durin_buf_addf(
        &b, "## %s: %s (exit code %lld)\n",
        json_string_value(json_object_get(c, "name")),
        json_is_true(json_object_get(c, "ok")) ? "passed" : "failed",
        (long long)json_integer_value(json_object_get(c, "exit_code")));
    if (out && *out) {
      durin_buf_adds(&b, "```\n");
      add_tail(&b, out, out_cap > 256 ? out_cap : 256);
      durin_buf_adds(&b, "```\n");
    }
  }
  durin_buf_adds(&b, "\n# The change: the workspace against its start\n");
  used = b.len;
  diff_cap = cap > used + 256 ? cap - used - 256 : 1024;
  if (!diff || !*diff) {
    durin_buf_adds(&b, "(no change: the workspace is as it was)\n");
  } else if (strlen(diff) > diff_cap) {
    /* The head: a diff's first files and hunks say most. */
    size_t cut = diff_cap;

    while (cut > 0 && diff[cut - 1] != '\n')
      cut--;
    durin_buf_adds(&b, "```diff\n");
    durin_buf_add(&b, diff, cut);
    durin_buf_addf(&b,
                   "```\n[the diff goes on for %zu more bytes: read the "
                   "files themselves]\n",
                   strlen(diff) - cut);
  } else {
    durin_buf_adds(&b, "```diff\n");
    durin_buf_adds(&b, diff);
    if (diff[strlen(diff) - 1] != '\n')
      durin_buf_adds(&b, "\n");
    durin_buf_adds(&b, "```\n");
  }
  return durin_buf_detach(&b, NULL);
}

/* The most reasons kept, and bytes per reason. */
#define MAX_REASONS      20
#define MAX_REASON_BYTES 2000

int durin__eval_verdict_read(json_t *args, const char **verdict,
                             json_t **reasons, char *why, size_t len)
{
  json_t *v = json_object_get(args, "verdict");
  json_t *rs = json_object_get(args, "reasons"), *r;
  const char *key;
  size_t i;

  *verdict = NULL;
  *reasons = json_array();
  if (!json_is_object(args)) {
    snprintf(why, len, "its arguments are not an object");
    return -1;
  }
  json_object_foreach(args, key, r) {
    if (strcmp(key, "verdict") && strcmp(key, "reasons")) {
      snprintf(why, len, "it has an unknown field '%.64s'", key);
      return -1;
    }
  }
  if (!json_is_string(v) || (strcmp(json_string_value(v), "pass") &&
                             strcmp(json_string_value(v), "fail") &&
                             strcmp(json_string_value(v), "needs_human"))) {
    snprintf(why, len,
             "'verdict' is %s, not \"pass\", \"fail\" or \"needs_human\"",
             json_is_string(v) ? "another word" : "missing or not a string");
    return -1;
  }
  if (rs && !json_is_array(rs)) {
    snprintf(why, len, "'reasons' is not a list of strings");
    return -1;
  }
  json_array_foreach(rs, i, r) {
    if (!json_is_string(r)) {
      snprintf(why, len, "'reasons[%zu]' is not a string", i);
      return -1;
    }
    if (!json_string_length(r) || i >= MAX_REASONS)
      continue;
    if (json_string_length(r) > MAX_REASON_BYTES) {
      const char *t = json_string_value(r);
      size_t n = MAX_REASON_BYTES;

      /* Not inside a UTF-8 sequence: t[n] is the first byte left out. */
      while (n > 0 && (t[n] & 0xC0) == 0x80)
        n--;
      json_array_append_new(*reasons, json_sprintf("%.*s [...]", (int)n, t));
    } else {
      json_array_append(*reasons, r);
    }
  }
  *verdict = json_string_value(v);
  if (strcmp(*verdict, "pass") && !json_array_size(*reasons)) {
    snprintf(why, len, "a \"%s\" verdict gives no reasons", *verdict);
    *verdict = NULL;
    return -1;
  }
  return 0;
}
