/*
 * A run's policy layers: its spec's policy, then the server's. Both are
 * applied to every call and the more severe decision wins, so the server
 * can only tighten what a spec allows.
 */
#include <string.h>

#include "durin/policy.h"

int durin_run_policy_init(struct durin_run_policy *p, json_t *spec_policy,
                          const struct durin_policy *server,
                          struct durin_err *err)
{
  memset(p, 0, sizeof(*p));
  p->server = server;
  if (!spec_policy)
    return 0;
  return durin_policy_parse(spec_policy, "spec", &p->spec, err);
}

void durin_run_policy_decide(const struct durin_run_policy *p,
                             const char *workspace, const char *tool,
                             json_t *args, const struct durin_policy_state *st,
                             struct durin_policy_decision *d)
{
  const struct durin_policy *layers[2];

  layers[0] = p->spec;
  layers[1] = p->server;
  durin_policy_decide(layers, 2, workspace, tool, args, st, d);
}

void durin_run_policy_clear(struct durin_run_policy *p)
{
  durin_policy_free(p->spec);
  memset(p, 0, sizeof(*p));
}
