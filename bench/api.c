/*
 * bench/api: the HTTP API of `durin serve` under load.
 *
 *   create   N POST /v1/runs with an inline spec from C clients at once,
 *            each on one kept-alive connection (libcurl multi): latency
 *            per request (p50, p99, max) and runs created per second.
 *            Each run has a not_before_ms a year ahead, so the embedded
 *            worker never claims one: what is measured is the API and the
 *            store's write path (the spec parsed, the run's workspace
 *            made, its row written in one transaction). By default
 *            (--worker full) the serve runs with --max-runs 1 and that
 *            slot is held by a run whose model never answers, so its
 *            worker does not look for work as each create wakes it; with
 *            --worker idle it does, and each look reads every queued run
 *            (see the README's figures).
 *   streams  S clients (raw sockets on epoll) on GET
 *            /v1/runs/{id}/events/stream of R runs, which start once every
 *            client is connected (the serve runs with --max-runs R, its
 *            slots held the same way until then). Per event and client,
 *            commit to client is the time this process reads it
 *            (CLOCK_REALTIME) minus the event's ts_ms, stamped by the
 *            worker before its commit (so the commit itself is in it, and
 *            ts_ms being whole ms adds 0-1 ms). Events come as fast as the
 *            worker makes them (K steps of update_plan from the script
 *            provider, 3 events a step) or, with --pace-ms D, one step per
 *            model call of D ms (bench/slow-model, 2 events a step), as a
 *            live agent makes them. Only events stamped after the last
 *            client connected count (there should be none before).
 *
 *   api BUILD_DIR [--store URL] [--only create|streams]
 *       [--creates N] [--clients C] [--warmup W]
 *       [--streams S] [--stream-runs R] [--steps K] [--pace-ms D]
 *       [--worker full|idle] [--http-threads T] [--keep]
 *
 * BUILD_DIR holds durin and bench/slow-model. The store is a fresh SQLite
 * file in a temporary directory, or URL (a PostgreSQL database the caller
 * made empty; the runs' workspaces go to the temporary directory, which
 * --keep leaves in place). Streams run first, on a serve of their own. The
 * serve runs with --api-rate 0: its default limit of 50 requests a second
 * per token would be all a create bench measured. Client and server share
 * the machine's cores; each figure line ends with the load average.
 * Failed requests and clients that missed events are counted in the
 * figure lines; the exit status is 1 only when there was nothing to
 * measure (a serve that did not start, a run that could not be made).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "durin/util.h"

/* ---- clocks, figures, processes ---- */

static double mono_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Wall-clock ms, the clock of an event's ts_ms. */
static double real_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_float(const void *a, const void *b)
{
  float x = *(const float *)a, y = *(const float *)b;

  return x < y ? -1 : x > y;
}

/* The q-quantile of v[0..n) (sorted). */
static double quantile(const float *v, size_t n, double q)
{
  size_t i = (size_t)(q * (double)(n - 1) + 0.5);

  return n ? v[i < n ? i : n - 1] : 0;
}

static const char *load_avg(void)
{
  static char s[64];
  FILE *f = fopen("/proc/loadavg", "r");
  double a = 0, b = 0, c = 0;

  if (f) {
    if (fscanf(f, "%lf %lf %lf", &a, &b, &c) != 3)
      a = b = c = 0;
    fclose(f);
  }
  snprintf(s, sizeof(s), "load %.2f %.2f %.2f", a, b, c);
  return s;
}

/* CPU time (user + system) of process pid in ms, from /proc. */
static double cpu_ms(pid_t pid)
{
  char path[64], buf[1024], *p;
  unsigned long long ut = 0, st = 0;
  FILE *f;

  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  if (!(f = fopen(path, "r")))
    return 0;
  p = fgets(buf, sizeof(buf), f);
  fclose(f);
  /* Fields after the command name, which may hold spaces: state is 3rd,
   * utime the 14th and stime the 15th. */
  if (!p || !(p = strrchr(buf, ')')) ||
      sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
             &ut, &st) != 2)
    return 0;
  return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

/* CPU time of this process in ms. */
static double self_cpu_ms(void)
{
  struct rusage ru;

  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* Resident memory of pid in MB. */
static double rss_mb(pid_t pid)
{
  char path[64], line[256];
  long kb = 0;
  FILE *f;

  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  if (!(f = fopen(path, "r")))
    return 0;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "VmRSS: %ld", &kb) == 1)
      break;
  fclose(f);
  return (double)kb / 1024.0;
}

/* Starts argv with stdout and stderr to log (or stdout to a pipe whose
 * read end goes to *out_fd, stderr to /dev/null, when log is NULL); it
 * dies with this process. */
static pid_t spawn(char *const argv[], const char *log, int *out_fd)
{
  int pfd[2] = { -1, -1 }, fd;
  pid_t p;

  if (!log && pipe(pfd))
    return -1;
  p = fork();
  if (p == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    fd = log ? open(log, O_WRONLY | O_CREAT | O_APPEND, 0644) : pfd[1];
    if (fd < 0)
      _exit(127);
    dup2(fd, 1);
    if (!log)
      fd = open("/dev/null", O_WRONLY);
    dup2(fd, 2);
    execv(argv[0], argv);
    _exit(127);
  }
  if (!log) {
    close(pfd[1]);
    if (p < 0)
      close(pfd[0]);
    else
      *out_fd = pfd[0];
  }
  return p;
}

