"""Replication at size (issue 6, acceptance 4): a full sync of at least 1 GB of data while
writes continue converges. The leader holds QUIVER_BIG_SYNC_MB megabytes of strings (1024 by
default; the Makefile sets less under sanitizers, where the same bytes take many times as
long) beside hashes with expiry, feature history (FS.PUSH) and vectors in an FT-indexed
hash, so every engine is in the snapshot. A replica attaches while a writer keeps writing;
once it has caught up its digest and key counts equal the leader's, the leader counted one
full sync, and every write the leader acknowledged is on the replica. The throughput of the
sync (bytes the leader sent / time to caught up) is printed, not asserted. Every wait is
bounded; the servers' directories go at the end."""
import os
import random
import struct
import sys
import threading
import time
import unittest

import harness
from harness import wait_for
from test_replication import caught_up

SIZE_MB = int(os.environ.get("QUIVER_BIG_SYNC_MB", "1024"))
VALUE_BYTES = 256 * 1024
BATCH = 32  # values per pipelined round trip of the loader: 8 MiB
WAIT_S = 300
WRITER_MAX = 200000  # the writer's bound, in writes


def info(r, section):
    return r.info(section)


def load_strings(server, megabytes):
    """megabytes of VALUE_BYTES values, pipelined over a raw connection. Each value is a
    different slice of one random block, so no two are alike."""
    rng = random.Random(11)
    block = bytes(rng.getrandbits(8) for _ in range(1 << 16)) * 32  # 2 MiB
    raw = server.raw()
    n = megabytes * (1 << 20) // VALUE_BYTES
    try:
        for start in range(0, n, BATCH):
            end = min(n, start + BATCH)
            raw.send(b"".join(harness.encode("SET", "big:%d" % i,
                                             block[i % 4096 * 256:][:VALUE_BYTES])
                              for i in range(start, end)))
            for _ in range(start, end):
                reply = raw.read()
                if reply != b"OK":
                    raise AssertionError("SET while loading: %r" % reply)
    finally:
        raw.close()
    return n


