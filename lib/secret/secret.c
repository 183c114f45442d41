/*
 * The vault (include/durin/secret.h, docs/internals/secrets.md): the
 * master key, where it is found and how it is made, and the sealing of
 * values under it.
 *
 * Why an AEAD with the row in its associated data: the store is the
 * thing we do not trust with the values, so a writer to it must not be
 * able to move one tenant's sealed API key into another tenant's row (or
 * roll a rotated secret back to its old ciphertext under the same
 * version) and have it open there. Why a key id beside each value: with
 * the wrong key every value fails alike, and the operator deserves to
 * hear "wrong master key" rather than "corrupted".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "durin/secret.h"
#include "durin/store.h"

/* How to make a key, said wherever one is missing. */
#define KEY_HOWTO                                                        \
 "make one with 'durin secret keygen' (writes %s), or set "              \
 "DURIN_MASTER_KEY_FILE to a key file of yours, or DURIN_MASTER_KEY to " \
 "the base64 or hex of 32 random bytes"

static int init(struct durin_err *err)
{
  if (sodium_init() < 0)
    return durin_err_set(err, DURIN_EIO, "cannot initialize libsodium");
  return 0;
}

void durin_master_key_id(const unsigned char key[DURIN_SECRET_KEY_BYTES],
                         char id[17])
{
  static const unsigned char ctx[] = "durin master key id v1";
  unsigned char h[8];
  crypto_generichash_state st;

  /* A hash of the key, under a label of its own, so the id can never be
   * mistaken for (or help derive) anything else made from the key. */
  crypto_generichash_init(&st, NULL, 0, sizeof(h));
  crypto_generichash_update(&st, ctx, sizeof(ctx) - 1);
  crypto_generichash_update(&st, key, DURIN_SECRET_KEY_BYTES);
  crypto_generichash_final(&st, h, sizeof(h));
  sodium_bin2hex(id, 17, h, sizeof(h));
  sodium_memzero(&st, sizeof(st));
}

int durin_master_key_default_path(char *out, size_t len)
{
  const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
  int n;

  if (xdg && *xdg == '/')
    n = snprintf(out, len, "%s/durin/master.key", xdg);
  else if (home && *home)
    n = snprintf(out, len, "%s/.config/durin/master.key", home);
  else
    return -1;
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* The 32 bytes text stands for: base64 (either alphabet, padded or not)
 * or hex, around whitespace. */
static int key_decode(const char *text, size_t len, unsigned char *key)
{
  static const int variants[] = {
    sodium_base64_VARIANT_ORIGINAL,
    sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
    sodium_base64_VARIANT_URLSAFE,
    sodium_base64_VARIANT_URLSAFE_NO_PADDING,
  };
  size_t got, i;
  const char *end;

  while (len && strchr(" \t\r\n", text[len - 1]))
    len--;
  while (len && strchr(" \t\r\n", *text)) {
    text++;
    len--;
  }
  if (len == 2 * DURIN_SECRET_KEY_BYTES &&
      sodium_hex2bin(key, DURIN_SECRET_KEY_BYTES, text, len, NULL, &got,
                     &end) == 0 &&
      got == DURIN_SECRET_KEY_BYTES && end == text + len)
    return 0;
  for (i = 0; i < sizeof(variants) / sizeof(variants[0]); i++)
    if (sodium_base642bin(key, DURIN_SECRET_KEY_BYTES, text, len, NULL, &got,
                          &end, variants[i]) == 0 &&
        got == DURIN_SECRET_KEY_BYTES && end == text + len)
      return 0;
  return -1;
}

/* Reads the key file at path into k; a file its group or others may read
 * is refused, the key being no safer than the file. */
static int key_file(const char *path, struct durin_master_key *k,
                    struct durin_err *err)
{
  unsigned char *buf = NULL;
  struct stat sb;
  ssize_t n;
  size_t len = 0;
  int fd, r = 0;

  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return durin_err_set(err, errno == ENOENT ? DURIN_ENOTFOUND : DURIN_EIO,
                         "cannot open master key file '%s': %s", path,
                         strerror(errno));
  if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
    r = durin_err_set(err, DURIN_EINVAL,
                      "master key file '%s' is not a regular file", path);
    goto out;
  }
  if (sb.st_mode & 077) {
    r = durin_err_set(err, DURIN_EACCES,
                      "master key file '%s' has mode %04o: others may read "
                      "it; run 'chmod 600 %s' (and consider the key exposed)",
                      path, (unsigned)(sb.st_mode & 07777), path);
    goto out;
  }
  /* Raw bytes or text; nothing longer than a padded text key and a
   * newline or two is a key. */
  if (!(buf = sodium_malloc(256))) {
    r = durin_err_set(err, DURIN_ENOMEM, "out of memory");
    goto out;
  }
  while (len < 256 && (n = read(fd, buf + len, 256 - len)) != 0) {
    if (n < 0) {
      if (errno == EINTR)
        continue;
      r = durin_err_set(err, DURIN_EIO, "cannot read master key file '%s': %s",
                        path, strerror(errno));
      goto out;
    }
    len += (size_t)n;
  }
  if (len == DURIN_SECRET_KEY_BYTES)
    memcpy(k->key, buf, DURIN_SECRET_KEY_BYTES);
  else if (len == 256 || key_decode((const char *)buf, len, k->key))
    r = durin_err_set(err, DURIN_EINVAL,
                      "master key file '%s' does not hold a key (32 bytes, "
                      "or their base64 or hex)",
                      path);
  if (!r)
    snprintf(k->source, sizeof(k->source), "file '%s'", path);
out:
  sodium_free(buf);
  close(fd);
  return r;
}

