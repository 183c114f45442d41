/*
 * Tool calls as transactions on the workspace: the worker's side
 * (DESIGN 3.6; the layers themselves are lib/sandbox/layer.c).
 *
 *   intent:  the harness records in the call's ledger intent whether it
 *            runs in a layer of its own (durin_tool_contained)
 *   tool:    each attempt writes into a fresh layer of its lease epoch
 *            (durin_layer_begin); its change set goes with its outcome
 *   outcome: once durable, the layer is merged into the workspace
 *            (durin__call_merge) and the call's directory removed
 *   restore: a layer named by a recorded outcome is merged (again); any
 *            other attempt is discarded (durin__calls_recover), and the
 *            harness, reading the intent, runs the call again
 *
 * Nothing on disk decides whether a call may run again: only the ledger
 * does, so a directory left by a crash or planted by a fenced worker can
 * never make an uncontained call repeat.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "durin/sandbox.h"
#include "worker/calls.h"

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

json_t *durin__call_changes(const struct durin_spec *spec, const char *layer)
{
  char to[4200];
  int whiteouts;

  target(spec, to, sizeof(to), &whiteouts);
  return durin_layer_changes(layer, to, spec->sandbox.template);
}

/*
 * Merges run under an exclusive lock on the run's calls/ directory: a
 * restorer finishing a merge and a fenced worker that still merges the
 * same layer (its outcome was durable before it lost the run) take turns,
 * so neither empties an opaque directory under the other's feet.
 */
static int lock_calls(const struct durin_spec *spec)
{
  char calls[4096];
  int fd;

  durin_layer_calls_dir(spec->workspace, calls, sizeof(calls));
  fd = open(calls, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0 && flock(fd, LOCK_EX)) {
    close(fd);
    fd = -1;
  }
  return fd;
}

int durin__call_merge(const struct durin_spec *spec, const char *layer,
                      struct durin_err *err)
{
  char to[4200];
  int whiteouts, lock = lock_calls(spec), r;

  target(spec, to, sizeof(to), &whiteouts);
  r = durin_layer_merge(layer, to, whiteouts, err);
  if (lock >= 0)
    close(lock);
  return r;
}

void durin__call_done(const char *layer)
{
  char dir[4400];
  const char *slash = strrchr(layer, '/');

  /* Merged, its outcome durable: every attempt at the call goes. Until
   * this is done a restorer merely merges an empty layer again. */
  if (!slash || (size_t)(slash - layer) >= sizeof(dir))
    return;
  snprintf(dir, sizeof(dir), "%.*s", (int)(slash - layer), layer);
  durin_tree_remove(dir);
}

/* ---- after a restore ---- */

struct call_dir {
  int64_t step;
  int call;
  char *path;
};

struct recover {
  struct call_dir *dirs;
  size_t n;
  int call;        /* the call looked for */
  int done;        /* its ledger row has an outcome */
  char layer[200]; /* ... naming this layer ("sS-cC/eE"), or "" */
};

static int collect_dir(void *arg, int64_t step, int call, const char *path)
{
  struct recover *rc = arg;
  struct call_dir *d = realloc(rc->dirs, (rc->n + 1) * sizeof(*d));

  if (!d)
    return DURIN_ENOMEM;
  rc->dirs = d;
  d[rc->n].step = step;
  d[rc->n].call = call;
  d[rc->n].path = strdup(path);
  if (!d[rc->n].path)
    return DURIN_ENOMEM;
  rc->n++;
  return 0;
}

static int by_step_call(const void *a, const void *b)
{
  const struct call_dir *x = a, *y = b;

  if (x->step != y->step)
    return x->step < y->step ? -1 : 1;
  return (x->call > y->call) - (x->call < y->call);
}

static int ledger_row(const struct durin_ledger_entry *e, void *arg)
{
  struct recover *rc = arg;
  json_t *o, *name;

  if (e->call_idx != rc->call || !e->done || !e->outcome)
    return 0;
  rc->done = 1;
  if (!(o = json_loads(e->outcome, 0, NULL)))
    return 0;
  name = json_object_get(json_object_get(o, "changes"), "layer");
  if (json_is_string(name))
    snprintf(rc->layer, sizeof(rc->layer), "%s", json_string_value(name));
  json_decref(o);
  return 0;
}

/* The attempt a recorded outcome names, beneath dir: "sS-cC/eN" with the
 * call's own prefix and a plain epoch, nothing else. */
static int named_layer(const struct call_dir *d, const char *name, char *out,
                       size_t len)
{
  char prefix[64];
  unsigned long long epoch;
  int end = 0;

  snprintf(prefix, sizeof(prefix), "s%lld-c%d/", (long long)d->step, d->call);
  if (strncmp(name, prefix, strlen(prefix)) ||
      sscanf(name + strlen(prefix), "e%llu%n", &epoch, &end) != 1 ||
      name[strlen(prefix) + (size_t)end])
    return 0;
  return snprintf(out, len, "%s/e%llu", d->path, epoch) < (int)len;
}

int durin__calls_recover(struct durin_store *s, const char *run_id,
                         const struct durin_spec *spec, struct durin_err *err)
{
  struct recover rc;
  size_t i;
  int r;

  memset(&rc, 0, sizeof(rc));
  r = durin_layer_scan(spec->workspace, collect_dir, &rc);
  if (r == DURIN_EIO && !err->code)
    r = durin_err_set(err, DURIN_EIO, "cannot read the call layers of run '%s'",
                      run_id);
  /* In the order the calls ran: a later call's changes land last. */
  if (!r && rc.n > 1)
    qsort(rc.dirs, rc.n, sizeof(*rc.dirs), by_step_call);
  for (i = 0; !r && i < rc.n; i++) {
    char layer[4600];

    rc.call = rc.dirs[i].call;
    rc.done = 0;
    rc.layer[0] = 0;
    r = durin_store_ledger_read(s, run_id, rc.dirs[i].step, ledger_row, &rc,
                                err);
    if (r)
      break;
    /* Its outcome is durable: finish the merge a crash may have cut (or
     * never begun). Without one, nothing of any attempt may reach the
     * workspace; the harness runs the call again if its intent says it
     * was contained, and asks a person otherwise. */
    if (rc.done && rc.layer[0]) {
      if (!named_layer(&rc.dirs[i], rc.layer, layer, sizeof(layer))) {
        r = durin_err_set(err, DURIN_EPARSE,
                          "run '%s': the outcome of call %d of step %lld "
                          "names layer '%s', which is not one of its own",
                          run_id, rc.dirs[i].call, (long long)rc.dirs[i].step,
                          rc.layer);
        break;
      }
      r = durin__call_merge(spec, layer, err);
      if (r)
        break;
    }
    durin_tree_remove(rc.dirs[i].path);
  }
  for (i = 0; i < rc.n; i++)
    free(rc.dirs[i].path);
  free(rc.dirs);
  return r;
}
