/*
 * The durin command line. Each subcommand is a cmd_<name>() in
 * cmd-<name>.c, listed in the commands[] table of durin.c.
 *
 * To add a command: write cmd-<name>.c with
 *   int cmd_<name>(int argc, char **argv, struct cli *cli);
 * declare it here, add it to commands[] with a one-line summary, add the
 * file to meson.build, and document it in docs/cli/README.md.
 */
#ifndef DURIN_CLI_CMD_H
#define DURIN_CLI_CMD_H

#include <signal.h>
#include <stdio.h>

#include <jansson.h>

#include "durin/policy.h"
#include "durin/review.h"
#include "durin/store.h"

/* Exit codes; documented in docs/cli/README.md ("Exit codes") and
 * `durin --help`. */
enum {
  EXIT_OK = 0,            /* success; for run/resume: the run succeeded */
  EXIT_RUN_FAILED = 1,    /* the run ended failed, cancelled or over budget */
  EXIT_NEEDS_HUMAN = 2,   /* the run stopped and needs a person */
  EXIT_OWNED = 3,         /* another process owns the run (lease) */
  EXIT_STORE = 4,         /* the store cannot be opened or written */
  EXIT_NOT_FOUND = 5,     /* no such run */
  EXIT_USAGE = 64,        /* bad command line */
  EXIT_SPEC = 65,         /* bad agent spec */
  EXIT_SANDBOX = 70,      /* the sandbox cannot be built on this host */
  EXIT_INTERRUPTED = 130, /* stopped by a signal; the run can be resumed */
};

struct cli {
  const char *store_url; /* --store, DURIN_STORE, or the default */
  struct durin_store *store;
};

int cmd_run(int argc, char **argv, struct cli *cli);
int cmd_resume(int argc, char **argv, struct cli *cli);
int cmd_ls(int argc, char **argv, struct cli *cli);
int cmd_show(int argc, char **argv, struct cli *cli);
int cmd_logs(int argc, char **argv, struct cli *cli);
int cmd_log(int argc, char **argv, struct cli *cli);
int cmd_explain(int argc, char **argv, struct cli *cli);
int cmd_cancel(int argc, char **argv, struct cli *cli);
int cmd_diff(int argc, char **argv, struct cli *cli);
int cmd_review(int argc, char **argv, struct cli *cli);
int cmd_bundle(int argc, char **argv, struct cli *cli);
int cmd_trace(int argc, char **argv, struct cli *cli);
/* Starts the trace exporter the OTEL_* environment asks for (cli/otel-env.c);
 * *out stays NULL when it asks for none. Returns an exit code. */
struct durin_otel_exporter;
int cli_otel_start(const char *store_url, const char *owner,
                   void (*on_log)(void *, const char *),
                   struct durin_otel_exporter **out);
/* Whether the OTEL_* environment asks for metrics to be pushed; then
 * cli_otel_metrics_start pushes m and the store's counts (read through a
 * connection of its own to store_url) every interval, and stop pushes
 * them once more. owner names this process (service.instance.id);
 * give_up, when set, cuts a push short. *out stays NULL when nothing is
 * asked for. Returns an exit code. */
struct durin_metrics;
struct cli_metrics_push;
int cli_otel_metrics_wanted(void);
int cli_otel_metrics_start(const char *store_url, const char *owner,
                           struct durin_metrics *m,
                           const volatile sig_atomic_t *give_up,
                           void (*on_log)(void *, const char *),
                           struct cli_metrics_push **out);
void cli_otel_metrics_stop(struct cli_metrics_push *p);

/* How a spec is submitted (cli_submit). */
struct cli_submit {
  const char *model; /* override, "provider:name" */
  const char *tenant;
  const char *dedupe_key;
  const char *concurrency_key;
  int64_t priority;
  int64_t not_before_ms;
  int64_t retry_budget; /* recoveries before the run fails; 0: default */
  const char *owner;    /* created held by this owner (durin run) */
  /* From the HTTP API (may be NULL; see durin_run_new). */
  const char *agent;
  int64_t agent_version;
  const char *labels_json, *created_by, *idem_key, *idem_hash;
  const char *webhooks_json, *webhook_secret;
  /* An inbound trigger's delivery, recorded with the run (see
   * durin_run_new); a delivery that made a run already: deduped, with
   * id that run's. */
  const struct durin_trigger_delivery *delivery;
  /* Creates the run in place of durin_store_run_create (a schedule's
   * tick claims it in the same transaction); NULL: the usual. A failure
   * removes the run's copy of the workspace. */
  int (*create)(void *arg, const struct durin_run_new *rn,
                struct durin_err *err);
  void *create_arg;
  int deduped;     /* out: an active run had the dedupe key */
  int idem_reused; /* out: the idempotency key was taken meanwhile */
};

