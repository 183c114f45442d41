/* Inbound triggers' pure parts (lib/trigger/): signatures checked against
 * vectors made by the senders' own libraries (@octokit/webhooks-methods
 * and standardwebhooks, see tests/js/webhook-sign.mjs), the clock window
 * of Standard Webhooks, filters, the trust rule and goal templates. */
#include <stdio.h>

#include "durin/trigger.h"
#include "test.h"

static const char body[] = "{\"a\":1}\n";

static void test_github(void **state)
{
  struct durin_err err = { 0 };
  /* sign("s3cret-s3cret-s3cret", body) of @octokit/webhooks-methods */
  const char *good = "sha256=144d11d4bd1a1da33f23d91c80f36be90403100ecb448ddf"
                     "0328a66807fc2460";
  char bad[80];

  (void)state;
  assert_int_equal(durin_trigger_verify_github("s3cret-s3cret-s3cret", 20, body,
                                               sizeof(body) - 1, good, &err),
                   0);
  /* One bit off, another secret, another body, no header, a bad form. */
  snprintf(bad, sizeof(bad), "%s", good);
  bad[strlen(bad) - 1] = 'e';
  assert_int_equal(durin_trigger_verify_github("s3cret-s3cret-s3cret", 20, body,
                                               sizeof(body) - 1, bad, &err),
                   DURIN_EACCES);
  assert_non_null(strstr(err.msg, "bad X-Hub-Signature-256"));
  assert_int_equal(durin_trigger_verify_github("s3cret-s3cret-s3cres", 20, body,
                                               sizeof(body) - 1, good, &err),
                   DURIN_EACCES);
  assert_int_equal(durin_trigger_verify_github("s3cret-s3cret-s3cret", 20, body,
                                               sizeof(body) - 2, good, &err),
                   DURIN_EACCES);
  assert_int_equal(durin_trigger_verify_github("s3cret-s3cret-s3cret", 20, body,
                                               sizeof(body) - 1, NULL, &err),
                   DURIN_EACCES);
  assert_non_null(strstr(err.msg, "no X-Hub-Signature-256"));
  assert_int_equal(durin_trigger_verify_github("s3cret-s3cret-s3cret", 20, body,
                                               sizeof(body) - 1, "sha1=ab",
                                               &err),
                   DURIN_EACCES);
  assert_non_null(strstr(err.msg, "malformed"));
}

static void test_standard(void **state)
{
  struct durin_err err = { 0 };
  const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const char *sig = "v1,AS2/S0BTVTWYooiWIUsREJ/ykpAMGvk+qhNrvfHLRnc=";
  char two[128];

  (void)state;
  assert_int_equal(durin_trigger_verify_standard(secret, "msg_1", "1700000000",
                                                 sig, body, sizeof(body) - 1,
                                                 1700000000, &err),
                   0);
  /* Among several, and after another version's. */
  snprintf(two, sizeof(two), "v2,xyz v1,AAAA %s", sig);
  assert_int_equal(durin_trigger_verify_standard(secret, "msg_1", "1700000000",
                                                 two, body, sizeof(body) - 1,
                                                 1700000100, &err),
                   0);
  /* Another id, a replay six minutes late, one from the future. */
  assert_int_equal(durin_trigger_verify_standard(secret, "msg_2", "1700000000",
                                                 sig, body, sizeof(body) - 1,
                                                 1700000000, &err),
                   DURIN_EACCES);
  assert_int_equal(durin_trigger_verify_standard(secret, "msg_1", "1700000000",
                                                 sig, body, sizeof(body) - 1,
                                                 1700000360, &err),
                   DURIN_EACCES);
  assert_non_null(strstr(err.msg, "a replay"));
  assert_int_equal(durin_trigger_verify_standard(secret, "msg_1", "1700000000",
                                                 sig, body, sizeof(body) - 1,
                                                 1699999000, &err),
                   DURIN_EACCES);
  assert_int_equal(durin_trigger_verify_standard(secret, "msg_1", NULL, sig,
                                                 body, sizeof(body) - 1,
                                                 1700000000, &err),
                   DURIN_EACCES);
}

