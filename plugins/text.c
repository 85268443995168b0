/*
 * Text helpers of the built-in metric plugins (see text.h): Unicode work is
 * done by utf8proc, stemming by libstemmer; this file only glues them into
 * the tokenizers and counters the metrics share.
 */
#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libstemmer.h>
#include <utf8proc.h>

char *assay__text_of(const cJSON *v) {
  if (cJSON_IsString(v) && v->valuestring != NULL)
    return strdup(v->valuestring);
  return cJSON_PrintUnformatted(v);
}

int assay__text_valid(const char *s, size_t len) {
  const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
  size_t i = 0;
  while (i < len) {
    utf8proc_int32_t c;
    utf8proc_ssize_t r =
        utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
    if (r <= 0)
      return 0;
    i += (size_t)r;
  }
  return 1;
}

int assay__text_fold(const char *s, size_t len, char **out, size_t *outlen) {
  /* ASCII text (the common case) folds to its lower case and composes to
   * itself, so utf8proc's general path is not needed for it. */
  size_t i = 0;
  while (i < len && (unsigned char)s[i] < 0x80)
    i++;
  if (i == len) {
    char *a = malloc(len + 1);
    if (a == NULL)
      return ASSAY_ENOMEM;
    for (i = 0; i < len; i++) {
      char c = s[i];
      a[i] = c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
    }
    a[len] = '\0';
    *out = a;
    *outlen = len;
    return 0;
  }
  utf8proc_uint8_t *dst = NULL;
  /* utf8proc_map treats a zero length as "empty", not "NUL-terminated",
   * unless UTF8PROC_NULLTERM is given, which it is not. */
  utf8proc_ssize_t r =
      utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &dst,
                   UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD);
  if (r < 0)
    return r == UTF8PROC_ERROR_NOMEM ? ASSAY_ENOMEM : ASSAY_EBAD_INPUT;
  *out = (char *)dst;
  *outlen = (size_t)r;
  return 0;
}

int assay__text_codepoints(const char *s, size_t len, uint32_t **cps,
                           size_t *n) {
  /* A code point takes at least one byte, so len slots always suffice. */
  uint32_t *a = malloc((len ? len : 1) * sizeof *a);
  if (a == NULL)
    return ASSAY_ENOMEM;
  const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
  size_t i = 0, k = 0;
  while (i < len) {
    utf8proc_int32_t c;
    utf8proc_ssize_t r =
        utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
    if (r <= 0) {
      free(a);
      return ASSAY_EBAD_INPUT;
    }
    a[k++] = (uint32_t)c;
    i += (size_t)r;
  }
  *cps = a;
  *n = k;
  return 0;
}

