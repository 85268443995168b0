/*
 * assay report RESULTS.jsonl [RESULTS2.jsonl]: one self-contained HTML
 * file showing a run (or two side by side). The records stream from the
 * file straight into the page as compact JSON inside a
 * <script type="application/json">, so memory stays bounded by one record
 * however large the run; the page's own script (report_assets.h) draws
 * everything from that data. The summary is recomputed from the records
 * (core/summary.h) and takes the run's name, configuration and plugins from
 * the summary file beside the records when there is one.
 */
#include <config.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "files.h"
#include "dataset.h"
#include "report_assets.h"
#include "summary.h"
#include "util.h"

/* Caps: score names per run (the summary's own cap), a record line, a
 * summary file, and by default any one string of a record in the page (a
 * 10 MB model output would make the report unusable, not more useful). */
#define MAX_SCORES 1024
#define MAX_RECORD_BYTES ((size_t)256 << 20)
#define DEFAULT_MAX_TEXT 20000

static const char report_help[] =
    "usage: assay report RESULTS.jsonl [RESULTS2.jsonl] [options]\n"
    "\n"
    "Writes one self-contained HTML file (no network, no external files) that\n"
    "shows the run: summary and configuration, failures and errors, per score\n"
    "a histogram and score versus task time, and a table of every item that\n"
    "can be sorted, filtered and paged, with each item's input, output,\n"
    "scores, reasons and errors on a click. Given two records files it shows\n"
    "them side by side, items paired by (id, trial), with score differences.\n"
    "The summary beside each records file (<records minus "
    ".jsonl>.summary.json)\n"
    "is used when present.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE     the HTML file (default: the first records file\n"
    "                        with .html for .jsonl); '-' writes to stdout\n"
    "  --max-text N          shorten longer strings of inputs, outputs and\n"
    "                        reasons in the page to N bytes (default 20000;\n"
    "                        0 keeps everything)\n"
    "  --max-record-bytes N  largest record line read (default 256 MiB)\n"
    "  -q, --quiet           no line naming the page written (warnings and\n"
    "                        errors are still printed)\n"
    "  -h, --help            this help\n"
    "\n"
    "exit status: 0 written, 2 usage or input error.\n";

/* ---- output with escaping -------------------------------------------- */

struct out {
  FILE *f;
  int failed; /* errno of the first failed write, or 0 */
};

static void put(struct out *o, const char *s, size_t n) {
  if (o->failed || n == 0)
    return;
  if (fwrite(s, 1, n, o->f) != n)
    o->failed = errno ? errno : EIO;
}

static void puts_(struct out *o, const char *s) {
  put(o, s, strlen(s));
}

/*
 * JSON text into the data <script>: every '<' becomes \u003c, which JSON.parse
 * reads back as '<'. JSON has '<' only inside strings, so this leaves the
 * data intact, and no "</script>", "<!--" or "<script" can end or change the
 * script element whatever a record contains.
 */
static void put_json(struct out *o, const char *s) {
  const char *p;
  while ((p = strchr(s, '<')) != NULL) {
    put(o, s, (size_t)(p - s));
    puts_(o, "\\u003c");
    s = p + 1;
  }
  puts_(o, s);
}

static void put_json_value(struct out *o, const cJSON *v) {
  char *text = assay__json_print(v);
  put_json(o, text);
  free(text);
}

/* Text into HTML element content or a quoted attribute. */
static void put_html(struct out *o, const char *s) {
  for (; *s; s++) {
    switch (*s) {
    case '&':
      puts_(o, "&amp;");
      break;
    case '<':
      puts_(o, "&lt;");
      break;
    case '>':
      puts_(o, "&gt;");
      break;
    case '"':
      puts_(o, "&quot;");
      break;
    case '\'':
      puts_(o, "&#39;");
      break;
    default:
      put(o, s, 1);
    }
  }
}

/* ---- records --------------------------------------------------------- */

/* Cuts every string under v longer than max bytes, on a character
 * boundary, and says so in the text. Returns how many were cut. */
static long shorten(cJSON *v, size_t max) {
  long n = 0;
  if (max == 0 || v == NULL)
    return 0;
  if (cJSON_IsString(v) && v->valuestring != NULL) {
    size_t len = strlen(v->valuestring);
    if (len <= max)
      return 0;
    size_t cut = max;
    while (cut > 0 && ((unsigned char)v->valuestring[cut] & 0xc0) == 0x80)
      cut--;
    char *s = assay__format("%.*s\xe2\x80\xa6 [shortened for the report: %zu "
                            "bytes in all]",
                            (int)cut, v->valuestring, len);
    cJSON_SetValuestring(v, s);
    free(s);
    return 1;
  }
  cJSON *c;
  cJSON_ArrayForEach(c, v) n += shorten(c, max);
  return n;
}

