/* The policy: parsing and deciding. See include/durin/policy.h. */
#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "durin/policy.h"
#include "durin/tools.h"

struct rule {
  char name[96];
  char *tool; /* NULL or "*": any */
  char *path; /* glob */
  int access; /* 0 any, 1 read, 2 write */
  char *prefix;
  regex_t re;
  int has_re;
  char *host, *method;
  double cost_over;
  int64_t steps_over;
  int has_cost, has_steps;
  enum durin_policy_action action;
};

struct durin_policy {
  char origin[16];
  enum durin_policy_action dflt;
  json_t *tools; /* name -> action string */
  struct rule *rules;
  int nrules;
};

const char *durin_policy_action_name(enum durin_policy_action a)
{
  return a == DURIN_POLICY_DENY ? "deny" :
         a == DURIN_POLICY_ASK  ? "ask" :
                                  "allow";
}

static int action_of(json_t *v, enum durin_policy_action *a)
{
  const char *s = json_string_value(v);

  if (!s)
    return -1;
  if (!strcmp(s, "allow"))
    *a = DURIN_POLICY_ALLOW;
  else if (!strcmp(s, "ask"))
    *a = DURIN_POLICY_ASK;
  else if (!strcmp(s, "deny"))
    *a = DURIN_POLICY_DENY;
  else
    return -1;
  return 0;
}

static char *opt_str(json_t *o, const char *k, int *bad)
{
  json_t *v = json_object_get(o, k);

  if (!v)
    return NULL;
  if (!json_is_string(v) || !*json_string_value(v)) {
    *bad = 1;
    return NULL;
  }
  return strdup(json_string_value(v));
}

static int parse_rule(json_t *o, int i, struct rule *r, struct durin_err *err)
{
  static const char *const known[] = {
    "name",           "tool",          "path", "access",
    "command_prefix", "command_regex", "host", "method",
    "when",           "action",        NULL
  };
  const char *k;
  json_t *v, *when;
  int bad = 0, j;

  if (!json_is_object(o))
    return durin_err_set(err, DURIN_ESPEC, "policy.rules[%d] must be an object",
                         i);
  json_object_foreach(o, k, v) {
    for (j = 0; known[j] && strcmp(known[j], k); j++)
      ;
    if (!known[j])
      return durin_err_set(err, DURIN_ESPEC,
                           "policy.rules[%d]: field '%s' is not known "
                           "(name, tool, path, access, command_prefix, "
                           "command_regex, host, method, when, action)",
                           i, k);
  }
  if (action_of(json_object_get(o, "action"), &r->action))
    return durin_err_set(err, DURIN_ESPEC,
                         "policy.rules[%d].action must be \"allow\", \"ask\" "
                         "or \"deny\"",
                         i);
  if (json_is_string(json_object_get(o, "name")))
    snprintf(r->name, sizeof(r->name), "%s",
             json_string_value(json_object_get(o, "name")));
  else
    snprintf(r->name, sizeof(r->name), "rule %d", i + 1);
  r->tool = opt_str(o, "tool", &bad);
  r->path = opt_str(o, "path", &bad);
  r->prefix = opt_str(o, "command_prefix", &bad);
  r->host = opt_str(o, "host", &bad);
  r->method = opt_str(o, "method", &bad);
  if (bad)
    return durin_err_set(err, DURIN_ESPEC,
                         "policy.rules[%d]: matchers are non-empty strings", i);
  if ((v = json_object_get(o, "access"))) {
    const char *a = json_string_value(v);

    if (!a || (strcmp(a, "read") && strcmp(a, "write")))
      return durin_err_set(err, DURIN_ESPEC,
                           "policy.rules[%d].access is \"read\" or \"write\"",
                           i);
    r->access = !strcmp(a, "read") ? 1 : 2;
  }
  if ((v = json_object_get(o, "command_regex"))) {
    int rc;

    if (!json_is_string(v))
      return durin_err_set(err, DURIN_ESPEC,
                           "policy.rules[%d].command_regex must be a string",
                           i);
    rc = regcomp(&r->re, json_string_value(v), REG_EXTENDED | REG_NOSUB);
    if (rc) {
      char msg[128];

      regerror(rc, &r->re, msg, sizeof(msg));
      return durin_err_set(err, DURIN_ESPEC,
                           "policy.rules[%d].command_regex: %s", i, msg);
    }
    r->has_re = 1;
  }
  if ((when = json_object_get(o, "when"))) {
    json_t *c = json_object_get(when, "cost_usd_over");
    json_t *s = json_object_get(when, "steps_over");

    if (!json_is_object(when) || (c && !json_is_number(c)) ||
        (s && !json_is_integer(s)) ||
        json_object_size(when) != (size_t)(!!c + !!s))
      return durin_err_set(err, DURIN_ESPEC,
                           "policy.rules[%d].when takes cost_usd_over (a "
                           "number) and steps_over (an integer)",
                           i);
    if (c) {
      r->has_cost = 1;
      r->cost_over = json_number_value(c);
    }
    if (s) {
      r->has_steps = 1;
      r->steps_over = json_integer_value(s);
    }
  }
  return 0;
}

