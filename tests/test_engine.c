/*
 * Engine tests, in process: real fixture plugins (tests/fixtures/) through
 * the real loader, datasets from memory. Each test runs one engine over a
 * small dataset, collects the records the engine hands out and checks what
 * a user depends on: records in dataset order, limits held, timeouts,
 * retries, misbehaving plugins contained, scores well formed. Every run
 * ends with assay_engine_free() == 0: no libuv handle left open.
 *
 * Timings are asserted only as generous lower bounds (a retry-after of
 * 150 ms delayed the retry by at least 150 ms). Concurrency is shown by the
 * fixtures' own counters, never by durations.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "error.h"
#include "loader.h"
#include "runner.h"
#include "util.h"

/* The reorder window documented in core/engine.c: items admitted but not
 * yet handed out never exceed twice the concurrency. */
#define WINDOW(concurrency) (2 * (concurrency))

/* libuv timers count whole milliseconds of a loop clock truncated to the
 * millisecond, so a timer may fire up to 1 ms early by a finer clock: lower
 * bounds on delays allow that much. */
#define TIMER_SLACK_MS 1.0

struct metric_spec {
  const char *spec; /* fixture "file:component" */
  const char *opts; /* JSON object text, or NULL */
  const char *map;  /* JSON object text KEY -> FIELD, or NULL */
};

/* One finished run. */
struct run {
  int add_rc; /* first failing assay_engine_add, else 0 */
  char *add_err;
  int rc; /* assay_engine_run */
  char *err;
  cJSON *records; /* array, in the order handed out */
  struct assay_engine_stats stats;
  double wall_ms;
};

/* Owned path spec of a fixture: "fx_metrics:pick" ->
 * "<builddir>/tests/fixtures/fx_metrics.la:pick". */
static char *fixture_spec(const char *spec) {
  const char *colon = strchr(spec, ':');
  char *rel =
      assay__format("fixtures/%.*s.la",
                    (int)(colon ? (size_t)(colon - spec) : strlen(spec)), spec);
  char *path = test_build_path(rel);
  char *full = assay__format("%s%s", path, colon ? colon : "");
  free(rel);
  free(path);
  return full;
}

static int collect(void *arg, const cJSON *record, const char *line,
                   size_t len) {
  CU_ASSERT(test_line_matches(record, line, len));
  cJSON_AddItemToArray((cJSON *)arg, cJSON_Duplicate(record, 1));
  return 0;
}

/* Whether member key of light is what the full record has. */
static int light_agrees(const cJSON *light, const cJSON *full, const char *key) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(light, key);
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(full, key);
  if (a != NULL && b != NULL && cJSON_Compare(a, b, 1))
    return 1;
  char *ta = a ? cJSON_PrintUnformatted(a) : NULL;
  char *tb = b ? cJSON_PrintUnformatted(b) : NULL;
  fprintf(stderr, "\n  light record's %s is %s, the line's %s\n", key,
          ta ? ta : "missing", tb ? tb : "missing");
  free(ta);
  free(tb);
  return 0;
}

/*
 * The record callback with light records (o.light_records): the line is
 * the record, kept; a light record (no line from the engine is light
 * without one) must agree with it on everything it has, each score's value
 * included.
 */
static int collect_light(void *arg, const cJSON *record, const char *line,
                         size_t len) {
  cJSON *full = line ? cJSON_ParseWithLength(line, len) : NULL;
  CU_ASSERT_PTR_NOT_NULL_FATAL(line);
  CU_ASSERT_PTR_NOT_NULL_FATAL(full);
  if (cJSON_HasObjectItem(record, "input")) {
    CU_ASSERT(test_line_matches(record, line, len));
  } else {
    static const char *const keys[] = {"index",   "id",      "trial",
                                       "error",   "attempts", "task_ms",
                                       "metrics_ms"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
      CU_ASSERT(light_agrees(record, full, keys[i]));
    const cJSON *sc;
    cJSON_ArrayForEach(sc, cJSON_GetObjectItemCaseSensitive(record, "scores")) {
      const cJSON *fs = cJSON_GetObjectItemCaseSensitive(
          cJSON_GetObjectItemCaseSensitive(full, "scores"), sc->string);
      CU_ASSERT(light_agrees(sc, fs, "value"));
    }
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(record, "scores")),
                    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(full, "scores")));
  }
  cJSON_AddItemToArray((cJSON *)arg, full);
  return 0;
}

static cJSON *parse_or_null(const char *text) {
  if (text == NULL)
    return NULL;
  cJSON *j = cJSON_Parse(text);
  CU_ASSERT_PTR_NOT_NULL(j);
  return j;
}

static int add(struct assay_engine *e, struct assay_loader *l, int kind,
               const char *spec, const char *opts, const char *map,
               struct run *r) {
  char *full = fixture_spec(spec);
  cJSON *o = parse_or_null(opts), *m = parse_or_null(map);
  char *err = NULL;
  int rc = assay_engine_add(e, l, kind, full, o, m, &err);
  if (rc != 0 && r->add_rc == 0) {
    r->add_rc = rc;
    r->add_err = err;
    err = NULL;
  }
  free(err);
  cJSON_Delete(o);
  cJSON_Delete(m);
  free(full);
  return rc;
}

/*
 * Runs task (a fixture spec, or NULL for scoring mode) and metrics (ends
 * with {NULL}) over the JSONL text data. When expect_add_ok, a failing
 * assay_engine_add fails the test. The engine is always freed, and must
 * report every handle closed.
 */
static void run_ex(struct run *r, const struct assay_engine_opts *o,
                   const char *task, const char *task_opts,
                   const struct metric_spec *metrics, const char *data,
                   int expect_add_ok) {
  memset(r, 0, sizeof *r);
  r->records = cJSON_CreateArray();
  struct assay_loader *l = NULL;
  struct assay_engine *e = NULL;
  char *err = NULL;
  CU_ASSERT_EQUAL_FATAL(assay_loader_new(&l, NULL, &err), 0);
  CU_ASSERT_EQUAL_FATAL(assay_engine_new(&e, o, &err), 0);
  if (task != NULL)
    add(e, l, ASSAY_KIND_TASK, task, task_opts, NULL, r);
  for (size_t i = 0; metrics != NULL && metrics[i].spec != NULL; i++)
    add(e, l, ASSAY_KIND_METRIC, metrics[i].spec, metrics[i].opts,
        metrics[i].map, r);
  if (expect_add_ok && r->add_rc != 0) {
    fprintf(stderr, "\n  assay_engine_add: %s\n",
            r->add_err ? r->add_err : "(no message)");
    CU_FAIL("assay_engine_add failed");
  }
  if (r->add_rc == 0) {
    struct assay_dataset *ds = NULL;
    int drc = assay_dataset_open_mem(&ds, "test.jsonl", data, strlen(data),
                                     ASSAY_DATASET_JSONL, 0, &err);
    CU_ASSERT_EQUAL(drc, 0);
    if (drc == 0) {
      double t0 = assay__now_ms();
      r->rc = assay_engine_run(e, ds, o->light_records ? collect_light : collect,
                               r->records, &r->err);
      r->wall_ms = assay__now_ms() - t0;
      if (r->rc != 0)
        fprintf(stderr, "\n  assay_engine_run: %s\n",
                r->err ? r->err : "(no message)");
      assay_dataset_free(ds);
    } else {
      free(err);
    }
  }
  r->stats = *assay_engine_stats(e);
  CU_ASSERT_EQUAL(assay_engine_free(e), 0);
  assay_loader_free(l);
}

static void run(struct run *r, const struct assay_engine_opts *o,
                const char *task, const char *task_opts,
                const struct metric_spec *metrics, const char *data) {
  run_ex(r, o, task, task_opts, metrics, data, 1);
}

static void run_release(struct run *r) {
  cJSON_Delete(r->records);
  free(r->err);
  free(r->add_err);
}

static void opts_default(struct assay_engine_opts *o) {
  assay_engine_opts_init(o);
  o->threads = 4;
  o->seed = 12345;
}

/* Appends a formatted line to an owned text buffer. */
static void line(char **buf, const char *fmt, ...) ASSAY__PRINTF(2, 3);
static void line(char **buf, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *l = assay__vformat(fmt, ap);
  va_end(ap);
  char *n = assay__format("%s%s\n", *buf ? *buf : "", l);
  free(*buf);
  free(l);
  *buf = n;
}

/* n items whose input is their index: {"input":0} ... {"input":n-1}. */
static char *numbered(int n) {
  char *data = NULL;
  for (int i = 0; i < n; i++)
    line(&data, "{\"input\":%d}", i);
  return data;
}

/* ---- record accessors -------------------------------------------------------
 */

