# docs/local.mk: (filled in by its owner)
