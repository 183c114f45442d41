/*
 * Agent spec parsing and validation.
 *
 * Every object level has a table of the fields it knows. Unknown fields are
 * refused with a suggestion, wrong types with the expected type, so a user
 * never finds out about a typo three hours into a run.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "durin/policy.h"
#include "durin/secret.h"
#include "durin/spec.h"
#include "durin/store.h"
#include "durin/tools.h"
#include "durin/util.h"

static const char *const top_fields[] = {
  "name",        "system",    "goal",
  "workspace",   "model",     "tools",
  "checks",      "budget",    "max_eval_attempts",
  "limits",      "context",   "sandbox",
  "policy",      "approvals", "notify",
  "traceparent", "secrets",   "mcp_servers",
  "git",         "evaluator", "deliver",
  "phases",      "breakers",  NULL,
};
static const char *const evaluator_fields[] = {
  "model", "instructions", "criteria", "tools", "budget", "timeout_s", NULL,
};
static const char *const evaluator_budget_fields[] = { "steps", "dollars",
                                                       NULL };
static const char *const grant_fields[] = { "secret", "host", "header",
                                            "format", "env",  "tool",
                                            NULL };
static const char *const notify_fields[] = { "webhooks", NULL };
static const char *const git_fields[] = { "enabled", "progress_files",
                                          "log_lines", NULL };
static const char *const deliver_fields[] = { "remote", "branch", "on", NULL };

/* A W3C trace context the run's trace joins: version 00, a trace id of 32
 * lowercase hex digits and a parent span id of 16, neither all zeros. */
static int check_traceparent(const char *tp, struct durin_err *err)
{
  size_t i;

  if (!tp)
    return 0;
  if (strlen(tp) != 55 || strncmp(tp, "00-", 3) || tp[35] != '-' ||
      tp[52] != '-')
    goto bad;
  for (i = 3; i < 55; i++)
    if (i != 35 && i != 52 && !strchr("0123456789abcdef", tp[i]))
      goto bad;
  if (!strncmp(tp + 3, "00000000000000000000000000000000", 32) ||
      !strncmp(tp + 36, "0000000000000000", 16))
    goto bad;
  return 0;
bad:
  return durin_err_set(err, DURIN_ESPEC,
                       "field 'traceparent': '%s' is not a W3C traceparent "
                       "(00-<32 hex digits>-<16 hex digits>-<2 hex digits>, "
                       "lowercase, not all zeros)",
                       tp);
}
static const char *const webhook_fields[] = { "url", "events", NULL };
const char *const durin_webhook_events[] = {
  "run.started",      "run.progress", "approval.requested",
  "approval.decided", "run.finished", NULL,
};
static const char *const breakers_fields[] = { "repeat", "failures", "window",
                                               NULL };
static const char *const approvals_fields[] = { "timeout_s", "on_expiry",
                                                "max_rejections", NULL };
static const char *const sandbox_fields[] = {
  "ro",          "rw",          "memory_mb",
  "pids",        "cpu_percent", "network",
  "allow_hosts", "template",    "repeat_safe_hosts",
  NULL,
};
static const char *const model_fields[] = {
  "provider",    "name",        "base_url",   "api_key_env", "api_key_secret",
  "api_version", "turns",       "script",     "summaries",   "price",
  "timeout_s",   "max_retries", "max_tokens", "stream",      NULL,
};
static const char *const price_fields[] = {
  "input_per_mtok",
  "output_per_mtok",
  "cached_input_per_mtok",
  "cache_write_per_mtok",
  NULL,
};
static const char *const tool_fields[] = { "name", "effect", NULL };
static const char *const check_fields_[] = { "name", "run", "timeout_s", NULL };
static const char *const budget_fields[] = {
  "steps", "tokens", "dollars", "wall_clock_s", "tool_calls", NULL,
};
static const char *const limits_fields[] = { "tool_timeout_s", "output_bytes",
                                             "max_arg_bytes", NULL };
static const char *const context_fields[] = { "max_messages", "max_bytes",
                                              "reset_at", NULL };
static const char *const phase_fields[] = { "name", "share", "tools", "until",
                                            NULL };
static const char *const until_fields[] = { "steps", "check", "timeout_s",
                                            NULL };
static const char *const providers[] = { "script", "openai", "anthropic",
                                         NULL };

/* Where each HTTP provider lives and which variable holds its key. */
static void provider_defaults(struct durin_model_cfg *m)
{
  int anthropic = !strcmp(m->provider, "anthropic");

  if (!m->base_url) {
    m->base_url = strdup(anthropic ? "https://api.anthropic.com/v1" :
                                     "https://api.openai.com/v1");
    m->base_url_default = 1;
  }
  if (!m->api_key_env)
    m->api_key_env = strdup(anthropic ? "ANTHROPIC_API_KEY" : "OPENAI_API_KEY");
}

const char *durin_effect_name(enum durin_effect e)
{
  switch (e) {
  case DURIN_EFFECT_PURE:
    return "pure";
  case DURIN_EFFECT_IDEMPOTENT:
    return "idempotent";
  case DURIN_EFFECT_UNSAFE:
    return "unsafe";
  default:
    return "unsafe";
  }
}

static int parse_effect(const char *s, enum durin_effect *e)
{
  if (!strcmp(s, "pure"))
    *e = DURIN_EFFECT_PURE;
  else if (!strcmp(s, "idempotent"))
    *e = DURIN_EFFECT_IDEMPOTENT;
  else if (!strcmp(s, "unsafe"))
    *e = DURIN_EFFECT_UNSAFE;
  else
    return DURIN_EINVAL;
  return 0;
}

const char *durin_json_kind(const json_t *v)
{
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "an object";
  case JSON_ARRAY:
    return "an array";
  case JSON_STRING:
    return "a string";
  case JSON_INTEGER:
    return "an integer";
  case JSON_REAL:
    return "a number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "a boolean";
  case JSON_NULL:
    return "null";
  default:
    return "something else";
  }
}

static int check_fields(json_t *obj, const char *prefix,
                        const char *const *known, struct durin_err *err)
{
  const char *key;
  json_t *v;

  json_object_foreach(obj, key, v) {
    const char *best;
    int i;

    if (durin_known_word(key, known, &best))
      continue;
    if (best)
      return durin_err_set(err, DURIN_ESPEC,
                           "field '%s%s' is not known; did you mean '%s%s'?",
                           prefix, key, prefix, best);
    {
      char list[512] = "";

      for (i = 0; known[i]; i++) {
        strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
        strncat(list, known[i], sizeof(list) - strlen(list) - 1);
      }
      return durin_err_set(err, DURIN_ESPEC,
                           "field '%s%s' is not known (known fields: %s)",
                           prefix, key, list);
    }
  }
  return 0;
}

static int get_string(json_t *obj, const char *key, const char *prefix,
                      int required, char **out, struct durin_err *err)
{
  json_t *v = json_object_get(obj, key);

  if (!v) {
    if (required)
      return durin_err_set(err, DURIN_ESPEC,
                           "field '%s%s' is required: give a string", prefix,
                           key);
    return 0;
  }
  if (!json_is_string(v))
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%s%s' must be a string, not %s", prefix, key,
                         durin_json_kind(v));
  if (required && json_string_length(v) == 0)
    return durin_err_set(err, DURIN_ESPEC, "field '%s%s' must not be empty",
                         prefix, key);
  free(*out);
  *out = strdup(json_string_value(v));
  return 0;
}

/* A non-negative integer; seconds fields are scaled to ms by mult. */
static int get_int(json_t *obj, const char *key, const char *prefix,
                   int64_t min, int64_t mult, int64_t *out,
                   struct durin_err *err)
{
  json_t *v = json_object_get(obj, key);
  json_int_t n;

  if (!v)
    return 0;
  if (!json_is_integer(v))
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%s%s' must be an integer >= %lld, not %s",
                         prefix, key, (long long)min, durin_json_kind(v));
  n = json_integer_value(v);
  if (n < min || n > INT64_MAX / (mult ? mult : 1))
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%s%s' must be an integer >= %lld, got %lld",
                         prefix, key, (long long)min, (long long)n);
  *out = (int64_t)n * mult;
  return 0;
}

/* An integer field already read must not be above max. */
static int at_most(json_t *obj, const char *key, const char *prefix,
                   int64_t max, struct durin_err *err)
{
  json_t *v = json_object_get(obj, key);

  if (v && json_integer_value(v) > max)
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%s%s' must be at most %lld, got %lld", prefix,
                         key, (long long)max, (long long)json_integer_value(v));
  return 0;
}

static int get_bool(json_t *obj, const char *key, const char *prefix, int *out,
                    struct durin_err *err)
{
  json_t *v = json_object_get(obj, key);

  if (!v)
    return 0;
  if (!json_is_boolean(v))
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%s%s' must be true or false, not %s", prefix,
                         key, durin_json_kind(v));
  *out = json_is_true(v);
  return 0;
}

static int get_number(json_t *obj, const char *key, const char *prefix,
                      double *out, struct durin_err *err)
{
  json_t *v = json_object_get(obj, key);

  if (!v)
    return 0;
  if (!json_is_number(v) || json_number_value(v) < 0)
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%s%s' must be a number >= 0, not %s", prefix,
                         key, durin_json_kind(v));
  *out = json_number_value(v);
  return 0;
}

static int get_object(json_t *obj, const char *key, const char *prefix,
                      const char *const *known, json_t **out,
                      struct durin_err *err)
{
  json_t *v = json_object_get(obj, key);
  char sub[64];

  *out = NULL;
  if (!v)
    return 0;
  if (!json_is_object(v))
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%s%s' must be an object, not %s", prefix, key,
                         durin_json_kind(v));
  snprintf(sub, sizeof(sub), "%s%s.", prefix, key);
  *out = v;
  return check_fields(v, sub, known, err);
}

static int resolve_path(const char *base_dir, const char *p, char **out)
{
  char buf[PATH_MAX * 2], *abs;

  if (p[0] == '/' || !base_dir)
    snprintf(buf, sizeof(buf), "%s", p);
  else
    snprintf(buf, sizeof(buf), "%s/%s", base_dir, p);
  abs = realpath(buf, NULL);
  if (!abs)
    return DURIN_ENOTFOUND;
  *out = abs;
  return 0;
}

/* An array of existing paths, made absolute. */
static int get_paths(json_t *obj, const char *key, const char *prefix,
                     const char *base_dir, char ***out, int *n,
                     struct durin_err *err)
{
  json_t *v = json_object_get(obj, key), *e;
  size_t i;

  if (!v)
    return 0;
  if (!json_is_array(v))
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%s%s' must be an array of paths, not %s",
                         prefix, key, durin_json_kind(v));
  *out = calloc(json_array_size(v) + 1, sizeof(**out));
  json_array_foreach(v, i, e) {
    if (!json_is_string(e))
      return durin_err_set(err, DURIN_ESPEC,
                           "field '%s%s[%zu]' must be a path, not %s", prefix,
                           key, i, durin_json_kind(e));
    if (resolve_path(base_dir, json_string_value(e), &(*out)[*n]))
      return durin_err_set(err, DURIN_ESPEC,
                           "field '%s%s[%zu]': '%s' does not exist", prefix,
                           key, i, json_string_value(e));
    if (!strcmp((*out)[(*n)++], "/"))
      return durin_err_set(err, DURIN_ESPEC,
                           "field '%s%s[%zu]': binding / would undo the "
                           "sandbox; name the directories the tools need",
                           prefix, key, i);
  }
  return 0;
}

/* A branch name git takes: [A-Za-z0-9._/-], no "..", "//" or "@{", not
 * starting with '-', '.' or '/', not ending with '/', '.' or ".lock". */
