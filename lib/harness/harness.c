/*
 * The run state machine. See durin/harness.h for the contract; this file
 * is the transition function. It does no I/O: drivers perform the actions
 * it returns and report completions back.
 *
 * One step:
 *   IDLE --budget ok--> AWAIT_MODEL --resp--> [AWAIT_INTENT] --> DISPATCH
 *   DISPATCH --next call--> AWAIT_TOOL --> [AWAIT_OUTCOME] --> DISPATCH
 *   DISPATCH --finish called--> AWAIT_CHECKS --> COMMIT
 *   DISPATCH --all calls done--> COMMIT --> AWAIT_COMMIT --> IDLE | ENDED
 *   COMMIT --calls may have written, git on--> AWAIT_SNAPSHOT --> COMMIT
 * Bracketed states happen only for tools with side effects.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "durin/harness.h"
#include "durin/secret.h"
#include "durin/util.h"
#include "harness/eval.h"
#include "harness/guard.h"
#include "harness/summary.h"
#include "harness/window.h"

enum call_state {
  CALL_NEW,      /* not yet run */
  CALL_RESOLVED, /* result known (ran, reused, refused or skipped) */
};

struct call {
  struct durin_tool_call *tc;
  const struct durin_tool_def *def;
  enum durin_effect effect;
  json_t *args;   /* validated arguments */
  json_t *result; /* the tool_result event data */
  enum call_state state;
  int intent;        /* a ledger intent exists for it */
  int indeterminate; /* intent without outcome, found on resume */
  int contained;     /* its intent says it runs in a layer of its own */
  int repeat_noted;  /* the call_repeated event is out */
  int ran;           /* it ran (or may have: started before a crash) */
  int counted;       /* its result counts in the breakers (guard.c): the
                        agent's call ran, or its recorded outcome is reused */
  char args_hash[65];
  char idem_key[96];
  /* The policy's say, and a person's decision when it asked. */
  int policy_done;
  struct durin_policy_decision dec;
  json_t *policy_ev; /* logged just before the call's result */
  int cleared;       /* an approval covers the call: it may run */
  int edited;        /* it runs with arguments a person edited */
  int have_approval;
  enum durin_approval_state ap_state;
  char ap_id[32];
  char *ap_args; /* what was approved, as recorded */
  char ap_args_hash[DURIN_APPROVAL_MAC_LEN], ap_call_hash[65];
  char *ap_by, *ap_comment, *ap_on_expiry;
};

struct durin_harness {
  const struct durin_spec *spec;
  char run_id[32];
  enum durin_step_state state;
  struct durin_checkpoint ck;
  int64_t attempt;
  int restored;
  /* Decisions are signed under this key (durin_harness_set_approval_key). */
  int have_apkey;
  unsigned char apkey[DURIN_SECRET_KEY_BYTES];

  json_t *tools; /* schemas for the model */
  /* Tools of the run's MCP servers (durin_harness_add_tools; borrowed). */
  const struct durin_tool_def *const *extra;
  int nextra;
  struct durin__window *win; /* the context window (window.h) */
  json_t *compactions;       /* compaction events not yet committed */

  /* The evaluator (docs/internals/evaluator.md). Its session has a spec
   * of its own (the run's, with its system prompt, its first message as
   * the goal and its model), tools and a window, built when an
   * evaluation opens or is restored; ck.eval says one is open. */
  struct durin_spec espec;
  char *esystem;
  char *econtext; /* the evaluation's first message (owned) */
  json_t *etools; /* schemas */
  const struct durin_tool_def *edefs[8];
  int nedefs;
  struct durin__window *ewin;
  int eval_step;   /* the step in progress is the evaluator's */
  int eval_open;   /* this step's finish was accepted: evaluate */
  char *eval_diff; /* DONE_DIFF's text, for the context */
  int eval_diff_done;
  int eval_cut;        /* the evaluator's call runs to the evaluation's end */
  int eval_rebase;     /* restored: its clock goes on from its last commit */
  json_t *eval_checks; /* the accepted checks' results */
  json_t *eplan;       /* an empty plan: the evaluator has none */

  /* Phases and context resets (docs/internals/context.md). */
  json_t *ptools;      /* the current phase's tool schemas (NULL: h->tools) */
  json_t *stools;      /* a summary call's: [artifact] */
  size_t limit;        /* the requests' size limit now (ctx_limit) */
  int sum_kind;        /* the step in progress is a summary (SUM_*) */
  size_t sum_before;   /* the request that called for a reset, in bytes */
  json_t *sum_comps;   /* the compactions of this summary, for its facts */
  int phase_met;       /* this step met its phase's end ... */
  char phase_why[300]; /* ... for this reason */
  int phase_checking;  /* the phase's end check is running */
  int phase_checked;   /* ... and ran in this step */

  /* The last model call: what it sent and what the provider counted, to
   * estimate the next call's input tokens (budget.c). */
  size_t req_bytes, last_req_bytes;
  /* context.reset_at in tokens: the step's request's text bytes (what
   * the counts add for the wire left out), for ck.density; 0: none. */
  int64_t step_req_text;
  size_t step_req_bytes; /* the step's request, as the window counts it */
  int64_t last_in_tokens;
  /* usage.tool_calls and eval_usage.tool_calls as of the last checkpoint:
   * a step's model_response event records how many calls the step added
   * (replay.c reads it). */
  int64_t ck_tool_calls, ck_eval_tool_calls;

  /* The step in progress. */
  struct durin_model_response resp;
  int have_resp;
  int64_t step_retries;
  int64_t step_model_ms; /* the step's model call, as the driver timed it */
  double step_cost;      /* the response's, at the run's prices */
  struct call *calls;
  int ncalls;
  int cur;
  int pending_written; /* the step's response is durable with an intent */
  int finish_call;     /* index of the finish call, or -1 */
  int checks_done;
  json_t *events; /* [[type, data], ...] for the commit */
  int ended;      /* the step ends the run */
  enum durin_run_status end_status;
  char end_reason[1024];
  int cancel;
  char cancel_reason[256];
  int resolve;     /* -1 none, 0 skip, 1 retry */
  int sandboxed;   /* the driver runs commands in the sandbox */
  int step_counts; /* a model response belongs to this commit */
  int needs_human; /* this commit stops the run for a human */
  int waiting;     /* this commit parks the run until a person decides */

  /* Git checkpoints (durin_harness_set_git). */
  int git;
  int git_full;  /* the next snapshot looks at the whole workspace */
  int snap_done; /* this commit's snapshot was answered */
  char *snap_msg, *snap_calls;
  char **snap_paths;
  int nsnap_paths;
  json_t *notes; /* [[type, data], ...] for the next commit */

  /* Buffers handed out in actions. */
  struct durin_ledger_entry intent;
  char *intent_args;
  struct durin_approval approval;
  char *ap_text[3]; /* the request's arguments, reason, rule */
  char *pending_text;
  char *outcome_text;
  struct durin_event *ev;
  size_t nev;
  char **ev_data;
  char *ck_text;
  /* The checkpoint's handoff as JSON text, made again only when a
   * compaction or a restore changed it (NULL: to be made). */
  char *handoff_text;
  json_t *req_msgs;

  void (*on_transition)(void *, enum durin_step_state, enum durin_step_state);
  void *on_transition_arg;
};

static const char *const state_names[] = {
  [DURIN_STEP_START] = "start",
  [DURIN_STEP_IDLE] = "idle",
  [DURIN_STEP_AWAIT_MODEL] = "await_model",
  [DURIN_STEP_AWAIT_INTENT] = "await_intent",
  [DURIN_STEP_DISPATCH] = "dispatch",
  [DURIN_STEP_AWAIT_POLICY] = "await_policy",
  [DURIN_STEP_AWAIT_TOOL] = "await_tool",
  [DURIN_STEP_AWAIT_OUTCOME] = "await_outcome",
  [DURIN_STEP_AWAIT_CHECKS] = "await_checks",
  [DURIN_STEP_AWAIT_DIFF] = "await_diff",
  [DURIN_STEP_AWAIT_SNAPSHOT] = "await_snapshot",
  [DURIN_STEP_COMMIT] = "commit",
  [DURIN_STEP_AWAIT_COMMIT] = "await_commit",
  [DURIN_STEP_ENDED] = "ended",
};

const char *durin_step_state_name(enum durin_step_state s)
{
  if ((unsigned)s >= sizeof(state_names) / sizeof(*state_names) ||
      !state_names[s])
    return "unknown";
  return state_names[s];
}

static void set_state(struct durin_harness *h, enum durin_step_state s)
{
  if (h->on_transition && s != h->state)
    h->on_transition(h->on_transition_arg, h->state, s);
  h->state = s;
}

void durin_harness_on_transition(struct durin_harness *h,
                                 void (*cb)(void *arg, enum durin_step_state a,
                                            enum durin_step_state b),
                                 void *arg)
{
  h->on_transition = cb;
  h->on_transition_arg = arg;
}

/* ---- phases and context resets (docs/internals/context.md) ---- */

enum { SUM_NONE, SUM_PHASE, SUM_RESET };

/* The phase the run is in, or NULL when the spec has none. */
static const struct durin_spec_phase *cur_phase(const struct durin_harness *h)
{
  int64_t k;

  if (!h->spec->nphases)
    return NULL;
  k = json_integer_value(json_object_get(h->ck.phase, "index"));
  if (k < 0 || k >= h->spec->nphases)
    k = h->spec->nphases - 1;
  return &h->spec->phases[k];
}

static int resets(const struct durin_harness *h)
{
  return h->spec->reset_tokens || h->spec->reset_share > 0;
}

/*
 * The requests' size limit in bytes: context.max_bytes, the phase's share
 * of it, and context.reset_at. A cap in tokens is counted as the budget
 * counts a request's tokens: a third of its bytes, or fewer bytes per
 * token when the provider said so for the last call.
 */
static size_t ctx_limit(const struct durin_harness *h,
                        const struct durin_spec_phase *p)
{
  const struct durin_spec *s = h->spec;
  size_t limit = (size_t)s->context_bytes, r = 0;

  if (p)
    limit = (size_t)(p->share * (double)s->context_bytes);
  if (s->reset_share > 0) {
    r = (size_t)(s->reset_share * (double)s->context_bytes);
  } else if (s->reset_tokens) {
    double bpt = 3.0;

    /* Against the request's own text, not what the counts add for the
     * wire: the provider counts the text. */
    if (h->ck.density[1] > 0 && h->ck.density[0] > 0 &&
        (double)h->ck.density[0] / (double)h->ck.density[1] < bpt)
      bpt = (double)h->ck.density[0] / (double)h->ck.density[1];
    r = (size_t)((double)s->reset_tokens * bpt);
  }
  limit = r && r < limit ? r : limit;
  /* A share too small for anything still means a limit (refused when the
   * run starts), never "none". */
  return limit ? limit : 1;
}

/* Whether the phase lets the agent call name (update_plan and run_status
 * always: they only keep the plan or read the run). */
static int phase_allows(const struct durin_spec_phase *p, const char *name)
{
  int i;

  if (!p || !p->ntools || !strcmp(name, "update_plan") ||
      !strcmp(name, "run_status"))
    return 1;
  for (i = 0; i < p->ntools; i++)
    if (!strcmp(p->tools[i], name))
      return 1;
  return 0;
}

/* The tool schemas a request of phase p offers. */
static json_t *phase_tools(const struct durin_harness *h,
                           const struct durin_spec_phase *p)
{
  json_t *t, *out;
  size_t i;

  if (!p || !p->ntools)
    return NULL;
  out = json_array();
  json_array_foreach(h->tools, i, t) {
    if (phase_allows(p, json_string_value(json_object_get(t, "name"))))
      json_array_append(out, t);
  }
  return out;
}

/* The pinned message's part about phases and resets, made again. */
static void extra_update(struct durin_harness *h)
{
  char *text;

  if (!h->spec->nphases && !resets(h))
    return;
  /* Its text, escaped in JSON, within the window's share for it. */
  text =
      durin__summary_render(h->spec, h->ck.phase, h->ck.artifacts, h->ck.reset,
                            durin__window_extra_cap(h->win) * 3 / 4);
  durin__window_set_extra(h->win, text);
  free(text);
}

static void phase_end_check(struct durin_harness *h);
static void phase_check_done(struct durin_harness *h,
                             const struct durin_completion *c);

/* Sizes the window for phase p (its tools, its limit). */
static int phase_size(struct durin_harness *h, const struct durin_spec_phase *p,
                      struct durin_err *err)
{
  json_t *pt = phase_tools(h, p);
  int r;

  h->limit = ctx_limit(h, p);
  r = durin__window_limit(h->win, h->spec, pt ? pt : h->tools, h->limit, err);
  if (r && p) {
    char msg[sizeof(err->msg)];

    snprintf(msg, sizeof(msg), "%s", err->msg);
    durin_err_set(err, r, "phase '%s': %.400s", p->name, msg);
  }
  json_decref(h->ptools);
  h->ptools = pt;
  return r;
}

/* Sizes the window for every phase (the last one first, to refuse a
 * spec that cannot work before the run starts), then the current one. */
static int phases_check(struct durin_harness *h, struct durin_err *err)
{
  int k, r;

  if (!h->spec->nphases && !resets(h))
    return 0;
  for (k = h->spec->nphases - 1; k >= 0; k--)
    if ((r = phase_size(h, &h->spec->phases[k], err)))
      return r;
  if ((r = phase_size(h, cur_phase(h), err)))
    return r;
  extra_update(h);
  return 0;
}

int durin_harness_new(const struct durin_spec *spec, const char *run_id,
                      struct durin_harness **out, struct durin_err *err)
{
  struct durin_harness *h = calloc(1, sizeof(*h));
  int i;

  if (!h)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  h->spec = spec;
  snprintf(h->run_id, sizeof(h->run_id), "%s", run_id);
  h->state = DURIN_STEP_START;
  h->resolve = -1;
  h->finish_call = -1;
  h->ck.plan = json_array();
  h->ck.rejections = json_object();
  h->compactions = json_array();
  h->events = json_array();
  h->notes = json_array();
  h->tools = json_array();
  for (i = 0; i < spec->ntools; i++) {
    const struct durin_tool_def *def = durin_tool_find(spec->tools[i].name);

    if (!def) {
      durin_harness_free(h);
      return durin_err_set(err, DURIN_ESPEC, "unknown tool '%s'",
                           spec->tools[i].name);
    }
    json_array_append_new(
        h->tools, json_pack("{s:s,s:s,s:o}", "name", def->name, "description",
                            def->desc, "parameters", durin_tool_schema(def)));
  }
  if ((i = durin__window_new(spec, h->tools, &h->win, err)) ||
      (i = phases_check(h, err))) {
    durin_harness_free(h);
    return i;
  }
  h->stools = durin__summary_tools();
  *out = h;
  return 0;
}

int durin_harness_add_tools(struct durin_harness *h,
                            const struct durin_tool_def *const *defs, int n,
                            struct durin_err *err)
{
  int i, r;

  for (i = 0; i < n; i++)
    json_array_append_new(
        h->tools, json_pack("{s:s,s:s,s:o}", "name", defs[i]->name,
                            "description", defs[i]->desc ? defs[i]->desc : "",
                            "parameters", durin_tool_schema(defs[i])));
  if ((r = durin__window_tools(h->win, h->spec, h->tools, err)) ||
      (r = phases_check(h, err)))
    return r;
  h->extra = defs;
  h->nextra = n;
  return 0;
}

static void snapshot_free(struct durin_harness *h)
{
  int i;

  for (i = 0; i < h->nsnap_paths; i++)
    free(h->snap_paths[i]);
  free(h->snap_paths);
  free(h->snap_msg);
  free(h->snap_calls);
  h->snap_paths = NULL;
  h->nsnap_paths = 0;
  h->snap_msg = h->snap_calls = NULL;
  h->snap_done = 0;
}

