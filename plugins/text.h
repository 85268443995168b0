/*
 * Text helpers shared by the built-in metric plugins (a convenience library
 * linked into each module, never installed): the text of a JSON value,
 * Unicode caseless forms and code points (utf8proc), word lists (whitespace
 * split as Python's str.split()), interning
 * words to integer ids, n-gram counting and the LCS length.
 *
 * Everything here is reentrant: no global state, so the metrics that use it
 * can be flagged ASSAY_THREAD_SAFE. Functions returning int give 0 or a
 * negative ASSAY_E* code (core/error.h): ASSAY_EBAD_INPUT for text that is
 * not valid UTF-8, ASSAY_ENOMEM when memory runs out. Returned memory is
 * owned by the caller and freed with free() unless stated otherwise.
 */
#ifndef ASSAY_PLUGINS_TEXT_H
#define ASSAY_PLUGINS_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include <assay/plugin.h>
#include <cjson/cJSON.h>

#include "error.h"
#include "jsonwords.h"

/* The text a metric compares for v (borrowed, not NULL): a string's own
 * characters, borrowed from v, or any other JSON value as its compact JSON
 * text, which is owned and also stored in *own (else *own is NULL; free
 * *own when done). NULL when memory runs out. */
const char *assay__text_borrow(const cJSON *v, char **own);

/* Folded texts shorter than this many bytes live inside struct
 * assay__text, so that the common short answers are compared without an
 * allocation. */
#define ASSAY__TEXT_INLINE 192

/* A text to compare: as given (for messages) and in the form compared.
 * cmp may point into the struct itself: never copy a loaded one. */
struct assay__text {
  const char *raw; /* assay__text_borrow() the value */
  const char *cmp; /* the caseless form when folding, else raw; NUL-ended */
  size_t len;      /* bytes in cmp */
  char *own_raw;   /* what release frees: raw and cmp when allocated here */
  char *own_cmp;
  char small[ASSAY__TEXT_INLINE]; /* cmp of short ASCII texts */
};

/*
 * Loads the text of v (borrowed, may be NULL; t borrows from it, so keep v
 * alive while using t) into t, folded when fold is set. Returns 0;
 * ASSAY_EMISSING_INPUT when v is NULL; ASSAY_EBAD_INPUT when folding meets
 * invalid UTF-8; ASSAY_ENOMEM. t needs no release on error.
 */
int assay__text_load(struct assay__text *t, const cJSON *v, int fold);
void assay__text_release(struct assay__text *t);

/*
 * The code points of the text of v (borrowed, may be NULL) as compared:
 * its caseless form (assay__text_fold) when fold is set. They are written
 * to buf when its cap entries suffice (*cps is then buf), else to an owned
 * array in *cps: free *cps when it is not buf. *n receives the count. One
 * pass, no intermediate UTF-8 copy. Errors as assay__text_load(), and also
 * ASSAY_EBAD_INPUT for invalid UTF-8 without folding; nothing needs a
 * release on error.
 */
int assay__text_load_codepoints(const cJSON *v, int fold, uint32_t *buf,
                                size_t cap, uint32_t **cps, size_t *n);

/* Fails call for an error of assay__text_load() or another helper here
 * about input key, with a message naming the key. */
void assay__text_fail(const struct assay_host *host, assay_call call, int err,
                      const char *key);

/* Whether s (len bytes) is empty or only whitespace (assay__text_is_space),
 * as Python's `not s.strip()`; invalid UTF-8 counts as not blank. */
int assay__text_blank(const char *s, size_t len);

/*
 * Checks a reference that may be one string or a non-empty list of
 * strings, none of them blank. On success *refs receives an owned array of
 * *n strings borrowed from ref and 0 is returned. Otherwise returns
 * ASSAY_EBAD_INPUT (ASSAY_ENOMEM when memory runs out) with a message naming
 * the input key and what is wrong written into err (errsize bytes).
 */
int assay__text_refs(const cJSON *ref, const char *key, const char ***refs,
                     size_t *n, char *err, size_t errsize);

/*
 * The inputs of a metric scoring an output text against one or more
 * references (rouge, sentence_bleu): "output" must be a non-blank string
 * (why_blank completes the message when it is blank: "rouge needs a text
 * to score") and "reference" a string or a non-empty list of strings. On
 * success *out is borrowed from input, *refs is an owned array of *nref
 * strings borrowed from input, and 0 is returned; otherwise call has been
 * failed with a message naming the input, and -1 is returned.
 */
