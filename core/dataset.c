/* core/dataset.c: placeholder until written. */
