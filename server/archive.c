/*
 * Workspace archives. Unpacking is the dangerous half: the tar comes from
 * a client, and a tar can name any path, link anywhere and hold devices.
 * Every entry is checked here before libarchive writes anything:
 *
 *   path       relative, no '..', within the caps (and PATH_MAX)
 *   type       regular file, directory, symlink or hard link only
 *   symlink    a relative target whose '..' all come first and climb no
 *              higher than the link's own directory
 *   hard link  to a regular file already unpacked, reached without a link
 *   parents    nothing above the entry is a symlink (or a file)
 *   size       the declared sizes add up to no more than the cap
 *
 * Why the symlink rule and not just a lexical resolve: with d -> ".", the
 * target "d/.." is lexically the root but really the root's parent. When
 * no '..' follows a name, and every link's parents are real directories
 * (the parents rule), each link lands inside the root, and so does any
 * chain of them.
 *
 * The hard link and parents rules ask the kernel (openat2 with
 * RESOLVE_NO_SYMLINKS) instead of a list of what was unpacked, so they
 * hold however entries overwrite one another. libarchive's SECURE_NODOTDOT and
 * SECURE_SYMLINKS then check again as it writes. Its SECURE_NOABSOLUTEPATHS
 * cannot be set: each entry is handed over as the absolute root + "/" + path,
 * because the alternative, chdir into the root, would move every thread
 * of the server (the raw name was refused if absolute). For the same
 * reason paths stay under PATH_MAX: past it, libarchive chdir()s down.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "durin/util.h"
#include "server/archive.h"

/* Opens path beneath dirfd, refusing any symlink on the way (the last
 * component too, unless flags has O_PATH | O_NOFOLLOW). */
