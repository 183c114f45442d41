/*
 * /v1/secrets: the vault over HTTP, for admins (a tenant's admin: its
 * tenant's secrets only). Like the CLI, a value goes in and never comes
 * out: PUT seals it under the server's master key, GET and the listing
 * give names and metadata, DELETE removes one. The request body that
 * held a value is wiped once sealed.
 */
#include <stdio.h>
#include <string.h>

#include <microhttpd.h>
#include <sodium.h>

#include "durin/secret.h"
#include "durin/store.h"
#include "durin/util.h"
#include "server.h"

static json_t *secret_json(const struct durin_secret_row *s)
{
  return json_pack("{s:s,s:s,s:s?,s:I,s:s,s:I,s:I,s:s?}", "tenant", s->tenant,
                   "name", s->name, "scope", s->scope, "version",
                   (json_int_t)s->version, "key_id", s->key_id, "created_ms",
                   (json_int_t)s->created_ms, "updated_ms",
                   (json_int_t)s->updated_ms, "created_by", s->created_by);
}

static int list_one(const struct durin_secret_row *s, void *arg)
{
  json_array_append_new(arg, secret_json(s));
  return 0;
}

/* GET /v1/secrets[?tenant=T]: metadata, never values; by tenant and
 * name. */
static int list_secrets(struct req *r)
{
  struct durin_err err = { 0 };
  const char *tenant;
  json_t *arr;
  int rc = srv_list_tenant(r, &tenant);

  if (rc < 0)
    return 0;
  arr = json_array();
  if (rc == 0 &&
      (rc = durin_store_secret_list(r->store, tenant, list_one, arr, &err))) {
    json_decref(arr);
    return reply_store_error(r, rc, &err);
  }
  return reply_json(r, 200, json_pack("{s:o}", "secrets", arr));
}

/* The row of the request's tenant and name, metadata only; 0 after
 * answering 404 (the same whether it is not there or not the token's). */
static int find(struct req *r, int write, struct durin_secret_row *row)
{
  struct durin_err err = { 0 };
  const char *tenant;
  int rc = srv_act_tenant(r, write, &tenant);

  if (rc < 0)
    return 0;
  if (rc == 0 && durin_secret_name_check(r->param[0], &err) == 0)
    rc = durin_store_secret_get(r->store, tenant, r->param[0], row, &err);
  else
    rc = DURIN_ENOTFOUND;
  if (rc == DURIN_ENOTFOUND) {
    reply_error(r, 404, "not_found",
                "no secret '%s' in tenant '%s' (list them with GET "
                "/v1/secrets; store one with PUT /v1/secrets/%s)",
                r->param[0], tenant ? tenant : "?", r->param[0]);
    return 0;
  }
  if (rc) {
    reply_store_error(r, rc, &err);
    return 0;
  }
  free(row->nonce);
  free(row->ciphertext);
  row->nonce = row->ciphertext = NULL;
  return 1;
}

/* GET /v1/secrets/{name}[?tenant=T] */
static int get_secret(struct req *r)
{
  struct durin_secret_row row;

  memset(&row, 0, sizeof(row));
  if (!find(r, 0, &row))
    return 0;
  reply_json(r, 200, secret_json(&row));
  durin_secret_row_clear(&row);
  return 0;
}

/* Wipes what held the value: the parsed string and the raw body. */
static void wipe(struct req *r, json_t *body)
{
  json_t *v = body ? json_object_get(body, "value") : NULL;

  if (json_is_string(v))
    sodium_memzero((char *)json_string_value(v), json_string_length(v));
  if (r->body)
    sodium_memzero(r->body, r->body_len);
}

/* PUT /v1/secrets/{name}[?tenant=T] {"value", "scope"?}: 201 for a new
 * secret, 200 for a rotation (the version goes up); the answer is the
 * metadata. */
