/*
 * The server's spec policy: every rule both ways, a tenant narrowing the
 * server's rules and refused at load when it would widen them, ceilings
 * filled in, and the file's mistakes named.
 */
#include <stdio.h>
#include <sys/stat.h>

#include "durin/spec.h"
#include "server/specpolicy.h"
#include "test.h"

/* The test's directory: $T in the JSON below stands for it. It holds
 * caches/{a,b}, caches2, other, templates/t1, elsewhere/t2 and the
 * symlinks caches/out -> other and linkroot -> caches. */
static char *T;

/* tmpl with every "$T" replaced by the test's directory; free() it. */
static char *subst(const char *tmpl)
{
  struct durin_buf b;
  const char *p;

  durin_buf_init(&b, 1 << 20);
  for (p = tmpl; *p; p++) {
    if (p[0] == '$' && p[1] == 'T') {
      assert_int_equal(durin_buf_adds(&b, T), 0);
      p++;
    } else {
      assert_int_equal(durin_buf_add(&b, p, 1), 0);
    }
  }
  return durin_buf_detach(&b, NULL);
}

static int load(const char *tmpl, struct spec_policy **out,
                struct durin_err *err)
{
  char path[4200], *text = subst(tmpl);
  FILE *f;
  int r;

  snprintf(path, sizeof(path), "%s/policy.json", T);
  f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  free(text);
  r = spec_policy_load(path, out, err);
  unlink(path);
  return r;
}

static struct spec_policy *load_ok(const char *tmpl)
{
  struct spec_policy *p = NULL;
  struct durin_err err = { 0 };

  if (load(tmpl, &p, &err))
    fail_msg("policy refused: %s\n%s", err.msg, tmpl);
  assert_non_null(p);
  return p;
}

static void load_bad(const char *tmpl, const char *needle)
{
  struct spec_policy *p = NULL;
  struct durin_err err = { 0 };
  char *want = subst(needle);

  if (!load(tmpl, &p, &err))
    fail_msg("policy accepted: %s", tmpl);
  assert_null(p);
  if (!strstr(err.msg, want))
    fail_msg("'%s' not in '%s'", want, err.msg);
  free(want);
}

#define MODEL_SCRIPT "\"model\":{\"provider\":\"script\",\"turns\":[]}"

/* A spec around the given top-level fields (JSON members, $T expanded). */
static void spec_parse(const char *extra, struct durin_spec *s)
{
  struct durin_err err = { 0 };
  char *tail = subst(extra), *json;
  size_t n = strlen(tail) + 256;

  json = malloc(n);
  snprintf(json, n, "{\"goal\":\"g\",\"workspace\":\"/tmp\",%s%s%s}",
           strstr(tail, "\"model\"") ? "" : MODEL_SCRIPT,
           *tail && !strstr(tail, "\"model\"") ? "," : "", tail);
  if (durin_spec_parse(json, NULL, s, &err))
    fail_msg("spec refused: %s\n%s", err.msg, json);
  free(json);
  free(tail);
}

static void expect_ok(const struct spec_policy *p, const char *tenant,
                      const char *extra)
{
  struct durin_spec s;
  struct durin_err err = { 0 };
  const char *field = NULL;

  spec_parse(extra, &s);
  if (spec_policy_check(p, tenant, &s, &field, &err))
    fail_msg("refused (%s): %s\n%s", field, err.msg, extra);
  durin_spec_clear(&s);
}

/* Judges s (which the caller clears) expecting a refusal of field. */
static void expect_refused_spec(const struct spec_policy *p, const char *tenant,
                                struct durin_spec *s, const char *want_field,
                                const char *needle)
{
  struct durin_err err = { 0 };
  const char *field = NULL;
  char *want = subst(needle);

  if (spec_policy_check(p, tenant, s, &field, &err) != DURIN_EACCES)
    fail_msg("allowed: field %s", want_field);
  assert_non_null(field);
  assert_string_equal(field, want_field);
  if (!strstr(err.msg, want))
    fail_msg("'%s' not in '%s'", want, err.msg);
  free(want);
}

