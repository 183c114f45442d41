/*
 * The server's spec policy (docs/api/spec-policy.md): what a spec that
 * arrives over the network may ask for.
 *
 * The file has one set of rules for the server and, under "tenants", one
 * per tenant. A tenant's rules are checked at load to lie within the
 * server's (each root under a server root, each host covered by a server
 * host, each ceiling at most the server's), and a spec is judged against
 * both sets, so what a tenant gets is the intersection even if a covering
 * rule had a hole. A list a tenant leaves out is the server's.
 *
 * Paths are compared lexically. The spec's paths were resolved with
 * realpath() when it was parsed; a root is refused at load if it leads
 * through a symlink, since resolved paths could never be under it. A bind
 * or template that exists is judged again where it really leads, for a
 * spec that did not come through the parser.
 *
 * Host grants follow the egress proxy's reading (libexec/sandbox-proxy.c):
 * "name" is ports 80 and 443, "name:port" that port, "*.suffix" any name
 * ending in ".suffix" (not the suffix itself).
 */
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "durin/util.h"
#include "server/specpolicy.h"

/* What lib/spec gives a spec that names no budget.steps: a refusal of
 * that many steps may be of a spec that asked for nothing. */
#define SPEC_DEFAULT_STEPS 100

/* The policy file is a page of JSON; anything larger is a mistake. */
#define POLICY_FILE_CAP (1024 * 1024)

/* A list of the file: roots or hosts. set == 0: this level says nothing
 * (a tenant's absent key; the server's absent model_hosts). */
struct strlist {
  char **v;
  int n;
  int set;
};

struct rules {
  char *who; /* "this server" or "tenant 'acme'", for messages */
  struct strlist binds;
  struct strlist hosts;
  struct strlist templates;
  struct strlist models;
  struct durin_budget ceil; /* 0: no ceiling */
};

struct tenant {
  char *name;
  struct rules r;
};

struct spec_policy {
  struct rules server;
  struct tenant *tenants;
  int ntenants;
};

/* The budget keys, as the spec's "budget" and "budget_ceilings" name them. */
static const struct budget_key {
  const char *key;
  const char *field; /* the spec field a refusal names */
  size_t off;        /* in struct durin_budget */
  int money;         /* a double (dollars), else an int64_t */
  int64_t mult;      /* the file's unit to the struct's (s to ms) */
} budget_keys[] = {
  { "steps", "budget.steps", offsetof(struct durin_budget, steps), 0, 1 },
  { "tokens", "budget.tokens", offsetof(struct durin_budget, tokens), 0, 1 },
  { "dollars", "budget.dollars", offsetof(struct durin_budget, dollars), 1, 1 },
  { "wall_clock_s", "budget.wall_clock_s",
    offsetof(struct durin_budget, wall_clock_ms), 0, 1000 },
  { "tool_calls", "budget.tool_calls",
    offsetof(struct durin_budget, tool_calls), 0, 1 },
};
#define NBUDGET (sizeof(budget_keys) / sizeof(budget_keys[0]))

static const char *const server_keys[] = {
  "bind_roots",  "allow_hosts",     "template_roots",
  "model_hosts", "budget_ceilings", "tenants",
  NULL,
};
static const char *const tenant_keys[] = {
  "bind_roots",  "allow_hosts",     "template_roots",
  "model_hosts", "budget_ceilings", NULL,
};
static const char *const ceiling_keys[] = {
  "steps", "tokens", "dollars", "wall_clock_s", "tool_calls", NULL,
};

static double budget_get_money(const struct durin_budget *b,
                               const struct budget_key *k)
{
  return *(const double *)(const void *)((const char *)b + k->off);
}

static int64_t budget_get_int(const struct durin_budget *b,
                              const struct budget_key *k)
{
  return *(const int64_t *)(const void *)((const char *)b + k->off);
}

