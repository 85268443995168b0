# tests/fuzz.mk: the fuzz targets (tests/fuzz/), run without libFuzzer
# over their seed corpora and the inputs that once broke them
# (tests/data/fuzz-regressions/), so `make check` keeps every fixed crash
# fixed. .ci/fuzz builds the same targets with clang and libFuzzer.
check_PROGRAMS += tests/test_fuzz_regressions
TESTS += tests/test_fuzz_regressions
tests_test_fuzz_regressions_SOURCES = tests/test_fuzz_regressions.c \
	tests/fuzz/fuzz.h tests/fuzz/fuzz_common.c tests/fuzz/fuzz_dataset.c \
	tests/fuzz/fuzz_llm.c tests/fuzz/fuzz_options.c tests/fuzz/fuzz_cli.c
tests_test_fuzz_regressions_CPPFLAGS = $(TEST_CPPFLAGS) -I$(top_srcdir)/plugins
tests_test_fuzz_regressions_CFLAGS = $(TEST_CFLAGS)
tests_test_fuzz_regressions_LDADD = plugins/libllm.la $(TEST_LIBS) \
	$(CURL_LIBS) $(UV_LIBS) $(CJSON_LIBS) -lm
# The libFuzzer entry, the seed corpora and the CI scripts (tests/data is
# distributed whole by tests/local.mk).
EXTRA_DIST += tests/fuzz/libfuzzer.c tests/fuzz/corpus .ci/fuzz .ci/sanitize \
	tests/valgrind-assay
