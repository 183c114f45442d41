/*
 * The context window: see window.h for what a request may hold.
 *
 * Sizes are counted as the JSON text jansson writes (escapes included),
 * message by message when a message joins, so keeping the window within
 * its bytes costs nothing per step. A tool result the window cannot hold
 * whole is cut to its head and tail, the part where build logs and test
 * runs say what went wrong; the log keeps it whole (the tool_result
 * event), and the marker names that event so a person (durin logs) or a
 * future log-reading tool can find it.
 *
 * What compaction drops is not only counted: each dropped call is listed
 * with how it ended in the compaction event, and folded into a bounded
 * handoff (calls per tool, failures, files read and written, the last few
 * calls) that the checkpoint carries and the pinned message shows, so the
 * model keeps the gist of what it did after the turns are gone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/util.h"
#include "harness/window.h"

/* Bounds of the handoff, so the checkpoint stays a few KB at most. */
#define HANDOFF_FILES  16  /* paths per list, the most recent */
#define HANDOFF_RECENT 5   /* the last dropped calls, in brief */
#define BRIEF_BYTES    120 /* of a call's arguments or a path */
#define EVENT_CALLS    50  /* calls listed in one compaction event */
#define MSG_OVERHEAD   160 /* role, ids, quotes of one message */
#define MIN_SHARE      256 /* a message's share never goes below this */
/* What a provider's wire format adds around a message or a tool schema
 * ({"type":"function","function":...} and the like), counted with each so
 * that the request on the wire, not only its neutral form, fits. */
#define WIRE_SLACK 64

struct wmsg {
  int64_t seq;
  size_t bytes; /* its JSON text, with the comma after it */
  int tool;     /* a tool result: it belongs to the turn before it */
  json_t *info; /* assistant: [{id, tool, args, path?}]; tool: {id, ok,
                   exit_code}; else NULL (owned) */
};

struct durin__window {
  json_t *msgs;
  struct wmsg *wm;
  size_t n, alloc;
  size_t bytes;     /* the window's messages */
  size_t base;      /* system prompt, tool schemas: every request's */
  size_t pin_cap;   /* the plan's, and the handoff's, share */
  size_t cap;       /* the window's bytes */
  size_t max_msgs;  /* the window's messages (the pinned one aside) */
  size_t share;     /* per message of the turn being added */
  const char *goal; /* borrowed from the spec */
  /* The last pinned message and what it was made from (owned; NULL:
   * to be made). */
  json_t *pin_msg, *pin_plan, *pin_handoff;
  size_t pin_bytes;
  /* What the agent is given at this start or resume (progress files, the
   * branch's log; owned, NULL: nothing), and its share, taken from the
   * window's: at most what the plan gets. */
  char *boot;
  size_t boot_cap;
  /* The requests' size limit: context.max_bytes, or less (a phase's
   * share, context.reset_at); 0: max_bytes. */
  size_t limit;
  /* The phases' artifacts and the last reset's handoff, as text (owned;
   * NULL: none), and their share, reserved when the spec has phases or
   * resets. */
  char *extra;
  size_t extra_cap;
};

/* The string v holds, or def when it is not one. */
static const char *str_or(json_t *v, const char *def)
{
  return json_is_string(v) ? json_string_value(v) : def;
}

/* The bytes jansson writes for c inside a string. */
static size_t esc_cost(unsigned char c)
{
  if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' ||
      c == '\r' || c == '\t')
    return 2;
  return c < 0x20 ? 6 : 1;
}

/*
 * The escaped size of s[0..n). Every message of every step is sized, and
 * tool outputs run to kilobytes: eight bytes at a time, the common case (a
 * word with no control byte, '"' or '\\') costs a few instructions.
 */
