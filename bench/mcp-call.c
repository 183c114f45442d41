/*
 * MCP call round trip: N tools/call of a server's echo tool, one after
 * another, through the worker's MCP client (lib/worker/mcp.c) on a libuv
 * loop, as a run makes them; the server started as a run starts it (a
 * plain child: --sandbox none) or reached over streamable HTTP.
 *
 *   mcp-call --stdio 'ARGV0 ARG...' [--calls N]
 *   mcp-call --url http://127.0.0.1:PORT/mcp [--calls N]
 *
 * Prints the opening (initialize and tools/list) and the mean, median and
 * 99th percentile of a call, in microseconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/spec.h"
#include "durin/util.h"
#include "worker/mcp.h"

struct bench {
  uv_loop_t loop;
  struct wmcp *set;
  const struct durin_tool_def *echo;
  json_t *args;
  int calls, done, failed;
  int64_t t0, *us;
  int64_t open_us;
};

static void next(struct bench *b);

static void on_result(void *arg, struct durin_tool_result *res)
{
  struct bench *b = arg;

  b->us[b->done++] = durin_mono_us() - b->t0;
  if (!res->ok && !b->failed++)
    fprintf(stderr, "mcp-call: %s\n", res->output);
  durin_tool_result_clear(res);
  if (b->done < b->calls)
    next(b);
  else
    uv_stop(&b->loop);
}

static void next(struct bench *b)
{
  b->t0 = durin_mono_us();
  wmcp_call(b->set, b->echo, b->args, "bench", 30000, 65536, on_result, b);
}

static void on_ready(void *arg, int rc, const char *why)
{
  struct bench *b = arg;
  const struct durin_tool_def *const *tools;
  int n, i;

  b->open_us = durin_mono_us() - b->open_us;
  if (rc) {
    fprintf(stderr, "mcp-call: %s\n", why);
    exit(1);
  }
  tools = wmcp_tools(b->set, &n);
  for (i = 0; i < n; i++)
    if (!strcmp(tools[i]->mcp_tool, "echo"))
      b->echo = tools[i];
  if (!b->echo) {
    fprintf(stderr, "mcp-call: the server has no echo tool\n");
    exit(1);
  }
  next(b);
}

static void on_notice(void *arg, const char *msg)
{
  (void)arg;
  fprintf(stderr, "mcp-call: %s\n", msg);
}

static int cmp(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

  return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
  static const struct wmcp_ops ops = { on_ready, on_notice, NULL };
  const char *stdio_cmd = NULL, *url = NULL;
  struct durin_proc_box box = { NULL, NULL, NULL };
  struct durin_spec spec;
  struct durin_err err = { 0 };
  struct bench b;
  struct uvh *http;
  char dir[64], *text = NULL;
  json_t *srv, *root;
  int64_t sum = 0;
  int i;

  memset(&b, 0, sizeof(b));
  b.calls = 1000;
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--stdio") && i + 1 < argc)
      stdio_cmd = argv[++i];
    else if (!strcmp(argv[i], "--url") && i + 1 < argc)
      url = argv[++i];
    else if (!strcmp(argv[i], "--calls") && i + 1 < argc)
      b.calls = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: mcp-call --stdio 'CMD ARG...' | --url URL "
                      "[--calls N]\n");
      return 2;
    }
  }
  if (!!stdio_cmd == !!url || b.calls < 1) {
    fprintf(stderr, "mcp-call: give one of --stdio and --url\n");
    return 2;
  }
  if (durin_mktmpdir("durin-bench-mcp", dir, sizeof(dir)))
    return 1;
  srv = json_object();
  if (stdio_cmd) {
    json_t *cmd = json_array();
    char *copy = strdup(stdio_cmd), *save = NULL, *w;

    for (w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
      json_array_append_new(cmd, json_string(w));
    free(copy);
    json_object_set_new(srv, "command", cmd);
  } else {
    json_object_set_new(srv, "url", json_string(url));
  }
  root = json_pack("{s:s,s:s,s:{s:s,s:[]},s:{s:o}}", "goal", "bench",
                   "workspace", dir, "model", "provider", "script", "turns",
                   "mcp_servers", "bench", srv);
  text = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  if (durin_spec_parse(text, NULL, &spec, &err)) {
    fprintf(stderr, "mcp-call: %s\n", err.msg);
    return 1;
  }
  free(text);
  b.us = calloc((size_t)b.calls, sizeof(*b.us));
  b.args = json_pack("{s:s}", "message", "hello from the bench");
  uv_loop_init(&b.loop);
  http = uvh_new(&b.loop);
  b.open_us = durin_mono_us();
  b.set = wmcp_start(&b.loop, http, &spec, &box, NULL, NULL, NULL, &ops, &b);
  uv_run(&b.loop, UV_RUN_DEFAULT);
  wmcp_free(b.set);
  uvh_free(http);
  uv_run(&b.loop, UV_RUN_DEFAULT);
  uv_loop_close(&b.loop);
  for (i = 0; i < b.done; i++)
    sum += b.us[i];
  qsort(b.us, (size_t)b.done, sizeof(*b.us), cmp);
  printf("mcp-call %s: opening %lld us; %d calls of echo, %d failed: mean "
         "%lld us, median %lld us, p99 %lld us\n",
         stdio_cmd ? "stdio" : "http", (long long)b.open_us, b.done, b.failed,
         (long long)(sum / (b.done ? b.done : 1)), (long long)b.us[b.done / 2],
         (long long)b.us[(b.done * 99) / 100 < b.done ? (b.done * 99) / 100 :
                                                        b.done - 1]);
  json_decref(b.args);
  free(b.us);
  durin_spec_clear(&spec);
  rmdir(dir);
  return b.failed ? 1 : 0;
}
