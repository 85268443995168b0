# tests/report.mk: end-to-end tests of `assay report` (the HTML page, also
# rendered in headless Chromium when /usr/bin/chromium is installed; the
# screenshots stay in tests/out/ of the build tree) and `assay compare`.
TESTS += tests/test_compare.sh
# (test_report.sh is in TESTS from tests/local.mk, among the first.)
EXTRA_DIST += tests/test_report.sh tests/test_compare.sh docs/report.md

# The browser screenshots are kept after make check as test artifacts;
# distclean removes them.
distclean-local:
	-rm -rf tests/out
