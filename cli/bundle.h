/*
 * A run's postmortem bundle (bundle.c), shared by `durin bundle` and
 * GET /v1/runs/{id}/bundle so that both give the same bytes.
 */
#ifndef DURIN_CLI_BUNDLE_H
#define DURIN_CLI_BUNDLE_H

#include <stddef.h>

#include "cli/cmd.h"

struct cli_bundle_opts {
  /* The workspace diff, as `durin diff` prints it (diff_len bytes), made
   * by the caller: the CLI with cli_diff_write, the server with
   * srv_run_diff (which knows its mount namespace is shared). NULL with
   * diff_error: it could not be made, and errors.txt says why. */
  const char *diff;
  size_t diff_len;
  const char *diff_error;
  /* Where the workspace is packed first (NULL: $TMPDIR, else /tmp). */
  const char *tmp_dir;
};

/*
 * Writes the bundle of run ri (read from st) to fd as a tar.zst; see
 * bundle.c's opening comment for its files. A part that cannot be made
 * (no checkpoint yet, no workspace) is named in errors.txt inside the
 * bundle, not an error. Returns 0, or DURIN_EIO when the log cannot be
 * read or fd cannot be written (err says which), or DURIN_ENOMEM. fd
 * stays open and is the caller's; on failure what it holds is partial.
 * Safe from any thread, with st used by this one only.
 */
int cli_bundle_write(struct durin_store *st, const struct durin_run_info *ri,
                     const struct cli_bundle_opts *o, int fd,
                     struct durin_err *err);

#endif
