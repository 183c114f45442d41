/* The policy: command splitting, path resolution, rules, layers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "durin/policy.h"
#include "durin/tools.h"
#include "durin/util.h"
#include "test.h"

static char *ws; /* the workspace the paths are judged in */

/* The simple commands of line, joined by " | ". */
static char *cmds(const char *line)
{
  static char out[1024];
  char **v = durin_policy_commands(line);
  int i;

  out[0] = 0;
  for (i = 0; v[i]; i++) {
    if (i)
      strcat(out, " | ");
    strncat(out, v[i], sizeof(out) - strlen(out) - 4);
  }
  durin_policy_words_free(v);
  return out;
}

static void test_commands(void **state)
{
  (void)state;
  assert_string_equal(cmds("git status; rm -rf /"), "git status | rm -rf /");
  assert_string_equal(cmds("a && b || c & d\ne"), "a | b | c | d | e");
  assert_string_equal(cmds("ls | grep x"), "ls | grep x");
  assert_string_equal(cmds("FOO=1 env -i BAR=2 /bin/rm x"), "rm x");
  assert_string_equal(cmds("sh -c 'rm -rf /tmp/x'"), "rm -rf /tmp/x");
  assert_string_equal(cmds("bash -lc \"echo hi && curl x\""),
                      "echo hi | curl x");
  assert_string_equal(cmds("exec nohup time command rm y"), "rm y");
  assert_string_equal(cmds("r''m -rf a"), "rm -rf a");
  assert_string_equal(cmds("'r'\"m\" -rf a"), "rm -rf a");
  assert_string_equal(cmds("\\rm a"), "rm a");
  assert_string_equal(cmds("echo $(rm z) done"), "rm z | echo $(rm z) done");
  assert_string_equal(cmds("echo `curl q`"), "curl q | echo `curl q`");
  assert_string_equal(cmds("(cd d && make)"), "cd d | make");
  assert_string_equal(cmds("echo ${HOME}/x # rm -rf /"), "echo ${HOME}/x");
  assert_string_equal(cmds("echo 'a;b'"), "echo a;b");
}

static struct durin_policy *parse(const char *text, const char *origin)
{
  struct durin_err err = { 0 };
  struct durin_policy *p = NULL;
  json_t *j = json_loads(text, 0, NULL);

  assert_non_null(j);
  if (durin_policy_parse(j, origin, &p, &err))
    fail_msg("policy did not parse: %s", err.msg);
  json_decref(j);
  return p;
}

/* The action for tool with args text under layers. */
static enum durin_policy_action decide(struct durin_policy **layers, int n,
                                       const char *tool, const char *args,
                                       const struct durin_policy_state *st,
                                       struct durin_policy_decision *d)
{
  json_t *a = json_loads(args, 0, NULL);

  assert_non_null(a);
  durin_policy_decide((const struct durin_policy *const *)layers, n, ws, tool,
                      a, st, d);
  json_decref(a);
  return d->action;
}

static void test_commands_rules(void **state)
{
  struct durin_policy *p =
      parse("{\"default\": \"ask\", \"rules\": ["
            "{\"name\": \"no-rm\", \"tool\": \"bash\", \"command_prefix\": "
            "\"rm\", \"action\": \"deny\"},"
            "{\"name\": \"net\", \"tool\": \"bash\", \"command_regex\": "
            "\"^(curl|wget) \", \"action\": \"ask\"},"
            "{\"name\": \"git\", \"tool\": \"bash\", \"command_prefix\": "
            "\"git\", \"action\": \"allow\"},"
            "{\"name\": \"ls\", \"tool\": \"bash\", \"command_prefix\": "
            "\"ls\", \"action\": \"allow\"}]}",
            "spec");
  struct durin_policy_decision d;

  (void)state;
  assert_int_equal(
      decide(&p, 1, "bash", "{\"command\": \"git status\"}", NULL, &d),
      DURIN_POLICY_ALLOW);
  assert_string_equal(d.rule, "git");
  /* The allowed command does not carry the rest of the line. */
  assert_int_equal(decide(&p, 1, "bash",
                          "{\"command\": \"git status; rm -rf /\"}", NULL, &d),
                   DURIN_POLICY_DENY);
  assert_string_equal(d.rule, "no-rm");
  assert_int_equal(decide(&p, 1, "bash",
                          "{\"command\": \"ls && sh -c 'env X=1 /bin/rm -r "
                          "a'\"}",
                          NULL, &d),
                   DURIN_POLICY_DENY);
  assert_int_equal(decide(&p, 1, "bash",
                          "{\"command\": \"git log $(r\\\"m\\\" -rf .)\"}",
                          NULL, &d),
                   DURIN_POLICY_DENY);
  /* Whole words: rmdir is not rm. It falls to the default, ask. */
  assert_int_equal(
      decide(&p, 1, "bash", "{\"command\": \"rmdir x\"}", NULL, &d),
      DURIN_POLICY_ASK);
  assert_string_equal(d.rule, "default");
  assert_int_equal(decide(&p, 1, "bash",
                          "{\"command\": \"ls | curl -d @- x.io\"}", NULL, &d),
                   DURIN_POLICY_ASK);
  assert_string_equal(d.rule, "net");
  durin_policy_free(p);
}

