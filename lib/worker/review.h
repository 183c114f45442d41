/*
 * What the worker does once a run has stopped (a final state, or
 * needs_human) and its last commit is durable: deliver its git branch if
 * the spec asks, then write its review artifact (review.json, REVIEW.md)
 * into the run's directory (lib/worker/review.c, docs/internals/review.md).
 *
 * Three stages, so that nothing blocks the loop and the store stays the
 * store thread's: the push (thread pool), the delivery's event and the
 * review's inputs (store thread), the diff and the files (thread pool).
 * With one run on the loop, all three run in place. A failure of any is
 * a notice: the run has ended all the same, and `durin review ID` builds
 * the artifact again from the store.
 */
#ifndef DURIN_WORKER_REVIEW_H
#define DURIN_WORKER_REVIEW_H

#include "durin/spec.h"
#include "durin/store.h"

struct durin__ending;

/* For run_id, stopped in status, as its spec says (copied: spec may go).
 * It takes red (the run's redactor, or NULL): the diff is scrubbed with
 * it. NULL when out of memory (red is then still the caller's). */
struct durin_redactor;
struct durin__ending *durin__ending_new(const char *run_id,
                                        enum durin_run_status status,
                                        const struct durin_spec *spec,
                                        struct durin_redactor *red);
void durin__ending_free(struct durin__ending *e);
const char *durin__ending_run(const struct durin__ending *e);

/* Blocking, no store: the push, when the spec delivers in this state. */
void durin__ending_push(struct durin__ending *e);
/* The store thread's: the delivery's event, then the run's row, log and
 * approvals. 0, or an error in err. */
int durin__ending_load(struct durin__ending *e, struct durin_store *s,
                       struct durin_err *err);
/* Blocking, no store: the diff and the two files. */
int durin__ending_write(struct durin__ending *e, struct durin_err *err);

#endif
