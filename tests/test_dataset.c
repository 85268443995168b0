/*
 * Tests of the dataset readers (core/dataset.c). Most cases are data
 * files under tests/data/datasets/ with the expected transcript of what
 * the reader gives back beside them (NAME.out): each item's line and JSON
 * or error, then how reading ended. Every file is read three ways that
 * must agree: from the file, from memory, and (JSONL) through a pipe on
 * standard input fed one byte at a time. Generated files cover streaming:
 * items over the size cap that are far larger than the read window, and a
 * 200,000-item file read with a cap much smaller than the file.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dataset.h"
#include "error.h"
#include "runner.h"
#include "util.h"

/* --- helpers --------------------------------------------------------- */

struct sbuf {
  char *s;
  size_t len, cap;
};

static void sbuf_add(struct sbuf *b, const char *fmt, ...) ASSAY__PRINTF(2, 3);

static void sbuf_add(struct sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = assay__vformat(fmt, ap);
  va_end(ap);
  size_t n = strlen(s);
  if (b->cap - b->len < n + 1) {
    b->cap = (b->len + n + 1) * 2;
    b->s = assay__xrealloc(b->s, b->cap);
  }
  memcpy(b->s + b->len, s, n + 1);
  b->len += n;
  free(s);
}

/*
 * Reads ds to its end: one line per item ("LINE: JSON" or "LINE: error:
 * MESSAGE", "LINE: error (id "ID"): MESSAGE" when the reader could read a
 * malformed item's id), then "end" or "fatal CODE: MESSAGE". Also checks
 * what every caller relies on: exactly one of json and error, json an
 * object, an id only on a malformed item, and that the end (or the fatal
 * error) is returned again by a further call.
 */
static char *transcript(struct assay_dataset *ds) {
  struct sbuf b = {0};
  for (;;) {
    struct assay_dataset_item item;
    char *err = NULL;
    int r = assay_dataset_next(ds, &item, &err);
    if (r == 1 && item.raw != NULL) {
      /* A deferred item: its text, parsed as the reader would have. */
      CU_ASSERT(item.json == NULL && item.error == NULL);
      CU_ASSERT_EQUAL(item.raw[item.raw_len], '\0');
      char *raw = item.raw;
      item.raw = NULL;
      assay_dataset_parse(assay_dataset_name(ds), raw, item.raw_len, item.line,
                          &item);
      free(raw);
    }
    if (r == 1) {
      CU_ASSERT((item.json == NULL) != (item.error == NULL));
      CU_ASSERT(item.line >= 1);
      CU_ASSERT(item.id == NULL ||
                (item.error != NULL &&
                 (cJSON_IsString(item.id) || cJSON_IsNumber(item.id))));
      if (item.json != NULL) {
        CU_ASSERT(cJSON_IsObject(item.json));
        char *s = assay__json_print(item.json);
        sbuf_add(&b, "%zu: %s\n", item.line, s);
        free(s);
      } else if (item.id != NULL) {
        char *s = assay__json_print(item.id);
        sbuf_add(&b, "%zu: error (id %s): %s\n", item.line, s, item.error);
        free(s);
      } else {
        sbuf_add(&b, "%zu: error: %s\n", item.line, item.error);
      }
      assay_dataset_item_clear(&item);
      continue;
    }
    CU_ASSERT(item.json == NULL && item.error == NULL && item.id == NULL);
    char *err2 = NULL;
    int r2 = assay_dataset_next(ds, &item, &err2);
    CU_ASSERT_EQUAL(r2, r);
    if (r == 0) {
      CU_ASSERT(err == NULL);
      sbuf_add(&b, "end\n");
    } else {
      CU_ASSERT(r < 0);
      CU_ASSERT_FATAL(err != NULL);
      CU_ASSERT_FATAL(err2 != NULL);
      CU_ASSERT_STRING_EQUAL(err2, err);
      sbuf_add(&b, "fatal %s: %s\n", assay_err_name(r), err);
    }
    free(err);
    free(err2);
    break;
  }
  return b.s;
}

static void expect_text(const char *what, const char *got, const char *want) {
  if (strcmp(got, want) != 0) {
    fprintf(stderr, "\n--- %s: expected:\n%s--- got:\n%s---\n", what, want,
            got);
    CU_FAIL("transcript differs (see stderr)");
  } else {
    CU_PASS("transcript matches");
  }
}

/* The transcript of a dataset refused at open (not text, a bad CSV
 * header, a .json file that is no array): no dataset, a message. */
static char *open_failed(int r, struct assay_dataset *ds, char *err) {
  CU_ASSERT(r < 0);
  CU_ASSERT(ds == NULL);
  CU_ASSERT_FATAL(err != NULL);
  char *s = assay__format("open %s: %s\n", assay_err_name(r), err);
  free(err);
  return s;
}

