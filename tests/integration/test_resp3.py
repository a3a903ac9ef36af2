"""RESP3: HELLO 3 switches the reply types (maps, nulls, sets, verbatim strings, doubles),
HELLO 2 switches back, other versions are refused. The same scripts run against Debian's
redis-server (7.0) after HELLO 3 on both, comparing replies with their RESP3 types kept
(TypedClient below), so a map that came back as a flat array, or `_` that came back as
`$-1`, is a failure. Also redis-cli: -3, non-interactive use, pipes, COMMAND DOCS.

Run: PYTHONPATH=tests/integration /usr/bin/python3 -m unittest -v test_resp3"""
import os
import subprocess
import unittest

import harness
from test_compat import Differential, Near, command_table


class TypedClient(harness.RawClient):
    """RawClient that keeps each reply's RESP type: every value is a tuple (type, payload).
    Maps and sets are sorted, since Redis does not define their order."""

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return ("simple", rest)
        if t == b"-":
            return ("error", rest.decode())
        if t == b":":
            return ("int", int(rest))
        if t == b"$":
            n = int(rest)
            return ("null2",) if n < 0 else ("bulk", self._exact(n))
        if t == b"=":
            data = self._exact(int(rest))
            return ("verbatim", data[:3], data[4:])
        if t in (b"*", b">"):
            n = int(rest)
            if n < 0:
                return ("nullarray2",)
            return ("array" if t == b"*" else "push", [self.read() for _ in range(n)])
        if t == b"~":
            return ("set", sorted((self.read() for _ in range(int(rest))), key=repr))
        if t == b"%":
            pairs = [(self.read(), self.read()) for _ in range(int(rest))]
            return ("map", sorted(pairs, key=repr))
        if t == b"_":
            return ("null",)
        if t == b",":
            return ("double", rest)
        if t == b"#":
            return ("bool", rest)
        if t == b"(":
            return ("bignum", rest)
        raise ValueError("unknown reply type %r" % line)


def untyped_ints(v):
    """The integer inside a typed reply, for Near comparisons."""
    return v[1] if isinstance(v, tuple) and v[0] == "int" else v


def shape(v):
    """A typed reply with the scalars replaced by their type: for replies whose values
    differ by nature (INFO text, client ids) but whose types must not."""
    if v[0] in ("array", "push"):
        return (v[0], [shape(x) for x in v[1]])
    if v[0] == "set":
        return ("set", sorted({repr(shape(x)) for x in v[1]}))
    if v[0] == "map":
        return ("map", [(k, shape(x)) for k, x in v[1]])
    return (v[0],) + ((v[1],) if v[0] == "verbatim" else ())


def map_get(v, key):
    assert v[0] == "map", v
    for k, x in v[1]:
        if k == ("bulk", key) or k == ("simple", key):
            return x
    raise KeyError(key)