/* A zeroed key in wiped memory; *out cleared for the caller. */
static int key_new(struct durin_master_key **k, struct durin_master_key **out,
                   struct durin_err *err)
{
  int r;

  *out = NULL;
  if ((r = init(err)))
    return r;
  if (!(*k = sodium_malloc(sizeof(**k))))
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  memset(*k, 0, sizeof(**k));
  return 0;
}

/* The key a rotation retires, if $DURIN_MASTER_KEY_PREVIOUS_FILE names
 * one: values still sealed under it open while the rotation runs. */
static int load_prev(struct durin_master_key *k, struct durin_err *err)
{
  const char *file = getenv("DURIN_MASTER_KEY_PREVIOUS_FILE");
  struct durin_master_key *p = NULL;
  int r;

  if (!file || !*file)
    return 0;
  if ((r = durin_master_key_load_file(file, &p, err))) {
    durin_err_prefix(err, "DURIN_MASTER_KEY_PREVIOUS_FILE: ");
    return r;
  }
  memcpy(k->prev, p->key, sizeof(k->prev));
  memcpy(k->prev_id, p->id, sizeof(k->prev_id));
  k->have_prev = 1;
  durin_master_key_free(p);
  return 0;
}

int durin_master_key_load(struct durin_master_key **out, struct durin_err *err)
{
  struct durin_master_key *k;
  const char *env = getenv("DURIN_MASTER_KEY");
  const char *creds = getenv("CREDENTIALS_DIRECTORY");
  const char *file = getenv("DURIN_MASTER_KEY_FILE");
  char path[4096];
  int r;

  if ((r = key_new(&k, out, err)))
    return r;
  if (env && *env) {
    if (key_decode(env, strlen(env), k->key)) {
      r = durin_err_set(err, DURIN_EINVAL,
                        "DURIN_MASTER_KEY is not a key: give the base64 or "
                        "hex of 32 bytes");
      goto out;
    }
    snprintf(k->source, sizeof(k->source), "DURIN_MASTER_KEY");
  } else {
    r = DURIN_ENOTFOUND;
    /* systemd's LoadCredential=durin-master-key:...; its files are the
     * service's own and 0400. */
    if (creds && *creds) {
      snprintf(path, sizeof(path), "%s/durin-master-key", creds);
      r = key_file(path, k, err);
    }
    if (r == DURIN_ENOTFOUND && file && *file)
      r = key_file(file, k, err);
    else if (r == DURIN_ENOTFOUND &&
             durin_master_key_default_path(path, sizeof(path)) == 0)
      r = key_file(path, k, err);
    if (r == DURIN_ENOTFOUND) {
      char where[4096];

      if (file && *file)
        snprintf(where, sizeof(where), "-o %s", file);
      else if (durin_master_key_default_path(where, sizeof(where)))
        snprintf(where, sizeof(where), "a file given with -o");
      r = durin_err_set(err, DURIN_ENOTFOUND, "no master key: " KEY_HOWTO,
                        where);
    }
    if (r)
      goto out;
  }
  durin_master_key_id(k->key, k->id);
  if ((r = load_prev(k, err)))
    goto out;
  *out = k;
  k = NULL;
out:
  durin_master_key_free(k);
  return r;
}

