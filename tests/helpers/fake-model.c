/*
 * A local stand-in for model servers, for tests. It speaks, over HTTP/1.1
 * and exactly as the real services do, OpenAI Chat Completions
 * (POST .../chat/completions, "Authorization: Bearer KEY") and Anthropic
 * Messages (POST .../messages, "x-api-key: KEY", "anthropic-version"),
 * and replays a list of scripted replies, one per request:
 *
 *   fake-model --port-file F --replies R.json [--log L] [--key K]
 *
 * R.json is an array; each entry is one reply:
 *   {"status": 200, "headers": {"Retry-After": "1"}, "body": {...}}
 *   {"raw": "not json", "status": 200}      a body sent verbatim
 *   {"drop": true}                          close without answering
 *   {"delay_ms": 1500, ...}                 answer late
 *   {"sse": [{"event": "e", "data": {...}}, {"data": "[DONE]"}]}
 *                                           a text/event-stream body
 * Every request is checked (the endpoint, the key if --key, a JSON body
 * with a model and messages; for Messages also max_tokens and the version
 * header) and its body appended to L as one line. Messages live at
 * /v1/messages only, as on api.anthropic.com, so a client that builds the
 * path wrongly gets the real service's 404. With FAKE_HEADS set in the
 * environment, each request's line and its anthropic-version and
 * traceparent headers are appended to that file. Errors come back in each
 * service's own error shape. When the replies run out it answers 500.
 * Each connection is served by its own process, with its reply chosen in
 * arrival order, so a client that gave up on a slow reply and retried is
 * answered at once, as a real server would.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

static void send_all(int fd, const char *p, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, p, n);

    if (w <= 0)
      return;
    p += w;
    n -= (size_t)w;
  }
}

static void reply(int fd, int status, json_t *headers, const char *body)
{
  char head[2048];
  const char *key;
  json_t *v;
  int n;

  n = snprintf(head, sizeof(head),
               "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n"
               "Connection: close\r\n",
               status, status == 200 ? "OK" : "Error", strlen(body));
  /* JSON unless the reply says otherwise (text/event-stream). */
  if (!json_object_get(headers, "Content-Type"))
    n += snprintf(head + n, sizeof(head) - (size_t)n,
                  "Content-Type: application/json\r\n");
  json_object_foreach(headers, key, v)
    n += snprintf(head + n, sizeof(head) - (size_t)n, "%s: %s\r\n", key,
                  json_string_value(v));
  n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
  send_all(fd, head, (size_t)n);
  send_all(fd, body, strlen(body));
}

static int anthropic; /* this request is a Messages request */

static void error_reply(int fd, int status, const char *msg)
{
  json_t *b = anthropic ?
                  json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error",
                            "type", "invalid_request_error", "message", msg) :
                  json_pack("{s:{s:s,s:s}}", "error", "message", msg, "type",
                            "invalid_request_error");
  char *s = json_dumps(b, JSON_COMPACT);

  reply(fd, status, NULL, s);
  free(s);
  json_decref(b);
}

/* Whether the request head has header NAME with a value containing WANT. */
static int has_header(const char *head, const char *name, const char *want)
{
  const char *p = head;
  size_t n = strlen(name);

  while ((p = strstr(p, "\r\n"))) {
    p += 2;
    if (!strncasecmp(p, name, n) && p[n] == ':') {
      const char *end = strstr(p, "\r\n");
      size_t len = end ? (size_t)(end - p) : strlen(p);
      char line[1024];

      snprintf(line, sizeof(line), "%.*s", (int)len, p);
      return strstr(line + n + 1, want) != NULL;
    }
  }
  return 0;
}

/* Copies the value of header NAME into out ("" if absent). */
static void header_value(const char *head, const char *name, char *out,
                         size_t outlen)
{
  const char *p = head;
  size_t n = strlen(name);

  *out = '\0';
  while ((p = strstr(p, "\r\n"))) {
    p += 2;
    if (!strncasecmp(p, name, n) && p[n] == ':') {
      const char *end = strstr(p, "\r\n");
      size_t len = end ? (size_t)(end - p) : strlen(p);

      p += n + 1;
      len -= n + 1;
      while (len > 0 && *p == ' ') {
        p++;
        len--;
      }
      snprintf(out, outlen, "%.*s", (int)len, p);
      return;
    }
  }
}

/* Reads one request; returns the body (malloc'd) or NULL. */
static char *read_request(int fd, char *head, size_t headlen)
{
  size_t have = 0, clen = 0, need;
  char *end = NULL, *body, *cl;

  while (have < headlen - 1) {
    ssize_t r = read(fd, head + have, headlen - 1 - have);

    if (r <= 0)
      return NULL;
    have += (size_t)r;
    head[have] = '\0';
    if ((end = strstr(head, "\r\n\r\n")))
      break;
  }
  if (!end)
    return NULL;
  *end = '\0';
  cl = strcasestr(head, "\r\ncontent-length:");
  if (cl)
    clen = strtoul(cl + 17, NULL, 10);
  body = calloc(1, clen + 1);
  need = have - (size_t)(end + 4 - head);
  if (need > clen)
    need = clen;
  memcpy(body, end + 4, need);
  while (need < clen) {
    ssize_t r = read(fd, body + need, clen - need);

    if (r <= 0)
      break;
    need += (size_t)r;
  }
  return body;
}

