/* assay report: not written yet (placeholder so the binary links). */
#include <stdio.h>

#include "cli.h"

int assay_cmd_report(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "assay: 'report' is not available in this build\n");
  return 2;
}
