/*
 * The sandbox every tool call runs in (DESIGN 6).
 *
 * libdurin builds the plan: the seccomp program, compiled once by the
 * caller and handed to each call as a descriptor, and the command line of
 * libexec/durin-sandbox, which builds the namespaces and execs the
 * command. Nothing here is process-wide: the caller owns the descriptor.
 */
#ifndef DURIN_SANDBOX_H
#define DURIN_SANDBOX_H

#include <stdint.h>

#include <jansson.h>

#include "durin/error.h"
#include "durin/spec.h"

struct durin_sandbox_opts {
  const char *workspace; /* bound read-write; the command's cwd */
  int workspace_ro;      /* bound read-only instead (no lowers) */
  const char *const *ro; /* extra read-only binds */
  int nro;
  const char *const *rw; /* extra read-write binds */
  int nrw;
  const char *const *env; /* "K=V" on top of the fixed allowlist */
  int nenv;
  long mem_mb;    /* 0: no memory limit */
  long pids;      /* 0: 256 */
  long cpu_pct;   /* 0: no CPU quota; 100 = one core */
  long timeout_s; /* 0: none; kills the whole tree */
  long fsize_mb;  /* largest file it may write; 0: none */
  long nofile;    /* 0: 256 */
  long uid;       /* host id when durin runs as root; 0: 100000 */
  /* The workspace as an overlay: lowers (topmost first) under the
   * upper/ and work/ in layers. Without lowers the workspace is bound. */
  const char *lower[2];
  int nlower;
  const char *layers;
  int net_proxy;            /* egress through the call's proxy, to allow only */
  const char *const *allow; /* "name", "name:port", "*.suffix" */
  int nallow;
  /* The call's grants (durin_sandbox_grants_memfd) are at
   * DURIN_SANDBOX_GRANTS_FD in the helper. */
  int grants;
  /* More CAs the proxy trusts upstream, beside the system's (a PEM file;
   * $DURIN_EGRESS_CA_FILE of the caller), or NULL. */
  const char *egress_ca;
};

/*
 * A secret a call uses without holding it (spec "secrets"), opened by
 * the worker. HTTP (host set): the call's proxy terminates TLS to host
 * with a certificate of its own CA, which the sandbox trusts, and adds
 * `header: format` ("{}" replaced by the value) to each request. Env
 * (env set): the value goes in variable env of tool's commands only.
 * The value is never in an argv nor in the helper's environment: it
 * reaches the helper in a sealed memfd.
 */
struct durin_sandbox_grant {
  const char *name; /* the secret's, for messages */
  const char *host;
  const char *header;
  const char *format;
  const char *env;
  const char *tool;
  const unsigned char *value;
  size_t len;
};

/*
 * Writes the grants that apply to a command of tool (NULL: a check,
 * which gets the HTTP grants only) to a sealed memfd (close-on-exec);
 * *fd is -1 when none applies. The format of the memfd is the helper's
 * (libexec/durin-sandbox.c, read_grants): "durin-grants-1\n", then per
 * grant a kind byte ('H' or 'E') and its strings as a 4-byte length and
 * bytes: host, header name, header value; or variable, value.
 */
int durin_sandbox_grants_memfd(const struct durin_sandbox_grant *g, int n,
                               const char *tool, int *fd);

/*
 * Compiles the seccomp program (deny-list of the dangerous families,
 * foreign architectures killed) into a sealed memfd; *fd receives it.
 */
int durin_sandbox_seccomp(int *fd, struct durin_err *err);

/*
 * The helper's path: $DURIN_SANDBOX_HELPER, else durin-sandbox next to
 * exe, else exe's ../libexec/durin/durin-sandbox. exe is the running
 * binary's path (/proc/self/exe resolved by the caller).
 */
int durin_sandbox_helper(const char *exe, char *out, size_t len,
                         struct durin_err *err);

/*
 * The helper's argv for cmd under o: helper, options, "--", cmd...
 * seccomp_fd and status_fd may be -1. Free with durin_sandbox_argv_free.
 */
char **durin_sandbox_argv(const char *helper,
                          const struct durin_sandbox_opts *o, int seccomp_fd,
                          int status_fd, char *const cmd[]);
void durin_sandbox_argv_free(char **argv);

/*
 * What a driver holds to sandbox its tool calls: the helper, the program
 * (compiled once), and the limits every call gets unless the run's spec
 * says otherwise. Owned by the caller; no process-wide state.
 */
#define DURIN_SANDBOX_FORBID_MAX 8
struct durin_sandbox {
  char helper[4096];
  int seccomp_fd;
  struct durin_sandbox_opts defaults;
  /* Host directories no spec bind may expose (durin_sandbox_forbid):
   * resolved paths and what each is, for messages. */
  struct durin_sandbox_root {
    char path[4096];
    const char *what; /* static, e.g. "the store's directory" */
  } forbid[DURIN_SANDBOX_FORBID_MAX];
  int nforbid;
};

/*
 * Template workspaces (spec sandbox.template; lib/sandbox/workspace.c).
 * layers: runs/ID/layers for the workspace runs/ID/workspace. mount: the
 * view of template under the run's files at `at` (NULL: ws), writable
 * (upper and work) or read-only; in the caller's mount namespace, which
 * should be private (the CLI makes it so). unmount: lazily.
 */
