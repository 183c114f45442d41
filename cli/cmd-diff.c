/* durin diff ID: what the run changed in its workspace. */
#include <limits.h>
#include <stdio.h>
#include <sys/mount.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd.h"
#include "durin/sandbox.h"

static const char diff_usage[] =
    "usage: durin diff [--stat] ID\n\n"
    "Shows the run's workspace against the copy taken when it started, as\n"
    "a unified diff (diff -ruN).\n";

/*
 * A run on a template: its workspace is the template under its own files,
 * and its start the template under base/. Both views are mounted here,
 * read-only, in this process's own mount namespace, so the diff shows
 * only what the agent changed.
 */
static int template_views(const struct durin_run_info *ri, const char *base)
{
  struct durin_spec spec;
  struct durin_err err = { 0 };
  char opts[3 * PATH_MAX];
  int r = 0;

  if (!ri->spec_json || durin_spec_parse(ri->spec_json, NULL, &spec, &err))
    return 0; /* nothing to read it from: diff what is there */
  if (spec.sandbox.template) {
    snprintf(opts, sizeof(opts), "lowerdir=%s:%s,userxattr", base,
             spec.sandbox.template);
    if ((r = cli_private_mounts()) == 0 &&
        (durin_workspace_mount(ri->workspace, spec.sandbox.template, 0, NULL,
                               &err) ||
         mount("overlay", base, "overlay", MS_RDONLY, opts))) {
      cli_error("%s", err.msg[0] ? err.msg : "cannot mount the run's start");
      r = EXIT_STORE;
    }
  }
  durin_spec_clear(&spec);
  return r;
}

int cli_print_diff(struct cli *cli, const char *id, int stat)
{
  struct durin_run_info ri;
  struct durin_err err = { 0 };
  char base[PATH_MAX + 8], *slash;
  int r, status;
  pid_t pid;

  if ((r = durin_store_run_get(cli->store, id, &ri, &err))) {
    cli_error("%s", err.msg);
    return cli_exit_for(r);
  }
  snprintf(base, sizeof(base), "%s", ri.workspace);
  slash = strrchr(base, '/');
  if (slash)
    snprintf(slash, sizeof(base) - (size_t)(slash - base), "/base");
  if (access(base, F_OK) != 0 || access(ri.workspace, F_OK) != 0) {
    cli_error("run '%s' has no workspace snapshot at '%s'", id, base);
    durin_run_info_clear(&ri);
    return EXIT_NOT_FOUND;
  }
  if ((r = template_views(&ri, base))) {
    durin_run_info_clear(&ri);
    return r;
  }
  fflush(stdout);
  pid = fork();
  if (pid == 0) {
    /* Run in the run's directory so paths read a/… and b/… cleanly. */
    if (chdir(base) == 0 && chdir("..") == 0) {
      if (stat)
        execlp("diff", "diff", "-rq", "-N", "base", "workspace", (char *)NULL);
      else
        execlp("diff", "diff", "-ruN", "base", "workspace", (char *)NULL);
    }
    _exit(127);
  }
  durin_run_info_clear(&ri);
  if (pid < 0 || waitpid(pid, &status, 0) < 0) {
    cli_error("cannot run diff");
    return EXIT_STORE;
  }
  /* diff exits 1 when there are differences: that is success here. */
  if (WIFEXITED(status) && WEXITSTATUS(status) <= 1)
    return EXIT_OK;
  cli_error("diff failed (is diffutils installed?)");
  return EXIT_STORE;
}

int cmd_diff(int argc, char **argv, struct cli *cli)
{
  char id[32];
  const char *arg = NULL;
  int stat = 0, i, r;

  if (cli_wants_help(argc, argv)) {
    fputs(diff_usage, stdout);
    return EXIT_OK;
  }
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--stat"))
      stat = 1;
    else if (argv[i][0] != '-' && !arg)
      arg = argv[i];
    else {
      cli_error("diff: unknown argument '%s'", argv[i]);
      return EXIT_USAGE;
    }
  }
  if (!arg) {
    fputs(diff_usage, stderr);
    return EXIT_USAGE;
  }
  if ((r = cli_resolve(cli, arg, id)))
    return r;
  return cli_print_diff(cli, id, stat);
}
