/* Agent spec validation: every mistake is named, with what is expected. */
#include <stdio.h>

#include "durin/spec.h"
#include "durin/store.h"
#include "test.h"

static void expect_bad(const char *json, const char *needle)
{
  struct durin_spec s;
  struct durin_err err = { 0 };

  if (durin_spec_parse(json, "/tmp", &s, &err) != DURIN_ESPEC)
    fail_msg("accepted: %s", json);
  if (!strstr(err.msg, needle))
    fail_msg("'%s' not in '%s'", needle, err.msg);
}

#define MODEL "\"model\":{\"provider\":\"script\",\"turns\":[]}"

static void test_bad_specs(void **state)
{
  (void)state;
  expect_bad("{\"goal\": ", "not valid JSON");
  expect_bad("[]", "must be a JSON object");
  expect_bad("{\"workspace\":\"/tmp\"," MODEL "}", "'goal' is required");
  expect_bad("{\"goal\":\"g\"," MODEL "}", "'workspace' is required");
  expect_bad("{\"goal\":1,\"workspace\":\"/tmp\"," MODEL "}",
             "'goal' must be a string, not an integer");
  expect_bad("{\"goal\":\"g\",\"workspace\":\"/tmp\"," MODEL ",\"budgte\":{}}",
             "'budgte' is not known; did you mean 'budget'?");
  expect_bad("{\"goal\":\"g\",\"workspace\":\"/tmp\"," MODEL
             ",\"budget\":{\"stpes\":3}}",
             "'budget.stpes' is not known; did you mean 'budget.steps'?");
  expect_bad("{\"goal\":\"g\",\"workspace\":\"/tmp\"," MODEL
             ",\"budget\":{\"steps\":\"3\"}}",
             "'budget.steps' must be an integer >= 0, not a string");
  expect_bad("{\"goal\":\"g\",\"workspace\":\"/tmp\"," MODEL
             ",\"budget\":{\"steps\":-1}}",
             "'budget.steps' must be an integer >= 0, got -1");
  expect_bad("{\"goal\":\"g\",\"workspace\":\"/tmp\",\"model\":{\"provider\":"
             "\"anthropix\"}}",
             "'anthropix', which is not a known provider");
  expect_bad("{\"goal\":\"g\",\"workspace\":\"/tmp\",\"model\":{\"provider\":"
             "\"openai\"}}",
             "'model.name' is required");
  expect_bad("{\"goal\":\"g\",\"workspace\":\"/tmp\",\"model\":{\"provider\":"
             "\"script\",\"script\":\"/nonexistent.json\"}}",
             "cannot find");
  expect_bad("{\"goal\":\"g\",\"workspace\":\"/tmp\"}", "'model' is required");
  expect_bad("{\"goal\":\"g\",\"workspace\":\"/nonexistent\"," MODEL "}",
             "does not exist");
  expect_bad("{\"goal\":\"g\",\"workspace\":\"/tmp\"," MODEL
             ",\"tools\":[\"bash\",\"sudo\"]}",
             "unknown tool 'sudo'");
  expect_bad("{\"goal\":\"g\",\"workspace\":\"/tmp\"," MODEL
             ",\"tools\":[{\"name\":\"bash\",\"effect\":\"safe\"}]}",
             "'tools[0].effect' must be");
  expect_bad("{\"goal\":\"g\",\"workspace\":\"/tmp\"," MODEL
             ",\"checks\":[{\"name\":\"t\"}]}",
             "'checks[0].run' is required");
  expect_bad("{\"goal\":\"g\",\"workspace\":\"/tmp\",\"goal\":\"h\"," MODEL "}",
             "duplicate");
  expect_bad("{\"goal\":\"g\",\"workspace\":\"/tmp\",\"model\":{\"provider\":"
             "\"script\",\"turns\":[{\"txt\":\"x\"}]}}",
             "'txt' is not known");
  expect_bad("{\"goal\":\"g\",\"workspace\":\"/tmp\",\"model\":{\"provider\":"
             "\"openai\",\"name\":\"m\",\"api_key_secret\":\"my-key\"}}",
             "'model.api_key_secret': 'my-key' is not a secret name");
}

