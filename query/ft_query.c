/* ft_query.c: the FT.SEARCH query language (RediSearch dialect 2, the part that filters and
 * searches vectors) parsed into a tree, and the tree evaluated into a bitmap of document
 * ids. Grammar, loosest first:
 *   query   := expr [ "=>" "[" knn "]" [ "=>" attrs ] ]
 *   expr    := and ( "|" and )*            union
 *   and     := unary unary*                 intersection (juxtaposition)
 *   unary   := "-" unary | "~" unary | "(" expr ")" [ "=>" attrs ] | "*" | field
 *   field   := "@" name ":" ( "{" tag ( "|" tag )* "}" | "[" lo hi "]"
 *                            | "[" "VECTOR_RANGE" radius "$" param "]" ) [ "=>" attrs ]
 *   knn     := "KNN" k "@" field "$" param ( "EF_RUNTIME" n | "EPSILON" e | "AS" name )*
 *   attrs   := "{" ( "$" name ":" value [ ";" ] )* "}"
 * Numbers may be "(x" (exclusive), inf, +inf, -inf; k, n, numbers, radius and tags may be
 * "$param" (from PARAMS). "~" (optional) is kept as a plain clause. Full-text terms are
 * refused: TEXT fields are stored and returned, not searched. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/err.h"
#include "query/ft.h"

enum { QN_ALL, QN_TAG, QN_NUM, QN_RANGE, QN_AND, QN_OR, QN_NOT };

struct ft_qnode {
    int type;
    const ft_field *f;
    int n;             /* TAG values or children */
    char **vals;       /* TAG (unescaped copies) */
    size_t *lens;
    double lo, hi;     /* NUM */
    int lo_excl, hi_excl;
    double radius, eps; /* RANGE */
    float *vec;
    vec_hit *hits;      /* RANGE after eval: sorted by id */
    size_t nhits;
    ft_qnode **kids;    /* AND, OR, NOT */
};

typedef struct parser {
    ft_index *ix;
    const char *s;
    size_t len, pos;
    const ft_params *params;
    ft_query *q;
    char *err;
    size_t errlen;
    int depth;
} parser;

#define MAX_DEPTH 64

/* ---- tokens --------------------------------------------------------------------------------- */

static void skip_ws(parser *p)
{
    while (p->pos < p->len && isspace((unsigned char)p->s[p->pos]))
        p->pos++;
}

static int peek(parser *p)
{
    skip_ws(p);
    return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int at(parser *p, const char *lit)
{
    skip_ws(p);
    size_t n = strlen(lit);
    return p->len - p->pos >= n && memcmp(p->s + p->pos, lit, n) == 0;
}

static int syntax(parser *p, const char *what)
{
    size_t n = p->len - p->pos > 24 ? 24 : p->len - p->pos;
    if (n)
        snprintf(p->err, p->errlen, "Syntax error at offset %zu near '%.*s': %s", p->pos,
                 (int)n, p->s + p->pos, what);
    else
        snprintf(p->err, p->errlen, "Syntax error at the end of the query: %s", what);
    return ERR_INVAL;
}

static int expect(parser *p, char c, const char *what)
{
    if (peek(p) != c)
        return syntax(p, what);
    p->pos++;
    return 0;
}

/* A word: up to whitespace or punctuation, with \x escapes kept raw. */
static int word(parser *p, const char **w, size_t *n)
{
    skip_ws(p);
    size_t start = p->pos;
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c == '\\' && p->pos + 1 < p->len) {
            p->pos += 2;
            continue;
        }
        if (isspace((unsigned char)c) || strchr("()|{}[]@:;=>$,", c))
            break;
        p->pos++;
    }
    *w = p->s + start;
    *n = p->pos - start;
    return *n ? 0 : -1;
}

/* 1 at "=>" followed (after spaces) by c. */
static int arrow_to(parser *p, char c)
{
    if (!at(p, "=>"))
        return 0;
    size_t i = p->pos + 2;
    while (i < p->len && isspace((unsigned char)p->s[i]))
        i++;
    return i < p->len && p->s[i] == c;
}

static int word_is(const char *w, size_t n, const char *lit)
{
    return n == strlen(lit) && strncasecmp(w, lit, n) == 0;
}

