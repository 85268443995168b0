/*
 * Summary tests: the statistics a user reads off a run (mean, std, stderr,
 * failures, counts by error code, usage, latency) against values computed
 * by hand, the summary JSON (format, run members, no NaN), and the table
 * printed for people (columns aligned, the numbers present). The data-driven
 * case reads tests/data/summary/run.jsonl, a run's records as the engine
 * writes them, and compares with run.expected.json.
 */
/* open_memstream() is POSIX 2008. */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"
#include "summary.h"
#include "util.h"

/* Parses JSON text built with printf formatting; fails the test when the
 * text is not JSON (a bug in the test itself). */
static cJSON *json(const char *fmt, ...) ASSAY__PRINTF(1, 2);
static cJSON *json(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *text = assay__vformat(fmt, ap);
  va_end(ap);
  cJSON *j = cJSON_Parse(text);
  if (j == NULL)
    fprintf(stderr, "\n  test bug: not JSON: %s\n", text);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  free(text);
  return j;
}

static void add(struct assay_summary *s, cJSON *record) {
  assay_summary_add(s, record);
  cJSON_Delete(record);
}

/* A record of an item whose task succeeded, with one score "name". */
static void add_score(struct assay_summary *s, const char *name, double v) {
  add(s, json("{\"index\":0,\"id\":0,\"trial\":0,\"input\":{},\"output\":{},"
              "\"scores\":{\"%s\":{\"value\":%.17g,\"reason\":null,"
              "\"error\":null}},\"error\":null,\"attempts\":1,"
              "\"task_ms\":1,\"metrics_ms\":1}",
              name, v));
}

static const cJSON *get(const cJSON *j, const char *path) {
  return assay__json_path(j, path);
}

/* The number at path, NAN when it is missing or not a number. */
static double num(const cJSON *j, const char *path) {
  const cJSON *v = get(j, path);
  return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

#define ASSERT_NUM(j, path, want, tol)                                         \
  do {                                                                         \
    double got_ = num((j), (path));                                            \
    if (!(fabs(got_ - (want)) <= (tol)))                                       \
      fprintf(stderr, "\n  %s: got %.17g, want %.17g\n", (path), got_,         \
              (double)(want));                                                 \
    CU_ASSERT(fabs(got_ - (want)) <= (tol));                                   \
  } while (0)

#define ASSERT_NULL_AT(j, path) CU_ASSERT(cJSON_IsNull(get((j), (path))))

#define ASSERT_HAS(text, sub)                                                  \
  do {                                                                         \
    const char *t_ = (text);                                                   \
    int ok_ = t_ != NULL && strstr(t_, (sub)) != NULL;                         \
    if (!ok_)                                                                  \
      fprintf(stderr, "\n  output lacks \"%s\":\n%s\n", (sub),                 \
              t_ ? t_ : "(null)");                                             \
    CU_ASSERT(ok_);                                                            \
  } while (0)

/* Asserts that the serialized summary holds no NaN or infinity, which
 * would make it unreadable by every JSON parser. */
static void assert_finite_json(const cJSON *j) {
  char *text = cJSON_PrintUnformatted(j);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  for (char *p = text; *p; p++)
    *p = (char)tolower((unsigned char)*p);
  CU_ASSERT_PTR_NULL(strstr(text, "nan"));
  CU_ASSERT_PTR_NULL(strstr(text, "inf"));
  cJSON *back = cJSON_Parse(text);
  CU_ASSERT_PTR_NOT_NULL(back);
  cJSON_Delete(back);
  free(text);
}

/* The summary of s without run information (owned). */
static cJSON *summarize(const struct assay_summary *s) {
  cJSON *j = assay_summary_json(s, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  assert_finite_json(j);
  return j;
}

/* Everything assay_summary_print writes for j (owned). */
static char *print_to_string(const cJSON *j) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  assay_summary_print(j, f);
  fclose(f);
  return buf;
}

/* ---- statistics -------------------------------------------------------- */

static void test_mean_std_stderr(void) {
  struct assay_summary *s = assay_summary_new();
  for (int i = 1; i <= 4; i++)
    add_score(s, "x", i);
  cJSON *j = summarize(s);
  ASSERT_NUM(j, "scores.x.count", 4, 0);
  ASSERT_NUM(j, "scores.x.mean", 2.5, 1e-12);
  /* sample std: sqrt(((1.5^2 + 0.5^2) * 2) / 3) = sqrt(5/3) */
  ASSERT_NUM(j, "scores.x.std", 1.2909944, 1e-7);
  ASSERT_NUM(j, "scores.x.stderr", 0.6454972, 1e-7);
  ASSERT_NUM(j, "scores.x.min", 1, 0);
  ASSERT_NUM(j, "scores.x.max", 4, 0);
  ASSERT_NUM(j, "scores.x.failures", 0, 0);
  ASSERT_NUM(j, "counts.items", 4, 0);
  ASSERT_NUM(j, "counts.ok", 4, 0);
  ASSERT_NUM(j, "counts.failed", 0, 0);
  ASSERT_NUM(j, "format_version", ASSAY_SUMMARY_FORMAT_VERSION, 0);
  cJSON_Delete(j);
  assay_summary_free(s);
}

static void test_single_record(void) {
  struct assay_summary *s = assay_summary_new();
  add_score(s, "x", 0.75);
  cJSON *j = summarize(s);
  ASSERT_NUM(j, "scores.x.count", 1, 0);
  ASSERT_NUM(j, "scores.x.mean", 0.75, 0);
  ASSERT_NUM(j, "scores.x.std", 0, 0);
  ASSERT_NUM(j, "scores.x.stderr", 0, 0);
  ASSERT_NUM(j, "scores.x.min", 0.75, 0);
  ASSERT_NUM(j, "scores.x.max", 0.75, 0);
  cJSON_Delete(j);
  assay_summary_free(s);
}

/* One item reads "1 item", in the counts and in the latency lines. */
static void test_one_record_singular(void) {
  struct assay_summary *s = assay_summary_new();
  add_score(s, "x", 1);
  cJSON *run = json("{\"name\":\"one\",\"wall_ms\":2}");
  cJSON *j = assay_summary_json(s, run);
  char *out = print_to_string(j);
  ASSERT_HAS(out, "run 'one': 1 item, 1 ok, 0 failed");
  ASSERT_HAS(out, "max 1.00 ms (1 item)\n");
  CU_ASSERT_PTR_NULL(strstr(out, "1 items"));
  free(out);
  cJSON_Delete(j);
  cJSON_Delete(run);
  assay_summary_free(s);
}

static void test_zero_records(void) {
  struct assay_summary *s = assay_summary_new();
  cJSON *run = json("{\"name\":\"empty\",\"wall_ms\":1500}");
  cJSON *j = assay_summary_json(s, run);
  assert_finite_json(j);
  ASSERT_NUM(j, "counts.items", 0, 0);
  ASSERT_NUM(j, "counts.ok", 0, 0);
  ASSERT_NUM(j, "counts.failed", 0, 0);
  ASSERT_NUM(j, "items_per_s", 0, 0);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(get(j, "scores")), 0);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(get(j, "usage")), 0);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(get(j, "counts.failed_by_code")), 0);
  ASSERT_NUM(j, "latency.task_ms.count", 0, 0);
  ASSERT_NULL_AT(j, "latency.task_ms.mean");
  ASSERT_NULL_AT(j, "latency.task_ms.p50");
  ASSERT_NULL_AT(j, "latency.task_ms.p95");
  ASSERT_NULL_AT(j, "latency.metrics_ms.max");
  char *out = print_to_string(j);
  ASSERT_HAS(out, "run 'empty': 0 items, 0 ok, 0 failed");
  ASSERT_HAS(out, "no scores");
  free(out);
  cJSON_Delete(j);
  cJSON_Delete(run);
  /* A NULL summary is an empty one. */
  j = assay_summary_json(NULL, NULL);
  ASSERT_NUM(j, "counts.items", 0, 0);
  cJSON_Delete(j);
  assay_summary_free(s);
}

