#include "jsonw.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void assay__buf_reserve(struct assay__buf *b, size_t more) {
  if (b->cap - b->len >= more)
    return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < more)
    cap *= 2;
  b->p = assay__xrealloc(b->p, cap);
  b->cap = cap;
}

/* Decimal digits of v, right-aligned ending at end; returns the start. */
static char *digits(char *end, uint64_t v) {
  do {
    *--end = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  return end;
}

static void add_int(struct assay__buf *b, int64_t v) {
  char tmp[24], *end = tmp + sizeof tmp;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  char *s = digits(end, u);
  if (v < 0)
    *--s = '-';
  assay__buf_add(b, s, (size_t)(end - s));
}

static const uint64_t p10[] = {1,
                               10,
                               100,
                               1000,
                               10000,
                               100000,
                               1000000,
                               10000000,
                               100000000,
                               1000000000,
                               10000000000,
                               100000000000,
                               1000000000000,
                               10000000000000,
                               100000000000000,
                               1000000000000000,
                               10000000000000000,
                               100000000000000000,
                               1000000000000000000,
                               10000000000000000000u};

static unsigned __int128 times_p10(unsigned __int128 v, int k) {
  while (k > 0) {
    int step = k > 19 ? 19 : k;
    v *= p10[step];
    k -= step;
  }
  return v;
}

/*
 * d (1e-4 <= |d| < 1e15, not an integer) rounded to prec significant
 * digits as printf rounds it: n / 10^s with n of exactly prec digits.
 * Exact: |d| is m / 2^shift with m < 2^53, and m * 10^s < 2^128 for every
 * s needed here. *err is how far n / 10^s lies from |d|, in units of
 * |d|'s ulp times 10^s (so err < 10^s / 2 means it reads back as d).
 */
struct decimal {
  uint64_t n;
  int s;
  unsigned __int128 err;
};

static void to_decimal(double d, int prec, uint64_t m, int shift,
                       struct decimal *out) {
  int x = (int)floor(log10(fabs(d))); /* an estimate, corrected below */
  for (;;) {
    int s = prec - 1 - x;
    unsigned __int128 prod = times_p10(m, s);
    unsigned __int128 q = prod >> shift;
    unsigned __int128 rem = prod - (q << shift);
    unsigned __int128 half = (unsigned __int128)1 << (shift - 1);
    uint64_t n = (uint64_t)q;
    if (rem > half || (rem == half && (n & 1)))
      n++;
    if (n >= p10[prec]) {
      x++; /* the estimate was low, or rounding carried into a new digit */
      continue;
    }
    if (n < p10[prec - 1]) {
      x--;
      continue;
    }
    unsigned __int128 back = (unsigned __int128)n << shift;
    out->n = n;
    out->s = s;
    out->err = back > prod ? back - prod : prod - back;
    return;
  }
}

/* The text %g prints for n / 10^s (fixed notation, no trailing zero). */
static size_t format_decimal(char *out, int neg, uint64_t n, int s) {
  while (s > 0 && n % 10 == 0) {
    n /= 10;
    s--;
  }
  char tmp[48], *end = tmp + sizeof tmp;
  char *p = digits(end, n);
  while (end - p < s + 1)
    *--p = '0';
  size_t whole = (size_t)(end - p) - (size_t)s;
  char *o = out;
  if (neg)
    *o++ = '-';
  memcpy(o, p, whole);
  o += whole;
  if (s > 0) {
    *o++ = '.';
    memcpy(o, p + whole, (size_t)s);
    o += s;
  }
  return (size_t)(o - out);
}

/*
 * cJSON's print_number(), without stdio for the common cases, and with
 * the same output: null for NaN and infinities, else %1.15g when it reads
 * back within cJSON's tolerance (|back - d| <= max(|back|, |d|) * 2^-52,
 * which is: back is d or one of its neighbours), else %1.17g.
 */
static void number(struct assay__buf *b, double d) {
  if (isnan(d) || isinf(d)) {
    assay__buf_add(b, "null", 4);
    return;
  }
  double a = fabs(d);
  if (a < 1e15 && d == floor(d)) {
    /* %1.15g of an integer under 1e15 is its digits ("-0" included). */
    if (d == 0 && signbit(d))
      assay__buf_add(b, "-0", 2);
    else
      add_int(b, (int64_t)d);
    return;
  }
  if (a >= 1e-3 && a < 1e12) {
    /* Thousandths (milliseconds rounded to 3 decimals, as records keep
     * them): d is k / 1000 correctly rounded, so its 15 significant digits
     * are k / 1000's own, which read back as d. */
    double k = nearbyint(d * 1000);
    if (k / 1000 == d) {
      int64_t ki = (int64_t)fabs(k);
      int frac = (int)(ki % 1000);
      if (d < 0)
        assay__buf_add(b, "-", 1);
      add_int(b, ki / 1000);
      if (frac != 0) {
        char f[4] = {'.', (char)('0' + frac / 100), (char)('0' + frac / 10 % 10),
                     (char)('0' + frac % 10)};
        size_t n = 4;
        while (f[n - 1] == '0')
          n--;
        assay__buf_add(b, f, n);
      }
      return;
    }
  }
  char tmp[40];
  size_t n;
  uint64_t bits;
  memcpy(&bits, &d, sizeof bits);
  uint64_t m = (bits & ((UINT64_C(1) << 52) - 1)) | (UINT64_C(1) << 52);
  int shift = 1075 - (int)((bits >> 52) & 0x7ff);
  /* Away from the ends of its binade, d's neighbours are one ulp away on
   * both sides and stay in the binade. */
  int inner = m > (UINT64_C(1) << 52) + 2 && m < (UINT64_C(1) << 53) - 3;
  if (a >= 1e-4 && a < 1e15 && inner) {
    struct decimal dec;
    to_decimal(d, 15, m, shift, &dec);
    /* The 15 digits read back as the double nearest them: d itself while
     * err < 10^s / 2, a neighbour while err < 3 * 10^s / 2 (both accepted
     * by cJSON), something further beyond. On a boundary, ask strtod. */
    unsigned __int128 unit = times_p10(1, dec.s);
    int accept = 2 * dec.err < 3 * unit ? 1 : 2 * dec.err > 3 * unit ? 0 : -1;
    if (accept < 0) {
      n = format_decimal(tmp, d < 0, dec.n, dec.s);
      tmp[n] = '\0';
      double back = strtod(tmp, NULL);
      double big = fabs(back) > a ? fabs(back) : a;
      accept = fabs(back - d) <= big * DBL_EPSILON;
    }
    if (!accept)
      to_decimal(d, 17, m, shift, &dec);
    n = format_decimal(tmp, d < 0, dec.n, dec.s);
  } else {
    n = (size_t)snprintf(tmp, sizeof tmp, "%1.15g", d);
    double back = strtod(tmp, NULL);
    double big = fabs(back) > a ? fabs(back) : a;
    if (!(fabs(back - d) <= big * DBL_EPSILON))
      n = (size_t)snprintf(tmp, sizeof tmp, "%1.17g", d);
  }
  assay__buf_add(b, tmp, n);
}

void assay__json_string(struct assay__buf *b, const char *s) {
  if (s == NULL) {
    assay__buf_add(b, "\"\"", 2);
    return;
  }
  /* Room for the worst case (every byte as \u00XX) up front, then one
   * pass that copies runs of plain bytes. */
  size_t len = strlen(s);
  assay__buf_reserve(b, len * 6 + 2);
  char *o = b->p + b->len;
  *o++ = '"';
  const unsigned char *p = (const unsigned char *)s, *end = p + len;
  while (p < end) {
    const unsigned char *run = p;
    /* Eight bytes at a time while none needs an escape: no byte under
     * 0x20, none equal to '"' or '\\' (the zero-byte test on x ^ c). */
    while (end - p >= 8) {
      uint64_t x, q, bs;
      memcpy(&x, p, 8);
      q = x ^ UINT64_C(0x2222222222222222);
      bs = x ^ UINT64_C(0x5c5c5c5c5c5c5c5c);
      uint64_t hit = ((x - UINT64_C(0x2020202020202020)) & ~x) |
                     ((q - UINT64_C(0x0101010101010101)) & ~q) |
                     ((bs - UINT64_C(0x0101010101010101)) & ~bs);
      if (hit & UINT64_C(0x8080808080808080))
        break;
      p += 8;
    }
    while (p < end && *p >= 32 && *p != '"' && *p != '\\')
      p++;
    memcpy(o, run, (size_t)(p - run));
    o += p - run;
    if (p == end)
      break;
    static const char hex[] = "0123456789abcdef";
    *o++ = '\\';
    switch (*p) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '\b': *o++ = 'b'; break;
    case '\f': *o++ = 'f'; break;
    case '\n': *o++ = 'n'; break;
    case '\r': *o++ = 'r'; break;
    case '\t': *o++ = 't'; break;
    default:
      *o++ = 'u';
      *o++ = '0';
      *o++ = '0';
      *o++ = hex[*p >> 4];
      *o++ = hex[*p & 15];
    }
    p++;
  }
  *o++ = '"';
  b->len = (size_t)(o - b->p);
}

