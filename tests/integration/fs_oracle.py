"""The feature store's reference semantics, computed with pandas and nothing of Quiver's:
what FS.JOIN, FS.ASOF, FS.GET/FS.MGET, FS.HISTORY and FS.MATERIALIZE must answer for the
pushes a client made (DESIGN.md "Feature store", which are Feast's semantics made exact).

The oracle works from what the client *sent*: timestamps are the strings or integers as
written on the wire and are parsed here by pandas' own parser (epoch milliseconds, or
ISO-8601 with 'Z', an offset or no zone meaning UTC; more than 6 fraction digits are
truncated to the microsecond, as the contract says). Point in time is pandas.merge_asof:
history sorted by (event, created, push order), `by` the entity key, direction
'backward', allow_exact_matches=True, tolerance = TTL (pandas' tolerance is inclusive:
a row exactly TTL old qualifies, as DESIGN.md wants). A push repeating an (entity, event,
created) triple replaces the earlier one, so the last of equal triples wins; merge_asof picks
the last of equal sort keys, which is the same rule.

    log = PushLog()
    log.push("v", ("1001",), "2021-04-12T10:00:00.000001Z", {"x": 1.5}, created=..., target=...)
    oracle_pit(log, view, [(("1001",), "2021-04-13T00:00:00Z"), ...])  -> [Match, ...]

Values are kept as the test wants to compare them (int, float, bytes); None is NULL."""
import math
import time

import pandas as pd

PRESENT, NULL_VALUE, NOT_FOUND, OUTSIDE_MAX_AGE = "PRESENT", "NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE"


def parse_ts(ts):
    """A client timestamp (int or digit string = epoch ms; else ISO-8601) as a UTC Timestamp
    truncated to the microsecond."""
    if isinstance(ts, int) or (isinstance(ts, str) and ts.lstrip("-").isdigit()):
        t = pd.Timestamp(int(ts), unit="ms", tz="UTC")
    else:
        t = pd.Timestamp(ts)
        t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.floor("us")


def epoch_ms(t):
    """A Timestamp as integer epoch milliseconds (floor), what WITHMETA replies."""
    return (t - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)


class View:
    def __init__(self, name, entities, fields, ttl=0, online=True):
        self.name = name
        self.entities = list(entities)     # entity names, in ENTITIES order
        self.fields = list(fields)         # [(field name, type name)] in schema order
        self.ttl = ttl                     # seconds, 0 = no limit
        self.online = online

    def field_names(self):
        return [f for f, _ in self.fields]


class Match:
    """One answer: the chosen row's event time (None: no row) and its values by field."""

    def __init__(self, event, values):
        self.event = event
        self.values = values

    def __repr__(self):
        return "Match(%s, %r)" % (self.event, self.values)


class PushLog:
    """Every FS.PUSH a test made, in order. created=None means the server's clock: recorded
    as the local clock at the push, later than any explicit created time a test uses."""

    def __init__(self):
        self.rows = []

    def push(self, view, key, event, values, created=None, target="BOTH"):
        self.rows.append({
            "view": view, "key": tuple(key), "event": parse_ts(event),
            "created": parse_ts(created) if created is not None else pd.Timestamp(time.time_ns(), tz="UTC"),
            "server_created": created is None,
            "target": target, "values": dict(values), "seq": len(self.rows),
        })

    def frame(self, view, fields, targets):
        """The pushes of one view that reached the given side, sorted by (event, created, seq)."""
        rows = [r for r in self.rows if r["view"] == view and r["target"] in targets]
        cols = {
            "key": pd.Series([repr(r["key"]) for r in rows], dtype=object),
            "event": pd.Series([r["event"] for r in rows], dtype="datetime64[ns, UTC]"),
            "created": pd.Series([r["created"] for r in rows], dtype="datetime64[ns, UTC]"),
            "seq": pd.Series([r["seq"] for r in rows], dtype="int64"),
            "server_created": pd.Series([r["server_created"] for r in rows], dtype=bool),
        }
        for f in fields:
            cols["f_" + f] = pd.Series([r["values"].get(f) for r in rows], dtype=object)
        df = pd.DataFrame(cols)
        return df.sort_values(["event", "created", "seq"], kind="mergesort").reset_index(drop=True)