def load_other_engines(r):
    """Hashes (some expiring), feature history and vectors in FT-indexed hashes."""
    rng = random.Random(3)
    r.execute_command("FS.ENTITY.CREATE", "driver", "TYPE", "INT64")
    r.execute_command("FS.VIEW.CREATE", "stats", "ENTITIES", 1, "driver", "SCHEMA",
                      "rate", "FLOAT64", "trips", "INT64")
    r.execute_command("FT.CREATE", "idx", "PREFIX", 1, "doc:", "SCHEMA", "v", "VECTOR", "HNSW",
                      6, "TYPE", "FLOAT32", "DIM", 16, "DISTANCE_METRIC", "L2", "tag", "TAG")
    p = r.pipeline(transaction=False)
    for i in range(20000):
        p.execute_command("FS.PUSH", "stats", str(i % 500), 1000 + i, "FIELDS", "rate",
                          str(i / 7), "trips", i)
        if i % 4 == 0:
            p.hset("h:%d" % (i // 4), mapping={"a": i, "b": "x" * (i % 50)})
            if i % 40 == 0:
                p.expire("h:%d" % (i // 4), 3600)
        if i % 10 == 0:
            v = struct.pack("16f", *[rng.uniform(-1, 1) for _ in range(16)])
            p.hset("doc:%d" % (i // 10), mapping={"v": v, "tag": "t%d" % (i % 3)})
        if i % 1000 == 999:
            p.execute()
    p.execute()


class Writer(threading.Thread):
    """Writes until stopped or WRITER_MAX writes, remembering what the leader acknowledged:
    strings, hash fields and feature rows, pipelined 100 at a time."""

    def __init__(self, server):
        super().__init__()
        self.r = server.client()
        self.stop = threading.Event()
        self.acked = {}  # key -> value
        self.pushed = 0  # FS.PUSH rows acknowledged (entity "w", times 1..pushed)
        self.error = None

    def run(self):
        try:
            n = 0
            while not self.stop.is_set() and n < WRITER_MAX:
                p = self.r.pipeline(transaction=False)
                batch = {}
                for i in range(n, n + 100):
                    key, value = "w:%d" % (i % 30000), "v%d" % i
                    p.set(key, value)
                    batch[key] = value.encode()
                p.hset("wh", "f%d" % (n % 1000), n)
                p.execute_command("FS.PUSH", "stats", "99999", 1 + self.pushed, "FIELDS",
                                  "rate", "1.5", "trips", self.pushed)
                p.execute()
                self.acked.update(batch)
                self.pushed += 1
                n += 100
                time.sleep(0.002)  # a steady stream, not a flood: the sync must finish
        except Exception as e:  # noqa: BLE001 (reported by the test)
            self.error = e


class TestBigFullSync(unittest.TestCase):
    def server(self, **opts):
        s = harness.Server(**opts)
        s.__enter__()
        self.addCleanup(s.__exit__, None, None, None)
        return s

    def test_full_sync_of_a_big_data_set_while_writing_converges(self):
        map_size = "%dmb" % (SIZE_MB * 2 + 512)
        leader = self.server(durability="no", lmdb_map_size=map_size)
        lr = leader.client()
        t0 = time.time()
        keys = load_strings(leader, SIZE_MB)
        load_other_engines(lr)
        used = int(info(lr, "memory")["lmdb_used_bytes"])
        load_s = time.time() - t0
        self.assertGreaterEqual(used, SIZE_MB << 20)

        replica = self.server(durability="no", lmdb_map_size=map_size)
        rr = replica.client()
        writer = Writer(leader)
        writer.start()
        self.addCleanup(writer.join)
        self.addCleanup(writer.stop.set)
        wait_for(lambda: writer.pushed > 0 or writer.error, "the writer's first writes", WAIT_S)
        sent0 = int(info(lr, "stats")["total_net_output_bytes"])
        t1 = time.time()
        rr.execute_command("REPLICAOF", "127.0.0.1", leader.port)
        wait_for(lambda: info(rr, "replication").get("master_link_status") == "up"
                 or writer.error, "the full sync", WAIT_S)
        sync_s = time.time() - t1
        sent = int(info(lr, "stats")["total_net_output_bytes"]) - sent0
        time.sleep(0.5)  # the stream goes on after the swap for a while
        writer.stop.set()
        writer.join()
        self.assertIsNone(writer.error)
        caught_up(lr, rr, WAIT_S)

        self.assertEqual(info(lr, "stats")["sync_full"], 1)
        self.assertEqual(rr.execute_command("QUIVER.DIGEST"), lr.execute_command("QUIVER.DIGEST"))
        for db in range(16):
            lr.execute_command("SELECT", db)
            rr.execute_command("SELECT", db)
            self.assertEqual(rr.dbsize(), lr.dbsize(), "db %d" % db)
        lr.execute_command("SELECT", 0)
        rr.execute_command("SELECT", 0)
        self.assertGreaterEqual(rr.dbsize(), keys + 5000 + 2000)
        self.assertEqual(rr.get("big:%d" % (keys - 1)), lr.get("big:%d" % (keys - 1)))
        acked = sorted(writer.acked.items())
        for i in range(0, len(acked), 1000):
            part = acked[i:i + 1000]
            self.assertEqual(rr.mget([k for k, _ in part]), [v for _, v in part])
        rows = rr.execute_command("FS.HISTORY", "stats", "99999")
        self.assertEqual(len(rows), writer.pushed)
        wait_for(lambda: int(rr.ft("idx").info()["num_docs"]) == 2000, "the replica's FT index",
                 WAIT_S)
        print("\n  full sync of %.0f MB (LMDB in use; leader loaded in %.1f s): %.1f MB sent in "
              "%.2f s = %.0f MB/s, %d writes acknowledged meanwhile"
              % (used / 1e6, load_s, sent / 1e6, sync_s, sent / 1e6 / sync_s,
                 len(writer.acked)), file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
