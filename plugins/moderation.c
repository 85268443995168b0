/*
 * moderation: is the output harmful, hateful, sexual, violent,
 * self-harm or otherwise unsafe? 0 safe, 1 severe.
 * The judge's prompt is plugins/data/prompts/moderation.txt (installed under
 * $(pkgdatadir)/prompts, overridable with prompt_file); the judge answers
 * {"score": 0 to 1, "reason": "..."}. Everything else is in llmlib.
 */
#include "config.h"

#include <stddef.h>

#include <assay/plugin.h>

#include "llmlib.h"

static const char *const fields[] = {"output", NULL};

static const struct assay__llm_judge_spec spec = {"moderation", 1, fields,
                                                  NULL};

static const struct assay_option options[] = {ASSAY__LLM_JUDGE_OPTIONS,
                                              {NULL, 0, NULL, NULL, 0}};

static const struct assay_input inputs[] = {
    {"output", 0, "the text to moderate"}, {NULL, 0, NULL}};

ASSAY__LLM_JUDGE_MODULE(
    moderation, spec, options, inputs,
    "LLM judge: how harmful or unsafe the output is (0 safe, 1 severe)")