/* With defer 1 or 0, the dataset is asked to hand out its items unparsed,
 * and must say whether it does (JSONL does); -1 leaves it. */
static char *file_transcript_ex(const char *path, int format, size_t max,
                                int defer) {
  struct assay_dataset *ds = NULL;
  char *err = NULL;
  int r = assay_dataset_open(&ds, path, format, max, &err);
  if (r != 0)
    return open_failed(r, ds, err);
  if (defer >= 0)
    CU_ASSERT_EQUAL(assay_dataset_defer(ds), defer);
  char *t = transcript(ds);
  assay_dataset_free(ds);
  return t;
}

static char *file_transcript(const char *path, int format, size_t max) {
  return file_transcript_ex(path, format, max, -1);
}

static char *mem_transcript(const char *name, const char *data, size_t len,
                            int format, size_t max) {
  struct assay_dataset *ds = NULL;
  char *err = NULL;
  int r = assay_dataset_open_mem(&ds, name, data, len, format, max, &err);
  if (r != 0)
    return open_failed(r, ds, err);
  char *t = transcript(ds);
  assay_dataset_free(ds);
  return t;
}

/* Reads data through a pipe on standard input ("-"), written by a child
 * process in pieces of chunk bytes so that reads end at every position. */
static char *stdin_transcript(const char *data, size_t len, size_t chunk,
                              int format, size_t max) {
  int fds[2];
  CU_ASSERT_FATAL(pipe(fds) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CU_ASSERT_FATAL(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    for (size_t off = 0; off < len;) {
      size_t n = len - off < chunk ? len - off : chunk;
      ssize_t w = write(fds[1], data + off, n);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        _exit(1);
      off += (size_t)w;
    }
    _exit(0);
  }
  close(fds[1]);
  int saved = dup(0);
  CU_ASSERT_FATAL(saved >= 0);
  CU_ASSERT_FATAL(dup2(fds[0], 0) == 0);
  close(fds[0]);
  struct assay_dataset *ds = NULL;
  char *err = NULL;
  char *t = NULL;
  int r = assay_dataset_open(&ds, "-", format, max, &err);
  if (r == 0) {
    CU_ASSERT_STRING_EQUAL(assay_dataset_name(ds), "<stdin>");
    t = transcript(ds);
    assay_dataset_free(ds);
  } else {
    t = open_failed(r, ds, err);
  }
  /* A fatal error stops reading early: drain the pipe so that the writer
   * finishes rather than dying of SIGPIPE. */
  char sink[4096];
  while (read(0, sink, sizeof sink) > 0)
    ;
  dup2(saved, 0);
  close(saved);
  int status;
  CU_ASSERT(waitpid(pid, &status, 0) == pid);
  CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  return t;
}

static char *tmp_path(const char *suffix) {
  char *p = assay__format("/tmp/assay-test-dataset-XXXXXX%s", suffix);
  int fd = mkstemps(p, (int)strlen(suffix));
  CU_ASSERT_FATAL(fd >= 0);
  close(fd);
  return p;
}

static void write_file(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "wb");
  CU_ASSERT_FATAL(f != NULL);
  CU_ASSERT_FATAL(fwrite(data, 1, len, f) == len);
  CU_ASSERT_FATAL(fclose(f) == 0);
}

/* Valgrind keeps freed blocks out of reuse (--freelist-vol, 20 MB), so
 * under it the resident size grows with allocation churn, not with what is
 * held: the memory bounds are asserted only in plain runs. Valgrind puts its
 * preload libraries in the client's LD_PRELOAD. */
static int under_valgrind(void) {
  const char *p = getenv("LD_PRELOAD");
  /* ASan's shadow memory and quarantine inflate it the same way. */
  return (p != NULL && strstr(p, "vgpreload") != NULL) || test_sanitized();
}

static long maxrss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/* --- data files with expected transcripts ---------------------------- */

struct golden {
  const char *file; /* under tests/data/datasets/ */
  int format;
  size_t max_item;
  const char *out; /* the expected transcript */
};

