# tests/metrics.mk: the built-in metrics, run through the real engine in
# scoring mode from data files (tests/data/metrics/<metric>.json).
check_PROGRAMS += tests/test_metrics
TESTS += tests/test_metrics
tests_test_metrics_SOURCES = tests/test_metrics.c
tests_test_metrics_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_metrics_CFLAGS = $(TEST_CFLAGS)
tests_test_metrics_LDADD = $(TEST_LIBS) -lm
EXTRA_DIST += docs/metrics.md
