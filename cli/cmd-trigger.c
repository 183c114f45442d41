/*
 * durin trigger: inbound webhooks that start runs (add, ls, rm,
 * deliveries). A trigger is received by durin serve at
 * POST /v1/triggers/NAME; see docs/internals/triggers.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cmd.h"
#include "durin/secret.h"
#include "durin/spec.h"
#include "durin/trigger.h"
#include "durin/util.h"

static const char trigger_usage[] =
    "usage: durin trigger add NAME --secret-from SECRET [--kind github|standard]\n"
    "                         [--event E]... [--where PATH=VALUE]...\n"
    "                         [--goal TEMPLATE] [--label KEY=TEMPLATE]...\n"
    "                         [--untrusted ignore | --untrusted-spec FILE]\n"
    "                         [--tenant T] SPEC\n"
    "       durin trigger ls [--tenant T] [--json]\n"
    "       durin trigger rm NAME\n"
    "       durin trigger deliveries NAME [--limit N] [--json]\n\n"
    "A trigger starts a run of SPEC (pinned now) for each delivery that\n"
    "durin serve receives at POST /v1/triggers/NAME, signed with the vault\n"
    "secret SECRET ('durin secret set SECRET'): --kind github checks\n"
    "X-Hub-Signature-256, standard checks Standard Webhooks' headers (the\n"
    "secret is then 'whsec_' and base64). --event takes GitHub's event and\n"
    "action ('issues.labeled'; 'issues' takes every action), --where a\n"
    "dotted path into the payload and the text it must equal\n"
    "('label.name=agent'). --goal and --label are templates: {{path}} is\n"
    "the payload's value there (\\n is a newline). The payload is untrusted\n"
    "text: senders who are not OWNER, MEMBER or COLLABORATOR are recorded\n"
    "and ignored, or started under --untrusted-spec FILE. Each delivery id\n"
    "starts at most one run.\n";

/* --goal's text with \n and \t as the characters; malloc'd. */
static char *unescape(const char *s)
{
  char *o = malloc(strlen(s) + 1), *p = o;

  if (!o)
    return NULL;
  for (; *s; s++) {
    if (s[0] == '\\' && (s[1] == 'n' || s[1] == 't' || s[1] == '\\')) {
      *p++ = s[1] == 'n' ? '\n' : s[1] == 't' ? '\t' : '\\';
      s++;
    } else {
      *p++ = *s;
    }
  }
  *p = 0;
  return o;
}

/* The spec at path, checked, as JSON text with its workspace made
 * absolute (the runs copy it from there); NULL after saying why. */
static char *pin_spec(const char *path)
{
  struct durin_spec spec;
  struct durin_err err = { 0 };
  json_error_t je;
  json_t *j;
  char *text;

  if (cli_load_spec(path, &spec))
    return NULL;
  if (!(j = json_load_file(path, 0, &je))) {
    cli_error("trigger add: cannot read '%s': %s", path, je.text);
    durin_spec_clear(&spec);
    return NULL;
  }
  if (spec.workspace)
    json_object_set_new(j, "workspace", json_string(spec.workspace));
  durin_spec_clear(&spec);
  text = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  (void)err;
  return text;
}

