/*
 * assay compare A.jsonl B.jsonl: pairs the records of two runs by (id,
 * trial) and tells, per score, how B differs from A: the means over the
 * paired items, the mean paired difference with a 95% confidence interval
 * (Student t), how many items improved, regressed or stayed, the items only
 * in one file, and the most regressed items with both outputs. With
 * --fail-if-regressed it is a CI gate.
 *
 * Memory: A is held as a compact open-addressing hash of (id, trial) ->
 * score values (no inputs or outputs); B streams past it. The outputs of
 * the few most regressed items are fetched with one more pass over A.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "files.h"
#include "dataset.h"
#include "util.h"

#define EXIT_REGRESSED 1

/* Caps: score names per comparison (the summary's own cap), record size,
 * outputs kept for the most regressed items, ids listed in the table. */
#define MAX_SCORES 1024
#define MAX_RECORD_BYTES ((size_t)256 << 20)
#define MAX_TOP 1000
#define PREVIEW_BYTES 600
#define TEXT_PREVIEW_COLS 36
#define TEXT_LIST_MAX 20

static const char compare_help[] =
    "usage: assay compare A.jsonl B.jsonl [options]\n"
    "\n"
    "Pairs the records of two runs by (id, trial) and shows, per score, the\n"
    "mean of A and of B over the paired items, the difference B - A with a\n"
    "95% confidence interval (paired Student t), and how many items improved,\n"
    "regressed or stayed unchanged; then the items only in one file and the\n"
    "most regressed items with both outputs.\n"
    "\n"
    "options:\n"
    "  --fail-if-regressed SCORE:DELTA\n"
    "                      exit 1 when mean B < mean A - DELTA for SCORE\n"
    "                      (repeatable; a SCORE missing from either file is\n"
    "                      an error, exit 2)\n"
    "  --top N             most regressed items shown per score (default 5)\n"
    "  --json              print the comparison as JSON on stdout\n"
    "  --max-record-bytes N  largest record line read (default 256 MiB)\n"
    "  -h, --help          this help\n"
    "\n"
    "exit status: 0 compared (no gate failed), 1 a --fail-if-regressed gate\n"
    "failed, 2 usage or input error.\n";

/* ---- Student t quantile ---------------------------------------------- */

/*
 * The continued fraction of the regularized incomplete beta function
 * (modified Lentz), valid and fast for x < (a + 1) / (a + b + 2).
 */
static double beta_cf(double a, double b, double x) {
  const double tiny = 1e-300;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  if (fabs(d) < tiny)
    d = tiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= 300; m++) {
    double m2 = 2.0 * m;
    double num = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
    d = 1 + num * d;
    c = 1 + num / c;
    if (fabs(d) < tiny)
      d = tiny;
    if (fabs(c) < tiny)
      c = tiny;
    d = 1 / d;
    h *= d * c;
    num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
    d = 1 + num * d;
    c = 1 + num / c;
    if (fabs(d) < tiny)
      d = tiny;
    if (fabs(c) < tiny)
      c = tiny;
    d = 1 / d;
    double step = d * c;
    h *= step;
    if (fabs(step - 1) < 1e-15)
      break;
  }
  return h;
}

/* I_x(a, b), the regularized incomplete beta function. */
static double inc_beta(double a, double b, double x) {
  if (x <= 0)
    return 0;
  if (x >= 1)
    return 1;
  double lfront =
      lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
  if (x < (a + 1) / (a + b + 2))
    return exp(lfront) * beta_cf(a, b, x) / a;
  /* The symmetry I_x(a, b) = 1 - I_{1-x}(b, a) keeps the fraction in its
   * fast-converging range. */
  return 1 - exp(lfront) * beta_cf(b, a, 1 - x) / b;
}

/* P(T <= t) for Student's t with df degrees of freedom, t >= 0. */
static double t_cdf(double t, double df) {
  return 1 - 0.5 * inc_beta(df / 2, 0.5, df / (df + t * t));
}

/*
 * The p quantile (p > 0.5) of Student's t with df degrees of freedom, by
 * bisection on the exact distribution function: the interval is exact for
 * every n, not the normal 1.96 that understates it for small samples.
 */
static double t_quantile(double p, double df) {
  double lo = 0, hi = 1;
  while (t_cdf(hi, df) < p && hi < 1e12)
    hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    double mid = (lo + hi) / 2;
    if (t_cdf(mid, df) < p)
      lo = mid;
    else
      hi = mid;
  }
  return (lo + hi) / 2;
}

/* ---- scores and the pairing map -------------------------------------- */

/* One of the most regressed pairs of a score. */
struct worst {
  double d, va, vb;
  char *key; /* the id as keyed: 's' + string or 'n' + number text */
  int64_t trial;
  size_t line_a, line_b;
  char *out_a, *out_b; /* output previews, owned */
};

struct score_stat {
  char *name;
  int in_a, in_b; /* the score appears in that file's records */
  /* Over all records of each file, as the run summaries count them. */
  long all_n[2], all_fail[2];
  double all_mean[2];
  /* Over the pairs where both have a number. */
  long pairs;
  double mean_a, mean_b, mean_d, m2_d;
  long improved, regressed, unchanged;
  long failed_a_only,
      failed_b_only; /* a number on one side, null/absent on the other */
  struct worst *top;
  int ntop;
};

/* A score value of an A record: the score's index and its value (NAN when
 * the metric failed). */
struct score_value {
  uint32_t score;
  double v;
};

struct entry {
  char *key; /* NULL: empty slot */
  int64_t trial;
  size_t line;
  size_t sv_first;
  uint32_t sv_count;
  unsigned char paired, error;
};