size_t durin__json_escaped_len(const char *s, size_t n)
{
  const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
  size_t i = 0, k = 0, j;

  for (; i + 8 <= n; i += 8) {
    uint64_t w, q, b;

    memcpy(&w, s + i, 8);
    q = w ^ (ones * '"');
    b = w ^ (ones * '\\');
    /* Any byte below 0x20, or equal to '"' or '\\' (exact as an "any"). */
    if (!(((w - ones * 0x20) & ~w) & high) && !(((q - ones) & ~q) & high) &&
        !(((b - ones) & ~b) & high)) {
      k += 8;
      continue;
    }
    for (j = 0; j < 8; j++)
      k += esc_cost((unsigned char)s[i + j]);
  }
  for (; i < n; i++)
    k += esc_cost((unsigned char)s[i]);
  return k;
}

static size_t utf8_len(unsigned char c)
{
  if (c < 0x80)
    return 1;
  if ((c & 0xE0) == 0xC0)
    return 2;
  if ((c & 0xF0) == 0xE0)
    return 3;
  if ((c & 0xF8) == 0xF0)
    return 4;
  return 1;
}

/* The longest prefix of s[0..n) on a character boundary whose escaped
 * size is at most budget; its escaped size in *cost. */
static size_t prefix_within(const char *s, size_t n, size_t budget,
                            size_t *cost)
{
  size_t i = 0, k = 0;

  while (i < n) {
    size_t l = utf8_len((unsigned char)s[i]);
    size_t c = l == 1 ? esc_cost((unsigned char)s[i]) : l;

    if (i + l > n || k + c > budget)
      break;
    k += c;
    i += l;
  }
  *cost = k;
  return i;
}

/* The longest suffix of s[0..n) on a character boundary whose escaped
 * size is at most budget: returns where it starts. */
static size_t suffix_within(const char *s, size_t n, size_t budget)
{
  size_t i = n, k = 0;

  while (i > 0) {
    size_t j = i - 1, c;

    while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80)
      j--;
    c = i - j == 1 ? esc_cost((unsigned char)s[j]) : i - j;
    if (k + c > budget)
      break;
    k += c;
    i = j;
  }
  return i;
}

/*
 * s cut to at most cap escaped bytes, its head and tail around a marker
 * that names the event holding it whole; NULL when it fits as it is.
 */
static char *cut_middle(const char *s, size_t cap, const char *what,
                        int64_t seq)
{
  size_t n = strlen(s), head, hcost, tail, room;
  char marker[256];
  struct durin_buf b;

  /* No character escapes to more than 6 bytes: most texts need no scan. */
  if (n <= cap / 6 || durin__json_escaped_len(s, n) <= cap)
    return NULL;
  /* Sized with n as the count: the real count has no more digits. */
  snprintf(marker, sizeof(marker),
           "\n[... %zu bytes cut here to fit the context window; the whole "
           "%s is event %lld of the run's log ...]\n",
           n, what, (long long)seq);
  room = cap > durin__json_escaped_len(marker, strlen(marker)) ?
             cap - durin__json_escaped_len(marker, strlen(marker)) :
             0;
  head = prefix_within(s, n, room / 2, &hcost);
  tail = suffix_within(s + head, n - head, room - hcost) + head;
  snprintf(marker, sizeof(marker),
           "\n[... %zu bytes cut here to fit the context window; the whole "
           "%s is event %lld of the run's log ...]\n",
           tail - head, what, (long long)seq);
  durin_buf_init(&b, 0);
  durin_buf_add(&b, s, head);
  durin_buf_adds(&b, marker);
  durin_buf_add(&b, s + tail, n - tail);
  return durin_buf_detach(&b, NULL);
}

/* s cut to at most cap escaped bytes from its end, with a note. */
static void cut_tail(struct durin_buf *b, size_t from, size_t cap)
{
  static const char note[] = "\n[... cut to fit the context window]";
  size_t cost, keep;

  if (durin__json_escaped_len(b->buf + from, b->len - from) <= cap)
    return;
  keep =
      prefix_within(b->buf + from, b->len - from,
                    cap > sizeof(note) + 8 ? cap - sizeof(note) - 8 : 0, &cost);
  b->len = from + keep;
  b->buf[b->len] = '\0';
  durin_buf_adds(b, note);
}

