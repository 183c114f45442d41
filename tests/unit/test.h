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

#include "durin/util.h"

/* A fresh temporary directory for one test; free() the result. */
static inline char *test_tmpdir(void)
{
  char d[64];

  assert_int_equal(durin_mktmpdir("durin-unit", d, sizeof(d)), 0);
  return strdup(d);
}

static inline void test_rmrf(const char *dir)
{
  char cmd[4200];

  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

#endif
