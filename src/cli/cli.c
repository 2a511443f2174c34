/* The client subcommands and the usage text of the weir binary. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#ifndef WEIR_VERSION
#define WEIR_VERSION "0.0.0"
#endif

static void usage(FILE *to)
{
    fprintf(to, "usage: weir <command> [flags]\n\n"
                "commands:\n"
                "  serve     run the sink and the API (weir serve --help lists the settings)\n"
                "  version   print the version\n"
                "  help      print this text\n");
}

int weir_cli_main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("weir %s\n", WEIR_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "weir: unknown command %s\n\n", argv[1]);
    usage(stderr);
    return 2;
}
