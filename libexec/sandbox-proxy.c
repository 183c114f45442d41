/*
 * The egress proxy of one sandboxed call (--net proxy).
 *
 * The sandbox's network namespace has only lo. Its init listens on
 * 127.0.0.1:3128 there and hands the listening socket to P, outside, which
 * accepts on it: a socket keeps the namespace it was made in, so P serves
 * the sandbox's loopback while its own connections leave from the host's.
 * The command sees HTTP_PROXY and HTTPS_PROXY pointing at it.
 *
 * A request is one CONNECT host:port (HTTPS and anything tunnelled) or
 * one plain-HTTP request in absolute form (GET http://host/...). The host
 * must match the allowlist: "name" (ports 80 and 443), "name:port", or
 * "*.suffix". Raw IP addresses are refused whatever the list says, so
 * the list is the whole story; there is no other way out (no route, no
 * DNS, no UDP). Refusals are answered 403 and told on stderr, which is the
 * command's output.
 *
 * Single-threaded, inside P's poll loop. Resolving and connecting
 * upstream block that loop for at most CONNECT_MS. A CONNECT to a host
 * with a grant (spec "secrets") is handed to a child of P, which
 * terminates TLS and adds the granted header (sandbox-tls.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox-proxy.h"

#define MAX_CONNS  64
#define BUF        16384
#define REQ_MAX    8192
#define CONNECT_MS 10000
#define MAX_KIDS   32 /* intercepted connections at once */

struct half {
  char buf[BUF];
  size_t len;
  int eof; /* the reading side is done */
};

struct conn {
  int cfd, ufd; /* client (inside), upstream */
  int relaying;
  int draining; /* answered with an error: read until the client closes */
  char req[REQ_MAX + 1];
  size_t reqlen;
  struct half c2u, u2c;
};

struct proxy {
  int lfd;
  const char *const *allow;
  int nallow;
  const struct proxy_grant *grants;
  int ngrants;
  struct tls_ca *ca;
  const char *egress_ca;
  pid_t kids[MAX_KIDS]; /* the intercepting children; 0: a free slot */
  struct conn *c[MAX_CONNS];
};

struct proxy *proxy_new(int listen_fd, const char *const *allow, int nallow,
                        const struct proxy_grant *grants, int ngrants,
                        struct tls_ca *ca, const char *egress_ca)
{
  struct proxy *p = calloc(1, sizeof(*p));

  if (!p)
    return NULL;
  p->lfd = listen_fd;
  p->allow = allow;
  p->nallow = nallow;
  p->grants = ca ? grants : NULL;
  p->ngrants = ca ? ngrants : 0;
  p->ca = ca;
  p->egress_ca = egress_ca;
  fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
  return p;
}

static void conn_close(struct proxy *p, int i)
{
  struct conn *c = p->c[i];

  close(c->cfd);
  if (c->ufd >= 0)
    close(c->ufd);
  free(c);
  p->c[i] = NULL;
}

void proxy_free(struct proxy *p)
{
  int i;

  if (!p)
    return;
  for (i = 0; i < MAX_CONNS; i++)
    if (p->c[i])
      conn_close(p, i);
  /* The call is over: so are its intercepted connections. */
  for (i = 0; i < MAX_KIDS; i++)
    if (p->kids[i]) {
      kill(p->kids[i], SIGKILL);
      waitpid(p->kids[i], NULL, 0);
    }
  close(p->lfd);
  free(p);
}