struct side {
  const char *path;
  char *summary_path; /* when a summary was found beside the records */
  cJSON *summary;
  long records, errors;
};

struct compare {
  struct score_stat *scores;
  int nscores;
  struct entry *slots;
  size_t cap, used;
  struct score_value *sv;
  size_t nsv, sv_cap;
  struct side side[2];
  long paired, only_a, only_b, dup_a, dup_b, new_errors, fixed_errors;
  /* The keys only in B, in B's order (keys and trials). */
  char **only_b_keys;
  int64_t *only_b_trials;
  size_t only_b_cap;
  int top_n;
};

static int score_index(struct compare *c, const char *name, int create) {
  for (int i = 0; i < c->nscores; i++)
    if (strcmp(c->scores[i].name, name) == 0)
      return i;
  if (!create || c->nscores >= MAX_SCORES)
    return -1;
  c->scores =
      assay__xrealloc(c->scores, (size_t)(c->nscores + 1) * sizeof *c->scores);
  struct score_stat *s = &c->scores[c->nscores];
  memset(s, 0, sizeof *s);
  s->name = assay__xstrdup(name);
  return c->nscores++;
}

static uint64_t key_hash(const char *key, int64_t trial) {
  uint64_t h = 1469598103934665603ull;
  for (const unsigned char *p = (const unsigned char *)key; *p; p++)
    h = (h ^ *p) * 1099511628211ull;
  h = (h ^ (uint64_t)trial) * 1099511628211ull;
  return h ^ (h >> 29);
}

/* The slot of (key, trial): the entry holding it, or the empty slot where it
 * would go. */
static struct entry *map_slot(struct compare *c, const char *key,
                              int64_t trial) {
  size_t mask = c->cap - 1, i = (size_t)key_hash(key, trial) & mask;
  while (c->slots[i].key != NULL &&
         (c->slots[i].trial != trial || strcmp(c->slots[i].key, key) != 0))
    i = (i + 1) & mask;
  return &c->slots[i];
}

static void map_grow(struct compare *c) {
  struct entry *old = c->slots;
  size_t oldcap = c->cap;
  c->cap = oldcap ? oldcap * 2 : 1024;
  c->slots = assay__xcalloc(c->cap, sizeof *c->slots);
  for (size_t i = 0; i < oldcap; i++)
    if (old[i].key != NULL)
      *map_slot(c, old[i].key, old[i].trial) = old[i];
  free(old);
}

/* The pairing key of an id: its type, then its text, so that the string
 * "7" and the number 7 stay different items. NULL when id is neither. */
static char *id_key(const cJSON *id) {
  if (cJSON_IsString(id))
    return assay__format("s%s", id->valuestring);
  if (cJSON_IsNumber(id))
    return assay__format("n%.17g", id->valuedouble);
  return NULL;
}

/* The id of a key as people read it: strings quoted. */
static char *key_display(const char *key) {
  if (key[0] == 's')
    return assay__format("\"%s\"", key + 1);
  return assay__xstrdup(key + 1);
}

static cJSON *key_json(const char *key) {
  if (key[0] == 's')
    return cJSON_CreateString(key + 1);
  return cJSON_CreateNumber(strtod(key + 1, NULL));
}

/* ---- reading records ------------------------------------------------- */

/* Reads the summary beside side->path when there is one; a summary that
 * cannot be read only loses its run name in the output. */
static void side_load_summary(struct side *s) {
  s->summary = assay__summary_beside(s->path, &s->summary_path);
}

/* What compare needs of one record, checked. */
struct rec {
  char *key;
  int64_t trial;
  const cJSON *scores; /* an object, or NULL when the record has none */
  int error;
  const cJSON *output;
};

static int rec_parse(const cJSON *j, const char *file, size_t line,
                     struct rec *r) {
  memset(r, 0, sizeof *r);
  r->key = id_key(cJSON_GetObjectItemCaseSensitive(j, "id"));
  if (r->key == NULL) {
    fprintf(stderr,
            "assay: %s:%zu: record has no string or number 'id'; "
            "is this a records file written by 'assay run'?\n",
            file, line);
    return -1;
  }
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "trial");
  if (t != NULL &&
      !(cJSON_IsNumber(t) && t->valuedouble >= 0 &&
        t->valuedouble == floor(t->valuedouble) && t->valuedouble < 9e15)) {
    fprintf(stderr,
            "assay: %s:%zu: record 'trial' is not a whole number "
            ">= 0\n",
            file, line);
    free(r->key);
    return -1;
  }
  r->trial = t ? (int64_t)t->valuedouble : 0;
  const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "scores");
  if (sc != NULL && !cJSON_IsNull(sc) && !cJSON_IsObject(sc)) {
    fprintf(stderr, "assay: %s:%zu: record 'scores' is not an object\n", file,
            line);
    free(r->key);
    return -1;
  }
  r->scores = cJSON_IsObject(sc) ? sc : NULL;
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
  r->error = e != NULL && !cJSON_IsNull(e);
  r->output = cJSON_GetObjectItemCaseSensitive(j, "output");
  return 0;
}


static void running_mean(long *n, double *mean, double v) {
  (*n)++;
  *mean += (v - *mean) / (double)*n;
}

/* Counts one record's scores into the all-records statistics of side k. */
static int count_scores(struct compare *c, int k, const cJSON *scores) {
  const cJSON *s;
  cJSON_ArrayForEach(s, scores) {
    int i = score_index(c, s->string, 1);
    if (i < 0)
      continue;
    struct score_stat *st = &c->scores[i];
    if (k == 0)
      st->in_a = 1;
    else
      st->in_b = 1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, "value");
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble))
      running_mean(&st->all_n[k], &st->all_mean[k], v->valuedouble);
    else
      st->all_fail[k]++;
  }
  return 0;
}