/* SIGTERM, then SIGKILL if it lingers; reaps it. */
static void stop_child(pid_t p)
{
  double until = mono_ms() + 15000;
  int st;

  if (p <= 0)
    return;
  kill(p, SIGTERM);
  while (waitpid(p, &st, WNOHANG) == 0) {
    if (mono_ms() > until) {
      kill(p, SIGKILL);
      waitpid(p, &st, 0);
      return;
    }
    usleep(10000);
  }
}

/* ---- the server under test ---- */

struct bench {
  char build[PATH_MAX];
  char durin[PATH_MAX + 16];
  char tmp[64];
  char store[PATH_MAX + 64];
  const char *kind; /* "sqlite" or "postgres", in figure lines */
  char base[64];    /* http://127.0.0.1:PORT */
  char token[128];
  char auth[160]; /* "Authorization: Bearer ..." */
  pid_t serve;
  char serve_log[PATH_MAX];
  int serves;
  pid_t model;
  int model_port;
  int hole; /* a listening socket nobody accepts on: a model that never
               answers */
  int http_threads;
};

static void print_log_tail(const char *path)
{
  char cmd[PATH_MAX + 32];

  fprintf(stderr, "api: the last lines of %s:\n", path);
  snprintf(cmd, sizeof(cmd), "tail -n 20 '%s' >&2", path);
  if (system(cmd))
    return;
}

/* `durin token create bench --role admin`: the token it prints. */
static int make_token(struct bench *b)
{
  char *argv[] = { b->durin, "--store", b->store,        "token", "create",
                   "bench",  "--role",  (char *)"admin", NULL };
  char out[512] = "";
  size_t len = 0;
  ssize_t k;
  int fd = -1, st;
  pid_t p = spawn(argv, NULL, &fd);

  if (p < 0)
    return -1;
  while ((k = read(fd, out + len, sizeof(out) - 1 - len)) > 0)
    len += (size_t)k;
  close(fd);
  out[len] = 0;
  waitpid(p, &st, 0);
  out[strcspn(out, "\r\n")] = 0;
  if (!WIFEXITED(st) || WEXITSTATUS(st) || !*out ||
      strlen(out) >= sizeof(b->token)) {
    fprintf(stderr, "api: durin token create failed\n");
    return -1;
  }
  snprintf(b->token, sizeof(b->token), "%s", out);
  snprintf(b->auth, sizeof(b->auth), "Authorization: Bearer %s", b->token);
  return 0;
}

/* durin serve on a port of the kernel's choice; the port from the line
 * "serving the API on http://127.0.0.1:PORT/v1" in its log. */
static int start_serve(struct bench *b, int max_runs)
{
  char threads[16], runs[16];
  char *argv[] = { b->durin,     "--store",    b->store,
                   "serve",      "--listen",   "127.0.0.1:0",
                   "--api-rate", "0",          "--http-threads",
                   threads,      "--max-runs", runs,
                   NULL };
  double until = mono_ms() + 30000;
  int port = 0;

  snprintf(threads, sizeof(threads), "%d", b->http_threads);
  snprintf(runs, sizeof(runs), "%d", max_runs);
  if (!max_runs)
    argv[10] = NULL; /* the serve's default */
  snprintf(b->serve_log, sizeof(b->serve_log), "%s/serve.%d.log", b->tmp,
           ++b->serves);
  b->serve = spawn(argv, b->serve_log, NULL);
  if (b->serve < 0) {
    perror("api: fork");
    return -1;
  }
  while (!port && mono_ms() < until) {
    char line[1024];
    FILE *f = fopen(b->serve_log, "r");
    int st;

    while (f && fgets(line, sizeof(line), f)) {
      char *s = strstr(line, "serving the API on http://127.0.0.1:");

      if (s)
        port = atoi(s + strlen("serving the API on http://127.0.0.1:"));
    }
    if (f)
      fclose(f);
    if (!port && waitpid(b->serve, &st, WNOHANG) == b->serve) {
      b->serve = 0;
      fprintf(stderr, "api: durin serve exited at start\n");
      print_log_tail(b->serve_log);
      return -1;
    }
    if (!port)
      usleep(20000);
  }
  if (!port) {
    fprintf(stderr, "api: durin serve did not say where it listens\n");
    print_log_tail(b->serve_log);
    return -1;
  }
  snprintf(b->base, sizeof(b->base), "http://127.0.0.1:%d", port);
  return 0;
}