int durin_master_key_load_file(const char *path, struct durin_master_key **out,
                               struct durin_err *err)
{
  struct durin_master_key *k;
  int r;

  if ((r = key_new(&k, out, err)))
    return r;
  if ((r = key_file(path, k, err))) {
    if (r == DURIN_ENOTFOUND)
      durin_err_set(err, r, "no master key file '%s'", path);
    durin_master_key_free(k);
    return r;
  }
  durin_master_key_id(k->key, k->id);
  *out = k;
  return 0;
}

void durin_master_key_free(struct durin_master_key *k)
{
  sodium_free(k); /* wipes it; NULL is fine */
}

/* mkdir -p of path's directory, 0700 for what it makes. */
static int make_parent(const char *path, struct durin_err *err)
{
  char dir[4096];
  char *p;

  snprintf(dir, sizeof(dir), "%s", path);
  if (!(p = strrchr(dir, '/')) || p == dir)
    return 0;
  *p = 0;
  for (p = dir + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = 0;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
      goto fail;
    *p = '/';
  }
  if (mkdir(dir, 0700) < 0 && errno != EEXIST)
    goto fail;
  return 0;
fail:
  return durin_err_set(err, DURIN_EIO, "cannot make directory '%s': %s", dir,
                       strerror(errno));
}

int durin_master_key_generate(const char *path, char id[17], char *where_out,
                              size_t where_len, struct durin_err *err)
{
  unsigned char *key = NULL;
  char *text = NULL;
  char def[4096];
  size_t tlen = sodium_base64_ENCODED_LEN(DURIN_SECRET_KEY_BYTES,
                                          sodium_base64_VARIANT_ORIGINAL);
  int fd = -1, r = 0;

  if ((r = init(err)))
    return r;
  if (!path) {
    if (durin_master_key_default_path(def, sizeof(def)))
      return durin_err_set(err, DURIN_EINVAL,
                           "no default key file (HOME is not set): give -o "
                           "FILE");
    path = def;
    if ((r = make_parent(path, err)))
      return r;
  }
  key = sodium_malloc(DURIN_SECRET_KEY_BYTES);
  text = sodium_malloc(tlen + 1);
  if (!key || !text) {
    r = durin_err_set(err, DURIN_ENOMEM, "out of memory");
    goto out;
  }
  randombytes_buf(key, DURIN_SECRET_KEY_BYTES);
  sodium_bin2base64(text, tlen, key, DURIN_SECRET_KEY_BYTES,
                    sodium_base64_VARIANT_ORIGINAL);
  strcat(text, "\n");
  /* Never over an existing key: the secrets sealed under it would be lost
   * with it. */
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    r = durin_err_set(err, errno == EEXIST ? DURIN_EEXIST : DURIN_EIO,
                      errno == EEXIST ?
                          "'%s' already exists: durin never overwrites a "
                          "key (the secrets sealed under it would be lost)" :
                          "cannot create key file '%s': %s",
                      path, strerror(errno));
    goto out;
  }
  if (fchmod(fd, 0600) < 0 ||
      write(fd, text, strlen(text)) != (ssize_t)strlen(text) || fsync(fd) < 0) {
    r = durin_err_set(err, DURIN_EIO, "cannot write key file '%s': %s", path,
                      strerror(errno));
    close(fd);
    unlink(path);
    goto out;
  }
  if (close(fd) < 0) {
    r = durin_err_set(err, DURIN_EIO, "cannot write key file '%s': %s", path,
                      strerror(errno));
    unlink(path);
    goto out;
  }
  durin_master_key_id(key, id);
  if (where_out)
    snprintf(where_out, where_len, "%s", path);
