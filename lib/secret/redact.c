/*
 * Redaction (include/durin/redact.h). Each value is added as all the forms
 * it can take in text a tool prints or a model echoes; a scan tries, at
 * each byte that can start one, the longest forms first.
 *
 * Base64 at any alignment: in a longer encoding the value starts at byte
 * offset a (mod 3) of the input, so for a = 0, 1, 2 the value is encoded
 * after a zero bytes and the characters that only its bits decide are
 * kept (character k covers bits [6k, 6k + 6); the value, bits
 * [8a, 8(a + len))). A standalone encoding (a = 0) is also kept whole,
 * padding included, so nothing of it is left behind.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "durin/redact.h"

struct form {
  char *text;
  size_t len;
  int secret; /* index of its name */
};

struct durin_redactor {
  char **names;
  int nnames;
  struct form *forms; /* longest first */
  size_t nforms, longest;
  unsigned char starts[256]; /* bytes a form may start with */
};

struct durin_redactor *durin_redactor_new(void)
{
  return calloc(1, sizeof(struct durin_redactor));
}

void durin_redactor_free(struct durin_redactor *r)
{
  size_t i;
  int k;

  if (!r)
    return;
  for (i = 0; i < r->nforms; i++) {
    sodium_memzero(r->forms[i].text, r->forms[i].len);
    free(r->forms[i].text);
  }
  for (k = 0; k < r->nnames; k++)
    free(r->names[k]);
  free(r->forms);
  free(r->names);
  free(r);
}

size_t durin_redactor_longest(const struct durin_redactor *r)
{
  return r ? r->longest : 0;
}

/* Adds one form (a copy of text), unless it is too short or already
 * there. */
static int add_form(struct durin_redactor *r, int secret, const char *text,
                    size_t len)
{
  struct form *f;
  size_t i;

  if (len < DURIN_REDACT_MIN)
    return 0;
  for (i = 0; i < r->nforms; i++)
    if (r->forms[i].len == len && !memcmp(r->forms[i].text, text, len))
      return 0;
  if (!(f = realloc(r->forms, (r->nforms + 1) * sizeof(*f))))
    return DURIN_ENOMEM;
  r->forms = f;
  /* Kept longest first: a longer form wins where two start. */
  for (i = r->nforms; i > 0 && f[i - 1].len < len; i--)
    f[i] = f[i - 1];
  if (!(f[i].text = malloc(len))) {
    memmove(&f[i], &f[i + 1], (r->nforms - i) * sizeof(*f));
    return DURIN_ENOMEM;
  }
  memcpy(f[i].text, text, len);
  f[i].len = len;
  f[i].secret = secret;
  r->nforms++;
  r->starts[(unsigned char)text[0]] = 1;
  if (len > r->longest)
    r->longest = len;
  return 0;
}

/* The base64 forms of value at alignments 0, 1 and 2, in one variant. */
static int add_base64(struct durin_redactor *r, int secret,
                      const unsigned char *v, size_t len, int variant)
{
  size_t a, n, enc, from, to;
  unsigned char *in;
  char *out;
  int rc = 0;

  n = len + 2;
  enc = sodium_base64_encoded_len(n, variant);
  in = calloc(1, n);
  out = malloc(enc);
  if (!in || !out) {
    free(in);
    free(out);
    return DURIN_ENOMEM;
  }
  for (a = 0; a < 3 && !rc; a++) {
    memset(in, 0, a);
    memcpy(in + a, v, len);
    sodium_bin2base64(out, enc, in, a + len, variant);
    if (a == 0)
      rc = add_form(r, secret, out, strlen(out));
    from = (8 * a + 5) / 6;
    to = 8 * (a + len) / 6;
    if (!rc && to > from)
      rc = add_form(r, secret, out + from, to - from);
  }
  sodium_memzero(in, n);
  sodium_memzero(out, enc);
  free(in);
  free(out);
  return rc;
}

/* value's percent-encoding (every byte not unreserved), in upper or
 * lower case hex; NULL when out of memory. */
static char *url_encoded(const unsigned char *v, size_t len, int upper,
                         size_t *n)
{
  const char *hex = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  char *out = malloc(3 * len + 1), *p = out;
  size_t i;

  if (!out)
    return NULL;
  for (i = 0; i < len; i++) {
    unsigned c = v[i];

    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
        (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
        c == '~') {
      *p++ = (char)c;
    } else {
      *p++ = '%';
      *p++ = hex[c >> 4];
      *p++ = hex[c & 15];
    }
  }
  *n = (size_t)(p - out);
  return out;
}

