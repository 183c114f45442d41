/*
 * Workspace archives (server/archive.c): every way a tar can reach out of
 * the workspace is refused, with nothing left behind inside or outside it;
 * a packed tree unpacks to the same files, links and modes.
 *
 * The hostile archives are built here with libarchive's writer, which
 * writes any path it is given. Their "outside" targets are a directory of
 * the test's own, never /etc: the suite runs as root, and a guard that
 * broke would otherwise write to the real system.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "server/archive.h"
#include "test.h"

#define SECRET "secret\n"

/* base/ws is where archives unpack; base/outside holds the one file an
 * escape would reach. Nothing else may ever appear in base. */
struct fx {
  char *base;
  char ws[4200];
  char outside[4200];
};

static void write_file(const char *path, const char *data, mode_t mode)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
  close(fd);
  assert_int_equal(chmod(path, mode), 0);
}

static int fx_setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));
  char p[4300];

  f->base = test_tmpdir();
  snprintf(f->ws, sizeof(f->ws), "%s/ws", f->base);
  snprintf(f->outside, sizeof(f->outside), "%s/outside", f->base);
  assert_int_equal(mkdir(f->ws, 0755), 0);
  assert_int_equal(mkdir(f->outside, 0755), 0);
  snprintf(p, sizeof(p), "%s/secret", f->outside);
  write_file(p, SECRET, 0644);
  *state = f;
  return 0;
}

static int fx_teardown(void **state)
{
  struct fx *f = *state;

  test_rmrf(f->base);
  free(f->base);
  free(f);
  return 0;
}

static int count_entries(const char *dir)
{
  DIR *d = opendir(dir);
  struct dirent *de;
  int n = 0;

  assert_non_null(d);
  while ((de = readdir(d))) {
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
      n++;
  }
  closedir(d);
  return n;
}

/* Nothing outside ws changed: base holds ws and outside, outside holds
 * the secret as it was, with no second name for it. */
