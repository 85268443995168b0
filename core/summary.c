/*
 * Run summary (see summary.h and docs/results.md): statistics accumulated
 * one result record at a time, in memory that does not grow with the number
 * of records, so a run of millions of items, a resume or a merge can feed it
 * as they stream. Means and variances use Welford's update, which stays
 * accurate when the values sit on a large offset (1e9 + small values) where
 * the textbook sum-of-squares formula cancels to noise. Latency percentiles
 * come from the exact values while there are few, then from a fixed
 * log-scale histogram.
 *
 * With --trials K the records of one item's trials come one after the
 * other (records are in (index, trial) order), so the per-item reducers
 * (mean and max of an item's trials, pass@k and pass^k against --pass
 * thresholds) keep only the open item's partial values per score and fold
 * them into running totals when the index changes.
 */
#include "summary.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gate.h"
#include "util.h"

/*
 * Caps on what records can make the summary hold. Records come from files a
 * user may hand us (resume, merge), so each distinct-name table is bounded;
 * what does not fit is counted in counts.ignored rather than kept.
 */
#define MAX_SCORES 1024
#define MAX_CODES 64
#define MAX_USAGE 128
#define USAGE_DEPTH 4

/*
 * Latency histogram: bucket 0 holds values under HIST_MIN_MS, bucket i >= 1
 * holds [HIST_MIN_MS * 2^((i-1)/HIST_SUB), HIST_MIN_MS * 2^(i/HIST_SUB)),
 * the last bucket everything above (about 12 days). With 16 buckets per
 * octave the geometric middle of a bucket is within 2.2% of any value in it.
 */
#define HIST_MIN_MS 1e-3
#define HIST_SUB 16
#define HIST_OCTAVES 40
#define HIST_N (HIST_SUB * HIST_OCTAVES + 2)
/* Up to this many values, percentiles are exact. */
#define EXACT_N 256

/* Welford accumulator with extremes. */
struct welford {
  long n;
  double mean, m2, min, max;
};

struct score {
  char *name;
  struct welford w;
  long failures;
  /* Trials: the open item's values of this score ... */
  double item_sum, item_max;
  long item_n;
  /* ... and, over closed items that had a value, the sums of their means
   * and of their maxima (Neumaier-compensated). */
  long items;
  double mean_sum, mean_comp, max_sum, max_comp;
};

/* One distinct score name that --pass thresholds name: whether some trial
 * and whether every trial of the open item passed its thresholds, and over
 * closed items how many had some passing trial and how many had only. */
struct gate {
  char *score;
  int any, all;
  long any_items, all_items;
};

struct code_count {
  char *code;
  long n;
};

/* One member of the usage tree: a number summed across records or an
 * object whose members are further entries (parent is the index of the
 * enclosing object entry, -1 at the top). Parents precede their children. */
struct usage_entry {
  char *key;
  int parent;
  int is_object;
  double sum, comp; /* Neumaier-compensated sum */
};

struct latency {
  long n;
  double total, comp, min, max;
  double exact[EXACT_N];
  long hist[HIST_N];
};

struct assay_summary {
  long items, ok, failed;
  long attempts, retried;
  long score_failures;
  long ignored; /* score names, codes or usage keys past the caps */
  struct score *scores;
  int nscores, capscores;
  struct code_count codes[MAX_CODES];
  int ncodes;
  struct usage_entry usage[MAX_USAGE];
  int nusage;
  struct latency task, metrics;

  /* --pass thresholds (copied), their distinct score names, and the
   * records that passed them or, with a successful task, did not. */
  struct assay_threshold *thresholds;
  size_t nthresholds;
  struct gate *gates;
  size_t ngates;
  long passed, failed_thresholds;
  /* The open item group: its index (when the records have one) and its
   * number of trials; closed groups and the most trials one had. */
  int group_open, group_has_index;
  double group_index;
  long group_n, groups, max_k;
};

struct assay_summary *assay_summary_new(void) {
  return assay__xcalloc(1, sizeof(struct assay_summary));
}

void assay_summary_free(struct assay_summary *s) {
  if (s == NULL)
    return;
  for (int i = 0; i < s->nscores; i++)
    free(s->scores[i].name);
  free(s->scores);
  for (int i = 0; i < s->ncodes; i++)
    free(s->codes[i].code);
  for (int i = 0; i < s->nusage; i++)
    free(s->usage[i].key);
  for (size_t i = 0; i < s->nthresholds; i++)
    assay_threshold_release(&s->thresholds[i]);
  free(s->thresholds);
  for (size_t i = 0; i < s->ngates; i++)
    free(s->gates[i].score);
  free(s->gates);
  free(s);
}

