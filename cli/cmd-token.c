/* durin token: API tokens for durin serve (create, ls, revoke). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "durin/util.h"
#include "server/server.h"

static const char token_usage[] =
    "usage: durin token create NAME --role viewer|operator|admin "
    "[--tenant T]\n"
    "       durin token ls [--json]\n"
    "       durin token revoke NAME\n\n"
    "API tokens for 'durin serve'. create prints the token once: the store\n"
    "keeps only its hash. viewer reads; operator also submits, cancels and\n"
    "decides approvals; admin also manages agents, limits, tokens and\n"
    "webhooks. A token with --tenant sees that tenant's runs only.\n";

static int create(struct cli *cli, int argc, char **argv)
{
  struct durin_token t;
  struct durin_err err = { 0 };
  const char *name = NULL, *role = NULL, *tenant = NULL;
  char tok[80];
  int i, r;

  for (i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--role") && i + 1 < argc)
      role = argv[++i];
    else if (!strcmp(argv[i], "--tenant") && i + 1 < argc)
      tenant = argv[++i];
    else if (argv[i][0] != '-' && !name)
      name = argv[i];
    else
      return cli_bad_arg("token create", argv[i], token_usage);
  }
  if (!name || !role) {
    cli_error("token create: %s", !name ?
                                      "name the token (who or what uses it)" :
                                      "give --role viewer, operator or admin");
    return EXIT_USAGE;
  }
  if (role_parse(role) == ROLE_NONE) {
    cli_error("token create: role '%s' is not viewer, operator or admin", role);
    return EXIT_USAGE;
  }
  if ((r = cli_open_store(cli)))
    return r;
  memset(&t, 0, sizeof(t));
  t.name = name;
  t.role = role;
  t.tenant = tenant;
  if ((r = token_issue(cli->store, &t, tok, sizeof(tok), &err))) {
    cli_error("%s", err.msg);
    return r == DURIN_EEXIST ? EXIT_USAGE : cli_exit_for(r);
  }
  printf("%s\n", tok);
  fprintf(stderr,
          "durin: token '%s' (%s%s%s) created; it is shown only now: keep "
          "it in a secret store\n",
          name, role, tenant ? ", tenant " : "", tenant ? tenant : "");
  return EXIT_OK;
}

struct ls_ctx {
  int json;
  json_t *arr;
};

static int ls_one(const struct durin_token *t, void *arg)
{
  struct ls_ctx *c = arg;

  if (c->json) {
    /* The shape GET /v1/tokens answers with. */
    json_array_append_new(c->arr, token_json(t));
    return 0;
  }
  printf("%-24s %-9s %-16s %s\n", t->name, t->role, t->tenant ? t->tenant : "*",
         t->revoked_ms ? "revoked" : "active");
  return 0;
}

int cmd_token(int argc, char **argv, struct cli *cli)
{
  struct durin_err err = { 0 };
  int r;

  if (cli_wants_help(argc, argv) || argc < 2) {
    fputs(token_usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? EXIT_USAGE : EXIT_OK;
  }
  if (!strcmp(argv[1], "create"))
    return create(cli, argc, argv);
  if (!strcmp(argv[1], "ls")) {
    struct ls_ctx c = { argc > 2 && !strcmp(argv[2], "--json"), json_array() };

    if (argc > 2 + c.json) {
      json_decref(c.arr);
      return cli_bad_arg("token ls", argv[2 + c.json], token_usage);
    }
    if ((r = cli_open_store(cli))) {
      json_decref(c.arr);
      return r;
    }
    if (!c.json)
      printf("%-24s %-9s %-16s %s\n", "NAME", "ROLE", "TENANT", "STATE");
    r = durin_store_token_list(cli->store, ls_one, &c, &err);
    if (c.json && !r)
      cli_print_json(c.arr);
    json_decref(c.arr);
    if (r) {
      cli_error("%s", err.msg);
      return cli_exit_for(r);
    }
    return EXIT_OK;
  }
  if (!strcmp(argv[1], "revoke")) {
    if (argc != 3) {
      fputs(token_usage, stderr);
      return EXIT_USAGE;
    }
    if ((r = cli_open_store(cli)))
      return r;
    if ((r = durin_store_token_revoke(cli->store, argv[2], durin_now_ms(),
                                      &err))) {
      cli_error("%s", err.msg);
      return r == DURIN_ENOTFOUND ? EXIT_NOT_FOUND : cli_exit_for(r);
    }
    fprintf(stderr, "durin: token '%s' revoked\n", argv[2]);
    return EXIT_OK;
  }
  cli_error("token: unknown subcommand '%s' (create, ls, revoke)", argv[1]);
  return EXIT_USAGE;
}
