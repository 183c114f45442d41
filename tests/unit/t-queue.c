/* The queue on the SQLite backend: claims (fair share, priority, limits,
 * delayed start), dedupe, heartbeats, signals, pause, the watchdog, and
 * savepoints for group commit. */
#include <stdio.h>

#include "durin/store.h"
#include "durin/util.h"
#include "test.h"

static int setup(void **state)
{
  return store_fx_open(state, "q.db");
}

static int teardown(void **state)
{
  return store_fx_close(state);
}

static int64_t clock_ms = 1000;

static void submit(struct durin_store *s, const char *id, const char *tenant,
                   int64_t prio, const char *key)
{
  struct durin_run_new n = { id, "t", "{}", "script:x", "/tmp", clock_ms++ };

  n.tenant = tenant;
  n.priority = prio;
  n.concurrency_key = key;
  assert_int_equal(durin_store_run_create(s, &n, NULL), 0);
}

/* Claims up to max runs; returns how many and copies their ids. */
static int claim(struct durin_store *s, const char *owner, int max,
                 struct durin_claim *out)
{
  struct durin_err err = { 0 };
  int n = -1;

  assert_int_equal(
      durin_store_queue_claim(s, owner, clock_ms, 10000, max, out, &n, &err),
      0);
  return n;
}

static void finish(struct durin_store *s, const struct durin_claim *c)
{
  enum durin_run_status st = DURIN_RUN_SUCCEEDED;
  struct durin_run_update u;
  struct durin_txn *txn;

  memset(&u, 0, sizeof(u));
  u.status = &st;
  u.started_ms = u.finished_ms = -1;
  u.release_lease = 1;
  u.now_ms = clock_ms;
  assert_int_equal(durin_txn_begin(s, &txn, NULL), 0);
  assert_int_equal(durin_txn_fence(txn, c->id, c->epoch, clock_ms, NULL), 0);
  assert_int_equal(durin_txn_run_update(txn, c->id, &u, NULL), 0);
  assert_int_equal(durin_txn_commit(txn, NULL), 0);
}

static void test_priority_then_age(void **state)
{
  struct store_fx *f = *state;
  struct durin_claim c[8];

  submit(f->s, "r1", NULL, 0, NULL);
  submit(f->s, "r2", NULL, 5, NULL);
  submit(f->s, "r3", NULL, 0, NULL);
  assert_int_equal(claim(f->s, "w1", 1, c), 1);
  assert_string_equal(c[0].id, "r2");
  assert_int_equal(c[0].epoch, 1);
  assert_int_equal(c[0].attempt, 1);
  assert_int_equal(claim(f->s, "w1", 8, c), 2);
  assert_string_equal(c[0].id, "r1");
  assert_string_equal(c[1].id, "r3");
  /* Nothing is claimed twice. */
  assert_int_equal(claim(f->s, "w2", 8, c), 0);
}

/* One claim reaches past the first page of a tenant's candidates, also
 * when a page is all runs that a concurrency key holds back. */
static void test_claim_pages(void **state)
{
  struct store_fx *f = *state;
  struct durin_claim c[300];
  char id[32];
  int i;

  for (i = 0; i < 200; i++) {
    snprintf(id, sizeof(id), "k%03d", i);
    submit(f->s, id, NULL, 5, "repo");
  }
  for (i = 0; i < 100; i++) {
    snprintf(id, sizeof(id), "p%03d", i);
    submit(f->s, id, NULL, 0, NULL);
  }
  assert_int_equal(claim(f->s, "w1", 300, c), 101);
  assert_string_equal(c[0].id, "k000");
  for (i = 0; i < 100; i++) {
    snprintf(id, sizeof(id), "p%03d", i);
    assert_string_equal(c[i + 1].id, id);
  }
  assert_int_equal(claim(f->s, "w1", 300, c), 0);
}

static void test_fair_share(void **state)
{
  struct store_fx *f = *state;
  struct durin_claim c[64];
  char id[32];
  int i, n, seen_b = 0;

  for (i = 0; i < 200; i++) {
    snprintf(id, sizeof(id), "a%03d", i);
    submit(f->s, id, "big", 9, NULL);
  }
  assert_int_equal(claim(f->s, "w1", 10, c), 10);
  submit(f->s, "b000", "small", 0, NULL);
  /* One tenant's backlog (and its higher priority) does not starve the
   * other tenant's single run: it goes first, holding nothing. */
  n = claim(f->s, "w1", 3, c);
  assert_int_equal(n, 3);
  for (i = 0; i < n; i++)
    seen_b += !strcmp(c[i].id, "b000");
  assert_int_equal(seen_b, 1);
  assert_string_equal(c[0].id, "b000");
}

