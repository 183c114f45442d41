/* The egress proxy of one sandboxed call; see sandbox-proxy.c. */
#ifndef DURIN_SANDBOX_PROXY_H
#define DURIN_SANDBOX_PROXY_H

#include <poll.h>

#define PROXY_PORT 3128

struct proxy;

/* Serves the listening socket listen_fd (owned from now on). */
struct proxy *proxy_new(int listen_fd, const char *const *allow, int nallow);
void proxy_free(struct proxy *p);
/* Fills pf with what the proxy waits for; returns how many. */
int proxy_fill(struct proxy *p, struct pollfd *pf, int max);
/* Handles the first n entries of pf, as proxy_fill left them. */
void proxy_handle(struct proxy *p, const struct pollfd *pf, int n);
/* Whether the allowlist lets host:port through (raw IPs never). */
int proxy_allowed(const char *const *allow, int nallow, const char *host,
                  int port);

#endif
