/* The assay binary: everything is in cli.c. */
#include <config.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#ifdef ASSAY_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "cli.h"

int main(int argc, char **argv) {
  /* A write to a closed pipe (a plugin's child that stopped reading, or
   * `assay run -o - | head`) must be an error we report, not a silent
   * death that loses the summary. */
  signal(SIGPIPE, SIG_IGN);
#ifdef ASSAY_JEMALLOC
  /* Named by --version; see configure.ac for why the binary links it. */
  static char allocator[64] = "jemalloc";
  const char *v = NULL;
  size_t len = sizeof v;
  if (mallctl("version", &v, &len, NULL, 0) == 0 && v != NULL)
    snprintf(allocator, sizeof allocator, "jemalloc %.*s",
             (int)strcspn(v, "-"), v); /* 5.3.0, not its git suffix */
  assay_cli_allocator = allocator;
#endif
  return assay_cli_main(argc, argv);
}