/* Submits the spec at path; fills id (the existing run's when deduped).
 * Prints errors; returns an exit code. */
int cli_submit(struct cli *cli, const char *spec_path, struct cli_submit *o,
               char id[32]);
struct durin_spec;
struct durin_err;
/* The same for a parsed spec (consumed), into the data directory data,
 * on cli->store (open); prints nothing: on failure, err says why. */
int cli_submit_spec(struct cli *cli, const char *data, struct durin_spec *spec,
                    struct cli_submit *o, char id[32], struct durin_err *err);
int cmd_submit(int argc, char **argv, struct cli *cli);
int cmd_schedule(int argc, char **argv, struct cli *cli);

/* Schedules (cli/schedule.c): the clock they run on (the real one, or
 * the test clock in $DURIN_TEST_NOW_FILE: a file holding Unix ms), and
 * firing the ticks due at now on cli->store, runs' workspaces under data.
 * on_log may be NULL. Returns how many ticks it recorded, or < 0 on a
 * store error (tried again at the next call). */
int64_t cli_sched_now(void);
int cli_sched_fire_due(struct cli *cli, const char *data, int64_t now,
                       void (*on_log)(void *arg, const char *line),
                       void *log_arg);
struct durin_schedule;
struct durin_schedule_tick;
/* Checks sc's name, catch-up, cron and zone (DURIN_EINVAL, err says
 * what is wrong), sets its first tick after now and adds it. */
int cli_schedule_add(struct durin_store *store, struct durin_schedule *sc,
                     int64_t now, struct durin_err *err);
/* A schedule as the CLI's --json and the API show it, with its next
 * three fire times in its zone ("upcoming"). */
json_t *cli_schedule_json(const struct durin_schedule *sc, int64_t now);
json_t *cli_schedule_tick_json(const struct durin_schedule_tick *t);
int cmd_fork(int argc, char **argv, struct cli *cli);
int cmd_continue(int argc, char **argv, struct cli *cli);

/*
 * Fork and continue (cli/fork.c, docs/internals/fork.md), shared with the
 * HTTP API: nothing prints; a failure is a DURIN_E* code and err says why
 * and what to do.
 */
struct cli_fork {
  const char *from; /* the run (its full id) */
  int64_t at_step;
  const char *goal;       /* NULL: the original's */
  const char *owner;      /* created held by this owner, or NULL: queued */
  const char *created_by; /* the API token's name, or NULL */
};
/* A new run from run from's log through step at_step and its workspace
 * at that step's git commit, in the data directory data; *id is it. */
int cli_fork_run(struct durin_store *st, const char *data,
                 const struct cli_fork *o, char id[32], struct durin_err *err);
struct cli_continue {
  const char *id; /* the run (its full id) */
  const char *message;
  /* Raise the run's pinned budget (one that is not set stays unset). */
  int64_t add_steps, add_tokens, add_tool_calls, add_wall_clock_ms;
  double add_dollars;
  const char *owner; /* held by this owner, or NULL: queued */
};
/* An ended run's new instruction: back in the queue as *attempt. */
int cli_continue_run(struct durin_store *st, const struct cli_continue *o,
                     int64_t *attempt, struct durin_err *err);
/* Drives run id in this process as 'durin resume' does, with the
 * sandbox (cli_sandbox; NULL: none) and server policy (may be NULL);
 * wait: for an approval's decision. Returns the exit code. */
struct durin_sandbox;
int cli_drive(struct cli *cli, const char *id, int json, int wait,
              const struct durin_sandbox *sb,
              const struct durin_policy *policy);
/* The store's webhook signing secret ("whsec_" + base64 of 32 bytes),
 * made on first use and shared by every server of the store. */
int cli_webhook_secret(struct durin_store *s, char **out,
                       struct durin_err *err);
int cmd_worker(int argc, char **argv, struct cli *cli);
int cmd_serve(int argc, char **argv, struct cli *cli);
int cmd_pause(int argc, char **argv, struct cli *cli);
int cmd_unpause(int argc, char **argv, struct cli *cli);
int cmd_limits(int argc, char **argv, struct cli *cli);
int cmd_sandbox(int argc, char **argv, struct cli *cli);
int cmd_policy(int argc, char **argv, struct cli *cli);
int cmd_approvals(int argc, char **argv, struct cli *cli);
int cmd_approve(int argc, char **argv, struct cli *cli);
int cmd_reject(int argc, char **argv, struct cli *cli);

/*
 * Approvals for the CLI and the HTTP API (approval.c): nothing here
 * prints; failures are a DURIN_E* code with err's message.
 */

