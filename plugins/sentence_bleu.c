/*
 * sentence_bleu: BLEU of one output against one or several references, with
 * the semantics of NLTK's sentence_bleu as Opik's SentenceBLEU calls it:
 * texts are lowercased (Unicode case folding, text.h) and split on
 * whitespace; p_n is the clipped ("modified") n-gram precision over all
 * references; the brevity penalty uses the reference length closest to the
 * output's (the shorter one on a tie); a zero unigram match gives 0; the
 * smoothing methods are NLTK's method0, method1 and method2. As in Opik, an
 * output shorter than n_grams words uses only its first len(output) weights,
 * renormalized to sum to 1. See docs/metrics.md.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <assay/plugin.h>

#include "text.h"

#define BLEU_MAX_N 100

enum bleu_smoothing { BLEU_METHOD0, BLEU_METHOD1, BLEU_METHOD2 };
static const char *const smoothing_names[] = {"method0", "method1", "method2"};

struct bleu {
  const struct assay_host *host;
  int n;         /* n_grams */
  int smoothing; /* enum bleu_smoothing */
  double weights[BLEU_MAX_N];
};

static int bleu_init(const cJSON *config, const struct assay_host *host,
                     void **state, char **errmsg) {
  double n = host->opt_number(config, "n_grams", 4);
  if (!(n >= 1 && n <= BLEU_MAX_N) || n != floor(n)) {
    *errmsg = host->format("option 'n_grams' must be a whole number from 1 to "
                           "%d, got %g",
                           BLEU_MAX_N, n);
    return -1;
  }
  const char *sm = host->opt_string(config, "smoothing_method", "method1");
  int smoothing = -1;
  for (int i = 0; i < 3; i++)
    if (strcmp(sm, smoothing_names[i]) == 0)
      smoothing = i;
  if (smoothing < 0) {
    *errmsg = host->format("unknown smoothing_method '%s': use method0, "
                           "method1 or method2",
                           sm);
    return -1;
  }
  struct bleu *st = calloc(1, sizeof *st);
  if (st == NULL) {
    *errmsg = host->format("out of memory");
    return -1;
  }
  st->host = host;
  st->n = (int)n;
  st->smoothing = smoothing;
  const cJSON *w = cJSON_GetObjectItemCaseSensitive(config, "weights");
  if (w == NULL || cJSON_IsNull(w)) {
    for (int i = 0; i < st->n; i++)
      st->weights[i] = 1.0 / st->n;
  } else {
    if (!cJSON_IsArray(w) || cJSON_GetArraySize(w) != st->n) {
      if (cJSON_IsArray(w))
        *errmsg = host->format("option 'weights' must be a list of %d numbers "
                               "(one per n-gram order up to n_grams), got %d",
                               st->n, cJSON_GetArraySize(w));
      else
        *errmsg = host->format("option 'weights' must be a list of %d numbers "
                               "(one per n-gram order up to n_grams), got %s",
                               st->n, assay_json_kind(w));
      free(st);
      return -1;
    }
    double sum = 0;
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, w) {
      if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) ||
          it->valuedouble < 0) {
        *errmsg = host->format("option 'weights' item %d must be a number "
                               ">= 0, got %s",
                               i, assay_json_kind(it));
        free(st);
        return -1;
      }
      st->weights[i++] = it->valuedouble;
      sum += it->valuedouble;
    }
    if (fabs(sum - 1.0) > 1e-6) {
      *errmsg = host->format("option 'weights' must sum to 1, got %g", sum);
      free(st);
      return -1;
    }
  }
  *state = st;
  return 0;
}

static void bleu_fini(void *state) {
  free(state);
}

/* Everything one call allocates, released in one place. */
struct bleu_call {
  struct assay__words *words; /* [0] the output, [1..] the references */
  uint32_t **ids;
  size_t nlists;
  struct assay__ngram *hyp, **refs;
  size_t nhyp, *nrefs;
};

