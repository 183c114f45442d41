/* Approvals in the store: requests inside fenced commits, decisions and
 * expiries as single transactions that wake the run, and what a run's end
 * does to questions still open. */
#include <stdio.h>

#include "durin/store.h"
#include "durin/util.h"
#include "test.h"

static int setup(void **state)
{
  return store_fx_open(state, "t.db");
}

static int teardown(void **state)
{
  return store_fx_close(state);
}

static struct durin_approval request(const char *id, const char *run,
                                     int64_t step, int64_t expires)
{
  struct durin_approval a;

  memset(&a, 0, sizeof(a));
  snprintf(a.id, sizeof(a.id), "%s", id);
  snprintf(a.run_id, sizeof(a.run_id), "%s", run);
  a.step = step;
  a.call_id = "c1";
  a.tool = "bash";
  a.call_args = "{\"command\":\"rm x\"}";
  a.call_hash = "h1";
  a.args = a.call_args;
  a.args_hash = a.call_hash;
  a.reason = "tidy";
  a.rule = "spec:ask";
  a.on_expiry = "reject";
  a.requested_ms = 1000;
  a.expires_ms = expires;
  return a;
}

/* Creates run id and parks it waiting for approval a, as the harness's
 * commit does: fenced, the request, the status, no lease. */
static void park(struct durin_store *s, const char *id,
                 const struct durin_approval *a)
{
  struct durin_run_new n = { id, "t", "{}", "script:x", "/tmp", 1000 };
  enum durin_run_status st = DURIN_RUN_WAITING_APPROVAL;
  struct durin_run_update u;
  struct durin_run_info ri;
  struct durin_txn *t;
  uint64_t e;

  if (durin_store_run_get(s, id, &ri, NULL) == 0)
    durin_run_info_clear(&ri);
  else
    assert_int_equal(durin_store_run_create(s, &n, NULL), 0);
  assert_int_equal(durin_store_run_claim(s, id, "w", 1000, 5000, &e, NULL), 0);
  assert_int_equal(durin_txn_begin(s, &t, NULL), 0);
  assert_int_equal(durin_txn_fence(t, id, e, 6000, NULL), 0);
  assert_int_equal(durin_txn_approval_request(t, a, NULL), 0);
  memset(&u, 0, sizeof(u));
  u.status = &st;
  u.reason = "waiting";
  u.started_ms = u.finished_ms = -1;
  u.release_lease = 1;
  u.now_ms = 1000;
  assert_int_equal(durin_txn_run_update(t, id, &u, NULL), 0);
  assert_int_equal(durin_txn_commit(t, NULL), 0);
}

struct seen {
  int n;
  char ids[8][32];
  enum durin_approval_state state;
  char args[128], args_hash[65], call_args[128], by[64], comment[128];
  int64_t expires;
};

static int collect(const struct durin_approval *a, void *arg)
{
  struct seen *s = arg;

  if (s->n < 8)
    snprintf(s->ids[s->n], 32, "%s", a->id);
  s->n++;
  s->state = a->state;
  s->expires = a->expires_ms;
  snprintf(s->args, sizeof(s->args), "%s", a->args);
  snprintf(s->args_hash, sizeof(s->args_hash), "%s", a->args_hash);
  snprintf(s->call_args, sizeof(s->call_args), "%s", a->call_args);
  snprintf(s->by, sizeof(s->by), "%s", a->decided_by ? a->decided_by : "");
  snprintf(s->comment, sizeof(s->comment), "%s", a->comment ? a->comment : "");
  return 0;
}

static struct seen get(struct durin_store *s, const char *id)
{
  struct seen x;

  memset(&x, 0, sizeof(x));
  assert_int_equal(durin_store_approval_get(s, id, collect, &x, NULL), 0);
  assert_int_equal(x.n, 1);
  return x;
}

static enum durin_run_status status_of(struct durin_store *s, const char *id)
{
  struct durin_run_info ri;
  enum durin_run_status st;

