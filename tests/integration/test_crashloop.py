"""Crash loop: a server with `durability always` under a mixed write load from several
clients is SIGKILLed at random moments, over and over (and now and then stopped with
SIGTERM, so that restarts also meet FT snapshots, current or stale). After every restart:

- every acknowledged write is there. Each writer owns its keys, so its state is known; the
  one command a writer had in flight at the kill may or may not have been applied: the
  server must hold the last acknowledged value or the in-flight one, nothing else. Strings
  (SET, INCR), hashes with a long EXPIRE (fields and TTL), strings with a short PX (there
  while their deadline is ahead, gone once it has passed), feature-store pushes (every
  acknowledged event in FS.HISTORY, in order) and vector documents (HSET, DEL);
- each entity's online row (FS.GET) equals its newest history row (FS.HISTORY DESC COUNT 1);
- the FT index agrees with the hashes once FT.INFO says it is indexed: num_docs is the number
  of live documents, `*` finds exactly them, a KNN query with a document's vector finds that
  document at distance 0, and a deleted document's last vector does not find it.

A server that replied before its commit reached the disk loses the last acknowledged write
of some writer at some kill (the commit is a few ms of fsync, the kills land anywhere), so
the first check fails. The seed is printed; CRASHLOOP_SEED=<n> runs the same kill times and
operation choices again (thread interleavings differ). CRASHLOOP_ROUNDS sets the number of
restarts (default 40: 34 kills, 6 SIGTERMs).

Run: PYTHONPATH=tests/integration /usr/bin/python3 -m unittest -v test_crashloop"""
import os
import random
import struct
import sys
import threading
import time
import unittest

from harness import RespError, Server

WRITERS = 4
ROUNDS = int(os.environ.get("CRASHLOOP_ROUNDS", "40"))
TERM_EVERY = 6           # every 6th restart is a SIGTERM, the rest SIGKILLs
STRINGS, HASHES, ENTITIES, DOCS = 8, 8, 6, 20
DIM = 4
LONG_TTL = (600, 1200)   # seconds: hashes that never expire during the test
SHORT_TTL_MS = (100, 2500)
SLACK = 0.005            # seconds: the server's clock counts whole milliseconds
READY_TIMEOUT = 30
BASE_TS = int(time.time() * 1000) - 86400000
OWN_PROCESS = unittest.skipIf(os.environ.get("TEST_SERVER"), "kills and restarts its server")


def vec(rng):
    return struct.pack("<%df" % DIM, *(rng.uniform(-1, 1) for _ in range(DIM)))


class Lost(AssertionError):
    pass


