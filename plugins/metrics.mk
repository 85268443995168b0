# plugins/metrics.mk: the built-in heuristic metrics, one libtool module per
# metric (the module's file name is the metric's name), and the text helpers
# they share as a convenience library linked into each of them.
noinst_LTLIBRARIES += plugins/libtext.la
plugins_libtext_la_SOURCES = plugins/text.c plugins/text.h
plugins_libtext_la_CFLAGS = $(PLUGIN_CFLAGS) $(UTF8PROC_CFLAGS)
plugins_libtext_la_LIBADD = $(UTF8PROC_LIBS) $(CJSON_LIBS)

METRIC_CFLAGS = $(PLUGIN_CFLAGS) $(UTF8PROC_CFLAGS)
METRIC_LIBS = plugins/libtext.la $(PLUGIN_LIBS)

pkglib_LTLIBRARIES += plugins/equals.la plugins/contains.la \
	plugins/regex_match.la plugins/is_json.la plugins/levenshtein_ratio.la \
	plugins/sentence_bleu.la plugins/rouge.la

plugins_equals_la_SOURCES = plugins/equals.c
plugins_equals_la_CFLAGS = $(METRIC_CFLAGS)
plugins_equals_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)
plugins_equals_la_LIBADD = $(METRIC_LIBS)

plugins_contains_la_SOURCES = plugins/contains.c
plugins_contains_la_CFLAGS = $(METRIC_CFLAGS)
plugins_contains_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)
plugins_contains_la_LIBADD = $(METRIC_LIBS)

plugins_regex_match_la_SOURCES = plugins/regex_match.c
plugins_regex_match_la_CFLAGS = $(METRIC_CFLAGS) $(PCRE2_CFLAGS)
plugins_regex_match_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)
plugins_regex_match_la_LIBADD = $(METRIC_LIBS) $(PCRE2_LIBS)

plugins_is_json_la_SOURCES = plugins/is_json.c
plugins_is_json_la_CFLAGS = $(METRIC_CFLAGS)
plugins_is_json_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)
plugins_is_json_la_LIBADD = $(METRIC_LIBS)

plugins_levenshtein_ratio_la_SOURCES = plugins/levenshtein_ratio.c
plugins_levenshtein_ratio_la_CFLAGS = $(METRIC_CFLAGS)
plugins_levenshtein_ratio_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)
plugins_levenshtein_ratio_la_LIBADD = $(METRIC_LIBS)

plugins_sentence_bleu_la_SOURCES = plugins/sentence_bleu.c
plugins_sentence_bleu_la_CFLAGS = $(METRIC_CFLAGS)
plugins_sentence_bleu_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)
plugins_sentence_bleu_la_LIBADD = $(METRIC_LIBS) -lm

plugins_rouge_la_SOURCES = plugins/rouge.c
plugins_rouge_la_CFLAGS = $(METRIC_CFLAGS)
plugins_rouge_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)
plugins_rouge_la_LIBADD = $(METRIC_LIBS) $(STEMMER_LIBS) $(UTF8PROC_LIBS)
