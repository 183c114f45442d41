/*
 * Schedules' clock: cron expressions and their next fire time in a time
 * zone (lib/sched/cron.c, docs/internals/schedules.md). Pure: no store,
 * no process-wide state (the zone is ICU's, per object; no TZ, no tzset).
 *
 * Five fields, minute hour day-of-month month day-of-week, each `*`, a
 * number, a range `A-B`, a step `/N` after either, or a comma list of
 * them; months jan..dec and weekdays sun..sat by name, weekday 7 is
 * Sunday too. When both day fields are restricted, a day matches either
 * (cron's OR rule). @hourly @daily @weekly @monthly @yearly (@annually)
 * stand for their usual expressions.
 *
 * Daylight saving time: a wall time that does not exist (spring forward)
 * fires once, at the first instant after the gap; one that happens twice
 * (fall back) fires once, at its first occurrence.
 *
 * Threads: a struct durin_cron is used by one thread at a time.
 */
#ifndef DURIN_SCHED_H
#define DURIN_SCHED_H

#include <stdint.h>

#include "durin/error.h"

struct durin_cron;

/*
 * Parses expr in time zone tz (an IANA name such as "Europe/Berlin";
 * NULL or "" is UTC). DURIN_EINVAL with err naming the field and what is
 * wrong ("field 2 (hour): 24 is out of range 0-23"), an unknown zone, or
 * an expression that can never fire (February 30).
 */
int durin_cron_parse(const char *expr, const char *tz, struct durin_cron **out,
                     struct durin_err *err);
void durin_cron_free(struct durin_cron *c);
/* The first fire time strictly after after_ms (Unix ms, UTC), a whole
 * minute; DURIN_ENOTFOUND if none within 30 years. */
int durin_cron_next(struct durin_cron *c, int64_t after_ms, int64_t *out);
/* The zone's canonical name, as parsed ("UTC" for none). */
const char *durin_cron_tz(const struct durin_cron *c);
/* The local wall time of ms in c's zone, "2026-03-29 03:00 CEST"-like,
 * into buf. */
void durin_cron_format(struct durin_cron *c, int64_t ms, char *buf, size_t len);

#endif
