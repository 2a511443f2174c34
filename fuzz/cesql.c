/*
 * Fuzz target of the cesql module: compiles the input as an expression and evaluates it
 * against a fixed event. Aborts when a result breaks the interface's promises: a string that is
 * not valid UTF-8, or error fields that disagree with each other.
 */
#include <stdint.h>
#include <stdlib.h>

#include "cesql/cesql.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static weir_event_t *fixed_event(void)
{
    static const char *const attrs[][2] = {
        {"specversion", "1.0"},
        {"id", "fuzz-1"},
        {"source", "http://example.com/source"},
        {"type", "com.example.created"},
        {"subject", "café au lait"},
        {"time", "2020-03-21T12:34:56.78Z"},
        {"datacontenttype", "application/json"},
    };
    weir_event_t *ev = weir_ce_new();
    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
        weir_ce_set(ev, attrs[i][0], attrs[i][1], WEIR_CE_STRING, NULL);
    }
    weir_ce_set(ev, "exint", "42", WEIR_CE_INTEGER, NULL);
    weir_ce_set(ev, "exneg", "-2147483648", WEIR_CE_INTEGER, NULL);
    weir_ce_set(ev, "exbool", "true", WEIR_CE_BOOLEAN, NULL);
    return ev;
}

static void check(const weir_cesql_result_t *res)
{
    const weir_cesql_value_t *v = &res->value;
    if (v->type == WEIR_CESQL_STRING && !weir_utf8_valid(v->s, v->len)) {
        abort();
    }
    if ((res->errors == 0) != (res->first_error == 0)) {
        abort();
    }
    if (res->first_error != 0 && (res->errors & res->first_error) == 0) {
        abort();
    }
    if (res->errors & WEIR_CESQL_ERR_PARSE) {
        abort(); /* parse errors belong to the compiler */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static weir_event_t *ev;
    if (ev == NULL) {
        ev = fixed_event();
    }
    weir_cesql_t *prog;
    weir_err_t err;
    if (weir_cesql_compile((const char *)data, size, &prog, &err) != 0) {
        return 0;
    }
    weir_cesql_result_t res = WEIR_CESQL_RESULT_INIT;
    weir_cesql_eval(prog, ev, &res);
    check(&res);
    weir_cesql_match(prog, NULL, &res);
    check(&res);
    weir_cesql_result_free(&res);
    weir_cesql_free(prog);
    return 0;
}