#define DELIVER_SPEC(x) \
 "{\"goal\":\"g\",\"workspace\":\"/tmp\"," MODEL "," x "}"

static void test_deliver(void **state)
{
  struct durin_spec s, s2;
  struct durin_err err = { 0 };
  char *dump;

  (void)state;
  expect_bad(DELIVER_SPEC("\"deliver\":{}"), "'deliver.remote' is required");
  expect_bad(DELIVER_SPEC("\"deliver\":{\"remote\":\"x/y\"}"),
             "'deliver.remote' is a git URL (https://, ssh://, file://) or "
             "an absolute path, not 'x/y'");
  expect_bad(DELIVER_SPEC("\"deliver\":{\"remote\":\"/r\",\"branch\":\"-x\"}"),
             "'deliver.branch': '-x' is not a branch name");
  expect_bad(
      DELIVER_SPEC("\"deliver\":{\"remote\":\"/r\",\"branch\":\"a.lock\"}"),
      "is not a branch name");
  expect_bad(DELIVER_SPEC("\"deliver\":{\"remote\":\"/r\",\"on\":[]}"),
             "'deliver.on' must be a non-empty array");
  expect_bad(
      DELIVER_SPEC("\"deliver\":{\"remote\":\"/r\",\"on\":[\"needs_human\"]}"),
      "deliver.on[0] is not a final state");
  expect_bad(DELIVER_SPEC("\"deliver\":{\"remote\":\"/r\"},\"git\":false"),
             "field 'deliver' pushes the run's git branch, and 'git' is "
             "false: drop one of them");
  expect_bad(DELIVER_SPEC("\"deliver\":{\"remote\":\"/r\",\"push\":1}"),
             "'deliver.push' is not known");
  assert_int_equal(durin_spec_parse(DELIVER_SPEC("\"deliver\":{\"remote\":"
                                                 "\"/srv/r.git\"}"),
                                    "/tmp", &s, &err),
                   0);
  assert_string_equal(s.deliver.remote, "/srv/r.git");
  assert_null(s.deliver.branch);
  assert_int_equal(s.deliver.on, 1u << DURIN_RUN_SUCCEEDED);
  durin_spec_clear(&s);
  assert_int_equal(
      durin_spec_parse(
          DELIVER_SPEC("\"deliver\":{\"remote\":\"https://h/r.git\","
                       "\"branch\":\"review/x\",\"on\":[\"failed\","
                       "\"succeeded\"]}"),
          "/tmp", &s, &err),
      0);
  dump = durin_spec_dump(&s);
  assert_int_equal(durin_spec_parse(dump, NULL, &s2, &err), 0);
  assert_string_equal(s2.deliver.branch, "review/x");
  assert_int_equal(s2.deliver.on,
                   (1u << DURIN_RUN_SUCCEEDED) | (1u << DURIN_RUN_FAILED));
  free(dump);
  durin_spec_clear(&s);
  durin_spec_clear(&s2);
}