static int is_ip(const char *host)
{
  unsigned char a[16];

  return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* Whether host:port is on the list. host is lower-case, without brackets. */
int proxy_allowed(const char *const *allow, int nallow, const char *host,
                  int port)
{
  int i;

  if (is_ip(host))
    return 0;
  for (i = 0; i < nallow; i++) {
    char name[256];
    const char *colon = strrchr(allow[i], ':');
    int want = 0;
    size_t n = colon ? (size_t)(colon - allow[i]) : strlen(allow[i]);

    if (n >= sizeof(name))
      continue;
    memcpy(name, allow[i], n);
    name[n] = 0;
    if (colon)
      want = atoi(colon + 1);
    if (want ? port != want : port != 80 && port != 443)
      continue;
    if (name[0] == '*' && name[1] == '.') {
      size_t hl = strlen(host), sl = strlen(name + 1);

      if (hl > sl && !strcasecmp(host + hl - sl, name + 1))
        return 1;
    } else if (!strcasecmp(host, name)) {
      return 1;
    }
  }
  return 0;
}

static void answer(int fd, const char *status, const char *why)
{
  dprintf(fd,
          "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nConnection: close\r\n"
          "Content-Length: %zu\r\n\r\n%s\n",
          status, strlen(why) + 1, why);
}

/* Relayed bytes go on at once: with Nagle's algorithm, a TLS handshake's
 * small records waited for delayed ACKs, 40 ms at a time. */
static void nodelay(int fd)
{
  int one = 1;

  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Connects to host:port within CONNECT_MS; the socket or -1. */
static int dial(const char *host, int port)
{
  struct addrinfo hints = { 0 }, *res, *ai;
  char ps[16];
  int fd = -1;

  hints.ai_socktype = SOCK_STREAM;
  snprintf(ps, sizeof(ps), "%d", port);
  if (getaddrinfo(host, ps, &hints, &res))
    return -1;
  for (ai = res; ai && fd < 0; ai = ai->ai_next) {
    struct pollfd pf;
    int err = 0;
    socklen_t el = sizeof(err);

    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
      continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS) {
      close(fd);
      fd = -1;
      continue;
    }
    pf.fd = fd;
    pf.events = POLLOUT;
    if (poll(&pf, 1, CONNECT_MS) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
      close(fd);
      fd = -1;
    } else {
      nodelay(fd);
    }
  }
  freeaddrinfo(res);
  return fd;
}

/* Splits "host[:port]" (or "[v6]:port") into host and port. */
static int split_hostport(const char *in, char *host, size_t hlen, int *port,
                          int dflt)
{
  const char *colon;
  size_t n;
  char *q;

  *port = dflt;
  if (in[0] == '[') {
    const char *end = strchr(in, ']');

    if (!end)
      return -1;
    n = (size_t)(end - in - 1);
    if (n >= hlen)
      return -1;
    memcpy(host, in + 1, n);
    host[n] = 0;
    if (end[1] == ':')
      *port = atoi(end + 2);
    return *port > 0 && *port < 65536 ? 0 : -1;
  }
  colon = strchr(in, ':');
  n = colon ? (size_t)(colon - in) : strlen(in);
  if (n == 0 || n >= hlen)
    return -1;
  memcpy(host, in, n);
  host[n] = 0;
  if (colon)
    *port = atoi(colon + 1);
  for (q = host; *q; q++)
    if (*q >= 'A' && *q <= 'Z')
      *q = (char)(*q - 'A' + 'a');
  return *port > 0 && *port < 65536 ? 0 : -1;
}

/* After an error answer: no more writing, drain until the client goes. */
static void refuse(struct conn *c)
{
  shutdown(c->cfd, SHUT_WR);
  c->draining = 1;
}

/* The grants for host:port, copied to out (at most MAX_KIDS). */
static int grants_for(const struct proxy *p, const char *host, int port,
                      struct proxy_grant *out)
{
  int i, n = 0;

  for (i = 0; i < p->ngrants && n < MAX_KIDS; i++)
    if (p->grants[i].port == port && !strcasecmp(p->grants[i].host, host))
      out[n++] = p->grants[i];
  return n;
}

/*
 * A CONNECT to a granted host: a child of P connects, answers 200 and
 * serves the connection (sandbox-tls.c), so that neither handshakes nor
 * transfers hold up P's loop. 0 when the child took it (the connection
 * is then closed here), -1 after an error answer.
 */
static int intercept(struct proxy *p, struct conn *c, const char *host,
                     int port)
{
  struct proxy_grant g[MAX_KIDS];
  int ng = grants_for(p, host, port, g), slot, ufd, rc;
  pid_t kid;

  for (slot = 0; slot < MAX_KIDS && p->kids[slot]; slot++)
    ;
  if (slot == MAX_KIDS) {
    answer(c->cfd, "503 Service Unavailable",
           "durin proxy: too many connections to granted hosts at once");
    return -1;
  }
  if (tls_ca_leaf(p->ca, host)) {
    answer(c->cfd, "502 Bad Gateway",
           "durin proxy: cannot make a certificate for this host");
    return -1;
  }
  kid = fork();
  if (kid < 0) {
    answer(c->cfd, "503 Service Unavailable", "durin proxy: cannot fork");
    return -1;
  }
  if (kid == 0) {
    int cfd = dup2(c->cfd, 3);

    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    /* Only the client, stdout and stderr (the command's output). */
    syscall(SYS_close_range, 4U, ~0U, 0U);
    fcntl(cfd, F_SETFL, fcntl(cfd, F_GETFL) & ~O_NONBLOCK);
    ufd = dial(host, port);
    if (ufd < 0) {
      answer(cfd, "502 Bad Gateway", "durin proxy: cannot connect upstream");
      fprintf(stderr, "durin-sandbox: egress to %s:%d: cannot connect\n", host,
              port);
      _exit(1);
    }
    dprintf(cfd, "HTTP/1.1 200 Connection established\r\n\r\n");
    rc = tls_intercept(p->ca, cfd, ufd, host, port, g, ng);
    _exit(rc);
  }
  p->kids[slot] = kid;
  return 0;
}

/* Reaps the intercepting children that are done. */
static void reap_kids(struct proxy *p)
{
  int i;

  for (i = 0; i < MAX_KIDS; i++)
    if (p->kids[i] && waitpid(p->kids[i], NULL, WNOHANG) == p->kids[i])
      p->kids[i] = 0;
}

/* The request head is complete: decide, connect, start relaying; -1 when
 * it was answered with an error instead; 1 when a child took the
 * connection over (close it here). */
static int start(struct proxy *p, struct conn *c)
{
  char method[16], target[2048], host[256], version[24], *eoh, *rest;
  int port, tunnel;

  c->req[c->reqlen] = 0;
  eoh = strstr(c->req, "\r\n\r\n");
  if (sscanf(c->req, "%15s %2047s", method, target) != 2) {
    answer(c->cfd, "400 Bad Request", "durin proxy: not an HTTP request");
    return -1;
  }
  tunnel = !strcmp(method, "CONNECT");
  if (tunnel) {
    if (split_hostport(target, host, sizeof(host), &port, 443)) {
      answer(c->cfd, "400 Bad Request", "durin proxy: CONNECT host:port");
      return -1;
    }
    rest = eoh + 4;
  } else {
    char *authority, *path;

    if (strncasecmp(target, "http://", 7)) {
      answer(c->cfd, "400 Bad Request",
             "durin proxy: use an absolute http:// URL, or CONNECT");
      return -1;
    }
    authority = target + 7;
    path = strchr(authority, '/');
    if (path)
      *path = 0;
    if (split_hostport(authority, host, sizeof(host), &port, 80)) {
      answer(c->cfd, "400 Bad Request", "durin proxy: bad host in URL");
      return -1;
    }
    if (path)
      *path = '/';
    /* Upstream gets the origin form, "GET /path HTTP/1.1". */
    if (sscanf(c->req, "%*s %*s %15s", version) != 1 ||
        strncmp(version, "HTTP/", 5)) {
      answer(c->cfd, "400 Bad Request", "durin proxy: no HTTP version");
      return -1;
    }
    strcat(version, "\r\n");
    rest = strchr(c->req, '\n') + 1;
  }
  if (!proxy_allowed(p->allow, p->nallow, host, port)) {
    fprintf(stderr,
            "durin-sandbox: egress to %s:%d refused: %s (the spec's "
            "sandbox.allow_hosts lists what may be reached)\n",
            host, port,
            is_ip(host) ? "raw IP addresses are never allowed" :
                          "not on the allowlist");
    answer(c->cfd, "403 Forbidden",
           "durin proxy: this host is not on the run's allowlist");
    return -1;
  }
  if (tunnel && p->ngrants) {
    struct proxy_grant g[MAX_KIDS];

    if (grants_for(p, host, port, g))
      return intercept(p, c, host, port) ? -1 : 1;
  }
  c->ufd = dial(host, port);
  if (c->ufd < 0) {
    answer(c->cfd, "502 Bad Gateway", "durin proxy: cannot connect upstream");
    return -1;
  }
  if (tunnel)
    dprintf(c->cfd, "HTTP/1.1 200 Connection established\r\n\r\n");
  else
    c->c2u.len = (size_t)snprintf(
        c->c2u.buf, BUF, "%s %s %s", method,
        strchr(target + 7, '/') ? strchr(target + 7, '/') : "/", version);
  /* Whatever followed the head (a body, TLS bytes) goes on upstream. */
  {
    size_t n = c->reqlen - (size_t)(rest - c->req);

    if (n && c->c2u.len + n <= BUF) {
      memcpy(c->c2u.buf + c->c2u.len, rest, n);
      c->c2u.len += n;
    }
  }
  c->relaying = 1;
  return 0;
}

int proxy_fill(struct proxy *p, struct pollfd *pf, int max)
{
  int n = 0, i;

  reap_kids(p);
  if (n < max) {
    pf[n].fd = p->lfd;
    pf[n++].events = POLLIN;
  }
  for (i = 0; i < MAX_CONNS && n + 2 <= max; i++) {
    struct conn *c = p->c[i];

    if (!c)
      continue;
    pf[n].fd = c->cfd;
    if (c->draining) {
      pf[n++].events = POLLIN;
      pf[n].fd = -1;
      pf[n++].events = 0;
      continue;
    }
    pf[n].events = (short)((c->c2u.len < BUF && !c->c2u.eof ? POLLIN : 0) |
                           (c->u2c.len ? POLLOUT : 0));
    n++;
    pf[n].fd = c->relaying ? c->ufd : -1;
    pf[n].events = (short)((c->u2c.len < BUF && !c->u2c.eof ? POLLIN : 0) |
                           (c->c2u.len ? POLLOUT : 0));
    n++;
  }
  return n;
}

/* Moves bytes: read into h from `from`, write h to `to`. -1: done. */
static int pump(int from, short rev_from, int to, short rev_to, struct half *h)
{
  if ((rev_from & (POLLIN | POLLHUP | POLLERR)) && h->len < BUF && !h->eof) {
    ssize_t r = read(from, h->buf + h->len, BUF - h->len);

    if (r > 0)
      h->len += (size_t)r;
    else if (r == 0 || (errno != EAGAIN && errno != EINTR))
      h->eof = 1;
  }
  if (to >= 0 && h->len && (rev_to & (POLLOUT | POLLERR | POLLHUP))) {
    ssize_t w = write(to, h->buf, h->len);

    if (w > 0) {
      memmove(h->buf, h->buf + w, h->len - (size_t)w);
      h->len -= (size_t)w;
    } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
      return -1;
    }
  }
  if (to >= 0 && h->eof && !h->len)
    shutdown(to, SHUT_WR);
  return 0;
}

