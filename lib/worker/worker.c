/*
 * The worker: the queue's consumer and the harness's asynchronous driver.
 *
 * Every run the worker holds is a struct wrun with its harness. advance()
 * asks the harness for the next action and starts it; the action's
 * completion (a transfer ending, a process exiting, a store batch
 * returning) feeds the harness and calls advance() again. Nothing on the
 * loop blocks: store work goes to the store thread (see "store executor"
 * below), tools to processes or the thread pool.
 *
 * Limited to one run id (o.run_id), the worker takes that run by id
 * instead of claiming from the queue, and its loop ends with the run: it
 * is how `durin run` and `durin resume` drive a run, so a run in a
 * terminal goes through the same code as a run in the fleet, crash points
 * included.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "durin/harness.h"
#include "durin/otel.h"
#include "durin/sandbox.h"
#include "durin/redact.h"
#include "durin/secret.h"
#include "durin/util.h"
#include "durin/worker.h"
#include "worker/calls.h"
#include "worker/git.h"
#include "worker/mcp.h"
#include "worker/metrics.h"
#include "worker/review.h"
#include "worker/worker-int.h"

enum phase {
  P_LOADING, /* claimed; restore in flight */
  P_LIVE,    /* driving */
  P_WAITING, /* backoff or rate limit: holds no slot */
  P_ENDING,  /* letting go: the release write is in flight */
};

struct durin_worker;

struct job;
typedef int (*job_fn)(struct durin_worker *w, struct durin_txn *txn,
                      struct job *j);
typedef void (*job_done)(struct durin_worker *w, struct job *j);

struct wrun {
  struct durin_worker *w;
  struct wrun *hnext;
  char id[32];
  uint64_t epoch;
  int64_t attempt;
  enum phase phase;
  struct durin_spec spec;
  int spec_ok;
  /* The model's API key from the vault (model.api_key_secret), opened at
   * restore; empty when the spec names none. */
  struct durin_secret_value api_key;
  /* The evaluator's, when its own model names another secret. */
  struct durin_secret_value eval_api_key;
  /* Every secret of the run's tenant, in each of its forms: scrubbed from
   * tool and check output before the model or the log sees it (NULL:
   * the tenant has none). */
  struct durin_redactor *redact;
  /* The spec's grants with their values, opened at restore (spec
   * "secrets"); given to each sandboxed command's helper in a memfd. */
  struct durin_sandbox_grant *grants;
  struct durin_secret_value *grant_vals;
  int ngrants;
  struct durin_harness *h;
  struct durin_run_policy policy;
  struct durin_action act;
  int busy;     /* an action is in flight */
  int in_store; /* jobs of this run on the store thread */
  int in_pool;  /* a file tool on the thread pool */
  int gone;     /* dropped: free once nothing refers to it */
  int cancel;   /* `durin cancel` seen */
  int cancel_applied;
  int pause;  /* `durin pause` seen */
  int unseen; /* not reported by the heartbeat being read */
  /* A write the store could not take (connection lost, busy), tried
   * again with backoff until the store answers (its fence decides). */
  job_fn retry_fn;
  job_done retry_done;
  int64_t retry_since;
  int retry_ms;
  /* The model call. */
  struct durin_http_req req;
  int req_built;
  struct uvh_xfer *xfer;
  int64_t retries_left, retries_spent;
  int64_t model_started_ms; /* the call's first request, for its latency */
  int http_attempt;
  uv_timer_t timer;
  /* A tool or check process. */
  struct uvp *proc;
  int64_t tool_timeout;
  char idem_env[300];
  uv_work_t pool_req;
  struct durin_tool_result pool_res;
  /* The call's layer (lib/worker/calls.c), while it runs and until its
   * outcome is durable and merged; "" when it runs straight in the
   * workspace. */
  char layer[4400];
  int merge_rc;
  struct durin_err merge_err;
  /* Acceptance checks, run one after another. */
  int check_idx;
  struct durin_check_result *cr;
  struct durin_tool_result *tr;
  /* For the metrics: the run's tenant and agent, when the tool started. */
  char tenant[128], agent[128];
  double tool_started;
  /* The run's MCP servers (lib/worker/mcp.c), their HTTP headers with
   * the secrets opened at restore, and the tools the log last recorded
   * (the mcp_tools event's data, or NULL). */
  struct wmcp *mcp;
  char **mcp_headers[16];
  int mcp_nheaders[16];
  json_t *mcp_recorded;
  int begin_resolve, begin_cancel; /* from the restore, for run_begin */
  /* The workspace's git checkpoints (worker/git.h), or NULL; what the
   * restore found to tell the operator (malloc'd, or NULL). */
  struct wgit *git;
  char *git_notice;
};

enum job_kind {
  J_WRITE, /* in the batch transaction, fenced on run->epoch */
  J_CALL,  /* on its own, after the batch */
};

struct job {
  struct job *next;
  enum job_kind kind;
  struct wrun *run;
  job_fn fn;
  job_done done;
  int r;
  int cancel;  /* the fence saw the cancel flag */
  int resolve; /* restore: the run row's resolution (-1: none) */
  struct durin_err err;
  /* Payloads of the J_CALL jobs. */
  struct durin_claim *claims;
  int nclaims;
  struct durin_held *held;
  int nheld;
  char id[32];
  uint64_t epoch;
  int pausing;
  char *reason; /* why a run is ended without its harness */
  /* Taking a run by id (o.run_id): the run had already ended with
   * this status (reason above). */
  enum durin_run_status ended;
  struct durin_watchdog_report wd;
  double queued_s; /* a commit: when it was queued (metrics) */
  /* A control event for the run's log (MCP notices, progress). */
  const char *ev_type;
  json_t *ev_data;
  struct ending *ending; /* a stopped run's delivery and review */
};

struct ratelimit {
  char provider[32];
  struct durin_ratelimit rl;
};

#define NBUCKETS 16384

struct durin_worker {
  struct durin_store *s;
  struct durin_worker_opts o;
  char owner[256];
  uv_loop_t loop;
  uv_timer_t t_claim, t_beat, t_signal, t_watchdog;
  uv_poll_t wake; /* the store's wakeup channel (PostgreSQL NOTIFY) */
  int wake_state; /* 0 none (the claim timer polls), 1 open, 2 closing */
  uv_prepare_t prep;
  uv_check_t check;
  uv_async_t async_stop;
  uv_async_t async_wake; /* durin_worker_wake: look for work now */
  int64_t started_ms;
  struct uvh *http;
  struct wrun *bucket[NBUCKETS];
  int nruns, nlive, nwaiting;
  /* The store executor. */
  struct job *q_head, *q_tail, *batch;
  int sx_busy;
  int sx_inline; /* one run: batches run on the loop (sx_kick) */
  uv_work_t sx_work;
  int claim_busy, beat_busy, signal_busy, wd_busy;
  volatile sig_atomic_t stop_req; /* 1 graceful, 2 hard */
  int stopping, closing;
  int nending; /* stopped runs whose delivery or review is not done */
  struct ratelimit rls[8];
  int nrl;
  struct durin_worker_stats st;
  struct durin__wmetrics *wm; /* NULL: no registry */
  /* The servers the operator gave the worker (o.mcp_servers), shared by
   * the runs whose specs name them with "scope": "worker". */
  struct wmcp_pool *mcp_pool;
  /* Limited to one run id: how it came out, or what it was lost to. */
  char run_id[32];
  struct durin_worker_result res;
  int lost;
  struct durin_err lost_err;
};

static void advance(struct wrun *r);
static void run_begin(struct wrun *r);
static void drop(struct wrun *r, int code, const char *why);
static void on_claim_timer(uv_timer_t *t);
static void single_run_over(struct durin_worker *w);

