/*
 * A run's MCP servers on the worker's loop (docs/internals/mcp.md): the
 * transports under lib/mcp's sessions, restarts, and the one call a run
 * has in flight at a time.
 *
 * A server's life:
 *   STARTING --tools listed--> READY --process exits--> DOWN
 *   DOWN --backoff timer (0.5 s doubling to 30 s, 5 times)--> STARTING
 *   any --malformed message, or the opening failed--> CUT (never again)
 * A stdio server is a process (durin_proc_spawn_server: in the run's
 * sandbox with its workspace, or a plain child with --sandbox none) whose
 * stdin and stdout carry newline-delimited JSON-RPC; its stderr is kept,
 * its last kilobyte, for the message when it dies. A streamable HTTP
 * server is one POST per message through the worker's libcurl client,
 * each answer JSON or an SSE stream.
 *
 * The tools the harness was given are the first listing's, kept for the
 * run's life on this worker: a restarted server that lists others is
 * noted, and the model's view does not change under it.
 *
 * A server the operator gave the worker (durin worker --mcp-servers, a
 * spec's "scope": "worker") is started once, with the worker, as a plain
 * child, and shared: it lives in the worker's pool (struct wmcp_pool), and
 * each run's set refers to it. Its session carries the calls of many runs
 * at once, each with its own id and its own set as the reply's argument.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "durin/mcp.h"
#include "durin/util.h"
#include "worker/mcp.h"

#define MAX_RESTARTS 5

enum srv_state {
  SRV_STARTING,
  SRV_READY,
  SRV_DOWN,
  SRV_CUT,
};

struct msrv;

/* One process of a stdio server; outlives its server while it closes. */
struct mproc {
  struct msrv *srv; /* NULL once let go */
  uv_pipe_t in, out, err;
  uv_poll_t exitp;
  int nopen;
  pid_t pid;
  int pidfd, statusfd;
  int exited, status;
};

/* One POST to an HTTP server. */
struct hpost {
  struct hpost *next;
  struct msrv *srv;
  struct uvh_xfer *x;
  int64_t id; /* the request it carries, or 0 */
};

struct msrv {
  struct wmcp *set;       /* a run's own server: its set */
  struct wmcp_pool *pool; /* a shared one: its pool */
  const struct durin_spec_mcp *spec;
  uv_loop_t *loop;
  struct uvh *http;
  struct durin_proc_box box;
  const char *workspace;
  json_t *listed; /* the first listing, which the runs' tools come from */
  struct durin_mcp *m;
  /* The session before the last srv_down, freed at the next start: its
   * callbacks may still be on the stack when the server goes down. */
  struct durin_mcp *old_m;
  enum srv_state state;
  int attempts; /* restarts since it last answered a call */
  uv_timer_t backoff;
  struct mproc *proc;
  char errtail[1024];
  size_t errlen;
  char why[600]; /* why it is down or cut off */
  int first;     /* it has not listed its tools yet */
  int changed;   /* it said its tools changed while they were listed */
  int relisting; /* tools/list again, after it said so */
  char hash[65]; /* of the first listing */
  char version[16];
  /* HTTP */
  char session[256];
  char *const *headers; /* "Name: value" (values may be secrets) */
  int nheaders;
  struct hpost *posts;
};

struct wmcp {
  uv_loop_t *loop;
  struct uvh *http;
  const struct durin_spec *spec;
  struct durin_proc_box box;
  char *workspace;
  struct wmcp_ops ops;
  void *arg;
  /* Per server of the run's spec: the server (the run's own, or the
   * pool's), the run's entry (its name and effect overrides), the tools
   * made for this run, and whether they are. */
  struct msrv **srv;
  const struct durin_spec_mcp **ent;
  struct durin_mcp_toolset *ts;
  int *have_ts;
  int n;
  struct wmcp_pool *pool;
  struct wmcp *pnext; /* in the pool's list of sets */
  uv_timer_t kick;    /* shared servers already up: said after start */
  int starting;
  int failed; /* a server failed its first opening: said once */
  int gone;
  int nhandles; /* open handles of the set itself */
  const struct durin_tool_def **tools;
  int ntools;
  json_t *notices;
  /* The call in flight. */
  struct msrv *csrv;
  int64_t cid;
  int cactive;
  uv_timer_t ctimer;
  wmcp_call_cb ccb;
  void *carg;
  size_t ccap;
  int64_t ct0, ctimeout;
  char ctoken[128];
  int nprogress;
};

struct wmcp_pool {
  uv_loop_t *loop;
  struct uvh *http;
  struct msrv **srv;
  char ***headers; /* per server: "Name: value" lines */
  int n;
  struct wmcp *sets;
  void (*log)(void *arg, const char *line);
  void *arg;
  int nhandles;
  char dir[4200];
};

static const struct durin_mcp_ops mcp_ops;

