/*
 * The postmortem of a run, computed from its log alone (`durin explain`):
 * where its tokens, dollars and time went, by tool and by plan step; the
 * calls it kept repeating while they failed; its last errors and checks;
 * and why it stopped. Nothing is run again, so a run that failed yesterday
 * is explained today from what the store holds.
 *
 * The fold is pure: events go in one at a time, in the log's order, and
 * one JSON object comes out. Only cli_explain_run reads the store.
 */
#ifndef DURIN_CLI_EXPLAIN_H
#define DURIN_CLI_EXPLAIN_H

#include <stdint.h>

#include <jansson.h>

#include "durin/store.h"

struct cli_explain;

/*
 * A fold for run ri (borrowed: it must outlive the fold). now_ms stands for
 * "now" where the log has not ended: an approval still pending waits until
 * then. NULL when out of memory.
 */
struct cli_explain *cli_explain_new(const struct durin_run_info *ri,
                                    int64_t now_ms);
/* Folds in the next event of the log; a durin_event_cb (returns 0). */
int cli_explain_event(const struct durin_event *ev, void *fold);
/*
 * The report: { run, name, status, reason, events, headline, outcome,
 * totals, tools, phases, repeated_failures, loops, last_errors,
 * model_errors, checks, approvals }; see docs/cli/README.md for the
 * fields. The caller owns it.
 */
json_t *cli_explain_report(struct cli_explain *x);
void cli_explain_free(struct cli_explain *x);

/* Reads run id's whole log from st and folds it into *out (the caller's).
 * DURIN_ENOTFOUND for no such run; err says why. */
int cli_explain_run(struct durin_store *st, const char *id, int64_t now_ms,
                    json_t **out, struct durin_err *err);

#endif
