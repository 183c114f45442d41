/*
 * The MCP session (lib/mcp/client.c) with a scripted transport: the
 * opening (initialize, version negotiation, notifications/initialized,
 * tools/list over pages), newline framing fed in arbitrary pieces, SSE
 * bodies, the messages that cut a server off (not JSON, another jsonrpc,
 * an id never asked, over the size limit), cancellation, and how tools
 * and results become what the model sees.
 */
#include <stdio.h>

#include "durin/mcp.h"
#include "test.h"

struct wire {
  json_t *sent; /* the messages the session sent */
  json_t *notes;
};

static int on_send(void *arg, const char *text, size_t len)
{
  struct wire *w = arg;
  json_t *m = json_loadb(text, len, 0, NULL);

  assert_non_null(m);
  assert_null(memchr(text, '\n', len));
  json_array_append_new(w->sent, m);
  return 0;
}

static void on_notify(void *arg, const char *method, json_t *params)
{
  struct wire *w = arg;

  (void)params;
  json_array_append_new(w->notes, json_string(method));
}

static const struct durin_mcp_ops ops = { on_send, on_notify };

static json_t *last(struct wire *w)
{
  return json_array_get(w->sent, json_array_size(w->sent) - 1);
}

static const char *last_method(struct wire *w)
{
  return json_string_value(json_object_get(last(w), "method"));
}

static int64_t last_id(struct wire *w)
{
  return json_integer_value(json_object_get(last(w), "id"));
}

/* Feeds text to m in pieces of n bytes; the first error. */
static int feed(struct durin_mcp *m, const char *text, size_t n,
                struct durin_err *err)
{
  size_t off, len = strlen(text);
  int r = 0;

  for (off = 0; off < len && !r; off += n)
    r = durin_mcp_feed(m, text + off, len - off < n ? len - off : n, err);
  return r;
}

static void on_ready(void *arg, int rc, const struct durin_err *err)
{
  int *out = arg;

  *out = rc;
  if (rc)
    printf("# ready: %s\n", err->msg);
}

static struct durin_mcp *opened(struct wire *w, const char *version, int *ready)
{
  struct durin_mcp *m = durin_mcp_new("srv", &ops, w);
  struct durin_err err = { 0 };
  char line[512];

  w->sent = json_array();
  w->notes = json_array();
  *ready = 1;
  assert_int_equal(durin_mcp_start(m, on_ready, ready), 0);
  assert_string_equal(last_method(w), "initialize");
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(last(w), "params"),
                                        "protocolVersion")),
      "2025-11-25");
  snprintf(line, sizeof(line),
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"protocolVersion\":"
           "\"%s\",\"capabilities\":{}}}\n",
           (long long)last_id(w), version);
  assert_int_equal(feed(m, line, 7, &err), 0);
  return m;
}

static void wire_clear(struct wire *w)
{
  json_decref(w->sent);
  json_decref(w->notes);
}

static void test_opening(void **state)
{
  struct wire w;
  struct durin_err err = { 0 };
  int ready;
  struct durin_mcp *m = opened(&w, "2025-03-26", &ready);
  char line[512];

  (void)state;
  /* Negotiated down; initialized sent, then the first page asked. */
  assert_string_equal(durin_mcp_version(m), "2025-03-26");
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(w.sent, 1), "method")),
      "notifications/initialized");
  assert_null(json_object_get(json_array_get(w.sent, 1), "id"));
  assert_string_equal(last_method(&w), "tools/list");
  snprintf(line, sizeof(line),
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":[{\"name\":"
           "\"a\",\"inputSchema\":{\"type\":\"object\"}}],\"nextCursor\":"
           "\"p2\"}}\r\n\n",
           (long long)last_id(&w));
  assert_int_equal(feed(m, line, 1, &err), 0);
  assert_int_equal(ready, 1); /* not yet */
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(last(&w), "params"), "cursor")),
                      "p2");
  /* A notification between pages; then the last page. */
  assert_int_equal(
      feed(m,
           "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\","
           "\"params\":{}}\n",
           1000, &err),
      0);
  assert_string_equal(json_string_value(json_array_get(w.notes, 0)),
                      "notifications/message");
  snprintf(line, sizeof(line),
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":[{\"name\":"
           "\"b\",\"inputSchema\":{\"type\":\"object\"}}]}}\n",
           (long long)last_id(&w));
  assert_int_equal(feed(m, line, 3, &err), 0);
  assert_int_equal(ready, 0);
  assert_int_equal(json_array_size(durin_mcp_listed(m)), 2);
  /* Its tools changed: listed again, from the first page, afresh. */
  ready = 1;
  assert_int_equal(durin_mcp_relist(m, on_ready, &ready), 0);
  assert_string_equal(last_method(&w), "tools/list");
  assert_null(json_object_get(last(&w), "params"));
  snprintf(line, sizeof(line),
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":[]}}\n",
           (long long)last_id(&w));
  assert_int_equal(feed(m, line, 64, &err), 0);
  assert_int_equal(ready, 0);
  assert_int_equal(json_array_size(durin_mcp_listed(m)), 0);
  durin_mcp_free(m);
  wire_clear(&w);
}

