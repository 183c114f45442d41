/* Git checkpoints of the workspace: what a snapshot commits (files, a
 * nested directory, an executable, a link, never an ignored file or .git),
 * no commit for a step that changed nothing, parents and trailers, the
 * user's HEAD, index and branches untouched, a snapshot cut between its
 * commit and its ref made again, the restore check, a fork's checkout of
 * step 3 of 6, the log and the diff stat. Each runs with the in-memory
 * index and with a private index file (the stat cache). The git CLI
 * checks what libgit2 wrote. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "durin/git.h"
#include "durin/util.h"
#include "git/git-test.h"
#include "test.h"

struct fx {
  char *dir;     /* the test's temporary directory */
  char ws[4096]; /* the workspace: dir/ws */
  char idx[4096];
  const char *index_path; /* NULL, or idx */
};

static int setup_mem(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));

  f->dir = test_tmpdir();
  snprintf(f->ws, sizeof(f->ws), "%s/ws", f->dir);
  snprintf(f->idx, sizeof(f->idx), "%s/git-index", f->dir);
  assert_int_equal(mkdir(f->ws, 0755), 0);
  *state = f;
  return 0;
}

static int setup_file(void **state)
{
  struct fx *f;

  setup_mem(state);
  f = *state;
  f->index_path = f->idx;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;

  test_rmrf(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
  char cmd[8192];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(cmd, sizeof(cmd), fmt, ap);
  va_end(ap);
  if (system(cmd) != 0)
    fail_msg("command failed: %s", cmd);
}

/* The standard output of a shell command; free() it. */
static char *out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *out(const char *fmt, ...)
{
  struct durin_buf b;
  char cmd[8192], chunk[4096];
  va_list ap;
  FILE *p;
  size_t n;

  va_start(ap, fmt);
  vsnprintf(cmd, sizeof(cmd), fmt, ap);
  va_end(ap);
  durin_buf_init(&b, 1 << 24);
  assert_non_null(p = popen(cmd, "r"));
  while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
    assert_int_equal(durin_buf_add(&b, chunk, n), 0);
  pclose(p);
  return durin_buf_detach(&b, NULL);
}

static void put(struct fx *f, const char *path, const char *text)
{
  char p[8192];
  FILE *fp;

  snprintf(p, sizeof(p), "%s/%s", f->ws, path);
  assert_non_null(fp = fopen(p, "w"));
  fputs(text, fp);
  fclose(fp);
}

static struct durin_git *gopen(struct fx *f, unsigned flags)
{
  struct durin_git *g = NULL;
  struct durin_err err = { 0 };

  if (durin_git_open(f->ws, flags, f->index_path, &g, &err) != 0)
    fail_msg("open: %s", err.msg);
  return g;
}

/* One step's snapshot on durin/r1 at time 1000 + step. */
static int snap(struct durin_git *g, const char *parent, int step,
                const char *calls, int no_ref, char id[DURIN_GIT_HEX])
{
  struct durin_git_trailer tr[3];
  struct durin_git_commit_opts o = { 0 };
  struct durin_err err = { 0 };
  char msg[64], st[16];
  int changed = -1;

  snprintf(msg, sizeof(msg), "step %d", step);
  snprintf(st, sizeof(st), "%d", step);
  tr[0] = (struct durin_git_trailer){ "Durin-Run", "r1" };
  tr[1] = (struct durin_git_trailer){ "Durin-Step", st };
  tr[2] = (struct durin_git_trailer){ "Durin-Calls", calls ? calls : "" };
  o.branch = "durin/r1";
  o.parent = parent;
  o.message = msg;
  o.trailers = tr;
  o.ntrailers = calls ? 3 : 2;
  o.time_s = 1000 + step;
  o.no_ref = no_ref;
  if (durin_git_snapshot(g, &o, id, &changed, &err) != 0)
    fail_msg("snapshot of step %d: %s", step, err.msg);
  assert_true(changed == 0 || changed == 1);
  return changed;
}

static void assert_contains(const char *hay, const char *needle)
{
  if (!strstr(hay, needle))
    fail_msg("'%s' not in:\n%s", needle, hay);
}

static void assert_lacks(const char *hay, const char *needle)
{
  if (strstr(hay, needle))
    fail_msg("'%s' unexpectedly in:\n%s", needle, hay);
}

/* A plain directory: a repository is made, HEAD stays unborn, no index
 * file appears; the tree holds what git would add and nothing else; a
 * step that changed nothing makes no commit. */
static void test_init_and_snapshot(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct durin_git *g = NULL;
  char id[DURIN_GIT_HEX], id2[DURIN_GIT_HEX], *s;

  assert_int_equal(durin_git_open(f->ws, 0, NULL, &g, &err), DURIN_ENOTFOUND);
  assert_null(g);
  g = gopen(f, DURIN_GIT_CREATE);
  put(f, "a.txt", "alpha\n");
  sh("mkdir -p %s/dir/sub && echo beta > %s/dir/sub/b.txt", f->ws, f->ws);
  put(f, "run.sh", "#!/bin/sh\necho hi\n");
  sh("chmod 755 %s/run.sh && ln -s a.txt %s/link", f->ws, f->ws);
  put(f, ".gitignore", "*.log\nbuild/\n");
  put(f, "x.log", "ignored\n");
  sh("mkdir -p %s/build && echo o > %s/build/o.o", f->ws, f->ws);
  /* A FIFO is not a file git records, and must not block the read. */
  sh("mkfifo %s/pipe", f->ws);
  assert_int_equal(snap(g, NULL, 1, "c1", 0, id), 1);
  assert_int_equal(strlen(id), 40);

  s = out("git -C %s ls-tree -r durin/r1 | sed 's/ [0-9a-f]*\t/ /'", f->ws);
  assert_string_equal(s, "100644 blob .gitignore\n"
                         "100644 blob a.txt\n"
                         "100644 blob dir/sub/b.txt\n"
                         "120000 blob link\n"
                         "100755 blob run.sh\n");
  free(s);
  s = out("git -C %s cat-file -p durin/r1:link", f->ws);
  assert_string_equal(s, "a.txt");
  free(s);
  s = out("git -C %s rev-parse durin/r1", f->ws);
  assert_memory_equal(s, id, 40);
  free(s);
  /* The user's side of the new repository: HEAD unborn, no index. */
  s = out("git -C %s rev-parse -q --verify HEAD; git -C %s branch "
          "--format='%%(refname)'",
          f->ws, f->ws);
  assert_string_equal(s, "refs/heads/durin/r1\n");
  free(s);
  s = out("test -e %s/.git/index && echo index", f->ws);
  assert_string_equal(s, "");
  free(s);

  /* Nothing changed: no commit, the parent's id. Twice over. */
  assert_int_equal(snap(g, id, 2, "c2", 0, id2), 0);
  assert_string_equal(id2, id);
  assert_int_equal(snap(g, NULL, 3, NULL, 0, id2), 0);
  assert_string_equal(id2, id);
  /* A change to an ignored file is no change either. */
  put(f, "x.log", "still ignored\n");
  assert_int_equal(snap(g, id, 4, NULL, 0, id2), 0);
  s = out("git -C %s rev-list --count durin/r1", f->ws);
  assert_string_equal(s, "1\n");
  free(s);
  durin_git_close(g);
}

/* An empty workspace still gets its first commit (the branch exists). */
static void test_empty_root(void **state)
{
  struct fx *f = *state;
  struct durin_git *g = gopen(f, DURIN_GIT_CREATE);
  char id[DURIN_GIT_HEX];
  char *s;

  assert_int_equal(snap(g, NULL, 0, NULL, 0, id), 1);
  s = out("git -C %s log --format=%%T durin/r1", f->ws);
  assert_string_equal(s, "4b825dc642cb6eb9a060e54bf8d69288fbee4904\n");
  free(s);
  durin_git_close(g);
}

/* Commits chain on their parents and carry trailers git reads. */
static void test_chain_and_trailers(void **state)
{
  struct fx *f = *state;
  struct durin_git *g = gopen(f, DURIN_GIT_CREATE);
  char a[DURIN_GIT_HEX], b[DURIN_GIT_HEX], c[DURIN_GIT_HEX], *s, want[1024];

  put(f, "f", "1\n");
  assert_int_equal(snap(g, NULL, 1, "c1", 0, a), 1);
  put(f, "f", "2\n");
  assert_int_equal(snap(g, a, 2, "c2,c3", 0, b), 1);
  put(f, "g", "3\n");
  assert_int_equal(snap(g, NULL, 3, "c4", 0, c), 1); /* the tip is b */
  s = out("git -C %s log --format='%%H %%P|%%s|%%an <%%ae>|%%at|"
          "%%(trailers:key=Durin-Step,valueonly,separator=)|"
          "%%(trailers:key=Durin-Calls,valueonly,separator=)' durin/r1",
          f->ws);
  snprintf(want, sizeof(want),
           "%s %s|step 3|durin <durin@localhost>|1003|3|c4\n"
           "%s %s|step 2|durin <durin@localhost>|1002|2|c2,c3\n"
           "%s |step 1|durin <durin@localhost>|1001|1|c1\n",
           c, b, b, a, a);
  assert_string_equal(s, want);
  free(s);
  s = out("git -C %s log -1 --format=%%B durin/r1", f->ws);
  assert_string_equal(s, "step 3\n\nDurin-Run: r1\nDurin-Step: 3\n"
                         "Durin-Calls: c4\n\n");
  free(s);
  durin_git_close(g);
}

/* An existing repository with commits, a staged change, an unstaged one
 * and an untracked file: the branch starts from HEAD and holds the
 * workspace as it is; HEAD, the index, the branches and the config are
 * as they were. */
static void test_user_repo_untouched(void **state)
{
  struct fx *f = *state;
  struct durin_git *g;
  char id[DURIN_GIT_HEX], *before[5], *after[5], *s, *head;
  int i;

  sh("cd %s && git init -q -b main && git config user.name u && "
     "git config user.email u@example.com && echo one > a && git add a && "
     "git commit -qm one && echo two > b && git add b && git commit -qm two "
     "&& echo staged > a && git add a && echo unstaged > b && "
     "echo new > c && git checkout -qb topic && git checkout -q main",
     f->ws);
#define STATE(arr)                                                             \
 do {                                                                          \
  arr[0] = out("cd %s && git status --porcelain", f->ws);                      \
  arr[1] = out("cd %s && git rev-parse HEAD && git symbolic-ref HEAD", f->ws); \
  arr[2] =                                                                     \
      out("cd %s && git for-each-ref | grep -v refs/heads/durin/", f->ws);     \
  arr[3] = out("cd %s && sha256sum .git/index", f->ws);                        \
  arr[4] =                                                                     \
      out("cd %s && git config --local --list && git diff --cached", f->ws);   \
 } while (0)
  STATE(before);
  g = gopen(f, 0);
  assert_int_equal(snap(g, NULL, 1, "c1", 0, id), 1);
  put(f, "c", "newer\n");
  assert_int_equal(snap(g, NULL, 2, "c2", 0, id), 1);
  durin_git_close(g);
  put(f, "c", "new\n");
  STATE(after);
  for (i = 0; i < 5; i++) {
    assert_string_equal(after[i], before[i]);
    free(before[i]);
    free(after[i]);
  }
#undef STATE
  head = out("git -C %s rev-parse HEAD", f->ws);
  s = out("git -C %s rev-parse durin/r1~1^", f->ws);
  assert_string_equal(s, head);
  free(s);
  free(head);
  s = out("git -C %s show durin/r1~1:a durin/r1~1:b durin/r1~1:c "
          "durin/r1:c",
          f->ws);
  assert_string_equal(s, "staged\nunstaged\nnew\nnewer\n");
  free(s);
}

/* A repository the agent made inside the workspace: with a commit it is
 * recorded as git add records one (a gitlink), without one it is left
 * out; neither stops the snapshot. */
static void test_nested_repo(void **state)
{
  struct fx *f = *state;
  struct durin_git *g = gopen(f, DURIN_GIT_CREATE);
  char id[DURIN_GIT_HEX], *s;

  put(f, "top", "top\n");
  sh("cd %s && git init -q empty && echo e > empty/e && git init -q full && "
     "echo f > full/f && git -C full add f && git -C full -c user.name=u "
     "-c user.email=u@example.com commit -qm f",
     f->ws);
  assert_int_equal(snap(g, NULL, 1, NULL, 0, id), 1);
  s = out("git -C %s ls-tree -r durin/r1 | sed 's/ [0-9a-f]*\t/ /'", f->ws);
  assert_string_equal(s, "160000 commit full\n100644 blob top\n");
  free(s);
  /* Unchanged: no commit; a new commit in it: the gitlink follows. */
  assert_int_equal(snap(g, NULL, 2, NULL, 0, id), 0);
  sh("cd %s/full && echo g > g && git add g && git -c user.name=u "
     "-c user.email=u@example.com commit -qm g",
     f->ws);
  assert_int_equal(snap(g, NULL, 3, NULL, 0, id), 1);
  s = out("cd %s && test \"$(git rev-parse durin/r1:full)\" = "
          "\"$(git -C full rev-parse HEAD)\" && echo same",
          f->ws);
  assert_string_equal(s, "same\n");
  free(s);
  durin_git_close(g);
}

/* The agent can write .git: links planted where durin would write, a
 * gitfile or a commondir sending libgit2 elsewhere, are refused, and
 * nothing is written outside the workspace. */
static void test_gitdir_links(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct durin_git *g = gopen(f, DURIN_GIT_CREATE), *g2 = NULL;
  char id[DURIN_GIT_HEX], *s;
  int changed;
  struct durin_git_commit_opts o = { 0 };

  put(f, "a", "a\n");
  assert_int_equal(snap(g, NULL, 1, NULL, 0, id), 1);
  /* The reflog's directory made a link to a directory outside. */
  sh("mkdir %s/outside && rm -r %s/.git/logs/refs/heads/durin && "
     "ln -s %s/outside %s/.git/logs/refs/heads/durin",
     f->dir, f->ws, f->dir, f->ws);
  put(f, "a", "b\n");
  o.branch = "durin/r1";
  o.message = "m";
  assert_int_equal(durin_git_snapshot(g, &o, id, &changed, &err), DURIN_EINVAL);
  assert_contains(err.msg, "logs/refs/heads/durin' is not a directory");
  assert_int_equal(durin_git_advance(g, "durin/r1", id, &err), DURIN_EINVAL);
  s = out("ls -A %s/outside", f->dir);
  assert_string_equal(s, "");
  free(s);
  /* The reflog itself a link to a file outside. */
  sh("rm %s/.git/logs/refs/heads/durin && mkdir "
     "%s/.git/logs/refs/heads/durin && echo keep > %s/outside/f && "
     "ln -s %s/outside/f %s/.git/logs/refs/heads/durin/r1",
     f->ws, f->ws, f->dir, f->dir, f->ws);
  assert_int_equal(durin_git_snapshot(g, &o, id, &changed, &err), DURIN_EINVAL);
  s = out("cat %s/outside/f", f->dir);
  assert_string_equal(s, "keep\n");
  free(s);
  /* An objects fan-out directory. */
  sh("rm %s/.git/logs/refs/heads/durin/r1 && rm -rf %s/.git/objects/ab && "
     "ln -s %s/outside %s/.git/objects/ab",
     f->ws, f->ws, f->dir, f->ws);
  assert_int_equal(durin_git_snapshot(g, &o, id, &changed, &err), DURIN_EINVAL);
  durin_git_close(g);
  assert_int_equal(durin_git_open(f->ws, 0, f->index_path, &g2, &err),
                   DURIN_EINVAL);
  sh("rm %s/.git/objects/ab", f->ws);
  /* A commondir file. */
  sh("git init -q --bare %s/other.git && echo %s/other.git > "
     "%s/.git/commondir",
     f->dir, f->dir, f->ws);
  assert_int_equal(durin_git_open(f->ws, 0, f->index_path, &g2, &err),
                   DURIN_EINVAL);
  sh("rm %s/.git/commondir", f->ws);
  /* A gitfile: refused unless allowed. */
  sh("mv %s/.git %s/real.git && echo 'gitdir: %s/real.git' > %s/.git", f->ws,
     f->dir, f->dir, f->ws);
  assert_int_equal(durin_git_open(f->ws, 0, f->index_path, &g2, &err),
                   DURIN_EINVAL);
  assert_contains(err.msg, "not a directory");
  assert_int_equal(
      durin_git_open(f->ws, DURIN_GIT_ALLOW_GITFILE, f->index_path, &g2, &err),
      0);
  durin_git_close(g2);
}

/* A workspace inside a bigger repository is not its root: refused, and
 * with DURIN_GIT_CREATE it gets a repository of its own. */
static void test_inside_other_repo(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct durin_git *g = NULL;
  char id[DURIN_GIT_HEX], *s;

  sh("git init -q %s", f->dir);
  assert_int_equal(durin_git_open(f->ws, 0, NULL, &g, &err), DURIN_ENOTFOUND);
  assert_contains(err.msg, "inside");
  g = gopen(f, DURIN_GIT_CREATE);
  put(f, "x", "x\n");
  assert_int_equal(snap(g, NULL, 1, NULL, 0, id), 1);
  durin_git_close(g);
  s = out("git -C %s rev-parse --show-toplevel", f->ws);
  assert_contains(s, "/ws\n");
  free(s);
  s = out("git -C %s for-each-ref", f->dir);
  assert_string_equal(s, "");
  free(s);
}

/* The commit object made, the ref not moved (a crash between): the same
 * snapshot again gives the same commit and moves the ref; advance is
 * idempotent; a stale expected tip is refused. */
static void test_crash_between_commit_and_ref(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct durin_git *g = gopen(f, DURIN_GIT_CREATE);
  char p[DURIN_GIT_HEX], x[DURIN_GIT_HEX], y[DURIN_GIT_HEX], *s;

  put(f, "f", "1\n");
  assert_int_equal(snap(g, NULL, 1, "c1", 0, p), 1);
  put(f, "f", "2\n");
  assert_int_equal(snap(g, p, 2, "c2", 1, x), 1);
  s = out("git -C %s rev-parse durin/r1; git -C %s cat-file -t %s", f->ws,
          f->ws, x);
  assert_memory_equal(s, p, 40);
  assert_string_equal(s + 41, "commit\n");
  free(s);
  durin_git_close(g);
  /* "Restart": a new handle, the same inputs. */
  g = gopen(f, 0);
  assert_int_equal(snap(g, p, 2, "c2", 0, y), 1);
  assert_string_equal(y, x);
  s = out("git -C %s rev-parse durin/r1", f->ws);
  assert_memory_equal(s, x, 40);
  free(s);
  assert_int_equal(durin_git_advance(g, "durin/r1", x, &err), 0);
  /* Back to p (a restore to an older checkpoint), then forward again. */
  assert_int_equal(durin_git_advance(g, "durin/r1", p, &err), 0);
  assert_int_equal(durin_git_advance(g, "durin/r1", x, &err), 0);
  assert_int_equal(durin_git_advance(g, "durin/r1", "0123", &err),
                   DURIN_EINVAL);
  assert_int_equal(durin_git_advance(g, "durin/r1",
                                     "0123456789012345678901234567890123456789",
                                     &err),
                   DURIN_ENOTFOUND);
  assert_int_equal(durin_git_advance(g, "main", x, &err), DURIN_EINVAL);
  durin_git_close(g);
}

/* Another writer moves the branch between a snapshot's read of the tip
 * and its update: the update is refused and the other's commit stays. */
static char race_ws[4096], race_to[DURIN_GIT_HEX];

static void move_branch(const char *ref)
{
  sh("git -C %s update-ref %s %s", race_ws, ref, race_to);
}

static void test_ref_race(void **state)
{
  struct fx *f = *state;
  struct durin_git *g = gopen(f, DURIN_GIT_CREATE);
  struct durin_git_commit_opts o = { 0 };
  struct durin_err err = { 0 };
  char p[DURIN_GIT_HEX], q[DURIN_GIT_HEX], x[DURIN_GIT_HEX], *s;
  int changed;

  put(f, "f", "1\n");
  assert_int_equal(snap(g, NULL, 1, NULL, 0, p), 1);
  put(f, "f", "2\n");
  assert_int_equal(snap(g, NULL, 2, NULL, 0, q), 1);
  put(f, "f", "3\n");
  snprintf(race_ws, sizeof(race_ws), "%s", f->ws);
  snprintf(race_to, sizeof(race_to), "%s", p);
  durin__git_before_ref_update = move_branch;
  o.branch = "durin/r1";
  o.message = "step 3";
  o.time_s = 1003;
  assert_int_equal(durin_git_snapshot(g, &o, x, &changed, &err), DURIN_EBUSY);
  assert_contains(err.msg, "moved");
  durin__git_before_ref_update = NULL;
  s = out("git -C %s rev-parse durin/r1", f->ws);
  assert_memory_equal(s, p, 40);
  free(s);
  /* The commit was made: advance (the caller's retry) places it. */
  assert_int_equal(durin_git_advance(g, "durin/r1", x, &err), 0);
  s = out("git -C %s rev-parse durin/r1^", f->ws);
  assert_memory_equal(s, q, 40);
  free(s);
  durin_git_close(g);
}

/* A real SIGKILL between the commit object and the ref: a child process
 * snapshots and is killed at the seam; the branch has not moved, the
 * commit is in the repository, unreachable; the same snapshot in a new
 * process (here: a new handle) makes that commit and moves the branch. */
static void kill_self(const char *ref)
{
  (void)ref;
  kill(getpid(), SIGKILL);
}

static void test_sigkill_before_ref(void **state)
{
  struct fx *f = *state;
  struct durin_git *g = gopen(f, DURIN_GIT_CREATE);
  char p[DURIN_GIT_HEX], x[DURIN_GIT_HEX], *s, *lost;
  pid_t pid;
  int st;

  put(f, "f", "1\n");
  assert_int_equal(snap(g, NULL, 1, "c1", 0, p), 1);
  durin_git_close(g);
  put(f, "f", "2\n");
  fflush(NULL);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    g = gopen(f, 0);
    durin__git_before_ref_update = kill_self;
    snap(g, p, 2, "c2", 0, x);
    _exit(0); /* not reached */
  }
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  s = out("git -C %s rev-parse durin/r1", f->ws);
  assert_memory_equal(s, p, 40);
  free(s);
  lost = out("git -C %s fsck --no-reflogs --unreachable 2>/dev/null | "
             "sed -n 's/^unreachable commit //p'",
             f->ws);
  assert_int_equal(strlen(lost), 41);
  g = gopen(f, 0);
  assert_int_equal(snap(g, p, 2, "c2", 0, x), 1);
  assert_memory_equal(x, lost, 40);
  s = out("git -C %s rev-parse durin/r1", f->ws);
  assert_memory_equal(s, x, 40);
  free(s);
  free(lost);
  durin_git_close(g);
}

