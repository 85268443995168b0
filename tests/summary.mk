# tests/summary.mk: the run summary's runner (statistics, summary JSON, the
# table), with the recorded run of tests/data/summary/ (shipped with
# tests/data), and the result-format documentation it checks against.
check_PROGRAMS += tests/test_summary
TESTS += tests/test_summary

tests_test_summary_SOURCES = tests/test_summary.c
tests_test_summary_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_summary_CFLAGS = $(TEST_CFLAGS)
tests_test_summary_LDADD = $(TEST_LIBS) $(CJSON_LIBS)

EXTRA_DIST += docs/results.md
