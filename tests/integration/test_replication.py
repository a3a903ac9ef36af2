"""Replication: leaders and replicas on 127.0.0.1. Convergence under a mixed write load
(strings, hashes with expiry, FS.PUSH, vectors in FT-indexed hashes) checked key by key and
through FS.JOIN and FT.SEARCH; READONLY replicas; a SIGKILLed replica resuming by partial
resync, or by full sync when the backlog is too small; bad input (garbage from a fake
replica, a bogus PSYNC, a wrong masterauth) leaving the leader unharmed; masteruser with a
minimal ACL user; tls-replication to a TLS-only leader (full sync, stream, partial resync
after SIGKILL; a foreign, missing or distrusting certificate refused); -LOADING while a whole
snapshot waits for a worker job, and a readiness probe during a big full sync; repl-timeout
at both ends (SIGSTOP of the leader, of a replica, a fake replica that stops reading) and
the leader's PINGs in the stream; FAILOVER with a writer running (Redis's errors, TIMEOUT,
ABORT); a first sync not counted as a failed partial one; replica-protect-data against a
leader that came back empty. Every wait is bounded."""
import os
import random
import shutil
import signal
import struct
import threading
import time
import unittest

import certs
import harness
from harness import wait_for
import redis

WAIT_S = 30


def info(r, section):
    """INFO section as strings (a slaveN line stays a dict, as redis-py parses it)."""
    return {k: v if isinstance(v, dict) else str(v) for k, v in r.info(section).items()}


def caught_up(leader, replica, timeout=WAIT_S):
    """The replica's link is up and it has applied every byte the leader logged."""
    def ok():
        ri = info(replica, "replication")
        return (ri.get("master_link_status") == "up" and
                ri.get("slave_repl_offset") == info(leader, "replication")["master_repl_offset"])
    wait_for(ok, "the replica to catch up", timeout)


def dump(r):
    """Every key of every database with its type, value and whether it expires."""
    out = {}
    for db in range(16):
        r.execute_command("SELECT", db)
        for key in r.scan_iter(count=1000):
            t = r.type(key)
            if t == b"string":
                v = r.get(key)
            elif t == b"hash":
                v = sorted(r.hgetall(key).items())
            else:
                continue  # expired between SCAN and TYPE
            out[(db, key)] = (t, v, r.pttl(key) > 0)
    r.execute_command("SELECT", 0)
    return out


def vec(rng, dim=8):
    return struct.pack("%df" % dim, *[rng.uniform(-1, 1) for _ in range(dim)])


class Base(unittest.TestCase):
    def server(self, **opts):
        s = harness.Server(**opts)
        s.__enter__()
        self.addCleanup(s.__exit__, None, None, None)
        return s

    def follow(self, replica, leader):
        replica.client().execute_command("REPLICAOF", "127.0.0.1", leader.port)


def setup_schema(r):
    r.execute_command("FS.ENTITY.CREATE", "driver", "TYPE", "INT64")
    r.execute_command("FS.VIEW.CREATE", "stats", "ENTITIES", 1, "driver", "SCHEMA",
                      "rate", "FLOAT64", "trips", "INT64")
    r.execute_command("FT.CREATE", "idx", "PREFIX", 1, "doc:", "SCHEMA", "v", "VECTOR", "FLAT",
                      6, "TYPE", "FLOAT32", "DIM", 8, "DISTANCE_METRIC", "L2", "tag", "TAG")


def write_load(r, rng, n, base=0):
    """n rounds of mixed writes, pipelined."""
    p = r.pipeline(transaction=False)
    for i in range(base, base + n):
        p.set("s:%d" % i, "v%d" % rng.randrange(1000))
        p.hset("h:%d" % (i % 50), "f%d" % (i % 7), i)
        if i % 10 == 0:
            p.expire("h:%d" % (i % 50), 3600)
            p.set("t:%d" % i, "x", ex=1000)
        if i % 13 == 0:
            p.delete("s:%d" % (i - 5))
        p.execute_command("SELECT", 2)
        p.incr("db2:ctr")
        p.execute_command("SELECT", 0)
        p.execute_command("FS.PUSH", "stats", str(i % 20), 1000 + i, "FIELDS", "rate",
                          str(i / 7), "trips", i)
        p.hset("doc:%d" % (i % 40), mapping={"v": vec(rng), "tag": "t%d" % (i % 3)})
    p.execute()


def write_transactions(r, n):
    """MULTI/EXEC blocks of several writes (the stream wraps them in MULTI ... EXEC)."""
    for i in range(n):
        p = r.pipeline(transaction=True)
        p.incr("tx:a")
        p.hset("tx:h", "f%d" % (i % 5), i)
        p.execute_command("SELECT", 4)
        p.set("tx:b%d" % i, i)
        p.execute()


def answers(r, rng_seed=7):
    """What FS.JOIN and FT.SEARCH answer to fixed questions."""
    rng = random.Random(rng_seed)
    rows = []
    for e in range(20):
        rows += [str(e), 1000 + rng.randrange(0, 400)]
    join = r.execute_command("FS.JOIN", "FEATURES", 2, "stats:rate", "stats:trips",
                             "ROWS", 20, *rows)
    knn = []
    for _ in range(3):
        q = vec(rng)
        knn.append(r.execute_command("FT.SEARCH", "idx", "*=>[KNN 5 @v $q AS d]", "PARAMS", 2,
                                     "q", q, "RETURN", 1, "d", "DIALECT", 2))
    return join, knn


