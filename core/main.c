/* The assay binary: everything is in cli.c. */
#include <signal.h>

#include "cli.h"

int main(int argc, char **argv) {
  /* A write to a closed pipe (a plugin's child that stopped reading, or
   * `assay run -o - | head`) must be an error we report, not a silent
   * death that loses the summary. */
  signal(SIGPIPE, SIG_IGN);
  return assay_cli_main(argc, argv);
}
