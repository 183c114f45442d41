/*
 * durin-sandbox: runs one command isolated, for one tool call.
 *
 *   durin-sandbox [options] -- CMD [ARG...]
 *
 * The helper (P) moves itself into a fresh cgroup, clones the sandbox
 * init (C) into new user, mount, pid, net, ipc, uts and cgroup
 * namespaces, and maps one id into it: 1000 inside is the caller's uid
 * outside, or an unprivileged id (--uid, default 100000) when the caller
 * is root, so nothing inside is ever host uid 0. C builds a minimal root
 * (bubblewrap's two-step pivot_root), then forks the command (G), which
 * drops every capability, joins a new session and keyring, closes every
 * inherited descriptor, applies rlimits, Landlock and the seccomp program
 * (compiled by libdurin, read from --seccomp-fd) and execs. C reaps and
 * exits with G's status; the kernel then kills whatever is left in the
 * pid namespace. P enforces the wall-clock timeout, cleans the cgroup
 * up and writes one JSON line to --status-fd:
 *
 *   {"status":"exited","code":0,...}  {"status":"signaled","signal":9}
 *   {"status":"timeout"}  {"status":"error","error":"..."}
 *
 * with "exec_mono_us": CLOCK_MONOTONIC, in microseconds, when the command
 * was exec'd, once it was: a caller that read the clock before starting
 * the helper has the sandbox's start latency from it. P sees the exec
 * without asking G anything: the pipe G reports setup errors on is
 * close-on-exec in G and G holds its only write end, so its EOF with no
 * error on it is the exec.
 *
 * Exit code: the command's (128+N for signal N), 124 on timeout, 125 if
 * the sandbox could not be built. P dies with its parent (PDEATHSIG).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <linux/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox-proxy.h"

/* Newer than Debian 12's headers; the kernel tells the ABI at run time. */
#ifndef LANDLOCK_ACCESS_FS_REFER
# define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
# define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif

#define INSIDE_ID  1000
#define STR_(x)    #x
#define STR(x)     STR_(x)
#define MAX_BINDS  32
#define MAX_ENV    64
#define MAX_LOWER  4
#define MAX_GRANTS 32
/* Inside: the system's CAs and the call's (a call with HTTP grants). */
#define CA_DIR    "/etc/durin"
#define CA_BUNDLE CA_DIR "/ca-bundle.pem"
#define CA_ONLY   CA_DIR "/egress-ca.pem"

struct bind {
  const char *path;
  int rw;
  int tree; /* an idmapped mount to attach instead of a bind, or -1 */
};

static struct {
  const char *workspace;
  int workspace_ro; /* --workspace-ro: bound read-only (an evaluator's) */
  /* The workspace as an overlay: lowers (topmost first) under
   * layers/upper; the call's own layer, or a template run's files. */
  const char *lower[MAX_LOWER];
  int nlower;
  const char *layers;
  struct bind binds[MAX_BINDS];
  int nbinds;
  const char *env[MAX_ENV];
  int nenv;
  long host_id;
  long mem_mb, pids, cpu_pct, timeout_s, fsize_mb, nofile, tmp_mb;
  int seccomp_fd, status_fd;
  int proxy; /* --net proxy: egress through P, to allow_hosts only */
  const char *allow[MAX_BINDS];
  int nallow;
  int grants_fd;         /* --grants-fd: the worker's sealed memfd */
  const char *egress_ca; /* --egress-ca: more CAs trusted upstream */
  int landlock;
  char **argv;
  /* the compiled filter, read before cloning */
  struct sock_filter *filter;
  unsigned short nfilter;
} o = { .host_id = 100000,
        .pids = 256,
        .nofile = 256,
        .tmp_mb = 256,
        .seccomp_fd = -1,
        .status_fd = -1,
        .grants_fd = -1,
        .landlock = 1 };

static int err_fd = -1;
/* C's end of a pipe P holds open for its whole life: hung up, P is gone. */
static int life_fd = -1;
/* setup errors from C and G, to P */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A setup failure inside the sandbox: report to P and exit 125. */
static void die(const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(msg, sizeof(msg) - 64, fmt, ap);
  va_end(ap);
  if (errno)
    n += snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(errno));
  if (err_fd >= 0 && write(err_fd, msg, (size_t)n) < 0)
    _exit(125);
  if (err_fd < 0)
    fprintf(stderr, "durin-sandbox: %s\n", msg);
  _exit(125);
}

static __attribute__((noreturn)) void usage(void)
{
  fprintf(
      stderr,
      "usage: durin-sandbox [--workspace DIR [--lower DIR]... --layers DIR]\n"
      "  [--workspace-ro]\n"
      "  [--ro DIR] [--rw DIR]\n"
      "  [--setenv K=V] [--uid N] [--mem MB] [--pids N] [--cpu PCT]\n"
      "  [--timeout S] [--fsize MB] [--nofile N] [--tmp MB]\n"
      "  [--net none|proxy] [--allow-host HOST[:PORT]]\n"
      "  [--grants-fd FD] [--egress-ca FILE]\n"
      "  [--seccomp-fd FD] [--status-fd FD] [--no-landlock] -- CMD...\n");
  exit(125);
}

static long num(const char *s)
{
  char *end;
  long v = strtol(s, &end, 10);

  if (!*s || *end || v < 0)
    usage();
  return v;
}

/* The field a numeric option sets; usage() if there is none. */
static long *num_opt(const char *name)
{
  static const struct {
    const char *name;
    long *val;
  } nums[] = {
    { "--uid", &o.host_id },       { "--mem", &o.mem_mb },
    { "--pids", &o.pids },         { "--cpu", &o.cpu_pct },
    { "--timeout", &o.timeout_s }, { "--fsize", &o.fsize_mb },
    { "--nofile", &o.nofile },     { "--tmp", &o.tmp_mb },
  };
  size_t i;

  for (i = 0; i < sizeof(nums) / sizeof(*nums); i++)
    if (!strcmp(name, nums[i].name))
      return nums[i].val;
  usage();
  return NULL;
}