/* The restore check: the same files match, and each kind of difference
 * is named with its path. */
static void test_matches(void **state)
{
  struct fx *f = *state;
  struct durin_git *g = gopen(f, DURIN_GIT_CREATE);
  struct durin_err err = { 0 };
  struct durin_buf why;
  char id[DURIN_GIT_HEX];
  int same = -1;

  durin_buf_init(&why, 4096);
  put(f, "a", "a\n");
  put(f, "b", "b\n");
  sh("mkdir %s/d && echo c > %s/d/c && ln -s a %s/l", f->ws, f->ws, f->ws);
  assert_int_equal(snap(g, NULL, 1, NULL, 0, id), 1);
  assert_int_equal(durin_git_matches(g, id, &same, &why, &err), 0);
  assert_int_equal(same, 1);
  assert_string_equal(why.buf, "");

  put(f, "a", "A\n");
  sh("rm %s/b && echo n > %s/d/new && chmod +x %s/d/c", f->ws, f->ws, f->ws);
  assert_int_equal(durin_git_matches(g, id, &same, &why, &err), 0);
  assert_int_equal(same, 0);
  assert_contains(why.buf, "M a\n");
  assert_contains(why.buf, "D b\n");
  assert_contains(why.buf, "A d/new\n");
  assert_contains(why.buf, "M d/c\n");
  assert_lacks(why.buf, " l\n");

  durin_buf_reset(&why);
  put(f, "a", "a\n");
  put(f, "b", "b\n");
  sh("rm %s/d/new && chmod -x %s/d/c && rm %s/l && ln -s b %s/l", f->ws, f->ws,
     f->ws, f->ws);
  assert_int_equal(durin_git_matches(g, id, &same, &why, &err), 0);
  assert_int_equal(same, 0);
  assert_string_equal(why.buf, "M l\n");

  durin_buf_reset(&why);
  sh("rm %s/l && ln -s a %s/l", f->ws, f->ws);
  assert_int_equal(durin_git_matches(g, id, &same, &why, &err), 0);
  assert_int_equal(same, 1);
  /* A later snapshot after matches() sees the same workspace. */
  assert_int_equal(snap(g, id, 2, NULL, 0, id), 0);
  assert_int_equal(durin_git_matches(g,
                                     "0123456789012345678901234567890123456789",
                                     &same, &why, &err),
                   DURIN_ENOTFOUND);
  durin_buf_release(&why);
  durin_git_close(g);
}

