# core/: the engine library (a convenience library linked into the binary
# and the test runners) and the assay binary.
noinst_LTLIBRARIES += core/libassaycore.la
core_libassaycore_la_SOURCES = \
	core/error.c core/error.h \
	core/util.c core/util.h core/jsonwords.h \
	core/loader.c core/loader.h \
	core/dataset.c core/dataset.h \
	core/summary.c core/summary.h \
	core/http.c core/http.h \
	core/curlload.c core/curlload.h \
	core/pool.c core/pool.h \
	core/deadline.c core/deadline.h \
	core/engine.c core/engine.h \
	core/cli.c core/cli.h \
	core/cmd_report.c core/cmd_compare.c core/cmd_merge.c \
	core/gate.c core/gate.h core/report_assets.h \
	core/files.c core/files.h \
	core/jsonw.c core/jsonw.h
core_libassaycore_la_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) $(UTF8PROC_CFLAGS)
# libcurl is not linked: core/curlload.c loads it on the first HTTP request.
core_libassaycore_la_LIBADD = $(UV_LIBS) $(CJSON_LIBS) \
	$(LTDL_LIBS) $(CSV_LIBS) $(UTF8PROC_LIBS) $(LIBM)

bin_PROGRAMS += assay
assay_SOURCES = core/main.c
assay_LDADD = core/libassaycore.la $(JEMALLOC_LIBS)
