/*
 * The file tools: read_file, write_file, edit_file, list_files. Every path
 * goes through durin_path_open(), so none can leave the workspace.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "durin/tools.h"
#include "durin/util.h"
#include "tools/builtin.h"

void durin__tool_fail(struct durin_tool_result *res, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  free(res->output);
  res->output = strdup(msg);
  res->ok = 0;
}

static int open_ws(const struct durin_tool_ctx *ctx,
                   struct durin_tool_result *res)
{
  int fd = open(ctx->workspace, O_PATH | O_DIRECTORY | O_CLOEXEC);

  if (fd < 0)
    durin__tool_fail(res, "workspace '%s' is not available: %s", ctx->workspace,
                     strerror(errno));
  return fd;
}

static int read_fd(int fd, size_t cap, struct durin_buf *b, int *truncated)
{
  char chunk[65536];

  durin_buf_init(b, cap);
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof(chunk));

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    if (n == 0)
      return 0;
    if (durin_buf_add(b, chunk, (size_t)n)) {
      size_t room = cap - b->len;

      durin_buf_add(b, chunk, room);
      *truncated = 1;
      return 0;
    }
  }
}

static int read_file_exec(const struct durin_tool_ctx *ctx, json_t *args,
                          struct durin_tool_result *res)
{
  const char *path = json_string_value(json_object_get(args, "path"));
  struct durin_err err = { 0 };
  struct durin_buf b;
  struct stat st;
  int ws, fd, trunc = 0;

  if ((ws = open_ws(ctx, res)) < 0)
    return 0;
  /* Non-blocking: a FIFO is refused below instead of waited on. */
  fd = durin_path_open(ws, path, O_RDONLY | O_NONBLOCK, 0, &err);
  close(ws);
  if (fd < 0) {
    durin__tool_fail(res, "read_file: %s", err.msg);
    return 0;
  }
  if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
    close(fd);
    durin__tool_fail(res,
                     "read_file: '%s' is not a regular file (use "
                     "list_files for directories)",
                     path);
    return 0;
  }
  if (read_fd(fd, ctx->output_cap, &b, &trunc) < 0) {
    close(fd);
    durin_buf_release(&b);
    durin__tool_fail(res, "read_file: cannot read '%s': %s", path,
                     strerror(errno));
    return 0;
  }
  close(fd);
  if (trunc) {
    b.cap += 128;
    durin_buf_addf(&b, "\n[truncated at %zu bytes of %lld]\n", ctx->output_cap,
                   (long long)st.st_size);
    res->truncated = 1;
  }
  res->ok = 1;
  /* Binary files: NULs and invalid UTF-8 become '?', so the text survives
   * the log and the wire format. */
  durin_utf8_sanitize(b.buf, b.len);
  res->output = durin_buf_detach(&b, NULL);
  return 0;
}

/* Whether every part of the relative path s is a plain name: no empty
 * part, no "." and no "..". */
static int plain_names(const char *s)
{
  const char *p = s;

  if (!*s || *s == '/')
    return 0;
  for (;;) {
    size_t n = strcspn(p, "/");

    if (n == 0 || (n == 1 && p[0] == '.') ||
        (n == 2 && p[0] == '.' && p[1] == '.'))
      return 0;
    if (!p[n])
      return 1;
    p += n + 1;
  }
}

/* Makes (if need be) and opens the directory name beneath dfd, never
 * following a link; closes dfd. */
static int down(int dfd, const char *name, mode_t mode)
{
  int fd;

  if (mkdirat(dfd, name, mode) && errno != EEXIST) {
    close(dfd);
    return -1;
  }
  fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  close(dfd);
  return fd;
}

/*
 * A call with a layer (ctx->box.layer) writes nothing into the workspace: the
 * new file goes to the same place beneath layer/upper as path resolves to
 * beneath the workspace, and reaches the workspace by the merge, once the
 * call's outcome is durable (lib/sandbox/layer.c). So the file tools are
 * transactions like a sandboxed command: a call cut by a crash left no
 * trace and runs again to the same result.
 *
 * Returns a directory fd beneath layer/upper for path's parent, made as
 * needed (existing workspace directories keep their modes), or -1.
 */
