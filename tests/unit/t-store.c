/* The store interface, on the SQLite backend: create, claim, fenced
 * transactions, contiguous sequences, the ledger and pending records. */
#include <stdio.h>

#include "durin/store.h"
#include "durin/util.h"
#include "test.h"

static int setup(void **state)
{
  return store_fx_open(state, "sub/dir/t.db");
}

static int teardown(void **state)
{
  return store_fx_close(state);
}

static void create(struct durin_store *s, const char *id)
{
  struct durin_run_new n = { id, "t", "{}", "script:x", "/tmp", 1000 };

  assert_int_equal(durin_store_run_create(s, &n, NULL), 0);
}

static void test_bad_urls(void **state)
{
  struct durin_store *s = NULL;
  struct durin_err err = { 0 };

  (void)state;
  assert_int_equal(durin_store_open("mysql://x", &s, &err), DURIN_EURL);
  assert_non_null(strstr(err.msg, "sqlite:PATH"));
  assert_int_equal(durin_store_open("sqlite:", &s, &err), DURIN_EURL);
  assert_int_equal(durin_store_open("sqlite:/tmp/x.db?sync=bogus", &s, &err),
                   DURIN_EURL);
  assert_non_null(strstr(err.msg, "bogus"));
  assert_int_not_equal(durin_store_open("sqlite:/proc/nope/x.db", &s, &err), 0);
  assert_non_null(strstr(err.msg, "/proc/nope"));
}

static void test_create_get_resolve(void **state)
{
  struct store_fx *f = *state;
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  char id[32];

  create(f->s, "rabc1");
  create(f->s, "rabd2");
  assert_int_equal(durin_store_run_get(f->s, "rabc1", &ri, &err), 0);
  assert_string_equal(ri.id, "rabc1");
  assert_int_equal(ri.status, DURIN_RUN_QUEUED);
  durin_run_info_clear(&ri);
  assert_int_equal(durin_store_run_resolve(f->s, "rabc", id, &err), 0);
  assert_string_equal(id, "rabc1");
  assert_int_equal(durin_store_run_resolve(f->s, "rab", id, &err),
                   DURIN_EINVAL);
  assert_non_null(strstr(err.msg, "ambiguous"));
  assert_int_equal(durin_store_run_resolve(f->s, "zzz", id, &err),
                   DURIN_ENOTFOUND);
  assert_int_equal(durin_store_run_get(f->s, "nope", &ri, &err),
                   DURIN_ENOTFOUND);
}

static void test_fencing(void **state)
{
  struct store_fx *f = *state;
  struct durin_txn *t;
  struct durin_err err = { 0 };
  struct durin_event ev[2] = { { 0, 1, 1, "a", "{}" }, { 0, 1, 1, "b", "{}" } };
  uint64_t e1, e2;

  create(f->s, "r1");
  assert_int_equal(durin_store_run_claim(f->s, "r1", "w1", 10, 1000, &e1, &err),
                   0);
  assert_int_equal(durin_store_run_claim(f->s, "r1", "w2", 20, 1000, &e2, &err),
                   0);
  assert_true(e2 > e1);
  /* The old holder's writes are refused, and nothing of them lands. */
  assert_int_equal(durin_txn_begin(f->s, &t, &err), 0);
  assert_int_equal(durin_txn_fence(t, "r1", e1, 5000, &err), DURIN_EFENCED);
  durin_txn_rollback(t);
  assert_int_equal(durin_txn_begin(f->s, &t, &err), 0);
  assert_int_equal(durin_txn_fence(t, "r1", e2, 5000, &err), 0);
  assert_int_equal(durin_txn_events_append(t, "r1", ev, 2, &err), 0);
  assert_int_equal(durin_txn_commit(t, &err), 0);
  assert_int_equal(ev[0].seq, 1);
  assert_int_equal(ev[1].seq, 2);
}

static int count_ev(const struct durin_event *ev, void *arg)
{
  int64_t *n = arg;

  assert_int_equal(ev->seq, *n + 1);
  (*n)++;
  return 0;
}