struct read_ctx {
  struct compare *c;
  const char *file;
};

/* Parses a record of side (0: A, 1: B) into *r and counts it there. */
static int rec_count(struct read_ctx *x, int side, const cJSON *j,
                     size_t line, struct rec *r) {
  if (rec_parse(j, x->file, line, r) < 0)
    return -1;
  x->c->side[side].records++;
  x->c->side[side].errors += r->error;
  count_scores(x->c, side, r->scores);
  return 0;
}

static int add_a(void *arg, const cJSON *j, size_t line) {
  struct read_ctx *x = arg;
  struct compare *c = x->c;
  struct rec r;
  if (rec_count(x, 0, j, line, &r) < 0)
    return -1;
  if ((c->used + 1) * 10 > c->cap * 7)
    map_grow(c);
  struct entry *e = map_slot(c, r.key, r.trial);
  if (e->key != NULL) {
    /* Pairing needs one record per (id, trial); a dataset with repeated
     * ids would pair arbitrarily, so the first record wins and it is said. */
    if (c->dup_a++ < 3) {
      char *d = key_display(r.key);
      fprintf(stderr,
              "assay: warning: %s:%zu: id %s trial %" PRId64
              " repeats line %zu; pairing uses the first\n",
              x->file, line, d, r.trial, e->line);
      free(d);
    }
    free(r.key);
    return 0;
  }
  e->key = r.key;
  e->trial = r.trial;
  e->line = line;
  e->error = (unsigned char)r.error;
  e->sv_first = c->nsv;
  const cJSON *s;
  cJSON_ArrayForEach(s, r.scores) {
    int i = score_index(c, s->string, 0);
    if (i < 0)
      continue;
    if (c->nsv == c->sv_cap) {
      c->sv_cap = c->sv_cap ? c->sv_cap * 2 : 1024;
      c->sv = assay__xrealloc(c->sv, c->sv_cap * sizeof *c->sv);
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, "value");
    c->sv[c->nsv].score = (uint32_t)i;
    c->sv[c->nsv].v =
        cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : NAN;
    c->nsv++;
    e->sv_count++;
  }
  c->used++;
  return 0;
}

/* A one-line preview of a record's output: its "output" member when that
 * is a string (what the built-in tasks return), else its JSON text;
 * whitespace runs become one space and the text is cut at max bytes on a
 * character boundary. Owned. */
static char *output_preview(const cJSON *out, size_t max) {
  char *text;
  if (out == NULL || cJSON_IsNull(out))
    return assay__xstrdup("");
  const cJSON *o = cJSON_GetObjectItemCaseSensitive(out, "output");
  if (cJSON_IsString(o))
    text = assay__xstrdup(o->valuestring);
  else
    text = assay__json_print(out);
  size_t w = 0;
  int space = 0;
  for (size_t r = 0; text[r] != '\0' && w < max; r++) {
    unsigned char ch = (unsigned char)text[r];
    if (ch < 0x20 || ch == 0x7f || ch == ' ') {
      if (!space && w > 0)
        text[w++] = ' ';
      space = 1;
      continue;
    }
    space = 0;
    text[w++] = (char)ch;
  }
  /* Do not end inside a UTF-8 sequence. */
  size_t end = w;
  while (end > 0 && ((unsigned char)text[end - 1] & 0xc0) == 0x80)
    end--;
  if (end > 0 && ((unsigned char)text[end - 1] & 0x80)) {
    unsigned char lead = (unsigned char)text[end - 1];
    size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
    if (w - (end - 1) >= need)
      end = w;
    else
      end--;
  }
  text[end] = '\0';
  return text;
}

static void worst_insert(struct compare *c, struct score_stat *st, double d,
                         double va, double vb, const struct entry *e,
                         size_t line_b, const cJSON *out_b) {
  if (c->top_n == 0)
    return;
  if (st->top == NULL)
    st->top = assay__xcalloc((size_t)c->top_n, sizeof *st->top);
  if (st->ntop == c->top_n && !(d < st->top[st->ntop - 1].d))
    return;
  int pos = st->ntop < c->top_n ? st->ntop : c->top_n - 1;
  if (st->ntop == c->top_n) {
    free(st->top[pos].key);
    free(st->top[pos].out_b);
  } else {
    st->ntop++;
  }
  /* Later equal differences go after earlier ones: the list is stable. */
  while (pos > 0 && d < st->top[pos - 1].d) {
    st->top[pos] = st->top[pos - 1];
    pos--;
  }
  struct worst *w = &st->top[pos];
  w->d = d;
  w->va = va;
  w->vb = vb;
  w->key = assay__xstrdup(e->key);
  w->trial = e->trial;
  w->line_a = e->line;
  w->line_b = line_b;
  w->out_a = NULL;
  w->out_b = output_preview(out_b, PREVIEW_BYTES);
}

/* Whether two values differ by more than rounding noise. */
static int differs(double a, double b) {
  double scale = fmax(1, fmax(fabs(a), fabs(b)));
  return fabs(a - b) > 1e-9 * scale;
}

