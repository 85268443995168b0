/*
 * assay merge: joins the records files of the shards of one run (`assay run
 * --shard I/N`) into one file in dataset order, with a summary recomputed
 * from the records. Each shard is already sorted by (index, trial), so a
 * k-way merge over a heap of shards streams the records with memory bounded
 * by the number of shards, not the number of records. A shard run with
 * --shuffle (its summary says so) is in the shuffle's order: it is read
 * once to sort its records' keys and file offsets in memory, then read in
 * that order. Lines are copied byte for byte. Nothing is silently dropped:
 * duplicates, missing records and shards that did not complete are
 * reported and make the exit status 1.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "dataset.h"
#include "error.h"
#include "files.h"
#include "summary.h"
#include "util.h"

#define EXIT_PROBLEMS 1

/* Problems of each kind listed one by one before only counting them. */
#define MAX_LISTED 20
/* A record line larger than this is refused (--max-record-bytes). */
#define DEFAULT_MAX_RECORD_BYTES ((size_t)256 << 20)
/* A summary file larger than this is not a summary written by assay. */
#define MAX_SUMMARY_BYTES ((size_t)64 << 20)
/* Bytes read from a shard at a time. */
#define BLOCK_BYTES 16384
/* Indexes and trials must be integers a double holds exactly. */
#define MAX_KEY 9007199254740992.0 /* 2^53 */
/* Shard counts above this are not checked for missing shards. */
#define MAX_SHARDS (1 << 20)

static const char merge_help[] =
    "usage: assay merge SHARD.jsonl... -o ALL.jsonl [--summary FILE]\n"
    "                   [--overwrite] [-q]\n"
    "\n"
    "Merges the records files of the shards of one run (assay run --shard\n"
    "I/N) into one file in dataset order, by (index, trial), and writes a\n"
    "summary recomputed from the merged records. Each shard must be sorted\n"
    "by (index, trial), as assay run writes it; one run with --shuffle is\n"
    "sorted in memory when its summary says so. A shard's summary, read\n"
    "from beside it (SHARD.summary.json), must have the fingerprint of the\n"
    "others.\n"
    "\n"
    "  -o, --output FILE       the merged records (- for standard output)\n"
    "  --summary FILE          the merged summary (default: beside the\n"
    "                          output, OUTPUT minus .jsonl + .summary.json;\n"
    "                          - for standard output)\n"
    "  --overwrite             replace an existing output file\n"
    "  --max-record-bytes N    largest record line accepted (default\n"
    "                          268435456)\n"
    "  -q, --quiet             print no summary table\n"
    "\n"
    "Duplicates (one (index, trial) twice: the first is kept) and missing\n"
    "records (checked from index 0 to the largest index when every shard's\n"
    "summary says it completed) are listed, up to 20 of each.\n"
    "\n"
    "exit status: 0 merged, 1 merged but duplicates, missing records or\n"
    "unfinished shards were found, 2 usage or input error (nothing written).\n";

struct shard {
  const char *path;
  int pos; /* position on the command line: breaks ties, first one wins */
  int fd;
  char *block; /* bytes read but not yet consumed */
  size_t block_len, block_off;
  int eof;
  char *line; /* the current record line, with its '\n' */
  size_t len, cap;
  long long lineno;
  double index, trial; /* key of the current record */
  cJSON *record;       /* the current record, parsed */
  long long records;   /* records read so far */
  off_t consumed;      /* bytes of the file taken into lines so far */
  off_t line_off;      /* where the current line starts */
  /* A shard sorted in memory (see shard_sort), read in this order: */
  struct rec_key *order;
  size_t norder, next;
  char *summary_path;
  cJSON *summary; /* the shard's summary, or NULL when it has none */
};

/* A record of a sorted shard: its key and where its line is. */
struct rec_key {
  double index, trial;
  off_t off;
  size_t len;
  long long lineno;
};

struct merge {
  const char *output;
  const char *summary_path;
  int overwrite, quiet;
  size_t max_record_bytes;
  struct shard *shards;
  int nshards;
  struct shard **heap;
  int nheap;
  /* What was found, for the report and the exit status. */
  long long written, duplicates, torn;
  double missing;
  long long listed_dups;
  double listed_missing;
  int check_gaps; /* every shard's run completed and its trials are known */
  double trials;
  double first_index; /* the run's --offset: records start there */
  int unfinished;     /* shards whose summary says they did not complete */
  int missing_shards; /* shards I/N of which no file was given */
};

/* ---- reading shards ------------------------------------------------------ */

/*
 * Reads a shard's summary when there is one beside it. Returns 0 with
 * *out NULL when there is none, ASSAY_EIO/ECONFIG with errmsg otherwise.
 */
static int summary_read(const char *path, cJSON **out, char **errmsg) {
  char *err = NULL;
  cJSON *j = assay__read_json_file(path, MAX_SUMMARY_BYTES, &err);
  *out = NULL;
  if (j == NULL && errno == ENOENT) {
    free(err);
    return 0;
  }
  int rc = 0;
  if (j == NULL && errno != 0)
    rc = assay__fail(errmsg, ASSAY_EIO, "cannot read summary '%s': %s", path,
                     err);
  else if (!cJSON_IsObject(j))
    rc = assay__fail(errmsg, ASSAY_ECONFIG,
                     "summary '%s' is not a summary written by assay (%s); "
                     "move it away to merge without it",
                     path, err ? err : "not a JSON object");
  else
    *out = j;
  if (rc != 0)
    cJSON_Delete(j);
  free(err);
  return rc;
}

