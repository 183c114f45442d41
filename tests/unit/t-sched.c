/* Schedules' clock: cron parsing, its errors, and next fire times across
 * daylight saving changes (lib/sched/cron.c); and the claim of a tick in
 * the store (lib/store/sql-schedules.c), on both stores. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "durin/sched.h"
#include "durin/store.h"
#include "test.h"

/* Unix ms of a UTC wall time (timegm reads no zone). */
static int64_t utc(int y, int mo, int d, int h, int mi)
{
  struct tm tm = { 0 };

  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  return (int64_t)timegm(&tm) * 1000;
}

static int64_t next_of(const char *expr, const char *tz, int64_t after)
{
  struct durin_cron *c = NULL;
  struct durin_err err = { 0 };
  int64_t t = -1;

  if (durin_cron_parse(expr, tz, &c, &err))
    fail_msg("'%s' in %s: %s", expr, tz ? tz : "UTC", err.msg);
  assert_int_equal(durin_cron_next(c, after, &t), 0);
  durin_cron_free(c);
  return t;
}

static void refused(const char *expr, const char *tz, const char *want)
{
  struct durin_cron *c = NULL;
  struct durin_err err = { 0 };

  assert_int_equal(durin_cron_parse(expr, tz, &c, &err), DURIN_EINVAL);
  assert_null(c);
  if (!strstr(err.msg, want))
    fail_msg("'%s': got '%s', want '%s'", expr, err.msg, want);
}

static void test_errors(void **state)
{
  (void)state;
  refused("0 24 * * *", NULL, "field 2 (hour): 24 is out of range 0-23");
  refused("60 * * * *", NULL, "field 1 (minute): 60 is out of range 0-59");
  refused("0 0 0 * *", NULL, "field 3 (day-of-month): 0 is out of range 1-31");
  refused("0 0 * 13 *", NULL, "field 4 (month): 13 is out of range 1-12");
  refused("0 0 * * 8", NULL, "field 5 (day-of-week): 8 is out of range 0-7");
  refused("0 0 * foo *", NULL, "field 4 (month): unknown name 'foo'");
  refused("0 0 * * funday", NULL, "unknown name 'funday'");
  refused("30-10 * * * *", NULL, "field 1 (minute): range 30-10 is backwards");
  refused("*/0 * * * *", NULL, "field 1 (minute): step must be a number 1-59");
  refused("0 3 * *", NULL, "fewer than 5 fields");
  refused("0 3 * * * *", NULL, "more than 5 fields");
  refused("", NULL, "empty cron expression");
  refused("0 3,x * * *", NULL, "field 2 (hour): unknown name 'x'");
  refused("0 3,? * * *", NULL, "field 2 (hour): expected a number");
  refused("0 3 * * 1;", NULL, "field 5 (day-of-week): unexpected ';'");
  refused("@fortnightly", NULL, "unknown cron macro '@fortnightly'");
  /* February 30 never comes; February 29 does. */
  refused("0 0 30 2 *", NULL, "never fires");
  refused("0 0 31 4,6 *", NULL, "never fires");
  refused("0 3 * * *", "Mars/Olympus", "unknown time zone 'Mars/Olympus'");
  refused("0 3 * * *", "Europe/Berln", "unknown time zone 'Europe/Berln'");
}

