# tests/merge.mk: (filled in by its owner)
