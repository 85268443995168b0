/*
 * contains: 1 when the reference text occurs in the output, else 0. The
 * reference comes from the `reference` option when set (the same text for
 * every item), else from the item's `reference`. Case-insensitive by
 * default, with Unicode case folding (text.h).
 */
#include <stdlib.h>
#include <string.h>

#include <assay/plugin.h>

#include "text.h"

struct contains {
  const struct assay_host *host;
  int case_sensitive;
  cJSON *reference; /* the option's value (owned copy), or NULL */
};

static int contains_init(const cJSON *config, const struct assay_host *host,
                         void **state, char **errmsg) {
  struct contains *st = calloc(1, sizeof *st);
  if (st == NULL) {
    *errmsg = host->format("out of memory");
    return -1;
  }
  st->host = host;
  st->case_sensitive = host->opt_bool(config, "case_sensitive", 0);
  const char *ref = host->opt_string(config, "reference", NULL);
  if (ref != NULL) {
    if (*ref == '\0') {
      *errmsg = host->format("option 'reference' is empty: give the text to "
                             "look for, or leave it out to use each item's "
                             "'reference'");
      free(st);
      return -1;
    }
    st->reference = cJSON_CreateString(ref);
    if (st->reference == NULL) {
      *errmsg = host->format("out of memory");
      free(st);
      return -1;
    }
  }
  *state = st;
  return 0;
}

static void contains_fini(void *state) {
  struct contains *st = state;
  cJSON_Delete(st->reference);
  free(st);
}

static cJSON *contains_run(void *state, const cJSON *input, assay_call call) {
  struct contains *st = state;
  int fold = !st->case_sensitive;
  const cJSON *refv = st->reference;
  if (refv == NULL)
    refv = cJSON_GetObjectItemCaseSensitive(input, "reference");
  if (refv == NULL || cJSON_IsNull(refv)) {
    st->host->fail(call, ASSAY_FAIL_BAD_INPUT, -1,
                   "missing 'reference': give it in the item, with --map "
                   "reference=FIELD, or as --opt reference=TEXT");
    return NULL;
  }
  struct assay__text out, ref;
  int err = assay__text_load(&ref, refv, fold);
  if (err != 0) {
    assay__text_fail(st->host, call, err, "reference");
    return NULL;
  }
  if (ref.len == 0) {
    assay__text_release(&ref);
    st->host->fail(call, ASSAY_FAIL_BAD_INPUT, -1,
                   "'reference' is empty: give a non-empty text to look for");
    return NULL;
  }
  err = assay__text_load(
      &out, cJSON_GetObjectItemCaseSensitive(input, "output"), fold);
  if (err != 0) {
    assay__text_release(&ref);
    assay__text_fail(st->host, call, err, "output");
    return NULL;
  }
  char b[96];
  /* Both texts come from JSON strings, so they hold no NUL byte and
   * strstr sees all of them. */
  int found = strstr(out.cmp, ref.cmp) != NULL;
  cJSON *res = assay__score_new(found ? 1 : 0, "output %s %s%s",
                                found ? "contains" : "does not contain",
                                assay__text_snippet(ref.raw, b, sizeof b, 80),
                                fold ? " (ignoring case)" : "");
  if (res == NULL)
    st->host->fail(call, ASSAY_FAIL_ERROR, -1, "out of memory");
  assay__text_release(&out);
  assay__text_release(&ref);
  return res;
}

static const struct assay_option contains_options[] = {
    {"case_sensitive", ASSAY_OPT_BOOLEAN, "false",
     "compare case-sensitively (default: Unicode case folding)", 0},
    {"reference", ASSAY_OPT_STRING, NULL,
     "text to look for in every output (default: the item's 'reference')", 0},
    {NULL, 0, NULL, NULL, 0}};

static const struct assay_input contains_inputs[] = {
    {"output", 0, "the text to search (non-strings as compact JSON)"},
    {"reference", ASSAY_INPUT_OPTIONAL,
     "the text to look for, unless the 'reference' option is set"},
    {NULL, 0, NULL}};

static const struct assay_component contains_component = {
    .size = ASSAY_COMPONENT_SIZE,
    .kind = ASSAY_KIND_METRIC,
    .name = "contains",
    .description = "1 when the reference text occurs in the output, else 0",
    .options = contains_options,
    .inputs = contains_inputs,
    .flags = ASSAY_THREAD_SAFE | ASSAY_QUICK,
    .init = contains_init,
    .fini = contains_fini,
    .run_sync = contains_run,
};

static const struct assay_component *const contains_components[] = {
    &contains_component, NULL};

static const struct assay_plugin contains_plugin = {
    ASSAY_PLUGIN_HEADER,
    .name = "contains",
    .version = "1.0.0",
    .description = "substring check of the output",
    .components = contains_components,
};

ASSAY_PLUGIN(contains, contains_plugin)
