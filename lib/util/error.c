/* Error codes and messages: the X-macro table in durin/error.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "durin/error.h"

const char *durin_strerror(int code)
{
  switch (code) {
  case 0:
    return "success";
#define XX(name, val, msg) \
 case val:                 \
  return msg;
    DURIN_ERRNO_MAP(XX)
#undef XX
  default:
    return "unknown error";
  }
}

const char *durin_err_name(int code)
{
  switch (code) {
  case 0:
    return "OK";
#define XX(name, val, msg) \
 case val:                 \
  return #name;
    DURIN_ERRNO_MAP(XX)
#undef XX
  default:
    return "EUNKNOWN";
  }
}

int durin_err_set(struct durin_err *err, int code, const char *fmt, ...)
{
  va_list ap;

  if (!err)
    return code;
  err->code = code;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
  va_end(ap);
  return code;
}

void durin_err_prefix(struct durin_err *err, const char *fmt, ...)
{
  char old[sizeof(err->msg)];
  va_list ap;
  size_t n;

  if (!err)
    return;
  memcpy(old, err->msg, sizeof(old));
  va_start(ap, fmt);
  n = (size_t)vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
  va_end(ap);
  if (n < sizeof(err->msg))
    snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", old);
}