static const struct golden goldens[] = {
    {"basic.jsonl", ASSAY_DATASET_AUTO, 0, "basic.jsonl.out"},
    {"bom_crlf.jsonl", ASSAY_DATASET_AUTO, 0, "bom_crlf.jsonl.out"},
    {"bad.jsonl", ASSAY_DATASET_AUTO, 0, "bad.jsonl.out"},
    {"bad.jsonl", ASSAY_DATASET_AUTO, 12, "bad.jsonl.cap12.out"},
    {"bad_id.jsonl", ASSAY_DATASET_AUTO, 0, "bad_id.jsonl.out"},
    {"bad_id.jsonl", ASSAY_DATASET_AUTO, 30, "bad_id.jsonl.cap30.out"},
    {"ends.jsonl", ASSAY_DATASET_AUTO, 0, "ends.jsonl.out"},
    {"blank.jsonl", ASSAY_DATASET_AUTO, 0, "blank.jsonl.out"},
    {"empty.jsonl", ASSAY_DATASET_AUTO, 0, "empty.jsonl.out"},
    {"basic.json", ASSAY_DATASET_AUTO, 0, "basic.json.out"},
    {"basic.json", ASSAY_DATASET_AUTO, 60, "basic.json.cap60.out"},
    {"bom_crlf.json", ASSAY_DATASET_AUTO, 0, "bom_crlf.json.out"},
    {"bad.json", ASSAY_DATASET_AUTO, 0, "bad.json.out"},
    {"empty_array.json", ASSAY_DATASET_AUTO, 0, "empty_array.json.out"},
    {"not_array.json", ASSAY_DATASET_AUTO, 0, "not_array.json.out"},
    {"truncated.json", ASSAY_DATASET_AUTO, 0, "truncated.json.out"},
    {"trailing.json", ASSAY_DATASET_AUTO, 0, "trailing.json.out"},
    {"empty.json", ASSAY_DATASET_AUTO, 0, "empty.json.out"},
    {"basic.csv", ASSAY_DATASET_AUTO, 0, "basic.csv.out"},
    {"basic.csv", ASSAY_DATASET_AUTO, 30, "basic.csv.cap30.out"},
    {"bom_crlf.csv", ASSAY_DATASET_AUTO, 0, "bom_crlf.csv.out"},
    {"ragged.csv", ASSAY_DATASET_AUTO, 0, "ragged.csv.out"},
    {"bad_utf8.csv", ASSAY_DATASET_AUTO, 0, "bad_utf8.csv.out"},
    /* A bad row keeps its id only where the "id" column can be trusted. */
    {"id_later.csv", ASSAY_DATASET_AUTO, 0, "id_later.csv.out"},
    {"header_only.csv", ASSAY_DATASET_AUTO, 0, "header_only.csv.out"},
    {"empty.csv", ASSAY_DATASET_AUTO, 0, "empty.csv.out"},
    {"dup_header.csv", ASSAY_DATASET_AUTO, 0, "dup_header.csv.out"},
    {"unclosed_header.csv", ASSAY_DATASET_AUTO, 0, "unclosed_header.csv.out"},
    {"quoted_eof.csv", ASSAY_DATASET_AUTO, 0, "quoted_eof.csv.out"},
    /* The format given wins over the extension. */
    {"table.txt", ASSAY_DATASET_CSV, 0, "table.txt.as_csv.out"},
    {"not_array.json", ASSAY_DATASET_JSONL, 0, "not_array.json.as_jsonl.out"},
};

/* The test chdirs into the data directory so that names in messages are
 * the short names given to open. */
static int golden_init(void) {
  char *dir = test_src_path("data/datasets");
  int r = chdir(dir);
  free(dir);
  return r;
}

static void run_golden(const struct golden *g) {
  size_t len = 0, want_len = 0;
  char *data = test_read_file(g->file, &len);
  char *want = test_read_file(g->out, &want_len);
  CU_ASSERT_FATAL(data != NULL);
  CU_ASSERT_FATAL(want != NULL);
  char *what = assay__format("%s (%s)", g->file, g->out);

  char *got = file_transcript(g->file, g->format, g->max_item);
  expect_text(what, got, want);
  free(got);

  got = mem_transcript(g->file, data, len, g->format, g->max_item);
  expect_text(what, got, want);
  free(got);

  int fmt = g->format;
  if (fmt == ASSAY_DATASET_AUTO) {
    const char *dot = strrchr(g->file, '.');
    fmt = strcmp(dot, ".json") == 0  ? ASSAY_DATASET_JSON
          : strcmp(dot, ".csv") == 0 ? ASSAY_DATASET_CSV
                                     : ASSAY_DATASET_JSONL;
  }

  /* Deferred parsing (JSONL only) gives the same items and errors. */
  got = file_transcript_ex(g->file, g->format, g->max_item,
                           fmt == ASSAY_DATASET_JSONL);
  expect_text(what, got, want);
  free(got);

  /* Standard input is read like a file of that name called "<stdin>":
   * compare with the same bytes from memory under that name. */
  char *via_mem = mem_transcript("<stdin>", data, len, fmt, g->max_item);
  got = stdin_transcript(data, len, 1, fmt, g->max_item);
  expect_text(what, got, via_mem);
  free(got);
  free(via_mem);

  free(what);
  free(data);
  free(want);
}

static void test_goldens(void) {
  for (size_t i = 0; i < assay__array_size(goldens); i++)
    run_golden(&goldens[i]);
}

/* --- targeted cases ---------------------------------------------------- */