struct run {
  const char *path;
  char *summary_path;
  cJSON *file_summary;
  struct assay_summary *stats;
  char *names[MAX_SCORES];
  int nnames;
  long records, truncated, skipped;
  size_t max_text;
};

static int name_index(struct run *r, const char *name) {
  for (int i = 0; i < r->nnames; i++)
    if (strcmp(r->names[i], name) == 0)
      return i;
  if (r->nnames >= MAX_SCORES)
    return -1;
  r->names[r->nnames] = assay__xstrdup(name);
  return r->nnames++;
}

/*
 * One record as the page reads it: [index, id, trial, error code, error
 * message, attempts, task_ms, metrics_ms, scores, input, output], scores an
 * array in the order of the run's score names, each null (the record has
 * not that score), the value alone (no reason, no error), or [value, reason,
 * error]. Positions instead of member names keep a 100,000-record page
 * small. Takes input and output from rec (detached, no copies).
 */
static cJSON *compact(struct run *r, cJSON *rec) {
  cJSON *a = cJSON_CreateArray();
  const char *keep[] = {"index", "id", "trial"};
  for (size_t i = 0; i < assay__array_size(keep); i++) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(rec, keep[i]);
    cJSON_AddItemToArray(a, m && (cJSON_IsNumber(m) || cJSON_IsString(m))
                                ? cJSON_Duplicate(m, 0)
                                : cJSON_CreateNumber(0));
  }
  cJSON *err = cJSON_GetObjectItemCaseSensitive(rec, "error");
  if (err != NULL && !cJSON_IsNull(err)) {
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
    cJSON_AddItemToArray(a, cJSON_CreateString(cJSON_IsString(code)
                                                   ? code->valuestring
                                                   : "unknown"));
    if (cJSON_IsString(msg)) {
      cJSON *m = cJSON_CreateString(msg->valuestring);
      r->truncated += shorten(m, r->max_text);
      cJSON_AddItemToArray(a, m);
    } else {
      cJSON_AddItemToArray(a, cJSON_CreateNull());
    }
  } else {
    cJSON_AddItemToArray(a, cJSON_CreateNull());
    cJSON_AddItemToArray(a, cJSON_CreateNull());
  }
  const char *nums[] = {"attempts", "task_ms", "metrics_ms"};
  for (size_t i = 0; i < assay__array_size(nums); i++) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(rec, nums[i]);
    cJSON_AddItemToArray(a, cJSON_IsNumber(m) && isfinite(m->valuedouble)
                                ? cJSON_CreateNumber(m->valuedouble)
                                : cJSON_CreateNumber(0));
  }

  /* Scores by position; the array is as long as the last score present. */
  cJSON *slots[MAX_SCORES];
  int used = 0;
  const cJSON *scores = cJSON_GetObjectItemCaseSensitive(rec, "scores");
  const cJSON *s;
  cJSON_ArrayForEach(s, scores) {
    int i = name_index(r, s->string);
    if (i < 0)
      continue;
    while (used <= i)
      slots[used++] = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, "value");
    const cJSON *why = cJSON_GetObjectItemCaseSensitive(s, "reason");
    const cJSON *bad = cJSON_GetObjectItemCaseSensitive(s, "error");
    cJSON *value = cJSON_IsNumber(v) && isfinite(v->valuedouble)
                       ? cJSON_CreateNumber(v->valuedouble)
                       : cJSON_CreateNull();
    if (!cJSON_IsString(why) && !cJSON_IsString(bad) && !cJSON_IsNull(value)) {
      slots[i] = value;
      continue;
    }
    cJSON *t = cJSON_CreateArray();
    cJSON_AddItemToArray(t, value);
    cJSON_AddItemToArray(t, cJSON_IsString(why)
                                ? cJSON_CreateString(why->valuestring)
                                : cJSON_CreateNull());
    cJSON_AddItemToArray(t, cJSON_IsString(bad)
                                ? cJSON_CreateString(bad->valuestring)
                                : cJSON_CreateNull());
    r->truncated += shorten(t, r->max_text);
    slots[i] = t;
  }
  cJSON *sa = cJSON_CreateArray();
  for (int i = 0; i < used; i++)
    cJSON_AddItemToArray(sa, slots[i] ? slots[i] : cJSON_CreateNull());
  cJSON_AddItemToArray(a, sa);

  const char *big[] = {"input", "output"};
  for (size_t i = 0; i < assay__array_size(big); i++) {
    cJSON *m = cJSON_DetachItemFromObjectCaseSensitive(rec, big[i]);
    if (m == NULL)
      m = cJSON_CreateNull();
    r->truncated += shorten(m, r->max_text);
    cJSON_AddItemToArray(a, m);
  }
  return a;
}