static int branch_ok(const char *b)
{
  size_t n = strlen(b);

  return n && n <= 200 &&
         strspn(b, "abcdefghijklmnopqrstuvwxyz"
                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-") == n &&
         !strchr("-./", b[0]) && !strchr("/.", b[n - 1]) && !strstr(b, "..") &&
         !strstr(b, "//") && !strstr(b, "/.") &&
         !(n >= 5 && !strcmp(b + n - 5, ".lock"));
}

/* "deliver": {"remote", "branch", "on": [terminal states]}. */
static int parse_deliver(json_t *root, struct durin_spec_deliver *d,
                         struct durin_err *err)
{
  json_t *o, *on, *e;
  size_t i;
  int r;

  if ((r = get_object(root, "deliver", "", deliver_fields, &o, err)) || !o)
    return r;
  if ((r = get_string(o, "remote", "deliver.", 1, &d->remote, err)) ||
      (r = get_string(o, "branch", "deliver.", 0, &d->branch, err)))
    return r;
  if (d->remote[0] != '/' && !strstr(d->remote, "://"))
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'deliver.remote' is a git URL (https://, "
                         "ssh://, file://) or an absolute path, not '%s'",
                         d->remote);
  if (d->branch && !branch_ok(d->branch))
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'deliver.branch': '%s' is not a branch name "
                         "git takes (letters, digits, '.', '_', '-' and '/' "
                         "between names)",
                         d->branch);
  d->on = 1u << DURIN_RUN_SUCCEEDED;
  if (!(on = json_object_get(o, "on")))
    return 0;
  if (!json_is_array(on) || !json_array_size(on))
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'deliver.on' must be a non-empty array of "
                         "final states, e.g. [\"succeeded\"]");
  d->on = 0;
  json_array_foreach(on, i, e) {
    enum durin_run_status st;

    if (!json_is_string(e) ||
        durin_run_status_parse(json_string_value(e), &st) ||
        !durin_run_status_terminal(st))
      return durin_err_set(err, DURIN_ESPEC,
                           "deliver.on[%zu] is not a final state: give "
                           "\"succeeded\", \"failed\", \"cancelled\" or "
                           "\"budget_exceeded\"",
                           i);
    d->on |= 1u << st;
  }
  return 0;
}

/* "network": "none" | "proxy", and the hosts the proxy lets through. */
static int parse_approvals(json_t *root, struct durin_spec_approvals *a,
                           struct durin_err *err)
{
  json_t *o;
  char *exp = NULL;
  int r;

  a->timeout_ms = 24 * 3600 * 1000;
  a->max_rejections = 2;
  if ((r = get_object(root, "approvals", "", approvals_fields, &o, err)) || !o)
    return r;
  if ((r = get_int(o, "timeout_s", "approvals.", 1, 1000, &a->timeout_ms,
                   err)) ||
      (r = get_int(o, "max_rejections", "approvals.", 1, 1, &a->max_rejections,
                   err)) ||
      (r = get_string(o, "on_expiry", "approvals.", 0, &exp, err)))
    return r;
  if (exp && strcmp(exp, "reject") && strcmp(exp, "needs_human"))
    r = durin_err_set(err, DURIN_ESPEC,
                      "field 'approvals.on_expiry' is \"reject\" (the "
                      "default: the model is told) or \"needs_human\" (the "
                      "run stops for a person)");
  a->expire_to_human = exp && !strcmp(exp, "needs_human");
  free(exp);
  return r;
}

/* "breakers": {"repeat", "failures", "window"}; 0 turns one off. */
static int parse_breakers(json_t *root, struct durin_spec_breakers *b,
                          struct durin_err *err)
{
  json_t *o;
  int r;

  b->repeat = 3;
  b->failures = 8;
  b->window = 10;
  if ((r = get_object(root, "breakers", "", breakers_fields, &o, err)) || !o)
    return r;
  if ((r = get_int(o, "repeat", "breakers.", 0, 1, &b->repeat, err)) ||
      (r = at_most(o, "repeat", "breakers.", 1000, err)) ||
      (r = get_int(o, "failures", "breakers.", 0, 1, &b->failures, err)) ||
      (r = get_int(o, "window", "breakers.", 0, 1, &b->window, err)) ||
      (r = at_most(o, "window", "breakers.", DURIN_SPEC_MAX_WINDOW, err)))
    return r;
  if (b->failures > b->window)
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'breakers.failures' (%lld) must be at most "
                         "'breakers.window' (%lld): the run pauses when that "
                         "many of the last window calls failed (0 turns it "
                         "off)",
                         (long long)b->failures, (long long)b->window);
  return 0;
}

static int parse_network(json_t *o, struct durin_spec_sandbox *b,
                         struct durin_err *err)
{
  json_t *hosts, *e;
  size_t i;
  char *mode = NULL;
  int r;

  if ((r = get_string(o, "network", "sandbox.", 0, &mode, err)))
    return r;
  if (mode && strcmp(mode, "none") && strcmp(mode, "proxy")) {
    free(mode);
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'sandbox.network' is \"none\" (the default) "
                         "or \"proxy\" (egress to sandbox.allow_hosts only)");
  }
  b->net_proxy = mode && !strcmp(mode, "proxy");
  free(mode);
  hosts = json_object_get(o, "allow_hosts");
  if (!hosts)
    return 0;
  if (!json_is_array(hosts))
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'sandbox.allow_hosts' must be an array of "
                         "host names, not %s",
                         durin_json_kind(hosts));
  if (!b->net_proxy)
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'sandbox.allow_hosts' needs "
                         "\"network\": \"proxy\"");
  b->allow_hosts = calloc(json_array_size(hosts) + 1, sizeof(char *));
  json_array_foreach(hosts, i, e) {
    const char *h = json_string_value(e);

    if (!h || !*h || strchr(h, '/') || strchr(h, ' '))
      return durin_err_set(err, DURIN_ESPEC,
                           "field 'sandbox.allow_hosts[%zu]' must be a host "
                           "name: \"api.example.com\", \"host:8443\" or "
                           "\"*.example.com\"",
                           i);
    b->allow_hosts[b->nallow++] = strdup(h);
  }
  /* Hosts a call may reach and still be run again after a crash cut it
   * (a package mirror, say): only those of allow_hosts. */
  hosts = json_object_get(o, "repeat_safe_hosts");
  if (!hosts)
    return 0;
  if (!json_is_array(hosts))
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'sandbox.repeat_safe_hosts' must be an array "
                         "of host names from sandbox.allow_hosts, not %s",
                         durin_json_kind(hosts));
  b->repeat_safe = calloc(json_array_size(hosts) + 1, sizeof(char *));
  json_array_foreach(hosts, i, e) {
    const char *h = json_string_value(e);
    int k, known = 0;

    for (k = 0; h && k < b->nallow; k++)
      known |= !strcmp(h, b->allow_hosts[k]);
    if (!known)
      return durin_err_set(err, DURIN_ESPEC,
                           "field 'sandbox.repeat_safe_hosts[%zu]' must be "
                           "one of sandbox.allow_hosts, written the same way",
                           i);
    b->repeat_safe[b->nrepeat_safe++] = strdup(h);
  }
  return 0;
}

/* Splits "name[:port]" into name (lower-case kept as written) and port;
 * port 0 when none is written. -1 when it does not fit. */
static int host_port(const char *h, char *name, size_t len, int *port)
{
  const char *colon = strrchr(h, ':');
  size_t n = colon ? (size_t)(colon - h) : strlen(h);

  *port = 0;
  if (n == 0 || n >= len)
    return -1;
  memcpy(name, h, n);
  name[n] = 0;
  if (colon) {
    char *end;
    long p = strtol(colon + 1, &end, 10);

    if (!colon[1] || *end || p <= 0 || p > 65535)
      return -1;
    *port = (int)p;
  }
  return 0;
}

int durin_spec_grant_host_allowed(const struct durin_spec_sandbox *b,
                                  const char *host)
{
  char name[256], aname[256];
  int port, aport, i;

  if (!b->net_proxy || host_port(host, name, sizeof(name), &port))
    return 0;
  /* A grant is for HTTPS: "name" is port 443, as the proxy reads it. */
  if (!port)
    port = 443;
  for (i = 0; i < b->nallow; i++) {
    const char *a = b->allow_hosts[i];
    size_t hl = strlen(name), sl;

    if (host_port(a, aname, sizeof(aname), &aport))
      continue;
    /* An entry without a port lets 80 and 443 through. */
    if (aport ? aport != port : port != 443)
      continue;
    if (!strcasecmp(aname, name))
      return 1;
    sl = strlen(aname + 1);
    if (!strncmp(aname, "*.", 2) && hl > sl &&
        !strcasecmp(name + hl - sl, aname + 1))
      return 1;
  }
  return 0;
}

/* A header name: an HTTP token, and not one the proxy itself frames the
 * request with. */
static int header_ok(const char *h)
{
  static const char *const framing[] = { "host",
                                         "content-length",
                                         "transfer-encoding",
                                         "connection",
                                         "upgrade",
                                         "te",
                                         "trailer",
                                         NULL };
  int i;

  if (!*h || strlen(h) > 64 ||
      strspn(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                "0123456789!#$%&'*+-.^_`|~") != strlen(h))
    return 0;
  for (i = 0; framing[i]; i++)
    if (!strcasecmp(h, framing[i]))
      return 0;
  return 1;
}

/* An environment variable a grant may set: a plain name, and none the
 * sandbox or the loader gives a meaning to. */
static int env_ok(const char *v)
{
  static const char *const reserved[] = { "PATH",
                                          "HOME",
                                          "LANG",
                                          "USER",
                                          "TMPDIR",
                                          "TERM",
                                          "HTTP_PROXY",
                                          "HTTPS_PROXY",
                                          "http_proxy",
                                          "https_proxy",
                                          "NO_PROXY",
                                          "SSL_CERT_FILE",
                                          "CURL_CA_BUNDLE",
                                          "GIT_SSL_CAINFO",
                                          "REQUESTS_CA_BUNDLE",
                                          "NODE_EXTRA_CA_CERTS",
                                          "PIP_CERT",
                                          "DURIN_IDEMPOTENCY_KEY",
                                          NULL };
  int i;

  if (!*v || strlen(v) > 128 || (*v >= '0' && *v <= '9') ||
      strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                "0123456789_") != strlen(v) ||
      !strncmp(v, "LD_", 3) || !strncmp(v, "BASH_FUNC", 9))
    return 0;
  for (i = 0; reserved[i]; i++)
    if (!strcmp(v, reserved[i]))
      return 0;
  return 1;
}

static int parse_grant(json_t *g, size_t i, const struct durin_spec *s,
                       struct durin_spec_grant *out, struct durin_err *err)
{
  char pre[48];
  struct durin_err e2 = { 0 };
  const char *f;
  int r;