static void test_open_missing(void) {
  struct assay_dataset *ds = (struct assay_dataset *)1;
  char *err = NULL;
  int r = assay_dataset_open(&ds, "no-such-dir/qa.jsonl", ASSAY_DATASET_AUTO, 0,
                             &err);
  CU_ASSERT_EQUAL(r, ASSAY_ENOENT);
  CU_ASSERT(ds == NULL);
  CU_ASSERT_FATAL(err != NULL);
  CU_ASSERT_STRING_EQUAL(
      err, "cannot open dataset 'no-such-dir/qa.jsonl': No such file or "
           "directory");
  CU_ASSERT_EQUAL(errno, ENOENT); /* for callers that name the file */
  free(err);
}

static void test_open_directory(void) {
  struct assay_dataset *ds = NULL;
  char *err = NULL;
  int r = assay_dataset_open(&ds, ".", ASSAY_DATASET_AUTO, 0, &err);
  CU_ASSERT(r < 0);
  CU_ASSERT(ds == NULL);
  CU_ASSERT_FATAL(err != NULL);
  CU_ASSERT_STRING_EQUAL(err, "cannot open dataset '.': Is a directory");
  CU_ASSERT_EQUAL(errno, EISDIR);
  free(err);
}

/* A file that is compressed, an archive or UTF-16 is refused at open, by
 * its first bytes, saying what it is and what to do; a CSV header may begin
 * with the text magics ("BZh", "PAR1"). */
static void test_not_text(void) {
  static const struct {
    const char *suffix, *data;
    size_t len;
    int format;
    const char *msg; /* NULL: opens */
  } cases[] = {
      {".jsonl.gz", "\x1f\x8b\x08\x00\x00", 5, ASSAY_DATASET_AUTO,
       "is gzip-compressed, not text; decompress it first: zcat '"},
      {".zst", "\x28\xb5\x2f\xfd\x00", 5, ASSAY_DATASET_JSONL,
       "is zstd-compressed, not text; decompress it first: zstdcat '"},
      {".xz",
       "\xfd"
       "7zXZ\x00\x00",
       7, ASSAY_DATASET_JSONL,
       "is xz-compressed, not text; decompress it first: xzcat '"},
      {".bz2", "BZh91AY&SY", 10, ASSAY_DATASET_JSONL,
       "is bzip2-compressed, not text; decompress it first: bzcat '"},
      {".xlsx", "PK\x03\x04\x14\x00", 6, ASSAY_DATASET_CSV,
       "is a ZIP archive (an .xlsx workbook?), not UTF-8 text; unpack it, or "
       "save the sheet as CSV"},
      {".parquet", "PAR1\x15\x04", 6, ASSAY_DATASET_JSONL,
       "is a Parquet file, not UTF-8 text; convert it to JSONL or CSV"},
      {".jsonl", "\xff\xfe{\x00", 4, ASSAY_DATASET_JSONL,
       "is UTF-16 text, not UTF-8 text; convert it to UTF-8: iconv -f UTF-16 "
       "-t UTF-8"},
      {".csv", "\xfe\xff\x00a", 4, ASSAY_DATASET_CSV, "is UTF-16 text"},
      {".csv", "BZh,PAR1\n1,2\n", 13, ASSAY_DATASET_CSV, NULL},
      {".csv", "PAR1,x\n1,2\n", 11, ASSAY_DATASET_CSV, NULL},
      {".jsonl", "\xef\xbb\xbf{}\n", 6, ASSAY_DATASET_JSONL, NULL},
      {".jsonl", "{", 1, ASSAY_DATASET_JSONL, NULL}, /* short: opens */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *path = tmp_path(cases[i].suffix);
    write_file(path, cases[i].data, cases[i].len);
    struct assay_dataset *ds = NULL;
    char *err = NULL;
    int r = assay_dataset_open(&ds, path, cases[i].format, 0, &err);
    if (cases[i].msg == NULL) {
      CU_ASSERT_EQUAL(r, 0);
      CU_ASSERT(ds != NULL);
    } else {
      CU_ASSERT_EQUAL(r, ASSAY_EBAD_INPUT);
      CU_ASSERT(ds == NULL);
      int ok = err != NULL && strstr(err, cases[i].msg) != NULL &&
               strstr(err, path) != NULL;
      if (!ok)
        fprintf(stderr, "\n  case %zu: %s\n", i, err ? err : "(null)");
      CU_ASSERT(ok);
    }
    assay_dataset_free(ds);
    free(err);
    unlink(path);
    free(path);
  }
  /* The output a gzip file is decompressed to drops its extension. */
  char *err = NULL;
  CU_ASSERT_EQUAL(
      assay_dataset_sniff("runs/qa.jsonl.gz", "\x1f\x8b", 2, 0, &err),
      ASSAY_EBAD_INPUT);
  CU_ASSERT_STRING_EQUAL(err, "'runs/qa.jsonl.gz' is gzip-compressed, not "
                              "text; decompress it first: zcat "
                              "'runs/qa.jsonl.gz' > 'runs/qa.jsonl'");
  free(err);
  err = NULL;
  CU_ASSERT_EQUAL(assay_dataset_sniff(NULL, "\x1f\x8b", 2, 0, &err),
                  ASSAY_EBAD_INPUT);
  CU_ASSERT_STRING_EQUAL(err, "standard input is gzip-compressed, not text; "
                              "pipe it through zcat first");
  free(err);
  CU_ASSERT_EQUAL(assay_dataset_sniff("x", "\x1f", 1, 0, NULL), 0);
}