static void test_good_spec_roundtrip(void **state)
{
  struct durin_spec s, t;
  struct durin_err err = { 0 };
  char *dump;

  (void)state;
  assert_int_equal(
      durin_spec_parse("{\"name\":\"n\",\"goal\":\"g\",\"workspace\":\"/tmp\","
                       "\"model\":{\"provider\":\"openai\",\"name\":\"gpt-4o\""
                       ",\"base_url\":\"http://127.0.0.1:1/v1\","
                       "\"api_key_secret\":\"OPENAI_KEY\"},"
                       "\"tools\":[\"bash\",{\"name\":\"edit_file\","
                       "\"effect\":\"idempotent\"}],"
                       "\"checks\":[{\"run\":\"make test\"}],"
                       "\"budget\":{\"steps\":7,\"dollars\":0.5}}",
                       NULL, &s, &err),
      0);
  assert_int_equal(s.ntools, 4); /* finish and run_status are always there */
  assert_string_equal(s.tools[2].name, "finish");
  assert_string_equal(s.tools[3].name, "run_status");
  assert_int_equal(s.breakers.repeat, 3); /* the defaults */
  assert_int_equal(s.breakers.failures, 8);
  assert_int_equal(s.breakers.window, 10);
  assert_int_equal(durin_spec_tool(&s, "edit_file")->effect,
                   DURIN_EFFECT_IDEMPOTENT);
  assert_int_equal(durin_spec_tool(&s, "bash")->effect, DURIN_EFFECT_UNSAFE);
  assert_string_equal(s.checks[0].name, "check-1");
  assert_string_equal(s.model.api_key_env, "OPENAI_API_KEY");
  dump = durin_spec_dump(&s);
  assert_int_equal(durin_spec_parse(dump, NULL, &t, &err), 0);
  assert_int_equal(t.budget.steps, 7);
  assert_true(t.budget.dollars == 0.5);
  assert_string_equal(t.model.base_url, "http://127.0.0.1:1/v1");
  assert_string_equal(t.model.api_key_secret, "OPENAI_KEY");
  assert_int_equal(durin_spec_tool(&t, "edit_file")->effect,
                   DURIN_EFFECT_IDEMPOTENT);
  assert_int_equal(t.ntools, 4); /* not added twice */
  assert_int_equal(t.breakers.window, 10);
  free(dump);
  assert_int_equal(durin_spec_set_model(&t, "openai:gpt-4.1-mini", &err), 0);
  assert_string_equal(t.model.name, "gpt-4.1-mini");
  assert_int_equal(durin_spec_set_model(&t, "script:x", &err), DURIN_ESPEC);
  durin_spec_clear(&s);
  durin_spec_clear(&t);
}

#define BREAKERS(x) \
 "{\"goal\":\"g\",\"workspace\":\"/tmp\"," MODEL ",\"breakers\":" x "}"

/* The loop and storm breakers: each field checked, 0 turns one off, and
 * they round trip through the stored spec. */
static void test_breakers(void **state)
{
  struct durin_spec s, t;
  struct durin_err err = { 0 };
  char *dump;

  (void)state;
  expect_bad(BREAKERS("3"), "'breakers' must be an object");
  expect_bad(BREAKERS("{\"repaet\":3}"),
             "'breakers.repaet' is not known; did you mean 'breakers.repeat'?");
  expect_bad(BREAKERS("{\"repeat\":-1}"),
             "'breakers.repeat' must be an integer >= 0, got -1");
  expect_bad(BREAKERS("{\"window\":\"10\"}"),
             "'breakers.window' must be an integer >= 0, not a string");
  expect_bad(BREAKERS("{\"window\":1000}"),
             "'breakers.window' must be at most 100");
  expect_bad(BREAKERS("{\"failures\":9,\"window\":5}"),
             "'breakers.failures' (9) must be at most 'breakers.window' (5)");
  expect_bad(BREAKERS("{\"window\":0}"), /* failures 8 by default */
             "'breakers.failures' (8) must be at most 'breakers.window' (0)");
  assert_int_equal(durin_spec_parse(BREAKERS("{\"repeat\":0,\"failures\":4,"
                                             "\"window\":6}"),
                                    "/tmp", &s, &err),
                   0);
  assert_int_equal(s.breakers.repeat, 0);
  assert_int_equal(s.breakers.failures, 4);
  assert_int_equal(s.breakers.window, 6);
  dump = durin_spec_dump(&s);
  assert_non_null(strstr(dump, "\"breakers\":{\"repeat\":0,\"failures\":4,"
                               "\"window\":6}"));
  assert_int_equal(durin_spec_parse(dump, NULL, &t, &err), 0);
  assert_int_equal(t.breakers.repeat, 0);
  assert_int_equal(t.breakers.failures, 4);
  assert_int_equal(t.breakers.window, 6);
  free(dump);
  durin_spec_clear(&s);
  durin_spec_clear(&t);
  assert_int_equal(durin_spec_parse(BREAKERS("{\"failures\":0,\"window\":0}"),
                                    "/tmp", &s, &err),
                   0);
  durin_spec_clear(&s);
}

#define NET                                                                \
 "\"sandbox\":{\"network\":\"proxy\",\"allow_hosts\":[\"api.github.com\"," \
 "\"*.example.com:8443\"]}"
#define GRANT(x) \
 "{\"goal\":\"g\",\"workspace\":\"/tmp\"," MODEL "," NET ",\"secrets\":[" x "]}"

