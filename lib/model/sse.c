/*
 * Server-sent events, as the streaming model APIs send them: lines of
 * "field: value", an event ends at a blank line. Only "event" and "data"
 * matter here; "id" and "retry" are for reconnecting browsers.
 */
#include <string.h>

#include "durin/model.h"
#include "durin/util.h"

static int dispatch(struct durin_buf *event, struct durin_buf *data, int *have,
                    durin_sse_cb cb, void *arg)
{
  int r = 0;

  if (*have)
    r = cb(event->len ? event->buf : "message", data->buf, arg);
  durin_buf_reset(event);
  durin_buf_reset(data);
  *have = 0;
  return r;
}

int durin_sse_parse(const char *buf, size_t len, durin_sse_cb cb, void *arg)
{
  struct durin_buf event, data;
  size_t i = 0;
  int have = 0, r = 0;

  durin_buf_init(&event, 256);
  durin_buf_init(&data, 0);
  /* A byte order mark may start the stream. */
  if (len >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3))
    i = 3;
  while (i < len && !r) {
    size_t start = i, end, vstart, flen;
    const char *colon;

    while (i < len && buf[i] != '\n' && buf[i] != '\r')
      i++;
    end = i;
    if (i < len && buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n')
      i += 2;
    else if (i < len)
      i++;
    if (end == start) {
      r = dispatch(&event, &data, &have, cb, arg);
      continue;
    }
    if (buf[start] == ':')
      continue; /* a comment, e.g. a keep-alive */
    /* "field: value"; a line without a colon is a field with no value. */
    colon = memchr(buf + start, ':', end - start);
    flen = colon ? (size_t)(colon - (buf + start)) : end - start;
    vstart = colon ? (size_t)(colon - buf) + 1 : end;
    if (vstart < end && buf[vstart] == ' ')
      vstart++;
    if (flen == 4 && !memcmp(buf + start, "data", 4)) {
      if (have)
        durin_buf_add(&data, "\n", 1);
      durin_buf_add(&data, buf + vstart, end - vstart);
      have = 1;
    } else if (flen == 5 && !memcmp(buf + start, "event", 5)) {
      durin_buf_reset(&event);
      durin_buf_add(&event, buf + vstart, end - vstart);
    }
  }
  if (!r)
    r = dispatch(&event, &data, &have, cb, arg);
  durin_buf_release(&event);
  durin_buf_release(&data);
  return r;
}
