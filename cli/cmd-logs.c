/* durin logs ID [-f] [--json]: the run's event log. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"

static const char logs_usage[] =
    "usage: durin logs [-f] [--json] [--from SEQ] ID\n\n"
    "Prints the run's append-only event log: model responses, tool calls\n"
    "and results, plan updates, acceptance checks, budget and crash events.\n\n"
    "  -f, --follow   keep printing new events until the run stops\n"
    "  --json         one JSON object per event\n"
    "  --from SEQ     start at event sequence number SEQ\n";

struct logs_ctx {
  const char *id;
  int json;
  int64_t next;
};

static int print_ev(const struct durin_event *ev, void *arg)
{
  struct logs_ctx *c = arg;

  if (c->json)
    cli_print_event_json(stdout, c->id, ev);
  else
    cli_print_event(stdout, c->id, ev);
  c->next = ev->seq + 1;
  return 0;
}

int cmd_logs(int argc, char **argv, struct cli *cli)
{
  struct durin_err err = { 0 };
  struct logs_ctx c;
  const char *arg = NULL;
  int follow = 0, i, r;
  char id[32];

  if (cli_wants_help(argc, argv)) {
    fputs(logs_usage, stdout);
    return EXIT_OK;
  }
  memset(&c, 0, sizeof(c));
  c.next = 1;
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--follow"))
      follow = 1;
    else if (!strcmp(argv[i], "--json"))
      c.json = 1;
    else if (!strcmp(argv[i], "--from") && i + 1 < argc)
      c.next = atoll(argv[++i]);
    else if (argv[i][0] != '-' && !arg)
      arg = argv[i];
    else
      return cli_bad_arg("logs", argv[i], logs_usage);
  }
  if (!arg) {
    fputs(logs_usage, stderr);
    return EXIT_USAGE;
  }
  if ((r = cli_resolve(cli, arg, id)))
    return r;
  c.id = id;
  for (;;) {
    struct durin_run_info ri;
    int stopped;

    r = durin_store_events_read(cli->store, id, c.next, 0, print_ev, &c, &err);
    if (r) {
      cli_error("%s", err.msg);
      return cli_exit_for(r);
    }
    /* A reader that went away (`durin logs -f ID | head`) ends the follow. */
    if (fflush(stdout) != 0 || ferror(stdout))
      return EXIT_OK;
    if (!follow)
      break;
    if (durin_store_run_get(cli->store, id, &ri, &err)) {
      cli_error("%s", err.msg);
      return EXIT_STORE;
    }
    stopped = durin_run_status_terminal(ri.status) ||
              ri.status == DURIN_RUN_NEEDS_HUMAN;
    durin_run_info_clear(&ri);
    if (stopped) {
      /* One more read: events committed with the final status. */
      durin_store_events_read(cli->store, id, c.next, 0, print_ev, &c, NULL);
      break;
    }
    usleep(200 * 1000);
  }
  return EXIT_OK;
}