/* Six steps (files added, changed, deleted, made executable, a link
 * retargeted, a directory removed); checkout_to of step 3 holds step 3's
 * tree byte for byte, as git archive extracts it. */
static void test_fork_at_step_3(void **state)
{
  struct fx *f = *state;
  struct durin_git *g = gopen(f, DURIN_GIT_CREATE);
  struct durin_err err = { 0 };
  char ids[7][DURIN_GIT_HEX], *s, *t;
  int i;

  put(f, "keep", "keep\n");
  sh("mkdir -p %s/d/e && echo deep > %s/d/e/f && ln -s keep %s/l", f->ws, f->ws,
     f->ws);
  assert_int_equal(snap(g, NULL, 1, "c1", 0, ids[1]), 1);
  put(f, "two", "two\n");
  sh("chmod +x %s/keep", f->ws);
  assert_int_equal(snap(g, ids[1], 2, "c2", 0, ids[2]), 1);
  sh("rm %s/l && ln -s two %s/l && printf 'bin\\0ary' > %s/bin", f->ws, f->ws,
     f->ws);
  put(f, "two", "two, changed\n");
  assert_int_equal(snap(g, ids[2], 3, "c3", 0, ids[3]), 1);
  sh("rm -r %s/d", f->ws);
  assert_int_equal(snap(g, ids[3], 4, "c4", 0, ids[4]), 1);
  put(f, "five", "5\n");
  assert_int_equal(snap(g, ids[4], 5, "c5", 0, ids[5]), 1);
  sh("rm %s/two", f->ws);
  assert_int_equal(snap(g, ids[5], 6, "c6", 0, ids[6]), 1);

  {
    char fork[4200], ref[4200];

    snprintf(fork, sizeof(fork), "%s/fork", f->dir);
    snprintf(ref, sizeof(ref), "%s/ref", f->dir);
    if (durin_git_checkout_to(g, ids[3], fork, &err) != 0)
      fail_msg("checkout: %s", err.msg);
    sh("mkdir %s && git -C %s archive %s | tar -x -C %s", ref, f->ws, ids[3],
       ref);
    sh("diff -r --no-dereference %s %s", ref, fork);
    s = out("cd %s && find . -type f -perm -u+x | sort", fork);
    t = out("cd %s && find . -type f -perm -u+x | sort", ref);
    assert_string_equal(s, t);
    assert_string_equal(s, "./keep\n");
    free(s);
    free(t);
    s = out("readlink %s/l; cat %s/two; test -e %s/five || echo no-five; "
            "cat %s/d/e/f",
            fork, fork, fork, fork);
    assert_string_equal(s, "two\ntwo, changed\nno-five\ndeep\n");
    free(s);
    /* No .git in a fork, and the workspace's repository is as it was. */
    s = out("test -e %s/.git || echo none", fork);
    assert_string_equal(s, "none\n");
    free(s);
    /* Into a directory that holds a file of the tree: refused, kept. */
    snprintf(fork, sizeof(fork), "%s/fork2", f->dir);
    sh("mkdir %s && echo mine > %s/two", fork, fork);
    assert_int_equal(durin_git_checkout_to(g, ids[3], fork, &err),
                     DURIN_EEXIST);
    s = out("cat %s/two", fork);
    assert_string_equal(s, "mine\n");
    free(s);
  }
  for (i = 1; i <= 6; i++)
    assert_int_equal(strlen(ids[i]), 40);
  durin_git_close(g);
}

