/*
 * Git checkpoints of a run's workspace (docs/internals/git.md).
 *
 * When the workspace is a git repository (or the spec asks for one), each
 * step that changed files becomes a commit on the branch durin/RUN, with
 * trailers naming the run, the step and its calls. The commit id goes into
 * the checkpoint; a restore checks the workspace against it; a fork checks
 * a step's tree out into a new workspace; the review shows a diff.
 *
 * The user's repository is only ever added to: objects, the branch
 * refs/heads/durin/RUN and its reflog. Their HEAD, index, branches and
 * config are never changed: a snapshot reads the workspace through an
 * index of its own (in memory, or in a file the caller names: the stat
 * cache that keeps a snapshot of a large workspace cheap).
 *
 * The workspace must be the root of its repository's worktree (its own
 * .git, a directory or a gitfile): a workspace inside a bigger repository
 * is refused without DURIN_GIT_CREATE, and gets a repository of its own
 * with it (the enclosing one then sees a nested repository, as git does).
 *
 * libgit2 is initialised per handle (git_libgit2_init is refcounted):
 * open takes a reference, close drops it. No global libgit2 option is set
 * (see docs/internals/git.md for the ones a host may want). Handles are
 * independent: any thread may use its own; one handle is one thread's at a
 * time. libgit2 runs no hooks and no external filter programs.
 */
#ifndef DURIN_GIT_H
#define DURIN_GIT_H

#include <stddef.h>
#include <stdint.h>

#include "durin/error.h"
#include "durin/util.h"

struct durin_git;

/* A hex object id and its NUL. */
#define DURIN_GIT_HEX 41
/* The branch prefix of every run's branch. */
#define DURIN_GIT_BRANCH_PREFIX "durin/"

enum durin_git_open_flags {
  /* No repository at the workspace: initialise one (git init: HEAD names
   * the default branch, which stays unborn; no commit, no index). */
  DURIN_GIT_CREATE = 1 << 0,
  /* Accept a .git that is a gitfile (a linked worktree, a submodule): its
   * repository lives outside the workspace. Off by default, because the
   * agent can write .git, and durin, outside the sandbox, writes where it
   * points (see "The agent can write .git" in docs/internals/git.md). */
  DURIN_GIT_ALLOW_GITFILE = 1 << 1,
};

/*
 * Opens the repository whose worktree is workspace. index_path, if not
 * NULL, is a private index file (the stat cache, e.g. runs/ID/git-index,
 * made if missing, rebuilt if unreadable; the handle's alone: a lock file
 * beside it, left by a crash, is removed); NULL keeps the private index in
 * memory only, and every snapshot then reads every file. DURIN_ENOTFOUND:
 * no repository there (the message names an enclosing one); DURIN_EACCES:
 * a repository owned by another user (libgit2's safe.directory check);
 * DURIN_EINVAL: a bare repository, a workspace that is not its root, a
 * .git that is not a directory (without DURIN_GIT_ALLOW_GITFILE), or one
 * where durin would write through a symbolic link (checked again before
 * every write: durin_git_snapshot and durin_git_advance refuse the same).
 */
int durin_git_open(const char *workspace, unsigned flags,
                   const char *index_path, struct durin_git **out,
                   struct durin_err *err);
/* Writes nothing; releases the handle's libgit2 reference. NULL is fine. */
void durin_git_close(struct durin_git *g);

/*
 * Writes "durin/<run_id>" into out; DURIN_EINVAL if run_id is not a plain
 * name ([A-Za-z0-9._-], not starting with '.' or '-', no "..", not ending
 * ".lock", at most 100 bytes) or out is too small.
 */
int durin_git_branch_name(const char *run_id, char *out, size_t len,
                          struct durin_err *err);
/* 1 if branch is "durin/" and such a run id. */
int durin_git_branch_valid(const char *branch);

/* A trailer line "Key: value" in a commit message. */
struct durin_git_trailer {
  const char *key;   /* [A-Za-z0-9-]+, e.g. "Durin-Step" */
  const char *value; /* one line, no newline */
};

struct durin_git_commit_opts {
  const char *branch; /* "durin/RUN", validated */
  /* The parent (hex). NULL: the branch's tip; without a branch, the
   * commit of the user's HEAD (so the branch starts from their work);
   * with an unborn HEAD, none (a root commit). */
  const char *parent;
  const char *message; /* the subject (and body); trailers follow it */
  const struct durin_git_trailer *trailers;
  int ntrailers;
  const char *name;  /* author and committer; NULL: "durin" */
  const char *email; /* NULL: "durin@localhost" */
  int64_t time_s;    /* author and commit time, seconds since the epoch, UTC */
  /* Make the objects and return the id, but leave the branch where it
   * is: durin_git_advance moves it once the id is durable elsewhere. */
  int no_ref;
  /*
   * The only paths (files or directories, relative to the workspace, no
   * patterns) that can differ from the parent's tree, e.g. the step's
   * calls' change sets: only they are looked at, so the snapshot costs
   * what changed, not the workspace. NULL (npaths 0): the whole
   * workspace. A change elsewhere is not seen: pass NULL whenever
   * something may have written outside the list (an uncontained call).
   */
  const char *const *paths;
  int npaths;
};

