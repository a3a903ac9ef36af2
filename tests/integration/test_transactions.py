"""Transactions and pipelines, through redis-py (what applications use) and raw RESP (for
exact replies), each compared with Debian's redis-server (7.0) where the outcome is
deterministic: MULTI/EXEC/DISCARD, queued errors (EXECABORT, nothing applied), runtime
errors inside EXEC (the rest is applied), WATCH conflicts from other clients, FLUSHDB and
expiry touching watched keys, and pipelines of 10,000 commands.

Run: PYTHONPATH=tests/integration /usr/bin/python3 -m unittest -v test_transactions"""
import threading
import time
import unittest

import redis

import harness
from test_compat import Differential


class TransactionBase(Differential):
    def setUp(self):
        super().setUp()
        self.rp = redis.Redis(host="127.0.0.1", port=self.redis_port, socket_timeout=20)
        self.qp = self.quiver.client()
        self.addCleanup(self.qp.close)
        self.addCleanup(self.rp.close)

    def clients(self):
        return (("redis", self.rp), ("quiver", self.qp))

    def new_raw_pair(self):
        r = harness.RawClient("127.0.0.1", self.redis_port)
        q = self.quiver.raw()
        self.addCleanup(q.close)
        self.addCleanup(r.close)
        return r, q


class TestPipelines(TransactionBase):
    def test_non_transactional_pipeline_10000(self):
        results = {}
        for name, c in self.clients():
            p = c.pipeline(transaction=False)
            for i in range(10000):
                m = i % 5
                if m == 0:
                    p.set("k%d" % i, "v%d" % i)
                elif m == 1:
                    p.incr("counter")
                elif m == 2:
                    p.hset("h%d" % (i % 50), "f%d" % i, i)
                elif m == 3:
                    p.get("k%d" % (i - 3))
                else:
                    p.exists("k%d" % (i - 4), "nope")
            results[name] = p.execute()
            self.assertEqual(len(results[name]), 10000)
            self.assertEqual(c.get("counter"), b"2000")
            self.assertEqual(c.dbsize(), 2000 + 1 + len({i % 50 for i in range(2, 10000, 5)}))
        self.assertEqual(results["redis"], results["quiver"])
        self.assertEqual(results["quiver"][3], b"v0")

    def test_non_transactional_pipeline_with_errors(self):
        results = {}
        for name, c in self.clients():
            c.hset("h", "f", "v")
            p = c.pipeline(transaction=False)
            p.set("a", "1").incr("h").incr("a").execute_command("SET", "x")
            p.hget("a", "f").get("a").execute_command("NOSUCH", "x").incrby("a", "z").get("a")
            results[name] = [repr(x) if isinstance(x, Exception) else x
                             for x in p.execute(raise_on_error=False)]
            with self.assertRaises(redis.ResponseError):
                c.pipeline(transaction=False).incr("h").execute()
        self.assertEqual(results["redis"], results["quiver"])
        self.assertEqual(results["quiver"][5], b"2")

    def test_transactional_pipeline_10000(self):
        results = {}
        for name, c in self.clients():
            p = c.pipeline(transaction=True)
            for i in range(10000):
                if i % 2:
                    p.incrby("sum", i)
                else:
                    p.hset("h", "f%d" % i, i)
            results[name] = p.execute()
            self.assertEqual(int(c.get("sum")), sum(range(1, 10000, 2)))
            self.assertEqual(c.hlen("h"), 5000)
        self.assertEqual(results["redis"], results["quiver"])

    def test_raw_pipelining_in_one_write(self):
        # Many commands in one TCP write, MULTI/EXEC among them, replies in order.
        script = [("SET", "a", "1"), ("MULTI",), ("INCR", "a"), ("HSET", "a", "f", "v"),
                  ("INCR", "a"), ("EXEC",), ("GET", "a"), ("MULTI",), ("GET", "a"),
                  ("DISCARD",), ("PING",)] * 200
        data = b"".join(harness.encode(*cmd) for cmd in script)
        replies = {}
        for name, c in (("redis", self.r), ("quiver", self.q)):
            c.send(data)
            replies[name] = [c.read() for _ in script]
        self.assertEqual(replies["redis"], replies["quiver"])
        self.assertEqual(replies["quiver"][-1], b"PONG")


