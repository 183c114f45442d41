/* The egress proxy of one sandboxed call; see sandbox-proxy.c. */
#ifndef DURIN_SANDBOX_PROXY_H
#define DURIN_SANDBOX_PROXY_H

#include <poll.h>

#define PROXY_PORT 3128

struct proxy;
struct tls_ca;

/* An HTTP grant: requests to host:port get `header: value`. */
struct proxy_grant {
  char host[256];
  int port;
  char *header;
  unsigned char *value; /* the whole header value, format applied */
  size_t vlen;
};

/*
 * Serves the listening socket listen_fd (owned from now on). With grants
 * (and ca), a CONNECT to a granted host:port is intercepted
 * (sandbox-tls.c); egress_ca: more CAs to trust upstream, or NULL.
 */
struct proxy *proxy_new(int listen_fd, const char *const *allow, int nallow,
                        const struct proxy_grant *grants, int ngrants,
                        struct tls_ca *ca, const char *egress_ca);
void proxy_free(struct proxy *p);
/* Fills pf with what the proxy waits for; returns how many. */
int proxy_fill(struct proxy *p, struct pollfd *pf, int max);
/* Handles the first n entries of pf, as proxy_fill left them. */
void proxy_handle(struct proxy *p, const struct pollfd *pf, int n);
/* Whether the allowlist lets host:port through (raw IPs never). */
int proxy_allowed(const char *const *allow, int nallow, const char *host,
                  int port);

/* The call's CA (sandbox-tls.c): its certificate as PEM in *pem
 * (malloc'd); egress_ca: more CAs to trust upstream, or NULL. */
struct tls_ca *tls_ca_new(char **pem, const char *egress_ca);
void tls_ca_free(struct tls_ca *ca);
/* Makes (once) the certificate for host. */
int tls_ca_leaf(struct tls_ca *ca, const char *host);
/*
 * Serves one intercepted connection, blocking (in a child of P): cfd is
 * the client, told 200 already; ufd the host's socket. Returns the exit
 * status for the child.
 */
int tls_intercept(struct tls_ca *ca, int cfd, int ufd, const char *host,
                  int port, const struct proxy_grant *g, int ng);

/*
 * The request side of an intercepted connection without TLS (the fuzz
 * target, tests): feed the client's bytes; sink receives what would go
 * upstream, or "!" and the status of an error answer. relay_feed is -1
 * when the connection would end.
 */
struct relay;
struct relay *relay_new(const char *host, int port, const struct proxy_grant *g,
                        int ng,
                        void (*sink)(void *arg, const void *buf, size_t n),
                        void *arg);
int relay_feed(struct relay *r, const void *buf, size_t n);
void relay_free(struct relay *r);

#endif
