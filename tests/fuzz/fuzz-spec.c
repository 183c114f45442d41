/* Agent specs come from users: the spec parser never crashes. */
#include <stdlib.h>
#include <string.h>

#include "durin/spec.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct durin_spec s;
  struct durin_err err;
  char *text = malloc(size + 1), *dump;

  memcpy(text, data, size);
  text[size] = '\0';
  /* No base directory: script files are not read, paths must be absolute. */
  if (durin_spec_parse(text, NULL, &s, &err) == 0) {
    dump = durin_spec_dump(&s);
    durin_spec_clear(&s);
    if (durin_spec_parse(dump, NULL, &s, &err) == 0)
      durin_spec_clear(&s);
    free(dump);
  }
  free(text);
  return 0;
}
