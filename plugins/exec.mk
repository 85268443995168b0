# plugins/exec.mk: the exec task (programs as the system under test), an
# async plugin driving libuv processes on the host's loop.
pkglib_LTLIBRARIES += plugins/exec.la
plugins_exec_la_SOURCES = plugins/exec.c core/jsonwords.h
plugins_exec_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)
plugins_exec_la_LIBADD = $(PLUGIN_LIBS) $(UV_LIBS)
EXTRA_DIST += docs/exec.md