static void expect_refused(const struct spec_policy *p, const char *tenant,
                           const char *extra, const char *want_field,
                           const char *needle)
{
  struct durin_spec s;

  spec_parse(extra, &s);
  expect_refused_spec(p, tenant, &s, want_field, needle);
  durin_spec_clear(&s);
}

static void mkdir_in(const char *rel)
{
  char path[4200];

  snprintf(path, sizeof(path), "%s/%s", T, rel);
  assert_int_equal(durin_mkdirs(path, NULL), 0);
}

static void symlink_in(const char *target, const char *rel)
{
  char a[4200], b[4200];

  snprintf(a, sizeof(a), "%s/%s", T, target);
  snprintf(b, sizeof(b), "%s/%s", T, rel);
  assert_int_equal(symlink(a, b), 0);
}

static int setup(void **state)
{
  char *dir = test_tmpdir(), *real = realpath(dir, NULL);

  (void)state;
  /* The spec parser resolves paths: the roots must be real ones too. */
  assert_non_null(real);
  free(dir);
  T = real;
  mkdir_in("caches/a");
  mkdir_in("caches/b");
  mkdir_in("caches2");
  mkdir_in("other");
  mkdir_in("templates/t1");
  mkdir_in("elsewhere/t2");
  symlink_in("other", "caches/out");
  symlink_in("caches", "linkroot");
  return 0;
}

static int teardown(void **state)
{
  (void)state;
  test_rmrf(T);
  free(T);
  return 0;
}

static void test_default_policy(void **state)
{
  struct spec_policy *p = spec_policy_default();
  struct durin_spec s;
  struct durin_err err = { 0 };
  const char *field = NULL;

  (void)state;
  assert_non_null(p);
  expect_ok(p, NULL, "");
  expect_refused(p, NULL, "\"sandbox\":{\"ro\":[\"$T/caches/a\"]}",
                 "sandbox.ro[0]", "this server allows no binds");
  expect_refused(p, "acme", "\"sandbox\":{\"rw\":[\"$T/caches/a\"]}",
                 "sandbox.rw[0]", "bind_roots is empty");
  expect_refused(p, NULL,
                 "\"sandbox\":{\"network\":\"proxy\",\"allow_hosts\":"
                 "[\"api.github.com\"]}",
                 "sandbox.allow_hosts[0]", "allows no network");
  /* A proxy with nothing on its list reaches nothing. */
  expect_ok(p, NULL, "\"sandbox\":{\"network\":\"proxy\"}");
  expect_refused(p, NULL, "\"sandbox\":{\"template\":\"$T/templates/t1\"}",
                 "sandbox.template", "allows no templates");
  /* Any model host; no ceilings, so unset budgets stay unlimited. */
  spec_parse("\"model\":{\"provider\":\"openai\",\"name\":\"m\","
             "\"base_url\":\"http://10.0.0.1/v1\"}",
             &s);
  assert_int_equal(spec_policy_check(p, NULL, &s, &field, &err), 0);
  assert_int_equal(s.budget.steps, 100); /* the spec's own default */
  assert_true(s.budget.dollars == 0);
  assert_int_equal(s.budget.wall_clock_ms, 0);
  durin_spec_clear(&s);
  spec_policy_free(p);
  spec_policy_free(NULL);
}

