/*
 * durin secret: the vault (keygen, set, ls, rm). Values go in through
 * stdin or a file, never the command line (which every user of the host
 * can read in /proc), and never come out: there is no 'get'; runs read
 * them (model.api_key_secret).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd.h"
#include "durin/secret.h"
#include "durin/util.h"

static const char secret_usage[] =
    "usage: durin secret keygen [-o FILE]\n"
    "       durin secret set NAME [--tenant T] [--scope agent:NAME] "
    "[--file F]\n"
    "       durin secret ls [--tenant T] [--json]\n"
    "       durin secret rm NAME [--tenant T]\n"
    "       durin secret rekey --from OLD_KEY_FILE\n\n"
    "The vault: values encrypted in the store under a master key kept\n"
    "outside it. keygen writes a new key file (0600; never over an existing\n"
    "one), by default ~/.config/durin/master.key. The key is read from\n"
    "$DURIN_MASTER_KEY (base64 or hex of 32 bytes), else\n"
    "$CREDENTIALS_DIRECTORY/durin-master-key (systemd), else the file\n"
    "$DURIN_MASTER_KEY_FILE, else the default file.\n\n"
    "set reads the value from stdin (or --file F), never from the command\n"
    "line; exactly one trailing newline is dropped, so 'echo' and files\n"
    "ending in a newline give the value without it. Setting an existing\n"
    "NAME rotates it: the version goes up, the name stays. ls shows names\n"
    "and metadata, never values; rm deletes one. The tenant is 'default'\n"
    "unless given (ls: every tenant). NAME: letters, digits and '_'.\n\n"
    "rekey rotates the master key: every secret sealed under the key in\n"
    "OLD_KEY_FILE is sealed again under the current one (a new version).\n"
    "While it runs, workers given the new key and\n"
    "DURIN_MASTER_KEY_PREVIOUS_FILE=OLD_KEY_FILE open values under either.\n";

static int keygen(int argc, char **argv)
{
  struct durin_err err = { 0 };
  const char *out = NULL;
  char id[17], where[4096];
  int i, r;

  for (i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "-o") && i + 1 < argc)
      out = argv[++i];
    else
      return cli_bad_arg("secret keygen", argv[i], secret_usage);
  }
  if ((r = durin_master_key_generate(out, id, where, sizeof(where), &err))) {
    cli_error("secret keygen: %s", err.msg);
    return r == DURIN_EEXIST || r == DURIN_EINVAL ? EXIT_USAGE : EXIT_STORE;
  }
  printf("%s\n", where);
  fprintf(
      stderr,
      "durin: wrote a new master key to '%s' (key id %s); keep a copy "
      "somewhere safe: without it no secret sealed under it can be read%s\n",
      where, id, out ? "; point DURIN_MASTER_KEY_FILE at it" : "");
  return EXIT_OK;
}

/* Loads the master key, or says how to make one. */
static int load_key(const char *cmd, struct durin_master_key **k)
{
  struct durin_err err = { 0 };

  if (durin_master_key_load(k, &err)) {
    cli_error("secret %s: %s", cmd, err.msg);
    return EXIT_USAGE;
  }
  return 0;
}

/* The value, from fd, in wiped memory; one trailing newline dropped. */
static int read_value(int fd, const char *from, struct durin_secret_value *v)
{
  size_t cap = DURIN_SECRET_MAX_VALUE + 2, len = 0;
  ssize_t n;

  if (durin_secret_value_alloc(v, cap)) {
    cli_error("secret set: out of memory");
    return EXIT_RUN_FAILED;
  }
  while (len < cap && (n = read(fd, v->data + len, cap - len)) != 0) {
    if (n < 0) {
      if (errno == EINTR)
        continue;
      cli_error("secret set: cannot read the value from %s: %s", from,
                strerror(errno));
      durin_secret_value_clear(v);
      return EXIT_USAGE;
    }
    len += (size_t)n;
  }
  if (len && v->data[len - 1] == '\n')
    len--;
  if (len > DURIN_SECRET_MAX_VALUE) {
    cli_error("secret set: the value from %s is longer than %d bytes", from,
              DURIN_SECRET_MAX_VALUE);
    durin_secret_value_clear(v);
    return EXIT_USAGE;
  }
  if (!len) {
    cli_error("secret set: the value from %s is empty", from);
    durin_secret_value_clear(v);
    return EXIT_USAGE;
  }
  v->len = len;
  v->data[len] = 0;
  return 0;
}

