/*
 * CI gate tests: what a CI pipeline relies on. --pass and --fail-under
 * parse as documented and refuse what is not a threshold; records pass or
 * fail for the documented reasons, named in the message; fail-under names
 * every violated gate; the trials reducers (item mean, item max, pass@k,
 * pass^k) match values computed by hand on 3 items x 4 trials; the JUnit
 * report is well-formed XML whatever the ids and messages hold (read back
 * with python3's xml.etree by tests/data/gate/check_junit.py), its counts
 * are right and it replaces the target atomically. Data-driven cases live
 * in tests/data/gate/.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "gate.h"
#include "runner.h"
#include "summary.h"
#include "util.h"

/* ---- helpers ------------------------------------------------------------ */

static const cJSON *get(const cJSON *j, const char *path) {
  return assay__json_path(j, path);
}

static double num(const cJSON *j, const char *path) {
  const cJSON *v = get(j, path);
  return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

#define ASSERT_NUM(j, path, want)                                              \
  do {                                                                         \
    double got_ = num((j), (path)), want_ = (double)(want);                    \
    int ok_ = fabs(got_ - want_) <= 1e-12 * fmax(1.0, fabs(want_));            \
    if (!ok_)                                                                  \
      fprintf(stderr, "\n  %s: got %.17g, want %.17g\n", (path), got_,         \
              (double)(want));                                                 \
    CU_ASSERT(ok_);                                                            \
  } while (0)

#define ASSERT_NULL_AT(j, path)                                                \
  do {                                                                         \
    int ok_ = cJSON_IsNull(get((j), (path)));                                  \
    if (!ok_)                                                                  \
      fprintf(stderr, "\n  %s: not null\n", (path));                           \
    CU_ASSERT(ok_);                                                            \
  } while (0)

#define ASSERT_HAS(text, sub)                                                  \
  do {                                                                         \
    const char *t_ = (text);                                                   \
    int ok_ = t_ != NULL && strstr(t_, (sub)) != NULL;                         \
    if (!ok_)                                                                  \
      fprintf(stderr, "\n  \"%s\" lacks \"%s\"\n", t_ ? t_ : "(null)", (sub)); \
    CU_ASSERT(ok_);                                                            \
  } while (0)

#define ASSERT_STR(got, want)                                                  \
  do {                                                                         \
    const char *g_ = (got), *w_ = (want);                                      \
    int ok_ = g_ != NULL && strcmp(g_, w_) == 0;                               \
    if (!ok_)                                                                  \
      fprintf(stderr, "\n  got \"%s\", want \"%s\"\n", g_ ? g_ : "(null)",     \
              w_);                                                             \
    CU_ASSERT(ok_);                                                            \
  } while (0)

/* The records of a JSONL file under tests/ (owned array of owned). */
static cJSON *read_jsonl(const char *rel) {
  char *path = test_src_path(rel);
  char *text = test_read_file(path, NULL);
  if (text == NULL)
    fprintf(stderr, "\n  cannot read %s\n", path);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  cJSON *all = cJSON_CreateArray();
  for (char *line = text, *nl; *line; line = nl + 1) {
    nl = strchr(line, '\n');
    CU_ASSERT_PTR_NOT_NULL_FATAL(nl);
    *nl = '\0';
    cJSON *rec = cJSON_Parse(line);
    if (rec == NULL)
      fprintf(stderr, "\n  %s: not JSON: %s\n", path, line);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
    cJSON_AddItemToArray(all, rec);
  }
  free(text);
  free(path);
  return all;
}

/* Parses n threshold texts into t (each must parse). */
static void parse_all(const char *const *texts, size_t n,
                      struct assay_threshold *t) {
  for (size_t i = 0; i < n; i++) {
    char *err = NULL;
    int rc = assay_threshold_parse(texts[i], &t[i], &err);
    if (rc != 0)
      fprintf(stderr, "\n  '%s': %s\n", texts[i], err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
  }
}

static void release_all(struct assay_threshold *t, size_t n) {
  for (size_t i = 0; i < n; i++)
    assay_threshold_release(&t[i]);
}

/* The summary of records with thresholds (owned). */
static cJSON *summarize(const cJSON *records, const struct assay_threshold *t,
                        size_t n) {
  struct assay_summary *s = assay_summary_new();
  assay_summary_set_thresholds(s, t, n);
  const cJSON *r;
  cJSON_ArrayForEach(r, records) assay_summary_add(s, r);
  cJSON *j = assay_summary_json(s, NULL);
  assay_summary_free(s);
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

/* A fresh empty directory (owned path). */
static char *make_tmpdir(void) {
  const char *base = getenv("TMPDIR");
  char *tmpl =
      assay__format("%s/assay-gate.XXXXXX", base && *base ? base : "/tmp");
  CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(tmpl));
  return tmpl;
}

/* Names in dir other than . and .., joined with spaces (owned). */
static char *dir_listing(const char *dir) {
  DIR *d = opendir(dir);
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  char *out = assay__xstrdup("");
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    char *n = assay__format("%s%s%s", out, *out ? " " : "", e->d_name);
    free(out);
    out = n;
  }
  closedir(d);
  return out;
}

/* Removes dir and the plain files and empty directories in it. */
static void remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    char *p = assay__format("%s/%s", dir, e->d_name);
    if (unlink(p) != 0)
      rmdir(p);
    free(p);
  }
  closedir(d);
  rmdir(dir);
}

/* Reads a JUnit report with tests/data/gate/check_junit.py (python3's
 * XML parser) and returns what it found (owned), or NULL when the file is
 * not well-formed or its counts are wrong (the script says why). */
static cJSON *read_junit(const char *xml_path) {
  char *script = test_src_path("data/gate/check_junit.py");
  char *cmd = assay__format("python3 '%s' '%s'", script, xml_path);
  FILE *p = popen(cmd, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  size_t cap = 1 << 16, n = 0;
  char *buf = assay__xmalloc(cap);
  size_t got;
  while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
    n += got;
    if (cap - n - 1 == 0)
      buf = assay__xrealloc(buf, cap *= 2);
  }
  buf[n] = '\0';
  int status = pclose(p);
  if (status != 0)
    fprintf(stderr, "\n  %s failed (status %d); is python3 installed?\n", cmd,
            status);
  cJSON *j = status == 0 ? cJSON_Parse(buf) : NULL;
  free(buf);
  free(cmd);
  free(script);
  return j;
}

/* The test case named name in read_junit's result, or NULL. */
static const cJSON *junit_case(const cJSON *report, const char *name) {
  const cJSON *c;
  cJSON_ArrayForEach(c, get(report, "cases")) {
    const cJSON *n = get(c, "name");
    if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
      return c;
  }
  fprintf(stderr, "\n  no test case named \"%s\"\n", name);
  return NULL;
}

