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
 * most 8 items of at most 300 bytes, notes at most 1,000 (new reference).
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
 * What the checkpoint keeps of an artifact or handoff (the log keeps it
 * whole): its lists cut to a few short items (new reference).
 */
json_t *durin__summary_brief(json_t *art);

/*
 * Appends art's brief to the checkpoint's artifacts (created if NULL);
 * all but the last few become pointers into the log ({"pointer": true,
 * "phase", "index", "step", "from_seq", "through_seq"}), so the
 * checkpoint stays small however many phases the run has.
 */
void durin__summary_keep(json_t **artifacts, json_t *art);

/*
 * The text the pinned message carries for phases and resets, at most
 * about cap bytes, newest first: the current phase (phase: the
 * checkpoint's, or NULL), the last reset's handoff (reset: the
 * checkpoint's, or NULL; up to half), the artifacts of the phases that
 * ended, newest first (sharing the rest; older ones as pointers into the
 * log). NULL when there is nothing to say. malloc'd.
 */
char *durin__summary_render(const struct durin_spec *spec, json_t *phase,
                            json_t *artifacts, json_t *reset, size_t cap);

#endif