static int put_secret(struct req *r)
{
  static const char *const fields[] = { "value", "scope", NULL };
  struct durin_secret_set_opts o;
  struct durin_master_key *k = NULL;
  struct durin_secret_row row;
  struct durin_err err = { 0 };
  const char *tenant, *scope = NULL;
  json_t *body = NULL, *v;
  int64_t version = 0;
  int rc;

  if (srv_act_tenant(r, 1, &tenant))
    goto out;
  if (durin_secret_name_check(r->param[0], &err)) {
    reply_error_field(r, 400, "bad_name", "name", "%s", err.msg);
    goto out;
  }
  if (!(body = req_json(r)))
    goto out;
  if (req_unknown_field(r, body, fields) ||
      req_opt_string(r, body, "scope", &scope))
    goto out;
  v = json_object_get(body, "value");
  if (!json_is_string(v) || !json_string_length(v)) {
    reply_error_field(r, 400, "bad_field", "value",
                      "give the value as a non-empty string in \"value\"");
    goto out;
  }
  if (json_string_length(v) > DURIN_SECRET_MAX_VALUE) {
    reply_error_field(r, 400, "bad_field", "value",
                      "the value is longer than %d bytes",
                      DURIN_SECRET_MAX_VALUE);
    goto out;
  }
  if (scope && strncmp(scope, "agent:", 6)) {
    reply_error_field(r, 400, "bad_field", "scope",
                      "scope '%s' is not 'agent:NAME'", scope);
    goto out;
  }
  if ((rc = durin_master_key_load(&k, &err))) {
    /* The server's configuration, not the caller's request. */
    srv_log(r->srv, "PUT /v1/secrets: %s", err.msg);
    reply_error(r, 503, "no_master_key",
                "this server has no master key to seal secrets with; its "
                "operator must configure one (see the server's log)");
    goto out;
  }
  memset(&o, 0, sizeof(o));
  o.tenant = tenant;
  o.name = r->param[0];
  o.scope = scope;
  o.created_by = r->who.name;
  o.now_ms = durin_now_ms();
  rc = durin_secret_set(r->store, k, &o, json_string_value(v),
                        json_string_length(v), &version, &err);
  if (rc) {
    reply_store_error(r, rc, &err);
    goto out;
  }
  srv_log(r->srv, "secret '%s' of tenant '%s' set (version %lld) by token '%s'",
          r->param[0], tenant, (long long)version, r->who.name);
  memset(&row, 0, sizeof(row));
  if (durin_store_secret_get(r->store, tenant, r->param[0], &row, &err) == 0) {
    reply_json(r, version == 1 ? 201 : 200, secret_json(&row));
    durin_secret_row_clear(&row);
  } else {
    reply_json(r, version == 1 ? 201 : 200,
               json_pack("{s:s,s:s,s:I}", "tenant", tenant, "name", r->param[0],
                         "version", (json_int_t)version));
  }
out:
  wipe(r, body);
  json_decref(body);
  durin_master_key_free(k);
  return 0;
}

/* DELETE /v1/secrets/{name}[?tenant=T]: 204. */
static int delete_secret(struct req *r)
{
  struct durin_secret_row row;
  struct durin_err err = { 0 };
  int rc;

  memset(&row, 0, sizeof(row));
  if (!find(r, 1, &row))
    return 0;
  rc = durin_store_secret_delete(r->store, row.tenant, row.name, &err);
  if (rc && rc != DURIN_ENOTFOUND) {
    durin_secret_row_clear(&row);
    return reply_store_error(r, rc, &err);
  }
  srv_log(r->srv, "secret '%s' of tenant '%s' deleted by token '%s'", row.name,
          row.tenant, r->who.name);
  durin_secret_row_clear(&row);
  return reply_response(
      r, 204, MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT));
}

const struct route srv_secret_routes[] = {
  { "GET", "/v1/secrets", ROLE_ADMIN, list_secrets },
  { "GET", "/v1/secrets/{}", ROLE_ADMIN, get_secret },
  { "PUT", "/v1/secrets/{}", ROLE_ADMIN, put_secret },
  { "DELETE", "/v1/secrets/{}", ROLE_ADMIN, delete_secret },
  { NULL, NULL, ROLE_NONE, NULL },
};
