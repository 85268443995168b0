# tests/gate.mk: the CI gates' runner (--pass thresholds, --fail-under,
# the trials reducers of the summary, the JUnit writer), its data files in
# tests/data/gate/ (shipped with tests/data; check_junit.py reads reports
# back with python3's XML parser) and the CI guide.
check_PROGRAMS += tests/test_gate
TESTS += tests/test_gate

tests_test_gate_SOURCES = tests/test_gate.c
tests_test_gate_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_gate_CFLAGS = $(TEST_CFLAGS)
tests_test_gate_LDADD = $(TEST_LIBS) $(CJSON_LIBS)

EXTRA_DIST += docs/ci.md
