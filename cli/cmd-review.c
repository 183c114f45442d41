/*
 * durin review ID [--json]: the run's review artifact (REVIEW.md, or
 * review.json with --json), built from the store, so it is there even if
 * the worker's copy in the run's directory was never written. The API's
 * GET /v1/runs/{id}/review builds it with the same function.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "durin/review.h"

static const char review_usage[] =
    "usage: durin review [--json] ID\n\n"
    "Prints the run's review: outcome and reason, what needs a person (with\n"
    "the command for each), the agent's summary and plan, the evaluator's\n"
    "verdict, each check with its failing lines, the diff, the timeline of\n"
    "tool calls, approvals and who decided them, cost and time. The same\n"
    "as REVIEW.md (review.json with --json) in the run's directory, which\n"
    "the worker writes when the run stops. A run that has not ended gets\n"
    "one too, of what it has done so far.\n";

int cli_review_build(struct durin_store *st, const char *id,
                     durin_review_diff_fn diff, void *arg, json_t **out,
                     struct durin_err *err)
{
  struct durin_review *rv = NULL;
  struct durin_err derr = { 0 };
  int r;

  if ((r = durin_review_load(st, id, &rv, err)))
    return r;
  /* A diff that cannot be made is said in the review, not a failure. */
  r = durin_review_git_diff(rv, durin_review_run(rv)->workspace, &derr);
  if (r == 0)
    durin_review_workspace_diff(rv, diff, arg, &derr);
  *out = durin_review_json(rv);
  durin_review_free(rv);
  return *out ? 0 : durin_err_set(err, DURIN_EIO, "cannot build the review");
}

struct cli_diff_arg {
  struct durin_store *st;
  const char *id;
};

static int cli_diff(void *arg, int stat, FILE *out, struct durin_err *err)
{
  struct cli_diff_arg *a = arg;

  return cli_diff_write(a->st, a->id, stat ? CLI_DIFF_STAT : 0, out, err);
}

int cmd_review(int argc, char **argv, struct cli *cli)
{
  struct durin_err err = { 0 };
  struct cli_diff_arg da;
  struct durin_buf md;
  json_t *j = NULL;
  char id[32], *text;
  int json = 0, r;

  if ((r = cli_run_arg(argc, argv, cli, "review", review_usage, "--json", &json,
                       id)) >= 0)
    return r;
  da.st = cli->store;
  da.id = id;
  if ((r = cli_review_build(cli->store, id, cli_diff, &da, &j, &err))) {
    cli_error("%s", err.msg);
    return cli_exit_for(r);
  }
  if (!json_is_true(json_object_get(j, "terminal")))
    fprintf(stderr,
            "durin: run %s has not ended (%s): this review is what it has "
            "done so far\n",
            id, json_string_value(json_object_get(j, "status")));
  if (json) {
    if ((text = durin_review_json_text(j)))
      fputs(text, stdout);
    free(text);
  } else {
    durin_buf_init(&md, (size_t)64 << 20);
    durin_review_markdown(j, &md);
    fwrite(md.buf, 1, md.len, stdout);
    durin_buf_release(&md);
  }
  json_decref(j);
  return EXIT_OK;
}
