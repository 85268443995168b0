# tests/exec.mk: the exec task through the real binary, with small helper
# programs in tests/exec/; and the installed SDK (a separate configure and
# install into a temporary prefix, then the template built against it).
TESTS += tests/test_exec.sh
# (test_sdk.sh is in TESTS from tests/local.mk, among the first.)
EXTRA_DIST += tests/test_exec.sh tests/test_sdk.sh tests/exec

# A metric that takes SIGCHLD away from the host (SIG_IGN, or a handler of
# its own), for the test that a child's lost exit does not hang the run.
check_LTLIBRARIES += tests/fixtures/fx_sigchld.la
tests_fixtures_fx_sigchld_la_SOURCES = tests/fixtures/fx_sigchld.c
tests_fixtures_fx_sigchld_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_sigchld_la_LIBADD = $(PLUGIN_LIBS)
