"""Observability as Redis 7 offers it: SLOWLOG (entry shape beside Debian's redis-server 7.0,
argument trimming, redaction, thresholds, the max-len ring, RESET), per-command latency
histograms (INFO latencystats, LATENCY HISTOGRAM, latency-tracking and its percentiles),
and the rejected_calls / failed_calls counters of INFO commandstats.

Durations are never asserted against the clock: a slow command is made slow by work (KEYS
over many keys), and only the threshold's rule (logged entries took at least that long) is
checked. Run: PYTHONPATH=tests/integration /usr/bin/python3 -m unittest -v test_observability"""
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import redis

import harness
from harness import Server

REDIS_SERVER = os.environ.get("REDIS_SERVER_BIN", shutil.which("redis-server") or
                              "/usr/bin/redis-server")
OWN_PROCESS = unittest.skipIf(os.environ.get("TEST_SERVER"), "needs a server of its own")


class RedisReference:
    """Debian's redis-server on a free 127.0.0.1 port, for comparing reply shapes."""

    def __enter__(self):
        if not os.path.exists(REDIS_SERVER):
            raise unittest.SkipTest("redis-server is not installed")
        self.dir = tempfile.mkdtemp(prefix="quiver-redis-ref-")
        self.port = harness.free_port()
        self.log = open(os.path.join(self.dir, "redis.log"), "wb")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                return self
            except redis.ConnectionError:
                if time.time() > deadline or self.proc.poll() is not None:
                    self.__exit__()
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)

    def client(self):
        return redis.Redis(port=self.port, socket_timeout=10)

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def slowlog(r, count=-1):
    return r.execute_command("SLOWLOG", "GET", count)


def client_addr(r):
    return r.client_info()["addr"].encode()


def latencystats(r):
    """{command: [(percentile label, value), ...]} from INFO latencystats, in line order."""
    kw = r.connection_pool.connection_kwargs
    raw_client = harness.RawClient(kw.get("host", "127.0.0.1"), kw["port"])
    raw = raw_client.command("INFO", "latencystats")
    raw_client.close()
    out = {}
    for line in raw.decode().split("\r\n"):
        m = re.fullmatch(r"latency_percentiles_usec_([^:]+):(.*)", line)
        if m:
            fields = m.group(2).split(",") if m.group(2) else []
            out[m.group(1)] = [(f.split("=")[0], float(f.split("=")[1])) for f in fields]
    return out


def cmdstat(r, name):
    return r.info("commandstats").get("cmdstat_" + name)


