/*
 * rouge: the ROUGE F-measure of the output against one or several
 * references (the best one counts), with the semantics of Google's
 * rouge_score package as Opik's ROUGE metric uses it:
 *   - tokens: lowercase, runs of characters other than ASCII a-z and 0-9
 *     separate tokens, optional Porter stemming of tokens longer than 3
 *     characters (Snowball's "porter" algorithm from libstemmer);
 *   - rouge1, rouge2: n-gram overlap; rougeL: longest common subsequence;
 *     rougeLsum: summary-level union LCS over newline-separated sentences.
 * See docs/metrics.md for the exact definitions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <assay/plugin.h>
#include <libstemmer.h>
#include <utf8proc.h>

#include "text.h"

/* LCS work is quadratic: cap the tokens of each text, and for rougeLsum the
 * table of one sentence pair, which its backtracking keeps whole. */
#define ROUGE_MAX_TOKENS 100000
#define ROUGE_MAX_TABLE (16u << 20)

enum rouge_type { ROUGE_1, ROUGE_2, ROUGE_L, ROUGE_LSUM };
static const char *const type_names[] = {"rouge1", "rouge2", "rougeL",
                                         "rougeLsum"};

struct rouge {
  const struct assay_host *host;
  int type;
  int use_stemmer;
};

static int rouge_init(const cJSON *config, const struct assay_host *host,
                      void **state, char **errmsg) {
  const char *t = host->opt_string(config, "rouge_type", "rouge1");
  int type = -1;
  for (int i = 0; i < 4; i++)
    if (strcmp(t, type_names[i]) == 0)
      type = i;
  if (type < 0) {
    *errmsg = host->format("unknown rouge_type '%s': use rouge1, rouge2, "
                           "rougeL or rougeLsum",
                           t);
    return -1;
  }
  int stem = host->opt_bool(config, "use_stemmer", 0);
  if (stem) {
    /* Fail at load rather than on every item if the algorithm is missing. */
    struct sb_stemmer *s = sb_stemmer_new("porter", "UTF_8");
    if (s == NULL) {
      *errmsg = host->format("use_stemmer: libstemmer has no 'porter' "
                             "algorithm; reinstall libstemmer0d");
      return -1;
    }
    sb_stemmer_delete(s);
  }
  struct rouge *st = calloc(1, sizeof *st);
  if (st == NULL) {
    *errmsg = host->format("out of memory");
    return -1;
  }
  st->host = host;
  st->type = type;
  st->use_stemmer = stem;
  *state = st;
  return 0;
}

static void rouge_fini(void *state) {
  free(state);
}

/* A tokenized text: its words, their ids (shared numbering with the text it
 * is compared to) and, for rougeLsum, where each sentence starts. */
struct rtext {
  struct assay__words words;
  uint32_t *ids;
  size_t *sent; /* sentence k is tokens sent[k] .. sent[k+1]-1 */
  size_t nsent;
};

static void rtext_release(struct rtext *t) {
  assay__words_release(&t->words);
  free(t->ids);
  free(t->sent);
  memset(t, 0, sizeof *t);
}

static int add_token(struct assay__words *w, const char *tok, size_t len,
                           struct sb_stemmer *stemmer) {
  /* rouge_score stems only tokens longer than 3 characters (here ASCII, so
   * bytes are characters). */
  if (stemmer != NULL && len > 3) {
    const sb_symbol *st =
        sb_stemmer_stem(stemmer, (const sb_symbol *)tok, (int)len);
    if (st == NULL)
      return ASSAY_ENOMEM;
    int n = sb_stemmer_length(stemmer);
    if (n <= 0)
      return 0; /* rouge_score drops tokens that end up empty */
    return assay__words_add(w, (const char *)st, (size_t)n);
  }
  return assay__words_add(w, tok, len);
}

/* Appends the tokens of s (len bytes) as rouge_score's tokenizer makes them:
 * lowercase (simple Unicode lowercase mapping), every run of characters other
 * than ASCII a-z and 0-9 separates tokens, and, with a stemmer, each token
 * longer than 3 characters becomes its stem. The tokenizer lives here, not in
 * text.c, so that only this module links libstemmer: its 330 KB of
 * relocated tables cost every metric that loads it about 80 page faults. */
