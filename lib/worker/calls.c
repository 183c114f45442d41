/*
 * Tool calls as transactions on the workspace: the worker's side
 * (DESIGN 3.6; the layers themselves are lib/sandbox/layer.c).
 *
 *   intent:  a contained call's directory is made, durably, before its
 *            ledger intent (durin__call_mark)
 *   tool:    each attempt writes into a fresh layer of its lease epoch
 *            (durin__call_begin); its change set goes with its outcome
 *   outcome: once durable, the layer is merged into the workspace and the
 *            call's directory removed (durin__call_merge)
 *   restore: a layer named by a recorded outcome is merged (again); any
 *            other attempt is discarded and its call, which left no
 *            trace, is run again (durin__calls_recover)
 *
 * A call is contained when it can reach nothing but its workspace: a
 * command in the sandbox with no read-write binds and no network but to
 * repeat-safe hosts, or a file tool, which writes through its layer
 * wherever it runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/sandbox.h"
#include "worker/calls.h"

int durin__call_contained(const struct durin_spec *spec,
                          const struct durin_tool_def *def, int sandboxed)
{
  if (!def)
    return 0;
  if (def->command)
    return sandboxed && durin_spec_sandbox_contained(&spec->sandbox);
  return def->layered;
}

/* Where a layer merges: the workspace, or a template run's own files,
 * which are an overlay's upper layer themselves (deletions stay there as
 * whiteouts, over the template). */
static void target(const struct durin_spec *spec, char *out, size_t len,
                   int *whiteouts)
{
  char layers[4096];

  *whiteouts = spec->sandbox.template != NULL;
  if (!*whiteouts) {
    snprintf(out, len, "%s", spec->workspace);
    return;
  }
  durin_workspace_layers(spec->workspace, layers, sizeof(layers));
  snprintf(out, len, "%s/upper", layers);
}

int durin__call_mark(const struct durin_spec *spec, int64_t step, int call,
                     struct durin_err *err)
{
  return durin_layer_mark(spec->workspace, step, call, err);
}

int durin__call_begin(const struct durin_spec *spec, int64_t step, int call,
                      uint64_t epoch, char *layer, size_t len,
                      struct durin_err *err)
{
  return durin_layer_begin(spec->workspace, step, call, epoch, layer, len, err);
}

json_t *durin__call_changes(const struct durin_spec *spec, const char *layer)
{
  char to[4200];
  int whiteouts;

  target(spec, to, sizeof(to), &whiteouts);
  return durin_layer_changes(layer, to);
}

/* The call's directory: the layer's parent. */
static void call_dir(const char *layer, char *out, size_t len)
{
  const char *slash = strrchr(layer, '/');

  snprintf(out, len, "%.*s", slash ? (int)(slash - layer) : 0, layer);
}

int durin__call_merge(const struct durin_spec *spec, const char *layer,
                      struct durin_err *err)
{
  char to[4200];
  int whiteouts;

  target(spec, to, sizeof(to), &whiteouts);
  return durin_layer_merge(layer, to, whiteouts, err);
}

void durin__call_done(const char *layer)
{
  char dir[4200];

  /* Merged, its outcome durable: the call's record of containment is no
   * longer needed, and every attempt at it goes. Until this is done a
   * restorer merely merges an empty layer again. */
  call_dir(layer, dir, sizeof(dir));
  durin_tree_remove(dir);
}

/* ---- after a restore ---- */

struct recover {
  struct durin_store *s;
  const char *run_id;
  const struct durin_spec *spec;
  struct durin_harness *h;
  struct durin_err *err;
  int64_t pending; /* the step in progress (committed + 1) */
  int found;       /* the call's ledger row was read */
  int done;        /* ... and has an outcome */
  char layer[200]; /* ... naming this layer ("sS-cC/eE"), or "" */
  int call;        /* the call looked for */
};

static int ledger_row(const struct durin_ledger_entry *e, void *arg)
{
  struct recover *rc = arg;
  json_t *o, *name;

  if (e->call_idx != rc->call)
    return 0;
  rc->found = 1;
  rc->done = e->done;
  rc->layer[0] = 0;
  if (!e->done || !e->outcome || !(o = json_loads(e->outcome, 0, NULL)))
    return 0;
  name = json_object_get(json_object_get(o, "changes"), "layer");
  if (json_is_string(name))
    snprintf(rc->layer, sizeof(rc->layer), "%s", json_string_value(name));
  json_decref(o);
  return 0;
}

static int recover_call(void *arg, int64_t step, int call, const char *dir)
{
  struct recover *rc = arg;
  char layer[4400];
  int r;

  rc->call = call;
  rc->found = rc->done = 0;
  rc->layer[0] = 0;
  r = durin_store_ledger_read(rc->s, rc->run_id, step, ledger_row, rc, rc->err);
  if (r)
    return r;
  if (rc->done) {
    /* Its outcome is durable: finish its merge, which a crash may have
     * cut (or never begun); then the directory goes. */
    if (rc->layer[0] && !strchr(rc->layer, '.')) {
      const char *e = strchr(rc->layer, '/');

      snprintf(layer, sizeof(layer), "%s/%s", dir, e ? e + 1 : rc->layer);
      r = durin__call_merge(rc->spec, layer, rc->err);
      if (r)
        return r;
    }
    durin_tree_remove(dir);
    return 0;
  }
  /* No outcome: nothing of any attempt may reach the workspace. */
  durin_layer_discard_attempts(dir);
  if (rc->found && step == rc->pending)
    durin_harness_call_contained(rc->h, step, call);
  else if (!rc->found && step != rc->pending)
    durin_tree_remove(dir); /* marked, never ledgered, step gone by */
  return 0;
}

int durin__calls_recover(struct durin_store *s, const char *run_id,
                         const struct durin_spec *spec, struct durin_harness *h,
                         struct durin_err *err)
{
  struct recover rc;
  int r;

  memset(&rc, 0, sizeof(rc));
  rc.s = s;
  rc.run_id = run_id;
  rc.spec = spec;
  rc.h = h;
  rc.err = err;
  rc.pending = durin_harness_step(h) + 1;
  r = durin_layer_scan(spec->workspace, recover_call, &rc);
  if (r == DURIN_EIO && !err->code)
    return durin_err_set(err, DURIN_EIO,
                         "cannot read the call layers of run '%s'", run_id);
  return r;
}
