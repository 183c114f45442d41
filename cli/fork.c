/*
 * Fork and continue (docs/internals/fork.md), shared by `durin fork`,
 * `durin continue` and the HTTP API. Nothing here prints: a failure is a
 * DURIN_E* code with err's message, which says what to do.
 *
 * fork: the original's log is replayed to step N (harness/replay.c); the
 * new run gets the log's prefix through step N's commit, the checkpoint
 * of that moment, and a workspace that is step N's git commit of the
 * original's branch, with a copy of its repository so the fork's branch
 * durin/NEW goes on from there. The original is only read.
 *
 * continue: an ended run gets a user message and goes back to the queue;
 * its checkpoint starts a new attempt (no evaluations yet, no summary,
 * the wall clock as it was when the run ended).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "durin/git.h"
#include "durin/harness.h"
#include "durin/spec.h"
#include "durin/util.h"

/* ---- fork ---- */

struct replay_ctx {
  struct durin_replay *r;
  struct durin_err *err;
  int64_t last;
  int done;
};

static int replay_one(const struct durin_event *ev, void *arg)
{
  struct replay_ctx *c = arg;
  int r = durin_replay_add(c->r, ev, c->err);

  c->last = ev->seq;
  if (r == 1)
    c->done = 1;
  return r;
}

/* Replays run id's log to step; pages of events, so a long log with
 * large outputs is never in memory at once. */
static int replay_log(struct durin_store *st, const char *id, int64_t step,
                      struct durin_checkpoint *ck,
                      struct durin_replay_result *res, struct durin_err *err)
{
  struct replay_ctx c = { NULL, err, 0, 0 };
  int64_t before;
  int r;

  if ((r = durin_replay_new(step, &c.r, err)))
    return r;
  do {
    before = c.last;
    r = durin_store_events_read(st, id, c.last + 1, 256, replay_one, &c, err);
  } while (r == 0 && !c.done && c.last != before);
  if (r >= 0 && (r == 0 || c.done))
    r = durin_replay_result(c.r, ck, res, err);
  durin_replay_free(c.r);
  if (r == DURIN_ENOTFOUND) {
    char why[sizeof(err->msg)];

    snprintf(why, sizeof(why), "%s", err->msg);
    r = durin_err_set(err, DURIN_EINVAL,
                      "cannot fork run '%s' at step %lld: %s", id,
                      (long long)step, why);
  }
  return r;
}

struct step_find {
  int64_t step;
  char commit[DURIN_GIT_HEX];
};

/* The newest commit of the branch at or before the step (its trailer).
 * A commit without one is the user's, where the run started: the
 * workspace before its first step (an opening snapshot that changed
 * nothing makes no commit of its own). */
static int find_step(void *arg, const struct durin_git_log_entry *e)
{
  struct step_find *f = arg;

  if (e->step && atoll(e->step) > f->step)
    return 0;
  snprintf(f->commit, sizeof(f->commit), "%s", e->id);
  return 1;
}

static int no_checkpoints(const char *id, const char *why,
                          struct durin_err *err)
{
  return durin_err_set(
      err, DURIN_ESTATE,
      "cannot fork run '%s': its workspace has no git checkpoints (%s); a "
      "fork starts from the commit of a step on the branch durin/%s, so "
      "only a run whose workspace is a git repository (or whose spec asks "
      "for one) can be forked: submit the spec again with such a "
      "workspace",
      id, why, id);
}

/* The commit of step (from the log, else the branch's trailers). */
static int step_commit(struct durin_git *g, const char *id, int64_t step,
                       const char *logged, char out[DURIN_GIT_HEX],
                       struct durin_err *err)
{
  struct step_find f;
  char branch[160];
  int r;

