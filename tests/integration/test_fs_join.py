"""FS.JOIN, the point-in-time join, against a Python oracle of DESIGN.md's semantics: the
history row with the largest event time <= t (ties: largest created), within TTL (both ends
inclusive) and retention. Hand-made histories (out-of-order pushes, equal event times, TTL
edges, missing entities, NULL fields, two views keyed by different entities, composite keys,
histories whose density changes), Feast's driver_stats table, WITHMETA, RESP3, argument
errors. Big joins run on a worker with the client parked: the same answer as small inline
joins and as inside EXEC, other clients served meanwhile, pipelined commands after a big
join answered in order, a client that disconnects mid-join leaving the server healthy.

Run: PYTHONPATH=tests/integration /usr/bin/python3 -m unittest -v test_fs_join"""
import csv
import datetime
import os
import random
import socket
import struct
import time
import unittest

import harness

DATA = os.path.join(harness.ROOT, "..", "shared", "data", "featurestore")
INLINE_MAX = 2000  # fs_join.c JOIN_INLINE_ROWS: joins of this many rows or more run on a worker


def iso_us(s):
    """ISO-8601 UTC (up to 9 fraction digits, truncated) -> microseconds since the epoch."""
    s = s.rstrip("Z")
    base, _, frac = s.partition(".")
    dt = datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc)
    return int(dt.timestamp()) * 1000000 + int((frac + "000000")[:6])


class History:
    """The oracle: rows per (view, stored key tuple), answered as DESIGN.md says."""

    def __init__(self):
        self.rows = {}

    def push(self, view, key, event_us, created_us, values):
        # the same (event, created) for a key replaces the row, as the history key is equal
        rows = self.rows.setdefault((view, key), {})
        rows[(event_us, created_us)] = values

    def asof(self, view, key, t_us, ttl_us=0, oldest_us=None):
        best = None
        for (e, c), vals in self.rows.get((view, key), {}).items():
            if e > t_us or (ttl_us and e < t_us - ttl_us):
                continue
            if oldest_us is not None and e < oldest_us:
                continue
            if best is None or (e, c) > best[0]:
                best = ((e, c), vals)
        return best


class Conn:
    """A RESP2/RESP3 client that reads big replies in linear time (harness.RawClient copies
    its buffer per item). rcvbuf fixes the socket's receive buffer, which stops the kernel
    from growing it: a big reply then really waits for the reader."""

    def __init__(self, server, rcvbuf=None):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(60)
        self.sock.connect((server.host, server.port))
        self.buf = bytearray()
        self.pos = 0

    def close(self):
        self.sock.close()

    def send(self, *commands):
        self.sock.sendall(b"".join(harness.encode(*c) for c in commands))

    def command(self, *args):
        self.send(args)
        return self.read()

    def _fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("connection closed")
        if self.pos > (1 << 20):
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += data

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line = bytes(self.buf[self.pos:i])
                self.pos = i + 2
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) - self.pos < n + 2:
            self._fill()
        data = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n + 2
        return data

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest
        if t == b"-":
            return harness.RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        if t == b"%":
            return {self.read(): self.read() for _ in range(int(rest))}
        if t == b"_":
            return None
        if t == b",":
            return float(rest)
        raise ValueError("unexpected reply type %r" % line)


def push_many(r, pushes, batch=5000):
    """pushes: argument lists for FS.PUSH (after the command name), pipelined."""
    for i in range(0, len(pushes), batch):
        p = r.pipeline(transaction=False)
        for a in pushes[i:i + batch]:
            p.execute_command("FS.PUSH", *a)
        for res in p.execute():
            if res not in (0, 1):  # whether the online row was replaced
                raise AssertionError("FS.PUSH answered %r" % (res,))


class JoinBase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = harness.Server(durability="no")
        cls.server.__enter__()
        cls.addClassCleanup(cls.server.__exit__, None, None, None)  # also if setUpClass fails
        cls.r = cls.server.client()
        cls.addClassCleanup(cls.r.close)

    def cmd(self, *args):
        return self.r.execute_command(*args)

    def join(self, features, rows, withmeta=False, client=None):
        args = ["FS.JOIN"] + list(features) + ["ROWS", len(rows)]
        for row in rows:
            args += list(row)
        if withmeta:
            args.append("WITHMETA")
        return (client or self.r).execute_command(*args)

    def features(self, *names):
        return ["FEATURES", len(names)] + list(names)


