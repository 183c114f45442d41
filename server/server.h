/*
 * The control plane: durin serve's HTTP API (docs/api/README.md,
 * docs/internals/api.md).
 *
 * HTTP comes from libmicrohttpd: a pool of threads on epoll, each request
 * handled in one of them with a store connection of the server's own (a
 * small pool), never the worker's; the worker's loop never waits on a
 * request. Event streams (hub.c) are connections suspended in libmicrohttpd
 * while there is nothing to send, woken by the commit that appended
 * events: in-process through durin_store_on_events(), across processes
 * through PostgreSQL's NOTIFY. Webhooks (webhooks.c) are delivered from
 * the store's outbox by a thread of their own.
 */
#ifndef DURIN_SERVER_H
#define DURIN_SERVER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "durin/error.h"
#include "durin/store.h"

struct MHD_Connection;
struct MHD_Response;
struct srv;
struct hub;
struct spec_policy;
struct durin_policy;
struct durin_metrics;

struct srv_opts {
  const char *listen;    /* "ADDR:PORT"; default 127.0.0.1:7700 */
  const char *store_url; /* every connection the server opens */
  const char *data_dir;  /* run workspaces, uploads */
  int no_auth;           /* loopback only: every request is admin */
  int threads;           /* libmicrohttpd's pool */
  int max_conns;
  int timeout_s;      /* idle time of a request's connection */
  size_t max_header;  /* per connection: request line and headers */
  int64_t max_body;   /* JSON bodies */
  int64_t max_upload; /* uploaded workspace archives (packed) */
  int64_t max_unpack; /* ... and unpacked */
  double rate;        /* requests per second per token; 0: no limit */
  double burst;       /* bucket size */
  const char *tls_cert, *tls_key; /* PEM files: HTTPS (GnuTLS) */
  const char *workspace_root;     /* dirs an admin may start runs in */
  struct spec_policy *policy;     /* owned by the caller */
  /* The server's tool policy (--policy, DURIN_POLICY; may be NULL),
   * owned by the caller: an approval's edited call is judged under it. */
  const struct durin_policy *tool_policy;
  int unsandboxed; /* tools run on the host: refuse specs from the API */
  int64_t stream_heartbeat_ms;
  /* Log lines; may be NULL. */
  void (*on_log)(void *arg, const char *line);
  void *log_arg;
  /* Wakes the embedded worker (a run was queued, a decision made). */
  void (*wake_worker)(void *arg);
  void *wake_arg;
  /* The process's metrics, rendered at GET /metrics (server/metrics.c);
   * may be NULL (the store's counts only). Owned by the caller. */
  struct durin_metrics *metrics;
};

int srv_start(const struct srv_opts *o, struct srv **out,
              struct durin_err *err);
/* The port it listens on (after port 0: the one picked). */
int srv_port(const struct srv *s);
/* Stops taking requests, ends streams, joins its threads. */
void srv_stop(struct srv *s);
/* durin_store_on_events() callback for the worker's store: the commit of
 * run_id's events wakes its streams. arg is the struct srv. */
void srv_events_committed(void *arg, const char *run_id);

/* `durin worker --metrics-listen ADDR` (server/metrics.c): GET /metrics
 * alone, on ADDR ("ADDR:PORT" or "PORT", IPv4; port 0 picks one), with a
 * connection of its own to store_url; m is the caller's and must outlive
 * the listener. */
struct metrics_listener;
int metrics_listen(const char *addr, const char *store_url,
                   struct durin_metrics *m, struct metrics_listener **out,
                   struct durin_err *err);
int metrics_listen_port(const struct metrics_listener *l);
void metrics_listen_stop(struct metrics_listener *l);

/* The store's counts (server/metrics.c): queue depth by tenant and
 * status, approvals pending and the oldest one's wait by tenant, and
 * store_up, read now from st (NULL: store_up 0) into a new registry the
 * caller frees; NULL when out of memory. What /metrics adds to the
 * process's registry, read at each scrape. */
struct durin_metrics *metrics_store_read(struct durin_store *st);
/* The same for the OTLP pusher (include/durin/otel-metrics.h, its
 * collect hook: metrics_store_source_read), through a connection of the
 * source's own to store_url, opened on the reading thread at the first
 * read and again after a read it failed. Free after the pusher stopped. */
struct metrics_store_source;
struct metrics_store_source *metrics_store_source_new(const char *store_url);
struct durin_metrics *metrics_store_source_read(void *source);
void metrics_store_source_free(struct metrics_store_source *s);

/* ---- for the handlers (the other files of server/) ---- */

enum role { ROLE_NONE = 0, ROLE_VIEWER, ROLE_OPERATOR, ROLE_ADMIN };

/* Who asks: the token's name, role and tenant (NULL: every tenant). */
struct who {
  char name[128];
  char tenant[128];
  int has_tenant;
  enum role role;
};

#define REQ_MAX_PARAMS 4

struct req {
  struct srv *srv;
  struct MHD_Connection *conn;
  const char *method;
  char *path;                        /* without the query */
  const char *param[REQ_MAX_PARAMS]; /* the route's {...} segments */
  char *body;
  size_t body_len, body_cap;
  int too_big;
  struct who who;
  struct durin_store *store; /* from the pool, for this request */
  /* The answer. */
  int status;
  struct MHD_Response *resp;
};

struct route {
  const char *method;
  const char *pattern; /* "/v1/runs/{}/cancel" */
  enum role min_role;
  int (*fn)(struct req *r);
};

