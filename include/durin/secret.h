/*
 * The vault: secret values kept in the store encrypted under a master key
 * that lives outside it (docs/internals/secrets.md).
 *
 * Each value is sealed with XChaCha20-Poly1305 (libsodium's IETF AEAD)
 * under a random nonce; the associated data binds the row's tenant, name,
 * key id and version, so a ciphertext copied into another row does not
 * open. The store keeps the key id (a hash of the key, never the key)
 * beside each value, so a wrong key is told apart from a damaged value,
 * and a later rotation of the master key can find what it must re-seal.
 *
 * Nothing here has process-wide side effects beyond sodium_init() (which
 * is idempotent and thread-safe). Plaintext values and keys live in
 * sodium_malloc'd memory, wiped when freed. Any thread may call, each
 * with its own store handle.
 */
#ifndef DURIN_SECRET_H
#define DURIN_SECRET_H

#include <stddef.h>
#include <stdint.h>

#include "durin/error.h"

struct durin_store;

#define DURIN_SECRET_KEY_BYTES 32
/* The longest value the vault keeps. */
#define DURIN_SECRET_MAX_VALUE (64 * 1024)

/* A loaded master key (sodium_malloc'd: durin_master_key_free wipes it). */
struct durin_master_key {
  unsigned char key[DURIN_SECRET_KEY_BYTES];
  char id[17];      /* its key id: 16 hex digits of a BLAKE2b of the key */
  char source[512]; /* where it came from, for messages */
  /* During a rotation: the key being retired, still opened with (never
   * sealed with), from $DURIN_MASTER_KEY_PREVIOUS_FILE. */
  int have_prev;
  unsigned char prev[DURIN_SECRET_KEY_BYTES];
  char prev_id[17];
};

/*
 * Loads the master key, from the first of: $DURIN_MASTER_KEY (base64 or
 * hex of 32 bytes); $CREDENTIALS_DIRECTORY/durin-master-key (systemd's
 * credentials); the file $DURIN_MASTER_KEY_FILE; the default file
 * (durin_master_key_default_path). A key file readable by its group or
 * others is refused. DURIN_ENOTFOUND when there is none at all, with a
 * message that says how to make one; DURIN_EACCES for a file too open;
 * DURIN_EINVAL for a malformed key.
 */
int durin_master_key_load(struct durin_master_key **out, struct durin_err *err);
void durin_master_key_free(struct durin_master_key *k);
/* A key from one file only (the same checks as the key file's): the old
 * key of a rotation. */
int durin_master_key_load_file(const char *path, struct durin_master_key **out,
                               struct durin_err *err);

/* What durin_secret_rekey did. */
struct durin_rekey_stats {
  int resealed; /* were under the old key, now under the new one */
  int current;  /* were already under the new key */
  int other;    /* under neither: left alone, named in err's caller's log */
};
/*
 * Rotates the master key: every secret (all tenants) sealed under old is
 * opened with it and sealed under k, at the next version, each write
 * conditional on the version read (a value set meanwhile is never
 * overwritten: it is read again). Secrets under another key are counted
 * and left.
 */
int durin_secret_rekey(struct durin_store *s, const struct durin_master_key *k,
                       const struct durin_master_key *old, int64_t now_ms,
                       struct durin_rekey_stats *st, struct durin_err *err);
/* The default key file: $XDG_CONFIG_HOME/durin/master.key, else
 * $HOME/.config/durin/master.key. -1 if neither variable is set. */
int durin_master_key_default_path(char *out, size_t len);
/*
 * Writes a new random key to path (base64 and a newline), mode 0600,
 * never over an existing file (DURIN_EEXIST); path NULL: the default
 * file, whose directory is made (0700) if missing. id receives its key
 * id, where_out (may be NULL) the path written.
 */
int durin_master_key_generate(const char *path, char id[17], char *where_out,
                              size_t where_len, struct durin_err *err);
/* The key id of a key: 16 hex digits. */
void durin_master_key_id(const unsigned char key[DURIN_SECRET_KEY_BYTES],
                         char id[17]);

