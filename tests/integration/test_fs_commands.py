"""The FS.* commands one by one (DESIGN.md "Feature store"): the catalog (entities, views,
services), FS.PUSH, the online reads FS.GET and FS.MGET with WITHMETA statuses and TTL, the
history reads FS.ASOF and FS.HISTORY, FS.MATERIALIZE, RETENTION with FS.VIEW.COMPACT, typed
replies in RESP2 and RESP3, composite entity keys with escapes, a restart, COMMAND DOCS and
INFO featurestore; and every kind of bad input answered by an error that changes nothing.

Each test uses names of its own, so the tests share one server (or TEST_SERVER).
Run: PYTHONPATH=tests/integration /usr/bin/python3 -m unittest -v test_fs_commands"""
import os
import struct
import time
import unittest

import redis

import harness
from harness import Server
from test_resp3 import TypedClient, map_get

OWN_PROCESS = unittest.skipIf(os.environ.get("TEST_SERVER"), "restarts its server")

T0 = 1_600_000_000_000  # a fixed event time (ms) for tests that do not depend on now
HOUR = 3600 * 1000


def now_ms():
    return int(time.time() * 1000)


def pairs(flat):
    """A RESP2 map (flat list) as a dict with str keys."""
    return {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}


class FSCase(unittest.TestCase):
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

    def fs(self, *args):
        return self.r.execute_command(*args)

    def n(self, name):
        """A catalog name private to this test."""
        return "%s_%s" % (name, self.tag)

    def err(self, pattern, *args):
        """Runs args, expecting an error whose text contains pattern."""
        with self.assertRaises(redis.ResponseError) as cm:
            self.fs(*args)
        self.assertIn(pattern, str(cm.exception), args)
        return str(cm.exception)

    def entity(self, name, *opts):
        self.assertEqual(self.fs("FS.ENTITY.CREATE", self.n(name), *opts), b"OK")
        return self.n(name)

    def view(self, name, entities, schema, *opts):
        args = ["FS.VIEW.CREATE", self.n(name), "ENTITIES", len(entities)] + list(entities)
        args += list(opts) + ["SCHEMA"] + list(schema)
        self.assertEqual(self.fs(*args), b"OK")
        return self.n(name)

    def info(self, view):
        return pairs(self.fs("FS.VIEW.INFO", view))

    def driver_view(self, *opts):
        """A view of conv_rate FLOAT64, trips INT64, city STRING keyed by driver."""
        d = self.entity("driver")
        return self.view("stats", [d], ["conv_rate", "FLOAT64", "trips", "INT64",
                                         "city", "STRING"], *opts)