int durin_redactor_add(struct durin_redactor *r, const char *name,
                       const void *value, size_t len)
{
  static const int variants[] = { sodium_base64_VARIANT_ORIGINAL,
                                  sodium_base64_VARIANT_URLSAFE };
  const unsigned char *v = value;
  char **names, *hex, *url;
  size_t i, n;
  int rc, k = r->nnames;

  if (len < DURIN_REDACT_MIN)
    return DURIN_EINVAL;
  if (!(names = realloc(r->names, (size_t)(k + 1) * sizeof(*names))))
    return DURIN_ENOMEM;
  r->names = names;
  if (!(names[k] = strdup(name)))
    return DURIN_ENOMEM;
  r->nnames++;
  rc = add_form(r, k, value, len);
  for (i = 0; !rc && i < 2; i++)
    rc = add_base64(r, k, v, len, variants[i]);
  if (!rc && (hex = malloc(2 * len + 1))) {
    sodium_bin2hex(hex, 2 * len + 1, v, len);
    rc = add_form(r, k, hex, 2 * len);
    for (i = 0; i < 2 * len; i++)
      if (hex[i] >= 'a' && hex[i] <= 'f')
        hex[i] = (char)(hex[i] - 'a' + 'A');
    if (!rc)
      rc = add_form(r, k, hex, 2 * len);
    sodium_memzero(hex, 2 * len);
    free(hex);
  } else if (!rc) {
    rc = DURIN_ENOMEM;
  }
  for (i = 0; !rc && i < 2; i++) {
    if (!(url = url_encoded(v, len, (int)i, &n)))
      return DURIN_ENOMEM;
    rc = add_form(r, k, url, n);
    sodium_memzero(url, n);
    free(url);
  }
  return rc;
}

/* The form that starts at p (n bytes left), or NULL. */
static const struct form *match(const struct durin_redactor *r, const char *p,
                                size_t n)
{
  size_t i;

  if (!r->starts[(unsigned char)*p])
    return NULL;
  for (i = 0; i < r->nforms; i++)
    if (r->forms[i].len <= n && !memcmp(r->forms[i].text, p, r->forms[i].len))
      return &r->forms[i];
  return NULL;
}

/* Redacts in[0..len) into out, trying forms at positions before stop
 * only; returns where the caller must go on from (>= stop). */
static int scan(const struct durin_redactor *r, const char *in, size_t len,
                size_t stop, struct durin_buf *out, size_t *hits, size_t *done)
{
  size_t i = 0, plain = 0;
  const struct form *f;
  int rc = 0;

  while (i < stop && !rc) {
    if (!r || !r->nforms || !(f = match(r, in + i, len - i))) {
      i++;
      continue;
    }
    rc = durin_buf_add(out, in + plain, i - plain);
    if (!rc)
      rc = durin_buf_addf(out, "[secret:%s]", r->names[f->secret]);
    if (hits)
      (*hits)++;
    i += f->len;
    plain = i;
  }
  if (!rc && i > plain)
    rc = durin_buf_add(out, in + plain, i - plain);
  *done = i > stop ? i : stop;
  return rc;
}

int durin_redact(const struct durin_redactor *r, const char *in, size_t len,
                 struct durin_buf *out, size_t *hits)
{
  size_t done;

  return scan(r, in, len, len, out, hits, &done);
}

void durin_redact_stream_init(struct durin_redact_stream *s,
                              const struct durin_redactor *r)
{
  s->r = r;
  durin_buf_init(&s->held, 0);
}

int durin_redact_stream_add(struct durin_redact_stream *s, const char *in,
                            size_t len, int last, struct durin_buf *out,
                            size_t *hits)
{
  size_t keep = durin_redactor_longest(s->r), stop, done;
  struct durin_buf *h = &s->held;
  int rc;

  if ((rc = durin_buf_add(h, in, len)))
    return rc;
  /* A form starting before stop ends inside what is here. */
  keep = keep ? keep - 1 : 0;
  stop = last ? h->len : h->len > keep ? h->len - keep : 0;
  if ((rc = scan(s->r, h->buf, h->len, stop, out, hits, &done)))
    return rc;
  memmove(h->buf, h->buf + done, h->len - done);
  h->len -= done;
  if (h->alloc)
    h->buf[h->len] = 0;
  return 0;
}

void durin_redact_stream_release(struct durin_redact_stream *s)
{
  if (s->held.alloc)
    sodium_memzero(s->held.buf, s->held.alloc);
  durin_buf_release(&s->held);
}