static void parse(int argc, char **argv)
{
  int i;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

    if (!strcmp(a, "--")) {
      o.argv = &argv[i + 1];
      break;
    }
    if (!strcmp(a, "--no-landlock")) {
      o.landlock = 0;
      continue;
    }
    if (!strcmp(a, "--workspace-ro")) {
      o.workspace_ro = 1;
      continue;
    }
    if (!v)
      usage();
    i++;
    if (!strcmp(a, "--workspace"))
      o.workspace = v;
    else if (!strcmp(a, "--lower") && o.nlower < MAX_LOWER)
      o.lower[o.nlower++] = v;
    else if (!strcmp(a, "--layers"))
      o.layers = v;
    else if ((!strcmp(a, "--ro") || !strcmp(a, "--rw")) && o.nbinds < MAX_BINDS)
      o.binds[o.nbinds++] = (struct bind){ v, a[3] == 'w', -1 };
    else if (!strcmp(a, "--setenv") && strchr(v, '=') && o.nenv < MAX_ENV - 12)
      o.env[o.nenv++] = v;
    else if (!strcmp(a, "--net") && (!strcmp(v, "none") || !strcmp(v, "proxy")))
      o.proxy = !strcmp(v, "proxy");
    else if (!strcmp(a, "--allow-host") && o.nallow < MAX_BINDS)
      o.allow[o.nallow++] = v;
    else if (!strcmp(a, "--seccomp-fd"))
      o.seccomp_fd = (int)num(v);
    else if (!strcmp(a, "--status-fd"))
      o.status_fd = (int)num(v);
    else if (!strcmp(a, "--grants-fd"))
      o.grants_fd = (int)num(v);
    else if (!strcmp(a, "--egress-ca"))
      o.egress_ca = v;
    else
      *num_opt(a) = num(v);
  }
  if (!o.argv || !o.argv[0])
    usage();
  if (o.workspace_ro && (o.nlower || !o.workspace)) {
    fprintf(stderr, "durin-sandbox: --workspace-ro needs --workspace and "
                    "no --lower\n");
    exit(125);
  }
  if (!o.nlower != !o.layers || (o.nlower && !o.workspace)) {
    fprintf(stderr, "durin-sandbox: --lower needs --layers and "
                    "--workspace\n");
    exit(125);
  }
  if (o.host_id == 0) {
    fprintf(stderr, "durin-sandbox: --uid 0 would map host root; refused\n");
    exit(125);
  }
}

static void read_filter(void)
{
  struct stat st;
  ssize_t n;

  if (o.seccomp_fd < 0)
    return;
  if (fstat(o.seccomp_fd, &st) || st.st_size <= 0 ||
      st.st_size % (off_t)sizeof(struct sock_filter) ||
      st.st_size / (off_t)sizeof(struct sock_filter) > 65535) {
    fprintf(stderr, "durin-sandbox: --seccomp-fd is not a BPF program\n");
    exit(125);
  }
  o.filter = malloc((size_t)st.st_size);
  n = pread(o.seccomp_fd, o.filter, (size_t)st.st_size, 0);
  if (n != st.st_size) {
    fprintf(stderr, "durin-sandbox: reading the seccomp program failed\n");
    exit(125);
  }
  o.nfilter = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
  close(o.seccomp_fd);
}

/* ---- grants (spec "secrets"), read from the worker's memfd ---- */

static struct proxy_grant http_grants[MAX_GRANTS];
static int nhttp;
static char *env_grants[MAX_GRANTS]; /* "VAR=value", for G only */
static int nenvg;
static struct tls_ca *call_ca; /* P's; its key never enters the sandbox */
static char *ca_pem;           /* its certificate, for the bundle */

static void grants_bad(const char *why)
{
  fprintf(stderr, "durin-sandbox: --grants-fd: %s\n", why);
  exit(125);
}

/* One length-prefixed string at *at of buf (size n), NUL-terminated in a
 * fresh buffer. */
static unsigned char *grant_str(const unsigned char *buf, size_t n, size_t *at,
                                size_t *len)
{
  uint32_t l;
  unsigned char *s;

  if (*at + 4 > n)
    grants_bad("truncated");
  memcpy(&l, buf + *at, 4);
  if (l > n - *at - 4)
    grants_bad("truncated");
  if (!(s = malloc((size_t)l + 1)))
    grants_bad("out of memory");
  memcpy(s, buf + *at + 4, l);
  s[l] = 0;
  *at += 4 + (size_t)l;
  if (len)
    *len = l;
  return s;
}

/*
 * Reads the grants (lib/sandbox/plan.c writes them): HTTP ones for the
 * proxy, env ones for G's environment. The values live in P's memory,
 * and in C's copy of it, which C wipes before it runs anything the agent
 * controls.
 */
static void read_grants(void)
{
  static const char magic[] = "durin-grants-1\n";
  unsigned char *buf;
  struct stat st;
  size_t at = sizeof(magic) - 1, n;

  if (o.grants_fd < 0)
    return;
  if (fstat(o.grants_fd, &st) || st.st_size < (off_t)at || st.st_size > 4 << 20)
    grants_bad("not a grants file");
  n = (size_t)st.st_size;
  if (!(buf = malloc(n)) || pread(o.grants_fd, buf, n, 0) != (ssize_t)n ||
      memcmp(buf, magic, at))
    grants_bad("not a grants file");
  close(o.grants_fd);
  while (at < n) {
    unsigned char kind = buf[at++];

    if (kind == 'H' && nhttp < MAX_GRANTS) {
      struct proxy_grant *g = &http_grants[nhttp++];
      unsigned char *host = grant_str(buf, n, &at, NULL);
      char *colon = strrchr((char *)host, ':');

      g->port = colon ? atoi(colon + 1) : 443;
      if (colon)
        *colon = 0;
      snprintf(g->host, sizeof(g->host), "%s", (char *)host);
      free(host);
      g->header = (char *)grant_str(buf, n, &at, NULL);
      g->value = grant_str(buf, n, &at, &g->vlen);
    } else if (kind == 'E' && nenvg < MAX_GRANTS) {
      size_t vl, nl;
      unsigned char *var = grant_str(buf, n, &at, &nl);
      unsigned char *val = grant_str(buf, n, &at, &vl);

      if (!(env_grants[nenvg] = malloc(nl + vl + 2)))
        grants_bad("out of memory");
      memcpy(env_grants[nenvg], var, nl);
      env_grants[nenvg][nl] = '=';
      memcpy(env_grants[nenvg] + nl + 1, val, vl + 1);
      explicit_bzero(val, vl);
      free(var);
      free(val);
      nenvg++;
    } else {
      grants_bad("unknown record");
    }
  }
  explicit_bzero(buf, n);
  free(buf);
  /* The call's CA: made in P before the clone, so C has its certificate
   * for the bundle; the key stays P's (C wipes its copy). */
  if (nhttp && !(call_ca = tls_ca_new(&ca_pem, o.egress_ca))) {
    fprintf(stderr, "durin-sandbox: cannot make the call's CA\n");
    exit(125);
  }
}

/* C, before running anything of the agent's: its copies of what only P
 * and G need go. */
static void grants_forget_http(void)
{
  int i;

  for (i = 0; i < nhttp; i++)
    explicit_bzero(http_grants[i].value, http_grants[i].vlen);
  tls_ca_free(call_ca); /* frees (and so clears) the key material */
  call_ca = NULL;
}

static void grants_forget_env(void)
{
  int i;

  for (i = 0; i < nenvg; i++)
    explicit_bzero(env_grants[i], strlen(env_grants[i]));
}

/* ---- cgroups (in P, before the clone) ---- */

static char cg_v2[256];
static char cg_v1[3][200]; /* memory, pids, cpu */
static const char *const v1_ctl[3] = { "memory", "pids", "cpu" };
static int cg_kind; /* 0 none, 1 v1, 2 v2 */

