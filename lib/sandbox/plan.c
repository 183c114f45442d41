/*
 * The durin-sandbox command line for one call, where the helper is, and
 * which host directories a spec's binds may never expose.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sodium.h>

#include "durin/sandbox.h"

int durin_sandbox_helper(const char *exe, char *out, size_t len,
                         struct durin_err *err)
{
  const char *env = getenv("DURIN_SANDBOX_HELPER");
  char dir[PATH_MAX], *slash;

  if (!out || !len)
    return durin_err_set(err, DURIN_EINVAL, "no room for the helper's path");
  if (env && *env) {
    if (access(env, X_OK))
      return durin_err_set(err, DURIN_ENOTFOUND,
                           "DURIN_SANDBOX_HELPER=%s is not executable", env);
    snprintf(out, len, "%s", env);
    return 0;
  }
  snprintf(dir, sizeof(dir), "%s", exe);
  slash = strrchr(dir, '/');
  if (slash)
    *slash = 0;
  snprintf(out, len, "%s/durin-sandbox", dir);
  if (!access(out, X_OK))
    return 0;
  snprintf(out, len, "%s/../libexec/durin/durin-sandbox", dir);
  if (!access(out, X_OK))
    return 0;
  return durin_err_set(err, DURIN_ENOTFOUND,
                       "the sandbox helper durin-sandbox is not next to %s "
                       "nor in ../libexec/durin; install it or set "
                       "DURIN_SANDBOX_HELPER",
                       exe);
}

static void add(char ***v, int *n, const char *s)
{
  *v = realloc(*v, (size_t)(*n + 2) * sizeof(**v));
  if (!*v)
    abort();
  (*v)[(*n)++] = strdup(s);
  (*v)[*n] = NULL;
}

static void addn(char ***v, int *n, const char *opt, long val)
{
  char num[32];

  snprintf(num, sizeof(num), "%ld", val);
  add(v, n, opt);
  add(v, n, num);
}

char **durin_sandbox_argv(const char *helper,
                          const struct durin_sandbox_opts *o, int seccomp_fd,
                          int status_fd, char *const cmd[])
{
  char **v = NULL;
  int n = 0, i;

  add(&v, &n, helper);
  if (o->workspace) {
    add(&v, &n, "--workspace");
    add(&v, &n, o->workspace);
    if (o->workspace_ro)
      add(&v, &n, "--workspace-ro");
  }
  if (o->nlower && o->layers) {
    int l;

    for (l = 0; l < o->nlower; l++) {
      add(&v, &n, "--lower");
      add(&v, &n, o->lower[l]);
    }
    add(&v, &n, "--layers");
    add(&v, &n, o->layers);
  }
  for (i = 0; i < o->nro; i++) {
    add(&v, &n, "--ro");
    add(&v, &n, o->ro[i]);
  }
  for (i = 0; i < o->nrw; i++) {
    add(&v, &n, "--rw");
    add(&v, &n, o->rw[i]);
  }
  for (i = 0; i < o->nenv; i++) {
    add(&v, &n, "--setenv");
    add(&v, &n, o->env[i]);
  }
  if (o->uid > 0)
    addn(&v, &n, "--uid", o->uid);
  if (o->mem_mb > 0)
    addn(&v, &n, "--mem", o->mem_mb);
  if (o->pids > 0)
    addn(&v, &n, "--pids", o->pids);
  if (o->cpu_pct > 0)
    addn(&v, &n, "--cpu", o->cpu_pct);
  if (o->timeout_s > 0)
    addn(&v, &n, "--timeout", o->timeout_s);
  if (o->fsize_mb > 0)
    addn(&v, &n, "--fsize", o->fsize_mb);
  if (o->nofile > 0)
    addn(&v, &n, "--nofile", o->nofile);
  if (o->net_proxy) {
    add(&v, &n, "--net");
    add(&v, &n, "proxy");
  }
  for (i = 0; i < o->nallow; i++) {
    add(&v, &n, "--allow-host");
    add(&v, &n, o->allow[i]);
  }
  if (o->grants) {
    addn(&v, &n, "--grants-fd", DURIN_SANDBOX_GRANTS_FD);
    if (o->egress_ca && *o->egress_ca) {
      add(&v, &n, "--egress-ca");
      add(&v, &n, o->egress_ca);
    }
  }
  if (seccomp_fd >= 0)
    addn(&v, &n, "--seccomp-fd", seccomp_fd);
  if (status_fd >= 0)
    addn(&v, &n, "--status-fd", status_fd);
  add(&v, &n, "--");
  for (i = 0; cmd[i]; i++)
    add(&v, &n, cmd[i]);
  return v;
}

void durin_sandbox_argv_free(char **argv)
{
  int i;

  for (i = 0; argv && argv[i]; i++)
    free(argv[i]);
  free(argv);
}

int durin_sandbox_open(struct durin_sandbox *sb, const char *exe,
                       struct durin_err *err)
{
  int r;

  memset(sb, 0, sizeof(*sb));
  sb->seccomp_fd = -1;
  r = durin_sandbox_helper(exe, sb->helper, sizeof(sb->helper), err);
  if (!r)
    r = durin_sandbox_seccomp(&sb->seccomp_fd, err);
  /* Room for compilers and test suites; a runaway still stops. */
  sb->defaults.mem_mb = 4096;
  sb->defaults.pids = 512;
  sb->defaults.nofile = 1024;
  sb->defaults.fsize_mb = 4096;
  /* The operator's extra CAs for the hosts the proxy re-encrypts to (a
   * private registry, the tests' local server). */
  sb->defaults.egress_ca = getenv("DURIN_EGRESS_CA_FILE");
  return r;
}

