/*
 * The field names of an item, for the message of a plugin that looked for
 * a field the item has not: "id, question, answer" (the first 12, then
 * "..."), or "no fields". Header-only, so that each plugin, a shared
 * object of its own, carries its copy and links nothing more.
 */
#ifndef ASSAY_PLUGINS_FIELDS_H
#define ASSAY_PLUGINS_FIELDS_H

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define ASSAY_FIELDS_LISTED 12

/* Owned (free()); NULL when out of memory. */
static inline char *assay_plugin_field_list(const cJSON *item) {
  size_t len = 0;
  int n = 0;
  const cJSON *f = item ? item->child : NULL;
  for (; f != NULL && n < ASSAY_FIELDS_LISTED; f = f->next, n++)
    len += strlen(f->string ? f->string : "") + 2;
  int more = f != NULL;
  char *out = malloc(len + sizeof ", ..." + sizeof "no fields");
  if (out == NULL)
    return NULL;
  char *p = out;
  n = 0;
  for (f = item ? item->child : NULL; f != NULL && n < ASSAY_FIELDS_LISTED;
       f = f->next, n++) {
    size_t k = strlen(f->string ? f->string : "");
    if (n > 0)
      *p++ = ',', *p++ = ' ';
    memcpy(p, f->string ? f->string : "", k);
    p += k;
  }
  strcpy(p, more ? ", ..." : n == 0 ? "no fields" : "");
  return out;
}

#endif
