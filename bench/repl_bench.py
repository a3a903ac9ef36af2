"""Replication figures on 127.0.0.1 (run by `make bench` and `make bench-repl`, or alone:
/usr/bin/python3 bench/repl_bench.py). Prints a table:
  - full sync: a leader loaded with REPL_BENCH_MB megabytes of 1 KiB strings (default 1024;
    BENCH_QUICK=1: 64) and REPL_BENCH_HIST_ROWS FS.PUSH rows; a fresh replica's REPLICAOF
    until it has caught up (loaded and swapped in); MB/s = the bytes the leader sent / that
    time; REPL_BENCH_SYNCS syncs (the replica detaches and syncs again), median and range;
  - replication lag under load: while a writer sends REPL_BENCH_RATE pipelined SETs a second
    (default 50000), each of REPL_BENCH_PROBES single SETs is followed by WAIT 1 0; the time
    of the WAIT is the replica's lag for that write (apply + ACK), as p50 / p99;
  - write throughput with no replica and with 2 replicas attached, REPL_BENCH_ROUNDS rounds
    of each in turn on one leader (the replicas detach with REPLICAOF NO ONE and attach
    again); medians and their ratio. Twice: REPL_BENCH_WRITES pipelined SETs (64-byte values,
    1000 a round trip) from a raw client that encodes them once, so that the servers are the
    bottleneck (on 2 CPUs three servers doing the same work per write share them), and a
    quarter as many through redis-py's pipeline, as a Python client sees it. And the
    leader's CPU time per SET in both cases (from /proc), which the machine's other load
    does not skew: what feeding the replicas costs the leader; and a replica's CPU time
    per SET it applied (their mean), which competes with the leader on a small machine.
Every wait is bounded; the servers and their directories go on exit."""
import os
import socket
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
MB = int(os.environ.get("REPL_BENCH_MB", "64" if QUICK else "1024"))
HIST_ROWS = int(os.environ.get("REPL_BENCH_HIST_ROWS", "20000" if QUICK else "200000"))
SYNCS = int(os.environ.get("REPL_BENCH_SYNCS", "1" if QUICK else "3"))
PROBES = int(os.environ.get("REPL_BENCH_PROBES", "300" if QUICK else "2000"))
RATE = int(os.environ.get("REPL_BENCH_RATE", "50000"))
WRITES = int(os.environ.get("REPL_BENCH_WRITES", "50000" if QUICK else "300000"))
ROUNDS = int(os.environ.get("REPL_BENCH_ROUNDS", "1" if QUICK else "5"))