static int add_b(void *arg, const cJSON *j, size_t line) {
  struct read_ctx *x = arg;
  struct compare *c = x->c;
  struct rec r;
  if (rec_count(x, 1, j, line, &r) < 0)
    return -1;
  struct entry *e = c->cap ? map_slot(c, r.key, r.trial) : NULL;
  if (e == NULL || e->key == NULL) {
    c->only_b++;
    if ((size_t)c->only_b > c->only_b_cap) {
      c->only_b_cap = c->only_b_cap ? c->only_b_cap * 2 : 64;
      c->only_b_keys =
          assay__xrealloc(c->only_b_keys, c->only_b_cap * sizeof(char *));
      c->only_b_trials =
          assay__xrealloc(c->only_b_trials, c->only_b_cap * sizeof(int64_t));
    }
    c->only_b_keys[c->only_b - 1] = r.key;
    c->only_b_trials[c->only_b - 1] = r.trial;
    return 0;
  }
  if (e->paired) {
    if (c->dup_b++ < 3) {
      char *d = key_display(r.key);
      fprintf(stderr,
              "assay: warning: %s:%zu: id %s trial %" PRId64
              " appears twice; pairing uses the first\n",
              x->file, line, d, r.trial);
      free(d);
    }
    free(r.key);
    return 0;
  }
  free(r.key);
  e->paired = 1;
  c->paired++;
  if (r.error && !e->error)
    c->new_errors++;
  if (!r.error && e->error)
    c->fixed_errors++;

  /* Every score either side has: a number on both sides is a pair; a
   * number on one side only is a score that failed (or is missing) on the
   * other. */
  const struct score_value *sv = c->sv + e->sv_first;
  for (int i = 0; i < c->nscores; i++) {
    struct score_stat *st = &c->scores[i];
    double va = NAN, vb = NAN;
    int has_a = 0, has_b = 0;
    for (uint32_t k = 0; k < e->sv_count; k++)
      if (sv[k].score == (uint32_t)i) {
        va = sv[k].v;
        has_a = 1;
        break;
      }
    const cJSON *s =
        r.scores ? cJSON_GetObjectItemCaseSensitive(r.scores, st->name) : NULL;
    if (s != NULL) {
      const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, "value");
      has_b = 1;
      if (cJSON_IsNumber(v) && isfinite(v->valuedouble))
        vb = v->valuedouble;
    }
    if (!has_a && !has_b)
      continue;
    int num_a = !isnan(va), num_b = !isnan(vb);
    if (num_a && !num_b)
      st->failed_b_only++;
    else if (!num_a && num_b)
      st->failed_a_only++;
    if (!num_a || !num_b)
      continue;
    double d = vb - va;
    st->pairs++;
    double n = (double)st->pairs;
    st->mean_a += (va - st->mean_a) / n;
    st->mean_b += (vb - st->mean_b) / n;
    double delta = d - st->mean_d;
    st->mean_d += delta / n;
    st->m2_d += delta * (d - st->mean_d);
    if (!differs(va, vb))
      st->unchanged++;
    else if (d > 0)
      st->improved++;
    else {
      st->regressed++;
      worst_insert(c, st, d, va, vb, e, line, r.output);
    }
  }
  return 0;
}

/* The second pass over A: the outputs of the most regressed items. */
static int fetch_a(void *arg, const cJSON *j, size_t line) {
  struct compare *c = arg;
  for (int i = 0; i < c->nscores; i++)
    for (int k = 0; k < c->scores[i].ntop; k++) {
      struct worst *w = &c->scores[i].top[k];
      if (w->line_a == line && w->out_a == NULL)
        w->out_a = output_preview(cJSON_GetObjectItemCaseSensitive(j, "output"),
                                  PREVIEW_BYTES);
    }
  return 0;
}

static int any_top(const struct compare *c) {
  for (int i = 0; i < c->nscores; i++)
    if (c->scores[i].ntop > 0)
      return 1;
  return 0;
}

/* ---- results ------------------------------------------------------- */

static int by_line(const void *x, const void *y) {
  const struct entry *a = *(const struct entry *const *)x;
  const struct entry *b = *(const struct entry *const *)y;
  return (a->line > b->line) - (a->line < b->line);
}

/* The records of A that found no partner, in A's order (owned array of
 * borrowed entries). */
static const struct entry **unpaired_a(const struct compare *c, size_t *n) {
  const struct entry **v = assay__xmalloc(((size_t)c->only_a + 1) * sizeof *v);
  *n = 0;
  for (size_t i = 0; i < c->cap; i++)
    if (c->slots[i].key && !c->slots[i].paired)
      v[(*n)++] = &c->slots[i];
  qsort(v, *n, sizeof *v, by_line);
  return v;
}

struct ci {
  double lo, hi, t, sd;
  int ok;
};

static struct ci score_ci(const struct score_stat *st) {
  struct ci ci = {0, 0, 0, 0, 0};
  if (st->pairs < 2)
    return ci;
  double n = (double)st->pairs;
  ci.sd = sqrt(st->m2_d / (n - 1));
  ci.t = t_quantile(0.975, n - 1);
  double half = ci.t * ci.sd / sqrt(n);
  ci.lo = st->mean_d - half;
  ci.hi = st->mean_d + half;
  ci.ok = 1;
  return ci;
}

static void add_num_or_null(cJSON *o, const char *k, int ok, double v) {
  if (ok && isfinite(v))
    cJSON_AddNumberToObject(o, k, v);
  else
    cJSON_AddNullToObject(o, k);
}

static cJSON *side_json(const struct side *s) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "file", s->path);
  if (s->summary_path)
    cJSON_AddStringToObject(o, "summary_file", s->summary_path);
  else
    cJSON_AddNullToObject(o, "summary_file");
  static const char *const keep[] = {"name", "status", "started",
                                     "fingerprint"};
  for (size_t i = 0; i < assay__array_size(keep); i++) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(s->summary, keep[i]);
    if (cJSON_IsString(m))
      cJSON_AddStringToObject(o, keep[i], m->valuestring);
    else
      cJSON_AddNullToObject(o, keep[i]);
  }
  cJSON_AddNumberToObject(o, "records", (double)s->records);
  cJSON_AddNumberToObject(o, "task_errors", (double)s->errors);
  return o;
}

