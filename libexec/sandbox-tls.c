/*
 * TLS interception for granted hosts (spec "secrets", issue 17): the
 * proxy of one call adds a header with a secret to the requests the
 * sandbox sends to a host, and the sandbox never holds the secret.
 *
 * P makes a CA for the call (EC P-256, in memory; its key never enters
 * the sandbox), and C puts its certificate into the sandbox's CA bundle.
 * A CONNECT to a granted host:port is answered 200, then served by a
 * child of P (intercept()): a TLS server towards the client with a
 * certificate for the host signed by the call's CA, a TLS client towards
 * the host that verifies it against the system's CAs (and the operator's
 * extra file), with SNI and a host name check. Between the two it relays
 * HTTP/1.1: each request head is parsed, the granted header the client
 * sent (if any) is dropped and the granted one added; bodies go on by
 * Content-Length or chunk by chunk; answers come back byte for byte.
 *
 * A child per connection, blocking in its own poll loop: P's loop never
 * waits on a handshake or a long transfer, and P stays single-threaded.
 */
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
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "sandbox-proxy.h"

#define HEAD_MAX    (64 * 1024) /* a request head, at most */
#define HANDSHAKE_S 15
#define CERT_DAYS   2
#define LEAF_CACHE  32

struct tls_ca {
  EVP_PKEY *key; /* the CA's */
  X509 *cert;
  EVP_PKEY *leaf; /* one key for every leaf of the call */
  struct {
    char host[256];
    X509 *cert;
  } leaves[LEAF_CACHE];
  int nleaves;
  /* Both sides' contexts, made once in P: OpenSSL's start-up and the
   * system's CA store then cost nothing per connection's child. */
  SSL_CTX *sctx, *uctx;
};

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
  X509V3_CTX ctx;
  X509_EXTENSION *ext;

  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (!ext)
    return -1;
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return 0;
}

