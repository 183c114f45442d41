/*
 * The tool registry, the JSON schemas the model sees, and validation of the
 * arguments the model sends back. Validation errors are written for the
 * model: they say what was wrong and what is expected, so it can retry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/sandbox.h"
#include "durin/tools.h"
#include "durin/util.h"
#include "tools/builtin.h"

static const struct durin_tool_param plan_params[] = {
  { "plan", DURIN_PARAM_PLAN, 1,
    "the whole plan: a list of {\"step\": text, \"status\": "
    "\"pending\"|\"in_progress\"|\"done\"}" },
  { NULL, 0, 0, NULL },
};

static const struct durin_tool_param finish_params[] = {
  { "summary", DURIN_PARAM_STRING, 1, "what was done and why the goal is met" },
  { NULL, 0, 0, NULL },
};

static const struct durin_tool_param status_params[] = {
  { "section", DURIN_PARAM_STRING, 0,
    "only this part: budget, tools, failures, phase, evaluation or "
    "breakers (default: all)" },
  { NULL, 0, 0, NULL },
};

/* Tools implemented by the harness itself: no exec, no side effects. */
static const struct durin_tool_def update_plan_def = {
  "update_plan",
  "Replace the current plan. Keep it short; mark steps done as you go.",
  DURIN_EFFECT_PURE,
  plan_params,
  NULL,
};

static const struct durin_tool_def finish_def = {
  "finish",
  "Call when the goal is met. The acceptance checks then run; if they "
  "fail you get their output and continue.",
  DURIN_EFFECT_PURE,
  finish_params,
  NULL,
};

/* The agent reads its own run (harness.c answers; it writes nothing). */
static const struct durin_tool_def run_status_def = {
  "run_status",
  "Read this run's own state: budget used and left (steps, tokens, "
  "dollars, wall clock), time and tokens per tool, the last failures with "
  "their output, the phase, evaluation attempts left, loop breakers. "
  "Read-only; only this run.",
  DURIN_EFFECT_PURE,
  status_params,
  NULL,
};

#define MAX_EXTRA 32
static const struct durin_tool_def *extra[MAX_EXTRA];
static int nextra;

static const struct durin_tool_def *const builtins[] = {
  &durin__tool_bash,
  &durin__tool_read_file,
  &durin__tool_write_file,
  &durin__tool_edit_file,
  &durin__tool_list_files,
  &update_plan_def,
  &run_status_def,
  &finish_def,
  NULL,
};

const struct durin_tool_def *durin_tool_find(const char *name)
{
  int i;

  for (i = 0; builtins[i]; i++)
    if (!strcmp(builtins[i]->name, name))
      return builtins[i];
  for (i = 0; i < nextra; i++)
    if (!strcmp(extra[i]->name, name))
      return extra[i];
  return NULL;
}

const char *durin_tool_names(void)
{
  static char names[1024];
  int i;

  names[0] = '\0';
  for (i = 0; builtins[i]; i++) {
    strncat(names, i ? ", " : "", sizeof(names) - strlen(names) - 1);
    strncat(names, builtins[i]->name, sizeof(names) - strlen(names) - 1);
  }
  for (i = 0; i < nextra; i++) {
    strncat(names, ", ", sizeof(names) - strlen(names) - 1);
    strncat(names, extra[i]->name, sizeof(names) - strlen(names) - 1);
  }
  return names;
}

int durin_tool_register(const struct durin_tool_def *def)
{
  if (durin_tool_find(def->name))
    return DURIN_EEXIST;
  if (nextra == MAX_EXTRA)
    return DURIN_ETOOBIG;
  extra[nextra++] = def;
  return 0;
}

int durin_tool_contained(const struct durin_tool_def *def,
                         const struct durin_spec_sandbox *box, int sandboxed)
{
  if (!def)
    return 0;
  if (def->command)
    return sandboxed && box && durin_spec_sandbox_contained(box);
  return def->layered;
}

void durin_tool_result_clear(struct durin_tool_result *r)
{
  if (!r)
    return;
  free(r->output);
  json_decref(r->changes);
  json_decref(r->secrets_env);
  memset(r, 0, sizeof(*r));
}

static const char *type_name(enum durin_param_type t)
{
  switch (t) {
  case DURIN_PARAM_STRING:
    return "string";
  case DURIN_PARAM_INTEGER:
    return "integer";
  case DURIN_PARAM_BOOLEAN:
    return "boolean";
  case DURIN_PARAM_PLAN:
    return "array";
  default:
    return "string";
  }
}

json_t *durin_tool_schema(const struct durin_tool_def *def)
{
  json_t *props = json_object(), *req = json_array();
  const struct durin_tool_param *p;

  if (def->schema) {
    json_decref(props);
    json_decref(req);
    return json_incref(def->schema);
  }
  for (p = def->params; p->name; p++) {
    json_t *s = json_pack("{s:s,s:s}", "type", type_name(p->type),
                          "description", p->desc);

    if (p->type == DURIN_PARAM_PLAN)
      json_object_set_new(
          s, "items",
          json_pack("{s:s,s:{s:{s:s},s:{s:s,s:[sss]}},s:[ss],s:b}", "type",
                    "object", "properties", "step", "type", "string", "status",
                    "type", "string", "enum", "pending", "in_progress", "done",
                    "required", "step", "status", "additionalProperties", 0));
    json_object_set_new(props, p->name, s);
    if (p->required)
      json_array_append_new(req, json_string(p->name));
  }
  return json_pack("{s:s,s:o,s:o,s:b}", "type", "object", "properties", props,
                   "required", req, "additionalProperties", 0);
}