class TestConvergence(Base):
    def test_two_replicas_converge_under_mixed_load(self):
        leader = self.server()
        lr = leader.client()
        setup_schema(lr)
        rng = random.Random(1)
        write_load(lr, rng, 300)
        early = self.server(replicaof="127.0.0.1 %d" % leader.port)
        write_load(lr, rng, 300, base=300)  # while the first one syncs
        late = self.server()
        self.follow(late, leader)
        write_load(lr, rng, 300, base=600)
        write_transactions(lr, 50)
        for s in (early, late):
            caught_up(lr, s.client())
        want = dump(lr)
        self.assertGreater(len(want), 500)
        want_answers = answers(lr)
        digest = lr.execute_command("QUIVER.DIGEST")
        for s in (early, late):
            r = s.client()
            self.assertEqual(r.execute_command("QUIVER.DIGEST"), digest)
            self.assertEqual(dump(r), want)
            wait_for(lambda: int(r.ft("idx").info()["num_docs"]) == 40, "the FT index")
            self.assertEqual(answers(r), want_answers)
        li = info(lr, "replication")
        self.assertEqual(li["connected_slaves"], "2")
        self.assertEqual(li["slave0"]["state"], "online")
        self.assertEqual(info(lr, "stats")["sync_full"], "2")
        role = late.client().execute_command("ROLE")
        self.assertEqual(role[0], b"slave")
        self.assertEqual(role[3], b"connected")

    def test_replica_refuses_writes(self):
        leader = self.server()
        replica = self.server(replicaof="127.0.0.1 %d" % leader.port)
        r = replica.client()
        caught_up(leader.client(), r)
        for cmd in (("SET", "a", "1"), ("HSET", "h", "f", "v"), ("DEL", "a"),
                    ("FS.ENTITY.CREATE", "e", "TYPE", "INT64")):
            with self.assertRaises(Exception) as cm:
                r.execute_command(*cmd)
            self.assertEqual(str(cm.exception),
                             "You can't write against a read only replica.")
        self.assertIsNone(r.get("a"))
        self.assertEqual(r.execute_command("PING"), True)


class TestChain(Base):
    def test_replica_of_a_replica_converges(self):
        leader = self.server()
        lr = leader.client()
        setup_schema(lr)
        rng = random.Random(5)
        write_load(lr, rng, 100)
        middle = self.server(replicaof="127.0.0.1 %d" % leader.port)
        caught_up(lr, middle.client())
        lr.execute_command("SELECT", 5)
        lr.set("in-db-5", "x")  # the chain's stream is on db 5 when the last one syncs
        lr.execute_command("SELECT", 0)
        caught_up(lr, middle.client())
        last = self.server(replicaof="127.0.0.1 %d" % middle.port)
        mr, tr = middle.client(), last.client()
        caught_up(mr, tr)
        lr.execute_command("SELECT", 5)
        lr.set("in-db-5-later", "y")  # no SELECT in the stream: still on db 5
        lr.execute_command("SELECT", 0)
        write_load(lr, rng, 100, base=100)
        caught_up(lr, mr)
        caught_up(mr, tr)
        self.assertEqual(info(tr, "replication")["master_repl_offset"],
                         info(lr, "replication")["master_repl_offset"])
        self.assertEqual(tr.execute_command("QUIVER.DIGEST"), lr.execute_command("QUIVER.DIGEST"))
        tr.execute_command("SELECT", 5)
        self.assertEqual(tr.get("in-db-5-later"), b"y")
        self.assertEqual(info(mr, "replication")["connected_slaves"], "1")


class TestExpiry(Base):
    def test_replica_applies_writes_to_keys_its_own_clock_has_expired(self):
        """The replica is stopped while the leader writes to a key in its last moments, so
        the replica applies those writes after the key's expiry time: it must apply them as
        the leader did (INCR on 10, then PERSIST), not to a key it thinks is gone."""
        import signal
        leader = self.server()
        lr = leader.client()
        replica = self.server(replicaof="127.0.0.1 %d" % leader.port)
        caught_up(lr, replica.client())
        replica.proc.send_signal(signal.SIGSTOP)
        try:
            p = lr.pipeline(transaction=False)
            p.set("k", 10, px=300)
            p.incr("k")
            p.hset("h", "f", 1)
            p.pexpire("h", 300)
            p.hincrby("h", "f", 5)
            p.persist("k")
            p.persist("h")
            p.execute()
            time.sleep(0.5)
        finally:
            replica.proc.send_signal(signal.SIGCONT)
        rr = replica.client()
        caught_up(lr, rr)
        self.assertEqual(lr.get("k"), b"11")
        self.assertEqual(rr.get("k"), b"11")
        self.assertEqual(rr.hget("h", "f"), b"6")
        self.assertEqual(rr.ttl("k"), -1)
        self.assertEqual(rr.execute_command("QUIVER.DIGEST"), lr.execute_command("QUIVER.DIGEST"))


