/*
 * escape-probe ATTEMPT [ARG]: tries one escape from inside the sandbox.
 * Exit 0 and "blocked: ..." when the attempt fails, 1 and "ESCAPED" when
 * it works. Built without sanitizers' help: it only makes syscalls.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <termios.h>
#include <unistd.h>

static int result(long r, const char *what)
{
  if (r < 0) {
    printf("blocked: %s: %s\n", what, strerror(errno));
    return 0;
  }
  printf("ESCAPED: %s\n", what);
  return 1;
}

int main(int argc, char **argv)
{
  const char *a = argc > 1 ? argv[1] : "";
  const char *arg = argc > 2 ? argv[2] : NULL;

  if (!strcmp(a, "tiocsti")) {
    char c = 'x';

    return result(ioctl(0, TIOCSTI, &c), "TIOCSTI on stdin");
  }
  if (!strcmp(a, "tiocsti-high")) {
    char c = 'x';

    return result(syscall(SYS_ioctl, 0, 0x100000000UL | TIOCSTI, &c),
                  "TIOCSTI with high bits");
  }
  if (!strcmp(a, "bpf")) {
    union bpf_attr at;

    memset(&at, 0, sizeof(at));
    at.map_type = BPF_MAP_TYPE_ARRAY;
    at.key_size = 4;
    at.value_size = 4;
    at.max_entries = 1;
    return result(syscall(SYS_bpf, BPF_MAP_CREATE, &at, sizeof(at)), "bpf");
  }
  if (!strcmp(a, "userfaultfd"))
    return result(syscall(SYS_userfaultfd, 0), "userfaultfd");
  if (!strcmp(a, "io_uring")) {
    char params[120];

    memset(params, 0, sizeof(params));
    return result(syscall(SYS_io_uring_setup, 4, params), "io_uring_setup");
  }
  if (!strcmp(a, "perf")) {
    struct perf_event_attr pe;

    memset(&pe, 0, sizeof(pe));
    pe.type = PERF_TYPE_SOFTWARE;
    pe.size = sizeof(pe);
    pe.config = PERF_COUNT_SW_CPU_CLOCK;
    return result(syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0),
                  "perf_event_open");
  }
  if (!strcmp(a, "userns"))
    return result(unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)");
  if (!strcmp(a, "clone-userns")) {
    long r =
        syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);

    if (r == 0)
      _exit(0);
    return result(r, "clone(CLONE_NEWUSER)");
  }
  if (!strcmp(a, "mount"))
    return result(mount("tmpfs", "/tmp", "tmpfs", 0, NULL), "mount tmpfs");
  if (!strcmp(a, "remount-ro-bind"))
    return result(mount(NULL, "/usr", NULL, MS_REMOUNT | MS_BIND, NULL),
                  "remount /usr read-write");
  if (!strcmp(a, "chroot"))
    return result(chroot("/tmp"), "chroot");
  if (!strcmp(a, "ptrace"))
    return result(ptrace(PTRACE_ATTACH, atoi(arg), NULL, NULL), "ptrace");
  if (!strcmp(a, "kill"))
    return result(kill(atoi(arg), 0), "signal a host pid");
  if (!strcmp(a, "keyctl"))
    return result(syscall(SYS_add_key, "user", "k", "v", 1, -3 /* session */),
                  "add_key");
  if (!strcmp(a, "packet"))
    return result(socket(AF_PACKET, SOCK_RAW, 0), "AF_PACKET socket");
  if (!strcmp(a, "alg"))
    return result(socket(AF_ALG, SOCK_SEQPACKET, 0), "AF_ALG socket");
  if (!strcmp(a, "vsock"))
    return result(socket(AF_VSOCK, SOCK_STREAM, 0), "AF_VSOCK socket");
  if (!strcmp(a, "raw"))
    return result(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP), "raw socket");
  if (!strcmp(a, "netfilter"))
    return result(socket(AF_NETLINK, SOCK_RAW, 12), "netlink netfilter");
  if (!strcmp(a, "settime")) {
    struct timeval tv = { 1, 0 };

    return result(settimeofday(&tv, NULL), "settimeofday");
  }
  if (!strcmp(a, "sethostname"))
    return result(sethostname("evil", 4), "sethostname");
  if (!strcmp(a, "tcp")) { /* connect to 127.0.0.1:PORT of the host */
    struct sockaddr_in sa = { .sin_family = AF_INET };
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_port = htons((unsigned short)atoi(arg));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return result(connect(fd, (struct sockaddr *)&sa, sizeof(sa)),
                  "connect to the host's loopback");
  }
  if (!strcmp(a, "udp")) { /* a datagram to 1.1.1.1:53 */
    struct sockaddr_in sa = { .sin_family = AF_INET };
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    sa.sin_port = htons(53);
    inet_pton(AF_INET, "1.1.1.1", &sa.sin_addr);
    return result(sendto(fd, "x", 1, 0, (struct sockaddr *)&sa, sizeof(sa)),
                  "UDP to 1.1.1.1:53");
  }
  if (!strcmp(a, "abstract")) { /* an abstract unix socket of the host */
    struct sockaddr_un {
      sa_family_t f;
      char p[108];
    } su = { AF_UNIX, "" };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    snprintf(su.p + 1, sizeof(su.p) - 1, "%s", arg);
    return result(connect(fd, (struct sockaddr *)&su,
                          (socklen_t)(sizeof(sa_family_t) + 1 + strlen(arg))),
                  "connect to a host abstract socket");
  }
  if (!strcmp(a, "fd")) { /* an inherited descriptor number */
    return result(fcntl(atoi(arg), F_GETFD), "inherited descriptor");
  }
  fprintf(stderr, "escape-probe: unknown attempt '%s'\n", a);
  return 2;
}
