/* Small helpers shared by the core (see util.h). */
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

static void oom(size_t n) {
  fprintf(stderr, "assay: out of memory (allocating %zu bytes)\n", n);
  abort();
}

void *assay__xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL)
    oom(n);
  return p;
}

void *assay__xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (p == NULL)
    oom(n * size);
  return p;
}

void *assay__xcalloc_aligned(size_t align, size_t size) {
  void *p = NULL;
  if (posix_memalign(&p, align, size ? size : 1) != 0)
    oom(size);
  memset(p, 0, size);
  return p;
}

void *assay__xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (q == NULL)
    oom(n);
  return q;
}

char *assay__xstrdup(const char *s) {
  return assay__xstrndup(s, strlen(s));
}

char *assay__xstrndup(const char *s, size_t n) {
  char *p = assay__xmalloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *assay__vformat(const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0)
    return assay__xstrdup(fmt);
  char *s = assay__xmalloc((size_t)n + 1);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

char *assay__format(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = assay__vformat(fmt, ap);
  va_end(ap);
  return s;
}

int assay__fail(char **errmsg, int err, const char *fmt, ...) {
  if (errmsg != NULL) {
    va_list ap;
    va_start(ap, fmt);
    *errmsg = assay__vformat(fmt, ap);
    va_end(ap);
  }
  return err;
}

int assay__cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t assay__edit_distance(const char *a, size_t na, const char *b,
                            size_t nb) {
  /* Rows i-2, i-1 and i of the table; a swap of two neighbours counts one
   * ("rnu" is one from "run"). */
  size_t r[3][64];
  if (na > 63 || nb > 63)
    return SIZE_MAX;
  for (size_t j = 0; j <= nb; j++)
    r[0][j] = r[1][j] = j;
  for (size_t i = 1; i <= na; i++) {
    size_t *two = r[(i + 1) % 3], *up = r[(i + 2) % 3], *cur = r[i % 3];
    cur[0] = i;
    for (size_t j = 1; j <= nb; j++) {
      size_t best = up[j - 1] + (a[i - 1] != b[j - 1]);
      if (up[j] + 1 < best)
        best = up[j] + 1;
      if (cur[j - 1] + 1 < best)
        best = cur[j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          two[j - 2] + 1 < best)
        best = two[j - 2] + 1;
      cur[j] = best;
    }
  }
  return r[na % 3][nb];
}

const char *assay__nearest(const char *word, const char *const *names,
                           size_t n) {
  size_t len = strlen(word), bestd = len < 5 ? 1 : 2;
  const char *near = NULL;
  for (size_t i = 0; i < n; i++) {
    size_t d = assay__edit_distance(word, len, names[i], strlen(names[i]));
    if (d <= bestd && (near == NULL || d < bestd))
      near = names[i], bestd = d;
  }
  return near;
}

char *assay__json_keys(const cJSON *obj, const char *none) {
  char *s = assay_json_keys(obj, none);
  if (s == NULL)
    oom(strlen(none));
  return s;
}

/* Walks path from root; where a segment is not found, *at is the node
 * that lacks it and *done the length of the path leading there. */
static const cJSON *path_walk(const cJSON *root, const char *path,
                              const cJSON **at, size_t *done) {
  const cJSON *node = root;
  const char *p = path;
  char seg[256];
  for (;;) {
    *at = node;
    *done = p == path ? 0 : (size_t)(p - path - 1);
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    if (n == 0 || n >= sizeof seg)
      return NULL;
    memcpy(seg, p, n);
    seg[n] = '\0';
    const cJSON *next = NULL;
    if (cJSON_IsArray(node) && strspn(seg, "0123456789") == n)
      next = cJSON_GetArrayItem(node, atoi(seg));
    else if (cJSON_IsObject(node))
      next = cJSON_GetObjectItemCaseSensitive(node, seg);
    if (next == NULL || dot == NULL)
      return next;
    node = next;
    p = dot + 1;
  }
}

const cJSON *assay__json_path(const cJSON *root, const char *path) {
  const cJSON *at;
  size_t done;
  return path_walk(root, path, &at, &done);
}

char *assay__json_path_miss(const cJSON *root, const char *path) {
  const cJSON *at;
  size_t done;
  if (path_walk(root, path, &at, &done) != NULL || done == 0)
    return NULL;
  const char *seg = path + done + 1;
  size_t n = strcspn(seg, ".");
  if (n == 0)
    return NULL;
  if (cJSON_IsArray(at) && strspn(seg, "0123456789") == n)
    return assay__format("'%.*s' has %d element%s, none at %.*s", (int)done,
                         path, cJSON_GetArraySize(at),
                         cJSON_GetArraySize(at) == 1 ? "" : "s", (int)n, seg);
  if (cJSON_IsObject(at)) {
    char *keys = assay__json_keys(at, "no fields");
    char *s = assay__format("'%.*s' has no '%.*s' (it has: %s)", (int)done,
                            path, (int)n, seg, keys);
    free(keys);
    return s;
  }
  return assay__format("'%.*s' is %s, so it has no '%.*s'", (int)done, path,
                       assay_json_kind(at), (int)n, seg);
}

char *assay__json_print(const cJSON *v) {
  char *s = cJSON_PrintUnformatted(v);
  if (s == NULL)
    oom(0);
  return s;
}

double assay__now_ms(void) {
  return (double)uv_hrtime() / 1e6;
}

double assay__wall_time(void) {
  uv_timeval64_t tv;
  if (uv_gettimeofday(&tv) != 0)
    return (double)time(NULL);
  return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

void assay__iso8601(double t, char buf[32]) {
  time_t s = (time_t)t;
  struct tm tm;
  gmtime_r(&s, &tm);
  strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void assay__timestamp_compact(double t, char buf[32]) {
  time_t s = (time_t)t;
  struct tm tm;
  gmtime_r(&s, &tm);
  strftime(buf, 32, "%Y%m%dT%H%M%SZ", &tm);
}

int assay__utf8_valid(const char *s, size_t len, size_t *bad_offset) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    /* ASCII eight bytes at a time. */
    while (len - i >= 8) {
      uint64_t x;
      memcpy(&x, p + i, 8);
      if (x & UINT64_C(0x8080808080808080))
        break;
      i += 8;
    }
    if (i >= len)
      break;
    unsigned c = p[i];
    size_t n;
    unsigned min;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1, min = 0x80, c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, min = 0x800, c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, min = 0x10000, c &= 0x07;
    } else {
      goto bad;
    }
    if (n >= len - i)
      goto bad;
    for (size_t k = 1; k <= n; k++) {
      if ((p[i + k] & 0xc0) != 0x80)
        goto bad;
      c = (c << 6) | (p[i + k] & 0x3f);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are invalid. */
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
      goto bad;
    i += n + 1;
  }
  return 1;
bad:
  if (bad_offset != NULL)
    *bad_offset = i;
  return 0;
}
