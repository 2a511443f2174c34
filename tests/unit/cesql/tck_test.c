/*
 * The CESQL v1.0.0 conformance kit, run in place from TCK_DIR, which the build sets to the
 * cesql_tck folder of the shared test data beside the project (see CMakeLists.txt). Every case
 * of every YAML file is compiled and evaluated; its value, its type and its error kind must be
 * what the case says. The test fails with the list of the cases that did not pass.
 *
 * One case of the kit is wrong and is decided by the specification instead: in
 * not_operator.yaml, "NOT 10" expects true with a cast error, but section 3.7 makes the cast
 * from Integer to Boolean one that must succeed (10 is true), so NOT 10 is false, no error.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <yaml.h>

#include "cesql/cesql.h"

#ifndef TCK_DIR
#define TCK_DIR "../shared/testdata/cesql_tck"
#endif

/* Cases where the specification overrides the kit (see the comment at the top). */
static const struct correction {
    const char *file;
    const char *expression;
    const char *result; /* a plain YAML scalar */
    const char *error;  /* NULL: no error */
} corrections[] = {
    {"not_operator.yaml", "NOT 10", "false", NULL},
};

typedef struct tally {
    int cases;
    int failed;
    int corrected;
} tally_t;

/* ---- YAML ------------------------------------------------------------------------------ */

static yaml_node_t *map_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE) {
        return NULL;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0) {
            return yaml_document_get_node(doc, p->value);
        }
    }
    return NULL;
}

static const char *text_of(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool is_plain(yaml_node_t *n)
{
    return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static bool is_integer_text(const char *s)
{
    size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (s[i] == '\0') {
        return false;
    }
    for (; s[i]; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return true;
}

/* The type YAML gives a scalar: quoted is a string, plain true/false a boolean, digits an int. */
static weir_cesql_type_t scalar_type(const char *s, bool plain)
{
    if (plain && (strcasecmp(s, "true") == 0 || strcasecmp(s, "false") == 0)) {
        return WEIR_CESQL_BOOLEAN;
    }
    if (plain && is_integer_text(s)) {
        return WEIR_CESQL_INTEGER;
    }
    return WEIR_CESQL_STRING;
}

/* ---- events ---------------------------------------------------------------------------- */

static void set_attr(weir_event_t *ev, const char *name, const char *value, bool plain)
{
    weir_err_t err;
    weir_cesql_type_t t = scalar_type(value, plain);
    weir_ce_type_t ct = t == WEIR_CESQL_BOOLEAN   ? WEIR_CE_BOOLEAN
                        : t == WEIR_CESQL_INTEGER ? WEIR_CE_INTEGER
                                                  : WEIR_CE_STRING;
    char canon[8];
    if (ct == WEIR_CE_BOOLEAN) {
        snprintf(canon, sizeof(canon), "%s", strcasecmp(value, "true") == 0 ? "true" : "false");
        value = canon;
    }
    if (weir_ce_set(ev, name, value, ct, &err) != 0) {
        fail_msg("cannot set attribute %s=%s: %s", name, value, err.msg);
    }
}

/* The kit's default event (see the README of the kit). */
static weir_event_t *default_event(void)
{
    static const char *const attrs[][2] = {
        {"specversion", "1.0"},
        {"type", "com.example.FullEvent"},
        {"source", "http://example.com/source"},
        {"id", "full-event"},
        {"time", "2020-03-21T12:34:56.78Z"},
        {"dataschema", "http://example.com/schema"},
        {"subject", "topic"},
        {"datacontenttype", "text/json"},
        {"exstring", "exstring"},
        {"exbinary", "AAECAw=="},
        {"exurl", "http://example.com/source"},
        {"extime", "2020-03-21T12:34:56.78Z"},
    };
    weir_event_t *ev = weir_ce_new();
    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
        set_attr(ev, attrs[i][0], attrs[i][1], false);
    }
    set_attr(ev, "exbool", "true", true);
    set_attr(ev, "exint", "42", true);
    weir_ce_set_data(ev, WEIR_CE_DATA_JSON, "\"hello\"", 7);
    return ev;
}

static void apply_map(yaml_document_t *doc, yaml_node_t *map, weir_event_t *ev)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        set_attr(ev, text_of(k), text_of(v), is_plain(v));
    }
}

static weir_event_t *case_event(yaml_document_t *doc, yaml_node_t *tc)
{
    yaml_node_t *given = map_get(doc, tc, "event");
    yaml_node_t *over = map_get(doc, tc, "eventOverrides");
    weir_event_t *ev = given ? weir_ce_new() : default_event();
    if (given) {
        apply_map(doc, given, ev);
    }
    if (over) {
        apply_map(doc, over, ev);
    }
    return ev;
}

/* ---- one case -------------------------------------------------------------------------- */

typedef struct expect {
    bool has_result;
    weir_cesql_type_t type;
    const char *text;  /* the expected value as written */
    const char *error; /* the expected kind, or NULL */
} expect_t;

static bool value_is(const weir_cesql_value_t *v, const expect_t *e)
{
    if (v->type != e->type) {
        return false;
    }
    switch (v->type) {
    case WEIR_CESQL_BOOLEAN:
        return v->b == (strcasecmp(e->text, "true") == 0);
    case WEIR_CESQL_INTEGER:
        return v->i == atoi(e->text);
    default:
        return v->len == strlen(e->text) && memcmp(v->s, e->text, v->len) == 0;
    }
}