/* A cursor that never ends: the listing stops after DURIN_MCP_MAX_PAGES;
 * a relist that fails leaves the session ready for calls. */
static void test_endless_pages(void **state)
{
  struct wire w;
  struct durin_err err = { 0 };
  int ready, i;
  struct durin_mcp *m = opened(&w, "2025-11-25", &ready);
  char line[512];

  (void)state;
  for (i = 0; i < DURIN_MCP_MAX_PAGES && ready == 1; i++) {
    snprintf(line, sizeof(line),
             "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":[],"
             "\"nextCursor\":\"again\"}}\n",
             (long long)last_id(&w));
    assert_int_equal(feed(m, line, 512, &err), 0);
  }
  assert_int_equal(ready, DURIN_EPARSE);
  durin_mcp_free(m);
  wire_clear(&w);

  /* Opened and listed; then a relist the server refuses. */
  m = opened(&w, "2025-11-25", &ready);
  snprintf(line, sizeof(line),
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":[]}}\n",
           (long long)last_id(&w));
  assert_int_equal(feed(m, line, 512, &err), 0);
  assert_int_equal(ready, 0);
  ready = 1;
  assert_int_equal(durin_mcp_relist(m, on_ready, &ready), 0);
  snprintf(line, sizeof(line),
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"error\":{\"code\":-32603,"
           "\"message\":\"busy\"}}\n",
           (long long)last_id(&w));
  assert_int_equal(feed(m, line, 512, &err), 0);
  assert_int_not_equal(ready, 0);
  /* Still ready: it can be listed again (only a ready session can). */
  assert_int_equal(durin_mcp_relist(m, on_ready, &ready), 0);
  durin_mcp_free(m);
  wire_clear(&w);
}

static void test_old_version(void **state)
{
  struct wire w;
  int ready;
  struct durin_mcp *m = opened(&w, "2024-11-05", &ready);

  (void)state;
  assert_int_equal(ready, DURIN_EPARSE);
  durin_mcp_free(m);
  wire_clear(&w);
}

struct reply {
  int n;
  int ok;
  char msg[512];
};

static void on_reply(void *arg, json_t *result, const struct durin_err *err)
{
  struct reply *r = arg;

  r->n++;
  r->ok = result != NULL;
  if (err)
    snprintf(r->msg, sizeof(r->msg), "%s", err->msg);
}

/* Each bad message cuts the session off, saying what it was. */
static void test_bad_messages(void **state)
{
  static const struct {
    const char *text, *says;
  } bad[] = {
    { "not json\n", "not JSON" },
    { "[1,2]\n", "batch" },
    { "{\"jsonrpc\":\"1.0\",\"id\":1,\"result\":{}}\n",
      "\"jsonrpc\": \"2.0\"" },
    { "{\"jsonrpc\":\"2.0\",\"id\":77,\"result\":{}}\n",
      "id 77, which was never" },
    { "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"result\":{}}\n", "id is not" },
    { "42\n", "not JSON" },
  };
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct wire w = { json_array(), json_array() };
    struct durin_mcp *m = durin_mcp_new("srv", &ops, &w);
    struct durin_err err = { 0 };

    assert_int_equal(feed(m, bad[i].text, 5, &err), DURIN_EPARSE);
    if (!strstr(err.msg, bad[i].says) || !strstr(err.msg, "cut off"))
      fail_msg("'%s' said '%s'", bad[i].text, err.msg);
    durin_mcp_free(m);
    wire_clear(&w);
  }
}

