"""The `gpu yes|no|auto` option and INFO's gpu section (index/gpu_probe.c). On a machine
without a CUDA device (or without the library) the server must start exactly as before under
`auto` and `no`, say why the GPU is off, and refuse to start under `yes` with the reason.
Where a device exists the same tests check the other side (enabled, a device name).

Then FT.SEARCH served from the GPU in batches (query/gpu_batch.c, index/gpu_mirror.c), on
the CPU test double of the CUDA library (tests/gpu_fake/fake_gpu.c, built beside the server
binary as libquivergpu_fake.so, or named by QUIVER_GPU_FAKE): every answer must equal a
`gpu no` server's on the same data (random and fashion-mnist; L2, IP, COSINE; k 1, 10, 100,
1024; after deletes and overwrites; RETURN, SORTBY, LIMIT, RESP3), concurrent clients must
share batches, one client's pipelined queries must join one and be answered in order, injected device failures must fall back to the CPU with the same answers, and
clients that leave mid-batch must not hurt the server.
Run: PYTHONPATH=tests/integration /usr/bin/python3 -m unittest -v test_gpu"""
import os
import random
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import numpy as np

from harness import BINARY, ROOT, Server, free_port, wait_for

OWN_PROCESS = unittest.skipIf(os.environ.get("TEST_SERVER"), "needs a server of its own")


class InstalledServer(Server):
    """A Server run from a copy of the binary somewhere else."""

    def __init__(self, binary, **options):
        super().__init__(**options)
        self.binary = binary

    def args(self):
        return [self.binary] + super().args()[1:]


def gpu_info(r):
    """INFO gpu as a dict of str -> str."""
    return {k: str(v) for k, v in r.info("gpu").items()}


