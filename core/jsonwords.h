/*
 * Words for messages about JSON values: what kind of value one is ("a
 * string", "a JSON array"), and what keys an object has ("id, question,
 * answer"). Header-only, so that the core and every plugin, each a shared
 * object of its own that links nothing from the host, say it the same way
 * from one copy of the code.
 */
#ifndef ASSAY_JSONWORDS_H
#define ASSAY_JSONWORDS_H

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* The most keys assay_json_keys names before ", ...". */
#define ASSAY_JSON_KEYS_MAX 12

/* "an object", "a JSON array", "a string", "a number", "a boolean",
 * "null"; "no JSON value" for NULL or an invalid node. */
static inline const char *assay_json_kind(const cJSON *j) {
  if (cJSON_IsObject(j))
    return "an object";
  if (cJSON_IsArray(j))
    return "a JSON array";
  if (cJSON_IsString(j))
    return "a string";
  if (cJSON_IsNumber(j))
    return "a number";
  if (cJSON_IsBool(j))
    return "a boolean";
  if (cJSON_IsNull(j))
    return "null";
  return "no JSON value";
}

/*
 * The keys of obj, each once (a parsed object may repeat one), in order:
 * "a, b, c", with ", ..." after the first ASSAY_JSON_KEYS_MAX; a copy of
 * none when obj has no keys or is no object. Owned (free()); NULL only when
 * out of memory. Linear in the number of keys, however many repeat.
 */
static inline char *assay_json_keys(const cJSON *obj, const char *none) {
  const char *named[ASSAY_JSON_KEYS_MAX];
  int n = 0, more = 0;
  size_t len = 0;
  const cJSON *f = cJSON_IsObject(obj) ? obj->child : NULL;
  for (; f != NULL; f = f->next) {
    const char *k = f->string ? f->string : "";
    int seen = 0;
    for (int i = 0; i < n && !seen; i++)
      seen = strcmp(named[i], k) == 0;
    if (seen)
      continue;
    if (n == ASSAY_JSON_KEYS_MAX) {
      more = 1;
      break;
    }
    named[n++] = k;
    len += strlen(k) + 2;
  }
  if (n == 0)
    len = strlen(none);
  char *out = malloc(len + sizeof ", ...");
  if (out == NULL)
    return NULL;
  if (n == 0)
    return strcpy(out, none);
  char *p = out;
  for (int i = 0; i < n; i++) {
    size_t k = strlen(named[i]);
    if (i > 0)
      *p++ = ',', *p++ = ' ';
    memcpy(p, named[i], k);
    p += k;
  }
  strcpy(p, more ? ", ..." : "");
  return out;
}

#endif
