/*
 * Git checkpoints of the workspace (include/durin/git.h,
 * docs/internals/git.md).
 *
 * A snapshot never goes near the user's index: the handle owns an index of
 * its own (git_repository_set_index swaps it in for this handle only, in
 * memory; the user's .git/index file is never read or written). That index
 * holds the tree of the last snapshot (its "base") with each file's stat
 * data, so a snapshot is a diff of the index against the workdir (files
 * whose stat data is unchanged are not read: git's stat cache, with git's
 * racy-timestamp rule), the changed paths added to or removed from the
 * index, and a write of the trees whose paths changed (the index's tree
 * cache keeps the others). Only with a private index file does the stat
 * data survive a snapshot: libgit2 judges an entry racy against the file's
 * timestamp, and an index that was never written has none, so the
 * in-memory index is cleared before each snapshot and every file is read.
 *
 * Why the ref update is a compare-and-swap: two writers of one run (a
 * worker that lost its lease, its successor) may snapshot at once; the
 * one whose expected tip is stale fails instead of dropping the other's
 * commit. The commit itself is a pure function of its inputs, so a writer
 * that crashed between the object and the ref makes the same one again.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <git2.h>
#include <git2/sys/repository.h>

#include "durin/git.h"
#include "git/git-test.h"

void (*durin__git_before_ref_update)(const char *ref);

struct durin_git {
  git_repository *repo;
  int own_gitdir;  /* .git is the workspace's own directory: checked */
  git_index *idx;  /* the private index, owned by repo for this handle */
  int idx_on_disk; /* index_path given: keep stat data, write it back */
  git_oid base;    /* the tree idx holds, when have_base */
  int have_base;
  char *workdir; /* with its trailing slash, as libgit2 gives it */
};

/* The durin trailers' keys. */
#define TR_RUN   "Durin-Run"
#define TR_STEP  "Durin-Step"
#define TR_CALLS "Durin-Calls"

/* Lines of differing paths durin_git_matches names. */
#define MATCH_LINES 20

static int gcode(int rc)
{
  switch (rc) {
  case GIT_ENOTFOUND:
    return DURIN_ENOTFOUND;
  case GIT_EEXISTS:
    return DURIN_EEXIST;
  case GIT_EMODIFIED:
  case GIT_ELOCKED:
    return DURIN_EBUSY;
  case GIT_EOWNER:
    return DURIN_EACCES;
  case GIT_EINVALIDSPEC:
  case GIT_EINVALID:
  case GIT_EBAREREPO:
    return DURIN_EINVAL;
  default:
    return DURIN_EIO;
  }
}

/* Sets err from libgit2's last error: "WHAT: libgit2's message". */
static int gfail(struct durin_err *err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int gfail(struct durin_err *err, int rc, const char *fmt, ...)
{
  const git_error *e = git_error_last();
  char what[256];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);
  return durin_err_set(err, gcode(rc), "%s: %s", what,
                       e && e->message ? e->message : "libgit2 error");
}

static int run_id_valid(const char *id, size_t n)
{
  size_t i;

  if (n == 0 || n > 100 || id[0] == '.' || id[0] == '-')
    return 0;
  for (i = 0; i < n; i++) {
    char c = id[i];

    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return 0;
    if (c == '.' && i + 1 < n && id[i + 1] == '.')
      return 0;
  }
  return !(n >= 5 && !memcmp(id + n - 5, ".lock", 5));
}

int durin_git_branch_valid(const char *branch)
{
  size_t p = strlen(DURIN_GIT_BRANCH_PREFIX);

  return branch && !strncmp(branch, DURIN_GIT_BRANCH_PREFIX, p) &&
         run_id_valid(branch + p, strlen(branch + p));
}

int durin_git_branch_name(const char *run_id, char *out, size_t len,
                          struct durin_err *err)
{
  if (!run_id || !run_id_valid(run_id, strlen(run_id)))
    return durin_err_set(err, DURIN_EINVAL,
                         "run id '%s' cannot name a git branch",
                         run_id ? run_id : "");
  if ((size_t)snprintf(out, len, "%s%s", DURIN_GIT_BRANCH_PREFIX, run_id) >=
      len)
    return durin_err_set(err, DURIN_EINVAL, "branch name too long");
  return 0;
}

static int branch_ref(const char *branch, char *ref, size_t len,
                      struct durin_err *err)
{
  if (!durin_git_branch_valid(branch))
    return durin_err_set(err, DURIN_EINVAL,
                         "'%s' is not a durin branch (durin/RUN)",
                         branch ? branch : "");
  snprintf(ref, len, "refs/heads/%s", branch);
  return 0;
}

static int parse_oid(const char *hex, git_oid *oid, struct durin_err *err)
{
  if (!hex || strlen(hex) != 40 || git_oid_fromstr(oid, hex) < 0)
    return durin_err_set(err, DURIN_EINVAL, "'%s' is not a commit id",
                         hex ? hex : "");
  return 0;
}

