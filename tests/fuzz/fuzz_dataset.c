/*
 * Fuzz targets for the dataset readers (core/dataset.c): JSONL, JSON array
 * and CSV. The first input byte configures the run, the rest is the file:
 *   bits 0-1  the item cap: the default, 1-16 bytes (from bits 4-7), 40, 300
 *   bit 2     also read the same bytes through a file and require the same
 *             items and errors as from memory (messages must not depend on
 *             how the input arrived)
 *   bit 3     with bit 2: put blank lines before the content so that it
 *             crosses the file reader's first read window
 * Every item must be either a JSON object with valid UTF-8 strings only or
 * an error naming the dataset; indexes count up from 0; a fatal error and
 * the end stay put on later calls.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dataset.h"
#include "error.h"
#include "fuzz.h"
#include "util.h"

/* Past the reader's first window of 2 x 64 KiB: the pad moves the content
 * over that boundary at an offset that depends on the control byte. */
#define PAD_BASE ((size_t)128 << 10)

struct outcome {
  int rc;
  char *errmsg;
  struct assay_dataset_item item;
};

static void outcome_release(struct outcome *o) {
  free(o->errmsg);
  assay_dataset_item_clear(&o->item);
  memset(o, 0, sizeof *o);
}

/* Every key and string of v is valid UTF-8. */
static int json_utf8_ok(const cJSON *v) {
  for (; v != NULL; v = v->next) {
    if (v->string != NULL && !assay__utf8_valid(v->string, strlen(v->string), NULL))
      return 0;
    if (cJSON_IsString(v) &&
        !assay__utf8_valid(v->valuestring, strlen(v->valuestring), NULL))
      return 0;
    if (v->child != NULL && !json_utf8_ok(v->child))
      return 0;
  }
  return 1;
}

/* Reads one item and checks what the API promises about it. */
static void next_checked(struct assay_dataset *ds, const char *name,
                         int64_t count, struct outcome *o) {
  memset(o, 0, sizeof *o);
  o->rc = assay_dataset_next(ds, &o->item, &o->errmsg);
  if (o->rc < 0) {
    FUZZ_CHECK(o->errmsg != NULL && *o->errmsg != '\0',
               "assay_dataset_next returned %d without a message", o->rc);
    FUZZ_CHECK(o->item.json == NULL && o->item.error == NULL,
               "assay_dataset_next returned %d with an item", o->rc);
    return;
  }
  FUZZ_CHECK(o->rc == 0 || o->rc == 1, "assay_dataset_next returned %d", o->rc);
  FUZZ_CHECK(o->errmsg == NULL, "errmsg set on a return of %d: %s", o->rc,
             o->errmsg);
  if (o->rc == 0) {
    FUZZ_CHECK(o->item.json == NULL && o->item.error == NULL,
               "an item came with the end of the dataset");
    return;
  }
  FUZZ_CHECK((o->item.json == NULL) != (o->item.error == NULL),
             "item %lld: json %p and error %p: exactly one must be set",
             (long long)count, (void *)o->item.json, (void *)o->item.error);
  FUZZ_CHECK(o->item.index == count, "item index %lld, expected %lld",
             (long long)o->item.index, (long long)count);
  FUZZ_CHECK(o->item.line >= 1, "item %lld on line 0", (long long)count);
  if (o->item.json != NULL) {
    FUZZ_CHECK(cJSON_IsObject(o->item.json), "item %lld is not an object",
               (long long)count);
    FUZZ_CHECK(json_utf8_ok(o->item.json->child),
               "item %lld holds invalid UTF-8 (it must be a bad item instead)",
               (long long)count);
  } else {
    size_t n = strlen(name);
    FUZZ_CHECK(strncmp(o->item.error, name, n) == 0 && o->item.error[n] == ':',
               "item error does not start with the dataset name: %s",
               o->item.error);
  }
  FUZZ_CHECK(
      o->item.id == NULL ||
          (o->item.error != NULL &&
           ((cJSON_IsString(o->item.id) && json_utf8_ok(o->item.id)) ||
            (cJSON_IsNumber(o->item.id) && isfinite(o->item.id->valuedouble)))),
      "item %lld: an id that is no string of valid UTF-8 nor a finite "
      "number, or one on a well-formed item",
      (long long)count);
}

/* Compared as text: cJSON_Compare finds duplicate keys unequal to
 * themselves (it looks each key up by name). */
static void same_json(const cJSON *a, const cJSON *b, int64_t count) {
  char *ta = cJSON_PrintUnformatted(a), *tb = cJSON_PrintUnformatted(b);
  FUZZ_CHECK(ta != NULL && tb != NULL, "cannot print an item");
  FUZZ_CHECK(strcmp(ta, tb) == 0,
             "item %lld: memory reader gives %s, file reader %s",
             (long long)count, ta, tb);
  cJSON_free(ta);
  cJSON_free(tb);
}

