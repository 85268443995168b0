/*
 * The engine: one libuv loop that runs every item of a dataset through one
 * task (optional) and any number of metrics, sync calls on a bounded worker
 * pool and async calls on the loop, and hands out one result record per
 * item in dataset order. See docs/architecture.md.
 *
 * All functions run on the thread that created the engine (its loop thread),
 * except assay_engine_stop(), which is safe from a signal handler's thread.
 */
#ifndef ASSAY_ENGINE_H
#define ASSAY_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include <assay/plugin.h>
#include <cjson/cJSON.h>

#include "dataset.h"
#include "loader.h"

struct assay_engine_opts {
  int concurrency;          /* items in flight (default 64) */
  int threads;              /* sync worker threads (default: CPUs) */
  long timeout_ms;          /* per call attempt (default 60000) */
  int retries;              /* retries after the first attempt (default 3) */
  long item_timeout_ms;     /* whole item deadline, 0 for none (default 0) */
  long backoff_base_ms;     /* first backoff ceiling (default 200) */
  long backoff_max_ms;      /* backoff ceiling (default 30000) */
  size_t max_response_bytes; /* HTTP body cap (default 32 MiB) */
  double rps;               /* HTTP requests per second, 0 for no cap */
  long limit;               /* items to run at most, 0 for all */
  unsigned seed;            /* jitter seed (0: from the clock) */
  int trials;               /* runs of each item (default 1) */
  int rescore;              /* dataset items are result records: their
                               outputs are scored again, no task runs */
  long grace_ms;            /* after a stop, how long in-flight items may
                               still finish (default 10000) */
  int chain;                /* when the task and every metric are sync and
                               unmapped, a worker runs an item's metrics
                               right after its task, as one pool job
                               (default 1; 0 gives each call a job) */
  int light_records;        /* the record callback may get, with a line, a
                               light record: index, id, trial, each score's
                               value only, error, attempts and times, no
                               input or output (default 0). With it, a
                               chain's JSONL items are parsed, run and
                               printed on the workers. */
};

/* Fills o with the defaults above. */
void assay_engine_opts_init(struct assay_engine_opts *o);

/* Counters a test or the summary reads; valid until assay_engine_free. */
struct assay_engine_stats {
  long items;             /* records handed out */
  long items_failed;      /* records whose task failed (or bad items) */
  long scores_failed;     /* scores with an error */
  int max_running;        /* most items between admission and final */
  int max_pending;        /* most items admitted but not yet handed out */
  long calls;             /* call attempts started */
  long chained;           /* of those, metric calls run in a chain */
  long quick;             /* of those, ASSAY_QUICK calls run on the loop */
  long finished;          /* items parsed, run and printed on a worker
                             (see light_records) */
  long retries;           /* attempts after a retryable failure */
  long retries_429, retries_5xx, retries_timeout, retries_network,
      retries_other;      /* retries by cause */
  long timeouts;          /* attempts ended by the host's timeout */
  long late_completions;  /* completions of abandoned calls, dropped */
  long plugin_faults;     /* second completions, stale handles */
  long abandoned;         /* items in flight when the grace period ended */
  double loop_busy;       /* share of the run's wall time the loop thread
                             spent not waiting for events, 0..1 */
};

struct assay_engine;

/* Creates an engine with its own loop. Returns 0 or a negative code. */
int assay_engine_new(struct assay_engine **e, const struct assay_engine_opts *o,
                     char **errmsg);

/*
 * Adds a task (at most one) or a metric: resolves spec with l, validates
 * opts (a JSON object of --opt values, borrowed, may be NULL) and calls the
 * component's init. For a metric, "name" in opts renames its score, and map
 * (borrowed, may be NULL) is an object KEY -> dotted FIELD path applied to
 * its input. Returns 0 or a negative code with *errmsg naming the spec.
 */
int assay_engine_add(struct assay_engine *e, struct assay_loader *l, int kind,
                     const char *spec, const cJSON *opts, const cJSON *map,
                     char **errmsg);

/* Called with each record (borrowed), in dataset order, as soon as it and
 * all before it are final. line, when not NULL, is the record's compact
 * JSON text (len bytes, not NUL-terminated, borrowed): exactly what
 * printing the record gives, mostly printed ahead on the workers, so the
 * caller need not print it on the loop thread. Returns 0, or non-zero to
 * stop the run (a write error): the engine then stops admitting and
 * finishes. */
typedef int (*assay_record_cb)(void *arg, const cJSON *record,
                               const char *line, size_t len);

/* Called (with the record callback's arg) after each group of records that
 * became final together, so a caller that buffers them can write the group
 * in one go: a record is then out as soon as it is final, and lines are
 * never split. Returns 0, or non-zero to stop the run like the record
 * callback. Optional. */
typedef int (*assay_flush_cb)(void *arg);
void assay_engine_set_flush(struct assay_engine *e, assay_flush_cb cb);

/*
 * Runs every item of ds (borrowed) and returns 0 when all records were
 * handed out, ASSAY_EINTERRUPTED when assay_engine_stop() ended the run
 * early, or another negative code with *errmsg (the dataset could not be
 * read on, or the record callback failed); records handed out stay valid.
 */
int assay_engine_run(struct assay_engine *e, struct assay_dataset *ds,
                     assay_record_cb cb, void *arg, char **errmsg);

/*
 * Before assay_engine_run(): the first count results (items x trials) were
 * handed out by an earlier run (resume). They are read and not run; cb, when
 * not NULL, is called with each (item is NULL for a malformed one) and
 * returns 0 when it is the item the earlier run saw, or non-zero with
 * *errmsg set to refuse the run.
 */
typedef int (*assay_skip_cb)(void *arg, int64_t index, int trial,
                             const cJSON *item, char **errmsg);
void assay_engine_skip(struct assay_engine *e, int64_t count, assay_skip_cb cb,
                       void *arg);

/* Called on the loop thread every interval while a run goes on (progress
 * display). Must be quick: it delays the calls' completions. */
typedef void (*assay_tick_cb)(void *arg, const struct assay_engine *e);
void assay_engine_set_tick(struct assay_engine *e, long interval_ms,
                           assay_tick_cb cb, void *arg);

/* Items admitted and not yet final. */
int64_t assay_engine_running(const struct assay_engine *e);

/* Asks a running engine to stop admitting items; items in flight may finish
 * within grace_ms, then the run ends without them. Async-signal-safe. */
void assay_engine_stop(struct assay_engine *e);

const struct assay_engine_stats *assay_engine_stats(const struct assay_engine *e);

/* Sync calls that timed out and whose worker is still running them: after
 * a run, the calls a caller would wait for by freeing the engine. */
int assay_engine_busy_workers(const struct assay_engine *e);

/* The engine's counters and HTTP statistics as JSON (owned), for the
 * summary's "engine" member. */
cJSON *assay_engine_counters_json(const struct assay_engine *e);

/* The loaded components as JSON (owned): [{"kind","name","score","plugin",
 * "file","version","options"}], for the summary's "plugins" member. */
cJSON *assay_engine_plugins_json(const struct assay_engine *e);

/*
 * Calls every component's fini, closes every handle and the loop, frees e.
 * Returns 0, or the loop's close error when a handle was left open (a bug
 * the tests assert against).
 */
int assay_engine_free(struct assay_engine *e);

#endif
