/*
 * The review artifact of a run (docs/internals/review.md): what a person
 * reads to decide about a run in a minute, as review.json (a versioned
 * schema, "v": 1) and REVIEW.md.
 *
 * It is a projection of the run's row, its log and its approvals, plus a
 * diff the caller makes (durin_review_git_diff, or the workspace against
 * its start): a builder takes the events one at a time, in log order,
 * and keeps only what the review shows, so a long run costs its timeline,
 * not its log. The log is scrubbed of secrets before it is written, and
 * nothing else is read, so the artifact is too.
 *
 * Pure: no I/O but what a function says (durin_review_load reads the
 * store, durin_review_git_diff the run's repository, durin_review_write
 * the run's directory); one builder is one thread's at a time.
 */
#ifndef DURIN_REVIEW_H
#define DURIN_REVIEW_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "durin/error.h"
#include "durin/store.h"
#include "durin/util.h"

#define DURIN_REVIEW_VERSION 1
/* The diff a review holds; past it the patch is cut and says so. */
#define DURIN_REVIEW_DIFF_MAX (256 * 1024)
/* Failing lines cited per check output. */
#define DURIN_REVIEW_CITE_MAX 20
/* Tool calls the timeline keeps (the last ones; the count says the rest). */
#define DURIN_REVIEW_TIMELINE_MAX 500

struct durin_review;

/* A new builder for the run ri describes (copied: ri may go). NULL when
 * out of memory. */
struct durin_review *durin_review_new(const struct durin_run_info *ri);
void durin_review_free(struct durin_review *rv);

/* The run as the builder holds it. */
const struct durin_run_info *durin_review_run(const struct durin_review *rv);

/* Feeds one event, in log order. An event whose data is not a JSON
 * object is skipped. */
void durin_review_add_event(struct durin_review *rv,
                            const struct durin_event *ev);
/* Feeds one approval of the run. */
void durin_review_add_approval(struct durin_review *rv,
                               const struct durin_approval *a);

/* The diff the review shows: source "git" (from and to are commits) or
 * "workspace" (the workspace against its start); patch and stat are
 * copied, and a patch over DURIN_REVIEW_DIFF_MAX is cut at a line end.
 * cut: the caller already had to cut it. */
void durin_review_set_diff(struct durin_review *rv, const char *source,
                           const char *from, const char *to, const char *stat,
                           const char *patch, int cut);
/* No diff, and why ("the run's workspace is gone"). */
void durin_review_set_diff_note(struct durin_review *rv, const char *note);

/* Scrubs the diff with red (the tenant's secrets, in every form): the
 * log is scrubbed already, the workspace's files are not. NULL: nothing. */
struct durin_redactor;
void durin_review_redact_diff(struct durin_review *rv,
                              const struct durin_redactor *red);

/* The git checkpoints the log names: the commit the run started from
 * (NULL: the empty tree) and its last one. 0 when the log has none. */
int durin_review_git_range(const struct durin_review *rv, const char **from,
                           const char **to);

/* review.json's object (a new reference). */
json_t *durin_review_json(const struct durin_review *rv);

/* REVIEW.md from review.json's object, appended to out. */
int durin_review_markdown(const json_t *review, struct durin_buf *out);

/*
 * The lines of a check's output that say what failed (error, fail,
 * assert, expected, panic, traceback, ...), at most max, as
 * [{"line": N (1-based), "text": "..."}]. A line that only counts no
 * failure ("0 failed", "no errors") is not cited.
 */
json_t *durin_review_cite(const char *output, int max);

/* ---- with I/O ---- */

/* A builder for run id fed from the store: its row, every event, every
 * approval; the diff is left to the caller. */
int durin_review_load(struct durin_store *s, const char *id,
                      struct durin_review **out, struct durin_err *err);

/*
 * Sets rv's diff from the run's git checkpoints in the repository of
 * workspace, when the log names any: 1 if it did, 0 if there are none
 * (the caller diffs the workspace), or an error (the note then says it).
 */
int durin_review_git_diff(struct durin_review *rv, const char *workspace,
                          struct durin_err *err);

/* Writes the workspace's diff against its start into out (with stat:
 * git's diffstat instead), e.g. with durin_tree_diff. */
typedef int (*durin_review_diff_fn)(void *arg, int stat, FILE *out,
                                    struct durin_err *err);
/* Sets rv's diff (source "workspace") from what fn writes, the patch cut
 * at DURIN_REVIEW_DIFF_MAX; on failure the note says why, and the error
 * is returned. */
int durin_review_workspace_diff(struct durin_review *rv,
                                durin_review_diff_fn fn, void *arg,
                                struct durin_err *err);

/* review.json's text, as the file holds it (free() it). */
char *durin_review_json_text(const json_t *review);

/* Writes review.json and REVIEW.md into dir, each atomically (a temp
 * file beside it, fsynced, renamed over). */
int durin_review_write(const json_t *review, const char *dir,
                       struct durin_err *err);

#endif