static const cJSON *rec(const struct run *r, int i) {
  return cJSON_GetArrayItem(r->records, i);
}

static const cJSON *at(const cJSON *j, const char *path) {
  return j ? assay__json_path(j, path) : NULL;
}

static double num(const cJSON *j, const char *path) {
  const cJSON *v = at(j, path);
  return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *str(const cJSON *j, const char *path) {
  const cJSON *v = at(j, path);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int str_is(const cJSON *j, const char *path, const char *want) {
  const char *s = str(j, path);
  if (s == NULL || strcmp(s, want) != 0) {
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    fprintf(stderr, "\n  %s: want \"%s\", got %s%s%s in %s\n", path, want,
            s ? "\"" : "", s ? s : "nothing", s ? "\"" : "",
            text ? text : "(no record)");
    free(text);
    return 0;
  }
  return 1;
}

static int has(const char *s, const char *sub) {
  if (s == NULL || strstr(s, sub) == NULL) {
    fprintf(stderr, "\n  \"%s\" lacks \"%s\"\n", s ? s : "(null)", sub);
    return 0;
  }
  return 1;
}

/* Checks record i is the i-th item, finished without error. */
static int record_ok(const struct run *r, int i) {
  const cJSON *x = rec(r, i);
  int ok = x != NULL && num(x, "index") == i && cJSON_IsNull(at(x, "error")) &&
           cJSON_IsObject(at(x, "output"));
  if (!ok) {
    char *text = x ? cJSON_PrintUnformatted(x) : NULL;
    fprintf(stderr, "\n  record %d not ok: %s\n", i, text ? text : "(missing)");
    free(text);
  }
  return ok;
}

/* ---- ordering, concurrency, memory -----------------------------------------
 */

static void test_order_random_completion(void) {
  /* Items complete in a random order; records come out in dataset order,
   * every one present, each with its own output. */
  enum { N = 300 };
  char *data = NULL;
  srand(7);
  for (int i = 0; i < N; i++)
    line(&data, "{\"id\":\"q%d\",\"input\":%d,\"ms\":%d}", i, i, rand() % 40);
  struct assay_engine_opts o;
  opts_default(&o);
  o.concurrency = 50;
  struct run r;
  run(&r, &o, "fx_async", NULL, NULL, data);
  CU_ASSERT_EQUAL(r.rc, 0);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), N);
  CU_ASSERT_EQUAL(r.stats.items, N);
  int in_order = 1;
  for (int i = 0; i < N; i++) {
    char id[16];
    snprintf(id, sizeof id, "q%d", i);
    in_order &= record_ok(&r, i) && str_is(rec(&r, i), "id", id) &&
                num(rec(&r, i), "output.output") == i &&
                num(rec(&r, i), "input.input") == i &&
                num(rec(&r, i), "trial") == 0 &&
                num(rec(&r, i), "attempts") == 1;
  }
  CU_ASSERT(in_order);
  /* The completion order really was shuffled: some item finished its call
   * after a later item had started more calls than the window allows to
   * pass it, i.e. results had to wait in the reorder buffer. */
  CU_ASSERT(r.stats.max_pending > r.stats.max_running / 2);
  run_release(&r);
  free(data);
}

static void test_concurrency_limit_async(void) {
  enum { N = 200, C = 7 };
  char *data = NULL;
  srand(11);
  for (int i = 0; i < N; i++)
    line(&data, "{\"input\":%d,\"ms\":%d}", i, 1 + rand() % 20);
  struct assay_engine_opts o;
  opts_default(&o);
  o.concurrency = C;
  struct run r;
  run(&r, &o, "fx_async", NULL, NULL, data);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), N);
  /* The plugin's own count of its outstanding calls. */
  int seen = 0;
  for (int i = 0; i < N; i++) {
    double f = num(rec(&r, i), "output.in_flight");
    if (f > seen)
      seen = (int)f;
  }
  CU_ASSERT(seen <= C);
  CU_ASSERT(seen >= 2); /* it did run calls at once */
  CU_ASSERT(r.stats.max_running <= C);
  CU_ASSERT(r.stats.max_running >= 2);
  if (seen > C || r.stats.max_running > C)
    fprintf(stderr, "\n  concurrency %d: plugin saw %d, engine %d\n", C, seen,
            r.stats.max_running);
  run_release(&r);
  free(data);
}

/* A wide window opens over several turns of the loop, reading answers in
 * between: at --concurrency 1000, an async task answering at once has its
 * first answer read long before the 1000th item starts (when all were
 * admitted in one go, the first answers waited for every start, and
 * task_ms counted that wait). With longer calls the window still fills. */
static void test_wide_window_reads_answers(void) {
  enum { N = 1000, C = 1000 };
  char *fast = NULL, *slow = NULL;
  for (int i = 0; i < N; i++) {
    line(&fast, "{\"input\":%d,\"ms\":0}", i);
    line(&slow, "{\"input\":%d,\"ms\":1000}", i);
  }
  struct assay_engine_opts o;
  opts_default(&o);
  o.concurrency = C;
  struct run r;
  run(&r, &o, "fx_async", NULL, NULL, fast);
  CU_ASSERT_EQUAL(r.rc, 0);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), N);
  double started = num(rec(&r, 0), "output.started");
  CU_ASSERT(started >= 1 && started < C / 2);
  if (!(started < C / 2))
    fprintf(stderr, "\n  item 0 answered after %.0f starts\n", started);
  run_release(&r);
  run(&r, &o, "fx_async", NULL, NULL, slow);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), N);
  CU_ASSERT_EQUAL(r.stats.max_running, C);
  run_release(&r);
  free(fast);
  free(slow);
}

/* loop_busy: the loop thread's share of a run not spent waiting for
 * events. Calls that wait on timers leave it mostly idle; a plugin that
 * computes on the loop thread keeps it busy the whole run. */
static void test_loop_busy(void) {
  enum { N = 40 };
  char *data = numbered(N);
  struct assay_engine_opts o;
  opts_default(&o);
  o.concurrency = 4;
  struct run r;
  run(&r, &o, "fx_async", "{\"ms\":25}", NULL, data);
  CU_ASSERT_EQUAL(r.rc, 0);
  CU_ASSERT(r.stats.loop_busy >= 0 && r.stats.loop_busy < 0.5);
  double idle_busy = r.stats.loop_busy;
  run_release(&r);
  o.concurrency = 1;
  run(&r, &o, "fx_async", "{\"ms\":0,\"spin_ms\":5}", NULL, data);
  CU_ASSERT_EQUAL(r.rc, 0);
  CU_ASSERT(r.stats.loop_busy > 0.8 && r.stats.loop_busy <= 1);
  if (!(idle_busy < 0.5 && r.stats.loop_busy > 0.8))
    fprintf(stderr, "\n  loop busy %.3f waiting, %.3f spinning\n", idle_busy,
            r.stats.loop_busy);
  run_release(&r);
  free(data);
}

static int max_peak(const struct run *r) {
  int peak = 0;
  for (int i = 0; i < cJSON_GetArraySize(r->records); i++) {
    double p = num(rec(r, i), "output.peak");
    if (p > peak)
      peak = (int)p;
  }
  return peak;
}

static void test_concurrency_limit_sync(void) {
  /* More workers than --concurrency: admission is what holds the limit. */
  enum { N = 30, C = 3 };
  char *data = numbered(N);
  struct assay_engine_opts o;
  opts_default(&o);
  o.threads = 8;
  o.concurrency = C;
  struct run r;
  run(&r, &o, "fx_unsafe:safe", "{\"ms\":15}", NULL, data);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), N);
  int peak = max_peak(&r);
  CU_ASSERT(peak <= C);
  CU_ASSERT(peak >= 2);
  CU_ASSERT(r.stats.max_running <= C);
  run_release(&r);
  free(data);
}

static void test_not_thread_safe_serialised(void) {
  /* A sync component without ASSAY_THREAD_SAFE never runs on two threads at
   * once, whatever the workers and the concurrency; the same code declared
   * thread-safe does overlap, which shows the count is real. */
  enum { N = 24 };
  char *data = numbered(N);
  struct assay_engine_opts o;
  opts_default(&o);
  o.threads = 4;
  o.concurrency = 8;
  struct run r;
  run(&r, &o, "fx_unsafe:unsafe", "{\"ms\":10}", NULL, data);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), N);
  int all_ok = 1;
  for (int i = 0; i < N; i++)
    all_ok &= record_ok(&r, i);
  CU_ASSERT(all_ok);
  CU_ASSERT_EQUAL(max_peak(&r), 1);
  run_release(&r);

  run(&r, &o, "fx_unsafe:safe", "{\"ms\":10}", NULL, data);
  CU_ASSERT(max_peak(&r) >= 2);
  run_release(&r);
  free(data);
}

