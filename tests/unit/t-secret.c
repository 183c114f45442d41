/* The vault: values round-trip; a wrong key, a damaged value and a value
 * moved to another row fail cleanly with nothing returned; a rotation
 * bumps the version; a listing never carries values; where the master
 * key is found, and which key files are refused. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "durin/secret.h"
#include "durin/store.h"
#include "durin/util.h"
#include "test.h"

static int setup(void **state)
{
  unsetenv("DURIN_MASTER_KEY");
  unsetenv("DURIN_MASTER_KEY_FILE");
  unsetenv("CREDENTIALS_DIRECTORY");
  unsetenv("XDG_CONFIG_HOME");
  return store_fx_open(state, "t.db");
}

static int teardown(void **state)
{
  unsetenv("DURIN_MASTER_KEY");
  return store_fx_close(state);
}

/* A key of 32 bytes b, loaded as an operator would give it (hex). */
static struct durin_master_key *key_of(unsigned char b)
{
  struct durin_master_key *k = NULL;
  char hex[65];
  int i;

  for (i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", b);
  setenv("DURIN_MASTER_KEY", hex, 1);
  assert_int_equal(durin_master_key_load(&k, NULL), 0);
  unsetenv("DURIN_MASTER_KEY");
  return k;
}

static int64_t set(struct durin_store *s, const struct durin_master_key *k,
                   const char *tenant, const char *name, const char *value)
{
  struct durin_secret_set_opts o = { tenant, name, NULL, "test", 1000 };
  struct durin_err err = { 0 };
  int64_t v = 0;

  assert_int_equal(durin_secret_set(s, k, &o, value, strlen(value), &v, &err),
                   0);
  return v;
}

static void test_round_trip(void **state)
{
  struct store_fx *f = *state;
  struct durin_master_key *k = key_of(1);
  struct durin_secret_value v;

  assert_int_equal(set(f->s, k, NULL, "OPENAI_KEY", "sk-round-trip"), 1);
  assert_int_equal(durin_secret_get(f->s, k, NULL, "OPENAI_KEY", &v, NULL), 0);
  assert_int_equal(v.len, strlen("sk-round-trip"));
  assert_string_equal((char *)v.data, "sk-round-trip");
  durin_secret_value_clear(&v);
  assert_int_equal(durin_secret_get(f->s, k, "other", "OPENAI_KEY", &v, NULL),
                   DURIN_ENOTFOUND);
  assert_null(v.data);
  durin_master_key_free(k);
}

static void test_wrong_key(void **state)
{
  struct store_fx *f = *state;
  struct durin_master_key *k1 = key_of(1), *k2 = key_of(2);
  struct durin_secret_value v;
  struct durin_err err = { 0 };

  assert_string_not_equal(k1->id, k2->id);
  set(f->s, k1, NULL, "TOKEN", "t0ken");
  assert_int_equal(durin_secret_get(f->s, k2, NULL, "TOKEN", &v, &err),
                   DURIN_EACCES);
  assert_null(v.data);
  assert_int_equal(v.len, 0);
  assert_non_null(strstr(err.msg, "cannot decrypt secret 'TOKEN': wrong "
                                  "master key"));
  assert_non_null(strstr(err.msg, k1->id));
  assert_non_null(strstr(err.msg, k2->id));
  durin_master_key_free(k1);
  durin_master_key_free(k2);
}

/* Writes row (read by durin_store_secret_get) back at its own version. */
static void rewrite(struct durin_store *s, struct durin_secret_row *row)
{
  assert_int_equal(durin_store_secret_put(s, row, row->version, NULL), 0);
}

static void test_corrupted(void **state)
{
  struct store_fx *f = *state;
  struct durin_master_key *k = key_of(3);
  struct durin_secret_row row;
  struct durin_secret_value v;
  struct durin_err err = { 0 };

  set(f->s, k, NULL, "TOKEN", "a value long enough to flip a byte of");
  assert_int_equal(durin_store_secret_get(f->s, "default", "TOKEN", &row, NULL),
                   0);
  /* One base64 character of the ciphertext changed: one bit or more. */
  row.ciphertext[4] = row.ciphertext[4] == 'A' ? 'B' : 'A';
  rewrite(f->s, &row);
  assert_int_equal(durin_secret_get(f->s, k, NULL, "TOKEN", &v, &err),
                   DURIN_EACCES);
  assert_null(v.data);
  assert_non_null(strstr(err.msg, "cannot decrypt secret 'TOKEN'"));
  assert_non_null(strstr(err.msg, "corrupted"));
  /* Not base64 at all. */
  free(row.ciphertext);
  row.ciphertext = strdup("!!!");
  rewrite(f->s, &row);
  assert_int_equal(durin_secret_get(f->s, k, NULL, "TOKEN", &v, &err),
                   DURIN_EACCES);
  assert_null(v.data);
  durin_secret_row_clear(&row);
  durin_master_key_free(k);
}

static void test_moved_between_rows(void **state)
{
  struct store_fx *f = *state;
  struct durin_master_key *k = key_of(4);
  struct durin_secret_row a, b, old;
  struct durin_secret_value v;
  struct durin_err err = { 0 };

  set(f->s, k, NULL, "A", "value-of-a");
  set(f->s, k, NULL, "B", "value-of-b");
  set(f->s, k, "t2", "A", "value-of-t2-a");
  assert_int_equal(durin_store_secret_get(f->s, "default", "A", &a, NULL), 0);
  assert_int_equal(durin_store_secret_get(f->s, "default", "B", &b, NULL), 0);
  /* A's sealed value in B's row (same version, same key). */
  free(b.nonce);
  free(b.ciphertext);
  b.nonce = strdup(a.nonce);
  b.ciphertext = strdup(a.ciphertext);
  rewrite(f->s, &b);
  assert_int_equal(durin_secret_get(f->s, k, NULL, "B", &v, &err),
                   DURIN_EACCES);
  assert_null(v.data);
  assert_non_null(strstr(err.msg, "corrupted"));
  /* The same name in another tenant. */
  durin_secret_row_clear(&b);
  assert_int_equal(durin_store_secret_get(f->s, "t2", "A", &b, NULL), 0);
  free(b.nonce);
  free(b.ciphertext);
  b.nonce = strdup(a.nonce);
  b.ciphertext = strdup(a.ciphertext);
  rewrite(f->s, &b);
  assert_int_equal(durin_secret_get(f->s, k, "t2", "A", &v, NULL),
                   DURIN_EACCES);
  assert_null(v.data);
  /* A rolled back to its first ciphertext after a rotation. */
  assert_int_equal(set(f->s, k, NULL, "A", "value-of-a-2"), 2);
  assert_int_equal(durin_store_secret_get(f->s, "default", "A", &old, NULL), 0);
  free(old.nonce);
  free(old.ciphertext);
  old.nonce = strdup(a.nonce);
  old.ciphertext = strdup(a.ciphertext);
  rewrite(f->s, &old);
  assert_int_equal(durin_secret_get(f->s, k, NULL, "A", &v, NULL),
                   DURIN_EACCES);
  assert_null(v.data);
  durin_secret_row_clear(&a);
  durin_secret_row_clear(&b);
  durin_secret_row_clear(&old);
  durin_master_key_free(k);
}

static void test_rotation(void **state)
{
  struct store_fx *f = *state;
  struct durin_master_key *k = key_of(5);
  struct durin_secret_set_opts o = { NULL, "ROT", "agent:x", "me", 1000 };
  struct durin_secret_row row;
  struct durin_secret_value v;
  int64_t ver = 0;

  assert_int_equal(durin_secret_set(f->s, k, &o, "one", 3, &ver, NULL), 0);
  assert_int_equal(ver, 1);
  o.scope = NULL;
  o.created_by = "someone else";
  o.now_ms = 2000;
  assert_int_equal(durin_secret_set(f->s, k, &o, "two", 3, &ver, NULL), 0);
  assert_int_equal(ver, 2);
  assert_int_equal(durin_store_secret_get(f->s, "default", "ROT", &row, NULL),
                   0);
  assert_int_equal(row.version, 2);
  assert_int_equal(row.created_ms, 1000);
  assert_int_equal(row.updated_ms, 2000);
  assert_string_equal(row.created_by, "me");
  assert_string_equal(row.scope, "agent:x"); /* kept when not given */
  assert_string_equal(row.key_id, k->id);
  durin_secret_row_clear(&row);
  assert_int_equal(durin_secret_get(f->s, k, NULL, "ROT", &v, NULL), 0);
  assert_string_equal((char *)v.data, "two");
  durin_secret_value_clear(&v);
  /* A writer that read version 1 loses to the rotation that came first. */
  memset(&row, 0, sizeof(row));
  row.tenant = "default";
  row.name = "ROT";
  row.key_id = k->id;
  row.nonce = row.ciphertext = "x";
  row.version = 2;
  assert_int_equal(durin_store_secret_put(f->s, &row, 1, NULL), DURIN_EBUSY);
  /* ... and so does a second "first" version. */
  assert_int_equal(durin_store_secret_put(f->s, &row, 0, NULL), DURIN_EBUSY);
  durin_master_key_free(k);
}

struct seen {
  int n;
  const char *value;
};

static void no_value(const char *field, const char *value)
{
  assert_true(!field || !strstr(field, value));
}

static int list_one(const struct durin_secret_row *r, void *arg)
{
  struct seen *s = arg;

  s->n++;
  assert_null(r->nonce);
  assert_null(r->ciphertext);
  no_value(r->tenant, s->value);
  no_value(r->name, s->value);
  no_value(r->scope, s->value);
  no_value(r->key_id, s->value);
  no_value(r->created_by, s->value);
  assert_true(r->version >= 1);
  return 0;
}

static void test_list_has_no_values(void **state)
{
  struct store_fx *f = *state;
  struct durin_master_key *k = key_of(6);
  struct seen s = { 0, "plain-value-123" };
  struct durin_err err = { 0 };

  set(f->s, k, NULL, "ONE", s.value);
  set(f->s, k, NULL, "TWO", s.value);
  set(f->s, k, "t2", "ONE", s.value);
  assert_int_equal(durin_store_secret_list(f->s, NULL, list_one, &s, NULL), 0);
  assert_int_equal(s.n, 3);
  s.n = 0;
  assert_int_equal(durin_store_secret_list(f->s, "t2", list_one, &s, NULL), 0);
  assert_int_equal(s.n, 1);
  assert_int_equal(durin_store_secret_delete(f->s, "t2", "ONE", NULL), 0);
  assert_int_equal(durin_store_secret_delete(f->s, "t2", "ONE", &err),
                   DURIN_ENOTFOUND);
  s.n = 0;
  assert_int_equal(durin_store_secret_list(f->s, "t2", list_one, &s, NULL), 0);
  assert_int_equal(s.n, 0);
  durin_master_key_free(k);
}

static void test_use_and_scope(void **state)
{
  struct store_fx *f = *state;
  struct durin_master_key *k = key_of(7);
  struct durin_secret_set_opts o = { NULL, "SCOPED", "agent:fixer", NULL, 1 };
  struct durin_err err = { 0 };

  assert_int_equal(durin_secret_set(f->s, k, &o, "v", 1, NULL, NULL), 0);
  assert_int_equal(durin_secret_check_use(f->s, NULL, "SCOPED", "fixer", NULL),
                   0);
  assert_int_equal(durin_secret_check_use(f->s, NULL, "SCOPED", "other", &err),
                   DURIN_EACCES);
  assert_non_null(strstr(err.msg, "agent:fixer"));
  assert_int_equal(durin_secret_check_use(f->s, "t9", "SCOPED", "fixer", &err),
                   DURIN_ENOTFOUND);
  assert_non_null(strstr(err.msg, "'SCOPED'"));
  assert_non_null(strstr(err.msg, "'t9'"));
  durin_master_key_free(k);
}

static void test_names(void **state)
{
  char longest[130];

  (void)state;
  memset(longest, 'a', 128);
  longest[128] = 0;
  assert_int_equal(durin_secret_name_check("GITHUB_TOKEN", NULL), 0);
  assert_int_equal(durin_secret_name_check("_x9", NULL), 0);
  assert_int_equal(durin_secret_name_check(longest, NULL), 0);
  longest[128] = 'a';
  longest[129] = 0;
  assert_int_equal(durin_secret_name_check(longest, NULL), DURIN_EINVAL);
  assert_int_equal(durin_secret_name_check("", NULL), DURIN_EINVAL);
  assert_int_equal(durin_secret_name_check("9LIVES", NULL), DURIN_EINVAL);
  assert_int_equal(durin_secret_name_check("A-B", NULL), DURIN_EINVAL);
  assert_int_equal(durin_secret_name_check("A B", NULL), DURIN_EINVAL);
}

static void test_key_sources(void **state)
{
  struct store_fx *f = *state;
  struct durin_master_key *k = NULL, *k2 = NULL;
  struct durin_err err = { 0 };
  char path[4200], path2[4200], id[17], where[4200];
  struct stat sb;
  int fd;

  /* Nothing anywhere: say how to make one. */
  setenv("HOME", f->dir, 1);
  assert_int_equal(durin_master_key_load(&k, &err), DURIN_ENOTFOUND);
  assert_null(k);
  assert_non_null(strstr(err.msg, "durin secret keygen"));
  /* keygen: the default file, 0600, and never twice. */
  assert_int_equal(
      durin_master_key_generate(NULL, id, where, sizeof(where), NULL), 0);
  snprintf(path, sizeof(path), "%s/.config/durin/master.key", f->dir);
  assert_string_equal(where, path);
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  assert_int_equal(durin_master_key_generate(NULL, id, NULL, 0, &err),
                   DURIN_EEXIST);
  assert_int_equal(durin_master_key_load(&k, NULL), 0);
  assert_string_equal(k->id, id);
  /* Readable by others: refused, saying what to do. */
  chmod(path, 0644);
  assert_int_equal(durin_master_key_load(&k2, &err), DURIN_EACCES);
  assert_non_null(strstr(err.msg, "chmod 600"));
  chmod(path, 0640);
  assert_int_equal(durin_master_key_load(&k2, &err), DURIN_EACCES);
  chmod(path, 0600);
  /* DURIN_MASTER_KEY_FILE before the default; the environment first. */
  snprintf(path2, sizeof(path2), "%s/other.key", f->dir);
  assert_int_equal(durin_master_key_generate(path2, id, NULL, 0, NULL), 0);
  setenv("DURIN_MASTER_KEY_FILE", path2, 1);
  assert_int_equal(durin_master_key_load(&k2, NULL), 0);
  assert_string_equal(k2->id, id);
  assert_string_not_equal(k2->id, k->id);
  durin_master_key_free(k2);
  setenv("DURIN_MASTER_KEY", "not a key", 1);
  assert_int_equal(durin_master_key_load(&k2, &err), DURIN_EINVAL);
  setenv("DURIN_MASTER_KEY", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", 1);
  assert_int_equal(durin_master_key_load(&k2, NULL), 0);
  assert_string_equal(k2->source, "DURIN_MASTER_KEY");
  {
    struct durin_master_key *hex = key_of(1);

    assert_string_equal(k2->id, hex->id); /* base64 and hex alike */
    durin_master_key_free(hex);
  }
  durin_master_key_free(k2);
  unsetenv("DURIN_MASTER_KEY");
  /* A named file that is missing: say how to make it there. */
  setenv("DURIN_MASTER_KEY_FILE", "/nonexistent/durin.key", 1);
  assert_int_equal(durin_master_key_load(&k2, &err), DURIN_ENOTFOUND);
  assert_non_null(strstr(err.msg, "keygen"));
  assert_non_null(strstr(err.msg, "/nonexistent/durin.key"));
  /* systemd's credentials directory, raw bytes, before the file. */
  setenv("CREDENTIALS_DIRECTORY", f->dir, 1);
  snprintf(path2, sizeof(path2), "%s/durin-master-key", f->dir);
  fd = open(path2, O_WRONLY | O_CREAT | O_EXCL, 0400);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "0123456789abcdef0123456789abcdef", 32), 32);
  close(fd);
  assert_int_equal(durin_master_key_load(&k2, NULL), 0);
  assert_non_null(strstr(k2->source, "durin-master-key"));
  durin_master_key_free(k2);
  unsetenv("CREDENTIALS_DIRECTORY");
  unsetenv("DURIN_MASTER_KEY_FILE");
  durin_master_key_free(k);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
    cmocka_unit_test_setup_teardown(test_wrong_key, setup, teardown),
    cmocka_unit_test_setup_teardown(test_corrupted, setup, teardown),
    cmocka_unit_test_setup_teardown(test_moved_between_rows, setup, teardown),
    cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
    cmocka_unit_test_setup_teardown(test_list_has_no_values, setup, teardown),
    cmocka_unit_test_setup_teardown(test_use_and_scope, setup, teardown),
    cmocka_unit_test_setup_teardown(test_names, setup, teardown),
    cmocka_unit_test_setup_teardown(test_key_sources, setup, teardown),
  };

  if (test_store_missing())
    return 77;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