  snprintf(pre, sizeof(pre), "secrets[%zu].", i);
  if (!json_is_object(g))
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'secrets[%zu]' must be an object, not %s", i,
                         durin_json_kind(g));
  if ((r = check_fields(g, pre, grant_fields, err)) ||
      (r = get_string(g, "secret", pre, 1, &out->secret, err)) ||
      (r = get_string(g, "host", pre, 0, &out->host, err)) ||
      (r = get_string(g, "header", pre, 0, &out->header, err)) ||
      (r = get_string(g, "format", pre, 0, &out->format, err)) ||
      (r = get_string(g, "env", pre, 0, &out->env, err)) ||
      (r = get_string(g, "tool", pre, 0, &out->tool, err)))
    return r;
  if (durin_secret_name_check(out->secret, &e2))
    return durin_err_set(err, DURIN_ESPEC, "field '%ssecret': %s", pre, e2.msg);
  if (!out->host == !out->env)
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'secrets[%zu]' needs either \"host\" (and "
                         "\"header\": the proxy adds it to that host's "
                         "requests) or \"env\" (and \"tool\": the variable "
                         "is set for that tool's commands), not %s",
                         i, out->host ? "both" : "neither");
  if (out->env) {
    if (out->header || out->format)
      return durin_err_set(err, DURIN_ESPEC,
                           "field '%s%s' belongs to a host grant, not to an "
                           "env grant",
                           pre, out->header ? "header" : "format");
    if (!env_ok(out->env))
      return durin_err_set(err, DURIN_ESPEC,
                           "field '%senv' is '%.64s'; give a variable name "
                           "([A-Za-z_][A-Za-z0-9_]*) that is not PATH, HOME, "
                           "a proxy or CA variable, nor LD_*",
                           pre, out->env);
    if (!out->tool)
      return durin_err_set(err, DURIN_ESPEC,
                           "field '%stool' is required with \"env\": the "
                           "tool whose commands get the variable (\"bash\")",
                           pre);
    if (strcmp(out->tool, "bash"))
      return durin_err_set(err, DURIN_ESPEC,
                           "field '%stool' is '%.64s'; only \"bash\" runs "
                           "commands that can take a variable",
                           pre, out->tool);
    if (!durin_spec_tool(s, out->tool))
      return durin_err_set(err, DURIN_ESPEC,
                           "field '%stool': the spec's tools do not include "
                           "'%s'",
                           pre, out->tool);
    return 0;
  }
  if (out->tool)
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%stool' belongs to an env grant; a host "
                         "grant applies to every command that reaches the "
                         "host",
                         pre);
  if (!out->header)
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%sheader' is required with \"host\": the "
                         "header the proxy adds (\"Authorization\")",
                         pre);
  if (!header_ok(out->header))
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%sheader' is '%.64s'; give a header name "
                         "(an HTTP token) other than Host and the ones "
                         "that frame a request",
                         pre, out->header);
  if (!out->format)
    out->format = strdup("{}");
  f = strstr(out->format, "{}");
  if (!f || strstr(f + 2, "{}") || strpbrk(out->format, "\r\n") ||
      strlen(out->format) > 256)
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%sformat' must hold \"{}\" (where the "
                         "value goes) once, on one line: \"Bearer {}\"",
                         pre);
  if (strchr(out->host, '*') || strchr(out->host, '/') ||
      strchr(out->host, ' ') || strchr(out->host, '['))
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%shost' is '%.64s'; give one host name, "
                         "\"api.example.com\" or \"host:8443\"",
                         pre, out->host);
  if (!s->sandbox.net_proxy)
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%shost' needs \"sandbox.network\": "
                         "\"proxy\": the proxy is what adds the header",
                         pre);
  if (!durin_spec_grant_host_allowed(&s->sandbox, out->host))
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%shost': '%.64s' is not allowed by "
                         "sandbox.allow_hosts; list it there too (written "
                         "the same way, or under a \"*.suffix\" entry)",
                         pre, out->host);
  return 0;
}

/* "secrets": the grants; no two for the same host and header, nor for
 * the same variable of the same tool. */
static int parse_grants(json_t *root, struct durin_spec *s,
                        struct durin_err *err)
{
  json_t *arr = json_object_get(root, "secrets"), *g;
  size_t i;
  int r, k;

  if (!arr)
    return 0;
  if (!json_is_array(arr))
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'secrets' must be an array of grants, not %s",
                         durin_json_kind(arr));
  if (json_array_size(arr) > 32)
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'secrets' has %zu grants; at most 32",
                         json_array_size(arr));
  s->grants = calloc(json_array_size(arr) + 1, sizeof(*s->grants));
  if (!s->grants)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  json_array_foreach(arr, i, g) {
    struct durin_spec_grant *n = &s->grants[s->ngrants++];

    if ((r = parse_grant(g, i, s, n, err)))
      return r;
    for (k = 0; k < s->ngrants - 1; k++) {
      const struct durin_spec_grant *o = &s->grants[k];

      if ((n->host && o->host && !strcasecmp(n->host, o->host) &&
           !strcasecmp(n->header, o->header)) ||
          (n->env && o->env && !strcmp(n->env, o->env) &&
           !strcmp(n->tool, o->tool)))
        return durin_err_set(err, DURIN_ESPEC,
                             "field 'secrets[%zu]' grants %s '%s' again "
                             "(secrets[%d] did)",
                             i, n->host ? "the header for host" : "variable",
                             n->host ? n->host : n->env, k);
    }
  }
  return 0;
}

int durin_spec_sandbox_contained(const struct durin_spec_sandbox *b)
{
  int i, k;

  /* A read-only bind still reaches outside: a unix socket in it can be
   * connected to (read-only mounts and Landlock stop writes to files, not
   * connect()). Judged from the spec alone, any bind is a way out. */
  if (b->nrw || b->nro)
    return 0;
  for (i = 0; b->net_proxy && i < b->nallow; i++) {
    int safe = 0;

    for (k = 0; k < b->nrepeat_safe; k++)
      safe |= !strcmp(b->allow_hosts[i], b->repeat_safe[k]);
    if (!safe)
      return 0;
  }
  return 1;
}

/* "template": a directory shared, read-only, under every run's files. */
static int parse_template(json_t *o, const char *base_dir,
                          struct durin_spec_sandbox *b, struct durin_err *err)
{
  char *t = NULL;
  int r;

  if ((r = get_string(o, "template", "sandbox.", 0, &t, err)) || !t)
    return r;
  if (resolve_path(base_dir, t, &b->template)) {
    r = durin_err_set(err, DURIN_ESPEC,
                      "field 'sandbox.template': directory '%s' does not "
                      "exist",
                      t);
  } else if (strchr(b->template, ',') || strchr(b->template, ':')) {
    r = durin_err_set(err, DURIN_ESPEC,
                      "field 'sandbox.template': '%s' has ',' or ':', which "
                      "an overlayfs layer cannot",
                      b->template);
  }
  free(t);
  return r;
}

/* Validates the assistant turns of the script provider. */
static int check_turns(json_t *turns, const char *where, struct durin_err *err)
{
  size_t i, j;
  json_t *t, *c;

  if (!json_is_array(turns))
    return durin_err_set(err, DURIN_ESPEC,
                         "%s must be an array of assistant turns", where);
  json_array_foreach(turns, i, t) {
    json_t *calls, *rep;
    const char *key;
    json_t *v;

    if (!json_is_object(t))
      return durin_err_set(err, DURIN_ESPEC,
                           "%s[%zu] must be an object like {\"text\": ..., "
                           "\"tool_calls\": [...]}",
                           where, i);
    json_object_foreach(t, key, v) {
      if (strcmp(key, "text") && strcmp(key, "tool_calls") &&
          strcmp(key, "usage") && strcmp(key, "repeat"))
        return durin_err_set(err, DURIN_ESPEC,
                             "%s[%zu]: field '%s' is not known (known: text, "
                             "tool_calls, usage, repeat)",
                             where, i, key);
    }
    rep = json_object_get(t, "repeat");
    if (rep && (!json_is_integer(rep) || json_integer_value(rep) < 1))
      return durin_err_set(err, DURIN_ESPEC,
                           "%s[%zu].repeat must be an integer >= 1", where, i);
    calls = json_object_get(t, "tool_calls");
    if (calls && !json_is_array(calls))
      return durin_err_set(err, DURIN_ESPEC,
                           "%s[%zu].tool_calls must be an array", where, i);
    json_array_foreach(calls, j, c) {
      json_t *name = json_object_get(c, "name");

      if (!json_is_object(c) || !json_is_string(name))
        return durin_err_set(err, DURIN_ESPEC,
                             "%s[%zu].tool_calls[%zu] needs a string 'name' "
                             "and 'arguments' (an object, or a string of "
                             "JSON)",
                             where, i, j);
    }
  }
  return 0;
}

static int parse_model(json_t *root, const char *base_dir,
                       struct durin_model_cfg *m, struct durin_err *err)
{
  json_t *mo = json_object_get(root, "model"), *price, *turns, *summ;
  char *script = NULL;
  int r, i, known = 0;

  m->timeout_ms = 120000;
  m->max_retries = 8;
  m->price.set = 0;
  if (!mo)
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'model' is required: give {\"provider\": "
                         "\"script\", \"script\": \"FILE\"} or {\"provider\": "
                         "\"openai\", \"name\": \"MODEL\"}");
  if (json_is_string(mo)) {
    struct durin_spec tmp;

    memset(&tmp, 0, sizeof(tmp));
    r = durin_spec_set_model(&tmp, json_string_value(mo), err);
    *m = tmp.model;
    m->timeout_ms = 120000;
    m->max_retries = 8;
    return r;
  }
  r = get_object(root, "model", "", model_fields, &mo, err);
  if (r)
    return r;
  if ((r = get_string(mo, "provider", "model.", 1, &m->provider, err)))
    return r;
  for (i = 0; providers[i]; i++)
    if (!strcmp(providers[i], m->provider))
      known = 1;
  if (!known)
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'model.provider' is '%s', which is not a "
                         "known provider (known: script, openai, anthropic)",
                         m->provider);
  if ((r = get_string(mo, "name", "model.", 0, &m->name, err)) ||
      (r = get_string(mo, "base_url", "model.", 0, &m->base_url, err)) ||
      (r = get_string(mo, "api_key_env", "model.", 0, &m->api_key_env, err)) ||
      (r = get_string(mo, "api_key_secret", "model.", 0, &m->api_key_secret,
                      err)) ||
      (r = get_string(mo, "api_version", "model.", 0, &m->api_version, err)) ||
      (r = get_int(mo, "timeout_s", "model.", 1, 1000, &m->timeout_ms, err)) ||
      (r = get_int(mo, "max_retries", "model.", 0, 1, &m->max_retries, err)) ||
      (r = get_int(mo, "max_tokens", "model.", 1, 1, &m->max_tokens, err)) ||
      (r = get_bool(mo, "stream", "model.", &m->stream, err)))
    return r;
  if ((r = get_object(mo, "price", "model.", price_fields, &price, err)))
    return r;
  if (price) {
    if ((r = get_number(price, "input_per_mtok", "model.price.",
                        &m->price.input_per_mtok, err)) ||
        (r = get_number(price, "output_per_mtok", "model.price.",
                        &m->price.output_per_mtok, err)) ||
        (r = get_number(price, "cached_input_per_mtok", "model.price.",
                        &m->price.cached_input_per_mtok, err)) ||
        (r = get_number(price, "cache_write_per_mtok", "model.price.",
                        &m->price.cache_write_per_mtok, err)))
      return r;
    m->price.cached_input_set =
        json_object_get(price, "cached_input_per_mtok") != NULL;
    m->price.cache_write_set =
        json_object_get(price, "cache_write_per_mtok") != NULL;
    m->price.set = 1;
  }
  /* It goes into a request header verbatim: a date-like token only. */
  if (m->api_version &&
      (!*m->api_version ||
       strspn(m->api_version,
              "0123456789abcdefghijklmnopqrstuvwxyz"
              "ABCDEFGHIJKLMNOPQRSTUVWXYZ-._") != strlen(m->api_version) ||
       strlen(m->api_version) > 64))
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'model.api_version' is '%.64s'; give the "
                         "API version as the provider names it, e.g. "
                         "'2023-06-01'",
                         m->api_version);
  if (m->api_key_secret) {
    struct durin_err e2 = { 0 };

    if (durin_secret_name_check(m->api_key_secret, &e2))
      return durin_err_set(err, DURIN_ESPEC, "field 'model.api_key_secret': %s",
                           e2.msg);
  }
  if (!strcmp(m->provider, "script")) {
    turns = json_object_get(mo, "turns");
    if ((r = get_string(mo, "script", "model.", 0, &script, err)))
      return r;
    if (!turns && !script)
      return durin_err_set(err, DURIN_ESPEC,
                           "the script provider needs 'model.script' (a JSON "
                           "file of assistant turns) or 'model.turns'");
    if (script) {
      char *path = NULL, *text = NULL;
      json_error_t je;

      if (resolve_path(base_dir, script, &path)) {
        r = durin_err_set(err, DURIN_ESPEC,
                          "field 'model.script': cannot find '%s'", script);
        free(script);
        return r;
      }
      free(script);
      r = durin_file_read(path, 64 << 20, &text, NULL, err);
      if (r) {
        free(path);
        return durin_err_set(err, DURIN_ESPEC, "field 'model.script': %s",
                             err->msg);
      }
      turns = json_loads(text, 0, &je);
      free(text);
      if (!turns) {
        r = durin_err_set(err, DURIN_ESPEC,
                          "field 'model.script': '%s' is not valid JSON: %s "
                          "(line %d, column %d)",
                          path, je.text, je.line, je.column);
        free(path);
        return r;
      }
      r = check_turns(turns, "model.script", err);
      free(path);
      if (r) {
        json_decref(turns);
        return r;
      }
      m->turns = turns;
    } else {
      if ((r = check_turns(turns, "model.turns", err)))
        return r;
      m->turns = json_incref(turns);
    }
    if ((summ = json_object_get(mo, "summaries"))) {
      if ((r = check_turns(summ, "model.summaries", err)))
        return r;
      m->summaries = json_incref(summ);
    }
    if (!m->name)
      m->name = strdup("script");
  } else {
    if (!m->name)
      return durin_err_set(err, DURIN_ESPEC,
                           "field 'model.name' is required for the %s "
                           "provider (or set DURIN_MODEL)",
                           m->provider);
    if (json_object_get(mo, "turns") || json_object_get(mo, "script") ||
        json_object_get(mo, "summaries"))
      return durin_err_set(err, DURIN_ESPEC,
                           "fields 'model.turns', 'model.script' and "
                           "'model.summaries' belong to the script provider, "
                           "not '%s'",
                           m->provider);
    provider_defaults(m);
  }
  return 0;
}

