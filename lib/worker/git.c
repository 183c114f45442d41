/*
 * A run's git checkpoints in the worker: open at restore, a snapshot per
 * step that wrote files, the branch moved once the step is durable. See
 * worker/git.h for the sequence and docs/internals/git.md for why.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/git.h"

int durin__wgit_open(const struct durin_spec *spec, const char *run_id,
                     struct wgit **out, struct durin_err *err)
{
  struct wgit *w = calloc(1, sizeof(*w));
  char index[PATH_MAX + 32];
  const char *slash = strrchr(spec->workspace, '/');
  int rc;

  if (!w)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  snprintf(w->run_id, sizeof(w->run_id), "%s", run_id);
  /* The stat cache lives beside the workspace (runs/ID/git-index), where
   * the agent cannot write it. */
  snprintf(index, sizeof(index), "%.*s/git-index",
           slash ? (int)(slash - spec->workspace) : 1,
           slash ? spec->workspace : ".");
  if ((rc = durin_git_branch_name(run_id, w->branch, sizeof(w->branch), err)) ||
      (rc = durin_git_open(spec->workspace, DURIN_GIT_CREATE, index, &w->g,
                           err))) {
    free(w);
    return rc;
  }
  *out = w;
  return 0;
}

void durin__wgit_close(struct wgit *w)
{
  if (!w)
    return;
  durin_git_close(w->g);
  free(w);
}

void durin__wgit_snapshot(struct wgit *w, const struct durin_snapshot_req *q)
{
  struct durin_git_trailer tr[3];
  struct durin_git_commit_opts o;
  struct durin_git_diffstat st;
  char step[32];
  int changed = 0, rc;

  memset(&w->res, 0, sizeof(w->res));
  memset(&w->err, 0, sizeof(w->err));
  memset(&o, 0, sizeof(o));
  w->commit[0] = w->parent[0] = '\0';
  snprintf(step, sizeof(step), "%lld", (long long)q->step);
  tr[0] = (struct durin_git_trailer){ "Durin-Run", w->run_id };
  tr[1] = (struct durin_git_trailer){ "Durin-Step", step };
  tr[2] = (struct durin_git_trailer){ "Durin-Calls", q->calls };
  o.branch = w->branch;
  o.parent = q->parent;
  o.message = q->message;
  o.trailers = tr;
  o.ntrailers = q->calls && *q->calls ? 3 : 2;
  o.time_s = q->time_s;
  o.no_ref = 1;
  o.paths = q->paths;
  o.npaths = q->npaths;
  rc = durin_git_snapshot(w->g, &o, w->commit, &changed, &w->err);
  if (!rc && changed &&
      !(rc = durin_git_parent(w->g, w->commit, w->parent, &w->err))) {
    memset(&st, 0, sizeof(st));
    rc = durin_git_diff(w->g, w->parent[0] ? w->parent : NULL, w->commit, &st,
                        NULL, &w->err);
    w->res.files = (int64_t)st.files;
    w->res.insertions = (int64_t)st.insertions;
    w->res.deletions = (int64_t)st.deletions;
  }
  if (rc) {
    w->res.error = w->err.msg;
    return;
  }
  w->res.commit = w->commit;
  w->res.parent = w->parent[0] ? w->parent : NULL;
  w->res.changed = changed;
  snprintf(w->pending, sizeof(w->pending), "%s", w->commit);
}

int durin__wgit_advance(struct wgit *w, struct durin_err *err)
{
  int rc;

  if (!w->pending[0])
    return 0;
  rc = durin_git_advance(w->g, w->branch, w->pending, err);
  w->pending[0] = '\0';
  return rc;
}

/* Up to 20 "M path" lines as an array. */
static json_t *why_lines(const char *why)
{
  json_t *a = json_array();
  const char *p = why;

  while (p && *p) {
    size_t n = strcspn(p, "\n");

    if (n)
      json_array_append_new(a, json_stringn(p, n));
    p += n;
    if (*p)
      p++;
  }
  return a;
}

void durin__wgit_restore(struct wgit *w, struct durin_harness *h, int step_open,
                         char **notice)
{
  const char *x = durin_harness_git_commit(h);
  struct durin_err err = { 0 };
  struct durin_buf why;
  int same = 1, rc;

  *notice = NULL;
  if (!x)
    return;
  durin_buf_init(&why, 16 * 1024);
  /* An open step changed the workspace since (its calls' merged layers):
   * the step's own snapshot takes them. */
  rc = step_open ? durin_git_parent(w->g, x, w->parent, &err) :
                   durin_git_matches(w->g, x, &same, &why, &err);
  if (rc == DURIN_ENOTFOUND) {
    /* Lost with a machine crash (libgit2 does not fsync by default): the
     * next snapshot starts from the branch's tip. */
    durin_harness_note(h, "workspace_commit_lost",
                       json_pack("{s:s,s:s}", "commit", x, "error", err.msg));
    if (asprintf(notice,
                 "the checkpoint's commit %.12s is not in the workspace's "
                 "repository; the next commit starts from the branch's tip",
                 x) < 0)
      *notice = NULL;
    durin_harness_git_reset(h, 1);
    goto out;
  }
  if (rc) {
    durin_harness_note(h, "workspace_mismatch",
                       json_pack("{s:s,s:s}", "commit", x, "error", err.msg));
    if (asprintf(notice,
                 "cannot check the workspace against commit %.12s: %s; the "
                 "next commit takes the whole workspace",
                 x, err.msg) < 0)
      *notice = NULL;
    durin_harness_git_reset(h, 0);
  } else if (!same) {
    /* Someone changed the files between steps (a person while the run
     * was paused, say). Kept: what differs goes into the next commit,
     * and the log says what it was. */
    durin_harness_note(
        h, "workspace_mismatch",
        json_pack("{s:s,s:o}", "commit", x, "paths", why_lines(why.buf)));
    if (asprintf(notice,
                 "the workspace differs from its checkpoint's commit %.12s "
                 "(%s); kept, the next commit takes the difference",
                 x, why.buf) < 0)
      *notice = NULL;
    durin_harness_git_reset(h, 0);
  }
  /* A crash between the step's commit and the branch's move leaves the
   * branch one commit behind: the checkpoint is the truth. */
  snprintf(w->pending, sizeof(w->pending), "%s", x);
  if (durin__wgit_advance(w, &err) && !*notice &&
      asprintf(notice, "cannot set branch %s to %.12s: %s", w->branch, x,
               err.msg) < 0)
    *notice = NULL;
out:
  durin_buf_release(&why);
}
