/*
 * The members of an event's data a trace reads, without building the
 * document: a streaming parse (yajl) picks the top-level scalars named in
 * enum field and skips the rest. A step's trace costs two events parsed,
 * and jansson's tree costs six times the CPU of this (bench/otel).
 */
#ifndef DURIN_OTEL_FIELDS_H
#define DURIN_OTEL_FIELDS_H

#include <stddef.h>
#include <stdint.h>

enum field {
  /* strings */
  F_MODEL,
  F_FINISH_REASON,
  F_CALL_ID,
  F_NAME,
  F_EFFECT,
  F_DECISION,
  F_ORIGIN,
  F_RULE,
  F_ID,
  F_TOOL,
  F_BY,
  F_REASON,
  F_ACTION,
  F_STATUS,
  F_ERROR,
  /* numbers */
  F_INPUT_TOKENS,
  F_OUTPUT_TOKENS,
  F_CACHE_READ_TOKENS,
  F_CACHE_WRITE_TOKENS,
  F_RETRIES,
  F_DURATION_MS,
  F_EXIT_CODE,
  F_ATTEMPT,
  F_COST_USD,
  /* booleans */
  F_OK,
  F_TIMED_OUT,
  F_REUSED,
  F_COUNT
};

struct fields {
  uint32_t has;           /* bit f: the member is there, of its type */
  const char *s[F_COUNT]; /* strings: into text */
  double n[F_COUNT];      /* numbers and booleans (1/0) */
  char text[2048];        /* the strings, NUL-terminated; longer: cut */
  size_t used;
};

/* Fills out from data (a JSON object's text); 0, or -1 when it is not
 * one (out then has what came before the error). */
int durin__otel_fields(const char *data, size_t len, struct fields *out);

static inline int fhas(const struct fields *f, enum field k)
{
  return (f->has >> k) & 1;
}
static inline const char *fstr(const struct fields *f, enum field k)
{
  return fhas(f, k) ? f->s[k] : NULL;
}
static inline int64_t fint(const struct fields *f, enum field k)
{
  return fhas(f, k) ? (int64_t)f->n[k] : 0;
}
static inline double fnum(const struct fields *f, enum field k)
{
  return fhas(f, k) ? f->n[k] : 0;
}

#endif
