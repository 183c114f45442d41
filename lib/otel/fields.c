/* Picking an event's members for its trace (lib/otel/fields.h). */
#include <string.h>

#include <yajl/yajl_parse.h>

#include "otel/fields.h"

static const char *const names[FLD_COUNT] = {
  [FLD_MODEL] = "model",
  [FLD_FINISH_REASON] = "finish_reason",
  [FLD_CALL_ID] = "call_id",
  [FLD_NAME] = "name",
  [FLD_EFFECT] = "effect",
  [FLD_DECISION] = "decision",
  [FLD_ORIGIN] = "origin",
  [FLD_RULE] = "rule",
  [FLD_ID] = "id",
  [FLD_TOOL] = "tool",
  [FLD_BY] = "by",
  [FLD_REASON] = "reason",
  [FLD_ACTION] = "action",
  [FLD_STATUS] = "status",
  [FLD_ERROR] = "error",
  [FLD_ROLE] = "role",
  [FLD_INPUT_TOKENS] = "input_tokens",
  [FLD_OUTPUT_TOKENS] = "output_tokens",
  [FLD_CACHE_READ_TOKENS] = "cache_read_tokens",
  [FLD_CACHE_WRITE_TOKENS] = "cache_write_tokens",
  [FLD_RETRIES] = "retries",
  [FLD_DURATION_MS] = "duration_ms",
  [FLD_EXIT_CODE] = "exit_code",
  [FLD_ATTEMPT] = "attempt",
  [FLD_COST_USD] = "cost_usd",
  [FLD_OK] = "ok",
  [FLD_TIMED_OUT] = "timed_out",
  [FLD_REUSED] = "reused",
};

struct scan {
  struct fields *f;
  int depth; /* 1: the object's own members */
  int key;   /* the member whose value comes next; -1: one not read */
};

/* The value of a top-level member: the field it fills, or -1. */
static int member(struct scan *s, int first, int last)
{
  int k = s->depth == 1 ? s->key : -1;

  return k >= first && k <= last ? k : -1;
}

static int on_null(void *arg)
{
  (void)arg;
  return 1;
}

static int on_bool(void *arg, int v)
{
  struct scan *s = arg;
  int k = member(s, FLD_OK, FLD_REUSED);

  if (k >= 0) {
    s->f->n[k] = v ? 1 : 0;
    s->f->has |= 1u << k;
  }
  return 1;
}

static int on_number(void *arg, double v)
{
  struct scan *s = arg;
  int k = member(s, FLD_INPUT_TOKENS, FLD_COST_USD);

  if (k >= 0) {
    s->f->n[k] = v;
    s->f->has |= 1u << k;
  }
  return 1;
}

static int on_integer(void *arg, long long v)
{
  return on_number(arg, (double)v);
}

static int on_string(void *arg, const unsigned char *v, size_t len)
{
  struct scan *s = arg;
  struct fields *f = s->f;
  int k = member(s, FLD_MODEL, FLD_ROLE);
  size_t room = sizeof(f->text) - f->used;

  if (k < 0 || room == 0)
    return 1;
  if (len >= room)
    len = room - 1;
  memcpy(f->text + f->used, v, len);
  f->text[f->used + len] = 0;
  f->s[k] = f->text + f->used;
  f->used += len + 1;
  f->has |= 1u << k;
  return 1;
}

static int on_key(void *arg, const unsigned char *k, size_t len)
{
  struct scan *s = arg;
  int i;

  s->key = -1;
  if (s->depth != 1 || !len)
    return 1;
  for (i = 0; i < FLD_COUNT; i++)
    if (names[i][0] == k[0] && !strncmp(names[i], (const char *)k, len) &&
        !names[i][len]) {
      s->key = i;
      break;
    }
  return 1;
}

static int on_open(void *arg)
{
  struct scan *s = arg;

  s->depth++;
  return 1;
}

static int on_close(void *arg)
{
  struct scan *s = arg;

  s->depth--;
  return 1;
}

static const yajl_callbacks callbacks = {
  on_null, on_bool, on_integer, on_number, NULL,     on_string,
  on_open, on_key,  on_close,   on_open,   on_close,
};

int durin__otel_fields(const char *data, size_t len, struct fields *out)
{
  struct scan s = { out, 0, -1 };
  yajl_handle h;
  int ok;

  out->has = 0;
  out->used = 0;
  /* An object, or nothing of it is read. */
  while (len &&
         (*data == ' ' || *data == '\n' || *data == '\t' || *data == '\r'))
    data++, len--;
  if (!len || *data != '{')
    return -1;
  if (!(h = yajl_alloc(&callbacks, NULL, &s)))
    return -1;
  ok = yajl_parse(h, (const unsigned char *)data, len) == yajl_status_ok &&
       yajl_complete_parse(h) == yajl_status_ok;
  yajl_free(h);
  return ok ? 0 : -1;
}
