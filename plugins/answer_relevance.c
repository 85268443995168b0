/*
 * answer_relevance: does the output answer the input, on topic and
 * completely? 1 fully relevant, 0 unrelated.
 * The judge's prompt is plugins/data/prompts/answer_relevance.txt (installed
 * under
 * $(pkgdatadir)/prompts, overridable with prompt_file); the judge answers
 * {"score": 0 to 1, "reason": "..."}. Everything else is in llmlib.
 */
#include "config.h"

#include <stddef.h>

#include <assay/plugin.h>

#include "llmlib.h"

static const char *const fields[] = {"input", "output", "context", NULL};

static const struct assay__llm_judge_spec spec = {"answer_relevance", 1, fields,
                                                  NULL};

static const struct assay_option options[] = {ASSAY__LLM_JUDGE_OPTIONS,
                                              {NULL, 0, NULL, NULL, 0}};

static const struct assay_input inputs[] = {
    {"input", 0, "the question or instruction"},
    {"output", 0, "the answer to judge"},
    {"context", ASSAY_INPUT_OPTIONAL,
     "background the answer may draw on (optional)"},
    {NULL, 0, NULL}};

ASSAY__LLM_JUDGE_MODULE(
    answer_relevance, spec, options, inputs,
    "LLM judge: how directly the output answers the input (1 = fully relevant)")