def f32(x):
    """x (a string, bytes or float) rounded to float32, as FLOAT32 features are kept."""
    return struct.unpack("f", struct.pack("f", float(x)))[0]


def f(x):
    """A RESP2 float reply (bulk string) as a float; nil stays None."""
    return None if x is None else float(x)


class TestSemantics(JoinBase):
    """Hand-made histories, one property each."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        c = cls.r.execute_command
        c("FS.ENTITY.CREATE", "driver", "TYPE", "INT64")
        c("FS.ENTITY.CREATE", "customer", "TYPE", "STRING")
        c("FS.VIEW.CREATE", "stats", "ENTITIES", 1, "driver", "SCHEMA",
          "rate", "FLOAT64", "trips", "INT64", "note", "STRING")
        c("FS.VIEW.CREATE", "ttlv", "ENTITIES", 1, "driver", "TTL", 10, "SCHEMA", "x", "INT64")
        c("FS.VIEW.CREATE", "pair", "ENTITIES", 2, "driver", "customer", "SCHEMA",
          "score", "FLOAT64")
        c("FS.VIEW.CREATE", "cust", "ENTITIES", 1, "customer", "SCHEMA", "age", "INT32")
        c("FS.VIEW.CREATE", "kept", "ENTITIES", 1, "driver", "RETENTION", 3600,
          "SCHEMA", "y", "INT64")
        P = lambda *a: c("FS.PUSH", *a)
        # out of order, and three rows at event 4000 told apart by created
        P("stats", "1", 3000, "CREATED", 5, "FIELDS", "rate", "0.3", "trips", 3, "note", "c")
        P("stats", "1", 1000, "CREATED", 5, "FIELDS", "rate", "0.1", "trips", 1, "note", "a")
        P("stats", "1", 4000, "CREATED", 10, "FIELDS", "rate", "0.41", "trips", 41)
        P("stats", "1", 2000, "CREATED", 5, "FIELDS", "rate", "0.2", "trips", 2, "note", "b")
        P("stats", "1", 4000, "CREATED", 20, "FIELDS", "rate", "0.42", "trips", 42)
        P("stats", "1", 4000, "CREATED", 15, "FIELDS", "rate", "0.43", "trips", 43)
        P("stats", "2", 500, "CREATED", 5, "FIELDS", "trips", 7)  # rate and note NULL
        # TTL 10 s: event 100000 ms answers t in [100000, 110000]
        P("ttlv", "1", 100000, "FIELDS", "x", 1)
        P("ttlv", "1", 50000, "FIELDS", "x", 0)
        P("pair", "1:ann", 1000, "FIELDS", "score", "1.5")
        P("pair", "2:ann", 1000, "FIELDS", "score", "2.5")
        P("pair", "1:b\\:c", 1000, "FIELDS", "score", "3.5")  # customer "b:c", escaped
        P("cust", "ann", 1000, "FIELDS", "age", 30)
        cls.now_ms = int(time.time() * 1000)
        P("kept", "1", 1000, "FIELDS", "y", 1)  # older than the retention
        P("kept", "1", cls.now_ms - 60000, "FIELDS", "y", 2)

    def test_point_in_time_with_ties(self):
        ts = [999, 1000, 1999, 2000, 2500, 3999, 4000, 10 ** 12]
        got = self.join(self.features("stats:rate", "stats:trips", "stats:note"),
                        [("1", t) for t in ts])
        self.assertEqual(got, [
            [None, None, None],
            [b"0.1", 1, b"a"], [b"0.1", 1, b"a"], [b"0.2", 2, b"b"], [b"0.2", 2, b"b"],
            [b"0.3", 3, b"c"],
            [b"0.42", 42, None],  # the largest created of the three at 4000; note NULL
            [b"0.42", 42, None],
        ])

    def test_ttl_edges_inclusive(self):
        got = self.join(self.features("ttlv:x"),
                        [("1", t) for t in (99999, 100000, 110000, 110001, 60000, 60001)])
        # 99999: the newest row <= t is 50000, older than 89999: no match
        self.assertEqual(got, [[None], [1], [1], [None], [0], [None]])

    def test_retention_hides_older_rows(self):
        got = self.join(self.features("kept:y"), [("1", 5000), ("1", self.now_ms)])
        self.assertEqual(got, [[None], [2]])

    def test_missing_entity_and_null_fields(self):
        got = self.join(self.features("stats:rate", "stats:trips", "stats:note"),
                        [("3", 5000), ("2", 5000), ("2", 499)])
        self.assertEqual(got, [[None, None, None], [None, 7, None], [None, None, None]])

    def test_two_views_composite_key_in_caller_order(self):
        feats = self.features("cust:age", "stats:trips", "pair:score", "stats:rate")
        # entities in order of first appearance: customer (cust), then driver (stats)
        rows = [("ann", "2", 5000), ("b:c", "1", 5000), ("ann", "1", 1500),
                ("zed", "1", 5000), ("ann", "1", 500)]
        got = self.join(feats, rows)
        self.assertEqual(got, [
            [30, 7, b"2.5", None],
            [None, 42, b"3.5", b"0.42"],
            [30, 1, b"1.5", b"0.1"],
            [None, 42, None, b"0.42"],
            [None, None, None, None],
        ])

    def test_withmeta(self):
        got = self.join(self.features("stats:trips", "stats:note"),
                        [("1", 4000), ("2", 600), ("9", 600)], withmeta=True)
        self.assertEqual(got, [
            [[42, 4000, b"PRESENT"], [None, 4000, b"NULL_VALUE"]],
            [[7, 500, b"PRESENT"], [None, 500, b"NULL_VALUE"]],
            [[None, None, b"NOT_FOUND"], [None, None, b"NOT_FOUND"]],
        ])

    def test_service_and_iso_times(self):
        self.cmd("FS.SERVICE.CREATE", "svc", "FEATURES", 2, "stats:trips", "ttlv:x")
        got = self.join(["svc"], [("1", "1970-01-01T00:01:40Z"),
                                  ("1", "1970-01-01T00:00:02.500Z")])
        self.assertEqual(got, [[42, 1], [2, None]])

    def test_resp3(self):
        raw = Conn(self.server)
        self.addCleanup(raw.close)
        raw.command("HELLO", 3)
        got = raw.command("FS.JOIN", "FEATURES", 3, "stats:rate", "stats:trips", "stats:note",
                          "ROWS", 2, "1", 2000, "7", 2000)
        self.assertEqual(got, [[0.2, 2, b"b"], [None, None, None]])

    def test_argument_errors_name_the_row(self):
        feats = self.features("stats:trips")
        cases = [
            (feats + ["ROWS", 2, "1", 1000, "1", "x"], "ROWS row 2"),
            (feats + ["ROWS", 2, "1", 1000, "one", 1000], "ROWS row 2"),
            (feats + ["ROWS", 2, "1", 1000], "ROWS 2"),
            (feats + ["ROWS", 1, "1", 1000, "EXTRA"], "ROWS 1"),
            (feats + ["ROWS", -1], "ROWS count"),
            (feats + ["ROWZ", 1, "1", 1000], "ROWS"),
            (self.features("nosuch:x") + ["ROWS", 1, "1", 1000], "nosuch"),
            (self.features("stats:nosuch") + ["ROWS", 1, "1", 1000], "nosuch"),
        ]
        for args, needle in cases:
            with self.subTest(args=args):
                with self.assertRaises(Exception) as cm:
                    self.cmd("FS.JOIN", *args)
                self.assertIn(needle, str(cm.exception))
        self.assertEqual(self.join(feats, []), [])
        self.assertEqual(self.cmd("PING"), True)


class TestDriverStats(JoinBase):
    """Feast's driver_hourly_stats (1,808 rows, two duplicated event times told apart by
    created), joined at random times against the oracle."""

    def test_against_oracle(self):
        self.cmd("FS.ENTITY.CREATE", "driver_id", "TYPE", "INT64")
        self.cmd("FS.VIEW.CREATE", "driver_hourly", "ENTITIES", 1, "driver_id", "TTL",
                 86400 * 2, "SCHEMA", "conv_rate", "FLOAT32", "acc_rate", "FLOAT32",
                 "avg_daily_trips", "INT32")
        hist = History()
        pushes = []
        with open(os.path.join(DATA, "driver_stats.csv")) as fh:
            for row in csv.DictReader(fh):
                e, c = iso_us(row["event_timestamp"]), iso_us(row["created"])
                pushes.append(["driver_hourly", row["driver_id"], row["event_timestamp"],
                               "CREATED", row["created"], "FIELDS", "conv_rate", row["conv_rate"],
                               "avg_daily_trips", row["avg_daily_trips"]])
                hist.push("driver_hourly", row["driver_id"], e, c,
                          [int(row["avg_daily_trips"]), f32(row["conv_rate"])])
        random.Random(7).shuffle(pushes)
        push_many(self.r, pushes)
        rnd = random.Random(3)
        # mostly inside the table's busy weeks (late Aug to Sep 2024), some anywhere since
        # its first rows in April 2021, some exactly on an event time
        busy = (iso_us("2024-08-25T00:00:00Z") // 1000, iso_us("2024-09-12T00:00:00Z") // 1000)
        wide = (iso_us("2021-04-01T00:00:00Z") // 1000, busy[1])
        rows = []
        for _ in range(3000):
            d = str(rnd.randint(1000, 1006))
            t = rnd.randint(*(busy if rnd.random() < 0.8 else wide))
            if rnd.random() < 0.2:
                key = rnd.choice(list(hist.rows))[1]
                d, t = key, rnd.choice(list(hist.rows[("driver_hourly", key)]))[0] // 1000
            rows.append((d, t))
        got = self.join(self.features("driver_hourly:avg_daily_trips",
                                      "driver_hourly:conv_rate"), rows)
        found = 0
        for (d, t), g in zip(rows, got):
            want = hist.asof("driver_hourly", d, t * 1000, ttl_us=86400 * 2 * 10 ** 6)
            self.assertEqual([g[0], None if g[1] is None else f32(g[1])],
                             want[1] if want else [None, None], (d, t))
            found += want is not None
        self.assertGreater(found, len(rows) // 2)  # most times fall inside the table


class TestBigJoins(JoinBase):
    """Joins of more than INLINE_MAX rows run on a worker with the client parked."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        c = cls.r.execute_command
        c("FS.ENTITY.CREATE", "user", "TYPE", "STRING")
        c("FS.ENTITY.CREATE", "item", "TYPE", "INT64")
        c("FS.VIEW.CREATE", "u", "ENTITIES", 1, "user", "TTL", 50, "SCHEMA",
          "n", "INT64", "w", "FLOAT64", "s", "STRING")
        c("FS.VIEW.CREATE", "ui", "ENTITIES", 2, "user", "item", "SCHEMA", "k", "INT32")
        c("FS.VIEW.CREATE", "wide", "ENTITIES", 1, "user", "SCHEMA", "blob", "BYTES")
        rnd = random.Random(11)
        cls.hist = History()
        pushes = []
        created = 0
        for _ in range(6000):
            user = "u%d" % rnd.randint(0, 299)
            e = rnd.randint(0, 200) * 1000  # ms; many equal event times
            created += 1
            vals = [rnd.randint(-5, 5), None if rnd.random() < 0.1 else rnd.randint(0, 99) / 4,
                    "s%d" % rnd.randint(0, 9)]
            fields = ["n", vals[0], "s", vals[2]] + ([] if vals[1] is None else ["w", vals[1]])
            pushes.append(["u", user, e, "CREATED", created, "FIELDS"] + fields)
            cls.hist.push("u", (user,), e * 1000, created * 1000, vals)
        for _ in range(3000):
            user, item = "u%d" % rnd.randint(0, 299), rnd.randint(0, 9)
            e = rnd.randint(0, 200) * 1000
            created += 1
            pushes.append(["ui", "%s:%d" % (user, item), e, "CREATED", created,
                           "FIELDS", "k", item * 100 + e // 1000])
            cls.hist.push("ui", (user, str(item)), e * 1000, created * 1000, item * 100 + e // 1000)
        blob = b"x" * 1000
        for i in range(300):
            pushes.append(["wide", "u%d" % i, 0, "FIELDS", "blob", blob])
        rnd.shuffle(pushes)
        push_many(cls.r, pushes)
        cls.rows = [("u%d" % rnd.randint(0, 310), str(rnd.randint(0, 10)),
                     rnd.randint(-5, 210) * 1000 + rnd.choice((0, 0, 1, -1, 500)))
                    for _ in range(3 * INLINE_MAX)]
        cls.feats = ["FEATURES", 5, "ui:k", "u:n", "u:w", "u:s", "ui:k"]

    def expected(self, rows):
        out = []
        for user, item, t in rows:
            u = self.hist.asof("u", (user,), t * 1000, ttl_us=50 * 10 ** 6)
            ui = self.hist.asof("ui", (user, item), t * 1000)
            uv = u[1] if u else [None, None, None]
            k = ui[1] if ui else None
            out.append([k, uv[0], uv[1], None if uv[2] is None else uv[2].encode(), k])
        return out

    def decode(self, got):
        return [[r[0], r[1], f(r[2]), r[3], r[4]] for r in got]

    def test_big_join_matches_small_joins_and_oracle(self):
        big = self.decode(self.join(self.feats, self.rows))
        small = []
        for i in range(0, len(self.rows), 500):
            small += self.decode(self.join(self.feats, self.rows[i:i + 500]))
        self.assertEqual(big, small)
        self.assertEqual(big, self.expected(self.rows))

    def test_big_join_inside_exec_runs_inline_with_the_same_answer(self):
        p = self.r.pipeline(transaction=True)
        p.execute_command("PING")
        p.execute_command("FS.JOIN", *(self.feats + ["ROWS", len(self.rows)] +
                                       [v for row in self.rows for v in row]))
        p.execute_command("ECHO", "after")
        res = p.execute()
        self.assertEqual(res[0], True)
        self.assertEqual(self.decode(res[1]), self.expected(self.rows))
        self.assertEqual(res[2], b"after")

    def test_big_join_withmeta_and_resp3(self):
        raw = Conn(self.server)
        self.addCleanup(raw.close)
        raw.command("HELLO", 3)
        args = ["FS.JOIN", "FEATURES", 2, "u:w", "ui:k", "ROWS", len(self.rows)]
        for row in self.rows:
            args += list(row)
        got = raw.command(*(args + ["WITHMETA"]))
        self.assertEqual(len(got), len(self.rows))
        for (user, item, t), g in zip(self.rows, got):
            u = self.hist.asof("u", (user,), t * 1000, ttl_us=50 * 10 ** 6)
            ui = self.hist.asof("ui", (user, item), t * 1000)
            if u is None:
                self.assertEqual(g[0], [None, None, b"NOT_FOUND"])
            else:
                status = b"NULL_VALUE" if u[1][1] is None else b"PRESENT"
                self.assertEqual(g[0], [u[1][1], u[0][0] // 1000, status])
            if ui is None:
                self.assertEqual(g[1], [None, None, b"NOT_FOUND"])
            else:
                self.assertEqual(g[1], [ui[1], ui[0][0] // 1000, b"PRESENT"])

    def test_pipelined_commands_after_a_big_join_come_back_in_order(self):
        raw = Conn(self.server)
        self.addCleanup(raw.close)
        args = list(self.feats) + ["ROWS", len(self.rows)] + [v for r in self.rows for v in r]
        small = list(self.feats) + ["ROWS", 2] + list(self.rows[0]) + list(self.rows[1])
        raw.send(("SET", "pk", "1"), ["FS.JOIN"] + args, ("INCR", "pk"), ["FS.JOIN"] + args,
                 ["FS.JOIN"] + small, ("GET", "pk"), ("ECHO", "end"))
        self.assertEqual(raw.read(), b"OK")
        want = self.expected(self.rows)
        self.assertEqual(self.decode(raw.read()), want)
        self.assertEqual(raw.read(), 2)
        self.assertEqual(self.decode(raw.read()), want)
        self.assertEqual(self.decode(raw.read()), want[:2])
        self.assertEqual(raw.read(), b"2")
        self.assertEqual(raw.read(), b"end")

    WIDE_ROWS = 20000

    def wide_join(self):
        """A join whose reply (20 MB) is far more than the socket buffers and the join's
        unsent allowance: it cannot finish while its client (small rcvbuf) does not read."""
        return ["FS.JOIN", "FEATURES", 1, "wide:blob", "ROWS", self.WIDE_ROWS] + \
            [v for i in range(self.WIDE_ROWS) for v in ("u%d" % (i % 300), 0)]

    def parked(self, client_id, r=None):
        """True/False: the client is (not) parked; None: it is gone."""
        for line in (r or self.r).execute_command("CLIENT", "LIST").decode().splitlines():
            fields = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
            if fields["id"] == str(client_id):
                return "b" in fields["flags"]
        return None

    def wait_for(self, pred, what):
        deadline = time.time() + 30
        while time.time() < deadline:
            if pred():
                return
            time.sleep(0.02)
        self.fail("timed out waiting for " + what)

    def start_wide_join(self, server, r=None):
        a = Conn(server, rcvbuf=65536)
        a_id = a.command("CLIENT", "ID")
        a.send(self.wide_join(), ("ECHO", "a-after"))
        # a reads nothing yet: its join stays parked, held back by the unsent output
        self.wait_for(lambda: self.parked(a_id, r), "the join to park its client")
        return a, a_id

    def test_other_clients_are_served_while_a_join_is_parked(self):
        a, a_id = self.start_wide_join(self.server)
        self.addCleanup(a.close)
        b = Conn(self.server)
        self.addCleanup(b.close)
        self.assertEqual(b.command("PING"), b"PONG")
        self.assertEqual(b.command("FS.JOIN", "FEATURES", 1, "u:n", "ROWS", 1, "u1", 10 ** 9),
                         [[None]])
        want = self.expected(self.rows[:3])
        got = b.command("FS.JOIN", *(self.feats + ["ROWS", 3] +
                                     [v for r in self.rows[:3] for v in r]))
        self.assertEqual(self.decode(got), want)
        self.assertTrue(self.parked(a_id))  # still parked: b was answered first
        got = a.read()
        self.assertEqual(len(got), self.WIDE_ROWS)
        self.assertTrue(all(g == [b"x" * 1000] for g in got))
        self.assertEqual(a.read(), b"a-after")
        self.assertFalse(self.parked(a_id))

    def test_client_that_disconnects_mid_join(self):
        for _ in range(3):
            a, a_id = self.start_wide_join(self.server)
            a.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            a.close()  # a reset, with the reply unread
            self.wait_for(lambda: self.parked(a_id) is None, "the server to drop the client")
        self.assertEqual(self.cmd("PING"), True)
        self.assertEqual(self.decode(self.join(self.feats, self.rows)), self.expected(self.rows))

    def test_shutdown_during_a_parked_join_is_clean(self):
        with harness.Server(durability="no") as s:
            r = s.client()
            self.addCleanup(r.close)
            r.execute_command("FS.ENTITY.CREATE", "user", "TYPE", "STRING")
            r.execute_command("FS.VIEW.CREATE", "wide", "ENTITIES", 1, "user", "SCHEMA",
                              "blob", "BYTES")
            push_many(r, [["wide", "u%d" % i, 0, "FIELDS", "blob", b"x" * 1000]
                          for i in range(300)])
            a, _ = self.start_wide_join(s, r)
            self.addCleanup(a.close)
            proc = s.proc
            s.stop()
            self.assertEqual(proc.returncode, 0, s.read_log())


class TestUnevenHistories(JoinBase):
    """The walk steps to older rows or seeks, guessing from how dense the rows it has
    stepped over were: histories whose density changes (a dense burst then sparse rows,
    bursts between long gaps, rows that all share one event time) and request times at,
    between, before and after the rows must still give the oracle's answers, inline and
    on a worker."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        c = cls.r.execute_command
        c("FS.ENTITY.CREATE", "acct", "TYPE", "INT64")
        c("FS.VIEW.CREATE", "d", "ENTITIES", 1, "acct", "SCHEMA", "x", "INT64")
        rnd = random.Random(5)
        times = {
            0: list(range(0, 2000)) + list(range(2000, 2000 + 60 * 100000, 100000)),
            1: [b * 1000000 + i for b in range(8) for i in range(0, 300, 3)],
            2: [500] * 40,
            3: [123456],
            4: sorted(rnd.sample(range(10 ** 7), 400)),
        }
        cls.hist = History()
        pushes, created = [], 0
        for acct, ts in times.items():
            for e in ts:
                created += 1
                pushes.append(["d", acct, e, "CREATED", created, "FIELDS", "x", created])
                cls.hist.push("d", (str(acct),), e * 1000, created * 1000, created)
        rnd.shuffle(pushes)
        push_many(cls.r, pushes)
        cls.rows = []
        for acct, ts in times.items():
            lo, hi = ts[0], ts[-1]
            picks = [rnd.choice(ts) + rnd.choice((-1, 0, 0, 1)) for _ in range(300)]
            picks += [rnd.randint(lo - 10, hi + 10) for _ in range(300)]
            cls.rows += [(str(acct), t) for t in picks + [lo - 1, hi + 1]]
        cls.rows += [("9", 5)]  # an entity with no rows
        rnd.shuffle(cls.rows)

    def test_uneven_histories_match_the_oracle(self):
        want = []
        for acct, t in self.rows:
            best = self.hist.asof("d", (acct,), t * 1000)
            want.append([best[1] if best else None])
        self.assertGreater(len(self.rows), INLINE_MAX)
        self.assertEqual(self.join(["FEATURES", 1, "d:x"], self.rows), want)
        small = []
        for i in range(0, len(self.rows), 700):
            small += self.join(["FEATURES", 1, "d:x"], self.rows[i:i + 700])
        self.assertEqual(small, want)


if __name__ == "__main__":
    unittest.main()
