/*
 * A run's git checkpoints, as the worker keeps them (internal; lib/git
 * does the git, docs/internals/git.md says how it is wired):
 *
 *   restore:  open the workspace's repository (made if missing), its
 *             private index beside the workspace (runs/ID/git-index);
 *             the branch is set to the checkpoint's commit if it lags (a
 *             crash between the step's commit and the branch's move), and
 *             the workspace is checked against that commit when no step
 *             is open
 *   a step:   DURIN_ACT_SNAPSHOT makes the commit's objects (no_ref), on
 *             the thread pool; its id goes into the step's commit
 *   durable:  the branch durin/RUN is moved to it
 *
 * Blocking (libgit2 writes files): the thread pool, the store thread at
 * restore, or the loop when it drives one run. A handle is one thread's
 * at a time.
 */
#ifndef DURIN_WORKER_GIT_H
#define DURIN_WORKER_GIT_H

#include "durin/git.h"
#include "durin/harness.h"
#include "durin/spec.h"

struct wgit {
  struct durin_git *g;
  char run_id[32];
  char branch[160];
  /* A snapshot's commit, to set the branch to once the step is durable
   * ("" when there is none). */
  char pending[DURIN_GIT_HEX];
  /* The last snapshot's answer for the harness (pointing into this). */
  struct durin_snapshot_result res;
  char commit[DURIN_GIT_HEX], parent[DURIN_GIT_HEX];
  struct durin_err err;
};

/* Opens the repository of spec's workspace for run_id (made when there is
 * none). */
int durin__wgit_open(const struct durin_spec *spec, const char *run_id,
                     struct wgit **out, struct durin_err *err);
void durin__wgit_close(struct wgit *w);

/* Makes the commit q asks for, objects only; the answer in w->res. */
void durin__wgit_snapshot(struct wgit *w, const struct durin_snapshot_req *q);

/* The step is durable: the branch goes to the snapshot's commit. */
int durin__wgit_advance(struct wgit *w, struct durin_err *err);

/*
 * After h was restored (step_open: it holds an unfinished step): the
 * branch set to the checkpoint's commit, and, between steps, the
 * workspace checked against it. What differs is logged with the next
 * commit (workspace_mismatch) and goes into the next snapshot; a commit
 * gone from the repository too (workspace_commit_lost). *notice (malloc'd,
 * or NULL) says so for the operator.
 */
void durin__wgit_restore(struct wgit *w, struct durin_harness *h, int step_open,
                         char **notice);

/*
 * The boot files (lib/worker/boot.c): the spec's progress files found in
 * the workspace (each cut at DURIN_BOOT_FILE_MAX) and, with w, the last
 * lines of `git log --oneline` of the run's branch, handed to h
 * (durin_harness_set_boot). Nothing found: nothing changes.
 */
#define DURIN_BOOT_FILE_MAX (8 * 1024)
void durin__boot_load(const struct durin_spec *spec, struct wgit *w,
                      struct durin_harness *h);

#endif