static void test_bind_roots(void **state)
{
  struct spec_policy *p =
      load_ok("{\"bind_roots\":[\"$T/caches/\", \"$T/./templates//t1\"]}");
  struct durin_spec s;

  (void)state;
  expect_ok(p, NULL,
            "\"sandbox\":{\"ro\":[\"$T/caches/a\",\"$T/templates/t1\"],"
            "\"rw\":[\"$T/caches\",\"$T/caches/b\"]}");
  expect_refused(p, NULL,
                 "\"sandbox\":{\"ro\":[\"$T/caches/a\"],\"rw\":"
                 "[\"$T/caches/b\",\"$T/other\"]}",
                 "sandbox.rw[1]",
                 "'$T/other' is not under the bind roots this server "
                 "allows (bind_roots: $T/caches, $T/templates/t1)");
  /* A name that merely starts like a root is not under it. */
  expect_refused(p, NULL, "\"sandbox\":{\"ro\":[\"$T/caches2\"]}",
                 "sandbox.ro[0]", "not under the bind roots");
  /* Parsed, a symlink inside a root is its target: refused. */
  expect_refused(p, NULL, "\"sandbox\":{\"ro\":[\"$T/caches/out\"]}",
                 "sandbox.ro[0]", "'$T/other'");
  /* A spec that did not come through the parser is judged where its
   * paths lead, and a ".." or a relative path is refused outright. */
  spec_parse("\"sandbox\":{\"ro\":[\"$T/caches/a\"]}", &s);
  free(s.sandbox.ro[0]);
  s.sandbox.ro[0] = subst("$T/caches/out");
  expect_refused_spec(p, NULL, &s, "sandbox.ro[0]", "not under");
  free(s.sandbox.ro[0]);
  s.sandbox.ro[0] = subst("$T/caches/../other");
  expect_refused_spec(p, NULL, &s, "sandbox.ro[0]", "without '..'");
  free(s.sandbox.ro[0]);
  s.sandbox.ro[0] = strdup("caches/a");
  expect_refused_spec(p, NULL, &s, "sandbox.ro[0]", "absolute path");
  free(s.sandbox.ro[0]);
  s.sandbox.ro[0] = subst("$T/caches//a/.");
  assert_int_equal(spec_policy_check(p, NULL, &s, NULL, NULL), 0);
  durin_spec_clear(&s);
  spec_policy_free(p);
}

static void test_allow_hosts(void **state)
{
  struct spec_policy *p = load_ok(
      "{\"allow_hosts\":[\"api.github.com\",\"*.pypi.org\",\"git.x:8443\","
      "\"*.example.com:8080\"]}");

#define NET(hosts) \
 "\"sandbox\":{\"network\":\"proxy\",\"allow_hosts\":" hosts "}"
  (void)state;
  expect_ok(p, NULL, NET("[\"api.github.com\",\"API.GitHub.com:443\"]"));
  expect_ok(p, NULL, NET("[\"api.github.com:80\"]"));
  expect_ok(p, NULL,
            NET("[\"files.pypi.org\",\"*.files.pypi.org\",\"*.pypi.org\"]"));
  expect_ok(p, NULL, NET("[\"git.x:8443\",\"a.example.com:8080\"]"));
  expect_refused(p, NULL, NET("[\"api.github.com\",\"github.com\"]"),
                 "sandbox.allow_hosts[1]",
                 "'github.com' is not covered by the hosts this server "
                 "allows (allow_hosts: api.github.com, *.pypi.org, "
                 "git.x:8443, *.example.com:8080)");
  /* "*.pypi.org" is the names under pypi.org, not pypi.org itself. */
  expect_refused(p, NULL, NET("[\"pypi.org\"]"), "sandbox.allow_hosts[0]",
                 "not covered");
  expect_refused(p, NULL, NET("[\"evilpypi.org\"]"), "sandbox.allow_hosts[0]",
                 "not covered");
  /* A wider wildcard than the policy's. */
  expect_refused(p, NULL, NET("[\"*.org\"]"), "sandbox.allow_hosts[0]",
                 "not covered");
  /* Ports: a bare name is 80 and 443 only; a port grant that port only. */
  expect_refused(p, NULL, NET("[\"api.github.com:8443\"]"),
                 "sandbox.allow_hosts[0]", "not covered");
  expect_refused(p, NULL, NET("[\"git.x\"]"), "sandbox.allow_hosts[0]",
                 "not covered");
  expect_refused(p, NULL, NET("[\"a.example.com\"]"), "sandbox.allow_hosts[0]",
                 "not covered");
  /* A grant the proxy would read loosely is refused, not guessed at. */
  expect_refused(p, NULL, NET("[\"api.github.com:x\"]"),
                 "sandbox.allow_hosts[0]", "not covered");
  expect_refused(p, NULL, NET("[\"api.github.com:0\"]"),
                 "sandbox.allow_hosts[0]", "not covered");
  spec_policy_free(p);

  /* The wider "*.org" covers a spec's "*.x.org". */
  p = load_ok("{\"allow_hosts\":[\"*.org\"]}");
  expect_ok(p, NULL, NET("[\"*.x.org\",\"a.b.org\"]"));
  expect_refused(p, NULL, NET("[\"org\"]"), "sandbox.allow_hosts[0]",
                 "not covered");
  spec_policy_free(p);
#undef NET
}

