# tests/docs.mk: (filled in by its owner)
