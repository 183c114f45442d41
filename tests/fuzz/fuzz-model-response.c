/*
 * Untrusted bytes from a model server: a provider's answer parser. Built
 * once per provider, with FUZZ_PROVIDER naming it ("openai", "anthropic").
 */
#include <stdlib.h>
#include <string.h>

#include "durin/model.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const struct durin_provider *p = durin_provider_find(FUZZ_PROVIDER);
  struct durin_model_cfg cfg;
  struct durin_model_request req;
  struct durin_model_response r;
  struct durin_err err;
  json_t *j;

  memset(&cfg, 0, sizeof(cfg));
  memset(&req, 0, sizeof(req));
  req.cfg = &cfg;
  /* Odd sizes read the body as a stream of server-sent events. */
  cfg.stream = (int)(size & 1);
  if (p->parse(&req, 200, (const char *)data, size, &r, &err) == 0) {
    /* What was parsed must survive the trip through the pending record. */
    j = durin_model_response_to_json(&r);
    durin_model_response_clear(&r);
    if (durin_model_response_from_json(j, &r, &err) == 0)
      durin_model_response_clear(&r);
    json_decref(j);
  }
  /* The error path reads the same bytes as an error body. */
  p->parse(&req, 503, (const char *)data, size, &r, &err);
  return 0;
}
