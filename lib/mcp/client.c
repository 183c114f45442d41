/*
 * One JSON-RPC 2.0 session with an MCP server. See durin/mcp.h.
 *
 * The opening, as a little state machine driven by replies:
 *   NEW --start--> INITIALIZING --result, version ok--> LISTING
 *   LISTING --page with nextCursor--> LISTING --last page--> READY
 *   any --bad message, error reply--> (the caller cuts the server off)
 * Requests made after READY (tools/call) only need the id table: each
 * pending request has an id, a callback and its argument; a reply to any
 * other id is a protocol error, because a server that answers what was
 * never asked cannot be trusted to answer what was.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/mcp.h"
#include "durin/model.h"
#include "durin/util.h"

enum mcp_state {
  MCP_NEW,
  MCP_INITIALIZING,
  MCP_LISTING,
  MCP_READY,
};

struct pending {
  int64_t id;
  durin_mcp_reply_cb cb;
  void *arg;
};

struct durin_mcp {
  char server[64];
  const struct durin_mcp_ops *ops;
  void *arg;
  enum mcp_state state;
  int64_t next_id;
  struct pending *pend;
  int npend, apend;
  /* Requests cancelled lately: an answer may cross the cancellation, and
   * is dropped rather than taken for a reply to what was never asked. */
  int64_t cancelled[64];
  int ncancelled;
  struct durin_buf line; /* a stdio line not yet complete */
  char version[16];
  json_t *listed;
  int pages;  /* of the listing in progress */
  int relist; /* it is a relist: a failure leaves the session ready */
  durin_mcp_ready_cb ready;
  void *ready_arg;
};

static const char *const versions[] = { "2025-11-25", "2025-06-18",
                                        "2025-03-26", NULL };

struct durin_mcp *durin_mcp_new(const char *server,
                                const struct durin_mcp_ops *ops, void *arg)
{
  struct durin_mcp *m = calloc(1, sizeof(*m));

  if (!m)
    return NULL;
  snprintf(m->server, sizeof(m->server), "%s", server);
  m->ops = ops;
  m->arg = arg;
  m->next_id = 1;
  durin_buf_init(&m->line, DURIN_MCP_MAX_MESSAGE);
  return m;
}

void durin_mcp_free(struct durin_mcp *m)
{
  if (!m)
    return;
  free(m->pend);
  durin_buf_release(&m->line);
  json_decref(m->listed);
  free(m);
}

const char *durin_mcp_version(const struct durin_mcp *m)
{
  return m->version;
}

json_t *durin_mcp_listed(const struct durin_mcp *m)
{
  return m->listed;
}

int durin_mcp_pending(const struct durin_mcp *m)
{
  return m->npend;
}

static int send_msg(struct durin_mcp *m, json_t *msg)
{
  char *text = json_dumps(msg, JSON_COMPACT);
  int r;

  json_decref(msg);
  if (!text)
    return DURIN_ENOMEM;
  r = m->ops->send(m->arg, text, strlen(text));
  free(text);
  return r;
}

int durin_mcp_request(struct durin_mcp *m, const char *method, json_t *params,
                      durin_mcp_reply_cb cb, void *arg, int64_t *id)
{
  json_t *msg = json_pack("{s:s,s:I,s:s}", "jsonrpc", "2.0", "id",
                          (json_int_t)m->next_id, "method", method);
  int r;

  if (params)
    json_object_set_new(msg, "params", params);
  if (m->npend == m->apend) {
    int n = m->apend ? 2 * m->apend : 8;
    struct pending *p = realloc(m->pend, (size_t)n * sizeof(*p));

    if (!p) {
      json_decref(msg);
      return DURIN_ENOMEM;
    }
    m->pend = p;
    m->apend = n;
  }
  /* Recorded before it is sent: a transport may answer synchronously. */
  m->pend[m->npend].id = m->next_id;
  m->pend[m->npend].cb = cb;
  m->pend[m->npend].arg = arg;
  m->npend++;
  if (id)
    *id = m->next_id;
  m->next_id++;
  if ((r = send_msg(m, msg))) {
    m->npend--;
    return r;
  }
  return 0;
}

int durin_mcp_notify(struct durin_mcp *m, const char *method, json_t *params)
{
  json_t *msg = json_pack("{s:s,s:s}", "jsonrpc", "2.0", "method", method);

  if (params)
    json_object_set_new(msg, "params", params);
  return send_msg(m, msg);
}