int durin_policy_parse(json_t *obj, const char *origin,
                       struct durin_policy **out, struct durin_err *err)
{
  struct durin_policy *p = calloc(1, sizeof(*p));
  json_t *v, *rules;
  const char *k;
  size_t i;
  int r = 0;

  snprintf(p->origin, sizeof(p->origin), "%s", origin);
  p->dflt = DURIN_POLICY_ALLOW;
  *out = NULL;
  if (!obj)
    goto done;
  if (!json_is_object(obj)) {
    r = durin_err_set(err, DURIN_ESPEC, "the policy must be an object");
    goto fail;
  }
  json_object_foreach(obj, k, v) {
    if (strcmp(k, "default") && strcmp(k, "tools") && strcmp(k, "rules")) {
      r = durin_err_set(err, DURIN_ESPEC,
                        "policy: field '%s' is not known (default, tools, "
                        "rules)",
                        k);
      goto fail;
    }
  }
  if ((v = json_object_get(obj, "default")) && action_of(v, &p->dflt)) {
    r = durin_err_set(err, DURIN_ESPEC,
                      "policy.default must be \"allow\", \"ask\" or \"deny\"");
    goto fail;
  }
  if ((v = json_object_get(obj, "tools"))) {
    enum durin_policy_action a;
    json_t *t;

    if (!json_is_object(v)) {
      r = durin_err_set(err, DURIN_ESPEC,
                        "policy.tools maps tool names to actions");
      goto fail;
    }
    json_object_foreach(v, k, t) {
      if (action_of(t, &a)) {
        r = durin_err_set(err, DURIN_ESPEC,
                          "policy.tools.%s must be \"allow\", \"ask\" or "
                          "\"deny\"",
                          k);
        goto fail;
      }
      if (!durin_tool_find(k) && !strstr(k, "__")) {
        r = durin_err_set(err, DURIN_ESPEC,
                          "policy.tools.%s: no such tool (known: %s, and "
                          "SERVER__TOOL for the tools of MCP servers)",
                          k, durin_tool_names());
        goto fail;
      }
    }
    p->tools = json_incref(v);
  }
  rules = json_object_get(obj, "rules");
  if (rules && !json_is_array(rules)) {
    r = durin_err_set(err, DURIN_ESPEC, "policy.rules must be an array");
    goto fail;
  }
  p->rules = calloc(json_array_size(rules) + 1, sizeof(*p->rules));
  json_array_foreach(rules, i, v) {
    if ((r = parse_rule(v, (int)i, &p->rules[i], err))) {
      p->nrules = (int)i + 1;
      goto fail;
    }
    p->nrules = (int)i + 1;
  }
done:
  *out = p;
  return 0;
fail:
  durin_policy_free(p);
  return r;
}

void durin_policy_free(struct durin_policy *p)
{
  int i;

  if (!p)
    return;
  for (i = 0; i < p->nrules; i++) {
    struct rule *r = &p->rules[i];

    free(r->tool);
    free(r->path);
    free(r->prefix);
    free(r->host);
    free(r->method);
    if (r->has_re)
      regfree(&r->re);
  }
  free(p->rules);
  json_decref(p->tools);
  free(p);
}

/* A glob over a path: * and ? within a segment, ** across segments. */
static int glob_match(const char *g, const char *s)
{
  for (; *g; g++, s++) {
    if (g[0] == '*' && g[1] == '*') {
      g += 2;
      if (*g == '/')
        g++; /* a/(two stars)/b also matches a/b */
      for (;; s++) {
        if (glob_match(g, s))
          return 1;
        if (!*s)
          return 0;
      }
    }
    if (*g == '*') {
      for (;; s++) {
        if (glob_match(g + 1, s))
          return 1;
        if (!*s || *s == '/')
          return 0;
      }
    }
    if (!*s || (*g != '?' && *g != *s) || (*g == '?' && *s == '/'))
      return 0;
  }
  return !*s;
}

/* Whether cmd starts with the words of prefix. */
static int prefix_match(const char *prefix, const char *cmd)
{
  size_t n = strlen(prefix);

  while (n && prefix[n - 1] == ' ')
    n--;
  return !strncmp(cmd, prefix, n) && (cmd[n] == 0 || cmd[n] == ' ');
}

