"""Limits: maxmemory (Redis's noeviction behaviour: over the limit, commands that may grow
memory get -OOM before they run, in and around MULTI as Redis decides; reads, DEL, FLUSH
and CONFIG keep working; a refused write changes nothing; lifting the limit restores
writes), maxmemory-policy, and the client-output-buffer-limit classes and soft-limit grace.

Used memory is INFO memory's used_memory (the process heap); a maxmemory of 1 byte is
always exceeded, which makes the refusals deterministic.
Run: PYTHONPATH=tests/integration /usr/bin/python3 -m unittest -v test_limits"""
import socket
import struct
import time
import unittest

import redis

from harness import RawClient, Server, encode
from test_observability import OWN_PROCESS, RedisReference, cmdstat

OOM = "OOM command not allowed when used memory > 'maxmemory'."


def vec(*xs):
    return struct.pack("<%df" % len(xs), *xs)


@OWN_PROCESS
class MaxMemory(unittest.TestCase):
    def setUp(self):
        self.server = Server()
        self.server.__enter__()
        self.r = self.server.client()
        self.r.set("k", "v")
        self.r.hset("h", "f", "v")
        self.r.execute_command("FT.CREATE", "idx", "PREFIX", 1, "doc:", "SCHEMA", "v", "VECTOR",
                               "HNSW", 6, "TYPE", "FLOAT32", "DIM", 2, "DISTANCE_METRIC", "L2")
        self.r.hset("doc:1", "v", vec(1, 2))
        self.r.execute_command("FS.ENTITY.CREATE", "driver")
        self.r.execute_command("FS.VIEW.CREATE", "stats", "ENTITIES", 1, "driver", "SCHEMA",
                               "trips", "INT64", "emb", "VECTOR", 2)
        self.r.execute_command("FS.PUSH", "stats", "d1", 1000, "FIELDS", "trips", 1,
                               "emb", vec(0, 1))

    def tearDown(self):
        self.r.close()
        self.server.__exit__(None, None, None)

    def refused(self, *cmd):
        with self.assertRaises(redis.ResponseError) as cm:
            self.r.execute_command(*cmd)
        self.assertEqual(str(cm.exception), OOM, cmd)

    def num_docs(self):
        return int(self.r.ft("idx").info()["num_docs"])

    def test_denyoom_writes_refused_reads_and_deletes_allowed(self):
        self.assertEqual(self.num_docs(), 1)
        self.r.config_set("maxmemory", 1)
        info = self.r.info("memory")
        self.assertEqual((info["maxmemory"], info["maxmemory_human"], info["maxmemory_policy"]),
                         (1, "1B", "noeviction"))
        self.assertGreater(info["used_memory"], 1)
        refusals = [("SET", "k", "new"), ("SET", "k2", "x"), ("APPEND", "k", "x"),
                    ("INCR", "n"), ("MSET", "a", "1", "b", "2"), ("HSET", "h", "f", "new"),
                    ("HSET", "doc:2", "v", vec(3, 4)),  # would grow the HNSW index
                    ("FT.CREATE", "idx2", "PREFIX", 1, "x:", "SCHEMA", "t", "TAG"),
                    ("FS.PUSH", "stats", "d2", 2000, "FIELDS", "trips", 5, "emb", vec(5, 5)),
                    ("FS.ENTITY.CREATE", "user")]
        for cmd in refusals:
            self.refused(*cmd)
        # nothing changed
        self.assertEqual(self.r.get("k"), b"v")
        self.assertEqual(self.r.exists("k2", "n", "a", "b", "doc:2"), 0)
        self.assertEqual(self.r.hget("h", "f"), b"v")
        self.assertEqual(self.num_docs(), 1)
        self.assertEqual(self.r.execute_command("FT._LIST"), [b"idx"])
        self.assertEqual(self.r.execute_command("FS.ENTITY.LIST"), [b"driver"])
        self.assertEqual(self.r.execute_command("FS.GET", "stats", "d2"), [None, None])
        self.assertEqual(cmdstat(self.r, "set")["rejected_calls"], 2)
        # reads, deletes, expiry, flushing and configuration still work
        self.assertEqual(self.r.hgetall("h"), {b"f": b"v"})
        self.assertEqual(self.r.keys("k*"), [b"k"])
        self.assertTrue(self.r.expire("k", 1000))
        self.assertEqual(self.r.hdel("h", "f"), 1)
        self.assertEqual(self.r.delete("k"), 1)
        self.assertEqual(self.r.execute_command("FS.ENTITY.LIST"), [b"driver"])
        self.assertEqual(self.r.config_get("maxmemory"), {"maxmemory": "1"})
        self.r.flushall()
        self.assertEqual(self.r.dbsize(), 0)
        # lifting the limit restores writes
        self.r.config_set("maxmemory", 0)
        self.assertTrue(self.r.set("k", "again"))
        self.r.hset("doc:2", "v", vec(3, 4))
        self.assertEqual(self.r.get("k"), b"again")

    def test_limit_above_use_allows_writes(self):
        used = self.r.info("memory")["used_memory"]
        self.r.config_set("maxmemory", used + 512 * 1024 * 1024)
        self.assertTrue(self.r.set("k3", "v"))
        self.assertEqual(self.r.config_get("maxmemory-policy"),
                         {"maxmemory-policy": "noeviction"})

    def test_multi_follows_redis(self):
        raw = self.server.raw()
        self.r.config_set("maxmemory", 1)
        # inside MULTI every queued command is refused (queuing takes memory), then EXEC aborts
        self.assertEqual(raw.command("MULTI"), b"OK")
        self.assertEqual(raw.command("GET", "k"), OOM)
        self.assertEqual(raw.command("EXEC"),
                         "EXECABORT Transaction discarded because of previous errors.")
        self.assertEqual(raw.command("MULTI"), b"OK")
        self.assertEqual(raw.command("PING"), OOM)
        self.assertEqual(raw.command("DISCARD"), b"OK")
        # queued before the limit: EXEC of a transaction with a DENYOOM command is refused
        self.r.config_set("maxmemory", 0)
        self.assertEqual(raw.command("MULTI"), b"OK")
        self.assertEqual(raw.command("SET", "k", "tx"), b"QUEUED")
        self.r.config_set("maxmemory", 1)
        self.assertEqual(raw.command("EXEC"), "EXECABORT Transaction discarded because of: " + OOM)
        self.assertEqual(self.r.get("k"), b"v")
        # ... but one of reads only runs
        self.r.config_set("maxmemory", 0)
        self.assertEqual(raw.command("MULTI"), b"OK")
        self.assertEqual(raw.command("GET", "k"), b"QUEUED")
        self.r.config_set("maxmemory", 1)
        self.assertEqual(raw.command("EXEC"), [b"v"])
        self.assertEqual(raw.command("SET", "k", "x"), OOM)  # the connection goes on
        raw.close()

    def test_same_replies_as_redis(self):
        script = [("SET", "k", "v"), ("CONFIG", "SET", "maxmemory", "1"), ("SET", "k", "w"),
                  ("SETNX", "n", "1"), ("GET", "k"), ("HSET", "h", "f", "v"), ("DEL", "k"),
                  ("MULTI",), ("SET", "a", "b"), ("EXEC",), ("CONFIG", "SET", "maxmemory", "0"),
                  ("MULTI",), ("INCR", "c"), ("CONFIG", "SET", "maxmemory", "1")]

        def run(port):
            raw, other = RawClient("127.0.0.1", port), redis.Redis(port=port)
            replies = []
            for cmd in script:
                if cmd[0] == "CONFIG":  # from another connection, as an operator would
                    other.execute_command(*cmd)
                else:
                    replies.append(raw.command(*cmd))
            replies.append(raw.command("EXEC"))
            other.config_set("maxmemory", 0)
            replies.append(raw.command("GET", "c"))
            raw.close()
            other.close()
            return replies

        self.r.flushall()
        with RedisReference() as ref:
            want = run(ref.port)
        got = run(self.server.port)
        self.assertEqual([(type(x).__name__, x) for x in got],
                         [(type(x).__name__, x) for x in want])

    def test_policy(self):
        with self.assertRaisesRegex(redis.ResponseError, "one of the following: noeviction$"):
            self.r.config_set("maxmemory-policy", "allkeys-lru")
        self.assertTrue(self.r.config_set("maxmemory-policy", "noeviction"))
        self.r.config_set("maxmemory", "100mb")
        self.assertEqual(self.r.config_get("maxmemory*"), {"maxmemory": "104857600",
                                                           "maxmemory-policy": "noeviction"})
        with self.assertRaises(redis.ResponseError):
            self.r.config_set("maxmemory", "-1")
        self.assertEqual(self.r.info("memory")["maxmemory"], 104857600)

    def test_limit_reached_by_growth(self):
        """A limit a little above what is used is reached by vectors going into an HNSW
        index; the write refused is not applied, and deleting gets under the limit again."""
        self.r.execute_command("FT.CREATE", "big", "PREFIX", 1, "big:", "SCHEMA", "v", "VECTOR",
                               "HNSW", 6, "TYPE", "FLOAT32", "DIM", 256, "DISTANCE_METRIC", "L2")
        used = self.r.info("memory")["used_memory"]
        self.r.config_set("maxmemory", used + 8 * 1024 * 1024)
        blob = vec(*range(256))
        first_refused = None
        for batch in range(100):  # at most 100k vectors, 100 MB: the limit comes far sooner
            pipe = self.r.pipeline(transaction=False)
            for i in range(1000):
                pipe.hset("big:%d" % (batch * 1000 + i), "v", blob)
            for i, rep in enumerate(pipe.execute(raise_on_error=False)):
                if isinstance(rep, redis.ResponseError):
                    self.assertEqual(str(rep), OOM)
                    first_refused = batch * 1000 + i
                    break
            if first_refused is not None:
                break
        self.assertIsNotNone(first_refused, "the limit was never reached")
        self.assertEqual(self.r.exists("big:%d" % first_refused), 0)
        self.r.config_set("maxmemory", 0)
        self.assertTrue(self.r.hset("big:%d" % first_refused, "v", blob))


