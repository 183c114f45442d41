/*
 * Tool calls as transactions on the workspace, the worker's side
 * (lib/worker/calls.c over lib/sandbox/layer.c). Blocking file-system
 * work: from the store thread or the thread pool (or in place, when the
 * loop drives one run only).
 */
#ifndef DURIN_WORKER_CALLS_H
#define DURIN_WORKER_CALLS_H

#include <jansson.h>
#include <stdint.h>

#include "durin/harness.h"
#include "durin/store.h"
#include "durin/tools.h"

/* What the attempt did to the workspace (new reference). */
json_t *durin__call_changes(const struct durin_spec *spec, const char *layer);
/* Once its outcome is durable: into the workspace. Idempotent. */
int durin__call_merge(const struct durin_spec *spec, const char *layer,
                      struct durin_err *err);
/* After the merge: the call's directory goes (off the call's path). */
void durin__call_done(const char *layer);
/*
 * Before a restored run goes on: merges (again) the layers that recorded
 * outcomes name, in the order the calls ran, and removes every other
 * attempt. Whether a call without an outcome runs again is the harness's
 * to decide, from its intent (durin_harness_set_sandboxed).
 */
int durin__calls_recover(struct durin_store *s, const char *run_id,
                         const struct durin_spec *spec, struct durin_err *err);

#endif
