/*
 * What a trigger makes of a payload: its filters (event and fields),
 * who wrote it (GitHub's author_association), and the goal rendered from
 * it. The payload is someone else's text: it is only ever read through
 * dotted paths and copied, capped, as text; nothing in it is parsed as a
 * template again (a value holding "{{x}}" stays that text).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/trigger.h"
#include "durin/util.h"

int durin_trigger_name_check(const char *name, struct durin_err *err)
{
  size_t n = name ? strlen(name) : 0;

  if (!n || n > 64 || name[0] == '.' ||
      strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                   "0123456789_.-") != n)
    return durin_err_set(err, DURIN_EINVAL,
                         "bad trigger name '%.80s': use 1 to 64 of "
                         "A-Z a-z 0-9 _ . - (not starting with '.')",
                         name ? name : "");
  return 0;
}

json_t *durin_trigger_path(const json_t *payload, const char *path)
{
  json_t *v = (json_t *)payload;
  const char *p = path;

  if (!path || !*path)
    return NULL;
  while (v && *p) {
    size_t n = strcspn(p, ".");
    char seg[256];

    if (!n || n >= sizeof(seg))
      return NULL;
    memcpy(seg, p, n);
    seg[n] = 0;
    if (json_is_object(v)) {
      v = json_object_get(v, seg);
    } else if (json_is_array(v) && strspn(seg, "0123456789") == n) {
      v = json_array_get(v, strtoul(seg, NULL, 10));
    } else {
      return NULL;
    }
    p += n;
    if (*p == '.' && !*++p)
      return NULL;
  }
  return v;
}

/* The text of v: a string as is, null as "", others as compact JSON;
 * malloc'd. */