/*
 * path with symlinks resolved. A path that does not exist (yet) resolves
 * its longest existing prefix and keeps the rest as written, unless the
 * rest has a ".." that could climb out of what it names: that cannot be
 * judged without the files, so it is an error (-1), as is a relative path.
 */
static int resolve(const char *path, char out[PATH_MAX])
{
  char head[PATH_MAX], base[PATH_MAX];
  const char *rest;
  char *slash;

  if (path[0] != '/')
    return -1;
  if (realpath(path, out))
    return 0;
  if (errno != ENOENT)
    return -1;
  snprintf(head, sizeof(head), "%s", path);
  while ((slash = strrchr(head, '/'))) {
    *slash = 0;
    rest = path + (slash - head);
    if (realpath(*head ? head : "/", base)) {
      size_t n = strlen(rest);

      if (strstr(rest, "/../") || (n >= 3 && !strcmp(rest + n - 3, "/..")))
        return -1;
      snprintf(out, PATH_MAX, "%s%s", strcmp(base, "/") ? base : "", rest);
      return 0;
    }
    if (errno != ENOENT)
      return -1;
  }
  return -1;
}

/* Whether a is b or lies inside it (both resolved). */
static int within(const char *a, const char *b)
{
  size_t n = strlen(b);

  if (!strcmp(b, "/"))
    return 1;
  return !strncmp(a, b, n) && (a[n] == '/' || a[n] == 0);
}

int durin_sandbox_forbid(struct durin_sandbox *sb, const char *path,
                         const char *what, struct durin_err *err)
{
  struct durin_sandbox_root *root;

  if (sb->nforbid == DURIN_SANDBOX_FORBID_MAX)
    return durin_err_set(err, DURIN_EINVAL,
                         "too many forbidden sandbox roots (%d)",
                         DURIN_SANDBOX_FORBID_MAX);
  root = &sb->forbid[sb->nforbid];
  if (path[0] != '/') {
    char cwd[PATH_MAX], abs[PATH_MAX * 2];

    if (!getcwd(cwd, sizeof(cwd)))
      return durin_err_set(err, DURIN_EIO, "cannot resolve %s '%s': %s", what,
                           path, strerror(errno));
    snprintf(abs, sizeof(abs), "%s/%s", cwd, path);
    return durin_sandbox_forbid(sb, abs, what, err);
  }
  if (resolve(path, root->path))
    return durin_err_set(err, DURIN_EINVAL,
                         "cannot resolve %s '%s' to keep it out of the "
                         "sandbox: %s",
                         what, path, strerror(errno ? errno : EINVAL));
  root->what = what;
  sb->nforbid++;
  return 0;
}

