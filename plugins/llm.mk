# plugins/llm.mk: the LLM plugins. openai_chat (task) and the LLM-as-judge
# metrics share plugins/libllm.la, a convenience library copied into each
# module (plugins link nothing from the host). The judge prompts are data
# files installed under $(pkgdatadir)/prompts, where the host's datadir
# points once installed; in the build tree it points at plugins/data.

noinst_LTLIBRARIES += plugins/libllm.la
plugins_libllm_la_SOURCES = plugins/llmlib.c plugins/llmlib.h core/jsonwords.h
plugins_libllm_la_CFLAGS = $(PLUGIN_CFLAGS)
plugins_libllm_la_LIBADD = $(CJSON_LIBS) -lm

LLM_PLUGIN_LIBADD = plugins/libllm.la $(PLUGIN_LIBS)

pkglib_LTLIBRARIES += plugins/openai_chat.la
plugins_openai_chat_la_SOURCES = plugins/openai_chat.c
plugins_openai_chat_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)
plugins_openai_chat_la_LIBADD = $(LLM_PLUGIN_LIBADD)

pkglib_LTLIBRARIES += plugins/hallucination.la plugins/answer_relevance.la \
	plugins/context_precision.la plugins/context_recall.la \
	plugins/moderation.la plugins/usefulness.la plugins/g_eval.la
plugins_hallucination_la_SOURCES = plugins/hallucination.c
plugins_hallucination_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)
plugins_hallucination_la_LIBADD = $(LLM_PLUGIN_LIBADD)
plugins_answer_relevance_la_SOURCES = plugins/answer_relevance.c
plugins_answer_relevance_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)
plugins_answer_relevance_la_LIBADD = $(LLM_PLUGIN_LIBADD)
plugins_context_precision_la_SOURCES = plugins/context_precision.c
plugins_context_precision_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)
plugins_context_precision_la_LIBADD = $(LLM_PLUGIN_LIBADD)
plugins_context_recall_la_SOURCES = plugins/context_recall.c
plugins_context_recall_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)
plugins_context_recall_la_LIBADD = $(LLM_PLUGIN_LIBADD)
plugins_moderation_la_SOURCES = plugins/moderation.c
plugins_moderation_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)
plugins_moderation_la_LIBADD = $(LLM_PLUGIN_LIBADD)
plugins_usefulness_la_SOURCES = plugins/usefulness.c
plugins_usefulness_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)
plugins_usefulness_la_LIBADD = $(LLM_PLUGIN_LIBADD)
plugins_g_eval_la_SOURCES = plugins/g_eval.c
plugins_g_eval_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)
plugins_g_eval_la_LIBADD = $(LLM_PLUGIN_LIBADD)

# The judge prompts: host->datadir + "/prompts/<metric>.txt".
llmpromptsdir = $(pkgdatadir)/prompts
dist_llmprompts_DATA = \
	plugins/data/prompts/hallucination.txt \
	plugins/data/prompts/answer_relevance.txt \
	plugins/data/prompts/context_precision.txt \
	plugins/data/prompts/context_recall.txt \
	plugins/data/prompts/moderation.txt \
	plugins/data/prompts/usefulness.txt \
	plugins/data/prompts/g_eval.txt

EXTRA_DIST += docs/llm.md
