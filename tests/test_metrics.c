/*
 * The built-in metrics, run the way users run them: each case of
 * tests/data/metrics/<metric>.json loads the built plugin through the
 * loader (libltdl), adds it to a real engine with the case's options and
 * scores a one-line JSONL dataset holding the case's input (scoring mode,
 * no task). The record's score must have the expected value (within 1e-6)
 * or an error containing the expected text; a config error (init or option
 * rejected) counts as the case's error too.
 *
 * A case: {"name", "options"?, "input", "repeat"?, "value" | "error"}.
 * "repeat": {"key": [TEXT, N]} sets input[key] to TEXT repeated N times, for
 * the size caps, so data files stay small.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <cjson/cJSON.h>

#include "dataset.h"
#include "engine.h"
#include "loader.h"
#include "runner.h"
#include "util.h"

static struct assay_loader *loader;

static const char *const metric_names[] = {
    "equals",        "contains", "regex_match", "is_json", "levenshtein_ratio",
    "sentence_bleu", "rouge",    NULL};

static int suite_init(void) {
  char *err = NULL;
  if (assay_loader_new(&loader, NULL, &err) != 0) {
    fprintf(stderr, "cannot create the loader: %s\n", err);
    free(err);
    return 1;
  }
  return 0;
}

static int suite_cleanup(void) {
  assay_loader_free(loader);
  loader = NULL;
  return 0;
}

/* The built module of a metric, as a path spec so that no installed copy
 * on the plugin path can stand in for it. */
static char *plugin_spec(const char *metric) {
  return assay__format("%s/plugins/%s.la", TEST_TOP_BUILDDIR, metric);
}

struct collected {
  cJSON *records;
};

static int collect_record(void *arg, const cJSON *record) {
  struct collected *c = arg;
  cJSON_AddItemToArray(c->records, cJSON_Duplicate(record, 1));
  return 0;
}

/*
 * Runs metric with opts (may be NULL) over items (a JSON array of objects,
 * one record each) with threads workers. Returns the records (owned array)
 * in dataset order, or NULL with *errmsg set when the engine rejected the
 * configuration.
 */
static cJSON *score_items(const char *metric, const cJSON *opts,
                          const cJSON *items, int threads, char **errmsg) {
  struct assay_engine_opts o;
  assay_engine_opts_init(&o);
  o.threads = threads;
  o.concurrency = 16;
  o.retries = 0;
  o.seed = 1;
  struct assay_engine *e = NULL;
  CU_ASSERT_FATAL(assay_engine_new(&e, &o, errmsg) == 0);
  char *spec = plugin_spec(metric);
  int rc =
      assay_engine_add(e, loader, ASSAY_KIND_METRIC, spec, opts, NULL, errmsg);
  free(spec);
  if (rc != 0) {
    CU_ASSERT(assay_engine_free(e) == 0);
    return NULL;
  }
  /* One item per line: compact JSON never holds a raw newline. */
  size_t cap = 1024, len = 0;
  char *buf = assay__xmalloc(cap);
  const cJSON *it;
  cJSON_ArrayForEach(it, items) {
    char *line = cJSON_PrintUnformatted(it);
    size_t n = strlen(line);
    if (len + n + 2 > cap) {
      while (len + n + 2 > cap)
        cap *= 2;
      buf = assay__xrealloc(buf, cap);
    }
    memcpy(buf + len, line, n);
    len += n;
    buf[len++] = '\n';
    free(line);
  }
  struct assay_dataset *ds = NULL;
  char *err = NULL;
  CU_ASSERT_FATAL(assay_dataset_open_mem(&ds, "cases.jsonl", buf, len,
                                         ASSAY_DATASET_JSONL, 0, &err) == 0);
  struct collected c = {cJSON_CreateArray()};
  rc = assay_engine_run(e, ds, collect_record, &c, &err);
  if (rc != 0)
    fprintf(stderr, "engine run failed: %s\n", err ? err : "?");
  CU_ASSERT(rc == 0);
  free(err);
  assay_dataset_free(ds);
  free(buf);
  CU_ASSERT(assay_engine_free(e) == 0);
  return c.records;
}

/* input with the "repeat" texts of a case applied (owned). */
static cJSON *case_input(const cJSON *tc) {
  cJSON *in = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(tc, "input"), 1);
  const cJSON *rep;
  cJSON_ArrayForEach(rep, cJSON_GetObjectItemCaseSensitive(tc, "repeat")) {
    const char *text = cJSON_GetArrayItem(rep, 0)->valuestring;
    int times = cJSON_GetArrayItem(rep, 1)->valueint;
    size_t tl = strlen(text);
    char *s = assay__xmalloc(tl * (size_t)times + 1);
    for (int i = 0; i < times; i++)
      memcpy(s + tl * (size_t)i, text, tl);
    s[tl * (size_t)times] = '\0';
    cJSON_DeleteItemFromObjectCaseSensitive(in, rep->string);
    cJSON_AddStringToObject(in, rep->string, s);
    free(s);
  }
  return in;
}