static int layer_parent(int ws, const char *layer, const char *path,
                        struct durin_err *err)
{
  char parent[4200], real[4200], link[64], wsreal[4200], part[256];
  char relbuf[4200];
  const char *slash = strrchr(path, '/'), *rest = "", *rel, *p;
  struct durin_err perr = { 0 };
  ssize_t n;
  int fd = -1;

  /* Nothing but plain names: the parts that do not exist yet are made
   * beneath upper/ by name, where ".." would climb out of the layer. */
  if (!plain_names(path))
    return durin_err_set(err, DURIN_EINVAL,
                         "'%s' is not a plain relative path (no '.', '..' "
                         "or empty parts, not absolute)",
                         path);
  snprintf(parent, sizeof(parent), "%.*s", slash ? (int)(slash - path) : 1,
           slash ? path : ".");
  /* The longest prefix of the parent that exists in the workspace. */
  for (;;) {
    memset(&perr, 0, sizeof(perr));
    fd = durin_path_open(ws, parent, O_PATH | O_DIRECTORY, 0, &perr);
    if (fd >= 0 || perr.code != DURIN_ENOTFOUND || !strcmp(parent, "."))
      break;
    slash = strrchr(parent, '/');
    rest = slash ? path + (slash - parent) + 1 : path;
    if (slash)
      *(char *)slash = 0;
    else
      snprintf(parent, sizeof(parent), ".");
  }
  if (fd < 0) {
    *err = perr;
    return -1;
  }
  /* Where it really is, links inside the workspace followed. */
  snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  n = readlink(link, real, sizeof(real) - 1);
  snprintf(link, sizeof(link), "/proc/self/fd/%d", ws);
  if (n > 0) {
    real[n] = 0;
    n = readlink(link, wsreal, sizeof(wsreal) - 1);
  }
  close(fd);
  if (n <= 0 || n >= (ssize_t)sizeof(wsreal) - 1)
    return durin_err_set(err, DURIN_EIO, "cannot resolve '%s'", parent);
  wsreal[n] = 0;
  rel = real + strlen(wsreal);
  if (strncmp(real, wsreal, (size_t)n) || (*rel && *rel != '/'))
    return durin_err_set(err, DURIN_EINVAL, "'%s' is outside the workspace",
                         path);
  snprintf(relbuf, sizeof(relbuf), "%s", rel);
  rel = relbuf;
  {
    char up[4200];

    if ((size_t)snprintf(up, sizeof(up), "%s/upper", layer) >= sizeof(up))
      return durin_err_set(err, DURIN_EINVAL, "layer path too long");
    fd = open(up, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  }
  /* The same directories beneath upper/, one at a time: existing ones
   * with their modes in the workspace (the merge keeps a layer
   * directory's mode), the new ones of rest 0755. */
  for (p = rel; fd >= 0 && *p;) {
    struct stat st;
    size_t k;

    p += *p == '/';
    k = strcspn(p, "/");
    if (!k || k >= sizeof(part))
      break;
    snprintf(part, sizeof(part), "%.*s", (int)k, p);
    snprintf(real, sizeof(real), "%s%.*s", wsreal, (int)(p + k - rel), rel);
    if (stat(real, &st))
      st.st_mode = 0755;
    fd = down(fd, part, st.st_mode & 07777);
    p += k;
  }
  for (p = rest; fd >= 0 && *p;) {
    size_t k = strcspn(p, "/");

    if (!p[k])
      break; /* the file's own name */
    snprintf(part, sizeof(part), "%.*s", (int)(k < sizeof(part) ? k : 0), p);
    fd = down(fd, part, 0755);
    p += k + 1;
  }
  if (fd < 0)
    return durin_err_set(err, DURIN_EIO,
                         "cannot make the directories of '%s' "
                         "in the call's layer: %s",
                         path, strerror(errno));
  return fd;
}

/* Writes data to fd and syncs it; path names it in errors. */
static int write_synced(int fd, const char *path, const char *data, size_t len,
                        struct durin_err *err)
{
  size_t off = 0;

  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);

    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return durin_err_set(err, DURIN_EIO, "cannot write '%s': %s", path,
                           strerror(errno));
    off += (size_t)w;
  }
  if (fsync(fd) < 0)
    return durin_err_set(err, DURIN_EIO, "cannot sync '%s': %s", path,
                         strerror(errno));
  return 0;
}

/* Writes data to path atomically: a temp file in the same directory, then
 * rename, so a crash never leaves a half-written file. With a layer, the
 * file goes there instead (layer_parent). */
