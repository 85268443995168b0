# tests/: CUnit runners, fixture plugins, end-to-end scripts, the mock LLM
# server. Each area keeps its runner in its own fragment.
TEST_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests \
	-DTEST_SRCDIR='"$(abs_top_srcdir)/tests"' \
	-DTEST_BUILDDIR='"$(abs_top_builddir)/tests"' \
	-DTEST_TOP_BUILDDIR='"$(abs_top_builddir)"'
TEST_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS)
TEST_LIBS = tests/librunner.la core/libassaycore.la $(CUNIT_LIBS)

check_LTLIBRARIES += tests/librunner.la
tests_librunner_la_SOURCES = tests/runner.c tests/runner.h
tests_librunner_la_CPPFLAGS = $(TEST_CPPFLAGS)
tests_librunner_la_CFLAGS = $(TEST_CFLAGS)

AM_TESTS_ENVIRONMENT = \
	ASSAY_TEST_SRCDIR='$(abs_top_srcdir)/tests'; export ASSAY_TEST_SRCDIR; \
	ASSAY_TEST_BUILDDIR='$(abs_top_builddir)/tests'; export ASSAY_TEST_BUILDDIR; \
	ASSAY_BIN='$(abs_top_builddir)/assay'; export ASSAY_BIN; \
	ASSAY_PLUGIN_PATH=; export ASSAY_PLUGIN_PATH; \
	case '$(PYTHON3_DIR)' in /*) PATH='$(PYTHON3_DIR)':$$PATH; export PATH;; esac;
# A wrapper (valgrind, ...) for every test program: make check LOG_COMPILER=...
EXTRA_DIST += tests/data

# The two longest tests come first, so that make -j starts them first and
# the others fill the cores beside them, rather than the run waiting on
# them at its end: test_sdk.sh builds and installs a copy of the project
# (tests/exec.mk), test_report.sh opens each page in a browser
# (tests/report.mk).
TESTS += tests/test_sdk.sh tests/test_report.sh
include $(srcdir)/tests/fixtures.mk
include $(srcdir)/tests/dataset.mk
include $(srcdir)/tests/summary.mk
include $(srcdir)/tests/jsonw.mk
include $(srcdir)/tests/metrics.mk
include $(srcdir)/tests/engine.mk
include $(srcdir)/tests/mockllm.mk
include $(srcdir)/tests/http.mk
include $(srcdir)/tests/e2e.mk
include $(srcdir)/tests/docs.mk
include $(srcdir)/tests/llm.mk
include $(srcdir)/tests/reliability.mk
include $(srcdir)/tests/fuzz.mk
include $(srcdir)/tests/merge.mk
include $(srcdir)/tests/gate.mk
include $(srcdir)/tests/exec.mk
include $(srcdir)/tests/report.mk