static void budget_copy(struct durin_budget *dst,
                        const struct durin_budget *src,
                        const struct budget_key *k)
{
  memcpy((char *)dst + k->off, (const char *)src + k->off,
         k->money ? sizeof(double) : sizeof(int64_t));
}

/* Whether budget a's value for k is above b's (exact for integers). */
static int budget_above(const struct durin_budget *a,
                        const struct durin_budget *b,
                        const struct budget_key *k)
{
  if (k->money)
    return budget_get_money(a, k) > budget_get_money(b, k);
  return budget_get_int(a, k) > budget_get_int(b, k);
}

static int budget_unset(const struct durin_budget *b,
                        const struct budget_key *k)
{
  return k->money ? budget_get_money(b, k) == 0 : budget_get_int(b, k) == 0;
}

/* The spec's unit for messages: seconds for the wall clock. */
static void budget_fmt(const struct durin_budget *b, const struct budget_key *k,
                       char *out, size_t len)
{
  if (k->money)
    snprintf(out, len, "%g", budget_get_money(b, k));
  else
    snprintf(out, len, "%lld", (long long)(budget_get_int(b, k) / k->mult));
}

static void strlist_clear(struct strlist *l)
{
  int i;

  for (i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof(*l));
}

static void rules_clear(struct rules *r)
{
  free(r->who);
  strlist_clear(&r->binds);
  strlist_clear(&r->hosts);
  strlist_clear(&r->templates);
  strlist_clear(&r->models);
}

void spec_policy_free(struct spec_policy *p)
{
  int i;

  if (!p)
    return;
  rules_clear(&p->server);
  for (i = 0; i < p->ntenants; i++) {
    free(p->tenants[i].name);
    rules_clear(&p->tenants[i].r);
  }
  free(p->tenants);
  free(p);
}

/* "a, b, c" into out (cut short if it does not fit), for messages. */
static const char *list_fmt(const struct strlist *l, char *out, size_t len)
{
  size_t used = 0;
  int i;

  out[0] = '\0';
  for (i = 0; i < l->n && used + 1 < len; i++) {
    int w = snprintf(out + used, len - used, "%s%s", i ? ", " : "", l->v[i]);

    if (w < 0)
      break;
    used += (size_t)w;
  }
  return out;
}

/* ---- paths ---- */

/*
 * Normalizes an absolute path lexically into out: no empty or "."
 * components, no trailing slash. A ".." is refused rather than folded:
 * which directory it names depends on the symlinks on the way.
 */
static int path_norm(const char *in, char *out, size_t len)
{
  size_t o = 0;
  const char *p = in;

  if (in[0] != '/')
    return -1;
  while (*p) {
    const char *s;
    size_t n;

    while (*p == '/')
      p++;
    s = p;
    while (*p && *p != '/')
      p++;
    n = (size_t)(p - s);
    if (n == 0 || (n == 1 && s[0] == '.'))
      continue;
    if (n == 2 && s[0] == '.' && s[1] == '.')
      return -1;
    if (o + 1 + n + 1 > len)
      return -1;
    out[o++] = '/';
    memcpy(out + o, s, n);
    o += n;
  }
  if (o == 0) {
    if (len < 2)
      return -1;
    out[o++] = '/';
  }
  out[o] = '\0';
  return 0;
}

/* Whether the normalized path is root or beneath it. */
static int path_under(const char *path, const char *root)
{
  size_t n = strlen(root);

  if (!strcmp(root, "/"))
    return 1;
  return !strncmp(path, root, n) && (path[n] == '\0' || path[n] == '/');
}

static int path_in(const struct strlist *roots, const char *path)
{
  int i;

  for (i = 0; i < roots->n; i++)
    if (path_under(path, roots->v[i]))
      return 1;
  return 0;
}

/* ---- host grants ---- */

struct host {
  int wild;         /* "*.suffix" */
  const char *name; /* the name, or the suffix with its leading dot */
  size_t len;
  int port; /* 0: 80 and 443 */
};

