/*
 * Dataset readers (see dataset.h). One input layer reads the source in
 * chunks into a window that grows only while a single item is in it, so
 * memory is bounded by max_item_bytes, never by the file. On top of it:
 * JSONL splits lines with memchr; a JSON array is scanned for element
 * boundaries (strings, escapes, nesting depth) and each element is parsed
 * alone; CSV is fed to libcsv one physical line at a time, so that every
 * record knows the line it starts on.
 */
#include "dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csv.h>

#include "error.h"
#include "util.h"

/* The least free space offered to one read(); the window starts at twice
 * that and doubles only while an item does not fit. */
#define READ_MIN ((size_t)64 << 10)
/* How much of the text around a JSON error a message quotes. */
#define SNIPPET_MAX 24

/* Where the JSON array scanner is. */
enum json_phase {
  JP_START, /* before '[' */
  JP_FIRST, /* after '[': an element or ']' */
  JP_NEXT,  /* after ',': an element */
  JP_ELEM,  /* inside an element */
  JP_DONE,  /* after ']': only whitespace may follow */
  JP_END
};

struct csv_reader {
  struct csv_parser parser;
  int parser_ready;
  int header_done;
  char **cols; /* the header, owned */
  size_t ncols;
  size_t id_col; /* the "id" column, or SIZE_MAX */
  /* The record being read: its fields back to back, each NUL-terminated,
   * and where each starts. Only the first ncols fields are stored once the
   * header is known; the rest are only counted. */
  char *fields;
  size_t fields_len, fields_cap;
  size_t *offs;
  size_t nstored, offs_cap;
  size_t nfields;
  size_t rec_line, rec_bytes;
  size_t lead_ws; /* blanks of a line cut by the read window before its
                     record opened: they count in the record's size */
  int row_open, row_done;
  int overflow;        /* over max_item: fields are dropped, not stored */
  size_t bad_utf8_col; /* 1-based column of the first invalid field */
  int fini_done;
  int unclosed;  /* the file ended inside a quoted field */
  int have_item; /* a finished item waits in item */
  struct assay_dataset_item item;
};

struct selection;

struct assay_dataset {
  int64_t items; /* items handed out so far, malformed ones included */
  struct selection *sel; /* --offset, --ids, --shard, --shuffle; or NULL */
  char *path;            /* to read a file again (shuffle), or NULL */
  const char *mem;       /* ... or the memory it reads */
  size_t mem_len;
  int format_given;
  off_t size;            /* bytes, when known (files, memory) */
  char *name;
  int format;
  size_t max_item;
  int fd; /* -1 for a memory source */
  int own_fd;
  char *buf; /* the window's storage (files and pipes) */
  size_t cap;
  const char *data; /* buf, or the caller's memory */
  size_t pos;       /* first byte not consumed */
  size_t scan;      /* how far past pos has been searched (>= pos) */
  size_t end;       /* end of the bytes read */
  int eof;
  int started; /* an item was asked for: too late to select or defer */
  size_t line; /* the line number of data[scan] (JSONL, CSV: of data[pos]) */

  /* Skipping an item over the cap without keeping it. */
  int skipping;
  size_t skip_bytes;
  char skip_last;
  int skip_blank; /* JSONL: only whitespace skipped so far */

  /* JSON array scanner state, kept across reads. */
  int phase;
  int in_str, esc;
  size_t depth;
  size_t trail; /* whitespace bytes at the end of what was scanned */
  size_t elem_line;

  struct csv_reader csv;

  int defer; /* JSONL: items come as text, parsed by assay_dataset_parse */

  /* A fatal error, returned again by every later call. */
  char *fatal;
  int fatal_err;
};

static inline int is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int set_fatal(struct assay_dataset *ds, char **errmsg, int err,
                     const char *fmt, ...) ASSAY__PRINTF(4, 5);

static int set_fatal(struct assay_dataset *ds, char **errmsg, int err,
                     const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  free(ds->fatal);
  ds->fatal = assay__vformat(fmt, ap);
  va_end(ap);
  ds->fatal_err = err;
  if (errmsg != NULL)
    *errmsg = assay__xstrdup(ds->fatal);
  return err;
}

static void item_error(const char *name, struct assay_dataset_item *item,
                       size_t line, const char *fmt, ...) ASSAY__PRINTF(4, 5);

/* Fills item as a malformed one: "name:line: <fmt>". */
static void item_error(const char *name, struct assay_dataset_item *item,
                       size_t line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *what = assay__vformat(fmt, ap);
  va_end(ap);
  item->json = NULL;
  item->error = assay__format("%s:%zu: %s", name, line, what);
  free(what);
}

static void item_oversize(struct assay_dataset *ds,
                          struct assay_dataset_item *item, size_t line,
                          size_t size) {
  item_error(ds->name, item, line,
             "item is %zu bytes, over the %zu-byte limit (--max-item-bytes)",
             size, ds->max_item);
}

/* --- input ------------------------------------------------------------- */

/*
 * Reads more bytes into the window, keeping data[pos..end). Returns 1 when
 * bytes came, 0 at the end of the input, or a fatal error.
 */
static int src_read(struct assay_dataset *ds, char **errmsg) {
  if (ds->fd < 0 || ds->eof) {
    ds->eof = 1;
    return 0;
  }
  size_t keep = ds->end - ds->pos;
  if (ds->pos > 0) {
    memmove(ds->buf, ds->buf + ds->pos, keep);
    ds->scan -= ds->pos;
    ds->end = keep;
    ds->pos = 0;
  }
  if (ds->cap - keep < READ_MIN) {
    size_t ncap = ds->cap;
    while (ncap - keep < READ_MIN)
      ncap *= 2;
    ds->buf = assay__xrealloc(ds->buf, ncap);
    ds->cap = ncap;
    ds->data = ds->buf;
  }
  ssize_t n;
  do
    n = read(ds->fd, ds->buf + ds->end, ds->cap - ds->end);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return set_fatal(ds, errmsg, ASSAY_EIO, "cannot read dataset '%s': %s",
                     ds->name, strerror(errno));
  if (n == 0) {
    ds->eof = 1;
    return 0;
  }
  ds->end += (size_t)n;
  return 1;
}

/* Files that are no text of ours, told by their first bytes, with what to
 * do: otherwise each of their "lines" would become a bad item. */