static void wlog(struct durin_worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void wlog(struct durin_worker *w, const char *fmt, ...)
{
  char line[1024];
  va_list ap;

  if (!w->o.on_log)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  w->o.on_log(w->o.arg, line);
}

/* A notice about run r: to the log with its id, to on_notice without. */
static void rnotice(struct wrun *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void rnotice(struct wrun *r, const char *fmt, ...)
{
  struct durin_worker *w = r->w;
  char msg[900];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  wlog(w, "run %s: %s", r->id, msg);
  if (w->o.on_notice)
    w->o.on_notice(w->o.arg, msg);
}

/* ---- the run table ---- */

static unsigned hash_id(const char *id)
{
  unsigned h = 2166136261u;

  while (*id)
    h = (h ^ (unsigned char)*id++) * 16777619u;
  return h % NBUCKETS;
}

static struct wrun *run_find(struct durin_worker *w, const char *id)
{
  struct wrun *r;

  for (r = w->bucket[hash_id(id)]; r; r = r->hnext)
    if (!strcmp(r->id, id))
      return r;
  return NULL;
}

static void run_unlink(struct durin_worker *w, struct wrun *r)
{
  struct wrun **p = &w->bucket[hash_id(r->id)];

  while (*p && *p != r)
    p = &(*p)->hnext;
  if (*p)
    *p = r->hnext;
  w->nruns--;
  durin__wmetrics_leases(w->wm, w->nruns);
}

static void set_phase(struct wrun *r, enum phase p)
{
  struct durin_worker *w = r->w;

  if (r->phase == P_WAITING)
    w->nwaiting--;
  else
    w->nlive--;
  r->phase = p;
  if (p == P_WAITING)
    w->nwaiting++;
  else
    w->nlive++;
}

static void grants_clear(struct wrun *r)
{
  int i;

  for (i = 0; i < r->ngrants; i++)
    durin_secret_value_clear(&r->grant_vals[i]);
  free(r->grant_vals);
  free(r->grants);
  r->grant_vals = NULL;
  r->grants = NULL;
  r->ngrants = 0;
}

static void run_free_cb(uv_handle_t *h)
{
  struct wrun *r = h->data;

  durin_harness_free(r->h);
  durin_run_policy_clear(&r->policy);
  if (r->spec_ok)
    durin_spec_clear(&r->spec);
  durin_http_req_clear(&r->req);
  durin_secret_value_clear(&r->api_key);
  durin_secret_value_clear(&r->eval_api_key);
  durin_redactor_free(r->redact);
  for (int i = 0; i < 16; i++) {
    for (int k = 0; k < r->mcp_nheaders[i]; k++) {
      /* They hold secrets: wiped before they are freed. */
      explicit_bzero(r->mcp_headers[i][k], strlen(r->mcp_headers[i][k]));
      free(r->mcp_headers[i][k]);
    }
    free(r->mcp_headers[i]);
  }
  json_decref(r->mcp_recorded);
  durin__wgit_close(r->git);
  free(r->git_notice);
  grants_clear(r);
  free(r->cr);
  free(r->tr);
  free(r);
}

/* Frees r once no job, pool work or handle refers to it. */
static void run_release_memory(struct wrun *r)
{
  struct durin_worker *w = r->w;

  if (r->in_store || r->in_pool || r->proc)
    return;
  wmcp_free(r->mcp);
  r->mcp = NULL;
  if (r->phase == P_WAITING)
    w->nwaiting--;
  else
    w->nlive--;
  run_unlink(w, r);
  uv_close((uv_handle_t *)&r->timer, run_free_cb);
  if (w->o.run_id)
    single_run_over(w);
}

/* Limited to one run id: the run was lost (taken over, or the store
 * failed) for this reason; the first reason given stands. */
static void lose(struct durin_worker *w, int code, const char *why)
{
  if (!w->o.run_id || w->lost)
    return;
  w->lost = 1;
  durin_err_set(&w->lost_err, code ? code : DURIN_ESTORE, "%s",
                why && *why ? why : durin_strerror(code));
}

/* ---- the store executor ----
 *
 * Jobs queue up on the loop; at the end of each loop turn, if the store
 * thread is idle, all queued jobs go to it as one batch: the writes in one
 * transaction (each run's behind a savepoint, after its fence), then the
 * other calls. While a batch runs, the next one gathers: the fsync is
 * shared by every step that finished in the meantime. Completions run on
 * the loop in job order.
 */

/*
 * The batch's writes in one transaction. deferred: every fence goes with
 * the writes (one round trip on PostgreSQL), and a run that lost its lease
 * fails the whole commit; otherwise each run is fenced at once and a lost
 * one drops out alone, behind its savepoint.
 */
static int write_batch(struct durin_worker *w, int nwrites, int deferred)
{
  struct durin_err err = { 0 };
  struct durin_txn *txn = NULL;
  struct job *j;
  int r = durin_txn_begin(w->s, &txn, &err);

  for (j = w->batch; j; j = j->next) {
    int64_t until = durin_now_ms() + w->o.lease_ttl_ms;

    if (j->kind != J_WRITE)
      continue;
    memset(&j->err, 0, sizeof(j->err));
    j->cancel = 0;
    j->r = r;
    if (r) {
      j->err = err;
      continue;
    }
    if (nwrites > 1)
      j->r = durin_txn_savepoint(txn, &j->err);
    if (!j->r && deferred)
      j->r = durin_txn_fence_deferred(txn, j->run->id, j->run->epoch, until,
                                      &j->cancel, &j->err);
    else if (!j->r)
      j->r = durin_txn_fence_check(txn, j->run->id, j->run->epoch, until,
                                   &j->cancel, &j->err);
    if (!j->r)
      j->r = j->fn(w, txn, j);
    /* Ending the savepoint fails as the transaction does (a lost
     * connection: sent again; a lost lease: the batch is redone). */
    if (nwrites > 1) {
      int e = durin_txn_savepoint_end(txn, j->r == 0, &err);

      if (e && !j->r) {
        j->r = e;
        j->err = err;
      }
    }
    if (nwrites == 1 && j->r) {
      durin_txn_rollback(txn);
      return j->r;
    }
  }
  if (r)
    return r;
  r = durin_txn_commit(txn, &err);
  /* Nothing in a failed commit is durable. */
  for (j = w->batch; r && j; j = j->next) {
    if (j->kind == J_WRITE && !j->r) {
      j->r = r;
      j->err = err;
    }
  }
  return r;
}

static void sx_thread(uv_work_t *req)
{
  struct durin_worker *w = req->data;
  struct job *j;
  int nwrites = 0;

  for (j = w->batch; j; j = j->next)
    nwrites += j->kind == J_WRITE;
  /* A lost lease is rare: the batch is written again, fenced run by run,
   * only when a deferred fence failed its commit. */
  if (nwrites && write_batch(w, nwrites, 1) == DURIN_EFENCED && nwrites > 1)
    write_batch(w, nwrites, 0);
  if (nwrites) {
    w->st.batches++;
    w->st.writes += nwrites;
  }
  for (j = w->batch; j; j = j->next)
    if (j->kind == J_CALL)
      j->r = j->fn(w, NULL, j);
}

static void sx_kick(struct durin_worker *w);

static void sx_after(uv_work_t *req, int status)
{
  struct durin_worker *w = req->data;
  struct job *j = w->batch, *next;

  (void)status;
  w->batch = NULL;
  w->sx_busy = 0;
  for (; j; j = next) {
    next = j->next;
    if (j->run)
      j->run->in_store--;
    j->done(w, j);
    free(j->claims);
    free(j->held);
    free(j->reason);
    json_decref(j->ev_data);
    free(j);
  }
  sx_kick(w);
}

static void sx_kick(struct durin_worker *w)
{
  if (w->sx_busy || w->sx_inline || !w->q_head)
    return;
  if (w->o.run_id) {
    /*
     * One run: its store work is done here on the loop, batch after batch,
     * with no handoff to the store thread per write (curl_easy_perform
     * runs the multi engine in its caller's thread too). Nothing else on
     * this loop waits for it but the run's own heartbeat. Completions
     * that queue more work are served by this loop, not by recursion.
     */
    w->sx_inline = 1;
    w->sx_work.data = w;
    while (w->q_head) {
      w->batch = w->q_head;
      w->q_head = w->q_tail = NULL;
      w->sx_busy = 1;
      sx_thread(&w->sx_work);
      sx_after(&w->sx_work, 0);
    }
    w->sx_inline = 0;
    return;
  }
  w->batch = w->q_head;
  w->q_head = w->q_tail = NULL;
  w->sx_busy = 1;
  w->sx_work.data = w;
  uv_queue_work(&w->loop, &w->sx_work, sx_thread, sx_after);
}

static void on_prepare(uv_prepare_t *h)
{
  sx_kick(h->data);
}

static void on_check(uv_check_t *h)
{
  sx_kick(h->data);
}

static struct job *job_new(struct durin_worker *w, enum job_kind kind,
                           struct wrun *run, job_fn fn, job_done done)
{
  struct job *j = calloc(1, sizeof(*j));

  if (!j)
    abort(); /* a worker out of memory cannot keep its promises */
  j->kind = kind;
  j->run = run;
  j->fn = fn;
  j->done = done;
  if (run)
    run->in_store++;
  if (w->q_tail)
    w->q_tail->next = j;
  else
    w->q_head = j;
  w->q_tail = j;
  return j;
}

/* ---- writes for a run (on the store thread) ---- */

static int fn_intent(struct durin_worker *w, struct durin_txn *txn,
                     struct job *j)
{
  const struct durin_action *a = &j->run->act;
  int i, r = 0;

  (void)w;
  if (a->pending)
    r = durin_txn_pending_put(txn, j->run->id, a->step, a->pending, &j->err);
  for (i = 0; !r && i < a->nintents; i++)
    r = durin_txn_ledger_intent(txn, &a->intents[i], &j->err);
  return r;
}

static int fn_outcome(struct durin_worker *w, struct durin_txn *txn,
                      struct job *j)
{
  const struct durin_action *a = &j->run->act;

  (void)w;
  return durin_txn_ledger_outcome(txn, j->run->id, a->step, a->call, a->outcome,
                                  durin_now_ms(), &j->err);
}

/*
 * The writes of a step's commit (DESIGN 3.1), after the run's fence:
 * events, checkpoint, a waiting step's response and approval request, the
 * run row, the end of the pending step.
 */
static int fn_commit(struct durin_worker *w, struct durin_txn *txn,
                     struct job *j)
{
  struct durin_action *a = &j->run->act;
  const char *id = j->run->id;
  int r;

  (void)w;
  r = durin_txn_events_append(txn, id, a->events, a->nevents, &j->err);
  if (!r && a->checkpoint)
    r = durin_txn_checkpoint_put(txn, id, a->step, a->checkpoint, &j->err);
  /* A step that waits keeps its response, so it replays the same calls. */
  if (!r && a->approval && a->pending)
    r = durin_txn_pending_put(txn, id, a->approval->step, a->pending, &j->err);
  if (!r && a->approval)
    r = durin_txn_approval_request(txn, a->approval, &j->err);
  if (!r)
    r = durin_txn_run_update(txn, id, &a->update, &j->err);
  if (!r && a->clear_pending)
    r = durin_txn_pending_clear(txn, id, &j->err);
  return r;
}

static int fn_release(struct durin_worker *w, struct durin_txn *txn,
                      struct job *j)
{
  enum durin_run_status paused = DURIN_RUN_PAUSED;
  struct durin_run_update u;

  (void)w;
  memset(&u, 0, sizeof(u));
  u.started_ms = u.finished_ms = -1;
  u.release_lease = 1;
  u.now_ms = durin_now_ms();
  if (j->pausing)
    u.status = &paused;
  return durin_txn_run_update(txn, j->run->id, &u, &j->err);
}

static void on_write_retry(uv_timer_t *t)
{
  struct wrun *r = t->data;

  if (!r->gone)
    job_new(r->w, J_WRITE, r, r->retry_fn, r->retry_done);
}

/*
 * The store could not take the write (a lost connection, a restarting
 * server, a lock): nothing of it is durable, so it is simply sent again,
 * 50 ms then doubling to 1 s, until the store answers. Its fence then
 * says whether the run is still ours: after a short outage it is and the
 * run goes on; after a long one the watchdog has given it away and the
 * write is refused. A worker cut off for good lets go after ten leases.
 */
static int write_retry(struct wrun *r, struct job *j)
{
  struct durin_worker *w = r->w;
  int64_t now = durin_now_ms();

  if (j->r != DURIN_EBUSY)
    return 0;
  if (!r->retry_fn || r->retry_fn != j->fn) {
    r->retry_since = now;
    r->retry_ms = 0;
  }
  if (now - r->retry_since > 10 * w->o.lease_ttl_ms)
    return 0;
  r->retry_fn = j->fn;
  r->retry_done = j->done;
  r->retry_ms = r->retry_ms ? r->retry_ms * 2 : 50;
  if (r->retry_ms > 1000)
    r->retry_ms = 1000;
  if (r->retry_ms == 50)
    rnotice(r, "store write failed (%s); trying again", j->err.msg);
  uv_timer_start(&r->timer, on_write_retry, (uint64_t)r->retry_ms, 0);
  return 1;
}

/* A write came back: fenced means the run is someone else's now. */
static int write_failed(struct wrun *r, struct job *j)
{
  if (j->cancel)
    r->cancel = 1;
  /*
   * Dropped while the write was out, even if it succeeded: completions run
   * in job order, so a heartbeat queued before a run's final commit (which
   * releases the lease) can report the run gone before the commit's own
   * completion arrives. Free it now; nothing else will.
   */
  if (r->gone) {
    run_release_memory(r);
    return 1;
  }
  if (!j->r) {
    r->retry_fn = NULL;
    return 0;
  }
  if (write_retry(r, j))
    return 1;
  /* The store's own words (which lease, which epoch) for a lone run. */
  lose(r->w, j->r, j->err.msg);
  if (j->r == DURIN_EFENCED)
    drop(r, j->r, "lease lost to another worker; dropping the run");
  else
    drop(r, j->r, j->err.msg[0] ? j->err.msg : "store write failed");
  return 1;
}

/* `durin cancel` reaches r's harness once, however it was seen. */
static void apply_cancel(struct wrun *r)
{
  r->cancel = 1;
  if (r->cancel_applied)
    return;
  r->cancel_applied = 1;
  durin_harness_cancel(r->h, "cancelled by 'durin cancel'");
}

static void complete(struct wrun *r, struct durin_completion *c)
{
  c->now_ms = durin_now_ms();
  r->busy = 0;
  if (durin_harness_complete(r->h, c)) {
    drop(r, DURIN_ESTATE,
         "harness refused a completion (a bug); dropping the run");
    return;
  }
  advance(r);
}

/*
 * Blocking file-system work for r (a file tool, a change set, a merge):
 * on the thread pool, or right here when the loop drives this one run
 * only (nothing else on it would wait).
 */
static void run_blocking(struct wrun *r, uv_work_cb work, uv_after_work_cb done)
{
  r->in_pool = 1;
  r->pool_req.data = r;
  if (r->w->o.run_id) {
    work(&r->pool_req);
    done(&r->pool_req, 0);
    return;
  }
  uv_queue_work(&r->w->loop, &r->pool_req, work, done);
}

static void merge_work(uv_work_t *req)
{
  struct wrun *r = req->data;

  memset(&r->merge_err, 0, sizeof(r->merge_err));
  r->merge_rc = durin__call_merge(&r->spec, r->layer, &r->merge_err);
}

/* Removing a merged call's directories takes a few rmdirs: done on the
 * pool while the run goes on, owning its own copy of the path. */
struct call_cleanup {
  uv_work_t req;
  char layer[4400];
};

static void cleanup_work(uv_work_t *req)
{
  durin__call_done(((struct call_cleanup *)req->data)->layer);
}

static void cleanup_done(uv_work_t *req, int status)
{
  (void)status;
  free(req->data);
}

static void merge_done(uv_work_t *req, int status)
{
  struct wrun *r = req->data;
  struct durin_completion c;
  struct call_cleanup *cl;

  (void)status;
  r->in_pool = 0;
  if (!r->merge_rc && (cl = malloc(sizeof(*cl)))) {
    snprintf(cl->layer, sizeof(cl->layer), "%s", r->layer);
    cl->req.data = cl;
    if (uv_queue_work(&r->w->loop, &cl->req, cleanup_work, cleanup_done))
      free(cl);
  }
  r->layer[0] = 0;
  if (r->gone) {
    run_release_memory(r);
    return;
  }
  if (r->merge_rc) {
    /* The outcome is durable and the layer intact: whoever restores the
     * run merges it. */
    drop(r, r->merge_rc, r->merge_err.msg);
    return;
  }
  memset(&c, 0, sizeof(c));
  c.kind = DURIN_DONE_OUTCOME;
  complete(r, &c);
}

static void done_simple(struct durin_worker *w, struct job *j)
{
  struct wrun *r = j->run;
  struct durin_completion c;

  if (write_failed(r, j))
    return;
  /* The write is durable; the harness has not heard of it yet. */
  durin_fault_point(j->fn == fn_intent ? "ledger_intent" : "ledger_outcome");
  if (j->fn == fn_outcome && r->layer[0]) {
    /* The call's outcome is durable: its layer goes into the workspace
     * before anything else may see the workspace (the next call). */
    run_blocking(r, merge_work, merge_done);
    return;
  }
  memset(&c, 0, sizeof(c));
  c.kind = j->fn == fn_intent ? DURIN_DONE_INTENT : DURIN_DONE_OUTCOME;
  complete(r, &c);
}

static void done_commit(struct durin_worker *w, struct job *j)
{
  struct wrun *r = j->run;
  struct durin_completion c;
  size_t i;

  if (write_failed(r, j))
    return;
  w->st.steps++;
  if (w->wm)
    durin__wmetrics_commit(w->wm, durin_metrics_clock() - j->queued_s);
  /* Events are shown only once they are durable. */
  if (w->o.on_event)
    for (i = 0; i < r->act.nevents; i++)
      w->o.on_event(w->o.arg, &r->act.events[i]);
  /* Once per run in a group commit: each run's step is durable here. */
  durin_fault_point("after_commit");
  /* The step's commit id is durable in its checkpoint: the branch may
   * point at it now (a crash before this is mended by the restorer). */
  if (r->git) {
    struct durin_err gerr = { 0 };

    if (durin__wgit_advance(r->git, &gerr))
      rnotice(r, "cannot move branch %s: %s (set again at the next step)",
              r->git->branch, gerr.msg);
  }
  memset(&c, 0, sizeof(c));
  c.kind = DURIN_DONE_COMMIT;
  complete(r, &c);
}

static void done_release(struct durin_worker *w, struct job *j)
{
  struct wrun *r = j->run;

  if (j->r && j->r != DURIN_EFENCED)
    wlog(w, "run %s: releasing its lease failed: %s (it expires by itself)",
         r->id, j->err.msg);
  if (w->o.run_id) {
    w->res.stopped = 1;
    w->res.status = j->pausing ? DURIN_RUN_PAUSED : DURIN_RUN_RUNNING;
    snprintf(w->res.reason, sizeof(w->res.reason), "%s",
             j->pausing ? "paused by 'durin pause'" : "let go between steps");
    /* Nothing was lost but the lease: released, taken, or expiring. */
    if (j->r == DURIN_EFENCED) {
      w->lost = 1;
      w->lost_err = j->err;
    }
  }
  w->st.dropped++;
  r->gone = 1;
  run_release_memory(r);
}

/* Lets go of a run that is between steps: its lease goes back. */
static void let_go(struct wrun *r, int pausing)
{
  struct job *j;

  set_phase(r, P_ENDING);
  r->busy = 1;
  j = job_new(r->w, J_WRITE, r, fn_release, done_release);
  j->pausing = pausing;
  if (pausing)
    wlog(r->w, "run %s: paused", r->id);
}

/* ---- the model call ---- */

static struct durin_ratelimit *limiter(struct durin_worker *w,
                                       const char *provider)
{
  int i;

  for (i = 0; i < w->nrl; i++)
    if (!strcmp(w->rls[i].provider, provider))
      return &w->rls[i].rl;
  return NULL;
}

static void start_model(struct wrun *r);

/* The request carries the W3C traceparent of its chat span (the step's,
 * as the run's trace from its log names it: lib/otel/trace.c), so the
 * provider's side of the call joins the run's trace. */
static void add_traceparent(struct wrun *r)
{
  char tp[56];
  int i;

  for (i = 0; i < 7 && r->req.headers[i]; i++)
    ;
  if (i == 7)
    return;
  durin_otel_traceparent(r->id, r->spec_ok ? r->spec.traceparent : NULL,
                         durin_harness_step(r->h) + 1, tp);
  if (asprintf(&r->req.headers[i], "traceparent: %s", tp) < 0)
    r->req.headers[i] = NULL;
}

static void on_wait_over(uv_timer_t *t)
{
  struct wrun *r = t->data;

  set_phase(r, P_LIVE);
  r->busy = 0;
  start_model(r);
}

/* Waits (backoff, rate limit) hold a timer, no slot. */
static void model_finished(struct wrun *r, int rc,
                           struct durin_model_response *resp,
                           const char *error);

/* Time left before the run's wall-clock budget ends (INT64_MAX: none). */
static int64_t model_time_left(const struct wrun *r)
{
  int64_t d = r->act.model.deadline_ms;

  return d ? d - durin_now_ms() : INT64_MAX;
}

static void wait_then_call(struct wrun *r, int64_t ms)
{
  /* A wait that would outlast the budget is not waited: the harness
   * ends the run for its budget when it hears the call failed. */
  if (ms >= model_time_left(r)) {
    model_finished(r, DURIN_EMODEL, NULL,
                   "model call not retried: the run's wall-clock budget "
                   "ends first");
    return;
  }
  set_phase(r, P_WAITING);
  r->busy = 1;
  uv_timer_start(&r->timer, on_wait_over, (uint64_t)(ms > 0 ? ms : 0), 0);
}

static void scrub(struct wrun *r, char **text);
static void scrub_into(struct wrun *r, char *buf, size_t cap);

/*
 * The model's answer is scrubbed like a tool's output before the harness
 * sees it: a value the model met (in the goal, say) or guessed becomes
 * [secret:NAME] in its text and its calls' arguments, so no event, pending
 * record, approval or ledger row written from it holds the value, and no
 * call runs with it.
 */
static void scrub_response(struct wrun *r, struct durin_model_response *resp)
{
  int i;

  if (!r->redact || !resp)
    return;
  scrub(r, &resp->text);
  for (i = 0; i < resp->ncalls; i++)
    scrub(r, &resp->calls[i].args);
}

static void model_finished(struct wrun *r, int rc,
                           struct durin_model_response *resp, const char *error)
{
  struct durin_completion c;
  char *scrubbed = NULL;

  durin_http_req_clear(&r->req);
  r->req_built = 0;
  memset(&c, 0, sizeof(c));
  c.retries = r->retries_spent;
  c.latency_ms = durin_now_ms() - r->model_started_ms;
  durin__wmetrics_model(r->w->wm, r->act.model.cfg, rc ? NULL : resp, rc,
                        c.latency_ms, r->tenant, r->agent);
  r->retries_spent = 0;
  r->http_attempt = 0;
  if (rc) {
    /* A provider's error may quote what it was sent. */
    if (error && r->redact && (scrubbed = strdup(error)))
      scrub(r, &scrubbed);
    c.kind = DURIN_DONE_MODEL_ERROR;
    c.error = scrubbed ? scrubbed : error;
    complete(r, &c);
    free(scrubbed);
    return;
  }
  scrub_response(r, resp);
  /* A response lost here is simply asked for again (DESIGN 3.6); a
   * summary's too: the summary step is redone, its artifact written once. */
  durin_fault_point(r->act.model.summary ? "summary_response" :
                                           "model_response");
  c.kind = DURIN_DONE_MODEL;
  c.resp = resp;
  complete(r, &c);
  durin_model_response_clear(resp);
}

static void on_http_done(void *arg, int rc, long status, const char *body,
                         size_t len, const char *ra, struct durin_err *err)
{
  struct wrun *r = arg;
  const struct durin_provider *p =
      durin_provider_find(r->act.model.cfg->provider);
  struct durin_ratelimit *rl = limiter(r->w, p->name);
  struct durin_model_response resp;
  char why[600];
  int64_t delay, ra_ms;
  uint32_t rnd = 0;

  r->xfer = NULL;
  memset(&resp, 0, sizeof(resp));
  rc = durin_model_judge(p, &r->act.model, rc, status, body, len, &resp, why,
                         sizeof(why), err);
  ra_ms = durin_retry_after_parse(ra, durin_now_ms());
  if (status == 429 && rl)
    durin_ratelimit_throttled(rl, durin_now_ms(), ra_ms);
  if (rc == 0) {
    if (rl)
      durin_ratelimit_used(rl, resp.input_tokens + resp.output_tokens);
    model_finished(r, 0, &resp, NULL);
    return;
  }
  if (rc != DURIN_ERETRY) {
    model_finished(r, rc, NULL, err->msg);
    return;
  }
  if (r->retries_left <= 0) {
    char msg[800];

    scrub_into(r, why, sizeof(why));
    snprintf(msg, sizeof(msg),
             "model call failed (%s) and the run's retry budget is used up",
             why);
    model_finished(r, DURIN_EMODEL, NULL, msg);
    return;
  }
  r->retries_left--;
  r->retries_spent++;
  scrub_into(r, why, sizeof(why));
  durin_random(&rnd, sizeof(rnd));
  delay =
      durin_backoff_ms(r->http_attempt++, ra_ms, (double)rnd / 4294967296.0);
  rnotice(r, "model call failed (%s); retry %d in %lld ms", why,
          r->http_attempt, (long long)delay);
  wait_then_call(r, delay);
}

static void start_model(struct wrun *r)
{
  const struct durin_model_request *req = &r->act.model;
  const struct durin_provider *p = durin_provider_find(req->cfg->provider);
  struct durin_ratelimit *rl;
  struct durin_model_response resp;
  struct durin_err err = { 0 };
  int64_t wait;

  if (!p) {
    char msg[300];

    snprintf(msg, sizeof(msg), "unknown model provider '%s'",
             req->cfg->provider);
    model_finished(r, DURIN_EMODEL, NULL, msg);
    return;
  }
  r->w->st.model_calls += !r->req_built;
  if (p->answer) {
    memset(&resp, 0, sizeof(resp));
    if (p->answer(req, &resp, &err))
      model_finished(r, DURIN_EMODEL, NULL, err.msg);
    else
      model_finished(r, 0, &resp, NULL);
    return;
  }
  if (!r->req_built) {
    /* The vault's key (opened at restore), else the variable's. */
    const char *key = NULL;

    if (req->cfg->api_key_secret)
      key = req->cfg == &r->spec.model || !r->eval_api_key.data ?
                (const char *)r->api_key.data :
                (const char *)r->eval_api_key.data;
    else if (req->cfg->api_key_env)
      key = getenv(req->cfg->api_key_env);
    if (p->build(req, key, &r->req, &err)) {
      model_finished(r, DURIN_EMODEL, NULL, err.msg);
      return;
    }
    add_traceparent(r);
    r->req_built = 1;
    r->retries_left =
        req->cfg->max_retries - durin_harness_usage(r->h)->retries;
  }
  rl = limiter(r->w, p->name);
  if (rl && (wait = durin_ratelimit_take(rl, durin_now_ms())) > 0) {
    wait_then_call(r, wait);
    return;
  }
  r->busy = 1;
  {
    /* The call's timeout, cut to the run's wall-clock budget left. */
    int64_t timeout = req->cfg->timeout_ms, left = model_time_left(r);

    if (left <= 0) {
      model_finished(r, DURIN_EMODEL, NULL,
                     "the run's wall-clock budget is used up");
      return;
    }
    if (timeout <= 0 || left < timeout)
      timeout = left;
    r->xfer = uvh_post(r->w->http, &r->req, timeout, 32 << 20, on_http_done, r);
  }
  if (!r->xfer)
    model_finished(r, DURIN_EMODEL, NULL, "cannot start an HTTP transfer");
}

/* ---- tools and checks ---- */

/* text, with every secret of the run scrubbed (in place). */
static void scrub(struct wrun *r, char **text)
{
  struct durin_buf b;
  size_t hits = 0;

  if (!r->redact || !*text)
    return;
  durin_buf_init(&b, 0);
  if (!durin_redact(r->redact, *text, strlen(*text), &b, &hits) && hits) {
    free(*text);
    *text = durin_buf_detach(&b, NULL);
  }
  durin_buf_release(&b);
}

/* A fixed buffer, scrubbed in place (cut to cap if the names are longer
 * than what they replace). */
static void scrub_into(struct wrun *r, char *buf, size_t cap)
{
  char *t;

  if (!r->redact || !(t = strdup(buf)))
    return;
  scrub(r, &t);
  snprintf(buf, cap, "%s", t);
  free(t);
}

/*
 * What the call did to the workspace, read from its layer (on the pool:
 * an `npm install` writes thousands of files). A layer nested deeper than
 * DURIN_LAYER_MAX_DEPTH is not kept: the call fails saying so, and
 * nothing of it reaches the workspace.
 */
static void read_changes(struct wrun *r, struct durin_tool_result *res)
{
  json_t *ch = durin__call_changes(&r->spec, r->layer);

  if (json_is_true(json_object_get(ch, "too_deep"))) {
    char *msg = NULL;

    if (asprintf(&msg,
                 "%s\nerror: the call left directories nested deeper than %d "
                 "levels in the workspace; nothing it wrote was kept",
                 res->output ? res->output : "", DURIN_LAYER_MAX_DEPTH) >= 0) {
      free(res->output);
      res->output = msg;
    }
    res->ok = 0;
    durin__call_done(r->layer);
    r->layer[0] = 0;
    json_object_set_new(ch, "kept", json_false());
  }
  res->changes = ch;
}

/* The call ended and its result is complete: the harness hears of it. */
static void tool_finished(struct wrun *r, struct durin_tool_result *res)
{
  struct durin_completion c;

  memset(&c, 0, sizeof(c));
  c.kind = DURIN_DONE_TOOL;
  scrub(r, &res->output);
  c.tool = res;
  c.now_ms = durin_now_ms();
  r->busy = 0;
  if (r->w->wm)
    durin__wmetrics_tool(r->w->wm, r->act.tool->name,
                         r->act.tool->command && r->w->o.sandbox, res,
                         durin_metrics_clock() - r->tool_started);
  if (durin_harness_complete(r->h, &c)) {
    drop(r, DURIN_ESTATE, "harness refused a tool result (a bug)");
    return;
  }
  if (r->cancel)
    apply_cancel(r);
  advance(r);
}

static void changes_work(uv_work_t *req)
{
  struct wrun *r = req->data;

  read_changes(r, &r->pool_res);
}

/* Back from the pool with a tool result: the run, or NULL if it was
 * dropped meanwhile (then freed here). */
static struct wrun *back_from_pool(uv_work_t *req)
{
  struct wrun *r = req->data;

  r->in_pool = 0;
  if (!r->gone)
    return r;
  durin_tool_result_clear(&r->pool_res);
  run_release_memory(r);
  return NULL;
}

static void changes_done(uv_work_t *req, int status)
{
  struct wrun *r = back_from_pool(req);

  (void)status;
  if (r)
    tool_finished(r, &r->pool_res);
}

/* The env grants a command of tool gets, for its tool_result event
 * (names only), or NULL. */
static json_t *env_granted(struct wrun *r, const char *tool)
{
  json_t *a = NULL;
  int i;

  for (i = 0; i < r->ngrants; i++) {
    const struct durin_sandbox_grant *g = &r->grants[i];

    if (!g->env || strcmp(g->tool, tool))
      continue;
    if (!a)
      a = json_array();
    json_array_append_new(
        a, json_pack("{s:s,s:s}", "secret", g->name, "env", g->env));
  }
  return a;
}

static void on_proc_tool(void *arg, struct durin_tool_result *res)
{
  struct wrun *r = arg;

  r->proc = NULL;
  if (r->gone) {
    durin_tool_result_clear(res);
    run_release_memory(r);
    return;
  }
  /* The call has ended and its outcome is not durable yet: a crash here
   * leaves it unknown. */
  durin_fault_point("tool_exit");
  if (r->act.tool->report)
    r->act.tool->report(res, r->tool_timeout);
  if (r->w->o.sandbox && !r->act.tool_ctx.box.readonly)
    res->secrets_env = env_granted(r, r->act.tool->name);
  if (!r->layer[0]) {
    tool_finished(r, res);
    return;
  }
  r->pool_res = *res;
  run_blocking(r, changes_work, changes_done);
}

static void pool_tool(uv_work_t *req)
{
  struct wrun *r = req->data;

  durin_tool_exec(r->act.tool, &r->act.tool_ctx, r->act.args, &r->pool_res);
  if (r->layer[0])
    read_changes(r, &r->pool_res);
}

static void pool_tool_done(uv_work_t *req, int status)
{
  struct wrun *r = back_from_pool(req);

  (void)status;
  if (!r)
    return;
  durin_fault_point("tool_exit");
  tool_finished(r, &r->pool_res);
}

static void on_mcp_result(void *arg, struct durin_tool_result *res);

static void start_tool(struct wrun *r)
{
  const struct durin_tool_def *t = r->act.tool;
  const char *cmd = NULL;

  r->busy = 1;
  r->tool_started = r->w->wm ? durin_metrics_clock() : 0;
  if (t->mcp_server) {
    const struct durin_spec_mcp *m = NULL;
    int64_t timeout = r->act.tool_ctx.timeout_ms;
    int i;

    for (i = 0; i < r->spec.nmcp; i++)
      if (!strcmp(r->spec.mcp[i].name, t->mcp_server))
        m = &r->spec.mcp[i];
    if (m && m->timeout_ms && (timeout <= 0 || m->timeout_ms < timeout))
      timeout = m->timeout_ms;
    memset(&r->pool_res, 0, sizeof(r->pool_res));
    wmcp_call(r->mcp, t, r->act.args, r->act.tool_ctx.idem_key, timeout,
              r->act.tool_ctx.output_cap, on_mcp_result, r);
    return;
  }
  r->layer[0] = 0;
  r->act.tool_ctx.box.layer = NULL;
  if (r->act.contained) {
    /* A transaction on the workspace, as its intent says: this attempt's
     * own layer. A command needs the sandbox for that; without it (a
     * resume with --sandbox none) the call would run straight in the
     * workspace while its intent promises a restorer it left no trace. */
    struct durin_err err = { 0 };

    if (t->command && !r->w->o.sandbox)
      durin_err_set(&err, DURIN_EINVAL,
                    "not run: this call was recorded to run in a layer of "
                    "its own, which needs the sandbox; resume the run "
                    "without '--sandbox none'");
    if (err.code ||
        durin_layer_begin(r->spec.workspace, r->act.step, r->act.call, r->epoch,
                          r->layer, sizeof(r->layer), &err)) {
      struct durin_completion c;

      r->layer[0] = 0;
      memset(&r->pool_res, 0, sizeof(r->pool_res));
      r->pool_res.exit_code = -1;
      r->pool_res.output = strdup(err.msg);
      memset(&c, 0, sizeof(c));
      c.kind = DURIN_DONE_TOOL;
      c.tool = &r->pool_res;
      complete(r, &c);
      return;
    }
    r->act.tool_ctx.box.layer = r->layer;
  }
  if (t->command && r->act.tool_ctx.box.readonly && !r->w->o.sandbox) {
    /* An evaluator's command must not change anything: only the
     * sandbox's read-only workspace can promise that. */
    struct durin_tool_result res;

    memset(&res, 0, sizeof(res));
    res.exit_code = -1;
    res.output = strdup("refused: the evaluator's commands run only in the "
                        "sandbox, with the workspace read-only, and this "
                        "worker runs without it ('--sandbox none'); read "
                        "the files with read_file instead");
    on_proc_tool(r, &res);
    return;
  }
  if (t->command &&
      t->command(&r->act.tool_ctx, r->act.args, &cmd, &r->tool_timeout) == 0) {
    const char *env[2] = { r->idem_env, NULL };

    snprintf(r->idem_env, sizeof(r->idem_env), "DURIN_IDEMPOTENCY_KEY=%s",
             r->act.tool_ctx.idem_key ? r->act.tool_ctx.idem_key : "");
    r->act.tool_ctx.box.sandbox = r->w->o.sandbox;
    r->act.tool_ctx.box.grants =
        r->act.tool_ctx.box.readonly ? NULL : r->grants;
    r->act.tool_ctx.box.ngrants = r->act.tool_ctx.box.readonly ? 0 : r->ngrants;
    r->act.tool_ctx.box.tool = t->name;
    r->proc = uvp_start(&r->w->loop, &r->act.tool_ctx.box,
                        r->act.tool_ctx.workspace, cmd, env, r->tool_timeout,
                        r->act.tool_ctx.output_cap, on_proc_tool, r);
    if (!r->proc) {
      struct durin_tool_result res;

      memset(&res, 0, sizeof(res));
      res.exit_code = -1;
      res.output = strdup("bash: could not start the command");
      on_proc_tool(r, &res);
    }
    return;
  }
  /* File tools: short, but they fsync; off the loop, unless the loop has
   * this one run only (nothing else would wait for them). */
  memset(&r->pool_res, 0, sizeof(r->pool_res));
  run_blocking(r, pool_tool, pool_tool_done);
}

/* ---- the evaluator's diff ---- */

static void on_diff_done(void *arg, struct durin_tool_result *res)
{
  struct wrun *r = arg;
  struct durin_completion c;

  r->proc = NULL;
  if (r->gone) {
    durin_tool_result_clear(res);
    run_release_memory(r);
    return;
  }
  scrub(r, &res->output);
  memset(&c, 0, sizeof(c));
  c.kind = DURIN_DONE_DIFF;
  c.now_ms = durin_now_ms();
  /* diff exits 0 (same) or 1 (differ); 2 is trouble, and what it could
   * compare is still worth showing, its complaints among it. */
  if (!res->timed_out && res->exit_code >= 0 && res->exit_code <= 2 &&
      (res->exit_code < 2 || (res->output && *res->output))) {
    c.diff = res->output ? res->output : "";
  } else {
    c.error = res->timed_out ? "diff took longer than a minute" : "diff failed";
    if (res->output && *res->output)
      c.error = res->output;
  }
  r->busy = 0;
  if (durin_harness_complete(r->h, &c))
    drop(r, DURIN_ESTATE, "harness refused the diff (a bug)");
  durin_tool_result_clear(res);
  if (!r->gone)
    advance(r);
}

/*
 * The workspace against its start (the run's base/, beside it; a template
 * run's own files, layers/upper), for the evaluator's first message: GNU
 * diff on the host, in the run's directory, reading both trees without
 * following links out of them.
 */
static void start_diff(struct wrun *r)
{
  char dir[PATH_MAX], *slash;
  const char *cmd = r->spec.sandbox.template ?
                        "diff -ruN --no-dereference -x .git base layers/upper" :
                        "diff -ruN --no-dereference -x .git base workspace";
  struct durin_proc_box box = { 0 };
  struct durin_completion c;

  r->busy = 1;
  snprintf(dir, sizeof(dir), "%s", r->spec.workspace);
  slash = strrchr(dir, '/');
  if (slash)
    *slash = 0;
  r->proc = uvp_start(&r->w->loop, &box, dir, cmd, NULL, 60000,
                      r->act.tool_ctx.output_cap, on_diff_done, r);
  if (r->proc)
    return;
  r->busy = 0;
  memset(&c, 0, sizeof(c));
  c.kind = DURIN_DONE_DIFF;
  c.now_ms = durin_now_ms();
  c.error = "diff could not be started";
  if (durin_harness_complete(r->h, &c))
    drop(r, DURIN_ESTATE, "harness refused the diff (a bug)");
}

static void next_check(struct wrun *r);

static void on_check_done(void *arg, struct durin_tool_result *res)
{
  struct wrun *r = arg;
  struct durin_check_result *cr = &r->cr[r->check_idx];

  r->proc = NULL;
  durin__wmetrics_sandbox(r->w->wm, res);
  scrub(r, &res->output);
  r->tr[r->check_idx] = *res;
  /* Default FAIL: only a clean exit 0 within the time limit passes. */
  cr->ok = res->ok;
  cr->exit_code = res->exit_code;
  cr->timed_out = res->timed_out;
  cr->output = r->tr[r->check_idx].output;
  r->check_idx++;
  if (r->gone) {
    run_release_memory(r);
    return;
  }
  next_check(r);
}

static void next_check(struct wrun *r)
{
  const struct durin_spec *spec = &r->spec;
  struct durin_completion c;
  int i, n;

  while (r->check_idx < r->act.nchecks) {
    const struct durin_spec_check *ck = &r->act.checks[r->check_idx];

    struct durin_proc_box box = { r->w->o.sandbox, &spec->sandbox };

    /* A check reaches granted hosts as the commands do; no env grant. */
    box.grants = r->grants;
    box.ngrants = r->ngrants;

    r->cr[r->check_idx].name = ck->name;
    int64_t timeout = ck->timeout_ms;

    /* The wall-clock budget left bounds every check too. */
    if (r->act.tool_ctx.timeout_ms > 0 && r->act.tool_ctx.timeout_ms < timeout)
      timeout = r->act.tool_ctx.timeout_ms;
    r->proc = uvp_start(&r->w->loop, &box, spec->workspace, ck->run, NULL,
                        timeout, (size_t)spec->output_cap, on_check_done, r);
    if (r->proc)
      return;
    r->cr[r->check_idx].ok = 0;
    r->cr[r->check_idx].exit_code = -1;
    r->cr[r->check_idx].output = "the check could not be started";
    r->check_idx++;
  }
  /* The checks ran; their verdict is not durable yet (they are re-run
   * after a crash: checks must only read). */
  n = r->act.nchecks;
  durin_fault_point("checks_done");
  memset(&c, 0, sizeof(c));
  c.kind = DURIN_DONE_CHECKS;
  c.checks = r->cr;
  c.nchecks = n;
  r->busy = 0;
  c.now_ms = durin_now_ms();
  if (durin_harness_complete(r->h, &c))
    drop(r, DURIN_ESTATE, "harness refused check results (a bug)");
  for (i = 0; i < n; i++)
    durin_tool_result_clear(&r->tr[i]);
  free(r->tr);
  free(r->cr);
  r->tr = NULL;
  r->cr = NULL;
  if (!r->gone)
    advance(r);
}

static void start_checks(struct wrun *r)
{
  r->busy = 1;
  r->check_idx = 0;
  r->cr = calloc((size_t)r->act.nchecks + 1, sizeof(*r->cr));
  r->tr = calloc((size_t)r->act.nchecks + 1, sizeof(*r->tr));
  next_check(r);
}

/* ---- the end of a run: delivery and review (lib/worker/review.h) ---- */

struct ending {
  uv_work_t req;
  struct durin_worker *w;
  struct durin__ending *e;
  int rc;
  struct durin_err err;
};

static void ending_over(struct ending *x)
{
  if (x->rc)
    wlog(x->w,
         "run %s: its review was not written: %s (durin review %s "
         "builds it)",
         durin__ending_run(x->e), x->err.msg, durin__ending_run(x->e));
  x->w->nending--;
  durin__ending_free(x->e);
  free(x);
}

static void ending_write_work(uv_work_t *req)
{
  struct ending *x = req->data;

  x->rc = durin__ending_write(x->e, &x->err);
}

static void ending_write_done(uv_work_t *req, int status)
{
  (void)status;
  ending_over(req->data);
}

static int fn_ending_load(struct durin_worker *w, struct durin_txn *txn,
                          struct job *j)
{
  (void)txn;
  return durin__ending_load(j->ending->e, w->s, &j->err);
}

static void done_ending_load(struct durin_worker *w, struct job *j)
{
  struct ending *x = j->ending;

  if (j->r)
    wlog(w, "run %s: %s", durin__ending_run(x->e), j->err.msg);
  uv_queue_work(&w->loop, &x->req, ending_write_work, ending_write_done);
}

static void ending_push_work(uv_work_t *req)
{
  durin__ending_push(((struct ending *)req->data)->e);
}

static void ending_push_done(uv_work_t *req, int status)
{
  struct ending *x = req->data;

  (void)status;
  job_new(x->w, J_CALL, NULL, fn_ending_load, done_ending_load)->ending = x;
}

/*
 * r stopped in st (a final state or needs_human) and that is durable:
 * deliver its branch if the spec says so, then write its review. One
 * run on the loop: in place, as its other blocking work.
 */
static void ending_start(struct wrun *r, enum durin_run_status st)
{
  struct durin_worker *w = r->w;
  struct ending *x = calloc(1, sizeof(*x));

  if (!x || !(x->e = durin__ending_new(r->id, st, r->spec_ok ? &r->spec : NULL,
                                       r->redact))) {
    free(x);
    wlog(w, "run %s: out of memory for its review", r->id);
    return;
  }
  /* The run has stopped: its redactor scrubs the review's diff now. */
  r->redact = NULL;
  x->w = w;
  x->req.data = x;
  w->nending++;
  if (!w->o.run_id) {
    uv_queue_work(&w->loop, &x->req, ending_push_work, ending_push_done);
    return;
  }
  durin__ending_push(x->e);
  if ((x->rc = durin__ending_load(x->e, w->s, &x->err)))
    wlog(w, "run %s: %s", r->id, x->err.msg);
  x->rc = durin__ending_write(x->e, &x->err);
  ending_over(x);
}

/* ---- the workspace's git commit ---- */

static void snapshot_work(uv_work_t *req)
{
  struct wrun *r = req->data;

  durin__wgit_snapshot(r->git, &r->act.snapshot);
}

static void snapshot_done(uv_work_t *req, int status)
{
  struct wrun *r = req->data;
  struct durin_completion c;

  (void)status;
  r->in_pool = 0;
  if (r->gone) {
    run_release_memory(r);
    return;
  }
  if (r->git->res.error)
    rnotice(r,
            "step %lld: cannot commit the workspace: %s (the step is "
            "kept; the next commit takes the whole workspace)",
            (long long)r->act.snapshot.step, r->git->res.error);
  memset(&c, 0, sizeof(c));
  c.kind = DURIN_DONE_SNAPSHOT;
  c.snapshot = &r->git->res;
  complete(r, &c);
}

/* The step's files as a commit (objects only), off the loop: a first
 * snapshot hashes every file of the workspace. */
static void start_snapshot(struct wrun *r)
{
  r->busy = 1;
  if (!r->git) {
    /* The harness asks only when the driver said git is on. */
    static struct durin_snapshot_result none = {
      .error = "internal: no repository open for the run",
    };
    struct durin_completion c;

    memset(&c, 0, sizeof(c));
    c.kind = DURIN_DONE_SNAPSHOT;
    c.snapshot = &none;
    complete(r, &c);
    return;
  }
  run_blocking(r, snapshot_work, snapshot_done);
}

/* ---- driving a run ---- */

/* r reached a stopping state and its last write is durable: forget it
 * and make room for the next claim. */
static void finish(struct wrun *r, enum durin_run_status st, const char *reason)
{
  struct durin_worker *w = r->w;

  wlog(w, "run %s: %s%s%s", r->id, durin_run_status_name(st),
       reason && *reason ? ": " : "", reason ? reason : "");
  if (durin_run_status_terminal(st) || st == DURIN_RUN_NEEDS_HUMAN)
    ending_start(r, st);
  if (w->o.run_id) {
    w->res.status = st;
    snprintf(w->res.reason, sizeof(w->res.reason), "%s", reason ? reason : "");
  }
  w->st.finished++;
  r->gone = 1;
  run_release_memory(r);
  if (!w->stopping && !w->o.run_id)
    uv_timer_start(&w->t_claim, on_claim_timer, 0, 0);
}

static void advance(struct wrun *r)
{
  struct durin_worker *w = r->w;

  while (!r->busy && !r->gone) {
    if (durin_harness_state(r->h) == DURIN_STEP_IDLE) {
      if (r->cancel && !r->cancel_applied)
        apply_cancel(r);
      else if (!r->cancel && (r->pause || w->stopping)) {
        let_go(r, r->pause);
        return;
      }
    }
    durin_harness_next(r->h, durin_now_ms(), &r->act);
    if (w->o.on_action)
      w->o.on_action(w->o.arg, &r->act, durin_harness_usage(r->h),
                     durin_harness_step(r->h));
    switch (r->act.kind) {
    case DURIN_ACT_MODEL:
      /* Stopping: nothing of this step is durable before its response,
       * so asking the model can wait for whoever resumes the run. */
      if (w->stopping && !r->cancel) {
        let_go(r, 0);
        return;
      }
      r->model_started_ms = durin_now_ms();
      start_model(r);
      break;
    case DURIN_ACT_POLICY: {
      /* Decided on the loop: it reads at most a few links. */
      struct durin_policy_decision dec;
      struct durin_completion c;

      durin_run_policy_decide(&r->policy, r->act.tool_ctx.workspace,
                              r->act.tool->name, r->act.args,
                              &r->act.policy_state, &dec);
      memset(&c, 0, sizeof(c));
      c.kind = DURIN_DONE_POLICY;
      c.now_ms = durin_now_ms();
      c.decision = &dec;
      if (durin_harness_complete(r->h, &c)) {
        drop(r, DURIN_ESTATE,
             "harness refused a completion (a bug); dropping the run");
        return;
      }
      break;
    }
    case DURIN_ACT_INTENT:
    case DURIN_ACT_OUTCOME:
      r->busy = 1;
      job_new(w, J_WRITE, r,
              r->act.kind == DURIN_ACT_INTENT ? fn_intent : fn_outcome,
              done_simple);
      return;
    case DURIN_ACT_COMMIT:
      r->busy = 1;
      job_new(w, J_WRITE, r, fn_commit, done_commit)->queued_s =
          w->wm ? durin_metrics_clock() : 0;
      return;
    case DURIN_ACT_TOOL:
      start_tool(r);
      break;
    case DURIN_ACT_CHECKS:
      start_checks(r);
      break;
    case DURIN_ACT_DIFF:
      start_diff(r);
      break;
    case DURIN_ACT_SNAPSHOT:
      start_snapshot(r);
      break;
    case DURIN_ACT_DONE:
    default:
      finish(r, r->act.status, r->act.reason);
      return;
    }
  }
}

/* Stops whatever r is doing and forgets it; its lease is someone else's
 * (fenced: code DURIN_EFENCED) or will expire, and the watchdog recovers
 * it. Nothing committed is lost. */
static void drop(struct wrun *r, int code, const char *why)
{
  struct durin_worker *w = r->w;

  if (r->gone)
    return;
  wlog(w, "run %s: %s", r->id, why);
  lose(w, code, why);
  r->gone = 1;
  w->st.dropped++;
  if (r->xfer) {
    uvh_xfer_free(r->xfer);
    r->xfer = NULL;
  }
  uv_timer_stop(&r->timer);
  if (r->proc)
    uvp_abandon(r->proc);
  r->proc = NULL;
  run_release_memory(r);
}

/* Cancels or stops what r is waiting for, so that it reaches a boundary
 * soon: model calls and waits end at once (asking again is harmless). */
static void interrupt(struct wrun *r, int cancel)
{
  if (r->gone || r->phase == P_LOADING || r->phase == P_ENDING)
    return;
  if (r->proc && cancel) {
    uvp_stop(r->proc);
    return;
  }
  if (cancel && wmcp_busy(r->mcp)) {
    wmcp_call_stop(r->mcp, "cancelled by 'durin cancel'");
    return;
  }
  if (r->xfer || r->phase == P_WAITING) {
    if (r->xfer)
      uvh_xfer_free(r->xfer);
    r->xfer = NULL;
    uv_timer_stop(&r->timer);
    if (r->phase == P_WAITING)
      set_phase(r, P_LIVE);
    if (cancel) {
      apply_cancel(r);
      model_finished(r, DURIN_ECANCELED, NULL,
                     "model call abandoned: cancelled");
    } else {
      /* Stopping: nothing of this step is durable yet; let go. */
      durin_http_req_clear(&r->req);
      r->req_built = 0;
      r->busy = 0;
      let_go(r, 0);
    }
  }
}

/* ---- claims, restores, heartbeats, signals, the watchdog ---- */

/* The run's tenant and agent (its registered agent's name, else its
 * spec's), which label its dollars in the metrics. */
static void run_labels(struct durin_worker *w, struct wrun *r,
                       const struct durin_run_info *ri)
{
  struct durin_run_meta meta;
  struct durin_err err = { 0 };

  snprintf(r->tenant, sizeof(r->tenant), "%s",
           ri->tenant ? ri->tenant : "default");
  memset(&meta, 0, sizeof(meta));
  if (durin_store_run_meta(w->s, r->id, &meta, &err) == 0 && meta.agent)
    snprintf(r->agent, sizeof(r->agent), "%s", meta.agent);
  else
    snprintf(r->agent, sizeof(r->agent), "%s", ri->name ? ri->name : "");
  durin_run_meta_clear(&meta);
}

/*
 * Opens the model's API key from the vault, in the run's tenant, for its
 * agent (its registered agent's name, else the run's): a secret deleted
 * since the submit, a scope that does not admit the agent, a missing or
 * wrong master key end the run, saying which.
 */
static int open_api_key(struct durin_worker *w, struct wrun *r,
                        const struct durin_run_info *ri, const char *name,
                        struct durin_secret_value *out,
                        struct durin_master_key **k, struct durin_err *err)
{
  struct durin_run_meta meta;
  int rc;

  memset(&meta, 0, sizeof(meta));
  durin_store_run_meta(w->s, r->id, &meta, NULL);
  rc = durin_secret_check_use(w->s, ri->tenant, name,
                              meta.agent ? meta.agent : ri->name, err);
  if (!rc && !*k)
    rc = durin_master_key_load(k, err);
  if (!rc) {
    durin_secret_value_clear(out);
    rc = durin_secret_get(w->s, *k, ri->tenant, name, out, err);
  }
  durin_run_meta_clear(&meta);
  if (rc)
    durin_err_prefix(err, "model.api_key_secret: ");
  return rc;
}

/*
 * Opens the values of the spec's grants ("secrets"), for its agent, as
 * open_api_key does: a secret gone since the submit, out of the agent's
 * scope, or unopenable ends the run naming it. A value that cannot go in
 * a header (a line break, a NUL) or a variable (a NUL) ends it too.
 */
static int open_grants(struct durin_worker *w, struct wrun *r,
                       const struct durin_run_info *ri,
                       struct durin_master_key **k, struct durin_err *err)
{
  const struct durin_spec *spec = &r->spec;
  struct durin_run_meta meta;
  int i, rc = 0;

  grants_clear(r);
  r->grants = calloc((size_t)spec->ngrants, sizeof(*r->grants));
  r->grant_vals = calloc((size_t)spec->ngrants, sizeof(*r->grant_vals));
  if (!r->grants || !r->grant_vals)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  memset(&meta, 0, sizeof(meta));
  durin_store_run_meta(w->s, r->id, &meta, NULL);
  for (i = 0; !rc && i < spec->ngrants; i++) {
    const struct durin_spec_grant *sg = &spec->grants[i];
    struct durin_secret_value *v = &r->grant_vals[i];
    struct durin_sandbox_grant *g = &r->grants[i];

    rc = durin_secret_check_use(w->s, ri->tenant, sg->secret,
                                meta.agent ? meta.agent : ri->name, err);
    if (!rc && !*k)
      rc = durin_master_key_load(k, err);
    if (!rc)
      rc = durin_secret_get(w->s, *k, ri->tenant, sg->secret, v, err);
    r->ngrants = i + 1;
    if (!rc && (memchr(v->data, 0, v->len) ||
                (sg->host && (memchr(v->data, '\r', v->len) ||
                              memchr(v->data, '\n', v->len)))))
      rc = durin_err_set(err, DURIN_EINVAL,
                         "secret '%s' holds a %s, which cannot go in %s",
                         sg->secret, sg->host ? "line break or NUL" : "NUL",
                         sg->host ? "a header" : "a variable");
    if (rc) {
      durin_err_prefix(err, "secrets: ");
      break;
    }
    *g = (struct durin_sandbox_grant){ sg->secret, sg->host, sg->header,
                                       sg->format, sg->env,  sg->tool,
                                       v->data,    v->len };
  }
  durin_run_meta_clear(&meta);
  return rc;
}

struct names {
  char **v;
  size_t n;
};

static int note_name(const struct durin_secret_row *row, void *arg)
{
  struct names *ns = arg;
  char **v = realloc(ns->v, (ns->n + 1) * sizeof(*v));

  if (!v)
    return DURIN_ENOMEM;
  ns->v = v;
  if (!(v[ns->n] = strdup(row->name)))
    return DURIN_ENOMEM;
  ns->n++;
  return 0;
}

/*
 * The run's redactor, of every secret of its tenant (the run may meet any
 * of them: a file in the workspace, a host's answer). Secrets there and no
 * master key here to open them: the run ends, since its output could not
 * be kept clean, saying so.
 */
static int open_redactor(struct durin_worker *w, struct wrun *r,
                         const struct durin_run_info *ri,
                         struct durin_master_key **k, struct durin_err *err)
{
  struct names ns = { NULL, 0 };
  size_t i;
  int rc;

  durin_redactor_free(r->redact);
  r->redact = NULL;
  rc = durin_store_secret_list(w->s, ri->tenant ? ri->tenant : "default",
                               note_name, &ns, err);
  if (!rc && ns.n && !*k) {
    rc = durin_master_key_load(k, err);
    if (rc)
      durin_err_prefix(err,
                       "the run's tenant has secrets, and their values must "
                       "be scrubbed from its output: ");
  }
  if (!rc && ns.n && !(r->redact = durin_redactor_new()))
    rc = durin_err_set(err, DURIN_ENOMEM, "out of memory");
  for (i = 0; !rc && i < ns.n; i++) {
    struct durin_secret_value v = { NULL, 0 };

    rc = durin_secret_get(w->s, *k, ri->tenant ? ri->tenant : "default",
                          ns.v[i], &v, err);
    /* One too short to scrub would match everywhere: it is left out. */
    if (!rc &&
        durin_redactor_add(r->redact, ns.v[i], v.data, v.len) == DURIN_ENOMEM)
      rc = durin_err_set(err, DURIN_ENOMEM, "out of memory");
    durin_secret_value_clear(&v);
  }
  for (i = 0; i < ns.n; i++)
    free(ns.v[i]);
  free(ns.v);
  return rc;
}

static int note_recorded(const struct durin_event *ev, void *arg)
{
  json_t **out = arg;

  json_decref(*out);
  *out = json_loads(ev->data, 0, NULL);
  return 0;
}

/*
 * The HTTP headers of r's MCP servers, secrets opened from the vault
 * (checked for the run's agent as the API key is), and the tools the log
 * recorded when they were last listed.
 */
static int open_mcp(struct durin_worker *w, struct wrun *r,
                    const struct durin_run_info *ri,
                    struct durin_master_key **k, struct durin_err *err)
{
  const char *tenant = ri->tenant ? ri->tenant : "default";
  struct durin_run_meta meta;
  int i, h, rc = 0;

  memset(&meta, 0, sizeof(meta));
  durin_store_run_meta(w->s, r->id, &meta, NULL);
  for (i = 0; !rc && i < r->spec.nmcp && i < 16; i++) {
    const struct durin_spec_mcp *m = &r->spec.mcp[i];

    r->mcp_headers[i] = calloc((size_t)m->nheaders + 1, sizeof(char *));
    for (h = 0; !rc && h < m->nheaders; h++) {
      const struct durin_spec_mcp_header *hd = &m->headers[h];
      struct durin_secret_value v = { NULL, 0 };
      char *line = NULL;

      if (hd->value) {
        if (asprintf(&line, "%s: %s", hd->name, hd->value) < 0)
          abort();
      } else {
        rc = durin_secret_check_use(w->s, tenant, hd->secret,
                                    meta.agent ? meta.agent : ri->name, err);
        if (!rc && !*k)
          rc = durin_master_key_load(k, err);
        if (!rc)
          rc = durin_secret_get(w->s, *k, tenant, hd->secret, &v, err);
        /* It goes into a header line: one that ends it would add another. */
        if (!rc && (memchr(v.data, '\r', v.len) ||
                    memchr(v.data, '\n', v.len) || memchr(v.data, 0, v.len)))
          rc = durin_err_set(err, DURIN_EINVAL,
                             "secret '%s' holds a line break or a NUL, and "
                             "cannot go into a header",
                             hd->secret);
        if (!rc) {
          const char *f = hd->format ? hd->format : "{}";
          const char *at = strstr(f, "{}");

          if (asprintf(&line, "%s: %.*s%.*s%s", hd->name, (int)(at - f), f,
                       (int)v.len, (const char *)v.data, at + 2) < 0)
            abort();
        }
        durin_secret_value_clear(&v);
        if (rc)
          durin_err_prefix(err, "mcp_servers.%s.headers.%s: ", m->name,
                           hd->name);
      }
      if (line)
        r->mcp_headers[i][r->mcp_nheaders[i]++] = line;
    }
  }
  durin_run_meta_clear(&meta);
  json_decref(r->mcp_recorded);
  r->mcp_recorded = NULL;
  if (!rc)
    durin_store_event_last(w->s, r->id, "mcp_tools", note_recorded,
                           &r->mcp_recorded, NULL);
  return rc;
}

/*
 * The workspace's checkpoints, once its layers are settled: the branch set
 * to the checkpoint's commit, the workspace checked against it; then the
 * boot files. A repository that cannot be opened does not stop the run: it
 * goes on without checkpoints for this attempt, and the log says why.
 */
static void git_restore(struct wrun *r)
{
  struct durin_err err = { 0 };

  durin__wgit_close(r->git);
  r->git = NULL;
  free(r->git_notice);
  r->git_notice = NULL;
  if (r->spec.git.mode == DURIN_SPEC_GIT_ON) {
    if (durin__wgit_open(&r->spec, r->id, &r->git, &err)) {
      durin_harness_note(r->h, "workspace_commit_failed",
                         json_pack("{s:I,s:s}", "step",
                                   (json_int_t)durin_harness_step(r->h),
                                   "error", err.msg));
      if (asprintf(&r->git_notice, "no git checkpoints for this attempt: %s",
                   err.msg) < 0)
        r->git_notice = NULL;
    } else {
      durin_harness_set_git(r->h, 1);
      durin__wgit_restore(r->git, r->h, durin_harness_step_open(r->h),
                          &r->git_notice);
    }
  }
  durin__boot_load(&r->spec, r->git, r->h);
}

/* The run's committed state into its harness, and its layers settled. */
static int load_run(struct durin_worker *w, struct wrun *r,
                    struct durin_err *err)
{
  int rc = durin_run_load(w->s, r->id, r->h, r->attempt, err);

  /* Before the run does anything: finish the merges a crash cut, and
   * discard what calls without an outcome left. */
  if (!rc)
    rc = durin__calls_recover(w->s, r->id, &r->spec, err);
  if (!rc)
    git_restore(r);
  return rc;
}

static int fn_restore(struct durin_worker *w, struct durin_txn *txn,
                      struct job *j)
{
  struct wrun *r = j->run;
  struct durin_master_key *key = NULL;
  unsigned char apkey[DURIN_SECRET_KEY_BYTES];
  int have_apkey;
  struct durin_run_info ri;
  int rc;

  (void)txn;
  rc = durin_store_run_get(w->s, r->id, &ri, &j->err);
  if (rc)
    return rc;
  /* Cancelled while nobody held it: the harness hears of it at once. */
  j->cancel = ri.cancel_requested;
  /* Resumed through the API with a resolution (durin_store_run_requeue). */
  j->resolve = ri.resolve;
  if (w->o.run_id) {
    /*
     * Taken by id, whoever holds it (`durin run` created it leased to this
     * owner already): the claim moves the epoch all the same, fencing any
     * earlier holder. The loop reads epoch and attempt only once this job
     * is done.
     */
    if (durin_run_status_terminal(ri.status)) {
      j->ended = ri.status;
      j->reason = strdup(ri.reason ? ri.reason : "");
      durin_run_info_clear(&ri);
      return 0;
    }
    rc = durin_store_run_claim(w->s, r->id, w->owner, durin_now_ms(),
                               w->o.lease_ttl_ms, &r->epoch, &j->err);
    r->attempt = ri.attempt + 1;
  }
  if (!rc && w->wm)
    run_labels(w, r, &ri);
  if (!rc)
    rc = durin_spec_parse(ri.spec_json, NULL, &r->spec, &j->err);
  if (!rc) {
    r->spec_ok = 1;
    rc =
        durin_run_policy_init(&r->policy, r->spec.policy, w->o.policy, &j->err);
  }
  /* The master key is loaded once, if any secret is opened. */
  if (!rc && r->spec.model.api_key_secret)
    rc = open_api_key(w, r, &ri, r->spec.model.api_key_secret, &r->api_key,
                      &key, &j->err);
  if (!rc && r->spec.evaluator.own_model &&
      r->spec.evaluator.model.api_key_secret &&
      (!r->spec.model.api_key_secret ||
       strcmp(r->spec.model.api_key_secret,
              r->spec.evaluator.model.api_key_secret)))
    rc = open_api_key(w, r, &ri, r->spec.evaluator.model.api_key_secret,
                      &r->eval_api_key, &key, &j->err);
  /* open_api_key names the agent's field; this one is the evaluator's. */
  if (rc && r->spec.evaluator.own_model && !r->eval_api_key.data &&
      !strncmp(j->err.msg, "model.api_key_secret", 20) &&
      (!r->spec.model.api_key_secret || r->api_key.data)) {
    char why[sizeof(j->err.msg)];

    snprintf(why, sizeof(why), "evaluator.%.480s", j->err.msg);
    snprintf(j->err.msg, sizeof(j->err.msg), "%s", why);
  }
  if (!rc && r->spec.ngrants)
    rc = open_grants(w, r, &ri, &key, &j->err);
  if (!rc)
    rc = open_redactor(w, r, &ri, &key, &j->err);
  if (!rc && r->spec.nmcp)
    rc = open_mcp(w, r, &ri, &key, &j->err);
  /* Decisions are checked against the master key's approval key when there
   * is one here; none (or one that does not load): unsigned ones only. */
  if (!rc && !key) {
    struct durin_err kerr = { 0 };

    durin_master_key_load(&key, &kerr);
  }
  if ((have_apkey = key != NULL))
    durin_approval_key(key, apkey);
  durin_master_key_free(key);
  /* A bind that exposes the store or the data directory can never run
   * here: the run ends, saying which (DURIN_ESPEC fails it). */
  if (!rc && w->o.sandbox)
    rc = durin_sandbox_check(w->o.sandbox, &r->spec.sandbox, &j->err);
  if (!rc)
    rc = durin_harness_new(&r->spec, r->id, &r->h, &j->err);
  if (!rc && have_apkey)
    durin_harness_set_approval_key(r->h, apkey);
  sodium_memzero(apkey, sizeof(apkey));
  if (!rc)
    durin_harness_set_sandboxed(r->h, w->o.sandbox != NULL);
  /* With MCP servers, the run is loaded once they listed their tools
   * (fn_load): a pending step's calls of them must find them. */
  if (!rc && !r->spec.nmcp)
    rc = load_run(w, r, &j->err);
  durin_run_info_clear(&ri);
  return rc;
}

static int fn_load(struct durin_worker *w, struct durin_txn *txn, struct job *j)
{
  (void)txn;
  return load_run(w, j->run, &j->err);
}

/* Ends a run that has no usable harness as failed: event and row. */
static int fn_fail_run(struct durin_worker *w, struct durin_txn *txn,
                       struct job *j)
{
  enum durin_run_status failed = DURIN_RUN_FAILED;
  json_t *data =
      json_pack("{s:s,s:s}", "status", "failed", "reason", j->reason);
  char *text = json_dumps(data, JSON_COMPACT);
  struct durin_run_update u;
  struct durin_event ev;
  int r;

  (void)w;
  json_decref(data);
  memset(&ev, 0, sizeof(ev));
  ev.ts_ms = durin_now_ms();
  ev.type = "run_finished";
  ev.data = text;
  r = durin_txn_events_append(txn, j->run->id, &ev, 1, &j->err);
  free(text);
  if (r)
    return r;
  memset(&u, 0, sizeof(u));
  u.status = &failed;
  u.reason = j->reason;
  u.started_ms = -1;
  u.finished_ms = ev.ts_ms;
  u.release_lease = 1;
  u.now_ms = ev.ts_ms;
  return durin_txn_run_update(txn, j->run->id, &u, &j->err);
}

static void done_fail_run(struct durin_worker *w, struct job *j)
{
  struct wrun *r = j->run;

  (void)w;
  if (!write_failed(r, j))
    finish(r, DURIN_RUN_FAILED, j->reason);
}

/* ---- MCP servers (lib/worker/mcp.c) ---- */

static int fn_control_event(struct durin_worker *w, struct durin_txn *txn,
                            struct job *j)
{
  (void)txn;
  return durin_store_control_event(w->s, j->run->id, j->ev_type, j->ev_data,
                                   durin_now_ms(), &j->err);
}

static void done_control_event(struct durin_worker *w, struct job *j)
{
  if (j->r)
    wlog(w, "run %s: cannot log a '%s' event: %s", j->run->id, j->ev_type,
         j->err.msg);
  if (j->run->gone)
    run_release_memory(j->run);
}

/* Appends an event to r's log outside its commits (data stolen). */
static void run_event(struct wrun *r, const char *type, json_t *data)
{
  struct job *j =
      job_new(r->w, J_CALL, r, fn_control_event, done_control_event);

  j->ev_type = type;
  j->ev_data = data;
}

/* text with the tenant's secrets scrubbed (owned): what a server says
 * (its stderr, its messages) reaches the log and the operator only so. */
static char *scrubbed(struct wrun *r, const char *text)
{
  char *t = strdup(text);

  if (!t)
    abort();
  scrub(r, &t);
  return t;
}

static void on_mcp_notice(void *arg, const char *msg)
{
  struct wrun *r = arg;
  char *t = scrubbed(r, msg);

  rnotice(r, "%s", t);
  run_event(r, "mcp_notice", json_pack("{s:s}", "message", t));
  free(t);
}

static void on_mcp_progress(void *arg, const char *server, json_t *params)
{
  struct wrun *r = arg;
  json_t *d = json_pack("{s:s,s:s}", "server", server, "tool",
                        r->act.tool ? r->act.tool->name : "");
  const char *msg = json_string_value(json_object_get(params, "message"));

  if (json_is_number(json_object_get(params, "progress")))
    json_object_set(d, "progress", json_object_get(params, "progress"));
  if (json_is_number(json_object_get(params, "total")))
    json_object_set(d, "total", json_object_get(params, "total"));
  if (msg) {
    char *t = scrubbed(r, msg);

    json_object_set_new(d, "message", json_string(t));
    free(t);
  }
  run_event(r, "mcp_progress", d);
}

/* Whether the servers list what the log recorded, server by server. */
static int same_listing(json_t *recorded, json_t *now)
{
  json_t *a = json_object_get(recorded, "servers");
  json_t *b = json_object_get(now, "servers"), *v;
  const char *k;

  if (!a || json_object_size(a) != json_object_size(b))
    return 0;
  json_object_foreach(b, k, v) {
    const char *h1 = json_string_value(
        json_object_get(json_object_get(a, k), "listing_sha256"));
    const char *h2 = json_string_value(json_object_get(v, "listing_sha256"));

    if (!h1 || !h2 || strcmp(h1, h2))
      return 0;
  }
  return 1;
}

static void mcp_fail(struct wrun *r, const char *why)
{
  struct job *f = job_new(r->w, J_WRITE, r, fn_fail_run, done_fail_run);

  f->reason = scrubbed(r, why);
  wmcp_free(r->mcp);
  r->mcp = NULL;
  set_phase(r, P_ENDING);
}

static void done_load(struct durin_worker *w, struct job *j);
static int fn_load(struct durin_worker *w, struct durin_txn *txn,
                   struct job *j);

static void on_mcp_ready(void *arg, int rc, const char *why)
{
  struct wrun *r = arg;
  const struct durin_tool_def *const *tools;
  struct durin_err err = { 0 };
  int n;

  r->busy = 0;
  if (r->gone)
    return;
  if (rc) {
    char *t = scrubbed(r, why);

    rnotice(r, "%s", t);
    mcp_fail(r, t);
    free(t);
    return;
  }
  tools = wmcp_tools(r->mcp, &n);
  if (durin_harness_add_tools(r->h, tools, n, &err)) {
    mcp_fail(r, err.msg);
    return;
  }
  r->busy = 1;
  job_new(r->w, J_CALL, r, fn_load, done_load);
}

/*
 * A restore that failed for a reason that may pass (the store, memory):
 * let go; the lease expires, the run comes back and its retry budget ends
 * it if this persists. 1 if so (the run is dropped here).
 */
static int restore_failed_for_now(struct durin_worker *w, struct wrun *r,
                                  struct job *j)
{
  if (j->r != DURIN_ESTORE && j->r != DURIN_EBUSY && j->r != DURIN_ENOMEM &&
      j->r != DURIN_EIO)
    return 0;
  wlog(w, "run %s: cannot restore: %s", r->id, j->err.msg);
  lose(w, j->r, j->err.msg);
  drop(r, j->r, "dropped after a failed restore");
  return 1;
}

static void done_load(struct durin_worker *w, struct job *j)
{
  struct wrun *r = j->run;
  json_t *rec, *v;
  size_t i;

  r->busy = 0;
  if (r->gone) {
    run_release_memory(r);
    return;
  }
  if (restore_failed_for_now(w, r, j))
    return;
  if (j->r) {
    char why[700];

    snprintf(why, sizeof(why), "cannot restore the run: %s", j->err.msg);
    mcp_fail(r, why);
    return;
  }
  rec = wmcp_record(r->mcp);
  json_array_foreach(json_object_get(rec, "notices"), i, v) {
    char *t = scrubbed(r, json_string_value(v));

    rnotice(r, "%s", t);
    json_array_set_new(json_object_get(rec, "notices"), i, json_string(t));
    free(t);
  }
  /* Recorded once, and again only when a server lists other tools than
   * the log says (a resume against an upgraded server): the model then
   * sees tools it did not see before, and the log says so. */
  if (!r->mcp_recorded || !same_listing(r->mcp_recorded, rec)) {
    if (r->mcp_recorded) {
      json_object_set_new(rec, "changed", json_true());
      rnotice(r, "the mcp servers list other tools than when the run "
                 "recorded them; the model sees the new list");
    }
    run_event(r, "mcp_tools", rec);
  } else {
    json_decref(rec);
  }
  run_begin(r);
}

static void mcp_begin(struct wrun *r)
{
  static const struct wmcp_ops ops = { on_mcp_ready, on_mcp_notice,
                                       on_mcp_progress };
  struct durin_proc_box box = { r->w->o.sandbox, &r->spec.sandbox, NULL };

  r->busy = 1;
  r->mcp = wmcp_start(&r->w->loop, r->w->http, &r->spec, &box,
                      (char *const *const *)r->mcp_headers, r->mcp_nheaders,
                      r->w->mcp_pool, &ops, r);
  if (!r->mcp) {
    r->busy = 0;
    mcp_fail(r, "out of memory starting the mcp servers");
  }
}

static void on_mcp_result(void *arg, struct durin_tool_result *res)
{
  struct wrun *r = arg;

  /* The call has ended and its outcome is not durable yet. */
  durin_fault_point("tool_exit");
  tool_finished(r, res);
}

static void done_restore(struct durin_worker *w, struct job *j)
{
  struct wrun *r = j->run;

  if (r->gone) {
    run_release_memory(r);
    return;
  }
  if (j->reason && !j->r) {
    /* Taken by id, but it had already ended: nothing to drive. */
    finish(r, j->ended, j->reason);
    return;
  }
  if (j->r && !r->epoch) {
    /* Not found, ended meanwhile, or the store failed: nothing is ours. */
    drop(r, j->r, j->err.msg);
    return;
  }
  if (restore_failed_for_now(w, r, j))
    return;
  if (j->r) {
    /* The stored spec or checkpoint is unusable, here and on any worker:
     * retrying cannot help, so the run ends now, with the reason. */
    struct job *f = job_new(w, J_WRITE, r, fn_fail_run, done_fail_run);

    if (asprintf(&f->reason, "cannot restore the run: %s", j->err.msg) < 0)
      abort();
    set_phase(r, P_ENDING);
    return;
  }
  set_phase(r, P_LIVE);
  if (w->o.on_transition)
    durin_harness_on_transition(r->h, w->o.on_transition, w->o.arg);
  r->begin_resolve = j->resolve;
  r->begin_cancel = j->cancel;
  if (r->spec.nmcp) {
    /* The servers first: the model must see their tools. */
    mcp_begin(r);
    return;
  }
  run_begin(r);
}

/* The restored run starts driving. */
static void run_begin(struct wrun *r)
{
  struct durin_worker *w = r->w;

  /* The operator's decision about an indeterminate call (--retry-call,
   * --skip-call) is for the run they named only. */
  if (w->o.run_id && w->o.resolve >= 0)
    durin_harness_resolve(r->h, w->o.resolve);
  else if (r->begin_resolve >= 0)
    durin_harness_resolve(r->h, r->begin_resolve);
  if (r->begin_cancel && !r->cancel)
    apply_cancel(r);
  if (r->git_notice) {
    rnotice(r, "%s", r->git_notice);
    free(r->git_notice);
    r->git_notice = NULL;
  }
  advance(r);
}

static int fn_claim(struct durin_worker *w, struct durin_txn *txn,
                    struct job *j)
{
  (void)txn;
  return durin_store_queue_claim(w->s, w->owner, durin_now_ms(),
                                 w->o.lease_ttl_ms, j->nclaims, j->claims,
                                 &j->nclaims, &j->err);
}

/* Holds run id (epoch 0: not taken yet) and sends it to be restored. */
static void run_new(struct durin_worker *w, const char *id, uint64_t epoch,
                    int64_t attempt)
{
  struct wrun *r = calloc(1, sizeof(*r));
  unsigned b;

  if (!r)
    abort();
  r->w = w;
  snprintf(r->id, sizeof(r->id), "%s", id);
  r->epoch = epoch;
  r->attempt = attempt;
  r->phase = P_LOADING;
  uv_timer_init(&w->loop, &r->timer);
  r->timer.data = r;
  b = hash_id(r->id);
  r->hnext = w->bucket[b];
  w->bucket[b] = r;
  w->nruns++;
  durin__wmetrics_leases(w->wm, w->nruns);
  w->nlive++;
  w->st.claimed++;
  job_new(w, J_CALL, r, fn_restore, done_restore);
}

/* Limited to one run id: that run is taken by id as it is restored. */
static void take_run(struct durin_worker *w)
{
  run_new(w, w->o.run_id, 0, 0);
}

static void done_claim(struct durin_worker *w, struct job *j)
{
  int i;

  w->claim_busy = 0;
  if (j->r) {
    if (j->r != DURIN_EBUSY)
      wlog(w, "claiming runs failed: %s", j->err.msg);
    return;
  }
  for (i = 0; i < j->nclaims; i++)
    run_new(w, j->claims[i].id, j->claims[i].epoch, j->claims[i].attempt);
  /* A full claim means more may be waiting: look again at once. */
  if (j->nclaims > 0 && !w->stopping)
    uv_timer_start(&w->t_claim, on_claim_timer, 0, 0);
}

static void claim_now(struct durin_worker *w)
{
  struct job *j;
  int room = w->o.max_runs - w->nlive;

  if (w->stopping || w->claim_busy || room <= 0)
    return;
  if (room > 500)
    room = 500; /* keep one claim transaction short */
  w->claim_busy = 1;
  j = job_new(w, J_CALL, NULL, fn_claim, done_claim);
  j->claims = calloc((size_t)room, sizeof(*j->claims));
  j->nclaims = room;
}

static void on_claim_timer(uv_timer_t *t)
{
  struct durin_worker *w = t->data;

  claim_now(w);
  uv_timer_start(&w->t_claim, on_claim_timer, (uint64_t)w->o.poll_ms, 0);
}

/*
 * Work was made ready somewhere (a submit, a decision, a run let go): claim
 * now instead of at the next poll. The channel is the store's own
 * connection, so reading it here does not touch the store thread's. If it
 * breaks, polling carries on alone and the channel is reopened later.
 */
static void on_wake_closed(uv_handle_t *h)
{
  struct durin_worker *w = h->data;

  w->wake_state = 0;
}

static void wake_close(struct durin_worker *w)
{
  if (w->wake_state != 1)
    return;
  w->wake_state = 2;
  uv_close((uv_handle_t *)&w->wake, on_wake_closed);
}

static void on_wake(uv_poll_t *p, int status, int events)
{
  struct durin_worker *w = p->data;
  int n;

  (void)events;
  n = status < 0 ? -1 : durin_store_wakeup_drain(w->s);
  if (n < 0) {
    wake_close(w);
    return;
  }
  if (n > 0 && !w->stopping)
    uv_timer_start(&w->t_claim, on_claim_timer, 0, 0);
}

/* Opens the wakeup channel, or reopens a broken one: at start and with
 * every heartbeat. */
static void wake_open(struct durin_worker *w)
{
  int fd;

  /* A worker limited to one run id claims nothing: no wakeups. */
  if (w->wake_state != 0 || w->stopping || w->closing || w->o.run_id)
    return;
  fd = durin_store_wakeup_fd(w->s);
  if (fd < 0 || uv_poll_init(&w->loop, &w->wake, fd) != 0)
    return;
  w->wake.data = w;
  w->wake_state = 1;
  uv_poll_start(&w->wake, UV_READABLE, on_wake);
}

static int collect_held(const struct durin_held *h, void *arg)
{
  struct job *j = arg;

  j->held = realloc(j->held, (size_t)(j->nheld + 1) * sizeof(*j->held));
  j->held[j->nheld++] = *h;
  return 0;
}

/*
 * What the roll call says of this worker beyond its row: its counts and
 * each provider limiter's state (requests and tokens left in the buckets
 * as of the last request, and until when a 429 holds it back). Read
 * without a lock from the loop's fields: a moment stale is fine.
 */
static char *roll_call_info(struct durin_worker *w)
{
  json_t *o, *rls = json_array();
  char *text;
  int i;

  for (i = 0; i < w->nrl; i++) {
    const struct durin_ratelimit *rl = &w->rls[i].rl;

    json_array_append_new(
        rls,
        json_pack("{s:s,s:f,s:f,s:o,s:o,s:o}", "provider", w->rls[i].provider,
                  "rpm", rl->rpm, "tpm", rl->tpm, "requests_left",
                  rl->rpm > 0 ? json_real(rl->req) : json_null(), "tokens_left",
                  rl->tpm > 0 ? json_real(rl->tok) : json_null(),
                  "blocked_until_ms",
                  rl->blocked_until_ms > durin_now_ms() ?
                      json_integer(rl->blocked_until_ms) :
                      json_null()));
  }
  o = json_pack("{s:i,s:i,s:I,s:I,s:I,s:I,s:o}", "live", w->nlive, "waiting",
                w->nwaiting, "claimed", (json_int_t)w->st.claimed, "finished",
                (json_int_t)w->st.finished, "steps", (json_int_t)w->st.steps,
                "lease_ttl_ms", (json_int_t)w->o.lease_ttl_ms, "rate_limits",
                rls);
  text = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return text;
}

static int fn_beat(struct durin_worker *w, struct durin_txn *txn, struct job *j)
{
  int r;

  (void)txn;
  r = durin_store_lease_renew(w->s, w->owner,
                              durin_now_ms() + w->o.lease_ttl_ms, collect_held,
                              j, &j->err);
  /* The fleet's roll call (GET /v1/workers); a worker for one run is not
   * part of the fleet. The counts are the loop's, read without a lock:
   * a heartbeat a moment stale is fine. */
  if (!r && !w->o.run_id) {
    struct durin_worker_row row;
    char *info = roll_call_info(w);

    memset(&row, 0, sizeof(row));
    row.owner = w->owner;
    row.kind = w->o.kind ? w->o.kind : "worker";
    row.started_ms = w->started_ms;
    row.beat_ms = durin_now_ms();
    row.max_runs = w->o.max_runs;
    row.info = info ? info : "{}";
    durin_store_worker_beat(w->s, &row, NULL);
    free(info);
  }
  return r;
}

static int fn_signals(struct durin_worker *w, struct durin_txn *txn,
                      struct job *j)
{
  (void)txn;
  return durin_store_signals(w->s, w->owner, collect_held, j, &j->err);
}

/* Lets go of a run this worker holds in the store but not in memory. */
static int fn_release_orphan(struct durin_worker *w, struct durin_txn *txn,
                             struct job *j)
{
  struct durin_run_update u;
  int r;

  (void)txn;
  r = durin_txn_begin(w->s, &txn, &j->err);
  if (r)
    return r;
  memset(&u, 0, sizeof(u));
  u.started_ms = u.finished_ms = -1;
  u.release_lease = 1;
  u.now_ms = durin_now_ms();
  r = durin_txn_fence(txn, j->id, j->epoch, u.now_ms, &j->err);
  if (!r)
    r = durin_txn_run_update(txn, j->id, &u, &j->err);
  if (r) {
    durin_txn_rollback(txn);
    return r;
  }
  return durin_txn_commit(txn, &j->err);
}

static void done_nothing(struct durin_worker *w, struct job *j)
{
  (void)w;
  (void)j;
}

static void mark_all(struct durin_worker *w)
{
  int b;
  struct wrun *r;

  for (b = 0; b < NBUCKETS; b++)
    for (r = w->bucket[b]; r; r = r->hnext)
      r->unseen = 1;
}

static void done_beat(struct durin_worker *w, struct job *j)
{
  struct wrun *r, *next;
  int i, b;

  w->beat_busy = 0;
  if (j->r) {
    wlog(w, "heartbeat failed: %s", j->err.msg);
    return;
  }
  mark_all(w);
  for (i = 0; i < j->nheld; i++) {
    r = run_find(w, j->held[i].id);
    if (r && r->epoch == j->held[i].epoch) {
      r->unseen = 0;
      continue;
    }
    if (!r) {
      struct job *rel =
          job_new(w, J_CALL, NULL, fn_release_orphan, done_nothing);

      snprintf(rel->id, sizeof(rel->id), "%s", j->held[i].id);
      rel->epoch = j->held[i].epoch;
    }
  }
  for (b = 0; b < NBUCKETS; b++) {
    for (r = w->bucket[b]; r; r = next) {
      next = r->hnext;
      if (r->unseen) {
        r->unseen = 0;
        /* A run being taken by id has no epoch yet to be seen with. */
        if (r->phase != P_ENDING && !r->gone && r->epoch)
          drop(r, DURIN_EFENCED,
               "lease lost (the heartbeat no longer reports it)");
      }
    }
  }
}

static void done_signals(struct durin_worker *w, struct job *j)
{
  int i;

  w->signal_busy = 0;
  for (i = 0; !j->r && i < j->nheld; i++) {
    struct wrun *r = run_find(w, j->held[i].id);

    if (!r || r->epoch != j->held[i].epoch || r->gone)
      continue;
    if (j->held[i].cancel_requested && !r->cancel) {
      r->cancel = 1;
      interrupt(r, 1);
    }
    if (j->held[i].pause_requested && !r->pause)
      r->pause = 1;
    if (!r->busy && !r->gone && r->phase == P_LIVE)
      advance(r);
  }
}

static int fn_watchdog(struct durin_worker *w, struct durin_txn *txn,
                       struct job *j)
{
  struct durin_watchdog_opts o;

  (void)txn;
  o.now_ms = durin_now_ms();
  o.stall_ms = w->o.stall_ms;
  o.stall_escalate = w->o.stall_escalate;
  return durin_store_watchdog(w->s, &o, &j->wd, &j->err);
}

static void done_watchdog(struct durin_worker *w, struct job *j)
{
  w->wd_busy = 0;
  if (j->r) {
    if (j->r != DURIN_EBUSY)
      wlog(w, "watchdog failed: %s", j->err.msg);
    return;
  }
  durin__wmetrics_watchdog(w->wm, &j->wd);
  if (j->wd.requeued || j->wd.failed || j->wd.stalled)
    wlog(w,
         "watchdog: %d run(s) re-queued after their lease expired, %d "
         "failed (recoveries used up), %d stalled",
         j->wd.requeued, j->wd.failed, j->wd.stalled);
  if (j->wd.expired)
    wlog(w, "watchdog: %d approval(s) expired; their runs go on",
         j->wd.expired);
  if (j->wd.requeued || j->wd.stalled || j->wd.expired)
    uv_timer_start(&w->t_claim, on_claim_timer, 0, 0);
}

static void on_beat_timer(uv_timer_t *t)
{
  struct durin_worker *w = t->data;

  wake_open(w);
  /* A fleet worker beats while idle too: its row is the roll call
   * (GET /v1/workers), and an idle worker is still part of the fleet. */
  if (!w->beat_busy && (w->nruns || !w->o.run_id)) {
    w->beat_busy = 1;
    job_new(w, J_CALL, NULL, fn_beat, done_beat);
  }
}

static void on_signal_timer(uv_timer_t *t)
{
  struct durin_worker *w = t->data;

  if (!w->signal_busy && w->nruns) {
    w->signal_busy = 1;
    job_new(w, J_CALL, NULL, fn_signals, done_signals);
  }
}

static void on_watchdog_timer(uv_timer_t *t)
{
  struct durin_worker *w = t->data;

  if (!w->wd_busy) {
    w->wd_busy = 1;
    job_new(w, J_CALL, NULL, fn_watchdog, done_watchdog);
  }
}

/* ---- stopping ---- */

static void close_loop_handles(struct durin_worker *w)
{
  if (w->closing)
    return;
  wake_close(w);
  w->closing = 1;
  uv_close((uv_handle_t *)&w->t_claim, NULL);
  uv_close((uv_handle_t *)&w->t_beat, NULL);
  uv_close((uv_handle_t *)&w->t_signal, NULL);
  uv_close((uv_handle_t *)&w->t_watchdog, NULL);
  uv_close((uv_handle_t *)&w->prep, NULL);
  uv_close((uv_handle_t *)&w->check, NULL);
  uv_close((uv_handle_t *)&w->async_stop, NULL);
  uv_close((uv_handle_t *)&w->async_wake, NULL);
  wmcp_pool_free(w->mcp_pool);
  w->mcp_pool = NULL;
  uvh_free(w->http);
  w->http = NULL;
}

static void on_drain_check(uv_timer_t *t)
{
  struct durin_worker *w = t->data;

  if (w->nruns == 0 && !w->nending && !w->sx_busy && !w->q_head)
    close_loop_handles(w);
}

/* No more claims nor watchdog; every 50 ms, whether everything has been
 * let go (then the loop ends). */
static void start_draining(struct durin_worker *w)
{
  w->stopping = 1;
  uv_timer_stop(&w->t_watchdog);
  uv_timer_stop(&w->t_claim);
  uv_timer_start(&w->t_claim, on_drain_check, 0, 50);
}

static void on_stop(uv_async_t *a)
{
  struct durin_worker *w = a->data;
  struct wrun *r, *next;
  int b;

  if (w->stop_req == 2) {
    wlog(w, "stopping now; %d run(s) are left to the watchdog", w->nruns);
    if (w->o.run_id && w->nruns) {
      w->res.stopped = 1;
      snprintf(w->res.reason, sizeof(w->res.reason), "stopped at once");
    }
    uv_stop(&w->loop);
    return;
  }
  if (w->stopping)
    return;
  wlog(w,
       "stopping: no new claims; letting go of %d run(s) at their next "
       "step boundary",
       w->nruns);
  start_draining(w);
  for (b = 0; b < NBUCKETS; b++) {
    for (r = w->bucket[b]; r; r = next) {
      next = r->hnext;
      if (!r->busy && r->phase == P_LIVE)
        advance(r);
      else
        interrupt(r, 0);
    }
  }
}

/* Limited to one run id, the worker is done when that run is: the loop
 * drains (store jobs in flight) and ends. */
static void single_run_over(struct durin_worker *w)
{
  if (!w->nruns && !w->stopping)
    start_draining(w);
}

static void on_wake_async(uv_async_t *a)
{
  struct durin_worker *w = a->data;

  if (!w->stopping && !w->o.run_id)
    uv_timer_start(&w->t_claim, on_claim_timer, 0, 0);
}

void durin_worker_wake(struct durin_worker *w)
{
  uv_async_send(&w->async_wake);
}

void durin_worker_stop(struct durin_worker *w, int hard)
{
  w->stop_req = hard ? 2 : (w->stop_req ? 2 : 1);
  uv_async_send(&w->async_stop);
}

/* ---- setup ---- */

int durin_worker_new(struct durin_store *s, const struct durin_worker_opts *o,
                     struct durin_worker **out, struct durin_err *err)
{
  struct durin_worker *w = calloc(1, sizeof(*w));
  int i;

  if (!w)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  w->s = s;
  w->o = *o;
  snprintf(w->owner, sizeof(w->owner), "%s", o->owner);
  w->o.owner = w->owner;
  if (o->run_id) {
    snprintf(w->run_id, sizeof(w->run_id), "%s", o->run_id);
    w->o.run_id = w->run_id;
    w->o.max_runs = 1;
    w->res.status = DURIN_RUN_RUNNING;
  }
  if (w->o.max_runs <= 0)
    w->o.max_runs = 1000;
  if (w->o.lease_ttl_ms <= 0)
    w->o.lease_ttl_ms = 15000;
  if (w->o.poll_ms <= 0)
    w->o.poll_ms = 200;
  for (i = 0; i < o->nlimits && i < 8; i++) {
    snprintf(w->rls[i].provider, sizeof(w->rls[i].provider), "%s",
             o->limits[i].provider);
    durin_ratelimit_init(&w->rls[i].rl, o->limits[i].rpm, o->limits[i].tpm,
                         durin_now_ms());
    w->nrl++;
  }
  if (uv_loop_init(&w->loop)) {
    free(w);
    return durin_err_set(err, DURIN_EIO, "cannot start an event loop");
  }
  w->http = uvh_new(&w->loop);
  if (!w->http) {
    uv_loop_close(&w->loop);
    free(w);
    return durin_err_set(err, DURIN_ENOMEM, "cannot start the HTTP client");
  }
  w->wm = durin__wmetrics_new(o->metrics);
  uv_timer_init(&w->loop, &w->t_claim);
  uv_timer_init(&w->loop, &w->t_beat);
  uv_timer_init(&w->loop, &w->t_signal);
  uv_timer_init(&w->loop, &w->t_watchdog);
  uv_prepare_init(&w->loop, &w->prep);
  uv_check_init(&w->loop, &w->check);
  uv_async_init(&w->loop, &w->async_stop, on_stop);
  uv_async_init(&w->loop, &w->async_wake, on_wake_async);
  w->async_wake.data = w;
  w->started_ms = durin_now_ms();
  w->t_claim.data = w->t_beat.data = w->t_signal.data = w;
  w->t_watchdog.data = w->prep.data = w->check.data = w;
  w->async_stop.data = w;
  *out = w;
  return 0;
}

static void pool_log(void *arg, const char *line)
{
  wlog(arg, "%s", line);
}

int durin_worker_run(struct durin_worker *w)
{
  int64_t beat = w->o.lease_ttl_ms / 3;

  uv_prepare_start(&w->prep, on_prepare);
  uv_check_start(&w->check, on_check);
  if (w->o.mcp_servers && w->o.mcp_servers->nmcp)
    w->mcp_pool =
        wmcp_pool_start(&w->loop, w->http, w->o.mcp_servers, pool_log, w);
  if (w->o.run_id)
    take_run(w);
  else
    uv_timer_start(&w->t_claim, on_claim_timer, 0, 0);
  /* A fleet worker answers the roll call at once, not a beat later. */
  uv_timer_start(&w->t_beat, on_beat_timer, w->o.run_id ? (uint64_t)beat : 0,
                 (uint64_t)beat);
  wake_open(w);
  uv_timer_start(&w->t_signal, on_signal_timer, 250, 250);
  if (w->o.watchdog)
    uv_timer_start(&w->t_watchdog, on_watchdog_timer, 0, 1000);
  if (w->o.run_id)
    wlog(w, "worker %s: run %s only, lease %lld ms%s", w->owner, w->o.run_id,
         (long long)w->o.lease_ttl_ms, w->o.watchdog ? ", watchdog on" : "");
  else
    wlog(w, "worker %s: up to %d runs at once, lease %lld ms%s", w->owner,
         w->o.max_runs, (long long)w->o.lease_ttl_ms,
         w->o.watchdog ? ", watchdog on" : "");
  uv_run(&w->loop, UV_RUN_DEFAULT);
  /* A clean stop leaves the roll call; a crash leaves a row whose
   * heartbeat ages (the API shows how long ago it beat). */
  if (!w->o.run_id && w->stop_req != 2)
    durin_store_worker_gone(w->s, w->owner, NULL);
  return 0;
}

void durin_worker_stats(const struct durin_worker *w,
                        struct durin_worker_stats *out)
{
  *out = w->st;
  out->live = w->nlive;
  out->waiting = w->nwaiting;
}

int durin_worker_result(const struct durin_worker *w,
                        struct durin_worker_result *res, struct durin_err *err)
{
  *res = w->res;
  if (!w->lost)
    return 0;
  if (err)
    *err = w->lost_err;
  return w->lost_err.code;
}

void durin_worker_free(struct durin_worker *w)
{
  if (!w)
    return;
  if (!w->closing)
    close_loop_handles(w);
  /* A hard stop leaves runs behind: their memory goes with the process. */
  uv_run(&w->loop, UV_RUN_NOWAIT);
  uv_loop_close(&w->loop);
  durin__wmetrics_free(w->wm);
  free(w);
}
