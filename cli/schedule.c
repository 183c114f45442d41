/*
 * Firing schedules' ticks (docs/internals/schedules.md): what every
 * `durin serve` does once a second on its own store connection
 * (server/scheduler.c).
 *
 * For each schedule due at now: the ticks from its next_fire_ms up to
 * now are enumerated; with catch-up N the latest N of them run (0: only
 * a tick less than a minute late), the rest are recorded as missed in
 * one claim. Each tick that runs is submitted through the same path as
 * `durin submit` (spec resolved, workspace copied), and the run row is
 * written by durin_store_schedule_fire in the transaction that claims
 * the tick. The workspace copy happens before that transaction: a crash
 * between leaves an unused copy and an unclaimed tick, which any
 * scheduler (this one restarted, or another) claims again with a copy of
 * its own; a scheduler that loses the claim removes its copy.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cmd.h"
#include "durin/sched.h"
#include "durin/spec.h"
#include "durin/util.h"

/* A tick seen later than this is missed, for catch-up 0. */
#define SCHED_GRACE_MS 60000
/* Ticks enumerated per schedule and call at most: a minutely schedule
 * down for a year is 525,600 ticks; beyond this, the enumeration starts
 * again a week before now (those older are missed all the same). */
#define SCHED_MAX_TICKS   20000
#define SCHED_MAX_CATCHUP 100

int64_t cli_sched_now(void)
{
  const char *f = getenv("DURIN_TEST_NOW_FILE");
  char buf[32] = "";
  FILE *fp;

  if (!f || !*f || !(fp = fopen(f, "r")))
    return durin_now_ms();
  if (!fgets(buf, sizeof(buf), fp))
    buf[0] = 0;
  fclose(fp);
  return atoll(buf) > 0 ? atoll(buf) : durin_now_ms();
}

struct fire_ctx {
  struct cli *cli;
  const struct durin_schedule *sc;
  int64_t tick, next;
  const char *cancel_run;
  int called;  /* the store was asked to claim */
  int claimed; /* ... and the claim was ours */
  char run_id[32];
  void (*on_log)(void *arg, const char *line);
  void *log_arg;
};

static void say(const struct fire_ctx *c, const char *fmt, ...)
{
  char line[1024];
  va_list ap;

  if (!c->on_log)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  c->on_log(c->log_arg, line);
}