static int write_atomic(int ws, const char *layer, const char *path,
                        const char *data, size_t len, struct durin_err *err)
{
  char tmp[4200];
  const char *slash = strrchr(path, '/');
  int fd, r = 0;
  struct stat st;
  mode_t mode = 0644;

  if (!layer && durin_path_mkparents(ws, path, err))
    return -1;
  /* O_PATH: a FIFO or a device is looked at, never opened (a FIFO would
   * block the thread until a writer came). */
  fd = durin_path_open(ws, path, O_PATH, 0, NULL);
  if (fd >= 0) {
    if (fstat(fd, &st) == 0) {
      if (S_ISDIR(st.st_mode)) {
        close(fd);
        return durin_err_set(err, DURIN_EINVAL, "'%s' is a directory", path);
      }
      mode = st.st_mode & 0777;
    }
    close(fd);
  }
  if (layer) {
    const char *base = slash ? slash + 1 : path;
    int dfd = layer_parent(ws, layer, path, err);

    if (dfd < 0)
      return -1;
    unlinkat(dfd, base, 0);
    fd = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                mode);
    /* Synced before its outcome is recorded: the merge moves what is on
     * disk, so the file must be whole there. */
    r = fd < 0 ? durin_err_set(err, DURIN_EIO, "cannot write '%s': %s", path,
                               strerror(errno)) :
                 write_synced(fd, path, data, len, err);
    if (!r && fsync(dfd) < 0)
      r = durin_err_set(err, DURIN_EIO, "cannot sync '%s': %s", path,
                        strerror(errno));
    if (fd >= 0)
      close(fd);
    close(dfd);
    return r;
  }
  snprintf(tmp, sizeof(tmp), "%.*s.durin-tmp-%d",
           slash ? (int)(slash - path) + 1 : 0, path, (int)getpid());
  fd = durin_path_open(ws, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW,
                       (int)mode, err);
  if (fd < 0)
    return -1;
  r = write_synced(fd, path, data, len, err);
  close(fd);
  if (!r) {
    /* Rename through a directory fd opened beneath the workspace keeps
     * both names beneath it, and renameat with relative names cannot
     * follow a final symlink. The directory is fsync'd too, so a recorded
     * outcome is never ahead of the file after a power loss. */
    const char *base = path, *tbase = tmp;
    char dir[4200];
    int dfd;

    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1,
             slash ? path : ".");
    dfd = durin_path_open(ws, dir, O_RDONLY | O_DIRECTORY, 0, err);
    if (slash) {
      base = slash + 1;
      tbase = tmp + (slash - path) + 1;
    }
    if (dfd < 0)
      r = -1;
    else if (renameat(dfd, tbase, dfd, base) < 0)
      r = durin_err_set(err, DURIN_EIO, "cannot replace '%s': %s", path,
                        strerror(errno));
    else if (fsync(dfd) < 0)
      r = durin_err_set(err, DURIN_EIO, "cannot sync the directory of '%s': %s",
                        path, strerror(errno));
    if (dfd >= 0)
      close(dfd);
  }
  if (r) {
    int dfd = durin_path_open(ws, ".", O_PATH | O_DIRECTORY, 0, NULL);

    if (dfd >= 0) {
      unlinkat(dfd, tmp, 0);
      close(dfd);
    }
  }
  return r;
}

static int write_file_exec(const struct durin_tool_ctx *ctx, json_t *args,
                           struct durin_tool_result *res)
{
  const char *path = json_string_value(json_object_get(args, "path"));
  json_t *content = json_object_get(args, "content");
  struct durin_err err = { 0 };
  int ws;

  if ((ws = open_ws(ctx, res)) < 0)
    return 0;
  if (write_atomic(ws, ctx->box.layer, path, json_string_value(content),
                   json_string_length(content), &err)) {
    close(ws);
    durin__tool_fail(res, "write_file: %s", err.msg);
    return 0;
  }
  close(ws);
  res->ok = 1;
  {
    char msg[4200];

    snprintf(msg, sizeof(msg), "wrote %zu bytes to %s",
             json_string_length(content), path);
    res->output = strdup(msg);
  }
  return 0;
}