class TestCatalog(FSCase):
    def test_entities(self):
        d = self.entity("driver", "DESCRIPTION", "a driver")
        c = self.entity("cust", "TYPE", "INT64")
        names = self.fs("FS.ENTITY.LIST")
        self.assertIn(d.encode(), names)
        self.assertIn(c.encode(), names)
        self.assertEqual(names, sorted(names))  # name order
        self.err("exists", "FS.ENTITY.CREATE", d)
        self.err("TYPE 'FLOAT' is not STRING or INT64", "FS.ENTITY.CREATE", self.n("x"), "TYPE",
                 "FLOAT")
        self.err("DESCRIPTION needs a value", "FS.ENTITY.CREATE", self.n("x"), "DESCRIPTION")
        self.err("unknown or misplaced argument 'COLOR'", "FS.ENTITY.CREATE", self.n("x"),
                 "COLOR", "red")
        self.assertNotIn(self.n("x").encode(), self.fs("FS.ENTITY.LIST"))
        v = self.view("v", [c], ["a", "INT64"])
        self.err("", "FS.ENTITY.DROP", c)  # a view uses it
        self.assertIn(c.encode(), self.fs("FS.ENTITY.LIST"))
        self.assertEqual(self.fs("FS.VIEW.DROP", v), b"OK")
        self.assertEqual(self.fs("FS.ENTITY.DROP", c), b"OK")
        self.assertNotIn(c.encode(), self.fs("FS.ENTITY.LIST"))
        self.err("unknown entity '%s'" % c, "FS.ENTITY.DROP", c)

    def test_view_info(self):
        d = self.entity("driver")
        c = self.entity("cust", "TYPE", "INT64")
        v = self.view("v", [d, c], ["rate", "FLOAT32", "emb", "VECTOR", "4", "METRIC", "COSINE",
                                    "INDEX", "FLAT", "M", "8", "EF_CONSTRUCTION", "50",
                                    "n", "INT32", "e2", "VECTOR", "2", "ok", "BOOL",
                                    "when", "TIMESTAMP", "raw", "BYTES"],
                      "TTL", "60", "RETENTION", "86400", "ONLINE", "NO")
        info = self.info(v)
        self.assertEqual(set(info), {"name", "id", "entities", "ttl", "retention", "online",
                                     "created", "online_rows", "schema"})
        self.assertEqual(info["name"], v.encode())
        self.assertIsInstance(info["id"], int)
        self.assertEqual(info["entities"], [d.encode(), c.encode()])
        self.assertEqual((info["ttl"], info["retention"], info["online"]), (60, 86400, 0))
        self.assertLessEqual(abs(info["created"] - now_ms()), 60_000)
        self.assertEqual(info["online_rows"], 0)
        self.assertEqual(info["schema"], [
            [b"rate", b"FLOAT32"],
            [b"emb", b"VECTOR 4 METRIC COSINE INDEX FLAT M 8 EF_CONSTRUCTION 50"],
            [b"n", b"INT32"], [b"e2", b"VECTOR 2 METRIC L2 INDEX HNSW M 16 EF_CONSTRUCTION 200"],
            [b"ok", b"BOOL"], [b"when", b"TIMESTAMP"], [b"raw", b"BYTES"]])
        self.assertIn(v.encode(), self.fs("FS.VIEW.LIST"))
        w = self.view("w", [d], ["x", "STRING"])
        self.assertEqual(self.info(w)["online"], 1)  # ONLINE YES by default
        self.assertGreater(self.info(w)["id"], info["id"])
        self.assertEqual((self.info(w)["ttl"], self.info(w)["retention"]), (0, 0))
        self.assertEqual(self.fs("FS.VIEW.DROP", w), b"OK")
        self.assertNotIn(w.encode(), self.fs("FS.VIEW.LIST"))
        self.err("unknown feature view '%s'" % w, "FS.VIEW.INFO", w)
        self.err("unknown feature view '%s'" % w, "FS.VIEW.DROP", w)

    def test_view_create_errors_change_nothing(self):
        d = self.entity("driver")
        name = self.n("bad")
        before = self.fs("FS.VIEW.LIST")
        base = ["FS.VIEW.CREATE", name, "ENTITIES", "1", d]
        cases = [
            ("missing SCHEMA", base + ["TTL", "1", "ONLINE", "YES"]),
            ("wrong number of arguments", base),
            ("SCHEMA needs at least one field", base + ["TTL", "1", "SCHEMA"]),
            ("missing ENTITIES", ["FS.VIEW.CREATE", name, "TTL", "5", "ONLINE", "NO", "SCHEMA", "a",
                                  "INT64"]),
            ("unknown type 'DECIMAL' for field 'a'", base + ["SCHEMA", "a", "DECIMAL"]),
            ("field 'b' needs a type", base + ["SCHEMA", "a", "INT64", "b"]),
            ("VECTOR '0' is not an integer", base + ["SCHEMA", "a", "VECTOR", "0"]),
            ("VECTOR 'x' is not an integer", base + ["SCHEMA", "a", "VECTOR", "x"]),
            ("VECTOR needs a value", base + ["SCHEMA", "a", "VECTOR"]),
            ("METRIC 'L3' is not one of L2|IP|COSINE", base + ["SCHEMA", "a", "VECTOR", "2", "METRIC", "L3"]),
            ("INDEX 'IVF' is not one of", base + ["SCHEMA", "a", "VECTOR", "2", "INDEX", "IVF"]),
            ("M '1' is not an integer from 2", base + ["SCHEMA", "a", "VECTOR", "2", "M", "1"]),
            ("EF_CONSTRUCTION '0'", base + ["SCHEMA", "a", "VECTOR", "2", "EF_CONSTRUCTION", "0"]),
            ("TTL '-1' is not a number of seconds", base + ["TTL", "-1", "SCHEMA", "a", "INT64"]),
            ("TTL '1.5' is not a number of seconds", base + ["TTL", "1.5", "SCHEMA", "a", "INT64"]),
            ("RETENTION 'x'", base + ["RETENTION", "x", "SCHEMA", "a", "INT64"]),
            ("ONLINE 'MAYBE' is not one of YES|NO", base + ["ONLINE", "MAYBE", "SCHEMA", "a", "INT64"]),
            ("unknown or misplaced argument 'COLOR'",
             base + ["COLOR", "x", "SCHEMA", "a", "INT64"]),
            ("ENTITIES count '0' is not an integer >= 1",
             ["FS.VIEW.CREATE", name, "ENTITIES", "0", "SCHEMA", "a", "INT64", "b", "INT64"]),
            ("ENTITIES count 9 but only",
             ["FS.VIEW.CREATE", name, "ENTITIES", "9", d, "SCHEMA", "a", "INT64"]),
            ("ENTITIES given twice", base + ["ENTITIES", "1", d, "SCHEMA", "a", "INT64"]),
            ("", base + ["SCHEMA", "a", "INT64", "a", "STRING"]),  # duplicate field
            ("", base + ["SCHEMA", "a:b", "INT64"]),  # ':' in a name
            ("", ["FS.VIEW.CREATE", name, "ENTITIES", "1", self.n("nosuch"), "SCHEMA", "a",
                  "INT64"]),
            ("", ["FS.VIEW.CREATE", name, "ENTITIES", "2", d, d, "SCHEMA", "a", "INT64"]),
        ]
        for pattern, args in cases:
            self.err(pattern, *args)
        self.assertEqual(self.fs("FS.VIEW.LIST"), before)
        self.view("bad", [d], ["a", "INT64"])  # the name is still free
        self.err("exists", *(base + ["SCHEMA", "a", "INT64"]))

    def test_services(self):
        d = self.entity("driver")
        v = self.view("v", [d], ["a", "INT64", "b", "STRING"])
        w = self.view("w", [d], ["c", "FLOAT64"])
        s = self.n("svc")
        self.assertEqual(self.fs("FS.SERVICE.CREATE", s, "FEATURES", "2", v + ":b", w + ":*"),
                         b"OK")
        self.assertIn(s.encode(), self.fs("FS.SERVICE.LIST"))
        info = pairs(self.fs("FS.SERVICE.INFO", s))
        self.assertEqual(info, {"name": s.encode(),
                                "features": [(v + ":b").encode(), (w + ":*").encode()]})
        bad = self.n("bad")
        for pattern, args in [
            ("unknown feature view", ("FS.SERVICE.CREATE", bad, "FEATURES", "1", "nosuch:a")),
            ("unknown field 'zz' of feature view '%s'" % v,
             ("FS.SERVICE.CREATE", bad, "FEATURES", "1", v + ":zz")),
            ("is not <view>:<field>", ("FS.SERVICE.CREATE", bad, "FEATURES", "1", v)),
            ("FEATURES count 3 but only 1", ("FS.SERVICE.CREATE", bad, "FEATURES", "3", v + ":a")),
            ("FEATURES needs a positive count", ("FS.SERVICE.CREATE", bad, "FEATURES", "0", "x")),
            ("unknown or misplaced argument 'EXTRA'",
             ("FS.SERVICE.CREATE", bad, "FEATURES", "1", v + ":a", "EXTRA")),
            ("missing FEATURES", ("FS.SERVICE.CREATE", bad, "FEATURE", "1", v + ":a")),
            ("exists", ("FS.SERVICE.CREATE", s, "FEATURES", "1", v + ":a")),
        ]:
            self.err(pattern, *args)
        self.assertNotIn(bad.encode(), self.fs("FS.SERVICE.LIST"))
        self.err("", "FS.VIEW.DROP", w)  # the service uses it
        self.assertIn(w.encode(), self.fs("FS.VIEW.LIST"))
        self.assertEqual(self.fs("FS.SERVICE.DROP", s), b"OK")
        self.err("unknown feature service '%s'" % s, "FS.SERVICE.INFO", s)
        self.err("unknown feature service '%s'" % s, "FS.SERVICE.DROP", s)
        self.assertEqual(self.fs("FS.VIEW.DROP", w), b"OK")