@OWN_PROCESS
class GpuOption(unittest.TestCase):
    def test_auto_is_the_default_and_says_why_when_off(self):
        with Server() as s:
            r = s.client()
            self.assertEqual(r.config_get("gpu"), {"gpu": "auto"})
            g = gpu_info(r)
            self.assertEqual(g["gpu_mode"], "auto")
            if g["gpu_enabled"] == "1":
                self.assertTrue(g["gpu_device"])
                self.assertGreater(int(g["gpu_memory_total"]), 0)
            else:
                self.assertTrue(g["gpu_disabled_reason"])
                self.assertNotIn("gpu_device", g)
            # The section is part of plain INFO.
            self.assertIn("gpu_enabled", r.info())
            r.set("k", "v")  # and the server serves
            self.assertEqual(r.get("k"), b"v")

    def test_no(self):
        with Server(gpu="no") as s:
            g = gpu_info(s.client())
            self.assertEqual(g["gpu_mode"], "no")
            self.assertEqual(g["gpu_enabled"], "0")
            self.assertEqual(g["gpu_disabled_reason"], "gpu no")

    def test_yes_refuses_to_start_without_a_device(self):
        with Server() as s:
            enabled = gpu_info(s.client())["gpu_enabled"] == "1"
        if enabled:
            with Server(gpu="yes") as s:
                self.assertEqual(gpu_info(s.client())["gpu_enabled"], "1")
            return
        with tempfile.TemporaryDirectory(prefix="quiver-test-") as d:
            out = subprocess.run([BINARY, "--port", str(free_port()), "--bind", "127.0.0.1",
                                  "--dir", os.path.join(d, "data"), "--gpu", "yes"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(b"cannot start: gpu yes: ", out.stdout)

    def test_unknown_value_is_a_config_error(self):
        out = subprocess.run([BINARY, "--port", "0", "--gpu", "maybe"], capture_output=True,
                             timeout=10)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(b"must be one of the following: no, yes, auto", out.stderr)

    def test_immutable(self):
        with Server() as s:
            r = s.client()
            with self.assertRaises(Exception) as e:
                r.config_set("gpu", "no")
            self.assertIn("immutable", str(e.exception))
            self.assertEqual(r.config_get("gpu"), {"gpu": "auto"})

    def test_missing_library_leaves_the_gpu_off(self):
        saved = os.environ.get("QUIVER_GPU_LIB")
        os.environ["QUIVER_GPU_LIB"] = "/nonexistent/libquivergpu.so"
        try:
            with Server() as s:
                g = gpu_info(s.client())
        finally:
            if saved is None:
                del os.environ["QUIVER_GPU_LIB"]
            else:
                os.environ["QUIVER_GPU_LIB"] = saved
        self.assertEqual(g["gpu_enabled"], "0")
        self.assertEqual(g["gpu_library"], "/nonexistent/libquivergpu.so")
        self.assertIn("cannot load /nonexistent/libquivergpu.so", g["gpu_disabled_reason"])

    def test_library_beside_the_executable_comes_first(self):
        """An installed server (the CUDA image) finds the library in its own directory."""
        with Server() as s:
            built = gpu_info(s.client())["gpu_library"]
        if not built:
            self.skipTest("this build has no index/gpu library (no nvcc, or GPU=0)")
        with tempfile.TemporaryDirectory(prefix="quiver-test-") as d:
            shutil.copy(BINARY, os.path.join(d, "quiver-server"))
            os.symlink(built, os.path.join(d, "libquivergpu.so"))
            with InstalledServer(os.path.join(d, "quiver-server")) as s:
                g = gpu_info(s.client())
        self.assertEqual(g["gpu_library"], os.path.join(d, "libquivergpu.so"))


# ---- FT.SEARCH on the (fake) GPU ---------------------------------------------------------

def fake_library():
    """The fake GPU library of this build: QUIVER_GPU_FAKE, else beside the server binary."""
    for path in (os.environ.get("QUIVER_GPU_FAKE"),
                 os.path.join(os.path.dirname(BINARY), "libquivergpu_fake.so"),
                 os.path.join(ROOT, "build", "release", "libquivergpu_fake.so")):
        if path and os.path.exists(path):
            return path
    return None


FAKE = fake_library()
NEEDS_FAKE = unittest.skipUnless(FAKE, "no libquivergpu_fake.so (make test builds it)")
DATA = os.path.join(ROOT, "..", "shared", "data", "vectors")


class GpuServer(Server):
    """A server whose GPU is the fake library; fault injection through env (fake_gpu.c)."""

    def __init__(self, fake_env=None, **options):
        opts = {"gpu": "yes", "gpu_min_vectors": 0}
        opts.update(options)
        super().__init__(**opts)
        self.env = dict(os.environ, QUIVER_GPU_LIB=FAKE)
        self.env.pop("QUIVER_FAKE_GPU_FAIL", None)
        self.env.update(fake_env or {})


def blob(v):
    return struct.pack("%df" % len(v), *v)


def create(r, name, metric, dim, prefix="d:"):
    r.execute_command("FT.CREATE", name, "PREFIX", 1, prefix, "SCHEMA", "v", "VECTOR", "FLAT",
                      6, "TYPE", "FLOAT32", "DIM", dim, "DISTANCE_METRIC", metric, "t", "TAG")


def knn(r, index, vec, k, *extra):
    """FT.SEARCH's KNN reply as [(key, distance)], nearest first."""
    res = r.execute_command("FT.SEARCH", index, "*=>[KNN %d @v $q AS d]" % k, "PARAMS", 2, "q",
                            blob(vec), "RETURN", 1, "d", "LIMIT", 0, k, "DIALECT", 2, *extra)
    return [(res[i], float(res[i + 1][1])) for i in range(1, len(res), 2)]


class GpuCase(unittest.TestCase):
    def assertSameHits(self, got, want, what=""):
        """Same distances (float rounding aside); the same keys, ties aside."""
        self.assertEqual(len(got), len(want), what)
        for i, ((gk, gd), (wk, wd)) in enumerate(zip(got, want)):
            tol = 1e-4 * abs(wd) + 1e-5
            self.assertLessEqual(abs(gd - wd), tol, (what, i, gd, wd))
            if gk != wk:
                tied = [d for _, d in want if abs(d - wd) <= tol]
                self.assertGreater(len(tied), 1, (what, i, gk, wk))

    def load(self, servers, vectors, prefix="d:", start=0):
        for s in servers:
            p = s.client().pipeline(transaction=False)
            for i, v in enumerate(vectors):
                p.hset("%s%d" % (prefix, start + i), mapping={"v": blob(v), "t": "t%d" % (i % 3)})
            p.execute()


@OWN_PROCESS
@NEEDS_FAKE
class GpuSearch(GpuCase):
    """The same answers as a `gpu no` server, through every change."""

    @classmethod
    def setUpClass(cls):
        cls.gpu = GpuServer().__enter__()
        cls.cpu = Server(gpu="no").__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.gpu.__exit__(None, None, None)
        cls.cpu.__exit__(None, None, None)

    def setUp(self):
        for s in (self.gpu, self.cpu):
            s.client().flushall()
            for name in s.client().execute_command("FT._LIST"):
                s.client().execute_command("FT.DROPINDEX", name)

    def compare(self, index, queries, ks, what):
        g, c = self.gpu.client(), self.cpu.client()
        for k in ks:
            for qi, q in enumerate(queries):
                self.assertSameHits(knn(g, index, q, k), knn(c, index, q, k),
                                    "%s k=%d query %d" % (what, k, qi))

    def test_random_all_metrics_with_changes(self):
        rnd = random.Random(5)
        dim = 24
        base = [[rnd.uniform(-1, 1) for _ in range(dim)] for _ in range(1500)]
        for s in (self.gpu, self.cpu):
            for m in ("L2", "IP", "COSINE"):
                create(s.client(), "i" + m, m, dim)
        self.load((self.gpu, self.cpu), base)
        queries = [[rnd.uniform(-1, 1) for _ in range(dim)] for _ in range(3)]
        before = gpu_info(self.gpu.client())
        for round_ in range(3):
            for m in ("L2", "IP", "COSINE"):
                self.compare("i" + m, queries, (1, 10, 100, 1024), "%s round %d" % (m, round_))
            # deletes, overwrites and new documents between searches
            for s in (self.gpu, self.cpu):
                r = s.client()
                r.delete(*["d:%d" % i for i in range(round_, 1500, 7)])
            over = [[rnd.uniform(-1, 1) for _ in range(dim)] for _ in range(100)]
            self.load((self.gpu, self.cpu), over, start=round_ * 11)
            new = [[rnd.uniform(-1, 1) for _ in range(dim)] for _ in range(50)]
            self.load((self.gpu, self.cpu), new, start=2000 + round_ * 50)
        after = gpu_info(self.gpu.client())
        self.assertEqual(int(after["gpu_indexes"]), 3)
        self.assertGreater(int(after["gpu_memory_used"]), 1500 * dim * 4 * 3)
        self.assertEqual(int(after["gpu_queries"]) - int(before["gpu_queries"]), 3 * 3 * 4 * 3)
        self.assertEqual(int(after["gpu_fallbacks"]), 0)
        self.assertEqual(int(after["gpu_errors"]), 0)

    @unittest.skipUnless(os.path.exists(os.path.join(DATA, "fashion-mnist-784-euclidean")),
                         "no shared data")
    def test_fashion_mnist_slice(self):
        def bvecs(path, n):
            out = []
            with open(path, "rb") as f:
                for _ in range(n):
                    dim = struct.unpack("<i", f.read(4))[0]
                    out.append([float(b) for b in f.read(dim)])
            return out
        d = os.path.join(DATA, "fashion-mnist-784-euclidean")
        base = bvecs(os.path.join(d, "fmnist_train_base.bvecs"), 2000)
        queries = bvecs(os.path.join(d, "fmnist_test_query.bvecs"), 5)
        for s in (self.gpu, self.cpu):
            create(s.client(), "fm", "L2", 784)
            create(s.client(), "fmc", "COSINE", 784)
        self.load((self.gpu, self.cpu), base)
        self.compare("fm", queries, (1, 10, 100), "fashion-mnist L2")
        self.compare("fmc", queries, (10, 100), "fashion-mnist COSINE")
        self.assertEqual(int(gpu_info(self.gpu.client())["gpu_fallbacks"]), 0)

    def test_reply_shapes_are_the_cpus_byte_for_byte(self):
        """Small integers: exact distances, so the whole replies must be equal."""
        rnd = random.Random(9)
        base = [[float(rnd.randint(-4, 4)) for _ in range(6)] for _ in range(400)]
        for s in (self.gpu, self.cpu):
            create(s.client(), "ix", "L2", 6)
        self.load((self.gpu, self.cpu), base)
        q = blob([1.0, 0, -1, 2, 0, 1])
        shapes = [
            ("*=>[KNN 20 @v $q AS d]", "PARAMS", 2, "q", q, "DIALECT", 2),
            ("*=>[KNN 20 @v $q AS d]", "PARAMS", 2, "q", q, "SORTBY", "t", "DESC", "LIMIT", 3, 9,
             "RETURN", 2, "t", "d", "DIALECT", 2),
            ("*=>[KNN 50 @v $q]", "PARAMS", 2, "q", q, "NOCONTENT", "WITHSCORES", "LIMIT", 0, 50),
            ("*=>[KNN 5 @v $q AS d]", "PARAMS", 2, "q", q, "RETURN", 1, "t", "DIALECT", 3),
        ]
        before = int(gpu_info(self.gpu.client())["gpu_queries"])
        for args in shapes:
            self.assertEqual(self.gpu.client().execute_command("FT.SEARCH", "ix", *args),
                             self.cpu.client().execute_command("FT.SEARCH", "ix", *args), args)
        resp3 = []
        for s in (self.gpu, self.cpu):
            raw = s.raw()
            raw.command("HELLO", "3")
            resp3.append(raw.command("FT.SEARCH", "ix", *shapes[1]))
            raw.close()
        self.assertEqual(resp3[0], resp3[1])
        self.assertEqual(int(gpu_info(self.gpu.client())["gpu_queries"]) - before, len(shapes) + 1)

    def test_cpu_paths_stay_on_the_cpu(self):
        """k above 1024, filtered KNN, HNSW: answered as before, not batched."""
        rnd = random.Random(3)
        base = [[rnd.uniform(-1, 1) for _ in range(8)] for _ in range(2500)]
        for s in (self.gpu, self.cpu):
            create(s.client(), "ix", "L2", 8)
            s.client().execute_command(
                "FT.CREATE", "hn", "PREFIX", 1, "d:", "SCHEMA", "v", "VECTOR", "HNSW", 6, "TYPE",
                "FLOAT32", "DIM", 8, "DISTANCE_METRIC", "L2")
        self.load((self.gpu, self.cpu), base)
        g, c = self.gpu.client(), self.cpu.client()
        q = base[17]
        before = int(gpu_info(g)["gpu_queries"])
        self.assertSameHits(knn(g, "ix", q, 2000), knn(c, "ix", q, 2000), "k=2000")
        self.assertEqual(len(knn(g, "ix", q, 2000)), 2000)
        filtered = ("FT.SEARCH", "ix", "@t:{t1}=>[KNN 10 @v $q AS d]", "PARAMS", 2, "q", blob(q),
                    "DIALECT", 2)
        self.assertEqual(g.execute_command(*filtered), c.execute_command(*filtered))
        self.assertSameHits(knn(g, "hn", q, 10), knn(c, "hn", q, 10), "HNSW")
        self.assertEqual(int(gpu_info(g)["gpu_queries"]), before)


@OWN_PROCESS
@NEEDS_FAKE
class GpuBatching(GpuCase):
    def test_concurrent_clients_share_batches(self):
        rnd = random.Random(11)
        dim, clients, each = 16, 32, 10
        base = [[rnd.uniform(-1, 1) for _ in range(dim)] for _ in range(2000)]
        queries = [[rnd.uniform(-1, 1) for _ in range(dim)] for _ in range(clients * each)]
        with GpuServer(gpu_batch_window_us=50000) as gs, Server(gpu="no") as cs:
            for s in (gs, cs):
                create(s.client(), "ix", "COSINE", dim)
            self.load((gs, cs), base)
            want = [knn(cs.client(), "ix", q, 10) for q in queries]
            got = [None] * len(queries)
            errors = []

            def worker(w):
                try:
                    r = gs.client()
                    for i in range(w, len(queries), clients):
                        got[i] = knn(r, "ix", queries[i], 10)
                except Exception as e:  # reported below
                    errors.append(e)
            threads = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            self.assertEqual(errors, [])
            for i in range(len(queries)):
                self.assertSameHits(got[i], want[i], "query %d" % i)
            st = gpu_info(gs.client())
            self.assertEqual(int(st["gpu_queries"]), clients * each)
            self.assertGreater(float(st["gpu_mean_batch_size"]), 1.0)
            self.assertLess(int(st["gpu_batches"]), clients * each)
            self.assertGreater(float(st["gpu_kernel_ms"]), 0)

    def test_mixed_k_in_one_batch(self):
        """Queries of k 1 to 1024 in one window: each gets its own k (run at the largest)."""
        rnd = random.Random(12)
        base = [[rnd.uniform(-1, 1) for _ in range(8)] for _ in range(1500)]
        ks = [1, 7, 10, 100, 1024, 3]
        queries = [[rnd.uniform(-1, 1) for _ in range(8)] for _ in ks]
        with GpuServer(gpu_batch_window_us=300000) as gs, Server(gpu="no") as cs:
            for s in (gs, cs):
                create(s.client(), "ix", "L2", 8)
            self.load((gs, cs), base)
            conns = [gs.raw() for _ in ks]
            for c, k, q in zip(conns, ks, queries):
                c.send(encode(["FT.SEARCH", "ix", "*=>[KNN %d @v $q AS d]" % k, "PARAMS", 2,
                               "q", blob(q), "RETURN", 1, "d", "LIMIT", 0, k, "DIALECT", 2]))
            for c, k, q in zip(conns, ks, queries):
                res = c.read()
                c.close()
                got = [(res[i], float(res[i + 1][1])) for i in range(1, len(res), 2)]
                self.assertSameHits(got, knn(cs.client(), "ix", q, k), "k=%d" % k)
            st = gpu_info(gs.client())
            self.assertEqual(int(st["gpu_queries"]), len(ks))
            self.assertLess(int(st["gpu_batches"]), len(ks))

    def test_config(self):
        with GpuServer() as s:
            r = s.client()
            self.assertEqual(r.config_get("gpu-batch-window-us"), {"gpu-batch-window-us": "200"})
            self.assertEqual(r.config_get("gpu-batch-max"), {"gpu-batch-max": "1024"})
            r.config_set("gpu-batch-max", 4096)
            with self.assertRaises(Exception):
                r.config_set("gpu-batch-max", 4097)
            with self.assertRaises(Exception):
                r.config_set("gpu-batch-max", 0)
            r.config_set("gpu-batch-window-us", 0)  # the next loop pass: still answers
            create(r, "ix", "L2", 4)
            self.load((s,), [[1, 2, 3, float(i)] for i in range(30)])
            self.assertEqual(knn(r, "ix", [1, 2, 3, 4], 2)[0], (b"d:4", 0.0))
            self.assertEqual(int(gpu_info(r)["gpu_queries"]), 1)
        with Server(gpu="no") as s:
            self.assertEqual(s.client().config_get("gpu-min-vectors"),
                             {"gpu-min-vectors": "10000"})

    def test_small_indexes_stay_on_the_cpu(self):
        with GpuServer(gpu_min_vectors=100) as s:
            r = s.client()
            create(r, "ix", "L2", 4)
            self.load((s,), [[1, 2, 3, float(i)] for i in range(99)])
            self.assertEqual(knn(r, "ix", [1, 2, 3, 4], 1), [(b"d:4", 0.0)])
            self.assertEqual(int(gpu_info(r)["gpu_queries"]), 0)
            self.assertEqual(int(gpu_info(r)["gpu_indexes"]), 0)
            self.load((s,), [[1, 2, 3, 99.0]], start=99)
            self.assertEqual(knn(r, "ix", [1, 2, 3, 4], 1), [(b"d:4", 0.0)])
            self.assertEqual(int(gpu_info(r)["gpu_queries"]), 1)


@OWN_PROCESS
@NEEDS_FAKE
class GpuFaults(GpuCase):
    """Injected device failures mid-stream: the CPU answers, INFO says why."""

    def run_stream(self, fake_env, reason, fallbacks_at_least=1):
        rnd = random.Random(21)
        dim = 12
        base = [[rnd.uniform(-1, 1) for _ in range(dim)] for _ in range(1200)]
        queries = [[rnd.uniform(-1, 1) for _ in range(dim)] for _ in range(8)]
        with GpuServer(fake_env=fake_env) as gs, Server(gpu="no") as cs:
            for s in (gs, cs):
                create(s.client(), "ix", "IP", dim)
            self.load((gs, cs), base)
            g, c = gs.client(), cs.client()
            for i, q in enumerate(queries):
                if i == 4:  # a change mid-stream
                    self.load((gs, cs), base[:50], start=600)
                self.assertSameHits(knn(g, "ix", q, 10), knn(c, "ix", q, 10), "query %d" % i)
            st = gpu_info(g)
            self.assertGreaterEqual(int(st["gpu_fallbacks"]), fallbacks_at_least)
            self.assertEqual(int(st["gpu_errors"]), 1)
            self.assertIn(reason, st["gpu_last_error"])
            self.assertEqual(int(st["gpu_indexes"]), 0)  # the mirror failed for good
            self.assertEqual(int(st["gpu_memory_used"]), 0)
            self.assertTrue(g.ping())

    def test_cuda_failure_mid_stream(self):
        self.run_stream({"QUIVER_FAKE_GPU_FAIL": "search:cuda@3"}, "CUDA error")

    def test_oom_on_search(self):
        self.run_stream({"QUIVER_FAKE_GPU_FAIL": "search:oom@2"}, "out of device memory")

    def test_oom_adding_a_change(self):
        # the first sync adds once; the change at query 4 is the second add
        self.run_stream({"QUIVER_FAKE_GPU_FAIL": "add:oom@2"}, "gpu_index_add: out of device")

    def test_device_memory_too_small(self):
        self.run_stream({"QUIVER_FAKE_GPU_MEM": "10000"}, "gpu_index_reserve: out of device")


@OWN_PROCESS
@NEEDS_FAKE
class GpuClientsLeaving(GpuCase):
    def test_disconnect_while_waiting_and_while_running(self):
        base = [[float(i), 1.0, 2.0, 3.0] for i in range(500)]
        q = blob([7.0, 1, 2, 3])
        cmd = ["FT.SEARCH", "ix", "*=>[KNN 3 @v $q AS d]", "PARAMS", "2", "q", q, "DIALECT", "2"]
        with GpuServer(fake_env={"QUIVER_FAKE_GPU_SLEEP_MS": "300"},
                       gpu_batch_window_us=200000) as s:
            r = s.client()
            create(r, "ix", "L2", 4)
            self.load((s,), base)
            # waiting in the window: sent, then gone
            for _ in range(3):
                raw = s.raw()
                raw.send(encode(cmd))
                raw.close()
            # on the (slow) device: one stays, others leave
            stay = s.raw()
            leavers = [s.raw() for _ in range(4)]
            for c in leavers + [stay]:
                c.send(encode(cmd))
            time.sleep(0.3)  # past the window, inside the device's 300 ms (either is survivable)
            for c in leavers:
                c.close()
            res = stay.read()
            self.assertEqual(res[1], b"d:7")
            stay.close()
            wait_for(lambda: int(gpu_info(r)["gpu_batches"]) >= 1, "the batch to come back")
            self.assertTrue(r.ping())
            self.assertEqual(knn(r, "ix", [7.0, 1, 2, 3], 1), [(b"d:7", 0.0)])
            # and the server still shuts down cleanly with a query on the device
            last = s.raw()
            last.send(encode(cmd))
            s.stop()
            last.close()
            self.assertIn("bye", s.read_log())


def knn_cmd(index, vec, k):
    return ["FT.SEARCH", index, "*=>[KNN %d @v $q AS d]" % k, "PARAMS", 2, "q", blob(vec),
            "RETURN", 2, "d", "t", "LIMIT", 0, k, "DIALECT", 2]


def pipelined(server, commands):
    """Sends every command in one write, then reads one reply per command."""
    raw = server.raw()
    try:
        raw.send(b"".join(encode(c) for c in commands))
        return [raw.read() for _ in commands]
    finally:
        raw.close()


# ---- HNSW graphs built on the (fake) GPU: query/ft_bulk.c -----------------------------------

def create_hnsw(r, name, dim, metric="L2", m=8, ef_runtime=10, prefix="d:"):
    r.execute_command("FT.CREATE", name, "PREFIX", 1, prefix, "SCHEMA", "v", "VECTOR", "HNSW",
                      12, "TYPE", "FLOAT32", "DIM", dim, "DISTANCE_METRIC", metric, "M", m,
                      "EF_CONSTRUCTION", 100, "EF_RUNTIME", ef_runtime)


def ft_info(r, name):
    res = r.execute_command("FT.INFO", name)
    return {res[i].decode(): res[i + 1] for i in range(0, len(res), 2)}


def wait_built(r, name):
    wait_for(lambda: int(ft_info(r, name)["indexing"]) == 0, "index %s built" % name, 120)


def load_np(s, vectors, prefix="d:", start=0):
    p = s.client().pipeline(transaction=False)
    for i, v in enumerate(vectors):
        p.hset("%s%d" % (prefix, start + i), "v", v.astype(np.float32).tobytes())
    p.execute()


def fmnist(n, nq):
    d = os.path.join(DATA, "fashion-mnist-784-euclidean")

    def bvecs(path, count):
        raw = np.fromfile(path, dtype=np.uint8, count=count * (4 + 784))
        return raw.reshape(count, 4 + 784)[:, 4:].astype(np.float32)
    return (bvecs(os.path.join(d, "fmnist_train_base.bvecs"), n),
            bvecs(os.path.join(d, "fmnist_test_query.bvecs"), nq))


HAVE_FMNIST = os.path.exists(os.path.join(DATA, "fashion-mnist-784-euclidean"))


@OWN_PROCESS
@NEEDS_FAKE
class GpuPipelines(GpuCase):
    """One client's pipelined KNN queries join one batch while it waits on the first; every
    reply is the `gpu no` server's, in the order sent. Small integer vectors: the distances
    are exact, so whole replies must be equal (ties go by id on both)."""

    def servers(self, fake_env=None, **options):
        rnd = random.Random(31)
        self.base = [[float(rnd.randint(-3, 3)) for _ in range(6)] for _ in range(600)]
        self.queries = [[float(rnd.randint(-3, 3)) for _ in range(6)] for _ in range(64)]
        gs = GpuServer(fake_env=fake_env, **options).__enter__()
        self.addCleanup(gs.__exit__, None, None, None)
        cs = Server(gpu="no").__enter__()
        self.addCleanup(cs.__exit__, None, None, None)
        for s in (gs, cs):
            create(s.client(), "a", "L2", 6)
            create(s.client(), "b", "IP", 6)
            s.client().execute_command(
                "FT.CREATE", "h", "PREFIX", 1, "d:", "SCHEMA", "v", "VECTOR", "HNSW", 6, "TYPE",
                "FLOAT32", "DIM", 6, "DISTANCE_METRIC", "L2", "t", "TAG")
        self.load((gs, cs), self.base)
        return gs, cs

    def assertSameReplies(self, gs, cs, commands):
        got, want = pipelined(gs, commands), pipelined(cs, commands)
        for i, (g, w) in enumerate(zip(got, want)):
            self.assertEqual(g, w, "reply %d to %r" % (i, commands[i][:3]))
        return got

    def test_one_client_pipeline_shares_batches(self):
        gs, cs = self.servers()
        ks = (10, 3, 50, 1)
        cmds = [knn_cmd("a", q, ks[i % 4]) for i, q in enumerate(self.queries)]
        got = self.assertSameReplies(gs, cs, cmds)
        self.assertEqual(got[0][0], 10)  # real answers, not errors
        st = gpu_info(gs.client())
        self.assertEqual(int(st["gpu_queries"]), 64)
        self.assertLess(int(st["gpu_batches"]), 64)
        self.assertGreater(float(st["gpu_mean_batch_size"]), 1.0)
        self.assertGreater(int(st["gpu_pipelined_queries"]), 0)

    def test_mixed_pipeline_keeps_order_and_side_effects(self):
        """Two lanes answering in any order (a slow device), writes, CPU-only searches,
        MULTI/EXEC and a protocol switch between the queries."""
        gs, cs = self.servers({"QUIVER_FAKE_GPU_SLEEP_MS": "20"})
        q = self.queries
        moved = [9.0, 9, 9, 9, 9, 9]
        cmds = [knn_cmd("a", q[0], 5), knn_cmd("b", q[1], 5), knn_cmd("a", q[2], 7),
                knn_cmd("b", q[3], 2),
                ["SET", "k", "v1"], ["GET", "k"],
                knn_cmd("a", moved, 3),
                ["HSET", "d:5", "v", blob(moved)],  # changes the next search's answer
                knn_cmd("a", moved, 3), knn_cmd("b", moved, 3),
                ["FT.SEARCH", "a", "@t:{t1}=>[KNN 4 @v $q AS d]", "PARAMS", 2, "q", blob(q[4]),
                 "DIALECT", 2],
                ["FT.SEARCH", "h", "*=>[KNN 4 @v $q AS d]", "PARAMS", 2, "q", blob(q[5]),
                 "DIALECT", 2],
                knn_cmd("a", q[6], 1100),  # k past the device's: the CPU
                knn_cmd("b", q[7], 4), knn_cmd("nosuch", q[7], 4), knn_cmd("a", q[8], 4),
                ["MULTI"], knn_cmd("a", q[9], 3), ["SET", "k", "v2"], ["EXEC"],
                knn_cmd("b", q[10], 6), knn_cmd("a", q[11], 6), ["GET", "k"],
                ["HELLO", "3"], knn_cmd("a", q[12], 3), knn_cmd("b", q[13], 3),
                ["DEL", "d:5"], knn_cmd("a", moved, 3), ["PING"]]
        cmds += [knn_cmd("ab"[i % 2], q[14 + i], 4) for i in range(30)]
        got = self.assertSameReplies(gs, cs, cmds)
        self.assertEqual(got[8][1], b"d:5")  # the write ran in its place, not before
        self.assertNotEqual(got[6][1], b"d:5")
        st = gpu_info(gs.client())
        self.assertGreater(int(st["gpu_pipelined_queries"]), 0)
        self.assertLess(int(st["gpu_batches"]), int(st["gpu_queries"]))
        self.assertEqual(int(st["gpu_fallbacks"]), 0)

    def test_inline_commands_and_protocol_errors_behind_queries(self):
        """A command the batcher declines waits parsed, once (inline arguments are unescaped
        in place); a protocol error comes after the replies due before it."""
        gs, cs = self.servers({"QUIVER_FAKE_GPU_SLEEP_MS": "20"})
        knns = [encode(knn_cmd("ab"[i % 2], q, 3)) for i, q in enumerate(self.queries[:4])]
        data = (b"".join(knns) + b'SET "k\\x41" v1\r\nGET kA\r\n' + b"".join(knns) +
                b"*1\r\n$x\r\n")
        replies = []
        for s in (gs, cs):
            raw = s.raw()
            raw.send(data)
            replies.append([raw.read() for _ in range(11)])
            self.assertRaises(ConnectionError, raw.read)
            raw.close()
        self.assertEqual(replies[0], replies[1])
        self.assertEqual(replies[0][4:6], [b"OK", b"v1"])
        self.assertIn("Protocol error", replies[0][10])

    def test_bounded_by_batch_max(self):
        """At most gpu-batch-max queries a client wait at once: the rest follow in turn."""
        gs, cs = self.servers(gpu_batch_max=4)
        self.assertSameReplies(gs, cs, [knn_cmd("a", q, 5) for q in self.queries])
        st = gpu_info(gs.client())
        self.assertEqual(int(st["gpu_queries"]), 64)
        self.assertGreaterEqual(int(st["gpu_batches"]), 16)
        # each wait takes at most 3 behind the first: at least 16 of 64 are not taken
        self.assertGreater(int(st["gpu_pipelined_queries"]), 0)
        self.assertLessEqual(int(st["gpu_pipelined_queries"]), 48)

    def test_device_failure_during_a_pipeline(self):
        gs, cs = self.servers({"QUIVER_FAKE_GPU_FAIL": "search:cuda@2",
                               "QUIVER_FAKE_GPU_SLEEP_MS": "10"})
        cmds = [knn_cmd("ab"[i % 2], q, 5) for i, q in enumerate(self.queries)]
        cmds.insert(20, ["SET", "k", "v"])
        self.assertSameReplies(gs, cs, cmds)
        st = gpu_info(gs.client())
        self.assertEqual(int(st["gpu_errors"]), 1)
        self.assertGreaterEqual(int(st["gpu_fallbacks"]), 1)
        self.assertIn("CUDA error", st["gpu_last_error"])

    def test_clients_leaving_and_killed_with_queries_absorbed(self):
        gs, cs = self.servers({"QUIVER_FAKE_GPU_SLEEP_MS": "200"}, gpu_batch_window_us=100000)
        cmds = [knn_cmd("ab"[i % 2], q, 5) for i, q in enumerate(self.queries[:20])]
        data = b"".join(encode(c) for c in cmds + [["SET", "after", "1"]])
        waiting = gs.raw()  # leaves while its queries wait in the window
        waiting.send(data)
        running = gs.raw()  # leaves while they run on the slow device
        running.send(data)
        killed = gs.raw()
        killed.send(b"".join(encode(c) for c in [["CLIENT", "ID"]] + cmds))
        kid = killed.read()
        waiting.close()
        wait_for(lambda: int(gpu_info(gs.client())["gpu_pipelined_queries"]) >= 57,
                 "the queries to be taken")
        time.sleep(0.15)  # past the window: the device has them (either way is survivable)
        running.close()
        self.assertEqual(gs.client().client_kill_filter(_id=kid), 1)
        wait_for(lambda: int(gpu_info(gs.client())["gpu_batches"]) >= 2, "batches to return")
        killed.close()
        self.assertSameReplies(gs, cs, cmds[:6] + [["PING"]])
        self.assertTrue(gs.client().ping())
        wait_for(lambda: all("b" not in c["flags"] for c in gs.client().client_list()),
                 "no client left parked")


@OWN_PROCESS
@NEEDS_FAKE
class GpuGraphBuild(GpuCase):
    """FT.CREATE over existing hashes fills an empty HNSW field in bulk from the device's kNN
    lists (gpu-build-min-vectors and up): the recall of a CPU build, changes made meanwhile
    kept in order, device failures falling back to the CPU, drops and flushes mid-build
    survived, snapshots reloaded."""

    MIN = 500

    def gpu_server(self, fake_env=None):
        return GpuServer(fake_env=fake_env, gpu_build_min_vectors=self.MIN)

    def recall(self, r, name, base, keys, queries, k=10):
        """Mean recall@k of FT.SEARCH against the exact answers over base (keys: its keys)."""
        hits = 0
        for q in queries:
            d = ((base - q) ** 2).sum(axis=1)
            want = {keys[i] for i in np.argsort(d, kind="stable")[:k]}
            res = r.execute_command("FT.SEARCH", name, "*=>[KNN %d @v $q]" % k, "PARAMS", 2,
                                    "q", q.astype(np.float32).tobytes(), "RETURN", 0,
                                    "LIMIT", 0, k, "DIALECT", 2)
            hits += len(want & {x.decode() for x in res[1:]})
        return hits / (k * len(queries))

    def build_both(self, base, queries, fake_env=None):
        """Builds the same data on a fake-GPU server and a `gpu no` one; their recalls."""
        keys = ["d:%d" % i for i in range(len(base))]
        out = []
        with self.gpu_server(fake_env) as g, Server(gpu="no") as c:
            for s in (g, c):
                load_np(s, base)
                create_hnsw(s.client(), "h", base.shape[1])
                wait_built(s.client(), "h")
                self.assertEqual(int(ft_info(s.client(), "h")["num_records"]), len(base))
                out.append(self.recall(s.client(), "h", base, keys, queries))
            info = gpu_info(g.client())
        return out[0], out[1], info

    def test_random_vectors_build_on_the_gpu_with_the_cpus_recall(self):
        rng = np.random.default_rng(7)
        base = rng.standard_normal((3000, 32)).astype(np.float32)
        queries = rng.standard_normal((100, 32)).astype(np.float32)
        gpu, cpu, info = self.build_both(base, queries)
        self.assertEqual(int(info["gpu_graph_builds"]), 1)
        self.assertEqual(int(info["gpu_graph_fallbacks"]), 0)
        self.assertGreater(float(info["gpu_graph_build_ms"]), 0)
        self.assertGreaterEqual(gpu, cpu - 0.01, (gpu, cpu))

    @unittest.skipUnless(HAVE_FMNIST, "no shared data")
    def test_fashion_mnist_slice_builds_on_the_gpu_with_the_cpus_recall(self):
        base, queries = fmnist(2500, 50)
        gpu, cpu, info = self.build_both(base, queries)
        self.assertEqual(int(info["gpu_graph_builds"]), 1)
        self.assertGreaterEqual(gpu, cpu - 0.01, (gpu, cpu))

    def test_knn_graph_failure_falls_back_to_the_cpu(self):
        rng = np.random.default_rng(8)
        base = rng.standard_normal((2000, 16)).astype(np.float32)
        queries = rng.standard_normal((50, 16)).astype(np.float32)
        for rule in ("graph:cuda@1", "graph:oom@1"):
            gpu, cpu, info = self.build_both(base, queries, {"QUIVER_FAKE_GPU_FAIL": rule})
            self.assertEqual(int(info["gpu_graph_builds"]), 0, rule)
            self.assertEqual(int(info["gpu_graph_fallbacks"]), 1, rule)
            self.assertGreaterEqual(gpu, cpu - 0.01, (rule, gpu, cpu))

    def test_below_the_threshold_builds_on_the_cpu(self):
        rng = np.random.default_rng(9)
        with self.gpu_server() as s:
            r = s.client()
            load_np(s, rng.standard_normal((self.MIN - 1, 8)))
            create_hnsw(r, "h", 8)
            wait_built(r, "h")
            self.assertEqual(int(ft_info(r, "h")["num_records"]), self.MIN - 1)
            self.assertEqual(int(gpu_info(r)["gpu_graph_builds"]), 0)
            self.assertEqual(int(gpu_info(r)["gpu_graph_fallbacks"]), 0)

    def check_writes_kept(self, s, filler):
        """Loads 2000 documents (and `filler` keys after them, outside the prefix), creates a
        FLAT index (the reference, changed as writes come) and the HNSW one, then
        overwrites, deletes and adds documents (with filler: once the scan has passed the
        documents, so they have been gathered); once built, both hold exactly the final
        documents."""
        rng = np.random.default_rng(10)
        dim = 16
        base = rng.standard_normal((2000, dim)).astype(np.float32)
        final = {i: base[i] for i in range(len(base))}
        r = s.client()
        load_np(s, base)
        for c in range(0, filler, 20000):
            p = r.pipeline(transaction=False)
            for i in range(c, min(filler, c + 20000)):
                p.set("x:%d" % i, "filler")
            p.execute()
        r.execute_command("FT.CREATE", "f", "PREFIX", 1, "d:", "SCHEMA", "v", "VECTOR",
                          "FLAT", 6, "TYPE", "FLOAT32", "DIM", dim, "DISTANCE_METRIC", "L2")
        create_hnsw(r, "h", dim, ef_runtime=200)
        if filler:
            wait_for(lambda: float(ft_info(r, "h")["percent_indexed"]) > 0, "a scan slice")
        p = r.pipeline(transaction=False)
        for i in range(0, 2000, 5):
            v = rng.standard_normal(dim).astype(np.float32)
            final[i] = v
            p.hset("d:%d" % i, "v", v.tobytes())
        for i in range(1, 2000, 7):
            final.pop(i, None)
            p.delete("d:%d" % i)
        for i in range(2000, 2300):
            v = rng.standard_normal(dim).astype(np.float32)
            final[i] = v
            p.hset("d:%d" % i, "v", v.tobytes())
        for i in range(2000, 2300, 3):
            final.pop(i)
            p.delete("d:%d" % i)
        p.execute()
        self.assertEqual(int(ft_info(r, "h")["indexing"]), 1,
                         "the writes must land while the index builds")
        if filler:  # the scan part of percent_indexed: the build's would be ~1
            self.assertLess(float(ft_info(r, "h")["percent_indexed"]), 0.9,
                            "the writes must land while the scan runs")
        wait_built(r, "h")
        self.assertEqual(int(gpu_info(r)["gpu_graph_builds"]), 1)
        for name in ("h", "f"):
            self.assertEqual(int(ft_info(r, name)["num_docs"]), len(final), name)
            self.assertEqual(int(ft_info(r, name)["num_records"]), len(final), name)
        # every document's latest vector finds it first; no deleted one comes back
        for i in sorted(final)[::7]:
            res = r.execute_command("FT.SEARCH", "h", "*=>[KNN 1 @v $q AS d]", "PARAMS", 2,
                                    "q", final[i].tobytes(), "RETURN", 1, "d", "DIALECT", 2)
            self.assertEqual(res[1], b"d:%d" % i)
            self.assertEqual(float(res[2][1]), 0.0)
        for i in [i for i in range(2000) if i not in final]:
            res = r.execute_command("FT.SEARCH", "h", "*=>[KNN 3 @v $q]", "PARAMS", 2,
                                    "q", base[i].tobytes(), "RETURN", 0, "DIALECT", 2)
            self.assertNotIn(b"d:%d" % i, res[1:])

    def test_writes_during_the_device_build_are_all_kept(self):
        # FT.CREATE scans this small database itself: the writes queue behind the build
        with self.gpu_server({"QUIVER_FAKE_GPU_SLEEP_MS": "3000"}) as s:
            self.check_writes_kept(s, 0)

    def test_writes_during_the_scan_are_all_kept(self):
        # past 10,000 keys the scan runs from the cron (hz 1: a slice a second, ~20 ms of
        # scanning: well under 300,000 keys here): the writes reach gathered vectors
        with GpuServer(gpu_build_min_vectors=self.MIN, hz=1) as s:
            self.check_writes_kept(s, 300000)

    def test_drop_and_flush_during_the_build(self):
        rng = np.random.default_rng(11)
        with self.gpu_server({"QUIVER_FAKE_GPU_SLEEP_MS": "1500"}) as s:
            r = s.client()
            load_np(s, rng.standard_normal((1000, 8)))
            create_hnsw(r, "a", 8)
            r.execute_command("FT.DROPINDEX", "a")
            create_hnsw(r, "b", 8)
            r.flushdb()
            self.assertTrue(r.ping())
            wait_built(r, "b")
            self.assertEqual(int(ft_info(r, "b")["num_docs"]), 0)
            # the server goes on building: a new index over new data
            load_np(s, rng.standard_normal((800, 8)))
            create_hnsw(r, "c", 8)
            wait_built(r, "c")
            self.assertEqual(int(ft_info(r, "c")["num_records"]), 800)
            self.assertEqual(r.execute_command("FT._LIST"), [b"b", b"c"])
            # and it still stops cleanly with a build on the device
            create_hnsw(r, "d", 8)
            s.stop()
            self.assertIn("bye", s.read_log())

    def test_restart_loads_the_built_index_or_builds_it_again(self):
        rng = np.random.default_rng(12)
        base = rng.standard_normal((1500, 16)).astype(np.float32)
        queries = rng.standard_normal((20, 16)).astype(np.float32)

        def answers(r):
            return [r.execute_command("FT.SEARCH", "h", "*=>[KNN 10 @v $q AS d]", "PARAMS", 2,
                                      "q", q.tobytes(), "RETURN", 1, "d", "DIALECT", 2)
                    for q in queries]
        with self.gpu_server() as s:
            r = s.client()
            load_np(s, base)
            create_hnsw(r, "h", 16)
            wait_built(r, "h")
            self.assertEqual(int(gpu_info(r)["gpu_graph_builds"]), 1)
            before = answers(r)
            s.stop()  # a snapshot at shutdown
            s.start()
            r = s.client()
            wait_built(r, "h")
            self.assertEqual(int(r.info("vector")["vector_snapshot_loads"]), 1)
            self.assertEqual(int(gpu_info(r)["gpu_graph_builds"]), 0)
            self.assertEqual(answers(r), before)
            # no snapshot (killed, file removed): rebuilt from the hashes, on the GPU again
            s.kill()
            shutil.rmtree(os.path.join(s.dir, "data", "vectors"), ignore_errors=True)
            s.start()
            r = s.client()
            wait_built(r, "h")
            self.assertEqual(int(gpu_info(r)["gpu_graph_builds"]), 1)
            self.assertEqual(int(ft_info(r, "h")["num_records"]), 1500)


def encode(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


if __name__ == "__main__":
    unittest.main()
