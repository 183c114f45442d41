/*
 * Workspaces started from a template, shared copy-on-write (overlayfs).
 *
 * A run whose spec has "sandbox": {"template": T} keeps, beside the store,
 *
 *   runs/ID/layers/upper  its own files: the spec's workspace, then changes
 *   runs/ID/layers/work   overlayfs's work directory
 *   runs/ID/workspace     where the merged view is mounted
 *   runs/ID/base          the spec's workspace as it was (durin diff)
 *
 * so N runs share one copy of T (a dependency install, say) and each
 * stores only what it changes. The view is mounted in two places, never
 * at once for one run: inside the sandbox, by the helper, for a command
 * (over idmapped layers; see libexec/durin-sandbox.c), and here, in the
 * driving process's own mount namespace, around a host-side file tool or
 * a diff. Both use user.* xattrs ("userxattr"), so they read each other's
 * whiteouts and opaque directories.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>

#include "durin/sandbox.h"
#include "durin/util.h"

void durin_workspace_layers(const char *ws, char *out, size_t len)
{
  const char *slash = strrchr(ws, '/');
  int n = slash ? (int)(slash - ws) : 0;

  snprintf(out, len, "%.*s/layers", n, slash ? ws : "");
}

int durin_workspace_mount(const char *ws, const char *template, int writable,
                          const char *at, struct durin_err *err)
{
  char layers[PATH_MAX], opts[3 * PATH_MAX + 64];

  if (strchr(template, ',') || strchr(template, ':'))
    return durin_err_set(err, DURIN_EINVAL,
                         "template '%s': a path with ',' or ':' cannot be an "
                         "overlayfs layer",
                         template);
  durin_workspace_layers(ws, layers, sizeof(layers));
  if (writable)
    snprintf(opts, sizeof(opts),
             "lowerdir=%s,upperdir=%s/upper,workdir=%s/work,userxattr",
             template, layers, layers);
  else
    snprintf(opts, sizeof(opts), "lowerdir=%s/upper:%s,userxattr", layers,
             template);
  if (mount("overlay", at ? at : ws, "overlay",
            MS_NOSUID | MS_NODEV | (writable ? 0 : MS_RDONLY), opts))
    return durin_err_set(err, DURIN_EIO,
                         "mounting the workspace over its template %s: %s "
                         "(template workspaces need durin to run as root)",
                         template, strerror(errno));
  return 0;
}

void durin_workspace_unmount(const char *ws)
{
  umount2(ws, MNT_DETACH);
}