class TestWaitAndDigest(Base):
    def test_wait_counts_replicas_that_acknowledged(self):
        leader = self.server()
        lr = leader.client()
        replica = self.server(replicaof="127.0.0.1 %d" % leader.port)
        caught_up(lr, replica.client())
        lr.set("a", "1")
        self.assertEqual(lr.execute_command("WAIT", 1, 0), 1)
        self.assertEqual(replica.client().get("a"), b"1")
        lr.set("b", "2")
        self.assertEqual(lr.execute_command("WAIT", 2, 200), 1)  # only one exists: timeout
        with self.assertRaises(Exception):
            replica.client().execute_command("WAIT", 1, 0)

    def test_min_replicas_to_write(self):
        leader = self.server(min_replicas_to_write=1)
        lr = leader.client()
        with self.assertRaises(Exception) as cm:
            lr.set("a", "1")
        self.assertEqual(str(cm.exception), "NOREPLICAS Not enough good replicas to write.")
        self.assertIsNone(lr.get("a"))
        replica = self.server(replicaof="127.0.0.1 %d" % leader.port)
        caught_up(lr, replica.client())
        self.assertTrue(lr.set("a", "1"))
        replica.kill()
        wait_for(lambda: info(lr, "replication")["connected_slaves"] == "0", "the replica gone")
        with self.assertRaises(Exception):
            lr.set("a", "2")
        self.assertEqual(lr.get("a"), b"1")

    def test_digest_sees_every_kind_of_change(self):
        s = self.server()
        r = s.client()
        setup_schema(r)
        seen = {r.execute_command("QUIVER.DIGEST")}
        for cmd in (("SET", "k", "v"), ("SET", "k", "w"), ("EXPIRE", "k", 100),
                    ("HSET", "h", "f", "1"), ("HSET", "h", "f", "2"),
                    ("FS.PUSH", "stats", "1", 1000, "FIELDS", "rate", "0.5", "trips", 1),
                    ("FS.PUSH", "stats", "1", 500, "FIELDS", "rate", "0.5", "trips", 1),
                    ("FS.ENTITY.CREATE", "other", "TYPE", "STRING")):
            r.execute_command(*cmd)
            d = r.execute_command("QUIVER.DIGEST")
            self.assertNotIn(d, seen, cmd)
            seen.add(d)
        r.execute_command("SELECT", 3)
        r.set("k", "w")  # the same key and value in another database
        self.assertNotIn(r.execute_command("QUIVER.DIGEST"), seen)


class TestFailover(Base):
    def test_promoted_replica_keeps_acknowledged_writes_and_the_other_resyncs_partially(self):
        leader = self.server()
        lr = leader.client()
        setup_schema(lr)
        a = self.server(replicaof="127.0.0.1 %d" % leader.port)
        b = self.server(replicaof="127.0.0.1 %d" % leader.port)
        rng = random.Random(4)
        write_load(lr, rng, 200)
        acked = []
        for i in range(200):
            lr.set("acked:%d" % i, i)
            if lr.execute_command("WAIT", 1, 5000) >= 1:
                acked.append(i)
        self.assertEqual(len(acked), 200)
        for s in (a, b):
            caught_up(lr, s.client())
        old_id = info(lr, "replication")["master_replid"]
        leader.kill()
        ar, br = a.client(), b.client()
        self.assertEqual(ar.execute_command("REPLICAOF", "NO", "ONE"), b"OK")
        ai = info(ar, "replication")
        self.assertEqual(ai["role"], "master")
        self.assertEqual(ai["master_replid2"], old_id)
        self.assertNotEqual(ai["master_replid"], old_id)
        self.follow(b, a)
        caught_up(ar, br)
        st = info(ar, "stats")
        self.assertEqual((st["sync_partial_ok"], st["sync_full"]), ("1", "0"))
        ar.set("after-failover", "1")
        caught_up(ar, br)
        self.assertEqual(br.get("after-failover"), b"1")
        for i in acked:
            self.assertEqual(ar.get("acked:%d" % i), str(i).encode())
        self.assertEqual(br.execute_command("QUIVER.DIGEST"), ar.execute_command("QUIVER.DIGEST"))
        self.assertEqual(info(br, "replication")["master_replid"], info(ar, "replication")["master_replid"])


class TestResync(Base):
    def test_killed_replica_resumes_by_partial_resync(self):
        leader = self.server()
        lr = leader.client()
        setup_schema(lr)
        rng = random.Random(2)
        write_load(lr, rng, 200)
        replica = self.server(replicaof="127.0.0.1 %d" % leader.port)
        caught_up(lr, replica.client())
        write_load(lr, rng, 50, base=200)
        replica.kill()
        write_load(lr, rng, 50, base=250)  # missed, but within the backlog
        replica.start()
        caught_up(lr, replica.client())
        st = info(lr, "stats")
        self.assertEqual(st["sync_partial_ok"], "1")
        self.assertEqual(st["sync_full"], "1")
        self.assertEqual(dump(replica.client()), dump(lr))

    def test_backlog_too_small_means_full_sync(self):
        leader = self.server(repl_backlog_size="16kb")
        lr = leader.client()
        setup_schema(lr)
        rng = random.Random(3)
        replica = self.server(replicaof="127.0.0.1 %d" % leader.port)
        write_load(lr, rng, 100)
        caught_up(lr, replica.client())
        replica.kill()
        write_load(lr, rng, 400, base=100)  # far more than 16 KB
        replica.start()
        caught_up(lr, replica.client())
        st = info(lr, "stats")
        self.assertEqual(st["sync_partial_ok"], "0")
        self.assertEqual(st["sync_full"], "2")
        self.assertEqual(dump(replica.client()), dump(lr))
        self.assertEqual(answers(replica.client()), answers(lr))
        self.assertEqual(replica.client().execute_command("QUIVER.DIGEST"),
                         lr.execute_command("QUIVER.DIGEST"))


