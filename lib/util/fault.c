/*
 * Fault injection. A test sets DURIN_CRASH_AT=<point>[:<n>]; the CLI passes
 * it here with a hook that SIGKILLs the process. The library only calls
 * durin_fault_point() at each named point; with no configuration that is a
 * single pointer test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/util.h"

const char *const durin_fault_points[] = {
  "after_claim",    /* the run's lease was taken */
  "model_response", /* a model response arrived, nothing durable yet */
  "ledger_intent",  /* a tool call's intent is durable, not dispatched */
  "tool_exit",      /* a tool exited, its outcome not yet durable */
  "ledger_outcome", /* a tool call's outcome is durable */
  "layer_merge",    /* a call's layer is merging: one entry moved */
  "checks_done",    /* acceptance checks ran, verdict not yet durable */
  /* a summary call (a phase's end, a context reset) answered, its
   * artifact not yet durable */
  "summary_response",
  "before_commit", /* a step's writes are in the open transaction */
  "after_commit",  /* a step's transaction is durable */
  /* A fork's (a continue's) writes are in its open transaction. */
  "fork_before_commit",
  "continue_before_commit",
  /* Not a crash: PostgreSQL's connection is cut right after a COMMIT was
   * sent, so the writer cannot know whether it landed. */
  "commit_cut",
  /* A schedule's tick is claimed and its run written, not committed;
   * and just after that commit. */
  "schedule_fire",
  "schedule_fired",
  NULL,
};

static char fault_point[32];
static long fault_left;
static durin_fault_hook fault_hook;

int durin_fault_configure(const char *spec, durin_fault_hook hook,
                          struct durin_err *err)
{
  const char *colon;
  size_t n;
  int i, known = 0;

  fault_hook = NULL;
  if (!spec || !*spec)
    return 0;
  colon = strchr(spec, ':');
  n = colon ? (size_t)(colon - spec) : strlen(spec);
  if (n == 0 || n >= sizeof(fault_point))
    return durin_err_set(err, DURIN_EINVAL, "bad crash point '%s'", spec);
  memcpy(fault_point, spec, n);
  fault_point[n] = '\0';
  for (i = 0; durin_fault_points[i]; i++)
    if (!strcmp(durin_fault_points[i], fault_point))
      known = 1;
  if (!known) {
    char list[400];
    size_t off = 0;

    list[0] = '\0';
    for (i = 0; durin_fault_points[i] && off < sizeof(list); i++)
      off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s",
                              i ? ", " : "", durin_fault_points[i]);
    return durin_err_set(err, DURIN_EINVAL,
                         "unknown crash point '%s' (known points: %s)",
                         fault_point, list);
  }
  fault_left = 1;
  if (colon) {
    char *end;

    fault_left = strtol(colon + 1, &end, 10);
    if (*end || fault_left < 1)
      return durin_err_set(err, DURIN_EINVAL,
                           "bad crash count in '%s': want a positive integer",
                           spec);
  }
  fault_hook = hook;
  return 0;
}

void durin_fault_point(const char *point)
{
  if (durin_fault_hit(point))
    fault_hook(point);
}

int durin_fault_hit(const char *point)
{
  if (!fault_hook || strcmp(point, fault_point) != 0)
    return 0;
  return --fault_left == 0;
}