static void iso_utc(int64_t ms, char *buf, size_t len)
{
  time_t t = (time_t)(ms / 1000);
  struct tm tm;

  gmtime_r(&t, &tm);
  strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int create_claimed(void *arg, const struct durin_run_new *rn,
                          struct durin_err *err)
{
  struct fire_ctx *c = arg;
  struct durin_schedule_fire f = {
    .tenant = c->sc->tenant,
    .name = c->sc->name,
    .tick_ms = c->tick,
    .next_ms = c->next,
    .outcome = "fired",
    .run = rn,
    .cancel_run = c->cancel_run,
    .now_ms = durin_now_ms(),
  };
  int r = durin_store_schedule_fire(c->cli->store, &f, err);

  c->called = 1;
  if (!r) {
    c->claimed = 1;
    snprintf(c->run_id, sizeof(c->run_id), "%s", rn->id);
  }
  return r;
}

/* A tick with no run: skipped, missed or failed. 0, DURIN_ESTATE when
 * another process had it, or a store error. */
static int record(struct fire_ctx *c, const char *outcome, int64_t missed,
                  const char *detail)
{
  struct durin_err err = { 0 };
  struct durin_schedule_fire f = {
    .tenant = c->sc->tenant,
    .name = c->sc->name,
    .tick_ms = c->tick,
    .next_ms = c->next,
    .outcome = outcome,
    .missed = missed,
    .detail = detail,
    .now_ms = durin_now_ms(),
  };
  int r = durin_store_schedule_fire(c->cli->store, &f, &err);

  if (r && r != DURIN_ESTATE)
    say(c, "schedule '%s': %s", c->sc->name, err.msg);
  return r;
}

/* One tick that should run. prev: the schedule's previous run (may be
 * ""); updated when this one made a run. */
static int fire_tick(struct fire_ctx *c, const char *data, char prev[32],
                     char before[32])
{
  struct durin_err err = { 0 };
  struct durin_run_info ri;
  struct durin_spec spec;
  struct cli_submit o;
  char key[300], labels[512], when[32], id[32];
  int active = 0, code;
  json_t *lj;

  c->cancel_run = NULL;
  c->called = c->claimed = 0;
  /* Overlap is judged against the run from before this batch: the
   * catch-up ticks of one batch do not skip or cancel each other. */
  if (*before && durin_store_run_get(c->cli->store, before, &ri, NULL) == 0) {
    active = !durin_run_status_terminal(ri.status);
    durin_run_info_clear(&ri);
  }
  if (active && c->sc->overlap == DURIN_OVERLAP_SKIP) {
    char why[128];

    snprintf(why, sizeof(why), "run %s has not ended (--overlap skip)", before);
    return record(c, "skipped", 0, why);
  }
  if (active && c->sc->overlap == DURIN_OVERLAP_CANCEL)
    c->cancel_run = before;
  if (durin_spec_parse(c->sc->spec_json, NULL, &spec, &err)) {
    char why[sizeof(err.msg) + 32];

    snprintf(why, sizeof(why), "bad pinned spec: %s", err.msg);
    return record(c, "failed", 0, why);
  }
  iso_utc(c->tick, when, sizeof(when));
  snprintf(key, sizeof(key), "schedule:%s:%lld", c->sc->name,
           (long long)c->tick);
  lj = json_pack("{s:s, s:s}", "schedule", c->sc->name, "schedule_tick", when);
  {
    char *t = lj ? json_dumps(lj, JSON_COMPACT) : NULL;

    snprintf(labels, sizeof(labels), "%s", t ? t : "{}");
    free(t);
    json_decref(lj);
  }
  memset(&o, 0, sizeof(o));
  o.tenant = c->sc->tenant;
  o.dedupe_key = key;
  o.labels_json = labels;
  o.created_by = c->sc->created_by;
  o.create = create_claimed;
  o.create_arg = c;
  code = cli_submit_spec(c->cli, data, &spec, &o, id, &err);
  if (c->claimed && c->cancel_run) {
    /* The audit trail, as an operator's cancel leaves one; after the
     * commit, so best effort (the flag itself is durable). */
    json_t *d = json_pack("{s:s, s:s, s:s}", "action", "cancel", "by",
                          c->sc->name, "role", "schedule");

    if (d && durin_store_control_event(c->cli->store, c->cancel_run, "control",
                                       d, durin_now_ms(), &err))
      say(c, "run %s: cannot record the cancel in its log: %s", c->cancel_run,
          err.msg);
    json_decref(d);
  }
  if (c->claimed) {
    say(c, "schedule '%s': tick %s started run %s%s%s", c->sc->name, when,
        c->run_id, c->cancel_run ? ", cancelling run " : "",
        c->cancel_run ? c->cancel_run : "");
    snprintf(prev, 32, "%s", c->run_id);
    before[0] = 0; /* cancelled, or not there: the batch's own go on */
    return 0;
  }
  if (c->called)
    /* Claimed elsewhere (DURIN_ESTATE) or a store error: either way
     * nothing was written, and the next call sees which. */
    return code ? DURIN_ESTATE : 0;
  if (o.deduped) {
    char why[128];

    /* A run submitted by hand with the tick's key: the tick is its. */
    snprintf(why, sizeof(why), "active run %s holds the dedupe key", id);
    return record(c, "skipped", 0, why);
  }
  if (code != EXIT_SPEC) {
    /* The store or the disk failed for now (a failover, a full disk):
     * nothing was claimed, and the tick is tried again at the next
     * pass rather than lost. */
    say(c, "schedule '%s': tick %s not started yet: %s; trying again",
        c->sc->name, when, err.msg);
    return DURIN_ESTATE;
  }
  /* The spec cannot make a run (a workspace gone, a secret removed):
   * recorded, so the schedule moves on and says why. */
  say(c, "schedule '%s': tick %s failed: %s", c->sc->name, when, err.msg);
  return record(c, "failed", 0, err.msg);
}

static int fire_schedule(struct cli *cli, const char *data,
                         const struct durin_schedule *sc, int64_t now,
                         void (*on_log)(void *, const char *), void *log_arg)
{
  struct durin_cron *cron = NULL;
  struct durin_err err = { 0 };
  struct fire_ctx c = {
    .cli = cli, .sc = sc, .on_log = on_log, .log_arg = log_arg
  };
  int64_t ring[SCHED_MAX_CATCHUP + 1], t, after, count = 0, start;
  int64_t keep = sc->catchup > SCHED_MAX_CATCHUP ? SCHED_MAX_CATCHUP :
                 sc->catchup < 1                 ? 1 :
                                                   sc->catchup;
  int nfire, i, r = 0, done = 0;
  char prev[32], before[32];

  if (durin_cron_parse(sc->cron, sc->tz, &cron, &err)) {
    say(&c, "schedule '%s': %s", sc->name, err.msg);
    return 0;
  }
  /* The ticks due: the claimed one, then every one up to now; only the
   * last `keep` are remembered. */
  start = sc->next_fire_ms;
  for (t = start;;) {
    ring[count % keep] = t;
    count++;
    if (durin_cron_next(cron, t, &after)) {
      after = INT64_MAX;
      break;
    }
    if (after > now)
      break;
    if (count >= SCHED_MAX_TICKS && t < now - 7LL * 86400000) {
      /* Far behind: jump to a week before now; what lies between is
       * missed all the same. */
      int64_t t2;

      if (durin_cron_next(cron, now - 7LL * 86400000, &t2)) {
        after = INT64_MAX;
        break;
      }
      if (t2 > now) {
        after = t2;
        break;
      }
      t = t2;
      continue;
    }
    t = after;
  }
  durin_cron_free(cron);
  if (after == INT64_MAX) {
    /* No tick after this one within 30 years: it waits for removal. */
    after = now + 366LL * 86400000;
  }
  nfire = (int)(count < keep ? count : keep);
  if (sc->catchup == 0)
    nfire = now - ring[(count - 1) % keep] < SCHED_GRACE_MS ? 1 : 0;
  snprintf(prev, sizeof(prev), "%s", sc->last_run_id ? sc->last_run_id : "");
  snprintf(before, sizeof(before), "%s", prev);
  if (count > nfire) {
    c.tick = start;
    c.next = nfire ? ring[(count - nfire) % keep] : after;
    if ((r = record(&c, "missed", count - nfire, NULL)))
      return r == DURIN_ESTATE ? 0 : r;
    done++;
  }
  for (i = 0; i < nfire; i++) {
    int64_t k = count - nfire + i;

    c.tick = ring[k % keep];
    c.next = i + 1 < nfire ? ring[(k + 1) % keep] : after;
    if ((r = fire_tick(&c, data, prev, before)))
      return r == DURIN_ESTATE ? done : r;
    done++;
  }
  return done;
}

struct due {
  char **names, **tenants;
  int n, cap;
};

static int collect_due(const struct durin_schedule *sc, void *arg)
{
  struct due *d = arg;

  if (d->n == d->cap) {
    int cap = d->cap ? d->cap * 2 : 16;
    char **a = realloc(d->names, cap * sizeof(*a));

    if (!a)
      return DURIN_ENOMEM;
    d->names = a;
    if (!(a = realloc(d->tenants, cap * sizeof(*a))))
      return DURIN_ENOMEM;
    d->tenants = a;
    d->cap = cap;
  }
  d->names[d->n] = strdup(sc->name);
  d->tenants[d->n] = strdup(sc->tenant);
  d->n++;
  return 0;
}

int cli_sched_fire_due(struct cli *cli, const char *data, int64_t now,
                       void (*on_log)(void *arg, const char *line),
                       void *log_arg)
{
  struct durin_err err = { 0 };
  struct due d = { 0 };
  int r, i, total = 0;

  r = durin_store_schedule_list(cli->store, NULL, now, collect_due, &d, &err);
  for (i = 0; i < d.n; i++) {
    struct durin_schedule sc;

    /* Read again, spec included: another process may have fired it. */
    if (!r && durin_store_schedule_get(cli->store, d.tenants[i], d.names[i],
                                       &sc, NULL) == 0) {
      if (!sc.paused && sc.next_fire_ms && sc.next_fire_ms <= now) {
        int n = fire_schedule(cli, data, &sc, now, on_log, log_arg);

        if (n < 0)
          r = n;
        else
          total += n;
      }
      durin_schedule_clear(&sc);
    }
    free(d.names[i]);
    free(d.tenants[i]);
  }
  free(d.names);
  free(d.tenants);
  if (r && on_log) {
    char line[sizeof(err.msg) + 16];

    snprintf(line, sizeof(line), "scheduler: %s",
             err.msg[0] ? err.msg : durin_strerror(r));
    on_log(log_arg, line);
  }
  return r ? r : total;
}

int cli_schedule_add(struct durin_store *store, struct durin_schedule *sc,
                     int64_t now, struct durin_err *err)
{
  struct durin_cron *cron = NULL;
  const char *p;
  int r;

  if (!sc->name || !*sc->name || strlen(sc->name) > 64 || sc->name[0] == '.')
    return durin_err_set(err, DURIN_EINVAL,
                         "a schedule's name is 1 to 64 letters, digits, "
                         "'-', '_' or '.', not starting with '.'");
  for (p = sc->name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
          (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
      return durin_err_set(err, DURIN_EINVAL,
                           "bad schedule name '%s': use letters, digits, "
                           "'-', '_' or '.'",
                           sc->name);
  if (sc->catchup < 0 || sc->catchup > SCHED_MAX_CATCHUP)
    return durin_err_set(err, DURIN_EINVAL,
                         "catch-up must be 0 to %d (missed ticks to run "
                         "after downtime), not %lld",
                         SCHED_MAX_CATCHUP, (long long)sc->catchup);
  if ((r = durin_cron_parse(sc->cron, sc->tz, &cron, err)))
    return r;
  r = durin_cron_next(cron, now, &sc->next_fire_ms);
  durin_cron_free(cron);
  if (r)
    return durin_err_set(err, DURIN_EINVAL,
                         "cron expression '%s' does not fire within 30 "
                         "years",
                         sc->cron);
  sc->created_ms = durin_now_ms();
  return durin_store_schedule_add(store, sc, err);
}

json_t *cli_schedule_json(const struct durin_schedule *sc, int64_t now)
{
  struct durin_cron *cron = NULL;
  json_t *o, *next = json_array();
  char when[32];

  o = json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:I, s:b, s:I, s:I, s:I}", "name", sc->name,
      "tenant", sc->tenant ? sc->tenant : "default", "cron", sc->cron, "tz",
      sc->tz, "overlap", durin_overlap_name(sc->overlap), "catchup",
      (json_int_t)sc->catchup, "paused", sc->paused, "next_fire_ms",
      (json_int_t)sc->next_fire_ms, "last_fire_ms",
      (json_int_t)sc->last_fire_ms, "created_ms", (json_int_t)sc->created_ms);
  if (!o) {
    json_decref(next);
    return NULL;
  }
  if (sc->next_fire_ms) {
    iso_utc(sc->next_fire_ms, when, sizeof(when));
    json_object_set_new(o, "next_fire", json_string(when));
  }
  if (sc->last_fire_ms) {
    iso_utc(sc->last_fire_ms, when, sizeof(when));
    json_object_set_new(o, "last_fire", json_string(when));
  }
  json_object_set_new(o, "last_run",
                      sc->last_run_id ? json_string(sc->last_run_id) :
                                        json_null());
  json_object_set_new(o, "last_run_status",
                      sc->last_run_status ? json_string(sc->last_run_status) :
                                            json_null());
  if (sc->created_by)
    json_object_set_new(o, "created_by", json_string(sc->created_by));
  /* The next few fire times, as the user's zone says them. */
  if (!sc->paused && next && !durin_cron_parse(sc->cron, sc->tz, &cron, NULL)) {
    int64_t t = sc->next_fire_ms ? sc->next_fire_ms - 1 : now;
    char local[96];

    for (int i = 0; i < 3 && !durin_cron_next(cron, t, &t); i++) {
      durin_cron_format(cron, t, local, sizeof(local));
      json_array_append_new(next, json_string(local));
    }
    durin_cron_free(cron);
  }
  json_object_set_new(o, "upcoming", next);
  return o;
}

json_t *cli_schedule_tick_json(const struct durin_schedule_tick *t)
{
  char when[32];
  json_t *o;

  iso_utc(t->tick_ms, when, sizeof(when));
  o = json_pack("{s:s, s:I, s:s, s:I}", "tick", when, "tick_ms",
                (json_int_t)t->tick_ms, "outcome", t->outcome, "at_ms",
                (json_int_t)t->at_ms);
  if (!o)
    return NULL;
  json_object_set_new(o, "run",
                      t->run_id ? json_string(t->run_id) : json_null());
  if (!strcmp(t->outcome, "missed"))
    json_object_set_new(o, "missed", json_integer(t->missed));
  if (t->detail)
    json_object_set_new(o, "detail", json_string(t->detail));
  return o;
}
