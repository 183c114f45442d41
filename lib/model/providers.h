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

#endif
