/* Providers without a network: the wire format built and parsed, backoff,
 * Retry-After, script replay and prices. Then the transfer as a worker
 * makes it: a provider's request through the event-loop transport
 * (lib/worker/uv-http.c) to tests/helpers/fake-model, judged as the
 * worker judges it. */
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "durin/model.h"
#include "test.h"
#include "worker/worker-int.h"

static void test_openai_build(void **state)
{
  const struct durin_provider *p = durin_provider_find("openai");
  struct durin_model_cfg cfg = { 0 };
  struct durin_model_request req = { 0 };
  struct durin_http_req h = { 0 };
  json_t *body;

  (void)state;
  cfg.provider = "openai";
  cfg.name = "gpt-4o-mini";
  cfg.base_url = "http://127.0.0.1:9/v1/";
  cfg.max_tokens = 100;
  req.cfg = &cfg;
  req.system = "sys";
  req.messages = json_loads(
      "[{\"role\":\"user\",\"content\":\"goal\"},"
      "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\",\"name\":"
      "\"bash\",\"arguments\":\"{\\\"command\\\":\\\"ls\\\"}\"}]},"
      "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"out\"}]",
      0, NULL);
  req.tools = json_loads("[{\"name\":\"bash\",\"description\":\"d\","
                         "\"parameters\":{\"type\":\"object\"}}]",
                         0, NULL);
  assert_int_equal(p->build(&req, "sk-test", &h, NULL), 0);
  assert_string_equal(h.url, "http://127.0.0.1:9/v1/chat/completions");
  assert_string_equal(h.headers[2], "Authorization: Bearer sk-test");
  body = json_loads(h.body, 0, NULL);
  assert_string_equal(json_string_value(json_object_get(body, "model")),
                      "gpt-4o-mini");
  assert_int_equal(json_integer_value(json_object_get(body, "max_tokens")),
                   100);
  {
    json_t *msgs = json_object_get(body, "messages");
    json_t *a = json_array_get(msgs, 2), *tc, *t;

    assert_string_equal(
        json_string_value(json_object_get(json_array_get(msgs, 0), "role")),
        "system");
    assert_true(json_is_null(json_object_get(a, "content")));
    tc = json_array_get(json_object_get(a, "tool_calls"), 0);
    assert_string_equal(json_string_value(json_object_get(tc, "type")),
                        "function");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(tc, "function"), "arguments")),
                        "{\"command\":\"ls\"}");
    t = json_array_get(msgs, 3);
    assert_string_equal(json_string_value(json_object_get(t, "tool_call_id")),
                        "c1");
    tc = json_array_get(json_object_get(body, "tools"), 0);
    assert_string_equal(json_string_value(json_object_get(tc, "type")),
                        "function");
  }
  json_decref(body);
  durin_http_req_clear(&h);
  /* OpenAI itself gets the newer name of the limit. */
  cfg.base_url = "https://api.openai.com/v1";
  assert_int_equal(p->build(&req, "sk-test", &h, NULL), 0);
  body = json_loads(h.body, 0, NULL);
  assert_int_equal(
      json_integer_value(json_object_get(body, "max_completion_tokens")), 100);
  assert_null(json_object_get(body, "max_tokens"));
  json_decref(body);
  json_decref(req.messages);
  json_decref(req.tools);
  durin_http_req_clear(&h);
}

static void test_openai_parse(void **state)
{
  const struct durin_provider *p = durin_provider_find("openai");
  struct durin_model_cfg cfg = { 0 };
  struct durin_model_request req = { 0 };
  struct durin_model_response r;
  struct durin_err err = { 0 };
  const char *ok =
      "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,"
      "\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,"
      "\"message\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":"
      "[{\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":"
      "\"bash\",\"arguments\":\"{\\\"command\\\":\\\"ls\\\"}\"}}]},"
      "\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":12,"
      "\"completion_tokens\":5,\"total_tokens\":17}}";
  const char *e401 = "{\"error\":{\"message\":\"Incorrect API key provided\","
                     "\"type\":\"invalid_request_error\"}}";

  (void)state;
  req.cfg = &cfg;
  assert_int_equal(p->parse(&req, 200, ok, strlen(ok), &r, &err), 0);
  assert_int_equal(r.ncalls, 1);
  assert_string_equal(r.calls[0].id, "call_a");
  assert_string_equal(r.calls[0].args, "{\"command\":\"ls\"}");
  assert_int_equal(r.input_tokens, 12);
  assert_int_equal(r.output_tokens, 5);
  assert_string_equal(r.model, "gpt-4o-mini-2024-07-18");
  assert_null(r.text);
  durin_model_response_clear(&r);
  assert_int_equal(p->parse(&req, 401, e401, strlen(e401), &r, &err),
                   DURIN_EMODEL);
  assert_non_null(strstr(err.msg, "HTTP 401: Incorrect API key"));
  assert_int_equal(p->parse(&req, 200, "<html>", 6, &r, &err), DURIN_EMODEL);
  assert_non_null(strstr(err.msg, "not JSON"));
  assert_int_equal(p->parse(&req, 200, "{}", 2, &r, &err), DURIN_EMODEL);
}