static void test_template_roots(void **state)
{
  struct spec_policy *p = load_ok("{\"template_roots\":[\"$T/templates\"]}");

  (void)state;
  expect_ok(p, NULL, "\"sandbox\":{\"template\":\"$T/templates/t1\"}");
  expect_refused(p, NULL, "\"sandbox\":{\"template\":\"$T/elsewhere/t2\"}",
                 "sandbox.template",
                 "'$T/elsewhere/t2' is not under the template roots this "
                 "server allows (template_roots: $T/templates)");
  /* Template roots are not bind roots, nor the other way round. */
  expect_refused(p, NULL, "\"sandbox\":{\"ro\":[\"$T/templates/t1\"]}",
                 "sandbox.ro[0]", "allows no binds");
  spec_policy_free(p);
}

#define MODEL_AT(url) \
 "\"model\":{\"provider\":\"openai\",\"name\":\"m\",\"base_url\":\"" url "\"}"

static void test_model_hosts(void **state)
{
  struct spec_policy *p =
      load_ok("{\"model_hosts\":[\"127.0.0.1\",\"API.openai.com\","
              "\"[::1]\"]}");

  (void)state;
  expect_ok(p, NULL, MODEL_AT("http://127.0.0.1:8080/v1"));
  expect_ok(p, NULL, MODEL_AT("https://api.OpenAI.com/v1"));
  expect_ok(p, NULL, MODEL_AT("http://[::1]:9000"));
  expect_ok(p, NULL, MODEL_AT("HTTPS://api.openai.com?x=1"));
  /* Left out, the base URL is the server's to choose (its environment
   * may point the provider elsewhere): not judged. */
  expect_ok(p, NULL, "\"model\":{\"provider\":\"anthropic\",\"name\":\"m\"}");
  expect_ok(p, NULL, "");
  expect_refused(p, NULL, MODEL_AT("http://169.254.169.254/latest"),
                 "model.base_url",
                 "host '169.254.169.254' is not one of the model hosts "
                 "this server allows (model_hosts: 127.0.0.1, "
                 "API.openai.com, ::1)");
  expect_refused(p, NULL, MODEL_AT("http://127.0.0.1.evil.net/"),
                 "model.base_url", "not one of");
  /* User info would hide the host; escapes and odd schemes too. */
  expect_refused(p, NULL, MODEL_AT("http://127.0.0.1@evil.net/"),
                 "model.base_url", "no user info");
  expect_refused(p, NULL, MODEL_AT("http://127.0.0.1%2f@evil.net/"),
                 "model.base_url", "no user info");
  expect_refused(p, NULL, MODEL_AT("http://evil.net\\\\@127.0.0.1/"),
                 "model.base_url", "no user info");
  expect_refused(p, NULL, MODEL_AT("file:///etc/passwd"), "model.base_url",
                 "must be http(s)://");
  expect_refused(p, NULL, MODEL_AT("http://127.0.0.1:80x/"), "model.base_url",
                 "must be http(s)://");
  expect_refused(p, NULL, MODEL_AT("http:///v1"), "model.base_url",
                 "must be http(s)://");
  spec_policy_free(p);
}

