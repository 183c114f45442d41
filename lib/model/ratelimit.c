/*
 * Per-provider rate limits: two token buckets, requests and tokens per
 * minute, each holding at most one minute's worth. A request takes one
 * request token and needs a positive token balance; a response pays for
 * the tokens it used (the balance may go negative, which holds the next
 * requests back). A 429 empties both buckets and blocks until the
 * server's Retry-After (or a default), so the limiter learns the real
 * limit from the provider.
 */
#include <string.h>

#include "durin/model.h"

static void refill(struct durin_ratelimit *rl, int64_t now)
{
  double dt = (double)(now - rl->last_ms);

  if (dt <= 0)
    return;
  rl->last_ms = now;
  if (rl->rpm > 0) {
    rl->req += dt * rl->rpm / 60000.0;
    if (rl->req > rl->rpm)
      rl->req = rl->rpm;
  }
  if (rl->tpm > 0) {
    rl->tok += dt * rl->tpm / 60000.0;
    if (rl->tok > rl->tpm)
      rl->tok = rl->tpm;
  }
}

void durin_ratelimit_init(struct durin_ratelimit *rl, double rpm, double tpm,
                          int64_t now)
{
  memset(rl, 0, sizeof(*rl));
  rl->rpm = rpm;
  rl->tpm = tpm;
  rl->req = rpm;
  rl->tok = tpm;
  rl->last_ms = now;
}

int64_t durin_ratelimit_take(struct durin_ratelimit *rl, int64_t now)
{
  int64_t wait = 0;

  if (now < rl->blocked_until_ms)
    return rl->blocked_until_ms - now;
  refill(rl, now);
  if (rl->rpm > 0 && rl->req < 1.0)
    wait = (int64_t)((1.0 - rl->req) * 60000.0 / rl->rpm) + 1;
  if (rl->tpm > 0 && rl->tok <= 0) {
    int64_t w = (int64_t)((1.0 - rl->tok) * 60000.0 / rl->tpm) + 1;

    if (w > wait)
      wait = w;
  }
  if (wait)
    return wait;
  if (rl->rpm > 0)
    rl->req -= 1.0;
  return 0;
}

void durin_ratelimit_used(struct durin_ratelimit *rl, int64_t tokens)
{
  if (rl->tpm > 0)
    rl->tok -= (double)tokens;
}

void durin_ratelimit_throttled(struct durin_ratelimit *rl, int64_t now,
                               int64_t retry_after_ms)
{
  int64_t until = now + (retry_after_ms >= 0 ? retry_after_ms : 1000);

  if (until > rl->blocked_until_ms)
    rl->blocked_until_ms = until;
  rl->req = 0;
  if (rl->tok > 0)
    rl->tok = 0;
}