static int parse_tools(json_t *root, struct durin_spec *s,
                       struct durin_err *err)
{
  json_t *arr = json_object_get(root, "tools"), *t;
  static const char *const all[] = { "bash",       "read_file",  "write_file",
                                     "edit_file",  "list_files", "update_plan",
                                     "run_status", "finish",     NULL };
  size_t i, n;
  int r, has_finish = 0, has_status = 0;

  if (!arr) {
    for (n = 0; all[n]; n++)
      ;
    s->tools = calloc(n, sizeof(*s->tools));
    for (i = 0; i < n; i++) {
      s->tools[i].name = strdup(all[i]);
      s->tools[i].effect = durin_tool_find(all[i])->effect;
    }
    s->ntools = (int)n;
    return 0;
  }
  if (!json_is_array(arr))
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'tools' must be an array of tool names, not "
                         "%s",
                         durin_json_kind(arr));
  n = json_array_size(arr);
  s->tools = calloc(n + 2, sizeof(*s->tools));
  json_array_foreach(arr, i, t) {
    struct durin_spec_tool *st = &s->tools[s->ntools];
    const struct durin_tool_def *def;
    char pre[32], *effect = NULL;

    snprintf(pre, sizeof(pre), "tools[%zu].", i);
    /* Counted first, so durin_spec_clear frees a half-parsed entry. */
    s->ntools++;
    if (json_is_string(t)) {
      st->name = strdup(json_string_value(t));
    } else if (json_is_object(t)) {
      if ((r = check_fields(t, pre, tool_fields, err)) ||
          (r = get_string(t, "name", pre, 1, &st->name, err)) ||
          (r = get_string(t, "effect", pre, 0, &effect, err)))
        return r;
    } else {
      return durin_err_set(err, DURIN_ESPEC,
                           "field 'tools[%zu]' must be a tool name or "
                           "{\"name\": ..., \"effect\": ...}, not %s",
                           i, durin_json_kind(t));
    }
    def = durin_tool_find(st->name);
    if (!def) {
      free(effect);
      return durin_err_set(err, DURIN_ESPEC,
                           "field 'tools[%zu]' names unknown tool '%s' "
                           "(known: %s)",
                           i, st->name, durin_tool_names());
    }
    st->effect = def->effect;
    if (effect) {
      r = parse_effect(effect, &st->effect);
      free(effect);
      if (r)
        return durin_err_set(err, DURIN_ESPEC,
                             "field 'tools[%zu].effect' must be 'pure', "
                             "'idempotent' or 'unsafe'",
                             i);
    }
    if (!strcmp(st->name, "finish"))
      has_finish = 1;
    if (!strcmp(st->name, "run_status"))
      has_status = 1;
  }
  /* Without finish a run could never end well; every agent gets it. */
  if (!has_finish) {
    s->tools[s->ntools].name = strdup("finish");
    s->tools[s->ntools].effect = DURIN_EFFECT_PURE;
    s->ntools++;
  }
  /* Nor may an agent be kept from reading its own run (read-only). */
  if (!has_status) {
    s->tools[s->ntools].name = strdup("run_status");
    s->tools[s->ntools].effect = DURIN_EFFECT_PURE;
    s->ntools++;
  }
  return 0;
}

static int parse_checks(json_t *root, struct durin_spec *s,
                        struct durin_err *err)
{
  json_t *arr = json_object_get(root, "checks"), *c;
  size_t i;
  int r;

  if (!arr)
    return 0;
  if (!json_is_array(arr))
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'checks' must be an array of {\"name\", "
                         "\"run\"} objects, not %s",
                         durin_json_kind(arr));
  s->checks = calloc(json_array_size(arr) + 1, sizeof(*s->checks));
  json_array_foreach(arr, i, c) {
    struct durin_spec_check *ck = &s->checks[s->nchecks];
    char pre[32];

    snprintf(pre, sizeof(pre), "checks[%zu].", i);
    if (!json_is_object(c))
      return durin_err_set(err, DURIN_ESPEC,
                           "field 'checks[%zu]' must be an object like "
                           "{\"name\": \"tests\", \"run\": \"make test\"}",
                           i);
    s->nchecks++;
    ck->timeout_ms = 300000;
    if ((r = check_fields(c, pre, check_fields_, err)) ||
        (r = get_string(c, "run", pre, 1, &ck->run, err)) ||
        (r = get_string(c, "name", pre, 0, &ck->name, err)) ||
        (r = get_int(c, "timeout_s", pre, 1, 1000, &ck->timeout_ms, err)))
      return r;
    if (!ck->name) {
      char nm[32];

      snprintf(nm, sizeof(nm), "check-%zu", i + 1);
      ck->name = strdup(nm);
    }
  }
  return 0;
}

/* Whether the authority at the start of rest (after "http://") is a
 * loopback host: localhost, 127.x.y.z or [::1]. */
static int loopback_url(const char *rest)
{
  size_t n = strcspn(rest, "/?#");
  const char *at = memchr(rest, '@', n);

  if (at) {
    n -= (size_t)(at + 1 - rest);
    rest = at + 1;
  }
  if (!strncmp(rest, "[::1]", 5))
    return n == 5 || rest[5] == ':';
  if (!strncasecmp(rest, "localhost", 9))
    return n == 9 || rest[9] == ':';
  if (!strncmp(rest, "127.", 4)) {
    size_t i;

    for (i = 4; i < n && rest[i] != ':'; i++)
      if (!strchr("0123456789.", rest[i]))
        return 0;
    return 1;
  }
  return 0;
}

/* notify.webhooks: [{"url": "https://...", "events": [...]}]; events
 * default to all. Kept as JSON, with the defaults written in. */
static const char *const mcp_fields[] = {
  "command", "env", "scope", "url", "headers", "tools", "timeout_s", NULL,
};
static const char *const mcp_tool_fields[] = { "effect", NULL };
static const char *const mcp_header_fields[] = { "secret", "format", NULL };

/* Server and tool names join as NAME__TOOL, which a provider takes only
 * in [a-zA-Z0-9_-]; a server name is kept to [a-z0-9_-] and has no
 * "__" of its own, so the split is never ambiguous. */
static int mcp_name_ok(const char *n)
{
  size_t i, len = strlen(n);

  /* No "__", and no '_' at either end: "a_" + "__" + "x" and "a" + "__" +
   * "_x" would both name a___x, and "a__*" would match a_'s tools. */
  if (!len || len > 32 || strstr(n, "__") || n[0] == '_' || n[len - 1] == '_')
    return 0;
  for (i = 0; i < len; i++)
    if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789_-", n[i]))
      return 0;
  return 1;
}

static int parse_mcp_one(const char *name, json_t *o, struct durin_spec_mcp *m,
                         struct durin_err *err)
{
  char pre[80];
  json_t *cmd, *env, *hdrs, *tools, *v;
  const char *key;
  char *scope = NULL;
  size_t i;
  int r;

