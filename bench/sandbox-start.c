/*
 * bench/sandbox-start: how long one sandboxed /bin/true takes, start to
 * reaped exit, p50 and p99 over N calls, side by side in the same run:
 *
 *   plain      fork + exec of /bin/true, no isolation (the floor)
 *   tool call  libexec/durin-sandbox with the seccomp program compiled
 *              once and passed by descriptor: what a worker's tool call
 *              pays
 *   cli        `durin sandbox -- /bin/true`: the above plus loading the
 *              durin binary and compiling the program per call
 *   bwrap      Debian's bwrap with the same namespaces, a read-only
 *              system, /proc, /dev, /tmp, the workspace, no capabilities,
 *              a new session and the same seccomp program
 *   write      a tool call that writes one file, straight into the
 *              workspace (as a call that can reach outside runs)
 *   in layer   the same call as a transaction on the workspace: its layer
 *              made, the workspace an overlay in the sandbox, then the
 *              change set read and the layer merged (what a contained
 *              call waits for; lib/sandbox/layer.c). Removing the merged
 *              layer's directories is done off the call's path by a
 *              worker and is shown apart.
 *
 *   sandbox-start BUILD_DIR [N]      (default N=200)
 *
 * Times are taken here with CLOCK_MONOTONIC around posix fork/exec/wait,
 * so no shell or date(1) overhead is in them.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "durin/sandbox.h"
#include "durin/util.h"

static double now_ms(void)
{
  struct timespec t;

  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

/* Runs argv once (keeping fd keep open in the child); its time in ms, or
 * -1 when it did not exit 0. */
static double once(char *const argv[], int keep)
{
  double t0 = now_ms();
  int st;
  pid_t p = fork();

  if (p == 0) {
    int null = open("/dev/null", O_WRONLY);

    dup2(null, 1);
    dup2(null, 2);
    if (keep >= 0) {
      fcntl(keep, F_SETFD, 0);
      lseek(keep, 0, SEEK_SET); /* bwrap reads it; the helper preads */
    }
    execv(argv[0], argv);
    _exit(127);
  }
  if (p < 0 || waitpid(p, &st, 0) != p || !WIFEXITED(st) ||
      WEXITSTATUS(st) != 0)
    return -1;
  return now_ms() - t0;
}

struct variant {
  const char *label;
  char *const *argv;
  int keep;
  double *v;
  int failed;
  double (*fn)(void); /* instead of argv: a whole call, timed */
};

/* The layered call: set by main. */
static const char *lay_helper, *lay_ws;
static int lay_sfd;
static int lay_step;
/* Where a layered call's time goes: before the helper, in it, after;
 * and the removal of its directories, which a worker does meanwhile. */
static double lay_pre, lay_run, lay_post, lay_clean;

static double layered_call(void)
{
  char layer[4200];
  char *cmd[] = { "/bin/sh", "-c", "echo x > f", NULL };
  struct durin_sandbox_opts o = { 0 };
  struct durin_err err = { 0 };
  double t0 = now_ms(), t, pre, end;
  char **argv;
  json_t *ch;

  lay_step++;
  if (durin_layer_begin(lay_ws, lay_step, 0, 1, layer, sizeof(layer), &err))
    return -1;
  o.workspace = lay_ws;
  o.lower[o.nlower++] = lay_ws;
  o.layers = layer;
  argv = durin_sandbox_argv(lay_helper, &o, lay_sfd, -1, cmd);
  pre = now_ms() - t0;
  t = once(argv, lay_sfd);
  durin_sandbox_argv_free(argv);
  if (t < 0)
    return -1;
  ch = durin_layer_changes(layer, lay_ws, NULL);
  json_decref(ch);
  if (durin_layer_merge(layer, lay_ws, 0, &err))
    return -1;
  end = now_ms();
  lay_pre += pre;
  lay_run += t;
  lay_post += end - t0 - pre - t;
  *strrchr(layer, '/') = 0;
  durin_tree_remove(layer);
  lay_clean += now_ms() - end;
  return end - t0;
}

/* Interleaved: call i of every variant runs before call i+1 of any, so a
 * burst of load on the machine hits them all alike. */
static void measure(struct variant *vs, int nv, int n)
{
  int i, k;

  for (k = 0; k < nv; k++)
    vs[k].v = calloc((size_t)n, sizeof(double));
  for (i = 0; i < n; i++)
    for (k = 0; k < nv; k++)
      if (!vs[k].failed &&
          (vs[k].v[i] = vs[k].fn ? vs[k].fn() : once(vs[k].argv, vs[k].keep)) <
              0)
        vs[k].failed = 1;
  for (k = 0; k < nv; k++) {
    if (vs[k].failed) {
      printf("%-26s the command failed: %s ...\n", vs[k].label, vs[k].argv[0]);
    } else {
      qsort(vs[k].v, (size_t)n, sizeof(double), cmp);
      printf("%-26s p50 %6.2f ms   p99 %6.2f ms   (%d calls)\n", vs[k].label,
             vs[k].v[n / 2], vs[k].v[(n * 99) / 100 - (n >= 100)], n);
    }
    free(vs[k].v);
  }
}

