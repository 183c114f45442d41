/*
 * Workspaces for remote callers (server/workspaces.c): uploaded archives
 * (POST /v1/workspaces), a directory under the server's workspace root
 * (admins), an agent's template; and a run's workspace back as an archive
 * (GET /v1/runs/{id}/workspace), or inside its postmortem bundle
 * (GET /v1/runs/{id}/bundle, made by cli/bundle.c).
 */
#ifndef DURIN_SERVER_WORKSPACES_H
#define DURIN_SERVER_WORKSPACES_H

#include <stddef.h>

#include <jansson.h>

#include "server/server.h"

/*
 * The directory a new run's workspace is copied from, per the create
 * request's "workspace" field ws (NULL: agent_dir, an agent's template,
 * if given; else an empty one). On refusal answers the request and
 * returns -1.
 */
int srv_workspace_for_run(struct req *r, json_t *ws, const char *agent_dir,
                          char *dir, size_t len);
/*
 * The real path of path (relative: to the root) into dir, if it is a
 * directory under the server's --workspace-root; else answers 422 naming
 * field and returns -1.
 */
int srv_workspace_under_root(struct req *r, const char *path, const char *field,
                             char *dir, size_t len);
/* After the run was made (or not): removes what srv_workspace_for_run
 * staged in dir (an upload is used once); "" does nothing. */
void srv_workspace_done(const char *dir);

extern const struct route srv_workspace_routes[];

#endif