  if (logged && *logged) {
    snprintf(out, DURIN_GIT_HEX, "%.40s", logged);
    return 0;
  }
  if ((r = durin_git_branch_name(id, branch, sizeof(branch), err)))
    return r;
  memset(&f, 0, sizeof(f));
  f.step = step;
  r = durin_git_log(g, branch, 0, find_step, &f, err);
  if (r == DURIN_ENOTFOUND)
    return no_checkpoints(id, "no branch durin/RUN", err);
  if (r < 0)
    return r;
  if (!f.commit[0])
    return durin_err_set(err, DURIN_ESTATE,
                         "cannot fork run '%s' at step %lld: its branch "
                         "%s has no commit at or before that step",
                         id, (long long)step, branch);
  snprintf(out, DURIN_GIT_HEX, "%s", f.commit);
  return 0;
}

/* Step's tree into ws, the original's repository beside it, the fork's
 * branch at the commit; the original's start as the fork's base. */
static int fork_workspace(const char *from, const char *from_ws,
                          const char *new_id, const char *ws, const char *base,
                          int64_t step, const char *logged,
                          char commit[DURIN_GIT_HEX], struct durin_err *err)
{
  struct durin_git *g = NULL, *g2 = NULL;
  char path[PATH_MAX + 64], dir[PATH_MAX], branch[160];
  const char *slash;
  int r;

  r = durin_git_open(from_ws, 0, NULL, &g, err);
  if (r == DURIN_ENOTFOUND || r == DURIN_EINVAL) {
    char why[sizeof(err->msg)];

    snprintf(why, sizeof(why), "%s", err->msg);
    return no_checkpoints(from, why, err);
  }
  if (r)
    return r;
  r = step_commit(g, from, step, logged, commit, err);
  if (!r)
    r = durin_git_checkout_to(g, commit, ws, err);
  durin_git_close(g);
  snprintf(path, sizeof(path), "%s/.git", from_ws);
  if (!r) {
    char to[PATH_MAX + 200];

    snprintf(to, sizeof(to), "%s/.git", ws);
    r = durin_tree_copy(path, to, err);
  }
  if (!r)
    r = durin_git_open(ws, 0, NULL, &g2, err);
  if (!r)
    r = durin_git_branch_name(new_id, branch, sizeof(branch), err);
  if (!r)
    r = durin_git_advance(g2, branch, commit, err);
  durin_git_close(g2);
  /* The original's start: runs/ORIG/base beside runs/ORIG/workspace. */
  slash = strrchr(from_ws, '/');
  snprintf(dir, sizeof(dir), "%.*s",
           (int)(slash ? slash - from_ws : (long)strlen(from_ws)), from_ws);
  snprintf(path, sizeof(path), "%s/base", dir);
  if (!r)
    r = durin_tree_copy(path, base, err);
  return r;
}

/* The new run's spec: the original's, in the fork's workspace, with the
 * new goal if one is given. */
static int fork_spec(const char *spec_json, const char *ws, const char *goal,
                     char **out, char **name, struct durin_err *err)
{
  struct durin_spec spec;
  int r = durin_spec_parse(spec_json, NULL, &spec, err);

  if (r)
    return r;
  if (spec.sandbox.template) {
    durin_err_set(err, DURIN_ESTATE,
                  "its workspace is a view over the template '%s'; fork "
                  "takes runs with a plain workspace only",
                  spec.sandbox.template);
    durin_spec_clear(&spec);
    return DURIN_ESTATE;
  }
  free(spec.workspace);
  spec.workspace = strdup(ws);
  if (goal) {
    free(spec.goal);
    spec.goal = strdup(goal);
  }
  *out = durin_spec_dump(&spec);
  *name = strdup(spec.name ? spec.name : "");
  durin_spec_clear(&spec);
  return 0;
}

static json_t *json_of(const char *text)
{
  json_t *j = json_loads(text, 0, NULL);

  return j ? j : json_object();
}