static void describe(const weir_cesql_value_t *v, char *out, size_t n)
{
    static const char *const names[] = {"Boolean", "Integer", "String"};
    if (v->type == WEIR_CESQL_BOOLEAN) {
        snprintf(out, n, "%s %s", names[v->type], v->b ? "true" : "false");
    } else if (v->type == WEIR_CESQL_INTEGER) {
        snprintf(out, n, "%s %d", names[v->type], (int)v->i);
    } else {
        snprintf(out, n, "%s \"%.*s\"", names[v->type], (int)v->len, v->s);
    }
}

static const struct correction *find_correction(const char *file, const char *expression)
{
    for (size_t i = 0; i < sizeof(corrections) / sizeof(corrections[0]); i++) {
        if (strcmp(corrections[i].file, file) == 0 &&
            strcmp(corrections[i].expression, expression) == 0) {
            return &corrections[i];
        }
    }
    return NULL;
}

static expect_t case_expect(yaml_document_t *doc, yaml_node_t *tc, const char *file,
                            const char *expression, tally_t *t)
{
    yaml_node_t *result = map_get(doc, tc, "result");
    expect_t e = {result != NULL, WEIR_CESQL_BOOLEAN, NULL, text_of(map_get(doc, tc, "error"))};
    if (result) {
        e.text = text_of(result);
        e.type = scalar_type(e.text, is_plain(result));
    }
    const struct correction *c = find_correction(file, expression);
    if (c) {
        e = (expect_t){true, scalar_type(c->result, true), c->result, c->error};
        t->corrected++;
    }
    return e;
}

/*
 * Compiles and evaluates; a parse error counts as the value false with the kind "parse".
 * Returns the program (or NULL), which the caller frees once it has read the value.
 */
static weir_cesql_t *run_expression(const char *expression, const weir_event_t *ev,
                                    weir_cesql_result_t *res, const char **kind)
{
    weir_cesql_t *prog;
    weir_err_t err;
    *kind = NULL;
    if (weir_cesql_compile(expression, strlen(expression), &prog, &err) != 0) {
        res->value = (weir_cesql_value_t){.type = WEIR_CESQL_BOOLEAN, .s = ""};
        *kind = "parse";
        return NULL;
    }
    unsigned errors = weir_cesql_eval(prog, ev, res);
    if (errors != 0) {
        /* several kinds at once do not match any single expected kind */
        *kind = (errors & (errors - 1)) ? "several" : weir_cesql_error_name(errors);
    }
    return prog;
}

static void run_case(yaml_document_t *doc, yaml_node_t *tc, const char *file, tally_t *t)
{
    const char *name = text_of(map_get(doc, tc, "name"));
    const char *expression = text_of(map_get(doc, tc, "expression"));
    expect_t e = case_expect(doc, tc, file, expression, t);
    weir_event_t *ev = case_event(doc, tc);
    weir_cesql_result_t res = WEIR_CESQL_RESULT_INIT;
    const char *kind;

    weir_cesql_t *prog = run_expression(expression, ev, &res, &kind);
    bool kind_ok = (kind == NULL && e.error == NULL) ||
                   (kind != NULL && e.error != NULL && strcmp(kind, e.error) == 0);
    bool value_ok = !e.has_result || value_is(&res.value, &e);
    t->cases++;
    if (!kind_ok || !value_ok) {
        char got[128];
        describe(&res.value, got, sizeof(got));
        print_error("FAIL %s: %s: `%s`: expected %s%s (error %s), got %s (error %s) %s\n", file,
                    name, expression, e.has_result ? e.text : "-",
                    e.type == WEIR_CESQL_STRING ? " (string)" : "", e.error ? e.error : "none", got,
                    kind ? kind : "none", res.msg);
        t->failed++;
    }
    weir_cesql_free(prog);
    weir_cesql_result_free(&res);
    weir_ce_free(ev);
}

/* ---- files ----------------------------------------------------------------------------- */

static void run_file(const char *file, tally_t *t)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", TCK_DIR, file);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);

    yaml_parser_t parser;
    yaml_document_t doc;
    assert_true(yaml_parser_initialize(&parser));
    yaml_parser_set_input_file(&parser, f);
    assert_true(yaml_parser_load(&parser, &doc));

    yaml_node_t *tests = map_get(&doc, yaml_document_get_root_node(&doc), "tests");
    assert_non_null(tests);
    assert_int_equal(tests->type, YAML_SEQUENCE_NODE);
    for (yaml_node_item_t *it = tests->data.sequence.items.start;
         it < tests->data.sequence.items.top; it++) {
        run_case(&doc, yaml_document_get_node(&doc, *it), file, t);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
}

static int is_yaml(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 5 && strcmp(d->d_name + n - 5, ".yaml") == 0;
}

static void test_tck(void **state)
{
    struct dirent **files;
    int n = scandir(TCK_DIR, &files, is_yaml, alphasort);
    tally_t t = {0};
    if (n <= 0) {
        fail_msg("no conformance cases found in %s (set WEIR_TESTDATA when configuring)", TCK_DIR);
    }
    for (int i = 0; i < n; i++) {
        run_file(files[i]->d_name, &t);
        free(files[i]);
    }
    free(files);
    print_message("cesql TCK: %d files, %d cases, %d passed, %d failed, %d decided by the "
                  "specification\n",
                  n, t.cases, t.cases - t.failed, t.failed, t.corrected);
    assert_int_equal(t.corrected, (int)(sizeof(corrections) / sizeof(corrections[0])));
    assert_int_equal(t.failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tck),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