/* The same call on two readers gave the same result. */
static void same_outcome(const struct outcome *a, const struct outcome *b,
                         int64_t count) {
  FUZZ_CHECK(a->rc == b->rc, "item %lld: memory reader returned %d, file reader %d",
             (long long)count, a->rc, b->rc);
  if (a->rc < 0)
    FUZZ_CHECK(strcmp(a->errmsg, b->errmsg) == 0,
               "item %lld: memory reader says '%s', file reader '%s'",
               (long long)count, a->errmsg, b->errmsg);
  if (a->rc != 1)
    return;
  FUZZ_CHECK(a->item.line == b->item.line,
             "item %lld: memory reader line %zu, file reader line %zu",
             (long long)count, a->item.line, b->item.line);
  FUZZ_CHECK((a->item.error == NULL) == (b->item.error == NULL),
             "item %lld: memory reader gives %s, file reader %s",
             (long long)count, a->item.error ? a->item.error : "an object",
             b->item.error ? b->item.error : "an object");
  if (a->item.error != NULL) {
    FUZZ_CHECK(strcmp(a->item.error, b->item.error) == 0,
               "item %lld: memory reader says '%s', file reader '%s'",
               (long long)count, a->item.error, b->item.error);
    FUZZ_CHECK((a->item.id == NULL) == (b->item.id == NULL),
               "item %lld: one reader read its id, the other not",
               (long long)count);
    if (a->item.id != NULL)
      same_json(a->item.id, b->item.id, count);
  } else {
    same_json(a->item.json, b->item.json, count);
  }
}

/* A file holding text, opened by the reader through its own path. */
static int file_of(const char *text, size_t len, char *path, size_t pathlen) {
  static int fd = -1;
  if (fd < 0) {
    fd = memfd_create("assay-fuzz-dataset", 0);
    FUZZ_CHECK(fd >= 0, "memfd_create failed");
  }
  FUZZ_CHECK(ftruncate(fd, 0) == 0, "ftruncate failed");
  size_t off = 0;
  while (off < len) {
    ssize_t n = pwrite(fd, text + off, len - off, (off_t)off);
    FUZZ_CHECK(n > 0, "pwrite failed");
    off += (size_t)n;
  }
  snprintf(path, pathlen, "/proc/self/fd/%d", fd);
  return 0;
}

static int fuzz_dataset(int format, const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  unsigned ctl = data[0];
  data++;
  size--;
  static const size_t caps[4] = {0, 0, 40, 300};
  size_t cap = (ctl & 3) == 1 ? 1 + (ctl >> 4) : caps[ctl & 3];
  int compare = (ctl & 4) != 0;
  size_t pad = compare && (ctl & 8) ? PAD_BASE - 16 * (ctl >> 4) : 0;

  /* An exact-size copy: the reader must not read past len. */
  size_t len = pad + size;
  char *text = malloc(len ? len : 1);
  FUZZ_CHECK(text != NULL, "out of memory");
  memset(text, '\n', pad);
  if (size > 0)
    memcpy(text + pad, data, size);

  char path[64] = "fuzz";
  if (compare)
    file_of(text, len, path, sizeof path);

  char *err = NULL, *ferr = NULL;
  struct assay_dataset *mem = NULL, *file = NULL;
  int rc = assay_dataset_open_mem(&mem, path, text, len, format, cap, &err);
  int frc = compare ? assay_dataset_open(&file, path, format, cap, &ferr) : rc;
  if (rc != 0 || frc != 0) {
    /* Refused at open by what it begins with (compressed, UTF-16, a bad
     * CSV header, a .json file that is no array): from memory and from
     * the file alike, with a message and no dataset. */
    FUZZ_CHECK(rc < 0 && mem == NULL && err != NULL,
               "refused at open from the file (%d '%s'), not from memory "
               "(%d '%s')",
               frc, ferr ? ferr : "", rc, err ? err : "");
    FUZZ_CHECK(!compare || (frc == rc && file == NULL && ferr != NULL &&
                            strcmp(ferr, err) == 0),
               "refused at open from memory with %d '%s', from the file "
               "with %d '%s'",
               rc, err, frc, ferr ? ferr : "");
    free(err);
    free(ferr);
    free(text);
    return 0;
  }

  /* Every item takes at least one byte of the input. */
  int64_t count = 0, bound = (int64_t)len + 2;
  for (;;) {
    struct outcome a, b;
    next_checked(mem, path, count, &a);
    if (compare) {
      next_checked(file, path, count, &b);
      same_outcome(&a, &b, count);
      outcome_release(&b);
    }
    if (a.rc != 1) {
      /* The end, or a fatal error, stays put. */
      struct outcome again;
      next_checked(mem, path, count, &again);
      FUZZ_CHECK(again.rc == a.rc, "after %d, a later call returned %d", a.rc,
                 again.rc);
      if (a.rc < 0)
        FUZZ_CHECK(strcmp(a.errmsg, again.errmsg) == 0,
                   "a fatal error changed from '%s' to '%s'", a.errmsg,
                   again.errmsg);
      outcome_release(&again);
      outcome_release(&a);
      break;
    }
    outcome_release(&a);
    count++;
    FUZZ_CHECK(count <= bound, "more than %lld items from %zu bytes",
               (long long)bound, len);
  }
  assay_dataset_free(mem);
  assay_dataset_free(file);
  free(text);
  return 0;
}

int assay__fuzz_dataset_jsonl(const uint8_t *data, size_t size) {
  return fuzz_dataset(ASSAY_DATASET_JSONL, data, size);
}

int assay__fuzz_dataset_json(const uint8_t *data, size_t size) {
  return fuzz_dataset(ASSAY_DATASET_JSON, data, size);
}

int assay__fuzz_dataset_csv(const uint8_t *data, size_t size) {
  return fuzz_dataset(ASSAY_DATASET_CSV, data, size);
}
