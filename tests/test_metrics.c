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
#include <stdint.h>
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

static int collect_record(void *arg, const cJSON *record, const char *line,
                          size_t len) {
  struct collected *c = arg;
  CU_ASSERT(test_line_matches(record, line, len));
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
  /* Optional: text the score's reason must contain. */
  const char *want_r =
      cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tc, "reason"));
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
           cJSON_IsNull(error) &&
           (want_r == NULL || strstr(reason->valuestring, want_r) != NULL);
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
      snprintf(want, sizeof want, "value %.17g%s%.32s%s", want_v->valuedouble,
               want_r ? " (reason with '" : "", want_r ? want_r : "",
               want_r ? "')" : "");
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

/* ---- randomized cross-check of the LCS ------------------------------ */

/* xorshift64*: a fixed seed, so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t rng_below(uint32_t n) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545f4914f6cdd1du) >> 33) % n;
}

/* The plain O(n*m) dynamic programme, the definition the bit-parallel LCS
 * in plugins/text.c must match exactly. */
static size_t ref_lcs(const uint32_t *a, size_t na, const uint32_t *b,
                      size_t nb) {
  size_t *prev = calloc(nb + 1, sizeof *prev);
  size_t *cur = calloc(nb + 1, sizeof *cur);
  CU_ASSERT_FATAL(prev != NULL && cur != NULL);
  for (size_t i = 1; i <= na; i++) {
    for (size_t j = 1; j <= nb; j++) {
      if (a[i - 1] == b[j - 1])
        cur[j] = prev[j - 1] + 1;
      else
        cur[j] = prev[j] > cur[j - 1] ? prev[j] : cur[j - 1];
    }
    size_t *t = prev;
    prev = cur, cur = t;
  }
  size_t r = prev[nb];
  free(prev);
  free(cur);
  return r;
}

/* Appends code point c as UTF-8 to buf (at least 5 bytes free). */
static size_t put_utf8(char *buf, uint32_t c) {
  if (c < 0x80) {
    buf[0] = (char)c;
    return 1;
  }
  if (c < 0x800) {
    buf[0] = (char)(0xc0 | (c >> 6));
    buf[1] = (char)(0x80 | (c & 0x3f));
    return 2;
  }
  if (c < 0x10000) {
    buf[0] = (char)(0xe0 | (c >> 12));
    buf[1] = (char)(0x80 | ((c >> 6) & 0x3f));
    buf[2] = (char)(0x80 | (c & 0x3f));
    return 3;
  }
  buf[0] = (char)(0xf0 | (c >> 18));
  buf[1] = (char)(0x80 | ((c >> 12) & 0x3f));
  buf[2] = (char)(0x80 | ((c >> 6) & 0x3f));
  buf[3] = (char)(0x80 | (c & 0x3f));
  return 4;
}

/* The NUL-terminated UTF-8 text of n code points (owned). */
static char *utf8_of(const uint32_t *cps, size_t n) {
  char *s = assay__xmalloc(4 * n + 1);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    k += put_utf8(s + k, cps[i]);
  s[k] = '\0';
  return s;
}

/* Alphabets of the random texts: code points are drawn from one of them.
 * They cover the paths of the LCS: symbols all below 256 (a direct mask
 * table, ASCII or Latin-1), and larger ones (renumbered through a hash
 * table), small alphabets (long LCS) and large ones. */
enum alphabet {
  AB_ABC,      /* a, b, c */
  AB_PRINT,    /* printable ASCII */
  AB_LATIN1,   /* ASCII letters and Latin-1 */
  AB_FEW_WIDE, /* a, e-acute, zhe, a CJK ideograph, an emoji */
  AB_BMP,      /* 300 code points spread over the BMP */
  AB_ANY,      /* any scalar value but NUL */
  AB_COUNT
};