static void test_budget_ceilings(void **state)
{
  struct spec_policy *p = load_ok(
      "{\"budget_ceilings\":{\"steps\":500,\"tokens\":2000000,\"dollars\":20,"
      "\"wall_clock_s\":7200,\"tool_calls\":1000}}");
  struct durin_spec s;
  const char *field = NULL;

  (void)state;
  /* Unset budgets get the ceilings; set ones at or under stay. */
  spec_parse("\"budget\":{\"steps\":500,\"dollars\":1.5}", &s);
  assert_int_equal(spec_policy_check(p, NULL, &s, &field, NULL), 0);
  assert_int_equal(s.budget.steps, 500);
  assert_true(s.budget.dollars == 1.5);
  assert_int_equal(s.budget.tokens, 2000000);
  assert_int_equal(s.budget.wall_clock_ms, 7200 * 1000);
  assert_int_equal(s.budget.tool_calls, 1000);
  durin_spec_clear(&s);

  expect_refused(p, NULL, "\"budget\":{\"steps\":501}", "budget.steps",
                 "budget.steps 501 is above the ceiling of 500 this server "
                 "allows (budget_ceilings.steps: 500)");
  expect_refused(p, NULL, "\"budget\":{\"tokens\":2000001}", "budget.tokens",
                 "above the ceiling of 2000000");
  expect_refused(p, NULL, "\"budget\":{\"dollars\":20.01}", "budget.dollars",
                 "budget.dollars 20.01 is above the ceiling of 20");
  expect_refused(p, NULL, "\"budget\":{\"wall_clock_s\":7201}",
                 "budget.wall_clock_s",
                 "budget.wall_clock_s 7201 is above the ceiling of 7200");
  expect_refused(p, NULL, "\"budget\":{\"tool_calls\":5000}",
                 "budget.tool_calls", "above the ceiling of 1000");

  /* A refused spec is not filled in. */
  spec_parse("\"budget\":{\"tool_calls\":5000}", &s);
  expect_refused_spec(p, NULL, &s, "budget.tool_calls", "ceiling");
  assert_int_equal(s.budget.tokens, 0);
  durin_spec_clear(&s);
  spec_policy_free(p);

  /* Only the ceilings given; the spec's default of 100 steps stays. */
  p = load_ok("{\"budget_ceilings\":{\"dollars\":0.5}}");
  spec_parse("", &s);
  assert_int_equal(spec_policy_check(p, NULL, &s, &field, NULL), 0);
  assert_true(s.budget.dollars == 0.5);
  assert_int_equal(s.budget.steps, 100);
  durin_spec_clear(&s);
  spec_policy_free(p);

  /* A spec without budget.steps asks for the spec's default, 100. */
  p = load_ok("{\"budget_ceilings\":{\"steps\":50}}");
  expect_refused(p, NULL, "", "budget.steps",
                 "budget.steps 100 is above the ceiling of 50 this server "
                 "allows (budget_ceilings.steps: 50; a spec without "
                 "budget.steps asks for 100)");
  expect_ok(p, NULL, "\"budget\":{\"steps\":50}");
  spec_policy_free(p);
}

static const char *const tenant_policy =
    "{\"bind_roots\":[\"$T/caches\"],"
    " \"allow_hosts\":[\"api.github.com\",\"*.pypi.org\"],"
    " \"template_roots\":[\"$T/templates\"],"
    " \"model_hosts\":[\"127.0.0.1\",\"api.openai.com\"],"
    " \"budget_ceilings\":{\"steps\":500,\"dollars\":20},"
    " \"tenants\":{"
    "  \"acme\":{\"bind_roots\":[\"$T/caches/a\"],"
    "           \"allow_hosts\":[\"files.pypi.org\"],"
    "           \"template_roots\":[],"
    "           \"model_hosts\":[\"127.0.0.1\"],"
    "           \"budget_ceilings\":{\"steps\":100,\"tokens\":1000}},"
    "  \"lazy\":{}}}";