static void srv_start(struct msrv *s);
static void srv_down(struct msrv *s, int cut, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void notice(struct wmcp *set, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void notice(struct wmcp *set, const char *fmt, ...)
{
  char msg[900];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (set->ops.notice)
    set->ops.notice(set->arg, msg);
}

/* A notice about server s: to its run, or for a shared one to the
 * worker's log and every run that uses it. */
static void srv_notice(struct msrv *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void srv_notice(struct msrv *s, const char *fmt, ...)
{
  struct wmcp *set;
  char msg[900];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (s->set) {
    notice(s->set, "%s", msg);
    return;
  }
  if (s->pool->log)
    s->pool->log(s->pool->arg, msg);
  for (set = s->pool->sets; set; set = set->pnext) {
    int i;

    for (i = 0; i < set->n; i++)
      if (set->srv[i] == s)
        notice(set, "%s", msg);
  }
}

/* ---- the call in flight ---- */

static void call_end(struct wmcp *set, struct durin_tool_result *res)
{
  wmcp_call_cb cb = set->ccb;

  set->cactive = 0;
  set->csrv = NULL;
  uv_timer_stop(&set->ctimer);
  res->duration_ms = durin_mono_ms() - set->ct0;
  if (!res->output)
    res->output = strdup("");
  set->ccb = NULL;
  cb(set->carg, res);
}

static void call_fail(struct wmcp *set, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void call_fail(struct wmcp *set, const char *fmt, ...)
{
  struct durin_tool_result res;
  char msg[1200];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  memset(&res, 0, sizeof(res));
  res.exit_code = -1;
  if (asprintf(&res.output, "error: %s", msg) < 0)
    abort();
  call_end(set, &res);
}

static void on_call_reply(void *arg, json_t *result,
                          const struct durin_err *err)
{
  struct wmcp *set = arg;
  struct durin_tool_result res;

  if (!set->cactive)
    return;
  if (!result) {
    call_fail(set, "%s", err->msg);
    return;
  }
  memset(&res, 0, sizeof(res));
  durin_mcp_call_result(result, set->ccap, &res);
  set->csrv->attempts = 0;
  call_end(set, &res);
}

static void on_call_timeout(uv_timer_t *t)
{
  struct wmcp *set = t->data;
  struct durin_tool_result res;

  if (!set->cactive)
    return;
  durin_mcp_cancel(set->csrv->m, set->cid, "timed out");
  memset(&res, 0, sizeof(res));
  res.exit_code = -1;
  res.timed_out = 1;
  if (asprintf(&res.output,
               "error: mcp server '%s' did not answer within %lld ms; the "
               "request was cancelled (notifications/cancelled)",
               set->csrv->spec->name, (long long)set->ctimeout) < 0)
    abort();
  call_end(set, &res);
}

int wmcp_call(struct wmcp *set, const struct durin_tool_def *def, json_t *args,
              const char *idem_key, int64_t timeout_ms, size_t cap,
              wmcp_call_cb cb, void *arg)
{
  struct msrv *s = NULL;
  int i, r;

  for (i = 0; i < set->n; i++)
    if (!strcmp(set->ent[i]->name, def->mcp_server))
      s = set->srv[i];
  set->ccb = cb;
  set->carg = arg;
  set->ccap = cap;
  set->ct0 = durin_mono_ms();
  set->ctimeout = timeout_ms;
  set->cactive = 1;
  set->csrv = s;
  set->nprogress = 0;
  if (!s) {
    call_fail(set, "no mcp server '%s' in this run", def->mcp_server);
    return 0;
  }
  if (s->state != SRV_READY) {
    call_fail(set, "mcp server '%s' is not running (%s)%s", s->spec->name,
              s->why,
              s->state == SRV_CUT ? "" : "; it is being restarted: try again");
    return 0;
  }
  snprintf(set->ctoken, sizeof(set->ctoken), "%s", idem_key ? idem_key : "");
  r = durin_mcp_request(s->m, "tools/call",
                        durin_mcp_call_params(def->mcp_tool, args, set->ctoken),
                        on_call_reply, set, &set->cid);
  if (r) {
    if (set->cactive)
      call_fail(set, "cannot send the call to mcp server '%s': %s",
                s->spec->name, durin_strerror(r));
    return 0;
  }
  if (set->cactive && timeout_ms > 0)
    uv_timer_start(&set->ctimer, on_call_timeout, (uint64_t)timeout_ms, 0);
  return 0;
}

void wmcp_call_stop(struct wmcp *set, const char *reason)
{
  struct durin_tool_result res;

  if (!set || !set->cactive)
    return;
  if (set->csrv && set->csrv->m)
    durin_mcp_cancel(set->csrv->m, set->cid, reason);
  memset(&res, 0, sizeof(res));
  res.exit_code = -1;
  res.stopped = 1;
  if (asprintf(&res.output,
               "error: the call was stopped (%s); mcp server '%s' was sent "
               "notifications/cancelled",
               reason, set->csrv ? set->csrv->spec->name : "?") < 0)
    abort();
  call_end(set, &res);
}

int wmcp_busy(const struct wmcp *set)
{
  return set && set->cactive;
}

/* ---- the session's callbacks ---- */

static void on_ready(void *arg, int rc, const struct durin_err *err);

static void on_notify(void *arg, const char *method, json_t *params)
{
  struct msrv *s = arg;
  struct wmcp *set = s->set ? s->set : s->pool->sets;
  const char *token =
      json_string_value(json_object_get(params, "progressToken"));

  if (!strcmp(method, "notifications/tools/list_changed")) {
    /* Listed again, to say whether they did: the model's tools stay what
     * they were when the run was taken. */
    if (s->state == SRV_STARTING || s->relisting)
      s->changed = 1;
    else if (s->state == SRV_READY && !durin_mcp_relist(s->m, on_ready, s))
      s->relisting = 1;
    return;
  }
  if (strcmp(method, "notifications/progress") || !token)
    return;
  /* The run whose call it is: the one run, or among the pool's. */
  for (; set; set = s->set ? NULL : set->pnext)
    if (set->cactive && set->csrv == s && !strcmp(token, set->ctoken))
      break;
  if (!set)
    return;
  /* Bounded: a chatty tool cannot flood the run's log. */
  if (++set->nprogress > 100)
    return;
  if (set->ops.progress)
    set->ops.progress(set->arg, s->spec->name, params);
}

/* Server i of set has listed its tools (rc 0), or never will. */
static void set_server_ready(struct wmcp *set, int i, int rc, const char *why)
{
  struct durin_err e = { 0 };

  if (set->failed || set->have_ts[i])
    return;
  if (!rc) {
    rc = durin_mcp_toolset_make(set->ent[i], set->srv[i]->listed, &set->ts[i],
                                set->notices, &e);
    why = e.msg;
  }
  if (rc) {
    set->failed = 1;
    if (set->ops.ready)
      set->ops.ready(set->arg, rc, why);
    return;
  }
  set->have_ts[i] = 1;
  if (--set->starting == 0 && set->ops.ready)
    set->ops.ready(set->arg, 0, NULL);
}

/* s's first opening ended: every run waiting for it hears. */
static void first_done(struct msrv *s, int rc, const char *why)
{
  struct wmcp *set, *next;
  int i;

  if (!s->first)
    return;
  s->first = 0;
  for (set = s->set ? s->set : s->pool->sets; set; set = next) {
    /* A run told may let go of its set (and leave the list). */
    next = s->set ? NULL : set->pnext;
    for (i = 0; i < set->n; i++)
      if (set->srv[i] == s)
        set_server_ready(set, i, rc, why);
  }
}

static void listed_hash(json_t *listed, char out[65])
{
  char *t = json_dumps(listed, JSON_COMPACT | JSON_SORT_KEYS);

  durin_sha256_hex(t ? t : "", t ? strlen(t) : 0, out);
  free(t);
}

static void on_ready(void *arg, int rc, const struct durin_err *err)
{
  struct msrv *s = arg;
  int relisted = s->relisting;
  char hash[65];

  s->relisting = 0;
  if (s->state == SRV_STARTING)
    uv_timer_stop(&s->backoff);
  if (rc && relisted && s->state == SRV_READY) {
    /* Only to say whether its tools changed: the run keeps its own. */
    srv_notice(s, "mcp server '%s': listing its tools again failed: %s",
               s->spec->name, err->msg);
    return;
  }
  if (rc) {
    srv_down(s, 1, "%s", err->msg);
    return;
  }
  if (s->changed) {
    /* Its tools changed while they were being listed (server-everything
     * adds some once initialized): the settled list, then. */
    s->changed = 0;
    s->relisting = 1;
    if ((rc = durin_mcp_relist(s->m, on_ready, s)))
      srv_down(s, 1, "mcp server '%s': cannot list its tools again: %s",
               s->spec->name, durin_strerror(rc));
    return;
  }
  snprintf(s->version, sizeof(s->version), "%s", durin_mcp_version(s->m));
  listed_hash(durin_mcp_listed(s->m), hash);
  if (relisted && s->state == SRV_READY) {
    if (strcmp(hash, s->hash))
      srv_notice(s,
                 "mcp server '%s' lists other tools now; the run keeps the "
                 "ones it was given (a resume lists them again)",
                 s->spec->name);
    return;
  }
  s->state = SRV_READY;
  if (!s->first) {
    srv_notice(s, "mcp server '%s' restarted (protocol %s)%s", s->spec->name,
               s->version,
               strcmp(hash, s->hash) ?
                   "; it lists other tools than when the run started, and "
                   "the run keeps the ones it started with" :
                   "");
    return;
  }
  memcpy(s->hash, hash, sizeof(hash));
  s->listed = json_incref(durin_mcp_listed(s->m));
  first_done(s, 0, NULL);
}

/* ---- stdio ---- */

static void proc_closed(uv_handle_t *h)
{
  struct mproc *p = h->data;

  if (--p->nopen)
    return;
  if (p->pidfd >= 0)
    close(p->pidfd);
  if (p->statusfd >= 0)
    close(p->statusfd);
  free(p);
}

static void proc_close(struct mproc *p)
{
  uv_close((uv_handle_t *)&p->in, proc_closed);
  uv_close((uv_handle_t *)&p->out, proc_closed);
  uv_close((uv_handle_t *)&p->err, proc_closed);
  uv_close((uv_handle_t *)&p->exitp, proc_closed);
}

/* Lets p go: killed, and freed once reaped. */
static void proc_release(struct mproc *p)
{
  if (!p)
    return;
  p->srv = NULL;
  kill(-p->pid, SIGKILL);
  if (!p->exited)
    kill(p->pid, SIGKILL);
  uv_read_stop((uv_stream_t *)&p->out);
  uv_read_stop((uv_stream_t *)&p->err);
  if (p->exited)
    proc_close(p);
}

static void on_exit_ready(uv_poll_t *h, int status, int events)
{
  struct mproc *p = h->data;
  struct msrv *s = p->srv;
  int st;

  (void)status;
  (void)events;
  if (waitpid(p->pid, &st, WNOHANG) != p->pid)
    return;
  p->exited = 1;
  p->status = st;
  uv_poll_stop(&p->exitp);
  /* Whatever it left in its group goes with it. */
  kill(-p->pid, SIGKILL);
  if (!s) {
    proc_close(p);
    return;
  }
  /* What it wrote before it went may still be in the pipe (libuv orders
   * no events of one poll): its last answer is read before it is gone,
   * so a call that ran is not reported failed. */
  {
    uv_os_fd_t fd;
    char buf[16384];
    ssize_t n;

    if (uv_fileno((uv_handle_t *)&p->out, &fd) == 0)
      while ((n = read(fd, buf, sizeof(buf))) > 0) {
        struct durin_err err = { 0 };

        if (durin_mcp_feed(s->m, buf, (size_t)n, &err)) {
          s->proc = NULL;
          proc_release(p);
          srv_down(s, 1, "%s", err.msg);
          return;
        }
      }
  }
  s->proc = NULL;
  proc_release(p);
  {
    char how[64];

    if (WIFEXITED(st))
      snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(st));
    else
      snprintf(how, sizeof(how), "was killed by signal %d",
               WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    while (s->errlen && strchr("\r\n \t", s->errtail[s->errlen - 1]))
      s->errlen--;
    srv_down(s, 0, "mcp server '%s' %s%s%.*s", s->spec->name, how,
             s->errlen ? "; its last words: " : "", (int)s->errlen, s->errtail);
  }
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
  (void)h;
  (void)size;
  buf->base = malloc(65536);
  buf->len = buf->base ? 65536 : 0;
}

static void on_out(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
  struct mproc *p = st->data;
  struct msrv *s = p->srv;
  struct durin_err err = { 0 };

  if (s && n > 0 && durin_mcp_feed(s->m, buf->base, (size_t)n, &err)) {
    free(buf->base);
    srv_down(s, 1, "%s", err.msg);
    return;
  }
  free(buf->base);
  if (n < 0)
    uv_read_stop(st);
}

static void on_err(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
  struct mproc *p = st->data;
  struct msrv *s = p->srv;

  if (s && n > 0) {
    size_t k = (size_t)n, keep = sizeof(s->errtail) - 1;

    if (k >= keep) {
      memcpy(s->errtail, buf->base + k - keep, keep);
      s->errlen = keep;
    } else {
      if (s->errlen + k > keep) {
        size_t drop = s->errlen + k - keep;

        memmove(s->errtail, s->errtail + drop, s->errlen - drop);
        s->errlen -= drop;
      }
      memcpy(s->errtail + s->errlen, buf->base, k);
      s->errlen += k;
    }
    durin_utf8_sanitize(s->errtail, s->errlen);
  }
  free(buf->base);
  if (n < 0)
    uv_read_stop(st);
}

struct wreq {
  uv_write_t req;
  char *text;
};

static void on_written(uv_write_t *req, int status)
{
  struct wreq *w = (struct wreq *)req;

  (void)status;
  free(w->text);
  free(w);
}

static int stdio_send(struct msrv *s, const char *text, size_t len)
{
  struct wreq *w;
  uv_buf_t b;

  if (!s->proc)
    return DURIN_EIO;
  if (uv_stream_get_write_queue_size((uv_stream_t *)&s->proc->in) > (size_t)16
                                                                        << 20)
    return DURIN_ETOOBIG;
  w = calloc(1, sizeof(*w));
  if (!w || !(w->text = malloc(len + 1))) {
    free(w);
    return DURIN_ENOMEM;
  }
  memcpy(w->text, text, len);
  w->text[len] = '\n';
  b = uv_buf_init(w->text, (unsigned)len + 1);
  if (uv_write(&w->req, (uv_stream_t *)&s->proc->in, &b, 1, on_written)) {
    free(w->text);
    free(w);
    return DURIN_EIO;
  }
  return 0;
}

static int stdio_spawn(struct msrv *s)
{
  struct mproc *p = calloc(1, sizeof(*p));
  int fds[4], r;

  if (!p)
    return DURIN_ENOMEM;
  r = durin_proc_spawn_server(&s->box, s->workspace, s->spec->argv,
                              (const char *const *)s->spec->env, &p->pid, fds);
  if (r) {
    free(p);
    return r;
  }
  p->srv = s;
  p->statusfd = fds[3];
  p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
  uv_pipe_init(s->loop, &p->in, 0);
  uv_pipe_init(s->loop, &p->out, 0);
  uv_pipe_init(s->loop, &p->err, 0);
  uv_pipe_open(&p->in, fds[0]);
  uv_pipe_open(&p->out, fds[1]);
  uv_pipe_open(&p->err, fds[2]);
  p->in.data = p->out.data = p->err.data = p;
  uv_poll_init(s->loop, &p->exitp, p->pidfd);
  p->exitp.data = p;
  p->nopen = 4;
  uv_poll_start(&p->exitp, UV_READABLE, on_exit_ready);
  uv_read_start((uv_stream_t *)&p->out, on_alloc, on_out);
  uv_read_start((uv_stream_t *)&p->err, on_alloc, on_err);
  s->proc = p;
  return 0;
}

/* ---- streamable HTTP ---- */

static void post_forget(struct msrv *s, struct hpost *hp)
{
  struct hpost **pp;

  for (pp = &s->posts; *pp; pp = &(*pp)->next)
    if (*pp == hp) {
      *pp = hp->next;
      break;
    }
  free(hp);
}

static void on_post_done(void *arg, int r, long status, const char *body,
                         size_t len, const char *ctype, const char *session,
                         struct durin_err *err)
{
  struct hpost *hp = arg;
  struct msrv *s = hp->srv;
  struct durin_err e = { 0 };
  int64_t id = hp->id;

  post_forget(s, hp);
  if (*session && !s->session[0])
    snprintf(s->session, sizeof(s->session), "%s", session);
  if (r || status >= 300) {
    if (!r)
      durin_err_set(&e, DURIN_EIO, "mcp server '%s' answered HTTP %ld%s%.*s",
                    s->spec->name, status, len ? ": " : "",
                    (int)(len > 300 ? 300 : len), body);
    else
      durin_err_set(&e, r, "mcp server '%s': %s", s->spec->name, err->msg);
    if (status == 404 && s->session[0]) {
      /* The session is gone (the server restarted): a new one. */
      s->session[0] = 0;
      srv_down(s, 0, "%s (its session ended)", e.msg);
      return;
    }
    if (id)
      durin_mcp_fail(s->m, id, &e);
    return;
  }
  if (durin_mcp_receive_body(
          s->m, body, len, !strncasecmp(ctype, "text/event-stream", 17), &e)) {
    srv_down(s, 1, "%s", e.msg);
    return;
  }
}

static int http_send(struct msrv *s, const char *text, size_t len)
{
  struct durin_http_req req;
  char pv[64], sid[300];
  struct hpost *hp;
  json_t *msg = json_loadb(text, len, 0, NULL);
  int n = 0, i;

  memset(&req, 0, sizeof(req));
  hp = calloc(1, sizeof(*hp));
  if (!hp) {
    json_decref(msg);
    return DURIN_ENOMEM;
  }
  hp->srv = s;
  hp->id = json_integer_value(json_object_get(msg, "id"));
  if (json_object_get(msg, "result") || json_object_get(msg, "error"))
    hp->id = 0; /* our answer to the server's request */
  json_decref(msg);
  req.url = s->spec->url;
  req.body = (char *)text;
  req.headers[n++] = "Content-Type: application/json";
  req.headers[n++] = "Accept: application/json, text/event-stream";
  if (durin_mcp_version(s->m)[0]) {
    snprintf(pv, sizeof(pv), "MCP-Protocol-Version: %s",
             durin_mcp_version(s->m));
    req.headers[n++] = pv;
  }
  if (s->session[0]) {
    snprintf(sid, sizeof(sid), "Mcp-Session-Id: %s", s->session);
    req.headers[n++] = sid;
  }
  for (i = 0; i < s->nheaders && n < 7; i++)
    req.headers[n++] = s->headers[i];
  /* The call's own timer cancels it first: this bounds the transfer. */
  hp->x = uvh_post_meta(s->http, &req, 3600 * 1000,
                        DURIN_MCP_MAX_MESSAGE + 65536, on_post_done, hp);
  if (!hp->x) {
    free(hp);
    return DURIN_EIO;
  }
  hp->next = s->posts;
  s->posts = hp;
  return 0;
}

static void http_abandon(struct msrv *s)
{
  while (s->posts) {
    struct hpost *hp = s->posts;

    s->posts = hp->next;
    uvh_xfer_free(hp->x);
    free(hp);
  }
}

/* ---- a server's life ---- */

static int on_send(void *arg, const char *text, size_t len)
{
  struct msrv *s = arg;

  return s->spec->url ? http_send(s, text, len) : stdio_send(s, text, len);
}

static const struct durin_mcp_ops mcp_ops = { on_send, on_notify };

static void on_backoff(uv_timer_t *t)
{
  srv_start(t->data);
}

/* How long an opening (initialize, tools/list) may take: the server's
 * timeout_s, else a minute. */
static uint64_t open_ms(const struct msrv *s)
{
  return s->spec->timeout_ms > 0 ? (uint64_t)s->spec->timeout_ms : 60000;
}

static void on_open_timeout(uv_timer_t *t)
{
  struct msrv *s = t->data;

  if (s->state == SRV_STARTING)
    srv_down(s, 1,
             "mcp server '%s' did not finish its opening (initialize, "
             "tools/list) within %llu ms; it was cut off",
             s->spec->name, (unsigned long long)open_ms(s));
}

static void srv_down(struct msrv *s, int cut, const char *fmt, ...)
{
  struct durin_err e = { 0 };
  va_list ap;
  int was_first = s->first;

  if (s->state == SRV_CUT || (s->state == SRV_DOWN && !cut))
    return;
  va_start(ap, fmt);
  vsnprintf(s->why, sizeof(s->why), fmt, ap);
  va_end(ap);
  /* A server that fails its opening is cut off too: starting it again
   * would fail the same way. */
  if (s->state == SRV_STARTING)
    cut = 1;
  uv_timer_stop(&s->backoff);
  s->state = cut ? SRV_CUT : SRV_DOWN;
  proc_release(s->proc);
  s->proc = NULL;
  http_abandon(s);
  durin_err_set(&e, DURIN_EIO, "%s", s->why);
  if (s->m) {
    /* The call in flight learns why (its callback is on_call_reply). */
    durin_mcp_fail_all(s->m, &e);
    durin_mcp_free(s->old_m);
    s->old_m = s->m;
    s->m = NULL;
  }
  if (was_first) {
    if (!s->set)
      srv_notice(s, "%s", s->why);
    first_done(s, DURIN_EIO, s->why);
    return;
  }
  if (cut) {
    srv_notice(s, "%s", s->why);
    return;
  }
  if (s->attempts >= MAX_RESTARTS) {
    s->state = SRV_CUT;
    srv_notice(s, "%s; not restarted: it died %d times in a row", s->why,
               s->attempts);
    return;
  }
  {
    uint64_t ms = 500u << s->attempts;

    if (ms > 30000)
      ms = 30000;
    s->attempts++;
    srv_notice(s, "%s; restarting it in %llu ms (attempt %d of %d)", s->why,
               (unsigned long long)ms, s->attempts, MAX_RESTARTS);
    uv_timer_start(&s->backoff, on_backoff, ms, 0);
  }
}

static void srv_start(struct msrv *s)
{
  int r;

  s->state = SRV_STARTING;
  s->errlen = 0;
  durin_mcp_free(s->old_m);
  s->old_m = NULL;
  s->session[0] = 0;
  s->m = durin_mcp_new(s->spec->name, &mcp_ops, s);
  if (!s->m) {
    srv_down(s, 1, "mcp server '%s': out of memory", s->spec->name);
    return;
  }
  if (!s->spec->url && (r = stdio_spawn(s))) {
    srv_down(s, 1, "mcp server '%s': cannot start '%s': %s", s->spec->name,
             s->spec->argv[0], durin_strerror(r));
    return;
  }
  uv_timer_start(&s->backoff, on_open_timeout, open_ms(s), 0);
  if ((r = durin_mcp_start(s->m, on_ready, s)) && s->state == SRV_STARTING)
    srv_down(s, 1, "mcp server '%s': cannot send initialize: %s", s->spec->name,
             durin_strerror(r));
}

/* ---- the set ---- */

static struct msrv *srv_new(uv_loop_t *loop, struct uvh *http,
                            const struct durin_spec_mcp *spec,
                            const struct durin_proc_box *box,
                            const char *workspace)
{
  struct msrv *s = calloc(1, sizeof(*s));

  if (!s)
    return NULL;
  s->spec = spec;
  s->loop = loop;
  s->http = http;
  s->box = *box;
  s->workspace = workspace;
  s->first = 1;
  uv_timer_init(loop, &s->backoff);
  s->backoff.data = s;
  return s;
}

/* Shared servers that are up (or failed) when the run came: said now,
 * on the loop, not inside wmcp_start. */
static void on_kick(uv_timer_t *t)
{
  struct wmcp *set = t->data;
  int i;

  for (i = 0; i < set->n && !set->failed; i++) {
    struct msrv *s = set->srv[i];

    if (!s) {
      char why[300];

      snprintf(why, sizeof(why),
               "mcp server '%s' has \"scope\": \"worker\", and this "
               "worker has no server of that name (durin worker "
               "--mcp-servers FILE)",
               set->ent[i]->name);
      set_server_ready(set, i, DURIN_ESPEC, why);
    } else if (s->set != set && !s->first) {
      set_server_ready(set, i, s->listed ? 0 : DURIN_EIO, s->why);
    }
  }
}

struct wmcp *wmcp_start(uv_loop_t *loop, struct uvh *http,
                        const struct durin_spec *spec,
                        const struct durin_proc_box *box,
                        char *const *const *headers, const int *nheaders,
                        struct wmcp_pool *pool, const struct wmcp_ops *ops,
                        void *arg)
{
  struct wmcp *set = calloc(1, sizeof(*set));
  int i, k, kick = 0;

  if (!set)
    return NULL;
  set->loop = loop;
  set->http = http;
  set->spec = spec;
  set->box = *box;
  set->workspace = strdup(spec->workspace);
  set->ops = *ops;
  set->arg = arg;
  set->notices = json_array();
  set->n = spec->nmcp;
  set->srv = calloc((size_t)spec->nmcp + 1, sizeof(*set->srv));
  set->ent = calloc((size_t)spec->nmcp + 1, sizeof(*set->ent));
  set->ts = calloc((size_t)spec->nmcp + 1, sizeof(*set->ts));
  set->have_ts = calloc((size_t)spec->nmcp + 1, sizeof(*set->have_ts));
  uv_timer_init(loop, &set->ctimer);
  set->ctimer.data = set;
  uv_timer_init(loop, &set->kick);
  set->kick.data = set;
  set->nhandles = 2;
  set->starting = spec->nmcp;
  set->pool = pool;
  if (pool) {
    set->pnext = pool->sets;
    pool->sets = set;
  }
  for (i = 0; i < spec->nmcp; i++) {
    const struct durin_spec_mcp *e = &spec->mcp[i];

    set->ent[i] = e;
    if (e->scope_worker) {
      for (k = 0; pool && k < pool->n; k++)
        if (!strcmp(pool->srv[k]->spec->name, e->name))
          set->srv[i] = pool->srv[k];
      /* Up already, failed, or missing: said from the loop. */
      if (!set->srv[i] || !set->srv[i]->first)
        kick = 1;
      continue;
    }
    set->srv[i] = srv_new(loop, http, e, box, set->workspace);
    set->srv[i]->set = set;
    set->srv[i]->headers = headers ? headers[i] : NULL;
    set->srv[i]->nheaders = nheaders ? nheaders[i] : 0;
    set->nhandles++;
  }
  for (i = 0; i < spec->nmcp; i++)
    if (set->srv[i] && set->srv[i]->set == set)
      srv_start(set->srv[i]);
  if (kick)
    uv_timer_start(&set->kick, on_kick, 0, 0);
  return set;
}

const struct durin_tool_def *const *wmcp_tools(struct wmcp *set, int *n)
{
  int i, k, total = 0;

  if (!set->tools) {
    for (i = 0; i < set->n; i++)
      total += set->ts[i].n;
    set->tools = calloc((size_t)total + 1, sizeof(*set->tools));
    for (i = 0; i < set->n; i++)
      for (k = 0; k < set->ts[i].n; k++)
        set->tools[set->ntools++] = &set->ts[i].defs[k];
  }
  *n = set->ntools;
  return set->tools;
}

json_t *wmcp_record(struct wmcp *set)
{
  json_t *servers = json_object();
  int i, k;

  for (i = 0; i < set->n; i++) {
    struct msrv *s = set->srv[i];
    json_t *tools = json_array();

    for (k = 0; k < set->ts[i].n; k++)
      json_array_append_new(
          tools,
          json_pack("{s:s,s:s}", "name", set->ts[i].defs[k].name, "effect",
                    durin_effect_name(set->ts[i].defs[k].effect)));
    json_object_set_new(servers, set->ent[i]->name,
                        json_pack("{s:s,s:s,s:s,s:s,s:o}", "transport",
                                  s->spec->url ? "http" : "stdio", "scope",
                                  s->set ? "run" : "worker", "protocol",
                                  s->version, "listing_sha256", s->hash,
                                  "tools", tools));
  }
  return json_pack("{s:o,s:O}", "servers", servers, "notices", set->notices);
}

static void srv_free(struct msrv *s)
{
  durin_mcp_free(s->m);
  durin_mcp_free(s->old_m);
  json_decref(s->listed);
  free(s);
}

static void set_unref(struct wmcp *set)
{
  int i;

  if (--set->nhandles)
    return;
  for (i = 0; i < set->n; i++) {
    durin_mcp_toolset_clear(&set->ts[i]);
    if (set->srv[i] && set->srv[i]->set == set)
      srv_free(set->srv[i]);
  }
  free(set->srv);
  free(set->ent);
  free(set->ts);
  free(set->have_ts);
  free(set->tools);
  free(set->workspace);
  json_decref(set->notices);
  free(set);
}

static void set_timer_closed(uv_handle_t *h)
{
  set_unref(h->data);
}

static void backoff_closed(uv_handle_t *h)
{
  set_unref(((struct msrv *)h->data)->set);
}

/* Lets s go: its process killed, its transfers abandoned, its timer
 * closed (then close_cb). */
static void srv_release(struct msrv *s, uv_close_cb close_cb)
{
  proc_release(s->proc);
  s->proc = NULL;
  http_abandon(s);
  uv_close((uv_handle_t *)&s->backoff, close_cb);
}

void wmcp_free(struct wmcp *set)
{
  struct wmcp **pp;
  int i;

  if (!set)
    return;
  /* A shared server's session outlives the set: the call in flight is
   * cancelled there, so that its answer never finds the set. */
  if (set->cactive && set->csrv && set->csrv->m)
    durin_mcp_cancel(set->csrv->m, set->cid, "the run was let go");
  set->gone = 1;
  set->cactive = 0;
  if (set->pool)
    for (pp = &set->pool->sets; *pp; pp = &(*pp)->pnext)
      if (*pp == set) {
        *pp = set->pnext;
        break;
      }
  for (i = 0; i < set->n; i++)
    if (set->srv[i] && set->srv[i]->set == set)
      srv_release(set->srv[i], backoff_closed);
  uv_close((uv_handle_t *)&set->ctimer, set_timer_closed);
  uv_close((uv_handle_t *)&set->kick, set_timer_closed);
}

/* ---- the worker's pool of shared servers ---- */

struct wmcp_pool *wmcp_pool_start(uv_loop_t *loop, struct uvh *http,
                                  const struct durin_spec *servers,
                                  void (*log)(void *arg, const char *line),
                                  void *arg)
{
  struct wmcp_pool *pool = calloc(1, sizeof(*pool));
  struct durin_proc_box none = { NULL, NULL, NULL };
  int i;

  if (!pool)
    return NULL;
  pool->loop = loop;
  pool->http = http;
  pool->log = log;
  pool->arg = arg;
  if (!getcwd(pool->dir, sizeof(pool->dir)))
    snprintf(pool->dir, sizeof(pool->dir), "/");
  pool->srv = calloc((size_t)servers->nmcp + 1, sizeof(*pool->srv));
  pool->headers = calloc((size_t)servers->nmcp + 1, sizeof(*pool->headers));
  for (i = 0; i < servers->nmcp; i++) {
    const struct durin_spec_mcp *e = &servers->mcp[i];
    struct msrv *s = srv_new(loop, http, e, &none, pool->dir);
    int k;

    s->pool = pool;
    pool->headers[i] = calloc((size_t)e->nheaders + 1, sizeof(char *));
    for (k = 0; k < e->nheaders; k++)
      if (e->headers[k].value &&
          asprintf(&pool->headers[i][s->nheaders++], "%s: %s",
                   e->headers[k].name, e->headers[k].value) < 0)
        abort();
    s->headers = pool->headers[i];
    pool->srv[pool->n++] = s;
    pool->nhandles++;
  }
  for (i = 0; i < pool->n; i++)
    srv_start(pool->srv[i]);
  return pool;
}

static void pool_release(struct wmcp_pool *pool)
{
  int i, k;

  for (i = 0; pool->headers && pool->headers[i]; i++) {
    for (k = 0; pool->headers[i][k]; k++)
      free(pool->headers[i][k]);
    free(pool->headers[i]);
  }
  free(pool->headers);
  free(pool->srv);
  free(pool);
}

static void pool_srv_closed(uv_handle_t *h)
{
  struct msrv *s = h->data;
  struct wmcp_pool *pool = s->pool;

  srv_free(s);
  if (--pool->nhandles == 0)
    pool_release(pool);
}

void wmcp_pool_free(struct wmcp_pool *pool)
{
  int i, n;

  if (!pool)
    return;
  n = pool->n;
  if (!n) {
    pool_release(pool);
    return;
  }
  for (i = 0; i < n; i++)
    srv_release(pool->srv[i], pool_srv_closed);
}
