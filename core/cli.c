/* core/cli.c: placeholder until written. */