static int lookup_commit(struct durin_git *g, const char *hex, git_commit **c,
                         struct durin_err *err)
{
  git_oid oid;
  int rc;

  if ((rc = parse_oid(hex, &oid, err)) < 0)
    return rc;
  if ((rc = git_commit_lookup(c, g->repo, &oid)) < 0)
    return gfail(err, rc, "cannot find commit %s", hex);
  return 0;
}

/*
 * The agent can write .git between steps, and durin writes into it from
 * outside the sandbox: a link planted where libgit2 makes a directory or
 * appends to a file (a reflog) would lead durin's write outside the
 * workspace. libgit2 follows links; so before each write every directory
 * it may write in, and every file it may append to, must be what it seems
 * (S_ISDIR / S_ISREG, not a link) or absent. Between steps nothing runs in
 * the sandbox (no call outlives its process), so the check holds for the
 * write that follows. New files (objects, lock files) are made with
 * O_EXCL and renamed into place, which replaces a link, never follows it.
 */
static int no_link(int dfd, const char *path, int want_dir, int must,
                   const char *ws, struct durin_err *err)
{
  struct stat st;

  if (fstatat(dfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT && !must)
      return 0;
    return durin_err_set(err, errno == ENOENT ? DURIN_EINVAL : DURIN_EIO,
                         "cannot check '%s/%s': %s", ws, path, strerror(errno));
  }
  if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
    return durin_err_set(err, DURIN_EINVAL,
                         "'%s/%s' is not a %s: durin does not write into a "
                         "repository through links",
                         ws, path, want_dir ? "directory" : "regular file");
  return 0;
}

static int check_gitdir(struct durin_git *g, const char *ref,
                        struct durin_err *err)
{
  static const char *const dirs[] = { ".git/objects",
                                      ".git/refs",
                                      ".git/refs/heads",
                                      ".git/logs",
                                      ".git/logs/refs",
                                      ".git/logs/refs/heads",
                                      NULL };
  char path[512], ws[PATH_MAX];
  const char *p;
  int dfd, i, rc = 0;