static void test_bad_format(void) {
  struct assay_dataset *ds = NULL;
  char *err = NULL;
  CU_ASSERT_EQUAL(assay_dataset_open_mem(&ds, "x.jsonl", "", 0, 42, 0, &err),
                  ASSAY_EINVAL);
  CU_ASSERT(ds == NULL);
  CU_ASSERT(err != NULL);
  free(err);
}

/* The extension picks the format, case-insensitively; anything else is
 * JSONL. */
static void test_format_from_name(void) {
  static const char csv[] = "a,b\n1,2\n";
  char *t = mem_transcript("dir.v1/DATA.CSV", csv, strlen(csv),
                           ASSAY_DATASET_AUTO, 0);
  expect_text("csv", t, "2: {\"a\":\"1\",\"b\":\"2\"}\nend\n");
  free(t);
  static const char arr[] = "[{\"a\":1}]";
  t = mem_transcript("x.Json", arr, strlen(arr), ASSAY_DATASET_AUTO, 0);
  expect_text("json", t, "1: {\"a\":1}\nend\n");
  free(t);
  /* A dot in a directory name is not an extension. */
  static const char line[] = "{\"a\":1}\n";
  t = mem_transcript("v1.json/data", line, strlen(line), ASSAY_DATASET_AUTO, 0);
  expect_text("jsonl", t, "1: {\"a\":1}\nend\n");
  free(t);
}

/* --ids: an item without a string or number id is known by its index (as
 * its record is); the ids no item has are known once the file is read to
 * its end, whatever --offset or --shuffle dropped. */
static void test_select_ids(void) {
  static const char data[] =
      "{\"id\":\"a\"}\n{\"x\":1}\n{\"id\":7}\nnot json\n{\"id\":true}\n";
  static const char *const ids[] = {"4", "a",  "1", "zz", "3",
                                    "7", "zz", "b", NULL};
  for (int shuffle = 0; shuffle < 2; shuffle++) {
    struct assay_dataset *ds = NULL;
    CU_ASSERT_EQUAL_FATAL(assay_dataset_open_mem(&ds, "s.jsonl", data,
                                                 strlen(data),
                                                 ASSAY_DATASET_AUTO, 0, NULL),
                          0);
    struct assay_selection sel = {
        .offset = 1, .ids = ids, .shuffle = shuffle, .seed = 9};
    CU_ASSERT_EQUAL_FATAL(assay_dataset_select(ds, &sel, NULL), 0);
    int64_t nitems = -1;
    const char **unseen = NULL;
    int got[5] = {0}, n = 0;
    struct assay_dataset_item item;
    while (assay_dataset_next(ds, &item, NULL) == 1) {
      /* Not yet at the end: nothing is known. */
      CU_ASSERT_EQUAL(assay_dataset_selection_end(ds, &nitems, &unseen), 0);
      CU_ASSERT_PTR_NULL(unseen);
      if (item.index >= 0 && item.index < 5)
        got[item.index]++;
      n++;
      assay_dataset_item_clear(&item);
    }
    /* Index 0 ("a") is below the offset; 1 (no id), 2 (7), 3 (malformed)
     * and 4 (a boolean id) are selected by id or index. */
    CU_ASSERT_EQUAL(n, 4);
    CU_ASSERT(!got[0] && got[1] == 1 && got[2] == 1 && got[3] == 1 &&
              got[4] == 1);
    CU_ASSERT_EQUAL_FATAL(assay_dataset_selection_end(ds, &nitems, &unseen), 1);
    CU_ASSERT_EQUAL(nitems, 5);
    CU_ASSERT_FATAL(unseen != NULL);
    CU_ASSERT(unseen[0] && strcmp(unseen[0], "b") == 0);
    CU_ASSERT(unseen[0] && unseen[1] && strcmp(unseen[1], "zz") == 0);
    CU_ASSERT(unseen[0] && unseen[1] && unseen[2] == NULL);
    free(unseen);
    assay_dataset_free(ds);
  }
}