static void step_reset(struct durin_harness *h)
{
  int i;

  snapshot_free(h);
  durin_model_response_clear(&h->resp);
  h->have_resp = 0;
  h->step_retries = 0;
  h->step_model_ms = 0;
  h->step_cost = 0;
  for (i = 0; i < h->ncalls; i++) {
    json_decref(h->calls[i].args);
    json_decref(h->calls[i].result);
    json_decref(h->calls[i].policy_ev);
    free(h->calls[i].ap_args);
    free(h->calls[i].ap_by);
    free(h->calls[i].ap_comment);
    free(h->calls[i].ap_on_expiry);
  }
  free(h->calls);
  h->calls = NULL;
  h->ncalls = 0;
  h->cur = 0;
  h->pending_written = 0;
  h->finish_call = -1;
  h->checks_done = 0;
  h->step_counts = 0;
  h->needs_human = 0;
  h->waiting = 0;
  h->eval_step = 0;
  h->sum_kind = 0;
  h->step_req_text = 0;
  h->step_req_bytes = 0;
  json_decref(h->sum_comps);
  h->sum_comps = NULL;
  h->phase_met = 0;
  h->phase_checking = 0;
  h->phase_checked = 0;
  h->eval_open = 0;
  h->eval_diff_done = 0;
  h->eval_cut = 0;
  free(h->eval_diff);
  h->eval_diff = NULL;
  json_decref(h->eval_checks);
  h->eval_checks = NULL;
  json_array_clear(h->events);
  free(h->intent_args);
  h->intent_args = NULL;
  for (i = 0; i < 3; i++) {
    free(h->ap_text[i]);
    h->ap_text[i] = NULL;
  }
  free(h->pending_text);
  h->pending_text = NULL;
  free(h->outcome_text);
  h->outcome_text = NULL;
}

/* The evaluator's session (harness fields e*), if one is built. */
static void eval_session_free(struct durin_harness *h)
{
  durin__window_free(h->ewin);
  h->ewin = NULL;
  json_decref(h->etools);
  h->etools = NULL;
  free(h->esystem);
  h->esystem = NULL;
  free(h->econtext);
  h->econtext = NULL;
}

static void commit_buffers_free(struct durin_harness *h)
{
  size_t i;

  for (i = 0; i < h->nev; i++)
    free(h->ev_data[i]);
  free(h->ev_data);
  free(h->ev);
  h->ev = NULL;
  h->ev_data = NULL;
  h->nev = 0;
  free(h->ck_text);
  h->ck_text = NULL;
}

void durin_harness_free(struct durin_harness *h)
{
  if (!h)
    return;
  step_reset(h);
  commit_buffers_free(h);
  free(h->handoff_text);
  durin_checkpoint_clear(&h->ck);
  durin__window_free(h->win);
  eval_session_free(h);
  json_decref(h->eplan);
  json_decref(h->ptools);
  json_decref(h->stools);
  json_decref(h->compactions);
  json_decref(h->events);
  json_decref(h->notes);
  json_decref(h->tools);
  json_decref(h->req_msgs);
  sodium_memzero(h->apkey, sizeof(h->apkey));
  free(h);
}

void durin_harness_set_approval_key(
    struct durin_harness *h, const unsigned char key[DURIN_SECRET_KEY_BYTES])
{
  h->have_apkey = key != NULL;
  if (key)
    memcpy(h->apkey, key, sizeof(h->apkey));
}

int durin_harness_restore(struct durin_harness *h, const char *checkpoint,
                          int64_t attempt, struct durin_err *err)
{
  struct durin_checkpoint c;
  int r = durin_checkpoint_parse(checkpoint, &c, err);

  if (r)
    return r;
  durin_checkpoint_clear(&h->ck);
  h->ck = c;
  h->ck_tool_calls = c.usage.tool_calls;
  h->ck_eval_tool_calls = c.eval_usage.tool_calls;
  free(h->handoff_text);
  h->handoff_text = NULL;
  h->attempt = attempt;
  h->eval_rebase = h->ck.eval != NULL;
  h->restored = 1;
  if ((r = phases_check(h, err)))
    return r;
  set_state(h, DURIN_STEP_IDLE);
  return 0;
}

int64_t durin_harness_window(const struct durin_harness *h)
{
  return h->ck.window_start;
}

static void add_event(struct durin_harness *h, const char *type, json_t *data)
{
  json_array_append_new(h->events, json_pack("[s,o]", type, data));
}

static int eval_session(struct durin_harness *h, const char *context,
                        struct durin_err *err);
static void route_event(struct durin_harness *h, const char *type, json_t *data,
                        int64_t seq);

int durin_harness_load_event(struct durin_harness *h,
                             const struct durin_event *ev,
                             struct durin_err *err)
{
  json_error_t je;
  json_t *data = json_loads(ev->data, 0, &je);

  if (!data)
    return durin_err_set(err, DURIN_EPARSE,
                         "event %lld of run '%s' is not JSON: %s",
                         (long long)ev->seq, h->run_id, je.text);
  /* The open evaluation's first message: its session starts from it
   * (earlier evaluations' events, before it, are no one's context). */
  if (!strcmp(ev->type, "evaluation_started") && h->ck.eval &&
      json_integer_value(json_object_get(data, "attempt")) ==
          json_integer_value(json_object_get(h->ck.eval, "attempt"))) {
    struct durin_err serr = { 0 };
    int r = eval_session(h, json_string_value(json_object_get(data, "context")),
                         &serr);

    json_decref(data);
    return r ? durin_err_set(err, r, "%s", serr.msg) : 0;
  }
  if (ev->seq >= h->ck.window_start)
    route_event(h, ev->type, data, ev->seq);
  json_decref(data);
  return 0;
}

void durin_harness_resolve(struct durin_harness *h, int retry)
{
  h->resolve = retry ? 1 : 0;
}

void durin_harness_cancel(struct durin_harness *h, const char *reason)
{
  h->cancel = 1;
  snprintf(h->cancel_reason, sizeof(h->cancel_reason), "%s",
           reason ? reason : "cancelled by request");
}

static json_t *result_json(struct call *c, const struct durin_tool_result *r,
                           int reused)
{
  json_t *j;

  j = json_pack("{s:s,s:s,s:s,s:b,s:s,s:i,s:b,s:b,s:I,s:b}", "call_id",
                c->tc->id, "name", c->tc->name, "effect",
                durin_effect_name(c->effect), "ok", r->ok, "output",
                r->output ? r->output : "", "exit_code", r->exit_code,
                "timed_out", r->timed_out, "truncated", r->truncated,
                "duration_ms", (json_int_t)r->duration_ms, "reused", reused);
  /* What the call did to the workspace, recorded with its outcome. */
  if (j && r->changes)
    json_object_set(j, "changes", r->changes);
  /* A secret the command held in its environment (an env grant, the
   * last resort): the log says which, never the value. */
  if (j && r->secrets_env)
    json_object_set(j, "secrets_env", r->secrets_env);
  /* Tools hand over sanitized text; should anything slip through, the
   * model still gets a result for its call instead of none at all. */
  if (!j && r->output) {
    struct durin_tool_result fb = *r;

    fb.ok = 0;
    fb.truncated = 1;
    fb.output = "error: the tool's output could not be recorded (not valid "
                "UTF-8 text)";
    j = result_json(c, &fb, reused);
  }
  return j;
}

static void resolve_call(struct call *c, int ok, const char *output)
{
  struct durin_tool_result r;

  memset(&r, 0, sizeof(r));
  r.ok = ok;
  r.exit_code = -1;
  r.output = (char *)output;
  json_decref(c->result);
  c->result = result_json(c, &r, 0);
  c->state = CALL_RESOLVED;
}

static void end_run(struct durin_harness *h, enum durin_run_status st,
                    const char *reason)
{
  h->ended = 1;
  h->end_status = st;
  snprintf(h->end_reason, sizeof(h->end_reason), "%s", reason ? reason : "");
}

/* Ends the run for a budget, why logged as the budget_exceeded event. */
static void end_over_budget(struct durin_harness *h, const char *why)
{
  add_event(h, "budget_exceeded", json_pack("{s:s}", "reason", why));
  end_run(h, DURIN_RUN_BUDGET_EXCEEDED, why);
}

static void do_commit_action(struct durin_harness *h, int64_t now,
                             struct durin_action *act);

/* ---- the phase's end, and the summary steps ---- */

/*
 * At the commit of the agent's step: did it end its phase? (update_plan
 * called, steps done, the check passed.) The checkpoint then says the
 * phase is due to end: the next step is its summary.
 */
static void phase_end_check(struct durin_harness *h)
{
  const struct durin_spec_phase *p = cur_phase(h);
  int64_t k = json_integer_value(json_object_get(h->ck.phase, "index"));
  json_t *ph;

  /* A run that ends here has no next phase; one a breaker stops for a
   * person goes on in it when resumed. */
  if (!p || k + 1 >= h->spec->nphases ||
      (h->ended && durin_run_status_terminal(h->end_status)) ||
      json_is_true(json_object_get(h->ck.phase, "due")))
    return;
  if (p->until == DURIN_UNTIL_STEPS &&
      h->ck.usage.steps - json_integer_value(
                              json_object_get(h->ck.phase, "started_step")) >=
          p->steps) {
    h->phase_met = 1;
    snprintf(h->phase_why, sizeof(h->phase_why),
             "%lld step(s) of the phase were done", (long long)p->steps);
  }
  if (!h->phase_met)
    return;
  ph = json_deep_copy(h->ck.phase);
  json_object_set_new(ph, "due", json_true());
  json_decref(h->ck.phase);
  h->ck.phase = ph;
  add_event(h, "phase_complete",
            json_pack("{s:I,s:s,s:s,s:O}", "index", (json_int_t)k, "phase",
                      p->name, "why", h->phase_why, "state", ph));
}

/* The phase's end check ran: it passed, or the phase goes on. */
static void phase_check_done(struct durin_harness *h,
                             const struct durin_completion *c)
{
  const struct durin_check_result *r = c->nchecks ? &c->checks[0] : NULL;
  const char *out = r && r->output ? r->output : "";
  size_t n = strlen(out);

  h->phase_checking = 0;
  /* The tail says why; never cut inside a UTF-8 sequence. */
  if (n > 2000) {
    out += n - 2000;
    while (((unsigned char)*out & 0xC0) == 0x80)
      out++;
  }
  add_event(h, "phase_check",
            json_pack("{s:s,s:b,s:i,s:b,s:s}", "phase", cur_phase(h)->name,
                      "ok", r && r->ok, "exit_code", r ? r->exit_code : -1,
                      "timed_out", r && r->timed_out, "output", out));
  if (r && r->ok) {
    h->phase_met = 1;
    snprintf(h->phase_why, sizeof(h->phase_why), "its check `%.200s` passed",
             cur_phase(h)->check.run);
  }
}

/* The run's count of summaries: the script provider's turn for them. */
static int64_t summaries(const struct durin_harness *h)
{
  return (int64_t)json_array_size(h->ck.artifacts) +
         json_integer_value(json_object_get(h->ck.reset, "count"));
}

static void summary_comp(struct durin_harness *h, json_t *comp)
{
  if (!comp)
    return;
  if (!h->sum_comps)
    h->sum_comps = json_array();
  json_array_append(h->sum_comps, comp);
  json_array_append_new(h->compactions, comp);
  free(h->handoff_text);
  h->handoff_text = NULL;
}

/*
 * A summary step: the model writes the phase's artifact or the reset's
 * handoff from the conversation, which is then cleared. Its request is
 * held within the limit as the agent's are: the oldest turns go first
 * (a compaction) when the question would not fit after them.
 */
static void summary_begin(struct durin_harness *h, int kind, int64_t now,
                          struct durin_action *act)
{
  const struct durin_spec_phase *p = cur_phase(h);
  char *ask = durin__summary_ask(kind == SUM_PHASE ? p->name : NULL);
  json_t *msg = json_pack("{s:s,s:s}", "role", "user", "content", ask);
  size_t fixed = durin__window_fixed(durin__summary_system, h->stools);
  size_t need, max_msgs = durin__window_max_messages(h->win);
  int tries;
  char *text;

  free(ask);
  h->sum_kind = kind;
  text = json_dumps(msg, JSON_COMPACT);
  json_decref(h->req_msgs);
  h->req_msgs =
      durin__window_request(h->win, h->ck.plan, h->ck.handoff, &h->req_bytes);
  /* The pinned message, the question and what a provider adds to it. */
  need = fixed + durin__window_pinned(h->win) + strlen(text) + 1 + 64;
  /* Dropping turns grows the handoff in the pinned message: fitted
   * again with it until the whole is within the limit. */
  for (tries = 0; tries < 4; tries++) {
    json_t *comp = durin__window_fit_within(
        h->win, &h->ck.window_start, &h->ck.handoff,
        h->limit > need ? h->limit - need : 0, max_msgs > 1 ? max_msgs - 1 : 0);

    if (!comp)
      break;
    summary_comp(h, comp);
    json_decref(h->req_msgs);
    h->req_msgs =
        durin__window_request(h->win, h->ck.plan, h->ck.handoff, &h->req_bytes);
    need = fixed + durin__window_pinned(h->win) + strlen(text) + 1 + 64;
  }
  free(text);
  json_array_append_new(h->req_msgs, msg);
  /* What this request sends, for the budget's estimate and the next. */
  h->req_bytes = need + durin__window_bytes(h->win);
  act->model.cfg = &h->spec->model;
  act->model.system = durin__summary_system;
  act->model.messages = h->req_msgs;
  act->model.tools = h->stools;
  act->model.turn = summaries(h);
  act->model.summary = 1;
  act->model.deadline_ms =
      h->spec->budget.wall_clock_ms ?
          h->ck.started_ms + h->spec->budget.wall_clock_ms :
          0;
  (void)now;
}

/* The summary arrived: the artifact or handoff is kept, the window is
 * cleared, and (at a phase's end) the next phase begins. */
static void summary_end(struct durin_harness *h)
{
  json_t *art = durin__summary_read(&h->resp), *ev;
  int64_t from;

  summary_comp(h, durin__window_fit_within(h->win, &h->ck.window_start,
                                           &h->ck.handoff, 0, 0));
  durin__summary_facts(art, h->ck.plan, h->sum_comps);
  json_object_set_new(art, "through_seq", json_integer(h->ck.window_start - 1));
  json_object_set_new(art, "step", json_integer(h->ck.usage.steps));
  if (h->sum_kind == SUM_PHASE) {
    const struct durin_spec_phase *p = cur_phase(h);
    int64_t k = json_integer_value(json_object_get(h->ck.phase, "index"));
    const struct durin_spec_phase *next = &h->spec->phases[k + 1];

    from = json_integer_value(json_object_get(h->ck.phase, "from_seq"));
    json_object_set_new(art, "phase", json_string(p->name));
    json_object_set_new(art, "index", json_integer(k));
    json_object_set_new(art, "from_seq", json_integer(from));
    durin__summary_keep(&h->ck.artifacts, art);
    json_decref(h->ck.phase);
    h->ck.phase =
        json_pack("{s:I,s:s,s:I,s:I,s:b}", "index", (json_int_t)(k + 1), "name",
                  next->name, "started_step", (json_int_t)h->ck.usage.steps,
                  "from_seq", (json_int_t)h->ck.window_start, "due", 0);
    ev = json_pack("{s:I,s:s,s:s,s:O,s:O}", "index", (json_int_t)k, "phase",
                   p->name, "next", next->name, "artifact", art, "state",
                   h->ck.phase);
    add_event(h, "phase_ended", ev);
    json_decref(art);
    /* The next phase's tools and share: sized when the run began. */
    {
      struct durin_err err = { 0 };

      phase_size(h, cur_phase(h), &err);
    }
  } else {
    int64_t count = json_integer_value(json_object_get(h->ck.reset, "count"));
    json_t *ho = json_object_get(h->ck.reset, "handoff");

    from = ho ? json_integer_value(json_object_get(ho, "through_seq")) + 1 : 1;
    json_object_set_new(art, "from_seq", json_integer(from));
    json_decref(h->ck.reset);
    /* Its step: the summary's, which this commit counts. */
    h->ck.reset = json_pack("{s:I,s:I,s:o}", "count", (json_int_t)(count + 1),
                            "step", (json_int_t)(h->ck.step + 1), "handoff",
                            durin__summary_brief(art));
    /* The handoff whole in the log, its brief in the checkpoint. */
    add_event(
        h, "context_reset",
        json_pack("{s:I,s:I,s:I,s:O,s:O}", "count", (json_int_t)(count + 1),
                  "request_bytes", (json_int_t)h->sum_before, "cap_bytes",
                  (json_int_t)h->limit, "handoff", art, "state", h->ck.reset));
    json_decref(art);
  }
  extra_update(h);
}