static const struct {
  const char *magic;
  size_t len;
  const char *what;
  const char *unpack; /* the program that decompresses it, or NULL */
  const char *ext;    /* ... and the extension it takes off */
  const char *fix;    /* else what to do */
  int ascii;          /* the magic is plain text: a CSV header may begin so */
} not_text[] = {
    {"\x1f\x8b", 2, "gzip-compressed", "zcat", ".gz", NULL, 0},
    {"\x28\xb5\x2f\xfd", 4, "zstd-compressed", "zstdcat", ".zst", NULL, 0},
    {"\xfd"
     "7zXZ\x00",
     6, "xz-compressed", "xzcat", ".xz", NULL, 0},
    {"BZh", 3, "bzip2-compressed", "bzcat", ".bz2", NULL, 1},
    {"PK\x03\x04", 4, "a ZIP archive (an .xlsx workbook?)", NULL, NULL,
     "unpack it, or save the sheet as CSV", 0},
    {"PAR1", 4, "a Parquet file", NULL, NULL, "convert it to JSONL or CSV", 1},
    {"\xff\xfe", 2, "UTF-16 text", NULL, NULL,
     "convert it to UTF-8: iconv -f UTF-16 -t UTF-8", 0},
    {"\xfe\xff", 2, "UTF-16 text", NULL, NULL,
     "convert it to UTF-8: iconv -f UTF-16 -t UTF-8", 0},
};

int assay_dataset_sniff(const char *name, const char *p, size_t have, int csv,
                        char **errmsg) {
  for (size_t i = 0; i < assay__array_size(not_text); i++) {
    if ((csv && not_text[i].ascii) || have < not_text[i].len ||
        memcmp(p, not_text[i].magic, not_text[i].len) != 0)
      continue;
    if (not_text[i].unpack == NULL)
      return assay__fail(errmsg, ASSAY_EBAD_INPUT,
                         "'%s' is %s, not UTF-8 text; %s", name,
                         not_text[i].what, not_text[i].fix);
    if (name == NULL)
      return assay__fail(errmsg, ASSAY_EBAD_INPUT,
                         "standard input is %s, not text; pipe it through %s "
                         "first",
                         not_text[i].what, not_text[i].unpack);
    size_t n = strlen(name), k = strlen(not_text[i].ext);
    char *to = n > k && strcmp(name + n - k, not_text[i].ext) == 0
                   ? assay__format("'%.*s'", (int)(n - k), name)
                   : assay__xstrdup("FILE");
    int rc = assay__fail(errmsg, ASSAY_EBAD_INPUT,
                         "'%s' is %s, not text; decompress it first: %s '%s' "
                         "> %s",
                         name, not_text[i].what, not_text[i].unpack, name, to);
    free(to);
    return rc;
  }
  return 0;
}

/* The same check on the input's first bytes, read into the window and kept
 * there; at open, so that it is said before a run writes anything. */
static int src_sniff(struct assay_dataset *ds, char **errmsg) {
  while (ds->end - ds->pos < ASSAY_DATASET_SNIFF_BYTES && !ds->eof) {
    int r = src_read(ds, errmsg);
    if (r < 0)
      return r;
  }
  char *why = NULL;
  int piped = ds->fd == 0 && !ds->own_fd; /* standard input */
  int r = assay_dataset_sniff(piped ? NULL : ds->name, ds->data + ds->pos,
                              ds->end - ds->pos,
                              ds->format == ASSAY_DATASET_CSV, &why);
  if (r < 0) {
    r = set_fatal(ds, errmsg, r, "%s", why);
    free(why);
  }
  return r;
}

/* Reads on until the window holds a snippet's worth after pos, so that a
 * message quotes the same text however the input arrived. */
static void src_fill_snippet(struct assay_dataset *ds) {
  /* One byte more than the quote: snippet() looks at the byte after its
   * cut to keep a character whole. */
  while (ds->end - ds->pos <= SNIPPET_MAX && !ds->eof &&
         memchr(ds->data + ds->pos, '\n', ds->end - ds->pos) == NULL)
    if (src_read(ds, NULL) < 0)
      break;
}

/* --- one JSON item ----------------------------------------------------- */

/* The 1-based line of text[off], text starting on line. */
static size_t line_at(const char *text, size_t off, size_t line) {
  for (size_t i = 0; i < off; i++)
    line += text[i] == '\n';
  return line;
}

/* A printable quote of up to SNIPPET_MAX bytes of text[from..to), cut on
 * a UTF-8 boundary and at the end of the line. Owned. */
static char *snippet(const char *text, size_t from, size_t to) {
  size_t n = to - from;
  if (n > SNIPPET_MAX) {
    n = SNIPPET_MAX;
    /* A character has at most three continuation bytes; more is invalid
     * UTF-8 and is cut anywhere. */
    for (int k = 0;
         k < 3 && n > 0 && ((unsigned char)text[from + n] & 0xc0) == 0x80; k++)
      n--;
  }
  char *s = assay__xstrndup(text + from, n);
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\n' || s[i] == '\r') {
      s[i] = '\0';
      break;
    }
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
      s[i] = ' ';
  }
  return s;
}

static size_t skip_ws(const char *t, size_t n, size_t i) {
  while (i < n && is_ws(t[i]))
    i++;
  return i;
}

/*
 * A malformed JSON item's id, when its text still shows one that can be
 * trusted: the object's first member is "id", and its value (a string or a
 * finite number, valid UTF-8) is whole before whatever broke the item, a
 * ',' or '}' after it. The record then keeps the id the item was written
 * with, so that compare and report match it with the same item of another
 * run, and --ids can name it. NULL otherwise.
 */

static cJSON *json_bad_id(const char *t, size_t n) {
  size_t i = skip_ws(t, n, 0);
  if (i >= n || t[i] != '{')
    return NULL;
  i = skip_ws(t, n, i + 1);
  if (n - i < 4 || memcmp(t + i, "\"id\"", 4) != 0)
    return NULL;
  i = skip_ws(t, n, i + 4);
  if (i >= n || t[i] != ':')
    return NULL;
  size_t v = skip_ws(t, n, i + 1), end = v;
  if (end < n && t[end] == '"') {
    for (end++; end < n && t[end] != '"'; end++)
      if (t[end] == '\\')
        end++;
    if (end >= n)
      return NULL;
    end++;
  } else {
    while (end < n && t[end] != '\0' && strchr("0123456789+-.eE", t[end]))
      end++;
  }
  i = skip_ws(t, n, end);
  if (end == v || i >= n || (t[i] != ',' && t[i] != '}') ||
      !assay__utf8_valid(t + v, end - v, NULL))
    return NULL;
  cJSON *id = cJSON_ParseWithLength(t + v, end - v);
  if (cJSON_IsString(id) || (cJSON_IsNumber(id) && isfinite(id->valuedouble)))
    return id;
  cJSON_Delete(id);
  return NULL;
}

static void parse_item(const char *name, const char *text, size_t len,
                       size_t line, struct assay_dataset_item *item);

/*
 * Turns the text of one item (len bytes, starting on line) into item:
 * a JSON object, or an error saying what is wrong and where; or, when the
 * dataset defers parsing, a copy of the text.
 */