static char *value_text(const json_t *v)
{
  if (json_is_string(v))
    return strdup(json_string_value(v));
  if (json_is_null(v))
    return strdup("");
  return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

static int check_template(const char *t, const char *field,
                          struct durin_err *err)
{
  const char *p = t;

  while ((p = strstr(p, "{{"))) {
    const char *e = strstr(p + 2, "}}");

    if (!e)
      return durin_err_set(
          err, DURIN_EINVAL,
          "%s: '{{' without its '}}' (write {{path.in.payload}})", field);
    p = e + 2;
  }
  return 0;
}

int durin_trigger_config_check(const json_t *c, struct durin_err *err)
{
  const json_t *ev = json_object_get(c, "events"),
               *wh = json_object_get(c, "where"),
               *goal = json_object_get(c, "goal"),
               *labels = json_object_get(c, "labels"),
               *un = json_object_get(c, "untrusted"), *v;
  const char *k;
  size_t i;

  if (!json_is_object(c))
    return durin_err_set(err, DURIN_EINVAL, "a trigger's config is an object");
  if (ev && !json_is_array(ev))
    return durin_err_set(err, DURIN_EINVAL,
                         "events: want a list like [\"issues.labeled\"]");
  json_array_foreach(ev, i, v)
    if (!json_is_string(v) || !json_string_length(v))
      return durin_err_set(err, DURIN_EINVAL,
                           "events[%zu]: want "
                           "a name like "
                           "\"issues.labeled\"",
                           i);
  if (wh && !json_is_array(wh))
    return durin_err_set(err, DURIN_EINVAL,
                         "where: want a list of {\"path\", \"value\"}");
  json_array_foreach(wh, i, v) {
    const json_t *p = json_object_get(v, "path"),
                 *val = json_object_get(v, "value");

    if (!json_is_string(p) || !json_string_length(p) || !json_is_string(val))
      return durin_err_set(err, DURIN_EINVAL,
                           "where[%zu]: want {\"path\": \"label.name\", "
                           "\"value\": \"agent\"} (PATH=VALUE on the command "
                           "line)",
                           i);
  }
  if (goal && (!json_is_string(goal) || !json_string_length(goal)))
    return durin_err_set(err, DURIN_EINVAL,
                         "goal: want a template like \"Work on issue "
                         "#{{issue.number}}\"");
  if (goal && check_template(json_string_value(goal), "goal", err))
    return DURIN_EINVAL;
  if (labels && !json_is_object(labels))
    return durin_err_set(err, DURIN_EINVAL,
                         "labels: want an object of templates");
  json_object_foreach((json_t *)labels, k, v) {
    if (!json_is_string(v))
      return durin_err_set(err, DURIN_EINVAL, "labels.%s: want a template", k);
    if (check_template(json_string_value(v), "labels", err))
      return DURIN_EINVAL;
  }
  if (un && (!json_is_string(un) || (strcmp(json_string_value(un), "ignore") &&
                                     strcmp(json_string_value(un), "spec"))))
    return durin_err_set(err, DURIN_EINVAL,
                         "untrusted: want \"ignore\" or \"spec\"");
  return 0;
}

/* Whether event (NAME or NAME.ACTION) is what want names. */
static int event_is(const char *want, const char *event)
{
  size_t n = strlen(want);

  if (!strcmp(want, event))
    return 1;
  /* "issues" takes "issues.labeled"; "issues.labeled" not "issues". */
  return !strchr(want, '.') && !strncmp(want, event, n) && event[n] == '.';
}

int durin_trigger_match(const json_t *config, const char *event,
                        const json_t *payload, char *reason, size_t reason_len)
{
  const json_t *ev = json_object_get(config, "events"), *v;
  size_t i;
  int any = !json_array_size(ev);

  json_array_foreach(ev, i, v)
    if (event && event_is(json_string_value(v), event))
      any = 1;
  if (!any) {
    snprintf(reason, reason_len, "event '%s' is not one the trigger takes",
             event ? event : "(none)");
    return 0;
  }
  json_array_foreach(json_object_get(config, "where"), i, v) {
    const char *path = json_string_value(json_object_get(v, "path"));
    const char *want = json_string_value(json_object_get(v, "value"));
    json_t *got = durin_trigger_path(payload, path);
    char *text;
    int eq;

    if (!got || json_is_object(got) || json_is_array(got)) {
      snprintf(reason, reason_len, "where %s=%s: the payload has no %s", path,
               want, path);
      return 0;
    }
    text = value_text(got);
    eq = text && !strcmp(text, want);
    if (!eq)
      snprintf(reason, reason_len, "where %s=%s: it is '%.64s'", path, want,
               text ? text : "");
    free(text);
    if (!eq)
      return 0;
  }
  return 1;
}

const char *durin_trigger_association(const json_t *payload)
{
  static const char *const from[] = { "comment", "review", "pull_request",
                                      "issue",   "sender", NULL };
  const char *first = NULL;
  int i;

  /* The least trusted author of what the event carries: an owner's
   * comment on a stranger's issue brings the stranger's text along (the
   * goal may quote issue.body), so the stranger's standing decides. */
  for (i = 0; from[i]; i++) {
    const json_t *a = json_object_get(json_object_get(payload, from[i]),
                                      "author_association");

    if (!json_is_string(a))
      continue;
    if (!durin_trigger_trusted(json_string_value(a)))
      return json_string_value(a);
    if (!first)
      first = json_string_value(a);
  }
  return first;
}

const char *durin_trigger_sender(const json_t *payload)
{
  return json_string_value(
      json_object_get(json_object_get(payload, "sender"), "login"));
}

int durin_trigger_trusted(const char *a)
{
  return a && (!strcmp(a, "OWNER") || !strcmp(a, "MEMBER") ||
               !strcmp(a, "COLLABORATOR"));
}

/* n, or less so that s[0..n) does not end inside a UTF-8 character. */
static size_t utf8_cut(const char *s, size_t n)
{
  while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
    n--;
  return n;
}

/* Appends n bytes of s to the buffer, up to DURIN_TRIGGER_GOAL_MAX. */
static int put(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
  if (*len + n > DURIN_TRIGGER_GOAL_MAX)
    n = utf8_cut(s, DURIN_TRIGGER_GOAL_MAX - *len);
  if (*len + n + 1 > *cap) {
    size_t nc = (*len + n + 1) * 2;
    char *nb = realloc(*buf, nc);

    if (!nb)
      return DURIN_ENOMEM;
    *buf = nb;
    *cap = nc;
  }
  memcpy(*buf + *len, s, n);
  *len += n;
  (*buf)[*len] = 0;
  return 0;
}

int durin_trigger_render(const char *tmpl, const json_t *payload, char **out,
                         struct durin_err *err)
{
  static const char cut[] = " [cut]";
  char *buf = NULL;
  size_t len = 0, cap = 0;
  const char *p = tmpl;
  int r = 0;

  if ((r = put(&buf, &len, &cap, "", 0)))
    goto out;
  while (*p && !r) {
    const char *o = strstr(p, "{{"), *c, *a, *b;
    char path[256];
    json_t *v;
    char *text;
    size_t n;

    if (!o) {
      r = put(&buf, &len, &cap, p, strlen(p));
      break;
    }
    if ((r = put(&buf, &len, &cap, p, (size_t)(o - p))))
      break;
    if (!(c = strstr(o + 2, "}}"))) {
      r = durin_err_set(err, DURIN_EINVAL, "template: '{{' without its '}}'");
      break;
    }
    for (a = o + 2; a < c && *a == ' '; a++)
      ;
    for (b = c; b > a && b[-1] == ' '; b--)
      ;
    n = (size_t)(b - a);
    if (n >= sizeof(path)) {
      r = durin_err_set(err, DURIN_EINVAL, "template: a path over %zu bytes",
                        sizeof(path) - 1);
      break;
    }
    memcpy(path, a, n);
    path[n] = 0;
    if (!(v = durin_trigger_path(payload, path))) {
      r = durin_err_set(err, DURIN_ENOTFOUND,
                        "the payload has no '%s', which the template uses",
                        path);
      break;
    }
    if (!(text = value_text(v))) {
      r = DURIN_ENOMEM;
      break;
    }
    n = strlen(text);
    if (n > DURIN_TRIGGER_VALUE_MAX) {
      r = put(&buf, &len, &cap, text, utf8_cut(text, DURIN_TRIGGER_VALUE_MAX));
      if (!r)
        r = put(&buf, &len, &cap, cut, sizeof(cut) - 1);
    } else {
      r = put(&buf, &len, &cap, text, n);
    }
    free(text);
    p = c + 2;
  }
out:
  if (r == DURIN_ENOMEM)
    durin_err_set(err, r, "out of memory rendering a template");
  if (r) {
    free(buf);
    return r;
  }
  *out = buf;
  return 0;
}
