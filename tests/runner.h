/*
 * The shared main() of the CUnit runners: suites come from a table, and the
 * exit status counts failed tests, failed assertions and suites whose setup
 * or teardown failed, read before the registry is cleaned up.
 */
#ifndef ASSAY_TEST_RUNNER_H
#define ASSAY_TEST_RUNNER_H

#include <stddef.h>

#include <CUnit/CUnit.h>
#include <cjson/cJSON.h>

struct test_case {
  const char *name;
  void (*fn)(void);
};

struct test_suite {
  const char *name;
  int (*init)(void);    /* may be NULL */
  int (*cleanup)(void); /* may be NULL */
  const struct test_case *cases; /* ends with {NULL, NULL} */
};

/* Runs suites (ends with {NULL}); argv[1], when given, runs only the suite
 * of that name. Returns the process exit status: 0 when all passed. */
int test_main(int argc, char **argv, const struct test_suite *suites);

/* Absolute path of a file under tests/ in the source tree (static buffer
 * per call site is not needed: returns an owned string). */
char *test_src_path(const char *rel);
/* Absolute path under tests/ in the build tree (owned). */
char *test_build_path(const char *rel);
/* Whether this build runs under a sanitizer (ASan or TSan): memory
 * figures are inflated, and valgrind cannot run its binaries. */
int test_sanitized(void);

/* Whether an engine record callback's line is what printing the record
 * gives (true when line is NULL); prints both on stderr when not. */
int test_line_matches(const cJSON *record, const char *line, size_t len);

/* Reads a whole file into an owned NUL-terminated buffer, or NULL. */
char *test_read_file(const char *path, size_t *len);

#endif