/*
 * The length of json_dumps(v, JSON_COMPACT), counted without writing it:
 * every step sizes its new messages, and dumping them (the first version)
 * took a tenth of a step's CPU in bench/step-overhead.
 */
static size_t json_size(json_t *v)
{
  char num[64];
  const char *key;
  json_t *x;
  size_t n = 2, i;

  switch (json_typeof(v)) {
  case JSON_OBJECT:
    json_object_foreach(v, key, x)
      n += durin__json_escaped_len(key, strlen(key)) + 3 + json_size(x) + 1;
    return json_object_size(v) ? n - 1 : n;
  case JSON_ARRAY:
    json_array_foreach(v, i, x)
      n += json_size(x) + 1;
    return json_array_size(v) ? n - 1 : n;
  case JSON_STRING:
    return durin__json_escaped_len(json_string_value(v),
                                   json_string_length(v)) +
           2;
  case JSON_INTEGER:
    return (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                            json_integer_value(v));
  case JSON_REAL: {
    char *t = json_dumps(v, JSON_ENCODE_ANY);

    n = t ? strlen(t) : 0;
    free(t);
    return n;
  }
  case JSON_TRUE:
    return 4;
  case JSON_FALSE:
    return 5;
  case JSON_NULL:
  default:
    return 4;
  }
}

/* The request's fixed part (system prompt, goal, tool schemas) and what
 * it leaves the window, plan and handoff. */
size_t durin__window_fixed(const char *system, json_t *tools)
{
  return json_size(tools) + WIRE_SLACK * (json_array_size(tools) + 1) + 2 +
         (system ? durin__json_escaped_len(system, strlen(system)) + 2 : 0);
}

static int window_size(struct durin__window *w, const struct durin_spec *spec,
                       json_t *tools, struct durin_err *err)
{
  size_t max = w->limit ? w->limit : (size_t)spec->context_bytes, fixed, rest;
  json_t *goal;

  goal = json_pack("{s:s,s:s}", "role", "user", "content", spec->goal);
  fixed = durin__window_fixed(spec->system, tools) + json_size(goal) + 1 +
          WIRE_SLACK;
  if (fixed > max / 2) {
    json_decref(goal);
    if (w->limit && w->limit < (size_t)spec->context_bytes)
      return durin_err_set(err, DURIN_ESPEC,
                           "the context window's cap for this phase or "
                           "context.reset_at (%zu bytes) is too small for this "
                           "spec: its system prompt, goal and tool schemas "
                           "alone take %zu bytes of every request; give a "
                           "cap of at least %zu bytes",
                           max, fixed, 2 * fixed);
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'context.max_bytes' (%zu) is too small for "
                         "this spec: its system prompt, goal and tool schemas "
                         "alone take %zu bytes of every request; give at "
                         "least %zu",
                         max, fixed, 2 * fixed);
  }
  rest = max - fixed;
  /* fixed counts the goal alone as the first message. */
  w->base = fixed - (json_size(goal) + 1 + WIRE_SLACK);
  w->goal = spec->goal;
  w->pin_cap = rest / 8;
  w->extra_cap = spec->nphases || spec->reset_tokens || spec->reset_share > 0 ?
                     rest / 8 :
                     0;
  w->boot_cap = 0;
  if (w->boot) {
    /* "\n\n", the text and a cut's note. */
    w->boot_cap = durin__json_escaped_len(w->boot, strlen(w->boot)) + 48;
    if (w->boot_cap > w->pin_cap)
      w->boot_cap = w->pin_cap;
  }
  w->cap = rest - 2 * w->pin_cap - w->boot_cap - w->extra_cap;
  w->max_msgs = (size_t)spec->context_messages - 1;
  w->share = w->cap / 2;
  json_decref(goal);
  return 0;
}

