/*
 * CI gates (see gate.h and docs/ci.md): parsing --pass and --fail-under,
 * judging records and summaries against them, and the JUnit XML writer.
 * The writer streams: a run of millions of records keeps one record in
 * memory, the test cases wait in a temporary file until the counts the
 * header needs are known.
 */
#define _POSIX_C_SOURCE 200809L

#include "gate.h"

#include "files.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "util.h"

/* Caps on what one command-line gate and one test case may hold: a
 * threshold is a short text, and an error message or a judge's reason
 * copied into the XML need not be longer than a person reads. */
#define MAX_GATE_TEXT 4096
#define MAX_MESSAGE 2048
#define MAX_REASON 2048
#define MAX_WHY_PART 512

static const cJSON *member(const cJSON *obj, const char *key) {
  return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key)
                             : NULL;
}

static int finite_number(const cJSON *v, double *out) {
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
    return 0;
  *out = v->valuedouble;
  return 1;
}

/* The shortest of %.15g and %.17g that reads back as v, into buf[32]. */
static void fmt_num(double v, char buf[32]) {
  snprintf(buf, 32, "%.15g", v);
  if (strtod(buf, NULL) != v)
    snprintf(buf, 32, "%.17g", v);
}

/* Bounds [*b, *e) of s with ASCII spaces and tabs trimmed. */
static void trim(const char **b, const char **e) {
  while (*b < *e && (**b == ' ' || **b == '\t'))
    (*b)++;
  while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
    (*e)--;
}

/* Parses [b, e) as a finite number. */
static int parse_number(const char *b, const char *e, double *out) {
  if (b == e || (size_t)(e - b) > 64)
    return 0;
  char buf[72];
  memcpy(buf, b, (size_t)(e - b));
  buf[e - b] = '\0';
  char *end;
  errno = 0;
  double v = strtod(buf, &end);
  if (end != buf + (e - b) || errno == ERANGE || !isfinite(v))
    return 0;
  *out = v;
  return 1;
}

/* ---- thresholds ------------------------------------------------------ */

static const char *const op_texts[] = {">=", ">", "<=", "<", "=="};

const char *assay_threshold_op_text(enum assay_threshold_op op) {
  return (unsigned)op < assay__array_size(op_texts) ? op_texts[op] : "?";
}

int assay_threshold_holds(const struct assay_threshold *t, double v) {
  if (!isfinite(v))
    return 0;
  switch (t->op) {
  case ASSAY_THRESHOLD_GE:
    return v >= t->value;
  case ASSAY_THRESHOLD_GT:
    return v > t->value;
  case ASSAY_THRESHOLD_LE:
    return v <= t->value;
  case ASSAY_THRESHOLD_LT:
    return v < t->value;
  case ASSAY_THRESHOLD_EQ:
    return v == t->value;
  }
  return 0;
}

#define PASS_HINT "expected SCORE>=X (or >, <=, <, ==), e.g. --pass equals>=1"

int assay_threshold_parse(const char *text, struct assay_threshold *t,
                          char **errmsg) {
  t->score = NULL;
  if (text == NULL)
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "--pass: no threshold given; " PASS_HINT);
  size_t len = strlen(text);
  if (len > MAX_GATE_TEXT)
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "--pass: threshold of %zu bytes is too long (at most "
                       "%d)",
                       len, MAX_GATE_TEXT);
  const char *op = strpbrk(text, "<>=");
  if (op == NULL)
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "--pass '%s': no comparison; " PASS_HINT, text);

  size_t oplen;
  if (op[0] == '>' || op[0] == '<') {
    oplen = op[1] == '=' ? 2 : 1;
    t->op = op[0] == '>'
                ? (oplen == 2 ? ASSAY_THRESHOLD_GE : ASSAY_THRESHOLD_GT)
                : (oplen == 2 ? ASSAY_THRESHOLD_LE : ASSAY_THRESHOLD_LT);
  } else if (op[1] == '=') {
    oplen = 2;
    t->op = ASSAY_THRESHOLD_EQ;
  } else if (op[1] == '>' || op[1] == '<') {
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "--pass '%s': unknown comparison '=%c'; write '%c=' "
                       "instead",
                       text, op[1], op[1]);
  } else {
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "--pass '%s': a single '=' is not a comparison; write "
                       "'==' for equality (--fail-under SCORE=X gates a mean)",
                       text);
  }

  const char *nb = text, *ne = op;
  trim(&nb, &ne);
  if (nb == ne)
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "--pass '%s': no score name before '%s'; " PASS_HINT,
                       text, op_texts[t->op]);
  const char *vb = op + oplen, *ve = text + len;
  trim(&vb, &ve);
  if (vb == ve)
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "--pass '%s': no number after '%s'; " PASS_HINT, text,
                       op_texts[t->op]);
  if (!parse_number(vb, ve, &t->value))
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "--pass '%s': '%.*s' is not a finite number; " PASS_HINT,
                       text, (int)(ve - vb), vb);
  t->score = assay__xstrndup(nb, (size_t)(ne - nb));
  return 0;
}

