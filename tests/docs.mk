# tests/docs.mk: the documentation test. It builds the example plugins of
# docs/examples/ with the guides' own cc and libtool lines and runs them
# through the assay binary (see tests/test_docs.sh).
TESTS += tests/test_docs.sh
EXTRA_DIST += tests/test_docs.sh