static void test_memory_window(void) {
  /* Item 0 is slow and every other item fast: finished items pile up
   * behind item 0 in the reorder buffer. Admission must stop at the window
   * instead of reading the whole dataset. */
  enum { N = 100, C = 4 };
  char *data = NULL;
  line(&data, "{\"input\":0,\"ms\":300}");
  for (int i = 1; i < N; i++)
    line(&data, "{\"input\":%d,\"ms\":1}", i);
  struct assay_engine_opts o;
  opts_default(&o);
  o.concurrency = C;
  struct run r;
  run(&r, &o, "fx_async", NULL, NULL, data);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), N);
  int all_ok = 1;
  for (int i = 0; i < N; i++)
    all_ok &= record_ok(&r, i) && num(rec(&r, i), "output.output") == i;
  CU_ASSERT(all_ok);
  CU_ASSERT(r.stats.max_pending <= WINDOW(C));
  CU_ASSERT(r.stats.max_running <= C);
  /* The plugin's view: calls started by the time item 0 completed. Others
   * did go on meanwhile (more than C), but no more than the window. */
  double started = num(rec(&r, 0), "output.started");
  CU_ASSERT(started > C);
  CU_ASSERT(started <= WINDOW(C));
  if (!(started <= WINDOW(C)) || r.stats.max_pending > WINDOW(C))
    fprintf(stderr, "\n  window %d: %g calls started, max_pending %d\n",
            WINDOW(C), started, r.stats.max_pending);
  run_release(&r);
  free(data);
}

static void test_limit(void) {
  char *data = numbered(10);
  struct assay_engine_opts o;
  opts_default(&o);
  o.limit = 4;
  struct run r;
  run(&r, &o, "fx_sync", NULL, NULL, data);
  CU_ASSERT_EQUAL(r.rc, 0);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 4);
  CU_ASSERT_EQUAL(r.stats.items, 4);
  run_release(&r);
  free(data);
}

/* ---- timeouts and retries
 * ----------------------------------------------------- */

static void test_timeout_never_completes(void) {
  struct assay_engine_opts o;
  opts_default(&o);
  o.timeout_ms = 100;
  o.retries = 0;
  struct run r;
  run(&r, &o, "fx_never", NULL, NULL,
      "{\"input\":1}\n{\"input\":2}\n{\"input\":3}\n");
  CU_ASSERT_EQUAL(r.rc, 0);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 3);
  for (int i = 0; i < 3; i++) {
    CU_ASSERT(str_is(rec(&r, i), "error.code", "timeout"));
    CU_ASSERT(has(str(rec(&r, i), "error.message"), "100 ms"));
    CU_ASSERT(cJSON_IsNull(at(rec(&r, i), "output")));
    CU_ASSERT_EQUAL(num(rec(&r, i), "attempts"), 1);
  }
  CU_ASSERT_EQUAL(r.stats.timeouts, 3);
  CU_ASSERT_EQUAL(r.stats.items_failed, 3);
  /* --timeout is a floor too: no call may be abandoned before it. */
  CU_ASSERT(r.wall_ms >= 100 - TIMER_SLACK_MS);
  if (!(r.wall_ms >= 100 - TIMER_SLACK_MS))
    fprintf(stderr, "\n  three calls timed out after %.1f ms, not 100\n",
            r.wall_ms);
  run_release(&r);
}

static void test_timeout_never_early(void) {
  /* A timeout fires no sooner than --timeout after the call started, by
   * the precise clock the record's task_ms uses: the loop's millisecond
   * clock runs behind it (read once per turn, and coarsely). Admitting
   * 2,000 items in one turn takes milliseconds, so the last ones start
   * well after the turn read that clock. */
  enum { N = 2000 };
  for (long ms = 1; ms <= 3; ms++) {
    struct assay_engine_opts o;
    opts_default(&o);
    o.timeout_ms = ms;
    o.retries = 0;
    o.concurrency = N;
    char *data = numbered(N);
    struct run r;
    run(&r, &o, "fx_never", NULL, NULL, data);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), N);
    int late_enough = 1;
    for (int i = 0; i < N && late_enough; i++) {
      double t = num(rec(&r, i), "task_ms");
      if (!(t >= (double)ms)) {
        fprintf(stderr, "\n  timed out after %.3f ms for --timeout %ld\n", t,
                ms);
        late_enough = 0;
      }
    }
    CU_ASSERT(late_enough);
    run_release(&r);
    free(data);
  }
}

/* Item 0's call (first_ms long) outlives its 200 ms timeout; the run goes
 * on, one item at a time, long enough for its late completion to arrive,
 * which must be dropped and counted, leaving item 0's timeout record as it
 * was. Items 1-8 take 50 ms each; field is what their output says of that:
 * "output.output", the item's input, or "output.slept", 50. */
static void timeout_late(const char *task, int threads, int first_ms,
                         const char *field) {
  struct assay_engine_opts o;
  opts_default(&o);
  if (threads > 0)
    o.threads = threads;
  o.timeout_ms = 200;
  o.retries = 0;
  o.concurrency = 1;
  char *data = NULL;
  line(&data, "{\"input\":0,\"ms\":%d}", first_ms);
  for (int i = 1; i <= 8; i++)
    line(&data, "{\"input\":%d,\"ms\":50}", i);
  struct run r;
  run(&r, &o, task, NULL, NULL, data);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 9);
  CU_ASSERT(str_is(rec(&r, 0), "error.code", "timeout"));
  CU_ASSERT(cJSON_IsNull(at(rec(&r, 0), "output")));
  int rest_ok = 1;
  for (int i = 1; i <= 8; i++) {
    double want = strcmp(field, "output.slept") == 0 ? 50 : i;
    rest_ok &= record_ok(&r, i) && num(rec(&r, i), field) == want;
  }
  CU_ASSERT(rest_ok);
  CU_ASSERT_EQUAL(r.stats.timeouts, 1);
  CU_ASSERT_EQUAL(r.stats.late_completions, 1);
  run_release(&r);
  free(data);
}

static void test_timeout_async_late(void) {
  timeout_late("fx_async", 0, 400, "output.output");
}

static void test_timeout_sync_late(void) {
  /* A sync call cannot be interrupted: its item gets a timeout record when
   * the timeout fires, and its result is dropped when the worker returns
   * it. Meanwhile the other worker serves the rest. */
  timeout_late("fx_slow", 2, 450, "output.slept");
}

static void test_timeout_sync_from_start(void) {
  /* One worker, four calls of 100 ms queued at once, a 150 ms timeout: the
   * last waits 300 ms for the worker, but its timeout counts from when the
   * worker takes it, so none times out. With and without chains. */
  for (int chain = 0; chain <= 1; chain++) {
    struct assay_engine_opts o;
    opts_default(&o);
    o.threads = 1;
    o.concurrency = 4;
    o.timeout_ms = 150;
    o.retries = 0;
    o.chain = chain;
    char *data = NULL;
    for (int i = 0; i < 4; i++)
      line(&data, "{\"input\":%d,\"ms\":100}", i);
    struct run r;
    run(&r, &o, "fx_slow", NULL, NULL, data);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 4);
    int ok = 1;
    for (int i = 0; i < 4; i++)
      ok &= record_ok(&r, i) && num(rec(&r, i), "output.slept") == 100;
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(r.stats.timeouts, 0);
    /* They did wait: the last record's time includes the queue. */
    CU_ASSERT(num(rec(&r, 3), "task_ms") >= 300 - TIMER_SLACK_MS);
    run_release(&r);
    free(data);
  }
}

static void test_timeout_sync_all_workers_held(void) {
  /* One worker held by a call far past its timeout: the calls queued
   * behind it cannot start, and must not wait for it forever. They fail
   * with a timeout that says why, and the run ends long before the stuck
   * call returns. */
  struct assay_engine_opts o;
  opts_default(&o);
  o.threads = 1;
  o.concurrency = 3;
  o.timeout_ms = 100;
  o.retries = 0;
  o.chain = 0;
  char *data = NULL;
  line(&data, "{\"input\":0,\"ms\":900}");
  line(&data, "{\"input\":1,\"ms\":10}");
  line(&data, "{\"input\":2,\"ms\":10}");
  struct run r;
  run(&r, &o, "fx_slow", NULL, NULL, data);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 3);
  CU_ASSERT(has(str(rec(&r, 0), "error.message"), "timed out after 100 ms"));
  for (int i = 1; i < 3; i++) {
    CU_ASSERT(str_is(rec(&r, i), "error.code", "timeout"));
    CU_ASSERT(has(str(rec(&r, i), "error.message"),
                  "waited for a worker for over 100 ms: all 1 are still "
                  "running calls that timed out"));
  }
  CU_ASSERT_EQUAL(r.stats.timeouts, 3);
  CU_ASSERT(r.wall_ms < 600);
  if (!(r.wall_ms < 600))
    fprintf(stderr, "\n  the run took %.0f ms\n", r.wall_ms);
  run_release(&r);
  free(data);
}

