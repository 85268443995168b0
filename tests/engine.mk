# tests/engine.mk: the in-process engine tests and the loader tests, both
# on the fixture plugins of tests/fixtures.mk, found in the build tree.
check_PROGRAMS += tests/test_engine tests/test_loader
TESTS += tests/test_engine tests/test_loader

tests_test_engine_SOURCES = tests/test_engine.c
tests_test_engine_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_engine_CFLAGS = $(TEST_CFLAGS)
tests_test_engine_LDADD = $(TEST_LIBS) $(UV_LIBS) $(CJSON_LIBS)

tests_test_loader_SOURCES = tests/test_loader.c
tests_test_loader_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_loader_CFLAGS = $(TEST_CFLAGS)
tests_test_loader_LDADD = $(TEST_LIBS) $(UV_LIBS) $(CJSON_LIBS)