static void test_tenant_narrows(void **state)
{
  struct spec_policy *p = load_ok(tenant_policy);
  struct durin_spec s;

  (void)state;
  /* The server's rules, for a tenant without a section and for "lazy",
   * whose empty section takes them all. */
  const char *const others[] = { NULL, "default", "lazy" };
  size_t i;

  for (i = 0; i < 3; i++) {
    expect_ok(p, others[i], "\"sandbox\":{\"rw\":[\"$T/caches/b\"]}");
    expect_ok(p, others[i],
              "\"sandbox\":{\"network\":\"proxy\",\"allow_hosts\":"
              "[\"api.github.com\",\"x.pypi.org\"]}");
    expect_ok(p, others[i], "\"sandbox\":{\"template\":\"$T/templates/t1\"}");
    expect_ok(p, others[i], MODEL_AT("https://api.openai.com/v1"));
    expect_ok(p, others[i], "\"budget\":{\"steps\":500}");
    spec_parse("\"budget\":{\"steps\":0}", &s);
    assert_int_equal(spec_policy_check(p, others[i], &s, NULL, NULL), 0);
    assert_int_equal(s.budget.steps, 500);
    assert_int_equal(s.budget.tokens, 0);
    durin_spec_clear(&s);
  }
  /* acme's narrower lists. */
  expect_ok(p, "acme", "\"sandbox\":{\"rw\":[\"$T/caches/a\"]}");
  expect_refused(p, "acme", "\"sandbox\":{\"rw\":[\"$T/caches/b\"]}",
                 "sandbox.rw[0]",
                 "not under the bind roots tenant 'acme' allows "
                 "(bind_roots: $T/caches/a)");
  expect_ok(p, "acme",
            "\"sandbox\":{\"network\":\"proxy\",\"allow_hosts\":"
            "[\"files.pypi.org\"]}");
  expect_refused(p, "acme",
                 "\"sandbox\":{\"network\":\"proxy\",\"allow_hosts\":"
                 "[\"files.pypi.org\",\"api.github.com\"]}",
                 "sandbox.allow_hosts[1]", "tenant 'acme' allows");
  expect_refused(p, "acme", "\"sandbox\":{\"template\":\"$T/templates/t1\"}",
                 "sandbox.template", "tenant 'acme' allows no templates");
  expect_ok(p, "acme", MODEL_AT("http://127.0.0.1:1/v1"));
  expect_refused(p, "acme", MODEL_AT("https://api.openai.com/v1"),
                 "model.base_url",
                 "tenant 'acme' allows (model_hosts: "
                 "127.0.0.1)");
  /* Still within the server's: what the server refuses, acme cannot. */
  expect_refused(p, "acme", "\"sandbox\":{\"rw\":[\"$T/other\"]}",
                 "sandbox.rw[0]", "this server allows");
  /* Ceilings: acme's lower steps, its own tokens, the server's dollars. */
  expect_refused(p, "acme", "\"budget\":{\"steps\":101}", "budget.steps",
                 "above the ceiling of 100 tenant 'acme' allows");
  expect_refused(p, "acme", "\"budget\":{\"dollars\":21}", "budget.dollars",
                 "above the ceiling of 20");
  spec_parse("\"budget\":{\"steps\":0}", &s);
  assert_int_equal(spec_policy_check(p, "acme", &s, NULL, NULL), 0);
  assert_int_equal(s.budget.steps, 100);
  assert_int_equal(s.budget.tokens, 1000);
  assert_true(s.budget.dollars == 20);
  assert_int_equal(s.budget.tool_calls, 0);
  durin_spec_clear(&s);
  spec_policy_free(p);

  /* With no model_hosts on the server (any), a tenant may still name its
   * own; and a tenant may set a ceiling the server does not. */
  p = load_ok("{\"tenants\":{\"acme\":{\"model_hosts\":[\"10.0.0.1\"],"
              "\"budget_ceilings\":{\"tool_calls\":3}}}}");
  expect_ok(p, NULL, MODEL_AT("http://10.9.9.9/v1"));
  expect_ok(p, "acme", MODEL_AT("http://10.0.0.1/v1"));
  expect_refused(p, "acme", MODEL_AT("http://10.9.9.9/v1"), "model.base_url",
                 "tenant 'acme'");
  expect_refused(p, "acme", "\"budget\":{\"tool_calls\":4}",
                 "budget.tool_calls", "ceiling of 3");
  spec_policy_free(p);
}