class TestInterruptedSwap(Base):
    """What a crash leaves in <dir>/sync.tmp: with READY the swap is finished at the next
    start; without it the partial transfer is thrown away and the old data stays."""

    def test_ready_snapshot_is_swapped_in_at_start_and_partial_one_dropped(self):
        import shutil
        src = self.server()
        src.client().set("from", "snapshot")
        src.stop()
        dst = self.server()
        dst.client().set("old", "data")
        dst.stop()
        data = os.path.join(dst.dir, "data")
        tmp = os.path.join(data, "sync.tmp")
        os.mkdir(tmp)
        open(os.path.join(tmp, "junk"), "w").close()  # no READY: an unfinished transfer
        dst.start()
        r = dst.client()
        self.assertEqual(r.get("old"), b"data")
        self.assertFalse(os.path.exists(tmp))
        dst.stop()
        os.mkdir(tmp)
        shutil.copy(os.path.join(src.dir, "data", "data.mdb"), tmp)
        shutil.copytree(os.path.join(src.dir, "data", "history"), os.path.join(tmp, "history"))
        open(os.path.join(tmp, "READY"), "w").close()
        dst.start()
        r = dst.client()
        self.assertEqual(r.get("from"), b"snapshot")
        self.assertIsNone(r.get("old"))
        self.assertFalse(os.path.exists(tmp))


class TestBadInput(Base):
    def test_bogus_psync_gets_a_full_resync(self):
        leader = self.server()
        lr = leader.client()
        lr.set("k", "v")
        raw = leader.raw()
        self.assertEqual(raw.command("REPLCONF", "listening-port", 1), b"OK")
        raw.send(harness.encode("PSYNC", "f" * 40, 12345))
        line = raw._line()
        self.assertTrue(line.startswith(b"+FULLRESYNC "), line)
        _, replid, off = line.split()
        self.assertEqual(replid.decode(), info(lr, "replication")["master_replid"])
        self.assertEqual(info(lr, "stats")["sync_partial_err"], "1")
        raw.close()
        self.assertEqual(lr.get("k"), b"v")

    def test_garbage_from_a_fake_replica(self):
        leader = self.server()
        lr = leader.client()
        raw = leader.raw()
        self.assertIsInstance(raw.command("REPLCONF", "bogus", "x"), harness.RespError)
        self.assertIsInstance(raw.command("PSYNC", "?", "notanumber"), harness.RespError)
        raw.send(b"PSYNC ? -1\r\n")
        self.assertTrue(raw._line().startswith(b"+FULLRESYNC"))
        raw.send(os.urandom(4096) + b"\r\n*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$3\r\nabc\r\n")
        raw.close()
        lr.set("after", "1")
        self.assertEqual(lr.get("after"), b"1")
        self.assertEqual(lr.ping(), True)

    def test_wrong_masterauth_is_reported(self):
        leader = self.server(requirepass="secret")
        replica = self.server(replicaof="127.0.0.1 %d" % leader.port, masterauth="wrong")
        r = replica.client()
        wait_for(lambda: "master_link_error" in info(r, "replication"), "the link error")
        ri = info(r, "replication")
        self.assertEqual(ri["master_link_status"], "down")
        self.assertIn("AUTH", ri["master_link_error"])
        lr = leader.client(password="secret")
        self.assertEqual(lr.ping(), True)
        self.assertEqual(info(lr, "replication")["connected_slaves"], "0")
        r.config_set("masterauth", "secret")
        caught_up(lr, r)

    def test_masteruser_with_minimal_acl_user(self):
        leader = self.server(requirepass="secret")
        lr = leader.client(password="secret")
        # The commands a replica sends: AUTH (always allowed), REPLCONF listening-port,
        # REPLCONF capa, PSYNC, then REPLCONF ACK every second.
        lr.execute_command("ACL", "SETUSER", "repl", "on", ">pw", "+psync", "+replconf",
                           "+ping")
        setup_schema(lr)
        write_load(lr, random.Random(5), 100)
        replica = self.server(replicaof="127.0.0.1 %d" % leader.port, masteruser="repl",
                              masterauth="pw")
        r = replica.client()
        caught_up(lr, r)
        write_load(lr, random.Random(6), 100, base=100)
        caught_up(lr, r)
        self.assertEqual(r.execute_command("QUIVER.DIGEST"), lr.execute_command("QUIVER.DIGEST"))
        # The default user's password is no longer enough once masteruser names another user.
        bad = self.server(replicaof="127.0.0.1 %d" % leader.port, masteruser="repl",
                          masterauth="secret")
        br = bad.client()
        wait_for(lambda: "master_link_error" in info(br, "replication"), "the link error")
        bi = info(br, "replication")
        self.assertEqual(bi["master_link_status"], "down")
        self.assertIn("AUTH", bi["master_link_error"])
        self.assertEqual(lr.ping(), True)
        self.assertEqual(info(lr, "replication")["connected_slaves"], "1")
        lr.set("after", "1")
        caught_up(lr, r)
        self.assertEqual(r.get("after"), b"1")
        br.config_set("masterauth", "pw")
        caught_up(lr, br)
        self.assertEqual(br.execute_command("QUIVER.DIGEST"), lr.execute_command("QUIVER.DIGEST"))