static int take(struct durin_mcp *m, int64_t id, struct pending *out)
{
  int i;

  for (i = 0; i < m->npend; i++)
    if (m->pend[i].id == id) {
      *out = m->pend[i];
      memmove(&m->pend[i], &m->pend[i + 1],
              (size_t)(m->npend - i - 1) * sizeof(*m->pend));
      m->npend--;
      return 1;
    }
  return 0;
}

void durin_mcp_cancel(struct durin_mcp *m, int64_t id, const char *reason)
{
  struct pending p;

  if (!take(m, id, &p))
    return;
  m->cancelled[m->ncancelled++ % 64] = id;
  durin_mcp_notify(m, "notifications/cancelled",
                   json_pack("{s:I,s:s}", "requestId", (json_int_t)id, "reason",
                             reason ? reason : "cancelled"));
}

void durin_mcp_fail(struct durin_mcp *m, int64_t id,
                    const struct durin_err *err)
{
  struct pending p;

  if (take(m, id, &p))
    p.cb(p.arg, NULL, err);
}

void durin_mcp_fail_all(struct durin_mcp *m, const struct durin_err *err)
{
  struct pending p;

  while (m->npend) {
    p = m->pend[0];
    take(m, p.id, &p);
    p.cb(p.arg, NULL, err);
  }
}

static int proto_err(struct durin_mcp *m, struct durin_err *err,
                     const char *what)
{
  return durin_err_set(err, DURIN_EPARSE,
                       "mcp server '%s' sent %s; it was cut off", m->server,
                       what);
}

static int handle(struct durin_mcp *m, json_t *msg, struct durin_err *err)
{
  json_t *id = json_object_get(msg, "id");
  const char *method = json_string_value(json_object_get(msg, "method"));
  struct pending p;

  if (!json_is_object(msg))
    return proto_err(m, err, "a JSON value that is not an object");
  if (!json_is_string(json_object_get(msg, "jsonrpc")) ||
      strcmp(json_string_value(json_object_get(msg, "jsonrpc")), "2.0"))
    return proto_err(m, err, "a message without \"jsonrpc\": \"2.0\"");
  if (method && !id) {
    if (m->ops->notify)
      m->ops->notify(m->arg, method, json_object_get(msg, "params"));
    return 0;
  }
  if (method) {
    /* A request from the server (ping, sampling, roots): we offer no
     * capabilities, so only ping gets an answer other than "no". */
    json_t *ans = json_pack("{s:s,s:O}", "jsonrpc", "2.0", "id", id);

    if (!strcmp(method, "ping"))
      json_object_set_new(ans, "result", json_object());
    else
      json_object_set_new(ans, "error",
                          json_pack("{s:i,s:s}", "code", -32601, "message",
                                    "method not supported by this client"));
    return send_msg(m, ans);
  }
  if (!json_is_integer(id))
    return proto_err(m, err, "a reply whose id is not one this client uses");
  if (!take(m, json_integer_value(id), &p)) {
    char what[96];
    int i;

    for (i = 0; i < 64 && i < m->ncancelled; i++)
      if (m->cancelled[i] == json_integer_value(id))
        return 0;

    snprintf(what, sizeof(what), "a reply to id %lld, which was never asked",
             (long long)json_integer_value(id));
    return proto_err(m, err, what);
  }
  if (json_object_get(msg, "error")) {
    json_t *e = json_object_get(msg, "error");
    const char *text = json_string_value(json_object_get(e, "message"));
    struct durin_err re = { 0 };

    durin_err_set(&re, DURIN_EMODEL, "mcp server '%s' answered error %lld: %s",
                  m->server,
                  (long long)json_integer_value(json_object_get(e, "code")),
                  text ? text : "(no message)");
    p.cb(p.arg, NULL, &re);
    return 0;
  }
  if (!json_is_object(json_object_get(msg, "result"))) {
    struct durin_err re = { 0 };

    proto_err(m, &re, "a reply with neither a result object nor an error");
    p.cb(p.arg, NULL, &re);
    *err = re; /* the operator's notice says why it was cut off */
    return re.code;
  }
  p.cb(p.arg, json_object_get(msg, "result"), NULL);
  return 0;
}

int durin_mcp_receive(struct durin_mcp *m, const char *text, size_t len,
                      struct durin_err *err)
{
  json_error_t je;
  json_t *msg;
  int r;