void assay_summary_set_thresholds(struct assay_summary *s,
                                  const struct assay_threshold *t, size_t n) {
  if (s == NULL)
    return;
  for (size_t i = 0; i < s->nthresholds; i++)
    assay_threshold_release(&s->thresholds[i]);
  free(s->thresholds);
  for (size_t i = 0; i < s->ngates; i++)
    free(s->gates[i].score);
  free(s->gates);
  s->thresholds = NULL;
  s->gates = NULL;
  s->nthresholds = s->ngates = 0;
  if (n == 0 || t == NULL)
    return;
  s->thresholds = assay__xcalloc(n, sizeof *s->thresholds);
  s->gates = assay__xcalloc(n, sizeof *s->gates);
  for (size_t i = 0; i < n; i++) {
    s->thresholds[i] = t[i];
    s->thresholds[i].score = assay__xstrdup(t[i].score);
    size_t g = 0;
    while (g < s->ngates && strcmp(s->gates[g].score, t[i].score) != 0)
      g++;
    if (g == s->ngates)
      s->gates[s->ngates++].score = assay__xstrdup(t[i].score);
  }
  s->nthresholds = n;
}

static void welford_add(struct welford *w, double x) {
  w->n++;
  if (w->n == 1) {
    w->mean = w->min = w->max = x;
    w->m2 = 0;
    return;
  }
  double d = x - w->mean;
  w->mean += d / (double)w->n;
  /* d and (x - new mean) share a sign, so m2 never decreases. */
  w->m2 += d * (x - w->mean);
  if (x < w->min)
    w->min = x;
  if (x > w->max)
    w->max = x;
}

/* Neumaier's compensated addition: token counts and costs summed over
 * millions of records keep their low digits. */
static void ksum_add(double *sum, double *comp, double x) {
  double t = *sum + x;
  if (fabs(*sum) >= fabs(x))
    *comp += (*sum - t) + x;
  else
    *comp += (x - t) + *sum;
  *sum = t;
}

static int hist_bucket(double v) {
  if (!(v >= HIST_MIN_MS))
    return 0;
  double b = floor(log2(v / HIST_MIN_MS) * HIST_SUB);
  if (b >= HIST_N - 2)
    return HIST_N - 1;
  return 1 + (int)b;
}

static void latency_add(struct latency *l, double v) {
  if (!isfinite(v) || v < 0)
    return;
  if (l->n < EXACT_N)
    l->exact[l->n] = v;
  if (l->n == 0 || v < l->min)
    l->min = v;
  if (l->n == 0 || v > l->max)
    l->max = v;
  l->n++;
  ksum_add(&l->total, &l->comp, v);
  l->hist[hist_bucket(v)]++;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Nearest-rank percentile (the smallest value with at least p of the
 * values at or below it): exact for few values, else the geometric middle
 * of the histogram bucket holding that rank, kept within [min, max]. */
static double latency_percentile(const struct latency *l, double p) {
  if (l->n == 0)
    return NAN;
  long rank = (long)ceil(p * (double)l->n);
  if (rank < 1)
    rank = 1;
  if (l->n <= EXACT_N) {
    double sorted[EXACT_N];
    memcpy(sorted, l->exact, (size_t)l->n * sizeof *sorted);
    qsort(sorted, (size_t)l->n, sizeof *sorted, cmp_double);
    return sorted[rank - 1];
  }
  long seen = 0;
  int b = 0;
  for (; b < HIST_N - 1; b++) {
    seen += l->hist[b];
    if (seen >= rank)
      break;
  }
  double v;
  if (b == 0)
    v = l->min;
  else if (b == HIST_N - 1)
    v = l->max;
  else
    v = HIST_MIN_MS * exp2(((double)b - 0.5) / HIST_SUB);
  if (v < l->min)
    v = l->min;
  if (v > l->max)
    v = l->max;
  return v;
}

/* The score named name, created when new; hint is the score's position in
 * the record, which matches the table for every record the engine writes,
 * so the usual lookup is one comparison. NULL past the cap. */
static struct score *score_find(struct assay_summary *s, const char *name,
                                int hint) {
  if (hint < s->nscores && strcmp(s->scores[hint].name, name) == 0)
    return &s->scores[hint];
  for (int i = 0; i < s->nscores; i++)
    if (strcmp(s->scores[i].name, name) == 0)
      return &s->scores[i];
  if (s->nscores >= MAX_SCORES) {
    s->ignored++;
    return NULL;
  }
  if (s->nscores == s->capscores) {
    s->capscores = s->capscores ? 2 * s->capscores : 8;
    s->scores =
        assay__xrealloc(s->scores, (size_t)s->capscores * sizeof *s->scores);
  }
  struct score *sc = &s->scores[s->nscores++];
  memset(sc, 0, sizeof *sc);
  sc->name = assay__xstrdup(name);
  return sc;
}

static void code_count_add(struct assay_summary *s, const char *code) {
  for (int i = 0; i < s->ncodes; i++)
    if (strcmp(s->codes[i].code, code) == 0) {
      s->codes[i].n++;
      return;
    }
  if (s->ncodes >= MAX_CODES) {
    s->ignored++;
    return;
  }
  s->codes[s->ncodes].code = assay__xstrdup(code);
  s->codes[s->ncodes].n = 1;
  s->ncodes++;
}

/* Index of the usage entry key under parent, created with the given kind
 * when new; -1 past the cap or when the key was first seen with the other
 * kind (a number in one record, an object in another: the first wins). */
static int usage_entry(struct assay_summary *s, int parent, const char *key,
                       int is_object) {
  for (int i = 0; i < s->nusage; i++)
    if (s->usage[i].parent == parent && strcmp(s->usage[i].key, key) == 0)
      return s->usage[i].is_object == is_object ? i : -1;
  if (s->nusage >= MAX_USAGE) {
    s->ignored++;
    return -1;
  }
  struct usage_entry *u = &s->usage[s->nusage];
  memset(u, 0, sizeof *u);
  u->key = assay__xstrdup(key);
  u->parent = parent;
  u->is_object = is_object;
  return s->nusage++;
}

static void usage_add(struct assay_summary *s, const cJSON *obj, int parent,
                      int depth) {
  const cJSON *m;
  cJSON_ArrayForEach(m, obj) {
    if (m->string == NULL)
      continue;
    if (cJSON_IsNumber(m) && isfinite(m->valuedouble)) {
      int i = usage_entry(s, parent, m->string, 0);
      if (i >= 0)
        ksum_add(&s->usage[i].sum, &s->usage[i].comp, m->valuedouble);
    } else if (cJSON_IsObject(m) && depth < USAGE_DEPTH) {
      int i = usage_entry(s, parent, m->string, 1);
      if (i >= 0)
        usage_add(s, m, i, depth + 1);
    }
  }
}

static const cJSON *member(const cJSON *obj, const char *key) {
  return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key)
                             : NULL;
}

