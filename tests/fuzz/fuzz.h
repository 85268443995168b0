/*
 * The fuzz targets' entry points. Each takes one input (size bytes, not
 * NUL-terminated) and returns 0; a broken invariant prints what broke and
 * aborts. libfuzzer.c wraps one of them as LLVMFuzzerTestOneInput; the
 * regression runner (tests/test_fuzz_regressions.c) calls them directly
 * over stored inputs, without libFuzzer.
 */
#ifndef ASSAY_TESTS_FUZZ_H
#define ASSAY_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int assay__fuzz_dataset_jsonl(const uint8_t *data, size_t size);
int assay__fuzz_dataset_json(const uint8_t *data, size_t size);
int assay__fuzz_dataset_csv(const uint8_t *data, size_t size);
int assay__fuzz_judge_reply(const uint8_t *data, size_t size);
int assay__fuzz_chat_reply(const uint8_t *data, size_t size);
int assay__fuzz_template(const uint8_t *data, size_t size);
int assay__fuzz_options(const uint8_t *data, size_t size);
int assay__fuzz_cli_args(const uint8_t *data, size_t size);

/* Prints "fuzz invariant broken: <what>" to stderr and aborts. */
void assay__fuzz_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#define FUZZ_CHECK(cond, ...)                                                  \
  do {                                                                         \
    if (!(cond))                                                               \
      assay__fuzz_fail(__VA_ARGS__);                                           \
  } while (0)

#endif