/*
 * One slot (a worker with --max-runs 1): tenants with nothing held tie on
 * the fair-share count at every claim, and the tie goes to the tenant
 * served least recently, so they alternate. Z's one run, submitted third,
 * runs second, not after all of A's.
 */
static void test_fair_share_one_slot(void **state)
{
  struct store_fx *f = *state;
  const char *want[] = { "a1", "z1", "a2", "a3", "a4" };
  struct durin_claim c[1];
  int i;

  submit(f->s, "a1", "A", 0, NULL);
  submit(f->s, "a2", "A", 0, NULL);
  submit(f->s, "z1", "Z", 0, NULL);
  submit(f->s, "a3", "A", 0, NULL);
  submit(f->s, "a4", "A", 0, NULL);
  for (i = 0; i < 5; i++) {
    assert_int_equal(claim(f->s, "w1", 1, c), 1);
    assert_string_equal(c[0].id, want[i]);
    clock_ms++;
    finish(f->s, &c[0]);
  }
  /* The name does not decide: Z, served longest ago, goes before A. */
  submit(f->s, "a5", "A", 0, NULL);
  submit(f->s, "z2", "Z", 0, NULL);
  assert_int_equal(claim(f->s, "w1", 1, c), 1);
  assert_string_equal(c[0].id, "z2");
  /* Across workers: another worker's claim counts as service too. */
  submit(f->s, "b1", "B", 0, NULL);
  assert_int_equal(claim(f->s, "w2", 1, c), 1);
  assert_string_equal(c[0].id, "b1");
  assert_int_equal(claim(f->s, "w3", 1, c), 1);
  assert_string_equal(c[0].id, "a5");
}

static void test_limits(void **state)
{
  struct store_fx *f = *state;
  struct durin_claim c[16], d[16];
  struct durin_err err = { 0 };

  submit(f->s, "k1", NULL, 0, "repo-x");
  submit(f->s, "k2", NULL, 0, "repo-x");
  submit(f->s, "k3", NULL, 0, "repo-y");
  /* A concurrency key without a limit runs one at a time. */
  assert_int_equal(claim(f->s, "w1", 16, c), 2);
  assert_string_equal(c[0].id, "k1");
  assert_string_equal(c[1].id, "k3");
  assert_int_equal(claim(f->s, "w1", 16, d), 0);
  finish(f->s, &c[0]);
  assert_int_equal(claim(f->s, "w1", 16, d), 1);
  assert_string_equal(d[0].id, "k2");

  /* Tenant limits. */
  assert_int_equal(durin_store_limit_set(f->s, "tenant:t", 1, &err), 0);
  assert_int_equal(durin_store_limit_set(f->s, "nonsense", 1, &err),
                   DURIN_EINVAL);
  submit(f->s, "t1", "t", 0, NULL);
  submit(f->s, "t2", "t", 0, NULL);
  assert_int_equal(claim(f->s, "w1", 16, c), 1);
  assert_int_equal(claim(f->s, "w1", 16, d), 0);
  assert_int_equal(durin_store_limit_set(f->s, "tenant:t", -1, &err), 0);
  assert_int_equal(claim(f->s, "w1", 16, d), 1);
}

static void test_delayed_start(void **state)
{
  struct store_fx *f = *state;
  struct durin_run_new n = { "late", "t", "{}", "script:x", "/tmp", clock_ms };
  struct durin_claim c[2];

  n.not_before_ms = clock_ms + 5000;
  assert_int_equal(durin_store_run_create(f->s, &n, NULL), 0);
  assert_int_equal(claim(f->s, "w1", 2, c), 0);
  clock_ms += 5001;
  assert_int_equal(claim(f->s, "w1", 2, c), 1);
}

static void test_dedupe(void **state)
{
  struct store_fx *f = *state;
  struct durin_run_new n = { "d1", "t", "{}", "script:x", "/tmp", clock_ms };
  struct durin_err err = { 0 };
  struct durin_claim c[2];
  char id[32];

  n.dedupe_key = "nightly";
  assert_int_equal(durin_store_run_create(f->s, &n, NULL), 0);
  n.id = "d2";
  assert_int_equal(durin_store_run_create(f->s, &n, &err), DURIN_EEXIST);
  assert_int_equal(durin_store_run_find_active(f->s, NULL, "nightly", id, &err),
                   0);
  assert_string_equal(id, "d1");
  /* Another tenant's key is its own. */
  n.tenant = "other";
  assert_int_equal(durin_store_run_create(f->s, &n, &err), 0);
  /* Once the first has ended, the key is free again. */
  assert_int_equal(claim(f->s, "w1", 1, c), 1);
  assert_string_equal(c[0].id, "d1");
  finish(f->s, &c[0]);
  n.tenant = NULL;
  n.id = "d3";
  assert_int_equal(durin_store_run_create(f->s, &n, &err), 0);
}

