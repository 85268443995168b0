/* assay compare: not written yet (placeholder so the binary links). */
#include <stdio.h>

#include "cli.h"

int assay_cmd_compare(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "assay: 'compare' is not available in this build\n");
  return 2;
}
