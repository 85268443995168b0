/*
 * Small helpers shared by the core: allocation that aborts on exhaustion
 * (there is no sensible recovery from a failed small malloc), string
 * formatting, JSON paths and clocks.
 */
#ifndef ASSAY_UTIL_H
#define ASSAY_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "jsonwords.h"

#if defined(__GNUC__)
#define ASSAY__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define ASSAY__PRINTF(f, a)
#endif

#define assay__container_of(ptr, type, member)                                \
  ((type *)((char *)(ptr)-offsetof(type, member)))
#define assay__array_size(a) (sizeof(a) / sizeof((a)[0]))

/* Return owned memory; abort the process with a message when out of memory. */
void *assay__xmalloc(size_t n);
void *assay__xcalloc(size_t n, size_t size);
/* Zeroed memory aligned to align (a power of two, a multiple of
 * sizeof(void *)): for structures with members on cache lines of their
 * own. Freed with free(). */
void *assay__xcalloc_aligned(size_t align, size_t size);
void *assay__xrealloc(void *p, size_t n);
char *assay__xstrdup(const char *s);
char *assay__xstrndup(const char *s, size_t n);

/* printf into a new owned string. */
char *assay__format(const char *fmt, ...) ASSAY__PRINTF(1, 2);
char *assay__vformat(const char *fmt, va_list ap);

/* Sets *errmsg (when errmsg is not NULL) to a formatted owned string and
 * returns err, so that callers can write `return assay__fail(...)`. */
int assay__fail(char **errmsg, int err, const char *fmt, ...)
    ASSAY__PRINTF(3, 4);

/*
 * Looks up a dotted path ("answers.0.text") in root: object keys, and array
 * indices for all-digit segments on arrays. Returns the node borrowed from
 * root, or NULL.
 */
const cJSON *assay__json_path(const cJSON *root, const char *path);

/*
 * Why path is not in root, once part of it is: "'a.b' is a string, so it
 * has no 'c'", "'a' has 2 elements, none at 5", "'a' has no 'x' (it has:
 * ...)". Owned; NULL when the path is there or its first segment is not.
 */
char *assay__json_path_miss(const cJSON *root, const char *path);

/* assay_json_keys (jsonwords.h: "a, b, c", each once, ", ..." after
 * twelve; a copy of none when there are none), aborting when out of
 * memory. Owned. For messages that name what there is. */
char *assay__json_keys(const cJSON *obj, const char *none);

/* Edit distance (insertions, deletions, changes, swaps of neighbours) of
 * two short names, for "did you mean" hints; SIZE_MAX when one is over 63
 * bytes. */
size_t assay__edit_distance(const char *a, size_t na, const char *b, size_t nb);

/* The name of names[0..n) a slip away from word (one edit for a word of
 * under 5 bytes, two for a longer one), the nearest first; NULL when none
 * is. For "did you mean" in a message. */
const char *assay__nearest(const char *word, const char *const *names,
                           size_t n);

/* qsort/bsearch comparison of two string pointers (char **), by strcmp. */
int assay__cmp_str(const void *a, const void *b);

/* Compact JSON text of v, owned. */
char *assay__json_print(const cJSON *v);

/* Monotonic milliseconds (for durations), and wall-clock seconds. */
double assay__now_ms(void);
double assay__wall_time(void);
/* "2026-11-27T23:07:13Z" for t seconds since the epoch, into buf[32]. */
void assay__iso8601(double t, char buf[32]);
/* Same with no separators, for file names: "20261127T230713Z". */
void assay__timestamp_compact(double t, char buf[32]);

/* Whether s (len bytes) is valid UTF-8; on failure *bad_offset is the byte
 * offset of the first invalid sequence. */
int assay__utf8_valid(const char *s, size_t len, size_t *bad_offset);

#endif