/* ---- the evaluator's session (docs/internals/evaluator.md) ---- */

static const struct durin_model_cfg *eval_cfg(const struct durin_harness *h)
{
  return h->spec->evaluator.own_model ? &h->spec->evaluator.model :
                                        &h->spec->model;
}

/* The model the step in progress calls. */
static const struct durin_model_cfg *step_cfg(const struct durin_harness *h)
{
  return h->eval_step ? eval_cfg(h) : &h->spec->model;
}

/*
 * Builds the evaluator's session from its first message: the run's spec
 * with the evaluator's system prompt, that message as its goal and its
 * model (borrowed fields, never freed through it), its tools, a window.
 */
/* Its commands need the sandbox's read-only workspace, which neither a
 * worker without the sandbox nor a template run's view can give. */
static unsigned eval_tool_bits(const struct durin_harness *h)
{
  unsigned t = h->spec->evaluator.tools;

  if (!h->sandboxed || h->spec->sandbox.template)
    t &= ~(unsigned)DURIN_EVAL_BASH;
  return t;
}

static int eval_session(struct durin_harness *h, const char *context,
                        struct durin_err *err)
{
  int i;

  eval_session_free(h);
  if (!context)
    return durin_err_set(err, DURIN_EPARSE,
                         "the evaluation's first message is missing from "
                         "the log of run '%s'",
                         h->run_id);
  h->econtext = strdup(context);
  h->esystem = durin__eval_system(&h->spec->evaluator);
  h->espec = *h->spec;
  h->espec.system = h->esystem;
  h->espec.goal = h->econtext;
  h->espec.model = *eval_cfg(h);
  /* Phases and resets are the agent's; the cap on every request holds
   * for the evaluator's too. */
  h->espec.phases = NULL;
  h->espec.nphases = 0;
  h->espec.reset_tokens = 0;
  h->espec.reset_share = 0;
  if (resets(h))
    h->espec.context_bytes = (int64_t)ctx_limit(h, NULL);
  h->nedefs = durin__eval_tool_defs(
      eval_tool_bits(h), h->edefs, (int)(sizeof(h->edefs) / sizeof(*h->edefs)));
  h->etools = json_array();
  for (i = 0; i < h->nedefs; i++)
    json_array_append_new(h->etools, json_pack("{s:s,s:s,s:o}", "name",
                                               h->edefs[i]->name, "description",
                                               h->edefs[i]->desc, "parameters",
                                               durin_tool_schema(h->edefs[i])));
  return durin__window_new(&h->espec, h->etools, &h->ewin, err);
}

/* A logged event joins the window it belongs to: the evaluator's steps
 * its own (while it is open), everything else the agent's. */
static void route_event(struct durin_harness *h, const char *type, json_t *data,
                        int64_t seq)
{
  const char *role = json_string_value(json_object_get(data, "role"));

  /* A summary call's own response is no one's context: what it wrote
   * is in the pinned message. */
  if (role && !strcmp(role, "summary"))
    return;
  if (role && !strcmp(role, "evaluator")) {
    if (h->ewin)
      durin__window_add_event(h->ewin, type, data, seq);
    return;
  }
  durin__window_add_event(h->win, type, data, seq);
}

static int64_t eval_get(const struct durin_harness *h, const char *key)
{
  return json_integer_value(json_object_get(h->ck.eval, key));
}

static void eval_add(struct durin_harness *h, const char *key, int64_t n)
{
  json_object_set_new(h->ck.eval, key, json_integer(eval_get(h, key) + n));
}

/*
 * The evaluation ends with a verdict (from the evaluator, or the default
 * FAIL: timeout, budget, malformed, missing, error). pass ends the run
 * succeeded; fail sends the agent back with the reasons, until
 * max_eval_attempts; needs_human stops the run for a person.
 */
/* Logs the open evaluation's verdict with its spend, and closes it. */
static void eval_end(struct durin_harness *h, const char *verdict,
                     json_t *reasons, const char *source)
{
  add_event(
      h, "verdict",
      json_pack("{s:I,s:s,s:O,s:s,s:{s:I,s:I,s:I,s:f}}", "attempt",
                (json_int_t)eval_get(h, "attempt"), "verdict", verdict,
                "reasons", reasons, "source", source, "usage", "steps",
                (json_int_t)eval_get(h, "steps"), "input_tokens",
                (json_int_t)eval_get(h, "input_tokens"), "output_tokens",
                (json_int_t)eval_get(h, "output_tokens"), "cost_usd",
                json_real_value(json_object_get(h->ck.eval, "cost_usd"))));
  json_decref(h->ck.eval);
  h->ck.eval = NULL;
  eval_session_free(h);
}

static void eval_close(struct durin_harness *h, const char *verdict,
                       json_t *reasons, const char *source)
{
  struct durin_buf list, msg;
  size_t i;
  json_t *r;

  durin_buf_init(&list, 0);
  json_array_foreach(reasons, i, r)
    durin_buf_addf(&list, "- %s\n", json_string_value(r));
  eval_end(h, verdict, reasons, source);
  durin_buf_init(&msg, 0);
  if (!strcmp(verdict, "pass")) {
    end_run(h, DURIN_RUN_SUCCEEDED,
            "the acceptance checks passed and the evaluator accepted the "
            "work");
  } else if (!strcmp(verdict, "needs_human")) {
    durin_buf_addf(&msg,
                   "The evaluator asked for a person to look at the work:\n%s"
                   "If the run goes on, take this into account and call "
                   "finish again.",
                   list.buf);
    add_event(h, "user_message", json_pack("{s:s}", "content", msg.buf));
    durin_buf_reset(&msg);
    durin_buf_addf(&msg,
                   "the evaluator asked for a person: %s (see its verdict "
                   "in 'durin review %s'; 'durin resume %s' lets the agent "
                   "go on)",
                   json_string_value(json_array_get(reasons, 0)), h->run_id,
                   h->run_id);
    add_event(h, "needs_human", json_pack("{s:s}", "reason", msg.buf));
    end_run(h, DURIN_RUN_NEEDS_HUMAN, msg.buf);
  } else if (h->ck.eval_attempts >= h->spec->max_eval_attempts) {
    durin_buf_addf(&msg,
                   "the evaluator did not accept the work after %lld "
                   "attempt(s), the limit set by max_eval_attempts: %s",
                   (long long)h->ck.eval_attempts,
                   json_string_value(json_array_get(reasons, 0)));
    end_run(h, DURIN_RUN_FAILED, msg.buf);
  } else {
    durin_buf_addf(&msg,
                   "Not accepted (attempt %lld of %lld): an independent "
                   "evaluator reviewed the work and found:\n%sFix this and "
                   "call finish again.",
                   (long long)h->ck.eval_attempts,
                   (long long)h->spec->max_eval_attempts, list.buf);
    add_event(h, "user_message", json_pack("{s:s}", "content", msg.buf));
  }
  durin_buf_release(&msg);
  durin_buf_release(&list);
}

/*
 * The evaluation ends because the run does (its budget, its wall clock,
 * an evaluator that cannot run): the verdict says so, the attempt is not
 * the agent's to spend, and the caller ends the run.
 */
static void eval_abort(struct durin_harness *h, const char *source,
                       const char *why)
{
  json_t *reasons = json_pack("[s]", why);

  eval_end(h, "fail", reasons, source);
  json_decref(reasons);
}

/* The run's own budgets during an evaluation: tokens, dollars and wall
 * clock; its steps and tool calls are the agent's (the evaluator has its
 * own). 1 with why if one is spent. */
static int eval_run_budget(const struct durin_harness *h, int64_t now,
                           int before_tool, char *why, size_t len)
{
  struct durin_usage u = h->ck.usage;

  u.steps = 0;
  u.tool_calls = 0;
  return durin_budget_exceeded(&h->spec->budget, &u, now - h->ck.started_ms,
                               before_tool, why, len);
}

/* The default FAIL, with one reason. */
static void eval_fail(struct durin_harness *h, const char *source,
                      const char *why)
{
  json_t *reasons = json_pack("[s]", why);

  eval_close(h, "fail", reasons, source);
  json_decref(reasons);
}

/* The finish call was accepted by the checks: the step asks for the diff,
 * then opens the evaluation before it commits (eval_begin). */
static const char eval_pending_msg[] =
    "the acceptance checks passed; an independent evaluator now reviews "
    "the work. If it does not accept it, its reasons come back to you";
static const char eval_pending_nochecks_msg[] =
    "accepted for review: an independent evaluator now reviews the work. "
    "If it does not accept it, its reasons come back to you";

/* The evaluation opens: its first message is logged, so a restored
 * evaluation starts from the same one. */
static void eval_begin(struct durin_harness *h, const char *diff,
                       const char *error, int64_t now)
{
  const struct durin_model_cfg *cfg = eval_cfg(h);
  struct durin_err err = { 0 };
  char note[600], *ctx;
  json_t *names = json_array();
  int i, r;

  if (!diff) {
    size_t n;

    snprintf(note, sizeof(note), "(the change could not be shown: %s",
             error ? error : "no reason given");
    /* Not in the middle of a UTF-8 sequence: json_pack refuses those. */
    n = strlen(note);
    while (n > 0 && ((unsigned char)note[n - 1] & 0xC0) == 0x80)
      n--;
    if (n > 0 && ((unsigned char)note[n - 1] & 0x80))
      n--;
    snprintf(note + n, sizeof(note) - n, ")\n");
    diff = note;
  }
  /* A quarter of the window: the evaluator reads the files themselves. */
  ctx = durin__eval_context(
      h->spec, h->ck.summary, h->eval_checks, diff,
      (resets(h) ? ctx_limit(h, NULL) : (size_t)h->spec->context_bytes) / 4);
  h->ck.eval = json_pack("{s:I,s:I,s:i,s:i,s:i,s:f}", "attempt",
                         (json_int_t)h->ck.eval_attempts, "started_ms",
                         (json_int_t)now, "steps", 0, "input_tokens", 0,
                         "output_tokens", 0, "cost_usd", 0.0);
  r = eval_session(h, ctx, &err);
  for (i = 0; i < h->nedefs; i++)
    json_array_append_new(names, json_string(h->edefs[i]->name));
  add_event(h, "evaluation_started",
            json_pack("{s:I,s:s,s:s,s:o,s:s}", "attempt",
                      (json_int_t)h->ck.eval_attempts, "provider",
                      cfg->provider, "model", cfg->name, "tools", names,
                      "context", ctx));
  free(ctx);
  if (r) {
    /* Not the agent's doing: the run fails saying what to change. */
    char why[480];

    snprintf(why, sizeof(why), "the evaluator could not start: %.440s",
             err.msg);
    eval_abort(h, "error", why);
    end_run(h, DURIN_RUN_FAILED, why);
  }
}

/* The evaluator's next model call, or its end by the default FAIL. */
static void eval_next(struct durin_harness *h, int64_t now,
                      struct durin_action *act)
{
  const struct durin_spec_evaluator *e = &h->spec->evaluator;
  int64_t started = eval_get(h, "started_ms"), ws = 0, deadline;
  json_t *handoff = NULL, *comp;
  char why[400];

  if (h->eval_rebase) {
    /* Restored: the evaluation's time is the time it ran, not the time
     * the run lay paused or crashed. */
    int64_t at = eval_get(h, "at_ms");

    h->eval_rebase = 0;
    if (at >= started) {
      started = now - (at - started);
      json_object_set_new(h->ck.eval, "started_ms", json_integer(started));
    }
  }
  if (eval_run_budget(h, now, 0, why, sizeof(why))) {
    eval_abort(h, "budget", why);
    end_over_budget(h, why);
  } else if (!h->ewin) {
    eval_fail(h, "error",
              "the evaluation's first message is missing from the log; the "
              "agent's next finish opens a new evaluation");
  } else if (now - started >= e->timeout_ms ||
             json_is_true(json_object_get(h->ck.eval, "cut"))) {
    snprintf(why, sizeof(why),
             "no verdict within evaluator.timeout_s (%llds): the evaluation "
             "timed out",
             (long long)(e->timeout_ms / 1000));
    eval_fail(h, "timeout", why);
  } else if (eval_get(h, "steps") >= e->steps) {
    snprintf(why, sizeof(why),
             "no verdict within evaluator.budget.steps (%lld model calls)",
             (long long)e->steps);
    eval_fail(h, "budget", why);
  } else if (e->dollars > 0 && json_real_value(json_object_get(
                                   h->ck.eval, "cost_usd")) >= e->dollars) {
    snprintf(why, sizeof(why),
             "no verdict within evaluator.budget.dollars ($%.4f)", e->dollars);
    eval_fail(h, "budget", why);
  } else {
    struct durin_budget eb;
    struct durin_usage eu;
    int64_t in;

    comp = durin__window_fit(h->ewin, &ws, &handoff);
    json_decref(comp);
    json_decref(handoff);
    json_decref(h->req_msgs);
    if (!h->eplan)
      h->eplan = json_array();
    h->req_msgs = durin__window_request(h->ewin, h->eplan, NULL, &h->req_bytes);
    act->model.cfg = eval_cfg(h);
    act->model.system = h->esystem;
    act->model.messages = h->req_msgs;
    act->model.tools = h->etools;
    act->model.turn = h->ck.eval_usage.model_calls;
    deadline = started + e->timeout_ms;
    if (h->spec->budget.wall_clock_ms &&
        h->ck.started_ms + h->spec->budget.wall_clock_ms < deadline)
      deadline = h->ck.started_ms + h->spec->budget.wall_clock_ms;
    act->model.deadline_ms = deadline;
    in = durin_budget_input_tokens(h->req_bytes, h->last_in_tokens,
                                   h->last_req_bytes);
    memset(&eb, 0, sizeof(eb));
    memset(&eu, 0, sizeof(eu));
    eb.dollars = e->dollars;
    eu.cost_usd = json_real_value(json_object_get(h->ck.eval, "cost_usd"));
    if (durin_budget_next_call(&h->spec->budget, act->model.cfg, &h->ck.usage,
                               in, why, sizeof(why))) {
      eval_abort(h, "budget", why);
      end_over_budget(h, why);
    } else if (e->dollars > 0 &&
               durin_budget_next_call(&eb, act->model.cfg, &eu, in, why,
                                      sizeof(why))) {
      char w2[500];

      snprintf(w2, sizeof(w2),
               "the evaluator's next call could cross "
               "evaluator.budget.dollars: %s",
               why);
      eval_fail(h, "budget", w2);
    } else {
      h->eval_step = 1;
      act->kind = DURIN_ACT_MODEL;
      set_state(h, DURIN_STEP_AWAIT_MODEL);
      return;
    }
  }
  memset(&act->model, 0, sizeof(act->model));
  set_state(h, DURIN_STEP_COMMIT);
  do_commit_action(h, now, act);
}

/*
 * Validates the model's calls. Malformed ones (bad JSON, unknown tool,
 * wrong types, oversized arguments) are answered with an error result and
 * never run. Returns whether any call needs a ledger intent.
 */
