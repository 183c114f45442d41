/*
 * OpenAI Chat Completions: POST {base_url}/chat/completions with "tools"
 * of type "function"; the answer's choices[0].message carries "content"
 * and "tool_calls" [{id, type: "function", function: {name, arguments}}],
 * and "usage" {prompt_tokens, completion_tokens, prompt_tokens_details:
 * {cached_tokens}} (prompt_tokens counts the cached ones too). The same
 * wire format is served by vLLM, llama.cpp's server and Ollama.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/model.h"
#include "model/providers.h"

static json_t *wire_messages(const struct durin_model_request *req)
{
  json_t *out = json_array(), *m;
  size_t i;

  if (req->system)
    json_array_append_new(
        out, json_pack("{s:s,s:s}", "role", "system", "content", req->system));
  json_array_foreach(req->messages, i, m) {
    const char *role = json_string_value(json_object_get(m, "role"));
    json_t *w = json_object(), *calls = json_object_get(m, "tool_calls");

    json_object_set_new(w, "role", json_string(role));
    if (!strcmp(role, "tool"))
      json_object_set(w, "tool_call_id", json_object_get(m, "tool_call_id"));
    if (json_array_size(calls)) {
      json_t *wc = json_array(), *c;
      size_t j;

      json_array_foreach(calls, j, c)
        json_array_append_new(
            wc, json_pack("{s:O,s:s,s:{s:O,s:O}}", "id",
                          json_object_get(c, "id"), "type", "function",
                          "function", "name", json_object_get(c, "name"),
                          "arguments", json_object_get(c, "arguments")));
      json_object_set_new(w, "tool_calls", wc);
      /* An assistant turn with only tool calls has null content. */
      json_object_set(w, "content",
                      json_is_string(json_object_get(m, "content")) ?
                          json_object_get(m, "content") :
                          json_null());
    } else {
      json_t *content = json_object_get(m, "content");

      json_object_set_new(w, "content",
                          json_is_string(content) ? json_incref(content) :
                                                    json_string(""));
    }
    json_array_append_new(out, w);
  }
  return out;
}

static int openai_build(const struct durin_model_request *req,
                        const char *api_key, struct durin_http_req *out,
                        struct durin_err *err)
{
  const struct durin_model_cfg *cfg = req->cfg;
  json_t *body, *tools = json_array(), *t;
  size_t i;
  char hdr[1024];
  int r;

  json_array_foreach(req->tools, i, t)
    json_array_append_new(
        tools, json_pack("{s:s,s:{s:O,s:O,s:O}}", "type", "function",
                         "function", "name", json_object_get(t, "name"),
                         "description", json_object_get(t, "description"),
                         "parameters", json_object_get(t, "parameters")));
  body = json_pack("{s:s,s:o}", "model", cfg->name, "messages",
                   wire_messages(req));
  if (json_array_size(tools))
    json_object_set_new(body, "tools", tools);
  else
    json_decref(tools);
  /* OpenAI deprecated max_tokens (o-series models refuse it) for
   * max_completion_tokens; compatible servers know the older name. */
  if (cfg->max_tokens)
    json_object_set_new(body,
                        strstr(cfg->base_url, "api.openai.com") ?
                            "max_completion_tokens" :
                            "max_tokens",
                        json_integer(cfg->max_tokens));
  if (cfg->stream) {
    json_object_set_new(body, "stream", json_true());
    json_object_set_new(body, "stream_options",
                        json_pack("{s:b}", "include_usage", 1));
  }
  r = durin__http_req_fill(out, cfg->base_url, "/chat/completions", body, err);
  if (r)
    return r;
  out->headers[1] = strdup(cfg->stream ? "Accept: text/event-stream" :
                                         "Accept: application/json");
  if (api_key && *api_key) {
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", api_key);
    out->headers[2] = strdup(hdr);
  }
  return 0;
}

/* The answer's token counts, from its "usage" (may be NULL). */
static int read_usage(json_t *usage, struct durin_model_response *out,
                      struct durin_err *err)
{
  json_t *details;
  int r;

