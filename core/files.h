/*
 * Files of results: where a run's summary sits beside its records, how
 * output files are created and written (whole writes, atomic replaces), and
 * reading a records file record by record. Shared by run, merge, report and
 * compare so that they agree.
 */
#ifndef ASSAY_FILES_H
#define ASSAY_FILES_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* Files we create: the user's umask applies, and even under umask 000 they
 * are never world-writable. */
#define ASSAY_OUTPUT_MODE 0664

/* The summary beside a records file: <records minus .jsonl>.summary.json,
 * or <records>.summary.json. Owned. */
char *assay__summary_path(const char *records);

/* Whether two paths name one file: the same text, the same existing file
 * (by device and inode: links, "./x"), or, when neither exists yet, the
 * same name in the same directory. For refusing an output that would
 * overwrite an input or another output. */
int assay__same_file(const char *a, const char *b);

/* Writes all n bytes, retrying short writes and EINTR. 0, or -1 (errno). */
int assay__write_all(int fd, const char *p, size_t n);

/* Creates dir and its parents as needed. 0, or -1 (errno). */
int assay__mkdir_p(const char *dir);

/* Creates the directory a file path is in, with its parents, as an output
 * needs (-o results/run1.jsonl makes results/). 0, or -1 with *errmsg
 * naming the directory and the reason. */
int assay__mkdir_parent(const char *path, char **errmsg);

/*
 * An output written whole and then put in place, so that no reader sees
 * half of it and a failure leaves the old file (or none), not half a new
 * one. assay__out_begin opens o->fd on a new hidden file beside path
 * (".NAME.PID.N.tmp", mode ASSAY_OUTPUT_MODE less the umask); a symlink is
 * followed, so the file it names is replaced, not the link. A path that is
 * no regular file (/dev/stdout, a FIFO, a device) is written in place:
 * renaming over it would replace the device itself. assay__out_end closes
 * o->fd (unless the caller set it to -1 after closing it) and, with ok,
 * renames the file into place; else it removes it. Every begin, even a
 * failed one, is followed by an end. Both return 0 or an errno value, for
 * the caller's message.
 */
/* Whether path is an existing file that is no regular file or directory
 * (/dev/null, a FIFO, a device): an output written there in place, with
 * nothing to replace, resume or put a summary beside. */
int assay__is_stream(const char *path);

/* When path is an existing directory given where a file belongs: a message
 * saying so and naming a file in it to give instead, as 'DIR/example'
 * (owned). NULL when path is no directory. what names the option. */
char *assay__dir_for_file(const char *what, const char *path,
                          const char *example);

struct assay__out {
  int fd;
  char *tmp;    /* the file renamed at the end; NULL when written in place */
  char *target; /* what is replaced: path, or the file a symlink names */
};
int assay__out_begin(struct assay__out *o, const char *path);
int assay__out_end(struct assay__out *o, int ok);

/* For commands without signal handling of their own (merge, report): on
 * SIGINT, SIGTERM or SIGHUP the temporary file of the output being written
 * is removed before the signal takes its default course, so an interrupted
 * merge of many gigabytes leaves no hidden copy behind. */
void assay__out_remove_on_signals(void);

/* Writes text and a newline to path through a temporary file and a rename,
 * so a reader never sees half a file; path "-" is standard output. 0, or
 * ASSAY_EIO with *errmsg. */
int assay__write_file_atomic(const char *path, const char *text,
                             char **errmsg);

/* Reads a JSON file of at most max_bytes. Returns the value (owned), or NULL
 * with *errmsg saying why without naming the file, for the caller to put
 * after it: the reason it cannot be opened or read (errno is that error,
 * else 0, so that ENOENT can be told apart), empty, over max_bytes, or where
 * the JSON goes wrong
 * ("invalid JSON at line 3 near '...'"). */
cJSON *assay__read_json_file(const char *path, size_t max_bytes,
                             char **errmsg);

/* The summary beside a records file, when there is one that parses as an
 * object (owned), with its path in *path_out (owned); NULL when there is
 * none, or with a warning on stderr when it is not a summary. Readers of
 * records use it only for what the records alone cannot say. */
cJSON *assay__summary_beside(const char *records, char **path_out);

/* Whether a parsed line is a result record as 'assay run' writes it: an
 * object with a number "index", an "input" and an "output" (null when the
 * task failed). For refusing a dataset given where records are meant. */
int assay__is_record(const cJSON *j);

/*
 * Streams the records of a records file, calling fn(arg, record, line) on
 * each (record borrowed for the call); fn returns 0 to go on or -1 to stop.
 * A malformed line is an error naming the file and line, except an
 * incomplete last line (a run killed mid-write), which is skipped with a
 * warning and counted in *skipped (may be NULL), as docs/results.md asks of
 * readers. A file whose first record is no result record (assay__is_record:
 * a dataset given by mistake) is refused before fn sees it. Returns 0, or
 * -1 with the message printed on stderr.
 */
int assay__records_each(const char *path, size_t max_bytes,
                        int (*fn)(void *arg, const cJSON *record, size_t line),
                        void *arg, long *skipped);

#endif