static void test_retry_after(void) {
  /* Each item fails retryably twice asking for 150 ms, then succeeds: three
   * attempts in the record, and the plugin saw at least 150 ms between
   * consecutive attempts. */
  struct assay_engine_opts o;
  opts_default(&o);
  o.backoff_base_ms = 1; /* so that only the retry-after can explain a wait */
  struct run r;
  run(&r, &o, "fx_flaky", NULL, NULL,
      "{\"id\":\"a\",\"input\":1}\n{\"id\":\"b\",\"input\":2}\n"
      "{\"id\":\"c\",\"input\":3}\n");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 3);
  for (int i = 0; i < 3; i++) {
    const cJSON *x = rec(&r, i);
    CU_ASSERT(record_ok(&r, i));
    CU_ASSERT_EQUAL(num(x, "attempts"), 3);
    CU_ASSERT_EQUAL(num(x, "output.attempt"), 3);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(at(x, "output.gaps")), 2);
    for (int g = 0; g < 2; g++) {
      double gap = num(x, g ? "output.gaps.1" : "output.gaps.0");
      CU_ASSERT(gap >= 150 - TIMER_SLACK_MS);
      if (!(gap >= 150 - TIMER_SLACK_MS))
        fprintf(stderr, "\n  item %d: retry %d came after %.1f ms, not 150\n",
                i, g + 1, gap);
    }
    CU_ASSERT(num(x, "task_ms") >= 300 - 2 * TIMER_SLACK_MS);
  }
  CU_ASSERT_EQUAL(r.stats.retries, 6);
  CU_ASSERT_EQUAL(r.stats.calls, 9);
  CU_ASSERT(r.wall_ms >= 300 - 2 * TIMER_SLACK_MS);
  run_release(&r);
}

static void test_metric_retry_gets_input(void) {
  /* A metric failing retryably is called again with the same input view
   * (a retry once got none, and a judge then scored an empty prompt). */
  struct assay_engine_opts o;
  opts_default(&o);
  o.backoff_base_ms = 1;
  struct metric_spec m[] = {
      {"fx_flaky:flaky_metric", "{\"retry_after_ms\":1}", NULL},
      {"fx_flaky:flaky_metric", "{\"retry_after_ms\":1,\"name\":\"mapped\"}",
       "{\"output\":\"other\"}"},
      {NULL, NULL, NULL}};
  struct run r;
  run(&r, &o, NULL, NULL, m,
      "{\"id\":\"a\",\"output\":\"first\",\"other\":\"x\"}\n"
      "{\"id\":\"b\",\"output\":\"second\",\"other\":\"y\"}\n");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 2);
  CU_ASSERT(str_is(rec(&r, 0), "scores.flaky_metric.reason", "first"));
  CU_ASSERT(str_is(rec(&r, 1), "scores.flaky_metric.reason", "second"));
  CU_ASSERT(str_is(rec(&r, 0), "scores.mapped.reason", "x"));
  CU_ASSERT(str_is(rec(&r, 1), "scores.mapped.reason", "y"));
  CU_ASSERT_EQUAL(num(rec(&r, 0), "scores.flaky_metric.value"), 3);
  CU_ASSERT_EQUAL(r.stats.retries, 8);
  CU_ASSERT_EQUAL(r.stats.scores_failed, 0);
  run_release(&r);
}

static void test_retries_exhausted(void) {
  struct assay_engine_opts o;
  opts_default(&o);
  o.retries = 2;
  o.backoff_base_ms = 1;
  struct run r;
  run(&r, &o, "fx_flaky", "{\"failures\":5,\"retry_after_ms\":5}", NULL,
      "{\"id\":\"a\",\"input\":1}\n");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 1);
  CU_ASSERT(str_is(rec(&r, 0), "error.code", "retries_exhausted"));
  CU_ASSERT(has(str(rec(&r, 0), "error.message"), "flaky failure 3 of 5"));
  CU_ASSERT_EQUAL(num(rec(&r, 0), "attempts"), 3);
  CU_ASSERT(cJSON_IsNull(at(rec(&r, 0), "output")));
  CU_ASSERT_EQUAL(r.stats.retries, 2);
  run_release(&r);
}

/* ---- misbehaving plugins
 * -------------------------------------------------------- */

static void test_completes_twice(void) {
  /* Item 0: both completions at once inside run_async. Item 1: the second
   * 30 ms later, after its record was written, while item 2 still runs.
   * Item 2: its second completion would come after the run. */
  struct assay_engine_opts o;
  opts_default(&o);
  struct run r;
  run(&r, &o, "fx_twice", NULL, NULL,
      "{\"input\":0}\n{\"input\":1,\"ms2\":30}\n"
      "{\"input\":2,\"ms\":200,\"ms2\":100000}\n");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 3);
  for (int i = 0; i < 3; i++) {
    CU_ASSERT(record_ok(&r, i));
    CU_ASSERT(str_is(rec(&r, i), "output.output", "completion 1"));
  }
  CU_ASSERT_EQUAL(r.stats.plugin_faults, 2);
  CU_ASSERT_EQUAL(r.stats.items_failed, 0);
  run_release(&r);
}

static void test_foreign_thread(void) {
  enum { N = 60 };
  char *data = NULL;
  srand(5);
  for (int i = 0; i < N; i++)
    line(&data, "{\"input\":%d,\"ms\":%d}", i, 1 + rand() % 15);
  struct assay_engine_opts o;
  opts_default(&o);
  o.concurrency = 16;
  struct run r;
  run(&r, &o, "fx_thread", NULL, NULL, data);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), N);
  int all_ok = 1;
  for (int i = 0; i < N; i++)
    all_ok &= record_ok(&r, i) && num(rec(&r, i), "output.output") == i &&
              cJSON_IsTrue(at(rec(&r, i), "output.foreign"));
  CU_ASSERT(all_ok);
  CU_ASSERT_EQUAL(r.stats.plugin_faults, 0);
  run_release(&r);
  free(data);
}

static void test_returns_nothing(void) {
  static const char *const specs[] = {"fx_nothing:sync", "fx_nothing:async"};
  for (size_t k = 0; k < 2; k++) {
    struct assay_engine_opts o;
    opts_default(&o);
    struct run r;
    run(&r, &o, specs[k], NULL, NULL, "{\"input\":1}\n{\"input\":2}\n");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 2);
    for (int i = 0; i < 2; i++) {
      CU_ASSERT(str_is(rec(&r, i), "error.code", "no_output"));
      CU_ASSERT(cJSON_IsNull(at(rec(&r, i), "output")));
    }
    CU_ASSERT_EQUAL(r.stats.items_failed, 2);
    run_release(&r);
  }
}

static void test_non_object_output(void) {
  struct assay_engine_opts o;
  opts_default(&o);
  struct run r;
  run(&r, &o, "fx_scalar", NULL, NULL,
      "{\"value\":42}\n{\"value\":\"abc\"}\n{\"value\":[1,2]}\n"
      "{\"value\":null}\n{\"other\":1}\n");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 5);
  static const char *const want[] = {"{\"output\":42}", "{\"output\":\"abc\"}",
                                     "{\"output\":[1,2]}", "{\"output\":null}",
                                     "{\"output\":\"scalar\"}"};
  for (int i = 0; i < 5; i++) {
    CU_ASSERT(record_ok(&r, i));
    cJSON *w = cJSON_Parse(want[i]);
    CU_ASSERT(cJSON_Compare(at(rec(&r, i), "output"), w, 1));
    cJSON_Delete(w);
  }
  run_release(&r);
}

static void test_both_entries_prefers_async(void) {
  struct assay_engine_opts o;
  opts_default(&o);
  struct run r;
  run(&r, &o, "fx_both", NULL, NULL, "{\"input\":\"x\"}\n");
  CU_ASSERT(record_ok(&r, 0));
  CU_ASSERT(str_is(rec(&r, 0), "output.output", "x"));
  CU_ASSERT(str_is(rec(&r, 0), "output.via", "async"));
  run_release(&r);
}

/* ---- metrics
 * ------------------------------------------------------------------------ */

/* A score's fields, or NULL when the record has no such score. */
static const cJSON *score(const struct run *r, int i, const char *name) {
  const cJSON *scores = at(rec(r, i), "scores");
  return cJSON_GetObjectItemCaseSensitive(scores, name);
}

