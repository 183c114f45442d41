/*
 * Tool processes on the worker's event loop: started like every tool
 * command (durin_proc_spawn: own session, clean environment, rlimits,
 * closed descriptors), then watched through a pidfd (exit) and the output
 * pipe, with a timer for the wall-clock limit. When the command exits, is
 * stopped or times out, its whole process group is killed; the call ends
 * once the exit is reaped and the pipe is closed (or a second after the
 * kill, should something have escaped the group).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "durin/worker.h"
#include "worker/worker-int.h"

struct uvp {
  uv_loop_t *loop;
  pid_t pid;
  int pidfd, outfd, statusfd;
  uv_poll_t out_poll, exit_poll;
  uv_timer_t timer;
  int open_handles;
  int exited, eof, status, killed;
  int64_t t0, t0_us, timeout_ms;
  struct durin_buf out;
  size_t cap, dropped;
  struct durin_tool_result res;
  uvp_done_cb cb;
  void *arg;
  int done;
};

static void kill_group(struct uvp *p)
{
  kill(-p->pid, SIGKILL);
  if (!p->exited)
    kill(p->pid, SIGKILL);
  p->killed = 1;
}

static void on_closed(uv_handle_t *h)
{
  struct uvp *p = h->data;

  if (--p->open_handles == 0) {
    if (p->outfd >= 0)
      close(p->outfd);
    if (p->pidfd >= 0)
      close(p->pidfd);
    if (p->statusfd >= 0)
      close(p->statusfd);
    durin_buf_release(&p->out);
    free(p);
  }
}

static void close_all(struct uvp *p)
{
  uv_close((uv_handle_t *)&p->out_poll, on_closed);
  uv_close((uv_handle_t *)&p->exit_poll, on_closed);
  uv_close((uv_handle_t *)&p->timer, on_closed);
}

static void maybe_done(struct uvp *p)
{
  struct durin_tool_result res;

  if (p->done || !p->exited || !p->eof)
    return;
  p->done = 1;
  res = p->res;
  durin_proc_finish(&p->out, p->dropped, p->status, p->t0, &res);
  uv_timer_stop(&p->timer);
  if (p->cb)
    p->cb(p->arg, &res);
  else
    durin_tool_result_clear(&res);
  close_all(p);
}

static void on_timeout(uv_timer_t *t)
{
  struct uvp *p = t->data;

  if (!p->exited && !p->res.stopped)
    p->res.timed_out = 1;
  if (!p->killed) {
    kill_group(p);
    /* Give the pipe a second to close; then end regardless. */
    uv_timer_start(&p->timer, on_timeout, 1000, 0);
    return;
  }
  if (p->exited) {
    p->eof = 1;
    uv_poll_stop(&p->out_poll);
    maybe_done(p);
    return;
  }
  /* Killed but not reaped yet: look again shortly. */
  uv_timer_start(&p->timer, on_timeout, 1000, 0);
}

static void on_exit_ready(uv_poll_t *h, int status, int events)
{
  struct uvp *p = h->data;
  int st;

  (void)status;
  (void)events;
  if (waitpid(p->pid, &st, WNOHANG) != p->pid)
    return;
  p->exited = 1;
  p->status = st;
  uv_poll_stop(&p->exit_poll);
  /* The helper wrote its status line before it exited. */
  if (p->statusfd >= 0) {
    int64_t exec_us = durin_proc_exec_us(p->statusfd);

    if (exec_us > p->t0_us)
      p->res.sandbox_start_us = exec_us - p->t0_us;
  }
  /* The command is done; whatever it left behind dies with it. */
  kill(-p->pid, SIGKILL);
  p->killed = 1;
  if (!p->eof)
    uv_timer_start(&p->timer, on_timeout, 1000, 0);
  maybe_done(p);
}