static void test_tenant_widening_refused(void **state)
{
  (void)state;
  load_bad("{\"bind_roots\":[\"$T/caches/a\"],\"tenants\":{\"acme\":"
           "{\"bind_roots\":[\"$T/caches\"]}}}",
           "field 'tenants.acme.bind_roots[0]': '$T/caches' is not under one "
           "of the server's bind_roots ($T/caches/a); a tenant can narrow "
           "what the server allows, never widen it");
  load_bad("{\"tenants\":{\"acme\":{\"bind_roots\":[\"$T/caches\"]}}}",
           "'tenants.acme.bind_roots[0]': '$T/caches' is not under one of "
           "the server's bind_roots (none)");
  load_bad("{\"allow_hosts\":[\"*.pypi.org\"],\"tenants\":{\"acme\":"
           "{\"allow_hosts\":[\"x.pypi.org\",\"*.org\"]}}}",
           "'tenants.acme.allow_hosts[1]': '*.org' is not covered by the "
           "server's allow_hosts (*.pypi.org)");
  load_bad("{\"allow_hosts\":[\"api.github.com\"],\"tenants\":{\"acme\":"
           "{\"allow_hosts\":[\"api.github.com:22\"]}}}",
           "'tenants.acme.allow_hosts[0]'");
  load_bad("{\"template_roots\":[\"$T/templates/t1\"],\"tenants\":{\"acme\":"
           "{\"template_roots\":[\"$T/elsewhere\"]}}}",
           "'tenants.acme.template_roots[0]'");
  load_bad("{\"model_hosts\":[\"127.0.0.1\"],\"tenants\":{\"acme\":"
           "{\"model_hosts\":[\"10.0.0.1\"]}}}",
           "'tenants.acme.model_hosts[0]': '10.0.0.1' is not one of the "
           "server's model_hosts (127.0.0.1)");
  load_bad("{\"budget_ceilings\":{\"steps\":10},\"tenants\":{\"acme\":"
           "{\"budget_ceilings\":{\"steps\":11}}}}",
           "field 'tenants.acme.budget_ceilings.steps' is 11, above the "
           "server's ceiling of 10; a tenant can narrow");
  load_bad("{\"budget_ceilings\":{\"dollars\":2.5},\"tenants\":{\"acme\":"
           "{\"budget_ceilings\":{\"dollars\":3}}}}",
           "'tenants.acme.budget_ceilings.dollars' is 3, above the server's "
           "ceiling of 2.5");
  load_bad("{\"budget_ceilings\":{\"wall_clock_s\":60},\"tenants\":{\"acme\":"
           "{\"budget_ceilings\":{\"wall_clock_s\":61}}}}",
           "'tenants.acme.budget_ceilings.wall_clock_s' is 61, above the "
           "server's ceiling of 60");
}

