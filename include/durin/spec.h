/*
 * The agent spec: what a user submits (JSON), validated strictly, and
 * resolved into the pinned form the store keeps for the run's lifetime.
 *
 * Parsing never runs anything. A bad spec yields DURIN_ESPEC and a message
 * that names the field and says what is expected ("field 'budget.stpes' is
 * not known; did you mean 'budget.steps'?").
 */
#ifndef DURIN_SPEC_H
#define DURIN_SPEC_H

#include <stdint.h>

#include <jansson.h>

#include "durin/error.h"

/* How a tool's side effects may be repeated (DESIGN 3.3). */
enum durin_effect {
  DURIN_EFFECT_PURE = 0,   /* no side effects; re-running is harmless */
  DURIN_EFFECT_IDEMPOTENT, /* re-running with the same key is safe */
  DURIN_EFFECT_UNSAFE,     /* must never run twice without a human */
};

const char *durin_effect_name(enum durin_effect e);

struct durin_price {
  double input_per_mtok;  /* dollars per million input tokens */
  double output_per_mtok; /* dollars per million output tokens */
  /* Input tokens read from the provider's prompt cache, and (Anthropic)
   * written to it. Not given: derived from input_per_mtok by the
   * provider's published ratio (see price.c). */
  double cached_input_per_mtok;
  double cache_write_per_mtok;
  int cached_input_set;
  int cache_write_set;
  int set;
};

struct durin_model_cfg {
  char *provider; /* "script", "openai" or "anthropic" */
  char *name;     /* model name; pinned at submit */
  /* openai: e.g. https://api.openai.com/v1; anthropic: the bare host
   * (https://api.anthropic.com), with or without /v1 */
  char *base_url;
  int base_url_default; /* base_url was not given: hosts may override it */
  char *api_key_env;    /* name of the environment variable with the key */
  /* The vault's secret with the key (include/durin/secret.h), in the
   * run's tenant; when set it is used instead of api_key_env. */
  char *api_key_secret;
  char *api_version; /* anthropic-version header; NULL: the default */
  json_t *turns;     /* script: the assistant turns (owned) */
  /* script: the answers to the run's summary calls (phase ends, context
   * resets), in order (owned; NULL: each gets a plain scripted one). */
  json_t *summaries;
  struct durin_price price;
  int64_t timeout_ms;  /* per request */
  int64_t max_retries; /* per-run retry budget for transient errors */
  int64_t max_tokens;  /* per response, 0: provider default */
  int stream;          /* ask for the answer as server-sent events */
};

struct durin_spec_tool {
  char *name;
  enum durin_effect effect; /* the tool's declared class, or the spec's */
};

struct durin_spec_check {
  char *name;
  char *run; /* shell command, run in the workspace */
  int64_t timeout_ms;
};

/* Budgets; 0 means unlimited. */
struct durin_budget {
  int64_t steps;
  int64_t tokens;
  double dollars;
  int64_t wall_clock_ms;
  int64_t tool_calls;
};

/* What a run's tool calls may reach beyond the workspace (DESIGN 6). */
struct durin_spec_sandbox {
  char **ro; /* extra read-only binds, absolute */
  int nro;
  char **rw; /* extra read-write binds (caches, shared outputs) */
  int nrw;
  int64_t memory_mb;   /* 0: the driver's default */
  int64_t pids;        /* 0: the driver's default */
  int64_t cpu_percent; /* 0: no quota; 100 = one core */
  char *template;      /* shared read-only under the workspace, or NULL */
  int net_proxy;       /* "network": "proxy": egress to allow_hosts only */
  char **allow_hosts;  /* "name", "name:port", "*.suffix" */
  int nallow;
  char **repeat_safe; /* of allow_hosts: safe to reach again after a crash */
  int nrepeat_safe;
};

/*
 * Whether a sandboxed call under b can reach nothing but its workspace
 * (no binds, no network but to repeat-safe hosts), so that a
 * call cut by a crash, whose layer was discarded, may simply run again.
 */
int durin_spec_sandbox_contained(const struct durin_spec_sandbox *b);

/*
 * A secret a run may use without seeing it (spec "secrets"; issue 17,
 * docs/internals/secrets.md). Exactly one of:
 *  - an HTTP grant (host set): the egress proxy adds `header: format`
 *    (the value in place of "{}") to every request to host, which the
 *    sandbox's commands reach through it;
 *  - an env grant (env set): the value is put in the variable env of the
 *    commands of one tool (tool: "bash" for now; the name is a string, so
 *    that an MCP server's may be named later). A last resort: the command
 *    holds the value, so it is flagged in `durin show` and the log.
 */
