/* err.c: names for the error codes of err.h. */
#include "err.h"

const char *err_str(int code)
{
    switch (code) {
    case ERR_OK: return "ok";
    case ERR_NOMEM: return "out of memory";
    case ERR_NOTFOUND: return "not found";
    case ERR_AGAIN: return "try again";
    case ERR_PROTO: return "protocol error";
    case ERR_WRONGTYPE: return "wrong type";
    case ERR_CORRUPT: return "corrupt data";
    case ERR_IO: return "I/O error";
    case ERR_BACKEND: return "storage backend error";
    case ERR_GPU: return "GPU error";
    case ERR_INVAL: return "invalid argument";
    case ERR_RANGE: return "out of range";
    case ERR_EXISTS: return "already exists";
    case ERR_FULL: return "storage full";
    case ERR_LIMIT: return "limit reached";
    case ERR_PERM: return "not permitted";
    }
    return "unknown error";
}
