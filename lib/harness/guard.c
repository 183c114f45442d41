/*
 * The loop and storm breakers' bookkeeping (guard.h,
 * docs/internals/breakers.md).
 *
 * A call is its tool and its canonical arguments: keys sorted, and every
 * string's whitespace runs collapsed to one space and trimmed, so a model
 * that re-indents a command or reorders its arguments repeats the same
 * call. A failure is the same failure when its exit code and the tail of
 * its output match once digit runs are made equal: a timestamp or a pid
 * in an error does not make a new one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/util.h"
#include "harness/guard.h"

#define MAX_LOOPS    32
#define MAX_FAILURES 5
#define TAIL_BYTES   300 /* of an output, kept with a failure */
#define SIG_BYTES    512 /* of an output, hashed into a failure's sign */
#define ARGS_BRIEF   200 /* of the canonical arguments, to name a call */
#define ARGS_LOOP    80  /* ... in a loop entry, kept until it trips */

static int is_space(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

static int is_cont(unsigned char c)
{
  return (c & 0xC0) == 0x80;
}

/* s's whitespace runs as one space, trimmed (malloc'd). */
static char *collapse(const char *s, size_t n)
{
  char *out = malloc(n + 1), *o = out;
  size_t i;
  int space = 0;

  if (!out)
    return NULL;
  for (i = 0; i < n; i++) {
    if (is_space(s[i])) {
      space = 1;
      continue;
    }
    if (space && o > out)
      *o++ = ' ';
    space = 0;
    *o++ = s[i];
  }
  *o = '\0';
  return out;
}

/* Text whose whitespace is what it means: a file's content, the text an
 * edit replaces. Indented differently, it is another call. */
static int verbatim(const char *key)
{
  return key && (!strcmp(key, "content") || !strcmp(key, "old_string") ||
                 !strcmp(key, "new_string"));
}

/* A copy of v with its strings collapsed (new reference). */
static json_t *normalized(json_t *v)
{
  json_t *out, *x;
  const char *k;
  size_t i;

  switch (json_typeof(v)) {
  case JSON_STRING: {
    char *s = collapse(json_string_value(v), json_string_length(v));

    out = s ? json_string(s) : NULL;
    free(s);
    return out ? out : json_incref(v);
  }
  case JSON_OBJECT:
    out = json_object();
    json_object_foreach(v, k, x)
      json_object_set_new(out, k,
                          verbatim(k) && json_is_string(x) ? json_incref(x) :
                                                             normalized(x));
    return out;
  case JSON_ARRAY:
    out = json_array();
    json_array_foreach(v, i, x)
      json_array_append_new(out, normalized(x));
    return out;
  default:
    return json_incref(v);
  }
}

char *durin__guard_canonical(const char *args)
{
  json_t *j = json_loads(args && *args ? args : "{}", JSON_DECODE_ANY, NULL);
  json_t *n;
  char *s;

  if (!j) /* not JSON (a call that never ran): its text, collapsed */
    return collapse(args ? args : "", args ? strlen(args) : 0);
  n = normalized(j);
  s = json_dumps(n, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
  json_decref(n);
  json_decref(j);
  return s;
}

/* Where the last n bytes of s start, not inside a UTF-8 sequence. */
static const char *tail(const char *s, size_t n)
{
  size_t len = strlen(s);
  const char *p;

  if (len <= n)
    return s;
  p = s + len - n;
  while (*p && is_cont((unsigned char)*p))
    p++;
  return p;
}

/* At most n bytes of s, not cutting a UTF-8 sequence (new reference). */
static json_t *brief(const char *s, size_t n)
{
  size_t len = strlen(s);
  json_t *j;

  if (len > n) {
    len = n;
    while (len && is_cont((unsigned char)s[len]))
      len--;
  }
  j = json_stringn(s, len);
  return j ? j : json_string("");
}

static int numeric(char c)
{
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
         (c >= 'A' && c <= 'F') || c == 'x' || c == 'X' || c == '.' ||
         c == ':' || c == '-' || c == '_';
}

/* Whether the text before o ends with "pid", "pid ", "pid:", "pid=" or
 * "pid: " in any case: a process id follows. */
static int after_pid(const char *start, const char *o)
{
  size_t n = (size_t)(o - start), i = n;

  while (i > 0 && n - i < 2 &&
         (start[i - 1] == ' ' || start[i - 1] == ':' || start[i - 1] == '='))
    i--;
  return i >= 3 && (start[i - 3] | 0x20) == 'p' &&
         (start[i - 2] | 0x20) == 'i' && (start[i - 1] | 0x20) == 'd';
}

/*
 * The failure's sign: exit code and a hash of its output's tail, with
 * the noise that differs between two runs of the same failure as '#'
 * (times, durations, dates, pids, addresses, ids: a run of digits, hex
 * letters and separators holding a digit and a '.' or ':', or 3 digits,
 * or 5 characters and more, or a number after "pid") and whitespace runs
 * as one space. Small
 * numbers stay: "assert 3 == 4" and "assert 2 == 4", or "1 failed" and
 * "2 failed", are two failures: the agent got somewhere between them.
 */
static void failure_sig(int64_t exit_code, const char *out, char sig[48])
{
  const char *t = tail(out, SIG_BYTES);
  char norm[SIG_BYTES + 1], *o = norm, hex[65], *c;

  while (*t) {
    size_t n = 0, k, digits = 0;
    int sep = 0;

    while (numeric(t[n])) {
      digits += t[n] >= '0' && t[n] <= '9';
      sep |= t[n] == '.' || t[n] == ':';
      n++;
    }
    if (!n) {
      *o++ = *t++;
      continue;
    }
    if (digits && (sep || digits >= 3 || n >= 5 || after_pid(norm, o))) {
      *o++ = '#';
    } else {
      for (k = 0; k < n; k++)
        *o++ = t[k];
    }
    t += n;
  }
  *o = '\0';
  c = collapse(norm, strlen(norm));
  durin_sha256_hex(c ? c : norm, strlen(c ? c : norm), hex);
  free(c);
  snprintf(sig, 48, "%lld:%.16s", (long long)exit_code, hex);
}

static int64_t iget(json_t *o, const char *k)
{
  return json_integer_value(json_object_get(o, k));
}

static void iadd(json_t *o, const char *k, int64_t n)
{
  json_object_set_new(o, k, json_integer(iget(o, k) + n));
}

/* The member k of o, an object or array made when missing. */
static json_t *member(json_t *o, const char *k, int array)
{
  json_t *v = json_object_get(o, k);

  if (!v || (array ? !json_is_array(v) : !json_is_object(v))) {
    v = array ? json_array() : json_object();
    json_object_set_new(o, k, v);
  }
  return v;
}

int64_t durin__guard_share(int64_t total, int n, int i)
{
  if (n <= 0)
    return 0;
  return total / n + (i < total % n ? 1 : 0);
}

/* The loop_detected event of entry e, tripped by a call with canonical
 * arguments canon and output out (the same failure as every one before:
 * the entry keeps neither). */
static json_t *loop_event(json_t *e, const char *canon, const char *out)
{
  return json_pack("{s:O,s:o,s:I,s:o,s:I,s:I,s:I,s:O,s:I,s:I}", "tool",
                   json_object_get(e, "tool"), "arguments",
                   brief(canon, ARGS_BRIEF), "times",
                   (json_int_t)iget(e, "times"), "error",
                   brief(tail(out, TAIL_BYTES), TAIL_BYTES), "exit_code",
                   (json_int_t)iget(e, "exit_code"), "input_tokens",
                   (json_int_t)iget(e, "input_tokens"), "output_tokens",
                   (json_int_t)iget(e, "output_tokens"), "cost_usd",
                   json_object_get(e, "cost_usd"), "first_step",
                   (json_int_t)iget(e, "first_step"), "last_step",
                   (json_int_t)iget(e, "last_step"));
}

/* The loop table: a success clears the call's count, a failure like the
 * last adds to it, another failure starts it again. */
static int add_loop(json_t *g, const struct durin__guard_limits *lim,
                    const struct durin__guard_call *c, int ok,
                    int64_t exit_code, const char *out, json_t **ev)
{
  json_t *loops = member(g, "loops", 1), *e = NULL;
  char *canon, *keytext = NULL, hex[65];
  char key[17], sig[48];
  size_t i;

  /* A success clears its call's count: with none counting (most steps),
   * there is nothing to look up. */
  if (ok && !json_array_size(loops))
    return 0;
  canon = durin__guard_canonical(c->args);
  if (!canon || asprintf(&keytext, "%s\n%s", c->tool, canon) < 0) {
    free(canon);
    return 0;
  }
  durin_sha256_hex(keytext, strlen(keytext), hex);
  free(keytext);
  snprintf(key, sizeof(key), "%.16s", hex);
  json_array_foreach(loops, i, e) {
    const char *k = json_string_value(json_object_get(e, "key"));

    if (k && !strcmp(k, key))
      break;
  }
  if (i == json_array_size(loops))
    e = NULL;
  if (ok) {
    if (e)
      json_array_remove(loops, i);
    free(canon);
    return 0;
  }
  failure_sig(exit_code, out, sig);
  if (e) {
    const char *s = json_string_value(json_object_get(e, "sig"));

    json_incref(e);
    json_array_remove(loops, i);
    if (!s || strcmp(s, sig)) {
      json_decref(e);
      e = NULL;
    }
  }
  if (!e) {
    e = json_pack("{s:s,s:s,s:s,s:o,s:i,s:I,s:i,s:i,s:f,s:I}", "key", key,
                  "sig", sig, "tool", c->tool, "arguments",
                  brief(canon, ARGS_LOOP), "times", 0, "exit_code",
                  (json_int_t)exit_code, "input_tokens", 0, "output_tokens", 0,
                  "cost_usd", 0.0, "first_step", (json_int_t)c->step);
  }
  iadd(e, "times", 1);
  iadd(e, "input_tokens", c->input_tokens);
  iadd(e, "output_tokens", c->output_tokens);
  json_object_set_new(
      e, "cost_usd",
      json_real(json_real_value(json_object_get(e, "cost_usd")) + c->cost_usd));
  json_object_set_new(e, "last_step", json_integer(c->step));
  if (iget(e, "times") >= lim->repeat) {
    /* Stopped: a resumed run gets as many tries again. */
    *ev = loop_event(e, canon, out);
    iadd(g, "loops_stopped", 1);
    json_decref(e);
    free(canon);
    return 1;
  }
  free(canon);
  json_array_append_new(loops, e);
  while (json_array_size(loops) > MAX_LOOPS)
    json_array_remove(loops, 0);
  return 0;
}

/* The sliding window of outcomes; a storm starts it again. */
/* An output that says nothing but how the command ended (bash writes
 * "exit code N" first). */
static int quiet(const char *s)
{
  static const char head[] = "exit code 1\n";

  if (!s)
    return 1;
  if (!strncmp(s, head, sizeof(head) - 1))
    s += sizeof(head) - 1;
  while (is_space(*s))
    s++;
  return !*s;
}

static int add_window(json_t *g, const struct durin__guard_limits *lim,
                      const struct durin__guard_call *c, int ok,
                      int64_t exit_code, json_t **ev)
{
  json_t *w = member(g, "window", 1), *x, *recent;
  const char *said = json_string_value(json_object_get(c->result, "output"));
  int64_t failed = 0;
  size_t i;

  /* A command that says no without a word (grep finding nothing,
   * test -f on a missing file: exit 1, no output) is an answer, not an
   * error: it counts as a success here. */
  if (!ok && exit_code == 1 && quiet(said))
    ok = 1;
  json_array_append_new(
      w, json_pack("[i,s,I]", ok ? 1 : 0, c->tool, (json_int_t)exit_code));
  while ((int64_t)json_array_size(w) > lim->window)
    json_array_remove(w, 0);
  json_array_foreach(w, i, x)
    failed += json_integer_value(json_array_get(x, 0)) == 0;
  if (ok || failed < lim->failures)
    return 0;
  recent = json_array();
  json_array_foreach(w, i, x)
    json_array_append_new(
        recent, json_pack("{s:O,s:O,s:b}", "tool", json_array_get(x, 1),
                          "exit_code", json_array_get(x, 2), "ok",
                          json_integer_value(json_array_get(x, 0)) != 0));
  *ev = json_pack("{s:I,s:I,s:o}", "failures", (json_int_t)failed, "window",
                  (json_int_t)lim->window, "recent", recent);
  json_array_clear(w);
  iadd(g, "storms", 1);
  return 1;
}

int durin__guard_add(json_t **guard, const struct durin__guard_limits *lim,
                     const struct durin__guard_call *c, json_t **loop,
                     json_t **storm)
{
  json_t *g, *t, *fails;
  const char *out = json_string_value(json_object_get(c->result, "output"));
  int ok = json_is_true(json_object_get(c->result, "ok")), trips = 0;
  int64_t exit_code = iget(c->result, "exit_code");

  *loop = *storm = NULL;
  if (!out)
    out = "";
  if (!*guard)
    *guard = json_object();
  g = *guard;
  json_object_set_new(g, "limits",
                      json_pack("[I,I,I]", (json_int_t)lim->repeat,
                                (json_int_t)lim->failures,
                                (json_int_t)lim->window));
  /* Time and tokens per tool: an output adds about a token per 3 bytes
   * to every later request (the estimate of budget.c). */
  t = json_object_get(member(g, "tools", 0), c->tool);
  if (!t) {
    t = json_pack("{s:i,s:i,s:i,s:i}", "calls", 0, "failed", 0, "duration_ms",
                  0, "tokens", 0);
    json_object_set_new(json_object_get(g, "tools"), c->tool, t);
  }
  iadd(t, "calls", 1);
  iadd(t, "failed", ok ? 0 : 1);
  iadd(t, "duration_ms", iget(c->result, "duration_ms"));
  iadd(t, "tokens", (int64_t)((strlen(out) + 2) / 3));
  if (!ok) {
    char *canon = durin__guard_canonical(c->args);

    fails = member(g, "failures", 1);
    json_array_append_new(
        fails,
        json_pack("{s:I,s:s,s:o,s:I,s:o}", "step", (json_int_t)c->step, "tool",
                  c->tool, "arguments", brief(canon ? canon : "", ARGS_BRIEF),
                  "exit_code", (json_int_t)exit_code, "tail",
                  brief(tail(out, TAIL_BYTES), TAIL_BYTES)));
    free(canon);
    while (json_array_size(fails) > MAX_FAILURES)
      json_array_remove(fails, 0);
  }
  if (lim->repeat > 0 && add_loop(g, lim, c, ok, exit_code, out, loop))
    trips |= DURIN__GUARD_LOOP;
  if (lim->failures > 0 && lim->window > 0 &&
      add_window(g, lim, c, ok, exit_code, storm))
    trips |= DURIN__GUARD_STORM;
  return trips;
}

json_t *durin__guard_tools(json_t *guard)
{
  json_t *t = json_object_get(guard, "tools");

  return t ? json_deep_copy(t) : json_object();
}

json_t *durin__guard_failures(json_t *guard)
{
  json_t *f = json_object_get(guard, "failures");

  return f ? json_deep_copy(f) : json_array();
}

static json_t *limit_or_null(int64_t n)
{
  return n > 0 ? json_integer(n) : json_null();
}

json_t *durin__guard_breakers(json_t *guard,
                              const struct durin__guard_limits *lim)
{
  json_t *counting = json_array(), *e, *w = json_object_get(guard, "window");
  int64_t failed = 0;
  size_t i;

  /* The calls counting toward a loop, the latest few. */
  json_array_foreach(json_object_get(guard, "loops"), i, e)
    if (i + 8 >= json_array_size(json_object_get(guard, "loops")))
      json_array_append_new(counting,
                            json_pack("{s:O,s:O,s:O,s:O}", "tool",
                                      json_object_get(e, "tool"), "arguments",
                                      json_object_get(e, "arguments"), "times",
                                      json_object_get(e, "times"), "exit_code",
                                      json_object_get(e, "exit_code")));
  json_array_foreach(w, i, e)
    failed += json_integer_value(json_array_get(e, 0)) == 0;
  return json_pack(
      "{s:{s:o,s:o,s:I},s:{s:o,s:o,s:I,s:I,s:I}}", "repeat", "limit",
      limit_or_null(lim->repeat), "failing_calls", counting, "stopped",
      (json_int_t)iget(guard, "loops_stopped"), "storm", "failures",
      limit_or_null(lim->failures), "window", limit_or_null(lim->window),
      "recent_calls", (json_int_t)json_array_size(w), "recent_failures",
      (json_int_t)failed, "paused", (json_int_t)iget(guard, "storms"));
}
