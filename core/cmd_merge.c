/* assay merge: not written yet (placeholder so the binary links). */
#include <stdio.h>

#include "cli.h"

int assay_cmd_merge(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "assay: 'merge' is not available in this build\n");
  return 2;
}