static int check_plan(json_t *v, struct durin_err *err)
{
  size_t i;
  json_t *it;

  if (json_array_size(v) > 50)
    return durin_err_set(err, DURIN_EINVAL,
                         "argument 'plan' has %zu steps; keep it to 50 or "
                         "fewer",
                         json_array_size(v));
  json_array_foreach(v, i, it) {
    json_t *step = json_object_get(it, "step");
    json_t *st = json_object_get(it, "status");
    const char *s = json_string_value(st);

    if (!json_is_object(it) || !json_is_string(step) || !s ||
        (strcmp(s, "pending") && strcmp(s, "in_progress") &&
         strcmp(s, "done")) ||
        json_object_size(it) != 2)
      return durin_err_set(err, DURIN_EINVAL,
                           "argument 'plan[%zu]' must be {\"step\": text, "
                           "\"status\": \"pending\"|\"in_progress\"|\"done\"}",
                           i);
    if (json_string_length(step) > 500)
      return durin_err_set(err, DURIN_EINVAL,
                           "argument 'plan[%zu].step' is longer than 500 "
                           "characters",
                           i);
  }
  return 0;
}

/*
 * The model's arguments are untrusted text. Size first (before parsing),
 * then JSON, then shape: every failure message names the argument and the
 * expected type, because the model reads it and tries again.
 */
int durin_tool_args_parse(const struct durin_tool_def *def, const char *text,
                          size_t max_bytes, json_t **out, struct durin_err *err)
{
  const struct durin_tool_param *p;
  json_error_t je;
  const char *key;
  json_t *args, *v;
  size_t len = text ? strlen(text) : 0;
  int r = 0;

  if (len > max_bytes)
    return durin_err_set(err, DURIN_EINVAL,
                         "arguments for '%s' are %zu bytes, over the limit of "
                         "%zu; split the work into smaller calls",
                         def->name, len, max_bytes);
  if (len == 0)
    text = "{}";
  args = json_loads(text, JSON_REJECT_DUPLICATES, &je);
  if (!args)
    return durin_err_set(err, DURIN_EINVAL,
                         "arguments for '%s' are not valid JSON (%s at "
                         "position %d); send one JSON object",
                         def->name, je.text, je.position);
  if (!json_is_object(args)) {
    r = durin_err_set(err, DURIN_EINVAL,
                      "arguments for '%s' must be a JSON object", def->name);
    goto out;
  }
  if (def->schema) {
    /* An MCP tool: its server validates against its own schema. */
    *out = args;
    return 0;
  }
  json_object_foreach(args, key, v) {
    for (p = def->params; p->name; p++)
      if (!strcmp(p->name, key))
        break;
    if (!p->name) {
      r = durin_err_set(err, DURIN_EINVAL, "tool '%s' has no argument '%s'",
                        def->name, key);
      goto out;
    }
  }
  for (p = def->params; p->name; p++) {
    int ok;

    v = json_object_get(args, p->name);
    if (!v || json_is_null(v)) {
      if (p->required) {
        r = durin_err_set(err, DURIN_EINVAL,
                          "tool '%s' needs argument '%s' (%s: %s)", def->name,
                          p->name, type_name(p->type), p->desc);
        goto out;
      }
      continue;
    }
    switch (p->type) {
    case DURIN_PARAM_STRING:
      ok = json_is_string(v);
      break;
    case DURIN_PARAM_INTEGER:
      ok = json_is_integer(v);
      break;
    case DURIN_PARAM_BOOLEAN:
      ok = json_is_boolean(v);
      break;
    case DURIN_PARAM_PLAN:
      ok = json_is_array(v);
      break;
    default:
      ok = 0;
      break;
    }
    if (!ok) {
      r = durin_err_set(err, DURIN_EINVAL,
                        "argument '%s' of tool '%s' must be a %s", p->name,
                        def->name, type_name(p->type));
      goto out;
    }
    if (p->type == DURIN_PARAM_PLAN && (r = check_plan(v, err)))
      goto out;
  }
  *out = args;
  args = NULL;
out:
  json_decref(args);
  return r;
}

/* Output is made valid UTF-8 here, once for every tool: the event log and
 * both wire formats are JSON text and would refuse raw bytes. */
void durin_tool_exec(const struct durin_tool_def *def,
                     const struct durin_tool_ctx *ctx, json_t *args,
                     struct durin_tool_result *res)
{
  int64_t t0 = durin_mono_ms();

  memset(res, 0, sizeof(*res));
  res->exit_code = -1;
  if (!def->exec) {
    /* The harness's own tools, and commands (the worker runs those). */
    res->output = strdup("this tool is handled by the runtime");
    return;
  }
  if (!def->command && ctx->box.spec && ctx->box.spec->template) {
    /* A template workspace is only a view: mount it for this call,
     * read-only when the call writes into a layer of its own. */
    struct durin_err err = { 0 };

    if (durin_workspace_mount(ctx->workspace, ctx->box.spec->template,
                              !ctx->box.layer, NULL, &err)) {
      res->output = strdup(err.msg);
      return;
    }
    def->exec(ctx, args, res);
    durin_workspace_unmount(ctx->workspace);
  } else {
    def->exec(ctx, args, res);
  }
  if (!res->output)
    res->output = strdup("");
  durin_utf8_sanitize(res->output, strlen(res->output));
  res->duration_ms = durin_mono_ms() - t0;
}
