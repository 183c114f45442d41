/* Shared helpers for the cmocka unit tests. */
#ifndef DURIN_TEST_H
#define DURIN_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* A fresh temporary directory for one test; free() the result. */
static inline char *test_tmpdir(void)
{
  char tmpl[64] = "/tmp/durin-unit-";
  size_t n = strlen(tmpl);
  char *d;

  /* mkdtemp replaces the last six characters, which must be 'X'. */
  memset(tmpl + n, 'X', 6);
  tmpl[n + 6] = '\0';
  d = mkdtemp(tmpl);

  assert_non_null(d);
  return strdup(d);
}

static inline void test_rmrf(const char *dir)
{
  char cmd[4200];

  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

#endif