/*
 * Commits the workspace's files as they are on disk (the .gitignore rules
 * honoured, the .git directory never, links as links, the executable bit
 * as core.filemode says) on o->branch, with o->parent as its parent.
 *
 * If the tree equals the parent's: no commit, *changed = 0 and out is the
 * parent. A root commit (no parent) is always made, even of an empty tree.
 * Otherwise *changed = 1 and out is the new commit.
 *
 * Deterministic: the same parent, files, message, trailers, signature and
 * time give the same commit id, so a snapshot cut by a crash (objects
 * written, branch not moved) and made again gives the same commit and
 * moves the branch then.
 *
 * Unless o->no_ref, the branch is then set to out, compare-and-swap
 * against the tip read at the start (DURIN_EBUSY if another writer moved
 * it meanwhile; nothing is lost: the commit exists, out and *changed are
 * set, and durin_git_advance can place it). The branch may move backwards: a
 * snapshot whose parent is an older commit (a restore to an earlier checkpoint)
 * replaces the commits that no durable checkpoint holds.
 */
int durin_git_snapshot(struct durin_git *g,
                       const struct durin_git_commit_opts *o,
                       char out[DURIN_GIT_HEX], int *changed,
                       struct durin_err *err);

/*
 * Sets branch to commit (compare-and-swap against the tip it reads; the
 * same commit already there is success). DURIN_ENOTFOUND: no such commit.
 */
int durin_git_advance(struct durin_git *g, const char *branch,
                      const char *commit, struct durin_err *err);

/* The first parent of commit into out ("" for a root commit).
 * DURIN_ENOTFOUND: no such commit. */
int durin_git_parent(struct durin_git *g, const char *commit,
                     char out[DURIN_GIT_HEX], struct durin_err *err);

/*
 * Whether the workspace's files (as a snapshot would see them) equal
 * commit's tree: *same = 1 or 0. When they differ and why is not NULL, it
 * gets one line per differing path, up to 20 ("M path", "A path",
 * "D path", "T path" for a type change), then "... and N more".
 * DURIN_ENOTFOUND: the commit is not in the repository.
 */
int durin_git_matches(struct durin_git *g, const char *commit, int *same,
                      struct durin_buf *why, struct durin_err *err);

/*
 * Writes commit's tree into dir (made if missing; DURIN_EEXIST if not
 * empty): files, links and modes, as git would check them out, and no
 * .git. For a fork.
 */
int durin_git_checkout_to(struct durin_git *g, const char *commit,
                          const char *dir, struct durin_err *err);

/* One commit of a log, valid during the callback only. */
struct durin_git_log_entry {
  char id[DURIN_GIT_HEX];
  char short_id[DURIN_GIT_HEX]; /* as `git log --oneline` abbreviates it */
  const char *summary;          /* the subject line */
  const char *message;          /* the whole message */
  int64_t time_s;               /* the committer's time */
  const struct durin_git_trailer *trailers;
  int ntrailers;
  /* The durin trailers, NULL when absent. */
  const char *run, *step, *calls;
};

/* Returns 0 to go on, anything else stops the walk (and is returned). */
typedef int (*durin_git_log_fn)(void *arg, const struct durin_git_log_entry *e);

/*
 * Walks branch from its tip along first parents, newest first, at most n
 * commits (n <= 0: all). DURIN_ENOTFOUND: no such branch.
 */
int durin_git_log(struct durin_git *g, const char *branch, int n,
                  durin_git_log_fn fn, void *arg, struct durin_err *err);

/* `git log --oneline -n BRANCH` into out ("abc1234 subject\n" each), for
 * the boot files. */
int durin_git_log_oneline(struct durin_git *g, const char *branch, int n,
                          struct durin_buf *out, struct durin_err *err);

struct durin_git_diffstat {
  size_t files;
  size_t insertions;
  size_t deletions;
};

/*
 * The change from commit from (NULL: the empty tree) to commit to: its
 * stat, and when patch is not NULL, the unified diff (`git diff
 * --no-renames` format, binary files as "Binary files differ"), appended;
 * DURIN_ETOOBIG when it does not fit patch's cap (the stat is still set).
 */
int durin_git_diff(struct durin_git *g, const char *from, const char *to,
                   struct durin_git_diffstat *st, struct durin_buf *patch,
                   struct durin_err *err);

/*
 * Pushes branch ("durin/RUN") of the repository at workspace to remote (a
 * URL or a repository's path) as remote_branch (NULL: the same name), not
 * forced; commit gets the branch's tip. The remote comes from the URL
 * alone, never from the repository's config (lib/git/push.c). Blocking,
 * and over the network for a remote URL: call it off any event loop.
 * DURIN_ENOTFOUND: no repository or no such branch; DURIN_EIO: the push
 * failed or was refused (the message says which and why).
 */
int durin_git_push(const char *workspace, const char *branch,
                   const char *remote, const char *remote_branch,
                   char commit[DURIN_GIT_HEX], struct durin_err *err);

#endif
