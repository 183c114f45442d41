/* Outbound webhooks (being written). */
#include <stdlib.h>

#include "server/server.h"

struct webhooks {
  int unused;
};

const struct route srv_webhook_routes[] = {
  { NULL, NULL, ROLE_NONE, NULL },
};

int webhooks_start(struct srv *s, struct webhooks **out, struct durin_err *err)
{
  (void)s;
  (void)err;
  *out = NULL;
  return 0;
}

void webhooks_wake(struct webhooks *w)
{
  (void)w;
}

void webhooks_stop(struct webhooks *w)
{
  (void)w;
}
