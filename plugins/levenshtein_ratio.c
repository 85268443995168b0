/*
 * levenshtein_ratio: the normalized indel similarity of output and
 * reference over Unicode code points, as Opik's LevenshteinRatio (rapidfuzz
 * Indel.normalized_similarity):
 *   1 - (len1 + len2 - 2 * LCS) / (len1 + len2),  and 1 when both are empty.
 * Case-insensitive by default, with Unicode case folding (text.h). The LCS
 * is bit-parallel (text.h), len1 * len2 / 64 steps, so each text is capped
 * at LEVENSHTEIN_MAX_CHARS code points: two unrelated texts at the cap take
 * a few seconds, as long as 100,000 took the earlier one-cell-per-step DP.
 */
#include <stdlib.h>
#include <string.h>

#include <assay/plugin.h>

#include "text.h"

#define LEVENSHTEIN_MAX_CHARS 500000

struct levenshtein {
  const struct assay_host *host;
  int case_sensitive;
};

static int levenshtein_init(const cJSON *config, const struct assay_host *host,
                            void **state, char **errmsg) {
  struct levenshtein *st = calloc(1, sizeof *st);
  if (st == NULL) {
    *errmsg = host->format("out of memory");
    return -1;
  }
  st->host = host;
  st->case_sensitive = host->opt_bool(config, "case_sensitive", 0);
  *state = st;
  return 0;
}

static void levenshtein_fini(void *state) {
  free(state);
}

/* Texts up to this many code points are compared in stack buffers. */
#define LEVENSHTEIN_STACK_CHARS 256

/* The code points of input key, as compared, in buf (cap entries) or an
 * owned array (see assay__text_load_codepoints); fails the call on error. */
static int load(struct levenshtein *st, const cJSON *input, const char *key,
                assay_call call, uint32_t *buf, size_t cap, uint32_t **cps,
                size_t *n) {
  int err =
      assay__text_load_codepoints(cJSON_GetObjectItemCaseSensitive(input, key),
                                  !st->case_sensitive, buf, cap, cps, n);
  if (err != 0) {
    *cps = buf;
    assay__text_fail(st->host, call, err, key);
    return err;
  }
  if (*n > LEVENSHTEIN_MAX_CHARS) {
    st->host->fail(call, ASSAY_FAIL_BAD_INPUT, -1,
                   "'%s' has %zu characters, more than the %d that "
                   "levenshtein_ratio compares; shorten it",
                   key, *n, LEVENSHTEIN_MAX_CHARS);
    return ASSAY_EBAD_INPUT;
  }
  return 0;
}

static cJSON *levenshtein_run(void *state, const cJSON *input,
                              assay_call call) {
  struct levenshtein *st = state;
  const size_t cap = LEVENSHTEIN_STACK_CHARS;
  uint32_t abuf[LEVENSHTEIN_STACK_CHARS], bbuf[LEVENSHTEIN_STACK_CHARS];
  uint32_t *a = abuf, *b = bbuf;
  size_t na = 0, nb = 0, lcs = 0;
  cJSON *res = NULL;
  if (load(st, input, "output", call, abuf, cap, &a, &na) != 0 ||
      load(st, input, "reference", call, bbuf, cap, &b, &nb) != 0)
    goto done;
  if (assay__lcs_length(a, na, b, nb, &lcs) != 0) {
    st->host->fail(call, ASSAY_FAIL_ERROR, -1, "out of memory");
    goto done;
  }
  size_t total = na + nb, dist = total - 2 * lcs;
  double value = total == 0 ? 1.0 : 1.0 - (double)dist / (double)total;
  res = assay__score_new(
      value,
      "%zu %s turn%s the output (%zu character%s) into "
      "the reference (%zu)%s",
      dist, dist == 1 ? "insertion/deletion" : "insertions/deletions",
      dist == 1 ? "s" : "", na, na == 1 ? "" : "s", nb,
      st->case_sensitive ? "" : ", ignoring case");
  if (res == NULL)
    st->host->fail(call, ASSAY_FAIL_ERROR, -1, "out of memory");
done:
  if (a != abuf)
    free(a);
  if (b != bbuf)
    free(b);
  return res;
}

static const struct assay_option levenshtein_options[] = {
    {"case_sensitive", ASSAY_OPT_BOOLEAN, "false",
     "compare case-sensitively (default: Unicode case folding)", 0},
    {NULL, 0, NULL, NULL, 0}};

static const struct assay_input levenshtein_inputs[] = {
    {"output", 0, "the text to check (non-strings as compact JSON)"},
    {"reference", 0, "the expected text"},
    {NULL, 0, NULL}};

static const struct assay_component levenshtein_component = {
    .size = ASSAY_COMPONENT_SIZE,
    .kind = ASSAY_KIND_METRIC,
    .name = "levenshtein_ratio",
    .description = "normalized indel similarity of output and reference (0..1)",
    .options = levenshtein_options,
    .inputs = levenshtein_inputs,
    .flags = ASSAY_THREAD_SAFE,
    .init = levenshtein_init,
    .fini = levenshtein_fini,
    .run_sync = levenshtein_run,
};

static const struct assay_component *const levenshtein_components[] = {
    &levenshtein_component, NULL};

static const struct assay_plugin levenshtein_plugin = {
    ASSAY_PLUGIN_HEADER,
    .name = "levenshtein_ratio",
    .version = "1.0.0",
    .description = "edit-distance similarity of output and reference",
    .components = levenshtein_components,
};

ASSAY_PLUGIN(levenshtein_ratio, levenshtein_plugin)