static int number_of(const cJSON *obj, const char *key, double *v) {
  const cJSON *m = member(obj, key);
  if (!cJSON_IsNumber(m) || !isfinite(m->valuedouble))
    return 0;
  *v = m->valuedouble;
  return 1;
}

/* Folds the open item's values of sc into its totals. */
static void score_close_item(struct score *sc) {
  if (sc->item_n > 0) {
    sc->items++;
    ksum_add(&sc->mean_sum, &sc->mean_comp, sc->item_sum / (double)sc->item_n);
    ksum_add(&sc->max_sum, &sc->max_comp, sc->item_max);
  }
  sc->item_sum = sc->item_max = 0;
  sc->item_n = 0;
}

static void gate_close_item(struct gate *g) {
  g->any_items += g->any;
  g->all_items += g->all;
}

static void group_close(struct assay_summary *s) {
  if (!s->group_open)
    return;
  for (int i = 0; i < s->nscores; i++)
    score_close_item(&s->scores[i]);
  for (size_t i = 0; i < s->ngates; i++)
    gate_close_item(&s->gates[i]);
  s->groups++;
  if (s->group_n > s->max_k)
    s->max_k = s->group_n;
  s->group_open = 0;
}

/* Starts a new item group unless record continues the open one: same
 * index. A record without an index is an item of its own. */
/* The members summary_add reads, found in one pass over the record (a
 * lookup per member walked the record each time). */
struct fields {
  const cJSON *index, *error, *scores, *attempts, *task_ms, *metrics_ms,
      *output;
};

static void fields_of(const cJSON *record, struct fields *f) {
  memset(f, 0, sizeof *f);
  const cJSON *m;
  cJSON_ArrayForEach(m, record) {
    const char *k = m->string;
    const cJSON **slot = NULL;
    if (k == NULL)
      continue;
    switch (k[0]) {
    case 'i': slot = strcmp(k, "index") == 0 ? &f->index : NULL; break;
    case 'e': slot = strcmp(k, "error") == 0 ? &f->error : NULL; break;
    case 's': slot = strcmp(k, "scores") == 0 ? &f->scores : NULL; break;
    case 'a': slot = strcmp(k, "attempts") == 0 ? &f->attempts : NULL; break;
    case 't': slot = strcmp(k, "task_ms") == 0 ? &f->task_ms : NULL; break;
    case 'm':
      slot = strcmp(k, "metrics_ms") == 0 ? &f->metrics_ms : NULL;
      break;
    case 'o': slot = strcmp(k, "output") == 0 ? &f->output : NULL; break;
    }
    if (slot != NULL && *slot == NULL) /* the first, as a lookup finds */
      *slot = m;
  }
}

/* A finite number's value. */
static int finite_of(const cJSON *m, double *v) {
  if (!cJSON_IsNumber(m) || !isfinite(m->valuedouble))
    return 0;
  *v = m->valuedouble;
  return 1;
}

static void group_enter(struct assay_summary *s, const struct fields *f) {
  double index;
  int has = finite_of(f->index, &index);
  if (s->group_open && !(has && s->group_has_index && index == s->group_index))
    group_close(s);
  if (!s->group_open) {
    s->group_open = 1;
    s->group_has_index = has;
    s->group_index = has ? index : 0;
    s->group_n = 0;
    for (size_t i = 0; i < s->ngates; i++) {
      s->gates[i].any = 0;
      s->gates[i].all = 1;
    }
  }
  s->group_n++;
}

