# tests/dataset.mk: (filled in by its owner)
