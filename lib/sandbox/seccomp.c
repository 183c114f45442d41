/*
 * The sandbox's seccomp program, built with libseccomp and exported as
 * classic BPF into a sealed memfd that durin-sandbox installs last, just
 * before exec. A deny list (errno EPERM, so programs see an ordinary
 * refusal) of what a tool never needs and kernels keep getting exploited
 * through; syscalls from a foreign architecture (i386, x32) kill.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <seccomp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "durin/sandbox.h"

static const char *const denied[] = {
  /* file systems and the root */
  "mount",
  "umount",
  "umount2",
  "pivot_root",
  "chroot",
  "move_mount",
  "open_tree",
  "fsopen",
  "fsconfig",
  "fsmount",
  "fspick",
  "mount_setattr",
  "open_by_handle_at",
  "name_to_handle_at",
  "quotactl",
  "swapon",
  "swapoff",
  /* other processes and the kernel */
  "ptrace",
  "process_vm_readv",
  "process_vm_writev",
  "kcmp",
  "bpf",
  "userfaultfd",
  "perf_event_open",
  "io_uring_setup",
  "io_uring_enter",
  "io_uring_register",
  "kexec_load",
  "kexec_file_load",
  "init_module",
  "finit_module",
  "delete_module",
  "reboot",
  "acct",
  "syslog",
  "iopl",
  "ioperm",
  "lookup_dcookie",
  "fanotify_init",
  "vhangup",
  "nfsservctl",
  /* keys */
  "keyctl",
  "add_key",
  "request_key",
  /* namespaces */
  "unshare",
  "setns",
  /* clocks and names */
  "settimeofday",
  "clock_settime",
  "clock_adjtime",
  "adjtimex",
  "stime",
  "sethostname",
  "setdomainname",
};

/* Address families a tool has no use for, each a history of bugs. */
static const int denied_af[] = {
  AF_PACKET, AF_ALG, AF_VSOCK, AF_KEY, AF_BLUETOOTH, AF_NFC,  AF_RDS,
  AF_TIPC,   AF_CAN, AF_XDP,   AF_LLC, AF_X25,       AF_AX25, AF_APPLETALK,
};

static int rule(scmp_filter_ctx c, int nr, unsigned cnt,
                const struct scmp_arg_cmp *a)
{
  if (nr == __NR_SCMP_ERROR)
    return 0; /* not on this architecture */
  return seccomp_rule_add_array(c, SCMP_ACT_ERRNO(EPERM), nr, cnt, a);
}

static int build(scmp_filter_ctx c)
{
  size_t i;
  int r = 0;

  r |= seccomp_attr_set(c, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  for (i = 0; i < sizeof(denied) / sizeof(*denied); i++)
    r |= rule(c, seccomp_syscall_resolve_name(denied[i]), 0, NULL);
  /* New namespaces through clone: no; clone3 hides its flags in memory,
   * so it reports ENOSYS and libc falls back to clone. */
  {
    struct scmp_arg_cmp a =
        SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER);
    struct scmp_arg_cmp b =
        SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWNS, CLONE_NEWNS);

    r |= rule(c, SCMP_SYS(clone), 1, &a);
    r |= rule(c, SCMP_SYS(clone), 1, &b);
    r |= seccomp_rule_add(c, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  }
  /* Typing into the terminal: TIOCSTI and TIOCLINUX, also with high bits
   * set (the kernel compares the low 32). */
  {
    struct scmp_arg_cmp a = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI);
    struct scmp_arg_cmp b = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCLINUX);

    r |= rule(c, SCMP_SYS(ioctl), 1, &a);
    r |= rule(c, SCMP_SYS(ioctl), 1, &b);
  }
  for (i = 0; i < sizeof(denied_af) / sizeof(*denied_af); i++) {
    struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)denied_af[i]);

    r |= rule(c, SCMP_SYS(socket), 1, &a);
    r |= rule(c, SCMP_SYS(socketpair), 1, &a);
  }
  /* Raw sockets, and netlink to netfilter, xfrm and the audit log. */
  {
    struct scmp_arg_cmp raw[2] = {
      SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_RAW),
      SCMP_A0(SCMP_CMP_NE, AF_UNIX),
    };
    static const int nl[] = { NETLINK_NETFILTER, NETLINK_XFRM, NETLINK_AUDIT };

    r |= rule(c, SCMP_SYS(socket), 2, raw);
    for (i = 0; i < sizeof(nl) / sizeof(*nl); i++) {
      struct scmp_arg_cmp a[2] = { SCMP_A0(SCMP_CMP_EQ, AF_NETLINK),
                                   SCMP_A2(SCMP_CMP_EQ, (scmp_datum_t)nl[i]) };

      r |= rule(c, SCMP_SYS(socket), 2, a);
    }
  }
  return r;
}

int durin_sandbox_seccomp(int *fd, struct durin_err *err)
{
  scmp_filter_ctx c = seccomp_init(SCMP_ACT_ALLOW);
  int mfd;

  *fd = -1;
  if (!c)
    return durin_err_set(err, DURIN_ENOMEM, "seccomp: out of memory");
  if (build(c)) {
    seccomp_release(c);
    return durin_err_set(err, DURIN_EIO,
                         "seccomp: building the filter failed (libseccomp "
                         "too old for this kernel?)");
  }
  mfd = memfd_create("durin-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (mfd < 0 || seccomp_export_bpf(c, mfd) ||
      fcntl(mfd, F_ADD_SEALS,
            F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)) {
    int e = errno;

    if (mfd >= 0)
      close(mfd);
    seccomp_release(c);
    return durin_err_set(err, DURIN_EIO, "seccomp: exporting the filter: %s",
                         strerror(e));
  }
  seccomp_release(c);
  *fd = mfd;
  return 0;
}