static int words_rouge(struct assay__words *w, const char *s, size_t len,
                       struct sb_stemmer *stemmer) {
  /* A token is a run of ASCII letters and digits after lowercasing, so it
   * is built byte by byte in a scratch buffer no longer than the input. */
  char *tok = malloc(len + 1);
  if (tok == NULL)
    return ASSAY_ENOMEM;
  const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
  size_t i = 0, n = 0;
  int err = 0;
  while (i < len) {
    utf8proc_int32_t c;
    utf8proc_ssize_t r =
        utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
    if (r <= 0) {
      err = ASSAY_EBAD_INPUT;
      break;
    }
    i += (size_t)r;
    /* Python's str.lower() differs from the simple mapping only for
     * U+0130, whose extra combining dot is dropped below anyway. */
    c = utf8proc_tolower(c);
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      tok[n++] = (char)c;
      continue;
    }
    if (n > 0 && (err = add_token(w, tok, n, stemmer)) != 0)
      break;
    n = 0;
  }
  if (err == 0 && n > 0)
    err = add_token(w, tok, n, stemmer);
  free(tok);
  return err;
}

/* Tokenizes s; for rougeLsum, sentence by sentence, splitting on '\n' and
 * skipping empty lines like rouge_score does. */
static int rtext_load(struct rtext *t, const char *s, int by_sentence,
                      struct sb_stemmer *stemmer) {
  assay__words_init(&t->words);
  size_t len = strlen(s);
  if (!by_sentence)
    return words_rouge(&t->words, s, len, stemmer);
  size_t lines = 1;
  for (size_t i = 0; i < len; i++)
    lines += s[i] == '\n';
  t->sent = malloc((lines + 1) * sizeof *t->sent);
  if (t->sent == NULL)
    return ASSAY_ENOMEM;
  const char *p = s, *end = s + len;
  while (p <= end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *e = nl ? nl : end;
    if (e > p) {
      t->sent[t->nsent++] = t->words.n;
      int err = words_rouge(&t->words, p, (size_t)(e - p), stemmer);
      if (err != 0)
        return err;
    }
    if (nl == NULL)
      break;
    p = nl + 1;
  }
  t->sent[t->nsent] = t->words.n;
  return 0;
}

static double fmeasure(double p, double r) {
  return p + r > 0 ? 2 * p * r / (p + r) : 0;
}

struct prf {
  double p, r, f;
};

static int score_ngrams(const struct rtext *ref, const struct rtext *hyp,
                        size_t n, struct prf *out) {
  struct assay__ngram *tg = NULL, *pg = NULL;
  size_t nt = 0, np = 0;
  if (assay__ngrams_count(ref->ids, ref->words.n, n, &tg, &nt) != 0 ||
      assay__ngrams_count(hyp->ids, hyp->words.n, n, &pg, &np) != 0) {
    free(tg);
    return ASSAY_ENOMEM;
  }
  size_t inter = 0, tcount = 0, pcount = 0;
  for (size_t i = 0; i < nt; i++) {
    size_t pc = assay__ngrams_lookup(pg, np, tg[i].ids, n);
    inter += pc < tg[i].count ? pc : tg[i].count;
    tcount += tg[i].count;
  }
  for (size_t i = 0; i < np; i++)
    pcount += pg[i].count;
  out->p = (double)inter / (double)(pcount > 0 ? pcount : 1);
  out->r = (double)inter / (double)(tcount > 0 ? tcount : 1);
  out->f = fmeasure(out->p, out->r);
  free(tg);
  free(pg);
  return 0;
}

static int score_lcs(const struct rtext *ref, const struct rtext *hyp,
                     struct prf *out) {
  memset(out, 0, sizeof *out);
  if (ref->words.n == 0 || hyp->words.n == 0)
    return 0;
  size_t lcs;
  if (assay__lcs_length(ref->ids, ref->words.n, hyp->ids, hyp->words.n, &lcs) !=
      0)
    return ASSAY_ENOMEM;
  out->p = (double)lcs / (double)hyp->words.n;
  out->r = (double)lcs / (double)ref->words.n;
  out->f = fmeasure(out->p, out->r);
  return 0;
}

/*
 * Marks in mark[] (one per token of r) the tokens of one LCS of r and c,
 * read back from the full table the way rouge_score does: from the end,
 * taking a match when the tokens are equal, else moving along c only when
 * that keeps a strictly longer LCS, else along r. Ties therefore resolve
 * as in rouge_score, which matters for the union below.
 */
