/* cli: the client subcommands of the weir binary, and its usage text. */
#ifndef WEIR_CLI_H
#define WEIR_CLI_H

/*
 * Runs a client subcommand named by argv[1] ("version", "help", ...), or prints the usage when
 * there is none or it is unknown. Returns the process exit status.
 */
int weir_cli_main(int argc, char **argv);

#endif
