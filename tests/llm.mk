# tests/llm.mk: the LLM plugins' runner. Unit tests call plugins/libllm.la
# directly; end-to-end tests load the built plugins through the engine and
# talk to tests/mockllm, and run the assay binary for the key leak check.
check_PROGRAMS += tests/test_llm
TESTS += tests/test_llm
tests_test_llm_SOURCES = tests/test_llm.c
tests_test_llm_CPPFLAGS = $(TEST_CPPFLAGS) -I$(top_srcdir)/plugins
tests_test_llm_CFLAGS = $(TEST_CFLAGS)
tests_test_llm_LDADD = plugins/libllm.la $(TEST_LIBS) -lm
