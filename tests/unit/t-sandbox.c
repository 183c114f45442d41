/* The sandbox plan: the helper's command line, the spec's sandbox section,
 * the compiled program. (The sandbox itself is tested end to end.) */
#include <fcntl.h>
#include <linux/filter.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "durin/sandbox.h"
#include "test.h"

/* Index of the first s in v, or -1. */
static int find(char **v, const char *s)
{
  int i;

  for (i = 0; v[i]; i++)
    if (!strcmp(v[i], s))
      return i;
  return -1;
}

/* Whether v has opt immediately followed by val, before "--". */
static int has(char **v, const char *opt, const char *val)
{
  int i, end = find(v, "--");

  for (i = 0; v[i] && v[i + 1] && i < end; i++)
    if (!strcmp(v[i], opt) && !strcmp(v[i + 1], val))
      return 1;
  return 0;
}

static void test_command_line(void **state)
{
  char *ro[] = { "/opt/ro" }, *rw[] = { "/var/cache/x" };
  char *hosts[] = { "api.example.com", "*.pypi.org" };
  const char *env[] = { "A=1", NULL };
  struct durin_spec_sandbox box = { 0 };
  struct durin_sandbox sb = { 0 };
  char **v;
  int dd;

  (void)state;
  snprintf(sb.helper, sizeof(sb.helper), "/x/durin-sandbox");
  sb.seccomp_fd = 7;
  sb.defaults.mem_mb = 4096;
  sb.defaults.pids = 512;
  box.ro = ro;
  box.nro = 1;
  box.rw = rw;
  box.nrw = 1;
  box.pids = 64;
  box.net_proxy = 1;
  box.allow_hosts = hosts;
  box.nallow = 2;
  v = durin_sandbox_command(&sb, &box, "/ws", NULL, env, 30000, 0, "make test");
  assert_string_equal(v[0], "/x/durin-sandbox");
  assert_true(has(v, "--workspace", "/ws"));
  assert_true(has(v, "--ro", "/opt/ro"));
  assert_true(has(v, "--rw", "/var/cache/x"));
  assert_true(has(v, "--setenv", "A=1"));
  assert_true(has(v, "--mem", "4096"));
  assert_true(has(v, "--pids", "64")); /* the spec's, over the default */
  assert_true(has(v, "--net", "proxy"));
  assert_true(has(v, "--allow-host", "api.example.com"));
  assert_true(has(v, "--allow-host", "*.pypi.org"));
  assert_true(has(v, "--timeout", "35")); /* a backstop after the caller's */
  /* The program is read from the descriptor the child puts it at. */
  assert_true(has(v, "--seccomp-fd", "3"));
  /* Its status line (the exec's time) comes on the next one. */
  assert_true(has(v, "--status-fd", "4"));
  dd = find(v, "--");
  assert_true(dd > 0);
  assert_string_equal(v[dd + 1], "/bin/bash");
  assert_string_equal(v[dd + 2], "-c");
  assert_string_equal(v[dd + 3], "make test");
  assert_null(v[dd + 4]);
  durin_sandbox_argv_free(v);

  /* A template: the run's layers sit beside its workspace. */
  box.template = "/srv/tmpl";
  v = durin_sandbox_command(&sb, &box, "/d/runs/r1/workspace", NULL, NULL, 0, 0,
                            "x");
  assert_true(has(v, "--lower", "/srv/tmpl"));
  assert_true(has(v, "--layers", "/d/runs/r1/layers"));
  assert_true(has(v, "--workspace", "/d/runs/r1/workspace"));
  durin_sandbox_argv_free(v);

  /* A call's own layer over a template run: the run's files, then the
   * template, under the call's upper/. */
  v = durin_sandbox_command(&sb, &box, "/d/runs/r1/workspace",
                            "/d/runs/r1/calls/s3-c0/e2", NULL, 0, 0, "x");
  dd = find(v, "--lower");
  assert_true(dd > 0);
  assert_string_equal(v[dd + 1], "/d/runs/r1/layers/upper");
  assert_string_equal(v[dd + 2], "--lower");
  assert_string_equal(v[dd + 3], "/srv/tmpl");
  assert_true(has(v, "--layers", "/d/runs/r1/calls/s3-c0/e2"));
  durin_sandbox_argv_free(v);

  /* A call's layer over a plain workspace. */
  box.template = NULL;
  v = durin_sandbox_command(&sb, &box, "/ws", "/calls/s1-c0/e1", NULL, 0, 0,
                            "x");
  assert_true(has(v, "--lower", "/ws"));
  assert_true(has(v, "--layers", "/calls/s1-c0/e1"));
  durin_sandbox_argv_free(v);

  /* No spec section: the defaults, no network, no extra binds. */
  v = durin_sandbox_command(&sb, NULL, "/ws", NULL, NULL, 0, 0, "true");
  assert_int_equal(find(v, "--net"), -1);
  assert_int_equal(find(v, "--rw"), -1);
  assert_int_equal(find(v, "--timeout"), -1);
  assert_true(has(v, "--pids", "512"));
  durin_sandbox_argv_free(v);
}

