/*
 * Starting a shell command for a tool call or an acceptance check, and
 * reading how it ended. The waiting is the worker's, on its event loop
 * (lib/worker/uv-proc.c): nothing here blocks.
 *
 * The child gets its own session and process group (no controlling
 * terminal, so no TIOCSTI into ours), stdin from /dev/null, a clean
 * environment, rlimits, every inherited descriptor closed, and
 * PR_SET_PDEATHSIG so it dies with us. When the command exits or the
 * timeout fires, the whole process group is killed: nothing outlives the
 * call. That is the floor every call gets; with a sandbox the child execs
 * libexec/durin-sandbox, which runs the command in its own namespaces,
 * cgroup, seccomp and Landlock domain (lib/sandbox, DESIGN 6).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "durin/sandbox.h"
#include "durin/tools.h"
#include "durin/util.h"

static void set_limit(int res, rlim_t v)
{
  struct rlimit rl = { v, v };
  struct rlimit cur;

  /* Never raise a limit the host already set lower. */
  if (getrlimit(res, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
      cur.rlim_max < v)
    rl.rlim_cur = rl.rlim_max = cur.rlim_max;
  setrlimit(res, &rl);
}

/* In the child, between fork and exec: only async-signal-safe calls. */
static void child(pid_t parent, const char *dir, const char *command, int in_fd,
                  int out_fd, int err_fd, char *const envp[],
                  int64_t timeout_ms, int seccomp_fd, int status_fd,
                  int grants_fd, char *const sandbox_argv[],
                  char *const helper_envp[], char *const argv[])
{
  int devnull;

  /* Lift the pipes above 0..2 first: if our parent ran with a standard
   * descriptor closed, a pipe may sit exactly where stdin goes. */
  out_fd = fcntl(out_fd, F_DUPFD, 3);
  if (out_fd < 0)
    _exit(126);
  if (in_fd >= 0 && (in_fd = fcntl(in_fd, F_DUPFD, 3)) < 0)
    _exit(126);
  if (err_fd >= 0 && (err_fd = fcntl(err_fd, F_DUPFD, 3)) < 0)
    _exit(126);
  setsid();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  /* The parent may have died before the signal was armed (and we were
   * taken by init or a subreaper): then nothing may start. */
  if (getppid() != parent)
    _exit(126);
  if (dir && chdir(dir) < 0)
    _exit(126);
  devnull = in_fd >= 0 ? in_fd : open("/dev/null", O_RDONLY);
  if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out_fd, 1) < 0 ||
      dup2(err_fd >= 0 ? err_fd : out_fd, 2) < 0)
    _exit(126);
  if (sandbox_argv) {
    /* Both above the numbers they go to first, so that neither dup2
     * lands on the other before it is moved. */
    seccomp_fd = fcntl(seccomp_fd, F_DUPFD, DURIN_SANDBOX_GRANTS_FD + 1);
    status_fd = fcntl(status_fd, F_DUPFD, DURIN_SANDBOX_GRANTS_FD + 1);
    if (grants_fd >= 0)
      grants_fd = fcntl(grants_fd, F_DUPFD, DURIN_SANDBOX_GRANTS_FD + 1);
    if (seccomp_fd < 0 || status_fd < 0 ||
        dup2(seccomp_fd, DURIN_SANDBOX_SECCOMP_FD) < 0 ||
        dup2(status_fd, DURIN_SANDBOX_STATUS_FD) < 0 ||
        (grants_fd >= 0 && dup2(grants_fd, DURIN_SANDBOX_GRANTS_FD) < 0))
      _exit(126);
    syscall(SYS_close_range, DURIN_SANDBOX_GRANTS_FD + (grants_fd >= 0), ~0U,
            0);
  } else {
    syscall(SYS_close_range, 3, ~0U, 0);
  }
  set_limit(RLIMIT_CORE, 0);
  set_limit(RLIMIT_NOFILE, 1024);
  set_limit(RLIMIT_FSIZE, (rlim_t)1 << 30);
  set_limit(RLIMIT_NPROC, 4096);
  if (timeout_ms > 0)
    set_limit(RLIMIT_CPU, (rlim_t)(timeout_ms / 1000 + 5));
  signal(SIGPIPE, SIG_DFL);
  if (sandbox_argv) {
    /* Not our environment: it may hold DURIN_MASTER_KEY, and the
     * sandbox's init is a copy of the helper. */
    execve(sandbox_argv[0], sandbox_argv, helper_envp);
    _exit(127);
  }
  if (argv) {
    execvpe(argv[0], argv, envp);
    _exit(127);
  }
  execle("/bin/bash", "bash", "-c", command, (char *)NULL, envp);
  _exit(127);
}

