"""Differential compatibility test: the same command scripts run against Debian's
redis-server (7.0) and against Quiver over raw RESP2, and the replies must be identical,
errors included (RawClient returns them as RespError values). Replies whose order Redis
does not define (KEYS, HKEYS, HGETALL...) are sorted first; TTLs are compared with a
tolerance; SCAN and HSCAN are compared by what a full iteration collects.

Intentional differences are few and listed in ALLOWED_DIFFERENCES below, each with why;
test_intentional_differences pins them down so that they stay deliberate.

Run: PYTHONPATH=tests/integration /usr/bin/python3 -m unittest -v test_compat"""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import harness
from harness import RespError

ROOT = harness.ROOT
REDIS_SERVER = os.environ.get("REDIS_SERVER_BIN", shutil.which("redis-server") or
                              "/usr/bin/redis-server")

# Where Quiver deliberately answers differently from Redis 7 (each is checked by
# test_intentional_differences, everything else must match byte for byte):
ALLOWED_DIFFERENCES = {
    "HELLO server field": "Quiver names itself: server=quiver (version is the Redis version "
                          "it is compatible with); id and modules differ by nature.",
    "INFO": "Quiver's own sections and fields (Redis's field names where they exist).",
    "COMMAND": "answered from Quiver's command table: its flags, summaries and argument trees, "
               "not Redis's JSON command docs.",
    "SCAN/HSCAN cursors": "Quiver's cursors name saved positions, so an unknown cursor is an "
                          "error ('invalid or expired cursor') instead of a restart, and a "
                          "cursor must be a decimal int64 (Redis's strtoul also takes '', "
                          "'+0', '-1').",
    "OBJECT/DEBUG/other commands": "not part of Quiver's command surface (no lists, sets, "
                                   "scripting...): unknown command.",
    "CLIENT SETINFO, HSCAN NOVALUES": "newer than Redis 7.0 (7.2, 7.4) and accepted, because "
                                      "current clients send them.",
    "CONFIG parameters": "Quiver's configuration has its own parameters (lmdb-map-size, "
                         "durability...); the common ones (timeout, hz...) are compared.",
    "a command name with a NUL byte": "always unknown in Quiver; Redis's answer depends on "
                                      "its hash seed (test_unknown_commands).",
}
# Not intentional: huge INCRBYFLOAT results (test_incrbyfloat_huge_values, expected failure
# until core/util.c's ldouble_to_str() is fixed).


def command_table():
    """(name, arity) for every line of query/commands.def."""
    out = []
    with open(os.path.join(ROOT, "query", "commands.def")) as f:
        for line in f:
            m = re.match(r'X\("([a-z._]+)", \w+, (-?\d+),', line)
            if m:
                out.append((m.group(1), int(m.group(2))))
    return out