static int score_failed(const struct run *r, int i, const char *name) {
  const cJSON *s = score(r, i, name);
  int ok = s != NULL &&
           cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(s, "value")) &&
           str(s, "error") != NULL && *str(s, "error") != '\0';
  if (!ok) {
    char *text = cJSON_PrintUnformatted(rec(r, i));
    fprintf(stderr, "\n  score '%s' of record %d is not a failure: %s\n", name,
            i, text ? text : "");
    free(text);
  }
  return ok;
}

static int score_is(const struct run *r, int i, const char *name, double v) {
  const cJSON *s = score(r, i, name);
  int ok = s != NULL && num(s, "value") == v && cJSON_IsNull(at(s, "error"));
  if (!ok) {
    char *text = cJSON_PrintUnformatted(rec(r, i));
    fprintf(stderr, "\n  score '%s' of record %d is not %g: %s\n", name, i, v,
            text ? text : "");
    free(text);
  }
  return ok;
}

static void test_bad_metric_values(void) {
  static const struct metric_spec metrics[] = {
      {"fx_badmetric:nonfinite", NULL, NULL},
      {"fx_badmetric:nonfinite", "{\"name\":\"inf\",\"kind\":\"inf\"}", NULL},
      {"fx_badmetric:shape", NULL, NULL},
      {"fx_metrics:const", "{\"value\":0.5}", NULL},
      {NULL, NULL, NULL},
  };
  struct assay_engine_opts o;
  opts_default(&o);
  struct run r;
  run(&r, &o, "fx_sync", NULL, metrics, "{\"input\":1}\n{\"input\":2}\n");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 2);
  for (int i = 0; i < 2; i++) {
    /* The task succeeded; only the scores failed, none dropped. */
    CU_ASSERT(record_ok(&r, i));
    CU_ASSERT(score_failed(&r, i, "nonfinite"));
    CU_ASSERT(score_failed(&r, i, "inf"));
    CU_ASSERT(score_failed(&r, i, "shape"));
    CU_ASSERT(score_is(&r, i, "const", 0.5));
    CU_ASSERT(has(str(score(&r, i, "nonfinite"), "error"), "finite"));
  }
  CU_ASSERT_EQUAL(r.stats.scores_failed, 6);
  CU_ASSERT_EQUAL(r.stats.items_failed, 0);
  run_release(&r);
}

static void test_missing_metric_input(void) {
  static const struct metric_spec metrics[] = {
      {"fx_metrics:pick", NULL, NULL},
      {"fx_metrics:pick", "{\"name\":\"mapped\"}", "{\"x\":\"nope\"}"},
      {NULL, NULL, NULL},
  };
  struct assay_engine_opts o;
  opts_default(&o);
  struct run r;
  run(&r, &o, "fx_sync", NULL, metrics,
      "{\"input\":1}\n{\"input\":2,\"x\":0.25}\n");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 2);
  CU_ASSERT(score_failed(&r, 0, "pick"));
  const char *err = str(score(&r, 0, "pick"), "error");
  CU_ASSERT(has(err, "'x'"));
  CU_ASSERT(has(err, "--map"));
  /* ... and lists the fields there are to map from, each once. */
  CU_ASSERT(has(err, "(they have: input, output)"));
  if (!has(err, "(they have: input, output)"))
    fprintf(stderr, "\n  error: %s\n", err);
  /* A --map from a field that is not there says so, and lists them too. */
  const char *merr = str(score(&r, 1, "mapped"), "error");
  CU_ASSERT(has(merr, "--map x=nope: neither the item nor the task output "
                      "has 'nope' (they have: input, x, output)"));
  /* An item that has the key is scored. */
  CU_ASSERT(score_is(&r, 1, "pick", 0.25));
  CU_ASSERT_EQUAL(r.stats.scores_failed, 3);
  run_release(&r);
}

static void test_map_dotted_path(void) {
  /* --map x=answers.1 reads the second element of the item's array; the
   * task output's fields win over the item's (output.output is 7 here, the
   * item's own "output" field 0.5). */
  static const struct metric_spec metrics[] = {
      {"fx_metrics:pick", NULL, "{\"x\":\"answers.1\"}"},
      {"fx_metrics:pick", "{\"name\":\"from_output\"}", "{\"x\":\"output\"}"},
      {"fx_metrics:pick", "{\"name\":\"nested\"}", "{\"x\":\"meta.scores.0\"}"},
      /* Paths that go wrong part of the way say where and why. */
      {"fx_metrics:pick", "{\"name\":\"past_end\"}", "{\"x\":\"answers.5\"}"},
      {"fx_metrics:pick", "{\"name\":\"no_key\"}", "{\"x\":\"meta.score\"}"},
      {"fx_metrics:pick", "{\"name\":\"through\"}", "{\"x\":\"input.0\"}"},
      {NULL, NULL, NULL},
  };
  struct assay_engine_opts o;
  opts_default(&o);
  struct run r;
  run(&r, &o, "fx_sync", NULL, metrics,
      "{\"input\":7,\"output\":0.5,\"answers\":[0.25,0.75],"
      "\"meta\":{\"scores\":[0.125]}}\n");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 1);
  CU_ASSERT(score_is(&r, 0, "pick", 0.75));
  CU_ASSERT(score_is(&r, 0, "from_output", 7));
  CU_ASSERT(score_is(&r, 0, "nested", 0.125));
  CU_ASSERT(has(str(score(&r, 0, "past_end"), "error"),
                "--map x=answers.5: 'answers' has 2 elements, none at 5"));
  CU_ASSERT(has(str(score(&r, 0, "no_key"), "error"),
                "--map x=meta.score: 'meta' has no 'score' (it has: scores)"));
  CU_ASSERT(has(str(score(&r, 0, "through"), "error"),
                "--map x=input.0: 'input' is a number, so it has no '0'"));
  run_release(&r);
}

static void test_task_failure_skips_metrics(void) {
  static const struct metric_spec metrics[] = {
      {"fx_metrics:const", NULL, NULL},
      {"fx_metrics:async_sleep", "{\"ms\":1}", NULL},
      {NULL, NULL, NULL},
  };
  struct assay_engine_opts o;
  opts_default(&o);
  struct run r;
  run(&r, &o, "fx_sync", NULL, metrics,
      "{\"input\":1,\"fail\":\"the model is on fire\"}\n{\"input\":2}\n");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 2);
  CU_ASSERT(str_is(rec(&r, 0), "error.code", "error"));
  CU_ASSERT(has(str(rec(&r, 0), "error.message"), "the model is on fire"));
  CU_ASSERT(cJSON_IsNull(at(rec(&r, 0), "output")));
  /* No metric ran on the failed item: no score at all. */
  CU_ASSERT_EQUAL(cJSON_GetArraySize(at(rec(&r, 0), "scores")), 0);
  CU_ASSERT(score_is(&r, 1, "const", 1));
  CU_ASSERT(score_is(&r, 1, "async_sleep", 1));
  CU_ASSERT_EQUAL(r.stats.items_failed, 1);
  CU_ASSERT_EQUAL(r.stats.scores_failed, 0);
  run_release(&r);
}

static void test_metrics_run_concurrently(void) {
  /* Three metrics of one item, two sync and one async, each 200 ms long.
   * Run at once, the last to start sees all three running; one after the
   * other, each would see only itself. */
  static const struct metric_spec metrics[] = {
      {"fx_metrics:sleep", "{\"ms\":200,\"name\":\"s1\"}", NULL},
      {"fx_metrics:sleep", "{\"ms\":200,\"name\":\"s2\"}", NULL},
      {"fx_metrics:async_sleep", "{\"ms\":200}", NULL},
      {NULL, NULL, NULL},
  };
  struct assay_engine_opts o;
  opts_default(&o);
  o.threads = 4;
  struct run r;
  run(&r, &o, "fx_sync", NULL, metrics, "{\"input\":1}\n");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 1);
  CU_ASSERT(record_ok(&r, 0));
  double peak = 0;
  static const char *const names[] = {"s1", "s2", "async_sleep"};
  for (int k = 0; k < 3; k++) {
    double v = num(score(&r, 0, names[k]), "value");
    CU_ASSERT(v >= 1 && v <= 3);
    if (v > peak)
      peak = v;
  }
  CU_ASSERT_EQUAL(peak, 3);
  /* metrics_ms covers the metrics: at least one 200 ms metric. */
  CU_ASSERT(num(rec(&r, 0), "metrics_ms") >= 200 - TIMER_SLACK_MS);
  run_release(&r);
}

/* Removes the timings, which differ between any two runs. */
static void drop_timings(cJSON *records) {
  cJSON *x;
  cJSON_ArrayForEach(x, records) {
    cJSON_DeleteItemFromObjectCaseSensitive(x, "task_ms");
    cJSON_DeleteItemFromObjectCaseSensitive(x, "metrics_ms");
  }
}