/* Checks one case; returns 1 when it passed, printing why not otherwise. */
static int run_case(const char *metric, const cJSON *tc) {
  const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(tc, "name"));
  const cJSON *opts = cJSON_GetObjectItemCaseSensitive(tc, "options");
  const cJSON *want_v = cJSON_GetObjectItemCaseSensitive(tc, "value");
  const char *want_e =
      cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tc, "error"));
  if (name == NULL || (want_v == NULL) == (want_e == NULL) ||
      (want_v != NULL && !cJSON_IsNumber(want_v))) {
    fprintf(stderr, "%s: malformed case '%s'\n", metric,
            name ? name : "(no name)");
    return 0;
  }
  cJSON *items = cJSON_CreateArray();
  cJSON_AddItemToArray(items, case_input(tc));
  char *err = NULL;
  cJSON *records = score_items(metric, opts, items, 2, &err);
  cJSON_Delete(items);
  int ok = 0;
  char *got = NULL;
  if (records == NULL) {
    got = assay__format("config error: %s", err ? err : "?");
    ok = want_e != NULL && err != NULL && strstr(err, want_e) != NULL;
  } else {
    const cJSON *rec = cJSON_GetArrayItem(records, 0);
    const cJSON *score = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(rec, "scores"), metric);
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(score, "value");
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(score, "reason");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(score, "error");
    if (cJSON_GetArraySize(records) != 1 || score == NULL) {
      got = assay__format("no score in %d record(s)",
                          cJSON_GetArraySize(records));
    } else if (cJSON_IsNumber(value)) {
      got = assay__format("value %.17g (%s)", value->valuedouble,
                          cJSON_IsString(reason) ? reason->valuestring
                                                 : "no reason");
      /* Every score explains itself. */
      ok = want_v != NULL &&
           fabs(value->valuedouble - want_v->valuedouble) <= 1e-6 &&
           cJSON_IsString(reason) && reason->valuestring[0] != '\0' &&
           cJSON_IsNull(error);
    } else {
      got = assay__format("error %s", cJSON_IsString(error) ? error->valuestring
                                                            : "(none)");
      ok = want_e != NULL && cJSON_IsString(error) &&
           strstr(error->valuestring, want_e) != NULL;
    }
  }
  if (!ok) {
    char want[64];
    if (want_v)
      snprintf(want, sizeof want, "value %.17g", want_v->valuedouble);
    fprintf(stderr, "\n  %s: case '%s': expected %s%s%s, got %s\n", metric,
            name, want_v ? want : "error containing '", want_v ? "" : want_e,
            want_v ? "" : "'", got);
  }
  free(got);
  free(err);
  cJSON_Delete(records);
  return ok;
}

static void run_data_file(const char *metric) {
  char *rel = assay__format("data/metrics/%s.json", metric);
  char *path = test_src_path(rel);
  free(rel);
  char *text = test_read_file(path, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  cJSON *cases = cJSON_Parse(text);
  free(text);
  if (cases == NULL)
    fprintf(stderr, "%s: not valid JSON\n", path);
  CU_ASSERT_FATAL(cJSON_IsArray(cases));
  int n = 0, failed = 0;
  const cJSON *tc;
  cJSON_ArrayForEach(tc, cases) {
    n++;
    if (!run_case(metric, tc))
      failed++;
  }
  fprintf(stderr, " (%s: %d cases, %d failed) ", metric, n, failed);
  CU_ASSERT(n > 0);
  CU_ASSERT_EQUAL(failed, 0);
  cJSON_Delete(cases);
  free(path);
}

static void test_equals(void) {
  run_data_file("equals");
}
static void test_contains(void) {
  run_data_file("contains");
}
static void test_regex_match(void) {
  run_data_file("regex_match");
}
static void test_is_json(void) {
  run_data_file("is_json");
}
static void test_levenshtein_ratio(void) {
  run_data_file("levenshtein_ratio");
}
static void test_sentence_bleu(void) {
  run_data_file("sentence_bleu");
}
static void test_rouge(void) {
  run_data_file("rouge");
}

/*
 * Each metric plugin is what `assay plugins` shows and the engine relies
 * on: one metric component named like its file, sync, thread-safe, reading
 * 'output', with a help line for every option and input.
 */
static void test_descriptors(void) {
  for (const char *const *m = metric_names; *m != NULL; m++) {
    char *spec = plugin_spec(*m), *err = NULL;
    struct assay_module *mod = NULL;
    const struct assay_component *comp = NULL;
    int rc =
        assay_loader_find(loader, spec, ASSAY_KIND_METRIC, &mod, &comp, &err);
    if (rc != 0)
      fprintf(stderr, "\n  %s: %s\n", spec, err ? err : "?");
    CU_ASSERT_FATAL(rc == 0);
    CU_ASSERT_STRING_EQUAL(mod->desc->name, *m);
    CU_ASSERT_STRING_EQUAL(comp->name, *m);
    CU_ASSERT_PTR_NULL(mod->desc->components[1]);
    CU_ASSERT_EQUAL(comp->kind, ASSAY_KIND_METRIC);
    CU_ASSERT_PTR_NOT_NULL(comp->run_sync);
    CU_ASSERT(comp->flags & ASSAY_THREAD_SAFE);
    CU_ASSERT_PTR_NOT_NULL(comp->description);
    CU_ASSERT_FATAL(comp->inputs != NULL);
    CU_ASSERT_STRING_EQUAL(comp->inputs[0].name, "output");
    for (const struct assay_input *in = comp->inputs; in->name; in++)
      CU_ASSERT(in->help != NULL && in->help[0] != '\0');
    for (const struct assay_option *o = comp->options; o && o->name; o++)
      CU_ASSERT(o->help != NULL && o->help[0] != '\0');
    free(spec);
    free(err);
  }
}

/* The `name` option renames the score, so one metric can run twice. */
static void test_renamed_score(void) {
  cJSON *opts = cJSON_Parse("{\"name\":\"strict\",\"case_sensitive\":true}");
  cJSON *items = cJSON_Parse("[{\"output\":\"A\",\"reference\":\"a\"}]");
  char *err = NULL;
  cJSON *records = score_items("equals", opts, items, 1, &err);
  CU_ASSERT_FATAL(records != NULL);
  const cJSON *scores = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetArrayItem(records, 0), "scores");
  const cJSON *strict = cJSON_GetObjectItemCaseSensitive(scores, "strict");
  CU_ASSERT_PTR_NULL(cJSON_GetObjectItemCaseSensitive(scores, "equals"));
  CU_ASSERT(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(strict, "value")) &&
            cJSON_GetObjectItemCaseSensitive(strict, "value")->valuedouble ==
                0);
  cJSON_Delete(records);
  cJSON_Delete(items);
  cJSON_Delete(opts);
  free(err);
}

