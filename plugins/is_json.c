/*
 * is_json: 1 when the output is a string holding one JSON value (object,
 * array, string, number, true, false or null, with surrounding whitespace
 * allowed), else 0. A non-string output is not JSON text and scores 0.
 * Parsing is cJSON's, with the whole string required to be consumed.
 */
#include <stdlib.h>
#include <string.h>

#include <assay/plugin.h>

#include "text.h"

struct is_json {
  const struct assay_host *host;
};

static int is_json_init(const cJSON *config, const struct assay_host *host,
                        void **state, char **errmsg) {
  struct is_json *st = calloc(1, sizeof *st);
  if (st == NULL) {
    *errmsg = host->format("out of memory");
    return -1;
  }
  st->host = host;
  *state = st;
  return 0;
}

static void is_json_fini(void *state) {
  free(state);
}

static cJSON *is_json_run(void *state, const cJSON *input, assay_call call) {
  struct is_json *st = state;
  const cJSON *out = cJSON_GetObjectItemCaseSensitive(input, "output");
  cJSON *res;
  if (out == NULL) {
    assay__text_fail(st->host, call, ASSAY_EMISSING_INPUT, "output");
    return NULL;
  }
  if (!cJSON_IsString(out)) {
    res = assay__score_new(0, "output is %s, not a string of JSON text",
                           assay_json_kind(out));
  } else {
    const char *end = NULL;
    cJSON *parsed = cJSON_ParseWithOpts(out->valuestring, &end, 1);
    if (parsed != NULL) {
      res = assay__score_new(1, "output parses as JSON (%s)",
                             assay_json_kind(parsed));
      cJSON_Delete(parsed);
    } else {
      size_t at = end != NULL && end >= out->valuestring
                      ? (size_t)(end - out->valuestring)
                      : 0;
      res = assay__score_new(0, "output is not valid JSON (error at byte %zu)",
                             at);
    }
  }
  if (res == NULL)
    st->host->fail(call, ASSAY_FAIL_ERROR, -1, "out of memory");
  return res;
}

static const struct assay_input is_json_inputs[] = {
    {"output", 0, "the text that should be JSON"}, {NULL, 0, NULL}};

static const struct assay_component is_json_component = {
    .size = ASSAY_COMPONENT_SIZE,
    .kind = ASSAY_KIND_METRIC,
    .name = "is_json",
    .description = "1 when the output string parses as JSON, else 0",
    .options = NULL,
    .inputs = is_json_inputs,
    .flags = ASSAY_THREAD_SAFE | ASSAY_QUICK,
    .init = is_json_init,
    .fini = is_json_fini,
    .run_sync = is_json_run,
};

static const struct assay_component *const is_json_components[] = {
    &is_json_component, NULL};

static const struct assay_plugin is_json_plugin = {
    ASSAY_PLUGIN_HEADER,
    .name = "is_json",
    .version = "1.0.0",
    .description = "JSON validity of the output",
    .components = is_json_components,
};

ASSAY_PLUGIN(is_json, is_json_plugin)
