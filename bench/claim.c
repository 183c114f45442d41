/*
 * bench/claim: how many runs the queue hands out per second.
 *
 * N queued runs; W worker processes, each with its own store connection,
 * claim up to B at a time (durin_store_queue_claim: fair share, limits,
 * a new epoch and lease for each) and complete each claimed batch in one
 * fenced transaction, as a worker's group commit does (its fences checked
 * by the server at commit). Prints runs
 * claimed and completed per second, the same unit as the queue figures in
 * BENCHMARKS.md (no-op jobs processed per second).
 *
 *   claim URL [--runs N] [--workers W] [--batch B]
 *
 * URL is sqlite:PATH or postgres://...; the bench EMPTIES the database it
 * is given (a PostgreSQL schema is dropped and made again).
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "durin/store.h"
#include "durin/util.h"

static double now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int reset(const char *url)
{
  PGconn *c;
  PGresult *r;
  int ok;

  if (!strncmp(url, "sqlite:", 7)) {
    unlink(url + 7);
    return 0;
  }
  c = PQconnectdb(url);
  r = PQexec(c, "SET client_min_messages = warning; DROP SCHEMA public "
                "CASCADE; CREATE SCHEMA public; DROP TABLE IF EXISTS "
                "durin_schema");
  ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok)
    fprintf(stderr, "claim: cannot empty %s: %s", url, PQerrorMessage(c));
  PQclear(r);
  PQfinish(c);
  return ok ? 0 : -1;
}

/* One worker: claim, complete, until the queue is empty. */
static int work(const char *url, int idx, int batch)
{
  struct durin_store *s;
  struct durin_err err = { 0 };
  struct durin_claim *c = calloc((size_t)batch, sizeof(*c));
  enum durin_run_status done = DURIN_RUN_SUCCEEDED;
  char owner[64];
  int n, i, total = 0, empty = 0;

  snprintf(owner, sizeof(owner), "bench:%d:%d", idx, (int)getpid());
  if (durin_store_open(url, &s, &err)) {
    fprintf(stderr, "claim: %s\n", err.msg);
    return -1;
  }
  while (empty < 3) {
    struct durin_txn *t;
    int64_t now = durin_now_ms();

    n = 0;
    if (durin_store_queue_claim(s, owner, now, 60000, batch, c, &n, &err)) {
      if (err.code != DURIN_EBUSY) {
        fprintf(stderr, "claim: %s\n", err.msg);
        break;
      }
      continue;
    }
    if (n == 0) {
      empty++;
      usleep(2000);
      continue;
    }
    empty = 0;
    if (durin_txn_begin(s, &t, &err))
      break;
    for (i = 0; i < n; i++) {
      struct durin_run_update u;

      memset(&u, 0, sizeof(u));
      u.status = &done;
      u.reason = "";
      u.started_ms = -1;
      u.finished_ms = now;
      u.release_lease = 1;
      u.now_ms = now;
      if (durin_txn_fence_deferred(t, c[i].id, c[i].epoch, now + 60000, NULL,
                                   &err) ||
          durin_txn_run_update(t, c[i].id, &u, &err))
        break;
    }
    if (i < n || durin_txn_commit(t, &err)) {
      fprintf(stderr, "claim: completing: %s\n", err.msg);
      if (i < n)
        durin_txn_rollback(t);
      break;
    }
    total += n;
  }
  durin_store_close(s);
  free(c);
  return total;
}

int main(int argc, char **argv)
{
  const char *url = argc > 1 ? argv[1] : NULL;
  int runs = 10000, workers = 1, batch = 64, i, status, claimed = 0;
  struct durin_store *s;
  struct durin_err err = { 0 };
  int fd[2];
  double t0, t1;

  for (i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--runs") && i + 1 < argc)
      runs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--workers") && i + 1 < argc)
      workers = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
      batch = atoi(argv[++i]);
    else
      url = NULL;
  }
  if (!url || runs < 1 || workers < 1 || batch < 1) {
    fprintf(stderr, "usage: claim URL [--runs N] [--workers W] [--batch B]\n"
                    "(the bench empties the database at URL)\n");
    return 64;
  }
  if (reset(url) || durin_store_open(url, &s, &err)) {
    fprintf(stderr, "claim: %s\n", err.msg);
    return 1;
  }
  for (i = 0; i < runs; i++) {
    struct durin_run_new n;
    char id[32];

    memset(&n, 0, sizeof(n));
    snprintf(id, sizeof(id), "r%08d", i);
    n.id = id;
    n.name = "bench";
    n.spec_json = "{}";
    n.model = "script:none";
    n.workspace = "/nonexistent";
    n.now_ms = durin_now_ms();
    if (durin_store_run_create(s, &n, &err)) {
      fprintf(stderr, "claim: %s\n", err.msg);
      return 1;
    }
  }
  if (pipe(fd))
    return 1;
  t0 = now_ms();
  for (i = 0; i < workers; i++) {
    if (fork() == 0) {
      int got = work(url, i, batch);

      if (write(fd[1], &got, sizeof(got)) != sizeof(got))
        _exit(1);
      _exit(got < 0);
    }
  }
  close(fd[1]);
  for (i = 0; i < workers; i++) {
    int got = 0;

    if (read(fd[0], &got, sizeof(got)) == sizeof(got) && got > 0)
      claimed += got;
  }
  t1 = now_ms();
  while (wait(&status) > 0)
    ;
  printf("claim: %s, %d runs, %d worker(s), batch %d: %d claimed and "
         "completed in %.0f ms: %.0f runs/s\n",
         strncmp(url, "sqlite:", 7) ? "postgres" : "sqlite", runs, workers,
         batch, claimed, t1 - t0, claimed * 1000.0 / (t1 - t0));
  durin_store_close(s);
  return claimed == runs ? 0 : 1;
}