static void bleu_call_release(struct bleu_call *c) {
  for (size_t k = 0; k < c->nlists; k++) {
    if (c->words)
      assay__words_release(&c->words[k]);
    if (c->ids)
      free(c->ids[k]);
    if (c->refs)
      free(c->refs[k]);
  }
  free(c->words);
  free(c->ids);
  free(c->refs);
  free(c->nrefs);
  free(c->hyp);
}

static cJSON *bleu_run(void *state, const cJSON *input, assay_call call) {
  struct bleu *st = state;
  const struct assay_host *h = st->host;
  const char *out, **reftexts = NULL;
  size_t nref = 0;
  if (assay__text_output_refs(h, call, input,
                              "sentence_bleu needs at least one word", &out,
                              &reftexts, &nref) != 0)
    return NULL;
  int rc;

  struct bleu_call c = {0};
  cJSON *res = NULL;
  c.nlists = nref + 1;
  c.words = calloc(c.nlists, sizeof *c.words);
  c.ids = calloc(c.nlists, sizeof *c.ids);
  c.refs = calloc(c.nlists, sizeof *c.refs);
  c.nrefs = calloc(c.nlists, sizeof *c.nrefs);
  if (!c.words || !c.ids || !c.refs || !c.nrefs)
    goto oom;
  for (size_t k = 0; k < c.nlists; k++) {
    const char *s = k == 0 ? out : reftexts[k - 1];
    rc = assay__words_split(&c.words[k], s, strlen(s), 1);
    if (rc == ASSAY_EBAD_INPUT) {
      if (k == 0)
        h->fail(call, ASSAY_FAIL_BAD_INPUT, -1, "'output' is not valid UTF-8");
      else
        h->fail(call, ASSAY_FAIL_BAD_INPUT, -1,
                "'reference' is not valid UTF-8");
      goto done;
    }
    if (rc != 0)
      goto oom;
  }
  const struct assay__words **lists = malloc(c.nlists * sizeof *lists);
  if (lists == NULL)
    goto oom;
  for (size_t k = 0; k < c.nlists; k++)
    lists[k] = &c.words[k];
  rc = assay__words_intern(lists, c.nlists, c.ids);
  free(lists);
  if (rc != 0)
    goto oom;

  size_t hyp_len = c.words[0].n;
  /* Opik hands NLTK only the first min(n_grams, hyp_len) weights,
   * renormalized, so a short output is not scored 0 for lack of 4-grams. */
  int order = st->n < (int)hyp_len ? st->n : (int)hyp_len;
  double w[BLEU_MAX_N], wsum = 0;
  for (int i = 0; i < order; i++)
    wsum += st->weights[i];
  if (wsum == 0)
    wsum = 1;
  for (int i = 0; i < order; i++)
    w[i] = st->weights[i] / wsum;

  size_t num[BLEU_MAX_N], den[BLEU_MAX_N];
  for (int i = 0; i < order; i++) {
    size_t n = (size_t)i + 1;
    free(c.hyp);
    c.hyp = NULL;
    if (assay__ngrams_count(c.ids[0], hyp_len, n, &c.hyp, &c.nhyp) != 0)
      goto oom;
    for (size_t k = 1; k < c.nlists; k++) {
      free(c.refs[k]);
      c.refs[k] = NULL;
      if (assay__ngrams_count(c.ids[k], c.words[k].n, n, &c.refs[k],
                              &c.nrefs[k]) != 0)
        goto oom;
    }
    size_t clipped = 0, total = 0;
    for (size_t g = 0; g < c.nhyp; g++) {
      size_t max_ref = 0;
      for (size_t k = 1; k < c.nlists; k++) {
        size_t rcnt =
            assay__ngrams_lookup(c.refs[k], c.nrefs[k], c.hyp[g].ids, n);
        if (rcnt > max_ref)
          max_ref = rcnt;
      }
      clipped += c.hyp[g].count < max_ref ? c.hyp[g].count : max_ref;
      total += c.hyp[g].count;
    }
    num[i] = clipped;
    den[i] = total > 0 ? total : 1;
  }

  /* The reference length closest to the output's, the shorter on a tie. */
  size_t r = c.words[1].n;
  for (size_t k = 2; k < c.nlists; k++) {
    size_t len = c.words[k].n;
    size_t d = len > hyp_len ? len - hyp_len : hyp_len - len;
    size_t dr = r > hyp_len ? r - hyp_len : hyp_len - r;
    if (d < dr || (d == dr && len < r))
      r = len;
  }
  double bp = hyp_len > r ? 1.0 : exp(1.0 - (double)r / (double)hyp_len);

  double value;
  if (num[0] == 0) {
    value = 0; /* NLTK: no unigram in common, no score to smooth */
  } else {
    double s = 0;
    for (int i = 0; i < order; i++) {
      double p;
      if (num[i] > 0)
        p = (double)num[i] / (double)den[i];
      else if (st->smoothing == BLEU_METHOD1)
        p = 0.1 / (double)den[i];
      else if (st->smoothing == BLEU_METHOD0)
        p = DBL_MIN; /* NLTK's sys.float_info.min: log() of it is ~ -708 */
      else
        p = 0; /* method2: replaced below */
      if (st->smoothing == BLEU_METHOD2 && i > 0)
        p = (double)(num[i] + 1) / (double)(den[i] + 1);
      s += w[i] * log(p);
    }
    value = bp * exp(s);
  }

  char prec[256];
  size_t used = 0;
  prec[0] = '\0';
  for (int i = 0; i < order && used + 48 < sizeof prec; i++)
    used += (size_t)snprintf(prec + used, sizeof prec - used, "%s%zu/%zu",
                             i ? " " : "", num[i], den[i]);
  res = assay__score_new(value,
                         "BLEU %.4f (%s): n-gram matches %s, brevity penalty "
                         "%.4f (output length %zu, reference length %zu)",
                         value, smoothing_names[st->smoothing], prec, bp,
                         hyp_len, r);
  if (res == NULL)
    goto oom;
  goto done;
oom:
  h->fail(call, ASSAY_FAIL_ERROR, -1, "out of memory");
done:
  bleu_call_release(&c);
  free(reftexts);
  return res;
}

