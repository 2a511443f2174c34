/*
 * The compiled form of a CESQL expression. Private to src/cesql: the compiler (compile.c)
 * writes it, the evaluator (eval.c, func.c) reads it.
 *
 * A program is one allocation: a header, a node array, an argument array and a string pool.
 * Nodes refer to each other by index, so the block needs no relocation and no pointers.
 */
#ifndef WEIR_CESQL_PROGRAM_H
#define WEIR_CESQL_PROGRAM_H

#include "cesql/cesql.h"

/* Bytes that never occur in UTF-8 stand for the LIKE wildcards in a compiled pattern. */
#define LIKE_ANY 0xFF /* % */
#define LIKE_ONE 0xFE /* _ */

enum op {
    OP_BOOL,   /* ival */
    OP_INT,    /* ival */
    OP_STR,    /* pool[a .. a+b) */
    OP_ATTR,   /* name at pool[a], NUL-terminated, b bytes */
    OP_EXISTS, /* as OP_ATTR */
    OP_NOT,    /* child a */
    OP_NEG,    /* child a */
    OP_LIKE,   /* child a; compiled pattern pool[b .. b+ival); sub: 1 for NOT LIKE */
    OP_IN,     /* args[a] is the operand, args[a+1 .. a+b) the set; sub: 1 for NOT IN */
    OP_CHAIN,  /* args[a .. a+b): operands of one precedence level, left to right; sub: level */
    OP_CALL,   /* built-in sub with arguments args[a .. a+b) */
    OP_NOFUNC, /* a call that cannot be dispatched */
};

/* The binary operators; an argument of a chain carries the one that joins it to the left. */
enum binop {
    BIN_MUL,
    BIN_DIV,
    BIN_MOD,
    BIN_ADD,
    BIN_SUB,
    BIN_EQ,
    BIN_NE,
    BIN_LT,
    BIN_LE,
    BIN_GT,
    BIN_GE,
    BIN_AND,
    BIN_OR,
    BIN_XOR,
};

/* The precedence levels of the binary operators, loosest first. */
enum level {
    LVL_LOGIC,
    LVL_CMP,
    LVL_ADD,
    LVL_MUL,
};

enum builtin {
    FN_ABS,
    FN_LENGTH,
    FN_CONCAT,
    FN_CONCAT_WS,
    FN_LOWER,
    FN_UPPER,
    FN_TRIM,
    FN_LEFT,
    FN_RIGHT,
    FN_SUBSTRING,
    FN_INT,
    FN_BOOL,
    FN_STRING,
    FN_IS_BOOL,
    FN_IS_INT,
};

typedef struct node {
    uint8_t op;   /* enum op */
    uint8_t sub;  /* enum level, enum builtin, or a negation flag */
    uint16_t pos; /* 1-based byte position of the node's token, for messages */
    int32_t ival;
    uint32_t a;
    uint32_t b;
} node_t;

typedef struct arg {
    uint16_t node;
    uint16_t pos; /* 1-based byte position of the operator, for chains */
    uint8_t op;   /* enum binop, for chains */
} arg_t;

struct weir_cesql {
    const node_t *nodes;
    const arg_t *args;
    const char *pool;
    uint32_t root;
    uint32_t nnodes;
    char warning[WEIR_CESQL_MSG_MAX]; /* "" when every call can be dispatched */
};

/* ---- evaluation, shared by eval.c and func.c ------------------------------------------ */

/* A value during evaluation. err marks a value that carries an error from its subtree. */
typedef struct val {
    weir_cesql_type_t type;
    bool err;
    bool b;
    int32_t i;
    const char *s;
    size_t len;
} val_t;

typedef struct ctx {
    const weir_cesql_t *prog;
    const weir_event_t *ev;
    weir_cesql_result_t *res;
} ctx_t;

static inline val_t val_bool(bool b)
{
    return (val_t){.type = WEIR_CESQL_BOOLEAN, .b = b};
}

static inline val_t val_int(int32_t i)
{
    return (val_t){.type = WEIR_CESQL_INTEGER, .i = i};
}

static inline val_t val_str(const char *s, size_t len)
{
    return (val_t){.type = WEIR_CESQL_STRING, .s = s, .len = len};
}

val_t weir_cesql_eval_node(ctx_t *c, uint32_t idx);
/* Reads a String as an Integer or a Boolean (section 3.7); false when it is not one. */
bool weir_cesql_from_string(val_t *v, weir_cesql_type_t to);
/* Raises an error of kind at byte position pos (1-based): records it and returns the zero value of
 * type, marked. */
val_t weir_cesql_raise(ctx_t *c, unsigned pos, unsigned kind, weir_cesql_type_t type,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The zero value of a type, marked as carrying an error (the error was raised below). */
val_t weir_cesql_zero(weir_cesql_type_t type);
/* Casts v to type in place; on failure raises a cast error at pos and returns false. */
bool weir_cesql_cast(ctx_t *c, unsigned pos, val_t *v, weir_cesql_type_t type);
/* Room for n bytes of a computed string, or NULL when the evaluation's scratch is used up. */
char *weir_cesql_scratch(ctx_t *c, size_t n);
/* Calls built-in n->sub on its arguments. */
val_t weir_cesql_call(ctx_t *c, const node_t *n);

#endif