/* Grants ("secrets"): each mistake named by its field; a good set round
 * trips through the stored spec. */
static void test_grants(void **state)
{
  struct durin_spec s, t;
  struct durin_err err = { 0 };
  char *dump;

  (void)state;
  expect_bad(GRANT("{\"secret\":\"T\"}"), "'secrets[0]' needs either \"host\"");
  expect_bad(GRANT("{\"secret\":\"T\",\"host\":\"api.github.com\"}"),
             "'secrets[0].header' is required");
  expect_bad(GRANT("{\"secret\":\"T\",\"host\":\"evil.com\",\"header\":\"A\"}"),
             "'secrets[0].host': 'evil.com' is not allowed by "
             "sandbox.allow_hosts");
  expect_bad(GRANT("{\"secret\":\"T\",\"host\":\"a.example.com\","
                   "\"header\":\"A\"}"),
             "is not allowed"); /* the wildcard is for port 8443 only */
  expect_bad(GRANT("{\"secret\":\"T\",\"host\":\"api.github.com:8443\","
                   "\"header\":\"A\"}"),
             "is not allowed"); /* "api.github.com" is 80 and 443 */
  expect_bad(GRANT("{\"secret\":\"t-x\",\"host\":\"api.github.com\","
                   "\"header\":\"A\"}"),
             "'secrets[0].secret'");
  expect_bad(GRANT("{\"secret\":\"T\",\"host\":\"api.github.com\","
                   "\"header\":\"Host\"}"),
             "'secrets[0].header' is 'Host'");
  expect_bad(GRANT("{\"secret\":\"T\",\"host\":\"api.github.com\","
                   "\"header\":\"A\",\"format\":\"Bearer\"}"),
             "'secrets[0].format' must hold \"{}\"");
  expect_bad(GRANT("{\"secret\":\"T\",\"env\":\"PATH\",\"tool\":\"bash\"}"),
             "'secrets[0].env' is 'PATH'");
  expect_bad(GRANT("{\"secret\":\"T\",\"env\":\"K\",\"tool\":\"read_file\"}"),
             "'secrets[0].tool' is 'read_file'");
  expect_bad(GRANT("{\"secret\":\"T\",\"env\":\"K\"}"),
             "'secrets[0].tool' is required");
  expect_bad(GRANT("{\"secret\":\"T\",\"env\":\"K\",\"tool\":\"bash\"},"
                   "{\"secret\":\"U\",\"env\":\"K\",\"tool\":\"bash\"}"),
             "'secrets[1]' grants variable 'K' again");
  expect_bad("{\"goal\":\"g\",\"workspace\":\"/tmp\"," MODEL
             ",\"secrets\":[{\"secret\":\"T\",\"host\":\"a.com\","
             "\"header\":\"A\"}]}",
             "'secrets[0].host' needs \"sandbox.network\"");
  assert_int_equal(
      durin_spec_parse(
          GRANT("{\"secret\":\"T\",\"host\":\"api.github.com\","
                "\"header\":\"Authorization\",\"format\":\"Bearer {}\"},"
                "{\"secret\":\"T\",\"host\":\"x.example.com:8443\","
                "\"header\":\"X-Key\"},"
                "{\"secret\":\"T\",\"host\":\"api.github.com:443\","
                "\"header\":\"X-Other\"},"
                "{\"secret\":\"U\",\"env\":\"K\",\"tool\":\"bash\"}"),
          NULL, &s, &err),
      0);
  dump = durin_spec_dump(&s);
  assert_int_equal(durin_spec_parse(dump, NULL, &t, &err), 0);
  assert_int_equal(t.ngrants, 4);
  assert_string_equal(t.grants[0].format, "Bearer {}");
  assert_string_equal(t.grants[1].format, "{}");
  assert_string_equal(t.grants[1].host, "x.example.com:8443");
  assert_string_equal(t.grants[3].env, "K");
  assert_string_equal(t.grants[3].tool, "bash");
  assert_null(t.grants[3].host);
  free(dump);
  durin_spec_clear(&s);
  durin_spec_clear(&t);
}

