/* durin webhook secret: the secret that signs runs' own webhooks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

static const char webhook_usage[] =
    "usage: durin webhook secret\n\n"
    "Prints the store's webhook secret (whsec_...): it signs the webhooks a\n"
    "run's spec asks for (notify.webhooks), the Standard Webhooks way, for\n"
    "every server of the store. Made on first use. Subscriptions made with\n"
    "POST /v1/webhooks have secrets of their own (docs/api/webhooks.md).\n";

int cmd_webhook(int argc, char **argv, struct cli *cli)
{
  struct durin_err err = { 0 };
  char *secret = NULL;
  int r;

  if (cli_wants_help(argc, argv)) {
    fputs(webhook_usage, stdout);
    return EXIT_OK;
  }
  if (argc < 2 || strcmp(argv[1], "secret")) {
    if (argc >= 2)
      return cli_bad_arg("webhook", argv[1], webhook_usage);
    fputs(webhook_usage, stderr);
    return EXIT_USAGE;
  }
  if (argc > 2)
    return cli_bad_arg("webhook secret", argv[2], webhook_usage);
  if ((r = cli_open_store(cli)))
    return r;
  if ((r = cli_webhook_secret(cli->store, &secret, &err))) {
    cli_error("%s", err.msg);
    return cli_exit_for(r);
  }
  printf("%s\n", secret);
  free(secret);
  return EXIT_OK;
}