struct durin_spec_grant {
  char *secret; /* the vault's name, in the run's tenant */
  char *host;   /* HTTP: "name" (port 443) or "name:port"; else NULL */
  char *header; /* HTTP: the header's name */
  char *format; /* HTTP: the header's value, "{}" replaced; default "{}" */
  char *env;    /* env: the variable; else NULL */
  char *tool;   /* env: the tool whose commands get it */
};

/* How a call the policy asks about waits for a person. */
/* One MCP server of the spec's "mcp_servers" (docs/internals/mcp.md). */
struct durin_spec_mcp_header {
  char *name;
  char *value;  /* a literal value, or NULL */
  char *secret; /* the vault's secret with the value, or NULL */
  char *format; /* with secret: "{}" is replaced by it ("Bearer {}") */
};

struct durin_spec_mcp_tool {
  char *name; /* the server's tool name */
  enum durin_effect effect;
};

struct durin_spec_mcp {
  char *name;  /* [a-z0-9_-]{1,32}: tools are named NAME__TOOL */
  char **argv; /* stdio: the command, NULL-terminated; or NULL */
  int argc;
  char **env; /* stdio: "K=V" added to its environment, NULL-ended */
  int nenv;
  char *url; /* streamable HTTP: http:// or https://; or NULL */
  struct durin_spec_mcp_header *headers;
  int nheaders;
  struct durin_spec_mcp_tool *tools; /* effect overrides */
  int ntools;
  int64_t timeout_ms; /* per call; 0: limits.tool_timeout_s */
  /* "scope": "worker": the worker's server of that name (durin worker
   * --mcp-servers), shared; then argv and url are NULL. */
  int scope_worker;
};

/*
 * The evaluator (spec "evaluator"; docs/internals/evaluator.md): once the
 * agent calls finish and the acceptance checks pass, a session that never
 * saw the agent's messages reads the workspace and ends with a verdict.
 */
enum durin_eval_tool {
  DURIN_EVAL_READ_FILE = 1 << 0,
  DURIN_EVAL_LIST_FILES = 1 << 1,
  DURIN_EVAL_BASH = 1 << 2, /* sandboxed, workspace read-only, no network */
};

struct durin_spec_evaluator {
  int set;
  int own_model;                /* "model" given; else the agent's */
  struct durin_model_cfg model; /* when own_model */
  char *instructions;           /* its system prompt; NULL: the default */
  char **criteria;              /* acceptance criteria, in the order given */
  int ncriteria;
  unsigned tools;     /* durin_eval_tool bits */
  int64_t steps;      /* its model calls per evaluation */
  double dollars;     /* its spend per evaluation; 0: no own limit */
  int64_t timeout_ms; /* per evaluation, wall clock */
};

/* The longest tool name a provider takes (OpenAI: 64, [a-zA-Z0-9_-]). */
#define DURIN_MCP_TOOL_NAME_MAX 64

struct durin_spec_approvals {
  int64_t timeout_ms;     /* pending this long: expired */
  int expire_to_human;    /* on expiry: needs_human (else: rejected) */
  int64_t max_rejections; /* the same call rejected this often: the
                             run stops as needs_human */
};

/*
 * "breakers" (docs/internals/breakers.md): the same call failing the same
 * way `repeat` times stops the run as needs_human; `failures` failed
 * calls among the last `window` pause it. 0 turns each off.
 */
struct durin_spec_breakers {
  int64_t repeat;   /* default 3 */
  int64_t failures; /* default 8, at most window */
  int64_t window;   /* default 10, at most DURIN_SPEC_MAX_WINDOW */
};
#define DURIN_SPEC_MAX_WINDOW 100

/* "deliver": where the run's git branch is pushed when it ends. */
struct durin_spec_deliver {
  char *remote; /* a URL or an absolute path; NULL: no delivery */
  char *branch; /* the remote's branch; NULL: the run's, durin/RUN */
  unsigned on;  /* bit (1 << enum durin_run_status) of the terminal
                   states that deliver; default succeeded */
};

/*
 * The most limits.output_bytes may be: a tool's output is logged whole as
 * one event (and one ledger outcome), written in the step's transaction
 * and read back by every resume that loads it; past a few MiB, a command
 * should write to a file in the workspace instead.
 */
#define DURIN_SPEC_MAX_OUTPUT (4 * 1024 * 1024)

/*
 * Git checkpoints of the workspace (spec "git"; docs/internals/git.md).
 * "auto" is decided when the run is submitted (a git repository at the
 * root of the workspace: on) and pinned, so a restore never changes its
 * mind; a parsed spec from the store is on or off.
 */
enum durin_spec_git_mode {
  DURIN_SPEC_GIT_AUTO = 0,
  DURIN_SPEC_GIT_ON, /* a repository is made when there is none */
  DURIN_SPEC_GIT_OFF,
};