#define SPEC_WITH(mcp) \
 "{\"goal\":\"g\",\"workspace\":\"/tmp\"," MODEL ",\"mcp_servers\":" mcp "}"

static void test_mcp_servers(void **state)
{
  struct durin_spec s, t;
  struct durin_err err = { 0 };
  char *dump;

  (void)state;
  expect_bad(SPEC_WITH("[]"), "'mcp_servers' must be an object");
  expect_bad(SPEC_WITH("{\"A\":{\"command\":[\"x\"]}}"),
             "'A' is not a server name");
  expect_bad(SPEC_WITH("{\"a__b\":{\"command\":[\"x\"]}}"), "without '__'");
  expect_bad(SPEC_WITH("{\"a_\":{\"command\":[\"x\"]}}"),
             "not starting or ending with '_'");
  expect_bad(SPEC_WITH("{\"_a\":{\"command\":[\"x\"]}}"),
             "not starting or ending with '_'");
  expect_bad(SPEC_WITH("{\"a\":{\"url\":\"http://example.com/mcp\","
                       "\"headers\":{\"A\":{\"secret\":\"K\"}}}}"),
             "not to 'http://example.com/mcp' in clear");
  expect_bad(SPEC_WITH("{\"a\":{\"url\":\"http://127.0.0.1.evil.com/\","
                       "\"headers\":{\"A\":{\"secret\":\"K\"}}}}"),
             "in clear");
  expect_bad(SPEC_WITH("{\"a\":{\"url\":\"https://h/\",\"headers\":{"
                       "\"A\":\"x\\r\\nB: y\"}}}"),
             "holds a line break");
  expect_bad(SPEC_WITH("{\"a\":{}}"), "needs exactly one of");
  expect_bad(SPEC_WITH("{\"a\":{\"command\":[]}}"),
             "'mcp_servers.a.command' must be a non-empty array");
  expect_bad(SPEC_WITH("{\"a\":{\"command\":[\"x\"],\"comand\":1}}"),
             "did you mean 'mcp_servers.a.command'");
  expect_bad(SPEC_WITH("{\"a\":{\"url\":\"ftp://x\"}}"),
             "not an http:// or https:// URL");
  expect_bad(SPEC_WITH("{\"a\":{\"url\":\"http://localhost:9/\",\"headers\":{"
                       "\"A\":{\"secret\":\"K\",\"format\":\"Bearer\"}}}}"),
             "must hold '{}'");
  expect_bad(SPEC_WITH("{\"a\":{\"command\":[\"x\"],\"headers\":{}}}"),
             "for an HTTP server");
  expect_bad(SPEC_WITH("{\"a\":{\"command\":[\"x\"],\"tools\":{\"t\":{"
                       "\"effect\":\"maybe\"}}}}"),
             "'mcp_servers.a.tools.t.effect': 'maybe'");
  expect_bad(SPEC_WITH("{\"a\":{\"command\":[\"x\"],\"scope\":\"host\"}}"),
             "'mcp_servers.a.scope' must be");
  expect_bad(SPEC_WITH("{\"a\":{\"command\":[\"x\"],\"scope\":\"worker\"}}"),
             "give only");
  assert_int_equal(
      durin_spec_parse(
          SPEC_WITH("{\"fs\":{\"command\":[\"node\",\"s.js\",\".\"],"
                    "\"env\":{\"K\":\"v\"},\"timeout_s\":5,\"tools\":{"
                    "\"w\":{\"effect\":\"unsafe\"}}},"
                    "\"web\":{\"url\":\"https://h/mcp\",\"headers\":{"
                    "\"Authorization\":{\"secret\":\"TOK\",\"format\":"
                    "\"Bearer {}\"},\"X\":\"y\"}},"
                    "\"shared\":{\"scope\":\"worker\"}}"),
          NULL, &s, &err),
      0);
  dump = durin_spec_dump(&s);
  assert_int_equal(durin_spec_parse(dump, NULL, &t, &err), 0);
  free(dump);
  assert_int_equal(t.nmcp, 3);
  assert_string_equal(t.mcp[0].name, "fs");
  assert_int_equal(t.mcp[0].argc, 3);
  assert_string_equal(t.mcp[0].argv[2], ".");
  assert_null(t.mcp[0].argv[3]);
  assert_string_equal(t.mcp[0].env[0], "K=v");
  assert_int_equal(t.mcp[0].timeout_ms, 5000);
  assert_int_equal(t.mcp[0].tools[0].effect, DURIN_EFFECT_UNSAFE);
  assert_string_equal(t.mcp[1].url, "https://h/mcp");
  assert_string_equal(t.mcp[1].headers[0].secret, "TOK");
  assert_string_equal(t.mcp[1].headers[0].format, "Bearer {}");
  assert_string_equal(t.mcp[1].headers[1].value, "y");
  assert_int_equal(t.mcp[2].scope_worker, 1);
  assert_null(t.mcp[2].argv);
  durin_spec_clear(&s);
  durin_spec_clear(&t);
}

