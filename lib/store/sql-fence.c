/*
 * A writer's transaction: its fences and its events' sequence numbers.
 *
 * The fence is a conditional UPDATE of the run's row on the lease epoch.
 * Answered, it costs a round trip before anything else is sent. Deferred
 * (durin_txn_fence_deferred, PostgreSQL), the server checks it with the
 * transaction's other writes and a lost lease fails the COMMIT; a step is
 * then one round trip.
 *
 * Events need their sequence numbers before they are sent. The holder of
 * a lease is the only writer of its run's events while it holds it, so
 * the connection remembers the run's last_seq after each commit, keyed by
 * (run, epoch). A deferred fence sends what it expects, the server checks
 * it in the same statement, and the events are numbered here without
 * asking. Without a remembered value (the first write after a claim) the
 * sequence is reserved with an answered UPDATE, as an answered fence does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "durin/store.h"
#include "durin/util.h"
#include "store/sql-int.h"

static struct sq_seq_slot *slot(struct durin_store *q, const char *run_id)
{
  uint32_t h = 2166136261u;
  const unsigned char *p = (const unsigned char *)run_id;

  while (*p)
    h = (h ^ *p++) * 16777619u;
  return &q->seq[h % SQ_SEQ_SLOTS];
}

/* How long a COMMIT in doubt is asked about. */
#define DOUBT_WAIT_MS 5000

/* The last_seq this connection committed for run_id at epoch, or -1. */
static int64_t seq_known(struct durin_store *q, const char *run_id,
                         uint64_t epoch)
{
  struct sq_seq_slot *s = slot(q, run_id);

  if (s->epoch == epoch && !strcmp(s->id, run_id))
    return s->last;
  return -1;
}

void durin__sq_seq_known(struct durin_store *q, const char *run_id,
                         uint64_t epoch, int64_t last)
{
  struct sq_seq_slot *s = slot(q, run_id);

  if (strlen(run_id) >= sizeof(s->id))
    return;
  snprintf(s->id, sizeof(s->id), "%s", run_id);
  s->epoch = epoch;
  s->last = last;
}

static void seq_forget(struct durin_store *q, const char *run_id)
{
  struct sq_seq_slot *s = slot(q, run_id);

  if (!strcmp(s->id, run_id))
    s->id[0] = '\0';
}

static struct sq_note *note_find(struct durin_store *q, const char *run_id)
{
  int i;

  for (i = q->nnotes - 1; i >= 0; i--)
    if (!strcmp(q->notes[i].id, run_id))
      return &q->notes[i];
  return NULL;
}

static struct sq_note *note_add(struct durin_store *q, const char *run_id,
                                uint64_t epoch)
{
  struct sq_note *n = note_find(q, run_id);

  /* Fenced again in the same transaction: one note, whose last_seq may
   * already have moved in it. */
  if (n && n->epoch == epoch)
    return n;
  if (strlen(run_id) >= sizeof(n->id))
    return NULL; /* not a run id of ours: nothing remembered */
  if (q->nnotes == q->anotes) {
    int a = q->anotes ? q->anotes * 2 : 8;
    struct sq_note *m = realloc(q->notes, (size_t)a * sizeof(*m));

    if (!m)
      return NULL;
    q->notes = m;
    q->anotes = a;
  }
  n = &q->notes[q->nnotes++];
  memset(n, 0, sizeof(*n));
  snprintf(n->id, sizeof(n->id), "%s", run_id);
  n->epoch = epoch;
  n->last = seq_known(q, run_id, epoch);
  return n;
}

/* Forgets the notes from the from'th on, and what the connection
 * remembered of their runs: their writes did not land (or may not
 * have). */
static void notes_drop(struct durin_store *q, int from)
{
  int i;

  for (i = from; i < q->nnotes; i++)
    seq_forget(q, q->notes[i].id);
  q->nnotes = from;
}

/* A place for a deferred fence's answer that stays put until the
 * transaction ends. */
static int64_t *flag_slot(struct durin_store *q)
{
  struct sq_flags **f = &q->flags;
  int i = q->nflags;

  for (; i >= SQ_FLAG_CHUNK; i -= SQ_FLAG_CHUNK) {
    if (!*f && !(*f = calloc(1, sizeof(**f))))
      return NULL;
    f = &(*f)->next;
  }
  if (!*f && !(*f = calloc(1, sizeof(**f))))
    return NULL;
  q->nflags++;
  (*f)->v[i] = 0;
  return &(*f)->v[i];
}

void durin__sq_flags_free(struct durin_store *q)
{
  while (q->flags) {
    struct sq_flags *n = q->flags->next;

    free(q->flags);
    q->flags = n;
  }
}