static int lcs_mark(const uint32_t *r, size_t nr, const uint32_t *c, size_t nc,
                    unsigned char *mark) {
  size_t w = nc + 1;
  uint32_t *t = calloc((nr + 1) * w, sizeof *t);
  if (t == NULL)
    return ASSAY_ENOMEM;
  for (size_t i = 1; i <= nr; i++)
    for (size_t j = 1; j <= nc; j++) {
      if (r[i - 1] == c[j - 1])
        t[i * w + j] = t[(i - 1) * w + j - 1] + 1;
      else {
        uint32_t up = t[(i - 1) * w + j], left = t[i * w + j - 1];
        t[i * w + j] = up > left ? up : left;
      }
    }
  size_t i = nr, j = nc;
  while (i > 0 && j > 0) {
    if (r[i - 1] == c[j - 1]) {
      mark[i - 1] = 1;
      i--, j--;
    } else if (t[i * w + j - 1] > t[(i - 1) * w + j]) {
      j--;
    } else {
      i--;
    }
  }
  free(t);
  return 0;
}

/* Summary-level LCS (ROUGE paper 3.2) with the 1.5.5 guard against counting
 * a token more often than it occurs in either text. nids bounds the ids. */
static int score_lsum(const struct rtext *ref, const struct rtext *hyp,
                      size_t nids, struct prf *out, char *err, size_t errsize) {
  memset(out, 0, sizeof *out);
  size_t m = ref->words.n, n = hyp->words.n;
  if (ref->nsent == 0 || hyp->nsent == 0 || m == 0 || n == 0)
    return 0;
  int rc = ASSAY_ENOMEM;
  size_t *cnt_r = calloc(nids ? nids : 1, sizeof *cnt_r);
  size_t *cnt_c = calloc(nids ? nids : 1, sizeof *cnt_c);
  unsigned char *mark = malloc(m ? m : 1);
  if (cnt_r == NULL || cnt_c == NULL || mark == NULL)
    goto done;
  for (size_t i = 0; i < m; i++)
    cnt_r[ref->ids[i]]++;
  for (size_t i = 0; i < n; i++)
    cnt_c[hyp->ids[i]]++;
  size_t hits = 0;
  for (size_t s = 0; s < ref->nsent; s++) {
    const uint32_t *r = ref->ids + ref->sent[s];
    size_t nr = ref->sent[s + 1] - ref->sent[s];
    memset(mark, 0, nr ? nr : 1);
    for (size_t k = 0; k < hyp->nsent; k++) {
      const uint32_t *c = hyp->ids + hyp->sent[k];
      size_t nc = hyp->sent[k + 1] - hyp->sent[k];
      if ((nr + 1) * (nc + 1) > ROUGE_MAX_TABLE) {
        snprintf(err, errsize,
                 "rougeLsum: a reference line of %zu tokens against an "
                 "output line of %zu is over the limit of %u table cells; "
                 "split long texts into lines",
                 nr, nc, ROUGE_MAX_TABLE);
        rc = ASSAY_EBAD_INPUT;
        goto done;
      }
      if (lcs_mark(r, nr, c, nc, mark) != 0)
        goto done;
    }
    /* The union of the LCS tokens, in reference order. */
    for (size_t i = 0; i < nr; i++) {
      uint32_t tok = r[i];
      if (mark[i] && cnt_c[tok] > 0 && cnt_r[tok] > 0) {
        hits++;
        cnt_c[tok]--;
        cnt_r[tok]--;
      }
    }
  }
  out->r = (double)hits / (double)m;
  out->p = (double)hits / (double)n;
  out->f = fmeasure(out->p, out->r);
  rc = 0;
done:
  free(cnt_r);
  free(cnt_c);
  free(mark);
  return rc;
}

