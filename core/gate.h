/*
 * CI gates over results: --pass SCORE>=X thresholds (a record passes when
 * its task did not fail and every threshold holds on it), --fail-under
 * SCORE=X (a run fails when a score's mean is below X or the score has no
 * values), and the JUnit XML writer (one test case per record) that CI
 * systems display. Everything here reads records and summaries as the
 * engine writes them (docs/results.md), so it works the same on a live run,
 * a resumed one or a stored file. See docs/ci.md for the user's view.
 *
 * Ownership: every pointer argument is borrowed for the duration of the
 * call unless said otherwise; every char ** output is set to an owned
 * string (free()) or NULL. Not thread-safe: one thread per object.
 */
#ifndef ASSAY_GATE_H
#define ASSAY_GATE_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* Comparison of a threshold, in the order of the text forms
 * ">=", ">", "<=", "<", "==". */
enum assay_threshold_op {
  ASSAY_THRESHOLD_GE,
  ASSAY_THRESHOLD_GT,
  ASSAY_THRESHOLD_LE,
  ASSAY_THRESHOLD_LT,
  ASSAY_THRESHOLD_EQ
};

/* One --pass threshold: the record's value of score `score` compared with
 * `value` must hold. `score` is owned by the struct: release it with
 * assay_threshold_release(). */
struct assay_threshold {
  char *score;
  enum assay_threshold_op op;
  double value; /* finite */
};

/* One --fail-under gate: the mean of `score` must be >= `value`. `score`
 * is owned by the struct: release it with assay_fail_under_release(). */
struct assay_fail_under {
  char *score;
  double value; /* finite */
};

/*
 * Parses "SCORE OP X" with OP one of >=, >, <=, <, == and X a finite
 * number (spaces around SCORE and X are ignored; SCORE cannot contain '<',
 * '>' or '='). Fills *t (its score owned by *t) and returns 0, or returns
 * ASSAY_EINVAL with *errmsg (owned) saying what is wrong; *t is then left
 * with a NULL score.
 */
int assay_threshold_parse(const char *text, struct assay_threshold *t,
                          char **errmsg);
/* Frees t->score and sets it to NULL; t itself is the caller's. */
void assay_threshold_release(struct assay_threshold *t);
/* The text form of op (">=", ...). Returns a static string. */
const char *assay_threshold_op_text(enum assay_threshold_op op);
/* Whether value meets t (never for a non-finite value). */
int assay_threshold_holds(const struct assay_threshold *t, double value);

/*
 * Parses "SCORE=X" (X finite; the last '=' separates them). Fills *f (its
 * score owned by *f) and returns 0, or ASSAY_EINVAL with *errmsg (owned).
 */
int assay_fail_under_parse(const char *text, struct assay_fail_under *f,
                           char **errmsg);
void assay_fail_under_release(struct assay_fail_under *f);

/*
 * Whether a record (borrowed, docs/results.md) passes the n thresholds t:
 * its task did not fail ("error" is null) and, for every threshold, the
 * record has that score with a number that meets it. A failed score (value
 * null) and a score the record lacks fail their thresholds. With n == 0 a
 * record passes when its task did not fail. Returns 1 when it passes, 0
 * when not; then, when why is not NULL, *why is set to an owned sentence
 * naming every reason ("task failed: timeout: ...", "'equals' is 0, needs
 * >= 1", "no score 'f1' in the record", ...). *why is NULL when it passes.
 */
int assay_record_passes(const cJSON *record, const struct assay_threshold *t,
                        size_t n, char **why);

/*
 * Whether the record's trial passes the thresholds of the one score named
 * score (the others of t are ignored): the task did not fail, the record
 * has the score and its number meets every threshold on it. Used by the
 * pass@k and pass^k reducers of the summary.
 */
int assay__score_passes(const cJSON *record, const char *score,
                        const struct assay_threshold *t, size_t n);

/*
 * Checks n fail-under gates against a summary object (borrowed, as made by
 * assay_summary_json: "scores.<name>.mean"). Returns the number of gates
 * violated: a mean below the gate's value, or a score with no values (no
 * record had it, or it failed on every record). When report is not NULL,
 * *report is set to an owned text with one line per violated gate
 * ("fail-under: mean of 'equals' is 0.4000, below 0.5\n"), or NULL when
 * every gate holds.
 */
int assay_fail_under_check(const cJSON *summary,
                           const struct assay_fail_under *f, size_t n,
                           char **report);

/* "the scores are: a, b, ..." (at most 12) or "there are no scores": the
 * score names of a summary, for a message about a name it lacks. Owned. */
char *assay__score_names(const cJSON *summary);

/*
 * JUnit XML writer. One <testcase> per record, written as the records come
 * (memory does not grow with the run): the test cases go to a temporary
 * file beside the target; closing writes the <testsuite> header with the
 * counts, copies the test cases after it into a second temporary file and
 * renames that over the target, so the target is complete or untouched.
 * path "-" writes to standard output (through an anonymous temporary file).
 *
 * A test case is named "<id>#<trial>" in class "assay.<suite_name>", with
 * time task_ms / 1000. It has <error> when the record is a malformed
 * dataset item (bad_item) or one of its scores failed (a metric error with
 * no threshold on it), <failure> when the task failed or a threshold does
 * not hold; scores and reasons go to <system-out>. Text is escaped and
 * characters XML 1.0 forbids (control characters, invalid UTF-8) are
 * dropped; long messages are cut.
 */
struct assay_junit;

/* Opens the writer (owned; free it with assay_junit_close), or returns
 * NULL with *errmsg (owned) when the temporary file cannot be created. */
struct assay_junit *assay_junit_open(const char *path, const char *suite_name,
                                     char **errmsg);
/* Adds the test case of one record (borrowed) judged against the n
 * thresholds t (borrowed). A write error is kept and reported by close. */
void assay_junit_add(struct assay_junit *j, const cJSON *record,
                     const struct assay_threshold *t, size_t n);
/* Writes the final file and frees j (also on error; NULL is a no-op and
 * returns 0). Returns 0, or ASSAY_EIO with *errmsg (owned) when a write
 * failed; the target is then left as it was and no temporary file stays. */
int assay_junit_close(struct assay_junit *j, char **errmsg);
/* Frees j without writing the target (a run that failed to start). */
void assay_junit_abort(struct assay_junit *j);

#endif
