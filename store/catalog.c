/* catalog.c: the feature store's catalog. Entities, views and services are records in the
 * LMDB dbi "catalog" (layouts in store.h, ON-DISK FORMAT), each versioned and checked by a
 * CRC32C, and a decoded copy in memory: one array per kind, sorted by name, searched by
 * bisection. A change is validated in full first (nothing is touched on bad input or a
 * failed allocation), then written in the pass's write transaction, then applied to the
 * copy, which is always decoded from the very bytes that were written. A failed pass
 * reloads the copy from LMDB (store__catalog_load). Creating a view also creates its
 * RocksDB column family at once; dropping one queues the column family's drop until after
 * the commit (env.c runs the queue, or undoes both when the pass fails). */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#define REC_VERSION 1
#define COUNTER_KEY "#view_id"
#define ENTITIES_MAX (STORE_EKEY_MAX / 2) /* each value takes at least its u16 length */
#define VEC_M_DEFAULT 16
#define VEC_EF_DEFAULT 200
#define VEC_M_MAX 1024
#define VEC_EF_MAX 100000
#define SHOW(s, len) (int)((len) > 64 ? 64 : (len)), (s) /* a client's name in a message */

/* ---- record encoding: one pass counts (p NULL), a second writes ------------------------ */

typedef struct enc {
    unsigned char *p;
    size_t n;
} enc;

static void put_bytes(enc *e, const void *s, size_t n)
{
    if (e->p && n)
        memcpy(e->p + e->n, s, n);
    e->n += n;
}

static void put_u8(enc *e, unsigned v)
{
    unsigned char b = (unsigned char)v;
    put_bytes(e, &b, 1);
}

static void put_le(enc *e, uint64_t v, int bytes)
{
    unsigned char b[8];
    for (int i = 0; i < bytes; i++, v >>= 8)
        b[i] = (unsigned char)(v & 0xff);
    put_bytes(e, b, (size_t)bytes);
}

static void put_name(enc *e, const char *name)
{
    size_t n = strlen(name);
    put_u8(e, (unsigned)n);
    put_bytes(e, name, n);
}

static void put_crc(enc *e)
{
    put_le(e, e->p ? crc32c(0, e->p, e->n) : 0, 4);
}

typedef struct dec {
    const unsigned char *p;
    size_t n, off;
    int bad;
    int nomem; /* a copy could not be allocated (bad is set too) */
} dec;

static const unsigned char *take(dec *d, size_t n)
{
    if (d->bad || d->n - d->off < n) {
        d->bad = 1;
        return NULL;
    }
    d->off += n;
    return d->p + d->off - n;
}