void assay_summary_add(struct assay_summary *s, const cJSON *record) {
  if (s == NULL || !cJSON_IsObject(record))
    return;
  s->items++;
  struct fields f;
  fields_of(record, &f);
  group_enter(s, &f);
  for (size_t i = 0; i < s->ngates; i++) {
    int p = assay__score_passes(record, s->gates[i].score, s->thresholds,
                                s->nthresholds);
    s->gates[i].any |= p;
    s->gates[i].all &= p;
  }
  if (s->nthresholds > 0) {
    if (assay_record_passes(record, s->thresholds, s->nthresholds, NULL))
      s->passed++;
    else if (f.error == NULL || cJSON_IsNull(f.error))
      s->failed_thresholds++;
  }

  const cJSON *err = f.error;
  if (err == NULL || cJSON_IsNull(err)) {
    s->ok++;
  } else {
    s->failed++;
    const cJSON *code = member(err, "code");
    code_count_add(s, cJSON_IsString(code) && code->valuestring[0] != '\0'
                          ? code->valuestring
                          : "unknown");
  }

  const cJSON *scores = f.scores;
  if (!cJSON_IsObject(scores))
    scores = NULL;
  int k = 0, nscored = 0;
  const cJSON *sv;
  cJSON_ArrayForEach(sv, scores) {
    if (sv->string == NULL)
      continue;
    nscored++;
    struct score *sc = score_find(s, sv->string, k++);
    if (sc == NULL)
      continue;
    /* Only a finite number is a value; null (a failed metric) and anything
     * malformed count as a failure of that score, never as a zero. */
    double v;
    if (number_of(sv, "value", &v)) {
      welford_add(&sc->w, v);
      if (sc->item_n == 0 || v > sc->item_max)
        sc->item_max = v;
      sc->item_sum += v;
      sc->item_n++;
    } else {
      sc->failures++;
      s->score_failures++;
    }
  }

  double v;
  long attempts = 0;
  if (finite_of(f.attempts, &v) && v > 0) {
    attempts = v > 1e9 ? 1000000000L : (long)v;
    s->attempts += attempts;
    if (attempts > 1)
      s->retried++;
  }
  /* A record with no task attempt (scoring mode, a bad item) has no task
   * time to speak of; one with no scores ran no metrics. */
  if (attempts > 0 && finite_of(f.task_ms, &v))
    latency_add(&s->task, v);
  if (nscored > 0 && finite_of(f.metrics_ms, &v))
    latency_add(&s->metrics, v);

  const cJSON *usage = member(f.output, "usage");
  if (cJSON_IsObject(usage))
    usage_add(s, usage, -1, 1);
}

/* Adds v, or null when it is not finite: JSON has no NaN or infinity. */
static void add_number(cJSON *obj, const char *key, double v) {
  if (isfinite(v))
    cJSON_AddNumberToObject(obj, key, v);
  else
    cJSON_AddNullToObject(obj, key);
}

static cJSON *score_json(const struct score *sc) {
  cJSON *j = cJSON_CreateObject();
  const struct welford *w = &sc->w;
  cJSON_AddNumberToObject(j, "count", (double)w->n);
  if (w->n == 0) {
    static const char *const keys[] = {"mean", "std", "min", "max", "stderr"};
    for (size_t i = 0; i < assay__array_size(keys); i++)
      cJSON_AddNullToObject(j, keys[i]);
  } else {
    double sd = w->n < 2 ? 0.0 : sqrt(fmax(w->m2, 0.0) / (double)(w->n - 1));
    add_number(j, "mean", w->mean);
    add_number(j, "std", sd);
    add_number(j, "min", w->min);
    add_number(j, "max", w->max);
    add_number(j, "stderr", sd / sqrt((double)w->n));
  }
  cJSON_AddNumberToObject(j, "failures", (double)sc->failures);
  return j;
}

static const struct gate *gate_find(const struct assay_summary *s,
                                    const char *name) {
  for (size_t i = 0; i < s->ngates; i++)
    if (strcmp(s->gates[i].score, name) == 0)
      return &s->gates[i];
  return NULL;
}

/* One member of trials.per_score: sc (NULL for a thresholded score no
 * record had) and g (NULL for a score without thresholds) with the open
 * item folded in, on copies, so that the summary can be taken mid-run. */
static cJSON *trial_score_json(const struct assay_summary *s,
                               const struct score *sc, const struct gate *g,
                               double items) {
  cJSON *j = cJSON_CreateObject();
  struct score t = {0};
  if (sc != NULL) {
    t = *sc;
    if (s->group_open)
      score_close_item(&t);
  }
  add_number(j, "item_mean",
             t.items ? (t.mean_sum + t.mean_comp) / (double)t.items : NAN);
  add_number(j, "item_max",
             t.items ? (t.max_sum + t.max_comp) / (double)t.items : NAN);
  if (g != NULL && items > 0) {
    struct gate c = *g;
    if (s->group_open)
      gate_close_item(&c);
    cJSON_AddNumberToObject(j, "pass_at_k", (double)c.any_items / items);
    cJSON_AddNumberToObject(j, "pass_all_k", (double)c.all_items / items);
  } else {
    cJSON_AddNullToObject(j, "pass_at_k");
    cJSON_AddNullToObject(j, "pass_all_k");
  }
  return j;
}

/* The "trials" object, or NULL when no item had more than one trial and
 * no thresholds are set: then it would only repeat "scores". */
