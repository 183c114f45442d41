/*
 * Anthropic Messages: POST {base_url}/v1/messages with "x-api-key" and
 * "anthropic-version" (model.api_version, default 2023-06-01). base_url is
 * the bare host, as the official SDKs and ANTHROPIC_BASE_URL take it; one
 * that already ends in /v1 (durin's first default) is accepted too, so
 * both spellings reach the same endpoint. The system prompt is a top-level
 * field, max_tokens is required, tools are {name, description, input_schema}.
 * Assistant turns are content blocks ("text", "tool_use" with id, name and
 * an input object); tool results go back in a user turn as "tool_result"
 * blocks. Roles alternate, so neighbouring turns of one role are merged.
 * The answer's usage counts input_tokens apart from the prompt cache's
 * cache_read_input_tokens and cache_creation_input_tokens: the input is
 * their sum.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/model.h"
#include "model/providers.h"

/* The API version this provider speaks unless model.api_version says. */
#define ANTHROPIC_VERSION "2023-06-01"

/* The path after base_url: the SDKs append /v1/messages to the host. */
static const char *messages_path(const char *base_url)
{
  size_t n = strlen(base_url);

  while (n > 0 && base_url[n - 1] == '/')
    n--;
  if (n >= 3 && !strncmp(base_url + n - 3, "/v1", 3))
    return "/messages";
  return "/v1/messages";
}

/* Appends blocks to the last wire message if it has the same role. */
static void push(json_t *out, const char *role, json_t *blocks)
{
  json_t *last = json_array_get(out, json_array_size(out) - 1);

  if (last && !strcmp(json_string_value(json_object_get(last, "role")), role))
    json_array_extend(json_object_get(last, "content"), blocks);
  else
    json_array_append_new(
        out, json_pack("{s:s,s:O}", "role", role, "content", blocks));
  json_decref(blocks);
}

static json_t *wire_messages(const struct durin_model_request *req)
{
  json_t *out = json_array(), *m;
  size_t i;

  json_array_foreach(req->messages, i, m) {
    const char *role = json_string_value(json_object_get(m, "role"));
    const char *content = json_string_value(json_object_get(m, "content"));
    json_t *blocks = json_array(), *calls = json_object_get(m, "tool_calls");
    json_t *c;
    size_t j;

    if (!strcmp(role, "tool")) {
      json_array_append_new(
          blocks, json_pack("{s:s,s:O,s:s}", "type", "tool_result",
                            "tool_use_id", json_object_get(m, "tool_call_id"),
                            "content", content ? content : ""));
      push(out, "user", blocks);
      continue;
    }
    if (content && *content)
      json_array_append_new(
          blocks, json_pack("{s:s,s:s}", "type", "text", "text", content));
    json_array_foreach(calls, j, c) {
      json_t *input = json_loads(
          json_string_value(json_object_get(c, "arguments")), 0, NULL);

      /* A call whose arguments were not an object was answered with an
       * error; the API still needs an object here. */
      if (!json_is_object(input)) {
        json_decref(input);
        input = json_object();
      }
      json_array_append_new(
          blocks, json_pack("{s:s,s:O,s:O,s:o}", "type", "tool_use", "id",
                            json_object_get(c, "id"), "name",
                            json_object_get(c, "name"), "input", input));
    }
    if (!json_array_size(blocks))
      json_array_append_new(
          blocks, json_pack("{s:s,s:s}", "type", "text", "text", "(no text)"));
    push(out, !strcmp(role, "assistant") ? "assistant" : "user", blocks);
  }
  return out;
}

static int anthropic_build(const struct durin_model_request *req,
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
        tools, json_pack("{s:O,s:O,s:O}", "name", json_object_get(t, "name"),
                         "description", json_object_get(t, "description"),
                         "input_schema", json_object_get(t, "parameters")));
  body = json_pack("{s:s,s:I,s:o}", "model", cfg->name, "max_tokens",
                   (json_int_t)(cfg->max_tokens ? cfg->max_tokens : 4096),
                   "messages", wire_messages(req));
  if (req->system)
    json_object_set_new(body, "system", json_string(req->system));
  if (cfg->stream)
    json_object_set_new(body, "stream", json_true());
  if (json_array_size(tools))
    json_object_set_new(body, "tools", tools);
  else
    json_decref(tools);
  r = durin__http_req_fill(out, cfg->base_url, messages_path(cfg->base_url),
                           body, err);
  if (r)
    return r;
  snprintf(hdr, sizeof(hdr), "anthropic-version: %s",
           cfg->api_version ? cfg->api_version : ANTHROPIC_VERSION);
  out->headers[1] = strdup(hdr);
  if (api_key && *api_key) {
    snprintf(hdr, sizeof(hdr), "x-api-key: %s", api_key);
    out->headers[2] = strdup(hdr);
  }
  return 0;
}

