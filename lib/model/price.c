/*
 * Built-in prices, dollars per million tokens, as published by the
 * providers when this table was written: input, input read from the
 * prompt cache, input written to it, output. OpenAI charges nothing extra
 * to write its cache (so that column is the input price) and discounts
 * reads by model family (gpt-4o and o1 50%, gpt-4.1, o3 and o4-mini 75%,
 * gpt-5 90%); Anthropic's 5-minute cache reads cost 10% of the input price
 * and writes 125%. Users override them per run with model.price in the
 * spec; unknown models cost 0 and `durin show` says the price is unknown.
 */
#include <string.h>

#include "durin/model.h"

static const struct {
  const char *prefix;
  double in, cached, write, out;
} prices[] = {
  { "gpt-5-nano", 0.05, 0.005, 0.05, 0.40 },
  { "gpt-5-mini", 0.25, 0.025, 0.25, 2.00 },
  { "gpt-5", 1.25, 0.125, 1.25, 10.00 },
  { "gpt-4.1-nano", 0.10, 0.025, 0.10, 0.40 },
  { "gpt-4.1-mini", 0.40, 0.10, 0.40, 1.60 },
  { "gpt-4.1", 2.00, 0.50, 2.00, 8.00 },
  { "gpt-4o-mini", 0.15, 0.075, 0.15, 0.60 },
  { "gpt-4o", 2.50, 1.25, 2.50, 10.00 },
  { "o4-mini", 1.10, 0.275, 1.10, 4.40 },
  { "o3-mini", 1.10, 0.55, 1.10, 4.40 },
  { "o3", 2.00, 0.50, 2.00, 8.00 },
  { "o1-mini", 1.10, 0.55, 1.10, 4.40 },
  { "o1", 15.00, 7.50, 15.00, 60.00 },
  { "claude-opus-4", 15.00, 1.50, 18.75, 75.00 },
  { "claude-sonnet-4", 3.00, 0.30, 3.75, 15.00 },
  { "claude-haiku-4", 1.00, 0.10, 1.25, 5.00 },
  { "claude-3-7-sonnet", 3.00, 0.30, 3.75, 15.00 },
  { "claude-3-5-sonnet", 3.00, 0.30, 3.75, 15.00 },
  { "claude-3-5-haiku", 0.80, 0.08, 1.00, 4.00 },
};

int durin_price_lookup(const char *model, struct durin_price *out)
{
  size_t i, best = 0, bestlen = 0;

  for (i = 0; i < sizeof(prices) / sizeof(prices[0]); i++) {
    size_t n = strlen(prices[i].prefix);

    if (!strncmp(model, prices[i].prefix, n) && n > bestlen) {
      best = i;
      bestlen = n;
    }
  }
  if (!bestlen)
    return DURIN_ENOTFOUND;
  memset(out, 0, sizeof(*out));
  out->input_per_mtok = prices[best].in;
  out->cached_input_per_mtok = prices[best].cached;
  out->cache_write_per_mtok = prices[best].write;
  out->output_per_mtok = prices[best].out;
  out->cached_input_set = 1;
  out->cache_write_set = 1;
  out->set = 1;
  return 0;
}

int durin_price_resolve(const struct durin_model_cfg *cfg,
                        struct durin_price *out)
{
  int anthropic = cfg->provider && !strcmp(cfg->provider, "anthropic");

  *out = cfg->price;
  if (!out->set && (!cfg->name || durin_price_lookup(cfg->name, out)))
    return DURIN_ENOTFOUND;
  /* A price given without cache prices (or pinned before durin knew
   * them): the provider's published ratio. OpenAI-compatible servers that
   * cache nothing report no cached tokens, so the ratio costs them
   * nothing. */
  if (!out->cached_input_set)
    out->cached_input_per_mtok = out->input_per_mtok * (anthropic ? 0.1 : 0.5);
  if (!out->cache_write_set)
    out->cache_write_per_mtok = out->input_per_mtok * (anthropic ? 1.25 : 1.0);
  out->cached_input_set = 1;
  out->cache_write_set = 1;
  return 0;
}

double durin_model_cost(const struct durin_model_cfg *cfg, int64_t in_tokens,
                        int64_t out_tokens)
{
  struct durin_price p;

  if (durin_price_resolve(cfg, &p))
    return 0.0;
  return ((double)in_tokens * p.input_per_mtok +
          (double)out_tokens * p.output_per_mtok) /
         1e6;
}

double durin_model_response_cost(const struct durin_model_cfg *cfg,
                                 const struct durin_model_response *r)
{
  int64_t plain =
      r->input_tokens - r->cache_read_tokens - r->cache_write_tokens;
  struct durin_price p;

  if (durin_price_resolve(cfg, &p))
    return 0.0;
  /* The providers refuse answers whose cached counts exceed the input;
   * a stored response from elsewhere is not trusted to be as careful. */
  if (plain < 0)
    plain = 0;
  return ((double)plain * p.input_per_mtok +
          (double)r->cache_read_tokens * p.cached_input_per_mtok +
          (double)r->cache_write_tokens * p.cache_write_per_mtok +
          (double)r->output_tokens * p.output_per_mtok) /
         1e6;
}