  assert_int_equal(durin_store_run_get(s, id, &ri, NULL), 0);
  st = ri.status;
  assert_null(ri.lease_owner);
  durin_run_info_clear(&ri);
  return st;
}

static int count_type(const struct durin_event *ev, void *arg)
{
  void **a = arg;

  if (!strcmp(ev->type, a[0]))
    (*(int *)a[1])++;
  return 0;
}

static int events_of(struct durin_store *s, const char *run, const char *type)
{
  int n = 0;
  void *a[2] = { (void *)type, &n };

  assert_int_equal(durin_store_events_read(s, run, 1, 0, count_type, a, NULL),
                   0);
  return n;
}

static void test_request_is_written_once(void **state)
{
  struct store_fx *f = *state;
  struct durin_approval a = request("ab1", "r1", 1, 90000);
  struct seen x;

  park(f->s, "r1", &a);
  /* The same step asking again keeps the first request. */
  a.expires_ms = 99999;
  snprintf(a.id, sizeof(a.id), "zz9");
  park(f->s, "r1", &a);
  memset(&x, 0, sizeof(x));
  assert_int_equal(
      durin_store_approval_list(f->s, "r1", -1, 1, collect, &x, NULL), 0);
  assert_int_equal(x.n, 1);
  assert_string_equal(x.ids[0], "ab1");
  assert_int_equal(x.expires, 90000);
  assert_int_equal(status_of(f->s, "r1"), DURIN_RUN_WAITING_APPROVAL);
}

static void test_prefixes(void **state)
{
  struct store_fx *f = *state;
  struct durin_approval a = request("ab1", "r1", 1, 90000);
  struct durin_approval b = request("ab2", "r2", 1, 90000);
  struct durin_err err = { 0 };
  struct seen x;

  park(f->s, "r1", &a);
  park(f->s, "r2", &b);
  memset(&x, 0, sizeof(x));
  assert_int_equal(durin_store_approval_get(f->s, "ab", collect, &x, &err),
                   DURIN_EINVAL);
  assert_non_null(strstr(err.msg, "ambiguous"));
  assert_int_equal(x.n, 0);
  assert_int_equal(durin_store_approval_get(f->s, "zz", collect, &x, &err),
                   DURIN_ENOTFOUND);
  x = get(f->s, "ab2");
  assert_string_equal(x.ids[0], "ab2");
  memset(&x, 0, sizeof(x));
  assert_int_equal(
      durin_store_approval_list(f->s, NULL, -1, 1, collect, &x, NULL), 0);
  assert_int_equal(x.n, 2);
  memset(&x, 0, sizeof(x));
  assert_int_equal(
      durin_store_approval_list(f->s, "r1", 2, 0, collect, &x, NULL), 0);
  assert_int_equal(x.n, 0);
}

static void test_decide_once_and_wake(void **state)
{
  struct store_fx *f = *state;
  struct durin_approval a = request("ab1", "r1", 1, 90000);
  struct durin_approval_decision d;
  enum durin_approval_state final;
  struct durin_err err = { 0 };
  struct seen x;

  park(f->s, "r1", &a);
  memset(&d, 0, sizeof(d));
  d.id = "ab";
  d.state = DURIN_APPROVAL_EDITED;
  d.args = "{\"command\":\"rm y\"}";
  d.args_hash = "h2";
  d.who = "alice";
  d.comment = "only y";
  d.now_ms = 2000;
  assert_int_equal(durin_store_approval_decide(f->s, &d, &final, &err), 0);
  assert_int_equal(final, DURIN_APPROVAL_EDITED);
  x = get(f->s, "ab1");
  assert_int_equal(x.state, DURIN_APPROVAL_EDITED);
  assert_string_equal(x.args, "{\"command\":\"rm y\"}");
  assert_string_equal(x.args_hash, "h2");
  /* What the model asked for stays on record. */
  assert_string_equal(x.call_args, "{\"command\":\"rm x\"}");
  assert_string_equal(x.by, "alice");
  assert_string_equal(x.comment, "only y");
  /* The run is back in the queue, with the decision in its log. */
  assert_int_equal(status_of(f->s, "r1"), DURIN_RUN_RUNNING);
  assert_int_equal(events_of(f->s, "r1", "approval_decided"), 1);
  /* A second decision changes nothing. */
  d.state = DURIN_APPROVAL_REJECTED;
  d.args = d.args_hash = NULL;
  assert_int_equal(durin_store_approval_decide(f->s, &d, &final, &err),
                   DURIN_ESTATE);
  assert_int_equal(final, DURIN_APPROVAL_EDITED);
  assert_non_null(strstr(err.msg, "already edited"));
  assert_int_equal(events_of(f->s, "r1", "approval_decided"), 1);
}

