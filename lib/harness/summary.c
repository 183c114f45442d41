/*
 * Summaries of the agent's context: see summary.h and
 * docs/internals/context.md.
 *
 * A summary is written by the model (what was decided, found, promised)
 * and completed by the harness with what it knows for certain (the plan,
 * the files the file tools touched, the calls that failed, where in the
 * log the turns are). The model's part is bounded here, so an artifact
 * stays a few KB however verbose the model is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/util.h"
#include "harness/summary.h"
#include "harness/window.h"

#define LIST_ITEMS 8   /* per list of an artifact */
#define ITEM_BYTES 300 /* per item */
#define NOTE_BYTES 1000
#define FILES      16 /* per list of files */
#define FAILURES   5
/* What the checkpoint keeps of an artifact or a handoff (the log keeps it
 * whole): its brief, for the last KEPT artifacts; older ones are pointers
 * into the log. */
#define BRIEF_ITEMS 4
#define BRIEF_BYTES 200
#define BRIEF_NOTE  400
#define BRIEF_FILES 8
#define BRIEF_FAILS 3
#define KEPT        3

const char durin__summary_system[] =
    "You write the handoff of a long-running software agent's work: the "
    "conversation that follows is about to be cleared, and the agent will "
    "go on from the goal, its plan and what you write, nothing else. Call "
    "the artifact tool once. Be concrete and brief: file paths, names, "
    "commands, numbers, error messages. Say what was decided and why, what "
    "was found that later work needs, and every commitment still open (what "
    "the agent promised or must still do, in order). Do not repeat the goal "
    "or the plan; do not invent anything the conversation does not show.";

json_t *durin__summary_tools(void)
{
  return json_pack(
      "[{s:s,s:s,s:{s:s,s:{s:{s:s,s:{s:s},s:s},s:{s:s,s:{s:s},s:s},"
      "s:{s:s,s:{s:s},s:s},s:{s:s,s:s}},s:b}}]",
      "name", "artifact", "description",
      "Record the handoff: what was decided, what was found, what is still "
      "open. Call it once.",
      "parameters", "type", "object", "properties", "decided", "type", "array",
      "items", "type", "string", "description",
      "decisions made, one per item, with the reason", "found", "type", "array",
      "items", "type", "string", "description",
      "facts later work needs: paths, names, commands, numbers, causes",
      "commitments", "type", "array", "items", "type", "string", "description",
      "what is promised or still to do, in order, one per item", "notes",
      "type", "string", "description", "anything else the next context needs",
      "additionalProperties", 0);
}

char *durin__summary_ask(const char *phase)
{
  char *s;

  if (phase) {
    if (asprintf(&s,
                 "Phase '%s' ends here. Its conversation is cleared next; "
                 "the following phases start from the goal, the plan and "
                 "this phase's artifact. Call the artifact tool now with "
                 "what this phase decided, what it found and what it leaves "
                 "open.",
                 phase) < 0)
      return NULL;
    return s;
  }
  return strdup("The context window is full and is cleared next; the work "
                "goes on from the goal, the plan and your handoff. Call the "
                "artifact tool now with what was decided, what was found and "
                "every commitment still open.");
}

/* s cut to at most max bytes on a character boundary (new reference). */
static json_t *cut(const char *s, size_t max)
{
  size_t n = strlen(s);

  if (n > max) {
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
      n--;
  }
  return json_stringn(s, n);
}

/* The strings of a list the model wrote, bounded. */
static json_t *items(json_t *v)
{
  json_t *out = json_array(), *x;
  size_t i;

  json_array_foreach(v, i, x) {
    if (json_array_size(out) >= LIST_ITEMS)
      break;
    if (json_is_string(x) && json_string_length(x))
      json_array_append_new(out, cut(json_string_value(x), ITEM_BYTES));
  }
  return out;
}