struct log_seen {
  int n;
  char lines[8][128];
};

static int on_log(void *arg, const struct durin_git_log_entry *e)
{
  struct log_seen *l = arg;

  snprintf(l->lines[l->n++], sizeof(l->lines[0]), "%s|%s|%s|%s|%lld|%d",
           e->summary, e->run ? e->run : "-", e->step ? e->step : "-",
           e->calls ? e->calls : "-", (long long)e->time_s, e->ntrailers);
  assert_int_equal(strlen(e->id), 40);
  assert_true(strlen(e->short_id) >= 7);
  assert_memory_equal(e->id, e->short_id, strlen(e->short_id));
  return 0;
}

static void test_log(void **state)
{
  struct fx *f = *state;
  struct durin_git *g = gopen(f, DURIN_GIT_CREATE);
  struct durin_err err = { 0 };
  struct log_seen l = { 0 };
  struct durin_buf b;
  char id[DURIN_GIT_HEX], *s;
  int i;

  for (i = 1; i <= 10; i++) {
    char text[16];

    snprintf(text, sizeof(text), "%d\n", i);
    put(f, "n", text);
    assert_int_equal(snap(g, NULL, i, i % 2 ? "c1" : NULL, 0, id), 1);
  }
  assert_int_equal(durin_git_log(g, "durin/r1", 3, on_log, &l, &err), 0);
  assert_int_equal(l.n, 3);
  assert_string_equal(l.lines[0], "step 10|r1|10|-|1010|2");
  assert_string_equal(l.lines[1], "step 9|r1|9|c1|1009|3");
  assert_string_equal(l.lines[2], "step 8|r1|8|-|1008|2");
  durin_buf_init(&b, 4096);
  assert_int_equal(durin_git_log_oneline(g, "durin/r1", 8, &b, &err), 0);
  s = out("git -C %s log --oneline -8 durin/r1", f->ws);
  assert_string_equal(b.buf, s);
  free(s);
  assert_int_equal(durin_git_log(g, "durin/r2", 3, on_log, &l, &err),
                   DURIN_ENOTFOUND);
  durin_buf_release(&b);
  durin_git_close(g);
}

