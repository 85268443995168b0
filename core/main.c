/* The assay binary: everything is in cli.c. */
#include <config.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#ifdef ASSAY_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "cli.h"

#ifdef ASSAY_JEMALLOC
/* One arena: each further arena is set up by the first allocation of a
 * thread that gets it, some 30 page faults each (a millisecond of a run's
 * start on a slow virtual machine), and the threads' caches already keep
 * them off the arena's locks: the CPU path runs as fast with one
 * (bench/ANALYSIS.md, "Session 7"). MALLOC_CONF still overrides it. */
const char *malloc_conf = "narenas:1";

/* Named by --version; see configure.ac for why the binary links it. Only
 * asked there: mallctl's first call sets up jemalloc's statistics for every
 * arena, which a run does not need. */
static const char *jemalloc_name(void) {
  static char name[64] = "jemalloc";
  const char *v = NULL;
  size_t len = sizeof v;
  if (mallctl("version", &v, &len, NULL, 0) == 0 && v != NULL)
    snprintf(name, sizeof name, "jemalloc %.*s", (int)strcspn(v, "-"),
             v); /* 5.3.0, not its git suffix */
  return name;
}
#endif

int main(int argc, char **argv) {
  /* A write to a closed pipe (a plugin's child that stopped reading, or
   * `assay run -o - | head`) must be an error we report, not a silent
   * death that loses the summary. */
  signal(SIGPIPE, SIG_IGN);
#ifdef ASSAY_JEMALLOC
  assay_cli_allocator = jemalloc_name;
#endif
  return assay_cli_main(argc, argv);
}