static void test_spec_section(void **state)
{
  struct durin_spec s;
  struct durin_err err = { 0 };
  char *dump;

  (void)state;
  assert_int_equal(
      durin_spec_parse("{\"goal\": \"g\", \"workspace\": \"/tmp\", "
                       "\"model\": {\"provider\": \"script\", \"turns\": []}, "
                       "\"sandbox\": {\"ro\": [\"/usr\"], \"rw\": [\"/tmp\"], "
                       "\"memory_mb\": 512, \"network\": \"proxy\", "
                       "\"allow_hosts\": [\"a.example\"]}}",
                       NULL, &s, &err),
      0);
  assert_int_equal(s.sandbox.nro, 1);
  assert_int_equal(s.sandbox.nrw, 1);
  assert_int_equal(s.sandbox.memory_mb, 512);
  assert_int_equal(s.sandbox.net_proxy, 1);
  assert_string_equal(s.sandbox.allow_hosts[0], "a.example");
  /* It survives the round trip through the stored spec. */
  dump = durin_spec_dump(&s);
  durin_spec_clear(&s);
  assert_int_equal(durin_spec_parse(dump, NULL, &s, &err), 0);
  free(dump);
  assert_int_equal(s.sandbox.nallow, 1);
  assert_string_equal(s.sandbox.rw[0], "/tmp");
  durin_spec_clear(&s);

  assert_int_equal(
      durin_spec_parse("{\"goal\": \"g\", \"workspace\": \"/tmp\", "
                       "\"model\": {\"provider\": \"script\", "
                       "\"turns\": []}, \"sandbox\": {\"mem\": 1}}",
                       NULL, &s, &err),
      DURIN_ESPEC);
  assert_non_null(strstr(err.msg, "sandbox.mem"));
}