/* $name: the parameter's value. */
static int param(parser *p, const char **v, size_t *vlen)
{
    if (expect(p, '$', "expected a $parameter"))
        return ERR_INVAL;
    const char *w;
    size_t n;
    if (word(p, &w, &n))
        return syntax(p, "expected a parameter name after '$'");
    for (int i = 0; p->params && i < p->params->n; i++)
        if (p->params->nlens[i] == n && memcmp(p->params->names[i], w, n) == 0) {
            *v = p->params->vals[i];
            *vlen = p->params->vlens[i];
            return 0;
        }
    snprintf(p->err, p->errlen, "No such parameter `%.*s` (give it with PARAMS)", (int)n, w);
    return ERR_INVAL;
}

/* A word or a $parameter's value. */
static int word_or_param(parser *p, const char **w, size_t *n)
{
    if (peek(p) == '$')
        return param(p, w, n);
    if (word(p, w, n))
        return syntax(p, "expected a value");
    return 0;
}

static int number(parser *p, const char *what, double *out, int *excl)
{
    if (excl && (*excl = peek(p) == '('))
        p->pos++;
    const char *w;
    size_t n;
    if (word_or_param(p, &w, &n))
        return ERR_INVAL;
    if (excl && !*excl && n > 1 && w[0] == '(') { /* "(5" given as a parameter */
        *excl = 1;
        w++;
        n--;
    }
    if (word_is(w, n, "inf") || word_is(w, n, "+inf"))
        *out = INFINITY;
    else if (word_is(w, n, "-inf"))
        *out = -INFINITY;
    else if (str_to_double(w, n, out, 0) != 0) {
        snprintf(p->err, p->errlen, "%s must be a number, got '%.*s'", what,
                 (int)(n > 32 ? 32 : n), w);
        return ERR_INVAL;
    }
    return 0;
}

static int uint_value(parser *p, const char *what, uint32_t lo, uint32_t hi, uint32_t *out)
{
    const char *w;
    size_t n;
    int64_t v;
    if (word_or_param(p, &w, &n))
        return ERR_INVAL;
    if (str_to_i64(w, n, &v) != 0 || v < lo || v > hi) {
        snprintf(p->err, p->errlen, "%s must be an integer from %u to %u, got '%.*s'", what, lo,
                 hi, (int)(n > 32 ? 32 : n), w);
        return ERR_INVAL;
    }
    *out = (uint32_t)v;
    return 0;
}

/* @name: the schema field (by attribute name, then hash field name). */
static int field(parser *p, const ft_field **f)
{
    if (expect(p, '@', "expected '@field'"))
        return ERR_INVAL;
    size_t start = p->pos;
    const char *w;
    size_t n;
    if (word(p, &w, &n))
        return syntax(p, "expected a field name after '@'");
    char name[256];
    size_t m = 0;
    for (size_t i = 0; i < n && m < sizeof name; i++) {
        if (w[i] == '\\' && i + 1 < n)
            i++;
        name[m++] = w[i];
    }
    *f = ft_def_field(ft_index_def(p->ix), name, m);
    if (!*f) {
        p->pos = start;
        snprintf(p->err, p->errlen, "Unknown field '%.*s' at offset %zu", (int)m, name, start);
        return ERR_INVAL;
    }
    if ((*f)->flags & FTFL_NOINDEX) {
        snprintf(p->err, p->errlen, "field '%s' is not indexed (NOINDEX)", (*f)->alias);
        return ERR_INVAL;
    }
    return 0;
}

/* The bytes of a query vector for field f, copied aligned. */
static int vector_blob(parser *p, const ft_field *f, float **out)
{
    const char *v;
    size_t n;
    if (param(p, &v, &n))
        return ERR_INVAL;
    size_t want = (size_t)f->vp.dim * 4;
    if (n != want) {
        snprintf(p->err, p->errlen, "Error parsing vector similarity query: query vector blob "
                 "size (%zu) does not match index's expected size (%zu).", n, want);
        return ERR_INVAL;
    }
    *out = xmalloc(want);
    memcpy(*out, v, want);
    return 0;
}

/* ---- nodes ---------------------------------------------------------------------------------- */

static ft_qnode *node(int type)
{
    ft_qnode *n = xcalloc(1, sizeof *n);
    n->type = type;
    return n;
}

