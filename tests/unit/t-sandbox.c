/* The sandbox plan: the helper's command line, the spec's sandbox section,
 * the compiled program. (The sandbox itself is tested end to end.) */
#include <fcntl.h>
#include <linux/filter.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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
  v = durin_sandbox_command(&sb, &box, "/ws", env, 30000, "make test");
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
  dd = find(v, "--");
  assert_true(dd > 0);
  assert_string_equal(v[dd + 1], "/bin/bash");
  assert_string_equal(v[dd + 2], "-c");
  assert_string_equal(v[dd + 3], "make test");
  assert_null(v[dd + 4]);
  durin_sandbox_argv_free(v);

  /* A template: the run's layers sit beside its workspace. */
  box.template = "/srv/tmpl";
  v = durin_sandbox_command(&sb, &box, "/d/runs/r1/workspace", NULL, 0, "x");
  assert_true(has(v, "--template", "/srv/tmpl"));
  assert_true(has(v, "--layers", "/d/runs/r1/layers"));
  assert_true(has(v, "--workspace", "/d/runs/r1/workspace"));
  durin_sandbox_argv_free(v);

  /* No spec section: the defaults, no network, no extra binds. */
  v = durin_sandbox_command(&sb, NULL, "/ws", NULL, 0, "true");
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
  char dir[] = "/tmp/t-sandbox-XXXXXX", store[300], data[300], link[300],
       other[300], missing[300], climb[300], inside[300];
  char *ro[1], *rw[1];
  struct durin_spec_sandbox box = { 0 };
  struct durin_sandbox sb = { 0 };
  struct durin_err err = { 0 };
  char **v;

  (void)state;
  assert_non_null(mkdtemp(dir));
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
  v = durin_sandbox_command(&sb, &box, "/ws", NULL, 0, "cat secret");
  assert_string_equal(v[0], "/x/durin-sandbox");
  assert_int_equal(find(v, "--ro"), -1);
  assert_int_equal(find(v, "--rw"), -1);
  assert_int_equal(find(v, "cat secret"), -1);
  assert_non_null(strstr(v[find(v, "durin-refused") + 1], "sandbox.ro[0]"));
  durin_sandbox_argv_free(v);

  unlink(link);
  rmdir(store);
  rmdir(other);
  rmdir(dir);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_command_line),
    cmocka_unit_test(test_spec_section),
    cmocka_unit_test(test_program),
    cmocka_unit_test(test_forbidden_binds),
  };

  return cmocka_run_group_tests_name("sandbox", tests, NULL, NULL);
}
