"""Feature-store benchmarks (bench/fs_bench.sh runs this; `make bench` runs that). Prints
figures, never pass/fail thresholds. See bench/README.md for what each line means.

  (a) FS.GET of 1 entity x 50 features beside redis-server's HMGET of the same 50 fields of
      one hash per entity (Feast's Redis layout), redis-benchmark, 50 clients.
  (b) FS.MGET of 100 entities x 50 features: latency p50/p99 (redis-benchmark, 1 and 10
      clients) against the issue's 2 ms p99 target.
  (c) FS.JOIN: N entity rows against a view with M history rows, rows/s, beside pandas
      merge_asof (sort + merge + back to the caller's order) on the same data in the same run.
  (d) quiver-load: ingest rows/s of the generated history CSV that (c) uses.

Both servers run on 127.0.0.1, on free ports, in a throw-away directory. Knobs (environment):
  FS_BENCH_QUICK=1        small settings (well under 2 minutes on 2 cores; BENCH_QUICK=1 too)
  FS_BENCH_ENTITIES       entities for (a)/(b)                 100000  (quick 10000)
  FS_BENCH_GET_N          requests per (a) run                 200000  (quick 50000)
  FS_BENCH_MGET_N         requests per (b) run                 2000    (quick 1000)
  FS_BENCH_CLIENTS        clients for (a)                      50
  FS_BENCH_JOIN_N         entity rows N for (c)                1000000 (quick 100000)
  FS_BENCH_JOIN_M         history rows M for (c) and (d)       10000000 (quick 1000000)
  FS_BENCH_JOIN_KEYS      distinct entities of the history     M / 100
  FS_BENCH_JOIN_CHUNK     entity rows per FS.JOIN command      100000
  FS_BENCH_JOIN_PASSES    times (c) joins the N rows (the first reads a cold cache)  1
  FS_BENCH_JOIN_COMPACT=1 FS.VIEW.COMPACT the history (timed) before (c)
  FS_BENCH_HISTORY_CACHE  quiver-server's history-cache-size (e.g. 2gb)  its default
  FS_BENCH_ONLY_JOIN=1    (c) and (d) only: no redis-server, no (a)/(b)
  FS_BENCH_RUN_TIMEOUT_S  cap for one measured step            300
  QUIVER_BIN, QUIVER_LOAD_BIN, REDIS_SERVER_BIN, REDIS_BENCHMARK_BIN, REDIS_CLI_BIN
Exit status: 0 when every step produced a figure, 1 when some did not, 2 on a setup failure."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = "127.0.0.1"


QUICK = "1" in (os.environ.get("FS_BENCH_QUICK"), os.environ.get("BENCH_QUICK"))


def knob(name, default, quick):
    v = os.environ.get(name)
    if v is None:
        return quick if QUICK else default
    if not v.isdigit() or int(v) <= 0:
        sys.exit("fs_bench: %s must be a positive integer (got %r)" % (name, v))
    return int(v)


ENTITIES = knob("FS_BENCH_ENTITIES", 100000, 10000)
GET_N = knob("FS_BENCH_GET_N", 200000, 50000)
MGET_N = knob("FS_BENCH_MGET_N", 2000, 1000)
CLIENTS = knob("FS_BENCH_CLIENTS", 50, 50)
JOIN_N = knob("FS_BENCH_JOIN_N", 1000000, 100000)
JOIN_M = knob("FS_BENCH_JOIN_M", 10000000, 1000000)
JOIN_KEYS = knob("FS_BENCH_JOIN_KEYS", max(1, JOIN_M // 100), max(1, JOIN_M // 100))
JOIN_CHUNK = knob("FS_BENCH_JOIN_CHUNK", 100000, 100000)
RUN_TIMEOUT = knob("FS_BENCH_RUN_TIMEOUT_S", 300, 120)
JOIN_PASSES = knob("FS_BENCH_JOIN_PASSES", 1, 1)
JOIN_COMPACT = os.environ.get("FS_BENCH_JOIN_COMPACT") == "1"
ONLY_JOIN = os.environ.get("FS_BENCH_ONLY_JOIN") == "1"
HISTORY_CACHE = os.environ.get("FS_BENCH_HISTORY_CACHE")
FEATURES = 50
MGET_ROWS = 100
P99_TARGET_MS = 2.0

QUIVER_BIN = os.environ.get("QUIVER_BIN", os.path.join(ROOT, "quiver-server"))
QUIVER_LOAD_BIN = os.environ.get("QUIVER_LOAD_BIN", os.path.join(ROOT, "quiver-load"))
REDIS_SERVER_BIN = os.environ.get("REDIS_SERVER_BIN", "/usr/bin/redis-server")
REDIS_BENCHMARK_BIN = os.environ.get("REDIS_BENCHMARK_BIN", "/usr/bin/redis-benchmark")
REDIS_CLI_BIN = os.environ.get("REDIS_CLI_BIN", "/usr/bin/redis-cli")


class SetupError(Exception):
    pass


def say(*parts):
    print(*parts, flush=True)


# ---- servers ---------------------------------------------------------------------------------

def free_port(taken=()):
    for _ in range(20):
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in taken:
            return port
    raise SetupError("no free port on %s" % HOST)


class Proc:
    """A server process in its own directory, stopped (TERM, then KILL) by stop()."""

    def __init__(self, name, argv, port, tmp):
        self.name, self.port = name, port
        self.log_path = os.path.join(tmp, name + ".log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SetupError("%s exited at start: %s" % (name, self.tail()))
            try:
                if redis.Redis(host=HOST, port=port, socket_timeout=1).ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise SetupError("%s did not answer PING on %s:%d: %s" % (name, HOST, port, self.tail()))

    def tail(self):
        with open(self.log_path, "rb") as f:
            return f.read()[-1500:].decode(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---- helpers ---------------------------------------------------------------------------------

def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def pipe_load(port, path, what):
    """redis-cli --pipe of a file of commands; raises on any error reply."""
    with open(path, "rb") as f:
        p = subprocess.run([REDIS_CLI_BIN, "-h", HOST, "-p", str(port), "--pipe"], stdin=f,
                           capture_output=True, timeout=RUN_TIMEOUT)
    out = p.stdout.decode(errors="replace")
    if p.returncode != 0 or "errors: 0," not in out:
        raise SetupError("loading %s failed: %s %s" % (what, out[-500:], p.stderr.decode()[-300:]))


def redis_benchmark(port, clients, n, args, keyspace):
    """One redis-benchmark run: {'rps', 'p50', 'p99'} (latencies in ms) or {'error': text}."""
    cmd = [REDIS_BENCHMARK_BIN, "-h", HOST, "-p", str(port), "-c", str(clients), "-n", str(n),
           "-r", str(keyspace), "--csv"] + [str(a) for a in args]
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    rows = [line for line in p.stdout.decode().splitlines() if line and not line.startswith('"test"')]
    if p.returncode != 0 or not rows:
        return {"error": "exit %d: %s" % (p.returncode, p.stderr.decode()[-300:].strip())}
    cols = [c.strip('"') for c in rows[-1].split(",")]
    # "test","rps","avg","min","p50","p95","p99","max"
    return {"rps": float(cols[1]), "p50": float(cols[4]), "p99": float(cols[6])}


def fmt(v, spec="%.0f"):
    return spec % v if isinstance(v, (int, float)) else str(v)


def ratio(a, b):
    return "%.2f" % (a / b) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "-"


# ---- (a) and (b): online reads ---------------------------------------------------------------

def online_data(tmp, rng):
    """The same ENTITIES x 50 float features as FS.PUSH commands (Quiver) and HSETs (Redis).
    Keys e000000000000.. are what redis-benchmark's __rand_int__ expands to."""
    pool = [("%.6f" % x).encode() for x in rng.uniform(0, 1000, 997)]
    names = [b"f%d" % i for i in range(FEATURES)]
    now_ms = int(time.time() * 1000)
    qpath, rpath = os.path.join(tmp, "online.quiver.resp"), os.path.join(tmp, "online.redis.resp")
    with open(qpath, "wb") as q, open(rpath, "wb") as r:
        q.write(resp("FS.ENTITY.CREATE", "eid", "TYPE", "STRING"))
        schema = []
        for n in names:
            schema += [n, b"FLOAT64"]
        q.write(resp("FS.VIEW.CREATE", "stats", "ENTITIES", 1, "eid", "SCHEMA", *schema))
        for e in range(ENTITIES):
            key = b"e%012d" % e
            fields = []
            for i, n in enumerate(names):
                fields += [n, pool[(e * 31 + i * 7) % len(pool)]]
            q.write(resp(b"FS.PUSH", b"stats", key, now_ms, b"FIELDS", *fields))
            r.write(resp(b"HSET", key, *fields))
    return qpath, rpath


