# plugins/metrics.mk: (filled in by its owner)