/* Items belong to the caller: they outlive the dataset. */
static void test_items_outlive_dataset(void) {
  static const char csv[] = "question,answer\nwho,me\n";
  struct assay_dataset *ds = NULL;
  CU_ASSERT_EQUAL_FATAL(assay_dataset_open_mem(&ds, "x.csv", csv, strlen(csv),
                                               ASSAY_DATASET_AUTO, 0, NULL),
                        0);
  struct assay_dataset_item item;
  CU_ASSERT_EQUAL_FATAL(assay_dataset_next(ds, &item, NULL), 1);
  assay_dataset_free(ds);
  CU_ASSERT_FATAL(item.json != NULL);
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(item.json, "answer");
  CU_ASSERT(cJSON_IsString(a) && strcmp(a->valuestring, "me") == 0);
  cJSON_Delete(item.json);
}

/* Items over the cap much larger than the read window: reported with their
 * exact size and line, and the items after them still read. The cap is
 * exact: max_item bytes pass, one more does not. */
static void test_jsonl_oversize_streamed(void) {
  const size_t big = 300000, max = 1000;
  struct sbuf b = {0};
  sbuf_add(&b, "{\"id\":\"a\"}\n");
  /* An item of exactly max bytes. */
  sbuf_add(&b, "{\"id\":\"exact\",\"pad\":\"");
  while (b.len < 11 + max - 2)
    sbuf_add(&b, "x");
  sbuf_add(&b, "\"}\r\n");
  sbuf_add(&b, "{\"id\":\"b\",\"pad\":\"");
  for (size_t i = 0; i < big; i++)
    sbuf_add(&b, "%c", "y[]{}\",\\"[i % 8]);
  sbuf_add(&b, "\"}\r\n{\"id\":\"c\"}\n");
  /* The last line is over the cap and has no line end. */
  for (size_t i = 0; i < big; i++)
    sbuf_add(&b, "z");

  char *want = assay__format(
      "1: {\"id\":\"a\"}\n"
      "2: (exact)\n"
      "3: error: %%s:3: item is %zu bytes, over the 1000-byte limit "
      "(--max-item-bytes)\n"
      "4: {\"id\":\"c\"}\n"
      "5: error: %%s:5: item is %zu bytes, over the 1000-byte limit "
      "(--max-item-bytes)\n"
      "end\n",
      big + 19, big);
  char *path = tmp_path(".jsonl");
  write_file(path, b.s, b.len);

  /* The exact-size item is long: replace its JSON by a marker. */
  const char *names[] = {path, "mem.jsonl"};
  for (int k = 0; k < 2; k++) {
    char *t = k == 0 ? file_transcript(path, ASSAY_DATASET_AUTO, max)
                     : mem_transcript("mem.jsonl", b.s, b.len,
                                      ASSAY_DATASET_AUTO, max);
    char *line2 = strstr(t, "\n2: ");
    CU_ASSERT_FATAL(line2 != NULL);
    CU_ASSERT(strncmp(line2 + 4, "{\"id\":\"exact\"", 13) == 0);
    char *eol = strchr(line2 + 1, '\n');
    char *shown =
        assay__format("%.*s2: (exact)%s", (int)(line2 + 1 - t), t, eol);
    char *w = assay__format(want, names[k], names[k]);
    expect_text("oversize jsonl", shown, w);
    free(w);
    free(shown);
    free(t);
  }
  /* One byte less of cap and the exact item is over it. */
  char *t = mem_transcript("m.jsonl", b.s, b.len, ASSAY_DATASET_AUTO, max - 1);
  CU_ASSERT(strstr(t, "2: error: m.jsonl:2: item is 1000 bytes, over the "
                      "999-byte limit (--max-item-bytes)\n") != NULL);
  free(t);
  unlink(path);
  free(path);
  free(want);
  free(b.s);
}

static void test_json_oversize_streamed(void) {
  const size_t big = 300000, max = 1000;
  struct sbuf b = {0};
  sbuf_add(&b, "[{\"id\":\"a\"},\n {\"id\":\"b\",\n  \"pad\":[\"");
  /* Brackets, commas and escaped quotes inside strings do not end the
   * element. */
  for (size_t i = 0; i < big; i++)
    sbuf_add(&b, "%s", i % 1000 == 999 ? "\",\n\"" : i % 2 ? "]," : "\\\"");
  sbuf_add(&b, "\"]}  \n , {\"id\":\"c\"}]\n");
  char *path = tmp_path(".json");
  write_file(path, b.s, b.len);
  size_t elem = strstr(b.s, "  \n ,") - strstr(b.s, "{\"id\":\"b\"");
  char *want = assay__format(
      "1: {\"id\":\"a\"}\n"
      "2: error: %%s:2: item is %zu bytes, over the 1000-byte limit "
      "(--max-item-bytes)\n"
      "%zu: {\"id\":\"c\"}\n"
      "end\n",
      elem, (size_t)4 + big / 1000);
  for (int k = 0; k < 2; k++) {
    const char *name = k == 0 ? path : "m.json";
    char *t = k == 0
                  ? file_transcript(path, ASSAY_DATASET_AUTO, max)
                  : mem_transcript(name, b.s, b.len, ASSAY_DATASET_AUTO, max);
    char *w = assay__format(want, name);
    expect_text("oversize json", t, w);
    free(w);
    free(t);
  }
  unlink(path);
  free(path);
  free(want);
  free(b.s);
}

