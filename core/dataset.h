/*
 * Dataset readers: JSONL (default), a JSON array (.json), CSV (.csv, header
 * row) and standard input ("-", JSONL). Items stream one at a time, so memory
 * is bounded by what the caller holds, not by the file. Not thread-safe: one
 * thread uses a dataset at a time.
 */
#ifndef ASSAY_DATASET_H
#define ASSAY_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

enum assay_dataset_format {
  ASSAY_DATASET_AUTO = 0, /* from the extension: .json, .csv, else JSONL */
  ASSAY_DATASET_JSONL,
  ASSAY_DATASET_JSON,
  ASSAY_DATASET_CSV
};

#define ASSAY_DEFAULT_MAX_ITEM_BYTES (16u << 20)

struct assay_dataset;

/* One item, filled by assay_dataset_next(). Exactly one of json, error and
 * raw is set. The caller owns them and frees them (cJSON_Delete, free). */
struct assay_dataset_item {
  cJSON *json;  /* the item, always a JSON object */
  char *error;  /* a malformed item: "qa.jsonl:12: invalid JSON: ..." */
  char *raw;    /* after assay_dataset_defer(): the item's text, unparsed */
  size_t raw_len; /* ... its length (raw[raw_len] is a '\0') */
  size_t line;  /* 1-based line where the item starts (CSV: the record's line) */
  int64_t index; /* 0-based position among the file's items, malformed
                    ones included: the record's "index" */
  cJSON *id;     /* a malformed item's id, when the reader could still read
                    it (a CSV row's "id" column; a JSON item whose first
                    member is a whole "id"), else NULL: a string or a
                    finite number */
};

/* Frees what item holds (json, error, raw, id) and sets them to NULL. */
void assay_dataset_item_clear(struct assay_dataset_item *item);

/* How many first bytes assay_dataset_sniff needs to tell every kind. */
#define ASSAY_DATASET_SNIFF_BYTES 6

/*
 * Whether the first bytes p[0..n) of a file are no UTF-8 text of ours: a
 * gzip, zstd, xz or bzip2 stream, a ZIP archive, a Parquet file, UTF-16.
 * Returns 0, or ASSAY_EBAD_INPUT with *errmsg (owned) saying what the file
 * named name (NULL: standard input) is and what to do. With csv, magics
 * that are plain text ("BZh", "PAR1") are not taken: a header may begin so.
 * Datasets and records files are checked on open; merge checks its shards.
 */
int assay_dataset_sniff(const char *name, const char *p, size_t n, int csv,
                        char **errmsg);

/*
 * Opens path ("-" for standard input) with format, capping each item at
 * max_item_bytes (0: the default, 16 MiB). Returns 0, or a negative code
 * with *errmsg set (owned) naming the file and the reason; when the file
 * cannot be opened, errno says why (for callers that name it otherwise).
 * A file that is not text (assay_dataset_sniff) is ASSAY_EBAD_INPUT; a
 * CSV header that cannot be used and a .json file that is empty or no
 * array are ASSAY_EINVAL (errno 0): what the input begins with is read
 * here, so that a run refuses it before writing anything.
 */
int assay_dataset_open(struct assay_dataset **ds, const char *path, int format,
                       size_t max_item_bytes, char **errmsg);

/* Same over a memory buffer (borrowed until assay_dataset_free); name is
 * used in messages and to pick the format when format is AUTO. */
int assay_dataset_open_mem(struct assay_dataset **ds, const char *name,
                           const char *data, size_t len, int format,
                           size_t max_item_bytes, char **errmsg);

/*
 * Reads the next item. Returns 1 and fills *item; 0 at the end; a negative
 * code with *errmsg set when the source cannot be read on (an I/O error, or
 * a JSON file that is not an array): items read before stay valid.
 * A malformed item is not an error of the reader: it comes back as an item
 * with error set (bad JSON, not an object, over the size cap, invalid
 * UTF-8), and reading goes on with the next one.
 */
int assay_dataset_next(struct assay_dataset *ds, struct assay_dataset_item *item,
                       char **errmsg);

/* Which items a run takes; zero for all. Filters keep each item's index. */
struct assay_selection {
  int64_t offset;                /* skip items whose index is below this */
  int shard_index, shard_count;  /* keep index % count == index (count 0: all) */
  const char *const *ids;        /* keep only these ids (NULL-terminated; a
                                    number id matches its JSON text), or NULL */
  int shuffle;                   /* hand items out in a pseudo-random order */
  uint64_t seed;                 /* ... fixed by this seed */
};

/*
 * Applies a selection (copied) before the first assay_dataset_next().
 * --shuffle reads the file once per 32 MiB of it, each pass keeping one
 * hash bucket of items, so memory stays bounded by a pass, not the file;
 * it needs a file or memory, not standard input. Returns 0 or a negative
 * code with *errmsg.
 */
int assay_dataset_select(struct assay_dataset *ds,
                         const struct assay_selection *sel, char **errmsg);

/* Reads the next item ignoring any selection (used by the selection). */
int assay__dataset_raw_next(struct assay_dataset *ds,
                            struct assay_dataset_item *item, char **errmsg);

/* The number of items in a JSONL file, counted cheaply without parsing
 * (for progress), or -1 when unknown (stdin, other formats). */
int64_t assay_dataset_count(const char *path, int format);

/*
 * Makes a JSONL dataset hand out its items unparsed (raw), so that the
 * caller may parse them elsewhere, on another thread, with
 * assay_dataset_parse. Items over the size cap still come as errors. Must
 * come before the first assay_dataset_next (and after any selection).
 * Returns 1, or 0 when the dataset cannot defer (another format, or a
 * selection by id or a shuffle, which read the items) and goes on as before.
 */
int assay_dataset_defer(struct assay_dataset *ds);

/*
 * Parses the text of an item read from the dataset named name, starting on
 * line, into item->json, or item->error as assay_dataset_next would give
 * it (invalid UTF-8, invalid JSON, not an object). Thread-safe.
 */
void assay_dataset_parse(const char *name, const char *text, size_t len,
                         size_t line, struct assay_dataset_item *item);

/*
 * After a selection handed out its last item: returns 1 with *nitems the
 * items in the file and *unseen the --ids no item has (NULL-terminated,
 * sorted, each once; the array is the caller's to free, the strings are
 * borrowed). Returns 0 while the file was not read to its end (a --limit,
 * an interrupt, a read error) or without a selection.
 */
int assay_dataset_selection_end(const struct assay_dataset *ds, int64_t *nitems,
                                const char ***unseen);

/* The name given at open ("qa.jsonl", "<stdin>"). Borrowed. */
const char *assay_dataset_name(const struct assay_dataset *ds);

void assay_dataset_free(struct assay_dataset *ds);

#endif
