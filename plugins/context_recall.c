/*
 * context_recall: does the retrieved context hold what the expected
 * answer needs? 1 everything is supported by the context.
 * The judge's prompt is plugins/data/prompts/context_recall.txt (installed
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

static const struct assay__llm_judge_spec spec = {"context_recall", 1, fields,
                                                  NULL};

static const struct assay_option options[] = {ASSAY__LLM_JUDGE_OPTIONS,
                                              {NULL, 0, NULL, NULL, 0}};

static const struct assay_input inputs[] = {
    {"input", 0, "the question"},
    {"output", 0, "the answer given"},
    {"expected_output", 0, "the reference answer"},
    {"context", 0, "the retrieved passages (string or list of strings)"},
    {NULL, 0, NULL}};

ASSAY__LLM_JUDGE_MODULE(
    context_recall, spec, options, inputs,
    "LLM judge: how much of the expected answer the retrieved context supports")