static void make_item(struct assay_dataset *ds, const char *text, size_t len,
                      size_t line, struct assay_dataset_item *item) {
  memset(item, 0, sizeof *item);
  item->line = line;
  if (len > ds->max_item) {
    /* No id: a reader that skips an item too large for its window never
     * holds the whole text, and every reader must give the same id. */
    item_oversize(ds, item, line, len);
    return;
  }
  if (ds->defer) {
    item->raw = assay__xmalloc(len + 1);
    memcpy(item->raw, text, len);
    item->raw[len] = '\0';
    item->raw_len = len;
    return;
  }
  assay_dataset_parse(ds->name, text, len, line, item);
}

void assay_dataset_parse(const char *name, const char *text, size_t len,
                         size_t line, struct assay_dataset_item *item) {
  item->json = NULL;
  item->error = NULL;
  item->id = NULL;
  parse_item(name, text, len, line, item);
  if (item->json == NULL)
    item->id = json_bad_id(text, len);
}

/*
 * cJSON puts an error past the end on the last byte, so an error there is
 * either the text ending too early or that byte itself. When the byte is a
 * closing bracket the two can be told apart: the same text with a space
 * after it fails past the end ('{"a": {"b": 1}', too early) or at the
 * bracket again ('{"a": }', '[1,]': the bracket is the fault).
 */
static int fails_at_last_bracket(const char *text, size_t len) {
  if (len == 0 || (text[len - 1] != '}' && text[len - 1] != ']'))
    return 0;
  char *more = assay__xmalloc(len + 1);
  memcpy(more, text, len);
  more[len] = ' ';
  const char *stop = NULL;
  cJSON *j = cJSON_ParseWithLengthOpts(more, len + 1, &stop, 0);
  int at = j == NULL && stop != NULL && (size_t)(stop - more) == len - 1;
  cJSON_Delete(j);
  free(more);
  return at;
}

static void parse_item(const char *name, const char *text, size_t len,
                       size_t line, struct assay_dataset_item *item) {
  size_t bad;
  if (!assay__utf8_valid(text, len, &bad)) {
    item_error(name, item, line_at(text, bad, line),
               "invalid UTF-8 at byte %zu of the item (datasets must be "
               "UTF-8)",
               bad + 1);
    return;
  }
  const char *stop = NULL;
  cJSON *j = cJSON_ParseWithLengthOpts(text, len, &stop, 0);
  if (j == NULL) {
    size_t off = stop != NULL ? (size_t)(stop - text) : 0;
    if (off + 1 >= len &&
        !(off + 1 == len && fails_at_last_bracket(text, len))) {
      /* cJSON puts an error past the end on the last byte: the item stops
       * before its value is complete. */
      size_t from = len > SNIPPET_MAX ? len - SNIPPET_MAX : 0;
      while (from < len && ((unsigned char)text[from] & 0xc0) == 0x80)
        from++;
      char *s = snippet(text, from, len);
      item_error(name, item, line_at(text, len ? len - 1 : 0, line),
                 "invalid JSON: the item ends too early, after '%s'", s);
      free(s);
    } else {
      char *s = snippet(text, off, len);
      item_error(name, item, line_at(text, off, line), "invalid JSON near '%s'",
                 s);
      free(s);
    }
    return;
  }
  size_t off = (size_t)(stop - text);
  while (off < len && is_ws(text[off]))
    off++;
  if (off < len) {
    cJSON_Delete(j);
    char *s = snippet(text, off, len);
    item_error(name, item, line_at(text, off, line),
               "invalid JSON: unexpected text after the item near '%s'", s);
    free(s);
    return;
  }
  if (!cJSON_IsObject(j)) {
    item_error(name, item, line, "item is %s, not a JSON object",
               assay_json_kind(j));
    cJSON_Delete(j);
    return;
  }
  item->json = j;
}

/* --- JSONL --------------------------------------------------------------- */

/* One line without its '\n': 0 when blank, else 1 with item filled. */
static int jsonl_line(struct assay_dataset *ds, const char *l, size_t len,
                      size_t line, struct assay_dataset_item *item) {
  size_t i = 0;
  while (i < len && is_ws(l[i]))
    i++;
  if (i == len)
    return 0;
  if (l[len - 1] == '\r')
    len--;
  make_item(ds, l, len, line, item);
  return 1;
}

/* Whether text[0..n) is all whitespace. */
static int all_ws(const char *text, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!is_ws(text[i]))
      return 0;
  return 1;
}

static int jsonl_next(struct assay_dataset *ds, struct assay_dataset_item *item,
                      char **errmsg) {
  for (;;) {
    if (ds->skipping) {
      const char *p = ds->data + ds->pos;
      const char *nl = memchr(p, '\n', ds->end - ds->pos);
      if (nl == NULL) {
        if (ds->end > ds->pos) {
          ds->skip_blank = ds->skip_blank && all_ws(p, ds->end - ds->pos);
          ds->skip_bytes += ds->end - ds->pos;
          ds->skip_last = ds->data[ds->end - 1];
          ds->pos = ds->scan = ds->end;
        }
        if (!ds->eof) {
          int r = src_read(ds, errmsg);
          if (r < 0)
            return r;
          continue;
        }
        /* The last line ends without '\n': a '\r' before the end is
         * not part of the item, as when read from memory. */
        if (ds->skip_last == '\r')
          ds->skip_bytes--;
      } else {
        size_t n = (size_t)(nl - p);
        ds->skip_blank = ds->skip_blank && all_ws(p, n);
        if (n > 0)
          ds->skip_last = nl[-1];
        ds->skip_bytes += n;
        if (ds->skip_last == '\r')
          ds->skip_bytes--;
        ds->pos = ds->scan = ds->pos + n + 1;
      }
      ds->skipping = 0;
      if (ds->skip_blank) {
        /* A blank line, however long, is no item. */
        ds->line++;
        continue;
      }
      memset(item, 0, sizeof *item);
      item->line = ds->line;
      item_oversize(ds, item, ds->line, ds->skip_bytes);
      ds->line++;
      return 1;
    }
    const char *nl = memchr(ds->data + ds->scan, '\n', ds->end - ds->scan);
    if (nl != NULL) {
      const char *l = ds->data + ds->pos;
      size_t len = (size_t)(nl - l), line = ds->line;
      ds->pos = ds->scan = ds->pos + len + 1;
      ds->line++;
      if (jsonl_line(ds, l, len, line, item))
        return 1;
      continue;
    }
    ds->scan = ds->end;
    if (ds->eof) {
      if (ds->pos == ds->end)
        return 0;
      const char *l = ds->data + ds->pos;
      size_t len = ds->end - ds->pos;
      ds->pos = ds->scan = ds->end;
      if (jsonl_line(ds, l, len, ds->line, item))
        return 1;
      continue;
    }
    /* Past the cap even if the next byte is the '\n' after a '\r': stop
     * keeping the line. */
    if (ds->end - ds->pos > ds->max_item + 1) {
      ds->skipping = 1;
      ds->skip_blank = all_ws(ds->data + ds->pos, ds->end - ds->pos);
      ds->skip_bytes = ds->end - ds->pos;
      ds->skip_last = ds->data[ds->end - 1];
      ds->pos = ds->scan = ds->end;
      continue;
    }
    int r = src_read(ds, errmsg);
    if (r < 0)
      return r;
  }
}

