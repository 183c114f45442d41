/*
 * The store registry: picks a backend by URL scheme and dispatches every
 * call through its ops table. Also the fault point around step commits,
 * so every backend gets crash testing for free.
 */
#include <stdlib.h>
#include <string.h>

#include "durin/store.h"
#include "durin/util.h"
#include "store/backends.h"

static const struct durin_store_ops *const backends[] = {
  &durin__store_sqlite_ops,
  &durin__store_pg_ops,
  NULL,
};

struct durin_store {
  const struct durin_store_ops *ops;
  void *impl;
  char *url;
};

struct durin_txn {
  const struct durin_store_ops *ops;
  void *impl;
  int wrote;
};

static const char *const status_names[DURIN_RUN__COUNT] = {
  [DURIN_RUN_QUEUED] = "queued",
  [DURIN_RUN_RUNNING] = "running",
  [DURIN_RUN_WAITING_APPROVAL] = "waiting_approval",
  [DURIN_RUN_SLEEPING] = "sleeping",
  [DURIN_RUN_EVALUATING] = "evaluating",
  [DURIN_RUN_PAUSED] = "paused",
  [DURIN_RUN_NEEDS_HUMAN] = "needs_human",
  [DURIN_RUN_SUCCEEDED] = "succeeded",
  [DURIN_RUN_FAILED] = "failed",
  [DURIN_RUN_CANCELLED] = "cancelled",
  [DURIN_RUN_BUDGET_EXCEEDED] = "budget_exceeded",
};

const char *durin_run_status_name(enum durin_run_status s)
{
  if ((unsigned)s >= DURIN_RUN__COUNT)
    return "unknown";
  return status_names[s];
}

int durin_run_status_parse(const char *name, enum durin_run_status *out)
{
  int i;

  for (i = 0; i < DURIN_RUN__COUNT; i++) {
    if (!strcmp(status_names[i], name)) {
      *out = (enum durin_run_status)i;
      return 0;
    }
  }
  return DURIN_EINVAL;
}

int durin_run_status_terminal(enum durin_run_status s)
{
  return s == DURIN_RUN_SUCCEEDED || s == DURIN_RUN_FAILED ||
         s == DURIN_RUN_CANCELLED || s == DURIN_RUN_BUDGET_EXCEEDED;
}

void durin_run_info_clear(struct durin_run_info *ri)
{
  if (!ri)
    return;
  free(ri->name);
  free(ri->spec_json);
  free(ri->model);
  free(ri->workspace);
  free(ri->reason);
  free(ri->lease_owner);
  free(ri->tenant);
  free(ri->dedupe_key);
  free(ri->concurrency_key);
  memset(ri, 0, sizeof(*ri));
}

/* Parses "?sync=full|normal&busy_timeout=MS" off the end of rest. */
static int parse_opts(char *rest, struct durin_store_opts *o,
                      struct durin_err *err)
{
  char *q = strchr(rest, '?'), *tok, *save = NULL;

  o->sync_full = 1;
  o->busy_timeout_ms = 5000;
  if (!q)
    return 0;
  *q++ = '\0';
  for (tok = strtok_r(q, "&", &save); tok; tok = strtok_r(NULL, "&", &save)) {
    if (!strcmp(tok, "sync=full")) {
      o->sync_full = 1;
    } else if (!strcmp(tok, "sync=normal")) {
      o->sync_full = 0;
    } else if (!strncmp(tok, "busy_timeout=", 13)) {
      char *end;
      long v = strtol(tok + 13, &end, 10);

      if (*end || v < 0)
        return durin_err_set(err, DURIN_EURL,
                             "bad busy_timeout '%s': want milliseconds",
                             tok + 13);
      o->busy_timeout_ms = (int)v;
    } else {
      return durin_err_set(err, DURIN_EURL,
                           "unknown store option '%s' (known: sync=full, "
                           "sync=normal, busy_timeout=MS)",
                           tok);
    }
  }
  return 0;
}

int durin_store_open(const char *url, struct durin_store **out,
                     struct durin_err *err)
{
  const struct durin_store_ops *ops = NULL;
  struct durin_store_opts o;
  struct durin_store *s = NULL;
  char *rest = NULL;
  size_t n;
  int i, r;