static void on_output(uv_poll_t *h, int status, int events)
{
  struct uvp *p = h->data;
  char chunk[16384];
  ssize_t r;

  (void)events;
  for (;;) {
    r = read(p->outfd, chunk, sizeof(chunk));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0 && errno == EAGAIN && status == 0)
      return;
    break;
  }
  if (r <= 0) {
    p->eof = 1;
    uv_poll_stop(&p->out_poll);
    maybe_done(p);
    return;
  }
  if (p->out.len < p->cap) {
    size_t take = (size_t)r;

    if (take > p->cap - p->out.len)
      take = p->cap - p->out.len;
    durin_buf_add(&p->out, chunk, take);
    p->dropped += (size_t)r - take;
  } else {
    p->dropped += (size_t)r;
  }
}

struct uvp *uvp_start(uv_loop_t *loop, const struct durin_proc_box *box,
                      const char *dir, const char *command,
                      const char *const *env, int64_t timeout_ms, size_t cap,
                      uvp_done_cb cb, void *arg)
{
  struct uvp *p = calloc(1, sizeof(*p));

  if (!p)
    return NULL;
  p->loop = loop;
  p->cb = cb;
  p->arg = arg;
  p->cap = cap;
  p->timeout_ms = timeout_ms;
  p->pidfd = p->outfd = p->statusfd = -1;
  p->t0 = durin_mono_ms();
  p->t0_us = durin_mono_us();
  durin_buf_init(&p->out, cap);
  if (durin_proc_spawn(box, dir, command, env, timeout_ms, &p->pid, &p->outfd,
                       &p->statusfd)) {
    durin_buf_release(&p->out);
    free(p);
    return NULL;
  }
  p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
  fcntl(p->outfd, F_SETFL, fcntl(p->outfd, F_GETFL) | O_NONBLOCK);
  if (p->pidfd < 0) {
    /* Without pidfds (Linux < 5.3) there is no way to wait on the loop. */
    kill_group(p);
    waitpid(p->pid, NULL, 0);
    close(p->outfd);
    if (p->statusfd >= 0)
      close(p->statusfd);
    durin_buf_release(&p->out);
    free(p);
    return NULL;
  }
  uv_poll_init(loop, &p->out_poll, p->outfd);
  uv_poll_init(loop, &p->exit_poll, p->pidfd);
  uv_timer_init(loop, &p->timer);
  p->out_poll.data = p->exit_poll.data = p->timer.data = p;
  p->open_handles = 3;
  uv_poll_start(&p->out_poll, UV_READABLE | UV_DISCONNECT, on_output);
  uv_poll_start(&p->exit_poll, UV_READABLE, on_exit_ready);
  uv_timer_start(&p->timer, on_timeout, (uint64_t)timeout_ms, 0);
  return p;
}

void uvp_stop(struct uvp *p)
{
  if (p->done || p->killed)
    return;
  p->res.stopped = 1;
  kill_group(p);
  uv_timer_start(&p->timer, on_timeout, 1000, 0);
}

void uvp_abandon(struct uvp *p)
{
  if (p->done)
    return;
  p->cb = NULL;
  if (!p->killed)
    kill_group(p);
  /* Reaped by the exit watch, which keeps running until it fires. */
  uv_timer_start(&p->timer, on_timeout, 1000, 0);
}

struct once {
  struct durin_tool_result *res;
  int done;
};

static void on_once_done(void *arg, struct durin_tool_result *res)
{
  struct once *o = arg;

  *o->res = *res;
  o->done = 1;
}

/*
 * One command on a loop of its own: for a caller with no loop (the CLI's
 * sandbox self-test, tests), the same process runner the worker uses.
 */
int durin_worker_run_command(const struct durin_proc_box *box, const char *dir,
                             const char *command, const char *const *extra_env,
                             int64_t timeout_ms, size_t output_cap,
                             struct durin_tool_result *res)
{
  struct once o = { res, 0 };
  uv_loop_t loop;
  int r = 0;

  memset(res, 0, sizeof(*res));
  res->exit_code = -1;
  if (uv_loop_init(&loop))
    return DURIN_EIO;
  if (!uvp_start(&loop, box, dir, command, extra_env, timeout_ms, output_cap,
                 on_once_done, &o))
    r = DURIN_EIO;
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return r ? r : (o.done ? 0 : DURIN_EIO);
}