static void test_fields(void **state)
{
  int64_t t0 = utc(2026, 1, 1, 10, 7);

  (void)state;
  assert_int_equal(next_of("*/15 * * * *", NULL, t0), utc(2026, 1, 1, 10, 15));
  assert_int_equal(next_of("* * * * *", NULL, t0), utc(2026, 1, 1, 10, 8));
  /* Strictly after: a tick at the given instant is the previous one. */
  assert_int_equal(next_of("* * * * *", NULL, utc(2026, 1, 1, 10, 8)),
                   utc(2026, 1, 1, 10, 9));
  assert_int_equal(next_of("5,50 9-11 * * *", NULL, t0),
                   utc(2026, 1, 1, 10, 50));
  assert_int_equal(next_of("10/20 * * * *", NULL, t0), utc(2026, 1, 1, 10, 10));
  /* 2026-01-01 is a Thursday: the next weekday 9:00 in March. */
  assert_int_equal(next_of("0 9 * mar-MAY Mon-Fri", NULL, t0),
                   utc(2026, 3, 2, 9, 0));
  /* Sunday is 0 and 7. */
  assert_int_equal(next_of("0 0 * * 7", NULL, t0), utc(2026, 1, 4, 0, 0));
  assert_int_equal(next_of("0 0 * * sun", NULL, t0), utc(2026, 1, 4, 0, 0));
  /* Both day fields restricted: either matches (the 13th, or a Friday). */
  assert_int_equal(next_of("0 0 13 * fri", NULL, t0), utc(2026, 1, 2, 0, 0));
  /* One of them '*': only the other counts. */
  assert_int_equal(next_of("0 0 13 * *", NULL, t0), utc(2026, 1, 13, 0, 0));
  /* A field that begins with '*' counts as '*' (Vixie cron): the first
   * Friday that is the 1st, 11th, 21st or 31st. */
  assert_int_equal(next_of("0 0 */10 * fri", NULL, t0), utc(2026, 5, 1, 0, 0));
  assert_int_equal(next_of("@hourly", NULL, t0), utc(2026, 1, 1, 11, 0));
  assert_int_equal(next_of("@daily", NULL, t0), utc(2026, 1, 2, 0, 0));
  assert_int_equal(next_of("@weekly", NULL, t0), utc(2026, 1, 4, 0, 0));
  assert_int_equal(next_of("@monthly", NULL, t0), utc(2026, 2, 1, 0, 0));
  assert_int_equal(next_of("@yearly", NULL, t0), utc(2027, 1, 1, 0, 0));
  /* Leap years: February 29 of 2028, then of 2032. */
  assert_int_equal(next_of("0 0 29 2 *", NULL, t0), utc(2028, 2, 29, 0, 0));
  assert_int_equal(next_of("0 0 29 2 *", NULL, utc(2028, 2, 29, 0, 0)),
                   utc(2032, 2, 29, 0, 0));
  /* 2100 is not a leap year. */
  assert_int_equal(next_of("0 0 29 2 *", NULL, utc(2096, 3, 1, 0, 0)),
                   utc(2104, 2, 29, 0, 0));
  /* Year end. */
  assert_int_equal(next_of("59 23 31 12 *", NULL, t0),
                   utc(2026, 12, 31, 23, 59));
  /* A zone without DST: Tokyo is UTC+9. */
  assert_int_equal(next_of("0 3 * * *", "Asia/Tokyo", t0),
                   utc(2026, 1, 1, 18, 0));
}

