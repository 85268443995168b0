# tests/e2e.mk: end-to-end tests of the assay binary as a user runs it.
# test_cli.sh and test_cli2.sh are one suite in two halves (clilib.sh is
# what both begin with), so that they run at once.
TESTS += tests/test_cli.sh tests/test_cli2.sh
EXTRA_DIST += tests/test_cli.sh tests/test_cli2.sh tests/clilib.sh
EXTRA_DIST += tests/testlib.sh
