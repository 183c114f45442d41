/*
 * The evaluator's fixed parts, internal to lib/harness (eval.c): no I/O,
 * no state. The harness drives the evaluation (harness.c).
 */
#ifndef DURIN_HARNESS_EVAL_H
#define DURIN_HARNESS_EVAL_H

#include <stddef.h>

#include <jansson.h>

#include "durin/spec.h"
#include "durin/tools.h"

/* The evaluator's system prompt: the default, then the spec's
 * instructions if any (malloc'd). */
char *durin__eval_system(const struct durin_spec_evaluator *e);

/* The verdict tool: its arguments are read by durin__eval_verdict_read. */
const struct durin_tool_def *durin__eval_verdict_def(void);

/* The evaluator's tools (the spec's read-only ones, then verdict) into
 * defs[max]; returns how many. */
int durin__eval_tool_defs(unsigned tools, const struct durin_tool_def **defs,
                          int max);

/*
 * The evaluation's first message, at most about cap bytes: the goal, the
 * criteria, the agent's summary, the checks' results (each output's tail)
 * and the diff (its head). checks: the `checks` event's results (may be
 * NULL). malloc'd.
 */
char *durin__eval_context(const struct durin_spec *spec, const char *summary,
                          json_t *checks, const char *diff, size_t cap);

/*
 * Reads a verdict call's arguments: 0 with *verdict ("pass", "fail",
 * "needs_human"; borrowed from args) and *reasons (new reference; each
 * cut to 2,000 bytes, at most 20), or -1 with why (a malformed verdict:
 * the evaluation fails). *reasons is always set.
 */
int durin__eval_verdict_read(json_t *args, const char **verdict,
                             json_t **reasons, char *why, size_t len);

#endif