static void test_rollback_loses_only_txn(void **state)
{
  struct store_fx *f = *state;
  struct durin_txn *t;
  struct durin_event ev = { 0, 1, 1, "x", "{\"a\":1}" };
  uint64_t e;
  int64_t n = 0, step;
  char *ck = NULL;
  int i;

  create(f->s, "r2");
  assert_int_equal(durin_store_run_claim(f->s, "r2", "w", 0, 1000, &e, NULL),
                   0);
  for (i = 0; i < 3; i++) {
    assert_int_equal(durin_txn_begin(f->s, &t, NULL), 0);
    assert_int_equal(durin_txn_fence(t, "r2", e, 1000, NULL), 0);
    assert_int_equal(durin_txn_events_append(t, "r2", &ev, 1, NULL), 0);
    assert_int_equal(
        durin_txn_checkpoint_put(t, "r2", i + 1, "{\"c\":1}", NULL), 0);
    if (i == 2)
      durin_txn_rollback(t);
    else
      assert_int_equal(durin_txn_commit(t, NULL), 0);
  }
  assert_int_equal(
      durin_store_events_read(f->s, "r2", 1, 0, count_ev, &n, NULL), 0);
  assert_int_equal(n, 2);
  assert_int_equal(durin_store_checkpoint_get(f->s, "r2", &step, &ck, NULL), 0);
  assert_int_equal(step, 2);
  free(ck);
}

static int failed_at_commit;

/* One step's transaction with the fence checked at commit: *seq gets
 * the event's sequence, *cancel the run's cancel flag. */
static int deferred_step(struct durin_store *s, const char *id, uint64_t e,
                         int64_t *seq, int *cancel, struct durin_err *err)
{
  struct durin_event ev = { 0, 1, 1, "x", "{\"a\":1}" };
  struct durin_txn *t;
  int r;

  assert_int_equal(durin_txn_begin(s, &t, err), 0);
  failed_at_commit = 0;
  r = durin_txn_fence_deferred(t, id, e, 5000, cancel, err);
  if (r) {
    durin_txn_rollback(t);
    return r;
  }
  assert_int_equal(durin_txn_events_append(t, id, &ev, 1, err), 0);
  r = durin_txn_commit(t, err);
  failed_at_commit = r != 0;
  if (!r)
    *seq = ev.seq;
  return r;
}

/*
 * The fence checked by the server: a lost lease fails the commit and
 * nothing lands; the cancel flag arrives with the commit; an event log
 * that moved on under the holder's connection (never expected: only the
 * holder appends) fails with EBUSY, and the write goes through when sent
 * again. SQLite answers every fence at once: the same outcomes, sooner.
 */
static void test_deferred_fence(void **state)
{
  struct store_fx *f = *state;
  struct durin_store *s2, *s3;
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  struct durin_txn *t;
  struct durin_event ev = { 0, 1, 1, "y", "{}" };
  uint64_t e1, e2;
  int64_t seq = 0, n = 0;
  int cancel = -1, r, pg = !strncmp(f->url, "postgres", 8);

  create(f->s, "r5");
  assert_int_equal(durin_store_run_claim(f->s, "r5", "w1", 10, 1000, &e1, NULL),
                   0);
  assert_int_equal(deferred_step(f->s, "r5", e1, &seq, &cancel, &err), 0);
  assert_int_equal(seq, 1);
  assert_int_equal(cancel, 0);
  assert_int_equal(deferred_step(f->s, "r5", e1, &seq, &cancel, &err), 0);
  assert_int_equal(seq, 2);
  assert_int_equal(durin_store_run_request_cancel(f->s, "r5", NULL), 0);
  assert_int_equal(deferred_step(f->s, "r5", e1, &seq, &cancel, &err), 0);
  assert_int_equal(seq, 3);
  assert_int_equal(cancel, 1);

  /* Another process takes the run over: the old holder's step fails,
   * at the fence (SQLite) or at its commit (PostgreSQL). */
  assert_int_equal(durin_store_open(f->url, &s2, NULL), 0);
  assert_int_equal(durin_store_run_claim(s2, "r5", "w2", 20, 1000, &e2, NULL),
                   0);
  r = deferred_step(f->s, "r5", e1, &seq, NULL, &err);
  assert_int_equal(r, DURIN_EFENCED);
  assert_int_equal(failed_at_commit, pg);
  assert_non_null(strstr(err.msg, "lost"));
  assert_int_equal(durin_store_run_get(f->s, "r5", &ri, NULL), 0);
  assert_int_equal(ri.last_seq, 3);
  durin_run_info_clear(&ri);

  /* The new holder writes; then a third connection appends under the
   * same epoch behind its back. */
  assert_int_equal(deferred_step(s2, "r5", e2, &seq, NULL, &err), 0);
  assert_int_equal(seq, 4);
  assert_int_equal(durin_store_open(f->url, &s3, NULL), 0);
  assert_int_equal(durin_txn_begin(s3, &t, NULL), 0);
  assert_int_equal(durin_txn_fence(t, "r5", e2, 5000, NULL), 0);
  assert_int_equal(durin_txn_events_append(t, "r5", &ev, 1, NULL), 0);
  assert_int_equal(durin_txn_commit(t, NULL), 0);
  assert_int_equal(ev.seq, 5);
  r = deferred_step(s2, "r5", e2, &seq, NULL, &err);
  assert_int_equal(r != 0, pg);
  if (r) {
    assert_int_equal(r, DURIN_EBUSY);
    assert_true(failed_at_commit);
    assert_non_null(strstr(err.msg, "event log"));
    assert_int_equal(deferred_step(s2, "r5", e2, &seq, NULL, &err), 0);
  }
  assert_int_equal(seq, 6);
  assert_int_equal(deferred_step(s2, "r5", e2, &seq, NULL, &err), 0);
  assert_int_equal(seq, 7);
  /* Fenced twice in one transaction: the second goes on from the first. */
  assert_int_equal(durin_txn_begin(s2, &t, NULL), 0);
  assert_int_equal(durin_txn_fence_deferred(t, "r5", e2, 5000, NULL, NULL), 0);
  assert_int_equal(durin_txn_events_append(t, "r5", &ev, 1, NULL), 0);
  assert_int_equal(durin_txn_fence_deferred(t, "r5", e2, 5000, NULL, NULL), 0);
  assert_int_equal(durin_txn_events_append(t, "r5", &ev, 1, NULL), 0);
  assert_int_equal(durin_txn_commit(t, NULL), 0);
  assert_int_equal(ev.seq, 9);
  assert_int_equal(deferred_step(s2, "r5", e2, &seq, NULL, &err), 0);
  assert_int_equal(seq, 10);
  assert_int_equal(
      durin_store_events_read(f->s, "r5", 1, 0, count_ev, &n, NULL), 0);
  assert_int_equal(n, 10);
  durin_store_close(s3);
  durin_store_close(s2);
}