/*
 * The metrics claim ASSAY_THREAD_SAFE: many items scored on 4 threads at
 * once must give exactly the values of the data files (the stemmer, the
 * regex match data and every buffer are per call).
 */
static void test_parallel_scoring(void) {
  static const struct {
    const char *metric, *opts, *a, *b;
    double value;
  } cases[] = {
      {"rouge", "{\"use_stemmer\":true}", "the cats were running",
       "the cat was run", 0.75},
      {"rouge", "{\"rouge_type\":\"rougeLsum\"}",
       "w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5", "w1 w2 w3 w4 w5", 0.53333333333333333},
      {"sentence_bleu", "{}", "the cat sat on the mat", "the cat is on the mat",
       0.25406637407730737},
      {"levenshtein_ratio", "{}", "maple", "apple", 0.8},
      {"regex_match", "{\"regex\":\"(?i)^the\\\\s+cat\"}", "The  cat", "", 1},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    cJSON *opts = cJSON_Parse(cases[k].opts);
    cJSON *items = cJSON_CreateArray();
    for (int i = 0; i < 400; i++) {
      cJSON *it = cJSON_CreateObject();
      cJSON_AddNumberToObject(it, "id", i);
      cJSON_AddStringToObject(it, "output", cases[k].a);
      cJSON_AddStringToObject(it, "reference", cases[k].b);
      cJSON_AddItemToArray(items, it);
    }
    char *err = NULL;
    cJSON *records = score_items(cases[k].metric, opts, items, 4, &err);
    CU_ASSERT_FATAL(records != NULL);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(records), 400);
    int bad = 0;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, records) {
      const cJSON *v = cJSON_GetObjectItemCaseSensitive(
          cJSON_GetObjectItemCaseSensitive(
              cJSON_GetObjectItemCaseSensitive(rec, "scores"), cases[k].metric),
          "value");
      if (!cJSON_IsNumber(v) || fabs(v->valuedouble - cases[k].value) > 1e-9)
        bad++;
    }
    if (bad)
      fprintf(stderr, "\n  %s: %d of 400 parallel scores wrong\n",
              cases[k].metric, bad);
    CU_ASSERT_EQUAL(bad, 0);
    cJSON_Delete(records);
    cJSON_Delete(items);
    cJSON_Delete(opts);
    free(err);
  }
}

static const struct test_case data_cases[] = {
    {"equals", test_equals},
    {"contains", test_contains},
    {"regex_match", test_regex_match},
    {"is_json", test_is_json},
    {"levenshtein_ratio", test_levenshtein_ratio},
    {"sentence_bleu", test_sentence_bleu},
    {"rouge", test_rouge},
    {NULL, NULL}};

static const struct test_case plugin_cases[] = {
    {"descriptors", test_descriptors},
    {"renamed score", test_renamed_score},
    {"parallel scoring", test_parallel_scoring},
    {NULL, NULL}};

static const struct test_suite suites[] = {
    {"data", suite_init, suite_cleanup, data_cases},
    {"plugins", suite_init, suite_cleanup, plugin_cases},
    {NULL, NULL, NULL, NULL}};

int main(int argc, char **argv) {
  return test_main(argc, argv, suites);
}