int durin__window_new(const struct durin_spec *spec, json_t *tools,
                      struct durin__window **out, struct durin_err *err)
{
  struct durin__window *w = calloc(1, sizeof(*w));
  int r;

  if (!w)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  if ((r = window_size(w, spec, tools, err))) {
    free(w);
    return r;
  }
  w->msgs = json_array();
  *out = w;
  return 0;
}

int durin__window_tools(struct durin__window *w, const struct durin_spec *spec,
                        json_t *tools, struct durin_err *err)
{
  return window_size(w, spec, tools, err);
}

int durin__window_boot(struct durin__window *w, const struct durin_spec *spec,
                       json_t *tools, const char *text, struct durin_err *err)
{
  free(w->boot);
  w->boot = text && *text ? strdup(text) : NULL;
  json_decref(w->pin_msg);
  w->pin_msg = NULL;
  return window_size(w, spec, tools, err);
}

int durin__window_limit(struct durin__window *w, const struct durin_spec *spec,
                        json_t *tools, size_t limit, struct durin_err *err)
{
  if (limit != w->limit) {
    /* The pinned message was cut to the old shares: made again. */
    json_decref(w->pin_msg);
    w->pin_msg = NULL;
  }
  w->limit = limit;
  return window_size(w, spec, tools, err);
}

void durin__window_set_extra(struct durin__window *w, const char *text)
{
  free(w->extra);
  w->extra = text && *text ? strdup(text) : NULL;
  json_decref(w->pin_msg);
  w->pin_msg = NULL;
}

size_t durin__window_extra_cap(const struct durin__window *w)
{
  return w->extra_cap;
}

size_t durin__window_count(const struct durin__window *w)
{
  return w->n;
}

size_t durin__window_slack(size_t nmsgs, size_t ntools)
{
  return WIRE_SLACK * (nmsgs + ntools + 1);
}

size_t durin__window_bytes(const struct durin__window *w)
{
  return w->bytes;
}

size_t durin__window_pinned(const struct durin__window *w)
{
  return w->pin_msg ? w->pin_bytes : 0;
}

size_t durin__window_max_messages(const struct durin__window *w)
{
  return w->max_msgs;
}

void durin__window_free(struct durin__window *w)
{
  size_t i;

  if (!w)
    return;
  free(w->boot);
  free(w->extra);
  for (i = 0; i < w->n; i++)
    json_decref(w->wm[i].info);
  free(w->wm);
  json_decref(w->msgs);
  json_decref(w->pin_msg);
  json_decref(w->pin_plan);
  json_decref(w->pin_handoff);
  free(w);
}

static void push(struct durin__window *w, json_t *msg, int64_t seq, int tool,
                 json_t *info)
{
  if (w->n + 1 > w->alloc) {
    size_t na = w->alloc ? w->alloc * 2 : 64;
    struct wmsg *p = realloc(w->wm, na * sizeof(*p));

    if (!p)
      abort(); /* like jansson's own allocations here: no way to go on */
    w->wm = p;
    w->alloc = na;
  }
  w->wm[w->n].seq = seq;
  w->wm[w->n].bytes = json_size(msg) + 1 + WIRE_SLACK;
  w->wm[w->n].tool = tool;
  w->wm[w->n].info = info;
  w->bytes += w->wm[w->n].bytes;
  w->n++;
  json_array_append_new(w->msgs, msg);
}

/* Which list of the handoff a file tool's path goes to, or NULL. */
static const char *file_list(const char *tool)
{
  if (!strcmp(tool, "write_file") || !strcmp(tool, "edit_file"))
    return "written";
  if (!strcmp(tool, "read_file"))
    return "read";
  return NULL;
}

/* The first BRIEF_BYTES of s, on a character boundary. */
static json_t *brief(const char *s)
{
  size_t cost, n = prefix_within(s, strlen(s), BRIEF_BYTES, &cost);

  return json_stringn(s, n);
}

