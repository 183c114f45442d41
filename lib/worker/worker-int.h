/*
 * The worker's pieces (internal): restoring a run from the store, HTTP
 * transfers through libcurl's multi-socket interface, and tool processes
 * watched through pidfds and pipes. The last two run on one libuv loop
 * and never block it.
 */
#ifndef DURIN_WORKER_INT_H
#define DURIN_WORKER_INT_H

#include <uv.h>

#include "durin/harness.h"
#include "durin/model.h"
#include "durin/store.h"
#include "durin/tools.h"

/*
 * Loads run_id's committed state into a new harness h (restore.c): its
 * checkpoint (if it has one), the context window's events, and an
 * unfinished step with its ledger rows and decisions. attempt is the
 * lease attempt, for the log. Blocking: the store thread calls it.
 */
int durin_run_load(struct durin_store *s, const char *run_id,
                   struct durin_harness *h, int64_t attempt,
                   struct durin_err *err);

struct uvh;
struct uvh_xfer;

/* A finished transfer: r (0 or a DURIN_E* code), the status and
 * body, the Retry-After header's value ("" if none). */
typedef void (*uvh_done_cb)(void *arg, int r, long status, const char *body,
                            size_t len, const char *retry_after,
                            struct durin_err *err);

struct uvh *uvh_new(uv_loop_t *loop);
void uvh_free(struct uvh *h);
/* Starts a POST; cb runs once, on the loop, unless the transfer is freed
 * first (which abandons it). NULL if it cannot start. */
struct uvh_xfer *uvh_post(struct uvh *h, const struct durin_http_req *req,
                          int64_t timeout_ms, size_t cap, uvh_done_cb cb,
                          void *arg);
void uvh_xfer_free(struct uvh_xfer *x);
/* As uvh_post, for an MCP server: cb gets the answer's Content-Type and
 * Mcp-Session-Id headers ("" when absent) instead of Retry-After. */
typedef void (*uvh_meta_cb)(void *arg, int r, long status, const char *body,
                            size_t len, const char *ctype, const char *session,
                            struct durin_err *err);
struct uvh_xfer *uvh_post_meta(struct uvh *h, const struct durin_http_req *req,
                               int64_t timeout_ms, size_t cap, uvh_meta_cb cb,
                               void *arg);

struct uvp;
/* A finished command; res is the callee's to keep or clear. */
typedef void (*uvp_done_cb)(void *arg, struct durin_tool_result *res);

/*
 * Starts a command (durin_proc_spawn: own session, clean environment,
 * rlimits; in box's sandbox if it has one) with a wall-clock timeout that
 * kills its process group and an output cap; cb runs once, on the loop,
 * when it has ended. NULL if it cannot start.
 */
struct uvp *uvp_start(uv_loop_t *loop, const struct durin_proc_box *box,
                      const char *dir, const char *command,
                      const char *const *env, int64_t timeout_ms, size_t cap,
                      uvp_done_cb cb, void *arg);
/* Kills the process group; cb still runs, with res->stopped set. */
void uvp_stop(struct uvp *p);
/* Kills the process group and never calls cb. */
void uvp_abandon(struct uvp *p);

#endif