static int prepare_calls(struct durin_harness *h, int64_t step)
{
  int i, need = 0;

  h->calls = calloc((size_t)h->resp.ncalls + 1, sizeof(*h->calls));
  h->ncalls = h->resp.ncalls;
  for (i = 0; i < h->ncalls; i++) {
    struct call *c = &h->calls[i];
    const struct durin_spec_tool *st;
    struct durin_err err = { 0 };
    char *canon;

    c->tc = &h->resp.calls[i];
    if (h->eval_step) {
      /* The evaluator's tools only read: pure, no policy to ask, no
       * ledger; its verdict's arguments are read when it is dispatched,
       * so that a malformed one is a verdict too (fail). */
      int k;

      c->def = NULL;
      c->effect = DURIN_EFFECT_PURE;
      for (k = 0; k < h->nedefs; k++)
        if (!strcmp(h->edefs[k]->name, c->tc->name))
          c->def = h->edefs[k];
      if (c->def == durin__eval_verdict_def()) {
        c->args = json_loads(c->tc->args ? c->tc->args : "", 0, NULL);
        continue;
      }
      if (!c->def) {
        char msg[300];

        snprintf(msg, sizeof(msg),
                 "error: there is no tool named '%.100s'; an evaluator has "
                 "only read-only tools and verdict",
                 c->tc->name);
        resolve_call(c, 0, msg);
        continue;
      }
      if (durin_tool_args_parse(c->def, c->tc->args,
                                (size_t)h->spec->max_arg_bytes, &c->args,
                                &err)) {
        char msg[700];

        snprintf(msg, sizeof(msg), "error: %s", err.msg);
        resolve_call(c, 0, msg);
      }
      continue;
    }
    st = durin_spec_tool(h->spec, c->tc->name);
    c->def = st ? durin_tool_find(st->name) : NULL;
    c->effect = st ? st->effect : DURIN_EFFECT_PURE;
    if (!st) {
      int k;

      for (k = 0; k < h->nextra; k++)
        if (!strcmp(h->extra[k]->name, c->tc->name)) {
          c->def = h->extra[k];
          c->effect = c->def->effect;
        }
    }
    if (!c->def) {
      char msg[1200];
      int j, off;

      off = snprintf(
          msg, sizeof(msg),
          "error: there is no tool named '%.100s'; available: ", c->tc->name);
      for (j = 0; j < h->spec->ntools && off < (int)sizeof(msg) - 40; j++)
        off += snprintf(msg + off, sizeof(msg) - (size_t)off, "%s%s",
                        j ? ", " : "", h->spec->tools[j].name);
      for (j = 0; j < h->nextra && off < (int)sizeof(msg) - 80; j++)
        off += snprintf(msg + off, sizeof(msg) - (size_t)off, ", %s",
                        h->extra[j]->name);
      resolve_call(c, 0, msg);
      continue;
    }
    if (!phase_allows(cur_phase(h), c->tc->name)) {
      const struct durin_spec_phase *p = cur_phase(h);
      char msg[1200];
      int j, off;

      off = snprintf(msg, sizeof(msg),
                     "error: '%.100s' is not one of the tools of phase '%s'; "
                     "its tools: ",
                     c->tc->name, p->name);
      for (j = 0; j < p->ntools && off < (int)sizeof(msg) - 80; j++)
        off += snprintf(msg + off, sizeof(msg) - (size_t)off, "%s%s",
                        j ? ", " : "", p->tools[j]);
      resolve_call(c, 0, msg);
      continue;
    }
    if (durin_tool_args_parse(c->def, c->tc->args,
                              (size_t)h->spec->max_arg_bytes, &c->args, &err)) {
      char msg[700];

      snprintf(msg, sizeof(msg), "error: %s", err.msg);
      if (!strcmp(c->def->name, "run_status") && strstr(err.msg, "'run_id'"))
        snprintf(msg, sizeof(msg),
                 "error: run_status answers about this run only (%s); it "
                 "takes no run_id, and no other run can be read",
                 h->run_id);
      resolve_call(c, 0, msg);
      continue;
    }
    if (!strcmp(c->def->name, "finish") && h->finish_call < 0)
      h->finish_call = i;
    canon = json_dumps(c->args, JSON_COMPACT | JSON_SORT_KEYS);
    durin_sha256_hex(canon, strlen(canon), c->args_hash);
    free(canon);
    snprintf(c->idem_key, sizeof(c->idem_key), "%s:%lld:%d", h->run_id,
             (long long)step, i);
    /* A tool with I/O has an exec, or is a command the worker runs. */
    if (c->effect != DURIN_EFFECT_PURE &&
        (c->def->exec || c->def->command || c->def->mcp_server))
      need = 1;
  }
  return need;
}

static void model_request(struct durin_harness *h, struct durin_action *act)
{
  /* With resets, a full window is reset (summary_begin), not compacted. */
  json_t *comp = resets(h) ? NULL :
                             durin__window_fit(h->win, &h->ck.window_start,
                                               &h->ck.handoff);

  /* Logged with the next commit, which also writes the checkpoint that
   * holds the new window start; a crash before it redoes the same. The
   * handoff changed with it. */
  if (comp) {
    json_array_append_new(h->compactions, comp);
    free(h->handoff_text);
    h->handoff_text = NULL;
  }
  json_decref(h->req_msgs);
  h->req_msgs =
      durin__window_request(h->win, h->ck.plan, h->ck.handoff, &h->req_bytes);
  act->model.cfg = &h->spec->model;
  act->model.system = h->spec->system;
  act->model.messages = h->req_msgs;
  act->model.tools = h->ptools ? h->ptools : h->tools;
  act->model.turn = h->ck.turn;
  act->model.deadline_ms =
      h->spec->budget.wall_clock_ms ?
          h->ck.started_ms + h->spec->budget.wall_clock_ms :
          0;
}

/* The wall-clock budget left at now, in ms; 0 when there is none. */
static int64_t wall_clock_left(const struct durin_harness *h, int64_t now)
{
  int64_t left;

  if (!h->spec->budget.wall_clock_ms)
    return 0;
  left = h->spec->budget.wall_clock_ms - (now - h->ck.started_ms);
  return left > 1 ? left : 1;
}

static void do_commit_action(struct durin_harness *h, int64_t now,
                             struct durin_action *act);

/* Asks for the current call's result to be made durable as its outcome. */
static void ask_outcome(struct durin_harness *h, struct durin_action *act)
{
  free(h->outcome_text);
  h->outcome_text = json_dumps(h->calls[h->cur].result, JSON_COMPACT);
  act->kind = DURIN_ACT_OUTCOME;
  act->call = h->cur;
  act->outcome = h->outcome_text;
  set_state(h, DURIN_STEP_AWAIT_OUTCOME);
}

/* The model response of the step as it is kept while the step is open. */
static void make_pending(struct durin_harness *h)
{
  json_t *pj;

  if (h->pending_text)
    return;
  pj = durin_model_response_to_json(&h->resp);
  json_object_set_new(pj, "retries", json_integer(h->step_retries));
  json_object_set_new(pj, "duration_ms", json_integer(h->step_model_ms));
  if (h->step_req_text)
    json_object_set_new(pj, "request_text", json_integer(h->step_req_text));
  h->pending_text = json_dumps(pj, JSON_COMPACT);
  json_decref(pj);
}

static char *canonical(json_t *v)
{
  return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
}

/* Asks the driver to decide the current call under the run's policy. */
static void ask_policy(struct durin_harness *h, struct durin_action *act)
{
  struct call *c = &h->calls[h->cur];

  act->kind = DURIN_ACT_POLICY;
  act->call = h->cur;
  act->tool = c->def;
  act->args = c->args;
  act->tool_ctx.workspace = h->spec->workspace;
  act->tool_ctx.box.spec = &h->spec->sandbox;
  act->policy_state.cost_usd = h->ck.usage.cost_usd;
  act->policy_state.steps = h->ck.usage.steps;
  set_state(h, DURIN_STEP_AWAIT_POLICY);
}

static json_t *policy_event(const struct call *c)
{
  json_t *e = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "call_id", c->tc->id,
                        "tool", c->tc->name, "decision",
                        durin_policy_action_name(c->dec.action), "origin",
                        c->dec.origin, "rule", c->dec.rule, "why", c->dec.why);

  if (c->edited)
    json_object_set_new(e, "edited", json_true());
  if (c->have_approval)
    json_object_set_new(e, "approval",
                        json_pack("{s:s,s:s}", "id", c->ap_id, "state",
                                  durin_approval_state_name(c->ap_state)));
  return e;
}

/* The approval id of a call: the same for every replay of the step. */
static void approval_id(const struct durin_harness *h, int64_t step, int call,
                        char out[32])
{
  char key[96], hex[65];

  snprintf(key, sizeof(key), "%s:%lld:%d", h->run_id, (long long)step, call);
  durin_sha256_hex(key, strlen(key), hex);
  snprintf(out, 32, "%.12s", hex);
}

/*
 * Parks the run until a person decides about the current call: one commit
 * records the approval request, the step's model response (so the step
 * replays the same calls) and the run as waiting_approval without a lease.
 * Nothing else of the step is kept: the replay redoes it.
 */
static void wait_for_approval(struct durin_harness *h, int64_t now,
                              struct durin_action *act)
{
  struct call *c = &h->calls[h->cur];
  struct durin_approval *a = &h->approval;
  const char *text = h->resp.text ? h->resp.text : "";
  char why[400];

  memset(a, 0, sizeof(*a));
  snprintf(a->run_id, sizeof(a->run_id), "%s", h->run_id);
  a->step = h->ck.step + 1;
  a->call_idx = h->cur;
  approval_id(h, a->step, h->cur, a->id);
  a->call_id = c->tc->id;
  a->tool = c->tc->name;
  h->ap_text[0] = canonical(c->args);
  a->call_args = h->ap_text[0];
  a->call_hash = c->args_hash;
  a->args = a->call_args;
  a->args_hash = a->call_hash;
  h->ap_text[1] = strndup(text, 4000);
  a->reason = h->ap_text[1];
  if (asprintf(&h->ap_text[2], "%s:%s", c->dec.origin, c->dec.rule) < 0)
    h->ap_text[2] = NULL;
  a->rule = h->ap_text[2] ? h->ap_text[2] : "";
  a->state = DURIN_APPROVAL_PENDING;
  a->on_expiry = h->spec->approvals.expire_to_human ? "needs_human" : "reject";
  a->requested_ms = now;
  a->expires_ms = now + h->spec->approvals.timeout_ms;
  make_pending(h);

  json_array_clear(h->events);
  c->have_approval = 1;
  snprintf(c->ap_id, sizeof(c->ap_id), "%s", a->id);
  c->ap_state = DURIN_APPROVAL_PENDING;
  add_event(h, "policy", policy_event(c));
  add_event(h, "approval_requested",
            json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:s}", "id", a->id,
                      "call_id", a->call_id, "tool", a->tool, "arguments",
                      a->call_args, "args_hash", a->call_hash, "reason",
                      a->reason, "rule", a->rule, "expires_ms",
                      (json_int_t)a->expires_ms, "on_expiry", a->on_expiry));
  snprintf(why, sizeof(why),
           "waiting for approval %s of %s (policy %s); decide with 'durin "
           "approve %s' or 'durin reject %s --reason TEXT'",
           a->id, a->tool, a->rule, a->id, a->id);
  snprintf(h->end_reason, sizeof(h->end_reason), "%s", why);
  h->waiting = 1;
  set_state(h, DURIN_STEP_COMMIT);
  do_commit_action(h, now, act);
}

/* Refuses an approved call whose arguments are not what was approved. */
static void refuse(struct durin_harness *h, struct call *c, const char *what)
{
  char msg[600];

  snprintf(msg, sizeof(msg),
           "refused: %s (approval %s); the call did not run. Ask again if it "
           "is still needed",
           what, c->ap_id);
  add_event(h, "approval_refused",
            json_pack("{s:s,s:s,s:s}", "id", c->ap_id, "call_id", c->tc->id,
                      "why", what));
  resolve_call(c, 0, msg);
}

/*
 * Checks a decided approval against the call about to run: the call must
 * be the one asked about (its hash), the recorded arguments must hash to
 * what was approved, and an unedited approval must cover these very
 * arguments. An edit replaces the call's arguments after the tool's schema
 * accepts them. Returns 1 if the call may run.
 */
static int approval_holds(struct durin_harness *h, struct call *c)
{
  char hash[DURIN_APPROVAL_MAC_LEN];
  const char *mac = DURIN_APPROVAL_MAC_PREFIX;
  int signed_ = !strncmp(c->ap_args_hash, mac, strlen(mac));
  json_t *args;
  struct durin_err err = { 0 };

  if (strcmp(c->ap_call_hash, c->args_hash)) {
    refuse(h, c, "the call to run is not the call that was approved");
    return 0;
  }
  /* With a master key, only a signed decision counts: whoever can write
   * the store cannot make one. Without, the hash catches edits only. */
  if (h->have_apkey) {
    /* Signed over this very call: a decision moved from another run,
     * step, call or tool does not hold here. */
    struct durin_approval_signed sa = {
      c->ap_id,       h->run_id,
      h->ck.step + 1, (int)(c - h->calls),
      c->tc->id,      c->tc->name,
      c->args_hash,   durin_approval_state_name(c->ap_state),
      c->ap_by,       c->ap_args,
    };

    if (!signed_) {
      refuse(h, c,
             "the decision is not signed with this runtime's master key "
             "(decided where no master key was configured?)");
      return 0;
    }
    durin_approval_mac(h->apkey, &sa, hash);
    if (sodium_memcmp(hash, c->ap_args_hash, strlen(hash)) != 0) {
      refuse(h, c,
             "the decision's signature does not hold: the approval was "
             "changed after it was decided, or signed under another key");
      return 0;
    }
  } else if (signed_) {
    refuse(h, c,
           "the decision is signed, and this worker has no master key to "
           "check it: give it the master key (DURIN_MASTER_KEY, "
           "DURIN_MASTER_KEY_FILE or the key file)");
    return 0;
  } else {
    durin_sha256_hex(c->ap_args, strlen(c->ap_args), hash);
    if (strcmp(hash, c->ap_args_hash)) {
      refuse(h, c, "the approved arguments were changed after the decision");
      return 0;
    }
  }
  if (c->ap_state == DURIN_APPROVAL_APPROVED) {
    durin_sha256_hex(c->ap_args, strlen(c->ap_args), hash);
    if (strcmp(hash, c->args_hash)) {
      refuse(h, c, "the arguments differ from the approved ones");
      return 0;
    }
    return 1;
  }
  if (durin_tool_args_parse(c->def, c->ap_args, (size_t)h->spec->max_arg_bytes,
                            &args, &err)) {
    char what[400];

    snprintf(what, sizeof(what), "the edited arguments are not valid: %.300s",
             err.msg);
    refuse(h, c, what);
    return 0;
  }
  json_decref(c->args);
  c->args = args;
  c->edited = 1;
  return 1;
}

/* A person said no (or nobody answered in time and that means no). */
static void rejected(struct durin_harness *h, struct call *c, int expired)
{
  json_t *n = json_object_get(h->ck.rejections, c->args_hash);
  int64_t times = json_integer_value(n) + 1;
  char msg[1200], why[500];

  json_object_set_new(h->ck.rejections, c->args_hash, json_integer(times));
  if (expired)
    snprintf(msg, sizeof(msg),
             "not run: the request for approval (%s) expired without a "
             "decision. Do not repeat this call as is; find another way or "
             "finish with what you have",
             c->ap_id);
  else
    snprintf(msg, sizeof(msg),
             "rejected by %s: %s. The call did not run. Do not repeat it as "
             "is; change your approach",
             c->ap_by && *c->ap_by ? c->ap_by : "a reviewer",
             c->ap_comment && *c->ap_comment ? c->ap_comment :
                                               "no reason given");
  resolve_call(c, 0, msg);
  if (times >= h->spec->approvals.max_rejections) {
    snprintf(why, sizeof(why),
             "the same %s call was %s %lld time(s), the limit set by "
             "approvals.max_rejections; a person should look before it goes "
             "on ('durin resume %s')",
             c->tc->name, expired ? "left without a decision" : "rejected",
             (long long)times, h->run_id);
    add_event(h, "needs_human",
              json_pack("{s:s,s:s,s:s}", "reason", why, "call_id", c->tc->id,
                        "approval", c->ap_id));
    end_run(h, DURIN_RUN_NEEDS_HUMAN, why);
  }
}

enum { ASK_RUN, ASK_WAIT, ASK_RESOLVED, ASK_RECHECK };

/* The policy said ask: what the recorded decision (if any) means now. */
static int ask(struct durin_harness *h, struct call *c, int64_t now,
               struct durin_action *act)
{
  char why[500];

