/*
 * Untrusted bytes from the sandbox: the requests a command sends to a host
 * it was granted a secret for, after the proxy decrypted them
 * (libexec/sandbox-tls.c). The first byte picks where the bytes are cut
 * into reads. Checked beyond memory safety: the granted value goes out
 * only in the header the proxy writes, and the client's own header of that
 * name never does before the first body byte.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../libexec/sandbox-proxy.h"
#include "fuzz.h"

struct out {
  char *buf;
  size_t len;
};

static void sink(void *arg, const void *buf, size_t n)
{
  struct out *o = arg;
  char *b = realloc(o->buf, o->len + n + 1);

  if (!b)
    abort();
  memcpy(b + o->len, buf, n);
  o->len += n;
  b[o->len] = 0;
  o->buf = b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static unsigned char value[] = "Bearer gr4nted-v4lue";
  struct proxy_grant g = { "api.example.com", 443, "Authorization", value,
                           sizeof(value) - 1 };
  struct out o = { NULL, 0 };
  struct relay *r;
  size_t at = 1, step;
  char *head_end;

  if (size < 1)
    return 0;
  step = (size_t)data[0] + 1;
  r = relay_new("api.example.com", 443, &g, 1, sink, &o);
  if (!r)
    abort();
  while (at < size) {
    size_t n = size - at < step ? size - at : step;

    if (relay_feed(r, data + at, n))
      break;
    at += n;
  }
  relay_free(r);
  /* In the first head that went out: the granted header once, and no
   * other of its name. */
  if (o.buf && o.buf[0] != '!' && (head_end = strstr(o.buf, "\r\n\r\n"))) {
    const char *p = o.buf;
    int granted = 0, other = 0;

    while ((p = strchr(p, '\n')) && p < head_end) {
      p++;
      if (!strncasecmp(p, "authorization:", 14)) {
        if (!strncmp(p, "Authorization: Bearer gr4nted-v4lue\r\n", 37))
          granted++;
        else
          other++;
      }
    }
    if (granted != 1 || other)
      abort();
  }
  free(o.buf);
  return 0;
}
