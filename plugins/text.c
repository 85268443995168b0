/*
 * Text helpers of the built-in metric plugins (see text.h): Unicode work is
 * done by utf8proc; this file only glues it into the tokenizers and
 * counters the metrics share.
 */
#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

const char *assay__text_borrow(const cJSON *v, char **own) {
  *own = NULL;
  if (cJSON_IsString(v) && v->valuestring != NULL)
    return v->valuestring;
  return *own = cJSON_PrintUnformatted(v);
}

/* Eight bytes at a time: every metric call looks at every byte of its
 * texts at least once, and most texts are short ASCII. */
#define ONES UINT64_C(0x0101010101010101)
#define HIGH (ONES * 0x80)

static inline uint64_t load8(const char *s) {
  uint64_t x;
  memcpy(&x, s, sizeof x);
  return x;
}

/* Whether the len bytes at s are all ASCII. */
static int is_ascii(const char *s, size_t len) {
  uint64_t any = 0;
  size_t i = 0;
  for (; i + 8 <= len; i += 8)
    any |= load8(s + i);
  for (; i < len; i++)
    any |= (unsigned char)s[i];
  return (any & HIGH) == 0;
}

/* ASCII is its own NFC form and case-folds only A-Z. */
static inline unsigned char ascii_fold(unsigned char c) {
  return (unsigned char)(c + (((unsigned)c - 'A' < 26u) << 5));
}

/* ascii_fold() on eight ASCII bytes at once: adding 0x80 - 'A' sets a
 * byte's top bit when it is >= 'A', adding 0x80 - ('Z' + 1) when it is
 * > 'Z'; bytes below 0x80 never carry into the next. */
static inline uint64_t ascii_fold8(uint64_t x) {
  uint64_t ge_a = x + ONES * (0x80 - 'A'), gt_z = x + ONES * (0x80 - 'Z' - 1);
  return x | ((ge_a & ~gt_z & HIGH) >> 2);
}

/* Folds len bytes from s to d when they are all ASCII (d then holds len
 * folded bytes) and returns 1; returns 0 at the first other byte, with d
 * partly written. */
