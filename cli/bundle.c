/*
 * A run's postmortem bundle: one .tar.zst with what a person looking
 * into a run asks for first, built here for both `durin bundle` and
 * GET /v1/runs/{id}/bundle, so the two give the same bytes.
 *
 *   session.jsonl      every event, a line each (`durin logs --json`)
 *   last_state.json    the run row and its last checkpoint, decoded
 *   trace.json         the run's OTLP trace (ExportTraceServiceRequest)
 *   tool_calls.csv     a row per tool result (RFC 4180)
 *   workspace.tar.zst  the workspace (GET /v1/runs/{id}/workspace)
 *   workspace.diff     the workspace against its start (`durin diff`)
 *   checks/            each acceptance check attempt's outputs
 *   approvals.json     the run's approvals (`durin approvals --json`)
 *   env.txt            durin's version and commit, model, spec hash,
 *                      the workers that held the run, the store's kind
 *   errors.txt         only when a part could not be made: which, and why
 *
 * Every entry carries the run's last update time as its mtime, so the
 * bundle of a run that did not change is the same file however often it
 * is made. Nothing comes from the environment: the store's URL, which may
 * hold a password, is reduced to its kind.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/bundle.h"
#include "durin-version.h"
#include "durin/otel.h"
#include "durin/util.h"
#include "server/archive.h"

struct bundle {
  struct durin_store *st;
  const struct durin_run_info *ri;
  struct archive *a;
  time_t mtime;
  char *errors; /* errors.txt, as it grows (open_memstream) */
  size_t errors_len;
  FILE *ef;
  struct durin_err *err;
};

/* A part that could not be made: noted in errors.txt, not fatal. */
static void note(struct bundle *b, const char *part, const char *why)
{
  fprintf(b->ef, "%s: %s\n", part, why && *why ? why : "unknown error");
}

static int written(struct bundle *b, const char *name, int r)
{
  const char *e = archive_error_string(b->a);

  if (r >= ARCHIVE_WARN)
    return 0;
  return durin_err_set(b->err, DURIN_EIO, "cannot write '%s' to the bundle: %s",
                       name, e ? e : "unknown error");
}

static int header(struct bundle *b, const char *name, mode_t type, int64_t size)
{
  struct archive_entry *e = archive_entry_new();
  int r;

  if (!e)
    return durin_err_set(b->err, DURIN_ENOMEM, "out of memory");
  archive_entry_copy_pathname(e, name);
  archive_entry_set_filetype(e, type);
  archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
  archive_entry_set_mtime(e, b->mtime, 0);
  archive_entry_set_size(e, type == AE_IFDIR ? 0 : size);
  r = written(b, name, archive_write_header(b->a, e));
  archive_entry_free(e);
  return r;
}

static int add_mem(struct bundle *b, const char *name, const void *data,
                   size_t len)
{
  int r = header(b, name, AE_IFREG, (int64_t)len);

  if (!r && len && archive_write_data(b->a, data, len) < 0)
    r = written(b, name, ARCHIVE_FATAL);
  return r;
}

static int add_str(struct bundle *b, const char *name, const char *s)
{
  return add_mem(b, name, s, strlen(s));
}

/* Adds j as pretty JSON (with a final newline); takes j. */
static int add_json(struct bundle *b, const char *name, json_t *j)
{
  char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
  char *line = NULL;
  int r;

  json_decref(j);
  if (!s || asprintf(&line, "%s\n", s) < 0) {
    free(s);
    return durin_err_set(b->err, DURIN_ENOMEM, "cannot make '%s'", name);
  }
  r = add_str(b, name, line);
  free(line);
  free(s);
  return r;
}

/* Adds the whole of fd (at offset 0), size bytes. */
static int add_fd(struct bundle *b, const char *name, int fd, off_t size)
{
  char buf[65536];
  int r = header(b, name, AE_IFREG, (int64_t)size);

  if (!r && lseek(fd, 0, SEEK_SET) < 0)
    r = durin_err_set(b->err, DURIN_EIO, "cannot read back '%s': %s", name,
                      strerror(errno));
  while (!r && size > 0) {
    ssize_t n = read(fd, buf, sizeof(buf));

    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      r = durin_err_set(b->err, DURIN_EIO, "cannot read back '%s': %s", name,
                        n ? strerror(errno) : "it shrank");
      break;
    }
    if (archive_write_data(b->a, buf, (size_t)n) < 0)
      r = written(b, name, ARCHIVE_FATAL);
    size -= n;
  }
  return r;
}

/* ---- session.jsonl, tool_calls.csv, checks/ and the hosts: one pass ---- */