static void test_match_and_trust(void **state)
{
  json_t *c = json_loads("{\"events\": [\"issues.labeled\", \"check_run\"],"
                         " \"where\": [{\"path\": \"label.name\", \"value\":"
                         " \"agent\"}]}",
                         0, NULL);
  json_t *p = json_loads("{\"label\": {\"name\": \"agent\"}, \"issue\": "
                         "{\"author_association\": \"NONE\", \"labels\": "
                         "[{\"name\": \"x\"}]}, \"comment\": "
                         "{\"author_association\": \"MEMBER\"}}",
                         0, NULL);
  char why[256];
  struct durin_err err = { 0 };

  (void)state;
  assert_int_equal(durin_trigger_config_check(c, &err), 0);
  assert_int_equal(durin_trigger_match(c, "issues.labeled", p, why, 256), 1);
  assert_int_equal(durin_trigger_match(c, "issues.opened", p, why, 256), 0);
  assert_non_null(strstr(why, "issues.opened"));
  /* A bare event takes every action; an action never the bare event. */
  assert_int_equal(durin_trigger_match(c, "check_run.completed", p, why, 256),
                   1);
  assert_int_equal(durin_trigger_match(c, "issues", p, why, 256), 0);
  json_object_set_new(json_object_get(p, "label"), "name", json_string("bug"));
  assert_int_equal(durin_trigger_match(c, "issues.labeled", p, why, 256), 0);
  assert_non_null(strstr(why, "it is 'bug'"));
  assert_string_equal(
      json_string_value(durin_trigger_path(p, "issue.labels.0.name")), "x");
  assert_null(durin_trigger_path(p, "issue.labels.1.name"));
  assert_null(durin_trigger_path(p, "issue."));
  /* The least trusted author counts: a member's comment on a stranger's
   * issue carries the stranger's text along. */
  assert_string_equal(durin_trigger_association(p), "NONE");
  json_object_set_new(json_object_get(p, "issue"), "author_association",
                      json_string("OWNER"));
  assert_string_equal(durin_trigger_association(p), "MEMBER");
  assert_true(durin_trigger_trusted("OWNER"));
  assert_true(durin_trigger_trusted("COLLABORATOR"));
  assert_false(durin_trigger_trusted("CONTRIBUTOR"));
  assert_false(durin_trigger_trusted("NONE"));
  assert_false(durin_trigger_trusted(NULL));
  json_decref(c);
  json_decref(p);
}

static void test_render(void **state)
{
  json_t *p = json_loads("{\"issue\": {\"number\": 7, \"title\": \"{{x}}\","
                         " \"body\": null, \"ok\": true}}",
                         0, NULL);
  struct durin_err err = { 0 };
  char *out = NULL, *big, *tmpl;
  size_t n = DURIN_TRIGGER_VALUE_MAX + 100;

  (void)state;
  assert_int_equal(durin_trigger_render("#{{issue.number}} {{ issue.title }}"
                                        "|{{issue.body}}|{{issue.ok}}",
                                        p, &out, &err),
                   0);
  /* A value that looks like a template stays text. */
  assert_string_equal(out, "#7 {{x}}||true");
  free(out);
  assert_int_equal(durin_trigger_render("{{issue.nope}}", p, &out, &err),
                   DURIN_ENOTFOUND);
  assert_non_null(strstr(err.msg, "'issue.nope'"));
  assert_int_equal(durin_trigger_render("{{issue", p, &out, &err),
                   DURIN_EINVAL);
  /* A long value is cut, on a character's boundary. */
  big = malloc(n + 1);
  for (size_t i = 0; i < n; i += 2)
    memcpy(big + i, "\xc3\xa9", 2);
  big[n] = 0;
  json_object_set_new(json_object_get(p, "issue"), "body", json_string(big));
  tmpl = "{{issue.body}}";
  assert_int_equal(durin_trigger_render(tmpl, p, &out, &err), 0);
  assert_true(strlen(out) <= DURIN_TRIGGER_VALUE_MAX + 8);
  assert_non_null(strstr(out, " [cut]"));
  {
    json_t *still = json_string(out); /* NULL unless UTF-8 */

    assert_non_null(still);
    json_decref(still);
  }
  free(out);
  free(big);
  json_decref(p);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_github),
    cmocka_unit_test(test_standard),
    cmocka_unit_test(test_match_and_trust),
    cmocka_unit_test(test_render),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