struct gate {
  const char *arg;
  char *score;
  double delta;
};

static cJSON *item_json(const char *key, int64_t trial) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddItemToObject(o, "id", key_json(key));
  cJSON_AddNumberToObject(o, "trial", (double)trial);
  return o;
}

static cJSON *compare_json(const struct compare *c, const struct gate *gates,
                           int ngates, const int *gate_failed) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddItemToObject(j, "a", side_json(&c->side[0]));
  cJSON_AddItemToObject(j, "b", side_json(&c->side[1]));
  cJSON_AddNumberToObject(j, "pairs", (double)c->paired);
  cJSON *oa = cJSON_AddObjectToObject(j, "only_in_a");
  cJSON_AddNumberToObject(oa, "count", (double)c->only_a);
  cJSON *la = cJSON_AddArrayToObject(oa, "items");
  size_t na;
  const struct entry **ua = unpaired_a(c, &na);
  for (size_t i = 0; i < na; i++)
    cJSON_AddItemToArray(la, item_json(ua[i]->key, ua[i]->trial));
  free(ua);
  cJSON *ob = cJSON_AddObjectToObject(j, "only_in_b");
  cJSON_AddNumberToObject(ob, "count", (double)c->only_b);
  cJSON *lb = cJSON_AddArrayToObject(ob, "items");
  for (long i = 0; i < c->only_b; i++)
    cJSON_AddItemToArray(lb, item_json(c->only_b_keys[i], c->only_b_trials[i]));
  cJSON *dup = cJSON_AddObjectToObject(j, "duplicates");
  cJSON_AddNumberToObject(dup, "a", (double)c->dup_a);
  cJSON_AddNumberToObject(dup, "b", (double)c->dup_b);
  cJSON *te = cJSON_AddObjectToObject(j, "task_errors");
  cJSON_AddNumberToObject(te, "new_in_b", (double)c->new_errors);
  cJSON_AddNumberToObject(te, "fixed_in_b", (double)c->fixed_errors);
  cJSON *ci = cJSON_AddObjectToObject(j, "ci");
  cJSON_AddNumberToObject(ci, "level", 0.95);
  cJSON_AddStringToObject(ci, "method",
                          "paired Student t, n-1 degrees of "
                          "freedom");
  cJSON *arr = cJSON_AddArrayToObject(j, "scores");
  for (int i = 0; i < c->nscores; i++) {
    const struct score_stat *st = &c->scores[i];
    struct ci x = score_ci(st);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", st->name);
    cJSON_AddBoolToObject(o, "in_a", st->in_a);
    cJSON_AddBoolToObject(o, "in_b", st->in_b);
    cJSON_AddNumberToObject(o, "pairs", (double)st->pairs);
    add_num_or_null(o, "mean_a", st->pairs > 0, st->mean_a);
    add_num_or_null(o, "mean_b", st->pairs > 0, st->mean_b);
    add_num_or_null(o, "diff", st->pairs > 0, st->mean_d);
    add_num_or_null(o, "ci_low", x.ok, x.lo);
    add_num_or_null(o, "ci_high", x.ok, x.hi);
    add_num_or_null(o, "std_diff", x.ok, x.sd);
    add_num_or_null(o, "t", x.ok, x.t);
    cJSON_AddNumberToObject(o, "improved", (double)st->improved);
    cJSON_AddNumberToObject(o, "regressed", (double)st->regressed);
    cJSON_AddNumberToObject(o, "unchanged", (double)st->unchanged);
    cJSON_AddNumberToObject(o, "failed_in_a_only", (double)st->failed_a_only);
    cJSON_AddNumberToObject(o, "failed_in_b_only", (double)st->failed_b_only);
    for (int k = 0; k < 2; k++) {
      cJSON *all = cJSON_AddObjectToObject(o, k == 0 ? "all_a" : "all_b");
      cJSON_AddNumberToObject(all, "count", (double)st->all_n[k]);
      add_num_or_null(all, "mean", st->all_n[k] > 0, st->all_mean[k]);
      cJSON_AddNumberToObject(all, "failures", (double)st->all_fail[k]);
    }
    cJSON *top = cJSON_AddArrayToObject(o, "most_regressed");
    for (int k = 0; k < st->ntop; k++) {
      const struct worst *w = &st->top[k];
      cJSON *t = item_json(w->key, w->trial);
      cJSON_AddNumberToObject(t, "a", w->va);
      cJSON_AddNumberToObject(t, "b", w->vb);
      cJSON_AddNumberToObject(t, "diff", w->d);
      cJSON_AddStringToObject(t, "output_a", w->out_a ? w->out_a : "");
      cJSON_AddStringToObject(t, "output_b", w->out_b ? w->out_b : "");
      cJSON_AddItemToArray(top, t);
    }
    cJSON_AddItemToArray(arr, o);
  }
  cJSON *g = cJSON_AddArrayToObject(j, "gates");
  for (int i = 0; i < ngates; i++) {
    int si = -1;
    for (int k = 0; k < c->nscores; k++)
      if (strcmp(c->scores[k].name, gates[i].score) == 0)
        si = k;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "score", gates[i].score);
    cJSON_AddNumberToObject(o, "delta", gates[i].delta);
    add_num_or_null(o, "mean_a", si >= 0, si >= 0 ? c->scores[si].mean_a : 0);
    add_num_or_null(o, "mean_b", si >= 0, si >= 0 ? c->scores[si].mean_b : 0);
    cJSON_AddBoolToObject(o, "passed", !gate_failed[i]);
    cJSON_AddItemToArray(g, o);
  }
  return j;
}