static void test_anthropic_build(void **state)
{
  const struct durin_provider *p = durin_provider_find("anthropic");
  struct durin_model_cfg cfg = { 0 };
  struct durin_model_request req = { 0 };
  struct durin_http_req h = { 0 };
  json_t *body, *msgs, *m;

  (void)state;
  cfg.provider = "anthropic";
  cfg.name = "claude-sonnet-4-5";
  cfg.base_url = "http://127.0.0.1:9/v1";
  req.cfg = &cfg;
  req.system = "sys";
  /* Two tool results in a row, then a nudge: one user turn on the wire. */
  req.messages = json_loads(
      "[{\"role\":\"user\",\"content\":\"goal\"},"
      "{\"role\":\"assistant\",\"content\":\"looking\",\"tool_calls\":["
      "{\"id\":\"t1\",\"name\":\"bash\",\"arguments\":\"{\\\"command\\\":"
      "\\\"ls\\\"}\"},{\"id\":\"t2\",\"name\":\"bash\",\"arguments\":"
      "\"not json\"}]},"
      "{\"role\":\"tool\",\"tool_call_id\":\"t1\",\"content\":\"a\"},"
      "{\"role\":\"tool\",\"tool_call_id\":\"t2\",\"content\":\"error\"},"
      "{\"role\":\"user\",\"content\":\"go on\"}]",
      0, NULL);
  req.tools = json_loads("[{\"name\":\"bash\",\"description\":\"d\","
                         "\"parameters\":{\"type\":\"object\"}}]",
                         0, NULL);
  assert_int_equal(p->build(&req, "sk-ant", &h, NULL), 0);
  assert_string_equal(h.url, "http://127.0.0.1:9/v1/messages");
  assert_string_equal(h.headers[1], "anthropic-version: 2023-06-01");
  assert_string_equal(h.headers[2], "x-api-key: sk-ant");
  body = json_loads(h.body, 0, NULL);
  assert_string_equal(json_string_value(json_object_get(body, "system")),
                      "sys");
  assert_int_equal(json_integer_value(json_object_get(body, "max_tokens")),
                   4096);
  assert_non_null(json_object_get(
      json_array_get(json_object_get(body, "tools"), 0), "input_schema"));
  msgs = json_object_get(body, "messages");
  assert_int_equal(json_array_size(msgs), 3);
  m = json_array_get(msgs, 1);
  assert_string_equal(json_string_value(json_object_get(m, "role")),
                      "assistant");
  assert_string_equal(
      json_string_value(json_object_get(
          json_object_get(json_array_get(json_object_get(m, "content"), 1),
                          "input"),
          "command")),
      "ls");
  assert_true(json_is_object(json_object_get(
      json_array_get(json_object_get(m, "content"), 2), "input")));
  m = json_array_get(msgs, 2);
  assert_string_equal(json_string_value(json_object_get(m, "role")), "user");
  assert_int_equal(json_array_size(json_object_get(m, "content")), 3);
  assert_string_equal(
      json_string_value(json_object_get(
          json_array_get(json_object_get(m, "content"), 1), "tool_use_id")),
      "t2");
  json_decref(body);
  durin_http_req_clear(&h);
  /* The official SDKs take the bare host and append /v1/messages; a base
   * that already names /v1 (durin's older default) means the same. */
  cfg.base_url = "http://127.0.0.1:9";
  assert_int_equal(p->build(&req, NULL, &h, NULL), 0);
  assert_string_equal(h.url, "http://127.0.0.1:9/v1/messages");
  durin_http_req_clear(&h);
  cfg.base_url = "https://gw.example/anthropic/";
  assert_int_equal(p->build(&req, NULL, &h, NULL), 0);
  assert_string_equal(h.url, "https://gw.example/anthropic/v1/messages");
  durin_http_req_clear(&h);
  cfg.base_url = "https://api.anthropic.com/v1/";
  cfg.api_version = "2099-01-01";
  assert_int_equal(p->build(&req, NULL, &h, NULL), 0);
  assert_string_equal(h.url, "https://api.anthropic.com/v1/messages");
  assert_string_equal(h.headers[1], "anthropic-version: 2099-01-01");
  assert_null(h.headers[2]);
  json_decref(req.messages);
  json_decref(req.tools);
  durin_http_req_clear(&h);
}

static void test_anthropic_parse(void **state)
{
  const struct durin_provider *p = durin_provider_find("anthropic");
  struct durin_model_cfg cfg = { 0 };
  struct durin_model_request req = { 0 };
  struct durin_model_response r;
  struct durin_err err = { 0 };
  const char *ok =
      "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\","
      "\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[{\"type\":"
      "\"text\",\"text\":\"I will list.\"},{\"type\":\"tool_use\",\"id\":"
      "\"toolu_01\",\"name\":\"bash\",\"input\":{\"command\":\"ls\"}}],"
      "\"stop_reason\":\"tool_use\",\"usage\":{\"input_tokens\":30,"
      "\"output_tokens\":12}}";
  const char *e = "{\"type\":\"error\",\"error\":{\"type\":"
                  "\"overloaded_error\",\"message\":\"Overloaded\"}}";

  (void)state;
  req.cfg = &cfg;
  assert_int_equal(p->parse(&req, 200, ok, strlen(ok), &r, &err), 0);
  assert_string_equal(r.text, "I will list.");
  assert_int_equal(r.ncalls, 1);
  assert_string_equal(r.calls[0].id, "toolu_01");
  assert_string_equal(r.calls[0].args, "{\"command\":\"ls\"}");
  assert_int_equal(r.input_tokens, 30);
  assert_int_equal(r.output_tokens, 12);
  assert_string_equal(r.finish_reason, "tool_use");
  durin_model_response_clear(&r);
  assert_int_equal(p->parse(&req, 529, e, strlen(e), &r, &err), DURIN_EMODEL);
  assert_non_null(strstr(err.msg, "HTTP 529: Overloaded"));
}

struct sse_seen {
  char log[1024];
};

static int sse_collect(const char *event, const char *data, void *arg)
{
  struct sse_seen *s = arg;
  size_t n = strlen(s->log);

  snprintf(s->log + n, sizeof(s->log) - n, "[%s|%s]", event, data);
  return 0;
}