/* The host of a URL, lower-cased, by libcurl's parser (the same one the
 * request would go through); "" when it is not a URL. */
static void url_host(const char *url, char *out, size_t len)
{
  CURLU *u = curl_url();
  char *host = NULL;
  size_t i;

  out[0] = 0;
  if (u && !curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) &&
      !curl_url_get(u, CURLUPART_HOST, &host, 0)) {
    /* IPv6 literals come bracketed: the policy sees the address. */
    const char *h = host[0] == '[' ? host + 1 : host;

    for (i = 0; h[i] && h[i] != ']' && i + 1 < len; i++)
      out[i] = (char)((h[i] >= 'A' && h[i] <= 'Z') ? h[i] - 'A' + 'a' : h[i]);
    out[i] = 0;
  }
  curl_free(host);
  curl_url_cleanup(u);
}

/* What a call is, for matching. */
struct call {
  const char *tool;
  const char *path; /* resolved, relative to the workspace; NULL if none */
  int access;       /* 1 read, 2 write, 0 neither */
  const char *cmd;  /* one simple command; NULL if none */
  const char *raw;  /* the whole command line */
  const char *host, *method;
};

/* "SERVER__*": every tool of an MCP server. */
static int server_match(const char *pat, const char *tool)
{
  size_t n = strlen(pat);

  return n > 3 && !strcmp(pat + n - 3, "__*") && !strncmp(pat, tool, n - 1);
}

static int rule_matches(const struct rule *r, const struct call *c,
                        const struct durin_policy_state *st)
{
  if (r->tool && strcmp(r->tool, "*") && strcmp(r->tool, c->tool) &&
      !server_match(r->tool, c->tool))
    return 0;
  if (r->path && (!c->path || !glob_match(r->path, c->path)))
    return 0;
  if (r->access && r->access != c->access)
    return 0;
  if (r->prefix && (!c->cmd || !prefix_match(r->prefix, c->cmd)))
    return 0;
  if (r->has_re && (!c->cmd || (regexec(&r->re, c->cmd, 0, NULL, 0) &&
                                regexec(&r->re, c->raw, 0, NULL, 0))))
    return 0;
  if (r->host && (!c->host || !glob_match(r->host, c->host)))
    return 0;
  if (r->method && (!c->method || strcasecmp(r->method, c->method)))
    return 0;
  if (r->has_cost && !(st && st->cost_usd > r->cost_over))
    return 0;
  if (r->has_steps && !(st && st->steps > r->steps_over))
    return 0;
  return 1;
}

static void set(struct durin_policy_decision *d, enum durin_policy_action a,
                const char *origin, const char *rule, const char *why)
{
  d->action = a;
  snprintf(d->origin, sizeof(d->origin), "%s", origin);
  snprintf(d->rule, sizeof(d->rule), "%s", rule);
  snprintf(d->why, sizeof(d->why), "%s", why);
}

/* One layer's decision on one (simple) call. */
static void decide_one(const struct durin_policy *p, const struct call *c,
                       const struct durin_policy_state *st,
                       struct durin_policy_decision *d)
{
  char why[512], rule[96];
  json_t *t;
  int i;

  for (i = 0; i < p->nrules; i++) {
    const struct rule *r = &p->rules[i];

    if (!rule_matches(r, c, st))
      continue;
    snprintf(why, sizeof(why), "%s%s%s%s%s", c->tool, c->path ? " on " : "",
             c->path ? c->path : "", c->cmd ? ": " : "", c->cmd ? c->cmd : "");
    set(d, r->action, p->origin, r->name, why);
    return;
  }
  if (p->tools && (t = json_object_get(p->tools, c->tool))) {
    enum durin_policy_action a = DURIN_POLICY_ALLOW;

    action_of(t, &a);
    snprintf(rule, sizeof(rule), "tools.%s", c->tool);
    set(d, a, p->origin, rule, "the tool's default");
    return;
  }
  set(d, p->dflt, p->origin, "default", "no rule matched");
}

/* Keeps the more severe of d and n in d. */
static void worst(struct durin_policy_decision *d,
                  const struct durin_policy_decision *n)
{
  if (n->action > d->action)
    *d = *n;
}

/*
 * The path a file tool would touch, relative to the workspace, after
 * "..", absolute paths and symlinks of the part that exists; -1 if it
 * leaves the workspace.
 */