  if ((r = durin__usage_count(usage, "usage", "prompt_tokens",
                              &out->input_tokens, err)) ||
      (r = durin__usage_count(usage, "usage", "completion_tokens",
                              &out->output_tokens, err)))
    return r;
  details = durin__usage_object(usage, "prompt_tokens_details",
                                "usage.prompt_tokens_details", err, &r);
  if (r ||
      (r = durin__usage_count(details, "usage.prompt_tokens_details",
                              "cached_tokens", &out->cache_read_tokens, err)))
    return r;
  if (out->cache_read_tokens > out->input_tokens)
    return durin_err_set(err, DURIN_EMODEL,
                         "model response has a bad "
                         "usage.prompt_tokens_details.cached_tokens: %lld, "
                         "more than its prompt_tokens (%lld)",
                         (long long)out->cache_read_tokens,
                         (long long)out->input_tokens);
  return 0;
}

/* What a streamed answer adds up to, chunk by chunk. */
struct stream {
  struct durin_buf text;
  struct durin_buf args[64];
  char *ids[64];
  char *names[64];
  int ncalls;
  json_t *usage;
  char *model;
  char *finish;
  char err[256];
  int done;
};

/* One chunk: {"choices": [{"delta": {"content", "tool_calls": [{index, id,
 * function: {name, arguments}}]}, "finish_reason"}], "usage", "model"}. */
static int on_chunk(const char *event, const char *data, void *arg)
{
  struct stream *st = arg;
  json_t *j, *choice, *delta, *calls, *c;
  size_t i;

  (void)event;
  if (!strcmp(data, "[DONE]")) {
    st->done = 1;
    return 0;
  }
  j = json_loads(data, 0, NULL);
  if (!json_is_object(j)) {
    json_decref(j);
    snprintf(st->err, sizeof(st->err), "a streamed chunk is not JSON");
    return 1;
  }
  if (json_object_get(j, "error")) {
    const char *m = json_string_value(
        json_object_get(json_object_get(j, "error"), "message"));

    snprintf(st->err, sizeof(st->err), "error in the stream: %s",
             m ? m : "(no message)");
    json_decref(j);
    return 1;
  }
  durin__json_set_str(&st->model, json_object_get(j, "model"));
  if (json_is_object(json_object_get(j, "usage"))) {
    json_decref(st->usage);
    st->usage = json_incref(json_object_get(j, "usage"));
  }
  choice = json_array_get(json_object_get(j, "choices"), 0);
  durin__json_set_str(&st->finish, json_object_get(choice, "finish_reason"));
  delta = json_object_get(choice, "delta");
  if (json_is_string(json_object_get(delta, "content")))
    durin_buf_adds(&st->text,
                   json_string_value(json_object_get(delta, "content")));
  calls = json_object_get(delta, "tool_calls");
  json_array_foreach(calls, i, c) {
    json_t *fn = json_object_get(c, "function");
    json_int_t idx = json_integer_value(json_object_get(c, "index"));

    if (idx < 0 || idx >= 64)
      continue;
    while (st->ncalls <= idx)
      durin_buf_init(&st->args[st->ncalls++], 0);
    durin__json_set_str(&st->ids[idx], json_object_get(c, "id"));
    durin__json_set_str(&st->names[idx], json_object_get(fn, "name"));
    if (json_is_string(json_object_get(fn, "arguments")))
      durin_buf_adds(&st->args[idx],
                     json_string_value(json_object_get(fn, "arguments")));
  }
  json_decref(j);
  return 0;
}

static int parse_stream(const char *body, size_t len,
                        struct durin_model_response *out, struct durin_err *err)
{
  struct stream st;
  int i, r = 0;

