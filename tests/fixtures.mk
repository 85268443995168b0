# tests/fixtures.mk: (filled in by its owner)
