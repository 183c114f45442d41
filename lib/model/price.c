/*
 * Built-in prices, dollars per million tokens (input, output), as published
 * by the providers when this table was written. Users override them per
 * run with model.price in the spec; unknown models cost 0 and `durin show`
 * says the price is unknown.
 */
#include <string.h>

#include "durin/model.h"

static const struct {
  const char *prefix;
  double in, out;
} prices[] = {
  { "gpt-5-nano", 0.05, 0.40 },
  { "gpt-5-mini", 0.25, 2.00 },
  { "gpt-5", 1.25, 10.00 },
  { "gpt-4.1-nano", 0.10, 0.40 },
  { "gpt-4.1-mini", 0.40, 1.60 },
  { "gpt-4.1", 2.00, 8.00 },
  { "gpt-4o-mini", 0.15, 0.60 },
  { "gpt-4o", 2.50, 10.00 },
  { "o4-mini", 1.10, 4.40 },
  { "o3-mini", 1.10, 4.40 },
  { "o3", 2.00, 8.00 },
  { "o1-mini", 1.10, 4.40 },
  { "o1", 15.00, 60.00 },
  { "claude-opus-4", 15.00, 75.00 },
  { "claude-sonnet-4", 3.00, 15.00 },
  { "claude-haiku-4", 1.00, 5.00 },
  { "claude-3-7-sonnet", 3.00, 15.00 },
  { "claude-3-5-sonnet", 3.00, 15.00 },
  { "claude-3-5-haiku", 0.80, 4.00 },
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
  out->input_per_mtok = prices[best].in;
  out->output_per_mtok = prices[best].out;
  out->set = 1;
  return 0;
}

double durin_model_cost(const struct durin_model_cfg *cfg, int64_t in_tokens,
                        int64_t out_tokens)
{
  struct durin_price p = cfg->price;

  if (!p.set && (!cfg->name || durin_price_lookup(cfg->name, &p)))
    return 0.0;
  return ((double)in_tokens * p.input_per_mtok +
          (double)out_tokens * p.output_per_mtok) /
         1e6;
}
