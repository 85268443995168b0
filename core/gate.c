/* core/gate.c: placeholder until written. */