static void test_dst_berlin(void **state)
{
  int64_t t;

  (void)state;
  /* Spring forward, 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
   * 02:30 does not exist: it fires once, at 03:00 CEST. */
  t = next_of("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12, 0));
  assert_int_equal(t, utc(2026, 3, 29, 1, 0));
  assert_int_equal(next_of("30 2 * * *", "Europe/Berlin", t),
                   utc(2026, 3, 30, 0, 30));
  /* Every quarter of the missing hour: one fire, not four. */
  t = next_of("*/15 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12, 0));
  assert_int_equal(t, utc(2026, 3, 29, 1, 0));
  assert_int_equal(next_of("*/15 2 * * *", "Europe/Berlin", t),
                   utc(2026, 3, 30, 0, 0));
  /* Hourly through the gap: 01:00 CET, then 03:00 CEST. */
  t = next_of("0 * * * *", "Europe/Berlin", utc(2026, 3, 29, 0, 0));
  assert_int_equal(t, utc(2026, 3, 29, 1, 0));
  /* A 03:00 schedule and the gap's end are the same instant: once. */
  t = next_of("0 2,3 * * *", "Europe/Berlin", utc(2026, 3, 28, 12, 0));
  assert_int_equal(t, utc(2026, 3, 29, 1, 0));
  assert_int_equal(next_of("0 2,3 * * *", "Europe/Berlin", t),
                   utc(2026, 3, 30, 0, 0));
  /* Fall back, 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens at
   * 00:30 and 01:30 UTC and fires at the first only. */
  t = next_of("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12, 0));
  assert_int_equal(t, utc(2026, 10, 25, 0, 30));
  assert_int_equal(next_of("30 2 * * *", "Europe/Berlin", t),
                   utc(2026, 10, 26, 1, 30));
  /* Seen from inside the second pass, the first is gone: next day. */
  assert_int_equal(
      next_of("30 2 * * *", "Europe/Berlin", utc(2026, 10, 25, 1, 10)),
      utc(2026, 10, 26, 1, 30));
  /* Every half hour: 02:00 and 02:30 once each, then 03:00 CET. */
  t = next_of("0,30 * * * *", "Europe/Berlin", utc(2026, 10, 24, 23, 45));
  assert_int_equal(t, utc(2026, 10, 25, 0, 0));
  t = next_of("0,30 * * * *", "Europe/Berlin", t);
  assert_int_equal(t, utc(2026, 10, 25, 0, 30));
  assert_int_equal(next_of("0,30 * * * *", "Europe/Berlin", t),
                   utc(2026, 10, 25, 2, 0));
}

static void test_dst_new_york(void **state)
{
  int64_t t;

  (void)state;
  /* 2026-03-08: 02:00 EST becomes 03:00 EDT (07:00 UTC). */
  t = next_of("30 2 * * *", "America/New_York", utc(2026, 3, 7, 12, 0));
  assert_int_equal(t, utc(2026, 3, 8, 7, 0));
  assert_int_equal(next_of("30 2 * * *", "America/New_York", t),
                   utc(2026, 3, 9, 6, 30));
  /* 2026-11-01: 02:00 EDT becomes 01:00 EST; 01:30 at 05:30 and 06:30
   * UTC, fired at the first. */
  t = next_of("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12, 0));
  assert_int_equal(t, utc(2026, 11, 1, 5, 30));
  assert_int_equal(next_of("30 1 * * *", "America/New_York", t),
                   utc(2026, 11, 2, 6, 30));
  /* A daily 03:00 neither skips nor doubles across either change. */
  t = next_of("0 3 * * *", "America/New_York", utc(2026, 3, 7, 12, 0));
  assert_int_equal(t, utc(2026, 3, 8, 7, 0));
  t = next_of("0 3 * * *", "America/New_York", utc(2026, 10, 31, 12, 0));
  assert_int_equal(t, utc(2026, 11, 1, 8, 0));
}

static void test_format(void **state)
{
  struct durin_cron *c = NULL;
  struct durin_err err = { 0 };
  char buf[96];

  (void)state;
  assert_int_equal(durin_cron_parse("0 3 * * *", "Europe/Berlin", &c, &err), 0);
  assert_string_equal(durin_cron_tz(c), "Europe/Berlin");
  durin_cron_format(c, utc(2026, 3, 29, 1, 0), buf, sizeof(buf));
  assert_string_equal(buf, "2026-03-29 03:00 Europe/Berlin (UTC+02:00)");
  durin_cron_free(c);
  assert_int_equal(durin_cron_parse("@daily", "", &c, &err), 0);
  assert_string_equal(durin_cron_tz(c), "UTC");
  durin_cron_free(c);
}

static int count_ticks(const struct durin_schedule_tick *t, void *arg)
{
  (void)t;
  ++*(int *)arg;
  return 0;
}

static int fire(struct durin_store *s, int64_t tick, int64_t next,
                const char *run_id)
{
  struct durin_run_new rn = { run_id, "t", "{}", "script:x", "/tmp", 1000 };
  char key[64];
  struct durin_schedule_fire f = { .name = "n",
                                   .tick_ms = tick,
                                   .next_ms = next,
                                   .outcome = "fired",
                                   .run = &rn,
                                   .now_ms = 1000 };

  snprintf(key, sizeof(key), "schedule:n:%lld", (long long)tick);
  rn.dedupe_key = key;
  return durin_store_schedule_fire(s, &f, NULL);
}

/* A tick is claimed once, on any connection; a claimed, paused or
 * removed schedule's tick makes no run. */
static void test_claim_once(void **state)
{
  struct store_fx *f = *state;
  struct durin_store *other = NULL;
  struct durin_schedule sc = { 0 }, got;
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  int n = 0;

  sc.name = "n";
  sc.cron = "* * * * *";
  sc.tz = "UTC";
  sc.spec_json = "{}";
  sc.catchup = 1;
  sc.next_fire_ms = 60000;
  assert_int_equal(durin_store_schedule_add(f->s, &sc, &err), 0);
  assert_int_equal(durin_store_schedule_add(f->s, &sc, &err), DURIN_EEXIST);
  assert_int_equal(durin_store_open(f->url, &other, NULL), 0);
  assert_int_equal(fire(f->s, 60000, 120000, "r1"), 0);
  /* The same tick again, here and on another connection: refused, and
   * nothing written. */
  assert_int_equal(fire(f->s, 60000, 120000, "r2"), DURIN_ESTATE);
  assert_int_equal(fire(other, 60000, 120000, "r3"), DURIN_ESTATE);
  assert_int_equal(durin_store_run_get(f->s, "r2", &ri, NULL), DURIN_ENOTFOUND);
  assert_int_equal(durin_store_run_get(f->s, "r3", &ri, NULL), DURIN_ENOTFOUND);
  assert_int_equal(durin_store_schedule_get(other, NULL, "n", &got, &err), 0);
  assert_int_equal(got.next_fire_ms, 120000);
  assert_int_equal(got.last_fire_ms, 60000);
  assert_string_equal(got.last_run_id, "r1");
  assert_string_equal(got.last_run_status, "queued");
  durin_schedule_clear(&got);
  /* The next tick, from the other connection. */
  assert_int_equal(fire(other, 120000, 180000, "r4"), 0);
  /* Paused: no tick is claimable; resumed at a later tick. */
  assert_int_equal(durin_store_schedule_set_paused(f->s, NULL, "n", 1, 0, &err),
                   0);
  assert_int_equal(fire(f->s, 180000, 240000, "r5"), DURIN_ESTATE);
  assert_int_equal(
      durin_store_schedule_set_paused(f->s, NULL, "n", 0, 600000, &err), 0);
  assert_int_equal(fire(f->s, 180000, 240000, "r5"), DURIN_ESTATE);
  assert_int_equal(
      durin_store_schedule_ticks(f->s, NULL, "n", 10, count_ticks, &n, &err),
      0);
  assert_int_equal(n, 2);
  assert_int_equal(durin_store_schedule_remove(f->s, NULL, "n", &err), 0);
  assert_int_equal(fire(f->s, 600000, 660000, "r6"), DURIN_ESTATE);
  assert_int_equal(durin_store_schedule_remove(f->s, NULL, "n", &err),
                   DURIN_ENOTFOUND);
  durin_store_close(other);
}

static int setup(void **state)
{
  return store_fx_open(state, "s.db");
}

static int teardown(void **state)
{
  return store_fx_close(state);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_errors),
    cmocka_unit_test(test_fields),
    cmocka_unit_test(test_dst_berlin),
    cmocka_unit_test(test_dst_new_york),
    cmocka_unit_test(test_format),
    cmocka_unit_test_setup_teardown(test_claim_once, setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
