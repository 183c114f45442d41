/* durin cancel ID: ends a run as cancelled. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "durin/util.h"
#include "durin/worker.h"

static const char cancel_usage[] =
    "usage: durin cancel ID\n\n"
    "Cancels a run. If a process is driving it, that process notices within\n"
    "about a second: a running tool's process group is killed, a model call\n"
    "is dropped, and the run ends as cancelled. Otherwise durin ends it\n"
    "here.\n";

/*
 * Ends a run nobody is driving: the worker limited to it takes it (fencing
 * any stale holder), sees the cancel flag as it restores the run, so no
 * further tool call starts, and commits the cancellation.
 */
static int cancel_here(struct cli *cli, const char *id, struct durin_err *err)
{
  struct durin_worker_opts o;
  struct durin_worker_result res;
  struct durin_worker *w = NULL;
  char owner[300];
  int r;

  cli_owner_name(owner, sizeof(owner));
  memset(&o, 0, sizeof(o));
  o.owner = owner;
  o.run_id = id;
  o.lease_ttl_ms = 30000;
  o.resolve = -1;
  r = durin_worker_new(cli->store, &o, &w, err);
  if (!r)
    r = durin_worker_run(w);
  if (!r)
    r = durin_worker_result(w, &res, err);
  durin_worker_free(w);
  return r;
}

int cmd_cancel(int argc, char **argv, struct cli *cli)
{
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  char id[32];
  int r, live;

  if (cli_wants_help(argc, argv)) {
    fputs(cancel_usage, stdout);
    return EXIT_OK;
  }
  if (argc > 2 || (argc == 2 && argv[1][0] == '-'))
    return cli_bad_arg("cancel", argv[argv[1][0] == '-' ? 1 : 2], cancel_usage);
  if (argc != 2) {
    fputs(cancel_usage, stderr);
    return EXIT_USAGE;
  }
  if ((r = cli_resolve(cli, argv[1], id)))
    return r;
  if ((r = durin_store_run_request_cancel(cli->store, id, &err))) {
    cli_error("%s", err.msg);
    return cli_exit_for(r);
  }
  if ((r = durin_store_run_get(cli->store, id, &ri, &err))) {
    cli_error("%s", err.msg);
    return cli_exit_for(r);
  }
  if (durin_run_status_terminal(ri.status)) {
    printf("run %s already ended (%s)\n", id, durin_run_status_name(ri.status));
    durin_run_info_clear(&ri);
    return EXIT_OK;
  }
  live = cli_lease_live(&ri);
  durin_run_info_clear(&ri);
  if (live) {
    printf("cancellation requested; the process driving run %s stops it "
           "within about a second\n",
           id);
    return EXIT_OK;
  }
  r = cancel_here(cli, id, &err);
  if (r) {
    cli_error("%s", err.msg);
    return cli_exit_for(r);
  }
  printf("run %s cancelled\n", id);
  return EXIT_OK;
}
