/*
 * escape-probe ATTEMPT [ARG]: tries one escape from inside the sandbox.
 * Exit 0 and "blocked: ..." when the attempt fails, 1 and "ESCAPED" when
 * it works. Built without sanitizers' help: it only makes syscalls.
 *
 * A probe that finds nothing to reach proves nothing: on a quiet host no
 * one listens on port 22 and a datagram to the internet goes nowhere
 * anyway. So the host side plants its own targets, and the test runs each
 * attempt on the host too, where it must escape:
 *   escape-probe listen tcp|udp|abstract NAME   prints the port (or NAME)
 *       once listening, then serves until killed (or 120 s pass)
 *   escape-probe keyring-host UID CMD...        runs CMD in a new session
 *       keyring holding the key "durin-probe-key", owned by UID and visible
 *       only to whoever possesses it (reaches it through its keyrings)
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/un.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <arpa/inet.h>
#include <poll.h>
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

/* An abstract unix address: NUL then name, not NUL-terminated. */
static socklen_t abstract_addr(struct sockaddr_un *su, const char *name)
{
  memset(su, 0, sizeof(*su));
  su->sun_family = AF_UNIX;
  snprintf(su->sun_path + 1, sizeof(su->sun_path) - 1, "%s", name);
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
                     strlen(su->sun_path + 1));
}

static struct sockaddr_in loopback(int port)
{
  struct sockaddr_in sa = { .sin_family = AF_INET };

  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sa;
}

/* The host's side: a listener the sandbox must not reach. */
static int listen_on(const char *kind, const char *name)
{
  struct sockaddr_in sa = loopback(0);
  struct sockaddr_un su;
  socklen_t len = sizeof(sa);
  char buf[64];
  int udp = !strcmp(kind, "udp"), fd, c;
  ssize_t n;

  alarm(120); /* a test that forgets us does not leave us behind */
  if (!strcmp(kind, "abstract")) {
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&su, abstract_addr(&su, name)))
      return perror("abstract listener"), 2;
  } else {
    fd = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
        getsockname(fd, (struct sockaddr *)&sa, &len))
      return perror("listener"), 2;
  }
  if (!udp && listen(fd, 16))
    return perror("listen"), 2;
  if (!strcmp(kind, "abstract"))
    printf("%s\n", name);
  else
    printf("%d\n", ntohs(sa.sin_port));
  fflush(stdout);
  for (;;) {
    if (udp) { /* echo, so the sender knows it got through */
      struct sockaddr_in from;

      len = sizeof(from);
      n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len);
      if (n > 0)
        sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, len);
    } else if ((c = accept(fd, NULL, NULL)) >= 0) {
      close(c);
    }
  }
}

/* Runs argv in a new session keyring with a key only its possessors see. */
static int keyring_host(char **argv)
{
  long key;

  if (!argv[0] || !argv[1])
    return fprintf(stderr, "keyring-host UID CMD...\n"), 2;
  if (syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, NULL) < 0)
    return perror("join a session keyring"), 2;
  key = syscall(SYS_add_key, "user", "durin-probe-key", "secret", 6,
                -3 /* KEY_SPEC_SESSION_KEYRING */);
  if (key < 0)
    return perror("add_key"), 2;
  /*
   * Owned by the sandbox's host uid, so /proc/keys in the sandbox's user
   * namespace lists it at all; visible only to a possessor (0x3f000000),
   * so it is listed there only if the sandbox reaches our keyring.
   */
  if ((uid_t)atol(argv[0]) != getuid() &&
      syscall(SYS_keyctl, 4 /* KEYCTL_CHOWN */, key, atol(argv[0]), -1) < 0)
    return perror("chown the key"), 2;
  if (syscall(SYS_keyctl, 5 /* KEYCTL_SETPERM */, key, 0x3f000000) < 0)
    return perror("setperm the key"), 2;
  execvp(argv[1], argv + 1);
  perror(argv[1]);
  return 127;
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
  if (!strcmp(a, "listen") && arg)
    return listen_on(arg, argc > 3 ? argv[3] : "durin-probe");
  if (!strcmp(a, "keyring-host"))
    return keyring_host(argv + 2);
  if (!strcmp(a, "tcp") && arg) { /* connect to 127.0.0.1:PORT of the host */
    struct sockaddr_in sa = loopback(atoi(arg));
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    return result(connect(fd, (struct sockaddr *)&sa, sizeof(sa)),
                  "connect to the host's loopback");
  }
  if (!strcmp(a, "udp") && arg) { /* a datagram to 127.0.0.1:PORT, echoed */
    struct sockaddr_in sa = loopback(atoi(arg));
    struct pollfd pf = { .events = POLLIN };
    char buf[16];
    long r;

    /* Sending always "works"; only the echo proves it arrived. */
    pf.fd = socket(AF_INET, SOCK_DGRAM, 0);
    r = connect(pf.fd, (struct sockaddr *)&sa, sizeof(sa));
    if (r == 0)
      r = send(pf.fd, "ping", 4, 0);
    if (r >= 0 && (r = poll(&pf, 1, 2000)) == 0) {
      errno = ETIMEDOUT;
      r = -1;
    }
    if (r > 0)
      r = recv(pf.fd, buf, sizeof(buf), 0);
    return result(r, "UDP to the host's loopback, echoed");
  }
  if (!strcmp(a, "abstract") && arg) { /* an abstract unix socket */
    struct sockaddr_un su;
    socklen_t len = abstract_addr(&su, arg);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    return result(connect(fd, (struct sockaddr *)&su, len),
                  "connect to a host abstract socket");
  }
  if (!strcmp(a, "fd")) { /* an inherited descriptor number */
    return result(fcntl(atoi(arg), F_GETFD), "inherited descriptor");
  }
  fprintf(stderr, "escape-probe: unknown attempt '%s'\n", a);
  return 2;
}