/* The four counts of a Messages "usage". */
struct usage {
  int64_t in, read, write, out;
};

/* Takes the counts usage has (may be NULL); absent or null ones keep
 * their value, since a stream's message_delta may repeat only some. */
static int usage_take(json_t *usage, struct usage *u, struct durin_err *err)
{
  static const char *const keys[] = { "input_tokens", "cache_read_input_tokens",
                                      "cache_creation_input_tokens",
                                      "output_tokens" };
  int64_t *dst[] = { &u->in, &u->read, &u->write, &u->out };
  int i, r;

  for (i = 0; i < 4; i++)
    if (!json_is_null(json_object_get(usage, keys[i])) &&
        json_object_get(usage, keys[i]) &&
        (r = durin__usage_count(usage, "usage", keys[i], dst[i], err)))
      return r;
  return 0;
}

static void usage_give(const struct usage *u, struct durin_model_response *out)
{
  out->input_tokens = u->in + u->read + u->write;
  out->cache_read_tokens = u->read;
  out->cache_write_tokens = u->write;
  out->output_tokens = u->out;
}

/* A streamed answer, block by block (content_block_start / _delta). */
struct stream {
  struct durin_buf text;
  struct durin_buf input[64]; /* partial_json of each tool_use block */
  char *ids[64];
  char *names[64];
  int is_tool[64];
  int nblocks;
  struct usage usage;
  char *model;
  char *stop;
  char err[256];
  int done;
};

static int take_stream_usage(struct stream *st, json_t *usage)
{
  struct durin_err err = { 0 };

  if (!usage_take(usage, &st->usage, &err))
    return 0;
  snprintf(st->err, sizeof(st->err), "%.200s", err.msg);
  return 1;
}

static int on_event(const char *event, const char *data, void *arg)
{
  struct stream *st = arg;
  json_t *j = json_loads(data, 0, NULL), *b, *d;
  json_int_t idx = json_integer_value(json_object_get(j, "index"));
  int r = 0;

  if (!json_is_object(j)) {
    json_decref(j);
    snprintf(st->err, sizeof(st->err), "event '%s' is not JSON", event);
    return 1;
  }
  if (!strcmp(event, "error")) {
    const char *m = json_string_value(
        json_object_get(json_object_get(j, "error"), "message"));

    snprintf(st->err, sizeof(st->err), "error in the stream: %s",
             m ? m : "(no message)");
    r = 1;
  } else if (!strcmp(event, "message_start")) {
    json_t *msg = json_object_get(j, "message");

    durin__json_set_str(&st->model, json_object_get(msg, "model"));
    r = take_stream_usage(st, json_object_get(msg, "usage"));
  } else if (!strcmp(event, "content_block_start") && idx >= 0 && idx < 64) {
    b = json_object_get(j, "content_block");
    while (st->nblocks <= idx)
      durin_buf_init(&st->input[st->nblocks++], 0);
    if (!strcmp(json_string_value(json_object_get(b, "type")) ?: "",
                "tool_use")) {
      st->is_tool[idx] = 1;
      durin__json_set_str(&st->ids[idx], json_object_get(b, "id"));
      durin__json_set_str(&st->names[idx], json_object_get(b, "name"));
    } else if (json_is_string(json_object_get(b, "text"))) {
      durin_buf_adds(&st->text, json_string_value(json_object_get(b, "text")));
    }
  } else if (!strcmp(event, "content_block_delta") && idx >= 0 &&
             idx < st->nblocks) {
    d = json_object_get(j, "delta");
    if (json_is_string(json_object_get(d, "text")))
      durin_buf_adds(&st->text, json_string_value(json_object_get(d, "text")));
    if (json_is_string(json_object_get(d, "partial_json")))
      durin_buf_adds(&st->input[idx],
                     json_string_value(json_object_get(d, "partial_json")));
  } else if (!strcmp(event, "message_delta")) {
    durin__json_set_str(
        &st->stop, json_object_get(json_object_get(j, "delta"), "stop_reason"));
    /* Its counts are cumulative: they replace message_start's. */
    r = take_stream_usage(st, json_object_get(j, "usage"));
  } else if (!strcmp(event, "message_stop")) {
    st->done = 1;
  }
  json_decref(j);
  return r;
}