static int put(const char *dir, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int put(const char *dir, const char *file, const char *fmt, ...)
{
  char path[512], val[64];
  va_list ap;
  int fd, n, r;

  snprintf(path, sizeof(path), "%s/%s", dir, file);
  va_start(ap, fmt);
  n = vsnprintf(val, sizeof(val), fmt, ap);
  va_end(ap);
  fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  r = write(fd, val, (size_t)n) == n ? 0 : -1;
  close(fd);
  return r;
}

static int v2_usable(void)
{
  char buf[256] = "";
  int fd = open("/sys/fs/cgroup/cgroup.controllers", O_RDONLY | O_CLOEXEC);
  ssize_t n;

  if (fd < 0)
    return 0;
  n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  return n > 0 && strstr(buf, "memory") && strstr(buf, "pids");
}

/*
 * Removes the cgroups of sandboxes whose helper was killed before it could
 * (its parent was SIGKILLed, say): sb-PID where PID is gone. Their
 * processes died with the helper; the directories are empty.
 */
static void cgroup_sweep(const char *base, const char *const *also, int nalso)
{
  DIR *d = opendir(base);
  struct dirent *e;

  if (!d)
    return;
  while ((e = readdir(d))) {
    char path[512];
    int pid, i;

    if (sscanf(e->d_name, "sb-%d", &pid) != 1 || pid <= 0 ||
        kill(pid, 0) == 0 || errno != ESRCH)
      continue;
    snprintf(path, sizeof(path), "%s/%s", base, e->d_name);
    rmdir(path);
    for (i = 0; i < nalso; i++) {
      snprintf(path, sizeof(path), "%s/%s", also[i], e->d_name);
      rmdir(path);
    }
  }
  closedir(d);
}

/* The sweep for this host's kind of cgroups; run off the caller's path
 * (teardown), since it reads a directory as large as the calls running. */
static void cgroup_sweep_stale(void)
{
  static const char *const others[] = { "/sys/fs/cgroup/memory/durin",
                                        "/sys/fs/cgroup/cpu/durin" };

  if (cg_kind == 2)
    cgroup_sweep("/sys/fs/cgroup/durin", NULL, 0);
  else if (cg_kind == 1)
    cgroup_sweep("/sys/fs/cgroup/pids/durin", others, 2);
}

/* Puts P (and so everything it clones) into a new cgroup with the limits.
 * Without permission to, the rlimits are the floor. */
static void cgroup_enter(void)
{
  pid_t me = getpid();
  int i;

  if (v2_usable()) {
    mkdir("/sys/fs/cgroup/durin", 0755);
    put("/sys/fs/cgroup", "cgroup.subtree_control", "+memory +pids +cpu");
    put("/sys/fs/cgroup/durin", "cgroup.subtree_control", "+memory +pids +cpu");
    snprintf(cg_v2, sizeof(cg_v2), "/sys/fs/cgroup/durin/sb-%d", (int)me);
    if (mkdir(cg_v2, 0755) == 0) {
      if (o.mem_mb) {
        put(cg_v2, "memory.max", "%ld", o.mem_mb << 20);
        put(cg_v2, "memory.swap.max", "0");
      }
      put(cg_v2, "pids.max", "%ld", o.pids);
      if (o.cpu_pct)
        put(cg_v2, "cpu.max", "%ld 100000", o.cpu_pct * 1000);
      if (put(cg_v2, "cgroup.procs", "%d", (int)me) == 0) {
        cg_kind = 2;
        return;
      }
      rmdir(cg_v2);
    }
    cg_v2[0] = 0;
    return;
  }
  for (i = 0; i < 3; i++) {
    char base[128];

    snprintf(base, sizeof(base), "/sys/fs/cgroup/%s/durin", v1_ctl[i]);
    mkdir(base, 0755);
    snprintf(cg_v1[i], sizeof(cg_v1[i]), "%s/sb-%d", base, (int)me);
    if (mkdir(cg_v1[i], 0755) && errno != EEXIST)
      cg_v1[i][0] = 0;
  }
  if (cg_v1[0][0] && o.mem_mb) {
    put(cg_v1[0], "memory.limit_in_bytes", "%ld", o.mem_mb << 20);
    put(cg_v1[0], "memory.memsw.limit_in_bytes", "%ld", o.mem_mb << 20);
  }
  if (cg_v1[1][0])
    put(cg_v1[1], "pids.max", "%ld", o.pids);
  if (cg_v1[2][0] && o.cpu_pct) {
    put(cg_v1[2], "cpu.cfs_period_us", "100000");
    put(cg_v1[2], "cpu.cfs_quota_us", "%ld", o.cpu_pct * 1000);
  }
  /*
   * "0" into tasks moves this one thread, which is all of P. Unlike a
   * write to cgroup.procs it skips the global threadgroup lock, whose RCU
   * grace period cost about 10 ms per sandbox here.
   */
  for (i = 0; i < 3; i++) {
    if (cg_v1[i][0] && put(cg_v1[i], "tasks", "0") == 0)
      cg_kind = 1;
    else if (cg_v1[i][0]) {
      rmdir(cg_v1[i]);
      cg_v1[i][0] = 0;
    }
  }
}

/* Whether the memory limit was hit: the kernel's OOM killer ran (v2), or
 * an allocation failed at the limit (v1). */
static int cgroup_oom(void)
{
  char path[300], buf[64] = "";
  FILE *f;
  int fd, oom = 0;

  if (cg_kind == 2) {
    char line[128];

    snprintf(path, sizeof(path), "%s/memory.events", cg_v2);
    if ((f = fopen(path, "re"))) {
      long v;

      while (fgets(line, sizeof(line), f))
        if (sscanf(line, "oom_kill %ld", &v) == 1 && v > 0)
          oom = 1;
      fclose(f);
    }
  } else if (cg_kind == 1 && cg_v1[0][0]) {
    snprintf(path, sizeof(path), "%s/memory.failcnt", cg_v1[0]);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
      if (read(fd, buf, sizeof(buf) - 1) > 0 && atol(buf) > 0)
        oom = 1;
      close(fd);
    }
  }
  return oom;
}

/* Kills anything left in the sandbox's cgroup, leaves it, removes it. */
static void cgroup_remove(void)
{
  int i;

  if (cg_kind == 2) {
    put(cg_v2, "cgroup.kill", "1");
    put("/sys/fs/cgroup/durin", "cgroup.procs", "%d", (int)getpid());
    for (i = 0; i < 50 && rmdir(cg_v2) && errno == EBUSY; i++)
      usleep(2000);
    return;
  }
  for (i = 0; i < 3; i++) {
    char path[640], parent[300];
    int tries;

    if (!cg_v1[i][0])
      continue;
    snprintf(parent, sizeof(parent), "/sys/fs/cgroup/%s/durin", v1_ctl[i]);
    put(parent, "tasks", "0");
    for (tries = 0; tries < 100 && rmdir(cg_v1[i]) && errno == EBUSY; tries++) {
      FILE *f;
      int pid;

      snprintf(path, sizeof(path), "%s/cgroup.procs", cg_v1[i]);
      if ((f = fopen(path, "re"))) {
        while (fscanf(f, "%d", &pid) == 1)
          kill(pid, SIGKILL);
        fclose(f);
      }
      usleep(2000);
    }
  }
}