/* A transaction's token: the connection's random 64 bits, drawn once,
 * and a count, so a step pays no system call for it. */
static void new_token(struct durin_store *q)
{
  if (!q->token_seed && durin_random(&q->token_seed, sizeof(q->token_seed)))
    q->token_seed = (uint64_t)durin_mono_ms() * 2654435761u;
  snprintf(q->token, sizeof(q->token), "%016llx",
           (unsigned long long)(q->token_seed + ++q->token_count));
}

/*
 * Whether a COMMIT whose connection was lost landed: every run the
 * transaction fenced carries its token if it did. Asked once the lost
 * session can commit nothing more (settle), for a while (a restarting
 * server), then given up: 1 landed, 0 did not, -1 unknown.
 */
static int landed(struct durin_store *q)
{
  struct db_stmt *st = q->st[ST_TOKEN_GET];
  int64_t until = durin_mono_ms() + DOUBT_WAIT_MS;

  for (;;) {
    int rc = q->db->ops->settle(q->db), yes = 0;

    if (rc == DB_OK) {
      db_bind_text(st, 1, q->notes[0].id);
      rc = db_step(st);
      if (rc == DB_ROW) {
        const char *t = db_col_text(st, 0);

        yes = t && !strcmp(t, q->token);
      }
      db_reset(st);
      db_clear(st);
      if (rc == DB_ROW || rc == DB_DONE)
        return yes;
    }
    if (durin_mono_ms() >= until)
      return -1;
    usleep(100 * 1000);
  }
}

/* The writer's BEGIN takes the write lock up front on SQLite (on
 * PostgreSQL the fence's row lock), so the fence that follows holds until
 * COMMIT, and a busy store fails here, before any work. */
int durin_txn_begin(struct durin_store *q, struct durin_txn **txn,
                    struct durin_err *err)
{
  int r;

  if (q->in_txn)
    return durin_err_set(err, DURIN_ESTATE, "transaction already open");
  r = durin__sq_begin(q, 0, err);
  if (r)
    return r;
  q->in_txn = 1;
  q->nnotes = 0;
  q->sp_mark = 0;
  q->nflags = 0;
  new_token(q);
  q->txn.q = q;
  q->txn.wrote = 0;
  *txn = &q->txn;
  return 0;
}

/* Bumps that no run update carried go before COMMIT. */
static int seq_flush(struct durin_store *q, struct durin_err *err)
{
  struct db_stmt *st = q->st[ST_SEQ_RESERVE];
  int i, r;

  for (i = 0; i < q->nnotes; i++) {
    struct sq_note *n = &q->notes[i];

    if (!n->pend_n)
      continue;
    db_bind_text(st, 1, n->id);
    db_bind_int64(st, 2, n->pend_n);
    db_bind_int64(st, 3, n->pend_ms);
    n->pend_n = 0;
    r = durin__sq_step_nowait(q, st, "reserving event sequence", err);
    if (r)
      return r;
  }
  return 0;
}

int durin_txn_commit(struct durin_txn *txn, struct durin_err *err)
{
  struct durin_store *q = txn->q;
  int r, i;

  /* A crash here must lose the whole transaction and nothing else. */
  if (txn->wrote)
    durin_fault_point("before_commit");
  r = seq_flush(q, err);
  if (!r)
    r = durin__sq_exec(q, "COMMIT", err);

  /*
   * A connection lost during COMMIT leaves it in doubt. Writing the step
   * again could apply it twice, so ask: landed, it succeeded; not, the
   * caller may write it again; unknown, the caller must let the run go,
   * and whoever claims it next restores it from what is durable.
   */
  if (r) {
    int gone = db_errcode(q->db) == DB_GONE, yes;

    durin__sq_exec(q, "ROLLBACK", NULL);
    yes = gone && q->nnotes ? landed(q) : 0;
    if (yes < 0)
      r = durin_err_set(err, DURIN_EINDOUBT,
                        "store '%s': the connection was lost during COMMIT "
                        "and the store did not answer for %d s whether it "
                        "landed; letting the run go (its next holder "
                        "restores it from the log)",
                        q->path, DOUBT_WAIT_MS / 1000);
    if (yes > 0)
      r = 0;
    else
      notes_drop(q, 0);
  }
  if (!r) {
    for (i = 0; i < q->nnotes; i++) {
      struct sq_note *n = &q->notes[i];

      if (n->cancel)
        *n->cancel = *n->flag != 0;
      if (n->last >= 0)
        durin__sq_seq_known(q, n->id, n->epoch, n->last);
    }
  }
  q->nnotes = 0;
  q->in_txn = 0;
  return r;
}