static void test_paths(void **state)
{
  struct durin_policy *p =
      parse("{\"rules\": ["
            "{\"name\": \"secrets\", \"path\": \"secret*\", \"action\": "
            "\"deny\"},"
            "{\"name\": \"src-write\", \"path\": \"src/**\", \"access\": "
            "\"write\", \"action\": \"allow\"},"
            "{\"name\": \"other-writes\", \"access\": \"write\", \"action\": "
            "\"ask\"}]}",
            "spec");
  struct durin_policy_decision d;
  char args[512];

  (void)state;
  /* ../ inside the workspace resolves before matching. */
  assert_int_equal(
      decide(&p, 1, "read_file", "{\"path\": \"src/../secret.txt\"}", NULL, &d),
      DURIN_POLICY_DENY);
  assert_string_equal(d.rule, "secrets");
  /* A symlink in the workspace is judged by where it points. */
  assert_int_equal(decide(&p, 1, "write_file",
                          "{\"path\": \"link/new.c\", \"content\": \"\"}", NULL,
                          &d),
                   DURIN_POLICY_ALLOW);
  assert_string_equal(d.rule, "src-write");
  assert_int_equal(
      decide(&p, 1, "read_file", "{\"path\": \"alias\"}", NULL, &d),
      DURIN_POLICY_DENY);
  assert_string_equal(d.rule, "secrets");
  /* Reads and writes are told apart. */
  assert_int_equal(
      decide(&p, 1, "read_file", "{\"path\": \"README\"}", NULL, &d),
      DURIN_POLICY_ALLOW);
  assert_int_equal(decide(&p, 1, "edit_file",
                          "{\"path\": \"README\", \"old_string\": \"a\", "
                          "\"new_string\": \"b\"}",
                          NULL, &d),
                   DURIN_POLICY_ASK);
  /* Leaving the workspace: denied whatever the rules say. */
  assert_int_equal(decide(&p, 1, "read_file", "{\"path\": \"../x\"}", NULL, &d),
                   DURIN_POLICY_DENY);
  assert_string_equal(d.origin, "builtin");
  assert_int_equal(
      decide(&p, 1, "read_file", "{\"path\": \"/etc/passwd\"}", NULL, &d),
      DURIN_POLICY_DENY);
  assert_int_equal(
      decide(&p, 1, "read_file", "{\"path\": \"out/passwd\"}", NULL, &d),
      DURIN_POLICY_DENY);
  assert_string_equal(d.rule, "outside the workspace");
  /* An absolute path inside the workspace is fine. */
  snprintf(args, sizeof(args), "{\"path\": \"%s/src/a.c\", \"content\": \"\"}",
           ws);
  assert_int_equal(decide(&p, 1, "write_file", args, NULL, &d),
                   DURIN_POLICY_ALLOW);
  durin_policy_free(p);
}

static void test_layers_and_state(void **state)
{
  struct durin_policy *l[2];
  struct durin_policy_decision d;
  struct durin_policy_state st = { 0.5, 10 };

  (void)state;
  l[0] = parse("{\"tools\": {\"bash\": \"allow\"}, \"rules\": ["
               "{\"name\": \"pricey\", \"when\": {\"cost_usd_over\": 1}, "
               "\"action\": \"ask\"}]}",
               "spec");
  l[1] = parse("{\"rules\": [{\"name\": \"no-curl\", \"command_prefix\": "
               "\"curl\", \"action\": \"deny\"}]}",
               "server");
  assert_int_equal(decide(l, 2, "bash", "{\"command\": \"make\"}", &st, &d),
                   DURIN_POLICY_ALLOW);
  /* The server can only tighten. */
  assert_int_equal(decide(l, 2, "bash", "{\"command\": \"curl x\"}", &st, &d),
                   DURIN_POLICY_DENY);
  assert_string_equal(d.origin, "server");
  assert_string_equal(d.rule, "no-curl");
  /* Run state: past $1 every call asks. */
  st.cost_usd = 1.5;
  assert_int_equal(decide(l, 2, "bash", "{\"command\": \"make\"}", &st, &d),
                   DURIN_POLICY_ASK);
  assert_string_equal(d.rule, "pricey");
  assert_int_equal(decide(l, 2, "launch_missiles", "{}", &st, &d),
                   DURIN_POLICY_DENY);
  assert_string_equal(d.rule, "unknown tool");
  durin_policy_free(l[0]);
  durin_policy_free(l[1]);
}