json_t *durin__summary_read(const struct durin_model_response *r)
{
  json_t *art = NULL, *out;
  int i;

  for (i = 0; i < r->ncalls && !art; i++)
    if (r->calls[i].name && !strcmp(r->calls[i].name, "artifact"))
      art = json_loads(r->calls[i].args ? r->calls[i].args : "", 0, NULL);
  if (json_is_object(art)) {
    json_t *notes = json_object_get(art, "notes");

    out = json_pack(
        "{s:o,s:o,s:o,s:s}", "decided", items(json_object_get(art, "decided")),
        "found", items(json_object_get(art, "found")), "commitments",
        items(json_object_get(art, "commitments")), "source", "artifact");
    if (json_is_string(notes) && json_string_length(notes))
      json_object_set_new(out, "notes",
                          cut(json_string_value(notes), NOTE_BYTES));
    json_decref(art);
    return out;
  }
  json_decref(art);
  /* No artifact: its text is the summary, whatever it says. */
  out = json_pack("{s:[],s:[],s:[],s:s}", "decided", "found", "commitments",
                  "source", r->text && *r->text ? "text" : "none");
  if (r->text && *r->text)
    json_object_set_new(out, "notes", cut(r->text, NOTE_BYTES));
  return out;
}

void durin__summary_facts(json_t *art, json_t *plan, json_t *compactions)
{
  json_t *done = json_array(), *open = json_array(), *p, *c, *call;
  json_t *written = json_array(), *read = json_array(), *failed = json_array();
  size_t i, j;

  json_array_foreach(plan, i, p) {
    const char *st = json_string_value(json_object_get(p, "status"));
    const char *step = json_string_value(json_object_get(p, "step"));

    if (step)
      json_array_append_new(st && !strcmp(st, "done") ? done : open,
                            cut(step, ITEM_BYTES));
  }
  json_array_foreach(compactions, i, c) {
    json_t *files = json_object_get(c, "files"), *f;

    json_array_foreach(json_object_get(files, "written"), j, f)
      durin__json_add_last(written, f, FILES);
    json_array_foreach(json_object_get(files, "read"), j, f)
      durin__json_add_last(read, f, FILES);
    json_array_foreach(json_object_get(c, "calls"), j, call) {
      if (json_is_true(json_object_get(call, "ok")))
        continue;
      json_array_append(failed, call);
      while (json_array_size(failed) > FAILURES)
        json_array_remove(failed, 0);
    }
  }
  json_object_set_new(art, "plan_done", done);
  json_object_set_new(art, "plan_open", open);
  json_object_set_new(art, "files_written", written);
  json_object_set_new(art, "files_read", read);
  json_object_set_new(art, "failures", failed);
}

/* The first max strings of list a, each cut to bytes. */
static json_t *brief_list(json_t *a, size_t max, size_t bytes)
{
  json_t *out = json_array(), *v;
  size_t i;

  json_array_foreach(a, i, v) {
    if (i >= max)
      break;
    json_array_append_new(out, json_is_string(v) ?
                                   cut(json_string_value(v), bytes) :
                                   json_deep_copy(v));
  }
  return out;
}

/* The last max items of list a. */
static json_t *last_items(json_t *a, size_t max)
{
  json_t *out = json_array();
  size_t n = json_array_size(a), i;

  for (i = n > max ? n - max : 0; i < n; i++)
    json_array_append(out, json_array_get(a, i));
  return out;
}

json_t *durin__summary_brief(json_t *art)
{
  static const char *const keep[] = { "phase",    "index",       "step",
                                      "from_seq", "through_seq", "source",
                                      NULL };
  static const char *const lists[] = { "commitments", "decided", "found",
                                       NULL };
  json_t *b = json_object(), *notes = json_object_get(art, "notes");
  int i;

  for (i = 0; keep[i]; i++)
    if (json_object_get(art, keep[i]))
      json_object_set(b, keep[i], json_object_get(art, keep[i]));
  for (i = 0; lists[i]; i++)
    json_object_set_new(
        b, lists[i],
        brief_list(json_object_get(art, lists[i]), BRIEF_ITEMS, BRIEF_BYTES));
  if (json_is_string(notes))
    json_object_set_new(b, "notes", cut(json_string_value(notes), BRIEF_NOTE));
  json_object_set_new(
      b, "files_written",
      last_items(json_object_get(art, "files_written"), BRIEF_FILES));
  json_object_set_new(
      b, "files_read",
      last_items(json_object_get(art, "files_read"), BRIEF_FILES));
  json_object_set_new(
      b, "failures", last_items(json_object_get(art, "failures"), BRIEF_FAILS));
  json_object_set_new(
      b, "plan_open",
      brief_list(json_object_get(art, "plan_open"), BRIEF_ITEMS, BRIEF_BYTES));
  return b;
}

