/* fuzz_records.c: libFuzzer target for the feature store's stored records: the catalog's
 * entity, view and service records and its view id counter (store/catalog.c, store.h
 * ON-DISK FORMAT), and entity keys as stored in online and history keys (store/online.c).
 * The first byte picks what the rest is:
 *   0: a catalog record: u8 key length, the LMDB key, then the value without its last 4
 *      bytes (the target appends the CRC32C, so that mutations reach the fields);
 *   1: the same, with the value taken as is;
 *   2: stored entity key bytes.
 * A catalog record must decode or return ERR_CORRUPT leaving the catalog as it was; a decoded
 * one must hold only what the creating commands accept (valid names, known key types, field
 * types and vector options in range) and encode back to exactly the bytes it came from. Any
 * bytes must format as an entity key without trouble; a well-formed one (u16 lengths that add
 * up), parsed back from its formatted text against a view of as many entities, must give the
 * same bytes. Any breach aborts; ASan's leak check covers the decoders' frees. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/util.h"
#include "store/store_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_records: %s\n", what);
        abort();
    }
}

static void check_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    check(n >= 1 && n <= STORE_NAME_MAX, "a decoded name of a bad length");
    for (size_t i = 0; i < n; i++)
        check(s[i] > ' ' && s[i] <= '~' && s[i] != ':', "a decoded name with a bad byte");
}

static void check_view(const store_view *v)
{
    check(v->nentities >= 1 && v->nfields >= 1 && v->nfields <= FT_MAX_FIELDS,
          "a decoded view with a bad count");
    check(v->online == 0 || v->online == 1, "a decoded view's ONLINE not 0 or 1");
    check(v->ttl_us >= 0 && v->retention_us >= 0, "a decoded view with a negative duration");
    for (int i = 0; i < v->nentities; i++) {
        check_name(v->entities[i]);
        check(v->key_types[i] == STORE_KEY_STRING || v->key_types[i] == STORE_KEY_INT64,
              "a decoded view with a bad key type");
    }
    for (int i = 0; i < v->nfields; i++) {
        const store_field *f = &v->fields[i];
        check_name(f->name);
        check(f->type.type >= FT_INT32 && f->type.type <= FT_VECTOR, "a bad field type");
        check(v->schema[i].type == f->type.type && v->schema[i].dim == f->type.dim,
              "schema differs from the fields");
        if (f->type.type == FT_VECTOR)
            check(f->type.dim >= 1 && f->type.dim <= FT_MAX_VECTOR_DIM, "a bad vector dim");
    }
}

/* The entry that decoding added, checked and encoded back. */
static void check_decoded(const store__catalog *c, char kind, const MDB_val *v)
{
    if (kind == 'e') {
        check_name(c->entities[0].name);
        check(c->entities[0].key_type == STORE_KEY_STRING ||
                  c->entities[0].key_type == STORE_KEY_INT64, "a bad entity key type");
    } else if (kind == 'v') {
        check_name(c->views[0].name);
        check_view(&c->views[0]);
    } else {
        const store_service *s = &c->services[0];
        check_name(s->name);
        check(s->n >= 1, "a service without features");
        for (int i = 0; i < s->n; i++) {
            check_name(s->features[i].view);
            if (s->features[i].field)
                check_name(s->features[i].field);
        }
    }
    buf out;
    buf_init(&out);
    store__catalog_encode(c, kind, 0, &out);
    check(out.len == v->mv_size && memcmp(out.data, v->mv_data, out.len) == 0,
          "a decoded record encodes differently");
    buf_free(&out);
}

static void fuzz_catalog(const uint8_t *p, size_t len, int seal)
{
    if (len < 1 || (size_t)p[0] + 1 > len)
        return;
    MDB_val k = {p[0], (void *)(p + 1)};
    size_t vlen = len - 1 - p[0];
    char *val = malloc(vlen + 4);
    check(val != NULL, "out of memory");
    memcpy(val, p + 1 + p[0], vlen);
    if (seal) {
        uint32_t crc = crc32c(0, val, vlen);
        for (int i = 0; i < 4; i++)
            val[vlen + (size_t)i] = (char)(crc >> (8 * i));
        vlen += 4;
    }
    MDB_val v = {vlen, val};
    store__catalog c = {.next_view_id = 1};
    int rc = store__catalog_decode(&c, &k, &v);
    int total = c.nentities + c.nviews + c.nservices;
    if (rc) {
        check(rc == ERR_CORRUPT, "decode returned a code other than ERR_CORRUPT");
        check(total == 0 && c.next_view_id == 1, "a refused record changed the catalog");
    } else if (total == 0) {
        check(c.next_view_id >= 1, "a decoded view id counter of 0");
    } else {
        check(total == 1, "one record decoded into several entries");
        check_decoded(&c, c.nentities ? 'e' : c.nviews ? 'v' : 's', &v);
    }
    store__catalog_free(&c);
    free(val);
}

/* The number of parts if ekey's u16 lengths add up exactly, else 0. */
static int ekey_parts(const char *ekey, size_t len)
{
    int n = 0;
    size_t i = 0;
    while (i < len) {
        if (len - i < 2)
            return 0;
        size_t part = ((size_t)(unsigned char)ekey[i] << 8) | (unsigned char)ekey[i + 1];
        if (part > len - i - 2)
            return 0;
        i += 2 + part;
        n++;
    }
    return n;
}

static void fuzz_ekey(const char *p, size_t len)
{
    buf text, back;
    buf_init(&text);
    buf_init(&back);
    store_ekey_format(p, len, &text);
    check(text.len <= 2 * len, "formatted entity key longer than twice its bytes");
    int n = ekey_parts(p, len);
    if (n > 0 && len <= STORE_EKEY_MAX) {
        char *names[STORE_EKEY_MAX / 2];
        int types[STORE_EKEY_MAX / 2];
        for (int i = 0; i < n; i++) {
            names[i] = "e";
            types[i] = STORE_KEY_STRING;
        }
        store_view v = {.name = "v", .nentities = n, .entities = names, .key_types = types};
        char err[256];
        int rc = store_ekey_parse(&v, text.data ? text.data : "", text.len, &back, err,
                                  sizeof err);
        check(rc == 0, "a formatted entity key fails to parse");
        check(back.len == len && memcmp(back.data, p, len) == 0,
              "entity key changed through format and parse");
    }
    buf_free(&text);
    buf_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *p = data + 1;
    size_t len = size - 1;
    switch (data[0] % 3) {
    case 0: fuzz_catalog(p, len, 1); break;
    case 1: fuzz_catalog(p, len, 0); break;
    default: fuzz_ekey((const char *)p, len); break;
    }
    return 0;
}