  if (!g->own_gitdir)
    return 0;
  snprintf(ws, sizeof(ws), "%s", g->workdir);
  ws[strlen(ws) - 1] = '\0';
  if ((dfd = open(g->workdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
    return durin_err_set(err, DURIN_EIO, "cannot open '%s': %s", ws,
                         strerror(errno));
  if ((rc = no_link(dfd, ".git", 1, 1, ws, err)) < 0 ||
      (rc = no_link(dfd, ".git/objects", 1, 1, ws, err)) < 0)
    goto out;
  for (i = 0; dirs[i]; i++)
    if ((rc = no_link(dfd, dirs[i], 1, 0, ws, err)) < 0)
      goto out;
  for (i = 0; i < 256; i++) {
    snprintf(path, sizeof(path), ".git/objects/%02x", i);
    if ((rc = no_link(dfd, path, 1, 0, ws, err)) < 0)
      goto out;
  }
  /* Each directory of refs/heads/durin/RUN and logs/refs/heads/durin/RUN,
   * and the two files. */
  if (ref) {
    for (p = strchr(ref + strlen("refs/heads/"), '/'); p;
         p = strchr(p + 1, '/')) {
      snprintf(path, sizeof(path), ".git/%.*s", (int)(p - ref), ref);
      if ((rc = no_link(dfd, path, 1, 0, ws, err)) < 0)
        goto out;
      snprintf(path, sizeof(path), ".git/logs/%.*s", (int)(p - ref), ref);
      if ((rc = no_link(dfd, path, 1, 0, ws, err)) < 0)
        goto out;
    }
    snprintf(path, sizeof(path), ".git/%s", ref);
    if ((rc = no_link(dfd, path, 0, 0, ws, err)) < 0)
      goto out;
    snprintf(path, sizeof(path), ".git/logs/%s", ref);
    if ((rc = no_link(dfd, path, 0, 0, ws, err)) < 0)
      goto out;
  }
out:
  close(dfd);
  return rc;
}

/* Where the repository's files are: its own .git, unless allowed. */
static int check_layout(struct durin_git *g, const char *real, unsigned flags,
                        struct durin_err *err)
{
  char want[PATH_MAX], got[PATH_MAX], common[PATH_MAX];
  struct stat st;

  snprintf(want, sizeof(want), "%s/.git", real);
  if (lstat(want, &st) == 0 && S_ISDIR(st.st_mode)) {
    /* Its own directory, and nothing in it (a commondir file) sends
     * libgit2 elsewhere. */
    if (!realpath(git_repository_path(g->repo), got) ||
        !realpath(git_repository_commondir(g->repo), common) ||
        strcmp(got, want) || strcmp(common, want))
      return durin_err_set(err, DURIN_EINVAL,
                           "the repository of '%s' keeps its files outside "
                           "its .git directory",
                           real);
    g->own_gitdir = 1;
    return 0;
  }
  if (!(flags & DURIN_GIT_ALLOW_GITFILE))
    return durin_err_set(err, DURIN_EINVAL,
                         "'%s' is not a directory (a linked worktree or a "
                         "submodule?): durin checkpoints only a repository "
                         "whose .git is in the workspace",
                         want);
  return 0;
}

/* The private index: from index_path when it reads, else empty. */
static int open_index(struct durin_git *g, const char *index_path,
                      struct durin_err *err)
{
  char lock[PATH_MAX];
  int rc;

  if (!index_path) {
    if ((rc = git_index_new(&g->idx)) < 0)
      return gfail(err, rc, "cannot make an index");
    return 0;
  }
  /* The file is this handle's alone (the run's owner's): a lock file
   * beside it is one a crashed writer left, and would fail every write. */
  if ((size_t)snprintf(lock, sizeof(lock), "%s.lock", index_path) >=
      sizeof(lock))
    return durin_err_set(err, DURIN_EINVAL, "index path too long");
  if (unlink(lock) < 0 && errno != ENOENT)
    return durin_err_set(err, DURIN_EIO, "cannot remove '%s': %s", lock,
                         strerror(errno));
  if (git_index_open(&g->idx, index_path) < 0) {
    /* A cache: one that does not read is rebuilt. */
    if (unlink(index_path) < 0 && errno != ENOENT)
      return durin_err_set(err, DURIN_EIO, "cannot remove '%s': %s", index_path,
                           strerror(errno));
    if ((rc = git_index_open(&g->idx, index_path)) < 0)
      return gfail(err, rc, "cannot open index '%s'", index_path);
  }
  g->idx_on_disk = 1;
  return 0;
}

int durin_git_open(const char *workspace, unsigned flags,
                   const char *index_path, struct durin_git **out,
                   struct durin_err *err)
{
  struct durin_git *g = NULL;
  char real[PATH_MAX], *wd = NULL;
  git_buf outer = { 0 };
  size_t n;
  int rc;

  *out = NULL;
  if (!realpath(workspace, real))
    return durin_err_set(err, errno == ENOENT ? DURIN_ENOTFOUND : DURIN_EIO,
                         "cannot open workspace '%s': %s", workspace,
                         strerror(errno));
  if (git_libgit2_init() < 0)
    return durin_err_set(err, DURIN_EIO, "cannot initialise libgit2");
  if (!(g = calloc(1, sizeof(*g)))) {
    rc = durin_err_set(err, DURIN_ENOMEM, "out of memory");
    goto out;
  }
  /* NO_SEARCH: the workspace's own .git only, never a parent's. */
  rc = git_repository_open_ext(&g->repo, real, GIT_REPOSITORY_OPEN_NO_SEARCH,
                               NULL);
  if (rc == GIT_ENOTFOUND && (flags & DURIN_GIT_CREATE)) {
    git_repository_init_options io = GIT_REPOSITORY_INIT_OPTIONS_INIT;

    io.flags = GIT_REPOSITORY_INIT_NO_REINIT;
    if ((rc = git_repository_init_ext(&g->repo, real, &io)) < 0) {
      rc = gfail(err, rc, "cannot make a git repository in '%s'", real);
      goto out;
    }
  } else if (rc == GIT_ENOTFOUND) {
    if (git_repository_discover(&outer, real, 0, NULL) == 0)
      rc = durin_err_set(err, DURIN_ENOTFOUND,
                         "workspace '%s' is not the root of a git "
                         "repository: it is inside '%s' (durin checkpoints "
                         "a repository whose worktree is the workspace)",
                         real, outer.ptr);
    else
      rc = durin_err_set(err, DURIN_ENOTFOUND,
                         "workspace '%s' is not a git repository", real);
    goto out;
  } else if (rc < 0) {
    rc = gfail(err, rc, "cannot open the git repository of '%s'", real);
    goto out;
  }
  if (git_repository_is_bare(g->repo)) {
    rc = durin_err_set(err, DURIN_EINVAL, "'%s' is a bare repository", real);
    goto out;
  }
  n = strlen(real);
  wd = strdup(git_repository_workdir(g->repo));
  if (!wd) {
    rc = durin_err_set(err, DURIN_ENOMEM, "out of memory");
    goto out;
  }
  if (strncmp(wd, real, n) || strcmp(wd + n, "/")) {
    rc = durin_err_set(err, DURIN_EINVAL,
                       "the worktree of the repository at '%s' is '%s', not "
                       "the workspace",
                       real, wd);
    goto out;
  }
  g->workdir = wd;
  wd = NULL;
  if ((rc = check_layout(g, real, flags, err)) < 0 ||
      (rc = check_gitdir(g, NULL, err)) < 0)
    goto out;
  if ((rc = open_index(g, index_path, err)) < 0)
    goto out;
  /* For this handle only: the user's index stays where it is. */
  if ((rc = git_repository_set_index(g->repo, g->idx)) < 0) {
    rc = gfail(err, rc, "cannot use a private index");
    goto out;
  }
  *out = g;
  g = NULL;
  rc = 0;
out:
  git_buf_dispose(&outer);
  free(wd);
  if (g)
    durin_git_close(g);
  else if (rc < 0 && !*out)
    git_libgit2_shutdown();
  return rc;
}

void durin_git_close(struct durin_git *g)
{
  if (!g)
    return;
  git_index_free(g->idx);
  git_repository_free(g->repo);
  free(g->workdir);
  free(g);
  git_libgit2_shutdown();
}

/*
 * Brings the private index to the tree of commit c (NULL: the empty tree)
 * and then to the workspace: after it, the index is what a snapshot
 * commits. The paths that differ from c's tree are passed to note (when
 * not NULL) as "X path".
 */
typedef int (*note_fn)(void *arg, char status, const char *path);

struct apply_ctx {
  git_index *idx;
  const char *workdir;
  note_fn note;
  void *arg;
};

static char delta_char(git_delta_t s)
{
  switch (s) {
  case GIT_DELTA_ADDED:
  case GIT_DELTA_UNTRACKED:
    return 'A';
  case GIT_DELTA_DELETED:
    return 'D';
  case GIT_DELTA_TYPECHANGE:
    return 'T';
  default:
    return 'M';
  }
}

/*
 * An untracked directory the diff reports whole ("sub/") is a repository
 * the agent made. With a commit it is recorded as git add records one, a
 * gitlink to its HEAD; without one (where git add would fail) it is left
 * out, so an agent's `git init` never stops the checkpoints. Done here
 * rather than by git_index_add_bypath, whose path for this leaks in 1.5.
 */
static int add_nested(struct apply_ctx *a, const char *path, size_t n)
{
  git_index_entry e;
  git_repository *sub = NULL;
  git_oid head;
  char full[PATH_MAX], rel[PATH_MAX];
  int rc;

  if (n - 1 >= sizeof(rel) ||
      (size_t)snprintf(full, sizeof(full), "%s%.*s", a->workdir, (int)(n - 1),
                       path) >= sizeof(full))
    return 0;
  memcpy(rel, path, n - 1);
  rel[n - 1] = '\0';
  rc = git_repository_open_ext(&sub, full, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
  if (rc == 0)
    rc = git_reference_name_to_id(&head, sub, "HEAD");
  git_repository_free(sub);
  if (rc < 0) {
    git_error_clear();
    return 0;
  }
  memset(&e, 0, sizeof(e));
  e.mode = GIT_FILEMODE_COMMIT;
  e.path = rel;
  git_oid_cpy(&e.id, &head);
  return git_index_add(a->idx, &e);
}

static int apply_delta(const git_diff_delta *d, float progress, void *arg)
{
  struct apply_ctx *a = arg;
  const char *path = d->new_file.path;
  size_t n = strlen(path);
  int rc;

  (void)progress;
  /* As git add -A: a path gone from the workdir leaves the index. */
  if (!(d->new_file.flags & GIT_DIFF_FLAG_EXISTS)) {
    path = d->old_file.path;
    rc = git_index_remove_bypath(a->idx, path);
  } else if (n > 1 && path[n - 1] == '/') {
    rc = add_nested(a, path, n);
  } else {
    rc = git_index_add_bypath(a->idx, path);
  }
  if (rc < 0)
    return rc;
  return a->note ? a->note(a->arg, delta_char(d->status), path) : 0;
}

static int sync_index(struct durin_git *g, git_commit *c,
                      const char *const *paths, int npaths, note_fn note,
                      void *arg, struct durin_err *err)
{
  git_diff_options o = GIT_DIFF_OPTIONS_INIT;
  struct apply_ctx a = { g->idx, g->workdir, note, arg };
  git_diff *diff = NULL;
  git_tree *tree = NULL;
  const git_oid *tid = c ? git_commit_tree_id(c) : NULL;
  int rc;

  if (!g->idx_on_disk) {
    /* No timestamp to judge racy entries against: keep no stat data. */
    if ((rc = git_index_clear(g->idx)) < 0)
      goto fail;
    g->have_base = 0;
  }
  if (!tid && !(g->have_base && git_oid_is_zero(&g->base))) {
    if ((rc = git_index_clear(g->idx)) < 0)
      goto fail;
  } else if (tid && !(g->have_base && git_oid_equal(&g->base, tid))) {
    /* Entries whose id and mode stay keep their stat data. */
    if ((rc = git_commit_tree(&tree, c)) < 0 ||
        (rc = git_index_read_tree(g->idx, tree)) < 0)
      goto fail;
  }
  if (tid)
    git_oid_cpy(&g->base, tid);
  else
    memset(&g->base, 0, sizeof(g->base));
  g->have_base = 1;

  o.flags = GIT_DIFF_INCLUDE_TYPECHANGE | GIT_DIFF_INCLUDE_UNTRACKED |
            GIT_DIFF_RECURSE_UNTRACKED_DIRS;
  if (g->idx_on_disk)
    o.flags |= GIT_DIFF_UPDATE_INDEX;
  if (paths && npaths > 0) {
    /* Literal paths: the iterators descend only where they lead. */
    o.flags |= GIT_DIFF_DISABLE_PATHSPEC_MATCH;
    o.pathspec.strings = (char **)paths;
    o.pathspec.count = (size_t)npaths;
  }
  if ((rc = git_diff_index_to_workdir(&diff, g->repo, g->idx, &o)) < 0)
    goto fail;
  /* The index now holds c's tree with the workspace's changes applied,
   * no longer the base: a failure below must not leave it taken for c. */
  g->have_base = 0;
  if ((rc = git_diff_foreach(diff, apply_delta, NULL, NULL, NULL, &a)) != 0)
    goto fail;
  git_diff_free(diff);
  git_tree_free(tree);
  return 0;
fail:
  g->have_base = 0;
  git_diff_free(diff);
  git_tree_free(tree);
  return gfail(err, rc, "cannot read the workspace '%s'", g->workdir);
}

/* The index's tree, written into the repository; its base becomes it. */
static int write_tree(struct durin_git *g, git_oid *tree, struct durin_err *err)
{
  int rc;

  if ((rc = git_index_write_tree(tree, g->idx)) < 0)
    return gfail(err, rc, "cannot write the workspace's tree");
  git_oid_cpy(&g->base, tree);
  g->have_base = 1;
  /* The stat cache for the next snapshot; a failure costs only speed. */
  if (g->idx_on_disk && git_index_write(g->idx) < 0)
    git_error_clear();
  return 0;
}

static int trailer_valid(const struct durin_git_trailer *t)
{
  const char *p;

  if (!t->key || !*t->key || !t->value || strchr(t->value, '\n') ||
      strchr(t->value, '\r'))
    return 0;
  for (p = t->key; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
          (*p >= '0' && *p <= '9') || *p == '-'))
      return 0;
  return 1;
}

/* The message as git writes one: subject, body, a blank line, the
 * trailers, each line ending in a newline. */
static int build_message(const struct durin_git_commit_opts *o,
                         struct durin_buf *b, struct durin_err *err)
{
  size_t n;
  int i, rc = 0;

  if (!o->message || !*o->message)
    return durin_err_set(err, DURIN_EINVAL, "a commit needs a message");
  for (i = 0; i < o->ntrailers; i++)
    if (!trailer_valid(&o->trailers[i]))
      return durin_err_set(err, DURIN_EINVAL, "invalid trailer '%s'",
                           o->trailers[i].key ? o->trailers[i].key : "");
  n = strlen(o->message);
  while (n && o->message[n - 1] == '\n')
    n--;
  rc |= durin_buf_add(b, o->message, n);
  rc |= durin_buf_adds(b, "\n");
  for (i = 0; i < o->ntrailers; i++)
    rc |= durin_buf_addf(b, "%s%s: %s\n", i ? "" : "\n", o->trailers[i].key,
                         o->trailers[i].value);
  return rc ? durin_err_set(err, DURIN_ETOOBIG, "commit message too long") : 0;
}

/* Moves ref from old (NULL: it must not exist) to id. */
static int set_ref(struct durin_git *g, const char *ref, const git_oid *old,
                   const git_oid *id, struct durin_err *err)
{
  git_reference *r = NULL;
  int rc;

  if (old && git_oid_equal(old, id))
    return 0;
  if (durin__git_before_ref_update)
    durin__git_before_ref_update(ref);
  if (old)
    rc = git_reference_create_matching(&r, g->repo, ref, id, 1, old,
                                       "durin: checkpoint");
  else
    rc = git_reference_create(&r, g->repo, ref, id, 0, "durin: checkpoint");
  git_reference_free(r);
  if (rc == GIT_EMODIFIED || rc == GIT_EEXISTS)
    return durin_err_set(err, DURIN_EBUSY,
                         "branch '%s' moved while durin was updating it", ref);
  if (rc < 0)
    return gfail(err, rc, "cannot update branch '%s'", ref);
  return 0;
}

/* The tip of ref into tip; 0 with *have 0 when it does not exist. */
static int read_tip(struct durin_git *g, const char *ref, git_oid *tip,
                    int *have, struct durin_err *err)
{
  int rc = git_reference_name_to_id(tip, g->repo, ref);

  *have = rc == 0;
  if (rc == GIT_ENOTFOUND)
    return 0;
  if (rc < 0)
    return gfail(err, rc, "cannot read branch '%s'", ref);
  return 0;
}

int durin_git_snapshot(struct durin_git *g,
                       const struct durin_git_commit_opts *o,
                       char out[DURIN_GIT_HEX], int *changed,
                       struct durin_err *err)
{
  struct durin_buf msg;
  git_signature *sig = NULL;
  git_commit *parent = NULL;
  git_tree *tree = NULL;
  git_oid tip, tid, cid;
  char ref[256];
  int have_tip, rc;

  durin_buf_init(&msg, 64 * 1024);
  *changed = 0;
  if ((rc = branch_ref(o->branch, ref, sizeof(ref), err)) < 0 ||
      (rc = check_gitdir(g, ref, err)) < 0 ||
      (rc = build_message(o, &msg, err)) < 0 ||
      (rc = read_tip(g, ref, &tip, &have_tip, err)) < 0)
    goto out;
  if (o->parent) {
    if ((rc = lookup_commit(g, o->parent, &parent, err)) < 0)
      goto out;
  } else if (have_tip) {
    if ((rc = git_commit_lookup(&parent, g->repo, &tip)) < 0) {
      rc = gfail(err, rc, "cannot read the tip of '%s'", o->branch);
      goto out;
    }
  } else {
    git_oid head;

    rc = git_reference_name_to_id(&head, g->repo, "HEAD");
    if (rc == 0 && (rc = git_commit_lookup(&parent, g->repo, &head)) < 0) {
      rc = gfail(err, rc, "cannot read the commit of HEAD");
      goto out;
    }
    if (rc == GIT_ENOTFOUND || rc == GIT_EUNBORNBRANCH)
      rc = 0;
    else if (rc < 0) {
      rc = gfail(err, rc, "cannot read HEAD");
      goto out;
    }
  }
  if ((rc = sync_index(g, parent, o->paths, o->npaths, NULL, NULL, err)) < 0 ||
      (rc = write_tree(g, &tid, err)) < 0)
    goto out;
  if (parent && git_oid_equal(&tid, git_commit_tree_id(parent))) {
    git_oid_cpy(&cid, git_commit_id(parent));
  } else {
    if ((rc = git_tree_lookup(&tree, g->repo, &tid)) < 0 ||
        (rc = git_signature_new(&sig, o->name ? o->name : "durin",
                                o->email ? o->email : "durin@localhost",
                                (git_time_t)o->time_s, 0)) < 0 ||
        (rc = git_commit_create(&cid, g->repo, NULL, sig, sig, NULL, msg.buf,
                                tree, parent ? 1 : 0,
                                (const git_commit **)&parent)) < 0) {
      rc = gfail(err, rc, "cannot commit the workspace on '%s'", o->branch);
      goto out;
    }
    *changed = 1;
  }
  git_oid_tostr(out, DURIN_GIT_HEX, &cid);
  if (!o->no_ref &&
      (rc = set_ref(g, ref, have_tip ? &tip : NULL, &cid, err)) < 0)
    goto out;
  rc = 0;
out:
  durin_buf_release(&msg);
  git_signature_free(sig);
  git_tree_free(tree);
  git_commit_free(parent);
  return rc;
}

int durin_git_advance(struct durin_git *g, const char *branch,
                      const char *commit, struct durin_err *err)
{
  git_commit *c = NULL;
  git_oid tip;
  char ref[256];
  int have_tip, rc;

  if ((rc = branch_ref(branch, ref, sizeof(ref), err)) < 0 ||
      (rc = check_gitdir(g, ref, err)) < 0 ||
      (rc = lookup_commit(g, commit, &c, err)) < 0 ||
      (rc = read_tip(g, ref, &tip, &have_tip, err)) < 0)
    goto out;
  rc = set_ref(g, ref, have_tip ? &tip : NULL, git_commit_id(c), err);
out:
  git_commit_free(c);
  return rc;
}

int durin_git_parent(struct durin_git *g, const char *commit,
                     char out[DURIN_GIT_HEX], struct durin_err *err)
{
  git_commit *c = NULL;
  int rc;

  out[0] = '\0';
  if ((rc = lookup_commit(g, commit, &c, err)) < 0)
    return rc;
  if (git_commit_parentcount(c) > 0)
    git_oid_tostr(out, DURIN_GIT_HEX, git_commit_parent_id(c, 0));
  git_commit_free(c);
  return 0;
}

struct match_note {
  struct durin_buf *why;
  size_t n;
};

static int note_path(void *arg, char status, const char *path)
{
  struct match_note *m = arg;

  if (m->why && m->n < MATCH_LINES)
    durin_buf_addf(m->why, "%c %s\n", status, path);
  m->n++;
  return 0;
}

int durin_git_matches(struct durin_git *g, const char *commit, int *same,
                      struct durin_buf *why, struct durin_err *err)
{
  struct match_note m = { why, 0 };
  size_t keep = why ? why->len : 0;
  git_commit *c = NULL;
  git_oid tid;
  int rc;

  *same = 0;
  if ((rc = check_gitdir(g, NULL, err)) < 0 ||
      (rc = lookup_commit(g, commit, &c, err)) < 0 ||
      (rc = sync_index(g, c, NULL, 0, note_path, &m, err)) < 0)
    goto out;
  /* The index now holds the workspace: its tree is the next snapshot's
   * (written, so the base is known again). */
  if ((rc = write_tree(g, &tid, err)) < 0)
    goto out;
  *same = git_oid_equal(&tid, git_commit_tree_id(c));
  if (*same && why) {
    why->len = keep; /* what the tree leaves out anyway */
    why->buf[keep] = '\0';
  }
  if (!*same && m.n == 0 && why)
    durin_buf_adds(why, "M (a mode or a link)\n");
  if (why && m.n > MATCH_LINES)
    durin_buf_addf(why, "... and %zu more\n", m.n - MATCH_LINES);
out:
  git_commit_free(c);
  return rc;
}

static int dir_empty(const char *dir, struct durin_err *err)
{
  struct dirent *e;
  DIR *d = opendir(dir);
  int n = 0;

  if (!d)
    return durin_err_set(err, DURIN_EIO, "cannot open '%s': %s", dir,
                         strerror(errno));
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      n++;
  closedir(d);
  if (n)
    return durin_err_set(err, DURIN_EEXIST,
                         "cannot check out into '%s': it is not empty", dir);
  return 0;
}

int durin_git_checkout_to(struct durin_git *g, const char *commit,
                          const char *dir, struct durin_err *err)
{
  git_checkout_options co = GIT_CHECKOUT_OPTIONS_INIT;
  git_index *empty = NULL;
  git_commit *c = NULL;
  git_tree *tree = NULL;
  struct stat st;
  int rc;

  if ((rc = lookup_commit(g, commit, &c, err)) < 0)
    goto out;
  if ((rc = durin_mkdirs(dir, err)) < 0)
    goto out;
  if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
    rc = durin_err_set(err, DURIN_EINVAL, "'%s' is not a directory", dir);
    goto out;
  }
  if ((rc = dir_empty(dir, err)) < 0)
    goto out;
  if ((rc = git_commit_tree(&tree, c)) < 0 || (rc = git_index_new(&empty)) < 0)
    goto fail;
  /* Nothing is taken to be there (an empty baseline), nothing is
   * overwritten (SAFE: a file already in dir stops the checkout), and no
   * index, the user's or ours, is touched: NO_REFRESH keeps checkout from
   * re-reading the handle's index (the in-memory one has no file). */
  co.checkout_strategy = GIT_CHECKOUT_SAFE | GIT_CHECKOUT_RECREATE_MISSING |
                         GIT_CHECKOUT_DONT_UPDATE_INDEX |
                         GIT_CHECKOUT_DONT_WRITE_INDEX |
                         GIT_CHECKOUT_NO_REFRESH;
  co.target_directory = dir;
  co.baseline_index = empty;
  co.disable_filters = 0;
  if ((rc = git_checkout_tree(g->repo, (git_object *)tree, &co)) < 0)
    goto fail;
  rc = 0;
  goto out;
fail:
  rc = gfail(err, rc, "cannot check commit %s out into '%s'", commit, dir);
out:
  git_index_free(empty);
  git_tree_free(tree);
  git_commit_free(c);
  return rc;
}

static int log_one(git_commit *c, durin_git_log_fn fn, void *arg,
                   struct durin_err *err)
{
  git_message_trailer_array arr = { 0 };
  struct durin_git_trailer *tr = NULL;
  struct durin_git_log_entry e = { 0 };
  git_buf sid = { 0 };
  size_t i;
  int rc;

  git_oid_tostr(e.id, sizeof(e.id), git_commit_id(c));
  if ((rc = git_object_short_id(&sid, (git_object *)c)) < 0)
    return gfail(err, rc, "cannot abbreviate %s", e.id);
  snprintf(e.short_id, sizeof(e.short_id), "%s", sid.ptr);
  git_buf_dispose(&sid);
  e.summary = git_commit_summary(c);
  e.message = git_commit_message(c);
  e.time_s = git_commit_time(c);
  if (git_message_trailers(&arr, e.message) < 0)
    git_error_clear();
  if (arr.count && !(tr = calloc(arr.count, sizeof(*tr)))) {
    git_message_trailer_array_free(&arr);
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  }
  for (i = 0; i < arr.count; i++) {
    tr[i].key = arr.trailers[i].key;
    tr[i].value = arr.trailers[i].value;
    if (!strcmp(tr[i].key, TR_RUN))
      e.run = tr[i].value;
    else if (!strcmp(tr[i].key, TR_STEP))
      e.step = tr[i].value;
    else if (!strcmp(tr[i].key, TR_CALLS))
      e.calls = tr[i].value;
  }
  e.trailers = tr;
  e.ntrailers = (int)arr.count;
  rc = fn(arg, &e);
  free(tr);
  git_message_trailer_array_free(&arr);
  return rc;
}

int durin_git_log(struct durin_git *g, const char *branch, int n,
                  durin_git_log_fn fn, void *arg, struct durin_err *err)
{
  git_revwalk *w = NULL;
  git_commit *c = NULL;
  git_oid oid;
  char ref[256];
  int rc, i = 0;

  git_oid tip;
  int have_tip;

  if ((rc = branch_ref(branch, ref, sizeof(ref), err)) < 0 ||
      (rc = read_tip(g, ref, &tip, &have_tip, err)) < 0)
    return rc;
  if (!have_tip)
    return durin_err_set(err, DURIN_ENOTFOUND, "no branch '%s'", branch);
  if ((rc = git_revwalk_new(&w, g->repo)) < 0 ||
      (rc = git_revwalk_simplify_first_parent(w)) < 0 ||
      (rc = git_revwalk_push(w, &tip)) < 0) {
    rc = gfail(err, rc, "cannot walk '%s'", branch);
    goto out;
  }
  while ((n <= 0 || i < n) && (rc = git_revwalk_next(&oid, w)) == 0) {
    if ((rc = git_commit_lookup(&c, g->repo, &oid)) < 0) {
      rc = gfail(err, rc, "cannot read a commit of '%s'", branch);
      goto out;
    }
    rc = log_one(c, fn, arg, err);
    git_commit_free(c);
    c = NULL;
    if (rc != 0)
      goto out;
    i++;
  }
  if (rc == GIT_ITEROVER)
    rc = 0;
  else if (rc < 0)
    rc = gfail(err, rc, "cannot walk '%s'", branch);
out:
  git_revwalk_free(w);
  return rc;
}

static int oneline(void *arg, const struct durin_git_log_entry *e)
{
  return durin_buf_addf(arg, "%s %s\n", e->short_id, e->summary) < 0 ? 1 : 0;
}

int durin_git_log_oneline(struct durin_git *g, const char *branch, int n,
                          struct durin_buf *out, struct durin_err *err)
{
  int rc = durin_git_log(g, branch, n, oneline, out, err);

  if (rc > 0)
    return durin_err_set(err, DURIN_ETOOBIG, "the log of '%s' is too long",
                         branch);
  return rc;
}

static int tree_of(struct durin_git *g, const char *hex, git_tree **t,
                   struct durin_err *err)
{
  git_commit *c = NULL;
  int rc;

  *t = NULL;
  if (!hex)
    return 0;
  if ((rc = lookup_commit(g, hex, &c, err)) < 0)
    return rc;
  if ((rc = git_commit_tree(t, c)) < 0)
    rc = gfail(err, rc, "cannot read the tree of %s", hex);
  git_commit_free(c);
  return rc;
}

static int patch_line(const git_diff_delta *d, const git_diff_hunk *h,
                      const git_diff_line *l, void *arg)
{
  struct durin_buf *b = arg;

  (void)d;
  (void)h;
  if ((l->origin == GIT_DIFF_LINE_CONTEXT ||
       l->origin == GIT_DIFF_LINE_ADDITION ||
       l->origin == GIT_DIFF_LINE_DELETION) &&
      durin_buf_add(b, &l->origin, 1) < 0)
    return 1;
  return durin_buf_add(b, l->content, l->content_len) < 0 ? 1 : 0;
}

int durin_git_diff(struct durin_git *g, const char *from, const char *to,
                   struct durin_git_diffstat *st, struct durin_buf *patch,
                   struct durin_err *err)
{
  git_diff_options o = GIT_DIFF_OPTIONS_INIT;
  git_tree *a = NULL, *b = NULL;
  git_diff_stats *s = NULL;
  git_diff *diff = NULL;
  int rc;

  memset(st, 0, sizeof(*st));
  if ((rc = tree_of(g, from, &a, err)) < 0 ||
      (rc = tree_of(g, to, &b, err)) < 0)
    goto out;
  if (!to) {
    rc = durin_err_set(err, DURIN_EINVAL, "a diff needs the commit it ends at");
    goto out;
  }
  if ((rc = git_diff_tree_to_tree(&diff, g->repo, a, b, &o)) < 0 ||
      (rc = git_diff_get_stats(&s, diff)) < 0) {
    rc = gfail(err, rc, "cannot diff %s..%s", from ? from : "(empty)", to);
    goto out;
  }
  st->files = git_diff_stats_files_changed(s);
  st->insertions = git_diff_stats_insertions(s);
  st->deletions = git_diff_stats_deletions(s);
  if (patch) {
    rc = git_diff_print(diff, GIT_DIFF_FORMAT_PATCH, patch_line, patch);
    if (rc > 0 || rc == GIT_EUSER)
      rc =
          durin_err_set(err, DURIN_ETOOBIG, "the diff %s..%s is over %zu bytes",
                        from ? from : "(empty)", to, patch->cap);
    else if (rc < 0)
      rc = gfail(err, rc, "cannot print the diff %s..%s",
                 from ? from : "(empty)", to);
  }
out:
  git_diff_stats_free(s);
  git_diff_free(diff);
  git_tree_free(a);
  git_tree_free(b);
  return rc;
}
