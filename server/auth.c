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