/* --- JSON array ---------------------------------------------------------- */

/* Skips whitespace at pos, counting lines. 1 when a byte follows, 0 at the
 * end of the input, or a fatal error. */
static int json_skip_ws(struct assay_dataset *ds, char **errmsg) {
  for (;;) {
    while (ds->pos < ds->end && is_ws(ds->data[ds->pos])) {
      ds->line += ds->data[ds->pos] == '\n';
      ds->pos++;
    }
    ds->scan = ds->pos;
    if (ds->pos < ds->end)
      return 1;
    int r = src_read(ds, errmsg);
    if (r <= 0)
      return r;
  }
}

static void json_begin_element(struct assay_dataset *ds) {
  ds->phase = JP_ELEM;
  ds->scan = ds->pos;
  ds->in_str = ds->esc = 0;
  ds->depth = 0;
  ds->trail = 0;
  ds->elem_line = ds->line;
  ds->skipping = 0;
  ds->skip_bytes = 0;
}

/*
 * Scans the current element from scan. Returns 1 with the element's end
 * (the ',' or ']' at depth 0) in *stop, 0 when the window ends first.
 */
static int json_scan(struct assay_dataset *ds, size_t *stop) {
  const char *d = ds->data;
  size_t i = ds->scan, end = ds->end;
  int in_str = ds->in_str, esc = ds->esc;
  size_t depth = ds->depth, trail = ds->trail, line = ds->line;
  int found = 0;
  for (; i < end; i++) {
    char c = d[i];
    if (in_str) {
      trail = 0;
      if (esc)
        esc = 0;
      else if (c == '\\')
        esc = 1;
      else if (c == '"')
        in_str = 0;
      else if (c == '\n')
        line++; /* invalid in a string; cJSON will say so */
      continue;
    }
    switch (c) {
    case '"':
      in_str = 1;
      trail = 0;
      break;
    case '{':
    case '[':
      depth++;
      trail = 0;
      break;
    case '}':
    case ']':
      if (depth == 0 && c == ']') {
        found = 1;
        goto out;
      }
      if (depth > 0)
        depth--;
      trail = 0;
      break;
    case ',':
      if (depth == 0) {
        found = 1;
        goto out;
      }
      trail = 0;
      break;
    case '\n':
      line++;
      trail++;
      break;
    case ' ':
    case '\t':
    case '\r':
      trail++;
      break;
    default:
      trail = 0;
    }
  }
out:
  ds->scan = i;
  ds->in_str = in_str;
  ds->esc = esc;
  ds->depth = depth;
  ds->trail = trail;
  ds->line = line;
  *stop = i;
  return found;
}

/* The array's opening '['. */
static int json_start(struct assay_dataset *ds, char **errmsg) {
  int r = json_skip_ws(ds, errmsg);
  if (r < 0)
    return r;
  if (r == 0)
    return set_fatal(ds, errmsg, ASSAY_EINVAL,
                     "dataset '%s' is empty: a .json dataset must be a "
                     "JSON array of objects",
                     ds->name);
  if (ds->data[ds->pos] != '[') {
    src_fill_snippet(ds);
    char *s = snippet(ds->data, ds->pos, ds->end);
    r = set_fatal(ds, errmsg, ASSAY_EINVAL,
                  "dataset '%s' is not a JSON array (line %zu starts "
                  "'%s'): use --format jsonl for one object per line",
                  ds->name, ds->line, s);
    free(s);
    return r;
  }
  ds->pos++;
  ds->phase = JP_FIRST;
  return 0;
}

static int json_next(struct assay_dataset *ds, struct assay_dataset_item *item,
                     char **errmsg) {
  for (;;) {
    int r;
    switch (ds->phase) {
    case JP_START:
      r = json_start(ds, errmsg);
      if (r < 0)
        return r;
      break;
    case JP_FIRST:
    case JP_NEXT:
      r = json_skip_ws(ds, errmsg);
      if (r < 0)
        return r;
      if (r == 0)
        return set_fatal(ds, errmsg, ASSAY_EINVAL,
                         "dataset '%s' ends at line %zu inside its JSON "
                         "array: is the file truncated?",
                         ds->name, ds->line);
      if (ds->data[ds->pos] == ']' && ds->phase == JP_FIRST) {
        ds->pos++;
        ds->phase = JP_DONE;
        break;
      }
      if (ds->data[ds->pos] == ',' || ds->data[ds->pos] == ']') {
        memset(item, 0, sizeof *item);
        item->line = ds->line;
        item_error(ds->name, item, ds->line,
                   "invalid JSON near '%c': an array element is missing "
                   "(a stray comma?)",
                   ds->data[ds->pos]);
        ds->phase = ds->data[ds->pos] == ']' ? JP_DONE : JP_NEXT;
        ds->pos++;
        ds->scan = ds->pos;
        return 1;
      }
      json_begin_element(ds);
      break;
    case JP_ELEM: {
      size_t stop;
      if (json_scan(ds, &stop)) {
        /* The element without the whitespace before its delimiter. */
        size_t len = ds->skip_bytes + (stop - ds->pos) - ds->trail;
        if (ds->skipping) {
          memset(item, 0, sizeof *item);
          item->line = ds->elem_line;
          item_oversize(ds, item, ds->elem_line, len);
        } else {
          make_item(ds, ds->data + ds->pos, len, ds->elem_line, item);
        }
        ds->skipping = 0;
        ds->phase = ds->data[stop] == ',' ? JP_NEXT : JP_DONE;
        ds->pos = ds->scan = stop + 1;
        return 1;
      }
      /* The window ended inside the element: drop what is kept once it is
       * over the cap, then read on. */
      size_t kept = ds->end - ds->pos;
      if (ds->skipping || kept - ds->trail > ds->max_item) {
        ds->skipping = 1;
        ds->skip_bytes += kept;
        ds->pos = ds->scan = ds->end;
      }
      r = src_read(ds, errmsg);
      if (r < 0)
        return r;
      if (r == 0)
        return set_fatal(ds, errmsg, ASSAY_EINVAL,
                         "dataset '%s' ends at line %zu inside the array "
                         "element that starts on line %zu: is the file "
                         "truncated?",
                         ds->name, ds->line, ds->elem_line);
      break;
    }
    case JP_DONE:
      r = json_skip_ws(ds, errmsg);
      if (r < 0)
        return r;
      if (r == 0) {
        ds->phase = JP_END;
        return 0;
      }
      {
        src_fill_snippet(ds);
        char *s = snippet(ds->data, ds->pos, ds->end);
        r = set_fatal(ds, errmsg, ASSAY_EINVAL,
                      "dataset '%s' has text after its JSON array on line "
                      "%zu: '%s'",
                      ds->name, ds->line, s);
        free(s);
      }
      return r;
    default:
      return 0;
    }
  }
}