void assay_threshold_release(struct assay_threshold *t) {
  if (t == NULL)
    return;
  free(t->score);
  t->score = NULL;
}

int assay_fail_under_parse(const char *text, struct assay_fail_under *f,
                           char **errmsg) {
  f->score = NULL;
  if (text == NULL)
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "--fail-under: no gate given; expected SCORE=X, e.g. "
                       "--fail-under equals=0.8");
  size_t len = strlen(text);
  if (len > MAX_GATE_TEXT)
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "--fail-under: gate of %zu bytes is too long (at most "
                       "%d)",
                       len, MAX_GATE_TEXT);
  const char *eq = strrchr(text, '=');
  if (eq == NULL)
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "--fail-under '%s': no '='; expected SCORE=X, e.g. "
                       "--fail-under equals=0.8",
                       text);
  const char *nb = text, *ne = eq;
  trim(&nb, &ne);
  if (nb < ne && strchr("<>=!", ne[-1]) != NULL)
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "--fail-under '%s': takes SCORE=X (the run fails when "
                       "the mean of SCORE is below X); comparisons belong to "
                       "--pass",
                       text);
  if (nb == ne)
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "--fail-under '%s': no score name before '='; expected "
                       "SCORE=X",
                       text);
  const char *vb = eq + 1, *ve = text + len;
  trim(&vb, &ve);
  if (!parse_number(vb, ve, &f->value))
    return assay__fail(errmsg, ASSAY_EINVAL,
                       "--fail-under '%s': '%.*s' is not a finite number; "
                       "expected SCORE=X, e.g. --fail-under equals=0.8",
                       text, (int)(ve - vb), vb);
  f->score = assay__xstrndup(nb, (size_t)(ne - nb));
  return 0;
}

void assay_fail_under_release(struct assay_fail_under *f) {
  if (f == NULL)
    return;
  free(f->score);
  f->score = NULL;
}

/* ---- judging records ------------------------------------------------- */

/* A growing sentence of reasons joined with "; ". */
struct why {
  char *text;
  size_t len;
};

static void why_add(struct why *w, const char *part) {
  size_t n = strlen(part);
  if (n > MAX_WHY_PART) {
    /* Cut at a character boundary and say so. */
    n = MAX_WHY_PART;
    while (n > 0 && ((unsigned char)part[n] & 0xC0) == 0x80)
      n--;
  }
  int cut = n < strlen(part);
  size_t extra = (w->len ? 2 : 0) + n + (cut ? 3 : 0) + 1;
  w->text = assay__xrealloc(w->text, w->len + extra);
  if (w->len) {
    memcpy(w->text + w->len, "; ", 2);
    w->len += 2;
  }
  memcpy(w->text + w->len, part, n);
  w->len += n;
  if (cut) {
    memcpy(w->text + w->len, "...", 3);
    w->len += 3;
  }
  w->text[w->len] = '\0';
}

static void why_addf(struct why *w, const char *fmt, ...) ASSAY__PRINTF(2, 3);
static void why_addf(struct why *w, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = assay__vformat(fmt, ap);
  va_end(ap);
  why_add(w, s);
  free(s);
}

static int task_failed(const cJSON *record) {
  const cJSON *err = member(record, "error");
  return err != NULL && !cJSON_IsNull(err);
}

/* "code: message" of a record's error (owned). */
static char *error_text(const cJSON *record) {
  const cJSON *err = member(record, "error");
  const cJSON *code = member(err, "code");
  const cJSON *msg = member(err, "message");
  return assay__format("%s: %s",
                       cJSON_IsString(code) && code->valuestring[0]
                           ? code->valuestring
                           : "unknown",
                       cJSON_IsString(msg) ? msg->valuestring : "(no message)");
}

/* Whether an earlier threshold than i names the same score. */
static int seen_before(const struct assay_threshold *t, size_t i) {
  for (size_t k = 0; k < i; k++)
    if (strcmp(t[k].score, t[i].score) == 0)
      return 1;
  return 0;
}