static cJSON *trials_json(const struct assay_summary *s) {
  double items = (double)s->groups + (s->group_open ? 1 : 0);
  long k = s->max_k;
  if (s->group_open && s->group_n > k)
    k = s->group_n;
  if (k <= 1 && s->nthresholds == 0)
    return NULL;
  cJSON *j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "k", (double)k);
  cJSON_AddNumberToObject(j, "items", items);
  cJSON *per = cJSON_AddObjectToObject(j, "per_score");
  for (int i = 0; i < s->nscores; i++)
    cJSON_AddItemToObject(per, s->scores[i].name,
                          trial_score_json(s, &s->scores[i],
                                           gate_find(s, s->scores[i].name),
                                           items));
  for (size_t i = 0; i < s->ngates; i++) {
    if (cJSON_GetObjectItemCaseSensitive(per, s->gates[i].score) == NULL)
      cJSON_AddItemToObject(per, s->gates[i].score,
                            trial_score_json(s, NULL, &s->gates[i], items));
  }
  return j;
}

static cJSON *latency_json(const struct latency *l) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "count", (double)l->n);
  double total = l->total + l->comp;
  add_number(j, "total", total);
  add_number(j, "mean", l->n ? total / (double)l->n : NAN);
  add_number(j, "p50", latency_percentile(l, 0.50));
  add_number(j, "p95", latency_percentile(l, 0.95));
  add_number(j, "max", l->n ? l->max : NAN);
  return j;
}

static cJSON *usage_json(const struct assay_summary *s) {
  cJSON *root = cJSON_CreateObject();
  cJSON *nodes[MAX_USAGE];
  for (int i = 0; i < s->nusage; i++) {
    const struct usage_entry *u = &s->usage[i];
    cJSON *parent = u->parent < 0 ? root : nodes[u->parent];
    if (u->is_object) {
      nodes[i] = cJSON_AddObjectToObject(parent, u->key);
    } else {
      nodes[i] = NULL;
      add_number(parent, u->key, u->sum + u->comp);
    }
  }
  return root;
}

/* Members of run copied in this order; any other member of run follows
 * them unless its name is one the summary computes. */
static const char *const run_members[] = {
    "name", "started", "wall_ms", "status", "config", "plugins", "engine"};
static const char *const computed_members[] = {
    "format_version", "record_format_version",
    "items_per_s",    "counts",
    "scores",         "trials",
    "usage",          "latency"};

static int is_one_of(const char *key, const char *const *set, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(key, set[i]) == 0)
      return 1;
  return 0;
}

cJSON *assay_summary_json(const struct assay_summary *s, const cJSON *run) {
  static const struct assay_summary empty;
  if (s == NULL)
    s = &empty;
  if (!cJSON_IsObject(run))
    run = NULL;
  cJSON *j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "format_version", ASSAY_SUMMARY_FORMAT_VERSION);
  /* The summary says which record format the records beside it use, since
   * records carry no version of their own (it would repeat on every line). */
  cJSON_AddNumberToObject(j, "record_format_version",
                          ASSAY_RECORD_FORMAT_VERSION);
  for (size_t i = 0; i < assay__array_size(run_members); i++) {
    const cJSON *m = member(run, run_members[i]);
    if (m != NULL && !(cJSON_IsNumber(m) && !isfinite(m->valuedouble)))
      cJSON_AddItemToObject(j, run_members[i], cJSON_Duplicate(m, 1));
    else
      cJSON_AddNullToObject(j, run_members[i]);
  }
  const cJSON *m;
  cJSON_ArrayForEach(m, run) {
    if (m->string == NULL ||
        is_one_of(m->string, run_members, assay__array_size(run_members)) ||
        is_one_of(m->string, computed_members,
                  assay__array_size(computed_members)) ||
        cJSON_GetObjectItemCaseSensitive(j, m->string) != NULL)
      continue;
    cJSON_AddItemToObject(j, m->string, cJSON_Duplicate(m, 1));
  }

  /* A resumed run's wall time covers only this session, so its rate
   * counts only the records this session added. */
  double wall_ms, resumed = 0;
  number_of(run, "resumed_from", &resumed);
  double fresh = (double)s->items - (resumed > 0 ? resumed : 0);
  if (number_of(run, "wall_ms", &wall_ms) && wall_ms > 0)
    add_number(j, "items_per_s", (fresh > 0 ? fresh : 0) / (wall_ms / 1000.0));
  else
    cJSON_AddNullToObject(j, "items_per_s");

  cJSON *counts = cJSON_AddObjectToObject(j, "counts");
  cJSON_AddNumberToObject(counts, "items", (double)s->items);
  cJSON_AddNumberToObject(counts, "ok", (double)s->ok);
  cJSON_AddNumberToObject(counts, "failed", (double)s->failed);
  cJSON *by = cJSON_AddObjectToObject(counts, "failed_by_code");
  for (int i = 0; i < s->ncodes; i++)
    cJSON_AddNumberToObject(by, s->codes[i].code, (double)s->codes[i].n);
  cJSON_AddNumberToObject(counts, "score_failures", (double)s->score_failures);
  cJSON_AddNumberToObject(counts, "attempts", (double)s->attempts);
  cJSON_AddNumberToObject(counts, "retried", (double)s->retried);
  double faults = 0;
  number_of(member(run, "engine"), "plugin_faults", &faults);
  cJSON_AddNumberToObject(counts, "plugin_faults", faults);
  cJSON_AddNumberToObject(counts, "ignored", (double)s->ignored);
  if (s->nthresholds > 0) {
    cJSON_AddNumberToObject(counts, "passed", (double)s->passed);
    cJSON_AddNumberToObject(counts, "failed_thresholds",
                            (double)s->failed_thresholds);
  }

  cJSON *scores = cJSON_AddObjectToObject(j, "scores");
  for (int i = 0; i < s->nscores; i++)
    cJSON_AddItemToObject(scores, s->scores[i].name, score_json(&s->scores[i]));

  cJSON *trials = trials_json(s);
  if (trials != NULL)
    cJSON_AddItemToObject(j, "trials", trials);

  cJSON_AddItemToObject(j, "usage", usage_json(s));

  cJSON *lat = cJSON_AddObjectToObject(j, "latency");
  cJSON_AddItemToObject(lat, "task_ms", latency_json(&s->task));
  cJSON_AddItemToObject(lat, "metrics_ms", latency_json(&s->metrics));
  return j;
}

