/* The shared main() of the CUnit runners (see runner.h). */
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "jsonw.h"
#include "util.h"

int test_main(int argc, char **argv, const struct test_suite *suites) {
  const char *only = argc > 1 ? argv[1] : NULL;
  if (CU_initialize_registry() != CUE_SUCCESS) {
    fprintf(stderr, "%s: cannot initialise CUnit: %s\n", argv[0],
            CU_get_error_msg());
    return 2;
  }
  int registered = 0;
  for (const struct test_suite *s = suites; s->name != NULL; s++) {
    if (only != NULL && strcmp(only, s->name) != 0)
      continue;
    CU_pSuite suite = CU_add_suite(s->name, s->init, s->cleanup);
    if (suite == NULL)
      goto fail;
    for (const struct test_case *c = s->cases; c->name != NULL; c++)
      if (CU_add_test(suite, c->name, c->fn) == NULL)
        goto fail;
    registered++;
  }
  if (registered == 0) {
    fprintf(stderr, "%s: no suite named '%s'\n", argv[0], only ? only : "");
    CU_cleanup_registry();
    return 2;
  }
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned tests_run = CU_get_number_of_tests_run();
  unsigned tests_failed = CU_get_number_of_tests_failed();
  unsigned asserts_failed = CU_get_number_of_failures();
  unsigned suites_failed = CU_get_number_of_suites_failed();
  CU_cleanup_registry();
  printf("\n%u passed, %u failed\n", tests_run - tests_failed, tests_failed);
  if (suites_failed > 0)
    printf("%u suite(s) failed to set up or tear down\n", suites_failed);
  return (tests_failed || asserts_failed || suites_failed || tests_run == 0)
             ? 1
             : 0;
fail:
  fprintf(stderr, "%s: cannot register tests: %s\n", argv[0],
          CU_get_error_msg());
  CU_cleanup_registry();
  return 2;
}

static char *join(const char *env, const char *def, const char *rel) {
  const char *base = getenv(env);
  if (base == NULL || *base == '\0')
    base = def;
  return assay__format("%s/%s", base, rel);
}

char *test_src_path(const char *rel) {
  return join("ASSAY_TEST_SRCDIR", TEST_SRCDIR, rel);
}

char *test_build_path(const char *rel) {
  return join("ASSAY_TEST_BUILDDIR", TEST_BUILDDIR, rel);
}

int test_sanitized(void) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return 1;
#else
  return 0;
#endif
}

char *test_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  size_t cap = 4096, n = 0;
  char *buf = assay__xmalloc(cap);
  size_t r;
  while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += r;
    if (cap - n - 1 == 0)
      buf = assay__xrealloc(buf, cap *= 2);
  }
  fclose(f);
  buf[n] = '\0';
  if (len != NULL)
    *len = n;
  return buf;
}

int test_line_matches(const cJSON *record, const char *line, size_t len) {
  if (line == NULL)
    return 1;
  struct assay__buf b = {0};
  int ok = assay__json_write(&b, record) == 0 && b.len == len &&
           memcmp(b.p, line, len) == 0;
  if (!ok)
    fprintf(stderr, "\n  record: %.*s\n  line:   %.*s\n", (int)b.len,
            b.p ? b.p : "", (int)len, line);
  free(b.p);
  return ok;
}