/* bench/slow-model answering each call after ms. */
static int start_model(struct bench *b, int ms)
{
  char exe[PATH_MAX + 32], pf[PATH_MAX], delay[16], log[PATH_MAX];
  char *argv[] = { exe, "--port-file", pf, "--delay-ms", delay, NULL };
  double until = mono_ms() + 10000;
  FILE *f;

  snprintf(exe, sizeof(exe), "%s/bench/slow-model", b->build);
  snprintf(pf, sizeof(pf), "%s/model.port", b->tmp);
  snprintf(log, sizeof(log), "%s/model.log", b->tmp);
  snprintf(delay, sizeof(delay), "%d", ms);
  if ((b->model = spawn(argv, log, NULL)) < 0)
    return -1;
  while (!b->model_port && mono_ms() < until) {
    if ((f = fopen(pf, "r"))) {
      if (fscanf(f, "%d", &b->model_port) != 1)
        b->model_port = 0;
      fclose(f);
    }
    if (!b->model_port)
      usleep(10000);
  }
  if (!b->model_port)
    fprintf(stderr, "api: %s did not start\n", exe);
  return b->model_port ? 0 : -1;
}

/* ---- one blocking request (setting up and checking) ---- */

struct sink {
  char *buf;
  size_t len, cap;
};

static size_t to_sink(char *p, size_t size, size_t n, void *arg)
{
  struct sink *s = arg;
  size_t k = size * n;

  if (s && s->len + k < s->cap) {
    memcpy(s->buf + s->len, p, k);
    s->len += k;
    s->buf[s->len] = 0;
  }
  return k;
}

/* METHOD base+path with body (or none); the status, the answer in out. */
static long request(struct bench *b, const char *method, const char *path,
                    const char *body, char *out, size_t cap)
{
  struct sink s = { out, 0, cap };
  struct curl_slist *h = NULL;
  char url[512];
  long code = 0;
  CURL *c = curl_easy_init();

  if (!c)
    return 0;
  out[0] = 0;
  snprintf(url, sizeof(url), "%s%s", b->base, path);
  h = curl_slist_append(h, b->auth);
  h = curl_slist_append(h, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  if (body)
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_sink);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  if (curl_easy_perform(c) == CURLE_OK)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(c);
  curl_slist_free_all(h);
  return code;
}