  if (len > DURIN_MCP_MAX_MESSAGE) {
    char what[96];

    snprintf(what, sizeof(what), "a message of %zu bytes, over the limit of %u",
             len, DURIN_MCP_MAX_MESSAGE);
    return proto_err(m, err, what);
  }
  msg = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (!msg) {
    char what[300];

    snprintf(what, sizeof(what), "text that is not JSON (%s at position %d)",
             je.text, je.position);
    return proto_err(m, err, what);
  }
  if (json_is_array(msg))
    r = proto_err(m, err, "a JSON-RPC batch, which MCP no longer allows");
  else
    r = handle(m, msg, err);
  json_decref(msg);
  return r;
}

int durin_mcp_feed(struct durin_mcp *m, const char *data, size_t len,
                   struct durin_err *err)
{
  size_t i = 0;

  while (i < len) {
    const char *nl = memchr(data + i, '\n', len - i);
    size_t n = nl ? (size_t)(nl - (data + i)) : len - i;
    int r;

    if (durin_buf_add(&m->line, data + i, n)) {
      char what[96];

      snprintf(what, sizeof(what), "a message over the limit of %u bytes",
               DURIN_MCP_MAX_MESSAGE);
      durin_buf_reset(&m->line);
      return proto_err(m, err, what);
    }
    i += n;
    if (!nl)
      break;
    i++;
    /* Blank lines (and a CR before the LF) are tolerated. */
    while (m->line.len && (m->line.buf[m->line.len - 1] == '\r' ||
                           m->line.buf[m->line.len - 1] == ' '))
      m->line.buf[--m->line.len] = 0;
    if (m->line.len) {
      r = durin_mcp_receive(m, m->line.buf, m->line.len, err);
      durin_buf_reset(&m->line);
      if (r)
        return r;
    }
  }
  return 0;
}

struct sse_ctx {
  struct durin_mcp *m;
  struct durin_err *err;
};

static int on_sse(const char *event, const char *data, void *arg)
{
  struct sse_ctx *c = arg;

  if (strcmp(event, "message") || !*data)
    return 0;
  return durin_mcp_receive(c->m, data, strlen(data), c->err);
}

int durin_mcp_receive_body(struct durin_mcp *m, const char *body, size_t len,
                           int is_sse, struct durin_err *err)
{
  struct sse_ctx c = { m, err };

  if (!len)
    return 0;
  if (!is_sse)
    return durin_mcp_receive(m, body, len, err);
  return durin_sse_parse(body, len, on_sse, &c);
}

/* ---- the opening ---- */

static void ready(struct durin_mcp *m, int rc, const struct durin_err *err)
{
  durin_mcp_ready_cb cb = m->ready;

  m->ready = NULL;
  /* A relist that failed changes nothing: the calls go on. */
  if (rc && m->relist && m->state == MCP_LISTING)
    m->state = MCP_READY;
  m->relist = 0;
  if (cb)
    cb(m->ready_arg, rc, err);
}

static void list_page(struct durin_mcp *m, const char *cursor);

static void on_list(void *arg, json_t *result, const struct durin_err *err)
{
  struct durin_mcp *m = arg;
  json_t *tools = json_object_get(result, "tools"), *t;
  const char *cursor;
  struct durin_err e = { 0 };
  size_t i;

  if (!result) {
    ready(m, err->code, err);
    return;
  }
  if (!json_is_array(tools)) {
    proto_err(m, &e, "a tools/list result without a \"tools\" array");
    ready(m, e.code, &e);
    return;
  }
  json_array_foreach(tools, i, t)
    json_array_append(m->listed, t);
  if (json_array_size(m->listed) > 1000) {
    proto_err(m, &e, "more than 1000 tools");
    ready(m, e.code, &e);
    return;
  }
  cursor = json_string_value(json_object_get(result, "nextCursor"));
  if (cursor && *cursor) {
    list_page(m, cursor);
    return;
  }
  m->state = MCP_READY;
  ready(m, 0, NULL);
}

static void list_page(struct durin_mcp *m, const char *cursor)
{
  json_t *params;
  struct durin_err e = { 0 };
  int r;

  /* A cursor that never ends is a server that never finishes listing. */
  if (++m->pages > DURIN_MCP_MAX_PAGES) {
    durin_err_set(&e, DURIN_EPARSE,
                  "mcp server '%s': its tools/list goes on past %d pages",
                  m->server, DURIN_MCP_MAX_PAGES);
    ready(m, e.code, &e);
    return;
  }
  params = cursor ? json_pack("{s:s}", "cursor", cursor) : NULL;
  if ((r = durin_mcp_request(m, "tools/list", params, on_list, m, NULL))) {
    durin_err_set(&e, r, "mcp server '%s': cannot send tools/list: %s",
                  m->server, durin_strerror(r));
    ready(m, r, &e);
  }
}