static int collect(const struct durin_ledger_entry *e, void *arg)
{
  int *n = arg;

  if (e->call_idx == 0) {
    assert_true(e->done);
    assert_string_equal(e->outcome, "{\"ok\":true}");
  } else {
    assert_false(e->done);
  }
  (*n)++;
  return 0;
}

/* Sets bit call_idx of *arg for each contained ledger row. */
static int collect_contained(const struct durin_ledger_entry *e, void *arg)
{
  if (e->contained)
    *(int *)arg |= 1 << e->call_idx;
  return 0;
}

static void test_ledger_and_pending(void **state)
{
  struct store_fx *f = *state;
  struct durin_txn *t;
  struct durin_ledger_entry le;
  uint64_t e;
  int64_t step;
  char *resp = NULL;
  int n = 0, i;

  create(f->s, "r3");
  assert_int_equal(durin_store_run_claim(f->s, "r3", "w", 0, 1000, &e, NULL),
                   0);
  assert_int_equal(durin_txn_begin(f->s, &t, NULL), 0);
  assert_int_equal(durin_txn_fence(t, "r3", e, 1000, NULL), 0);
  assert_int_equal(durin_txn_pending_put(t, "r3", 4, "{\"r\":1}", NULL), 0);
  for (i = 0; i < 2; i++) {
    memset(&le, 0, sizeof(le));
    snprintf(le.run_id, sizeof(le.run_id), "r3");
    le.step = 4;
    le.call_idx = i;
    le.call_id = "c";
    le.tool = "bash";
    le.effect = "unsafe";
    le.args_hash = "h";
    le.idem_key = "k";
    le.args = "{}";
    le.contained = i; /* call 1 runs in a layer of its own */
    assert_int_equal(durin_txn_ledger_intent(t, &le, NULL), 0);
  }
  assert_int_equal(durin_txn_commit(t, NULL), 0);
  assert_int_equal(durin_txn_begin(f->s, &t, NULL), 0);
  assert_int_equal(
      durin_txn_ledger_outcome(t, "r3", 4, 0, "{\"ok\":true}", 5, NULL), 0);
  assert_int_equal(durin_txn_ledger_outcome(t, "r3", 4, 9, "{}", 5, NULL),
                   DURIN_ENOTFOUND);
  assert_int_equal(durin_txn_commit(t, NULL), 0);
  assert_int_equal(durin_store_ledger_read(f->s, "r3", 4, collect, &n, NULL),
                   0);
  assert_int_equal(n, 2);
  n = 0;
  assert_int_equal(
      durin_store_ledger_read(f->s, "r3", 4, collect_contained, &n, NULL), 0);
  assert_int_equal(n, 2); /* call 1 only: 1 << 1 */
  assert_int_equal(durin_store_pending_get(f->s, "r3", &step, &resp, NULL), 0);
  assert_int_equal(step, 4);
  assert_string_equal(resp, "{\"r\":1}");
  free(resp);
  assert_int_equal(durin_txn_begin(f->s, &t, NULL), 0);
  assert_int_equal(durin_txn_pending_clear(t, "r3", NULL), 0);
  assert_int_equal(durin_txn_commit(t, NULL), 0);
  assert_int_equal(durin_store_pending_get(f->s, "r3", &step, &resp, NULL),
                   DURIN_ENOTFOUND);
}