static void test_diff(void **state)
{
  struct fx *f = *state;
  struct durin_git *g = gopen(f, DURIN_GIT_CREATE);
  struct durin_err err = { 0 };
  struct durin_git_diffstat st;
  struct durin_buf patch;
  char a[DURIN_GIT_HEX], b[DURIN_GIT_HEX], *s;

  put(f, "a", "1\n2\n3\n");
  put(f, "gone", "x\ny\n");
  assert_int_equal(snap(g, NULL, 1, NULL, 0, a), 1);
  put(f, "a", "1\ntwo\n3\n4\n5\n");
  put(f, "b", "b1\nb2\nb3\nb4\n");
  sh("rm %s/gone", f->ws);
  assert_int_equal(snap(g, a, 2, NULL, 0, b), 1);
  durin_buf_init(&patch, 1 << 20);
  assert_int_equal(durin_git_diff(g, a, b, &st, &patch, &err), 0);
  assert_int_equal(st.files, 3);
  assert_int_equal(st.insertions, 7);
  assert_int_equal(st.deletions, 3);
  s = out("git -C %s diff --shortstat %s %s", f->ws, a, b);
  assert_string_equal(s, " 3 files changed, 7 insertions(+), 3 deletions(-)\n");
  free(s);
  s = out("git -C %s diff --no-renames %s %s", f->ws, a, b);
  assert_string_equal(patch.buf, s);
  free(s);
  /* From the empty tree. */
  assert_int_equal(durin_git_diff(g, NULL, a, &st, NULL, &err), 0);
  assert_int_equal(st.files, 2);
  assert_int_equal(st.insertions, 5);
  assert_int_equal(st.deletions, 0);
  /* A patch over its cap. */
  durin_buf_release(&patch);
  durin_buf_init(&patch, 16);
  assert_int_equal(durin_git_diff(g, a, b, &st, &patch, &err), DURIN_ETOOBIG);
  assert_int_equal(st.files, 3);
  durin_buf_release(&patch);
  durin_git_close(g);
}