/* A CSV field, quoted when it needs to be (RFC 4180). */
static void csv_field(FILE *f, const char *s, int last)
{
  if (s && strpbrk(s, ",\"\r\n")) {
    fputc('"', f);
    for (; *s; s++) {
      if (*s == '"')
        fputc('"', f);
      fputc(*s, f);
    }
    fputc('"', f);
  } else if (s) {
    fputs(s, f);
  }
  fputs(last ? "\r\n" : ",", f);
}

/* The sha256 of a call's arguments as approvals hash them: canonical JSON
 * (compact, sorted keys); text that is not JSON is hashed as sent. */
static void args_hash(const char *args, char out[65])
{
  json_t *j = args ? json_loads(args, JSON_DECODE_ANY, NULL) : NULL;
  char *canon = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  const char *s = canon ? canon : args ? args : "";

  durin_sha256_hex(s, strlen(s), out);
  free(canon);
  json_decref(j);
}

/* What became of a call, from its result (see resolve_call and its
 * callers in lib/harness/harness.c for the texts of calls that did not
 * run). */
static const char *call_status(json_t *res)
{
  const char *out = json_string_value(json_object_get(res, "output"));

  if (json_is_true(json_object_get(res, "reused")))
    return "reused";
  if (json_is_true(json_object_get(res, "timed_out")))
    return "timed_out";
  if (json_is_true(json_object_get(res, "ok")))
    return "ok";
  if (!out)
    return "failed";
  if (!strncmp(out, "rejected by ", 12))
    return "rejected";
  if (!strncmp(out, "denied by policy", 16))
    return "denied";
  if (!strncmp(out, "refused: ", 9))
    return "refused";
  if (!strncmp(out, "not run: ", 9))
    return "not_run";
  return "failed";
}

struct walk {
  struct bundle *b;
  FILE *session, *csv;
  json_t *calls;  /* call_id -> arguments text, from model responses */
  json_t *hosts;  /* lease owners named in the log, in order of first sight */
  json_t *checks; /* the checks events' data, in order */
};

static void add_host(json_t *hosts, const char *owner)
{
  size_t i;
  json_t *v;

  if (!owner || !*owner)
    return;
  json_array_foreach(hosts, i, v) {
    if (!strcmp(json_string_value(v), owner))
      return;
  }
  json_array_append_new(hosts, json_string(owner));
}

static void tool_row(struct walk *w, const struct durin_event *ev, json_t *res)
{
  const char *id = json_string_value(json_object_get(res, "call_id"));
  const char *out = json_string_value(json_object_get(res, "output"));
  const char *status = call_status(res);
  char ts[40], hash[65], num[32], exit_code[32], *first = NULL;

  durin_fmt_time(ev->ts_ms, ts, sizeof(ts));
  args_hash(json_string_value(json_object_get(w->calls, id ? id : "")), hash);
  csv_field(w->csv, ts, 0);
  snprintf(num, sizeof(num), "%lld", (long long)ev->step);
  csv_field(w->csv, num, 0);
  csv_field(w->csv, json_string_value(json_object_get(res, "name")), 0);
  csv_field(w->csv, id, 0);
  csv_field(w->csv, hash, 0);
  snprintf(num, sizeof(num), "%lld",
           (long long)json_integer_value(json_object_get(res, "duration_ms")));
  csv_field(w->csv, num, 0);
  csv_field(w->csv, status, 0);
  snprintf(exit_code, sizeof(exit_code), "%lld",
           (long long)json_integer_value(json_object_get(res, "exit_code")));
  csv_field(w->csv, exit_code, 0);
  if (strcmp(status, "ok") && strcmp(status, "reused") && out) {
    /* bash's output opens with "exit code N", the column before. */
    if (!strncmp(out, "exit code ", 10) && out[strcspn(out, "\n")] &&
        out[strcspn(out, "\n") + 1])
      out += strcspn(out, "\n") + 1;
    first = strndup(out, strcspn(out, "\r\n"));
  }
  csv_field(w->csv, first ? first : "", 1);
  free(first);
}

static int on_event(const struct durin_event *ev, void *arg)
{
  struct walk *w = arg;
  json_t *d;

  cli_print_event_json(w->session, w->b->ri->id, ev);
  if (!(d = json_loads(ev->data, 0, NULL)))
    return 0;
  add_host(w->hosts, json_string_value(json_object_get(d, "owner")));
  if (!strcmp(ev->type, "model_response")) {
    size_t i;
    json_t *c;

    json_array_foreach(json_object_get(d, "tool_calls"), i, c) {
      const char *id = json_string_value(json_object_get(c, "id"));
      json_t *args = json_object_get(c, "arguments");

      if (id && args)
        json_object_set(w->calls, id, args);
    }
  } else if (!strcmp(ev->type, "tool_result")) {
    tool_row(w, ev, d);
  } else if (!strcmp(ev->type, "checks")) {
    json_array_append(w->checks, d);
  }
  json_decref(d);
  return 0;
}