/* A record's "index" or "trial": an integer from 0 to 2^53. */
static int key_of(const cJSON *record, const char *name, double *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(record, name);
  if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) ||
      v->valuedouble > MAX_KEY || floor(v->valuedouble) != v->valuedouble)
    return -1;
  *out = v->valuedouble;
  return 0;
}

/* Appends n bytes to the shard's line, within the record size cap. */
static int line_append(struct merge *m, struct shard *s, const char *p,
                       size_t n) {
  if (n > m->max_record_bytes + 1 - s->len)
    return -1;
  if (s->len + n + 1 > s->cap) {
    size_t cap = s->cap ? s->cap : 4096;
    while (cap < s->len + n + 1)
      cap *= 2;
    s->line = assay__xrealloc(s->line, cap);
    s->cap = cap;
  }
  memcpy(s->line + s->len, p, n);
  s->len += n;
  s->line[s->len] = '\0';
  return 0;
}

static int shard_record(struct shard *s, int ordered, char **errmsg);

/* The next record of a shard sorted in memory: its line read again. */
static int shard_next_sorted(struct merge *m, struct shard *s,
                             char **errmsg) {
  cJSON_Delete(s->record);
  s->record = NULL;
  s->len = 0;
  if (s->next == s->norder)
    return 0;
  const struct rec_key *k = &s->order[s->next++];
  if (k->len + 1 > s->cap) {
    s->line = assay__xrealloc(s->line, k->len + 1);
    s->cap = k->len + 1;
  }
  size_t got = 0;
  while (got < k->len) {
    ssize_t n = pread(s->fd, s->line + got, k->len - got, k->off + (off_t)got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return assay__fail(errmsg, ASSAY_EIO,
                         "cannot read '%s' again: %s", s->path,
                         n < 0 ? strerror(errno) : "it became shorter");
    got += (size_t)n;
  }
  s->len = k->len;
  s->line[s->len] = '\0';
  s->lineno = k->lineno;
  return shard_record(s, 0, errmsg);
}

/*
 * Reads the shard's next record into s->line/record/index/trial. Returns 1
 * for a record, 0 at the end of the shard, or ASSAY_E* with errmsg for a
 * line that is not a record. An incomplete last line (no '\n': its run was
 * cut off mid-write) is not a record: it is reported and counted as torn.
 */
static int shard_next(struct merge *m, struct shard *s, char **errmsg) {
  if (s->order != NULL)
    return shard_next_sorted(m, s, errmsg);
  cJSON_Delete(s->record);
  s->record = NULL;
  s->len = 0;
  s->line_off = s->consumed;
  int complete = 0;
  while (!complete) {
    if (s->block_off == s->block_len) {
      if (s->eof)
        break;
      ssize_t n = read(s->fd, s->block, BLOCK_BYTES);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return assay__fail(errmsg, ASSAY_EIO, "cannot read '%s': %s", s->path,
                           strerror(errno));
      if (n == 0) {
        s->eof = 1;
        break;
      }
      s->block_len = (size_t)n;
      s->block_off = 0;
    }
    const char *p = s->block + s->block_off;
    size_t avail = s->block_len - s->block_off;
    const char *nl = memchr(p, '\n', avail);
    size_t take = nl ? (size_t)(nl - p) + 1 : avail;
    if (line_append(m, s, p, take) != 0)
      return assay__fail(errmsg, ASSAY_ECONFIG,
                         "%s:%lld: line longer than %zu bytes; if it is a "
                         "record, raise --max-record-bytes",
                         s->path, s->lineno + 1, m->max_record_bytes);
    s->block_off += take;
    s->consumed += (off_t)take;
    complete = nl != NULL;
  }
  if (s->len == 0)
    return 0;
  s->lineno++;
  if (!complete) {
    fprintf(stderr,
            "assay: warning: %s:%lld: incomplete last line (no newline: its "
            "run was cut off) is not a record and was skipped; finish the "
            "shard with 'assay run --resume' and merge again\n",
            s->path, s->lineno);
    m->torn++;
    s->len = 0;
    return 0;
  }
  return shard_record(s, 1, errmsg);
}

/* Checks the line in s->line is a record and takes its key; with ordered,
 * it must not come before the shard's previous record. */
static int shard_record(struct shard *s, int ordered, char **errmsg) {
  size_t bad;
  if (memchr(s->line, '\0', s->len) != NULL ||
      !assay__utf8_valid(s->line, s->len, &bad))
    return assay__fail(errmsg, ASSAY_ECONFIG,
                       "%s:%lld: not a record (not UTF-8 text); give the "
                       "records files written by 'assay run'",
                       s->path, s->lineno);
  const char *end = NULL;
  cJSON *r = cJSON_ParseWithLengthOpts(s->line, s->len, &end, 0);
  int trailing = 0;
  for (const char *q = end; r != NULL && q < s->line + s->len; q++)
    if (*q != '\n' && *q != '\r' && *q != ' ' && *q != '\t')
      trailing = 1;
  if (!cJSON_IsObject(r) || trailing) {
    cJSON_Delete(r);
    return assay__fail(errmsg, ASSAY_ECONFIG,
                       "%s:%lld: not a record (%s); give the records files "
                       "written by 'assay run'",
                       s->path, s->lineno,
                       r == NULL || trailing ? "not one JSON value"
                                             : "not a JSON object");
  }
  double index, trial;
  if (key_of(r, "index", &index) != 0 || key_of(r, "trial", &trial) != 0) {
    cJSON_Delete(r);
    return assay__fail(errmsg, ASSAY_ECONFIG,
                       "%s:%lld: not a record (no whole number 'index' and "
                       "'trial'); give the records files written by 'assay "
                       "run'",
                       s->path, s->lineno);
  }
  /* Equal keys are let through: the merge reports them as duplicates. */
  if (ordered && s->records > 0 &&
      (index < s->index || (index == s->index && trial < s->trial))) {
    cJSON_Delete(r);
    return assay__fail(errmsg, ASSAY_ECONFIG,
                       "%s:%lld: record index %.0f trial %.0f comes after "
                       "index %.0f trial %.0f: a shard must be in dataset "
                       "order, as 'assay run' writes it (a run with "
                       "--shuffle is sorted when its summary is beside it); "
                       "sort it by (index, trial) first",
                       s->path, s->lineno, index, trial, s->index, s->trial);
  }
  s->record = r;
  s->index = index;
  s->trial = trial;
  s->records++;
  return 1;
}

static int key_cmp(const void *pa, const void *pb) {
  const struct rec_key *a = pa, *b = pb;
  if (a->index != b->index)
    return a->index < b->index ? -1 : 1;
  if (a->trial != b->trial)
    return a->trial < b->trial ? -1 : 1;
  return (a->off > b->off) - (a->off < b->off); /* the file's order */
}

/*
 * A shard in the order its run took the items (--shuffle): one pass reads
 * and checks every record and keeps its key and place (40 bytes each), then
 * the keys are sorted and shard_next reads the lines again in that order.
 */
static int shard_sort(struct merge *m, struct shard *s, char **errmsg) {
  struct rec_key *order = NULL;
  size_t n = 0, cap = 0;
  int rc;
  while ((rc = shard_next(m, s, errmsg)) > 0) {
    if (n == cap) {
      cap = cap ? cap * 2 : 1024;
      order = assay__xrealloc(order, cap * sizeof *order);
    }
    order[n++] = (struct rec_key){.index = s->index,
                                  .trial = s->trial,
                                  .off = s->line_off,
                                  .len = s->len,
                                  .lineno = s->lineno};
    s->records = 0; /* no order check while indexing */
  }
  cJSON_Delete(s->record);
  s->record = NULL;
  s->records = 0;
  if (rc < 0 || n == 0) {
    free(order);
    return rc;
  }
  qsort(order, n, sizeof *order, key_cmp);
  s->order = order;
  s->norder = n;
  return 0;
}

/* ---- the heap of shards, keyed by (index, trial, command-line position) -- */

static int shard_less(const struct shard *a, const struct shard *b) {
  if (a->index != b->index)
    return a->index < b->index;
  if (a->trial != b->trial)
    return a->trial < b->trial;
  return a->pos < b->pos;
}

static void heap_swap(struct merge *m, int i, int j) {
  struct shard *t = m->heap[i];
  m->heap[i] = m->heap[j];
  m->heap[j] = t;
}

static void heap_up(struct merge *m, int i) {
  while (i > 0 && shard_less(m->heap[i], m->heap[(i - 1) / 2])) {
    heap_swap(m, i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
}

static void heap_down(struct merge *m, int i) {
  for (;;) {
    int l = 2 * i + 1, r = l + 1, min = i;
    if (l < m->nheap && shard_less(m->heap[l], m->heap[min]))
      min = l;
    if (r < m->nheap && shard_less(m->heap[r], m->heap[min]))
      min = r;
    if (min == i)
      return;
    heap_swap(m, i, min);
    i = min;
  }
}

static void heap_push(struct merge *m, struct shard *s) {
  m->heap[m->nheap++] = s;
  heap_up(m, m->nheap - 1);
}

static void heap_pop(struct merge *m) {
  m->heap[0] = m->heap[--m->nheap];
  heap_down(m, 0);
}

/* ---- problems ------------------------------------------------------------ */

/*
 * Records missing between the last one written (or the start) and the
 * record (index, trial) about to be written, with trials per item known.
 */
static void report_missing(struct merge *m, double from_index,
                           double from_trial, double index, double trial) {
  double n;
  if (index == from_index)
    n = trial - from_trial;
  else
    n = (m->trials - from_trial) + (index - from_index - 1) * m->trials + trial;
  if (n <= 0)
    return;
  double i = from_index, t = from_trial;
  while (m->listed_missing < MAX_LISTED &&
         (i < index || (i == index && t < trial))) {
    fprintf(stderr, "assay: missing: index %.0f trial %.0f\n", i, t);
    m->listed_missing++;
    if (++t >= m->trials) {
      t = 0;
      i++;
    }
  }
  m->missing += n;
}

static void report_duplicate(struct merge *m, const struct shard *dup,
                             const struct shard *kept, long long kept_line) {
  m->duplicates++;
  if (m->listed_dups++ >= MAX_LISTED)
    return;
  fprintf(stderr,
          "assay: duplicate: index %.0f trial %.0f at %s:%lld (kept the first, "
          "%s:%lld)\n",
          dup->index, dup->trial, dup->path, dup->lineno, kept->path,
          kept_line);
}

/* ---- the merged summary -------------------------------------------------- */

/* Adds the numbers of src into dst, member by member (objects recursively). */
static void sum_numbers(cJSON *dst, const cJSON *src, int depth) {
  const cJSON *v;
  cJSON_ArrayForEach(v, src) {
    if (v->string == NULL)
      continue;
    cJSON *d = cJSON_GetObjectItemCaseSensitive(dst, v->string);
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
      if (d == NULL)
        cJSON_AddNumberToObject(dst, v->string, v->valuedouble);
      else if (cJSON_IsNumber(d))
        cJSON_SetNumberValue(d, d->valuedouble + v->valuedouble);
    } else if (cJSON_IsObject(v) && depth < 4) {
      if (d == NULL)
        d = cJSON_AddObjectToObject(dst, v->string);
      if (cJSON_IsObject(d))
        sum_numbers(d, v, depth + 1);
    }
  }
}

/*
 * The shards' engine counters that add up across processes (calls,
 * retries, faults, ...); maxima and settings such as max_running or threads
 * describe one process and are left out.
 */
static cJSON *engine_json(const struct merge *m) {
  static const char *const additive[] = {
      "calls",    "chained",          "quick",         "finished",
      "retries",  "retries_by_cause", "timeouts",      "late_completions",
      "plugin_faults", "abandoned"};
  cJSON *e = NULL;
  for (int i = 0; i < m->nshards; i++) {
    const cJSON *se =
        cJSON_GetObjectItemCaseSensitive(m->shards[i].summary, "engine");
    if (!cJSON_IsObject(se))
      continue;
    cJSON *part = cJSON_CreateObject();
    for (size_t k = 0; k < assay__array_size(additive); k++) {
      const cJSON *v = cJSON_GetObjectItemCaseSensitive(se, additive[k]);
      if (v != NULL)
        cJSON_AddItemToObject(part, additive[k], cJSON_Duplicate(v, 1));
    }
    if (e == NULL)
      e = cJSON_CreateObject();
    sum_numbers(e, part, 0);
    cJSON_Delete(part);
  }
  return e ? e : cJSON_CreateNull();
}

static const cJSON *first_summary_member(const struct merge *m,
                                         const char *name) {
  for (int i = 0; i < m->nshards; i++)
    if (m->shards[i].summary != NULL)
      return cJSON_GetObjectItemCaseSensitive(m->shards[i].summary, name);
  return NULL;
}

static cJSON *copy_or_null(const cJSON *v) {
  return v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull();
}

/*
 * Whether the records beside a summary are all the run meant to write: a
 * run that completed, or a merge (of merges) of such runs only. Merged
 * files can then be merged again, say the halves of a large run.
 */
static int summary_complete(const cJSON *summary) {
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(summary, "status");
  if (!cJSON_IsString(st))
    return 0;
  if (strcmp(st->valuestring, "completed") == 0)
    return 1;
  if (strcmp(st->valuestring, "merged") != 0)
    return 0;
  const cJSON *shards = cJSON_GetObjectItemCaseSensitive(summary, "shards");
  const cJSON *e;
  int n = 0;
  cJSON_ArrayForEach(e, shards) {
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "complete")))
      return 0;
    n++;
  }
  return n > 0;
}