class TestTLS(Base):
    """tls-replication: the leader serves TLS only (port 0); the replica connects to its
    tls-port with a client certificate and verifies the leader's against the CA."""

    @classmethod
    def setUpClass(cls):
        cls.certs = certs.Certs()

    @classmethod
    def tearDownClass(cls):
        cls.certs.remove()

    def leader(self):
        s = certs.TLSOnlyServer(**self.certs.server_options())
        s.__enter__()
        self.addCleanup(s.__exit__, None, None, None)
        return s, self.certs.client(s)

    def replica_of(self, leader, **files):
        """A replica over TLS with the client certificate; files override (None: unset)."""
        p = self.certs.path
        opts = {"tls_cert_file": p("client.crt"), "tls_key_file": p("client.key"),
                "tls_ca_cert_file": p("ca.crt")}
        opts.update(files)
        opts = {k: v for k, v in opts.items() if v is not None}
        return self.server(replicaof="127.0.0.1 %d" % leader.port, tls_replication="yes", **opts)

    def test_full_sync_stream_and_partial_resync_over_tls(self):
        leader, lr = self.leader()
        setup_schema(lr)
        rng = random.Random(11)
        write_load(lr, rng, 200)
        # its own server certificate, and the client one for the link (tls-client-*)
        p = self.certs.path
        replica = self.replica_of(leader, tls_cert_file=p("server.crt"),
                                  tls_key_file=p("server.key"),
                                  tls_client_cert_file=p("client.crt"),
                                  tls_client_key_file=p("client.key"))
        r = replica.client()
        caught_up(lr, r)
        write_load(lr, rng, 100, base=200)
        write_transactions(lr, 20)
        caught_up(lr, r)
        self.assertEqual(r.execute_command("QUIVER.DIGEST"), lr.execute_command("QUIVER.DIGEST"))
        replica.kill()
        write_load(lr, rng, 50, base=300)  # missed, but within the backlog
        replica.start()
        r = replica.client()
        caught_up(lr, r)
        st = info(lr, "stats")
        self.assertEqual(st["sync_full"], "1")
        self.assertEqual(st["sync_partial_ok"], "1")
        self.assertEqual(r.execute_command("QUIVER.DIGEST"), lr.execute_command("QUIVER.DIGEST"))

    def test_invalid_certificates_are_refused(self):
        leader, lr = self.leader()
        lr.set("k", "v")
        p = self.certs.path
        foreign = self.replica_of(leader, tls_cert_file=p("foreign.crt"),
                                  tls_key_file=p("foreign.key"))
        nocert = self.replica_of(leader, tls_cert_file=None, tls_key_file=None)
        distrust = self.replica_of(leader, tls_ca_cert_file=p("other-ca.crt"))
        for s in (foreign, nocert, distrust):
            c = s.client()
            wait_for(lambda: "master_link_error" in info(c, "replication"), "the link error")
            self.assertEqual(info(c, "replication")["master_link_status"], "down")
            self.assertIsNone(c.get("k"))
        self.assertIn("certificate", info(distrust.client(), "replication")["master_link_error"])
        for s in (foreign, nocert):  # the leader's alert, as OpenSSL names it
            self.assertIn("alert", info(s.client(), "replication")["master_link_error"])
        self.assertEqual(lr.ping(), True)
        self.assertEqual(info(lr, "replication")["connected_slaves"], "0")
        good = self.replica_of(leader)
        caught_up(lr, good.client())
        self.assertEqual(good.client().get("k"), b"v")


if __name__ == "__main__":
    unittest.main()


def stopped(server):
    """SIGSTOPs a server, and SIGCONTs it at cleanup (a stopped one cannot exit)."""
    server.proc.send_signal(signal.SIGSTOP)
    return lambda: server.proc and server.proc.send_signal(signal.SIGCONT)


