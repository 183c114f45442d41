/*
 * Provider registry, the neutral response format, backoff, and the
 * judgement of one HTTP attempt (the transport is the worker's,
 * lib/worker/uv-http.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <sodium.h>

#include "durin/model.h"
#include "model/providers.h"

static const struct durin_provider *const providers[] = {
  &durin__provider_script,
  &durin__provider_openai,
  &durin__provider_anthropic,
  NULL,
};

const struct durin_provider *durin_provider_find(const char *name)
{
  int i;

  for (i = 0; providers[i]; i++)
    if (!strcmp(providers[i]->name, name))
      return providers[i];
  return NULL;
}

void durin_model_response_clear(struct durin_model_response *r)
{
  int i;

  if (!r)
    return;
  free(r->text);
  for (i = 0; i < r->ncalls; i++) {
    free(r->calls[i].id);
    free(r->calls[i].name);
    free(r->calls[i].args);
  }
  free(r->calls);
  free(r->model);
  free(r->finish_reason);
  memset(r, 0, sizeof(*r));
}

void durin_http_req_clear(struct durin_http_req *h)
{
  int i;

  free(h->url);
  free(h->body);
  /* A header may carry the API key: wiped, not just freed. */
  for (i = 0; i < 8; i++) {
    if (h->headers[i])
      sodium_memzero(h->headers[i], strlen(h->headers[i]));
    free(h->headers[i]);
  }
  memset(h, 0, sizeof(*h));
}

json_t *durin_model_response_to_json(const struct durin_model_response *r)
{
  json_t *j = json_object(), *calls = json_array();
  int i;

  json_object_set_new(j, "text", r->text ? json_string(r->text) : json_null());
  for (i = 0; i < r->ncalls; i++)
    json_array_append_new(
        calls, json_pack("{s:s,s:s,s:s}", "id", r->calls[i].id, "name",
                         r->calls[i].name, "arguments", r->calls[i].args));
  json_object_set_new(j, "tool_calls", calls);
  json_object_set_new(j, "input_tokens", json_integer(r->input_tokens));
  json_object_set_new(j, "output_tokens", json_integer(r->output_tokens));
  /* Only when there were any: most answers have none, and older readers
   * of the log need not learn them. */
  if (r->cache_read_tokens)
    json_object_set_new(j, "cache_read_tokens",
                        json_integer(r->cache_read_tokens));
  if (r->cache_write_tokens)
    json_object_set_new(j, "cache_write_tokens",
                        json_integer(r->cache_write_tokens));
  if (r->model)
    json_object_set_new(j, "model", json_string(r->model));
  if (r->finish_reason)
    json_object_set_new(j, "finish_reason", json_string(r->finish_reason));
  return j;
}

static char *dup_or_null(json_t *v)
{
  return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

int durin_model_response_from_json(json_t *j, struct durin_model_response *r,
                                   struct durin_err *err)
{
  json_t *calls = json_object_get(j, "tool_calls"), *c;
  size_t i;

  memset(r, 0, sizeof(*r));
  if (!json_is_object(j))
    return durin_err_set(err, DURIN_EPARSE, "stored response is not an object");
  r->text = dup_or_null(json_object_get(j, "text"));
  r->model = dup_or_null(json_object_get(j, "model"));
  r->finish_reason = dup_or_null(json_object_get(j, "finish_reason"));
  r->input_tokens = json_integer_value(json_object_get(j, "input_tokens"));
  r->output_tokens = json_integer_value(json_object_get(j, "output_tokens"));
  r->cache_read_tokens =
      json_integer_value(json_object_get(j, "cache_read_tokens"));
  r->cache_write_tokens =
      json_integer_value(json_object_get(j, "cache_write_tokens"));
  r->calls = calloc(json_array_size(calls) + 1, sizeof(*r->calls));
  json_array_foreach(calls, i, c) {
    struct durin_tool_call *tc = &r->calls[r->ncalls++];

    tc->id = dup_or_null(json_object_get(c, "id"));
    tc->name = dup_or_null(json_object_get(c, "name"));
    tc->args = dup_or_null(json_object_get(c, "arguments"));
    if (!tc->id || !tc->name || !tc->args) {
      durin_model_response_clear(r);
      return durin_err_set(err, DURIN_EPARSE,
                           "stored tool call %zu is "
                           "incomplete",
                           i);
    }
  }
  return 0;
}

int64_t durin_backoff_ms(int attempt, int64_t retry_after_ms, double rnd)
{
  const int64_t base = 500, cap = 30000;
  int64_t window;

  if (retry_after_ms >= 0)
    return retry_after_ms > 10 * 60 * 1000 ? 10 * 60 * 1000 : retry_after_ms;
  if (attempt > 16)
    attempt = 16;
  window = base << attempt;
  if (window > cap)
    window = cap;
  /* Full jitter, but never less than a tenth of the window. */
  return window / 10 + (int64_t)(rnd * (double)(window - window / 10));
}

int64_t durin_retry_after_parse(const char *v, int64_t now_ms)
{
  char *end;
  long secs;
  time_t at;

  if (!v || !*v)
    return -1;
  while (*v == ' ')
    v++;
  if (*v >= '0' && *v <= '9') {
    secs = strtol(v, &end, 10);
    if (*end == '\0' || *end == '\r' || *end == ' ')
      return (int64_t)secs * 1000;
    return -1;
  }
  /* An HTTP-date: IMF-fixdate, RFC 850 or asctime, which a recipient must
   * all accept (RFC 9110 5.6.7). Each starts with a day name; libcurl's
   * date parser (the one behind CURLINFO_RETRY_AFTER) reads all three
   * without the locale that strptime's %a and %b would depend on. */
  if (!((*v >= 'A' && *v <= 'Z') || (*v >= 'a' && *v <= 'z')))
    return -1;
  at = curl_getdate(v, NULL);
  if (at == -1)
    return -1;
  return (int64_t)at * 1000 > now_ms ? (int64_t)at * 1000 - now_ms : 0;
}

int durin_model_judge(const struct durin_provider *p,
                      const struct durin_model_request *req, int r, long status,
                      const char *body, size_t len,
                      struct durin_model_response *out, char *why,
                      size_t whylen, struct durin_err *err)
{
  if (!r && status >= 200 && status < 300) {
    r = p->parse(req, status, body, len, out, err);
    /* A stream cut short is as transient as a dropped connection. */
    if (r != DURIN_ERETRY)
      return r;
  }
  if (!r && status != 429 && status < 500) {
    /* 4xx other than 429: retrying cannot help. */
    r = p->parse(req, status, body, len, out, err);
    if (!r) {
      durin_model_response_clear(out);
      r = durin_err_set(err, DURIN_EMODEL, "model returned HTTP %ld", status);
    }
    return r;
  }
  if (r && r != DURIN_ERETRY && r != DURIN_ETIMEDOUT)
    return r;
  if (r)
    snprintf(why, whylen, "%s", err ? err->msg : "transport error");
  else
    snprintf(why, whylen, "HTTP %ld", status);
  return DURIN_ERETRY;
}
