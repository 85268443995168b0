/* Files of results (see files.h). */
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset.h"
#include "error.h"
#include "util.h"

char *assay__summary_path(const char *records) {
  size_t n = strlen(records);
  if (n > 6 && strcmp(records + n - 6, ".jsonl") == 0)
    return assay__format("%.*s.summary.json", (int)(n - 6), records);
  return assay__format("%s.summary.json", records);
}

/* The directory part of path ("." for none) and where its last part
 * starts. */
static char *dir_of(const char *path, const char **base) {
  const char *slash = strrchr(path, '/');
  *base = slash ? slash + 1 : path;
  if (slash == NULL)
    return assay__xstrdup(".");
  return slash == path ? assay__xstrdup("/")
                       : assay__xstrndup(path, (size_t)(slash - path));
}

int assay__same_file(const char *a, const char *b) {
  if (strcmp(a, b) == 0)
    return 1;
  struct stat sa, sb;
  int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
  if (ea || eb)
    return ea && eb && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  const char *ba, *bb;
  char *da = dir_of(a, &ba), *db = dir_of(b, &bb);
  int same = strcmp(ba, bb) == 0 && stat(da, &sa) == 0 && stat(db, &sb) == 0 &&
             sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  free(da);
  free(db);
  return same;
}

int assay__write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int assay__mkdir_p(const char *dir) {
  char *p = assay__xstrdup(dir);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/')
      continue;
    *s = '\0';
    if (mkdir(p, 0775) != 0 && errno != EEXIST) {
      free(p);
      return -1;
    }
    *s = '/';
  }
  int rc = mkdir(p, 0775) != 0 && errno != EEXIST ? -1 : 0;
  free(p);
  return rc;
}

int assay__mkdir_parent(const char *path, char **errmsg) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL || slash == path)
    return 0;
  char *dir = assay__xstrndup(path, (size_t)(slash - path));
  int rc = assay__mkdir_p(dir);
  if (rc != 0)
    *errmsg = assay__format("cannot create directory '%s' for the output: %s",
                            dir, strerror(errno));
  free(dir);
  return rc;
}

int assay__is_stream(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
}

char *assay__dir_for_file(const char *what, const char *path,
                          const char *example) {
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
    return NULL;
  size_t n = strlen(path);
  return assay__format("%s '%s' is a directory: name a file in it, as "
                       "'%s%s%s'",
                       what, path, path, n > 0 && path[n - 1] == '/' ? "" : "/",
                       example);
}

/* The temporary file being written, for the signal handler; one at a time
 * in the commands that ask for it. */
static char *volatile out_pending;

static void out_on_signal(int sig) {
  char *p = out_pending;
  if (p != NULL)
    unlink(p);
  signal(sig, SIG_DFL);
  raise(sig);
}

void assay__out_remove_on_signals(void) {
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = out_on_signal;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < assay__array_size(sigs); i++)
    sigaction(sigs[i], &sa, NULL);
}

int assay__out_begin(struct assay__out *o, const char *path) {
  o->fd = -1;
  o->tmp = NULL;
  struct stat st;
  char *real = NULL;
  if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
    real = realpath(path, NULL); /* NULL when it dangles: replace the link */
  o->target = real ? real : assay__xstrdup(path);
  if (stat(o->target, &st) == 0 && !S_ISREG(st.st_mode)) {
    if (S_ISDIR(st.st_mode))
      return EISDIR;
    o->fd = open(o->target, O_WRONLY | O_CLOEXEC);
    return o->fd < 0 ? errno : 0;
  }
  const char *base;
  char *dir = dir_of(o->target, &base);
  int e = 0;
  for (int attempt = 0; attempt < 100 && o->fd < 0; attempt++) {
    o->tmp =
        assay__format("%s/.%s.%ld.%d.tmp", dir, base, (long)getpid(), attempt);
    o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                 ASSAY_OUTPUT_MODE);
    if (o->fd < 0) {
      e = errno;
      free(o->tmp);
      o->tmp = NULL;
      if (e != EEXIST)
        break;
    }
  }
  free(dir);
  out_pending = o->tmp;
  return o->fd < 0 ? e : 0;
}