def caught_up(leader, replica, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        ri = replica.info("replication")
        if (ri.get("master_link_status") == "up" and
                ri.get("slave_repl_offset") == leader.info("replication")["master_repl_offset"]):
            return
        time.sleep(0.01)
    raise SystemExit("repl_bench: the replica did not catch up in %ds" % timeout)


class Pipe:
    """A raw connection for pipelined SETs whose replies are all +OK: the commands are
    encoded once, the replies counted, not parsed (redis-py would cost more than the
    server does)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))

    def send(self, data, n):
        self.sock.sendall(data)
        want, got = 5 * n, bytearray()
        while len(got) < want:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise SystemExit("repl_bench: the server closed the connection")
            got += chunk
        if got != b"+OK\r\n" * n:
            raise SystemExit("repl_bench: a SET failed: %r" % bytes(got[:200]))

    def close(self):
        self.sock.close()


def set_batch(prefix, first, n, value):
    head = b"$%d\r\n%s\r\n" % (len(value), value)
    return b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s%d\r\n" % (len(prefix) + len(str(i)), prefix, i)
                    + head for i in range(first, first + n))


def load(server, r):
    p = Pipe(server.port)
    block = os.urandom(1 << 16) * 2
    n = MB * 1024
    for first in range(0, n, 2000):
        k = min(2000, n - first)
        value_of = [block[(i * 4099) % (1 << 16):][:1024] for i in range(first, first + k)]
        p.send(b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\nkey:%d\r\n$1024\r\n%s\r\n"
                        % (4 + len(str(i)), i, value_of[i - first])
                        for i in range(first, first + k)), k)
    p.close()
    r.execute_command("FS.ENTITY.CREATE", "e", "TYPE", "INT64")
    r.execute_command("FS.VIEW.CREATE", "v", "ENTITIES", 1, "e", "SCHEMA", "a", "FLOAT64",
                      "b", "STRING")
    pipe = r.pipeline(transaction=False)
    for i in range(HIST_ROWS):
        pipe.execute_command("FS.PUSH", "v", i % 1000, 1000 + i, "FIELDS", "a", i, "b", "row")
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def full_syncs(leader, lr):
    rates, rows = [], []
    with harness.Server(durability="no") as rep:
        rr = rep.client()
        for _ in range(SYNCS):
            out0 = lr.info("stats")["total_net_output_bytes"]
            t0 = time.time()
            rr.execute_command("REPLICAOF", "127.0.0.1", leader.port)
            caught_up(lr, rr)
            dt = time.time() - t0
            sent = lr.info("stats")["total_net_output_bytes"] - out0
            rates.append(sent / 1e6 / dt)
            rr.execute_command("REPLICAOF", "NO", "ONE")  # the next REPLICAOF syncs fully
    rows.append(("full sync: bytes sent (LMDB records + history)", "%.1f MB" % (sent / 1e6)))
    rows.append(("full sync: throughput (bytes sent / time to caught up)",
                 "%.0f MB/s median of %d (%.0f-%.0f)"
                 % (statistics.median(rates), len(rates), min(rates), max(rates))))
    return rows


def lag(leader, lr):
    with harness.Server(durability="no", replicaof="127.0.0.1 %d" % leader.port) as rep:
        caught_up(lr, rep.client())
        stop = threading.Event()
        sent = [0]

        def background():  # RATE writes a second in rounds of 500
            p = Pipe(leader.port)
            batch = set_batch(b"w:", 0, 500, b"v" * 64)
            t0 = time.time()
            while not stop.is_set():
                ahead = sent[0] / RATE - (time.time() - t0)
                if ahead > 0:
                    time.sleep(ahead)
                p.send(batch, 500)
                sent[0] += 500
            p.close()
        t = threading.Thread(target=background)
        t0 = time.time()
        t.start()
        lags = []
        for i in range(PROBES):
            lr.set(b"probe", i)
            t1 = time.perf_counter()
            lr.execute_command("WAIT", 1, 0)
            lags.append((time.perf_counter() - t1) * 1000)
        stop.set()
        t.join()
        rate = sent[0] / (time.time() - t0)
    lags.sort()
    pct = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]  # noqa: E731
    return [("lag (SET then WAIT 1), writer at %.0f SET/s: p50" % rate, "%.2f ms" % pct(0.5)),
            ("lag (SET then WAIT 1), writer at %.0f SET/s: p99" % rate, "%.2f ms" % pct(0.99))]


def cpu_s(server):
    """The server process's CPU seconds so far, all its threads: schedstat counts in ns
    (/proc/PID/stat's clock ticks are 10 ms, too coarse for a quick run)."""
    task = "/proc/%d/task" % server.proc.pid
    total = 0
    for tid in os.listdir(task):
        try:
            with open(os.path.join(task, tid, "schedstat")) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # the thread ended
    return total / 1e9


def write_rate_raw(server):
    p = Pipe(server.port)
    batch = set_batch(b"w:", 0, 1000, b"v" * 64)
    t0 = time.time()
    for _ in range(WRITES // 1000):
        p.send(batch, 1000)
    dt = time.time() - t0
    p.close()
    return WRITES // 1000 * 1000 / dt


def write_rate_redispy(server):
    r = server.client()
    p = r.pipeline(transaction=False)
    n = WRITES // 4  # redis-py is slower: a quarter of the writes take as long
    t0 = time.time()
    for i in range(n):
        p.set(b"w:%d" % (i % 1000), b"v" * 64)
        if i % 1000 == 999:
            p.execute()
    p.execute()
    return n / (time.time() - t0)


def write_ratio(rate, what, writes):
    """On a small leader, so that attaching the replicas again is quick; the rounds
    alternate, so that the machine's other load falls on both sides alike."""
    with harness.Server(durability="no") as leader, harness.Server(durability="no") as a, \
            harness.Server(durability="no") as b:
        lr = leader.client()
        alone, with2, cpu0, cpu2, rcpu = [], [], 0.0, 0.0, 0.0
        for _ in range(ROUNDS):
            c0 = cpu_s(leader)
            alone.append(rate(leader))
            cpu0 += cpu_s(leader) - c0
            for s in (a, b):
                s.client().execute_command("REPLICAOF", "127.0.0.1", leader.port)
            for s in (a, b):
                caught_up(lr, s.client())
            c0, r0 = cpu_s(leader), cpu_s(a) + cpu_s(b)
            with2.append(rate(leader))
            for s in (a, b):
                caught_up(lr, s.client())
            cpu2 += cpu_s(leader) - c0  # with the ACKs of the catching up
            rcpu += (cpu_s(a) + cpu_s(b) - r0) / 2
            for s in (a, b):
                s.client().execute_command("REPLICAOF", "NO", "ONE")
    m0, m2 = statistics.median(alone), statistics.median(with2)
    return [("SET/s, %s, no replica (median of %d)" % (what, ROUNDS), "%.0f" % m0),
            ("SET/s, %s, 2 replicas (median of %d)" % (what, ROUNDS),
             "%.0f (%.2fx; rounds %s)" % (m2, m2 / m0, " ".join("%.2f" % (y / x)
                                                                for x, y in zip(alone, with2)))),
            ("leader CPU per SET, %s: alone / 2 replicas" % what,
             "%.2f / %.2f us" % (cpu0 / (ROUNDS * writes) * 1e6, cpu2 / (ROUNDS * writes) * 1e6)),
            ("a replica's CPU per SET applied, %s" % what,
             "%.2f us" % (rcpu / (ROUNDS * writes) * 1e6))]


def main():
    rows = []
    with harness.Server(durability="no", lmdb_map_size="%dmb" % (MB * 3 + 256)) as leader:
        lr = leader.client()
        t0 = time.time()
        load(leader, lr)
        rows.append(("full sync: LMDB bytes in use (loaded in %.0f s)" % (time.time() - t0),
                     "%.1f MB" % (lr.info("memory")["lmdb_used_bytes"] / 1e6)))
        rows += full_syncs(leader, lr)
        rows += lag(leader, lr)
    rows += write_ratio(write_rate_raw, "raw pipeline (server-bound)", WRITES // 1000 * 1000)
    rows += write_ratio(write_rate_redispy, "redis-py pipeline", WRITES // 4)
    width = max(len(k) for k, _ in rows)
    print("replication on 127.0.0.1, %d CPUs" % os.cpu_count())
    for k, v in rows:
        print("  %-*s  %s" % (width, k, v))


if __name__ == "__main__":
    main()