class TestPushAndRead(FSCase):
    def test_push_get_typed_values(self):
        d = self.entity("driver")
        vec = struct.pack("<3f", 1.5, -2.0, 0.25)
        v = self.view("v", [d], ["i32", "INT32", "i64", "INT64", "f32", "FLOAT32",
                                 "f64", "FLOAT64", "ok", "BOOL", "s", "STRING", "raw", "BYTES",
                                 "ts", "TIMESTAMP", "emb", "VECTOR", "3"])
        self.assertEqual(self.fs("FS.PUSH", v, "d1", T0, "FIELDS", "i32", "-7",
                                 "i64", "9007199254740993", "f32", "0.1", "f64", "2.5e-3",
                                 "ok", "true", "s", "Paris", "raw", b"\x00\xff\r\n",
                                 "ts", "2021-04-12T10:59:42.123456Z", "emb", vec), 1)
        got = self.fs("FS.GET", v, "d1")
        self.assertEqual(got, [-7, 9007199254740993, b"0.1", b"0.0025", 1, b"Paris",
                               b"\x00\xff\r\n", b"2021-04-12T10:59:42.123456Z", vec])
        self.assertEqual(self.fs("FS.GET", v, "d1", "FEATURES", "2", "s", "i32"), [b"Paris", -7])
        # RESP3: integers, doubles, bulk strings, nulls
        t = TypedClient(self.server.host, self.server.port)
        self.addCleanup(t.close)
        t.command("HELLO", "3")
        self.assertEqual(t.command("FS.GET", v, "d1"), ("array", [
            ("int", -7), ("int", 9007199254740993), ("double", b"0.1"), ("double", b"0.0025"),
            ("int", 1), ("bulk", b"Paris"), ("bulk", b"\x00\xff\r\n"),
            ("bulk", b"2021-04-12T10:59:42.123456Z"), ("bulk", vec)]))
        self.assertEqual(t.command("FS.GET", v, "nobody", "FEATURES", "1", "f64"),
                         ("array", [("null",)]))
        # missing fields are NULL; an older event does not replace the online row
        self.assertEqual(self.fs("FS.PUSH", v, "d1", T0 + 1, "FIELDS", "s", "Lyon"), 1)
        self.assertEqual(self.fs("FS.GET", v, "d1", "FEATURES", "2", "s", "i32"), [b"Lyon", None])
        self.assertEqual(self.fs("FS.PUSH", v, "d1", T0 - 5, "FIELDS", "s", "Old"), 0)
        self.assertEqual(self.fs("FS.GET", v, "d1", "FEATURES", "1", "s"), [b"Lyon"])
        # same event: the later created wins, an earlier created does not
        self.assertEqual(self.fs("FS.PUSH", v, "d1", T0 + 2, "CREATED", T0 + 10, "FIELDS",
                                 "s", "New"), 1)
        self.assertEqual(self.fs("FS.PUSH", v, "d1", T0 + 2, "CREATED", T0 + 9, "FIELDS",
                                 "s", "Stale"), 0)
        self.assertEqual(self.fs("FS.PUSH", v, "d1", T0 + 2, "CREATED", T0 + 10, "FIELDS",
                                 "s", "Same"), 1)  # the same (event, created) replaces
        self.assertEqual(self.fs("FS.GET", v, "d1", "FEATURES", "1", "s"), [b"Same"])
        self.assertEqual(self.info(v)["online_rows"], 1)

    def test_push_targets(self):
        v = self.driver_view()
        # TO OFFLINE: history only
        self.assertEqual(self.fs("FS.PUSH", v, "a", T0, "TO", "OFFLINE", "FIELDS", "trips", "1"), 0)
        self.assertEqual(self.fs("FS.GET", v, "a", "FEATURES", "1", "trips"), [None])
        self.assertEqual(len(self.fs("FS.HISTORY", v, "a")), 1)
        # TO ONLINE: online only
        self.assertEqual(self.fs("FS.PUSH", v, "b", T0, "TO", "ONLINE", "FIELDS", "trips", "2"), 1)
        self.assertEqual(self.fs("FS.GET", v, "b", "FEATURES", "1", "trips"), [2])
        self.assertEqual(self.fs("FS.HISTORY", v, "b"), [])
        # default BOTH
        self.assertEqual(self.fs("FS.PUSH", v, "c", T0, "FIELDS", "trips", "3"), 1)
        self.assertEqual(self.fs("FS.GET", v, "c", "FEATURES", "1", "trips"), [3])
        self.assertEqual(len(self.fs("FS.HISTORY", v, "c")), 1)
        # ONLINE NO: history only, TO ONLINE refused
        d = self.entity("other")
        off = self.view("off", [d], ["x", "INT64"], "ONLINE", "NO")
        self.assertEqual(self.fs("FS.PUSH", off, "k", T0, "FIELDS", "x", "1"), 0)
        self.assertEqual(self.fs("FS.GET", off, "k"), [None])
        self.assertEqual(self.fs("FS.ASOF", off, "k", T0), [1])
        self.err("ONLINE NO", "FS.PUSH", off, "k", T0, "TO", "ONLINE", "FIELDS", "x", "2")
        self.assertEqual(len(self.fs("FS.HISTORY", off, "k")), 1)

    def test_push_in_multi(self):
        v = self.driver_view()
        p = self.r.pipeline(transaction=True)
        p.execute_command("FS.PUSH", v, "m", T0, "FIELDS", "trips", "5")
        p.execute_command("FS.GET", v, "m", "FEATURES", "1", "trips")
        p.execute_command("FS.PUSH", v, "m", T0 - 1, "FIELDS", "trips", "4")
        self.assertEqual(p.execute(), [1, [5], 0])
        self.assertEqual([r[0] for r in self.fs("FS.HISTORY", v, "m")], [T0 - 1, T0])

    def offset(self):
        return self.r.info("replication")["master_repl_offset"]

    def test_created_defaults_to_receive_time(self):
        v = self.driver_view()
        offset = self.offset()
        before = now_ms()
        self.fs("FS.PUSH", v, "a", T0, "FIELDS", "trips", "1")
        after = now_ms()
        # logged for replicas with the CREATED the server chose (27 bytes of ISO-8601, to the
        # microsecond), so that a replica stores the same row
        logged = harness.encode("FS.PUSH", v, "a", T0, "CREATED", "x" * 27, "FIELDS", "trips",
                                "1")
        self.assertEqual(self.offset() - offset, len(logged))
        offset = self.offset()
        self.fs("FS.PUSH", v, "a2", T0, "CREATED", T0, "FIELDS", "trips", "1")
        self.assertEqual(self.offset() - offset,
                         len(harness.encode("FS.PUSH", v, "a2", T0, "CREATED", T0, "FIELDS",
                                            "trips", "1")))
        [[event, created, values]] = self.fs("FS.HISTORY", v, "a")
        self.assertEqual(event, T0)
        self.assertTrue(before - 1 <= created <= after + 1, (before, created, after))
        self.fs("FS.PUSH", v, "b", T0, "CREATED", "2021-04-12T10:59:42.5Z", "FIELDS", "trips", "1")
        self.assertEqual(self.fs("FS.HISTORY", v, "b")[0][1], 1618225182500)

    def test_withmeta_statuses_and_ttl(self):
        v = self.driver_view("TTL", "3600")
        now = now_ms()
        fresh, stale = now - 600_000, now - 2 * HOUR  # 10 minutes and 2 hours old
        self.fs("FS.PUSH", v, "fresh", fresh, "FIELDS", "conv_rate", "0.5", "trips", "3")
        self.fs("FS.PUSH", v, "stale", stale, "FIELDS", "conv_rate", "0.7")
        self.assertEqual(self.fs("FS.GET", v, "fresh", "WITHMETA"), [
            [b"0.5", fresh, b"PRESENT"], [3, fresh, b"PRESENT"], [None, fresh, b"NULL_VALUE"]])
        self.assertEqual(self.fs("FS.GET", v, "stale", "FEATURES", "2", "conv_rate", "city",
                                 "WITHMETA"),
                         [[None, stale, b"OUTSIDE_MAX_AGE"], [None, stale, b"OUTSIDE_MAX_AGE"]])
        self.assertEqual(self.fs("FS.GET", v, "stale"), [None, None, None])
        self.assertEqual(self.fs("FS.GET", v, "nobody", "FEATURES", "1", "trips", "WITHMETA"),
                         [[None, None, b"NOT_FOUND"]])
        # TTL edges in FS.GET, relative to now with a wide margin on each side
        self.fs("FS.PUSH", v, "edge_in", now - HOUR + 120_000, "FIELDS", "trips", "1")
        self.fs("FS.PUSH", v, "edge_out", now - HOUR - 120_000, "FIELDS", "trips", "1")
        self.assertEqual(self.fs("FS.GET", v, "edge_in", "FEATURES", "1", "trips"), [1])
        self.assertEqual(self.fs("FS.GET", v, "edge_out", "FEATURES", "1", "trips"), [None])
        # TTL 0: no limit
        w = self.view("nolimit", [self.n("driver")], ["x", "INT64"])
        self.fs("FS.PUSH", w, "k", 1000, "FIELDS", "x", "4")
        self.assertEqual(self.fs("FS.GET", w, "k", "WITHMETA"), [[4, 1000, b"PRESENT"]])
        # RESP3 meta
        t = TypedClient(self.server.host, self.server.port)
        self.addCleanup(t.close)
        t.command("HELLO", "3")
        self.assertEqual(t.command("FS.GET", v, "nobody", "FEATURES", "1", "conv_rate",
                                   "WITHMETA"),
                         ("array", [("array", [("null",), ("null",), ("bulk", b"NOT_FOUND")])]))
        self.assertEqual(t.command("FS.GET", v, "fresh", "FEATURES", "1", "conv_rate",
                                   "WITHMETA"),
                         ("array", [("array", [("double", b"0.5"), ("int", fresh),
                                               ("bulk", b"PRESENT")])]))

    def test_asof_point_in_time_and_ttl_edges(self):
        v = self.driver_view("TTL", "10")  # 10 s
        self.fs("FS.PUSH", v, "d", T0, "CREATED", T0, "FIELDS", "trips", "1")
        self.fs("FS.PUSH", v, "d", T0, "CREATED", T0 + 5, "FIELDS", "trips", "2")  # tie: later
        self.fs("FS.PUSH", v, "d", T0 + 20_000, "FIELDS", "trips", "3")
        asof = lambda t, *more: self.fs("FS.ASOF", v, "d", t, "FEATURES", "1", "trips", *more)
        self.assertEqual(asof(T0 - 1), [None])
        self.assertEqual(asof(T0 - 1, "WITHMETA"), [[None, None, b"NOT_FOUND"]])
        self.assertEqual(asof(T0), [2])  # ties broken by the largest created
        self.assertEqual(asof(T0 + 10_000), [2])  # event == t - TTL qualifies
        self.assertEqual(asof(T0 + 10_001), [None])  # one ms later it does not
        self.assertEqual(asof(T0 + 10_001, "WITHMETA"), [[None, None, b"NOT_FOUND"]])
        self.assertEqual(asof(T0 + 20_000, "WITHMETA"), [[3, T0 + 20_000, b"PRESENT"]])
        self.assertEqual(asof("2020-09-13T12:26:40Z"), [2])  # T0 in ISO-8601
        self.assertEqual(self.fs("FS.ASOF", v, "d", T0, "WITHMETA"),
                         [[None, T0, b"NULL_VALUE"], [2, T0, b"PRESENT"],
                          [None, T0, b"NULL_VALUE"]])
        self.assertEqual(self.fs("FS.ASOF", v, "nobody", T0), [None, None, None])

    def test_history(self):
        v = self.driver_view()
        for i in range(5):
            self.fs("FS.PUSH", v, "d", T0 + i * 1000, "CREATED", T0 + 50_000 + i, "FIELDS",
                    "trips", i, "city", "c%d" % i)
        rows = self.fs("FS.HISTORY", v, "d")
        self.assertEqual(rows[0], [T0, T0 + 50_000, [None, 0, b"c0"]])
        self.assertEqual([r[0] for r in rows], [T0 + i * 1000 for i in range(5)])
        self.assertEqual([r[0] for r in self.fs("FS.HISTORY", v, "d", "DESC")],
                         [T0 + i * 1000 for i in reversed(range(5))])
        self.assertEqual([r[0] for r in self.fs("FS.HISTORY", v, "d", "FROM", T0 + 1000,
                                                "TO", T0 + 3000)],
                         [T0 + 1000, T0 + 2000, T0 + 3000])  # both ends inclusive
        self.assertEqual([r[0] for r in self.fs("FS.HISTORY", v, "d", "DESC", "COUNT", "2")],
                         [T0 + 4000, T0 + 3000])
        self.assertEqual(self.fs("FS.HISTORY", v, "d", "COUNT", "0"), [])
        self.assertEqual(self.fs("FS.HISTORY", v, "d", "FROM", T0 + 9000), [])
        self.assertEqual(self.fs("FS.HISTORY", v, "nobody"), [])
        self.err("COUNT '-1' is not an integer >= 0", "FS.HISTORY", v, "d", "COUNT", "-1")
        self.err("invalid timestamp", "FS.HISTORY", v, "d", "FROM", "yesterday")
        self.err("unknown or misplaced argument 'LIMIT'", "FS.HISTORY", v, "d", "LIMIT", "1")
        self.err("TO needs a value", "FS.HISTORY", v, "d", "TO")

    def test_composite_keys_with_escapes(self):
        d = self.entity("driver")
        c = self.entity("cust", "TYPE", "INT64")
        v = self.view("v", [d, c], ["x", "STRING"])
        # ("a:b", 1) and ("a", ...) never collide; ':' and '\' are escaped in one argument
        self.assertEqual(self.fs("FS.PUSH", v, r"a\:b:1", T0, "FIELDS", "x", "colon"), 1)
        self.assertEqual(self.fs("FS.PUSH", v, r"a\\:1", T0, "FIELDS", "x", "backslash"), 1)
        self.assertEqual(self.fs("FS.PUSH", v, "a:1", T0, "FIELDS", "x", "plain"), 1)
        self.assertEqual(self.fs("FS.GET", v, r"a\:b:1"), [b"colon"])
        self.assertEqual(self.fs("FS.GET", v, r"a\\:1"), [b"backslash"])
        self.assertEqual(self.fs("FS.GET", v, "a:1"), [b"plain"])
        self.assertEqual(self.fs("FS.GET", v, "a:2"), [None])
        self.assertEqual(self.info(v)["online_rows"], 3)
        # MGET takes each entity's value separately, unescaped
        self.assertEqual(self.fs("FS.MGET", "FEATURES", "1", v + ":x", "ROWS", "3",
                                 "a:b", "1", "a\\", "1", "a", "1"),
                         [[b"colon"], [b"backslash"], [b"plain"]])
        for key, pattern in (("a", "entity key 'a' has 1 part"), ("a:1:2", "has 3 parts"),
                             ("a:x", "INT64 value, got 'x'"), ("a:01", "got '01'"),
                             (r"a\b:1", "bad escape in entity key")):
            self.err(pattern, "FS.GET", v, key)
            self.err(pattern, "FS.PUSH", v, key, T0, "FIELDS", "x", "1")
        self.assertEqual(self.info(v)["online_rows"], 3)
        self.err("entity '%s' needs an INT64 value, got 'x'" % c, "FS.MGET", "FEATURES", "1",
                 v + ":x", "ROWS", "1", "a", "x")