int assay__out_end(struct assay__out *o, int ok) {
  int e = 0;
  if (out_pending == o->tmp)
    out_pending = NULL;
  if (o->fd >= 0 && close(o->fd) != 0)
    e = errno;
  o->fd = -1;
  if (o->tmp != NULL) {
    if (ok && e == 0 && rename(o->tmp, o->target) != 0)
      e = errno;
    if (!ok || e != 0)
      unlink(o->tmp);
  }
  free(o->tmp);
  free(o->target);
  o->tmp = o->target = NULL;
  return e;
}

int assay__write_file_atomic(const char *path, const char *text,
                             char **errmsg) {
  if (strcmp(path, "-") == 0) {
    if (assay__write_all(STDOUT_FILENO, text, strlen(text)) != 0 ||
        assay__write_all(STDOUT_FILENO, "\n", 1) != 0)
      return assay__fail(errmsg, ASSAY_EIO,
                         "cannot write to standard output: %s",
                         strerror(errno));
    return 0;
  }
  struct assay__out o;
  int e = assay__out_begin(&o, path);
  if (e == 0 && (assay__write_all(o.fd, text, strlen(text)) != 0 ||
                 assay__write_all(o.fd, "\n", 1) != 0))
    e = errno;
  int e2 = assay__out_end(&o, e == 0);
  if (e == 0)
    e = e2;
  if (e != 0)
    return assay__fail(errmsg, ASSAY_EIO, "cannot write '%s': %s", path,
                       strerror(e));
  return 0;
}

/* Where a parse went wrong, for a file's error message: the line, and up to
 * 24 bytes of text from there to the end of that line (not cut inside a
 * UTF-8 sequence). */
static char *json_error_at(const char *text, size_t len, size_t off,
                           const char *what) {
  size_t line = 1;
  for (size_t i = 0; i < off && i < len; i++)
    line += text[i] == '\n';
  size_t end = off;
  while (end < len && end - off < 24 && text[end] != '\n' && text[end] != '\r')
    end++;
  while (end > off && end < len && ((unsigned char)text[end] & 0xc0) == 0x80)
    end--;
  return assay__format("invalid JSON at line %zu%s near '%.*s'", line, what,
                       (int)(end - off), text + off);
}

cJSON *assay__read_json_file(const char *path, size_t max_bytes,
                             char **errmsg) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    int e = errno;
    assay__fail(errmsg, ASSAY_EIO, "%s", strerror(e));
    errno = e;
    return NULL;
  }
  /* Up to max_bytes + 1 bytes (one more tells a file over the cap), in a
   * buffer sized from the file's size, grown for a pipe or a file that
   * grows while it is read. */
  struct stat st;
  int reg = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode);
  size_t cap = max_bytes + 1;
  if (reg && (uintmax_t)st.st_size < max_bytes)
    cap = (size_t)st.st_size + 1;
  else if (!reg && cap > 65536)
    cap = 65536;
  char *buf = assay__xmalloc(cap + 1);
  size_t n = 0;
  for (;;) {
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap || cap > max_bytes || ferror(f))
      break;
    cap = cap > max_bytes / 2 ? max_bytes + 1 : 2 * cap;
    buf = assay__xrealloc(buf, cap + 1);
  }
  int rerr = ferror(f) ? errno : 0;
  fclose(f);
  if (n <= max_bytes)
    buf[n] = '\0';
  cJSON *j = NULL;
  const char *stop = NULL;
  size_t at = 0;
  if (rerr)
    assay__fail(errmsg, ASSAY_EIO, "%s", strerror(rerr));
  else if (n > max_bytes)
    assay__fail(errmsg, ASSAY_EIO, "larger than %zu bytes", max_bytes);
  else if (strspn(buf, " \t\r\n") == n)
    assay__fail(errmsg, ASSAY_EIO, "the file is empty");
  else if ((j = cJSON_ParseWithLengthOpts(buf, n, &stop, 0)) == NULL) {
    at = stop ? (size_t)(stop - buf) : 0;
    if (at + 1 >= n) /* cJSON puts "ran out" on the last byte */
      assay__fail(errmsg, ASSAY_EIO,
                  "invalid JSON: it ends too early (cut short?)");
    else {
      char *where = json_error_at(buf, n, at, "");
      assay__fail(errmsg, ASSAY_EIO, "%s", where);
      free(where);
    }
  } else {
    at = (size_t)(stop - buf);
    while (at < n && strchr(" \t\r\n", buf[at]) != NULL && buf[at] != '\0')
      at++;
    if (at < n) {
      cJSON_Delete(j);
      j = NULL;
      char *where = json_error_at(buf, n, at, ": more text after the value");
      assay__fail(errmsg, ASSAY_EIO, "%s", where);
      free(where);
    }
  }
  free(buf);
  errno = rerr;
  return j;
}