static void test_terminal_not_claimable(void **state)
{
  struct store_fx *f = *state;
  struct durin_txn *t;
  struct durin_run_update u;
  enum durin_run_status st = DURIN_RUN_SUCCEEDED;
  struct durin_err err = { 0 };
  uint64_t e;

  create(f->s, "r4");
  assert_int_equal(durin_store_run_claim(f->s, "r4", "w", 0, 1000, &e, NULL),
                   0);
  memset(&u, 0, sizeof(u));
  u.status = &st;
  u.started_ms = u.finished_ms = -1;
  u.release_lease = 1;
  assert_int_equal(durin_txn_begin(f->s, &t, NULL), 0);
  assert_int_equal(durin_txn_fence(t, "r4", e, 1000, NULL), 0);
  assert_int_equal(durin_txn_run_update(t, "r4", &u, NULL), 0);
  assert_int_equal(durin_txn_commit(t, NULL), 0);
  assert_int_equal(durin_store_run_claim(f->s, "r4", "w", 0, 1000, &e, &err),
                   DURIN_ESTATE);
}

static void test_reopen_keeps_data(void **state)
{
  struct store_fx *f = *state;
  struct durin_run_info ri;

  create(f->s, "r5");
  durin_store_close(f->s);
  assert_int_equal(durin_store_open(f->url, &f->s, NULL), 0);
  assert_int_equal(durin_store_run_get(f->s, "r5", &ri, NULL), 0);
  durin_run_info_clear(&ri);
}

static int type_of(const struct durin_event *ev, void *arg)
{
  char *types = arg;

  strncat(types, ev->type, 200);
  strncat(types, ",", 200);
  return 0;
}

/* A fork copies a prefix of the log with its seqs and appends after it;
 * a continue takes only an ended run nobody holds, once. */