class TestLoading(Base):
    def test_readiness_during_a_full_sync_never_hangs_or_answers_wrong(self):
        """A prober (PING, GET of a key the old and the new data both hold) during a full
        sync of a few hundred thousand keys: PONG or LOADING, the old value, the new one or
        LOADING; never a hang (socket timeout) or anything else."""
        leader = self.server()
        lr = leader.client()
        pipe = lr.pipeline(transaction=False)
        for i in range(200000):
            pipe.set("k:%d" % i, "v" * 64)
            if i % 5000 == 4999:
                pipe.execute()
        pipe.execute()
        lr.set("probe", "new")
        replica = self.server()
        rr = replica.client()
        rr.set("probe", "old")
        seen = set()
        self.follow(replica, leader)
        deadline = time.time() + WAIT_S
        while rr.get("probe") != b"new" or info(rr, "replication")["master_link_status"] != "up":
            self.assertLess(time.time(), deadline, "the full sync did not finish")
            for cmd, ok in ((("PING",), {b"PONG", True}), (("GET", "probe"), {b"old", b"new"})):
                try:
                    reply = rr.execute_command(*cmd)
                except redis.exceptions.BusyLoadingError as e:
                    self.assertEqual(str(e), "Quiver is loading the dataset in memory")
                    reply = "LOADING"
                self.assertIn(reply, ok | {"LOADING"}, cmd)
                seen.add(reply)
        self.assertEqual(info(rr, "persistence")["loading"], "0")
        self.assertEqual(rr.dbsize(), 200001)

    def test_a_swap_that_waits_for_a_job_answers_loading(self):
        """The snapshot is whole while a worker job (an FT index build over the old data)
        still reads the store: until the swap, commands without Redis's loading flag get
        -LOADING, those with it answer, INFO says loading:1; then the new data serves."""
        leader = self.server()
        lr = leader.client()
        lr.set("probe", "new")
        replica = self.server()
        rr = replica.client()
        rng = random.Random(3)
        pipe = rr.pipeline(transaction=False)
        for i in range(25000):  # an HNSW build of seconds; the snapshot takes a fraction
            pipe.hset("doc:%d" % i, "v", vec(rng, 64))
        pipe.execute()
        rr.execute_command("FT.CREATE", "big", "PREFIX", 1, "doc:", "SCHEMA", "v", "VECTOR",
                           "HNSW", 6, "TYPE", "FLOAT32", "DIM", 64, "DISTANCE_METRIC", "L2")
        self.follow(replica, leader)
        wait_for(lambda: info(rr, "persistence")["loading"] == "1",
                 "the whole snapshot to wait for the index build")
        for cmd in (("PING",), ("GET", "probe"), ("FT.SEARCH", "big", "*")):
            with self.assertRaises(redis.exceptions.BusyLoadingError, msg=cmd) as cm:
                rr.execute_command(*cmd)
            self.assertEqual(str(cm.exception), "Quiver is loading the dataset in memory")
        self.assertEqual(rr.execute_command("ECHO", "up"), b"up")
        self.assertEqual(info(rr, "replication")["master_sync_in_progress"], "1")
        caught_up(lr, rr, 300)  # after the build: minutes under ThreadSanitizer
        self.assertEqual(info(rr, "persistence")["loading"], "0")
        self.assertEqual((rr.get("probe"), rr.dbsize()), (b"new", 1))

    def test_info_persistence_says_loading(self):
        s = self.server()
        p = info(s.client(), "persistence")
        self.assertEqual((p["loading"], p["async_loading"]), ("0", "0"))


class TestTimeouts(Base):
    def test_leader_pings_through_the_stream(self):
        leader = self.server(repl_ping_replica_period=1)
        lr = leader.client()
        replica = self.server(replicaof="127.0.0.1 %d" % leader.port)
        rr = replica.client()
        caught_up(lr, rr)
        start = int(info(lr, "replication")["master_repl_offset"])
        wait_for(lambda: int(info(lr, "replication")["master_repl_offset"]) >= start + 28,
                 "two PINGs in the stream of an idle leader")
        caught_up(lr, rr)  # the replica applied them, at the same offsets
        self.assertEqual(rr.dbsize(), 0)

    def test_replica_drops_a_silent_leader_and_comes_back(self):
        leader = self.server(repl_ping_replica_period=1)
        lr = leader.client()
        replica = self.server(replicaof="127.0.0.1 %d" % leader.port, repl_timeout=2)
        rr = replica.client()
        lr.set("a", "1")
        caught_up(lr, rr)
        self.addCleanup(stopped(leader))
        wait_for(lambda: info(rr, "replication")["master_link_status"] == "down",
                 "the replica to drop a stopped leader")
        self.assertIn("timeout", info(rr, "replication")["master_link_error"])
        self.assertEqual(rr.get("a"), b"1")
        leader.proc.send_signal(signal.SIGCONT)
        lr.set("b", "2")
        caught_up(lr, rr)
        self.assertEqual(rr.get("b"), b"2")

    def test_leader_drops_a_replica_whose_acks_stop(self):
        leader = self.server(repl_timeout=2)
        lr = leader.client()
        replica = self.server(replicaof="127.0.0.1 %d" % leader.port)
        rr = replica.client()
        caught_up(lr, rr)
        self.addCleanup(stopped(replica))
        wait_for(lambda: info(lr, "replication")["connected_slaves"] == "0",
                 "the leader to drop a stopped replica")
        replica.proc.send_signal(signal.SIGCONT)
        lr.set("c", "3")
        caught_up(lr, rr)
        self.assertEqual(rr.get("c"), b"3")

    def test_leader_drops_a_replica_that_stops_reading_its_snapshot(self):
        """A fake replica asks for a full sync and never reads: once the snapshot fills the
        send window and the socket, its output stands still and repl-timeout ends it (and
        the snapshot's read transaction with it)."""
        leader = self.server(repl_timeout=2)
        lr = leader.client()
        pipe = lr.pipeline(transaction=False)
        for i in range(300000):  # ~40 MB of records: more than the window and the socket
            pipe.set("k:%d" % i, "v" * 100)
            if i % 5000 == 4999:
                pipe.execute()
        pipe.execute()
        raw = leader.raw()
        self.addCleanup(raw.close)
        self.assertEqual(raw.command("REPLCONF", "listening-port", 1), b"OK")
        raw.send(harness.encode("PSYNC", "?", -1))
        wait_for(lambda: info(lr, "replication").get("slave0", {}).get("state") == "send_bulk",
                 "the snapshot to start")
        wait_for(lambda: info(lr, "replication")["connected_slaves"] == "0",
                 "the leader to drop the replica that does not read")
        self.assertIn("did not move", leader.read_log())
        self.assertTrue(lr.set("after", "1"))

    def test_options_follow_redis(self):
        r = self.server().client()
        self.assertEqual(r.config_get("repl-timeout"), {"repl-timeout": "60"})
        self.assertEqual(r.config_get("repl-ping-replica-period"),
                         {"repl-ping-replica-period": "10"})
        with self.assertRaises(redis.exceptions.ResponseError):
            r.config_set("repl-timeout", 0)
        self.assertTrue(r.config_set("repl-timeout", 5))
        self.assertEqual(r.config_get("repl-timeout"), {"repl-timeout": "5"})