/*
 * The slow part of ending a sandbox is the kernel tearing down its mount
 * namespace (an RCU grace period), then removing the cgroup. Both happen
 * after every process of the sandbox is gone, so they need not hold up the
 * caller: P holds the mount namespace open (so init's exit does not pay
 * for it), and a detached child with no descriptors of the caller's
 * releases it and removes the cgroup. If that child cannot be forked, P
 * does the work itself.
 */
static void teardown(int mntns)
{
  int gone[2];
  pid_t k;

  if (mntns < 0 || pipe2(gone, O_CLOEXEC)) {
    cgroup_remove();
    return;
  }
  k = fork();
  if (k < 0) {
    close(gone[0]);
    close(gone[1]);
    close(mntns);
    cgroup_remove();
    return;
  }
  if (k == 0) {
    char c;
    int ns = fcntl(mntns, F_DUPFD_CLOEXEC, 500);
    int rd = fcntl(gone[0], F_DUPFD_CLOEXEC, 500);

    syscall(SYS_close_range, 0U, 499U, 0U);
    setsid();
    /* P's copy must go first, or P's own exit would pay the teardown. */
    while (read(rd, &c, 1) < 0 && errno == EINTR)
      ;
    close(ns);
    cgroup_remove();
    cgroup_sweep_stale();
    _exit(0);
  }
  close(gone[0]);
  close(mntns); /* gone[1] closes when P exits */
}

/* ---- the workspace (in P, before the clone) ---- */

static int ws_tree = -1; /* a detached, idmapped copy of the workspace */
/* An overlay workspace: its lower layers and its upper/ and work/. */
static int lower_tree[MAX_LOWER] = { -1, -1, -1, -1 }, layers_tree = -1;

/* A user namespace that maps disk id uid/gid to the sandbox's host id,
 * for an idmapped mount; its descriptor, or -1. One per owner. */
static int idmap_userns(uid_t uid, gid_t gid)
{
  static struct {
    uid_t uid;
    gid_t gid;
    int fd;
  } cache[MAX_BINDS + 1];
  static int ncache;
  char file[64];
  int sync[2], fd = -1, i;
  pid_t k;

  for (i = 0; i < ncache; i++)
    if (cache[i].uid == uid && cache[i].gid == gid)
      return cache[i].fd;
  if (pipe2(sync, O_CLOEXEC))
    return -1;
  k = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL,
                     NULL);
  if (k == 0) {
    char c;

    close(sync[1]);
    _exit(read(sync[0], &c, 1) < 0);
  }
  close(sync[0]);
  if (k > 0) {
    snprintf(file, sizeof(file), "%d/uid_map", (int)k);
    if (put("/proc", file, "%u %ld 1\n", (unsigned)uid, o.host_id) == 0) {
      snprintf(file, sizeof(file), "%d/gid_map", (int)k);
      if (put("/proc", file, "%u %ld 1\n", (unsigned)gid, o.host_id) == 0) {
        snprintf(file, sizeof(file), "/proc/%d/ns/user", (int)k);
        fd = open(file, O_RDONLY | O_CLOEXEC);
      }
    }
  }
  close(sync[1]);
  if (k > 0)
    waitpid(k, NULL, 0);
  if (fd >= 0 && ncache < MAX_BINDS + 1)
    cache[ncache++] = (typeof(cache[0])){ uid, gid, fd };
  return fd;
}

/*
 * Under root, the sandbox runs as an unprivileged host id: it could not
 * even reach a bind source below a private directory, and the workspace
 * and read-write binds belong to whoever created them (root, usually).
 * So P, still root, takes each bind as a detached mount for C to attach:
 * read-only ones as they are, writable ones not already the sandbox's
 * idmapped, so their owner's files appear inside as the sandbox's own and
 * what the sandbox creates is stored as the owner's. Nothing on disk is
 * chowned. *tree stays -1 when C should bind path itself. Returns an
 * error message or NULL.
 */
static const char *prepare_bind(const char *path, int rw, int layer, int *tree)
{
  static char msg[600];
  struct mount_attr attr = { 0 };
  struct stat st;
  int idmap;

  *tree = -1;
  if (geteuid() != 0)
    return NULL;
  if (stat(path, &st) || (rw && !S_ISDIR(st.st_mode))) {
    snprintf(msg, sizeof(msg), "%s is not a %s", path,
             rw ? "directory" : "file or directory");
    return msg;
  }
  /* A template layer is idmapped too: a copy-up keeps the owner it sees. */
  idmap = (rw || layer) &&
          (st.st_uid != (uid_t)o.host_id || st.st_gid != (gid_t)o.host_id);
  *tree = (int)syscall(SYS_open_tree, AT_FDCWD, path,
                       OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
                           (rw || layer ? 0 : AT_RECURSIVE));
  attr.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  if (!rw)
    attr.attr_set |= MOUNT_ATTR_RDONLY;
  if (idmap) {
    int userns = idmap_userns(st.st_uid, st.st_gid);

    if (userns < 0)
      return "creating the id mapping for a writable directory failed";
    attr.attr_set |= MOUNT_ATTR_IDMAP;
    attr.userns_fd = (__u64)userns;
  }
  if (*tree < 0 || syscall(SYS_mount_setattr, *tree, "",
                           AT_EMPTY_PATH | (rw || layer ? 0 : AT_RECURSIVE),
                           &attr, sizeof(attr))) {
    snprintf(msg, sizeof(msg),
             idmap ? "%s cannot be idmapped (Linux 5.12+ with ext4, xfs, "
                     "btrfs, or tmpfs from 6.3, can); run durin as a "
                     "non-root user, or chown it to the sandbox's id" :
                     "%s cannot be mounted into the sandbox",
             path);
    return msg;
  }
  return NULL;
}

static const char *binds_prepare(void)
{
  const char *err = NULL;
  int i;

  if (o.nlower) {
    for (i = 0; !err && i < o.nlower; i++)
      err = prepare_bind(o.lower[i], 0, 1, &lower_tree[i]);
    if (!err)
      err = prepare_bind(o.layers, 1, 0, &layers_tree);
  } else if (o.workspace) {
    err = prepare_bind(o.workspace, !o.workspace_ro, 0, &ws_tree);
  }
  for (i = 0; !err && i < o.nbinds; i++)
    err = prepare_bind(o.binds[i].path, o.binds[i].rw, 0, &o.binds[i].tree);
  return err;
}

/* ---- the root file system (in C) ---- */

static void mkdirs(const char *path, mode_t mode)
{
  char buf[4300], *p;

  snprintf(buf, sizeof(buf), "%s", path);
  for (p = buf + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = 0;
    mkdir(buf, mode);
    *p = '/';
  }
  mkdir(buf, mode);
}

static void must(int r, const char *what, const char *arg)
{
  if (r)
    die("%s %s", what, arg ? arg : "");
}

/* Creates what a mount at path needs: a directory, or an empty file. */
static void mountpoint(char *path, int dir)
{
  char *slash = strrchr(path, '/');
  int fd;

  if (dir) {
    mkdirs(path, 0755);
    return;
  }
  *slash = 0;
  mkdirs(path, 0755);
  *slash = '/';
  fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0)
    close(fd);
}

