"""FT.* over hashes (DESIGN.md "Vector search"), as redis-py 4.3 (Debian's python3-redis) and
RedisVL use it: redis-py's search API in RESP2 and the RESP3 map shape through a raw HELLO 3
client; KNN answers equal to a numpy brute force with FLAT under L2, IP and COSINE (and on
the shared fmnist1k set against its ground truth); TAG and NUMERIC filters alone and before a
KNN; VECTOR_RANGE; the index following HSET, HDEL, DEL, UNLINK, EXPIRE, RENAME and FLUSHDB; a
blob of the wrong size counted as an indexing failure; existing keys indexed on create (in
the background when many); SIGKILL and restart answering the same from the snapshot and,
with the snapshot deleted, rebuilt; FT.INFO's layout as RedisVL parses it; bad input answered
by clear errors with the server staying up.

Run: PYTHONPATH=tests/integration /usr/bin/python3 -m unittest -v test_ft"""
import os
import time
import unittest

import numpy as np
import redis
from redis.commands.search.field import NumericField, TagField, TextField, VectorField
from redis.commands.search.indexDefinition import IndexDefinition, IndexType
from redis.commands.search.query import Query

from harness import ROOT, RespError, Server

OWN_PROCESS = unittest.skipIf(os.environ.get("TEST_SERVER"), "restarts its server")
DATA = os.path.join(ROOT, "..", "shared", "data", "vectors")


def blob(v):
    return np.asarray(v, dtype=np.float32).tobytes()