static void test_sse(void **state)
{
  struct sse_seen s;
  const char *in = "\xef\xbb\xbf: keep-alive\r\n\r\nevent: a\r\ndata: 1\r\n"
                   "data:2\r\n\r\ndata\n\nid: 7\nretry: 5\ndata: {\"x\": 1}\r"
                   "\rdata: tail";

  (void)state;
  memset(&s, 0, sizeof(s));
  assert_int_equal(durin_sse_parse(in, strlen(in), sse_collect, &s), 0);
  assert_string_equal(s.log, "[a|1\n2][message|][message|{\"x\": 1}]"
                             "[message|tail]");
}

static void stream_parse(const char *provider, const char *body, int want,
                         struct durin_model_response *r)
{
  const struct durin_provider *p = durin_provider_find(provider);
  struct durin_model_cfg cfg = { 0 };
  struct durin_model_request req = { 0 };
  struct durin_err err = { 0 };
  int got;

  cfg.stream = 1;
  req.cfg = &cfg;
  got = p->parse(&req, 200, body, strlen(body), r, &err);
  if (got != want)
    fail_msg("%s: got %d (%s), want %d", provider, got, err.msg, want);
}

static void test_openai_stream(void **state)
{
  struct durin_model_response r;
  const char *full =
      "data: {\"model\":\"gpt-4o-mini-x\",\"choices\":[{\"index\":0,"
      "\"delta\":{\"role\":\"assistant\",\"content\":\"Let me \"}}]}\n\n"
      "data: {\"choices\":[{\"delta\":{\"content\":\"look.\"}}]}\n\n"
      "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":"
      "\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"bash\","
      "\"arguments\":\"\"}}]}}]}\n\n"
      "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,"
      "\"function\":{\"arguments\":\"{\\\"command\\\": \"}}]}}]}\n\n"
      "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,"
      "\"function\":{\"arguments\":\"\\\"ls\\\"}\"}}]}}]}\n\n"
      "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}"
      "\n\n"
      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
      "\"completion_tokens\":4}}\n\n"
      "data: [DONE]\n\n";

  (void)state;
  stream_parse("openai", full, 0, &r);
  assert_string_equal(r.text, "Let me look.");
  assert_int_equal(r.ncalls, 1);
  assert_string_equal(r.calls[0].id, "call_1");
  assert_string_equal(r.calls[0].name, "bash");
  assert_string_equal(r.calls[0].args, "{\"command\": \"ls\"}");
  assert_int_equal(r.input_tokens, 9);
  assert_int_equal(r.output_tokens, 4);
  assert_string_equal(r.model, "gpt-4o-mini-x");
  durin_model_response_clear(&r);
  /* Cut off before the end: transient, worth a retry. */
  stream_parse("openai",
               "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}"
               "\n\n",
               DURIN_ERETRY, &r);
  stream_parse("openai", "data: {\"error\":{\"message\":\"boom\"}}\n\n",
               DURIN_EMODEL, &r);
  /* A server that ignores "stream" answers with plain JSON. */
  stream_parse("openai", "{\"choices\":[{\"message\":{\"content\":\"hi\"}}]}",
               0, &r);
  assert_string_equal(r.text, "hi");
  durin_model_response_clear(&r);
}

static void test_anthropic_stream(void **state)
{
  struct durin_model_response r;
  const char *full =
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
      "{\"model\":\"claude-x\",\"usage\":{\"input_tokens\":25}}}\n\n"
      "event: content_block_start\ndata: {\"type\":\"content_block_start\","
      "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
      "event: ping\ndata: {\"type\":\"ping\"}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
      "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"On it\"}}"
      "\n\n"
      "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
      "\"index\":0}\n\n"
      "event: content_block_start\ndata: {\"type\":\"content_block_start\","
      "\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":"
      "\"toolu_9\",\"name\":\"bash\",\"input\":{}}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
      "\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
      "\"partial_json\":\"{\\\"command\\\": \\\"l\"}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
      "\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
      "\"partial_json\":\"s\\\"}\"}}\n\n"
      "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":"
      "{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":15}}\n\n"
      "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

  (void)state;
  stream_parse("anthropic", full, 0, &r);
  assert_string_equal(r.text, "On it");
  assert_int_equal(r.ncalls, 1);
  assert_string_equal(r.calls[0].id, "toolu_9");
  assert_string_equal(r.calls[0].args, "{\"command\": \"ls\"}");
  assert_int_equal(r.input_tokens, 25);
  assert_int_equal(r.output_tokens, 15);
  assert_string_equal(r.finish_reason, "tool_use");
  durin_model_response_clear(&r);
  stream_parse("anthropic",
               "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
               "\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
               DURIN_EMODEL, &r);
  stream_parse("anthropic", "event: message_start\ndata: {\"message\":{}}\n\n",
               DURIN_ERETRY, &r);
}

/* Parses body as provider's non-streamed (stream 0) or streamed answer
 * and checks the result code; on failure err.msg must contain want_msg. */
static void usage_case(const char *provider, int stream, const char *body,
                       int want, const char *want_msg,
                       struct durin_model_response *r)
{
  const struct durin_provider *p = durin_provider_find(provider);
  struct durin_model_cfg cfg = { 0 };
  struct durin_model_request req = { 0 };
  struct durin_err err = { 0 };
  int got;

  cfg.stream = stream;
  req.cfg = &cfg;
  got = p->parse(&req, 200, body, strlen(body), r, &err);
  if (got != want)
    fail_msg("%s: got %d (%s), want %d for %s", provider, got, err.msg, want,
             body);
  if (want && want_msg && !strstr(err.msg, want_msg))
    fail_msg("%s: message '%s' lacks '%s'", provider, err.msg, want_msg);
  if (want)
    assert_null(r->text);
}