int cli_fork_run(struct durin_store *st, const char *data,
                 const struct cli_fork *o, char id[32], struct durin_err *err)
{
  struct durin_run_info ri;
  struct durin_run_meta meta;
  struct durin_checkpoint ck;
  struct durin_replay_result res;
  struct durin_run_new rn;
  struct durin_run_fork f;
  struct durin_event ev[2];
  char new_id[32] = "", parent[PATH_MAX + 64], ws[PATH_MAX + 80],
       base[PATH_MAX + 80], commit[DURIN_GIT_HEX] = "";
  char *spec = NULL, *name = NULL, *ck_text = NULL, *ev_text[2] = { 0 };
  json_t *ckj = NULL, *d;
  int64_t now = durin_now_ms();
  int r, have_meta = 0, made = 0;
  size_t n = 0;

  memset(&ck, 0, sizeof(ck));
  if ((r = durin_store_run_get(st, o->from, &ri, err)))
    return r;
  if (durin_store_run_meta(st, ri.id, &meta, NULL) == 0)
    have_meta = 1;
  r = replay_log(st, ri.id, o->at_step, &ck, &res, err);
  if (!r && durin_run_id_new(new_id))
    r = durin_err_set(err, DURIN_EIO, "cannot make a run id");
  snprintf(parent, sizeof(parent), "%s/%s", data, new_id);
  snprintf(ws, sizeof(ws), "%s/workspace", parent);
  snprintf(base, sizeof(base), "%s/base", parent);
  if (!r) {
    r = fork_spec(ri.spec_json, ws, o->goal, &spec, &name, err);
    if (r == DURIN_ESTATE) {
      char why[sizeof(err->msg)];

      snprintf(why, sizeof(why), "%s", err->msg);
      durin_err_set(err, r, "cannot fork run '%s': %s", ri.id, why);
    }
  }
  if (!r && !(r = durin_mkdirs(parent, err))) {
    made = 1;
    r = fork_workspace(ri.id, ri.workspace, new_id, ws, base, o->at_step,
                       res.git_commit, commit, err);
  }
  if (r)
    goto out;
  /* The fork has spent what the original had at step N, wall clock
   * included; the time since is not its. A step that ended the run is
   * the start of a new attempt, as a continue makes it. */
  ck.started_ms = now - (res.through_ms - ck.started_ms);
  if (res.ended) {
    ck.eval_attempts = 0;
    free(ck.summary);
    ck.summary = NULL;
  }
  /* Its workspace is that commit's tree: a restore finds them equal. */
  snprintf(ck.git_commit, sizeof(ck.git_commit), "%s", commit);
  ck_text = durin_checkpoint_dump(&ck);
  ckj = json_of(ck_text);

  d = json_pack("{s:s,s:I,s:s,s:O}", "from", ri.id, "at_step",
                (json_int_t)o->at_step, "commit", commit, "checkpoint", ckj);
  if (o->goal)
    json_object_set_new(d, "goal", json_string(o->goal));
  ev_text[n] = json_dumps(d, JSON_COMPACT);
  json_decref(d);
  memset(ev, 0, sizeof(ev));
  ev[n].type = "forked";
  ev[n].data = ev_text[n];
  n++;
  if (o->goal) {
    struct durin_buf b;

    /* The pinned goal is the new one in every request; this tells the
     * agent, where its conversation stands, that it changed. */
    durin_buf_init(&b, 0);
    durin_buf_addf(&b,
                   "This run is a fork of run %s at step %lld, and its goal "
                   "has changed. The new goal:\n%s",
                   ri.id, (long long)o->at_step, o->goal);
    d = json_pack("{s:s,s:b}", "content", b.buf, "forked", 1);
    durin_buf_release(&b);
    ev_text[n] = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    ev[n].type = "user_message";
    ev[n].data = ev_text[n];
    n++;
  }
  for (size_t i = 0; i < n; i++) {
    ev[i].ts_ms = now;
    ev[i].step = ck.step;
  }

  memset(&rn, 0, sizeof(rn));
  rn.id = new_id;
  rn.name = name;
  rn.spec_json = spec;
  rn.model = ri.model;
  rn.workspace = ws;
  rn.now_ms = now;
  rn.tenant = ri.tenant;
  rn.priority = ri.priority;
  rn.concurrency_key = ri.concurrency_key;
  rn.max_recoveries = ri.max_recoveries;
  rn.owner = o->owner;
  rn.lease_until_ms = now + 60000;
  rn.created_by = o->created_by;
  if (have_meta) {
    rn.agent = meta.agent;
    rn.agent_version = meta.agent_version;
    rn.labels_json = meta.labels_json;
  }
  memset(&f, 0, sizeof(f));
  f.from = ri.id;
  f.through_seq = res.through_seq;
  f.run = &rn;
  f.step = ck.step;
  f.checkpoint = ck_text;
  f.usage = &ck.usage;
  f.events = ev;
  f.nevents = n;
  r = durin_store_run_fork(st, &f, err);
  if (!r)
    snprintf(id, 32, "%s", new_id);
out:
  if (r && made)
    durin_tree_remove(parent);
  for (size_t i = 0; i < 2; i++)
    free(ev_text[i]);
  json_decref(ckj);
  free(ck_text);
  free(spec);
  free(name);
  durin_checkpoint_clear(&ck);
  if (have_meta)
    durin_run_meta_clear(&meta);
  durin_run_info_clear(&ri);
  return r;
}