  if (!c->have_approval || c->ap_state == DURIN_APPROVAL_PENDING) {
    wait_for_approval(h, now, act);
    return ASK_WAIT;
  }
  switch (c->ap_state) {
  case DURIN_APPROVAL_APPROVED:
  case DURIN_APPROVAL_EDITED:
    if (!approval_holds(h, c))
      return ASK_RESOLVED;
    c->cleared = 1;
    /* Edited arguments are judged again: an edit cannot reach what the
     * policy denies. */
    return c->edited ? ASK_RECHECK : ASK_RUN;
  case DURIN_APPROVAL_EXPIRED:
    if (c->ap_on_expiry && !strcmp(c->ap_on_expiry, "needs_human")) {
      snprintf(why, sizeof(why),
               "approval %s for %s expired without a decision; the spec "
               "says a person should look ('durin resume %s' goes on)",
               c->ap_id, c->tc->name, h->run_id);
      resolve_call(c, 0, "not run: the request for approval expired");
      add_event(h, "needs_human",
                json_pack("{s:s,s:s,s:s}", "reason", why, "call_id", c->tc->id,
                          "approval", c->ap_id));
      end_run(h, DURIN_RUN_NEEDS_HUMAN, why);
      return ASK_RESOLVED;
    }
    rejected(h, c, 1);
    return ASK_RESOLVED;
  case DURIN_APPROVAL_REJECTED:
    rejected(h, c, 0);
    return ASK_RESOLVED;
  case DURIN_APPROVAL_CANCELLED:
  default:
    resolve_call(c, 0, "not run: the request for approval was cancelled");
    return ASK_RESOLVED;
  }
}

/* ---- the loop and storm breakers, run_status (breakers.md) ---- */

static struct durin__guard_limits guard_limits(const struct durin_spec *spec)
{
  struct durin__guard_limits lim = { spec->breakers.repeat,
                                     spec->breakers.failures,
                                     spec->breakers.window };

  return lim;
}

/*
 * Counts the step's calls that ran (upto: those before it) in *guard,
 * sharing the step's model spend among them. Returns the indices of the
 * calls counted; *loop and *storm get the first event data of each
 * breaker that tripped (NULL: none; pass NULL to ignore trips).
 */
static json_t *guard_count(struct durin_harness *h, json_t **guard, int upto,
                           json_t **loop, json_t **storm)
{
  struct durin__guard_limits lim = guard_limits(h->spec);
  json_t *idx = json_array(), *l, *st;

  /* A step whose end no breaker can change (the run ends, is cancelled,
   * or its finish went to the evaluator) counts its calls per tool but
   * in no breaker: a trip there would reset counts for nothing. */
  if (loop && (h->ended || h->cancel || h->eval_open))
    lim.repeat = lim.failures = 0;
  int i, n = 0, k = 0;

  for (i = 0; i < upto; i++)
    n += h->calls[i].counted && h->calls[i].result;
  for (i = 0; i < upto; i++) {
    struct call *c = &h->calls[i];
    struct durin__guard_call gc;

    if (!c->counted || !c->result)
      continue;
    memset(&gc, 0, sizeof(gc));
    gc.tool = c->tc->name;
    gc.args = c->tc->args;
    gc.result = c->result;
    gc.step = h->ck.step + 1;
    gc.input_tokens = durin__guard_share(h->resp.input_tokens, n, k);
    gc.output_tokens = durin__guard_share(h->resp.output_tokens, n, k);
    gc.cost_usd = h->step_cost / n;
    k++;
    durin__guard_add(guard, &lim, &gc, &l, &st);
    json_array_append_new(idx, json_integer(i));
    if (loop && !*loop)
      *loop = l;
    else
      json_decref(l);
    if (storm && !*storm)
      *storm = st;
    else
      json_decref(st);
  }
  return idx;
}

/* How much of s fits in n bytes without cutting a UTF-8 sequence. */
static int utf8_len(const char *s, size_t n)
{
  size_t len = strlen(s);

  if (len <= n)
    return (int)len;
  while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
    n--;
  return (int)n;
}

/* The last non-empty line of s (*start), at most n bytes of it. */
static int last_line(const char *s, size_t n, const char **start)
{
  size_t len = strlen(s), b;

  while (len && (s[len - 1] == '\n' || s[len - 1] == ' '))
    len--;
  for (b = len; b && s[b - 1] != '\n'; b--)
    ;
  *start = s + b;
  return len - b <= n ? (int)(len - b) : utf8_len(s + b, n);
}

/*
 * A breaker tripped in the step being committed: a loop stops the run
 * for a person, a storm pauses it. The step is complete and commits as
 * it is; a run the step already ends (finished, cancelled, over budget)
 * ends as it would have, and work its finish sent to the evaluator is
 * reviewed first.
 */
static void guard_stop(struct durin_harness *h, json_t *loop, json_t *storm)
{
  char why[sizeof(h->end_reason)], msg[600];

  if (h->ended || h->cancel || h->eval_open || (!loop && !storm)) {
    json_decref(loop);
    json_decref(storm);
    return;
  }
  if (loop) {
    const char *args = json_string_value(json_object_get(loop, "arguments"));
    const char *err = json_string_value(json_object_get(loop, "error"));
    int errlen = last_line(err ? err : "", 100, &err);

    snprintf(
        why, sizeof(why),
        "loop: the same %.64s call failed the same way %lld times "
        "(steps %lld to %lld, exit code %lld: %.*s), using %lld input "
        "and %lld output tokens ($%.4f); arguments %.*s. A person "
        "should look: 'durin resume %s' goes on, with %lld more tries "
        "of that call",
        json_string_value(json_object_get(loop, "tool")),
        (long long)json_integer_value(json_object_get(loop, "times")),
        (long long)json_integer_value(json_object_get(loop, "first_step")),
        (long long)json_integer_value(json_object_get(loop, "last_step")),
        (long long)json_integer_value(json_object_get(loop, "exit_code")),
        errlen, err,
        (long long)json_integer_value(json_object_get(loop, "input_tokens")),
        (long long)json_integer_value(json_object_get(loop, "output_tokens")),
        json_real_value(json_object_get(loop, "cost_usd")),
        utf8_len(args ? args : "", 100), args ? args : "", h->run_id,
        (long long)h->spec->breakers.repeat);
    json_object_set_new(loop, "reason", json_string(why));
    add_event(h, "loop_detected", loop);
    snprintf(msg, sizeof(msg),
             "The run was stopped for a person: the same %.64s call failed the "
             "same way %lld times. Do not repeat it as is; find out why it "
             "fails or take another way.",
             json_string_value(json_object_get(loop, "tool")),
             (long long)json_integer_value(json_object_get(loop, "times")));
    add_event(h, "user_message", json_pack("{s:s}", "content", msg));
    add_event(h, "needs_human",
              json_pack("{s:s,s:O,s:O}", "reason", why, "tool",
                        json_object_get(loop, "tool"), "arguments",
                        json_object_get(loop, "arguments")));
    end_run(h, DURIN_RUN_NEEDS_HUMAN, why);
    /* A storm in the same step is logged; the loop says how to go on. */
    if (storm)
      add_event(h, "storm_detected", storm);
    return;
  }
  snprintf(why, sizeof(why),
           "storm: %lld of the last %lld tool calls failed; the run is paused "
           "instead of grinding on. 'durin resume %s' continues it here "
           "('durin unpause %s' puts it back in the queue)",
           (long long)json_integer_value(json_object_get(storm, "failures")),
           (long long)json_integer_value(json_object_get(storm, "window")),
           h->run_id, h->run_id);
  json_object_set_new(storm, "reason", json_string(why));
  add_event(h, "storm_detected", storm);
  snprintf(msg, sizeof(msg),
           "The run was paused: %lld of the last %lld tool calls failed. "
           "Before going on, find out why the calls fail instead of trying "
           "more of the same.",
           (long long)json_integer_value(json_object_get(storm, "failures")),
           (long long)json_integer_value(json_object_get(storm, "window")));
  add_event(h, "user_message", json_pack("{s:s}", "content", msg));
  end_run(h, DURIN_RUN_PAUSED, why);
}

static json_t *limit_used(double used, double limit, int real)
{
  json_t *j = json_object();

  json_object_set_new(j, "used", real ? json_real(used) : json_integer(used));
  json_object_set_new(j, "limit",
                      limit <= 0 ? json_null() :
                      real       ? json_real(limit) :
                                   json_integer((json_int_t)limit));
  json_object_set_new(
      j, "left",
      limit <= 0 ? json_null() :
      real       ? json_real(limit > used ? limit - used : 0) :
                   json_integer(limit > used ? (json_int_t)(limit - used) : 0));
  return j;
}

static const char *const status_sections[] = {
  "budget", "tools", "failures", "phase", "evaluation", "breakers", NULL,
};

/*
 * run_status: what the agent's own run has spent and met, as of this
 * call (the step's earlier calls included). Reads the checkpoint only.
 * Returns the JSON text, or NULL with bad saying why it was refused.
 */
static char *run_status(struct durin_harness *h, struct call *c, int64_t now,
                        char *bad, size_t badlen)
{
  const struct durin_spec *sp = h->spec;
  const struct durin_usage *u = &h->ck.usage;
  const struct durin_budget *b = &sp->budget;
  struct durin__guard_limits lim = guard_limits(sp);
  const char *want = json_string_value(json_object_get(c->args, "section"));
  json_t *out, *g, *idx;
  int64_t elapsed = now - h->ck.started_ms, left;
  char *text;
  int i;

  for (i = 0; want && status_sections[i]; i++)
    if (!strcmp(want, status_sections[i]))
      break;
  if (want && !status_sections[i]) {
    snprintf(bad, badlen,
             "error: run_status has no section '%.64s'; ask for budget, "
             "tools, failures, phase, evaluation or breakers, or leave "
             "section out for all",
             want);
    return NULL;
  }
  /* The step's calls so far count as they will at its commit. */
  g = h->ck.guard ? json_deep_copy(h->ck.guard) : NULL;
  idx = guard_count(h, &g, h->cur, NULL, NULL);
  json_decref(idx);
  out = json_pack("{s:s,s:I}", "run", h->run_id, "step",
                  (json_int_t)(h->ck.step + 1));
#define WANT(name) (!want || !strcmp(want, name))
  if (WANT("budget")) {
    json_t *bj = json_object();

    if (elapsed < 0)
      elapsed = 0;
    json_object_set_new(bj, "steps",
                        limit_used((double)u->steps, (double)b->steps, 0));
    json_object_set_new(bj, "tokens",
                        limit_used((double)(u->input_tokens + u->output_tokens),
                                   (double)b->tokens, 0));
    json_object_set_new(bj, "input_tokens", json_integer(u->input_tokens));
    json_object_set_new(bj, "output_tokens", json_integer(u->output_tokens));
    json_object_set_new(bj, "dollars", limit_used(u->cost_usd, b->dollars, 1));
    json_object_set_new(bj, "wall_clock_s",
                        limit_used((double)(elapsed / 1000),
                                   (double)(b->wall_clock_ms / 1000), 0));
    json_object_set_new(
        bj, "tool_calls",
        limit_used((double)u->tool_calls, (double)b->tool_calls, 0));
    json_object_set_new(bj, "model_calls", json_integer(u->model_calls));
    json_object_set_new(out, "budget", bj);
  }
  if (WANT("tools"))
    json_object_set_new(out, "tools", durin__guard_tools(g));
  if (WANT("failures"))
    json_object_set_new(out, "failures", durin__guard_failures(g));
  if (WANT("phase")) {
    json_object_set_new(
        out, "phase", h->ck.phase ? json_deep_copy(h->ck.phase) : json_null());
    json_object_set_new(out, "artifacts",
                        h->ck.artifacts ? json_deep_copy(h->ck.artifacts) :
                                          json_array());
  }
  if (WANT("evaluation")) {
    left = sp->max_eval_attempts - h->ck.eval_attempts;
    json_object_set_new(
        out, "evaluation",
        json_pack("{s:I,s:I,s:I,s:i,s:b}", "attempts_used",
                  (json_int_t)h->ck.eval_attempts, "attempts_max",
                  (json_int_t)sp->max_eval_attempts, "attempts_left",
                  (json_int_t)(left > 0 ? left : 0), "checks", sp->nchecks,
                  "evaluator", sp->evaluator.set));
  }
  if (WANT("breakers"))
    json_object_set_new(out, "breakers", durin__guard_breakers(g, &lim));
#undef WANT
  text = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(10));
  json_decref(out);
  json_decref(g);
  if (!text)
    snprintf(bad, badlen, "error: run_status could not be read");
  return text;
}

/* The next tool call to run, applying budgets and the ledger rules. */
/* Stops the run as needs_human over call c, whose outcome is unknown. */
static void stop_for_human(struct durin_harness *h, struct call *c,
                           const char *why, int64_t now,
                           struct durin_action *act)
{
  add_event(h, "needs_human",
            json_pack("{s:s,s:s,s:s,s:s}", "reason", why, "call_id", c->tc->id,
                      "tool", c->tc->name, "arguments", c->tc->args));
  h->needs_human = 1;
  snprintf(h->end_reason, sizeof(h->end_reason), "%s", why);
  set_state(h, DURIN_STEP_COMMIT);
  do_commit_action(h, now, act);
}

static void dispatch(struct durin_harness *h, int64_t now,
                     struct durin_action *act)
{
  char why[512];

