/*
 * The script provider: deterministic replay of a list of assistant turns.
 * The turn index comes from the run's checkpoint, so a resumed run replays
 * exactly where it stopped. A turn may carry "repeat": N to stand for N
 * identical turns (long benchmark runs).
 *
 * Summary calls (a phase's end, a context reset) are answered from
 * model.summaries, indexed by the run's count of summaries; past its end
 * (or without it) each gets a plain artifact naming its number, so a long
 * scripted run need not script every reset.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/model.h"
#include "model/providers.h"

static int script_answer(const struct durin_model_request *req,
                         struct durin_model_response *out,
                         struct durin_err *err)
{
  json_t *turns = req->cfg->turns, *t = NULL, *calls, *c, *usage;
  json_t *plain = NULL;
  int64_t want = req->turn, seen = 0;
  size_t i;
  int r;

  memset(out, 0, sizeof(*out));
  if (req->summary)
    turns = req->cfg->summaries;
  json_array_foreach(turns, i, t) {
    json_t *rep = json_object_get(t, "repeat");
    int64_t n = rep ? json_integer_value(rep) : 1;

    if (want < seen + n)
      break;
    seen += n;
    t = NULL;
  }
  if (!t && req->summary) {
    char note[80];

    snprintf(note, sizeof(note), "scripted summary %lld", (long long)want + 1);
    t = plain = json_pack("{s:[{s:s,s:{s:s}}]}", "tool_calls", "name",
                          "artifact", "arguments", "notes", note);
  }
  if (!t)
    return durin_err_set(err, DURIN_EMODEL,
                         "the script has no turn %lld (it has %lld); the "
                         "scripted agent never called finish",
                         (long long)want + 1, (long long)seen);
  if (json_is_string(json_object_get(t, "text")))
    out->text = strdup(json_string_value(json_object_get(t, "text")));
  calls = json_object_get(t, "tool_calls");
  out->calls = calloc(json_array_size(calls) + 1, sizeof(*out->calls));
  json_array_foreach(calls, i, c) {
    struct durin_tool_call *tc = &out->calls[out->ncalls++];
    json_t *args = json_object_get(c, "arguments");
    char id[64];

    snprintf(id, sizeof(id), "%s_%lld_%zu", req->summary ? "sum" : "call",
             (long long)want, i);
    tc->id = strdup(id);
    tc->name = strdup(json_string_value(json_object_get(c, "name")));
    if (json_is_string(args))
      tc->args = strdup(json_string_value(args));
    else if (args)
      tc->args = json_dumps(args, JSON_COMPACT);
    else
      tc->args = strdup("{}");
  }
  /* The neutral names: input_tokens counts the cached ones too. */
  usage = json_object_get(t, "usage");
  if ((r = durin__usage_count(usage, "usage", "input_tokens",
                              &out->input_tokens, err)) ||
      (r = durin__usage_count(usage, "usage", "cache_read_tokens",
                              &out->cache_read_tokens, err)) ||
      (r = durin__usage_count(usage, "usage", "cache_write_tokens",
                              &out->cache_write_tokens, err)) ||
      (r = durin__usage_count(usage, "usage", "output_tokens",
                              &out->output_tokens, err)))
    goto fail;
  if (out->cache_read_tokens + out->cache_write_tokens > out->input_tokens) {
    r = durin_err_set(err, DURIN_EMODEL,
                      "script turn %lld: usage.cache_read_tokens and "
                      "cache_write_tokens are part of input_tokens, so they "
                      "cannot add up to more",
                      (long long)want + 1);
    goto fail;
  }
  out->model = strdup("script");
  out->finish_reason = strdup(out->ncalls ? "tool_calls" : "stop");
  json_decref(plain);
  return 0;
fail:
  json_decref(plain);
  durin_model_response_clear(out);
  return r;
}

const struct durin_provider durin__provider_script = {
  .name = "script",
  .answer = script_answer,
};
