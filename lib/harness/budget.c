/*
 * Budgets: checked before every model call and every tool call.
 *
 * A budget is never crossed by a call it let through: before a model call
 * the harness asks durin_budget_next_call() whether the call could cross
 * the token or dollar budget at its worst (what it sends, estimated, plus
 * a full max_tokens answer at the run's pinned prices, the input at the
 * dearer of the input and cache-write prices), and refuses it if so. Checking
 * only what was already spent (the first version) let the last call overshoot
 * by a whole call.
 */
#include <stdio.h>

#include "durin/harness.h"

int durin_budget_exceeded(const struct durin_budget *b,
                          const struct durin_usage *u, int64_t elapsed_ms,
                          int before_tool, char *why, size_t whylen)
{
  int64_t tokens = u->input_tokens + u->output_tokens;

  if (!before_tool && b->steps && u->steps >= b->steps) {
    snprintf(why, whylen, "step budget of %lld used up", (long long)b->steps);
    return 1;
  }
  if (before_tool && b->tool_calls && u->tool_calls >= b->tool_calls) {
    snprintf(why, whylen, "tool-call budget of %lld used up",
             (long long)b->tool_calls);
    return 1;
  }
  if (b->tokens && tokens > b->tokens) {
    snprintf(why, whylen, "token budget exceeded: %lld of %lld",
             (long long)tokens, (long long)b->tokens);
    return 1;
  }
  if (b->dollars > 0 && u->cost_usd > b->dollars) {
    snprintf(why, whylen, "dollar budget exceeded: $%.4f of $%.4f", u->cost_usd,
             b->dollars);
    return 1;
  }
  return durin_budget_wall_clock_over(b, elapsed_ms, why, whylen);
}

int durin_budget_wall_clock_over(const struct durin_budget *b,
                                 int64_t elapsed_ms, char *why, size_t whylen)
{
  if (!b->wall_clock_ms || elapsed_ms < b->wall_clock_ms)
    return 0;
  snprintf(why, whylen, "wall-clock budget of %llds used up",
           (long long)(b->wall_clock_ms / 1000));
  return 1;
}

/*
 * Tokenizers give English prose about 4 bytes a token and code or JSON
 * about 3; a third of the bytes overcounts both. When the last call's
 * real count shows a denser text (other scripts, random data), that
 * ratio wins: the window mostly grows by appending, so it predicts the
 * next request well.
 */
int64_t durin_budget_input_tokens(size_t request_bytes, int64_t last_tokens,
                                  size_t last_bytes)
{
  int64_t est = (int64_t)(request_bytes + 2) / 3;

  if (last_tokens > 0 && last_bytes > 0) {
    double r = (double)last_tokens * (double)request_bytes / (double)last_bytes;

    if (r > (double)est)
      est = (int64_t)r + 1;
  }
  return est;
}

int durin_budget_next_call(const struct durin_budget *b,
                           const struct durin_model_cfg *cfg,
                           const struct durin_usage *u, int64_t in_tokens,
                           char *why, size_t whylen)
{
  int64_t out = cfg->max_tokens ? cfg->max_tokens : DURIN_BUDGET_MAX_TOKENS;
  int64_t used = u->input_tokens + u->output_tokens;

  if (b->tokens && used + in_tokens + out > b->tokens) {
    snprintf(why, whylen,
             "token budget of %lld would not cover the next model call: %lld "
             "used, up to %lld more (about %lld in, max_tokens %lld)",
             (long long)b->tokens, (long long)used,
             (long long)(in_tokens + out), (long long)in_tokens,
             (long long)out);
    return 1;
  }
  if (b->dollars > 0) {
    struct durin_price p;
    double next = 0, in_price;

    /* At worst every input token is written to the provider's prompt
     * cache, which costs more than plain input (Anthropic: 125%). */
    if (!durin_price_resolve(cfg, &p)) {
      in_price = p.input_per_mtok > p.cache_write_per_mtok ?
                     p.input_per_mtok :
                     p.cache_write_per_mtok;
      next = ((double)in_tokens * in_price + (double)out * p.output_per_mtok) /
             1e6;
    }

    if (u->cost_usd + next > b->dollars) {
      snprintf(why, whylen,
               "dollar budget of $%.4f would not cover the next model call: "
               "$%.4f spent, up to $%.4f more (about %lld tokens in, "
               "max_tokens %lld)",
               b->dollars, u->cost_usd, next, (long long)in_tokens,
               (long long)out);
      return 1;
    }
  }
  return 0;
}