static int write_value(struct assay__buf *b, const cJSON *v, int depth) {
  if (depth > CJSON_NESTING_LIMIT)
    return -1;
  switch (v->type & 0xFF) {
  case cJSON_NULL:
    assay__buf_add(b, "null", 4);
    return 0;
  case cJSON_False:
    assay__buf_add(b, "false", 5);
    return 0;
  case cJSON_True:
    assay__buf_add(b, "true", 4);
    return 0;
  case cJSON_Number:
    number(b, v->valuedouble);
    return 0;
  case cJSON_String:
    assay__json_string(b, v->valuestring);
    return 0;
  case cJSON_Raw:
    if (v->valuestring == NULL)
      return -1;
    assay__buf_add(b, v->valuestring, strlen(v->valuestring));
    return 0;
  case cJSON_Array:
  case cJSON_Object: {
    int obj = (v->type & 0xFF) == cJSON_Object;
    assay__buf_add(b, obj ? "{" : "[", 1);
    for (const cJSON *c = v->child; c != NULL; c = c->next) {
      if (c != v->child)
        assay__buf_add(b, ",", 1);
      if (obj) {
        assay__json_string(b, c->string);
        assay__buf_add(b, ":", 1);
      }
      if (write_value(b, c, depth + 1) != 0)
        return -1;
    }
    assay__buf_add(b, obj ? "}" : "]", 1);
    return 0;
  }
  default:
    return -1;
  }
}

void assay__json_number(struct assay__buf *b, double d) {
  number(b, d);
}

int assay__json_write_members(struct assay__buf *b, const cJSON *v) {
  size_t start = b->len;
  if (v == NULL || (v->type & 0xFF) != cJSON_Object)
    return -1;
  for (const cJSON *c = v->child; c != NULL; c = c->next) {
    if (c != v->child)
      assay__buf_add(b, ",", 1);
    assay__json_string(b, c->string);
    assay__buf_add(b, ":", 1);
    if (write_value(b, c, 1) != 0) {
      b->len = start;
      return -1;
    }
  }
  return 0;
}

int assay__json_write(struct assay__buf *b, const cJSON *v) {
  size_t start = b->len;
  if (v == NULL || write_value(b, v, 0) != 0) {
    b->len = start;
    return -1;
  }
  return 0;
}
