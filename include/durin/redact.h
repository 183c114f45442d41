/*
 * Redaction: every secret value, and its base64 (standard and URL-safe, at
 * any alignment in a longer encoding), URL-encoded and hex forms, becomes
 * "[secret:NAME]" in text before the model or the log sees it.
 *
 * A redactor is built once per run from the values it may meet and then
 * only read, so threads may share it. Text that arrives in pieces (a
 * tool's output stream) goes through a durin_redact_stream, which holds
 * back the few bytes a value could still straddle.
 */
#ifndef DURIN_REDACT_H
#define DURIN_REDACT_H

#include <stddef.h>

#include "durin/util.h"

/* Values shorter than this are not redacted (they would match everywhere);
 * durin_redactor_add says so. */
#define DURIN_REDACT_MIN 6

struct durin_redactor;

struct durin_redactor *durin_redactor_new(void);
void durin_redactor_free(struct durin_redactor *r);
/* Adds value (len bytes) under name: 0, DURIN_EINVAL if it is too short to
 * redact, DURIN_ENOMEM. */
int durin_redactor_add(struct durin_redactor *r, const char *name,
                       const void *value, size_t len);
/* The longest form added (0: none). */
size_t durin_redactor_longest(const struct durin_redactor *r);

/* Appends in[0..len) to out with every form replaced; *hits (may be NULL)
 * gains how many were. */
int durin_redact(const struct durin_redactor *r, const char *in, size_t len,
                 struct durin_buf *out, size_t *hits);

/* Redaction of text that comes in pieces. */
struct durin_redact_stream {
  const struct durin_redactor *r;
  struct durin_buf held; /* what a form may still continue into */
};

void durin_redact_stream_init(struct durin_redact_stream *s,
                              const struct durin_redactor *r);
/* Appends to out what of held + in can no longer be part of a form (all of
 * it when last); the rest waits for the next piece. */
int durin_redact_stream_add(struct durin_redact_stream *s, const char *in,
                            size_t len, int last, struct durin_buf *out,
                            size_t *hits);
void durin_redact_stream_release(struct durin_redact_stream *s);

#endif