#define OA_USAGE(u)                                                   \
 "{\"choices\":[{\"message\":{\"content\":\"hi\"},\"finish_reason\":" \
 "\"stop\"}],\"usage\":" u "}"
#define OA_STREAM(u)                                                      \
 "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"},\"finish_reason\":" \
 "\"stop\"}]}\n\ndata: {\"choices\":[],\"usage\":" u "}\n\ndata: [DONE]\n\n"
#define AN_USAGE(u)                                                    \
 "{\"content\":[{\"type\":\"text\",\"text\":\"hi\"}],\"stop_reason\":" \
 "\"end_turn\",\"usage\":" u "}"
#define AN_STREAM(start, delta)                                           \
 "event: message_start\ndata: {\"message\":{\"usage\":" start "}}\n\n"    \
 "event: content_block_start\ndata: {\"index\":0,\"content_block\":"      \
 "{\"type\":\"text\",\"text\":\"hi\"}}\n\n"                               \
 "event: message_delta\ndata: {\"delta\":{\"stop_reason\":\"end_turn\"}," \
 "\"usage\":" delta "}\n\nevent: message_stop\ndata: {}\n\n"

static void test_usage_refused(void **state)
{
  struct durin_model_response r;

  (void)state;
  /* Counts a provider got wrong would be subtracted from, or smeared over,
   * the run's totals and budget: the answer is refused instead. */
  usage_case("openai", 0,
             OA_USAGE("{\"prompt_tokens\":-10,\"completion_tokens\":5}"),
             DURIN_EMODEL, "usage.prompt_tokens", &r);
  usage_case("openai", 0,
             OA_USAGE("{\"prompt_tokens\":10,\"completion_tokens\":2.5}"),
             DURIN_EMODEL, "usage.completion_tokens", &r);
  usage_case("openai", 0,
             OA_USAGE("{\"prompt_tokens\":\"10\",\"completion_tokens\":2}"),
             DURIN_EMODEL, "usage.prompt_tokens", &r);
  usage_case("openai", 0,
             OA_USAGE("{\"prompt_tokens\":10,\"completion_tokens\":2,"
                      "\"prompt_tokens_details\":{\"cached_tokens\":-1}}"),
             DURIN_EMODEL, "cached_tokens", &r);
  usage_case("openai", 0,
             OA_USAGE("{\"prompt_tokens\":10,\"completion_tokens\":2,"
                      "\"prompt_tokens_details\":{\"cached_tokens\":11}}"),
             DURIN_EMODEL, "cached_tokens", &r);
  usage_case("openai", 1,
             OA_STREAM("{\"prompt_tokens\":-10,\"completion_tokens\":5}"),
             DURIN_EMODEL, "usage.prompt_tokens", &r);
  usage_case("anthropic", 0,
             AN_USAGE("{\"input_tokens\":-10,\"output_tokens\":5}"),
             DURIN_EMODEL, "usage.input_tokens", &r);
  usage_case("anthropic", 0,
             AN_USAGE("{\"input_tokens\":10,\"output_tokens\":5,"
                      "\"cache_read_input_tokens\":1e3}"),
             DURIN_EMODEL, "usage.cache_read_input_tokens", &r);
  usage_case("anthropic", 1,
             AN_STREAM("{\"input_tokens\":10,\"cache_creation_input_tokens\":"
                       "-4}",
                       "{\"output_tokens\":5}"),
             DURIN_EMODEL, "usage.cache_creation_input_tokens", &r);
  usage_case("anthropic", 1,
             AN_STREAM("{\"input_tokens\":10}", "{\"output_tokens\":-5}"),
             DURIN_EMODEL, "usage.output_tokens", &r);
  /* Absent counts are 0 (servers without usage), not an error. */
  usage_case("openai", 0, OA_USAGE("null"), 0, NULL, &r);
  assert_int_equal(r.input_tokens, 0);
  durin_model_response_clear(&r);
}

static void test_usage_cached(void **state)
{
  struct durin_model_response r, back;
  struct durin_err err = { 0 };
  json_t *j;

  (void)state;
  /* OpenAI: prompt_tokens already counts the cached ones. */
  usage_case("openai", 0,
             OA_USAGE("{\"prompt_tokens\":1000,\"completion_tokens\":20,"
                      "\"prompt_tokens_details\":{\"cached_tokens\":800}}"),
             0, NULL, &r);
  assert_int_equal(r.input_tokens, 1000);
  assert_int_equal(r.cache_read_tokens, 800);
  assert_int_equal(r.cache_write_tokens, 0);
  assert_int_equal(r.output_tokens, 20);
  durin_model_response_clear(&r);
  usage_case("openai", 1,
             OA_STREAM("{\"prompt_tokens\":1000,\"completion_tokens\":20,"
                       "\"prompt_tokens_details\":{\"cached_tokens\":512}}"),
             0, NULL, &r);
  assert_int_equal(r.input_tokens, 1000);
  assert_int_equal(r.cache_read_tokens, 512);
  durin_model_response_clear(&r);
  /* Anthropic: input_tokens are only the uncached ones; the input is their
   * sum with cache reads and writes. */
  usage_case("anthropic", 0,
             AN_USAGE("{\"input_tokens\":30,\"output_tokens\":12,"
                      "\"cache_read_input_tokens\":1000,"
                      "\"cache_creation_input_tokens\":200}"),
             0, NULL, &r);
  assert_int_equal(r.input_tokens, 1230);
  assert_int_equal(r.cache_read_tokens, 1000);
  assert_int_equal(r.cache_write_tokens, 200);
  assert_int_equal(r.output_tokens, 12);
  /* The log keeps them, so a stored step is charged the same. */
  j = durin_model_response_to_json(&r);
  assert_int_equal(durin_model_response_from_json(j, &back, &err), 0);
  assert_int_equal(back.input_tokens, 1230);
  assert_int_equal(back.cache_read_tokens, 1000);
  assert_int_equal(back.cache_write_tokens, 200);
  json_decref(j);
  durin_model_response_clear(&back);
  durin_model_response_clear(&r);
  /* Streamed: message_start has the input side; message_delta's counts,
   * when present, are cumulative and win. */
  usage_case("anthropic", 1,
             AN_STREAM("{\"input_tokens\":30,\"cache_read_input_tokens\":"
                       "1000,\"cache_creation_input_tokens\":0,"
                       "\"output_tokens\":1}",
                       "{\"output_tokens\":40,\"cache_creation_input_tokens\":"
                       "200,\"input_tokens\":null}"),
             0, NULL, &r);
  assert_int_equal(r.input_tokens, 1230);
  assert_int_equal(r.cache_read_tokens, 1000);
  assert_int_equal(r.cache_write_tokens, 200);
  assert_int_equal(r.output_tokens, 40);
  durin_model_response_clear(&r);
}