/* Display width of UTF-8 text: one column per code point (good enough for
 * the alphabetic scripts; wide CJK characters make a row a little longer). */
static size_t cols(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xc0) != 0x80)
      n++;
  return n;
}

/* Prints s padded or cut to w columns ("…" marks a cut). */
static void put_cell(FILE *out, const char *s, size_t w, int right) {
  size_t n = cols(s);
  if (n <= w) {
    if (right)
      fprintf(out, "%*s%s", (int)(w - n), "", s);
    else
      fprintf(out, "%s%*s", s, (int)(w - n), "");
    return;
  }
  size_t c = 0;
  const char *p = s;
  while (*p && c < w - 1) {
    p++;
    while (((unsigned char)*p & 0xc0) == 0x80)
      p++;
    c++;
  }
  fprintf(out, "%.*s\xe2\x80\xa6", (int)(p - s), s);
}

/* The last cell of a row: cut like put_cell, never padded. */
static void put_last(FILE *out, const char *s, size_t w) {
  if (cols(s) <= w)
    fputs(s, out);
  else
    put_cell(out, s, w, 0);
}

static void fmt_num(char *buf, size_t n, int ok, double v, int sign) {
  if (!ok || !isfinite(v))
    snprintf(buf, n, "-");
  else
    snprintf(buf, n, sign ? "%+.4f" : "%.4f", v);
}

static void side_line(FILE *out, const char *label, const struct side *s) {
  fprintf(out, "%s: %s", label, s->path);
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(s->summary, "name");
  const cJSON *status = cJSON_GetObjectItemCaseSensitive(s->summary, "status");
  if (cJSON_IsString(name) || cJSON_IsString(status)) {
    fprintf(out, ": run");
    if (cJSON_IsString(name))
      fprintf(out, " '%s'", name->valuestring);
    if (cJSON_IsString(status))
      fprintf(out, " (%s)", status->valuestring);
  }
  fprintf(out, ", %ld record%s, %ld task error%s\n", s->records,
          s->records == 1 ? "" : "s", s->errors, s->errors == 1 ? "" : "s");
}