/* The state a reviewer should see at now: a pending one past its
 * deadline is expired (it can no longer be decided). */
enum durin_approval_state
cli_approval_shown_state(const struct durin_approval *a, int64_t now);
/* An approval as JSON: a line of `durin approvals --json`, an item of
 * GET /v1/approvals. The caller owns it. */
json_t *cli_approval_json(const struct durin_approval *a, int64_t now);

/* One approval, its strings owned (cli_approval_clear frees them). */
struct cli_approval {
  struct durin_approval a;
  char *s[12];
};
/* The approval whose id starts with prefix: DURIN_ENOTFOUND if none,
 * DURIN_EINVAL if the prefix is ambiguous. */
int cli_approval_get(struct durin_store *st, const char *prefix,
                     struct cli_approval *h, struct durin_err *err);
void cli_approval_clear(struct cli_approval *h);

/*
 * Everything `durin approvals ID` shows, as one object (its --json, and
 * GET /v1/approvals/ID): cli_approval_json's fields, then call_hash,
 * expires_in_ms (null once decided), run_name, run_status, tenant, goal,
 * plan, spent {cost_usd, steps, tool_calls, input_tokens, output_tokens,
 * tokens}, and diff: the workspace diff so far as the caller made it
 * (NULL: null, with diff_error if given). *out is the caller's.
 */
int cli_approval_review_json(struct durin_store *st,
                             const struct durin_approval *a, int64_t now,
                             const char *diff, const char *diff_error,
                             json_t **out, struct durin_err *err);

/* Edited arguments, checked (cli_approval_check_edit). */
struct cli_edit {
  char *canon;         /* canonical JSON of the arguments (owned) */
  char hash[65];       /* its sha256, as the run will check it */
  char arg_names[256]; /* refused by the schema: the tool's arguments */
  struct durin_policy_decision denied; /* refused by the policy: why */
};
void cli_edit_clear(struct cli_edit *e);
/*
 * Checks edited arguments as the run would: the tool's schema, then the
 * run's spec policy under server (the server's policy; may be NULL).
 * DURIN_EINVAL: they do not fit the schema (err is the validator's
 * message, e->arg_names the tool's arguments); DURIN_EACCES: the policy
 * denies the call (e->denied says which rule); DURIN_ESPEC: the tool or
 * the run's stored spec is unknown. On success e holds the arguments.
 */
int cli_approval_check_edit(struct durin_store *st,
                            const struct durin_approval *a, const char *text,
                            const struct durin_policy *server,
                            struct cli_edit *e, struct durin_err *err);

/* A person's decision (cli_approval_decide). */
struct cli_decision {
  enum durin_approval_state state; /* approved or rejected; after: edited
                                      when the edit changed the call */
  const struct cli_edit *edit;     /* checked arguments, or NULL */
  const char *who;
  const char *comment;             /* the comment, or the rejection's reason */
  enum durin_approval_state final; /* after DURIN_ESTATE: what it is (it
                                      may have expired on the way) */
};
/* Records the decision in one store transaction (the run back in the
 * queue). DURIN_ESTATE if it was no longer pending or its deadline has
 * passed: d->final says which. */
int cli_approval_decide(struct durin_store *st, const struct durin_approval *a,
                        struct cli_decision *d, struct durin_err *err);
int cmd_token(int argc, char **argv, struct cli *cli);
int cmd_webhook(int argc, char **argv, struct cli *cli);
int cmd_secret(int argc, char **argv, struct cli *cli);
int cmd_trigger(int argc, char **argv, struct cli *cli);

/* cli_diff_write's flags. */
enum {
  CLI_DIFF_STAT = 1,      /* git's diffstat instead of the diff */
  CLI_DIFF_NO_MOUNTS = 2, /* this process's mount namespace is shared:
                             a template run's diff is DURIN_EACCES */
};

/*
 * Writes run id's workspace against its start to out: a unified diff per
 * text file (git's headers), a line per binary one; or with CLI_DIFF_STAT
 * git's diffstat. Prints nothing else: DURIN_ENOTFOUND for no such run or
 * no snapshot, DURIN_EIO when the trees cannot be read or diff cannot
 * run; err says why (empty when cli_private_mounts already said it).
 * Safe to call from any thread (diff is started by posix_spawn).
 */
int cli_diff_write(struct durin_store *st, const char *id, unsigned flags,
                   FILE *out, struct durin_err *err);
/* The same on cli->store, with stat; prints errors; returns an exit
 * code. */
int cli_print_diff(struct cli *cli, const char *id, int stat, FILE *out);

