# tests/merge.mk: `assay merge` and sharded runs, end to end. The script
# also extracts, checks and runs the recipes of docs/scale-out.md, so that
# page is distributed with the test.
TESTS += tests/test_merge.sh
EXTRA_DIST += tests/test_merge.sh docs/scale-out.md