out:
  sodium_free(key);
  sodium_free(text);
  return r;
}

int durin_secret_name_check(const char *name, struct durin_err *err)
{
  size_t n = name ? strlen(name) : 0;

  if (n >= 1 && n <= 128 && !(name[0] >= '0' && name[0] <= '9') &&
      strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                   "0123456789_") == n)
    return 0;
  return durin_err_set(err, DURIN_EINVAL,
                       "'%.140s' is not a secret name: letters, digits and "
                       "'_', not starting with a digit, at most 128",
                       name ? name : "");
}

int durin_secret_value_alloc(struct durin_secret_value *v, size_t len)
{
  v->len = 0;
  if (sodium_init() < 0 || !(v->data = sodium_malloc(len + 1)))
    return DURIN_ENOMEM;
  v->data[len] = 0;
  v->len = len;
  return 0;
}

void durin_secret_value_clear(struct durin_secret_value *v)
{
  if (!v)
    return;
  sodium_free(v->data);
  v->data = NULL;
  v->len = 0;
}

/* The associated data: what the row is. NUL separates the fields, which
 * none of them may contain. */
static int make_ad(char *ad, size_t len, const char *tenant, const char *name,
                   const char *key_id, int64_t version)
{
  int n = snprintf(ad, len, "durin-secret-v1%c%s%c%s%c%s%c%lld", 0, tenant, 0,
                   name, 0, key_id, 0, (long long)version);

  return n < 0 || (size_t)n >= len ? -1 : n;
}

static char *b64(const unsigned char *b, size_t n)
{
  size_t len = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
  char *s = malloc(len);

  if (s)
    sodium_bin2base64(s, len, b, n, sodium_base64_VARIANT_ORIGINAL);
  return s;
}

int durin_secret_seal(const struct durin_master_key *k, const char *tenant,
                      const char *name, int64_t version, const void *value,
                      size_t len, char **nonce_b64, char **ct_b64,
                      struct durin_err *err)
{
  unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
  unsigned char *ct = NULL;
  unsigned long long ctlen;
  char ad[600];
  int adlen, r = 0;

  *nonce_b64 = *ct_b64 = NULL;
  if ((r = init(err)))
    return r;
  if (len > DURIN_SECRET_MAX_VALUE)
    return durin_err_set(err, DURIN_ETOOBIG,
                         "secret '%s' is %zu bytes; the vault keeps values "
                         "up to %d",
                         name, len, DURIN_SECRET_MAX_VALUE);
  if ((adlen = make_ad(ad, sizeof(ad), tenant, name, k->id, version)) < 0)
    return durin_err_set(err, DURIN_EINVAL, "tenant name too long");
  if (!(ct = malloc(len + crypto_aead_xchacha20poly1305_ietf_ABYTES)))
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  randombytes_buf(nonce, sizeof(nonce));
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      ct, &ctlen, value, len, (const unsigned char *)ad, (size_t)adlen, NULL,
      nonce, k->key);
  *nonce_b64 = b64(nonce, sizeof(nonce));
  *ct_b64 = b64(ct, (size_t)ctlen);
  free(ct);
  if (!*nonce_b64 || !*ct_b64) {
    free(*nonce_b64);
    free(*ct_b64);
    *nonce_b64 = *ct_b64 = NULL;
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  }
  return 0;
}

/* Decodes base64 text of at most max bytes into a new malloc'd buffer. */
static unsigned char *unb64(const char *s, size_t max, size_t *n)
{
  unsigned char *b;

  if (!s || !(b = malloc(max ? max : 1)))
    return NULL;
  if (sodium_base642bin(b, max, s, strlen(s), NULL, n, NULL,
                        sodium_base64_VARIANT_ORIGINAL) != 0) {
    free(b);
    return NULL;
  }
  return b;
}

