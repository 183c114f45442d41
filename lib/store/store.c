/*
 * Opening a store: the URL's scheme picks the database driver (store/db.h)
 * under the one store implementation, sql-*.c. Also the names of run
 * statuses and approval states.
 */
#include <stdlib.h>
#include <string.h>

#include "durin/store.h"
#include "durin/util.h"
#include "store/sql-int.h"

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
  struct durin_store_opts o;
  struct durin_store *s = NULL;
  char *rest = NULL;
  size_t n;
  int pg, r;

  if (!strncmp(url, "sqlite:", 7)) {
    pg = 0;
    n = 6;
  } else if (!strncmp(url, "postgres:", 9)) {
    pg = 1;
    n = 8;
  } else if (!strncmp(url, "postgresql:", 11)) { /* libpq's other spelling */
    pg = 1;
    n = 10;
  } else {
    return durin_err_set(err, DURIN_EURL,
                         "unsupported store URL '%s': use sqlite:PATH "
                         "(for example sqlite:./.durin/durin.db) or "
                         "postgres://USER@HOST:PORT/DB",
                         url);
  }
  rest = strdup(url + n + 1);
  if (!rest)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  /* PostgreSQL's query string is libpq's to read. */
  if (!pg && (r = parse_opts(rest, &o, err)))
    goto out;
  if (!*rest) {
    r = durin_err_set(err, DURIN_EURL, "store URL '%s' names no path", url);
    goto out;
  }
  r = pg ? durin__sq_open_pg(rest, &s, err) :
           durin__sq_open_sqlite(rest, &o, &s, err);
  if (r)
    goto out;
  s->url = strdup(url);
  *out = s;
out:
  free(rest);
  return r;
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