void durin__summary_keep(json_t **artifacts, json_t *art)
{
  static const char *const ptr[] = { "phase",    "index",       "step",
                                     "from_seq", "through_seq", NULL };
  size_t n, i;
  int k;

  if (!*artifacts)
    *artifacts = json_array();
  json_array_append_new(*artifacts, durin__summary_brief(art));
  n = json_array_size(*artifacts);
  for (i = 0; i + KEPT < n; i++) {
    json_t *a = json_array_get(*artifacts, i), *p;

    if (json_is_true(json_object_get(a, "pointer")))
      continue;
    p = json_pack("{s:b}", "pointer", 1);
    for (k = 0; ptr[k]; k++)
      if (json_object_get(a, ptr[k]))
        json_object_set(p, ptr[k], json_object_get(a, ptr[k]));
    json_array_set_new(*artifacts, i, p);
  }
}

static void render_items(struct durin_buf *b, json_t *art, const char *key,
                         const char *title)
{
  json_t *a = json_object_get(art, key), *v;
  size_t i;

  if (!json_array_size(a))
    return;
  durin_buf_addf(b, "\n%s:", title);
  json_array_foreach(a, i, v)
    durin_buf_addf(b, "\n- %s", json_string_value(v));
}

static void render_files(struct durin_buf *b, json_t *art, const char *key,
                         const char *title)
{
  json_t *a = json_object_get(art, key), *v;
  size_t i;

  if (!json_array_size(a))
    return;
  durin_buf_addf(b, "\n%s:", title);
  json_array_foreach(a, i, v)
    durin_buf_addf(b, "%s %s", i ? "," : "", json_string_value(v));
}

/* An artifact or a handoff: the model's part, then the harness's. */
static void render_artifact(struct durin_buf *b, json_t *art)
{
  json_t *notes = json_object_get(art, "notes"), *f;
  size_t i;

  render_items(b, art, "commitments", "Still open (commitments)");
  render_items(b, art, "decided", "Decided");
  render_items(b, art, "found", "Found");
  if (json_is_string(notes))
    durin_buf_addf(b, "\nNotes: %s", json_string_value(notes));
  render_files(b, art, "files_written", "Files written");
  render_files(b, art, "files_read", "Files read");
  if (json_array_size(json_object_get(art, "failures")))
    durin_buf_adds(b, "\nCalls that failed:");
  json_array_foreach(json_object_get(art, "failures"), i, f) {
    json_t *ec = json_object_get(f, "exit_code");

    durin_buf_addf(b, "\n- %s %s -> ",
                   json_string_value(json_object_get(f, "tool")),
                   json_is_string(json_object_get(f, "args")) ?
                       json_string_value(json_object_get(f, "args")) :
                       "");
    if (ec)
      durin_buf_addf(b, "exit code %lld", (long long)json_integer_value(ec));
    else
      durin_buf_adds(b, "failed");
    durin_buf_addf(b, " (event %lld)",
                   (long long)json_integer_value(json_object_get(f, "seq")));
  }
}

static void render_until(struct durin_buf *b, const struct durin_spec_phase *p)
{
  switch (p->until) {
  case DURIN_UNTIL_PLAN:
    durin_buf_adds(b, "it ends when you call update_plan");
    break;
  case DURIN_UNTIL_STEPS:
    durin_buf_addf(b, "it ends after %lld of your steps", (long long)p->steps);
    break;
  case DURIN_UNTIL_CHECK:
    durin_buf_addf(b, "it ends when `%s` exits 0 (run after each step)",
                   p->check.run);
    break;
  case DURIN_UNTIL_FINISH:
  default:
    durin_buf_adds(b, "the last phase: it ends when you call finish");
    break;
  }
}

