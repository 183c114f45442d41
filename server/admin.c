/* /v1/agents, /v1/tokens, /v1/limits, /v1/workers (being written). */
#include "server/server.h"

const struct route srv_admin_routes[] = {
  { NULL, NULL, ROLE_NONE, NULL },
};