/* The assistant message of a model_response event, each part cut to its
 * share of the turn; its calls in brief for a later handoff. */
static void add_response(struct durin__window *w, json_t *data, int64_t seq)
{
  json_t *m = json_pack("{s:s}", "role", "assistant");
  json_t *text = json_object_get(data, "text");
  json_t *calls = json_object_get(data, "tool_calls"), *c, *info;
  size_t k = json_array_size(calls), i, args_cap;
  char *cut;

  /* Half the window for the newest turn, shared by its messages. */
  w->share = w->cap / 2 / (k + 1);
  if (w->share < MIN_SHARE)
    w->share = MIN_SHARE;
  args_cap = k ? w->share / 2 / k : 0;
  if (json_is_string(text)) {
    size_t cap = (k ? w->share / 2 : w->share);

    cap = cap > MSG_OVERHEAD ? cap - MSG_OVERHEAD : 0;
    cut = cut_middle(json_string_value(text), cap, "text", seq);
    json_object_set_new(m, "content",
                        cut ? json_string(cut) : json_incref(text));
    free(cut);
  }
  info = json_array();
  if (k) {
    json_t *out = json_array();

    json_array_foreach(calls, i, c) {
      const char *args = json_string_value(json_object_get(c, "arguments"));
      const char *tool = str_or(json_object_get(c, "name"), "?");
      json_t *oc = json_incref(c), *ci;

      if (!args)
        args = "";
      ci =
          json_pack("{s:s,s:s,s:o}", "id", str_or(json_object_get(c, "id"), ""),
                    "tool", tool, "args", brief(args));
      if (file_list(tool)) {
        json_t *parsed = json_loads(args, 0, NULL);
        json_t *path = json_object_get(parsed, "path");

        if (json_is_string(path))
          json_object_set_new(ci, "path", brief(json_string_value(path)));
        json_decref(parsed);
      }
      json_array_append_new(info, ci);
      if (durin__json_escaped_len(args, strlen(args)) + MSG_OVERHEAD >
          args_cap) {
        /* Still a JSON object: providers that send arguments as objects
         * (Anthropic) must be able to parse what the window holds. */
        char note[200];

        snprintf(note, sizeof(note),
                 "{\"cut\":\"%zu bytes of arguments left out of the context "
                 "window; event %lld of the run's log holds them\"}",
                 strlen(args), (long long)seq);
        json_decref(oc);
        oc = json_copy(c);
        json_object_set_new(oc, "arguments", json_string(note));
      }
      json_array_append_new(out, oc);
    }
    json_object_set_new(m, "tool_calls", out);
  }
  push(w, m, seq, 0, info);
}

void durin__window_add_event(struct durin__window *w, const char *type,
                             json_t *data, int64_t seq)
{
  if (!strcmp(type, "user_message")) {
    json_t *content = json_object_get(data, "content");
    size_t cap = w->cap / 2 > MSG_OVERHEAD ? w->cap / 2 - MSG_OVERHEAD : 0;
    char *cut = cut_middle(str_or(content, ""), cap, "message", seq);

    push(w,
         json_pack("{s:s,s:s}", "role", "user", "content",
                   cut ? cut : str_or(content, "")),
         seq, 0, NULL);
    free(cut);
  } else if (!strcmp(type, "model_response")) {
    add_response(w, data, seq);
  } else if (!strcmp(type, "tool_result")) {
    json_t *output = json_object_get(data, "output");
    size_t cap = w->share > MSG_OVERHEAD ? w->share - MSG_OVERHEAD : 0;
    char *cut = cut_middle(str_or(output, ""), cap, "output", seq);
    json_t *info = json_pack("{s:s,s:s,s:b}", "id",
                             str_or(json_object_get(data, "call_id"), ""),
                             "tool", str_or(json_object_get(data, "name"), "?"),
                             "ok", json_is_true(json_object_get(data, "ok")));

    if (json_integer_value(json_object_get(data, "exit_code")) > 0)
      json_object_set(info, "exit_code", json_object_get(data, "exit_code"));
    push(w,
         json_pack("{s:s,s:s,s:s}", "role", "tool", "tool_call_id",
                   str_or(json_object_get(data, "call_id"), ""), "content",
                   cut ? cut : str_or(output, "")),
         seq, 1, info);
    free(cut);
  }
}

