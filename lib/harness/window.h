/*
 * The context window of a run: the messages rebuilt from the log that go
 * into every model request, kept within the spec's context.max_bytes and
 * context.max_messages. Internal to lib/harness; does no I/O.
 *
 * A request is: the system prompt, the tool schemas, one pinned first
 * message (the goal, the plan, and a handoff of what compaction dropped),
 * then the window's messages. Its JSON text never exceeds max_bytes and it
 * never holds more than max_messages messages:
 *   - each message of a turn is cut to its share of half the window when
 *     it joins (head and tail kept, a marker naming the event that holds
 *     it whole), so the newest turn nearly always fits;
 *   - when the window is over a limit, whole turns are dropped from its
 *     front down to half of each limit (a compaction now and then, not at
 *     every step); a turn that cannot fit alone is dropped too;
 *   - the pinned message's plan and handoff each have a reserved share.
 */
#ifndef DURIN_HARNESS_WINDOW_H
#define DURIN_HARNESS_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "durin/error.h"
#include "durin/spec.h"

struct durin__window;

/* Adds s to the array a, after removing it if it is there, keeping the
 * last max items (the most recent). */
void durin__json_add_last(json_t *a, json_t *s, size_t max);

/* The bytes jansson writes for the string s[0..n) inside its quotes. */
size_t durin__json_escaped_len(const char *s, size_t n);

/*
 * A window for spec's limits; tools are the schemas every request sends
 * (borrowed, for their size). DURIN_ESPEC when max_bytes cannot hold the
 * system prompt, goal and tools with room for a conversation.
 */
int durin__window_new(const struct durin_spec *spec, json_t *tools,
                      struct durin__window **out, struct durin_err *err);
/* The tool schemas grew (MCP tools, added before the run's first model
 * call): the window's shares are sized again. */
int durin__window_tools(struct durin__window *w, const struct durin_spec *spec,
                        json_t *tools, struct durin_err *err);
/* What the agent is given at this start or resume (text copied; NULL:
 * nothing): shown after the goal in the pinned message, within a share
 * taken from the window's (at most the plan's). */
int durin__window_boot(struct durin__window *w, const struct durin_spec *spec,
                       json_t *tools, const char *text, struct durin_err *err);
void durin__window_free(struct durin__window *w);
/* The requests' size limit in bytes (0: context.max_bytes): a phase's
 * share, context.reset_at. The shares are sized again; DURIN_ESPEC when
 * the limit cannot hold the system prompt, goal and tools. */
int durin__window_limit(struct durin__window *w, const struct durin_spec *spec,
                        json_t *tools, size_t limit, struct durin_err *err);
/* The phases' artifacts and the last reset's handoff (text copied; NULL:
 * none): shown in the pinned message after the boot files, within their
 * own share (reserved when the spec has phases or resets). */
void durin__window_set_extra(struct durin__window *w, const char *text);
/* The share of the pinned message set_extra's text has, in bytes. */
size_t durin__window_extra_cap(const struct durin__window *w);
/* What the system prompt and tool schemas add to every request. */
size_t durin__window_fixed(const char *system, json_t *tools);
/* The window's messages, and how many it may hold. */
size_t durin__window_count(const struct durin__window *w);
/* What the byte counts add for a provider's wire format to a request of
 * nmsgs messages and ntools tool schemas (its JSON text is the rest). */
size_t durin__window_slack(size_t nmsgs, size_t ntools);
/* The window's messages, in bytes as a request counts them. */
size_t durin__window_bytes(const struct durin__window *w);
/* The last request's pinned message, in bytes (0 before one is made). */
size_t durin__window_pinned(const struct durin__window *w);
size_t durin__window_max_messages(const struct durin__window *w);

/* Adds the message a logged event makes, if it makes one. */
void durin__window_add_event(struct durin__window *w, const char *type,
                             json_t *data, int64_t seq);

/*
 * Drops turns until the window is within its limits. When it dropped
 * some: moves *window_start past them, folds them into *handoff (created
 * if NULL; bounded, for the checkpoint) and returns the data of the
 * compaction event that records them (new reference); else NULL.
 */
json_t *durin__window_fit(struct durin__window *w, int64_t *window_start,
                          json_t **handoff);

/*
 * The same, down to at most max_bytes and max_msgs however recent the
 * turns (0, 0: all of them), for a summary call or a context reset; NULL
 * when nothing was dropped.
 */
json_t *durin__window_fit_within(struct durin__window *w, int64_t *window_start,
                                 json_t **handoff, size_t max_bytes,
                                 size_t max_msgs);

/* The window's messages (borrowed). */
json_t *durin__window_messages(const struct durin__window *w);

/*
 * The messages of a request (new reference): the pinned first message
 * (goal, plan, handoff) then the window. *bytes: the request's JSON size
 * with the system prompt and tool schemas.
 */
json_t *durin__window_request(struct durin__window *w, json_t *plan,
                              json_t *handoff, size_t *bytes);

#endif