class TestMget(FSCase):
    def test_mget_service_and_features(self):
        d = self.entity("driver")
        c = self.entity("cust")
        dv = self.view("dv", [d], ["rate", "FLOAT64", "trips", "INT64"])
        cv = self.view("cv", [c], ["age", "INT64"])
        dc = self.view("dc", [d, c], ["n", "INT64"], "TTL", "3600")
        now = now_ms()
        self.fs("FS.PUSH", dv, "d1", T0, "FIELDS", "rate", "0.5", "trips", "10")
        self.fs("FS.PUSH", dv, "d2", T0, "FIELDS", "trips", "20")
        self.fs("FS.PUSH", cv, "c1", T0, "FIELDS", "age", "30")
        self.fs("FS.PUSH", dc, "d1:c1", now, "FIELDS", "n", "7")
        self.fs("FS.PUSH", dc, "d2:c1", now - 2 * HOUR, "FIELDS", "n", "8")
        s = self.n("svc")
        self.fs("FS.SERVICE.CREATE", s, "FEATURES", "3", cv + ":age", dv + ":*", dc + ":n")
        # entities in order of first appearance: cust (cv), then driver (dv)
        self.assertEqual(self.fs("FS.MGET", s, "ROWS", "3", "c1", "d1", "c1", "d2", "cx", "d1"),
                         [[30, b"0.5", 10, 7], [30, None, 20, None], [None, b"0.5", 10, None]])
        self.assertEqual(self.fs("FS.MGET", s, "ROWS", "1", "c1", "d2", "WITHMETA"), [[
            [30, T0, b"PRESENT"], [None, T0, b"NULL_VALUE"], [20, T0, b"PRESENT"],
            [None, now - 2 * HOUR, b"OUTSIDE_MAX_AGE"]]])
        self.assertEqual(self.fs("FS.MGET", "FEATURES", "2", dv + ":trips", dv + ":rate",
                                 "ROWS", "2", "d2", "nobody"), [[20, None], [None, None]])
        self.assertEqual(self.fs("FS.MGET", s, "ROWS", "0"), [])
        # a row value literally WITHMETA is a value when the count says so
        self.assertEqual(self.fs("FS.MGET", "FEATURES", "1", dv + ":trips", "ROWS", "1",
                                 "WITHMETA"), [[None]])
        for pattern, args in [
            ("ROWS 2 needs 4 values (one per entity: %s, %s) per row, got 3" % (c, d),
             ("FS.MGET", s, "ROWS", "2", "c1", "d1", "c1")),
            ("got 5", ("FS.MGET", s, "ROWS", "2", "c1", "d1", "c1", "d1", "c1")),
            ("ROWS count 'x'", ("FS.MGET", s, "ROWS", "x", "c1")),
            ("missing ROWS", ("FS.MGET", "FEATURES", "1", dv + ":trips")),
            ("wrong number of arguments", ("FS.MGET", s)),
            ("unknown or misplaced argument 'ROW'", ("FS.MGET", s, "ROW", "1", "c1", "d1")),
            ("unknown feature service", ("FS.MGET", self.n("nosuch"), "ROWS", "0")),
            ("unknown field 'zz'", ("FS.MGET", "FEATURES", "1", dv + ":zz", "ROWS", "0")),
            ("FEATURES count 5 but only", ("FS.MGET", "FEATURES", "5", dv + ":zz", "ROWS", "0")),
        ]:
            self.err(pattern, *args)