static void node_free(ft_qnode *n)
{
    if (!n)
        return;
    for (int i = 0; n->vals && i < n->n; i++)
        xfree(n->vals[i]);
    for (int i = 0; n->kids && i < n->n; i++)
        node_free(n->kids[i]);
    xfree(n->vals);
    xfree(n->lens);
    xfree(n->kids);
    xfree(n->vec);
    xfree(n->hits);
    xfree(n);
}

static void add_kid(ft_qnode *parent, ft_qnode *kid)
{
    parent->kids = xrealloc(parent->kids, sizeof *parent->kids * (size_t)(parent->n + 1));
    parent->kids[parent->n++] = kid;
}

static void add_tag(ft_qnode *t, const char *v, size_t n)
{
    t->vals = xrealloc(t->vals, sizeof *t->vals * (size_t)(t->n + 1));
    t->lens = xrealloc(t->lens, sizeof *t->lens * (size_t)(t->n + 1));
    t->vals[t->n] = xmemdup(v, n);
    t->lens[t->n++] = n;
}

/* {a | b\ c | $p}: each tag unescaped. */
static int tag_list(parser *p, ft_qnode *t)
{
    p->pos++; /* '{' */
    for (;;) {
        skip_ws(p);
        if (peek(p) == '$') {
            const char *v;
            size_t n;
            if (param(p, &v, &n))
                return ERR_INVAL;
            add_tag(t, v, n);
        } else {
            buf b;
            buf_init(&b);
            while (p->pos < p->len && p->s[p->pos] != '|' && p->s[p->pos] != '}') {
                if (p->s[p->pos] == '\\' && p->pos + 1 < p->len)
                    p->pos++;
                buf_appendc(&b, p->s[p->pos++]);
            }
            add_tag(t, b.data ? b.data : "", b.len);
            buf_free(&b);
        }
        int c = peek(p);
        if (c == '}') {
            p->pos++;
            return 0;
        }
        if (c != '|')
            return syntax(p, "expected '|' or '}' in a tag list");
        p->pos++;
    }
}

/* [lo hi] on a NUMERIC field, or [VECTOR_RANGE r $p] on a VECTOR field. */
static int range(parser *p, ft_qnode **out, const ft_field *f)
{
    p->pos++; /* '[' */
    size_t save = p->pos;
    const char *w;
    size_t n;
    ft_qnode *nd;
    if (word(p, &w, &n) == 0 && word_is(w, n, "VECTOR_RANGE")) {
        if (f->type != FTF_VECTOR) {
            snprintf(p->err, p->errlen, "VECTOR_RANGE needs a VECTOR field, '%s' is not one",
                     f->alias);
            return ERR_INVAL;
        }
        *out = nd = node(QN_RANGE);
        nd->f = f;
        if (number(p, "VECTOR_RANGE radius", &nd->radius, NULL) || vector_blob(p, f, &nd->vec))
            return ERR_INVAL;
        if (!(nd->radius >= 0)) {
            snprintf(p->err, p->errlen, "VECTOR_RANGE radius must not be negative");
            return ERR_INVAL;
        }
    } else {
        p->pos = save;
        if (f->type != FTF_NUMERIC) {
            snprintf(p->err, p->errlen, "field '%s' is not NUMERIC: [..] needs a NUMERIC field"
                     " (or VECTOR_RANGE on a VECTOR field)", f->alias);
            return ERR_INVAL;
        }
        *out = nd = node(QN_NUM);
        nd->f = f;
        if (number(p, "range minimum", &nd->lo, &nd->lo_excl))
            return ERR_INVAL;
        if (peek(p) == ',')
            p->pos++;
        if (number(p, "range maximum", &nd->hi, &nd->hi_excl))
            return ERR_INVAL;
    }
    return expect(p, ']', "expected ']'");
}

/* =>{$name: value; ...}: YIELD_DISTANCE_AS and EPSILON on a VECTOR_RANGE; others (weight,
 * slop, inorder, phonetic) have no effect here. */
