# bench/local.mk: benchmarks (make bench), not part of make check.
# `make bench` builds the binary, the plugins, the mock server, the cJSON
# floor program, the cache-line ping-pong and the page-fault timer, then
# runs bench/run, which prints the table and writes bench/RESULTS.md in the
# source tree. BENCH_QUICK=1 runs a reduced set (N=2,000, one repetition)
# to check that everything works.
EXTRA_PROGRAMS = bench/floor bench/pingpong bench/pagefault
bench_floor_SOURCES = bench/floor.c
bench_floor_LDADD = $(CJSON_LIBS)
bench_pingpong_SOURCES = bench/pingpong.c
bench_pingpong_LDADD = -lpthread
bench_pagefault_SOURCES = bench/pagefault.c
CLEANFILES += bench/floor$(EXEEXT) bench/pingpong$(EXEEXT) \
	bench/pagefault$(EXEEXT)

EXTRA_DIST += bench/run bench/baseline_threads.py bench/baseline_asyncio.py \
	bench/ANALYSIS.md \
	bench/RESULTS.md

PY_FOR_BENCH = python3
BENCH_RESULTS = $(abs_top_srcdir)/bench/RESULTS.md

.PHONY: bench
bench: assay$(EXEEXT) $(pkglib_LTLIBRARIES) tests/mockllm$(EXEEXT) \
		bench/floor$(EXEEXT) bench/pingpong$(EXEEXT) bench/pagefault$(EXEEXT)
	$(PY_FOR_BENCH) $(srcdir)/bench/run --builddir '$(abs_top_builddir)' \
		--srcdir '$(abs_top_srcdir)' --results '$(BENCH_RESULTS)'