/* ---- continue ---- */

/* What to do about a run that has not ended, by its status. */
static const char *not_ended_hint(enum durin_run_status s)
{
  switch (s) {
  case DURIN_RUN_WAITING_APPROVAL:
    return "decide its approval first ('durin approvals')";
  case DURIN_RUN_NEEDS_HUMAN:
    return "'durin resume' goes on with it";
  case DURIN_RUN_PAUSED:
    return "'durin unpause' puts it back in the queue";
  case DURIN_RUN_QUEUED:
  case DURIN_RUN_RUNNING:
  case DURIN_RUN_SLEEPING:
  case DURIN_RUN_EVALUATING:
  default:
    return "wait for it to end, or stop it with 'durin cancel' first";
  }
}

static int last_attempt(const struct durin_event *ev, void *arg)
{
  json_t *d = json_loads(ev->data, 0, NULL);

  *(int64_t *)arg = json_integer_value(json_object_get(d, "attempt"));
  json_decref(d);
  return 0;
}

/* Raises the spec's budget by o's amounts; 1 if it changed. A budget
 * that is not set (0: none) stays unset. */
static int raise_budget(struct durin_budget *b, const struct cli_continue *o)
{
  int changed = 0;

#define RAISE(field, add)         \
 if ((add) > 0 && b->field > 0) { \
  b->field += (add);              \
  changed = 1;                    \
 }
  RAISE(steps, o->add_steps);
  RAISE(tokens, o->add_tokens);
  RAISE(dollars, o->add_dollars);
  RAISE(tool_calls, o->add_tool_calls);
  RAISE(wall_clock_ms, o->add_wall_clock_ms);
#undef RAISE
  return changed;
}