/* A check's name as a file name: letters, digits, '.', '-', '_'. */
static void file_name(const char *name, char *out, size_t len)
{
  size_t i;

  for (i = 0; name && name[i] && i + 1 < len; i++)
    out[i] = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    "0123456789._-",
                    name[i]) ?
                 name[i] :
                 '_';
  out[i] = 0;
  if (!i || !strcmp(out, ".") || !strcmp(out, ".."))
    snprintf(out, len, "check");
}

/*
 * checks/attempt-N/result.json (passed, attempt, and each check without
 * its output) and checks/attempt-N/NAME.txt (its output), per checks
 * event.
 */
static int add_checks(struct bundle *b, json_t *checks)
{
  size_t i, k;
  json_t *ev, *res;
  char dir[64], path[256], name[96];
  int r = header(b, "checks/", AE_IFDIR, 0);

  json_array_foreach(checks, i, ev) {
    json_t *summary = json_deep_copy(ev);

    if (r)
      break;
    snprintf(
        dir, sizeof(dir), "checks/attempt-%lld",
        (long long)(json_integer_value(json_object_get(ev, "attempt")) ?
                        json_integer_value(json_object_get(ev, "attempt")) :
                        (json_int_t)(i + 1)));
    snprintf(path, sizeof(path), "%s/", dir);
    r = header(b, path, AE_IFDIR, 0);
    json_array_foreach(json_object_get(summary, "results"), k, res) {
      const char *out = json_string_value(json_object_get(res, "output"));

      if (r)
        break;
      file_name(json_string_value(json_object_get(res, "name")), name,
                sizeof(name));
      snprintf(path, sizeof(path), "%s/%zu-%s.txt", dir, k + 1, name);
      r = add_str(b, path, out ? out : "");
      json_object_del(res, "output");
      json_object_set_new(res, "output_file",
                          json_string(strrchr(path, '/') + 1));
    }
    snprintf(path, sizeof(path), "%s/result.json", dir);
    if (!r)
      r = add_json(b, path, summary);
    else
      json_decref(summary);
  }
  return r;
}

/* ---- last_state.json ---- */

static json_t *time_or_null(int64_t ms)
{
  char ts[40];

  if (!ms)
    return json_null();
  durin_fmt_time(ms, ts, sizeof(ts));
  return json_string(ts);
}

static json_t *str_or_null(const char *s)
{
  return s && *s ? json_string(s) : json_null();
}

static json_t *run_row(const struct durin_run_info *ri)
{
  const struct durin_usage *u = &ri->usage;

  return json_pack(
      "{s:s,s:o,s:s,s:o,s:o,s:s,s:o,s:I,s:I,s:I,s:I,"
      "s:{s:o,s:I,s:o},s:b,s:b,s:I,s:o,s:o,"
      "s:{s:o,s:o,s:o,s:o},"
      "s:{s:I,s:I,s:I,s:I,s:I,s:I,s:f},s:o}",
      "id", ri->id, "name", str_or_null(ri->name), "status",
      durin_run_status_name(ri->status), "reason", str_or_null(ri->reason),
      "tenant", str_or_null(ri->tenant), "model", ri->model ? ri->model : "",
      "workspace", str_or_null(ri->workspace), "attempts",
      (json_int_t)ri->attempt, "recoveries", (json_int_t)ri->recoveries,
      "max_recoveries", (json_int_t)ri->max_recoveries, "last_seq",
      (json_int_t)ri->last_seq, "lease", "owner", str_or_null(ri->lease_owner),
      "epoch", (json_int_t)ri->lease_epoch, "expires",
      time_or_null(ri->lease_expires_ms), "cancel_requested",
      ri->cancel_requested, "pause_requested", ri->pause_requested, "priority",
      (json_int_t)ri->priority, "dedupe_key", str_or_null(ri->dedupe_key),
      "concurrency_key", str_or_null(ri->concurrency_key), "times", "created",
      time_or_null(ri->created_ms), "started", time_or_null(ri->started_ms),
      "updated", time_or_null(ri->updated_ms), "finished",
      time_or_null(ri->finished_ms), "usage", "steps", (json_int_t)u->steps,
      "input_tokens", (json_int_t)u->input_tokens, "output_tokens",
      (json_int_t)u->output_tokens, "model_calls", (json_int_t)u->model_calls,
      "tool_calls", (json_int_t)u->tool_calls, "retries",
      (json_int_t)u->retries, "cost_usd", u->cost_usd, "not_before",
      time_or_null(ri->not_before_ms));
}