static void test_too_big(void **state)
{
  struct wire w = { json_array(), json_array() };
  struct durin_mcp *m = durin_mcp_new("srv", &ops, &w);
  struct durin_err err = { 0 };
  size_t chunk = 1 << 16, sent = 0;
  char *buf = malloc(chunk);
  int r = 0;

  (void)state;
  memset(buf, 'x', chunk);
  /* No newline ever comes: the partial line alone is over the limit. */
  while (!r && sent <= DURIN_MCP_MAX_MESSAGE + chunk) {
    r = durin_mcp_feed(m, buf, chunk, &err);
    sent += chunk;
  }
  assert_int_equal(r, DURIN_EPARSE);
  assert_non_null(strstr(err.msg, "over the limit"));
  free(buf);
  durin_mcp_free(m);
  wire_clear(&w);
}

static void test_requests(void **state)
{
  struct wire w = { json_array(), json_array() };
  struct durin_mcp *m = durin_mcp_new("srv", &ops, &w);
  struct durin_err err = { 0 };
  struct reply a = { 0 }, b = { 0 }, c = { 0 };
  int64_t ida, idb, idc;
  char line[256];

  (void)state;
  assert_int_equal(durin_mcp_request(m, "x", NULL, on_reply, &a, &ida), 0);
  assert_int_equal(durin_mcp_request(m, "y", NULL, on_reply, &b, &idb), 0);
  assert_int_equal(durin_mcp_request(m, "z", NULL, on_reply, &c, &idc), 0);
  assert_int_equal(durin_mcp_pending(m), 3);
  /* Out of order; an error reply; a cancelled one never answers. */
  snprintf(line, sizeof(line),
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"error\":{\"code\":-32602,"
           "\"message\":\"bad params\"}}\n",
           (long long)idb);
  assert_int_equal(feed(m, line, 4, &err), 0);
  assert_int_equal(b.n, 1);
  assert_int_equal(b.ok, 0);
  assert_non_null(strstr(b.msg, "error -32602: bad params"));
  durin_mcp_cancel(m, ida, "timed out");
  assert_string_equal(last_method(&w), "notifications/cancelled");
  assert_int_equal(json_integer_value(json_object_get(
                       json_object_get(last(&w), "params"), "requestId")),
                   ida);
  /* Its answer crossed the cancellation: dropped, not a protocol error. */
  snprintf(line, sizeof(line),
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{}}\n", (long long)ida);
  assert_int_equal(feed(m, line, 100, &err), 0);
  assert_int_equal(a.n, 0);
  /* An SSE body: a progress notification, then the answer. */
  snprintf(line, sizeof(line),
           "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":"
           "\"notifications/progress\",\"params\":{}}\n\n"
           "data: {\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{}}\n\n",
           (long long)idc);
  assert_int_equal(durin_mcp_receive_body(m, line, strlen(line), 1, &err), 0);
  assert_int_equal(c.n, 1);
  assert_int_equal(c.ok, 1);
  assert_string_equal(json_string_value(json_array_get(w.notes, 0)),
                      "notifications/progress");
  assert_int_equal(a.n, 0);
  assert_int_equal(durin_mcp_pending(m), 0);
  /* The server pings: answered. */
  assert_int_equal(
      feed(m, "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"ping\"}\n", 9,
           &err),
      0);
  assert_string_equal(json_string_value(json_object_get(last(&w), "id")), "p");
  assert_non_null(json_object_get(last(&w), "result"));
  durin_mcp_free(m);
  wire_clear(&w);
}