/* The integer after "key": in a JSON text, or -1. */
static long long json_int(const char *text, const char *key)
{
  char pat[64];
  const char *p;

  snprintf(pat, sizeof(pat), "\"%s\":", key);
  p = strstr(text, pat);
  return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

/*
 * Fills the worker's n slots (--max-runs n) with runs whose model never
 * answers: a socket that listens and never accepts, so each call waits in
 * its backlog. A full worker does not look for work when a create wakes
 * it, so the create figures hold the API and the store's write path only;
 * and runs made meanwhile wait, ready, until release_worker().
 */
static int hold_worker(struct bench *b, int n)
{
  struct sockaddr_in sa;
  socklen_t sl = sizeof(sa);
  char body[512], ans[8192], (*path)[96] = calloc((size_t)n, sizeof(*path));
  double until = mono_ms() + 15000;
  const char *id;
  long code;
  int i, running = 0;

  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  b->hole = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (!path || b->hole < 0 ||
      bind(b->hole, (struct sockaddr *)&sa, sizeof(sa)) ||
      listen(b->hole, 64) ||
      getsockname(b->hole, (struct sockaddr *)&sa, &sl)) {
    perror("api: a socket for the model that never answers");
    goto out;
  }
  snprintf(body, sizeof(body),
           "{\"spec\":{\"name\":\"bench-hold\",\"goal\":\"hold a slot of "
           "the worker\",\"tools\":[\"finish\"],\"model\":{"
           "\"provider\":\"openai\",\"name\":\"hold\",\"base_url\":"
           "\"http://127.0.0.1:%d/v1\",\"timeout_s\":3600,\"max_retries\":"
           "0}}}",
           ntohs(sa.sin_port));
  for (i = 0; i < n; i++) {
    code = request(b, "POST", "/v1/runs", body, ans, sizeof(ans));
    if (code != 201 || !(id = strstr(ans, "\"id\":\""))) {
      fprintf(stderr, "api: creating a run to hold the worker: HTTP %ld %s\n",
              code, ans);
      goto out;
    }
    snprintf(path[i], sizeof(path[i]), "/v1/runs/%.*s",
             (int)strcspn(id + 6, "\""), id + 6);
  }
  /* Every slot taken: each held run running. */
  for (i = 0; i < n && mono_ms() < until;) {
    if (request(b, "GET", path[i], NULL, ans, sizeof(ans)) == 200 &&
        strstr(ans, "\"status\":\"running\""))
      i++;
    else
      usleep(20000);
  }
  running = i;
  if (running < n)
    fprintf(stderr, "api: the worker did not take the runs that hold it\n");
out:
  free(path);
  return running == n ? 0 : -1;
}

/* The held model calls fail at once, their runs end: the slots are free. */
static void release_worker(struct bench *b)
{
  if (b->hole >= 0)
    close(b->hole);
  b->hole = -1;
}

/* ---- create ---- */

/* A run the worker leaves alone for a year. */
static char *create_body(void)
{
  char *s = malloc(1024);
  long long nb = (long long)real_ms() + 365LL * 24 * 3600 * 1000;

  if (s)
    snprintf(s, 1024,
             "{\"spec\":{\"name\":\"bench-api\",\"goal\":\"measure run "
             "creation\",\"tools\":[\"finish\"],\"model\":{\"provider\":"
             "\"script\",\"turns\":[{\"tool_calls\":[{\"name\":\"finish\","
             "\"arguments\":{\"summary\":\"done\"}}]}]}},\"not_before_ms\":"
             "%lld}",
             nb);
  return s;
}

struct creator {
  CURL *h;
  double t0;
  char err[CURL_ERROR_SIZE];
};

static int bench_create(struct bench *b, int n, int nc, int warm,
                        const char *worker)
{
  CURLM *m = curl_multi_init();
  struct curl_slist *hdr = NULL;
  struct creator *cr = calloc((size_t)nc, sizeof(*cr));
  float *lat = calloc((size_t)n, sizeof(*lat));
  char *body = create_body(), url[128], first_err[300] = "";
  int total = n + warm, issued = 0, done = 0, bad = 0, running, i, rc = 1;
  long conns = 0;
  double t_start = 0, t_end = 0, cpu0 = 0, cpu1;

  if (!m || !cr || !lat || !body)
    goto out;
  snprintf(url, sizeof(url), "%s/v1/runs", b->base);
  hdr = curl_slist_append(hdr, b->auth);
  hdr = curl_slist_append(hdr, "Content-Type: application/json");
  hdr = curl_slist_append(hdr, "Expect:");
  curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)nc * 2);
  for (i = 0; i < nc; i++) {
    CURL *h = cr[i].h = curl_easy_init();

    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, to_sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(h, CURLOPT_PRIVATE, &cr[i]);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cr[i].err);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
  }
  for (i = 0; i < nc && issued < total; i++, issued++) {
    cr[i].t0 = mono_ms();
    curl_multi_add_handle(m, cr[i].h);
  }
  while (done < total) {
    CURLMsg *msg;
    int left;

    curl_multi_perform(m, &running);
    while ((msg = curl_multi_info_read(m, &left))) {
      struct creator *c;
      long code = 0, nconn = 0;
      double now = mono_ms();

      if (msg->msg != CURLMSG_DONE)
        continue;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
      curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
      curl_easy_getinfo(c->h, CURLINFO_NUM_CONNECTS, &nconn);
      if (msg->data.result != CURLE_OK || code != 201) {
        if (!bad++)
          snprintf(first_err, sizeof(first_err), "%s (HTTP %ld)",
                   msg->data.result != CURLE_OK ? c->err : "unexpected status",
                   code);
      }
      /* The measured window opens when the warm-up requests are done. */
      if (done >= warm) {
        lat[done - warm] = (float)(now - c->t0);
        conns += nconn;
      }
      if (++done == warm) {
        t_start = now;
        cpu0 = cpu_ms(b->serve);
      }
      t_end = now;
      curl_multi_remove_handle(m, c->h);
      if (issued < total) {
        issued++;
        c->t0 = mono_ms();
        curl_multi_add_handle(m, c->h);
      }
    }
    if (done < total)
      curl_multi_poll(m, NULL, 0, 100, NULL);
  }
  cpu1 = cpu_ms(b->serve);
  qsort(lat, (size_t)n, sizeof(*lat), cmp_float);
  printf("create-run %s, worker %s: %d runs from %d clients (%ld new "
         "connections after %d warm-up requests): %.0f runs/s; p50 %.2f ms, "
         "p99 %.2f ms, max %.2f ms; serve CPU %.0f us/run; %d failed (%s)\n",
         b->kind, worker, n, nc, conns, warm, n * 1000.0 / (t_end - t_start),
         quantile(lat, (size_t)n, 0.50), quantile(lat, (size_t)n, 0.99),
         (double)lat[n - 1], (cpu1 - cpu0) * 1000.0 / n, bad, load_avg());
  if (bad)
    printf("  first failure: %s\n", first_err);
  rc = 0;
out:
  for (i = 0; cr && i < nc; i++)
    if (cr[i].h) {
      curl_multi_remove_handle(m, cr[i].h);
      curl_easy_cleanup(cr[i].h);
    }
  if (m)
    curl_multi_cleanup(m);
  curl_slist_free_all(hdr);
  free(cr);
  free(lat);
  free(body);
  return rc;
}

/* ---- streams ---- */

/* Where a client's bytes are in the HTTP/1.1 answer. */
enum wire {
  W_CONNECTING,
  W_HEADERS,
  W_CHUNK_SIZE, /* the hex line before a chunk */
  W_CHUNK_DATA,
  W_CHUNK_END, /* the CRLF after a chunk */
  W_DONE,
};

struct sse_client {
  int fd;
  int run;
  enum wire wire;
  char head[4096];
  size_t hlen;
  char size_line[24];
  size_t slen;
  size_t chunk_left, crlf_left;
  int chunked;
  char *line; /* the SSE line being read */
  size_t llen, lcap;
  int end_event; /* "event: end" seen in the event being read */
  long long first_seq, last_seq;
  int gaps, unparsed;
  int connected; /* headers in */
  int ended;     /* "event: end" dispatched */
  int failed;
};

