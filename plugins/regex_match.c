/*
 * regex_match: 1 when the regex matches anywhere in the output (an
 * unanchored search, like Python's re.search), else 0. PCRE2 in UTF mode
 * with Unicode properties, so \d, \w and case-insensitive matching follow
 * Unicode as in Python 3. The pattern is compiled once, JIT-compiled when
 * the platform supports it; each call gets its own match data, so calls
 * can run on several threads at once.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <stdlib.h>
#include <string.h>

#include <assay/plugin.h>
#include <pcre2.h>

#include "text.h"

struct regex_match {
  const struct assay_host *host;
  pcre2_code *code;
  char *pattern; /* for reasons */
};

static void regex_match_fini(void *state) {
  struct regex_match *st = state;
  if (st == NULL)
    return;
  pcre2_code_free(st->code);
  free(st->pattern);
  free(st);
}

static int regex_match_init(const cJSON *config, const struct assay_host *host,
                            void **state, char **errmsg) {
  const char *pattern = host->opt_string(config, "regex", NULL);
  if (pattern == NULL) {
    *errmsg = host->format("option 'regex' is required: give the pattern "
                           "with --opt regex=PATTERN");
    return -1;
  }
  struct regex_match *st = calloc(1, sizeof *st);
  if (st == NULL || (st->pattern = strdup(pattern)) == NULL) {
    free(st);
    *errmsg = host->format("out of memory");
    return -1;
  }
  st->host = host;
  int code;
  PCRE2_SIZE offset;
  st->code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                           PCRE2_UTF | PCRE2_UCP, &code, &offset, NULL);
  if (st->code == NULL) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof msg);
    *errmsg = host->format("invalid regex '%s' at offset %zu: %s", pattern,
                           (size_t)offset, (const char *)msg);
    regex_match_fini(st);
    return -1;
  }
  /* Without JIT support the interpreter does the same job, only slower. */
  (void)pcre2_jit_compile(st->code, PCRE2_JIT_COMPLETE);
  *state = st;
  return 0;
}

static cJSON *regex_match_run(void *state, const cJSON *input,
                              assay_call call) {
  struct regex_match *st = state;
  char *own;
  const char *out = assay__text_borrow(
      cJSON_GetObjectItemCaseSensitive(input, "output"), &own);
  if (out == NULL) {
    st->host->fail(call, ASSAY_FAIL_ERROR, -1, "out of memory");
    return NULL;
  }
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(st->code, NULL);
  if (md == NULL) {
    free(own);
    st->host->fail(call, ASSAY_FAIL_ERROR, -1, "out of memory");
    return NULL;
  }
  cJSON *res = NULL;
  size_t len = strlen(out);
  int rc = pcre2_match(st->code, (PCRE2_SPTR)out, len, 0, 0, md, NULL);
  /* JIT code runs on a small default stack; the interpreter, which keeps
   * its backtracking state on the heap, can still finish such a match. */
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
    rc = pcre2_match(st->code, (PCRE2_SPTR)out, len, 0, PCRE2_NO_JIT, md, NULL);
  char a[96], b[96];
  if (rc >= 0) {
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t start = ov[0], end = ov[1] >= ov[0] ? ov[1] : ov[0];
    char *m = strndup(out + start, end - start);
    if (m != NULL)
      res = assay__score_new(1, "regex %s matched %s at byte %zu",
                             assay__text_snippet(st->pattern, b, sizeof b, 80),
                             assay__text_snippet(m, a, sizeof a, 80), start);
    free(m);
    if (res == NULL)
      st->host->fail(call, ASSAY_FAIL_ERROR, -1, "out of memory");
  } else if (rc == PCRE2_ERROR_NOMATCH) {
    res = assay__score_new(0, "regex %s does not match the output",
                           assay__text_snippet(st->pattern, b, sizeof b, 80));
    if (res == NULL)
      st->host->fail(call, ASSAY_FAIL_ERROR, -1, "out of memory");
  } else if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21) {
    st->host->fail(call, ASSAY_FAIL_BAD_INPUT, -1,
                   "'output' is not valid UTF-8: cannot match a regex on it");
  } else {
    /* The match or depth limit stops runaway backtracking. */
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    st->host->fail(call, ASSAY_FAIL_ERROR, -1,
                   "regex '%s' failed on 'output': %s; simplify the pattern",
                   st->pattern, (const char *)msg);
  }
  pcre2_match_data_free(md);
  free(own);
  return res;
}

static const struct assay_option regex_match_options[] = {
    {"regex", ASSAY_OPT_STRING, NULL,
     "PCRE2 pattern searched anywhere in the output (like Python re.search)",
     ASSAY_OPT_REQUIRED},
    {NULL, 0, NULL, NULL, 0}};

static const struct assay_input regex_match_inputs[] = {
    {"output", 0, "the text to search (non-strings as compact JSON)"},
    {NULL, 0, NULL}};

static const struct assay_component regex_match_component = {
    .size = ASSAY_COMPONENT_SIZE,
    .kind = ASSAY_KIND_METRIC,
    .name = "regex_match",
    .description = "1 when the regex matches somewhere in the output, else 0",
    .options = regex_match_options,
    .inputs = regex_match_inputs,
    .flags = ASSAY_THREAD_SAFE,
    .init = regex_match_init,
    .fini = regex_match_fini,
    .run_sync = regex_match_run,
};

static const struct assay_component *const regex_match_components[] = {
    &regex_match_component, NULL};

static const struct assay_plugin regex_match_plugin = {
    ASSAY_PLUGIN_HEADER,
    .name = "regex_match",
    .version = "1.0.0",
    .description = "regular expression search in the output (PCRE2)",
    .components = regex_match_components,
};

ASSAY_PLUGIN(regex_match, regex_match_plugin)
