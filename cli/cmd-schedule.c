/*
 * durin schedule add | ls | history | pause | resume | rm: runs that
 * start themselves on a cron schedule (docs/internals/schedules.md).
 * The ticks are fired by `durin serve` (cli/schedule.c); this command
 * only writes and reads the schedules' rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cmd.h"
#include "durin/sched.h"
#include "durin/spec.h"
#include "durin/util.h"

static const char schedule_usage[] =
    "usage: durin schedule add NAME --cron EXPR [--tz ZONE] SPEC\n"
    "                          [--overlap skip|queue|cancel-previous]\n"
    "                          [--catchup N] [--tenant T]\n"
    "       durin schedule ls [NAME] [--tenant T] [--json]\n"
    "       durin schedule history NAME [--tenant T] [--limit N] [--json]\n"
    "       durin schedule pause|resume|rm NAME [--tenant T]\n\n"
    "A schedule submits SPEC (pinned when it is added: its model, budgets\n"
    "and workspace as they resolve now) at every tick of EXPR, a cron\n"
    "expression: minute hour day-of-month month day-of-week, or @hourly,\n"
    "@daily, @weekly, @monthly, @yearly. ZONE is an IANA time zone\n"
    "(default UTC); across daylight saving changes a tick is neither\n"
    "skipped nor doubled. Ticks are fired by 'durin serve': any number of\n"
    "serve processes on one store start exactly one run per tick, labelled\n"
    "with the schedule and the tick (dedupe key schedule:NAME:TICK_MS).\n\n"
    "--overlap: when the previous run has not ended, skip the tick (the\n"
    "default; recorded as skipped), queue another run anyway, or\n"
    "cancel-previous and start the new one.\n"
    "--catchup N: after downtime, run at most the N most recent missed\n"
    "ticks (default 1; 0: none, only a tick less than a minute late runs);\n"
    "the others are recorded as missed. Ticks while paused are not caught\n"
    "up: resume starts from the next tick.\n\n"
    "ls shows each schedule's next and last tick and last run; history\n"
    "lists the ticks: fired (with the run), skipped, missed, failed.\n";

struct opts {
  const char *name, *cron, *tz, *spec, *tenant, *overlap;
  long long catchup, limit;
  int json;
};

static int parse_int(const char *opt, const char *v, long long *out)
{
  char *end;

  *out = strtoll(v, &end, 10);
  if (!*v || *end || *out < 0) {
    cli_error("schedule: %s wants a whole number >= 0, not '%s'", opt, v);
    return EXIT_USAGE;
  }
  return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
  int i, code;

  memset(o, 0, sizeof(*o));
  o->catchup = 1;
  o->limit = 20;
  for (i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

    if (!strcmp(a, "--json")) {
      o->json = 1;
      continue;
    }
    if (!strcmp(a, "--cron") || !strcmp(a, "--tz") || !strcmp(a, "--tenant") ||
        !strcmp(a, "--overlap") || !strcmp(a, "--catchup") ||
        !strcmp(a, "--limit")) {
      if (!v) {
        cli_error("schedule: no value for %s", a);
        return EXIT_USAGE;
      }
      i++;
      if (!strcmp(a, "--cron"))
        o->cron = v;
      else if (!strcmp(a, "--tz"))
        o->tz = v;
      else if (!strcmp(a, "--tenant"))
        o->tenant = v;
      else if (!strcmp(a, "--overlap"))
        o->overlap = v;
      else if ((code = parse_int(
                    a, v, !strcmp(a, "--catchup") ? &o->catchup : &o->limit)))
        return code;
      continue;
    }
    if (a[0] == '-' && a[1])
      return cli_bad_arg("schedule", a, schedule_usage);
    if (!o->name) {
      o->name = a;
    } else if (!o->spec) {
      o->spec = a;
    } else {
      cli_error("schedule: unexpected argument '%s'", a);
      return EXIT_USAGE;
    }
  }
  return 0;
}

static void print_row(const struct durin_schedule *sc)
{
  char next[40] = "-", last[40] = "-";
  time_t t;
  struct tm tm;

  if (sc->next_fire_ms && !sc->paused) {
    t = (time_t)(sc->next_fire_ms / 1000);
    gmtime_r(&t, &tm);
    strftime(next, sizeof(next), "%Y-%m-%dT%H:%MZ", &tm);
  }
  if (sc->last_fire_ms) {
    t = (time_t)(sc->last_fire_ms / 1000);
    gmtime_r(&t, &tm);
    strftime(last, sizeof(last), "%Y-%m-%dT%H:%MZ", &tm);
  }
  printf("%-20s %-16s %-18s %-18s %-18s %-7s %s%s%s%s\n", sc->name, sc->cron,
         sc->tz, next, last, sc->paused ? "paused" : "active",
         sc->last_run_id ? sc->last_run_id : "-",
         sc->last_run_status ? " (" : "",
         sc->last_run_status ? sc->last_run_status : "",
         sc->last_run_status ? ")" : "");
}

struct list_ctx {
  int json, n;
  int64_t now;
};

static int list_one(const struct durin_schedule *sc, void *arg)
{
  struct list_ctx *c = arg;

  if (c->json) {
    json_t *j = cli_schedule_json(sc, c->now);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

    printf("%s\n", s ? s : "{}");
    free(s);
    json_decref(j);
  } else {
    if (!c->n)
      printf("%-20s %-16s %-18s %-18s %-18s %-7s %s\n", "NAME", "CRON", "TZ",
             "NEXT (UTC)", "LAST (UTC)", "STATE", "LAST RUN");
    print_row(sc);
  }
  c->n++;
  return 0;
}

static int print_tick(const struct durin_schedule_tick *t, void *arg)
{
  const int *json = arg;
  json_t *j = cli_schedule_tick_json(t);

  if (*json) {
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

    printf("%s\n", s ? s : "{}");
    free(s);
  } else {
    const char *when = json_string_value(json_object_get(j, "tick"));

    printf("%-22s %-8s %s", when ? when : "?", t->outcome,
           t->run_id ? t->run_id : "");
    if (!strcmp(t->outcome, "missed"))
      printf("%lld tick(s) from here not run (catch-up)", (long long)t->missed);
    if (t->detail)
      printf("%s%s", t->run_id ? "  " : "", t->detail);
    printf("\n");
  }
  json_decref(j);
  return 0;
}

static int schedule_add(struct cli *cli, const struct opts *o)
{
  struct durin_schedule sc;
  struct durin_spec spec;
  struct durin_err err = { 0 };
  char *dumped;
  int r, code;

  if (!o->name || !o->cron || !o->spec) {
    cli_error("schedule add: give NAME, --cron EXPR and SPEC");
    fputs(schedule_usage, stderr);
    return EXIT_USAGE;
  }
  memset(&sc, 0, sizeof(sc));
  if (o->overlap && durin_overlap_parse(o->overlap, &sc.overlap)) {
    cli_error("schedule add: --overlap is skip, queue or cancel-previous, "
              "not '%s'",
              o->overlap);
    return EXIT_USAGE;
  }
  {
    struct durin_cron *c = NULL;

    /* The expression before the spec: its message is the likelier. */
    if (durin_cron_parse(o->cron, o->tz, &c, &err)) {
      cli_error("schedule add: %s", err.msg);
      return EXIT_SPEC;
    }
    durin_cron_free(c);
  }
  if ((code = cli_load_spec(o->spec, &spec)))
    return code;
  dumped = durin_spec_dump(&spec);
  durin_spec_clear(&spec);
  if (!dumped) {
    cli_error("schedule add: out of memory");
    return EXIT_STORE;
  }
  if ((code = cli_open_store(cli))) {
    free(dumped);
    return code;
  }
  sc.tenant = (char *)(o->tenant ? o->tenant : "default");
  sc.name = (char *)o->name;
  sc.cron = (char *)o->cron;
  sc.tz = (char *)(o->tz && *o->tz ? o->tz : "UTC");
  sc.spec_json = dumped;
  sc.catchup = o->catchup;
  r = cli_schedule_add(cli->store, &sc, cli_sched_now(), &err);
  free(dumped);
  if (r) {
    cli_error("schedule add: %s", err.msg);
    return r == DURIN_EINVAL ? EXIT_SPEC : cli_exit_for(r);
  }
  {
    struct durin_cron *c = NULL;
    int64_t t = sc.next_fire_ms - 1;
    char local[96];

    printf("schedule '%s' added; next ticks:\n", o->name);
    if (!durin_cron_parse(o->cron, sc.tz, &c, NULL)) {
      for (int i = 0; i < 3 && !durin_cron_next(c, t, &t); i++) {
        durin_cron_format(c, t, local, sizeof(local));
        printf("  %s\n", local);
      }
      durin_cron_free(c);
    }
    printf("ticks are fired by 'durin serve' on this store\n");
  }
  return EXIT_OK;
}