/*
 * The shards ("I/N") a file holds, from its summary: its own config.shard,
 * or for a merged file those listed in its "shards". Returns an owned array
 * of strings, empty when they are not known.
 */
static cJSON *shard_labels(const cJSON *summary) {
  cJSON *out = cJSON_CreateArray();
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(summary, "status");
  if (cJSON_IsString(st) && strcmp(st->valuestring, "merged") == 0) {
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(summary, "shards")) {
      const cJSON *l, *sh = cJSON_GetObjectItemCaseSensitive(e, "shard");
      if (!cJSON_IsArray(sh)) {
        cJSON_Delete(out);
        return cJSON_CreateArray();
      }
      cJSON_ArrayForEach(l, sh) {
        if (cJSON_IsString(l))
          cJSON_AddItemToArray(out, cJSON_CreateString(l->valuestring));
      }
    }
    return out;
  }
  const cJSON *sh = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(summary, "config"), "shard");
  if (cJSON_IsString(sh))
    cJSON_AddItemToArray(out, cJSON_CreateString(sh->valuestring));
  return out;
}

static cJSON *run_json(const struct merge *m) {
  cJSON *run = cJSON_CreateObject();
  const cJSON *name = first_summary_member(m, "name");
  cJSON_AddItemToObject(run, "name",
                        copy_or_null(cJSON_IsString(name) ? name : NULL));
  /* The earliest start of a shard (ISO 8601 UTC strings sort as times). */
  const char *started = NULL;
  for (int i = 0; i < m->nshards; i++) {
    const cJSON *st =
        cJSON_GetObjectItemCaseSensitive(m->shards[i].summary, "started");
    if (cJSON_IsString(st) &&
        (started == NULL || strcmp(st->valuestring, started) < 0))
      started = st->valuestring;
  }
  if (started)
    cJSON_AddStringToObject(run, "started", started);
  cJSON_AddStringToObject(run, "status", "merged");
  cJSON_AddItemToObject(run, "config",
                        copy_or_null(first_summary_member(m, "config")));
  cJSON_AddItemToObject(run, "plugins",
                        copy_or_null(first_summary_member(m, "plugins")));
  cJSON_AddItemToObject(run, "engine", engine_json(m));
  cJSON_AddStringToObject(run, "assay_version", PACKAGE_VERSION);
  const cJSON *fp = first_summary_member(m, "fingerprint");
  if (cJSON_IsString(fp))
    cJSON_AddStringToObject(run, "fingerprint", fp->valuestring);
  cJSON *shards = cJSON_AddArrayToObject(run, "shards");
  for (int i = 0; i < m->nshards; i++) {
    const struct shard *s = &m->shards[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", s->path);
    cJSON_AddNumberToObject(o, "records", (double)s->records);
    const cJSON *sfp =
        cJSON_GetObjectItemCaseSensitive(s->summary, "fingerprint");
    cJSON_AddItemToObject(o, "fingerprint",
                          copy_or_null(cJSON_IsString(sfp) ? sfp : NULL));
    const cJSON *sst = cJSON_GetObjectItemCaseSensitive(s->summary, "status");
    cJSON_AddItemToObject(o, "status",
                          copy_or_null(cJSON_IsString(sst) ? sst : NULL));
    cJSON_AddItemToObject(o, "shard", shard_labels(s->summary));
    cJSON_AddBoolToObject(o, "complete", summary_complete(s->summary));
    cJSON_AddItemToArray(shards, o);
  }
  cJSON_AddNumberToObject(run, "duplicates", (double)m->duplicates);
  cJSON_AddNumberToObject(run, "missing_shards", m->missing_shards);
  if (m->check_gaps)
    cJSON_AddNumberToObject(run, "missing", m->missing);
  else
    cJSON_AddNullToObject(run, "missing");
  return run;
}


/* ---- checks before merging ----------------------------------------------- */

/*
 * Reads the shards' summaries: refuses shards of different runs (another
 * fingerprint) or of a newer record format, and decides whether gaps can be
 * checked (every shard completed, trials known).
 */
static int check_summaries(struct merge *m, char **errmsg) {
  const struct shard *ref = NULL; /* the first shard with a fingerprint */
  int all_completed = 1;
  for (int i = 0; i < m->nshards; i++) {
    struct shard *s = &m->shards[i];
    s->summary_path = assay__summary_path(s->path);
    int rc = summary_read(s->summary_path, &s->summary, errmsg);
    if (rc != 0)
      return rc;
    if (s->summary == NULL) {
      if (!m->quiet)
        fprintf(stderr,
                "assay: note: '%s' has no summary beside it ('%s'): missing "
                "records cannot be checked\n",
                s->path, s->summary_path);
      all_completed = 0;
      continue;
    }
    const cJSON *rfv =
        cJSON_GetObjectItemCaseSensitive(s->summary, "record_format_version");
    if (cJSON_IsNumber(rfv) && rfv->valuedouble > ASSAY_RECORD_FORMAT_VERSION)
      return assay__fail(errmsg, ASSAY_ECONFIG,
                         "'%s' holds records of format version %.0f (its "
                         "summary '%s'); this assay reads version %d: merge "
                         "with a newer assay",
                         s->path, rfv->valuedouble, s->summary_path,
                         ASSAY_RECORD_FORMAT_VERSION);
    const cJSON *fp =
        cJSON_GetObjectItemCaseSensitive(s->summary, "fingerprint");
    if (cJSON_IsString(fp)) {
      if (ref == NULL) {
        ref = s;
      } else {
        const cJSON *rfp =
            cJSON_GetObjectItemCaseSensitive(ref->summary, "fingerprint");
        if (strcmp(rfp->valuestring, fp->valuestring) != 0)
          return assay__fail(
              errmsg, ASSAY_ECONFIG,
              "cannot merge '%s' with '%s': their summaries ('%s' and '%s') "
              "have different fingerprints (%s and %s), so they are not "
              "shards of one run (another task, metrics, options or "
              "trials); merge only the shards of one run",
              ref->path, s->path, ref->summary_path, s->summary_path,
              rfp->valuestring, fp->valuestring);
      }
    }
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(s->summary, "status");
    if (!summary_complete(s->summary)) {
      fprintf(stderr,
              "assay: shard '%s' did not complete (status '%s' in '%s'%s): "
              "finish it with 'assay run --resume' and merge again\n",
              s->path, cJSON_IsString(st) ? st->valuestring : "unknown",
              s->summary_path,
              cJSON_IsString(st) && strcmp(st->valuestring, "merged") == 0
                  ? ", with shards that did not complete"
                  : "");
      m->unfinished++;
      all_completed = 0;
    }
  }
  const cJSON *config =
      cJSON_GetObjectItemCaseSensitive(ref ? ref->summary : NULL, "config");
  const cJSON *trials = cJSON_GetObjectItemCaseSensitive(config, "trials");
  const cJSON *offset = cJSON_GetObjectItemCaseSensitive(config, "offset");
  const cJSON *limit = cJSON_GetObjectItemCaseSensitive(config, "limit");
  const char *subset = NULL;
  /* Runs that chose a subset of the items leave holes on purpose; a
   * --shuffle alone runs every item. */
  if (cJSON_GetObjectItemCaseSensitive(config, "ids") != NULL)
    subset = "--ids";
  else if (cJSON_IsNumber(limit) && limit->valuedouble > 0)
    subset = "--limit";
  if (!all_completed)
    return 0;
  if (subset != NULL) {
    if (!m->quiet)
      fprintf(stderr,
              "assay: note: the shards ran with %s: missing records are not "
              "checked\n",
              subset);
  } else if (cJSON_IsNumber(trials) && trials->valuedouble >= 1 &&
             trials->valuedouble <= MAX_KEY) {
    m->check_gaps = 1;
    m->trials = floor(trials->valuedouble);
    if (cJSON_IsNumber(offset) && offset->valuedouble > 0 &&
        offset->valuedouble <= MAX_KEY)
      m->first_index = floor(offset->valuedouble);
  } else if (!m->quiet) {
    fprintf(stderr, "assay: note: the shards' summaries do not give the "
                    "number of trials: missing records are not checked\n");
  }
  return 0;
}

/*
 * When every shard's summary names its shard ("config.shard": "I/N", all
 * with one N), a shard no file holds is reported: its items past the last
 * index merged could not be found missing otherwise.
 */
static void check_shard_set(struct merge *m) {
  int count = -1;
  unsigned char *seen = NULL;
  for (int i = 0; i < m->nshards; i++) {
    cJSON *labels = shard_labels(m->shards[i].summary);
    const cJSON *l;
    int ok = cJSON_GetArraySize(labels) > 0;
    cJSON_ArrayForEach(l, labels) {
      int idx, n, used = 0;
      if (!ok || sscanf(l->valuestring, "%d/%d%n", &idx, &n, &used) != 2 ||
          l->valuestring[used] != '\0' || n < 1 || n > MAX_SHARDS || idx < 0 ||
          idx >= n || (count >= 0 && n != count)) {
        ok = 0;
        break;
      }
      if (seen == NULL) {
        count = n;
        seen = assay__xcalloc((size_t)n, 1);
      }
      seen[idx] = 1;
    }
    cJSON_Delete(labels);
    if (!ok) {
      free(seen);
      return;
    }
  }
  for (int i = 0; i < count; i++) {
    if (seen[i])
      continue;
    if (m->missing_shards++ < MAX_LISTED)
      fprintf(stderr,
              "assay: missing shard: none of the files is shard %d/%d\n", i,
              count);
  }
  if (m->missing_shards > MAX_LISTED)
    fprintf(stderr, "assay: ... and %d more missing shards\n",
            m->missing_shards - MAX_LISTED);
  free(seen);
}

/* Refuses a merged summary that would replace the merged records, a shard
 * or a shard's summary (even with --overwrite). After check_summaries. */
static int check_summary_path(const struct merge *m, const char *path,
                              int to_stdout, char **errmsg) {
  if (strcmp(path, "-") == 0)
    return to_stdout ? assay__fail(errmsg, ASSAY_EINVAL,
                                   "-o - and --summary - would both write "
                                   "to standard output: give one of them a "
                                   "file")
                     : 0;
  if (!to_stdout && assay__same_file(path, m->output))
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "--summary '%s' is the same file as --output '%s': "
                       "give each its own file",
                       path, m->output);
  for (int i = 0; i < m->nshards; i++) {
    const struct shard *s = &m->shards[i];
    int shard = assay__same_file(path, s->path);
    if (shard ||
        (s->summary_path != NULL && assay__same_file(path, s->summary_path)))
      return assay__fail(errmsg, ASSAY_EINVAL,
                         "--summary '%s' is %s '%s': write the merged "
                         "summary to another file",
                         path, shard ? "the shard" : "the summary of the shard",
                         s->path);
  }
  return 0;
}