int assay__text_output_refs(const struct assay_host *host, assay_call call,
                            const cJSON *input, const char *why_blank,
                            const char **out, const char ***refs,
                            size_t *nref);

/* Whether s (len bytes) is valid UTF-8. */
int assay__text_valid(const char *s, size_t len);

/*
 * The caseless form of s (len bytes): Unicode full case folding (so "ß"
 * becomes "ss" and "É" becomes "é") then canonical composition (NFC), so
 * texts that differ only in case or in how accents are encoded compare
 * equal. Locale-independent: "I" folds to "i", Turkish dotless "ı" stays.
 * Stores the owned, NUL-terminated result in *out and its length in *outlen.
 */
int assay__text_fold(const char *s, size_t len, char **out, size_t *outlen);

/* Whether c is whitespace for Python's str.split() (str.isspace()): the
 * ASCII controls \t\n\v\f\r and 0x1c-0x1f, space, U+0085, and the Unicode
 * separators (Zs, Zl, Zp). */
int assay__text_is_space(int32_t c);

/* A short, printable excerpt of s for a reason string, quoted: at most
 * about max bytes of s, cut on a character boundary, "..." when cut.
 * Writes into buf (size bytes, at least max + 8) and returns buf. */
const char *assay__text_snippet(const char *s, char *buf, size_t size,
                                size_t max);

/* A metric result {"value": value, "reason": <printf>} (owned), or NULL
 * when memory runs out. */
cJSON *assay__score_new(double value, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- word lists ----------------------------------------------------- */

/* A list of words; each is NUL-terminated inside buf. */
struct assay__words {
  char *buf;     /* the words, one after another, each ending in NUL */
  size_t len;    /* bytes used in buf */
  size_t bufcap; /* bytes allocated */
  size_t *start; /* offset of word i in buf */
  size_t *size;  /* length of word i in bytes */
  size_t n;      /* number of words */
  size_t cap;    /* slots allocated in start and size */
};

void assay__words_init(struct assay__words *w);
/* Frees the words; w can be used again after assay__words_init(). */
void assay__words_release(struct assay__words *w);
/* Appends a copy of the len bytes at s as one word. */
int assay__words_add(struct assay__words *w, const char *s, size_t len);
/* Word i, borrowed from w. */
static inline const char *assay__words_get(const struct assay__words *w,
                                           size_t i) {
  return w->buf + w->start[i];
}

/* Appends the words of s (len bytes) split on runs of whitespace (see
 * assay__text_is_space), like Python's str.split() with no argument; with
 * fold, s is first put in its caseless form (assay__text_fold). */
int assay__words_split(struct assay__words *w, const char *s, size_t len,
                       int fold);

/*
 * Gives every word of the nlists lists an id such that two words have the
 * same id exactly when their bytes are equal. ids[k] receives an owned array
 * of lists[k]->n ids (never NULL; free each with free()).
 */
int assay__words_intern(const struct assay__words *const *lists, size_t nlists,
                        uint32_t **ids);

/* ---- n-grams and LCS ------------------------------------------------ */

/* One distinct n-gram of a sequence of ids: its n ids (borrowed from the
 * sequence) and how often it occurs. */
struct assay__ngram {
  const uint32_t *ids;
  size_t n;
  size_t count;
};

/*
 * Counts the n-grams (n >= 1) of the len ids at seq: *out receives an owned
 * array of the *nout distinct ones, sorted so that assay__ngrams_lookup()
 * can search it; *nout is 0 when len < n (*out is still a valid pointer).
 * The result borrows seq: keep seq alive while using it.
 */
int assay__ngrams_count(const uint32_t *seq, size_t len, size_t n,
                        struct assay__ngram **out, size_t *nout);

/* How often the n-gram of n ids at key occurs in a set counted by
 * assay__ngrams_count() with the same n (0 when absent). */
size_t assay__ngrams_lookup(const struct assay__ngram *set, size_t nset,
                            const uint32_t *key, size_t n);

/*
 * Length of the longest common subsequence of a and b (any uint32_t
 * symbols: code points, word ids). After skipping their common prefix and
 * suffix, a bit-parallel algorithm (Allison-Dix, Hyyro) takes
 * O(max(na, nb) * ceil(min(na, nb) / 64)) steps and O(na + nb) memory.
 * No allocation when the shorter side's symbols are all below 256 and it
 * has at most 64 of them (or the longer side at most 4096), nor when the
 * work buffers of a larger alphabet fit in 4 KiB.
 */
int assay__lcs_length(const uint32_t *a, size_t na, const uint32_t *b,
                      size_t nb, size_t *len);

#endif