struct streams {
  struct bench *b;
  struct sse_client *c;
  int n;
  char (*run_id)[32];
  int nruns;
  double gate_ms; /* realtime ms after which events count */
  float *lat;
  size_t nlat, cap;
  long long early; /* deliveries of events stamped before the gate */
};

static void lat_push(struct streams *s, float v)
{
  if (s->nlat == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 1 << 16;
    float *n = realloc(s->lat, cap * sizeof(*n));

    if (!n)
      return;
    s->lat = n;
    s->cap = cap;
  }
  s->lat[s->nlat++] = v;
}

/* One "data:" line of an event: {"seq":N,"ts_ms":T,...}. */
static void on_data(struct streams *s, struct sse_client *c, const char *d,
                    double recv_ms)
{
  static const char seq_p[] = "{\"seq\":", ts_p[] = ",\"ts_ms\":";
  char *end;
  long long seq, ts;

  if (strncmp(d, seq_p, sizeof(seq_p) - 1)) {
    c->unparsed++;
    return;
  }
  seq = strtoll(d + sizeof(seq_p) - 1, &end, 10);
  if (strncmp(end, ts_p, sizeof(ts_p) - 1)) {
    c->unparsed++;
    return;
  }
  ts = strtoll(end + sizeof(ts_p) - 1, NULL, 10);
  if (!c->first_seq)
    c->first_seq = seq;
  else if (seq != c->last_seq + 1)
    c->gaps++;
  c->last_seq = seq;
  if ((double)ts >= s->gate_ms)
    lat_push(s, (float)(recv_ms - (double)ts));
  else
    s->early++;
}

static void on_line(struct streams *s, struct sse_client *c, char *line,
                    double recv_ms)
{
  if (!*line) {
    if (c->end_event)
      c->ended = 1;
    c->end_event = 0;
  } else if (!strcmp(line, "event: end")) {
    c->end_event = 1;
  } else if (!strncmp(line, "data: ", 6) && !c->end_event) {
    on_data(s, c, line + 6, recv_ms);
  }
}

/* SSE bytes of the body: whole lines to on_line. */
static void on_body(struct streams *s, struct sse_client *c, const char *p,
                    size_t n, double recv_ms)
{
  size_t i;

  for (i = 0; i < n; i++) {
    if (p[i] == '\n') {
      if (c->llen && c->line[c->llen - 1] == '\r')
        c->llen--;
      if (c->lcap)
        c->line[c->llen] = 0;
      on_line(s, c, c->lcap ? c->line : (char *)"", recv_ms);
      c->llen = 0;
      continue;
    }
    if (c->llen + 2 > c->lcap) {
      size_t cap = c->lcap ? c->lcap * 2 : 1024;
      char *nl = cap <= (1 << 20) ? realloc(c->line, cap) : NULL;

      if (!nl) {
        c->failed = 1;
        return;
      }
      c->line = nl;
      c->lcap = cap;
    }
    c->line[c->llen++] = p[i];
  }
}

/* Bytes off the socket: the status line and headers, then the chunked
 * (or, if the server says so, plain) body. */
static void on_bytes(struct streams *s, struct sse_client *c, const char *p,
                     size_t n, double recv_ms)
{
  while (n && !c->failed && c->wire != W_DONE) {
    size_t k;

    switch (c->wire) {
    case W_HEADERS: {
      char *e;

      k = n < sizeof(c->head) - 1 - c->hlen ? n : sizeof(c->head) - 1 - c->hlen;
      memcpy(c->head + c->hlen, p, k);
      c->head[c->hlen + k] = 0;
      if (!(e = strstr(c->head, "\r\n\r\n"))) {
        c->hlen += k;
        if (c->hlen == sizeof(c->head) - 1)
          c->failed = 1;
        p += k, n -= k;
        break;
      }
      /* What follows the headers is body: not yet consumed. */
      k = (size_t)(e + 4 - c->head) - c->hlen;
      p += k, n -= k;
      if (strncmp(c->head, "HTTP/1.1 200", 12)) {
        fprintf(stderr, "api: stream answered: %.*s\n",
                (int)strcspn(c->head, "\r"), c->head);
        c->failed = 1;
        break;
      }
      c->chunked = strcasestr(c->head, "transfer-encoding: chunked") != NULL;
      c->connected = 1;
      c->wire = c->chunked ? W_CHUNK_SIZE : W_CHUNK_DATA;
      c->chunk_left = c->chunked ? 0 : SIZE_MAX;
      break;
    }
    case W_CHUNK_SIZE:
      if (*p == '\n') {
        c->size_line[c->slen] = 0;
        c->chunk_left = strtoul(c->size_line, NULL, 16);
        c->slen = 0;
        c->wire = c->chunk_left ? W_CHUNK_DATA : W_DONE;
        c->crlf_left = 2;
      } else if (c->slen < sizeof(c->size_line) - 1) {
        c->size_line[c->slen++] = *p;
      }
      p++, n--;
      break;
    case W_CHUNK_DATA:
      k = n < c->chunk_left ? n : c->chunk_left;
      on_body(s, c, p, k, recv_ms);
      p += k, n -= k;
      c->chunk_left -= k;
      if (!c->chunk_left)
        c->wire = W_CHUNK_END;
      break;
    case W_CHUNK_END:
      p++, n--;
      if (!--c->crlf_left)
        c->wire = W_CHUNK_SIZE;
      break;
    case W_CONNECTING:
    case W_DONE:
    default:
      n = 0;
      break;
    }
  }
}

