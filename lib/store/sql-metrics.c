/*
 * The store's counts for /metrics (durin_store_gauges in store.h). Both
 * queries stay cheap however many runs the store has kept: the runs one
 * reads only unfinished statuses through the runs_status index, the
 * approvals one only pending rows through approvals_pending.
 */
#include <string.h>

#include "durin/store.h"
#include "store/sql-int.h"

static int gauge_rows(struct durin_store *q, struct db_stmt *st,
                      const char *what, durin_store_gauge_cb cb, void *arg,
                      struct durin_err *err)
{
  struct durin_store_gauge g;
  int rc, r = 0;

  while ((rc = db_step(st)) == DB_ROW) {
    g.what = what;
    g.tenant = db_col_text(st, 0);
    g.status = !strcmp(what, "runs") ? db_col_text(st, 1) : NULL;
    g.count = db_col_int64(st, 2);
    g.oldest_ms = !strcmp(what, "runs") ? 0 : db_col_int64(st, 1);
    if ((r = cb(&g, arg)))
      break;
  }
  if (!r && rc != DB_DONE)
    r = durin__sq_fail(q, err, "reading the metrics");
  db_finalize(st);
  return r;
}

int durin_store_gauges(struct durin_store *q, durin_store_gauge_cb cb,
                       void *arg, struct durin_err *err)
{
  struct db_stmt *st;
  int r;

  if (db_prepare(q->db,
                 "SELECT COALESCE(tenant, 'default'), status, count(*) "
                 "FROM runs WHERE status IN ('queued', 'running', "
                 "'waiting_approval', 'sleeping', 'evaluating', 'paused', "
                 "'needs_human') GROUP BY 1, 2 ORDER BY 1, 2",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "reading the metrics");
  if ((r = gauge_rows(q, st, "runs", cb, arg, err)))
    return r;
  if (db_prepare(q->db,
                 "SELECT COALESCE(r.tenant, 'default'), min(a.requested_ms), "
                 "count(*) FROM approvals a JOIN runs r ON r.id = a.run_id "
                 "WHERE a.state = 'pending' GROUP BY 1 ORDER BY 1",
                 &st) != DB_OK)
    return durin__sq_fail(q, err, "reading the metrics");
  return gauge_rows(q, st, "approvals", cb, arg, err);
}
