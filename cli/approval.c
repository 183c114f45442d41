/*
 * Approvals without a terminal: reading one, its JSON (a listing's line
 * and a reviewer's whole view), and checking and recording a decision.
 * Shared by `durin approvals` / `approve` / `reject` and the HTTP API
 * (server/approvals.c), so both judge an edit and record a decision the
 * same way. Nothing here prints: failures are a DURIN_E* code and err.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cmd.h"
#include "durin/harness.h"
#include "durin/policy.h"
#include "durin/secret.h"
#include "durin/spec.h"
#include "durin/tools.h"
#include "durin/util.h"

/*
 * A pending request past its deadline is expired: it can no longer be
 * decided (a decision expires it instead), and the watchdog of the next
 * worker, or a waiting `durin run`, records the expiry and wakes the run.
 * This is a read: it changes nothing.
 */
enum durin_approval_state
cli_approval_shown_state(const struct durin_approval *a, int64_t now)
{
  if (a->state == DURIN_APPROVAL_PENDING && a->expires_ms <= now)
    return DURIN_APPROVAL_EXPIRED;
  return a->state;
}

json_t *cli_approval_json(const struct durin_approval *a, int64_t now)
{
  json_t *o =
      json_pack("{s:s,s:s,s:I,s:i,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:s}", "id",
                a->id, "run", a->run_id, "step", (json_int_t)a->step, "call",
                a->call_idx, "call_id", a->call_id, "tool", a->tool, "state",
                durin_approval_state_name(cli_approval_shown_state(a, now)),
                "rule", a->rule ? a->rule : "", "args_hash", a->args_hash,
                "requested_ms", (json_int_t)a->requested_ms, "expires_ms",
                (json_int_t)a->expires_ms, "on_expiry", a->on_expiry);

  json_object_set_new(o, "arguments", json_loads(a->call_args, 0, NULL));
  if (a->state == DURIN_APPROVAL_EDITED)
    json_object_set_new(o, "approved_arguments", json_loads(a->args, 0, NULL));
  if (a->reason)
    json_object_set_new(o, "reason", json_string(a->reason));
  if (a->decided_by)
    json_object_set_new(o, "decided_by", json_string(a->decided_by));
  if (a->comment)
    json_object_set_new(o, "comment", json_string(a->comment));
  if (a->decided_ms)
    json_object_set_new(o, "decided_ms", json_integer(a->decided_ms));
  return o;
}

/* ---- one approval, held past the store's callback ---- */

static const char *keep(struct cli_approval *h, int i, const char *v)
{
  h->s[i] = v ? strdup(v) : NULL;
  return h->s[i];
}

static int hold(const struct durin_approval *a, void *arg)
{
  struct cli_approval *h = arg;

  h->a = *a;
  h->a.call_id = keep(h, 0, a->call_id);
  h->a.tool = keep(h, 1, a->tool);
  h->a.call_args = keep(h, 2, a->call_args);
  h->a.call_hash = keep(h, 3, a->call_hash);
  h->a.args = keep(h, 4, a->args);
  h->a.args_hash = keep(h, 5, a->args_hash);
  h->a.reason = keep(h, 6, a->reason);
  h->a.rule = keep(h, 7, a->rule);
  h->a.on_expiry = keep(h, 8, a->on_expiry);
  h->a.decided_by = keep(h, 9, a->decided_by);
  h->a.comment = keep(h, 10, a->comment);
  return 0;
}

int cli_approval_get(struct durin_store *st, const char *prefix,
                     struct cli_approval *h, struct durin_err *err)
{
  memset(h, 0, sizeof(*h));
  return durin_store_approval_get(st, prefix, hold, h, err);
}

void cli_approval_clear(struct cli_approval *h)
{
  size_t i;

  for (i = 0; i < sizeof(h->s) / sizeof(h->s[0]); i++)
    free(h->s[i]);
  memset(h, 0, sizeof(*h));
}

/* ---- what a reviewer sees ---- */