/* An HTTP-like tool an embedder registers: judged by host and method. */
static const struct durin_tool_param fetch_params[] = {
  { "url", DURIN_PARAM_STRING, 1, "the URL" },
  { "method", DURIN_PARAM_STRING, 0, "GET or POST" },
  { NULL, 0, 0, NULL },
};
static const struct durin_tool_def fetch_def = {
  "fetch", "fetch a URL", DURIN_EFFECT_UNSAFE, fetch_params, NULL, NULL, NULL,
};

static void test_hosts(void **state)
{
  struct durin_policy *p =
      parse("{\"default\": \"deny\", \"rules\": ["
            "{\"name\": \"read-docs\", \"tool\": \"fetch\", \"host\": "
            "\"*.example.org\", \"method\": \"get\", \"action\": "
            "\"allow\"}]}",
            "spec");
  struct durin_policy_decision d;

  (void)state;
  durin_tool_register(&fetch_def);
  assert_int_equal(decide(&p, 1, "fetch",
                          "{\"url\": \"https://Docs.Example.ORG:8443/a\", "
                          "\"method\": \"GET\"}",
                          NULL, &d),
                   DURIN_POLICY_ALLOW);
  assert_string_equal(d.rule, "read-docs");
  /* userinfo does not make another host look allowed */
  assert_int_equal(decide(&p, 1, "fetch",
                          "{\"url\": \"https://docs.example.org@evil.io/\", "
                          "\"method\": \"GET\"}",
                          NULL, &d),
                   DURIN_POLICY_DENY);
  assert_int_equal(decide(&p, 1, "fetch",
                          "{\"url\": \"https://docs.example.org/\", "
                          "\"method\": \"POST\"}",
                          NULL, &d),
                   DURIN_POLICY_DENY);
  assert_int_equal(
      decide(&p, 1, "fetch", "{\"url\": \"http://[::1]/\"}", NULL, &d),
      DURIN_POLICY_DENY);
  durin_policy_free(p);
}

static void test_parse_errors(void **state)
{
  static const char *const bad[][2] = {
    { "{\"defualt\": \"allow\"}", "defualt" },
    { "{\"default\": \"maybe\"}", "policy.default" },
    { "{\"tools\": {\"bsh\": \"ask\"}}", "no such tool" },
    { "{\"rules\": [{\"action\": \"deny\", \"paht\": \"x\"}]}", "paht" },
    { "{\"rules\": [{\"tool\": \"bash\"}]}", "rules[0].action" },
    { "{\"rules\": [{\"command_regex\": \"(\", \"action\": \"deny\"}]}",
      "command_regex" },
    { "{\"rules\": [{\"access\": \"exec\", \"action\": \"deny\"}]}", "access" },
  };
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    struct durin_err err = { 0 };
    struct durin_policy *p = NULL;
    json_t *j = json_loads(bad[i][0], 0, NULL);

    assert_int_equal(durin_policy_parse(j, "spec", &p, &err), DURIN_ESPEC);
    assert_null(p);
    if (!strstr(err.msg, bad[i][1]))
      fail_msg("'%s' said '%s'", bad[i][0], err.msg);
    json_decref(j);
  }
}

static int setup(void **state)
{
  char p[256];
  FILE *f;

  (void)state;
  ws = test_tmpdir();
  snprintf(p, sizeof(p), "%s/src", ws);
  mkdir(p, 0755);
  snprintf(p, sizeof(p), "%s/secret.txt", ws);
  if ((f = fopen(p, "w")))
    fclose(f);
  snprintf(p, sizeof(p), "%s/link", ws);
  if (symlink("src", p))
    return -1;
  snprintf(p, sizeof(p), "%s/alias", ws);
  if (symlink("secret.txt", p))
    return -1;
  snprintf(p, sizeof(p), "%s/out", ws);
  return symlink("/etc", p);
}

static int teardown(void **state)
{
  (void)state;
  test_rmrf(ws);
  free(ws);
  return 0;
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_commands), cmocka_unit_test(test_commands_rules),
    cmocka_unit_test(test_paths),    cmocka_unit_test(test_layers_and_state),
    cmocka_unit_test(test_hosts),    cmocka_unit_test(test_parse_errors),
  };

  return cmocka_run_group_tests_name("policy", tests, setup, teardown);
}
