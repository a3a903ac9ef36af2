/* fs_filter.c: FS.KNN's filter expressions (fs_filter.h). A lexer turns the text into
 * tokens, resolving field names against the view; a recursive-descent parser, bounded in
 * depth, builds a flat array of nodes ("and"/"or" are n-ary, so long chains never
 * recurse), checking the types of every comparison as it goes and converting literals
 * once to the form of the field they meet (float32 rounding, timestamps in microseconds).
 * Matching walks the nodes with SQL's three-valued logic over one decoded row. */
#include "query/fs_filter.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/util.h"

/* ---- the compiled form ----------------------------------------------------------------- */

enum { K_NUM = 1, K_STR, K_BOOL, K_TIME }; /* what a value is compared as */
enum { OP_EQ = 1, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };
enum { N_AND = 1, N_OR, N_NOT, N_CMP, N_IN, N_TRUTH };
enum { T_TRUE = 1, T_FALSE = 0, T_UNKNOWN = -1 };

/* A side of a test: a field of the row, or a literal. */
typedef struct operand {
    int field;  /* index in the schema, or -1 for a literal */
    int ftype;  /* the field's FT_* type */
    int kind;   /* K_* */
    int is_int; /* numbers: i holds the exact value, else d */
    int64_t i;  /* integers, booleans (0/1), times (us) */
    double d;
    const char *s; /* strings: owned by the filter */
    size_t len;
    size_t pos; /* where it was written, for errors */
} operand;

typedef struct node {
    int kind;      /* N_* */
    int op;        /* N_CMP: OP_*; N_IN: 1 for "not in" */
    int first, n;  /* N_AND/N_OR: kids[first..+n); N_NOT: kids[first]; N_IN: lits[first..+n) */
    operand a, b;  /* N_CMP: a op b; N_IN, N_TRUTH: a */
} node;

struct fs_filter {
    node *nodes;
    int nnodes, capnodes;
    int *kids;
    int nkids, capkids;
    operand *lits;
    int nlits, caplits;
    char **strs; /* every string literal's bytes */
    int nstrs, capstrs;
    int root;
};

/* Room for one more item in an array grown by doubling. */
static void *room(void *p, int n, int *cap, size_t size)
{
    if (n < *cap)
        return p;
    *cap = *cap ? *cap * 2 : 8;
    return xrealloc(p, (size_t)*cap * size);
}

static int add_node(fs_filter *f, const node *n)
{
    f->nodes = room(f->nodes, f->nnodes, &f->capnodes, sizeof *f->nodes);
    f->nodes[f->nnodes] = *n;
    return f->nnodes++;
}

void fs_filter_free(fs_filter *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->nstrs; i++)
        xfree(f->strs[i]);
    xfree(f->strs);
    xfree(f->nodes);
    xfree(f->kids);
    xfree(f->lits);
    xfree(f);
}

/* ---- the lexer ------------------------------------------------------------------------- */

enum {
    TK_END = 1, TK_LPAREN, TK_RPAREN, TK_LBRACK, TK_RBRACK, TK_COMMA, TK_OP, TK_FIELD,
    TK_NUM, TK_STR, TK_AND, TK_OR, TK_NOT, TK_IN, TK_TRUE, TK_FALSE,
};

typedef struct token {
    int kind;
    size_t pos, len; /* where it is in the text */
    int op;          /* TK_OP */
    operand val;     /* TK_FIELD, TK_NUM, TK_STR (s in the parser's scratch), TK_TRUE/FALSE */
} token;

typedef struct parser {
    const char *s;
    size_t len, pos;
    const store_view *v;
    fs_filter *f;
    token tok;   /* the current token */
    buf scratch; /* the current string token's bytes */
    char *err;
    size_t errlen;
    int rc;      /* the first error (its text is in err) */
} parser;

