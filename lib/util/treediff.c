/*
 * Two trees compared file by file: what `durin diff` shows and what a
 * review artifact holds (include/durin/util.h, durin_tree_diff).
 *
 * The two trees are walked here rather than handed to `diff -ruN`, which
 * takes a file only one side has for an empty file on the other and calls
 * a new build artefact "Binary files ... differ", and whose -rq has no
 * counts. Text files still go through `diff -u`, one file at a time; this
 * file decides which files changed, and says what a binary change was.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "durin/util.h"

extern char **environ;

/* A root and a path under it; longer fails in the syscall, not here. */
#define PATH_BUF (2 * PATH_MAX + 8)

/* A changed path: which side has it, and what changed. */
struct change {
  char *path;           /* relative to both roots */
  struct stat old, new; /* st_mode 0: that side does not have it */
  int binary;
  long adds, dels; /* text lines, filled for --stat */
};

struct changes {
  struct change *v;
  size_t n, alloc;
  size_t insertions, deletions;
};

static int push_path(struct changes *c, const char *path)
{
  if (c->n == c->alloc) {
    size_t alloc = c->alloc ? 2 * c->alloc : 64;
    struct change *v = realloc(c->v, alloc * sizeof(*v));

    if (!v)
      return -1;
    c->v = v;
    c->alloc = alloc;
  }
  memset(&c->v[c->n], 0, sizeof(c->v[0]));
  if (!(c->v[c->n].path = strdup(path)))
    return -1;
  c->n++;
  return 0;
}

static void changes_clear(struct changes *c)
{
  size_t i;

  for (i = 0; i < c->n; i++)
    free(c->v[i].path);
  free(c->v);
  memset(c, 0, sizeof(*c));
}

/* Every non-directory under root/rel, as paths relative to root. The
 * path buffers are on the heap: an agent may nest directories as deep as
 * a path allows, and each level recurses. */
static int collect(const char *root, const char *rel, struct changes *c,
                   struct durin_err *err)
{
  char *dir = malloc(PATH_BUF), *path = malloc(PATH_BUF);
  struct dirent *de;
  struct stat st;
  DIR *d = NULL;
  int r = 0;

