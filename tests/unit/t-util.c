/* Utilities: the bounded buffer, errors, fault points, file trees, the
 * metrics registry's OTLP rendering. */
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "durin/metrics.h"
#include "durin/util.h"
#include "test.h"

static void test_buf_cap(void **state)
{
  struct durin_buf b;
  char *p;
  size_t n;

  (void)state;
  durin_buf_init(&b, 10);
  assert_string_equal(b.buf, "");
  assert_int_equal(durin_buf_adds(&b, "hello"), 0);
  assert_int_equal(durin_buf_addf(&b, "%d", 1234), 0);
  assert_int_equal(durin_buf_adds(&b, "xy"), DURIN_ETOOBIG);
  /* A refused append leaves the contents as they were. */
  assert_string_equal(b.buf, "hello1234");
  assert_int_equal(durin_buf_adds(&b, "z"), 0);
  p = durin_buf_detach(&b, &n);
  assert_string_equal(p, "hello1234z");
  assert_int_equal(n, 10);
  free(p);
  assert_int_equal(b.len, 0);
  durin_buf_release(&b);
}

static void test_errors(void **state)
{
  struct durin_err err = { 0 };

  (void)state;
  assert_string_equal(durin_err_name(DURIN_EFENCED), "EFENCED");
  assert_non_null(strstr(durin_strerror(DURIN_EFENCED), "lease"));
  assert_string_equal(durin_strerror(12345), "unknown error");
  assert_int_equal(durin_err_set(&err, DURIN_EIO, "cannot %s", "x"), DURIN_EIO);
  durin_err_prefix(&err, "store '%s'", "s");
  assert_string_equal(err.msg, "store 's': cannot x");
  assert_int_equal(durin_err_set(NULL, DURIN_EIO, "x"), DURIN_EIO);
}

static int fired;
static void hook(const char *point)
{
  (void)point;
  fired++;
}

static void test_fault_points(void **state)
{
  struct durin_err err = { 0 };

  (void)state;
  assert_int_equal(durin_fault_configure("nowhere", hook, &err), DURIN_EINVAL);
  assert_int_equal(durin_fault_configure("tool_exit:0", hook, &err),
                   DURIN_EINVAL);
  assert_int_equal(durin_fault_configure("tool_exit:2", hook, &err), 0);
  durin_fault_point("tool_exit");
  durin_fault_point("after_commit");
  assert_int_equal(fired, 0);
  durin_fault_point("tool_exit");
  assert_int_equal(fired, 1);
  durin_fault_point("tool_exit");
  assert_int_equal(fired, 1);
  assert_int_equal(durin_fault_configure(NULL, hook, &err), 0);
}

static void test_tree_copy(void **state)
{
  char *d = test_tmpdir(), p[4200], q[4200], *text = NULL;
  struct stat st;
  FILE *f;

  (void)state;
  snprintf(p, sizeof(p), "%s/src/a/b", d);
  assert_int_equal(durin_mkdirs(p, NULL), 0);
  snprintf(p, sizeof(p), "%s/src/a/b/f.sh", d);
  f = fopen(p, "w");
  fputs("echo hi\n", f);
  fclose(f);
  chmod(p, 0755);
  snprintf(p, sizeof(p), "%s/src/link", d);
  assert_int_equal(symlink("a/b/f.sh", p), 0);
  snprintf(p, sizeof(p), "%s/src", d);
  snprintf(q, sizeof(q), "%s/dst", d);
  assert_int_equal(durin_tree_copy(p, q, NULL), 0);
  snprintf(q, sizeof(q), "%s/dst/a/b/f.sh", d);
  assert_int_equal(durin_file_read(q, 100, &text, NULL, NULL), 0);
  assert_string_equal(text, "echo hi\n");
  free(text);
  assert_int_equal(stat(q, &st), 0);
  assert_true(st.st_mode & 0100);
  snprintf(q, sizeof(q), "%s/dst/link", d);
  assert_int_equal(lstat(q, &st), 0);
  assert_true(S_ISLNK(st.st_mode));
  assert_int_equal(durin_file_read(q, 3, &text, NULL, NULL), DURIN_ETOOBIG);
  snprintf(q, sizeof(q), "%s/dst", d);
  assert_int_equal(durin_tree_remove(q), 0);
  assert_int_equal(lstat(q, &st), -1);
  test_rmrf(d);
  free(d);
}

static void test_misc(void **state)
{
  char id[32], id2[32], h[65], t[40];

  (void)state;
  assert_int_equal(durin_run_id_new(id), 0);
  assert_int_equal(durin_run_id_new(id2), 0);
  assert_string_not_equal(id, id2);
  assert_int_equal(strlen(id), 21);
  durin_sha256_hex("abc", 3, h);
  assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb4"
                         "10ff61f20015ad");
  assert_int_equal(durin_edit_distance("stpes", "steps"), 2);
  assert_int_equal(durin_edit_distance("budget", "budget"), 0);
  durin_fmt_duration(61000, t, sizeof(t));
  assert_string_equal(t, "1m01s");
  durin_fmt_time(0, t, sizeof(t));
  assert_string_equal(t, "1970-01-01T00:00:00.000Z");
}

