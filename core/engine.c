/* core/engine.c: placeholder until written. */