static void test_chain_same_records(void) {
  /* An all-sync item runs as a chain (its worker calls the metrics right
   * after the task); the records and counters are those of one job per
   * call, with quick and failing scores, a retried metric, a missing
   * input that stops the chain, and a failed task. */
  static const struct metric_spec metrics[] = {
      {"fx_metrics:const", "{\"value\":0.5,\"reason\":\"half\"}", NULL},
      {"fx_metrics:multi", NULL, NULL},
      {"fx_badmetric:shape", NULL, NULL},
      {"fx_flaky:flaky_metric", "{\"retry_after_ms\":1,\"failures\":1}", NULL},
      {"fx_metrics:pick", NULL, NULL},
      {"fx_metrics:const", "{\"name\":\"last\"}", NULL},
      {NULL, NULL, NULL},
  };
  char *data = NULL;
  for (int i = 0; i < 40; i++) {
    if (i % 10 == 7)
      line(&data, "{\"id\":\"i%d\",\"input\":\"s%d\",\"fail\":\"no\"}",
           i, i);
    else if (i % 3 == 0)
      line(&data, "{\"id\":\"i%d\",\"input\":\"s%d\"}", i, i); /* no x */
    else
      line(&data, "{\"id\":\"i%d\",\"input\":\"s%d\",\"x\":%d}", i, i,
           i);
  }
  for (int threads = 1; threads <= 4; threads += 3) {
    struct run r[3];
    /* 0: one job per call; 1: chains; 2: chains with light records, items
     * parsed and printed on the workers. */
    for (int chain = 0; chain < 3; chain++) {
      struct assay_engine_opts o;
      opts_default(&o);
      o.threads = threads;
      o.backoff_base_ms = 1;
      o.concurrency = 4; /* waves: later ones know the metrics are quick */
      o.chain = chain > 0;
      o.light_records = chain == 2;
      run(&r[chain], &o, "fx_sync", NULL, metrics, data);
      CU_ASSERT_EQUAL(cJSON_GetArraySize(r[chain].records), 40);
      drop_timings(r[chain].records);
    }
    CU_ASSERT(cJSON_Compare(r[0].records, r[1].records, 1));
    CU_ASSERT(cJSON_Compare(r[0].records, r[2].records, 1));
    CU_ASSERT_EQUAL(r[2].stats.calls, r[1].stats.calls);
    CU_ASSERT_EQUAL(r[1].stats.finished, 0);
    /* multi gives two scores: no item finishes on its worker here. */
    CU_ASSERT_EQUAL(r[2].stats.finished, 0);
    run_release(&r[2]);
    CU_ASSERT_EQUAL(r[0].stats.chained, 0);
    CU_ASSERT(r[1].stats.chained > 0);
    CU_ASSERT_EQUAL(r[0].stats.calls, r[1].stats.calls);
    CU_ASSERT_EQUAL(r[0].stats.retries, r[1].stats.retries);
    CU_ASSERT_EQUAL(r[0].stats.scores_failed, r[1].stats.scores_failed);
    CU_ASSERT_EQUAL(r[0].stats.items_failed, r[1].stats.items_failed);
    CU_ASSERT_EQUAL(r[1].stats.items_failed, 4);
    /* Spot checks, so that equal cannot mean equally wrong. */
    CU_ASSERT(score_is(&r[1], 1, "const", 0.5));
    CU_ASSERT(score_is(&r[1], 1, "pick", 1));
    CU_ASSERT(score_is(&r[1], 1, "flaky_metric", 2));
    CU_ASSERT(str_is(rec(&r[1], 1), "scores.flaky_metric.reason", "s1"));
    CU_ASSERT(score_failed(&r[1], 1, "shape"));
    CU_ASSERT(score_failed(&r[1], 3, "pick"));
    CU_ASSERT(score_is(&r[1], 3, "last", 1));
    CU_ASSERT(str_is(rec(&r[1], 7), "error.code", "error"));
    run_release(&r[0]);
    run_release(&r[1]);
  }
  free(data);
}

static void test_chain_timeout_per_call(void) {
  /* In a chain each call keeps its own timeout: two metrics of 150 ms
   * under a 250 ms timeout both succeed although the chain takes 300 ms
   * (one worker, so the chain always goes on). */
  static const struct metric_spec metrics[] = {
      {"fx_metrics:sleep", "{\"name\":\"s1\"}", NULL},
      {"fx_metrics:sleep", "{\"name\":\"s2\"}", NULL},
      {NULL, NULL, NULL},
  };
  struct assay_engine_opts o;
  opts_default(&o);
  o.threads = 1;
  o.timeout_ms = 250;
  o.retries = 0;
  struct run r;
  run(&r, &o, "fx_sync", NULL, metrics, "{\"input\":1,\"ms\":150}\n");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 1);
  CU_ASSERT(record_ok(&r, 0));
  CU_ASSERT(score_is(&r, 0, "s1", 1));
  CU_ASSERT(score_is(&r, 0, "s2", 1));
  CU_ASSERT_EQUAL(r.stats.timeouts, 0);
  CU_ASSERT_EQUAL(r.stats.chained, 2);
  CU_ASSERT(num(rec(&r, 0), "metrics_ms") >= 300 - TIMER_SLACK_MS);
  run_release(&r);
}

/*
 * n items through fx_sync, then metrics const and sleep (the sleep of the
 * item's ms), two workers, no retries: item slow sleeps slow_ms, the others
 * ms. Checks what both tests below depend on: every record in order and
 * without error, const scored everywhere, and only the slow item's sleep
 * failed, the one timeout of the run.
 */
static void run_one_slow(struct run *r, int n, int slow, int slow_ms, int ms,
                         int concurrency, long timeout_ms) {
  static const struct metric_spec metrics[] = {
      {"fx_metrics:const", NULL, NULL},
      {"fx_metrics:sleep", NULL, NULL},
      {NULL, NULL, NULL},
  };
  struct assay_engine_opts o;
  opts_default(&o);
  o.threads = 2;
  o.concurrency = concurrency;
  o.timeout_ms = timeout_ms;
  o.retries = 0;
  char *data = NULL;
  for (int i = 0; i < n; i++)
    line(&data, "{\"input\":%d,\"ms\":%d}", i, i == slow ? slow_ms : ms);
  run(r, &o, "fx_sync", NULL, metrics, data);
  free(data);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r->records), n);
  int ok = 1;
  for (int i = 0; i < n; i++)
    ok &= record_ok(r, i) && score_is(r, i, "const", 1) &&
          (i == slow || num(score(r, i, "sleep"), "value") >= 1);
  CU_ASSERT(ok);
  CU_ASSERT(score_failed(r, slow, "sleep"));
  CU_ASSERT_EQUAL(r->stats.timeouts, 1);
}