static int resolve(const char *ws, const char *path, char *out, size_t len)
{
  char lex[PATH_MAX * 2], real_ws[PATH_MAX], buf[PATH_MAX * 2], *seg, *save;
  char tail[PATH_MAX * 2] = "";
  size_t wl;

  if (!realpath(ws, real_ws))
    return -1;
  wl = strlen(real_ws);
  /* Lexically first: "." and "..", never above the workspace. */
  snprintf(buf, sizeof(buf), "%s", path);
  lex[0] = 0;
  if (path[0] == '/') {
    size_t l = strlen(ws);

    if (!strncmp(path, ws, l) && (path[l] == '/' || !path[l]))
      snprintf(buf, sizeof(buf), "%s", path + l);
    else if (!strncmp(path, real_ws, wl) && (path[wl] == '/' || !path[wl]))
      snprintf(buf, sizeof(buf), "%s", path + wl);
    else
      return -1;
  }
  for (seg = strtok_r(buf, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
    if (!strcmp(seg, "."))
      continue;
    if (!strcmp(seg, "..")) {
      char *slash = strrchr(lex, '/');

      if (!lex[0])
        return -1;
      if (slash)
        *slash = 0;
      else
        lex[0] = 0;
      continue;
    }
    if (lex[0])
      strncat(lex, "/", sizeof(lex) - strlen(lex) - 1);
    strncat(lex, seg, sizeof(lex) - strlen(lex) - 1);
  }
  /* Then through symlinks: the longest part that exists, really. */
  snprintf(buf, sizeof(buf), "%s/%s", real_ws, lex);
  for (;;) {
    char r[PATH_MAX];
    char *slash;

    if (realpath(buf, r)) {
      if (strncmp(r, real_ws, wl) || (r[wl] != '/' && r[wl]))
        return -1;
      snprintf(out, len, "%s%s%s", r[wl] ? r + wl + 1 : "",
               r[wl] && tail[0] ? "/" : "", tail);
      if (!out[0])
        snprintf(out, len, ".");
      return 0;
    }
    slash = strrchr(buf, '/');
    if (!slash || (size_t)(slash - buf) < wl)
      return -1;
    {
      char t[PATH_MAX * 2];

      snprintf(t, sizeof(t), "%s%s%s", slash + 1, tail[0] ? "/" : "", tail);
      snprintf(tail, sizeof(tail), "%s", t);
    }
    *slash = 0;
  }
}

void durin_policy_decide(const struct durin_policy *const *layers, int n,
                         const char *workspace, const char *tool, json_t *args,
                         const struct durin_policy_state *st,
                         struct durin_policy_decision *d)
{
  char path[PATH_MAX * 2], host[256];
  struct call c;
  char **cmds = NULL;
  int i, k;

  memset(d, 0, sizeof(*d));
  memset(&c, 0, sizeof(c));
  c.tool = tool;
  /* SERVER__TOOL is an MCP server's tool (durin/mcp.h): no built-in has
   * "__" in its name, and the harness resolved it among the run's. */
  if (!durin_tool_find(tool) && !strstr(tool, "__")) {
    set(d, DURIN_POLICY_DENY, "builtin", "unknown tool",
        "durin does not know this tool");
    return;
  }
  if (!strcmp(tool, "read_file") || !strcmp(tool, "list_files"))
    c.access = 1;
  else if (!strcmp(tool, "write_file") || !strcmp(tool, "edit_file"))
    c.access = 2;
  if (c.access) {
    const char *p = json_string_value(json_object_get(args, "path"));

    if (resolve(workspace, p && *p ? p : ".", path, sizeof(path))) {
      set(d, DURIN_POLICY_DENY, "builtin", "outside the workspace",
          "the path leaves the workspace");
      return;
    }
    c.path = path;
  }
  if (json_is_string(json_object_get(args, "url"))) {
    url_host(json_string_value(json_object_get(args, "url")), host,
             sizeof(host));
    c.host = host;
  }
  c.method = json_string_value(json_object_get(args, "method"));
  if (!strcmp(tool, "bash")) {
    c.raw = json_string_value(json_object_get(args, "command"));
    cmds = durin_policy_commands(c.raw);
  }
  set(d, DURIN_POLICY_ALLOW, "builtin", "default", "no policy");
  for (i = 0; i < n; i++) {
    struct durin_policy_decision one;

    if (!layers[i])
      continue;
    /* Each simple command on its own; the most severe decides. */
    for (k = 0; cmds ? cmds[k] != NULL : k == 0; k++) {
      c.cmd = cmds ? cmds[k] : NULL;
      decide_one(layers[i], &c, st, &one);
      if (i == 0 && k == 0)
        *d = one;
      else
        worst(d, &one);
    }
  }
  durin_policy_words_free(cmds);
}