static uint32_t random_cp(enum alphabet ab) {
  static const uint32_t few[] = {'a', 0xe9, 0x436, 0x4e2d, 0x1f600};
  switch (ab) {
  case AB_ABC:
    return 'a' + rng_below(3);
  case AB_PRINT:
    return 0x20 + rng_below(0x5f);
  case AB_LATIN1:
    return rng_below(2) ? 'a' + rng_below(26) : 0xa0 + rng_below(0x60);
  case AB_FEW_WIDE:
    return few[rng_below(5)];
  case AB_BMP:
    return 0x100 + 167 * rng_below(300); /* below the surrogates */
  default: {
    uint32_t c;
    do
      c = 1 + rng_below(0x10ffff);
    while (c >= 0xd800 && c <= 0xdfff);
    return c;
  }
  }
}

/* n random code points of ab in a (n entries). */
static void random_text(uint32_t *a, size_t n, enum alphabet ab) {
  for (size_t i = 0; i < n; i++)
    a[i] = random_cp(ab);
}

/* b (at most cap entries) made from a by random edits, so that texts over
 * a large alphabet still share a long subsequence, prefix and suffix. */
static size_t mutate(const uint32_t *a, size_t na, uint32_t *b, size_t cap,
                     enum alphabet ab) {
  size_t nb = 0;
  uint32_t rate = 1 + rng_below(30); /* percent of positions edited */
  for (size_t i = 0; i < na && nb < cap; i++) {
    if (rng_below(100) >= rate) {
      b[nb++] = a[i];
      continue;
    }
    switch (rng_below(3)) {
    case 0: /* delete */
      break;
    case 1: /* substitute */
      b[nb++] = random_cp(ab);
      break;
    default: /* insert */
      b[nb++] = random_cp(ab);
      if (nb < cap)
        b[nb++] = a[i];
    }
  }
  return nb;
}

/* Case-folds the code points the fold check uses: ASCII A-Z, E-acute and
 * Cyrillic ZHE; the rest of its alphabet is already folded. */
static uint32_t test_fold(uint32_t c) {
  if (c >= 'A' && c <= 'Z')
    return c + ('a' - 'A');
  if (c == 0xc9 || c == 0x416)
    return c + 0x20;
  return c;
}

#define LCS_MAX_LEN 1025

struct lcs_pair {
  uint32_t a[LCS_MAX_LEN], b[LCS_MAX_LEN];
  size_t na, nb;
};

/*
 * Scores the pairs with levenshtein_ratio (case_sensitive unless fold) and
 * checks each record's distance and lengths, read from the reason, against
 * the reference DP over the texts (case-folded by test_fold when fold).
 * Returns the number of pairs that disagree.
 */
static int check_lcs_pairs(const struct lcs_pair *pairs, size_t n, int fold) {
  cJSON *items = cJSON_CreateArray();
  for (size_t i = 0; i < n; i++) {
    cJSON *it = cJSON_CreateObject();
    char *a = utf8_of(pairs[i].a, pairs[i].na);
    char *b = utf8_of(pairs[i].b, pairs[i].nb);
    cJSON_AddStringToObject(it, "output", a);
    cJSON_AddStringToObject(it, "reference", b);
    cJSON_AddItemToArray(items, it);
    free(a);
    free(b);
  }
  cJSON *opts = cJSON_CreateObject();
  cJSON_AddBoolToObject(opts, "case_sensitive", !fold);
  char *err = NULL;
  cJSON *records = score_items("levenshtein_ratio", opts, items, 2, &err);
  CU_ASSERT_FATAL(records != NULL);
  CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(records), (int)n);
  int bad = 0;
  uint32_t *fa = assay__xmalloc(LCS_MAX_LEN * sizeof *fa);
  uint32_t *fb = assay__xmalloc(LCS_MAX_LEN * sizeof *fb);
  for (size_t i = 0; i < n; i++) {
    const struct lcs_pair *pr = &pairs[i];
    for (size_t k = 0; k < pr->na; k++)
      fa[k] = fold ? test_fold(pr->a[k]) : pr->a[k];
    for (size_t k = 0; k < pr->nb; k++)
      fb[k] = fold ? test_fold(pr->b[k]) : pr->b[k];
    size_t lcs = ref_lcs(fa, pr->na, fb, pr->nb);
    size_t want = pr->na + pr->nb - 2 * lcs;
    const cJSON *score = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(records, (int)i),
                                         "scores"),
        "levenshtein_ratio");
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(score, "value");
    const char *reason =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(score, "reason"));
    const char *error =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(score, "error"));
    size_t dist = 0, na = 0, nb = 0;
    double total = (double)(pr->na + pr->nb);
    double wantv = total == 0 ? 1.0 : 1.0 - (double)want / total;
    if (reason == NULL || !cJSON_IsNumber(value) ||
        sscanf(reason,
               "%zu insertion%*[^(](%zu char%*[a-z]) into the "
               "reference (%zu)",
               &dist, &na, &nb) != 3 ||
        dist != want || na != pr->na || nb != pr->nb ||
        fabs(value->valuedouble - wantv) > 1e-12) {
      if (bad++ < 5)
        fprintf(stderr,
                "\n  pair %zu (%zu and %zu code points%s): want distance "
                "%zu, got %s\n",
                i, pr->na, pr->nb, fold ? ", folded" : "", want,
                reason != NULL  ? reason
                : error != NULL ? error
                                : "no score");
    }
  }
  free(fa);
  free(fb);
  cJSON_Delete(records);
  cJSON_Delete(items);
  cJSON_Delete(opts);
  free(err);
  return bad;
}