static int sse_connect(struct streams *s, int ep, struct sse_client *c,
                       int port)
{
  struct sockaddr_in sa;
  struct epoll_event ev;
  int one = 1;

  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0)
    return -1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) &&
      errno != EINPROGRESS)
    return -1;
  c->wire = W_CONNECTING;
  ev.events = EPOLLOUT;
  ev.data.ptr = c;
  (void)s;
  return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* Writable after connect: the request, then reading. */
static void sse_send(struct streams *s, int ep, struct sse_client *c)
{
  struct epoll_event ev;
  char req[512];
  int err = 0, len;
  socklen_t el = sizeof(err);

  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
    fprintf(stderr, "api: stream client cannot connect: %s\n", strerror(err));
    c->failed = 1;
    return;
  }
  len = snprintf(req, sizeof(req),
                 "GET /v1/runs/%s/events/stream HTTP/1.1\r\nHost: "
                 "127.0.0.1\r\n%s\r\nAccept: text/event-stream\r\n\r\n",
                 s->run_id[c->run], s->b->auth);
  if (send(c->fd, req, (size_t)len, MSG_NOSIGNAL) != len) {
    c->failed = 1;
    return;
  }
  c->wire = W_HEADERS;
  ev.events = EPOLLIN;
  ev.data.ptr = c;
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* The spec of a run that makes events: K steps as fast as the worker
 * goes, or K model calls of the paced model. */
static char *stream_body(struct bench *b, int steps, int pace)
{
  char *s = malloc(2048);

  if (!s)
    return NULL;
  if (pace)
    snprintf(s, 2048,
             "{\"spec\":{\"name\":\"bench-stream\",\"goal\":\"make events\","
             "\"tools\":[\"finish\"],\"budget\":{\"steps\":%d},\"model\":{"
             "\"provider\":\"openai\",\"name\":\"slow-1\",\"base_url\":"
             "\"http://127.0.0.1:%d/v1\"}}}",
             steps, b->model_port);
  else
    snprintf(s, 2048,
             "{\"spec\":{\"name\":\"bench-stream\",\"goal\":\"make events\","
             "\"tools\":[\"update_plan\",\"finish\"],\"budget\":{\"steps\":0},"
             "\"model\":{\"provider\":\"script\",\"turns\":[{\"repeat\":%d,"
             "\"tool_calls\":[{\"name\":\"update_plan\",\"arguments\":{"
             "\"plan\":[{\"step\":\"measure\",\"status\":\"in_progress\"}]}}]},"
             "{\"tool_calls\":[{\"name\":\"finish\",\"arguments\":{"
             "\"summary\":\"done\"}}]}]}}}",
             steps);
  return s;
}

