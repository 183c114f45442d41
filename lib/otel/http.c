/* OTLP/HTTP: the request headers, and one POST (lib/otel/http.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "durin/otel.h"
#include "otel/http.h"

#define MAX_HEADERS 32

struct headers {
  char *k[MAX_HEADERS], *v[MAX_HEADERS];
  int n;
};

/* A header; a later one of the same name (case-insensitive) replaces it. */
static void header_put(void *arg, const char *k, const char *v)
{
  struct headers *h = arg;
  char *copy = strdup(v);
  int i;

  if (!copy)
    return;
  for (i = 0; i < h->n; i++)
    if (!strcasecmp(h->k[i], k)) {
      free(h->v[i]);
      h->v[i] = copy;
      return;
    }
  if (h->n == MAX_HEADERS || !(h->k[h->n] = strdup(k))) {
    free(copy);
    return;
  }
  h->v[h->n++] = copy;
}

struct curl_slist *durin__otel_headers(const char *generic,
                                       const char *specific)
{
  struct headers h = { { NULL }, { NULL }, 0 };
  struct curl_slist *l = curl_slist_append(NULL, "Content-Type: "
                                                 "application/json");
  char line[1024];
  int i;

  durin_otel_kv_each(generic, header_put, &h);
  durin_otel_kv_each(specific, header_put, &h);
  for (i = 0; i < h.n; i++) {
    snprintf(line, sizeof(line), "%s: %s", h.k[i], h.v[i]);
    if (l)
      l = curl_slist_append(l, line);
    free(h.k[i]);
    free(h.v[i]);
  }
  return l;
}

static size_t keep_answer(char *d, size_t size, size_t n, void *arg)
{
  struct durin__otel_client *c = arg;
  size_t room = sizeof(c->answer) - 1 - c->answer_len;
  size_t take = size * n < room ? size * n : room;

  memcpy(c->answer + c->answer_len, d, take);
  c->answer_len += take;
  c->answer[c->answer_len] = 0;
  return size * n;
}

static int hurry(void *arg, curl_off_t a, curl_off_t b, curl_off_t c,
                 curl_off_t d)
{
  struct durin__otel_client *cl = arg;

  (void)a;
  (void)b;
  (void)c;
  (void)d;
  return cl->give_up && *cl->give_up;
}

long durin__otel_post(struct durin__otel_client *c, const char *body,
                      size_t len)
{
  long status = 0;

  /* One handle for the thread's life: its connection is kept alive. */
  if (!c->curl && !(c->curl = curl_easy_init()))
    return -1;
  c->answer_len = 0;
  c->answer[0] = 0;
  curl_easy_setopt(c->curl, CURLOPT_URL, c->url);
  curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
  curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
  curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->timeout_ms);
  curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, keep_answer);
  curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
  curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, hurry);
  curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, c);
  if (curl_easy_perform(c->curl) != CURLE_OK)
    return -1;
  curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

void durin__otel_client_close(struct durin__otel_client *c)
{
  if (c->curl)
    curl_easy_cleanup(c->curl);
  c->curl = NULL;
}