static void test_backoff(void **state)
{
  int a;

  (void)state;
  for (a = 0; a < 20; a++) {
    int64_t lo = durin_backoff_ms(a, -1, 0.0);
    int64_t hi = durin_backoff_ms(a, -1, 0.999);

    assert_true(lo >= 50);
    assert_true(hi <= 30000);
    assert_true(lo <= hi);
  }
  assert_true(durin_backoff_ms(0, -1, 0.999) < durin_backoff_ms(5, -1, 0.999));
  assert_int_equal(durin_backoff_ms(3, 2000, 0.5), 2000);
  assert_int_equal(durin_retry_after_parse("7", 0), 7000);
  assert_int_equal(durin_retry_after_parse(" 0", 0), 0);
  assert_int_equal(durin_retry_after_parse("soon", 0), -1);
  assert_int_equal(durin_retry_after_parse(NULL, 0), -1);
  /* 2026-01-01 00:00:10 GMT, asked at 00:00:00, in the three forms HTTP
   * allows (RFC 9110 5.6.7): IMF-fixdate, RFC 850 and asctime. */
  assert_int_equal(
      durin_retry_after_parse("Thu, 01 Jan 2026 00:00:10 GMT", 1767225600000LL),
      10000);
  assert_int_equal(durin_retry_after_parse("Thursday, 01-Jan-26 00:00:10 GMT",
                                           1767225600000LL),
                   10000);
  assert_int_equal(
      durin_retry_after_parse("Thu Jan  1 00:00:10 2026", 1767225600000LL),
      10000);
  /* A date in the past means now. */
  assert_int_equal(
      durin_retry_after_parse("Thu, 01 Jan 2026 00:00:10 GMT", 1767225700000LL),
      0);
  assert_int_equal(durin_retry_after_parse("-3", 0), -1);
  assert_int_equal(durin_retry_after_parse("1.5", 0), -1);
}

static void test_script(void **state)
{
  const struct durin_provider *p = durin_provider_find("script");
  struct durin_model_cfg cfg = { 0 };
  struct durin_model_request req = { 0 };
  struct durin_model_response r;
  struct durin_err err = { 0 };

  (void)state;
  cfg.turns = json_loads("[{\"text\":\"a\"},{\"repeat\":3,\"tool_calls\":[{"
                         "\"name\":\"bash\",\"arguments\":{\"command\":\"x\"}"
                         "}],\"usage\":{\"input_tokens\":4}},{\"text\":\"z\"}"
                         "]",
                         0, NULL);
  req.cfg = &cfg;
  req.turn = 0;
  assert_int_equal(p->answer(&req, &r, &err), 0);
  assert_string_equal(r.text, "a");
  durin_model_response_clear(&r);
  req.turn = 3;
  assert_int_equal(p->answer(&req, &r, &err), 0);
  assert_int_equal(r.ncalls, 1);
  assert_string_equal(r.calls[0].id, "call_3_0");
  assert_string_equal(r.calls[0].args, "{\"command\":\"x\"}");
  assert_int_equal(r.input_tokens, 4);
  durin_model_response_clear(&r);
  req.turn = 4;
  assert_int_equal(p->answer(&req, &r, &err), 0);
  assert_string_equal(r.text, "z");
  durin_model_response_clear(&r);
  req.turn = 5;
  assert_int_equal(p->answer(&req, &r, &err), DURIN_EMODEL);
  assert_non_null(strstr(err.msg, "never called finish"));
  json_decref(cfg.turns);
}

static void test_prices(void **state)
{
  struct durin_model_cfg cfg = { 0 };
  struct durin_price pr;

  (void)state;
  assert_int_equal(durin_price_lookup("gpt-4o-mini-2024-07-18", &pr), 0);
  assert_true(pr.input_per_mtok == 0.15);
  assert_int_equal(durin_price_lookup("gpt-4o-2024-08-06", &pr), 0);
  assert_true(pr.input_per_mtok == 2.5);
  assert_int_equal(durin_price_lookup("llama3", &pr), DURIN_ENOTFOUND);
  cfg.name = "gpt-4o";
  assert_true(durin_model_cost(&cfg, 1000000, 100000) == 2.5 + 1.0);
  cfg.price.set = 1;
  cfg.price.input_per_mtok = 1;
  cfg.price.output_per_mtok = 2;
  assert_true(durin_model_cost(&cfg, 1000000, 1000000) == 3.0);
  cfg.name = "llama3";
  cfg.price.set = 0;
  assert_true(durin_model_cost(&cfg, 1000000, 1000000) == 0.0);
}

