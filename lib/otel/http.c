/* OTLP/HTTP's request headers (lib/otel/http.h). */
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
