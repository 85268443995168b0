/*
 * A compact JSON writer for cJSON trees into a growing buffer. It prints
 * exactly what cJSON_PrintUnformatted() prints, several times faster: the
 * record of every item goes through it, and cJSON's number printing
 * (sprintf, then sscanf to check) was a third of the CPU path's time.
 */
#ifndef ASSAY_JSONW_H
#define ASSAY_JSONW_H

#include <stddef.h>
#include <string.h>

#include <cjson/cJSON.h>

struct assay__buf {
  char *p;
  size_t len;
  size_t cap;
};

/* Makes room for at least more bytes after len (aborts when out of memory). */
void assay__buf_reserve(struct assay__buf *b, size_t more);

/* Appends n bytes. */
static inline void assay__buf_add(struct assay__buf *b, const void *s, size_t n) {
  if (b->cap - b->len < n)
    assay__buf_reserve(b, n);
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

/* Appends the compact JSON text of v (no terminating NUL). Returns 0, or -1
 * for a node cJSON cannot print either (an invalid type, or a raw or string
 * node without its text), with b->len where it was. */
int assay__json_write(struct assay__buf *b, const cJSON *v);

/* Appends the members of object v as they appear between its braces
 * ("a":1,"b":2). Returns 0, or -1 as assay__json_write does. */
int assay__json_write_members(struct assay__buf *b, const cJSON *v);

/* Appends the text cJSON prints for the number d. */
void assay__json_number(struct assay__buf *b, double d);

/* Appends s as a JSON string, quotes included. */
void assay__json_string(struct assay__buf *b, const char *s);

#endif