static void test_light_records(void) {
  /* Light records: items parsed, run and printed on the workers when the
   * whole chain succeeds with one score per metric; everything else (a
   * failed score, a retried metric, a failed task, malformed lines) goes
   * the usual way. The lines are the records one job per call gives. */
  static const struct metric_spec metrics[] = {
      {"fx_metrics:const", "{\"value\":0.5,\"reason\":\"half\"}", NULL},
      {"fx_metrics:pick", NULL, NULL},
      {"fx_flaky:flaky_metric", "{\"retry_after_ms\":1,\"failures\":1}", NULL},
      {NULL, NULL, NULL},
  };
  char *data = NULL;
  for (int i = 0; i < 60; i++) {
    switch (i % 6) {
    case 0:
      line(&data, "{\"id\":\"i%d\",\"input\":\"\\u00e9\\\"%d\\n\",\"x\":%d}", i,
           i, i);
      break;
    case 1:
      line(&data, "{\"id\":%d.5,\"input\":{\"k\":[%d,null]},\"x\":1.5}", i, i);
      break;
    case 2:
      line(&data, "{\"input\":\"s%d\",\"x\":\"no\"}", i);
      break;
    case 3:
      line(&data, "{\"id\":\"i%d\",\"input\":1,\"fail\":\"boom\",\"x\":1}", i);
      break;
    case 4:
      line(&data, "{\"id\": \"i%d\", \"input\": ", i);
      break;
    default:
      line(&data, "[%d]", i);
    }
  }
  struct run r[3];
  for (int k = 0; k < 3; k++) {
    struct assay_engine_opts o;
    opts_default(&o);
    o.threads = 2;
    o.backoff_base_ms = 1;
    o.concurrency = 8;
    o.chain = k > 0;
    o.light_records = k == 2;
    run(&r[k], &o, "fx_sync", NULL, metrics, data);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(r[k].records), 60);
    drop_timings(r[k].records);
  }
  CU_ASSERT(cJSON_Compare(r[0].records, r[2].records, 1));
  CU_ASSERT(cJSON_Compare(r[1].records, r[2].records, 1));
  for (int k = 1; k < 3; k++) {
    CU_ASSERT_EQUAL(r[0].stats.calls, r[k].stats.calls);
    CU_ASSERT_EQUAL(r[0].stats.retries, r[k].stats.retries);
    CU_ASSERT_EQUAL(r[0].stats.scores_failed, r[k].stats.scores_failed);
    CU_ASSERT_EQUAL(r[0].stats.items_failed, r[k].stats.items_failed);
  }
  CU_ASSERT_EQUAL(r[0].stats.items_failed, 30);
  /* flaky_metric fails each item's first call: no item finishes on its
   * worker until it stops failing, so only the first two kinds can. */
  CU_ASSERT(r[2].stats.finished <= 20);
  CU_ASSERT_EQUAL(r[1].stats.finished, 0);
  /* Spot checks, so that equal cannot mean equally wrong. */
  CU_ASSERT(str_is(rec(&r[2], 0), "input.input", "\xc3\xa9\"0\n"));
  CU_ASSERT(num(rec(&r[2], 1), "id") == 1.5);
  CU_ASSERT(score_failed(&r[2], 2, "pick"));
  CU_ASSERT(str_is(rec(&r[2], 3), "error.code", "error"));
  CU_ASSERT(str_is(rec(&r[2], 4), "error.code", "bad_item"));
  CU_ASSERT(has(str(rec(&r[2], 4), "error.message"),
                "test.jsonl:5: invalid JSON"));
  CU_ASSERT(has(str(rec(&r[2], 5), "error.message"),
                "test.jsonl:6: item is a JSON array, not a JSON object"));
  for (int k = 0; k < 3; k++)
    run_release(&r[k]);

  /* Without the flaky metric, the first two kinds finish on the worker
   * (one: with more, an idle one may take a metric whose speed is not
   * known yet, and the chain stops). */
  static const struct metric_spec two[] = {
      {"fx_metrics:const", "{\"value\":0.5,\"reason\":\"half\"}", NULL},
      {"fx_metrics:pick", NULL, NULL},
      {NULL, NULL, NULL},
  };
  for (int k = 0; k < 2; k++) {
    struct assay_engine_opts o;
    opts_default(&o);
    o.threads = 1;
    o.light_records = k;
    run(&r[k], &o, "fx_sync", NULL, two, data);
    drop_timings(r[k].records);
  }
  CU_ASSERT(cJSON_Compare(r[0].records, r[1].records, 1));
  CU_ASSERT_EQUAL(r[1].stats.finished, 20);
  CU_ASSERT_EQUAL(r[0].stats.calls, r[1].stats.calls);
  CU_ASSERT(score_is(&r[1], 0, "pick", 0));
  CU_ASSERT(score_is(&r[1], 6, "pick", 6));
  CU_ASSERT(str_is(rec(&r[1], 6), "id", "i6"));
  run_release(&r[0]);
  run_release(&r[1]);
  free(data);
}

static void test_light_chain_timeout(void) {
  /* A metric past its timeout in a chain whose item a worker parsed (one
   * metric: the chain always goes on): the loop takes the item from the
   * worker's completion and goes on; the other items finish on the other
   * worker, past the late completion. Item 1's 700 ms call is given up at
   * 400 ms and returns while items 3 and 4 run (at about 850 ms of the
   * 1000); the others' 150 ms calls have 250 ms to spare under load. */
  static const struct metric_spec metrics[] = {
      {"fx_metrics:sleep", NULL, NULL},
      {NULL, NULL, NULL},
  };
  struct assay_engine_opts o;
  opts_default(&o);
  o.threads = 2;
  o.concurrency = 1;
  o.timeout_ms = 400;
  o.retries = 0;
  o.light_records = 1;
  char *data = NULL;
  for (int i = 0; i < 5; i++)
    line(&data, "{\"id\":\"i%d\",\"input\":%d,\"ms\":%d}", i, i,
         i == 1 ? 700 : 150);
  struct run r;
  run(&r, &o, "fx_sync", NULL, metrics, data);
  free(data);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 5);
  CU_ASSERT(has(str(score(&r, 1, "sleep"), "error"),
                "timeout: metric 'sleep' timed out after 400 ms"));
  CU_ASSERT(str_is(rec(&r, 1), "id", "i1"));
  CU_ASSERT(num(rec(&r, 1), "input.ms") == 700);
  CU_ASSERT(num(rec(&r, 1), "output.output") == 1);
  for (int i = 0; i < 5; i++)
    CU_ASSERT(i == 1 || (record_ok(&r, i) &&
                         num(score(&r, i, "sleep"), "value") >= 1));
  CU_ASSERT_EQUAL(r.stats.timeouts, 1);
  CU_ASSERT_EQUAL(r.stats.late_completions, 1);
  CU_ASSERT_EQUAL(r.stats.finished, 4);
  run_release(&r);
}

static void test_chain_metric_timeout(void) {
  /* A chained metric past its timeout: its score is a timeout when the
   * timeout fires, the scores before it stand, and its result is dropped
   * when the worker returns it. Meanwhile the other worker serves the
   * rest. */
  struct run r;
  run_one_slow(&r, 9, 0, 450, 50, 1, 200);
  CU_ASSERT(has(str(score(&r, 0, "sleep"), "error"),
                "timeout: metric 'sleep' timed out after 200 ms"));
  CU_ASSERT_EQUAL(r.stats.late_completions, 1);
  CU_ASSERT(r.stats.chained >= 2);
  run_release(&r);
}

static void test_quick_chains_slow_call(void) {
  /* Quick chains wake one worker fewer than there are; when one call
   * turns slow (300 ms, item 150), the items queued behind it must not
   * wait for it: the other worker is woken, and only that call times out.
   * A record's task_ms counts from when its call was queued: without the
   * wake-up they wait until the slow call times out. */
  struct run r;
  run_one_slow(&r, 300, 150, 300, 0, 16, 150);
  double waited = 0;
  for (int i = 0; i < 300; i++)
    if (i != 150 && num(rec(&r, i), "task_ms") > waited)
      waited = num(rec(&r, i), "task_ms");
  CU_ASSERT(waited < 75);
  if (!(waited < 75))
    fprintf(stderr, "\n  a call waited %.1f ms behind the slow one\n", waited);
  run_release(&r);
}

static void test_chain_leaves_slow_metrics_parallel(void) {
  /* Two items with two sync metrics of 200 ms each, and idle workers: a
   * chain would run an item's metrics one after the other, so it leaves
   * them to the loop, which runs all four at once. One after the other,
   * no more than two would ever run together (one per item). */
  static const struct metric_spec metrics[] = {
      {"fx_metrics:sleep", "{\"ms\":200,\"name\":\"s1\"}", NULL},
      {"fx_metrics:sleep", "{\"ms\":200,\"name\":\"s2\"}", NULL},
      {NULL, NULL, NULL},
  };
  struct assay_engine_opts o;
  opts_default(&o);
  o.threads = 4;
  struct run r;
  run(&r, &o, "fx_sync", NULL, metrics, "{\"input\":1}\n{\"input\":2}\n");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 2);
  double peak = 0;
  for (int i = 0; i < 2; i++) {
    CU_ASSERT(record_ok(&r, i));
    for (int k = 1; k <= 2; k++) {
      double v = num(score(&r, i, k == 1 ? "s1" : "s2"), "value");
      peak = v > peak ? v : peak;
    }
  }
  CU_ASSERT(peak >= 3);
  CU_ASSERT_EQUAL(r.stats.chained, 0);
  run_release(&r);
}

static void test_quick_on_loop(void) {
  /* An ASSAY_QUICK metric after an async task runs on the loop thread;
   * after a sync task it stays in the task's chain, on its worker. */
  static const struct metric_spec metrics[] = {
      {"fx_metrics:quick", NULL, NULL},
      {NULL, NULL, NULL},
  };
  const char *tasks[] = {"fx_async", "fx_sync"};
  for (int k = 0; k < 2; k++) {
    struct assay_engine_opts o;
    opts_default(&o);
    o.concurrency = 8;
    char *data = NULL;
    for (int i = 0; i < 50; i++)
      line(&data, "{\"input\":%d,\"ms\":1}", i);
    struct run r;
    run(&r, &o, tasks[k], NULL, metrics, data);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 50);
    int ok = 1;
    for (int i = 0; i < 50; i++)
      ok &= record_ok(&r, i) && score_is(&r, i, "quick", k == 0 ? 1 : 0);
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(r.stats.quick, k == 0 ? 50 : 0);
    run_release(&r);
    free(data);
  }
}

