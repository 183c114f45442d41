/*
 * Policy: before a tool call runs, allow, ask (a person decides) or deny.
 *
 * A policy is a JSON object, in a spec ("policy") or in a server-wide file:
 *
 *   {"default": "allow",                    known tools without a rule
 *    "tools": {"bash": "ask"},              a default per tool
 *    "rules": [                             first match decides
 *      {"name": "no-rm", "tool": "bash", "command_prefix": "rm",
 *       "action": "deny"},
 *      {"tool": "write_file", "path": "src/[**]", "action": "allow"},
 *      {"tool": "*", "access": "write", "path": ".git/[**]",
 *       "action": "deny"},
 *      {"tool": "*", "when": {"cost_usd_over": 1}, "action": "ask"}]}
 *
 * ([**] stands for two stars, which would end this comment.)
 *
 * Matchers: "tool" (a name, "*", or "SERVER__*" for every tool of an MCP
 * server, whose tools are named SERVER__TOOL, durin/mcp.h); "path" (a glob: *
 * within a segment, two stars across segments) and "access" ("read" or "write")
 * for file tools; "command_prefix" (whole words) and "command_regex" (POSIX
 * extended) for bash; "host" (a glob) and "method" for tools whose arguments
 * carry a "url" or "method"; "when" on the run's state ("cost_usd_over",
 * "steps_over"). All present matchers must match.
 *
 * Paths are judged as they resolve in the workspace: "..", absolute paths
 * and symlinks are followed first, and one that leaves the workspace is
 * denied outright. Commands are judged one simple command at a time: the
 * line is split at ; & | && || and newlines, $(...) and `...` are judged
 * too, quotes are removed, and wrappers (VAR=x, env, command, exec, nohup,
 * time, sh -c / bash -c STRING) are looked through; the most severe
 * decision over all of them stands, so "git status; rm -rf /" is judged
 * as rm too.
 *
 * Layers: the spec's policy and the server's are both applied and the
 * more severe decision wins, so a server policy can only tighten. A tool
 * durin does not know is denied.
 */
#ifndef DURIN_POLICY_H
#define DURIN_POLICY_H

#include <stdint.h>

#include <jansson.h>

#include "durin/error.h"

enum durin_policy_action {
  DURIN_POLICY_ALLOW,
  DURIN_POLICY_ASK,
  DURIN_POLICY_DENY,
};

struct durin_policy;

/* What the run has spent so far, for "when" matchers. */
struct durin_policy_state {
  double cost_usd;
  int64_t steps;
};

struct durin_policy_decision {
  enum durin_policy_action action;
  char origin[16]; /* "spec", "server", or "builtin" */
  char rule[96];   /* the rule's name, "rule N", "tools.NAME", "default" */
  char why[512];   /* for the log and for a person */
};

/* Parses obj (a policy object; NULL: an empty policy that allows known
 * tools). origin names it in decisions. err names the field. */
int durin_policy_parse(json_t *obj, const char *origin,
                       struct durin_policy **out, struct durin_err *err);
void durin_policy_free(struct durin_policy *p);

/*
 * Decides a call of tool with args (validated JSON), in workspace, under
 * the layers (NULL entries skipped). Never fails: an argument it cannot
 * judge is denied, with the reason.
 */
void durin_policy_decide(const struct durin_policy *const *layers, int n,
                         const char *workspace, const char *tool, json_t *args,
                         const struct durin_policy_state *st,
                         struct durin_policy_decision *d);

const char *durin_policy_action_name(enum durin_policy_action a);

/* A run's policy layers: its spec's (owned), then the server's. */
struct durin_run_policy {
  struct durin_policy *spec;
  const struct durin_policy *server;
};

/* Parses the spec's "policy" object (may be NULL) under the server's
 * policy (may be NULL, borrowed: it must outlive p). */
int durin_run_policy_init(struct durin_run_policy *p, json_t *spec_policy,
                          const struct durin_policy *server,
                          struct durin_err *err);
/* Decides a call with both layers (reads the workspace for links). */
void durin_run_policy_decide(const struct durin_run_policy *p,
                             const char *workspace, const char *tool,
                             json_t *args, const struct durin_policy_state *st,
                             struct durin_policy_decision *d);
void durin_run_policy_clear(struct durin_run_policy *p);

/* The simple commands of a shell line, as judged (for tests and `durin
 * policy check`): NULL-terminated, free with durin_policy_words_free. */
char **durin_policy_commands(const char *line);
void durin_policy_words_free(char **v);

#endif
