/*
 * GET /v1/runs/{id}/review: the run's review artifact, built from the
 * store as `durin review` builds it (cli_review_build), with the diff
 * made as GET /v1/runs/{id}/diff makes it (srv_run_diff: a template run's
 * in a `durin diff` child). JSON (review.json) by default; with Accept:
 * text/markdown, REVIEW.md.
 */
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "cli/cmd.h"
#include "durin/review.h"
#include "server/server.h"

struct diff_arg {
  struct req *r;
  const char *id; /* whole: the diff's child is given it */
};

static int srv_diff(void *arg, int stat, FILE *out, struct durin_err *err)
{
  struct diff_arg *a = arg;
  char *text = NULL;
  size_t len = 0;
  int rc = srv_run_diff(a->r, a->id, stat, &text, &len, err);

  if (!rc)
    fwrite(text, 1, len, out);
  free(text);
  return rc;
}

/* Whether the client asked for Markdown rather than JSON. */
static int wants_markdown(struct req *r)
{
  const char *a = req_header(r, "Accept");

  return a && strstr(a, "text/markdown") && !strstr(a, "application/json");
}

static int get_review(struct req *r)
{
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  struct MHD_Response *resp;
  struct durin_buf md;
  struct diff_arg da;
  json_t *j = NULL;
  size_t len;
  char *text;
  int rc;

  if (req_run(r, r->param[0], &ri))
    return 0;
  da.r = r;
  da.id = ri.id;
  rc = cli_review_build(r->store, ri.id, srv_diff, &da, &j, &err);
  if (rc)
    srv_log(r->srv, "review of run %s: %s", ri.id, err.msg);
  durin_run_info_clear(&ri);
  if (rc) {
    return reply_error(r, 500, "internal", "%s", err.msg);
  }
  if (!wants_markdown(r))
    return reply_json(r, 200, j);
  durin_buf_init(&md, (size_t)64 << 20);
  durin_review_markdown(j, &md);
  json_decref(j);
  text = durin_buf_detach(&md, &len);
  resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
  MHD_add_response_header(resp, "Content-Type", "text/markdown; charset=utf-8");
  return reply_response(r, 200, resp);
}

const struct route srv_review_routes[] = {
  { "GET", "/v1/runs/{}/review", ROLE_VIEWER, get_review },
  { NULL, NULL, ROLE_NONE, NULL },
};
