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
    "                          [--cost USD] [--steps N]\n\n"
    "Explains what the spec's policy (and the server's, from FILE) would\n"
    "decide for one tool call, without running anything. JSON is\n"
    "{\"name\": TOOL, \"arguments\": {...}}. --cost and --steps say what\n"
    "the run has spent so far, for rules with \"when\".\n\n"
    "Prints the decision (allow, ask or deny), the rule that made it and\n"
    "where that rule is, and for bash the simple commands judged.\n"
    "Exit status: 0 allow, 1 ask, 2 deny, 64/65 bad input.\n";

int cmd_policy(int argc, char **argv, struct cli *cli)
{
  const char *spec_path = NULL, *call_text = NULL, *server = NULL;
  struct durin_policy *layers[2] = { NULL, NULL };
  struct durin_policy_state st = { 0, 0 };
  struct durin_policy_decision d;
  struct durin_err err = { 0 };
  struct durin_spec spec;
  json_t *call, *args;
  const char *tool;
  int i, code;

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
  durin_policy_decide((const struct durin_policy *const *)layers, 2,
                      spec.workspace, tool, args, &st, &d);
  printf("%s: rule '%s' (%s): %s\n", durin_policy_action_name(d.action), d.rule,
         d.origin, d.why);
  if (!strcmp(tool, "bash")) {
    char **cmds = durin_policy_commands(
        json_string_value(json_object_get(args, "command")));

    for (i = 0; cmds[i]; i++)
      printf("  judged: %s\n", cmds[i]);
    durin_policy_words_free(cmds);
  }
  durin_policy_free(layers[0]);
  durin_policy_free(layers[1]);
  durin_spec_clear(&spec);
  json_decref(call);
  return d.action == DURIN_POLICY_ALLOW ? 0 :
         d.action == DURIN_POLICY_ASK   ? 1 :
                                          2;
}
