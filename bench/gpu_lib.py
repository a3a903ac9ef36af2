"""gpu_lib.py: a ctypes binding of index/gpu/'s C API (index/gpu/gpu.h) for the benchmark.

Loads build/gpu/libquivergpu.so (or $QUIVER_GPU_LIB). Only what bench/gpu_bench.py uses:
device query, create / add / delete / search, the last search's times. Errors raise GpuError
with the library's status name and detail text.
"""
import ctypes
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_LIB = os.path.join(ROOT, "build", "gpu", "libquivergpu.so")

METRICS = {"L2": 1, "IP": 2, "COSINE": 3}
SEARCH_TF32 = 1
MAX_K = 1024
MAX_BATCH = 4096


class GpuError(Exception):
    def __init__(self, rc, detail):
        super().__init__(f"{detail} (status {rc})")
        self.rc = rc


class DeviceInfo(ctypes.Structure):
    _fields_ = [("device_count", ctypes.c_int), ("name", ctypes.c_char * 256),
                ("total_mem", ctypes.c_size_t), ("free_mem", ctypes.c_size_t),
                ("mem_bandwidth_gbs", ctypes.c_double), ("sm_count", ctypes.c_int),
                ("cc_major", ctypes.c_int), ("cc_minor", ctypes.c_int)]


def _declare(lib):
    p, u32, i32, u64 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint64
    sigs = {
        "gpu_device_query": (i32, [i32, ctypes.POINTER(DeviceInfo), ctypes.c_char_p, ctypes.c_size_t]),
        "gpu_strerror": (ctypes.c_char_p, [i32]),
        "gpu_index_create": (i32, [i32, u32, i32, ctypes.POINTER(p), ctypes.c_char_p, ctypes.c_size_t]),
        "gpu_index_free": (None, [p]),
        "gpu_index_error": (ctypes.c_char_p, [p]),
        "gpu_index_reserve": (i32, [p, u64]),
        "gpu_index_add": (i32, [p, p, p, ctypes.c_size_t, u32]),
        "gpu_index_delete": (i32, [p, p, ctypes.c_size_t]),
        "gpu_index_search": (i32, [p, p, u32, u32, u32, ctypes.c_uint, p, p]),
        "gpu_index_count": (u64, [p]),
        "gpu_index_device_bytes": (u64, [p]),
        "gpu_index_last_times": (None, [p, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args


def load(path=None):
    """The library, or raises OSError naming the path when it is not built."""
    path = path or os.environ.get("QUIVER_GPU_LIB") or DEFAULT_LIB
    lib = ctypes.CDLL(path)
    _declare(lib)
    return lib


def device_info(lib, device=0):
    """(DeviceInfo, None) or (None, detail) where there is no device."""
    info, detail = DeviceInfo(), ctypes.create_string_buffer(256)
    rc = lib.gpu_device_query(device, ctypes.byref(info), detail, len(detail))
    return (info, None) if rc == 0 else (None, detail.value.decode())


def _ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


class Index:
    """One gpu_index. Arrays go in as C-contiguous float32 / uint32."""

    def __init__(self, lib, dim, metric="L2", device=0):
        self.lib, self.dim, self.h = lib, dim, ctypes.c_void_p()
        detail = ctypes.create_string_buffer(256)
        rc = lib.gpu_index_create(device, dim, METRICS[metric], ctypes.byref(self.h), detail, len(detail))
        if rc:
            raise GpuError(rc, detail.value.decode())

    def _check(self, rc):
        if rc:
            raise GpuError(rc, self.lib.gpu_index_error(self.h).decode())

    def close(self):
        if self.h:
            self.lib.gpu_index_free(self.h)
            self.h = ctypes.c_void_p()

    def add(self, ids, vecs):
        ids = np.ascontiguousarray(ids, dtype=np.uint32)
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        self._check(self.lib.gpu_index_reserve(self.h, self.count() + len(ids)))
        self._check(self.lib.gpu_index_add(self.h, _ptr(ids), _ptr(vecs), len(ids), vecs.shape[1]))

    def delete(self, ids):
        ids = np.ascontiguousarray(ids, dtype=np.uint32)
        self._check(self.lib.gpu_index_delete(self.h, _ptr(ids), len(ids)))

    def search(self, queries, k, tf32=False):
        """(ids int64 [nq, k], distances float32 [nq, k])."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        nq = q.shape[0]
        ids = np.empty((nq, k), dtype=np.int64)
        dists = np.empty((nq, k), dtype=np.float32)
        self._check(self.lib.gpu_index_search(self.h, _ptr(q), nq, q.shape[1], k,
                                              SEARCH_TF32 if tf32 else 0, _ptr(ids), _ptr(dists)))
        return ids, dists

    def last_times(self):
        """(total ms, select ms) of the last search."""
        total, select = ctypes.c_double(), ctypes.c_double()
        self.lib.gpu_index_last_times(self.h, ctypes.byref(total), ctypes.byref(select))
        return total.value, select.value

    def count(self):
        return self.lib.gpu_index_count(self.h)

    def device_bytes(self):
        return self.lib.gpu_index_device_bytes(self.h)