static void test_quick_turned_slow(void) {
  /* Quick calls that prove slow send their metric to the workers, and
   * every score still comes out: at the third call over 2 ms (one slow
   * call is forgiven), or at once for one over 100 ms. */
  static const struct metric_spec metrics[] = {
      {"fx_metrics:quick", NULL, NULL},
      {NULL, NULL, NULL},
  };
  static const int slow_ms[2][6] = {{0, 5, 0, 5, 5, 0}, {0, 150, 0, 0, 0, 0}};
  static const int on_loop[2] = {5, 2}; /* calls run on the loop */
  for (int k = 0; k < 2; k++) {
    struct assay_engine_opts o;
    opts_default(&o);
    o.concurrency = 1;
    char *data = NULL;
    for (int i = 0; i < 6; i++)
      line(&data, "{\"input\":%d,\"ms\":1,\"quick_ms\":%d}", i,
           slow_ms[k][i]);
    struct run r;
    run(&r, &o, "fx_async", NULL, metrics, data);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 6);
    int ok = 1;
    for (int i = 0; i < 6; i++)
      ok &= record_ok(&r, i) && score_is(&r, i, "quick", i < on_loop[k]);
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(r.stats.quick, on_loop[k]);
    run_release(&r);
    free(data);
  }
}

static void test_multi_and_renamed_scores(void) {
  static const struct metric_spec metrics[] = {
      {"fx_metrics:multi", NULL, NULL},
      {"fx_metrics:multi", "{\"name\":\"m2\"}", NULL},
      {"fx_metrics:const", "{\"name\":\"c1\",\"value\":0.5}", NULL},
      {"fx_metrics:const", "{\"name\":\"c2\",\"reason\":\"why not\"}", NULL},
      {NULL, NULL, NULL},
  };
  struct assay_engine_opts o;
  opts_default(&o);
  struct run r;
  run(&r, &o, "fx_sync", NULL, metrics, "{\"input\":1}\n");
  CU_ASSERT(record_ok(&r, 0));
  CU_ASSERT(score_is(&r, 0, "a", 0.25));
  CU_ASSERT(score_is(&r, 0, "b", 0.75));
  CU_ASSERT(str_is(score(&r, 0, "a"), "reason", "a"));
  /* A renamed multi-score metric prefixes its scores with the new name. */
  CU_ASSERT(score_is(&r, 0, "m2.a", 0.25));
  CU_ASSERT(score_is(&r, 0, "m2.b", 0.75));
  CU_ASSERT(score_is(&r, 0, "c1", 0.5));
  CU_ASSERT(score_is(&r, 0, "c2", 1));
  CU_ASSERT(str_is(score(&r, 0, "c2"), "reason", "why not"));
  CU_ASSERT(cJSON_IsNull(at(score(&r, 0, "c1"), "reason")));
  run_release(&r);
}

static void test_duplicate_score_name(void) {
  static const struct metric_spec metrics[] = {
      {"fx_metrics:const", NULL, NULL},
      {"fx_metrics:const", NULL, NULL},
      {NULL, NULL, NULL},
  };
  struct assay_engine_opts o;
  opts_default(&o);
  struct run r;
  run_ex(&r, &o, "fx_sync", NULL, metrics, "{\"input\":1}\n", 0);
  CU_ASSERT(r.add_rc < 0);
  CU_ASSERT(has(r.add_err, "'const'"));
  CU_ASSERT(has(r.add_err, "name"));
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 0);
  run_release(&r);
}

static void test_scoring_mode(void) {
  /* No task: each item is scored as it stands. */
  static const struct metric_spec metrics[] = {
      {"fx_metrics:pick", NULL, NULL},
      {"fx_metrics:pick", "{\"name\":\"y\"}", "{\"x\":\"y\"}"},
      {NULL, NULL, NULL},
  };
  struct assay_engine_opts o;
  opts_default(&o);
  struct run r;
  run(&r, &o, NULL, NULL, metrics,
      "{\"x\":0.5,\"y\":1}\n{\"x\":0,\"y\":0.25}\n");
  CU_ASSERT_EQUAL(r.rc, 0);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 2);
  CU_ASSERT(score_is(&r, 0, "pick", 0.5));
  CU_ASSERT(score_is(&r, 0, "y", 1));
  CU_ASSERT(score_is(&r, 1, "pick", 0));
  CU_ASSERT(score_is(&r, 1, "y", 0.25));
  for (int i = 0; i < 2; i++)
    CU_ASSERT(cJSON_IsNull(at(rec(&r, i), "error")));
  CU_ASSERT_EQUAL(r.stats.calls, 4);
  run_release(&r);
}

static void test_bad_item(void) {
  /* A malformed line is a record of its own; the run goes on. */
  struct assay_engine_opts o;
  opts_default(&o);
  struct run r;
  run(&r, &o, "fx_sync", NULL, NULL,
      "{\"input\":0}\n{\"input\": nope}\n[1,2]\n{\"input\":3}\n");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(r.records), 4);
  CU_ASSERT(record_ok(&r, 0));
  CU_ASSERT(str_is(rec(&r, 1), "error.code", "bad_item"));
  CU_ASSERT(has(str(rec(&r, 1), "error.message"), "test.jsonl:2"));
  CU_ASSERT(str_is(rec(&r, 2), "error.code", "bad_item"));
  CU_ASSERT(record_ok(&r, 3));
  CU_ASSERT(num(rec(&r, 3), "output.output") == 3);
  CU_ASSERT_EQUAL(r.stats.items_failed, 2);
  run_release(&r);
}

static const struct test_case pipeline_cases[] = {
    {"order under random completion times", test_order_random_completion},
    {"concurrency limit, async", test_concurrency_limit_async},
    {"a wide window reads answers while it opens",
     test_wide_window_reads_answers},
    {"loop_busy tells a waiting loop from a busy one", test_loop_busy},
    {"concurrency limit, sync", test_concurrency_limit_sync},
    {"not thread-safe is serialised", test_not_thread_safe_serialised},
    {"memory bounded by the window", test_memory_window},
    {"--limit", test_limit},
    {"bad item", test_bad_item},
    {NULL, NULL},
};

static const struct test_case fault_cases[] = {
    {"never completes: timeout", test_timeout_never_completes},
    {"a timeout never fires early", test_timeout_never_early},
    {"async past its timeout: late completion dropped",
     test_timeout_async_late},
    {"sync past its timeout: late result dropped", test_timeout_sync_late},
    {"a sync call's timeout counts from when a worker takes it",
     test_timeout_sync_from_start},
    {"queued sync calls end when every worker is held",
     test_timeout_sync_all_workers_held},
    {"retries honour retry-after", test_retry_after},
    {"a retried metric gets its input", test_metric_retry_gets_input},
    {"retries exhausted", test_retries_exhausted},
    {"completes twice", test_completes_twice},
    {"completes from a foreign thread", test_foreign_thread},
    {"returns nothing", test_returns_nothing},
    {"non-object output wrapped", test_non_object_output},
    {"both entries: async preferred", test_both_entries_prefers_async},
    {NULL, NULL},
};

static const struct test_case metric_cases[] = {
    {"non-finite and wrong-shape scores", test_bad_metric_values},
    {"missing input names --map", test_missing_metric_input},
    {"--map with a dotted path", test_map_dotted_path},
    {"task failure: metrics not run", test_task_failure_skips_metrics},
    {"metrics of one item run concurrently", test_metrics_run_concurrently},
    {"chains: the same records as one job per call", test_chain_same_records},
    {"chains: each call keeps its own timeout", test_chain_timeout_per_call},
    {"chains: a metric past its timeout", test_chain_metric_timeout},
    {"light records: items finished on the workers", test_light_records},
    {"light records: a chained metric past its timeout",
     test_light_chain_timeout},
    {"quick chains: a call turned slow holds nothing up",
     test_quick_chains_slow_call},
    {"chains: slow metrics left to run in parallel",
     test_chain_leaves_slow_metrics_parallel},
    {"quick metrics run on the loop thread", test_quick_on_loop},
    {"a quick metric turned slow goes to the workers",
     test_quick_turned_slow},
    {"multi-score and renamed metrics", test_multi_and_renamed_scores},
    {"duplicate score name", test_duplicate_score_name},
    {"scoring mode", test_scoring_mode},
    {NULL, NULL},
};

static int suite_init(void) {
  unsetenv("ASSAY_PLUGIN_PATH");
  return 0;
}

static const struct test_suite suites[] = {
    {"pipeline", suite_init, NULL, pipeline_cases},
    {"faults", suite_init, NULL, fault_cases},
    {"metrics", suite_init, NULL, metric_cases},
    {NULL, NULL, NULL, NULL},
};

int main(int argc, char **argv) {
  return test_main(argc, argv, suites);
}