/* A score that failed on every item has no statistics: null, never NaN. */
static void test_all_failed_is_null(void) {
  struct assay_summary *s = assay_summary_new();
  for (int i = 0; i < 3; i++)
    add(s, json("{\"scores\":{\"x\":{\"value\":null,\"reason\":null,"
                "\"error\":\"boom\"}},\"error\":null}"));
  cJSON *j = summarize(s);
  ASSERT_NUM(j, "scores.x.count", 0, 0);
  ASSERT_NUM(j, "scores.x.failures", 3, 0);
  static const char *const keys[] = {"mean", "std", "min", "max", "stderr"};
  for (size_t i = 0; i < assay__array_size(keys); i++) {
    char *p = assay__format("scores.x.%s", keys[i]);
    ASSERT_NULL_AT(j, p);
    free(p);
  }
  char *out = print_to_string(j);
  CU_ASSERT_PTR_NULL(strstr(out, "nan"));
  ASSERT_HAS(out, "failed scores: 3");
  free(out);
  cJSON_Delete(j);
  assay_summary_free(s);
}

static void test_failures_counted(void) {
  struct assay_summary *s = assay_summary_new();
  add_score(s, "x", 1);
  add_score(s, "x", 0);
  add(s, json("{\"scores\":{\"x\":{\"value\":null,\"reason\":null,"
              "\"error\":\"missing input 'reference'\"}},\"error\":null}"));
  /* Malformed values are failures too, never silently a zero. */
  add(s, json("{\"scores\":{\"x\":{\"value\":\"0.5\"}},\"error\":null}"));
  add(s, json("{\"scores\":{\"x\":{}},\"error\":null}"));
  cJSON *j = summarize(s);
  ASSERT_NUM(j, "scores.x.count", 2, 0);
  ASSERT_NUM(j, "scores.x.mean", 0.5, 0);
  ASSERT_NUM(j, "scores.x.failures", 3, 0);
  ASSERT_NUM(j, "counts.score_failures", 3, 0);
  ASSERT_NUM(j, "counts.ok", 5, 0);
  cJSON_Delete(j);
  assay_summary_free(s);
}

static void test_failed_by_code(void) {
  struct assay_summary *s = assay_summary_new();
  add_score(s, "x", 1);
  add(s, json("{\"error\":{\"code\":\"timeout\",\"message\":\"t\"},"
              "\"scores\":{},\"attempts\":4}"));
  add(s, json("{\"error\":{\"code\":\"bad_item\",\"message\":\"b\"},"
              "\"scores\":{},\"attempts\":0}"));
  add(s, json("{\"error\":{\"code\":\"timeout\",\"message\":\"t\"},"
              "\"scores\":{},\"attempts\":1}"));
  add(s, json("{\"error\":{\"message\":\"no code\"},\"scores\":{}}"));
  cJSON *j = summarize(s);
  ASSERT_NUM(j, "counts.items", 5, 0);
  ASSERT_NUM(j, "counts.ok", 1, 0);
  ASSERT_NUM(j, "counts.failed", 4, 0);
  ASSERT_NUM(j, "counts.failed_by_code.timeout", 2, 0);
  ASSERT_NUM(j, "counts.failed_by_code.bad_item", 1, 0);
  ASSERT_NUM(j, "counts.failed_by_code.unknown", 1, 0);
  /* First-seen order. */
  const cJSON *by = get(j, "counts.failed_by_code");
  CU_ASSERT_STRING_EQUAL(by->child->string, "timeout");
  CU_ASSERT_STRING_EQUAL(by->child->next->string, "bad_item");
  ASSERT_NUM(j, "counts.attempts", 6, 0);
  ASSERT_NUM(j, "counts.retried", 1, 0);
  cJSON_Delete(j);
  assay_summary_free(s);
}