/* A snapshot told which paths changed looks at those only: files, a new
 * directory, a removed one; a change elsewhere waits for a full one. */
static void test_paths_hint(void **state)
{
  struct fx *f = *state;
  struct durin_git *g = gopen(f, DURIN_GIT_CREATE);
  struct durin_git_commit_opts o = { 0 };
  struct durin_err err = { 0 };
  const char *paths[] = { "a", "new/x", "gone" };
  char p[DURIN_GIT_HEX], id[DURIN_GIT_HEX], *s;
  int changed;

  put(f, "a", "a\n");
  put(f, "b", "b\n");
  sh("mkdir -p %s/gone/deep && echo g > %s/gone/deep/g", f->ws, f->ws);
  assert_int_equal(snap(g, NULL, 1, NULL, 0, p), 1);
  put(f, "a", "a2\n");
  put(f, "b", "b2\n"); /* not in the list */
  sh("mkdir %s/new && echo x > %s/new/x && rm -r %s/gone", f->ws, f->ws, f->ws);
  o.branch = "durin/r1";
  o.parent = p;
  o.message = "step 2";
  o.time_s = 1002;
  o.paths = paths;
  o.npaths = 3;
  assert_int_equal(durin_git_snapshot(g, &o, id, &changed, &err), 0);
  assert_int_equal(changed, 1);
  s = out("git -C %s ls-tree -r --name-only durin/r1 && git -C %s show "
          "durin/r1:a durin/r1:b",
          f->ws, f->ws);
  assert_string_equal(s, "a\nb\nnew/x\na2\nb\n");
  free(s);
  /* Nothing in the list changed: no commit, though b did. */
  o.parent = id;
  o.npaths = 1;
  assert_int_equal(durin_git_snapshot(g, &o, p, &changed, &err), 0);
  assert_int_equal(changed, 0);
  /* A full snapshot sees b. */
  assert_int_equal(snap(g, id, 3, NULL, 0, p), 1);
  s = out("git -C %s show durin/r1:b", f->ws);
  assert_string_equal(s, "b2\n");
  free(s);
  durin_git_close(g);
}

