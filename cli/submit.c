/*
 * Submitting a spec: parse and resolve it (model, base URL and price
 * pinned), copy its workspace beside the store, and create the run with
 * its queue placement. Shared by `durin run` and `durin submit`.
 */
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "cmd.h"
#include "durin/sandbox.h"
#include "durin/secret.h"
#include "durin/model.h"
#include "durin/spec.h"
#include "durin/util.h"

int cli_webhook_secret(struct durin_store *s, char **out, struct durin_err *err)
{
  unsigned char key[32];
  char b64[64], val[80];

  if (durin_random(key, sizeof(key)))
    return durin_err_set(err, DURIN_EIO, "cannot draw a webhook secret");
  sodium_bin2base64(b64, sizeof(b64), key, sizeof(key),
                    sodium_base64_VARIANT_ORIGINAL);
  snprintf(val, sizeof(val), "whsec_%s", b64);
  return durin_store_setting_init(s, "webhook_secret", val, out, err);
}

/*
 * "git": "auto" is decided now, on the source directory, and pinned with
 * the run: on when the workspace is the root of a git repository (its own
 * .git directory; the run's copy is then a repository of its own, and the
 * user's is never touched). A .git file (a linked worktree, a submodule)
 * names a repository outside the workspace: never used.
 */
static int resolve_git(struct durin_spec *spec, struct durin_err *err)
{
  char p[PATH_MAX + 8];
  struct stat st;
  int have = 0, gitfile = 0;

  snprintf(p, sizeof(p), "%s/.git", spec->workspace);
  if (!lstat(p, &st)) {
    have = S_ISDIR(st.st_mode);
    gitfile = !have;
  }
  if (spec->git.mode == DURIN_SPEC_GIT_ON && gitfile)
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'git': '%s' is not a directory (a linked "
                         "worktree or a submodule keeps its repository "
                         "elsewhere, which durin does not write to); submit "
                         "a clone of it, or set \"git\": false",
                         p);
  if (spec->git.mode == DURIN_SPEC_GIT_AUTO)
    spec->git.mode = have && !spec->sandbox.template ? DURIN_SPEC_GIT_ON :
                                                       DURIN_SPEC_GIT_OFF;
  return 0;
}

/*
 * Submits a parsed spec (consumed): resolves and pins it, copies its
 * workspace beside the store and creates the run. Prints nothing: a
 * failure is an exit code with err's message. Shared with the HTTP API,
 * which passes a store handle of its own in cli.
 */
int cli_submit_spec(struct cli *cli, const char *data, struct durin_spec *spec,
                    struct cli_submit *o, char id[32], struct durin_err *err)
{
  struct durin_run_new rn;
  const char *base_url;
  char *dumped = NULL, *hooks = NULL, *secret = NULL;
  char new_id[32], ws[PATH_MAX + 64], base[PATH_MAX + 64];
  char model_name[256];
  int r, i;

