# tests/metrics.mk: (filled in by its owner)