/* Appends part to b, cut to at most max bytes (on a character
 * boundary) with a note saying where the rest is. */
static void add_part(struct durin_buf *b, struct durin_buf *part, size_t max)
{
  static const char note[] = " [... cut; the whole is in the run's log]";
  size_t n = part->len;

  if (n > max) {
    n = max > sizeof(note) ? max - sizeof(note) : 0;
    while (n > 0 && ((unsigned char)part->buf[n] & 0xC0) == 0x80)
      n--;
  }
  durin_buf_add(b, part->buf, n);
  if (n < part->len)
    durin_buf_adds(b, note);
  durin_buf_reset(part);
}

char *durin__summary_render(const struct durin_spec *spec, json_t *phase,
                            json_t *artifacts, json_t *reset, size_t cap)
{
  struct durin_buf b, part;
  json_t *art;
  size_t i, n = json_array_size(artifacts), full = 0, each;

  durin_buf_init(&b, 0);
  durin_buf_init(&part, 0);
  /* The newest first, each with a budget of its own: the current phase,
   * the last reset's handoff (up to half), then the artifacts, newest
   * first, sharing the rest. */
  if (phase && spec->nphases) {
    int64_t k = json_integer_value(json_object_get(phase, "index"));
    const struct durin_spec_phase *p;
    int t;

    if (k < 0 || k >= spec->nphases)
      k = spec->nphases - 1;
    p = &spec->phases[k];
    durin_buf_addf(&part,
                   "This run works in %d phases. Now: phase %lld of %d, "
                   "'%s'; ",
                   spec->nphases, (long long)k + 1, spec->nphases, p->name);
    render_until(&part, p);
    if (p->ntools) {
      durin_buf_adds(&part, ". Its tools:");
      for (t = 0; t < p->ntools; t++)
        durin_buf_addf(&part, "%s %s", t ? "," : "", p->tools[t]);
    }
    durin_buf_adds(&part, ".");
    add_part(&b, &part, cap / 4);
  }
  if (reset) {
    json_t *ho = json_object_get(reset, "handoff");

    durin_buf_addf(
        &part,
        "\n\nThe conversation was reset %lld time(s) to keep it within its "
        "context cap; the turns before this one are events %lld to %lld of "
        "the run's log. The handoff written at the last reset:",
        (long long)json_integer_value(json_object_get(reset, "count")),
        (long long)json_integer_value(json_object_get(ho, "from_seq")),
        (long long)json_integer_value(json_object_get(ho, "through_seq")));
    render_items(&part, ho, "plan_open", "Plan steps open");
    render_artifact(&part, ho);
    add_part(&b, &part, cap > b.len ? (cap - b.len) / 2 : 0);
  }
  json_array_foreach(artifacts, i, art)
    full += !json_is_true(json_object_get(art, "pointer"));
  each = full && cap > b.len ? (cap - b.len) / (full + 1) : 0;
  for (i = n; i-- > 0;) {
    art = json_array_get(artifacts, i);
    durin_buf_addf(
        &part,
        "\n\nPhase '%s' ended after step %lld; its turns are events %lld to "
        "%lld of the run's log.",
        json_string_value(json_object_get(art, "phase")),
        (long long)json_integer_value(json_object_get(art, "step")),
        (long long)json_integer_value(json_object_get(art, "from_seq")),
        (long long)json_integer_value(json_object_get(art, "through_seq")));
    if (json_is_true(json_object_get(art, "pointer"))) {
      durin_buf_adds(&part, " Its artifact is its phase_ended event.");
      add_part(&b, &part, 400);
      continue;
    }
    durin_buf_adds(&part, " Its artifact:");
    render_artifact(&part, art);
    add_part(&b, &part, each);
  }
  durin_buf_release(&part);
  if (!b.len) {
    durin_buf_release(&b);
    return NULL;
  }
  return durin_buf_detach(&b, NULL);
}