/* Refuses to write over one of the shards (even with --overwrite). */
static int check_output(const struct merge *m, char **errmsg) {
  for (int i = 0; i < m->nshards; i++) {
    if (assay__same_file(m->output, m->shards[i].path))
      return assay__fail(errmsg, ASSAY_EINVAL,
                         "output '%s' is the shard '%s': write the merged "
                         "records to another file",
                         m->output, m->shards[i].path);
  }
  struct stat out;
  if (stat(m->output, &out) != 0 || assay__is_stream(m->output))
    return 0;
  char *dir = assay__dir_for_file("--output", m->output, "merged.jsonl");
  if (dir != NULL) {
    int rc = assay__fail(errmsg, ASSAY_EINVAL, "%s", dir);
    free(dir);
    return rc;
  }
  if (!m->overwrite)
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "output file '%s' already exists; use --overwrite to "
                       "replace it or choose another --output",
                       m->output);
  return 0;
}

/* ---- the merge ----------------------------------------------------------- */

/*
 * Streams the merged records to fd. Returns 0, or ASSAY_E* with errmsg
 * when a shard cannot be read or holds something that is not a record.
 */
static int merge_records(struct merge *m, int fd, struct assay_summary *sum,
                         char **errmsg) {
  for (int i = 0; i < m->nshards; i++) {
    struct shard *s = &m->shards[i];
    const cJSON *config =
        cJSON_GetObjectItemCaseSensitive(s->summary, "config");
    if (cJSON_GetObjectItemCaseSensitive(config, "shuffle") != NULL) {
      int rc = shard_sort(m, s, errmsg);
      if (rc < 0)
        return rc;
    }
  }
  for (int i = 0; i < m->nshards; i++) {
    int rc = shard_next(m, &m->shards[i], errmsg);
    if (rc < 0)
      return rc;
    if (rc > 0)
      heap_push(m, &m->shards[i]);
  }
  int have_last = 0;
  double last_index = 0, last_trial = 0;
  const struct shard *last_shard = NULL;
  long long last_line = 0;
  while (m->nheap > 0) {
    struct shard *s = m->heap[0];
    if (have_last && s->index == last_index && s->trial == last_trial) {
      report_duplicate(m, s, last_shard, last_line);
    } else {
      if (m->check_gaps) {
        if (s->trial >= m->trials)
          return assay__fail(errmsg, ASSAY_ECONFIG,
                             "%s:%lld: record has trial %.0f but its run had "
                             "%.0f trials per item (config.trials in '%s'): "
                             "merge only the shards of one run",
                             s->path, s->lineno, s->trial, m->trials,
                             s->summary_path);
        double from_i = m->first_index, from_t = 0;
        if (have_last) {
          from_i = last_index;
          from_t = last_trial + 1;
          if (from_t >= m->trials) {
            from_t = 0;
            from_i++;
          }
        }
        report_missing(m, from_i, from_t, s->index, s->trial);
      }
      if (fd >= 0 && assay__write_all(fd, s->line, s->len) != 0)
        return fd == STDOUT_FILENO
                   ? assay__fail(errmsg, ASSAY_EIO,
                                 "cannot write to standard output: %s",
                                 strerror(errno))
                   : assay__fail(errmsg, ASSAY_EIO, "cannot write to '%s': %s",
                                 m->output, strerror(errno));
      assay_summary_add(sum, s->record);
      m->written++;
      have_last = 1;
      last_index = s->index;
      last_trial = s->trial;
      last_shard = s;
      last_line = s->lineno;
    }
    int rc = shard_next(m, s, errmsg);
    if (rc < 0)
      return rc;
    if (rc > 0)
      heap_down(m, 0);
    else
      heap_pop(m);
  }
  return 0;
}