static int add(struct cli *cli, int argc, char **argv)
{
  struct durin_trigger_def t;
  struct durin_secret_row row;
  struct durin_err err = { 0 };
  const char *name = NULL, *secret = NULL, *kind = "github", *specf = NULL;
  const char *tenant = "default", *uspecf = NULL, *untrusted = NULL;
  json_t *config = json_object(), *events = json_array(), *where = json_array(),
         *labels = json_object();
  char *spec = NULL, *uspec = NULL, *text = NULL;
  int i, r = EXIT_USAGE;

  memset(&t, 0, sizeof(t));
  memset(&row, 0, sizeof(row));
  for (i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

    if (!strcmp(a, "--secret-from") && v) {
      secret = argv[++i];
    } else if (!strcmp(a, "--kind") && v) {
      kind = argv[++i];
    } else if (!strcmp(a, "--tenant") && v) {
      tenant = argv[++i];
    } else if (!strcmp(a, "--event") && v) {
      json_array_append_new(events, json_string(argv[++i]));
    } else if ((!strcmp(a, "--where") || !strcmp(a, "--label")) && v) {
      const char *eq = strchr(v, '=');
      char *k;

      if (!eq || eq == v) {
        cli_error("trigger add: %s '%s': want %s", a, v,
                  a[2] == 'w' ? "PATH=VALUE, like label.name=agent" :
                                "KEY=TEMPLATE, like issue={{issue.number}}");
        goto out;
      }
      k = strndup(v, (size_t)(eq - v));
      if (a[2] == 'w') {
        json_array_append_new(
            where, json_pack("{s:s,s:s}", "path", k, "value", eq + 1));
      } else {
        char *u = unescape(eq + 1);

        json_object_set_new(labels, k, json_string(u ? u : ""));
        free(u);
      }
      free(k);
      i++;
    } else if (!strcmp(a, "--goal") && v) {
      char *u = unescape(argv[++i]);

      json_object_set_new(config, "goal", json_string(u ? u : ""));
      free(u);
    } else if (!strcmp(a, "--untrusted") && v) {
      untrusted = argv[++i];
    } else if (!strcmp(a, "--untrusted-spec") && v) {
      uspecf = argv[++i];
    } else if (a[0] != '-' && !name) {
      name = a;
    } else if (a[0] != '-' && !specf) {
      specf = a;
    } else {
      r = cli_bad_arg("trigger add", a, trigger_usage);
      goto out;
    }
  }
  if (!name || !specf || !secret) {
    cli_error("trigger add: %s", !name  ? "give the trigger's NAME" :
                                 !specf ? "give the SPEC file its runs use" :
                                          "give --secret-from SECRET, the "
                                          "vault secret deliveries are "
                                          "signed with");
    fputs(trigger_usage, stderr);
    goto out;
  }
  if (durin_trigger_name_check(name, &err) ||
      durin_secret_name_check(secret, &err)) {
    cli_error("trigger add: %s", err.msg);
    goto out;
  }
  if (strcmp(kind, "github") && strcmp(kind, "standard")) {
    cli_error("trigger add: --kind '%s': want github (X-Hub-Signature-256) "
              "or standard (Standard Webhooks)",
              kind);
    goto out;
  }
  if (untrusted && strcmp(untrusted, "ignore")) {
    cli_error("trigger add: --untrusted '%s': only 'ignore' (for a stricter "
              "spec, give --untrusted-spec FILE)",
              untrusted);
    goto out;
  }
  if (untrusted && uspecf) {
    cli_error("trigger add: give --untrusted ignore or --untrusted-spec, not "
              "both");
    goto out;
  }
  if (json_array_size(events))
    json_object_set(config, "events", events);
  if (json_array_size(where))
    json_object_set(config, "where", where);
  if (json_object_size(labels))
    json_object_set(config, "labels", labels);
  json_object_set_new(config, "untrusted",
                      json_string(uspecf ? "spec" : "ignore"));
  if (durin_trigger_config_check(config, &err)) {
    cli_error("trigger add: %s", err.msg);
    goto out;
  }
  r = EXIT_SPEC;
  if (!(spec = pin_spec(specf)) || (uspecf && !(uspec = pin_spec(uspecf))))
    goto out;
  if ((r = cli_open_store(cli)))
    goto out;
  if ((r = durin_store_secret_get(cli->store, tenant, secret, &row, &err))) {
    if (r == DURIN_ENOTFOUND)
      cli_error("trigger add: no secret '%s' in tenant '%s': store the "
                "webhook's secret first ('durin secret set %s')",
                secret, tenant, secret);
    else
      cli_error("trigger add: %s", err.msg);
    r = r == DURIN_ENOTFOUND ? EXIT_USAGE : cli_exit_for(r);
    goto out;
  }
  text = json_dumps(config, JSON_COMPACT);
  t.name = (char *)name;
  t.tenant = (char *)tenant;
  t.kind = (char *)kind;
  t.secret = (char *)secret;
  t.config = text;
  t.spec = spec;
  t.untrusted_spec = uspec;
  t.created_ms = durin_now_ms();
  t.created_by = getenv("USER");
  if ((r = durin_store_trigger_add(cli->store, &t, &err))) {
    cli_error("trigger add: %s", err.msg);
    r = r == DURIN_EEXIST ? EXIT_USAGE : cli_exit_for(r);
    goto out;
  }
  printf("%s\n", name);
  fprintf(stderr,
          "durin: trigger '%s' added: deliveries go to POST "
          "/v1/triggers/%s on durin serve\n",
          name, name);
  r = EXIT_OK;
out:
  durin_secret_row_clear(&row);
  json_decref(config);
  json_decref(events);
  json_decref(where);
  json_decref(labels);
  free(spec);
  free(uspec);
  free(text);
  return r;
}

struct ls_ctx {
  int json;
  json_t *arr;
};

static int ls_one(const struct durin_trigger_def *t, void *arg)
{
  struct ls_ctx *c = arg;
  json_t *cfg = json_loads(t->config, 0, NULL);

  if (c->json) {
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:s,s:I,s:s?}", "name", t->name, "tenant",
                  t->tenant, "kind", t->kind, "secret", t->secret, "created_ms",
                  (json_int_t)t->created_ms, "created_by", t->created_by);
    const char *k;
    json_t *v;

    json_object_foreach(cfg, k, v)
      json_object_set(o, k, v);
    json_array_append_new(c->arr, o);
  } else {
    json_t *events = json_object_get(cfg, "events");
    char *ev = events ? json_dumps(events, JSON_COMPACT) : NULL;

    printf("%-24s %-12s %-9s %-20s %-9s %s\n", t->name, t->tenant, t->kind,
           t->secret,
           json_string_value(json_object_get(cfg, "untrusted")) ?: "ignore",
           ev ? ev : "[]");
    free(ev);
  }
  json_decref(cfg);
  return 0;
}

