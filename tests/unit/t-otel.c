/*
 * The trace's fold on logs written by hand (lib/otel/trace.c): the fields
 * it reads of an event (a streaming parse that skips what it does not
 * read, nested members included), JSON text that stays valid whatever the
 * bytes, spans written into a request of the caller's, and a fold resumed
 * from a cursor that emits only what the cursor had not taken.
 */
#include <stdio.h>

#include <jansson.h>

#include "durin/otel.h"
#include "otel/fields.h"
#include "test.h"

static void test_fields(void **state)
{
  struct fields f;
  const char *d =
      "{\"tool_calls\":[{\"id\":\"c1\",\"name\":\"inner\",\"ok\":false}],"
      "\"name\":\"bash\",\"model\":\"m\\u00e9\\n\",\"input_tokens\":12,"
      "\"cost_usd\":0.5,\"ok\":true,\"nested\":{\"reason\":\"no\"},"
      "\"exit_code\":-1,\"call_id\":null}";

  (void)state;
  assert_int_equal(durin__otel_fields(d, strlen(d), &f), 0);
  assert_string_equal(fstr(&f, FLD_NAME), "bash");         /* not tool_calls' */
  assert_string_equal(fstr(&f, FLD_MODEL), "m\xc3\xa9\n"); /* unescaped */
  assert_int_equal(fint(&f, FLD_INPUT_TOKENS), 12);
  assert_true(fnum(&f, FLD_COST_USD) == 0.5);
  assert_int_equal(fint(&f, FLD_OK), 1); /* the top-level ok */
  assert_null(fstr(&f, FLD_REASON));     /* nested: not the event's */
  assert_int_equal(fint(&f, FLD_EXIT_CODE), -1);
  assert_false(fhas(&f, FLD_CALL_ID)); /* null: absent */
  assert_false(fhas(&f, FLD_TIMED_OUT));
  assert_int_equal(durin__otel_fields("[1]", 3, &f), -1);
  assert_int_equal(durin__otel_fields("{\"name\":", 8, &f), -1);
}

static void test_jstr(void **state)
{
  struct durin_buf b;
  json_t *j;

  (void)state;
  durin_buf_init(&b, 0);
  assert_int_equal(durin_buf_add_jstr(&b, "a\"b\\c\n\x01 \xc3\xa9 \xff\xfe z"),
                   0);
  assert_string_equal(
      b.buf, "\"a\\\"b\\\\c\\u000a\\u0001 \xc3\xa9 \\ufffd\\ufffd z\"");
  assert_non_null(j = json_loadb(b.buf, b.len, JSON_DECODE_ANY, NULL));
  json_decref(j);
  durin_buf_reset(&b);
  assert_int_equal(durin_buf_add_jstr(&b, NULL), 0);
  assert_string_equal(b.buf, "\"\"");
  durin_buf_release(&b);
}

/* A log of two steps: a model call with a tool call each, the second
 * tool call failing, then the run's end. */
static const struct durin_event events[] = {
  { 1, 1000, 0, "run_started", "{}" },
  { 2, 1100, 1, "model_response",
    "{\"model\":\"m1\",\"input_tokens\":10,\"output_tokens\":2,"
    "\"finish_reason\":\"tool_calls\",\"duration_ms\":90,"
    "\"tool_calls\":[{\"id\":\"a\",\"name\":\"bash\",\"arguments\":\"{}\"}]}" },
  { 3, 1150, 1, "tool_result",
    "{\"call_id\":\"a\",\"name\":\"bash\",\"ok\":true,\"exit_code\":0,"
    "\"duration_ms\":40}" },
  { 4, 1150, 1, "plan_updated", "not json at all" },
  { 5, 1300, 2, "model_response", "[\"not an object\"]" },
  { 6, 1350, 2, "tool_result",
    "{\"call_id\":\"b\",\"name\":\"bash\",\"ok\":false,\"duration_ms\":20}" },
  { 7, 1400, 2, "run_finished", "{\"status\":\"failed\",\"reason\":\"r\"}" },
};
#define NEVENTS (sizeof(events) / sizeof(events[0]))

