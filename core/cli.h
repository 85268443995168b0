/* core/cli.h */