static int add_last_state(struct bundle *b)
{
  struct durin_err e = { 0 };
  json_t *o = json_object(), *ck = NULL;
  char *data = NULL;
  int64_t step = 0;
  int r;

  json_object_set_new(o, "run", run_row(b->ri));
  r = durin_store_checkpoint_get(b->st, b->ri->id, &step, &data, &e);
  if (!r && !(ck = json_loads(data, 0, NULL)))
    note(b, "last_state.json", "the checkpoint is not JSON");
  else if (r && r != DURIN_ENOTFOUND)
    note(b, "last_state.json", e.msg);
  json_object_set_new(o, "checkpoint", ck ? ck : json_null());
  free(data);
  return add_json(b, "last_state.json", o);
}

/* ---- approvals.json ---- */

struct approvals {
  json_t *list;
  int64_t now;
};

static int on_approval(const struct durin_approval *a, void *arg)
{
  struct approvals *l = arg;

  json_array_append_new(l->list, cli_approval_json(a, l->now));
  return 0;
}

static int add_approvals(struct bundle *b)
{
  struct approvals l = { json_array(), durin_now_ms() };
  struct durin_err e = { 0 };

  if (durin_store_approval_list(b->st, b->ri->id, -1, 0, on_approval, &l, &e))
    note(b, "approvals.json", e.msg);
  return add_json(b, "approvals.json", l.list);
}

/* ---- env.txt ---- */

static const char *store_kind(struct durin_store *st)
{
  const char *url = durin_store_url(st);

  if (!url)
    return "unknown";
  if (!strncmp(url, "sqlite:", 7))
    return "sqlite";
  if (!strncmp(url, "postgres:", 9) || !strncmp(url, "postgresql:", 11))
    return "postgres";
  return "unknown";
}

static int add_env(struct bundle *b, json_t *hosts)
{
  const struct durin_run_info *ri = b->ri;
  char hash[65] = "unknown", *text = NULL;
  size_t len = 0, i;
  FILE *f = open_memstream(&text, &len);
  json_t *h;
  int r;

  if (!f)
    return durin_err_set(b->err, DURIN_ENOMEM, "out of memory");
  if (ri->spec_json)
    durin_sha256_hex(ri->spec_json, strlen(ri->spec_json), hash);
  add_host(hosts, ri->lease_owner);
  fprintf(f, "durin_version %s\n", DURIN_VERSION);
  fprintf(f, "durin_commit %s\n", DURIN_COMMIT);
  fprintf(f, "run %s\n", ri->id);
  fprintf(f, "model %s\n", ri->model ? ri->model : "unknown");
  fprintf(f, "spec_sha256 %s\n", hash);
  fprintf(f, "store %s\n", store_kind(b->st));
  fprintf(f, "lease_owner %s\n",
          ri->lease_owner && *ri->lease_owner ? ri->lease_owner : "none");
  fprintf(f, "workers");
  json_array_foreach(hosts, i, h)
    fprintf(f, " %s", json_string_value(h));
  fprintf(f, "%s\n", json_array_size(hosts) ? "" : " unknown");
  if (fclose(f)) {
    free(text);
    return durin_err_set(b->err, DURIN_ENOMEM, "out of memory");
  }
  r = add_mem(b, "env.txt", text, len);
  free(text);
  return r;
}

/* ---- the workspace ---- */

static int tmp_fd(const char *dir, struct durin_err *err)
{
  const char *d = dir && *dir                           ? dir :
                  getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") :
                                                          "/tmp";
  int fd = durin_tmpfile(d);

  if (fd < 0)
    return durin_err_set(err, DURIN_EIO,
                         "cannot make a temporary file in '%s': %s", d,
                         strerror(errno));
  return fd;
}

static int add_workspace(struct bundle *b, const struct cli_bundle_opts *o)
{
  struct durin_err e = { 0 };
  struct stat st;
  int fd, r = 0;

  if (!b->ri->workspace || !*b->ri->workspace) {
    note(b, "workspace.tar.zst", "the run has no workspace");
  } else if ((fd = tmp_fd(o->tmp_dir, &e)) < 0) {
    note(b, "workspace.tar.zst", e.msg);
  } else {
    if (durin_archive_pack(b->ri->workspace, DURIN_ARCHIVE_TZST, fd, &e) ||
        fstat(fd, &st))
      note(b, "workspace.tar.zst", e.msg[0] ? e.msg : strerror(errno));
    else
      r = add_fd(b, "workspace.tar.zst", fd, st.st_size);
    close(fd);
  }
  if (r)
    return r;
  if (o->diff)
    return add_mem(b, "workspace.diff", o->diff, o->diff_len);
  if (o->diff_error)
    note(b, "workspace.diff", o->diff_error);
  return add_mem(b, "workspace.diff", "", 0);
}