/* Tables of routes, each ending with a NULL method. */
extern const struct route srv_run_routes[];
extern const struct route srv_fork_routes[];
extern const struct route srv_admin_routes[];
extern const struct route srv_approval_routes[];
extern const struct route srv_stream_routes[];
extern const struct route srv_webhook_routes[];
extern const struct route srv_secret_routes[];
extern const struct route srv_trigger_routes[];
extern const struct route srv_schedule_routes[];
/* A tenant, agent or schedule name: 1 to 64 of [A-Za-z0-9._-], not
 * starting with '.' (names become path components). */
int srv_name_ok(const char *s);
extern const struct route srv_diff_routes[];
extern const struct route srv_review_routes[];
extern const struct route srv_web_routes[];
extern const struct route srv_timeline_routes[];
extern const struct route srv_openapi_routes[];
extern const struct route srv_metrics_routes[];

/* Answers: reply_json takes j; reply_error's body is
 * {"error": {"code": CODE, "message": MSG}} (with "field" if given). */
int reply_json(struct req *r, int status, json_t *j);
int reply_error(struct req *r, int status, const char *code, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));
int reply_error_field(struct req *r, int status, const char *code,
                      const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* A store failure: 503 when it cannot be reached for now, else 500. */
int reply_store_error(struct req *r, int code, const struct durin_err *err);
/* An answer built by the caller (a stream, a file). */
int reply_response(struct req *r, int status, struct MHD_Response *resp);
/* A query argument, or NULL. */
const char *req_arg(struct req *r, const char *name);
const char *req_header(struct req *r, const char *name);
/* Parses the body as a JSON object, or answers 400 and returns NULL. */
json_t *req_json(struct req *r);
/* Fields of a JSON body. Each answers 400 and returns nonzero when the
 * body is not as asked: a field outside known (NULL-terminated; the
 * answer names the nearest known one), or one of the wrong type. An
 * absent or null field leaves *out as it was (a string's becomes NULL). */
int req_unknown_field(struct req *r, json_t *body, const char *const *known);
int req_opt_string(struct req *r, json_t *body, const char *name,
                   const char **out);
int req_opt_int(struct req *r, json_t *body, const char *name, int64_t *out);
/* Whether the request may see a run of this tenant. */
int req_sees_tenant(const struct req *r, const char *tenant);
/*
 * The tenant a request about a tenant's things (agents, secrets) acts in:
 * a tenant token's own; for others ?tenant= or "default". 0 with *out
 * set; -1 after answering (a bad name, or a tenant token naming another
 * tenant: 403 for a write); 1 for a read of a tenant the token may not
 * see, which the caller answers as if there were nothing.
 */
int srv_act_tenant(struct req *r, int write, const char **out);
/* The same for a listing: a token bound to no tenant that names none
 * sees every tenant's (*out NULL). */
int srv_list_tenant(struct req *r, const char **out);
/*
 * The tenant a request's body names (*tenant, NULL: none): a tenant
 * token's own, which it may not name otherwise. 0, or -1 after answering
 * 403.
 */
int srv_body_tenant(struct req *r, const char **tenant);
/* Resolves run id param for the request: 404 if none or not its tenant
 * (the same answer: a tenant learns nothing of others' runs). Fills ri. */
int req_run(struct req *r, const char *id, struct durin_run_info *ri);

const char *srv_data_dir(const struct srv *s);
const struct srv_opts *srv_options(const struct srv *s);
struct hub *srv_hub(struct srv *s);
void srv_log(struct srv *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void srv_wake_worker(struct srv *s);

/* JSON of a run (runs.c), for listings, gets and streams. */
json_t *srv_run_json(struct durin_store *st, const struct durin_run_info *ri,
                     int full);

/* An event as JSON: {seq, ts_ms, step, type, data} (runs.c). */
json_t *srv_event_json(const struct durin_event *ev);

/*
 * The run's workspace against its start, as `durin diff` prints it
 * (diff.c): *text is the caller's (NUL-terminated, *len bytes). Bounded:
 * DURIN_ETOOBIG past the cap; DURIN_ENOTFOUND when the run has no
 * snapshot; err says why.
 */
int srv_run_diff(struct req *r, const char *id, int stat, char **text,
                 size_t *len, struct durin_err *err);

/* Tokens (auth.c). */
/* "durin_" + 43 base64url characters; hash: its sha256 hex. */
int token_new(char *token, size_t len);
void token_hash(const char *token, char hash[65]);
/* Makes a token for t (name, role and tenant: the caller's) and stores its
 * hash; fills t's id and created_ms and tok (len >= 64) with the token, to
 * be shown once. DURIN_EEXIST if an unrevoked token has the name. */
int token_issue(struct durin_store *st, struct durin_token *t, char *tok,
                size_t len, struct durin_err *err);
/* A token's metadata as JSON (never its hash): {id, name, role, tenant,
 * created_ms, revoked_ms}; tenant and revoked_ms may be null. */
json_t *token_json(const struct durin_token *t);
const char *role_name(enum role r);
enum role role_parse(const char *s);

/* The event hub (hub.c). */
int hub_start(struct srv *s, struct hub **out, struct durin_err *err);
/* Ends every stream (before the daemon stops: it waits for them). */
void hub_end_all(struct hub *h);
void hub_stop(struct hub *h);
void hub_wake(struct hub *h, const char *run_id);

/* Webhook delivery (webhooks.c): a thread with a store connection of its
 * own sends the outbox. _wake (any thread, never blocks): events were
 * committed, look now. _stop cuts an in-flight POST short, hands back
 * what it holds and joins the thread. */
struct webhooks;
int webhooks_start(struct srv *s, struct webhooks **out, struct durin_err *err);
void webhooks_wake(struct webhooks *w);
void webhooks_stop(struct webhooks *w);

#endif
