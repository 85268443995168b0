# tests/reliability.mk: the "never lose a result" end-to-end tests of the
# assay binary (kill -9 and --resume, signals, misbehaving plugins, faults
# at scale, security) and the fixture plugin that crashes the process.
# docs/reliability.md says what each test guarantees.
TESTS += tests/test_reliability.sh
EXTRA_DIST += tests/test_reliability.sh tests/reliability/test_reliability.py

# A task that segfaults once (then a marker file stops it), for the crash
# and --resume test.
check_LTLIBRARIES += tests/fixtures/fx_crash.la
tests_fixtures_fx_crash_la_SOURCES = tests/fixtures/fx_crash.c
tests_fixtures_fx_crash_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_crash_la_LIBADD = $(PLUGIN_LIBS) $(UV_LIBS)

# What is guaranteed and how each guarantee is tested.
EXTRA_DIST += docs/reliability.md