/* --- CSV ----------------------------------------------------------------- */

static void csv_reset_record(struct csv_reader *c) {
  c->fields_len = 0;
  c->nstored = 0;
  c->nfields = 0;
  c->rec_bytes = 0;
  c->overflow = 0;
  c->bad_utf8_col = 0;
  c->row_open = 0;
  c->row_done = 0;
}

static void csv_open_row(struct assay_dataset *ds) {
  struct csv_reader *c = &ds->csv;
  csv_reset_record(c);
  c->row_open = 1;
  c->rec_line = ds->line;
}

/* libcsv: one field of the current record. */
static void csv_on_field(void *s, size_t len, void *data) {
  struct assay_dataset *ds = data;
  struct csv_reader *c = &ds->csv;
  if (!c->row_open)
    csv_open_row(ds); /* only with lone '\r' line ends */
  c->nfields++;
  if (c->overflow || (c->header_done && c->nfields > c->ncols))
    return;
  if (c->bad_utf8_col == 0 && !assay__utf8_valid(s, len, NULL))
    c->bad_utf8_col = c->nfields;
  if (c->fields_cap - c->fields_len < len + 1) {
    size_t ncap = c->fields_cap ? c->fields_cap : 256;
    while (ncap - c->fields_len < len + 1)
      ncap *= 2;
    c->fields = assay__xrealloc(c->fields, ncap);
    c->fields_cap = ncap;
  }
  if (len > 0)
    memcpy(c->fields + c->fields_len, s, len);
  c->fields[c->fields_len + len] = '\0';
  if (c->nstored == c->offs_cap) {
    c->offs_cap = c->offs_cap ? c->offs_cap * 2 : 16;
    c->offs = assay__xrealloc(c->offs, c->offs_cap * sizeof *c->offs);
  }
  c->offs[c->nstored++] = c->fields_len;
  c->fields_len += len + 1;
}

/* libcsv: the end of the current record. */
static void csv_on_row(int term, void *data) {
  struct assay_dataset *ds = data;
  if (!ds->csv.row_open)
    csv_open_row(ds);
  ds->csv.row_done = 1;
}

/*
 * A malformed row's id, when its "id" column can still be trusted: its
 * record keeps the id the row was written with, so that compare and
 * report match it with the same item of another run. The first column
 * ends at the first separator however the rest of the row is broken; a
 * later one is where the header says only when the row has as many fields.
 */
static void csv_bad_row_id(const struct csv_reader *c,
                           struct assay_dataset_item *item) {
  size_t k = c->id_col;
  if (k == SIZE_MAX || k >= c->nstored || (k > 0 && c->nfields != c->ncols))
    return;
  const char *s = c->fields + c->offs[k];
  if (assay__utf8_valid(s, strlen(s), NULL))
    item->id = cJSON_CreateString(s);
}

/* A record of size bytes is complete: the header, or an item. */
static int csv_record_end(struct assay_dataset *ds, size_t size,
                          char **errmsg) {
  struct csv_reader *c = &ds->csv;
  c->row_open = 0;
  c->row_done = 0;
  if (!c->header_done) {
    if (c->unclosed)
      return set_fatal(ds, errmsg, ASSAY_EINVAL,
                       "%s:%zu: a quoted field of the header never "
                       "closes: a closing '\"' is missing",
                       ds->name, c->rec_line);
    if (c->overflow || size > ds->max_item)
      return set_fatal(ds, errmsg, ASSAY_EINVAL,
                       "%s:%zu: the header row is %zu bytes, over the "
                       "%zu-byte limit (--max-item-bytes)",
                       ds->name, c->rec_line, size, ds->max_item);
    if (c->bad_utf8_col != 0)
      return set_fatal(ds, errmsg, ASSAY_EINVAL,
                       "%s:%zu: invalid UTF-8 in column %zu of the header "
                       "(datasets must be UTF-8)",
                       ds->name, c->rec_line, c->bad_utf8_col);
    for (size_t i = 0; i < c->nstored; i++)
      for (size_t k = 0; k < i; k++)
        if (strcmp(c->fields + c->offs[i], c->fields + c->offs[k]) == 0)
          return set_fatal(ds, errmsg, ASSAY_EINVAL,
                           "%s:%zu: column '%s' appears twice in the header",
                           ds->name, c->rec_line, c->fields + c->offs[i]);
    c->ncols = c->nstored;
    c->cols = assay__xcalloc(c->ncols ? c->ncols : 1, sizeof *c->cols);
    c->id_col = SIZE_MAX;
    for (size_t i = 0; i < c->ncols; i++) {
      c->cols[i] = assay__xstrdup(c->fields + c->offs[i]);
      if (strcmp(c->cols[i], "id") == 0)
        c->id_col = i;
    }
    c->header_done = 1;
    return 0;
  }
  struct assay_dataset_item *item = &c->item;
  memset(item, 0, sizeof *item);
  item->line = c->rec_line;
  c->have_item = 1;
  if (c->unclosed) {
    item_error(ds->name, item, c->rec_line,
               "a quoted field opened in this row never closes (a "
               "closing '\"' is missing), so it ran to the end of the file");
  } else if (c->overflow || size > ds->max_item) {
    item_oversize(ds, item, c->rec_line, size);
  } else if (c->nfields != c->ncols) {
    item_error(ds->name, item, c->rec_line, "row has %zu field%s, the header has %zu",
               c->nfields, c->nfields == 1 ? "" : "s", c->ncols);
  } else if (c->bad_utf8_col != 0) {
    item_error(ds->name, item, c->rec_line,
               "invalid UTF-8 in column '%s' (datasets must be UTF-8)",
               c->cols[c->bad_utf8_col - 1]);
  }
  if (item->error != NULL) {
    csv_bad_row_id(c, item);
  } else {
    cJSON *obj = cJSON_CreateObject();
    for (size_t i = 0; i < c->ncols; i++)
      cJSON_AddItemToObject(obj, c->cols[i],
                            cJSON_CreateString(c->fields + c->offs[i]));
    item->json = obj;
  }
  return 0;
}

/* The next item; with header_only (and item NULL), up to the end of the
 * header, or of the input when there is none. */