static int ascii_fold_copy(char *d, const char *s, size_t len) {
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t x = load8(s + i);
    if (x & HIGH)
      return 0;
    x = ascii_fold8(x);
    memcpy(d + i, &x, sizeof x);
  }
  for (; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x80)
      return 0;
    d[i] = (char)ascii_fold(c);
  }
  return 1;
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
  if (is_ascii(s, len)) {
    char *a = malloc(len + 1);
    if (a == NULL)
      return ASSAY_ENOMEM;
    ascii_fold_copy(a, s, len);
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
  if (max + 8 > size)
    max = size > 8 ? size - 8 : 0;
  /* Only whether s is longer than max matters, not its whole length. */
  size_t len = strnlen(s, max + 1), cut = len;
  if (len > max) {
    cut = max;
    /* Back off to the start of a UTF-8 sequence so the excerpt stays valid. */
    while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
      cut--;
  }
  const char *more = cut < len ? "..." : "";
  size_t nmore = strlen(more);
  if (cut + nmore + 3 > size) { /* a buffer below 8 bytes: truncate */
    snprintf(buf, size, "'%.*s%s'", (int)cut, s, more);
    return buf;
  }
  /* What snprintf("'%.*s%s'") writes, without its format parsing: this
   * runs for every score of equals and contains. */
  buf[0] = '\'';
  memcpy(buf + 1, s, cut);
  memcpy(buf + 1 + cut, more, nmore);
  buf[1 + cut + nmore] = '\'';
  buf[2 + cut + nmore] = '\0';
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

/*
 * The LCS is computed bit-parallel (Allison and Dix 1986; Hyyro 2004, "Bit-
 * parallel LCS-length computation revisited"). Bit i of a vector V stands
 * for position i of the shorter sequence p; after reading the first j
 * symbols of the other sequence t, the number of zero bits of V is the LCS
 * of p and t[0..j). Reading symbol c, with M the bits of the positions of
 * p holding c and U = V & M:
 *     V' = (V + U) | (V - U)
 * Over several 64-bit words the addition carries from word to word, and
 * since word k at step j needs only word k at step j - 1 and the carry out
 * of word k - 1 at step j, the words are taken one at a time over the whole
 * of t, keeping one carry per position of t. The match masks are then only
 * needed for the 64 positions of one word, so memory stays O(|p| + |t|).
 * Bits above |p| in the last word stay set (their mask bits are zero), so
 * they never count as LCS.
 */

/* Symbols of p below this index their mask directly (ASCII and Latin-1
 * text); a larger alphabet is first renumbered through a hash table. */
#define LCS_DIRECT 256

/* Work buffers up to this many bytes live on the stack. */
#define LCS_STACK 4096

static inline unsigned popcount64(uint64_t x) {
#if defined(__GNUC__)
  return (unsigned)__builtin_popcountll(x);
#else
  unsigned n = 0;
  for (; x != 0; x &= x - 1)
    n++;
  return n;
#endif
}

/*
 * The LCS of p (m ids, each below lim) and t (n ids; any id >= lim occurs
 * nowhere in p). mask holds lim + 1 zeroed entries and is left zeroed;
 * carry holds n zeroed bytes when m > 64 (else it is not used).
 */
static size_t lcs_bits(const uint32_t *p, size_t m, const uint32_t *t, size_t n,
                       uint32_t lim, uint64_t *mask, unsigned char *carry) {
  size_t lcs = 0;
  for (size_t k = 0; k < m; k += 64) {
    size_t bits = m - k < 64 ? m - k : 64;
    for (size_t i = 0; i < bits; i++)
      mask[p[k + i]] |= (uint64_t)1 << i;
    uint64_t v = ~(uint64_t)0;
    if (m <= 64) {
      for (size_t j = 0; j < n; j++) {
        uint64_t u = v & mask[t[j] < lim ? t[j] : lim];
        v = (v + u) | (v - u);
      }
    } else {
      for (size_t j = 0; j < n; j++) {
        uint64_t u = v & mask[t[j] < lim ? t[j] : lim];
        uint64_t x = v + u;
        uint64_t y = x + carry[j];
        carry[j] = (unsigned char)((x < v) | (y < x));
        v = y | (v - u);
      }
    }
    lcs += popcount64(~v);
    for (size_t i = 0; i < bits; i++)
      mask[p[k + i]] = 0;
  }
  return lcs;
}

/* Scratch memory of size bytes: stack when it fits, else the heap. */
static void *scratch_get(void *stack, size_t size) {
  return size <= LCS_STACK ? stack : malloc(size);
}

static void scratch_put(void *stack, void *mem) {
  if (mem != stack)
    free(mem);
}

/* The LCS of p (m > 0 symbols, the largest maxp < LCS_DIRECT) and t. */
static int lcs_direct(const uint32_t *p, size_t m, const uint32_t *t, size_t n,
                      uint32_t maxp, size_t *len) {
  uint64_t mask[LCS_DIRECT + 1], stack[LCS_STACK / sizeof(uint64_t)];
  unsigned char *carry = NULL;
  if (m > 64) {
    if ((carry = scratch_get(stack, n)) == NULL)
      return ASSAY_ENOMEM;
    memset(carry, 0, n);
  }
  memset(mask, 0, ((size_t)maxp + 2) * sizeof *mask);
  *len = lcs_bits(p, m, t, n, maxp + 1, mask, carry);
  if (carry != NULL)
    scratch_put(stack, carry);
  return 0;
}

/* The LCS of p (m > 0 symbols) and t over any alphabet: the symbols of p
 * are renumbered 0..d-1 through an open-addressing hash table, and those
 * of t to the same ids, or d when p lacks them. */
static int lcs_hashed(const uint32_t *p, size_t m, const uint32_t *t, size_t n,
                      size_t *len) {
  unsigned shift = 64 - 4;
  size_t cap = 16; /* a power of two, at least twice m: probes stay short */
  while (cap < 2 * m)
    cap *= 2, shift--;
  size_t size = (m + 1) * sizeof(uint64_t) +
                (2 * cap + m + n) * sizeof(uint32_t) + (m > 64 ? n : 0);
  uint64_t stack[LCS_STACK / sizeof(uint64_t)];
  uint64_t *mask = scratch_get(stack, size);
  if (mask == NULL)
    return ASSAY_ENOMEM;
  uint32_t *keys = (uint32_t *)(mask + m + 1), *ids = keys + cap;
  uint32_t *pid = ids + cap, *tid = pid + m;
  unsigned char *carry = m > 64 ? (unsigned char *)(tid + n) : NULL;
  memset(ids, 0, cap * sizeof *ids); /* 0: empty, else id + 1 */
  uint32_t d = 0;
  for (size_t i = 0; i < m; i++) {
    size_t h = (size_t)(((uint64_t)p[i] * 0x9e3779b97f4a7c15u) >> shift);
    while (ids[h] != 0 && keys[h] != p[i])
      h = (h + 1) & (cap - 1);
    if (ids[h] == 0) {
      keys[h] = p[i];
      ids[h] = ++d;
    }
    pid[i] = ids[h] - 1;
  }
  for (size_t j = 0; j < n; j++) {
    size_t h = (size_t)(((uint64_t)t[j] * 0x9e3779b97f4a7c15u) >> shift);
    while (ids[h] != 0 && keys[h] != t[j])
      h = (h + 1) & (cap - 1);
    tid[j] = ids[h] != 0 ? ids[h] - 1 : d;
  }
  memset(mask, 0, ((size_t)d + 1) * sizeof *mask);
  if (carry != NULL)
    memset(carry, 0, n);
  *len = lcs_bits(pid, m, tid, n, d, mask, carry);
  scratch_put(stack, mask);
  return 0;
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
  /* The shorter side makes the bit vectors: fewer words per step. */
  if (na > nb) {
    const uint32_t *t = a;
    a = b, b = t;
    size_t tn = na;
    na = nb, nb = tn;
  }
  uint32_t maxp = 0;
  for (size_t i = 0; i < na; i++)
    if (a[i] > maxp)
      maxp = a[i];
  size_t lcs = 0;
  int err = maxp < LCS_DIRECT ? lcs_direct(a, na, b, nb, maxp, &lcs)
                              : lcs_hashed(a, na, b, nb, &lcs);
  if (err != 0)
    return err;
  *len = pre + suf + lcs;
  return 0;
}

/* ---- inputs --------------------------------------------------------- */

int assay__text_load(struct assay__text *t, const cJSON *v, int fold) {
  /* small is not cleared: it is written before it is read. */
  t->raw = t->cmp = NULL;
  t->own_raw = t->own_cmp = NULL;
  t->len = 0;
  if (v == NULL)
    return ASSAY_EMISSING_INPUT;
  if ((t->raw = assay__text_borrow(v, &t->own_raw)) == NULL)
    return ASSAY_ENOMEM;
  t->cmp = t->raw;
  t->len = strlen(t->raw);
  if (!fold)
    return 0;
  /* Short ASCII folds into the inline buffer; anything else takes the
   * general path from the start. */
  if (t->len < sizeof t->small && ascii_fold_copy(t->small, t->raw, t->len)) {
    t->small[t->len] = '\0';
    t->cmp = t->small;
    return 0;
  }
  int err = assay__text_fold(t->raw, t->len, &t->own_cmp, &t->len);
  if (err != 0) {
    free(t->own_raw);
    t->raw = t->cmp = NULL;
    t->own_raw = t->own_cmp = NULL;
    t->len = 0;
    return err;
  }
  t->cmp = t->own_cmp;
  return 0;
}

void assay__text_release(struct assay__text *t) {
  free(t->own_cmp);
  free(t->own_raw);
  t->raw = t->cmp = NULL;
  t->own_raw = t->own_cmp = NULL;
  t->len = 0;
}

/* Code points of s (len bytes) as assay__text_load_codepoints gives them. */
static int codepoints_of(const char *s, size_t len, int fold, uint32_t *buf,
                         size_t cap, uint32_t **cps, size_t *n) {
  const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)s;
  /* A code point takes at least one byte, so len entries suffice for
   * ASCII and for decoding without folding. */
  int ascii = is_ascii(s, len);
  if (ascii || !fold) {
    uint32_t *a = buf;
    if (len > cap && (a = malloc(len * sizeof *a)) == NULL)
      return ASSAY_ENOMEM;
    size_t k = 0;
    if (ascii && fold) {
      for (; k + 8 <= len; k += 8) {
        uint64_t x = ascii_fold8(load8(s + k));
        unsigned char f[8];
        memcpy(f, &x, sizeof f); /* back to bytes in memory order */
        for (int b = 0; b < 8; b++)
          a[k + (size_t)b] = f[b];
      }
      for (; k < len; k++)
        a[k] = ascii_fold(u[k]);
    } else if (ascii) {
      for (; k < len; k++)
        a[k] = u[k];
    } else {
      for (size_t i = 0; i < len;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t r =
            utf8proc_iterate(u + i, (utf8proc_ssize_t)(len - i), &c);
        if (r <= 0) {
          if (a != buf)
            free(a);
          return ASSAY_EBAD_INPUT;
        }
        a[k++] = (uint32_t)c;
        i += (size_t)r;
      }
    }
    *cps = a;
    *n = k;
    return 0;
  }
  /* The steps of assay__text_fold (utf8proc_map: decompose with case
   * folding, then compose) without its final encoding back to UTF-8. The
   * decomposed form can have more code points than the text has bytes
   * (U+01D5, two bytes, folds and decomposes to three), so decompose tells
   * the size needed when buf is too short. */
  const utf8proc_option_t opt =
      UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD;
  uint32_t *a = buf;
  size_t acap = cap;
  for (;;) {
    utf8proc_ssize_t r =
        utf8proc_decompose(u, (utf8proc_ssize_t)len, (utf8proc_int32_t *)a,
                           (utf8proc_ssize_t)acap, opt);
    if (r >= 0 && (size_t)r <= acap)
      r = utf8proc_normalize_utf32((utf8proc_int32_t *)a, r, opt);
    else if (r >= 0 && a == buf) {
      if ((a = malloc((size_t)r * sizeof *a)) == NULL)
        return ASSAY_ENOMEM;
      acap = (size_t)r;
      continue;
    } else if (r >= 0) {
      r = UTF8PROC_ERROR_OVERFLOW; /* the size needed changed: a bug */
    }
    if (r < 0) {
      if (a != buf)
        free(a);
      return r == UTF8PROC_ERROR_NOMEM ? ASSAY_ENOMEM : ASSAY_EBAD_INPUT;
    }
    *cps = a;
    *n = (size_t)r;
    return 0;
  }
}