  snprintf(pre, sizeof(pre), "mcp_servers.%s.", name);
  m->name = strdup(name);
  if (!json_is_object(o))
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'mcp_servers.%s' must be an object with "
                         "\"command\" (stdio) or \"url\" (HTTP), not %s",
                         name, durin_json_kind(o));
  if ((r = check_fields(o, pre, mcp_fields, err)) ||
      (r = get_string(o, "url", pre, 0, &m->url, err)) ||
      (r = get_string(o, "scope", pre, 0, &scope, err)) ||
      (r = get_int(o, "timeout_s", pre, 1, 1000, &m->timeout_ms, err)))
    goto out;
  if (scope && strcmp(scope, "run") && strcmp(scope, "worker")) {
    r = durin_err_set(err, DURIN_ESPEC,
                      "field '%sscope' must be \"run\" (started per run, in "
                      "its sandbox) or \"worker\" (the worker's own server "
                      "of that name), not '%s'",
                      pre, scope);
    goto out;
  }
  m->scope_worker = scope && !strcmp(scope, "worker");
  cmd = json_object_get(o, "command");
  if (m->scope_worker) {
    if (cmd || m->url || json_object_get(o, "env") ||
        json_object_get(o, "headers"))
      r = durin_err_set(err, DURIN_ESPEC,
                        "field 'mcp_servers.%s': a server with \"scope\": "
                        "\"worker\" is the worker's (durin worker "
                        "--mcp-servers); give only \"tools\" and "
                        "\"timeout_s\"",
                        name);
    if (r)
      goto out;
    goto overrides;
  }
  if (!!cmd == !!m->url) {
    r = durin_err_set(err, DURIN_ESPEC,
                      "field 'mcp_servers.%s' needs exactly one of "
                      "\"command\" (a stdio server's argv) and \"url\" (a "
                      "streamable HTTP server)",
                      name);
    goto out;
  }
  if (cmd) {
    if (!json_is_array(cmd) || !json_array_size(cmd) ||
        json_array_size(cmd) > 64) {
      r = durin_err_set(err, DURIN_ESPEC,
                        "field '%scommand' must be a non-empty array of "
                        "strings (the argv), not %s",
                        pre, durin_json_kind(cmd));
      goto out;
    }
    m->argv = calloc(json_array_size(cmd) + 1, sizeof(*m->argv));
    json_array_foreach(cmd, i, v) {
      if (!json_is_string(v) || !json_string_length(v) ||
          strlen(json_string_value(v)) != json_string_length(v)) {
        r = durin_err_set(err, DURIN_ESPEC,
                          "field '%scommand[%zu]' must be a non-empty string",
                          pre, i);
        goto out;
      }
      m->argv[m->argc++] = strdup(json_string_value(v));
    }
  }
  if (m->url && strncmp(m->url, "http://", 7) &&
      strncmp(m->url, "https://", 8)) {
    r = durin_err_set(err, DURIN_ESPEC,
                      "field '%surl': '%s' is not an http:// or https:// URL",
                      pre, m->url);
    goto out;
  }
  if ((env = json_object_get(o, "env"))) {
    if (!cmd || !json_is_object(env)) {
      r = durin_err_set(err, DURIN_ESPEC,
                        "field '%senv' must be an object of strings, for a "
                        "stdio server",
                        pre);
      goto out;
    }
    m->env = calloc(json_object_size(env) + 1, sizeof(*m->env));
    json_object_foreach(env, key, v) {
      if (!json_is_string(v) || !*key || strchr(key, '=')) {
        r = durin_err_set(err, DURIN_ESPEC,
                          "field '%senv.%s' must be a string (and the name "
                          "without '=')",
                          pre, key);
        goto out;
      }
      if (asprintf(&m->env[m->nenv], "%s=%s", key, json_string_value(v)) < 0)
        abort();
      m->nenv++;
    }
  }
  if ((hdrs = json_object_get(o, "headers"))) {
    if (!m->url || !json_is_object(hdrs)) {
      r = durin_err_set(err, DURIN_ESPEC,
                        "field '%sheaders' must be an object, for an HTTP "
                        "server",
                        pre);
      goto out;
    }
    if (json_object_size(hdrs) > 3) {
      r = durin_err_set(err, DURIN_ESPEC,
                        "field '%sheaders' has %zu headers; 3 at most", pre,
                        json_object_size(hdrs));
      goto out;
    }
    m->headers = calloc(json_object_size(hdrs) + 1, sizeof(*m->headers));
    json_object_foreach(hdrs, key, v) {
      struct durin_spec_mcp_header *h = &m->headers[m->nheaders++];
      char hp[160];
      struct durin_err e2 = { 0 };

      snprintf(hp, sizeof(hp), "%sheaders.%s.", pre, key);
      h->name = strdup(key);
      if (!*key || strpbrk(key, ": \r\n")) {
        r = durin_err_set(err, DURIN_ESPEC,
                          "field '%sheaders': '%s' is not a header name", pre,
                          key);
        goto out;
      }
      if (json_is_string(v)) {
        if (strpbrk(json_string_value(v), "\r\n") ||
            strlen(json_string_value(v)) != json_string_length(v)) {
          r = durin_err_set(err, DURIN_ESPEC,
                            "field '%sheaders.%s' holds a line break or a "
                            "NUL",
                            pre, key);
          goto out;
        }
        h->value = strdup(json_string_value(v));
        continue;
      }
      if (!json_is_object(v) ||
          (r = check_fields(v, hp, mcp_header_fields, err)) ||
          (r = get_string(v, "secret", hp, 1, &h->secret, err)) ||
          (r = get_string(v, "format", hp, 0, &h->format, err))) {
        if (!r)
          r = durin_err_set(err, DURIN_ESPEC,
                            "field '%sheaders.%s' must be a string or "
                            "{\"secret\": NAME, \"format\": \"Bearer {}\"}",
                            pre, key);
        goto out;
      }
      if (durin_secret_name_check(h->secret, &e2)) {
        r = durin_err_set(err, DURIN_ESPEC, "field '%ssecret': %s", hp, e2.msg);
        goto out;
      }
      if (h->format &&
          (!strstr(h->format, "{}") || strpbrk(h->format, "\r\n"))) {
        r = durin_err_set(err, DURIN_ESPEC,
                          "field '%sformat' must hold '{}' where the secret "
                          "goes (and no line break)",
                          hp);
        goto out;
      }
      /* A secret crosses the network encrypted, or not at all. */
      if (!strncmp(m->url, "http://", 7) && !loopback_url(m->url + 7)) {
        r = durin_err_set(err, DURIN_ESPEC,
                          "field '%ssecret': a secret goes to an https:// "
                          "server (or one on loopback), not to '%s' in clear",
                          hp, m->url);
        goto out;
      }
    }
  }
overrides:
  if ((tools = json_object_get(o, "tools"))) {
    if (!json_is_object(tools)) {
      r = durin_err_set(err, DURIN_ESPEC,
                        "field '%stools' must be an object: tool name -> "
                        "{\"effect\": \"pure\"|\"idempotent\"|\"unsafe\"}",
                        pre);
      goto out;
    }
    m->tools = calloc(json_object_size(tools) + 1, sizeof(*m->tools));
    json_object_foreach(tools, key, v) {
      struct durin_spec_mcp_tool *t = &m->tools[m->ntools++];
      char tp[160];
      char *effect = NULL;

      snprintf(tp, sizeof(tp), "%stools.%s.", pre, key);
      t->name = strdup(key);
      if (!json_is_object(v)) {
        r = durin_err_set(err, DURIN_ESPEC,
                          "field '%stools.%s' must be {\"effect\": ...}", pre,
                          key);
        goto out;
      }
      if ((r = check_fields(v, tp, mcp_tool_fields, err)) ||
          (r = get_string(v, "effect", tp, 1, &effect, err)))
        goto out;
      if (parse_effect(effect, &t->effect)) {
        r = durin_err_set(err, DURIN_ESPEC,
                          "field '%seffect': '%s' is not pure, idempotent or "
                          "unsafe",
                          tp, effect);
        free(effect);
        goto out;
      }
      free(effect);
    }
  }
out:
  free(scope);
  return r;
}

static int parse_mcp(json_t *root, struct durin_spec *s, struct durin_err *err)
{
  json_t *o = json_object_get(root, "mcp_servers"), *v;
  const char *key;
  int r;

  if (!o)
    return 0;
  if (!json_is_object(o))
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'mcp_servers' must be an object: server name "
                         "-> {\"command\": [...]} or {\"url\": ...}, not %s",
                         durin_json_kind(o));
  if (json_object_size(o) > 16)
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'mcp_servers' has %zu servers; 16 at most",
                         json_object_size(o));
  s->mcp = calloc(json_object_size(o) + 1, sizeof(*s->mcp));
  /* jansson keeps insertion order; a stored spec is dumped sorted. */
  json_object_foreach(o, key, v) {
    if (!mcp_name_ok(key))
      return durin_err_set(err, DURIN_ESPEC,
                           "field 'mcp_servers': '%s' is not a server name "
                           "(1 to 32 of a-z, 0-9, '_' and '-', without '__' "
                           "and not starting or ending with '_')",
                           key);
    if ((r = parse_mcp_one(key, v, &s->mcp[s->nmcp++], err)))
      return r;
  }
  s->mcp_json = json_incref(o);
  return 0;
}

static int parse_notify(json_t *root, json_t **out, struct durin_err *err)
{
  json_t *n = json_object_get(root, "notify"), *hooks, *w, *norm, *list;
  size_t i, j;
  int r, k;

  *out = NULL;
  if (!n)
    return 0;
  if (!json_is_object(n))
    return durin_err_set(err, DURIN_ESPEC, "field 'notify' must be an object");
  if ((r = check_fields(n, "notify.", notify_fields, err)))
    return r;
  hooks = json_object_get(n, "webhooks");
  if (hooks && !json_is_array(hooks))
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'notify.webhooks' must be an array of "
                         "{\"url\", \"events\"}");
  list = json_array();
  json_array_foreach(hooks, i, w) {
    const char *url = json_string_value(json_object_get(w, "url"));
    json_t *ev = json_object_get(w, "events"), *e, *evs = json_array();

    if (!json_is_object(w) ||
        (r = check_fields(w, "notify.webhooks[].", webhook_fields, err)) ||
        (!url &&
         (r = durin_err_set(err, DURIN_ESPEC,
                            "notify.webhooks[%zu]: 'url' is required", i))) ||
        (url && strncmp(url, "http://", 7) && strncmp(url, "https://", 8) &&
         (r = durin_err_set(err, DURIN_ESPEC,
                            "notify.webhooks[%zu].url: '%s' is not an http(s) "
                            "URL",
                            i, url)))) {
      json_decref(evs);
      json_decref(list);
      return r ? r :
                 durin_err_set(err, DURIN_ESPEC,
                               "notify.webhooks[%zu] must be an object", i);
    }
    if (ev && !json_is_array(ev)) {
      json_decref(evs);
      json_decref(list);
      return durin_err_set(err, DURIN_ESPEC,
                           "notify.webhooks[%zu].events must be an array", i);
    }
    for (k = 0; !ev && durin_webhook_events[k]; k++)
      json_array_append_new(evs, json_string(durin_webhook_events[k]));
    json_array_foreach(ev, j, e) {
      const char *name = json_string_value(e);

      for (k = 0; name && durin_webhook_events[k]; k++)
        if (!strcmp(durin_webhook_events[k], name))
          break;
      if (!name || !durin_webhook_events[k]) {
        json_decref(evs);
        json_decref(list);
        return durin_err_set(err, DURIN_ESPEC,
                             "notify.webhooks[%zu].events: '%s' is not an "
                             "event (run.started, run.progress, "
                             "approval.requested, approval.decided, "
                             "run.finished)",
                             i, name ? name : "(not a string)");
      }
      json_array_append(evs, e);
    }
    norm = json_pack("{s:s,s:o}", "url", url, "events", evs);
    json_array_append_new(list, norm);
  }
  *out = json_pack("{s:o}", "webhooks", list);
  return 0;
}

/* A model error's message, prefixed with where the model was. */
static int parse_evaluator_model(json_t *ev, const char *base_dir,
                                 struct durin_model_cfg *m,
                                 struct durin_err *err)
{
  char why[sizeof(err->msg)];
  int r = parse_model(ev, base_dir, m, err);

  if (!r)
    return 0;
  snprintf(why, sizeof(why), "%s", err->msg);
  return durin_err_set(err, r, "in 'evaluator': %s", why);
}

static int parse_evaluator(json_t *root, const char *base_dir,
                           struct durin_spec *s, struct durin_err *err)
{
  struct durin_spec_evaluator *e = &s->evaluator;
  json_t *ev, *o, *v;
  size_t i;
  int r;

  if ((r = get_object(root, "evaluator", "", evaluator_fields, &ev, err)) ||
      !ev)
    return r;
  e->set = 1;
  e->steps = 20;
  e->timeout_ms = 600000;
  e->tools = DURIN_EVAL_READ_FILE | DURIN_EVAL_LIST_FILES | DURIN_EVAL_BASH;
  if (json_object_get(ev, "model")) {
    if ((r = parse_evaluator_model(ev, base_dir, &e->model, err)))
      return r;
    e->own_model = 1;
  } else if (!strcmp(s->model.provider, "script")) {
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'evaluator.model' is required when the agent "
                         "runs on the script provider: give the evaluator's "
                         "own turns, e.g. {\"provider\": \"script\", "
                         "\"turns\": [...]}");
  }
  if ((r = get_string(ev, "instructions", "evaluator.", 0, &e->instructions,
                      err)) ||
      (r = get_int(ev, "timeout_s", "evaluator.", 1, 1000, &e->timeout_ms,
                   err)))
    return r;
  if ((v = json_object_get(ev, "criteria"))) {
    if (!json_is_array(v))
      return durin_err_set(err, DURIN_ESPEC,
                           "field 'evaluator.criteria' must be an array of "
                           "strings, not %s",
                           durin_json_kind(v));
    e->criteria = calloc(json_array_size(v) + 1, sizeof(char *));
    json_array_foreach(v, i, o) {
      if (!json_is_string(o) || !json_string_length(o))
        return durin_err_set(err, DURIN_ESPEC,
                             "field 'evaluator.criteria[%zu]' must be a "
                             "non-empty string, not %s",
                             i, durin_json_kind(o));
      e->criteria[e->ncriteria++] = strdup(json_string_value(o));
    }
  }
  if ((v = json_object_get(ev, "tools"))) {
    static const char *const names[] = { "read_file", "list_files", "bash",
                                         NULL };

    if (!json_is_array(v))
      return durin_err_set(err, DURIN_ESPEC,
                           "field 'evaluator.tools' must be an array of tool "
                           "names, not %s",
                           durin_json_kind(v));
    e->tools = 0;
    json_array_foreach(v, i, o) {
      int k, found = -1;

      for (k = 0; names[k]; k++)
        if (json_is_string(o) && !strcmp(json_string_value(o), names[k]))
          found = k;
      if (found < 0)
        return durin_err_set(
            err, DURIN_ESPEC,
            "field 'evaluator.tools[%zu]' is %s%s%s; an evaluator only "
            "reads: give read_file, list_files or bash (which runs with the "
            "workspace read-only and no network); its verdict tool is "
            "always there",
            i, json_is_string(o) ? "'" : "",
            json_is_string(o) ? json_string_value(o) : durin_json_kind(o),
            json_is_string(o) ? "'" : "");
      e->tools |= 1u << found;
    }
  }
  if ((r = get_object(ev, "budget", "evaluator.", evaluator_budget_fields, &o,
                      err)))
    return r;
  if (o &&
      ((r = get_int(o, "steps", "evaluator.budget.", 1, 1, &e->steps, err)) ||
       (r = get_number(o, "dollars", "evaluator.budget.", &e->dollars, err))))
    return r;
  return 0;
}