/*
 * levenshtein_ratio's distance is exact: over thousands of random pairs
 * (lengths 0..300, lengths at and around the 64-bit word boundaries up to
 * 1025, small and large alphabets, unrelated and edited texts) it equals
 * the one of the plain dynamic programme.
 */
static void test_lcs_random(void) {
  static const size_t edges[] = {1,   2,   63,  64,  65,  127, 128, 129,
                                 191, 192, 193, 255, 256, 257, 511, 1025};
  const size_t nedges = sizeof edges / sizeof edges[0];
  const size_t nrandom = 3000, n = nrandom + nedges * nedges;
  struct lcs_pair *pairs = assay__xcalloc(n, sizeof *pairs);
  for (size_t i = 0; i < n; i++) {
    struct lcs_pair *pr = &pairs[i];
    enum alphabet ab = (enum alphabet)(i % AB_COUNT);
    if (i < nrandom) {
      pr->na = rng_below(301);
    } else {
      /* every pair of edge lengths */
      pr->na = edges[(i - nrandom) / nedges];
    }
    random_text(pr->a, pr->na, ab);
    if (i < nrandom && rng_below(2)) {
      pr->nb = rng_below(301);
      random_text(pr->b, pr->nb, ab);
    } else if (i < nrandom) {
      pr->nb = mutate(pr->a, pr->na, pr->b, LCS_MAX_LEN, ab);
    } else {
      pr->nb = edges[(i - nrandom) % nedges];
      if (rng_below(2)) {
        random_text(pr->b, pr->nb, ab);
      } else {
        /* a prefix of an edited a, padded to the length wanted */
        size_t m = mutate(pr->a, pr->na, pr->b, pr->nb, ab);
        random_text(pr->b + m, pr->nb - m, ab);
      }
    }
  }
  int bad = check_lcs_pairs(pairs, n, 0);
  if (bad)
    fprintf(stderr, "\n  %d of %zu random pairs wrong\n", bad, n);
  CU_ASSERT_EQUAL(bad, 0);
  free(pairs);
}

/* The same with case folding on: texts of mixed case, ASCII or not, fold
 * to code points first, and the distance is the one of the folded texts. */