static int attrs(parser *p, ft_qnode *nd)
{
    p->pos += 2; /* "=>" */
    if (expect(p, '{', "expected '{' after '=>'"))
        return ERR_INVAL;
    while (peek(p) == '$') {
        p->pos++;
        const char *k, *v;
        size_t kn, vn;
        if (word(p, &k, &kn) || expect(p, ':', "expected ':' after an attribute name") ||
            word_or_param(p, &v, &vn))
            return syntax(p, "expected $name: value");
        if (word_is(k, kn, "YIELD_DISTANCE_AS")) {
            if (!nd || nd->type != QN_RANGE)
                return syntax(p, "$YIELD_DISTANCE_AS applies to a VECTOR_RANGE clause");
            xfree(p->q->yield_name);
            p->q->yield_name = xmemdup(v, vn);
            p->q->yield_node = nd;
        } else if (word_is(k, kn, "EPSILON") && nd && nd->type == QN_RANGE) {
            if (str_to_double(v, vn, &nd->eps, 0) != 0 || !(nd->eps > 0))
                return syntax(p, "$EPSILON must be a positive number");
        } else if (!word_is(k, kn, "WEIGHT") && !word_is(k, kn, "SLOP") &&
                   !word_is(k, kn, "INORDER") && !word_is(k, kn, "PHONETIC")) {
            snprintf(p->err, p->errlen, "unknown query attribute '$%.*s'", (int)kn, k);
            return ERR_INVAL;
        }
        if (peek(p) == ';')
            p->pos++;
    }
    return expect(p, '}', "expected '}' closing the attributes");
}

static int expr(parser *p, ft_qnode **out);

static int field_clause(parser *p, ft_qnode **out)
{
    const ft_field *f;
    if (field(p, &f) || expect(p, ':', "expected ':' after the field name"))
        return ERR_INVAL;
    int c = peek(p);
    if (f->type == FTF_TEXT) {
        snprintf(p->err, p->errlen, "field '%s' is TEXT: TEXT fields are stored and returned, "
                 "not full-text searched", f->alias);
        return ERR_INVAL;
    }
    if (c == '{') {
        if (f->type != FTF_TAG) {
            snprintf(p->err, p->errlen, "field '%s' is not a TAG field: {..} needs one",
                     f->alias);
            return ERR_INVAL;
        }
        *out = node(QN_TAG);
        (*out)->f = f;
        return tag_list(p, *out);
    }
    if (c == '[')
        return range(p, out, f);
    return syntax(p, "expected '{' or '[' after the field");
}

static int unary(parser *p, ft_qnode **out)
{
    int c = peek(p);
    int rc;
    if (c == '-' || c == '~') {
        p->pos++;
        if (++p->depth > MAX_DEPTH)
            return syntax(p, "clauses nested too deep");
        ft_qnode *kid = NULL;
        rc = unary(p, &kid);
        p->depth--;
        if (rc) {
            node_free(kid);
            return rc;
        }
        if (c == '~') {
            *out = kid;
            return 0;
        }
        *out = node(QN_NOT);
        add_kid(*out, kid);
        return 0;
    }
    if (c == '(') {
        p->pos++;
        if (++p->depth > MAX_DEPTH)
            return syntax(p, "parentheses nested too deep");
        rc = expr(p, out);
        p->depth--;
        if (rc || (rc = expect(p, ')', "expected ')'")) != 0)
            return rc;
    } else if (c == '*') {
        p->pos++;
        *out = node(QN_ALL);
    } else if (c == '@') {
        if ((rc = field_clause(p, out)) != 0)
            return rc;
    } else if (c < 0 || strchr(")|]}=", c)) {
        return syntax(p, "expected a clause");
    } else {
        const char *w;
        size_t n;
        if (c == '$' || c == '"' || word(p, &w, &n))
            return syntax(p, "expected a clause");
        snprintf(p->err, p->errlen, "full-text term '%.*s' is not supported: TEXT fields are "
                 "stored and returned, not searched (use @tag:{..} or @num:[..])",
                 (int)(n > 32 ? 32 : n), w);
        return ERR_INVAL;
    }
    if (arrow_to(p, '{'))
        return attrs(p, *out);
    return 0;
}

/* Ends an intersection: end of input, '|', ')', or the KNN arrow. */
static int and_end(parser *p)
{
    int c = peek(p);
    if (c < 0 || c == '|' || c == ')')
        return 1;
    return at(p, "=>");
}

