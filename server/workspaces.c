/*
 * Workspaces for remote callers. An upload (POST /v1/workspaces, a tar,
 * tar.gz or tar.zst body) is unpacked safely (server/archive.c) into
 * DATA/uploads/ID with its tenant beside it, and consumed by the one run
 * created from it. An admin may instead name a directory under the
 * server's --workspace-root; a registered agent's own workspace is its
 * template. A run's workspace comes back as an archive.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>

#include "cli/bundle.h"
#include "durin/util.h"
#include "server/archive.h"
#include "server/workspaces.h"

#define UPLOAD_PREFIX "ws_"

static void uploads_dir(struct srv *s, char *out, size_t len)
{
  snprintf(out, len, "%s/uploads", srv_data_dir(s));
}

/* A staging or upload directory this module made (and may remove). */
static int ours(const char *dir)
{
  return strstr(dir, "/uploads/" UPLOAD_PREFIX) != NULL ||
         strstr(dir, "/staging/") != NULL;
}

void srv_workspace_done(const char *dir)
{
  char parent[PATH_MAX];
  char *slash;

  if (!dir || !*dir || !ours(dir))
    return;
  /* The tree is DIR/files; DIR holds the tenant marker too. */
  snprintf(parent, sizeof(parent), "%s", dir);
  slash = strrchr(parent, '/');
  if (slash && !strcmp(slash, "/files"))
    *slash = 0;
  durin_tree_remove(parent);
}

static int upload_tenant_ok(struct req *r, const char *dir)
{
  char path[PATH_MAX], *t = NULL;
  int ok;

  snprintf(path, sizeof(path), "%s/tenant", dir);
  if (durin_file_read(path, 4096, &t, NULL, NULL))
    return 0;
  ok = req_sees_tenant(r, t);
  free(t);
  return ok;
}

int srv_workspace_under_root(struct req *r, const char *path, const char *field,
                             char *dir, size_t len)
{
  const char *root = srv_options(r->srv)->workspace_root;
  char joined[PATH_MAX * 2];
  char *real = NULL;
  struct stat st;
  size_t rl;
  int under;

  if (!root)
    return reply_error_field(r, 422, "spec_policy", field,
                             "this server names no workspace root "
                             "(durin serve --workspace-root DIR)"),
           -1;
  /* Relative to the root, never to wherever the server was started. */
  snprintf(joined, sizeof(joined), "%s%s%s", path[0] == '/' ? "" : root,
           path[0] == '/' ? "" : "/", path);
  /* The real path: a link under the root may lead out of it. The root
   * itself is real (durin serve resolved it). */
  real = realpath(joined, NULL);
  rl = strlen(root);
  under = real && (!strcmp(root, "/") || (!strncmp(real, root, rl) &&
                                          (real[rl] == 0 || real[rl] == '/')));
  if (!under || stat(real, &st) || !S_ISDIR(st.st_mode)) {
    free(real);
    return reply_error_field(r, 422, "spec_policy", field,
                             "'%s' is not a directory under the server's "
                             "workspace root %s",
                             path, root),
           -1;
  }
  snprintf(dir, len, "%s", real);
  free(real);
  return 0;
}