/* The checks a record must pass to be shown: the members the page reads
 * have the types docs/results.md gives them. NULL or what is wrong. */
static const char *record_problem(const cJSON *rec) {
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
  if (!cJSON_IsString(id) && !cJSON_IsNumber(id))
    return "record has no string or number 'id'";
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(rec, "trial");
  if (t != NULL && !cJSON_IsNumber(t))
    return "record 'trial' is not a number";
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(rec, "scores");
  if (s != NULL && !cJSON_IsNull(s) && !cJSON_IsObject(s))
    return "record 'scores' is not an object";
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(rec, "error");
  if (e != NULL && !cJSON_IsNull(e) && !cJSON_IsObject(e))
    return "record 'error' is neither null nor an object";
  return NULL;
}

/*
 * Streams the records of r->path into the page as the "records" array.
 * A malformed line is an error naming the file and line, except an
 * incomplete last line (a run killed mid-write), which is skipped with a
 * warning as docs/results.md asks of readers.
 */
struct write_ctx {
  struct run *r;
  struct out *o;
};

static int write_one(void *arg, const cJSON *record, size_t line) {
  struct write_ctx *w = arg;
  struct run *r = w->r;
  const char *problem = record_problem(record);
  if (problem != NULL) {
    fprintf(stderr,
            "assay: %s:%zu: %s; is this a records file written by "
            "'assay run'?\n",
            r->path, line, problem);
    return -1;
  }
  assay_summary_add(r->stats, record);
  /* The reader frees the record when this returns; compact() detaches its
   * input and output instead of copying them. */
  cJSON *a = compact(r, (cJSON *)record);
  if (r->records++ > 0)
    puts_(w->o, ",\n");
  put_json_value(w->o, a);
  cJSON_Delete(a);
  return w->o->failed ? -1 : 0;
}

static int write_records(struct run *r, struct out *o, size_t max_bytes) {
  struct write_ctx w = {r, o};
  puts_(o, "[");
  int rc = assay__records_each(r->path, max_bytes, write_one, &w, &r->skipped);
  puts_(o, "]");
  return rc;
}

static void put_string_member(struct out *o, const char *key, const char *v) {
  cJSON *s = v ? cJSON_CreateString(v) : cJSON_CreateNull();
  puts_(o, "\"");
  puts_(o, key);
  puts_(o, "\":");
  put_json_value(o, s);
  cJSON_Delete(s);
}

static int write_run(struct run *r, struct out *o, size_t max_bytes) {
  puts_(o, "{");
  put_string_member(o, "file", r->path);
  puts_(o, ",");
  put_string_member(o, "summary_file", r->summary_path);
  puts_(o, ",\"records\":");
  if (write_records(r, o, max_bytes) < 0)
    return -1;
  cJSON *names = cJSON_CreateArray();
  for (int i = 0; i < r->nnames; i++)
    cJSON_AddItemToArray(names, cJSON_CreateString(r->names[i]));
  puts_(o, ",\n\"scores\":");
  put_json_value(o, names);
  cJSON_Delete(names);
  /* The statistics come from the records, so they are right even when the
   * summary file is missing or says "running"; the run's own description
   * (name, configuration, plugins, engine counters) comes from the file. */
  cJSON *sum = assay_summary_json(r->stats, r->file_summary);
  puts_(o, ",\n\"summary\":");
  put_json_value(o, sum);
  cJSON_Delete(sum);
  char buf[96];
  snprintf(buf, sizeof buf, ",\"truncated\":%ld,\"skipped_lines\":%ld}",
           r->truncated, r->skipped);
  puts_(o, buf);
  return 0;
}

