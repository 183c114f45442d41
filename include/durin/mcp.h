/*
 * The MCP client: one JSON-RPC 2.0 session with one server of a run's
 * spec ("mcp_servers"), over any transport (docs/internals/mcp.md).
 *
 * The session does no I/O. The transport hands it what the server sent
 * (durin_mcp_feed for a stdio server's newline-delimited stream,
 * durin_mcp_receive_body for a streamable HTTP answer, JSON or SSE) and
 * sends what ops->send gives it. Replies come back through the callback
 * given with each request, on the thread that fed the reply in: the
 * worker's loop.
 *
 * Anything a server sends that is not JSON-RPC (not JSON, another
 * version, a reply to an id never asked, a message over
 * DURIN_MCP_MAX_MESSAGE) is an error the caller cuts the server off for:
 * the feeding function returns DURIN_EPARSE with a message an operator
 * and a model can read.
 */
#ifndef DURIN_MCP_H
#define DURIN_MCP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "durin/error.h"
#include "durin/spec.h"
#include "durin/tools.h"

/* The most one message from a server may hold. */
#define DURIN_MCP_MAX_MESSAGE (4u << 20)
/* The most pages a tools/list may take. */
#define DURIN_MCP_MAX_PAGES 100
/* What we ask for, and what we accept in the answer. */
#define DURIN_MCP_PROTOCOL "2025-11-25"

struct durin_mcp;

struct durin_mcp_ops {
  /* Sends one message (JSON text, no newline); 0 or a DURIN_E* code. */
  int (*send)(void *arg, const char *text, size_t len);
  /* A notification from the server (notifications/progress, ...);
   * params may be NULL. */
  void (*notify)(void *arg, const char *method, json_t *params);
};

/* A request's answer: result (borrowed) on success, else err says why
 * (the server's JSON-RPC error, or the session's end). */
typedef void (*durin_mcp_reply_cb)(void *arg, json_t *result,
                                   const struct durin_err *err);

/* server names the server in messages; ops and arg must outlive m. */
struct durin_mcp *durin_mcp_new(const char *server,
                                const struct durin_mcp_ops *ops, void *arg);
/* Pending callbacks do not run: durin_mcp_fail_all first if they must. */
void durin_mcp_free(struct durin_mcp *m);

/*
 * Bytes of a stdio server's stdout: complete lines are messages. A line
 * (or a partial one) longer than DURIN_MCP_MAX_MESSAGE, or a message that
 * is not JSON-RPC, is DURIN_EPARSE with err saying which.
 */
int durin_mcp_feed(struct durin_mcp *m, const char *data, size_t len,
                   struct durin_err *err);
/* One whole message. */
int durin_mcp_receive(struct durin_mcp *m, const char *text, size_t len,
                      struct durin_err *err);
/* A streamable HTTP answer's body: one JSON message, or SSE whose data
 * fields are messages (is_sse: the Content-Type said so). */
int durin_mcp_receive_body(struct durin_mcp *m, const char *body, size_t len,
                           int is_sse, struct durin_err *err);

/* Sends a request (params stolen, may be NULL); cb runs once with its
 * answer unless it is cancelled or m freed. *id: its id (may be NULL). */
int durin_mcp_request(struct durin_mcp *m, const char *method, json_t *params,
                      durin_mcp_reply_cb cb, void *arg, int64_t *id);
int durin_mcp_notify(struct durin_mcp *m, const char *method, json_t *params);
/* Forgets request id (its callback never runs) and tells the server
 * (notifications/cancelled with the reason). */
void durin_mcp_cancel(struct durin_mcp *m, int64_t id, const char *reason);
/* Runs request id's callback with err (the transport lost it). */
void durin_mcp_fail(struct durin_mcp *m, int64_t id,
                    const struct durin_err *err);
/* Runs every pending request's callback with err, and forgets them. */
void durin_mcp_fail_all(struct durin_mcp *m, const struct durin_err *err);
int durin_mcp_pending(const struct durin_mcp *m);

/*
 * The session's opening: initialize (DURIN_MCP_PROTOCOL, negotiating
 * down to 2025-06-18 or 2025-03-26), notifications/initialized, then
 * tools/list, page after page. cb runs once: rc 0 when the tools are
 * listed (durin_mcp_listed), else a DURIN_E* code and err.
 */
typedef void (*durin_mcp_ready_cb)(void *arg, int rc,
                                   const struct durin_err *err);
int durin_mcp_start(struct durin_mcp *m, durin_mcp_ready_cb cb, void *arg);
/* Once ready: tools/list again (the server said its tools changed); cb
 * as for durin_mcp_start. DURIN_ESTATE when the session is not ready. */
int durin_mcp_relist(struct durin_mcp *m, durin_mcp_ready_cb cb, void *arg);
/* The protocol version the server answered ("" before). */
const char *durin_mcp_version(const struct durin_mcp *m);
/* The tools the server listed, as it listed them (borrowed; NULL before). */
json_t *durin_mcp_listed(const struct durin_mcp *m);

/* The tools of one server as the model sees them. */
struct durin_mcp_toolset {
  struct durin_tool_def *defs;
  int n;
  char **names; /* owned strings behind defs */
};

/*
 * Makes srv's tools from a tools/list answer (listed): each named
 * SERVER__TOOL, its effect from its annotations (readOnlyHint: pure,
 * idempotentHint: idempotent, else unsafe) unless srv's "tools" says
 * otherwise. A tool whose name or inputSchema cannot be offered is left
 * out, and one line saying why is appended to notices (a JSON array).
 */
int durin_mcp_toolset_make(const struct durin_spec_mcp *srv, json_t *listed,
                           struct durin_mcp_toolset *out, json_t *notices,
                           struct durin_err *err);
void durin_mcp_toolset_clear(struct durin_mcp_toolset *t);

/* tools/call's params: name, arguments, _meta.progressToken (new ref). */
json_t *durin_mcp_call_params(const char *tool, json_t *args,
                              const char *progress_token);
/*
 * A tools/call result as a tool result: its text items joined (other
 * kinds named), structuredContent as JSON text when there is no text,
 * isError as a failed call whose text the model reads; at most cap bytes.
 */
void durin_mcp_call_result(json_t *result, size_t cap,
                           struct durin_tool_result *res);

#endif
