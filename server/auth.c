/*
 * API tokens: random, shown once, kept in the store as a SHA-256 hash
 * (a token is 256 bits of entropy, so a fast hash is enough: there is
 * nothing to brute-force that a slow one would protect). Roles nest:
 * viewer reads; operator also submits, cancels and decides approvals;
 * admin also manages agents, limits, tokens and webhooks.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "durin/util.h"
#include "server/server.h"

int token_new(char *token, size_t len)
{
  unsigned char raw[32];
  char b64[64];

  if (durin_random(raw, sizeof(raw)))
    return -1;
  sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw),
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  snprintf(token, len, "durin_%s", b64);
  return 0;
}

void token_hash(const char *token, char hash[65])
{
  durin_sha256_hex(token, strlen(token), hash);
}

int token_issue(struct durin_store *st, struct durin_token *t, char *tok,
                size_t len, struct durin_err *err)
{
  char hash[65];

  if (durin_run_id_new(t->id) || token_new(tok, len))
    return durin_err_set(err, DURIN_EIO, "cannot draw a random token");
  /* A run id's randomness, marked as a token's so the two never mix. */
  t->id[0] = 't';
  t->created_ms = durin_now_ms();
  token_hash(tok, hash);
  return durin_store_token_create(st, t, hash, err);
}

json_t *token_json(const struct durin_token *t)
{
  json_t *o = json_pack("{s:s,s:s,s:s,s:s?,s:I}", "id", t->id, "name", t->name,
                        "role", t->role, "tenant", t->tenant, "created_ms",
                        (json_int_t)t->created_ms);

  if (!o)
    return NULL;
  json_object_set_new(o, "revoked_ms",
                      t->revoked_ms ? json_integer(t->revoked_ms) :
                                      json_null());
  return o;
}

const char *role_name(enum role r)
{
  switch (r) {
  case ROLE_VIEWER:
    return "viewer";
  case ROLE_OPERATOR:
    return "operator";
  case ROLE_ADMIN:
    return "admin";
  case ROLE_NONE:
  default:
    return "none";
  }
}

enum role role_parse(const char *s)
{
  if (!s)
    return ROLE_NONE;
  if (!strcmp(s, "viewer"))
    return ROLE_VIEWER;
  if (!strcmp(s, "operator"))
    return ROLE_OPERATOR;
  if (!strcmp(s, "admin"))
    return ROLE_ADMIN;
  return ROLE_NONE;
}