static int host_char(int c)
{
  return isalnum(c) || c == '-' || c == '.' || c == '_';
}

/* Reads "name", "name:port" or "*.suffix[:port]"; -1 if it is none. */
static int host_parse(const char *s, struct host *h)
{
  const char *colon = strchr(s, ':');
  size_t i, n = colon ? (size_t)(colon - s) : strlen(s);

  memset(h, 0, sizeof(*h));
  if (n >= 2 && s[0] == '*' && s[1] == '.') {
    h->wild = 1;
    h->name = s + 1;
    h->len = n - 1;
    if (h->len < 2)
      return -1;
  } else {
    h->name = s;
    h->len = n;
    if (!n || s[0] == '.')
      return -1;
  }
  for (i = h->wild; i < h->len; i++)
    if (!host_char((unsigned char)h->name[i]))
      return -1;
  if (colon) {
    const char *d = colon + 1;
    long port = 0;

    if (!*d || strspn(d, "0123456789") != strlen(d) || strlen(d) > 5)
      return -1;
    port = strtol(d, NULL, 10);
    if (port < 1 || port > 65535)
      return -1;
    h->port = (int)port;
  }
  return 0;
}

/* Whether name (len n) ends in the dotted suffix sfx (len sn); equal counts
 * only if equal_ok. */
static int ends_with(const char *name, size_t n, const char *sfx, size_t sn,
                     int equal_ok)
{
  if (n < sn || (n == sn && !equal_ok))
    return 0;
  return !strncasecmp(name + n - sn, sfx, sn);
}

/* Whether grant p lets through everything grant s does. */
static int host_covers(const struct host *p, const struct host *s)
{
  if (p->port ? s->port != p->port : s->port && s->port != 80 && s->port != 443)
    return 0;
  if (!p->wild)
    return !s->wild && s->len == p->len &&
           !strncasecmp(s->name, p->name, p->len);
  /* "*.x.org" covers "a.x.org" and "*.a.x.org" and "*.x.org", not
   * "x.org" (the proxy's reading: a name strictly under the suffix). */
  return ends_with(s->name, s->len, p->name, p->len, s->wild);
}

static int host_in(const struct strlist *allowed, const char *grant)
{
  struct host s, p;
  int i;

  if (host_parse(grant, &s))
    return 0;
  for (i = 0; i < allowed->n; i++)
    if (!host_parse(allowed->v[i], &p) && host_covers(&p, &s))
      return 1;
  return 0;
}

/* ---- model hosts ---- */

static int model_host_ok(const char *h)
{
  size_t i;

  if (!*h)
    return 0;
  for (i = 0; h[i]; i++)
    if (!host_char((unsigned char)h[i]) && h[i] != ':')
      return 0;
  return 1;
}

/*
 * The host of an http(s) URL into out (lower case, IPv6 without brackets);
 * -1 if the URL is not one this check can read with certainty: user info,
 * percent-escapes or backslashes in the authority are refused rather than
 * guessed at, so that what is judged is what the model client will dial.
 */
static int url_host(const char *url, char *out, size_t len)
{
  const char *a, *end, *h, *he;
  size_t i, n;

  if (!strncasecmp(url, "http://", 7))
    a = url + 7;
  else if (!strncasecmp(url, "https://", 8))
    a = url + 8;
  else
    return -1;
  end = a + strcspn(a, "/?#");
  for (h = a; h < end; h++)
    if (*h == '@' || *h == '\\' || *h == '%' || isspace((unsigned char)*h))
      return -1;
  if (*a == '[') {
    h = a + 1;
    he = memchr(h, ']', (size_t)(end - h));
    if (!he)
      return -1;
    if (he + 1 < end && he[1] != ':')
      return -1;
  } else {
    h = a;
    he = memchr(a, ':', (size_t)(end - a));
    if (!he)
      he = end;
  }
  /* The port, if any: digits only. */
  {
    const char *pp = *a == '[' ? he + 1 : he;

    if (pp < end) {
      if (*pp != ':' || pp + 1 == end)
        return -1;
      for (pp++; pp < end; pp++)
        if (!isdigit((unsigned char)*pp))
          return -1;
    }
  }
  n = (size_t)(he - h);
  if (!n || n >= len)
    return -1;
  for (i = 0; i < n; i++) {
    if (!host_char((unsigned char)h[i]) && !(*a == '[' && h[i] == ':'))
      return -1;
    out[i] = (char)tolower((unsigned char)h[i]);
  }
  out[n] = '\0';
  return 0;
}