static void assert_untouched(struct fx *f)
{
  char p[4300], *text = NULL;
  struct stat st;
  size_t len;

  assert_int_equal(count_entries(f->base), 2);
  assert_int_equal(count_entries(f->outside), 1);
  snprintf(p, sizeof(p), "%s/secret", f->outside);
  assert_int_equal(lstat(p, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_nlink, 1);
  assert_int_equal(durin_file_read(p, 1024, &text, &len, NULL), 0);
  assert_string_equal(text, SECRET);
  free(text);
}

/* ---- archives built in memory ---- */

struct tar {
  struct archive *a;
  char *buf;
  size_t cap, used;
};

static void tar_begin(struct tar *t, enum durin_archive_fmt fmt)
{
  t->cap = 4 << 20;
  t->buf = malloc(t->cap);
  t->a = archive_write_new();
  assert_non_null(t->buf);
  assert_int_equal(archive_write_set_format_pax_restricted(t->a), ARCHIVE_OK);
  if (fmt == DURIN_ARCHIVE_TGZ)
    assert_int_equal(archive_write_add_filter_gzip(t->a), ARCHIVE_OK);
  if (fmt == DURIN_ARCHIVE_TZST)
    assert_int_equal(archive_write_add_filter_zstd(t->a), ARCHIVE_OK);
  assert_int_equal(archive_write_open_memory(t->a, t->buf, t->cap, &t->used),
                   ARCHIVE_OK);
}

struct ent {
  const char *path;
  mode_t type;
  mode_t perm;
  const char *data;
  size_t len; /* of data, or a size to write in zeros if data is NULL */
  const char *symlink;
  const char *hardlink;
  dev_t rdev;
};

static void tar_add(struct tar *t, struct ent x)
{
  struct archive_entry *e = archive_entry_new();
  static const char zeros[65536];

  archive_entry_copy_pathname(e, x.path);
  archive_entry_set_filetype(e, x.type ? x.type : AE_IFREG);
  archive_entry_set_perm(e, x.perm ? x.perm : 0644);
  archive_entry_set_size(e, (int64_t)x.len);
  if (x.symlink)
    archive_entry_copy_symlink(e, x.symlink);
  if (x.hardlink)
    archive_entry_copy_hardlink(e, x.hardlink);
  if (x.rdev)
    archive_entry_set_rdev(e, x.rdev);
  assert_int_equal(archive_write_header(t->a, e), ARCHIVE_OK);
  while (x.len > 0) {
    size_t n = x.len < sizeof(zeros) ? x.len : sizeof(zeros);

    assert_int_equal(archive_write_data(t->a, x.data ? x.data : zeros, n),
                     (la_ssize_t)n);
    x.len -= n;
    if (x.data)
      x.data += n;
  }
  archive_entry_free(e);
}

static void add_file(struct tar *t, const char *path, const char *data)
{
  tar_add(t, (struct ent){ .path = path, .data = data, .len = strlen(data) });
}

static void add_symlink(struct tar *t, const char *path, const char *target)
{
  tar_add(t, (struct ent){ .path = path, .type = AE_IFLNK, .symlink = target });
}

static void add_hardlink(struct tar *t, const char *path, const char *target)
{
  tar_add(t, (struct ent){ .path = path, .hardlink = target });
}

static void tar_end(struct tar *t)
{
  assert_int_equal(archive_write_close(t->a), ARCHIVE_OK);
  archive_write_free(t->a);
}

/* Unpacks t into f->ws and frees it. */
static int unpack(struct fx *f, struct tar *t,
                  const struct durin_archive_caps *caps, struct durin_err *err)
{
  int r;

  tar_end(t);
  r = durin_archive_unpack(t->buf, t->used, f->ws, caps, err);
  free(t->buf);
  return r;
}

/* The upload failed with code, over entry, for the rule; the workspace
 * is empty again and nothing outside it changed. */
static void assert_refused(struct fx *f, int r, int code,
                           const struct durin_err *err, const char *entry,
                           const char *rule)
{
  char want[300];

  snprintf(want, sizeof(want), "archive entry '%s': ", entry);
  if (r != code)
    fail_msg("expected %s, got %d (%s)", durin_err_name(code), r,
             r ? err->msg : "success");
  if (!strstr(err->msg, want) || !strstr(err->msg, rule))
    fail_msg("message '%s' lacks \"%s\" or \"%s\"", err->msg, want, rule);
  assert_int_equal(count_entries(f->ws), 0);
  assert_untouched(f);
}

/* ---- hostile archives ---- */

static void test_dotdot_escape(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct tar t;
  int r;

  tar_begin(&t, DURIN_ARCHIVE_TAR);
  add_file(&t, "../escape", "out\n");
  r = unpack(f, &t, NULL, &err);
  assert_refused(f, r, DURIN_EINVAL, &err, "../escape", "'..' component");
}

static void test_absolute_path(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  char abs[4300];
  struct tar t;
  int r;

  snprintf(abs, sizeof(abs), "%s/abs", f->outside);
  tar_begin(&t, DURIN_ARCHIVE_TAR);
  add_file(&t, abs, "out\n");
  r = unpack(f, &t, NULL, &err);
  assert_refused(f, r, DURIN_EINVAL, &err, abs, "absolute");
}

/* A good entry first: the refusal must also take it back out. */
static void test_dotdot_inside_path(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct tar t;
  int r;

  tar_begin(&t, DURIN_ARCHIVE_TAR);
  add_file(&t, "a/ok", "fine\n");
  add_file(&t, "a/../../x", "out\n");
  r = unpack(f, &t, NULL, &err);
  assert_refused(f, r, DURIN_EINVAL, &err, "a/../../x", "'..' component");
}

/* link -> outside, then a file through it: the link itself is refused. */
static void test_symlink_absolute(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct tar t;
  int r;

  tar_begin(&t, DURIN_ARCHIVE_TAR);
  add_symlink(&t, "link", f->outside);
  add_file(&t, "link/pwned", "out\n");
  r = unpack(f, &t, NULL, &err);
  assert_refused(f, r, DURIN_EINVAL, &err, "link", "target is absolute");
}

static void test_symlink_up(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct tar t;
  int r;

  tar_begin(&t, DURIN_ARCHIVE_TAR);
  add_symlink(&t, "l", "../..");
  r = unpack(f, &t, NULL, &err);
  assert_refused(f, r, DURIN_EINVAL, &err, "l", "leads outside");
}

/* One level deeper: "sub/l" may climb one '..', not two. */
static void test_symlink_up_from_subdir(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct tar t;
  int r;

  tar_begin(&t, DURIN_ARCHIVE_TAR);
  add_symlink(&t, "sub/ok", "../x");
  add_symlink(&t, "sub/l", "../../outside/secret");
  r = unpack(f, &t, NULL, &err);
  assert_refused(f, r, DURIN_EINVAL, &err, "sub/l", "leads outside");
}

/* d -> "." is harmless, and "d/.." is the root to a lexical resolve, but
 * the kernel takes it to the root's parent. */
static void test_symlink_dotdot_after_link(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct tar t;
  int r;

  tar_begin(&t, DURIN_ARCHIVE_TAR);
  add_symlink(&t, "d", ".");
  add_symlink(&t, "e", "d/..");
  r = unpack(f, &t, NULL, &err);
  assert_refused(f, r, DURIN_EINVAL, &err, "e", "'..' after a name");
}

/* Even a link that stays inside may not be written through. */
static void test_write_through_symlink(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct tar t;
  int r;

  tar_begin(&t, DURIN_ARCHIVE_TAR);
  tar_add(&t, (struct ent){ .path = "dir", .type = AE_IFDIR, .perm = 0755 });
  add_symlink(&t, "s", "dir");
  add_file(&t, "s/x", "through\n");
  r = unpack(f, &t, NULL, &err);
  assert_refused(f, r, DURIN_EINVAL, &err, "s/x", "parent directory is a");
}

static void test_parent_is_a_file(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct tar t;
  int r;

  tar_begin(&t, DURIN_ARCHIVE_TAR);
  add_file(&t, "f", "x\n");
  add_file(&t, "f/inner", "y\n");
  r = unpack(f, &t, NULL, &err);
  assert_refused(f, r, DURIN_EINVAL, &err, "f/inner", "parent is a file");
}

/* Entries that cannot both exist fail in libarchive; its message must not
 * tell the client where the server keeps the workspace. */
static void test_conflicting_entries(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct tar t;
  int r;

  tar_begin(&t, DURIN_ARCHIVE_TAR);
  add_file(&t, "d/x", "x\n");
  add_symlink(&t, "d", "x");
  r = unpack(f, &t, NULL, &err);
  assert_refused(f, r, DURIN_EINVAL, &err, "d", "cannot unpack");
  assert_null(strstr(err.msg, f->base));
}

static void test_hardlink_absolute(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  char target[4300];
  struct tar t;
  int r;

  snprintf(target, sizeof(target), "%s/secret", f->outside);
  tar_begin(&t, DURIN_ARCHIVE_TAR);
  add_hardlink(&t, "h", target);
  r = unpack(f, &t, NULL, &err);
  assert_refused(f, r, DURIN_EINVAL, &err, "h",
                 "hard link target: the path "
                 "is absolute");
}

static void test_hardlink_dotdot(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct tar t;
  int r;

  tar_begin(&t, DURIN_ARCHIVE_TAR);
  add_hardlink(&t, "h", "../outside/secret");
  r = unpack(f, &t, NULL, &err);
  assert_refused(f, r, DURIN_EINVAL, &err, "h", "'..' component");
}

static void test_hardlink_not_yet_unpacked(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct tar t;
  int r;

  tar_begin(&t, DURIN_ARCHIVE_TAR);
  add_hardlink(&t, "h", "later");
  add_file(&t, "later", "x\n");
  r = unpack(f, &t, NULL, &err);
  assert_refused(f, r, DURIN_EINVAL, &err, "h", "not a file unpacked earlier");
}

/* A hard link to a symlink would be a second, unchecked name for it. */
static void test_hardlink_to_symlink(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct tar t;
  int r;

  tar_begin(&t, DURIN_ARCHIVE_TAR);
  add_file(&t, "f", "x\n");
  add_symlink(&t, "s", "f");
  add_hardlink(&t, "h", "s");
  r = unpack(f, &t, NULL, &err);
  assert_refused(f, r, DURIN_EINVAL, &err, "h", "not a file unpacked earlier");
}

static void test_char_device(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct tar t;
  int r;

  tar_begin(&t, DURIN_ARCHIVE_TAR);
  tar_add(&t, (struct ent){
                  .path = "null", .type = AE_IFCHR, .rdev = makedev(1, 3) });
  r = unpack(f, &t, NULL, &err);
  assert_refused(f, r, DURIN_EINVAL, &err, "null", "a character device");
}

static void test_fifo(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct tar t;
  int r;

  tar_begin(&t, DURIN_ARCHIVE_TAR);
  tar_add(&t, (struct ent){ .path = "pipe", .type = AE_IFIFO });
  r = unpack(f, &t, NULL, &err);
  assert_refused(f, r, DURIN_EINVAL, &err, "pipe", "a fifo");
}

/* The cap is on the running total: each file fits, the two do not. */
static void test_total_size_cap(void **state)
{
  struct fx *f = *state;
  struct durin_archive_caps caps = { .max_bytes = 1000 };
  struct durin_err err = { 0 };
  struct tar t;
  int r;

  tar_begin(&t, DURIN_ARCHIVE_TAR);
  tar_add(&t, (struct ent){ .path = "a", .len = 600 });
  tar_add(&t, (struct ent){ .path = "b", .len = 600 });
  r = unpack(f, &t, &caps, &err);
  assert_refused(f, r, DURIN_ETOOBIG, &err, "b", "cap of 1000 bytes");
}

/* 10 MB of zeros is a few KB of gzip: the cap is on what unpacks. */
static void test_size_cap_compressed(void **state)
{
  struct fx *f = *state;
  struct durin_archive_caps caps = { .max_bytes = 1 << 20 };
  struct durin_err err = { 0 };
  struct tar t;
  int r;

  tar_begin(&t, DURIN_ARCHIVE_TGZ);
  tar_add(&t, (struct ent){ .path = "zeros", .len = 10 << 20 });
  tar_end(&t);
  assert_true(t.used < 100000);
  r = durin_archive_unpack(t.buf, t.used, f->ws, &caps, &err);
  free(t.buf);
  assert_refused(f, r, DURIN_ETOOBIG, &err, "zeros", "cap of 1048576 bytes");
}

static void test_entries_cap(void **state)
{
  struct fx *f = *state;
  struct durin_archive_caps caps = { .max_entries = 5 };
  struct durin_err err = { 0 };
  struct tar t;
  char name[16];
  int i, r;

  tar_begin(&t, DURIN_ARCHIVE_TAR);
  for (i = 0; i < 10; i++) {
    snprintf(name, sizeof(name), "f%d", i);
    add_file(&t, name, "x");
  }
  r = unpack(f, &t, &caps, &err);
  assert_refused(f, r, DURIN_ETOOBIG, &err, "f5", "cap of 5");
}

static void test_path_cap(void **state)
{
  struct fx *f = *state;
  struct durin_archive_caps caps = { .max_path = 50 };
  struct durin_err err = { 0 };
  char name[64];
  struct tar t;
  int r;

  memset(name, 'n', 60);
  name[60] = '\0';
  tar_begin(&t, DURIN_ARCHIVE_TAR);
  add_file(&t, name, "x");
  r = unpack(f, &t, &caps, &err);
  assert_refused(f, r, DURIN_ETOOBIG, &err, name, "cap of 50 bytes");
}

static void test_not_an_archive(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  char junk[2048];
  int r;

  memset(junk, 'j', sizeof(junk));
  r = durin_archive_unpack(junk, sizeof(junk), f->ws, NULL, &err);
  assert_int_equal(r, DURIN_EINVAL);
  assert_non_null(strstr(err.msg, "cannot read the archive"));
  assert_non_null(strstr(err.msg, "tar.gz"));
  assert_untouched(f);
}

/* The target must be empty, and a refusal never removes what was there. */
static void test_target_not_empty(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  char p[4300];
  struct tar t;
  int r;

  snprintf(p, sizeof(p), "%s/mine", f->ws);
  write_file(p, "mine\n", 0644);
  tar_begin(&t, DURIN_ARCHIVE_TAR);
  add_file(&t, "x", "x\n");
  r = unpack(f, &t, NULL, &err);
  assert_int_equal(r, DURIN_EINVAL);
  assert_non_null(strstr(err.msg, "not empty"));
  assert_int_equal(access(p, F_OK), 0);
}

/* ---- what unpacks, and how ---- */

static void assert_mode(const char *dir, const char *rel, mode_t type,
                        mode_t perm)
{
  char p[4300];
  struct stat st;

  snprintf(p, sizeof(p), "%s/%s", dir, rel);
  if (lstat(p, &st))
    fail_msg("'%s' is missing", rel);
  assert_int_equal(st.st_mode & S_IFMT, type);
  if (type != S_IFLNK && (st.st_mode & 07777) != perm)
    fail_msg("'%s' has mode %o, not %o", rel, st.st_mode & 07777, perm);
  assert_int_equal(st.st_uid, getuid());
}

static void assert_file(const char *dir, const char *rel, mode_t perm,
                        const char *content)
{
  char p[4300], *text = NULL;
  size_t len;

  assert_mode(dir, rel, S_IFREG, perm);
  snprintf(p, sizeof(p), "%s/%s", dir, rel);
  assert_int_equal(durin_file_read(p, 1 << 20, &text, &len, NULL), 0);
  assert_string_equal(text, content);
  free(text);
}

static void assert_link(const char *dir, const char *rel, const char *target)
{
  char p[4300], got[4300];
  ssize_t n;

  assert_mode(dir, rel, S_IFLNK, 0);
  snprintf(p, sizeof(p), "%s/%s", dir, rel);
  n = readlink(p, got, sizeof(got) - 1);
  assert_true(n >= 0);
  got[n] = '\0';
  assert_string_equal(got, target);
}

/* Modes are kept without setuid, setgid or sticky; a directory gets u+rwx
 * so it can be removed; owners are never taken from the archive. */
static void test_modes_and_owners(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct tar t;
  int r;

  tar_begin(&t, DURIN_ARCHIVE_TAR);
  tar_add(&t,
          (struct ent){ .path = "locked", .type = AE_IFDIR, .perm = 01555 });
  tar_add(&t,
          (struct ent){
              .path = "locked/suid", .perm = 06755, .data = "x", .len = 1 });
  tar_add(&t,
          (struct ent){ .path = "ro", .perm = 0444, .data = "r", .len = 1 });
  r = unpack(f, &t, NULL, &err);
  if (r)
    fail_msg("%s", err.msg);
  assert_mode(f->ws, "locked", S_IFDIR, 0755);
  assert_file(f->ws, "locked/suid", 0755, "x");
  assert_file(f->ws, "ro", 0444, "r");
}

/* What `tar -C dir .` writes: a "./" entry for the root, "./" before each
 * name. Links that stay inside, hard links to earlier files. */
static void test_accepts_usual_tars(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  char p[4300], q[4300];
  struct stat a, b;
  struct tar t;
  int r;

  tar_begin(&t, DURIN_ARCHIVE_TAR);
  tar_add(&t, (struct ent){ .path = "./", .type = AE_IFDIR, .perm = 0700 });
  add_file(&t, "./x.txt", "x\n");
  add_file(&t, "./a/b/c", "c\n");
  add_symlink(&t, "./a/b/up", "../../x.txt");
  add_symlink(&t, "./a/here", ".");
  add_symlink(&t, "./dangling", "no/such/file");
  add_hardlink(&t, "./a/again", "./x.txt");
  r = unpack(f, &t, NULL, &err);
  if (r)
    fail_msg("%s", err.msg);
  assert_file(f->ws, "x.txt", 0644, "x\n");
  assert_file(f->ws, "a/b/c", 0644, "c\n");
  assert_link(f->ws, "a/b/up", "../../x.txt");
  assert_link(f->ws, "a/here", ".");
  assert_link(f->ws, "dangling", "no/such/file");
  snprintf(p, sizeof(p), "%s/x.txt", f->ws);
  snprintf(q, sizeof(q), "%s/a/again", f->ws);
  assert_int_equal(stat(p, &a), 0);
  assert_int_equal(stat(q, &b), 0);
  assert_int_equal(a.st_ino, b.st_ino);
  /* The root's own mode is the caller's, not the archive's. */
  assert_int_equal(stat(f->ws, &a), 0);
  assert_int_equal(a.st_mode & 0777, 0755);
  assert_untouched(f);
}

/* ---- pack ---- */

/* dir/rel, in a buffer the next call reuses. */
static const char *at(const char *dir, const char *rel)
{
  static char p[4300];

  assert_true((size_t)snprintf(p, sizeof(p), "%s/%s", dir, rel) < sizeof(p));
  return p;
}

static void make_tree(const char *src)
{
  assert_int_equal(mkdir(src, 0755), 0);
  assert_int_equal(mkdir(at(src, "bin"), 0755), 0);
  write_file(at(src, "bin/run.sh"), "#!/bin/sh\necho hi\n", 0755);
  assert_int_equal(mkdir(at(src, "a"), 0755), 0);
  assert_int_equal(mkdir(at(src, "a/b"), 0755), 0);
  write_file(at(src, "a/b/c.txt"), "deep\n", 0644);
  assert_int_equal(symlink("../../bin/run.sh", at(src, "a/b/up")), 0);
  assert_int_equal(mkdir(at(src, "a/empty"), 0750), 0);
  assert_int_equal(chmod(at(src, "a/empty"), 0750), 0);
  assert_int_equal(symlink("a/b/c.txt", at(src, "link")), 0);
  write_file(at(src, "ro.txt"), "read only\n", 0444);
  write_file(at(src, "suid"), "s\n", 04755);
  assert_int_equal(mkdir(at(src, ".durin"), 0700), 0);
  write_file(at(src, ".durin/state"), "st\n", 0600);
  assert_int_equal(mkfifo(at(src, "pipe"), 0644), 0);
}

static void assert_tree(const char *dir)
{
  assert_mode(dir, "bin", S_IFDIR, 0755);
  assert_file(dir, "bin/run.sh", 0755, "#!/bin/sh\necho hi\n");
  assert_file(dir, "a/b/c.txt", 0644, "deep\n");
  assert_link(dir, "a/b/up", "../../bin/run.sh");
  assert_mode(dir, "a/empty", S_IFDIR, 0750);
  assert_link(dir, "link", "a/b/c.txt");
  assert_file(dir, "ro.txt", 0444, "read only\n");
  assert_file(dir, "suid", 0755, "s\n");
  assert_mode(dir, ".durin", S_IFDIR, 0700);
  assert_file(dir, ".durin/state", 0600, "st\n");
  /* Six names at the top: the fifo was left out. */
  assert_int_equal(count_entries(dir), 6);
}

/* Packs dir into a file under base; returns its bytes (free them). */
static char *pack(const char *base, const char *dir, enum durin_archive_fmt fmt,
                  size_t *len)
{
  struct durin_err err = { 0 };
  char p[4300], *bytes = NULL;
  int fd, r;

  snprintf(p, sizeof(p), "%s/packed.XXXXXX", base);
  fd = mkstemp(p);
  assert_true(fd >= 0);
  r = durin_archive_pack(dir, fmt, fd, &err);
  if (r)
    fail_msg("%s", err.msg);
  close(fd);
  assert_int_equal(durin_file_read(p, 1 << 20, &bytes, len, NULL), 0);
  unlink(p);
  return bytes;
}

/* Paths relative, no owners, in the documented order: a directory's
 * files and links, then its subdirectories, each before what it holds. */
static void assert_headers(const char *bytes, size_t len)
{
  struct archive *a = archive_read_new();
  struct archive_entry *e;
  const char *want[] = { "link",         "ro.txt",  "suid", ".durin",
                         ".durin/state", "a",       "a/b",  "a/b/c.txt",
                         "a/b/up",       "a/empty", "bin",  "bin/run.sh" };
  size_t i = 0;

  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  assert_int_equal(archive_read_open_memory(a, bytes, len), ARCHIVE_OK);
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    const char *path = archive_entry_pathname(e);
    size_t n = strlen(path);

    assert_true(i < sizeof(want) / sizeof(want[0]));
    /* A directory's name may carry a trailing slash. */
    if (n && path[n - 1] == '/')
      n--;
    if (strlen(want[i]) != n || strncmp(path, want[i], n))
      fail_msg("entry %zu is '%s', not '%s'", i, path, want[i]);
    assert_int_equal(archive_entry_uid(e), 0);
    assert_int_equal(archive_entry_gid(e), 0);
    assert_true(!archive_entry_uname(e) || !*archive_entry_uname(e));
    assert_true(!archive_entry_gname(e) || !*archive_entry_gname(e));
    i++;
  }
  assert_int_equal(i, sizeof(want) / sizeof(want[0]));
  archive_read_free(a);
}