int srv_workspace_for_run(struct req *r, json_t *ws, const char *agent_dir,
                          char *dir, size_t len)
{
  struct durin_err err = { 0 };
  struct stat st;
  const char *upload, *path;

  *dir = 0;
  if (ws && !json_is_object(ws))
    return reply_error_field(r, 400, "bad_field", "workspace",
                             "workspace is {\"upload\": ID} (from POST "
                             "/v1/workspaces) or, for admins, {\"dir\": "
                             "PATH}"),
           -1;
  upload = json_string_value(json_object_get(ws, "upload"));
  path = json_string_value(json_object_get(ws, "dir"));
  if (ws && !upload == !path)
    return reply_error_field(r, 400, "bad_field", "workspace",
                             "workspace takes one of 'upload' or 'dir'"),
           -1;
  if (upload) {
    char up[PATH_MAX];

    uploads_dir(r->srv, up, sizeof(up));
    if (strncmp(upload, UPLOAD_PREFIX, 3) || strchr(upload, '/') ||
        strchr(upload, '.'))
      return reply_error_field(r, 422, "bad_field", "workspace.upload",
                               "'%s' is not an upload id", upload),
             -1;
    snprintf(dir, len, "%s/%s", up, upload);
    if (stat(dir, &st) || !upload_tenant_ok(r, dir)) {
      *dir = 0;
      return reply_error_field(r, 422, "not_found", "workspace.upload",
                               "no upload '%s' (each upload starts one run; "
                               "upload the archive again)",
                               upload),
             -1;
    }
    strncat(dir, "/files", len - strlen(dir) - 1);
    return 0;
  }
  if (path) {
    if (r->who.role < ROLE_ADMIN)
      return reply_error_field(r, 403, "forbidden", "workspace.dir",
                               "only an admin token may start a run in a "
                               "server directory; upload an archive "
                               "instead (POST /v1/workspaces)"),
             -1;
    return srv_workspace_under_root(r, path, "workspace.dir", dir, len);
  }
  /* Checked again at each run: the root may have changed since the agent
   * was registered, or a link under it been moved. */
  if (agent_dir)
    return srv_workspace_under_root(r, agent_dir, "spec.workspace", dir, len);
  /* No workspace: an empty one. */
  {
    char base[PATH_MAX], id[32];

    snprintf(base, sizeof(base), "%s/staging", srv_data_dir(r->srv));
    if (durin_mkdirs(base, &err) || durin_run_id_new(id)) {
      reply_error(r, 500, "internal", "cannot make a workspace: %s", err.msg);
      return -1;
    }
    snprintf(dir, len, "%s/%s/files", base, id);
    if (durin_mkdirs(dir, &err)) {
      reply_error(r, 500, "internal", "cannot make a workspace: %s", err.msg);
      *dir = 0;
      return -1;
    }
  }
  return 0;
}

static int write_marker(const char *path, const char *text,
                        struct durin_err *err)
{
  FILE *f = fopen(path, "w");
  int bad;

  if (!f)
    return durin_err_set(err, DURIN_EIO, "writing %s: %s", path,
                         strerror(errno));
  bad = fputs(text, f) < 0;
  bad |= fclose(f) != 0;
  if (bad)
    return durin_err_set(err, DURIN_EIO, "writing %s: %s", path,
                         strerror(errno));
  return 0;
}

/* POST /v1/workspaces: the body is the archive. */
static int upload(struct req *r)
{
  const struct srv_opts *o = srv_options(r->srv);
  struct durin_archive_caps caps;
  struct durin_err err = { 0 };
  char up[PATH_MAX], dir[PATH_MAX + 64], files[PATH_MAX + 80], id[32];
  char marker[PATH_MAX + 80];
  const char *tenant = r->who.has_tenant ? r->who.tenant : "default";
  int rc;

  if (!r->body_len)
    return reply_error(r, 400, "bad_request",
                       "send the workspace as the body: a tar, tar.gz or "
                       "tar.zst archive");
  if (durin_run_id_new(id))
    return reply_error(r, 500, "internal", "cannot make an upload id");
  memcpy(id, UPLOAD_PREFIX, 3);
  uploads_dir(r->srv, up, sizeof(up));
  snprintf(dir, sizeof(dir), "%s/%s", up, id);
  snprintf(files, sizeof(files), "%s/files", dir);
  snprintf(marker, sizeof(marker), "%s/tenant", dir);
  if (durin_mkdirs(files, &err) || write_marker(marker, tenant, &err)) {
    durin_tree_remove(dir);
    return reply_error(r, 500, "internal", "cannot store the upload: %s",
                       err.msg);
  }
  memset(&caps, 0, sizeof(caps));
  caps.max_bytes = o->max_unpack;
  caps.max_entries = 100000;
  caps.max_path = 1024;
  rc = durin_archive_unpack(r->body, r->body_len, files, &caps, &err);
  if (rc) {
    durin_tree_remove(dir);
    return reply_error(r, rc == DURIN_ETOOBIG ? 413 : 422, "bad_archive", "%s",
                       err.msg);
  }
  srv_log(r->srv, "upload %s: %zu bytes by token '%s'", id, r->body_len,
          r->who.name);
  return reply_json(
      r, 201,
      json_pack("{s:s,s:I}", "id", id, "bytes", (json_int_t)r->body_len));
}

/* An anonymous file for an answer built on disk, in the data directory's
 * staging/ (dir, made if missing); answers 500 and returns -1 if it cannot. */
