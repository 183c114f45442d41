/*
 * durin diff ID: what the run changed in its workspace. The comparison
 * itself is durin_tree_diff (lib/util/treediff.c); this file finds the
 * two trees, and mounts the views of a run on a template.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "cmd.h"
#include "durin/sandbox.h"
#include "durin/util.h"

static const char diff_usage[] =
    "usage: durin diff [--stat] ID\n\n"
    "Shows the run's workspace against the copy taken when it started:\n"
    "a unified diff per changed text file, with git's headers, and one\n"
    "line per binary file (\"new file build/app (binary, 16384 bytes)\").\n"
    "The workspace's own .git is left out ('durin log' is its history).\n\n"
    "  --stat   a diffstat instead: one line per changed file with its\n"
    "           added and removed lines, then the totals\n";

/*
 * A run on a template: its workspace is the template under its own files,
 * and its start the template under base/. Both views are mounted here,
 * read-only, in this process's own mount namespace, so the diff shows
 * only what the agent changed. Without CLI_DIFF_NO_MOUNTS only: in a
 * process whose namespace others share (durin serve's worker mounts that
 * workspace for its tool calls), the views would stack on theirs.
 */
static int template_views(const struct durin_run_info *ri, const char *base,
                          unsigned flags, struct durin_err *err)
{
  struct durin_spec spec;
  struct durin_err perr = { 0 };
  char opts[3 * PATH_MAX];
  int r = 0;

  if (!ri->spec_json || durin_spec_parse(ri->spec_json, NULL, &spec, &perr))
    return 0; /* nothing to read it from: diff what is there */
  if (spec.sandbox.template && (flags & CLI_DIFF_NO_MOUNTS)) {
    r = durin_err_set(err, DURIN_EACCES,
                      "run '%s' is on a template: its diff mounts views, "
                      "which needs a mount namespace of its own",
                      ri->id);
  } else if (spec.sandbox.template) {
    snprintf(opts, sizeof(opts), "lowerdir=%s:%s,userxattr", base,
             spec.sandbox.template);
    /* cli_private_mounts says why it failed itself. */
    if (cli_private_mounts())
      r = DURIN_EIO;
    else if (durin_workspace_mount(ri->workspace, spec.sandbox.template, 0,
                                   NULL, &perr) ||
             mount("overlay", base, "overlay", MS_RDONLY, opts))
      r = durin_err_set(err, DURIN_EIO, "%s",
                        perr.msg[0] ? perr.msg :
                                      "cannot mount the run's start");
  }
  durin_spec_clear(&spec);
  return r;
}

int cli_diff_write(struct durin_store *st, const char *id, unsigned flags,
                   FILE *out, struct durin_err *err)
{
  struct durin_run_info ri;
  char base[PATH_MAX + 8], *slash;
  int r;

  if ((r = durin_store_run_get(st, id, &ri, err)))
    return r;
  snprintf(base, sizeof(base), "%s", ri.workspace);
  slash = strrchr(base, '/');
  if (slash)
    snprintf(slash, sizeof(base) - (size_t)(slash - base), "/base");
  if (access(base, F_OK) != 0 || access(ri.workspace, F_OK) != 0) {
    r = durin_err_set(err, DURIN_ENOTFOUND,
                      "run '%s' has no workspace snapshot at '%s'", id, base);
    durin_run_info_clear(&ri);
    return r;
  }
  r = template_views(&ri, base, flags, err);
  if (!r)
    r = durin_tree_diff(base, ri.workspace, !!(flags & CLI_DIFF_STAT), out,
                        err);
  durin_run_info_clear(&ri);
  return r;
}

int cli_print_diff(struct cli *cli, const char *id, int stat, FILE *out)
{
  struct durin_err err = { 0 };
  int r = cli_diff_write(cli->store, id, stat ? CLI_DIFF_STAT : 0, out, &err);

  if (r && err.msg[0])
    cli_error("%s", err.msg);
  return cli_exit_for(r);
}

int cmd_diff(int argc, char **argv, struct cli *cli)
{
  char id[32];
  int stat = 0, r;

  if ((r = cli_run_arg(argc, argv, cli, "diff", diff_usage, "--stat", &stat,
                       id)) >= 0)
    return r;
  return cli_print_diff(cli, id, stat, stdout);
}