static int edit_file_exec(const struct durin_tool_ctx *ctx, json_t *args,
                          struct durin_tool_result *res)
{
  const char *path = json_string_value(json_object_get(args, "path"));
  const char *old = json_string_value(json_object_get(args, "old_string"));
  const char *new = json_string_value(json_object_get(args, "new_string"));
  int all = json_is_true(json_object_get(args, "replace_all"));
  struct durin_err err = { 0 };
  struct durin_buf in, out;
  size_t oldlen = strlen(old), count = 0;
  const char *p, *hit;
  int ws, fd, trunc = 0;

  if (!oldlen) {
    durin__tool_fail(res, "edit_file: old_string is empty; use write_file to "
                          "create a file");
    return 0;
  }
  if ((ws = open_ws(ctx, res)) < 0)
    return 0;
  fd = durin_path_open(ws, path, O_RDONLY | O_NONBLOCK, 0, &err);
  if (fd < 0) {
    close(ws);
    durin__tool_fail(res, "edit_file: %s", err.msg);
    return 0;
  }
  {
    struct stat st;

    if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
      close(fd);
      close(ws);
      durin__tool_fail(res, "edit_file: '%s' is not a regular file", path);
      return 0;
    }
  }
  if (read_fd(fd, 64 << 20, &in, &trunc) < 0 || trunc) {
    close(fd);
    close(ws);
    durin_buf_release(&in);
    durin__tool_fail(res, "edit_file: cannot read '%s' (or it is over 64 MiB)",
                     path);
    return 0;
  }
  close(fd);
  for (p = in.buf; (hit = strstr(p, old)); p = hit + oldlen)
    count++;
  if (count == 0 || (count > 1 && !all)) {
    close(ws);
    durin_buf_release(&in);
    if (count == 0)
      durin__tool_fail(res,
                       "edit_file: old_string was not found in '%s'; "
                       "read the file and copy the text exactly",
                       path);
    else
      durin__tool_fail(res,
                       "edit_file: old_string occurs %zu times in '%s'; "
                       "add context to make it unique or set "
                       "replace_all",
                       count, path);
    return 0;
  }
  durin_buf_init(&out, 0);
  for (p = in.buf; (hit = strstr(p, old)); p = hit + oldlen) {
    durin_buf_add(&out, p, (size_t)(hit - p));
    durin_buf_adds(&out, new);
    if (!all) {
      p = hit + oldlen;
      break;
    }
  }
  durin_buf_adds(&out, p);
  if (write_atomic(ws, ctx->box.layer, path, out.buf, out.len, &err)) {
    durin__tool_fail(res, "edit_file: %s", err.msg);
  } else {
    char msg[4200];

    snprintf(msg, sizeof(msg), "replaced %zu occurrence%s in %s",
             all ? count : 1, (all ? count : 1) == 1 ? "" : "s", path);
    res->ok = 1;
    res->output = strdup(msg);
  }
  close(ws);
  durin_buf_release(&in);
  durin_buf_release(&out);
  return 0;
}

static void list_dir(int dfd, const char *prefix, int recursive, int depth,
                     struct durin_buf *b, int *count, int max)
{
  struct dirent **names = NULL;
  DIR *d;
  int n, i, fd2 = dup(dfd);