/* The helper's environment: a PATH, and the sanitizers' options of a
 * test build; nothing else of ours. */
static void helper_env(char *henv[8], char kv[3][512])
{
  static const char *const pass[] = { "ASAN_OPTIONS", "UBSAN_OPTIONS",
                                      "LSAN_OPTIONS", NULL };
  int i, nh = 0;

  henv[nh++] = "PATH=/usr/local/bin:/usr/bin:/bin";
  for (i = 0; pass[i]; i++) {
    const char *v = getenv(pass[i]);

    if (v && strlen(v) < 400) {
      snprintf(kv[i], sizeof(kv[i]), "%s=%s", pass[i], v);
      henv[nh++] = kv[i];
    }
  }
  henv[nh] = NULL;
}

/*
 * The environments of a child: envp (cap entries) for one run straight on
 * the host (a PATH, HOME=dir, a locale, then extra_env), senv (cap
 * entries) for one in the sandbox, which builds the rest itself.
 */
static void child_env(char **envp, const char **senv, int cap, char *home,
                      size_t hlen, const char *dir,
                      const char *const *extra_env)
{
  int n = 0, i;

  snprintf(home, hlen, "HOME=%s", dir ? dir : "/");
  envp[n++] = "PATH=/usr/local/bin:/usr/bin:/bin";
  envp[n++] = home;
  envp[n++] = "LANG=C.UTF-8";
  envp[n++] = "TERM=dumb";
  envp[n++] = "TMPDIR=/tmp";
  for (i = 0; extra_env && extra_env[i] && n < cap - 2; i++)
    envp[n++] = (char *)extra_env[i];
  envp[n] = NULL;
  senv[0] = "TERM=dumb";
  for (i = 0; extra_env && extra_env[i] && i < cap - 2; i++)
    senv[i + 1] = extra_env[i];
  senv[i + 1] = NULL;
}

int durin_proc_spawn(const struct durin_proc_box *box, const char *dir,
                     const char *command, const char *const *extra_env,
                     int64_t timeout_ms, pid_t *pid_out, int *out_fd,
                     int *status_fd)
{
  const struct durin_sandbox *sb = box ? box->sandbox : NULL;
  char **sargv = NULL;
  char *envp[40], *henv[8];
  const char *senv[40];
  char home[4200], kv[3][512];
  int pipefd[2], st[2] = { -1, -1 }, gfd = -1;
  pid_t pid, parent;

  *status_fd = -1;
  helper_env(henv, kv);
  child_env(envp, senv, 40, home, sizeof(home), dir, extra_env);
  if (sb) {
    /* The sandbox builds its own environment: only what we add. */
    if (box->ngrants && !box->readonly &&
        durin_sandbox_grants_memfd(box->grants, box->ngrants, box->tool, &gfd))
      return DURIN_EIO;
    sargv = durin_sandbox_command(
        sb, box->spec, dir, box->layer, senv, timeout_ms,
        (gfd >= 0 ? DURIN_SANDBOX_GRANTS : 0u) |
            (box->readonly ? DURIN_SANDBOX_WORKSPACE_RO : 0u),
        command);
    /* Without its argv the command would run on the host: not at all. */
    if (!sargv) {
      if (gfd >= 0)
        close(gfd);
      return DURIN_ENOMEM;
    }
  }

  if (pipe2(pipefd, O_CLOEXEC) < 0) {
    durin_sandbox_argv_free(sargv);
    if (gfd >= 0)
      close(gfd);
    return DURIN_EIO;
  }
  /* The helper's status line: one line at its end, within a pipe's
   * buffer, read once it has exited. */
  if (sargv &&
      (pipe2(st, O_CLOEXEC) < 0 || fcntl(st[0], F_SETFL, O_NONBLOCK) < 0)) {
    if (st[0] >= 0) {
      close(st[0]);
      close(st[1]);
    }
    close(pipefd[0]);
    close(pipefd[1]);
    durin_sandbox_argv_free(sargv);
    if (gfd >= 0)
      close(gfd);
    return DURIN_EIO;
  }
  parent = getpid();
  pid = fork();
  if (pid < 0) {
    close(pipefd[0]);
    close(pipefd[1]);
    if (st[0] >= 0) {
      close(st[0]);
      close(st[1]);
    }
    durin_sandbox_argv_free(sargv);
    if (gfd >= 0)
      close(gfd);
    return DURIN_EIO;
  }
  if (pid == 0)
    child(parent, dir, command, -1, pipefd[1], -1, envp, timeout_ms,
          sb ? sb->seccomp_fd : -1, st[1], gfd, sargv, henv, NULL);
  durin_sandbox_argv_free(sargv);
  if (gfd >= 0)
    close(gfd);
  close(pipefd[1]);
  if (st[1] >= 0)
    close(st[1]);
  *pid_out = pid;
  *out_fd = pipefd[0];
  *status_fd = st[0];
  return 0;
}