int cli_approval_review_json(struct durin_store *st,
                             const struct durin_approval *a, int64_t now,
                             const char *diff, const char *diff_error,
                             json_t **out, struct durin_err *err)
{
  struct durin_run_info ri;
  struct durin_checkpoint ck;
  struct durin_spec spec;
  enum durin_approval_state shown = cli_approval_shown_state(a, now);
  char *ckt = NULL;
  int64_t step;
  json_t *o;
  int r;

  if ((r = durin_store_run_get(st, a->run_id, &ri, err)))
    return r;
  memset(&ck, 0, sizeof(ck));
  memset(&spec, 0, sizeof(spec));
  if (durin_store_checkpoint_get(st, ri.id, &step, &ckt, NULL) == 0)
    durin_checkpoint_parse(ckt, &ck, NULL);
  free(ckt);
  durin_spec_parse(ri.spec_json, NULL, &spec, NULL);

  o = cli_approval_json(a, now);
  json_object_set_new(o, "call_hash", json_string(a->call_hash));
  /* Time left to decide; 0 once past the deadline, null once decided. */
  json_object_set_new(
      o, "expires_in_ms",
      a->state != DURIN_APPROVAL_PENDING ? json_null() :
      shown == DURIN_APPROVAL_EXPIRED    ? json_integer(0) :
                                           json_integer(a->expires_ms - now));
  json_object_set_new(o, "run_name", json_string(ri.name ? ri.name : ""));
  json_object_set_new(o, "run_status",
                      json_string(durin_run_status_name(ri.status)));
  json_object_set_new(o, "tenant",
                      json_string(ri.tenant ? ri.tenant : "default"));
  json_object_set_new(o, "goal",
                      spec.goal ? json_string(spec.goal) : json_null());
  json_object_set(o, "plan", ck.plan ? ck.plan : json_array());
  json_object_set_new(
      o, "spent",
      json_pack("{s:f,s:I,s:I,s:I,s:I,s:I}", "cost_usd", ri.usage.cost_usd,
                "steps", (json_int_t)ri.usage.steps, "tool_calls",
                (json_int_t)ri.usage.tool_calls, "input_tokens",
                (json_int_t)ri.usage.input_tokens, "output_tokens",
                (json_int_t)ri.usage.output_tokens, "tokens",
                (json_int_t)(ri.usage.input_tokens + ri.usage.output_tokens)));
  json_object_set_new(o, "diff", diff ? json_string(diff) : json_null());
  if (!diff && diff_error)
    json_object_set_new(o, "diff_error", json_string(diff_error));
  durin_checkpoint_clear(&ck);
  durin_spec_clear(&spec);
  durin_run_info_clear(&ri);
  *out = o;
  return 0;
}

/* ---- deciding ---- */

void cli_edit_clear(struct cli_edit *e)
{
  free(e->canon);
  memset(e, 0, sizeof(*e));
}

/* The tool's argument names, "a, b, c", for a refusal to list. */
static void arg_names(const struct durin_tool_def *def, char *out, size_t len)
{
  json_t *schema = durin_tool_schema(def), *v;
  const char *k;
  size_t off = 0;

  out[0] = 0;
  json_object_foreach(json_object_get(schema, "properties"), k, v)
    off += (size_t)snprintf(out + off, off < len ? len - off : 0, "%s%s",
                            off ? ", " : "", k);
  json_decref(schema);
}

int cli_approval_check_edit(struct durin_store *st,
                            const struct durin_approval *a, const char *text,
                            const struct durin_policy *server,
                            struct cli_edit *e, struct durin_err *err)
{
  const struct durin_tool_def *def = durin_tool_find(a->tool);
  struct durin_run_info ri;
  struct durin_spec spec;
  struct durin_err perr = { 0 };
  struct durin_policy *pol = NULL;
  json_t *args = NULL;
  int r;

