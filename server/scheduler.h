/*
 * The scheduler of `durin serve` (docs/internals/schedules.md): a thread
 * with a store connection of its own that fires due schedules' ticks
 * once a second (cli_sched_fire_due). Any number of serve processes on
 * one store run one each: a tick's claim is a conditional write in the
 * store, never a timer in one process.
 */
#ifndef DURIN_SERVER_SCHEDULER_H
#define DURIN_SERVER_SCHEDULER_H

#include "durin/error.h"

struct sched;

struct sched_opts {
  const char *store_url;
  const char *data_dir;                        /* runs' workspaces */
  int64_t poll_ms;                             /* 0: 1000 */
  void (*on_log)(void *arg, const char *line); /* may be NULL */
  void *log_arg;
  void (*wake_worker)(void *arg); /* a run was made; may be NULL */
  void *wake_arg;
};

/* Starts the thread; the strings are copied. */
int sched_start(const struct sched_opts *o, struct sched **out,
                struct durin_err *err);
/* Stops it (a tick being fired finishes first) and frees s; NULL is
 * fine. */
void sched_stop(struct sched *s);

#endif
