# tests/summary.mk: (filled in by its owner)