static void run_release(struct run *r) {
  free(r->summary_path);
  cJSON_Delete(r->file_summary);
  assay_summary_free(r->stats);
  for (int i = 0; i < r->nnames; i++)
    free(r->names[i]);
}

/* The run's name for the page title: the summary's name, else the file. */
static const char *run_title(const struct run *r) {
  const cJSON *n = cJSON_GetObjectItemCaseSensitive(r->file_summary, "name");
  if (cJSON_IsString(n) && n->valuestring[0] != '\0')
    return n->valuestring;
  const char *slash = strrchr(r->path, '/');
  return slash ? slash + 1 : r->path;
}

static int write_page(struct run *runs, int nruns, struct out *o,
                      size_t max_bytes) {
  puts_(
      o,
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, "
      "initial-scale=1\">\n"
      "<meta name=\"generator\" content=\"assay " PACKAGE_VERSION "\">\n"
      "<title>assay report: ");
  for (int k = 0; k < nruns; k++) {
    if (k)
      puts_(o, " vs ");
    put_html(o, run_title(&runs[k]));
  }
  puts_(o, "</title>\n<style>\n");
  puts_(o, report_css);
  puts_(o, "</style>\n</head>\n<body>\n<header><h1 id=\"title\">assay "
           "report</h1><p class=\"sub\" id=\"subtitle\">");
  for (int k = 0; k < nruns; k++) {
    if (k)
      puts_(o, " \xc2\xb7 ");
    put_html(o, runs[k].path);
  }
  puts_(o, "</p></header>\n<main id=\"app\"><p>Loading the results\xe2\x80\xa6"
           "</p><noscript><p>This report draws its tables and charts with "
           "JavaScript; the data is in the page source as JSON "
           "(id \"assay-data\").</p></noscript></main>\n"
           "<script type=\"application/json\" id=\"assay-data\">\n");
  char when[32];
  assay__iso8601(assay__wall_time(), when);
  puts_(o, "{\"format\":1,");
  put_string_member(o, "assay_version", PACKAGE_VERSION);
  puts_(o, ",");
  put_string_member(o, "generated", when);
  puts_(o, ",\"runs\":[\n");
  for (int k = 0; k < nruns; k++) {
    if (k)
      puts_(o, ",\n");
    if (write_run(&runs[k], o, max_bytes) < 0)
      return -1;
  }
  puts_(o, "]}\n</script>\n<script>\n");
  puts_(o, report_js);
  puts_(o, "</script>\n</body>\n</html>\n");
  return 0;
}

static int parse_size(const char *s, size_t *out, int zero_ok) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end != '\0' || s[0] == '-' || (v == 0 && !zero_ok))
    return -1;
  *out = (size_t)v;
  return 0;
}