class TestResp3Differential(Differential):
    """HELLO 3 on both servers, then compare typed replies."""

    def setUp(self):
        super().setUp()
        self.r3 = TypedClient("127.0.0.1", self.redis_port)
        self.q3 = TypedClient(self.quiver.host, self.quiver.port)
        self.addCleanup(self.q3.close)
        self.addCleanup(self.r3.close)
        for c in (self.r3, self.q3):
            self.assertEqual(map_get(c.command("HELLO", "3"), b"proto"), ("int", 3))

    def check3(self, script, clients=None):
        r, q = clients or (self.r3, self.q3)
        diffs = []
        for line in script:
            norm, args = None, line
            if callable(line[0]) or isinstance(line[0], Near):
                norm, args = line[0], line[1:]
            rr, qq = r.command(*args), q.command(*args)
            if isinstance(norm, Near):
                a, b = untyped_ints(rr), untyped_ints(qq)
                same = (isinstance(a, int) and isinstance(b, int) and
                        (a == b or (a >= 0 and b >= 0 and abs(a - b) <= norm.tol)))
            else:
                if norm:
                    rr, qq = norm(rr), norm(qq)
                same = rr == qq
            if not same:
                diffs.append("%r\n      redis:  %r\n      quiver: %r" % (args, rr, qq))
        self.assertFalse(diffs, "%d replies differ:\n  " % len(diffs) + "\n  ".join(diffs))

    def test_null_map_set_types(self):
        self.check3([
            ("GET", "nope"), ("SET", "k", "v"), ("GET", "k"), ("SET", "k", "w", "NX"),
            ("SET", "k", "w", "GET"), ("SET", "n", "w", "XX", "GET"), ("GETDEL", "nope"),
            ("GETEX", "nope"), ("MGET", "k", "nope"), ("HSET", "h", "a", "1", "b", "2"),
            ("HGETALL", "h"), ("HGETALL", "nope"), ("HGET", "h", "zz"), ("HMGET", "h", "a", "zz"),
            (lambda v: ("array", sorted(v[1], key=repr)), "HKEYS", "h"),
            (lambda v: ("array", sorted(v[1], key=repr)), "HVALS", "h"), ("HKEYS", "nope"),
            ("HLEN", "h"), ("HEXISTS", "h", "a"), ("HSTRLEN", "h", "a"), ("HSETNX", "h", "a", "x"),
            ("INCRBYFLOAT", "f", "10.5"), ("INCRBYFLOAT", "f", "0.1"),
            ("HINCRBYFLOAT", "h", "f", "1.5"), ("HINCRBY", "h", "i", "2"), ("INCR", "i"),
            ("TYPE", "h"), ("TYPE", "nope"), ("PING",), ("PING", "x"), ("ECHO", "e"),
            ("DBSIZE",), ("EXISTS", "k", "h"), ("TTL", "k"), ("PTTL", "nope"),
            ("EXPIRE", "k", "100"), (Near(1), "TTL", "k"), ("PERSIST", "k"),
            ("EXPIRETIME", "k"), ("GETRANGE", "nope", "0", "1"), ("STRLEN", "nope"),
            ("SET", "", ""), ("GET", ""), ("HSET", "e", "", ""), ("HGETALL", "e"),
            ("SET", b"\x00\r\n", b"\xff\r\n"), ("GET", b"\x00\r\n"),
            ("RENAME", "nope", "x"), ("RENAMENX", "k", "h"), ("DEL", "k", "nope"),
            ("GET", "h"), ("HGET", "i", "f"), ("NOSUCH", "a"), ("GET",),
            ("SELECT", "1"), ("GET", "h"), ("SELECT", "0"),
            ("CONFIG", "GET", "maxclients"), ("CONFIG", "GET", "timeout"),
            ("CONFIG", "GET", "hz"), ("CONFIG", "GET", "databases"),
            ("CONFIG", "GET", "nosuchparameter"), ("CONFIG", "GET", "timeout", "hz"),
            ("CLIENT", "GETNAME"), ("CLIENT", "SETNAME", "n3"), ("CLIENT", "GETNAME"),
            ("TIME", "x"), ("HELLO", "4"), ("HELLO", "3", "BOGUS"),
        ])

    def test_scan_reply_types(self):
        for c in (self.r3, self.q3):
            c.command("SET", "a", "1")
            c.command("HSET", "h", "f", "v")
        inner_sorted = lambda v: (v[0], [v[1][0], (v[1][1][0], sorted(v[1][1][1]))])
        self.check3([
            (inner_sorted, "SCAN", "0", "COUNT", "100"), ("SCAN", "0", "MATCH", "a"),
            ("HSCAN", "h", "0"), ("HSCAN", "nope", "0"), ("KEYS", "a"), ("KEYS", "nope*"),
        ], )

    def test_transactions_in_resp3(self):
        other_r = TypedClient("127.0.0.1", self.redis_port)
        other_q = TypedClient(self.quiver.host, self.quiver.port)
        self.addCleanup(other_r.close)
        self.addCleanup(other_q.close)
        self.check3([
            ("MULTI",), ("SET", "a", "1"), ("GET", "a"), ("HSET", "h", "f", "v"),
            ("HGETALL", "h"), ("GET", "nope"), ("INCR", "h"), ("EXEC",),
            ("WATCH", "a"), ("MULTI",), ("GET", "a"),
        ])
        for c in (other_r, other_q):
            self.assertEqual(c.command("SET", "a", "changed"), ("simple", b"OK"))
        self.check3([("EXEC",), ("MULTI",), ("GET",), ("EXEC",), ("EXEC",), ("DISCARD",)])

    def test_verbatim_and_sets_where_redis_uses_them(self):
        # INFO and CLIENT LIST/INFO: verbatim strings ("txt") in RESP3, bulk in RESP2.
        for args in [("INFO",), ("INFO", "server"), ("CLIENT", "LIST"), ("CLIENT", "INFO")]:
            rr, qq = self.r3.command(*args), self.q3.command(*args)
            self.assertEqual(shape(rr), shape(qq), args)
            self.assertEqual(rr[:2], ("verbatim", b"txt"), args)
        # COMMAND INFO: flags and ACL categories are sets.
        rr, qq = self.r3.command("COMMAND", "INFO", "get"), self.q3.command("COMMAND", "INFO", "get")
        self.assertEqual(rr[1][0][1][2][0], "set")
        self.assertEqual(qq[1][0][1][2][0], "set")
        self.assertIn(("simple", b"readonly"), qq[1][0][1][2][1])
        self.assertEqual(qq[1][0][1][:2], [("bulk", b"get"), ("int", 2)])
        # COMMAND DOCS: a map of maps.
        docs = self.q3.command("COMMAND", "DOCS", "get")
        self.assertEqual(docs[0], "map")
        self.assertEqual(docs[1][0][0], ("bulk", b"get"))
        self.assertEqual(docs[1][0][1][0], "map")
        self.assertEqual(self.r3.command("COMMAND", "DOCS", "get")[1][0][1][0], "map")
        # HELLO: a map with the same keys and types.
        rr, qq = self.r3.command("HELLO"), self.q3.command("HELLO")
        self.assertEqual([k for k, _ in rr[1]], [k for k, _ in qq[1]])
        self.assertEqual(shape(rr), shape(qq))
        self.assertEqual(map_get(qq, b"server"), ("bulk", b"quiver"))
        self.assertEqual(map_get(qq, b"proto"), ("int", 3))

    def test_hello_switches_back_and_forth(self):
        for c in (self.r3, self.q3):
            c.command("HSET", "h", "f", "v")
        self.check3([("HGETALL", "h")])
        for c in (self.r3, self.q3):
            reply = c.command("HELLO", "2")
            self.assertEqual(reply[0], "array")  # HELLO 2 answers in RESP2 already
            self.assertIn(("bulk", b"proto"), reply[1])
            self.assertEqual(c.command("HGETALL", "h"), ("array", [("bulk", b"f"), ("bulk", b"v")]))
            self.assertEqual(c.command("GET", "nope"), ("null2",))
            self.assertEqual(c.command("HELLO", "4"),
                             ("error", "NOPROTO unsupported protocol version"))
            self.assertEqual(c.command("HELLO", "1"),
                             ("error", "NOPROTO unsupported protocol version"))
            self.assertEqual(c.command("HGETALL", "h")[0], "array")  # still RESP2
            self.assertEqual(map_get(c.command("HELLO", "3"), b"proto"), ("int", 3))
            self.assertEqual(c.command("GET", "nope"), ("null",))
            self.assertEqual(c.command("RESET"), ("simple", b"RESET"))  # back to RESP2
            self.assertEqual(c.command("GET", "nope"), ("null2",))
        self.check3([("HELLO", "abc"), ("HELLO", "3", "SETNAME", "bad name"),
                     ("HELLO", "3", "AUTH", "default"), ("HELLO", "3", "AUTH", "default", "x", "y"),
                     ("HELLO", "-1"), ("HELLO", "9999999999999999999999")])
        # No password set: any AUTH for the default user is accepted, as in Redis.
        rr = self.r3.command("HELLO", "2", "AUTH", "default", "anything", "SETNAME", "me")
        qq = self.q3.command("HELLO", "2", "AUTH", "default", "anything", "SETNAME", "me")
        self.assertEqual(shape(rr), shape(qq))
        self.check3([("CLIENT", "GETNAME")])

    def test_whole_command_table_parses(self):
        # COMMAND, COMMAND INFO and COMMAND DOCS for every command, in both protocols: each
        # reply must be well formed (the stream stays in sync) and list every command.
        names = [n for n, _ in command_table()]
        for proto in ("2", "3"):
            self.q3.command("HELLO", proto)
            count = self.q3.command("COMMAND", "COUNT")[1]
            self.assertEqual(len(self.q3.command("COMMAND")[1]), count)
            docs = self.q3.command("COMMAND", "DOCS")
            self.assertEqual(docs[0], "map" if proto == "3" else "array")
            got = [k for k, _ in docs[1]] if proto == "3" else docs[1][0::2]
            self.assertEqual(len(got), count)
            self.assertLessEqual(set(names), {k[1].decode() for k in got})
            info = self.q3.command("COMMAND", "INFO", *names)
            self.assertEqual([x[1][0][1].decode() for x in info[1]], names)
            self.assertEqual(self.q3.command("COMMAND", "INFO", "nosuch"), ("array", [
                ("null",) if proto == "3" else ("nullarray2",)]))
            self.assertEqual(self.q3.command("PING"), ("simple", b"PONG"))


