# tests/gate.mk: (filled in by its owner)
