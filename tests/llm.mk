# tests/llm.mk: (filled in by its owner)