class Writer:
    """One client's share of the keyspace and what it knows of it. run() issues commands
    one at a time until the connection breaks; `inflight` is then the command that got no
    reply, as (kind, key, new value). Between rounds the checks compare the server with
    `state` (the acknowledged values) and `inflight`, then adopt what the server holds."""

    def __init__(self, w, seed):
        self.w = w
        self.rng = random.Random(seed * 131 + w)
        self.seq = 0
        self.state = {}       # key -> acknowledged value (None: absent)
        self.counter = 0
        self.expire_acked = set()  # hashes whose EXPIRE was acknowledged
        self.history = {}     # entity -> [event_ts...] acknowledged, oldest first
        self.row = {}         # entity -> (rate, city, emb) of its newest acknowledged push
        self.short = []       # (key, value, sent, acked, ttl_ms) of SET ... PX
        self.inflight = None
        self.acked = 0
        self.error = None

    def key(self, kind, i):
        return "w%d:%s:%d" % (self.w, kind, i)

    def doc(self, i):
        return "doc:w%d:%d" % (self.w, i)

    def entity(self, i):
        return "u%d_%d" % (self.w, i)

    def send(self, c, cmd, expect):
        rep = c.command(*cmd)
        if isinstance(rep, RespError) or (expect is not None and rep != expect):
            raise AssertionError("%s answered %r" % (cmd[0], rep))
        self.acked += 1
        return rep

    def step(self, c):
        """One random write; the model changes only once it is acknowledged."""
        rng, self.seq = self.rng, self.seq + 1
        op = rng.random()
        if op < 0.15:
            k, v = self.key("s", rng.randrange(STRINGS)), b"s%d-%d" % (self.w, self.seq)
            self.inflight = ("str", k, v)
            self.send(c, ["SET", k, v], b"OK")
            self.state[k] = v
        elif op < 0.25:
            k = self.key("c", 0)
            self.inflight = ("counter", k, self.counter + 1)
            self.counter = self.send(c, ["INCR", k], self.counter + 1)
        elif op < 0.40:
            k = self.key("h", rng.randrange(HASHES))
            v = {b"v": b"h%d-%d" % (self.w, self.seq), b"n": b"%d" % self.seq}
            self.inflight = ("hash", k, v)
            self.send(c, ["HSET", k, "v", v[b"v"], "n", v[b"n"]], None)
            self.state[k] = v
            self.inflight = ("expire", k, None)
            self.send(c, ["EXPIRE", k, rng.randint(*LONG_TTL)], 1)
            self.expire_acked.add(k)
        elif op < 0.50:
            k, v = self.key("e", self.seq), b"e%d" % self.seq
            ttl = rng.randint(*SHORT_TTL_MS)
            self.inflight = ("short", k, None)
            sent = time.time()
            self.send(c, ["SET", k, v, "PX", ttl], b"OK")
            self.short.append((k, v, sent, time.time(), ttl))
        elif op < 0.75:
            e = self.entity(rng.randrange(ENTITIES))
            ts = BASE_TS + self.seq
            row = (self.seq + 0.5, "c%d" % (self.seq % 7), vec(rng))
            self.inflight = ("push", e, (ts, row))
            self.send(c, ["FS.PUSH", "feat", e, ts, "FIELDS", "rate", repr(row[0]),
                          "city", row[1], "emb", row[2]], 1)
            self.history.setdefault(e, []).append(ts)
            self.row[e] = row
        elif op < 0.93:
            k, v = self.doc(rng.randrange(DOCS)), vec(rng)
            self.inflight = ("doc", k, v)
            self.send(c, ["HSET", k, "v", v, "n", self.seq], None)
            self.state[k] = v
        else:
            k = self.doc(rng.randrange(DOCS))
            self.inflight = ("doc", k, None)
            self.send(c, ["DEL", k], 1 if self.state.get(k) else 0)
            self.state[k] = None
        self.inflight = None

    def run(self, server):
        self.inflight, self.error = None, None
        try:
            c = server.raw()
        except OSError:
            return
        try:
            while True:
                self.step(c)
        except (ConnectionError, OSError):
            pass  # the server went away: self.inflight may or may not have been applied
        except Exception as e:  # noqa: BLE001 - reported by the test thread
            self.error = e
        finally:
            c.close()


def info_map(reply):
    return dict(zip(reply[::2], reply[1::2]))


