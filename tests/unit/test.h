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
#include <libpq-fe.h>
#include <unistd.h>

#include "durin/store.h"
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

/* Whether this program runs as the PostgreSQL variant of a store test. */
static inline int test_on_pg(void)
{
  const char *v = getenv("DURIN_TEST_STORE");

  return v && !strcmp(v, "pg");
}

/* For main(): a PostgreSQL variant without a cluster skips (exit 77). */
static inline int test_store_missing(void)
{
  if (test_on_pg() && !getenv("DURIN_TEST_PG")) {
    fprintf(stderr, "skipped: DURIN_TEST_PG names no PostgreSQL cluster "
                    "(tests/run-all.sh starts one)\n");
    return 1;
  }
  return 0;
}

static inline void test_pg_exec(const char *url, const char *sql)
{
  PGconn *c = PQconnectdb(url);
  PGresult *r;

  if (PQstatus(c) != CONNECTION_OK)
    fail_msg("cannot reach %s: %s", url, PQerrorMessage(c));
  r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    fail_msg("%s: %s", sql, PQresultErrorMessage(r));
  PQclear(r);
  PQfinish(c);
}

/*
 * The store URL for one test: SQLite at dir/name, or on the PostgreSQL
 * variant an empty schema in a database this program owns on the cluster
 * at $DURIN_TEST_PG (created once; emptied for every test).
 */
static inline void test_store_url(const char *dir, const char *name, char *url,
                                  size_t len)
{
  static char db[64];
  const char *base = getenv("DURIN_TEST_PG");
  char sql[128];

  if (!test_on_pg() || !base) {
    snprintf(url, len, "sqlite:%s/%s", dir, name);
    return;
  }
  if (!db[0]) {
    snprintf(db, sizeof(db), "t_%ld", (long)getpid());
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
    snprintf(url, len, "%s/postgres", base);
    test_pg_exec(url, sql);
  }
  snprintf(url, len, "%s/%s", base, db);
  test_pg_exec(url, "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA "
                    "public");
}

/* The store fixture of the store-facing tests: a temporary directory and
 * the store at name in it (or on the PostgreSQL variant, as above). */
struct store_fx {
  char *dir;
  char url[4200];
  struct durin_store *s;
};

static inline int store_fx_open(void **state, const char *name)
{
  struct store_fx *f = calloc(1, sizeof(*f));

  f->dir = test_tmpdir();
  test_store_url(f->dir, name, f->url, sizeof(f->url));
  assert_int_equal(durin_store_open(f->url, &f->s, NULL), 0);
  *state = f;
  return 0;
}

static inline int store_fx_close(void **state)
{
  struct store_fx *f = *state;

  durin_store_close(f->s);
  test_rmrf(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

#endif