int durin_secret_open(const struct durin_master_key *k, const char *tenant,
                      const char *name, int64_t version, const char *key_id,
                      const char *nonce_b64, const char *ct_b64,
                      struct durin_secret_value *out, struct durin_err *err)
{
  unsigned char *nonce = NULL, *ct = NULL;
  size_t nlen = 0, clen = 0;
  unsigned long long plen;
  const unsigned char *key = k->key;
  char ad[600];
  int adlen, r;

  memset(out, 0, sizeof(*out));
  if ((r = init(err)))
    return r;
  if (key_id && k->have_prev && !strcmp(key_id, k->prev_id))
    key = k->prev; /* not yet rotated */
  else if (!key_id || strcmp(key_id, k->id))
    return durin_err_set(err, DURIN_EACCES,
                         "cannot decrypt secret '%s': wrong master key (key "
                         "id %s from %s, stored %s)",
                         name, k->id, k->source, key_id ? key_id : "none");
  nonce = unb64(nonce_b64, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, &nlen);
  ct = unb64(ct_b64,
             DURIN_SECRET_MAX_VALUE + crypto_aead_xchacha20poly1305_ietf_ABYTES,
             &clen);
  if ((adlen = make_ad(ad, sizeof(ad), tenant, name, key_id, version)) < 0 ||
      !nonce || nlen != crypto_aead_xchacha20poly1305_ietf_NPUBBYTES || !ct ||
      clen < crypto_aead_xchacha20poly1305_ietf_ABYTES) {
    r = durin_err_set(err, DURIN_EACCES,
                      "cannot decrypt secret '%s': its stored value is "
                      "corrupted (malformed)",
                      name);
    goto out;
  }
  if (durin_secret_value_alloc(
          out, clen - crypto_aead_xchacha20poly1305_ietf_ABYTES)) {
    r = durin_err_set(err, DURIN_ENOMEM, "out of memory");
    goto out;
  }
  /* The tag is checked before any byte is written: a value that does not
   * open leaves nothing behind. */
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          out->data, &plen, NULL, ct, clen, (const unsigned char *)ad,
          (size_t)adlen, nonce, key) != 0) {
    durin_secret_value_clear(out);
    r = durin_err_set(err, DURIN_EACCES,
                      "cannot decrypt secret '%s': its stored value is "
                      "corrupted (or was moved from another secret's row)",
                      name);
    goto out;
  }
  out->len = (size_t)plen;
  out->data[plen] = 0;
out:
  free(nonce);
  free(ct);
  return r;
}

int durin_secret_set(struct durin_store *s, const struct durin_master_key *k,
                     const struct durin_secret_set_opts *o, const void *value,
                     size_t len, int64_t *version, struct durin_err *err)
{
  const char *tenant = o->tenant ? o->tenant : "default";
  int tries, r;

  if ((r = durin_secret_name_check(o->name, err)))
    return r;
  /* Optimistic: read the version, write the next one if it is still the
   * stored one; a rotation that raced us makes us read again. */
  for (tries = 0; tries < 8; tries++) {
    struct durin_secret_row cur, row;
    struct durin_err e2 = { 0 };
    int64_t prev = 0;

    r = durin_store_secret_get(s, tenant, o->name, &cur, &e2);
    if (r && r != DURIN_ENOTFOUND) {
      *err = e2;
      return r;
    }
    if (!r)
      prev = cur.version;
    durin_secret_row_clear(&cur);
    memset(&row, 0, sizeof(row));
    row.tenant = (char *)tenant;
    row.name = (char *)o->name;
    row.scope = (char *)o->scope;
    row.key_id = (char *)k->id;
    row.version = prev + 1;
    row.created_ms = row.updated_ms = o->now_ms;
    row.created_by = (char *)o->created_by;
    if ((r = durin_secret_seal(k, tenant, o->name, row.version, value, len,
                               &row.nonce, &row.ciphertext, err)))
      return r;
    r = durin_store_secret_put(s, &row, prev, err);
    free(row.nonce);
    free(row.ciphertext);
    if (r != DURIN_EBUSY) {
      if (!r && version)
        *version = prev + 1;
      return r;
    }
  }
  return r;
}