static int staging_file(struct req *r, char dir[PATH_MAX])
{
  struct durin_err err = { 0 };
  int fd;

  snprintf(dir, PATH_MAX, "%s/staging", srv_data_dir(r->srv));
  if (durin_mkdirs(dir, &err)) {
    reply_error(r, 500, "internal", "%s", err.msg);
    return -1;
  }
  if ((fd = durin_tmpfile(dir)) < 0)
    reply_error(r, 500, "internal", "cannot make a temporary file: %s",
                strerror(errno));
  return fd;
}

/* GET /v1/runs/{id}/workspace[?format=tar|tar.gz|tar.zst] */
static int download(struct req *r)
{
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  struct MHD_Response *resp;
  const char *f = req_arg(r, "format");
  char tmp[PATH_MAX], disp[128];
  int fmt = DURIN_ARCHIVE_TGZ, fd;
  struct stat st;

  if (f && (fmt = durin_archive_fmt_parse(f)) < 0)
    return reply_error_field(r, 400, "bad_query", "format",
                             "format is tar, tar.gz or tar.zst");
  if (req_run(r, r->param[0], &ri))
    return 0;
  if ((fd = staging_file(r, tmp)) < 0) {
    durin_run_info_clear(&ri);
    return 0;
  }
  if (durin_archive_pack(ri.workspace, fmt, fd, &err) || fstat(fd, &st)) {
    close(fd);
    durin_run_info_clear(&ri);
    return reply_error(r, 500, "internal", "cannot pack the workspace: %s",
                       err.msg);
  }
  resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
  MHD_add_response_header(resp, "Content-Type",
                          fmt == DURIN_ARCHIVE_TAR  ? "application/x-tar" :
                          fmt == DURIN_ARCHIVE_TZST ? "application/zstd" :
                                                      "application/gzip");
  snprintf(disp, sizeof(disp), "attachment; filename=\"%s.%s\"", ri.id,
           fmt == DURIN_ARCHIVE_TAR  ? "tar" :
           fmt == DURIN_ARCHIVE_TZST ? "tar.zst" :
                                       "tar.gz");
  MHD_add_response_header(resp, "Content-Disposition", disp);
  durin_run_info_clear(&ri);
  return reply_response(r, 200, resp);
}

/* GET /v1/runs/{id}/bundle: the run's postmortem bundle (cli/bundle.c),
 * the same bytes as `durin bundle` writes. */
static int bundle(struct req *r)
{
  struct cli_bundle_opts o;
  struct durin_run_info ri;
  struct durin_err err = { 0 }, derr = { 0 };
  struct MHD_Response *resp;
  char tmp[PATH_MAX], disp[128], *diff = NULL;
  struct stat st;
  int fd, rc;

  if (req_run(r, r->param[0], &ri))
    return 0;
  if ((fd = staging_file(r, tmp)) < 0) {
    durin_run_info_clear(&ri);
    return 0;
  }
  memset(&o, 0, sizeof(o));
  o.tmp_dir = tmp;
  /* Too large or missing, the diff is left out and errors.txt says so. */
  if (srv_run_diff(r, ri.id, 0, &diff, &o.diff_len, &derr))
    o.diff_error = derr.msg;
  o.diff = diff;
  rc = cli_bundle_write(r->store, &ri, &o, fd, &err);
  free(diff);
  if (rc || fstat(fd, &st)) {
    close(fd);
    srv_log(r->srv, "bundle of run %s: %s", ri.id, err.msg);
    durin_run_info_clear(&ri);
    return reply_error(r, 500, "internal", "cannot make the bundle: %s",
                       err.msg);
  }
  resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
  MHD_add_response_header(resp, "Content-Type", "application/zstd");
  snprintf(disp, sizeof(disp),
           "attachment; filename=\"durin-bundle-%s.tar.zst\"", ri.id);
  MHD_add_response_header(resp, "Content-Disposition", disp);
  durin_run_info_clear(&ri);
  return reply_response(r, 200, resp);
}

const struct route srv_workspace_routes[] = {
  { "POST", "/v1/workspaces", ROLE_OPERATOR, upload },
  { "GET", "/v1/runs/{}/workspace", ROLE_VIEWER, download },
  { "GET", "/v1/runs/{}/bundle", ROLE_VIEWER, bundle },
  { NULL, NULL, ROLE_NONE, NULL },
};