int main(int argc, char **argv)
{
  const char *port_file = NULL, *replies_path = NULL, *log_path = NULL;
  const char *key = NULL;
  struct sockaddr_in sa;
  socklen_t sl = sizeof(sa);
  json_t *replies;
  size_t next = 0;
  FILE *f;
  int ls, i, one = 1;

  for (i = 1; i < argc - 1; i += 2) {
    if (!strcmp(argv[i], "--port-file"))
      port_file = argv[i + 1];
    else if (!strcmp(argv[i], "--replies"))
      replies_path = argv[i + 1];
    else if (!strcmp(argv[i], "--log"))
      log_path = argv[i + 1];
    else if (!strcmp(argv[i], "--key"))
      key = argv[i + 1];
  }
  if (!port_file || !replies_path) {
    fprintf(stderr, "usage: fake-model --port-file F --replies R.json "
                    "[--log L] [--key K]\n");
    return 64;
  }
  replies = json_load_file(replies_path, 0, NULL);
  if (!json_is_array(replies)) {
    fprintf(stderr, "fake-model: %s is not a JSON array\n", replies_path);
    return 65;
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGCHLD, SIG_IGN);
  ls = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 16) < 0 ||
      getsockname(ls, (struct sockaddr *)&sa, &sl) < 0) {
    perror("fake-model");
    return 1;
  }
  f = fopen(port_file, "w");
  fprintf(f, "%d\n", ntohs(sa.sin_port));
  fclose(f);

  for (;;) {
    char head[16384], *body;
    json_t *req, *r, *b;
    size_t mine;
    int fd = accept(ls, NULL, NULL);

    if (fd < 0) {
      if (errno == EINTR)
        continue;
      return 1;
    }
    mine = next++;
    if (fork() != 0) {
      close(fd);
      continue;
    }
    /* A connection's process never outlives the server (slow replies). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(ls);
    body = read_request(fd, head, sizeof(head));
    if (!body)
      _exit(0);
    if (log_path && (f = fopen(log_path, "a"))) {
      fprintf(f, "%s\n", body);
      fclose(f);
    }
    if (getenv("FAKE_HEADS") && (f = fopen(getenv("FAKE_HEADS"), "a"))) {
      char version[256], tp[256];

      header_value(head, "anthropic-version", version, sizeof(version));
      header_value(head, "traceparent", tp, sizeof(tp));
      fprintf(f, "%.*s | anthropic-version: %s | traceparent: %s\n",
              (int)strcspn(head, "\r\n"), head, version, tp);
      fclose(f);
    }
    req = json_loads(body, 0, NULL);
    anthropic = !strncmp(head, "POST /v1/messages ", 18);
    if (strncmp(head, "POST ", 5) ||
        (!strstr(head, "/chat/completions ") && !anthropic)) {
      error_reply(fd, 404, "unknown endpoint");
    } else if (key && !anthropic && !has_header(head, "authorization", key)) {
      error_reply(fd, 401, "Incorrect API key provided");
    } else if (key && anthropic && !has_header(head, "x-api-key", key)) {
      error_reply(fd, 401, "invalid x-api-key");
    } else if (anthropic && !has_header(head, "anthropic-version", "20")) {
      error_reply(fd, 400, "anthropic-version header is required");
    } else if (!json_is_object(req) ||
               !json_is_string(json_object_get(req, "model")) ||
               !json_is_array(json_object_get(req, "messages")) ||
               (anthropic &&
                !json_is_integer(json_object_get(req, "max_tokens")))) {
      error_reply(fd, 400,
                  anthropic ? "model, messages and max_tokens are "
                              "required" :
                              "body must be JSON with model and "
                              "messages");
    } else if (mine >= json_array_size(replies)) {
      error_reply(fd, 500, "fake-model: no replies left");
    } else {
      r = json_array_get(replies, mine);
      if (json_integer_value(json_object_get(r, "delay_ms")) > 0)
        usleep((useconds_t)json_integer_value(json_object_get(r, "delay_ms")) *
               1000);
      if (json_is_true(json_object_get(r, "drop"))) {
        /* nothing: the connection just closes */
      } else {
        int status = json_object_get(r, "status") ?
                         (int)json_integer_value(json_object_get(r, "status")) :
                         200;

        if (json_is_array(json_object_get(r, "sse"))) {
          /* Each event as a server writes it: "event:", "data:", blank. */
          json_t *ev,
              *hdr = json_pack("{s:s}", "Content-Type", "text/event-stream");
          size_t k, cap = 1 << 20, len = 0;
          char *out = malloc(cap);

          out[0] = '\0';
          json_array_foreach(json_object_get(r, "sse"), k, ev) {
            json_t *d = json_object_get(ev, "data");
            char *text = json_is_string(d) ?
                             strdup(json_string_value(d)) :
                             json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
            const char *e = json_string_value(json_object_get(ev, "event"));

            if (e)
              len += (size_t)snprintf(out + len, cap - len, "event: %s\n", e);
            len += (size_t)snprintf(out + len, cap - len, "data: %s\n\n",
                                    text ? text : "");
            free(text);
          }
          reply(fd, status, hdr, out);
          json_decref(hdr);
          free(out);
        } else if (json_is_string(json_object_get(r, "raw"))) {
          reply(fd, status, json_object_get(r, "headers"),
                json_string_value(json_object_get(r, "raw")));
        } else {
          char *s;

          b = json_object_get(r, "body");
          s = json_dumps(b ? b : json_object(), JSON_COMPACT);
          reply(fd, status, json_object_get(r, "headers"), s);
          free(s);
        }
      }
    }
    json_decref(req);
    free(body);
    close(fd);
    _exit(0);
  }
}