def _null(v):
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT


def _values(rec, fields):
    return {f: (None if _null(rec["f_" + f]) else rec["f_" + f]) for f in fields}


def oracle_pit(log, view, requests):
    """Point in time for [(key tuple, ts as sent)], in request order: the offline row with the
    largest event <= t (ties: largest created, then the last push), with event >= t - TTL
    when TTL > 0."""
    fields = view.field_names()
    hist = log.frame(view.name, fields, ("BOTH", "OFFLINE"))
    hist["_event"] = hist["event"]
    left = pd.DataFrame({
        "key": pd.Series([repr(tuple(k)) for k, _ in requests], dtype=object),
        "t": pd.Series([parse_ts(t) for _, t in requests], dtype="datetime64[ns, UTC]"),
        "i": range(len(requests)),
    }).sort_values("t", kind="mergesort")
    right = hist.rename(columns={"event": "t"})[["key", "t", "_event"] + ["f_" + f for f in fields]]
    merged = pd.merge_asof(left, right, on="t", by="key", direction="backward", allow_exact_matches=True,
                           tolerance=pd.Timedelta(seconds=view.ttl) if view.ttl > 0 else None)
    out = [None] * len(requests)
    for rec in merged.to_dict("records"):
        ev = rec["_event"]
        if _null(ev):
            out[rec["i"]] = Match(None, {f: None for f in fields})
        else:
            out[rec["i"]] = Match(ev, _values(rec, fields))
    return out


def oracle_online(log, view, now=None):
    """The online rows: per key the push with the largest (event, created), ties the last,
    among pushes that went online. Returns {key tuple: (Match, status for a present row)}:
    with TTL > 0 a row whose event is older than now - TTL is OUTSIDE_MAX_AGE."""
    fields = view.field_names()
    df = log.frame(view.name, fields, ("BOTH", "ONLINE"))
    now = pd.Timestamp(time.time_ns(), tz="UTC") if now is None else now
    out = {}
    for rec in df.groupby("key", sort=False).tail(1).to_dict("records"):
        key = eval(rec["key"])  # noqa: S307 - our own repr of a tuple of str
        stale = view.ttl > 0 and rec["event"] < now - pd.Timedelta(seconds=view.ttl)
        out[key] = (Match(rec["event"], _values(rec, fields)),
                    OUTSIDE_MAX_AGE if stale else PRESENT)
    return out


def oracle_history(log, view, key):
    """FS.HISTORY's rows of one key, newest first: [(event, created, {field: value})], one per
    distinct (event, created), the last push of equal ones. created is None where the server
    chose it (its clock, which the oracle only knows approximately)."""
    fields = view.field_names()
    df = log.frame(view.name, fields, ("BOTH", "OFFLINE"))
    df = df[df["key"] == repr(tuple(key))].drop_duplicates(["event", "created"], keep="last")
    rows = [(r["event"], None if r["server_created"] else r["created"], _values(r, fields))
            for r in df.to_dict("records")]
    return rows[::-1]


def oracle_materialize(log, view, start, end, online_before):
    """Online rows after FS.MATERIALIZE view start end: per key, the newest offline row with
    start <= event <= end replaces the online row only if its (event, created) is newer.
    online_before: {key: (event, created, values)}. Returns the same shape."""
    fields = view.field_names()
    df = log.frame(view.name, fields, ("BOTH", "OFFLINE"))
    lo, hi = parse_ts(start), parse_ts(end)
    df = df[(df["event"] >= lo) & (df["event"] <= hi)]
    out = dict(online_before)
    for rec in df.groupby("key", sort=False).tail(1).to_dict("records"):
        key = eval(rec["key"])  # noqa: S307
        new = (rec["event"], rec["created"], _values(rec, fields))
        old = out.get(key)
        if old is None or (new[0], new[1]) > (old[0], old[1]):
            out[key] = new
    return out
