/*
 * The harness: the agent loop as an explicit state machine that does no
 * I/O (DESIGN 4).
 *
 * A driver asks durin_harness_next() what to do, does it (call the model,
 * write a ledger intent, run a tool, run the acceptance checks, commit the
 * step), and reports the result with durin_harness_complete(). The harness
 * never blocks, never touches the store, the network or a process; it is
 * unit-tested by feeding it completions. Many harnesses can share one event
 * loop because none of them holds a thread.
 *
 * Durability (DESIGN 3): everything a step produces is handed to the driver
 * in one DURIN_ACT_COMMIT (events + checkpoint + run status), to be written
 * in one fenced transaction. Before a tool with side effects runs, the
 * harness asks for its ledger intent (and the model response that asked
 * for it) to be made durable; after it runs, for its outcome.
 *
 * Threads: a harness belongs to one thread.
 */
#ifndef DURIN_HARNESS_H
#define DURIN_HARNESS_H

#include <stdint.h>

#include <jansson.h>

#include "durin/model.h"
#include "durin/policy.h"
#include "durin/spec.h"
#include "durin/store.h"
#include "durin/tools.h"

struct durin_harness;

/* The step sub-states inside `running` (logged on every transition). */
enum durin_step_state {
  DURIN_STEP_START,         /* fresh run: first commit pending */
  DURIN_STEP_IDLE,          /* between steps */
  DURIN_STEP_AWAIT_MODEL,   /* a model call is in flight */
  DURIN_STEP_AWAIT_INTENT,  /* ledger intents being made durable */
  DURIN_STEP_DISPATCH,      /* choosing the next tool call */
  DURIN_STEP_AWAIT_POLICY,  /* the policy deciding about a call */
  DURIN_STEP_AWAIT_TOOL,    /* a tool is running */
  DURIN_STEP_AWAIT_OUTCOME, /* a tool's outcome being made durable */
  DURIN_STEP_AWAIT_CHECKS,  /* acceptance checks running */
  DURIN_STEP_AWAIT_DIFF,    /* the workspace's change, for the evaluator */
  DURIN_STEP_COMMIT,        /* the step is complete, ready to commit */
  DURIN_STEP_AWAIT_COMMIT,  /* the step's transaction is in flight */
  DURIN_STEP_ENDED,         /* the run reached a stopping state */
  /* The workspace being committed to git (between COMMIT and its
   * action: see DURIN_ACT_SNAPSHOT). */
  DURIN_STEP_AWAIT_SNAPSHOT,
};

const char *durin_step_state_name(enum durin_step_state s);

enum durin_action_kind {
  DURIN_ACT_MODEL,   /* call the model with act->model */
  DURIN_ACT_POLICY,  /* decide act->tool with act->args under the policy */
  DURIN_ACT_INTENT,  /* write act->intents + act->pending durably */
  DURIN_ACT_TOOL,    /* run act->tool with act->args */
  DURIN_ACT_OUTCOME, /* write act->outcome for act->call durably */
  DURIN_ACT_CHECKS,  /* run the spec's acceptance checks */
  DURIN_ACT_DIFF,    /* the workspace's change since the run began, as a
                        unified diff of at most tool_ctx.output_cap bytes
                        (for the evaluator's first message) */
  DURIN_ACT_COMMIT,  /* one transaction: events, checkpoint, run update
                        (and, when the run waits for a person, the pending
                        response and act->approval) */
  DURIN_ACT_DONE,    /* the run stopped with act->status */
  /* Commit the workspace to git (act->snapshot), objects only, before a
   * COMMIT: the branch moves once the COMMIT is durable. */
  DURIN_ACT_SNAPSHOT,
};

/*
 * DURIN_ACT_SNAPSHOT (durin_harness_set_git): the step's workspace as a
 * commit on the run's branch, asked before the COMMIT of a step whose
 * calls may have written files, and before the run's opening commit.
 */
struct durin_snapshot_req {
  int64_t step;        /* the step committed (0: the run's opening commit) */
  int64_t time_s;      /* the commit's time: the same if asked again */
  const char *parent;  /* the checkpoint's commit; NULL: none yet */
  const char *message; /* "step N: bash, write_file" */
  const char *calls;   /* the step's call ids, comma-separated */
  /* The only paths that can have changed (the calls' change sets, all of
   * them contained); NULL: look at the whole workspace. */
  const char *const *paths;
  int npaths;
};

/* What the driver reports for a DURIN_ACT_SNAPSHOT. */
struct durin_snapshot_result {
  const char *commit; /* hex id (the parent when nothing changed); NULL:
                         the snapshot failed, error says why */
  const char *parent; /* the commit's parent (hex), or NULL */
  int changed;        /* a new commit was made */
  int64_t files, insertions, deletions; /* its diff stat */
  const char *error;
};

