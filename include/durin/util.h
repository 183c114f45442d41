/*
 * Small utilities shared by every module: a bounded byte buffer, clocks,
 * identifiers, hashing, fault injection and file-tree helpers.
 *
 * Nothing here has process-wide side effects except the fault hook, which
 * only the host program (cli/, tests) installs.
 */
#ifndef DURIN_UTIL_H
#define DURIN_UTIL_H

/* The release, as `durin --version` and telemetry name it. */
#define DURIN_VERSION "0.1.0"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "durin/error.h"

/*
 * A growable byte buffer with a hard cap. buf is always NUL-terminated and
 * never NULL after durin_buf_init. Appending past cap fails with
 * DURIN_ETOOBIG and leaves the contents as they were, so a runaway stream is
 * an error, not an out-of-memory.
 */
struct durin_buf {
  char *buf;
  size_t len;
  size_t alloc;
  size_t cap;
};

void durin_buf_init(struct durin_buf *b, size_t cap);
void durin_buf_release(struct durin_buf *b);
void durin_buf_reset(struct durin_buf *b);
int durin_buf_add(struct durin_buf *b, const void *data, size_t len);
int durin_buf_adds(struct durin_buf *b, const char *s);
int durin_buf_addf(struct durin_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Hands the bytes over to the caller (free() them) and resets b. */
char *durin_buf_detach(struct durin_buf *b, size_t *len);
/* Appends s (NULL: "") as a quoted JSON string; a byte that is not part
 * of well-formed UTF-8 becomes U+FFFD, so the text is always valid JSON. */
int durin_buf_add_jstr(struct durin_buf *b, const char *s);

/* Clocks in milliseconds: wall (epoch) and monotonic. */
int64_t durin_now_ms(void);
int64_t durin_mono_ms(void);
/* The monotonic clock in microseconds, for latencies of a few ms. */
int64_t durin_mono_us(void);
/* Formats an epoch-ms timestamp as RFC 3339 UTC into out (>= 32 bytes). */
void durin_fmt_time(int64_t ms, char *out, size_t outlen);
/* Formats a duration as "1h02m", "3.2s", "140ms". */
void durin_fmt_duration(int64_t ms, char *out, size_t outlen);

/* Fills out with n random bytes from the kernel; returns 0 or DURIN_EIO. */
int durin_random(void *out, size_t n);
/* A new run id: "r" + 12 hex digits of time + 8 random hex digits. */
int durin_run_id_new(char out[32]);

/* Lower-case hex SHA-256 of data into out (65 bytes). */
void durin_sha256_hex(const void *data, size_t len, char out[65]);

/*
 * Fault injection for crash tests. The host installs a hook (the CLI's
 * kills the process with SIGKILL) and a spec "<point>[:<n>]"; the library
 * calls durin_fault_point() at each named point and the hook fires on the
 * n-th hit (default 1) of the configured point.
 */
typedef void (*durin_fault_hook)(const char *point);
int durin_fault_configure(const char *spec, durin_fault_hook hook,
                          struct durin_err *err);
void durin_fault_point(const char *point);
/* For a point the library acts out itself (not a crash): 1 on the hit
 * that would fire the hook, which is not called. */
int durin_fault_hit(const char *point);
/* The list of named points, NULL-terminated, for --help and tests. */
extern const char *const durin_fault_points[];

/* File-tree helpers. */
/*
 * The tree at ws against the tree at base, written to out: a unified diff
 * per changed text file with git's headers (through `diff -u`, spawned
 * with posix_spawn: any thread may call this), a line per binary file or
 * link; or with stat, git's diffstat. DURIN_EIO when a tree cannot be read
 * or diff cannot run (lib/util/treediff.c).
 */
int durin_tree_diff(const char *base, const char *ws, int stat, FILE *out,
                    struct durin_err *err);
/* Copies the tree at src into dst (created); regular files, dirs, symlinks. */
int durin_tree_copy(const char *src, const char *dst, struct durin_err *err);
/* Removes a tree; missing is not an error. */
int durin_tree_remove(const char *path);
/* The same for name beneath the directory dfd; neither follows a link
 * nor recurses on the stack, so any depth of tree goes. */
int durin_tree_remove_at(int dfd, const char *name);
/* mkdir -p with mode 0755. */
int durin_mkdirs(const char *path, struct durin_err *err);
/* Creates a fresh directory /tmp/PREFIX.<6 random characters> (mkdtemp)
 * and writes its path to out; -1 with errno set if it cannot. */
int durin_mktmpdir(const char *prefix, char *out, size_t len);
/* An anonymous file in dir (read-write, close-on-exec, already unlinked:
 * it is gone when closed); -1 with errno. */
int durin_tmpfile(const char *dir);
/* A new file beside path ("PATH.tmp-" and a random suffix, 0600), its
 * name in out, to be renamed over path once whole; -1 with errno. */
int durin_tmpfile_beside(const char *path, char *out, size_t len);
/* Reads a whole file with a cap; *out is NUL-terminated, free() it. */
int durin_file_read(const char *path, size_t cap, char **out, size_t *len,
                    struct durin_err *err);

/*
 * Makes len bytes at s valid UTF-8 in place: every byte that is not part
 * of a well-formed sequence (and every NUL) becomes '?'. Tool output is
 * arbitrary bytes; the log and the model wire formats are JSON text.
 * Returns how many bytes were replaced.
 */
size_t durin_utf8_sanitize(char *s, size_t len);

/* Edit distance, for "did you mean" suggestions. */
size_t durin_edit_distance(const char *a, const char *b);
/*
 * Looks word up in known (NULL-terminated): returns 1 if it is there;
 * else 0, with *near the known word closest to it within two edits (NULL
 * if none), for "field 'stpes' is not known; did you mean 'steps'?".
 */
int durin_known_word(const char *word, const char *const *known,
                     const char **near);

#endif