int durin_secret_get(struct durin_store *s, const struct durin_master_key *k,
                     const char *tenant, const char *name,
                     struct durin_secret_value *out, struct durin_err *err)
{
  struct durin_secret_row row;
  int r;

  memset(out, 0, sizeof(*out));
  if (!tenant)
    tenant = "default";
  if ((r = durin_store_secret_get(s, tenant, name, &row, err)))
    return r;
  r = durin_secret_open(k, row.tenant, row.name, row.version, row.key_id,
                        row.nonce, row.ciphertext, out, err);
  durin_secret_row_clear(&row);
  return r;
}

/* Whether a secret scoped to scope is open to agent. */
static int scope_allows(const char *scope, const char *agent)
{
  return !scope ||
         (!strncmp(scope, "agent:", 6) && agent && !strcmp(scope + 6, agent));
}

int durin_secret_check_use(struct durin_store *s, const char *tenant,
                           const char *name, const char *agent,
                           struct durin_err *err)
{
  struct durin_secret_row row;
  int r;

  if (!tenant)
    tenant = "default";
  if ((r = durin_store_secret_get(s, tenant, name, &row, err))) {
    if (r == DURIN_ENOTFOUND)
      durin_err_set(err, r,
                    "no secret '%s' in tenant '%s' (store one with 'durin "
                    "secret set %s --tenant %s')",
                    name, tenant, name, tenant);
    return r;
  }
  if (!scope_allows(row.scope, agent))
    r = durin_err_set(err, DURIN_EACCES,
                      "secret '%s' is scoped to '%s', not to agent '%s'", name,
                      row.scope, agent ? agent : "");
  durin_secret_row_clear(&row);
  return r;
}

/* ---- signed approvals ---- */

void durin_approval_key(const struct durin_master_key *k,
                        unsigned char out[DURIN_SECRET_KEY_BYTES])
{
  crypto_kdf_derive_from_key(out, DURIN_SECRET_KEY_BYTES, 1, "durinapr",
                             k->key);
}

/* Each field with its length first, so no two tuples sign alike. */
static void mac_field(crypto_auth_hmacsha256_state *st, const char *v)
{
  unsigned char len[8];
  uint64_t n = v ? strlen(v) : 0;
  int i;

  for (i = 0; i < 8; i++)
    len[i] = (unsigned char)(n >> (8 * i));
  crypto_auth_hmacsha256_update(st, len, sizeof(len));
  if (n)
    crypto_auth_hmacsha256_update(st, (const unsigned char *)v, n);
}

void durin_approval_mac(const unsigned char key[DURIN_SECRET_KEY_BYTES],
                        const struct durin_approval_signed *a,
                        char out[DURIN_APPROVAL_MAC_LEN])
{
  crypto_auth_hmacsha256_state st;
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  size_t p = sizeof(DURIN_APPROVAL_MAC_PREFIX) - 1;
  char step[24], call[16];

  /* HMAC needs no randomness: sodium_init only picks implementations. */
  if (sodium_init() < 0)
    memset(mac, 0, sizeof(mac));
  snprintf(step, sizeof(step), "%lld", (long long)a->step);
  snprintf(call, sizeof(call), "%d", a->call_idx);
  crypto_auth_hmacsha256_init(&st, key, DURIN_SECRET_KEY_BYTES);
  mac_field(&st, "durin approval v2");
  mac_field(&st, a->id);
  mac_field(&st, a->run_id);
  mac_field(&st, step);
  mac_field(&st, call);
  mac_field(&st, a->call_id);
  mac_field(&st, a->tool);
  mac_field(&st, a->call_hash);
  mac_field(&st, a->state);
  mac_field(&st, a->by);
  mac_field(&st, a->args);
  crypto_auth_hmacsha256_final(&st, mac);
  memcpy(out, DURIN_APPROVAL_MAC_PREFIX, p);
  sodium_bin2hex(out + p, DURIN_APPROVAL_MAC_LEN - p, mac, sizeof(mac));
  sodium_memzero(&st, sizeof(st));
}