static void on_init(void *arg, json_t *result, const struct durin_err *err)
{
  struct durin_mcp *m = arg;
  const char *v = json_string_value(json_object_get(result, "protocolVersion"));
  struct durin_err e = { 0 };
  int i;

  if (!result) {
    ready(m, err->code, err);
    return;
  }
  for (i = 0; v && versions[i]; i++)
    if (!strcmp(v, versions[i]))
      break;
  if (!v || !versions[i]) {
    durin_err_set(&e, DURIN_EPARSE,
                  "mcp server '%s' speaks protocol version '%s'; this client "
                  "speaks 2025-11-25, 2025-06-18 and 2025-03-26",
                  m->server, v ? v : "(none given)");
    ready(m, e.code, &e);
    return;
  }
  snprintf(m->version, sizeof(m->version), "%s", v);
  if (durin_mcp_notify(m, "notifications/initialized", NULL)) {
    durin_err_set(&e, DURIN_EIO,
                  "mcp server '%s': cannot send notifications/initialized",
                  m->server);
    ready(m, e.code, &e);
    return;
  }
  m->state = MCP_LISTING;
  m->pages = 0;
  json_decref(m->listed);
  m->listed = json_array();
  list_page(m, NULL);
}

int durin_mcp_relist(struct durin_mcp *m, durin_mcp_ready_cb cb, void *arg)
{
  if (m->state != MCP_READY)
    return DURIN_ESTATE;
  m->ready = cb;
  m->ready_arg = arg;
  m->state = MCP_LISTING;
  m->pages = 0;
  m->relist = 1;
  json_decref(m->listed);
  m->listed = json_array();
  list_page(m, NULL);
  return 0;
}

int durin_mcp_start(struct durin_mcp *m, durin_mcp_ready_cb cb, void *arg)
{
  json_t *params = json_pack("{s:s,s:{},s:{s:s,s:s}}", "protocolVersion",
                             DURIN_MCP_PROTOCOL, "capabilities", "clientInfo",
                             "name", "durin", "version", "0.1");

  m->ready = cb;
  m->ready_arg = arg;
  m->state = MCP_INITIALIZING;
  return durin_mcp_request(m, "initialize", params, on_init, m, NULL);
}

/* ---- tools ---- */

void durin_mcp_toolset_clear(struct durin_mcp_toolset *t)
{
  int i;

  if (!t)
    return;
  for (i = 0; i < t->n; i++)
    json_decref(t->defs[i].schema);
  for (i = 0; t->names && i < 3 * t->n; i++)
    free(t->names[i]);
  free(t->names);
  free(t->defs);
  memset(t, 0, sizeof(*t));
}

static int tool_name_ok(const char *n)
{
  size_t i;

  for (i = 0; n[i]; i++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                "_-",
                n[i]))
      return 0;
  return i > 0;
}

static void skip(json_t *notices, const char *server, const char *tool,
                 const char *why)
{
  char line[512];

  snprintf(line, sizeof(line), "mcp server '%s': tool '%.100s' left out: %s",
           server, tool, why);
  json_array_append_new(notices, json_string(line));
}

int durin_mcp_toolset_make(const struct durin_spec_mcp *srv, json_t *listed,
                           struct durin_mcp_toolset *out, json_t *notices,
                           struct durin_err *err)
{
  size_t i, n = json_array_size(listed);
  json_t *t;