int assay__text_load_codepoints(const cJSON *v, int fold, uint32_t *buf,
                                size_t cap, uint32_t **cps, size_t *n) {
  if (v == NULL)
    return ASSAY_EMISSING_INPUT;
  char *own;
  const char *s = assay__text_borrow(v, &own);
  if (s == NULL)
    return ASSAY_ENOMEM;
  int err = codepoints_of(s, strlen(s), fold, buf, cap, cps, n);
  free(own);
  return err;
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
             key, assay_json_kind(ref));
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
               assay_json_kind(it));
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

int assay__text_output_refs(const struct assay_host *host, assay_call call,
                            const cJSON *input, const char *why_blank,
                            const char **out, const char ***refs,
                            size_t *nref) {
  const cJSON *o = cJSON_GetObjectItemCaseSensitive(input, "output");
  char err[320];
  if (o == NULL) {
    assay__text_fail(host, call, ASSAY_EMISSING_INPUT, "output");
    return -1;
  }
  if (!cJSON_IsString(o)) {
    host->fail(call, ASSAY_FAIL_BAD_INPUT, -1,
               "'output' must be a string, got %s", assay_json_kind(o));
    return -1;
  }
  if (assay__text_blank(o->valuestring, strlen(o->valuestring))) {
    host->fail(call, ASSAY_FAIL_BAD_INPUT, -1, "'output' is empty: %s",
               why_blank);
    return -1;
  }
  int rc =
      assay__text_refs(cJSON_GetObjectItemCaseSensitive(input, "reference"),
                       "reference", refs, nref, err, sizeof err);
  if (rc != 0) {
    if (rc == ASSAY_EBAD_INPUT)
      host->fail(call, ASSAY_FAIL_BAD_INPUT, -1, "%s", err);
    else
      host->fail(call, ASSAY_FAIL_ERROR, -1, "out of memory");
    return -1;
  }
  *out = o->valuestring;
  return 0;
}