/* What the harness asks for. Every pointer is owned by the harness and
 * valid until the matching durin_harness_complete(). */
struct durin_action {
  enum durin_action_kind kind;
  int64_t step; /* the step this action belongs to (committed + 1) */

  struct durin_model_request model;

  struct durin_ledger_entry *intents;
  int nintents;
  const char *pending; /* the model response the intents (or the approval
                          request) belong to, when not yet durable */

  int call;      /* index of the tool call in the step */
  int contained; /* DURIN_ACT_TOOL: its ledger intent says it runs in a
                    layer of its own */
  const struct durin_tool_def *tool;
  json_t *args;
  /* DURIN_ACT_TOOL: timeout_ms is already cut to the wall-clock budget
   * left, so no call outlives the budget. DURIN_ACT_CHECKS: timeout_ms,
   * when not 0, is that budget left: no check may run past it (each
   * check's own timeout still applies within it). */
  struct durin_tool_ctx tool_ctx;
  const char *outcome;

  struct durin_event *events;
  size_t nevents;
  const char *checkpoint;
  struct durin_run_update update;
  int clear_pending; /* the step's pending response can go */
  const struct durin_approval *approval; /* a request to record, or NULL */

  /* DURIN_ACT_CHECKS: the checks to run (the spec's acceptance checks,
   * or a phase's end check). */
  const struct durin_spec_check *checks;
  int nchecks;

  struct durin_policy_state policy_state; /* DURIN_ACT_POLICY */
  struct durin_snapshot_req snapshot;     /* DURIN_ACT_SNAPSHOT */

  enum durin_run_status status;
  const char *reason;
};

/* One acceptance check's result. */
struct durin_check_result {
  const char *name;
  int ok;
  int exit_code;
  int timed_out;
  const char *output;
};

enum durin_completion_kind {
  DURIN_DONE_MODEL, /* resp filled (ownership moves to the harness) */
  DURIN_DONE_MODEL_ERROR,
  DURIN_DONE_POLICY, /* decision filled */
  DURIN_DONE_INTENT,
  DURIN_DONE_TOOL, /* tool filled (ownership moves) */
  DURIN_DONE_OUTCOME,
  DURIN_DONE_CHECKS,
  DURIN_DONE_COMMIT,
  DURIN_DONE_DIFF,     /* diff: the text, or NULL with error saying why not */
  DURIN_DONE_SNAPSHOT, /* snapshot filled */
};

struct durin_completion {
  enum durin_completion_kind kind;
  int64_t now_ms;
  struct durin_model_response *resp;
  int64_t retries;    /* retries spent on this model call */
  int64_t latency_ms; /* the model call, retries and waits included */
  const char *error;  /* DURIN_DONE_MODEL_ERROR: why */
  struct durin_tool_result *tool;
  const struct durin_check_result *checks;
  int nchecks;
  const struct durin_policy_decision *decision;
  const char *diff;
  const struct durin_snapshot_result *snapshot;
};

/*
 * Creates a harness for run_id. spec is borrowed and must outlive it.
 * Call durin_harness_restore() for a run that has a checkpoint; otherwise
 * the first action is the run's opening commit.
 */
int durin_harness_new(const struct durin_spec *spec, const char *run_id,
                      struct durin_harness **out, struct durin_err *err);
/*
 * Offers the model n more tools (the run's MCP servers', durin/mcp.h),
 * after the spec's: defs must outlive h. Call once, before the first
 * durin_harness_next(). DURIN_ESPEC when the schemas leave the context
 * window no room (context.max_bytes).
 */
int durin_harness_add_tools(struct durin_harness *h,
                            const struct durin_tool_def *const *defs, int n,
                            struct durin_err *err);
void durin_harness_free(struct durin_harness *h);

/* Restores from a checkpoint; attempt is the lease attempt, for the log. */
int durin_harness_restore(struct durin_harness *h, const char *checkpoint,
                          int64_t attempt, struct durin_err *err);
/* Feeds one event of the context window (seq >= durin_harness_window()). */
int durin_harness_load_event(struct durin_harness *h,
                             const struct durin_event *ev,
                             struct durin_err *err);
/* The first event seq of the context window, to load on restore. */
int64_t durin_harness_window(const struct durin_harness *h);
/*
 * Restores an unfinished step: the model response that was recorded with
 * its ledger intents, and the ledger rows (with or without outcomes).
 */
int durin_harness_load_pending(struct durin_harness *h, int64_t step,
                               const char *response,
                               const struct durin_ledger_entry *entries, int n,
                               struct durin_err *err);
