"""Replication figures on 127.0.0.1 (run by `make bench`, or alone:
/usr/bin/python3 bench/repl_bench.py). Prints a table:
  - full sync: a leader loaded with REPL_BENCH_MB megabytes of 1 KiB strings (default 256;
    BENCH_QUICK=1: 32) and REPL_BENCH_HIST_ROWS FS.PUSH rows; a fresh replica's REPLICAOF
    until it has caught up (loaded and swapped in); MB/s = the bytes the leader sent / that
    time;
  - replication round trip under load: while a pipelined writer keeps the leader busy,
    each of REPL_BENCH_PROBES single SETs is followed by WAIT 1 0; the time of the WAIT is
    the replica's lag for that write (apply + ACK), reported as p50 / p99;
  - write throughput of pipelined SETs with 0 and with 2 replicas attached.
Every wait is bounded; the servers and their directories go on exit."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
MB = int(os.environ.get("REPL_BENCH_MB", "32" if QUICK else "256"))
HIST_ROWS = int(os.environ.get("REPL_BENCH_HIST_ROWS", "20000" if QUICK else "200000"))
PROBES = int(os.environ.get("REPL_BENCH_PROBES", "300" if QUICK else "2000"))
WRITES = int(os.environ.get("REPL_BENCH_WRITES", "50000" if QUICK else "300000"))


def info(r, section):
    return r.info(section)


def caught_up(leader, replica, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        ri = info(replica, "replication")
        if (ri.get("master_link_status") == "up" and
                ri.get("slave_repl_offset") == info(leader, "replication")["master_repl_offset"]):
            return
        time.sleep(0.01)
    raise SystemExit("repl_bench: the replica did not catch up in %ds" % timeout)


def load(r):
    value = b"x" * 1024
    n = MB * 1024
    p = r.pipeline(transaction=False)
    for i in range(n):
        p.set(b"key:%d" % i, value)
        if i % 5000 == 4999:
            p.execute()
    p.execute()
    r.execute_command("FS.ENTITY.CREATE", "e", "TYPE", "INT64")
    r.execute_command("FS.VIEW.CREATE", "v", "ENTITIES", 1, "e", "SCHEMA", "a", "FLOAT64",
                      "b", "STRING")
    for i in range(HIST_ROWS):
        p.execute_command("FS.PUSH", "v", i % 1000, 1000 + i, "FIELDS", "a", i, "b", "row")
        if i % 5000 == 4999:
            p.execute()
    p.execute()


def write_rate(r, n):
    p = r.pipeline(transaction=False)
    t0 = time.time()
    for i in range(n):
        p.set(b"w:%d" % (i % 10000), b"v" * 64)
        if i % 1000 == 999:
            p.execute()
    p.execute()
    return n / (time.time() - t0)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    rows = []
    with harness.Server(durability="no") as leader:
        lr = leader.client()
        rate0 = write_rate(lr, WRITES)
        load(lr)
        used = info(lr, "memory")["lmdb_used_bytes"]
        out0 = info(lr, "stats")["total_net_output_bytes"]
        with harness.Server(durability="no") as rep:
            rr = rep.client()
            t0 = time.time()
            rr.execute_command("REPLICAOF", "127.0.0.1", leader.port)
            caught_up(lr, rr)
            dt = time.time() - t0
            sent = info(lr, "stats")["total_net_output_bytes"] - out0
            rows.append(("full sync: LMDB bytes in use", "%.1f MB" % (used / 1e6)))
            rows.append(("full sync: bytes sent (LMDB records + history)", "%.1f MB" % (sent / 1e6)))
            rows.append(("full sync: time to caught up", "%.2f s" % dt))
            rows.append(("full sync: throughput (bytes sent / time)", "%.0f MB/s" % (sent / 1e6 / dt)))
            stop = threading.Event()

            def background():
                wr = leader.client()
                while not stop.is_set():
                    write_rate(wr, 2000)
            t = threading.Thread(target=background)
            t.start()
            lags = []
            for i in range(PROBES):
                lr.set(b"probe", i)
                t1 = time.perf_counter()
                lr.execute_command("WAIT", 1, 0)
                lags.append((time.perf_counter() - t1) * 1000)
            stop.set()
            t.join()
            rows.append(("lag (SET then WAIT 1) p50 under load", "%.2f ms" % pct(lags, 0.5)))
            rows.append(("lag (SET then WAIT 1) p99 under load", "%.2f ms" % pct(lags, 0.99)))
            with harness.Server(durability="no", replicaof="127.0.0.1 %d" % leader.port) as rep2:
                caught_up(lr, rep2.client())
                rate2 = write_rate(lr, WRITES)
                caught_up(lr, rep2.client())
    rows.append(("pipelined SET/s, no replica", "%.0f" % rate0))
    rows.append(("pipelined SET/s, 2 replicas", "%.0f (%.2fx)" % (rate2, rate2 / rate0)))
    width = max(len(k) for k, _ in rows)
    print("replication on 127.0.0.1, %d CPUs" % os.cpu_count())
    for k, v in rows:
        print("  %-*s  %s" % (width, k, v))


if __name__ == "__main__":
    main()
