/*
 * Workspace archives for the HTTP control plane (`durin serve`): a client
 * uploads a workspace as a tar (plain, gzip or zstd) and downloads one
 * back. The tar comes from the network, so unpacking treats every entry as
 * hostile; archive.c's opening comment lists the rules, and which of
 * them libarchive checks a second time.
 *
 * Threads: any thread may call these, several at once. None changes the
 * working directory. One caveat comes with libarchive: its disk writer
 * reads the umask by setting it to 0 and back, once when it is made and
 * again for every entry, so a file another thread creates in that
 * instant is made without the umask applied.
 */
#ifndef DURIN_SERVER_ARCHIVE_H
#define DURIN_SERVER_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "durin/error.h"

/*
 * What one upload may unpack to. A field <= 0 takes the default below.
 * Whatever the caps, dir + "/" + path must also fit in PATH_MAX.
 */
struct durin_archive_caps {
  int64_t max_bytes;   /* file data in total, as unpacked (not as sent) */
  int64_t max_entries; /* entries of any kind, directories included */
  int64_t max_path;    /* bytes in one entry's path or link target */
};

#define DURIN_ARCHIVE_MAX_BYTES   ((int64_t)1 << 30)
#define DURIN_ARCHIVE_MAX_ENTRIES 100000
#define DURIN_ARCHIVE_MAX_PATH    4096

/*
 * Unpacks the tar in buf (len bytes; plain, gzip or zstd, detected from
 * the bytes) into dir, which must exist and be empty. Only regular files,
 * directories, symlinks and hard links are unpacked. An entry is refused,
 * and the whole upload with it, if its path is absolute or has a '..'
 * component, if it would be written through a symlink or below a file,
 * if it is a device, fifo or socket, if it is a symlink whose target is
 * absolute or leads outside dir, if it is a hard link to anything but a
 * regular file unpacked earlier from the same archive, or if it passes a
 * cap.
 *
 * Files keep their permission bits (never setuid, setgid or sticky) and
 * mtimes, never their owners (they belong to the caller). Directories
 * also get u+rwx, so the caller can always walk and remove them.
 *
 * Returns 0; DURIN_EINVAL for an archive that is malformed or breaks a
 * rule (the message names the entry and the rule); DURIN_ETOOBIG when a
 * cap is passed (the message names the cap); DURIN_EIO when the disk
 * fails; DURIN_ENOMEM. On failure dir is left empty again. caps may be
 * NULL (all defaults).
 */
int durin_archive_unpack(const void *buf, size_t len, const char *dir,
                         const struct durin_archive_caps *caps,
                         struct durin_err *err);

enum durin_archive_fmt {
  DURIN_ARCHIVE_TAR,
  DURIN_ARCHIVE_TGZ,
  DURIN_ARCHIVE_TZST,
};

/*
 * Writes the tree under dir to fd as a tar (pax where ustar cannot say it)
 * in the format fmt: regular files, directories and symlinks (as links,
 * never followed), with paths relative to dir, permission bits without
 * setuid/setgid/sticky, mtimes in whole seconds, and no owners (uid and
 * gid 0, no user or group names). Entries come in a fixed order (each
 * directory, then its files and links by name, then its subdirectories by
 * name, each the same way), so the same tree packs to the same bytes. Devices,
 * fifos and sockets are left out; hard links are packed as separate copies. The
 * walk never follows a symlink, even if the tree changes under it. fd stays
 * open and is the caller's.
 *
 * Returns 0, DURIN_EINVAL (dir is not a directory, or fmt is unknown),
 * DURIN_EIO (a read or the write to fd failed) or DURIN_ENOMEM.
 */
int durin_archive_pack(const char *dir, enum durin_archive_fmt fmt, int fd,
                       struct durin_err *err);

/*
 * Parses a ?format= value, a Content-Type or an Accept header into a
 * format: "tar", "application/x-tar"; "tar.gz", "tgz", "gzip",
 * "application/gzip", "application/x-gzip"; "tar.zst", "tzst", "zstd",
 * "application/zstd", "application/x-zstd". Case and media-type
 * parameters (";q=0.9") are ignored; in a list ("a, b") the first known
 * item wins, in the order written (q-values are not weighed). Returns the
 * enum durin_archive_fmt value, or -1 if nothing is known (a wildcard
 * included: the caller then picks its default).
 */
int durin_archive_fmt_parse(const char *s);

/* The Content-Type to serve a format under ("application/gzip"). */
const char *durin_archive_fmt_mime(enum durin_archive_fmt fmt);

#endif