class TestMaterializeRetention(FSCase):
    def test_materialize(self):
        v = self.driver_view()
        for key, events in (("a", [1, 2, 5]), ("b", [3]), ("c", [9, 10]), ("d", [4])):
            for e in events:
                self.fs("FS.PUSH", v, key, T0 + e * 1000, "TO", "OFFLINE", "FIELDS", "trips", e)
        self.fs("FS.PUSH", v, "d", T0 + 8000, "TO", "ONLINE", "FIELDS", "trips", "80")
        self.assertEqual(self.info(v)["online_rows"], 1)
        # window [2, 6]: a gets 5, b gets 3, c has nothing, d's online row (8) is newer
        self.assertEqual(self.fs("FS.MATERIALIZE", v, T0 + 2000, T0 + 6000), 2)
        trips = lambda k: self.fs("FS.GET", v, k, "FEATURES", "1", "trips")[0]
        self.assertEqual([trips(k) for k in "abcd"], [5, 3, None, 80])
        self.assertEqual(self.fs("FS.MATERIALIZE", v, T0 + 2000, T0 + 6000), 0)  # nothing newer
        self.assertEqual(self.fs("FS.MATERIALIZE", v, "2020-09-13T12:26:40Z", T0 + 100_000), 1)
        self.assertEqual([trips(k) for k in "abcd"], [5, 3, 10, 80])
        self.assertEqual(self.fs("FS.GET", v, "c", "WITHMETA")[1], [10, T0 + 10_000, b"PRESENT"])
        self.assertEqual(self.info(v)["online_rows"], 4)
        self.err("start_ts is after end_ts", "FS.MATERIALIZE", v, T0 + 5, T0)
        self.err("invalid timestamp", "FS.MATERIALIZE", v, "soon", T0)
        off = self.view("off", [self.n("driver")], ["x", "INT64"], "ONLINE", "NO")
        self.err("ONLINE NO", "FS.MATERIALIZE", off, T0, T0)

    def test_retention_and_compact(self):
        v = self.driver_view("RETENTION", "3600")
        now = now_ms()
        old, recent = now - 3 * HOUR, now - 60_000
        self.fs("FS.PUSH", v, "d", old, "FIELDS", "trips", "1")
        self.fs("FS.PUSH", v, "d", recent, "FIELDS", "trips", "2")
        # past retention, a row no longer answers point-in-time reads, compacted or not
        self.assertEqual(self.fs("FS.ASOF", v, "d", old + 1000, "FEATURES", "1", "trips"), [None])
        self.assertEqual(self.fs("FS.ASOF", v, "d", now, "FEATURES", "1", "trips"), [2])
        # reads hide it before the compaction drops it (test_history.c checks the drop)
        self.assertEqual([r[0] for r in self.fs("FS.HISTORY", v, "d")], [recent])
        self.assertEqual(self.fs("FS.VIEW.COMPACT", v), b"OK")
        self.assertEqual([r[0] for r in self.fs("FS.HISTORY", v, "d")], [recent])
        self.assertEqual(self.fs("FS.GET", v, "d", "FEATURES", "1", "trips"), [2])  # online kept
        # without retention, compaction keeps everything
        w = self.view("keep", [self.n("driver")], ["x", "INT64"])
        self.fs("FS.PUSH", w, "d", 1000, "FIELDS", "x", "1")
        self.assertEqual(self.fs("FS.VIEW.COMPACT", w), b"OK")
        self.assertEqual(len(self.fs("FS.HISTORY", w, "d")), 1)
        self.err("unknown feature view", "FS.VIEW.COMPACT", self.n("nosuch"))