static int check_binds(const struct durin_sandbox *sb, const char *field,
                       char *const *binds, int n, struct durin_err *err)
{
  char real[PATH_MAX];
  int i, j;

  for (i = 0; i < n; i++) {
    if (resolve(binds[i], real))
      return durin_err_set(err, DURIN_ESPEC,
                           "field '%s[%d]': '%s' cannot be resolved to a "
                           "host path, so it cannot be checked against the "
                           "store and the data directory; give an absolute "
                           "path without '..'",
                           field, i, binds[i]);
    for (j = 0; j < sb->nforbid; j++) {
      const struct durin_sandbox_root *r = &sb->forbid[j];
      const char *how;

      if (!strcmp(real, r->path))
        how = "is";
      else if (within(real, r->path))
        how = "lies inside";
      else if (within(r->path, real))
        how = "contains";
      else
        continue;
      /* The agent could read every run's log and ledger, and plant
       * files the worker trusts (as root, on a root worker). */
      return durin_err_set(err, DURIN_ESPEC,
                           "field '%s[%d]': '%s' %s %s '%s'; a sandbox bind "
                           "may never expose the store or the data "
                           "directory (every run's log, ledger and "
                           "workspace); bind a directory outside both",
                           field, i, binds[i], how, r->what, r->path);
    }
  }
  return 0;
}

int durin_sandbox_check(const struct durin_sandbox *sb,
                        const struct durin_spec_sandbox *box,
                        struct durin_err *err)
{
  int r;

  if (!sb || !box || !sb->nforbid)
    return 0;
  r = check_binds(sb, "sandbox.ro", box->ro, box->nro, err);
  if (!r)
    r = check_binds(sb, "sandbox.rw", box->rw, box->nrw, err);
  return r;
}

void durin_sandbox_close(struct durin_sandbox *sb)
{
  if (sb && sb->seccomp_fd >= 0)
    close(sb->seccomp_fd);
  if (sb)
    sb->seccomp_fd = -1;
}

char **durin_sandbox_command(const struct durin_sandbox *sb,
                             const struct durin_spec_sandbox *box,
                             const char *workspace, const char *layer,
                             const char *const *env, int64_t timeout_ms,
                             unsigned flags, const char *command)
{
  struct durin_sandbox_opts o = sb->defaults;
  char *cmd[] = { "/bin/bash", "-c", (char *)command, NULL, NULL, NULL };
  struct durin_err refused = { 0 };
  char layers[PATH_MAX], upper[PATH_MAX + 8];
  const char *template = NULL;

  o.workspace = workspace;
  o.grants = (flags & DURIN_SANDBOX_GRANTS) != 0;
  for (o.nenv = 0; env && env[o.nenv];)
    o.nenv++;
  o.env = env;
  if (box) {
    o.ro = (const char *const *)box->ro;
    o.nro = box->nro;
    o.rw = (const char *const *)box->rw;
    o.nrw = box->nrw;
    if (box->memory_mb)
      o.mem_mb = box->memory_mb;
    if (box->pids)
      o.pids = box->pids;
    if (box->cpu_percent)
      o.cpu_pct = box->cpu_percent;
    template = box->template;
    o.net_proxy = box->net_proxy;
    o.allow = (const char *const *)box->allow_hosts;
    o.nallow = box->nallow;
  }
  /* The check a worker made before the run may be stale: a bind may have
   * become a symlink into the store since. */
  if (durin_sandbox_check(sb, box, &refused)) {
    o.ro = o.rw = NULL;
    o.nro = o.nrw = 0;
    cmd[2] = "printf 'durin: %s\\n' \"$1\" >&2; exit 126";
    cmd[3] = "durin-refused";
    cmd[4] = refused.msg;
  }
  if (flags & DURIN_SANDBOX_WORKSPACE_RO) {
    /* Reads only: no writable bind, no network, no grant, no layer. */
    o.workspace_ro = 1;
    o.rw = NULL;
    o.nrw = 0;
    o.net_proxy = 0;
    o.allow = NULL;
    o.nallow = 0;
    o.grants = 0;
    layer = NULL;
    if (template) {
      template = NULL;
      cmd[2] = "printf 'durin: %s\\n' \"$1\" >&2; exit 126";
      cmd[3] = "durin-refused";
      cmd[4] = "a read-only command cannot run on a template run's "
               "workspace (its view is an overlay)";
    }
  }
  /* The caller enforces the call's timeout; the helper's is a backstop. */
  o.timeout_s = timeout_ms > 0 ? timeout_ms / 1000 + 5 : 0;
  if (template && workspace)
    durin_workspace_layers(workspace, layers, sizeof(layers));
  if (layer && workspace) {
    /* The call's own layer over the workspace as it stands: the run's
     * files (over the template), or the plain directory. */
    if (template) {
      snprintf(upper, sizeof(upper), "%s/upper", layers);
      o.lower[o.nlower++] = upper;
      o.lower[o.nlower++] = template;
    } else {
      o.lower[o.nlower++] = workspace;
    }
    o.layers = layer;
  } else if (template && workspace) {
    o.lower[o.nlower++] = template;
    o.layers = layers;
  }
  return durin_sandbox_argv(sb->helper, &o, DURIN_SANDBOX_SECCOMP_FD,
                            DURIN_SANDBOX_STATUS_FD, cmd);
}