static void test_csv_oversize_streamed(void) {
  const size_t big = 300000, max = 1000;
  struct sbuf b = {0};
  sbuf_add(&b, "id,text\r\n1,short\r\n2,\"");
  /* A quoted field with line ends, commas and doubled quotes. */
  for (size_t i = 0; i < big; i++)
    sbuf_add(&b, "%s", i % 1000 == 999 ? "\r\n" : i % 2 ? "," : "\"\"");
  sbuf_add(&b, "\"\r\n3,after\r\n");
  char *path = tmp_path(".csv");
  write_file(path, b.s, b.len);
  size_t rec = strstr(b.s, "\"\r\n3,") + 1 - strstr(b.s, "2,\"");
  char *want = assay__format(
      "2: {\"id\":\"1\",\"text\":\"short\"}\n"
      "3: error (id \"2\"): %%s:3: item is %zu bytes, over the 1000-byte "
      "limit "
      "(--max-item-bytes)\n"
      "%zu: {\"id\":\"3\",\"text\":\"after\"}\n"
      "end\n",
      rec, (size_t)4 + big / 1000);
  for (int k = 0; k < 2; k++) {
    const char *name = k == 0 ? path : "m.csv";
    char *t = k == 0
                  ? file_transcript(path, ASSAY_DATASET_AUTO, max)
                  : mem_transcript(name, b.s, b.len, ASSAY_DATASET_AUTO, max);
    char *w = assay__format(want, name);
    expect_text("oversize csv", t, w);
    free(w);
    free(t);
  }
  unlink(path);
  free(path);
  free(want);
  free(b.s);
}

/* Pieces of every size through a pipe give the same items as memory. */
static void test_stdin_chunks(void) {
  char *data = NULL;
  size_t len = 0;
  data = test_read_file("bom_crlf.jsonl", &len);
  CU_ASSERT_FATAL(data != NULL);
  char *want = mem_transcript("<stdin>", data, len, ASSAY_DATASET_JSONL, 0);
  for (size_t chunk = 1; chunk <= 7; chunk++) {
    char *got = stdin_transcript(data, len, chunk, ASSAY_DATASET_AUTO, 0);
    expect_text("stdin", got, want);
    free(got);
  }
  CU_ASSERT(strstr(want, "1: {\"id\":\"a\",\"n\":1}\n") != NULL);
  free(want);
  free(data);
}

/*
 * 200,000 items read with a cap far smaller than the file: all come back
 * in order with their ids. The reader's memory is bounded by the item: the
 * peak resident size grows by much less than the file.
 */
static void run_large(const char *suffix, int format) {
  const int n = 200000;
  char *path = tmp_path(suffix);
  FILE *f = fopen(path, "wb");
  CU_ASSERT_FATAL(f != NULL);
  if (format == ASSAY_DATASET_JSON)
    fputs("[\n", f);
  if (format == ASSAY_DATASET_CSV)
    fputs("id,input,reference\n", f);
  long size = 0;
  for (int i = 0; i < n; i++) {
    if (format == ASSAY_DATASET_CSV)
      fprintf(f,
              "i%d,\"question %d, with padding padding padding padding "
              "padding padding padding padding padding padding\",answer %d\n",
              i, i, i);
    else
      fprintf(f,
              "{\"id\":\"i%d\",\"input\":\"question %d with padding padding "
              "padding padding padding padding padding\",\"reference\":"
              "\"answer %d\"}%s\n",
              i, i, i, format == ASSAY_DATASET_JSON && i + 1 < n ? "," : "");
  }
  if (format == ASSAY_DATASET_JSON)
    fputs("]\n", f);
  size = ftell(f);
  CU_ASSERT_FATAL(fclose(f) == 0);
  const size_t max = 256;
  CU_ASSERT(size > 20 * 1000 * 1000);

  long before = maxrss_kb();
  struct assay_dataset *ds = NULL;
  CU_ASSERT_EQUAL_FATAL(
      assay_dataset_open(&ds, path, ASSAY_DATASET_AUTO, max, NULL), 0);
  struct assay_dataset_item item;
  int i = 0, bad = 0, r;
  char id[32];
  while ((r = assay_dataset_next(ds, &item, NULL)) == 1) {
    snprintf(id, sizeof id, "i%d", i);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(item.json, "id");
    if (item.json == NULL || !cJSON_IsString(v) ||
        strcmp(v->valuestring, id) != 0)
      bad++;
    assay_dataset_item_clear(&item);
    i++;
  }
  long after = maxrss_kb();
  CU_ASSERT_EQUAL(r, 0);
  CU_ASSERT_EQUAL(i, n);
  CU_ASSERT_EQUAL(bad, 0);
  /* Generous: a reader holding the file would add over 20 MB. */
  if (!under_valgrind())
    CU_ASSERT(after - before < 8 * 1024);
  assay_dataset_free(ds);
  unlink(path);
  free(path);
}