static int parse_stream(const char *body, size_t len,
                        struct durin_model_response *out, struct durin_err *err)
{
  struct stream st;
  int i, r = 0;

  memset(&st, 0, sizeof(st));
  durin_buf_init(&st.text, 0);
  if (durin_sse_parse(body, len, on_event, &st)) {
    r = durin_err_set(err, DURIN_EMODEL, "model stream: %s", st.err);
    goto out;
  }
  if (!st.done) {
    r = durin_err_set(err, DURIN_ERETRY, "model stream ended early");
    goto out;
  }
  if (st.text.len)
    out->text = durin_buf_detach(&st.text, NULL);
  out->calls = calloc((size_t)st.nblocks + 1, sizeof(*out->calls));
  for (i = 0; i < st.nblocks; i++) {
    struct durin_tool_call *tc;

    if (!st.is_tool[i])
      continue;
    tc = &out->calls[out->ncalls++];
    tc->id = strdup(st.ids[i] ? st.ids[i] : "toolu");
    tc->name = strdup(st.names[i] ? st.names[i] : "");
    /* A tool with no arguments streams no partial_json at all. */
    tc->args =
        st.input[i].len ? durin_buf_detach(&st.input[i], NULL) : strdup("{}");
  }
  usage_give(&st.usage, out);
  out->model = st.model;
  st.model = NULL;
  out->finish_reason = st.stop;
  st.stop = NULL;
out:
  durin_buf_release(&st.text);
  for (i = 0; i < st.nblocks; i++) {
    durin_buf_release(&st.input[i]);
    free(st.ids[i]);
    free(st.names[i]);
  }
  free(st.model);
  free(st.stop);
  return r;
}

static int anthropic_parse(const struct durin_model_request *req, long status,
                           const char *body, size_t len,
                           struct durin_model_response *out,
                           struct durin_err *err)
{
  json_t *root, *content, *b, *usage;
  struct usage counts = { 0, 0, 0, 0 };
  struct durin_buf text;
  size_t i;
  int r = 0;

  memset(out, 0, sizeof(*out));
  if (req->cfg->stream && status >= 200 && status < 300 &&
      !durin__looks_like_json(body, len)) {
    r = parse_stream(body, len, out, err);
    if (r)
      durin_model_response_clear(out);
    return r;
  }
  durin_buf_init(&text, 0);
  r = durin__answer_json(status, body, len, &root, err);
  if (r)
    goto out;
  content = json_object_get(root, "content");
  if (!json_is_array(content)) {
    r = durin_err_set(err, DURIN_EMODEL, "model response has no content");
    goto out;
  }
  out->calls = calloc(json_array_size(content) + 1, sizeof(*out->calls));
  json_array_foreach(content, i, b) {
    const char *type = json_string_value(json_object_get(b, "type"));

    if (type && !strcmp(type, "text")) {
      const char *t = json_string_value(json_object_get(b, "text"));

      if (t) {
        if (text.len)
          durin_buf_adds(&text, "\n");
        durin_buf_adds(&text, t);
      }
    } else if (type && !strcmp(type, "tool_use")) {
      struct durin_tool_call *tc = &out->calls[out->ncalls++];
      const char *id = json_string_value(json_object_get(b, "id"));
      const char *name = json_string_value(json_object_get(b, "name"));
      json_t *input = json_object_get(b, "input");
      char gen[32];

      snprintf(gen, sizeof(gen), "toolu_%zu", i);
      tc->id = strdup(id ? id : gen);
      tc->name = strdup(name ? name : "");
      tc->args = input ? json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY) :
                         strdup("");
    }
    /* Other blocks (thinking, ...) are not part of the conversation we
     * keep; they are dropped here. */
  }
  if (text.len)
    out->text = durin_buf_detach(&text, NULL);
  usage = durin__usage_object(root, "usage", "usage", err, &r);
  if (r || (r = usage_take(usage, &counts, err)))
    goto out;
  usage_give(&counts, out);
  if (json_is_string(json_object_get(root, "model")))
    out->model = strdup(json_string_value(json_object_get(root, "model")));
  if (json_is_string(json_object_get(root, "stop_reason")))
    out->finish_reason =
        strdup(json_string_value(json_object_get(root, "stop_reason")));
out:
  durin_buf_release(&text);
  json_decref(root);
  if (r)
    durin_model_response_clear(out);
  return r;
}

const struct durin_provider durin__provider_anthropic = {
  .name = "anthropic",
  .build = anthropic_build,
  .parse = anthropic_parse,
};
