"""The feature store end to end (DESIGN.md "Feature store"), against an independent oracle.

- Point in time: seeded random histories over three views (out-of-order pushes, equal event
  times with different created times, identical (event, created) pairs, TTL edges exactly at
  t - TTL, entities with no rows, NULL fields, INT64/FLOAT64/STRING/BOOL, every timestamp
  form a client may send) are pushed, and FS.JOIN, FS.ASOF, FS.GET, FS.MGET and FS.HISTORY
  must agree exactly with fs_oracle (pandas merge_asof), in RESP2 and RESP3.
- Feast's own small test tables (transactions, bookings, customer/driver pairs) joined as
  Feast does it.
- SIGKILL under `durability always`: catalog, history and online rows survive; retention
  (FS.VIEW.COMPACT) and FS.MATERIALIZE as specified.
- Bad input: every malformed command gets an error naming the argument and changes nothing.

Set FS_SEEDS=1,2,3 to choose the random histories (default: three fixed seeds)."""
import datetime
import os
import random
import threading
import time
import unittest

import redis

import fs_oracle as O
from harness import RawClient, Server

# The command table's arity check answers too-short commands, before the handler can name
# what is missing (Redis's own wording).
ARITY = "wrong number of arguments"
OWN_PROCESS = unittest.skipIf(os.environ.get("TEST_SERVER"), "kills and restarts its server")
SEEDS = [int(s) for s in os.environ.get("FS_SEEDS", "20240601,7,99").split(",")]
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data",
                    "featurestore")
US = 1_000_000
DAY = 86400


def unique_prefix():
    return "t%06x_" % random.SystemRandom().getrandbits(24)


# ---- what goes on the wire ----------------------------------------------------------------