/* The most progress files a spec may name, and lines of git log. */
#define DURIN_SPEC_MAX_PROGRESS  8
#define DURIN_SPEC_MAX_LOG_LINES 50

struct durin_spec_git {
  enum durin_spec_git_mode mode;
  /* Files of the workspace given to the agent at every start and resume
   * when present (relative, plain paths; default PROGRESS.md and
   * feature-list.json), and how many lines of `git log --oneline` of the
   * run's branch go with them (default 8; 0: none). */
  char **progress_files;
  int nprogress;
  int64_t log_lines;
};

/* What ends a phase (spec `phases`, docs/internals/context.md). */
enum durin_phase_until {
  DURIN_UNTIL_FINISH, /* the last phase: the run's own end */
  DURIN_UNTIL_PLAN,   /* the agent's update_plan */
  DURIN_UNTIL_STEPS,  /* a number of the agent's steps in the phase */
  DURIN_UNTIL_CHECK,  /* a command that exits 0, run after each step */
};

/* A phase of the run: its share of the context window, the tools it may
 * use (NULL: all of the run's), and what ends it. */
struct durin_spec_phase {
  char *name;
  double share; /* of context.max_bytes, in (0, 1] */
  char **tools;
  int ntools;
  enum durin_phase_until until;
  int64_t steps;                 /* DURIN_UNTIL_STEPS */
  struct durin_spec_check check; /* DURIN_UNTIL_CHECK */
};

struct durin_spec {
  char *name;
  char *system;
  char *goal;
  char *workspace; /* absolute path of the source directory */
  struct durin_model_cfg model;
  struct durin_spec_tool *tools;
  int ntools;
  struct durin_spec_check *checks;
  int nchecks;
  int64_t max_eval_attempts;
  struct durin_budget budget;
  int64_t tool_timeout_ms;
  int64_t output_cap;    /* bytes of tool output kept per call, at most
                            DURIN_SPEC_MAX_OUTPUT */
  int64_t max_arg_bytes; /* tool-call arguments larger than this are refused */
  int64_t context_messages; /* messages kept in the context window */
  int64_t context_bytes;    /* text kept in the context window, roughly */
  /* context.reset_at: when the window reaches this many tokens (or this
   * share of context.max_bytes), the run goes on in a fresh context built
   * from a handoff (0: never). */
  int64_t reset_tokens;
  double reset_share;
  struct durin_spec_phase *phases; /* "phases", in order (NULL: none) */
  int nphases;
  struct durin_spec_sandbox sandbox;
  json_t *policy; /* the "policy" object as written (durin/policy.h), or
                     NULL; validated when the spec is parsed */
  struct durin_spec_approvals approvals;
  struct durin_spec_breakers breakers;
  json_t *notify; /* {"webhooks": [{"url", "events": [...]}]}, or NULL */
  /* A W3C traceparent: the run's trace joins the caller's (or NULL). */
  char *traceparent;
  struct durin_spec_grant *grants; /* "secrets" */
  int ngrants;
  struct durin_spec_mcp *mcp; /* "mcp_servers", in the order written */
  int nmcp;
  json_t *mcp_json; /* "mcp_servers" as written, validated (or NULL) */
  struct durin_spec_evaluator evaluator;
  struct durin_spec_git git;
  struct durin_spec_deliver deliver;
};

/* What a webhook may subscribe to, NULL-terminated, in the order the API
 * lists them (docs/api/webhooks.md). */
extern const char *const durin_webhook_events[];

/*
 * Parses and validates a spec. base_dir resolves relative paths (the spec
 * file's directory); NULL for an already resolved spec. On failure err
 * names the field.
 */
int durin_spec_parse(const char *json_text, const char *base_dir,
                     struct durin_spec *out, struct durin_err *err);
void durin_spec_clear(struct durin_spec *s);

/*
 * Overrides the model with "provider:name" (or just a name, meaning
 * openai), as `durin run --model` and DURIN_MODEL do. An evaluator on
 * the script provider then uses that model too.
 */
int durin_spec_set_model(struct durin_spec *s, const char *model,
                         struct durin_err *err);

/* The resolved spec as JSON (absolute paths, script turns inline). */
char *durin_spec_dump(const struct durin_spec *s);

/* What a JSON value is, for messages: "an object", "a string", ... */
const char *durin_json_kind(const json_t *v);

/*
 * Whether an HTTP grant's host ("name" or "name:port") is one the
 * allowlist lets through: equal to an entry, or its name under a
 * "*.suffix" entry with the same port.
 */
int durin_spec_grant_host_allowed(const struct durin_spec_sandbox *b,
                                  const char *host);

/* Finds a tool of the spec by name, or NULL. */
const struct durin_spec_tool *durin_spec_tool(const struct durin_spec *s,
                                              const char *name);

#endif