static int fail(parser *p, int rc, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(parser *p, int rc, size_t pos, const char *fmt, ...)
{
    if (p->rc)
        return p->rc;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(p->err, p->errlen, "at offset %zu: %s", pos, msg);
    for (char *c = p->err; *c; c++) /* the client's bytes, shown in a one-line reply */
        if (*c < 0x20 || *c > 0x7e)
            *c = '?';
    return p->rc = rc;
}

#define SHOWN 40 /* at most this much of the text is repeated in an error */
#define TEXT(p, pos, n) (int)((n) > SHOWN ? SHOWN : (n)), (p)->s + (pos)

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A quoted string at p->pos into p->scratch; p->pos moves past the closing quote. */
static int lex_quoted(parser *p)
{
    size_t start = p->pos;
    char q = p->s[p->pos++];
    p->scratch.len = 0;
    while (p->pos < p->len && p->s[p->pos] != q) {
        char c = p->s[p->pos++];
        if (c != '\\') {
            buf_appendc(&p->scratch, c);
            continue;
        }
        size_t at = p->pos - 1;
        char e = p->pos < p->len ? p->s[p->pos++] : '\0';
        switch (e) {
        case '\\': case '"': case '\'': buf_appendc(&p->scratch, e); break;
        case 'n': buf_appendc(&p->scratch, '\n'); break;
        case 'r': buf_appendc(&p->scratch, '\r'); break;
        case 't': buf_appendc(&p->scratch, '\t'); break;
        case 'x': {
            int hi = p->pos < p->len ? hexval(p->s[p->pos]) : -1;
            int lo = p->pos + 1 < p->len ? hexval(p->s[p->pos + 1]) : -1;
            if (hi < 0 || lo < 0)
                return fail(p, ERR_INVAL, at, "\\x needs two hex digits");
            buf_appendc(&p->scratch, (char)(hi << 4 | lo));
            p->pos += 2;
            break;
        }
        default:
            return fail(p, ERR_INVAL, at, "unknown escape in a string (use \\\\ \\\" \\' \\n "
                        "\\r \\t or \\xHH)");
        }
    }
    if (p->pos >= p->len)
        return fail(p, ERR_INVAL, start, "string not closed (missing %c)", q);
    p->pos++;
    return 0;
}

/* ".name" or ."quoted": resolved against the view. */
static int lex_field(parser *p, token *t)
{
    p->pos++; /* the '.' */
    const char *name;
    size_t nlen;
    if (p->pos < p->len && (p->s[p->pos] == '"' || p->s[p->pos] == '\'')) {
        if (lex_quoted(p))
            return p->rc;
        name = p->scratch.data;
        nlen = p->scratch.len;
    } else {
        size_t start = p->pos;
        while (p->pos < p->len && is_name_char(p->s[p->pos]))
            p->pos++;
        name = p->s + start;
        nlen = p->pos - start;
    }
    if (nlen == 0)
        return fail(p, ERR_INVAL, t->pos, "'.' must be followed by a field name");
    int k = store_view_field(p->v, name, nlen);
    if (k < 0)
        return fail(p, ERR_INVAL, t->pos, "unknown field '%.*s' of feature view '%s'",
                     (int)(nlen > SHOWN ? SHOWN : nlen), name, p->v->name);
    const store_field *fd = &p->v->fields[k];
    static const int kinds[] = {
        [FT_INT32] = K_NUM, [FT_INT64] = K_NUM, [FT_FLOAT32] = K_NUM, [FT_FLOAT64] = K_NUM,
        [FT_BOOL] = K_BOOL, [FT_STRING] = K_STR, [FT_BYTES] = K_STR, [FT_TIMESTAMP] = K_TIME,
    };
    int ft = fd->type.type;
    if (ft < FT_INT32 || ft > FT_TIMESTAMP)
        return fail(p, ERR_INVAL, t->pos, "field '%s' is a %s: it cannot be filtered on",
                    fd->name, store_ftype_name(ft));
    t->kind = TK_FIELD;
    t->val = (operand){.field = k, .ftype = ft, .kind = kinds[ft], .pos = t->pos};
    return 0;
}

static int lex_number(parser *p, token *t)
{
    size_t start = p->pos;
    if (p->s[p->pos] == '-')
        p->pos++;
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        char prev = p->pos > start ? p->s[p->pos - 1] : '\0';
        if ((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' ||
            ((c == '+' || c == '-') && (prev == 'e' || prev == 'E')))
            p->pos++;
        else
            break;
    }
    size_t n = p->pos - start;
    if (p->pos < p->len && is_name_char(p->s[p->pos]))
        return fail(p, ERR_INVAL, start, "'%.*s' is not a number", TEXT(p, start, n + 1));
    t->kind = TK_NUM;
    t->val = (operand){.field = -1, .kind = K_NUM, .pos = start};
    if (str_to_i64(p->s + start, n, &t->val.i) == 0) {
        t->val.is_int = 1;
        t->val.d = (double)t->val.i;
        return 0;
    }
    if (str_to_double(p->s + start, n, &t->val.d, 0) != 0)
        return fail(p, ERR_INVAL, start, "'%.*s' is not a number", TEXT(p, start, n));
    return 0;
}

static int word_is(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

static int lex_word(parser *p, token *t)
{
    static const struct { const char *w; int kind; } words[] = {
        {"and", TK_AND}, {"or", TK_OR}, {"not", TK_NOT}, {"in", TK_IN},
        {"true", TK_TRUE}, {"false", TK_FALSE},
    };
    size_t start = p->pos;
    while (p->pos < p->len && is_name_char(p->s[p->pos]))
        p->pos++;
    size_t n = p->pos - start;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (!word_is(p->s + start, n, words[i].w))
            continue;
        t->kind = words[i].kind;
        if (t->kind == TK_TRUE || t->kind == TK_FALSE)
            t->val = (operand){.field = -1, .kind = K_BOOL, .is_int = 1,
                               .i = t->kind == TK_TRUE, .pos = start};
        return 0;
    }
    return fail(p, ERR_INVAL, start, "unknown word '%.*s' (fields are written .%.*s, strings "
                "in quotes)", TEXT(p, start, n), TEXT(p, start, n));
}

static int lex_op(parser *p, token *t)
{
    const char *s = p->s + p->pos;
    int two = p->pos + 1 < p->len && s[1] == '=';
    t->kind = TK_OP;
    switch (s[0]) {
    case '=':
        if (!two)
            return fail(p, ERR_INVAL, p->pos, "'=' is not an operator: write '=='");
        t->op = OP_EQ;
        break;
    case '!':
        if (!two)
            return fail(p, ERR_INVAL, p->pos, "'!' is not an operator: write '!=' or 'not'");
        t->op = OP_NE;
        break;
    case '<': t->op = two ? OP_LE : OP_LT; break;
    default: t->op = two ? OP_GE : OP_GT; break;
    }
    p->pos += 1 + (size_t)two;
    return 0;
}

/* Reads the next token into p->tok. */
static int next(parser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
    token *t = &p->tok;
    memset(t, 0, sizeof *t);
    t->pos = p->pos;
    int rc = 0;
    if (p->pos >= p->len) {
        t->kind = TK_END;
        return 0;
    }
    char c = p->s[p->pos];
    static const char single[] = "()[],";
    static const int single_kinds[] = {TK_LPAREN, TK_RPAREN, TK_LBRACK, TK_RBRACK, TK_COMMA};
    const char *sc = strchr(single, c);
    if (c && sc) {
        t->kind = single_kinds[sc - single];
        p->pos++;
    } else if (c == '.') {
        rc = lex_field(p, t);
    } else if (c == '"' || c == '\'') {
        if ((rc = lex_quoted(p)) == 0) {
            t->kind = TK_STR;
            t->val = (operand){.field = -1, .kind = K_STR, .pos = t->pos};
        }
    } else if ((c >= '0' && c <= '9') || c == '-') {
        rc = lex_number(p, t);
    } else if (c == '=' || c == '!' || c == '<' || c == '>') {
        rc = lex_op(p, t);
    } else if (is_name_char(c)) {
        rc = lex_word(p, t);
    } else {
        rc = fail(p, ERR_INVAL, p->pos, "unexpected character '%c'",
                  c >= 0x20 && c < 0x7f ? c : '?');
    }
    t->len = p->pos - t->pos;
    return rc;
}

/* ---- types ----------------------------------------------------------------------------- */

static const char *kind_name(const operand *o)
{
    if (o->field >= 0)
        return store_ftype_name(o->ftype);
    switch (o->kind) {
    case K_NUM: return "a number";
    case K_STR: return "a string";
    case K_TIME: return "a time";
    default: return "a boolean";
    }
}

/* A string token's bytes, owned by the filter from now on. */
static void keep_string(parser *p, operand *o)
{
    fs_filter *f = p->f;
    f->strs = room(f->strs, f->nstrs, &f->capstrs, sizeof *f->strs);
    char *s = xmemdup(p->scratch.data ? p->scratch.data : "", p->scratch.len);
    f->strs[f->nstrs++] = s;
    o->s = s;
    o->len = p->scratch.len;
}

/* Makes literal lit comparable with the field side fd: a time from milliseconds or
 * ISO-8601, a number rounded to float32 for a FLOAT32 field. */
static int convert_literal(parser *p, const operand *fd, operand *lit)
{
    if (fd->kind == K_TIME && lit->kind == K_NUM) {
        if (!lit->is_int || lit->i > INT64_MAX / 1000 || lit->i < INT64_MIN / 1000)
            return fail(p, ERR_INVAL, lit->pos, "a TIMESTAMP compares with whole epoch "
                        "milliseconds or an ISO-8601 string");
        *lit = (operand){.field = -1, .kind = K_TIME, .is_int = 1, .i = lit->i * 1000,
                         .pos = lit->pos};
        return 0;
    }
    if (fd->kind == K_TIME && lit->kind == K_STR) {
        char err[160];
        int64_t us;
        if (store_parse_ts(lit->s, lit->len, &us, err, sizeof err) != 0)
            return fail(p, ERR_INVAL, lit->pos, "%s", err);
        *lit = (operand){.field = -1, .kind = K_TIME, .is_int = 1, .i = us, .pos = lit->pos};
        return 0;
    }
    if (fd->ftype == FT_FLOAT32 && lit->kind == K_NUM) {
        lit->d = (float)(lit->is_int ? (double)lit->i : lit->d);
        lit->is_int = 0;
    }
    return 0;
}

/* Checks that a and b can be compared, converting a literal to its field's form. */
static int bind(parser *p, operand *a, operand *b, size_t pos)
{
    if (a->field >= 0 && b->field < 0 && convert_literal(p, a, b))
        return p->rc;
    if (b->field >= 0 && a->field < 0 && convert_literal(p, b, a))
        return p->rc;
    if (a->kind != b->kind)
        return fail(p, ERR_INVAL, pos, "cannot compare %s with %s", kind_name(a), kind_name(b));
    return 0;
}

/* ---- the parser ------------------------------------------------------------------------ */

static int parse_or(parser *p, int depth, int *out);

/* A field or literal token as an operand (p->tok is one). */
static int take_operand(parser *p, operand *o)
{
    *o = p->tok.val;
    if (p->tok.kind == TK_STR)
        keep_string(p, o);
    return next(p);
}

static int is_operand(const token *t)
{
    return t->kind == TK_FIELD || t->kind == TK_NUM || t->kind == TK_STR ||
           t->kind == TK_TRUE || t->kind == TK_FALSE;
}

static int expected(parser *p, const char *what)
{
    if (p->tok.kind == TK_END)
        return fail(p, ERR_INVAL, p->tok.pos, "expected %s, found the end", what);
    return fail(p, ERR_INVAL, p->tok.pos, "expected %s, found '%.*s'", what,
                TEXT(p, p->tok.pos, p->tok.len));
}

/* "[" literal, ... "]" after "in": the literals go to f->lits, checked against a. */
static int parse_list(parser *p, node *n)
{
    fs_filter *f = p->f;
    if (p->tok.kind != TK_LBRACK)
        return expected(p, "'[' after in");
    if (next(p))
        return p->rc;
    n->first = f->nlits;
    while (p->tok.kind != TK_RBRACK) {
        if (n->n > 0) {
            if (p->tok.kind != TK_COMMA)
                return expected(p, "',' or ']'");
            if (next(p))
                return p->rc;
        }
        if (!is_operand(&p->tok) || p->tok.kind == TK_FIELD)
            return expected(p, "a literal in the list");
        operand lit;
        size_t pos = p->tok.pos;
        if (take_operand(p, &lit) || bind(p, &n->a, &lit, pos))
            return p->rc;
        f->lits = room(f->lits, f->nlits, &f->caplits, sizeof *f->lits);
        f->lits[f->nlits++] = lit;
        n->n++;
    }
    return next(p);
}

/* test := operand [ cmp operand | [not] in [...] ] */
static int parse_test(parser *p, int *out)
{
    node n = {0};
    size_t pos = p->tok.pos;
    if (!is_operand(&p->tok))
        return expected(p, "a condition");
    if (take_operand(p, &n.a))
        return p->rc;
    if (p->tok.kind == TK_OP) {
        n.kind = N_CMP;
        n.op = p->tok.op;
        size_t oppos = p->tok.pos;
        if (next(p))
            return p->rc;
        if (!is_operand(&p->tok))
            return expected(p, "a field or a value after the operator");
        if (take_operand(p, &n.b) || bind(p, &n.a, &n.b, oppos))
            return p->rc;
    } else if (p->tok.kind == TK_IN || p->tok.kind == TK_NOT) {
        n.kind = N_IN;
        if (p->tok.kind == TK_NOT) {
            n.op = 1;
            if (next(p))
                return p->rc;
            if (p->tok.kind != TK_IN)
                return expected(p, "in after not");
        }
        if (next(p) || parse_list(p, &n))
            return p->rc;
    } else {
        if (n.a.kind != K_BOOL)
            return fail(p, ERR_INVAL, pos, "%s is not a condition: compare it (== != < <= > "
                        ">=) or test it with in", kind_name(&n.a));
        n.kind = N_TRUTH;
    }
    *out = add_node(p->f, &n);
    return 0;
}

static int parse_unary(parser *p, int depth, int *out)
{
    if (depth > FS_FILTER_MAX_DEPTH)
        return fail(p, ERR_LIMIT, p->tok.pos, "expression nested deeper than %d levels",
                    FS_FILTER_MAX_DEPTH);
    if (p->tok.kind == TK_NOT) {
        int kid;
        if (next(p) || parse_unary(p, depth + 1, &kid))
            return p->rc;
        fs_filter *f = p->f;
        f->kids = room(f->kids, f->nkids, &f->capkids, sizeof *f->kids);
        f->kids[f->nkids] = kid;
        *out = add_node(f, &(node){.kind = N_NOT, .first = f->nkids++, .n = 1});
        return 0;
    }
    if (p->tok.kind == TK_LPAREN) {
        if (next(p) || parse_or(p, depth + 1, out))
            return p->rc;
        if (p->tok.kind != TK_RPAREN)
            return expected(p, "')'");
        return next(p);
    }
    return parse_test(p, out);
}

/* kind's operands, separated by word (TK_AND or TK_OR), each parsed by sub. */
static int parse_list_of(parser *p, int depth, int kind, int word,
                         int (*sub)(parser *, int, int *), int *out)
{
    int first;
    if (sub(p, depth, &first))
        return p->rc;
    if (p->tok.kind != word) {
        *out = first;
        return 0;
    }
    int *items = NULL, n = 0, cap = 0;
    items = room(items, n, &cap, sizeof *items);
    items[n++] = first;
    while (p->tok.kind == word) {
        int kid;
        if (next(p) || sub(p, depth, &kid)) {
            xfree(items);
            return p->rc;
        }
        items = room(items, n, &cap, sizeof *items);
        items[n++] = kid;
    }
    fs_filter *f = p->f;
    node nd = {.kind = kind, .first = f->nkids, .n = n};
    for (int i = 0; i < n; i++) {
        f->kids = room(f->kids, f->nkids, &f->capkids, sizeof *f->kids);
        f->kids[f->nkids++] = items[i];
    }
    xfree(items);
    *out = add_node(f, &nd);
    return 0;
}

static int parse_and(parser *p, int depth, int *out)
{
    return parse_list_of(p, depth, N_AND, TK_AND, parse_unary, out);
}

static int parse_or(parser *p, int depth, int *out)
{
    return parse_list_of(p, depth, N_OR, TK_OR, parse_and, out);
}

int fs_filter_parse(const char *expr, size_t len, const store_view *v, fs_filter **out,
                    char *err, size_t errlen)
{
    *out = NULL;
    if (len > FS_FILTER_MAX_LEN) {
        snprintf(err, errlen, "expression longer than %d bytes", FS_FILTER_MAX_LEN);
        return ERR_LIMIT;
    }
    parser p = {.s = expr, .len = len, .v = v, .err = err, .errlen = errlen};
    buf_init(&p.scratch);
    p.f = xcalloc(1, sizeof *p.f);
    if (next(&p) == 0) {
        if (p.tok.kind == TK_END)
            fail(&p, ERR_INVAL, 0, "empty expression");
        else if (parse_or(&p, 0, &p.f->root) == 0 && p.tok.kind != TK_END)
            expected(&p, "'and', 'or' or the end");
    }
    buf_free(&p.scratch);
    if (p.rc) {
        fs_filter_free(p.f);
        return p.rc;
    }
    *out = p.f;
    return 0;
}

/* ---- matching -------------------------------------------------------------------------- */

/* The value of o in the row; 0 when it is NULL. */
static int value_of(const operand *o, const store_fvalue *vals, operand *out)
{
    if (o->field < 0) {
        *out = *o;
        return 1;
    }
    const store_fvalue *v = &vals[o->field];
    if (v->is_null)
        return 0;
    *out = *o;
    switch (o->ftype) {
    case FT_FLOAT32:
    case FT_FLOAT64: out->d = v->f; out->is_int = 0; break;
    case FT_STRING:
    case FT_BYTES: out->s = v->bytes; out->len = v->len; break;
    default: out->i = v->i; out->is_int = 1; break; /* INT32 INT64 BOOL TIMESTAMP */
    }
    return 1;
}

/* <0, 0, >0 as a is below, equal to or above b (both of one kind). */
static int compare(const operand *a, const operand *b)
{
    if (a->kind == K_STR) {
        size_t n = a->len < b->len ? a->len : b->len;
        int c = n ? memcmp(a->s, b->s, n) : 0;
        return c ? c : (a->len > b->len) - (a->len < b->len);
    }
    if (a->is_int && b->is_int)
        return (a->i > b->i) - (a->i < b->i);
    long double x = a->is_int ? (long double)a->i : (long double)a->d;
    long double y = b->is_int ? (long double)b->i : (long double)b->d;
    return (x > y) - (x < y);
}

static int holds(int op, int c)
{
    switch (op) {
    case OP_EQ: return c == 0;
    case OP_NE: return c != 0;
    case OP_LT: return c < 0;
    case OP_LE: return c <= 0;
    case OP_GT: return c > 0;
    default: return c >= 0;
    }
}

static int eval(const fs_filter *f, int i, const store_fvalue *vals)
{
    const node *n = &f->nodes[i];
    operand a, b;
    switch (n->kind) {
    case N_AND:
    case N_OR: {
        int stop = n->kind == N_AND ? T_FALSE : T_TRUE, seen_unknown = 0;
        for (int k = 0; k < n->n; k++) {
            int r = eval(f, f->kids[n->first + k], vals);
            if (r == stop)
                return stop;
            seen_unknown |= r == T_UNKNOWN;
        }
        return seen_unknown ? T_UNKNOWN : !stop;
    }
    case N_NOT: {
        int r = eval(f, f->kids[n->first], vals);
        return r == T_UNKNOWN ? T_UNKNOWN : !r;
    }
    case N_CMP:
        if (!value_of(&n->a, vals, &a) || !value_of(&n->b, vals, &b))
            return T_UNKNOWN;
        return holds(n->op, compare(&a, &b));
    case N_IN:
        if (!value_of(&n->a, vals, &a))
            return T_UNKNOWN;
        for (int k = 0; k < n->n; k++)
            if (compare(&a, &f->lits[n->first + k]) == 0)
                return !n->op;
        return n->op;
    default: /* N_TRUTH */
        if (!value_of(&n->a, vals, &a))
            return T_UNKNOWN;
        return a.i != 0;
    }
}

int fs_filter_match(const fs_filter *f, const store_fvalue *vals)
{
    return eval(f, f->root, vals) == T_TRUE;
}
