/*
 * cesql: the CloudEvents SQL Expression Language (CESQL) v1.0.0: a compiler from expression
 * text to a compact program, and an evaluator of a program against an event.
 *
 * An expression is compiled once (weir_cesql_compile) and evaluated many times, from any number
 * of threads at once: a compiled program is immutable. Evaluation does not allocate, except
 * that a string result too long for the result's inline scratch (256 bytes) makes the result
 * allocate a 64 KiB block once; it keeps the block for later evaluations.
 *
 * The language, as weir implements it:
 *
 * - Types: Boolean, Integer (signed 32-bit) and String. An attribute of the event has the
 *   type the event model gives it (WEIR_CE_INTEGER is Integer, WEIR_CE_BOOLEAN Boolean); every
 *   other attribute (URI, timestamp, binary) is a String. Operands are cast implicitly as
 *   section 3.7 says; `=`, `!=` and `<>` cast the left operand to the type of the right one,
 *   IN casts each element to the type of the left operand.
 * - Precedence, tightest first: function calls; unary NOT and -; LIKE; EXISTS; IN; * / %;
 *   + -; = != <> < <= > >=; AND OR XOR. Operators of one level group left to right, so
 *   `a OR b AND c` is `(a OR b) AND c` (the specification puts AND, OR and XOR on one level).
 *   AND and OR short-circuit.
 * - Keywords, function names and attribute names are case-insensitive (attribute names are
 *   looked up in lower case). String comparisons and LIKE are case-sensitive.
 * - String literals are quoted with ' or "; inside them \' (or \") and a doubled quote stand for
 *   the quote; any other backslash is kept as it is, so that LIKE sees \% and \_.
 * - LIKE: % matches any run of characters, _ one character, \% \_ and \\ the character itself.
 * - Errors never stop an evaluation: every operator yields a value together with its errors
 *   (section 3.3). An operator whose operand carries an error (a missing attribute, a failed
 *   cast, a division by zero, ...) yields the zero value of its own type (false, 0, "") and
 *   does not evaluate its later operands. A missing attribute on its own yields false.
 * - Integer overflow in + - * / and unary minus saturates to the 32-bit range and raises a
 *   math error, as ABS does for -2147483648 (the specification leaves overflow open).
 * - Functions: ABS, LENGTH, CONCAT, CONCAT_WS, LOWER, UPPER, TRIM, LEFT, RIGHT, SUBSTRING (2 or
 *   3 arguments), and the casts INT, BOOL and STRING with the tests IS_INT and IS_BOOL (true
 *   when the argument, as a String, can be cast). Lengths and positions count characters;
 *   LOWER and UPPER map all of Unicode (simple case mapping), TRIM removes Unicode white space.
 */
#ifndef WEIR_CESQL_H
#define WEIR_CESQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ce/ce.h"
#include "common/common.h"

#define WEIR_CESQL_LEN_MAX       4096  /* longest expression accepted, in bytes */
#define WEIR_CESQL_DEPTH_MAX     64    /* deepest nesting of operators, calls and parentheses */
#define WEIR_CESQL_ARGS_MAX      64    /* most arguments of one function call */
#define WEIR_CESQL_SCRATCH_MAX   65536 /* most bytes of computed strings in one evaluation */
#define WEIR_CESQL_SMALL_SCRATCH 256   /* the part of that held inside the result itself */
#define WEIR_CESQL_MSG_MAX       160

/* The error kinds of CESQL (section 3.3), as bits: an evaluation can raise several. */
enum {
    WEIR_CESQL_ERR_PARSE = 1u << 0,
    WEIR_CESQL_ERR_MATH = 1u << 1,
    WEIR_CESQL_ERR_CAST = 1u << 2,
    WEIR_CESQL_ERR_MISSING_FUNCTION = 1u << 3,
    WEIR_CESQL_ERR_FUNCTION_EVALUATION = 1u << 4,
    WEIR_CESQL_ERR_MISSING_ATTRIBUTE = 1u << 5,
    WEIR_CESQL_ERR_GENERIC = 1u << 6,
};

