/*
 * The review's inputs and output with I/O: the run from the store, its
 * diff from its git checkpoints, and the two files in its directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "durin/git.h"
#include "durin/review.h"

static int feed_event(const struct durin_event *ev, void *arg)
{
  durin_review_add_event(arg, ev);
  return 0;
}

static int feed_approval(const struct durin_approval *a, void *arg)
{
  durin_review_add_approval(arg, a);
  return 0;
}

int durin_review_load(struct durin_store *s, const char *id,
                      struct durin_review **out, struct durin_err *err)
{
  struct durin_run_info ri;
  struct durin_review *rv = NULL;
  int r;

  if ((r = durin_store_run_get(s, id, &ri, err)))
    return r;
  if (!(rv = durin_review_new(&ri))) {
    r = durin_err_set(err, DURIN_EIO, "out of memory");
    goto out;
  }
  /* The log is read in pages by the store; each event is folded and
   * let go. */
  if ((r = durin_store_events_read(s, id, 1, 0, feed_event, rv, err)) ||
      (r = durin_store_approval_list(s, id, -1, 0, feed_approval, rv, err)))
    goto out;
  *out = rv;
  rv = NULL;
out:
  durin_review_free(rv);
  durin_run_info_clear(&ri);
  return r;
}

int durin_review_git_diff(struct durin_review *rv, const char *workspace,
                          struct durin_err *err)
{
  struct durin_git_diffstat st = { 0 };
  struct durin_git *g = NULL;
  struct durin_buf patch, stat;
  const char *from = NULL, *to = NULL;
  int r, cut = 0;

  if (!durin_review_git_range(rv, &from, &to))
    return 0;
  durin_buf_init(&patch, DURIN_REVIEW_DIFF_MAX + 1);
  durin_buf_init(&stat, 4096);
  if ((r = durin_git_open(workspace, 0, NULL, &g, err)))
    goto out;
  r = durin_git_diff(g, from, to, &st, &patch, err);
  if (r == DURIN_ETOOBIG) {
    /* The stat is whole; the patch is what fitted. */
    cut = 1;
    r = 0;
  }
  if (r)
    goto out;
  durin_buf_addf(&stat,
                 " %zu file%s changed, %zu insertion%s(+), %zu "
                 "deletion%s(-)\n",
                 st.files, st.files == 1 ? "" : "s", st.insertions,
                 st.insertions == 1 ? "" : "s", st.deletions,
                 st.deletions == 1 ? "" : "s");
  durin_review_set_diff(rv, "git", from, to, stat.buf, patch.buf, cut);
  r = 1;
out:
  if (r < 0) {
    char note[600];

    snprintf(note, sizeof(note), "cannot diff the run's git checkpoints: %s",
             err->msg);
    durin_review_set_diff_note(rv, note);
  }
  durin_git_close(g);
  durin_buf_release(&patch);
  durin_buf_release(&stat);
  return r;
}

/* A stream into a buffer that keeps what fits and drops the rest. */
struct capped {
  struct durin_buf b;
  int cut;
};

static ssize_t capped_write(void *cookie, const char *data, size_t len)
{
  struct capped *c = cookie;

  if (!c->cut && durin_buf_add(&c->b, data, len))
    c->cut = 1;
  return (ssize_t)len;
}

static int diff_into(durin_review_diff_fn fn, void *arg, int stat,
                     struct capped *c, struct durin_err *err)
{
  cookie_io_functions_t io = { NULL, capped_write, NULL, NULL };
  FILE *f = fopencookie(c, "w", io);
  int r;

  if (!f)
    return durin_err_set(err, DURIN_EIO, "out of memory");
  setvbuf(f, NULL, _IOFBF, 65536);
  r = fn(arg, stat, f, err);
  fclose(f);
  return r;
}

int durin_review_workspace_diff(struct durin_review *rv,
                                durin_review_diff_fn fn, void *arg,
                                struct durin_err *err)
{
  struct capped stat = { { 0 } }, patch = { { 0 } };
  int r;

  durin_buf_init(&stat.b, 1 << 20);
  durin_buf_init(&patch.b, DURIN_REVIEW_DIFF_MAX);
  if (!(r = diff_into(fn, arg, 1, &stat, err)) &&
      !(r = diff_into(fn, arg, 0, &patch, err))) {
    durin_review_set_diff(rv, "workspace", NULL, NULL, stat.b.buf, patch.b.buf,
                          patch.cut);
  } else {
    char note[600];

    snprintf(note, sizeof(note), "cannot diff the workspace: %s", err->msg);
    durin_review_set_diff_note(rv, note);
  }
  durin_buf_release(&stat.b);
  durin_buf_release(&patch.b);
  return r;
}

char *durin_review_json_text(const json_t *review)
{
  char *js = json_dumps(review, JSON_INDENT(2) | JSON_SORT_KEYS |
                                    JSON_REAL_PRECISION(12)),
       *out = NULL;

  if (js && asprintf(&out, "%s\n", js) < 0)
    out = NULL;
  free(js);
  return out;
}

/* Writes data to dir/name through a temp file beside it. */
static int put_file(const char *dir, const char *name, const char *data,
                    size_t len, struct durin_err *err)
{
  char path[PATH_MAX], tmp[PATH_MAX + 32];
  size_t off = 0;
  int fd, r = 0;

  if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
    return durin_err_set(err, DURIN_EINVAL, "path '%s/%s' is too long", dir,
                         name);
  if ((fd = durin_tmpfile_beside(path, tmp, sizeof(tmp))) < 0)
    return durin_err_set(err, DURIN_EIO, "cannot write '%s': %s", path,
                         strerror(errno));
  while (off < len && !r) {
    ssize_t n = write(fd, data + off, len - off);

    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      r = DURIN_EIO;
    else
      off += (size_t)n;
  }
  /* Readable by whoever reads the run's directory: nothing in it is
   * secret (the log it comes from is scrubbed). */
  if (!r && (fchmod(fd, 0644) || fsync(fd)))
    r = DURIN_EIO;
  if (close(fd) && !r)
    r = DURIN_EIO;
  if (!r && rename(tmp, path))
    r = DURIN_EIO;
  if (r) {
    r = durin_err_set(err, DURIN_EIO, "cannot write '%s': %s", path,
                      strerror(errno));
    unlink(tmp);
  }
  return r;
}

int durin_review_write(const json_t *review, const char *dir,
                       struct durin_err *err)
{
  struct durin_buf md;
  char *js = durin_review_json_text(review);
  int r;

  durin_buf_init(&md, (size_t)64 << 20);
  if (!js || durin_review_markdown(review, &md)) {
    r = durin_err_set(err, DURIN_EIO, "cannot render the review");
    goto out;
  }
  if (!(r = put_file(dir, "review.json", js, strlen(js), err)))
    r = put_file(dir, "REVIEW.md", md.buf, md.len, err);
out:
  free(js);
  durin_buf_release(&md);
  return r;
}