int64_t durin_proc_exec_us(int status_fd)
{
  char line[1024];
  const char *at;
  ssize_t n;

  if (status_fd < 0)
    return 0;
  while ((n = read(status_fd, line, sizeof(line) - 1)) < 0 && errno == EINTR)
    ;
  if (n <= 0)
    return 0;
  line[n] = 0;
  /* One flat line the helper formats itself: no JSON parser needed. An
   * error line carries a message (which may quote anything) and never
   * the field. */
  if (!strncmp(line, "{\"status\":\"error\"", 17) ||
      !(at = strstr(line, "\"exec_mono_us\":")))
    return 0;
  return strtoll(at + strlen("\"exec_mono_us\":"), NULL, 10);
}

void durin_proc_finish(struct durin_buf *out, size_t dropped, int status,
                       int64_t started_ms, struct durin_tool_result *res)
{
  res->exit_code = -1;
  if (WIFEXITED(status))
    res->exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    res->exit_code = 128 + WTERMSIG(status);
  if (dropped) {
    res->truncated = 1;
    out->cap += 128;
    durin_buf_addf(out, "\n[output truncated: %zu more bytes]\n", dropped);
  }
  res->ok = !res->timed_out && !res->stopped && res->exit_code == 0;
  /* Commands print arbitrary bytes; the log and the model need text. */
  durin_utf8_sanitize(out->buf, out->len);
  res->output = durin_buf_detach(out, NULL);
  res->duration_ms = durin_mono_ms() - started_ms;
}

/* argv as one bash command line that execs it: each word single-quoted. */
static char *quote_argv(char *const argv[])
{
  struct durin_buf b;
  int i;

  durin_buf_init(&b, 0);
  durin_buf_adds(&b, "exec");
  for (i = 0; argv[i]; i++) {
    const char *p;

    durin_buf_adds(&b, " '");
    for (p = argv[i]; *p; p++)
      if (*p == '\'')
        durin_buf_adds(&b, "'\\''");
      else
        durin_buf_add(&b, p, 1);
    durin_buf_adds(&b, "'");
  }
  return durin_buf_detach(&b, NULL);
}

int durin_proc_spawn_server(const struct durin_proc_box *box, const char *dir,
                            char *const argv[], const char *const *extra_env,
                            pid_t *pid_out, int fds[4])
{
  const struct durin_sandbox *sb = box ? box->sandbox : NULL;
  char **sargv = NULL, *command = NULL;
  char *envp[80], *henv[8];
  const char *senv[80];
  char home[4200], kv[3][512];
  int p[3][2] = { { -1, -1 }, { -1, -1 }, { -1, -1 } }, st[2] = { -1, -1 };
  int i, r = DURIN_EIO;
  pid_t pid, parent;

  helper_env(henv, kv);
  child_env(envp, senv, 80, home, sizeof(home), dir, extra_env);
  if (sb) {
    command = quote_argv(argv);
    /* No timeout: the server lives as long as the run on this worker. */
    sargv = durin_sandbox_command(sb, box->spec, dir, box->layer, senv, 0, 0,
                                  command);
    if (!sargv) {
      free(command);
      return DURIN_ENOMEM;
    }
  }
  for (i = 0; i < 3; i++)
    if (pipe2(p[i], O_CLOEXEC) < 0)
      goto out;
  /* The helper's status pipe: kept open, so that its last line does not
   * kill it with SIGPIPE and hide the server's own exit status. */
  if (sargv && pipe2(st, O_CLOEXEC) < 0)
    goto out;
  parent = getpid();
  pid = fork();
  if (pid < 0)
    goto out;
  if (pid == 0)
    child(parent, dir, command, p[0][0], p[1][1], p[2][1], envp, 0,
          sb ? sb->seccomp_fd : -1, st[1], -1, sargv, henv, argv);
  fds[0] = p[0][1];
  fds[1] = p[1][0];
  fds[2] = p[2][0];
  fds[3] = st[0];
  p[0][1] = p[1][0] = p[2][0] = st[0] = -1;
  *pid_out = pid;
  r = 0;
out:
  for (i = 0; i < 3; i++) {
    if (p[i][0] >= 0)
      close(p[i][0]);
    if (p[i][1] >= 0)
      close(p[i][1]);
  }
  if (st[0] >= 0)
    close(st[0]);
  if (st[1] >= 0)
    close(st[1]);
  durin_sandbox_argv_free(sargv);
  free(command);
  return r;
}
