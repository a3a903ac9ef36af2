/* gpu_probe.c: whether this server may use a CUDA device, decided once at start from the
 * `gpu` option. The CUDA library (index/gpu/) is not linked in: where the build found nvcc
 * the Makefile names its shared object (QUIVER_GPU_LIB; see library_path() for the others)
 * and the probe dlopen()s it, so the server, its tests and the sanitizer builds carry no CUDA
 * dependency, and a machine without the library or a device runs exactly as before.
 * What the probe found is reported by INFO's gpu section. After a successful probe every
 * function of gpu.h is reachable through one table (vec__gpu(), index_int.h), which the
 * FLAT index's device mirror (gpu_mirror.c) and vec_gpu_knn_graph (below: the kNN lists of
 * an HNSW bulk build) use; a library lacking one is not used. */
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "index/index_int.h"

static index_gpu_info probed = {.reason = "not probed"}; /* written once, at start */
static vec__gpu_api api;                                  /* filled by the same probe */

static const struct {
    const char *symbol;
    size_t offset;
} functions[] = {
#define X(name) {"gpu_" #name, offsetof(vec__gpu_api, name)},
    VEC__GPU_FUNCS(X)
#undef X
};

/* Fills api from lib; 0, or ERR_GPU naming the first function missing. */
static int resolve(void *lib)
{
    for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
        void *f = dlsym(lib, functions[i].symbol);
        if (!f) {
            snprintf(probed.reason, sizeof probed.reason, "the library lacks %s",
                     functions[i].symbol);
            return ERR_GPU;
        }
        /* POSIX's way from a data pointer to a function pointer */
        memcpy((char *)&api + functions[i].offset, &f, sizeof f);
    }
    return 0;
}

/* Where the library is: $QUIVER_GPU_LIB, else beside the executable (an installed server, as
 * the CUDA container image has it), else where this build put it; NULL if none applies. */
static const char *library_path(char *buf, size_t len)
{
    static const char name[] = "libquivergpu.so";
    const char *env = getenv("QUIVER_GPU_LIB");
    if (env && *env)
        return env;
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    char *slash = n > 0 ? memrchr(buf, '/', (size_t)n) : NULL;
    if (slash && (size_t)(slash + 1 - buf) + sizeof name <= len) {
        memcpy(slash + 1, name, sizeof name);
        if (access(buf, R_OK) == 0)
            return buf;
    }
#ifdef QUIVER_GPU_LIB
    return QUIVER_GPU_LIB;
#else
    return NULL;
#endif
}

/* Fills probed from the library's device query; 0 when a device answered. */
static int query_device(void)
{
    char buf[sizeof probed.library];
    const char *path = library_path(buf, sizeof buf);
    if (!path) {
        snprintf(probed.reason, sizeof probed.reason, "built without CUDA (no nvcc, or GPU=0)");
        return ERR_GPU;
    }
    snprintf(probed.library, sizeof probed.library, "%s", path);
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(probed.reason, sizeof probed.reason, "cannot load %s: %s", path, dlerror());
        return ERR_GPU;
    }
    /* The library stays loaded, device or not: CUDA's libraries keep static state (their
     * own libstdc++'s exception pools) that an unload would leave unreachable: a leak. */
    if (resolve(lib))
        return ERR_GPU;
    gpu_device_info info;
    char detail[256];
    if (api.device_query(0, &info, detail, sizeof detail) != GPU_OK) {
        snprintf(probed.reason, sizeof probed.reason, "no CUDA device (%s)", detail);
        return ERR_GPU;
    }
    snprintf(probed.device, sizeof probed.device, "%s", info.name);
    probed.total_mem = info.total_mem;
    probed.free_mem = info.free_mem;
    probed.reason[0] = '\0';
    return 0;
}

int index_gpu_probe(int mode, char *err, size_t errlen)
{
    probed.mode = mode;
    probed.enabled = 0;
    if (mode == INDEX_GPU_NO) {
        snprintf(probed.reason, sizeof probed.reason, "gpu no");
        return 0;
    }
    probed.enabled = query_device() == 0;
    if (!probed.enabled && mode == INDEX_GPU_YES) {
        snprintf(err, errlen, "gpu yes: %s", probed.reason);
        return ERR_GPU;
    }
    return 0;
}

void index_gpu_get(index_gpu_info *out)
{
    *out = probed;
}

const vec__gpu_api *vec__gpu(void)
{
    return probed.enabled ? &api : NULL;
}

int vec_gpu_knn_graph(int metric, const float *vecs, uint32_t n, uint32_t dim, uint32_t k,
                      uint32_t *out, char *err, size_t errlen)
{
    const vec__gpu_api *g = vec__gpu();
    if (!g) {
        snprintf(err, errlen, "the GPU is disabled");
        return ERR_GPU;
    }
    char detail[256] = "";
    int rc = g->knn_graph(0, vecs, n, dim, metric, k, out, detail, sizeof detail);
    if (rc)
        snprintf(err, errlen, "gpu_knn_graph: %s (%s)", g->strerror(rc), detail);
    return rc ? ERR_GPU : 0;
}
