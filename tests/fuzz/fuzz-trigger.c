/* Untrusted bytes from outside: a webhook delivery's body, through what a
 * trigger does with it (the event filter, the trust rule, templates over
 * dotted paths, and both signature checks over the raw bytes). The first
 * line is the template, the rest the body. */
#include <stdlib.h>
#include <string.h>

#include "durin/trigger.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const char config_text[] =
      "{\"events\": [\"issues.labeled\", \"check_run\"], \"where\": "
      "[{\"path\": \"label.name\", \"value\": \"agent\"}, {\"path\": "
      "\"issue.labels.0.name\", \"value\": \"x\"}]}";
  char *text = malloc(size + 1), *nl, *out = NULL, why[256];
  const char *body;
  struct durin_err err;
  json_t *config = json_loads(config_text, 0, NULL), *payload;

  memcpy(text, data, size);
  text[size] = '\0';
  nl = strchr(text, '\n');
  body = nl ? nl + 1 : "";
  if (nl)
    *nl = 0;
  durin_trigger_verify_github("k", 1, body, strlen(body), text, &err);
  durin_trigger_verify_standard("whsec_AAAA", "id", "1700000000", text, body,
                                strlen(body), 1700000000, &err);
  payload = json_loads(body, 0, NULL);
  if (payload) {
    durin_trigger_match(config, "issues.labeled", payload, why, sizeof(why));
    durin_trigger_trusted(durin_trigger_association(payload));
    durin_trigger_sender(payload);
    durin_trigger_path(payload, text);
    if (durin_trigger_render(text, payload, &out, &err) == 0)
      free(out);
    json_decref(payload);
  }
  durin_trigger_config_check(config, &err);
  json_decref(config);
  free(text);
  return 0;
}
