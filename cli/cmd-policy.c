/*
 * durin policy check SPEC --call JSON: what the policy would decide for
 * one tool call, and why, without running anything.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "durin/policy.h"
#include "durin/tools.h"
#include "durin/util.h"

static const char usage_text[] =
    "usage: durin policy check SPEC --call JSON [--server FILE]\n"
    "                          [--cost USD] [--steps N] [--json]\n\n"
    "Explains what the spec's policy (and the server's, from FILE) would\n"
    "decide for one tool call, without running anything. JSON is\n"
    "{\"name\": TOOL, \"arguments\": {...}}. --cost and --steps say what\n"
    "the run has spent so far, for rules with \"when\".\n\n"
    "Prints the decision (allow, ask or deny), the rule that made it and\n"
    "where that rule is, and for bash the simple commands judged; with\n"
    "--json, one object with decision, rule, origin, why and judged. A\n"
    "tool the spec does not list is denied, as the run would refuse it.\n"
    "Exit status: 0 allow, 1 ask, 2 deny, 64/65 bad input.\n";

/*
 * The run only offers the model the spec's tools and answers any other
 * call with an error, so whatever a policy says of it, it never runs.
 */
static void not_in_spec(const struct durin_spec *spec, const char *tool,
                        struct durin_policy_decision *d)
{
  size_t off;
  int i;

  memset(d, 0, sizeof(*d));
  d->action = DURIN_POLICY_DENY;
  snprintf(d->origin, sizeof(d->origin), "spec");
  snprintf(d->rule, sizeof(d->rule), "tools");
  off = (size_t)snprintf(d->why, sizeof(d->why),
                         "'%.100s' is not one of the spec's tools (", tool);
  for (i = 0; i < spec->ntools && off < sizeof(d->why); i++)
    off += (size_t)snprintf(d->why + off, sizeof(d->why) - off, "%s%s",
                            i ? ", " : "", spec->tools[i].name);
  if (off < sizeof(d->why))
    snprintf(d->why + off, sizeof(d->why) - off, ")");
}

static void print_decision(const struct durin_policy_decision *d,
                           json_t *judged, int json)
{
  size_t i;
  json_t *v;

  if (json) {
    json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "decision",
                          durin_policy_action_name(d->action), "rule", d->rule,
                          "origin", d->origin, "why", d->why);
    char *s;

    if (judged)
      json_object_set(o, "judged", judged);
    s = json_dumps(o, JSON_COMPACT);
    printf("%s\n", s);
    free(s);
    json_decref(o);
    return;
  }
  printf("%s: rule '%s' (%s): %s\n", durin_policy_action_name(d->action),
         d->rule, d->origin, d->why);
  json_array_foreach(judged, i, v)
    printf("  judged: %s\n", json_string_value(v));
}

int cmd_policy(int argc, char **argv, struct cli *cli)
{
  const char *spec_path = NULL, *call_text = NULL, *server = NULL;
  struct durin_policy *layers[2] = { NULL, NULL };
  struct durin_policy_state st = { 0, 0 };
  struct durin_policy_decision d;
  struct durin_err err = { 0 };
  struct durin_spec spec;
  json_t *call, *args, *judged = NULL;
  const char *tool;
  int i, code, json = 0, listed;

  (void)cli;
  if (cli_wants_help(argc, argv) || argc < 2 || strcmp(argv[1], "check")) {
    fputs(usage_text, argc < 2 || cli_wants_help(argc, argv) ? stdout : stderr);
    return argc < 2 || cli_wants_help(argc, argv) ? EXIT_OK : EXIT_USAGE;
  }
  for (i = 2; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;

    if (!strcmp(argv[i], "--call") && v)
      call_text = argv[++i];
    else if (!strcmp(argv[i], "--server") && v)
      server = argv[++i];
    else if (!strcmp(argv[i], "--cost") && v)
      st.cost_usd = atof(argv[++i]);
    else if (!strcmp(argv[i], "--steps") && v)
      st.steps = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--json"))
      json = 1;
    else if (argv[i][0] != '-' && !spec_path)
      spec_path = argv[i];
    else
      return cli_bad_arg("policy check", argv[i], usage_text);
  }
  if (!spec_path || !call_text) {
    fputs(usage_text, stderr);
    return EXIT_USAGE;
  }
  call = json_loads(call_text, 0, NULL);
  tool = json_string_value(json_object_get(call, "name"));
  args = json_object_get(call, "arguments");
  if (!tool || (args && !json_is_object(args))) {
    cli_error("--call wants {\"name\": TOOL, \"arguments\": {...}}");
    json_decref(call);
    return EXIT_USAGE;
  }
  if ((code = cli_load_spec(spec_path, &spec))) {
    json_decref(call);
    return code;
  }
  if (durin_policy_parse(spec.policy, "spec", &layers[0], &err) ||
      (server && (code = cli_server_policy(server, &layers[1])))) {
    if (!server || !code)
      cli_error("%s", err.msg);
    durin_policy_free(layers[0]);
    durin_spec_clear(&spec);
    json_decref(call);
    return EXIT_SPEC;
  }
  if (!args)
    args = json_object(), json_object_set_new(call, "arguments", args);
  listed = durin_spec_tool(&spec, tool) != NULL;
  if (!listed)
    not_in_spec(&spec, tool, &d);
  else
    durin_policy_decide((const struct durin_policy *const *)layers, 2,
                        spec.workspace, tool, args, &st, &d);
  if (!strcmp(tool, "bash") && listed) {
    char **cmds = durin_policy_commands(
        json_string_value(json_object_get(args, "command")));

    judged = json_array();
    for (i = 0; cmds[i]; i++)
      json_array_append_new(judged, json_string(cmds[i]));
    durin_policy_words_free(cmds);
  }
  print_decision(&d, judged, json);
  json_decref(judged);
  durin_policy_free(layers[0]);
  durin_policy_free(layers[1]);
  durin_spec_clear(&spec);
  json_decref(call);
  return d.action == DURIN_POLICY_ALLOW ? 0 :
         d.action == DURIN_POLICY_ASK   ? 1 :
                                          2;
}
