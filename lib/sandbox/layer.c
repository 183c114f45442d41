/*
 * Tool calls as transactions on the workspace (DESIGN 3.6).
 *
 * A call that can reach nothing but the workspace writes into a layer of
 * its own instead of into the workspace:
 *
 *   runs/ID/calls/sSTEP-cCALL/          the call is contained (made before
 *                                       its ledger intent is durable)
 *   runs/ID/calls/sSTEP-cCALL/eEPOCH/   one attempt, by the lease holder of
 *       upper/ work/                    that epoch: overlayfs upper and
 *                                       work directories
 *
 * In the sandbox the workspace is an overlay of upper/ over the workspace
 * (or over the run's files and its template); the file tools write their
 * results into upper/ by hand. Nothing reaches the workspace until the
 * call's outcome is durable; then durin_layer_merge() moves upper/ into
 * it, an operation that may be cut anywhere and redone:
 *
 *   - an opaque directory first empties its target, then loses its mark;
 *   - a whiteout removes its target, then itself;
 *   - a file or link is renamed into place (atomic, and gone from upper/);
 *   - a directory is made in the target, filled, then removed from upper/.
 *
 * So what was done is never done again, and what was not is done once.
 * Whoever restores the run looks at calls/: an attempt named by a
 * recorded outcome is merged (again); any other attempt is discarded, and
 * its call, which left no trace, is simply run again. The call directory
 * itself stays until the call's outcome is merged: it is the durable
 * record that the call was contained, which is what makes running it
 * again safe whatever its declared effect.
 *
 * Targets are opened with O_NOFOLLOW, one component at a time, so a link
 * the agent left in the workspace never leads a merge outside it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "durin/sandbox.h"
#include "durin/util.h"

#define OPAQUE_XATTR "user.overlay.opaque"
#define CHANGES_MAX  50 /* names listed per kind in a change set */

void durin_layer_calls_dir(const char *ws, char *out, size_t len)
{
  const char *slash = strrchr(ws, '/');
  int n = slash ? (int)(slash - ws) : 0;

  snprintf(out, len, "%.*s/calls", n, slash ? ws : "");
}

int durin_layer_begin(const char *ws, int64_t step, int call, uint64_t epoch,
                      char *out, size_t len, struct durin_err *err)
{
  char calls[4096], path[4300];

  durin_layer_calls_dir(ws, calls, sizeof(calls));
  if ((size_t)snprintf(out, len, "%s/s%lld-c%d/e%llu", calls, (long long)step,
                       call, (unsigned long long)epoch) >= len)
    return durin_err_set(err, DURIN_EINVAL,
                         "the layer path under '%s' is "
                         "too long",
                         calls);
  /* A leftover of this very epoch (a tool started, then the worker let go
   * and took the run back) held nothing durable: start clean. */
  if (mkdir(out, 0755) == 0)
    ;
  else if (errno == ENOENT) {
    /* The call's first attempt: its directory first (calls/ is there
     * after a run's first call). */
    char dir[4400];
    const char *slash = strrchr(out, '/');

    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - out) : 0, out);
    if ((mkdir(dir, 0755) && errno != EEXIST && durin_mkdirs(dir, err)) ||
        mkdir(out, 0755))
      return durin_err_set(err, DURIN_EIO, "cannot make the layer '%s': %s",
                           out, strerror(errno));
  } else if (errno == EEXIST) {
    if (durin_tree_remove(out) || mkdir(out, 0755))
      return durin_err_set(err, DURIN_EIO, "cannot make the layer '%s': %s",
                           out, strerror(errno));
  } else if (durin_mkdirs(out, err)) {
    return err ? err->code : DURIN_EIO;
  }
  snprintf(path, sizeof(path), "%s/upper", out);
  if (mkdir(path, 0755))
    return durin_err_set(err, DURIN_EIO, "cannot make '%s': %s", path,
                         strerror(errno));
  snprintf(path, sizeof(path), "%s/work", out);
  if (mkdir(path, 0755))
    return durin_err_set(err, DURIN_EIO, "cannot make '%s': %s", path,
                         strerror(errno));
  return 0;
}

