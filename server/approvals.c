/* /v1/approvals (being written). */
#include "server/server.h"

const struct route srv_approval_routes[] = {
  { NULL, NULL, ROLE_NONE, NULL },
};
