"""Durability: with `durability always`, every write a client saw acknowledged survives a
SIGKILL of the server at any moment; with `everysec` a SIGKILL never leaves the data
inconsistent (commits are whole and in order); SHUTDOWN and SIGTERM keep everything even
with `durability no`; expiry times survive a restart."""
import os
import random
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import redis

import harness
from harness import Server

CLIENTS = 4
OWN_PROCESS = unittest.skipIf(os.environ.get("TEST_SERVER"), "kills and restarts its server")


class Writer(threading.Thread):
    """Loops SET <p>k:<i>, HSET <p>h f<i>, INCR <p>c until the connection breaks, recording
    what was acknowledged. Each command waits for its reply, so at most one is in flight."""

    def __init__(self, server, prefix):
        super().__init__(daemon=True)
        self.server, self.prefix = server, prefix
        self.acked_sets = 0    # SET k:0 .. k:<n-1> acknowledged
        self.acked_fields = 0  # HSET f0 .. f<n-1> acknowledged
        self.acked_counter = 0
        self.error = None

    def value(self, i):
        return ("%s-%d-" % (self.prefix, i)).encode() * 3

    def run(self):
        p = self.prefix
        i = 0
        try:
            r = self.server.client()
            while True:
                if r.set(p + "k:%d" % i, self.value(i)) is not True:
                    raise AssertionError("SET not OK")
                self.acked_sets = i + 1
                if r.hset(p + "h", "f%d" % i, self.value(i)) != 1:
                    raise AssertionError("HSET did not add a field")
                self.acked_fields = i + 1
                v = r.incr(p + "c")
                if v != i + 1:
                    raise AssertionError("INCR gave %d, expected %d" % (v, i + 1))
                self.acked_counter = v
                i += 1
        except (redis.ConnectionError, redis.TimeoutError, ConnectionError):
            pass  # the server was killed
        except Exception as e:  # noqa: BLE001 - reported by the test thread
            self.error = e


def survey(r, prefix):
    """What the restarted server holds for one writer: the sorted indexes of its SET keys,
    its hash as a dict, and its counter (0 when absent)."""
    keys = sorted(int(k.rsplit(b":", 1)[1]) for k in r.scan_iter(match=prefix + "k:*", count=1000))
    fields = r.hgetall(prefix + "h")
    counter = r.get(prefix + "c")
    return keys, fields, int(counter) if counter is not None else 0


@OWN_PROCESS
class KillNine(unittest.TestCase):
    def run_round(self, s, prefix):
        writers = [Writer(s, "%s:t%d:" % (prefix, t)) for t in range(CLIENTS)]
        for w in writers:
            w.start()
        time.sleep(random.uniform(0.3, 1.0))
        s.kill()
        for w in writers:
            w.join(10)
            self.assertFalse(w.is_alive(), "a writer hung after the kill")
            self.assertIsNone(w.error, "writer failed before the kill: %r" % w.error)
        self.assertGreater(sum(w.acked_counter for w in writers), 0, "nothing was written")
        s.start()
        return writers

    def check_consistent(self, r, w):
        """The writer's commands form one ordered sequence S0 H0 I0 S1 H1 I1 ...; commits are
        atomic and ordered, so what survives must be a prefix of it, with the right values."""
        keys, fields, counter = survey(r, w.prefix)
        m = len(keys)
        self.assertEqual(keys, list(range(m)), "SET keys are not a gap-free prefix")
        n = len(fields)
        self.assertEqual(set(fields), {b"f%d" % i for i in range(n)},
                         "hash fields are not a gap-free prefix")
        self.assertIn((m, n, counter), {(counter, counter, counter), (counter + 1, counter, counter),
                                        (counter + 1, counter + 1, counter)},
                      "surviving SET/HSET/INCR are not a prefix of the command order")
        for i in random.sample(range(m), min(m, 50)):
            self.assertEqual(r.get(w.prefix + "k:%d" % i), w.value(i))
        for i in range(n):
            self.assertEqual(fields[b"f%d" % i], w.value(i))
        return m, n, counter

    def test_always_keeps_every_acknowledged_write(self):
        with Server(durability="always") as s:
            everyone = []
            for rnd in range(4):
                everyone += self.run_round(s, "r%d" % rnd)
                r = s.client()
                for w in everyone:  # this round's writers, and every earlier round's again
                    m, n, counter = self.check_consistent(r, w)
                    self.assertGreaterEqual(m, w.acked_sets, "an acknowledged SET was lost")
                    self.assertGreaterEqual(n, w.acked_fields, "an acknowledged HSET was lost")
                    self.assertGreaterEqual(counter, w.acked_counter,
                                            "an acknowledged INCR was lost")
                    self.assertLessEqual(counter, w.acked_counter + 1)
                r.close()

    def test_everysec_survives_kill_consistent(self):
        with Server(durability="everysec") as s:
            everyone = []
            for rnd in range(2):
                everyone += self.run_round(s, "e%d" % rnd)
                r = s.client()
                total = 0
                for w in everyone:
                    m, n, counter = self.check_consistent(r, w)
                    total += m + (n > 0) + (counter > 0)  # the k: keys, the hash, the counter
                self.assertEqual(r.dbsize(), total)
                self.assertTrue(r.set("after-restart", "1"))
                self.assertEqual(r.get("after-restart"), b"1")
                self.assertEqual(r.delete("after-restart"), 1)
                r.close()