static void test_bad_files(void **state)
{
  struct spec_policy *p = NULL;
  struct durin_err err = { 0 };

  (void)state;
  assert_int_equal(spec_policy_load("/nonexistent/policy.json", &p, &err),
                   DURIN_ENOTFOUND);
  assert_null(p);
  assert_non_null(strstr(err.msg, "'/nonexistent/policy.json'"));
  load_bad("{\"bind_roots\": [", "is not valid JSON");
  load_bad("[]", "must be a JSON object, not an array");
  load_bad("{\"bind_roots\":[],\"bind_roots\":[]}", "duplicate");
  load_bad("{\"bind_root\":[]}",
           "field 'bind_root' is not known; did you mean 'bind_roots'?");
  load_bad("{\"tennants\":{}}",
           "field 'tennants' is not known; did you mean 'tenants'?");
  load_bad("{\"frobnicate\":1}", "field 'frobnicate' is not known (known "
                                 "fields: bind_roots, allow_hosts");
  load_bad("{\"budget_ceilings\":{\"step\":1}}",
           "field 'budget_ceilings.step' is not known; did you mean "
           "'budget_ceilings.steps'?");
  load_bad("{\"budget_ceilings\":{\"wall_clock_ms\":1}}",
           "did you mean 'budget_ceilings.wall_clock_s'?");
  load_bad("{\"tenants\":{\"acme\":{\"alow_hosts\":[]}}}",
           "field 'tenants.acme.alow_hosts' is not known; did you mean "
           "'tenants.acme.allow_hosts'?");
  load_bad("{\"tenants\":{\"acme\":{\"tenants\":{}}}}",
           "field 'tenants.acme.tenants' is not known");
  load_bad("{\"tenants\":[]}", "field 'tenants' must be an object");
  load_bad("{\"tenants\":{\"acme\":1}}",
           "field 'tenants.acme' must be an object");
  load_bad("{\"bind_roots\":\"/srv\"}",
           "field 'bind_roots' must be an array of absolute paths, not a "
           "string");
  load_bad("{\"bind_roots\":[1]}",
           "field 'bind_roots[0]' must be an absolute path, not an integer");
  load_bad("{\"bind_roots\":[\"srv/caches\"]}",
           "field 'bind_roots[0]': 'srv/caches' must be an absolute path "
           "without '..'");
  load_bad("{\"template_roots\":[\"/srv/../etc\"]}",
           "field 'template_roots[0]': '/srv/../etc' must be an absolute "
           "path without '..'");
  load_bad("{\"bind_roots\":[\"$T/linkroot\"]}",
           "field 'bind_roots[0]': '$T/linkroot' leads through a symlink "
           "to '$T/caches'; write the real path");
  load_bad("{\"allow_hosts\":[\"https://api.github.com\"]}",
           "field 'allow_hosts[0]': 'https://api.github.com' is not a host "
           "grant");
  load_bad("{\"allow_hosts\":[\"*\"]}", "'allow_hosts[0]': '*' is not a "
                                        "host grant");
  load_bad("{\"allow_hosts\":[\"a.org:99999\"]}", "is not a host grant");
  load_bad("{\"model_hosts\":[\"http://127.0.0.1\"]}",
           "field 'model_hosts[0]': 'http://127.0.0.1' is not a host name");
  load_bad("{\"budget_ceilings\":{\"steps\":0}}",
           "field 'budget_ceilings.steps' must be an integer > 0 (leave it "
           "out for no ceiling)");
  load_bad("{\"budget_ceilings\":{\"steps\":1.5}}", "must be an integer > 0");
  load_bad("{\"budget_ceilings\":{\"dollars\":\"5\"}}",
           "field 'budget_ceilings.dollars' must be a number > 0");
  load_bad("{\"budget_ceilings\":{\"dollars\":0}}", "must be a number > 0");
  load_bad("{\"budget_ceilings\":[]}",
           "field 'budget_ceilings' must be an object");
  /* Each message says which file. */
  load_bad("{\"bind_root\":[]}", "spec policy '$T/policy.json': field");
  /* The smallest file is the default policy. */
  p = load_ok("{}");
  expect_refused(p, NULL, "\"sandbox\":{\"ro\":[\"$T/caches/a\"]}",
                 "sandbox.ro[0]", "allows no binds");
  spec_policy_free(p);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_default_policy),
    cmocka_unit_test(test_bind_roots),
    cmocka_unit_test(test_allow_hosts),
    cmocka_unit_test(test_template_roots),
    cmocka_unit_test(test_model_hosts),
    cmocka_unit_test(test_budget_ceilings),
    cmocka_unit_test(test_tenant_narrows),
    cmocka_unit_test(test_tenant_widening_refused),
    cmocka_unit_test(test_bad_files),
  };

  return cmocka_run_group_tests(tests, setup, teardown);
}