/* Whether name is a valid secret name ([A-Za-z_][A-Za-z0-9_]{0,127});
 * DURIN_EINVAL with a message saying what is allowed. */
int durin_secret_name_check(const char *name, struct durin_err *err);

/* A plaintext value (sodium_malloc'd, NUL-terminated after len bytes). */
struct durin_secret_value {
  unsigned char *data;
  size_t len;
};
/* Allocates room for len bytes (and a NUL); DURIN_ENOMEM if it cannot. */
int durin_secret_value_alloc(struct durin_secret_value *v, size_t len);
void durin_secret_value_clear(struct durin_secret_value *v);

/* What durin_secret_set wrote. */
struct durin_secret_set_opts {
  const char *tenant; /* NULL: "default" */
  const char *name;
  const char *scope;      /* NULL: none on a new secret, kept on a rotation */
  const char *created_by; /* NULL: none */
  int64_t now_ms;
};
/*
 * Seals value under k and stores it: a new secret at version 1, or a
 * rotation of an existing one (version + 1, the name and creation kept).
 * *version receives the version written.
 */
int durin_secret_set(struct durin_store *s, const struct durin_master_key *k,
                     const struct durin_secret_set_opts *o, const void *value,
                     size_t len, int64_t *version, struct durin_err *err);
/*
 * Reads and opens tenant's secret name into out (the caller clears it).
 * DURIN_ENOTFOUND: no such secret; DURIN_EACCES: sealed under another
 * master key, or it does not open (damaged, or moved from another row):
 * never a partial value.
 */
int durin_secret_get(struct durin_store *s, const struct durin_master_key *k,
                     const char *tenant, const char *name,
                     struct durin_secret_value *out, struct durin_err *err);

/*
 * Whether agent may use tenant's secret name (tenant NULL: "default"):
 * it exists, and its scope is none or "agent:AGENT". Reads no value.
 * DURIN_ENOTFOUND naming the secret and the tenant, DURIN_EACCES naming
 * the scope.
 */
int durin_secret_check_use(struct durin_store *s, const char *tenant,
                           const char *name, const char *agent,
                           struct durin_err *err);

/* The sealing itself, for the store's rows (and the tests). nonce_b64 and
 * ct_b64 are malloc'd base64 (the caller frees them). */
int durin_secret_seal(const struct durin_master_key *k, const char *tenant,
                      const char *name, int64_t version, const void *value,
                      size_t len, char **nonce_b64, char **ct_b64,
                      struct durin_err *err);
int durin_secret_open(const struct durin_master_key *k, const char *tenant,
                      const char *name, int64_t version, const char *key_id,
                      const char *nonce_b64, const char *ct_b64,
                      struct durin_secret_value *out, struct durin_err *err);

/*
 * Signed approvals (docs/internals/approvals.md). A decision that lets a
 * call run records, as its args_hash, DURIN_APPROVAL_MAC_PREFIX and the
 * hex of an HMAC-SHA-256, under a key derived from the master key, of
 * everything the decision is about: the approval, its run, step, call
 * (index and id), tool and the call's hash, the state ("approved" or
 * "edited"), who decided, and the arguments that may run. Whoever can
 * write the store but has not the master key can neither make a call
 * approved nor move a decision to another call.
 */
#define DURIN_APPROVAL_MAC_PREFIX "hmac-sha256:"
#define DURIN_APPROVAL_MAC_LEN    (sizeof(DURIN_APPROVAL_MAC_PREFIX) + 64)

struct durin_approval_signed {
  const char *id, *run_id;
  int64_t step;
  int call_idx;
  const char *call_id, *tool, *call_hash;
  const char *state, *by, *args;
};

void durin_approval_key(const struct durin_master_key *k,
                        unsigned char out[DURIN_SECRET_KEY_BYTES]);
void durin_approval_mac(const unsigned char key[DURIN_SECRET_KEY_BYTES],
                        const struct durin_approval_signed *a,
                        char out[DURIN_APPROVAL_MAC_LEN]);

#endif
