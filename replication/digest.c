/* digest.c: QUIVER.DIGEST, one hash of everything a client can read (every live key with
 * its type, value and expiry, the feature store's catalog, online rows and history), the
 * same on a leader and on replicas that have caught up. The hash is a sum of per-record
 * hashes, so it does not depend on the order records are stored in (hash ids and long-key
 * digests differ between servers; the data does not). Runs on the loop thread: a check for
 * tests and operators, in the time a full read takes. */
#include "replication/repl_int.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"

typedef struct digest {
    uint64_t sum;
    buf rec;
} digest;

static void rec_add(digest *d, const void *p, size_t n)
{
    uint64_t len = n;
    buf_append(&d->rec, &len, sizeof len);
    buf_append(&d->rec, p, n);
}

static void rec_i64(digest *d, int64_t v)
{
    rec_add(d, &v, sizeof v);
}

static void rec_end(digest *d)
{
    d->sum += hash_bytes(d->rec.data, d->rec.len, 0x51d1);
    d->rec.len = 0;
}

static int digest_hash_fields(store_txn *t, const store_obj *o, uint64_t *out)
{
    store_iter *it;
    int rc = store_iter_fields(t, o, NULL, 0, &it);
    if (rc)
        return rc;
    const char *f, *v;
    size_t fl, vl;
    uint64_t sum = 0;
    while ((rc = store_iter_next_field(it, &f, &fl, &v, &vl)) == 0)
        sum += hash_bytes(f, fl, 1) * 31 + hash_bytes(v, vl, 2);
    store_iter_free(it);
    *out = sum;
    return rc == ERR_NOTFOUND ? 0 : rc;
}

static int digest_keys(digest *d, store_txn *t, int64_t now)
{
    for (int db = 0; db < STORE_DBS; db++) {
        store_iter *it;
        int rc = store_iter_keys(t, db, NULL, 0, now, &it);
        if (rc)
            return rc;
        const char *k;
        size_t kl;
        store_obj o;
        while ((rc = store_iter_next(it, &k, &kl, &o)) == 0) {
            rec_i64(d, db);
            rec_add(d, k, kl);
            rec_i64(d, o.type);
            rec_i64(d, o.expire_ms);
            if (o.type == STORE_STRING) {
                rec_add(d, o.val, o.len);
            } else {
                uint64_t fields;
                if ((rc = digest_hash_fields(t, &o, &fields)) != 0)
                    break;
                rec_i64(d, (int64_t)fields);
            }
            rec_end(d);
        }
        store_iter_free(it);
        if (rc != ERR_NOTFOUND)
            return rc;
    }
    return 0;
}

static void digest_catalog(digest *d)
{
    for (int i = 0; i < store_entity_count(srv.store); i++) {
        const store_entity *e = store_entity_at(srv.store, i);
        rec_add(d, "e", 1);
        rec_add(d, e->name, strlen(e->name));
        rec_i64(d, e->key_type);
        rec_add(d, e->description, strlen(e->description));
        rec_end(d);
    }
    for (int i = 0; i < store_view_count(srv.store); i++) {
        const store_view *v = store_view_at(srv.store, i);
        rec_add(d, "v", 1);
        rec_add(d, v->name, strlen(v->name));
        rec_i64(d, v->id);
        rec_i64(d, v->ttl_us);
        rec_i64(d, v->retention_us);
        rec_i64(d, v->online);
        for (int j = 0; j < v->nentities; j++)
            rec_add(d, v->entities[j], strlen(v->entities[j]));
        for (int j = 0; j < v->nfields; j++) {
            const store_field *f = &v->fields[j];
            rec_add(d, f->name, strlen(f->name));
            rec_i64(d, f->type.type);
            rec_i64(d, (int64_t)f->type.dim);
            rec_i64(d, f->metric);
            rec_i64(d, f->vindex);
        }
        rec_end(d);
    }
    for (int i = 0; i < store_service_count(srv.store); i++) {
        const store_service *s = store_service_at(srv.store, i);
        rec_add(d, "s", 1);
        rec_add(d, s->name, strlen(s->name));
        for (int j = 0; j < s->n; j++) {
            rec_add(d, s->features[j].view, strlen(s->features[j].view));
            rec_add(d, s->features[j].field ? s->features[j].field : "",
                    s->features[j].field ? strlen(s->features[j].field) : 0);
        }
        rec_end(d);
    }
}

static int digest_online(digest *d, store_txn *t, const store_view *v)
{
    store_oiter *it;
    int rc = store_online_iter(t, v, &it);
    if (rc)
        return rc;
    const char *ek, *row;
    size_t el, rl;
    int64_t ev, cr;
    while ((rc = store_oiter_next(it, &ek, &el, &ev, &cr, &row, &rl)) == 0) {
        rec_add(d, "o", 1);
        rec_i64(d, v->id);
        rec_add(d, ek, el);
        rec_i64(d, ev);
        rec_i64(d, cr);
        rec_add(d, row, rl);
        rec_end(d);
    }
    store_oiter_free(it);
    return rc == ERR_NOTFOUND ? 0 : rc;
}

static int digest_history(digest *d, store_hist *h, const store_view *v)
{
    store_hcur *c;
    int rc = store_hcur_new(h, v->id, &c);
    if (rc)
        return rc;
    while ((rc = store_hcur_next_entity(c)) == 0) {
        do {
            const char *ek, *row;
            size_t el, rl;
            int64_t ev, cr;
            store_hcur_row(c, &ek, &el, &ev, &cr, &row, &rl);
            rec_add(d, "h", 1);
            rec_i64(d, v->id);
            rec_add(d, ek, el);
            rec_i64(d, ev);
            rec_i64(d, cr);
            rec_add(d, row, rl);
            rec_end(d);
        } while ((rc = store_hcur_next(c)) == 0);
        if (rc != ERR_NOTFOUND)
            break;
    }
    store_hcur_free(c);
    return rc == ERR_NOTFOUND ? 0 : rc;
}

void cmd_quiver_digest(client *c)
{
    digest d = {0, {0}};
    buf_init(&d.rec);
    store_txn *t;
    store_hist *h;
    int rc = store_history(srv.store, &h);
    if (!rc)
        rc = store_txn_read(srv.store, &t);
    if (!rc)
        rc = digest_keys(&d, t, clock_ms());
    if (!rc)
        digest_catalog(&d);
    for (int i = 0; !rc && i < store_view_count(srv.store); i++) {
        const store_view *v = store_view_at(srv.store, i);
        rc = digest_online(&d, t, v);
        if (!rc)
            rc = digest_history(&d, h, v);
    }
    buf_free(&d.rec);
    if (rc) {
        reply_store_error(c, rc);
        return;
    }
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)d.sum);
    reply_bulk(c, hex, 16);
}