static int ls(struct cli *cli, int argc, char **argv)
{
  struct ls_ctx c = { 0, NULL };
  struct durin_err err = { 0 };
  const char *tenant;
  int r = cli_ls_args(cli, argc, argv, "trigger ls", trigger_usage, &tenant,
                      &c.json);

  if (r >= 0)
    return r;
  c.arr = json_array();
  if (!c.json)
    printf("%-24s %-12s %-9s %-20s %-9s %s\n", "NAME", "TENANT", "KIND",
           "SECRET", "UNTRUSTED", "EVENTS");
  r = durin_store_trigger_list(cli->store, tenant, ls_one, &c, &err);
  return cli_ls_end("trigger ls", c.json, c.arr, r, &err);
}

static int rm(struct cli *cli, int argc, char **argv)
{
  struct durin_err err = { 0 };
  int r;

  if (argc != 3 || argv[2][0] == '-') {
    fputs(trigger_usage, stderr);
    return EXIT_USAGE;
  }
  if ((r = cli_open_store(cli)))
    return r;
  if ((r = durin_store_trigger_delete(cli->store, NULL, argv[2], &err))) {
    cli_error("trigger rm: %s", err.msg);
    return r == DURIN_ENOTFOUND ? EXIT_NOT_FOUND : cli_exit_for(r);
  }
  fprintf(stderr, "durin: trigger '%s' and its deliveries removed\n", argv[2]);
  return EXIT_OK;
}

static int delivery_one(const struct durin_trigger_delivery *d, void *arg)
{
  struct ls_ctx *c = arg;

  if (c->json) {
    json_array_append_new(
        c->arr, json_pack("{s:s,s:I,s:s?,s:s,s:s?,s:s?,s:s?,s:s?,s:s?}",
                          "delivery", d->delivery, "received_ms",
                          (json_int_t)d->received_ms, "event", d->event,
                          "outcome", d->outcome, "reason", d->reason, "run_id",
                          d->run_id, "sender", d->sender, "author_association",
                          d->association, "body_sha256", d->body_sha256));
  } else {
    char when[32];
    time_t s = (time_t)(d->received_ms / 1000);
    struct tm tm;

    gmtime_r(&s, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("%-20s %-38.38s %-22.22s %-8s %-22.22s %s%s%s\n", when,
           *d->delivery ? d->delivery : "-", d->event ? d->event : "-",
           d->outcome, d->run_id ? d->run_id : "-", d->sender ? d->sender : "-",
           d->reason && *d->reason ? ": " : "", d->reason ? d->reason : "");
  }
  return 0;
}

static int deliveries(struct cli *cli, int argc, char **argv)
{
  struct ls_ctx c = { 0, NULL };
  struct durin_trigger_def t;
  struct durin_err err = { 0 };
  const char *name = NULL;
  int i, r, limit = 100;

  for (i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--json"))
      c.json = 1;
    else if (!strcmp(argv[i], "--limit") && i + 1 < argc)
      limit = atoi(argv[++i]);
    else if (argv[i][0] != '-' && !name)
      name = argv[i];
    else
      return cli_bad_arg("trigger deliveries", argv[i], trigger_usage);
  }
  if (!name) {
    fputs(trigger_usage, stderr);
    return EXIT_USAGE;
  }
  if ((r = cli_open_store(cli)))
    return r;
  memset(&t, 0, sizeof(t));
  if ((r = durin_store_trigger_get(cli->store, name, &t, &err))) {
    cli_error("trigger deliveries: %s", err.msg);
    return r == DURIN_ENOTFOUND ? EXIT_NOT_FOUND : cli_exit_for(r);
  }
  durin_trigger_def_clear(&t);
  c.arr = json_array();
  if (!c.json)
    printf("%-20s %-38s %-22s %-8s %-22s %s\n", "RECEIVED", "DELIVERY", "EVENT",
           "OUTCOME", "RUN", "SENDER: REASON");
  r = durin_store_delivery_list(cli->store, name, limit, delivery_one, &c,
                                &err);
  if (c.json && !r)
    cli_print_json(c.arr);
  json_decref(c.arr);
  if (r) {
    cli_error("trigger deliveries: %s", err.msg);
    return cli_exit_for(r);
  }
  return EXIT_OK;
}

int cmd_trigger(int argc, char **argv, struct cli *cli)
{
  const char *sub = argc > 1 ? argv[1] : NULL;

  if (sub && !strcmp(sub, "add"))
    return add(cli, argc, argv);
  if (sub && !strcmp(sub, "ls"))
    return ls(cli, argc, argv);
  if (sub && !strcmp(sub, "rm"))
    return rm(cli, argc, argv);
  if (sub && !strcmp(sub, "deliveries"))
    return deliveries(cli, argc, argv);
  if (sub && (!strcmp(sub, "-h") || !strcmp(sub, "--help"))) {
    fputs(trigger_usage, stdout);
    return EXIT_OK;
  }
  fputs(trigger_usage, stderr);
  return EXIT_USAGE;
}
