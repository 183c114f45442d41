/*
 * Tool calls as transactions on the workspace, the worker's side
 * (lib/worker/calls.c over lib/sandbox/layer.c). Blocking file-system
 * work: call from the store thread or the thread pool, not the loop,
 * except durin__call_contained.
 */
#ifndef DURIN_WORKER_CALLS_H
#define DURIN_WORKER_CALLS_H

#include <jansson.h>
#include <stdint.h>

#include "durin/harness.h"
#include "durin/store.h"
#include "durin/tools.h"

/* Whether a call of def runs in a layer of its own (sandboxed: the worker
 * runs commands in the sandbox). */
int durin__call_contained(const struct durin_spec *spec,
                          const struct durin_tool_def *def, int sandboxed);
/* Before the call's ledger intent: its directory, durably. */
int durin__call_mark(const struct durin_spec *spec, int64_t step, int call,
                     struct durin_err *err);
/* An attempt's fresh layer (path into layer). */
int durin__call_begin(const struct durin_spec *spec, int64_t step, int call,
                      uint64_t epoch, char *layer, size_t len,
                      struct durin_err *err);
/* What the attempt did to the workspace (new reference). */
json_t *durin__call_changes(const struct durin_spec *spec, const char *layer);
/* Once its outcome is durable: into the workspace. Idempotent. */
int durin__call_merge(const struct durin_spec *spec, const char *layer,
                      struct durin_err *err);
/* After the merge: the call's directory goes (off the call's path). */
void durin__call_done(const char *layer);
/*
 * After restoring run_id into h: merges the layers recorded outcomes name,
 * discards every other attempt, and tells h which calls of the step in
 * progress ran contained (durin_harness_call_contained).
 */
int durin__calls_recover(struct durin_store *s, const char *run_id,
                         const struct durin_spec *spec, struct durin_harness *h,
                         struct durin_err *err);

#endif
