/*
 * durin bundle ID [-o FILE]: a run's postmortem bundle (bundle.c).
 *
 * The file is written beside its final name and renamed over it once
 * complete, so a failure never leaves half a bundle behind under the
 * name a person or a script will look for.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/bundle.h"
#include "durin/util.h"
#include "cmd.h"

static const char bundle_usage[] =
    "usage: durin bundle [-o FILE] ID\n\n"
    "Writes everything a postmortem of the run asks for into one .tar.zst\n"
    "(unpack with 'tar --zstd -xf FILE'):\n\n"
    "  session.jsonl      every event, one JSON object a line (logs --json)\n"
    "  last_state.json    the run row and its last checkpoint, decoded\n"
    "  trace.json         the run's OTLP trace (ExportTraceServiceRequest)\n"
    "  tool_calls.csv     a row per tool call: time, step, tool, arguments'\n"
    "                     sha256, latency, status, exit code, error\n"
    "  workspace.tar.zst  the run's workspace\n"
    "  workspace.diff     the workspace against its start (durin diff)\n"
    "  checks/            each acceptance check attempt's outputs\n"
    "  approvals.json     the run's approvals and their decisions\n"
    "  env.txt            durin's version and commit, the model, the spec's\n"
    "                     sha256, the workers that held the run, the store's\n"
    "                     kind (never its URL)\n"
    "  errors.txt         only when a part could not be made: why\n\n"
    "  -o FILE   where to write it (default durin-bundle-ID.tar.zst here);\n"
    "            '-' writes to stdout\n";

/* The workspace diff as `durin diff` makes it; NULL with *why on failure
 * (cli_private_mounts may have said it on stderr already). */
static char *make_diff(struct cli *cli, const char *id, size_t *len,
                       struct durin_err *why)
{
  char *text = NULL;
  FILE *f = open_memstream(&text, len);
  int r;

  if (!f) {
    durin_err_set(why, DURIN_ENOMEM, "out of memory");
    return NULL;
  }
  r = cli_diff_write(cli->store, id, 0, f, why);
  fclose(f);
  if (r) {
    if (!why->msg[0])
      durin_err_set(why, r, "cannot make the diff");
    free(text);
    return NULL;
  }
  return text;
}

int cmd_bundle(int argc, char **argv, struct cli *cli)
{
  struct cli_bundle_opts o;
  struct durin_run_info ri;
  struct durin_err err = { 0 }, derr = { 0 };
  const char *arg = NULL, *out = NULL;
  char id[32], name[PATH_MAX], tmp[PATH_MAX + 16], *diff;
  int i, r, fd, to_stdout;

  if (cli_wants_help(argc, argv)) {
    fputs(bundle_usage, stdout);
    return EXIT_OK;
  }
  for (i = 1; i < argc; i++) {
    if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) &&
        i + 1 < argc)
      out = argv[++i];
    else if (!strncmp(argv[i], "--output=", 9))
      out = argv[i] + 9;
    else if (argv[i][0] != '-' && !arg)
      arg = argv[i];
    else
      return cli_bad_arg("bundle", argv[i], bundle_usage);
  }
  if (!arg) {
    fputs(bundle_usage, stderr);
    return EXIT_USAGE;
  }
  if ((r = cli_resolve(cli, arg, id)))
    return r;
  if (!out) {
    snprintf(name, sizeof(name), "durin-bundle-%s.tar.zst", id);
    out = name;
  }
  to_stdout = !strcmp(out, "-");
  if ((r = durin_store_run_get(cli->store, id, &ri, &err))) {
    cli_error("%s", err.msg);
    return cli_exit_for(r);
  }
  if (to_stdout) {
    fd = 1;
  } else {
    if ((fd = durin_tmpfile_beside(out, tmp, sizeof(tmp))) < 0 &&
        errno == ENAMETOOLONG) {
      durin_run_info_clear(&ri);
      cli_error("bundle: the path '%s' is too long", out);
      return EXIT_USAGE;
    }
    if (fd < 0) {
      cli_error("cannot write '%s': %s", out, strerror(errno));
      durin_run_info_clear(&ri);
      return EXIT_STORE;
    }
  }
  memset(&o, 0, sizeof(o));
  diff = make_diff(cli, id, &o.diff_len, &derr);
  o.diff = diff;
  o.diff_error = derr.msg;
  r = cli_bundle_write(cli->store, &ri, &o, fd, &err);
  free(diff);
  if (!to_stdout) {
    /* A bundle is as readable as the files it holds: 0644 less umask. */
    mode_t um = umask(0);

    umask(um);
    if (!r && (fchmod(fd, 0666 & ~um) || fsync(fd)))
      r = durin_err_set(&err, DURIN_EIO, "cannot write '%s': %s", out,
                        strerror(errno));
    if (close(fd) && !r)
      r = durin_err_set(&err, DURIN_EIO, "cannot write '%s': %s", out,
                        strerror(errno));
    if (!r && rename(tmp, out))
      r = durin_err_set(&err, DURIN_EIO, "cannot write '%s': %s", out,
                        strerror(errno));
    if (r)
      unlink(tmp);
  }
  if (r) {
    cli_error("bundle of run '%s': %s", id, err.msg);
    durin_run_info_clear(&ri);
    return r == DURIN_EIO ? EXIT_STORE : cli_exit_for(r);
  }
  if (!to_stdout)
    fprintf(stderr, "wrote %s\n", out);
  durin_run_info_clear(&ri);
  return EXIT_OK;
}