void durin__json_add_last(json_t *a, json_t *s, size_t max)
{
  size_t i;
  json_t *v;

  json_array_foreach(a, i, v) {
    if (json_equal(v, s)) {
      json_array_remove(a, i);
      break;
    }
  }
  json_array_append(a, s);
  while (json_array_size(a) > max)
    json_array_remove(a, 0);
}

/* Folds one dropped call into the handoff and this compaction's files. */
static void handoff_add(json_t *ho, json_t *files, json_t *call)
{
  const char *tool = json_string_value(json_object_get(call, "tool"));
  json_t *tools = json_object_get(ho, "tools"), *path, *recent;
  const char *list;

  json_object_set_new(
      ho, "calls",
      json_integer(json_integer_value(json_object_get(ho, "calls")) + 1));
  if (!json_is_true(json_object_get(call, "ok")))
    json_object_set_new(
        ho, "failed",
        json_integer(json_integer_value(json_object_get(ho, "failed")) + 1));
  json_object_set_new(
      tools, tool,
      json_integer(json_integer_value(json_object_get(tools, tool)) + 1));
  path = json_object_get(call, "path");
  list = file_list(tool);
  if (path && list) {
    durin__json_add_last(json_object_get(ho, list), path, HANDOFF_FILES);
    durin__json_add_last(json_object_get(files, list), path, 1000);
  }
  recent = json_object_get(ho, "recent");
  json_array_append_new(recent, json_deep_copy(call));
  json_object_del(json_array_get(recent, json_array_size(recent) - 1), "path");
  while (json_array_size(recent) > HANDOFF_RECENT)
    json_array_remove(recent, 0);
}

/* The call (from its assistant message) that a tool result answers. */
static json_t *call_of(const struct durin__window *w, size_t at, const char *id)
{
  size_t i;
  json_t *c;

  while (at > 0 && w->wm[at].tool)
    at--;
  json_array_foreach(w->wm[at].info, i, c)
    if (json_is_string(json_object_get(c, "id")) && id &&
        !strcmp(json_string_value(json_object_get(c, "id")), id))
      return c;
  return NULL;
}

/* The first message after the turn that starts at i. */
static size_t turn_end(const struct durin__window *w, size_t i)
{
  for (i++; i < w->n && w->wm[i].tool; i++)
    ;
  return i;
}

/*
 * Drops turns from the front until at most max_msgs messages of at most
 * max_bytes are left (keep_newest: the newest turn stays if it fits within
 * the window's own limits); see durin__window_fit for the rest.
 */