  memset(out, 0, sizeof(*out));
  out->defs = calloc(n + 1, sizeof(*out->defs));
  out->names = calloc(3 * n + 1, sizeof(*out->names));
  if (!out->defs || !out->names) {
    durin_mcp_toolset_clear(out);
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  }
  json_array_foreach(listed, i, t) {
    const char *name = json_string_value(json_object_get(t, "name"));
    const char *desc = json_string_value(json_object_get(t, "description"));
    json_t *schema = json_object_get(t, "inputSchema");
    json_t *ann = json_object_get(t, "annotations");
    struct durin_tool_def *d = &out->defs[out->n];
    char full[256];
    int k, dup = 0;

    if (!name) {
      skip(notices, srv->name, "(no name)", "it has no name");
      continue;
    }
    if (!tool_name_ok(name)) {
      skip(notices, srv->name, name,
           "its name has characters other than a-z, A-Z, 0-9, '_' and '-'");
      continue;
    }
    snprintf(full, sizeof(full), "%s__%s", srv->name, name);
    if (strlen(full) > DURIN_MCP_TOOL_NAME_MAX) {
      skip(notices, srv->name, name,
           "its name with the server's is longer than 64 characters");
      continue;
    }
    if (!json_is_object(schema) ||
        !json_is_string(json_object_get(schema, "type")) ||
        strcmp(json_string_value(json_object_get(schema, "type")), "object") ||
        (json_object_get(schema, "properties") &&
         !json_is_object(json_object_get(schema, "properties")))) {
      skip(notices, srv->name, name,
           "its inputSchema is not a JSON schema of type \"object\"");
      continue;
    }
    for (k = 0; k < out->n; k++)
      if (!strcmp(out->defs[k].mcp_tool, name))
        dup = 1;
    if (dup) {
      skip(notices, srv->name, name, "the server lists it twice");
      continue;
    }
    out->names[3 * out->n] = strdup(full);
    out->names[3 * out->n + 1] = strdup(name);
    out->names[3 * out->n + 2] = strdup(desc ? desc : "");
    d->name = out->names[3 * out->n];
    d->mcp_tool = out->names[3 * out->n + 1];
    d->desc = out->names[3 * out->n + 2];
    d->mcp_server = srv->name;
    d->schema = json_incref(schema);
    if (json_is_true(json_object_get(ann, "readOnlyHint")))
      d->effect = DURIN_EFFECT_PURE;
    else if (json_is_true(json_object_get(ann, "idempotentHint")))
      d->effect = DURIN_EFFECT_IDEMPOTENT;
    else
      d->effect = DURIN_EFFECT_UNSAFE;
    for (k = 0; k < srv->ntools; k++)
      if (!strcmp(srv->tools[k].name, name))
        d->effect = srv->tools[k].effect;
    out->n++;
  }
  return 0;
}

json_t *durin_mcp_call_params(const char *tool, json_t *args,
                              const char *progress_token)
{
  /* "o" takes the new empty object; "O" adds a reference to args. */
  if (!args)
    return json_pack("{s:s,s:o,s:{s:s}}", "name", tool, "arguments",
                     json_object(), "_meta", "progressToken", progress_token);
  return json_pack("{s:s,s:O,s:{s:s}}", "name", tool, "arguments", args,
                   "_meta", "progressToken", progress_token);
}

void durin_mcp_call_result(json_t *result, size_t cap,
                           struct durin_tool_result *res)
{
  json_t *content = json_object_get(result, "content"), *it;
  json_t *structured = json_object_get(result, "structuredContent");
  struct durin_buf b;
  size_t i, over = 0;
  int texts = 0;

  durin_buf_init(&b, cap ? cap : DURIN_MCP_MAX_MESSAGE);
  json_array_foreach(content, i, it) {
    const char *type = json_string_value(json_object_get(it, "type"));
    const char *text = json_string_value(json_object_get(it, "text"));
    char note[160];
    size_t len;

    if (type && !strcmp(type, "text") && text) {
      texts++;
    } else if (type && !strcmp(type, "resource") &&
               (text = json_string_value(json_object_get(
                    json_object_get(it, "resource"), "text")))) {
      texts++;
    } else {
      snprintf(note, sizeof(note), "[%s content not shown]",
               type ? type : "untyped");
      text = note;
    }
    len = strlen(text);
    if (over || durin_buf_add(&b, i ? "\n" : "", i ? 1 : 0) ||
        durin_buf_add(&b, text, len)) {
      size_t room = b.cap > b.len ? b.cap - b.len : 0;

      if (!over && room)
        durin_buf_add(&b, text, room < len ? room : len);
      over += len - (room < len ? room : len);
    }
  }
  if (!texts && structured) {
    char *js = json_dumps(structured, JSON_COMPACT);
    size_t len = js ? strlen(js) : 0;

    if (js && durin_buf_add(&b, js, len)) {
      size_t room = b.cap > b.len ? b.cap - b.len : 0;

      durin_buf_add(&b, js, room < len ? room : len);
      over += len - (room < len ? room : len);
    }
    free(js);
  }
  if (over) {
    res->truncated = 1;
    b.cap += 128;
    durin_buf_addf(&b, "\n[output truncated: %zu more bytes]\n", over);
  }
  res->ok = !json_is_true(json_object_get(result, "isError"));
  res->exit_code = -1;
  durin_utf8_sanitize(b.buf, b.len);
  free(res->output);
  if (!res->ok) {
    char *o = NULL;

    if (asprintf(&o, "error (the tool reported a failure): %s", b.buf) < 0)
      abort();
    res->output = o;
    durin_buf_release(&b);
    return;
  }
  res->output = durin_buf_detach(&b, NULL);
}