class TestRedisCli(Differential):
    """redis-cli against both servers: its output must be the same."""

    def cli(self, port, *args, stdin=None):
        p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)] + list(args),
                           input=stdin, capture_output=True, timeout=20)
        return p.returncode, p.stdout, p.stderr

    def both_cli(self, *args, stdin=None):
        return (self.cli(self.redis_port, *args, stdin=stdin),
                self.cli(self.quiver.port, *args, stdin=stdin))

    def test_resp3_hgetall(self):
        for c in (self.r, self.q):
            c.command("HSET", "h", "field", "value", "f2", "v2")
        rr, qq = self.both_cli("-3", "--no-raw", "hgetall", "h")
        self.assertEqual(qq[0], 0, qq)
        strip = lambda out: sorted(line.split(b"# ", 1)[1] for line in out.splitlines())
        self.assertEqual(strip(rr[1]), strip(qq[1]))
        self.assertEqual(len(qq[1].splitlines()), 2)
        self.assertIn(b'"field" => "value"', qq[1])
        rr, qq = self.both_cli("-3", "--no-raw", "get", "nope")
        self.assertEqual(rr, qq)
        self.assertEqual(qq[1].strip(), b"(nil)")
        rr, qq = self.both_cli("-3", "hello")
        self.assertEqual(len(rr[1].splitlines()), len(qq[1].splitlines()))

    def test_non_interactive(self):
        cases = [("set", "k", "hello world"), ("get", "k"), ("--no-raw", "get", "k"),
                 ("incr", "n"), ("--no-raw", "incr", "n"), ("get", "nope"),
                 ("--no-raw", "get", "nope"), ("hset", "h", "a", "1"), ("--no-raw", "hgetall", "h"),
                 ("--no-raw", "mget", "k", "nope"), ("--no-raw", "incr", "k"),
                 ("--no-raw", "nosuchcommand"), ("-n", "3", "set", "x", "1"), ("-n", "3", "dbsize"),
                 ("dbsize",), ("--no-raw", "exists", "k", "h"), ("-x", "set", "fromstdin"),
                 ("get", "fromstdin"), ("--no-raw", "type", "h"), ("ping",)]
        for args in cases:
            stdin = b"piped\x00value" if "-x" in args else None
            rr, qq = self.both_cli(*args, stdin=stdin)
            self.assertEqual(rr, qq, args)
        rr, qq = self.both_cli(stdin=b"SET a 1\nGET a\nINCR a\nHSET hh f v\nHGETALL hh\nGET zz\n")
        self.assertEqual(rr, qq)
        self.assertEqual(qq[1], b"OK\n1\n2\n1\nf\nv\n\n")
        rr, qq = self.both_cli("--pipe", stdin=b"".join(
            harness.encode("SET", "p%d" % i, i) for i in range(1000)))
        self.assertEqual(rr[0], 0)
        self.assertEqual(qq[0], 0, qq)
        self.assertIn(b"errors: 0, replies: 1000", qq[1])
        self.assertEqual(self.q.command("GET", "p999"), b"999")

    def test_command_docs_summary(self):
        rc, out, err = self.cli(self.quiver.port, "--no-raw", "COMMAND", "DOCS", "get")
        self.assertEqual(rc, 0, err)
        self.assertIn(b'"summary"', out)
        self.assertIn(b"Returns the string value of a key.", out)
        self.assertIn(b'"arguments"', out)
        rc, out, err = self.cli(self.quiver.port, "-3", "--no-raw", "COMMAND", "DOCS", "set")
        self.assertIn(b"Sets a key to a string value", out)
        self.assertIn(b'"keepttl"', out)
        rc, out, err = self.cli(self.quiver.port, "COMMAND", "COUNT")
        self.assertGreaterEqual(int(out), len(command_table()))


if __name__ == "__main__":
    unittest.main()