int cmd_schedule(int argc, char **argv, struct cli *cli)
{
  struct durin_err err = { 0 };
  struct opts o;
  const char *sub;
  int code, r = 0;

  if (cli_wants_help(argc, argv) || argc < 2) {
    fputs(schedule_usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? EXIT_USAGE : EXIT_OK;
  }
  sub = argv[1];
  if (strcmp(sub, "add") && strcmp(sub, "ls") && strcmp(sub, "history") &&
      strcmp(sub, "pause") && strcmp(sub, "resume") && strcmp(sub, "rm"))
    return cli_bad_arg("schedule", sub, schedule_usage);
  if ((code = parse_opts(argc, argv, &o)))
    return code;
  if (strcmp(sub, "add") &&
      (o.cron || o.tz || o.overlap || o.spec ||
       (strcmp(sub, "ls") && strcmp(sub, "history") && o.json))) {
    cli_error("schedule %s: unexpected option or argument (see 'durin "
              "schedule --help')",
              sub);
    return EXIT_USAGE;
  }
  if (!strcmp(sub, "add"))
    return schedule_add(cli, &o);
  if (strcmp(sub, "ls") && !o.name) {
    cli_error("schedule %s: give the schedule's NAME", sub);
    return EXIT_USAGE;
  }
  if ((code = cli_open_store(cli)))
    return code;
  if (!strcmp(sub, "ls")) {
    struct list_ctx c = { o.json, 0, cli_sched_now() };

    if (o.name) {
      struct durin_schedule sc;

      if (!(r = durin_store_schedule_get(cli->store, o.tenant, o.name, &sc,
                                         &err))) {
        list_one(&sc, &c);
        durin_schedule_clear(&sc);
      }
    } else {
      r = durin_store_schedule_list(cli->store, o.tenant, 0, list_one, &c,
                                    &err);
      if (!r && !c.n && !o.json)
        printf("no schedules (add one with 'durin schedule add')\n");
    }
  } else if (!strcmp(sub, "history")) {
    struct durin_schedule sc;

    if (!(r = durin_store_schedule_get(cli->store, o.tenant, o.name, &sc,
                                       &err))) {
      durin_schedule_clear(&sc);
      r = durin_store_schedule_ticks(cli->store, o.tenant, o.name, (int)o.limit,
                                     print_tick, &o.json, &err);
    }
  } else if (!strcmp(sub, "rm")) {
    if (!(r = durin_store_schedule_remove(cli->store, o.tenant, o.name, &err)))
      printf("schedule '%s' removed (its runs stay)\n", o.name);
  } else {
    int pause = !strcmp(sub, "pause");
    int64_t next = 0;
    struct durin_schedule sc;

    /* Resuming starts at the first tick after now: ticks while paused
     * are not caught up. */
    if (!pause && !(r = durin_store_schedule_get(cli->store, o.tenant, o.name,
                                                 &sc, &err))) {
      struct durin_cron *c = NULL;

      /* After its last tick too: a clock behind the serve that fired it
       * must not set a tick already fired again. */
      if (durin_cron_parse(sc.cron, sc.tz, &c, &err) ||
          durin_cron_next(c,
                          cli_sched_now() > sc.last_fire_ms ? cli_sched_now() :
                                                              sc.last_fire_ms,
                          &next))
        r = DURIN_EINVAL;
      durin_cron_free(c);
      durin_schedule_clear(&sc);
    }
    if (!r)
      r = durin_store_schedule_set_paused(cli->store, o.tenant, o.name, pause,
                                          next, &err);
    if (!r)
      printf("schedule '%s' %s\n", o.name, pause ? "paused" : "resumed");
  }
  if (r) {
    cli_error("schedule %s: %s", sub, err.msg);
    return r == DURIN_ENOTFOUND ? EXIT_NOT_FOUND : cli_exit_for(r);
  }
  return EXIT_OK;
}