static int csv_next(struct assay_dataset *ds, struct assay_dataset_item *item,
                    char **errmsg, int header_only) {
  struct csv_reader *c = &ds->csv;
  for (;;) {
    if (header_only && (c->header_done || c->fini_done))
      return 0;
    if (c->have_item) {
      *item = c->item;
      c->have_item = 0;
      return 1;
    }
    if (ds->pos == ds->end) {
      if (!ds->eof) {
        int r = src_read(ds, errmsg);
        if (r < 0)
          return r;
        continue;
      }
      if (c->fini_done)
        return 0;
      c->fini_done = 1;
      /* A last record without a line end, or one whose quoted field never
       * closed: CSV_STRICT_FINI has csv_fini say so (CSV_STRICT, which it
       * needs, changes only how later bytes would be parsed). */
      csv_set_opts(&c->parser, CSV_STRICT | CSV_STRICT_FINI);
      if (csv_fini(&c->parser, csv_on_field, csv_on_row, ds) != 0) {
        c->unclosed = 1;
        c->row_done = 1;
      }
      if (c->row_done) {
        int r = csv_record_end(ds, c->rec_bytes, errmsg);
        if (r < 0)
          return r;
      }
      continue;
    }
    /* One piece: up to and including the next line end, so that at most
     * one record ends in it, at its last byte. */
    const char *p = ds->data + ds->pos;
    size_t n = ds->end - ds->pos, k = 0;
    while (k < n && p[k] != '\n' && p[k] != '\r')
      k++;
    if (k < n)
      k++;
    if (!c->row_open) {
      size_t i = 0;
      while (i < k && is_ws(p[i]))
        i++;
      if (i < k) {
        csv_open_row(ds);
        c->rec_bytes = c->lead_ws; /* the line's start, read before */
        c->lead_ws = 0;
      } else if (p[k - 1] != '\n' && p[k - 1] != '\r') {
        /* Only blanks so far, and the line goes on past the window:
         * read at once, the line would be one piece, counted whole. */
        c->lead_ws += k;
      } else {
        c->lead_ws = 0;
      }
    }
    if (csv_parse(&c->parser, p, k, csv_on_field, csv_on_row, ds) != k)
      return set_fatal(ds, errmsg, ASSAY_EIO, "cannot read dataset '%s': %s",
                       ds->name, csv_strerror(csv_error(&c->parser)));
    ds->pos = ds->scan = ds->pos + k;
    if (p[k - 1] == '\n')
      ds->line++;
    /* Grow libcsv's field buffer geometrically rather than by one block. */
    size_t bufsize = csv_get_buffer_size(&c->parser);
    if (bufsize > c->parser.blk_size)
      csv_set_blk_size(&c->parser, bufsize);
    if (c->row_done) {
      int r = csv_record_end(ds, c->rec_bytes + k - 1, errmsg);
      if (r < 0)
        return r;
    } else if (c->row_open) {
      c->rec_bytes += k;
      if (c->rec_bytes > ds->max_item)
        c->overflow = 1;
      /* While skipping a record over the cap, keep libcsv's field from
       * growing: its content is dropped anyway. entry_pos and spaces are
       * public fields of struct csv_parser; entry_pos stays at least one
       * byte past spaces so that trimming a closing quote and spaces never
       * goes below zero. */
      if (c->overflow && c->parser.entry_pos > READ_MIN) {
        c->parser.entry_pos = 1;
        c->parser.spaces = 0;
      }
    }
  }
}

/* Reads what the input begins with, at open, so that a file that cannot be
 * read as a dataset is refused before a run writes anything: that it is
 * text, a UTF-8 byte order mark (skipped), a CSV's header, a JSON array's
 * '['. On failure errno is 0 unless reading failed. */
static int src_prime(struct assay_dataset *ds, char **errmsg) {
  int r = src_sniff(ds, errmsg);
  if (r == 0) {
    if (ds->end - ds->pos >= 3 &&
        memcmp(ds->data + ds->pos, "\xEF\xBB\xBF", 3) == 0)
      ds->pos += 3;
    ds->scan = ds->pos;
    if (ds->format == ASSAY_DATASET_CSV)
      r = csv_next(ds, NULL, errmsg, 1);
    else if (ds->format == ASSAY_DATASET_JSON)
      r = json_start(ds, errmsg);
  }
  if (r < 0 && r != ASSAY_EIO)
    errno = 0;
  return r;
}

/* --- the API ------------------------------------------------------------- */

static int format_of(const char *name, int format) {
  if (format != ASSAY_DATASET_AUTO)
    return format;
  const char *slash = strrchr(name, '/');
  const char *dot = strrchr(slash ? slash : name, '.');
  if (dot != NULL && strcasecmp(dot, ".json") == 0)
    return ASSAY_DATASET_JSON;
  if (dot != NULL && strcasecmp(dot, ".csv") == 0)
    return ASSAY_DATASET_CSV;
  return ASSAY_DATASET_JSONL;
}

static struct assay_dataset *dataset_new(const char *name, int format,
                                         size_t max_item_bytes) {
  struct assay_dataset *ds = assay__xcalloc(1, sizeof *ds);
  ds->name = assay__xstrdup(name);
  ds->format = format;
  ds->max_item = max_item_bytes ? max_item_bytes : ASSAY_DEFAULT_MAX_ITEM_BYTES;
  ds->fd = -1;
  ds->line = 1;
  ds->phase = JP_START;
  if (format == ASSAY_DATASET_CSV) {
    csv_init(&ds->csv.parser, 0);
    /* Out of memory aborts, as everywhere in the host. */
    csv_set_realloc_func(&ds->csv.parser, assay__xrealloc);
    csv_set_blk_size(&ds->csv.parser, 1024);
    ds->csv.parser_ready = 1;
  }
  return ds;
}

static int check_format(int format, char **errmsg) {
  if (format < ASSAY_DATASET_AUTO || format > ASSAY_DATASET_CSV)
    return assay__fail(errmsg, ASSAY_EINVAL, "unknown dataset format %d",
                       format);
  return 0;
}

/* Primes d and hands it out, or frees it. */
static int dataset_ready(struct assay_dataset **ds, struct assay_dataset *d,
                         char **errmsg) {
  int r = src_prime(d, errmsg);
  if (r < 0) {
    int why = errno;
    assay_dataset_free(d);
    errno = why;
    return r;
  }
  *ds = d;
  return 0;
}

