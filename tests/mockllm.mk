# tests/mockllm.mk: the OpenAI-compatible test server (a check program, so
# `make check` builds it before any test that starts it) and its own runner.
check_PROGRAMS += tests/mockllm
tests_mockllm_SOURCES = tests/mockllm.c
tests_mockllm_CPPFLAGS = $(TEST_CPPFLAGS)
tests_mockllm_CFLAGS = $(TEST_CFLAGS)
tests_mockllm_LDADD = core/libassaycore.la $(HTTP_PARSER_LIBS) $(UV_LIBS) \
	$(CJSON_LIBS)

check_PROGRAMS += tests/test_mockllm
TESTS += tests/test_mockllm
tests_test_mockllm_SOURCES = tests/test_mockllm.c
tests_test_mockllm_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_mockllm_CFLAGS = $(TEST_CFLAGS)
tests_test_mockllm_LDADD = $(TEST_LIBS) $(CJSON_LIBS)