/* With values near 1e9 the naive sum-of-squares variance loses every
 * significant digit; Welford's update keeps them. */
static void test_large_offset(void) {
  struct assay_summary *s = assay_summary_new();
  static const double d[] = {4, 7, 13, 16};
  for (int i = 0; i < 4; i++)
    add_score(s, "x", 1e9 + d[i]);
  cJSON *j = summarize(s);
  ASSERT_NUM(j, "scores.x.mean", 1e9 + 10, 1e-6);
  ASSERT_NUM(j, "scores.x.std", sqrt(30.0), 1e-7); /* 90 / 3 */
  ASSERT_NUM(j, "scores.x.stderr", sqrt(30.0) / 2, 1e-7);
  ASSERT_NUM(j, "scores.x.min", 1e9 + 4, 0);
  ASSERT_NUM(j, "scores.x.max", 1e9 + 16, 0);
  cJSON_Delete(j);
  assay_summary_free(s);

  /* Many values alternating 1e9+1 and 1e9+3: mean 1e9+2, and the squared
   * deviations sum to n, so std = sqrt(n / (n - 1)). */
  s = assay_summary_new();
  cJSON *rec = json("{\"scores\":{\"y\":{\"value\":0}},\"error\":null}");
  cJSON *value = (cJSON *)get(rec, "scores.y.value");
  CU_ASSERT_PTR_NOT_NULL_FATAL(value);
  const int n = 20000;
  for (int i = 0; i < n; i++) {
    cJSON_SetNumberValue(value, 1e9 + (i % 2 ? 3 : 1));
    assay_summary_add(s, rec);
  }
  cJSON_Delete(rec);
  j = summarize(s);
  ASSERT_NUM(j, "scores.y.count", n, 0);
  ASSERT_NUM(j, "scores.y.mean", 1e9 + 2, 1e-6);
  ASSERT_NUM(j, "scores.y.std", sqrt((double)n / (n - 1)), 1e-6);
  cJSON_Delete(j);
  assay_summary_free(s);
}

/* Records built in memory can hold values a parser never makes; none of
 * them may turn into NaN or infinity in the summary. */
static void test_no_nan(void) {
  struct assay_summary *s = assay_summary_new();
  cJSON *rec = json("{\"scores\":{\"x\":{\"value\":0}},\"error\":null,"
                    "\"attempts\":1,\"task_ms\":0,\"metrics_ms\":0,"
                    "\"output\":{\"usage\":{\"tokens\":0}}}");
  cJSON *value = (cJSON *)get(rec, "scores.x.value");
  CU_ASSERT_PTR_NOT_NULL_FATAL(value);
  static const double bad[] = {NAN, INFINITY, -INFINITY};
  for (size_t i = 0; i < assay__array_size(bad); i++) {
    cJSON_SetNumberValue(value, bad[i]);
    cJSON_SetNumberValue(cJSON_GetObjectItem(rec, "task_ms"), bad[i]);
    cJSON_SetNumberValue(
        cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "output"), "usage"),
            "tokens"),
        bad[i]);
    assay_summary_add(s, rec);
  }
  /* Huge finite values whose variance overflows. */
  cJSON_SetNumberValue(value, 1e308);
  assay_summary_add(s, rec);
  cJSON_SetNumberValue(value, -1e308);
  assay_summary_add(s, rec);
  cJSON_Delete(rec);
  cJSON *run = json("{\"wall_ms\":0}");
  cJSON *j = assay_summary_json(s, run);
  assert_finite_json(j);
  ASSERT_NUM(j, "scores.x.count", 2, 0);
  ASSERT_NUM(j, "scores.x.failures", 3, 0);
  ASSERT_NULL_AT(j, "items_per_s");
  char *out = print_to_string(j);
  for (char *p = out; *p; p++)
    *p = (char)tolower((unsigned char)*p);
  CU_ASSERT_PTR_NULL(strstr(out, "nan"));
  CU_ASSERT_PTR_NULL(strstr(out, "inf"));
  free(out);
  cJSON_Delete(j);
  cJSON_Delete(run);
  assay_summary_free(s);
}

static void test_score_order(void) {
  struct assay_summary *s = assay_summary_new();
  add(s, json("{\"scores\":{\"b\":{\"value\":1},\"a\":{\"value\":2}}}"));
  add(s, json("{\"scores\":{\"a\":{\"value\":4},\"c\":{\"value\":3}}}"));
  add(s, json("{\"scores\":{\"c\":{\"value\":5},\"b\":{\"value\":3}}}"));
  cJSON *j = summarize(s);
  const cJSON *sc = get(j, "scores");
  CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(sc), 3);
  CU_ASSERT_STRING_EQUAL(sc->child->string, "b");
  CU_ASSERT_STRING_EQUAL(sc->child->next->string, "a");
  CU_ASSERT_STRING_EQUAL(sc->child->next->next->string, "c");
  ASSERT_NUM(j, "scores.a.mean", 3, 0);
  ASSERT_NUM(j, "scores.b.mean", 2, 0);
  ASSERT_NUM(j, "scores.c.mean", 4, 0);
  cJSON_Delete(j);
  assay_summary_free(s);
}