static int and_expr(parser *p, ft_qnode **out)
{
    ft_qnode *first = NULL;
    int rc = unary(p, &first);
    if (rc || and_end(p)) {
        *out = first;
        return rc;
    }
    ft_qnode *a = node(QN_AND);
    add_kid(a, first);
    *out = a;
    while (!and_end(p)) {
        ft_qnode *kid = NULL;
        rc = unary(p, &kid);
        if (kid)
            add_kid(a, kid);
        if (rc)
            return rc;
    }
    return 0;
}

static int expr(parser *p, ft_qnode **out)
{
    ft_qnode *first = NULL;
    int rc = and_expr(p, &first);
    if (rc || peek(p) != '|') {
        *out = first;
        return rc;
    }
    ft_qnode *o = node(QN_OR);
    add_kid(o, first);
    *out = o;
    while (peek(p) == '|') {
        p->pos++;
        ft_qnode *kid = NULL;
        rc = and_expr(p, &kid);
        if (kid)
            add_kid(o, kid);
        if (rc)
            return rc;
    }
    return 0;
}

/* [KNN k @field $vec ...] */
static int knn(parser *p)
{
    ft_query *q = p->q;
    const char *w;
    size_t n;
    if (expect(p, '[', "expected '[' after '=>'") || word(p, &w, &n) || !word_is(w, n, "KNN"))
        return syntax(p, "expected KNN");
    if (uint_value(p, "KNN k", 1, VEC_MAX_K, &q->k) || field(p, &q->knn_field))
        return ERR_INVAL;
    if (q->knn_field->type != FTF_VECTOR) {
        snprintf(p->err, p->errlen, "KNN needs a VECTOR field, '%s' is not one",
                 q->knn_field->alias);
        return ERR_INVAL;
    }
    if (vector_blob(p, q->knn_field, &q->knn_vec))
        return ERR_INVAL;
    while (peek(p) != ']') {
        if (word(p, &w, &n))
            return syntax(p, "expected EF_RUNTIME, EPSILON, AS or ']'");
        if (word_is(w, n, "EF_RUNTIME")) {
            if (uint_value(p, "EF_RUNTIME", 1, VEC_MAX_K, &q->ef))
                return ERR_INVAL;
        } else if (word_is(w, n, "EPSILON")) {
            double e;
            if (number(p, "EPSILON", &e, NULL))
                return ERR_INVAL;
        } else if (word_is(w, n, "AS")) {
            if (word(p, &w, &n))
                return syntax(p, "expected a name after AS");
            xfree(q->score_name);
            q->score_name = xmemdup(w, n);
        } else {
            return syntax(p, "expected EF_RUNTIME, EPSILON, AS or ']'");
        }
    }
    p->pos++;
    if (at(p, "=>")) { /* =>{$YIELD_DISTANCE_AS: name; $EF_RUNTIME: n} */
        p->pos += 2;
        if (expect(p, '{', "expected '{' after '=>'"))
            return ERR_INVAL;
        while (peek(p) == '$') {
            p->pos++;
            const char *k, *v;
            size_t kn, vn;
            if (word(p, &k, &kn) || expect(p, ':', "expected ':'") || word_or_param(p, &v, &vn))
                return syntax(p, "expected $name: value");
            if (word_is(k, kn, "YIELD_DISTANCE_AS")) {
                xfree(q->score_name);
                q->score_name = xmemdup(v, vn);
            } else if (word_is(k, kn, "EF_RUNTIME")) {
                int64_t ef;
                if (str_to_i64(v, vn, &ef) != 0 || ef < 1 || ef > VEC_MAX_K)
                    return syntax(p, "$EF_RUNTIME must be an integer from 1 to 100000");
                q->ef = (uint32_t)ef;
            }
            if (peek(p) == ';')
                p->pos++;
        }
        if (expect(p, '}', "expected '}'"))
            return ERR_INVAL;
    }
    q->has_knn = 1;
    if (!q->score_name) {
        buf b;
        buf_init(&b);
        buf_printf(&b, "__%s_score", q->knn_field->alias);
        buf_appendc(&b, '\0');
        q->score_name = b.data;
    }
    return 0;
}

