# tests/dataset.mk: the dataset readers' runner (core/dataset.c); its data
# files and expected transcripts are under tests/data/datasets/.
check_PROGRAMS += tests/test_dataset
TESTS += tests/test_dataset
tests_test_dataset_SOURCES = tests/test_dataset.c
tests_test_dataset_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_dataset_CFLAGS = $(TEST_CFLAGS)
tests_test_dataset_LDADD = $(TEST_LIBS)