  for (i = 0; backends[i]; i++) {
    n = strlen(backends[i]->scheme);
    if (!strncmp(url, backends[i]->scheme, n) && url[n] == ':') {
      ops = backends[i];
      break;
    }
    /* libpq's other spelling */
    if (backends[i] == &durin__store_pg_ops &&
        !strncmp(url, "postgresql:", 11)) {
      ops = backends[i];
      n = 10;
      break;
    }
  }
  if (!ops)
    return durin_err_set(err, DURIN_EURL,
                         "unsupported store URL '%s': use sqlite:PATH "
                         "(for example sqlite:./.durin/durin.db) or "
                         "postgres://USER@HOST:PORT/DB",
                         url);
  rest = strdup(url + n + 1);
  s = calloc(1, sizeof(*s));
  if (!rest || !s) {
    r = durin_err_set(err, DURIN_ENOMEM, "out of memory");
    goto out;
  }
  if (ops->own_query)
    memset(&o, 0, sizeof(o));
  else if ((r = parse_opts(rest, &o, err)))
    goto out;
  if (!*rest) {
    r = durin_err_set(err, DURIN_EURL, "store URL '%s' names no path", url);
    goto out;
  }
  r = ops->open(rest, &o, &s->impl, err);
  if (r)
    goto out;
  s->ops = ops;
  s->url = strdup(url);
  *out = s;
  s = NULL;
out:
  free(rest);
  free(s);
  return r;
}

void durin_store_close(struct durin_store *s)
{
  if (!s)
    return;
  s->ops->close(s->impl);
  free(s->url);
  free(s);
}

const char *durin_store_url(const struct durin_store *s)
{
  return s->url;
}

int durin_store_run_create(struct durin_store *s, const struct durin_run_new *n,
                           struct durin_err *err)
{
  return s->ops->run_create(s->impl, n, err);
}

int durin_store_run_get(struct durin_store *s, const char *id,
                        struct durin_run_info *out, struct durin_err *err)
{
  return s->ops->run_get(s->impl, id, out, err);
}

int durin_store_run_resolve(struct durin_store *s, const char *prefix,
                            char id[32], struct durin_err *err)
{
  return s->ops->run_resolve(s->impl, prefix, id, err);
}

int durin_store_run_list(struct durin_store *s,
                         const struct durin_run_filter *f, durin_run_cb cb,
                         void *arg, struct durin_err *err)
{
  return s->ops->run_list(s->impl, f, cb, arg, err);
}

int durin_store_run_claim(struct durin_store *s, const char *id,
                          const char *owner, int64_t now_ms, int64_t ttl_ms,
                          uint64_t *epoch, struct durin_err *err)
{
  int r = s->ops->run_claim(s->impl, id, owner, now_ms, ttl_ms, epoch, err);

  if (!r)
    durin_fault_point("after_claim");
  return r;
}

int durin_store_run_request_cancel(struct durin_store *s, const char *id,
                                   struct durin_err *err)
{
  return s->ops->run_request_cancel(s->impl, id, err);
}

int durin_store_run_find_active(struct durin_store *s, const char *tenant,
                                const char *dedupe_key, char id[32],
                                struct durin_err *err)
{
  return s->ops->run_find_active(s->impl, tenant ? tenant : "default",
                                 dedupe_key, id, err);
}

int durin_store_run_pause(struct durin_store *s, const char *id, int64_t now_ms,
                          struct durin_err *err)
{
  return s->ops->run_pause(s->impl, id, now_ms, err);
}

int durin_store_run_unpause(struct durin_store *s, const char *id,
                            int64_t now_ms, struct durin_err *err)
{
  return s->ops->run_unpause(s->impl, id, now_ms, err);
}

int durin_store_queue_claim(struct durin_store *s, const char *owner,
                            int64_t now_ms, int64_t ttl_ms, int max,
                            struct durin_claim *out, int *n,
                            struct durin_err *err)
{
  int r;

  *n = 0;
  if (max <= 0)
    return 0;
  r = s->ops->queue_claim(s->impl, owner, now_ms, ttl_ms, max, out, n, err);
  if (!r && *n)
    durin_fault_point("after_claim");
  return r;
}

int durin_store_lease_renew(struct durin_store *s, const char *owner,
                            int64_t until_ms, durin_held_cb cb, void *arg,
                            struct durin_err *err)
{
  return s->ops->lease_renew(s->impl, owner, until_ms, cb, arg, err);
}

