# plugins/: the built-in plugins, one .c per plugin, each a libtool module
# installed into $(pkglibdir). Shared helper code is a convenience library
# linked into the modules that need it (plugins get nothing from the host at
# link time); core/jsonwords.h is header-only, so that the core and the
# plugins linking no helper library share it too.
PLUGIN_CFLAGS = $(AM_CFLAGS)
PLUGIN_LIBS = $(CJSON_LIBS) $(LIBM)

pkglib_LTLIBRARIES += plugins/echo.la plugins/delay.la
plugins_echo_la_SOURCES = plugins/echo.c core/jsonwords.h
plugins_echo_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)
plugins_echo_la_LIBADD = $(PLUGIN_LIBS)
plugins_delay_la_SOURCES = plugins/delay.c core/jsonwords.h
plugins_delay_la_LDFLAGS = $(PLUGIN_LINK_FLAGS)
plugins_delay_la_LIBADD = $(PLUGIN_LIBS) $(UV_LIBS)

include $(srcdir)/plugins/metrics.mk
include $(srcdir)/plugins/llm.mk
include $(srcdir)/plugins/exec.mk
