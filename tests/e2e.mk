# tests/e2e.mk: end-to-end tests of the assay binary as a user runs it.
TESTS += tests/test_cli.sh
EXTRA_DIST += tests/test_cli.sh
EXTRA_DIST += tests/testlib.sh
