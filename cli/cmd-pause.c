/*
 * durin pause ID / durin unpause ID. A paused run holds no worker: the
 * worker driving it lets go at the next step boundary. Unpausing puts it
 * back in the queue.
 */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "durin/util.h"

static int pause_cmd(int argc, char **argv, struct cli *cli, int pause)
{
  struct durin_err err = { 0 };
  char id[32];
  int code, r;
  const char *usage_text =
      pause ? "usage: durin pause ID\n\nPauses a run: a worker lets go of "
              "it at the next step boundary.\n'durin unpause ID' queues it "
              "again.\n" :
              "usage: durin unpause ID\n\nPuts a paused run back in the "
              "queue; a worker continues it.\n";

  if (cli_wants_help(argc, argv)) {
    fputs(usage_text, stdout);
    return EXIT_OK;
  }
  if (argc > 2 || (argc == 2 && argv[1][0] == '-'))
    return cli_bad_arg(argv[0], argv[argv[1][0] == '-' ? 1 : 2], usage_text);
  if (argc != 2) {
    fputs(usage_text, stderr);
    return EXIT_USAGE;
  }
  if ((code = cli_open_store(cli)) || (code = cli_resolve(cli, argv[1], id)))
    return code;
  r = pause ? durin_store_run_pause(cli->store, id, durin_now_ms(), &err) :
              durin_store_run_unpause(cli->store, id, durin_now_ms(), &err);
  if (r) {
    cli_error("%s", err.msg);
    return cli_exit_for(r);
  }
  printf("%s: %s\n", id,
         pause ? "pause requested (a worker lets go at the next step)" :
                 "queued again");
  return EXIT_OK;
}

int cmd_pause(int argc, char **argv, struct cli *cli)
{
  return pause_cmd(argc, argv, cli, 1);
}

int cmd_unpause(int argc, char **argv, struct cli *cli)
{
  return pause_cmd(argc, argv, cli, 0);
}