void proxy_handle(struct proxy *p, const struct pollfd *pf, int n)
{
  int i, k = 1, fd;

  /* The same order as proxy_fill: the listener, then two per connection. */
  for (i = 0; i < MAX_CONNS && k + 1 < n; i++) {
    struct conn *c = p->c[i];
    short crev, urev;

    if (!c)
      continue;
    crev = pf[k].revents;
    urev = pf[k + 1].revents;
    k += 2;
    if (c->draining) {
      char sink[4096];

      /* Closing with unread input would reset the connection and could
       * take the answer with it; wait for the client to hang up. */
      if (crev & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t r = read(c->cfd, sink, sizeof(sink));

        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
          conn_close(p, i);
      }
      continue;
    }
    if (!c->relaying) {
      ssize_t r;

      if (!(crev & (POLLIN | POLLHUP | POLLERR)))
        continue;
      r = read(c->cfd, c->req + c->reqlen, REQ_MAX - c->reqlen);
      if (r <= 0) {
        if (r == 0 || (errno != EAGAIN && errno != EINTR))
          conn_close(p, i);
        continue;
      }
      c->reqlen += (size_t)r;
      c->req[c->reqlen] = 0;
      if (!strstr(c->req, "\r\n\r\n")) {
        if (c->reqlen >= REQ_MAX) {
          answer(c->cfd, "431 Request Header Fields Too Large",
                 "durin proxy: request head too large");
          refuse(c);
        }
        continue;
      }
      switch (start(p, c)) {
      case 0:
        break;
      case 1:
        conn_close(p, i);
        break;
      default:
        refuse(c);
      }
      continue;
    }
    if (pump(c->cfd, crev, c->ufd, urev, &c->c2u) ||
        pump(c->ufd, urev, c->cfd, crev, &c->u2c) ||
        (c->c2u.eof && c->u2c.eof && !c->c2u.len && !c->u2c.len))
      conn_close(p, i);
  }
  if (n < 1 || !(pf[0].revents & POLLIN))
    return;
  while ((fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >=
         0) {
    for (i = 0; i < MAX_CONNS && p->c[i]; i++)
      ;
    if (i == MAX_CONNS || !(p->c[i] = calloc(1, sizeof(struct conn)))) {
      close(fd);
      continue;
    }
    p->c[i]->cfd = fd;
    p->c[i]->ufd = -1;
    nodelay(fd);
  }
}
