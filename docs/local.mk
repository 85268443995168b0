# docs/: the user documentation. The man page is installed; the guides and
# the example plugins they include ship in the tarball, and
# tests/test_docs.sh builds and runs the examples.
dist_man1_MANS = docs/assay.1
EXTRA_DIST += \
	docs/architecture.md \
	docs/running.md \
	docs/writing-task-plugins.md \
	docs/writing-metric-plugins.md \
	docs/examples/demo.jsonl \
	docs/examples/shout.c \
	docs/examples/slow_echo.c \
	docs/examples/token_f1.c \
	docs/examples/word_overlap.c