int assay_dataset_open(struct assay_dataset **ds, const char *path, int format,
                       size_t max_item_bytes, char **errmsg) {
  *ds = NULL;
  int r = check_format(format, errmsg);
  if (r < 0)
    return r;
  int fd = 0, own = 0;
  const char *name = "<stdin>";
  if (strcmp(path, "-") == 0) {
    if (format == ASSAY_DATASET_AUTO)
      format = ASSAY_DATASET_JSONL;
  } else {
    name = path;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int why = fd < 0                                       ? errno
              : fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) ? EISDIR
                                                           : 0;
    if (why != 0) {
      if (fd >= 0)
        close(fd);
      r = assay__fail(errmsg, why == ENOENT ? ASSAY_ENOENT : ASSAY_EIO,
                      "cannot open dataset '%s': %s", path, strerror(why));
      errno = why;
      return r;
    }
    own = 1;
  }
  struct assay_dataset *d =
      dataset_new(name, format_of(name, format), max_item_bytes);
  d->fd = fd;
  d->own_fd = own;
  d->format_given = format;
  if (own) {
    struct stat st;
    d->path = assay__xstrdup(path);
    d->size = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : -1;
  } else {
    d->size = -1;
  }
  d->cap = 2 * READ_MIN;
  d->buf = assay__xmalloc(d->cap);
  d->data = d->buf;
  return dataset_ready(ds, d, errmsg);
}

int assay_dataset_open_mem(struct assay_dataset **ds, const char *name,
                           const char *data, size_t len, int format,
                           size_t max_item_bytes, char **errmsg) {
  *ds = NULL;
  int r = check_format(format, errmsg);
  if (r < 0)
    return r;
  struct assay_dataset *d =
      dataset_new(name, format_of(name, format), max_item_bytes);
  d->data = data != NULL ? data : "";
  d->end = data != NULL ? len : 0;
  d->eof = 1;
  d->mem = d->data;
  d->mem_len = d->end;
  d->size = (off_t)d->end;
  d->format_given = format;
  return dataset_ready(ds, d, errmsg);
}

static int select_next(struct assay_dataset *ds,
                       struct assay_dataset_item *item, char **errmsg);

int assay_dataset_next(struct assay_dataset *ds,
                       struct assay_dataset_item *item, char **errmsg) {
  if (ds->sel != NULL)
    return select_next(ds, item, errmsg);
  return assay__dataset_raw_next(ds, item, errmsg);
}

int assay__dataset_raw_next(struct assay_dataset *ds,
                            struct assay_dataset_item *item, char **errmsg) {
  memset(item, 0, sizeof *item);
  if (ds->fatal != NULL) {
    if (errmsg != NULL)
      *errmsg = assay__xstrdup(ds->fatal);
    return ds->fatal_err;
  }
  ds->started = 1;
  int r;
  switch (ds->format) {
  case ASSAY_DATASET_JSON:
    r = json_next(ds, item, errmsg);
    break;
  case ASSAY_DATASET_CSV:
    r = csv_next(ds, item, errmsg, 0);
    break;
  default:
    r = jsonl_next(ds, item, errmsg);
    break;
  }
  if (r == 1)
    item->index = ds->items++;
  return r;
}

const char *assay_dataset_name(const struct assay_dataset *ds) {
  return ds->name;
}

static void selection_free(struct selection *sel);

void assay_dataset_free(struct assay_dataset *ds) {
  if (ds == NULL)
    return;
  selection_free(ds->sel);
  free(ds->path);
  if (ds->own_fd)
    close(ds->fd);
  struct csv_reader *c = &ds->csv;
  if (c->parser_ready)
    csv_free(&c->parser);
  for (size_t i = 0; i < c->ncols; i++)
    free(c->cols[i]);
  free(c->cols);
  free(c->fields);
  free(c->offs);
  if (c->have_item)
    assay_dataset_item_clear(&c->item);
  free(ds->fatal);
  free(ds->buf);
  free(ds->name);
  free(ds);
}

/* ---- selection: --offset, --ids, --shard, --shuffle ------------------------ */

/* An item held during a shuffle pass, with its sort key. */
struct held {
  uint64_t key;
  struct assay_dataset_item item;
};

struct selection {
  int64_t offset;
  int shard_index, shard_count;
  char **ids; /* sorted, for bsearch, each once */
  size_t nids;
  unsigned char *seen; /* ids[i] was some item's id */
  int64_t nitems;      /* items in the file, once read to its end */
  int done;            /* the selection handed out its last item */
  int shuffle;
  uint64_t seed;
  /* Shuffle: pass b keeps the items whose key falls in bucket b, sorted. */
  uint64_t nbuckets, bucket;
  struct assay_dataset *reader; /* this pass's reader (pass 0: the dataset) */
  struct held *held;
  size_t nheld, capheld, next;
  int filled;
};

static int cmp_held(const void *a, const void *b) {
  uint64_t x = ((const struct held *)a)->key, y = ((const struct held *)b)->key;
  return x < y ? -1 : x > y;
}

/* A well-mixed 64-bit key of an index (splitmix64's finaliser). */
static uint64_t shuffle_key(uint64_t seed, int64_t index) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * ((uint64_t)index + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void selection_free(struct selection *sel) {
  if (sel == NULL)
    return;
  for (size_t i = 0; i < sel->nids; i++)
    free(sel->ids[i]);
  free(sel->ids);
  free(sel->seen);
  for (size_t i = sel->next; i < sel->nheld; i++)
    assay_dataset_item_clear(&sel->held[i].item);
  free(sel->held);
  free(sel);
}

/* Items bigger than this per pass of a shuffle are read in several. */
#define SHUFFLE_PASS_BYTES ((off_t)32 << 20)

int assay_dataset_select(struct assay_dataset *ds,
                         const struct assay_selection *opts, char **errmsg) {
  if (ds->started || ds->sel != NULL)
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "a selection must be set before reading");
  if (opts->offset < 0 || opts->shard_count < 0 ||
      (opts->shard_count > 0 &&
       (opts->shard_index < 0 || opts->shard_index >= opts->shard_count)))
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "invalid selection: the offset must be >= 0 and the "
                       "shard index within 0..count-1");
  if (opts->shuffle && ds->path == NULL && ds->mem == NULL)
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "--shuffle reads the dataset more than once, so it "
                       "needs a file, not standard input");
  struct selection *sel = assay__xcalloc(1, sizeof *sel);
  sel->offset = opts->offset;
  sel->shard_index = opts->shard_index;
  sel->shard_count = opts->shard_count;
  sel->shuffle = opts->shuffle;
  sel->seed = opts->seed;
  for (size_t i = 0; opts->ids != NULL && opts->ids[i] != NULL; i++) {
    sel->ids = assay__xrealloc(sel->ids, (sel->nids + 1) * sizeof *sel->ids);
    sel->ids[sel->nids++] = assay__xstrdup(opts->ids[i]);
  }
  if (sel->nids > 0) {
    qsort(sel->ids, sel->nids, sizeof *sel->ids, assay__cmp_str);
    size_t k = 1;
    for (size_t i = 1; i < sel->nids; i++)
      if (strcmp(sel->ids[i], sel->ids[k - 1]) != 0)
        sel->ids[k++] = sel->ids[i];
      else
        free(sel->ids[i]);
    sel->nids = k;
    sel->seen = assay__xcalloc(sel->nids, 1);
  }
  if (sel->shuffle) {
    off_t size = ds->size > 0 ? ds->size : 1;
    sel->nbuckets = (uint64_t)((size + SHUFFLE_PASS_BYTES - 1) / SHUFFLE_PASS_BYTES);
    if (sel->nbuckets < 1)
      sel->nbuckets = 1;
    sel->reader = ds;
  }
  ds->sel = sel;
  return 0;
}