static void test_toolset(void **state)
{
  struct durin_spec_mcp_tool over = { "w", DURIN_EFFECT_IDEMPOTENT };
  struct durin_spec_mcp srv = { 0 };
  struct durin_mcp_toolset ts;
  struct durin_err err = { 0 };
  json_t *notices = json_array();
  json_t *listed = json_loads(
      "[{\"name\":\"r\",\"inputSchema\":{\"type\":\"object\"},"
      "\"annotations\":{\"readOnlyHint\":true}},"
      "{\"name\":\"i\",\"inputSchema\":{\"type\":\"object\"},"
      "\"annotations\":{\"idempotentHint\":true}},"
      "{\"name\":\"u\",\"inputSchema\":{\"type\":\"object\"}},"
      "{\"name\":\"w\",\"inputSchema\":{\"type\":\"object\"}},"
      "{\"name\":\"bad schema\",\"inputSchema\":{\"type\":\"object\"}},"
      "{\"name\":\"s\",\"inputSchema\":{\"type\":\"array\"}},"
      "{\"name\":\"n\"},"
      "{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "\",\"inputSchema\":{\"type\":\"object\"}}]",
      0, NULL);

  (void)state;
  srv.name = "srv";
  srv.tools = &over;
  srv.ntools = 1;
  assert_int_equal(durin_mcp_toolset_make(&srv, listed, &ts, notices, &err), 0);
  assert_int_equal(ts.n, 4);
  assert_string_equal(ts.defs[0].name, "srv__r");
  assert_int_equal(ts.defs[0].effect, DURIN_EFFECT_PURE);
  assert_int_equal(ts.defs[1].effect, DURIN_EFFECT_IDEMPOTENT);
  assert_int_equal(ts.defs[2].effect, DURIN_EFFECT_UNSAFE);
  assert_int_equal(ts.defs[3].effect, DURIN_EFFECT_IDEMPOTENT); /* spec */
  assert_string_equal(ts.defs[3].mcp_tool, "w");
  assert_int_equal(durin_tool_contained(&ts.defs[0], NULL, 1), 0);
  assert_int_equal(json_array_size(notices), 4);
  durin_mcp_toolset_clear(&ts);
  json_decref(listed);
  json_decref(notices);
}

static void test_result(void **state)
{
  struct durin_tool_result res;
  json_t *r;

  (void)state;
  memset(&res, 0, sizeof(res));
  r = json_loads("{\"content\":[{\"type\":\"text\",\"text\":\"one\"},"
                 "{\"type\":\"image\",\"data\":\"..\"},"
                 "{\"type\":\"text\",\"text\":\"two\"}]}",
                 0, NULL);
  durin_mcp_call_result(r, 1000, &res);
  assert_int_equal(res.ok, 1);
  assert_string_equal(res.output, "one\n[image content not shown]\ntwo");
  json_decref(r);
  durin_tool_result_clear(&res);
  r = json_loads("{\"isError\":true,\"content\":[{\"type\":\"text\",\"text\":"
                 "\"boom\"}]}",
                 0, NULL);
  durin_mcp_call_result(r, 1000, &res);
  assert_int_equal(res.ok, 0);
  assert_non_null(strstr(res.output, "boom"));
  json_decref(r);
  durin_tool_result_clear(&res);
  r = json_loads("{\"content\":[],\"structuredContent\":{\"k\":1}}", 0, NULL);
  durin_mcp_call_result(r, 1000, &res);
  assert_string_equal(res.output, "{\"k\":1}");
  json_decref(r);
  durin_tool_result_clear(&res);
  r = json_loads("{\"content\":[{\"type\":\"text\",\"text\":\"0123456789\"}]}",
                 0, NULL);
  durin_mcp_call_result(r, 4, &res);
  assert_int_equal(res.truncated, 1);
  assert_non_null(strstr(res.output, "0123\n[output truncated: 6 more"));
  json_decref(r);
  durin_tool_result_clear(&res);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_opening),     cmocka_unit_test(test_endless_pages),
    cmocka_unit_test(test_old_version), cmocka_unit_test(test_bad_messages),
    cmocka_unit_test(test_too_big),     cmocka_unit_test(test_requests),
    cmocka_unit_test(test_toolset),     cmocka_unit_test(test_result),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
