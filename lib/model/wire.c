/*
 * What the HTTP providers share in reading an answer: the server's error
 * message on a failed status, the JSON check, and small JSON helpers for
 * assembling streamed answers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "durin/model.h"
#include "model/providers.h"

int durin__looks_like_json(const char *body, size_t len)
{
  size_t i = 0;

  while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' ||
                     body[i] == '\n'))
    i++;
  return i < len && body[i] == '{';
}

int durin__http_req_fill(struct durin_http_req *out, const char *base_url,
                         const char *path, json_t *body, struct durin_err *err)
{
  size_t n = strlen(base_url);

  out->body = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  /* "https://host/v1/" and "https://host/v1" name the same base. */
  while (n > 0 && base_url[n - 1] == '/')
    n--;
  out->url = malloc(n + strlen(path) + 1);
  if (out->url)
    sprintf(out->url, "%.*s%s", (int)n, base_url, path);
  out->headers[0] = strdup("Content-Type: application/json");
  if (!out->body || !out->url || !out->headers[0])
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  return 0;
}

int durin__answer_json(long status, const char *body, size_t len, json_t **root,
                       struct durin_err *err)
{
  json_error_t je;
  json_t *j = json_loadb(body, len, 0, &je);

  *root = NULL;
  if (status < 200 || status >= 300) {
    /* Both services put it at error.message. */
    const char *m = json_string_value(
        json_object_get(json_object_get(j, "error"), "message"));
    int r = durin_err_set(err, DURIN_EMODEL, "model returned HTTP %ld: %s%s",
                          status, m ? m : "(no error message)",
                          status == 401 ? " (check the API key: "
                                          "model.api_key_env's variable, or "
                                          "the vault's model.api_key_secret)" :
                                          "");

    json_decref(j);
    return r;
  }
  if (!j)
    return durin_err_set(err, DURIN_EMODEL,
                         "model response is not JSON (%s at position %d)",
                         je.text, je.position);
  *root = j;
  return 0;
}

void durin__json_set_str(char **dst, json_t *v)
{
  if (json_is_string(v) && json_string_length(v)) {
    free(*dst);
    *dst = strdup(json_string_value(v));
  }
}

/* No context window comes near this; a count above it is a broken server,
 * and keeping counts below it keeps every sum of them far from overflow. */
#define TOKENS_MAX ((int64_t)1 << 50)

int durin__usage_count(json_t *obj, const char *where, const char *key,
                       int64_t *out, struct durin_err *err)
{
  json_t *v = json_object_get(obj, key);
  char *shown;
  int r;

  if (!v || json_is_null(v)) {
    *out = 0;
    return 0;
  }
  if (json_is_integer(v) && json_integer_value(v) >= 0 &&
      json_integer_value(v) <= TOKENS_MAX) {
    *out = json_integer_value(v);
    return 0;
  }
  shown = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  r = durin_err_set(err, DURIN_EMODEL,
                    "model response has a bad %s.%s: %.40s (token counts "
                    "are whole numbers from 0 to 2^50)",
                    where, key, shown ? shown : "?");
  free(shown);
  return r;
}

json_t *durin__usage_object(json_t *parent, const char *key, const char *where,
                            struct durin_err *err, int *r)
{
  json_t *v = json_object_get(parent, key);

  *r = 0;
  if (!v || json_is_null(v) || json_is_object(v))
    return json_is_object(v) ? v : NULL;
  *r = durin_err_set(err, DURIN_EMODEL,
                     "model response has a bad %s: not "
                     "an object",
                     where);
  return NULL;
}