/*
 * A shard whose summary says it completed should hold as many records as
 * the summary counts; fewer means records were lost after the run.
 */
static void check_counts(struct merge *m) {
  for (int i = 0; i < m->nshards; i++) {
    const struct shard *s = &m->shards[i];
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(s->summary, "counts"), "items");
    if (!summary_complete(s->summary) || !cJSON_IsNumber(items) ||
        items->valuedouble == (double)s->records)
      continue;
    fprintf(stderr,
            "assay: shard '%s' holds %lld record%s but its summary '%s' "
            "counts %.0f: the file was changed after its run\n",
            s->path, s->records, s->records == 1 ? "" : "s", s->summary_path,
            items->valuedouble);
    m->unfinished++;
  }
}

static int parse_merge(int argc, char **argv, struct merge *m) {
  m->shards = assay__xcalloc((size_t)argc + 1, sizeof *m->shards);
  m->max_record_bytes = DEFAULT_MAX_RECORD_BYTES;
  int options_done = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *val = NULL;
    if (!options_done && a[0] == '-' && a[1] != '\0') {
      if (strcmp(a, "--") == 0) {
        options_done = 1;
        continue;
      }
      if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
        fputs(merge_help, stdout);
        return -1;
      }
      if (strcmp(a, "--overwrite") == 0) {
        m->overwrite = 1;
        continue;
      }
      if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
        m->quiet = 1;
        continue;
      }
      static const char *const with_value[] = {"--output", "--summary",
                                               "--max-record-bytes"};
      const char *opt = NULL;
      if (strcmp(a, "-o") == 0)
        opt = "--output";
      for (size_t k = 0; opt == NULL && k < assay__array_size(with_value);
           k++) {
        size_t n = strlen(with_value[k]);
        if (strncmp(a, with_value[k], n) == 0 &&
            (a[n] == '\0' || a[n] == '=')) {
          opt = with_value[k];
          if (a[n] == '=')
            val = a + n + 1;
        }
      }
      if (opt == NULL)
        return assay_cli_unknown_option("merge", merge_help, a);
      if (val == NULL) {
        if (i + 1 >= argc)
          return assay_cli_usage_error("merge", "option '%s' needs a value", a);
        val = argv[++i];
      }
      if (*val == '\0')
        return assay_cli_usage_error(
            "merge", "option '%s' needs a non-empty value", opt);
      if (strcmp(opt, "--output") == 0) {
        m->output = val;
      } else if (strcmp(opt, "--summary") == 0) {
        m->summary_path = val;
      } else {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(val, &end, 10);
        if (errno != 0 || *end != '\0' || n == 0 || val[0] == '-' ||
            n > SIZE_MAX / 2)
          return assay_cli_usage_error(
              "merge",
              "--max-record-bytes expects a byte count, got "
              "'%s'",
              val);
        m->max_record_bytes = (size_t)n;
      }
      continue;
    }
    if (strcmp(a, "-") == 0)
      return assay_cli_usage_error(
          "merge", "merge reads shard files (and their summaries beside "
                   "them), not standard input");
    struct shard *s = &m->shards[m->nshards];
    s->path = a;
    s->pos = m->nshards++;
    s->fd = -1;
  }
  if (m->nshards == 0)
    return assay_cli_usage_error(
        "merge", "no shard to merge: give the shards' records files");
  if (m->output == NULL)
    return assay_cli_usage_error(
        "merge", "-o FILE is required: where the merged records go");
  return 0;
}