void durin_txn_rollback(struct durin_txn *txn)
{
  struct durin_store *q;

  if (!txn)
    return;
  q = txn->q;
  durin__sq_exec(q, "ROLLBACK", NULL);
  notes_drop(q, 0);
  q->in_txn = 0;
}

int durin_txn_savepoint(struct durin_txn *txn, struct durin_err *err)
{
  struct durin_store *q = txn->q;

  q->sp_mark = q->nnotes;
  return durin__sq_exec(q, "SAVEPOINT run", err);
}

int durin_txn_savepoint_end(struct durin_txn *txn, int keep,
                            struct durin_err *err)
{
  struct durin_store *q = txn->q;

  if (!keep) {
    int r;

    notes_drop(q, q->sp_mark);
    r = durin__sq_exec(q, "ROLLBACK TO run", err);
    if (r)
      return r;
  }
  return durin__sq_exec(q, "RELEASE run", err);
}

static int fence_answered(struct durin_store *q, const char *run_id,
                          uint64_t epoch, int64_t lease_until_ms,
                          int *cancel_requested, struct durin_err *err)
{
  struct db_stmt *st = q->st[ST_FENCE];
  int rc, fenced = 0, cancel = 0;

  db_bind_text(st, 1, run_id);
  db_bind_int64(st, 2, (int64_t)epoch);
  db_bind_int64(st, 3, lease_until_ms);
  db_bind_text(st, 4, q->token);
  rc = db_step(st);
  if (rc == DB_ROW) {
    fenced = 1;
    cancel = db_col_int(st, 0);
    rc = db_step(st);
  }
  db_reset(st);
  db_clear(st);
  if (rc != DB_DONE)
    return durin__sq_fail(q, err, "checking lease");
  if (cancel_requested)
    *cancel_requested = cancel;
  if (!fenced)
    return durin_err_set(err, DURIN_EFENCED,
                         "lease on run '%s' lost: epoch %llu is no longer "
                         "current (another process took the run over)",
                         run_id, (unsigned long long)epoch);
  return 0;
}

static int fence(struct durin_store *q, const char *run_id, uint64_t epoch,
                 int64_t lease_until_ms, int *cancel_requested, int deferred,
                 struct durin_err *err)
{
  struct sq_note *n = note_add(q, run_id, epoch);
  struct db_stmt *st = q->st[ST_FENCE_DEFERRED];
  int64_t *flag;
  int r;

  /* Already checked by the server in this transaction, row lock held. */
  if (n && n->checked) {
    if (cancel_requested && !n->cancel)
      n->cancel = cancel_requested;
    return 0;
  }
  if (!deferred || !st || !n || n->last < 0 || !(flag = flag_slot(q)))
    return fence_answered(q, run_id, epoch, lease_until_ms, cancel_requested,
                          err);
  n->cancel = cancel_requested;
  n->flag = flag;
  db_bind_text(st, 1, run_id);
  db_bind_int64(st, 2, (int64_t)epoch);
  db_bind_int64(st, 3, lease_until_ms);
  db_bind_int64(st, 4, n->last);
  db_bind_text(st, 5, q->token);
  r = db_step_deferred(st, flag, 1);
  db_reset(st);
  db_clear(st);
  if (r != DB_DONE && r != DB_ROW)
    return durin__sq_fail(q, err, "checking lease");
  n->checked = 1;
  return 0;
}

/* The insert of k events at once (k <= SQ_EV_BATCH), prepared once. */
static struct db_stmt *events_stmt(struct durin_store *q, int k)
{
  char sql[1200];
  int off, i;

  if (q->ev_ins[k])
    return q->ev_ins[k];
  off = snprintf(sql, sizeof(sql),
                 "INSERT INTO events(run_id, seq, ts_ms, "
                 "step, type, data) VALUES");
  for (i = 0; i < k; i++)
    off +=
        snprintf(sql + off, sizeof(sql) - (size_t)off,
                 "%s(?%d, ?%d, ?%d, ?%d, ?%d, ?%d)", i ? ", " : "", 6 * i + 1,
                 6 * i + 2, 6 * i + 3, 6 * i + 4, 6 * i + 5, 6 * i + 6);
  if (db_prepare_persistent(q->db, sql, &q->ev_ins[k]) != DB_OK)
    q->ev_ins[k] = NULL;
  return q->ev_ins[k];
}

/* A step's events go in one statement (up to SQ_EV_BATCH a time). */
static int insert_events(struct durin_store *q, const char *run_id,
                         struct durin_event *ev, size_t n,
                         struct durin_err *err)
{
  size_t i = 0;

