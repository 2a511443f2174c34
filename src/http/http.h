/*
 * http: `weir serve`: the sink and API listeners (libmicrohttpd), their routes, the live
 * streams and the metrics.
 */
#ifndef WEIR_HTTP_H
#define WEIR_HTTP_H

/*
 * Runs `weir serve` with its command-line arguments (argv[0] is "serve"): reads the settings
 * from flags and WEIR_* environment variables, opens the store, starts both listeners and
 * serves until SIGTERM or SIGINT, then stops accepting, finishes what is in flight and returns.
 * Returns the process exit status (0 after a clean stop, 2 for bad settings, 1 for failures).
 * Call from the main thread, once.
 */
int weir_http_serve_main(int argc, char **argv);

#endif
