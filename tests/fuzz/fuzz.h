/* Every fuzz target defines this; libFuzzer or replay.c calls it. */
#ifndef DURIN_FUZZ_H
#define DURIN_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
