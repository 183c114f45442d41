/*
 * bench/git-snapshot: what a git checkpoint costs a step (lib/git/).
 *
 * A workspace of N small files (100 bytes, 100 to a directory) gets its
 * first snapshot, then S steps that each change one file, each followed by
 * a snapshot; then a snapshot of an unchanged workspace, a restore check
 * (durin_git_matches) and a fork's checkout of the last commit. Prints the
 * first snapshot's time, p50/p99/max of a step's, and the others, with the
 * private index in memory (every file read every step) and in a file (the
 * stat cache: only changed files read).
 *
 * With paths, each snapshot is also told the one path that changed (as
 * the worker can tell it from the calls' change sets).
 *
 *   git-snapshot [--files N] [--steps S] [--index mem|file|paths|all]
 *                [--dir DIR]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "durin/git.h"
#include "durin/util.h"

static double now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

static void die(const char *what, const struct durin_err *err)
{
  fprintf(stderr, "git-snapshot: %s: %s\n", what, err ? err->msg : "failed");
  exit(1);
}

static void write_file(const char *ws, int i, int version)
{
  char path[1100], body[128];
  FILE *f;

  snprintf(path, sizeof(path), "%s/d%03d/f%03d.txt", ws, i / 100, i % 100);
  if (!(f = fopen(path, "w")))
    die(path, NULL);
  snprintf(body, sizeof(body), "file %06d version %06d %s\n", i, version,
           "................................................................");
  fputs(body, f);
  fclose(f);
}

static void populate(const char *ws, int files)
{
  char d[1100];
  int i;

  for (i = 0; i < files; i++) {
    if (i % 100 == 0) {
      snprintf(d, sizeof(d), "%s/d%03d", ws, i / 100);
      if (mkdir(d, 0755) < 0)
        die(d, NULL);
    }
    write_file(ws, i, 0);
  }
}

static double snap(struct durin_git *g, int step, const char *path,
                   int *changed)
{
  struct durin_git_commit_opts o = { 0 };
  const char *paths[1] = { path };
  struct durin_err err = { 0 };
  char msg[32], id[DURIN_GIT_HEX];
  double t0 = now_ms();

  snprintf(msg, sizeof(msg), "step %d", step);
  o.branch = "durin/bench";
  o.message = msg;
  o.time_s = 1700000000 + step;
  if (path) {
    o.paths = paths;
    o.npaths = 1;
  }
  if (durin_git_snapshot(g, &o, id, changed, &err) != 0)
    die("snapshot", &err);
  return now_ms() - t0;
}

enum mode { MEM, FILE_INDEX, PATHS };
static const char *const mode_names[] = { "mem", "file", "file+paths" };

static void one(const char *base, int files, int steps, enum mode mode)
{
  int on_disk = mode != MEM;
  char rel[64];
  struct durin_err err = { 0 };
  struct durin_git *g = NULL;
  char ws[1024], idx[1100], fork[1100], tip[DURIN_GIT_HEX];
  double first, none, match, co, *t;
  struct durin_buf b;
  int i, changed, same;

  snprintf(ws, sizeof(ws), "%s/ws-%d-%d", base, files, (int)mode);
  snprintf(idx, sizeof(idx), "%s.index", ws);
  snprintf(fork, sizeof(fork), "%s.fork", ws);
  if (mkdir(ws, 0755) < 0)
    die(ws, NULL);
  populate(ws, files);
  if (durin_git_open(ws, DURIN_GIT_CREATE, on_disk ? idx : NULL, &g, &err))
    die("open", &err);
  first = snap(g, 0, NULL, &changed);
  t = calloc((size_t)steps, sizeof(*t));
  for (i = 0; i < steps; i++) {
    write_file(ws, (i * 37) % files, i + 1);
    snprintf(rel, sizeof(rel), "d%03d/f%03d.txt", (i * 37) % files / 100,
             (i * 37) % files % 100);
    t[i] = snap(g, i + 1, mode == PATHS ? rel : NULL, &changed);
    if (!changed)
      die("a changed file made no commit", NULL);
  }
  none = snap(g, steps + 1, mode == PATHS ? rel : NULL, &changed);
  if (changed)
    die("an unchanged workspace made a commit", NULL);
  durin_buf_init(&b, 1 << 20);
  if (durin_git_log_oneline(g, "durin/bench", 1, &b, &err))
    die("log", &err);
  durin_buf_release(&b);
  {
    FILE *p;
    char cmd[4400];

    snprintf(cmd, sizeof(cmd), "git -C %s rev-parse durin/bench", ws);
    if (!(p = popen(cmd, "r")) || !fgets(tip, sizeof(tip), p))
      die("rev-parse", NULL);
    pclose(p);
  }
  match = now_ms();
  if (durin_git_matches(g, tip, &same, NULL, &err) || !same)
    die("matches", &err);
  match = now_ms() - match;
  co = now_ms();
  if (durin_git_checkout_to(g, tip, fork, &err))
    die("checkout", &err);
  co = now_ms() - co;
  qsort(t, (size_t)steps, sizeof(*t), cmp);
  printf("git-snapshot: %5d files, index %-10s: first %7.1f ms; a step "
         "(1 file changed) p50 %6.2f p99 %6.2f max %6.2f ms; unchanged "
         "%6.2f ms; matches %6.2f ms; checkout_to %7.1f ms\n",
         files, mode_names[mode], first, t[steps / 2], t[(steps * 99) / 100],
         t[steps - 1], none, match, co);
  free(t);
  durin_git_close(g);
}

int main(int argc, char **argv)
{
  const char *dir = NULL, *index = "all";
  char tmp[256], cmd[512];
  int i, files = 1000, steps = 100;

  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--files") && i + 1 < argc)
      files = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
      steps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--index") && i + 1 < argc)
      index = argv[++i];
    else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
      dir = argv[++i];
    else {
      fprintf(stderr, "usage: git-snapshot [--files N] [--steps S] "
                      "[--index mem|file|paths|all] [--dir DIR]\n");
      return 2;
    }
  }
  if (files < 1 || steps < 1)
    return 2;
  if (!dir) {
    if (durin_mktmpdir("durin-bench-git", tmp, sizeof(tmp)) < 0)
      die("mkdtemp", NULL);
    dir = tmp;
  }
  if (!strcmp(index, "mem") || !strcmp(index, "all"))
    one(dir, files, steps, MEM);
  if (!strcmp(index, "file") || !strcmp(index, "all"))
    one(dir, files, steps, FILE_INDEX);
  if (!strcmp(index, "paths") || !strcmp(index, "all"))
    one(dir, files, steps, PATHS);
  if (dir == tmp) {
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
      return 1;
  }
  return 0;
}