void durin_workspace_layers(const char *ws, char *out, size_t len);
int durin_workspace_mount(const char *ws, const char *template, int writable,
                          const char *at, struct durin_err *err);
void durin_workspace_unmount(const char *ws);

/*
 * Tool calls as transactions on the workspace (lib/sandbox/layer.c).
 * For the workspace runs/ID/workspace, a contained call (step, call) is
 * runs/ID/calls/sSTEP-cCALL; each attempt at it, by the lease holder of
 * one epoch, is a layer eEPOCH/ in it with upper/ and work/.
 *
 * begin: makes a fresh attempt's layer (and the call's directory); its
 *   path goes to out.
 * name: "sSTEP-cCALL/eEPOCH", the layer's name in the call's outcome.
 * changes: what the layer would do to target, seen over below (a
 *   template run's template; may be NULL): added, changed, deleted files,
 *   bytes, as a JSON object (new reference); "too_deep" when the layer
 *   nests directories deeper than DURIN_LAYER_MAX_DEPTH (its call must
 *   then keep nothing of it).
 * merge: moves the layer's upper/ into target, idempotently: a merge cut
 *   by a crash is finished by running it again. whiteouts: target is an
 *   overlay's upper layer itself (a template run), so deletions are kept
 *   as whiteouts there.
 * scan: calls cb for every call directory of the workspace; stops at and
 *   returns the first non-zero return of cb (DURIN_EIO: unreadable).
 */
#define DURIN_LAYER_MAX_DEPTH 128
void durin_layer_calls_dir(const char *ws, char *out, size_t len);
int durin_layer_begin(const char *ws, int64_t step, int call, uint64_t epoch,
                      char *out, size_t len, struct durin_err *err);
const char *durin_layer_name(const char *layer);
json_t *durin_layer_changes(const char *layer, const char *target,
                            const char *below);
int durin_layer_merge(const char *layer, const char *target, int whiteouts,
                      struct durin_err *err);
typedef int (*durin_layer_cb)(void *arg, int64_t step, int call,
                              const char *calldir);
int durin_layer_scan(const char *ws, durin_layer_cb cb, void *arg);

/* The descriptor numbers the program and the status line's pipe have in
 * the helper. */
#define DURIN_SANDBOX_SECCOMP_FD 3
#define DURIN_SANDBOX_STATUS_FD  4
#define DURIN_SANDBOX_GRANTS_FD  5

/*
 * Forbids every spec bind (sandbox.ro, sandbox.rw) that equals, contains
 * or lies inside path, symlinks resolved: the store's directory and the
 * data directory, which hold every run's log, ledger and workspace. what
 * names it in messages ("the data directory"; static). path need not
 * exist yet. Call after durin_sandbox_open. DURIN_EINVAL when full.
 */
int durin_sandbox_forbid(struct durin_sandbox *sb, const char *path,
                         const char *what, struct durin_err *err);

/*
 * Checks box's binds against sb's forbidden roots, resolving symlinks
 * now: DURIN_ESPEC naming the field ("sandbox.rw[0]"), the bind and the
 * root it exposes. A worker calls it before it drives a run, so a spec
 * that can never run fails with this message; durin_sandbox_command
 * checks again at every call (a path may have become a symlink since).
 */
int durin_sandbox_check(const struct durin_sandbox *sb,
                        const struct durin_spec_sandbox *box,
                        struct durin_err *err);

/* Finds the helper next to exe and compiles the program. */
int durin_sandbox_open(struct durin_sandbox *sb, const char *exe,
                       struct durin_err *err);
void durin_sandbox_close(struct durin_sandbox *sb);

/*
 * The helper's argv running `bash -c command` in workspace under sb's
 * limits and the run's box (may be NULL), with env ("K=V", NULL-ended)
 * added. layer (may be NULL): the call's layer from durin_layer_begin;
 * the command then sees the workspace with its writes going there. The
 * child that execs it must have sb->seccomp_fd at DURIN_SANDBOX_SECCOMP_FD
 * and a pipe's write end at DURIN_SANDBOX_STATUS_FD: the helper writes
 * its status line there as it exits ({"status":"exited","code":0,...,
 * "exec_mono_us":N}, libexec/durin-sandbox.c), N being CLOCK_MONOTONIC
 * when the command was exec'd in the sandbox.
 * flags: DURIN_SANDBOX_GRANTS, the child has the call's grants at
 * DURIN_SANDBOX_GRANTS_FD; DURIN_SANDBOX_WORKSPACE_RO, the workspace is
 * bound read-only and the command gets no network and none of box's
 * writable binds, whatever box says (an evaluator's commands: they may
 * read and run, never change anything; a template run's view cannot be
 * bound so, and such a command is refused as below). Free with
 * durin_sandbox_argv_free. When durin_sandbox_check refuses box's binds, the
 * argv still runs the helper, without any of box's binds, and the command is
 * replaced by one that prints the refusal and exits 126: the call fails saying
 * why, and never runs outside the sandbox nor with the binds.
 */
char **durin_sandbox_command(const struct durin_sandbox *sb,
                             const struct durin_spec_sandbox *box,
                             const char *workspace, const char *layer,
                             const char *const *env, int64_t timeout_ms,
                             unsigned flags, const char *command);

enum durin_sandbox_command_flags {
  DURIN_SANDBOX_GRANTS = 1 << 0,
  DURIN_SANDBOX_WORKSPACE_RO = 1 << 1,
};

#endif
