/*
 * What the driver and the worker do alike with a harness action: the
 * writes of a commit, and the policy decision before a tool call.
 */
#include <string.h>

#include "durin/driver.h"
#include "durin/policy.h"

int durin_commit_write(struct durin_txn *txn, const char *run_id,
                       struct durin_action *act, struct durin_err *err)
{
  int r;

  r = durin_txn_events_append(txn, run_id, act->events, act->nevents, err);
  if (!r && act->checkpoint)
    r = durin_txn_checkpoint_put(txn, run_id, act->step, act->checkpoint, err);
  /* A step that waits keeps its response, so it replays the same calls. */
  if (!r && act->approval && act->pending)
    r = durin_txn_pending_put(txn, run_id, act->approval->step, act->pending,
                              err);
  if (!r && act->approval)
    r = durin_txn_approval_request(txn, act->approval, err);
  if (!r)
    r = durin_txn_run_update(txn, run_id, &act->update, err);
  if (!r && act->clear_pending)
    r = durin_txn_pending_clear(txn, run_id, err);
  return r;
}

int durin_run_policy_init(struct durin_run_policy *p,
                          const struct durin_spec *spec,
                          const struct durin_policy *server,
                          struct durin_err *err)
{
  memset(p, 0, sizeof(*p));
  p->server = server;
  if (!spec->policy)
    return 0;
  return durin_policy_parse(spec->policy, "spec", &p->spec, err);
}

void durin_run_policy_decide(const struct durin_run_policy *p,
                             const struct durin_action *act,
                             struct durin_policy_decision *d)
{
  const struct durin_policy *layers[2];

  layers[0] = p->spec;
  layers[1] = p->server;
  durin_policy_decide(layers, 2, act->tool_ctx.workspace, act->tool->name,
                      act->args, &act->policy_state, d);
}

void durin_run_policy_clear(struct durin_run_policy *p)
{
  durin_policy_free(p->spec);
  memset(p, 0, sizeof(*p));
}