int assay_record_passes(const cJSON *record, const struct assay_threshold *t,
                        size_t n, char **why) {
  if (why)
    *why = NULL;
  struct why w = {NULL, 0};
  if (!cJSON_IsObject(record)) {
    why_add(&w, "the record is not a JSON object");
  } else if (task_failed(record)) {
    char *e = error_text(record);
    why_addf(&w, "task failed: %s", e);
    free(e);
  } else {
    const cJSON *scores = member(record, "scores");
    for (size_t i = 0; i < n; i++) {
      const cJSON *sc = member(scores, t[i].score);
      double v;
      if (sc == NULL) {
        if (!seen_before(t, i))
          why_addf(&w, "no score '%s' in the record", t[i].score);
      } else if (!finite_number(member(sc, "value"), &v)) {
        if (!seen_before(t, i)) {
          const cJSON *e = member(sc, "error");
          why_addf(&w, "'%s' failed: %s", t[i].score,
                   cJSON_IsString(e) ? e->valuestring : "no value");
        }
      } else if (!assay_threshold_holds(&t[i], v)) {
        char got[32], want[32];
        fmt_num(v, got);
        fmt_num(t[i].value, want);
        why_addf(&w, "'%s' is %s, needs %s %s", t[i].score, got,
                 op_texts[t[i].op], want);
      }
    }
  }
  if (w.text == NULL)
    return 1;
  if (why)
    *why = w.text;
  else
    free(w.text);
  return 0;
}

int assay__score_passes(const cJSON *record, const char *score,
                        const struct assay_threshold *t, size_t n) {
  if (!cJSON_IsObject(record) || task_failed(record))
    return 0;
  double v;
  if (!finite_number(member(member(member(record, "scores"), score), "value"),
                     &v))
    return 0;
  for (size_t i = 0; i < n; i++)
    if (strcmp(t[i].score, score) == 0 && !assay_threshold_holds(&t[i], v))
      return 0;
  return 1;
}

char *assay__score_names(const cJSON *summary) {
  const cJSON *scores = member(summary, "scores");
  if (!cJSON_IsObject(scores) || scores->child == NULL)
    return assay__xstrdup("there are no scores");
  char *keys = assay__json_keys(scores, "");
  char *s = assay__format("the scores are: %s", keys);
  free(keys);
  return s;
}

int assay_fail_under_check(const cJSON *summary,
                           const struct assay_fail_under *f, size_t n,
                           char **report) {
  if (report)
    *report = NULL;
  const cJSON *scores = member(summary, "scores");
  char *out = NULL;
  int violated = 0;
  for (size_t i = 0; i < n; i++) {
    const cJSON *sc = member(scores, f[i].score);
    double mean, limit = f[i].value;
    char want[32];
    fmt_num(limit, want);
    char *line = NULL;
    if (sc == NULL) {
      char *names = assay__score_names(summary);
      line = assay__format("fail-under: no score '%s' in the results, so its "
                           "mean cannot reach %s (check the score name: %s)",
                           f[i].score, want, names);
      free(names);
    } else if (!finite_number(member(sc, "mean"), &mean)) {
      double fails = 0;
      finite_number(member(sc, "failures"), &fails);
      line = assay__format("fail-under: '%s' has no values (it failed on "
                           "%.0f record%s), so its mean cannot reach %s",
                           f[i].score, fails, fails == 1 ? "" : "s", want);
    } else if (mean < limit) {
      double count = 0;
      finite_number(member(sc, "count"), &count);
      line = assay__format("fail-under: mean of '%s' is %.4f over %.0f "
                           "values, below %s",
                           f[i].score, mean, count, want);
    }
    if (line == NULL)
      continue;
    violated++;
    char *joined = assay__format("%s%s\n", out ? out : "", line);
    free(out);
    free(line);
    out = joined;
  }
  if (report)
    *report = out;
  else
    free(out);
  return violated;
}

/* ---- XML text ---------------------------------------------------------- */

/* The code point of the UTF-8 sequence at s (at most avail bytes), its
 * length in *len; -1 with *len 1 for a byte that starts no valid sequence
 * (overlong forms, surrogates and values past U+10FFFF included). */
static long utf8_next(const unsigned char *s, size_t avail, size_t *len) {
  *len = 1;
  unsigned c = s[0];
  if (c < 0x80)
    return (long)c;
  size_t n;
  long cp, min;
  if ((c & 0xE0) == 0xC0) {
    n = 2, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return -1;
  }
  if (avail < n)
    return -1;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return -1;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return -1;
  *len = n;
  return cp;
}