/*
 * Whether the driver runs commands in the sandbox (default: no). It
 * decides which calls run in a layer of its own (durin_tool_contained),
 * which each call's intent records: a call whose intent says so and whose
 * outcome is unknown after a crash is run again, with the same key,
 * whatever its declared effect, since its layer was discarded unmerged.
 */
void durin_harness_set_sandboxed(struct durin_harness *h, int sandboxed);
/*
 * Git checkpoints (docs/internals/git.md): with on, the harness asks for a
 * DURIN_ACT_SNAPSHOT before each commit of a step whose calls may have
 * written files (and before the run's opening commit), keeps the commit
 * id in the checkpoint (git_commit) and logs a workspace_commit event with
 * the step when a commit was made. A failed snapshot loses no step: it is
 * logged (workspace_commit_failed) and the checkpoint keeps the last id.
 */
void durin_harness_set_git(struct durin_harness *h, int on);
/* 1 when the restore loaded an unfinished step (its model response). */
int durin_harness_step_open(const struct durin_harness *h);
/* The checkpoint's commit (hex), or NULL. */
const char *durin_harness_git_commit(const struct durin_harness *h);
/*
 * After a restore found the workspace unlike the checkpoint's commit: the
 * next snapshot looks at the whole workspace, so what differs goes into
 * the next commit. lost: the commit itself is gone from the repository
 * (a machine crash before it reached the disk); the next snapshot starts
 * from the branch's tip instead.
 */
void durin_harness_git_reset(struct durin_harness *h, int lost);
/*
 * What the agent is given at this start or resume (progress files, the
 * branch's recent commits): text goes into the pinned first message of
 * every request (after the goal; cut to its share of context.max_bytes),
 * and event (stolen; the data of a `boot` event) is logged with the next
 * commit. Call after the restore, before the first durin_harness_next().
 */
void durin_harness_set_boot(struct durin_harness *h, const char *text,
                            json_t *event);
/* An event the driver found on restore (stolen), logged with the next
 * commit. */
void durin_harness_note(struct durin_harness *h, const char *type,
                        json_t *data);

/*
 * The key decisions are signed under (durin_approval_key; NULL: none, and
 * only unsigned decisions hold). With it, an approval runs only if its
 * args_hash is durin_approval_mac of what was decided.
 */
void durin_harness_set_approval_key(struct durin_harness *h,
                                    const unsigned char key[32]);
/*
 * Restores a decision about a call of the unfinished step (loaded after
 * durin_harness_load_pending): the step replays, and the call the policy
 * asks about again runs, is refused or is rejected as decided.
 */
int durin_harness_load_approval(struct durin_harness *h,
                                const struct durin_approval *a,
                                struct durin_err *err);
/*
 * A human's decision about an indeterminate unsafe call: retry it (1) or
 * report it as of unknown outcome without running it (0).
 */
void durin_harness_resolve(struct durin_harness *h, int retry);
/*
 * Ends the run as cancelled: at once between steps; inside a step, no
 * further tool call starts and the step commits what already ran. A model
 * call abandoned after this reports DURIN_DONE_MODEL_ERROR as usual.
 */
void durin_harness_cancel(struct durin_harness *h, const char *reason);

/* Returns the next action; never blocks. */
void durin_harness_next(struct durin_harness *h, int64_t now_ms,
                        struct durin_action *act);
/* Reports the completion of the last action. DURIN_ESTATE if unexpected. */
int durin_harness_complete(struct durin_harness *h,
                           const struct durin_completion *c);

enum durin_step_state durin_harness_state(const struct durin_harness *h);
const struct durin_usage *durin_harness_usage(const struct durin_harness *h);
int64_t durin_harness_step(const struct durin_harness *h);
/* The messages currently in the context window (borrowed). */
json_t *durin_harness_messages(const struct durin_harness *h);

/* Transition log hook (may be NULL): called with old and new state. */
void durin_harness_on_transition(struct durin_harness *h,
                                 void (*cb)(void *arg, enum durin_step_state a,
                                            enum durin_step_state b),
                                 void *arg);

