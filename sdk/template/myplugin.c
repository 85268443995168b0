/*
 * myplugin: a template for an assay plugin, built against the installed SDK.
 * It holds one task and one metric, each as small as a real one can be:
 *   - the task "shout" reads the item's "input" text and outputs it
 *     upper-cased, with an optional suffix (the `suffix` option);
 *   - the metric "length_ratio" scores how close the output's length is to
 *     the reference's (1 when equal, towards 0 as they differ).
 * Copy this directory, rename the file and the module name in ASSAY_PLUGIN()
 * together (libtool's rule: the module name is the file's base name), and
 * replace the two run functions with your own.
 *
 * Both entry points here are sync: the host runs them on its worker threads.
 * For network or process I/O, write a run_async entry instead (see the
 * guides in the assay documentation and <assay/plugin.h>).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <assay/plugin.h>

struct shout {
  const struct assay_host *host;
  char *suffix; /* owned, host->format() memory */
};

static int shout_init(const cJSON *config, const struct assay_host *host,
                      void **state, char **errmsg) {
  struct shout *s = host->alloc(sizeof *s);
  s->host = host;
  s->suffix = host->format("%s", host->opt_string(config, "suffix", ""));
  if (strlen(s->suffix) > 100) {
    *errmsg = host->format("shout: suffix is longer than 100 bytes");
    host->dealloc(s->suffix);
    host->dealloc(s);
    return -1;
  }
  *state = s;
  return 0;
}

static void shout_fini(void *state) {
  struct shout *s = state;
  s->host->dealloc(s->suffix);
  s->host->dealloc(s);
}

/* Runs on a worker thread; the input is borrowed, the result is the host's. */
static cJSON *shout_run(void *state, const cJSON *input, assay_call call) {
  struct shout *s = state;
  const cJSON *text = cJSON_GetObjectItemCaseSensitive(input, "input");
  if (!cJSON_IsString(text)) {
    s->host->fail(call, ASSAY_FAIL_BAD_INPUT, -1,
                  "item has no string field 'input'");
    return NULL;
  }
  size_t n = strlen(text->valuestring), m = strlen(s->suffix);
  char *out = malloc(n + m + 1);
  if (out == NULL) {
    s->host->fail(call, ASSAY_FAIL_ERROR, -1, "shout: out of memory");
    return NULL;
  }
  for (size_t i = 0; i < n; i++)
    out[i] = (char)toupper((unsigned char)text->valuestring[i]);
  memcpy(out + n, s->suffix, m + 1);
  cJSON *result = cJSON_CreateObject();
  cJSON_AddStringToObject(result, "output", out);
  free(out);
  return result; /* an object: the task's output as is */
}

/* Metric: 1 - |len(output) - len(reference)| / max(len), in [0, 1]. */
static cJSON *length_ratio_run(void *state, const cJSON *input,
                               assay_call call) {
  (void)state; /* stateless: no init, so state is NULL */
  (void)call;
  const cJSON *out = cJSON_GetObjectItemCaseSensitive(input, "output");
  const cJSON *ref = cJSON_GetObjectItemCaseSensitive(input, "reference");
  if (!cJSON_IsString(out) || !cJSON_IsString(ref))
    return NULL; /* recorded as a failed score: "returned nothing" */
  double a = (double)strlen(out->valuestring);
  double b = (double)strlen(ref->valuestring);
  double max = a > b ? a : b;
  double value = max == 0 ? 1.0 : 1.0 - (a > b ? a - b : b - a) / max;
  cJSON *score = cJSON_CreateObject();
  cJSON_AddNumberToObject(score, "value", value);
  cJSON_AddStringToObject(score, "reason", "compares lengths only");
  return score;
}

static const struct assay_option shout_options[] = {
    {"suffix", ASSAY_OPT_STRING, "\"\"", "text appended to the output", 0},
    {NULL, 0, NULL, NULL, 0}};

static const struct assay_input length_ratio_inputs[] = {
    {"output", 0, "the text to score"},
    {"reference", 0, "the expected text"},
    {NULL, 0, NULL}};

static const struct assay_component shout_task = {
    .size = ASSAY_COMPONENT_SIZE,
    .kind = ASSAY_KIND_TASK,
    .name = "shout",
    .description = "outputs the item's input upper-cased",
    .options = shout_options,
    .init = shout_init,
    .fini = shout_fini,
    .run_sync = shout_run,
};

static const struct assay_component length_ratio_metric = {
    .size = ASSAY_COMPONENT_SIZE,
    .kind = ASSAY_KIND_METRIC,
    .name = "length_ratio",
    .description = "how close the output's length is to the reference's",
    .inputs = length_ratio_inputs,
    .flags = ASSAY_THREAD_SAFE, /* no state: calls may run in parallel */
    .run_sync = length_ratio_run,
};

static const struct assay_component *const components[] = {
    &shout_task, &length_ratio_metric, NULL};

static const struct assay_plugin plugin = {
    ASSAY_PLUGIN_HEADER,
    .name = "myplugin",
    .version = "0.1.0",
    .description = "a template plugin: a task and a metric",
    .components = components,
};

ASSAY_PLUGIN(myplugin, plugin)