int cli_continue_run(struct durin_store *st, const struct cli_continue *o,
                     int64_t *attempt, struct durin_err *err)
{
  struct durin_run_info ri;
  struct durin_spec spec;
  struct durin_checkpoint ck;
  struct durin_run_continue c;
  struct durin_event ev[2];
  char *ck_text = NULL, *spec_text = NULL, *ev_text[2] = { 0 }, why[200];
  json_t *ckj = NULL, *d;
  int64_t step, now = durin_now_ms(), elapsed, prev = 1;
  int r, have_spec = 0;

  memset(&ck, 0, sizeof(ck));
  if (!o->message || !*o->message)
    return durin_err_set(err, DURIN_EINVAL,
                         "give the run its new instruction: a message that "
                         "is not empty");
  if ((r = durin_store_run_get(st, o->id, &ri, err)))
    return r;
  if (!durin_run_status_terminal(ri.status)) {
    r = durin_err_set(err, DURIN_ESTATE,
                      "run '%s' is %s, not finished: only an ended run "
                      "(succeeded, failed, cancelled, budget_exceeded) can "
                      "be continued; %s",
                      ri.id, durin_run_status_name(ri.status),
                      not_ended_hint(ri.status));
    goto out;
  }
  r = durin_store_checkpoint_get(st, ri.id, &step, &ck_text, err);
  if (r == DURIN_ENOTFOUND)
    r = durin_err_set(err, DURIN_ESTATE,
                      "run '%s' ended before its first step: there is "
                      "nothing to continue; submit its spec again",
                      ri.id);
  if (!r)
    r = durin_checkpoint_parse(ck_text, &ck, err);
  if (!r && (r = durin_spec_parse(ri.spec_json, NULL, &spec, err)) == 0)
    have_spec = 1;
  if (r)
    goto out;
  /* The wall clock stood still while the run was over. */
  elapsed = ri.finished_ms > ck.started_ms ? ri.finished_ms - ck.started_ms : 0;
  if (raise_budget(&spec.budget, o))
    spec_text = durin_spec_dump(&spec);
  if (durin_budget_exceeded(&spec.budget, &ck.usage, elapsed, 0, why,
                            sizeof(why))) {
    r = durin_err_set(err, DURIN_ESTATE,
                      "run '%s' has used its budget (%s): continue it with "
                      "more, e.g. --add-steps 10 (also --add-tokens, "
                      "--add-dollars, --add-tool-calls, --add-time; in the "
                      "API add_steps, add_tokens, add_dollars, "
                      "add_tool_calls, add_time_s)",
                      ri.id, why);
    goto out;
  }
  /* The checkpoint as JSON, so fields this code does not know (another
   * part's) are kept: a new attempt has no evaluations and no summary
   * yet. */
  ckj = json_of(ck_text);
  json_object_set_new(ckj, "eval_attempts", json_integer(0));
  json_object_del(ckj, "summary");
  /* A run that ended while its evaluator was reviewing (over budget,
   * cancelled): the new instruction is for the agent. */
  json_object_del(ckj, "eval");
  json_object_set_new(ckj, "started_ms", json_integer(now - elapsed));
  free(ck_text);
  ck_text = json_dumps(ckj, JSON_COMPACT);

  if (durin_store_event_last(st, ri.id, "run_continued", last_attempt, &prev,
                             NULL) != 0)
    prev = 1;
  *attempt = prev + 1;
  memset(ev, 0, sizeof(ev));
  d = json_pack("{s:s,s:I,s:s,s:O}", "message", o->message, "attempt",
                (json_int_t)*attempt, "previous_status",
                durin_run_status_name(ri.status), "checkpoint", ckj);
  if (spec_text)
    json_object_set_new(d, "budget",
                        json_pack("{s:I,s:I,s:f,s:I,s:I}", "steps",
                                  (json_int_t)spec.budget.steps, "tokens",
                                  (json_int_t)spec.budget.tokens, "dollars",
                                  spec.budget.dollars, "tool_calls",
                                  (json_int_t)spec.budget.tool_calls,
                                  "wall_clock_ms",
                                  (json_int_t)spec.budget.wall_clock_ms));
  ev_text[0] = json_dumps(d, JSON_COMPACT);
  json_decref(d);
  ev[0].type = "run_continued";
  ev[0].data = ev_text[0];
  d = json_pack("{s:s,s:b}", "content", o->message, "continued", 1);
  ev_text[1] = json_dumps(d, JSON_COMPACT);
  json_decref(d);
  ev[1].type = "user_message";
  ev[1].data = ev_text[1];
  ev[0].ts_ms = ev[1].ts_ms = now;
  ev[0].step = ev[1].step = ck.step;

  memset(&c, 0, sizeof(c));
  c.id = ri.id;
  c.spec_json = spec_text;
  c.step = ck.step;
  c.checkpoint = ck_text;
  c.events = ev;
  c.nevents = 2;
  c.owner = o->owner;
  c.lease_until_ms = now + 60000;
  c.now_ms = now;
  r = durin_store_run_continue(st, &c, err);
out:
  free(ev_text[0]);
  free(ev_text[1]);
  json_decref(ckj);
  free(ck_text);
  free(spec_text);
  if (have_spec)
    durin_spec_clear(&spec);
  durin_checkpoint_clear(&ck);
  durin_run_info_clear(&ri);
  return r;
}