int assay_cmd_merge(int argc, char **argv) {
  struct merge m = {0};
  int status = EXIT_USAGE;
  char *err = NULL;
  char *summary_path = NULL;
  int fd = -1;
  struct assay__out out; /* the records, renamed into place at the end */
  int begun = 0;
  struct assay_summary *sum = NULL;
  int rc = parse_merge(argc, argv, &m);
  if (rc != 0) {
    status = rc < 0 ? EXIT_OK : rc;
    goto done;
  }
  int to_stdout = strcmp(m.output, "-") == 0;
  if (m.summary_path)
    summary_path = assay__xstrdup(m.summary_path);
  else if (!to_stdout && !assay__is_stream(m.output))
    summary_path = assay__summary_path(m.output);

  for (int i = 0; i < m.nshards; i++) {
    struct shard *s = &m.shards[i];
    s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0) {
      err =
          assay__format("cannot open shard '%s': %s", s->path, strerror(errno));
      goto fail;
    }
    char head[ASSAY_DATASET_SNIFF_BYTES];
    ssize_t n = pread(s->fd, head, sizeof head, 0);
    if (n > 0 && assay_dataset_sniff(s->path, head, (size_t)n, 0, &err) != 0)
      goto fail;
    s->block = assay__xmalloc(BLOCK_BYTES);
  }
  if (!to_stdout && check_output(&m, &err) != 0)
    goto fail;
  if (check_summaries(&m, &err) != 0)
    goto fail;
  if (summary_path != NULL &&
      check_summary_path(&m, summary_path, to_stdout, &err) != 0)
    goto fail;
  if (summary_path != NULL && strcmp(summary_path, "-") != 0 &&
      assay__mkdir_parent(summary_path, &err) != 0)
    goto fail;

  /* The records go to a temporary file renamed at the end, so a shard
   * found broken halfway leaves no half-merged output behind. */
  if (to_stdout) {
    fd = STDOUT_FILENO;
  } else {
    if (assay__mkdir_parent(m.output, &err) != 0)
      goto fail;
    assay__out_remove_on_signals();
    int e = assay__out_begin(&out, m.output);
    begun = 1;
    if (e != 0) {
      err = assay__format("cannot create output file '%s': %s", m.output,
                          strerror(e));
      goto fail;
    }
    fd = out.fd;
  }

  m.heap = assay__xcalloc((size_t)m.nshards, sizeof *m.heap);
  sum = assay_summary_new();
  if (merge_records(&m, fd, sum, &err) != 0)
    goto fail;
  if (!to_stdout) {
    fd = -1;
    begun = 0;
    int e = assay__out_end(&out, 1);
    if (e != 0) {
      err = assay__format("cannot write to '%s': %s", m.output, strerror(e));
      goto fail;
    }
  }
  check_counts(&m);
  check_shard_set(&m);

  cJSON *run = run_json(&m);
  cJSON *summary = assay_summary_json(sum, run);
  cJSON_Delete(run);
  status = EXIT_OK;
  if (summary_path != NULL) {
    char *text = cJSON_Print(summary);
    if (assay__write_file_atomic(summary_path, text, &err) != 0) {
      fprintf(stderr, "assay: error: %s\n", err);
      free(err);
      err = NULL;
      status = EXIT_USAGE;
    }
    free(text);
  }
  if (!m.quiet) {
    assay_summary_print(summary, stderr);
    if (!to_stdout)
      fprintf(stderr, "records: %s\n", m.output);
    if (summary_path)
      fprintf(stderr, "summary: %s\n",
              strcmp(summary_path, "-") == 0 ? "standard output"
                                             : summary_path);
  }
  cJSON_Delete(summary);

  if (m.listed_dups > MAX_LISTED)
    fprintf(stderr, "assay: ... and %lld more duplicates\n",
            m.listed_dups - MAX_LISTED);
  if (m.missing > m.listed_missing)
    fprintf(stderr, "assay: ... and %.0f more missing records\n",
            m.missing - m.listed_missing);
  int problems = m.duplicates > 0 || m.missing > 0 || m.torn > 0 ||
                 m.unfinished > 0 || m.missing_shards > 0;
  if (!m.quiet || problems) {
    char missing[64];
    if (m.check_gaps)
      snprintf(missing, sizeof missing, "%.0f", m.missing);
    else
      snprintf(missing, sizeof missing, "not checked");
    fprintf(
        stderr,
        "merged %d shard%s: %lld record%s, %lld duplicate%s, missing %s%s%s\n",
        m.nshards, m.nshards == 1 ? "" : "s", m.written,
        m.written == 1 ? "" : "s", m.duplicates, m.duplicates == 1 ? "" : "s",
        missing,
        m.unfinished > 0 || m.missing_shards > 0
            ? ", some shards missing or unfinished"
            : "",
        m.torn > 0 ? ", incomplete last lines skipped" : "");
  }
  if (m.check_gaps && m.missing > 0)
    fprintf(stderr,
            "assay: %.0f records missing between index %.0f and the largest "
            "index: run the shards that lack them (assay run --resume) and "
            "merge again\n",
            m.missing, m.first_index);
  if (status == EXIT_OK && problems)
    status = EXIT_PROBLEMS;
  goto done;

fail:
  fprintf(stderr, "assay: %s\n", err ? err : "merge failed");
  status = EXIT_USAGE;
  if (begun) {
    assay__out_end(&out, 0);
    fd = -1;
  }
done:
  free(err);
  for (int i = 0; i < m.nshards; i++) {
    struct shard *s = &m.shards[i];
    if (s->fd >= 0)
      close(s->fd);
    free(s->block);
    free(s->line);
    free(s->order);
    cJSON_Delete(s->record);
    free(s->summary_path);
    cJSON_Delete(s->summary);
  }
  free(m.shards);
  free(m.heap);
  assay_summary_free(sum);
  free(summary_path);
  return status;
}
