/* The providers compiled into this build (internal). */
#ifndef DURIN_MODEL_PROVIDERS_H
#define DURIN_MODEL_PROVIDERS_H

#include "durin/model.h"

extern const struct durin_provider durin__provider_script;
extern const struct durin_provider durin__provider_openai;
extern const struct durin_provider durin__provider_anthropic;

/* Whether a body starts (after white space) with '{': a JSON answer from
 * a server that ignored a request to stream. */
int durin__looks_like_json(const char *body, size_t len);

/*
 * A non-streamed answer: on a failed status, DURIN_EMODEL with the server's
 * error.message; otherwise the parsed JSON in *root (the caller decrefs),
 * or DURIN_EMODEL if the body is not JSON.
 */
int durin__answer_json(long status, const char *body, size_t len, json_t **root,
                       struct durin_err *err);

/*
 * Sets out's URL (base_url without a trailing '/', then path), its body
 * (body serialized; the reference is taken) and headers[0], the JSON
 * content type. Providers add their own headers from headers[1] on.
 */
int durin__http_req_fill(struct durin_http_req *out, const char *base_url,
                         const char *path, json_t *body, struct durin_err *err);

/*
 * Reads the token count obj.key into *out: absent or null is 0 (servers
 * that report no usage); anything but a whole number from 0 up is
 * DURIN_EMODEL naming where.key, so a provider's bad count never reaches
 * a run's totals.
 */
int durin__usage_count(json_t *obj, const char *where, const char *key,
                       int64_t *out, struct durin_err *err);
/* parent.key if it is an object, NULL if absent or null; *r is
 * DURIN_EMODEL naming where if it is anything else. */
json_t *durin__usage_object(json_t *parent, const char *key, const char *where,
                            struct durin_err *err, int *r);

/* Replaces *dst with v if v is a non-empty string (streamed fragments). */
void durin__json_set_str(char **dst, json_t *v);

#endif