/* "git": true | false | "auto", or {"enabled", "progress_files",
 * "log_lines"}: checkpoints of the workspace as commits, and the boot
 * files given to the agent at each start and resume. */
static int parse_git_enabled(json_t *v, const char *field,
                             enum durin_spec_git_mode *mode,
                             struct durin_err *err)
{
  if (json_is_boolean(v)) {
    *mode = json_is_true(v) ? DURIN_SPEC_GIT_ON : DURIN_SPEC_GIT_OFF;
    return 0;
  }
  if (json_is_string(v) && !strcmp(json_string_value(v), "auto")) {
    *mode = DURIN_SPEC_GIT_AUTO;
    return 0;
  }
  return durin_err_set(err, DURIN_ESPEC,
                       "field '%s' is true (commit the workspace after every "
                       "step, making a repository if there is none), false "
                       "(never) or \"auto\" (when the workspace is a git "
                       "repository), not %s",
                       field, durin_json_kind(v));
}

/* A progress file: a plain relative path inside the workspace. */
static int progress_path_ok(const char *p)
{
  const char *c = p;

  if (!*p || *p == '/' || strlen(p) > 255)
    return 0;
  while (*c) {
    size_t n = strcspn(c, "/");

    if (n == 0 || (n == 1 && c[0] == '.') ||
        (n == 2 && c[0] == '.' && c[1] == '.'))
      return 0;
    c += n;
    if (*c == '/')
      c++;
  }
  return !strchr(p, '\n');
}

/*
 * context.reset_at: an integer is a count of tokens, a number below 1 a
 * share of context.max_bytes (docs/internals/context.md).
 */
static int parse_reset_at(json_t *ctx, struct durin_spec *s,
                          struct durin_err *err)
{
  json_t *v = json_object_get(ctx, "reset_at");

  if (!v)
    return 0;
  if (json_is_integer(v)) {
    if (json_integer_value(v) < 256 || json_integer_value(v) > 100000000)
      return durin_err_set(err, DURIN_ESPEC,
                           "field 'context.reset_at' is %lld tokens: give "
                           "from 256 to 100000000 tokens, or a share of "
                           "context.max_bytes between 0 and 1 (e.g. 0.2)",
                           (long long)json_integer_value(v));
    s->reset_tokens = json_integer_value(v);
    return 0;
  }
  if (json_is_real(v) && json_real_value(v) > 0 && json_real_value(v) < 1) {
    s->reset_share = json_real_value(v);
    return 0;
  }
  return durin_err_set(err, DURIN_ESPEC,
                       "field 'context.reset_at' must be a number of tokens "
                       "(an integer >= 256, e.g. 40000) or a share of "
                       "context.max_bytes (a number between 0 and 1, e.g. "
                       "0.2), not %s",
                       durin_json_kind(v));
}

/* A phase's 'until': "update_plan", {"steps": N} or {"check": CMD}. */
static int parse_until(json_t *ph, const char *pre, int last,
                       struct durin_spec_phase *p, struct durin_err *err)
{
  json_t *u = json_object_get(ph, "until"), *o;
  char sub[64];
  int r;

  if (!u) {
    if (last) {
      p->until = DURIN_UNTIL_FINISH;
      return 0;
    }
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%suntil' is required (only the last phase "
                         "runs until the run ends): give \"update_plan\", "
                         "{\"steps\": N} or {\"check\": \"COMMAND\"}",
                         pre);
  }
  if (last)
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%suntil': the last phase runs until the "
                         "agent calls finish; remove its 'until' or add a "
                         "phase after it",
                         pre);
  if (json_is_string(u) && !strcmp(json_string_value(u), "update_plan")) {
    p->until = DURIN_UNTIL_PLAN;
    return 0;
  }
  snprintf(sub, sizeof(sub), "%suntil.", pre);
  if (!json_is_object(u) || json_object_size(u) == 0)
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%suntil' must be \"update_plan\", "
                         "{\"steps\": N} or {\"check\": \"COMMAND\"}, not %s",
                         pre, durin_json_kind(u));
  if ((r = get_object(ph, "until", pre, until_fields, &o, err)))
    return r;
  if (json_object_get(o, "steps") && json_object_get(o, "check"))
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%suntil' names both 'steps' and 'check': "
                         "give one",
                         pre);
  if (json_object_get(o, "steps")) {
    p->until = DURIN_UNTIL_STEPS;
    if (json_object_get(o, "timeout_s"))
      return durin_err_set(err, DURIN_ESPEC,
                           "field '%stimeout_s' goes with 'check', not "
                           "'steps'",
                           sub);
    return get_int(o, "steps", sub, 1, 1, &p->steps, err);
  }
  p->until = DURIN_UNTIL_CHECK;
  p->check.timeout_ms = 60000;
  if ((r = get_string(o, "check", sub, 1, &p->check.run, err)) ||
      (r = get_int(o, "timeout_s", sub, 1, 1000, &p->check.timeout_ms, err)))
    return r;
  if (asprintf(&p->check.name, "phase %s", p->name) < 0)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  return 0;
}

/* The tools a phase may use: the run's own (MCP tools are checked when
 * their servers list them). */
static int parse_phase_tools(json_t *ph, const char *pre,
                             const struct durin_spec *s,
                             struct durin_spec_phase *p, struct durin_err *err)
{
  json_t *t = json_object_get(ph, "tools"), *v;
  size_t i;

  if (!t)
    return 0;
  if (!json_is_array(t) || !json_array_size(t))
    return durin_err_set(err, DURIN_ESPEC,
                         "field '%stools' must be a non-empty array of tool "
                         "names (leave it out for all of the run's tools)",
                         pre);
  p->tools = calloc(json_array_size(t), sizeof(char *));
  json_array_foreach(t, i, v) {
    const char *name = json_string_value(v);

    if (!name)
      return durin_err_set(err, DURIN_ESPEC,
                           "field '%stools[%zu]' must be a tool name, not %s",
                           pre, i, durin_json_kind(v));
    if (!durin_spec_tool(s, name) && !strchr(name, '.') &&
        (!s->nmcp || durin_tool_find(name)))
      return durin_err_set(err, DURIN_ESPEC,
                           "field '%stools[%zu]' is '%s', which is not one of "
                           "the run's tools (see field 'tools')",
                           pre, i, name);
    p->tools[p->ntools++] = strdup(name);
  }
  return 0;
}

static int parse_phases(json_t *root, struct durin_spec *s,
                        struct durin_err *err)
{
  json_t *arr = json_object_get(root, "phases"), *ph;
  size_t i, n;
  int r, j;

  if (!arr)
    return 0;
  n = json_array_size(arr);
  if (!json_is_array(arr) || n < 2 || n > 16)
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'phases' must be an array of 2 to 16 phases "
                         "like {\"name\": \"planning\", \"share\": 0.2, "
                         "\"until\": \"update_plan\"}");
  s->phases = calloc(n, sizeof(*s->phases));
  json_array_foreach(arr, i, ph) {
    struct durin_spec_phase *p = &s->phases[s->nphases];
    char pre[32];
    const char *c;

    snprintf(pre, sizeof(pre), "phases[%zu].", i);
    if (!json_is_object(ph))
      return durin_err_set(err, DURIN_ESPEC,
                           "field 'phases[%zu]' must be an object, not %s", i,
                           durin_json_kind(ph));
    if ((r = check_fields(ph, pre, phase_fields, err)))
      return r;
    s->nphases++;
    if ((r = get_string(ph, "name", pre, 1, &p->name, err)))
      return r;
    for (c = p->name; *c; c++)
      if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789_-", *c) ||
          c - p->name >= 32)
        return durin_err_set(err, DURIN_ESPEC,
                             "field '%sname' is '%.40s': give a short name of "
                             "lowercase letters, digits, '_' and '-'",
                             pre, p->name);
    for (j = 0; j < s->nphases - 1; j++)
      if (!strcmp(s->phases[j].name, p->name))
        return durin_err_set(err, DURIN_ESPEC,
                             "field '%sname': phase '%s' is named twice", pre,
                             p->name);
    p->share = 1.0;
    if ((r = get_number(ph, "share", pre, &p->share, err)))
      return r;
    if (p->share <= 0 || p->share > 1)
      return durin_err_set(err, DURIN_ESPEC,
                           "field '%sshare' must be a share of the context "
                           "window above 0 and at most 1, got %g",
                           pre, p->share);
    if ((r = parse_phase_tools(ph, pre, s, p, err)) ||
        (r = parse_until(ph, pre, i + 1 == n, p, err)))
      return r;
    if (i + 1 == n && p->ntools) {
      for (j = 0; j < p->ntools && strcmp(p->tools[j], "finish"); j++)
        ;
      if (j == p->ntools)
        return durin_err_set(err, DURIN_ESPEC,
                             "field '%stools': the last phase ends the run "
                             "with finish; add \"finish\" to its tools",
                             pre);
    }
  }
  return 0;
}

static int parse_git(json_t *root, struct durin_spec *s, struct durin_err *err)
{
  json_t *v = json_object_get(root, "git"), *files, *e;
  struct durin_spec_git *g = &s->git;
  static const char *const defaults[] = { "PROGRESS.md", "feature-list.json" };
  size_t i;
  int r;

  g->mode = DURIN_SPEC_GIT_AUTO;
  g->log_lines = 8;
  files = NULL;
  if (v && json_is_object(v)) {
    json_t *en = json_object_get(v, "enabled");

    if ((r = check_fields(v, "git.", git_fields, err)) ||
        (en && (r = parse_git_enabled(en, "git.enabled", &g->mode, err))) ||
        (r = get_int(v, "log_lines", "git.", 0, 1, &g->log_lines, err)) ||
        (r = at_most(v, "log_lines", "git.", DURIN_SPEC_MAX_LOG_LINES, err)))
      return r;
    files = json_object_get(v, "progress_files");
    if (files && (!json_is_array(files) ||
                  json_array_size(files) > DURIN_SPEC_MAX_PROGRESS))
      return durin_err_set(err, DURIN_ESPEC,
                           "field 'git.progress_files' must be an array of "
                           "at most %d paths relative to the workspace",
                           DURIN_SPEC_MAX_PROGRESS);
  } else if (v && (r = parse_git_enabled(v, "git", &g->mode, err))) {
    return r;
  }
  g->progress_files = calloc(DURIN_SPEC_MAX_PROGRESS + 1, sizeof(char *));
  if (!g->progress_files)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  if (!files) {
    for (i = 0; i < 2; i++)
      g->progress_files[g->nprogress++] = strdup(defaults[i]);
  }
  json_array_foreach(files, i, e) {
    if (!json_is_string(e) || !progress_path_ok(json_string_value(e)))
      return durin_err_set(err, DURIN_ESPEC,
                           "field 'git.progress_files[%zu]' must be a path "
                           "relative to the workspace, without '.' or '..' "
                           "parts (say \"PROGRESS.md\" or "
                           "\"docs/progress.md\")",
                           i);
    g->progress_files[g->nprogress++] = strdup(json_string_value(e));
  }
  /* A template run's workspace is an overlay view mounted for its
   * commands: there is no directory of its own to commit. */
  if (g->mode == DURIN_SPEC_GIT_ON && s->sandbox.template)
    return durin_err_set(err, DURIN_ESPEC,
                         "field 'git': git checkpoints do not work with "
                         "'sandbox.template' (the workspace is then an "
                         "overlay view, not a directory to commit); remove "
                         "one of them");
  return 0;
}

