/*
 * The boot files: what a fresh session of the agent is given at every
 * start and resume, so it knows what came before without its old
 * conversation. The spec's progress files (git.progress_files, default
 * PROGRESS.md and feature-list.json), when the workspace has them, each
 * cut at DURIN_BOOT_FILE_MAX, and `git log --oneline -N` of the run's
 * branch. Files are opened beneath the workspace (openat2
 * RESOLVE_BENEATH): a link the agent left cannot make the worker read a
 * file outside it.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "durin/tools.h"
#include "worker/git.h"

/* Reads at most cap bytes of path beneath dirfd into b; *cut when there
 * was more. 0, or -1 when it is not there or not a regular file. */
static int read_capped(int dirfd, const char *path, size_t cap,
                       struct durin_buf *b, int *cut)
{
  struct durin_err err = { 0 };
  struct stat st;
  char buf[4096];
  int fd = durin_path_open(dirfd, path, O_RDONLY | O_NONBLOCK, 0, &err);
  ssize_t n;

  *cut = 0;
  if (fd < 0)
    return -1;
  if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
    close(fd);
    return -1;
  }
  while (b->len < cap &&
         (n = read(fd, buf,
                   cap - b->len < sizeof(buf) ? cap - b->len : sizeof(buf))) >
             0)
    durin_buf_add(b, buf, (size_t)n);
  *cut = (size_t)st.st_size > b->len;
  close(fd);
  /* Not cut inside a UTF-8 sequence. */
  while (*cut && b->len && ((unsigned char)b->buf[b->len - 1] & 0xc0) == 0x80)
    b->len--;
  if (*cut && b->len && ((unsigned char)b->buf[b->len - 1] & 0xc0) == 0xc0)
    b->len--;
  b->buf[b->len] = '\0';
  return 0;
}

void durin__boot_load(const struct durin_spec *spec, struct wgit *w,
                      struct durin_harness *h)
{
  struct durin_buf text, file, log;
  struct durin_err err = { 0 };
  json_t *names = json_array(), *ev, *gl = NULL;
  int dirfd = -1, i, cut;

  durin_buf_init(&text, 0);
  durin_buf_init(&log, 64 * 1024);
  /* A template run's files are an overlay view mounted for its commands
   * only: there is no directory to read them from here. */
  if (!spec->sandbox.template)
    dirfd = open(spec->workspace, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  for (i = 0; dirfd >= 0 && i < spec->git.nprogress; i++) {
    const char *p = spec->git.progress_files[i];
    json_t *s;

    durin_buf_init(&file, DURIN_BOOT_FILE_MAX + 1);
    if (read_capped(dirfd, p, DURIN_BOOT_FILE_MAX, &file, &cut) ||
        !(s = json_stringn(file.buf, file.len))) {
      /* Absent, not a file, or not UTF-8 text: not given. */
      durin_buf_release(&file);
      continue;
    }
    json_decref(s);
    if (!text.len)
      durin_buf_adds(&text, "Notes this workspace keeps across sessions "
                            "(read them first; keep them current as you "
                            "work):\n");
    durin_buf_addf(&text, "\n=== %s ===\n%s%s\n", p, file.buf,
                   cut ? "\n[... cut at 8 KiB]" : "");
    json_array_append_new(names, json_string(p));
    durin_buf_release(&file);
  }
  if (dirfd >= 0)
    close(dirfd);
  if (w && spec->git.log_lines > 0 &&
      !durin_git_log_oneline(w->g, w->branch, (int)spec->git.log_lines, &log,
                             &err) &&
      log.len && (gl = json_stringn(log.buf, log.len))) {
    durin_buf_addf(&text,
                   "%sRecent commits of this run's workspace (git log "
                   "--oneline -%lld %s):\n%s",
                   text.len ? "\n" : "", (long long)spec->git.log_lines,
                   w->branch, log.buf);
  }
  if (text.len) {
    ev = json_pack("{s:o,s:o}", "files", names, "git_log",
                   gl ? gl : json_null());
    durin_harness_set_boot(h, text.buf, ev);
  } else {
    json_decref(names);
    json_decref(gl);
  }
  durin_buf_release(&text);
  durin_buf_release(&log);
}
