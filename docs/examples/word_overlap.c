/*
 * word_overlap: a minimal sync metric plugin for assay. The score is the
 * fraction of the reference's words (split on white space) that also occur
 * in the output, with a reason saying how many. It is the first example of
 * docs/writing-metric-plugins.md.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include <assay/plugin.h>

struct word_overlap {
  const struct assay_host *host;
  int case_sensitive;
};

static int word_overlap_init(const cJSON *config, const struct assay_host *host,
                             void **state, char **errmsg) {
  struct word_overlap *w = calloc(1, sizeof(*w));
  if (w == NULL) {
    *errmsg = host->format("word_overlap: out of memory");
    return -1;
  }
  w->host = host;
  w->case_sensitive = host->opt_bool(config, "case_sensitive", 0);
  *state = w;
  return 0;
}

static void word_overlap_fini(void *state) { free(state); }

/* Skips white space, then returns the length of the word at *s. */
static size_t next_word(const char **s) {
  while (isspace((unsigned char)**s))
    (*s)++;
  size_t n = 0;
  while ((*s)[n] != '\0' && !isspace((unsigned char)(*s)[n]))
    n++;
  return n;
}

static int same_word(const char *a, const char *b, size_t n, int cs) {
  for (size_t i = 0; i < n; i++) {
    unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
    if (cs ? x != y : tolower(x) != tolower(y))
      return 0;
  }
  return 1;
}

/* Whether text holds the n-byte word w as a whole word. */
static int has_word(const char *text, const char *w, size_t n, int cs) {
  size_t len;
  while ((len = next_word(&text)) > 0) {
    if (len == n && same_word(text, w, n, cs))
      return 1;
    text += len;
  }
  return 0;
}

/* Runs on a worker thread; the state is only read (ASSAY_THREAD_SAFE). The
 * host has checked that both inputs are present, not their types. */
static cJSON *word_overlap_run(void *state, const cJSON *input,
                               assay_call call) {
  struct word_overlap *w = state;
  const cJSON *output = cJSON_GetObjectItemCaseSensitive(input, "output");
  const cJSON *reference = cJSON_GetObjectItemCaseSensitive(input, "reference");
  if (!cJSON_IsString(output) || !cJSON_IsString(reference)) {
    w->host->fail(call, ASSAY_FAIL_BAD_INPUT, -1,
                  "'output' and 'reference' must be strings");
    return NULL;
  }
  const char *r = reference->valuestring;
  size_t len, words = 0, found = 0;
  while ((len = next_word(&r)) > 0) {
    words++;
    found += has_word(output->valuestring, r, len, w->case_sensitive);
    r += len;
  }
  if (words == 0) {
    w->host->fail(call, ASSAY_FAIL_BAD_INPUT, -1, "the reference has no words");
    return NULL;
  }
  char reason[64];
  snprintf(reason, sizeof(reason), "%zu of %zu reference words found", found,
           words);
  cJSON *score = cJSON_CreateObject();
  if (score == NULL || !cJSON_AddNumberToObject(score, "value",
                                                (double)found / (double)words) ||
      !cJSON_AddStringToObject(score, "reason", reason)) {
    cJSON_Delete(score);
    w->host->fail(call, ASSAY_FAIL_ERROR, -1, "out of memory");
    return NULL;
  }
  return score;
}

static const struct assay_option word_overlap_options[] = {
    {"case_sensitive", ASSAY_OPT_BOOLEAN, "false", "compare words exactly", 0},
    {NULL, 0, NULL, NULL, 0}};

static const struct assay_input word_overlap_inputs[] = {
    {"output", 0, "the text to score"},
    {"reference", 0, "the expected text"},
    {NULL, 0, NULL}};

static const struct assay_component word_overlap_metric = {
    .size = ASSAY_COMPONENT_SIZE,
    .kind = ASSAY_KIND_METRIC,
    .name = "word_overlap",
    .description = "fraction of reference words found in the output",
    .options = word_overlap_options,
    .inputs = word_overlap_inputs,
    .flags = ASSAY_THREAD_SAFE,
    .init = word_overlap_init,
    .fini = word_overlap_fini,
    .run_sync = word_overlap_run,
};

static const struct assay_component *const word_overlap_components[] = {
    &word_overlap_metric, NULL};

static const struct assay_plugin word_overlap_plugin = {
    ASSAY_PLUGIN_HEADER,
    .name = "word_overlap",
    .version = "1.0.0",
    .description = "example sync metric",
    .components = word_overlap_components,
};

ASSAY_PLUGIN(word_overlap, word_overlap_plugin)
