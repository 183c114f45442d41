/*
 * /v1/schedules: schedules over HTTP (docs/internals/schedules.md), with
 * the roles of runs: a viewer reads, an operator adds, pauses, resumes and
 * removes; a tenant token works in its tenant. The spec is judged by the
 * server's spec policy when the schedule is added, as a run's is when it
 * is created, and pinned. Its workspace is copied at every tick, so it is
 * a server directory (admins, under --workspace-root) or none (an empty
 * one); an upload starts one run only and is refused here.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <microhttpd.h>

#include "cli/cmd.h"
#include "durin/sched.h"
#include "durin/spec.h"
#include "durin/store.h"
#include "durin/util.h"
#include "server.h"
#include "server/specpolicy.h"
#include "server/workspaces.h"

struct list_ctx {
  json_t *arr;
  int64_t now;
};

static int list_one(const struct durin_schedule *sc, void *arg)
{
  struct list_ctx *c = arg;

  json_array_append_new(c->arr, cli_schedule_json(sc, c->now));
  return 0;
}

/* GET /v1/schedules[?tenant=T] */
static int list_schedules(struct req *r)
{
  struct durin_err err = { 0 };
  struct list_ctx c = { json_array(), cli_sched_now() };
  const char *tenant;
  int rc = srv_list_tenant(r, &tenant);

  if (rc < 0) {
    json_decref(c.arr);
    return 0;
  }
  if (rc == 0 && (rc = durin_store_schedule_list(r->store, tenant, 0, list_one,
                                                 &c, &err))) {
    json_decref(c.arr);
    return reply_store_error(r, rc, &err);
  }
  return reply_json(r, 200, json_pack("{s:o}", "schedules", c.arr));
}

/* The request's schedule; 0 after answering (404 alike whether it is
 * not there or not the token's tenant's). */
static int find(struct req *r, int write, struct durin_schedule *sc)
{
  struct durin_err err = { 0 };
  const char *tenant;
  int rc = srv_act_tenant(r, write, &tenant);

  if (rc < 0)
    return 0;
  rc = rc ? DURIN_ENOTFOUND :
            durin_store_schedule_get(r->store, tenant, r->param[0], sc, &err);
  if (rc == DURIN_ENOTFOUND) {
    reply_error(r, 404, "not_found",
                "no schedule '%s' in tenant '%s' (list them with GET "
                "/v1/schedules)",
                r->param[0], tenant ? tenant : "?");
    return 0;
  }
  if (rc) {
    reply_store_error(r, rc, &err);
    return 0;
  }
  return 1;
}

static int add_tick(const struct durin_schedule_tick *t, void *arg)
{
  json_array_append_new(arg, cli_schedule_tick_json(t));
  return 0;
}

/* GET /v1/schedules/{name}: the schedule and its last 20 ticks. */
static int get_schedule(struct req *r)
{
  struct durin_schedule sc;
  struct durin_err err = { 0 };
  json_t *j, *ticks = json_array();
  int rc;

  if (!find(r, 0, &sc)) {
    json_decref(ticks);
    return 0;
  }
  rc = durin_store_schedule_ticks(r->store, sc.tenant, sc.name, 20, add_tick,
                                  ticks, &err);
  j = cli_schedule_json(&sc, cli_sched_now());
  durin_schedule_clear(&sc);
  if (rc) {
    json_decref(ticks);
    json_decref(j);
    return reply_store_error(r, rc, &err);
  }
  json_object_set_new(j, "ticks", ticks);
  return reply_json(r, 200, j);
}

/* The directory each tick's run copies: an admin's server directory, or
 * an empty one of the schedule's own. -1 after answering. */
static int schedule_workspace(struct req *r, json_t *ws, const char *tenant,
                              const char *name, char *dir, size_t len)
{
  struct durin_err err = { 0 };

  if (ws && json_object_get(ws, "upload"))
    return reply_error_field(r, 422, "spec_policy", "workspace.upload",
                             "a schedule copies its workspace at every tick, "
                             "and an upload starts one run only: give "
                             "{\"dir\": PATH} (admins) or no workspace"),
           -1;
  if (ws)
    return srv_workspace_for_run(r, ws, NULL, dir, len);
  snprintf(dir, len, "%s/schedules/%s/%s", srv_data_dir(r->srv), tenant, name);
  if (durin_mkdirs(dir, &err))
    return reply_error(r, 500, "internal", "cannot make a workspace: %s",
                       err.msg),
           -1;
  return 0;
}