/* Binds /oldroot/PATH at /newroot/PATH, read-only unless rw. */
static void bind_path(const char *path, int rw, int optional)
{
  char src[4200], dst[4200];
  struct stat st;

  snprintf(src, sizeof(src), "/oldroot%s", path);
  snprintf(dst, sizeof(dst), "/newroot%s", path);
  if (lstat(src, &st)) {
    if (optional)
      return;
    die("bind source %s", path);
  }
  if (S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t n = readlink(src, target, sizeof(target) - 1);

    if (n < 0)
      die("readlink %s", path);
    target[n] = 0;
    must(symlink(target, dst), "symlink", path);
    return;
  }
  mountpoint(dst, S_ISDIR(st.st_mode));
  must(mount(src, dst, NULL, MS_BIND | MS_REC, NULL), "bind", path);
  if (!rw) {
    unsigned long fl = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV;

    /* A host mount may lock noexec; keep it then. */
    if (mount(NULL, dst, NULL, fl, NULL) &&
        mount(NULL, dst, NULL, fl | MS_NOEXEC, NULL))
      die("remount read-only %s", path);
  } else {
    /* Device nodes (only the harmless ones are bound) need dev. */
    unsigned long nodev = strncmp(path, "/dev/", 5) ? MS_NODEV : 0;

    mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_NOSUID | nodev, NULL);
  }
}

static void write_file(const char *path, const char *text)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

  if (fd < 0 || write(fd, text, strlen(text)) < 0)
    die("writing %s", path);
  close(fd);
}

/*
 * Copies a small regular file from the old root into the new one (a copy
 * is cheaper than a bind and its remount); 1 if path is something else,
 * to be bound instead, 0 when done or when there is nothing to copy.
 */
static int copy_small(const char *path)
{
  char src[4200], dst[4200], buf[65536];
  struct stat st;
  ssize_t n;
  int in, out;

  snprintf(src, sizeof(src), "/oldroot%s", path);
  if (lstat(src, &st))
    return 0;
  if (!S_ISREG(st.st_mode) || st.st_size > (off_t)sizeof(buf))
    return 1;
  in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0)
    return 0; /* not readable by the sandbox's id anyway */
  n = read(in, buf, sizeof(buf));
  close(in);
  snprintf(dst, sizeof(dst), "/newroot%s", path);
  out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (n < 0 || out < 0 || write(out, buf, (size_t)n) != n)
    die("copying %s", path);
  close(out);
  return 0;
}

/*
 * The CA bundle of a call with HTTP grants: the system's bundle and the
 * call's CA, which the usual variables point at (exec_command). The
 * call's CA alone goes beside it, for NODE_EXTRA_CA_CERTS.
 */