#define GIT(x) "{\"goal\":\"g\",\"workspace\":\"/tmp\"," MODEL ",\"git\":" x "}"

/* "git": a boolean, "auto" or an object; the default progress files; the
 * pinned form round trips; mistakes are named by their field. */
static void test_git(void **state)
{
  struct durin_spec s, t;
  struct durin_err err = { 0 };
  char *dump;

  (void)state;
  expect_bad(GIT("\"yes\""), "field 'git' is true");
  expect_bad(GIT("{\"enabled\":1}"), "field 'git.enabled' is true");
  expect_bad(GIT("{\"enable\":true}"), "did you mean 'git.enabled'");
  expect_bad(GIT("{\"progress_files\":[\"../x\"]}"),
             "'git.progress_files[0]' must be a path");
  expect_bad(GIT("{\"progress_files\":[\"/etc/passwd\"]}"),
             "'git.progress_files[0]'");
  expect_bad(GIT("{\"progress_files\":[\"a/./b\"]}"),
             "'git.progress_files[0]'");
  expect_bad(GIT("{\"progress_files\":\"PROGRESS.md\"}"),
             "'git.progress_files' must be an array");
  expect_bad(GIT("{\"log_lines\":51}"), "'git.log_lines' must be at most 50");
  expect_bad("{\"goal\":\"g\",\"workspace\":\"/tmp\"," MODEL
             ",\"git\":true,\"sandbox\":{\"template\":\"/tmp\"}}",
             "'sandbox.template'");

  assert_int_equal(durin_spec_parse(GIT("\"auto\""), NULL, &s, &err), 0);
  assert_int_equal(s.git.mode, DURIN_SPEC_GIT_AUTO);
  assert_int_equal(s.git.nprogress, 2);
  assert_string_equal(s.git.progress_files[0], "PROGRESS.md");
  assert_string_equal(s.git.progress_files[1], "feature-list.json");
  assert_int_equal(s.git.log_lines, 8);
  durin_spec_clear(&s);

  assert_int_equal(durin_spec_parse(GIT("{\"enabled\":true,\"progress_files\":"
                                        "[\"docs/notes.md\"],\"log_lines\":0}"),
                                    NULL, &s, &err),
                   0);
  dump = durin_spec_dump(&s);
  assert_non_null(strstr(dump, "\"git\":{\"enabled\":true,"));
  assert_int_equal(durin_spec_parse(dump, NULL, &t, &err), 0);
  assert_int_equal(t.git.mode, DURIN_SPEC_GIT_ON);
  assert_int_equal(t.git.nprogress, 1);
  assert_string_equal(t.git.progress_files[0], "docs/notes.md");
  assert_int_equal(t.git.log_lines, 0);
  free(dump);
  durin_spec_clear(&s);
  durin_spec_clear(&t);
  assert_int_equal(durin_spec_parse(GIT("false"), NULL, &s, &err), 0);
  assert_int_equal(s.git.mode, DURIN_SPEC_GIT_OFF);
  durin_spec_clear(&s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_bad_specs),
    cmocka_unit_test(test_good_spec_roundtrip),
    cmocka_unit_test(test_grants),
    cmocka_unit_test(test_mcp_servers),
    cmocka_unit_test(test_git),
    cmocka_unit_test(test_deliver),
    cmocka_unit_test(test_breakers),
  };

  return cmocka_run_group_tests_name("spec", tests, NULL, NULL);
}
