/*
 * durin error codes.
 *
 * Every fallible function in libdurin returns an int: 0 on success or one of
 * the negative DURIN_E* codes below. Callers that want text pass a
 * struct durin_err, which receives a human-readable message on failure and
 * is left untouched on success (so several calls can share one).
 */
#ifndef DURIN_ERROR_H
#define DURIN_ERROR_H

#include <stddef.h>

/* The one table of error codes: name, value, default message. */
#define DURIN_ERRNO_MAP(XX)                                          \
 XX(EINVAL, -1, "invalid argument")                                  \
 XX(ENOMEM, -2, "out of memory")                                     \
 XX(EIO, -3, "input/output error")                                   \
 XX(ENOTFOUND, -4, "not found")                                      \
 XX(EEXIST, -5, "already exists")                                    \
 XX(EFENCED, -6, "lease lost: another process owns this run")        \
 XX(ESTORE, -7, "store error")                                       \
 XX(EBUSY, -8, "resource busy")                                      \
 XX(ESPEC, -9, "invalid agent spec")                                 \
 XX(ETOOBIG, -10, "size limit exceeded")                             \
 XX(ETIMEDOUT, -11, "timed out")                                     \
 XX(EMODEL, -12, "model provider error")                             \
 XX(ERETRY, -13, "transient error, retry later")                     \
 XX(EACCES, -14, "permission denied")                                \
 XX(ESTATE, -15, "operation not allowed in the run's current state") \
 XX(EPARSE, -16, "malformed data")                                   \
 XX(EURL, -17, "unsupported or malformed URL")                       \
 XX(ESCHEMA, -18, "store schema is newer than this binary")          \
 XX(ECANCELED, -19, "cancelled")                                     \
 XX(EINDOUBT, -20, "commit outcome unknown: the store was lost during COMMIT")

enum {
#define XX(name, val, msg) DURIN_##name = val,
  DURIN_ERRNO_MAP(XX)
#undef XX
};

/* Fixed-size error message; filled only on failure. */
struct durin_err {
  int code;
  char msg[512];
};

/* Returns the default message for a DURIN_E* code (never NULL). */
const char *durin_strerror(int code);

/* Returns the symbolic name ("EFENCED") for a DURIN_E* code. */
const char *durin_err_name(int code);

/*
 * Fills err (if not NULL) with code and a printf-style message, and returns
 * code, so callers can write `return durin_err_set(err, DURIN_EIO, ...)`.
 */
int durin_err_set(struct durin_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in err with a printf-style context. */
void durin_err_prefix(struct durin_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
