/* weir: a CloudEvents sink and source for Knative Eventing. Wiring only. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "http/http.h"

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "serve") == 0) {
        return weir_http_serve_main(argc - 1, argv + 1);
    }
    return weir_cli_main(argc, argv);
}
