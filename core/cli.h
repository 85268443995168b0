/* The assay command line (cli.c), kept out of main.c so tests can call it. */
#ifndef ASSAY_CLI_H
#define ASSAY_CLI_H

#include "util.h"

/* Runs "assay ARGS..." and returns the process exit status. */
int assay_cli_main(int argc, char **argv);

/* Names the allocator the binary uses, for --version (set by main; called
 * only there, since asking jemalloc costs a start-up ~40 page faults). */
extern const char *(*assay_cli_allocator)(void);

/*
 * Subcommands, one file each (core/cmd_NAME.c). Each gets the arguments
 * after its name and returns the exit status: 0 success, 1 the command ran
 * and found failures (regressions, gaps), 2 usage or input errors. Usage
 * errors print "assay: <what>" and "Try 'assay NAME --help'." to stderr.
 */
int assay_cmd_report(int argc, char **argv);
int assay_cmd_compare(int argc, char **argv);
int assay_cmd_merge(int argc, char **argv);

/* The exit statuses every command shares; what 1 means is each command's
 * own (cli.c: failed items; compare: regressions; merge: gaps). */
#define EXIT_OK 0
#define EXIT_USAGE 2

/* Prints a usage error, as above, for the subcommand cmd (NULL: the
 * command line as a whole); returns 2, the usage exit status. */
int assay_cli_usage_error(const char *cmd, const char *fmt, ...)
    ASSAY__PRINTF(2, 3);

/* The usage error for an unknown option opt of cmd, suggesting the
 * option of the help text nearest it when one is a slip away
 * ("--concurency": did you mean '--concurrency'?). Returns 2. */
int assay_cli_unknown_option(const char *cmd, const char *help,
                             const char *opt);

#endif
