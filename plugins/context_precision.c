/*
 * context_precision: is the retrieved context relevant to the
 * question and the expected answer, without noise? 1 all relevant.
 * The judge's prompt is plugins/data/prompts/context_precision.txt (installed
 * under
 * $(pkgdatadir)/prompts, overridable with prompt_file); the judge answers
 * {"score": 0 to 1, "reason": "..."}. Everything else is in llmlib.
 */
#include "config.h"

#include <stddef.h>

#include <assay/plugin.h>

#include "llmlib.h"

static const char *const fields[] = {"input", "output", "expected_output",
                                     "context", NULL};

static const struct assay__llm_judge_spec spec = {"context_precision", 1,
                                                  fields, NULL};

static const struct assay_option options[] = {ASSAY__LLM_JUDGE_OPTIONS,
                                              {NULL, 0, NULL, NULL, 0}};

static const struct assay_input inputs[] = {
    {"input", 0, "the question"},
    {"output", 0, "the answer given"},
    {"expected_output", 0, "the reference answer"},
    {"context", 0, "the retrieved passages (string or list of strings)"},
    {NULL, 0, NULL}};

ASSAY__LLM_JUDGE_MODULE(context_precision, spec, options, inputs,
                        "LLM judge: how much of the retrieved context is "
                        "relevant to producing the expected answer")
