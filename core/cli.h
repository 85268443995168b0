/* The assay command line (cli.c), kept out of main.c so tests can call it. */
#ifndef ASSAY_CLI_H
#define ASSAY_CLI_H

/* Runs "assay ARGS..." and returns the process exit status. */
int assay_cli_main(int argc, char **argv);

#endif