/* Whether XML 1.0 allows the character. DEL and the C1 controls are
 * allowed but discouraged, and are as useless in a CI report as the C0
 * ones, so they go too. */
static int xml_char_ok(long cp) {
  if (cp == 0x9 || cp == 0xA || cp == 0xD)
    return 1;
  if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))
    return 0;
  return cp <= 0xD7FF || (cp >= 0xE000 && cp <= 0xFFFD) ||
         (cp >= 0x10000 && cp <= 0x10FFFF);
}

/*
 * Writes s escaped for XML: in an attribute (attr) or in element text. At
 * most cap bytes of s are written (cut at a character boundary, then
 * "..."). Characters XML 1.0 forbids are dropped and bytes that are not
 * UTF-8 become U+FFFD, so any id or message makes a well-formed file. In
 * attributes newlines and tabs are written as references, which keeps them
 * (a parser turns literal ones into spaces).
 */
static void put_xml(FILE *f, const char *s, size_t cap, int attr) {
  /* Characters that need no escape are written a run at a time: one
   * fwrite per character made a large report cost more than the run. */
  const unsigned char *p = (const unsigned char *)s, *run = p;
  size_t left = strlen(s), used = 0;
  while (left > 0) {
    size_t len;
    long cp = utf8_next(p, left, &len);
    if (used + len > cap) {
      fwrite(run, 1, (size_t)(p - run), f);
      fputs("...", f);
      return;
    }
    used += len;
    const char *esc = NULL;
    if (cp < 0)
      esc = "\xEF\xBF\xBD";
    else if (!xml_char_ok(cp))
      esc = ""; /* dropped */
    else if (cp == '&')
      esc = "&amp;";
    else if (cp == '<')
      esc = "&lt;";
    else if (cp == '>')
      esc = "&gt;"; /* also keeps "]]>" out of text, where it is not allowed */
    else if (cp == '"')
      esc = "&quot;";
    else if (cp == '\'')
      esc = "&apos;";
    else if (cp == '\r')
      esc = "&#13;";
    else if (attr && cp == '\n')
      esc = "&#10;";
    else if (attr && cp == '\t')
      esc = "&#9;";
    if (esc != NULL) {
      fwrite(run, 1, (size_t)(p - run), f);
      fputs(esc, f);
      run = p + len;
    }
    p += len;
    left -= len;
  }
  fwrite(run, 1, (size_t)(p - run), f);
}

/* ---- JUnit ------------------------------------------------------------- */

struct assay_junit {
  char *path;  /* target; NULL for standard output */
  char *suite; /* suite name as given */
  FILE *body;  /* test cases so far, in an unlinked temporary file */
  long tests, failures, errors;
  double time_s;
  int write_errno; /* first write error, 0 when none */
};

/* The directory of path (owned): "." when it has none. */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL)
    return assay__xstrdup(".");
  if (slash == path)
    return assay__xstrdup("/");
  return assay__xstrndup(path, (size_t)(slash - path));
}

struct assay_junit *assay_junit_open(const char *path, const char *suite_name,
                                     char **errmsg) {
  if (errmsg)
    *errmsg = NULL;
  if (path == NULL || path[0] == '\0') {
    assay__fail(errmsg, ASSAY_EINVAL, "--junit: no file name given");
    return NULL;
  }
  FILE *body;
  if (strcmp(path, "-") == 0) {
    body = tmpfile();
    if (body == NULL) {
      assay__fail(errmsg, ASSAY_EIO,
                  "cannot write the junit report to standard output: cannot "
                  "create a temporary file: %s",
                  strerror(errno));
      return NULL;
    }
  } else {
    /* Beside the target, so the space it needs is where the report goes
     * and a full disk shows up while the run writes, not at the end. */
    char *dir = dir_of(path);
    char *tmpl = assay__format("%s/.assay-junit-body.XXXXXX", dir);
    free(dir);
    int fd = mkstemp(tmpl);
    if (fd < 0) {
      assay__fail(errmsg, ASSAY_EIO,
                  "cannot write junit report '%s': cannot create a temporary "
                  "file beside it: %s (check that its directory exists and "
                  "is writable)",
                  path, strerror(errno));
      free(tmpl);
      return NULL;
    }
    /* Unlinked at once: a crash leaves nothing behind. */
    unlink(tmpl);
    free(tmpl);
    body = fdopen(fd, "w+");
    if (body == NULL) {
      assay__fail(errmsg, ASSAY_EIO, "cannot write junit report '%s': %s", path,
                  strerror(errno));
      close(fd);
      return NULL;
    }
  }
  struct assay_junit *j = assay__xcalloc(1, sizeof *j);
  j->path = strcmp(path, "-") == 0 ? NULL : assay__xstrdup(path);
  j->suite = assay__xstrdup(suite_name && suite_name[0] ? suite_name : "run");
  j->body = body;
  return j;
}

