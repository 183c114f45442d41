/*
 * Built-in tools and the tool registry.
 *
 * A tool declares its name, a description for the model, its parameters
 * (from which both the JSON schema sent to the model and the validation of
 * the model's arguments are derived) and its side-effect class. Tools the
 * harness implements itself (update_plan, finish) have no exec function:
 * they only change the run's state.
 *
 * durin_tool_exec() does I/O (the file tools fsync); the worker calls it
 * on libuv's thread pool, never the harness. A tool that is one shell
 * command (bash) has no exec: it says which command, and the worker runs
 * the process on its loop.
 */
#ifndef DURIN_TOOLS_H
#define DURIN_TOOLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "durin/error.h"
#include "durin/spec.h"
#include "durin/util.h"

enum durin_param_type {
  DURIN_PARAM_STRING,
  DURIN_PARAM_INTEGER,
  DURIN_PARAM_BOOLEAN,
  DURIN_PARAM_PLAN, /* array of {step: string, status: string} */
};

struct durin_tool_param {
  const char *name;
  enum durin_param_type type;
  int required;
  const char *desc;
};

struct durin_sandbox; /* durin/sandbox.h */

/* Where a command runs: the driver's sandbox (NULL: on the host, with
 * only the floor of proc.c, when the operator opted out) and what the
 * run's spec lets it reach. */
struct durin_proc_box {
  const struct durin_sandbox *sandbox;
  const struct durin_spec_sandbox *spec;
  /* The call's layer (durin_layer_begin): what a command or a file tool
   * writes goes there, merged once its outcome is durable, not into the
   * workspace. NULL: straight into the workspace. */
  const char *layer;
  /* The run's grants (spec "secrets", values opened by the worker) and
   * the tool whose command this is (NULL: a check): the helper gets those
   * that apply in a sealed memfd, never in its argv or environment. */
  const struct durin_sandbox_grant *grants;
  int ngrants;
  const char *tool;
  /* The workspace is bound read-only, with no network, no writable bind
   * and no grant (DURIN_SANDBOX_WORKSPACE_RO): an evaluator's command. A
   * driver without the sandbox must refuse such a command, not run it. */
  int readonly;
};

struct durin_tool_ctx {
  const char *workspace; /* absolute path; every path stays beneath it */
  struct durin_proc_box box;
  const char *idem_key; /* stable across re-runs of the same call */
  int64_t timeout_ms;
  size_t output_cap;
};

struct durin_tool_result {
  int ok;        /* the tool did what was asked */
  int exit_code; /* bash: the command's status; -1 otherwise */
  int timed_out;
  int stopped;   /* killed because the caller asked to stop */
  int truncated; /* output was cut at the cap */
  char *output;  /* text for the model (owned, NUL-terminated) */
  int64_t duration_ms;
  /* A sandboxed command: from the start of setting its sandbox up to the
   * command's exec in it, in microseconds; 0 when not known (not
   * sandboxed, or the command never started). */
  int64_t sandbox_start_us;
  /* What a call with a layer did to the workspace (durin_layer_changes;
   * owned, may be NULL); recorded with its outcome. */
  json_t *changes;
  /* The env grants the command got (spec "secrets": [{"secret", "env"}];
   * owned, may be NULL): flagged in its tool_result event. */
  json_t *secrets_env;
};

void durin_tool_result_clear(struct durin_tool_result *r);

struct durin_tool_def {
  const char *name;
  const char *desc;
  enum durin_effect effect;
  const struct durin_tool_param *params; /* terminated by a NULL name */
  int (*exec)(const struct durin_tool_ctx *ctx, json_t *args,
              struct durin_tool_result *res);
  /*
   * Tools that are one shell command (bash) say which command, with which
   * timeout, and how its result reads; the worker runs the process on its
   * event loop. They have no exec. NULL for others.
   */
  int (*command)(const struct durin_tool_ctx *ctx, json_t *args,
                 const char **cmd, int64_t *timeout_ms);
  void (*report)(struct durin_tool_result *r, int64_t timeout_ms);
  /* The tool writes through ctx->box.layer when it has one (file tools):
   * a call of it is a transaction on the workspace wherever it runs. */
  int layered;
  /* A tool of an MCP server (durin/mcp.h): its input schema as the server
   * gave it (the arguments are checked to be an object, and the server
   * checks the rest), the server's name in the spec and the tool's name
   * there. The worker calls it; it is never contained. NULL otherwise. */
  json_t *schema;
  const char *mcp_server;
  const char *mcp_tool;
};

