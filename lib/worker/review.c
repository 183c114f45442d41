/*
 * The end of a run, after its last commit: delivery and the review
 * artifact (lib/worker/review.h says which stage runs where).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "durin/git.h"
#include "durin/redact.h"
#include "durin/review.h"
#include "durin/util.h"
#include "worker/review.h"

struct durin__ending {
  char id[32];
  enum durin_run_status status;
  char *workspace;       /* the run's own (runs/ID/workspace) */
  char *remote, *branch; /* remote NULL: no delivery now */
  int on_template;
  /* The push's result, for the log. */
  const char *ev_type;
  json_t *ev_data;
  struct durin_review *rv;
  struct durin_redactor *redact; /* the run's, handed over: owned */
};

static char *dup0(const char *s)
{
  return s ? strdup(s) : NULL;
}

struct durin__ending *durin__ending_new(const char *run_id,
                                        enum durin_run_status status,
                                        const struct durin_spec *spec,
                                        struct durin_redactor *red)
{
  struct durin__ending *e = calloc(1, sizeof(*e));

  if (!e)
    return NULL;
  snprintf(e->id, sizeof(e->id), "%s", run_id);
  e->status = status;
  e->redact = red;
  if (spec) {
    e->workspace = dup0(spec->workspace);
    e->on_template = spec->sandbox.template != NULL;
    if (spec->deliver.remote && (spec->deliver.on & (1u << status))) {
      e->remote = dup0(spec->deliver.remote);
      e->branch = dup0(spec->deliver.branch);
    }
  }
  return e;
}

void durin__ending_free(struct durin__ending *e)
{
  if (!e)
    return;
  free(e->workspace);
  free(e->remote);
  free(e->branch);
  json_decref(e->ev_data);
  durin_review_free(e->rv);
  durin_redactor_free(e->redact);
  free(e);
}

const char *durin__ending_run(const struct durin__ending *e)
{
  return e->id;
}

void durin__ending_push(struct durin__ending *e)
{
  struct durin_err err = { 0 };
  char branch[160], commit[DURIN_GIT_HEX];
  const char *to;

  if (!e->remote || !e->workspace)
    return;
  if (durin_git_branch_name(e->id, branch, sizeof(branch), &err) ||
      durin_git_push(e->workspace, branch, e->remote, e->branch, commit,
                     &err)) {
    e->ev_type = "delivery_failed";
    e->ev_data = json_pack("{s:s,s:s,s:s}", "remote", e->remote, "branch",
                           e->branch ? e->branch : branch, "error", err.msg);
    return;
  }
  to = e->branch ? e->branch : branch;
  e->ev_type = "delivered";
  e->ev_data = json_pack("{s:s,s:s,s:s,s:s}", "remote", e->remote, "branch", to,
                         "local_branch", branch, "commit", commit);
}

int durin__ending_load(struct durin__ending *e, struct durin_store *s,
                       struct durin_err *err)
{
  struct durin_err eerr = { 0 };
  int r = 0;

  /* The delivery's event goes in even if the review cannot be made. */
  if (e->ev_type && e->ev_data)
    r = durin_store_control_event(s, e->id, e->ev_type, e->ev_data,
                                  durin_now_ms(), &eerr);
  durin_review_free(e->rv);
  e->rv = NULL;
  if (durin_review_load(s, e->id, &e->rv, err))
    return err->code ? err->code : DURIN_ESTORE;
  if (r)
    *err = eerr;
  return r;
}

static int tree_diff(void *arg, int stat, FILE *out, struct durin_err *err)
{
  const char *ws = arg;
  char base[PATH_MAX + 8], *slash;

  snprintf(base, sizeof(base), "%s", ws);
  if ((slash = strrchr(base, '/')))
    snprintf(slash, sizeof(base) - (size_t)(slash - base), "/base");
  return durin_tree_diff(base, ws, stat, out, err);
}

int durin__ending_write(struct durin__ending *e, struct durin_err *err)
{
  char dir[PATH_MAX], *slash;
  json_t *j;
  int r;

  if (!e->rv || !e->workspace)
    return durin_err_set(err, DURIN_ESTATE, "nothing to write");
  snprintf(dir, sizeof(dir), "%s", e->workspace);
  if (!(slash = strrchr(dir, '/')) || slash == dir)
    return durin_err_set(err, DURIN_EINVAL,
                         "the run's workspace '%s' has no directory of its own",
                         e->workspace);
  *slash = 0;
  /* A diff that fails is said in the review, which is written anyway. */
  r = durin_review_git_diff(e->rv, e->workspace, err);
  if (r == 0 && e->on_template)
    durin_review_set_diff_note(e->rv,
                               "the run is on a template: 'durin review' "
                               "or 'durin diff' mounts its views to diff it");
  else if (r == 0)
    durin_review_workspace_diff(e->rv, tree_diff, e->workspace, err);
  memset(err, 0, sizeof(*err));
  durin_review_redact_diff(e->rv, e->redact);
  if (!(j = durin_review_json(e->rv)))
    return durin_err_set(err, DURIN_EIO, "cannot build the review");
  r = durin_review_write(j, dir, err);
  json_decref(j);
  return r;
}
