# tests/http.mk: the host HTTP service (core/http.c) against the project's
# mock LLM server, which `make check` builds first as a check program.
check_PROGRAMS += tests/test_http
TESTS += tests/test_http
tests_test_http_SOURCES = tests/test_http.c
tests_test_http_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_http_CFLAGS = $(TEST_CFLAGS) $(CURL_CFLAGS)
tests_test_http_LDADD = $(TEST_LIBS) $(CURL_LIBS) $(UV_LIBS) $(CJSON_LIBS)