/* Whether the item passes --offset, --shard and --ids. Its id is looked up
 * first, so that an id is known to be in the file whatever else drops it. */
static int selected(struct selection *sel,
                    const struct assay_dataset_item *it) {
  if (it->index >= sel->nitems)
    sel->nitems = it->index + 1;
  if (sel->nids > 0) {
    /* The id its record gets: a string or number "id" field (of a
     * malformed item, what the reader could read of it), else the index.
     * Number ids match as they print: 7 as "7". */
    const cJSON *id =
        it->json ? cJSON_GetObjectItemCaseSensitive(it->json, "id") : it->id;
    char buf[64];
    const char *text = buf;
    if (cJSON_IsString(id)) {
      text = id->valuestring;
    } else if (cJSON_IsNumber(id)) {
      char *p = cJSON_PrintUnformatted(id);
      snprintf(buf, sizeof buf, "%s", p ? p : "");
      free(p);
    } else {
      snprintf(buf, sizeof buf, "%lld", (long long)it->index);
    }
    char **hit =
        bsearch(&text, sel->ids, sel->nids, sizeof *sel->ids, assay__cmp_str);
    if (hit == NULL)
      return 0;
    sel->seen[hit - sel->ids] = 1;
  }
  if (it->index < sel->offset)
    return 0;
  if (sel->shard_count > 0 && it->index % sel->shard_count != sel->shard_index)
    return 0;
  return 1;
}

void assay_dataset_item_clear(struct assay_dataset_item *it) {
  cJSON_Delete(it->json);
  free(it->error);
  free(it->raw);
  cJSON_Delete(it->id);
  it->json = it->id = NULL;
  it->error = it->raw = NULL;
}

/* Reads one pass of a shuffle: every selected item of the current bucket,
 * sorted by key. Returns 0, or a negative code when the file cannot be read
 * again. */
static int shuffle_fill(struct assay_dataset *ds, char **errmsg) {
  struct selection *sel = ds->sel;
  struct assay_dataset *r = sel->reader;
  if (r == NULL) {
    int rc = ds->path != NULL
                 ? assay_dataset_open(&r, ds->path, ds->format_given,
                                      ds->max_item, errmsg)
                 : assay_dataset_open_mem(&r, ds->name, ds->mem, ds->mem_len,
                                          ds->format_given, ds->max_item,
                                          errmsg);
    if (rc != 0)
      return rc;
  }
  sel->nheld = sel->next = 0;
  for (;;) {
    struct assay_dataset_item it;
    int rc = assay__dataset_raw_next(r, &it, errmsg);
    if (rc < 0) {
      if (r != ds)
        assay_dataset_free(r);
      sel->reader = NULL;
      return rc;
    }
    if (rc == 0)
      break;
    uint64_t key = shuffle_key(sel->seed, it.index);
    uint64_t bucket =
        (uint64_t)(((unsigned __int128)key * sel->nbuckets) >> 64);
    if (bucket != sel->bucket || !selected(sel, &it)) {
      assay_dataset_item_clear(&it);
      continue;
    }
    if (sel->nheld == sel->capheld) {
      sel->capheld = sel->capheld ? 2 * sel->capheld : 256;
      sel->held = assay__xrealloc(sel->held, sel->capheld * sizeof *sel->held);
    }
    sel->held[sel->nheld].key = key;
    sel->held[sel->nheld++].item = it;
  }
  if (r != ds)
    assay_dataset_free(r);
  sel->reader = NULL;
  if (sel->nheld > 1)
    qsort(sel->held, sel->nheld, sizeof *sel->held, cmp_held);
  return 0;
}

static int select_next(struct assay_dataset *ds,
                       struct assay_dataset_item *item, char **errmsg) {
  struct selection *sel = ds->sel;
  if (!sel->shuffle) {
    for (;;) {
      int rc = assay__dataset_raw_next(ds, item, errmsg);
      if (rc == 0)
        sel->done = 1;
      if (rc <= 0 || selected(sel, item))
        return rc;
      assay_dataset_item_clear(item);
    }
  }
  while (sel->next == sel->nheld) {
    if (sel->filled && ++sel->bucket >= sel->nbuckets) {
      sel->done = 1;
      return 0;
    }
    int rc = shuffle_fill(ds, errmsg);
    if (rc < 0)
      return rc;
    sel->filled = 1;
  }
  *item = sel->held[sel->next++].item;
  return 1;
}

int64_t assay_dataset_count(const char *path, int format) {
  if (strcmp(path, "-") == 0 || format_of(path, format) != ASSAY_DATASET_JSONL)
    return -1;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return -1;
  }
  /* Lines holding anything but blanks: what the JSONL reader hands out. */
  static const size_t chunk = 1 << 20;
  char *buf = assay__xmalloc(chunk);
  int64_t n = 0;
  int content = 0;
  ssize_t r;
  while ((r = read(fd, buf, chunk)) > 0 || (r < 0 && errno == EINTR)) {
    for (ssize_t i = 0; i < r; i++) {
      char c = buf[i];
      if (c == '\n') {
        n += content;
        content = 0;
      } else if (!content && !is_ws(c) && c != '\xef' && c != '\xbb' &&
                 c != '\xbf') {
        content = 1;
      }
    }
  }
  n += content;
  free(buf);
  close(fd);
  return r < 0 ? -1 : n;
}

int assay_dataset_defer(struct assay_dataset *ds) {
  if (ds->started || ds->format != ASSAY_DATASET_JSONL ||
      (ds->sel != NULL && (ds->sel->nids > 0 || ds->sel->shuffle)))
    return 0;
  ds->defer = 1;
  return 1;
}

int assay_dataset_selection_end(const struct assay_dataset *ds, int64_t *nitems,
                                const char ***unseen) {
  const struct selection *sel = ds->sel;
  *nitems = 0;
  *unseen = NULL;
  if (sel == NULL || !sel->done)
    return 0;
  *nitems = sel->nitems;
  size_t n = 0;
  const char **list = assay__xcalloc(sel->nids + 1, sizeof *list);
  for (size_t i = 0; i < sel->nids; i++)
    if (!sel->seen[i])
      list[n++] = sel->ids[i];
  *unseen = list;
  return 1;
}
