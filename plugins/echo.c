/*
 * echo: a sync task whose output is one field of the item, unchanged. The
 * simplest system under test, for demos, tests and the CPU-path benchmark.
 */
#include <stdlib.h>
#include <string.h>

#include <assay/plugin.h>

#include "jsonwords.h"

struct echo {
  const struct assay_host *host;
  char *field;
};

static int echo_init(const cJSON *config, const struct assay_host *host,
                     void **state, char **errmsg) {
  struct echo *e = host->alloc(sizeof *e);
  const char *field = host->opt_string(config, "field", "input");
  e->host = host;
  e->field = host->format("%s", field);
  *state = e;
  return 0;
}

static void echo_fini(void *state) {
  struct echo *e = state;
  e->host->dealloc(e->field);
  e->host->dealloc(e);
}

static cJSON *echo_run(void *state, const cJSON *input, assay_call call) {
  struct echo *e = state;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(input, e->field);
  if (v == NULL) {
    char *have = assay_json_keys(input, "no fields");
    e->host->fail(call, ASSAY_FAIL_BAD_INPUT, -1,
                  "item has no field '%s' (it has: %s); pick the field to "
                  "echo with --opt field=NAME",
                  e->field, have ? have : "?");
    free(have);
    return NULL;
  }
  cJSON *out = cJSON_CreateObject();
  cJSON_AddItemToObject(out, "output", cJSON_Duplicate(v, 1));
  return out;
}

static const struct assay_option echo_options[] = {
    {"field", ASSAY_OPT_STRING, "\"input\"", "the item field to output", 0},
    {NULL, 0, NULL, NULL, 0}};

static const struct assay_component echo_task = {
    .size = ASSAY_COMPONENT_SIZE,
    .kind = ASSAY_KIND_TASK,
    .name = "echo",
    .description = "outputs an item field unchanged (sync)",
    .options = echo_options,
    .flags = ASSAY_THREAD_SAFE,
    .init = echo_init,
    .fini = echo_fini,
    .run_sync = echo_run,
};

static const struct assay_component *const echo_components[] = {&echo_task,
                                                                NULL};

static const struct assay_plugin echo_plugin = {
    ASSAY_PLUGIN_HEADER,
    .name = "echo",
    .version = "1.0.0",
    .description = "echo task",
    .components = echo_components,
};

ASSAY_PLUGIN(echo, echo_plugin)