static int near(double a, double b)
{
  return a - b < 1e-9 && b - a < 1e-9;
}

static void test_prices_cached(void **state)
{
  struct durin_model_cfg cfg = { 0 };
  struct durin_model_response r = { 0 };
  struct durin_price pr;

  (void)state;
  /* The table knows each model's cached price: gpt-4o 50%, gpt-4.1 25%,
   * gpt-5 10%; Claude reads 10% and writes 125% of the input price. */
  assert_int_equal(durin_price_lookup("gpt-4o-2024-08-06", &pr), 0);
  assert_true(near(pr.cached_input_per_mtok, 1.25));
  assert_true(pr.cached_input_set);
  assert_int_equal(durin_price_lookup("gpt-4.1-mini", &pr), 0);
  assert_true(near(pr.cached_input_per_mtok, 0.10));
  assert_int_equal(durin_price_lookup("gpt-5", &pr), 0);
  assert_true(near(pr.cached_input_per_mtok, 0.125));
  assert_int_equal(durin_price_lookup("claude-sonnet-4-5", &pr), 0);
  assert_true(near(pr.cached_input_per_mtok, 0.30));
  assert_true(near(pr.cache_write_per_mtok, 3.75));

  /* 1M input, 800k of it read from the cache, at gpt-4o prices. */
  cfg.provider = "openai";
  cfg.name = "gpt-4o";
  r.input_tokens = 1000000;
  r.cache_read_tokens = 800000;
  r.output_tokens = 100000;
  assert_true(near(durin_model_response_cost(&cfg, &r),
                   0.2 * 2.5 + 0.8 * 1.25 + 0.1 * 10.0));

  /* 1,230 input at claude-sonnet-4: 30 uncached, 1,000 read, 200 written. */
  cfg.provider = "anthropic";
  cfg.name = "claude-sonnet-4-5";
  r.input_tokens = 1230;
  r.cache_read_tokens = 1000;
  r.cache_write_tokens = 200;
  r.output_tokens = 12;
  assert_true(near(durin_model_response_cost(&cfg, &r),
                   (30 * 3.0 + 1000 * 0.30 + 200 * 3.75 + 12 * 15.0) / 1e6));

  /* A spec price without cache prices: the provider's ratio applies. */
  cfg.price.set = 1;
  cfg.price.input_per_mtok = 10;
  cfg.price.output_per_mtok = 0;
  assert_int_equal(durin_price_resolve(&cfg, &pr), 0);
  assert_true(near(pr.cached_input_per_mtok, 1.0));
  assert_true(near(pr.cache_write_per_mtok, 12.5));
  cfg.provider = "openai";
  assert_int_equal(durin_price_resolve(&cfg, &pr), 0);
  assert_true(near(pr.cached_input_per_mtok, 5.0));
  /* ... unless it names them; 0 is a price, not "unset". */
  cfg.price.cached_input_per_mtok = 0;
  cfg.price.cached_input_set = 1;
  r.input_tokens = 1000000;
  r.cache_read_tokens = 1000000;
  r.cache_write_tokens = 0;
  r.output_tokens = 0;
  assert_true(near(durin_model_response_cost(&cfg, &r), 0.0));
  /* No price at all. */
  cfg.price.set = 0;
  cfg.name = "llama3";
  assert_int_equal(durin_price_resolve(&cfg, &pr), DURIN_ENOTFOUND);
  assert_true(near(durin_model_response_cost(&cfg, &r), 0.0));
}

static void test_script_usage(void **state)
{
  const struct durin_provider *p = durin_provider_find("script");
  struct durin_model_cfg cfg = { 0 };
  struct durin_model_request req = { 0 };
  struct durin_model_response r;
  struct durin_err err = { 0 };

  (void)state;
  cfg.turns = json_loads("[{\"text\":\"a\",\"usage\":{\"input_tokens\":-10}},"
                         "{\"text\":\"b\",\"usage\":{\"input_tokens\":50,"
                         "\"cache_read_tokens\":40,\"output_tokens\":2}}]",
                         0, NULL);
  req.cfg = &cfg;
  assert_int_equal(p->answer(&req, &r, &err), DURIN_EMODEL);
  assert_non_null(strstr(err.msg, "usage.input_tokens"));
  req.turn = 1;
  assert_int_equal(p->answer(&req, &r, &err), 0);
  assert_int_equal(r.input_tokens, 50);
  assert_int_equal(r.cache_read_tokens, 40);
  durin_model_response_clear(&r);
  json_decref(cfg.turns);
}

/* ---- transfers through the event-loop transport ---- */

struct fake {
  pid_t pid;
  int port;
  char *dir;
};

/* Starts fake-model answering replies (a JSON array), requiring key
 * "sk-t"; 0 if $FAKE_MODEL names no server (the test then skips). */