static void put_id(FILE *f, const cJSON *record) {
  const cJSON *id = member(record, "id");
  double v;
  if (cJSON_IsString(id)) {
    put_xml(f, id->valuestring, MAX_MESSAGE, 1);
    return;
  }
  if (!finite_number(id, &v) && !finite_number(member(record, "index"), &v)) {
    fputs("?", f);
    return;
  }
  char buf[32];
  fmt_num(v, buf);
  fputs(buf, f);
}

/* The <system-out> of a test case: one line per score with its value, and
 * the reason or error under it. */
static void put_scores(FILE *f, const cJSON *record) {
  const cJSON *scores = member(record, "scores");
  if (!cJSON_IsObject(scores) || scores->child == NULL)
    return;
  fputs("      <system-out>", f);
  const cJSON *sc;
  cJSON_ArrayForEach(sc, scores) {
    if (sc->string == NULL)
      continue;
    put_xml(f, sc->string, MAX_MESSAGE, 0);
    double v;
    if (finite_number(member(sc, "value"), &v)) {
      char buf[32];
      fmt_num(v, buf);
      fprintf(f, ": %s\n", buf);
    } else {
      fputs(": null\n", f);
    }
    const cJSON *reason = member(sc, "reason");
    const cJSON *error = member(sc, "error");
    if (cJSON_IsString(reason)) {
      fputs("  reason: ", f);
      put_xml(f, reason->valuestring, MAX_REASON, 0);
      fputc('\n', f);
    }
    if (cJSON_IsString(error)) {
      fputs("  error: ", f);
      put_xml(f, error->valuestring, MAX_REASON, 0);
      fputc('\n', f);
    }
  }
  fputs("</system-out>\n", f);
}

/* "score 'x' failed: ..." for every failed score no threshold names
 * (owned), or NULL: those are errors of the evaluation itself. */
static char *unthresholded_score_errors(const cJSON *record,
                                        const struct assay_threshold *t,
                                        size_t n) {
  struct why w = {NULL, 0};
  const cJSON *sc;
  cJSON_ArrayForEach(sc, member(record, "scores")) {
    double v;
    if (sc->string == NULL || finite_number(member(sc, "value"), &v))
      continue;
    size_t i = 0;
    while (i < n && strcmp(t[i].score, sc->string) != 0)
      i++;
    if (i < n)
      continue;
    const cJSON *e = member(sc, "error");
    why_addf(&w, "score '%s' failed: %s", sc->string,
             cJSON_IsString(e) ? e->valuestring : "no value");
  }
  return w.text;
}

static void put_problem(FILE *f, const char *element, const char *type,
                        const char *message) {
  fprintf(f, "      <%s type=\"", element);
  put_xml(f, type, 64, 1);
  fputs("\" message=\"", f);
  put_xml(f, message, MAX_MESSAGE, 1);
  fputs("\">", f);
  put_xml(f, message, MAX_MESSAGE, 0);
  fprintf(f, "</%s>\n", element);
}

void assay_junit_add(struct assay_junit *j, const cJSON *record,
                     const struct assay_threshold *t, size_t n) {
  if (j == NULL || j->write_errno != 0)
    return;
  FILE *f = j->body;
  double ms = 0, trial = 0;
  finite_number(member(record, "task_ms"), &ms);
  finite_number(member(record, "trial"), &trial);
  if (ms < 0)
    ms = 0;
  j->tests++;
  j->time_s += ms / 1000.0;

  fputs("    <testcase classname=\"assay.", f);
  put_xml(f, j->suite, MAX_MESSAGE, 1);
  fputs("\" name=\"", f);
  put_id(f, record);
  fprintf(f, "#%.0f\" time=\"%.3f\">\n", trial, ms / 1000.0);

  const cJSON *code = member(member(record, "error"), "code");
  char *why = NULL;
  char *score_errors = NULL;
  if (cJSON_IsString(code) && strcmp(code->valuestring, "bad_item") == 0) {
    /* A malformed dataset line is not the system's failure but a broken
     * test: an error in JUnit's terms. */
    char *e = error_text(record);
    put_problem(f, "error", "bad_item", e);
    free(e);
    j->errors++;
  } else if (!assay_record_passes(record, t, n, &why)) {
    put_problem(f, "failure",
                task_failed(record) && cJSON_IsString(code) ? code->valuestring
                : task_failed(record)                       ? "unknown"
                                                            : "threshold",
                why);
    j->failures++;
  } else if ((score_errors = unthresholded_score_errors(record, t, n)) !=
             NULL) {
    put_problem(f, "error", "score_error", score_errors);
    j->errors++;
  }
  free(why);
  free(score_errors);
  put_scores(f, record);
  fputs("    </testcase>\n", f);
  if (ferror(f))
    j->write_errno = errno ? errno : EIO;
}

