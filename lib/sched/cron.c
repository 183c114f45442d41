/*
 * Cron expressions and their next fire time in a time zone
 * (durin/sched.h).
 *
 * The search walks local wall-clock days forward in plain civil
 * arithmetic and asks the zone only to turn a matching wall time into
 * an instant. ICU's calendar (unicode/ucal.h, Debian's libicu) does that
 * conversion: it reads the system's zone rules per object, so nothing
 * here touches TZ or tzset, which are process-wide. Its two wall-time
 * attributes are exactly cron's DST rules: a skipped wall time becomes
 * the next valid one (the first instant after the gap), a repeated one
 * its first occurrence. Several skipped wall times of one gap map to the
 * same instant, which fires once because a fire time must be strictly
 * after the previous one.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unicode/ucal.h>
#include <unicode/ustring.h>

#include "durin/sched.h"

struct durin_cron {
  uint64_t minute; /* bits 0..59 */
  uint32_t hour;   /* bits 0..23 */
  uint32_t dom;    /* bits 1..31 */
  uint32_t month;  /* bits 1..12 */
  uint32_t dow;    /* bits 0..6, Sunday 0 */
  int dom_star;    /* the field began with '*' */
  int dow_star;
  UCalendar *cal;
  char tz[128];
};

struct field_def {
  const char *name;
  int lo, hi;
  const char *const *names; /* index + names_base is the value */
  int names_base;
};

static const char *const month_names[] = { "jan", "feb", "mar", "apr", "may",
                                           "jun", "jul", "aug", "sep", "oct",
                                           "nov", "dec", NULL };
static const char *const dow_names[] = { "sun", "mon", "tue", "wed",
                                         "thu", "fri", "sat", NULL };

static const struct field_def fields[5] = {
  { "minute", 0, 59, NULL, 0 },          { "hour", 0, 23, NULL, 0 },
  { "day-of-month", 1, 31, NULL, 0 },    { "month", 1, 12, month_names, 1 },
  { "day-of-week", 0, 7, dow_names, 0 },
};

static const struct {
  const char *macro, *expr;
} macros[] = {
  { "@yearly", "0 0 1 1 *" },  { "@annually", "0 0 1 1 *" },
  { "@monthly", "0 0 1 * *" }, { "@weekly", "0 0 * * 0" },
  { "@daily", "0 0 * * *" },   { "@midnight", "0 0 * * *" },
  { "@hourly", "0 * * * *" },
};

/* One number or name at *p; advances p. */
static int parse_value(const struct field_def *f, int idx, const char **p,
                       int *out, struct durin_err *err)
{
  const char *s = *p;
  long v = 0;

  if (isdigit((unsigned char)*s)) {
    int n = 0;

    while (isdigit((unsigned char)*s) && n < 6) {
      v = v * 10 + (*s++ - '0');
      n++;
    }
    if (isdigit((unsigned char)*s))
      return durin_err_set(err, DURIN_EINVAL, "field %d (%s): number too long",
                           idx + 1, f->name);
    if (v < f->lo || v > f->hi)
      return durin_err_set(err, DURIN_EINVAL,
                           "field %d (%s): %ld is out of range %d-%d", idx + 1,
                           f->name, v, f->lo, f->hi);
  } else if (isalpha((unsigned char)*s)) {
    char word[16];
    int n = 0, i;

    while (isalpha((unsigned char)s[n]) && n < 15) {
      word[n] = (char)tolower((unsigned char)s[n]);
      n++;
    }
    word[n] = 0;
    for (i = 0; f->names && f->names[i]; i++)
      if (!strcmp(word, f->names[i]))
        break;
    if (!f->names || !f->names[i])
      return durin_err_set(
          err, DURIN_EINVAL, "field %d (%s): unknown name '%s'%s", idx + 1,
          f->name, word,
          f->names ? (f->names == month_names ? " (use jan..dec or 1-12)" :
                                                " (use sun..sat or 0-7)") :
                     " (a number is expected)");
    v = i + f->names_base;
    s += n;
  } else {
    return durin_err_set(
        err, DURIN_EINVAL, "field %d (%s): expected a number%s, not '%c'",
        idx + 1, f->name, f->names ? " or a name" : "", *s ? *s : ' ');
  }
  *out = (int)v;
  *p = s;
  return 0;
}

/* One comma-separated field into a bit set. */
static int parse_field(const char *text, int idx, uint64_t *bits, int *star,
                       struct durin_err *err)
{
  const struct field_def *f = &fields[idx];
  const char *p = text;
  uint64_t set = 0;
  int r;

