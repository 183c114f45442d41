/*
 * Redaction (lib/secret/redact.c): a value becomes [secret:NAME] as it is,
 * in base64 (standard, URL-safe, padded or not, and inside a longer
 * encoding at each of the three alignments: a Basic auth header), in hex
 * and URL-encoded; text fed in pieces, split anywhere, comes out as if
 * whole; a value too short to redact is refused.
 */
#include <stdio.h>

#include <sodium.h>

#include "durin/redact.h"
#include "test.h"

static const char value[] = "s3cr3t/t0k+n=xyz?";

static struct durin_redactor *redactor(void)
{
  struct durin_redactor *r = durin_redactor_new();

  assert_non_null(r);
  assert_int_equal(durin_redactor_add(r, "TOKEN", value, strlen(value)), 0);
  return r;
}

/* in, redacted, must be want; returns hits. */
static size_t check(const struct durin_redactor *r, const char *in,
                    const char *want)
{
  struct durin_buf out;
  size_t hits = 0;

  durin_buf_init(&out, 0);
  assert_int_equal(durin_redact(r, in, strlen(in), &out, &hits), 0);
  assert_string_equal(out.buf, want);
  durin_buf_release(&out);
  return hits;
}

static char *b64(const char *s, int variant)
{
  size_t n = sodium_base64_encoded_len(strlen(s), variant);
  char *out = malloc(n);

  sodium_bin2base64(out, n, (const unsigned char *)s, strlen(s), variant);
  return out;
}

static void test_forms(void **state)
{
  struct durin_redactor *r = redactor();
  char text[512], hex[64], *e;
  const char *prefixes[] = { "", "u:", "ab:", "abc:" };
  size_t i;

  (void)state;
  assert_int_equal(
      check(r, "token=s3cr3t/t0k+n=xyz? end", "token=[secret:TOKEN] end"), 1);
  assert_int_equal(check(r, "nothing here", "nothing here"), 0);
  /* Base64 of the value alone, padded: nothing of it is left. */
  e = b64(value, sodium_base64_VARIANT_ORIGINAL);
  snprintf(text, sizeof(text), "x %s y", e);
  assert_int_equal(check(r, text, "x [secret:TOKEN] y"), 1);
  free(e);
  /* Inside a longer encoding, at every alignment (Basic auth is "user:"
   * then the token), standard and URL-safe. */
  for (i = 0; i < 4; i++) {
    char in[128], *enc;
    int v;

    for (v = 0; v < 2; v++) {
      struct durin_buf out;
      size_t hits = 0;

      snprintf(in, sizeof(in), "%s%s", prefixes[i], value);
      enc = b64(in, v ? sodium_base64_VARIANT_URLSAFE :
                        sodium_base64_VARIANT_ORIGINAL);
      durin_buf_init(&out, 0);
      assert_int_equal(durin_redact(r, enc, strlen(enc), &out, &hits), 0);
      assert_int_equal(hits, 1);
      assert_non_null(strstr(out.buf, "[secret:TOKEN]"));
      /* What is left is at most the characters the prefix shares. */
      assert_true(out.len <= strlen("[secret:TOKEN]") + 6 + 2);
      durin_buf_release(&out);
      free(enc);
    }
  }
  sodium_bin2hex(hex, sizeof(hex), (const unsigned char *)value, strlen(value));
  snprintf(text, sizeof(text), "hex %s.", hex);
  assert_int_equal(check(r, text, "hex [secret:TOKEN]."), 1);
  for (i = 0; hex[i]; i++)
    if (hex[i] >= 'a' && hex[i] <= 'f')
      hex[i] = (char)(hex[i] - 32);
  snprintf(text, sizeof(text), "HEX %s.", hex);
  assert_int_equal(check(r, text, "HEX [secret:TOKEN]."), 1);
  assert_int_equal(
      check(r, "q=s3cr3t%2Ft0k%2Bn%3Dxyz%3F&x=1", "q=[secret:TOKEN]&x=1"), 1);
  assert_int_equal(check(r, "q=s3cr3t%2ft0k%2bn%3dxyz%3f", "q=[secret:TOKEN]"),
                   1);
  durin_redactor_free(r);
}

static void test_stream(void **state)
{
  struct durin_redactor *r = redactor();
  const char *in = "a s3cr3t/t0k+n=xyz? b s3cr3t/t0k+n=xyz?";
  const char *want = "a [secret:TOKEN] b [secret:TOKEN]";
  size_t len = strlen(in), cut, cut2;

  (void)state;
  /* Split in two and three pieces everywhere. */
  for (cut = 0; cut <= len; cut++)
    for (cut2 = cut; cut2 <= len; cut2++) {
      struct durin_redact_stream s;
      struct durin_buf out;
      size_t hits = 0;

      durin_buf_init(&out, 0);
      durin_redact_stream_init(&s, r);
      assert_int_equal(durin_redact_stream_add(&s, in, cut, 0, &out, &hits), 0);
      assert_int_equal(
          durin_redact_stream_add(&s, in + cut, cut2 - cut, 0, &out, &hits), 0);
      assert_int_equal(
          durin_redact_stream_add(&s, in + cut2, len - cut2, 1, &out, &hits),
          0);
      assert_string_equal(out.buf, want);
      assert_int_equal(hits, 2);
      durin_redact_stream_release(&s);
      durin_buf_release(&out);
    }
  durin_redactor_free(r);
}

static void test_bad(void **state)
{
  struct durin_redactor *r = durin_redactor_new();

  (void)state;
  assert_int_equal(durin_redactor_add(r, "SHORT", "abc", 3), DURIN_EINVAL);
  assert_int_equal(durin_redactor_longest(r), 0);
  assert_int_equal(check(r, "abc", "abc"), 0);
  durin_redactor_free(r);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_forms),
    cmocka_unit_test(test_stream),
    cmocka_unit_test(test_bad),
  };

  assert_true(sodium_init() >= 0);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
