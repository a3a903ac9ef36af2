/* snapframe.c: the frames of a full-sync snapshot (repl.h SNAPSHOT FORMAT): a type, a name
 * and a payload, each frame checked by its CRC32C so that a damaged transfer is refused
 * rather than loaded. */
#include "replication/repl_int.h"

#include <string.h>

size_t frame_begin(buf *out, int type, const char *name, size_t nlen)
{
    size_t start = out->len;
    unsigned char h[FRAME_HEAD_LEN] = {(unsigned char)type};
    uint16_t nl = (uint16_t)nlen;
    memcpy(h + 1, &nl, 2);
    buf_append(out, h, sizeof h);
    buf_append(out, name, nlen);
    return start;
}

void frame_finish(buf *out, size_t start)
{
    uint16_t nl;
    memcpy(&nl, out->data + start + 1, 2);
    uint32_t pl = (uint32_t)(out->len - start - FRAME_HEAD_LEN - nl);
    memcpy(out->data + start + 3, &pl, 4);
    uint32_t crc = crc32c(0, out->data + start, out->len - start);
    buf_append(out, &crc, 4);
}

void frame_put(buf *out, int type, const char *name, size_t nlen, const void *p, size_t n)
{
    size_t start = frame_begin(out, type, name, nlen);
    buf_append(out, p, n);
    frame_finish(out, start);
}

int frame_get(const char *p, size_t len, int *type, const char **name, size_t *nlen,
              const char **payload, size_t *plen, size_t *size)
{
    if (len < FRAME_HEAD_LEN)
        return 1;
    uint16_t nl;
    uint32_t pl, crc;
    memcpy(&nl, p + 1, 2);
    memcpy(&pl, p + 3, 4);
    if (pl > REPL_FRAME_MAX || p[0] < FRAME_HEADER || p[0] > FRAME_END)
        return -1;
    size_t total = FRAME_HEAD_LEN + (size_t)nl + pl + 4;
    if (len < total)
        return 1;
    memcpy(&crc, p + total - 4, 4);
    if (crc32c(0, p, total - 4) != crc)
        return -1;
    *type = p[0];
    *name = p + FRAME_HEAD_LEN;
    *nlen = nl;
    *payload = p + FRAME_HEAD_LEN + nl;
    *plen = pl;
    *size = total;
    return 0;
}

int frame_record(const char **p, size_t *n, const char **key, size_t *klen, const char **val,
                 size_t *vlen)
{
    if (*n == 0)
        return 1;
    uint32_t kl, vl;
    if (*n < 4)
        return -1;
    memcpy(&kl, *p, 4);
    if (*n - 4 < kl || *n - 4 - kl < 4)
        return -1;
    memcpy(&vl, *p + 4 + kl, 4);
    if (*n - 8 - kl < vl)
        return -1;
    *key = *p + 4;
    *klen = kl;
    *val = *p + 8 + kl;
    *vlen = vl;
    *p += 8 + (size_t)kl + vl;
    *n -= 8 + (size_t)kl + vl;
    return 0;
}
