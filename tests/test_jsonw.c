/*
 * The record writer (core/jsonw.c) against cJSON_PrintUnformatted(): every
 * record goes through the writer, and its text must be byte for byte what
 * cJSON prints, for numbers of every kind, escapes, and nested documents.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <cjson/cJSON.h>

#include "jsonw.h"
#include "runner.h"

static int mismatches;

/* Asserts the writer prints v as cJSON does; reports the first few. */
static void same(const cJSON *v) {
  char *want = cJSON_PrintUnformatted(v);
  struct assay__buf b = {0};
  int rc = assay__json_write(&b, v);
  CU_ASSERT_EQUAL(rc, 0);
  assay__buf_add(&b, "", 1);
  if (want == NULL || strcmp(want, b.p) != 0) {
    if (mismatches++ < 5)
      fprintf(stderr, "\n  cJSON: %s\n  ours:  %s\n", want ? want : "(null)", b.p);
    CU_FAIL("the writer differs from cJSON_PrintUnformatted");
  }
  free(want);
  free(b.p);
}

static void same_number(double d) {
  cJSON *n = cJSON_CreateNumber(d);
  same(n);
  cJSON_Delete(n);
}

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void test_numbers_fixed(void) {
  static const double v[] = {0, -0.0, 1, -1, 0.5, 0.1, 0.2, 0.3, 0.1 + 0.2,
                             1.0 / 3, 2.0 / 3, 0.118, 0.18, 12.5, -0.05,
                             0.0001, 0.00012, 0.0000999, 1e-5, 123456.789,
                             2147483647.0, 2147483648.0, -2147483649.0,
                             4294967296.5, 999999999999999.0, 1e15, 1e16,
                             123456789012345.6, 1e300, -1e-300, 5e-324,
                             DBL_MAX, DBL_MIN, 0.6153846153846154,
                             0.9999999999999999, 1.0000000000000002,
                             99999.99999999999, 1e14 + 0.5, 0.30000000000000004,
                             0.001, -0.001, 0.0009995, 0.999, 1.5, 0.25, 10.01,
                             999999999999.999, 1e12 - 0.001, 1e12, 1e12 + 0.5,
                             123.456, 0.1 + 0.001};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    same_number(v[i]);
  same_number(NAN);
  same_number(INFINITY);
  same_number(-INFINITY);
}

static void test_numbers_random(void) {
  /* Ratios like a metric's, decimals like a latency's, and raw bits. */
  for (int i = 0; i < 250000; i++) {
    uint64_t r = next();
    double d;
    switch (i % 5) {
    case 0:
      d = (double)(r % 1000) / (double)(1 + (r >> 20) % 1000);
      break;
    case 1:
      d = round((double)(r % 100000000) / 7.0) / 1000.0;
      break;
    case 2:
      memcpy(&d, &r, sizeof d);
      if (isnan(d))
        d = 0;
      break;
    case 3:
      d = ldexp((double)(r >> 11), (int)((r & 0x7f)) - 100);
      break;
    default:
      /* Thousandths of every size the writer prints as such. */
      d = (double)(r % (UINT64_C(1) << (r >> 58))) / 1000.0;
      break;
    }
    same_number(r & 1 << 5 ? -d : d);
  }
}

static void test_strings(void) {
  char s[256];
  for (int c = 1; c < 256; c++)
    s[c - 1] = (char)c;
  s[255] = '\0';
  cJSON *v = cJSON_CreateString(s);
  same(v);
  cJSON_Delete(v);
  v = cJSON_CreateString("");
  same(v);
  cJSON_Delete(v);
  v = cJSON_CreateString("caf\xc3\xa9 \"quoted\" back\\slash\n\t\x01\x1f\x7f");
  same(v);
  cJSON_Delete(v);
  /* Escapes at every offset of the eight-byte scan. */
  static const char alphabet[] = "ab \"\\\n\x01\x1f\x20\x7f\x80\xc3\xa9~!";
  for (int i = 0; i < 20000; i++) {
    size_t n = next() % 40;
    for (size_t k = 0; k < n; k++)
      s[k] = alphabet[next() % (sizeof alphabet - 1)];
    s[n] = '\0';
    v = cJSON_CreateString(s);
    same(v);
    cJSON_Delete(v);
  }
}

static void test_documents(void) {
  static const char *const docs[] = {
      "{}", "[]", "null", "true", "false", "[[],[{}],{\"a\":[]}]",
      "{\"index\":3,\"id\":\"q3\",\"input\":{\"x\":[1,2.5,\"s\",null,true]},"
      "\"scores\":{\"m\":{\"value\":0.25,\"reason\":\"r\\\"q\\\"\",\"error\":null}}}",
      "{\"\":1,\"k\\u0000x\":2,\"\\u00e9\":\"\\ud83d\\ude00\"}",
      "[1e400,-1e-400,0.1e1,123456789012345678901234567890]"};
  for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
    cJSON *v = cJSON_Parse(docs[i]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    same(v);
    cJSON_Delete(v);
  }
  /* A raw node prints as given; an invalid node fails and leaves the
   * buffer as it was. */
  cJSON *o = cJSON_CreateObject();
  cJSON_AddRawToObject(o, "raw", "[1, 2]");
  same(o);
  struct assay__buf b = {0};
  assay__buf_add(&b, "x", 1);
  cJSON bad = {0};
  bad.type = 1 << 12;
  CU_ASSERT_EQUAL(assay__json_write(&b, &bad), -1);
  CU_ASSERT_EQUAL(b.len, 1);
  CU_ASSERT_EQUAL(assay__json_write(&b, NULL), -1);
  CU_ASSERT_EQUAL(b.len, 1);
  free(b.p);
  cJSON_Delete(o);
}

int main(int argc, char **argv) {
  static const struct test_case writer[] = {
      {"numbers: chosen edge cases", test_numbers_fixed},
      {"numbers: 250,000 random", test_numbers_random},
      {"strings: every byte", test_strings},
      {"documents", test_documents},
      {NULL, NULL}};
  static const struct test_suite suites[] = {{"jsonw", NULL, NULL, writer},
                                             {NULL, NULL, NULL, NULL}};
  return test_main(argc, argv, suites);
}