static void write_ca_bundle(void)
{
  char buf[65536];
  int in, out;
  ssize_t n;

  mkdirs("/newroot" CA_DIR, 0755);
  out = open("/newroot" CA_BUNDLE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
             0644);
  if (out < 0)
    die("writing the CA bundle");
  in = open("/oldroot/etc/ssl/certs/ca-certificates.crt", O_RDONLY | O_CLOEXEC);
  while (in >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
    if (write(out, buf, (size_t)n) != n)
      die("writing the CA bundle");
  if (in >= 0)
    close(in);
  if (write(out, ca_pem, strlen(ca_pem)) < 0)
    die("writing the CA bundle");
  close(out);
  write_file("/newroot" CA_ONLY, ca_pem);
}

/* Attaches a mount P prepared at /newroot/PATH. */
static void attach(int tree, const char *path)
{
  char dst[4200];
  struct stat st;

  snprintf(dst, sizeof(dst), "/newroot%s", path);
  mountpoint(dst, fstat(tree, &st) || S_ISDIR(st.st_mode));
  must((int)syscall(SYS_move_mount, tree, "", AT_FDCWD, dst,
                    MOVE_MOUNT_F_EMPTY_PATH),
       "attach the mount of", path);
  close(tree);
}

/*
 * The workspace as the template with the run's own files on top, mounted
 * here, inside: overlayfs over the idmapped layers P prepared (an overlay
 * mount cannot itself be idmapped), or over the old root's paths when
 * there was nothing to map. The layers' own mount points stay outside
 * the new root; the overlay keeps its private copies of them.
 */
/* Where C reaches a layer: the tree P prepared, attached at `at` outside
 * the new root, or the old root's path when there was nothing to map. */
static void layer(int tree, const char *at, const char *path, char *out,
                  size_t len)
{
  if (tree < 0) {
    snprintf(out, len, "/oldroot%s", path);
    return;
  }
  mkdir(at, 0755);
  must((int)syscall(SYS_move_mount, tree, "", AT_FDCWD, at,
                    MOVE_MOUNT_F_EMPTY_PATH),
       "attach the layer", path);
  snprintf(out, len, "%s", at);
}

static void overlay_workspace(void)
{
  char lower[4200], lowers[4 * 4200 + 8] = "", layers[4200], dst[4200];
  char at[32], opts[4 * 4200 + 13000];
  int i;

  for (i = 0; i < o.nlower; i++) {
    snprintf(at, sizeof(at), "/lower%d", i);
    layer(lower_tree[i], at, o.lower[i], lower, sizeof(lower));
    if (i)
      strcat(lowers, ":");
    strcat(lowers, lower);
  }
  layer(layers_tree, "/layers", o.layers, layers, sizeof(layers));
  snprintf(dst, sizeof(dst), "/newroot%s", o.workspace);
  mkdirs(dst, 0755);
  /* No redirects, no metacopy, no index: the upper layer holds whole
   * files, whiteouts and opaque marks only, all a merge understands. */
  snprintf(opts, sizeof(opts),
           "lowerdir=%s,upperdir=%s/upper,workdir=%s/work,userxattr,"
           "redirect_dir=nofollow,metacopy=off,index=off",
           lowers, layers, layers);
  must(mount("overlay", dst, "overlay", MS_NOSUID | MS_NODEV, opts),
       "mount the workspace as an overlay over", o.lower[0]);
}

static void build_root(void)
{
  static const char *const sys[] = { "/usr",   "/bin",   "/sbin",  "/lib",
                                     "/lib32", "/lib64", "/libx32" };
  static const char *const etc[] = {
    "/etc/ld.so.cache",  "/etc/ld.so.conf",      "/etc/ld.so.conf.d",
    "/etc/alternatives", "/etc/localtime",       "/etc/nsswitch.conf",
    "/etc/ssl/certs",    "/etc/ca-certificates", "/etc/bash.bashrc",
    "/etc/profile",      "/etc/inputrc",         "/etc/gitconfig",
    "/etc/mime.types",   "/etc/debian_version",  "/etc/os-release",
  };
  static const char *const devs[] = { "null",   "zero",    "full",
                                      "random", "urandom", "tty" };
  char opts[64], path[4200];
  size_t i;

  must(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make private", "/");
  must(mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"),
       "mount base tmpfs", NULL);
  must(chdir("/tmp"), "chdir", "/tmp");
  mkdir("newroot", 0755);
  mkdir("oldroot", 0755);
  must(mount("tmpfs", "newroot", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"),
       "mount root tmpfs", NULL);
  must((int)syscall(SYS_pivot_root, ".", "oldroot"), "pivot_root", NULL);
  must(chdir("/"), "chdir", "/");

  for (i = 0; i < sizeof(sys) / sizeof(*sys); i++)
    bind_path(sys[i], 0, 1);
  mkdir("/newroot/etc", 0755);
  for (i = 0; i < sizeof(etc) / sizeof(*etc); i++)
    if (copy_small(etc[i]))
      bind_path(etc[i], 0, 1);
  write_file("/newroot/etc/passwd",
             "root:x:0:0:root:/:/usr/sbin/nologin\n"
             "agent:x:1000:1000:agent:/tmp:/bin/sh\n"
             "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
  write_file("/newroot/etc/group", "root:x:0:\nagent:x:1000:\n"
                                   "nogroup:x:65534:\n");
  write_file("/newroot/etc/hostname", "sandbox\n");
  write_file("/newroot/etc/hosts", "127.0.0.1 localhost sandbox\n");

  mkdir("/newroot/proc", 0555);
  must(mount("proc", "/newroot/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
             NULL),
       "mount", "/proc");

  mkdir("/newroot/dev", 0755);
  must(mount("tmpfs", "/newroot/dev", "tmpfs", MS_NOSUID | MS_NOEXEC,
             "mode=0755,size=64k"),
       "mount", "/dev");
  for (i = 0; i < sizeof(devs) / sizeof(*devs); i++) {
    snprintf(path, sizeof(path), "/dev/%s", devs[i]);
    bind_path(path, 1, 0);
  }
  symlink("/proc/self/fd", "/newroot/dev/fd");
  symlink("/proc/self/fd/0", "/newroot/dev/stdin");
  symlink("/proc/self/fd/1", "/newroot/dev/stdout");
  symlink("/proc/self/fd/2", "/newroot/dev/stderr");
  mkdir("/newroot/dev/shm", 01777);
  snprintf(opts, sizeof(opts), "mode=1777,size=%ldm", o.tmp_mb);
  must(mount("tmpfs", "/newroot/dev/shm", "tmpfs",
             MS_NOSUID | MS_NODEV | MS_NOEXEC, opts),
       "mount", "/dev/shm");
  mkdir("/newroot/tmp", 01777);
  must(mount("tmpfs", "/newroot/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts),
       "mount", "/tmp");

  for (i = 0; i < (size_t)o.nbinds; i++)
    if (o.binds[i].tree >= 0)
      attach(o.binds[i].tree, o.binds[i].path);
    else
      bind_path(o.binds[i].path, o.binds[i].rw, 0);
  if (ca_pem)
    write_ca_bundle();
  if (o.nlower)
    overlay_workspace();
  else if (ws_tree >= 0)
    attach(ws_tree, o.workspace);
  else if (o.workspace)
    bind_path(o.workspace, !o.workspace_ro, 0);

  /* Into the new root; the old one stacks on top of it and goes. */
  must(chdir("/newroot"), "chdir", "/newroot");
  must((int)syscall(SYS_pivot_root, ".", "."), "pivot_root", "(final)");
  must(umount2(".", MNT_DETACH), "detach the old root", NULL);
  must(chdir("/"), "chdir", "/");
  must(mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
             NULL),
       "remount / read-only", NULL);
}

static int proxy_sock[2] = { -1, -1 }; /* C hands P the listener */

/* Listens on the sandbox's 127.0.0.1:PROXY_PORT and passes the socket to
 * P, which serves it from outside (sandbox-proxy.c). */
static void proxy_listen(void)
{
  struct sockaddr_in a = { .sin_family = AF_INET,
                           .sin_port = htons(PROXY_PORT),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  char cbuf[CMSG_SPACE(sizeof(int))] = { 0 }, x = 'l';
  struct iovec iov = { &x, 1 };
  struct msghdr m = { .msg_iov = &iov,
                      .msg_iovlen = 1,
                      .msg_control = cbuf,
                      .msg_controllen = sizeof(cbuf) };
  struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 64))
    die("proxy listener on 127.0.0.1:%d", PROXY_PORT);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &fd, sizeof(int));
  if (sendmsg(proxy_sock[1], &m, 0) != 1)
    die("handing the proxy listener out");
  close(fd);
  close(proxy_sock[1]);
}

/* P: the listener C made, or -1 if C died first. */
static int proxy_receive(void)
{
  char cbuf[CMSG_SPACE(sizeof(int))], x;
  struct iovec iov = { &x, 1 };
  struct msghdr m = { .msg_iov = &iov,
                      .msg_iovlen = 1,
                      .msg_control = cbuf,
                      .msg_controllen = sizeof(cbuf) };
  struct cmsghdr *cm;
  int fd = -1;

  if (recvmsg(proxy_sock[0], &m, MSG_CMSG_CLOEXEC) == 1 &&
      (cm = CMSG_FIRSTHDR(&m)) && cm->cmsg_type == SCM_RIGHTS)
    memcpy(&fd, CMSG_DATA(cm), sizeof(int));
  close(proxy_sock[0]);
  return fd;
}

static void loopback_up(void)
{
  struct ifreq ifr;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

  if (fd < 0)
    return;
  memset(&ifr, 0, sizeof(ifr));
  snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
    ifr.ifr_flags |= IFF_UP;
    ioctl(fd, SIOCSIFFLAGS, &ifr);
  }
  close(fd);
}

/* ---- the command (G) ---- */

static void landlock_apply(void)
{
  struct landlock_ruleset_attr ra;
  __u64 all, ro;
  int abi, fd;
  size_t i;
  const char *rw_paths[4 + MAX_BINDS];
  size_t nrw = 0;

  abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0,
                     LANDLOCK_CREATE_RULESET_VERSION);
  if (abi < 1)
    return; /* not in this kernel: the mount namespace is the boundary */
  all = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
        LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
        LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
        LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
        LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
        LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
        LANDLOCK_ACCESS_FS_MAKE_SYM;
  if (abi >= 2)
    all |= LANDLOCK_ACCESS_FS_REFER;
  if (abi >= 3)
    all |= LANDLOCK_ACCESS_FS_TRUNCATE;
  ro = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE |
       LANDLOCK_ACCESS_FS_READ_DIR;
  memset(&ra, 0, sizeof(ra));
  ra.handled_access_fs = all;
  fd = (int)syscall(SYS_landlock_create_ruleset, &ra, sizeof(ra), 0);
  if (fd < 0)
    die("landlock ruleset");
  rw_paths[nrw++] = "/tmp";
  rw_paths[nrw++] = "/dev";
  if (o.workspace && !o.workspace_ro)
    rw_paths[nrw++] = o.workspace;
  for (i = 0; i < (size_t)o.nbinds; i++)
    if (o.binds[i].rw)
      rw_paths[nrw++] = o.binds[i].path;
  {
    struct landlock_path_beneath_attr pb = { .allowed_access = ro };

    pb.parent_fd = open("/", O_PATH | O_CLOEXEC);
    if (pb.parent_fd < 0 ||
        syscall(SYS_landlock_add_rule, fd, LANDLOCK_RULE_PATH_BENEATH, &pb, 0))
      die("landlock rule /");
    close(pb.parent_fd);
  }
  for (i = 0; i < nrw; i++) {
    struct landlock_path_beneath_attr pb = { .allowed_access = all };

    pb.parent_fd = open(rw_paths[i], O_PATH | O_CLOEXEC);
    if (pb.parent_fd < 0)
      continue;
    if (syscall(SYS_landlock_add_rule, fd, LANDLOCK_RULE_PATH_BENEATH, &pb, 0))
      die("landlock rule %s", rw_paths[i]);
    close(pb.parent_fd);
  }
  if (syscall(SYS_landlock_restrict_self, fd, 0))
    die("landlock restrict");
  close(fd);
}