def fmt_ts(rng, us):
    """us as one of the forms a client may send: epoch ms, ISO-8601 with 'Z' and 6 or 9
    fraction digits (the extra 3 are truncated), with a +hh:mm offset, or without a zone."""
    dt = datetime.datetime.fromtimestamp(us // US, tz=datetime.timezone.utc)
    frac = us % US
    pick = rng.random()
    if us % 1000 == 0 and pick < 0.25:
        return str(us // 1000)
    if frac == 0 and pick < 0.35:
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if pick < 0.55:
        return dt.strftime("%Y-%m-%dT%H:%M:%S") + ".%06dZ" % frac
    if pick < 0.7:
        return dt.strftime("%Y-%m-%dT%H:%M:%S") + ".%06d%03dZ" % (frac, rng.randint(0, 999))
    if pick < 0.85:
        minutes = rng.choice([120, -330, 60, -600])
        local = dt + datetime.timedelta(minutes=minutes)
        sign = "+" if minutes >= 0 else "-"
        return local.strftime("%Y-%m-%dT%H:%M:%S") + ".%06d%s%02d:%02d" % (
            frac, sign, abs(minutes) // 60, abs(minutes) % 60)
    return dt.strftime("%Y-%m-%d %H:%M:%S") + ".%06d" % frac


def gen_value(rng, typ):
    """(text sent, value expected back) for one field of type typ."""
    if typ == "INT64":
        v = rng.choice([rng.randint(-1000, 1000), rng.randint(-2**63, 2**63 - 1), 2**63 - 1, -2**63, 0])
        return str(v), v
    if typ == "FLOAT64":
        v = rng.choice([rng.uniform(-1e6, 1e6), rng.random(), float(rng.randint(-50, 50)),
                        rng.random() * 1e-300, 1.7976931348623157e308, 0.1, -2.5e-8])
        return repr(v), v
    if typ == "BOOL":
        v = rng.randint(0, 1)
        return rng.choice([["0", "false"], ["1", "true"]][v]), v
    if typ == "STRING":
        v = rng.choice(["", "a", "with space", "colon:inside", "back\\slash", "\u00fcn\u00efcode",
                        "x" * rng.randint(1, 300), "\r\n*3\r\n", "nil"])
        return v, v.encode()
    raise ValueError(typ)


def decode(typ, v, resp3=False):
    """A served value as the oracle holds it; raises AssertionError on a wrong reply type."""
    if v is None:
        return None
    if typ in ("INT64", "INT32", "BOOL"):
        if not isinstance(v, int) or isinstance(v, bool):
            raise AssertionError("%s served as %r, not an integer" % (typ, v))
        return v
    if typ in ("FLOAT64", "FLOAT32"):
        want = float if resp3 else bytes
        if not isinstance(v, want):
            raise AssertionError("%s served as %r, not a %s" % (typ, v, want.__name__))
        return float(v)
    if not isinstance(v, bytes):
        raise AssertionError("%s served as %r, not a bulk string" % (typ, v))
    return v


def text(v):
    return v.decode() if isinstance(v, bytes) else v


def err_of(fn):
    try:
        fn()
    except redis.ResponseError as e:
        return str(e)
    return None


# ---- the catalog a test builds ------------------------------------------------------------

def create_entity(r, name, typ):
    r.execute_command("FS.ENTITY.CREATE", name, "TYPE", typ)


def create_view(r, view, ttl=0, retention=None, online=None):
    args = ["FS.VIEW.CREATE", view.name, "ENTITIES", len(view.entities)] + view.entities
    args += ["TTL", ttl] if ttl else []
    args += ["RETENTION", retention] if retention else []
    args += ["ONLINE", online] if online else []
    args += ["SCHEMA"]
    for f, t in view.fields:
        args += [f, t]
    r.execute_command(*args)


def key_arg(parts):
    """The composite entity-key argument: values joined by ':', with ':' and '\\' escaped."""
    return ":".join(p.replace("\\", "\\\\").replace(":", "\\:") for p in parts)


def push_args(view, key, event, values, created=None, target=None):
    args = ["FS.PUSH", view, key_arg(key), event]
    if created is not None:
        args += ["CREATED", created]
    if target is not None:
        args += ["TO", target]
    args += ["FIELDS"]
    for f, v in values:
        args += [f, v]
    return args


# ---- comparing replies with the oracle ----------------------------------------------------

class Mismatches:
    """Collects differences and fails with the first few, each with its request."""

    def __init__(self, what):
        self.what, self.items, self.checked = what, [], 0

    def add(self, where, got, want):
        self.items.append("%s: got %r, want %r" % (where, got, want))

    def value(self, where, typ, got, want, resp3=False):
        self.checked += 1
        try:
            g = decode(typ, got, resp3)
        except AssertionError as e:
            self.items.append("%s: %s" % (where, e))
            return
        if g != want:
            self.add(where, got, want)

    def meta(self, where, typ, got, match_event, want, online_status=None, resp3=False):
        """got = [value, event_ms, status]. For point-in-time answers (online_status None)
        a missing row is NOT_FOUND (OUTSIDE_MAX_AGE accepted) with a nil value."""
        self.checked += 1
        if not isinstance(got, list) or len(got) != 3:
            self.add(where, got, "[value, event_ms, status]")
            return
        value, ev, status = got[0], got[1], text(got[2])
        try:
            value = decode(typ, value, resp3)
        except AssertionError as e:
            self.items.append("%s: %s" % (where, e))
            return
        if online_status == O.OUTSIDE_MAX_AGE:
            if value is not None or status != O.OUTSIDE_MAX_AGE:
                self.add(where, got, [None, "*", O.OUTSIDE_MAX_AGE])
            return
        if match_event is None:
            if value is not None or status not in (O.NOT_FOUND, O.OUTSIDE_MAX_AGE):
                self.add(where, got, [None, "*", O.NOT_FOUND])
            return
        want_status = O.NULL_VALUE if want is None else O.PRESENT
        if value != want or ev != O.epoch_ms(match_event) or status != want_status:
            self.add(where, got, [want, O.epoch_ms(match_event), want_status])

    def check(self, test):
        test.assertGreater(self.checked, 0, self.what + ": nothing compared")
        if self.items:
            test.fail("%s: %d of %d values differ from the oracle; first ones:\n  %s" % (
                self.what, len(self.items), self.checked, "\n  ".join(self.items[:12])))


# ---- a random world ------------------------------------------------------------------------

class World:
    """Three views over two entities, a random history pushed out of order, and request rows
    aimed at its edges. Every choice comes from random.Random(seed)."""

    TTL_EDGE_GUARD = 15 * 60 * US  # no event this close to now - TTL (FS.GET's edge moves)

    def __init__(self, seed, prefix, now_us):
        self.rng = rng = random.Random(seed)
        self.prefix, self.now_us = prefix, now_us
        self.cust_e, self.drv_e = prefix + "cust", prefix + "drv"
        self.custs = ["1", "2", "3", "17", "42", "-7", "0", "1001", str(2**63 - 1), str(-2**63), "555", "77"]
        self.drvs = ["d%02d" % i for i in range(10)]
        self.views = {
            "a": O.View(prefix + "a", [self.cust_e],
                        [("n", "INT64"), ("x", "FLOAT64"), ("s", "STRING"), ("b", "BOOL")], ttl=0),
            "b": O.View(prefix + "b", [self.drv_e],
                        [("x", "FLOAT64"), ("n", "INT64"), ("s", "STRING")], ttl=DAY),
            "c": O.View(prefix + "c", [self.cust_e, self.drv_e],
                        [("b", "BOOL"), ("s", "STRING"), ("x", "FLOAT64"), ("n", "INT64")], ttl=7200),
        }
        self.log = O.PushLog()
        self.pushes = []  # (args, view, key, event, values, created, target) in push order
        self.offline = {k: [] for k in self.views}  # (key, event_us) of rows pushed to history
        for name, view in self.views.items():
            self.gen_history(name, view)
        rng.shuffle(self.pushes)

    def rand_event(self, view):
        rng = self.rng
        while True:
            pick = rng.random()
            if pick < 0.2:  # recent enough to be inside the TTL online
                us = self.now_us - rng.randint(600 * US, 2 * max(view.ttl, 3600) * US)
            elif pick < 0.6:
                us = self.now_us - rng.randint(3600 * US, 3 * DAY * US)
            else:
                us = self.now_us - rng.randint(3600 * US, 10 * DAY * US)
            pick = rng.random()
            if pick < 0.2:
                us -= us % 1000
            elif pick < 0.3:
                us -= us % US
            if view.ttl == 0 or abs(us - (self.now_us - view.ttl * US)) > self.TTL_EDGE_GUARD:
                return us

    def keys_of(self, name):
        rng = self.rng
        if name == "a":
            return [(c,) for c in rng.sample(self.custs, 9)]
        if name == "b":
            return [(d,) for d in rng.sample(self.drvs, 7)]
        pairs = [(c, d) for c in self.custs for d in self.drvs]
        return rng.sample(pairs, 18)

    def gen_history(self, name, view):
        rng = self.rng
        for key in self.keys_of(name):
            events = []           # event us of this key
            created_of = {}       # event us -> explicit created us used
            omitted = set()       # events pushed without CREATED
            for _ in range(rng.randint(1, 10)):
                if events and rng.random() < 0.3:
                    ev = rng.choice(events)            # equal event times
                else:
                    ev = self.rand_event(view)
                    events.append(ev)
                pick = rng.random()
                if ev in created_of and pick < 0.25:
                    cr = rng.choice(created_of[ev])    # identical (event, created): last wins
                elif ev not in omitted and pick < 0.35:
                    cr = None                          # the server's clock
                    omitted.add(ev)
                else:
                    cr = min(ev + rng.randint(-DAY * US, DAY * US), self.now_us - 3600 * US)
                    created_of.setdefault(ev, []).append(cr)
                fields = [f for f in view.fields if rng.random() < 0.7] or [rng.choice(view.fields)]
                rng.shuffle(fields)
                sent = [(f, gen_value(rng, t)) for f, t in fields]
                target = rng.choice([None] * 7 + ["BOTH", "ONLINE", "OFFLINE"])
                ev_s = fmt_ts(rng, ev)
                cr_s = fmt_ts(rng, cr) if cr is not None else None
                args = push_args(view.name, key, ev_s, [(f, s) for f, (s, _) in sent], cr_s, target)
                self.pushes.append((args, view.name, key, ev_s, {f: v for f, (_, v) in sent}, cr_s,
                                    target or "BOTH"))
                if target != "ONLINE":
                    self.offline[name].append((key, ev))

    def push_all(self, test, r):
        """Pushes everything in the shuffled order, pipelined in chunks; the oracle records
        each push as it is sent (a push without CREATED gets the local clock)."""
        for i in range(0, len(self.pushes), 64):
            chunk = self.pushes[i:i + 64]
            p = r.pipeline(transaction=False)
            for args, view, key, ev, values, cr, target in chunk:
                self.log.push(view, key, ev, values, created=cr, target=target)
                p.execute_command(*args)
            for (args, *_), rep in zip(chunk, p.execute(raise_on_error=False)):
                test.assertNotIsInstance(rep, Exception, "push %r failed: %s" % (args, rep))

    def requests(self, n_random):
        """Request rows {cust, drv, t}: random ones (keys that have no rows included), the
        exact event times of history rows, and each TTL edge: t - TTL exactly on an event
        (included), 1 us past it (excluded), 1 us before it (included)."""
        rng = self.rng
        custs, drvs = self.custs + ["31337"], self.drvs + ["dzz"]
        lo, hi = self.now_us - 11 * DAY * US, self.now_us + DAY * US
        rows = [{"cust": rng.choice(custs), "drv": rng.choice(drvs), "t": rng.randint(lo, hi)}
                for _ in range(n_random)]
        for name, view in self.views.items():
            for key, ev in rng.sample(self.offline[name], min(40, len(self.offline[name]))):
                row = {"cust": rng.choice(custs), "drv": rng.choice(drvs)}
                row.update(dict(zip([e[len(self.prefix):] for e in view.entities], key)))
                times = [ev]
                if view.ttl:
                    edge = ev + view.ttl * US
                    times += [edge, edge + 1, edge - 1]
                rows += [dict(row, t=t) for t in times]
        rng.shuffle(rows)
        for row in rows:
            row["ts"] = fmt_ts(rng, row["t"])
        return rows

    def key_of(self, view, row):
        return tuple(row[e[len(self.prefix):]] for e in view.entities)


class PointInTime(unittest.TestCase):
    """Random histories: every read path against the pandas oracle."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.server.__enter__()
        cls.r = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def world(self, seed):
        w = World(seed, unique_prefix(), time.time_ns() // 1000)
        create_entity(self.r, w.cust_e, "INT64")
        create_entity(self.r, w.drv_e, "STRING")
        for v in w.views.values():
            create_view(self.r, v, ttl=v.ttl)
        w.push_all(self, self.r)
        return w

    def join_args(self, w, feats, order, rows, withmeta):
        args = ["FS.JOIN", "FEATURES", len(feats)] + ["%s:%s" % (v.name, f) for v, f, _ in feats]
        args += ["ROWS", len(rows)]
        for row in rows:
            args += [row[e] for e in order] + [row["ts"]]
        return args + (["WITHMETA"] if withmeta else [])

    def check_join(self, w, feats, order, rows, withmeta, client=None, resp3=False):
        """feats: [(view, field, type)]; order: the entity of each key column of a row."""
        args = self.join_args(w, feats, order, rows, withmeta)
        if client is None:
            reply = self.r.execute_command(*args)
        else:
            reply = client.command(*args)
        self.assertIsInstance(reply, list, "FS.JOIN replied %r" % (reply,))
        self.assertEqual(len(reply), len(rows), "FS.JOIN: one reply per request row")
        expect = {}
        for v in {id(v): v for v, _, _ in feats}.values():
            expect[v.name] = O.oracle_pit(w.log, v, [(w.key_of(v, row), row["ts"]) for row in rows])
        m = Mismatches("FS.JOIN %d rows%s%s" % (len(rows), " WITHMETA" if withmeta else "",
                                               " RESP3" if resp3 else ""))
        for i, (row, got) in enumerate(zip(rows, reply)):
            if not isinstance(got, list) or len(got) != len(feats):
                m.add("row %d %r" % (i, row), got, "%d values" % len(feats))
                continue
            for (v, f, typ), g in zip(feats, got):
                match = expect[v.name][i]
                where = "row %d (%s at %s) %s:%s" % (i, w.key_of(v, row), row["ts"], v.name, f)
                if withmeta:
                    m.meta(where, typ, g, match.event, match.values[f], resp3=resp3)
                else:
                    m.value(where, typ, g, match.values[f], resp3)
        m.check(self)

    def all_features(self, w, names):
        return [(w.views[n], f, t) for n in names for f, t in w.views[n].fields]

    def test_join_matches_oracle(self):
        for seed in SEEDS:
            with self.subTest(seed=seed):
                w = self.world(seed)
                rows = w.requests(150)
                feats = self.all_features(w, "abc")
                self.check_join(w, feats, ["cust", "drv"], rows, withmeta=False)
                self.check_join(w, feats, ["cust", "drv"], rows, withmeta=True)
                # Feature order decides the entity order of a row: b first puts drv first.
                mixed = [(w.views["b"], "x", "FLOAT64"), (w.views["c"], "s", "STRING"),
                         (w.views["a"], "n", "INT64"), (w.views["c"], "b", "BOOL")]
                self.check_join(w, mixed, ["drv", "cust"], rows, withmeta=True)
                self.check_join(w, self.all_features(w, "b"), ["drv"], rows, withmeta=True)

    def test_large_join_matches_oracle(self):
        """Tens of thousands of rows: the worker-thread, streamed path of FS.JOIN."""
        w = self.world(SEEDS[0] + 1)
        rows = w.requests(25000)
        self.check_join(w, self.all_features(w, "abc"), ["cust", "drv"], rows, withmeta=True)

    def test_join_resp3(self):
        w = self.world(SEEDS[0] + 2)
        rows = w.requests(60)
        c = RawClient(self.server.host, self.server.port)
        try:
            self.assertIsInstance(c.command("HELLO", "3"), dict)
            self.check_join(w, self.all_features(w, "abc"), ["cust", "drv"], rows, False, c, True)
            self.check_join(w, self.all_features(w, "abc"), ["cust", "drv"], rows, True, c, True)
        finally:
            c.close()

    def test_asof_matches_oracle(self):
        for seed in SEEDS:
            with self.subTest(seed=seed):
                w = self.world(seed)
                rows = w.requests(60)
                for name, v in w.views.items():
                    reqs = [(w.key_of(v, row), row["ts"]) for row in rows]
                    want = O.oracle_pit(w.log, v, reqs)
                    p = self.r.pipeline(transaction=False)
                    for key, ts in reqs:
                        p.execute_command("FS.ASOF", v.name, key_arg(key), ts)
                        p.execute_command("FS.ASOF", v.name, key_arg(key), ts, "WITHMETA")
                        p.execute_command("FS.ASOF", v.name, key_arg(key), ts, "FEATURES", 2,
                                          v.fields[-1][0], v.fields[0][0])
                    got = p.execute(raise_on_error=False)
                    m = Mismatches("FS.ASOF on view %s" % name)
                    for i, ((key, ts), match) in enumerate(zip(reqs, want)):
                        plain, meta, sub = got[3 * i:3 * i + 3]
                        where = "%s at %s" % (key, ts)
                        if not isinstance(plain, list) or not isinstance(meta, list) or not isinstance(sub, list):
                            m.add(where, (plain, meta, sub), "three arrays")
                            continue
                        for (f, typ), g, gm in zip(v.fields, plain, meta):
                            m.value(where + " " + f, typ, g, match.values[f])
                            m.meta(where + " " + f + " WITHMETA", typ, gm, match.event, match.values[f])
                        for (f, typ), g in zip([v.fields[-1], v.fields[0]], sub):
                            m.value(where + " FEATURES " + f, typ, g, match.values[f])
                    m.check(self)

    def test_online_matches_oracle(self):
        """FS.GET / FS.MGET: newest (event, created) per entity among pushes that went online,
        NULL with OUTSIDE_MAX_AGE once older than TTL relative to now."""
        for seed in SEEDS:
            with self.subTest(seed=seed):
                w = self.world(seed)
                for name, v in w.views.items():
                    online = O.oracle_online(w.log, v)
                    keys = sorted({w.key_of(v, {"cust": c, "drv": d})
                                   for c in w.custs + ["31337"] for d in w.drvs + ["dzz"]})
                    p = self.r.pipeline(transaction=False)
                    for key in keys:
                        p.execute_command("FS.GET", v.name, key_arg(key), "WITHMETA")
                        p.execute_command("FS.GET", v.name, key_arg(key))
                    got = p.execute(raise_on_error=False)
                    m = Mismatches("FS.GET on view %s" % name)
                    for i, key in enumerate(keys):
                        self.compare_online(m, v, key, online.get(key), got[2 * i], got[2 * i + 1])
                    m.check(self)
                    # FS.MGET: the same answers for all keys at once, in the caller's order.
                    args = ["FS.MGET", "FEATURES", len(v.fields)] + ["%s:%s" % (v.name, f) for f, _ in v.fields]
                    args += ["ROWS", len(keys)] + [k for key in keys for k in key] + ["WITHMETA"]
                    got = self.r.execute_command(*args)
                    self.assertEqual(len(got), len(keys))
                    m = Mismatches("FS.MGET on view %s" % name)
                    for key, g in zip(keys, got):
                        self.compare_online(m, v, key, online.get(key), g, None)
                    m.check(self)

    def compare_online(self, m, v, key, entry, meta, plain):
        where = "%s %s" % (v.name, key)
        if not isinstance(meta, list) or len(meta) != len(v.fields):
            m.add(where, meta, "%d [value, event, status]" % len(v.fields))
            return
        for i, ((f, typ), gm) in enumerate(zip(v.fields, meta)):
            if entry is None:
                m.checked += 1
                if not isinstance(gm, list) or len(gm) != 3 or gm[0] is not None or text(gm[2]) != O.NOT_FOUND:
                    m.add(where + " " + f, gm, [None, None, O.NOT_FOUND])
                want_plain = None
            else:
                match, status = entry
                m.meta(where + " " + f, typ, gm, match.event, match.values[f], online_status=status)
                want_plain = None if status == O.OUTSIDE_MAX_AGE else match.values[f]
            if plain is not None:
                if not isinstance(plain, list) or len(plain) != len(v.fields):
                    m.add(where + " plain", plain, "%d values" % len(v.fields))
                else:
                    m.value(where + " " + f + " plain", typ, plain[i], want_plain)

    def test_history_matches_oracle(self):
        """FS.HISTORY: one row per distinct (event, created), the last push of equal ones,
        oldest first (DESC: newest first), FROM/TO inclusive, COUNT from the start."""
        w = self.world(SEEDS[0] + 3)
        rng = random.Random(SEEDS[0])
        for name, v in w.views.items():
            keys = sorted({key for key, _ in w.offline[name]})
            m = Mismatches("FS.HISTORY on view %s" % name)
            for key in keys:
                newest_first = O.oracle_history(w.log, v, key)
                lo = rng.randint(w.now_us - 11 * DAY * US, w.now_us)
                hi = rng.randint(lo, w.now_us)
                lo_s, hi_s = fmt_ts(rng, lo), fmt_ts(rng, hi)
                window = [row for row in newest_first if O.parse_ts(lo_s) <= row[0] <= O.parse_ts(hi_s)]
                count = rng.randint(0, 4)
                for args, want in (([], newest_first[::-1]), (["DESC"], newest_first),
                                   (["FROM", lo_s, "TO", hi_s], window[::-1]),
                                   (["TO", hi_s, "FROM", lo_s, "DESC", "COUNT", count], window[:count]),
                                   (["COUNT", count], newest_first[::-1][:count])):
                    self.compare_history(m, v, key, args, want)
            m.check(self)

    def compare_history(self, m, v, key, args, want):
        got = self.r.execute_command("FS.HISTORY", v.name, key_arg(key), *args)
        rows = parse_history(got, v)
        where = "%s %s" % (key, " ".join(map(str, args)))
        if rows is None or len(rows) != len(want):
            m.add(where, got, "%d rows" % len(want))
            return
        for (ev, cr, vals), (wev, wcr, wvals) in zip(rows, want):
            m.checked += 1
            want_cr = cr if wcr is None else O.epoch_ms(wcr)  # None: the server's clock
            if (ev, cr) != (O.epoch_ms(wev), want_cr):
                m.add(where + " event, created", (ev, cr), (O.epoch_ms(wev), want_cr))
            for f, typ in v.fields:
                m.value("%s %s at %s" % (where, f, wev), typ, vals.get(f), wvals[f])


def parse_history(reply, view):
    """FS.HISTORY's rows [event_ms, created_ms, [values in schema order]] as
    [(event_ms, created_ms, {field: raw value})], or None when the reply has another shape."""
    if not isinstance(reply, list):
        return None
    rows = []
    for row in reply:
        if not isinstance(row, list) or len(row) != 3 or not isinstance(row[2], list):
            return None
        ev, cr, vals = row
        if len(vals) != len(view.fields):
            return None
        rows.append((ev, cr, dict(zip(view.field_names(), vals))))
    return rows


class FeastTables(unittest.TestCase):
    """Feast's sdk test tables: transactions (customer_id) and bookings (driver_id) joined to
    customer_driver_pairs, the same two views with TTL 0 and with TTL 1 day.

    By hand (entity row: customer, driver, t -> daily_transactions, completed_bookings):
      transactions: 1001 has 08-31 (50.0) and 09-01 (100.0); 2001 has two rows at 09-01, created
      08-31 (80.0) and 09-01 (200.0): the later created wins, 200.0.
      bookings: 8001 has 08-31 (200) and 09-01 (300); 8002 has two rows at 09-01, created 09-01
      (600) and 09-02 (500): 500.
      TTL 0:
        1001 8001 09-02 -> 100.0, 300
        1001 8002 09-02 -> 100.0, 500
        1001 8002 09-03 -> 100.0, 500
        2001 8002 09-03 -> 200.0, 500
        2001 8002 09-04 -> 200.0, 500
      TTL 1 day (t - TTL inclusive): only rows at 09-01 for t = 09-02 qualify:
        1001 8001 09-02 -> 100.0, 300     (09-01 is exactly t - 1 day: included)
        1001 8002 09-02 -> 100.0, 500
        the three later rows -> NULL, NULL"""

    HAND = {0: [(100.0, 300), (100.0, 500), (100.0, 500), (200.0, 500), (200.0, 500)],
            DAY: [(100.0, 300), (100.0, 500), (None, None), (None, None), (None, None)]}

    def read_csv(self, name):
        import csv
        with open(os.path.join(DATA, "sdk_python_tests_data_%s.csv" % name), newline="") as f:
            return list(csv.DictReader(f))

    def test_feast_join(self):
        with Server() as s:
            r = s.client()
            p = unique_prefix()
            create_entity(r, p + "customer", "INT64")
            create_entity(r, p + "driver", "INT64")
            trans, book = self.read_csv("transactions"), self.read_csv("bookings")
            pairs = self.read_csv("customer_driver_pairs")
            self.assertEqual((len(trans), len(book), len(pairs)), (5, 5, 5))
            for ttl in (0, DAY):
                log = O.PushLog()
                tv = O.View("%strans%d" % (p, ttl), [p + "customer"], [("daily_transactions", "FLOAT64")], ttl)
                bv = O.View("%sbook%d" % (p, ttl), [p + "driver"], [("completed_bookings", "INT64")], ttl)
                create_view(r, tv, ttl=ttl)
                create_view(r, bv, ttl=ttl)
                for view, rows, ent, f, conv in ((tv, trans, "customer_id", "daily_transactions", float),
                                                 (bv, book, "driver_id", "completed_bookings", int)):
                    for row in rows:
                        r.execute_command(*push_args(view.name, [row[ent]], row["event_timestamp"],
                                                     [(f, row[f])], row["created_timestamp"]))
                        log.push(view.name, (row[ent],), row["event_timestamp"], {f: conv(row[f])},
                                 created=row["created_timestamp"])
                svc = "%ssvc%d" % (p, ttl)
                r.execute_command("FS.SERVICE.CREATE", svc, "FEATURES", 2,
                                  tv.name + ":daily_transactions", bv.name + ":completed_bookings")
                args = ["ROWS", len(pairs)]
                for row in pairs:
                    args += [row["customer_id"], row["driver_id"], row["event_timestamp"]]
                got = r.execute_command("FS.JOIN", svc, *args)
                want_t = O.oracle_pit(log, tv, [((row["customer_id"],), row["event_timestamp"]) for row in pairs])
                want_b = O.oracle_pit(log, bv, [((row["driver_id"],), row["event_timestamp"]) for row in pairs])
                oracle = [(a.values["daily_transactions"], b.values["completed_bookings"])
                          for a, b in zip(want_t, want_b)]
                self.assertEqual(oracle, self.HAND[ttl], "the oracle disagrees with the hand-worked rows")
                served = [(decode("FLOAT64", a), decode("INT64", b)) for a, b in got]
                self.assertEqual(served, self.HAND[ttl], "FS.JOIN %s (TTL %d)" % (svc, ttl))
                # The same through FEATURES, and FS.ASOF row by row.
                got2 = r.execute_command("FS.JOIN", "FEATURES", 2, tv.name + ":daily_transactions",
                                         bv.name + ":completed_bookings", *args)
                self.assertEqual(got2, got)
                for row, (wt, wb) in zip(pairs, self.HAND[ttl]):
                    a = r.execute_command("FS.ASOF", tv.name, row["customer_id"], row["event_timestamp"])
                    b = r.execute_command("FS.ASOF", bv.name, row["driver_id"], row["event_timestamp"])
                    self.assertEqual([decode("FLOAT64", a[0]), decode("INT64", b[0])], [wt, wb], row)


class EntityKeys(unittest.TestCase):
    def test_composite_keys_with_escapes(self):
        """Values holding ':' and '\\' in a composite key: pushed escaped, read back escaped
        with FS.GET, and unescaped (one argument per entity) in FS.JOIN and FS.MGET."""
        with Server() as s:
            r = s.client()
            p = unique_prefix()
            create_entity(r, p + "k1", "STRING")
            create_entity(r, p + "k2", "STRING")
            v = O.View(p + "v", [p + "k1", p + "k2"], [("n", "INT64")])
            create_view(r, v)
            keys = [("a:b", "c"), ("a", "b:c"), ("a\\", ":c"), ("a\\:b", "c"), ("", "x")]
            for i, key in enumerate(keys):
                r.execute_command(*push_args(v.name, key, 1000 + i, [("n", i)]))
            for i, key in enumerate(keys):
                self.assertEqual(r.execute_command("FS.GET", v.name, key_arg(key)), [i], key)
            rows = []
            for key in keys:
                rows += [key[0], key[1], 5000]
            got = r.execute_command("FS.JOIN", "FEATURES", 1, v.name + ":n", "ROWS", len(keys), *rows)
            self.assertEqual(got, [[i] for i in range(len(keys))])
            got = r.execute_command("FS.MGET", "FEATURES", 1, v.name + ":n", "ROWS", len(keys),
                                    *[k for key in keys for k in key])
            self.assertEqual(got, [[i] for i in range(len(keys))])
            # an unescaped ':' makes three parts for two entities: an error, nothing written
            before = r.execute_command("FS.VIEW.INFO", v.name)
            e = err_of(lambda: r.execute_command("FS.PUSH", v.name, "a:b:c", 1, "FIELDS", "n", 1))
            self.assertIsNotNone(e)
            self.assertEqual(r.execute_command("FS.VIEW.INFO", v.name), before)


@OWN_PROCESS
class Restart(unittest.TestCase):
    def setUp(self):
        self.p = unique_prefix()

    def catalog(self, r, views):
        out = [r.execute_command("FS.ENTITY.LIST"), r.execute_command("FS.VIEW.LIST"),
               r.execute_command("FS.SERVICE.LIST")]
        return out + [r.execute_command("FS.VIEW.INFO", v) for v in views]

    def test_sigkill_keeps_catalog_history_online(self):
        p = self.p
        with Server(durability="always") as s:
            r = s.client()
            create_entity(r, p + "user", "INT64")
            create_entity(r, p + "item", "STRING")
            uv = O.View(p + "user_stats", [p + "user"], [("clicks", "INT64"), ("rate", "FLOAT64"),
                                                        ("name", "STRING"), ("vip", "BOOL")])
            iv = O.View(p + "item_stats", [p + "item"], [("price", "FLOAT64")])
            wv = O.View(p + "stream", [p + "user"], [("seq", "INT64")])
            create_view(r, uv, ttl=DAY * 365 * 100, retention=DAY * 365 * 100)
            create_view(r, iv, online="NO")
            create_view(r, wv)
            r.execute_command("FS.SERVICE.CREATE", p + "svc", "FEATURES", 2, uv.name + ":*", iv.name + ":price")
            now_ms = int(time.time() * 1000)
            for i in range(30):
                r.execute_command(*push_args(uv.name, [str(i % 5)], now_ms - 1000 * (30 - i),
                                             [("clicks", i), ("rate", i / 7), ("name", "u%d" % i)],
                                             target=["ONLINE", "OFFLINE", "BOTH"][i % 3]))
                r.execute_command(*push_args(iv.name, ["it%d" % (i % 4)], now_ms - 500 * i, [("price", i * 1.25)]))
            views = [uv.name, iv.name]
            reads = lambda: (  # noqa: E731
                [r.execute_command("FS.HISTORY", uv.name, str(k)) for k in range(6)]
                + [r.execute_command("FS.HISTORY", iv.name, "it%d" % k) for k in range(5)]
                + [r.execute_command("FS.GET", uv.name, str(k), "WITHMETA") for k in range(6)]
                + [r.execute_command("FS.JOIN", p + "svc", "ROWS", 3, 1, "it1", now_ms, 4, "it3", now_ms - 9000,
                                     9, "it0", now_ms)])
            before_cat, before = self.catalog(r, views), reads()

            writer = StreamWriter(s, wv.name)
            writer.start()
            deadline = time.time() + 10
            while writer.acked < 20 and time.time() < deadline and writer.error is None:
                time.sleep(0.01)
            s.kill()
            writer.join(10)
            self.assertIsNone(writer.error)
            self.assertGreaterEqual(writer.acked, 20, "the writer made no progress")
            s.start()
            r = s.client()
            self.assertEqual(self.catalog(r, views), before_cat)
            self.assertEqual(reads(), before)
            # every acknowledged push of the stream is in history, and nothing else; the
            # online row is the last acknowledged push or the one in flight
            hist = parse_history(r.execute_command("FS.HISTORY", wv.name, "1"), wv)
            seqs = sorted(vals["seq"] for _, _, vals in hist)
            self.assertIn(len(seqs), (writer.acked, writer.acked + 1))
            self.assertEqual(seqs, list(range(len(seqs))))
            online = r.execute_command("FS.GET", wv.name, "1")[0]
            self.assertIn(online, (writer.acked - 1, writer.acked))
            self.assertLessEqual(online, len(seqs) - 1)
            # still writable, and the catalog still checks its names
            r.execute_command(*push_args(wv.name, ["1"], 10**12, [("seq", 10**6)]))
            self.assertEqual(r.execute_command("FS.GET", wv.name, "1"), [10**6])
            self.assertIsNotNone(err_of(lambda: create_view(r, wv)))

    def retention_view(self, r):
        """A view with RETENTION 1 h: x has rows 3 h, 2 h and 30 min old; y one row 2 h old
        (online too); z one row 2 h old, offline only."""
        p = self.p
        create_entity(r, p + "e", "STRING")
        v = O.View(p + "ret", [p + "e"], [("n", "INT64")])
        create_view(r, v, retention=3600)
        now = int(time.time() * 1000)
        h = 3600 * 1000
        for ev, n in ((now - 3 * h, 1), (now - 2 * h, 2), (now - h // 2, 3)):
            r.execute_command(*push_args(v.name, ["x"], ev, [("n", n)]))
        r.execute_command(*push_args(v.name, ["y"], now - 2 * h, [("n", 7)]))
        r.execute_command(*push_args(v.name, ["z"], now - 2 * h, [("n", 9)], target="OFFLINE"))
        return v, now

    def check_retention_history(self, r, v, now, when):
        """FS.HISTORY shows only x's recent row; FS.MATERIALIZE finds nothing for z."""
        hist = parse_history(r.execute_command("FS.HISTORY", v.name, "x"), v)
        self.assertEqual([vals["n"] for _, _, vals in hist], [3], when)
        self.assertEqual(parse_history(r.execute_command("FS.HISTORY", v.name, "y"), v), [], when)
        r.execute_command("FS.MATERIALIZE", v.name, 0, now)
        self.assertEqual(r.execute_command("FS.GET", v.name, "z"), [None],
                         when + ": FS.MATERIALIZE used a row older than the retention")

    def test_retention(self):
        """History older than now - RETENTION is invisible to FS.ASOF and FS.JOIN at once
        and dropped by FS.VIEW.COMPACT; online rows are kept; the same after a restart."""
        with Server(durability="always") as s:
            r = s.client()
            v, now = self.retention_view(r)

            def check(when):
                self.assertEqual(r.execute_command("FS.ASOF", v.name, "x", now - 100 * 60 * 1000), [None], when)
                self.assertEqual(r.execute_command("FS.ASOF", v.name, "x", now), [3], when)
                self.assertEqual(r.execute_command("FS.JOIN", "FEATURES", 1, v.name + ":n", "ROWS", 2,
                                                   "x", now - 100 * 60 * 1000, "y", now), [[None], [None]], when)
                self.assertEqual(r.execute_command("FS.GET", v.name, "x"), [3], when)
                self.assertEqual(r.execute_command("FS.GET", v.name, "y"), [7], when + ": online rows are kept")

            check("before compaction")
            r.execute_command("FS.VIEW.COMPACT", v.name)
            check("after FS.VIEW.COMPACT")
            self.check_retention_history(r, v, now, "after FS.VIEW.COMPACT")
            s.kill()
            s.start()
            r = s.client()
            check("after restart")
            self.check_retention_history(r, v, now, "after restart")
            r.execute_command("FS.VIEW.COMPACT", v.name)
            check("after restart and compaction")

    def test_retention_before_compaction(self):
        """FS.HISTORY and FS.MATERIALIZE ignore rows older than now - RETENTION before any
        compaction, as FS.ASOF and FS.JOIN do."""
        with Server() as s:
            r = s.client()
            v, now = self.retention_view(r)
            self.check_retention_history(r, v, now, "before compaction")


class StreamWriter(threading.Thread):
    """Pushes seq 0, 1, 2, ... for entity 1 until the connection breaks; acked counts replies."""

    def __init__(self, server, view):
        super().__init__(daemon=True)
        self.server, self.view = server, view
        self.acked, self.error = 0, None

    def run(self):
        try:
            r = self.server.client()
            while True:
                r.execute_command(*push_args(self.view, ["1"], 1_000_000 + self.acked, [("seq", self.acked)]))
                self.acked += 1
        except (redis.ConnectionError, redis.TimeoutError, ConnectionError):
            pass
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e


class Materialize(unittest.TestCase):
    def test_materialize(self):
        """Per entity the newest history row in [start, end] (both inclusive, ties by created)
        becomes the online row, only where it is newer than the online row."""
        with Server() as s:
            r = s.client()
            p = unique_prefix()
            create_entity(r, p + "e", "STRING")
            v = O.View(p + "m", [p + "e"], [("n", "INT64"), ("s", "STRING")])
            create_view(r, v)
            log = O.PushLog()
            start, end = "2021-01-01T00:00:00.000000Z", "2021-01-02T00:00:00.000000Z"
            pushes = [
                # a: rows at both edges, and outside: the row exactly at end wins
                ("a", "2020-12-31T23:59:59.999999Z", "1", "OFFLINE", None),
                ("a", start, "2", "OFFLINE", None),
                ("a", end, "3", "OFFLINE", None),
                ("a", "2021-01-02T00:00:00.000001Z", "4", "OFFLINE", None),
                # b: online row newer than the window: kept
                ("b", "2021-01-01T12:00:00Z", "10", "OFFLINE", None),
                ("b", "2021-01-03T00:00:00Z", "11", "ONLINE", None),
                # c: online row older than the window row: replaced
                ("c", "2020-06-01T00:00:00Z", "20", "BOTH", None),
                ("c", "2021-01-01T06:00:00Z", "21", "OFFLINE", None),
                # d: nothing in the window: no online row appears
                ("d", "2021-01-05T00:00:00Z", "30", "OFFLINE", None),
                # e: equal event times in the window, the later created wins
                ("e", "2021-01-01T08:00:00Z", "40", "OFFLINE", "2021-01-03T00:00:00Z"),
                ("e", "2021-01-01T08:00:00Z", "41", "OFFLINE", "2021-01-02T00:00:00Z"),
                # f: only a start edge row
                ("f", start, "50", "OFFLINE", None),
            ]
            for key, ev, n, target, cr in pushes:
                cr = cr or "2021-01-10T00:00:00Z"
                r.execute_command(*push_args(v.name, [key], ev, [("n", n)], cr, target))
                log.push(v.name, (key,), ev, {"n": int(n)}, created=cr, target=target)
            online = O.oracle_online(log, v, now=O.parse_ts("2021-01-10T00:00:00Z"))
            before = {k: (m.event, O.parse_ts("2021-01-10T00:00:00Z"), m.values) for k, (m, _) in online.items()}
            want = O.oracle_materialize(log, v, start, end, before)
            hand = {"a": 3, "b": 11, "c": 21, "e": 40, "f": 50}
            self.assertEqual({k[0]: vals["n"] for k, (_, _, vals) in want.items()}, hand)
            r.execute_command("FS.MATERIALIZE", v.name, start, end)
            for key in "abcdef":
                got = r.execute_command("FS.GET", v.name, key, "WITHMETA")
                if key in hand:
                    ev = want[(key,)][0]
                    self.assertEqual(got[0][:2], [hand[key], O.epoch_ms(ev)], key)
                else:
                    self.assertEqual(got[0][0], None, key)
                    self.assertEqual(text(got[0][2]), O.NOT_FOUND, key)
            # idempotent
            r.execute_command("FS.MATERIALIZE", v.name, start, end)
            self.assertEqual([r.execute_command("FS.GET", v.name, k)[0] for k in "abcdef"],
                             [3, 11, 21, None, 40, 50])


class BadInput(unittest.TestCase):
    """The matrix: each malformed command is refused with an error naming the argument (one
    of the accepted words, case-insensitive), and history, online rows and the catalog are
    what they were."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.server.__enter__()
        r = cls.r = cls.server.client()
        p = cls.p = unique_prefix()
        create_entity(r, p + "cust", "INT64")
        create_entity(r, p + "city", "STRING")
        cls.v = p + "stats"
        r.execute_command("FS.VIEW.CREATE", cls.v, "ENTITIES", 1, p + "cust", "TTL", 3600, "SCHEMA",
                          "trips", "INT64", "rate", "FLOAT64", "label", "STRING", "active", "BOOL",
                          "emb", "VECTOR", 4, "seen", "TIMESTAMP", "small", "INT32")
        cls.pair = p + "pair"
        r.execute_command("FS.VIEW.CREATE", cls.pair, "ENTITIES", 2, p + "cust", p + "city", "SCHEMA", "n", "INT64")
        r.execute_command("FS.SERVICE.CREATE", p + "svc", "FEATURES", 1, cls.v + ":trips")
        cls.emb = b"\x00\x00\x80\x3f" * 4
        r.execute_command("FS.PUSH", cls.v, "1", "2021-04-12T10:00:00Z", "CREATED", "2021-04-12T10:00:01Z",
                          "FIELDS", "trips", 5, "rate", "0.5", "label", "x", "active", "true",
                          "emb", cls.emb, "seen", "2021-04-12T09:00:00Z", "small", 7)
        r.execute_command("FS.PUSH", cls.pair, "1:paris", 1000, "FIELDS", "n", 1)

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def snapshot(self):
        r = self.r
        return [r.execute_command("FS.HISTORY", self.v, "1"), r.execute_command("FS.HISTORY", self.v, "2"),
                r.execute_command("FS.GET", self.v, "1", "WITHMETA"), r.execute_command("FS.GET", self.v, "2", "WITHMETA"),
                r.execute_command("FS.HISTORY", self.pair, "1:paris"), r.execute_command("FS.VIEW.INFO", self.v),
                r.execute_command("FS.VIEW.INFO", self.pair), r.execute_command("FS.VIEW.LIST"),
                r.execute_command("FS.ENTITY.LIST"), r.execute_command("FS.SERVICE.LIST")]

    def refused(self, args, words):
        before = self.snapshot()
        e = err_of(lambda: self.r.execute_command(*args))
        self.assertIsNotNone(e, "accepted: %r" % (args,))
        self.assertTrue(any(w.lower() in e.lower() for w in words),
                        "error %r for %r names none of %r" % (e, args, words))
        self.assertEqual(self.snapshot(), before, "%r changed something" % (args,))

    def push(self, *fields, key="2", event="2021-04-12T11:00:00Z", pre=()):
        return ["FS.PUSH", self.v, key, event, *pre, "FIELDS", *fields]

    def test_push_matrix(self):
        v, p = self.v, self.p
        cases = [
            (["FS.PUSH", p + "nosuchview", "2", 1000, "FIELDS", "trips", 1], [p + "nosuchview"]),
            (self.push("nosuchfield", 1), ["nosuchfield"]),
            (self.push("trips", 1, "nosuchfield", 1), ["nosuchfield"]),
            (self.push("trips", "abc"), ["trips"]),
            (self.push("trips", "12abc"), ["trips"]),
            (self.push("trips", "1.5"), ["trips"]),
            (self.push("trips", ""), ["trips"]),
            (self.push("trips", "9223372036854775808"), ["trips"]),
            (self.push("small", "2147483648"), ["small"]),
            (self.push("rate", "abc"), ["rate"]),
            (self.push("rate", "nan"), ["rate"]),
            (self.push("rate", "inf"), ["rate"]),
            (self.push("active", "maybe"), ["active"]),
            (self.push("active", "2"), ["active"]),
            (self.push("emb", b"\x00" * 15), ["emb"]),
            (self.push("emb", b"\x00" * 17), ["emb"]),
            (self.push("emb", b""), ["emb"]),
            (self.push("emb", b"\x00" * 32), ["emb"]),
            (self.push("seen", "not-a-time"), ["seen"]),
            (self.push("trips", 1, "trips", 2), ["trips"]),
            (self.push("trips", 1, "rate", "0.5", "trips", 1), ["trips"]),
            (self.push("trips", 1, "rate"), ["rate", "FIELDS"]),
            (self.push(), ["FIELDS", ARITY]),
            (["FS.PUSH", v, "2", 1000], ["FIELDS", ARITY]),
            (["FS.PUSH", v, "2", 1000, "trips", 1], ["FIELDS", "trips", ARITY]),
            (self.push("trips", 1, key="abc"), ["abc", "cust", "entity", "key"]),
            (self.push("trips", 1, key="1.0"), ["1.0", "cust", "entity", "key"]),
            (self.push("trips", 1, key="007"), ["007", "cust", "entity", "key"]),
            (self.push("trips", 1, key="1:2"), ["1:2", "entity", "key"]),
            (self.push("trips", 1, key=""), ["cust", "entity", "key"]),
            (["FS.PUSH", self.pair, "1", 1000, "FIELDS", "n", 1], ["entity", "key"]),
            (["FS.PUSH", self.pair, "x:paris", 1000, "FIELDS", "n", 1], ["x", "cust", "entity", "key"]),
            (self.push("trips", 1, pre=("CREATED", "later")), ["created", "later"]),
            (self.push("trips", 1, pre=("CREATED",)), ["created", "FIELDS"]),
            (self.push("trips", 1, pre=("TO", "SIDEWAYS")), ["SIDEWAYS", "OFFLINE"]),
            (self.push("trips", 1, pre=("BOGUS", "1")), ["BOGUS"]),
        ]
        for ts in ["not-a-time", "2021-13-01T00:00:00Z", "2021-02-30T00:00:00Z", "2021-04-12T25:00:00Z",
                   "2021-04-12T10:61:00Z", "2021-04-12T10:00:00+25:00", "12:00", "1e3", "1.5",
                   "2021-04-12T10:00:00.Z", "99999999999999999999999"]:
            cases.append((self.push("trips", 1, event=ts), ["event", "timestamp", ts]))
            cases.append((self.push("trips", 1, pre=("CREATED", ts)), ["created", ts]))
        cases.append((self.push("trips", 1, event=""), ["event", "timestamp"]))
        for args, words in cases:
            with self.subTest(args=args):
                self.refused(args, words)

    def test_empty_created_is_named(self):
        self.refused(self.push("trips", 1, pre=("CREATED", "")), ["created"])

    def test_read_matrix(self):
        v, p = self.v, self.p
        cases = [
            (["FS.GET", p + "nosuchview", "1"], [p + "nosuchview"]),
            (["FS.GET", v, "abc"], ["abc", "cust", "key"]),
            (["FS.GET", v, "1", "FEATURES", 1, "nosuchfield"], ["nosuchfield"]),
            (["FS.GET", v, "1", "FEATURES", 3, "trips", "rate"], ["FEATURES"]),
            (["FS.GET", v, "1", "FEATURES", "many", "trips"], ["FEATURES", "many"]),
            (["FS.ASOF", v, "1", "yesterday"], ["yesterday", "timestamp"]),
            (["FS.ASOF", p + "nosuchview", "1", 1000], [p + "nosuchview"]),
            (["FS.ASOF", v, "1", 1000, "FEATURES", 1, "nosuchfield"], ["nosuchfield"]),
            (["FS.MGET", p + "nosuchsvc", "ROWS", 1, "1"], [p + "nosuchsvc"]),
            (["FS.MGET", "FEATURES", 1, v + ":nosuchfield", "ROWS", 1, "1"], ["nosuchfield"]),
            (["FS.MGET", "FEATURES", 1, p + "nosuchview:trips", "ROWS", 1, "1"], [p + "nosuchview"]),
            (["FS.MGET", "FEATURES", 1, "nocolon", "ROWS", 1, "1"], ["nocolon"]),
            (["FS.MGET", "FEATURES", 1, v + ":trips", "ROWS", 2, "1"], ["ROWS"]),
            (["FS.MGET", "FEATURES", 1, v + ":trips", "ROWS", 1, "abc"], ["abc", "cust", "key"]),
            (["FS.MGET", "FEATURES", 1, v + ":trips"], ["ROWS"]),
            (["FS.JOIN", p + "svc", "ROWS", 1, "1", "yesterday"], ["yesterday", "timestamp"]),
            (["FS.JOIN", p + "svc", "ROWS", 2, "1", 1000], ["ROWS"]),
            (["FS.JOIN", p + "svc", "ROWS", 1, "abc", 1000], ["abc", "cust", "key"]),
            (["FS.JOIN", p + "svc", "ROWS", "-1"], ["ROWS", "-1", ARITY]),
            (["FS.JOIN", p + "nosuchsvc", "ROWS", 1, "1", 1000], [p + "nosuchsvc"]),
            (["FS.JOIN", "FEATURES", 1, v + ":nosuchfield", "ROWS", 1, "1", 1000], ["nosuchfield"]),
            (["FS.JOIN", "FEATURES", 2, v + ":trips", "ROWS", 1, "1", 1000], ["FEATURES", "ROWS"]),
            (["FS.JOIN", p + "svc", "ROWS", 3000] + ["1", 1000] * 2999 + ["1", "2021-02-30"], ["2021-02-30"]),
            (["FS.JOIN", p + "svc", "ROWS", 30000] + ["1", 1000] * 29999 + ["x7", 1000], ["x7"]),
            (["FS.JOIN", p + "svc", "ROWS", 30000] + ["1", 1000] * 29999 + ["1", "later"], ["later"]),
            (["FS.MGET", p + "svc", "ROWS", 3000] + ["1"] * 2999 + ["x8"], ["x8"]),
            (["FS.HISTORY", v, "1", "COUNT", "lots"], ["COUNT", "lots"]),
            (["FS.HISTORY", v, "1", "FROM", "yesterday"], ["FROM", "yesterday"]),
            (["FS.HISTORY", p + "nosuchview", "1"], [p + "nosuchview"]),
            (["FS.VIEW.INFO", p + "nosuchview"], [p + "nosuchview"]),
            (["FS.MATERIALIZE", p + "nosuchview", 0, 1000], [p + "nosuchview"]),
            (["FS.MATERIALIZE", v, "yesterday", 1000], ["yesterday", "start"]),
            (["FS.MATERIALIZE", v, 0, "tomorrow"], ["tomorrow", "end_ts"]),
            (["FS.VIEW.COMPACT", p + "nosuchview"], [p + "nosuchview"]),
        ]
        for args, words in cases:
            with self.subTest(args=args[:12]):
                self.refused(args, words)
        self.assertTrue(self.r.ping())  # the connection is still in step after big refusals

    def test_catalog_matrix(self):
        p, c = self.p, self.p + "cust"
        cases = [
            (["FS.ENTITY.CREATE", c], [c, "exists"]),
            (["FS.ENTITY.CREATE", p + "e2", "TYPE", "FLOAT"], ["TYPE", "FLOAT"]),
            (["FS.ENTITY.CREATE", p + "bad:name"], [p + "bad:name", "entity name"]),
            (["FS.VIEW.CREATE", self.v, "ENTITIES", 1, c, "SCHEMA", "alpha", "INT64"], [self.v, "exists"]),
            (["FS.VIEW.CREATE", p + "v2", "ENTITIES", 1, p + "nosuchentity", "SCHEMA", "alpha", "INT64"],
             [p + "nosuchentity"]),
            (["FS.VIEW.CREATE", p + "v2", "ENTITIES", 2, c, c, "SCHEMA", "alpha", "INT64"], [c, "ENTITIES"]),
            (["FS.VIEW.CREATE", p + "v2", "ENTITIES", 1, c, "SCHEMA", "alpha", "INT64", "alpha", "FLOAT64"], ["alpha"]),
            (["FS.VIEW.CREATE", p + "v2", "ENTITIES", 1, c, "SCHEMA", "alpha", "DECIMAL"], ["DECIMAL"]),
            (["FS.VIEW.CREATE", p + "v2", "ENTITIES", 1, c, "SCHEMA", "alpha"], ["SCHEMA", "alpha", ARITY]),
            (["FS.VIEW.CREATE", p + "v2", "ENTITIES", 1, c, "SCHEMA"], ["SCHEMA", ARITY]),
            (["FS.VIEW.CREATE", p + "v2", "ENTITIES", 1, c], ["SCHEMA", ARITY]),
            (["FS.VIEW.CREATE", p + "v2", "ENTITIES", 1, c, "TTL", -1, "SCHEMA", "alpha", "INT64"], ["TTL"]),
            (["FS.VIEW.CREATE", p + "v2", "ENTITIES", 1, c, "TTL", "soon", "SCHEMA", "alpha", "INT64"], ["TTL"]),
            (["FS.VIEW.CREATE", p + "v2", "ENTITIES", 1, c, "RETENTION", -5, "SCHEMA", "alpha", "INT64"],
             ["RETENTION"]),
            (["FS.VIEW.CREATE", p + "v2", "ENTITIES", 1, c, "ONLINE", "MAYBE", "SCHEMA", "alpha", "INT64"],
             ["ONLINE", "MAYBE"]),
            (["FS.VIEW.CREATE", p + "v2", "ENTITIES", 1, c, "SCHEMA", "alpha", "VECTOR", 0], ["VECTOR", "alpha", "dim"]),
            (["FS.VIEW.CREATE", p + "v2", "ENTITIES", 1, c, "SCHEMA", "alpha", "VECTOR", "x"], ["VECTOR", "alpha", "dim"]),
            (["FS.VIEW.CREATE", p + "v2", "ENTITIES", 3, c, "SCHEMA", "alpha", "INT64"], ["ENTITIES", "INT64"]),
            (["FS.SERVICE.CREATE", p + "s2", "FEATURES", 1, self.v + ":nosuchfield"], ["nosuchfield"]),
            (["FS.SERVICE.CREATE", p + "s2", "FEATURES", 1, p + "nosuchview:*"], [p + "nosuchview"]),
            (["FS.SERVICE.CREATE", p + "s2", "FEATURES", 2, self.v + ":trips"], ["FEATURES"]),
            (["FS.VIEW.DROP", p + "nosuchview"], [p + "nosuchview"]),
            (["FS.VIEW.DROP", self.v], [p + "svc", "service", "used"]),
        ]
        for args, words in cases:
            with self.subTest(args=args):
                self.refused(args, words)


if __name__ == "__main__":
    unittest.main()
