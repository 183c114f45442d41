/*
 * Delivering a run's branch: a push of refs/heads/durin/RUN from the
 * run's workspace repository to a remote the spec names (a URL, or the
 * path of a repository: a local bare one needs no network).
 *
 * The remote is made in memory from the spec's URL alone: nothing the
 * agent may have written in the workspace's .git/config (remotes,
 * url.*.insteadOf, push options) takes part. The push is not forced: a
 * remote branch that moved elsewhere refuses it, and the error says so.
 */
#include <stdio.h>
#include <string.h>

#include <git2.h>

#include "durin/git.h"

struct push_status {
  char msg[400]; /* the remote's refusal of the ref, if any */
};

static int on_ref_status(const char *ref, const char *status, void *data)
{
  struct push_status *ps = data;

  if (status && !ps->msg[0])
    snprintf(ps->msg, sizeof(ps->msg), "the remote refused %s: %s", ref,
             status);
  return 0;
}

static int git_failed(struct durin_err *err, const char *what,
                      const char *remote)
{
  const git_error *e = git_error_last();

  return durin_err_set(err, DURIN_EIO, "%s '%s': %s", what, remote,
                       e && e->message ? e->message : "unknown error");
}

int durin_git_push(const char *workspace, const char *branch,
                   const char *remote, const char *remote_branch,
                   char commit[DURIN_GIT_HEX], struct durin_err *err)
{
  git_remote_create_options co = GIT_REMOTE_CREATE_OPTIONS_INIT;
  git_push_options po = GIT_PUSH_OPTIONS_INIT;
  git_repository *repo = NULL;
  git_remote *rem = NULL;
  git_reference *ref = NULL;
  struct push_status ps = { { 0 } };
  char local[300], spec[700];
  char *specs[1] = { spec };
  git_strarray refspecs = { specs, 1 };
  int r = 0;

  commit[0] = 0;
  if (!durin_git_branch_valid(branch))
    return durin_err_set(err, DURIN_EINVAL, "'%s' is not a run's branch",
                         branch);
  snprintf(local, sizeof(local), "refs/heads/%s", branch);
  snprintf(spec, sizeof(spec), "%s:refs/heads/%s", local,
           remote_branch ? remote_branch : branch);
  git_libgit2_init();
  if (git_repository_open_ext(&repo, workspace, GIT_REPOSITORY_OPEN_NO_SEARCH,
                              NULL) < 0) {
    r = durin_err_set(err, DURIN_ENOTFOUND,
                      "the run's workspace '%s' is not a git repository, so "
                      "there is no branch to deliver (\"git\": true in the "
                      "spec gives a run one)",
                      workspace);
    goto out;
  }
  if (git_reference_lookup(&ref, repo, local) < 0) {
    r = durin_err_set(err, DURIN_ENOTFOUND,
                      "the run's workspace has no branch '%s' to deliver",
                      branch);
    goto out;
  }
  git_oid_tostr(commit, DURIN_GIT_HEX, git_reference_target(ref));
  co.repository = repo;
  co.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF |
             GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
  if (git_remote_create_with_opts(&rem, remote, &co) < 0) {
    r = git_failed(err, "cannot use the remote", remote);
    goto out;
  }
  po.callbacks.push_update_reference = on_ref_status;
  po.callbacks.payload = &ps;
  if (git_remote_push(rem, &refspecs, &po) < 0)
    r = git_failed(err, "cannot push to", remote);
  else if (ps.msg[0])
    r = durin_err_set(err, DURIN_EIO, "%s", ps.msg);
out:
  git_reference_free(ref);
  git_remote_free(rem);
  git_repository_free(repo);
  git_libgit2_shutdown();
  return r;
}