def failover_state(r):
    return info(r, "replication")["master_failover_state"]


class TestFailoverCommand(Base):
    def test_hands_over_with_a_writer_running(self):
        """FAILOVER TO a replica while a client writes: every write that got OK is on the
        new leader, the old one follows it (partial resync) as does the other replica, and
        all three converge."""
        leader = self.server()
        lr = leader.client()
        a = self.server(replicaof="127.0.0.1 %d" % leader.port)
        b = self.server(replicaof="127.0.0.1 %d" % leader.port)
        ar, br = a.client(), b.client()
        for s in (ar, br):
            caught_up(lr, s)
        lr.set("waited", "1")
        self.assertEqual(lr.execute_command("WAIT", 2, 5000), 2)
        old_id = info(lr, "replication")["master_replid"]
        acked, refused, stop = [], [], threading.Event()

        def write():
            writer, i = leader.client(), 0
            while not stop.is_set() and i < 100000:
                try:
                    writer.set("w:%d" % i, i)
                    acked.append(i)
                except redis.exceptions.ResponseError as e:
                    refused.append(str(e))
                i += 1

        thread = threading.Thread(target=write)
        thread.start()
        try:
            wait_for(lambda: len(acked) >= 100, "the writer to get going")
            self.assertEqual(lr.execute_command("FAILOVER", "TO", "127.0.0.1", a.port), b"OK")
            wait_for(lambda: any(e.startswith("You can't write") for e in refused),
                     "the writer to meet a replica")
        finally:
            stop.set()
            thread.join()
        for e in refused:
            self.assertTrue(e.startswith(("TRYAGAIN Writes are paused", "You can't write")), e)
        wait_for(lambda: info(ar, "replication")["role"] == "master", "the target to take over")
        wait_for(lambda: info(lr, "replication")["role"] == "slave" and
                 info(lr, "replication")["master_port"] == str(a.port), "the old leader to follow")
        self.assertEqual(failover_state(lr), "no-failover")
        self.assertEqual(info(ar, "stats")["sync_partial_ok"], "1")  # the old leader, no full sync
        self.assertEqual(info(ar, "replication")["master_replid2"], old_id)
        self.assertEqual(info(lr, "replication")["master_replid"],
                         info(ar, "replication")["master_replid"])
        ar.set("after", "1")
        caught_up(ar, lr)
        wait_for(lambda: br.get("after") == b"1", "the other replica to follow the new history")
        self.assertEqual(ar.get("waited"), b"1")
        for i in acked:
            self.assertEqual(ar.get("w:%d" % i), str(i).encode())
        digest = ar.execute_command("QUIVER.DIGEST")
        wait_for(lambda: br.execute_command("QUIVER.DIGEST") == digest, "b's digest")
        self.assertEqual(lr.execute_command("QUIVER.DIGEST"), digest)
        with self.assertRaises(redis.exceptions.ReadOnlyError):
            lr.set("x", "1")

    def test_errors(self):
        leader = self.server()
        lr = leader.client()
        for args, err in ((("FAILOVER",), "FAILOVER requires connected replicas."),
                          (("FAILOVER", "ABORT"), "No failover in progress."),
                          (("FAILOVER", "TIMEOUT", 0), "FAILOVER timeout must be greater than 0"),
                          (("FAILOVER", "BOGUS"), "syntax error"),
                          (("FAILOVER", "TO", "127.0.0.1"), "syntax error")):
            with self.assertRaises(redis.exceptions.ResponseError) as cm:
                lr.execute_command(*args)
            self.assertEqual(str(cm.exception), err, args)
        replica = self.server(replicaof="127.0.0.1 %d" % leader.port)
        rr = replica.client()
        caught_up(lr, rr)
        for r, args, err in (
                (rr, ("FAILOVER",), "FAILOVER is not valid when server is a replica."),
                (lr, ("FAILOVER", "TO", "127.0.0.1", 1), "FAILOVER target HOST and PORT is not a replica."),
                (lr, ("FAILOVER", "TO", "127.0.0.1", replica.port, "FORCE"),
                 "FAILOVER with force option requires both a timeout and target HOST and IP."),
                (lr, ("FAILOVER", "FORCE", "TIMEOUT", 100),
                 "FAILOVER with force option requires both a timeout and target HOST and IP."),
                (rr, ("PSYNC", "0" * 40, 1, "FAILOVER"), "PSYNC FAILOVER replid must match my replid.")):
            with self.assertRaises(redis.exceptions.ResponseError) as cm:
                r.execute_command(*args)
            self.assertEqual(str(cm.exception), err, args)
        self.assertEqual(info(lr, "replication")["role"], "master")
        self.assertEqual(failover_state(lr), "no-failover")
        self.assertTrue(lr.set("still", "writable"))

    def test_timeout_aborts_when_the_target_never_catches_up(self):
        leader = self.server()
        lr = leader.client()
        replica = self.server(replicaof="127.0.0.1 %d" % leader.port)
        caught_up(lr, replica.client())
        self.addCleanup(stopped(replica))
        lr.set("unseen", "1")  # the stopped replica never acknowledges it
        self.assertEqual(lr.execute_command("FAILOVER", "TO", "127.0.0.1", replica.port,
                                            "TIMEOUT", 300), b"OK")
        with self.assertRaises(redis.exceptions.ResponseError) as cm:
            lr.execute_command("FAILOVER")
        self.assertEqual(str(cm.exception), "FAILOVER already in progress.")
        with self.assertRaises(redis.exceptions.ResponseError) as cm:
            lr.execute_command("REPLICAOF", "127.0.0.1", replica.port)
        self.assertEqual(str(cm.exception), "REPLICAOF not allowed while failing over.")
        wait_for(lambda: failover_state(lr) == "no-failover", "the failover to time out")
        self.assertEqual(info(lr, "replication")["role"], "master")
        self.assertTrue(lr.set("writable", "again"))

    def test_abort_while_waiting(self):
        leader = self.server()
        lr = leader.client()
        replica = self.server(replicaof="127.0.0.1 %d" % leader.port)
        caught_up(lr, replica.client())
        self.addCleanup(stopped(replica))
        lr.set("unseen", "1")
        self.assertEqual(lr.execute_command("FAILOVER"), b"OK")
        self.assertEqual(failover_state(lr), "waiting-for-sync")
        with self.assertRaises(redis.exceptions.ResponseError) as cm:
            lr.set("paused", "1")
        self.assertEqual(str(cm.exception),
                         "TRYAGAIN Writes are paused while a FAILOVER is in progress.")
        self.assertEqual(lr.execute_command("FAILOVER", "ABORT"), b"OK")
        self.assertEqual(failover_state(lr), "no-failover")
        self.assertTrue(lr.set("paused", "1"))


