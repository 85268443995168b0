/*
 * The libFuzzer entry point of one target: build with
 * -DASSAY_FUZZ_ENTRY=assay__fuzz_NAME (see .ci/fuzz).
 */
#include "fuzz.h"

#ifndef ASSAY_FUZZ_ENTRY
#error "define ASSAY_FUZZ_ENTRY to the target's assay__fuzz_* function"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return ASSAY_FUZZ_ENTRY(data, size);
}
