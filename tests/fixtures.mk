# tests/fixtures.mk: fixture plugins for the loader and engine tests, each
# a real libtool module (FIXTURE_LINK_FLAGS carries -rpath /nowhere, so
# libtool builds a shared object for a library that is never installed).
# make check builds check_LTLIBRARIES before it runs any test. What each one
# does is documented at the top of its source file.

# Good: tasks and metrics that follow the ABI.
check_LTLIBRARIES += \
	tests/fixtures/fx_sync.la \
	tests/fixtures/fx_async.la \
	tests/fixtures/fx_both.la \
	tests/fixtures/fx_thread.la \
	tests/fixtures/fx_metrics.la \
	tests/fixtures/fx_unsafe.la \
	tests/fixtures/fx_opts.la
tests_fixtures_fx_sync_la_SOURCES = tests/fixtures/fx_sync.c
tests_fixtures_fx_sync_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_sync_la_LIBADD = $(PLUGIN_LIBS)
tests_fixtures_fx_async_la_SOURCES = tests/fixtures/fx_async.c
tests_fixtures_fx_async_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_async_la_LIBADD = $(PLUGIN_LIBS) $(UV_LIBS)
tests_fixtures_fx_both_la_SOURCES = tests/fixtures/fx_both.c
tests_fixtures_fx_both_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_both_la_LIBADD = $(PLUGIN_LIBS)
tests_fixtures_fx_thread_la_SOURCES = tests/fixtures/fx_thread.c
tests_fixtures_fx_thread_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_thread_la_LIBADD = $(PLUGIN_LIBS) $(UV_LIBS)
tests_fixtures_fx_metrics_la_SOURCES = tests/fixtures/fx_metrics.c
tests_fixtures_fx_metrics_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_metrics_la_LIBADD = $(PLUGIN_LIBS) $(UV_LIBS)
tests_fixtures_fx_unsafe_la_SOURCES = tests/fixtures/fx_unsafe.c
tests_fixtures_fx_unsafe_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_unsafe_la_LIBADD = $(PLUGIN_LIBS) $(UV_LIBS)
tests_fixtures_fx_opts_la_SOURCES = tests/fixtures/fx_opts.c
tests_fixtures_fx_opts_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_opts_la_LIBADD = $(PLUGIN_LIBS)

# Misbehaving: load fine, then break the contract at run time.
check_LTLIBRARIES += \
	tests/fixtures/fx_never.la \
	tests/fixtures/fx_twice.la \
	tests/fixtures/fx_nothing.la \
	tests/fixtures/fx_scalar.la \
	tests/fixtures/fx_slow.la \
	tests/fixtures/fx_flaky.la \
	tests/fixtures/fx_badmetric.la
tests_fixtures_fx_never_la_SOURCES = tests/fixtures/fx_never.c
tests_fixtures_fx_never_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_never_la_LIBADD = $(PLUGIN_LIBS)
tests_fixtures_fx_twice_la_SOURCES = tests/fixtures/fx_twice.c
tests_fixtures_fx_twice_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_twice_la_LIBADD = $(PLUGIN_LIBS) $(UV_LIBS)
tests_fixtures_fx_nothing_la_SOURCES = tests/fixtures/fx_nothing.c
tests_fixtures_fx_nothing_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_nothing_la_LIBADD = $(PLUGIN_LIBS)
tests_fixtures_fx_scalar_la_SOURCES = tests/fixtures/fx_scalar.c
tests_fixtures_fx_scalar_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_scalar_la_LIBADD = $(PLUGIN_LIBS)
tests_fixtures_fx_slow_la_SOURCES = tests/fixtures/fx_slow.c
tests_fixtures_fx_slow_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_slow_la_LIBADD = $(PLUGIN_LIBS) $(UV_LIBS)
tests_fixtures_fx_flaky_la_SOURCES = tests/fixtures/fx_flaky.c
tests_fixtures_fx_flaky_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_flaky_la_LIBADD = $(PLUGIN_LIBS) $(UV_LIBS)
tests_fixtures_fx_badmetric_la_SOURCES = tests/fixtures/fx_badmetric.c
tests_fixtures_fx_badmetric_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_badmetric_la_LIBADD = $(PLUGIN_LIBS)

# Broken: loading or initialising them must fail.
check_LTLIBRARIES += \
	tests/fixtures/fx_badmagic.la \
	tests/fixtures/fx_newmajor.la \
	tests/fixtures/fx_newminor.la \
	tests/fixtures/fx_nosym.la \
	tests/fixtures/fx_small.la \
	tests/fixtures/fx_noname.la \
	tests/fixtures/fx_noentry.la \
	tests/fixtures/fx_initfail.la
tests_fixtures_fx_badmagic_la_SOURCES = tests/fixtures/fx_badmagic.c
tests_fixtures_fx_badmagic_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_badmagic_la_LIBADD = $(PLUGIN_LIBS)
tests_fixtures_fx_newmajor_la_SOURCES = tests/fixtures/fx_newmajor.c
tests_fixtures_fx_newmajor_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_newmajor_la_LIBADD = $(PLUGIN_LIBS)
tests_fixtures_fx_newminor_la_SOURCES = tests/fixtures/fx_newminor.c
tests_fixtures_fx_newminor_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_newminor_la_LIBADD = $(PLUGIN_LIBS)
tests_fixtures_fx_nosym_la_SOURCES = tests/fixtures/fx_nosym.c
tests_fixtures_fx_nosym_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_nosym_la_LIBADD = $(PLUGIN_LIBS)
tests_fixtures_fx_small_la_SOURCES = tests/fixtures/fx_small.c
tests_fixtures_fx_small_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_small_la_LIBADD = $(PLUGIN_LIBS)
tests_fixtures_fx_noname_la_SOURCES = tests/fixtures/fx_noname.c
tests_fixtures_fx_noname_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_noname_la_LIBADD = $(PLUGIN_LIBS)
tests_fixtures_fx_noentry_la_SOURCES = tests/fixtures/fx_noentry.c
tests_fixtures_fx_noentry_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_noentry_la_LIBADD = $(PLUGIN_LIBS)
tests_fixtures_fx_initfail_la_SOURCES = tests/fixtures/fx_initfail.c
tests_fixtures_fx_initfail_la_LDFLAGS = $(FIXTURE_LINK_FLAGS)
tests_fixtures_fx_initfail_la_LIBADD = $(PLUGIN_LIBS)
