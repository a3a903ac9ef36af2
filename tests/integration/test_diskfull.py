"""A full LMDB map (lmdb-max-map-size): SET, HSET, FS.PUSH and HSET into an FT-indexed hash
are written until the map is full; every refused write gets "storage is full" and changes
nothing (a refused FS.PUSH leaves no history row and no online row, a refused indexed HSET
no document), reads keep working, DEL and FLUSHDB free room that later writes use, and after a
restart with a larger cap every acknowledged write is there and each online row equals
its entity's newest history row.

RocksDB I/O errors, for real: the server runs under RLIMIT_FSIZE, so the history's
write-ahead log fails with EFBIG once it reaches the limit. The pass of that write fails
whole (its LMDB writes too) and its writers are disconnected; every later FS.PUSH gets an
error naming the history storage, while the keyspace, pushes TO ONLINE and reads go on; a
restart without the limit has every acknowledged push and nothing else."""
import os
import resource
import struct
import time
import unittest

import redis

from harness import Server

VIEW, ENTITY, INDEX = "stats", "driver", "idx"
DRIVERS = 40


def vec(i):
    return struct.pack("<4f", i, i % 7, 1.0, -i)


def driver(i):
    return (i // 4) % DRIVERS


class MapCap(unittest.TestCase):
    def setUp(self):
        if os.environ.get("TEST_SERVER"):
            self.skipTest("needs its own server (it restarts it with another cap)")

    def schema(self, r):
        r.execute_command("FS.ENTITY.CREATE", ENTITY, "TYPE", "INT64")
        r.execute_command("FS.VIEW.CREATE", VIEW, "ENTITIES", 1, ENTITY, "SCHEMA",
                          "trips", "INT64", "note", "STRING")
        r.execute_command("FT.CREATE", INDEX, "PREFIX", 1, "doc:", "SCHEMA", "v", "VECTOR",
                          "HNSW", 6, "TYPE", "FLOAT32", "DIM", 4, "DISTANCE_METRIC", "L2")

    def history(self, r, d):
        return r.execute_command("FS.HISTORY", VIEW, d)

    def ndocs(self, r):
        return int(r.ft(INDEX).info()["num_docs"])

    def write(self, r, kind, i):
        """One write of kind; returns None when acknowledged, else the error text."""
        try:
            if kind == "set":
                r.set("s:%d" % i, b"s" * 20000)
            elif kind == "hset":
                r.hset("h:%d" % i, "f", b"h" * 20000)
            elif kind == "push":
                r.execute_command("FS.PUSH", VIEW, driver(i), 1000 + i, "FIELDS", "trips", i,
                                  "note", "n" * 2000)
            else:
                r.hset("doc:%d" % i, "v", vec(i))
            return None
        except redis.ResponseError as e:
            return str(e)

    def snapshot(self, r, kind, i):
        """What a write of kind i may change, read back."""
        if kind == "set":
            return r.get("s:%d" % i)
        if kind == "hset":
            return r.hgetall("h:%d" % i)
        if kind == "push":
            d = driver(i)
            return self.history(r, d), r.execute_command("FS.GET", VIEW, d, "WITHMETA")
        return r.hgetall("doc:%d" % i), self.ndocs(r)

    def fill(self, r):
        """Writes the four kinds in turn until each was refused a few times; returns what was
        acknowledged per kind."""
        acked = {k: [] for k in ("set", "hset", "push", "doc")}
        refused = {k: 0 for k in acked}
        for i in range(4000):
            kind = ("set", "hset", "push", "doc")[i % 4]
            if min(refused.values()) >= 3:
                break
            before = self.snapshot(r, kind, i)
            err = self.write(r, kind, i)
            if err is None:
                acked[kind].append(i)
                continue
            self.assertIn("storage is full", err)
            refused[kind] += 1
            self.assertEqual(self.snapshot(r, kind, i), before, "a refused %s changed it" % kind)
        self.assertGreaterEqual(min(refused.values()), 3, "4 MB took every write: %r" % refused)
        for k in acked:
            self.assertGreater(len(acked[k]), 0, k)
        return acked

    def check_all(self, r, acked, deleted):
        for i in acked["set"]:
            self.assertEqual(r.strlen("s:%d" % i), 0 if i in deleted else 20000)
        for i in acked["hset"]:
            self.assertEqual(r.hget("h:%d" % i, "f"), b"h" * 20000)
        for i in acked["doc"]:
            self.assertEqual(r.hget("doc:%d" % i, "v"), vec(i))
        self.assertEqual(self.ndocs(r), len(acked["doc"]))
        pushed = {}
        for i in acked["push"]:
            pushed.setdefault(driver(i), []).append(1000 + i)
        for d in range(DRIVERS):
            rows = self.history(r, d)
            self.assertEqual([row[0] for row in rows], pushed.get(d, []), d)
            online = r.execute_command("FS.GET", VIEW, d)
            if rows:  # the online row is the newest history row
                self.assertEqual(online, rows[-1][2], d)
            else:
                self.assertEqual(online, [None, None], d)

    def test_full_map_refuses_cleanly_and_keeps_everything(self):
        with Server(durability="always", lmdb_map_size="1mb", lmdb_max_map_size="4mb") as s:
            r = s.client()
            self.schema(r)
            acked = self.fill(r)
            info = r.info("memory")
            self.assertLessEqual(int(info["lmdb_map_size"]), 4 << 20)

            # reads go on; a KNN over the index answers
            self.assertEqual(r.strlen("s:%d" % acked["set"][0]), 20000)
            got = r.execute_command("FT.SEARCH", INDEX, "*=>[KNN 3 @v $q]", "PARAMS", 2, "q",
                                    vec(acked["doc"][0]), "DIALECT", 2)
            self.assertEqual(got[0], 3)

            # deleting works on a full map, and the room it frees takes new writes
            deleted = set(acked["set"][: len(acked["set"]) // 2])
            for i in deleted:
                self.assertEqual(r.delete("s:%d" % i), 1)
            i = 10000
            self.assertIsNone(self.write(r, "set", i), "DEL freed no room")
            acked["set"].append(i)
            self.check_all(r, acked, deleted)

            s.stop()
            s.options["lmdb_max_map_size"] = "64mb"
            s.start()
            r = s.client()
            self.check_all(r, acked, deleted)
            for j in range(20):  # the larger cap takes the writes that were refused
                self.assertIsNone(self.write(r, ("set", "hset", "push", "doc")[j % 4], 20000 + j))

    def test_cap_below_the_initial_size(self):
        with Server(lmdb_map_size="256mb", lmdb_max_map_size="2mb") as s:
            r = s.client()
            self.assertLessEqual(int(r.info("memory")["lmdb_map_size"]), 2 << 20)
            self.assertEqual(r.config_get("lmdb-max-map-size"),
                             {"lmdb-max-map-size": str(2 << 20)})
            with self.assertRaises(redis.ResponseError) as cm:
                for i in range(200):
                    r.set("k%d" % i, b"x" * 50000)
            self.assertIn("storage is full", str(cm.exception))
            self.assertGreater(r.dbsize(), 0)
            self.assertTrue(r.flushdb())  # a full map still empties, and takes writes again
            self.assertEqual(r.dbsize(), 0)
            for i in range(10):
                self.assertTrue(r.set("k%d" % i, b"x" * 50000))


class HistoryIOError(unittest.TestCase):
    LIMIT = 3 << 20  # bytes any file of the server may reach

    def setUp(self):
        if os.environ.get("TEST_SERVER"):
            self.skipTest("needs its own server (started under a file size limit)")

    def limit(self):
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.LIMIT, resource.RLIM_INFINITY))

    def push(self, r, i):
        """FS.PUSH of row i with a marker key, both in one MULTI (one pass)."""
        p = r.pipeline(transaction=True)
        p.set("mark:%d" % i, i)
        p.execute_command("FS.PUSH", VIEW, driver(i), 1000 + i, "FIELDS", "trips", i,
                          "note", "n" * 8000)
        return p.execute()

    def test_wal_past_the_file_limit(self):
        with Server(durability="everysec", lmdb_map_size="1mb",
                    lmdb_max_map_size="2mb") as s:
            s.stop()
            s.preexec = self.limit
            s.start()
            r = s.client()
            r.execute_command("FS.ENTITY.CREATE", ENTITY, "TYPE", "INT64")
            r.execute_command("FS.VIEW.CREATE", VIEW, "ENTITIES", 1, ENTITY, "SCHEMA",
                              "trips", "INT64", "note", "STRING")
            acked, failed_pass, i = [], None, 0
            for i in range(2000):
                try:
                    self.push(r, i)
                    acked.append(i)
                except redis.ConnectionError:  # the pass whose history write failed
                    failed_pass = i
                    break
            self.assertIsNotNone(failed_pass, "3 MB of log took 16 MB of rows")
            r = s.client()
            self.assertIsNone(r.get("mark:%d" % failed_pass))  # LMDB did not commit it
            self.assertNotIn(1000 + failed_pass,
                             [row[0] for row in r.execute_command("FS.HISTORY", VIEW,
                                                                  driver(failed_pass))])
            for j in range(failed_pass + 1, failed_pass + 4):
                if j == failed_pass + 3:  # past the probe's second: RocksDB is still stopped
                    time.sleep(1.2)       # (and the everysec sync left its log alone)
                with self.assertRaises(redis.ResponseError) as cm:
                    r.execute_command("FS.PUSH", VIEW, driver(j), 1000 + j, "FIELDS",
                                      "trips", j)
                self.assertIn("history storage (RocksDB) failed", str(cm.exception))
                self.assertIn("File too large", str(cm.exception))
            # the rest goes on: keys, an online-only push, reads of both stores
            self.assertTrue(r.set("after", "yes"))
            self.assertEqual(r.execute_command("FS.PUSH", VIEW, 0, 999999, "TO", "ONLINE",
                                               "FIELDS", "trips", -1), 1)
            self.assertEqual(r.execute_command("FS.GET", VIEW, 0)[0], -1)
            last = acked[-1]
            rows = r.execute_command("FS.HISTORY", VIEW, driver(last))
            self.assertEqual(rows[-1][0], 1000 + last)

            proc = s.proc
            s.stop()
            self.assertEqual(proc.returncode, 0, s.read_log())  # a clean shutdown
            s.preexec = None
            s.start()
            r = s.client()
            for i in acked:
                self.assertEqual(r.get("mark:%d" % i), b"%d" % i)
            self.assertIsNone(r.get("mark:%d" % failed_pass))
            self.assertEqual(r.get("after"), b"yes")
            pushed = {}
            for i in acked:
                pushed.setdefault(driver(i), []).append(1000 + i)
            for d in range(DRIVERS):
                rows = r.execute_command("FS.HISTORY", VIEW, d)
                self.assertEqual([row[0] for row in rows], pushed.get(d, []), d)
                if d and rows:  # driver 0 got the online-only push after the failure
                    self.assertEqual(r.execute_command("FS.GET", VIEW, d), rows[-1][2], d)
            n = failed_pass + 10
            self.assertEqual(self.push(r, n)[0], True)  # history takes writes again
            self.assertEqual(r.execute_command("FS.HISTORY", VIEW, driver(n))[-1][0], 1000 + n)


if __name__ == "__main__":
    unittest.main()