  *star = *p == '*';
  for (;;) {
    int a, b, step = 1, range = 0;

    if (*p == '*') {
      a = f->lo;
      b = f->hi;
      p++;
      range = 1;
    } else {
      if ((r = parse_value(f, idx, &p, &a, err)))
        return r;
      b = a;
      if (*p == '-') {
        p++;
        if ((r = parse_value(f, idx, &p, &b, err)))
          return r;
        if (b < a)
          return durin_err_set(err, DURIN_EINVAL,
                               "field %d (%s): range %d-%d is backwards",
                               idx + 1, f->name, a, b);
        range = 1;
      }
    }
    if (*p == '/') {
      long s = 0;
      int n = 0;

      p++;
      while (isdigit((unsigned char)*p) && n < 6) {
        s = s * 10 + (*p++ - '0');
        n++;
      }
      if (!n || s <= 0 || s > f->hi)
        return durin_err_set(err, DURIN_EINVAL,
                             "field %d (%s): step must be a number 1-%d",
                             idx + 1, f->name, f->hi);
      step = (int)s;
      /* "5/15" means from 5 to the end, every 15 (Vixie cron). */
      if (!range)
        b = f->hi;
    }
    for (int v = a; v <= b; v += step)
      set |= (uint64_t)1 << v;
    if (*p == ',') {
      p++;
      continue;
    }
    if (*p)
      return durin_err_set(err, DURIN_EINVAL,
                           "field %d (%s): unexpected '%c' in '%s'", idx + 1,
                           f->name, *p, text);
    break;
  }
  *bits = set;
  return 0;
}

static const int month_days[13] = { 0,  31, 29, 31, 30, 31, 30,
                                    31, 31, 30, 31, 30, 31 };

/* Days since 1970-01-01 of a civil date, and back (Howard Hinnant's). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

  return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;

  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

int durin_cron_parse(const char *expr, const char *tz, struct durin_cron **out,
                     struct durin_err *err)
{
  struct durin_cron *c;
  char buf[256], *part[5], *save = NULL, *tok;
  UChar uz[128], canon[128];
  UErrorCode st = U_ZERO_ERROR;
  UBool system = 0;
  int n = 0, r, i, m;

  *out = NULL;
  if (!expr || !*expr)
    return durin_err_set(err, DURIN_EINVAL,
                         "empty cron expression: give five fields, e.g. "
                         "\"0 3 * * *\" for 03:00 every day");
  while (isspace((unsigned char)*expr))
    expr++;
  if (*expr == '@') {
    for (i = 0; i < (int)(sizeof(macros) / sizeof(macros[0])); i++)
      if (!strcmp(expr, macros[i].macro))
        break;
    if (i == (int)(sizeof(macros) / sizeof(macros[0])))
      return durin_err_set(err, DURIN_EINVAL,
                           "unknown cron macro '%s': use @hourly, @daily, "
                           "@weekly, @monthly or @yearly",
                           expr);
    expr = macros[i].expr;
  }
  if (strlen(expr) >= sizeof(buf))
    return durin_err_set(err, DURIN_EINVAL, "cron expression too long");
  snprintf(buf, sizeof(buf), "%s", expr);
  for (tok = strtok_r(buf, " \t", &save); tok;
       tok = strtok_r(NULL, " \t", &save)) {
    if (n == 5) {
      n++;
      break;
    }
    part[n++] = tok;
  }
  if (n != 5)
    return durin_err_set(err, DURIN_EINVAL,
                         "cron expression '%s' has %s5 fields: it wants "
                         "minute hour day-of-month month day-of-week, e.g. "
                         "\"0 3 * * *\"",
                         expr, n > 5 ? "more than " : "fewer than ");
  if (!(c = calloc(1, sizeof(*c))))
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  {
    uint64_t b[5];
    int star[5];

    for (i = 0; i < 5; i++)
      if ((r = parse_field(part[i], i, &b[i], &star[i], err))) {
        free(c);
        return r;
      }
    c->minute = b[0];
    c->hour = (uint32_t)b[1];
    c->dom = (uint32_t)b[2];
    c->month = (uint32_t)b[3];
    /* Weekday 7 is Sunday. */
    c->dow = (uint32_t)((b[4] | (b[4] >> 7)) & 0x7f);
    c->dom_star = star[2];
    c->dow_star = star[4];
  }
  /* A day of the month no chosen month has (February 30) never fires,
   * unless the weekday field can pick days by itself. */
  if (c->dow_star || c->dom_star) {
    int ok = 0;

    for (m = 1; m <= 12 && !ok; m++)
      if (c->month & (1u << m))
        for (i = 1; i <= month_days[m] && !ok; i++)
          ok = !!(c->dom & (1u << i));
    if (!ok) {
      free(c);
      return durin_err_set(err, DURIN_EINVAL,
                           "cron expression '%s' never fires: no month in "
                           "field 4 (month) has a day in field 3 "
                           "(day-of-month)",
                           expr);
    }
  }
  if (!tz || !*tz)
    tz = "UTC";
  if (strlen(tz) >= sizeof(c->tz)) {
    free(c);
    return durin_err_set(err, DURIN_EINVAL, "time zone name too long");
  }
  u_uastrcpy(uz, tz);
  ucal_getCanonicalTimeZoneID(uz, -1, canon, 128, &system, &st);
  if (U_FAILURE(st) || !system) {
    free(c);
    return durin_err_set(err, DURIN_EINVAL,
                         "unknown time zone '%s': use an IANA name such as "
                         "'Europe/Berlin' or 'America/New_York' (see "
                         "/usr/share/zoneinfo)",
                         tz);
  }
  c->cal = ucal_open(uz, -1, "en_US_POSIX", UCAL_GREGORIAN, &st);
  if (U_FAILURE(st) || !c->cal) {
    free(c);
    return durin_err_set(err, DURIN_EINVAL, "cannot open time zone '%s': %s",
                         tz, u_errorName(st));
  }
  ucal_setAttribute(c->cal, UCAL_LENIENT, 1);
  ucal_setAttribute(c->cal, UCAL_REPEATED_WALL_TIME, UCAL_WALLTIME_FIRST);
  ucal_setAttribute(c->cal, UCAL_SKIPPED_WALL_TIME, UCAL_WALLTIME_NEXT_VALID);
  snprintf(c->tz, sizeof(c->tz), "%s", tz);
  *out = c;
  return 0;
}