const char *durin_layer_name(const char *layer)
{
  const char *p = layer + strlen(layer);
  int slashes = 0;

  /* ".../calls/sS-cC/eE" -> "sS-cC/eE" */
  while (p > layer) {
    if (p[-1] == '/' && ++slashes == 2)
      break;
    p--;
  }
  return p;
}

/* ---- reading a layer ---- */

static int is_whiteout(const struct stat *st)
{
  return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

static int is_opaque(int dfd)
{
  char v[4];
  ssize_t n = fgetxattr(dfd, OPAQUE_XATTR, v, sizeof(v));

  /* "y" only: newer kernels write "x" for a directory that merely holds
   * whiteouts of its own kind, which is not opaque. */
  return n > 0 && v[0] == 'y';
}

struct changes {
  json_t *added, *changed, *deleted, *replaced;
  int64_t nadded, nchanged, ndeleted, bytes;
  int too_deep;
};

static void note(json_t *list, int64_t *count, const char *prefix,
                 const char *name)
{
  if (json_array_size(list) < CHANGES_MAX) {
    char *path;

    if (asprintf(&path, "%s%s", prefix, name) >= 0) {
      json_array_append_new(list, json_string(path));
      free(path);
    }
  }
  (*count)++;
}

/* A directory stream over a copy of dfd (dfd stays the caller's), or
 * NULL. */
static DIR *dir_of(int dfd)
{
  int dup = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
  DIR *d = dup >= 0 ? fdopendir(dup) : NULL;

  if (!d && dup >= 0)
    close(dup);
  return d;
}

/* Whether name is in the view of the target directories t[0..n) (the
 * topmost first; -1: not there): found as a whiteout, it is not. */
static int in_view(const int *t, int n, const char *name, struct stat *st)
{
  int i;

  for (i = 0; i < n; i++) {
    if (t[i] < 0 || fstatat(t[i], name, st, AT_SYMLINK_NOFOLLOW))
      continue;
    return !is_whiteout(st);
  }
  return 0;
}

/*
 * What upper (udfd) changes in the view of t[0..n). Recursion is bounded:
 * a layer deeper than DURIN_LAYER_MAX_DEPTH is reported too_deep (the
 * worker then keeps nothing of it), so an agent's `mkdir -p a/a/a/...`
 * cannot exhaust the stack or the descriptors of whoever reads it.
 */
static void scan(int udfd, int opaque, const int *t, int n, const char *prefix,
                 int depth, struct changes *c)
{
  DIR *d;
  struct dirent *e;

  if (depth > DURIN_LAYER_MAX_DEPTH) {
    c->too_deep = 1;
    return;
  }
  if (!(d = dir_of(udfd)))
    return;
  if (n && t[0] >= 0 && opaque)
    json_array_append_new(c->replaced, json_string(*prefix ? prefix : "./"));
  while (!c->too_deep && (e = readdir(d))) {
    struct stat st, tst;

    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    if (fstatat(udfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW))
      continue;
    if (is_whiteout(&st)) {
      if (in_view(t, n, e->d_name, &tst))
        note(c->deleted, &c->ndeleted, prefix, e->d_name);
    } else if (S_ISDIR(st.st_mode)) {
      int u = openat(udfd, e->d_name,
                     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      int sub[2] = { -1, -1 }, k, uo = u >= 0 && is_opaque(u);
      char *p = NULL;

      /* Below an opaque directory nothing of the view shows through. */
      for (k = 0; u >= 0 && !uo && k < n; k++)
        if (t[k] >= 0)
          sub[k] = openat(t[k], e->d_name,
                          O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (u >= 0 && asprintf(&p, "%s%s/", prefix, e->d_name) >= 0)
        scan(u, uo, sub, n, p, depth + 1, c);
      free(p);
      for (k = 0; k < 2; k++)
        if (sub[k] >= 0)
          close(sub[k]);
      if (u >= 0)
        close(u);
    } else {
      if (S_ISREG(st.st_mode))
        c->bytes += st.st_size;
      if (in_view(t, n, e->d_name, &tst))
        note(c->changed, &c->nchanged, prefix, e->d_name);
      else
        note(c->added, &c->nadded, prefix, e->d_name);
    }
  }
  closedir(d);
}

json_t *durin_layer_changes(const char *layer, const char *target,
                            const char *below)
{
  struct changes c;
  char upper[4300];
  int u, t[2];
  json_t *out;

  memset(&c, 0, sizeof(c));
  c.added = json_array();
  c.changed = json_array();
  c.deleted = json_array();
  c.replaced = json_array();
  snprintf(upper, sizeof(upper), "%s/upper", layer);
  u = open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  t[0] = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  t[1] = below ? open(below, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (u >= 0)
    scan(u, is_opaque(u), t, below ? 2 : 1, "", 0, &c);
  if (u >= 0)
    close(u);
  if (t[0] >= 0)
    close(t[0]);
  if (t[1] >= 0)
    close(t[1]);
  out =
      json_pack("{s:s,s:o,s:o,s:o,s:I,s:I,s:I,s:I}", "layer",
                durin_layer_name(layer), "added", c.added, "changed", c.changed,
                "deleted", c.deleted, "files_added", (json_int_t)c.nadded,
                "files_changed", (json_int_t)c.nchanged, "files_deleted",
                (json_int_t)c.ndeleted, "bytes", (json_int_t)c.bytes);
  if (json_array_size(c.replaced))
    json_object_set_new(out, "replaced_dirs", c.replaced);
  else
    json_decref(c.replaced);
  if (c.too_deep)
    json_object_set_new(out, "too_deep", json_true());
  return out;
}

/* ---- merging ---- */

struct merge {
  int whiteouts; /* the target is itself an overlay's upper layer */
  int moved;     /* entries moved so far (for the fault point) */
  struct durin_err *err;
};

static int clear_dir(int dfd)
{
  struct dirent *e;
  DIR *d = dir_of(dfd);
  int r = 0;

  if (!d)
    return -1;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      r |= durin_tree_remove_at(dfd, e->d_name) ? -1 : 0;
  closedir(d);
  return r;
}

static int fail(struct merge *m, const char *what, const char *name)
{
  return durin_err_set(m->err, DURIN_EIO,
                       "merging a call's changes: %s '%s': %s", what, name,
                       strerror(errno));
}

/* overlayfs's own marks travel with a renamed file; drop them. */
static void strip_overlay_xattrs(int dfd, const char *name)
{
  char path[64], list[1024], *p;
  ssize_t n;
  int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

  if (fd < 0)
    return;
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  n = listxattr(path, list, sizeof(list));
  for (p = list; n > 0 && p < list + n; p += strlen(p) + 1)
    if (!strncmp(p, "user.overlay.", 13))
      removexattr(path, p);
  close(fd);
}

static int merge_dir(struct merge *m, int udfd, int tdfd, const char *what,
                     int depth)
{
  int r = 0;
  struct dirent *e;
  DIR *d;
  char path[64];

  /* A layer deeper than this was refused before its outcome was written
   * (too_deep); one found anyway is not walked. */
  if (depth > DURIN_LAYER_MAX_DEPTH) {
    errno = ELOOP;
    return fail(m, "merging (too deep)", what);
  }
  if (is_opaque(udfd)) {
    /* Empty the target first; the mark goes only once that is done, so
     * a redo never empties what a first pass already moved in. */
    if (clear_dir(tdfd))
      return fail(m, "emptying", what);
    if (m->whiteouts) {
      snprintf(path, sizeof(path), "/proc/self/fd/%d", tdfd);
      if (setxattr(path, OPAQUE_XATTR, "y", 1, 0))
        return fail(m, "marking opaque", what);
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", udfd);
    if (removexattr(path, OPAQUE_XATTR) && errno != ENODATA)
      return fail(m, "unmarking", what);
  }
  if (!(d = dir_of(udfd)))
    return fail(m, "reading", what);
  while (!r && (e = readdir(d))) {
    struct stat st;
    const char *n = e->d_name;

    if (!strcmp(n, ".") || !strcmp(n, ".."))
      continue;
    if (fstatat(udfd, n, &st, AT_SYMLINK_NOFOLLOW))
      continue;
    if (is_whiteout(&st)) {
      if (durin_tree_remove_at(tdfd, n))
        r = fail(m, "removing", n);
      else if (m->whiteouts && mknodat(tdfd, n, S_IFCHR | 0000, makedev(0, 0)))
        r = fail(m, "whiting out", n);
      else if (unlinkat(udfd, n, 0) && errno != ENOENT)
        r = fail(m, "removing the whiteout", n);
    } else if (S_ISDIR(st.st_mode)) {
      int u,
          t = openat(tdfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

      if (t < 0) {
        struct stat was;
        int replaced = fstatat(tdfd, n, &was, AT_SYMLINK_NOFOLLOW) == 0;

        /* Not a directory there (a file, a link, a whiteout) or nothing:
         * replace. In an upper layer, a directory made where the run had
         * deleted or replaced something must hide what the template has
         * of that name: opaque. */
        if (durin_tree_remove_at(tdfd, n) ||
            mkdirat(tdfd, n, st.st_mode & 07777) ||
            (t = openat(tdfd, n,
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
          r = fail(m, "making directory", n);
          break;
        }
        snprintf(path, sizeof(path), "/proc/self/fd/%d", t);
        if (m->whiteouts && replaced &&
            setxattr(path, OPAQUE_XATTR, "y", 1, 0)) {
          r = fail(m, "marking opaque", n);
          close(t);
          break;
        }
      }
      if (fchmod(t, st.st_mode & 07777) || fchown(t, st.st_uid, st.st_gid)) {
        /* Not fatal: a non-root durin cannot chown; the mode still holds. */
      }
      u = openat(udfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (u < 0)
        r = fail(m, "opening", n);
      else
        r = merge_dir(m, u, t, n, depth + 1);
      if (u >= 0)
        close(u);
      close(t);
      if (!r && unlinkat(udfd, n, AT_REMOVEDIR) && errno != ENOENT)
        r = fail(m, "removing the merged directory", n);
    } else {
      /* In an overlay's upper layer (a template run's files) overlayfs
       * would read a copied-up file's origin mark; a plain workspace is
       * only ever a lower layer, where it is ignored. */
      if (m->whiteouts && S_ISREG(st.st_mode))
        strip_overlay_xattrs(udfd, n);
      /* No set-id bit reaches the host's files from a sandboxed call. */
      if (S_ISREG(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID)))
        fchmodat(udfd, n, st.st_mode & 0777, 0);
      if (renameat(udfd, n, tdfd, n)) {
        /* A directory in the way (the call replaced it by a file). */
        if ((errno != EISDIR && errno != ENOTEMPTY && errno != EEXIST &&
             errno != ENOTDIR) ||
            durin_tree_remove_at(tdfd, n) || renameat(udfd, n, tdfd, n))
          r = fail(m, "moving", n);
      }
    }
    if (!r && ++m->moved == 1)
      durin_fault_point("layer_merge");
  }
  closedir(d);
  return r;
}

int durin_layer_merge(const char *layer, const char *target, int whiteouts,
                      struct durin_err *err)
{
  struct merge m = { whiteouts, 0, err };
  char upper[4300];
  int u, t, r;

  snprintf(upper, sizeof(upper), "%s/upper", layer);
  u = open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (u < 0 && errno == ENOENT)
    return 0; /* merged and removed already */
  t = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (u < 0 || t < 0) {
    r = durin_err_set(err, DURIN_EIO, "merging a call's changes into '%s': %s",
                      target, strerror(errno));
  } else {
    /* Not synced: renames and removals reach the disk in the order they
     * were made (journalled metadata), and until the call's directory is
     * gone on disk, a restorer merges again. */
    r = merge_dir(&m, u, t, ".", 0);
  }
  if (u >= 0)
    close(u);
  if (t >= 0)
    close(t);
  return r;
}

int durin_layer_scan(const char *ws, durin_layer_cb cb, void *arg)
{
  char calls[4096], path[4400];
  struct dirent *e;
  DIR *d;
  int r = 0;

  durin_layer_calls_dir(ws, calls, sizeof(calls));
  if (!(d = opendir(calls)))
    return errno == ENOENT ? 0 : DURIN_EIO;
  while (!r && (e = readdir(d))) {
    long long step;
    int call, end = 0;

    if (sscanf(e->d_name, "s%lld-c%d%n", &step, &call, &end) != 2 ||
        e->d_name[end])
      continue;
    snprintf(path, sizeof(path), "%s/%s", calls, e->d_name);
    r = cb(arg, step, call, path);
  }
  closedir(d);
  return r;
}
