/*
 * GET /v1/runs/{id}/diff: the run's workspace against its start, as
 * `durin diff` prints it (?stat=1: its diffstat), and the same diff for
 * an approval's review (approvals.c).
 *
 * It is made here, by cli_diff_write into a bounded buffer, except for a
 * run on a template: its diff mounts overlay views of the workspace and
 * of its start, and this process's mount namespace is the embedded
 * worker's too, whose tool calls mount that same workspace. A `durin
 * diff` of its own makes that one, in a namespace of its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <microhttpd.h>

#include "cli/cmd.h"
#include "durin/util.h"
#include "server/server.h"

extern char **environ;

/* What a diff may hold in memory; beyond, ask for ?stat=1 instead. */
#define DIFF_MAX (32 << 20)
/* What a `durin diff` child may say on stderr that is kept. */
#define DIFF_ERR_MAX 1024

/* ---- a FILE that writes into a durin_buf ---- */

struct capped {
  struct durin_buf b;
  int over; /* a write went past the cap: the text is cut short */
};

static ssize_t capped_write(void *cookie, const char *data, size_t len)
{
  struct capped *c = cookie;

  if (c->over || durin_buf_add(&c->b, data, len)) {
    c->over = 1;
    errno = EFBIG;
    return -1;
  }
  return (ssize_t)len;
}

/* ---- the diff in a child of its own (template runs) ---- */

/* The environment with DURIN_STORE set to url (the child's store). */
static char **child_env(const char *url)
{
  size_t n = 0, i, k = 0;
  char **env;

  while (environ[n])
    n++;
  if (!(env = calloc(n + 2, sizeof(*env))))
    return NULL;
  for (i = 0; i < n; i++)
    if (strncmp(environ[i], "DURIN_STORE=", 12))
      env[k++] = environ[i];
  if (asprintf(&env[k], "DURIN_STORE=%s", url) < 0) {
    free(env);
    return NULL;
  }
  return env;
}

/* Reads the child's stdout into c and its stderr into msg until both
 * end; past the cap, or if poll fails, the child (ours) is killed, so
 * the wait that follows cannot hang on a full pipe. */
static void drain(pid_t pid, int out, int errfd, struct capped *c,
                  struct durin_buf *msg)
{
  struct pollfd p[2] = { { out, POLLIN, 0 }, { errfd, POLLIN, 0 } };
  char buf[65536];
  ssize_t n;
  int open = 2, i;

  while (open > 0) {
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      kill(pid, SIGKILL);
      return;
    }
    for (i = 0; i < 2; i++) {
      if (p[i].fd < 0 || !p[i].revents)
        continue;
      n = read(p[i].fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        p[i].fd = -1;
        open--;
      } else if (i == 1) {
        durin_buf_add(msg, buf, (size_t)n); /* past its cap: the start
                                               says why */
      } else if (capped_write(c, buf, (size_t)n) < 0) {
        kill(pid, SIGKILL);
        p[0].fd = -1;
        open--;
      }
    }
  }
}

static int diff_in_child(struct req *r, const char *id, int stat,
                         struct capped *c, struct durin_err *err)
{
  char exe[PATH_MAX];
  char *argv[] = { "durin", "diff", stat ? "--stat" : (char *)id,
                   stat ? (char *)id : NULL, NULL };
  char **env = NULL;
  posix_spawn_file_actions_t fa;
  struct durin_buf msg;
  int out[2] = { -1, -1 }, errp[2] = { -1, -1 }, status = 0, rc;
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  pid_t pid;