class TestBadInput(FSCase):
    def state(self, v):
        return (self.info(v), self.fs("FS.HISTORY", v, "d"), self.fs("FS.GET", v, "d"),
                self.fs("FS.VIEW.LIST"), self.fs("FS.ENTITY.LIST"), self.fs("FS.SERVICE.LIST"))

    def test_push_errors_change_nothing(self):
        d = self.entity("driver")
        v = self.view("v", [d], ["conv_rate", "FLOAT64", "n", "INT32", "ok", "BOOL",
                                 "emb", "VECTOR", "2", "at", "TIMESTAMP"])
        self.fs("FS.PUSH", v, "d", T0, "FIELDS", "n", "1")
        before = self.state(v)
        pushes = pairs_info(self.r)["fs_pushes"]
        offset = self.r.info("replication")["master_repl_offset"]
        p = ["FS.PUSH", v, "d", T0 + 1]
        cases = [
            ("unknown feature view '%s'" % self.n("nosuch"),
             ["FS.PUSH", self.n("nosuch"), "d", T0, "FIELDS", "n", "1"]),
            ("field 'conv_rate': value 'abc' is not a valid FLOAT64",
             p + ["FIELDS", "conv_rate", "abc"]),
            ("field 'n': value '3000000000' is out of range for INT32",
             p + ["FIELDS", "n", "3000000000"]),
            ("field 'ok'", p + ["FIELDS", "ok", "maybe"]),
            ("field 'at': invalid timestamp", p + ["FIELDS", "at", "noon"]),
            ("field 'emb': vector blob of 7 bytes", p + ["FIELDS", "emb", b"\x00" * 7]),
            ("unknown field 'zz' of feature view '%s'" % v, p + ["FIELDS", "zz", "1"]),
            ("duplicate field 'n' in FIELDS", p + ["FIELDS", "n", "1", "n", "2"]),
            ("wrong number of arguments", p),
            ("missing FIELDS", p + ["CREATED", T0, "TO", "BOTH"]),
            ("FIELDS needs <field> <value> pairs", p + ["TO", "BOTH", "FIELDS"]),
            ("FIELDS needs <field> <value> pairs", p + ["FIELDS", "n", "1", "ok"]),
            ("invalid timestamp", ["FS.PUSH", v, "d", "later", "FIELDS", "n", "1"]),
            ("invalid timestamp", p + ["CREATED", "2021-13-01", "FIELDS", "n", "1"]),
            ("TO 'NOWHERE' is not ONLINE, OFFLINE or BOTH", p + ["TO", "NOWHERE", "FIELDS", "n",
                                                                "1"]),
            ("unknown or misplaced argument 'TTL'", p + ["TTL", "5", "FIELDS", "n", "1"]),
            ("entity key 'a:b' has 2 parts", ["FS.PUSH", v, "a:b", T0, "FIELDS", "n", "1"]),
            ("wrong number of arguments", ["FS.PUSH", v, "d", T0, "FIELDS", "n"]),
        ]
        for pattern, args in cases:
            self.err(pattern, *args)
        self.assertEqual(self.state(v), before)
        self.assertEqual(pairs_info(self.r)["fs_pushes"], pushes)
        self.assertEqual(self.r.info("replication")["master_repl_offset"], offset)  # unlogged

    def test_read_errors(self):
        v = self.driver_view()
        for pattern, args in [
            ("unknown feature view", ("FS.GET", self.n("nosuch"), "d")),
            ("unknown field 'zz' of feature view", ("FS.GET", v, "d", "FEATURES", "1", "zz")),
            ("FEATURES count 2 but only 1", ("FS.GET", v, "d", "FEATURES", "2", "trips")),
            ("FEATURES needs a positive count", ("FS.GET", v, "d", "FEATURES", "x", "trips")),
            ("unknown or misplaced argument 'META'", ("FS.GET", v, "d", "META")),
            ("unknown or misplaced argument 'WITHMETA'", ("FS.GET", v, "d", "WITHMETA",
                                                           "WITHMETA")),
            ("invalid timestamp", ("FS.ASOF", v, "d", "now")),
            ("unknown or misplaced argument 'X'", ("FS.ASOF", v, "d", T0, "X")),
            ("unknown feature view", ("FS.HISTORY", self.n("nosuch"), "d")),
        ]:
            self.err(pattern, *args)


