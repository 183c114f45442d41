/*
 * Workspace confinement for the file tools. Every path the model gives is
 * resolved by the kernel with openat2(RESOLVE_BENEATH), relative to the
 * workspace's directory fd: "..", absolute paths, and symlinks (or
 * symlinked parents) that lead outside are refused atomically, so there is
 * no check-then-use race against a process in the workspace swapping a
 * directory for a symlink.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "durin/tools.h"

static int openat2_beneath(int dirfd, const char *path, int flags, int mode)
{
  struct open_how how;

  memset(&how, 0, sizeof(how));
  how.flags = (uint64_t)(flags | O_CLOEXEC);
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? (uint64_t)mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

static int refuse(const char *path, int e, struct durin_err *err)
{
  if (e == EXDEV || e == ELOOP)
    return durin_err_set(err, DURIN_EACCES,
                         "path '%s' leads outside the workspace; use a path "
                         "relative to the workspace root",
                         path);
  if (e == ENOENT)
    return durin_err_set(err, DURIN_ENOTFOUND, "'%s' does not exist", path);
  if (e == ENOTDIR)
    return durin_err_set(err, DURIN_EINVAL,
                         "a parent of '%s' is not a directory", path);
  if (e == EISDIR)
    return durin_err_set(err, DURIN_EINVAL, "'%s' is a directory", path);
  if (e == ENOSYS)
    return durin_err_set(err, DURIN_EIO,
                         "this kernel lacks openat2 (Linux 5.6 or newer is "
                         "needed)");
  return durin_err_set(err, DURIN_EIO, "cannot open '%s': %s", path,
                       strerror(e));
}

int durin_path_open(int dirfd, const char *path, int flags, int mode,
                    struct durin_err *err)
{
  int fd;

  if (!path || !*path)
    return durin_err_set(err, DURIN_EINVAL, "empty path");
  if (path[0] == '/')
    return durin_err_set(err, DURIN_EACCES,
                         "path '%s' is absolute; paths are relative to the "
                         "workspace root",
                         path);
  fd = openat2_beneath(dirfd, path, flags, mode);
  if (fd < 0)
    return refuse(path, errno, err);
  return fd;
}

int durin_path_mkparents(int dirfd, const char *path, struct durin_err *err)
{
  char buf[4096], *p, *slash;
  int cur, r = 0;

  if (strlen(path) >= sizeof(buf))
    return durin_err_set(err, DURIN_EINVAL, "path '%s' is too long", path);
  if (path[0] == '/')
    return durin_err_set(err, DURIN_EACCES,
                         "path '%s' is absolute; paths are relative to the "
                         "workspace root",
                         path);
  memcpy(buf, path, strlen(path) + 1);
  cur = dup(dirfd);
  if (cur < 0)
    return durin_err_set(err, DURIN_EIO, "dup: %s", strerror(errno));
  for (p = buf; (slash = strchr(p, '/')); p = slash + 1) {
    int next;

    *slash = '\0';
    if (!*p || !strcmp(p, "."))
      continue;
    if (!strcmp(p, "..")) {
      r = durin_err_set(err, DURIN_EACCES,
                        "path '%s' leads outside the workspace", path);
      break;
    }
    next = openat2_beneath(cur, p, O_PATH | O_DIRECTORY, 0);
    if (next < 0 && errno == ENOENT) {
      if (mkdirat(cur, p, 0755) < 0 && errno != EEXIST) {
        r = durin_err_set(err, DURIN_EIO, "cannot create directory '%s': %s", p,
                          strerror(errno));
        break;
      }
      next = openat2_beneath(cur, p, O_PATH | O_DIRECTORY, 0);
    }
    if (next < 0) {
      r = refuse(path, errno, err);
      break;
    }
    close(cur);
    cur = next;
  }
  close(cur);
  return r;
}