/* A summary is small; anything larger is not one. */
#define SUMMARY_MAX_BYTES ((size_t)16 << 20)

cJSON *assay__summary_beside(const char *records, char **path_out) {
  char *path = assay__summary_path(records);
  *path_out = NULL;
  if (access(path, F_OK) != 0) {
    free(path);
    return NULL;
  }
  char *err = NULL;
  cJSON *j = assay__read_json_file(path, SUMMARY_MAX_BYTES, &err);
  if (!cJSON_IsObject(j)) {
    fprintf(stderr,
            "assay: warning: ignoring '%s': not a summary written by "
            "'assay run'%s%s\n",
            path, err ? ": " : "", err ? err : "");
    free(err);
    cJSON_Delete(j);
    free(path);
    return NULL;
  }
  *path_out = path;
  return j;
}

int assay__is_record(const cJSON *j) {
  return cJSON_IsObject(j) &&
         cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "index")) &&
         cJSON_HasObjectItem(j, "input") && cJSON_HasObjectItem(j, "output");
}

int assay__records_each(const char *path, size_t max_bytes,
                        int (*fn)(void *arg, const cJSON *record, size_t line),
                        void *arg, long *skipped) {
  struct assay_dataset *ds;
  char *err = NULL;
  int orc = assay_dataset_open(&ds, path, ASSAY_DATASET_JSONL, max_bytes, &err);
  if (orc < 0) {
    if (orc == ASSAY_EBAD_INPUT) /* compressed, say: err says so */
      fprintf(stderr, "assay: %s\n", err);
    else
      fprintf(stderr, "assay: cannot read records file '%s': %s\n", path,
              strerror(errno));
    free(err);
    return -1;
  }
  int rc = 0;
  char *pending = NULL; /* a bad line: an error unless it is the last */
  int seen = 0;
  for (;;) {
    struct assay_dataset_item it;
    int n = assay_dataset_next(ds, &it, &err);
    if (n < 0) {
      fprintf(stderr, "assay: %s\n", err);
      free(err);
      rc = -1;
      break;
    }
    if (n == 0)
      break;
    if (pending != NULL) {
      fprintf(stderr, "assay: %s\n", pending);
      assay_dataset_item_clear(&it);
      rc = -1;
      break;
    }
    if (it.error != NULL) {
      pending = it.error;
      it.error = NULL;
      assay_dataset_item_clear(&it);
      continue;
    }
    if (!seen++ && !assay__is_record(it.json)) {
      fprintf(stderr,
              "assay: '%s' is not a records file of 'assay run': line %zu "
              "has no index, input and output (a dataset?); give the file "
              "'assay run -o' wrote\n",
              path, it.line);
      assay_dataset_item_clear(&it);
      rc = -1;
      break;
    }
    rc = fn(arg, it.json, it.line);
    assay_dataset_item_clear(&it);
    if (rc < 0)
      break;
  }
  if (pending != NULL && rc == 0) {
    fprintf(stderr,
            "assay: warning: %s (skipped: an incomplete last line of "
            "an interrupted run?)\n",
            pending);
    if (skipped != NULL)
      (*skipped)++;
  }
  free(pending);
  assay_dataset_free(ds);
  return rc;
}