static void round_trip(struct fx *f, enum durin_archive_fmt fmt,
                       const unsigned char *magic, size_t off, size_t mlen)
{
  struct durin_err err = { 0 };
  char src[4300], *bytes, *again;
  size_t len, len2;
  int r;

  snprintf(src, sizeof(src), "%s/src", f->base);
  make_tree(src);
  bytes = pack(f->base, src, fmt, &len);
  assert_true(len > off + mlen);
  assert_memory_equal(bytes + off, magic, mlen);
  assert_headers(bytes, len);
  /* The same tree packs to the same bytes. */
  again = pack(f->base, src, fmt, &len2);
  assert_int_equal(len, len2);
  assert_memory_equal(bytes, again, len);
  free(again);
  r = durin_archive_unpack(bytes, len, f->ws, NULL, &err);
  if (r)
    fail_msg("%s", err.msg);
  free(bytes);
  assert_tree(f->ws);
}

/* An empty tar is an empty workspace; no bytes at all is no archive. */
static void test_empty(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct tar t;

  tar_begin(&t, DURIN_ARCHIVE_TZST);
  assert_int_equal(unpack(f, &t, NULL, &err), 0);
  assert_int_equal(count_entries(f->ws), 0);
  assert_int_equal(durin_archive_unpack("", 0, f->ws, NULL, &err),
                   DURIN_EINVAL);
  assert_non_null(strstr(err.msg, "cannot read the archive"));
}

