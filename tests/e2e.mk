# tests/e2e.mk: (filled in by its owner)