  for (; h->cur < h->ncalls; h->cur++) {
    struct call *c = &h->calls[h->cur];

    if (h->cancel && !h->ended) {
      /* Cancelled mid-step: the step commits what ran, nothing more. */
      add_event(h, "cancelled", json_pack("{s:s}", "reason", h->cancel_reason));
      end_run(h, DURIN_RUN_CANCELLED, h->cancel_reason);
    }
    if (c->state == CALL_RESOLVED)
      continue;
    if (h->ended) {
      resolve_call(c, 0, "not run: the run stopped before this call");
      continue;
    }
    if (h->eval_step && !h->ck.eval) {
      resolve_call(c, 0, "not run: the verdict ended the evaluation");
      continue;
    }
    if (h->eval_open && !h->eval_step) {
      /* The work the checks passed is the work the evaluator reviews. */
      resolve_call(c, 0,
                   "not run: finish was accepted and the work is being "
                   "reviewed; calls after finish do not run");
      continue;
    }
    if (h->eval_step && c->def == durin__eval_verdict_def()) {
      const char *verdict;
      json_t *reasons;
      char bad[300];

      if (durin__eval_verdict_read(c->args, &verdict, &reasons, bad,
                                   sizeof(bad))) {
        snprintf(why, sizeof(why), "the evaluator's verdict is malformed: %s",
                 bad);
        resolve_call(c, 0, why);
        eval_fail(h, "malformed", why);
      } else {
        resolve_call(c, 1, "verdict recorded");
        eval_close(h, verdict, reasons, "evaluator");
      }
      json_decref(reasons);
      continue;
    }
    if (!c->def) {
      /* Dispatched before a crash, and its tool is gone (load_pending):
       * it can be neither judged nor run again. */
      if (h->resolve == 0 || h->resolve == 1) {
        resolve_call(c, 0,
                     "outcome unknown: this call was started before a crash "
                     "and its MCP server no longer lists the tool, so it "
                     "was not run again. Check what it did before relying "
                     "on it");
        h->ck.usage.tool_calls++;
        ask_outcome(h, act);
        return;
      }
      snprintf(why, sizeof(why),
               "tool call '%s' (%s, step %lld) was dispatched before a crash "
               "and its outcome is unknown; its MCP server no longer lists "
               "the tool, so it cannot run again. Check what it did, then "
               "run 'durin resume %s --skip-call'",
               c->tc->id, c->tc->name, (long long)(h->ck.step + 1), h->run_id);
      stop_for_human(h, c, why, now, act);
      return;
    }
    if (!strcmp(c->def->name, "update_plan")) {
      json_decref(h->ck.plan);
      h->ck.plan = json_incref(json_object_get(c->args, "plan"));
      add_event(h, "plan_updated", json_pack("{s:O}", "plan", h->ck.plan));
      resolve_call(c, 1, "plan updated");
      if (cur_phase(h) && cur_phase(h)->until == DURIN_UNTIL_PLAN) {
        h->phase_met = 1;
        snprintf(h->phase_why, sizeof(h->phase_why),
                 "the agent updated its plan");
      }
      continue;
    }
    if (!strcmp(c->def->name, "run_status")) {
      char bad[300];
      char *text = run_status(h, c, now, bad, sizeof(bad));

      resolve_call(c, text != NULL, text ? text : bad);
      free(text);
      continue;
    }
    if (!strcmp(c->def->name, "finish")) {
      if (h->cur != h->finish_call) {
        resolve_call(c, 0, "error: finish was already called in this turn");
        continue;
      }
      if (h->spec->nchecks == 0) {
        free(h->ck.summary);
        h->ck.summary =
            strdup(json_string_value(json_object_get(c->args, "summary")));
        if (h->spec->evaluator.set) {
          /* No shell checks: the evaluator is the acceptance. */
          h->ck.eval_attempts++;
          resolve_call(c, 1, eval_pending_nochecks_msg);
          h->eval_open = 1;
          continue;
        }
        resolve_call(c, 1, "accepted (the spec has no acceptance checks)");
        end_run(h, DURIN_RUN_SUCCEEDED,
                "the agent finished; no acceptance checks are configured");
        continue;
      }
      if (!h->checks_done) {
        if (durin_budget_wall_clock_over(
                &h->spec->budget, now - h->ck.started_ms, why, sizeof(why))) {
          end_over_budget(h, why);
          resolve_call(c, 0,
                       "not checked: the run's wall-clock budget is used up");
          continue;
        }
        act->kind = DURIN_ACT_CHECKS;
        act->checks = h->spec->checks;
        act->nchecks = h->spec->nchecks;
        act->tool_ctx.workspace = h->spec->workspace;
        act->tool_ctx.box.spec = &h->spec->sandbox;
        act->tool_ctx.timeout_ms = wall_clock_left(h, now);
        act->tool_ctx.output_cap = (size_t)h->spec->output_cap;
        set_state(h, DURIN_STEP_AWAIT_CHECKS);
        return;
      }
      continue;
    }
    if (h->eval_step ? eval_run_budget(h, now, 1, why, sizeof(why)) :
                       durin_budget_exceeded(&h->spec->budget, &h->ck.usage,
                                             now - h->ck.started_ms, 1, why,
                                             sizeof(why))) {
      if (h->eval_step && h->ck.eval)
        eval_abort(h, "budget", why);
      end_over_budget(h, why);
      /* A call that was already dispatched once may have run: say so. */
      resolve_call(c, 0,
                   c->indeterminate ?
                       "outcome unknown: started before a crash and not "
                       "repeated, because the run's budget is used up" :
                       "not run: budget exceeded");
      continue;
    }
    if (!c->policy_done) {
      ask_policy(h, act);
      return;
    }
    if (c->dec.action == DURIN_POLICY_DENY) {
      char msg[800];

      snprintf(msg, sizeof(msg),
               "denied by policy (%s %s): %s. The call did not run; do not "
               "retry it, find another way%s",
               c->dec.origin, c->dec.rule, c->dec.why,
               c->indeterminate ? " (it was started once before a crash; "
                                  "its outcome is unknown)" :
                                  "");
      resolve_call(c, 0, msg);
      continue;
    }
    if (c->dec.action == DURIN_POLICY_ASK && h->eval_step) {
      char msg[700];

      /* An evaluation does not wait for a person: no is the answer. */
      snprintf(msg, sizeof(msg),
               "refused: the policy asks a person about this call (%s %s), "
               "and an evaluator does not wait for approvals; judge from "
               "what you can read",
               c->dec.origin, c->dec.rule);
      resolve_call(c, 0, msg);
      continue;
    }
    if (c->dec.action == DURIN_POLICY_ASK && !c->cleared) {
      switch (ask(h, c, now, act)) {
      case ASK_WAIT:
        return;
      case ASK_RESOLVED:
        continue;
      case ASK_RECHECK:
        c->policy_done = 0;
        ask_policy(h, act);
        return;
      default:
        break;
      }
    }
    if (c->indeterminate && c->contained && !c->repeat_noted) {
      /* Its changes never left its layer, which is gone: whatever it
       * declared, running it again is running it once. */
      c->repeat_noted = 1;
      add_event(h, "call_repeated",
                json_pack("{s:s,s:s,s:s}", "call_id", c->tc->id, "tool",
                          c->tc->name, "why",
                          "started before a crash in a layer of its own, "
                          "which was discarded unmerged; run again"));
    }
    if (c->indeterminate && !c->contained && c->effect == DURIN_EFFECT_UNSAFE) {
      if (h->resolve == 0) {
        resolve_call(c, 0,
                     "outcome unknown: this call was started before a crash "
                     "and may or may not have taken effect; an operator "
                     "chose not to repeat it. Check the workspace before "
                     "relying on it");
        h->ck.usage.tool_calls++;
        /* The ledger gets the decision as the call's outcome. */
        ask_outcome(h, act);
        return;
      }
      if (h->resolve != 1) {
        snprintf(why, sizeof(why),
                 "tool call '%s' (%s, step %lld) was dispatched before a "
                 "crash and its outcome is unknown; it is unsafe to repeat. "
                 "Inspect the workspace, then run 'durin resume %s "
                 "--retry-call' or '--skip-call'",
                 c->tc->id, c->tc->name, (long long)(h->ck.step + 1),
                 h->run_id);
        stop_for_human(h, c, why, now, act);
        return;
      }
    }
    if (c->effect != DURIN_EFFECT_PURE && !c->intent) {
      /* The intent is durable before the call is dispatched (DESIGN 3.3);
       * the first one of a step carries the model response with it. */
      struct durin_ledger_entry *e = &h->intent;

      memset(e, 0, sizeof(*e));
      snprintf(e->run_id, sizeof(e->run_id), "%s", h->run_id);
      e->step = h->ck.step + 1;
      e->call_idx = h->cur;
      e->call_id = c->tc->id;
      e->tool = c->tc->name;
      e->effect = durin_effect_name(c->effect);
      e->args_hash = c->args_hash;
      e->idem_key = c->idem_key;
      e->args = c->tc->args;
      if (c->edited) {
        /* The ledger records what runs; the hash still names the call. */
        free(h->intent_args);
        h->intent_args = canonical(c->args);
        e->args = h->intent_args;
      }
      e->intent_ms = now;
      /* Decided once, recorded with the intent: a restorer trusts the
       * ledger, not the worker it runs in, about how the call ran. */
      c->contained =
          durin_tool_contained(c->def, &h->spec->sandbox, h->sandboxed);
      e->contained = c->contained;
      act->kind = DURIN_ACT_INTENT;
      act->intents = e;
      act->nintents = 1;
      act->pending = h->pending_written ? NULL : h->pending_text;
      set_state(h, DURIN_STEP_AWAIT_INTENT);
      return;
    }
    act->kind = DURIN_ACT_TOOL;
    act->call = h->cur;
    act->contained = c->intent && c->contained;
    act->tool = c->def;
    act->args = c->args;
    act->tool_ctx.workspace = h->spec->workspace;
    act->tool_ctx.box.spec = &h->spec->sandbox;
    act->tool_ctx.idem_key = c->idem_key;
    act->tool_ctx.timeout_ms = h->spec->tool_timeout_ms;
    /* The wall-clock budget holds inside the call too: the executor
     * (bash's command(), lib/worker/uv-proc.c) kills it when the budget ends.
     */
    {
      int64_t left = wall_clock_left(h, now);

      if (left && left < act->tool_ctx.timeout_ms)
        act->tool_ctx.timeout_ms = left;
    }
    act->tool_ctx.output_cap = (size_t)h->spec->output_cap;
    if (h->eval_step) {
      /* It reads and runs, never changes: a read-only workspace, no
       * network; and it ends with the evaluation's time. */
      int64_t left =
          h->spec->evaluator.timeout_ms - (now - eval_get(h, "started_ms"));

      act->tool_ctx.box.readonly = 1;
      act->tool_ctx.idem_key = NULL;
      if (left < 1)
        left = 1;
      h->eval_cut = left <= act->tool_ctx.timeout_ms;
      if (h->eval_cut)
        act->tool_ctx.timeout_ms = left;
    }
    set_state(h, DURIN_STEP_AWAIT_TOOL);
    return;
  }
  if (h->eval_step && h->ck.eval && !h->resp.ncalls && !h->ended)
    eval_fail(h, "missing",
              "the evaluator answered without calling the verdict tool");
  if (cur_phase(h) && cur_phase(h)->until == DURIN_UNTIL_CHECK &&
      h->step_counts && !h->eval_step && !h->phase_checked && !h->ended &&
      !h->cancel && !h->eval_open) {
    /* Does the phase end here? Its check says, after each step. */
    h->phase_checking = 1;
    h->phase_checked = 1;
    act->kind = DURIN_ACT_CHECKS;
    act->checks = &cur_phase(h)->check;
    act->nchecks = 1;
    act->tool_ctx.workspace = h->spec->workspace;
    act->tool_ctx.box.spec = &h->spec->sandbox;
    act->tool_ctx.timeout_ms = wall_clock_left(h, now);
    act->tool_ctx.output_cap = (size_t)h->spec->output_cap;
    set_state(h, DURIN_STEP_AWAIT_CHECKS);
    return;
  }
  if (h->eval_open && !h->eval_diff_done && !h->ended && !h->cancel) {
    /* The finish was accepted: the evaluator starts from the change. */
    act->kind = DURIN_ACT_DIFF;
    act->tool_ctx.workspace = h->spec->workspace;
    act->tool_ctx.box.spec = &h->spec->sandbox;
    act->tool_ctx.output_cap =
        (resets(h) ? ctx_limit(h, NULL) : (size_t)h->spec->context_bytes) / 4;
    set_state(h, DURIN_STEP_AWAIT_DIFF);
    return;
  }
  set_state(h, DURIN_STEP_COMMIT);
  do_commit_action(h, now, act);
}

enum { WROTE_NOTHING, WROTE_PATHS, WROTE_ANY };

/* Adds a change set's paths ("dir/" for a replaced directory) to paths;
 * WROTE_ANY when the lists were cut or name the workspace's root. */
static int add_change_paths(json_t *paths, json_t *ch)
{
  static const char *const lists[] = { "added", "changed", "deleted",
                                       "replaced_dirs" };
  static const char *const counts[] = { "files_added", "files_changed",
                                        "files_deleted", NULL };
  json_t *v;
  size_t i, k;

  for (k = 0; k < 4; k++) {
    json_t *l = json_object_get(ch, lists[k]);

    if (counts[k] && json_integer_value(json_object_get(ch, counts[k])) >
                         (json_int_t)json_array_size(l))
      return WROTE_ANY;
    json_array_foreach(l, i, v) {
      const char *p = json_string_value(v);
      size_t n = p ? strlen(p) : 0;

      while (n && p[n - 1] == '/')
        n--;
      if (!n || (n == 1 && p[0] == '.'))
        return WROTE_ANY;
      /* The repository's own files are never committed; a nested
       * repository's are its gitlink, which a full look finds. */
      if ((n == 4 || (n > 4 && p[4] == '/')) && !strncmp(p, ".git", 4))
        continue;
      if (strstr(p, "/.git/") || (n >= 5 && !strncmp(p + n - 5, "/.git", 5)))
        return WROTE_ANY;
      json_array_append_new(paths, json_stringn(p, n));
    }
  }
  return WROTE_PATHS;
}

/*
 * What the step's calls may have written to the workspace: nothing (the
 * harness's own tools, the read-only built-ins, calls that did not run),
 * the paths of their layers' change sets, or anything (a command without
 * a layer, an MCP tool, a call whose outcome is unknown).
 */
static int step_wrote(const struct durin_harness *h, json_t *paths)
{
  int i, w = WROTE_NOTHING;

  for (i = 0; i < h->ncalls; i++) {
    const struct call *c = &h->calls[i];
    const struct durin_tool_def *d = c->def;
    json_t *ch = json_object_get(c->result, "changes");

    if (!c->ran)
      continue;
    if (!d || c->indeterminate)
      return WROTE_ANY;
    if (!d->exec && !d->command && !d->mcp_server)
      continue;
    if (json_is_object(ch)) {
      if (json_is_false(json_object_get(ch, "kept")))
        continue;
      if (add_change_paths(paths, ch) == WROTE_ANY)
        return WROTE_ANY;
      w = WROTE_PATHS;
      continue;
    }
    if (d->exec && !d->command && !d->mcp_server && !d->layered &&
        d->effect == DURIN_EFFECT_PURE)
      continue;
    return WROTE_ANY;
  }
  return json_array_size(paths) ? w : WROTE_NOTHING;
}

