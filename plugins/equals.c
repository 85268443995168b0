/*
 * equals: 1 when the output is the same text as the reference, else 0.
 * Strings compare as text; any other JSON value as its compact JSON text.
 * Case-insensitive by default, with Unicode case folding (text.h).
 */
#include <stdlib.h>
#include <string.h>

#include <assay/plugin.h>

#include "text.h"

struct equals {
  const struct assay_host *host;
  int case_sensitive;
};

static int equals_init(const cJSON *config, const struct assay_host *host,
                       void **state, char **errmsg) {
  struct equals *st = calloc(1, sizeof *st);
  if (st == NULL) {
    *errmsg = host->format("out of memory");
    return -1;
  }
  st->host = host;
  st->case_sensitive = host->opt_bool(config, "case_sensitive", 0);
  *state = st;
  return 0;
}

static void equals_fini(void *state) {
  free(state);
}

static cJSON *equals_run(void *state, const cJSON *input, assay_call call) {
  struct equals *st = state;
  int fold = !st->case_sensitive;
  struct assay__text out, ref;
  int err = assay__text_load(
      &out, cJSON_GetObjectItemCaseSensitive(input, "output"), fold);
  if (err != 0) {
    assay__text_fail(st->host, call, err, "output");
    return NULL;
  }
  err = assay__text_load(
      &ref, cJSON_GetObjectItemCaseSensitive(input, "reference"), fold);
  if (err != 0) {
    assay__text_release(&out);
    assay__text_fail(st->host, call, err, "reference");
    return NULL;
  }
  int same = out.len == ref.len && memcmp(out.cmp, ref.cmp, out.len) == 0;
  char a[96], b[96];
  cJSON *res;
  if (same)
    res = assay__score_new(1, "output equals the reference %s%s",
                           assay__text_snippet(ref.raw, b, sizeof b, 80),
                           fold ? " (ignoring case)" : "");
  else
    res = assay__score_new(0, "output %s differs from the reference %s%s",
                           assay__text_snippet(out.raw, a, sizeof a, 80),
                           assay__text_snippet(ref.raw, b, sizeof b, 80),
                           fold ? " (ignoring case)" : "");
  if (res == NULL)
    st->host->fail(call, ASSAY_FAIL_ERROR, -1, "out of memory");
  assay__text_release(&out);
  assay__text_release(&ref);
  return res;
}

static const struct assay_option equals_options[] = {
    {"case_sensitive", ASSAY_OPT_BOOLEAN, "false",
     "compare case-sensitively (default: Unicode case folding)", 0},
    {NULL, 0, NULL, NULL, 0}};

static const struct assay_input equals_inputs[] = {
    {"output", 0, "the text to check (non-strings compare as compact JSON)"},
    {"reference", 0, "the expected text"},
    {NULL, 0, NULL}};

static const struct assay_component equals_component = {
    .size = ASSAY_COMPONENT_SIZE,
    .kind = ASSAY_KIND_METRIC,
    .name = "equals",
    .description = "1 when the output equals the reference, else 0",
    .options = equals_options,
    .inputs = equals_inputs,
    .flags = ASSAY_THREAD_SAFE | ASSAY_QUICK,
    .init = equals_init,
    .fini = equals_fini,
    .run_sync = equals_run,
};

static const struct assay_component *const equals_components[] = {
    &equals_component, NULL};

static const struct assay_plugin equals_plugin = {
    ASSAY_PLUGIN_HEADER,
    .name = "equals",
    .version = "1.0.0",
    .description = "exact match of output and reference",
    .components = equals_components,
};

ASSAY_PLUGIN(equals, equals_plugin)