@OWN_PROCESS
class OutputBufferLimits(unittest.TestCase):
    def test_all_classes_accepted_and_reported(self):
        spec = "normal 0 0 0 replica 1mb 512kb 30 pubsub 2mb 1mb 20"
        with Server(client_output_buffer_limit=spec) as s:
            r = s.client()
            self.assertEqual(r.config_get("client-output-buffer-limit"),
                             {"client-output-buffer-limit": "normal 0 0 0 slave 1048576 524288 30 "
                                                            "pubsub 2097152 1048576 20"})
            # a class not named keeps its limits; slave is replica's old name
            self.assertTrue(r.config_set("client-output-buffer-limit", "slave 3mb 2mb 10"))
            self.assertEqual(r.config_get("client-output-buffer-limit"),
                             {"client-output-buffer-limit": "normal 0 0 0 slave 3145728 2097152 "
                                                            "10 pubsub 2097152 1048576 20"})
            r.close()

    def test_soft_limit_waits_for_its_seconds(self):
        """Over the soft limit for less than soft-seconds: not disconnected, and every reply
        arrives once the client reads (test_protocol checks the disconnection after them)."""
        with Server(client_output_buffer_limit="normal 0 200kb 60") as s:
            r = s.raw()
            self.assertEqual(r.command("SET", "big", "v" * 100 * 1024), b"OK")
            slow = s.raw()
            slow_id = slow.command("CLIENT", "ID")
            slow.send(encode("GET", "big") * 200)  # 20 MB of replies, not read for a while
            time.sleep(1.5)  # many cron runs (hz 10) with the client over the soft limit
            line = [x for x in r.command("CLIENT", "LIST").split(b"\n")
                    if x.startswith(b"id=%d " % slow_id)]
            self.assertEqual(len(line), 1, "the client over the soft limit was closed early")
            pending = int(line[0].split(b" obl=")[1].split(b" ")[0])
            self.assertGreater(pending, 200 * 1024)  # it really is over the soft limit
            for _ in range(200):
                self.assertEqual(len(slow.read()), 100 * 1024)
            self.assertEqual(slow.command("PING"), b"PONG")
            self.assertEqual(r.command("INFO", "stats").count(
                b"client_output_buffer_limit_disconnections:0"), 1)
            slow.close()
            r.close()


if __name__ == "__main__":
    unittest.main()