  if (!dir || !path) {
    r = durin_err_set(err, DURIN_EIO, "out of memory");
    goto out;
  }
  snprintf(dir, PATH_BUF, "%s%s%s", root, *rel ? "/" : "", rel);
  if (!(d = opendir(dir))) {
    r = durin_err_set(err, DURIN_EIO, "cannot read '%s': %s", dir,
                      strerror(errno));
    goto out;
  }
  while (!r && (de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    /* The workspace's repository is not its content: with git
     * checkpoints each step adds objects and moves durin/RUN there
     * (its history is `durin log`). */
    if (!*rel && !strcmp(de->d_name, ".git"))
      continue;
    if ((size_t)snprintf(path, PATH_BUF, "%s%s%s", rel, *rel ? "/" : "",
                         de->d_name) >= PATH_BUF ||
        (size_t)snprintf(dir, PATH_BUF, "%s/%s", root, path) >= PATH_BUF) {
      r = durin_err_set(err, DURIN_EIO,
                        "a path under '%s' is too long to compare", root);
      break;
    }
    if (lstat(dir, &st))
      continue; /* gone while we looked: nothing to show */
    if (S_ISDIR(st.st_mode))
      r = collect(root, path, c, err);
    else if (push_path(c, path))
      r = durin_err_set(err, DURIN_EIO, "out of memory");
  }
out:
  if (d)
    closedir(d);
  free(dir);
  free(path);
  return r;
}

static int by_path(const void *a, const void *b)
{
  return strcmp(((const struct change *)a)->path,
                ((const struct change *)b)->path);
}

/*
 * Fills st for root/path; st_mode 0 when absent or neither a file nor a
 * symlink. Like git, a FIFO, socket or device is not content: reading a
 * FIFO an agent left behind would hang the diff.
 */
static void side(const char *root, const char *path, struct stat *st)
{
  char full[PATH_BUF];

  snprintf(full, sizeof(full), "%s/%s", root, path);
  if (lstat(full, st) || !(S_ISREG(st->st_mode) || S_ISLNK(st->st_mode)))
    memset(st, 0, sizeof(*st));
}

/* As git decides: a NUL in the first 8000 bytes makes a file binary. */
static int is_binary(const char *root, const char *path)
{
  char full[PATH_BUF], buf[8000];
  size_t n;
  FILE *f;

  snprintf(full, sizeof(full), "%s/%s", root, path);
  if (!(f = fopen(full, "rb")))
    return 0;
  n = fread(buf, 1, sizeof(buf), f);
  fclose(f);
  return memchr(buf, 0, n) != NULL;
}

static int same_content(const char *a, const char *b)
{
  char x[65536], y[65536];
  FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
  size_t n, m;
  int same = fa && fb;

  while (same) {
    n = fread(x, 1, sizeof(x), fa);
    m = fread(y, 1, sizeof(y), fb);
    if (n != m || memcmp(x, y, n))
      same = 0;
    else if (n == 0)
      break;
  }
  if (fa)
    fclose(fa);
  if (fb)
    fclose(fb);
  return same;
}

static int same_link(const char *a, const char *b)
{
  char x[PATH_MAX], y[PATH_MAX];
  ssize_t n = readlink(a, x, sizeof(x)), m = readlink(b, y, sizeof(y));

  return n >= 0 && n == m && !memcmp(x, y, (size_t)n);
}

/* Whether the path is the same on both sides (content and mode). */
static int unchanged(const char *base, const char *ws, const struct change *c)
{
  char a[PATH_BUF], b[PATH_BUF];

  if (!c->old.st_mode || !c->new.st_mode ||
      (c->old.st_mode & S_IFMT) != (c->new.st_mode &S_IFMT) ||
      (c->old.st_mode & 0111) != (c->new.st_mode & 0111))
    return 0;
  snprintf(a, sizeof(a), "%s/%s", base, c->path);
  snprintf(b, sizeof(b), "%s/%s", ws, c->path);
  if (S_ISLNK(c->old.st_mode))
    return same_link(a, b);
  return c->old.st_size == c->new.st_size &&same_content(a, b);
}

/* Copies what diff wrote into out, or only counts its +/- lines. */
static void read_diff(FILE *f, struct change *c, int count, FILE *out)
{
  char line[4096];
  size_t n;
  int lineno = 0, bol = 1;

  if (!count) {
    while ((n = fread(line, 1, sizeof(line), f)) > 0)
      fwrite(line, 1, n, out);
    return;
  }
  /* The first two lines are the ---/+++ header, not changes; a line
   * longer than the buffer is counted once, at its start. */
  while (fgets(line, sizeof(line), f)) {
    if (bol && ++lineno > 2 && line[0] == '+')
      c->adds++;
    else if (bol && lineno > 2 && line[0] == '-')
      c->dels++;
    bol = strchr(line, '\n') != NULL;
  }
}

/*
 * `diff -u` of one text file, with git's a/ and b/ names; a side that
 * does not have it is /dev/null. Written to out, or with count only
 * counted. Its output comes through a pipe, so out may be any stream
 * (the API's is in memory); posix_spawn, not fork, as the API's threads
 * call this too. Returns 0, or -1 if diff could not run.
 */
static int diff_text(const char *base, const char *ws, struct change *c,
                     int count, FILE *out)
{
  char a[PATH_BUF], b[PATH_BUF], la[PATH_BUF], lb[PATH_BUF];
  char *argv[] = { "diff",
                   "-u",
                   "--label",
                   c->old.st_mode ? la : "/dev/null",
                   "--label",
                   c->new.st_mode ? lb : "/dev/null",
                   c->old.st_mode ? a : "/dev/null",
                   c->new.st_mode ? b : "/dev/null",
                   NULL };
  posix_spawn_file_actions_t fa;
  int fds[2], status, rc;
  pid_t pid;
  FILE *f;

  snprintf(a, sizeof(a), "%s/%s", base, c->path);
  snprintf(b, sizeof(b), "%s/%s", ws, c->path);
  snprintf(la, sizeof(la), "a/%s", c->path);
  snprintf(lb, sizeof(lb), "b/%s", c->path);
  /* Close-on-exec: a call spawned meanwhile by another thread must not
   * hold the pipe open. dup2 onto 1 clears the flag there. */
  if (pipe2(fds, O_CLOEXEC))
    return -1;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  rc = posix_spawnp(&pid, "diff", &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc) {
    close(fds[0]);
    return -1;
  }
  if ((f = fdopen(fds[0], "r"))) {
    read_diff(f, c, count, out);
    fclose(f);
  } else {
    close(fds[0]);
  }
  /* A signal for the process may land in this thread (durin serve). */
  while ((rc = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
    ;
  if (rc < 0)
    return -1;
  /* diff exits 1 when the files differ: that is the point here. */
  return WIFEXITED(status) && WEXITSTATUS(status) <= 1 ? 0 : -1;
}

static void print_link(const char *kind, const char *root,
                       const struct change *c, FILE *out)
{
  char full[PATH_BUF], to[PATH_MAX];
  ssize_t n;

  snprintf(full, sizeof(full), "%s/%s", root, c->path);
  n = readlink(full, to, sizeof(to) - 1);
  to[n > 0 ? n : 0] = 0;
  fprintf(out, "%s %s -> %s\n", kind, c->path, to);
}

/* One changed path, git-like: headers, then the diff or a line for it. */
static int print_change(const char *base, const char *ws, struct change *c,
                        FILE *out)
{
  int link = S_ISLNK(c->old.st_mode) || S_ISLNK(c->new.st_mode);

  if (link) { /* a link, or a file that became one (or the reverse) */
    if (S_ISLNK(c->old.st_mode))
      print_link(c->new.st_mode ? "old symlink" : "deleted symlink", base, c,
                 out);
    else if (c->old.st_mode)
      fprintf(out, "old file %s (%lld bytes)\n", c->path,
              (long long)c->old.st_size);
    if (S_ISLNK(c->new.st_mode))
      print_link("new symlink", ws, c, out);
    else if (c->new.st_mode)
      fprintf(out, "new file %s (%lld bytes)\n", c->path,
              (long long)c->new.st_size);
    return 0;
  }
  if (c->binary) {
    if (!c->old.st_mode)
      fprintf(out, "new file %s (binary, %lld bytes)\n", c->path,
              (long long)c->new.st_size);
    else if (!c->new.st_mode)
      fprintf(out, "deleted file %s (binary, %lld bytes)\n", c->path,
              (long long)c->old.st_size);
    else
      fprintf(out, "binary file %s changed (%lld -> %lld bytes)\n", c->path,
              (long long)c->old.st_size, (long long)c->new.st_size);
    return 0;
  }
  fprintf(out, "diff --git a/%s b/%s\n", c->path, c->path);
  if (!c->old.st_mode)
    fprintf(out, "new file mode %o\n", (unsigned)c->new.st_mode);
  else if (!c->new.st_mode)
    fprintf(out, "deleted file mode %o\n", (unsigned)c->old.st_mode);
  else if (c->old.st_mode != c->new.st_mode)
    fprintf(out, "old mode %o\nnew mode %o\n", (unsigned)c->old.st_mode,
            (unsigned)c->new.st_mode);
  return diff_text(base, ws, c, 0, out);
}

static int digits(long n)
{
  int d = 1;

  while (n >= 10)
    n /= 10, d++;
  return d;
}

/*
 * git's diffstat: " path | N +++--" scaled to 80 columns, "Bin A -> B
 * bytes" for binary files, then the totals.
 */
static void print_stat(struct changes *cs, FILE *out)
{
  size_t i, name_w = 0, files = 0;
  long most = 0;
  int count_w, graph_w, k, bin = 0;

  for (i = 0; i < cs->n; i++) {
    struct change *c = &cs->v[i];

    if (strlen(c->path) > name_w)
      name_w = strlen(c->path);
    if (c->adds + c->dels > most)
      most = c->adds + c->dels;
    bin |= c->binary;
  }
  count_w = digits(most);
  if (bin && count_w < 3)
    count_w = 3; /* the column fits "Bin" */
  graph_w = 80 - (int)name_w - count_w - 4;
  if (graph_w < 10)
    graph_w = 10;
  for (i = 0; i < cs->n; i++) {
    struct change *c = &cs->v[i];
    long total = c->adds + c->dels, plus = c->adds, minus = c->dels;

    files++;
    if (c->binary) {
      fprintf(out, " %-*s | Bin %lld -> %lld bytes\n", (int)name_w, c->path,
              (long long)c->old.st_size, (long long)c->new.st_size);
      continue;
    }
    if (most > graph_w) { /* scale, but a change never shrinks to nothing */
      plus = c->adds ? (c->adds * graph_w + most - 1) / most : 0;
      minus = c->dels ? (c->dels * graph_w + most - 1) / most : 0;
      if (plus + minus > graph_w)
        plus > minus ? plus-- : minus--;
    }
    fprintf(out, " %-*s | %*ld ", (int)name_w, c->path, count_w, total);
    for (k = 0; k < plus; k++)
      fputc('+', out);
    for (k = 0; k < minus; k++)
      fputc('-', out);
    fputc('\n', out);
    cs->insertions += (size_t)c->adds;
    cs->deletions += (size_t)c->dels;
  }
  fprintf(out, " %zu file%s changed", files, files == 1 ? "" : "s");
  if (cs->insertions || !cs->deletions)
    fprintf(out, ", %zu insertion%s(+)", cs->insertions,
            cs->insertions == 1 ? "" : "s");
  if (cs->deletions || !cs->insertions)
    fprintf(out, ", %zu deletion%s(-)", cs->deletions,
            cs->deletions == 1 ? "" : "s");
  fputc('\n', out);
}

int durin_tree_diff(const char *base, const char *ws, int stat, FILE *out,
                    struct durin_err *err)
{
  struct changes cs = { 0 };
  size_t i, j;
  int r = 0;

  if ((r = collect(base, "", &cs, err)) || (r = collect(ws, "", &cs, err))) {
    changes_clear(&cs);
    return r;
  }
  if (cs.n) /* an empty workspace on both sides: cs.v is NULL */
    qsort(cs.v, cs.n, sizeof(cs.v[0]), by_path);
  /* Keep one entry per path, and only the changed ones. */
  for (i = j = 0; i < cs.n; i++) {
    struct change *c = &cs.v[i];

    if (j && !strcmp(cs.v[j - 1].path, c->path)) {
      free(c->path);
      continue;
    }
    side(base, c->path, &c->old);
    side(ws, c->path, &c->new);
    if ((!c->old.st_mode && !c->new.st_mode) || unchanged(base, ws, c)) {
      free(c->path);
      continue;
    }
    c->binary = (S_ISREG(c->old.st_mode) && is_binary(base, c->path)) ||
                (S_ISREG(c->new.st_mode) && is_binary(ws, c->path));
    cs.v[j++] = *c;
  }
  cs.n = j;
  for (i = 0; i < cs.n && !r; i++) {
    struct change *c = &cs.v[i];
    int link = S_ISLNK(c->old.st_mode) || S_ISLNK(c->new.st_mode);

    if (!stat)
      r = print_change(base, ws, c, out);
    else if (link) /* a link's target counts as its one line */
      c->adds = !!c->new.st_mode, c->dels = !!c->old.st_mode;
    else if (!c->binary)
      r = diff_text(base, ws, c, 1, out);
  }
  if (r)
    r = durin_err_set(err, DURIN_EIO,
                      "cannot run diff (is diffutils installed?)");
  else if (stat && cs.n)
    print_stat(&cs, out);
  changes_clear(&cs);
  return r;
}
