# tests/reliability.mk: (filled in by its owner)