  memset(&st, 0, sizeof(st));
  durin_buf_init(&st.text, 0);
  if (durin_sse_parse(body, len, on_chunk, &st)) {
    r = durin_err_set(err, DURIN_EMODEL, "model stream: %s", st.err);
    goto out;
  }
  if (!st.done && !st.finish) {
    r = durin_err_set(err, DURIN_ERETRY, "model stream ended early");
    goto out;
  }
  if (st.text.len)
    out->text = durin_buf_detach(&st.text, NULL);
  out->calls = calloc((size_t)st.ncalls + 1, sizeof(*out->calls));
  for (i = 0; i < st.ncalls; i++) {
    struct durin_tool_call *tc = &out->calls[out->ncalls++];
    char gen[32];

    snprintf(gen, sizeof(gen), "call_%d", i);
    tc->id = strdup(st.ids[i] ? st.ids[i] : gen);
    tc->name = strdup(st.names[i] ? st.names[i] : "");
    tc->args = durin_buf_detach(&st.args[i], NULL);
  }
  if ((r = read_usage(st.usage, out, err)))
    goto out;
  out->model = st.model;
  st.model = NULL;
  out->finish_reason = st.finish;
  st.finish = NULL;
out:
  durin_buf_release(&st.text);
  for (i = 0; i < st.ncalls; i++) {
    durin_buf_release(&st.args[i]);
    free(st.ids[i]);
    free(st.names[i]);
  }
  json_decref(st.usage);
  free(st.model);
  free(st.finish);
  return r;
}

static int openai_parse(const struct durin_model_request *req, long status,
                        const char *body, size_t len,
                        struct durin_model_response *out, struct durin_err *err)
{
  json_t *root, *choice, *msg, *calls, *c, *usage, *content;
  size_t i;
  int r = 0;

  memset(out, 0, sizeof(*out));
  /* A streamed answer, unless the server ignored "stream" and sent JSON. */
  if (req->cfg->stream && status >= 200 && status < 300 &&
      !durin__looks_like_json(body, len)) {
    r = parse_stream(body, len, out, err);
    if (r)
      durin_model_response_clear(out);
    return r;
  }
  r = durin__answer_json(status, body, len, &root, err);
  if (r)
    goto out;
  choice = json_array_get(json_object_get(root, "choices"), 0);
  msg = json_object_get(choice, "message");
  if (!json_is_object(msg)) {
    r = durin_err_set(err, DURIN_EMODEL,
                      "model response has no choices[0].message");
    goto out;
  }
  content = json_object_get(msg, "content");
  if (json_is_string(content))
    out->text = strdup(json_string_value(content));
  calls = json_object_get(msg, "tool_calls");
  out->calls = calloc(json_array_size(calls) + 1, sizeof(*out->calls));
  json_array_foreach(calls, i, c) {
    json_t *fn = json_object_get(c, "function");
    const char *id = json_string_value(json_object_get(c, "id"));
    const char *name = json_string_value(json_object_get(fn, "name"));
    const char *args = json_string_value(json_object_get(fn, "arguments"));
    struct durin_tool_call *tc = &out->calls[out->ncalls++];
    char gen[32];

    /* Malformed calls are kept and answered with an error by the harness,
     * not dropped: the model must learn what it sent wrong. */
    snprintf(gen, sizeof(gen), "call_%zu", i);
    tc->id = strdup(id ? id : gen);
    tc->name = strdup(name ? name : "");
    tc->args = strdup(args ? args : "");
  }
  usage = durin__usage_object(root, "usage", "usage", err, &r);
  if (r || (r = read_usage(usage, out, err)))
    goto out;
  if (json_is_string(json_object_get(root, "model")))
    out->model = strdup(json_string_value(json_object_get(root, "model")));
  if (json_is_string(json_object_get(choice, "finish_reason")))
    out->finish_reason =
        strdup(json_string_value(json_object_get(choice, "finish_reason")));
out:
  json_decref(root);
  if (r)
    durin_model_response_clear(out);
  return r;
}

const struct durin_provider durin__provider_openai = {
  .name = "openai",
  .build = openai_build,
  .parse = openai_parse,
};