def bench_online(quiver, red, tmp, rng, results):
    qpath, rpath = online_data(tmp, rng)
    pipe_load(quiver.port, qpath, "quiver FS.PUSH")
    pipe_load(red.port, rpath, "redis HSET")
    fields = ["f%d" % i for i in range(FEATURES)]
    q = redis.Redis(host=HOST, port=quiver.port, socket_timeout=60)
    r = redis.Redis(host=HOST, port=red.port, socket_timeout=60)
    probe = "e%012d" % (ENTITIES - 1)
    got_q = [float(x) for x in q.execute_command("FS.GET", "stats", probe)]
    got_r = [float(x) for x in r.hmget(probe, fields)]
    if got_q != got_r or len(got_q) != FEATURES:
        raise SetupError("FS.GET and HMGET disagree on %s" % probe)
    say("data    : %d entities x %d FLOAT64 features in both (redis-cli --pipe: FS.PUSH / HSET)" % (ENTITIES, FEATURES))

    a_q = redis_benchmark(quiver.port, CLIENTS, GET_N, ["FS.GET", "stats", "e__rand_int__"], ENTITIES)
    a_r = redis_benchmark(red.port, CLIENTS, GET_N, ["HMGET", "e__rand_int__"] + fields, ENTITIES)
    results["a"] = (a_q, a_r)
    say("(a) FS.GET 1x%d vs HMGET %d fields, %d clients, %d requests each:" % (FEATURES, FEATURES, CLIENTS, GET_N))
    for name, res in (("redis  HMGET ", a_r), ("quiver FS.GET", a_q)):
        say("      %s  %s" % (name, describe(res)))

    mget = ["FS.MGET", "FEATURES", FEATURES] + ["stats:" + f for f in fields] + ["ROWS", MGET_ROWS]
    mget += ["e__rand_int__"] * MGET_ROWS
    results["b"] = []
    say("(b) FS.MGET %d entities x %d features, %d requests per run:" % (MGET_ROWS, FEATURES, MGET_N))
    for clients in (1, 10):
        res = redis_benchmark(quiver.port, clients, MGET_N, mget, ENTITIES)
        results["b"].append((clients, res))
        say("      %2d client(s)  %s" % (clients, describe(res)))


