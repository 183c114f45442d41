/*
 * A shell line as the policy judges it: the simple commands in it, each
 * as "name arg arg" with quotes removed and wrappers looked through.
 *
 * This is not a shell. It errs towards finding more commands, never
 * fewer: every separator (; & | && || newline ( ) { }) ends one, and the
 * insides of $(...) and `...` are commands of their own.
 */
#include <stdlib.h>
#include <string.h>

#include "durin/policy.h"

struct list {
  char **v;
  int n, cap;
};

static void push(struct list *l, char *s)
{
  if (l->n + 2 > l->cap) {
    l->cap = l->cap ? l->cap * 2 : 8;
    l->v = realloc(l->v, (size_t)l->cap * sizeof(*l->v));
    if (!l->v)
      abort();
  }
  l->v[l->n++] = s;
  l->v[l->n] = NULL;
}

struct word {
  char *s;
  size_t len, cap;
};

static void wadd(struct word *w, char c)
{
  if (w->len + 2 > w->cap) {
    w->cap = w->cap ? w->cap * 2 : 32;
    w->s = realloc(w->s, w->cap);
    if (!w->s)
      abort();
  }
  w->s[w->len++] = c;
  w->s[w->len] = 0;
}

/* Makes w a word even if it stays empty ('' is an argument). */
static void wtouch(struct word *w)
{
  wadd(w, 0);
  w->len--;
}

static void split(const char *line, struct list *out, int depth);