def pairs_info(r):
    return r.info("featurestore")


class TestRestart(unittest.TestCase):
    @OWN_PROCESS
    def test_restart_keeps_catalog_online_and_history(self):
        with Server(durability="always") as s:
            r = s.client()
            r.execute_command("FS.ENTITY.CREATE", "driver", "TYPE", "INT64")
            r.execute_command("FS.VIEW.CREATE", "stats", "ENTITIES", "1", "driver", "TTL", "0",
                              "RETENTION", "0", "SCHEMA", "rate", "FLOAT64", "emb", "VECTOR", "2",
                              "METRIC", "IP")
            r.execute_command("FS.SERVICE.CREATE", "svc", "FEATURES", "1", "stats:*")
            r.execute_command("FS.PUSH", "stats", "7", T0, "FIELDS", "rate", "0.5")
            r.execute_command("FS.PUSH", "stats", "7", T0 + 1, "TO", "OFFLINE", "FIELDS",
                              "rate", "0.6")
            info = pairs(r.execute_command("FS.VIEW.INFO", "stats"))
            r.close()
            s.stop()
            s.start()
            r = s.client()
            self.assertEqual(pairs(r.execute_command("FS.VIEW.INFO", "stats")), info)
            self.assertEqual(r.execute_command("FS.ENTITY.LIST"), [b"driver"])
            self.assertEqual(r.execute_command("FS.SERVICE.LIST"), [b"svc"])
            self.assertEqual(r.execute_command("FS.MGET", "svc", "ROWS", "1", "7"),
                             [[b"0.5", None]])
            self.assertEqual([row[0] for row in r.execute_command("FS.HISTORY", "stats", "7")],
                             [T0, T0 + 1])
            # the view id counter survives too
            r.execute_command("FS.VIEW.CREATE", "more", "ENTITIES", "1", "driver", "SCHEMA",
                              "x", "INT64")
            self.assertGreater(pairs(r.execute_command("FS.VIEW.INFO", "more"))[b"id".decode()],
                               info["id"])
            r.close()


