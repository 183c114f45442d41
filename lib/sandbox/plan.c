/*
 * The durin-sandbox command line for one call, and where the helper is.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
                             const char *command)
{
  struct durin_sandbox_opts o = sb->defaults;
  char *cmd[] = { "/bin/bash", "-c", (char *)command, NULL };
  char layers[PATH_MAX], upper[PATH_MAX + 8];
  const char *template = NULL;

  o.workspace = workspace;
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
  return durin_sandbox_argv(sb->helper, &o, DURIN_SANDBOX_SECCOMP_FD, -1, cmd);
}