static void junit_free(struct assay_junit *j) {
  if (j->body)
    fclose(j->body);
  free(j->path);
  free(j->suite);
  free(j);
}

void assay_junit_abort(struct assay_junit *j) {
  if (j != NULL)
    junit_free(j);
}

/* Writes the complete report to f: header, the body copied, footer.
 * Returns 0 or an errno value. */
static int write_report(struct assay_junit *j, FILE *f) {
  char time_s[32];
  snprintf(time_s, sizeof time_s, "%.3f", j->time_s);
  fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
  fprintf(f,
          "<testsuites name=\"assay\" tests=\"%ld\" failures=\"%ld\" "
          "errors=\"%ld\" time=\"%s\">\n",
          j->tests, j->failures, j->errors, time_s);
  fputs("  <testsuite name=\"assay.", f);
  put_xml(f, j->suite, MAX_MESSAGE, 1);
  fprintf(f,
          "\" tests=\"%ld\" failures=\"%ld\" errors=\"%ld\" skipped=\"0\" "
          "time=\"%s\">\n",
          j->tests, j->failures, j->errors, time_s);
  if (fflush(j->body) != 0 || fseek(j->body, 0, SEEK_SET) != 0)
    return errno ? errno : EIO;
  char buf[65536];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, j->body)) > 0)
    if (fwrite(buf, 1, got, f) != got)
      return errno ? errno : EIO;
  if (ferror(j->body))
    return errno ? errno : EIO;
  fputs("  </testsuite>\n</testsuites>\n", f);
  if (fflush(f) != 0 || ferror(f))
    return errno ? errno : EIO;
  return 0;
}

int assay_junit_close(struct assay_junit *j, char **errmsg) {
  if (errmsg)
    *errmsg = NULL;
  if (j == NULL)
    return 0;
  const char *target = j->path ? j->path : "standard output";
  int err = j->write_errno;
  if (err == 0 && fflush(j->body) != 0)
    err = errno ? errno : EIO;
  if (err != 0) {
    assay__fail(errmsg, ASSAY_EIO,
                "cannot write junit report '%s': writing its test cases "
                "failed: %s",
                target, strerror(err));
    junit_free(j);
    return ASSAY_EIO;
  }

  if (j->path == NULL) {
    err = write_report(j, stdout);
    junit_free(j);
    if (err != 0)
      return assay__fail(errmsg, ASSAY_EIO,
                         "cannot write the junit report to standard output: "
                         "%s",
                         strerror(err));
    return 0;
  }

  struct assay__out out;
  err = assay__out_begin(&out, j->path);
  FILE *f = err == 0 ? fdopen(out.fd, "w") : NULL;
  if (f == NULL) {
    if (err == 0)
      err = errno;
    assay__out_end(&out, 0);
    assay__fail(errmsg, ASSAY_EIO,
                "cannot write junit report '%s': cannot create a file beside "
                "it: %s",
                j->path, strerror(err));
    junit_free(j);
    return ASSAY_EIO;
  }
  err = write_report(j, f);
  /* Durable before it replaces the target, so a crash right after the
   * rename does not leave an empty report. */
  if (err == 0 && fsync(fileno(f)) != 0 && errno != EINVAL)
    err = errno; /* (EINVAL: a pipe or terminal, written in place) */
  if (fclose(f) != 0 && err == 0)
    err = errno ? errno : EIO;
  out.fd = -1; /* closed with f */
  int e = assay__out_end(&out, err == 0);
  if (err == 0)
    err = e;
  if (err != 0)
    assay__fail(errmsg, ASSAY_EIO, "cannot write junit report '%s': %s",
                j->path, strerror(err));
  junit_free(j);
  return err ? ASSAY_EIO : 0;
}