static int model_in(const struct strlist *l, const char *host)
{
  int i;

  for (i = 0; i < l->n; i++)
    if (!strcasecmp(l->v[i], host))
      return 1;
  return 0;
}

/* ---- loading ---- */

static int check_keys(json_t *o, const char *prefix, const char *const *known,
                      struct durin_err *err)
{
  const char *key;
  json_t *v;

  json_object_foreach(o, key, v) {
    const char *best;
    char list[256] = "";
    int i;

    if (durin_known_word(key, known, &best))
      continue;
    if (best)
      return durin_err_set(err, DURIN_EINVAL,
                           "field '%s%s' is not known; did you mean '%s%s'?",
                           prefix, key, prefix, best);
    for (i = 0; known[i]; i++) {
      strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
      strncat(list, known[i], sizeof(list) - strlen(list) - 1);
    }
    return durin_err_set(err, DURIN_EINVAL,
                         "field '%s%s' is not known (known fields: %s)", prefix,
                         key, list);
  }
  return 0;
}

static int list_add(struct strlist *l, const char *s, struct durin_err *err)
{
  char **v = realloc(l->v, (size_t)(l->n + 1) * sizeof(*v));

  if (!v)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  l->v = v;
  if (!(l->v[l->n] = strdup(s)))
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  l->n++;
  return 0;
}

/* The array of strings at key; *arr NULL if the key is absent. */
static int get_array(json_t *o, const char *prefix, const char *key,
                     const char *what, const char *one, json_t **arr,
                     struct durin_err *err)
{
  json_t *a = json_object_get(o, key), *e;
  size_t i;

  *arr = a;
  if (!a)
    return 0;
  if (!json_is_array(a))
    return durin_err_set(err, DURIN_EINVAL,
                         "field '%s%s' must be an array of %s, not %s", prefix,
                         key, what, durin_json_kind(a));
  json_array_foreach(a, i, e)
    if (!json_is_string(e))
      return durin_err_set(err, DURIN_EINVAL,
                           "field '%s%s[%zu]' must be %s, not %s", prefix, key,
                           i, one, durin_json_kind(e));
  return 0;
}

/* What a tenant's entry says when its server's list does not cover it. */
static int widens(const char *prefix, const char *key, size_t i,
                  const char *entry, const char *how, const struct strlist *up,
                  struct durin_err *err)
{
  char list[256];

  return durin_err_set(err, DURIN_EINVAL,
                       "field '%s%s[%zu]': '%s' is not %s the server's %s "
                       "(%s); a tenant can narrow what the server allows, "
                       "never widen it",
                       prefix, key, i, entry, how, key,
                       up->n ? list_fmt(up, list, sizeof(list)) : "none");
}

/* bind_roots, template_roots: absolute, no "..", not through a symlink. */
static int load_roots(json_t *o, const char *prefix, const char *key,
                      struct strlist *l, const struct strlist *up,
                      struct durin_err *err)
{
  json_t *a, *e;
  size_t i;
  int r;

