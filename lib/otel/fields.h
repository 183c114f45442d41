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
  FLD_MODEL,
  FLD_FINISH_REASON,
  FLD_CALL_ID,
  FLD_NAME,
  FLD_EFFECT,
  FLD_DECISION,
  FLD_ORIGIN,
  FLD_RULE,
  FLD_ID,
  FLD_TOOL,
  FLD_BY,
  FLD_REASON,
  FLD_ACTION,
  FLD_STATUS,
  FLD_ERROR,
  FLD_ROLE,
  /* numbers */
  FLD_INPUT_TOKENS,
  FLD_OUTPUT_TOKENS,
  FLD_CACHE_READ_TOKENS,
  FLD_CACHE_WRITE_TOKENS,
  FLD_RETRIES,
  FLD_DURATION_MS,
  FLD_EXIT_CODE,
  FLD_ATTEMPT,
  FLD_COST_USD,
  /* booleans */
  FLD_OK,
  FLD_TIMED_OUT,
  FLD_REUSED,
  FLD_COUNT
};

struct fields {
  uint32_t has;             /* bit f: the member is there, of its type */
  const char *s[FLD_COUNT]; /* strings: into text */
  double n[FLD_COUNT];      /* numbers and booleans (1/0) */
  char text[2048];          /* the strings, NUL-terminated; longer: cut */
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
