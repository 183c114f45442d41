/*
 * The server's spec policy: what a spec that arrives over the network may
 * ask for. Binds only under roots the server allows, network grants within
 * its host allowlist, a template only under its roots, budgets within the
 * ceilings (unset budgets get the ceiling). A tenant's section narrows the
 * server's, never widens it. A refusal names the spec field and the rule.
 * The sandbox itself is always on for such runs (durin serve refuses
 * network specs when it runs with --sandbox none).
 */
#ifndef DURIN_SERVER_SPECPOLICY_H
#define DURIN_SERVER_SPECPOLICY_H

#include "durin/error.h"
#include "durin/spec.h"

struct spec_policy;

/* Loads the policy file (JSON; docs/api/spec-policy.md). */
int spec_policy_load(const char *path, struct spec_policy **out,
                     struct durin_err *err);
/* The built-in policy when none is given: no binds, no network, no
 * templates, no ceilings. */
struct spec_policy *spec_policy_default(void);
void spec_policy_free(struct spec_policy *p);
/*
 * Judges spec for tenant: 0, or DURIN_EACCES with err naming the rule and
 * *field the spec field ("sandbox.rw[0]", "budget.dollars", ...). May fill
 * unset budgets with the ceilings.
 *
 * *field is a string literal or, for an indexed field, a buffer of the
 * calling thread, valid until that thread's next call. p is only read:
 * threads may judge with one policy at once.
 */
int spec_policy_check(const struct spec_policy *p, const char *tenant,
                      struct durin_spec *spec, const char **field,
                      struct durin_err *err);

#endif