def describe(res):
    if "error" in res:
        return "no figure (%s)" % res["error"]
    return "%9.0f ops/s  p50 %.3f ms  p99 %.3f ms" % (res["rps"], res["p50"], res["p99"])


# ---- (c) and (d): the join and the loader ----------------------------------------------------

def history_data(rng):
    """M history rows over JOIN_KEYS INT64 entities across 30 days (ms resolution), created
    unique per row so that no two rows tie on (entity, event, created); N entity rows with
    keys that mostly exist and times across the same span and a little past it."""
    base = 1_600_000_000_000
    span = 30 * 86400 * 1000
    hist = pd.DataFrame({
        "entity": rng.integers(0, JOIN_KEYS, JOIN_M, dtype=np.int64),
        "event": base + rng.integers(0, span, JOIN_M, dtype=np.int64),
        "f0": np.round(rng.uniform(-100, 100, JOIN_M), 6),
        "f1": rng.integers(-10**6, 10**6, JOIN_M, dtype=np.int64),
        "f2": np.round(rng.uniform(0, 1, JOIN_M), 6),
    })
    hist["created"] = hist["event"] + 1000 + np.arange(JOIN_M, dtype=np.int64)
    rows = pd.DataFrame({
        "entity": rng.integers(0, JOIN_KEYS + JOIN_KEYS // 100 + 1, JOIN_N, dtype=np.int64),
        "t": base + rng.integers(0, span + span // 10, JOIN_N, dtype=np.int64),
    })
    return hist, rows


def write_history_csv(hist, path):
    """The history as CSV: entity_id, event_timestamp and created (epoch ms), the features."""
    hist.to_csv(path, index=False, columns=["entity", "event", "created", "f0", "f1", "f2"],
                header=["entity_id", "event_timestamp", "created", "f0", "f1", "f2"])


def create_join_view(q):
    q.execute_command("FS.ENTITY.CREATE", "uid", "TYPE", "INT64")
    q.execute_command("FS.VIEW.CREATE", "hist", "ENTITIES", 1, "uid", "SCHEMA",
                      "f0", "FLOAT64", "f1", "INT64", "f2", "FLOAT64")


def load_with_quiver_load(port, csv_path):
    """(d): quiver-load of the CSV into view hist. Returns seconds, or raises."""
    argv = [QUIVER_LOAD_BIN, "-h", HOST, "-p", str(port), "--view", "hist", "--entity", "entity_id",
            "--ts", "event_timestamp", "--created", "created", "--ts-unit", "ms", "-q", csv_path]
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, timeout=RUN_TIMEOUT)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SetupError("quiver-load exit %d: %s" % (p.returncode, (p.stderr or p.stdout).decode()[-400:]))
    return dt


def load_with_push(port, hist, tmp):
    """Fallback when quiver-load is missing: pipelined FS.PUSH through redis-cli --pipe."""
    path = os.path.join(tmp, "hist.resp")
    with open(path, "wb") as f:
        cols = [hist[c].astype(str).tolist() for c in ("entity", "event", "created", "f0", "f1", "f2")]
        for e, ev, cr, f0, f1, f2 in zip(*cols):
            f.write(resp("FS.PUSH", "hist", e, ev, "CREATED", cr, "FIELDS", "f0", f0, "f1", f1, "f2", f2))
    t0 = time.perf_counter()
    pipe_load(port, path, "history FS.PUSH")
    return time.perf_counter() - t0


def join_commands(rows):
    """The FS.JOIN commands for the entity rows, JOIN_CHUNK rows each, prebuilt as RESP:
    [(rows in the command, bytes)]."""
    keys = rows["entity"].astype(str).tolist()
    times = rows["t"].astype(str).tolist()
    cmds = []
    for i in range(0, len(keys), JOIN_CHUNK):
        k, t = keys[i:i + JOIN_CHUNK], times[i:i + JOIN_CHUNK]
        head = ["FS.JOIN", "FEATURES", "3", "hist:f0", "hist:f1", "hist:f2", "ROWS", str(len(k))]
        text = "*%d\r\n" % (len(head) + 2 * len(k)) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in head)
        text += "".join("$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(a), a, len(b), b) for a, b in zip(k, t))
        cmds.append((len(k), text.encode()))
    return cmds


def run_joins(port, cmds):
    """Sends each FS.JOIN followed by a PING and reads until the PONG: the reply is consumed
    without parsing it in Python (values are numbers, so '+PONG' cannot end a JOIN reply, and
    the reply must start with its row count). Returns (seconds, reply bytes)."""
    s = socket.create_connection((HOST, port), timeout=RUN_TIMEOUT)
    total = 0
    t0 = time.perf_counter()
    try:
        for n, cmd in cmds:
            s.sendall(cmd + resp("PING"))
            head, tail = b"", b""
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise SetupError("quiver closed the connection during FS.JOIN")
                total += len(chunk)
                if len(head) < 32:
                    head += chunk[:32]
                tail = (tail + chunk)[-64:]
                if tail.endswith(b"+PONG\r\n"):
                    break
            if not head.startswith(b"*%d\r\n" % n):
                raise SetupError("FS.JOIN replied %r" % head)
    finally:
        s.close()
    return time.perf_counter() - t0, total


def pandas_join(hist, rows):
    """Sort + merge_asof + back to the caller's row order: what FS.JOIN's reply is."""
    t0 = time.perf_counter()
    right = hist.sort_values(["event", "created"], kind="mergesort")
    left = rows.assign(i=np.arange(len(rows))).sort_values("t", kind="mergesort")
    merged = pd.merge_asof(left, right, left_on="t", right_on="event", by="entity",
                           direction="backward", allow_exact_matches=True)
    merged = merged.sort_values("i")
    return time.perf_counter() - t0, merged


def spot_check(q, rows, merged, n=2000):
    """The first n entity rows through redis-py, compared with pandas' answers."""
    n = min(n, len(rows))
    args = []
    for e, t in zip(rows["entity"][:n], rows["t"][:n]):
        args += [int(e), int(t)]
    got = q.execute_command("FS.JOIN", "FEATURES", 3, "hist:f0", "hist:f1", "hist:f2", "ROWS", n, *args)
    want = merged.head(n)
    bad = 0
    for g, (f0, f1, f2) in zip(got, zip(want["f0"], want["f1"], want["f2"])):
        exp = [None, None, None] if pd.isna(f0) else [float(f0), int(f1), float(f2)]
        val = [None if g[0] is None else float(g[0]), g[1], None if g[2] is None else float(g[2])]
        bad += val != exp
    return n - bad, n


def bench_join(quiver, tmp, rng, results):
    hist, rows = history_data(rng)
    q = redis.Redis(host=HOST, port=quiver.port, socket_timeout=RUN_TIMEOUT)
    create_join_view(q)
    csv_path = os.path.join(tmp, "history.csv")
    t0 = time.perf_counter()
    write_history_csv(hist, csv_path)
    say("data    : %d history rows over %d entities (CSV %.0f MB, written in %.1f s); %d entity rows"
        % (JOIN_M, JOIN_KEYS, os.path.getsize(csv_path) / 1e6, time.perf_counter() - t0, JOIN_N))
    if os.access(QUIVER_LOAD_BIN, os.X_OK):
        secs = load_with_quiver_load(quiver.port, csv_path)
        results["d"] = {"rows": JOIN_M, "secs": secs, "how": "quiver-load"}
    else:
        secs = load_with_push(quiver.port, hist, tmp)
        results["d"] = {"rows": JOIN_M, "secs": secs, "how": "no quiver-load: redis-cli --pipe FS.PUSH"}
    say("(d) ingest: %d rows in %.1f s = %.0f rows/s (%s)" % (JOIN_M, secs, JOIN_M / secs, results["d"]["how"]))

    if JOIN_COMPACT:
        t0 = time.perf_counter()
        q.execute_command("FS.VIEW.COMPACT", "hist")
        say("    FS.VIEW.COMPACT hist: %.1f s" % (time.perf_counter() - t0))
    cmds = join_commands(rows)
    passes = [run_joins(quiver.port, cmds) for _ in range(JOIN_PASSES)]
    for i, (secs, _) in enumerate(passes[:-1]):
        say("    FS.JOIN pass %d of %d: %.2f s = %.0f rows/s" % (i + 1, JOIN_PASSES, secs, JOIN_N / secs))
    q_secs, nbytes = passes[-1]
    p_secs, merged = pandas_join(hist, rows)
    ok, n = spot_check(q, rows, merged)
    results["c"] = {"q_secs": q_secs, "p_secs": p_secs, "ok": ok, "n": n}
    say("(c) FS.JOIN %d rows x 3 features vs %d history rows, %d commands of <= %d rows: %.2f s = %.0f rows/s (%.0f MB of replies)"
        % (JOIN_N, JOIN_M, len(cmds), JOIN_CHUNK, q_secs, JOIN_N / q_secs, nbytes / 1e6))
    say("    pandas sort + merge_asof + reorder, same data: %.2f s = %.0f rows/s" % (p_secs, JOIN_N / p_secs))
    say("    spot check: %d of the first %d rows agree with pandas" % (ok, n))


# ---- main ------------------------------------------------------------------------------------

def summary(results, elapsed):
    say("")
    say("%-52s | %-30s | %-30s | %s" % ("benchmark", "quiver", "reference", "ratio"))
    say("-" * 53 + "+" + "-" * 32 + "+" + "-" * 32 + "+------")
    a = results.get("a")
    if a:
        q, r = a
        say("%-52s | %-30s | %-30s | %s" % ("(a) FS.GET 1x50 / HMGET 50, %d clients: ops/s" % CLIENTS,
                                          fmt(q.get("rps", q.get("error"))), fmt(r.get("rps", r.get("error"))),
                                          ratio(q.get("rps"), r.get("rps"))))
        say("%-52s | %-30s | %-30s | %s" % ("    p99 ms", fmt(q.get("p99", "-"), "%.3f"),
                                          fmt(r.get("p99", "-"), "%.3f"), ratio(q.get("p99"), r.get("p99"))))
    for clients, res in results.get("b", []):
        say("%-52s | %-30s | %-30s | %s" % ("(b) FS.MGET 100x50, %d client(s): p50 / p99 ms" % clients,
                                          "%s / %s" % (fmt(res.get("p50", "-"), "%.3f"), fmt(res.get("p99", res.get("error")), "%.3f")),
                                          "p99 target %.1f ms" % P99_TARGET_MS, ratio(res.get("p99"), P99_TARGET_MS)))
    c = results.get("c")
    if c:
        say("%-52s | %-30s | %-30s | %s" % ("(c) FS.JOIN N=%d x M=%d: rows/s" % (JOIN_N, JOIN_M),
                                          "%.0f (%.2f s)" % (JOIN_N / c["q_secs"], c["q_secs"]),
                                          "pandas %.0f (%.2f s)" % (JOIN_N / c["p_secs"], c["p_secs"]),
                                          ratio(c["p_secs"], c["q_secs"])))
    d = results.get("d")
    if d:
        say("%-52s | %-30s | %-30s | %s" % ("(d) ingest %d rows: rows/s" % d["rows"], "%.0f (%.1f s)" % (d["rows"] / d["secs"], d["secs"]), d["how"], "-"))
    say("")
    say("ratios: (a) quiver/redis (ops/s: >1 Quiver faster; p99: <1 Quiver better); (b) p99/target (<1 meets it);")
    say("        (c) pandas time / FS.JOIN time (>1: FS.JOIN faster). Measured in %.0f s." % elapsed)


def main():
    for b in (QUIVER_BIN, REDIS_SERVER_BIN, REDIS_BENCHMARK_BIN, REDIS_CLI_BIN):
        if not os.access(b, os.X_OK):
            say("fs_bench: missing %s ('make quiver-server', 'make deps')" % b)
            return 2
    tmp = tempfile.mkdtemp(prefix="quiver-fsbench-")
    procs, results = [], {}
    start = time.time()
    failed = False
    try:
        qport = free_port()
        rport = free_port((qport,))
        os.makedirs(os.path.join(tmp, "quiver"))
        os.makedirs(os.path.join(tmp, "redis"))
        cache = ["--history-cache-size", HISTORY_CACHE] if HISTORY_CACHE else []
        quiver = Proc("quiver", [QUIVER_BIN, "--bind", HOST, "--port", str(qport), "--durability", "everysec",
                                 "--dir", os.path.join(tmp, "quiver")] + cache, qport, tmp)
        procs.append(quiver)
        red = None if ONLY_JOIN else Proc("redis", [REDIS_SERVER_BIN, "--bind", HOST, "--port", str(rport), "--save", "",
                             "--appendonly", "yes", "--appendfsync", "everysec", "--dir", os.path.join(tmp, "redis"),
                             "--daemonize", "no", "--logfile", ""], rport, tmp)
        if red:
            procs.append(red)
        say("Feature store benchmarks on %s (%s)%s" % (HOST, time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                                                      " [FS_BENCH_QUICK]" if QUICK else ""))
        say("machine : %d CPUs, load avg %s" % (os.cpu_count(), open("/proc/loadavg").read().split()[:3]))
        say("servers : quiver-server --durability everysec%s%s" % (" --history-cache-size " + HISTORY_CACHE if HISTORY_CACHE else "",
            "" if ONLY_JOIN else "; redis-server --appendonly yes --appendfsync everysec --save ''"))
        rng = np.random.default_rng(1)
        for step in (bench_join,) if ONLY_JOIN else (bench_online, bench_join):
            try:
                if step is bench_online:
                    step(quiver, red, tmp, rng, results)
                else:
                    if red:
                        red.stop()  # (c)/(d) measure Quiver and pandas only
                        procs.remove(red)
                    step(quiver, tmp, rng, results)
            except (SetupError, redis.RedisError, OSError, subprocess.TimeoutExpired) as e:
                failed = True
                say("fs_bench: %s failed: %s" % (step.__name__, e))
            if not quiver.alive():
                failed = True
                say("fs_bench: quiver-server died: %s" % quiver.tail())
                break
        summary(results, time.time() - start)
        a = results.get("a", ({}, {}))
        b = results.get("b", [])
        failed = failed or any("error" in x for x in a) or any("error" in r for _, r in b)
        failed = failed or "c" not in results or "d" not in results
        return 1 if failed else 0
    except SetupError as e:
        say("fs_bench: %s" % e)
        return 2
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    sys.exit(main())
