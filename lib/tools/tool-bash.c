/*
 * The bash tool: one shell command in the run's workspace. It says which
 * command and how its result reads; the worker runs the process on its
 * loop (lib/worker/uv-proc.c), so the tool has no exec of its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/tools.h"
#include "tools/builtin.h"

static int bash_command(const struct durin_tool_ctx *ctx, json_t *args,
                        const char **cmd, int64_t *timeout_ms)
{
  json_t *t = json_object_get(args, "timeout_s");

  *cmd = json_string_value(json_object_get(args, "command"));
  *timeout_ms = ctx->timeout_ms;
  if (t && json_integer_value(t) > 0 &&
      json_integer_value(t) * 1000 < ctx->timeout_ms)
    *timeout_ms = json_integer_value(t) * 1000;
  return 0;
}

/* What the model reads: how the command ended, then its output. */
static void bash_report(struct durin_tool_result *r, int64_t timeout)
{
  size_t n = strlen(r->output) + 128;
  char *text = malloc(n);

  if (r->stopped)
    snprintf(text, n,
             "stopped: the run was cancelled while this command ran; its "
             "process group was killed\n%s",
             r->output);
  else if (r->timed_out)
    snprintf(text, n, "timed out after %lld ms (process group killed)\n%s",
             (long long)timeout, r->output);
  else
    snprintf(text, n, "exit code %d\n%s", r->exit_code, r->output);
  free(r->output);
  r->output = text;
}

static const struct durin_tool_param bash_params[] = {
  { "command", DURIN_PARAM_STRING, 1, "the shell command to run" },
  { "timeout_s", DURIN_PARAM_INTEGER, 0,
    "seconds before the command is killed (capped by the run's limit)" },
  { NULL, 0, 0, NULL },
};

const struct durin_tool_def durin__tool_bash = {
  "bash",
  "Run a shell command in the workspace and get its exit code and output.",
  DURIN_EFFECT_UNSAFE,
  bash_params,
  NULL,
  bash_command,
  bash_report,
};
