/*
 * durin sandbox [options] -- CMD [ARG...]: runs one command in exactly the
 * sandbox a run's tools get, to check a configuration (and for tests).
 * It execs libexec/durin-sandbox with the compiled seccomp program.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "durin/sandbox.h"

static const char usage_text[] =
    "usage: durin sandbox [options] -- CMD [ARG...]\n\n"
    "Runs CMD in the sandbox every tool call gets: its own user, mount,\n"
    "pid, net, ipc and uts namespaces, a minimal read-only root, the\n"
    "workspace read-write, no network (or only an allowlisted proxy), no\n"
    "capabilities, seccomp and\n"
    "Landlock, rlimits and cgroup limits. Exits with CMD's status\n"
    "(124: timed out, 125: the sandbox could not be built).\n\n"
    "  --workspace DIR   bound read-write at its own path; the cwd\n"
    "  --ro DIR          also bind DIR read-only (repeatable)\n"
    "  --setenv K=V      add to the environment (repeatable)\n"
    "  --net none        no network but loopback (the default)\n"
    "  --net proxy       HTTP(S) out through a proxy that lets only\n"
    "                    --allow-host hosts through (HTTP_PROXY is set)\n"
    "  --allow-host H    NAME (ports 80, 443), NAME:PORT or *.SUFFIX;\n"
    "                    raw IP addresses are always refused (repeatable)\n"
    "  --mem MB          memory limit (cgroup; rlimit without one)\n"
    "  --pids N          process limit (default 512)\n"
    "  --cpu PCT         CPU quota, 100 = one core\n"
    "  --timeout SECS    kill the whole tree after SECS\n"
    "  --fsize MB        largest file it may write\n"
    "  --nofile N        descriptor limit (default 1024)\n"
    "  --mem defaults to 4096 MB and --fsize to 4096 MB, as for tool calls.\n"
    "  --status          print the sandbox's JSON status to stderr\n";

static long num_arg(const char *opt, const char *v)
{
  char *end;
  long n = strtol(v, &end, 10);

  if (!*v || *end || n < 0) {
    cli_error("%s wants a whole number, not '%s'", opt, v);
    return -1;
  }
  return n;
}

int cmd_sandbox(int argc, char **argv, struct cli *cli)
{
  static const char *ro[32], *env[32], *allow[32];
  static struct durin_sandbox sb;
  struct durin_sandbox_opts o;
  struct durin_err err = { 0 };
  char exe[PATH_MAX];
  char **hargv;
  int i, sfd, status = 0;
  ssize_t n;

  (void)cli;
  /* The limits a run's tool calls get, unless overridden here. */
  n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  exe[n > 0 ? n : 0] = 0;
  if (durin_sandbox_open(&sb, exe, &err)) {
    cli_error("%s", err.msg);
    return 125;
  }
  o = sb.defaults;
  o.ro = ro;
  o.env = env;
  o.allow = allow;
  for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    long *num = NULL;

    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage_text, stdout);
      return EXIT_OK;
    }
    if (!strcmp(a, "--status")) {
      status = 1;
      continue;
    }
    if (!v) {
      cli_error("%s needs a value; see 'durin sandbox --help'", a);
      return EXIT_USAGE;
    }
    i++;
    if (!strcmp(a, "--workspace")) {
      o.workspace = v;
    } else if (!strcmp(a, "--ro") && o.nro < 32) {
      ro[o.nro++] = v;
    } else if (!strcmp(a, "--setenv") && o.nenv < 32) {
      if (!strchr(v, '=')) {
        cli_error("--setenv wants K=V, not '%s'", v);
        return EXIT_USAGE;
      }
      env[o.nenv++] = v;
    } else if (!strcmp(a, "--net")) {
      if (strcmp(v, "none") && strcmp(v, "proxy")) {
        cli_error("--net is 'none' or 'proxy', not '%s'", v);
        return EXIT_USAGE;
      }
      o.net_proxy = !strcmp(v, "proxy");
    } else if (!strcmp(a, "--allow-host") && o.nallow < 32) {
      allow[o.nallow++] = v;
    } else if (!strcmp(a, "--mem")) {
      num = &o.mem_mb;
    } else if (!strcmp(a, "--pids")) {
      num = &o.pids;
    } else if (!strcmp(a, "--cpu")) {
      num = &o.cpu_pct;
    } else if (!strcmp(a, "--timeout")) {
      num = &o.timeout_s;
    } else if (!strcmp(a, "--fsize")) {
      num = &o.fsize_mb;
    } else if (!strcmp(a, "--nofile")) {
      num = &o.nofile;
    } else {
      return cli_bad_arg("sandbox", a, usage_text);
    }
    if (num && (*num = num_arg(a, v)) < 0)
      return EXIT_USAGE;
  }
  if (i + 1 >= argc) {
    cli_error("no command; usage: durin sandbox [options] -- CMD [ARG...]");
    return EXIT_USAGE;
  }
  if (o.workspace) {
    static char ws[PATH_MAX];

    if (!realpath(o.workspace, ws)) {
      cli_error("workspace '%s' does not exist", o.workspace);
      return EXIT_USAGE;
    }
    o.workspace = ws;
  }
  /* The descriptor must survive the exec into the helper. */
  sfd = dup(sb.seccomp_fd);
  /* A copy of stderr: the helper marks its status fd close-on-exec. */
  hargv = durin_sandbox_argv(sb.helper, &o, sfd, status ? dup(2) : -1,
                             &argv[i + 1]);
  execv(sb.helper, hargv);
  cli_error("cannot run %s: %m", sb.helper);
  durin_sandbox_argv_free(hargv);
  return 125;
}