/* ---- master key rotation ---- */

struct rows {
  struct durin_secret_row *v;
  size_t n;
};

static int keep_row(const struct durin_secret_row *row, void *arg)
{
  struct rows *rs = arg;
  struct durin_secret_row *v = realloc(rs->v, (rs->n + 1) * sizeof(*v));

  if (!v)
    return DURIN_ENOMEM;
  rs->v = v;
  memset(&v[rs->n], 0, sizeof(v[rs->n]));
  v[rs->n].tenant = strdup(row->tenant);
  v[rs->n].name = strdup(row->name);
  rs->n++;
  return v[rs->n - 1].tenant && v[rs->n - 1].name ? 0 : DURIN_ENOMEM;
}

/* One secret: 1 resealed, 2 already current, 3 under another key. */
static int rekey_one(struct durin_store *s, const struct durin_master_key *k,
                     const struct durin_master_key *old, const char *tenant,
                     const char *name, int64_t now_ms, int *what,
                     struct durin_err *err)
{
  int tries, r = 0;

  for (tries = 0; tries < 8; tries++) {
    struct durin_secret_row cur, row;
    struct durin_secret_value v = { NULL, 0 };

    if ((r = durin_store_secret_get(s, tenant, name, &cur, err)))
      return r == DURIN_ENOTFOUND ? 0 : r; /* deleted meanwhile */
    if (!strcmp(cur.key_id, k->id) || strcmp(cur.key_id, old->id)) {
      *what = strcmp(cur.key_id, k->id) ? 3 : 2;
      durin_secret_row_clear(&cur);
      return 0;
    }
    r = durin_secret_open(old, cur.tenant, cur.name, cur.version, cur.key_id,
                          cur.nonce, cur.ciphertext, &v, err);
    memset(&row, 0, sizeof(row));
    row.tenant = cur.tenant;
    row.name = cur.name;
    row.key_id = (char *)k->id;
    row.version = cur.version + 1;
    row.created_ms = row.updated_ms = now_ms;
    if (!r)
      r = durin_secret_seal(k, cur.tenant, cur.name, row.version, v.data, v.len,
                            &row.nonce, &row.ciphertext, err);
    durin_secret_value_clear(&v);
    if (!r)
      r = durin_store_secret_put(s, &row, cur.version, err);
    free(row.nonce);
    free(row.ciphertext);
    durin_secret_row_clear(&cur);
    if (r != DURIN_EBUSY) {
      *what = 1;
      return r;
    }
  }
  return r;
}

int durin_secret_rekey(struct durin_store *s, const struct durin_master_key *k,
                       const struct durin_master_key *old, int64_t now_ms,
                       struct durin_rekey_stats *st, struct durin_err *err)
{
  struct rows rs = { NULL, 0 };
  size_t i;
  int r;

  memset(st, 0, sizeof(*st));
  if (!strcmp(k->id, old->id))
    return durin_err_set(err, DURIN_EINVAL,
                         "the old key is the current master key (key id %s): "
                         "make a new one with 'durin secret keygen -o FILE' "
                         "and point DURIN_MASTER_KEY_FILE at it",
                         k->id);
  r = durin_store_secret_list(s, NULL, keep_row, &rs, err);
  for (i = 0; !r && i < rs.n; i++) {
    int what = 0;

    r = rekey_one(s, k, old, rs.v[i].tenant, rs.v[i].name, now_ms, &what, err);
    if (r)
      durin_err_prefix(err, "secret '%s' of tenant '%s': ", rs.v[i].name,
                       rs.v[i].tenant);
    st->resealed += what == 1;
    st->current += what == 2;
    st->other += what == 3;
  }
  for (i = 0; i < rs.n; i++) {
    free(rs.v[i].tenant);
    free(rs.v[i].name);
  }
  free(rs.v);
  return r;
}
