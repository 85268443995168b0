/*
 * Fuzz target for the `assay run` argument parser (parse_run in
 * core/cli.c). The input, split at NUL bytes, is the argument vector after
 * "run". Only the parser runs: nothing is opened, loaded or written. It is
 * static, so this file includes cli.c itself, with the one public name
 * renamed (the test runners also link the library's cli.o) and its
 * messages sent to /dev/null instead of flooding the fuzzer's output.
 * Invariants: the parser returns -1 (help), 0 or the usage exit status 2,
 * and a parsed configuration is consistent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static FILE *fuzz_sink(void);

#undef stdout
#undef stderr
#define stdout fuzz_sink()
#define stderr fuzz_sink()
#define assay_cli_main assay__fuzz_cli_main_unused
#include "cli.c"
#undef stdout
#undef stderr
#define stdout stdout
#define stderr stderr

static FILE *fuzz_sink(void) {
  static FILE *sink;
  if (sink == NULL) {
    sink = fopen("/dev/null", "w");
    FUZZ_CHECK(sink != NULL, "cannot open /dev/null");
  }
  return sink;
}

/* At most this many arguments, as a shell would pass. */
#define MAX_ARGS 64

int assay__fuzz_cli_args(const uint8_t *data, size_t size) {
  char *buf = malloc(size + 1);
  FUZZ_CHECK(buf != NULL, "out of memory");
  if (size > 0)
    memcpy(buf, data, size);
  buf[size] = '\0';
  char *argv[MAX_ARGS + 1];
  int argc = 0;
  for (size_t i = 0; i < size && argc < MAX_ARGS;) {
    argv[argc++] = buf + i;
    i += strlen(buf + i) + 1;
  }
  argv[argc] = NULL;

  struct run_config c = {0};
  int rc = parse_run(argc, argv, &c);
  FUZZ_CHECK(rc == -1 || rc == 0 || rc == EXIT_USAGE,
             "parse_run returned %d", rc);
  if (rc == 0) {
    FUZZ_CHECK(c.dataset != NULL, "parsed without a dataset");
    int ntasks = 0;
    for (int i = 0; i < c.nspecs; i++) {
      FUZZ_CHECK(c.specs[i].spec != NULL && *c.specs[i].spec != '\0',
                 "empty plugin SPEC accepted");
      FUZZ_CHECK(cJSON_IsObject(c.specs[i].opts) &&
                     cJSON_IsObject(c.specs[i].map),
                 "spec %d without option and map objects", i);
      ntasks += c.specs[i].kind == ASSAY_KIND_TASK;
    }
    FUZZ_CHECK(ntasks <= 1 && c.nspecs >= 1, "%d tasks, %d specs accepted",
               ntasks, c.nspecs);
    FUZZ_CHECK(!(c.resume && c.overwrite), "--resume with --overwrite");
    FUZZ_CHECK(c.eng.concurrency >= 1 && c.eng.threads >= 0 &&
                   c.eng.retries >= 0 && c.max_item_bytes > 0,
               "out-of-range engine option accepted");
    for (int i = 0; i < c.ndirs; i++)
      FUZZ_CHECK(c.plugin_dirs[i] != NULL, "NULL plugin dir");
  }
  config_free(&c);
  free(buf);
  return 0;
}