def wait_port(host, port, proc, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("redis-server exited")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("redis-server did not start")


# --- reply normalisers: a script line starting with one of these is compared after it ---
def srt(r):
    """An array whose order is unspecified (KEYS, HKEYS, HVALS)."""
    return sorted(r, key=repr) if isinstance(r, list) else r


def pairs(r):
    """A flat field/value array whose pair order is unspecified (HGETALL)."""
    if not isinstance(r, list):
        return r
    return sorted(zip(r[0::2], r[1::2]), key=repr)


class Near:
    """An integer compared with a tolerance (TTL family); negative values exactly."""

    def __init__(self, tol):
        self.tol = tol


def typed(v):
    """A reply with its Python types made explicit, so that 1 and True or b'1' never mix."""
    if isinstance(v, list):
        return ("array", [typed(x) for x in v])
    if isinstance(v, RespError):
        return ("error", str(v))
    return (type(v).__name__, v)


class Differential(unittest.TestCase):
    """Base: starts redis-server and Quiver once per class; self.check(script)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="quiver-compat-")
        cls.redis_port = harness.free_port()
        cls.redis_log = open(os.path.join(cls.tmp, "redis.log"), "wb")
        cls.redis_proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(cls.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", cls.tmp, "--daemonize", "no"],
            stdout=cls.redis_log, stderr=subprocess.STDOUT)
        cls.quiver = harness.Server()
        try:
            wait_port("127.0.0.1", cls.redis_port, cls.redis_proc)
            cls.quiver.__enter__()
        except Exception:
            cls.stop_servers()
            raise

    @classmethod
    def stop_servers(cls):
        cls.quiver.__exit__(None, None, None)
        if cls.redis_proc.poll() is None:
            cls.redis_proc.terminate()
            try:
                cls.redis_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                cls.redis_proc.kill()
                cls.redis_proc.wait()
        cls.redis_log.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        cls.stop_servers()

    def setUp(self):
        self.r = harness.RawClient("127.0.0.1", self.redis_port)
        self.q = self.quiver.raw()
        for c in (self.r, self.q):
            self.assertEqual(c.command("FLUSHALL"), b"OK")
        self.addCleanup(self.q.close)
        self.addCleanup(self.r.close)

    def both(self, *args):
        return self.r.command(*args), self.q.command(*args)

    def check(self, script):
        """Runs each line on both servers; fails listing every reply that differs."""
        diffs = []
        n = 0
        for line in script:
            norm, args = None, line
            if line and (callable(line[0]) or isinstance(line[0], Near)):
                norm, args = line[0], line[1:]
            rr, qq = self.both(*args)
            n += 1
            if isinstance(norm, Near):
                same = (isinstance(rr, int) and isinstance(qq, int) and
                        (rr == qq or (rr >= 0 and qq >= 0 and abs(rr - qq) <= norm.tol)))
            else:
                if norm:
                    rr, qq = norm(rr), norm(qq)
                same = typed(rr) == typed(qq)
            if not same:
                diffs.append("%r\n      redis:  %r\n      quiver: %r" % (args, rr, qq))
        self.assertFalse(diffs, "%d of %d replies differ:\n  " % (len(diffs), n) +
                         "\n  ".join(diffs))
        return n


class TestCompat(Differential):
    # --- connection and server ------------------------------------------------------------
    def test_ping_echo(self):
        self.check([
            ("PING",), ("ping",), ("PING", "hello"), ("PING", ""), ("PING", b"\x00\xff\r\n"),
            ("PING", "a", "b"), ("ECHO", "x"), ("ECHO", ""), ("ECHO", b"bin\x00\r\n\xff"),
            ("ECHO",), ("ECHO", "a", "b"),
        ])

    def test_select(self):
        self.check([
            ("SET", "k", "db0"),
            ("SELECT", "0"), ("SELECT", "15"), ("GET", "k"), ("SET", "k", "db15"),
            ("DBSIZE",), ("SELECT", "16"), ("SELECT", "-1"), ("SELECT", "abc"),
            ("SELECT", ""), ("SELECT", "1.5"), ("SELECT", "99999999999999999999"),
            ("SELECT", "3"), ("DBSIZE",), ("GET", "k"), ("SELECT", "0"), ("GET", "k"),
            ("SELECT",), ("SELECT", "1", "2"),
            ("SELECT", "15"), ("FLUSHDB",), ("DBSIZE",), ("SELECT", "0"), ("DBSIZE",),
            ("SELECT", "5"), ("SET", "a", "1"), ("FLUSHALL",), ("DBSIZE",), ("SELECT", "0"),
            ("DBSIZE",), ("EXISTS", "k"),
        ])

    def test_dbsize_flush(self):
        self.check([
            ("DBSIZE",), ("SET", "a", "1"), ("HSET", "h", "f", "v"), ("DBSIZE",),
            ("DBSIZE", "x"), ("FLUSHDB", "ASYNC"), ("DBSIZE",), ("SET", "a", "1"),
            ("FLUSHDB", "SYNC"), ("DBSIZE",), ("FLUSHDB", "bogus"), ("FLUSHDB", "SYNC", "x"),
            ("SET", "a", "1"), ("FLUSHALL", "ASYNC"), ("DBSIZE",), ("FLUSHALL", "SYNC"),
            ("FLUSHALL", "x"), ("FLUSHALL", "ASYNC", "SYNC"), ("FLUSHDB", "async"),
        ])

    def test_misc_server_commands(self):
        self.check([
            ("TIME", "x"), ("LASTSAVE", "x"), ("FUNCTION", "FLUSH"), ("FUNCTION", "FLUSH", "SYNC"),
            ("FUNCTION", "FLUSH", "ASYNC"), ("FUNCTION",), ("CLIENT",), ("CONFIG",),
            ("MODULE",), ("CLIENT", "SETNAME", "myname"), ("CLIENT", "GETNAME"),
            ("CLIENT", "SETNAME", "bad name"), ("CLIENT", "SETNAME", ""), ("CLIENT", "GETNAME"),
            ("CLIENT", "NO-EVICT", "on"), ("MULTI",), ("MULTI",), ("WATCH", "x"), ("DISCARD",),
            ("DISCARD",), ("EXEC",), ("GET", "x"),
            ("CONFIG", "SET", "maxmemory"), ("AUTH", "pw"), ("AUTH", "default", "pw"),
            ("HELLO", "4"), ("HELLO", "abc"), ("HELLO", "1"), ("HELLO", "2", "SETNAME"),
            ("HELLO", "2", "BOGUS"), ("HELLO", "3", "AUTH", "default"),
            ("SHUTDOWN", "ABORT"), ("RESET", "x"), ("MULTI", "x"), ("EXEC", "x"),
            ("DISCARD", "x"), ("UNWATCH", "x"), ("WATCH",),
        ])
        for c in (self.r, self.q):
            t = c.command("TIME")
            self.assertEqual(len(t), 2)
            self.assertLess(abs(int(t[0]) - time.time()), 5)
            self.assertTrue(0 <= int(t[1]) < 1000000)
            self.assertIsInstance(c.command("LASTSAVE"), int)
            self.assertEqual(c.command("CLIENT", "ID"), c.command("CLIENT", "ID"))

    def test_quit_and_reset(self):
        self.check([("SELECT", "3"), ("CLIENT", "SETNAME", "x"), ("RESET",),
                    ("CLIENT", "GETNAME"), ("SET", "k", "v"), ("SELECT", "0"), ("GET", "k")])
        for c in (self.r, self.q):
            self.assertEqual(c.command("QUIT"), b"OK")
            self.assertTrue(c.closed())

    # --- keyspace -------------------------------------------------------------------------
    def test_del_exists_type(self):
        self.check([
            ("SET", "a", "1"), ("SET", "b", "2"), ("HSET", "h", "f", "v"),
            ("EXISTS", "a"), ("EXISTS", "a", "a", "a"), ("EXISTS", "a", "b", "nope", "h"),
            ("EXISTS", "nope"), ("TYPE", "a"), ("TYPE", "h"), ("TYPE", "nope"),
            ("DEL", "nope"), ("DEL", "a", "a"), ("EXISTS", "a"), ("UNLINK", "b", "h", "b", "x"),
            ("DBSIZE",), ("DEL",), ("UNLINK",), ("EXISTS",), ("TYPE",), ("TYPE", "a", "b"),
            ("SET", "c", "3"), ("UNLINK", "c"), ("TYPE", "c"),
        ])

    def test_keys_glob(self):
        keys = ["a", "b", "c", "ab", "abc", "aXc", "a?c", "a*c", "a[c", "a\\c", "hello",
                "hallo", "hxllo", "hllo", "heeeello", "", "x y", "foo:1", "foo:2", "foo:10"]
        setup = [("SET", k, "v") for k in keys] + [("HSET", "hash:1", "f", "v")]
        patterns = ["*", "a*", "*c", "a?c", "a[b-c]", "a[^b]*", "a[!X]c", "h[ae]llo",
                    "h[^e]llo", "h*llo", "h?llo", "a\\*c", "a\\?c", "a\\[c", "a\\\\c", "[a-c]",
                    "[c-a]", "foo:?", "foo:*", "foo:[0-9]", "", "x y", "*:*", "[", "a[",
                    "\\", "hash:*", "*[", "*?*", "???", "nomatch*", "[abc", "a[b", "**c",
                    "a[\\]]c", "h[a-e-z]llo", "*o*o*"]
        self.check(setup + [(srt, "KEYS", p) for p in patterns] + [("KEYS",), ("KEYS", "a", "b")])

    def scan_all(self, c, *args, cmd="SCAN", key=None):
        cursor, seen, rounds = b"0", [], 0
        while True:
            head = (cmd, key, cursor) if key is not None else (cmd, cursor)
            reply = c.command(*(head + args))
            if isinstance(reply, RespError):
                return reply
            cursor, items = reply
            seen += items
            rounds += 1
            self.assertLess(rounds, 10000)
            if cursor == b"0":
                return seen

    def test_scan(self):
        for c in (self.r, self.q):
            for i in range(300):
                c.command("SET", "key:%d" % i, "v")
            for i in range(20):
                c.command("HSET", "hkey:%d" % i, "f", "v")
            c.command("SET", b"bin\x00\xff", "v")
        for args in [(), ("COUNT", "1"), ("COUNT", "7"), ("COUNT", "1000"), ("MATCH", "key:1*"),
                     ("MATCH", "hkey:*", "COUNT", "3"), ("TYPE", "hash"), ("TYPE", "string"),
                     ("TYPE", "HASH"), ("TYPE", "list"), ("MATCH", "nomatch"),
                     ("MATCH", "key:?", "TYPE", "string", "COUNT", "50"), ("match", "*\x00*")]:
            rr, qq = self.scan_all(self.r, *args), self.scan_all(self.q, *args)
            self.assertEqual(sorted(rr), sorted(qq), args)
            self.assertEqual(len(rr), len(set(rr)), args)  # Redis guarantees none repeat here
            self.assertEqual(len(qq), len(set(qq)), args)
        self.check([
            ("SCAN",), ("SCAN", "abc"), ("SCAN", "0", "COUNT"),
            ("SCAN", "0", "COUNT", "0"), ("SCAN", "0", "COUNT", "-5"), ("SCAN", "0", "COUNT", "x"),
            ("SCAN", "0", "MATCH"), ("SCAN", "0", "BOGUS", "1"), ("SCAN", "0", "TYPE"),
            ("SCAN", "1.5"), ("SCAN", " 0"), ("SCAN", "0 "),
        ])
        self.check([("FLUSHDB",), ("SCAN", "0"), ("SCAN", "0", "MATCH", "*"),
                    ("SET", "only", "1"), ("SCAN", "0"), ("SCAN", "0", "COUNT", "100")])

    def test_rename(self):
        self.check([
            ("RENAME", "nope", "x"), ("RENAMENX", "nope", "x"),
            ("SET", "a", "1"), ("RENAME", "a", "a"), ("GET", "a"), ("RENAMENX", "a", "a"),
            ("RENAME", "a", "b"), ("EXISTS", "a"), ("GET", "b"),
            ("HSET", "h", "f", "v"), ("RENAME", "b", "h"), ("TYPE", "h"), ("GET", "h"),
            ("HSET", "h2", "f", "v"), ("RENAME", "h2", "h3"), ("HGETALL", "h3"),
            ("SET", "s", "x"), ("RENAMENX", "s", "h"), ("RENAMENX", "h3", "s"),
            ("RENAMENX", "h3", "new"), ("TYPE", "new"), ("HGET", "new", "f"), ("EXISTS", "h3"),
            ("RENAME", "s", ""), ("GET", ""), ("RENAME", "", b"\x00\xff"), ("GET", b"\x00\xff"),
            ("RENAME", "a"), ("RENAME", "a", "b", "c"), ("RENAMENX", "a"),
            ("SET", "t", "v", "EX", "100"), ("RENAME", "t", "t2"), (Near(1), "TTL", "t2"),
            ("SET", "u", "v"), ("EXPIRE", "u", "100"), ("SET", "w", "v"), ("RENAME", "w", "u"),
            ("TTL", "u"), ("RENAMENX", "u", "t2"), ("DBSIZE",),
        ])

    def test_expire_family(self):
        now = int(time.time())
        script = [("EXPIRE", "nope", "10"), ("PEXPIRE", "nope", "10"),
                  ("EXPIREAT", "nope", str(now + 100)), ("PEXPIREAT", "nope", "1"),
                  ("SET", "k", "v"), ("EXPIRE", "k", "100", "XX"), ("EXPIRE", "k", "100", "GT"),
                  ("EXPIRE", "k", "100", "NX"), ("EXPIRE", "k", "100", "nx"),
                  ("EXPIRE", "k", "200", "xx"), ("EXPIRE", "k", "100", "gt"),
                  ("EXPIRE", "k", "300", "lt"), ("EXPIRE", "k", "150", "Lt"), (Near(1), "TTL", "k")]
        script += [
            ("PERSIST", "k"), ("TTL", "k"),
            ("EXPIRE", "k", "100", "XX"), ("EXPIRE", "k", "100", "GT"),
            ("EXPIRE", "k", "100", "LT"), ("EXPIRE", "k", "100", "NX"), ("TTL", "k"),
            ("EXPIRE", "k", "200", "NX"), ("EXPIRE", "k", "200", "XX"), (Near(1), "TTL", "k"),
            ("EXPIRE", "k", "300", "GT"), ("EXPIRE", "k", "250", "GT"), (Near(1), "TTL", "k"),
            ("EXPIRE", "k", "300", "LT"), ("EXPIRE", "k", "50", "LT"), (Near(1), "TTL", "k"),
            ("EXPIRE", "k", "50", "NX", "XX"), ("EXPIRE", "k", "50", "GT", "LT"),
            ("EXPIRE", "k", "50", "NX", "GT"), ("EXPIRE", "k", "50", "NX", "LT"),
            ("EXPIRE", "k", "55", "XX", "GT"), ("EXPIRE", "k", "60", "XX", "LT"),
            (Near(1), "TTL", "k"), ("EXPIRE", "k", "50", "BOGUS"), ("EXPIRE", "k", "50", "NX", "NX"),
            ("EXPIRE", "k", "abc"), ("EXPIRE", "k", ""), ("EXPIRE", "k", "1.5"),
            ("EXPIRE", "k", " 10"), ("EXPIRE", "k", "10 "), ("EXPIRE", "k", "+10"),
            ("EXPIRE", "k", "9223372036854775807"), ("EXPIRE", "k", "9223372036854775808"),
            ("EXPIRE", "k", "-9223372036854775808"), ("PEXPIRE", "k", "9223372036854775807"),
            ("PEXPIRE", "k", "9223372036854775000"), ("EXPIREAT", "k", "9223372036854775807"),
            ("PEXPIREAT", "k", "9223372036854775807"), ("EXPIRE", "k", "92233720368547758"),
            ("EXPIREAT", "k", "-9223372036854775808"), ("PEXPIREAT", "k", "-9223372036854775808"),
            ("PEXPIRE", "k", "-9223372036854775808"), ("EXPIRE", "k", "9223372036854775"),
            (Near(1), "TTL", "k"), ("EXISTS", "k"),
            ("SET", "p", "v"), ("EXPIRE", "p", "-1"), ("EXISTS", "p"),
            ("SET", "p", "v"), ("EXPIRE", "p", "0"), ("EXISTS", "p"),
            ("SET", "p", "v"), ("PEXPIRE", "p", "0"), ("EXISTS", "p"),
            ("SET", "p", "v"), ("EXPIREAT", "p", "1"), ("EXISTS", "p"),
            ("SET", "p", "v"), ("PEXPIREAT", "p", str(now * 1000 - 5000)), ("EXISTS", "p"),
            ("SET", "p", "v"), ("EXPIREAT", "p", "0"), ("EXISTS", "p"),
            ("SET", "p", "v"), ("EXPIRE", "p", "-5", "NX"), ("EXISTS", "p"),
            ("SET", "p", "v"), ("EXPIRE", "p", "-5", "XX"), ("EXISTS", "p"),
            ("SET", "p", "v"), ("EXPIRE", "p", "-5", "GT"), ("EXISTS", "p"),
            ("SET", "p", "v"), ("EXPIRE", "p", "-5", "LT"), ("EXISTS", "p"),
            ("SET", "p", "v", "EX", "100"), ("EXPIRE", "p", "-5", "GT"), ("EXISTS", "p"),
            ("SET", "p", "v", "EX", "100"), ("EXPIRE", "p", "-5", "LT"), ("EXISTS", "p"),
            ("SET", "q", "v"), ("EXPIREAT", "q", str(now + 1000)), (Near(2), "TTL", "q"),
            (Near(1), "EXPIRETIME", "q"), ("PEXPIREAT", "q", str(now * 1000 + 500000)),
            ("PEXPIRETIME", "q"), ("EXPIRETIME", "q"), (Near(2000), "PTTL", "q"),
            ("HSET", "h", "f", "v"), ("EXPIRE", "h", "100"), (Near(1), "TTL", "h"),
            ("PERSIST", "h"), ("TTL", "h"), ("PERSIST", "h"), ("PERSIST", "nope"),
            ("EXPIRE", "k"), ("EXPIRE",), ("PEXPIRE", "k"), ("EXPIREAT", "k"), ("PEXPIREAT", "k"),
            ("PERSIST",), ("PERSIST", "a", "b"),
        ]
        self.check(script)

    def test_ttl_family(self):
        self.check([
            ("TTL", "nope"), ("PTTL", "nope"), ("EXPIRETIME", "nope"), ("PEXPIRETIME", "nope"),
            ("SET", "k", "v"), ("TTL", "k"), ("PTTL", "k"), ("EXPIRETIME", "k"),
            ("PEXPIRETIME", "k"), ("SET", "k", "v", "EX", "100"), (Near(1), "TTL", "k"),
            (Near(1000), "PTTL", "k"), (Near(1), "EXPIRETIME", "k"), (Near(1000), "PEXPIRETIME", "k"),
            ("SET", "m", "v", "PX", "1500"), (Near(1), "TTL", "m"), (Near(200), "PTTL", "m"),
            ("SET", "m", "v", "PX", "400"), (Near(1), "TTL", "m"),
            ("SET", "e", "v", "EXAT", "4102444800"), ("EXPIRETIME", "e"), ("PEXPIRETIME", "e"),
            ("SET", "e", "v", "PXAT", "4102444800123"), ("EXPIRETIME", "e"), ("PEXPIRETIME", "e"),
            ("TTL",), ("TTL", "a", "b"), ("PTTL",), ("EXPIRETIME",), ("PEXPIRETIME", "a", "b"),
        ])

    # --- strings --------------------------------------------------------------------------
    def test_get_set_options(self):
        now = int(time.time())
        script = [
            ("GET", "nope"), ("SET", "k", "v"), ("GET", "k"), ("SET", "k", "v2", "NX"),
            ("GET", "k"), ("SET", "k", "v3", "XX"), ("GET", "k"), ("SET", "n", "v", "XX"),
            ("GET", "n"), ("SET", "n", "v", "NX"), ("GET", "n"),
            ("SET", "k", "v4", "GET"), ("SET", "k", "v5", "NX", "GET"), ("GET", "k"),
            ("SET", "z", "v", "XX", "GET"), ("SET", "z", "v", "NX", "GET"), ("GET", "z"),
            ("SET", "g", "v", "GET", "NX"), ("SET", "g", "w", "GET", "XX"), ("GET", "g"),
            ("SET", "k", "v", "NX", "XX"), ("SET", "k", "v", "XX", "NX"),
            ("SET", "k", "v", "EX", "0"), ("SET", "k", "v", "EX", "-1"), ("SET", "k", "v", "EX", "abc"),
            ("SET", "k", "v", "PX", "0"), ("SET", "k", "v", "PX", "-5"), ("SET", "k", "v", "EX", ""),
            ("SET", "k", "v", "EXAT", "0"), ("SET", "k", "v", "PXAT", "-1"),
            ("SET", "k", "v", "EX"), ("SET", "k", "v", "PX"), ("SET", "k", "v", "EX", "10", "PX", "10"),
            ("SET", "k", "v", "EX", "10", "EX", "10"), ("SET", "k", "v", "KEEPTTL", "EX", "10"),
            ("SET", "k", "v", "EX", "10", "KEEPTTL"), ("SET", "k", "v", "PXAT", "1", "EXAT", "1"),
            ("SET", "k", "v", "BOGUS"), ("SET", "k", "v", "NX", "NX"), ("SET", "k", "v", "GET", "GET"),
            ("SET", "k", "v", "KEEPTTL", "KEEPTTL"), ("SET", "k", "v", "ex", "10"),
            ("SET", "k", "v", "EX", "9223372036854775807"), ("SET", "k", "v", "PX", "9223372036854775807"),
            ("SET", "k", "v", "EX", "9223372036854775"), ("SET", "k", "v", "EXAT", "9223372036854775807"),
            ("SET", "k", "v", "PXAT", "9223372036854775807"), ("SET", "k", "v", "EX", "1.5"),
            ("SET", "k", "v", "EX", "99999999999999999999"),
            ("SET", "k", "v", "EX", "100"), (Near(1), "TTL", "k"), ("SET", "k", "w", "KEEPTTL"),
            (Near(1), "TTL", "k"), ("GET", "k"), ("SET", "k", "x"), ("TTL", "k"),
            ("SET", "k", "v", "PX", "100000", "NX"), ("TTL", "k"),
            ("SET", "k", "v", "PX", "100000", "XX", "GET"), (Near(1), "TTL", "k"),
            ("SET", "k", "v", "XX", "KEEPTTL", "GET"), (Near(1), "TTL", "k"),
            ("SET", "k", "v", "EXAT", str(now + 100)), (Near(1), "TTL", "k"),
            ("SET", "k", "v", "PXAT", str(now * 1000 + 100000)), (Near(1), "TTL", "k"),
            ("SET", "k", "v", "GET", "KEEPTTL", "XX"), (Near(1), "TTL", "k"),
            ("SET", "k", "v", "EXAT", "1"), ("EXISTS", "k"), ("SET", "k", "v", "PXAT", "1", "GET"),
            ("GET", "k"),
            ("HSET", "h", "f", "v"), ("SET", "h", "v", "GET"), ("TYPE", "h"), ("GET", "h"),
            ("SET", "h", "v", "NX", "GET"), ("SET", "h", "str"), ("TYPE", "h"), ("GET", "h"),
            ("HSET", "h2", "f", "v"), ("SET", "h2", "v", "NX"), ("SET", "h2", "v", "XX", "GET"),
            ("SET", "k"), ("SET",), ("GET",), ("GET", "a", "b"),
            ("SET", "k", "v", "KEEPTTL"), ("TTL", "k"), ("SET", "new", "v", "KEEPTTL"), ("TTL", "new"),
        ]
        self.check(script)

    def test_set_option_combinations(self):
        # Every combination of condition, GET and expiry, in both orders, against a missing
        # key, a plain string, a string with a TTL and a hash.
        now = int(time.time())
        expiries = [(), ("EX", "100"), ("PX", "200000"), ("EXAT", str(now + 300)),
                    ("PXAT", str(now * 1000 + 400000)), ("KEEPTTL",), ("EX", "0"), ("PX", "x")]
        states = [[], [("SET", "k", "old")], [("SET", "k", "old", "EX", "500")],
                  [("HSET", "k", "f", "v")]]
        script = []
        for state in states:
            for cond in [(), ("NX",), ("XX",), ("NX", "XX")]:
                for get in [(), ("GET",)]:
                    for exp in expiries:
                        for opts in {cond + get + exp, exp + get + cond}:
                            script += [("DEL", "k")] + state + [("SET", "k", "new") + opts,
                                                                ("TYPE", "k"), (Near(1), "TTL", "k")]
        script += [("DEL", "k"), ("SET", "k", "v")] + [
            ("SET", "k", "v") + opts for opts in [
                ("nx", "get"), ("Ex", "10", "xX"), ("KeepTTL", "Get"), ("EXAT", "10", "PXAT", "10"),
                ("PX", "10", "PX", "abc"), ("PX", "abc", "PX", "10"), ("EX", "abc", "BOGUS"),
                ("GET", "EX"), ("EX", "10", "GET", "KEEPTTL")]]
        self.assertGreater(self.check(script), 700)

    def test_set_family(self):
        self.check([
            ("SETNX", "k", "v"), ("SETNX", "k", "w"), ("GET", "k"), ("SETNX", "k"),
            ("SETNX", "k", "v", "x"), ("HSET", "h", "f", "v"), ("SETNX", "h", "v"),
            ("SETEX", "e", "100", "v"), (Near(1), "TTL", "e"), ("GET", "e"),
            ("SETEX", "e", "0", "v"), ("SETEX", "e", "-1", "v"), ("SETEX", "e", "abc", "v"),
            ("SETEX", "e", "9223372036854775807", "v"), ("SETEX", "e", "100"), ("SETEX", "h", "10", "v"),
            ("TYPE", "h"), ("PSETEX", "p", "100000", "v"), (Near(1), "TTL", "p"),
            ("PSETEX", "p", "0", "v"), ("PSETEX", "p", "-1", "v"), ("PSETEX", "p", "x", "v"),
            ("PSETEX", "p", "9223372036854775807", "v"), ("PSETEX", "p"),
            ("MSET", "a", "1", "b", "2", "c", "3"), ("MGET", "a", "b", "c", "nope", "h", "a"),
            ("MSET", "a"), ("MSET", "a", "1", "b"), ("MSET",), ("MGET",), ("MSET", "a", "x", "a", "y"),
            ("GET", "a"), ("MSETNX", "a", "1", "z", "2"), ("EXISTS", "z"),
            ("MSETNX", "y", "1", "z", "2"), ("MGET", "y", "z"), ("MSETNX", "x", "1", "x", "2"),
            ("GET", "x"), ("MSETNX", "h", "1"), ("MSETNX", "a"), ("MSETNX", "a", "1", "b"),
            ("MSET", "h", "s"), ("TYPE", "h"),
            ("GETSET", "a", "new"), ("GETSET", "nope2", "v"), ("GET", "nope2"), ("GETSET", "a"),
            ("HSET", "h3", "f", "v"), ("GETSET", "h3", "v"), ("TYPE", "h3"),
            ("SET", "t", "v", "EX", "100"), ("GETSET", "t", "w"), ("TTL", "t"),
            ("GETDEL", "a"), ("GETDEL", "a"), ("EXISTS", "a"), ("GETDEL", "h3"), ("GETDEL",),
            ("GETDEL", "a", "b"),
        ])

    def test_getex(self):
        now = int(time.time())
        self.check([
            ("GETEX", "nope"), ("GETEX", "nope", "EX", "10"), ("SET", "k", "v"), ("GETEX", "k"),
            ("TTL", "k"), ("GETEX", "k", "EX", "100"), (Near(1), "TTL", "k"),
            ("GETEX", "k", "PX", "200000"), (Near(1), "TTL", "k"), ("GETEX", "k", "PERSIST"),
            ("TTL", "k"), ("GETEX", "k", "EXAT", str(now + 300)), (Near(1), "TTL", "k"),
            ("GETEX", "k", "PXAT", str(now * 1000 + 400000)), (Near(1), "TTL", "k"),
            ("GETEX", "k", "EX", "0"), ("GETEX", "k", "EX", "-1"), ("GETEX", "k", "EX", "x"),
            ("GETEX", "k", "EX"), ("GETEX", "k", "PERSIST", "EX", "10"), ("GETEX", "k", "EX", "10", "PX", "10"),
            ("GETEX", "k", "BOGUS"), ("GETEX", "k", "PERSIST", "PERSIST"),
            ("GETEX", "k", "EX", "9223372036854775807"), ("GETEX", "k", "KEEPTTL"),
            ("GETEX", "k", "PXAT", "1"), ("EXISTS", "k"), ("SET", "k", "v"),
            ("GETEX", "k", "EXAT", "1"), ("EXISTS", "k"),
            ("HSET", "h", "f", "v"), ("GETEX", "h"), ("GETEX", "h", "EX", "10"), ("TTL", "h"),
            ("GETEX", "nope", "EX", "abc"), ("GETEX", "nope", "BOGUS"), ("GETEX",),
        ])

    def test_incr_family(self):
        script = [("INCR", "n"), ("INCR", "n"), ("DECR", "n"), ("INCRBY", "n", "10"),
                  ("DECRBY", "n", "3"), ("INCRBY", "n", "-20"), ("DECRBY", "n", "-5"), ("GET", "n"),
                  ("DECR", "new"), ("DECRBY", "new2", "7"), ("INCRBY", "new3", "0")]
        for bad in ["1.5", " 1", "1 ", "01", "", "abc", "+1", "-0", "0x10", "1e3",
                    "9223372036854775808", "-9223372036854775809", "\x001", "1\x00"]:
            script += [("SET", "s", bad), ("INCR", "s"), ("DECR", "s"), ("INCRBY", "s", "1"),
                       ("GET", "s"), ("INCRBY", "n", bad), ("DECRBY", "n", bad)]
        script += [
            ("SET", "m", "9223372036854775806"), ("INCR", "m"), ("INCR", "m"), ("GET", "m"),
            ("INCRBY", "m", "1"), ("DECRBY", "m", "-1"), ("SET", "m", "-9223372036854775807"),
            ("DECR", "m"), ("DECR", "m"), ("DECRBY", "m", "1"), ("INCRBY", "m", "-1"), ("GET", "m"),
            ("SET", "m", "0"), ("INCRBY", "m", "9223372036854775807"), ("INCRBY", "m", "-9223372036854775808"),
            ("SET", "m", "0"), ("INCRBY", "m", "-9223372036854775808"), ("GET", "m"),
            ("SET", "m", "0"), ("DECRBY", "m", "-9223372036854775808"), ("DECRBY", "m", "9223372036854775807"),
            ("GET", "m"), ("SET", "m", "-1"), ("DECRBY", "m", "9223372036854775807"),
            ("DECRBY", "m", "1"), ("GET", "m"), ("SET", "m", "5"), ("DECRBY", "m", "-9223372036854775808"),
            ("HSET", "h", "f", "1"), ("INCR", "h"), ("DECR", "h"), ("INCRBY", "h", "1"), ("DECRBY", "h", "1"),
            ("INCR",), ("INCR", "a", "b"), ("INCRBY", "a"), ("DECRBY", "a", "1", "2"), ("DECR",),
            ("SET", "t", "5", "EX", "100"), ("INCR", "t"), (Near(1), "TTL", "t"), ("DECRBY", "t", "3"),
            (Near(1), "TTL", "t"), ("GET", "t"), ("SET", "z", "-0"), ("INCR", "z"),
            ("SET", "z", "-5"), ("INCR", "z"), ("SET", "z", "007"), ("INCR", "z"),
        ]
        self.check(script)

    def test_incrbyfloat(self):
        script = [("INCRBYFLOAT", "f", "10.5"), ("INCRBYFLOAT", "f", "0.1"),
                  ("INCRBYFLOAT", "f", "-5"), ("GET", "f"), ("INCRBYFLOAT", "g", "3.0e3"),
                  ("INCRBYFLOAT", "g", "5.0e3"), ("GET", "g"), ("INCRBYFLOAT", "i", "1"),
                  ("SET", "x", "10"), ("INCRBYFLOAT", "x", "1.5"), ("INCRBYFLOAT", "x", "-1.5"),
                  ("GET", "x"), ("SET", "x", "1.50"), ("INCRBYFLOAT", "x", "0"),
                  ("INCRBYFLOAT", "x", "1e-10"), ("INCRBYFLOAT", "x", "-1e-10"),
                  ("SET", "x", "0"), ("INCRBYFLOAT", "x", "1.1"), ("INCRBYFLOAT", "x", "2.2"),
                  ("INCRBYFLOAT", "small", "0.000001"), ("INCRBYFLOAT", "neg", "-0.0"),
                  ("INCRBYFLOAT", "y", "17179869184"), ("INCRBYFLOAT", "y", "0.5"),
                  ("INCRBYFLOAT", "w", "3"), ("INCRBYFLOAT", "w", "-3")]
        for bad in ["inf", "-inf", "+inf", "nan", "abc", "", " 1", "\t1", "1 ", "1.5.5",
                    "1e", "infinity", "-nan", "1e-5000", "1e5000", "1,5", "0x"]:
            script += [("INCRBYFLOAT", "f", bad), ("SET", "s", bad), ("INCRBYFLOAT", "s", "1")]
        script += [("GET", "f"), ("HSET", "h", "f", "1"), ("INCRBYFLOAT", "h", "1"), ("INCRBYFLOAT", "h"),
                   ("INCRBYFLOAT",), ("INCRBYFLOAT", "a", "1", "2"),
                   ("SET", "t", "1.5", "EX", "100"), ("INCRBYFLOAT", "t", "1"), (Near(1), "TTL", "t"),
                   ("SET", "e", "5.0e3"), ("INCRBYFLOAT", "e", "1"), ("SET", "e", "1.23e2"),
                   ("INCRBYFLOAT", "e", "0"), ("SET", "e", " 5"), ("INCRBYFLOAT", "e", "1"),
                   ("INCRBYFLOAT", "d", "3.14159265358979323846"), ("INCRBYFLOAT", "d", "1"),
                   ("INCRBYFLOAT", "q", "0.1"), ("INCRBYFLOAT", "q", "0.2")]
        self.check(script)

    # Huge sums are written with every integer digit, as Redis does ("%.17Lf").
    def test_incrbyfloat_huge_values(self):
        self.check([
            ("INCRBYFLOAT", "big", "1e300"), ("INCRBYFLOAT", "big", "1e300"), ("GET", "big"),
            ("INCRBYFLOAT", "f", "1e309"), ("SET", "m", "1.7976931348623157e308"),
            ("INCRBYFLOAT", "m", "1.7976931348623157e308"), ("INCRBYFLOAT", "n", "-1e60"),
            ("HINCRBYFLOAT", "h", "f", "1e308"), ("HINCRBYFLOAT", "h", "f", "1e308"),
        ])

    def test_append_strlen(self):
        self.check([
            ("APPEND", "a", "hello"), ("APPEND", "a", " world"), ("GET", "a"), ("STRLEN", "a"),
            ("APPEND", "a", ""), ("APPEND", "e", ""), ("EXISTS", "e"), ("GET", "e"), ("STRLEN", "e"),
            ("STRLEN", "nope"), ("APPEND", "b", b"\x00\xff"), ("APPEND", "b", b"\r\n"),
            ("GET", "b"), ("STRLEN", "b"), ("HSET", "h", "f", "v"), ("APPEND", "h", "x"),
            ("STRLEN", "h"), ("APPEND", "a"), ("APPEND",), ("STRLEN",), ("STRLEN", "a", "b"),
            ("SET", "t", "v", "EX", "100"), ("APPEND", "t", "w"), (Near(1), "TTL", "t"), ("GET", "t"),
            ("SET", "n", "12"), ("APPEND", "n", "3"), ("INCR", "n"),
        ])

    def test_getrange(self):
        script = [("SET", "s", "Hello World"), ("SET", "e", "")]
        idx = ["0", "1", "5", "10", "11", "12", "100", "-1", "-2", "-5", "-11", "-12", "-100",
               "9223372036854775807", "-9223372036854775808"]
        for a in idx:
            for b in idx:
                script.append(("GETRANGE", "s", a, b))
        for a, b in [("0", "-1"), ("0", "0"), ("-1", "0"), ("1", "1"), ("-1", "-1"), ("5", "3")]:
            script += [("GETRANGE", "e", a, b), ("GETRANGE", "nope", a, b)]
        script += [("GETRANGE", "s", "a", "1"), ("GETRANGE", "s", "0", "b"),
                   ("GETRANGE", "s", "0", "9223372036854775808"), ("GETRANGE", "s", "1.5", "2"),
                   ("HSET", "h", "f", "v"), ("GETRANGE", "h", "0", "-1"), ("GETRANGE", "s", "0"),
                   ("GETRANGE", "s"),
                   ("SET", "b", b"\x00\x01\r\n\xff"), ("GETRANGE", "b", "1", "3")]
        self.check(script)

    def test_setrange(self):
        self.check([
            ("SETRANGE", "s", "0", "Hello"), ("SETRANGE", "s", "6", "World"), ("GET", "s"),
            ("SETRANGE", "s", "1", "a"), ("GET", "s"), ("SETRANGE", "s", "11", "!"), ("GET", "s"),
            ("SETRANGE", "s", "20", "x"), ("GET", "s"), ("STRLEN", "s"),
            ("SETRANGE", "p", "5", "x"), ("GET", "p"), ("SETRANGE", "s", "-1", "x"),
            ("SETRANGE", "s", "abc", "x"), ("SETRANGE", "s", "1.5", "x"),
            ("SETRANGE", "m", "0", ""), ("EXISTS", "m"), ("SETRANGE", "m", "10", ""),
            ("EXISTS", "m"), ("SETRANGE", "s", "3", ""), ("SETRANGE", "s", "100", ""), ("GET", "s"),
            ("SETRANGE", "s", "536870912", "x"), ("SETRANGE", "s", "536870911", ""),
            ("SETRANGE", "s", "9223372036854775807", "x"), ("SETRANGE", "m", "-1", ""),
            ("SETRANGE", "m", "536870912", ""),
            ("HSET", "h", "f", "v"), ("SETRANGE", "h", "0", "x"), ("SETRANGE", "h", "0", ""),
            ("SETRANGE", "s", "0"), ("SETRANGE",),
            ("SET", "t", "abc", "EX", "100"), ("SETRANGE", "t", "1", "X"), (Near(1), "TTL", "t"),
            ("GET", "t"), ("SETRANGE", "b", "2", b"\x00\xff\r\n"), ("GET", "b"),
        ])

    # --- hashes ---------------------------------------------------------------------------
    def test_hash_basic(self):
        self.check([
            ("HSET", "h", "a", "1"), ("HSET", "h", "a", "2", "b", "3"), ("HSET", "h", "c", "4", "c", "5"),
            ("HGET", "h", "c"), ("HSET", "h", "a"), ("HSET", "h", "a", "1", "b"), ("HSET", "h"),
            ("HMSET", "h", "d", "6", "e", "7"), ("HMSET", "h", "d"), ("HMSET", "h", "d", "1", "e"),
            ("HGET", "h", "a"), ("HGET", "h", "zz"), ("HGET", "nope", "a"), ("HGET", "h"),
            ("HMGET", "h", "a", "zz", "b", "a"), ("HMGET", "nope", "a", "b"), ("HMGET", "h"),
            (pairs, "HGETALL", "h"), ("HGETALL", "nope"), (srt, "HKEYS", "h"), (srt, "HVALS", "h"),
            ("HKEYS", "nope"), ("HVALS", "nope"), ("HLEN", "h"), ("HLEN", "nope"),
            ("HEXISTS", "h", "a"), ("HEXISTS", "h", "zz"), ("HEXISTS", "nope", "a"),
            ("HSTRLEN", "h", "a"), ("HSTRLEN", "h", "zz"), ("HSTRLEN", "nope", "a"),
            ("HSETNX", "h", "a", "x"), ("HSETNX", "h", "new", "x"), ("HGET", "h", "new"),
            ("HSETNX", "nope2", "f", "v"), ("HGETALL", "nope2"), ("HSETNX", "h", "a"),
            ("HDEL", "h", "a", "a", "zz"), ("HDEL", "h", "b"), ("HDEL", "nope", "a"), ("HDEL", "h"),
            ("HLEN", "h"), ("HDEL", "h", "c", "d", "e", "new"), ("EXISTS", "h"), ("HLEN", "h"),
            ("TYPE", "h"), ("HGETALL",), ("HKEYS",), ("HVALS", "a", "b"), ("HLEN",), ("HEXISTS", "h"),
            ("HSTRLEN", "h"), ("HSETNX", "h", "f"), ("HGETALL", "a", "b"),
            ("HSET", "e", "", ""), ("HGET", "e", ""), ("HSTRLEN", "e", ""), ("HEXISTS", "e", ""),
            ("HLEN", "e"), ("HSET", "e", "x", ""), (pairs, "HGETALL", "e"), ("HDEL", "e", ""),
            (pairs, "HGETALL", "e"),
            ("HSET", "b", b"\x00\r\n\xff", b"\xff\x00"), ("HGET", "b", b"\x00\r\n\xff"),
            (pairs, "HGETALL", "b"), ("HSTRLEN", "b", b"\x00\r\n\xff"),
            ("HSET", "cs", "F", "1"), ("HGET", "cs", "f"), ("HGET", "cs", "F"),
        ])

    def test_hash_big(self):
        script = [("HSET", "big") + tuple(x for i in range(300) for x in ("f%d" % i, "v%d" % i))]
        script += [("HLEN", "big"), (pairs, "HGETALL", "big"), (srt, "HKEYS", "big"),
                   (srt, "HVALS", "big"), ("HMGET", "big", "f0", "f299", "f300"),
                   ("HDEL", "big") + tuple("f%d" % i for i in range(0, 300, 2)), ("HLEN", "big"),
                   (srt, "HKEYS", "big")]
        self.check(script)

    def test_hincrby(self):
        script = [("HINCRBY", "h", "n", "5"), ("HINCRBY", "h", "n", "-10"), ("HGET", "h", "n"),
                  ("HINCRBY", "h", "n", "0"), ("HINCRBY", "new", "f", "1"), ("HGETALL", "new")]
        for bad in ["1.5", " 1", "1 ", "01", "", "abc", "+1", "9223372036854775808"]:
            script += [("HSET", "h", "s", bad), ("HINCRBY", "h", "s", "1"), ("HINCRBY", "h", "n", bad)]
        script += [
            ("HSET", "h", "m", "9223372036854775806"), ("HINCRBY", "h", "m", "1"),
            ("HINCRBY", "h", "m", "1"), ("HGET", "h", "m"), ("HSET", "h", "m", "-9223372036854775807"),
            ("HINCRBY", "h", "m", "-1"), ("HINCRBY", "h", "m", "-1"), ("HGET", "h", "m"),
            ("HINCRBY", "h", "m", "9223372036854775807"), ("HINCRBY", "h", "m", "-9223372036854775808"),
            ("SET", "s", "1"), ("HINCRBY", "s", "f", "1"), ("HINCRBY", "h", "n"), ("HINCRBY", "h"),
            ("HINCRBYFLOAT", "h", "fl", "10.5"), ("HINCRBYFLOAT", "h", "fl", "0.1"),
            ("HINCRBYFLOAT", "h", "g", "3.0e3"), ("HINCRBYFLOAT", "h", "g", "5.0e3"),
            ("HINCRBYFLOAT", "h", "n", "1.5"), ("HGET", "h", "n"), ("HINCRBY", "h", "n", "1"),
            ("HINCRBYFLOAT", "h", "fl", "inf"), ("HINCRBYFLOAT", "h", "fl", "nan"),
            ("HINCRBYFLOAT", "h", "fl", "abc"), ("HINCRBYFLOAT", "h", "fl", ""),
            ("HINCRBYFLOAT", "h", "fl", " 1"), ("HSET", "h", "bad", "x"), ("HINCRBYFLOAT", "h", "bad", "1"),
            ("HSET", "h", "bad", "inf"), ("HINCRBYFLOAT", "h", "bad", "1"),
            ("HSET", "h", "bad", " 1"), ("HINCRBYFLOAT", "h", "bad", "1"),
            ("HSET", "h", "bad", ""), ("HINCRBYFLOAT", "h", "bad", "1"),
            ("HSET", "h", "bad", "1e4000"), ("HINCRBYFLOAT", "h", "bad", "-1e4000"),
            ("HINCRBYFLOAT", "h", "bad", "1e5000"), ("HINCRBYFLOAT", "h", "bad", "1e-5000"),
            ("HINCRBYFLOAT", "h", "fl", "-10.6"), ("HINCRBYFLOAT", "h", "q", "0.1"),
            ("HINCRBYFLOAT", "h", "q", "0.2"), ("HINCRBYFLOAT", "s", "f", "1"),
            ("HINCRBYFLOAT", "h", "fl"), ("HINCRBYFLOAT", "h", "fl", "1", "2"),
            (pairs, "HGETALL", "h"),
        ]
        self.check(script)

    def test_hscan(self):
        for c in (self.r, self.q):
            c.command("HSET", "h", *[x for i in range(200) for x in ("f%d" % i, "v%d" % i)])
            c.command("HSET", "small", "a", "1", "b", "2")
            c.command("SET", "s", "x")
        for key in ("h", "small", "nope"):
            for args in [(), ("COUNT", "1"), ("COUNT", "13"), ("MATCH", "f1*"),
                         ("MATCH", "a", "COUNT", "1"), ("COUNT", "500"), ("MATCH", "zz*")]:
                rr = self.scan_all(self.r, *args, cmd="HSCAN", key=key)
                qq = self.scan_all(self.q, *args, cmd="HSCAN", key=key)
                self.assertEqual(pairs(rr), pairs(qq), (key, args))
        self.check([
            ("HSCAN", "s", "0"), ("HSCAN", "h"), ("HSCAN",), ("HSCAN", "h", "abc"),
            ("HSCAN", "nope", "abc"), ("HSCAN", "s", "abc"), ("HSCAN", "s", "0", "BOGUS"),
            ("HSCAN", "h", "0", "COUNT"), ("HSCAN", "h", "0", "COUNT", "0"),
            ("HSCAN", "h", "0", "COUNT", "x"), ("HSCAN", "h", "0", "MATCH"),
            ("HSCAN", "h", "0", "BOGUS"), ("HSCAN", "nope", "0", "BOGUS", "x"),
            ("HSCAN", "small", "0", "COUNT", "10"), (pairs, "HSCAN", "small", "0"),
        ])

    # --- cross-cutting ---------------------------------------------------------------------
    def test_wrong_arity_every_command(self):
        script = []
        for name, arity in command_table():
            if name in ("quit", "shutdown") or "." in name:  # FS.*/FT.*: not in Redis
                continue
            counts = [arity - 1, arity + 1] if arity > 0 else [-arity - 1]
            for total in counts:
                if total >= 1:
                    script.append((name.upper() if total % 2 else name,) + ("x",) * (total - 1))
        self.assertGreater(len(script), 80)
        self.check(script)

    def test_unknown_commands(self):
        self.check([
            ("NOSUCHCOMMAND",), ("nosuch", "a", "b"), ("x" * 300, "y" * 300), ("", "a"),
            (b"\x00\xff",), ("GET\x01",),
        ])
        # A name with a NUL inside is unknown. (Redis compares names with strcasecmp but
        # hashes every byte, so its answer for "GET\0" depends on its hash seed.)
        self.assertEqual(self.q.command("GET\x00"),
                         "ERR unknown command 'GET', with args beginning with: ")
        self.assertEqual(self.q.command("GET\x00", "k"),
                         "ERR unknown command 'GET', with args beginning with: 'k' ")

    def test_wrongtype_both_directions(self):
        self.check([("SET", "s", "v"), ("HSET", "h", "f", "v")] + [
            (c, "h") + args for c, args in [
                ("GET", ()), ("APPEND", ("x",)), ("STRLEN", ()), ("INCR", ()), ("DECR", ()),
                ("INCRBY", ("1",)), ("DECRBY", ("1",)), ("INCRBYFLOAT", ("1",)),
                ("GETRANGE", ("0", "1")), ("SETRANGE", ("0", "x")), ("GETSET", ("x",)),
                ("GETDEL", ()), ("GETEX", ()), ("GETEX", ("PERSIST",)), ("SETNX", ("x",)),
                ("MGET", ("s",)), ("TYPE", ()), ("EXISTS", ()), ("TTL", ())]
        ] + [
            (c, "s") + args for c, args in [
                ("HGET", ("f",)), ("HSET", ("f", "v")), ("HMSET", ("f", "v")), ("HSETNX", ("f", "v")),
                ("HMGET", ("f",)), ("HGETALL", ()), ("HDEL", ("f",)), ("HEXISTS", ("f",)),
                ("HLEN", ()), ("HKEYS", ()), ("HVALS", ()), ("HINCRBY", ("f", "1")),
                ("HINCRBYFLOAT", ("f", "1")), ("HSTRLEN", ("f",)), ("HSCAN", ("0",)),
                ("HSET", ("f", "v", "g")), ("HINCRBY", ("f", "x")), ("HINCRBYFLOAT", ("f", "x"))]
        ] + [("GET", "s"), ("HGETALL", "h"), ("SET", "h", "v"), ("TYPE", "h"),
             ("HSET", "s2", "f", "v"), ("MSET", "s2", "x"), ("TYPE", "s2")])

    def test_empty_keys_and_values(self):
        self.check([
            ("SET", "", ""), ("GET", ""), ("EXISTS", ""), ("STRLEN", ""), ("TYPE", ""),
            ("APPEND", "", ""), ("GETRANGE", "", "0", "-1"), ("KEYS", "*"), ("SET", "k", ""),
            ("GET", "k"), ("STRLEN", "k"), ("INCR", "k"), ("INCRBYFLOAT", "k", "1"),
            ("MSET", "", "a", "b", ""), ("MGET", "", "b"), ("GETSET", "", ""), ("GETDEL", ""),
            ("EXISTS", ""), ("HSET", "", "", ""), ("HGETALL", ""), ("HGET", "", ""), ("TYPE", ""),
            ("EXPIRE", "", "100"), (Near(1), "TTL", ""), ("PERSIST", ""), ("RENAME", "", "x"),
            ("RENAME", "x", ""), ("DEL", ""), ("DBSIZE",), ("SETRANGE", "", "0", ""),
            ("EXISTS", ""), ("SETNX", "", ""), ("GET", ""), ("HINCRBY", "", "", "1"),
        ])

    def test_binary_keys_and_values(self):
        blobs = [b"\x00", b"a\x00b", b"\r\n", b"\xff\xfe", b"\x00\r\n\xff", b"*1\r\n$3\r\n",
                 bytes(range(256))]
        script = []
        for i, b in enumerate(blobs):
            script += [("SET", b, b + b"v"), ("GET", b), ("STRLEN", b), ("APPEND", b, b),
                       ("GET", b), ("HSET", b + b"h", b, b), ("HGET", b + b"h", b),
                       (pairs, "HGETALL", b + b"h"), ("EXISTS", b), ("TYPE", b + b"h"),
                       ("EXPIRE", b, "100"), (Near(1), "TTL", b), ("RENAME", b, b"r" + b),
                       ("GET", b"r" + b)]
        script += [(srt, "KEYS", "*"), (srt, "KEYS", b"*\x00*"), (srt, "KEYS", b"\xff*"),
                   ("MGET",) + tuple(b"r" + b for b in blobs), ("DBSIZE",),
                   ("DEL",) + tuple(b"r" + b for b in blobs), ("DBSIZE",)]
        self.check(script)

    def test_long_keys_and_fields(self):
        script = []
        for n in (499, 500, 501, 600, 5000):
            k = ("k%d:" % n).encode() + b"x" * (n - 6) + b"\x00\xff"
            k2 = k[:-1] + b"\xfe"  # same long prefix, different tail
            f = ("f%d:" % n).encode() + b"y" * (n - 6) + b"\r\n"
            f2 = f[:-1] + b"\t"
            script += [
                ("SET", k, "v1"), ("SET", k2, "v2"), ("GET", k), ("GET", k2), ("EXISTS", k, k2),
                ("TYPE", k), ("STRLEN", k), ("APPEND", k, "x"), ("GET", k), ("INCR", k2),
                ("SET", k2, "5"), ("INCR", k2), ("EXPIRE", k, "100"), (Near(1), "TTL", k),
                ("PERSIST", k), ("TTL", k), ("SETNX", k, "z"), ("RENAME", k, k + b"!"),
                ("GET", k + b"!"), ("EXISTS", k), ("RENAMENX", k + b"!", k2), ("RENAME", k2, k),
                ("GET", k), ("HSET", k2, f, "a", f2, "b"), ("HGET", k2, f), ("HGET", k2, f2),
                ("HLEN", k2), ("HSTRLEN", k2, f), ("HEXISTS", k2, f + b"?"), (pairs, "HGETALL", k2),
                ("HINCRBY", k2, f, "1"), ("HSET", k2, f, "41"), ("HINCRBY", k2, f, "1"),
                ("HDEL", k2, f), ("HMGET", k2, f, f2), (srt, "HKEYS", k2), ("HGET", k, f),
                ("MSET", k, "m1", k2, "m2"), ("MGET", k, k2), ("TYPE", k2),
                (srt, "KEYS", "*"), (srt, "KEYS", ("k%d:*" % n).encode()),
                (srt, "KEYS", ("k%d:*\xfe" % n).encode("latin-1")), ("DBSIZE",),
                ("DEL", k, k2, k), ("DBSIZE",), ("SET", k, "again"),
                ("HSET", b"h" + k, f, "1", f2, "2"),
            ]
        self.check(script)
        # SCAN and HSCAN hand back the full long names
        for args, kw in [((), {}), (("COUNT", "1"), {})]:
            self.assertEqual(sorted(self.scan_all(self.r, *args)), sorted(self.scan_all(self.q, *args)))
        for n in (600, 5000):
            k = b"h" + ("k%d:" % n).encode() + b"x" * (n - 6) + b"\x00\xff"
            rr = self.scan_all(self.r, cmd="HSCAN", key=k)
            qq = self.scan_all(self.q, cmd="HSCAN", key=k)
            self.assertEqual(pairs(rr), pairs(qq))
            self.assertEqual(len(rr), 4)

    def test_many_keys_keys_and_flush(self):
        for c in (self.r, self.q):
            c.send(b"".join(harness.encode("SET", "k%d" % i, i) for i in range(2000)))
            for _ in range(2000):
                self.assertEqual(c.read(), b"OK")
        self.check([("DBSIZE",), (srt, "KEYS", "k1??"), ("MGET", "k0", "k1999", "k2000"),
                    ("DEL",) + tuple("k%d" % i for i in range(0, 2000, 3)), ("DBSIZE",),
                    ("FLUSHDB",), ("DBSIZE",), ("KEYS", "*")])

    # --- expiry in real time (short sleeps) -------------------------------------------------
    def test_expiry_real_time(self):
        self.check([
            ("SET", "a", "v", "PX", "200"), ("SET", "b", "v", "PX", "200"),
            ("HSET", "h", "f", "v"), ("PEXPIRE", "h", "200"), ("SET", "keep", "v", "PX", "100000"),
            ("SET", "c", "v", "PX", "200"), ("SET", "c", "v2"),  # SET drops the TTL
            ("SET", "d", "1", "PX", "100000"), ("INCR", "d"), ("APPEND", "d", "0"),
            ("SET", "e", "v", "PX", "200"), ("RENAME", "e", "e2"), ("SETEX", "f", "1", "x"),
            ("SET", "g", "v", "PX", "200"), ("PERSIST", "g"), ("PSETEX", "i", "200", "v"),
            ("SET", "j", "v", "PX", "200"), ("GETEX", "j", "PERSIST"),
            ("SET", "l", "v"), ("GETEX", "l", "PX", "200"),
            ("SET", "m", "v", "PX", "200"), ("SET", "m", "w", "KEEPTTL"),
        ])
        time.sleep(0.3)
        self.check([
            ("GET", "a"), ("EXISTS", "a", "b"), ("TTL", "a"), ("PTTL", "b"), ("TYPE", "a"),
            ("HGETALL", "h"), ("HLEN", "h"), ("HGET", "h", "f"), ("TTL", "c"), ("GET", "c"),
            (Near(1), "TTL", "d"), ("GET", "d"), ("GET", "e2"), ("EXISTS", "e", "e2"),
            ("GET", "f"), ("GET", "g"), ("TTL", "g"), ("GET", "i"), ("GET", "j"), ("GET", "l"),
            ("GET", "m"), ("INCR", "a"), ("TTL", "a"), ("APPEND", "b", "x"), ("TTL", "b"),
            ("SET", "i", "new", "NX"), ("HSETNX", "h", "f", "v2"), ("HGETALL", "h"),
            ("RENAME", "m", "mm"), ("EXPIRE", "j", "10", "XX"), ("PERSIST", "l"),
            ("MSETNX", "l", "1"), ("SET", "a", "x", "XX"), ("GETDEL", "l"),
            (srt, "KEYS", "*"),
        ])
        self.settle()
        self.check([("DBSIZE",), (srt, "KEYS", "*"), ("EXISTS", "f")])
        self.assertEqual(sorted(self.scan_all(self.r)), sorted(self.scan_all(self.q)))

    def test_expiry_unread_keys_leave_dbsize(self):
        self.check([("SET", "k%d" % i, "v", "PX", "150") for i in range(20)] +
                   [("SET", "stay", "v"), ("DBSIZE",)])
        time.sleep(0.2)
        self.settle()
        self.check([("DBSIZE",), (srt, "KEYS", "*"), ("SCAN", "0", "COUNT", "100")])

    def settle(self, timeout=5):
        """Waits until each server's active expiry has reclaimed the expired keys nobody
        read (DBSIZE counts them until then, in Redis as in Quiver)."""
        for c in (self.r, self.q):
            deadline = time.time() + timeout
            while c.command("DBSIZE") != len(c.command("KEYS", "*")):
                self.assertLess(time.time(), deadline, "expired keys never reclaimed")
                time.sleep(0.02)

    # --- the differences we keep on purpose ----------------------------------------------------
    def test_intentional_differences(self):
        # HELLO: same shape and values except server, id (and modules).
        rr = self.r.command("HELLO", "2")
        qq = self.q.command("HELLO", "2")
        rd, qd = dict(zip(rr[0::2], rr[1::2])), dict(zip(qq[0::2], qq[1::2]))
        self.assertEqual(set(rd), set(qd))
        self.assertEqual(rd[b"server"], b"redis")
        self.assertEqual(qd[b"server"], b"quiver")
        for f in (b"proto", b"mode", b"role"):
            self.assertEqual(rd[f], qd[f])
        self.assertTrue(qd[b"version"].startswith(b"7."))
        # INFO is Quiver's own, but the sections clients parse are there.
        info = self.q.command("INFO")
        self.assertIn(b"redis_version:", info)
        self.assertIn(b"quiver_version:", info)
        self.assertIn(b"# Keyspace", info)
        # COMMAND: answered from Quiver's table.
        names = [n for n, _ in command_table()]
        self.assertEqual(self.q.command("COMMAND", "COUNT"), len(self.q.command("COMMAND")))
        self.assertLessEqual(set(names), set(x.decode() for x in self.q.command("COMMAND", "LIST")))
        # CONFIG: Quiver's own parameters.
        self.assertEqual(len(self.q.command("CONFIG", "GET", "lmdb-map-size")), 2)
        self.assertEqual(self.r.command("CONFIG", "GET", "lmdb-map-size"), [])
        # SCAN with a cursor nobody handed out: Redis restarts, Quiver refuses. Redis also
        # reads "" and "+0" as 0 and "-1" as 2^64-1 (strtoul); Quiver wants a decimal int64.
        self.assertIsInstance(self.r.command("SCAN", "12345"), list)
        self.assertEqual(self.q.command("SCAN", "12345"), "ERR invalid or expired cursor")
        for cursor in ("", "-1", "+0", "18446744073709551615"):
            self.assertIsInstance(self.r.command("SCAN", cursor), list)
            self.assertEqual(self.q.command("SCAN", cursor), "ERR invalid cursor")
        # CLIENT SETINFO (Redis 7.2) is accepted, since newer clients send it on connect.
        self.assertTrue(self.r.command("CLIENT", "SETINFO", "LIB-NAME", "x").startswith(
            "ERR unknown subcommand"))
        self.assertEqual(self.q.command("CLIENT", "SETINFO", "LIB-NAME", "x"), b"OK")
        # HSCAN NOVALUES (Redis 7.4) is accepted.
        self.q.command("HSET", "nv", "f", "v")
        self.assertEqual(self.q.command("HSCAN", "nv", "0", "NOVALUES"), [b"0", [b"f"]])
        self.assertIsInstance(self.r.command("HSET", "h", "f", "v"), int)
        self.q.command("HSET", "h", "f", "v")
        self.assertEqual(self.q.command("HSCAN", "h", "12345"), "ERR invalid or expired cursor")
        # OBJECT and DEBUG are not Quiver commands.
        self.assertTrue(self.q.command("OBJECT", "ENCODING", "h").startswith("ERR unknown command"))
        self.assertIsInstance(self.r.command("OBJECT", "ENCODING", "h"), bytes)


if __name__ == "__main__":
    unittest.main()
