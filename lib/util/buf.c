/* The bounded buffer: every body, stream and tool output goes through it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/util.h"

static char empty_buf[1];

void durin_buf_init(struct durin_buf *b, size_t cap)
{
  b->buf = empty_buf;
  b->len = 0;
  b->alloc = 0;
  b->cap = cap ? cap : SIZE_MAX / 2;
}

void durin_buf_release(struct durin_buf *b)
{
  if (b->alloc)
    free(b->buf);
  durin_buf_init(b, b->cap);
}

void durin_buf_reset(struct durin_buf *b)
{
  b->len = 0;
  if (b->alloc)
    b->buf[0] = '\0';
}

static int grow(struct durin_buf *b, size_t extra)
{
  size_t want, n;
  char *p;

  if (extra > b->cap || b->len > b->cap - extra)
    return DURIN_ETOOBIG;
  want = b->len + extra + 1;
  if (want <= b->alloc)
    return 0;
  n = b->alloc ? b->alloc : 64;
  while (n < want)
    n = n * 2;
  p = b->alloc ? realloc(b->buf, n) : malloc(n);
  if (!p)
    return DURIN_ENOMEM;
  if (!b->alloc)
    p[0] = '\0';
  b->buf = p;
  b->alloc = n;
  return 0;
}

int durin_buf_add(struct durin_buf *b, const void *data, size_t len)
{
  int r = grow(b, len);

  if (r)
    return r;
  if (len)
    memcpy(b->buf + b->len, data, len);
  b->len += len;
  b->buf[b->len] = '\0';
  return 0;
}

int durin_buf_adds(struct durin_buf *b, const char *s)
{
  return durin_buf_add(b, s, strlen(s));
}

int durin_buf_addf(struct durin_buf *b, const char *fmt, ...)
{
  va_list ap;
  int n, r;

  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return DURIN_EINVAL;
  r = grow(b, (size_t)n);
  if (r)
    return r;
  va_start(ap, fmt);
  vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

char *durin_buf_detach(struct durin_buf *b, size_t *len)
{
  char *p;

  if (!b->alloc) {
    p = strdup("");
  } else {
    p = b->buf;
  }
  if (len)
    *len = b->len;
  b->buf = empty_buf;
  b->len = 0;
  b->alloc = 0;
  return p;
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
  unsigned c = p[0];
  size_t n, i;
  unsigned cp;

  if (c >= 0x01 && c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf)
    n = 2, cp = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef)
    n = 3, cp = c & 0x0f;
  else if (c >= 0xf0 && c <= 0xf4)
    n = 4, cp = c & 0x07;
  else
    return 0;
  if (left < n)
    return 0;
  for (i = 1; i < n; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  /* Overlong forms, surrogates and code points past U+10FFFF. */
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
      (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
    return 0;
  return n;
}

size_t durin_utf8_sanitize(char *s, size_t len)
{
  unsigned char *p = (unsigned char *)s;
  size_t i = 0, fixed = 0;

  while (i < len) {
    size_t n = utf8_seq(p + i, len - i);

    if (n == 0) {
      p[i++] = '?';
      fixed++;
    } else {
      i += n;
    }
  }
  return fixed;
}

int durin_buf_add_jstr(struct durin_buf *b, const char *s)
{
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  size_t left = strlen((const char *)p), run = 0, n;
  int r = durin_buf_add(b, "\"", 1);

  while (!r && left) {
    unsigned c = p[run];

    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      if (++run < left)
        continue;
    }
    /* p[0..run) needs no escape: one copy for the whole run. */
    if (run && (r = durin_buf_add(b, p, run)))
      break;
    p += run, left -= run, run = 0;
    if (!left)
      break;
    c = *p;
    if (c == '"' || c == '\\') {
      char e[2] = { '\\', (char)c };
      r = durin_buf_add(b, e, 2), n = 1;
    } else if (c < 0x20) {
      char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
      r = durin_buf_add(b, e, 6), n = 1;
    } else if ((n = utf8_seq(p, left))) {
      r = durin_buf_add(b, p, n);
    } else {
      r = durin_buf_add(b, "\\ufffd", 6), n = 1;
    }
    p += n, left -= n;
  }
  return r ? r : durin_buf_add(b, "\"", 1);
}