static int fake_start(struct fake *f, const char *replies)
{
  const char *bin = getenv("FAKE_MODEL");
  char path[4200], port[4200], log[4200];
  FILE *fp;
  int i;

  if (!bin || !*bin)
    return 0;
  f->dir = test_tmpdir();
  snprintf(path, sizeof(path), "%s/replies.json", f->dir);
  snprintf(port, sizeof(port), "%s/port", f->dir);
  snprintf(log, sizeof(log), "%s/requests.log", f->dir);
  fp = fopen(path, "w");
  assert_non_null(fp);
  fputs(replies, fp);
  fclose(fp);
  f->pid = fork();
  assert_true(f->pid >= 0);
  if (f->pid == 0) {
    /* A failed assertion leaves no server behind holding meson's pipe. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    execl(bin, bin, "--port-file", port, "--replies", path, "--log", log,
          "--key", "sk-t", (char *)NULL);
    _exit(127);
  }
  for (i = 0, f->port = 0; i < 100 && !f->port; i++) {
    fp = fopen(port, "r");
    if (!fp || fscanf(fp, "%d", &f->port) != 1)
      usleep(50000);
    if (fp)
      fclose(fp);
  }
  assert_true(f->port > 0);
  return 1;
}

static void fake_stop(struct fake *f)
{
  kill(f->pid, SIGTERM);
  waitpid(f->pid, NULL, 0);
  test_rmrf(f->dir);
  free(f->dir);
}

/* What the transport's callback reported. */
struct xfer_seen {
  int calls;
  int r;
  long status;
  char *body;
  size_t len;
  char ra[128];
  struct durin_err err;
};

static void on_xfer_done(void *arg, int r, long status, const char *body,
                         size_t len, const char *ra, struct durin_err *err)
{
  struct xfer_seen *x = arg;

  x->calls++;
  x->r = r;
  x->status = status;
  x->body = malloc(len + 1);
  memcpy(x->body, body ? body : "", len);
  x->body[len] = '\0';
  x->len = len;
  snprintf(x->ra, sizeof(x->ra), "%s", ra ? ra : "");
  if (err)
    x->err = *err;
}

/*
 * One model call attempt as the worker makes it: provider's build() with
 * base_url, the POST on a libuv loop, then durin_model_judge(). Returns
 * the judgement; out and why are filled as the judge fills them.
 */
static int attempt(const char *provider, const char *base_url, int stream,
                   int64_t timeout_ms, size_t cap, struct xfer_seen *seen,
                   struct durin_model_response *out, char *why, size_t whylen,
                   struct durin_err *err)
{
  const struct durin_provider *p = durin_provider_find(provider);
  struct durin_model_cfg cfg = { 0 };
  struct durin_model_request req = { 0 };
  struct durin_http_req h = { 0 };
  struct uvh_xfer *x;
  struct uvh *uh;
  uv_loop_t loop;
  int r;

  cfg.provider = (char *)provider;
  cfg.name = "m";
  cfg.base_url = (char *)base_url;
  cfg.stream = stream;
  req.cfg = &cfg;
  req.messages =
      json_loads("[{\"role\":\"user\",\"content\":\"hi\"}]", 0, NULL);
  req.tools = json_array();
  assert_int_equal(p->build(&req, "sk-t", &h, err), 0);
  memset(seen, 0, sizeof(*seen));
  assert_int_equal(uv_loop_init(&loop), 0);
  uh = uvh_new(&loop);
  assert_non_null(uh);
  x = uvh_post(uh, &h, timeout_ms, cap, on_xfer_done, seen);
  assert_non_null(x);
  while (!seen->calls)
    uv_run(&loop, UV_RUN_ONCE);
  uvh_free(uh);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(seen->calls, 1);
  memset(out, 0, sizeof(*out));
  *err = seen->err;
  r = durin_model_judge(p, &req, seen->r, seen->status, seen->body, seen->len,
                        out, why, whylen, err);
  durin_http_req_clear(&h);
  json_decref(req.messages);
  json_decref(req.tools);
  return r;
}

/* A reply body of 140 bytes, over the 100-byte cap of its transfer. */
#define OVER_CAP_HALF \
 "a reply that is longer than the cap its transfer was given, seventy b."

static void test_transfers(void **state)
{
  const char *replies =
      "[{\"body\":{\"model\":\"gpt-x\",\"choices\":[{\"message\":{\"content\":"
      "\"hi\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":100,"
      "\"completion_tokens\":7,\"prompt_tokens_details\":{\"cached_tokens\":"
      "64}}}},"
      "{\"status\":429,\"headers\":{\"Retry-After\":"
      "\"Sun Nov  6 08:49:37 1994\"},\"body\":{\"error\":{\"message\":"
      "\"slow down\"}}},"
      "{\"drop\":true},"
      "{\"delay_ms\":3000,\"body\":{}},"
      "{\"raw\":\"" OVER_CAP_HALF OVER_CAP_HALF "\"},"
      "{\"body\":{\"content\":[{\"type\":\"text\",\"text\":\"bare\"}],"
      "\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":3,"
      "\"cache_read_input_tokens\":5,\"output_tokens\":1}}},"
      "{\"status\":400,\"body\":{\"error\":{\"message\":\"bad tools\"}}},"
      "{\"body\":{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"usage\":"
      "{\"prompt_tokens\":-10,\"completion_tokens\":1}}},"
      "{\"sse\":[{\"data\":{\"choices\":[{\"delta\":{\"content\":\"cut\"}}]}}"
      "]},"
      "{\"status\":503,\"body\":{}}]";
  struct durin_model_response out;
  struct durin_err err = { 0 };
  struct xfer_seen seen;
  struct fake f;
  char base[64], host[64], why[600];

  (void)state;
  if (!fake_start(&f, replies))
    skip();
  snprintf(base, sizeof(base), "http://127.0.0.1:%d/v1", f.port);
  snprintf(host, sizeof(host), "http://127.0.0.1:%d", f.port);

  /* An answer: parsed, cached tokens included. */
  assert_int_equal(attempt("openai", base, 0, 5000, 1 << 20, &seen, &out, why,
                           sizeof(why), &err),
                   0);
  assert_string_equal(out.text, "hi");
  assert_int_equal(out.input_tokens, 100);
  assert_int_equal(out.cache_read_tokens, 64);
  durin_model_response_clear(&out);
  free(seen.body);

  /* 429: retried; the transport hands over Retry-After whole (an asctime
   * date has spaces), and a date in the past means now. */
  assert_int_equal(attempt("openai", base, 0, 5000, 1 << 20, &seen, &out, why,
                           sizeof(why), &err),
                   DURIN_ERETRY);
  assert_int_equal(seen.status, 429);
  assert_string_equal(seen.ra, "Sun Nov  6 08:49:37 1994");
  assert_int_equal(durin_retry_after_parse(seen.ra, durin_now_ms()), 0);
  assert_int_equal(durin_retry_after_parse(seen.ra, 784111777000LL - 5000),
                   5000);
  assert_string_equal(why, "HTTP 429");
  free(seen.body);

  /* A connection closed without an answer: retried. */
  assert_int_equal(attempt("openai", base, 0, 5000, 1 << 20, &seen, &out, why,
                           sizeof(why), &err),
                   DURIN_ERETRY);
  assert_int_equal(seen.r, DURIN_ERETRY);
  free(seen.body);

  /* Too slow: timed out, retried. */
  assert_int_equal(attempt("openai", base, 0, 300, 1 << 20, &seen, &out, why,
                           sizeof(why), &err),
                   DURIN_ERETRY);
  assert_int_equal(seen.r, DURIN_ETIMEDOUT);
  assert_non_null(strstr(why, "timed out"));
  free(seen.body);

  /* Over the cap: an error, not retried (it would be as big again). */
  assert_int_equal(attempt("openai", base, 0, 5000, 100, &seen, &out, why,
                           sizeof(why), &err),
                   DURIN_ETOOBIG);
  assert_non_null(strstr(err.msg, "exceeds 100 bytes"));
  free(seen.body);

  /* Anthropic at the bare host: the fake serves /v1/messages only. */
  assert_int_equal(attempt("anthropic", host, 0, 5000, 1 << 20, &seen, &out,
                           why, sizeof(why), &err),
                   0);
  assert_string_equal(out.text, "bare");
  assert_int_equal(out.input_tokens, 8);
  assert_int_equal(out.cache_read_tokens, 5);
  durin_model_response_clear(&out);
  free(seen.body);

  /* Another 4xx: the server's message, not retried. */
  assert_int_equal(attempt("openai", base, 0, 5000, 1 << 20, &seen, &out, why,
                           sizeof(why), &err),
                   DURIN_EMODEL);
  assert_non_null(strstr(err.msg, "HTTP 400: bad tools"));
  free(seen.body);

  /* A bad token count: malformed, not retried, nothing counted. */
  assert_int_equal(attempt("openai", base, 0, 5000, 1 << 20, &seen, &out, why,
                           sizeof(why), &err),
                   DURIN_EMODEL);
  assert_non_null(strstr(err.msg, "bad usage.prompt_tokens: -10"));
  assert_int_equal(out.input_tokens, 0);
  free(seen.body);

  /* A stream that ends before its end: retried like a dropped one. */
  assert_int_equal(attempt("openai", base, 1, 5000, 1 << 20, &seen, &out, why,
                           sizeof(why), &err),
                   DURIN_ERETRY);
  assert_non_null(strstr(why, "ended early"));
  free(seen.body);

  /* 5xx: retried. */
  assert_int_equal(attempt("openai", base, 0, 5000, 1 << 20, &seen, &out, why,
                           sizeof(why), &err),
                   DURIN_ERETRY);
  assert_string_equal(why, "HTTP 503");
  free(seen.body);
  fake_stop(&f);
}

static void test_transfer_abandoned(void **state)
{
  struct durin_http_req h = { 0 };
  struct xfer_seen seen;
  struct uvh_xfer *x;
  struct uvh *uh;
  uv_loop_t loop;
  struct fake f;
  char url[64];
  int i;

  (void)state;
  if (!fake_start(&f, "[{\"delay_ms\":2000,\"body\":{}}]"))
    skip();
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions", f.port);
  h.url = strdup(url);
  h.body = strdup("{\"model\":\"m\",\"messages\":[]}");
  h.headers[0] = strdup("Content-Type: application/json");
  memset(&seen, 0, sizeof(seen));
  assert_int_equal(uv_loop_init(&loop), 0);
  uh = uvh_new(&loop);
  x = uvh_post(uh, &h, 5000, 1 << 20, on_xfer_done, &seen);
  assert_non_null(x);
  for (i = 0; i < 5; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  /* Freed before it ended (a cancelled run): its callback never runs. */
  uvh_xfer_free(x);
  for (i = 0; i < 20; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    usleep(10000);
  }
  assert_int_equal(seen.calls, 0);
  uvh_free(uh);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  durin_http_req_clear(&h);
  fake_stop(&f);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_openai_build),
    cmocka_unit_test(test_openai_parse),
    cmocka_unit_test(test_anthropic_build),
    cmocka_unit_test(test_anthropic_parse),
    cmocka_unit_test(test_sse),
    cmocka_unit_test(test_openai_stream),
    cmocka_unit_test(test_anthropic_stream),
    cmocka_unit_test(test_usage_refused),
    cmocka_unit_test(test_usage_cached),
    cmocka_unit_test(test_backoff),
    cmocka_unit_test(test_script),
    cmocka_unit_test(test_prices),
    cmocka_unit_test(test_prices_cached),
    cmocka_unit_test(test_script_usage),
    cmocka_unit_test(test_transfers),
    cmocka_unit_test(test_transfer_abandoned),
  };

  return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
