/*
 * A run's whole trace from the store: the run's row and spec say who the
 * agent and the model are, the log says the rest (lib/otel/trace.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/otel.h"
#include "durin/spec.h"
#include "durin/util.h"

/* The host and port of a base URL ("https://api.openai.com/v1"). */
static void host_port(const char *url, char *host, size_t len, int *port)
{
  const char *p = url ? strstr(url, "://") : NULL, *end, *colon;
  size_t n;

  host[0] = 0;
  *port = 0;
  if (!p)
    return;
  p += 3;
  end = p + strcspn(p, "/?#");
  colon = memchr(p, ':', (size_t)(end - p));
  n = (size_t)((colon ? colon : end) - p);
  if (n >= len)
    return;
  memcpy(host, p, n);
  host[n] = 0;
  *port = colon ? atoi(colon + 1) : !strncmp(url, "https", 5) ? 443 : 80;
}

static int fold_one(const struct durin_event *ev, void *arg)
{
  durin_otel_fold_event(arg, ev);
  return 0;
}

void durin_otel_run_of(const struct durin_run_info *ri, struct durin_spec *spec,
                       char host[256], struct durin_otel_run *run)
{
  memset(spec, 0, sizeof(*spec));
  memset(run, 0, sizeof(*run));
  host[0] = 0;
  run->run_id = ri->id;
  run->name = ri->name;
  run->started_ms = ri->started_ms;
  if (ri->spec_json && !durin_spec_parse(ri->spec_json, NULL, spec, NULL)) {
    run->traceparent = spec->traceparent;
    run->provider = spec->model.provider;
    run->model = spec->model.name;
    if (strcmp(spec->model.provider, "script")) {
      host_port(spec->model.base_url, host, 256, &run->server_port);
      run->server_address = *host ? host : NULL;
    }
  }
}

int durin_otel_run_trace(struct durin_store *st, const char *run_id,
                         const struct durin_otel_opts *o, json_t **out,
                         struct durin_err *err)
{
  struct durin_run_info ri;
  struct durin_spec spec;
  struct durin_otel_run run;
  struct durin_otel_fold *f;
  char host[256];
  int rc;

  *out = NULL;
  if ((rc = durin_store_run_get(st, run_id, &ri, err)))
    return rc;
  durin_otel_run_of(&ri, &spec, host, &run);
  run.capture_content = o ? o->capture_content : 0;
  if (!(f = durin_otel_fold_new(&run))) {
    rc = durin_err_set(err, DURIN_ENOMEM, "out of memory");
  } else {
    struct durin_buf req;

    durin_buf_init(&req, 0);
    durin_otel_fold_output(f, &req, NULL);
    if (durin_otel_request_open(o ? o->resource : NULL, &req))
      rc = durin_err_set(err, DURIN_ENOMEM, "out of memory");
    else
      rc = durin_store_events_read(st, ri.id, 1, 0, fold_one, f, err);
    if (!rc && (durin_otel_fold_failed(f) || durin_otel_request_close(&req) ||
                !(*out = json_loadb(req.buf, req.len, 0, NULL))))
      rc = durin_err_set(err, DURIN_ENOMEM, "out of memory");
    durin_buf_release(&req);
    durin_otel_fold_free(f);
  }
  durin_spec_clear(&spec);
  durin_run_info_clear(&ri);
  return rc;
}
