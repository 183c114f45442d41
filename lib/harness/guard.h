/*
 * The loop and storm breakers, and what run_status reports of the run's
 * calls (docs/internals/breakers.md). Internal to lib/harness; pure: no
 * I/O, no clock.
 *
 * Everything lives in one JSON object, the checkpoint's "guard", so it
 * survives restarts and a replay of the log computes it again
 * (replay.c) with the same function:
 *
 *   {"limits":   [repeat, failures, window]     the limits it was kept under
 *    "tools":    {name: {"calls", "failed", "duration_ms", "tokens"}}
 *    "failures": [{"step", "tool", "arguments", "exit_code", "tail"}]  last 5
 *    "loops":    [{"key", "sig", "tool", "arguments", "times", "exit_code",
 *                  "input_tokens", "output_tokens", "cost_usd",
 *                  "first_step", "last_step"}]     failing calls, at most 32
 *    "window":   [[ok, tool, exit_code], ...]    the last `window` outcomes
 *    "loops_stopped", "storms"}                  how often each tripped
 *
 * Bounded whatever the run's length: the tools a run has, 5 failures
 * with 300-byte tails, 32 loops (80 bytes of arguments each, no output),
 * a window of at most 100 outcomes.
 */
#ifndef DURIN_HARNESS_GUARD_H
#define DURIN_HARNESS_GUARD_H

#include <stdint.h>

#include <jansson.h>

/* The spec's "breakers" (0: that breaker is off). */
struct durin__guard_limits {
  int64_t repeat;   /* the same call failing the same way this often */
  int64_t failures; /* failures among ... */
  int64_t window;   /* ... the last this many calls */
};

/* One call that ran, counted when its step commits. */
struct durin__guard_call {
  const char *tool;
  const char *args; /* the arguments as the model sent them */
  json_t *result;   /* its tool_result data: ok, exit_code, output,
                       duration_ms (borrowed) */
  int64_t step;
  /* Its share of the step's model call (durin__guard_share). */
  int64_t input_tokens, output_tokens;
  double cost_usd;
};

enum durin__guard_trip_kind {
  DURIN__GUARD_NONE = 0,
  DURIN__GUARD_LOOP = 1,  /* the run stops as needs_human */
  DURIN__GUARD_STORM = 2, /* the run pauses */
};

/*
 * Counts call c in *guard (made when NULL) under lim. Returns the
 * breakers it tripped (a DURIN__GUARD_* bit set) and, for each, the data
 * of its event in *loop (loop_detected) and *storm (storm_detected), the
 * caller's to free. A tripped loop's count and a tripped storm's window
 * start again.
 */
int durin__guard_add(json_t **guard, const struct durin__guard_limits *lim,
                     const struct durin__guard_call *c, json_t **loop,
                     json_t **storm);

/* Call i's share of total over n calls: total / n, the remainder going
 * one each to the first calls. */
int64_t durin__guard_share(int64_t total, int n, int i);

/* The canonical form of a call's arguments (sorted keys, whitespace runs
 * in strings collapsed to one space and trimmed), malloc'd: two calls
 * that differ only in that are the same call. */
char *durin__guard_canonical(const char *args);

/* What run_status says of the calls and breakers (new references):
 * tools, failures, and the breakers' state. */
json_t *durin__guard_tools(json_t *guard);
json_t *durin__guard_failures(json_t *guard);
json_t *durin__guard_breakers(json_t *guard,
                              const struct durin__guard_limits *lim);

#endif