static void test_usage_summed(void) {
  struct assay_summary *s = assay_summary_new();
  for (int i = 0; i < 10; i++)
    add(s, json("{\"output\":{\"output\":\"x\",\"usage\":{\"prompt_tokens\":"
                "%d,\"completion_tokens\":2,\"total_tokens\":%d,"
                "\"cost\":0.1,\"model\":\"m\"}},\"scores\":{},"
                "\"error\":null}",
                i, i + 2));
  /* A key seen later is added after the others; nested objects are summed
   * member by member; a record without usage or output adds nothing. */
  add(s, json("{\"output\":{\"usage\":{\"reasoning_tokens\":7,"
              "\"prompt_tokens_details\":{\"cached_tokens\":3}}},"
              "\"scores\":{},\"error\":null}"));
  add(s, json("{\"output\":{\"usage\":{\"prompt_tokens_details\":"
              "{\"cached_tokens\":2}}},\"scores\":{},\"error\":null}"));
  add(s, json("{\"output\":null,\"scores\":{},\"error\":null}"));
  add(s, json("{\"output\":{\"usage\":null},\"scores\":{},\"error\":null}"));
  cJSON *j = summarize(s);
  ASSERT_NUM(j, "usage.prompt_tokens", 45, 0);
  ASSERT_NUM(j, "usage.completion_tokens", 20, 0);
  ASSERT_NUM(j, "usage.total_tokens", 65, 0);
  ASSERT_NUM(j, "usage.cost", 1.0, 1e-15);
  ASSERT_NUM(j, "usage.reasoning_tokens", 7, 0);
  ASSERT_NUM(j, "usage.prompt_tokens_details.cached_tokens", 5, 0);
  CU_ASSERT_PTR_NULL(get(j, "usage.model"));
  const cJSON *u = get(j, "usage");
  CU_ASSERT_STRING_EQUAL(u->child->string, "prompt_tokens");
  char *out = print_to_string(j);
  ASSERT_HAS(out, "usage: prompt_tokens 45, completion_tokens 20, "
                  "total_tokens 65, cost 1, reasoning_tokens 7, "
                  "prompt_tokens_details.cached_tokens 5\n");
  free(out);
  cJSON_Delete(j);
  assay_summary_free(s);
}

static void test_latency_exact(void) {
  struct assay_summary *s = assay_summary_new();
  /* 1..100 ms, added out of order. */
  for (int i = 0; i < 100; i++)
    add(s, json("{\"scores\":{\"x\":{\"value\":1}},\"error\":null,"
                "\"attempts\":%d,\"task_ms\":%d,\"metrics_ms\":0.5}",
                i % 10 == 0 ? 2 : 1, (i * 37) % 100 + 1));
  /* No task attempt (scoring mode, bad item): no task latency. */
  add(s, json("{\"scores\":{},\"error\":null,\"attempts\":0,"
              "\"task_ms\":0,\"metrics_ms\":0}"));
  cJSON *j = summarize(s);
  ASSERT_NUM(j, "latency.task_ms.count", 100, 0);
  ASSERT_NUM(j, "latency.task_ms.total", 5050, 0);
  ASSERT_NUM(j, "latency.task_ms.mean", 50.5, 1e-12);
  ASSERT_NUM(j, "latency.task_ms.p50", 50, 0);
  ASSERT_NUM(j, "latency.task_ms.p95", 95, 0);
  ASSERT_NUM(j, "latency.task_ms.max", 100, 0);
  ASSERT_NUM(j, "latency.metrics_ms.count", 100, 0);
  ASSERT_NUM(j, "latency.metrics_ms.mean", 0.5, 0);
  ASSERT_NUM(j, "counts.attempts", 110, 0);
  ASSERT_NUM(j, "counts.retried", 10, 0);
  char *out = print_to_string(j);
  ASSERT_HAS(out, "task time: mean 50.5 ms, p50 50.0 ms, p95 95.0 ms, "
                  "max 100.0 ms (100 items)\n");
  ASSERT_HAS(out, "metrics time: mean 0.50 ms, p50 0.50 ms, p95 0.50 ms, "
                  "max 0.50 ms (100 items)\n");
  ASSERT_HAS(out, "task attempts: 110 (10 items retried)\n");
  free(out);
  cJSON_Delete(j);
  assay_summary_free(s);
}

/* Past the exact buffer the percentiles come from the histogram: within
 * a few percent, with the maximum still exact. */
static void test_latency_histogram(void) {
  struct assay_summary *s = assay_summary_new();
  cJSON *rec = json("{\"scores\":{},\"error\":null,\"attempts\":1,"
                    "\"task_ms\":0}");
  cJSON *t = cJSON_GetObjectItem(rec, "task_ms");
  const int n = 100000;
  for (int i = 0; i < n; i++) {
    /* 0.01 ms .. 1000 ms, a permutation of an even grid */
    cJSON_SetNumberValue(t, 0.01 * ((i * 7919L) % n + 1));
    assay_summary_add(s, rec);
  }
  cJSON_Delete(rec);
  cJSON *j = summarize(s);
  ASSERT_NUM(j, "latency.task_ms.count", n, 0);
  ASSERT_NUM(j, "latency.task_ms.mean", 500.005, 1e-6);
  ASSERT_NUM(j, "latency.task_ms.p50", 500, 500 * 0.025);
  ASSERT_NUM(j, "latency.task_ms.p95", 950, 950 * 0.025);
  ASSERT_NUM(j, "latency.task_ms.max", 1000, 1e-9);
  cJSON_Delete(j);
  assay_summary_free(s);
}

