# plugins/llm.mk: (filled in by its owner)
