/*
 * Untrusted bytes from an MCP server: its stdout stream, fed to a session
 * that has opened (initialize, tools/list) and has a call pending, in two
 * pieces split at the first byte's value, then the same bytes as an HTTP
 * answer's SSE body; whatever the session accepts as a tools/list or a
 * tools/call result goes through the tool and result conversions.
 */
#include <stdlib.h>
#include <string.h>

#include "durin/mcp.h"
#include "fuzz.h"

static int on_send(void *arg, const char *text, size_t len)
{
  (void)arg;
  (void)text;
  (void)len;
  return 0;
}

static const struct durin_mcp_ops ops = { on_send, NULL };

static void on_ready(void *arg, int rc, const struct durin_err *err)
{
  (void)arg;
  (void)rc;
  (void)err;
}

static void on_reply(void *arg, json_t *result, const struct durin_err *err)
{
  struct durin_tool_result res;

  (void)arg;
  (void)err;
  if (!result)
    return;
  memset(&res, 0, sizeof(res));
  durin_mcp_call_result(result, 4096, &res);
  durin_tool_result_clear(&res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct durin_spec_mcp srv = { 0 };
  struct durin_mcp_toolset ts;
  struct durin_err err;
  struct durin_mcp *m;
  size_t cut = size ? data[0] % (size + 1) : 0;
  json_t *notices;
  int pass;

  for (pass = 0; pass < 2; pass++) {
    m = durin_mcp_new("fuzz", &ops, NULL);
    durin_mcp_start(m, on_ready, NULL);                             /* id 1 */
    durin_mcp_request(m, "tools/call", NULL, on_reply, NULL, NULL); /* 2 */
    if (pass == 0) {
      if (durin_mcp_feed(m, (const char *)data, cut, &err) == 0)
        durin_mcp_feed(m, (const char *)data + cut, size - cut, &err);
    } else {
      durin_mcp_receive_body(m, (const char *)data, size, 1, &err);
    }
    if (durin_mcp_listed(m)) {
      srv.name = "fuzz";
      notices = json_array();
      if (durin_mcp_toolset_make(&srv, durin_mcp_listed(m), &ts, notices,
                                 &err) == 0)
        durin_mcp_toolset_clear(&ts);
      json_decref(notices);
    }
    durin_mcp_free(m);
  }
  return 0;
}
