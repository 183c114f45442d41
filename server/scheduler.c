/*
 * The scheduler thread of `durin serve` (server/scheduler.h). It sleeps
 * on a condition variable for the poll interval, so that stopping does
 * not wait for a whole interval, and opens its store connection lazily:
 * a store that went away is tried again at the next poll.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cmd.h"
#include "durin/store.h"
#include "durin/util.h"
#include "server/scheduler.h"

struct sched {
  struct sched_opts o;
  char *store_url, *data_dir;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int stop;
};

static void *sched_main(void *arg)
{
  struct sched *s = arg;
  struct cli cli = { s->store_url, NULL };
  int said = 0;

  pthread_mutex_lock(&s->mu);
  while (!s->stop) {
    struct timespec until;
    int64_t ms = s->o.poll_ms > 0 ? s->o.poll_ms : 1000;

    pthread_mutex_unlock(&s->mu);
    if (!cli.store) {
      struct durin_err err = { 0 };

      if (durin_store_open(s->store_url, &cli.store, &err)) {
        cli.store = NULL;
        if (!said++ && s->o.on_log) {
          char line[sizeof(err.msg) + 32];

          snprintf(line, sizeof(line), "scheduler: %s (trying again)", err.msg);
          s->o.on_log(s->o.log_arg, line);
        }
      } else {
        said = 0;
      }
    }
    if (cli.store) {
      int n = cli_sched_fire_due(&cli, s->data_dir, cli_sched_now(),
                                 s->o.on_log, s->o.log_arg);

      if (n > 0 && s->o.wake_worker)
        s->o.wake_worker(s->o.wake_arg);
      if (n < 0) {
        /* The connection may be the trouble: a fresh one next time. */
        durin_store_close(cli.store);
        cli.store = NULL;
      }
    }
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->mu);
    while (!s->stop &&
           pthread_cond_timedwait(&s->cond, &s->mu, &until) != ETIMEDOUT)
      ;
  }
  pthread_mutex_unlock(&s->mu);
  durin_store_close(cli.store);
  return NULL;
}

int sched_start(const struct sched_opts *o, struct sched **out,
                struct durin_err *err)
{
  struct sched *s = calloc(1, sizeof(*s));

  *out = NULL;
  if (!s)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  s->o = *o;
  s->store_url = strdup(o->store_url);
  s->data_dir = strdup(o->data_dir);
  pthread_mutex_init(&s->mu, NULL);
  {
    /* Its naps are timed on the monotonic clock: a wall clock stepped
     * back must not make it sleep through ticks. */
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
  }
  if (!s->store_url || !s->data_dir ||
      pthread_create(&s->thread, NULL, sched_main, s)) {
    free(s->store_url);
    free(s->data_dir);
    free(s);
    return durin_err_set(err, DURIN_ENOMEM, "cannot start the scheduler");
  }
  *out = s;
  return 0;
}

void sched_stop(struct sched *s)
{
  if (!s)
    return;
  pthread_mutex_lock(&s->mu);
  s->stop = 1;
  pthread_cond_signal(&s->cond);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cond);
  free(s->store_url);
  free(s->data_dir);
  free(s);
}