int assay_cmd_report(int argc, char **argv) {
  const char *files[2] = {NULL, NULL}, *output = NULL;
  int nfiles = 0, status = EXIT_OK, quiet = 0;
  size_t max_text = DEFAULT_MAX_TEXT, max_bytes = MAX_RECORD_BYTES;
  char *out_path = NULL;
  struct assay__out out = {.fd = -1};
  int begun = 0;
  struct run runs[2];
  memset(runs, 0, sizeof runs);

  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(report_help, stdout);
      return EXIT_OK;
    }
    if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
      quiet = 1;
      continue;
    }
    if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0 ||
        strcmp(a, "--max-text") == 0 || strcmp(a, "--max-record-bytes") == 0) {
      if (i + 1 >= argc)
        return assay_cli_usage_error("report", "option '%s' needs a value", a);
      const char *v = argv[++i];
      if (a[1] == 'o' || strcmp(a, "--output") == 0) {
        if (v[0] == '\0')
          return assay_cli_usage_error("report", "%s needs a file name", a);
        output = v;
      } else if (strcmp(a, "--max-text") == 0) {
        if (parse_size(v, &max_text, 1) < 0)
          return assay_cli_usage_error(
              "report",
              "--max-text expects a byte count (0 for no "
              "limit), got '%s'",
              v);
      } else if (parse_size(v, &max_bytes, 0) < 0) {
        return assay_cli_usage_error(
            "report",
            "--max-record-bytes expects a byte count, got "
            "'%s'",
            v);
      }
    } else if (a[0] == '-' && a[1] != '\0') {
      return assay_cli_unknown_option("report", report_help, a);
    } else if (nfiles < 2) {
      if (strcmp(a, "-") == 0)
        return assay_cli_usage_error(
            "report", "report reads records files, not standard input");
      files[nfiles++] = a;
    } else {
      return assay_cli_usage_error(
          "report",
          "unexpected argument '%s': report takes one or two "
          "records files",
          a);
    }
  }
  if (nfiles == 0)
    return assay_cli_usage_error("report",
                                 "report needs a records file (RESULTS.jsonl)");

  if (output == NULL) {
    size_t n = strlen(files[0]);
    if (n > 6 && strcmp(files[0] + n - 6, ".jsonl") == 0)
      out_path = assay__format("%.*s.html", (int)(n - 6), files[0]);
    else
      out_path = assay__format("%s.html", files[0]);
  } else {
    out_path = assay__xstrdup(output);
  }
  int to_stdout = strcmp(out_path, "-") == 0;
  for (int k = 0; k < nfiles && !to_stdout; k++) {
    char *beside = assay__summary_path(files[k]);
    int records = assay__same_file(out_path, files[k]);
    int summary = !records && assay__same_file(out_path, beside);
    free(beside);
    if (records || summary) {
      fprintf(stderr,
              "assay: the report '%s' would overwrite the %s it reads; give "
              "another -o FILE\n",
              out_path, records ? "records" : "summary");
      free(out_path);
      return EXIT_USAGE;
    }
  }
  for (int k = 0; k < nfiles; k++) {
    if (access(files[k], R_OK) != 0) {
      fprintf(stderr, "assay: cannot read records '%s': %s\n", files[k],
              strerror(errno));
      free(out_path);
      return EXIT_USAGE;
    }
  }

  /* The page is written to a temporary file renamed into place at the end,
   * so a failed report never leaves half a page under the final name. */
  struct out o = {stdout, 0};
  char *dir = to_stdout ? NULL
                        : assay__dir_for_file("the report's path (-o)",
                                              out_path, "report.html");
  if (dir != NULL) {
    fprintf(stderr, "assay: %s\n", dir);
    free(dir);
    free(out_path);
    return EXIT_USAGE;
  }
  if (!to_stdout) {
    char *derr = NULL;
    if (assay__mkdir_parent(out_path, &derr) != 0) {
      fprintf(stderr, "assay: %s\n", derr);
      free(derr);
      free(out_path);
      return EXIT_USAGE;
    }
    assay__out_remove_on_signals();
    int e = assay__out_begin(&out, out_path);
    begun = 1;
    o.f = e == 0 ? fdopen(out.fd, "w") : NULL;
    if (o.f == NULL) {
      fprintf(stderr, "assay: cannot write the report '%s': %s\n", out_path,
              strerror(e ? e : errno));
      assay__out_end(&out, 0);
      free(out_path);
      return EXIT_USAGE;
    }
  }

  for (int k = 0; k < nfiles; k++) {
    runs[k].path = files[k];
    runs[k].max_text = max_text;
    runs[k].stats = assay_summary_new();
    runs[k].file_summary = assay__summary_beside(files[k], &runs[k].summary_path);
  }
  int rc = write_page(runs, nfiles, &o, max_bytes);
  if (fflush(o.f) != 0 && !o.failed)
    o.failed = errno ? errno : EIO;
  if (!to_stdout && fclose(o.f) != 0 && !o.failed)
    o.failed = errno ? errno : EIO;
  out.fd = -1; /* closed with o.f */
  if (rc < 0)
    status = EXIT_USAGE;
  else if (o.failed)
    status = EXIT_USAGE;
  if (begun) {
    int e = assay__out_end(&out, status == EXIT_OK);
    if (status == EXIT_OK && e != 0)
      o.failed = e, status = EXIT_USAGE;
  }
  if (rc >= 0 && o.failed)
    fprintf(stderr, "assay: cannot write the report '%s': %s\n", out_path,
            strerror(o.failed));
  for (int k = 0; rc >= 0 && k < nfiles; k++)
    if (runs[k].records == 0)
      fprintf(stderr,
              "assay: warning: '%s' holds no records: the report has "
              "nothing of it\n",
              files[k]);
  if (status == EXIT_OK && !to_stdout && !quiet) {
    long total = 0;
    for (int k = 0; k < nfiles; k++)
      total += runs[k].records;
    fprintf(stderr, "report: %s (%ld record%s)\n", out_path, total,
            total == 1 ? "" : "s");
  }
  for (int k = 0; k < nfiles; k++)
    run_release(&runs[k]);
  free(out_path);
  return status;
}