  if (n <= 0)
    return durin_err_set(err, DURIN_EIO, "cannot find this program: %s",
                         strerror(errno));
  exe[n] = 0;
  if (!(env = child_env(srv_options(r->srv)->store_url)) ||
      pipe2(out, O_CLOEXEC) || pipe2(errp, O_CLOEXEC)) {
    rc = durin_err_set(err, DURIN_EIO, "cannot start 'durin diff': %s",
                       strerror(errno));
    goto out;
  }
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
  rc = posix_spawn(&pid, exe, &fa, NULL, argv, env);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  close(errp[1]);
  out[1] = errp[1] = -1;
  if (rc) {
    rc = durin_err_set(err, DURIN_EIO, "cannot start 'durin diff': %s",
                       strerror(rc));
    goto out;
  }
  durin_buf_init(&msg, DIFF_ERR_MAX);
  drain(pid, out[0], errp[0], c, &msg);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  rc = 0;
  if (!c->over && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    char *m = msg.buf;

    m[strcspn(m, "\n")] = 0;
    if (!strncmp(m, "durin: ", 7))
      m += 7;
    rc = durin_err_set(err,
                       WIFEXITED(status) &&
                               WEXITSTATUS(status) == EXIT_NOT_FOUND ?
                           DURIN_ENOTFOUND :
                           DURIN_EIO,
                       "%s", *m ? m : "'durin diff' failed");
  }
  durin_buf_release(&msg);
out:
  if (out[0] >= 0)
    close(out[0]);
  if (errp[0] >= 0)
    close(errp[0]);
  if (out[1] >= 0)
    close(out[1]);
  if (errp[1] >= 0)
    close(errp[1]);
  if (env) {
    size_t i;

    for (i = 0; env[i]; i++)
      if (!strncmp(env[i], "DURIN_STORE=", 12))
        free(env[i]);
    free(env);
  }
  return rc;
}

/* ---- the diff ---- */

int srv_run_diff(struct req *r, const char *id, int stat, char **text,
                 size_t *len, struct durin_err *err)
{
  cookie_io_functions_t io = { NULL, capped_write, NULL, NULL };
  struct capped c;
  FILE *f;
  int rc;

  *text = NULL;
  *len = 0;
  memset(&c, 0, sizeof(c));
  durin_buf_init(&c.b, DIFF_MAX);
  if (!(f = fopencookie(&c, "w", io))) {
    durin_buf_release(&c.b);
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  }
  rc = cli_diff_write(r->store, id,
                      CLI_DIFF_NO_MOUNTS | (stat ? CLI_DIFF_STAT : 0), f, err);
  fclose(f);
  if (rc == DURIN_EACCES) { /* a template run: see the top of this file */
    durin_buf_reset(&c.b);
    c.over = 0;
    rc = diff_in_child(r, id, stat, &c, err);
  }
  if (!rc && c.over)
    rc = durin_err_set(err, DURIN_ETOOBIG,
                       "the diff is over %d MiB; ask for the diffstat "
                       "(?stat=1) or download the workspace",
                       DIFF_MAX >> 20);
  if (rc && !err->msg[0])
    durin_err_set(err, rc, "cannot make the diff");
  if (!rc)
    *text = durin_buf_detach(&c.b, len);
  durin_buf_release(&c.b);
  return rc;
}

static int get_diff(struct req *r)
{
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  struct MHD_Response *resp;
  const char *stat = req_arg(r, "stat");
  char *text;
  size_t len;
  int rc;

  if (stat && strcmp(stat, "0") && strcmp(stat, "1") && strcmp(stat, "true") &&
      strcmp(stat, "false"))
    return reply_error_field(r, 400, "bad_query", "stat",
                             "stat is 1 (the diffstat) or 0 (the diff)");
  if (req_run(r, r->param[0], &ri))
    return 0;
  rc = srv_run_diff(r, ri.id,
                    stat && (!strcmp(stat, "1") || !strcmp(stat, "true")),
                    &text, &len, &err);
  durin_run_info_clear(&ri);
  if (rc == DURIN_ETOOBIG)
    return reply_error(r, 422, "too_large", "%s", err.msg);
  if (rc == DURIN_ENOTFOUND)
    return reply_error(r, 404, "not_found", "%s", err.msg);
  if (rc) {
    srv_log(r->srv, "diff of run %s: %s", r->param[0], err.msg);
    return reply_error(r, 500, "internal", "%s", err.msg);
  }
  resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
  MHD_add_response_header(resp, "Content-Type", "text/x-diff; charset=utf-8");
  return reply_response(r, 200, resp);
}

const struct route srv_diff_routes[] = {
  { "GET", "/v1/runs/{}/diff", ROLE_VIEWER, get_diff },
  { NULL, NULL, ROLE_NONE, NULL },
};