static int bench_streams(struct bench *b, int nclients, int nruns, int steps,
                         int pace)
{
  struct streams s;
  struct epoll_event *evs = NULL;
  char ans[8192], *body = NULL, *buf = NULL;
  int ep = -1, i, port = atoi(strrchr(b->base, ':') + 1), rc = 1;
  int settled = 0, finished = 0, complete = 0, failed = 0;
  long long gaps = 0, unparsed = 0, *last_seq = NULL, events = 0;
  long long first_ts = LLONG_MAX, last_ts = 0;
  double t_conn0, t_conn = 0, cpu0 = 0, cpu1, rss = 0, until;
  double mine0 = 0, mine1;

  memset(&s, 0, sizeof(s));
  s.b = b;
  s.gate_ms = 1e18; /* nothing counts before every client is in */
  s.n = nclients;
  s.nruns = nruns;
  s.c = calloc((size_t)nclients, sizeof(*s.c));
  s.run_id = calloc((size_t)nruns, sizeof(*s.run_id));
  last_seq = calloc((size_t)nruns, sizeof(*last_seq));
  evs = calloc(1024, sizeof(*evs));
  buf = malloc(1 << 16);
  if (!s.c || !s.run_id || !last_seq || !evs || !buf)
    goto out;
  if (pace && !b->model && start_model(b, pace))
    goto out;
  /* The runs wait, ready, behind held slots until every client is in. */
  if (hold_worker(b, nruns))
    goto out;
  body = stream_body(b, steps, pace);
  for (i = 0; i < nruns; i++) {
    long code = request(b, "POST", "/v1/runs", body, ans, sizeof(ans));
    char *id = strstr(ans, "\"id\":\"");

    if (code != 201 || !id) {
      fprintf(stderr, "api: creating a stream run: HTTP %ld %s\n", code, ans);
      goto out;
    }
    snprintf(s.run_id[i], sizeof(s.run_id[i]), "%.*s",
             (int)strcspn(id + 6, "\""), id + 6);
  }
  if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
    goto out;
  t_conn0 = mono_ms();
  for (i = 0; i < nclients; i++) {
    s.c[i].run = i % nruns;
    if (sse_connect(&s, ep, &s.c[i], port)) {
      fprintf(stderr, "api: stream client %d: %s\n", i, strerror(errno));
      goto out;
    }
  }
  until = mono_ms() + 60000 + (double)steps * (pace + 50);
  while (finished < nclients && mono_ms() < until) {
    int n = epoll_wait(ep, evs, 1024, 1000);

    for (i = 0; i < n; i++) {
      struct sse_client *c = evs[i].data.ptr;
      ssize_t k;
      int was = c->connected;

      if (c->wire == W_CONNECTING) {
        sse_send(&s, ep, c);
      } else {
        while ((k = read(c->fd, buf, 1 << 16)) > 0)
          on_bytes(&s, c, buf, (size_t)k, real_ms());
        if (k == 0 || (k < 0 && errno != EAGAIN))
          c->failed = c->failed || !c->ended;
      }
      /* Every client in (or failed on the way): events count from now. */
      if ((!was && c->connected) || (!c->connected && c->failed))
        if (++settled == nclients) {
          t_conn = mono_ms() - t_conn0;
          s.gate_ms = real_ms();
          rss = rss_mb(b->serve);
          cpu0 = cpu_ms(b->serve);
          mine0 = self_cpu_ms();
          release_worker(b);
        }
      if ((c->ended || c->failed) && c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        finished++;
      }
    }
  }
  cpu1 = cpu_ms(b->serve);
  mine1 = self_cpu_ms();
  for (i = 0; i < nruns; i++) {
    char path[96];

    snprintf(path, sizeof(path), "/v1/runs/%s", s.run_id[i]);
    if (request(b, "GET", path, NULL, ans, sizeof(ans)) == 200)
      last_seq[i] = json_int(ans, "last_seq");
    events += last_seq[i];
  }
  for (i = 0; i < nclients; i++) {
    struct sse_client *c = &s.c[i];

    gaps += c->gaps;
    unparsed += c->unparsed;
    failed += c->failed;
    if (c->ended && !c->failed && !c->gaps && c->first_seq == 1 &&
        c->last_seq == last_seq[c->run])
      complete++;
  }
  /* The runs' pace, from their own stamps (the first client of each). */
  for (i = 0; i < nruns; i++) {
    char path[128];
    long long t;

    snprintf(path, sizeof(path), "/v1/runs/%s/events?after=0&limit=1",
             s.run_id[i]);
    if (request(b, "GET", path, NULL, ans, sizeof(ans)) == 200 &&
        (t = json_int(ans, "ts_ms")) > 0 && t < first_ts)
      first_ts = t;
    snprintf(path, sizeof(path), "/v1/runs/%s/events?after=%lld&limit=1",
             s.run_id[i], last_seq[i] - 1);
    if (request(b, "GET", path, NULL, ans, sizeof(ans)) == 200 &&
        (t = json_int(ans, "ts_ms")) > last_ts)
      last_ts = t;
  }
  qsort(s.lat, s.nlat, sizeof(*s.lat), cmp_float);
  printf("streams %s: %d clients on %d run(s) of %d steps (%s): %lld events "
         "in %.2f s (%.0f/s), every client connected in %.0f ms; "
         "commit-to-client p50 %.1f ms, p99 %.1f ms, max %.1f ms over %zu "
         "deliveries (%lld before the last client came, not counted); "
         "%d/%d clients got every event; serve RSS %.0f MB with the clients "
         "in, CPU %.1f us/delivery (this client's %.1f) (%s)\n",
         b->kind, nclients, nruns, steps,
         pace ? "one model call each" : "as fast as the worker goes", events,
         (double)(last_ts - first_ts) / 1000.0,
         last_ts > first_ts ?
             (double)events * 1000.0 / (double)(last_ts - first_ts) :
             0.0,
         t_conn, quantile(s.lat, s.nlat, 0.50), quantile(s.lat, s.nlat, 0.99),
         s.nlat ? (double)s.lat[s.nlat - 1] : 0.0, s.nlat, s.early, complete,
         nclients, rss, s.nlat ? (cpu1 - cpu0) * 1000.0 / (double)s.nlat : 0.0,
         s.nlat ? (mine1 - mine0) * 1000.0 / (double)s.nlat : 0.0, load_avg());
  if (pace)
    printf("  (pace: bench/slow-model answers each call after %d ms)\n", pace);
  if (complete < nclients)
    printf("  incomplete: %d failed, %lld gaps, %lld unparsed lines, %d not "
           "ended by the deadline\n",
           failed, gaps, unparsed, nclients - finished);
  rc = 0;
out:
  for (i = 0; s.c && i < nclients; i++) {
    if (s.c[i].fd > 0)
      close(s.c[i].fd);
    free(s.c[i].line);
  }
  if (ep >= 0)
    close(ep);
  free(s.c);
  free(s.run_id);
  free(s.lat);
  free(last_seq);
  free(evs);
  free(buf);
  free(body);
  return rc;
}

