/*
 * The sink: the Knative data plane. POST / stores each event in every namespace, in one
 * transaction; POST /{namespace} in that one. OPTIONS answers the CloudEvents webhook
 * validation handshake.
 */
#include <string.h>

#include "http/internal.h"

#define SINK_ALLOW "POST, OPTIONS"

/* The webhook handshake (CloudEvents HTTP webhook spec, section 4): any origin may send. */
static enum MHD_Result answer_options(weir_req_t *req)
{
    const char *origin =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "WebHook-Request-Origin");
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (resp == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, SINK_ALLOW);
    MHD_add_response_header(resp, "WebHook-Allowed-Origin", origin ? origin : "*");
    MHD_add_response_header(resp, "WebHook-Allowed-Rate", "*");
    return weir_queue(req, MHD_HTTP_OK, resp);
}

/* Every namespace, for POST /. The caller frees the array and its strings. */
static int all_namespaces(weir_req_t *req, char ***out, size_t *n, weir_err_t *err)
{
    weir_store_ns_t *list;
    int rc = weir_store_ns_list(req->srv->store, &list, n, err);
    if (rc != 0) {
        return rc;
    }
    if (*n == 0) {
        weir_store_ns_free(list, 0);
        return weir_err_set(err, WEIR_ENOTFOUND, "", "no namespace exists to store events in");
    }
    *out = weir_calloc(*n, sizeof(char *));
    for (size_t i = 0; i < *n; i++) {
        (*out)[i] = list[i].name;
        list[i].name = NULL;
    }
    weir_store_ns_free(list, *n);
    return 0;
}

/* Resolves the path to its namespaces: "/" to all, "/name" to that one if it exists. */
static int resolve(weir_req_t *req, char ***out, size_t *n, weir_err_t *err)
{
    const char *path = req->url;
    while (*path == '/') {
        path++;
    }
    if (*path == '\0') {
        return all_namespaces(req, out, n, err);
    }
    size_t len = strcspn(path, "/");
    if (path[len] == '/' && path[len + 1] != '\0') {
        return weir_err_set(err, WEIR_ENOTFOUND, "", "the sink path is / or /{namespace}");
    }
    char *name = weir_strndup(path, len);
    if (!weir_store_ns_exists(req->srv->store, name)) {
        weir_free(name);
        return weir_err_set(err, WEIR_ENOTFOUND, "", "namespace does not exist");
    }
    *out = weir_malloc(sizeof(char *));
    (*out)[0] = name;
    *n = 1;
    return 0;
}

enum MHD_Result weir_sink_handle(weir_req_t *req)
{
    if (strcmp(req->method, MHD_HTTP_METHOD_OPTIONS) == 0) {
        return answer_options(req);
    }
    if (strcmp(req->method, MHD_HTTP_METHOD_POST) != 0) {
        return weir_problem(req, MHD_HTTP_METHOD_NOT_ALLOWED, "the sink takes POST and OPTIONS",
                            NULL, SINK_ALLOW);
    }

    weir_err_t err = {0};
    char **namespaces = NULL;
    size_t nns = 0;
    if (resolve(req, &namespaces, &nns, &err) != 0) {
        weir_metrics_count(req->srv->metrics, NULL, WEIR_OUT_NOT_FOUND, 1);
        return weir_problem_err(req, &err);
    }
    return weir_ingest_start(req, namespaces, nns, false);
}