int durin_store_signals(struct durin_store *s, const char *owner,
                        durin_held_cb cb, void *arg, struct durin_err *err)
{
  return s->ops->signals(s->impl, owner, cb, arg, err);
}

int durin_store_watchdog(struct durin_store *s,
                         const struct durin_watchdog_opts *o,
                         struct durin_watchdog_report *rep,
                         struct durin_err *err)
{
  memset(rep, 0, sizeof(*rep));
  return s->ops->watchdog(s->impl, o, rep, err);
}

int durin_store_limit_set(struct durin_store *s, const char *scope, int64_t max,
                          struct durin_err *err)
{
  if (strncmp(scope, "tenant:", 7) && strncmp(scope, "key:", 4))
    return durin_err_set(err, DURIN_EINVAL,
                         "limit scope '%s' must be 'tenant:NAME' or "
                         "'key:NAME'",
                         scope);
  return s->ops->limit_set(s->impl, scope, max, err);
}

int durin_store_limit_list(struct durin_store *s, durin_limit_cb cb, void *arg,
                           struct durin_err *err)
{
  return s->ops->limit_list(s->impl, cb, arg, err);
}

int durin_txn_savepoint(struct durin_txn *txn, struct durin_err *err)
{
  return txn->ops->txn_savepoint(txn->impl, err);
}

int durin_txn_savepoint_end(struct durin_txn *txn, int keep,
                            struct durin_err *err)
{
  return txn->ops->txn_savepoint_end(txn->impl, keep, err);
}

int durin_txn_begin(struct durin_store *s, struct durin_txn **txn,
                    struct durin_err *err)
{
  struct durin_txn *t = calloc(1, sizeof(*t));
  int r;

  if (!t)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  t->ops = s->ops;
  r = s->ops->txn_begin(s->impl, &t->impl, err);
  if (r) {
    free(t);
    return r;
  }
  *txn = t;
  return 0;
}

int durin_txn_commit(struct durin_txn *txn, struct durin_err *err)
{
  int r;

  /* A crash here must lose the whole transaction and nothing else. */
  if (txn->wrote)
    durin_fault_point("before_commit");
  r = txn->ops->txn_commit(txn->impl, err);
  free(txn);
  return r;
}

void durin_txn_rollback(struct durin_txn *txn)
{
  if (!txn)
    return;
  txn->ops->txn_rollback(txn->impl);
  free(txn);
}

int durin_txn_fence(struct durin_txn *txn, const char *run_id, uint64_t epoch,
                    int64_t lease_until_ms, struct durin_err *err)
{
  return txn->ops->txn_fence(txn->impl, run_id, epoch, lease_until_ms, NULL, 0,
                             err);
}

int durin_txn_fence_check(struct durin_txn *txn, const char *run_id,
                          uint64_t epoch, int64_t lease_until_ms,
                          int *cancel_requested, struct durin_err *err)
{
  return txn->ops->txn_fence(txn->impl, run_id, epoch, lease_until_ms,
                             cancel_requested, 0, err);
}

int durin_txn_fence_deferred(struct durin_txn *txn, const char *run_id,
                             uint64_t epoch, int64_t lease_until_ms,
                             int *cancel_requested, struct durin_err *err)
{
  return txn->ops->txn_fence(txn->impl, run_id, epoch, lease_until_ms,
                             cancel_requested, 1, err);
}

int durin_txn_events_append(struct durin_txn *txn, const char *run_id,
                            struct durin_event *ev, size_t n,
                            struct durin_err *err)
{
  txn->wrote = 1;
  return txn->ops->events_append(txn->impl, run_id, ev, n, err);
}

int durin_txn_checkpoint_put(struct durin_txn *txn, const char *run_id,
                             int64_t step, const char *data,
                             struct durin_err *err)
{
  txn->wrote = 1;
  return txn->ops->checkpoint_put(txn->impl, run_id, step, data, err);
}

int durin_txn_run_update(struct durin_txn *txn, const char *run_id,
                         const struct durin_run_update *u,
                         struct durin_err *err)
{
  return txn->ops->run_update(txn->impl, run_id, u, err);
}

int durin_txn_ledger_intent(struct durin_txn *txn,
                            const struct durin_ledger_entry *e,
                            struct durin_err *err)
{
  return txn->ops->ledger_intent(txn->impl, e, err);
}