@OWN_PROCESS
class CrashLoop(unittest.TestCase):
    def setUp(self):
        seed = os.environ.get("CRASHLOOP_SEED")
        self.seed = int(seed) if seed else random.SystemRandom().randrange(1 << 30)
        print("crash loop seed %d (CRASHLOOP_SEED=%d to repeat)" % (self.seed, self.seed),
              file=sys.stderr, flush=True)
        self.rng = random.Random(self.seed)

    def cmd(self, c, *args):
        rep = c.command(*args)
        if isinstance(rep, RespError):
            raise AssertionError("%s: %s" % (args[0], rep))
        return rep

    def create_schema(self, c):
        self.cmd(c, "FS.ENTITY.CREATE", "user")
        self.cmd(c, "FS.VIEW.CREATE", "feat", "ENTITIES", 1, "user", "SCHEMA", "rate",
                 "FLOAT64", "city", "STRING", "emb", "VECTOR", DIM)
        self.cmd(c, "FT.CREATE", "idx", "ON", "HASH", "PREFIX", 1, "doc:", "SCHEMA", "v",
                 "VECTOR", "HNSW", 6, "TYPE", "FLOAT32", "DIM", DIM, "DISTANCE_METRIC", "L2",
                 "n", "NUMERIC")

    def one_round(self, s, writers, kill):
        threads = [threading.Thread(target=w.run, args=(s,), daemon=True) for w in writers]
        for t in threads:
            t.start()
        time.sleep(self.rng.uniform(0.15, 1.2))
        proc = s.proc
        self.assertIsNone(proc.poll(), "the server died under the load: " + s.read_log())
        if kill:
            s.kill()
        else:
            s.stop()
            self.assertEqual(proc.returncode, 0, "SIGTERM: " + s.read_log())
        for t in threads:
            t.join(10)
            self.assertFalse(t.is_alive(), "a writer hung after the server went away")
        for w in writers:
            self.assertIsNone(w.error, "writer %d failed before the kill: %r" % (w.w, w.error))
        s.start()

    def wait_ready(self, c):
        deadline = time.time() + READY_TIMEOUT
        while True:
            info = info_map(self.cmd(c, "FT.INFO", "idx"))
            if int(info[b"indexing"]) == 0 and float(info[b"percent_indexed"]) == 1.0:
                return info
            if time.time() > deadline:
                self.fail("FT index still indexing %ds after the restart: %r" % (
                    READY_TIMEOUT, info))
            time.sleep(0.05)

    def allowed(self, w, key, acked):
        """The values key may hold: the acknowledged one, and the in-flight one."""
        out = [acked]
        if w.inflight and w.inflight[1] == key and w.inflight[0] != "expire":
            out.append(w.inflight[2])
        return out

    def check_strings(self, c, w):
        for i in range(STRINGS):
            k = w.key("s", i)
            got = self.cmd(c, "GET", k)
            if got not in self.allowed(w, k, w.state.get(k)):
                raise Lost("%s holds %r, acknowledged %r" % (k, got, w.state.get(k)))
            w.state[k] = got
        k = w.key("c", 0)
        got = int(self.cmd(c, "GET", k) or 0)
        if got not in self.allowed(w, k, w.counter):
            raise Lost("%s holds %d, acknowledged %d" % (k, got, w.counter))
        w.counter = got

    def check_hashes(self, c, w):
        for i in range(HASHES):
            k = w.key("h", i)
            raw = self.cmd(c, "HGETALL", k)
            got = info_map(raw) if raw else None
            if got not in self.allowed(w, k, w.state.get(k)):
                raise Lost("%s holds %r, acknowledged %r" % (k, got, w.state.get(k)))
            w.state[k] = got
            pttl = self.cmd(c, "PTTL", k)
            if got is None:
                continue
            if k in w.expire_acked or pttl != -1:
                self.assertTrue(0 < pttl <= LONG_TTL[1] * 1000,
                                "%s: PTTL %d after an acknowledged EXPIRE" % (k, pttl))
                w.expire_acked.add(k)

    def check_short(self, c, w):
        """SET ... PX keys: there until the earliest deadline the server can have set, gone
        after the latest."""
        keep = []
        for k, v, sent, acked, ttl in w.short:
            before = time.time()
            got = self.cmd(c, "GET", k)
            after = time.time()
            if after < sent + ttl / 1000.0 - SLACK:
                if got != v:
                    raise Lost("%s (PX %d) holds %r before its deadline" % (k, ttl, got))
            elif before > acked + ttl / 1000.0 + SLACK:
                self.assertIsNone(got, "%s (PX %d) outlived its deadline" % (k, ttl))
                continue
            keep.append((k, v, sent, acked, ttl))
        w.short = keep

    def check_entities(self, c, w):
        for i in range(ENTITIES):
            e = w.entity(i)
            hist = self.cmd(c, "FS.HISTORY", "feat", e)
            got = [int(h[0]) for h in hist]
            acked = w.history.get(e, [])
            options = [acked]
            if w.inflight and w.inflight[0] == "push" and w.inflight[1] == e:
                options.append(acked + [w.inflight[2][0]])
            if got not in options:
                raise Lost("history of %s holds events %r, acknowledged %r" % (e, got, acked))
            online = self.cmd(c, "FS.GET", "feat", e)
            if not got:
                self.assertEqual(online, [None, None, None], "online row of %s without history" % e)
                continue
            newest = self.cmd(c, "FS.HISTORY", "feat", e, "DESC", "COUNT", 1)
            self.assertEqual(newest[0], hist[-1], "FS.HISTORY DESC disagrees with ascending")
            self.assertEqual(online, newest[0][2],
                             "online row of %s is not its newest history row" % e)
            row = w.row[e] if got == acked else w.inflight[2][1]
            self.assertEqual((float(online[0]), online[1].decode(), online[2]), row,
                             "online row of %s holds other values than its last push" % e)
            w.history[e], w.row[e] = got, row

    def check_docs(self, c, writers):
        live, deleted = {}, {}
        for w in writers:
            for i in range(DOCS):
                k = w.doc(i)
                got = self.cmd(c, "HGET", k, "v")
                if got not in self.allowed(w, k, w.state.get(k)):
                    raise Lost("%s holds %r, acknowledged %r" % (k, got, w.state.get(k)))
                if got is not None:
                    live[k] = got
                elif w.state.get(k) or (w.inflight and w.inflight[1] == k and w.inflight[2]):
                    deleted[k] = w.state.get(k) or w.inflight[2]
                w.state[k] = got
        info = self.wait_ready(c)
        self.assertEqual(int(info[b"num_docs"]), len(live), "FT.INFO num_docs")
        found = self.cmd(c, "FT.SEARCH", "idx", "*", "NOCONTENT", "LIMIT", 0, 1000)
        self.assertEqual(found[0], len(live), "FT.SEARCH * total")
        self.assertEqual({k.decode() for k in found[1:]}, set(live), "FT.SEARCH * documents")
        for k in self.rng.sample(sorted(live), min(len(live), 24)):
            hits = self.knn(c, live[k])
            self.assertIn((k, 0.0), hits, "KNN with the vector of %s" % k)
        for k in self.rng.sample(sorted(deleted), min(len(deleted), 8)):
            hits = self.knn(c, deleted[k])
            self.assertNotIn(k, [h[0] for h in hits], "KNN found the deleted %s" % k)

    def knn(self, c, blob):
        """EF_RUNTIME past the number of documents: a miss is the index's state, not recall."""
        rep = self.cmd(c, "FT.SEARCH", "idx", "*=>[KNN 3 @v $q EF_RUNTIME %d AS d]" % (
            2 * WRITERS * DOCS), "PARAMS", 2, "q", blob, "RETURN", 1, "d", "DIALECT", 2)
        return [(rep[i].decode(), float(info_map(rep[i + 1])[b"d"]))
                for i in range(1, len(rep), 2)]

    def check(self, s, writers):
        c = s.raw()
        try:
            for w in writers:
                self.check_strings(c, w)
                self.check_hashes(c, w)
                self.check_short(c, w)
                self.check_entities(c, w)
            self.check_docs(c, writers)
        finally:
            c.close()

    def test_kill_loop_keeps_acknowledged_writes_and_indexes(self):
        writers = [Writer(w, self.seed) for w in range(WRITERS)]
        with Server(durability="always") as s:
            c = s.raw()
            self.create_schema(c)
            c.close()
            kills = 0
            for rnd in range(ROUNDS):
                kill = rnd % TERM_EVERY != TERM_EVERY - 1
                self.one_round(s, writers, kill)
                kills += kill
                try:
                    self.check(s, writers)
                except AssertionError as e:
                    raise AssertionError("round %d (seed %d, after a %s): %s" % (
                        rnd, self.seed, "SIGKILL" if kill else "SIGTERM", e)) from None
            acked = sum(w.acked for w in writers)
            with open(os.path.join(s.dir, "server.log"), "rb") as f:
                replays = f.read().count(b"online rows replayed")
            print("crash loop: %d SIGKILLs, %d SIGTERMs, %d acknowledged writes, %d history "
                  "journals replayed" % (kills, ROUNDS - kills, acked, replays), file=sys.stderr)
            self.assertGreater(acked, ROUNDS * WRITERS, "the load barely ran")


if __name__ == "__main__":
    unittest.main()