int durin_spec_parse(const char *json_text, const char *base_dir,
                     struct durin_spec *s, struct durin_err *err)
{
  json_error_t je;
  json_t *root, *o;
  char *ws = NULL;
  int r;

  memset(s, 0, sizeof(*s));
  s->max_eval_attempts = 3;
  s->budget.steps = 100;
  s->tool_timeout_ms = 120000;
  s->output_cap = 64 * 1024;
  s->max_arg_bytes = 256 * 1024;
  s->context_messages = 200;
  /* About 100k tokens: within what current models accept, with room. */
  s->context_bytes = 400 * 1000;

  root = json_loads(json_text, JSON_REJECT_DUPLICATES, &je);
  if (!root)
    return durin_err_set(err, DURIN_ESPEC,
                         "not valid JSON: %s (line %d, column %d)", je.text,
                         je.line, je.column);
  if (!json_is_object(root)) {
    r = durin_err_set(err, DURIN_ESPEC,
                      "the spec must be a JSON object, not %s",
                      durin_json_kind(root));
    goto out;
  }
  if ((r = check_fields(root, "", top_fields, err)) ||
      (r = get_string(root, "name", "", 0, &s->name, err)) ||
      (r = get_string(root, "system", "", 0, &s->system, err)) ||
      (r = get_string(root, "goal", "", 1, &s->goal, err)) ||
      (r = get_string(root, "workspace", "", 1, &ws, err)) ||
      (r = get_int(root, "max_eval_attempts", "", 1, 1, &s->max_eval_attempts,
                   err)) ||
      (r = get_string(root, "traceparent", "", 0, &s->traceparent, err)) ||
      (r = check_traceparent(s->traceparent, err)))
    goto out;
  if (resolve_path(base_dir, ws, &s->workspace)) {
    r = durin_err_set(err, DURIN_ESPEC,
                      "field 'workspace': directory '%s' does not exist", ws);
    goto out;
  }
  if ((r = parse_model(root, base_dir, &s->model, err)) ||
      (r = parse_tools(root, s, err)) || (r = parse_checks(root, s, err)))
    goto out;
  if ((r = get_object(root, "budget", "", budget_fields, &o, err)))
    goto out;
  if (o &&
      ((r = get_int(o, "steps", "budget.", 0, 1, &s->budget.steps, err)) ||
       (r = get_int(o, "tokens", "budget.", 0, 1, &s->budget.tokens, err)) ||
       (r = get_number(o, "dollars", "budget.", &s->budget.dollars, err)) ||
       (r = get_int(o, "wall_clock_s", "budget.", 0, 1000,
                    &s->budget.wall_clock_ms, err)) ||
       (r = get_int(o, "tool_calls", "budget.", 0, 1, &s->budget.tool_calls,
                    err))))
    goto out;
  if ((r = get_object(root, "limits", "", limits_fields, &o, err)))
    goto out;
  if (o && ((r = get_int(o, "tool_timeout_s", "limits.", 1, 1000,
                         &s->tool_timeout_ms, err)) ||
            (r = get_int(o, "output_bytes", "limits.", 256, 1, &s->output_cap,
                         err)) ||
            (r = at_most(o, "output_bytes", "limits.", DURIN_SPEC_MAX_OUTPUT,
                         err)) ||
            (r = get_int(o, "max_arg_bytes", "limits.", 64, 1,
                         &s->max_arg_bytes, err))))
    goto out;
  if ((r = get_object(root, "context", "", context_fields, &o, err)))
    goto out;
  if (o && ((r = get_int(o, "max_messages", "context.", 4, 1,
                         &s->context_messages, err)) ||
            (r = get_int(o, "max_bytes", "context.", 1024, 1, &s->context_bytes,
                         err)) ||
            (r = parse_reset_at(o, s, err))))
    goto out;
  if ((r = get_object(root, "sandbox", "", sandbox_fields, &o, err)))
    goto out;
  if (o && ((r = get_paths(o, "ro", "sandbox.", base_dir, &s->sandbox.ro,
                           &s->sandbox.nro, err)) ||
            (r = get_paths(o, "rw", "sandbox.", base_dir, &s->sandbox.rw,
                           &s->sandbox.nrw, err)) ||
            (r = get_int(o, "memory_mb", "sandbox.", 16, 1,
                         &s->sandbox.memory_mb, err)) ||
            (r = get_int(o, "pids", "sandbox.", 8, 1, &s->sandbox.pids, err)) ||
            (r = get_int(o, "cpu_percent", "sandbox.", 1, 1,
                         &s->sandbox.cpu_percent, err)) ||
            (r = parse_network(o, &s->sandbox, err)) ||
            (r = parse_template(o, base_dir, &s->sandbox, err))))
    goto out;
  if ((r = parse_grants(root, s, err)) ||
      (r = parse_approvals(root, &s->approvals, err)) ||
      (r = parse_breakers(root, &s->breakers, err)))
    goto out;
  if ((o = json_object_get(root, "policy"))) {
    struct durin_policy *pol;

    if ((r = durin_policy_parse(o, "spec", &pol, err)))
      goto out;
    durin_policy_free(pol);
    s->policy = json_incref(o);
  }
  if ((r = parse_notify(root, &s->notify, err)) ||
      (r = parse_deliver(root, &s->deliver, err)))
    goto out;
  if ((r = parse_mcp(root, s, err)) ||
      (r = parse_evaluator(root, base_dir, s, err)))
    goto out;
  if ((r = parse_git(root, s, err)) || (r = parse_phases(root, s, err)))
    goto out;
  if (s->deliver.remote && s->git.mode == DURIN_SPEC_GIT_OFF) {
    r = durin_err_set(err, DURIN_ESPEC,
                      "field 'deliver' pushes the run's git branch, and "
                      "'git' is false: drop one of them");
    goto out;
  }
  if (!s->name)
    s->name = strdup("run");
out:
  free(ws);
  json_decref(root);
  if (r)
    durin_spec_clear(s);
  return r;
}

static void model_clear(struct durin_model_cfg *m);

int durin_spec_set_model(struct durin_spec *s, const char *model,
                         struct durin_err *err)
{
  struct durin_model_cfg *m = &s->model;
  const char *colon = strchr(model, ':');
  char provider[32];

  if (colon) {
    size_t n = (size_t)(colon - model);

    if (n >= sizeof(provider))
      n = sizeof(provider) - 1;
    memcpy(provider, model, n);
    provider[n] = '\0';
    model = colon + 1;
  } else {
    snprintf(provider, sizeof(provider), "openai");
  }
  if (strcmp(provider, "openai") && strcmp(provider, "anthropic"))
    return durin_err_set(err, DURIN_ESPEC,
                         "model '%s:%s': choose 'openai:NAME' or "
                         "'anthropic:NAME' (the script provider needs a "
                         "script in the spec)",
                         provider, model);
  if (!*model)
    return durin_err_set(err, DURIN_ESPEC, "model name is empty");
  json_decref(m->turns);
  m->turns = NULL;
  json_decref(m->summaries);
  m->summaries = NULL;
  /* Another provider: the spec's endpoint and key variable were its own. */
  if (!m->provider || strcmp(m->provider, provider)) {
    free(m->base_url);
    free(m->api_key_env);
    free(m->api_key_secret);
    m->base_url = NULL;
    m->api_key_env = NULL;
    m->api_key_secret = NULL;
  }
  free(m->provider);
  free(m->name);
  m->provider = strdup(provider);
  m->name = strdup(model);
  provider_defaults(m);
  m->price.set = 0;
  /* A scripted evaluator follows the agent onto the real model. */
  if (s->evaluator.own_model && s->evaluator.model.provider &&
      !strcmp(s->evaluator.model.provider, "script")) {
    model_clear(&s->evaluator.model);
    memset(&s->evaluator.model, 0, sizeof(s->evaluator.model));
    s->evaluator.own_model = 0;
  }
  return 0;
}

static void model_clear(struct durin_model_cfg *m)
{
  free(m->provider);
  free(m->name);
  free(m->base_url);
  free(m->api_key_env);
  free(m->api_key_secret);
  free(m->api_version);
  json_decref(m->turns);
  json_decref(m->summaries);
}

void durin_spec_clear(struct durin_spec *s)
{
  int i;

  if (!s)
    return;
  free(s->name);
  free(s->system);
  free(s->goal);
  free(s->traceparent);
  for (i = 0; i < s->git.nprogress; i++)
    free(s->git.progress_files[i]);
  free(s->git.progress_files);
  free(s->workspace);
  model_clear(&s->model);
  for (i = 0; i < s->ntools; i++)
    free(s->tools[i].name);
  free(s->tools);
  for (i = 0; i < s->nchecks; i++) {
    free(s->checks[i].name);
    free(s->checks[i].run);
  }
  free(s->checks);
  for (i = 0; i < s->sandbox.nro; i++)
    free(s->sandbox.ro[i]);
  free(s->sandbox.ro);
  for (i = 0; i < s->sandbox.nrw; i++)
    free(s->sandbox.rw[i]);
  free(s->sandbox.rw);
  for (i = 0; i < s->sandbox.nallow; i++)
    free(s->sandbox.allow_hosts[i]);
  free(s->sandbox.allow_hosts);
  for (i = 0; i < s->sandbox.nrepeat_safe; i++)
    free(s->sandbox.repeat_safe[i]);
  free(s->sandbox.repeat_safe);
  free(s->sandbox.template);
  for (i = 0; i < s->ngrants; i++) {
    free(s->grants[i].secret);
    free(s->grants[i].host);
    free(s->grants[i].header);
    free(s->grants[i].format);
    free(s->grants[i].env);
    free(s->grants[i].tool);
  }
  free(s->grants);
  json_decref(s->policy);
  json_decref(s->notify);
  free(s->deliver.remote);
  free(s->deliver.branch);
  for (i = 0; i < s->nmcp; i++) {
    struct durin_spec_mcp *m = &s->mcp[i];
    int k;

    free(m->name);
    for (k = 0; k < m->argc; k++)
      free(m->argv[k]);
    free(m->argv);
    for (k = 0; k < m->nenv; k++)
      free(m->env[k]);
    free(m->env);
    free(m->url);
    for (k = 0; k < m->nheaders; k++) {
      free(m->headers[k].name);
      free(m->headers[k].value);
      free(m->headers[k].secret);
      free(m->headers[k].format);
    }
    free(m->headers);
    for (k = 0; k < m->ntools; k++)
      free(m->tools[k].name);
    free(m->tools);
  }
  free(s->mcp);
  json_decref(s->mcp_json);
  for (i = 0; i < s->nphases; i++) {
    int k;

    free(s->phases[i].name);
    for (k = 0; k < s->phases[i].ntools; k++)
      free(s->phases[i].tools[k]);
    free(s->phases[i].tools);
    free(s->phases[i].check.name);
    free(s->phases[i].check.run);
  }
  free(s->phases);
  model_clear(&s->evaluator.model);
  free(s->evaluator.instructions);
  for (i = 0; i < s->evaluator.ncriteria; i++)
    free(s->evaluator.criteria[i]);
  free(s->evaluator.criteria);
  memset(s, 0, sizeof(*s));
}