/* A file rewritten at once with the same size (same second, maybe the
 * same clock tick): the stat cache must not take it for unchanged. */
static void test_racy_rewrite(void **state)
{
  struct fx *f = *state;
  struct durin_git *g = gopen(f, DURIN_GIT_CREATE);
  char id[DURIN_GIT_HEX], prev[DURIN_GIT_HEX];
  int i;

  put(f, "r", "aaaa\n");
  put(f, "r0", "unchanged\n");
  assert_int_equal(snap(g, NULL, 0, NULL, 0, prev), 1);
  for (i = 1; i <= 20; i++) {
    char text[16];

    snprintf(text, sizeof(text), "%c%c%c%c\n", 'a' + i, 'a' + i, 'a' + i,
             'a' + i);
    put(f, "r", text);
    assert_int_equal(snap(g, prev, i, NULL, 0, id), 1);
    strcpy(prev, id);
  }
  durin_git_close(g);
  /* A new handle over the same index file sees the workspace the same,
   * even after a crash left the index's lock file (or garbage for it). */
  if (f->index_path) {
    sh("echo garbage > %s.lock", f->index_path);
    g = gopen(f, 0);
    put(f, "r", "yyyy\n");
    /* Same bytes, new times: read again, and its stat data written. */
    sh("touch -d 2001-01-01 %s/r0", f->ws);
    assert_int_equal(snap(g, prev, 21, NULL, 0, id), 1);
    strcpy(prev, id);
    durin_git_close(g);
    sh("echo garbage > %s", f->index_path);
  }
  g = gopen(f, 0);
  put(f, "r", "zzzz\n");
  assert_int_equal(snap(g, prev, 21, NULL, 0, id), 1);
  assert_int_equal(snap(g, id, 22, NULL, 0, prev), 0);
  durin_git_close(g);
}