  if ((r = get_array(o, prefix, key, "absolute paths", "an absolute path", &a,
                     err)) ||
      !a)
    return r;
  l->set = 1;
  json_array_foreach(a, i, e) {
    const char *s = json_string_value(e);
    char norm[PATH_MAX], *real;

    if (path_norm(s, norm, sizeof(norm)))
      return durin_err_set(err, DURIN_EINVAL,
                           "field '%s%s[%zu]': '%s' must be an absolute path "
                           "without '..'",
                           prefix, key, i, s);
    real = realpath(norm, NULL);
    if (real && strcmp(real, norm)) {
      r = durin_err_set(err, DURIN_EINVAL,
                        "field '%s%s[%zu]': '%s' leads through a symlink to "
                        "'%s'; write the real path (a spec's paths are "
                        "resolved before they are judged)",
                        prefix, key, i, s, real);
      free(real);
      return r;
    }
    free(real);
    if (up && up->set && !path_in(up, norm))
      return widens(prefix, key, i, s, "under one of", up, err);
    if ((r = list_add(l, norm, err)))
      return r;
  }
  return 0;
}

static int load_hosts(json_t *o, const char *prefix, struct strlist *l,
                      const struct strlist *up, struct durin_err *err)
{
  json_t *a, *e;
  size_t i;
  int r;

  if ((r = get_array(o, prefix, "allow_hosts", "host names", "a host name", &a,
                     err)) ||
      !a)
    return r;
  l->set = 1;
  json_array_foreach(a, i, e) {
    const char *s = json_string_value(e);
    struct host h;

    if (host_parse(s, &h))
      return durin_err_set(err, DURIN_EINVAL,
                           "field '%sallow_hosts[%zu]': '%s' is not a host "
                           "grant: write \"api.example.com\", "
                           "\"host:8443\" or \"*.example.com\"",
                           prefix, i, s);
    if (up && up->set && !host_in(up, s))
      return widens(prefix, "allow_hosts", i, s, "covered by", up, err);
    if ((r = list_add(l, s, err)))
      return r;
  }
  return 0;
}

static int load_models(json_t *o, const char *prefix, struct strlist *l,
                       const struct strlist *up, struct durin_err *err)
{
  json_t *a, *e;
  size_t i;
  int r;

  if ((r = get_array(o, prefix, "model_hosts", "host names", "a host name", &a,
                     err)) ||
      !a)
    return r;
  l->set = 1;
  json_array_foreach(a, i, e) {
    const char *s = json_string_value(e);
    char h[256];
    size_t n = strlen(s);

    /* "[::1]" and "::1" are the same host; keep it bare, as urls yield. */
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
      s++;
      n -= 2;
    }
    if (n >= sizeof(h))
      n = sizeof(h) - 1;
    memcpy(h, s, n);
    h[n] = '\0';
    if (!model_host_ok(h))
      return durin_err_set(err, DURIN_EINVAL,
                           "field '%smodel_hosts[%zu]': '%s' is not a host "
                           "name or address (no scheme, port or path)",
                           prefix, i, json_string_value(e));
    if (up && up->set && !model_in(up, h))
      return widens(prefix, "model_hosts", i, h, "one of", up, err);
    if ((r = list_add(l, h, err)))
      return r;
  }
  return 0;
}