/* Cut mid-file: refused over that entry, and what came before is gone. */
static void test_truncated(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  static char noise[1 << 20];
  unsigned seed = 1;
  struct tar t;
  size_t i;
  int r;

  /* Noise does not compress: half the gzip is half of big's data. */
  for (i = 0; i < sizeof(noise); i++)
    noise[i] = (char)rand_r(&seed);
  tar_begin(&t, DURIN_ARCHIVE_TGZ);
  add_file(&t, "first", "1\n");
  tar_add(&t,
          (struct ent){ .path = "big", .data = noise, .len = sizeof(noise) });
  tar_end(&t);
  r = durin_archive_unpack(t.buf, t.used / 2, f->ws, NULL, &err);
  free(t.buf);
  assert_refused(f, r, DURIN_EINVAL, &err, "big", "truncated");
}

/* pax stores names as UTF-8; a server in the C locale keeps them. */
static void test_utf8_names(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  struct tar t;
  int r;

  /* In the C locale libarchive's pax writer cannot say the name in
   * UTF-8 (and writes it raw); the reader is what is tested here. */
  assert_non_null(setlocale(LC_CTYPE, "C.UTF-8"));
  tar_begin(&t, DURIN_ARCHIVE_TAR);
  add_file(&t, "caf\xc3\xa9/\xc3\xbc.txt", "u\n");
  tar_end(&t);
  setlocale(LC_CTYPE, "C");
  r = durin_archive_unpack(t.buf, t.used, f->ws, NULL, &err);
  free(t.buf);
  if (r)
    fail_msg("%s", err.msg);
  assert_file(f->ws, "caf\xc3\xa9/\xc3\xbc.txt", 0644, "u\n");
}