/*
 * The review of run id from the store (cli/cmd-review.c): its git
 * checkpoints' diff, or else what diff(arg, ...) writes (the workspace
 * against its start); *out is review.json's object. A diff that cannot be
 * made is said in the review. Any thread, with a store of its own.
 */
int cli_review_build(struct durin_store *st, const char *id,
                     durin_review_diff_fn diff, void *arg, json_t **out,
                     struct durin_err *err);

/*
 * Gives this process a mount namespace of its own (root only; a no-op
 * otherwise): template workspace views are mounted there, seen by its
 * tools and sandboxes, and vanish with it. Call before starting threads.
 */
int cli_private_mounts(void);

struct durin_sandbox;
/*
 * The sandbox of this process's tool calls for --sandbox MODE ("on", the
 * default when mode is NULL, or "none"). On: finds the helper, compiles
 * the program, checks the host can build it, and sets *out. None: warns
 * loudly and sets *out to NULL. On, the store's directory (sqlite stores)
 * and $DURIN_DATA_DIR are kept out of every spec bind (durin_sandbox_forbid).
 * Prints errors; returns an exit code.
 */
int cli_sandbox(struct cli *cli, const char *mode, struct durin_sandbox *sb,
                const struct durin_sandbox **out);
/* Parses a duration ("500ms", "30s", "5m", "2h", plain seconds) into ms;
 * -1 if malformed. */
int64_t cli_parse_duration(const char *s);

/* Reads and parses the spec file at path (relative paths in it resolve
 * against its directory). Prints errors; returns an exit code. */
struct durin_spec;
int cli_load_spec(const char *path, struct durin_spec *spec);

struct durin_policy;
/*
 * The server-wide policy from path, else from $DURIN_POLICY; *out stays
 * NULL when neither is given. Prints errors; returns an exit code.
 */
int cli_server_policy(const char *path, struct durin_policy **out);

/*
 * An argument cmd does not take: names it as an unknown option (when it
 * starts with '-') or an unexpected argument, then prints usage_text (if
 * not NULL) to stderr. Returns EXIT_USAGE.
 */
int cli_bad_arg(const char *cmd, const char *arg, const char *usage_text);
/*
 * The command line of a listing, "CMD ls [--tenant T] [--json]" from
 * argv[2]: *tenant (NULL: every tenant's) and *json. Returns -1 to go
 * on, else the exit code (a bad argument, the store not opened).
 */
int cli_ls_args(struct cli *cli, int argc, char **argv, const char *cmd,
                const char *usage, const char **tenant, int *json);
/*
 * The end of a listing whose rows went into arr: with json, arr is
 * printed; r (a store error, with err) is reported as "CMD: ...". Frees
 * arr; returns the exit code.
 */
int cli_ls_end(const char *cmd, int json, json_t *arr, int r,
               const struct durin_err *err);
/* Prints "durin: <msg>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Opens cli->store (once); prints the error and returns an exit code. */
int cli_open_store(struct cli *cli);
/* Resolves a possibly abbreviated run id; prints errors. */
int cli_resolve(struct cli *cli, const char *arg, char id[32]);
/* The directory holding run workspaces for this store. */
int cli_data_dir(struct cli *cli, char *out, size_t len);
/* Maps a library error code to an exit code. */
int cli_exit_for(int code);
/* This process as a lease owner: "host:pid" (cli_lease_live reads it). */
void cli_owner_name(char *out, size_t len);
/*
 * Whether a live process holds the run: on this host, its owner pid is
 * alive; elsewhere, its lease has not expired.
 */
int cli_lease_live(const struct durin_run_info *ri);
/* Whether argv[i] asks for help. */
int cli_wants_help(int argc, char **argv);
/*
 * The command line of a command that takes one run and at most one flag
 * ("CMD [FLAG] ID"): help, the flag (*on; flag may be NULL), a bad
 * argument, the run resolved into id. Returns -1 to go on, else the exit
 * code to return (having printed what it had to).
 */
int cli_run_arg(int argc, char **argv, struct cli *cli, const char *cmd,
                const char *usage, const char *flag, int *on, char id[32]);
/* The exit code for a run's status. */
int cli_exit_for_status(enum durin_run_status st);
/* Prints one event as a human line (plain mode) to f. */
void cli_print_event(FILE *f, const char *run_id, const struct durin_event *ev);
/* Prints j to stdout as indented JSON and a newline ("null" if it cannot
 * be written): every --json answer that is one document. */
void cli_print_json(json_t *j);
/* Prints one event as a JSON line to f. */
void cli_print_event_json(FILE *f, const char *run_id,
                          const struct durin_event *ev);
/* Prints the run summary block (status, steps, tokens, cost, duration). */
void cli_print_summary(FILE *f, const struct durin_run_info *ri);

#endif