@OWN_PROCESS
class CleanStop(unittest.TestCase):
    def write_data(self, r):
        pipe = r.pipeline(transaction=False)
        for i in range(3000):
            pipe.set("k%d" % i, "v%d" % i)
        for i in range(200):
            pipe.hset("h", "f%d" % i, "x%d" % i)
        pipe.incrby("n", 12345)
        pipe.set("ttl", "t", ex=1000)
        self.assertTrue(all(pipe.execute()))

    def check_data(self, r):
        self.assertEqual(r.dbsize(), 3003)
        self.assertEqual(r.mget(["k0", "k1499", "k2999"]), [b"v0", b"v1499", b"v2999"])
        self.assertEqual(r.hlen("h"), 200)
        self.assertEqual(r.hget("h", "f199"), b"x199")
        self.assertEqual(r.get("n"), b"12345")
        self.assertTrue(900 < r.ttl("ttl") <= 1000)

    def wait_exit(self, s):
        rc = s.proc.wait(10)
        s.proc = None
        s.log.close()
        return rc

    def test_shutdown_keeps_everything_with_durability_no(self):
        with Server(durability="no") as s:
            r = s.client()
            self.write_data(r)
            try:
                r.shutdown()
            except redis.ConnectionError:
                pass
            self.assertEqual(self.wait_exit(s), 0)
            s.start()
            self.check_data(s.client())

    def test_sigterm_keeps_everything_with_durability_no(self):
        with Server(durability="no") as s:
            r = s.client()
            self.write_data(r)
            s.proc.send_signal(signal.SIGTERM)
            self.assertEqual(self.wait_exit(s), 0)
            s.start()
            self.check_data(s.client())


@OWN_PROCESS
class Expiry(unittest.TestCase):
    def test_expiry_survives_restart(self):
        with Server(durability="always") as s:
            r = s.client()
            self.assertTrue(r.set("long", "1", px=60000))
            self.assertTrue(r.set("short", "2", px=300))
            self.assertTrue(r.set("persisted", "3", px=60000))
            self.assertTrue(r.persist("persisted"))
            self.assertTrue(r.hset("hh", "f", "v"))
            self.assertTrue(r.pexpire("hh", 60000))
            abs_ms = int(time.time() * 1000) + 120000
            self.assertTrue(r.set("at", "4"))
            self.assertTrue(r.pexpireat("at", abs_ms))
            s.kill()
            time.sleep(0.4)  # "short" expires while the server is down
            s.start()
            r = s.client()
            self.assertTrue(55000 < r.pttl("long") <= 60000, r.pttl("long"))
            self.assertTrue(55000 < r.pttl("hh") <= 60000, r.pttl("hh"))
            self.assertEqual(r.pttl("persisted"), -1)
            self.assertEqual(r.get("persisted"), b"3")
            self.assertIsNone(r.get("short"))
            self.assertEqual(r.pttl("short"), -2)
            self.assertEqual(r.execute_command("PEXPIRETIME", "at"), abs_ms)
            self.assertEqual(r.get("long"), b"1")
            # the expired key no longer counts once the active cycle has run
            deadline = time.time() + 2
            while r.dbsize() != 4 and time.time() < deadline:
                time.sleep(0.05)
            self.assertEqual(r.dbsize(), 4)


if __name__ == "__main__":
    unittest.main()


class DiskFull(unittest.TestCase):
    """A full disk refuses writes with a clear error, keeps serving reads, loses nothing
    acknowledged, and never crashes (with MDB_WRITEMAP an unbacked page would be SIGBUS)."""

    def setUp(self):
        if os.environ.get("TEST_SERVER"):
            self.skipTest("needs its own server")
        if os.geteuid() != 0:
            self.skipTest("mounting a small tmpfs needs root")
        self.mnt = tempfile.mkdtemp(prefix="quiver-full-")
        if subprocess.call(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", self.mnt]) != 0:
            os.rmdir(self.mnt)
            self.skipTest("cannot mount a tmpfs here")
        self.addCleanup(lambda: (subprocess.call(["umount", self.mnt]), os.rmdir(self.mnt)))

    def test_full_disk_refuses_writes_and_keeps_data(self):
        with Server(durability="always", lmdb_map_size="1mb") as s:
            s.stop()  # restart it with its data on the small disk
            data = os.path.join(self.mnt, "data")
            s.args = lambda: [harness.BINARY, "--bind", "127.0.0.1", "--port", str(s.port),
                              "--dir", data, "--durability", "always", "--lmdb-map-size", "1mb"]
            s.start()
            r = s.client()
            acked = []
            error = None
            for i in range(500):
                try:
                    r.set("k%d" % i, b"x" * 100000)
                    acked.append("k%d" % i)
                except redis.ResponseError as e:
                    error = str(e)
                    break
            self.assertIsNotNone(error, "8 MB of disk took 50 MB of values")
            self.assertIn("storage is full", error)
            self.assertGreater(len(acked), 0)
            self.assertEqual(r.get(acked[0]), b"x" * 100000)  # reads go on
            self.assertEqual(r.dbsize(), len(acked))
            s.stop()
            s.start()
            r = s.client()
            self.assertEqual(r.dbsize(), len(acked))
            for k in acked:
                self.assertEqual(r.strlen(k), 100000)
