/* Untrusted bytes from the model: tool-call arguments, for every tool. */
#include <stdlib.h>
#include <string.h>

#include "durin/tools.h"
#include "fuzz.h"
#include "harness/guard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const char *const tools[] = {
    "bash",        "read_file",  "write_file", "edit_file", "list_files",
    "update_plan", "run_status", "finish",     NULL
  };
  char *text = malloc(size + 1), *canon;
  int i;

  memcpy(text, data, size);
  text[size] = '\0';
  for (i = 0; tools[i]; i++) {
    struct durin_err err;
    json_t *args = NULL;

    if (durin_tool_args_parse(durin_tool_find(tools[i]), text, 1 << 16, &args,
                              &err) == 0)
      json_decref(args);
  }
  /* The breakers' canonical form of the same text (harness/guard.c). */
  canon = durin__guard_canonical(text);
  free(canon);
  free(text);
  return 0;
}