static const struct assay_option bleu_options[] = {
    {"n_grams", ASSAY_OPT_INTEGER, "4", "highest n-gram order (1 to 100)", 0},
    {"smoothing_method", ASSAY_OPT_STRING, "\"method1\"",
     "NLTK smoothing: method0 (none), method1 (epsilon 0.1), method2 (+1)", 0},
    {"weights", ASSAY_OPT_JSON, NULL,
     "list of n_grams weights summing to 1 (default: uniform)", 0},
    {NULL, 0, NULL, NULL, 0}};

static const struct assay_input bleu_inputs[] = {
    {"output", 0, "the candidate sentence (a string)"},
    {"reference", 0, "a reference sentence, or a list of them"},
    {NULL, 0, NULL}};

static const struct assay_component bleu_component = {
    .size = ASSAY_COMPONENT_SIZE,
    .kind = ASSAY_KIND_METRIC,
    .name = "sentence_bleu",
    .description = "sentence-level BLEU against one or more references (0..1)",
    .options = bleu_options,
    .inputs = bleu_inputs,
    .flags = ASSAY_THREAD_SAFE,
    .init = bleu_init,
    .fini = bleu_fini,
    .run_sync = bleu_run,
};

static const struct assay_component *const bleu_components[] = {&bleu_component,
                                                                NULL};

static const struct assay_plugin bleu_plugin = {
    ASSAY_PLUGIN_HEADER,
    .name = "sentence_bleu",
    .version = "1.0.0",
    .description = "BLEU score of a sentence (NLTK semantics)",
    .components = bleu_components,
};

ASSAY_PLUGIN(sentence_bleu, bleu_plugin)