static void test_large_jsonl(void) {
  run_large(".jsonl", ASSAY_DATASET_JSONL);
}

static void test_large_json(void) {
  run_large(".json", ASSAY_DATASET_JSON);
}

static void test_large_csv(void) {
  run_large(".csv", ASSAY_DATASET_CSV);
}

/*
 * One 32 MiB item over a 1 MiB cap, in each format, is skipped without
 * being kept: the peak resident size grows by much less than the item, and
 * the item after it is read.
 */
static void run_huge(const char *suffix, const char *head, const char *tail,
                     const char *want_fmt, size_t extra) {
  char *path = tmp_path(suffix);
  FILE *f = fopen(path, "wb");
  CU_ASSERT_FATAL(f != NULL);
  static char chunk[1 << 16];
  memset(chunk, 'x', sizeof chunk);
  /* Line ends and delimiters inside the string or quoted field. */
  memcpy(chunk + 100, "\\n], ", 5);
  fputs(head, f);
  for (int i = 0; i < 512; i++)
    fwrite(chunk, 1, sizeof chunk, f);
  fputs(tail, f);
  CU_ASSERT_FATAL(fclose(f) == 0);

  long before = maxrss_kb();
  char *t = file_transcript(path, ASSAY_DATASET_AUTO, 1 << 20);
  long after = maxrss_kb();
  char *want =
      assay__format(want_fmt, path, (size_t)512 * sizeof chunk + extra);
  expect_text(suffix, t, want);
  if (!under_valgrind())
    CU_ASSERT(after - before < 16 * 1024);
  free(want);
  free(t);
  unlink(path);
  free(path);
}

static void test_huge_jsonl(void) {
  run_huge(".jsonl", "{\"id\":\"", "\"}\n{\"id\":\"next\"}\n",
           "1: error: %s:1: item is %zu bytes, over the 1048576-byte limit "
           "(--max-item-bytes)\n2: {\"id\":\"next\"}\nend\n",
           9);
}

static void test_huge_json(void) {
  run_huge(".json", "[\n{\"id\":\"", "\"}\n,\n{\"id\":\"next\"}]",
           "2: error: %s:2: item is %zu bytes, over the 1048576-byte limit "
           "(--max-item-bytes)\n4: {\"id\":\"next\"}\nend\n",
           9);
}

static void test_huge_csv(void) {
  run_huge(".csv", "id,text\n1,\"", "\"\n2,next\n",
           "2: error (id \"1\"): %s:2: item is %zu bytes, over the "
           "1048576-byte limit (--max-item-bytes)\n"
           "3: {\"id\":\"2\",\"text\":\"next\"}\nend\n",
           4);
}

static const struct test_case memory_cases[] = {
    {"a 32 MiB JSONL line over the cap is not kept", test_huge_jsonl},
    {"a 32 MiB JSON element over the cap is not kept", test_huge_json},
    {"a 32 MiB CSV record over the cap is not kept", test_huge_csv},
    {"200,000 JSONL items with a 256-byte cap", test_large_jsonl},
    {"200,000 JSON array items with a 256-byte cap", test_large_json},
    {"200,000 CSV rows with a 256-byte cap", test_large_csv},
    {NULL, NULL}};

static const struct test_case file_cases[] = {
    {"data files match their transcripts (file, memory, stdin)", test_goldens},
    {"a missing file", test_open_missing},
    {"a directory", test_open_directory},
    {"not text: compressed, an archive, UTF-16", test_not_text},
    {"an unknown format", test_bad_format},
    {"the format from the name", test_format_from_name},
    {"items outlive the dataset", test_items_outlive_dataset},
    {"--ids: by index without an id; ids not found", test_select_ids},
    {"JSONL items over the cap, larger than the window",
     test_jsonl_oversize_streamed},
    {"JSON array elements over the cap, larger than the window",
     test_json_oversize_streamed},
    {"CSV records over the cap, larger than the window",
     test_csv_oversize_streamed},
    {"standard input in pieces of 1 to 7 bytes", test_stdin_chunks},
    {NULL, NULL}};

static const struct test_suite suites[] = {
    {"memory", golden_init, NULL, memory_cases},
    {"files", golden_init, NULL, file_cases},
    {NULL, NULL, NULL, NULL}};

int main(int argc, char **argv) {
  return test_main(argc, argv, suites);
}