static void test_lcs_random_folded(void) {
  static const uint32_t abc[] = {'a',  'A',   'b',   'B',    0xc9,
                                 0xe9, 0x416, 0x436, 0x4e2d, 'z'};
  const size_t n = 1500;
  struct lcs_pair *pairs = assay__xcalloc(n, sizeof *pairs);
  for (size_t i = 0; i < n; i++) {
    struct lcs_pair *pr = &pairs[i];
    /* a third plain ASCII, the rest with non-ASCII letters, and lengths
     * past the 256 code points metrics keep on the stack */
    uint32_t kinds = i % 3 == 0 ? 4 : 10;
    pr->na = rng_below(i % 10 == 0 ? 600 : 301);
    pr->nb = rng_below(i % 10 == 0 ? 600 : 301);
    for (size_t k = 0; k < pr->na; k++)
      pr->a[k] = abc[rng_below(kinds)];
    for (size_t k = 0; k < pr->nb; k++)
      pr->b[k] = abc[rng_below(kinds)];
  }
  int bad = check_lcs_pairs(pairs, n, 1);
  if (bad)
    fprintf(stderr, "\n  %d of %zu folded random pairs wrong\n", bad, n);
  CU_ASSERT_EQUAL(bad, 0);
  free(pairs);
}

/*
 * rougeL takes the same LCS over word ids: random word sequences (a
 * vocabulary of 12 words, and one of 600, beyond the direct mask table)
 * give exactly the F-measure of the reference DP's LCS.
 */
static void test_lcs_random_rouge(void) {
  const size_t n = 600;
  cJSON *items = cJSON_CreateArray();
  double *want = assay__xcalloc(n, sizeof *want);
  uint32_t *a = assay__xmalloc(400 * sizeof *a),
           *b = assay__xmalloc(400 * sizeof *b);
  char *text = assay__xmalloc(400 * 8);
  for (size_t i = 0; i < n; i++) {
    uint32_t vocab = i % 2 ? 12 : 600;
    size_t na = 1 + rng_below(i % 5 ? 80 : 400),
           nb = 1 + rng_below(i % 5 ? 80 : 400);
    for (size_t k = 0; k < na; k++)
      a[k] = rng_below(vocab);
    if (i % 3 == 0)
      nb = mutate(a, na, b, 399, AB_ABC) + 1, b[nb - 1] = 0;
    else
      for (size_t k = 0; k < nb; k++)
        b[k] = rng_below(vocab);
    size_t lcs = ref_lcs(a, na, b, nb);
    /* output a is the hypothesis, reference b */
    double p = (double)lcs / (double)na, r = (double)lcs / (double)nb;
    want[i] = p + r > 0 ? 2 * p * r / (p + r) : 0;
    cJSON *it = cJSON_CreateObject();
    for (int side = 0; side < 2; side++) {
      const uint32_t *w = side ? b : a;
      size_t nw = side ? nb : na, len = 0;
      for (size_t k = 0; k < nw; k++)
        len +=
            (size_t)sprintf(text + len, "%sw%u", k ? " " : "", (unsigned)w[k]);
      cJSON_AddStringToObject(it, side ? "reference" : "output", text);
    }
    cJSON_AddItemToArray(items, it);
  }
  cJSON *opts = cJSON_Parse("{\"rouge_type\":\"rougeL\"}");
  char *err = NULL;
  cJSON *records = score_items("rouge", opts, items, 2, &err);
  CU_ASSERT_FATAL(records != NULL);
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(
                cJSON_GetArrayItem(records, (int)i), "scores"),
            "rouge"),
        "value");
    if (!cJSON_IsNumber(v) || fabs(v->valuedouble - want[i]) > 1e-12) {
      if (bad++ < 5)
        fprintf(stderr, "\n  rougeL pair %zu: want %.17g, got %.17g\n", i,
                want[i], cJSON_IsNumber(v) ? v->valuedouble : -1.0);
    }
  }
  CU_ASSERT_EQUAL(bad, 0);
  cJSON_Delete(records);
  cJSON_Delete(items);
  cJSON_Delete(opts);
  free(err);
  free(want);
  free(a);
  free(b);
  free(text);
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
    {"lcs random", test_lcs_random},
    {"lcs random folded", test_lcs_random_folded},
    {"lcs random rougeL", test_lcs_random_rouge},
    {NULL, NULL}};

static const struct test_suite suites[] = {
    {"data", suite_init, suite_cleanup, data_cases},
    {"plugins", suite_init, suite_cleanup, plugin_cases},
    {NULL, NULL, NULL, NULL}};

int main(int argc, char **argv) {
  return test_main(argc, argv, suites);
}