static int count_held(const struct durin_held *h, void *arg)
{
  (*(int *)arg)++;
  (void)h;
  return 0;
}

static void test_heartbeat_and_signals(void **state)
{
  struct store_fx *f = *state;
  struct durin_claim c[4];
  struct durin_run_info ri;
  int n = 0;

  submit(f->s, "h1", NULL, 0, NULL);
  submit(f->s, "h2", NULL, 0, NULL);
  assert_int_equal(claim(f->s, "w1", 4, c), 2);
  assert_int_equal(
      durin_store_lease_renew(f->s, "w1", 99999, count_held, &n, NULL), 0);
  assert_int_equal(n, 2);
  assert_int_equal(durin_store_run_get(f->s, "h1", &ri, NULL), 0);
  assert_int_equal(ri.lease_expires_ms, 99999);
  durin_run_info_clear(&ri);
  n = 0;
  assert_int_equal(durin_store_signals(f->s, "w1", count_held, &n, NULL), 0);
  assert_int_equal(n, 0);
  assert_int_equal(durin_store_run_request_cancel(f->s, "h2", NULL), 0);
  assert_int_equal(durin_store_run_pause(f->s, "h1", clock_ms, NULL), 0);
  assert_int_equal(durin_store_signals(f->s, "w1", count_held, &n, NULL), 0);
  assert_int_equal(n, 2);
  /* A held run is only flagged; its holder pauses it. */
  assert_int_equal(durin_store_run_get(f->s, "h1", &ri, NULL), 0);
  assert_int_equal(ri.status, DURIN_RUN_QUEUED);
  assert_int_equal(ri.pause_requested, 1);
  durin_run_info_clear(&ri);
}

static void test_pause_unheld(void **state)
{
  struct store_fx *f = *state;
  struct durin_claim c[2];
  struct durin_run_info ri;
  struct durin_err err = { 0 };

  submit(f->s, "p1", NULL, 0, NULL);
  assert_int_equal(durin_store_run_pause(f->s, "p1", clock_ms, &err), 0);
  assert_int_equal(durin_store_run_get(f->s, "p1", &ri, NULL), 0);
  assert_int_equal(ri.status, DURIN_RUN_PAUSED);
  durin_run_info_clear(&ri);
  assert_int_equal(claim(f->s, "w1", 2, c), 0);
  assert_int_equal(durin_store_run_unpause(f->s, "p1", clock_ms, &err), 0);
  assert_int_equal(durin_store_run_unpause(f->s, "p1", clock_ms, &err),
                   DURIN_ESTATE);
  assert_int_equal(claim(f->s, "w1", 2, c), 1);
}

static void test_watchdog(void **state)
{
  struct store_fx *f = *state;
  struct durin_run_new n = { "w", "t", "{}", "script:x", "/tmp", clock_ms };
  struct durin_watchdog_opts o = { 0 };
  struct durin_watchdog_report rep;
  struct durin_claim c[2];
  struct durin_run_info ri;
  struct durin_txn *txn;
  int i;

  n.max_recoveries = 2;
  assert_int_equal(durin_store_run_create(f->s, &n, NULL), 0);
  for (i = 0; i < 3; i++) {
    assert_int_equal(claim(f->s, "w1", 2, c), 1);
    /* The lease is live: nothing to do. */
    o.now_ms = clock_ms;
    assert_int_equal(durin_store_watchdog(f->s, &o, &rep, NULL), 0);
    assert_int_equal(rep.requeued + rep.failed, 0);
    clock_ms += 10001;
    o.now_ms = clock_ms;
    assert_int_equal(durin_store_watchdog(f->s, &o, &rep, NULL), 0);
    /* The lost holder is fenced. */
    assert_int_equal(durin_txn_begin(f->s, &txn, NULL), 0);
    assert_int_equal(durin_txn_fence(txn, "w", c[0].epoch, clock_ms, NULL),
                     DURIN_EFENCED);
    durin_txn_rollback(txn);
    if (i < 2) {
      assert_int_equal(rep.requeued, 1);
    } else {
      assert_int_equal(rep.failed, 1);
    }
  }
  assert_int_equal(durin_store_run_get(f->s, "w", &ri, NULL), 0);
  assert_int_equal(ri.status, DURIN_RUN_FAILED);
  assert_int_equal(ri.recoveries, 3);
  assert_non_null(strstr(ri.reason, "retry budget"));
  assert_int_equal(ri.last_seq, 4); /* 3 lease_expired + run_finished */
  durin_run_info_clear(&ri);
  assert_int_equal(claim(f->s, "w1", 2, c), 0);
}

