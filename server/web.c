/*
 * The dashboard: the files of web/, compiled into the binary by
 * server/web-blob.S, served at / (index.html) and /ui/NAME. They need no
 * token to load: the pages hold no data, and sign in against the API like
 * any client. Every answer forbids what the pages never do (scripts,
 * styles or frames from anywhere else, inline code), and carries a strong
 * ETag so a browser revalidates in one round trip.
 *
 * DURIN_WEB_DIR=DIR reads the same names from DIR at each request, for
 * working on the pages without rebuilding. Only names in the table below
 * are served, from either place. See docs/internals/dashboard.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>

#include "durin/util.h"
#include "server/server.h"

#define WEB_FILE(sym)                  \
 extern const char durin__web_##sym[]; \
 extern const char durin__web_##sym##_end[];

WEB_FILE(index_html)
WEB_FILE(app_css)
WEB_FILE(app_js)
WEB_FILE(api_js)
WEB_FILE(sse_js)
WEB_FILE(dom_js)
WEB_FILE(runs_js)
WEB_FILE(run_js)
WEB_FILE(approvals_js)
WEB_FILE(workers_js)
WEB_FILE(chart_js)
WEB_FILE(icon_svg)

struct web_file {
  const char *name; /* under web/ */
  const char *type;
  const char *start, *end;
  char etag[24]; /* "\"" 16 hex "\"", made once */
};

#define JS "text/javascript; charset=utf-8"
#define F(name, type, sym)                                 \
 {                                                         \
  name, type, durin__web_##sym, durin__web_##sym##_end, "" \
 }

static struct web_file files[] = {
  F("index.html", "text/html; charset=utf-8", index_html),
  F("app.css", "text/css; charset=utf-8", app_css),
  F("app.js", JS, app_js),
  F("api.js", JS, api_js),
  F("sse.js", JS, sse_js),
  F("dom.js", JS, dom_js),
  F("runs.js", JS, runs_js),
  F("run.js", JS, run_js),
  F("approvals.js", JS, approvals_js),
  F("workers.js", JS, workers_js),
  F("chart.js", JS, chart_js),
  F("icon.svg", "image/svg+xml", icon_svg),
};

#define NFILES (sizeof(files) / sizeof(files[0]))

/* What the pages may load and do: only their own origin, no inline code,
 * no framing (clickjacking a reviewer's Approve button). */
static const char csp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

static pthread_once_t etags_once = PTHREAD_ONCE_INIT;

/* FNV-1a, 64 bits: a validator, not a secret. */
static uint64_t fnv1a(const char *p, size_t len)
{
  uint64_t h = 1469598103934665603ULL;

  while (len--) {
    h ^= (unsigned char)*p++;
    h *= 1099511628211ULL;
  }
  return h;
}

static void make_etag(char out[24], const char *p, size_t len)
{
  snprintf(out, 24, "\"%016llx\"", (unsigned long long)fnv1a(p, len));
}

static void make_etags(void)
{
  size_t i;

  for (i = 0; i < NFILES; i++)
    make_etag(files[i].etag, files[i].start,
              (size_t)(files[i].end - files[i].start));
}

/* The file's bytes from DURIN_WEB_DIR (malloc'd), or NULL with errno. */
static char *read_dev(const char *dir, const char *name, size_t *len)
{
  char path[4096];
  struct stat sb;
  char *buf;
  ssize_t n;
  size_t got = 0;
  int fd;

  snprintf(path, sizeof(path), "%s/%s", dir, name);
  if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
    return NULL;
  if (fstat(fd, &sb) || !(buf = malloc((size_t)sb.st_size + 1))) {
    close(fd);
    return NULL;
  }
  while (got < (size_t)sb.st_size &&
         (n = read(fd, buf + got, (size_t)sb.st_size - got)) > 0)
    got += (size_t)n;
  close(fd);
  *len = got;
  return buf;
}

static int serve_file(struct req *r, struct web_file *f)
{
  const char *dev = getenv("DURIN_WEB_DIR");
  const char *inm = req_header(r, "If-None-Match");
  struct MHD_Response *resp;
  char etag[24], *buf = NULL;
  size_t len = (size_t)(f->end - f->start);

  pthread_once(&etags_once, make_etags);
  snprintf(etag, sizeof(etag), "%s", f->etag);
  if (dev && *dev) {
    if (!(buf = read_dev(dev, f->name, &len)))
      return reply_error(r, 500, "internal",
                         "DURIN_WEB_DIR=%s: cannot read %s (%s); unset it to "
                         "serve the pages built into durin",
                         dev, f->name, strerror(errno));
    make_etag(etag, buf, len);
  }
  if (inm && !strcmp(inm, etag)) {
    free(buf);
    resp =
        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  } else if (buf) {
    resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
  } else {
    resp = MHD_create_response_from_buffer(len, (void *)f->start,
                                           MHD_RESPMEM_PERSISTENT);
  }
  if (!resp)
    return reply_error(r, 500, "internal", "cannot make the answer");
  MHD_add_response_header(resp, "Content-Type", f->type);
  MHD_add_response_header(resp, "ETag", etag);
  MHD_add_response_header(resp, "Cache-Control", "no-cache");
  MHD_add_response_header(resp, "Content-Security-Policy", csp);
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(resp, "X-Frame-Options", "DENY");
  MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
  return reply_response(r, inm && !strcmp(inm, etag) ? 304 : 200, resp);
}

static int get_index(struct req *r)
{
  return serve_file(r, &files[0]);
}

static int get_asset(struct req *r)
{
  size_t i;

  for (i = 1; i < NFILES; i++)
    if (!strcmp(files[i].name, r->param[0]))
      return serve_file(r, &files[i]);
  return reply_error(r, 404, "not_found",
                     "the dashboard has no file '%s' (open / for it)",
                     r->param[0]);
}

const struct route srv_web_routes[] = {
  { "GET", "/", ROLE_NONE, get_index },
  { "GET", "/ui/{}", ROLE_NONE, get_asset },
  { NULL, NULL, ROLE_NONE, NULL },
};