/* ---- main ---- */

static void usage(void)
{
  fprintf(stderr,
          "usage: api BUILD_DIR [--store URL] [--only create|streams]\n"
          "           [--creates N] [--clients C] [--warmup W]\n"
          "           [--streams S] [--stream-runs R] [--steps K] "
          "[--pace-ms D]\n"
          "           [--worker full|idle] [--http-threads T] [--keep]\n");
}

int main(int argc, char **argv)
{
  struct bench b;
  struct rlimit rl;
  const char *only = NULL, *store = NULL, *worker = "full";
  int creates = 2000, clients = 16, warm = 100, streams = 1000, sruns = 1;
  int steps = 200, pace = 0, keep = 0, i, rc = 0;
  char cmd[128];

  memset(&b, 0, sizeof(b));
  b.hole = -1;
  b.http_threads = 4;
  for (i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

    if (!strcmp(a, "--keep")) {
      keep = 1;
      continue;
    }
    if (!v) {
      usage();
      return 2;
    }
    i++;
    if (!strcmp(a, "--store"))
      store = v;
    else if (!strcmp(a, "--only"))
      only = v;
    else if (!strcmp(a, "--creates"))
      creates = atoi(v);
    else if (!strcmp(a, "--clients"))
      clients = atoi(v);
    else if (!strcmp(a, "--warmup"))
      warm = atoi(v);
    else if (!strcmp(a, "--streams"))
      streams = atoi(v);
    else if (!strcmp(a, "--stream-runs"))
      sruns = atoi(v);
    else if (!strcmp(a, "--steps"))
      steps = atoi(v);
    else if (!strcmp(a, "--pace-ms"))
      pace = atoi(v);
    else if (!strcmp(a, "--http-threads"))
      b.http_threads = atoi(v);
    else if (!strcmp(a, "--worker"))
      worker = v;
    else {
      usage();
      return 2;
    }
  }
  if (argc < 2 || argv[1][0] == '-' || creates < 1 || clients < 1 || warm < 1 ||
      streams < 1 || sruns < 1 || sruns > streams || steps < 1 || pace < 0 ||
      b.http_threads < 1 ||
      (only && strcmp(only, "create") && strcmp(only, "streams")) ||
      (strcmp(worker, "full") && strcmp(worker, "idle"))) {
    usage();
    return 2;
  }
  snprintf(b.build, sizeof(b.build), "%s", argv[1]);
  snprintf(b.durin, sizeof(b.durin), "%s/durin", b.build);
  if (durin_mktmpdir("durin-bench-api", b.tmp, sizeof(b.tmp))) {
    perror("api: a temporary directory");
    return 1;
  }
  if (store) {
    char data[PATH_MAX];

    snprintf(b.store, sizeof(b.store), "%s", store);
    snprintf(data, sizeof(data), "%s/data", b.tmp);
    setenv("DURIN_DATA_DIR", data, 1);
  } else {
    snprintf(b.store, sizeof(b.store), "sqlite:%s/api.db", b.tmp);
  }
  b.kind = strncmp(b.store, "sqlite:", 7) ? "postgres" : "sqlite";
  /* A thousand streams are a thousand descriptors here. */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
      rl.rlim_cur < (rlim_t)streams + 64) {
    fprintf(stderr, "api: %d streams need more descriptors than %llu\n",
            streams, (unsigned long long)rl.rlim_cur);
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  printf("== api: durin serve on %s (%d HTTP threads, --api-rate 0), %ld "
         "cores, %s\n",
         b.kind, b.http_threads, sysconf(_SC_NPROCESSORS_ONLN), load_avg());
  fflush(stdout);
  if (make_token(&b)) {
    rc = 1;
    goto out;
  }
  /* Streams first: the year-ahead runs the creates leave would be in
   * every claim of the stream runs' worker. */
  if (!only || !strcmp(only, "streams")) {
    if (start_serve(&b, sruns)) {
      rc = 1;
      goto out;
    }
    rc |= bench_streams(&b, streams, sruns, steps, pace);
    fflush(stdout);
    stop_child(b.serve);
    b.serve = 0;
  }
  if (!only || !strcmp(only, "create")) {
    int full = !strcmp(worker, "full");

    if (start_serve(&b, full ? 1 : 0) || (full && hold_worker(&b, 1))) {
      rc = 1;
      goto out;
    }
    rc |= bench_create(&b, creates, clients, warm, worker);
    fflush(stdout);
  }
out:
  /* The held model calls fail at once: the serve stops without them. */
  release_worker(&b);
  stop_child(b.serve);
  stop_child(b.model);
  if (rc && b.serve_log[0])
    print_log_tail(b.serve_log);
  curl_global_cleanup();
  if (keep) {
    fprintf(stderr, "api: kept %s (store %s)\n", b.tmp, b.store);
  } else {
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b.tmp);
    if (system(cmd))
      fprintf(stderr, "api: cannot remove %s\n", b.tmp);
  }
  return rc;
}
