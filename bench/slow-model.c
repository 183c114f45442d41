/*
 * A Chat Completions stand-in for load tests: answers every POST after a
 * fixed delay (default 1 s) with a short text completion, keeping the
 * connection open. One epoll loop, so it holds tens of thousands of
 * concurrent requests (tests/helpers/fake-model forks per connection and
 * checks every request; this one only counts).
 *
 *   slow-model --port-file F [--delay-ms MS] [--slow-ms MS]
 *
 * SIGUSR1 switches the delay to --slow-ms for good (bench/recovery runs
 * fast to build a long history, then slows down around a kill).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
  int fd;
  char buf[65536];
  size_t len;
  long long due; /* ms; 0 when no answer is pending */
  struct conn *qnext;
};

static long long now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char body[] =
    "{\"id\":\"c1\",\"object\":\"chat.completion\",\"created\":1,"
    "\"model\":\"slow-1\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
    "\"assistant\",\"content\":\"thinking\"},\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":10,"
    "\"total_tokens\":110}}";

/* A whole request is in: headers and Content-Length bytes of body. */
static int request_complete(struct conn *c, size_t *used)
{
  char *end, *cl;
  size_t hdr, n = 0;

  c->buf[c->len] = '\0';
  end = strstr(c->buf, "\r\n\r\n");
  if (!end)
    return 0;
  hdr = (size_t)(end - c->buf) + 4;
  cl = strcasestr(c->buf, "content-length:");
  if (cl && cl < end)
    n = strtoul(cl + 15, NULL, 10);
  if (c->len < hdr + n)
    return 0;
  *used = hdr + n;
  return 1;
}

static volatile sig_atomic_t slow_now;

static void on_usr1(int sig)
{
  (void)sig;
  slow_now = 1;
}

int main(int argc, char **argv)
{
  struct conn *head = NULL, *tail = NULL;
  const char *port_file = NULL;
  long long delay = 1000, slow = 1000, served = 0;
  struct sockaddr_in a;
  struct rlimit rl;
  socklen_t alen = sizeof(a);
  int lfd, ep, i;
  FILE *f;

  for (i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port-file"))
      port_file = argv[i + 1];
    else if (!strcmp(argv[i], "--delay-ms"))
      delay = atoll(argv[i + 1]);
    else if (!strcmp(argv[i], "--slow-ms"))
      slow = atoll(argv[i + 1]);
  }
  signal(SIGUSR1, on_usr1);
  if (!port_file) {
    fprintf(stderr, "usage: slow-model --port-file F [--delay-ms MS]\n");
    return 64;
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 4096)) {
    perror("slow-model: listen");
    return 1;
  }
  getsockname(lfd, (struct sockaddr *)&a, &alen);
  f = fopen(port_file, "w");
  fprintf(f, "%d\n", ntohs(a.sin_port));
  fclose(f);
  ep = epoll_create1(0);
  {
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  }
  for (;;) {
    struct epoll_event evs[256];
    long long now = now_ms();
    int n, timeout = head ? (int)(head->due > now ? head->due - now : 0) : 1000;

    n = epoll_wait(ep, evs, 256, timeout);
    if (slow_now)
      delay = slow;
    for (i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      size_t used;
      ssize_t r;

      if (!c) {
        int fd;

        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          struct epoll_event ev = { .events = EPOLLIN };

          c = calloc(1, sizeof(*c));
          c->fd = fd;
          ev.data.ptr = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      r = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
      if (r <= 0) {
        if (r < 0 && errno == EAGAIN)
          continue;
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        if (c->due) {
          c->fd = -1 - c->fd; /* answered later into nothing: skip */
          continue;
        }
        close(c->fd);
        free(c);
        continue;
      }
      c->len += (size_t)r;
      if (!c->due && request_complete(c, &used)) {
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
        c->due = now_ms() + delay;
        c->qnext = NULL;
        if (tail)
          tail->qnext = c;
        else
          head = c;
        tail = c;
      }
    }
    now = now_ms();
    while (head && head->due <= now) {
      struct conn *c = head;
      char out[1024];
      int len;

      head = c->qnext;
      if (!head)
        tail = NULL;
      c->due = 0;
      if (c->fd < 0) {
        close(-1 - c->fd);
        free(c);
        continue;
      }
      len = snprintf(out, sizeof(out),
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     sizeof(body) - 1, body);
      if (write(c->fd, out, (size_t)len) < 0) {
        /* the client went away; epoll reports it */
      }
      served++;
    }
  }
  return 0;
}
