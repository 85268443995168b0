# tests/mockllm.mk: (filled in by its owner)
