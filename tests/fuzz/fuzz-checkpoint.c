/* Checkpoints are read back from the store: parse what is there. */
#include <stdlib.h>
#include <string.h>

#include "durin/harness.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct durin_checkpoint c;
  struct durin_err err;
  char *text = malloc(size + 1), *dump;

  memcpy(text, data, size);
  text[size] = '\0';
  if (durin_checkpoint_parse(text, &c, &err) == 0) {
    dump = durin_checkpoint_dump(&c);
    durin_checkpoint_clear(&c);
    free(dump);
  }
  free(text);
  return 0;
}
