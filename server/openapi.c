/*
 * GET /v1/openapi.json: the API's OpenAPI 3.1 document, server/openapi.json,
 * which server/openapi-blob.S compiles into the binary. It needs no token:
 * a client reads it to learn how to authenticate. tests/e2e/t0805-openapi.sh
 * checks that the answer is the file in the tree and that every answer the
 * e2e tests get matches it.
 */
#include <stdint.h>

#include <microhttpd.h>

#include "server/server.h"

extern const char durin__openapi_json[];
extern const uint64_t durin__openapi_json_size;

static int get_openapi(struct req *r)
{
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      (size_t)durin__openapi_json_size, (void *)durin__openapi_json,
      MHD_RESPMEM_PERSISTENT);

  if (!resp)
    return reply_error(r, 500, "internal", "cannot make the answer");
  MHD_add_response_header(resp, "Content-Type", "application/json");
  return reply_response(r, 200, resp);
}

const struct route srv_openapi_routes[] = {
  { "GET", "/v1/openapi.json", ROLE_NONE, get_openapi },
  { NULL, NULL, ROLE_NONE, NULL },
};