int main(int argc, char **argv)
{
  char helper[4200], durin[4200], ws[64], root[64], lws[128];
  char fdarg[16], exe[4200];
  struct durin_sandbox_opts o = { 0 };
  struct durin_err err = { 0 };
  char *tru[] = { "/bin/true", NULL };
  char **hargv;
  int n = argc > 2 ? atoi(argv[2]) : 200, sfd;
  FILE *la;
  double l1 = 0, l5 = 0, l15 = 0;

  if (argc < 2 || n < 10) {
    fprintf(stderr, "usage: sandbox-start BUILD_DIR [N>=10]\n");
    return 2;
  }
  snprintf(exe, sizeof(exe), "%s/durin", argv[1]);
  snprintf(durin, sizeof(durin), "%s", exe);
  if (durin_sandbox_helper(exe, helper, sizeof(helper), &err) ||
      durin_sandbox_seccomp(&sfd, &err)) {
    fprintf(stderr, "sandbox-start: %s\n", err.msg);
    return 1;
  }
  if (durin_mktmpdir("sandbox-start", ws, sizeof(ws)) ||
      durin_mktmpdir("sandbox-start-run", root, sizeof(root))) {
    perror("sandbox-start: temporary directory");
    return 1;
  }
  /* A run's layout: calls/ beside workspace/. */
  snprintf(lws, sizeof(lws), "%s/workspace", root);
  mkdir(lws, 0755);
  if ((la = fopen("/proc/loadavg", "r"))) {
    if (fscanf(la, "%lf %lf %lf", &l1, &l5, &l15) != 3)
      l1 = l5 = l15 = 0;
    fclose(la);
  }
  printf("== sandbox-start: %ld cores, load %.2f %.2f %.2f\n",
         sysconf(_SC_NPROCESSORS_ONLN), l1, l5, l15);

  {
    char *cli[] = {
      durin, "sandbox", "--workspace", ws, "--", "/bin/true", NULL
    };
    char *bw[] = { "/usr/bin/bwrap",
                   "--unshare-all",
                   "--die-with-parent",
                   "--new-session",
                   "--ro-bind",
                   "/usr",
                   "/usr",
                   "--symlink",
                   "usr/bin",
                   "/bin",
                   "--symlink",
                   "usr/lib",
                   "/lib",
                   "--symlink",
                   "usr/lib64",
                   "/lib64",
                   "--proc",
                   "/proc",
                   "--dev",
                   "/dev",
                   "--tmpfs",
                   "/tmp",
                   "--bind",
                   ws,
                   ws,
                   "--chdir",
                   ws,
                   "--cap-drop",
                   "ALL",
                   "--seccomp",
                   fdarg,
                   "/bin/true",
                   NULL };
    char *wr[] = { "/bin/sh", "-c", "echo x > f", NULL };
    struct variant vs[6];
    char **wargv;
    int nv = 0;

    o.workspace = ws;
    hargv = durin_sandbox_argv(helper, &o, sfd, -1, tru);
    o.workspace = lws;
    wargv = durin_sandbox_argv(helper, &o, sfd, -1, wr);
    lay_helper = helper;
    lay_ws = lws;
    lay_sfd = sfd;
    snprintf(fdarg, sizeof(fdarg), "%d", sfd);
    memset(vs, 0, sizeof(vs));
    vs[nv++] = (struct variant){ "plain /bin/true", tru, -1, NULL, 0 };
    vs[nv++] = (struct variant){ "durin tool call", hargv, sfd, NULL, 0 };
    vs[nv++] = (struct variant){ "durin sandbox (CLI)", cli, -1, NULL, 0 };
    if (access("/usr/bin/bwrap", X_OK) == 0)
      vs[nv++] = (struct variant){ "bwrap (same isolation)", bw, sfd, NULL, 0 };
    else
      printf("bwrap: not installed (apt-get install bubblewrap); no "
             "comparison\n");
    vs[nv++] =
        (struct variant){ "tool call writing a file", wargv, sfd, NULL, 0 };
    vs[nv++] = (struct variant){
      "  the same in its layer", NULL, -1, NULL, 0, layered_call
    };
    measure(vs, nv, n);
    printf("%-26s mean %.2f ms before the helper (layer made), %.2f ms in "
           "it, %.2f ms after (change set, merge); removal %.2f ms, off "
           "the call's path\n",
           "  where its time goes", lay_pre / n, lay_run / n, lay_post / n,
           lay_clean / n);
    durin_sandbox_argv_free(hargv);
    durin_sandbox_argv_free(wargv);
  }
  rmdir(ws);
  durin_tree_remove(root);
  return 0;
}