/* POST /v1/schedules {"name", "cron", "tz"?, "overlap"?, "catchup"?,
 * "spec", "workspace"?, "tenant"?}: 201 with the schedule. */
static int create_schedule(struct req *r)
{
  static const char *const fields[] = { "name",      "cron",    "tz",
                                        "overlap",   "catchup", "spec",
                                        "workspace", "tenant",  NULL };
  struct durin_schedule sc;
  struct durin_spec spec;
  struct durin_err err = { 0 };
  const char *name = NULL, *cron = NULL, *tz = NULL, *overlap = NULL;
  const char *tenant = NULL, *field = NULL;
  char ws_dir[PATH_MAX] = "", *spec_text = NULL, *dumped = NULL;
  int64_t catchup = 1;
  json_t *body, *spec_j;
  int rc;

  if (srv_options(r->srv)->unsandboxed)
    return reply_error(r, 422, "spec_policy",
                       "this server runs tool calls without the sandbox "
                       "(--sandbox none), so it takes no schedules over the "
                       "network; restart it with the sandbox on");
  if (!(body = req_json(r)))
    return 0;
  memset(&sc, 0, sizeof(sc));
  if (req_unknown_field(r, body, fields) ||
      req_opt_string(r, body, "name", &name) ||
      req_opt_string(r, body, "cron", &cron) ||
      req_opt_string(r, body, "tz", &tz) ||
      req_opt_string(r, body, "overlap", &overlap) ||
      req_opt_string(r, body, "tenant", &tenant) ||
      req_opt_int(r, body, "catchup", &catchup))
    goto out;
  if (!name || !cron) {
    reply_error_field(r, 400, "bad_field", name ? "cron" : "name",
                      "give the schedule's 'name' and its 'cron' expression");
    goto out;
  }
  if (srv_body_tenant(r, &tenant))
    goto out;
  if (!tenant)
    tenant = "default";
  /* Both become path components of the schedule's workspace. */
  if (!srv_name_ok(tenant) || !srv_name_ok(name)) {
    reply_error_field(r, 400, "bad_name",
                      srv_name_ok(tenant) ? "name" : "tenant",
                      "'%s' is not a name: use 1 to 64 letters, digits, '.', "
                      "'_' or '-', not starting with '.'",
                      srv_name_ok(tenant) ? name : tenant);
    goto out;
  }
  if (overlap && durin_overlap_parse(overlap, &sc.overlap)) {
    reply_error_field(r, 400, "bad_field", "overlap",
                      "overlap is skip, queue or cancel-previous, not '%s'",
                      overlap);
    goto out;
  }
  {
    struct durin_cron *c = NULL;

    if (durin_cron_parse(cron, tz, &c, &err)) {
      reply_error_field(r, 400, "bad_field",
                        strstr(err.msg, "time zone") ? "tz" : "cron", "%s",
                        err.msg);
      goto out;
    }
    durin_cron_free(c);
  }
  spec_j = json_object_get(body, "spec");
  if (!json_is_object(spec_j)) {
    reply_error_field(r, 400, "bad_field", "spec",
                      "give the spec each tick runs as 'spec' (an object)");
    goto out;
  }
  if (json_object_get(spec_j, "workspace")) {
    reply_error_field(r, 422, "spec_policy", "spec.workspace",
                      "a spec sent over the API names no host directory: "
                      "as an admin, give {\"workspace\": {\"dir\": ...}}");
    goto out;
  }
  if (schedule_workspace(r, json_object_get(body, "workspace"), tenant, name,
                         ws_dir, sizeof(ws_dir)))
    goto out;
  spec_j = json_deep_copy(spec_j);
  json_object_set_new(spec_j, "workspace", json_string(ws_dir));
  spec_text = json_dumps(spec_j, JSON_COMPACT);
  json_decref(spec_j);
  if (durin_spec_parse(spec_text, NULL, &spec, &err)) {
    reply_error(r, 422, "bad_spec", "bad spec: %s", err.msg);
    goto out;
  }
  if (srv_options(r->srv)->policy &&
      spec_policy_check(srv_options(r->srv)->policy, tenant, &spec, &field,
                        &err)) {
    reply_error_field(r, 422, "spec_policy", field, "%s", err.msg);
    durin_spec_clear(&spec);
    goto out;
  }
  dumped = durin_spec_dump(&spec);
  durin_spec_clear(&spec);
  sc.tenant = (char *)tenant;
  sc.name = (char *)name;
  sc.cron = (char *)cron;
  sc.tz = (char *)(tz && *tz ? tz : "UTC");
  sc.spec_json = dumped;
  sc.catchup = catchup;
  sc.created_by = r->who.name;
  rc = cli_schedule_add(r->store, &sc, cli_sched_now(), &err);
  if (rc == DURIN_EINVAL) {
    reply_error_field(r, 400, "bad_field",
                      strstr(err.msg, "catch-up") ? "catchup" :
                      strstr(err.msg, "name")     ? "name" :
                                                    "cron",
                      "%s", err.msg);
    goto out;
  }
  if (rc == DURIN_EEXIST) {
    reply_error(r, 409, "conflict", "%s", err.msg);
    goto out;
  }
  if (rc) {
    reply_store_error(r, rc, &err);
    goto out;
  }
  srv_log(r->srv, "schedule '%s' of tenant '%s' added by token '%s'", name,
          tenant, r->who.name);
  {
    struct durin_schedule got;

    if (durin_store_schedule_get(r->store, tenant, name, &got, &err)) {
      reply_store_error(r, DURIN_ESTORE, &err);
    } else {
      reply_json(r, 201, cli_schedule_json(&got, cli_sched_now()));
      durin_schedule_clear(&got);
    }
  }
out:
  free(spec_text);
  free(dumped);
  json_decref(body);
  return 0;
}

