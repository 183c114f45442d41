/*
 * Signatures of inbound deliveries: GitHub's X-Hub-Signature-256 and
 * Standard Webhooks'. Both are HMAC-SHA-256 (libsodium's), compared in
 * constant time (sodium_memcmp) on the decoded bytes, so a forger learns
 * nothing from how long a refusal took. The reasons say what was wrong
 * with the signature, never anything about the secret.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "durin/trigger.h"

int durin_trigger_verify_github(const void *key, size_t key_len,
                                const char *body, size_t body_len,
                                const char *header, struct durin_err *err)
{
  unsigned char mac[crypto_auth_hmacsha256_BYTES], got[sizeof(mac)];
  crypto_auth_hmacsha256_state h;
  size_t n = 0;
  const char *end;

  if (!header || !*header)
    return durin_err_set(err, DURIN_EACCES,
                         "no X-Hub-Signature-256 header: the delivery is "
                         "not signed (set the webhook's secret on GitHub)");
  if (strncmp(header, "sha256=", 7) || strlen(header + 7) != 2 * sizeof(got) ||
      sodium_hex2bin(got, sizeof(got), header + 7, strlen(header + 7), NULL, &n,
                     &end) ||
      n != sizeof(got))
    return durin_err_set(err, DURIN_EACCES,
                         "malformed X-Hub-Signature-256: want 'sha256=' and "
                         "64 hex digits");
  if (key_len < DURIN_TRIGGER_MIN_SECRET)
    return durin_err_set(err, DURIN_EACCES,
                         "the trigger's secret is %zu bytes, fewer than the "
                         "%d a signature needs to mean anything: set a longer "
                         "one (e.g. openssl rand -hex 32)",
                         key_len, DURIN_TRIGGER_MIN_SECRET);
  crypto_auth_hmacsha256_init(&h, key, key_len);
  crypto_auth_hmacsha256_update(&h, (const unsigned char *)body, body_len);
  crypto_auth_hmacsha256_final(&h, mac);
  if (sodium_memcmp(mac, got, sizeof(mac)))
    return durin_err_set(err, DURIN_EACCES,
                         "bad X-Hub-Signature-256: the body was not signed "
                         "with this trigger's secret");
  return 0;
}

/* The key of a Standard Webhooks secret: the base64 after "whsec_". */
static int standard_key(const char *secret, unsigned char *key, size_t cap,
                        size_t *len)
{
  if (!strncmp(secret, "whsec_", 6))
    secret += 6;
  return sodium_base642bin(key, cap, secret, strlen(secret), NULL, len, NULL,
                           sodium_base64_VARIANT_ORIGINAL);
}

int durin_trigger_verify_standard(const char *secret, const char *id,
                                  const char *timestamp, const char *signature,
                                  const char *body, size_t body_len,
                                  int64_t now_s, struct durin_err *err)
{
  unsigned char key[256], mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state h;
  size_t klen = 0;
  const char *p;
  char *end;
  long long ts;
  int ok = 0;

  if (!id || !*id || !timestamp || !*timestamp || !signature || !*signature)
    return durin_err_set(err, DURIN_EACCES,
                         "missing webhook-id, webhook-timestamp or "
                         "webhook-signature header: the delivery is not "
                         "signed the Standard Webhooks way");
  ts = strtoll(timestamp, &end, 10);
  if (*end || end == timestamp)
    return durin_err_set(err, DURIN_EACCES,
                         "malformed webhook-timestamp: want seconds since "
                         "the epoch");
  if (ts < now_s - DURIN_TRIGGER_TOLERANCE_S ||
      ts > now_s + DURIN_TRIGGER_TOLERANCE_S)
    return durin_err_set(err, DURIN_EACCES,
                         "webhook-timestamp is %lld s from now, more than the "
                         "%d s allowed: a replay, or the sender's clock is "
                         "wrong",
                         (long long)(ts - now_s), DURIN_TRIGGER_TOLERANCE_S);
  if (standard_key(secret, key, sizeof(key), &klen))
    return durin_err_set(err, DURIN_EACCES,
                         "the trigger's secret is not a Standard Webhooks "
                         "secret ('whsec_' and base64): set it again");
  if (klen < DURIN_TRIGGER_MIN_SECRET) {
    sodium_memzero(key, sizeof(key));
    return durin_err_set(err, DURIN_EACCES,
                         "the trigger's secret decodes to %zu bytes, fewer "
                         "than the %d a signature needs to mean anything: "
                         "set a longer one",
                         klen, DURIN_TRIGGER_MIN_SECRET);
  }
  crypto_auth_hmacsha256_init(&h, key, klen);
  crypto_auth_hmacsha256_update(&h, (const unsigned char *)id, strlen(id));
  crypto_auth_hmacsha256_update(&h, (const unsigned char *)".", 1);
  crypto_auth_hmacsha256_update(&h, (const unsigned char *)timestamp,
                                strlen(timestamp));
  crypto_auth_hmacsha256_update(&h, (const unsigned char *)".", 1);
  crypto_auth_hmacsha256_update(&h, (const unsigned char *)body, body_len);
  crypto_auth_hmacsha256_final(&h, mac);
  sodium_memzero(key, sizeof(key));
  /* Space-separated "v1,BASE64"; other versions are skipped. */
  for (p = signature; *p && !ok;) {
    unsigned char got[sizeof(mac)];
    size_t n = strcspn(p, " "), glen = 0;

    if (n > 3 && !strncmp(p, "v1,", 3) &&
        !sodium_base642bin(got, sizeof(got), p + 3, n - 3, NULL, &glen, NULL,
                           sodium_base64_VARIANT_ORIGINAL) &&
        glen == sizeof(got) && !sodium_memcmp(got, mac, sizeof(mac)))
      ok = 1;
    p += n;
    while (*p == ' ')
      p++;
  }
  if (!ok)
    return durin_err_set(err, DURIN_EACCES,
                         "bad webhook-signature: no v1 signature of this "
                         "delivery under the trigger's secret");
  return 0;
}