static void test_round_trip_tar(void **state)
{
  round_trip(*state, DURIN_ARCHIVE_TAR, (const unsigned char *)"ustar", 257, 5);
}

static void test_round_trip_tgz(void **state)
{
  static const unsigned char gz[] = { 0x1f, 0x8b };

  round_trip(*state, DURIN_ARCHIVE_TGZ, gz, 0, sizeof(gz));
}

static void test_round_trip_tzst(void **state)
{
  static const unsigned char zst[] = { 0x28, 0xb5, 0x2f, 0xfd };

  round_trip(*state, DURIN_ARCHIVE_TZST, zst, 0, sizeof(zst));
}

/* A name that is not UTF-8 (an agent can make one) still round-trips:
 * pax stores it raw, marked as binary. */
static void test_round_trip_binary_name(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  char src[4300], *bytes;
  size_t len;
  int r;

  snprintf(src, sizeof(src), "%s/src", f->base);
  assert_int_equal(mkdir(src, 0755), 0);
  write_file(at(src, "bad\xff\xfename"), "b\n", 0600);
  bytes = pack(f->base, src, DURIN_ARCHIVE_TZST, &len);
  r = durin_archive_unpack(bytes, len, f->ws, NULL, &err);
  free(bytes);
  if (r)
    fail_msg("%s", err.msg);
  assert_file(f->ws, "bad\xff\xfename", 0600, "b\n");
}