const struct durin_spec_tool *durin_spec_tool(const struct durin_spec *s,
                                              const char *name)
{
  int i;

  for (i = 0; i < s->ntools; i++)
    if (!strcmp(s->tools[i].name, name))
      return &s->tools[i];
  return NULL;
}

static void dump_model(json_t *m, const struct durin_model_cfg *mc)
{
  json_object_set_new(m, "provider", json_string(mc->provider));
  json_object_set_new(m, "name", json_string(mc->name));
  if (mc->base_url)
    json_object_set_new(m, "base_url", json_string(mc->base_url));
  if (mc->api_key_env)
    json_object_set_new(m, "api_key_env", json_string(mc->api_key_env));
  if (mc->api_key_secret)
    json_object_set_new(m, "api_key_secret", json_string(mc->api_key_secret));
  if (mc->turns)
    json_object_set(m, "turns", mc->turns);
  if (mc->summaries)
    json_object_set(m, "summaries", mc->summaries);
  if (mc->api_version)
    json_object_set_new(m, "api_version", json_string(mc->api_version));
  if (mc->price.set) {
    json_t *pr =
        json_pack("{s:f,s:f}", "input_per_mtok", mc->price.input_per_mtok,
                  "output_per_mtok", mc->price.output_per_mtok);

    if (mc->price.cached_input_set)
      json_object_set_new(pr, "cached_input_per_mtok",
                          json_real(mc->price.cached_input_per_mtok));
    if (mc->price.cache_write_set)
      json_object_set_new(pr, "cache_write_per_mtok",
                          json_real(mc->price.cache_write_per_mtok));
    json_object_set_new(m, "price", pr);
  }
  json_object_set_new(m, "timeout_s", json_integer(mc->timeout_ms / 1000));
  json_object_set_new(m, "max_retries", json_integer(mc->max_retries));
  if (mc->max_tokens)
    json_object_set_new(m, "max_tokens", json_integer(mc->max_tokens));
  if (mc->stream)
    json_object_set_new(m, "stream", json_true());
}

char *durin_spec_dump(const struct durin_spec *s)
{
  json_t *root = json_object(), *m = json_object(), *tools = json_array();
  json_t *checks = json_array();
  char *out;
  int i;

  json_object_set_new(root, "name", json_string(s->name));
  if (s->system)
    json_object_set_new(root, "system", json_string(s->system));
  json_object_set_new(root, "goal", json_string(s->goal));
  json_object_set_new(root, "workspace", json_string(s->workspace));
  dump_model(m, &s->model);
  json_object_set_new(root, "model", m);
  for (i = 0; i < s->ntools; i++)
    json_array_append_new(
        tools, json_pack("{s:s,s:s}", "name", s->tools[i].name, "effect",
                         durin_effect_name(s->tools[i].effect)));
  json_object_set_new(root, "tools", tools);
  for (i = 0; i < s->nchecks; i++)
    json_array_append_new(
        checks, json_pack("{s:s,s:s,s:I}", "name", s->checks[i].name, "run",
                          s->checks[i].run, "timeout_s",
                          (json_int_t)(s->checks[i].timeout_ms / 1000)));
  json_object_set_new(root, "checks", checks);
  json_object_set_new(root, "max_eval_attempts",
                      json_integer(s->max_eval_attempts));
  json_object_set_new(
      root, "budget",
      json_pack("{s:I,s:I,s:f,s:I,s:I}", "steps", (json_int_t)s->budget.steps,
                "tokens", (json_int_t)s->budget.tokens, "dollars",
                s->budget.dollars, "wall_clock_s",
                (json_int_t)(s->budget.wall_clock_ms / 1000), "tool_calls",
                (json_int_t)s->budget.tool_calls));
  json_object_set_new(root, "limits",
                      json_pack("{s:I,s:I,s:I}", "tool_timeout_s",
                                (json_int_t)(s->tool_timeout_ms / 1000),
                                "output_bytes", (json_int_t)s->output_cap,
                                "max_arg_bytes", (json_int_t)s->max_arg_bytes));
  if (s->evaluator.set) {
    const struct durin_spec_evaluator *e = &s->evaluator;
    json_t *ev = json_object(), *crit = json_array(), *et = json_array();

    if (e->own_model) {
      json_t *em = json_object();

      dump_model(em, &e->model);
      json_object_set_new(ev, "model", em);
    }
    if (e->instructions)
      json_object_set_new(ev, "instructions", json_string(e->instructions));
    for (i = 0; i < e->ncriteria; i++)
      json_array_append_new(crit, json_string(e->criteria[i]));
    json_object_set_new(ev, "criteria", crit);
    if (e->tools & DURIN_EVAL_READ_FILE)
      json_array_append_new(et, json_string("read_file"));
    if (e->tools & DURIN_EVAL_LIST_FILES)
      json_array_append_new(et, json_string("list_files"));
    if (e->tools & DURIN_EVAL_BASH)
      json_array_append_new(et, json_string("bash"));
    json_object_set_new(ev, "tools", et);
    json_object_set_new(ev, "budget",
                        json_pack("{s:I,s:f}", "steps", (json_int_t)e->steps,
                                  "dollars", e->dollars));
    json_object_set_new(ev, "timeout_s", json_integer(e->timeout_ms / 1000));
    json_object_set_new(root, "evaluator", ev);
  }
  json_object_set_new(root, "context",
                      json_pack("{s:I,s:I}", "max_messages",
                                (json_int_t)s->context_messages, "max_bytes",
                                (json_int_t)s->context_bytes));
  if (s->reset_tokens)
    json_object_set_new(json_object_get(root, "context"), "reset_at",
                        json_integer(s->reset_tokens));
  else if (s->reset_share > 0)
    json_object_set_new(json_object_get(root, "context"), "reset_at",
                        json_real(s->reset_share));
  if (s->nphases) {
    json_t *phs = json_array();

    for (i = 0; i < s->nphases; i++) {
      const struct durin_spec_phase *p = &s->phases[i];
      json_t *ph = json_pack("{s:s,s:f}", "name", p->name, "share", p->share);
      int k;

      if (p->ntools) {
        json_t *t = json_array();

        for (k = 0; k < p->ntools; k++)
          json_array_append_new(t, json_string(p->tools[k]));
        json_object_set_new(ph, "tools", t);
      }
      if (p->until == DURIN_UNTIL_PLAN)
        json_object_set_new(ph, "until", json_string("update_plan"));
      else if (p->until == DURIN_UNTIL_STEPS)
        json_object_set_new(ph, "until",
                            json_pack("{s:I}", "steps", (json_int_t)p->steps));
      else if (p->until == DURIN_UNTIL_CHECK)
        json_object_set_new(
            ph, "until",
            json_pack("{s:s,s:I}", "check", p->check.run, "timeout_s",
                      (json_int_t)(p->check.timeout_ms / 1000)));
      json_array_append_new(phs, ph);
    }
    json_object_set_new(root, "phases", phs);
  }
  {
    const struct durin_spec_sandbox *b = &s->sandbox;
    json_t *sb = json_object(), *ro = json_array(), *rw = json_array();

    for (i = 0; i < b->nro; i++)
      json_array_append_new(ro, json_string(b->ro[i]));
    for (i = 0; i < b->nrw; i++)
      json_array_append_new(rw, json_string(b->rw[i]));
    json_object_set_new(sb, "ro", ro);
    json_object_set_new(sb, "rw", rw);
    if (b->memory_mb)
      json_object_set_new(sb, "memory_mb", json_integer(b->memory_mb));
    if (b->pids)
      json_object_set_new(sb, "pids", json_integer(b->pids));
    if (b->cpu_percent)
      json_object_set_new(sb, "cpu_percent", json_integer(b->cpu_percent));
    if (b->template)
      json_object_set_new(sb, "template", json_string(b->template));
    if (b->net_proxy) {
      json_t *hosts = json_array();

      for (i = 0; i < b->nallow; i++)
        json_array_append_new(hosts, json_string(b->allow_hosts[i]));
      json_object_set_new(sb, "network", json_string("proxy"));
      json_object_set_new(sb, "allow_hosts", hosts);
      if (b->nrepeat_safe) {
        hosts = json_array();
        for (i = 0; i < b->nrepeat_safe; i++)
          json_array_append_new(hosts, json_string(b->repeat_safe[i]));
        json_object_set_new(sb, "repeat_safe_hosts", hosts);
      }
    }
    json_object_set_new(root, "sandbox", sb);
  }
  if (s->policy)
    json_object_set(root, "policy", s->policy);
  if (s->notify)
    json_object_set(root, "notify", s->notify);
  if (s->mcp_json)
    json_object_set(root, "mcp_servers", s->mcp_json);
  if (s->deliver.remote) {
    json_t *d = json_pack("{s:s,s:[]}", "remote", s->deliver.remote, "on");
    int st;

    if (s->deliver.branch)
      json_object_set_new(d, "branch", json_string(s->deliver.branch));
    for (st = 0; st < DURIN_RUN__COUNT; st++)
      if (s->deliver.on & (1u << st))
        json_array_append_new(json_object_get(d, "on"),
                              json_string(durin_run_status_name(st)));
    json_object_set_new(root, "deliver", d);
  }
  if (s->traceparent)
    json_object_set_new(root, "traceparent", json_string(s->traceparent));
  if (s->ngrants) {
    json_t *gs = json_array();

    for (i = 0; i < s->ngrants; i++) {
      const struct durin_spec_grant *g = &s->grants[i];

      json_array_append_new(
          gs, g->host ?
                  json_pack("{s:s,s:s,s:s,s:s}", "secret", g->secret, "host",
                            g->host, "header", g->header, "format", g->format) :
                  json_pack("{s:s,s:s,s:s}", "secret", g->secret, "env", g->env,
                            "tool", g->tool));
    }
    json_object_set_new(root, "secrets", gs);
  }
  json_object_set_new(
      root, "approvals",
      json_pack("{s:I,s:s,s:I}", "timeout_s",
                (json_int_t)(s->approvals.timeout_ms / 1000), "on_expiry",
                s->approvals.expire_to_human ? "needs_human" : "reject",
                "max_rejections", (json_int_t)s->approvals.max_rejections));
  json_object_set_new(root, "breakers",
                      json_pack("{s:I,s:I,s:I}", "repeat",
                                (json_int_t)s->breakers.repeat, "failures",
                                (json_int_t)s->breakers.failures, "window",
                                (json_int_t)s->breakers.window));
  {
    json_t *files = json_array();

    for (i = 0; i < s->git.nprogress; i++)
      json_array_append_new(files, json_string(s->git.progress_files[i]));
    json_object_set_new(
        root, "git",
        json_pack("{s:o,s:o,s:I}", "enabled",
                  s->git.mode == DURIN_SPEC_GIT_AUTO ?
                      json_string("auto") :
                      json_boolean(s->git.mode == DURIN_SPEC_GIT_ON),
                  "progress_files", files, "log_lines",
                  (json_int_t)s->git.log_lines));
  }
  out = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(12));
  json_decref(root);
  return out;
}