static uint64_t get_le(dec *d, int bytes)
{
    const unsigned char *b = take(d, (size_t)bytes);
    uint64_t v = 0;
    for (int i = bytes - 1; b && i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static int valid_name(const char *s, size_t len)
{
    if (len < 1 || len > STORE_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == ':')
            return 0;
    return 1;
}

/* A u8-length name; NULL (and d->bad) if absent or not a valid name. */
static char *get_name(dec *d)
{
    size_t n = (size_t)get_le(d, 1);
    const unsigned char *s = take(d, n);
    if (!s || !valid_name((const char *)s, n)) {
        d->bad = 1;
        return NULL;
    }
    char *copy = try_memdup(s, n);
    if (!copy)
        d->bad = d->nomem = 1;
    return copy;
}

/* Opens a record: version byte and CRC32C over everything before the last 4 bytes. */
static void dec_open(dec *d, const MDB_val *v)
{
    *d = (dec){.p = v->mv_data, .n = v->mv_size};
    if (d->n < 5 || d->p[0] != REC_VERSION) {
        d->bad = 1;
        return;
    }
    dec crc = {.p = d->p + d->n - 4, .n = 4};
    if (crc32c(0, d->p, d->n - 4) != (uint32_t)get_le(&crc, 4))
        d->bad = 1;
    d->n -= 4;
    d->off = 1;
}

/* The record is fine when nothing failed and every byte was read. */
static int dec_close(const dec *d)
{
    if (d->nomem)
        return ERR_NOMEM;
    return d->bad || d->off != d->n ? ERR_CORRUPT : 0;
}

/* ---- the three kinds: encode, decode, free ------------------------------------------- */

static void entity_encode(enc *e, int key_type, const char *desc, size_t dlen)
{
    put_u8(e, REC_VERSION);
    put_u8(e, (unsigned)key_type);
    put_le(e, dlen, 4);
    put_bytes(e, desc, dlen);
    put_crc(e);
}

static void entity_free(store_entity *en)
{
    xfree(en->name);
    xfree(en->description);
}

static int entity_decode(const char *name, size_t len, const MDB_val *v, store_entity *out)
{
    dec d;
    dec_open(&d, v);
    int key_type = (int)get_le(&d, 1);
    size_t dlen = (size_t)get_le(&d, 4);
    const unsigned char *desc = take(&d, dlen);
    if (dec_close(&d) || (key_type != STORE_KEY_STRING && key_type != STORE_KEY_INT64))
        return ERR_CORRUPT;
    out->name = try_memdup(name, len);
    out->key_type = key_type;
    out->description = try_memdup(desc, dlen);
    out->description_len = dlen;
    if (!out->name || !out->description) {
        entity_free(out);
        return ERR_NOMEM;
    }
    return 0;
}

static void field_norm(const store_field *f, store_field *out)
{
    *out = (store_field){.type = f->type};
    if (f->type.type != FT_VECTOR) {
        out->type.dim = 0;
        return;
    }
    out->metric = f->metric ? f->metric : STORE_METRIC_L2;
    out->vindex = f->vindex;
    out->m = f->m ? f->m : VEC_M_DEFAULT;
    out->ef_construction = f->ef_construction ? f->ef_construction : VEC_EF_DEFAULT;
}

static void view_encode(enc *e, const store_view *spec, uint32_t id, const int *key_types,
                        int64_t created_ms)
{
    put_u8(e, REC_VERSION);
    put_le(e, id, 4);
    put_le(e, (uint64_t)created_ms, 8);
    put_le(e, (uint64_t)spec->ttl_us, 8);
    put_le(e, (uint64_t)spec->retention_us, 8);
    put_u8(e, spec->online != 0);
    put_le(e, (uint64_t)spec->nentities, 2);
    for (int i = 0; i < spec->nentities; i++) {
        put_name(e, spec->entities[i]);
        put_u8(e, (unsigned)key_types[i]);
    }
    put_le(e, (uint64_t)spec->nfields, 2);
    for (int i = 0; i < spec->nfields; i++) {
        store_field f;
        field_norm(&spec->fields[i], &f);
        put_name(e, spec->fields[i].name);
        put_u8(e, (unsigned)f.type.type);
        put_le(e, f.type.dim, 4);
        put_u8(e, (unsigned)f.metric);
        put_u8(e, (unsigned)f.vindex);
        put_le(e, f.m, 4);
        put_le(e, f.ef_construction, 4);
    }
    put_crc(e);
}

static void view_free(store_view *v)
{
    xfree(v->name);
    for (int i = 0; v->entities && i < v->nentities; i++)
        xfree(v->entities[i]);
    for (int i = 0; v->fields && i < v->nfields; i++)
        xfree(v->fields[i].name);
    xfree(v->entities);
    xfree(v->key_types);
    xfree(v->fields);
    xfree(v->schema);
    memset(v, 0, sizeof *v);
}

/* 1 if the field's stored description is one view_create accepts. */
static int field_ok(const store_field *f)
{
    if (f->type.type < FT_INT32 || f->type.type > FT_VECTOR)
        return 0;
    if (f->type.type != FT_VECTOR)
        return f->type.dim == 0 && f->metric == 0 && f->vindex == 0 && f->m == 0 &&
               f->ef_construction == 0;
    return f->type.dim >= 1 && f->type.dim <= FT_MAX_VECTOR_DIM &&
           f->metric >= STORE_METRIC_L2 && f->metric <= STORE_METRIC_COSINE &&
           f->vindex >= STORE_VINDEX_NONE && f->vindex <= STORE_VINDEX_FLAT && f->m >= 2 &&
           f->m <= VEC_M_MAX && f->ef_construction >= 1 && f->ef_construction <= VEC_EF_MAX;
}

static int view_decode(const char *name, size_t len, const MDB_val *val, store_view *v)
{
    dec d;
    dec_open(&d, val);
    memset(v, 0, sizeof *v);
    if (!(v->name = try_memdup(name, len)))
        d.bad = d.nomem = 1;
    v->id = (uint32_t)get_le(&d, 4);
    v->created_ms = (int64_t)get_le(&d, 8);
    v->ttl_us = (int64_t)get_le(&d, 8);
    v->retention_us = (int64_t)get_le(&d, 8);
    v->online = (int)get_le(&d, 1);
    int n = (int)get_le(&d, 2);
    if (d.bad || n < 1 || n > ENTITIES_MAX)
        goto bad;
    v->entities = try_calloc((size_t)n, sizeof *v->entities);
    v->key_types = try_calloc((size_t)n, sizeof *v->key_types);
    if (!v->entities || !v->key_types) {
        d.nomem = 1;
        goto bad;
    }
    for (v->nentities = 0; v->nentities < n && !d.bad; v->nentities++) {
        v->entities[v->nentities] = get_name(&d);
        v->key_types[v->nentities] = (int)get_le(&d, 1);
        int kt = v->key_types[v->nentities];
        d.bad |= kt != STORE_KEY_STRING && kt != STORE_KEY_INT64;
    }
    n = (int)get_le(&d, 2);
    if (d.bad || n < 1 || n > FT_MAX_FIELDS)
        goto bad;
    v->fields = try_calloc((size_t)n, sizeof *v->fields);
    v->schema = try_calloc((size_t)n, sizeof *v->schema);
    if (!v->fields || !v->schema) {
        d.nomem = 1;
        goto bad;
    }
    for (v->nfields = 0; v->nfields < n && !d.bad; v->nfields++) {
        store_field *f = &v->fields[v->nfields];
        f->name = get_name(&d);
        f->type.type = (int)get_le(&d, 1);
        f->type.dim = (uint32_t)get_le(&d, 4);
        f->metric = (int)get_le(&d, 1);
        f->vindex = (int)get_le(&d, 1);
        f->m = (uint32_t)get_le(&d, 4);
        f->ef_construction = (uint32_t)get_le(&d, 4);
        d.bad |= !field_ok(f);
        v->schema[v->nfields] = f->type;
    }
    if (dec_close(&d) || v->online > 1 || v->ttl_us < 0 || v->retention_us < 0)
        goto bad;
    return 0;
bad:
    view_free(v);
    return d.nomem ? ERR_NOMEM : ERR_CORRUPT;
}

static void service_encode(enc *e, int n, const store_feature_ref *features)
{
    put_u8(e, REC_VERSION);
    put_le(e, (uint64_t)n, 4);
    for (int i = 0; i < n; i++) {
        put_name(e, features[i].view);
        if (features[i].field)
            put_name(e, features[i].field);
        else
            put_u8(e, 0);
    }
    put_crc(e);
}

static void service_free(store_service *s)
{
    xfree(s->name);
    for (int i = 0; s->features && i < s->n; i++) {
        xfree(s->features[i].view);
        xfree(s->features[i].field);
    }
    xfree(s->features);
    memset(s, 0, sizeof *s);
}

static int service_decode(const char *name, size_t len, const MDB_val *v, store_service *s)
{
    dec d;
    dec_open(&d, v);
    memset(s, 0, sizeof *s);
    if (!(s->name = try_memdup(name, len)))
        d.bad = d.nomem = 1;
    uint64_t n = get_le(&d, 4);
    /* each feature takes at least 3 bytes: a bound before allocating */
    if (d.bad || n < 1 || n > (d.n - d.off) / 3)
        goto bad;
    if (!(s->features = try_calloc((size_t)n, sizeof *s->features))) {
        d.nomem = 1;
        goto bad;
    }
    for (s->n = 0; (uint64_t)s->n < n && !d.bad; s->n++) {
        store_feature_ref *f = &s->features[s->n];
        f->view = get_name(&d);
        if (d.off < d.n && d.p[d.off] == 0)
            d.off++; /* every field of the view */
        else
            f->field = get_name(&d);
    }
    if (dec_close(&d))
        goto bad;
    return 0;
bad:
    service_free(s);
    return d.nomem ? ERR_NOMEM : ERR_CORRUPT;
}

/* ---- sorted arrays (every kind's struct starts with its char *name) -------------------- */

static int name_cmp(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

/* The index of name in arr, or -1 with *pos where it would go. */
static int find(const void *arr, int n, size_t size, const char *name, size_t len, int *pos)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        const char *at = *(char *const *)((const char *)arr + (size_t)mid * size);
        int c = name_cmp(name, len, at);
        if (c == 0)
            return mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (pos)
        *pos = lo;
    return -1;
}

/* Room for one more item, so that the insert that follows a written record cannot fail. */
static int reserve(void **arr, int n, int *cap, size_t size)
{
    if (n < *cap)
        return 0;
    int ncap = *cap ? *cap * 2 : 8;
    void *a = try_realloc(*arr, (size_t)ncap * size);
    if (!a)
        return ERR_NOMEM;
    *arr = a;
    *cap = ncap;
    return 0;
}

/* Inserts item at pos; reserve() made room. */
static void insert(void *arr, int *n, size_t size, int pos, const void *item)
{
    char *a = arr;
    memmove(a + (size_t)(pos + 1) * size, a + (size_t)pos * size, (size_t)(*n - pos) * size);
    memcpy(a + (size_t)pos * size, item, size);
    (*n)++;
}

static void remove_at(void *arr, int *n, size_t size, int pos)
{
    char *a = arr;
    memmove(a + (size_t)pos * size, a + (size_t)(pos + 1) * size, (size_t)(*n - pos - 1) * size);
    (*n)--;
}

void store__catalog_free(store__catalog *cat)
{
    for (int i = 0; i < cat->nentities; i++)
        entity_free(&cat->entities[i]);
    for (int i = 0; i < cat->nviews; i++)
        view_free(&cat->views[i]);
    for (int i = 0; i < cat->nservices; i++)
        service_free(&cat->services[i]);
    xfree(cat->entities);
    xfree(cat->views);
    xfree(cat->services);
    memset(cat, 0, sizeof *cat);
}

int store__ids_reserve(store__ids *l)
{
    return reserve((void **)&l->ids, l->n, &l->cap, sizeof *l->ids);
}

void store__ids_add(store__ids *l, uint32_t id)
{
    l->ids[l->n++] = id;
}

/* ---- loading ------------------------------------------------------------------------------ */

static int counter_decode(const MDB_val *v, uint32_t *next)
{
    dec d = {.p = v->mv_data, .n = v->mv_size};
    uint32_t id = (uint32_t)get_le(&d, 4);
    uint32_t crc = (uint32_t)get_le(&d, 4);
    if (d.bad || d.off != d.n || crc != crc32c(0, v->mv_data, 4) || id == 0)
        return ERR_CORRUPT;
    *next = id;
    return 0;
}

int store__catalog_decode(store__catalog *c, const MDB_val *k, const MDB_val *v)
{
    const char *key = k->mv_data;
    if (k->mv_size == sizeof COUNTER_KEY - 1 && memcmp(key, COUNTER_KEY, k->mv_size) == 0)
        return counter_decode(v, &c->next_view_id);
    if (k->mv_size < 2 || !valid_name(key + 1, k->mv_size - 1))
        return ERR_CORRUPT;
    const char *name = key + 1;
    size_t len = k->mv_size - 1;
    int rc = ERR_CORRUPT;
    if (key[0] == 'e') {
        store_entity en;
        if ((rc = reserve((void **)&c->entities, c->nentities, &c->capentities, sizeof en)) ||
            (rc = entity_decode(name, len, v, &en)))
            return rc;
        insert(c->entities, &c->nentities, sizeof en, c->nentities, &en);
    } else if (key[0] == 'v') {
        store_view vw;
        if ((rc = reserve((void **)&c->views, c->nviews, &c->capviews, sizeof vw)) ||
            (rc = view_decode(name, len, v, &vw)))
            return rc;
        insert(c->views, &c->nviews, sizeof vw, c->nviews, &vw);
    } else if (key[0] == 's') {
        store_service s;
        if ((rc = reserve((void **)&c->services, c->nservices, &c->capservices, sizeof s)) ||
            (rc = service_decode(name, len, v, &s)))
            return rc;
        insert(c->services, &c->nservices, sizeof s, c->nservices, &s);
    }
    return rc;
}

void store__catalog_encode(const store__catalog *c, char kind, int i, buf *out)
{
    enc e = {0};
    for (int pass = 0; pass < 2; pass++) { /* count, then write */
        if (kind == 'e') {
            const store_entity *en = &c->entities[i];
            entity_encode(&e, en->key_type, en->description, en->description_len);
        } else if (kind == 'v') {
            const store_view *v = &c->views[i];
            view_encode(&e, v, v->id, v->key_types, v->created_ms);
        } else {
            service_encode(&e, c->services[i].n, c->services[i].features);
        }
        if (pass == 0) {
            e.p = xmalloc(e.n ? e.n : 1);
            e.n = 0;
        }
    }
    buf_append(out, e.p, e.n);
    xfree(e.p);
}

int store__catalog_load(store *st, char *err, size_t errlen)
{
    store__catalog c = {.next_view_id = 1};
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc) {
        snprintf(err, errlen, "catalog: %s", mdb_strerror(rc));
        return store__map_rc(rc);
    }
    if ((rc = mdb_cursor_open(txn, st->catalog, &cur)) != 0) {
        mdb_txn_abort(txn);
        snprintf(err, errlen, "catalog: %s", mdb_strerror(rc));
        return store__map_rc(rc);
    }
    int op = MDB_FIRST;
    while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if ((rc = store__catalog_decode(&c, &k, &v)) != 0) {
            snprintf(err, errlen, "catalog: record '%.*s' %s", SHOW((char *)k.mv_data,
                     k.mv_size), rc == ERR_NOMEM ? "does not fit in memory" : "is corrupt");
            break;
        }
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (rc != MDB_NOTFOUND) {
        store__catalog_free(&c);
        if (rc > 0)
            snprintf(err, errlen, "catalog: %s", mdb_strerror(rc));
        return rc < 0 ? rc : store__map_rc(rc);
    }
    for (int i = 0; i < c.nviews; i++) /* a view's id is below the counter, whatever it says */
        if (c.views[i].id >= c.next_view_id)
            c.next_view_id = c.views[i].id + 1;
    if (c.next_view_id < st->cat.next_view_id) /* ids handed out in a failed pass stay used */
        c.next_view_id = st->cat.next_view_id;
    store__catalog_free(&st->cat);
    st->cat = c;
    return 0;
}

/* ---- changes ------------------------------------------------------------------------------ */

/* A change needs the pass's write transaction, not poisoned. */
static int writable(store_txn *t)
{
    if (!t->write)
        return ERR_INVAL;
    return t->st->pass_err;
}

/* Puts a record (key: kind, name) from an encoded buffer. */
static int rec_put(store_txn *t, char kind, const char *name, size_t len, const enc *e)
{
    unsigned char key[1 + STORE_NAME_MAX];
    key[0] = (unsigned char)kind;
    memcpy(key + 1, name, len);
    MDB_val k = {1 + len, key}, v = {e->n, e->p};
    int rc = mdb_put(t->txn, t->st->catalog, &k, &v, 0);
    return rc ? store__fail(t, rc) : 0;
}

static int rec_del(store_txn *t, char kind, const char *name, size_t len)
{
    unsigned char key[1 + STORE_NAME_MAX];
    key[0] = (unsigned char)kind;
    memcpy(key + 1, name, len);
    MDB_val k = {1 + len, key};
    int rc = mdb_del(t->txn, t->st->catalog, &k, NULL);
    return rc ? store__fail(t, rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc) : 0;
}

/* Allocates e->p for what a counting pass measured; ERR_NOMEM. */
static int enc_alloc(enc *e, char *err, size_t errlen)
{
    e->p = try_malloc(e->n);
    if (!e->p) {
        snprintf(err, errlen, "out of memory for a catalog record of %zu bytes", e->n);
        return ERR_NOMEM;
    }
    e->n = 0;
    return 0;
}

static int check_name(const char *what, const char *name, size_t len, char *err, size_t errlen)
{
    if (valid_name(name, len))
        return 0;
    snprintf(err, errlen, "invalid %s name: names are 1 to %d printable ASCII characters "
             "without spaces or ':'", what, STORE_NAME_MAX);
    return ERR_INVAL;
}

int store_entity_create(store_txn *t, const char *name, size_t len, int key_type,
                        const char *desc, size_t dlen, char *err, size_t errlen)
{
    store *st = t->st;
    int pos, rc = writable(t);
    if (rc)
        return rc;
    if ((rc = check_name("entity", name, len, err, errlen)) != 0)
        return rc;
    if (key_type != STORE_KEY_STRING && key_type != STORE_KEY_INT64) {
        snprintf(err, errlen, "invalid TYPE for entity '%.*s': STRING or INT64", SHOW(name, len));
        return ERR_INVAL;
    }
    if (dlen > UINT32_MAX) {
        snprintf(err, errlen, "DESCRIPTION is too long");
        return ERR_INVAL;
    }
    if (find(st->cat.entities, st->cat.nentities, sizeof(store_entity), name, len, &pos) >= 0) {
        snprintf(err, errlen, "entity '%.*s' already exists", SHOW(name, len));
        return ERR_EXISTS;
    }
    enc e = {0};
    entity_encode(&e, key_type, desc, dlen);
    if ((rc = enc_alloc(&e, err, errlen)) != 0)
        return rc;
    entity_encode(&e, key_type, desc, dlen);
    store_entity en;
    MDB_val v = {e.n, e.p};
    if ((rc = reserve((void **)&st->cat.entities, st->cat.nentities, &st->cat.capentities,
                      sizeof en)) == 0 &&
        (rc = entity_decode(name, len, &v, &en)) == 0) {
        if ((rc = rec_put(t, 'e', name, len, &e)) == 0)
            insert(st->cat.entities, &st->cat.nentities, sizeof en, pos, &en);
        else
            entity_free(&en);
    }
    xfree(e.p);
    return rc;
}

int store_entity_drop(store_txn *t, const char *name, size_t len, char *err, size_t errlen)
{
    store *st = t->st;
    int rc = writable(t);
    if (rc)
        return rc;
    int i = find(st->cat.entities, st->cat.nentities, sizeof(store_entity), name, len, NULL);
    if (i < 0) {
        snprintf(err, errlen, "unknown entity '%.*s'", SHOW(name, len));
        return ERR_NOTFOUND;
    }
    for (int j = 0; j < st->cat.nviews; j++) {
        const store_view *v = &st->cat.views[j];
        for (int k = 0; k < v->nentities; k++) {
            if (name_cmp(name, len, v->entities[k]) == 0) {
                snprintf(err, errlen, "entity '%.*s' is used by view '%s'", SHOW(name, len),
                         v->name);
                return ERR_PERM;
            }
        }
    }
    if ((rc = rec_del(t, 'e', name, len)) != 0)
        return rc;
    entity_free(&st->cat.entities[i]);
    remove_at(st->cat.entities, &st->cat.nentities, sizeof(store_entity), i);
    return 0;
}

static int cmp_field_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The schema's checks (see store_view_create). */
static int check_fields(const store_view *spec, char *err, size_t errlen)
{
    if (spec->nfields < 1 || spec->nfields > FT_MAX_FIELDS || !spec->fields) {
        snprintf(err, errlen, "SCHEMA must have 1 to %d fields", FT_MAX_FIELDS);
        return ERR_INVAL;
    }
    for (int i = 0; i < spec->nfields; i++) {
        const store_field *f = &spec->fields[i];
        const char *n = f->name ? f->name : "";
        store_field norm;
        if (!valid_name(n, strlen(n))) {
            snprintf(err, errlen, "invalid field name in SCHEMA: names are 1 to %d printable "
                     "ASCII characters without spaces or ':'", STORE_NAME_MAX);
            return ERR_INVAL;
        }
        if (f->type.type < FT_INT32 || f->type.type > FT_VECTOR) {
            snprintf(err, errlen, "unknown type for field '%s' in SCHEMA", n);
            return ERR_INVAL;
        }
        field_norm(f, &norm);
        if (!field_ok(&norm)) {
            snprintf(err, errlen, "invalid VECTOR field '%s' in SCHEMA: dimension 1 to %d, "
                     "known METRIC and INDEX, M 2 to %d, EF_CONSTRUCTION 1 to %d", n,
                     FT_MAX_VECTOR_DIM, VEC_M_MAX, VEC_EF_MAX);
            return ERR_INVAL;
        }
    }
    char **names = try_malloc((size_t)spec->nfields * sizeof *names);
    if (!names)
        return ERR_NOMEM;
    for (int i = 0; i < spec->nfields; i++)
        names[i] = spec->fields[i].name;
    qsort(names, (size_t)spec->nfields, sizeof *names, cmp_field_names);
    int rc = 0;
    for (int i = 1; i < spec->nfields && !rc; i++) {
        if (strcmp(names[i - 1], names[i]) == 0) {
            snprintf(err, errlen, "duplicate field '%s' in SCHEMA", names[i]);
            rc = ERR_INVAL;
        }
    }
    xfree(names);
    return rc;
}

/* The view's checks; fills key_types[0..nentities) from the entities. */
static int check_view(store *st, const store_view *spec, int *key_types, char *err,
                      size_t errlen)
{
    for (int i = 0; i < spec->nentities; i++) {
        const char *en = spec->entities[i] ? spec->entities[i] : "";
        size_t elen = strlen(en);
        int j = find(st->cat.entities, st->cat.nentities, sizeof(store_entity), en, elen, NULL);
        if (j < 0) {
            snprintf(err, errlen, "unknown entity '%.*s' in ENTITIES", SHOW(en, elen));
            return ERR_INVAL;
        }
        key_types[i] = st->cat.entities[j].key_type;
        for (int k = 0; k < i; k++) {
            if (strcmp(spec->entities[k], en) == 0) {
                snprintf(err, errlen, "duplicate entity '%s' in ENTITIES", en);
                return ERR_INVAL;
            }
        }
    }
    if (spec->ttl_us < 0 || spec->retention_us < 0) {
        snprintf(err, errlen, "%s must be >= 0", spec->ttl_us < 0 ? "TTL" : "RETENTION");
        return ERR_INVAL;
    }
    return check_fields(spec, err, errlen);
}

/* Creates the view's column family; one that exists is an orphan of a crash: replaced. */
static int create_cf(store *st, uint32_t id, int64_t retention_us, char *err, size_t errlen)
{
    int rc = store_hist_create_view(st->hist, id, retention_us);
    if (rc == ERR_EXISTS) {
        log_warn("catalog: view id %u has an orphan history column family: dropped",
                 (unsigned)id);
        rc = store_hist_drop_view(st->hist, id);
        if (rc == 0)
            rc = store_hist_create_view(st->hist, id, retention_us);
    }
    if (rc)
        snprintf(err, errlen, "history: cannot create the view's column family: %s",
                 err_str(rc));
    return rc;
}

int store_view_create(store_txn *t, const store_view *spec, char *err, size_t errlen)
{
    store *st = t->st;
    int pos, rc = writable(t);
    const char *name = spec->name ? spec->name : "";
    size_t len = strlen(name);
    if (rc)
        return rc;
    if ((rc = check_name("view", name, len, err, errlen)) != 0)
        return rc;
    if (find(st->cat.views, st->cat.nviews, sizeof(store_view), name, len, &pos) >= 0) {
        snprintf(err, errlen, "view '%s' already exists", name);
        return ERR_EXISTS;
    }
    if (spec->nentities < 1 || spec->nentities > ENTITIES_MAX || !spec->entities) {
        snprintf(err, errlen, "ENTITIES must name 1 to %d entities", ENTITIES_MAX);
        return ERR_INVAL;
    }
    if (st->cat.next_view_id == UINT32_MAX) {
        snprintf(err, errlen, "no view ids left");
        return ERR_LIMIT;
    }
    int *key_types = try_malloc((size_t)spec->nentities * sizeof *key_types);
    enc e = {0};
    uint32_t id = st->cat.next_view_id;
    int64_t created_ms = clock_ms();
    if (!key_types)
        return ERR_NOMEM;
    if ((rc = check_view(st, spec, key_types, err, errlen)) != 0)
        goto done;
    /* every allocation before the first change: nothing can fail half-way for memory */
    if ((rc = reserve((void **)&st->cat.views, st->cat.nviews, &st->cat.capviews,
                      sizeof(store_view))) != 0 ||
        (rc = store__ids_reserve(&st->created)) != 0)
        goto done;
    view_encode(&e, spec, id, key_types, created_ms);
    if ((rc = enc_alloc(&e, err, errlen)) != 0)
        goto done;
    view_encode(&e, spec, id, key_types, created_ms);
    store_view v;
    MDB_val val = {e.n, e.p};
    if ((rc = view_decode(name, len, &val, &v)) != 0)
        goto done;
    if ((rc = create_cf(st, id, spec->retention_us, err, errlen)) != 0) {
        view_free(&v);
        goto done;
    }
    store__ids_add(&st->created, id); /* dropped again if the pass fails */
    unsigned char ctr[8];
    enc c = {ctr, 0};
    put_le(&c, id + 1, 4);
    put_crc(&c);
    MDB_val ck = {sizeof COUNTER_KEY - 1, COUNTER_KEY}, cv = {c.n, ctr};
    if ((rc = rec_put(t, 'v', name, len, &e)) == 0 &&
        (rc = mdb_put(t->txn, st->catalog, &ck, &cv, 0)) != 0)
        rc = store__fail(t, rc);
    if (rc) {
        view_free(&v);
        goto done;
    }
    st->cat.next_view_id = id + 1;
    insert(st->cat.views, &st->cat.nviews, sizeof v, pos, &v);
done:
    xfree(key_types);
    xfree(e.p);
    return rc;
}

int store_view_drop(store_txn *t, const char *name, size_t len, char *err, size_t errlen)
{
    store *st = t->st;
    int rc = writable(t);
    if (rc)
        return rc;
    int i = find(st->cat.views, st->cat.nviews, sizeof(store_view), name, len, NULL);
    if (i < 0) {
        snprintf(err, errlen, "unknown view '%.*s'", SHOW(name, len));
        return ERR_NOTFOUND;
    }
    for (int j = 0; j < st->cat.nservices; j++) {
        const store_service *s = &st->cat.services[j];
        for (int k = 0; k < s->n; k++) {
            if (name_cmp(name, len, s->features[k].view) == 0) {
                snprintf(err, errlen, "view '%.*s' is used by service '%s'", SHOW(name, len),
                         s->name);
                return ERR_PERM;
            }
        }
    }
    uint32_t id = st->cat.views[i].id;
    if ((rc = store__ids_reserve(&st->drops)) != 0 || (rc = rec_del(t, 'v', name, len)) != 0 ||
        (rc = store__online_clear(t, id)) != 0)
        return rc;
    store__ids_add(&st->drops, id);
    view_free(&st->cat.views[i]);
    remove_at(st->cat.views, &st->cat.nviews, sizeof(store_view), i);
    return 0;
}

/* Every feature names a view and, unless field is NULL, one of its fields. */
static int check_features(store *st, int n, const store_feature_ref *features, char *err,
                          size_t errlen)
{
    if (n < 1 || !features) {
        snprintf(err, errlen, "FEATURES must name at least one feature");
        return ERR_INVAL;
    }
    for (int i = 0; i < n; i++) {
        const char *vn = features[i].view ? features[i].view : "";
        const char *fn = features[i].field;
        const store_view *v = store_view_get(st, vn, strlen(vn));
        if (!v) {
            snprintf(err, errlen, "unknown view '%.*s' in FEATURES", SHOW(vn, strlen(vn)));
            return ERR_INVAL;
        }
        if (fn && store_view_field(v, fn, strlen(fn)) < 0) {
            snprintf(err, errlen, "unknown field '%.*s' of view '%s' in FEATURES",
                     SHOW(fn, strlen(fn)), v->name);
            return ERR_INVAL;
        }
    }
    return 0;
}

int store_service_create(store_txn *t, const char *name, size_t len, int n,
                         const store_feature_ref *features, char *err, size_t errlen)
{
    store *st = t->st;
    int pos, rc = writable(t);
    if (rc)
        return rc;
    if ((rc = check_name("service", name, len, err, errlen)) != 0)
        return rc;
    if (find(st->cat.services, st->cat.nservices, sizeof(store_service), name, len, &pos) >= 0) {
        snprintf(err, errlen, "service '%.*s' already exists", SHOW(name, len));
        return ERR_EXISTS;
    }
    if ((rc = check_features(st, n, features, err, errlen)) != 0)
        return rc;
    enc e = {0};
    service_encode(&e, n, features);
    if ((rc = enc_alloc(&e, err, errlen)) != 0)
        return rc;
    service_encode(&e, n, features);
    store_service s;
    MDB_val v = {e.n, e.p};
    if ((rc = reserve((void **)&st->cat.services, st->cat.nservices, &st->cat.capservices,
                      sizeof s)) == 0 &&
        (rc = service_decode(name, len, &v, &s)) == 0) {
        if ((rc = rec_put(t, 's', name, len, &e)) == 0)
            insert(st->cat.services, &st->cat.nservices, sizeof s, pos, &s);
        else
            service_free(&s);
    }
    xfree(e.p);
    return rc;
}

int store_service_drop(store_txn *t, const char *name, size_t len, char *err, size_t errlen)
{
    store *st = t->st;
    int rc = writable(t);
    if (rc)
        return rc;
    int i = find(st->cat.services, st->cat.nservices, sizeof(store_service), name, len, NULL);
    if (i < 0) {
        snprintf(err, errlen, "unknown service '%.*s'", SHOW(name, len));
        return ERR_NOTFOUND;
    }
    if ((rc = rec_del(t, 's', name, len)) != 0)
        return rc;
    service_free(&st->cat.services[i]);
    remove_at(st->cat.services, &st->cat.nservices, sizeof(store_service), i);
    return 0;
}

/* ---- lookups ------------------------------------------------------------------------------ */

const store_entity *store_entity_get(const store *st, const char *name, size_t len)
{
    int i = find(st->cat.entities, st->cat.nentities, sizeof(store_entity), name, len, NULL);
    return i < 0 ? NULL : &st->cat.entities[i];
}

const store_view *store_view_get(const store *st, const char *name, size_t len)
{
    int i = find(st->cat.views, st->cat.nviews, sizeof(store_view), name, len, NULL);
    return i < 0 ? NULL : &st->cat.views[i];
}

const store_service *store_service_get(const store *st, const char *name, size_t len)
{
    int i = find(st->cat.services, st->cat.nservices, sizeof(store_service), name, len, NULL);
    return i < 0 ? NULL : &st->cat.services[i];
}

int store_entity_count(const store *st)
{
    return st->cat.nentities;
}

const store_entity *store_entity_at(const store *st, int i)
{
    return i >= 0 && i < st->cat.nentities ? &st->cat.entities[i] : NULL;
}

int store_view_count(const store *st)
{
    return st->cat.nviews;
}

const store_view *store_view_at(const store *st, int i)
{
    return i >= 0 && i < st->cat.nviews ? &st->cat.views[i] : NULL;
}

int store_service_count(const store *st)
{
    return st->cat.nservices;
}

const store_service *store_service_at(const store *st, int i)
{
    return i >= 0 && i < st->cat.nservices ? &st->cat.services[i] : NULL;
}

int store_view_field(const store_view *v, const char *name, size_t len)
{
    for (int i = 0; i < v->nfields; i++)
        if (name_cmp(name, len, v->fields[i].name) == 0)
            return i;
    return -1;
}