void durin_cron_free(struct durin_cron *c)
{
  if (!c)
    return;
  if (c->cal)
    ucal_close(c->cal);
  free(c);
}

const char *durin_cron_tz(const struct durin_cron *c)
{
  return c->tz;
}

static int local_of(struct durin_cron *c, int64_t ms, int64_t *days,
                    int *minute)
{
  UErrorCode st = U_ZERO_ERROR;
  int y, mo, d, h, mi;

  ucal_setMillis(c->cal, (UDate)ms, &st);
  y = ucal_get(c->cal, UCAL_EXTENDED_YEAR, &st);
  mo = ucal_get(c->cal, UCAL_MONTH, &st) + 1;
  d = ucal_get(c->cal, UCAL_DATE, &st);
  h = ucal_get(c->cal, UCAL_HOUR_OF_DAY, &st);
  mi = ucal_get(c->cal, UCAL_MINUTE, &st);
  if (U_FAILURE(st))
    return -1;
  *days = days_from_civil(y, mo, d);
  *minute = h * 60 + mi;
  return 0;
}

static int instant_of(struct durin_cron *c, int64_t y, int mo, int d, int h,
                      int mi, int64_t *out)
{
  UErrorCode st = U_ZERO_ERROR;
  UDate t;

  ucal_clear(c->cal);
  ucal_set(c->cal, UCAL_EXTENDED_YEAR, (int32_t)y);
  ucal_set(c->cal, UCAL_MONTH, mo - 1);
  ucal_set(c->cal, UCAL_DATE, d);
  ucal_set(c->cal, UCAL_HOUR_OF_DAY, h);
  ucal_set(c->cal, UCAL_MINUTE, mi);
  t = ucal_getMillis(c->cal, &st);
  if (U_FAILURE(st))
    return -1;
  *out = (int64_t)t;
  return 0;
}

static int day_matches(const struct durin_cron *c, int64_t days, int m, int d)
{
  int wd = (int)(((days % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
  int dom_ok = !!(c->dom & (1u << d)), dow_ok = !!(c->dow & (1u << wd));

  if (!(c->month & (1u << m)))
    return 0;
  if (c->dom_star || c->dow_star)
    return dom_ok && dow_ok;
  return dom_ok || dow_ok;
}

int durin_cron_next(struct durin_cron *c, int64_t after_ms, int64_t *out)
{
  int64_t day0, k;
  int from;

  if (local_of(c, after_ms, &day0, &from))
    return DURIN_EINVAL;
  from++; /* the next whole minute of wall time */
  for (k = 0; k <= 366 * 30; k++) {
    int64_t days = day0 + k, y;
    int m, d;

    civil_from_days(days, &y, &m, &d);
    if (!day_matches(c, days, m, d))
      continue;
    for (int h = 0; h < 24; h++) {
      if (!(c->hour & (1u << h)))
        continue;
      for (int mi = 0; mi < 60; mi++) {
        int64_t t;

        if (!(c->minute & ((uint64_t)1 << mi)) ||
            (k == 0 && h * 60 + mi < from))
          continue;
        if (instant_of(c, y, m, d, h, mi, &t))
          return DURIN_EINVAL;
        /* A repeated wall time seen from its second pass, or a skipped
         * one whose gap's end already fired: not after, so not again. */
        if (t > after_ms) {
          *out = t;
          return 0;
        }
      }
    }
  }
  return DURIN_ENOTFOUND;
}

void durin_cron_format(struct durin_cron *c, int64_t ms, char *buf, size_t len)
{
  UErrorCode st = U_ZERO_ERROR;
  int64_t days, y;
  int minute, m, d, off;

  if (local_of(c, ms, &days, &minute)) {
    snprintf(buf, len, "?");
    return;
  }
  off = ucal_get(c->cal, UCAL_ZONE_OFFSET, &st) +
        ucal_get(c->cal, UCAL_DST_OFFSET, &st);
  civil_from_days(days, &y, &m, &d);
  off /= 60000;
  snprintf(buf, len, "%04lld-%02d-%02d %02d:%02d %s (UTC%c%02d:%02d)",
           (long long)y, m, d, minute / 60, minute % 60, c->tz,
           off < 0 ? '-' : '+', abs(off) / 60, abs(off) % 60);
}