static int load_ceilings(json_t *o, const char *prefix, struct rules *r,
                         const struct rules *up, struct durin_err *err)
{
  json_t *c = json_object_get(o, "budget_ceilings");
  char sub[256];
  size_t i;
  int rc;

  if (up)
    r->ceil = up->ceil;
  if (!c)
    return 0;
  if (!json_is_object(c))
    return durin_err_set(err, DURIN_EINVAL,
                         "field '%sbudget_ceilings' must be an object, not %s",
                         prefix, durin_json_kind(c));
  snprintf(sub, sizeof(sub), "%sbudget_ceilings.", prefix);
  if ((rc = check_keys(c, sub, ceiling_keys, err)))
    return rc;
  for (i = 0; i < NBUDGET; i++) {
    const struct budget_key *k = &budget_keys[i];
    json_t *v = json_object_get(c, k->key);
    struct durin_budget mine = { 0 };
    char a[64], b[64];

    if (!v)
      continue;
    if (k->money) {
      if (!json_is_number(v) || !(json_number_value(v) > 0))
        return durin_err_set(err, DURIN_EINVAL,
                             "field '%s%s' must be a number > 0 (leave it "
                             "out for no ceiling)",
                             sub, k->key);
      mine.dollars = json_number_value(v);
    } else {
      json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;

      if (n < 1 || n > INT64_MAX / k->mult)
        return durin_err_set(err, DURIN_EINVAL,
                             "field '%s%s' must be an integer > 0 (leave it "
                             "out for no ceiling)",
                             sub, k->key);
      *(int64_t *)(void *)((char *)&mine + k->off) = (int64_t)n * k->mult;
    }
    if (up && !budget_unset(&up->ceil, k) && budget_above(&mine, &up->ceil, k))
      return durin_err_set(err, DURIN_EINVAL,
                           "field '%s%s' is %s, above the server's ceiling "
                           "of %s; a tenant can narrow what the server "
                           "allows, never widen it",
                           sub, k->key, (budget_fmt(&mine, k, a, sizeof(a)), a),
                           (budget_fmt(&up->ceil, k, b, sizeof(b)), b));
    budget_copy(&r->ceil, &mine, k);
  }
  return 0;
}

/* One set of rules; up is the server's when these are a tenant's. */
static int load_rules(json_t *o, const char *prefix, struct rules *r,
                      const struct rules *up, struct durin_err *err)
{
  int rc;

  if ((rc = check_keys(o, prefix, up ? tenant_keys : server_keys, err)) ||
      (rc = load_roots(o, prefix, "bind_roots", &r->binds,
                       up ? &up->binds : NULL, err)) ||
      (rc = load_hosts(o, prefix, &r->hosts, up ? &up->hosts : NULL, err)) ||
      (rc = load_roots(o, prefix, "template_roots", &r->templates,
                       up ? &up->templates : NULL, err)) ||
      (rc = load_models(o, prefix, &r->models, up ? &up->models : NULL, err)) ||
      (rc = load_ceilings(o, prefix, r, up, err)))
    return rc;
  /* The server's absent lists allow nothing, but any model host. */
  if (!up) {
    r->binds.set = r->hosts.set = r->templates.set = 1;
  }
  return 0;
}

static int load_tenants(json_t *root, struct spec_policy *p,
                        struct durin_err *err)
{
  json_t *ts = json_object_get(root, "tenants"), *v;
  const char *name;
  int rc;

  if (!ts)
    return 0;
  if (!json_is_object(ts))
    return durin_err_set(err, DURIN_EINVAL,
                         "field 'tenants' must be an object of tenant "
                         "sections, not %s",
                         durin_json_kind(ts));
  if (!(p->tenants = calloc(json_object_size(ts) + 1, sizeof(*p->tenants))))
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  json_object_foreach(ts, name, v) {
    struct tenant *t = &p->tenants[p->ntenants];
    char prefix[256], who[300];

    if (!*name)
      return durin_err_set(err, DURIN_EINVAL,
                           "field 'tenants' has a section with an empty "
                           "name");
    if (!json_is_object(v))
      return durin_err_set(err, DURIN_EINVAL,
                           "field 'tenants.%s' must be an object, not %s", name,
                           durin_json_kind(v));
    snprintf(prefix, sizeof(prefix), "tenants.%s.", name);
    snprintf(who, sizeof(who), "tenant '%s'", name);
    p->ntenants++;
    if (!(t->name = strdup(name)) || !(t->r.who = strdup(who)))
      return durin_err_set(err, DURIN_ENOMEM, "out of memory");
    if ((rc = load_rules(v, prefix, &t->r, &p->server, err)))
      return rc;
  }
  return 0;
}

int spec_policy_load(const char *path, struct spec_policy **out,
                     struct durin_err *err)
{
  struct spec_policy *p = NULL;
  json_error_t je;
  json_t *root = NULL;
  char *text = NULL;
  size_t len;
  int r;