static void limit(int res, rlim_t v)
{
  struct rlimit rl = { v, v };

  setrlimit(res, &rl);
}

static void drop_privileges(void)
{
  int cap;

  for (cap = 0; cap <= 63; cap++)
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) && errno != EINVAL)
      die("dropping capability %d", cap);
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (setresgid(INSIDE_ID, INSIDE_ID, INSIDE_ID))
    die("setresgid");
  if (setresuid(INSIDE_ID, INSIDE_ID, INSIDE_ID))
    die("setresuid");
  /* setresuid away from 0 clears the sets; make sure of it. */
  {
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];

    memset(d, 0, sizeof(d));
    if (syscall(SYS_capset, &h, d))
      die("capset");
  }
}

static void exec_command(void)
{
  char *envp[MAX_ENV + MAX_GRANTS + 16], home[4200];
  int n = 0, i;

  if (setsid() < 0)
    die("setsid");
  /* A session keyring of its own: nothing of the host's is reachable. */
  syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, NULL);
  if (syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */))
    die("close_range");
  limit(RLIMIT_CORE, 0);
  limit(RLIMIT_NOFILE, (rlim_t)o.nofile);
  if (o.fsize_mb)
    limit(RLIMIT_FSIZE, (rlim_t)o.fsize_mb << 20);
  if (o.mem_mb && cg_kind == 0)
    limit(RLIMIT_AS, (rlim_t)o.mem_mb << 20);
  if (o.timeout_s)
    limit(RLIMIT_CPU, (rlim_t)o.timeout_s + 1);
  if (o.workspace && chdir(o.workspace))
    die("chdir %s", o.workspace);
  drop_privileges();
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
    die("no_new_privs");
  if (o.landlock)
    landlock_apply();
  snprintf(home, sizeof(home), "HOME=%s", o.workspace ? o.workspace : "/tmp");
  envp[n++] = "PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:"
              "/sbin";
  envp[n++] = home;
  envp[n++] = "LANG=C.UTF-8";
  envp[n++] = "USER=agent";
  envp[n++] = "TMPDIR=/tmp";
  if (o.proxy) {
    static char *const proxy_env[] = {
      "HTTP_PROXY=http://127.0.0.1:" STR(PROXY_PORT),
      "HTTPS_PROXY=http://127.0.0.1:" STR(PROXY_PORT),
      "http_proxy=http://127.0.0.1:" STR(PROXY_PORT),
      "https_proxy=http://127.0.0.1:" STR(PROXY_PORT),
      "NO_PROXY=localhost,127.0.0.1",
    };

    for (i = 0; i < 5; i++)
      envp[n++] = proxy_env[i];
  }
  if (ca_pem) {
    /* The tools' usual ways to be told which CAs to trust. */
    static char *const ca_env[] = {
      "SSL_CERT_FILE=" CA_BUNDLE,  "CURL_CA_BUNDLE=" CA_BUNDLE,
      "GIT_SSL_CAINFO=" CA_BUNDLE, "REQUESTS_CA_BUNDLE=" CA_BUNDLE,
      "PIP_CERT=" CA_BUNDLE,       "NODE_EXTRA_CA_CERTS=" CA_ONLY,
    };

    for (i = 0; i < 6; i++)
      envp[n++] = ca_env[i];
  }
  /* Env grants last: the spec's declared last resort. */
  for (i = 0; i < nenvg; i++)
    envp[n++] = env_grants[i];
  for (i = 0; i < o.nenv; i++)
    envp[n++] = (char *)o.env[i];
  envp[n] = NULL;
  environ = envp;
  if (o.filter) {
    struct sock_fprog prog = { o.nfilter, o.filter };

    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0))
      die("installing the seccomp program");
  }
  execvp(o.argv[0], o.argv);
  die("exec %s", o.argv[0]);
}

/* ---- the sandbox init (C), pid 1 of the new pid namespace ---- */

/* Takes the one mapped id (files it creates need a mapped owner) and
 * keeps the namespace's capabilities for building the root. */
static void become_inside_id(void)
{
  struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
  struct __user_cap_data_struct d[2];

  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0))
    die("keepcaps");
  if (setresgid(INSIDE_ID, INSIDE_ID, INSIDE_ID))
    die("setresgid");
  if (setresuid(INSIDE_ID, INSIDE_ID, INSIDE_ID))
    die("setresuid");
  if (syscall(SYS_capget, &h, d))
    die("capget");
  d[0].effective = d[0].permitted;
  d[1].effective = d[1].permitted;
  if (syscall(SYS_capset, &h, d))
    die("capset");
}

static int sandbox_init(int sync_fd)
{
  char c;
  pid_t g;
  int st;

  if (read(sync_fd, &c, 1) != 1)
    _exit(125); /* P died before mapping us */
  close(sync_fd);
  grants_forget_http();
  become_inside_id();
  /* Changing credentials cleared the parent-death signal: set it again,
   * then make sure P did not die in between. Without this, C (and the
   * command under it) outlived a SIGKILLed worker. */
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  {
    struct pollfd pf = { life_fd, POLLIN, 0 };

    if (poll(&pf, 1, 0) > 0 && (pf.revents & (POLLHUP | POLLERR)))
      _exit(125);
  }
  build_root();
  loopback_up();
  if (o.proxy)
    proxy_listen();
  if (sethostname("sandbox", 7))
    die("sethostname");
  g = fork();
  if (g < 0)
    die("fork");
  if (g == 0)
    exec_command();
  /* Reap everything; leave with the command's status, which ends the
   * namespace and every process still in it. */
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  grants_forget_env();
  close(err_fd);
  for (;;) {
    pid_t p = waitpid(-1, &st, 0);

    if (p == g)
      break;
    if (p < 0 && errno != EINTR)
      _exit(125);
  }
  if (WIFSIGNALED(st))
    _exit(128 + WTERMSIG(st));
  _exit(WEXITSTATUS(st));
}

/* ---- P ---- */

static void map_ids(pid_t c)
{
  char file[64];
  long uid = geteuid() == 0 ? o.host_id : (long)geteuid();
  long gid = geteuid() == 0 ? o.host_id : (long)getegid();

  /* gid_map needs setgroups denied when the writer is unprivileged. */
  snprintf(file, sizeof(file), "%d/setgroups", (int)c);
  put("/proc", file, "deny");
  snprintf(file, sizeof(file), "%d/uid_map", (int)c);
  if (put("/proc", file, "%d %ld 1\n", INSIDE_ID, uid))
    die("writing uid_map");
  snprintf(file, sizeof(file), "%d/gid_map", (int)c);
  if (put("/proc", file, "%d %ld 1\n", INSIDE_ID, gid))
    die("writing gid_map");
}