/* Records from a file a user hands over cannot grow the summary without
 * bound: distinct score names past the cap are counted, not kept. */
static void test_caps(void) {
  struct assay_summary *s = assay_summary_new();
  for (int i = 0; i < 1100; i++) {
    char name[32];
    snprintf(name, sizeof name, "s%d", i);
    add_score(s, name, 1);
  }
  cJSON *j = summarize(s);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(get(j, "scores")), 1024);
  ASSERT_NUM(j, "counts.ignored", 76, 0);
  ASSERT_NUM(j, "counts.items", 1100, 0);
  char *out = print_to_string(j);
  ASSERT_HAS(out, "warning: 76 ");
  free(out);
  cJSON_Delete(j);
  assay_summary_free(s);
}

/* Anything that is not a record object is ignored; odd members do not
 * crash or count as values. */
static void test_malformed_records(void) {
  struct assay_summary *s = assay_summary_new();
  assay_summary_add(s, NULL);
  add(s, json("[1,2]"));
  add(s, json("\"text\""));
  add(s, json("{\"scores\":[1,2],\"error\":\"oops\",\"attempts\":\"3\","
              "\"task_ms\":\"x\",\"output\":{\"usage\":[1]}}"));
  add(s, json("{\"scores\":{\"x\":5},\"error\":{\"code\":7}}"));
  cJSON *j = summarize(s);
  ASSERT_NUM(j, "counts.items", 2, 0);
  ASSERT_NUM(j, "counts.failed", 2, 0);
  ASSERT_NUM(j, "counts.failed_by_code.unknown", 2, 0);
  ASSERT_NUM(j, "scores.x.count", 0, 0);
  ASSERT_NUM(j, "scores.x.failures", 1, 0);
  ASSERT_NUM(j, "counts.attempts", 0, 0);
  ASSERT_NUM(j, "latency.task_ms.count", 0, 0);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(get(j, "usage")), 0);
  cJSON_Delete(j);
  assay_summary_free(s);
}

/* ---- the summary JSON ---------------------------------------------------- */

static const char run_text[] =
    "{\"name\":\"demo\",\"started\":\"2026-11-27T23:07:13Z\","
    "\"wall_ms\":2000,\"status\":\"complete\","
    "\"config\":{\"concurrency\":64,\"dataset\":\"qa.jsonl\"},"
    "\"plugins\":[{\"kind\":\"metric\",\"name\":\"equals\","
    "\"version\":\"1.0\",\"file\":\"/x/equals.so\",\"options\":{}}],"
    "\"engine\":{\"plugin_faults\":2,\"late_completions\":1,\"timeouts\":0,"
    "\"abandoned\":3,"
    "\"retries\":5,\"retries_by_cause\":{\"429\":4,\"5xx\":0,\"timeout\":1}},"
    "\"fingerprint\":\"abc\",\"counts\":\"not this\",\"format_version\":9}";

static void test_run_members(void) {
  struct assay_summary *s = assay_summary_new();
  for (int i = 0; i < 5; i++)
    add_score(s, "equals", i % 2);
  cJSON *run = json("%s", run_text);
  cJSON *j = assay_summary_json(s, run);
  assert_finite_json(j);
  /* The documented order of the first members. */
  static const char *const order[] = {"format_version", "record_format_version",
                                      "name",           "started",
                                      "wall_ms",        "status",
                                      "config",         "plugins",
                                      "engine"};
  const cJSON *m = j->child;
  for (size_t i = 0; i < assay__array_size(order); i++, m = m->next) {
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->string, order[i]);
  }
  ASSERT_NUM(j, "format_version", 1, 0);
  ASSERT_NUM(j, "record_format_version", ASSAY_RECORD_FORMAT_VERSION, 0);
  CU_ASSERT_STRING_EQUAL(get(j, "name")->valuestring, "demo");
  CU_ASSERT_STRING_EQUAL(get(j, "status")->valuestring, "complete");
  CU_ASSERT(cJSON_Compare(get(j, "config"), get(run, "config"), 1));
  CU_ASSERT(cJSON_Compare(get(j, "plugins"), get(run, "plugins"), 1));
  CU_ASSERT(cJSON_Compare(get(j, "engine"), get(run, "engine"), 1));
  /* Other run members are carried over; computed ones are not replaced. */
  CU_ASSERT_STRING_EQUAL(get(j, "fingerprint")->valuestring, "abc");
  CU_ASSERT(cJSON_IsObject(get(j, "counts")));
  ASSERT_NUM(j, "items_per_s", 2.5, 1e-12);
  ASSERT_NUM(j, "counts.plugin_faults", 2, 0);
  cJSON_Delete(j);

  /* A resumed run's rate counts only the records of this session. */
  cJSON_AddNumberToObject(run, "resumed_from", 3);
  j = assay_summary_json(s, run);
  ASSERT_NUM(j, "items_per_s", 1.0, 1e-12);
  ASSERT_NUM(j, "resumed_from", 3, 0);
  ASSERT_NUM(j, "counts.items", 5, 0);
  cJSON_Delete(j);

  /* Members the run lacks are null. */
  cJSON *bare = json("{}");
  j = assay_summary_json(s, bare);
  ASSERT_NULL_AT(j, "name");
  ASSERT_NULL_AT(j, "engine");
  ASSERT_NULL_AT(j, "items_per_s");
  ASSERT_NUM(j, "counts.plugin_faults", 0, 0);
  cJSON_Delete(j);
  cJSON_Delete(bare);
  cJSON_Delete(run);
  assay_summary_free(s);
}

