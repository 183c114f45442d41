/*
 * Rebuilding a run's harness from the store: the checkpoint, the events of
 * the context window, and an unfinished step's pending response with its
 * ledger rows and the decisions about its calls. The worker calls it on
 * its store thread.
 */
#include <stdlib.h>
#include <string.h>

#include "worker/worker-int.h"

struct ledger {
  struct durin_ledger_entry *ledger;
  int nledger;
};

static int load_event(const struct durin_event *ev, void *arg)
{
  void **a = arg;

  return durin_harness_load_event(a[0], ev, a[1]);
}

static int load_approval(const struct durin_approval *ap, void *arg)
{
  void **a = arg;

  return durin_harness_load_approval(a[0], ap, a[1]);
}

/* Ledger rows point into the store's row buffers, valid only during the
 * callback; the harness needs them after, so they are copied. */
static int collect_ledger(const struct durin_ledger_entry *e, void *arg)
{
  struct ledger *d = arg;
  struct durin_ledger_entry *n;

  d->ledger = realloc(d->ledger, ((size_t)d->nledger + 1) * sizeof(*n));
  n = &d->ledger[d->nledger++];
  *n = *e;
  n->call_id = strdup(e->call_id);
  n->tool = strdup(e->tool);
  n->effect = strdup(e->effect);
  n->args_hash = strdup(e->args_hash);
  n->idem_key = strdup(e->idem_key);
  n->args = strdup(e->args);
  n->outcome = e->outcome ? strdup(e->outcome) : NULL;
  return 0;
}

static void ledger_free(struct ledger *d)
{
  int i;

  for (i = 0; i < d->nledger; i++) {
    free((char *)d->ledger[i].call_id);
    free((char *)d->ledger[i].tool);
    free((char *)d->ledger[i].effect);
    free((char *)d->ledger[i].args_hash);
    free((char *)d->ledger[i].idem_key);
    free((char *)d->ledger[i].args);
    free((char *)d->ledger[i].outcome);
  }
  free(d->ledger);
  d->ledger = NULL;
  d->nledger = 0;
}

int durin_run_load(struct durin_store *s, const char *run_id,
                   struct durin_harness *h, int64_t attempt,
                   struct durin_err *err)
{
  struct ledger led = { NULL, 0 };
  char *ck = NULL, *pending = NULL;
  int64_t ck_step, p_step;
  void *a[2] = { h, err };
  int r;

  r = durin_store_checkpoint_get(s, run_id, &ck_step, &ck, err);
  if (r == DURIN_ENOTFOUND)
    return 0; /* never started: the harness opens the run */
  if (r)
    return r;
  r = durin_harness_restore(h, ck, attempt, err);
  free(ck);
  if (r)
    return r;
  r = durin_store_events_read(s, run_id, durin_harness_window(h), 0, load_event,
                              a, err);
  if (r)
    return r;
  r = durin_store_pending_get(s, run_id, &p_step, &pending, err);
  if (r == DURIN_ENOTFOUND)
    return 0;
  if (r)
    return r;
  r = durin_store_ledger_read(s, run_id, p_step, collect_ledger, &led, err);
  if (!r)
    r = durin_harness_load_pending(h, p_step, pending, led.ledger, led.nledger,
                                   err);
  if (!r) {
    void *b[2] = { h, err };

    r = durin_store_approval_list(s, run_id, p_step, 0, load_approval, b, err);
  }
  free(pending);
  ledger_free(&led);
  return r;
}