/* DELETE /v1/schedules/{name}: 204; its runs stay. */
static int delete_schedule(struct req *r)
{
  struct durin_schedule sc;
  struct durin_err err = { 0 };
  int rc;

  if (!find(r, 1, &sc))
    return 0;
  rc = durin_store_schedule_remove(r->store, sc.tenant, sc.name, &err);
  if (rc && rc != DURIN_ENOTFOUND) {
    durin_schedule_clear(&sc);
    return reply_store_error(r, rc, &err);
  }
  srv_log(r->srv, "schedule '%s' of tenant '%s' removed by token '%s'", sc.name,
          sc.tenant, r->who.name);
  durin_schedule_clear(&sc);
  return reply_response(
      r, 204, MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT));
}

/* POST /v1/schedules/{name}/pause and /resume: 200 with the schedule. A
 * resumed schedule starts at its next tick after now. */
static int set_paused(struct req *r, int pause)
{
  struct durin_schedule sc;
  struct durin_err err = { 0 };
  struct durin_cron *c = NULL;
  int64_t next = 0;
  int rc = 0;

  if (!find(r, 1, &sc))
    return 0;
  /* After its last tick too: a clock behind the serve that fired it must
   * not set a tick already fired again (the history would refuse it). */
  if (!pause &&
      (durin_cron_parse(sc.cron, sc.tz, &c, &err) ||
       durin_cron_next(c,
                       cli_sched_now() > sc.last_fire_ms ? cli_sched_now() :
                                                           sc.last_fire_ms,
                       &next)))
    rc = durin_err_set(&err, DURIN_ESTATE,
                       "schedule '%s' has no tick to resume at", sc.name);
  durin_cron_free(c);
  if (!rc)
    rc = durin_store_schedule_set_paused(r->store, sc.tenant, sc.name, pause,
                                         next, &err);
  if (!rc) {
    struct durin_schedule now_sc;

    srv_log(r->srv, "schedule '%s' of tenant '%s' %s by token '%s'", sc.name,
            sc.tenant, pause ? "paused" : "resumed", r->who.name);
    if (!(rc = durin_store_schedule_get(r->store, sc.tenant, sc.name, &now_sc,
                                        &err))) {
      reply_json(r, 200, cli_schedule_json(&now_sc, cli_sched_now()));
      durin_schedule_clear(&now_sc);
      durin_schedule_clear(&sc);
      return 0;
    }
  }
  durin_schedule_clear(&sc);
  return reply_store_error(r, rc, &err);
}

static int pause_schedule(struct req *r)
{
  return set_paused(r, 1);
}

static int resume_schedule(struct req *r)
{
  return set_paused(r, 0);
}

const struct route srv_schedule_routes[] = {
  { "GET", "/v1/schedules", ROLE_VIEWER, list_schedules },
  { "POST", "/v1/schedules", ROLE_OPERATOR, create_schedule },
  { "GET", "/v1/schedules/{}", ROLE_VIEWER, get_schedule },
  { "DELETE", "/v1/schedules/{}", ROLE_OPERATOR, delete_schedule },
  { "POST", "/v1/schedules/{}/pause", ROLE_OPERATOR, pause_schedule },
  { "POST", "/v1/schedules/{}/resume", ROLE_OPERATOR, resume_schedule },
  { NULL, NULL, ROLE_NONE, NULL },
};