/* The summary written to a file and read back is the same summary, and
 * prints the same table. */
static void test_json_round_trip(void) {
  struct assay_summary *s = assay_summary_new();
  for (int i = 1; i <= 7; i++) {
    add_score(s, "equals", i % 2);
    add_score(s, "ratio", 1.0 / i);
  }
  add(s, json("{\"error\":{\"code\":\"timeout\",\"message\":\"m\"},"
              "\"scores\":{},\"attempts\":3,\"task_ms\":12.5,"
              "\"output\":{\"usage\":{\"cost\":0.000123}}}"));
  cJSON *run = json("%s", run_text);
  cJSON *j = assay_summary_json(s, run);
  char *text = cJSON_Print(j);
  cJSON *back = cJSON_Parse(text);
  CU_ASSERT_PTR_NOT_NULL_FATAL(back);
  CU_ASSERT(cJSON_Compare(j, back, 1));
  ASSERT_NUM(back, "scores.ratio.mean", 0.37040816326530612, 1e-15);
  char *t1 = print_to_string(j);
  char *t2 = print_to_string(back);
  CU_ASSERT_STRING_EQUAL(t1, t2);
  free(t1);
  free(t2);
  free(text);
  cJSON_Delete(back);
  cJSON_Delete(j);
  cJSON_Delete(run);
  assay_summary_free(s);
}

/* ---- the table ----------------------------------------------------------- */

/* Splits line into whitespace-separated tokens and stores the offset just
 * past each token's end; returns the number of tokens. */
static int token_ends(const char *line, size_t len, size_t *ends, int max) {
  int n = 0;
  size_t i = 0;
  while (i < len && n < max) {
    while (i < len && line[i] == ' ')
      i++;
    if (i >= len)
      break;
    while (i < len && line[i] != ' ')
      i++;
    ends[n++] = i;
  }
  return n;
}

/* The table says when the loop thread was busy nearly all of a run that
 * lasted long enough to tell, and only then. */
static void test_loop_busy_note(void) {
  static const struct {
    double busy;
    int wall_ms;
    int said;
  } cases[] = {{0.95, 2000, 1}, {0.9, 500, 1},  {0.89, 2000, 0},
               {0.99, 499, 0},  {0.0, 9000, 0}, {-1, 9000, 0}};
  for (size_t i = 0; i < assay__array_size(cases); i++) {
    struct assay_summary *s = assay_summary_new();
    cJSON *run = json("{\"name\":\"busy\",\"wall_ms\":%d,\"status\":"
                      "\"completed\",\"engine\":{\"loop_busy\":%g}}",
                      cases[i].wall_ms, cases[i].busy);
    cJSON *j = assay_summary_json(s, run);
    char *out = print_to_string(j);
    char want[64];
    snprintf(want, sizeof want, "event loop: busy %.0f%% of the run",
             cases[i].busy * 100);
    int said = strstr(out, "event loop: busy") != NULL;
    CU_ASSERT_EQUAL(said, cases[i].said);
    if (cases[i].said)
      ASSERT_HAS(out, want);
    free(out);
    cJSON_Delete(j);
    cJSON_Delete(run);
    assay_summary_free(s);
  }
}