typedef enum weir_cesql_type {
    WEIR_CESQL_BOOLEAN = 0,
    WEIR_CESQL_INTEGER,
    WEIR_CESQL_STRING,
} weir_cesql_type_t;

/*
 * A value. A string is s[0..len), valid UTF-8 and not NUL-terminated; it points into the
 * event, the program or the result's scratch, so it stays valid while all three do and until
 * the result is used for another evaluation.
 */
typedef struct weir_cesql_value {
    weir_cesql_type_t type;
    bool b;
    int32_t i;
    const char *s;
    size_t len;
} weir_cesql_value_t;

/*
 * What an evaluation yields. The caller owns it: initialise it with WEIR_CESQL_RESULT_INIT,
 * reuse it for any number of evaluations (one at a time), and release it with
 * weir_cesql_result_free. Only the first four fields are for the caller to read. Do not copy
 * a result while its value is in use: a short computed string lives inside the result itself.
 */
typedef struct weir_cesql_result {
    weir_cesql_value_t value;
    unsigned errors;              /* every error kind raised, or 0 */
    unsigned first_error;         /* the kind of the first error raised, or 0 */
    char msg[WEIR_CESQL_MSG_MAX]; /* the first error for people: "at 7: cannot cast ..." */

    /* private: the scratch that computed strings live in */
    size_t used;
    char *big;
    char small[WEIR_CESQL_SMALL_SCRATCH];
} weir_cesql_result_t;

#define WEIR_CESQL_RESULT_INIT                                                                     \
    {                                                                                              \
        0                                                                                          \
    }

typedef struct weir_cesql weir_cesql_t;

/*
 * Compiles text[0..len) (need not be NUL-terminated). On success *out is a program the caller
 * releases with weir_cesql_free. Errors: WEIR_ETOOBIG when len exceeds WEIR_CESQL_LEN_MAX;
 * WEIR_EINVAL for any parse error (this is CESQL's parse error kind), with err->msg naming the
 * 1-based byte position, e.g. "at 12: expected ')'", also when the text is not valid UTF-8, an
 * integer literal is out of range, nesting is deeper than WEIR_CESQL_DEPTH_MAX or a call has
 * more than WEIR_CESQL_ARGS_MAX arguments.
 * A call of an unknown function, or with the wrong number of arguments, compiles (the
 * specification makes it an evaluation error); weir_cesql_warning reports it.
 * Thread-safe.
 */
int weir_cesql_compile(const char *text, size_t len, weir_cesql_t **out, weir_err_t *err);

/* Releases a program; NULL is allowed. */
void weir_cesql_free(weir_cesql_t *prog);

/*
 * A sentence about the first call in the program that cannot be dispatched ("at 1: no function
 * CONCAT_WS taking 0 arguments"), or NULL. Callers that store a filter can refuse it with this.
 * The string lives as long as the program.
 */
const char *weir_cesql_warning(const weir_cesql_t *prog);

/*
 * Evaluates prog against ev (NULL stands for an event without attributes) and fills res: the
 * value, and the errors raised. Returns res->errors. Never fails otherwise and never allocates
 * beyond the scratch block described at the top. prog and ev are only read, so any number of
 * threads may evaluate one program at once, each with its own result.
 */
unsigned weir_cesql_eval(const weir_cesql_t *prog, const weir_event_t *ev,
                         weir_cesql_result_t *res);

/*
 * The filter decision of the Subscriptions API: true when the expression yields the Boolean
 * true with no error. res receives the details as with weir_cesql_eval.
 */
bool weir_cesql_match(const weir_cesql_t *prog, const weir_event_t *ev, weir_cesql_result_t *res);

/* Releases the scratch a result holds; the result may be used again afterwards. */
void weir_cesql_result_free(weir_cesql_result_t *res);

/*
 * The name of one error kind, as the CESQL conformance kit spells it: "parse", "math", "cast",
 * "missingFunction", "functionEvaluation", "missingAttribute", "generic"; "" for 0 or a mask
 * of more than one kind.
 */
const char *weir_cesql_error_name(unsigned kind);

#endif
