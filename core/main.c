/* The assay binary: everything is in cli.c. */
#include "cli.h"

int main(int argc, char **argv) {
  return assay_cli_main(argc, argv);
}
