/* File-tree helpers used for workspaces and their start snapshots. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "durin/util.h"

/* "PREFIX" + six X's (what mkstemp and mkdtemp replace) in out. */
static int template_of(const char *prefix, char *out, size_t len)
{
  int n = snprintf(out, len, "%s", prefix);

  if (n < 0 || (size_t)n + 7 > len) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memset(out + n, 'X', 6);
  out[n + 6] = '\0';
  return 0;
}

int durin_mktmpdir(const char *prefix, char *out, size_t len)
{
  char dir[4096];

  snprintf(dir, sizeof(dir), "/tmp/%s.", prefix);
  return template_of(dir, out, len) || !mkdtemp(out) ? -1 : 0;
}

int durin_tmpfile(const char *dir)
{
  char prefix[4096], path[4096];
  int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

  /* A file system without O_TMPFILE: a named one, unlinked at once. */
  if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
    return fd;
  if (snprintf(prefix, sizeof(prefix), "%s/.durin-", dir) >=
          (int)sizeof(prefix) ||
      template_of(prefix, path, sizeof(path)) ||
      (fd = mkostemp(path, O_CLOEXEC)) < 0)
    return -1;
  unlink(path);
  return fd;
}

int durin_tmpfile_beside(const char *path, char *out, size_t len)
{
  char prefix[4096];

  if (snprintf(prefix, sizeof(prefix), "%s.tmp-", path) >=
      (int)sizeof(prefix)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  if (template_of(prefix, out, len))
    return -1;
  return mkostemp(out, O_CLOEXEC);
}

int durin_mkdirs(const char *path, struct durin_err *err)
{
  char tmp[4096];
  size_t n = strlen(path), i;

  if (n == 0 || n >= sizeof(tmp))
    return durin_err_set(err, DURIN_EINVAL, "bad directory path '%s'", path);
  memcpy(tmp, path, n + 1);
  for (i = 1; i <= n; i++) {
    if (tmp[i] != '/' && tmp[i] != '\0')
      continue;
    tmp[i] = '\0';
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
      return durin_err_set(err, DURIN_EIO, "cannot create directory '%s': %s",
                           tmp, strerror(errno));
    if (i < n)
      tmp[i] = '/';
  }
  return 0;
}

static int copy_file(int sfd, int dfd, const char *src, struct durin_err *err)
{
  char chunk[65536];

  /* On btrfs, XFS and the like a reflink shares the blocks: a workspace
   * and its start snapshot cost no extra space until they differ. */
  if (ioctl(dfd, FICLONE, sfd) == 0)
    return 0;

  for (;;) {
    ssize_t r = read(sfd, chunk, sizeof(chunk)), off = 0;

    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return durin_err_set(err, DURIN_EIO, "cannot read '%s': %s", src,
                           strerror(errno));
    if (r == 0)
      return 0;
    while (off < r) {
      ssize_t w = write(dfd, chunk + off, (size_t)(r - off));

      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        return durin_err_set(err, DURIN_EIO, "cannot write copy of '%s': %s",
                             src, strerror(errno));
      off += w;
    }
  }
}

/*
 * Copies a workspace. Symlinks are copied as links (never followed, so a
 * link out of the project copies nothing from outside), file modes are
 * kept, and devices, fifos and sockets are left out.
 */
int durin_tree_copy(const char *src, const char *dst, struct durin_err *err)
{
  DIR *d = NULL;
  struct dirent *de;
  struct stat st;
  int r = 0;

  if (lstat(src, &st) < 0)
    return durin_err_set(err, DURIN_ENOTFOUND, "cannot read '%s': %s", src,
                         strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return durin_err_set(err, DURIN_EINVAL, "'%s' is not a directory", src);
  if (mkdir(dst, st.st_mode & 07777) < 0 && errno != EEXIST)
    return durin_err_set(err, DURIN_EIO, "cannot create '%s': %s", dst,
                         strerror(errno));
  d = opendir(src);
  if (!d)
    return durin_err_set(err, DURIN_EIO, "cannot open '%s': %s", src,
                         strerror(errno));
  while ((de = readdir(d))) {
    char s[4096], t[4096];

    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    if ((size_t)snprintf(s, sizeof(s), "%s/%s", src, de->d_name) >= sizeof(s) ||
        (size_t)snprintf(t, sizeof(t), "%s/%s", dst, de->d_name) >= sizeof(t)) {
      r = durin_err_set(err, DURIN_EINVAL, "path too long under '%s'", src);
      goto out;
    }
    if (lstat(s, &st) < 0)
      continue;
    if (S_ISDIR(st.st_mode)) {
      r = durin_tree_copy(s, t, err);
    } else if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = readlink(s, target, sizeof(target) - 1);

      if (n < 0)
        continue;
      target[n] = '\0';
      if (symlink(target, t) < 0 && errno != EEXIST)
        r = durin_err_set(err, DURIN_EIO, "cannot create symlink '%s': %s", t,
                          strerror(errno));
    } else if (S_ISREG(st.st_mode)) {
      int sfd = open(s, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      int dfd = -1;

      if (sfd < 0) {
        r = durin_err_set(err, DURIN_EIO, "cannot read '%s': %s", s,
                          strerror(errno));
        goto out;
      }
      dfd = open(t, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                 st.st_mode & 07777);
      if (dfd < 0)
        r = durin_err_set(err, DURIN_EIO, "cannot create '%s': %s", t,
                          strerror(errno));
      else
        r = copy_file(sfd, dfd, s, err);
      close(sfd);
      if (dfd >= 0)
        close(dfd);
    }
    /* Devices, fifos and sockets are not part of a workspace. */
    if (r)
      goto out;
  }
out:
  closedir(d);
  return r;
}

/*
 * Removes name beneath dfd and everything under it, never following a
 * link. Iterative: it holds one directory open and a heap stack of names,
 * so a tree of any depth (an agent's `mkdir -p a/a/a/...`) costs neither
 * stack nor descriptors. Any entry it cannot remove ends it with
 * DURIN_EIO (rather than descending into it again forever).
 */
int durin_tree_remove_at(int dfd, const char *name)
{
  char **stack = NULL;
  size_t depth = 0, cap = 0;
  struct stat st;
  int cur, r = 0;

  if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW))
    return errno == ENOENT ? 0 : DURIN_EIO;
  if (!S_ISDIR(st.st_mode))
    return unlinkat(dfd, name, 0) && errno != ENOENT ? DURIN_EIO : 0;
  cur = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (cur < 0)
    return DURIN_EIO;
  for (;;) {
    char child[NAME_MAX + 1] = "";
    int dup = fcntl(cur, F_DUPFD_CLOEXEC, 0), next;
    struct dirent *e;
    DIR *d = dup >= 0 ? fdopendir(dup) : NULL;

    if (!d) {
      if (dup >= 0)
        close(dup);
      r = DURIN_EIO;
      break;
    }
    while (!r && (e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
        continue;
      if (fstatat(cur, e->d_name, &st, AT_SYMLINK_NOFOLLOW))
        continue;
      if (S_ISDIR(st.st_mode)) {
        snprintf(child, sizeof(child), "%s", e->d_name);
        break;
      }
      if (unlinkat(cur, e->d_name, 0) && errno != ENOENT)
        r = DURIN_EIO;
    }
    closedir(d);
    if (r)
      break;
    if (child[0]) {
      char **ns = stack;

      if (depth == cap) {
        cap = cap ? cap * 2 : 16;
        ns = realloc(stack, cap * sizeof(*stack));
      }
      next = ns ? openat(cur, child,
                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) :
                  -1;
      if (ns)
        stack = ns;
      if (next < 0 || !(stack[depth] = strdup(child))) {
        if (next >= 0)
          close(next);
        r = DURIN_EIO;
        break;
      }
      depth++;
      close(cur);
      cur = next;
      continue;
    }
    /* cur is empty: remove it from its parent, and go on there. */
    if (depth == 0) {
      close(cur);
      cur = -1;
      if (unlinkat(dfd, name, AT_REMOVEDIR) && errno != ENOENT)
        r = DURIN_EIO;
      break;
    }
    next = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    close(cur);
    cur = next;
    depth--;
    if (cur < 0 ||
        (unlinkat(cur, stack[depth], AT_REMOVEDIR) && errno != ENOENT)) {
      free(stack[depth]);
      r = DURIN_EIO;
      break;
    }
    free(stack[depth]);
  }
  if (cur >= 0)
    close(cur);
  while (depth > 0)
    free(stack[--depth]);
  free(stack);
  return r;
}

int durin_tree_remove(const char *path)
{
  char parent[4096];
  const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
  int dfd, r;

  if (slash == path)
    snprintf(parent, sizeof(parent), "/");
  else if (slash)
    snprintf(parent, sizeof(parent), "%.*s", (int)(slash - path), path);
  else
    snprintf(parent, sizeof(parent), ".");
  if (!*base)
    return DURIN_EINVAL;
  dfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return errno == ENOENT ? 0 : DURIN_EIO;
  r = durin_tree_remove_at(dfd, base);
  close(dfd);
  return r;
}

int durin_file_read(const char *path, size_t cap, char **out, size_t *len,
                    struct durin_err *err)
{
  struct durin_buf b;
  char chunk[65536];
  int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

  if (fd < 0)
    return durin_err_set(err, errno == ENOENT ? DURIN_ENOTFOUND : DURIN_EIO,
                         "cannot read '%s': %s", path, strerror(errno));
  durin_buf_init(&b, cap);
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof(chunk));

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      r = durin_err_set(err, DURIN_EIO, "cannot read '%s': %s", path,
                        strerror(errno));
      break;
    }
    if (n == 0)
      break;
    if (durin_buf_add(&b, chunk, (size_t)n)) {
      r = durin_err_set(err, DURIN_ETOOBIG, "'%s' is larger than %zu bytes",
                        path, cap);
      break;
    }
  }
  close(fd);
  if (r) {
    durin_buf_release(&b);
    return r;
  }
  *out = durin_buf_detach(&b, len);
  return 0;
}