static void test_branch_names(void **state)
{
  struct durin_err err = { 0 };
  char b[64];

  (void)state;
  assert_int_equal(durin_git_branch_name("r0123abcd", b, sizeof(b), &err), 0);
  assert_string_equal(b, "durin/r0123abcd");
  assert_true(durin_git_branch_valid("durin/r-1_2.3"));
  assert_false(durin_git_branch_valid("durin/"));
  assert_false(durin_git_branch_valid("durin/a..b"));
  assert_false(durin_git_branch_valid("durin/a/b"));
  assert_false(durin_git_branch_valid("durin/.a"));
  assert_false(durin_git_branch_valid("durin/-a"));
  assert_false(durin_git_branch_valid("durin/a.lock"));
  assert_false(durin_git_branch_valid("durin/a b"));
  assert_false(durin_git_branch_valid("main"));
  assert_false(durin_git_branch_valid(NULL));
  assert_int_equal(durin_git_branch_name("a~1", b, sizeof(b), &err),
                   DURIN_EINVAL);
  assert_int_equal(durin_git_branch_name("abc", b, 8, &err), DURIN_EINVAL);
}

#define BOTH(t)                                           \
 cmocka_unit_test_setup_teardown(t, setup_mem, teardown), \
     cmocka_unit_test_setup_teardown(t, setup_file, teardown)

int main(void)
{
  const struct CMUnitTest tests[] = {
    BOTH(test_init_and_snapshot),
    BOTH(test_empty_root),
    BOTH(test_chain_and_trailers),
    BOTH(test_user_repo_untouched),
    BOTH(test_inside_other_repo),
    BOTH(test_nested_repo),
    BOTH(test_gitdir_links),
    BOTH(test_crash_between_commit_and_ref),
    BOTH(test_ref_race),
    BOTH(test_sigkill_before_ref),
    BOTH(test_matches),
    BOTH(test_fork_at_step_3),
    BOTH(test_log),
    BOTH(test_diff),
    BOTH(test_racy_rewrite),
    BOTH(test_paths_hint),
    cmocka_unit_test(test_branch_names),
  };

  /* The git CLI must not read the tester's settings. */
  setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
  setenv("GIT_AUTHOR_DATE", "2000-01-01T00:00:00Z", 1);
  setenv("GIT_COMMITTER_DATE", "2000-01-01T00:00:00Z", 1);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