int durin_txn_ledger_outcome(struct durin_txn *txn, const char *run_id,
                             int64_t step, int call_idx, const char *outcome,
                             int64_t now_ms, struct durin_err *err)
{
  return txn->ops->ledger_outcome(txn->impl, run_id, step, call_idx, outcome,
                                  now_ms, err);
}

int durin_txn_pending_put(struct durin_txn *txn, const char *run_id,
                          int64_t step, const char *response,
                          struct durin_err *err)
{
  return txn->ops->pending_put(txn->impl, run_id, step, response, err);
}

int durin_txn_pending_clear(struct durin_txn *txn, const char *run_id,
                            struct durin_err *err)
{
  return txn->ops->pending_clear(txn->impl, run_id, err);
}

int durin_store_events_read(struct durin_store *s, const char *run_id,
                            int64_t from_seq, int64_t max, durin_event_cb cb,
                            void *arg, struct durin_err *err)
{
  return s->ops->events_read(s->impl, run_id, from_seq, max, cb, arg, err);
}

int durin_store_checkpoint_get(struct durin_store *s, const char *run_id,
                               int64_t *step, char **data,
                               struct durin_err *err)
{
  return s->ops->checkpoint_get(s->impl, run_id, step, data, err);
}

int durin_store_ledger_read(struct durin_store *s, const char *run_id,
                            int64_t step, durin_ledger_cb cb, void *arg,
                            struct durin_err *err)
{
  return s->ops->ledger_read(s->impl, run_id, step, cb, arg, err);
}

int durin_store_pending_get(struct durin_store *s, const char *run_id,
                            int64_t *step, char **response,
                            struct durin_err *err)
{
  return s->ops->pending_get(s->impl, run_id, step, response, err);
}

int64_t durin_store_size_bytes(struct durin_store *s)
{
  return s->ops->size_bytes ? s->ops->size_bytes(s->impl) : -1;
}

static const char *const approval_names[DURIN_APPROVAL__COUNT] = {
  [DURIN_APPROVAL_PENDING] = "pending",
  [DURIN_APPROVAL_APPROVED] = "approved",
  [DURIN_APPROVAL_REJECTED] = "rejected",
  [DURIN_APPROVAL_EDITED] = "edited",
  [DURIN_APPROVAL_EXPIRED] = "expired",
  [DURIN_APPROVAL_CANCELLED] = "cancelled",
};

const char *durin_approval_state_name(enum durin_approval_state s)
{
  if ((unsigned)s >= DURIN_APPROVAL__COUNT)
    return "unknown";
  return approval_names[s];
}

int durin_approval_state_parse(const char *name, enum durin_approval_state *out)
{
  int i;

  for (i = 0; i < DURIN_APPROVAL__COUNT; i++) {
    if (name && !strcmp(approval_names[i], name)) {
      *out = (enum durin_approval_state)i;
      return 0;
    }
  }
  return DURIN_EINVAL;
}

int durin_txn_approval_request(struct durin_txn *txn,
                               const struct durin_approval *a,
                               struct durin_err *err)
{
  txn->wrote = 1;
  return txn->ops->approval_request(txn->impl, a, err);
}

int durin_store_approval_get(struct durin_store *s, const char *prefix,
                             durin_approval_cb cb, void *arg,
                             struct durin_err *err)
{
  return s->ops->approval_get(s->impl, prefix, cb, arg, err);
}

int durin_store_approval_list(struct durin_store *s, const char *run_id,
                              int64_t step, int pending_only,
                              durin_approval_cb cb, void *arg,
                              struct durin_err *err)
{
  return s->ops->approval_list(s->impl, run_id, step, pending_only, cb, arg,
                               err);
}

int durin_store_approval_decide(struct durin_store *s,
                                const struct durin_approval_decision *d,
                                enum durin_approval_state *final,
                                struct durin_err *err)
{
  return s->ops->approval_decide(s->impl, d, final, err);
}

int durin_store_wakeup_fd(struct durin_store *s)
{
  return s->ops->wakeup_fd ? s->ops->wakeup_fd(s->impl) : -1;
}

int durin_store_wakeup_drain(struct durin_store *s)
{
  return s->ops->wakeup_drain ? s->ops->wakeup_drain(s->impl) : -1;
}