/* Folds events from..NEVENTS (1-based) after what sent took; returns the
 * request's spans, parsed. */
static json_t *fold(int64_t from, int64_t sent, size_t *count, int64_t *resume)
{
  struct durin_otel_run run = { 0 };
  struct durin_otel_fold *f;
  struct durin_buf req;
  json_t *doc, *spans;
  size_t i;

  run.run_id = "run_1";
  run.name = "agent";
  run.provider = "openai";
  run.model = "m1";
  run.started_ms = 1000; /* the run's row: a resumed fold starts there too */
  durin_buf_init(&req, 0);
  assert_non_null(f = durin_otel_fold_new(&run));
  durin_otel_fold_sent(f, sent);
  durin_otel_fold_output(f, &req, count);
  assert_int_equal(durin_otel_request_open(NULL, &req), 0);
  for (i = (size_t)from - 1; i < NEVENTS; i++) {
    durin_otel_fold_event(f, &events[i]);
    if (resume && events[i].seq == 3)
      *resume = durin_otel_fold_resume_point(f);
  }
  assert_int_equal(durin_otel_fold_failed(f), 0);
  assert_int_equal(durin_otel_request_close(&req), 0);
  durin_otel_fold_free(f);
  doc = json_loadb(req.buf, req.len, 0, NULL);
  durin_buf_release(&req);
  assert_non_null(doc);
  spans = json_incref(json_object_get(
      json_array_get(
          json_object_get(
              json_array_get(json_object_get(doc, "resourceSpans"), 0),
              "scopeSpans"),
          0),
      "spans"));
  json_decref(doc);
  return spans;
}

static const char *name_of(json_t *spans, size_t i)
{
  return json_string_value(json_object_get(json_array_get(spans, i), "name"));
}

static void test_fold(void **state)
{
  size_t n = 0, m = 0;
  int64_t resume = -1;
  json_t *all, *rest, *s;

  (void)state;
  all = fold(1, 0, &n, &resume);
  /* chat, tool, chat, tool, the root: the others are not spans. */
  assert_int_equal(json_array_size(all), 5);
  assert_int_equal(n, 5);
  assert_string_equal(name_of(all, 0), "chat m1");
  assert_string_equal(name_of(all, 1), "execute_tool bash");
  assert_string_equal(name_of(all, 2), "chat m1"); /* data not an object */
  assert_string_equal(name_of(all, 4), "invoke_agent agent");
  s = json_array_get(all, 0);
  assert_string_equal(
      json_string_value(json_object_get(s, "startTimeUnixNano")),
      "1010000000"); /* its duration before its end */
  s = json_array_get(all, 3);
  assert_int_equal(
      json_integer_value(json_object_get(json_object_get(s, "status"), "code")),
      2);
  s = json_array_get(all, 4);
  assert_null(json_object_get(s, "parentSpanId"));
  assert_string_equal(json_string_value(json_object_get(json_array_get(all, 0),
                                                        "parentSpanId")),
                      json_string_value(json_object_get(s, "spanId")));
  /* Resumed where step 1 began, after the cursor took event 3: the spans
   * the first fold had not sent yet, with the same ids. */
  assert_int_equal(resume, 1);
  rest = fold(resume + 1, 3, &m, NULL);
  assert_int_equal(json_array_size(rest), 3);
  assert_int_equal(m, 3);
  assert_true(json_equal(json_array_get(rest, 0), json_array_get(all, 2)));
  assert_true(json_equal(json_array_get(rest, 2), json_array_get(all, 4)));
  json_decref(all);
  json_decref(rest);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_fields),
    cmocka_unit_test(test_jstr),
    cmocka_unit_test(test_fold),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
