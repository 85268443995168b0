/*
 * g_eval: a judge scored against the user's own task introduction and
 * evaluation criteria (the G-Eval form); the judge answers 0 to 10 and the
 * value is that divided by 10.
 * The judge's prompt is plugins/data/prompts/g_eval.txt (installed under
 * $(pkgdatadir)/prompts, overridable with prompt_file); the judge answers
 * {"score": 0 to 10, "reason": "..."}. Everything else is in llmlib.
 */
#include "config.h"

#include <stddef.h>

#include <assay/plugin.h>

#include "llmlib.h"

static const char *const fields[] = {"input", "output", NULL};
static const char *const option_fields[] = {"task_introduction",
                                            "evaluation_criteria", NULL};

static const struct assay__llm_judge_spec spec = {"g_eval", 10, fields,
                                                  option_fields};

static const struct assay_option options[] = {
    {"task_introduction", ASSAY_OPT_STRING, NULL,
     "what the system under evaluation was asked to do", ASSAY_OPT_REQUIRED},
    {"evaluation_criteria", ASSAY_OPT_STRING, NULL,
     "what makes an output good, in your words", ASSAY_OPT_REQUIRED},
    ASSAY__LLM_JUDGE_OPTIONS,
    {NULL, 0, NULL, NULL, 0}};

static const struct assay_input inputs[] = {
    {"input", ASSAY_INPUT_OPTIONAL, "the input given to the system (optional)"},
    {"output", 0, "the output to judge"},
    {NULL, 0, NULL}};

ASSAY__LLM_JUDGE_MODULE(g_eval, spec, options, inputs,
                        "LLM judge with your own task introduction and "
                        "criteria (G-Eval): score 0-10 / 10")
