"""FS.KNN (DESIGN.md "Feature store", docs/featurestore.md "FS.KNN"): nearest entities by a
VECTOR feature of the online rows, checked against a numpy brute force over what the online
rows hold: with FLAT and INDEX NONE (exact scan) fields under L2, IP and COSINE, with HNSW at
a high EF, with filters (and NULLs), after updates (a newer push replaces a vector, an older
one does not, a NULL vector leaves), after FS.MATERIALIZE, past the TTL, after a view drop and
re-create, after SIGKILL and a restart, in RESP2 and RESP3; and every kind of bad input
answered by an error naming it, the server staying up.

Run: PYTHONPATH=tests/integration /usr/bin/python3 -m unittest -v test_fs_knn"""
import os
import struct
import time
import unittest
import zlib

import numpy as np
import redis

from harness import Server

OWN_PROCESS = unittest.skipIf(os.environ.get("TEST_SERVER"), "restarts its server")
T0 = 1_600_000_000_000  # event times (ms) for tests that do not depend on now
CITIES = ["Paris", "Lyon", "Nice", "Lille"]


def blob(v):
    return np.asarray(v, dtype=np.float32).tobytes()


def distance(metric, q, x):
    """As index/index.h reports it, in float64 from float32 inputs."""
    q = np.asarray(q, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if metric == "L2":
        return float(((q - x) ** 2).sum())
    if metric == "IP":
        return 1.0 - float(q @ x)
    return 1.0 - float(q @ x) / (np.linalg.norm(q) * np.linalg.norm(x))


class Oracle:
    """The online rows as the server should hold them: the newest (event, created) wins."""

    def __init__(self):
        self.rows = {}  # key -> (event, created, {field: value or None})

    def push(self, key, event, created, values):
        old = self.rows.get(key)
        if old is None or (event, created) >= old[:2]:
            self.rows[key] = (event, created, dict(values))

    def knn(self, field, metric, q, k, keep=lambda row: True):
        hits = []
        for key, (_, _, row) in self.rows.items():
            x = row.get(field)
            if x is None or not keep(row):
                continue
            if metric == "COSINE" and not np.any(x):
                continue
            hits.append((distance(metric, q, x), key))
        hits.sort()
        return hits[:k]


class KnnCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.server.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def setUp(self):
        self.r = self.server.client()
        self.addCleanup(self.r.close)
        self.tag = self.id().rsplit(".", 1)[1].replace("test_", "")
        # seeded by the test's name (crc32: str hash() differs from run to run)
        self.rng = np.random.default_rng(zlib.crc32(self.tag.encode()))

    def n(self, name):
        return "%s_%s" % (name, self.tag)

    def fs(self, *args):
        return self.r.execute_command(*args)

    def err(self, pattern, *args):
        with self.assertRaises(redis.ResponseError) as cm:
            self.fs(*args)
        self.assertIn(pattern, str(cm.exception), args)
        return str(cm.exception)

    def view(self, name, schema, *opts, entities=None):
        ents = entities or [self.n("item")]
        for e in ents:
            try:
                self.fs("FS.ENTITY.CREATE", e)
            except redis.ResponseError:
                pass  # already there
        args = ["FS.VIEW.CREATE", self.n(name), "ENTITIES", len(ents)] + ents + list(opts)
        self.assertEqual(self.fs(*args, "SCHEMA", *schema), b"OK")
        return self.n(name)

    def push(self, view, oracle, key, event, created, values):
        """FS.PUSH of values (None = left out, i.e. NULL) with explicit times."""
        args = ["FS.PUSH", view, key, event, "CREATED", created, "FIELDS"]
        for f, v in values.items():
            if v is None:
                continue
            if isinstance(v, np.ndarray):
                v = blob(v)
            elif isinstance(v, bool):
                v = "true" if v else "false"
            args += [f, v]
        replaced = self.fs(*args)
        if oracle is not None:
            oracle.push(key, event, created, values)
        return replaced

    def check(self, reply, want, returns=None, oracle=None):
        """reply (FS.KNN's) against want (Oracle.knn's), ties aside: the same number of hits,
        each hit's distance equal to its oracle distance and to the oracle's at its rank."""
        self.assertEqual(len(reply), len(want), (reply, want))
        exact = {key: d for d, key in want}
        for rank, (key, dist, values) in enumerate(reply):
            key = key.decode()
            dist = float(dist)
            tol = 1e-4 * (1 + abs(dist))
            self.assertIn(key, exact, "rank %d: %s is not among the nearest" % (rank, key))
            self.assertLessEqual(abs(dist - exact[key]), tol, (key, dist, exact[key]))
            self.assertLessEqual(abs(dist - want[rank][0]), tol, (rank, dist, want[rank]))
            if returns is not None:
                row = oracle.rows[key][2]
                self.assertEqual(len(values), len(returns))
                for f, got in zip(returns, values):
                    self.assert_value(row.get(f), got)

    def assert_value(self, want, got):
        if want is None:
            self.assertIsNone(got)
        elif isinstance(want, bool):
            self.assertEqual(int(got), int(want))
        elif isinstance(want, int):
            self.assertEqual(int(got), want)
        elif isinstance(want, float):
            self.assertEqual(np.float32(float(got)), np.float32(want))
        elif isinstance(want, np.ndarray):
            self.assertEqual(got, blob(want))
        else:
            self.assertEqual(got, want.encode())

    def random_rows(self, view, oracle, n, dim, vector_fields, null_every=0):
        """n entities with random vectors in each of vector_fields (the same vector), and
        rate FLOAT32, city STRING, trips INT64, active BOOL scalars; every null_every-th row
        has a NULL city and a NULL vector."""
        for i in range(n):
            x = self.rng.standard_normal(dim).astype(np.float32)
            nul = null_every and i % null_every == 0
            vals = {f: (None if nul else x) for f in vector_fields}
            vals.update({"rate": float(np.float32(self.rng.random())),
                         "city": None if nul else CITIES[i % 4],
                         "trips": int(self.rng.integers(0, 100)),
                         "active": bool(i % 3 == 0)})
            self.push(view, oracle, "e%d" % i, T0 + i, T0, vals)

    SCALARS = ["rate", "FLOAT32", "city", "STRING", "trips", "INT64", "active", "BOOL"]


class TestExact(KnnCase):
    def test_flat_and_scan_match_bruteforce(self):
        """FLAT and INDEX NONE fields answer exactly what a brute force over the online rows
        gives, for each metric, k from 1 to more than the rows, with and without RETURN."""
        dim = 12
        for metric in ("L2", "IP", "COSINE"):
            with self.subTest(metric=metric):
                v = self.view("v" + metric, ["flat", "VECTOR", dim, "METRIC", metric, "INDEX",
                                             "FLAT", "scan", "VECTOR", dim, "METRIC", metric,
                                             "INDEX", "NONE"] + self.SCALARS)
                o = Oracle()
                self.random_rows(v, o, 300, dim, ["flat", "scan"], null_every=17)
                for _ in range(5):
                    q = self.rng.standard_normal(dim).astype(np.float32)
                    for k in (1, 10, 299, 1000):
                        want = o.knn("flat", metric, q, k)
                        for field in ("flat", "scan"):
                            got = self.fs("FS.KNN", v, field, k, blob(q))
                            self.check(got, want, ["rate", "city", "trips", "active"], o)
                got = self.fs("FS.KNN", v, "scan", 5, blob(q), "RETURN", 2, "flat", "city")
                self.check(got, o.knn("scan", metric, q, 5), ["flat", "city"], o)
                self.assertEqual(self.fs("FS.KNN", v, "flat", 3, blob(q), "RETURN", 0)[0][2], [])

    def test_l2_distances_known(self):
        """Distances are L2 squared, 1 - u.v and 1 - cos, nearest first."""
        v = self.view("k", ["l2", "VECTOR", 2, "INDEX", "FLAT", "ip", "VECTOR", 2, "METRIC", "IP",
                            "INDEX", "FLAT", "cos", "VECTOR", 2, "METRIC", "COSINE", "INDEX",
                            "NONE"])
        for key, x in (("a", [1, 0]), ("b", [0, 2]), ("c", [3, 4])):
            self.push(v, None, key, T0, T0, {"l2": np.array(x), "ip": np.array(x),
                                             "cos": np.array(x)})
        q = blob([1, 0])
        self.assertEqual(self.fs("FS.KNN", v, "l2", 3, q),
                         [[b"a", b"0", []], [b"b", b"5", []], [b"c", b"20", []]])
        self.assertEqual(self.fs("FS.KNN", v, "ip", 3, q),
                         [[b"c", b"-2", []], [b"a", b"0", []], [b"b", b"1", []]])
        got = self.fs("FS.KNN", v, "cos", 3, q)
        self.assertEqual([x[0] for x in got], [b"a", b"c", b"b"])
        self.assertAlmostEqual(float(got[1][1]), 0.4, places=6)
        self.assertAlmostEqual(float(got[2][1]), 1.0, places=6)

    def test_empty_view_and_no_match(self):
        v = self.view("empty", ["emb", "VECTOR", 3, "INDEX", "FLAT", "s", "VECTOR", 3, "INDEX",
                                "NONE", "city", "STRING"])
        q = blob([1, 2, 3])
        self.assertEqual(self.fs("FS.KNN", v, "emb", 5, q), [])
        self.assertEqual(self.fs("FS.KNN", v, "s", 5, q), [])
        self.push(v, None, "x", T0, T0, {"city": "Paris"})  # no vectors at all
        self.assertEqual(self.fs("FS.KNN", v, "emb", 5, q), [])
        self.assertEqual(self.fs("FS.KNN", v, "s", 5, q), [])
        self.push(v, None, "y", T0, T0, {"emb": np.ones(3), "s": np.ones(3), "city": "Lyon"})
        for f in ("emb", "s"):
            self.assertEqual(self.fs("FS.KNN", v, f, 5, q, "FILTER", '.city == "Paris"'), [])
            self.assertEqual(len(self.fs("FS.KNN", v, f, 5, q, "FILTER", '.city == "Lyon"')), 1)

    def test_composite_keys(self):
        """Keys come back in their client form: parts joined by ':', escapes kept."""
        ents = [self.n("user"), self.n("shop")]
        v = self.view("pair", ["emb", "VECTOR", 2, "INDEX", "FLAT"], entities=ents)
        self.push(v, None, "u1:s\\:1", T0, T0, {"emb": np.array([0, 0])})
        self.push(v, None, "u\\\\2:s2", T0, T0, {"emb": np.array([1, 1])})
        got = self.fs("FS.KNN", v, "emb", 2, blob([0, 0]))
        self.assertEqual([x[0] for x in got], [b"u1:s\\:1", b"u\\\\2:s2"])


class TestFilters(KnnCase):
    FILTERS = [
        ('.rate > 0.5 and .city == "Paris"',
         lambda r: r["city"] is not None and r["rate"] > 0.5 and r["city"] == "Paris"),
        ('.city in ["Lyon", "Nice"]', lambda r: r["city"] in ("Lyon", "Nice")),
        ('.city not in ["Lyon", "Nice"]', lambda r: r["city"] is not None and
         r["city"] not in ("Lyon", "Nice")),
        ("not (.trips < 10) and .active", lambda r: r["trips"] >= 10 and r["active"]),
        ('.active or .city == "Lille"', lambda r: r["active"] or r["city"] == "Lille"),
        ('not .city == "Paris"', lambda r: r["city"] is not None and r["city"] != "Paris"),
        (".trips == 7 or .trips >= 95", lambda r: r["trips"] == 7 or r["trips"] >= 95),
        (".rate <= 0.05", lambda r: r["rate"] <= np.float32(0.05)),
        ('.city == "Rome"', lambda r: False),
    ]

    def test_filters_match_bruteforce(self):
        """Each filter keeps exactly the rows the same condition keeps in Python (a NULL
        never matches), for FLAT and the exact scan, and still returns min(k, matching)."""
        dim = 8
        v = self.view("f", ["flat", "VECTOR", dim, "INDEX", "FLAT", "scan", "VECTOR", dim,
                            "INDEX", "NONE"] + self.SCALARS)
        o = Oracle()
        self.random_rows(v, o, 400, dim, ["flat", "scan"], null_every=9)
        for expr, keep in self.FILTERS:
            for k in (5, 50):
                q = self.rng.standard_normal(dim).astype(np.float32)
                want = o.knn("flat", "L2", q, k, keep)
                for field in ("flat", "scan"):
                    with self.subTest(expr=expr, k=k, field=field):
                        got = self.fs("FS.KNN", v, field, k, blob(q), "FILTER", expr, "RETURN",
                                      2, "city", "rate")
                        self.check(got, want, ["city", "rate"], o)

    def test_options_any_order(self):
        v = self.view("o", ["emb", "VECTOR", 2, "INDEX", "FLAT", "city", "STRING"])
        o = Oracle()
        for i in range(20):
            self.push(v, o, "k%d" % i, T0, T0, {"emb": np.array([i, 0]), "city": CITIES[i % 4]})
        q = blob([0, 0])
        a = self.fs("FS.KNN", v, "emb", 3, q, "RETURN", 1, "city", "FILTER", '.city == "Nice"',
                    "EF", 50)
        b = self.fs("FS.KNN", v, "emb", 3, q, "ef", 50, "filter", '.city == "Nice"', "return", 1,
                    "city")
        self.assertEqual(a, b)
        self.assertEqual([x[0] for x in a], [b"k2", b"k6", b"k10"])
        self.assertEqual([x[2] for x in a], [[b"Nice"]] * 3)


class TestUpdates(KnnCase):
    def test_newer_replaces_older_does_not(self):
        """A newer push replaces the entity's vector in the index; an older one (or one
        TO OFFLINE) does not; a push without the vector removes it; a later one brings it
        back; FS.MATERIALIZE's online writes are indexed too."""
        for index in ("FLAT", "NONE"):
            with self.subTest(index=index):
                v = self.view("u" + index, ["emb", "VECTOR", 4, "INDEX", index,
                                            "city", "STRING"])
                o = Oracle()
                self.random_rows_simple(v, o, 60)
                q = self.rng.standard_normal(4).astype(np.float32)
                near = q + 0.001
                # newer: e5 moves next to q
                self.assertEqual(self.push(v, o, "e5", T0 + 100, T0, {"emb": near}), 1)
                self.check(self.fs("FS.KNN", v, "emb", 5, blob(q)), o.knn("emb", "L2", q, 5))
                self.assertEqual(self.fs("FS.KNN", v, "emb", 1, blob(q))[0][0], b"e5")
                # older event: ignored, by the index too
                self.assertEqual(self.push(v, o, "e6", T0 - 1, T0, {"emb": near}), 0)
                # same event, older created: ignored
                self.assertEqual(self.push(v, o, "e7", T0 + 7, T0 - 1, {"emb": near}), 0)
                self.check(self.fs("FS.KNN", v, "emb", 60, blob(q)), o.knn("emb", "L2", q, 60))
                # e6 kept its own (random) vector: none at the moved vector's distance
                got = {x[0]: float(x[1]) for x in self.fs("FS.KNN", v, "emb", 60, blob(q))}
                self.assertGreater(got[b"e6"], 100 * got[b"e5"])
                # TO OFFLINE leaves the online row (and the index) alone
                self.fs("FS.PUSH", v, "e8", T0 + 500, "TO", "OFFLINE", "FIELDS", "emb",
                        blob(q))
                self.check(self.fs("FS.KNN", v, "emb", 60, blob(q)), o.knn("emb", "L2", q, 60))
                # a newer row without the vector: the entity leaves the results
                self.push(v, o, "e5", T0 + 200, T0, {"city": "Paris"})
                got = self.fs("FS.KNN", v, "emb", 100, blob(q))
                self.assertNotIn(b"e5", [x[0] for x in got])
                self.check(got, o.knn("emb", "L2", q, 100))
                self.push(v, o, "e5", T0 + 300, T0, {"emb": q})
                self.assertEqual(self.fs("FS.KNN", v, "emb", 1, blob(q))[0][:2], [b"e5", b"0"])
                # history rows newer than the online row of e8, materialized
                self.assertEqual(self.fs("FS.MATERIALIZE", v, T0, T0 + 1000), 1)
                o.push("e8", T0 + 500, 0, {"emb": q})
                got = self.fs("FS.KNN", v, "emb", 60, blob(q))
                self.check(got, o.knn("emb", "L2", q, 60))
                self.assertEqual(sorted(x[0] for x in got[:2]), [b"e5", b"e8"])

    def random_rows_simple(self, v, o, n):
        for i in range(n):
            x = self.rng.standard_normal(4).astype(np.float32)
            self.push(v, o, "e%d" % i, T0 + i, T0, {"emb": x, "city": CITIES[i % 4]})

    def test_slot_reuse_many_updates(self):
        """Vectors that come and go many times: results stay exact."""
        v = self.view("churn", ["emb", "VECTOR", 3, "INDEX", "FLAT", "n", "INT64"])
        o = Oracle()
        t = T0
        for rnd in range(6):
            for i in range(80):
                t += 1
                keep = (i + rnd) % 3 != 0
                x = self.rng.standard_normal(3).astype(np.float32)
                self.push(v, o, "c%d" % i, t, T0, {"emb": x if keep else None, "n": rnd})
            q = self.rng.standard_normal(3).astype(np.float32)
            self.check(self.fs("FS.KNN", v, "emb", 100, blob(q)), o.knn("emb", "L2", q, 100))

    def test_ttl(self):
        """Rows older than the view's TTL are no candidates (FS.GET serves them as NULL)."""
        for index in ("FLAT", "NONE"):
            with self.subTest(index=index):
                v = self.view("ttl" + index, ["emb", "VECTOR", 2, "INDEX", index], "TTL", 3600)
                now = int(time.time() * 1000)
                self.push(v, None, "old", now - 7200 * 1000, now, {"emb": np.array([0, 0])})
                self.push(v, None, "new", now - 60 * 1000, now, {"emb": np.array([5, 5])})
                got = self.fs("FS.KNN", v, "emb", 5, blob([0, 0]))
                self.assertEqual([x[0] for x in got], [b"new"])
                # a newer row makes "old" fresh again
                self.push(v, None, "old", now, now, {"emb": np.array([0, 0])})
                got = self.fs("FS.KNN", v, "emb", 5, blob([0, 0]))
                self.assertEqual([x[0] for x in got], [b"old", b"new"])

    def test_view_drop_and_recreate(self):
        """A dropped view is gone (its index with it); the same name created again serves its
        new rows only."""
        v = self.view("d", ["emb", "VECTOR", 2, "INDEX", "FLAT", "s", "VECTOR", 2, "INDEX",
                            "NONE"])
        for i in range(30):
            self.push(v, None, "old%d" % i, T0, T0, {"emb": np.array([i, i]),
                                                     "s": np.array([i, i])})
        self.assertEqual(len(self.fs("FS.KNN", v, "emb", 50, blob([0, 0]))), 30)
        self.assertEqual(self.fs("FS.VIEW.DROP", v), b"OK")
        self.err("unknown feature view", "FS.KNN", v, "emb", 5, blob([0, 0]))
        self.assertEqual(self.fs("FS.VIEW.CREATE", v, "ENTITIES", 1, self.n("item"), "SCHEMA",
                                 "emb", "VECTOR", 2, "INDEX", "FLAT", "s", "VECTOR", 2, "INDEX",
                                 "NONE"), b"OK")
        for f in ("emb", "s"):
            self.assertEqual(self.fs("FS.KNN", v, f, 5, blob([0, 0])), [])
        self.push(v, None, "new", T0, T0, {"emb": np.array([9, 9]), "s": np.array([9, 9])})
        for f in ("emb", "s"):
            self.assertEqual(self.fs("FS.KNN", v, f, 5, blob([0, 0])), [[b"new", b"162", []]])

    def test_multi_exec(self):
        """Pushes inside MULTI are searched by a FS.KNN queued after them."""
        v = self.view("m", ["emb", "VECTOR", 2, "INDEX", "FLAT"])
        p = self.r.pipeline(transaction=True)
        p.execute_command("FS.PUSH", v, "a", T0, "FIELDS", "emb", blob([1, 1]))
        p.execute_command("FS.PUSH", v, "b", T0, "FIELDS", "emb", blob([2, 2]))
        p.execute_command("FS.KNN", v, "emb", 5, blob([0, 0]))
        res = p.execute()
        self.assertEqual([x[0] for x in res[2]], [b"a", b"b"])


class TestHnsw(KnnCase):
    def test_hnsw_high_ef_is_exact(self):
        """An HNSW field searched with a large EF finds the exact neighbours of a small set,
        with and without a filter, and after updates."""
        dim = 16
        for metric in ("L2", "IP", "COSINE"):
            with self.subTest(metric=metric):
                v = self.view("h" + metric, ["emb", "VECTOR", dim, "METRIC", metric, "M", 16,
                                             "EF_CONSTRUCTION", 200] + self.SCALARS)
                o = Oracle()
                self.random_rows(v, o, 300, dim, ["emb"], null_every=13)
                for i in range(0, 300, 7):  # updates: replaced vectors
                    x = self.rng.standard_normal(dim).astype(np.float32)
                    self.push(v, o, "e%d" % i, T0 + 1000 + i, T0, {"emb": x, "rate": 0.5,
                                                                  "city": "Paris", "trips": 1,
                                                                  "active": True})
                for _ in range(5):
                    q = self.rng.standard_normal(dim).astype(np.float32)
                    self.check(self.fs("FS.KNN", v, "emb", 10, blob(q), "EF", 500),
                               o.knn("emb", metric, q, 10))
                    for expr, keep in TestFilters.FILTERS[:4]:
                        got = self.fs("FS.KNN", v, "emb", 10, blob(q), "EF", 500, "FILTER", expr)
                        self.check(got, o.knn("emb", metric, q, 10, keep))

    def test_hnsw_selective_filter_returns_k(self):
        """A filter that keeps 2% of the rows still gives k results (min(k, matching)),
        exactly the filtered nearest at a default EF."""
        dim = 8
        v = self.view("sel", ["emb", "VECTOR", dim, "city", "STRING"])
        o = Oracle()
        for i in range(500):
            x = self.rng.standard_normal(dim).astype(np.float32)
            self.push(v, o, "s%d" % i, T0, T0, {"emb": x, "city": "Rome" if i % 50 == 0
                                                else "Paris"})
        q = self.rng.standard_normal(dim).astype(np.float32)
        keep = lambda r: r["city"] == "Rome"  # noqa: E731
        got = self.fs("FS.KNN", v, "emb", 10, blob(q), "FILTER", '.city == "Rome"')
        self.check(got, o.knn("emb", "L2", q, 10, keep))
        got = self.fs("FS.KNN", v, "emb", 30, blob(q), "FILTER", '.city == "Rome"')
        self.assertEqual(len(got), 10)
        self.check(got, o.knn("emb", "L2", q, 30, keep))


class TestResp3(KnnCase):
    def test_resp3_types(self):
        """RESP3: the distance is a double, values typed as FS.GET gives them."""
        v = self.view("r3", ["emb", "VECTOR", 2, "INDEX", "FLAT"] + self.SCALARS)
        self.push(v, None, "a", T0, T0, {"emb": np.array([1, 0]), "rate": 0.25, "city": "Paris",
                                         "trips": 3, "active": True})
        self.push(v, None, "b", T0, T0, {"emb": np.array([3, 0])})
        raw = self.server.raw()
        self.addCleanup(raw.close)
        raw.command("HELLO", "3")
        got = raw.command("FS.KNN", v, "emb", 5, blob([0, 0]))
        self.assertEqual(got, [[b"a", 1.0, [0.25, b"Paris", 3, 1]],
                               [b"b", 9.0, [None, None, None, None]]])
        raw.command("HELLO", "2")
        got = raw.command("FS.KNN", v, "emb", 1, blob([0, 0]))
        self.assertEqual(got, [[b"a", b"1", [b"0.25", b"Paris", 3, 1]]])


class TestBadInput(KnnCase):
    def test_errors(self):
        """Each bad argument gets an error naming it; nothing changes, the server stays up."""
        v = self.view("bad", ["emb", "VECTOR", 4, "INDEX", "FLAT", "cos", "VECTOR", 4, "METRIC",
                              "COSINE", "INDEX", "NONE"] + self.SCALARS)
        off = self.view("off", ["emb", "VECTOR", 4, "INDEX", "FLAT"], "ONLINE", "NO")
        self.push(v, None, "a", T0, T0, {"emb": np.ones(4), "cos": np.ones(4), "city": "Paris"})
        q = blob([1, 2, 3, 4])
        e = self.err
        e("wrong number of arguments", "FS.KNN", v, "emb", 3)
        e("unknown feature view 'nope'", "FS.KNN", "nope", "emb", 3, q)
        e("has ONLINE NO", "FS.KNN", off, "emb", 3, q)
        e("unknown field 'vec' of feature view '%s'" % v, "FS.KNN", v, "vec", 3, q)
        e("field 'city' of feature view '%s' is STRING, not a VECTOR" % v, "FS.KNN", v, "city",
          3, q)
        e("query vector has 12 bytes: field 'emb' is VECTOR 4, so it needs 16", "FS.KNN", v,
          "emb", 3, q[:12])
        e("query vector has 0 bytes", "FS.KNN", v, "emb", 3, b"")
        e("query vector has 17 bytes", "FS.KNN", v, "emb", 3, q + b"x")
        e("must be finite", "FS.KNN", v, "emb", 3, blob([1, float("nan"), 0, 0]))
        e("must be finite", "FS.KNN", v, "emb", 3, blob([1, float("inf"), 0, 0]))
        e("must be finite and not zero (COSINE)", "FS.KNN", v, "cos", 3, blob([0, 0, 0, 0]))
        for k in ("0", "-1", "100001", "99999999999999999999", "ten", "1.5", ""):
            e("k '%s' is not an integer from 1 to 100000" % k, "FS.KNN", v, "emb", k, q)
        e("EF '0' is not an integer from 1 to 100000", "FS.KNN", v, "emb", 3, q, "EF", 0)
        e("EF needs a value", "FS.KNN", v, "emb", 3, q, "EF")
        e("FILTER needs a value", "FS.KNN", v, "emb", 3, q, "FILTER")
        e("EF given twice", "FS.KNN", v, "emb", 3, q, "EF", 5, "EF", 6)
        e("FILTER given twice", "FS.KNN", v, "emb", 3, q, "FILTER", ".active", "FILTER",
          ".active")
        e("unknown or misplaced argument 'LIMIT'", "FS.KNN", v, "emb", 3, q, "LIMIT", 5)
        e("RETURN: unknown field 'nope'", "FS.KNN", v, "emb", 3, q, "RETURN", 1, "nope")
        e("RETURN count 3 but only 1 arguments follow", "FS.KNN", v, "emb", 3, q, "RETURN", 3,
          "city")
        e("RETURN needs a count of fields >= 0", "FS.KNN", v, "emb", 3, q, "RETURN", "-1")
        e("RETURN needs a count", "FS.KNN", v, "emb", 3, q, "RETURN")
        e("FILTER: at offset 6: cannot compare STRING with a number", "FS.KNN", v, "emb", 3, q,
          "FILTER", ".city > 3")
        e("FILTER: at offset 0: unknown field 'nope'", "FS.KNN", v, "emb", 3, q, "FILTER",
          ".nope == 1")
        e("FILTER: at offset 6: '=' is not an operator", "FS.KNN", v, "emb", 3, q, "FILTER",
          ".city = 'Paris'")
        e("FILTER: at offset 0: empty expression", "FS.KNN", v, "emb", 3, q, "FILTER", "")
        e("FILTER: at offset 1: expected a condition, found the end", "FS.KNN", v, "emb", 3, q,
          "FILTER", "(")
        e("FILTER: at offset 8: expected ')', found the end", "FS.KNN", v, "emb", 3, q,
          "FILTER", "(.active")
        e("cannot be filtered on", "FS.KNN", v, "emb", 3, q, "FILTER", ".emb == 1")
        e("nested deeper than 64", "FS.KNN", v, "emb", 3, q, "FILTER", "(" * 100)
        e("unexpected character", "FS.KNN", v, "emb", 3, q, "FILTER", ".city == \x00")
        self.assertTrue(self.r.ping())
        # a huge k is fine: every candidate comes back
        self.assertEqual(len(self.fs("FS.KNN", v, "emb", 100000, q)), 1)
        self.assertEqual(len(self.fs("FS.KNN", v, "emb", 1, q, "EF", 100000)), 1)

    def test_command_docs(self):
        raw = self.server.raw()
        self.addCleanup(raw.close)
        docs = raw.command("COMMAND", "DOCS", "FS.KNN")
        self.assertEqual(docs[0], b"fs.knn")
        self.assertIn(b"FILTER", repr(docs).encode())


@OWN_PROCESS
class TestRestart(KnnCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(durability="always")
        cls.server.__enter__()

    def test_sigkill_restart(self):
        """After SIGKILL and a restart the indexes are built again from the online rows and
        answer as before; writes after the restart are followed."""
        dim = 6
        v = self.view("rs", ["flat", "VECTOR", dim, "INDEX", "FLAT", "scan", "VECTOR", dim,
                             "INDEX", "NONE"] + self.SCALARS)
        o = Oracle()
        self.random_rows(v, o, 200, dim, ["flat", "scan"], null_every=11)
        qs = [self.rng.standard_normal(dim).astype(np.float32) for _ in range(3)]
        before = [self.fs("FS.KNN", v, "flat", 20, blob(q), "FILTER", ".trips > 30") for q in qs]
        self.server.kill()
        self.server.start()
        self.r = self.server.client()
        self.addCleanup(self.r.close)
        keep = lambda r: r["trips"] > 30  # noqa: E731
        for q, b in zip(qs, before):
            for field in ("flat", "scan"):
                got = self.fs("FS.KNN", v, field, 20, blob(q), "FILTER", ".trips > 30")
                self.check(got, o.knn("flat", "L2", q, 20, keep), ["rate", "city", "trips",
                                                                   "active"], o)
            self.assertEqual(self.fs("FS.KNN", v, "flat", 20, blob(q), "FILTER", ".trips > 30"),
                             b)
        self.push(v, o, "e1", T0 + 10_000, T0, {"flat": qs[0], "scan": qs[0], "trips": 50})
        self.assertEqual(self.fs("FS.KNN", v, "flat", 1, blob(qs[0]))[0][:2], [b"e1", b"0"])
        self.check(self.fs("FS.KNN", v, "flat", 200, blob(qs[1])), o.knn("flat", "L2", qs[1], 200))


if __name__ == "__main__":
    unittest.main()
