/*
 * The single-run driver. Every write for the run is fenced on the epoch
 * taken when the run was claimed (DESIGN 3.2) and renews the lease.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/driver.h"
#include "durin/util.h"

struct drv {
  struct durin_store *s;
  const char *run_id;
  uint64_t epoch;
  const struct durin_driver_opts *o;
  int cancelled; /* the run's cancel flag was seen set */
  int64_t next_cancel_check;
  int64_t next_renew;
  struct durin_stop model_stop, tool_stop;
  struct durin_run_policy policy;
  int fence_cancel; /* the cancel flag, as the last commit's fence saw it */
};

/*
 * Whether `durin cancel` flagged the run. Every fenced write reports the
 * flag; in between, the store is asked at most twice a second (while a
 * tool or model call is in flight), so a cancel arrives within a second.
 */
static int cancel_requested(struct drv *d)
{
  struct durin_run_info ri;
  int64_t now = durin_mono_ms();

  if (d->cancelled || now < d->next_cancel_check)
    return d->cancelled;
  d->next_cancel_check = now + 500;
  /* A long tool or model call writes nothing: heartbeat, or a watchdog
   * would take the run from us while we are still driving it. */
  if (now >= d->next_renew) {
    d->next_renew = now + d->o->lease_ttl_ms / 3;
    durin_store_lease_renew(d->s, d->o->owner,
                            durin_now_ms() + d->o->lease_ttl_ms, NULL, NULL,
                            NULL);
  }
  if (durin_store_run_get(d->s, d->run_id, &ri, NULL) == 0) {
    d->cancelled = ri.cancel_requested;
    durin_run_info_clear(&ri);
  }
  return d->cancelled;
}

/* Tools stop for a cancel only: a signal waits for the step to end. */
static int tool_should_stop(void *arg)
{
  return cancel_requested(arg);
}

/* A model call is dropped for either: asking again later is harmless. */
static int model_should_stop(void *arg)
{
  struct drv *d = arg;

  return (d->o->stop && *d->o->stop) || cancel_requested(d);
}