int assay__text_is_space(int32_t c) {
  if ((c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85)
    return 1;
  if (c < 0x80)
    return 0;
  utf8proc_category_t cat = utf8proc_category(c);
  return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL ||
         cat == UTF8PROC_CATEGORY_ZP;
}

const char *assay__text_snippet(const char *s, char *buf, size_t size,
                                size_t max) {
  size_t len = strlen(s), cut = len;
  if (max + 8 > size)
    max = size > 8 ? size - 8 : 0;
  if (len > max) {
    cut = max;
    /* Back off to the start of a UTF-8 sequence so the excerpt stays valid. */
    while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
      cut--;
  }
  snprintf(buf, size, "'%.*s%s'", (int)cut, s, cut < len ? "..." : "");
  return buf;
}

cJSON *assay__score_new(double value, const char *fmt, ...) {
  char reason[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  cJSON *o = cJSON_CreateObject();
  if (o == NULL)
    return NULL;
  if (cJSON_AddNumberToObject(o, "value", value) == NULL ||
      cJSON_AddStringToObject(o, "reason", reason) == NULL) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

/* ---- word lists ----------------------------------------------------- */

void assay__words_init(struct assay__words *w) {
  memset(w, 0, sizeof *w);
}

void assay__words_release(struct assay__words *w) {
  free(w->buf);
  free(w->start);
  free(w->size);
  memset(w, 0, sizeof *w);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap)
    return 0;
  size_t c = *cap ? *cap : 16;
  while (c < need)
    c *= 2;
  void *q = realloc(*p, c * elem);
  if (q == NULL)
    return ASSAY_ENOMEM;
  *p = q;
  *cap = c;
  return 0;
}

int assay__words_add(struct assay__words *w, const char *s, size_t len) {
  size_t cap = w->cap;
  void *start = w->start, *size = w->size;
  if (grow(&start, &cap, w->n + 1, sizeof(size_t)) != 0)
    return ASSAY_ENOMEM;
  w->start = start;
  cap = w->cap;
  if (grow(&size, &cap, w->n + 1, sizeof(size_t)) != 0)
    return ASSAY_ENOMEM;
  w->size = size;
  w->cap = cap;
  void *buf = w->buf;
  if (grow(&buf, &w->bufcap, w->len + len + 1, 1) != 0)
    return ASSAY_ENOMEM;
  w->buf = buf;
  memcpy(w->buf + w->len, s, len);
  w->buf[w->len + len] = '\0';
  w->start[w->n] = w->len;
  w->size[w->n] = len;
  w->n++;
  w->len += len + 1;
  return 0;
}

int assay__words_split(struct assay__words *w, const char *s, size_t len,
                       int fold) {
  char *folded = NULL;
  if (fold) {
    int err = assay__text_fold(s, len, &folded, &len);
    if (err != 0)
      return err;
    s = folded;
  }
  const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
  size_t i = 0, word = 0;
  int in_word = 0, err = 0;
  while (i < len && err == 0) {
    utf8proc_int32_t c;
    utf8proc_ssize_t r =
        utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
    if (r <= 0) {
      err = ASSAY_EBAD_INPUT;
      break;
    }
    if (assay__text_is_space(c)) {
      if (in_word)
        err = assay__words_add(w, s + word, i - word);
      in_word = 0;
    } else if (!in_word) {
      in_word = 1;
      word = i;
    }
    i += (size_t)r;
  }
  if (err == 0 && in_word)
    err = assay__words_add(w, s + word, len - word);
  free(folded);
  return err;
}

static int add_rouge_token(struct assay__words *w, const char *tok, size_t len,
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

int assay__words_rouge(struct assay__words *w, const char *s, size_t len,
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
    if (n > 0 && (err = add_rouge_token(w, tok, n, stemmer)) != 0)
      break;
    n = 0;
  }
  if (err == 0 && n > 0)
    err = add_rouge_token(w, tok, n, stemmer);
  free(tok);
  return err;
}

/* A word being interned: where it lives, so sorting can compare bytes and
 * the id can be written back. */
struct intern_ref {
  const char *s;
  size_t len;
  uint32_t *slot;
};

static int intern_cmp(const void *a, const void *b) {
  const struct intern_ref *x = a, *y = b;
  size_t m = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->s, y->s, m);
  if (c != 0)
    return c;
  return (x->len > y->len) - (x->len < y->len);
}

int assay__words_intern(const struct assay__words *const *lists, size_t nlists,
                        uint32_t **ids) {
  size_t total = 0;
  for (size_t k = 0; k < nlists; k++) {
    ids[k] = NULL;
    total += lists[k]->n;
  }
  struct intern_ref *refs = malloc((total ? total : 1) * sizeof *refs);
  if (refs == NULL)
    return ASSAY_ENOMEM;
  size_t t = 0;
  for (size_t k = 0; k < nlists; k++) {
    ids[k] = malloc((lists[k]->n ? lists[k]->n : 1) * sizeof(uint32_t));
    if (ids[k] == NULL) {
      for (size_t j = 0; j <= k; j++) {
        free(ids[j]);
        ids[j] = NULL;
      }
      free(refs);
      return ASSAY_ENOMEM;
    }
    for (size_t i = 0; i < lists[k]->n; i++) {
      refs[t].s = assay__words_get(lists[k], i);
      refs[t].len = lists[k]->size[i];
      refs[t].slot = &ids[k][i];
      t++;
    }
  }
  /* Sorting puts equal words next to each other; each run gets one id. */
  qsort(refs, total, sizeof *refs, intern_cmp);
  uint32_t id = 0;
  for (size_t i = 0; i < total; i++) {
    if (i > 0 && intern_cmp(&refs[i - 1], &refs[i]) != 0)
      id++;
    *refs[i].slot = id;
  }
  free(refs);
  return 0;
}

/* ---- n-grams and LCS ------------------------------------------------ */

static int ngram_cmp(const void *a, const void *b) {
  const struct assay__ngram *x = a, *y = b;
  for (size_t i = 0; i < x->n; i++)
    if (x->ids[i] != y->ids[i])
      return x->ids[i] < y->ids[i] ? -1 : 1;
  return 0;
}

int assay__ngrams_count(const uint32_t *seq, size_t len, size_t n,
                        struct assay__ngram **out, size_t *nout) {
  size_t total = (n >= 1 && len >= n) ? len - n + 1 : 0;
  struct assay__ngram *g = malloc((total ? total : 1) * sizeof *g);
  if (g == NULL)
    return ASSAY_ENOMEM;
  for (size_t i = 0; i < total; i++) {
    g[i].ids = seq + i;
    g[i].n = n;
    g[i].count = 1;
  }
  qsort(g, total, sizeof *g, ngram_cmp);
  size_t d = 0;
  for (size_t i = 0; i < total; i++) {
    if (d > 0 && ngram_cmp(&g[d - 1], &g[i]) == 0)
      g[d - 1].count++;
    else
      g[d++] = g[i];
  }
  *out = g;
  *nout = d;
  return 0;
}

size_t assay__ngrams_lookup(const struct assay__ngram *set, size_t nset,
                            const uint32_t *key, size_t n) {
  struct assay__ngram k = {key, n, 0};
  const struct assay__ngram *hit =
      nset ? bsearch(&k, set, nset, sizeof *set, ngram_cmp) : NULL;
  return hit ? hit->count : 0;
}

int assay__lcs_length(const uint32_t *a, size_t na, const uint32_t *b,
                      size_t nb, size_t *len) {
  /* A common prefix or suffix is always part of some LCS; skipping it
   * makes near-identical texts cheap. */
  size_t pre = 0;
  while (pre < na && pre < nb && a[pre] == b[pre])
    pre++;
  a += pre, b += pre, na -= pre, nb -= pre;
  size_t suf = 0;
  while (suf < na && suf < nb && a[na - 1 - suf] == b[nb - 1 - suf])
    suf++;
  na -= suf, nb -= suf;
  if (na == 0 || nb == 0) {
    *len = pre + suf;
    return 0;
  }
  /* Keep one row as long as the shorter side. */
  if (nb > na) {
    const uint32_t *t = a;
    a = b, b = t;
    size_t tn = na;
    na = nb, nb = tn;
  }
  size_t *row = calloc(nb + 1, sizeof *row);
  if (row == NULL)
    return ASSAY_ENOMEM;
  for (size_t i = 0; i < na; i++) {
    size_t diag = 0; /* row[j] of the previous i, before it was updated */
    for (size_t j = 1; j <= nb; j++) {
      size_t up = row[j];
      if (a[i] == b[j - 1])
        row[j] = diag + 1;
      else if (row[j - 1] > up)
        row[j] = row[j - 1];
      diag = up;
    }
  }
  *len = pre + suf + row[nb];
  free(row);
  return 0;
}

/* ---- inputs --------------------------------------------------------- */

int assay__text_load(struct assay__text *t, const cJSON *v, int fold) {
  memset(t, 0, sizeof *t);
  if (v == NULL)
    return ASSAY_EMISSING_INPUT;
  if ((t->raw = assay__text_of(v)) == NULL)
    return ASSAY_ENOMEM;
  t->cmp = t->raw;
  t->len = strlen(t->raw);
  if (!fold)
    return 0;
  int err = assay__text_fold(t->raw, t->len, &t->cmp, &t->len);
  if (err != 0) {
    free(t->raw);
    memset(t, 0, sizeof *t);
  }
  return err;
}

void assay__text_release(struct assay__text *t) {
  if (t->cmp != t->raw)
    free(t->cmp);
  free(t->raw);
  memset(t, 0, sizeof *t);
}

void assay__text_fail(const struct assay_host *host, assay_call call, int err,
                      const char *key) {
  if (err == ASSAY_EMISSING_INPUT)
    host->fail(call, ASSAY_FAIL_BAD_INPUT, -1,
               "missing '%s': add it to the item or use --map %s=FIELD", key,
               key);
  else if (err == ASSAY_EBAD_INPUT)
    host->fail(call, ASSAY_FAIL_BAD_INPUT, -1, "'%s' is not valid UTF-8", key);
  else
    host->fail(call, ASSAY_FAIL_ERROR, -1, "out of memory reading '%s'", key);
}

const char *assay__json_type_name(const cJSON *v) {
  if (cJSON_IsString(v))
    return "a string";
  if (cJSON_IsNumber(v))
    return "a number";
  if (cJSON_IsBool(v))
    return "a boolean";
  if (cJSON_IsNull(v))
    return "null";
  if (cJSON_IsArray(v))
    return "a list";
  if (cJSON_IsObject(v))
    return "an object";
  return "an invalid value";
}

int assay__text_blank(const char *s, size_t len) {
  const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
  size_t i = 0;
  while (i < len) {
    utf8proc_int32_t c;
    utf8proc_ssize_t r =
        utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
    if (r <= 0 || !assay__text_is_space(c))
      return 0;
    i += (size_t)r;
  }
  return 1;
}

int assay__text_refs(const cJSON *ref, const char *key, const char ***refs,
                     size_t *n, char *err, size_t errsize) {
  if (ref == NULL) {
    snprintf(err, errsize,
             "missing '%s': add it to the item or use --map %s=FIELD", key,
             key);
    return ASSAY_EBAD_INPUT;
  }
  if (cJSON_IsString(ref)) {
    if (assay__text_blank(ref->valuestring, strlen(ref->valuestring))) {
      snprintf(err, errsize, "'%s' is empty: give a reference text", key);
      return ASSAY_EBAD_INPUT;
    }
    *refs = malloc(sizeof **refs);
    if (*refs == NULL)
      return ASSAY_ENOMEM;
    (*refs)[0] = ref->valuestring;
    *n = 1;
    return 0;
  }
  if (!cJSON_IsArray(ref)) {
    snprintf(err, errsize, "'%s' must be a string or a list of strings, got %s",
             key, assay__json_type_name(ref));
    return ASSAY_EBAD_INPUT;
  }
  int count = cJSON_GetArraySize(ref);
  if (count == 0) {
    snprintf(err, errsize,
             "'%s' is an empty list: give at least one reference text", key);
    return ASSAY_EBAD_INPUT;
  }
  const char **a = malloc((size_t)count * sizeof *a);
  if (a == NULL)
    return ASSAY_ENOMEM;
  size_t k = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, ref) {
    if (!cJSON_IsString(it)) {
      snprintf(err, errsize, "'%s.%zu' must be a string, got %s", key, k,
               assay__json_type_name(it));
      free(a);
      return ASSAY_EBAD_INPUT;
    }
    if (assay__text_blank(it->valuestring, strlen(it->valuestring))) {
      snprintf(err, errsize, "'%s.%zu' is empty: give a reference text", key,
               k);
      free(a);
      return ASSAY_EBAD_INPUT;
    }
    a[k++] = it->valuestring;
  }
  *refs = a;
  *n = k;
  return 0;
}
