/* fs_filter.h: the filter expressions of FS.KNN's FILTER, parsed against a feature view's
 * schema and evaluated over one decoded row. A small standalone module (it needs only the
 * view's field names and types), so that it can be unit-tested and fuzzed on its own.
 *
 * GRAMMAR (words are case-insensitive; whitespace is free between tokens):
 *   expr     := and ( "or" and )*
 *   and      := unary ( "and" unary )*
 *   unary    := "not" unary | "(" expr ")" | test
 *   test     := operand [ cmp operand | [ "not" ] "in" "[" [ literal ( "," literal )* ] "]" ]
 *   cmp      := "==" | "!=" | "<" | "<=" | ">" | ">="
 *   operand  := field | literal
 *   field    := "." name            name: letters, digits, '_' and '-'
 *             | "." quoted          any field name, e.g. ."rate:7d"
 *   literal  := number | quoted | "true" | "false"
 *   number   := an integer or a decimal ("-3", "0.5", "1e-3"); ".5" is a field, not a number
 *   quoted   := "..." or '...' with the escapes \\ \" \' \n \r \t \xHH
 * An operand alone must be a BOOL field (or true/false): ".active and .rate > 0.5".
 *
 * TYPES. Both sides of a comparison (and every literal of an "in" list) must be of one
 * kind: numbers (INT32 INT64 FLOAT32 FLOAT64 fields, number literals), strings (STRING and
 * BYTES fields, quoted literals; compared bytewise), booleans (BOOL fields, true/false;
 * false < true), or times (TIMESTAMP fields, compared with another TIMESTAMP field, an
 * integer of epoch milliseconds, or a quoted ISO-8601 time). Integers compare exactly; a
 * literal compared with a FLOAT32 field is first rounded to float32, as a pushed value
 * would be, so ".rate == 0.1" matches a pushed 0.1. VECTOR fields cannot be filtered on.
 * A mismatch is a parse error, never a silent false.
 *
 * NULLS. A NULL (or missing) value makes a comparison unknown, and the logic is SQL's
 * three-valued one: not unknown is unknown, false and unknown is false, true or unknown is
 * true. A row matches only when the whole expression is true, so a NULL field never
 * matches by itself, not even under "not".
 *
 * LIMITS. Parentheses and "not" nest at most FS_FILTER_MAX_DEPTH deep (the parser and the
 * evaluator recurse only there: "and"/"or" chains are flat lists), and an expression is at
 * most FS_FILTER_MAX_LEN bytes.
 *
 * THREADS. A parsed filter is immutable: any number of threads may match rows with it.
 * ERRORS. fs_filter_parse returns ERR_INVAL with err saying "at offset N: what" (N counts
 * bytes from 0), or ERR_LIMIT (too deep or too long, err saying so). */
#ifndef QUIVER_FS_FILTER_H
#define QUIVER_FS_FILTER_H

#include <stddef.h>

#include "store/store.h"

#define FS_FILTER_MAX_DEPTH 64
#define FS_FILTER_MAX_LEN 65536

typedef struct fs_filter fs_filter;

/* Parses expr (len bytes, not NUL-terminated) against v's schema. The filter keeps field
 * indexes and types, never v itself. */
int fs_filter_parse(const char *expr, size_t len, const store_view *v, fs_filter **out,
                    char *err, size_t errlen);
/* 1 when the row (vals[0..v->nfields) in schema order, as store_row_decode gives them)
 * makes the expression true; 0 when false or unknown. */
int fs_filter_match(const fs_filter *f, const store_fvalue *vals);
void fs_filter_free(fs_filter *f);

#endif