static void notice(struct drv *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void notice(struct drv *d, const char *fmt, ...)
{
  char msg[600];
  va_list ap;

  if (!d->o->on_notice)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  d->o->on_notice(d->o->arg, msg);
}

/*
 * Every transaction this driver opens starts with the fence: if another
 * process claimed the run since we did, nothing we are about to write may
 * land. The fence also pushes the lease forward, so steady progress is the
 * heartbeat.
 */
static int begin_fenced(struct drv *d, struct durin_txn **txn,
                        struct durin_err *err)
{
  int r = durin_txn_begin(d->s, txn, err);

  if (r)
    return r;
  /* Each transaction here writes for this run only: the server checks
   * the fence with the writes, and a lost lease fails the commit. */
  d->fence_cancel = 0;
  r = durin_txn_fence_deferred(*txn, d->run_id, d->epoch,
                               durin_now_ms() + d->o->lease_ttl_ms,
                               &d->fence_cancel, err);
  if (r) {
    durin_txn_rollback(*txn);
    *txn = NULL;
  }
  return r;
}

/* Commits txn if the writes in it went well (r == 0), else rolls it back;
 * returns the first error. */
static int end_txn(struct drv *d, struct durin_txn *txn, int r,
                   struct durin_err *err)
{
  if (r) {
    durin_txn_rollback(txn);
    return r;
  }
  r = durin_txn_commit(txn, err);
  if (!r && d->fence_cancel)
    d->cancelled = 1;
  return r;
}

static void on_retry(void *arg, int attempt, int64_t delay_ms, const char *why)
{
  notice(arg, "model call failed (%s); retry %d in %lld ms", why, attempt,
         (long long)delay_ms);
}

/*
 * The model call. Nothing is written here: a response lost in a crash is
 * simply asked for again (model calls are at-least-once, DESIGN 3.6). It
 * becomes durable with the step's first ledger intent or its commit.
 */
static int do_model(struct drv *d, struct durin_harness *h,
                    const struct durin_action *act, struct durin_err *err)
{
  const struct durin_usage *u = durin_harness_usage(h);
  struct durin_model_response resp;
  struct durin_completion c;
  struct durin_call_stats stats;
  struct durin_err merr = { 0 };
  int64_t left = act->model.cfg->max_retries - u->retries;
  int r;

  memset(&c, 0, sizeof(c));
  memset(&resp, 0, sizeof(resp));
  r = durin_model_call(&act->model, &left, &stats, on_retry, d, &d->model_stop,
                       &resp, &merr);
  c.now_ms = durin_now_ms();
  c.retries = stats.retries;
  if (r == DURIN_ECANCELED && !d->cancelled)
    return r; /* stopping: the call is simply asked again on resume */
  if (r == DURIN_ECANCELED)
    durin_harness_cancel(h, "cancelled by 'durin cancel'");
  if (r) {
    c.kind = DURIN_DONE_MODEL_ERROR;
    c.error = merr.msg;
    return durin_harness_complete(h, &c);
  }
  durin_fault_point("model_response");
  c.kind = DURIN_DONE_MODEL;
  c.resp = &resp;
  r = durin_harness_complete(h, &c);
  durin_model_response_clear(&resp);
  (void)err;
  return r;
}

/* The intent of a call with side effects, durable before the call starts;
 * with the step's first one, the model response that asked for it. */
static int do_intent(struct drv *d, struct durin_harness *h,
                     const struct durin_action *act, struct durin_err *err)
{
  struct durin_completion c;
  struct durin_txn *txn;
  int i, r;

  r = begin_fenced(d, &txn, err);
  if (r)
    return r;
  if (act->pending)
    r = durin_txn_pending_put(txn, d->run_id, act->step, act->pending, err);
  for (i = 0; !r && i < act->nintents; i++)
    r = durin_txn_ledger_intent(txn, &act->intents[i], err);
  r = end_txn(d, txn, r, err);
  if (r)
    return r;
  durin_fault_point("ledger_intent");
  memset(&c, 0, sizeof(c));
  c.kind = DURIN_DONE_INTENT;
  c.now_ms = durin_now_ms();
  return durin_harness_complete(h, &c);
}

/* Runs the tool. The tool_exit fault point sits between the call's end and
 * its outcome: the window in which a crash leaves the outcome unknown. */
static int do_tool(struct drv *d, struct durin_harness *h,
                   const struct durin_action *act)
{
  struct durin_tool_result res;
  struct durin_completion c;
  struct durin_tool_ctx ctx = act->tool_ctx;
  int r;

  ctx.stop = &d->tool_stop;
  ctx.box.sandbox = d->o->sandbox;
  durin_tool_exec(act->tool, &ctx, act->args, &res);
  durin_fault_point("tool_exit");
  memset(&c, 0, sizeof(c));
  c.kind = DURIN_DONE_TOOL;
  c.now_ms = durin_now_ms();
  c.tool = &res;
  r = durin_harness_complete(h, &c);
  if (d->cancelled)
    durin_harness_cancel(h, "cancelled by 'durin cancel'");
  return r;
}

static int do_outcome(struct drv *d, struct durin_harness *h,
                      const struct durin_action *act, struct durin_err *err)
{
  struct durin_completion c;
  struct durin_txn *txn;
  int r;

  r = begin_fenced(d, &txn, err);
  if (r)
    return r;
  r = durin_txn_ledger_outcome(txn, d->run_id, act->step, act->call,
                               act->outcome, durin_now_ms(), err);
  r = end_txn(d, txn, r, err);
  if (r)
    return r;
  durin_fault_point("ledger_outcome");
  memset(&c, 0, sizeof(c));
  c.kind = DURIN_DONE_OUTCOME;
  c.now_ms = durin_now_ms();
  return durin_harness_complete(h, &c);
}

/* The acceptance checks, in order, each in the workspace with its own
 * timeout. They are re-run after a crash: checks must only read. */
static int do_checks(struct drv *d, struct durin_harness *h,
                     const struct durin_spec *spec)
{
  struct durin_proc_box box = { d->o->sandbox, &spec->sandbox };
  struct durin_check_result *cr =
      calloc((size_t)spec->nchecks + 1, sizeof(*cr));
  struct durin_tool_result *tr = calloc((size_t)spec->nchecks + 1, sizeof(*tr));
  struct durin_completion c;
  int i, r;

  for (i = 0; i < spec->nchecks; i++) {
    cr[i].name = spec->checks[i].name;
    if (durin_proc_run(&box, spec->workspace, spec->checks[i].run, NULL,
                       spec->checks[i].timeout_ms, (size_t)spec->output_cap,
                       NULL, &tr[i])) {
      cr[i].ok = 0;
      cr[i].exit_code = -1;
      cr[i].output = "the check could not be started";
      continue;
    }
    /* Default FAIL: only a clean exit 0 within the time limit passes. */
    cr[i].ok = tr[i].ok;
    cr[i].exit_code = tr[i].exit_code;
    cr[i].timed_out = tr[i].timed_out;
    cr[i].output = tr[i].output;
  }
  durin_fault_point("checks_done");
  memset(&c, 0, sizeof(c));
  c.kind = DURIN_DONE_CHECKS;
  c.now_ms = durin_now_ms();
  c.checks = cr;
  c.nchecks = spec->nchecks;
  r = durin_harness_complete(h, &c);
  for (i = 0; i < spec->nchecks; i++)
    durin_tool_result_clear(&tr[i]);
  free(tr);
  free(cr);
  return r;
}

/*
 * The step's one transaction (DESIGN 3.1): its events, the new checkpoint,
 * the run row, and the end of the pending step. Events are shown only once
 * they are durable.
 */
static int do_commit(struct drv *d, struct durin_harness *h,
                     struct durin_action *act, struct durin_err *err)
{
  struct durin_completion c;
  struct durin_txn *txn;
  size_t i;
  int r;

  r = begin_fenced(d, &txn, err);
  if (r)
    return r;
  r = durin_commit_write(txn, d->run_id, act, err);
  r = end_txn(d, txn, r, err);
  if (r)
    return r;
  if (d->o->on_event)
    for (i = 0; i < act->nevents; i++)
      d->o->on_event(d->o->arg, &act->events[i]);
  durin_fault_point("after_commit");
  memset(&c, 0, sizeof(c));
  c.kind = DURIN_DONE_COMMIT;
  c.now_ms = durin_now_ms();
  return durin_harness_complete(h, &c);
}

/* The policy's decision about the next call: no I/O beyond reading the
 * workspace's links, so it is made here and now. */
static int do_policy(struct drv *d, struct durin_harness *h,
                     const struct durin_action *act)
{
  struct durin_policy_decision dec;
  struct durin_completion c;

  durin_run_policy_decide(&d->policy, act, &dec);
  memset(&c, 0, sizeof(c));
  c.kind = DURIN_DONE_POLICY;
  c.now_ms = durin_now_ms();
  c.decision = &dec;
  return durin_harness_complete(h, &c);
}

/* Lets go of the run without ending it (SIGINT/SIGTERM). */
static int release(struct drv *d, struct durin_err *err)
{
  struct durin_run_update u;
  struct durin_txn *txn;
  int r;

  memset(&u, 0, sizeof(u));
  u.started_ms = -1;
  u.finished_ms = -1;
  u.release_lease = 1;
  u.now_ms = durin_now_ms();
  r = begin_fenced(d, &txn, err);
  if (r)
    return r;
  r = durin_txn_run_update(txn, d->run_id, &u, err);
  return end_txn(d, txn, r, err);
}

/* Stops driving on request: the lease is released, the run stays running. */
static int let_go(struct drv *d, struct durin_drive_result *res,
                  struct durin_err *err)
{
  int r = release(d, err);

  res->stopped = 1;
  res->status = DURIN_RUN_RUNNING;
  snprintf(res->reason, sizeof(res->reason),
           "stopped by signal; resume with 'durin resume %s'", d->run_id);
  return r;
}

/*
 * Claim, restore, then perform the harness's actions until it is done.
 * Cancellation and the stop flag are looked at between steps only, so a
 * step is never cut in half by them.
 */
int durin_drive(struct durin_store *s, const char *run_id,
                const struct durin_driver_opts *o,
                struct durin_drive_result *res, struct durin_err *err)
{
  struct durin_run_info ri;
  struct durin_spec spec;
  struct durin_harness *h = NULL;
  struct drv d;
  int r;

  memset(res, 0, sizeof(*res));
  memset(&d, 0, sizeof(d));
  memset(&spec, 0, sizeof(spec));
  d.s = s;
  d.run_id = run_id;
  d.o = o;
  d.model_stop.fn = model_should_stop;
  d.model_stop.arg = &d;
  d.tool_stop.fn = tool_should_stop;
  d.tool_stop.arg = &d;
  r = durin_store_run_get(s, run_id, &ri, err);
  if (r)
    return r;
  if (durin_run_status_terminal(ri.status)) {
    res->status = ri.status;
    snprintf(res->reason, sizeof(res->reason), "%s",
             ri.reason ? ri.reason : "");
    durin_run_info_clear(&ri);
    return 0;
  }
  r = durin_spec_parse(ri.spec_json, NULL, &spec, err);
  if (r) {
    durin_err_prefix(err, "stored spec of run '%s'", run_id);
    goto out;
  }
  r = durin_run_policy_init(&d.policy, &spec, o->policy, err);
  if (r) {
    durin_err_prefix(err, "policy of run '%s'", run_id);
    goto out;
  }
  r = durin_store_run_claim(s, run_id, o->owner, durin_now_ms(),
                            o->lease_ttl_ms, &d.epoch, err);
  if (r)
    goto out;
  r = durin_harness_new(&spec, run_id, &h, err);
  if (r)
    goto out;
  if (o->on_transition)
    durin_harness_on_transition(h, o->on_transition, o->arg);
  r = durin_run_load(s, run_id, h, ri.attempt + 1, err);
  if (r)
    goto out;
  if (o->resolve >= 0)
    durin_harness_resolve(h, o->resolve);

  for (;;) {
    struct durin_action act;

    if (durin_harness_state(h) == DURIN_STEP_IDLE) {
      if (o->stop && *o->stop) {
        r = let_go(&d, res, err);
        goto out;
      }
      /* Cancellation is a flag on the row: every fenced write reports it,
       * and it is read twice a second while a call is in flight. */
      if (cancel_requested(&d))
        durin_harness_cancel(h, "cancelled by 'durin cancel'");
    }
    durin_harness_next(h, durin_now_ms(), &act);
    if (o->on_action)
      o->on_action(o->arg, &act, durin_harness_usage(h), durin_harness_step(h));
    switch (act.kind) {
    case DURIN_ACT_MODEL:
      r = do_model(&d, h, &act, err);
      break;
    case DURIN_ACT_POLICY:
      r = do_policy(&d, h, &act);
      break;
    case DURIN_ACT_INTENT:
      r = do_intent(&d, h, &act, err);
      break;
    case DURIN_ACT_TOOL:
      r = do_tool(&d, h, &act);
      break;
    case DURIN_ACT_OUTCOME:
      r = do_outcome(&d, h, &act, err);
      break;
    case DURIN_ACT_CHECKS:
      r = do_checks(&d, h, &spec);
      break;
    case DURIN_ACT_COMMIT:
      r = do_commit(&d, h, &act, err);
      break;
    case DURIN_ACT_DONE:
    default:
      res->status = act.status;
      snprintf(res->reason, sizeof(res->reason), "%s",
               act.reason ? act.reason : "");
      r = 0;
      goto out;
    }
    if (r == DURIN_ECANCELED && o->stop && *o->stop)
      r = let_go(&d, res, err);
    if (r || res->stopped)
      goto out;
  }
out:
  durin_harness_free(h);
  durin_run_policy_clear(&d.policy);
  durin_spec_clear(&spec);
  durin_run_info_clear(&ri);
  return r;
}