  while (i < n) {
    int k = n - i > SQ_EV_BATCH ? SQ_EV_BATCH : (int)(n - i), j, r;
    struct db_stmt *st = events_stmt(q, k);

    if (!st)
      return durin__sq_fail(q, err, "preparing event insert");
    for (j = 0; j < k; j++, i++) {
      db_bind_text(st, 6 * j + 1, run_id);
      db_bind_int64(st, 6 * j + 2, ev[i].seq);
      db_bind_int64(st, 6 * j + 3, ev[i].ts_ms);
      db_bind_int64(st, 6 * j + 4, ev[i].step);
      db_bind_text(st, 6 * j + 5, ev[i].type);
      db_bind_text(st, 6 * j + 6, ev[i].data);
    }
    r = durin__sq_step_nowait(q, st, "appending events", err);
    if (r)
      return r;
  }
  return 0;
}

int durin_txn_fence(struct durin_txn *txn, const char *run_id, uint64_t epoch,
                    int64_t lease_until_ms, struct durin_err *err)
{
  return fence(txn->q, run_id, epoch, lease_until_ms, NULL, 0, err);
}

int durin_txn_fence_check(struct durin_txn *txn, const char *run_id,
                          uint64_t epoch, int64_t lease_until_ms,
                          int *cancel_requested, struct durin_err *err)
{
  return fence(txn->q, run_id, epoch, lease_until_ms, cancel_requested, 0, err);
}

int durin_txn_fence_deferred(struct durin_txn *txn, const char *run_id,
                             uint64_t epoch, int64_t lease_until_ms,
                             int *cancel_requested, struct durin_err *err)
{
  return fence(txn->q, run_id, epoch, lease_until_ms, cancel_requested, 1, err);
}

/*
 * Sequence numbers come from the run row (last_seq), bumped by n inside
 * the writer's transaction: contiguous per run, no gap on rollback, and
 * no MAX(seq) scan that would grow with the log. After a deferred fence,
 * which checked last_seq, they are known here, and the bump rides on the
 * step's run update (durin__sq_seq_pending), or goes at commit.
 */
int durin__sq_events_append(struct durin_store *q, const char *run_id,
                            struct durin_event *ev, size_t n,
                            struct durin_err *err)
{
  struct db_stmt *st = q->st[ST_SEQ_RESERVE];
  struct sq_note *note = note_find(q, run_id);
  int64_t last;
  size_t i;
  int rc;

  if (n == 0)
    return 0;
  if (note && note->checked) {
    last = note->last + (int64_t)n;
    note->pend_n += (int64_t)n;
    note->pend_ms = ev[n - 1].ts_ms;
  } else {
    db_bind_text(st, 1, run_id);
    db_bind_int64(st, 2, (int64_t)n);
    db_bind_int64(st, 3, ev[n - 1].ts_ms);
    rc = db_step(st);
    if (rc != DB_ROW) {
      db_reset(st);
      db_clear(st);
      return rc == DB_DONE ?
                 durin_err_set(err, DURIN_ENOTFOUND, "no run '%s'", run_id) :
                 durin__sq_fail(q, err, "reserving event sequence");
    }
    last = db_col_int64(st, 0);
    durin__sq_step_done(q, st, "reserving event sequence", NULL);
  }
  if (note)
    note->last = last;
  durin__sq_ev_note(q, run_id);
  for (i = 0; i < n; i++)
    ev[i].seq = last - (int64_t)n + 1 + (int64_t)i;
  return insert_events(q, run_id, ev, n, err);
}

int durin_txn_events_append(struct durin_txn *txn, const char *run_id,
                            struct durin_event *ev, size_t n,
                            struct durin_err *err)
{
  txn->wrote = 1;
  return durin__sq_events_append(txn->q, run_id, ev, n, err);
}

int durin__sq_seq_pending(struct durin_store *q, const char *run_id, int64_t *n,
                          int64_t *progress_ms)
{
  struct sq_note *note = q->in_txn ? note_find(q, run_id) : NULL;

  if (!note || !note->pend_n)
    return 0;
  *n = note->pend_n;
  *progress_ms = note->pend_ms;
  note->pend_n = 0;
  return 1;
}

int durin__sq_event_json(struct durin_store *q, const char *run_id,
                         int64_t step, int64_t now, const char *type,
                         json_t *data, struct durin_err *err)
{
  struct durin_event ev;
  char *text = json_dumps(data, JSON_COMPACT);
  int r;

  json_decref(data);
  memset(&ev, 0, sizeof(ev));
  ev.ts_ms = now;
  ev.step = step;
  ev.type = type;
  ev.data = text;
  r = durin__sq_events_append(q, run_id, &ev, 1, err);
  free(text);
  return r;
}