  memset(e, 0, sizeof(*e));
  if (!def)
    return durin_err_set(err, DURIN_ESPEC,
                         "approval %s is for unknown tool '%s'", a->id,
                         a->tool);
  if ((r = durin_store_run_get(st, a->run_id, &ri, err)))
    return r;
  r = durin_spec_parse(ri.spec_json, NULL, &spec, &perr);
  durin_run_info_clear(&ri);
  if (r)
    return durin_err_set(err, DURIN_ESPEC, "stored spec of run %s: %s",
                         a->run_id, perr.msg);
  if ((r = durin_tool_args_parse(def, text, (size_t)spec.max_arg_bytes, &args,
                                 err))) {
    arg_names(def, e->arg_names, sizeof(e->arg_names));
    durin_spec_clear(&spec);
    return DURIN_EINVAL;
  }
  /* As the run will judge it: the spec's policy under the server's. A
   * spec policy that does not parse was refused at submit; the run
   * checks again before the call in any case. */
  if (!durin_policy_parse(spec.policy, "spec", &pol, &perr)) {
    struct durin_policy_state ps = { 0, 0 };
    const struct durin_policy *layers[2] = { pol, server };

    durin_policy_decide(layers, 2, spec.workspace, a->tool, args, &ps,
                        &e->denied);
    durin_policy_free(pol);
    if (e->denied.action == DURIN_POLICY_DENY) {
      json_decref(args);
      durin_spec_clear(&spec);
      return durin_err_set(err, DURIN_EACCES,
                           "the policy denies the edited call (%s %s: %s)",
                           e->denied.origin, e->denied.rule, e->denied.why);
    }
  }
  e->canon = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(args);
  durin_spec_clear(&spec);
  if (!e->canon)
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  durin_sha256_hex(e->canon, strlen(e->canon), e->hash);
  return 0;
}

/*
 * Signs a decision that lets a call run, when this process has a master
 * key: the harness of a worker that has one runs only signed decisions
 * (docs/internals/approvals.md). No key configured: unsigned, as before.
 * A key that is configured and does not load refuses the decision.
 */
static int sign(const struct durin_approval *a,
                struct durin_approval_decision *dd,
                char mac[DURIN_APPROVAL_MAC_LEN], struct durin_err *err)
{
  struct durin_master_key *k = NULL;
  unsigned char key[DURIN_SECRET_KEY_BYTES];
  int r = durin_master_key_load(&k, err);

  if (r == DURIN_ENOTFOUND) {
    memset(err, 0, sizeof(*err));
    return 0;
  }
  if (r) {
    durin_err_prefix(err, "the decision was not recorded, as it could not "
                          "be signed: ");
    return r;
  }
  durin_approval_key(k, key);
  durin_master_key_free(k);
  {
    struct durin_approval_signed sa = {
      a->id,        a->run_id,
      a->step,      a->call_idx,
      a->call_id,   a->tool,
      a->call_hash, durin_approval_state_name(dd->state),
      dd->who,      dd->args ? dd->args : a->args,
    };

    durin_approval_mac(key, &sa, mac);
  }
  sodium_memzero(key, sizeof(key));
  dd->args_hash = mac;
  return 0;
}

int cli_approval_decide(struct durin_store *st, const struct durin_approval *a,
                        struct cli_decision *d, struct durin_err *err)
{
  struct durin_approval_decision dd;
  char mac[DURIN_APPROVAL_MAC_LEN];

  memset(&dd, 0, sizeof(dd));
  dd.id = a->id;
  dd.state = d->state;
  /* Edited arguments that hash to the call are a plain approval. */
  if (d->edit && d->edit->canon && strcmp(d->edit->hash, a->call_hash)) {
    dd.state = DURIN_APPROVAL_EDITED;
    dd.args = d->edit->canon;
    dd.args_hash = d->edit->hash;
  }
  dd.who = d->who;
  dd.comment = d->comment;
  dd.now_ms = durin_now_ms();
  d->final = DURIN_APPROVAL_PENDING;
  d->state = dd.state;
  if (dd.state == DURIN_APPROVAL_APPROVED ||
      dd.state == DURIN_APPROVAL_EDITED) {
    int r = sign(a, &dd, mac, err);

    if (r)
      return r;
  }
  return durin_store_approval_decide(st, &dd, &d->final, err);
}