static void test_pack_not_a_dir(void **state)
{
  struct fx *f = *state;
  struct durin_err err = { 0 };
  char p[4300];

  snprintf(p, sizeof(p), "%s/secret", f->outside);
  assert_int_equal(durin_archive_pack(p, DURIN_ARCHIVE_TAR, 1, &err),
                   DURIN_EINVAL);
  assert_non_null(strstr(err.msg, "cannot pack"));
}

static void test_fmt_parse(void **state)
{
  (void)state;
  assert_int_equal(durin_archive_fmt_parse("tar"), DURIN_ARCHIVE_TAR);
  assert_int_equal(durin_archive_fmt_parse("application/x-tar"),
                   DURIN_ARCHIVE_TAR);
  assert_int_equal(durin_archive_fmt_parse("tar.gz"), DURIN_ARCHIVE_TGZ);
  assert_int_equal(durin_archive_fmt_parse("gzip"), DURIN_ARCHIVE_TGZ);
  assert_int_equal(durin_archive_fmt_parse("Application/GZIP; q=0.5"),
                   DURIN_ARCHIVE_TGZ);
  assert_int_equal(durin_archive_fmt_parse("tar.zst"), DURIN_ARCHIVE_TZST);
  assert_int_equal(durin_archive_fmt_parse("zstd"), DURIN_ARCHIVE_TZST);
  assert_int_equal(durin_archive_fmt_parse("application/zstd"),
                   DURIN_ARCHIVE_TZST);
  assert_int_equal(durin_archive_fmt_parse("text/html, application/zstd;q=0.9,"
                                           " application/gzip"),
                   DURIN_ARCHIVE_TZST);
  assert_int_equal(durin_archive_fmt_parse("*/*"), -1);
  assert_int_equal(durin_archive_fmt_parse(""), -1);
  assert_int_equal(durin_archive_fmt_parse(NULL), -1);
  assert_int_equal(durin_archive_fmt_parse("tarx"), -1);
  assert_int_equal(durin_archive_fmt_parse("application/zip"), -1);
  assert_string_equal(durin_archive_fmt_mime(DURIN_ARCHIVE_TGZ),
                      "application/gzip");
  assert_string_equal(durin_archive_fmt_mime(DURIN_ARCHIVE_TZST),
                      "application/zstd");
  assert_string_equal(durin_archive_fmt_mime(DURIN_ARCHIVE_TAR),
                      "application/x-tar");
}