class TestIntrospection(FSCase):
    def test_command_docs_and_info(self):
        t = TypedClient(self.server.host, self.server.port)
        self.addCleanup(t.close)
        t.command("HELLO", "3")
        docs = t.command("COMMAND", "DOCS", "fs.push")
        doc = map_get(docs, b"fs.push")
        self.assertEqual(map_get(doc, b"group"), ("bulk", b"featurestore"))
        self.assertIn(b"Replies 1 if the online row was replaced", map_get(doc, b"summary")[1])
        args = map_get(doc, b"arguments")[1]
        names = [map_get(a, b"name")[1] for a in args]
        self.assertEqual(names[:3], [b"view", b"entity", b"event-ts"])
        self.assertIn(b"fields", [map_get(a, b"token")[1].lower() for a in args
                                  if any(k == ("bulk", b"token") for k, _ in a[1])])
        raw = self.server.raw()
        self.addCleanup(raw.close)
        info = raw.command("COMMAND", "INFO", "fs.get", "fs.push", "fs.view.compact")
        self.assertEqual(info[0][:2], [b"fs.get", -3])
        self.assertEqual(info[0][2], [b"readonly", b"fast"])
        self.assertEqual(info[1][2], [b"write", b"denyoom"])
        self.assertEqual(info[2][2], [b"admin"])
        self.assertEqual(info[1][3:6], [0, 0, 0])  # no keyspace keys
        # INFO featurestore
        before = self.r.info("featurestore")
        v = self.driver_view()
        self.fs("FS.PUSH", v, "d", T0, "FIELDS", "trips", "1")
        self.fs("FS.PUSH", v, "d", T0 + 1, "TO", "ONLINE", "FIELDS", "trips", "2")
        after = self.r.info("featurestore")
        self.assertEqual(set(after), {"fs_entities", "fs_views", "fs_services", "fs_pushes",
                                      "fs_history_batches", "fs_history_rows",
                                      "fs_history_write_errors"})
        self.assertEqual(after["fs_views"], before["fs_views"] + 1)
        self.assertEqual(after["fs_entities"], before["fs_entities"] + 1)
        self.assertEqual(after["fs_pushes"], before["fs_pushes"] + 2)
        self.assertEqual(after["fs_history_rows"], before["fs_history_rows"] + 1)
        self.assertGreater(after["fs_history_batches"], before["fs_history_batches"])
        self.assertIn("fs_views", self.r.info())  # in the default sections


if __name__ == "__main__":
    unittest.main()
