/*
 * shout: a minimal sync task plugin for assay. Its output is one text field
 * of the item in upper case (ASCII letters only). It is the first example of
 * docs/writing-task-plugins.md.
 */
#include <ctype.h>
#include <stdlib.h>

#include <assay/plugin.h>

/* One instance of the task, made by init() and freed by fini(). */
struct shout {
  const struct assay_host *host;
  const char *field; /* borrowed from the config, which lives until fini */
};

static int shout_init(const cJSON *config, const struct assay_host *host,
                      void **state, char **errmsg) {
  struct shout *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    *errmsg = host->format("shout: out of memory");
    return -1;
  }
  s->host = host;
  /* The host has filled in the default, so "input" is only a fallback. */
  s->field = host->opt_string(config, "field", "input");
  *state = s;
  return 0;
}

static void shout_fini(void *state) { free(state); }

/* Runs on a worker thread. The state is only read, so several calls may run
 * at once: the component says so with ASSAY_THREAD_SAFE below. */
static cJSON *shout_run(void *state, const cJSON *input, assay_call call) {
  struct shout *s = state;
  const cJSON *text = cJSON_GetObjectItemCaseSensitive(input, s->field);
  if (!cJSON_IsString(text)) {
    s->host->fail(call, ASSAY_FAIL_BAD_INPUT, -1,
                  "item field '%s' is missing or not a string", s->field);
    return NULL;
  }
  cJSON *out = cJSON_CreateString(text->valuestring);
  if (out == NULL) {
    s->host->fail(call, ASSAY_FAIL_ERROR, -1, "out of memory");
    return NULL;
  }
  for (char *p = out->valuestring; *p != '\0'; p++)
    *p = (char)toupper((unsigned char)*p);
  return out; /* not an object, so the host records {"output": "..."} */
}

static const struct assay_option shout_options[] = {
    {"field", ASSAY_OPT_STRING, "\"input\"", "item field to shout", 0},
    {NULL, 0, NULL, NULL, 0}};

static const struct assay_component shout_task = {
    .size = ASSAY_COMPONENT_SIZE,
    .kind = ASSAY_KIND_TASK,
    .name = "shout",
    .description = "an item field in upper case",
    .options = shout_options,
    .flags = ASSAY_THREAD_SAFE,
    .init = shout_init,
    .fini = shout_fini,
    .run_sync = shout_run,
};

static const struct assay_component *const shout_components[] = {&shout_task,
                                                                 NULL};

static const struct assay_plugin shout_plugin = {
    ASSAY_PLUGIN_HEADER,
    .name = "shout",
    .version = "1.0.0",
    .description = "example sync task",
    .components = shout_components,
};

/* The module name must be the file's base name: shout.c -> shout.so. */
ASSAY_PLUGIN(shout, shout_plugin)