@OWN_PROCESS
class Slowlog(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.server.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def setUp(self):
        self.r = self.server.client()
        self.r.config_set("slowlog-max-len", 128)
        self.r.config_set("slowlog-log-slower-than", 0)
        self.r.execute_command("SLOWLOG", "RESET")

    def tearDown(self):
        self.r.config_set("slowlog-log-slower-than", 10000)
        self.r.close()

    def entry_of(self, r, argv):
        """The newest entry whose arguments are argv."""
        for e in slowlog(r):
            if e[3] == argv:
                return e
        self.fail("no slow log entry for %r" % (argv,))

    def test_entry_shape_matches_redis(self):
        with RedisReference() as ref:
            entries = {}
            for name, r in (("redis", ref.client()), ("quiver", self.r)):
                r.config_set("slowlog-log-slower-than", 0)
                r.execute_command("CLIENT", "SETNAME", "probe")
                r.set("k", "v")
                before = time.time()
                e = self.entry_of(r, [b"SET", b"k", b"v"])
                entries[name] = e
                self.assertEqual(len(e), 6)
                self.assertIsInstance(e[0], int)
                self.assertLessEqual(abs(e[1] - before), 60)  # unix seconds, not ms
                self.assertGreaterEqual(e[2], 0)
                self.assertEqual(e[4], client_addr(r))
                self.assertEqual(e[5], b"probe")
                # ids count up by one per entry; the newest comes first
                ids = [x[0] for x in slowlog(r)]
                self.assertEqual(ids, list(range(ids[0], ids[0] - len(ids), -1)))
            shape = [[type(x).__name__ for x in e] for e in entries.values()]
            self.assertEqual(shape[0], shape[1])

    def test_argument_trimming_matches_redis(self):
        argv = ["MSET"]
        for i in range(20):
            argv += ["key%d" % i, "x" * (100 + 10 * i)]  # some under 128 bytes, most over
        with RedisReference() as ref:
            got = {}
            for name, r in (("redis", ref.client()), ("quiver", self.r)):
                r.config_set("slowlog-log-slower-than", 0)
                r.execute_command(*argv)
                got[name] = [e[3] for e in slowlog(r) if e[3][0] == b"MSET"][0]
            self.assertEqual(got["quiver"], got["redis"])
        logged = got["quiver"]
        self.assertEqual(len(logged), 32)
        self.assertEqual(logged[-1], b"... (10 more arguments)")  # 41 arguments, 31 kept
        self.assertEqual(logged[2], b"x" * 100)
        self.assertEqual(logged[8], b"x" * 128 + b"... (2 more bytes)")

    def test_passwords_are_redacted(self):
        with RedisReference() as ref:
            got = {}
            for name, r in (("redis", ref.client()), ("quiver", self.r)):
                r.config_set("slowlog-log-slower-than", 0)
                for cmd in (("AUTH", "nobody", "secret1"), ("HELLO", "2", "AUTH", "nobody",
                                                             "secret2")):
                    with self.assertRaises(redis.ResponseError):
                        r.execute_command(*cmd)
                r.execute_command("CONFIG", "SET", "masteruser", "secret3")
                r.execute_command("CONFIG", "SET", "requirepass", "")
                got[name] = [e[3] for e in slowlog(r)[:4]]
                r.config_set("masteruser", "")
            self.assertEqual(got["quiver"], got["redis"])
        flat = b" ".join(b" ".join(a) for a in got["quiver"])
        self.assertNotIn(b"secret", flat)
        self.assertIn(b"(redacted)", flat)

    def test_thresholds(self):
        self.r.config_set("slowlog-log-slower-than", -1)  # disabled
        self.r.execute_command("SLOWLOG", "RESET")
        self.r.ping()
        self.assertEqual(self.r.execute_command("SLOWLOG", "LEN"), 0)
        # A command slow by its work: KEYS over 200k keys, against a 1 ms threshold.
        pipe = self.r.pipeline(transaction=False)
        for b in range(200):
            pipe.mset({"many:%d:%d" % (b, i): "v" for i in range(1000)})
        pipe.execute()
        self.r.config_set("slowlog-log-slower-than", 1000)
        self.r.execute_command("SLOWLOG", "RESET")
        self.assertEqual(len(self.r.keys("many:*")), 200000)
        for _ in range(20):
            self.r.ping()
        entries = slowlog(self.r)
        self.assertIn([b"KEYS", b"many:*"], [e[3] for e in entries])
        for e in entries:  # the rule itself: logged means it took at least the threshold
            self.assertGreaterEqual(e[2], 1000, e)
        self.r.flushdb()

    def test_max_len_is_a_ring(self):
        self.r.config_set("slowlog-max-len", 5)
        for i in range(10):
            self.r.echo("m%d" % i)
        entries = slowlog(self.r)
        self.assertEqual([e[3] for e in entries],
                         [[b"ECHO", b"m%d" % i] for i in range(9, 4, -1)])
        self.assertEqual(self.r.execute_command("SLOWLOG", "LEN"), 5)
        self.assertEqual(self.r.config_get("slowlog-max-len"), {"slowlog-max-len": "5"})
        self.r.config_set("slowlog-max-len", 0)  # keeps nothing, not even this CONFIG SET
        self.assertEqual(slowlog(self.r), [])

    def test_reset_get_len_help(self):
        for i in range(15):
            self.r.echo("e%d" % i)
        self.assertEqual(len(slowlog(self.r, 3)), 3)
        self.assertEqual(len(self.r.execute_command("SLOWLOG", "GET")), 10)  # default count
        self.assertEqual(slowlog(self.r, 0), [])
        last_id = slowlog(self.r, 1)[0][0]
        self.assertEqual(self.r.execute_command("SLOWLOG", "RESET"), b"OK")
        left = slowlog(self.r)  # only the RESET, logged after it ran
        self.assertEqual([e[3] for e in left], [[b"SLOWLOG", b"RESET"]])
        self.assertGreater(left[0][0], last_id)  # ids go on after a reset
        for bad in ("-2", "abc"):
            with self.assertRaisesRegex(redis.ResponseError,
                                        "^count should be greater than or equal to -1$"):
                self.r.execute_command("SLOWLOG", "GET", bad)
        with self.assertRaisesRegex(redis.ResponseError, "unknown subcommand 'NOPE'"):
            self.r.execute_command("SLOWLOG", "NOPE")
        with self.assertRaisesRegex(redis.ResponseError, "wrong number of arguments"):
            self.r.execute_command("SLOWLOG", "LEN", "x")
        help_lines = self.r.execute_command("SLOWLOG", "HELP")
        self.assertTrue(all(isinstance(x, bytes) for x in help_lines))
        self.assertTrue(any(x.startswith(b"RESET") for x in help_lines))

    def test_exec_logs_its_commands_not_itself(self):
        pipe = self.r.pipeline(transaction=True)
        pipe.set("tx", "1").incr("tx")
        pipe.execute()
        argvs = [e[3] for e in slowlog(self.r)]
        self.assertIn([b"SET", b"tx", b"1"], argvs)
        self.assertIn([b"INCRBY", b"tx", b"1"], argvs)
        self.assertNotIn([b"EXEC"], argvs)
        self.r.delete("tx")

    def test_config(self):
        r = self.r
        self.assertEqual(r.config_get("slowlog-*"), {"slowlog-log-slower-than": "0",
                                                     "slowlog-max-len": "128"})
        for name, bad in (("slowlog-log-slower-than", "-2"), ("slowlog-log-slower-than", "x"),
                          ("slowlog-max-len", "-1")):
            with self.assertRaises(redis.ResponseError):
                r.config_set(name, bad)
        self.assertEqual(r.config_get("slowlog-*"), {"slowlog-log-slower-than": "0",
                                                     "slowlog-max-len": "128"})

    def test_defaults(self):
        with Server() as s:
            r = s.client()
            self.assertEqual(r.config_get("slowlog-*"), {"slowlog-log-slower-than": "10000",
                                                         "slowlog-max-len": "128"})
            self.assertEqual(r.config_get("latency-tracking*"),
                             {"latency-tracking": "yes",
                              "latency-tracking-info-percentiles": "50 99 99.9"})
            r.close()


@OWN_PROCESS
class LatencyStats(unittest.TestCase):
    def setUp(self):
        self.server = Server()
        self.server.__enter__()
        self.r = self.server.client()

    def tearDown(self):
        self.r.close()
        self.server.__exit__(None, None, None)

    def run_some(self, n=200):
        pipe = self.r.pipeline(transaction=False)
        for i in range(n):
            pipe.set("k%d" % (i % 10), "v").get("k%d" % (i % 7))
        pipe.execute()

    def test_percentiles_present_and_monotone(self):
        self.run_some()
        stats = latencystats(self.r)
        self.assertIn("get", stats)
        self.assertIn("set", stats)
        self.assertNotIn("hgetall", stats)  # never called
        for cmd, fields in stats.items():
            self.assertEqual([f[0] for f in fields], ["p50", "p99", "p99.9"], cmd)
            values = [f[1] for f in fields]
            self.assertEqual(values, sorted(values), cmd)
        raw = self.server.raw()
        text = raw.command("INFO", "latencystats").decode()
        raw.close()
        self.assertRegex(text, r"latency_percentiles_usec_get:p50=\d+\.\d{3},p99=\d+\.\d{3},"
                              r"p99\.9=\d+\.\d{3}\r\n")
        self.assertNotIn("latency_percentiles_usec_get", self.r.info())  # not a default
        self.assertIn("latency_percentiles_usec_get", self.r.info("everything"))

    def test_field_format_matches_redis(self):
        with RedisReference() as ref:
            for r in (ref.client(), self.r):
                r.config_set("latency-tracking-info-percentiles", "99.90 50.0 10")
                r.set("a", "b")
                self.assertEqual(r.config_get("latency-tracking-info-percentiles"),
                                 {"latency-tracking-info-percentiles": "99.9 50 10"})
                self.assertEqual([f[0] for f in latencystats(r)["set"]],
                                 ["p99.9", "p50", "p10"])
                for bad in ("50 101", "50 abc", "-1"):
                    with self.assertRaises(redis.ResponseError):
                        r.config_set("latency-tracking-info-percentiles", bad)
                r.config_set("latency-tracking-info-percentiles", "")
                self.assertEqual(latencystats(r)["set"], [])

    def test_tracking_off_and_resetstat(self):
        self.run_some(50)
        calls = self.histogram("get")[b"calls"]
        self.assertEqual(calls, 50)
        self.r.config_set("latency-tracking", "no")
        self.run_some(50)
        self.assertEqual(latencystats(self.r), {})  # the section is empty while off
        self.r.config_set("latency-tracking", "yes")
        self.assertEqual(self.histogram("get")[b"calls"], 50)  # nothing recorded while off
        self.r.config_resetstat()
        self.assertNotIn("get", latencystats(self.r))
        self.assertIsNone(cmdstat(self.r, "get"))

    def histogram(self, cmd):
        reply = self.r.execute_command("LATENCY", "HISTOGRAM", cmd)
        self.assertEqual(len(reply), 2)  # one command: name, details
        self.assertEqual(reply[0], cmd.encode())
        details = dict(zip(reply[1][0::2], reply[1][1::2]))
        details[b"histogram_usec"] = list(zip(details[b"histogram_usec"][0::2],
                                              details[b"histogram_usec"][1::2]))
        return details

    def test_histogram_reply_shape_matches_redis(self):
        with RedisReference() as ref:
            for r in (ref.client(), self.r):
                for i in range(5):
                    r.set("s%d" % i, "v")
                reply = r.execute_command("LATENCY", "HISTOGRAM", "set")
                self.assertEqual(reply[0], b"set")
                self.assertEqual(reply[1][0::2], [b"calls", b"histogram_usec"])
                self.assertEqual(reply[1][1], 5)
                buckets = reply[1][3]
                self.assertEqual(buckets[-1], 5)  # cumulative: the last bound holds all
                self.assertTrue(all(isinstance(x, int) for x in buckets))

    def test_latency_histogram(self):
        self.run_some(300)
        h = self.histogram("set")
        self.assertEqual(h[b"calls"], 300)
        self.assertEqual(h[b"calls"], cmdstat(self.r, "set")["calls"])
        bounds = [b for b, _ in h[b"histogram_usec"]]
        counts = [n for _, n in h[b"histogram_usec"]]
        self.assertTrue(all(b & (b - 1) == 0 for b in bounds), bounds)  # powers of two
        self.assertEqual(bounds, sorted(set(bounds)))
        self.assertEqual(counts, sorted(set(counts)))  # cumulative, only where it grows
        self.assertEqual(counts[-1], 300)
        everything = self.r.execute_command("LATENCY", "HISTOGRAM")
        names = everything[0::2]
        self.assertIn(b"set", names)
        self.assertIn(b"get", names)
        self.assertNotIn(b"hgetall", names)
        # unknown or uncalled commands are skipped
        self.assertEqual(self.r.execute_command("LATENCY", "HISTOGRAM", "nosuch", "hgetall"), [])
        self.assertEqual(self.r.execute_command("LATENCY", "LATEST"), [])
        with self.assertRaisesRegex(redis.ResponseError, "unknown subcommand 'NOPE'"):
            self.r.execute_command("LATENCY", "NOPE")


@OWN_PROCESS
class CommandStats(unittest.TestCase):
    """failed_calls: the command ran and replied an error; rejected_calls: refused before it
    ran (arity, MULTI rules, OOM). Compared with redis-server on the same script."""

    def script(self, r):
        r.config_resetstat()
        r.set("s", "abc")
        r.hset("h", "f", "v")
        for cmd in (("GET", "h"), ("INCR", "s"), ("GET",), ("SET", "x"), ("HGET", "h", "f")):
            try:
                r.execute_command(*cmd)
            except redis.ResponseError:
                pass
        pipe = r.pipeline(transaction=True)
        pipe.set("a", "b").incr("s")  # INCR fails inside EXEC: EXEC itself does not
        with self.assertRaises(redis.ResponseError):
            pipe.execute()
        return {k: {f: v[f] for f in ("calls", "rejected_calls", "failed_calls")}
                for k, v in r.info("commandstats").items()
                if k in ("cmdstat_get", "cmdstat_set", "cmdstat_incr", "cmdstat_incrby",
                         "cmdstat_exec", "cmdstat_hget", "cmdstat_hset", "cmdstat_multi")}

    def test_counters_match_redis(self):
        with RedisReference() as ref, Server() as s:
            want = self.script(ref.client())
            got = self.script(s.client())
        self.assertEqual(got, want)
        self.assertEqual(got["cmdstat_get"], {"calls": 1, "rejected_calls": 1,
                                              "failed_calls": 1})
        self.assertEqual(got["cmdstat_exec"], {"calls": 1, "rejected_calls": 0,
                                               "failed_calls": 0})
        self.assertEqual(got["cmdstat_incrby"]["failed_calls"], 1)


if __name__ == "__main__":
    unittest.main()
