/* err.h: the one error convention of Quiver.
 *
 * Every function that can fail returns int: 0 on success, or one of the negative codes
 * below. Results travel through out-parameters; human detail, where there is any, goes
 * into a caller-supplied buffer. Each library's own convention (LMDB's rc, errno, RocksDB's
 * errptr, FAISS's last error) is converted exactly once, in the adapter that calls it.
 *
 * The numeric values are part of no persisted format but are stable within a build; use the
 * names. err_str() returns a static string and never fails. */
#ifndef QUIVER_ERR_H
#define QUIVER_ERR_H

enum {
    ERR_OK = 0,
    ERR_NOMEM = -1,     /* allocation failed (only for client-sized allocations) */
    ERR_NOTFOUND = -2,  /* no such key, field, entity, ... */
    ERR_AGAIN = -3,     /* not ready yet: need more input, retry later */
    ERR_PROTO = -4,     /* malformed protocol bytes */
    ERR_WRONGTYPE = -5, /* operation against a key holding the wrong kind of value */
    ERR_CORRUPT = -6,   /* stored bytes fail their checks */
    ERR_IO = -7,        /* operating system I/O failure (errno kept by the caller) */
    ERR_BACKEND = -8,   /* a storage library failed in a way not listed here */
    ERR_GPU = -9,       /* CUDA failure */
    ERR_INVAL = -10,    /* invalid argument */
    ERR_RANGE = -11,    /* a number out of range, or an overflow */
    ERR_EXISTS = -12,   /* already exists */
    ERR_FULL = -13,     /* storage is full (LMDB map full that could not be grown, disk full) */
    ERR_LIMIT = -14,    /* a configured limit was reached */
    ERR_PERM = -15,     /* not permitted */
};

const char *err_str(int code);

#endif