int ft_query_parse(ft_index *ix, const char *s, size_t len, const ft_params *params,
                   ft_query *q, char *err, size_t errlen)
{
    memset(q, 0, sizeof *q);
    parser p = {ix, s, len, 0, params, q, err, errlen, 0};
    int rc;
    if (peek(&p) < 0) {
        snprintf(err, errlen, "empty query: use '*' to match every document");
        return ERR_INVAL;
    }
    if ((rc = expr(&p, &q->root)) != 0)
        goto fail;
    if (at(&p, "=>")) {
        p.pos += 2;
        if ((rc = knn(&p)) != 0)
            goto fail;
    }
    if (peek(&p) >= 0) {
        rc = syntax(&p, "unexpected text after the query");
        goto fail;
    }
    q->root_is_all = q->root->type == QN_ALL;
    return 0;
fail:
    ft_query_free(q);
    return rc;
}

void ft_query_free(ft_query *q)
{
    node_free(q->root);
    xfree(q->knn_vec);
    xfree(q->score_name);
    xfree(q->yield_name);
    memset(q, 0, sizeof *q);
}

/* ---- evaluation ----------------------------------------------------------------------------- */

static int cmp_hit_id(const void *a, const void *b)
{
    uint32_t x = ((const vec_hit *)a)->id, y = ((const vec_hit *)b)->id;
    return x < y ? -1 : x > y;
}

static int eval(ft_index *ix, ft_qnode *n, uint64_t *bits, size_t words, char *err,
                size_t errlen)
{
    const uint64_t *live = ft_live(ix);
    switch (n->type) {
    case QN_ALL: memcpy(bits, live, words * 8); return 0;
    case QN_TAG:
        for (int i = 0; i < n->n; i++)
            ft_tag_match(ix, n->f, n->vals[i], n->lens[i], bits);
        return 0;
    case QN_NUM:
        ft_num_match(ix, n->f, n->lo, n->hi, n->lo_excl, n->hi_excl, bits);
        return 0;
    case QN_RANGE: {
        const ft_vecf *vf = ft_vec(ix, n->f);
        xfree(n->hits);
        n->hits = NULL;
        int rc = vec_range(vf->vx, n->vec, (float)n->radius, n->eps, NULL,
                           vec_count(vf->vx) + 1, &n->hits, &n->nhits);
        if (rc) {
            snprintf(err, errlen, "VECTOR_RANGE failed: %s", err_str(rc));
            return rc;
        }
        if (n->nhits)
            qsort(n->hits, n->nhits, sizeof *n->hits, cmp_hit_id);
        for (size_t i = 0; i < n->nhits; i++)
            if (n->hits[i].id < words * 64)
                bits[n->hits[i].id >> 6] |= 1ull << (n->hits[i].id & 63);
        return 0;
    }
    default: break;
    }
    /* AND, OR, NOT: children into a scratch bitmap */
    uint64_t *tmp = xmalloc(words * 8 + 8);
    int rc = 0;
    for (int k = 0; k < n->n && !rc; k++) {
        uint64_t *dst = (n->type == QN_AND && k == 0) ? bits : tmp;
        memset(dst, 0, words * 8);
        if ((rc = eval(ix, n->kids[k], dst, words, err, errlen)) != 0)
            break;
        for (size_t w = 0; w < words; w++) {
            if (n->type == QN_AND && k > 0)
                bits[w] &= tmp[w];
            else if (n->type == QN_OR)
                bits[w] |= tmp[w];
            else if (n->type == QN_NOT)
                bits[w] = live[w] & ~tmp[w];
        }
    }
    xfree(tmp);
    return rc;
}

int ft_query_eval(ft_index *ix, ft_query *q, uint64_t *bits, char *err, size_t errlen)
{
    size_t words = ft_bitmap_words(ix);
    int rc = eval(ix, q->root, bits, words, err, errlen);
    const uint64_t *live = ft_live(ix);
    for (size_t w = 0; w < words; w++)
        bits[w] &= live[w];
    return rc;
}

int ft_query_yield(const ft_query *q, uint32_t id, float *dist)
{
    const ft_qnode *n = q->yield_node;
    if (!n || !n->hits)
        return 0;
    vec_hit key = {id, 0};
    const vec_hit *h = bsearch(&key, n->hits, n->nhits, sizeof key, cmp_hit_id);
    if (h)
        *dist = h->dist;
    return h != NULL;
}