/* A value for a trailer: one line of plain characters. */
static void trailer_safe(struct durin_buf *b, const char *s)
{
  for (; *s; s++)
    durin_buf_add(b,
                  (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                          (*s >= '0' && *s <= '9') || strchr("._:-", *s) ?
                      s :
                      "_",
                  1);
}

/*
 * Asks for the workspace's commit before this commit, when git is on and
 * the commit is the run's opening one or a step's whose calls may have
 * written. Returns 1 if it asked.
 */
static int ask_snapshot(struct durin_harness *h, int64_t now, int full_step,
                        struct durin_action *act)
{
  struct durin_snapshot_req *q = &act->snapshot;
  int opening = h->state == DURIN_STEP_START, i, wrote = WROTE_ANY;
  json_t *paths, *v;
  struct durin_buf msg, calls;
  size_t k;

  /* The evaluator's steps change nothing (its workspace is read-only). */
  if (!h->git || h->snap_done || (!opening && !full_step) || h->eval_step)
    return 0;
  paths = json_array();
  if (!opening && !h->git_full)
    wrote = step_wrote(h, paths);
  if (wrote == WROTE_NOTHING) {
    json_decref(paths);
    return 0;
  }
  snapshot_free(h);
  durin_buf_init(&msg, 0);
  durin_buf_init(&calls, 0);
  if (opening) {
    durin_buf_adds(&msg, "step 0: the workspace as the run found it");
  } else {
    durin_buf_addf(&msg, "step %lld:", (long long)(h->ck.step + 1));
    for (i = 0; i < h->ncalls; i++) {
      const struct call *c = &h->calls[i];
      int j, seen = 0;

      if (!c->ran)
        continue;
      for (j = 0; j < i; j++)
        seen |= h->calls[j].ran && !strcmp(h->calls[j].tc->name, c->tc->name);
      if (!seen && msg.len < 200)
        durin_buf_addf(&msg, "%s %.64s",
                       msg.len > 8 && msg.buf[msg.len - 1] != ':' ? "," : "",
                       c->tc->name);
      if (calls.len < 2000) {
        if (calls.len)
          durin_buf_adds(&calls, ",");
        trailer_safe(&calls, c->tc->id);
      }
    }
  }
  h->snap_msg = strdup(msg.buf);
  h->snap_calls = strdup(calls.buf);
  durin_buf_release(&msg);
  durin_buf_release(&calls);
  if (wrote == WROTE_PATHS) {
    h->snap_paths = calloc(json_array_size(paths) + 1, sizeof(char *));
    json_array_foreach(paths, k, v)
      h->snap_paths[h->nsnap_paths++] = strdup(json_string_value(v));
  }
  json_decref(paths);
  memset(act, 0, sizeof(*act));
  act->kind = DURIN_ACT_SNAPSHOT;
  act->step = opening ? 0 : h->ck.step + 1;
  q->step = act->step;
  q->time_s = now / 1000;
  q->parent = h->ck.git_commit[0] ? h->ck.git_commit : NULL;
  q->message = h->snap_msg;
  q->calls = h->snap_calls;
  q->paths = (const char *const *)h->snap_paths;
  q->npaths = h->nsnap_paths;
  set_state(h, DURIN_STEP_AWAIT_SNAPSHOT);
  return 1;
}

/* Builds the step's commit: events, checkpoint and run update. */
static void do_commit_action(struct durin_harness *h, int64_t now,
                             struct durin_action *act)
{
  /* Stopped inside the step: the step stays open (pending response). */
  int needs_human = h->needs_human || h->waiting;
  int full_step = h->step_counts && !needs_human;
  size_t i, n;
  json_t *e, *loop = NULL, *storm = NULL;

  if (ask_snapshot(h, now, full_step, act))
    return;
  commit_buffers_free(h);
  if (h->restored) {
    json_array_insert_new(h->events, 0,
                          json_pack("[s,{s:I,s:I}]", "resumed", "attempt",
                                    (json_int_t)h->attempt, "from_step",
                                    (json_int_t)h->ck.step));
    h->restored = 0;
  }
  if (full_step) {
    json_t *mr, *counted = NULL;
    size_t at = json_array_size(h->events) &&
                        !strcmp(json_string_value(json_array_get(
                                    json_array_get(h->events, 0), 0)),
                                "resumed") ?
                    1 :
                    0;

    /* A complete step: the model response, then each call's result. */
    mr = durin_model_response_to_json(&h->resp);
    json_object_set_new(mr, "cost_usd", json_real(h->step_cost));
    json_object_set_new(mr, "retries", json_integer(h->step_retries));
    json_object_set_new(mr, "duration_ms", json_integer(h->step_model_ms));
    /* How full the context was: the request's bytes as the window counts
     * them (with what a provider's wire format adds). */
    if (h->step_req_bytes)
      json_object_set_new(mr, "request_bytes",
                          json_integer((json_int_t)h->step_req_bytes));
    if (h->step_req_text) {
      /* How densely the provider counted (context.reset_at in tokens). */
      json_object_set_new(mr, "request_text", json_integer(h->step_req_text));
      h->ck.density[0] = h->step_req_text;
      h->ck.density[1] = h->resp.input_tokens;
    }
    /* The agent's calls that ran count in the breakers, and the event
     * says which and under what limits (replay.c counts them again). */
    if (!h->eval_step && !h->sum_kind)
      counted = guard_count(h, &h->ck.guard, h->ncalls, &loop, &storm);
    if (json_array_size(counted)) {
      json_t *g = json_object_get(h->ck.guard, "limits");

      /* The limits they were counted under (replay.c counts the same). */
      json_object_set_new(
          mr, "guard", json_pack("{s:O,s:O}", "calls", counted, "limits", g));
    }
    json_decref(counted);
    /* The calls this step counted in usage.tool_calls (ran, reused, or
     * declared of unknown outcome; the evaluator's: in eval_usage): what
     * a replay of the log adds. */
    json_object_set_new(
        mr, "calls_counted",
        json_integer(h->eval_step ?
                         h->ck.eval_usage.tool_calls - h->ck_eval_tool_calls :
                         h->ck.usage.tool_calls - h->ck_tool_calls));
    if (h->eval_step)
      json_object_set_new(mr, "role", json_string("evaluator"));
    if (h->sum_kind)
      json_object_set_new(mr, "role", json_string("summary"));
    json_array_insert_new(h->events, at,
                          json_pack("[s,o]", "model_response", mr));
    /* Each call's policy decision, then its result. */
    for (i = 0, at++; i < (size_t)h->ncalls; i++) {
      if (h->eval_step && h->calls[i].result)
        json_object_set_new(h->calls[i].result, "role",
                            json_string("evaluator"));
      if (h->calls[i].policy_ev) {
        if (h->eval_step)
          json_object_set_new(h->calls[i].policy_ev, "role",
                              json_string("evaluator"));
        json_array_insert_new(
            h->events, at++,
            json_pack("[s,O]", "policy", h->calls[i].policy_ev));
      }
      json_array_insert_new(
          h->events, at++,
          json_pack("[s,O]", "tool_result", h->calls[i].result));
    }
    guard_stop(h, loop, storm);
    loop = storm = NULL;
    if (!h->resp.ncalls && !h->ended && !h->eval_step && !h->sum_kind)
      add_event(h, "user_message",
                json_pack("{s:s}", "content",
                          "Continue with the goal using the tools, and call "
                          "finish when it is met."));
    h->ck.step++;
    /* The evaluator's steps are its own (eval_usage), not the agent's
     * step budget nor its script's turns; nor are summaries. */
    if (!h->eval_step && !h->sum_kind) {
      h->ck.usage.steps++;
      h->ck.turn++;
      phase_end_check(h);
    }
  }
  if (h->ended && durin_run_status_terminal(h->end_status)) {
    json_t *fin =
        json_pack("{s:s,s:s}", "status", durin_run_status_name(h->end_status),
                  "reason", h->end_reason);

    if (h->ck.summary)
      json_object_set_new(fin, "summary", json_string(h->ck.summary));
    /* Ended between two steps (no model response in this commit): the
     * events before it in the commit are not the last step's (replay.c). */
    if (!full_step)
      json_object_set_new(fin, "between_steps", json_true());
    add_event(h, "run_finished", fin);
  }
  /* What the driver found on restore (the boot files, a workspace
   * unlike its checkpoint's commit). */
  json_array_foreach(h->notes, i, e)
    json_array_append(h->events, e);
  json_array_clear(h->notes);
  if (!needs_human) {
    /* With the checkpoint that holds their window start. */
    json_array_foreach(h->compactions, i, e)
      add_event(h, "compaction", json_incref(e));
    json_array_clear(h->compactions);
  }
  n = json_array_size(h->events);
  h->ev = calloc(n + 1, sizeof(*h->ev));
  h->ev_data = calloc(n + 1, sizeof(char *));
  json_array_foreach(h->events, i, e) {
    h->ev_data[i] = json_dumps(json_array_get(e, 1), JSON_COMPACT);
    h->ev[i].type = json_string_value(json_array_get(e, 0));
    h->ev[i].data = h->ev_data[i];
    h->ev[i].ts_ms = now;
    h->ev[i].step = h->ck.step + (needs_human ? 1 : 0);
  }
  h->nev = n;
  memset(act, 0, sizeof(*act));
  act->kind = DURIN_ACT_COMMIT;
  act->step = h->ck.step;
  act->events = h->ev;
  act->nevents = n;
  /* A run stopped mid-step keeps its last checkpoint: the step's usage is
   * counted again from the pending record when it resumes. */
  if (h->ck.eval)
    json_object_set_new(h->ck.eval, "at_ms", json_integer(now));
  if (!needs_human) {
    if (h->ck.handoff && !h->handoff_text)
      h->handoff_text = json_dumps(h->ck.handoff, JSON_COMPACT);
    h->ck_text = durin_checkpoint_dump_with(&h->ck, h->handoff_text);
    act->checkpoint = h->ck_text;
    h->ck_tool_calls = h->ck.usage.tool_calls;
    h->ck_eval_tool_calls = h->ck.eval_usage.tool_calls;
    act->update.usage = &h->ck.usage;
  }
  act->update.started_ms = -1;
  act->update.finished_ms = -1;
  act->update.now_ms = now;
  act->clear_pending = !needs_human;
  if (h->waiting) {
    act->pending = h->pending_written ? NULL : h->pending_text;
    act->approval = &h->approval;
  }
  if (h->ended || needs_human) {
    act->status = h->ended   ? h->end_status :
                  h->waiting ? DURIN_RUN_WAITING_APPROVAL :
                               DURIN_RUN_NEEDS_HUMAN;
    act->update.status = &act->status;
    act->update.reason = h->end_reason;
    act->update.release_lease = 1;
    if (h->ended && durin_run_status_terminal(h->end_status))
      act->update.finished_ms = now;
  } else {
    act->status = DURIN_RUN_RUNNING;
    act->update.status = &act->status;
    act->update.reason = "";
  }
  set_state(h, DURIN_STEP_AWAIT_COMMIT);
}

void durin_harness_next(struct durin_harness *h, int64_t now,
                        struct durin_action *act)
{
  char why[400];

  memset(act, 0, sizeof(*act));
  act->step = h->ck.step + 1;
  switch (h->state) {
  case DURIN_STEP_START:
    /* The opening commit: the run's first events and checkpoint. */
    h->ck.started_ms = now;
    h->ck.window_start = 1;
    add_event(h, "run_started",
              json_pack("{s:s,s:s,s:s,s:s}", "name", h->spec->name, "model",
                        h->spec->model.name, "provider",
                        h->spec->model.provider, "workspace",
                        h->spec->workspace));
    if (h->spec->nphases) {
      /* The first phase begins with the run (its state in the event, for
       * a replay of the log). */
      h->ck.phase = json_pack("{s:i,s:s,s:i,s:i,s:b}", "index", 0, "name",
                              h->spec->phases[0].name, "started_step", 0,
                              "from_seq", 1, "due", 0);
      json_object_set(json_array_get(json_array_get(h->events, 0), 1), "phase",
                      h->ck.phase);
      extra_update(h);
    }
    do_commit_action(h, now, act);
    return;
  case DURIN_STEP_IDLE:
    if (h->cancel) {
      int i;

      /* A replayed step (say, one waiting for approval) ends unrun. */
      for (i = 0; i < h->ncalls; i++)
        if (h->calls[i].state != CALL_RESOLVED)
          resolve_call(&h->calls[i], 0, "not run: the run was cancelled");
      end_run(h, DURIN_RUN_CANCELLED, h->cancel_reason);
      add_event(h, "cancelled", json_pack("{s:s}", "reason", h->cancel_reason));
      set_state(h, DURIN_STEP_COMMIT);
      do_commit_action(h, now, act);
      return;
    }
    if (h->have_resp) {
      /* Resumed inside a step whose response and intents were durable. */
      set_state(h, DURIN_STEP_DISPATCH);
      dispatch(h, now, act);
      return;
    }
    if (h->ck.eval) {
      eval_next(h, now, act);
      return;
    }
    if (durin_budget_exceeded(&h->spec->budget, &h->ck.usage,
                              now - h->ck.started_ms, 0, why, sizeof(why))) {
      end_over_budget(h, why);
      set_state(h, DURIN_STEP_COMMIT);
      do_commit_action(h, now, act);
      return;
    }
    if (json_is_true(json_object_get(h->ck.phase, "due"))) {
      summary_begin(h, SUM_PHASE, now, act);
    } else {
      if (resets(h) && h->spec->reset_tokens &&
          ctx_limit(h, cur_phase(h)) != h->limit) {
        struct durin_err err = { 0 };

        /* The provider counts denser than a third of the bytes: the cap
         * in bytes shrinks, and it may no longer hold what every request
         * carries. */
        if (phase_size(h, cur_phase(h), &err)) {
          snprintf(why, sizeof(why),
                   "context.reset_at (%lld tokens) is too small for this "
                   "spec at the provider's count of its tokens: %.250s; "
                   "raise it",
                   (long long)h->spec->reset_tokens, err.msg);
          end_run(h, DURIN_RUN_FAILED, why);
          set_state(h, DURIN_STEP_COMMIT);
          do_commit_action(h, now, act);
          return;
        }
      }
      model_request(h, act);
      if (resets(h) &&
          (h->req_bytes > h->limit ||
           durin__window_count(h->win) > durin__window_max_messages(h->win))) {
        if (h->ck.reset && json_integer_value(json_object_get(
                               h->ck.reset, "step")) == h->ck.step) {
          /* Reset, and still over: no reset can help (a bug, or a cap
           * that the pinned message alone fills). */
          snprintf(why, sizeof(why),
                   "the context was just reset and the next request (%zu "
                   "bytes) is still over its cap (%zu bytes, "
                   "context.reset_at): raise context.reset_at",
                   h->req_bytes, h->limit);
          end_run(h, DURIN_RUN_FAILED, why);
          set_state(h, DURIN_STEP_COMMIT);
          do_commit_action(h, now, act);
          return;
        }
        h->sum_before = h->req_bytes;
        summary_begin(h, SUM_RESET, now, act);
      }
    }
    if (durin_budget_next_call(&h->spec->budget, &h->spec->model, &h->ck.usage,
                               durin_budget_input_tokens(h->req_bytes,
                                                         h->last_in_tokens,
                                                         h->last_req_bytes),
                               why, sizeof(why))) {
      /* Refused before it is made: no call may cross a budget. */
      end_over_budget(h, why);
      set_state(h, DURIN_STEP_COMMIT);
      do_commit_action(h, now, act);
      return;
    }
    act->kind = DURIN_ACT_MODEL;
    set_state(h, DURIN_STEP_AWAIT_MODEL);
    return;
  case DURIN_STEP_DISPATCH:
    dispatch(h, now, act);
    return;
  case DURIN_STEP_AWAIT_OUTCOME:
    act->kind = DURIN_ACT_OUTCOME;
    act->call = h->cur;
    act->outcome = h->outcome_text;
    return;
  case DURIN_STEP_COMMIT:
    do_commit_action(h, now, act);
    return;
  case DURIN_STEP_ENDED:
    act->kind = DURIN_ACT_DONE;
    act->status = h->end_status;
    act->reason = h->end_reason;
    return;
  case DURIN_STEP_AWAIT_MODEL:
  case DURIN_STEP_AWAIT_INTENT:
  case DURIN_STEP_AWAIT_TOOL:
  case DURIN_STEP_AWAIT_CHECKS:
  case DURIN_STEP_AWAIT_COMMIT:
  default:
    /* Waiting for a completion; asking again repeats nothing. */
    act->kind = DURIN_ACT_DONE;
    act->status = DURIN_RUN_RUNNING;
    act->reason = "internal: next() called while waiting";
    return;
  }
}

/* Counts the step's model response in the run's usage. */
static void account_model(struct durin_harness *h)
{
  h->ck.usage.model_calls++;
  h->ck.usage.input_tokens += h->resp.input_tokens;
  h->ck.usage.output_tokens += h->resp.output_tokens;
  h->step_cost = durin_model_response_cost(step_cfg(h), &h->resp);
  h->ck.usage.cost_usd += h->step_cost;
  if (h->eval_step) {
    struct durin_usage *eu = &h->ck.eval_usage;

    eu->steps++;
    eu->model_calls++;
    eu->input_tokens += h->resp.input_tokens;
    eu->output_tokens += h->resp.output_tokens;
    eu->cost_usd += h->step_cost;
    eval_add(h, "steps", 1);
    eval_add(h, "input_tokens", h->resp.input_tokens);
    eval_add(h, "output_tokens", h->resp.output_tokens);
    json_object_set_new(
        h->ck.eval, "cost_usd",
        json_real(json_real_value(json_object_get(h->ck.eval, "cost_usd")) +
                  h->step_cost));
  }
}

/* After the model answered: account for it and validate its calls. If a
 * call with side effects will run, the response is kept to be made durable
 * with the first intent, so a resumed step replays this exact response. */
static void after_model(struct durin_harness *h)
{
  h->step_counts = 1;
  account_model(h);
  if (prepare_calls(h, h->ck.step + 1))
    make_pending(h);
  set_state(h, DURIN_STEP_DISPATCH);
}

int durin_harness_complete(struct durin_harness *h,
                           const struct durin_completion *c)
{
  struct call *cl;
  size_t i;
  json_t *e;
  char wc_why[200];

  switch (c->kind) {
  case DURIN_DONE_MODEL:
    if (h->state != DURIN_STEP_AWAIT_MODEL)
      return DURIN_ESTATE;
    h->resp = *c->resp;
    memset(c->resp, 0, sizeof(*c->resp));
    h->have_resp = 1;
    h->step_retries = c->retries;
    h->step_model_ms = c->latency_ms > 0 ? c->latency_ms : 0;
    h->ck.usage.retries += c->retries;
    h->last_in_tokens = h->resp.input_tokens;
    h->last_req_bytes = h->req_bytes;
    h->step_req_bytes = h->req_bytes;
    if (h->spec->reset_tokens && !h->eval_step && h->resp.input_tokens > 0) {
      size_t slack =
          durin__window_slack(json_array_size(h->req_msgs),
                              h->sum_kind ? json_array_size(h->stools) :
                              h->ptools   ? json_array_size(h->ptools) :
                                            json_array_size(h->tools));

      h->step_req_text =
          h->req_bytes > slack ? (int64_t)(h->req_bytes - slack) : 1;
    }
    if (h->sum_kind) {
      /* A summary: no calls to run; the step commits what it wrote. */
      h->step_counts = 1;
      account_model(h);
      summary_end(h);
      set_state(h, DURIN_STEP_COMMIT);
      return 0;
    }
    after_model(h);
    return 0;
  case DURIN_DONE_MODEL_ERROR:
    if (h->state != DURIN_STEP_AWAIT_MODEL)
      return DURIN_ESTATE;
    h->ck.usage.retries += c->retries;
    if (h->cancel) {
      /* The call was abandoned because the run is being cancelled. */
      end_run(h, DURIN_RUN_CANCELLED, h->cancel_reason);
      add_event(h, "cancelled", json_pack("{s:s}", "reason", h->cancel_reason));
      set_state(h, DURIN_STEP_COMMIT);
      return 0;
    }
    if (durin_budget_wall_clock_over(&h->spec->budget,
                                     c->now_ms - h->ck.started_ms, wc_why,
                                     sizeof(wc_why))) {
      /* The call was cut at the run's wall-clock budget. */
      end_over_budget(h, wc_why);
      set_state(h, DURIN_STEP_COMMIT);
      return 0;
    }
    if (h->eval_step && h->ck.eval) {
      /* The default FAIL: cut at the evaluation's end (its deadline,
       * give or take the clock's tick), or the evaluator's model failed. */
      char ewhy[600];
      int late = c->now_ms - eval_get(h, "started_ms") >=
                 h->spec->evaluator.timeout_ms - 1000;

      snprintf(ewhy, sizeof(ewhy), "%s: %s",
               late ? "no verdict within evaluator.timeout_s" :
                      "the evaluator's model call failed",
               c->error ? c->error : "no reason given");
      if (late) {
        eval_fail(h, "timeout", ewhy);
        set_state(h, DURIN_STEP_COMMIT);
        return 0;
      }
      /* Not the agent's doing: the run fails on it as on its own. */
      eval_abort(h, "error", ewhy);
    }
    end_run(h, DURIN_RUN_FAILED, c->error ? c->error : "model call failed");
    add_event(h, "model_error",
              json_pack("{s:s,s:I}", "error", h->end_reason, "retries",
                        (json_int_t)c->retries));
    set_state(h, DURIN_STEP_COMMIT);
    return 0;
  case DURIN_DONE_POLICY:
    if (h->state != DURIN_STEP_AWAIT_POLICY || !c->decision)
      return DURIN_ESTATE;
    cl = &h->calls[h->cur];
    cl->dec = *c->decision;
    cl->policy_done = 1;
    json_decref(cl->policy_ev);
    cl->policy_ev = policy_event(cl);
    set_state(h, DURIN_STEP_DISPATCH);
    return 0;
  case DURIN_DONE_INTENT:
    if (h->state != DURIN_STEP_AWAIT_INTENT)
      return DURIN_ESTATE;
    h->calls[h->cur].intent = 1;
    h->pending_written = 1;
    set_state(h, DURIN_STEP_DISPATCH);
    return 0;
  case DURIN_DONE_TOOL:
    if (h->state != DURIN_STEP_AWAIT_TOOL)
      return DURIN_ESTATE;
    cl = &h->calls[h->cur];
    json_decref(cl->result);
    cl->result = result_json(cl, c->tool, 0);
    durin_tool_result_clear(c->tool);
    if (cl->edited && cl->result) {
      /* The model asked for other arguments: it must know what ran. */
      char *ran = canonical(cl->args);
      struct durin_buf b;

      durin_buf_init(&b, 0);
      durin_buf_addf(&b,
                     "note: a reviewer edited this call before it ran; it "
                     "ran with %s\n%s",
                     ran,
                     json_string_value(json_object_get(cl->result, "output")));
      json_object_set_new(cl->result, "output", json_string(b.buf));
      json_object_set_new(cl->result, "edited_arguments", json_string(ran));
      durin_buf_release(&b);
      free(ran);
    }
    cl->state = CALL_RESOLVED;
    /* Killed at the evaluation's end: it is over, whatever the clock
     * says a millisecond later. */
    if (h->eval_step && h->eval_cut && h->ck.eval &&
        json_is_true(json_object_get(cl->result, "timed_out")))
      json_object_set_new(h->ck.eval, "cut", json_true());
    cl->ran = 1;
    cl->counted = !h->eval_step;
    if (h->eval_step)
      h->ck.eval_usage.tool_calls++;
    else
      h->ck.usage.tool_calls++;
    if (cl->intent) {
      free(h->outcome_text);
      h->outcome_text = json_dumps(cl->result, JSON_COMPACT);
      set_state(h, DURIN_STEP_AWAIT_OUTCOME);
    } else {
      h->cur++;
      set_state(h, DURIN_STEP_DISPATCH);
    }
    return 0;
  case DURIN_DONE_OUTCOME:
    if (h->state != DURIN_STEP_AWAIT_OUTCOME)
      return DURIN_ESTATE;
    h->cur++;
    set_state(h, DURIN_STEP_DISPATCH);
    return 0;
  case DURIN_DONE_CHECKS: {
    struct durin_buf out;
    json_t *res = json_array();
    int all = 1, k;

    if (h->state != DURIN_STEP_AWAIT_CHECKS)
      return DURIN_ESTATE;
    if (h->phase_checking) {
      json_decref(res);
      phase_check_done(h, c);
      set_state(h, DURIN_STEP_DISPATCH);
      return 0;
    }
    cl = &h->calls[h->cur];
    h->checks_done = 1;
    durin_buf_init(&out, (size_t)h->spec->output_cap + 1024);
    for (k = 0; k < c->nchecks; k++) {
      const struct durin_check_result *r = &c->checks[k];

      all = all && r->ok;
      json_array_append_new(
          res, json_pack("{s:s,s:b,s:i,s:b,s:s}", "name", r->name, "ok", r->ok,
                         "exit_code", r->exit_code, "timed_out", r->timed_out,
                         "output", r->output ? r->output : ""));
      if (!r->ok)
        durin_buf_addf(&out, "check '%s' failed (%s %d):\n%s\n", r->name,
                       r->timed_out ? "timed out, exit" : "exit code",
                       r->exit_code, r->output ? r->output : "");
    }
    /* Default FAIL: no verdict (no results at all) is not a pass. */
    if (c->nchecks == 0)
      all = 0;
    h->ck.eval_attempts++;
    add_event(h, "checks",
              json_pack("{s:b,s:I,s:o}", "passed", all, "attempt",
                        (json_int_t)h->ck.eval_attempts, "results", res));
    free(h->ck.summary);
    h->ck.summary =
        strdup(json_string_value(json_object_get(cl->args, "summary")));
    if (all && h->spec->evaluator.set) {
      resolve_call(cl, 1, eval_pending_msg);
      h->eval_open = 1;
      json_decref(h->eval_checks);
      h->eval_checks = json_incref(res);
    } else if (all) {
      resolve_call(cl, 1, "accepted: every acceptance check passed");
      end_run(h, DURIN_RUN_SUCCEEDED, "acceptance checks passed");
    } else if (h->ck.eval_attempts >= h->spec->max_eval_attempts) {
      char why[200];

      resolve_call(cl, 0, out.buf);
      snprintf(why, sizeof(why),
               "acceptance checks failed %lld time(s), the limit set by "
               "max_eval_attempts",
               (long long)h->ck.eval_attempts);
      end_run(h, DURIN_RUN_FAILED, why);
    } else {
      struct durin_buf msg;

      durin_buf_init(&msg, 0);
      durin_buf_addf(&msg,
                     "not accepted (attempt %lld of %lld): fix the "
                     "problems below and call finish again.\n%s",
                     (long long)h->ck.eval_attempts,
                     (long long)h->spec->max_eval_attempts, out.buf);
      resolve_call(cl, 0, msg.buf);
      durin_buf_release(&msg);
    }
    durin_buf_release(&out);
    h->cur++;
    set_state(h, DURIN_STEP_DISPATCH);
    return 0;
  }
  case DURIN_DONE_DIFF:
    if (h->state != DURIN_STEP_AWAIT_DIFF)
      return DURIN_ESTATE;
    h->eval_diff_done = 1;
    eval_begin(h, c->diff, c->error, c->now_ms);
    set_state(h, DURIN_STEP_DISPATCH);
    return 0;
  case DURIN_DONE_SNAPSHOT: {
    const struct durin_snapshot_result *sr = c->snapshot;

    if (h->state != DURIN_STEP_AWAIT_SNAPSHOT || !sr)
      return DURIN_ESTATE;
    h->snap_done = 1;
    if (sr->commit && strlen(sr->commit) < sizeof(h->ck.git_commit)) {
      if (sr->changed)
        add_event(
            h, "workspace_commit",
            json_pack(
                "{s:s,s:o,s:I,s:I,s:I,s:I}", "commit", sr->commit, "parent",
                sr->parent ? json_string(sr->parent) : json_null(), "step",
                (json_int_t)(h->ck.step + (h->step_counts ? 1 : 0)), "files",
                (json_int_t)sr->files, "insertions", (json_int_t)sr->insertions,
                "deletions", (json_int_t)sr->deletions));
      snprintf(h->ck.git_commit, sizeof(h->ck.git_commit), "%s", sr->commit);
      h->git_full = 0;
    } else {
      /* The step is kept all the same; the next snapshot looks at the
       * whole workspace, so what this one missed goes into it. */
      add_event(h, "workspace_commit_failed",
                json_pack("{s:I,s:s}", "step",
                          (json_int_t)(h->ck.step + (h->step_counts ? 1 : 0)),
                          "error", sr->error ? sr->error : "unknown error"));
      h->git_full = 1;
    }
    set_state(h, DURIN_STEP_COMMIT);
    return 0;
  }
  case DURIN_DONE_COMMIT:
    if (h->state != DURIN_STEP_AWAIT_COMMIT)
      return DURIN_ESTATE;
    /* The step is durable: its messages join the window with their seqs. */
    json_array_foreach(h->events, i, e) {
      if (i < h->nev)
        route_event(h, json_string_value(json_array_get(e, 0)),
                    json_array_get(e, 1), h->ev[i].seq);
    }
    commit_buffers_free(h);
    if (h->ended || h->needs_human || h->waiting) {
      if (h->needs_human)
        h->end_status = DURIN_RUN_NEEDS_HUMAN;
      if (h->waiting)
        h->end_status = DURIN_RUN_WAITING_APPROVAL;
      h->ended = 1;
      step_reset(h);
      set_state(h, DURIN_STEP_ENDED);
      return 0;
    }
    step_reset(h);
    h->resolve = -1;
    set_state(h, DURIN_STEP_IDLE);
    return 0;
  default:
    return DURIN_ESTATE;
  }
}

/* The effect a ledger intent recorded (an unknown name counts as unsafe;
 * none recorded: the current one). */
static enum durin_effect effect_severity(const char *name,
                                         enum durin_effect current)
{
  if (!name)
    return current;
  if (!strcmp(name, "pure"))
    return DURIN_EFFECT_PURE;
  if (!strcmp(name, "idempotent"))
    return DURIN_EFFECT_IDEMPOTENT;
  return DURIN_EFFECT_UNSAFE;
}

int durin_harness_load_pending(struct durin_harness *h, int64_t step,
                               const char *response,
                               const struct durin_ledger_entry *entries, int n,
                               struct durin_err *err)
{
  json_error_t je;
  json_t *j;
  int i, r;

  if (step != h->ck.step + 1)
    return 0; /* left over from a step that did commit: ignore it */
  j = json_loads(response, 0, &je);
  if (!j)
    return durin_err_set(err, DURIN_EPARSE,
                         "pending response of run '%s' is not JSON: %s",
                         h->run_id, je.text);
  r = durin_model_response_from_json(j, &h->resp, err);
  h->step_retries = json_integer_value(json_object_get(j, "retries"));
  h->step_model_ms = json_integer_value(json_object_get(j, "duration_ms"));
  h->step_req_text = json_integer_value(json_object_get(j, "request_text"));
  json_decref(j);
  if (r)
    return r;
  h->have_resp = 1;
  h->step_counts = 1;
  h->pending_written = 1;
  account_model(h);
  /* The step's retries count once, like its tokens: the checkpoint the
   * run restored from was written before this response arrived. */
  h->ck.usage.retries += h->step_retries;
  prepare_calls(h, step);
  for (i = 0; i < n; i++) {
    const struct durin_ledger_entry *e = &entries[i];
    struct call *c;

    if (e->call_idx < 0 || e->call_idx >= h->ncalls)
      continue;
    c = &h->calls[e->call_idx];
    c->intent = 1;
    if (!c->def) {
      /* An MCP tool its server no longer lists: prepare_calls answered it
       * as unknown, but it was dispatched once and may have run. Reused
       * if its outcome is known; else the operator decides (dispatch). */
      if (!e->done) {
        json_decref(c->result);
        c->result = NULL;
        c->state = CALL_NEW;
        c->indeterminate = 1;
        c->ran = 1;
        c->effect = DURIN_EFFECT_UNSAFE;
        continue;
      }
    } else if (strcmp(e->args_hash, c->args_hash) != 0)
      return durin_err_set(err, DURIN_EPARSE,
                           "ledger entry for call %d of step %lld does not "
                           "match the recorded response (arguments hash "
                           "differs); refusing to continue",
                           e->call_idx, (long long)step);
    if (e->done && e->outcome) {
      /* Exactly once: the recorded outcome is reused, never re-run. */
      json_t *o = json_loads(e->outcome, 0, &je);

      if (!o)
        return durin_err_set(err, DURIN_EPARSE,
                             "ledger outcome of call %d is not JSON",
                             e->call_idx);
      json_object_set_new(o, "reused", json_true());
      json_decref(c->result);
      c->result = o;
      c->state = CALL_RESOLVED;
      c->ran = 1;
      c->counted = 1;
      h->ck.usage.tool_calls++;
    } else {
      c->indeterminate = 1;
      c->ran = 1; /* it may have run before the crash */
      c->contained = e->contained;
      /* Judged by what the intent recorded, never by a milder effect a
       * server announces after the crash. */
      if (effect_severity(e->effect, c->effect) > c->effect)
        c->effect = effect_severity(e->effect, c->effect);
    }
  }
  /* Calls before the first unresolved one are done; start from there. */
  h->cur = 0;
  return 0;
}

void durin_harness_set_git(struct durin_harness *h, int on)
{
  h->git = on;
}

int durin_harness_step_open(const struct durin_harness *h)
{
  return h->have_resp;
}

const char *durin_harness_git_commit(const struct durin_harness *h)
{
  return h->ck.git_commit[0] ? h->ck.git_commit : NULL;
}

void durin_harness_git_reset(struct durin_harness *h, int lost)
{
  h->git_full = 1;
  if (lost)
    h->ck.git_commit[0] = '\0';
}

void durin_harness_note(struct durin_harness *h, const char *type, json_t *data)
{
  json_array_append_new(h->notes, json_pack("[s,o]", type, data));
}

void durin_harness_set_boot(struct durin_harness *h, const char *text,
                            json_t *event)
{
  struct durin_err err = { 0 };

  /* It cannot fail: the fixed part of a request is what it was. */
  durin__window_boot(h->win, h->spec, h->tools, text, &err);
  if (event)
    durin_harness_note(h, "boot", event);
}

void durin_harness_set_sandboxed(struct durin_harness *h, int sandboxed)
{
  h->sandboxed = sandboxed;
}

int durin_harness_load_approval(struct durin_harness *h,
                                const struct durin_approval *a,
                                struct durin_err *err)
{
  struct call *c;

  if (!h->have_resp || a->step != h->ck.step + 1)
    return 0; /* about a step that committed: history only */
  if (a->call_idx < 0 || a->call_idx >= h->ncalls)
    return durin_err_set(err, DURIN_EPARSE,
                         "approval %s names call %d of step %lld, which has "
                         "%d calls; refusing to continue",
                         a->id, a->call_idx, (long long)a->step, h->ncalls);
  c = &h->calls[a->call_idx];
  if (!c->tc || strcmp(a->call_id, c->tc->id))
    return durin_err_set(err, DURIN_EPARSE,
                         "approval %s is for call '%s' but the step's call %d "
                         "is '%s'; refusing to continue",
                         a->id, a->call_id, a->call_idx,
                         c->tc ? c->tc->id : "?");
  c->have_approval = 1;
  c->ap_state = a->state;
  snprintf(c->ap_id, sizeof(c->ap_id), "%s", a->id);
  snprintf(c->ap_args_hash, sizeof(c->ap_args_hash), "%s", a->args_hash);
  snprintf(c->ap_call_hash, sizeof(c->ap_call_hash), "%s", a->call_hash);
  free(c->ap_args);
  free(c->ap_by);
  free(c->ap_comment);
  free(c->ap_on_expiry);
  c->ap_args = strdup(a->args ? a->args : "");
  c->ap_by = a->decided_by ? strdup(a->decided_by) : NULL;
  c->ap_comment = a->comment ? strdup(a->comment) : NULL;
  c->ap_on_expiry = a->on_expiry ? strdup(a->on_expiry) : NULL;
  return 0;
}

enum durin_step_state durin_harness_state(const struct durin_harness *h)
{
  return h->state;
}

const struct durin_usage *durin_harness_usage(const struct durin_harness *h)
{
  return &h->ck.usage;
}

int64_t durin_harness_step(const struct durin_harness *h)
{
  return h->ck.step;
}

json_t *durin_harness_messages(const struct durin_harness *h)
{
  return durin__window_messages(h->win);
}
