# tests/http.mk: (filled in by its owner)