  if (o->dedupe_key &&
      durin_store_run_find_active(cli->store, o->tenant, o->dedupe_key, id,
                                  NULL) == 0) {
    o->deduped = 1;
    durin_spec_clear(spec);
    return 0;
  }
  if (o->model && *o->model && durin_spec_set_model(spec, o->model, err)) {
    char why[sizeof(err->msg)];

    snprintf(why, sizeof(why), "%s", err->msg);
    durin_err_set(err, DURIN_ESPEC, "bad model '%s': %s", o->model, why);
    durin_spec_clear(spec);
    return EXIT_SPEC;
  }
  /* The price and base URL are resolved now and pinned with the run, like
   * the model name: a later durin or environment does not change them. */
  if (!spec->model.price.set)
    durin_price_lookup(spec->model.name, &spec->model.price);
  base_url =
      getenv(!strcmp(spec->model.provider, "anthropic") ? "ANTHROPIC_BASE_URL" :
                                                          "OPENAI_BASE_URL");
  if (spec->model.base_url_default && base_url && *base_url) {
    free(spec->model.base_url);
    spec->model.base_url = strdup(base_url);
  }
  /* A key from the vault: the secret must exist in the run's tenant, and
   * be open to its agent, now rather than at the run's first model call.
   * Only its row is read: the submitter needs no master key. */
  if (spec->model.api_key_secret &&
      (r = durin_secret_check_use(cli->store, o->tenant,
                                  spec->model.api_key_secret,
                                  o->agent ? o->agent : spec->name, err))) {
    char why[sizeof(err->msg)];

    snprintf(why, sizeof(why), "%s", err->msg);
    durin_err_set(err, DURIN_ESPEC, "model.api_key_secret: %s", why);
    durin_spec_clear(spec);
    return r == DURIN_ENOTFOUND || r == DURIN_EACCES ? EXIT_SPEC :
                                                       cli_exit_for(r);
  }
  /* So must the evaluator's, when its own model names one. */
  if (spec->evaluator.own_model && spec->evaluator.model.api_key_secret &&
      (r = durin_secret_check_use(cli->store, o->tenant,
                                  spec->evaluator.model.api_key_secret,
                                  o->agent ? o->agent : spec->name, err))) {
    char why[sizeof(err->msg)];

    snprintf(why, sizeof(why), "%s", err->msg);
    durin_err_set(err, DURIN_ESPEC, "evaluator.model.api_key_secret: %s", why);
    durin_spec_clear(spec);
    return r == DURIN_ENOTFOUND || r == DURIN_EACCES ? EXIT_SPEC :
                                                       cli_exit_for(r);
  }
  /* Every grant's secret must be there for the run to use, now. */
  for (i = 0; i < spec->ngrants; i++) {
    const struct durin_spec_grant *g = &spec->grants[i];

    if ((r = durin_secret_check_use(cli->store, o->tenant, g->secret,
                                    o->agent ? o->agent : spec->name, err))) {
      char why[sizeof(err->msg)];

      snprintf(why, sizeof(why), "%s", err->msg);
      durin_err_set(err, DURIN_ESPEC, "secrets[%d].secret: %s", i, why);
      durin_spec_clear(spec);
      return r == DURIN_ENOTFOUND || r == DURIN_EACCES ? EXIT_SPEC :
                                                         cli_exit_for(r);
    }
  }
  /* So must an MCP server's header secrets. */
  for (i = 0; i < spec->nmcp; i++)
    for (int k = 0; k < spec->mcp[i].nheaders; k++) {
      const struct durin_spec_mcp_header *h = &spec->mcp[i].headers[k];
      char why[sizeof(err->msg)];

      if (!h->secret ||
          !(r = durin_secret_check_use(cli->store, o->tenant, h->secret,
                                       o->agent ? o->agent : spec->name, err)))
        continue;
      snprintf(why, sizeof(why), "%s", err->msg);
      durin_err_set(err, DURIN_ESPEC, "mcp_servers.%s.headers.%s.secret: %s",
                    spec->mcp[i].name, h->name, why);
      durin_spec_clear(spec);
      return r == DURIN_ENOTFOUND || r == DURIN_EACCES ? EXIT_SPEC :
                                                         cli_exit_for(r);
    }
  /* OpenAI and Anthropic always want a key: say so now, not after a 401. */
  if (!spec->model.api_key_secret && spec->model.base_url &&
      (strstr(spec->model.base_url, "api.openai.com") ||
       strstr(spec->model.base_url, "api.anthropic.com")) &&
      (!getenv(spec->model.api_key_env) || !*getenv(spec->model.api_key_env))) {
    durin_err_set(err, DURIN_ESPEC,
                  "model '%s' at %s needs an API key: set %s (or point "
                  "model.base_url at a server that needs none)",
                  spec->model.name, spec->model.base_url,
                  spec->model.api_key_env);
    durin_spec_clear(spec);
    return EXIT_SPEC;
  }
  if (resolve_git(spec, err)) {
    durin_spec_clear(spec);
    return EXIT_SPEC;
  }
  if (durin_run_id_new(new_id)) {
    durin_err_set(err, DURIN_EIO, "cannot make a run id");
    durin_spec_clear(spec);
    return EXIT_STORE;
  }
  /* The run works on its own copy; "base" is the start for 'durin diff'. */
  snprintf(ws, sizeof(ws), "%s/%s/workspace", data, new_id);
  snprintf(base, sizeof(base), "%s/%s/base", data, new_id);
  {
    char parent[PATH_MAX + 64];

    snprintf(parent, sizeof(parent), "%s/%s", data, new_id);
    char layers[PATH_MAX + 64], upper[PATH_MAX + 80], work[PATH_MAX + 80];
    const char *tmpl = spec->sandbox.template;

    /* With a template the run's own files are the upper layer, and the
     * workspace is where the view is mounted (lib/sandbox/workspace.c). */
    durin_workspace_layers(ws, layers, sizeof(layers));
    snprintf(upper, sizeof(upper), "%s/upper", layers);
    snprintf(work, sizeof(work), "%s/work", layers);
    if (durin_mkdirs(tmpl ? layers : parent, err) ||
        durin_tree_copy(spec->workspace, base, err) ||
        durin_tree_copy(spec->workspace, tmpl ? upper : ws, err) ||
        (tmpl && (durin_mkdirs(work, err) || durin_mkdirs(ws, err)))) {
      char why[sizeof(err->msg)];

      snprintf(why, sizeof(why), "%s", err->msg);
      durin_err_set(err, DURIN_EIO, "cannot prepare the run's workspace: %s",
                    why);
      durin_tree_remove(parent);
      durin_spec_clear(spec);
      return EXIT_STORE;
    }
  }
  free(spec->workspace);
  spec->workspace = strdup(ws);
  dumped = durin_spec_dump(spec);
  snprintf(model_name, sizeof(model_name), "%s:%s", spec->model.provider,
           spec->model.name);
  memset(&rn, 0, sizeof(rn));
  rn.id = new_id;
  rn.name = spec->name;
  rn.spec_json = dumped;
  rn.model = model_name;
  rn.workspace = ws;
  snprintf(id, 32, "%s", new_id);
  rn.now_ms = durin_now_ms();
  rn.tenant = o->tenant;
  rn.priority = o->priority;
  rn.dedupe_key = o->dedupe_key;
  rn.concurrency_key = o->concurrency_key;
  rn.not_before_ms = o->not_before_ms;
  rn.max_recoveries = o->retry_budget;
  rn.owner = o->owner;
  rn.lease_until_ms = rn.now_ms + 60000;
  rn.agent = o->agent;
  rn.agent_version = o->agent_version;
  rn.labels_json = o->labels_json;
  rn.created_by = o->created_by;
  rn.idem_key = o->idem_key;
  rn.idem_hash = o->idem_hash;
  rn.webhooks_json = o->webhooks_json;
  rn.webhook_secret = o->webhook_secret;
  rn.delivery = o->delivery;
  /* The spec's own webhooks, signed with the store's webhook secret
   * (made by the first submit that needs one; 'durin webhook secret'). */
  if (!rn.webhooks_json && spec->notify &&
      json_array_size(json_object_get(spec->notify, "webhooks"))) {
    hooks = json_dumps(json_object_get(spec->notify, "webhooks"), JSON_COMPACT);
    rn.webhooks_json = hooks;
    if (!rn.webhook_secret &&
        (r = cli_webhook_secret(cli->store, &secret, err))) {
      free(hooks);
      free(dumped);
      durin_spec_clear(spec);
      return cli_exit_for(r);
    }
    if (!rn.webhook_secret)
      rn.webhook_secret = secret;
  }
  r = o->create ? o->create(o->create_arg, &rn, err) :
                  durin_store_run_create(cli->store, &rn, err);
  free(hooks);
  free(secret);
  free(dumped);
  durin_spec_clear(spec);
  if (r == DURIN_EEXIST) {
    char parent[PATH_MAX + 64];

    /* Deduplicated (or an idempotent retry): drop our copy; the caller
     * finds the run that holds the key. */
    snprintf(parent, sizeof(parent), "%s/%s", data, rn.id);
    durin_tree_remove(parent);
    if (o->idem_key && !o->dedupe_key) {
      o->idem_reused = 1;
      return 0;
    }
    if (o->delivery &&
        durin_store_delivery_run(cli->store, o->delivery->trigger,
                                 o->delivery->delivery, id, NULL) == 0) {
      o->deduped = 1;
      return 0;
    }
    if (o->dedupe_key &&
        durin_store_run_find_active(cli->store, o->tenant, o->dedupe_key, id,
                                    NULL) == 0) {
      o->deduped = 1;
      return 0;
    }
  }
  if (r && o->create) {
    char parent[PATH_MAX + 64];

    /* Not created: nothing will ever use this copy. */
    snprintf(parent, sizeof(parent), "%s/%s", data, rn.id);
    durin_tree_remove(parent);
  }
  if (r)
    return cli_exit_for(r);
  return 0;
}

int cli_submit(struct cli *cli, const char *spec_path, struct cli_submit *o,
               char id[32])
{
  struct durin_spec spec;
  struct durin_err err = { 0 };
  char data[PATH_MAX];
  int code;

  if (o->dedupe_key && (code = cli_open_store(cli)) == 0 &&
      durin_store_run_find_active(cli->store, o->tenant, o->dedupe_key, id,
                                  NULL) == 0) {
    o->deduped = 1;
    return 0;
  }
  if ((code = cli_load_spec(spec_path, &spec)))
    return code;
  if ((code = cli_open_store(cli)) ||
      (code = cli_data_dir(cli, data, sizeof(data)))) {
    durin_spec_clear(&spec);
    return code;
  }
  code = cli_submit_spec(cli, data, &spec, o, id, &err);
  if (code)
    cli_error("%s", err.msg);
  return code;
}
