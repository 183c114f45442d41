/*
 * Inbound triggers (docs/internals/triggers.md): what a delivery from
 * outside must show before it starts a run, and how its payload becomes
 * the run's goal. Everything here is pure: no store, no I/O, no
 * process-wide state; any thread may call.
 *
 * A payload is untrusted text. Its values go into the goal as text (each
 * capped); the trust rule (durin_trigger_trusted) decides whether its
 * author may start the trigger's spec at all.
 */
#ifndef DURIN_TRIGGER_H
#define DURIN_TRIGGER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "durin/error.h"

/* A Standard Webhooks timestamp further than this from now is refused. */
#define DURIN_TRIGGER_TOLERANCE_S 300
/* The shortest secret a trigger verifies with, in bytes (of the key a
 * Standard Webhooks secret decodes to): a shorter one is guessed offline
 * from one captured delivery, an empty one by anyone. */
#define DURIN_TRIGGER_MIN_SECRET 16
/* What one {{path}} inserts at most, and a whole goal. */
#define DURIN_TRIGGER_VALUE_MAX (16 * 1024)
#define DURIN_TRIGGER_GOAL_MAX  (64 * 1024)

/*
 * GitHub's X-Hub-Signature-256: "sha256=" and the hex of HMAC-SHA-256
 * of the raw body under key. 0 when it matches (compared in constant
 * time); DURIN_EACCES with the reason when it is missing, malformed or
 * wrong.
 */
int durin_trigger_verify_github(const void *key, size_t key_len,
                                const char *body, size_t body_len,
                                const char *header, struct durin_err *err);
/*
 * Standard Webhooks: HMAC-SHA-256 of "id.timestamp.body" under the
 * secret ("whsec_" and base64 of the key), base64, one of the
 * space-separated "v1,SIG" of the signature header. A timestamp more
 * than DURIN_TRIGGER_TOLERANCE_S from now_s (either way) is refused, so
 * an old delivery cannot be replayed. DURIN_EACCES with the reason.
 */
int durin_trigger_verify_standard(const char *secret, const char *id,
                                  const char *timestamp, const char *signature,
                                  const char *body, size_t body_len,
                                  int64_t now_s, struct durin_err *err);

/*
 * The trigger's config, as `durin trigger add` and POST /v1/triggers
 * write it:
 *   {"events": ["issues.labeled", "issue_comment"],   any if absent
 *    "where": [{"path": "label.name", "value": "agent"}],
 *    "goal": "Work on #{{issue.number}}: {{issue.title}}",
 *    "labels": {"issue": "{{issue.number}}"},          run labels
 *    "untrusted": "ignore" | "spec"}
 * 0 if it is well formed; DURIN_EINVAL naming the bad field.
 */
int durin_trigger_config_check(const json_t *config, struct durin_err *err);

/* Whether name may name a trigger ([A-Za-z0-9_.-], 1 to 64, not
 * starting with '.'); it is a path segment of the receiving URL.
 * DURIN_EINVAL saying what is allowed. */
int durin_trigger_name_check(const char *name, struct durin_err *err);

/* The value at a dotted path ("issue.labels.0.name": object keys, and
 * array indexes in decimal), or NULL. Borrowed from payload. */
json_t *durin_trigger_path(const json_t *payload, const char *path);

/*
 * Whether the delivery passes the config's filters: its event (GitHub's
 * X-GitHub-Event, with ".ACTION" when the payload has an action) is one
 * of "events" (an entry without an action matches every action), and
 * every "where" holds. 1 if so; 0 with why in reason.
 */
int durin_trigger_match(const json_t *config, const char *event,
                        const json_t *payload, char *reason, size_t reason_len);

/*
 * The author of what the delivery carries, as GitHub sends it: of the
 * author_association of comment, review, pull_request, issue and sender,
 * the first untrusted one, else the first (NULL: none), so that an
 * owner's comment on a stranger's issue counts as the stranger's; and
 * the sender's login (NULL: none). Borrowed from payload.
 */
const char *durin_trigger_association(const json_t *payload);
const char *durin_trigger_sender(const json_t *payload);
/* OWNER, MEMBER and COLLABORATOR: may write to the repository. */
int durin_trigger_trusted(const char *association);

/*
 * Renders tmpl: each {{ path }} becomes the text of the payload's value
 * there (a string as is, null as nothing, others as compact JSON), cut
 * at DURIN_TRIGGER_VALUE_MAX; the whole at DURIN_TRIGGER_GOAL_MAX. A
 * path the payload lacks is DURIN_ENOTFOUND naming it; an unclosed
 * "{{" DURIN_EINVAL. *out is malloc'd.
 */
int durin_trigger_render(const char *tmpl, const json_t *payload, char **out,
                         struct durin_err *err);

#endif
