# tests/jsonw.mk: the record writer against cJSON's own printer.
check_PROGRAMS += tests/test_jsonw
TESTS += tests/test_jsonw

tests_test_jsonw_SOURCES = tests/test_jsonw.c
tests_test_jsonw_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_jsonw_CFLAGS = $(TEST_CFLAGS)
tests_test_jsonw_LDADD = $(TEST_LIBS) $(CJSON_LIBS) $(LIBM)