  if (fd2 < 0)
    return;
  d = fdopendir(fd2);
  if (!d) {
    close(fd2);
    return;
  }
  /* Sorted output, so listings are stable across runs and resumes. */
  n = 0;
  {
    struct dirent *de;
    size_t cap = 0;

    while ((de = readdir(d))) {
      if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
        continue;
      if (!strcmp(de->d_name, ".git"))
        continue;
      if ((size_t)n == cap) {
        cap = cap ? cap * 2 : 32;
        names = realloc(names, cap * sizeof(*names));
      }
      names[n] = malloc(sizeof(struct dirent));
      memcpy(names[n], de, sizeof(struct dirent));
      n++;
    }
  }
  closedir(d);
  for (i = 0; i < n; i++) {
    int j;

    for (j = i + 1; j < n; j++)
      if (strcmp(names[j]->d_name, names[i]->d_name) < 0) {
        struct dirent *t = names[i];

        names[i] = names[j];
        names[j] = t;
      }
  }
  for (i = 0; i < n; i++) {
    struct stat st;
    int isdir;

    if (*count >= max) {
      if (*count == max)
        durin_buf_adds(b, "[more entries not shown]\n");
      (*count)++;
      break;
    }
    if (fstatat(dfd, names[i]->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
      continue;
    isdir = S_ISDIR(st.st_mode);
    if (durin_buf_addf(b, "%s%s%s\n", prefix, names[i]->d_name,
                       isdir               ? "/" :
                       S_ISLNK(st.st_mode) ? "@" :
                                             ""))
      break;
    (*count)++;
    if (isdir && recursive && depth < 20) {
      char sub[4200];
      int cfd = openat(dfd, names[i]->d_name,
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

      if (cfd >= 0) {
        snprintf(sub, sizeof(sub), "%s%s/", prefix, names[i]->d_name);
        list_dir(cfd, sub, recursive, depth + 1, b, count, max);
        close(cfd);
      }
    }
  }
  for (i = 0; i < n; i++)
    free(names[i]);
  free(names);
}

static int list_files_exec(const struct durin_tool_ctx *ctx, json_t *args,
                           struct durin_tool_result *res)
{
  const char *path = json_string_value(json_object_get(args, "path"));
  json_t *rec = json_object_get(args, "recursive");
  struct durin_err err = { 0 };
  struct durin_buf b;
  int ws, fd, count = 0;

  if (!path || !*path)
    path = ".";
  if ((ws = open_ws(ctx, res)) < 0)
    return 0;
  fd = durin_path_open(ws, path, O_RDONLY | O_DIRECTORY, 0, &err);
  close(ws);
  if (fd < 0) {
    durin__tool_fail(res, "list_files: %s", err.msg);
    return 0;
  }
  durin_buf_init(&b, ctx->output_cap);
  list_dir(fd, "", rec ? json_is_true(rec) : 1, 0, &b, &count, 2000);
  close(fd);
  if (count == 0)
    durin_buf_adds(&b, "(empty)\n");
  res->ok = 1;
  res->output = durin_buf_detach(&b, NULL);
  return 0;
}

static const struct durin_tool_param read_params[] = {
  { "path", DURIN_PARAM_STRING, 1, "file path relative to the workspace" },
  { NULL, 0, 0, NULL },
};
static const struct durin_tool_param write_params[] = {
  { "path", DURIN_PARAM_STRING, 1, "file path relative to the workspace" },
  { "content", DURIN_PARAM_STRING, 1, "the whole new content of the file" },
  { NULL, 0, 0, NULL },
};
static const struct durin_tool_param edit_params[] = {
  { "path", DURIN_PARAM_STRING, 1, "file path relative to the workspace" },
  { "old_string", DURIN_PARAM_STRING, 1,
    "exact text to replace; must occur exactly once unless replace_all" },
  { "new_string", DURIN_PARAM_STRING, 1, "replacement text" },
  { "replace_all", DURIN_PARAM_BOOLEAN, 0, "replace every occurrence" },
  { NULL, 0, 0, NULL },
};
static const struct durin_tool_param list_params[] = {
  { "path", DURIN_PARAM_STRING, 0, "directory relative to the workspace" },
  { "recursive", DURIN_PARAM_BOOLEAN, 0,
    "descend into subdirectories "
    "(default true)" },
  { NULL, 0, 0, NULL },
};

const struct durin_tool_def durin__tool_read_file = {
  "read_file",       "Read a text file from the workspace.",
  DURIN_EFFECT_PURE, read_params,
  read_file_exec,
};
/* Writing the same content again gives the same file: idempotent. */
const struct durin_tool_def durin__tool_write_file = {
  .name = "write_file",
  .desc = "Create or overwrite a file in the workspace.",
  .effect = DURIN_EFFECT_IDEMPOTENT,
  .params = write_params,
  .exec = write_file_exec,
  .layered = 1,
};
/* A second application of the same edit is not guaranteed to be a no-op
 * (the new text may contain the old), so an edit is unsafe to repeat on
 * its own; in its layer (the workers always give it one) it is a
 * transaction, and a call cut by a crash is simply run again. */
const struct durin_tool_def durin__tool_edit_file = {
  .name = "edit_file",
  .desc = "Replace an exact string in a workspace file.",
  .effect = DURIN_EFFECT_UNSAFE,
  .params = edit_params,
  .exec = edit_file_exec,
  .layered = 1,
};
const struct durin_tool_def durin__tool_list_files = {
  "list_files",      "List files under a workspace directory.",
  DURIN_EFFECT_PURE, list_params,
  list_files_exec,
};