static const char *str_at(const cJSON *j, const char *path) {
  const cJSON *v = get(j, path);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- parsing ------------------------------------------------------------ */

static const char *op_name(enum assay_threshold_op op) {
  return assay_threshold_op_text(op);
}

/* tests/data/gate/thresholds.txt: each line a text and what parsing it
 * must give. */
static void test_parse_table(void) {
  char *path = test_src_path("data/gate/thresholds.txt");
  char *text = test_read_file(path, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  int cases = 0;
  for (char *line = text, *nl; *line; line = nl + 1) {
    nl = strchr(line, '\n');
    CU_ASSERT_PTR_NOT_NULL_FATAL(nl);
    *nl = '\0';
    if (line[0] == '#' || line[0] == '\0')
      continue;
    char *f[5] = {NULL};
    int nf = 0;
    for (char *p = line; nf < 5; nf++) {
      f[nf] = p;
      char *tab = strchr(p, '\t');
      if (tab == NULL) {
        nf++;
        break;
      }
      *tab = '\0';
      p = tab + 1;
    }
    cases++;
    char *err = NULL;
    if (strcmp(f[0], "pass") == 0) {
      CU_ASSERT_EQUAL_FATAL(nf, 5);
      struct assay_threshold t;
      int rc = assay_threshold_parse(f[1], &t, &err);
      if (rc != 0)
        fprintf(stderr, "\n  '%s' refused: %s\n", f[1], err);
      CU_ASSERT_EQUAL(rc, 0);
      if (rc == 0) {
        ASSERT_STR(t.score, f[2]);
        ASSERT_STR(op_name(t.op), f[3]);
        CU_ASSERT_DOUBLE_EQUAL(t.value, strtod(f[4], NULL), 0);
        CU_ASSERT_PTR_NULL(err);
      }
      assay_threshold_release(&t);
      CU_ASSERT_PTR_NULL(t.score);
    } else if (strcmp(f[0], "pass-bad") == 0) {
      CU_ASSERT_EQUAL_FATAL(nf, 3);
      struct assay_threshold t = {(char *)"sentinel", ASSAY_THRESHOLD_GE, 0};
      int rc = assay_threshold_parse(f[1], &t, &err);
      if (rc != ASSAY_EINVAL)
        fprintf(stderr, "\n  '%s' accepted as %s %s %g\n", f[1], t.score,
                op_name(t.op), t.value);
      CU_ASSERT_EQUAL(rc, ASSAY_EINVAL);
      CU_ASSERT_PTR_NULL(t.score);
      ASSERT_HAS(err, f[2]);
      /* The message names the option and quotes what was given. */
      char *quoted = assay__format("--pass '%s'", f[1]);
      if (f[1][0] != '\0')
        ASSERT_HAS(err, quoted);
      free(quoted);
      if (rc == 0)
        assay_threshold_release(&t);
    } else if (strcmp(f[0], "under") == 0) {
      CU_ASSERT_EQUAL_FATAL(nf, 4);
      struct assay_fail_under u;
      int rc = assay_fail_under_parse(f[1], &u, &err);
      if (rc != 0)
        fprintf(stderr, "\n  '%s' refused: %s\n", f[1], err);
      CU_ASSERT_EQUAL(rc, 0);
      if (rc == 0) {
        ASSERT_STR(u.score, f[2]);
        CU_ASSERT_DOUBLE_EQUAL(u.value, strtod(f[3], NULL), 0);
      }
      assay_fail_under_release(&u);
      CU_ASSERT_PTR_NULL(u.score);
    } else if (strcmp(f[0], "under-bad") == 0) {
      CU_ASSERT_EQUAL_FATAL(nf, 3);
      struct assay_fail_under u;
      int rc = assay_fail_under_parse(f[1], &u, &err);
      if (rc != ASSAY_EINVAL)
        fprintf(stderr, "\n  --fail-under '%s' accepted\n", f[1]);
      CU_ASSERT_EQUAL(rc, ASSAY_EINVAL);
      CU_ASSERT_PTR_NULL(u.score);
      ASSERT_HAS(err, f[2]);
      ASSERT_HAS(err, "--fail-under");
      if (rc == 0)
        assay_fail_under_release(&u);
    } else {
      fprintf(stderr, "\n  test bug: unknown kind '%s' in %s\n", f[0], path);
      CU_FAIL("unknown kind of case");
    }
    free(err);
  }
  CU_ASSERT(cases >= 30);
  free(text);
  free(path);
}

/* The comparison holds as its text says, never for NaN or infinity. */
static void test_threshold_holds(void) {
  struct assay_threshold t = {(char *)"x", ASSAY_THRESHOLD_GE, 0.5};
  CU_ASSERT_TRUE(assay_threshold_holds(&t, 0.5));
  CU_ASSERT_FALSE(assay_threshold_holds(&t, 0.49999));
  CU_ASSERT_FALSE(assay_threshold_holds(&t, NAN));
  CU_ASSERT_FALSE(assay_threshold_holds(&t, INFINITY));
  t.op = ASSAY_THRESHOLD_GT;
  CU_ASSERT_FALSE(assay_threshold_holds(&t, 0.5));
  CU_ASSERT_TRUE(assay_threshold_holds(&t, 0.5000001));
  t.op = ASSAY_THRESHOLD_LE;
  CU_ASSERT_TRUE(assay_threshold_holds(&t, 0.5));
  CU_ASSERT_FALSE(assay_threshold_holds(&t, 0.6));
  CU_ASSERT_FALSE(assay_threshold_holds(&t, -INFINITY));
  t.op = ASSAY_THRESHOLD_LT;
  CU_ASSERT_FALSE(assay_threshold_holds(&t, 0.5));
  CU_ASSERT_TRUE(assay_threshold_holds(&t, -3));
  t.op = ASSAY_THRESHOLD_EQ;
  CU_ASSERT_TRUE(assay_threshold_holds(&t, 0.5));
  CU_ASSERT_FALSE(assay_threshold_holds(&t, 0.5000000001));
}

/* ---- decisions ---------------------------------------------------------- */

/* tests/data/gate/decisions.jsonl: a record, thresholds, and whether it
 * passes with the reasons the message must name. */
static void test_decisions(void) {
  cJSON *cases = read_jsonl("data/gate/decisions.jsonl");
  int n = 0;
  const cJSON *c;
  cJSON_ArrayForEach(c, cases) {
    const char *what = str_at(c, "what");
    const cJSON *texts = get(c, "pass");
    size_t nt = (size_t)cJSON_GetArraySize(texts);
    struct assay_threshold t[8];
    CU_ASSERT_FATAL(nt <= 8);
    const cJSON *s;
    size_t i = 0;
    cJSON_ArrayForEach(s, texts)
        parse_all((const char *[]){s->valuestring}, 1, &t[i++]);
    int want = cJSON_IsTrue(get(c, "passes"));
    char *why = (char *)"sentinel";
    int got = assay_record_passes(get(c, "record"), t, nt, &why);
    if (got != want)
      fprintf(stderr, "\n  %s: passes %d, want %d (%s)\n", what, got, want,
              why ? why : "no reason");
    CU_ASSERT_EQUAL(got, want);
    if (want) {
      CU_ASSERT_PTR_NULL(why);
    } else {
      CU_ASSERT_PTR_NOT_NULL(why);
      const cJSON *w;
      cJSON_ArrayForEach(w, get(c, "why")) ASSERT_HAS(why, w->valuestring);
      if (get(c, "why_count") != NULL && why != NULL) {
        int parts = 1;
        for (const char *p = why; (p = strstr(p, "; ")) != NULL; p += 2)
          parts++;
        CU_ASSERT_EQUAL(parts, (int)num(c, "why_count"));
      }
    }
    /* The same answer without asking why. */
    CU_ASSERT_EQUAL(assay_record_passes(get(c, "record"), t, nt, NULL), want);
    if (why != NULL && strcmp(why, "sentinel") != 0)
      free(why);
    release_all(t, nt);
    n++;
  }
  CU_ASSERT(n >= 15);
  cJSON_Delete(cases);
}

/* The score-wise test of the pass@k reducers ignores other scores'
 * thresholds. */
static void test_score_passes(void) {
  static const char *const texts[] = {"a>=1", "b>=1"};
  struct assay_threshold t[2];
  parse_all(texts, 2, t);
  cJSON *r = cJSON_Parse(
      "{\"index\":0,\"scores\":{\"a\":{\"value\":1},\"b\":{\"value\":0}},"
      "\"error\":null}");
  CU_ASSERT_TRUE(assay__score_passes(r, "a", t, 2));
  CU_ASSERT_FALSE(assay__score_passes(r, "b", t, 2));
  CU_ASSERT_FALSE(assay__score_passes(r, "c", t, 2));
  CU_ASSERT_FALSE(assay_record_passes(r, t, 2, NULL));
  cJSON_Delete(r);
  r = cJSON_Parse("{\"index\":0,\"scores\":{},\"error\":{\"code\":\"timeout\","
                  "\"message\":\"m\"}}");
  CU_ASSERT_FALSE(assay__score_passes(r, "a", t, 2));
  cJSON_Delete(r);
  release_all(t, 2);
}

static void test_fail_under(void) {
  cJSON *records = read_jsonl("data/gate/trials.jsonl");
  cJSON *extra = cJSON_Parse(
      "{\"index\":9,\"id\":\"j\",\"trial\":0,\"scores\":{\"judge\":{\"value\":"
      "null,\"reason\":null,\"error\":\"error: HTTP 400\"}},\"error\":null}");
  cJSON_AddItemToArray(records, extra);
  cJSON *sum = summarize(records, NULL, 0);
  /* s: 1,0,0,0, 1,1,1,1, 0,0.5 -> 5.5 / 10; t: 6.3 / 11. */
  ASSERT_NUM(sum, "scores.s.mean", 0.55);
  ASSERT_NUM(sum, "scores.t.mean", 6.3 / 11);

  struct assay_fail_under f[5];
  static const char *const texts[] = {"s=0.55", "s=0.6", "t=0.58", "nope=0",
                                      "judge=0"};
  for (int i = 0; i < 5; i++)
    CU_ASSERT_EQUAL_FATAL(assay_fail_under_parse(texts[i], &f[i], NULL), 0);

  /* A mean equal to the gate holds. */
  char *report = (char *)"sentinel";
  CU_ASSERT_EQUAL(assay_fail_under_check(sum, f, 1, &report), 0);
  CU_ASSERT_PTR_NULL(report);

  CU_ASSERT_EQUAL(assay_fail_under_check(sum, f, 5, &report), 4);
  ASSERT_HAS(report, "mean of 's' is 0.5500 over 10 values, below 0.6");
  ASSERT_HAS(report, "mean of 't' is 0.5727 over 11 values, below 0.58");
  ASSERT_HAS(report, "no score 'nope' in the results");
  ASSERT_HAS(report, "(check the score name: the scores are: s, t, judge)");
  ASSERT_HAS(report, "'judge' has no values (it failed on 1 record)");
  CU_ASSERT_PTR_NULL(strstr(report, "0.55\n"));
  int lines = 0;
  for (const char *p = report; p && *p; p++)
    lines += *p == '\n';
  CU_ASSERT_EQUAL(lines, 4);
  free(report);
  /* Without a report wanted, the same count. */
  CU_ASSERT_EQUAL(assay_fail_under_check(sum, f + 1, 2, NULL), 2);
  /* A summary of no records: every gate fails, since nothing was shown. */
  cJSON *empty = summarize(NULL, NULL, 0);
  CU_ASSERT_EQUAL(assay_fail_under_check(empty, f, 1, NULL), 1);
  cJSON_Delete(empty);
  for (int i = 0; i < 5; i++)
    assay_fail_under_release(&f[i]);
  cJSON_Delete(sum);
  cJSON_Delete(records);
}

/* ---- trials ------------------------------------------------------------- */

/*
 * tests/data/gate/trials.jsonl: 3 items x 4 trials, scores s and t.
 *   item 0: s 1, 0, 0, 0           t 0.2, 0.4, 0.6, 0.8
 *   item 1: s 1, 1, 1, 1           t 1, 1, 1, 1
 *   item 2: s 0, 0.5, failed, -    t 0, 0, 0.3, -   (trial 3: task timeout)
 * Per item, s: means 0.25, 1, 0.25 (mean 0.5); maxima 1, 1, 0.5 (mean 5/6).
 * t: means 0.5, 1, 0.1 (mean 1.6/3); maxima 0.8, 1, 0.3 (mean 0.7).
 * With --pass s>=1: item 0 has a passing trial, item 1 only passing ones,
 * item 2 none: pass@4 = 2/3, pass^4 = 1/3. Records passing: 5; failing a
 * threshold with a successful task: 3 (item 0) + 3 (item 2) = 6; failed: 1.
 */
static void check_trials_final(const cJSON *sum) {
  ASSERT_NUM(sum, "trials.k", 4);
  ASSERT_NUM(sum, "trials.items", 3);
  ASSERT_NUM(sum, "trials.per_score.s.item_mean", 0.5);
  ASSERT_NUM(sum, "trials.per_score.s.item_max", 5.0 / 6);
  ASSERT_NUM(sum, "trials.per_score.s.pass_at_k", 2.0 / 3);
  ASSERT_NUM(sum, "trials.per_score.s.pass_all_k", 1.0 / 3);
  ASSERT_NUM(sum, "trials.per_score.t.item_mean", 1.6 / 3);
  ASSERT_NUM(sum, "trials.per_score.t.item_max", 0.7);
  ASSERT_NULL_AT(sum, "trials.per_score.t.pass_at_k");
  ASSERT_NULL_AT(sum, "trials.per_score.t.pass_all_k");
  ASSERT_NUM(sum, "counts.items", 12);
  ASSERT_NUM(sum, "counts.failed", 1);
  ASSERT_NUM(sum, "counts.passed", 5);
  ASSERT_NUM(sum, "counts.failed_thresholds", 6);
  /* The mean over all runs is the plain mean, as before. */
  ASSERT_NUM(sum, "scores.s.mean", 0.55);
  ASSERT_NUM(sum, "scores.s.count", 10);
  ASSERT_NUM(sum, "scores.s.failures", 1);
}

static void test_trials_hand_computed(void) {
  cJSON *records = read_jsonl("data/gate/trials.jsonl");
  CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(records), 12);
  struct assay_threshold t;
  parse_all((const char *[]){"s>=1"}, 1, &t);
  cJSON *sum = summarize(records, &t, 1);
  check_trials_final(sum);
  /* The trials object comes right after the scores. */
  const cJSON *scores = cJSON_GetObjectItemCaseSensitive(sum, "scores");
  CU_ASSERT_PTR_NOT_NULL_FATAL(scores);
  CU_ASSERT_PTR_NOT_NULL_FATAL(scores->next);
  ASSERT_STR(scores->next->string, "trials");
  cJSON_Delete(sum);

  /* Without thresholds the reducers are there, pass@k is not. */
  sum = summarize(records, NULL, 0);
  ASSERT_NUM(sum, "trials.k", 4);
  ASSERT_NUM(sum, "trials.per_score.s.item_mean", 0.5);
  ASSERT_NULL_AT(sum, "trials.per_score.s.pass_at_k");
  CU_ASSERT_PTR_NULL(get(sum, "counts.passed"));
  CU_ASSERT_PTR_NULL(get(sum, "counts.failed_thresholds"));
  cJSON_Delete(sum);
  assay_threshold_release(&t);
  cJSON_Delete(records);
}

/* A summary taken in the middle of an item counts the open item as it
 * stands, does not disturb the totals, and the final one is the same as if
 * it had never been taken. */
static void test_trials_mid_run(void) {
  cJSON *records = read_jsonl("data/gate/trials.jsonl");
  struct assay_threshold t;
  parse_all((const char *[]){"s>=1"}, 1, &t);
  struct assay_summary *s = assay_summary_new();
  assay_summary_set_thresholds(s, &t, 1);
  /* The summary holds its own copy of the thresholds. */
  assay_threshold_release(&t);
  int i = 0;
  const cJSON *r;
  cJSON_ArrayForEach(r, records) {
    assay_summary_add(s, r);
    if (++i == 6) {
      /* Item 0 closed (s mean 0.25, max 1; some pass, not all), item 1
       * open with two trials of 1 (mean 1, max 1; all pass so far). */
      for (int twice = 0; twice < 2; twice++) {
        cJSON *mid = assay_summary_json(s, NULL);
        ASSERT_NUM(mid, "trials.k", 4);
        ASSERT_NUM(mid, "trials.items", 2);
        ASSERT_NUM(mid, "trials.per_score.s.item_mean", 0.625);
        ASSERT_NUM(mid, "trials.per_score.s.item_max", 1);
        ASSERT_NUM(mid, "trials.per_score.s.pass_at_k", 1);
        ASSERT_NUM(mid, "trials.per_score.s.pass_all_k", 0.5);
        cJSON_Delete(mid);
      }
    }
  }
  cJSON *sum = assay_summary_json(s, NULL);
  check_trials_final(sum);
  cJSON_Delete(sum);
  assay_summary_free(s);
  cJSON_Delete(records);
}

/* Appends n records of item index with the values of score "s". */
static void add_item(cJSON *records, int index, const double *v, int n) {
  for (int k = 0; k < n; k++) {
    char *text = assay__format(
        "{\"index\":%d,\"id\":\"i%d\",\"trial\":%d,\"scores\":{\"s\":{"
        "\"value\":%.17g,\"reason\":null,\"error\":null}},\"error\":null,"
        "\"attempts\":1,\"task_ms\":1,\"metrics_ms\":1}",
        index, index, k, v[k]);
    cJSON *rec = cJSON_Parse(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
    cJSON_AddItemToArray(records, rec);
    free(text);
  }
}

/* A range made of two thresholds on one score: a trial passes when both
 * hold. */
static void test_trials_range(void) {
  cJSON *records = cJSON_CreateArray();
  add_item(records, 0, (const double[]){0.6, 0.7, 0.95}, 3);
  add_item(records, 1, (const double[]){0.5, 0.9, 0.8}, 3);
  add_item(records, 2, (const double[]){0.1, 0.2, 0.3}, 3);
  add_item(records, 3, (const double[]){0.99, 0.4, 1.0}, 3);
  struct assay_threshold t[2];
  parse_all((const char *[]){"s>=0.5", "s<=0.9"}, 2, t);
  cJSON *sum = summarize(records, t, 2);
  /* Item 0: 2 of 3 pass; item 1: all; item 2: none; item 3: none. */
  ASSERT_NUM(sum, "trials.k", 3);
  ASSERT_NUM(sum, "trials.per_score.s.pass_at_k", 0.5);
  ASSERT_NUM(sum, "trials.per_score.s.pass_all_k", 0.25);
  ASSERT_NUM(sum, "counts.passed", 5);
  ASSERT_NUM(sum, "counts.failed_thresholds", 7);
  release_all(t, 2);
  cJSON_Delete(sum);
  cJSON_Delete(records);
}

/* Items with different numbers of trials (an interrupted run): k is the
 * most any item had, every item counts once. */
static void test_trials_uneven(void) {
  cJSON *records = cJSON_CreateArray();
  add_item(records, 0, (const double[]){1, 0}, 2);
  add_item(records, 1, (const double[]){0, 0, 1}, 3);
  add_item(records, 2, (const double[]){0}, 1);
  cJSON *sum = summarize(records, NULL, 0);
  ASSERT_NUM(sum, "trials.k", 3);
  ASSERT_NUM(sum, "trials.items", 3);
  ASSERT_NUM(sum, "trials.per_score.s.item_mean", (0.5 + 1.0 / 3 + 0) / 3);
  ASSERT_NUM(sum, "trials.per_score.s.item_max", 2.0 / 3);
  cJSON_Delete(sum);
  cJSON_Delete(records);
}

/* One trial per item and no thresholds: the summary is exactly what it
 * was before trials existed. With thresholds it has trials with k = 1. */
static void test_trials_single(void) {
  cJSON *records = cJSON_CreateArray();
  for (int i = 0; i < 4; i++)
    add_item(records, i, (const double[]){i % 2}, 1);
  cJSON *sum = summarize(records, NULL, 0);
  CU_ASSERT_PTR_NULL(get(sum, "trials"));
  CU_ASSERT_PTR_NULL(get(sum, "counts.passed"));
  char *table = print_to_string(sum);
  CU_ASSERT_PTR_NULL(strstr(table, "trials"));
  CU_ASSERT_PTR_NULL(strstr(table, "thresholds"));
  free(table);
  cJSON_Delete(sum);

  struct assay_threshold t;
  parse_all((const char *[]){"s==1"}, 1, &t);
  sum = summarize(records, &t, 1);
  ASSERT_NUM(sum, "trials.k", 1);
  ASSERT_NUM(sum, "trials.items", 4);
  ASSERT_NUM(sum, "trials.per_score.s.pass_at_k", 0.5);
  ASSERT_NUM(sum, "trials.per_score.s.pass_all_k", 0.5);
  ASSERT_NUM(sum, "counts.passed", 2);
  ASSERT_NUM(sum, "counts.failed_thresholds", 2);
  assay_threshold_release(&t);
  cJSON_Delete(sum);
  cJSON_Delete(records);
}

/* A threshold on a score no record has: listed, with no values, and no
 * item passing it. */
static void test_trials_missing_score(void) {
  cJSON *records = cJSON_CreateArray();
  add_item(records, 0, (const double[]){1, 1}, 2);
  struct assay_threshold t[2];
  parse_all((const char *[]){"s>=1", "judge>=0.5"}, 2, t);
  cJSON *sum = summarize(records, t, 2);
  ASSERT_NUM(sum, "trials.per_score.s.pass_at_k", 1);
  ASSERT_NULL_AT(sum, "trials.per_score.judge.item_mean");
  ASSERT_NULL_AT(sum, "trials.per_score.judge.item_max");
  ASSERT_NUM(sum, "trials.per_score.judge.pass_at_k", 0);
  ASSERT_NUM(sum, "trials.per_score.judge.pass_all_k", 0);
  ASSERT_NUM(sum, "counts.passed", 0);
  /* The scores object is unchanged by thresholds: no "judge" there. */
  CU_ASSERT_PTR_NULL(get(sum, "scores.judge"));
  release_all(t, 2);
  cJSON_Delete(sum);
  cJSON_Delete(records);
}

/* Records without an index are each an item of their own. */
static void test_trials_no_index(void) {
  struct assay_summary *s = assay_summary_new();
  struct assay_threshold t;
  parse_all((const char *[]){"s>=1"}, 1, &t);
  assay_summary_set_thresholds(s, &t, 1);
  for (int i = 0; i < 3; i++) {
    cJSON *r = cJSON_Parse(i == 1 ? "{\"scores\":{\"s\":{\"value\":0}}}"
                                  : "{\"scores\":{\"s\":{\"value\":1}}}");
    assay_summary_add(s, r);
    cJSON_Delete(r);
  }
  cJSON *sum = assay_summary_json(s, NULL);
  ASSERT_NUM(sum, "trials.k", 1);
  ASSERT_NUM(sum, "trials.items", 3);
  ASSERT_NUM(sum, "trials.per_score.s.pass_at_k", 2.0 / 3);
  cJSON_Delete(sum);
  assay_threshold_release(&t);
  assay_summary_free(s);
}

static void test_trials_table(void) {
  cJSON *records = read_jsonl("data/gate/trials.jsonl");
  struct assay_threshold t;
  parse_all((const char *[]){"s>=1"}, 1, &t);
  cJSON *sum = summarize(records, &t, 1);
  char *table = print_to_string(sum);
  ASSERT_HAS(table, "trials: up to 4 per item, 3 items\n"
                    "score  item mean  item max  pass@4  pass^4\n"
                    "s         0.5000    0.8333  0.6667  0.3333\n"
                    "t         0.5333    0.7000       -       -\n");
  ASSERT_HAS(table, "thresholds: 5 passed, 6 failed a threshold\n");
  free(table);
  assay_threshold_release(&t);
  cJSON_Delete(sum);
  cJSON_Delete(records);
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

/* Numbers equal to 1e-12 relative, everything else exactly, members in
 * the same order. */
static int json_matches(const cJSON *got, const cJSON *want) {
  if (cJSON_IsNumber(want))
    return cJSON_IsNumber(got) &&
           fabs(got->valuedouble - want->valuedouble) <=
               1e-12 * fmax(1.0, fabs(want->valuedouble));
  if (cJSON_IsObject(want)) {
    if (!cJSON_IsObject(got) ||
        cJSON_GetArraySize(got) != cJSON_GetArraySize(want))
      return 0;
    const cJSON *g = got->child, *w;
    cJSON_ArrayForEach(w, want) {
      if (g == NULL || strcmp(g->string, w->string) != 0 || !json_matches(g, w))
        return 0;
      g = g->next;
    }
    return 1;
  }
  return cJSON_Compare(got, want, 1);
}

/* docs/results.md shows the trials object, the counts and the table of
 * tests/data/gate/trials.jsonl with --pass s>=1: they must be what the
 * code produces. */
static void test_docs_trials_example(void) {
  char *dpath = test_src_path("../docs/results.md");
  char *doc = test_read_file(dpath, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
  char *json_text = doc_block(doc, "with `--pass s>=1` has these members:");
  char *table = doc_block(doc, "`thresholds` line:");
  CU_ASSERT_PTR_NOT_NULL_FATAL(json_text);
  CU_ASSERT_PTR_NOT_NULL_FATAL(table);
  cJSON *want = cJSON_Parse(json_text);
  CU_ASSERT_PTR_NOT_NULL_FATAL(want);

  cJSON *records = read_jsonl("data/gate/trials.jsonl");
  struct assay_threshold t;
  parse_all((const char *[]){"s>=1"}, 1, &t);
  cJSON *sum = summarize(records, &t, 1);
  const cJSON *w;
  cJSON_ArrayForEach(w, want) {
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(sum, w->string);
    int ok = json_matches(g, w);
    if (!ok) {
      char *gt = cJSON_Print(g);
      fprintf(stderr,
              "\n  docs/results.md shows \"%s\" differently; the code "
              "gives:\n%s\n",
              w->string, gt);
      free(gt);
    }
    CU_ASSERT(ok);
  }
  char *out = print_to_string(sum);
  if (strcmp(out, table) != 0)
    fprintf(stderr, "\n  docs/results.md shows:\n%s  the code prints:\n%s",
            table, out);
  CU_ASSERT_STRING_EQUAL(out, table);
  free(out);
  assay_threshold_release(&t);
  cJSON_Delete(sum);
  cJSON_Delete(records);
  cJSON_Delete(want);
  free(json_text);
  free(table);
  free(doc);
  free(dpath);
}

/* docs/ci.md: every --pass and --fail-under it shows parses, and the
 * fail-under report it shows is what the code prints. */
static void test_docs_ci(void) {
  char *dpath = test_src_path("../docs/ci.md");
  char *doc = test_read_file(dpath, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
  int npass = 0, nunder = 0;
  for (const char *p = doc; (p = strstr(p, "--pass '")) != NULL;) {
    p += strlen("--pass '");
    const char *end = strchr(p, '\'');
    CU_ASSERT_PTR_NOT_NULL_FATAL(end);
    char *text = assay__xstrndup(p, (size_t)(end - p));
    struct assay_threshold t;
    char *err = NULL;
    if (assay_threshold_parse(text, &t, &err) != 0)
      fprintf(stderr, "\n  docs/ci.md: --pass '%s': %s\n", text, err);
    CU_ASSERT_PTR_NULL(err);
    assay_threshold_release(&t);
    free(err);
    free(text);
    npass++;
  }
  for (const char *p = doc; (p = strstr(p, "--fail-under ")) != NULL;) {
    p += strlen("--fail-under ");
    size_t n = strcspn(p, " \n`|");
    if (n == 0 || strncmp(p, "SCORE", 5) == 0)
      continue;
    char *text = assay__xstrndup(p, n);
    struct assay_fail_under f;
    char *err = NULL;
    if (assay_fail_under_parse(text, &f, &err) != 0)
      fprintf(stderr, "\n  docs/ci.md: --fail-under %s: %s\n", text, err);
    CU_ASSERT_PTR_NULL(err);
    assay_fail_under_release(&f);
    free(err);
    free(text);
    nunder++;
  }
  CU_ASSERT(npass >= 5);
  CU_ASSERT(nunder >= 4);

  char *shown = doc_block(doc, "Each violated gate is reported on");
  CU_ASSERT_PTR_NOT_NULL_FATAL(shown);
  cJSON *sum = cJSON_Parse("{\"scores\":{\"equals\":{\"count\":40,"
                           "\"mean\":0.75,\"failures\":0},\"llm_judge\":"
                           "{\"count\":40,\"mean\":0.7,\"failures\":0}}}");
  struct assay_fail_under f[2];
  CU_ASSERT_EQUAL_FATAL(assay_fail_under_parse("equals=0.8", &f[0], NULL), 0);
  CU_ASSERT_EQUAL_FATAL(assay_fail_under_parse("llm_judje=0.65", &f[1], NULL),
                        0);
  char *report = NULL;
  CU_ASSERT_EQUAL(assay_fail_under_check(sum, f, 2, &report), 2);
  ASSERT_STR(report, shown);
  free(report);
  assay_fail_under_release(&f[0]);
  assay_fail_under_release(&f[1]);
  cJSON_Delete(sum);
  free(shown);
  free(doc);
  free(dpath);
}

/* ---- JUnit -------------------------------------------------------------- */

/* Writes records to path as a JUnit report with the given thresholds. */
static void write_junit(const char *path, const char *suite,
                        const cJSON *records, const struct assay_threshold *t,
                        size_t n) {
  char *err = NULL;
  struct assay_junit *j = assay_junit_open(path, suite, &err);
  if (j == NULL)
    fprintf(stderr, "\n  %s\n", err);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  const cJSON *r;
  cJSON_ArrayForEach(r, records) assay_junit_add(j, r, t, n);
  int rc = assay_junit_close(j, &err);
  if (rc != 0)
    fprintf(stderr, "\n  %s\n", err);
  CU_ASSERT_EQUAL(rc, 0);
  CU_ASSERT_PTR_NULL(err);
}

/*
 * tests/data/gate/junit.jsonl with --pass equals>=1: a passing record, one
 * under the threshold, a timeout, a malformed item, a failed judge score
 * without a threshold, and hostile ids and messages ("]]>", markup, quotes,
 * control characters) that must come out as text.
 */
static void test_junit_report(void) {
  char *dir = make_tmpdir();
  char *path = assay__format("%s/junit.xml", dir);
  cJSON *records = read_jsonl("data/gate/junit.jsonl");
  struct assay_threshold t;
  parse_all((const char *[]){"equals>=1"}, 1, &t);
  write_junit(path, "qa<&>", records, &t, 1);

  cJSON *rep = read_junit(path);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
  ASSERT_NUM(rep, "tests", 7);
  ASSERT_NUM(rep, "failures", 3);
  ASSERT_NUM(rep, "errors", 2);
  ASSERT_STR(str_at(rep, "suite.name"), "assay.qa<&>");
  ASSERT_STR(str_at(rep, "suite.skipped"), "0");

  const cJSON *c = junit_case(rep, "ok#0");
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  ASSERT_STR(str_at(c, "classname"), "assay.qa<&>");
  ASSERT_NUM(c, "time", 1.5);
  ASSERT_NULL_AT(c, "failure");
  ASSERT_NULL_AT(c, "error");
  ASSERT_HAS(str_at(c, "out"), "equals: 1\njudge: 0.9\n  reason: clear & "
                               "correct\n");

  c = junit_case(rep, "low#0");
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  ASSERT_STR(str_at(c, "failure.type"), "threshold");
  ASSERT_STR(str_at(c, "failure.message"), "'equals' is 0, needs >= 1");
  ASSERT_STR(str_at(c, "failure.text"), "'equals' is 0, needs >= 1");
  ASSERT_HAS(str_at(c, "out"), "judge: 0.2\n  reason: wrong answer");

  c = junit_case(rep, "slow#0");
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  ASSERT_STR(str_at(c, "failure.type"), "timeout");
  ASSERT_STR(str_at(c, "failure.message"),
             "task failed: timeout: task 'openai_chat' timed out after 60000 "
             "ms (after 4 attempts)");
  ASSERT_NUM(c, "time", 240);
  ASSERT_NULL_AT(c, "out");

  c = junit_case(rep, "3#0");
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  ASSERT_STR(str_at(c, "error.type"), "bad_item");
  ASSERT_HAS(str_at(c, "error.message"), "qa.jsonl:4: item is a JSON array");
  ASSERT_NULL_AT(c, "failure");

  c = junit_case(rep, "judge-down#0");
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  ASSERT_STR(str_at(c, "error.type"), "score_error");
  ASSERT_STR(str_at(c, "error.message"),
             "score 'judge' failed: error: HTTP 400 from the judge");
  ASSERT_NULL_AT(c, "failure");

  /* Control characters are dropped, the rest is kept as text. */
  c = junit_case(rep, "x]]><y a=\"1\" b='2'>&amp;[31m#2");
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  ASSERT_NULL_AT(c, "failure");
  ASSERT_HAS(str_at(c, "out"),
             "reason: ]]></system-out><failure message=\"fake\"/>\n");

  c = junit_case(rep, "evil-msg#0");
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  /* Newlines and tabs in an attribute survive as references. */
  ASSERT_STR(str_at(c, "failure.message"),
             "task failed: error: HTTP 400: <html>\"quoted\" & 'single' ]]>  "
             "tab\tnewline\nend");

  cJSON_Delete(rep);
  assay_threshold_release(&t);
  cJSON_Delete(records);
  free(path);
  remove_tree(dir);
  free(dir);
}

/* Without --pass only errors fail: the record under "equals>=1" passes. */
static void test_junit_no_thresholds(void) {
  char *dir = make_tmpdir();
  char *path = assay__format("%s/j.xml", dir);
  cJSON *records = read_jsonl("data/gate/junit.jsonl");
  write_junit(path, NULL, records, NULL, 0);
  cJSON *rep = read_junit(path);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
  ASSERT_NUM(rep, "tests", 7);
  ASSERT_NUM(rep, "failures", 2);
  ASSERT_NUM(rep, "errors", 2);
  const cJSON *c = junit_case(rep, "low#0");
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  ASSERT_NULL_AT(c, "failure");
  ASSERT_STR(str_at(c, "classname"), "assay.run");
  cJSON_Delete(rep);
  cJSON_Delete(records);
  free(path);
  remove_tree(dir);
  free(dir);
}

/* Bytes that are not UTF-8 (a lone continuation byte, a surrogate, a
 * truncated sequence) and characters XML forbids (U+FFFE, NUL-free C0)
 * still make a well-formed report. */
static void test_junit_bad_utf8(void) {
  char *dir = make_tmpdir();
  char *path = assay__format("%s/u.xml", dir);
  cJSON *records = cJSON_CreateArray();
  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "id",
                          "a\xff"
                          "b\xed\xa0\x80"
                          "c\xef\xbf\xbe"
                          "d\x1f"
                          "e\xc3\xa9"
                          "f\xe2\x82");
  cJSON_AddNumberToObject(r, "trial", 0);
  cJSON *err = cJSON_AddObjectToObject(r, "error");
  cJSON_AddStringToObject(err, "code", "error");
  cJSON_AddStringToObject(err, "message", "\x80\x80 \xf4\x90\x80\x80 ok");
  cJSON_AddItemToArray(records, r);
  write_junit(path, "s", records, NULL, 0);
  cJSON *rep = read_junit(path);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
  ASSERT_NUM(rep, "failures", 1);
  /* Invalid bytes become U+FFFD, forbidden characters go, é stays. */
  const cJSON *c = junit_case(rep, "a\xef\xbf\xbd"
                                   "b\xef\xbf\xbd\xef\xbf\xbd"
                                   "\xef\xbf\xbd"
                                   "cde\xc3\xa9"
                                   "f\xef\xbf\xbd"
                                   "\xef\xbf\xbd#0");
  CU_ASSERT_PTR_NOT_NULL(c);
  cJSON_Delete(rep);
  cJSON_Delete(records);
  free(path);
  remove_tree(dir);
  free(dir);
}

/* A very long message is cut, not copied whole into the report. */
static void test_junit_long_message(void) {
  char *dir = make_tmpdir();
  char *path = assay__format("%s/l.xml", dir);
  size_t n = 100000;
  char *msg = assay__xmalloc(n + 1);
  memset(msg, 'm', n);
  msg[n] = '\0';
  cJSON *records = cJSON_CreateArray();
  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "id", "long");
  cJSON *err = cJSON_AddObjectToObject(r, "error");
  cJSON_AddStringToObject(err, "code", "error");
  cJSON_AddStringToObject(err, "message", msg);
  cJSON_AddItemToArray(records, r);
  write_junit(path, "s", records, NULL, 0);
  cJSON *rep = read_junit(path);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
  const char *m = str_at(junit_case(rep, "long#0"), "failure.message");
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT(strlen(m) < 4096);
  CU_ASSERT(strlen(m) > 400);
  CU_ASSERT(strcmp(m + strlen(m) - 3, "...") == 0);
  struct stat st;
  CU_ASSERT_EQUAL(stat(path, &st), 0);
  CU_ASSERT(st.st_size < 20000);
  cJSON_Delete(rep);
  cJSON_Delete(records);
  free(msg);
  free(path);
  remove_tree(dir);
  free(dir);
}

/* The target is replaced whole on close, untouched on abort, and no
 * temporary file stays beside it either way. */
static void test_junit_atomic(void) {
  char *dir = make_tmpdir();
  char *path = assay__format("%s/report.xml", dir);
  FILE *f = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs("old report\n", f);
  fclose(f);
  cJSON *records = read_jsonl("data/gate/junit.jsonl");

  struct assay_junit *j = assay_junit_open(path, "s", NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  const cJSON *r;
  cJSON_ArrayForEach(r, records) assay_junit_add(j, r, NULL, 0);
  char *text = test_read_file(path, NULL);
  ASSERT_STR(text, "old report\n");
  free(text);
  char *names = dir_listing(dir);
  ASSERT_STR(names, "report.xml");
  free(names);
  assay_junit_abort(j);
  text = test_read_file(path, NULL);
  ASSERT_STR(text, "old report\n");
  free(text);

  write_junit(path, "s", records, NULL, 0);
  names = dir_listing(dir);
  ASSERT_STR(names, "report.xml");
  free(names);
  cJSON *rep = read_junit(path);
  CU_ASSERT_PTR_NOT_NULL(rep);
  ASSERT_NUM(rep, "tests", 7);
  cJSON_Delete(rep);
  /* Created like every output: 0666 less the umask. */
  struct stat st;
  mode_t mask = umask(022);
  umask(mask);
  CU_ASSERT_EQUAL(stat(path, &st), 0);
  CU_ASSERT_EQUAL(st.st_mode & 0777, 0666 & ~mask);

  cJSON_Delete(records);
  free(path);
  remove_tree(dir);
  free(dir);
}

/* Errors name the file and say what to check; nothing is left behind. */
static void test_junit_errors(void) {
  char *dir = make_tmpdir();
  char *missing = assay__format("%s/no/such/dir/r.xml", dir);
  char *err = NULL;
  CU_ASSERT_PTR_NULL(assay_junit_open(missing, "s", &err));
  ASSERT_HAS(err, missing);
  ASSERT_HAS(err, "directory exists");
  free(err);
  err = NULL;
  CU_ASSERT_PTR_NULL(assay_junit_open("", "s", &err));
  ASSERT_HAS(err, "--junit");
  free(err);

  /* The target is a directory: rename fails at close. */
  char *target = assay__format("%s/taken", dir);
  CU_ASSERT_EQUAL_FATAL(mkdir(target, 0700), 0);
  struct assay_junit *j = assay_junit_open(target, "s", &err);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  cJSON *r = cJSON_Parse("{\"id\":\"a\",\"trial\":0,\"error\":null}");
  assay_junit_add(j, r, NULL, 0);
  cJSON_Delete(r);
  CU_ASSERT_EQUAL(assay_junit_close(j, &err), ASSAY_EIO);
  ASSERT_HAS(err, "cannot write junit report '");
  ASSERT_HAS(err, target);
  free(err);
  char *names = dir_listing(dir);
  ASSERT_STR(names, "taken");
  free(names);
  CU_ASSERT_EQUAL(assay_junit_close(NULL, NULL), 0);
  assay_junit_abort(NULL);

  free(target);
  free(missing);
  remove_tree(dir);
  free(dir);
}

/* Many records: the counts and every test case are there. */
static void test_junit_many(void) {
  char *dir = make_tmpdir();
  char *path = assay__format("%s/many.xml", dir);
  struct assay_threshold t;
  parse_all((const char *[]){"s>=0.5"}, 1, &t);
  struct assay_junit *j = assay_junit_open(path, "big", NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  int n = 20000;
  for (int i = 0; i < n; i++) {
    char *text = assay__format(
        "{\"index\":%d,\"id\":\"item-%d\",\"trial\":0,\"scores\":{\"s\":{"
        "\"value\":%g,\"reason\":null,\"error\":null}},\"error\":null,"
        "\"task_ms\":2}",
        i, i, (i % 4) / 4.0);
    cJSON *r = cJSON_Parse(text);
    assay_junit_add(j, r, &t, 1);
    cJSON_Delete(r);
    free(text);
  }
  CU_ASSERT_EQUAL(assay_junit_close(j, NULL), 0);
  cJSON *rep = read_junit(path);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
  ASSERT_NUM(rep, "tests", n);
  ASSERT_NUM(rep, "failures", n / 2);
  ASSERT_NUM(rep, "errors", 0);
  ASSERT_STR(str_at(rep, "suite.time"), "40.000");
  CU_ASSERT_PTR_NOT_NULL(junit_case(rep, "item-19999#0"));
  cJSON_Delete(rep);
  assay_threshold_release(&t);
  free(path);
  remove_tree(dir);
  free(dir);
}

/* "-" writes the report to standard output. */
static void test_junit_stdout(void) {
  char *dir = make_tmpdir();
  char *path = assay__format("%s/stdout.xml", dir);
  fflush(stdout);
  int saved = dup(STDOUT_FILENO);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  CU_ASSERT_FATAL(saved >= 0 && fd >= 0);
  dup2(fd, STDOUT_FILENO);
  close(fd);
  cJSON *records = read_jsonl("data/gate/junit.jsonl");
  write_junit("-", "s", records, NULL, 0);
  fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  cJSON *rep = read_junit(path);
  CU_ASSERT_PTR_NOT_NULL(rep);
  ASSERT_NUM(rep, "tests", 7);
  cJSON_Delete(rep);
  cJSON_Delete(records);
  free(path);
  remove_tree(dir);
  free(dir);
}

/* The score names a message about a missing one lists: each once, in
 * order, cut after 12 (assay_json_keys, core/jsonwords.h, under
 * assay__score_names). */
static void test_score_names(void) {
  cJSON *sum = cJSON_Parse("{\"scores\":{}}");
  char *s = assay__score_names(sum);
  CU_ASSERT_STRING_EQUAL(s, "there are no scores");
  free(s);
  cJSON *scores = cJSON_GetObjectItemCaseSensitive(sum, "scores");
  for (int i = 0; i < 14; i++) {
    char name[16];
    snprintf(name, sizeof name, "s%d", i);
    cJSON_AddObjectToObject(scores, name);
    if (i == 1) /* a key twice (cJSON allows it): named once */
      cJSON_AddObjectToObject(scores, "s0");
  }
  s = assay__score_names(sum);
  CU_ASSERT_STRING_EQUAL(s, "the scores are: s0, s1, s2, s3, s4, s5, s6, s7, "
                            "s8, s9, s10, s11, ...");
  free(s);
  cJSON_DeleteItemFromObject(scores, "s2");
  while (cJSON_GetArraySize(scores) > 3)
    cJSON_DeleteItemFromArray(scores, 3);
  s = assay__score_names(sum);
  CU_ASSERT_STRING_EQUAL(s, "the scores are: s0, s1");
  free(s);
  /* Twelve names, then one of them again: all are named, none cut. */
  for (int i = 2; i < 12; i++) {
    char name[16];
    snprintf(name, sizeof name, "s%d", i);
    cJSON_AddObjectToObject(scores, name);
  }
  cJSON_AddObjectToObject(scores, "s5");
  s = assay__score_names(sum);
  CU_ASSERT_STRING_EQUAL(s, "the scores are: s0, s1, s2, s3, s4, s5, s6, s7, "
                            "s8, s9, s10, s11");
  free(s);
  cJSON_Delete(sum);
}

static const struct test_case parse_cases[] = {
    {"--pass and --fail-under texts (thresholds.txt)", test_parse_table},
    {"comparisons hold as written", test_threshold_holds},
    {NULL, NULL}};

static const struct test_case decision_cases[] = {
    {"records pass or fail with reasons (decisions.jsonl)", test_decisions},
    {"a score's pass ignores other scores", test_score_passes},
    {"fail-under names every violated gate", test_fail_under},
    {"score names listed for a missing one", test_score_names},
    {NULL, NULL}};

static const struct test_case trial_cases[] = {
    {"3 items x 4 trials computed by hand", test_trials_hand_computed},
    {"a summary mid-item", test_trials_mid_run},
    {"a range of two thresholds", test_trials_range},
    {"items with different trial counts", test_trials_uneven},
    {"one trial per item", test_trials_single},
    {"a threshold on a missing score", test_trials_missing_score},
    {"records without an index", test_trials_no_index},
    {"the table's trials block", test_trials_table},
    {"the example in docs/results.md", test_docs_trials_example},
    {"the examples in docs/ci.md", test_docs_ci},
    {NULL, NULL}};

static const struct test_case junit_cases[] = {
    {"cases, counts and hostile text", test_junit_report},
    {"no thresholds", test_junit_no_thresholds},
    {"bytes that are not UTF-8", test_junit_bad_utf8},
    {"long messages are cut", test_junit_long_message},
    {"the target is replaced atomically", test_junit_atomic},
    {"errors", test_junit_errors},
    {"20000 records", test_junit_many},
    {"standard output", test_junit_stdout},
    {NULL, NULL}};

int main(int argc, char **argv) {
  static const struct test_suite suites[] = {
      {"parse", NULL, NULL, parse_cases},
      {"decisions", NULL, NULL, decision_cases},
      {"trials", NULL, NULL, trial_cases},
      {"junit", NULL, NULL, junit_cases},
      {NULL, NULL, NULL, NULL}};
  return test_main(argc, argv, suites);
}
