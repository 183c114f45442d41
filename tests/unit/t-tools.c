/* Built-in tools: workspace confinement, the file tools, and the process
 * runner's timeout, output cap, environment and cleanup (the worker's:
 * commands run through uvp_start on a libuv loop, as in a run). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "durin/sandbox.h"
#include "durin/tools.h"
#include "durin/util.h"
#include "test.h"
#include "worker/worker-int.h"

static char *ws, *outside;
static const char *cur_layer; /* the file tools' layer, or NULL */

static void put(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");

  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static int setup(void **state)
{
  char p[4200], q[4200];

  (void)state;
  ws = test_tmpdir();
  outside = test_tmpdir();
  snprintf(p, sizeof(p), "%s/secret", outside);
  put(p, "TOP SECRET\n");
  snprintf(p, sizeof(p), "%s/a.txt", ws);
  put(p, "hello world\nhello again\n");
  snprintf(p, sizeof(p), "%s/sub", ws);
  mkdir(p, 0755);
  snprintf(p, sizeof(p), "%s/sub/b.txt", ws);
  put(p, "bee\n");
  snprintf(p, sizeof(p), "%s/out", ws);
  assert_int_equal(symlink(outside, p), 0);
  snprintf(p, sizeof(p), "%s/out_file", ws);
  snprintf(q, sizeof(q), "%s/secret", outside);
  assert_int_equal(symlink(q, p), 0);
  snprintf(p, sizeof(p), "%s/in_link", ws);
  assert_int_equal(symlink("sub/b.txt", p), 0);
  return 0;
}

static int teardown(void **state)
{
  (void)state;
  test_rmrf(ws);
  test_rmrf(outside);
  free(ws);
  free(outside);
  return 0;
}

struct cmd_done {
  struct durin_tool_result *res;
  int done;
};

static void on_cmd_done(void *arg, struct durin_tool_result *res)
{
  struct cmd_done *d = arg;

  *d->res = *res;
  d->done = 1;
}

/* Runs command in the workspace on a loop of its own, as the worker runs
 * a tool's process; 0 once it has ended, -1 if it could not start. */
static int run_cmd(const char *command, const char *const *env,
                   int64_t timeout_ms, size_t cap, struct durin_tool_result *r)
{
  struct cmd_done d = { r, 0 };
  uv_loop_t loop;
  struct uvp *p;

  memset(r, 0, sizeof(*r));
  assert_int_equal(uv_loop_init(&loop), 0);
  p = uvp_start(&loop, NULL, ws, command, env, timeout_ms, cap, on_cmd_done,
                &d);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  return p && d.done ? 0 : -1;
}

static int run_tool(const char *name, const char *args, char **out)
{
  const struct durin_tool_def *def = durin_tool_find(name);
  struct durin_tool_ctx ctx = { .workspace = ws,
                                .idem_key = "k",
                                .timeout_ms = 5000,
                                .output_cap = 4096,
                                .box.layer = cur_layer };
  struct durin_tool_result r;
  struct durin_err err = { 0 };
  json_t *a;
  int ok;

  assert_non_null(def);
  if (durin_tool_args_parse(def, args, 1 << 20, &a, &err))
    fail_msg("args: %s", err.msg);
  if (def->command) {
    /* A command tool: the process as the worker runs it, then its report. */
    const char *cmd, *env[] = { "DURIN_IDEMPOTENCY_KEY=k", NULL };
    int64_t timeout;

    assert_int_equal(def->command(&ctx, a, &cmd, &timeout), 0);
    assert_int_equal(run_cmd(cmd, env, timeout, ctx.output_cap, &r), 0);
    def->report(&r, timeout);
  } else {
    durin_tool_exec(def, &ctx, a, &r);
  }
  json_decref(a);
  ok = r.ok;
  *out = r.output;
  r.output = NULL;
  durin_tool_result_clear(&r);
  return ok;
}

static void expect_refused(const char *name, const char *args)
{
  char *out;

  if (run_tool(name, args, &out))
    fail_msg("%s %s was allowed: %s", name, args, out);
  if (!strstr(out, "outside the workspace") && !strstr(out, "absolute"))
    fail_msg("%s %s: unexpected message: %s", name, args, out);
  free(out);
}

static void test_no_path_leaves_workspace(void **state)
{
  char p[4200];
  struct stat st;

  (void)state;
  expect_refused("read_file", "{\"path\":\"../secret\"}");
  expect_refused("read_file", "{\"path\":\"/etc/passwd\"}");
  expect_refused("read_file", "{\"path\":\"out/secret\"}");
  expect_refused("read_file", "{\"path\":\"out_file\"}");
  expect_refused("read_file", "{\"path\":\"sub/../../secret\"}");
  expect_refused("write_file", "{\"path\":\"out/evil\",\"content\":\"x\"}");
  expect_refused("write_file", "{\"path\":\"../evil\",\"content\":\"x\"}");
  expect_refused("edit_file", "{\"path\":\"out_file\",\"old_string\":\"TOP\","
                              "\"new_string\":\"x\"}");
  expect_refused("list_files", "{\"path\":\"out\"}");
  expect_refused("list_files", "{\"path\":\"..\"}");
  snprintf(p, sizeof(p), "%s/evil", outside);
  assert_int_equal(stat(p, &st), -1);
  {
    char *out, *secret = NULL;

    /* Writing over a symlink replaces the link, never its target. */
    assert_true(run_tool("write_file",
                         "{\"path\":\"out_file\",\"content\":\"x\"}", &out));
    free(out);
    snprintf(p, sizeof(p), "%s/secret", outside);
    assert_int_equal(durin_file_read(p, 100, &secret, NULL, NULL), 0);
    assert_string_equal(secret, "TOP SECRET\n");
    free(secret);
  }
  snprintf(p, sizeof(p), "%s/../evil", ws);
  assert_int_equal(stat(p, &st), -1);
}

static void test_file_tools(void **state)
{
  char *out;

  (void)state;
  assert_true(run_tool("read_file", "{\"path\":\"in_link\"}", &out));
  assert_string_equal(out, "bee\n");
  free(out);
  assert_true(run_tool(
      "write_file", "{\"path\":\"new/deep/c.txt\",\"content\":\"sea\"}", &out));
  free(out);
  assert_true(run_tool("read_file", "{\"path\":\"new/deep/c.txt\"}", &out));
  assert_string_equal(out, "sea");
  free(out);
  assert_false(run_tool("edit_file",
                        "{\"path\":\"a.txt\",\"old_string\":\"hello\","
                        "\"new_string\":\"bye\"}",
                        &out));
  assert_non_null(strstr(out, "occurs 2 times"));
  free(out);
  assert_false(run_tool("edit_file",
                        "{\"path\":\"a.txt\",\"old_string\":\"nope\","
                        "\"new_string\":\"bye\"}",
                        &out));
  assert_non_null(strstr(out, "not found"));
  free(out);
  assert_true(run_tool("edit_file",
                       "{\"path\":\"a.txt\",\"old_string\":\"hello world\","
                       "\"new_string\":\"bye world\"}",
                       &out));
  free(out);
  assert_true(run_tool("edit_file",
                       "{\"path\":\"a.txt\",\"old_string\":\"l\","
                       "\"new_string\":\"L\",\"replace_all\":true}",
                       &out));
  assert_non_null(strstr(out, "replaced 3"));
  free(out);
  assert_true(run_tool("read_file", "{\"path\":\"a.txt\"}", &out));
  assert_string_equal(out, "bye worLd\nheLLo again\n");
  free(out);
  assert_true(run_tool("list_files", "{}", &out));
  assert_non_null(strstr(out, "a.txt\nin_link@\nnew/\nnew/deep/\n"));
  assert_non_null(strstr(out, "sub/b.txt\n"));
  free(out);
  assert_false(run_tool("read_file", "{\"path\":\"missing\"}", &out));
  assert_non_null(strstr(out, "does not exist"));
  free(out);
}

static void read_is(const char *dir, const char *name, const char *want)
{
  char path[8400], *text = NULL;
  size_t len;

  snprintf(path, sizeof(path), "%s/%s", dir, name);
  assert_int_equal(durin_file_read(path, 1 << 20, &text, &len, NULL), 0);
  assert_string_equal(text, want);
  free(text);
}

/*
 * With a layer, write_file and edit_file leave the workspace as it was and
 * put their results where the paths resolve to beneath the layer's upper/
 * (a link inside the workspace followed); the same edit run again from the
 * unchanged workspace gives the same result (a call cut by a crash is run
 * again); the merge brings both into the workspace.
 */
static void test_file_tools_in_layer(void **state)
{
  char layer[2048], p[8400], *out;
  struct durin_err err = { 0 };
  struct stat st;
  int i;

  (void)state;
  snprintf(p, sizeof(p), "%s/subl", ws);
  assert_int_equal(symlink("sub", p), 0);
  snprintf(layer, sizeof(layer), "%s/layer", outside);
  cur_layer = layer;
  for (i = 0; i < 2; i++) {
    test_rmrf(layer);
    snprintf(p, sizeof(p), "%s/upper", layer);
    assert_int_equal(durin_mkdirs(p, &err), 0);
    assert_true(run_tool("write_file",
                         "{\"path\":\"new/deep/c.txt\",\"content\":\"sea\"}",
                         &out));
    free(out);
    assert_true(run_tool("edit_file",
                         "{\"path\":\"subl/b.txt\",\"old_string\":\"bee\","
                         "\"new_string\":\"BEE\"}",
                         &out));
    assert_string_equal(out, "replaced 1 occurrence in subl/b.txt");
    free(out);
    assert_false(run_tool("write_file",
                          "{\"path\":\"out/x\",\"content\":\"no\"}", &out));
    free(out);
    /* Parts that do not exist yet are made by name beneath upper/: ".."
     * there would climb out of the layer. */
    assert_false(run_tool("write_file",
                          "{\"path\":\"nope/../../../../../../../../../tmp/"
                          "durin-t-tools-escape\",\"content\":\"no\"}",
                          &out));
    free(out);
    assert_false(run_tool(
        "write_file",
        "{\"path\":\"/tmp/durin-t-tools-escape\",\"content\":\"no\"}", &out));
    free(out);
    assert_false(run_tool("write_file",
                          "{\"path\":\"sub/../../durin-t-tools-escape\","
                          "\"content\":\"no\"}",
                          &out));
    free(out);
    /* The workspace is untouched until the merge. */
    read_is(ws, "sub/b.txt", "bee\n");
    snprintf(p, sizeof(p), "%s/new", ws);
    assert_int_equal(stat(p, &st), -1);
  }
  snprintf(p, sizeof(p), "%s/upper", layer);
  read_is(p, "sub/b.txt", "BEE\n");
  read_is(p, "new/deep/c.txt", "sea");
  cur_layer = NULL;
  assert_int_equal(durin_layer_merge(layer, ws, 0, &err), 0);
  read_is(ws, "sub/b.txt", "BEE\n");
  read_is(ws, "new/deep/c.txt", "sea");
  snprintf(p, sizeof(p), "%s/subl", ws);
  assert_int_equal(lstat(p, &st), 0);
  assert_true(S_ISLNK(st.st_mode));
  snprintf(p, sizeof(p), "%s/x", outside);
  assert_int_equal(stat(p, &st), -1);
  assert_int_equal(stat("/tmp/durin-t-tools-escape", &st), -1);
  snprintf(p, sizeof(p), "%s/durin-t-tools-escape", outside);
  assert_int_equal(stat(p, &st), -1);
}

/* A FIFO in the workspace is refused at once, not waited on (a file tool
 * that opened it would hold a pool thread until a writer came). */
static void test_file_tools_and_fifo(void **state)
{
  char p[4200], *out;
  int i;

  (void)state;
  snprintf(p, sizeof(p), "%s/pipe", ws);
  assert_int_equal(mkfifo(p, 0644), 0);
  for (i = 0; i < 2; i++) {
    cur_layer = NULL;
    assert_false(run_tool("read_file", "{\"path\":\"pipe\"}", &out));
    free(out);
    assert_false(run_tool("edit_file",
                          "{\"path\":\"pipe\",\"old_string\":\"a\","
                          "\"new_string\":\"b\"}",
                          &out));
    free(out);
  }
  /* write_file replaces it with a file, as it replaces a link. */
  assert_true(
      run_tool("write_file", "{\"path\":\"pipe\",\"content\":\"x\"}", &out));
  free(out);
}

static void test_bash_basics(void **state)
{
  char *out;

  (void)state;
  assert_true(run_tool("bash", "{\"command\":\"echo hi; pwd\"}", &out));
  assert_non_null(strstr(out, "exit code 0\nhi\n"));
  assert_non_null(strstr(out, ws));
  free(out);
  assert_false(run_tool("bash", "{\"command\":\"exit 3\"}", &out));
  assert_non_null(strstr(out, "exit code 3"));
  free(out);
  assert_true(
      run_tool("bash", "{\"command\":\"echo $DURIN_IDEMPOTENCY_KEY\"}", &out));
  assert_non_null(strstr(out, "\nk\n"));
  free(out);
}

static void test_binary_output_becomes_text(void **state)
{
  char *out, p[4200];
  json_t *j;
  FILE *f;

  (void)state;
  assert_false(run_tool(
      "bash", "{\"command\":\"printf 'a\\\\377b\\\\000c'; exit 1\"}", &out));
  j = json_string(out);
  assert_non_null(j);
  json_decref(j);
  assert_non_null(strstr(out, "a?b?c"));
  free(out);
  snprintf(p, sizeof(p), "%s/bin.dat", ws);
  f = fopen(p, "wb");
  fwrite("\x00\x01\xff\xfeok", 1, 6, f);
  fclose(f);
  assert_true(run_tool("read_file", "{\"path\":\"bin.dat\"}", &out));
  assert_string_equal(out, "?\x01??ok");
  free(out);
}

/* Gone, or a zombie waiting for an init that may not reap: not running. */
static int alive(long pid)
{
  char p[64], *stat = NULL, *rp;
  int r;

  snprintf(p, sizeof(p), "/proc/%ld/stat", pid);
  if (durin_file_read(p, 4096, &stat, NULL, NULL))
    return 0;
  rp = strrchr(stat, ')');
  r = rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
  free(stat);
  return r;
}

/* The process whose pid the command wrote to pidfile is not running. */
static void assert_background_gone(const char *pidfile)
{
  char *pidtext = NULL;
  long pid;

  assert_int_equal(durin_file_read(pidfile, 100, &pidtext, NULL, NULL), 0);
  pid = strtol(pidtext, NULL, 10);
  free(pidtext);
  usleep(100 * 1000);
  assert_false(alive(pid));
}

static void test_proc_timeout_kills_tree(void **state)
{
  struct durin_tool_result r;
  char cmd[4400], p[4200];
  int64_t t0 = durin_mono_ms();

  (void)state;
  snprintf(p, sizeof(p), "%s/bg.pid", ws);
  snprintf(cmd, sizeof(cmd), "sleep 60 & echo $! > %s; sleep 60", p);
  assert_int_equal(run_cmd(cmd, NULL, 300, 1024, &r), 0);
  assert_true(r.timed_out);
  assert_false(r.ok);
  assert_true(durin_mono_ms() - t0 < 5000);
  durin_tool_result_clear(&r);
  assert_background_gone(p);
}

static void test_proc_nothing_outlives_call(void **state)
{
  struct durin_tool_result r;
  char cmd[4400], p[4200];

  (void)state;
  snprintf(p, sizeof(p), "%s/bg2.pid", ws);
  snprintf(cmd, sizeof(cmd),
           "sleep 60 >/dev/null 2>&1 & echo $! > %s; "
           "echo done",
           p);
  assert_int_equal(run_cmd(cmd, NULL, 5000, 1024, &r), 0);
  assert_true(r.ok);
  durin_tool_result_clear(&r);
  assert_background_gone(p);
}

/* A command that closes its output before it exits (as coreutils do in an
 * atexit handler) is waited for, not killed at end of output. */
static void test_proc_waits_after_eof(void **state)
{
  struct durin_tool_result r;

  (void)state;
  assert_int_equal(run_cmd("echo out; exec >&- 2>&-; sleep 0.3; "
                           "exit 7",
                           NULL, 5000, 1024, &r),
                   0);
  assert_int_equal(r.exit_code, 7);
  assert_false(r.timed_out);
  assert_string_equal(r.output, "out\n");
  durin_tool_result_clear(&r);
}

static void test_proc_cap_env_fds(void **state)
{
  struct durin_tool_result r;
  const char *extra[] = { "EXTRA=1", NULL };
  /* An inherited descriptor, well above the standard three. */
  int fd0 = open("/dev/null", O_RDONLY), fd = fcntl(fd0, F_DUPFD, 10);

  (void)state;
  close(fd0);
  assert_true(fd >= 10);
  assert_int_equal(run_cmd("yes | head -c 100000", NULL, 5000, 1000, &r), 0);
  assert_true(r.truncated);
  assert_true(strlen(r.output) < 1200);
  assert_non_null(strstr(r.output, "output truncated"));
  durin_tool_result_clear(&r);
  setenv("DURIN_TEST_SECRET", "s3cret", 1);
  assert_int_equal(run_cmd("env; ls /proc/self/fd", extra, 5000, 65536, &r), 0);
  assert_null(strstr(r.output, "s3cret"));
  assert_non_null(strstr(r.output, "EXTRA=1"));
  assert_non_null(strstr(r.output, "PATH=/usr/local/bin:/usr/bin:/bin"));
  /* Only 0, 1, 2 and the fd ls opens itself. */
  {
    char needle[16];

    snprintf(needle, sizeof(needle), "\n%d\n", fd);
    if (fd != 3)
      assert_null(strstr(r.output, needle));
  }
  durin_tool_result_clear(&r);
  close(fd);
}

static void test_schema(void **state)
{
  json_t *s = durin_tool_schema(durin_tool_find("edit_file"));
  char *t = json_dumps(s, JSON_COMPACT);

  (void)state;
  assert_non_null(strstr(t, "\"required\":[\"path\",\"old_string\","
                            "\"new_string\"]"));
  assert_non_null(strstr(t, "\"replace_all\":{\"type\":\"boolean\""));
  free(t);
  json_decref(s);
  assert_null(durin_tool_find("nope"));
  assert_non_null(strstr(durin_tool_names(), "bash"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_no_path_leaves_workspace, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_file_tools, setup, teardown),
    cmocka_unit_test_setup_teardown(test_file_tools_in_layer, setup, teardown),
    cmocka_unit_test_setup_teardown(test_file_tools_and_fifo, setup, teardown),
    cmocka_unit_test_setup_teardown(test_bash_basics, setup, teardown),
    cmocka_unit_test_setup_teardown(test_binary_output_becomes_text, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_proc_timeout_kills_tree, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_proc_nothing_outlives_call, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_proc_waits_after_eof, setup, teardown),
    cmocka_unit_test_setup_teardown(test_proc_cap_env_fds, setup, teardown),
    cmocka_unit_test(test_schema),
  };

  return cmocka_run_group_tests_name("tools", tests, NULL, NULL);
}
