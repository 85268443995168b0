/* core/http.c: placeholder until written. */
