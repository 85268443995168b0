/*
 * Fuzz target for option validation (assay_options_apply in core/loader.c):
 * the input, parsed as a JSON object, is applied as the options of a few
 * component declarations with every option type, defaults and required
 * options. On success the config holds each declared option converted to
 * its type; on failure there is a message and no config.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fuzz.h"
#include "loader.h"

static const struct assay_option all_types[] = {
    {"text", ASSAY_OPT_STRING, "\"x\"", "a string", 0},
    {"ratio", ASSAY_OPT_NUMBER, "0.5", "a number", 0},
    {"count", ASSAY_OPT_INTEGER, "3", "an integer", 0},
    {"flag", ASSAY_OPT_BOOLEAN, "false", "a boolean", 0},
    {"extra", ASSAY_OPT_JSON, "{\"a\":[1]}", "any JSON", 0},
    {"maybe", ASSAY_OPT_STRING, NULL, "optional, no default", 0},
    {NULL, 0, NULL, NULL, 0}};

static const struct assay_option required[] = {
    {"pattern", ASSAY_OPT_STRING, NULL, "a required string", ASSAY_OPT_REQUIRED},
    {"limit", ASSAY_OPT_INTEGER, NULL, "a required integer", ASSAY_OPT_REQUIRED},
    {"weights", ASSAY_OPT_JSON, NULL, NULL, 0},
    {"strict", ASSAY_OPT_BOOLEAN, NULL, NULL, 0},
    {NULL, 0, NULL, NULL, 0}};

static const struct assay_component comps[] = {
    {.size = ASSAY_COMPONENT_SIZE, .kind = ASSAY_KIND_TASK, .name = "all_types",
     .options = all_types},
    {.size = ASSAY_COMPONENT_SIZE, .kind = ASSAY_KIND_METRIC, .name = "required",
     .options = required},
    {.size = ASSAY_COMPONENT_SIZE, .kind = ASSAY_KIND_METRIC, .name = "none",
     .options = NULL},
};

static int is_reserved(const char *k, const char *const *reserved) {
  for (size_t i = 0; reserved[i] != NULL; i++)
    if (strcmp(reserved[i], k) == 0)
      return 1;
  return 0;
}

static int has_type(const cJSON *v, int type) {
  switch (type) {
  case ASSAY_OPT_STRING:
    return cJSON_IsString(v);
  case ASSAY_OPT_NUMBER:
    return cJSON_IsNumber(v) && isfinite(v->valuedouble);
  case ASSAY_OPT_INTEGER:
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
           v->valuedouble == floor(v->valuedouble);
  case ASSAY_OPT_BOOLEAN:
    return cJSON_IsBool(v);
  default:
    return v != NULL;
  }
}

static void apply_one(const struct assay_component *comp, const cJSON *given) {
  static const char *const reserved[] = {"name", NULL};
  struct assay_module mod = {.path = (char *)"/fuzz/plugin.so",
                             .name = (char *)"fuzz"};
  cJSON *config = (cJSON *)&mod; /* must stay untouched on failure */
  char *err = NULL;
  int rc = assay_options_apply(&mod, comp, given, reserved, &config, &err);
  if (rc != 0) {
    FUZZ_CHECK(rc == ASSAY_ECONFIG, "options_apply returned %d: %s", rc,
               err ? err : "(no message)");
    FUZZ_CHECK(err != NULL && *err != '\0', "options_apply failed silently");
    FUZZ_CHECK(config == (cJSON *)&mod, "config set on failure");
    free(err);
    return;
  }
  FUZZ_CHECK(err == NULL, "errmsg set on success: %s", err);
  FUZZ_CHECK(cJSON_IsObject(config), "config is not an object");
  const struct assay_option none[] = {{NULL, 0, NULL, NULL, 0}};
  const struct assay_option *opts = comp->options ? comp->options : none;
  /* Every given key is declared or reserved; reserved ones stay out. */
  const cJSON *v;
  cJSON_ArrayForEach(v, given) {
    if (is_reserved(v->string, reserved)) {
      FUZZ_CHECK(cJSON_GetObjectItemCaseSensitive(config, v->string) == NULL,
                 "reserved option '%s' reached the config", v->string);
      continue;
    }
    const struct assay_option *o = opts;
    while (o->name != NULL && strcmp(o->name, v->string) != 0)
      o++;
    FUZZ_CHECK(o->name != NULL, "unknown option '%s' accepted", v->string);
  }
  /* Every declared option with a value has its type; required ones and
   * ones with a default are there. */
  for (const struct assay_option *o = opts; o->name != NULL; o++) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(config, o->name);
    if (c == NULL) {
      FUZZ_CHECK(o->default_json == NULL && !(o->flags & ASSAY_OPT_REQUIRED),
                 "option '%s' missing from the config", o->name);
      continue;
    }
    FUZZ_CHECK(has_type(c, o->type), "option '%s' has the wrong type",
               o->name);
  }
  /* Nothing but declared options. */
  cJSON_ArrayForEach(v, config) {
    const struct assay_option *o = opts;
    while (o->name != NULL && strcmp(o->name, v->string) != 0)
      o++;
    FUZZ_CHECK(o->name != NULL, "config holds undeclared '%s'", v->string);
  }
  cJSON_Delete(config);
}

int assay__fuzz_options(const uint8_t *data, size_t size) {
  cJSON *given = cJSON_ParseWithLength((const char *)data, size);
  /* The host only ever passes an object (or NULL for no options). */
  if (given != NULL && cJSON_IsObject(given))
    for (size_t i = 0; i < sizeof comps / sizeof comps[0]; i++)
      apply_one(&comps[i], given);
  if (size == 0)
    for (size_t i = 0; i < sizeof comps / sizeof comps[0]; i++)
      apply_one(&comps[i], NULL);
  cJSON_Delete(given);
  return 0;
}