/* ---- the table ------------------------------------------------------- */

#define CELL 64

/* A number for a table cell: fixed four decimals while that is readable,
 * scientific beyond; "-" for null or missing. */
static void fmt_stat(const cJSON *v, char out[CELL]) {
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
    snprintf(out, CELL, "-");
  else if (fabs(v->valuedouble) < 1e15)
    snprintf(out, CELL, "%.4f", v->valuedouble);
  else
    snprintf(out, CELL, "%.4e", v->valuedouble);
}

static void fmt_count(const cJSON *v, char out[CELL]) {
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
    snprintf(out, CELL, "-");
  else
    snprintf(out, CELL, "%.0f", v->valuedouble);
}

/* Integers as integers (token counts), other numbers with up to six
 * decimals and no trailing zeros (costs: 0.000059, not 5.9e-05). */
static void fmt_plain(double v, char out[CELL]) {
  if (!isfinite(v)) {
    snprintf(out, CELL, "-");
  } else if (v == floor(v) && fabs(v) < 1e15) {
    snprintf(out, CELL, "%.0f", v);
  } else if (fabs(v) >= 1e-6 && fabs(v) < 1e12) {
    snprintf(out, CELL, "%.6f", v);
    char *end = out + strlen(out) - 1;
    while (*end == '0')
      *end-- = '\0';
    if (*end == '.')
      *end = '\0';
  } else {
    snprintf(out, CELL, "%.6g", v);
  }
}

static void fmt_ms(double ms, char out[CELL]) {
  if (!isfinite(ms))
    snprintf(out, CELL, "-");
  else if (ms < 10)
    snprintf(out, CELL, "%.2f ms", ms);
  else if (ms < 1000)
    snprintf(out, CELL, "%.1f ms", ms);
  else if (ms < 60000)
    snprintf(out, CELL, "%.2f s", ms / 1000);
  else {
    double sec = ms / 1000;
    long h = (long)(sec / 3600);
    long min = (long)((sec - (double)h * 3600) / 60);
    double rest = sec - (double)h * 3600 - (double)min * 60;
    if (h > 0)
      snprintf(out, CELL, "%ldh%02ldm%02.0fs", h, min, floor(rest));
    else
      snprintf(out, CELL, "%ldm%04.1fs", min, rest);
  }
}

/* Display width of a UTF-8 string: one column per code point, which is
 * right for the Latin, Greek and Cyrillic names scores get. */
static size_t text_width(const char *s) {
  size_t w = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80)
      w++;
  return w;
}

/* Writes s with control characters replaced, so a hostile score name
 * cannot move the cursor or break the table's lines. */
static void put_text(FILE *out, const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    fputc(c < 0x20 || c == 0x7f ? '?' : c, out);
  }
}

static void put_pad(FILE *out, size_t n) {
  while (n-- > 0)
    fputc(' ', out);
}

static double number_or(const cJSON *obj, const char *key, double def) {
  double v;
  return number_of(obj, key, &v) ? v : def;
}

static void print_header(const cJSON *sum, FILE *out) {
  const cJSON *name = member(sum, "name");
  const cJSON *status = member(sum, "status");
  const cJSON *counts = member(sum, "counts");
  fputs("run", out);
  if (cJSON_IsString(name)) {
    fputs(" '", out);
    put_text(out, name->valuestring);
    fputc('\'', out);
  }
  if (cJSON_IsString(status)) {
    fputs(" (", out);
    put_text(out, status->valuestring);
    fputc(')', out);
  }
  char items[CELL], ok[CELL], failed[CELL];
  fmt_count(member(counts, "items"), items);
  fmt_count(member(counts, "ok"), ok);
  fmt_count(member(counts, "failed"), failed);
  fprintf(out, ": %s %s", items, strcmp(items, "1") == 0 ? "item" : "items");
  /* A resumed run: how many of them were there before it. */
  double resumed = number_or(sum, "resumed_from", 0);
  double n = number_or(counts, "items", NAN);
  if (resumed > 0)
    fprintf(out, " (%.0f from before, %.0f run now)", resumed,
            isfinite(n) && n > resumed ? n - resumed : 0);
  fprintf(out, ", %s ok, %s failed", ok, failed);
  double wall = number_or(sum, "wall_ms", NAN);
  if (isfinite(wall)) {
    char w[CELL];
    fmt_ms(wall, w);
    fprintf(out, " in %s", w);
  }
  double ips = number_or(sum, "items_per_s", NAN);
  if (isfinite(ips) && !(resumed > 0 && n <= resumed))
    fprintf(out, ips >= 10 ? " (%.1f items/s)" : " (%.3g items/s)", ips);
  fputc('\n', out);
}

