/*
 * usefulness: how helpful, accurate and complete is the output as a
 * reply to the input? 1 very useful.
 * The judge's prompt is plugins/data/prompts/usefulness.txt (installed under
 * $(pkgdatadir)/prompts, overridable with prompt_file); the judge answers
 * {"score": 0 to 1, "reason": "..."}. Everything else is in llmlib.
 */
#include "config.h"

#include <stddef.h>

#include <assay/plugin.h>

#include "llmlib.h"

static const char *const fields[] = {"input", "output", NULL};

static const struct assay__llm_judge_spec spec = {"usefulness", 1, fields,
                                                  NULL};

static const struct assay_option options[] = {ASSAY__LLM_JUDGE_OPTIONS,
                                              {NULL, 0, NULL, NULL, 0}};

static const struct assay_input inputs[] = {{"input", 0, "the request"},
                                            {"output", 0, "the reply to judge"},
                                            {NULL, 0, NULL}};

ASSAY__LLM_JUDGE_MODULE(usefulness, spec, options, inputs,
                        "LLM judge: how useful the output is as a reply to the "
                        "input (1 = very useful)")
