/* gpu_probe.c: whether this server may use a CUDA device, decided once at start from the
 * `gpu` option. The CUDA library (index/gpu/) is not linked in: where the build found nvcc
 * the Makefile names its shared object (QUIVER_GPU_LIB; see library_path() for the others)
 * and the probe dlopen()s it, so the server, its tests and the sanitizer builds carry no CUDA
 * dependency, and a machine without the library or a device runs exactly as before. What
 * the probe found is reported by INFO's gpu section. No index searches on the GPU yet. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "index/gpu/gpu.h"
#include "index/index.h"

static index_gpu_info probed = {.reason = "not probed"}; /* written once, at start */

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
    int (*query)(int, gpu_device_info *, char *, size_t);
    *(void **)&query = dlsym(lib, "gpu_device_query"); /* POSIX's way to a function pointer */
    if (!query) {
        snprintf(probed.reason, sizeof probed.reason, "the library lacks gpu_device_query");
        return ERR_GPU;
    }
    gpu_device_info info;
    char detail[256];
    if (query(0, &info, detail, sizeof detail) != GPU_OK) {
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
