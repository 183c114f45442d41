/*
 * Summaries of the agent's context, internal to lib/harness (summary.c): a
 * phase's artifact at its end, a handoff at a context reset
 * (docs/internals/context.md). No I/O, no state: the harness makes the
 * summary call and keeps what it returns.
 */
#ifndef DURIN_HARNESS_SUMMARY_H
#define DURIN_HARNESS_SUMMARY_H

#include <stddef.h>

#include <jansson.h>

#include "durin/model.h"
#include "durin/spec.h"

/* The system prompt of a summary call. */
extern const char durin__summary_system[];

/* The tools of a summary call: [artifact] (new reference). */
json_t *durin__summary_tools(void);

/*
 * The last message of a summary call, after the conversation it sums up:
 * what to write and why (malloc'd). phase: the phase that ends, or NULL
 * for a context reset.
 */
char *durin__summary_ask(const char *phase);

/*
 * What the model wrote: {"decided", "found", "commitments": [text...],
 * "notes": text, "source": "artifact" | "text" | "none"}, each list at
 * most 12 items of at most 400 bytes (new reference).
 */
json_t *durin__summary_read(const struct durin_model_response *r);

/*
 * What the harness knows itself, added to an artifact or a handoff: the
 * plan's done and open steps, and from the compactions that dropped the
 * turns (their `calls` and `files`): the files written and read and the
 * last failed calls. Sets them on art.
 */
void durin__summary_facts(json_t *art, json_t *plan, json_t *compactions);

/*
 * The text the pinned message carries for phases and resets: the current
 * phase (phase: the checkpoint's, or NULL), the artifacts of the phases
 * that ended, and the last reset's handoff (reset: the checkpoint's, or
 * NULL). NULL when there is nothing to say. malloc'd.
 */
char *durin__summary_render(const struct durin_spec *spec, json_t *phase,
                            json_t *artifacts, json_t *reset);

#endif