#define FX(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void)
{
  const struct CMUnitTest tests[] = {
    FX(test_dotdot_escape),
    FX(test_absolute_path),
    FX(test_dotdot_inside_path),
    FX(test_symlink_absolute),
    FX(test_symlink_up),
    FX(test_symlink_up_from_subdir),
    FX(test_symlink_dotdot_after_link),
    FX(test_write_through_symlink),
    FX(test_parent_is_a_file),
    FX(test_conflicting_entries),
    FX(test_hardlink_absolute),
    FX(test_hardlink_dotdot),
    FX(test_hardlink_not_yet_unpacked),
    FX(test_hardlink_to_symlink),
    FX(test_char_device),
    FX(test_fifo),
    FX(test_total_size_cap),
    FX(test_size_cap_compressed),
    FX(test_entries_cap),
    FX(test_path_cap),
    FX(test_not_an_archive),
    FX(test_target_not_empty),
    FX(test_modes_and_owners),
    FX(test_accepts_usual_tars),
    FX(test_empty),
    FX(test_truncated),
    FX(test_utf8_names),
    FX(test_round_trip_tar),
    FX(test_round_trip_tgz),
    FX(test_round_trip_tzst),
    FX(test_round_trip_binary_name),
    FX(test_pack_not_a_dir),
    cmocka_unit_test(test_fmt_parse),

  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