static void test_fork_and_continue(void **state)
{
  struct store_fx *f = *state;
  struct durin_txn *t;
  struct durin_run_update u;
  enum durin_run_status done = DURIN_RUN_SUCCEEDED;
  struct durin_event ev[5] = {
    { 0, 1, 0, "run_started", "{}" },  { 0, 1, 1, "model_response", "{}" },
    { 0, 1, 1, "tool_result", "{}" },  { 0, 1, 2, "model_response", "{}" },
    { 0, 1, 2, "run_finished", "{}" },
  };
  struct durin_event more[2] = { { 0, 5, 1, "forked", "{}" },
                                 { 0, 5, 1, "user_message", "{}" } };
  struct durin_usage use = { 1, 10, 2, 1, 1, 0, 0.5 };
  struct durin_run_new n = { "rf2",      "t",    "{\"fork\":1}",
                             "script:x", "/tmp", 5000 };
  struct durin_run_fork fk;
  struct durin_run_continue c;
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  char types[256] = "", *ck = NULL, *spec = NULL;
  int64_t step;
  uint64_t e;

  create(f->s, "rf1");
  assert_int_equal(durin_store_run_claim(f->s, "rf1", "w", 0, 1000, &e, NULL),
                   0);
  memset(&u, 0, sizeof(u));
  u.status = &done;
  u.started_ms = -1;
  u.finished_ms = 3000;
  u.release_lease = 1;
  assert_int_equal(durin_txn_begin(f->s, &t, NULL), 0);
  assert_int_equal(durin_txn_fence(t, "rf1", e, 1000, NULL), 0);
  assert_int_equal(durin_txn_events_append(t, "rf1", ev, 5, NULL), 0);
  assert_int_equal(durin_txn_checkpoint_put(t, "rf1", 2, "{\"s\":2}", NULL), 0);
  assert_int_equal(durin_txn_run_update(t, "rf1", &u, NULL), 0);
  assert_int_equal(durin_txn_commit(t, NULL), 0);

  memset(&fk, 0, sizeof(fk));
  fk.from = "rf1";
  fk.through_seq = 3;
  fk.run = &n;
  fk.step = 1;
  fk.checkpoint = "{\"s\":1}";
  fk.usage = &use;
  fk.events = more;
  fk.nevents = 1;
  assert_int_equal(durin_store_run_fork(f->s, &fk, &err), 0);
  assert_int_equal(more[0].seq, 4);
  assert_int_equal(
      durin_store_events_read(f->s, "rf2", 1, 0, type_of, types, NULL), 0);
  assert_string_equal(types, "run_started,model_response,tool_result,forked,");
  assert_int_equal(durin_store_run_get(f->s, "rf2", &ri, NULL), 0);
  assert_int_equal(ri.status, DURIN_RUN_QUEUED);
  assert_int_equal(ri.last_seq, 4);
  assert_int_equal(ri.usage.steps, 1);
  assert_int_equal(ri.usage.input_tokens, 10);
  assert_string_equal(ri.spec_json, "{\"fork\":1}");
  durin_run_info_clear(&ri);
  assert_int_equal(durin_store_checkpoint_get(f->s, "rf2", &step, &ck, NULL),
                   0);
  assert_int_equal(step, 1);
  assert_string_equal(ck, "{\"s\":1}");
  free(ck);
  /* The original: as it was. */
  types[0] = 0;
  assert_int_equal(
      durin_store_events_read(f->s, "rf1", 1, 0, type_of, types, NULL), 0);
  assert_string_equal(types,
                      "run_started,model_response,tool_result,model_response,"
                      "run_finished,");
  assert_int_equal(durin_store_checkpoint_get(f->s, "rf1", &step, &ck, NULL),
                   0);
  assert_string_equal(ck, "{\"s\":2}");
  free(ck);

  /* A prefix the log does not have: nothing at all is made. */
  n.id = "rf3";
  fk.through_seq = 9;
  assert_int_equal(durin_store_run_fork(f->s, &fk, &err), DURIN_ESTATE);
  assert_int_equal(durin_store_run_get(f->s, "rf3", &ri, NULL),
                   DURIN_ENOTFOUND);

  /* Continue: not a run that has not ended. */
  memset(&c, 0, sizeof(c));
  c.id = "rf2";
  c.step = 1;
  c.checkpoint = "{\"s\":1,\"again\":1}";
  c.events = more;
  c.nevents = 2;
  c.now_ms = 6000;
  assert_int_equal(durin_store_run_continue(f->s, &c, &err), DURIN_ESTATE);
  assert_non_null(strstr(err.msg, "has not ended"));
  /* An ended one, once; held by the owner that continues it. */
  c.id = "rf1";
  c.step = 2;
  c.spec_json = "{\"budget\":2}";
  c.owner = "me";
  c.lease_until_ms = 9000;
  assert_int_equal(durin_store_run_continue(f->s, &c, &err), 0);
  assert_int_equal(more[0].seq, 6);
  assert_int_equal(more[1].seq, 7);
  assert_int_equal(durin_store_run_get(f->s, "rf1", &ri, NULL), 0);
  assert_int_equal(ri.status, DURIN_RUN_QUEUED);
  assert_null(ri.reason);
  assert_int_equal(ri.finished_ms, 0);
  assert_string_equal(ri.lease_owner, "me");
  assert_int_equal(ri.last_seq, 7);
  spec = ri.spec_json;
  assert_string_equal(spec, "{\"budget\":2}");
  durin_run_info_clear(&ri);
  assert_int_equal(durin_store_checkpoint_get(f->s, "rf1", &step, &ck, NULL),
                   0);
  assert_string_equal(ck, "{\"s\":1,\"again\":1}");
  free(ck);
  assert_int_equal(durin_store_run_continue(f->s, &c, &err), DURIN_ESTATE);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_bad_urls),
    cmocka_unit_test_setup_teardown(test_create_get_resolve, setup, teardown),
    cmocka_unit_test_setup_teardown(test_fencing, setup, teardown),
    cmocka_unit_test_setup_teardown(test_rollback_loses_only_txn, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_deferred_fence, setup, teardown),
    cmocka_unit_test_setup_teardown(test_ledger_and_pending, setup, teardown),
    cmocka_unit_test_setup_teardown(test_terminal_not_claimable, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
    cmocka_unit_test_setup_teardown(test_fork_and_continue, setup, teardown),
  };

  if (test_store_missing())
    return 77;
  return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