def distances(metric, q, X):
    """As RediSearch reports them (float64 from float32 inputs): squared L2, 1 - u.v,
    1 - cos."""
    q = np.asarray(q, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    if metric == "L2":
        return ((X - q) ** 2).sum(1)
    if metric == "IP":
        return 1.0 - X @ q
    return 1.0 - (X @ q) / (np.linalg.norm(X, axis=1) * np.linalg.norm(q))


def oracle(metric, q, X, k, keys, keep=None):
    d = distances(metric, q, X)
    order = [i for i in np.argsort(d, kind="stable") if keep is None or keep[i]]
    return [(keys[i], d[i]) for i in order[:k]]


def fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    return raw.reshape(-1, dim + 1)[:, 1:].copy().view(np.float32)


def ivecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    return raw.reshape(-1, raw[0] + 1)[:, 1:]


def wait_indexed(r, name, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if int(r.ft(name).info()["indexing"]) == 0:
            return
        time.sleep(0.05)
    raise AssertionError("index %s still indexing" % name)


def knn_keys(res):
    return [d.id for d in res.docs]


class FtCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(durability="always")
        cls.server.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def setUp(self):
        self.r = self.server.client()
        self.addCleanup(self.r.close)
        self.r.flushall()
        for name in self.r.execute_command("FT._LIST"):
            self.r.execute_command("FT.DROPINDEX", name)
        self.rng = np.random.default_rng(7)

    def load(self, n, dim, prefix="doc:", labels=("a", "b", "c", "d")):
        X = self.rng.standard_normal((n, dim)).astype(np.float32)
        keys = ["%s%d" % (prefix, i) for i in range(n)]
        p = self.r.pipeline(transaction=False)
        for i in range(n):
            p.hset(keys[i], mapping={"v": blob(X[i]), "label": labels[i % len(labels)],
                                     "n": i, "title": "title %d" % i})
        p.execute()
        return X, keys

    def create(self, name="idx", algo="FLAT", metric="L2", dim=8, prefix="doc:", extra=None):
        attrs = {"TYPE": "FLOAT32", "DIM": dim, "DISTANCE_METRIC": metric}
        attrs.update(extra or {})
        self.r.ft(name).create_index(
            [VectorField("v", algo, attrs), TagField("label"), NumericField("n"),
             TextField("title")],
            definition=IndexDefinition(prefix=[prefix], index_type=IndexType.HASH))
        wait_indexed(self.r, name)

    def knn(self, q, k=10, name="idx", flt="*", ret=("score", "label")):
        query = (Query("%s=>[KNN %d @v $vec AS score]" % (flt, k)).sort_by("score")
                 .return_fields(*ret).paging(0, k).dialect(2))
        return self.r.ft(name).search(query, query_params={"vec": blob(q)})

    def assert_knn(self, res, expect, places=4):
        self.assertEqual(res.total, len(expect))
        got = [(d.id, float(d.score)) for d in res.docs]
        # ties aside: distances equal in order, keys equal where distances differ
        for (gk, gd), (ek, ed) in zip(got, expect):
            self.assertAlmostEqual(gd, ed, places=places, msg=(got, expect))
        self.assertEqual(len(got), len(expect))
        dists = [e[1] for e in expect]
        for i, (gk, gd) in enumerate(got):
            if dists.count(dists[i]) == 1:
                self.assertEqual(gk, expect[i][0])


class TestRedisPy(FtCase):
    def test_acceptance_hnsw_resp2(self):
        """Issue 4 acceptance 4 as written: HNSW, TAG, NUMERIC through redis-py."""
        X, keys = self.load(500, 16)
        self.r.ft("idx").create_index(
            [VectorField("v", "HNSW", {"TYPE": "FLOAT32", "DIM": 16, "DISTANCE_METRIC": "L2",
                                       "M": 16, "EF_CONSTRUCTION": 200, "EF_RUNTIME": 400}),
             TagField("label"), NumericField("n")],
            definition=IndexDefinition(prefix=["doc:"], index_type=IndexType.HASH))
        wait_indexed(self.r, "idx")
        hits = 0
        for qi in range(20):
            q = self.rng.standard_normal(16)
            res = self.knn(q)
            want = oracle("L2", q, X, 10, keys)
            self.assertEqual(res.total, 10)
            self.assertEqual({d.label for d in res.docs} - {"a", "b", "c", "d"}, set())
            scores = [float(d.score) for d in res.docs]
            self.assertEqual(scores, sorted(scores))
            hits += len(set(knn_keys(res)) & {k for k, _ in want})
        self.assertGreaterEqual(hits / 200, 0.95)

    def test_hnsw_background_build_keeps_later_writes(self):
        """A build on the worker thread, with writes arriving while it runs: the final index
        holds exactly the final vectors (checked at an EF_RUNTIME that makes HNSW exact on
        this small set)."""
        n, dim = 12000, 16  # past FT.CREATE's synchronous size: built in the background
        X, keys = self.load(n, dim)
        live = dict(zip(keys, X))
        self.r.execute_command("FT.CREATE", "idx", "PREFIX", 1, "doc:", "SCHEMA", "v", "VECTOR",
                               "HNSW", 10, "TYPE", "FLOAT32", "DIM", dim, "DISTANCE_METRIC",
                               "L2", "EF_RUNTIME", 2000, "M", 16, "label", "TAG")
        self.assertEqual(int(self.r.ft("idx").info()["indexing"]), 1)
        for i in range(0, n, 97):  # while it builds: replace, delete, add
            v = self.rng.standard_normal(dim).astype(np.float32)
            self.r.hset(keys[i], "v", blob(v))
            live[keys[i]] = v
            self.r.delete(keys[i + 1])
            del live[keys[i + 1]]
            self.r.hset("doc:late%d" % i, mapping={"v": blob(v + 0.5), "label": "a"})
            live["doc:late%d" % i] = v + 0.5
        wait_indexed(self.r, "idx", timeout=300)
        self.assertEqual(int(self.r.ft("idx").info()["num_docs"]), len(live))
        names = list(live)
        M = np.array([live[k] for k in names])
        hits = 0
        for _ in range(10):
            q = self.rng.standard_normal(dim)
            got = knn_keys(self.knn(q))
            hits += len(set(got) & {k for k, _ in oracle("L2", q, M, 10, names)})
        self.assertGreaterEqual(hits, 98)

    def test_flat_equals_oracle_every_metric(self):
        X, keys = self.load(300, 12)
        for metric in ("L2", "IP", "COSINE"):
            with self.subTest(metric=metric):
                self.create("i" + metric, metric=metric, dim=12)
                for _ in range(5):
                    q = self.rng.standard_normal(12)
                    self.assert_knn(self.knn(q, name="i" + metric), oracle(metric, q, X, 10, keys))

    def test_ivf_through_faiss(self):
        X, keys = self.load(3000, 16)
        self.r.execute_command("FT.CREATE", "idx", "PREFIX", 1, "doc:", "SCHEMA", "v", "VECTOR",
                               "IVF", 10, "TYPE", "FLOAT32", "DIM", 16, "DISTANCE_METRIC", "L2",
                               "FACTORY", "IVF16,Flat", "EF_RUNTIME", 16, "label", "TAG")
        wait_indexed(self.r, "idx")
        attrs = self.r.ft("idx").info()["attributes"][0]
        self.assertEqual(attrs[6:10], [b"algorithm", b"IVF", b"data_type", b"FLOAT32"])
        self.assertIn(b"IVF16,Flat", attrs)
        for _ in range(5):  # nprobe = every list: exact
            q = self.rng.standard_normal(16)
            self.assert_knn(self.knn(q), oracle("L2", q, X, 10, keys))
            want = oracle("L2", q, X, 10, keys, np.arange(3000) % 4 == 1)
            self.assert_knn(self.knn(q, flt="(@label:{b})"), want)

    def test_shape_and_options(self):
        X, keys = self.load(50, 4)
        self.create(dim=4)
        q = X[3]
        # default score field and every hash field without RETURN
        res = self.r.ft("idx").search(Query("*=>[KNN 3 @v $vec]").dialect(2),
                                      query_params={"vec": blob(q)})
        self.assertEqual(res.docs[0].id, "doc:3")
        self.assertEqual(float(getattr(res.docs[0], "__v_score")), 0.0)
        self.assertEqual(res.docs[0].label, "d")
        self.assertEqual(res.docs[0].title, "title 3")
        # NOCONTENT, WITHSCORES, RETURN AS, LIMIT
        raw = self.r.execute_command("FT.SEARCH", "idx", "*=>[KNN 5 @v $vec AS d]", "PARAMS", 2,
                                     "vec", blob(q), "NOCONTENT", "LIMIT", 1, 2, "DIALECT", 2)
        self.assertEqual(raw[0], 5)
        self.assertEqual(len(raw), 3)
        raw = self.r.execute_command("FT.SEARCH", "idx", "*=>[KNN 2 @v $vec AS d]", "WITHSCORES",
                                     "RETURN", 3, "label", "AS", "L", "PARAMS", 2, "vec", blob(q))
        self.assertEqual(raw[1], b"doc:3")
        self.assertEqual(float(raw[2]), 0.0)
        self.assertEqual(raw[3], [b"L", b"d"])
        # LIMIT 0 0 gives the count alone; default LIMIT is 0 10
        self.assertEqual(self.r.execute_command("FT.SEARCH", "idx", "*", "LIMIT", 0, 0), [50])
        self.assertEqual(self.r.ft("idx").search(Query("*")).total, 50)
        self.assertEqual(len(self.r.ft("idx").search(Query("*")).docs), 10)
        # SORTBY a NUMERIC field both ways, and a TAG field
        res = self.r.ft("idx").search(Query("@n:[10 20]").sort_by("n", asc=False).paging(0, 3))
        self.assertEqual(knn_keys(res), ["doc:20", "doc:19", "doc:18"])
        res = self.r.ft("idx").search(Query("@n:[0 3]").sort_by("label").return_fields("label"))
        self.assertEqual([d.label for d in res.docs], ["a", "b", "c", "d"])
        # EF_RUNTIME and parameters for K
        res = self.r.execute_command("FT.SEARCH", "idx", "*=>[KNN $K @v $vec EF_RUNTIME $ef]",
                                     "PARAMS", 6, "K", 4, "ef", 50, "vec", blob(q), "NOCONTENT")
        self.assertEqual(res[0], 4)

    @unittest.skipUnless(os.path.exists(os.path.join(DATA, "fmnist1k")), "no shared data")
    def test_fmnist1k_ground_truth(self):
        base = fvecs(os.path.join(DATA, "fmnist1k", "fmnist1k_base.fvecs"))
        queries = fvecs(os.path.join(DATA, "fmnist1k", "fmnist1k_query.fvecs"))
        truth = ivecs(os.path.join(DATA, "fmnist1k", "fmnist1k_groundtruth.ivecs"))
        p = self.r.pipeline(transaction=False)
        for i, v in enumerate(base):
            p.hset("img:%d" % i, "v", blob(v))
        p.execute()
        self.r.execute_command("FT.CREATE", "img", "PREFIX", 1, "img:", "SCHEMA", "v", "VECTOR",
                               "FLAT", 6, "TYPE", "FLOAT32", "DIM", 784, "DISTANCE_METRIC", "L2")
        wait_indexed(self.r, "img")
        for qi in range(0, 500, 25):
            res = self.r.execute_command("FT.SEARCH", "img", "*=>[KNN 10 @v $q AS d]", "PARAMS",
                                         2, "q", blob(queries[qi]), "RETURN", 1, "d", "DIALECT", 2)
            got = [int(res[i][len(b"img:"):]) for i in range(1, len(res), 2)]
            d = distances("L2", queries[qi], base)
            kth = d[truth[qi][9]]
            for g in got:  # ties with the 10th distance count as hits
                self.assertTrue(g in truth[qi][:10] or d[g] <= kth, (qi, got, truth[qi][:10]))


class TestResp3(FtCase):
    def test_search_and_info_maps(self):
        X, keys = self.load(20, 4)
        self.create(dim=4)
        raw = self.server.raw()
        self.addCleanup(raw.close)
        raw.command("HELLO", "3")
        res = raw.command("FT.SEARCH", "idx", "*=>[KNN 3 @v $vec AS score]", "PARAMS", "2",
                          "vec", blob(X[5]), "SORTBY", "score", "RETURN", "2", "score", "label",
                          "DIALECT", "2")
        self.assertEqual(set(res), {b"attributes", b"format", b"results", b"total_results",
                                    b"warning"})
        self.assertEqual(res[b"total_results"], 3)
        self.assertEqual(res[b"format"], b"STRING")
        first = res[b"results"][0]
        self.assertEqual(first[b"id"], b"doc:5")
        self.assertEqual(first[b"extra_attributes"], {b"score": b"0", b"label": b"b"})
        self.assertEqual(first[b"values"], [])
        res = raw.command("FT.SEARCH", "idx", "@n:[1 2]", "NOCONTENT", "WITHSCORES")
        self.assertEqual(res[b"results"], [{b"id": b"doc:1", b"score": 1.0, b"values": []},
                                           {b"id": b"doc:2", b"score": 1.0, b"values": []}])
        info = raw.command("FT.INFO", "idx")
        self.assertEqual(info[b"num_docs"], 20)
        self.assertEqual(info[b"index_definition"][b"prefixes"], [b"doc:"])
        v = info[b"attributes"][0]
        self.assertEqual((v[b"type"], v[b"algorithm"], v[b"dim"], v[b"distance_metric"]),
                         (b"VECTOR", b"FLAT", 4, b"L2"))
        self.assertEqual(info[b"percent_indexed"], 1.0)


class TestFilters(FtCase):
    def test_filter_queries(self):
        X, keys = self.load(40, 4)
        self.create(dim=4)
        labels = ["abcd"[i % 4] for i in range(40)]

        def ids(q):
            res = self.r.execute_command("FT.SEARCH", "idx", q, "NOCONTENT", "LIMIT", 0, 100,
                                         "DIALECT", 2)
            return sorted(int(k[4:]) for k in res[1:])

        cases = {
            "@label:{a}": [i for i in range(40) if labels[i] == "a"],
            "@label:{ A | b }": [i for i in range(40) if labels[i] in "ab"],
            "@n:[5 8]": [5, 6, 7, 8],
            "@n:[(5 (8]": [6, 7],
            "@n:[-inf 2]": [0, 1, 2],
            "@n:[37 +inf]": [37, 38, 39],
            "@n:[10 20] @label:{c}": [10, 14, 18],
            "@n:[0 3] | @n:[36 39]": [0, 1, 2, 3, 36, 37, 38, 39],
            "-@label:{a|b|c}": [i for i in range(40) if labels[i] == "d"],
            "@n:[0 9] -(@label:{a} | @label:{b})": [2, 3, 6, 7],
            "(@n:[0 1] | @n:[38 39]) @label:{a|d}": [0, 39],
            "*": list(range(40)),
        }
        for q, want in cases.items():
            with self.subTest(q=q):
                self.assertEqual(ids(q), want)
        res = self.r.execute_command("FT.SEARCH", "idx", "@n:[$lo $hi]", "PARAMS", 4, "lo", 3,
                                     "hi", 4, "NOCONTENT")
        self.assertEqual(res, [2, b"doc:3", b"doc:4"])
        res = self.r.execute_command("FT.SEARCH", "idx", "*", "FILTER", "n", "(37", "inf",
                                     "NOCONTENT")
        self.assertEqual(res, [2, b"doc:38", b"doc:39"])
        full = self.r.execute_command("FT.SEARCH", "idx", "@n:[0 39]", "NOCONTENT", "LIMIT", 0, 40)
        part = self.r.execute_command("FT.SEARCH", "idx", "@n:[0 39]", "NOCONTENT", "LIMIT", 5, 3)
        self.assertEqual(part, [40] + full[6:9])
        self.assertEqual(self.r.execute_command("FT.SEARCH", "idx", "*", "NOCONTENT", "LIMIT",
                                                39, 10), [40, full[40]])
        res = self.r.execute_command("FT.SEARCH", "idx", "@label:{d}", "INKEYS", 3, "doc:3",
                                     "doc:4", "doc:nope", "NOCONTENT")
        self.assertEqual(res, [1, b"doc:3"])

    def test_knn_after_filter_returns_k(self):
        n, dim = 2000, 8
        X, keys = self.load(n, dim, labels=[str(i) for i in range(10)])
        self.create(dim=dim)
        labels = np.array([i % 10 for i in range(n)])
        for flt, keep in (("@label:{3}", labels == 3),                       # 10%
                          ("@label:{3} @n:[0 19]", (labels == 3) & (np.arange(n) < 20)),  # 0.1%
                          ("@n:[(100 200] | @label:{7}", ((np.arange(n) > 100) & (np.arange(n) <= 200)) | (labels == 7))):
            with self.subTest(flt=flt):
                q = self.rng.standard_normal(dim)
                want = oracle("L2", q, X, 10, keys, keep)
                self.assert_knn(self.knn(q, flt="(%s)" % flt), want)

    def test_vector_range(self):
        X, keys = self.load(300, 4)
        self.create(dim=4)
        q = self.rng.standard_normal(4)
        d = distances("L2", q, X)
        radius = float(np.sort(d)[20:22].mean())  # clear of float32 rounding
        res = self.r.execute_command("FT.SEARCH", "idx", "@v:[VECTOR_RANGE $r $vec]=>{$YIELD_DISTANCE_AS: dist}",
                                     "PARAMS", 4, "r", radius, "vec", blob(q), "SORTBY", "dist",
                                     "RETURN", 1, "dist", "LIMIT", 0, 100, "DIALECT", 2)
        want = sorted((d[i], keys[i]) for i in range(300) if d[i] <= radius)
        self.assertEqual(res[0], len(want))
        got = [(float(res[i + 1][1]), res[i].decode()) for i in range(1, len(res), 2)]
        self.assertEqual([k for _, k in got], [k for _, k in want])
        for (gd, _), (wd, _) in zip(got, want):
            self.assertAlmostEqual(gd, wd, places=4)
        # combined with a tag filter
        res = self.r.execute_command("FT.SEARCH", "idx", "@v:[VECTOR_RANGE %r $vec] @label:{a}" % radius,
                                     "PARAMS", 2, "vec", blob(q), "NOCONTENT", "LIMIT", 0, 100)
        self.assertEqual(sorted(res[1:]), sorted(k.encode() for _, k in want if int(k[4:]) % 4 == 0))


class TestKeepingInStep(FtCase):
    def ids(self, q="*", k=100):
        res = self.r.execute_command("FT.SEARCH", "idx", q, "NOCONTENT", "LIMIT", 0, k)
        return set(x.decode() for x in res[1:])

    def nearest(self, q):
        return knn_keys(self.knn(q, k=1))[0]

    def test_writes_update_the_index(self):
        X, keys = self.load(30, 4)
        self.create(dim=4)
        far = np.full(4, 50.0)
        # HSET: a new document, then a changed vector
        self.r.hset("doc:new", mapping={"v": blob(far), "label": "z"})
        self.assertEqual(self.nearest(far), "doc:new")
        self.assertEqual(self.ids("@label:{z}"), {"doc:new"})
        self.r.hset("doc:0", "v", blob(far + 1))
        self.assertEqual(self.nearest(far + 1), "doc:0")
        self.r.hset("doc:0", "label", "y")
        self.assertEqual(self.ids("@label:{y}"), {"doc:0"})
        self.assertNotIn("doc:0", self.ids("@label:{a}"))
        # HDEL of the vector: still a document, no longer a KNN hit
        self.r.hdel("doc:0", "v")
        self.assertIn("doc:0", self.ids())
        self.assertNotIn("doc:0", knn_keys(self.knn(far + 1, k=40)))
        # DEL, UNLINK
        self.r.delete("doc:new")
        self.r.unlink("doc:1")
        self.assertEqual(self.ids() & {"doc:new", "doc:1"}, set())
        self.assertNotEqual(self.nearest(far), "doc:new")
        # a key outside the prefix is never indexed
        self.r.hset("other:1", mapping={"v": blob(far), "label": "z"})
        self.assertEqual(self.ids("@label:{z}"), set())
        # RENAME into and out of the prefix
        self.r.rename("other:1", "doc:moved")
        self.assertEqual(self.ids("@label:{z}"), {"doc:moved"})
        self.r.rename("doc:moved", "gone:1")
        self.assertEqual(self.ids("@label:{z}"), set())
        # SET over a hash removes it
        self.r.set("doc:2", "a string now")
        self.assertNotIn("doc:2", self.ids())
        # EXPIRE: gone once it expires (lazily or by the active cycle)
        self.r.pexpire("doc:3", 50)
        deadline = time.time() + 5
        while "doc:3" in self.ids() and time.time() < deadline:
            time.sleep(0.05)
        self.assertNotIn("doc:3", self.ids())
        # 30, +doc:new, -doc:new, -doc:1, -doc:2 (SET), -doc:3 (expired); doc:0 stays
        self.assertEqual(int(self.r.ft("idx").info()["num_docs"]), 27)
        # FLUSHDB empties the index, which then follows new writes
        self.r.flushdb()
        self.assertEqual(self.ids(), set())
        self.r.hset("doc:back", mapping={"v": blob(far), "label": "a"})
        self.assertEqual(self.ids(), {"doc:back"})
        self.assertEqual(self.nearest(far), "doc:back")

    def test_id_reuse_keeps_answers_exact(self):
        X, keys = self.load(100, 6)
        self.create(dim=6)
        live = dict(zip(keys, X))
        for round_ in range(3):
            for k in list(live)[::3]:
                self.r.delete(k)
                del live[k]
            for j in range(20):
                k = "doc:r%d_%d" % (round_, j)
                v = self.rng.standard_normal(6).astype(np.float32)
                self.r.hset(k, mapping={"v": blob(v), "label": "a", "n": 1})
                live[k] = v
            names = list(live)
            q = self.rng.standard_normal(6)
            self.assert_knn(self.knn(q), oracle("L2", q, np.array([live[k] for k in names]), 10, names))
            self.assertEqual(int(self.r.ft("idx").info()["num_docs"]), len(live))

    def test_wrong_size_blob_is_a_failure(self):
        X, keys = self.load(10, 4)
        self.r.hset("doc:bad", mapping={"v": b"\x00" * 12, "label": "a"})
        self.create(dim=4)
        info = self.r.ft("idx").info()
        self.assertEqual(int(info["hash_indexing_failures"]), 1)
        self.assertEqual(int(info["num_docs"]), 10)
        self.assertNotIn("doc:bad", self.ids())
        self.r.hset("doc:bad2", mapping={"v": b"\x01" * 20})
        self.r.hset("doc:0", "n", "not a number")
        info = self.r.ft("idx").info()
        self.assertEqual(int(info["hash_indexing_failures"]), 3)
        self.assertEqual(self.ids() & {"doc:bad2", "doc:0"}, set())
        self.r.hset("doc:bad", "v", blob([1, 2, 3, 4]))  # fixed: indexed
        self.assertIn("doc:bad", self.ids())
        self.assertEqual(self.nearest([1, 2, 3, 4]), "doc:bad")

    def test_existing_keys_indexed_in_the_background(self):
        X, keys = self.load(20000, 16)
        p = self.r.pipeline(transaction=False)  # FT.INFO in the same pass as FT.CREATE
        p.execute_command("FT.CREATE", "idx", "PREFIX", 1, "doc:", "SCHEMA", "v", "VECTOR",
                          "FLAT", 6, "TYPE", "FLOAT32", "DIM", 16, "DISTANCE_METRIC", "L2",
                          "label", "TAG")
        p.execute_command("FT.INFO", "idx")
        info = p.execute()[1]
        info = dict(zip(info[0::2], info[1::2]))
        self.assertEqual(info[b"indexing"], 1)
        self.assertLess(float(info[b"percent_indexed"]), 1)
        wait_indexed(self.r, "idx")
        info = self.r.ft("idx").info()
        self.assertEqual(int(info["num_docs"]), 20000)
        self.assertEqual(float(info["percent_indexed"]), 1.0)
        q = self.rng.standard_normal(16)
        self.assert_knn(self.knn(q), oracle("L2", q, X, 10, keys))

    def test_aliases_prefixes_and_databases(self):
        r1 = self.server.client(db=1)
        self.addCleanup(r1.close)
        r1.hset("a:1", mapping={"embedding": blob([1, 0]), "category": "Shoes", "price": 5})
        r1.hset("b:2", mapping={"embedding": blob([0, 1]), "category": "hats", "price": 50})
        r1.hset("c:3", mapping={"embedding": blob([1, 1]), "category": "shoes"})
        self.r.hset("a:9", mapping={"embedding": blob([1, 0]), "category": "shoes"})  # db 0
        r1.execute_command("FT.CREATE", "multi", "PREFIX", 2, "a:", "b:", "SCHEMA",
                           "embedding", "AS", "v", "VECTOR", "FLAT", 6, "TYPE", "FLOAT32", "DIM",
                           2, "DISTANCE_METRIC", "COSINE", "category", "AS", "cat", "TAG",
                           "CASESENSITIVE", "price", "AS", "p", "NUMERIC", "SORTABLE")
        info = r1.ft("multi").info()
        self.assertEqual(int(info["num_docs"]), 2)
        self.assertEqual(info["attributes"][1][:6], [b"identifier", b"category", b"attribute",
                                                     b"cat", b"type", b"TAG"])
        self.assertIn(b"CASESENSITIVE", info["attributes"][1])
        self.assertIn(b"SORTABLE", info["attributes"][2])
        # searched from another database, the index reads its own
        res = self.r.execute_command("FT.SEARCH", "multi", "*=>[KNN 5 @v $q AS d]", "PARAMS", 2,
                                     "q", blob([1, 0.1]), "RETURN", 3, "cat", "d", "p", "DIALECT", 2)
        self.assertEqual(res[0], 2)
        self.assertEqual(res[1], b"a:1")
        self.assertEqual(dict(zip(res[2][0::2], res[2][1::2]))[b"cat"], b"Shoes")
        self.assertEqual(self.r.execute_command("FT.SEARCH", "multi", "@cat:{shoes}"), [0])
        self.assertEqual(self.r.execute_command("FT.SEARCH", "multi", "@cat:{Shoes}", "NOCONTENT"),
                         [1, b"a:1"])
        self.assertEqual(self.r.execute_command("FT.SEARCH", "multi", "@p:[10 +inf]", "NOCONTENT"),
                         [1, b"b:2"])
        # writes in db 0 do not touch an index of db 1
        self.r.hset("b:7", mapping={"embedding": blob([0, 1]), "category": "hats"})
        self.assertEqual(int(r1.ft("multi").info()["num_docs"]), 2)
        r1.hset("b:7", mapping={"embedding": blob([0, 1]), "category": "hats"})
        self.assertEqual(int(r1.ft("multi").info()["num_docs"]), 3)
        # FLUSHALL empties every index; SKIPINITIALSCAN leaves existing keys out
        self.r.flushall()
        self.assertEqual(int(r1.ft("multi").info()["num_docs"]), 0)
        r1.hset("a:1", mapping={"embedding": blob([1, 0]), "category": "x"})
        r1.execute_command("FT.CREATE", "later", "SKIPINITIALSCAN", "PREFIX", 1, "a:", "SCHEMA",
                           "category", "TAG")
        self.assertEqual(int(r1.ft("later").info()["num_docs"]), 0)
        r1.hset("a:2", "category", "y")
        self.assertEqual(int(r1.ft("later").info()["num_docs"]), 1)
        self.assertEqual(int(r1.ft("multi").info()["num_docs"]), 2)

    def test_dropindex(self):
        self.load(10, 4)
        self.create(dim=4)
        self.r.ft("idx").dropindex(delete_documents=False)  # FT.DROP idx KEEPDOCS
        self.assertEqual(self.r.execute_command("FT._LIST"), [])
        self.assertEqual(self.r.dbsize(), 10)
        self.create(dim=4)
        self.r.execute_command("FT.DROPINDEX", "idx")
        self.assertEqual(self.r.dbsize(), 10)
        self.create(dim=4)
        self.assertEqual(self.r.execute_command("FT.DROPINDEX", "idx", "DD"), b"OK")
        self.assertEqual(self.r.dbsize(), 0)
        self.load(10, 4)
        self.create(dim=4)
        self.r.ft("idx").dropindex(delete_documents=True)  # FT.DROP idx ""
        self.assertEqual(self.r.dbsize(), 0)
        with self.assertRaisesRegex(redis.ResponseError, "no such index"):
            self.r.ft("idx").info()


class TestInfoLayout(FtCase):
    def test_redisvl_reads_attributes(self):
        self.r.execute_command(
            "FT.CREATE", "rvl", "ON", "HASH", "PREFIX", 1, "doc:", "SCHEMA",
            "v", "VECTOR", "FLAT", 6, "TYPE", "FLOAT32", "DIM", 4, "DISTANCE_METRIC", "COSINE",
            "label", "TAG", "SEPARATOR", "|", "n", "NUMERIC", "title", "TEXT")
        info = self.r.ft("rvl").info()
        # what RedisVL's convert_index_info_to_schema reads
        self.assertEqual(info["index_name"], "rvl")
        self.assertEqual(info["index_definition"][1], b"HASH")
        self.assertEqual(info["index_definition"][3][0], b"doc:")
        fields = {}
        for attrs in info["attributes"]:
            attrs = [a.decode() if isinstance(a, bytes) else a for a in attrs]
            self.assertEqual(attrs[0::2][:3], ["identifier", "attribute", "type"])
            fields[attrs[1]] = (attrs[5], {attrs[i].lower(): attrs[i + 1]
                                           for i in range(6, len(attrs), 2)})
        vtype, v = fields["v"]
        self.assertEqual(vtype, "VECTOR")
        self.assertEqual((int(v["dim"]), v["distance_metric"], v["algorithm"], v["data_type"]),
                         (4, "COSINE", "FLAT", "FLOAT32"))
        self.assertEqual(fields["label"], ("TAG", {"separator": "|"}))
        self.assertEqual(fields["n"][0], "NUMERIC")
        self.assertEqual(fields["title"][0], "TEXT")
        for key in ("num_docs", "hash_indexing_failures", "indexing", "percent_indexed"):
            self.assertIn(key, info)
        self.assertEqual(self.r.execute_command("FT._LIST"), [b"rvl"])
        self.assertIn("vector_indexes", self.r.info("vector"))


class TestBadInput(FtCase):
    def test_create_errors(self):
        base = ["FT.CREATE", "bad", "PREFIX", 1, "doc:", "SCHEMA", "v", "VECTOR", "FLAT"]
        cases = [
            (base + [6, "TYPE", "FLOAT32", "DIM", 0, "DISTANCE_METRIC", "L2"], "DIM"),
            (base + [6, "TYPE", "FLOAT32", "DIM", "x", "DISTANCE_METRIC", "L2"], "DIM"),
            (base + [6, "TYPE", "FLOAT32", "DIM", 4, "DISTANCE_METRIC", "MANHATTAN"], "DISTANCE_METRIC"),
            (base + [6, "TYPE", "FLOAT64", "DIM", 4, "DISTANCE_METRIC", "L2"], "FLOAT32"),
            (base + [4, "TYPE", "FLOAT32", "DIM", 4], "DISTANCE_METRIC"),
            (base + [7, "TYPE", "FLOAT32", "DIM", 4, "DISTANCE_METRIC", "L2"], "count"),
            (["FT.CREATE", "bad", "SCHEMA", "v", "VECTOR", "ANNOY", 2, "DIM", 4], "algorithm"),
            (["FT.CREATE", "bad", "SCHEMA", "v", "VECTOR", "IVF", 6, "TYPE", "FLOAT32", "DIM", 4,
              "DISTANCE_METRIC", "L2"], "FACTORY"),
        ] + [  # FAISS would divide by PQ0's zero (SIGFPE) or allocate without bound
            (["FT.CREATE", "bad", "SCHEMA", "v", "VECTOR", "IVF", 8, "TYPE", "FLOAT32", "DIM", 16,
              "DISTANCE_METRIC", "L2", "FACTORY", factory], "numbers must be 1 to")
            for factory in ("IVF4,PQ0", "IVF0,Flat", "IVF99999999,Flat", "IVF4,PQ4x40")
        ] + [
            (base + [8, "TYPE", "FLOAT32", "DIM", 4, "DISTANCE_METRIC", "L2", "M", 16], "FLAT vector attribute"),
            (["FT.CREATE", "bad", "SCHEMA", "g", "GEO"], "GEO"),
            (["FT.CREATE", "bad", "SCHEMA", "a", "TAG", "a", "NUMERIC"], "duplicate"),
            (["FT.CREATE", "bad", "ON", "JSON", "SCHEMA", "a", "TAG"], "JSON"),
            (["FT.CREATE", "bad", "PREFIX", 0, "SCHEMA", "a", "TAG"], "PREFIX"),
            (["FT.CREATE", "bad", "PREFIX", 9, "a", "SCHEMA", "a", "TAG"], "PREFIX"),
            # a record of more could not be read back at the next start
            (["FT.CREATE", "bad", "PREFIX", 64, *["p%d:" % i for i in range(64)], "PREFIX", 1, "x:",
              "SCHEMA", "a", "TAG"], "more than 64 prefixes"),
            (["FT.CREATE", "bad", "SCHEMA"], "SCHEMA"),
        ]
        for args, word in cases:
            with self.subTest(args=args):
                with self.assertRaisesRegex(redis.ResponseError, word):
                    self.r.execute_command(*args)
        self.assertEqual(self.r.execute_command("FT._LIST"), [])
        self.r.execute_command(*base[:2], "SCHEMA", "a", "TAG")
        with self.assertRaisesRegex(redis.ResponseError, "already exists"):
            self.r.execute_command(*base[:2], "SCHEMA", "a", "TAG")

    def test_search_errors(self):
        self.load(20, 4)
        self.create(dim=4)
        vec = blob([1, 2, 3, 4])
        cases = [
            ("*=>[KNN 0 @v $vec]", "KNN k"),
            ("*=>[KNN 100001 @v $vec]", "KNN k"),
            ("*=>[KNN -1 @v $vec]", "KNN k"),
            ("*=>[KNN 10 @v $missing]", "No such parameter"),
            ("*=>[KNN 10 @nope $vec]", "Unknown field"),
            ("*=>[KNN 10 @label $vec]", "VECTOR"),
            ("*=>[KNN 10 @v $short]", "blob size"),
            ("*=>[KNN ten @v $vec]", "KNN k"),
            ("*=>[KNN 10 @v $vec", "Syntax error"),
            ("@label:{a", "Syntax error"),
            ("@n:[1", "Syntax error"),
            ("@n:[x 2]", "number"),
            ("@label:[1 2]", "NUMERIC"),
            ("@n:{a}", "TAG"),
            ("hello", "full-text"),
            ("@title:hello", "TEXT"),
            ("((@n:[1 2])", "Syntax error"),
            ("@n:[1 2] )", "Syntax error"),
            ("", "empty query"),
            ("@v:[VECTOR_RANGE -1 $vec]", "radius"),
        ]
        for q, word in cases:
            with self.subTest(q=q):
                with self.assertRaisesRegex(redis.ResponseError, word):
                    self.r.execute_command("FT.SEARCH", "idx", q, "PARAMS", 4, "vec", vec,
                                           "short", b"\x00" * 8, "DIALECT", 2)
        for args, word in [(["LIMIT", -1, 10], "LIMIT"), (["PARAMS", 3, "a", "b", "c"], "even"),
                           (["PARAMS", 4, "a", "b"], "PARAMS"), (["RETURN", 5, "a"], "RETURN"),
                           (["SORTBY", "nosuch"], "nosuch"), (["BOGUS"], "BOGUS")]:
            with self.subTest(args=args):
                with self.assertRaisesRegex(redis.ResponseError, word):
                    self.r.execute_command("FT.SEARCH", "idx", "*", *args)
        with self.assertRaisesRegex(redis.ResponseError, "no such index"):
            self.r.execute_command("FT.SEARCH", "nosuch", "*")
        # a query that needs PARAMS without any
        with self.assertRaisesRegex(redis.ResponseError, "No such parameter"):
            self.r.ft("idx").search(Query("*=>[KNN 10 @v $vec]").dialect(2))
        self.assertTrue(self.r.ping())
        self.assertEqual(int(self.r.ft("idx").info()["num_docs"]), 20)


@OWN_PROCESS
class TestRestart(unittest.TestCase):
    def snapshots_written(self, r):
        return int(r.info("vector")["vector_snapshots_written"])

    def answers(self, r, queries):
        out = []
        for q in queries:
            res = r.execute_command("FT.SEARCH", "idx", "*=>[KNN 10 @v $q AS d]", "PARAMS", 2,
                                    "q", blob(q), "RETURN", 1, "d", "DIALECT", 2)
            out.append([(res[i], round(float(res[i + 1][1]), 4)) for i in range(1, len(res), 2)])
        res = r.execute_command("FT.SEARCH", "idx", "@label:{b} @n:[10 60]", "NOCONTENT",
                                "LIMIT", 0, 1000)
        out.append((res[0], sorted(res[1:])))  # document order is not kept across a rebuild
        return out

    def test_sigkill_snapshot_then_rebuild_flat(self):
        self.sigkill_snapshot_then_rebuild(["FLAT", 6])

    def test_sigkill_snapshot_then_rebuild_hnsw(self):
        # EF_RUNTIME far above the set's size: a rebuilt graph answers exactly as the old one
        self.sigkill_snapshot_then_rebuild(["HNSW", 8, "EF_RUNTIME", 2000])

    def test_sigkill_snapshot_then_rebuild_ivf(self):
        # trained (8 lists need 312 vectors); nprobe 8 searches every list: exact
        self.sigkill_snapshot_then_rebuild(["IVF", 10, "FACTORY", "IVF8,Flat", "EF_RUNTIME", 8])

    def sigkill_snapshot_then_rebuild(self, algo):
        rng = np.random.default_rng(3)
        X = rng.standard_normal((600, 8)).astype(np.float32)
        queries = rng.standard_normal((5, 8))
        with Server(durability="always") as s:
            r = s.client()
            p = r.pipeline(transaction=False)
            for i in range(600):
                p.hset("doc:%d" % i, mapping={"v": blob(X[i]), "label": "ab"[i % 2], "n": i})
            p.execute()
            r.execute_command("FT.CREATE", "idx", "PREFIX", 1, "doc:", "SCHEMA", "v", "VECTOR",
                              algo[0], algo[1], "TYPE", "FLOAT32", "DIM", 8, "DISTANCE_METRIC",
                              "L2", *algo[2:], "label", "TAG", "n", "NUMERIC")
            wait_indexed(r, "idx")
            deadline = time.time() + 10  # a finished build is snapshotted soon after
            while self.snapshots_written(r) < 1 and time.time() < deadline:
                time.sleep(0.05)
            self.assertGreaterEqual(self.snapshots_written(r), 1)
            snap = os.path.join(s.dir, "data", "vectors", "idx.qvi")
            self.assertTrue(os.path.exists(snap))
            # changes after the snapshot: the restart must reconcile them
            for i in range(0, 600, 7):
                r.delete("doc:%d" % i)
            for i in range(50):
                r.hset("doc:new%d" % i, mapping={"v": blob(rng.standard_normal(8)), "label": "b",
                                                 "n": 20 + i})
            r.hset("doc:1", "v", blob(queries[0]))
            before = self.answers(r, queries)
            s.kill()
            s.start()
            r = s.client()
            wait_indexed(r, "idx")
            self.assertEqual(int(r.info("vector")["vector_snapshot_loads"]), 1)
            self.assertEqual(self.answers(r, queries), before)
            self.assertEqual(int(r.ft("idx").info()["num_docs"]), 600 - 86 + 50)
            # the same again with the snapshot gone: rebuilt from the hashes
            s.kill()
            os.unlink(snap)
            s.start()
            r = s.client()
            wait_indexed(r, "idx")
            self.assertEqual(int(r.info("vector")["vector_rebuilds"]), 1)
            self.assertEqual(self.answers(r, queries), before)
            # a corrupt snapshot is refused and the index rebuilt
            s.stop()  # SIGTERM: the snapshot is written at shutdown
            with open(snap, "r+b") as f:
                f.seek(40)
                f.write(b"\xff\xff")
            s.start()
            r = s.client()
            wait_indexed(r, "idx")
            self.assertEqual(int(r.info("vector")["vector_rebuilds"]), 1)
            self.assertEqual(self.answers(r, queries), before)
            self.assertIn("refused", s.read_log())


if __name__ == "__main__":
    unittest.main()