/*
 * Prints rows of cells under a header: the first column (names) is
 * left-aligned, the others right-aligned, two spaces between columns, each
 * column as wide as its widest entry. cells holds rows * (ncols - 1)
 * cells, row by row.
 */
static void print_grid(FILE *out, const char *const *head, int ncols,
                       const char *const *names, int rows,
                       char (*cells)[CELL]) {
  size_t width[16];
  int nc = ncols - 1;
  for (int c = 0; c < ncols; c++)
    width[c] = text_width(head[c]);
  for (int r = 0; r < rows; r++) {
    size_t w = text_width(names[r]);
    if (w > width[0])
      width[0] = w;
    for (int c = 0; c < nc; c++)
      if (strlen(cells[r * nc + c]) > width[c + 1])
        width[c + 1] = strlen(cells[r * nc + c]);
  }
  fputs(head[0], out);
  put_pad(out, width[0] - text_width(head[0]));
  for (int c = 1; c < ncols; c++) {
    put_pad(out, 2 + width[c] - text_width(head[c]));
    fputs(head[c], out);
  }
  fputc('\n', out);
  for (int r = 0; r < rows; r++) {
    put_text(out, names[r]);
    put_pad(out, width[0] - text_width(names[r]));
    for (int c = 0; c < nc; c++) {
      const char *cell = cells[r * nc + c];
      put_pad(out, 2 + width[c + 1] - strlen(cell));
      fputs(cell, out);
    }
    fputc('\n', out);
  }
}

static void print_scores(const cJSON *scores, FILE *out) {
  static const char *const head[] = {"score", "n",   "mean",   "std",
                                     "min",   "max", "stderr", "failures"};
  enum { NC = 7 };
  int rows = cJSON_IsObject(scores) ? cJSON_GetArraySize(scores) : 0;
  if (rows == 0) {
    fputs("no scores\n", out);
    return;
  }
  char(*cells)[CELL] = assay__xcalloc((size_t)rows * NC, CELL);
  const char **names = assay__xcalloc((size_t)rows, sizeof *names);
  int r = 0;
  const cJSON *sc;
  cJSON_ArrayForEach(sc, scores) {
    char(*row)[CELL] = cells + r * NC;
    names[r] = sc->string ? sc->string : "?";
    fmt_count(member(sc, "count"), row[0]);
    fmt_stat(member(sc, "mean"), row[1]);
    fmt_stat(member(sc, "std"), row[2]);
    fmt_stat(member(sc, "min"), row[3]);
    fmt_stat(member(sc, "max"), row[4]);
    fmt_stat(member(sc, "stderr"), row[5]);
    fmt_count(member(sc, "failures"), row[6]);
    r++;
  }
  print_grid(out, head, NC + 1, names, rows, cells);
  free(names);
  free(cells);
}

/* The trials block: per score, the means over items of the per-item mean
 * and maximum, and pass@k / pass^k where thresholds are set. */
static void print_trials(const cJSON *sum, FILE *out) {
  const cJSON *trials = member(sum, "trials");
  const cJSON *per = member(trials, "per_score");
  if (!cJSON_IsObject(trials))
    return;
  double k = number_or(trials, "k", 0), items = number_or(trials, "items", 0);
  fprintf(out, "trials: up to %.0f per item, %.0f %s\n", k, items,
          items == 1 ? "item" : "items");
  int rows = cJSON_IsObject(per) ? cJSON_GetArraySize(per) : 0;
  if (rows > 0) {
    char at[CELL], all[CELL];
    snprintf(at, CELL, "pass@%.0f", k);
    snprintf(all, CELL, "pass^%.0f", k);
    const char *const head[] = {"score", "item mean", "item max", at, all};
    enum { NC = 4 };
    char(*cells)[CELL] = assay__xcalloc((size_t)rows * NC, CELL);
    const char **names = assay__xcalloc((size_t)rows, sizeof *names);
    int r = 0;
    const cJSON *sc;
    cJSON_ArrayForEach(sc, per) {
      char(*row)[CELL] = cells + r * NC;
      names[r] = sc->string ? sc->string : "?";
      fmt_stat(member(sc, "item_mean"), row[0]);
      fmt_stat(member(sc, "item_max"), row[1]);
      fmt_stat(member(sc, "pass_at_k"), row[2]);
      fmt_stat(member(sc, "pass_all_k"), row[3]);
      r++;
    }
    print_grid(out, head, NC + 1, names, rows, cells);
    free(names);
    free(cells);
  }
  fputc('\n', out);
}

/* "key value, key value" over the numeric members of obj, nested objects
 * as "outer.inner"; returns how many were printed. */