static void test_expiry(void **state)
{
  struct store_fx *f = *state;
  struct durin_approval a = request("ab1", "r1", 1, 5000);
  struct durin_approval b = request("cd1", "r2", 1, 9000);
  struct durin_approval_decision d;
  struct durin_watchdog_opts wo = { 6000, 0, 0 };
  struct durin_watchdog_report rep = { 0 };
  enum durin_approval_state final;
  struct durin_err err = { 0 };

  park(f->s, "r1", &a);
  park(f->s, "r2", &b);
  /* Deciding after the deadline: refused, and the approval expires. */
  memset(&d, 0, sizeof(d));
  d.id = "ab1";
  d.state = DURIN_APPROVAL_APPROVED;
  d.who = "late";
  d.now_ms = 5000;
  assert_int_equal(durin_store_approval_decide(f->s, &d, &final, &err),
                   DURIN_ESTATE);
  assert_int_equal(final, DURIN_APPROVAL_EXPIRED);
  assert_non_null(strstr(err.msg, "expired"));
  assert_int_equal(get(f->s, "ab1").state, DURIN_APPROVAL_EXPIRED);
  assert_int_equal(status_of(f->s, "r1"), DURIN_RUN_RUNNING);
  assert_int_equal(events_of(f->s, "r1", "approval_expired"), 1);
  /* The watchdog expires the other one once its time is up. */
  assert_int_equal(durin_store_watchdog(f->s, &wo, &rep, NULL), 0);
  assert_int_equal(rep.expired, 0);
  wo.now_ms = 9000;
  assert_int_equal(durin_store_watchdog(f->s, &wo, &rep, NULL), 0);
  assert_int_equal(rep.expired, 1);
  assert_int_equal(get(f->s, "cd1").state, DURIN_APPROVAL_EXPIRED);
  assert_int_equal(status_of(f->s, "r2"), DURIN_RUN_RUNNING);
  assert_int_equal(events_of(f->s, "r2", "approval_expired"), 1);
}

static void test_run_end_cancels_open_requests(void **state)
{
  struct store_fx *f = *state;
  struct durin_approval a = request("ab1", "r1", 1, 90000);
  enum durin_run_status st = DURIN_RUN_CANCELLED;
  struct durin_run_update u;
  struct durin_txn *t;
  uint64_t e;

  park(f->s, "r1", &a);
  assert_int_equal(durin_store_run_claim(f->s, "r1", "w", 2000, 5000, &e, NULL),
                   0);
  assert_int_equal(durin_txn_begin(f->s, &t, NULL), 0);
  assert_int_equal(durin_txn_fence(t, "r1", e, 6000, NULL), 0);
  memset(&u, 0, sizeof(u));
  u.status = &st;
  u.started_ms = -1;
  u.finished_ms = 2000;
  u.release_lease = 1;
  u.now_ms = 2000;
  assert_int_equal(durin_txn_run_update(t, "r1", &u, NULL), 0);
  assert_int_equal(durin_txn_commit(t, NULL), 0);
  assert_int_equal(get(f->s, "ab1").state, DURIN_APPROVAL_CANCELLED);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_request_is_written_once, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_prefixes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_decide_once_and_wake, setup, teardown),
    cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
    cmocka_unit_test_setup_teardown(test_run_end_cancels_open_requests, setup,
                                    teardown),
  };

  if (test_store_missing())
    return 77;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