static json_t *fit_to(struct durin__window *w, int64_t *window_start,
                      json_t **handoff, size_t max_bytes, size_t max_msgs,
                      int keep_newest)
{
  size_t n = w->n, drop = 0, bytes = w->bytes, i;
  json_t *ev, *calls, *files, *kept;

  while (drop < n && (n - drop > max_msgs || bytes > max_bytes)) {
    size_t end = turn_end(w, drop), b = 0;

    /* The newest turn stays if it fits on its own. */
    if (keep_newest && end == n && n - drop <= w->max_msgs && bytes <= w->cap)
      break;
    for (i = drop; i < end; i++)
      b += w->wm[i].bytes;
    bytes -= b;
    drop = end;
  }
  if (!drop)
    return NULL;
  if (!*handoff)
    *handoff = json_pack("{s:I,s:I,s:I,s:I,s:{},s:[],s:[],s:[]}", "through_seq",
                         (json_int_t)0, "messages", (json_int_t)0, "calls",
                         (json_int_t)0, "failed", (json_int_t)0, "tools",
                         "written", "read", "recent");
  calls = json_array();
  files = json_pack("{s:[],s:[]}", "written", "read");
  for (i = 0; i < drop; i++) {
    json_t *info = w->wm[i].info, *c, *call;

    if (!w->wm[i].tool)
      continue;
    c = call_of(w, i, json_string_value(json_object_get(info, "id")));
    call = json_pack("{s:I,s:O,s:O}", "seq", (json_int_t)w->wm[i].seq, "tool",
                     json_object_get(info, "tool"), "ok",
                     json_object_get(info, "ok"));
    if (json_object_get(info, "exit_code"))
      json_object_set(call, "exit_code", json_object_get(info, "exit_code"));
    if (c) {
      json_object_set(call, "args", json_object_get(c, "args"));
      if (json_object_get(c, "path"))
        json_object_set(call, "path", json_object_get(c, "path"));
    }
    handoff_add(*handoff, files, call);
    json_array_append_new(calls, call);
  }
  while (json_array_size(calls) > EVENT_CALLS)
    json_array_remove(calls, 0);
  json_object_set_new(*handoff, "through_seq",
                      json_integer(w->wm[drop - 1].seq));
  json_object_set_new(
      *handoff, "messages",
      json_integer(json_integer_value(json_object_get(*handoff, "messages")) +
                   (json_int_t)drop));
  /* Any seq after the last dropped message and up to the first kept one
   * starts the window: events between make no message. */
  *window_start = w->wm[drop - 1].seq + 1;
  ev = json_pack("{s:I,s:{s:I,s:I,s:I,s:I},s:I,s:I,s:o,s:o,s:O}",
                 "window_start", (json_int_t)*window_start, "dropped",
                 "from_seq", (json_int_t)w->wm[0].seq, "to_seq",
                 (json_int_t)w->wm[drop - 1].seq, "messages", (json_int_t)drop,
                 "bytes", (json_int_t)(w->bytes - bytes), "kept_messages",
                 (json_int_t)(n - drop), "kept_bytes", (json_int_t)bytes,
                 "calls", calls, "files", files, "handoff", *handoff);
  kept = json_array();
  for (i = drop; i < n; i++)
    json_array_append(kept, json_array_get(w->msgs, i));
  for (i = 0; i < drop; i++)
    json_decref(w->wm[i].info);
  json_decref(w->msgs);
  w->msgs = kept;
  memmove(w->wm, w->wm + drop, (n - drop) * sizeof(*w->wm));
  w->n = n - drop;
  w->bytes = bytes;
  /* The handoff changed in place: the pinned message is made again. */
  json_decref(w->pin_msg);
  w->pin_msg = NULL;
  return ev;
}

json_t *durin__window_fit(struct durin__window *w, int64_t *window_start,
                          json_t **handoff)
{
  if (w->n <= w->max_msgs && w->bytes <= w->cap)
    return NULL;
  return fit_to(w, window_start, handoff, w->cap / 2, w->max_msgs / 2, 1);
}

json_t *durin__window_fit_within(struct durin__window *w, int64_t *window_start,
                                 json_t **handoff, size_t max_bytes,
                                 size_t max_msgs)
{
  return fit_to(w, window_start, handoff, max_bytes, max_msgs, 0);
}

json_t *durin__window_messages(const struct durin__window *w)
{
  return w->msgs;
}

static void render_plan(struct durin_buf *b, json_t *plan)
{
  size_t i;
  json_t *p;

  durin_buf_adds(b, "\n\nYour plan (kept with update_plan; it stays here when "
                    "older turns are dropped):");
  json_array_foreach(plan, i, p)
    durin_buf_addf(b, "\n- [%s] %s", str_or(json_object_get(p, "status"), "?"),
                   str_or(json_object_get(p, "step"), ""));
}