static int print_pairs(const cJSON *obj, const char *prefix, int printed,
                       FILE *out) {
  const cJSON *m;
  cJSON_ArrayForEach(m, obj) {
    if (m->string == NULL)
      continue;
    if (cJSON_IsObject(m)) {
      char *p = prefix ? assay__format("%s.%s", prefix, m->string)
                       : assay__xstrdup(m->string);
      printed = print_pairs(m, p, printed, out);
      free(p);
    } else if (cJSON_IsNumber(m)) {
      char v[CELL];
      fmt_plain(m->valuedouble, v);
      fputs(printed++ ? ", " : "", out);
      if (prefix) {
        put_text(out, prefix);
        fputc('.', out);
      }
      put_text(out, m->string);
      fprintf(out, " %s", v);
    }
  }
  return printed;
}

static void print_latency(const cJSON *lat, FILE *out) {
  static const char *const which[] = {"task_ms", "metrics_ms"};
  static const char *const label[] = {"task", "metrics"};
  for (int i = 0; i < 2; i++) {
    const cJSON *l = member(lat, which[i]);
    double n = number_or(l, "count", 0);
    if (n <= 0)
      continue;
    char mean[CELL], p50[CELL], p95[CELL], max[CELL];
    fmt_ms(number_or(l, "mean", NAN), mean);
    fmt_ms(number_or(l, "p50", NAN), p50);
    fmt_ms(number_or(l, "p95", NAN), p95);
    fmt_ms(number_or(l, "max", NAN), max);
    fprintf(out, "%s time: mean %s, p50 %s, p95 %s, max %s (%.0f %s)\n",
            label[i], mean, p50, p95, max, n, n == 1 ? "item" : "items");
  }
}

/* The loop thread's busy share from which the table says it was saturated. */
#define LOOP_BUSY_NOTE 0.9

static void print_engine(const cJSON *sum, FILE *out) {
  const cJSON *eng = member(sum, "engine");
  const cJSON *counts = member(sum, "counts");
  double retried = number_or(counts, "retried", 0);
  if (retried > 0)
    fprintf(out, "task attempts: %.0f (%.0f %s retried)\n",
            number_or(counts, "attempts", 0), retried,
            retried == 1 ? "item" : "items");
  if (!cJSON_IsObject(eng))
    return;
  static const char *const keys[] = {"plugin_faults", "late_completions",
                                     "abandoned", "timeouts", "retries"};
  static const char *const labels[] = {"plugin faults", "late completions",
                                       "abandoned items", "timeouts",
                                       "retries"};
  int printed = 0;
  for (size_t i = 0; i < assay__array_size(keys); i++) {
    double v = number_or(eng, keys[i], 0);
    if (v <= 0)
      continue;
    fprintf(out, "%s%s %.0f", printed++ ? ", " : "engine: ", labels[i], v);
    const cJSON *by = member(eng, "retries_by_cause");
    if (strcmp(keys[i], "retries") == 0 && cJSON_IsObject(by)) {
      int n = 0;
      const cJSON *c;
      cJSON_ArrayForEach(c, by) {
        if (c->string == NULL || !cJSON_IsNumber(c) || !(c->valuedouble > 0))
          continue;
        fputs(n++ ? ", " : " (", out);
        put_text(out, c->string);
        fprintf(out, " %.0f", c->valuedouble);
      }
      if (n)
        fputc(')', out);
    }
  }
  if (printed)
    fputc('\n', out);
  /* A saturated loop thread is worth saying: it, not the concurrency
   * asked for, set the pace (a short run says little either way). */
  double busy = number_or(eng, "loop_busy", 0);
  if (busy >= LOOP_BUSY_NOTE && number_or(sum, "wall_ms", 0) >= 500)
    fprintf(out,
            "event loop: busy %.0f%% of the run: assay's main thread set the "
            "pace, so a higher --concurrency would not be faster, and task "
            "times include waiting for it\n",
            busy * 100);
}

void assay_summary_print(const cJSON *summary, FILE *out) {
  if (out == NULL)
    return;
  const cJSON *counts = member(summary, "counts");
  print_header(summary, out);
  fputc('\n', out);
  print_scores(member(summary, "scores"), out);
  fputc('\n', out);
  print_trials(summary, out);

  const cJSON *by = member(counts, "failed_by_code");
  if (cJSON_IsObject(by) && by->child != NULL) {
    fputs("failed by code: ", out);
    print_pairs(by, NULL, 0, out);
    fputc('\n', out);
  }
  double sf = number_or(counts, "score_failures", 0);
  if (sf > 0)
    fprintf(out, "failed scores: %.0f\n", sf);
  const cJSON *passed = member(counts, "passed");
  if (cJSON_IsNumber(passed))
    fprintf(out, "thresholds: %.0f passed, %.0f failed a threshold\n",
            passed->valuedouble, number_or(counts, "failed_thresholds", 0));
  const cJSON *usage = member(summary, "usage");
  if (cJSON_IsObject(usage) && usage->child != NULL) {
    fputs("usage: ", out);
    print_pairs(usage, NULL, 0, out);
    fputc('\n', out);
  }
  print_latency(member(summary, "latency"), out);
  print_engine(summary, out);
  double ignored = number_or(counts, "ignored", 0);
  if (ignored > 0)
    fprintf(out,
            "warning: %.0f score names, error codes or usage keys past the "
            "summary's limits were not counted\n",
            ignored);
  fflush(out);
}
