/*
 * Run summary: statistics accumulated from result records, turned into the
 * summary JSON (docs/results.md) and an aligned table for people. It reads
 * only records, so rescore, merge and resume reuse it. Not thread-safe.
 */
#ifndef ASSAY_SUMMARY_H
#define ASSAY_SUMMARY_H

#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#define ASSAY_SUMMARY_FORMAT_VERSION 1
#define ASSAY_RECORD_FORMAT_VERSION 1

struct assay_summary;
struct assay_threshold; /* gate.h */

struct assay_summary *assay_summary_new(void);
void assay_summary_free(struct assay_summary *s);

/*
 * Adds one result record (borrowed) as written to the JSONL file:
 * {"index","id","trial","input","output","scores":{name:{"value","reason",
 * "error"}},"error":null|{"code","message"},"attempts","task_ms",
 * "metrics_ms"}. Scores with a null value count as failures of that score.
 */
void assay_summary_add(struct assay_summary *s, const cJSON *record);

/*
 * Sets the --pass thresholds (t borrowed, copied; n == 0 clears them).
 * Call before the first assay_summary_add. With thresholds the summary
 * counts records that pass them (counts.passed) and records whose task
 * succeeded but that fail one (counts.failed_thresholds), and reports
 * pass@k and pass^k per thresholded score in "trials".
 */
void assay_summary_set_thresholds(struct assay_summary *s,
                                  const struct assay_threshold *t, size_t n);

/*
 * Builds the summary object (owned). run is borrowed and its members are
 * copied into the summary as they are: "name", "started", "wall_ms",
 * "status", "config", "plugins", "engine" (engine counters: plugin faults,
 * late completions, retries by cause, ...). The summary adds
 * "format_version", "items_per_s" (from wall_ms), "counts", "scores",
 * "usage", "latency" and, when an item had several trials or thresholds
 * are set, "trials": per score the mean over items of each item's mean and
 * maximum, and pass@k / pass^k. Records of one item must come one after
 * the other (as the engine writes them): a change of "index" closes an
 * item. The open item is included, so the summary can be taken mid-run.
 */
cJSON *assay_summary_json(const struct assay_summary *s, const cJSON *run);

/* Prints a summary object as an aligned table for a terminal. */
void assay_summary_print(const cJSON *summary, FILE *out);

#endif
