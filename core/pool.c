/* core/pool.c: placeholder until written. */
