/*
 * Model providers: the script provider (deterministic replay), the OpenAI
 * Chat Completions provider (OpenAI, vLLM, llama.cpp, Ollama) and the
 * Anthropic Messages provider.
 *
 * A provider is an ops table. Local providers answer a request directly;
 * HTTP providers only build the HTTP request and parse the response, so the
 * transport (libcurl multi on the worker's event loop, lib/worker/uv-http.c)
 * stays outside them and they remain unit-testable without a network.
 *
 * Messages use one neutral JSON shape, close to Chat Completions:
 *   {"role": "user"|"assistant"|"tool", "content": "...",
 *    "tool_calls": [{"id", "name", "arguments"}], "tool_call_id": "..."}
 * Each provider translates it to its wire format.
 */
#ifndef DURIN_MODEL_H
#define DURIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "durin/error.h"
#include "durin/spec.h"
#include "durin/util.h"

struct durin_tool_call {
  char *id;
  char *name;
  char *args; /* the raw argument text the model sent */
};

/*
 * A model's answer. Token counts are whole and >= 0: a provider's usage
 * that is not (negative, fractional, a string, cached above the total) is
 * refused by parse() as a malformed response, never added to the totals.
 */
struct durin_model_response {
  char *text;
  struct durin_tool_call *calls;
  int ncalls;
  /* All input tokens, cached ones included, so budgets and rate limits
   * see the whole prompt. Of them, cache_read_tokens were read from the
   * provider's prompt cache (OpenAI prompt_tokens_details.cached_tokens,
   * Anthropic cache_read_input_tokens) and cache_write_tokens written to
   * it (Anthropic cache_creation_input_tokens); each has its own price. */
  int64_t input_tokens;
  int64_t cache_read_tokens;
  int64_t cache_write_tokens;
  int64_t output_tokens;
  char *model; /* the exact model that answered, if reported */
  char *finish_reason;
};

void durin_model_response_clear(struct durin_model_response *r);
/* Serializes a response for the log and the pending record. */
json_t *durin_model_response_to_json(const struct durin_model_response *r);
int durin_model_response_from_json(json_t *j, struct durin_model_response *r,
                                   struct durin_err *err);

struct durin_model_request {
  const struct durin_model_cfg *cfg;
  const char *system;
  json_t *messages; /* neutral messages, borrowed */
  json_t *tools;    /* [{name, description, parameters}], borrowed */
  int64_t turn;     /* how many model calls the run has committed */
  /* A summary call (a phase's end, a context reset): turn counts the
   * run's summaries, and the script provider answers from
   * model.summaries. */
  int summary;
  /* Wall-clock time (durin_now_ms) by which the call, its retries and
   * their waits must be over: the run's wall-clock budget. 0: none. */
  int64_t deadline_ms;
};

/* An HTTP request built by a provider. Strings owned; see _clear. */
struct durin_http_req {
  char *url;
  char *body;
  char *headers[8]; /* "Name: value", NULL-terminated */
};

void durin_http_req_clear(struct durin_http_req *h);

struct durin_provider {
  const char *name;
  int (*answer)(const struct durin_model_request *req,
                struct durin_model_response *out, struct durin_err *err);
  int (*build)(const struct durin_model_request *req, const char *api_key,
               struct durin_http_req *out, struct durin_err *err);
  int (*parse)(const struct durin_model_request *req, long status,
               const char *body, size_t len, struct durin_model_response *out,
               struct durin_err *err);
};

const struct durin_provider *durin_provider_find(const char *name);

/*
 * Server-sent events (the WHATWG event-stream format): calls cb once per
 * event with its type ("message" when none was given) and its data lines
 * joined by '\n'. Handles LF, CRLF and CR line ends, comments, and a last
 * event without a blank line after it. Stops early if cb returns non-zero
 * and returns that value.
 */
typedef int (*durin_sse_cb)(const char *event, const char *data, void *arg);
int durin_sse_parse(const char *buf, size_t len, durin_sse_cb cb, void *arg);

/* Dollars for a call: the spec's price, else the built-in table, else 0.
 * All input tokens are charged at the uncached input price. */
double durin_model_cost(const struct durin_model_cfg *cfg, int64_t in_tokens,
                        int64_t out_tokens);
/* Dollars for an answer, its cache reads and writes at their own prices. */
double durin_model_response_cost(const struct durin_model_cfg *cfg,
                                 const struct durin_model_response *r);
/*
 * Looks up the built-in price of a model name (longest prefix match),
 * cached-input and cache-write prices included.
 */
int durin_price_lookup(const char *model, struct durin_price *out);
/*
 * The price a call of cfg is charged at, every field filled: the spec's
 * (cache prices it leaves out follow the provider's published ratio to
 * the input price: OpenAI cached input 50%, Anthropic cache reads 10% and
 * writes 125%), else the built-in table. DURIN_ENOTFOUND: no price known.
 */
int durin_price_resolve(const struct durin_model_cfg *cfg,
                        struct durin_price *out);

/*
 * Backoff before retry number attempt (0-based): full jitter over an
 * exponential window (base 500 ms, cap 30 s), or Retry-After when the
 * server sent one (retry_after_ms >= 0). rnd is a uniform value in [0,1).
 */
int64_t durin_backoff_ms(int attempt, int64_t retry_after_ms, double rnd);

/* Parses a Retry-After value into ms from now_ms: delay-seconds or an
 * HTTP-date in any of its three forms (IMF-fixdate, RFC 850, asctime); a
 * date in the past is 0; -1 if unusable. */
int64_t durin_retry_after_parse(const char *v, int64_t now_ms);

/*
 * A provider's rate limit as seen by one worker (see ratelimit.c): at most
 * rpm requests and tpm tokens per minute (0: unlimited).
 */
struct durin_ratelimit {
  double rpm, tpm;
  double req, tok; /* bucket levels */
  int64_t last_ms;
  int64_t blocked_until_ms; /* after a 429 */
};

void durin_ratelimit_init(struct durin_ratelimit *rl, double rpm, double tpm,
                          int64_t now);
/* 0: a request may start now (it is counted); else ms to wait first. */
int64_t durin_ratelimit_take(struct durin_ratelimit *rl, int64_t now);
/* A response used this many tokens. */
void durin_ratelimit_used(struct durin_ratelimit *rl, int64_t tokens);
/* The provider answered 429: hold off for retry_after_ms (-1: unknown). */
void durin_ratelimit_throttled(struct durin_ratelimit *rl, int64_t now,
                               int64_t retry_after_ms);

/*
 * Judges one HTTP attempt of an HTTP provider: r is the transport's result,
 * status and body the response. Returns 0 with out filled, DURIN_ERETRY
 * with why filled when another attempt may succeed (429, 5xx, timeouts,
 * dropped connections, a cut-off stream), or the error that ends the call.
 */
int durin_model_judge(const struct durin_provider *p,
                      const struct durin_model_request *req, int r, long status,
                      const char *body, size_t len,
                      struct durin_model_response *out, char *why,
                      size_t whylen, struct durin_err *err);

#endif
