/* Clocks, ids and hashing. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <sodium.h>

#include "durin/util.h"

int64_t durin_now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t durin_mono_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t durin_mono_us(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void durin_fmt_time(int64_t ms, char *out, size_t outlen)
{
  time_t t = (time_t)(ms / 1000);
  struct tm tm;

  gmtime_r(&t, &tm);
  snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
           tm.tm_sec, (int)(ms % 1000));
}

void durin_fmt_duration(int64_t ms, char *out, size_t outlen)
{
  if (ms < 0)
    ms = 0;
  if (ms < 1000)
    snprintf(out, outlen, "%dms", (int)ms);
  else if (ms < 60000)
    snprintf(out, outlen, "%.1fs", (double)ms / 1000.0);
  else if (ms < 3600000)
    snprintf(out, outlen, "%dm%02ds", (int)(ms / 60000), (int)(ms / 1000 % 60));
  else
    snprintf(out, outlen, "%dh%02dm", (int)(ms / 3600000),
             (int)(ms / 60000 % 60));
}

int durin_random(void *out, size_t n)
{
  unsigned char *p = out;

  while (n > 0) {
    ssize_t r = getrandom(p, n, 0);

    if (r < 0) {
      if (errno == EINTR)
        continue;
      return DURIN_EIO;
    }
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

int durin_run_id_new(char out[32])
{
  unsigned char rnd[4];
  int64_t now = durin_now_ms();

  if (durin_random(rnd, sizeof(rnd)))
    return DURIN_EIO;
  /* Time first, so ids sort by submission time in listings. */
  snprintf(out, 32, "r%012llx%02x%02x%02x%02x",
           (unsigned long long)now & 0xffffffffffffULL, rnd[0], rnd[1], rnd[2],
           rnd[3]);
  return 0;
}

void durin_sha256_hex(const void *data, size_t len, char out[65])
{
  unsigned char h[crypto_hash_sha256_BYTES];

  crypto_hash_sha256(h, data, len);
  sodium_bin2hex(out, 65, h, sizeof(h));
}

size_t durin_edit_distance(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b), i, j;
  size_t row[64];

  if (lb >= sizeof(row) / sizeof(row[0]) || la >= 64)
    return (size_t)-1;
  for (j = 0; j <= lb; j++)
    row[j] = j;
  for (i = 1; i <= la; i++) {
    size_t prev = row[0];

    row[0] = i;
    for (j = 1; j <= lb; j++) {
      size_t cur = row[j];
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      size_t best = prev + cost;

      if (row[j] + 1 < best)
        best = row[j] + 1;
      if (row[j - 1] + 1 < best)
        best = row[j - 1] + 1;
      row[j] = best;
      prev = cur;
    }
  }
  return row[lb];
}

int durin_known_word(const char *word, const char *const *known,
                     const char **near)
{
  size_t bestd = 3, d;
  int i;

  *near = NULL;
  for (i = 0; known[i]; i++) {
    if (!strcmp(known[i], word))
      return 1;
    d = durin_edit_distance(known[i], word);
    if (d < bestd) {
      bestd = d;
      *near = known[i];
    }
  }
  return 0;
}