static void render_list(struct durin_buf *b, json_t *ho, const char *key,
                        const char *title)
{
  json_t *a = json_object_get(ho, key), *v;
  size_t i;

  if (!json_array_size(a))
    return;
  durin_buf_addf(b, " %s:", title);
  json_array_foreach(a, i, v)
    durin_buf_addf(b, "%s %s", i ? "," : "", json_string_value(v));
  durin_buf_adds(b, ".");
}

static void render_handoff(struct durin_buf *b, json_t *ho)
{
  json_t *tools = json_object_get(ho, "tools"), *v;
  const char *k;
  size_t i;
  int first = 1;

  durin_buf_addf(
      b,
      "\n\nEarlier turns of this run (its log up to event %lld) were dropped "
      "from this conversation to keep it within its context limits. They "
      "made %lld tool calls (",
      (long long)json_integer_value(json_object_get(ho, "through_seq")),
      (long long)json_integer_value(json_object_get(ho, "calls")));
  json_object_foreach(tools, k, v) {
    durin_buf_addf(b, "%s%s %lld", first ? "" : ", ", k,
                   (long long)json_integer_value(v));
    first = 0;
  }
  if (json_integer_value(json_object_get(ho, "failed")))
    durin_buf_addf(
        b, "), %lld of them failed.",
        (long long)json_integer_value(json_object_get(ho, "failed")));
  else
    durin_buf_adds(b, "), none failed.");
  render_list(b, ho, "written", "Files written");
  render_list(b, ho, "read", "Files read");
  if (json_array_size(json_object_get(ho, "recent")))
    durin_buf_adds(b, " The last of them:");
  json_array_foreach(json_object_get(ho, "recent"), i, v) {
    json_t *ec = json_object_get(v, "exit_code");

    durin_buf_addf(b, "\n- %s %s -> ",
                   json_string_value(json_object_get(v, "tool")),
                   str_or(json_object_get(v, "args"), ""));
    if (ec)
      durin_buf_addf(b, "exit code %lld", (long long)json_integer_value(ec));
    else
      durin_buf_adds(b,
                     json_is_true(json_object_get(v, "ok")) ? "ok" : "failed");
  }
}

json_t *durin__window_request(struct durin__window *w, json_t *plan,
                              json_t *handoff, size_t *bytes)
{
  json_t *m = json_array();

  /* The pinned message changes when the plan or the handoff does, which
   * is seldom: most steps reuse it. The plan is replaced, never changed
   * in place; the handoff is changed in place by durin__window_fit,
   * which drops the pinned message. */
  if (!w->pin_msg || plan != w->pin_plan || handoff != w->pin_handoff) {
    struct durin_buf b;
    size_t from;

    durin_buf_init(&b, 0);
    durin_buf_adds(&b, w->goal);
    if (w->boot) {
      from = b.len;
      durin_buf_adds(&b, "\n\n");
      durin_buf_adds(&b, w->boot);
      cut_tail(&b, from, w->boot_cap);
    }
    if (w->extra) {
      from = b.len;
      durin_buf_adds(&b, "\n\n");
      durin_buf_adds(&b, w->extra);
      cut_tail(&b, from, w->extra_cap);
    }
    if (json_array_size(plan)) {
      from = b.len;
      render_plan(&b, plan);
      cut_tail(&b, from, w->pin_cap);
    }
    if (handoff) {
      from = b.len;
      render_handoff(&b, handoff);
      cut_tail(&b, from, w->pin_cap);
    }
    json_decref(w->pin_msg);
    json_decref(w->pin_plan);
    json_decref(w->pin_handoff);
    w->pin_msg = json_pack("{s:s,s:s}", "role", "user", "content", b.buf);
    durin_buf_release(&b);
    w->pin_plan = json_incref(plan);
    w->pin_handoff = json_incref(handoff);
    w->pin_bytes = json_size(w->pin_msg) + 1 + WIRE_SLACK;
  }
  json_array_append(m, w->pin_msg);
  json_array_extend(m, w->msgs);
  *bytes = w->base + w->pin_bytes + w->bytes;
  return m;
}