/* The metric named name in an OTLP request, or NULL. */
static json_t *otlp_metric(json_t *req, const char *name)
{
  json_t *ms = json_object_get(
      json_array_get(
          json_object_get(
              json_array_get(json_object_get(req, "resourceMetrics"), 0),
              "scopeMetrics"),
          0),
      "metrics");
  json_t *m;
  size_t i;

  json_array_foreach(ms, i, m)
    if (!strcmp(json_string_value(json_object_get(m, "name")), name))
      return m;
  return NULL;
}

static void test_metrics_otlp(void **state)
{
  static const char *const labels[] = { "tool", NULL };
  static const double bounds[] = { 1, 2 };
  struct durin_metrics *a = durin_metrics_new(), *b = durin_metrics_new();
  struct durin_metrics *regs[3] = { a, NULL, b };
  struct durin_metric *c, *g, *h;
  const char *bash[] = { "bash" };
  struct durin_buf out;
  json_t *req, *p;
  char *text;

  (void)state;
  c = durin_metrics_add(a, DURIN_METRIC_COUNTER, "x.calls", "{call}", "c",
                        labels, NULL, 0);
  durin_metrics_add(a, DURIN_METRIC_COUNTER, "x.never", "1", "", NULL, NULL, 0);
  h = durin_metrics_add(a, DURIN_METRIC_HISTOGRAM, "x.time", "s", "h", NULL,
                        bounds, 2);
  g = durin_metrics_add(b, DURIN_METRIC_GAUGE, "y.level", "1", "g", NULL, NULL,
                        0);
  durin_metric_add(c, bash, 2);
  durin_metric_observe(h, NULL, 0.5);
  durin_metric_observe(h, NULL, 1.5);
  durin_metric_observe(h, NULL, 9);
  durin_metric_set(g, NULL, INFINITY);

  durin_buf_init(&out, 1 << 20);
  assert_int_equal(durin_metrics_render_otlp(regs, 3, "[]", &out), 0);
  req = json_loads(out.buf, 0, NULL);
  assert_non_null(req); /* valid JSON, the infinity included */
  assert_non_null(otlp_metric(req, "x.calls"));
  assert_null(otlp_metric(req, "x.never")); /* no series, no metric */
  assert_non_null(otlp_metric(req, "y.level"));
  p = json_array_get(
      json_object_get(json_object_get(otlp_metric(req, "x.calls"), "sum"),
                      "dataPoints"),
      0);
  assert_true(json_real_value(json_object_get(p, "asDouble")) == 2 ||
              json_integer_value(json_object_get(p, "asDouble")) == 2);
  text = json_dumps(json_object_get(p, "attributes"), JSON_COMPACT);
  assert_string_equal(text, "[{\"key\":\"tool\",\"value\":{\"stringValue\":"
                            "\"bash\"}}]");
  free(text);
  p = json_array_get(
      json_object_get(json_object_get(otlp_metric(req, "x.time"), "histogram"),
                      "dataPoints"),
      0);
  text = json_dumps(json_object_get(p, "bucketCounts"), JSON_COMPACT);
  assert_string_equal(text, "[\"1\",\"1\",\"1\"]");
  free(text);
  assert_string_equal(json_string_value(json_object_get(p, "count")), "3");
  assert_true(strcmp(json_string_value(json_object_get(p, "startTimeUnixNano")),
                     json_string_value(json_object_get(p, "timeUnixNano"))) <=
              0);
  p = json_array_get(
      json_object_get(json_object_get(otlp_metric(req, "y.level"), "gauge"),
                      "dataPoints"),
      0);
  assert_string_equal(json_string_value(json_object_get(p, "asDouble")),
                      "Infinity");
  json_decref(req);
  durin_buf_release(&out);

  /* A buffer too small: an error, not a cut request. */
  durin_buf_init(&out, 64);
  assert_int_equal(durin_metrics_render_otlp(regs, 3, NULL, &out),
                   DURIN_ENOMEM);
  durin_buf_release(&out);
  durin_metrics_free(a);
  durin_metrics_free(b);
}

static void test_utf8_sanitize(void **state)
{
  char a[] = "ok \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
  char b[] = "x\xff\xfey\xc0\xafz\xed\xa0\x80w\xe2\x82";
  char c[] = { 'a', 0, 'b' };

  (void)state;
  assert_int_equal(durin_utf8_sanitize(a, strlen(a)), 0);
  assert_int_equal(durin_utf8_sanitize(b, sizeof(b) - 1), 9);
  assert_string_equal(b, "x??y??z???w??");
  assert_int_equal(durin_utf8_sanitize(c, 3), 1);
  assert_int_equal(c[1], '?');
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_buf_cap),      cmocka_unit_test(test_errors),
    cmocka_unit_test(test_fault_points), cmocka_unit_test(test_tree_copy),
    cmocka_unit_test(test_misc),         cmocka_unit_test(test_utf8_sanitize),
    cmocka_unit_test(test_metrics_otlp),
  };

  return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