static int set(struct cli *cli, int argc, char **argv)
{
  struct durin_secret_set_opts o;
  struct durin_secret_value v = { 0 };
  struct durin_master_key *k = NULL;
  struct durin_err err = { 0 };
  const char *file = NULL, *user = getenv("USER");
  char by[200];
  int64_t version = 0;
  int i, r, fd = 0;

  memset(&o, 0, sizeof(o));
  for (i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--tenant") && i + 1 < argc)
      o.tenant = argv[++i];
    else if (!strcmp(argv[i], "--scope") && i + 1 < argc)
      o.scope = argv[++i];
    else if (!strcmp(argv[i], "--file") && i + 1 < argc)
      file = argv[++i];
    else if (argv[i][0] != '-' && !o.name)
      o.name = argv[i];
    else if (argv[i][0] != '-') {
      /* Never take it: it is in ps, /proc and the shell's history now. */
      cli_error("secret set: a value on the command line is refused (every "
                "user of this host can read it): pipe it in, e.g. 'printf "
                "%%s \"$VALUE\" | durin secret set %s', or use --file F",
                o.name);
      return EXIT_USAGE;
    } else
      return cli_bad_arg("secret set", argv[i], secret_usage);
  }
  if (!o.name) {
    fputs(secret_usage, stderr);
    return EXIT_USAGE;
  }
  if (durin_secret_name_check(o.name, &err)) {
    cli_error("secret set: %s", err.msg);
    return EXIT_USAGE;
  }
  if (o.scope && strncmp(o.scope, "agent:", 6)) {
    cli_error("secret set: scope '%s' is not 'agent:NAME'", o.scope);
    return EXIT_USAGE;
  }
  if (!file && isatty(0)) {
    cli_error("secret set: stdin is a terminal: pipe the value in, e.g. "
              "'printf %%s \"$VALUE\" | durin secret set %s', or use --file F",
              o.name);
    return EXIT_USAGE;
  }
  if ((r = load_key("set", &k)))
    return r;
  if (file && (fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
    cli_error("secret set: cannot open '%s': %s", file, strerror(errno));
    durin_master_key_free(k);
    return EXIT_USAGE;
  }
  r = read_value(fd, file ? file : "stdin", &v);
  if (file)
    close(fd);
  if (r || (r = cli_open_store(cli)))
    goto out;
  snprintf(by, sizeof(by), "cli:%s", user && *user ? user : "unknown");
  o.created_by = by;
  o.now_ms = durin_now_ms();
  if ((r = durin_secret_set(cli->store, k, &o, v.data, v.len, &version,
                            &err))) {
    cli_error("secret set: %s", err.msg);
    r = cli_exit_for(r);
    goto out;
  }
  fprintf(stderr,
          "durin: secret '%s' set in tenant '%s': version %lld, key id %s\n",
          o.name, o.tenant ? o.tenant : "default", (long long)version, k->id);
out:
  durin_secret_value_clear(&v);
  durin_master_key_free(k);
  return r;
}

struct ls_ctx {
  int json;
  json_t *arr;
};

static void when(int64_t ms, char *out, size_t len)
{
  time_t t = (time_t)(ms / 1000);
  struct tm tm;

  gmtime_r(&t, &tm);
  strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int ls_one(const struct durin_secret_row *s, void *arg)
{
  struct ls_ctx *c = arg;
  char upd[32];

  when(s->updated_ms, upd, sizeof(upd));
  if (c->json) {
    json_array_append_new(
        c->arr,
        json_pack("{s:s,s:s,s:s?,s:I,s:s,s:I,s:I,s:s?}", "tenant", s->tenant,
                  "name", s->name, "scope", s->scope, "version",
                  (json_int_t)s->version, "key_id", s->key_id, "created_ms",
                  (json_int_t)s->created_ms, "updated_ms",
                  (json_int_t)s->updated_ms, "created_by", s->created_by));
    return 0;
  }
  printf("%-24s %-12s %-16s %7lld %-16s %s\n", s->name, s->tenant,
         s->scope ? s->scope : "-", (long long)s->version, s->key_id, upd);
  return 0;
}

static int ls(struct cli *cli, int argc, char **argv)
{
  struct ls_ctx c = { 0, NULL };
  struct durin_err err = { 0 };
  const char *tenant;
  int r =
      cli_ls_args(cli, argc, argv, "secret ls", secret_usage, &tenant, &c.json);

  if (r >= 0)
    return r;
  c.arr = json_array();
  if (!c.json)
    printf("%-24s %-12s %-16s %7s %-16s %s\n", "NAME", "TENANT", "SCOPE",
           "VERSION", "KEY_ID", "UPDATED");
  r = durin_store_secret_list(cli->store, tenant, ls_one, &c, &err);
  return cli_ls_end("secret ls", c.json, c.arr, r, &err);
}

static int rm(struct cli *cli, int argc, char **argv)
{
  struct durin_err err = { 0 };
  const char *tenant = "default", *name = NULL;
  int i, r;

  for (i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--tenant") && i + 1 < argc)
      tenant = argv[++i];
    else if (argv[i][0] != '-' && !name)
      name = argv[i];
    else
      return cli_bad_arg("secret rm", argv[i], secret_usage);
  }
  if (!name) {
    fputs(secret_usage, stderr);
    return EXIT_USAGE;
  }
  if ((r = cli_open_store(cli)))
    return r;
  if ((r = durin_store_secret_delete(cli->store, tenant, name, &err))) {
    cli_error("secret rm: %s", err.msg);
    return cli_exit_for(r);
  }
  fprintf(stderr, "durin: secret '%s' deleted from tenant '%s'\n", name,
          tenant);
  return EXIT_OK;
}

static int rekey(struct cli *cli, int argc, char **argv)
{
  struct durin_master_key *k = NULL, *old = NULL;
  struct durin_rekey_stats st;
  struct durin_err err = { 0 };
  const char *from = NULL;
  int i, r;

  for (i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--from") && i + 1 < argc)
      from = argv[++i];
    else
      return cli_bad_arg("secret rekey", argv[i], secret_usage);
  }
  if (!from) {
    cli_error("secret rekey: give the old key's file with --from FILE (the "
              "new key is the one configured: DURIN_MASTER_KEY, "
              "DURIN_MASTER_KEY_FILE or the default file)");
    return EXIT_USAGE;
  }
  if ((r = load_key("rekey", &k)))
    return r;
  if (durin_master_key_load_file(from, &old, &err)) {
    cli_error("secret rekey: %s", err.msg);
    durin_master_key_free(k);
    return EXIT_USAGE;
  }
  if ((r = cli_open_store(cli)) == 0) {
    r = durin_secret_rekey(cli->store, k, old, durin_now_ms(), &st, &err);
    if (r) {
      cli_error("secret rekey: %s (%d sealed again before this; run rekey "
                "again to go on)",
                err.msg, st.resealed);
      r = cli_exit_for(r);
    } else {
      printf("sealed %d secret%s again under key %s (from %s); %d already "
             "under it",
             st.resealed, st.resealed == 1 ? "" : "s", k->id, old->id,
             st.current);
      if (st.other)
        printf("; %d under other keys, left alone (see 'durin secret ls')",
               st.other);
      printf("\n");
    }
  }
  durin_master_key_free(k);
  durin_master_key_free(old);
  return r;
}

int cmd_secret(int argc, char **argv, struct cli *cli)
{
  if (cli_wants_help(argc, argv) || argc < 2) {
    fputs(secret_usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? EXIT_USAGE : EXIT_OK;
  }
  if (!strcmp(argv[1], "keygen"))
    return keygen(argc, argv);
  if (!strcmp(argv[1], "set"))
    return set(cli, argc, argv);
  if (!strcmp(argv[1], "ls"))
    return ls(cli, argc, argv);
  if (!strcmp(argv[1], "rm"))
    return rm(cli, argc, argv);
  if (!strcmp(argv[1], "rekey"))
    return rekey(cli, argc, argv);
  cli_error("secret: unknown subcommand '%s' (keygen, set, ls, rm, rekey)",
            argv[1]);
  return EXIT_USAGE;
}