class TestMultiExec(TransactionBase):
    def test_transaction_results_and_runtime_error(self):
        results = {}
        for name, c in self.clients():
            c.hset("h", "f", "v")
            p = c.pipeline(transaction=True)
            p.set("a", "1").incr("h").incr("a").hget("h", "f").get("nope").mget("a", "h")
            res = p.execute(raise_on_error=False)
            results[name] = [repr(x) if isinstance(x, Exception) else x for x in res]
            # Redis semantics: the failing command fails alone, the others are applied.
            self.assertEqual(c.get("a"), b"2")
            p = c.pipeline(transaction=True)
            p.set("b", "1").incr("h").set("c", "1")
            with self.assertRaises(redis.ResponseError):
                p.execute()
            self.assertEqual(c.mget("b", "c"), [b"1", b"1"])
        self.assertEqual(results["redis"], results["quiver"])

    def test_queued_error_aborts_everything(self):
        for name, c in self.clients():
            p = c.pipeline(transaction=True)
            p.set("a", "1").execute_command("SET", "b").set("c", "1")
            with self.assertRaises(redis.ResponseError) as ctx:
                p.execute()
            self.assertIn("wrong number of arguments", str(ctx.exception), name)
            p = c.pipeline(transaction=True)
            p.set("a", "1").execute_command("NOSUCHCMD", "x")
            with self.assertRaises(redis.ResponseError):
                p.execute()
            self.assertEqual(c.exists("a", "b", "c"), 0, name)
            self.assertEqual(c.dbsize(), 0, name)
        # The exact replies, raw.
        self.check([
            ("MULTI",), ("SET", "a", "1"), ("SET", "b"), ("INCR", "a"), ("NOSUCH",),
            ("EXEC",), ("GET", "a"), ("EXEC",), ("MULTI",), ("GET", "a"), ("EXEC", "extra"),
            ("EXEC",), ("MULTI",), ("SET", "x", "1"), ("GET",), ("DISCARD",), ("GET", "x"),
            ("MULTI",), ("FOO",), ("DISCARD",), ("SET", "y", "2"), ("GET", "y"),
        ])

    def test_raw_multi_edge_cases(self):
        self.check([
            ("EXEC",), ("DISCARD",), ("MULTI",), ("MULTI",), ("SET", "a", "1"), ("WATCH", "a"),
            ("EXEC",), ("GET", "a"),                      # nested MULTI, WATCH inside: not fatal
            ("MULTI",), ("EXEC",),                        # empty transaction
            ("MULTI",), ("SET", "a", "2"), ("DISCARD",), ("GET", "a"), ("DISCARD",),
            ("MULTI",), ("PING",), ("ECHO", "x"), ("SELECT", "2"), ("SET", "a", "db2"),
            ("DBSIZE",), ("EXEC",), ("GET", "a"), ("SELECT", "0"), ("GET", "a"),
            ("MULTI",), ("UNWATCH",), ("FLUSHDB",), ("DBSIZE",), ("EXEC",),
            ("MULTI",), ("SET", "k", "v", "EX", "100"), ("TTL", "k"), ("GETDEL", "k"),
            ("GET", "k"), ("EXEC",), ("MULTI",), ("WATCH",), ("EXEC",),
            ("MULTI",), ("DEL", "x"), ("UNWATCH", "x"), ("EXEC",), ("EXEC",),
        ])

    def test_connection_commands_inside_multi(self):
        # HELLO and AUTH are queued like any command, SHUTDOWN is refused (and dooms the
        # transaction), RESET and QUIT act at once.
        self.check([
            ("MULTI",), ("HELLO", "4"), ("AUTH", "x"), ("CLIENT", "SETNAME", "tx"),
            ("SELECT", "99"), ("CONFIG", "GET", "timeout"), ("ECHO", "e"), ("EXEC",),
            ("CLIENT", "GETNAME"),
            ("MULTI",), ("SET", "a", "1"), ("SHUTDOWN", "NOSAVE"), ("SET", "b", "1"), ("EXEC",),
            ("EXISTS", "a", "b"), ("MULTI",), ("SHUTDOWN", "ABORT"), ("DISCARD",),
            ("MULTI",), ("SET", "a", "1"), ("RESET",), ("EXEC",), ("GET", "a"),
        ])
        rr = [self.r.command("MULTI"), self.r.command("HELLO", "2"), self.r.command("EXEC")]
        qq = [self.q.command("MULTI"), self.q.command("HELLO", "2"), self.q.command("EXEC")]
        self.assertEqual(qq[:2], [b"OK", b"QUEUED"])
        self.assertEqual([len(rr[2]), len(rr[2][0])], [len(qq[2]), len(qq[2][0])])
        self.check([("MULTI",), ("SET", "q", "1"), ("QUIT",)])
        self.assertTrue(self.q.closed())
        self.assertEqual(self.new_raw_pair()[1].command("EXISTS", "q"), 0)

    def test_discard_and_state(self):
        self.check([("WATCH", "w"), ("MULTI",), ("SET", "w", "1"), ("DISCARD",)])
        r2, q2 = self.new_raw_pair()
        self.assertEqual((r2.command("SET", "w", "2"), q2.command("SET", "w", "2")), (b"OK", b"OK"))
        # DISCARD forgot the WATCH: this transaction is not affected by the write above.
        self.check([("MULTI",), ("GET", "w"), ("EXEC",)])