static void test_table(void) {
  struct assay_summary *s = assay_summary_new();
  for (int i = 1; i <= 4; i++) {
    add(s, json("{\"scores\":{\"equals\":{\"value\":%d},"
                "\"levenshtein_ratio\":{\"value\":%g},"
                "\"big\":{\"value\":%.17g}},"
                "\"error\":null,\"attempts\":1,\"task_ms\":%d,"
                "\"metrics_ms\":1,\"output\":{\"usage\":{\"total_tokens\":"
                "%d}}}",
                i, i / 8.0, 1e9 + i, 10 * i, 100 * i));
  }
  add(s, json("{\"scores\":{\"equals\":{\"value\":null,\"error\":\"e\"},"
              "\"levenshtein_ratio\":{\"value\":null},"
              "\"big\":{\"value\":null}},\"error\":null,\"attempts\":1}"));
  add(s, json("{\"scores\":{},\"error\":{\"code\":\"timeout\"},"
              "\"attempts\":2}"));
  cJSON *run = json("%s", run_text);
  cJSON *j = assay_summary_json(s, run);
  char *out = print_to_string(j);

  /* Header: name, status, items, ok/failed, wall time, items/s. */
  ASSERT_HAS(out, "run 'demo' (complete): 6 items, 5 ok, 1 failed in 2.00 s "
                  "(3 items/s)\n");
  /* Key numbers. */
  ASSERT_HAS(out, "2.5000");
  ASSERT_HAS(out, "1.2910");
  ASSERT_HAS(out, "0.6455");
  ASSERT_HAS(out, "1000000002.5000");
  ASSERT_HAS(out, "failed by code: timeout 1\n");
  ASSERT_HAS(out, "usage: total_tokens 1000\n");
  ASSERT_HAS(out, "engine: plugin faults 2, late completions 1, abandoned "
                  "items 3, retries 5 (429 4, timeout 1)\n");
  /* Plain ASCII, no escape sequences. */
  for (const char *p = out; *p; p++)
    CU_ASSERT((unsigned char)*p < 0x80 && (*p == '\n' || *p >= 0x20));

  /* The table: a header and one row per score, every numeric column
   * right-aligned on the header's column end. */
  const char *h = strstr(out, "\nscore ");
  CU_ASSERT_PTR_NOT_NULL_FATAL(h);
  h++;
  size_t head_ends[16], ends[16];
  const char *eol = strchr(h, '\n');
  int nh = token_ends(h, (size_t)(eol - h), head_ends, 16);
  CU_ASSERT_EQUAL_FATAL(nh, 8);
  static const char *const names[] = {"equals", "levenshtein_ratio", "big"};
  static const char *const firsts[][2] = {
      {"equals", "2.5000"}, {"levenshtein_ratio", "0.3125"}, {"big", NULL}};
  const char *line = eol + 1;
  for (int r = 0; r < 3; r++) {
    eol = strchr(line, '\n');
    CU_ASSERT_PTR_NOT_NULL_FATAL(eol);
    CU_ASSERT_EQUAL(strncmp(line, names[r], strlen(names[r])), 0);
    int n = token_ends(line, (size_t)(eol - line), ends, 16);
    CU_ASSERT_EQUAL_FATAL(n, 8);
    for (int c = 1; c < 8; c++)
      CU_ASSERT_EQUAL(ends[c], head_ends[c]);
    /* Numeric columns start after the widest name plus two spaces. */
    CU_ASSERT(ends[1] - strlen("4") >= strlen("levenshtein_ratio") + 2);
    if (firsts[r][1] != NULL)
      CU_ASSERT_PTR_NOT_NULL(strstr(line, firsts[r][1]));
    /* n 4 and failures 1 for every score. */
    CU_ASSERT_EQUAL(line[ends[1] - 1], '4');
    CU_ASSERT_EQUAL(line[ends[7] - 1], '1');
    line = eol + 1;
  }
  CU_ASSERT_EQUAL(*line, '\n'); /* a blank line ends the table */

  free(out);
  cJSON_Delete(j);
  cJSON_Delete(run);
  assay_summary_free(s);
}

/* A score name from a records file cannot inject control characters into
 * the terminal. */
static void test_table_hostile_name(void) {
  struct assay_summary *s = assay_summary_new();
  add_score(s, "a\\u001b[31mb\\nc", 1);
  cJSON *j = summarize(s);
  char *out = print_to_string(j);
  CU_ASSERT_PTR_NULL(strchr(out, '\x1b'));
  ASSERT_HAS(out, "a?[31mb?c");
  free(out);
  cJSON_Delete(j);
  assay_summary_free(s);
}

/* A summary file missing members (an older or hand-edited file) still
 * prints. */
static void test_print_partial(void) {
  cJSON *j = json("{\"scores\":{\"x\":{\"count\":2}}}");
  char *out = print_to_string(j);
  ASSERT_HAS(out, "run: - items, - ok, - failed\n");
  ASSERT_HAS(out, "\nx      2     -    -    -    -       -         -\n");
  free(out);
  cJSON_Delete(j);
  out = print_to_string(NULL);
  ASSERT_HAS(out, "no scores");
  free(out);
}

/* ---- data-driven: a run's records against the expected summary ----------- */

/* Every member of want is in got with the same value (numbers within a
 * relative 1e-12), and got has no member want lacks, in the same order. */
static void assert_matches(const cJSON *got, const cJSON *want,
                           const char *path) {
  if (cJSON_IsNumber(want)) {
    double g = cJSON_IsNumber(got) ? got->valuedouble : NAN;
    double w = want->valuedouble;
    int ok = fabs(g - w) <= 1e-12 * fmax(1.0, fabs(w));
    if (!ok)
      fprintf(stderr, "\n  %s: got %.17g, want %.17g\n", path, g, w);
    CU_ASSERT(ok);
    return;
  }
  if (cJSON_IsObject(want)) {
    CU_ASSERT_FATAL(cJSON_IsObject(got));
    if (cJSON_GetArraySize(got) != cJSON_GetArraySize(want))
      fprintf(stderr, "\n  %s: %d members, want %d\n", path,
              cJSON_GetArraySize(got), cJSON_GetArraySize(want));
    CU_ASSERT_EQUAL(cJSON_GetArraySize(got), cJSON_GetArraySize(want));
    const cJSON *w, *g = got->child;
    cJSON_ArrayForEach(w, want) {
      char *p = assay__format("%s.%s", path, w->string);
      if (g == NULL || strcmp(g->string, w->string) != 0)
        fprintf(stderr, "\n  %s: missing or out of order\n", p);
      CU_ASSERT(g != NULL && strcmp(g->string, w->string) == 0);
      assert_matches(cJSON_GetObjectItemCaseSensitive(got, w->string), w, p);
      free(p);
      g = g ? g->next : NULL;
    }
    return;
  }
  CU_ASSERT(cJSON_Compare(got, want, 1));
}