class TestSyncFixes(Base):
    def test_first_sync_is_not_a_failed_partial_one(self):
        leader = self.server()
        lr = leader.client()
        lr.set("a", "1")
        replica = self.server(replicaof="127.0.0.1 %d" % leader.port)
        caught_up(lr, replica.client())
        st = info(lr, "stats")
        self.assertEqual((st["sync_full"], st["sync_partial_err"]), ("1", "0"))

    def test_replica_protect_data_refuses_an_empty_leader(self):
        """The leader loses its volume and comes back empty: a replica with
        replica-protect-data keeps its data and says why; one without it follows."""
        leader = self.server()
        lr = leader.client()
        guarded = self.server(replicaof="127.0.0.1 %d" % leader.port, replica_protect_data="yes")
        plain = self.server(replicaof="127.0.0.1 %d" % leader.port)
        gr, pr = guarded.client(), plain.client()
        lr.set("precious", "1")
        caught_up(lr, gr)
        caught_up(lr, pr)
        leader.kill()
        shutil.rmtree(os.path.join(leader.dir, "data"))
        leader.start()
        lr = leader.client()
        wait_for(lambda: "master_sync_refused" in info(gr, "replication"), "the refusal")
        ri = info(gr, "replication")
        self.assertEqual(ri["master_link_status"], "down")
        self.assertIn("replica-protect-data", ri["master_sync_refused"])
        self.assertIn("full sync refused", ri["master_link_error"])
        self.assertEqual(gr.get("precious"), b"1")
        caught_up(lr, pr)
        self.assertEqual(pr.dbsize(), 0)
        self.assertEqual(gr.get("precious"), b"1")  # still refusing, retry after retry
        gr.config_set("replica-protect-data", "no")
        caught_up(lr, gr)
        self.assertEqual(gr.dbsize(), 0)
        self.assertNotIn("master_sync_refused", info(gr, "replication"))