  *out = NULL;
  if ((r = durin_file_read(path, POLICY_FILE_CAP, &text, &len, err))) {
    durin_err_prefix(err, "spec policy");
    goto out;
  }
  root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    r = durin_err_set(err, DURIN_EPARSE,
                      "spec policy '%s' is not valid JSON: %s (line %d, "
                      "column %d)",
                      path, je.text, je.line, je.column);
    goto out;
  }
  if (!json_is_object(root)) {
    r = durin_err_set(err, DURIN_EINVAL,
                      "spec policy '%s' must be a JSON object, not %s", path,
                      durin_json_kind(root));
    goto out;
  }
  if (!(p = spec_policy_default())) {
    r = durin_err_set(err, DURIN_ENOMEM, "out of memory");
    goto out;
  }
  if ((r = load_rules(root, "", &p->server, NULL, err)) ||
      (r = load_tenants(root, p, err))) {
    durin_err_prefix(err, "spec policy '%s'", path);
    goto out;
  }
  *out = p;
  p = NULL;
out:
  spec_policy_free(p);
  json_decref(root);
  free(text);
  return r;
}

struct spec_policy *spec_policy_default(void)
{
  struct spec_policy *p = calloc(1, sizeof(*p));

  if (!p)
    return NULL;
  if (!(p->server.who = strdup("this server"))) {
    free(p);
    return NULL;
  }
  p->server.binds.set = p->server.hosts.set = p->server.templates.set = 1;
  return p;
}

/* ---- judging ---- */

/*
 * The field a refusal names must outlive the call; an indexed one is
 * written here, one buffer per thread (the server judges on many), good
 * until this thread's next spec_policy_check.
 */
static _Thread_local char field_buf[64];

static const char *field_at(const char *list, int i)
{
  snprintf(field_buf, sizeof(field_buf), "sandbox.%s[%d]", list, i);
  return field_buf;
}