/* ---- the bundle ---- */

/* The trace as `durin trace ID` prints it by default: the default
 * resource (nothing from OTEL_* in the environment), no message or tool
 * content (the log holds that, in session.jsonl). */
static int add_trace(struct bundle *b)
{
  struct durin_otel_opts oo;
  struct durin_err e = { 0 };
  json_t *trace = NULL;

  memset(&oo, 0, sizeof(oo));
  if (durin_otel_run_trace(b->st, b->ri->id, &oo, &trace, &e)) {
    note(b, "trace.json", e.msg);
    trace = json_pack("{s:[]}", "resourceSpans");
  }
  return add_json(b, "trace.json", trace);
}

static int write_parts(struct bundle *b, const struct cli_bundle_opts *o)
{
  struct walk w = { .b = b };
  struct durin_err e = { 0 };
  char *session = NULL, *csv = NULL;
  size_t session_len = 0, csv_len = 0;
  int r = 0;

  w.calls = json_object();
  w.hosts = json_array();
  w.checks = json_array();
  w.session = open_memstream(&session, &session_len);
  w.csv = open_memstream(&csv, &csv_len);
  if (!w.calls || !w.hosts || !w.checks || !w.session || !w.csv) {
    r = durin_err_set(b->err, DURIN_ENOMEM, "out of memory");
    goto out;
  }
  fputs("ts,step,tool,call_id,args_sha256,latency_ms,status,exit_code,error"
        "\r\n",
        w.csv);
  if ((r = durin_store_events_read(b->st, b->ri->id, 1, 0, on_event, &w, &e))) {
    r = durin_err_set(b->err, r, "cannot read the log of run '%s': %s",
                      b->ri->id, e.msg);
    goto out;
  }
  fclose(w.session);
  fclose(w.csv);
  w.session = w.csv = NULL;
  if (!r)
    r = add_mem(b, "session.jsonl", session, session_len);
  if (!r)
    r = add_last_state(b);
  if (!r)
    r = add_trace(b);
  if (!r)
    r = add_mem(b, "tool_calls.csv", csv, csv_len);
  if (!r)
    r = add_workspace(b, o);
  if (!r)
    r = add_checks(b, w.checks);
  if (!r)
    r = add_approvals(b);
  if (!r)
    r = add_env(b, w.hosts);
out:
  if (w.session)
    fclose(w.session);
  if (w.csv)
    fclose(w.csv);
  free(session);
  free(csv);
  json_decref(w.calls);
  json_decref(w.hosts);
  json_decref(w.checks);
  return r;
}

int cli_bundle_write(struct durin_store *st, const struct durin_run_info *ri,
                     const struct cli_bundle_opts *o, int fd,
                     struct durin_err *err)
{
  struct bundle b = { .st = st, .ri = ri, .err = err };
  int r;

  b.mtime = (time_t)((ri->updated_ms ? ri->updated_ms : ri->created_ms) / 1000);
  if (!(b.ef = open_memstream(&b.errors, &b.errors_len)))
    return durin_err_set(err, DURIN_ENOMEM, "out of memory");
  b.a = archive_write_new();
  if (!b.a || archive_write_set_format_pax_restricted(b.a) ||
      archive_write_add_filter_zstd(b.a) ||
      /* No padding after the zstd frame, whatever fd is (libarchive pads
       * the last block of anything but a regular file by default). */
      archive_write_set_bytes_in_last_block(b.a, 1) ||
      archive_write_open_fd(b.a, fd)) {
    r = durin_err_set(err, DURIN_EIO, "cannot start the bundle: %s",
                      b.a && archive_error_string(b.a) ?
                          archive_error_string(b.a) :
                          "out of memory");
    goto out;
  }
  r = write_parts(&b, o);
  fclose(b.ef);
  b.ef = NULL;
  if (!r && b.errors_len)
    r = add_mem(&b, "errors.txt", b.errors, b.errors_len);
  if (!r)
    r = written(&b, "the end", archive_write_close(b.a));
out:
  if (b.ef)
    fclose(b.ef);
  free(b.errors);
  archive_write_free(b.a);
  return r;
}