static int open_beneath(int dirfd, const char *path, int flags)
{
  struct open_how how;

  memset(&how, 0, sizeof(how));
  how.flags = (uint64_t)(flags | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
  return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/* Calls fn on each name in the directory dfd but "." and "..", stopping
 * at the first that returns non-zero; -1 (errno set) if it cannot read. */
static int dir_each(int dfd, int (*fn)(int dfd, const char *name, void *arg),
                    void *arg)
{
  int dup = fcntl(dfd, F_DUPFD_CLOEXEC, 0), r = 0;
  struct dirent *de;
  DIR *d = dup >= 0 ? fdopendir(dup) : NULL;

  if (!d) {
    if (dup >= 0)
      close(dup);
    return -1;
  }
  /* The copy shares dfd's offset, which an earlier walk left at the end. */
  rewinddir(d);
  while (!r && (errno = 0, de = readdir(d))) {
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
      r = fn(dfd, de->d_name, arg);
  }
  if (!r && errno)
    r = -1;
  closedir(d);
  return r;
}

/* ---- unpack ---- */

struct unpack {
  struct archive *in, *out;
  struct durin_archive_caps caps;
  char root[PATH_MAX];
  int rootfd;
  int64_t bytes;   /* declared file sizes so far */
  int64_t entries; /* headers read so far */
  char name[PATH_MAX];
  struct durin_err *err;
};

#define UNPACK_FLAGS                            \
 (ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | \
  ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS)

static int64_t cap_or(int64_t v, int64_t dflt)
{
  return v > 0 ? v : dflt;
}

/*
 * An entry's name as a message may quote it: bounded, valid UTF-8 and
 * without control characters, since a client reads it back inside JSON.
 */
static const char *shown(const char *name, char *out, size_t len)
{
  size_t n = strlen(name), i;

  if (n > len - 4) {
    n = len - 4;
    memcpy(out + n, "...", 4);
  } else {
    out[n] = '\0';
  }
  memcpy(out, name, n);
  durin_utf8_sanitize(out, n);
  for (i = 0; i < n; i++) {
    if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
      out[i] = '?';
  }
  return out;
}

/* Fails the upload over the current entry, naming it and what it broke. */
static int refuse(struct unpack *u, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(struct unpack *u, int code, const char *fmt, ...)
{
  char why[400], n[100];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  return durin_err_set(u->err, code, "archive entry '%s': %s",
                       shown(u->name, n, sizeof(n)), why);
}

static int unreadable(struct unpack *u)
{
  const char *e = archive_error_string(u->in);

  return durin_err_set(u->err, DURIN_EINVAL,
                       "cannot read the archive: %s; send a tar, tar.gz or "
                       "tar.zst of the workspace",
                       e ? e : "unknown error");
}

/* Whether libarchive failed for the machine's sake, not the archive's. */
static int disk_trouble(int e)
{
  return e == ENOSPC || e == EDQUOT || e == EIO || e == EROFS || e == EFBIG ||
         e == ENOMEM || e == EMFILE || e == ENFILE;
}

/*
 * libarchive refused to write the entry: a disk error, or entries that
 * cannot both exist (a directory to be replaced by a file). Its messages
 * quote the full paths it was given; the client sees them relative to
 * the workspace, not where the server keeps it.
 */
static int unwritable(struct unpack *u)
{
  const char *e = archive_error_string(u->out), *hit;
  size_t rootlen = strlen(u->root);
  char msg[300], *m = msg;

  e = e ? e : "unknown error";
  while ((hit = strstr(e, u->root)) && hit[rootlen] == '/' &&
         m + (hit - e) < msg + sizeof(msg) - 1) {
    memcpy(m, e, (size_t)(hit - e));
    m += hit - e;
    e = hit + rootlen + 1;
  }
  snprintf(m, (size_t)(msg + sizeof(msg) - m), "%s", e);
  if (disk_trouble(archive_errno(u->out)))
    return refuse(u, DURIN_EIO, "cannot unpack: %s", msg);
  return refuse(u, DURIN_EINVAL, "cannot unpack: %s; fix the archive", msg);
}

/*
 * Copies the relative path raw into out (PATH_MAX bytes) without "." or
 * empty components. Returns NULL, or the rule raw breaks.
 */
static const char *path_clean(const char *raw, char *out)
{
  size_t n = 0;

  if (raw[0] == '/')
    return "the path is absolute; use paths relative to the workspace root";
  if (strlen(raw) >= PATH_MAX)
    return "the path is longer than PATH_MAX; use shorter paths";
  while (*raw) {
    size_t c = strcspn(raw, "/");

    if (c == 2 && !memcmp(raw, "..", 2))
      return "the path has a '..' component; use paths inside the workspace";
    if (c && !(c == 1 && raw[0] == '.')) {
      if (n)
        out[n++] = '/';
      memcpy(out + n, raw, c);
      n += c;
    }
    raw += c;
    raw += strspn(raw, "/");
  }
  out[n] = '\0';
  return NULL;
}

/* Checks the entry's path raw and writes the cleaned one into clean. */
static int check_path(struct unpack *u, const char *raw, char *clean)
{
  const char *rule = path_clean(raw, clean);
  size_t n;

  if (rule)
    return refuse(u, DURIN_EINVAL, "%s", rule);
  n = strlen(clean);
  if ((int64_t)n > u->caps.max_path)
    return refuse(u, DURIN_ETOOBIG,
                  "the path is longer than the cap of %lld bytes",
                  (long long)u->caps.max_path);
  return 0;
}

/* The path libarchive gets: under the root, and short enough that it
 * never needs to chdir to create it. */
static int full_path(struct unpack *u, const char *clean, char *full)
{
  if ((size_t)snprintf(full, PATH_MAX, "%s/%s", u->root, clean) < PATH_MAX)
    return 0;
  return refuse(u, DURIN_ETOOBIG,
                "with the workspace directory in front, the path passes "
                "PATH_MAX (%d bytes); use shorter paths",
                PATH_MAX);
}

/* The parents rule: nothing above clean may be a symlink (or a file). A
 * parent that does not exist yet is fine; libarchive creates it. */
static int check_parents(struct unpack *u, const char *clean)
{
  const char *slash = strrchr(clean, '/');
  char parent[PATH_MAX];
  int fd;

  if (!slash)
    return 0;
  snprintf(parent, sizeof(parent), "%.*s", (int)(slash - clean), clean);
  fd = open_beneath(u->rootfd, parent, O_PATH | O_DIRECTORY);
  if (fd >= 0) {
    close(fd);
    return 0;
  }
  if (errno == ENOENT)
    return 0;
  if (errno == ENOTDIR)
    return refuse(u, DURIN_EINVAL, "a parent is a file, not a directory");
  if (errno == ELOOP || errno == EXDEV)
    return refuse(u, DURIN_EINVAL,
                  "a parent directory is a symbolic link; an archive may not "
                  "write through a link");
  if (errno == ENOSYS)
    return refuse(u, DURIN_EIO,
                  "this kernel lacks openat2 (Linux 5.6 or "
                  "newer is needed)");
  return refuse(u, DURIN_EIO, "cannot check its parent: %s", strerror(errno));
}

/* The symlink rule, for a link at clean pointing at target. */
static int check_symlink(struct unpack *u, const char *clean,
                         const char *target)
{
  size_t depth = 0, ups = 0;
  const char *p;
  int named = 0;

  if (!*target)
    return refuse(u, DURIN_EINVAL, "the link target is empty");
  if ((int64_t)strlen(target) > u->caps.max_path)
    return refuse(u, DURIN_ETOOBIG,
                  "the link target is longer than the cap of %lld bytes",
                  (long long)u->caps.max_path);
  if (target[0] == '/')
    return refuse(u, DURIN_EINVAL,
                  "the link target is absolute; a link must point inside the "
                  "workspace by a relative path");
  for (p = clean; *p; p++)
    depth += *p == '/';
  for (p = target; *p; p += strspn(p, "/")) {
    size_t c = strcspn(p, "/");

    if (c == 2 && !memcmp(p, "..", 2)) {
      if (named)
        return refuse(u, DURIN_EINVAL,
                      "the link target has a '..' after a name, which a link "
                      "could turn outside the workspace; write it with the "
                      "'..' first");
      if (++ups > depth)
        return refuse(u, DURIN_EINVAL,
                      "the link target leads outside the workspace; a link "
                      "must point inside it");
    } else if (c && !(c == 1 && *p == '.')) {
      named = 1;
    }
    p += c;
  }
  return 0;
}

/* The hard link rule; writes the target's full path into full. */
static int check_hardlink(struct unpack *u, const char *target, char *full)
{
  char clean[PATH_MAX];
  const char *rule = path_clean(target, clean);
  struct stat st;
  int fd = -1;

  if (rule)
    return refuse(u, DURIN_EINVAL, "the hard link target: %s", rule);
  if (*clean)
    fd = open_beneath(u->rootfd, clean, O_PATH | O_NOFOLLOW);
  if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
    if (fd >= 0)
      close(fd);
    return refuse(u, DURIN_EINVAL,
                  "the hard link target is not a file unpacked earlier from "
                  "this archive; a hard link may only join files inside the "
                  "workspace");
  }
  close(fd);
  return full_path(u, clean, full);
}

static const char *type_name(mode_t type)
{
  switch (type) {
  case AE_IFCHR:
    return "a character device";
  case AE_IFBLK:
    return "a block device";
  case AE_IFIFO:
    return "a fifo";
  case AE_IFSOCK:
    return "a socket";
  default:
    return "of an unknown type";
  }
}

/* The type rule, and the symlink or hard link rule where one applies. */
static int check_type(struct unpack *u, struct archive_entry *e,
                      const char *clean)
{
  const char *hard = archive_entry_hardlink(e);
  const char *soft = archive_entry_symlink(e);
  mode_t type = archive_entry_filetype(e);
  char full[PATH_MAX];
  int r;

  /* Read in a locale that cannot show them, UTF-8 names come back NULL. */
  if (!hard)
    hard = archive_entry_hardlink_utf8(e);
  if (!soft)
    soft = archive_entry_symlink_utf8(e);
  /* libarchive makes a hard link whatever the type says, if one is set. */
  if (hard) {
    r = check_hardlink(u, hard, full);
    if (!r)
      archive_entry_copy_hardlink(e, full);
    return r;
  }
  if (type == AE_IFLNK) {
    r = check_symlink(u, clean, soft ? soft : "");
    if (!r)
      archive_entry_copy_symlink(e, soft);
    return r;
  }
  if (type == AE_IFREG || type == AE_IFDIR)
    return 0;
  return refuse(u, DURIN_EINVAL,
                "it is %s; a workspace holds only files, directories and "
                "links",
                type_name(type));
}

static int check_size(struct unpack *u, struct archive_entry *e)
{
  int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;

  if (size < 0 || size > u->caps.max_bytes - u->bytes)
    return refuse(u, DURIN_ETOOBIG,
                  "the unpacked files would pass the cap of %lld bytes",
                  (long long)u->caps.max_bytes);
  u->bytes += size;
  return 0;
}

/*
 * Checks the entry just read and rewrites it for libarchive: the absolute
 * path under the root, the checked link targets, permission bits without
 * setuid/setgid/sticky, and no owners, ACLs, attributes or flags. Returns
 * 0 to write it, 1 to skip it (the root itself, as in "./"), or an error.
 */
static int check_entry(struct unpack *u, struct archive_entry *e)
{
  const char *raw = archive_entry_pathname(e);
  char clean[PATH_MAX], full[PATH_MAX];
  mode_t perm = archive_entry_perm(e) & 0777;
  int r;

  if (!raw)
    raw = archive_entry_pathname_utf8(e);
  snprintf(u->name, sizeof(u->name), "%s", raw ? raw : "");
  if (++u->entries > u->caps.max_entries)
    return refuse(u, DURIN_ETOOBIG,
                  "the archive has more entries than the cap of %lld",
                  (long long)u->caps.max_entries);
  if (!raw || !*raw)
    return refuse(u, DURIN_EINVAL, "the entry has no path");
  if ((r = check_path(u, raw, clean)))
    return r;
  if (!*clean) {
    if (archive_entry_filetype(e) == AE_IFDIR && !archive_entry_hardlink(e))
      return 1;
    return refuse(u, DURIN_EINVAL, "only a directory may name the root");
  }
  if ((r = full_path(u, clean, full)) || (r = check_parents(u, clean)) ||
      (r = check_type(u, e, clean)) || (r = check_size(u, e)))
    return r;
  if (archive_entry_filetype(e) == AE_IFDIR)
    perm |= 0700;
  archive_entry_set_perm(e, perm);
  archive_entry_set_uid(e, 0);
  archive_entry_set_gid(e, 0);
  archive_entry_acl_clear(e);
  archive_entry_xattr_clear(e);
  archive_entry_set_fflags(e, 0, 0);
  archive_entry_copy_pathname(e, full);
  return 0;
}

/* Copies the entry's data; libarchive never hands over more than the
 * header declared, which check_size has counted. */
static int copy_data(struct unpack *u)
{
  const void *p;
  size_t n;
  int64_t off;
  int r;

  while ((r = archive_read_data_block(u->in, &p, &n, &off)) == ARCHIVE_OK) {
    if (archive_write_data_block(u->out, p, n, off) < ARCHIVE_WARN)
      return unwritable(u);
  }
  if (r == ARCHIVE_EOF)
    return 0;
  return refuse(u, DURIN_EINVAL,
                "cannot read its data: %s; send a whole tar, tar.gz or tar.zst",
                archive_error_string(u->in) ? archive_error_string(u->in) :
                                              "unknown error");
}

static int write_entry(struct unpack *u, struct archive_entry *e)
{
  int r;

  if (archive_write_header(u->out, e) < ARCHIVE_WARN)
    return unwritable(u);
  if (archive_entry_filetype(e) == AE_IFREG || archive_entry_hardlink(e)) {
    if ((r = copy_data(u)))
      return r;
  }
  if (archive_write_finish_entry(u->out) < ARCHIVE_WARN)
    return unwritable(u);
  return 0;
}

static int unpack_entries(struct unpack *u)
{
  struct archive_entry *e;
  int r;

  for (;;) {
    r = archive_read_next_header(u->in, &e);
    if (r == ARCHIVE_EOF)
      break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
      return unreadable(u);
    r = check_entry(u, e);
    if (r < 0)
      return r;
    if (r == 0 && (r = write_entry(u, e)))
      return r;
  }
  /* Directory modes and times are set here, after their contents. */
  if (archive_write_close(u->out) < ARCHIVE_WARN) {
    snprintf(u->name, sizeof(u->name), "(a directory)");
    return unwritable(u);
  }
  return 0;
}

static int not_empty(int dfd, const char *name, void *arg)
{
  return 1;
}

static int remove_child(int dfd, const char *name, void *arg)
{
  durin_tree_remove_at(dfd, name);
  return 0;
}

static int open_root(struct unpack *u, const char *dir)
{
  const char *why = NULL;

  if (!realpath(dir, u->root) ||
      (u->rootfd = open(u->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
    why = strerror(errno);
  else if (dir_each(u->rootfd, not_empty, NULL))
    why = "it is not empty";
  if (why)
    return durin_err_set(u->err, DURIN_EINVAL, "cannot unpack into '%s': %s",
                         dir, why);
  return 0;
}

static int open_archives(struct unpack *u, const void *buf, size_t len)
{
  u->in = archive_read_new();
  u->out = archive_write_disk_new();
  if (!u->in || !u->out)
    return durin_err_set(u->err, DURIN_ENOMEM, "out of memory");
  /* Not archive_read_support_filter_all: some of its filters run an
   * external program on the client's bytes. */
  archive_read_support_filter_gzip(u->in);
  archive_read_support_filter_zstd(u->in);
  archive_read_support_format_tar(u->in);
  archive_write_disk_set_options(u->out, UNPACK_FLAGS);
  if (archive_read_open_memory(u->in, buf, len) != ARCHIVE_OK)
    return unreadable(u);
  return 0;
}

int durin_archive_unpack(const void *buf, size_t len, const char *dir,
                         const struct durin_archive_caps *caps,
                         struct durin_err *err)
{
  struct durin_archive_caps none = { 0 };
  struct unpack *u = calloc(1, sizeof(*u));
  int r, found_empty;

  if (!u)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  if (!caps)
    caps = &none;
  u->err = err;
  u->rootfd = -1;
  u->caps.max_bytes = cap_or(caps->max_bytes, DURIN_ARCHIVE_MAX_BYTES);
  u->caps.max_entries = cap_or(caps->max_entries, DURIN_ARCHIVE_MAX_ENTRIES);
  u->caps.max_path = cap_or(caps->max_path, DURIN_ARCHIVE_MAX_PATH);
  r = open_root(u, dir);
  found_empty = !r;
  if (!r && !(r = open_archives(u, buf, len)))
    r = unpack_entries(u);
  archive_read_free(u->in);
  archive_write_free(u->out);
  /* Nothing was written outside the root; take back what went inside
   * (only from a root found empty: never the caller's own files). */
  if (r && found_empty)
    dir_each(u->rootfd, remove_child, NULL);
  if (u->rootfd >= 0)
    close(u->rootfd);
  free(u);
  return r;
}

/* ---- pack ---- */

struct pack {
  struct archive *a;
  int rootfd;
  char **stack; /* directories still to walk, relative to the root */
  size_t nstack, cap;
  struct durin_err *err;
};

static int pack_failed(struct pack *p, const char *path, const char *why)
{
  return durin_err_set(p->err, DURIN_EIO, "cannot pack '%s': %s",
                       *path ? path : ".", why);
}

static int written(struct pack *p, const char *path, int r)
{
  const char *e = archive_error_string(p->a);

  if (r >= ARCHIVE_WARN)
    return 0;
  return pack_failed(p, path, e ? e : "cannot write the archive");
}

/* A header with only what a workspace needs: no owners, no inode. */
static struct archive_entry *entry_for(const char *path, const struct stat *st)
{
  struct archive_entry *e = archive_entry_new();

  if (!e)
    return NULL;
  archive_entry_copy_pathname(e, path);
  archive_entry_set_filetype(e, st->st_mode & S_IFMT);
  archive_entry_set_perm(e, st->st_mode & 0777);
  archive_entry_set_mtime(e, st->st_mtim.tv_sec, 0);
  archive_entry_set_size(e, S_ISREG(st->st_mode) ? st->st_size : 0);
  return e;
}

static int pack_header(struct pack *p, const char *path, const struct stat *st,
                       const char *target)
{
  struct archive_entry *e = entry_for(path, st);
  int r;

  if (!e)
    return durin_err_set(p->err, DURIN_ENOMEM, "out of memory");
  if (target)
    archive_entry_copy_symlink(e, target);
  r = written(p, path, archive_write_header(p->a, e));
  archive_entry_free(e);
  return r;
}

/* Writes st_size bytes of fd; a file that shrank meanwhile is padded with
 * zeros by libarchive, one that grew is cut at the size in the header. */
static int pack_data(struct pack *p, const char *path, int fd, off_t size)
{
  char buf[65536];

  while (size > 0) {
    ssize_t n = read(fd, buf, sizeof(buf));

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return pack_failed(p, path, strerror(errno));
    if (n == 0)
      break;
    if (n > size)
      n = (ssize_t)size;
    if (archive_write_data(p->a, buf, (size_t)n) < 0)
      return written(p, path, ARCHIVE_FATAL);
    size -= n;
  }
  return 0;
}

static int pack_file(struct pack *p, int dfd, const char *name,
                     const char *path)
{
  /* O_NONBLOCK: if a fifo was swapped in since the lstat, do not wait on
   * it; fstat then says it is not a file. */
  int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  int r;

  if (fd < 0)
    return errno == ENOENT ? 0 : pack_failed(p, path, strerror(errno));
  if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
    close(fd);
    return 0;
  }
  r = pack_header(p, path, &st, NULL);
  if (!r)
    r = pack_data(p, path, fd, st.st_size);
  close(fd);
  return r;
}

static int pack_symlink(struct pack *p, int dfd, const char *name,
                        const char *path, const struct stat *st)
{
  char target[PATH_MAX];
  ssize_t n = readlinkat(dfd, name, target, sizeof(target));

  if (n < 0)
    return errno == ENOENT ? 0 : pack_failed(p, path, strerror(errno));
  if (n == sizeof(target))
    return pack_failed(p, path, "the link target is too long");
  target[n] = '\0';
  return pack_header(p, path, st, target);
}

static int stack_push(struct pack *p, const char *path)
{
  if (p->nstack == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 16;
    char **t = realloc(p->stack, cap * sizeof(*t));

    if (!t)
      return durin_err_set(p->err, DURIN_ENOMEM, "out of memory");
    p->stack = t;
    p->cap = cap;
  }
  if (!(p->stack[p->nstack] = strdup(path)))
    return durin_err_set(p->err, DURIN_ENOMEM, "out of memory");
  p->nstack++;
  return 0;
}

struct names {
  char **v;
  size_t n, cap;
};

static int names_add(int dfd, const char *name, void *arg)
{
  struct names *ns = arg;

  if (ns->n == ns->cap) {
    size_t cap = ns->cap ? ns->cap * 2 : 32;
    char **v = realloc(ns->v, cap * sizeof(*v));

    if (!v)
      return -1;
    ns->v = v;
    ns->cap = cap;
  }
  if (!(ns->v[ns->n] = strdup(name)))
    return -1;
  ns->n++;
  return 0;
}

static void names_release(struct names *ns)
{
  while (ns->n)
    free(ns->v[--ns->n]);
  free(ns->v);
}

static int name_cmp(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Packs one child of the directory dfd (at dir); a subdirectory is left
 * in *name for the caller to queue, anything else is packed and *name
 * freed. */
static int pack_child(struct pack *p, int dfd, const char *dir, char **name)
{
  char path[PATH_MAX];
  struct stat st;
  int r = 0;

  if ((size_t)snprintf(path, sizeof(path), "%s%s%s", dir, *dir ? "/" : "",
                       *name) >= sizeof(path))
    return pack_failed(p, dir, "a path under it passes PATH_MAX");
  if (fstatat(dfd, *name, &st, AT_SYMLINK_NOFOLLOW))
    return errno == ENOENT ? 0 : pack_failed(p, path, strerror(errno));
  if (S_ISDIR(st.st_mode)) {
    free(*name);
    *name = strdup(path);
    return *name ? 0 : durin_err_set(p->err, DURIN_ENOMEM, "out of memory");
  }
  if (S_ISREG(st.st_mode))
    r = pack_file(p, dfd, *name, path);
  else if (S_ISLNK(st.st_mode))
    r = pack_symlink(p, dfd, *name, path, &st);
  /* Devices, fifos and sockets are not part of a workspace. */
  free(*name);
  *name = NULL;
  return r;
}

/*
 * Packs the directory at path (relative to the root, "" for the root
 * itself): its header, then its files and links in name order; its
 * subdirectories are queued so the first comes off the stack next. A
 * stack of names, not of open directories: any depth costs no descriptors.
 */
static int pack_dir(struct pack *p, const char *path)
{
  struct names ns = { 0 };
  struct stat st;
  size_t i;
  int dfd = open_beneath(p->rootfd, *path ? path : ".", O_RDONLY | O_DIRECTORY);
  int r = 0;

  if (dfd < 0)
    return errno == ENOENT ? 0 : pack_failed(p, path, strerror(errno));
  if (*path && fstat(dfd, &st)) {
    r = pack_failed(p, path, strerror(errno));
    goto out;
  }
  if (*path && (r = pack_header(p, path, &st, NULL)))
    goto out;
  if (dir_each(dfd, names_add, &ns)) {
    r = pack_failed(p, path, errno ? strerror(errno) : "out of memory");
    goto out;
  }
  if (ns.n)
    qsort(ns.v, ns.n, sizeof(*ns.v), name_cmp);
  for (i = 0; i < ns.n && !r; i++)
    r = pack_child(p, dfd, path, &ns.v[i]);
  for (i = ns.n; i > 0 && !r; i--) {
    if (ns.v[i - 1])
      r = stack_push(p, ns.v[i - 1]);
  }
out:
  names_release(&ns);
  close(dfd);
  return r;
}

static struct archive *writer_new(enum durin_archive_fmt fmt, int fd)
{
  struct archive *a = archive_write_new();
  int r;

  if (!a)
    return NULL;
  r = archive_write_set_format_pax_restricted(a);
  if (fmt == DURIN_ARCHIVE_TGZ) {
    r = r ? r : archive_write_add_filter_gzip(a);
    /* No time in the gzip header: the same tree packs to the same bytes. */
    r = r ? r : archive_write_set_filter_option(a, "gzip", "timestamp", NULL);
  } else if (fmt == DURIN_ARCHIVE_TZST) {
    r = r ? r : archive_write_add_filter_zstd(a);
  }
  r = r ? r : archive_write_open_fd(a, fd);
  if (r) {
    archive_write_free(a);
    return NULL;
  }
  return a;
}

int durin_archive_pack(const char *dir, enum durin_archive_fmt fmt, int fd,
                       struct durin_err *err)
{
  struct pack p = { .err = err };
  int r = 0;

  if (fmt != DURIN_ARCHIVE_TAR && fmt != DURIN_ARCHIVE_TGZ &&
      fmt != DURIN_ARCHIVE_TZST)
    return durin_err_set(err, DURIN_EINVAL, "unknown archive format %d",
                         (int)fmt);
  p.rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (p.rootfd < 0)
    return durin_err_set(err, DURIN_EINVAL, "cannot pack '%s': %s", dir,
                         strerror(errno));
  p.a = writer_new(fmt, fd);
  if (!p.a)
    r = durin_err_set(err, DURIN_EIO, "cannot start a %s archive",
                      durin_archive_fmt_mime(fmt));
  else
    r = stack_push(&p, "");
  while (!r && p.nstack) {
    char *path = p.stack[--p.nstack];

    r = pack_dir(&p, path);
    free(path);
  }
  if (!r)
    r = written(&p, dir, archive_write_close(p.a));
  archive_write_free(p.a);
  while (p.nstack)
    free(p.stack[--p.nstack]);
  free(p.stack);
  close(p.rootfd);
  return r;
}

/* ---- formats ---- */

static const struct {
  const char *name;
  enum durin_archive_fmt fmt;
} fmt_names[] = {
  { "tar", DURIN_ARCHIVE_TAR },
  { "application/x-tar", DURIN_ARCHIVE_TAR },
  { "tar.gz", DURIN_ARCHIVE_TGZ },
  { "tgz", DURIN_ARCHIVE_TGZ },
  { "gzip", DURIN_ARCHIVE_TGZ },
  { "application/gzip", DURIN_ARCHIVE_TGZ },
  { "application/x-gzip", DURIN_ARCHIVE_TGZ },
  { "tar.zst", DURIN_ARCHIVE_TZST },
  { "tzst", DURIN_ARCHIVE_TZST },
  { "zstd", DURIN_ARCHIVE_TZST },
  { "application/zstd", DURIN_ARCHIVE_TZST },
  { "application/x-zstd", DURIN_ARCHIVE_TZST },
};

/* One item of a list: its media type without parameters or spaces. */
static int fmt_item(const char *s, size_t n)
{
  size_t i;

  if (memchr(s, ';', n))
    n = (size_t)((const char *)memchr(s, ';', n) - s);
  while (n && (*s == ' ' || *s == '\t')) {
    s++;
    n--;
  }
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
    n--;
  for (i = 0; i < sizeof(fmt_names) / sizeof(fmt_names[0]); i++) {
    if (strlen(fmt_names[i].name) == n && !strncasecmp(fmt_names[i].name, s, n))
      return (int)fmt_names[i].fmt;
  }
  return -1;
}

int durin_archive_fmt_parse(const char *s)
{
  while (s && *s) {
    size_t n = strcspn(s, ",");
    int f = fmt_item(s, n);

    if (f >= 0)
      return f;
    s += n;
    s += *s == ',';
  }
  return -1;
}

const char *durin_archive_fmt_mime(enum durin_archive_fmt fmt)
{
  switch (fmt) {
  case DURIN_ARCHIVE_TGZ:
    return "application/gzip";
  case DURIN_ARCHIVE_TZST:
    return "application/zstd";
  case DURIN_ARCHIVE_TAR:
  default:
    return "application/x-tar";
  }
}