static int refuse(const char **field, const char *f, struct durin_err *err,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int refuse(const char **field, const char *f, struct durin_err *err,
                  const char *fmt, ...)
{
  va_list ap;
  char msg[sizeof(err->msg)];

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (field)
    *field = f;
  return durin_err_set(err, DURIN_EACCES, "%s", msg);
}

/* A bind or template path against roots (what: "bind", "template"). */
static int judge_path(const struct rules *r, const struct strlist *roots,
                      const char *what, const char *key, const char *path,
                      const char *f, const char **field, struct durin_err *err)
{
  char norm[PATH_MAX], list[256], *real;
  int ok;

  if (!roots->set)
    return 0;
  if (!roots->n)
    return refuse(field, f, err, "%s '%s': %s allows no %ss (%s is empty)", f,
                  path, r->who, what, key);
  if (path_norm(path, norm, sizeof(norm)))
    return refuse(field, f, err,
                  "%s '%s' must be an absolute path without '..'", f, path);
  ok = path_in(roots, norm);
  if (ok && (real = realpath(norm, NULL))) {
    ok = path_in(roots, real);
    free(real);
  }
  if (!ok)
    return refuse(field, f, err,
                  "%s '%s' is not under the %s roots %s allows (%s: %s)", f,
                  path, what, r->who, key, list_fmt(roots, list, sizeof(list)));
  return 0;
}

static int judge_rules(const struct rules *r, struct durin_spec *spec,
                       const char **field, struct durin_err *err)
{
  const struct durin_spec_sandbox *b = &spec->sandbox;
  char list[256], host[256];
  int i, rc;

  for (i = 0; i < b->nro; i++)
    if ((rc = judge_path(r, &r->binds, "bind", "bind_roots", b->ro[i],
                         field_at("ro", i), field, err)))
      return rc;
  for (i = 0; i < b->nrw; i++)
    if ((rc = judge_path(r, &r->binds, "bind", "bind_roots", b->rw[i],
                         field_at("rw", i), field, err)))
      return rc;
  for (i = 0; b->net_proxy && r->hosts.set && i < b->nallow; i++) {
    if (!r->hosts.n)
      return refuse(field, field_at("allow_hosts", i), err,
                    "sandbox.allow_hosts[%d] '%s': %s allows no network "
                    "(allow_hosts is empty)",
                    i, b->allow_hosts[i], r->who);
    if (!host_in(&r->hosts, b->allow_hosts[i]))
      return refuse(field, field_at("allow_hosts", i), err,
                    "sandbox.allow_hosts[%d] '%s' is not covered by the "
                    "hosts %s allows (allow_hosts: %s)",
                    i, b->allow_hosts[i], r->who,
                    list_fmt(&r->hosts, list, sizeof(list)));
  }
  if (b->template &&
      (rc = judge_path(r, &r->templates, "template", "template_roots",
                       b->template, "sandbox.template", field, err)))
    return rc;
  /* A base URL the spec left out is the server's own choice. */
  if (r->models.set && spec->model.base_url && !spec->model.base_url_default) {
    if (url_host(spec->model.base_url, host, sizeof(host)))
      return refuse(field, "model.base_url", err,
                    "model.base_url '%s' must be http(s)://host[:port]/... "
                    "with no user info or escapes in the host, so the "
                    "policy can judge its host",
                    spec->model.base_url);
    if (!model_in(&r->models, host))
      return refuse(field, "model.base_url", err,
                    "model.base_url '%s': host '%s' is not one of the model "
                    "hosts %s allows (model_hosts: %s)",
                    spec->model.base_url, host, r->who,
                    r->models.n ? list_fmt(&r->models, list, sizeof(list)) :
                                  "none");
  }
  return 0;
}

int spec_policy_check(const struct spec_policy *p, const char *tenant,
                      struct durin_spec *spec, const char **field,
                      struct durin_err *err)
{
  const struct rules *t = NULL;
  struct durin_budget ceil;
  size_t k;
  int i, rc;

  for (i = 0; tenant && i < p->ntenants; i++)
    if (!strcmp(p->tenants[i].name, tenant))
      t = &p->tenants[i].r;
  if ((rc = judge_rules(&p->server, spec, field, err)) ||
      (t && (rc = judge_rules(t, spec, field, err))))
    return rc;
  /* The ceilings: the lower of the server's and the tenant's (a tenant's
   * were checked to be lower at load; this holds whatever the file said). */
  ceil = p->server.ceil;
  for (k = 0; t && k < NBUDGET; k++)
    if (!budget_unset(&t->ceil, &budget_keys[k]) &&
        (budget_unset(&ceil, &budget_keys[k]) ||
         budget_above(&ceil, &t->ceil, &budget_keys[k])))
      budget_copy(&ceil, &t->ceil, &budget_keys[k]);
  for (k = 0; k < NBUDGET; k++) {
    const struct budget_key *bk = &budget_keys[k];
    char a[64], c[64];

    if (budget_unset(&ceil, bk) || budget_unset(&spec->budget, bk) ||
        !budget_above(&spec->budget, &ceil, bk))
      continue;
    budget_fmt(&spec->budget, bk, a, sizeof(a));
    budget_fmt(&ceil, bk, c, sizeof(c));
    return refuse(field, bk->field, err,
                  "%s %s is above the ceiling of %s %s allows "
                  "(budget_ceilings.%s: %s%s)",
                  bk->field, a, c, t ? t->who : p->server.who, bk->key, c,
                  bk->off == offsetof(struct durin_budget, steps) &&
                          spec->budget.steps == SPEC_DEFAULT_STEPS ?
                      "; a spec without budget.steps asks for 100" :
                      "");
  }
  /* Judged whole: only now fill what the spec left unlimited. */
  for (k = 0; k < NBUDGET; k++)
    if (budget_unset(&spec->budget, &budget_keys[k]))
      budget_copy(&spec->budget, &ceil, &budget_keys[k]);
  return 0;
}