static cJSON *rouge_run(void *state, const cJSON *input, assay_call call) {
  struct rouge *st = state;
  const struct assay_host *h = st->host;
  const char *out, **refs = NULL;
  size_t nref = 0;
  if (assay__text_output_refs(h, call, input, "rouge needs a text to score",
                              &out, &refs, &nref) != 0)
    return NULL;
  int rc;
  char err[320];
  /* libstemmer keeps per-word state in the stemmer: one per call keeps
   * concurrent calls apart. */
  struct sb_stemmer *stemmer = NULL;
  if (st->use_stemmer &&
      (stemmer = sb_stemmer_new("porter", "UTF_8")) == NULL) {
    free(refs);
    h->fail(call, ASSAY_FAIL_ERROR, -1, "out of memory");
    return NULL;
  }
  int by_sentence = st->type == ROUGE_LSUM;
  struct rtext hyp = {0}, ref = {0};
  struct prf best = {0, 0, 0};
  size_t best_k = 0;
  cJSON *res = NULL;
  rc = rtext_load(&hyp, out, by_sentence, stemmer);
  if (rc == ASSAY_EBAD_INPUT) {
    h->fail(call, ASSAY_FAIL_BAD_INPUT, -1, "'output' is not valid UTF-8");
    goto done;
  }
  if (rc == 0 && hyp.words.n > ROUGE_MAX_TOKENS) {
    h->fail(call, ASSAY_FAIL_BAD_INPUT, -1,
            "'output' has %zu tokens, more than the %d rouge compares; "
            "shorten it",
            hyp.words.n, ROUGE_MAX_TOKENS);
    goto done;
  }
  for (size_t k = 0; k < nref && rc == 0; k++) {
    rtext_release(&ref);
    free(hyp.ids);
    hyp.ids = NULL;
    rc = rtext_load(&ref, refs[k], by_sentence, stemmer);
    if (rc == ASSAY_EBAD_INPUT) {
      h->fail(call, ASSAY_FAIL_BAD_INPUT, -1, "'reference' is not valid UTF-8");
      goto done;
    }
    if (rc == 0 && ref.words.n > ROUGE_MAX_TOKENS) {
      h->fail(call, ASSAY_FAIL_BAD_INPUT, -1,
              "'reference' has %zu tokens, more than the %d rouge compares; "
              "shorten it",
              ref.words.n, ROUGE_MAX_TOKENS);
      goto done;
    }
    const struct assay__words *lists[2] = {&ref.words, &hyp.words};
    uint32_t *ids[2] = {NULL, NULL};
    if (rc == 0 && (rc = assay__words_intern(lists, 2, ids)) == 0) {
      ref.ids = ids[0];
      hyp.ids = ids[1];
    }
    if (rc != 0)
      break;
    struct prf s;
    if (st->type == ROUGE_1 || st->type == ROUGE_2)
      rc = score_ngrams(&ref, &hyp, st->type == ROUGE_1 ? 1 : 2, &s);
    else if (st->type == ROUGE_L)
      rc = score_lcs(&ref, &hyp, &s);
    else
      rc = score_lsum(&ref, &hyp, ref.words.n + hyp.words.n, &s, err,
                      sizeof err);
    if (rc == ASSAY_EBAD_INPUT) {
      h->fail(call, ASSAY_FAIL_BAD_INPUT, -1, "%s", err);
      goto done;
    }
    /* The first reference with the highest F-measure wins, as np.argmax. */
    if (rc == 0 && (k == 0 || s.f > best.f)) {
      best = s;
      best_k = k;
    }
  }
  if (rc != 0) {
    h->fail(call, ASSAY_FAIL_ERROR, -1, "out of memory");
    goto done;
  }
  if (nref > 1)
    res = assay__score_new(best.f,
                           "%s F-measure %.4f (precision %.4f, recall %.4f), "
                           "best of %zu references: 'reference.%zu'",
                           type_names[st->type], best.f, best.p, best.r, nref,
                           best_k);
  else
    res = assay__score_new(best.f,
                           "%s F-measure %.4f (precision %.4f, recall %.4f)",
                           type_names[st->type], best.f, best.p, best.r);
  if (res == NULL)
    h->fail(call, ASSAY_FAIL_ERROR, -1, "out of memory");
done:
  rtext_release(&hyp);
  rtext_release(&ref);
  if (stemmer != NULL)
    sb_stemmer_delete(stemmer);
  free(refs);
  return res;
}

static const struct assay_option rouge_options[] = {
    {"rouge_type", ASSAY_OPT_STRING, "\"rouge1\"",
     "rouge1, rouge2, rougeL (LCS) or rougeLsum (LCS over lines)", 0},
    {"use_stemmer", ASSAY_OPT_BOOLEAN, "false",
     "Porter-stem tokens longer than 3 characters", 0},
    {NULL, 0, NULL, NULL, 0}};

static const struct assay_input rouge_inputs[] = {
    {"output", 0, "the text to score (a string)"},
    {"reference", 0, "a reference text, or a list of them (best one counts)"},
    {NULL, 0, NULL}};

static const struct assay_component rouge_component = {
    .size = ASSAY_COMPONENT_SIZE,
    .kind = ASSAY_KIND_METRIC,
    .name = "rouge",
    .description = "ROUGE F-measure against one or more references (0..1)",
    .options = rouge_options,
    .inputs = rouge_inputs,
    .flags = ASSAY_THREAD_SAFE,
    .init = rouge_init,
    .fini = rouge_fini,
    .run_sync = rouge_run,
};

static const struct assay_component *const rouge_components[] = {
    &rouge_component, NULL};

static const struct assay_plugin rouge_plugin = {
    ASSAY_PLUGIN_HEADER,
    .name = "rouge",
    .version = "1.0.0",
    .description = "ROUGE scores (rouge_score semantics)",
    .components = rouge_components,
};

ASSAY_PLUGIN(rouge, rouge_plugin)