/* The checkpoint, as JSON text; see harness/checkpoint.c for the fields. */
struct durin_checkpoint {
  int64_t step;         /* committed steps */
  int64_t turn;         /* committed model calls (script replay index) */
  int64_t window_start; /* first event seq of the context window */
  int64_t started_ms;   /* when the run first started (wall-clock budget) */
  int64_t eval_attempts;
  struct durin_usage usage;
  json_t *plan;  /* the agent's plan (owned) */
  char *summary; /* the agent's last finish summary */
  /* Calls a person rejected: arguments hash -> times (owned). Bounded by
   * approvals.max_rejections per call; the run stops at the limit. */
  json_t *rejections;
  /* What compaction dropped from the context window, in brief (owned,
   * NULL before the first): calls per tool, failures, files read and
   * written, the last few calls. Bounded (harness/window.c). */
  json_t *handoff;
  /* While the evaluator runs (owned; NULL otherwise): {"attempt",
   * "started_ms", "steps", "input_tokens", "output_tokens", "cost_usd"},
   * this evaluation's own spend against evaluator.budget. */
  json_t *eval;
  /* Everything the evaluator spent in the run (also counted in usage,
   * but steps and tool_calls: those are the agent's budget);
   * model_calls is its script turn. */
  struct durin_usage eval_usage;
  /* The workspace's commit after this step (git checkpoints), or "". */
  char git_commit[41];
  /* Phases (spec `phases`, docs/internals/context.md; owned, NULL
   * without): {"index", "name", "started_step", "due"}, and the artifacts
   * of the phases that ended, in order. */
  json_t *phase;
  json_t *artifacts;
  /* The last context reset's handoff (owned, NULL before the first):
   * {"count", "through_seq", ...}; the pinned message carries it. */
  json_t *reset;
  /* context.reset_at in tokens: the text bytes of the last request the
   * provider counted, and its count of their tokens (0 0: none yet). */
  int64_t density[2];
  /* The loop and storm breakers' and run_status's bookkeeping (owned,
   * NULL before the first tool call; harness/guard.c). */
  json_t *guard;
};

char *durin_checkpoint_dump(const struct durin_checkpoint *c);
/* The same with c's handoff given as its JSON text (NULL: none). */
char *durin_checkpoint_dump_with(const struct durin_checkpoint *c,
                                 const char *handoff_text);
int durin_checkpoint_parse(const char *text, struct durin_checkpoint *c,
                           struct durin_err *err);
void durin_checkpoint_clear(struct durin_checkpoint *c);

/*
 * Replaying a run's log (harness/replay.c, docs/internals/fork.md): the
 * checkpoint as it was right after step N committed, computed from the
 * events alone, for a fork at step N. Feed the run's events in seq order
 * to durin_replay_add() until it returns 1 (step N's commit is complete:
 * later events are not needed) or the log ends, then take the result.
 */
struct durin_replay;
struct durin_replay_result {
  int64_t through_seq; /* the last event of step N's commit */
  int64_t through_ms;  /* ... and its time (the commit's) */
  int ended;           /* step N's commit ended the run (run_finished) */
  char git_commit[48]; /* the workspace's commit at step N, as the log
                          names it (workspace_commit, forked); "" if none */
};
/* DURIN_EINVAL for a negative step. */
int durin_replay_new(int64_t step, struct durin_replay **out,
                     struct durin_err *err);
/* 0: go on; 1: done; < 0: an event that is not JSON. */
int durin_replay_add(struct durin_replay *r, const struct durin_event *ev,
                     struct durin_err *err);
/*
 * The checkpoint (ck, the caller's to clear) and where step N's commit
 * ends. DURIN_ENOTFOUND: the log has no step N (the message says how many
 * it has); DURIN_ESTATE: step N is the evaluator's.
 */
int durin_replay_result(struct durin_replay *r, struct durin_checkpoint *ck,
                        struct durin_replay_result *res, struct durin_err *err);
void durin_replay_free(struct durin_replay *r);

/* Budget check: 0 if within, else fills why (which budget) and returns 1. */
int durin_budget_exceeded(const struct durin_budget *b,
                          const struct durin_usage *u, int64_t elapsed_ms,
                          int before_tool, char *why, size_t whylen);

/*
 * The answer length a model call is assumed to reach when the spec sets no
 * model.max_tokens (what the Anthropic provider asks for then). An
 * OpenAI-compatible server may answer longer: set model.max_tokens for a
 * hard bound on the token and dollar budgets.
 */
#define DURIN_BUDGET_MAX_TOKENS 4096

/* 1 (with why) if elapsed_ms has reached the wall-clock budget. */
int durin_budget_wall_clock_over(const struct durin_budget *b,
                                 int64_t elapsed_ms, char *why, size_t whylen);

/*
 * A conservative estimate of a request's input tokens: a third of its
 * bytes, or more when the last call's reported count (last_tokens for
 * last_bytes; 0: unknown) shows a denser text. See harness/budget.c.
 */
int64_t durin_budget_input_tokens(size_t request_bytes, int64_t last_tokens,
                                  size_t last_bytes);

/*
 * Before a model call: 1 (with why) if the call could cross the token or
 * dollar budget, counting in_tokens sent and a full max_tokens answer at
 * cfg's prices on top of what u already spent; 0 if it cannot.
 */
int durin_budget_next_call(const struct durin_budget *b,
                           const struct durin_model_cfg *cfg,
                           const struct durin_usage *u, int64_t in_tokens,
                           char *why, size_t whylen);

#endif