static void test_data_run(void) {
  char *path = test_src_path("data/summary/run.jsonl");
  char *epath = test_src_path("data/summary/run.expected.json");
  char *text = test_read_file(path, NULL);
  char *etext = test_read_file(epath, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  CU_ASSERT_PTR_NOT_NULL_FATAL(etext);
  cJSON *want = cJSON_Parse(etext);
  CU_ASSERT_PTR_NOT_NULL_FATAL(want);

  struct assay_summary *s = assay_summary_new();
  int lines = 0;
  for (char *line = text, *nl; *line; line = nl + 1) {
    nl = strchr(line, '\n');
    CU_ASSERT_PTR_NOT_NULL_FATAL(nl);
    *nl = '\0';
    cJSON *rec = cJSON_Parse(line);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
    assay_summary_add(s, rec);
    cJSON_Delete(rec);
    lines++;
  }
  CU_ASSERT_EQUAL(lines, 8);
  cJSON *j = summarize(s);
  const cJSON *w;
  cJSON_ArrayForEach(w, want) {
    assert_matches(cJSON_GetObjectItemCaseSensitive(j, w->string), w,
                   w->string);
  }
  cJSON_Delete(j);
  cJSON_Delete(want);
  assay_summary_free(s);
  free(text);
  free(etext);
  free(path);
  free(epath);
}

/* The block of text that follows marker in doc, from the line after the
 * next "```" fence opening to the closing fence (owned), or NULL. */
static char *doc_block(const char *doc, const char *marker) {
  const char *m = strstr(doc, marker);
  if (m == NULL)
    return NULL;
  const char *open = strstr(m, "```");
  const char *start = open ? strchr(open, '\n') : NULL;
  const char *end = start ? strstr(start + 1, "\n```") : NULL;
  if (end == NULL)
    return NULL;
  return assay__xstrndup(start + 1, (size_t)(end + 1 - (start + 1)));
}

/* docs/results.md shows the summary and the table of the recorded run:
 * they must be what the code produces, so the documentation cannot drift. */
static void test_docs_example(void) {
  char *dpath = test_src_path("../docs/results.md");
  char *doc = test_read_file(dpath, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
  char *json_text =
      doc_block(doc, "The summary of `tests/data/summary/run.jsonl`:");
  char *table = doc_block(doc, "and the table printed on standard error:");
  CU_ASSERT_PTR_NOT_NULL_FATAL(json_text);
  CU_ASSERT_PTR_NOT_NULL_FATAL(table);
  cJSON *want = cJSON_Parse(json_text);
  CU_ASSERT_PTR_NOT_NULL_FATAL(want);

  /* The members of the example the summary does not compute stand for
   * what the CLI provides. */
  static const char *const computed[] = {
      "format_version", "record_format_version",
      "items_per_s",    "counts",
      "scores",         "usage",
      "latency"};
  cJSON *run = cJSON_CreateObject();
  const cJSON *m;
  cJSON_ArrayForEach(m, want) {
    size_t i = 0;
    while (i < assay__array_size(computed) && strcmp(computed[i], m->string))
      i++;
    if (i == assay__array_size(computed))
      cJSON_AddItemToObject(run, m->string, cJSON_Duplicate(m, 1));
  }

  char *rpath = test_src_path("data/summary/run.jsonl");
  char *records = test_read_file(rpath, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(records);
  struct assay_summary *s = assay_summary_new();
  for (char *line = records, *nl; (nl = strchr(line, '\n')) != NULL;
       line = nl + 1) {
    *nl = '\0';
    cJSON *rec = cJSON_Parse(line);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
    assay_summary_add(s, rec);
    cJSON_Delete(rec);
  }
  cJSON *got = assay_summary_json(s, run);
  assert_matches(got, want, "summary");
  char *out = print_to_string(got);
  if (strcmp(out, table) != 0)
    fprintf(stderr, "\n  docs/results.md shows:\n%s  the code prints:\n%s",
            table, out);
  CU_ASSERT_STRING_EQUAL(out, table);

  free(out);
  cJSON_Delete(got);
  assay_summary_free(s);
  cJSON_Delete(run);
  cJSON_Delete(want);
  free(records);
  free(rpath);
  free(json_text);
  free(table);
  free(doc);
  free(dpath);
}

static const struct test_case stats_cases[] = {
    {"mean, std and stderr of 1,2,3,4", test_mean_std_stderr},
    {"a single value has std 0", test_single_record},
    {"zero records", test_zero_records},
    {"one record reads \"1 item\"", test_one_record_singular},
    {"a score that always failed is null", test_all_failed_is_null},
    {"failed scores are counted, not averaged", test_failures_counted},
    {"failed items by error code", test_failed_by_code},
    {"stable with a large offset", test_large_offset},
    {"never NaN or infinity", test_no_nan},
    {"scores in first-seen order", test_score_order},
    {"usage summed", test_usage_summed},
    {"latency exact for few records", test_latency_exact},
    {"latency percentiles from the histogram", test_latency_histogram},
    {"distinct names are capped", test_caps},
    {"malformed records", test_malformed_records},
    {"a recorded run", test_data_run},
    {NULL, NULL}};

static const struct test_case json_cases[] = {
    {"run members copied", test_run_members},
    {"JSON round trip", test_json_round_trip},
    {"the example in docs/results.md", test_docs_example},
    {NULL, NULL}};

static const struct test_case table_cases[] = {
    {"columns aligned, numbers shown", test_table},
    {"a saturated event loop is said", test_loop_busy_note},
    {"control characters in names", test_table_hostile_name},
    {"a partial summary prints", test_print_partial},
    {NULL, NULL}};

int main(int argc, char **argv) {
  static const struct test_suite suites[] = {
      {"statistics", NULL, NULL, stats_cases},
      {"json", NULL, NULL, json_cases},
      {"table", NULL, NULL, table_cases},
      {NULL, NULL, NULL, NULL}};
  return test_main(argc, argv, suites);
}