static void print_text(const struct compare *c, FILE *out) {
  side_line(out, "A", &c->side[0]);
  side_line(out, "B", &c->side[1]);
  fprintf(out, "pairs: %ld by (id, trial); only in A: %ld; only in B: %ld\n",
          c->paired, c->only_a, c->only_b);
  if (c->new_errors || c->fixed_errors)
    fprintf(out, "task errors: %ld new in B, %ld fixed in B\n", c->new_errors,
            c->fixed_errors);

  /* The score table, columns as wide as their widest entry. */
  enum { NCOL = 9 };
  static const char *const head[NCOL] = {"score",    "pairs",     "mean A",
                                         "mean B",   "diff",      "95% CI",
                                         "improved", "regressed", "unchanged"};
  size_t w[NCOL];
  for (int k = 0; k < NCOL; k++)
    w[k] = cols(head[k]);
  char(*cell)[NCOL][64] = assay__xcalloc((size_t)c->nscores + 1, sizeof *cell);
  for (int i = 0; i < c->nscores; i++) {
    const struct score_stat *st = &c->scores[i];
    struct ci x = score_ci(st);
    char lo[24], hi[24];
    snprintf(cell[i][0], 64, "%s", st->name);
    snprintf(cell[i][1], 64, "%ld", st->pairs);
    fmt_num(cell[i][2], 64, st->pairs > 0, st->mean_a, 0);
    fmt_num(cell[i][3], 64, st->pairs > 0, st->mean_b, 0);
    fmt_num(cell[i][4], 64, st->pairs > 0, st->mean_d, 1);
    fmt_num(lo, sizeof lo, x.ok, x.lo, 1);
    fmt_num(hi, sizeof hi, x.ok, x.hi, 1);
    if (x.ok)
      snprintf(cell[i][5], 64, "[%s, %s]", lo, hi);
    else
      snprintf(cell[i][5], 64, "-");
    snprintf(cell[i][6], 64, "%ld", st->improved);
    snprintf(cell[i][7], 64, "%ld", st->regressed);
    snprintf(cell[i][8], 64, "%ld", st->unchanged);
    for (int k = 0; k < NCOL; k++)
      if (cols(cell[i][k]) > w[k])
        w[k] = cols(cell[i][k]);
  }
  if (w[0] > 40)
    w[0] = 40;
  if (c->nscores > 0) {
    fputc('\n', out);
    for (int k = 0; k < NCOL; k++) {
      if (k)
        fputs("  ", out);
      put_cell(out, head[k], w[k], k > 0 && k != 5);
    }
    fputc('\n', out);
    for (int i = 0; i < c->nscores; i++) {
      for (int k = 0; k < NCOL; k++) {
        if (k)
          fputs("  ", out);
        put_cell(out, cell[i][k], w[k], k > 0 && k != 5);
      }
      fputc('\n', out);
    }
    fprintf(out, "(95%% CI of the mean difference B - A over the pairs: "
                 "Student t, n-1 degrees of freedom)\n");
  } else {
    fprintf(out, "\nno scores in either file\n");
  }
  free(cell);

  /* What the table leaves out, when there is something. */
  for (int i = 0; i < c->nscores; i++) {
    const struct score_stat *st = &c->scores[i];
    if (!st->in_a || !st->in_b)
      fprintf(out, "note: score '%s' is only in %s\n", st->name,
              st->in_a ? "A" : "B");
    if (st->failed_a_only || st->failed_b_only)
      fprintf(out,
              "note: '%s' has a value on one side only for %ld paired "
              "item%s (failed or missing in A: %ld, in B: %ld); they are "
              "left out of the pairs\n",
              st->name, st->failed_a_only + st->failed_b_only,
              st->failed_a_only + st->failed_b_only == 1 ? "" : "s",
              st->failed_a_only, st->failed_b_only);
    if (st->in_a && st->in_b && c->paired > 0 &&
        (st->all_n[0] != st->pairs || st->all_n[1] != st->pairs)) {
      char a[32], b[32];
      fmt_num(a, sizeof a, st->all_n[0] > 0, st->all_mean[0], 0);
      fmt_num(b, sizeof b, st->all_n[1] > 0, st->all_mean[1], 0);
      fprintf(out,
              "note: '%s' over all records: mean A %s (n %ld), "
              "mean B %s (n %ld)\n",
              st->name, a, st->all_n[0], b, st->all_n[1]);
    }
  }

  for (int k = 0; k < 2; k++) {
    long n = k == 0 ? c->only_a : c->only_b;
    if (n == 0)
      continue;
    fprintf(out, "\nonly in %s (%ld):", k == 0 ? "A" : "B", n);
    long shown = 0;
    if (k == 0) {
      size_t na;
      const struct entry **ua = unpaired_a(c, &na);
      for (; shown < (long)na && shown < TEXT_LIST_MAX; shown++) {
        char *d = key_display(ua[shown]->key);
        fprintf(out, "%s %s/%" PRId64, shown ? "," : "", d, ua[shown]->trial);
        free(d);
      }
      free(ua);
    } else {
      for (; shown < n && shown < TEXT_LIST_MAX; shown++) {
        char *d = key_display(c->only_b_keys[shown]);
        fprintf(out, "%s %s/%" PRId64, shown ? "," : "", d,
                c->only_b_trials[shown]);
        free(d);
      }
    }
    if (n > shown)
      fprintf(out, " and %ld more (--json lists all)", n - shown);
    fprintf(out, "  (id/trial)\n");
  }

  for (int i = 0; i < c->nscores; i++) {
    const struct score_stat *st = &c->scores[i];
    if (st->ntop == 0)
      continue;
    fprintf(out, "\nmost regressed on '%s' (%d of %ld regressed):\n", st->name,
            st->ntop, st->regressed);
    size_t wid = 2;
    char **ids = assay__xcalloc((size_t)st->ntop, sizeof *ids);
    for (int k = 0; k < st->ntop; k++) {
      ids[k] = key_display(st->top[k].key);
      if (cols(ids[k]) > wid)
        wid = cols(ids[k]);
    }
    if (wid > 24)
      wid = 24;
    fprintf(out, "  ");
    put_cell(out, "id", wid, 0);
    fprintf(out, "  trial       A       B     diff  ");
    put_cell(out, "A output", TEXT_PREVIEW_COLS, 0);
    fprintf(out, "  B output\n");
    for (int k = 0; k < st->ntop; k++) {
      const struct worst *x = &st->top[k];
      fprintf(out, "  ");
      put_cell(out, ids[k], wid, 0);
      fprintf(out, "  %5" PRId64 "  %6.4f  %6.4f  %+7.4f  ", x->trial, x->va,
              x->vb, x->d);
      put_cell(out, x->out_a ? x->out_a : "", TEXT_PREVIEW_COLS, 0);
      fprintf(out, "  ");
      put_last(out, x->out_b ? x->out_b : "", TEXT_PREVIEW_COLS);
      fputc('\n', out);
      free(ids[k]);
    }
    free(ids);
  }
}

static void compare_release(struct compare *c) {
  for (int i = 0; i < c->nscores; i++) {
    for (int k = 0; k < c->scores[i].ntop; k++) {
      free(c->scores[i].top[k].key);
      free(c->scores[i].top[k].out_a);
      free(c->scores[i].top[k].out_b);
    }
    free(c->scores[i].top);
    free(c->scores[i].name);
  }
  free(c->scores);
  for (size_t i = 0; i < c->cap; i++)
    free(c->slots[i].key);
  free(c->slots);
  free(c->sv);
  for (long i = 0; i < c->only_b; i++)
    free(c->only_b_keys[i]);
  free(c->only_b_keys);
  free(c->only_b_trials);
  for (int k = 0; k < 2; k++) {
    free(c->side[k].summary_path);
    cJSON_Delete(c->side[k].summary);
  }
}

static int parse_size(const char *s, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end != '\0' || s[0] == '-' || v == 0)
    return -1;
  *out = (size_t)v;
  return 0;
}