/* A certificate for key, named cn, signed by issuer's key (itself when
 * issuer is NULL), valid from an hour ago for CERT_DAYS. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer,
                       EVP_PKEY *issuer_key, const char *san)
{
  X509 *c = X509_new();
  unsigned char serial[16];
  BIGNUM *bn;
  int ok = 1;

  if (!c)
    return NULL;
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7f;
  bn = BN_bin2bn(serial, sizeof(serial), NULL);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c));
  BN_free(bn);
  X509_set_version(c, 2);
  X509_gmtime_adj(X509_getm_notBefore(c), -3600);
  X509_gmtime_adj(X509_getm_notAfter(c), 86400L * CERT_DAYS);
  X509_set_pubkey(c, key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(c), "CN", MBSTRING_ASC,
                             (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(c, X509_get_subject_name(issuer ? issuer : c));
  if (!issuer) {
    ok = !add_ext(c, c, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
         !add_ext(c, c, NID_key_usage, "critical,keyCertSign,cRLSign") &&
         !add_ext(c, c, NID_subject_key_identifier, "hash") &&
         !add_ext(c, c, NID_authority_key_identifier, "keyid:always");
  } else {
    ok = !add_ext(c, issuer, NID_basic_constraints, "critical,CA:FALSE") &&
         !add_ext(c, issuer, NID_key_usage, "critical,digitalSignature") &&
         !add_ext(c, issuer, NID_ext_key_usage, "serverAuth") &&
         !add_ext(c, issuer, NID_subject_alt_name, san) &&
         !add_ext(c, issuer, NID_subject_key_identifier, "hash") &&
         !add_ext(c, issuer, NID_authority_key_identifier, "keyid:always");
  }
  if (!ok || !X509_sign(c, issuer_key, EVP_sha256())) {
    X509_free(c);
    return NULL;
  }
  return c;
}

static int alpn_select(SSL *s, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg);

/* The two contexts every intercepted connection uses. */
static int make_contexts(struct tls_ca *ca, const char *egress_ca)
{
  static const unsigned char alpn[] = "\x08http/1.1";

  ca->sctx = SSL_CTX_new(TLS_server_method());
  ca->uctx = SSL_CTX_new(TLS_client_method());
  if (!ca->sctx || !ca->uctx)
    return -1;
  SSL_CTX_set_min_proto_version(ca->sctx, TLS1_2_VERSION);
  SSL_CTX_set_min_proto_version(ca->uctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ca->sctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_mode(ca->uctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_alpn_select_cb(ca->sctx, alpn_select, NULL);
  if (!SSL_CTX_use_PrivateKey(ca->sctx, ca->leaf))
    return -1;
  /* The host is verified against the system's CAs (Debian's store), and
   * the operator's extra file if there is one. */
  SSL_CTX_set_default_verify_paths(ca->uctx);
  if (egress_ca && *egress_ca &&
      !SSL_CTX_load_verify_locations(ca->uctx, egress_ca, NULL))
    fprintf(stderr, "durin-sandbox: cannot load the CA file '%s'\n", egress_ca);
  SSL_CTX_set_verify(ca->uctx, SSL_VERIFY_PEER, NULL);
  SSL_CTX_set_alpn_protos(ca->uctx, alpn, sizeof(alpn) - 1);
  return 0;
}

struct tls_ca *tls_ca_new(char **pem, const char *egress_ca)
{
  struct tls_ca *ca = calloc(1, sizeof(*ca));
  BIO *b = BIO_new(BIO_s_mem());
  char cn[64], *data;
  long n;

  *pem = NULL;
  if (!ca || !b)
    goto fail;
  snprintf(cn, sizeof(cn), "durin egress CA (call %d)", (int)getpid());
  ca->key = EVP_EC_gen("P-256");
  ca->leaf = EVP_EC_gen("P-256");
  if (!ca->key || !ca->leaf ||
      !(ca->cert = make_cert(ca->key, cn, NULL, ca->key, NULL)) ||
      !PEM_write_bio_X509(b, ca->cert) || make_contexts(ca, egress_ca))
    goto fail;
  n = BIO_get_mem_data(b, &data);
  if (n <= 0 || !(*pem = malloc((size_t)n + 1)))
    goto fail;
  memcpy(*pem, data, (size_t)n);
  (*pem)[n] = 0;
  BIO_free(b);
  return ca;
fail:
  BIO_free(b);
  tls_ca_free(ca);
  return NULL;
}

void tls_ca_free(struct tls_ca *ca)
{
  int i;

  if (!ca)
    return;
  for (i = 0; i < ca->nleaves; i++)
    X509_free(ca->leaves[i].cert);
  SSL_CTX_free(ca->sctx);
  SSL_CTX_free(ca->uctx);
  EVP_PKEY_free(ca->key);
  EVP_PKEY_free(ca->leaf);
  X509_free(ca->cert);
  free(ca);
}

/* The leaf for host, made once per call (in P, so every connection's
 * child inherits it). */
int tls_ca_leaf(struct tls_ca *ca, const char *host)
{
  char san[300];
  X509 *c;
  int i;

  for (i = 0; i < ca->nleaves; i++)
    if (!strcmp(ca->leaves[i].host, host))
      return 0;
  if (ca->nleaves == LEAF_CACHE || strlen(host) >= sizeof(ca->leaves[0].host))
    return -1;
  snprintf(san, sizeof(san), "DNS:%s", host);
  if (!(c = make_cert(ca->leaf, host, ca->cert, ca->key, san)))
    return -1;
  snprintf(ca->leaves[ca->nleaves].host, sizeof(ca->leaves[0].host), "%s",
           host);
  ca->leaves[ca->nleaves++].cert = c;
  return 0;
}

static X509 *leaf_of(struct tls_ca *ca, const char *host)
{
  int i;

  for (i = 0; i < ca->nleaves; i++)
    if (!strcmp(ca->leaves[i].host, host))
      return ca->leaves[i].cert;
  return NULL;
}

/* ---- one intercepted connection, in a child of P ---- */

static int alpn_select(SSL *s, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
  unsigned int i;

  (void)s;
  (void)arg;
  for (i = 0; i + 1 <= inlen && i + 1 + in[i] <= inlen; i += 1u + in[i])
    if (in[i] == 8 && !memcmp(in + i + 1, "http/1.1", 8)) {
      *out = in + i + 1;
      *outlen = 8;
      return SSL_TLSEXT_ERR_OK;
    }
  /* Only h2 offered: no ALPN at all, which means HTTP/1.1. */
  return SSL_TLSEXT_ERR_NOACK;
}

static void set_blocking(int fd, int on, int timeout_s)
{
  struct timeval tv = { timeout_s, 0 };
  int fl = fcntl(fd, F_GETFL), one = 1;

  /* A request head and its body are separate records: no Nagle delay
   * between them. */
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  fcntl(fd, F_SETFL, on ? fl & ~O_NONBLOCK : fl | O_NONBLOCK);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Writes all of buf to s on a non-blocking socket fd. */
static int ssl_write_all(SSL *s, int fd, const void *buf, size_t n)
{
  while (n) {
    int w = SSL_write(s, buf, n > 1 << 30 ? 1 << 30 : (int)n), e;
    struct pollfd pf = { fd, 0, 0 };

    if (w > 0) {
      buf = (const char *)buf + w;
      n -= (size_t)w;
      continue;
    }
    e = SSL_get_error(s, w);
    if (e == SSL_ERROR_WANT_WRITE)
      pf.events = POLLOUT;
    else if (e == SSL_ERROR_WANT_READ)
      pf.events = POLLIN;
    else
      return -1;
    if (poll(&pf, 1, 300000) != 1)
      return -1;
  }
  return 0;
}

/* An error answer to the client, inside its TLS session. */
static void tls_answer(SSL *s, int fd, const char *status, const char *why)
{
  char buf[1024];
  int n = snprintf(buf, sizeof(buf),
                   "HTTP/1.1 %s\r\nContent-Type: text/plain\r\n"
                   "Connection: close\r\nContent-Length: %zu\r\n\r\n%s\n",
                   status, strlen(why) + 1, why);

  ssl_write_all(s, fd, buf, (size_t)n);
}

enum rstate {
  R_HEAD,    /* reading a request head */
  R_BODY,    /* `left` bytes of body to pass on */
  R_CHUNK,   /* a chunk-size line */
  R_DATA,    /* `left` bytes of chunk data and its CRLF */
  R_TRAILER, /* trailer lines until an empty one */
  R_RAW,     /* after an Upgrade: bytes as they come */
};

struct relay {
  SSL *cs, *us; /* client side (we serve), upstream (we connect) */
  int cfd, ufd;
  /* Where the request side's output goes: upstream, and an error answer
   * to the client (the fuzz target and tests catch both instead). */
  int (*up)(struct relay *r, const void *buf, size_t n);
  void (*refuse)(struct relay *r, const char *status, const char *why);
  void (*sink)(void *arg, const void *buf, size_t n);
  void *sink_arg;
  const char *host;
  int port;
  const struct proxy_grant *g;
  int ng;
  enum rstate st;
  unsigned long long left;
  char in[HEAD_MAX + 1];
  size_t inlen;
};

/*
 * Reads a number of at most 15 digits in base (10 or 16) from the start
 * of s (n bytes): no sign, no space, no 0x. Returns how many digits were
 * read (0: none, or too many).
 */
static size_t number(const char *s, size_t n, int base, unsigned long long *out)
{
  size_t k;

  *out = 0;
  for (k = 0; k < n; k++) {
    int d;

    if (s[k] >= '0' && s[k] <= '9')
      d = s[k] - '0';
    else if (base == 16 && s[k] >= 'a' && s[k] <= 'f')
      d = s[k] - 'a' + 10;
    else if (base == 16 && s[k] >= 'A' && s[k] <= 'F')
      d = s[k] - 'A' + 10;
    else
      break;
    if (k == 15)
      return 0;
    *out = *out * (unsigned long long)base + (unsigned long long)d;
  }
  return k;
}

/* Whether header line h (up to its colon) is name. */
static int header_is(const char *h, size_t len, const char *name)
{
  size_t n = strlen(name);

  return len == n && !strncasecmp(h, name, n);
}

/* Whether the Host header's value v names the granted host (with or
 * without its port). */
static int host_matches(const struct relay *r, const char *v, size_t n)
{
  char want[300];
  size_t hl = strlen(r->host);

  if (n == hl && !strncasecmp(v, r->host, n))
    return 1;
  snprintf(want, sizeof(want), "%s:%d", r->host, r->port);
  return n == strlen(want) && !strncasecmp(v, want, n);
}

/*
 * A complete request head (len bytes at r->in, through its blank line):
 * passes it on with the granted headers in place of any the client sent,
 * and sets how its body is framed. -1 after answering an error.
 */
/* Whether p[0..n) has no control character but a tab. */
static int printable(const char *p, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (((unsigned char)p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
      return 0;
  return 1;
}

/* Whether name[0..n) is an HTTP token (RFC 9110 5.6.2). */
static int token(const char *name, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (!strchr("!#$%&'*+-.^_`|~", name[i]) &&
        !((name[i] >= '0' && name[i] <= '9') ||
          (name[i] >= 'a' && name[i] <= 'z') ||
          (name[i] >= 'A' && name[i] <= 'Z')))
      return 0;
  return 1;
}

/* Whether a Transfer-Encoding value's last coding is chunked: the whole
 * token, not a suffix of one ("xchunked"). */
static int last_token_chunked(const char *v, size_t vl)
{
  size_t b = vl;

  while (b && v[b - 1] != ',' && v[b - 1] != ' ' && v[b - 1] != '\t')
    b--;
  return vl - b == 7 && !strncasecmp(v + b, "chunked", 7);
}

static int pass_head(struct relay *r, size_t len)
{
  char *out, *line = r->in, *end = r->in + len, target[16];
  size_t olen = 0, cap = len + 64;
  int i, chunked = 0, has_cl = 0, upgrade = 0, first = 1, host_ok = 1;
  int te = 0;
  unsigned long long cl = 0;

  for (i = 0; i < r->ng; i++)
    cap += strlen(r->g[i].header) + r->g[i].vlen + 4;
  if (!(out = malloc(cap)))
    return -1;
  /* Lines end in CRLF, and nothing else does: a bare LF or CR, or a NUL,
   * is where two parsers disagree on where a head ends. */
  for (i = 0; i < (int)len; i++)
    if (!r->in[i] || (r->in[i] == '\n' && (!i || r->in[i - 1] != '\r')) ||
        (r->in[i] == '\r' && r->in[i + 1] != '\n')) {
      OPENSSL_clear_free(out, cap);
      r->refuse(r, "400 Bad Request",
                "durin proxy: a request head's lines end in CRLF");
      return -1;
    }
  /* TRACE answers with the request, the granted header in it, into the
   * sandbox: the one method whose answer is the secret. */
  if (!strncasecmp(r->in, "TRACE ", 6) || !strncasecmp(r->in, "TRACK ", 6)) {
    OPENSSL_clear_free(out, cap);
    r->refuse(r, "405 Method Not Allowed",
              "durin proxy: TRACE to a granted host would echo its secret");
    return -1;
  }
  if (sscanf(r->in, "%*s %15s", target) != 1 ||
      (target[0] != '/' && strcmp(target, "*"))) {
    OPENSSL_clear_free(out, cap);
    r->refuse(r, "400 Bad Request",
              "durin proxy: a request to a granted host takes an origin-form "
              "target (/path)");
    return -1;
  }
  while (line < end) {
    char *nl = memchr(line, '\n', (size_t)(end - line)), *colon;
    size_t ll = (size_t)(nl - line) + 1, nlen;
    const char *v;
    size_t vl;

    /* Only the last line is blank (the head ends at the first blank
     * one), and only the request line has no colon. */
    if (first ?
            ll <= 2 :
            ll > 2 && *line != ' ' && *line != '\t' && !memchr(line, ':', ll)) {
      OPENSSL_clear_free(out, cap);
      r->refuse(r, "400 Bad Request", "durin proxy: malformed request head");
      return -1;
    }
    if (first || ll <= 2) {
      first = 0;
      if (ll <= 2) {
        /* The blank line: the granted headers go just before it. */
        for (i = 0; i < r->ng; i++) {
          olen += (size_t)sprintf(out + olen, "%s: ", r->g[i].header);
          memcpy(out + olen, r->g[i].value, r->g[i].vlen);
          olen += r->g[i].vlen;
          memcpy(out + olen, "\r\n", 2);
          olen += 2;
        }
      }
      memcpy(out + olen, line, ll);
      olen += ll;
      line = nl + 1;
      continue;
    }
    /* A folded line (obsolete, RFC 9112 5.2), or a name with anything
     * but a token's characters in it ("Transfer-Encoding :"), is where
     * this proxy and the host could read different heads: refused. */
    colon = memchr(line, ':', ll);
    nlen = colon ? (size_t)(colon - line) : 0;
    if (*line == ' ' || *line == '\t' || !nlen || !token(line, nlen)) {
      OPENSSL_clear_free(out, cap);
      r->refuse(r, "400 Bad Request",
                "durin proxy: a header line is folded, or its name is not a "
                "token");
      return -1;
    }
    v = colon ? colon + 1 : line;
    while (v < nl && (*v == ' ' || *v == '\t'))
      v++;
    vl = (size_t)(nl - v);
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
      vl--;
    for (i = 0; colon && i < r->ng; i++)
      if (header_is(line, nlen, r->g[i].header))
        break;
    if (colon && i < r->ng) {
      line = nl + 1; /* the client's own: dropped */
      continue;
    }
    if (header_is(line, nlen, "transfer-encoding")) {
      te = 1;
      chunked = last_token_chunked(v, vl);
    } else if (header_is(line, nlen, "content-length")) {
      unsigned long long n;

      size_t k = number(v, vl, 10, &n);

      if (!k || k != vl || (has_cl && n != cl))
        has_cl = 2;
      else
        has_cl = 1;
      cl = n;
    } else if (header_is(line, nlen, "upgrade"))
      upgrade = 1;
    else if (header_is(line, nlen, "host"))
      host_ok = host_ok && host_matches(r, v, vl);
    memcpy(out + olen, line, ll);
    olen += ll;
    line = nl + 1;
  }
  /* A length two parsers could read two ways is how one request hides
   * another: refused. */
  if (!host_ok || has_cl == 2 || (te && (has_cl || !chunked))) {
    OPENSSL_clear_free(out, cap);
    r->refuse(r, host_ok ? "400 Bad Request" : "421 Misdirected Request",
              host_ok ? "durin proxy: ambiguous body length" :
                        "durin proxy: the Host header names another host than "
                        "the one granted");
    return -1;
  }
  if (r->up(r, out, olen)) {
    OPENSSL_clear_free(out, cap);
    return -1;
  }
  OPENSSL_clear_free(out, cap);
  if (upgrade)
    r->st = R_RAW;
  else if (chunked)
    r->st = R_CHUNK;
  else if (cl) {
    r->st = R_BODY;
    r->left = cl;
  }
  return 0;
}

/* Consumes what it can of the client's bytes; -1: end the connection. */
static int client_bytes(struct relay *r)
{
  for (;;) {
    char *eol;
    size_t take;
    /* Body bytes, counted down (not a line that sets the next count). */
    int counted = r->st == R_BODY || r->st == R_DATA;

    if (!r->inlen)
      return 0;
    switch (r->st) {
    case R_RAW:
      take = r->inlen;
      break;
    case R_BODY:
    case R_DATA:
      take = r->left < r->inlen ? (size_t)r->left : r->inlen;
      break;
    case R_HEAD:
      eol = memmem(r->in, r->inlen, "\r\n\r\n", 4);
      if (!eol) {
        if (r->inlen >= HEAD_MAX) {
          r->refuse(r, "431 Request Header Fields Too Large",
                    "durin proxy: request head too large");
          return -1;
        }
        return 0;
      }
      take = (size_t)(eol - r->in) + 4;
      if (pass_head(r, take))
        return -1;
      memmove(r->in, r->in + take, r->inlen - take);
      r->inlen -= take;
      continue;
    case R_CHUNK:
    case R_TRAILER:
    default:
      eol = memchr(r->in, '\n', r->inlen);
      if (!eol) {
        if (r->inlen >= 4096)
          return -1;
        return 0;
      }
      take = (size_t)(eol - r->in) + 1;
      if (r->st == R_CHUNK) {
        unsigned long long n;
        size_t k = number(r->in, take, 16, &n);

        /* Digits, then extensions or the line's end: nothing a server
         * could read as another size; CRLF, and no control character
         * before it. */
        if (!k || (r->in[k] != ';' && r->in[k] != '\r') || take < 2 ||
            r->in[take - 2] != '\r' || !printable(r->in + k, take - 2 - k))
          return -1;
        if (n) {
          r->st = R_DATA;
          r->left = n + 2;
        } else {
          r->st = R_TRAILER;
        }
      } else if (take <= 2) {
        r->st = R_HEAD;
      }
      break;
    }
    /* A chunk's data ends in CRLF: anything else there is another
     * request to a server that does not look. */
    if (r->st == R_DATA && r->left <= take + 2) {
      size_t j = r->left > 2 ? (size_t)(r->left - 2) : 0;

      for (; j < take; j++)
        if (r->in[j] != (r->left - j == 2 ? '\r' : '\n'))
          return -1;
    }
    if (r->up(r, r->in, take))
      return -1;
    if (counted) {
      r->left -= take;
      if (!r->left)
        r->st = r->st == R_BODY ? R_HEAD : R_CHUNK;
    }
    memmove(r->in, r->in + take, r->inlen - take);
    r->inlen -= take;
  }
}

static int up_tls(struct relay *r, const void *buf, size_t n)
{
  return ssl_write_all(r->us, r->ufd, buf, n);
}

static void refuse_tls(struct relay *r, const char *status, const char *why)
{
  tls_answer(r->cs, r->cfd, status, why);
}

static int up_sink(struct relay *r, const void *buf, size_t n)
{
  r->sink(r->sink_arg, buf, n);
  return 0;
}

static void refuse_sink(struct relay *r, const char *status, const char *why)
{
  (void)why;
  r->sink(r->sink_arg, "!", 1);
  r->sink(r->sink_arg, status, strlen(status));
}

struct relay *relay_new(const char *host, int port, const struct proxy_grant *g,
                        int ng,
                        void (*sink)(void *arg, const void *buf, size_t n),
                        void *arg)
{
  struct relay *r = calloc(1, sizeof(*r));

  if (!r)
    return NULL;
  r->host = host;
  r->port = port;
  r->g = g;
  r->ng = ng;
  r->up = up_sink;
  r->refuse = refuse_sink;
  r->sink = sink;
  r->sink_arg = arg;
  return r;
}

int relay_feed(struct relay *r, const void *buf, size_t n)
{
  while (n) {
    size_t take = HEAD_MAX - r->inlen < n ? HEAD_MAX - r->inlen : n;

    if (!take)
      return -1;
    memcpy(r->in + r->inlen, buf, take);
    r->inlen += take;
    buf = (const char *)buf + take;
    n -= take;
    if (client_bytes(r))
      return -1;
  }
  return 0;
}

void relay_free(struct relay *r)
{
  free(r);
}

/* Reads what s has, into buf; >0 bytes, 0 nothing yet, -1 closed. */
static int ssl_read_some(SSL *s, char *buf, size_t n)
{
  int k = SSL_read(s, buf, (int)n), e;

  if (k > 0)
    return k;
  e = SSL_get_error(s, k);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
    return 0;
  return -1;
}

static int relay_loop(struct relay *r)
{
  char buf[16384];

  for (;;) {
    struct pollfd pf[2] = { { r->cfd, POLLIN, 0 }, { r->ufd, POLLIN, 0 } };
    int k;

    if (!SSL_pending(r->cs) && !SSL_pending(r->us) && poll(pf, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (SSL_pending(r->cs) || pf[0].revents) {
      k = ssl_read_some(r->cs, r->in + r->inlen, HEAD_MAX - r->inlen);
      if (k < 0)
        return 0;
      r->inlen += (size_t)k;
      if (client_bytes(r))
        return -1;
    }
    if (SSL_pending(r->us) || pf[1].revents) {
      k = ssl_read_some(r->us, buf, sizeof(buf));
      if (k < 0)
        return 0;
      if (k && ssl_write_all(r->cs, r->cfd, buf, (size_t)k))
        return -1;
    }
  }
}

/* The reason upstream verification failed, for the client and stderr. */
static void upstream_why(SSL *s, char *why, size_t n)
{
  long v = SSL_get_verify_result(s);
  unsigned long e = ERR_peek_last_error();

  if (v != X509_V_OK)
    snprintf(why, n, "certificate verify failed: %s",
             X509_verify_cert_error_string(v));
  else if (e)
    ERR_error_string_n(e, why, n);
  else
    snprintf(why, n, "the TLS handshake failed");
}

int tls_intercept(struct tls_ca *ca, int cfd, int ufd, const char *host,
                  int port, const struct proxy_grant *g, int ng)
{
  struct relay *r = calloc(1, sizeof(*r));
  X509 *leaf = leaf_of(ca, host);
  char why[512];
  int rc = 1;

  if (!r || !leaf)
    goto out;
  r->cfd = cfd;
  r->ufd = ufd;
  r->up = up_tls;
  r->refuse = refuse_tls;
  r->host = host;
  r->port = port;
  r->g = g;
  r->ng = ng;
  /* The client first: a failure upstream is then told inside its TLS. */
  set_blocking(cfd, 1, HANDSHAKE_S);
  r->cs = SSL_new(ca->sctx);
  if (!r->cs || !SSL_use_certificate(r->cs, leaf))
    goto out;
  SSL_set_fd(r->cs, cfd);
  if (SSL_accept(r->cs) != 1) {
    fprintf(stderr,
            "durin-sandbox: egress to %s:%d: the client's TLS handshake "
            "with the proxy failed (does the command trust the sandbox's "
            "CA bundle, SSL_CERT_FILE?)\n",
            host, port);
    goto out;
  }
  r->us = SSL_new(ca->uctx);
  if (!r->us)
    goto out;
  SSL_set_fd(r->us, ufd);
  SSL_set_tlsext_host_name(r->us, host);
  SSL_set1_host(r->us, host);
  set_blocking(ufd, 1, HANDSHAKE_S);
  if (SSL_connect(r->us) != 1) {
    char msg[700];

    upstream_why(r->us, why, sizeof(why));
    fprintf(stderr,
            "durin-sandbox: egress to %s:%d: cannot verify the host "
            "upstream: %s\n",
            host, port, why);
    snprintf(msg, sizeof(msg), "durin proxy: cannot verify %s upstream (%s)",
             host, why);
    tls_answer(r->cs, cfd, "502 Bad Gateway", msg);
    goto out;
  }
  set_blocking(cfd, 0, 0);
  set_blocking(ufd, 0, 0);
  rc = relay_loop(r) ? 1 : 0;
  SSL_shutdown(r->cs);
out:
  if (r) {
    SSL_free(r->cs);
    SSL_free(r->us);
    OPENSSL_cleanse(r->in, sizeof(r->in));
    free(r);
  }
  return rc;
}