/* One JSON line to --status-fd, if there is one. */
static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void report(const char *fmt, ...)
{
  va_list ap;

  if (o.status_fd < 0)
    return;
  va_start(ap, fmt);
  vdprintf(o.status_fd, fmt, ap);
  va_end(ap);
}

static long long mono_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void json_str(char *out, size_t n, const char *s)
{
  size_t j = 0;

  for (; *s && j + 7 < n; s++) {
    unsigned char ch = (unsigned char)*s;

    if (ch == '"' || ch == '\\') {
      out[j++] = '\\';
      out[j++] = (char)ch;
    } else if (ch < 0x20) {
      j += (size_t)snprintf(out + j, n - j, "\\u%04x", ch);
    } else {
      out[j++] = (char)ch;
    }
  }
  out[j] = 0;
}

static long long mono_us(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* What P reads of the setup-error pipe: C's or G's message, and when
 * its EOF came with none (G's exec closed the last write end). */
struct setup_watch {
  char msg[512];
  size_t len;
  int eof;
  long long exec_us;
};

static void setup_read(struct setup_watch *w, int fd)
{
  ssize_t n = read(fd, w->msg + w->len, sizeof(w->msg) - 1 - w->len);

  if (n < 0 && errno == EINTR)
    return;
  if (n > 0) {
    w->len += (size_t)n;
    w->msg[w->len] = 0;
    if (w->len < sizeof(w->msg) - 1)
      return;
  }
  /* EOF, an error, or a full buffer (a message, so no exec to time). */
  w->eof = 1;
  if (n == 0 && !w->len)
    w->exec_us = mono_us();
}

/* The sandbox could not be built: say why, on the status fd and stderr. */
static int setup_failed(const char *msg)
{
  char esc[1100];

  json_str(esc, sizeof(esc), msg);
  report("{\"status\":\"error\",\"error\":\"%s\"}\n", esc);
  fprintf(stderr, "durin-sandbox: %s\n", msg);
  return 125;
}

int main(int argc, char **argv)
{
  int sync[2], errp[2], life[2], pidfd, st = 0, timed_out = 0, oom, code;
  int mntns;
  char msg[512] = "", exec_at[48] = "";
  const char *err;
  struct proxy *proxy = NULL;
  struct setup_watch setup = { "", 0, 0, 0 };
  long long deadline;
  pid_t c;

  parse(argc, argv);
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (getppid() == 1)
    return 125; /* the parent is already gone */
  read_filter();
  read_grants();
  if (o.status_fd >= 0)
    fcntl(o.status_fd, F_SETFD, FD_CLOEXEC);
  /* Before the pipes: the short-lived children it forks must not hold
   * the setup pipe's write end (its EOF times the exec). */
  if ((err = binds_prepare()))
    return setup_failed(err);
  if (pipe2(sync, O_CLOEXEC) || pipe2(errp, O_CLOEXEC) ||
      pipe2(life, O_CLOEXEC)) {
    perror("durin-sandbox: pipe");
    return 125;
  }
  if (o.proxy &&
      socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, proxy_sock)) {
    perror("durin-sandbox: socketpair");
    return 125;
  }
  cgroup_enter();
  c = (pid_t)syscall(SYS_clone,
                     CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
                         CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP |
                         SIGCHLD,
                     NULL, NULL, NULL, NULL);
  if (c < 0) {
    snprintf(msg, sizeof(msg), "creating the namespaces: %s", strerror(errno));
    cgroup_remove();
    return setup_failed(msg);
  }
  if (c == 0) {
    close(sync[1]);
    close(errp[0]);
    err_fd = errp[1];
    close(life[1]);
    life_fd = life[0];
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    return sandbox_init(sync[0]);
  }
  close(sync[0]);
  close(errp[1]);
  close(life[0]); /* life[1] stays open until P exits */
  map_ids(c);
  snprintf(msg, sizeof(msg), "/proc/%d/ns/mnt", (int)c);
  mntns = open(msg, O_RDONLY | O_CLOEXEC);
  msg[0] = 0;
  if (write(sync[1], "x", 1) != 1)
    perror("durin-sandbox: sync");
  close(sync[1]);

  if (o.proxy) {
    int lfd;

    close(proxy_sock[1]);
    if ((lfd = proxy_receive()) >= 0)
      proxy = proxy_new(lfd, o.allow, o.nallow, http_grants, nhttp, call_ca,
                        o.egress_ca);
  }
  deadline = o.timeout_s ? mono_ms() + o.timeout_s * 1000 : 0;
  pidfd = (int)syscall(SYS_pidfd_open, c, 0);
  for (;;) {
    struct pollfd pf[1 + 1 + 1 + 2 * 64];
    int wait_ms = -1, npf = 1, nproxy = 0, ierr = 0;

    if (deadline) {
      long long left = deadline - mono_ms();

      if (left <= 0) {
        timed_out = 1;
        kill(c, SIGKILL);
        break;
      }
      wait_ms = (int)left;
    }
    pf[0].fd = pidfd;
    pf[0].events = POLLIN;
    if (proxy)
      npf += nproxy =
          proxy_fill(proxy, pf + 1, (int)(sizeof(pf) / sizeof(*pf)) - 2);
    if (!setup.eof) {
      ierr = npf++;
      pf[ierr].fd = errp[0];
      pf[ierr].events = POLLIN;
    }
    if (poll(pf, (nfds_t)npf, wait_ms) > 0) {
      if (ierr && pf[ierr].revents)
        setup_read(&setup, errp[0]);
      if (pf[0].revents)
        break;
      proxy_handle(proxy, pf + 1, nproxy);
    }
  }
  proxy_free(proxy);
  grants_forget_http();
  grants_forget_env();
  while (waitpid(c, &st, 0) < 0 && errno == EINTR)
    ;
  /* C and G are gone: what is left on the pipe reads without waiting. */
  while (!setup.eof)
    setup_read(&setup, errp[0]);
  snprintf(msg, sizeof(msg), "%s", setup.msg);
  oom = cgroup_oom();
  teardown(mntns);
  if (msg[0])
    return setup_failed(msg);
  if (setup.exec_us)
    snprintf(exec_at, sizeof(exec_at), ",\"exec_mono_us\":%lld", setup.exec_us);
  if (timed_out) {
    report("{\"status\":\"timeout\",\"timeout_s\":%ld,\"cgroup\":%d%s}\n",
           o.timeout_s, cg_kind, exec_at);
    return 124;
  }
  /* C exits with the command's status, 128+N for its signal N. */
  code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  if (code > 128)
    report("{\"status\":\"signaled\",\"signal\":%d,\"oom\":%s,"
           "\"cgroup\":%d%s}\n",
           code - 128, oom ? "true" : "false", cg_kind, exec_at);
  else
    report("{\"status\":\"exited\",\"code\":%d,\"oom\":%s,"
           "\"cgroup\":%d%s}\n",
           code, oom ? "true" : "false", cg_kind, exec_at);
  return code;
}