static void put(const char *dir, const char *name, const char *text)
{
  char path[8400];
  FILE *f;

  snprintf(path, sizeof(path), "%s/%s", dir, name);
  f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static int there(const char *dir, const char *name)
{
  char path[8400];
  struct stat st;

  snprintf(path, sizeof(path), "%s/%s", dir, name);
  return lstat(path, &st) == 0;
}

static void text_is(const char *dir, const char *name, const char *want)
{
  char path[8400], buf[256] = "";
  FILE *f;

  snprintf(path, sizeof(path), "%s/%s", dir, name);
  f = fopen(path, "r");
  assert_non_null(f);
  assert_non_null(fgets(buf, sizeof(buf), f));
  fclose(f);
  assert_string_equal(buf, want);
}

/*
 * A layer as overlayfs leaves it (a changed file, a new one, a whiteout,
 * an opaque directory replacing one, a file replacing a directory, and a
 * link the agent left in the workspace where the layer has a directory)
 * is merged into the workspace; a merge cut after some of it moved and
 * run again ends the same; the change set names what it does.
 */
static void test_layer_merge(void **state)
{
  char root[4096], ws[4200], layer[4200], up[4300], path[4400];
  struct durin_err err = { 0 };
  json_t *ch;
  int i;

  (void)state;
  assert_int_equal(durin_mktmpdir("t-layer", root, sizeof(root)), 0);
  snprintf(ws, sizeof(ws), "%s/workspace", root);
  snprintf(path, sizeof(path), "%s/sub", ws);
  assert_int_equal(durin_mkdirs(path, &err), 0);
  snprintf(path, sizeof(path), "%s/dir", ws);
  assert_int_equal(durin_mkdirs(path, &err), 0);
  snprintf(path, sizeof(path), "%s/escape", ws);
  assert_int_equal(symlink(root, path), 0);
  put(ws, "a", "old a\n");
  put(ws, "gone", "bye\n");
  put(ws, "sub/kept-out", "hidden by the opaque directory\n");
  put(ws, "dir/x", "x\n");

  assert_int_equal(durin_layer_begin(ws, 3, 1, 7, layer, sizeof(layer), &err),
                   0);
  assert_string_equal(durin_layer_name(layer), "s3-c1/e7");
  snprintf(up, sizeof(up), "%s/upper", layer);
  put(up, "a", "new a\n");
  put(up, "b", "new b\n");
  put(up, "dir", "a file now\n");
  snprintf(path, sizeof(path), "%s/gone", up);
  if (mknod(path, S_IFCHR | 0000, makedev(0, 0)))
    skip(); /* whiteouts need CAP_MKNOD, as overlayfs has */
  snprintf(path, sizeof(path), "%s/sub", up);
  assert_int_equal(mkdir(path, 0755), 0);
  assert_int_equal(setxattr(path, "user.overlay.opaque", "y", 1, 0), 0);
  put(up, "sub/fresh", "fresh\n");
  snprintf(path, sizeof(path), "%s/escape", up);
  assert_int_equal(mkdir(path, 0755), 0);
  put(up, "escape/planted", "must stay in the workspace\n");

  ch = durin_layer_changes(layer, ws, NULL);
  assert_string_equal(json_string_value(json_object_get(ch, "layer")),
                      "s3-c1/e7");
  assert_int_equal(json_integer_value(json_object_get(ch, "files_deleted")), 1);
  assert_int_equal(json_integer_value(json_object_get(ch, "files_changed")), 2);
  assert_int_equal(json_integer_value(json_object_get(ch, "files_added")), 3);
  json_decref(ch);

  /* A first merge cut short: one file moved, as a crash would leave it. */
  snprintf(path, sizeof(path), "%s/a", up);
  snprintf(up, sizeof(up), "%s/a", ws);
  assert_int_equal(rename(path, up), 0);
  for (i = 0; i < 2; i++)
    assert_int_equal(durin_layer_merge(layer, ws, 0, &err), 0);

  text_is(ws, "a", "new a\n");
  text_is(ws, "b", "new b\n");
  text_is(ws, "dir", "a file now\n");
  text_is(ws, "sub/fresh", "fresh\n");
  text_is(ws, "escape/planted", "must stay in the workspace\n");
  assert_false(there(ws, "gone"));
  assert_false(there(ws, "sub/kept-out"));
  assert_false(there(root, "planted"));
  durin_tree_remove(root);
}

/*
 * An agent can nest directories as deep as it likes: the change set says
 * so (its call then keeps nothing), and removing the tree neither
 * recurses on the stack nor holds a descriptor per level.
 */
static void test_layer_too_deep(void **state)
{
  char root[4096], ws[4200], layer[4200], up[4300];
  struct durin_err err = { 0 };
  json_t *ch;
  int i, fd;

  (void)state;
  assert_int_equal(durin_mktmpdir("t-layer-deep", root, sizeof(root)), 0);
  snprintf(ws, sizeof(ws), "%s/workspace", root);
  assert_int_equal(durin_mkdirs(ws, &err), 0);
  assert_int_equal(durin_layer_begin(ws, 1, 0, 1, layer, sizeof(layer), &err),
                   0);
  snprintf(up, sizeof(up), "%s/upper", layer);
  fd = open(up, O_RDONLY | O_DIRECTORY);
  for (i = 0; fd >= 0 && i < 3000; i++) {
    int next;

    assert_int_equal(mkdirat(fd, "d", 0755), 0);
    next = openat(fd, "d", O_RDONLY | O_DIRECTORY);
    close(fd);
    fd = next;
  }
  assert_true(fd >= 0);
  close(fd);
  ch = durin_layer_changes(layer, ws, NULL);
  assert_true(json_is_true(json_object_get(ch, "too_deep")));
  json_decref(ch);
  assert_int_equal(durin_layer_merge(layer, ws, 0, &err), DURIN_EIO);
  assert_non_null(strstr(err.msg, "too deep"));
  assert_int_equal(durin_tree_remove(root), 0);
  assert_false(there(root, "."));
}

/* A template run's files are an upper layer: a directory merged where
 * the run had deleted one (a whiteout) hides the template's (opaque). */
static void test_layer_merge_over_whiteout(void **state)
{
  char root[4096], ws[4200], up[4300], target[4300], layer[4200], v[4];
  char path[8400];
  struct durin_err err = { 0 };

  (void)state;
  assert_int_equal(durin_mktmpdir("t-layer-wh", root, sizeof(root)), 0);
  snprintf(ws, sizeof(ws), "%s/workspace", root);
  snprintf(target, sizeof(target), "%s/layers/upper", root);
  assert_int_equal(durin_mkdirs(ws, &err), 0);
  assert_int_equal(durin_mkdirs(target, &err), 0);
  snprintf(path, sizeof(path), "%s/x", target);
  if (mknod(path, S_IFCHR | 0000, makedev(0, 0)))
    skip();
  assert_int_equal(durin_layer_begin(ws, 1, 0, 1, layer, sizeof(layer), &err),
                   0);
  snprintf(up, sizeof(up), "%s/upper/x", layer);
  assert_int_equal(mkdir(up, 0755), 0);
  put(up, "new.txt", "new\n");
  assert_int_equal(durin_layer_merge(layer, target, 1, &err), 0);
  text_is(target, "x/new.txt", "new\n");
  snprintf(path, sizeof(path), "%s/x", target);
  assert_int_equal(getxattr(path, "user.overlay.opaque", v, sizeof(v)), 1);
  assert_int_equal(v[0], 'y');
  durin_tree_remove(root);
}

static void test_program(void **state)
{
  struct stat st;
  int fd = -1;
  struct durin_err err = { 0 };

  (void)state;
  assert_int_equal(durin_sandbox_seccomp(&fd, &err), 0);
  assert_int_equal(fstat(fd, &st), 0);
  assert_true(st.st_size > 0);
  assert_int_equal(st.st_size % (off_t)sizeof(struct sock_filter), 0);
  /* Sealed: nobody can change it between here and the helper. */
  assert_true(write(fd, "x", 1) < 0);
  close(fd);
}

/* Binds that expose the store or the data directory are refused (issue
 * 13, defect 6): equal, inside, containing, through a symlink, and a
 * missing tail that climbs with ".."; the command then runs without the
 * spec's binds and only says why. */
static void test_forbidden_binds(void **state)
{
  char dir[200], store[300], data[300], link[300], other[300], missing[300],
      climb[300], inside[300];
  char *ro[1], *rw[1];
  struct durin_spec_sandbox box = { 0 };
  struct durin_sandbox sb = { 0 };
  struct durin_err err = { 0 };
  char **v;

  (void)state;
  assert_int_equal(durin_mktmpdir("t-sandbox", dir, sizeof(dir)), 0);
  snprintf(store, sizeof(store), "%s/store", dir);
  snprintf(data, sizeof(data), "%s/data", dir);
  snprintf(link, sizeof(link), "%s/link", dir);
  snprintf(other, sizeof(other), "%s/other", dir);
  snprintf(missing, sizeof(missing), "%s/data/not/yet", dir);
  snprintf(climb, sizeof(climb), "%s/other/no/../../store", dir);
  snprintf(inside, sizeof(inside), "%s/store/runs", dir);
  assert_int_equal(mkdir(store, 0700), 0);
  assert_int_equal(mkdir(other, 0700), 0);
  assert_int_equal(symlink(store, link), 0);
  snprintf(sb.helper, sizeof(sb.helper), "/x/durin-sandbox");
  assert_int_equal(
      durin_sandbox_forbid(&sb, store, "the store's directory", &err), 0);
  /* The data directory need not exist yet. */
  assert_int_equal(durin_sandbox_forbid(&sb, data, "the data directory", &err),
                   0);
  box.ro = ro;
  box.rw = rw;
  box.nro = box.nrw = 1;

  ro[0] = other;
  rw[0] = other;
  assert_int_equal(durin_sandbox_check(&sb, &box, &err), 0);

  rw[0] = store;
  assert_int_equal(durin_sandbox_check(&sb, &box, &err), DURIN_ESPEC);
  assert_non_null(strstr(err.msg, "field 'sandbox.rw[0]'"));
  assert_non_null(strstr(err.msg, "is the store's directory"));
  rw[0] = inside;
  assert_int_equal(durin_sandbox_check(&sb, &box, &err), DURIN_ESPEC);
  assert_non_null(strstr(err.msg, "lies inside"));
  rw[0] = other;
  ro[0] = dir;
  assert_int_equal(durin_sandbox_check(&sb, &box, &err), DURIN_ESPEC);
  assert_non_null(strstr(err.msg, "field 'sandbox.ro[0]'"));
  assert_non_null(strstr(err.msg, "contains"));
  ro[0] = link;
  assert_int_equal(durin_sandbox_check(&sb, &box, &err), DURIN_ESPEC);
  ro[0] = missing;
  assert_int_equal(durin_sandbox_check(&sb, &box, &err), DURIN_ESPEC);
  assert_non_null(strstr(err.msg, "the data directory"));
  ro[0] = climb;
  assert_int_equal(durin_sandbox_check(&sb, &box, &err), DURIN_ESPEC);
  assert_non_null(strstr(err.msg, "cannot be resolved"));

  /* The command keeps the sandbox, drops the binds, and says why. */
  ro[0] = link;
  v = durin_sandbox_command(&sb, &box, "/ws", NULL, NULL, 0, 0, "cat secret");
  assert_string_equal(v[0], "/x/durin-sandbox");
  assert_int_equal(find(v, "--ro"), -1);
  assert_int_equal(find(v, "--rw"), -1);
  assert_int_equal(find(v, "cat secret"), -1);
  assert_non_null(strstr(v[find(v, "durin-refused") + 1], "sandbox.ro[0]"));
  durin_sandbox_argv_free(v);

  assert_int_equal(durin_tree_remove(dir), 0);
}

/* The grants' memfd: the records that apply to the command's tool, the
 * format applied, sealed; the helper's flag in its argv, no value there. */
static void test_grants_memfd(void **state)
{
  static const unsigned char tok[] = "s3cr3t-token";
  struct durin_sandbox_grant g[] = {
    { "GH", "api.github.com", "Authorization", "Bearer {}!", NULL, NULL, tok,
      12 },
    { "K", NULL, NULL, NULL, "MY_KEY", "bash", tok, 12 },
  };
  struct durin_sandbox sb = { .helper = "/x/durin-sandbox", .seccomp_fd = -1 };
  char buf[512];
  const char *want_h = "Bearer s3cr3t-token!";
  ssize_t n;
  int fd, i;
  char **v;

  (void)state;
  assert_int_equal(durin_sandbox_grants_memfd(g, 2, "bash", &fd), 0);
  assert_true(fd >= 0);
  n = pread(fd, buf, sizeof(buf), 0);
  assert_true(n > 15);
  assert_memory_equal(buf, "durin-grants-1\n", 15);
  assert_int_equal(buf[15], 'H');
  assert_non_null(memmem(buf, (size_t)n, want_h, strlen(want_h)));
  assert_non_null(memmem(buf, (size_t)n, "MY_KEY", 6));
  /* Sealed: nobody writes it after the worker did. */
  assert_true(write(fd, "x", 1) < 0);
  assert_int_equal(fcntl(fd, F_GET_SEALS) & F_SEAL_WRITE, F_SEAL_WRITE);
  close(fd);
  /* A check (no tool): the host grant only. */
  assert_int_equal(durin_sandbox_grants_memfd(g, 2, NULL, &fd), 0);
  n = pread(fd, buf, sizeof(buf), 0);
  assert_null(memmem(buf, (size_t)n, "MY_KEY", 6));
  close(fd);
  /* Nothing applies: no memfd at all. */
  assert_int_equal(durin_sandbox_grants_memfd(g + 1, 1, NULL, &fd), 0);
  assert_int_equal(fd, -1);
  v = durin_sandbox_command(&sb, NULL, "/ws", NULL, NULL, 0, 1, "true");
  assert_true(has(v, "--grants-fd", "5"));
  for (i = 0; v[i]; i++)
    assert_null(strstr(v[i], "s3cr3t"));
  durin_sandbox_argv_free(v);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_command_line),
    cmocka_unit_test(test_spec_section),
    cmocka_unit_test(test_program),
    cmocka_unit_test(test_layer_merge),
    cmocka_unit_test(test_layer_too_deep),
    cmocka_unit_test(test_layer_merge_over_whiteout),
    cmocka_unit_test(test_forbidden_binds),
    cmocka_unit_test(test_grants_memfd),
  };

  return cmocka_run_group_tests_name("sandbox", tests, NULL, NULL);
}