class TestWatch(TransactionBase):
    def other(self, name):
        c = (redis.Redis(host="127.0.0.1", port=self.redis_port) if name == "redis"
             else self.quiver.client())
        self.addCleanup(c.close)
        return c

    def test_watch_conflict_from_another_client(self):
        for name, c in self.clients():
            other = self.other(name)
            c.set("k", "1")
            with c.pipeline() as p:
                p.watch("k")
                self.assertEqual(p.get("k"), b"1")  # immediate mode after WATCH
                other.set("k", "2")
                p.multi()
                p.set("k", "3")
                with self.assertRaises(redis.WatchError, msg=name):
                    p.execute()
            self.assertEqual(c.get("k"), b"2", name)

    def test_watch_untouched_succeeds(self):
        for name, c in self.clients():
            other = self.other(name)
            c.set("k", "1")
            with c.pipeline() as p:
                p.watch("k", "missing")
                other.set("unrelated", "x")
                other.hdel("k2", "f")               # changes nothing
                other.delete("missing")             # nothing deleted: not a change
                other.execute_command("SELECT", "1")
                other.set("k", "in db 1")           # same name, other database
                p.multi()
                p.incr("k")
                self.assertEqual(p.execute(), [2], name)

    def test_watch_touch_kinds(self):
        # Each write that changes the watched key makes EXEC fail (nil); with raw clients
        # so that the exact reply (null array) is compared.
        writes = [("SET", "k", "same"), ("DEL", "k"), ("EXPIRE", "k", "100"),
                  ("APPEND", "k", "x"), ("INCRBY", "k2", "0"), ("RENAME", "k", "moved"),
                  ("RENAME", "other", "k"), ("HSET", "h", "f", "v"), ("HDEL", "h", "f"),
                  ("HINCRBY", "h", "n", "1"), ("MSET", "a", "1", "k", "2"), ("GETDEL", "k"),
                  ("SETRANGE", "k", "0", "x"), ("PEXPIRE", "k", "-1"), ("GETEX", "k", "EX", "50"),
                  ("SET", "k", "v", "KEEPTTL"), ("FLUSHDB",), ("FLUSHALL",), ("PERSIST", "t"),
                  ("INCRBYFLOAT", "k2", "1.5"), ("HSETNX", "h", "new", "1")]
        unchanged = [("SETNX", "k", "x"), ("SET", "k", "x", "NX"), ("GET", "k"),
                     ("GETEX", "k"), ("PERSIST", "k"), ("HDEL", "h", "nope"),
                     ("SETRANGE", "k", "3", ""), ("EXPIRE", "k", "100", "XX"),
                     ("HSETNX", "h", "f", "again"), ("DEL", "nope"), ("RENAMENX", "k", "h")]
        r2, q2 = self.new_raw_pair()
        for write in writes + unchanged:
            key = write[1] if len(write) > 1 else "k"
            watched = {"RENAME": write[2] if write[0] == "RENAME" and write[2] == "k" else "k",
                       "MSET": "k", "HSET": "h", "HDEL": "h", "HINCRBY": "h", "HSETNX": "h",
                       "INCRBY": "k2", "INCRBYFLOAT": "k2", "PERSIST": key}.get(write[0], "k")
            setup = [("FLUSHALL",), ("SET", "k", "same"), ("SET", "k2", "5"), ("SET", "other", "o"),
                     ("HSET", "h", "f", "v"), ("SET", "t", "v", "EX", "100")]
            self.check(setup + [("WATCH", watched)])
            self.assertEqual(r2.command(*write), q2.command(*write), write)
            self.check([("MULTI",), ("PING",), ("EXEC",)])

    def test_flushdb_touches_watched_keys(self):
        # Redis 7 fails EXEC only when the watched key existed in the flushed database.
        r2, q2 = self.new_raw_pair()
        for flush, watch_db, exists in [("FLUSHDB", "0", True), ("FLUSHALL", "0", True),
                                        ("FLUSHDB", "0", False), ("FLUSHDB", "3", True)]:
            self.check([("FLUSHALL",), ("SELECT", watch_db)] +
                       ([("SET", "w", "1")] if exists else []) + [("WATCH", "w")])
            self.assertEqual(r2.command(flush), q2.command(flush))
            self.check([("MULTI",), ("DBSIZE",), ("EXEC",), ("SELECT", "0")])

    def test_watched_key_expiring(self):
        # A watched key whose TTL runs out before EXEC makes EXEC fail, as in Redis 7,
        # whether or not anything touched the key meanwhile.
        for touch in (False, True):
            self.check([("FLUSHALL",), ("SET", "e", "v", "PX", "150"), ("WATCH", "e")])
            time.sleep(0.25)
            if touch:
                self.check([("GET", "e")])
            self.check([("MULTI",), ("SET", "x", "1"), ("EXEC",), ("GET", "x")])
        # A key already expired when WATCHed does not count as changed.
        self.check([("FLUSHALL",), ("SET", "e", "v", "PX", "10")])
        time.sleep(0.03)
        self.check([("WATCH", "e"), ("MULTI",), ("SET", "x", "2"), ("EXEC",)])
        # WATCH, then the client itself writes the key: EXEC fails too.
        self.check([("WATCH", "self"), ("SET", "self", "1"), ("MULTI",), ("PING",), ("EXEC",),
                    ("MULTI",), ("PING",), ("EXEC",)])  # the failed EXEC forgot the WATCH

    def test_unwatch_and_exec_clear_watches(self):
        r2, q2 = self.new_raw_pair()
        self.check([("WATCH", "a", "b"), ("UNWATCH",)])
        self.assertEqual(r2.command("SET", "a", "1"), q2.command("SET", "a", "1"))
        self.check([("MULTI",), ("GET", "a"), ("EXEC",), ("WATCH", "a"), ("MULTI",), ("EXEC",)])
        self.assertEqual(r2.command("SET", "a", "2"), q2.command("SET", "a", "2"))
        self.check([("MULTI",), ("GET", "a"), ("EXEC",)])  # the EXEC above unwatched

    def test_optimistic_counter_with_concurrent_clients(self):
        # redis-py's transaction() helper retries on WatchError: with 4 threads doing
        # read-modify-write increments, none may be lost.
        c = self.qp
        c.set("counter", 0)

        def worker():
            cl = self.quiver.client()
            try:
                for _ in range(50):
                    def incr(pipe):
                        v = int(pipe.get("counter"))
                        pipe.multi()
                        pipe.set("counter", v + 1)
                    cl.transaction(incr, "counter")
            finally:
                cl.close()

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(int(c.get("counter")), 200)

    def test_watch_many_keys_and_clients(self):
        watchers = []
        for i in range(20):
            q = self.quiver.raw()
            self.addCleanup(q.close)
            self.assertEqual(q.command("WATCH", *["key%d" % j for j in range(i, i + 50)]), b"OK")
            watchers.append(q)
        self.q.command("SET", "key25", "x")  # touches watchers 0..19 except none past 25
        for i, q in enumerate(watchers):
            self.assertEqual(q.command("MULTI"), b"OK")
            reply = q.command("EXEC")
            self.assertEqual(reply, None if i <= 25 else [], i)
        for q in watchers:  # all WATCHes released: a new one starts clean
            self.assertEqual(q.command("MULTI"), b"OK")
            self.assertEqual(q.command("EXEC"), [])


if __name__ == "__main__":
    unittest.main()
