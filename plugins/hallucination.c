/*
 * hallucination: does the output state facts that the context does not support?
 * 1 means hallucinated, 0 faithful.
 * The judge's prompt is plugins/data/prompts/hallucination.txt (installed under
 * $(pkgdatadir)/prompts, overridable with prompt_file); the judge answers
 * {"score": 0 to 1, "reason": "..."}. Everything else is in llmlib.
 */
#include "config.h"

#include <stddef.h>

#include <assay/plugin.h>

#include "llmlib.h"

static const char *const fields[] = {"input", "output", "context", NULL};

static const struct assay__llm_judge_spec spec = {"hallucination", 1, fields,
                                                  NULL};

static const struct assay_option options[] = {ASSAY__LLM_JUDGE_OPTIONS,
                                              {NULL, 0, NULL, NULL, 0}};

static const struct assay_input inputs[] = {
    {"input", 0, "the question or instruction"},
    {"output", 0, "the answer to check"},
    {"context", 0,
     "the source text the answer must stay within (string or list of strings)"},
    {NULL, 0, NULL}};

ASSAY__LLM_JUDGE_MODULE(hallucination, spec, options, inputs,
                        "LLM judge: 1 when the output states what the context "
                        "and input do not support")