/* Appends a length and bytes to the grants' buffer. */
static void put_str(unsigned char *buf, size_t *at, const void *s, size_t n)
{
  uint32_t len = (uint32_t)n;

  memcpy(buf + *at, &len, 4);
  memcpy(buf + *at + 4, s, n);
  *at += 4 + n;
}

int durin_sandbox_grants_memfd(const struct durin_sandbox_grant *g, int n,
                               const char *tool, int *fd)
{
  static const char magic[] = "durin-grants-1\n";
  unsigned char *buf;
  size_t size = sizeof(magic), at = 0;
  int i, any = 0, r = 0;

  *fd = -1;
  for (i = 0; i < n; i++) {
    if (!g[i].host && (!tool || !g[i].tool || strcmp(tool, g[i].tool)))
      continue;
    any = 1;
    size += 1 + 3 * 4 + g[i].len;
    size += g[i].host ?
                strlen(g[i].host) + strlen(g[i].header) + strlen(g[i].format) :
                strlen(g[i].env);
  }
  if (!any)
    return 0;
  /* The values pass through here: guarded memory, wiped when freed. */
  if (sodium_init() < 0 || !(buf = sodium_malloc(size)))
    return DURIN_ENOMEM;
  memcpy(buf, magic, sizeof(magic) - 1);
  at = sizeof(magic) - 1;
  for (i = 0; i < n; i++) {
    if (g[i].host) {
      const char *brace = strstr(g[i].format, "{}");
      size_t pre = (size_t)(brace - g[i].format), post = strlen(brace + 2);
      uint32_t len = (uint32_t)(pre + g[i].len + post);

      buf[at++] = 'H';
      put_str(buf, &at, g[i].host, strlen(g[i].host));
      put_str(buf, &at, g[i].header, strlen(g[i].header));
      memcpy(buf + at, &len, 4);
      memcpy(buf + at + 4, g[i].format, pre);
      memcpy(buf + at + 4 + pre, g[i].value, g[i].len);
      memcpy(buf + at + 4 + pre + g[i].len, brace + 2, post);
      at += 4 + len;
    } else if (tool && g[i].tool && !strcmp(tool, g[i].tool)) {
      buf[at++] = 'E';
      put_str(buf, &at, g[i].env, strlen(g[i].env));
      put_str(buf, &at, g[i].value, g[i].len);
    }
  }
  *fd = memfd_create("durin-grants", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (*fd < 0 || write(*fd, buf, at) != (ssize_t)at ||
      fcntl(*fd, F_ADD_SEALS,
            F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)) {
    if (*fd >= 0)
      close(*fd);
    *fd = -1;
    r = DURIN_EIO;
  }
  sodium_free(buf);
  return r;
}