int assay_cmd_compare(int argc, char **argv) {
  const char *files[2] = {NULL, NULL};
  int nfiles = 0, json = 0, top_n = 5, ngates = 0, status = EXIT_OK;
  size_t max_bytes = MAX_RECORD_BYTES;
  struct gate *gates = assay__xcalloc((size_t)argc + 1, sizeof *gates);
  int *gate_failed = assay__xcalloc((size_t)argc + 1, sizeof *gate_failed);
  struct compare c;
  memset(&c, 0, sizeof c);

  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(compare_help, stdout);
      goto done;
    } else if (strcmp(a, "--json") == 0) {
      json = 1;
    } else if (strcmp(a, "--top") == 0 ||
               strcmp(a, "--fail-if-regressed") == 0 ||
               strcmp(a, "--max-record-bytes") == 0) {
      if (i + 1 >= argc) {
        status =
            assay_cli_usage_error("compare", "option '%s' needs a value", a);
        goto done;
      }
      const char *v = argv[++i];
      if (strcmp(a, "--top") == 0) {
        char *end;
        long n = strtol(v, &end, 10);
        if (end == v || *end != '\0' || n < 0 || n > MAX_TOP) {
          status = assay_cli_usage_error(
              "compare",
              "--top expects a whole number from 0 to %d, "
              "got '%s'",
              MAX_TOP, v);
          goto done;
        }
        top_n = (int)n;
      } else if (strcmp(a, "--max-record-bytes") == 0) {
        if (parse_size(v, &max_bytes) < 0) {
          status = assay_cli_usage_error(
              "compare",
              "--max-record-bytes expects a byte count, got "
              "'%s'",
              v);
          goto done;
        }
      } else {
        /* The last ':' splits, so score names may contain ':'. */
        const char *colon = strrchr(v, ':');
        char *end = NULL;
        double d = colon ? strtod(colon + 1, &end) : NAN;
        if (colon == NULL || colon == v || end == colon + 1 || *end != '\0' ||
            !(d >= 0) || !isfinite(d)) {
          status = assay_cli_usage_error(
              "compare",
              "--fail-if-regressed expects SCORE:DELTA with "
              "DELTA a number >= 0, got '%s'",
              v);
          goto done;
        }
        gates[ngates].arg = v;
        gates[ngates].score = assay__xstrndup(v, (size_t)(colon - v));
        gates[ngates].delta = d;
        ngates++;
      }
    } else if (a[0] == '-' && a[1] != '\0') {
      status = assay_cli_unknown_option("compare", compare_help, a);
      goto done;
    } else if (nfiles < 2) {
      files[nfiles++] = a;
    } else {
      status =
          assay_cli_usage_error("compare",
                                "unexpected argument '%s': compare takes two "
                                "records files",
                                a);
      goto done;
    }
  }
  if (nfiles < 2) {
    status = assay_cli_usage_error("compare",
                                   "compare needs two records files, A and B");
    goto done;
  }
  for (int k = 0; k < 2; k++) {
    if (strcmp(files[k], "-") == 0) {
      status = assay_cli_usage_error("compare",
                                     "compare reads files, not standard input");
      goto done;
    }
  }

  c.top_n = top_n;
  c.side[0].path = files[0];
  c.side[1].path = files[1];
  side_load_summary(&c.side[0]);
  side_load_summary(&c.side[1]);
  struct read_ctx ra = {&c, files[0]}, rb = {&c, files[1]};
  if (assay__records_each(files[0], max_bytes, add_a, &ra, NULL) < 0 ||
      assay__records_each(files[1], max_bytes, add_b, &rb, NULL) < 0) {
    status = EXIT_USAGE;
    goto done;
  }
  c.only_a = (long)c.used - c.paired;
  if (any_top(&c) && assay__records_each(files[0], max_bytes, fetch_a, &c, NULL) < 0) {
    status = EXIT_USAGE;
    goto done;
  }

  /* Gates: a missing score is a mistake in the CI setup, not a pass. */
  for (int i = 0; i < ngates; i++) {
    int si = score_index(&c, gates[i].score, 0);
    const struct score_stat *st = si >= 0 ? &c.scores[si] : NULL;
    if (st == NULL || !st->in_a || !st->in_b) {
      const char *where = st == NULL  ? "either file"
                          : !st->in_a ? files[0]
                                      : files[1];
      fprintf(stderr,
              "assay: --fail-if-regressed %s: score '%s' is not in "
              "%s%s%s; scores compared:",
              gates[i].arg, gates[i].score, st == NULL ? "" : "'", where,
              st == NULL ? "" : "'");
      for (int k = 0; k < c.nscores; k++)
        fprintf(stderr, "%s '%s'", k ? "," : "", c.scores[k].name);
      fprintf(stderr, "%s\n", c.nscores ? "" : " none");
      status = EXIT_USAGE;
      goto done;
    }
    if (st->pairs == 0) {
      fprintf(stderr,
              "assay: --fail-if-regressed %s: no item has a value of "
              "'%s' in both files, nothing to compare\n",
              gates[i].arg, gates[i].score);
      status = EXIT_USAGE;
      goto done;
    }
    if (st->mean_b < st->mean_a - gates[i].delta)
      gate_failed[i] = 1;
  }

  if (json) {
    cJSON *j = compare_json(&c, gates, ngates, gate_failed);
    char *text = cJSON_Print(j);
    printf("%s\n", text);
    free(text);
    cJSON_Delete(j);
  } else {
    print_text(&c, stdout);
  }
  for (int i = 0; i < ngates; i++) {
    int si = score_index(&c, gates[i].score, 0);
    const struct score_stat *st = &c.scores[si];
    if (gate_failed[i]) {
      fprintf(stderr,
              "assay: '%s' regressed: mean %.4f -> %.4f (%+.4f; "
              "--fail-if-regressed allows a drop of %g)\n",
              gates[i].score, st->mean_a, st->mean_b, st->mean_b - st->mean_a,
              gates[i].delta);
      status = EXIT_REGRESSED;
    } else if (!json) {
      fprintf(stdout,
              "gate '%s': ok, mean %.4f -> %.4f (%+.4f; a drop of "
              "%g is allowed)\n",
              gates[i].score, st->mean_a, st->mean_b, st->mean_b - st->mean_a,
              gates[i].delta);
    }
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "assay: cannot write the comparison: %s\n",
            strerror(errno));
    status = EXIT_USAGE;
  }

done:
  for (int i = 0; i < ngates; i++)
    free(gates[i].score);
  free(gates);
  free(gate_failed);
  compare_release(&c);
  return status;
}