/*
 * Whether a call of def runs as a transaction on the workspace (a layer of
 * its own, merged once its outcome is durable; docs/internals/calls.md):
 * a command in the sandbox (sandboxed) that can reach nothing but its
 * workspace under box, or a tool that writes through its layer.
 */
int durin_tool_contained(const struct durin_tool_def *def,
                         const struct durin_spec_sandbox *box, int sandboxed);

/* Looks a tool up among the built-ins and registered tools, or NULL. */
const struct durin_tool_def *durin_tool_find(const char *name);
/* Comma-separated names of every known tool, for error messages. */
const char *durin_tool_names(void);
/*
 * Registers an extra tool (embedders, benchmarks). The definition must
 * outlive every use. Not thread-safe: call before starting runs.
 */
int durin_tool_register(const struct durin_tool_def *def);

/* The JSON schema object for def's parameters (new reference). */
json_t *durin_tool_schema(const struct durin_tool_def *def);

/*
 * Parses and validates the model's argument text for def. On failure
 * returns DURIN_EINVAL and a message written for the model, saying what is
 * wrong and what is expected.
 */
int durin_tool_args_parse(const struct durin_tool_def *def, const char *text,
                          size_t max_bytes, json_t **out,
                          struct durin_err *err);

/* Runs a tool with validated args. Never fails: errors go into res. */
void durin_tool_exec(const struct durin_tool_def *def,
                     const struct durin_tool_ctx *ctx, json_t *args,
                     struct durin_tool_result *res);

/*
 * A shell command, for the bash tool and acceptance checks, in two halves
 * around a wait on an event loop (the worker's uv-proc.c does the
 * waiting): spawn starts the command in dir, in box's sandbox when it has
 * one, with its own session and process group, a clean environment plus
 * extra_env (a NULL-terminated list of "K=V"), rlimits and every inherited
 * descriptor closed; its output, stdout and stderr together, comes on
 * *out_fd (close-on-exec). In the sandbox, *status_fd is where the helper
 * says how the call ended (non-blocking, close-on-exec; -1 without a
 * sandbox): once pid has exited, durin_proc_exec_us reads from it when
 * the command was exec'd. finish turns what it printed and its wait
 * status into res (ok, exit_code, truncation note, UTF-8); res->timed_out
 * and res->stopped are the caller's to set before.
 */
int durin_proc_spawn(const struct durin_proc_box *box, const char *dir,
                     const char *command, const char *const *extra_env,
                     int64_t timeout_ms, pid_t *pid, int *out_fd,
                     int *status_fd);
/*
 * A long-lived server (an MCP stdio server) started like a command: own
 * session and group, clean environment plus extra_env, descriptors closed,
 * in box's sandbox with dir as its workspace when it has one (then argv
 * runs through `bash -c 'exec ...'`), with no timeout. fds: the write end
 * of its stdin, the read ends of its stdout and stderr, and the helper's
 * status pipe (-1 without a sandbox; close it after the exit), all
 * close-on-exec and blocking. The caller kills its process group and
 * reaps pid.
 */
int durin_proc_spawn_server(const struct durin_proc_box *box, const char *dir,
                            char *const argv[], const char *const *extra_env,
                            pid_t *pid, int fds[4]);
/* CLOCK_MONOTONIC in microseconds when the sandbox exec'd the command
 * (durin_mono_us's clock), read from the helper's status line; 0 when it
 * never did (the sandbox could not be built, the helper was killed). */
int64_t durin_proc_exec_us(int status_fd);
void durin_proc_finish(struct durin_buf *out, size_t dropped, int status,
                       int64_t started_ms, struct durin_tool_result *res);

/*
 * Opens path beneath the workspace directory fd dirfd, refusing any path
 * that resolves outside it ("..", absolute paths, symlinks out).
 */
int durin_path_open(int dirfd, const char *path, int flags, int mode,
                    struct durin_err *err);
/* Creates the parent directories of path beneath dirfd. */
int durin_path_mkparents(int dirfd, const char *path, struct durin_err *err);

#endif
