/* Budgets: checked before every model call and every tool call. */
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
  if (b->wall_clock_ms && elapsed_ms >= b->wall_clock_ms) {
    snprintf(why, whylen, "wall-clock budget of %llds used up",
             (long long)(b->wall_clock_ms / 1000));
    return 1;
  }
  return 0;
}