static int is_assignment(const char *w)
{
  const char *p = w;

  if (!(*p == '_' || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
    return 0;
  while (*p && *p != '=') {
    if (!(*p == '_' || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
          (*p >= '0' && *p <= '9')))
      return 0;
    p++;
  }
  return *p == '=';
}

static const char *base(const char *w)
{
  const char *s = strrchr(w, '/');

  return s && s[1] ? s + 1 : w;
}

/* One simple command's words: look through wrappers, then emit it. */
static void emit(struct list *words, struct list *out, int depth)
{
  int i = 0;

  for (;;) {
    const char *b;

    while (i < words->n && is_assignment(words->v[i]))
      i++;
    if (i >= words->n)
      return;
    b = base(words->v[i]);
    if (!strcmp(b, "env") || !strcmp(b, "command") || !strcmp(b, "exec") ||
        !strcmp(b, "nohup") || !strcmp(b, "time") || !strcmp(b, "sudo") ||
        !strcmp(b, "nice") || !strcmp(b, "builtin")) {
      i++;
      /* their options, and env's assignments */
      while (i < words->n &&
             (words->v[i][0] == '-' || is_assignment(words->v[i])))
        i++;
      continue;
    }
    if ((!strcmp(b, "sh") || !strcmp(b, "bash") || !strcmp(b, "dash") ||
         !strcmp(b, "zsh") || !strcmp(b, "ksh")) &&
        i + 1 < words->n && words->v[i + 1][0] == '-' &&
        strchr(words->v[i + 1], 'c')) {
      int j = i + 1;

      while (j < words->n && words->v[j][0] == '-')
        j++;
      if (j < words->n && depth < 8)
        split(words->v[j], out, depth + 1);
      return;
    }
    break;
  }
  {
    struct word w = { 0 };
    int j;

    for (j = i; j < words->n; j++) {
      const char *p = j == i ? base(words->v[j]) : words->v[j];

      if (j > i)
        wadd(&w, ' ');
      while (*p)
        wadd(&w, *p++);
    }
    push(out, w.s);
  }
}

static void end_command(struct list *words, struct list *out, int depth)
{
  int i;

  emit(words, out, depth);
  for (i = 0; i < words->n; i++)
    free(words->v[i]);
  words->n = 0;
}

static void end_word(struct word *w, int *have, struct list *words)
{
  if (*have) {
    push(words, w->s ? w->s : calloc(1, 1));
    memset(w, 0, sizeof(*w));
  }
  *have = 0;
}

/* The end of a $( ... ) starting after "$(": the index of its ")". */
static size_t close_paren(const char *s, size_t i)
{
  int level = 1;
  char q = 0;

  for (; s[i]; i++) {
    if (q) {
      if (s[i] == '\\' && q == '"' && s[i + 1])
        i++;
      else if (s[i] == q)
        q = 0;
    } else if (s[i] == '\'' || s[i] == '"') {
      q = s[i];
    } else if (s[i] == '\\' && s[i + 1]) {
      i++;
    } else if (s[i] == '(') {
      level++;
    } else if (s[i] == ')' && --level == 0) {
      return i;
    }
  }
  return i;
}

/* A substitution's inside is judged as commands of its own; the word
 * keeps its text, so regexes still see it. */
static size_t substitution(const char *s, size_t i, struct word *w,
                           struct list *out, int depth)
{
  size_t start, end;
  char *inner;

  if (s[i] == '`') {
    start = i + 1;
    end = start;
    while (s[end] && s[end] != '`')
      end += s[end] == '\\' && s[end + 1] ? 2 : 1;
  } else {
    start = i + 2;
    end = close_paren(s, start);
  }
  inner = strndup(s + start, end - start);
  if (depth < 8)
    split(inner, out, depth + 1);
  free(inner);
  for (; i < end && s[i]; i++)
    wadd(w, s[i]);
  if (s[i])
    wadd(w, s[i]);
  return s[i] ? i : i - 1;
}

static void split(const char *s, struct list *out, int depth)
{
  struct list words = { 0 };
  struct word w = { 0 };
  int have = 0;
  size_t i;

  for (i = 0; s[i]; i++) {
    char c = s[i];

    if (c == '\'') {
      have = 1;
      wtouch(&w);
      for (i++; s[i] && s[i] != '\''; i++)
        wadd(&w, s[i]);
      if (!s[i])
        break;
    } else if (c == '"') {
      have = 1;
      wtouch(&w);
      for (i++; s[i] && s[i] != '"'; i++) {
        if (s[i] == '\\' && s[i + 1] && strchr("\"\\$`\n", s[i + 1]))
          wadd(&w, s[++i]);
        else if ((s[i] == '$' && s[i + 1] == '(') || s[i] == '`')
          i = substitution(s, i, &w, out, depth);
        else
          wadd(&w, s[i]);
      }
      if (!s[i])
        break;
    } else if (c == '\\') {
      if (s[i + 1] == '\n') {
        i++;
        continue;
      }
      if (s[i + 1]) {
        have = 1;
        wadd(&w, s[++i]);
      }
    } else if ((c == '$' && s[i + 1] == '(') || c == '`') {
      have = 1;
      i = substitution(s, i, &w, out, depth);
    } else if (c == '$' && s[i + 1] == '{') {
      have = 1;
      for (; s[i] && s[i] != '}'; i++)
        wadd(&w, s[i]);
      if (!s[i])
        break;
      wadd(&w, '}');
    } else if (c == '#' && !have) {
      while (s[i + 1] && s[i + 1] != '\n')
        i++;
    } else if (strchr(";&|\n(){}", c)) {
      end_word(&w, &have, &words);
      end_command(&words, out, depth);
    } else if (c == ' ' || c == '\t') {
      end_word(&w, &have, &words);
    } else {
      have = 1;
      wadd(&w, c);
    }
  }
  end_word(&w, &have, &words);
  end_command(&words, out, depth);
  free(w.s);
  free(words.v);
}

char **durin_policy_commands(const char *line)
{
  struct list out = { 0 };

  split(line ? line : "", &out, 0);
  if (!out.v)
    push(&out, strdup(""));
  return out.v;
}

void durin_policy_words_free(char **v)
{
  int i;

  for (i = 0; v && v[i]; i++)
    free(v[i]);
  free(v);
}