static void test_stall(void **state)
{
  struct store_fx *f = *state;
  struct durin_watchdog_opts o = { 0 };
  struct durin_watchdog_report rep;
  struct durin_claim c[2];
  struct durin_run_info ri;
  int n = 0;

  submit(f->s, "s1", NULL, 0, NULL);
  assert_int_equal(claim(f->s, "w1", 2, c), 1);
  clock_ms += 5000;
  assert_int_equal(
      durin_store_lease_renew(f->s, "w1", clock_ms + 10000, NULL, NULL, NULL),
      0);
  o.now_ms = clock_ms;
  o.stall_ms = 4000;
  o.stall_escalate = 1;
  assert_int_equal(durin_store_watchdog(f->s, &o, &rep, NULL), 0);
  assert_int_equal(rep.stalled, 1);
  assert_int_equal(durin_store_run_get(f->s, "s1", &ri, NULL), 0);
  assert_int_equal(ri.status, DURIN_RUN_NEEDS_HUMAN);
  assert_null(ri.lease_owner);
  durin_run_info_clear(&ri);
  /* The holder's heartbeat no longer reports it: it drops the run. */
  assert_int_equal(durin_store_lease_renew(f->s, "w1", clock_ms + 10000,
                                           count_held, &n, NULL),
                   0);
  assert_int_equal(n, 0);
}

static void test_savepoints(void **state)
{
  struct store_fx *f = *state;
  struct durin_claim c[2];
  struct durin_event ev = { 0, 1, 1, "note", "{}" };
  struct durin_run_info ri;
  struct durin_txn *txn;
  int r;

  submit(f->s, "g1", NULL, 0, NULL);
  submit(f->s, "g2", NULL, 0, NULL);
  assert_int_equal(claim(f->s, "w1", 2, c), 2);
  /* One transaction, two runs; the second's fence fails and only its
   * writes are undone. */
  assert_int_equal(durin_txn_begin(f->s, &txn, NULL), 0);
  assert_int_equal(durin_txn_savepoint(txn, NULL), 0);
  assert_int_equal(durin_txn_fence(txn, "g1", c[0].epoch, clock_ms, NULL), 0);
  assert_int_equal(durin_txn_events_append(txn, "g1", &ev, 1, NULL), 0);
  assert_int_equal(durin_txn_savepoint_end(txn, 1, NULL), 0);
  assert_int_equal(durin_txn_savepoint(txn, NULL), 0);
  assert_int_equal(durin_txn_events_append(txn, "g2", &ev, 1, NULL), 0);
  r = durin_txn_fence(txn, "g2", c[1].epoch + 7, clock_ms, NULL);
  assert_int_equal(r, DURIN_EFENCED);
  assert_int_equal(durin_txn_savepoint_end(txn, 0, NULL), 0);
  assert_int_equal(durin_txn_commit(txn, NULL), 0);
  assert_int_equal(durin_store_run_get(f->s, "g1", &ri, NULL), 0);
  assert_int_equal(ri.last_seq, 1);
  durin_run_info_clear(&ri);
  assert_int_equal(durin_store_run_get(f->s, "g2", &ri, NULL), 0);
  assert_int_equal(ri.last_seq, 0);
  durin_run_info_clear(&ri);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_priority_then_age, setup, teardown),
    cmocka_unit_test_setup_teardown(test_claim_pages, setup, teardown),
    cmocka_unit_test_setup_teardown(test_fair_share, setup, teardown),
    cmocka_unit_test_setup_teardown(test_fair_share_one_slot, setup, teardown),
    cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
    cmocka_unit_test_setup_teardown(test_delayed_start, setup, teardown),
    cmocka_unit_test_setup_teardown(test_dedupe, setup, teardown),
    cmocka_unit_test_setup_teardown(test_heartbeat_and_signals, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_pause_unheld, setup, teardown),
    cmocka_unit_test_setup_teardown(test_watchdog, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stall, setup, teardown),
    cmocka_unit_test_setup_teardown(test_savepoints, setup, teardown),
  };

  if (test_store_missing())
    return 77;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
