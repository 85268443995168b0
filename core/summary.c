/* core/summary.c: placeholder until written. */
