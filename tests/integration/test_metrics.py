"""metrics-port: the Prometheus endpoint. Every scrape is parsed strictly as text format
0.0.4 (names, label syntax and escapes, one HELP and TYPE per family before its samples,
families not interleaved, values that parse as floats, no duplicate series, counters ending
in _total, histograms cumulative with +Inf equal to _count). Values are checked against
what the server says over RESP (DBSIZE, INFO) after real work: strings in two databases,
errors, the feature store, an FT index, a replica. HTTP: 404 for other paths, 405 for other
methods, HEAD, garbage and oversized requests answered or closed while the server carries
on; metrics-port 0 (the default) listens on nothing; a port in use stops the start."""
import http.client
import re
import socket
import struct
import unittest
import urllib.error
import urllib.request

import harness
from harness import listening_ports, wait_for

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
VALUE = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN"
SAMPLE = re.compile(r"^(%s)(?:\{((?:%s=%s)(?:,%s=%s)*,?)?\})? (%s)(?: -?\d+)?$" %
                    (NAME, LABEL_NAME, LABEL_VALUE, LABEL_NAME, LABEL_VALUE, VALUE))
LABEL = re.compile(r"(%s)=(%s)" % (LABEL_NAME, LABEL_VALUE))
HELP = re.compile(r"^# HELP (%s) (.*)$" % NAME)
TYPE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % NAME)
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}

# Every metric the server exports from a leader's INFO (metrics.c's tables): one that goes
# missing means INFO changed a field's name under the metrics.
LEADER_METRICS = """build_info uptime_seconds connected_clients maxclients memory_used_bytes
memory_rss_bytes memory_max_bytes lmdb_map_size_bytes lmdb_used_bytes loading lmdb_commits_total
lmdb_syncs_total lmdb_failed_commits_total last_sync_timestamp_seconds
connections_received_total rejected_connections_total commands_processed_total
instantaneous_ops_per_second net_input_bytes_total net_output_bytes_total expired_keys_total
evicted_keys_total keyspace_hits_total keyspace_misses_total
client_output_buffer_limit_disconnections_total protocol_errors_total
failed_write_passes_total replication_sync_full_total replication_sync_partial_ok_total
replication_sync_partial_err_total replication_role replication_connected_replicas
replication_offset_bytes replication_backlog_size_bytes replication_backlog_history_bytes
fs_entities fs_views fs_services fs_pushes_total fs_history_batches_total
fs_history_rows_total fs_history_write_errors_total vector_indexes vector_indexes_building
vector_documents vector_memory_bytes vector_hash_indexing_failures
vector_snapshots_written_total vector_snapshot_failures_total vector_snapshot_loads_total
vector_rebuilds_total db_keys db_keys_expiring command_calls_total
command_failed_calls_total command_rejected_calls_total command_duration_seconds_total
command_latency_seconds""".split()
REPLICA_METRICS = """replication_master_link_up replication_master_last_io_seconds
replication_master_sync_in_progress""".split()
LEADER_WITH_REPLICA_METRICS = """replication_replica_offset_bytes
replication_replica_lag_seconds""".split()


def unescape(v):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), v[1:-1])


def parse(text):
    """Parses an exposition strictly; returns {family: (type, {(name, labels): value})}
    where labels is a sorted tuple of (name, value). Fails the calling test on any fault."""
    assert text.endswith("\n"), "the last line must end with a newline"
    families, helps, current, done = {}, set(), None, set()
    for line in text[:-1].split("\n"):
        m = HELP.match(line)
        if m:
            assert m.group(1) not in helps, "second HELP for " + m.group(1)
            assert m.group(1) not in families, "HELP after TYPE for " + m.group(1)
            assert not re.search(r"\\[^\\n]", m.group(2)), "bad escape in HELP: " + line
            helps.add(m.group(1))
            continue
        m = TYPE.match(line)
        if m:
            name = m.group(1)
            assert name not in families, "second TYPE for " + name
            assert name.startswith("quiver_"), name
            if m.group(2) == "counter":
                assert name.endswith("_total"), "counter without _total: " + name
            if current:
                done.add(current)
            families[name] = (m.group(2), {})
            current = name
            continue
        assert not line.startswith("#"), "unexpected comment: " + line
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        pairs = LABEL.findall(labels)
        assert ",".join("%s=%s" % p for p in pairs) == labels.rstrip(","), line
        names = [p[0] for p in pairs]
        assert len(set(names)) == len(names), "repeated label: " + line
        family = owner(families, name)
        assert family, "sample before its TYPE: " + line
        assert family == current, "family %s interleaved: %s" % (family, line)
        key = (name, tuple(sorted((k, unescape(v)) for k, v in pairs)))
        series = families[family][1]
        assert key not in series, "duplicate series: " + line
        series[key] = float(value)
    for name, (kind, series) in families.items():
        assert series, "family without samples: " + name
        if kind == "histogram":
            check_histogram(name, series)
    return families


def owner(families, sample):
    for fam, (kind, _) in families.items():
        if any(sample == fam + s for s in SUFFIXES.get(kind, ("",))):
            return fam
    return None


def check_histogram(name, series):
    groups = {}
    for (sname, labels), v in series.items():
        rest = tuple(l for l in labels if l[0] != "le")
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if sname == name + "_bucket":
            le = dict(labels)["le"]
            g["buckets"].append((float(le), v))
        else:
            assert "le" not in dict(labels), sname
            g["sum" if sname.endswith("_sum") else "count"] = v
    for rest, g in groups.items():
        b = sorted(g["buckets"])
        assert b and b[-1][0] == float("inf"), "no +Inf bucket in %s%s" % (name, rest)
        counts = [c for _, c in b]
        assert counts == sorted(counts), "buckets not cumulative in %s%s" % (name, rest)
        assert g["count"] == b[-1][1], "_count != +Inf bucket in %s%s" % (name, rest)
        assert g["sum"] is not None and g["sum"] >= 0, "no _sum in %s%s" % (name, rest)


def value(fams, name, **labels):
    """The value of the sample quiver_<name> whose labels include the given ones."""
    fam = owner(fams, "quiver_" + name)
    assert fam, "no family for " + name
    for (sname, l), v in fams[fam][1].items():
        if sname == "quiver_" + name and all(x in l for x in labels.items()):
            return v
    raise AssertionError("no sample %s %r" % (name, labels))


class Base(unittest.TestCase):
    def server(self, **opts):
        s = harness.Server(**opts)
        s.__enter__()
        self.addCleanup(s.__exit__, None, None, None)
        return s

    def metrics_server(self, **opts):
        port = harness.free_port()
        s = self.server(metrics_port=port, **opts)
        s.metrics_port = port
        return s

    def scrape(self, s):
        url = "http://127.0.0.1:%d/metrics" % s.metrics_port
        with urllib.request.urlopen(url, timeout=10) as resp:
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.headers["Content-Type"],
                             "text/plain; version=0.0.4; charset=utf-8")
            return parse(resp.read().decode("utf-8"))

    def request(self, s, method, path):
        conn = http.client.HTTPConnection("127.0.0.1", s.metrics_port, timeout=10)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()


class TestValues(Base):
    def test_values_follow_the_work_done(self):
        s = self.metrics_server()
        r = s.client()
        before = self.scrape(s)
        for name in LEADER_METRICS:
            if name.startswith(("db_", "command_")):
                continue  # none yet: no keys, and the scrape itself is no command
            self.assertIn("quiver_" + name, before, name)

        for i in range(20):
            r.set("k%d" % i, i)
        for i in range(5):
            r.set("t%d" % i, i, ex=1000)
        r.execute_command("SELECT", 3)
        for i in range(7):
            r.set("db3:%d" % i, i)
        r.execute_command("SELECT", 0)
        r.get("k1")
        r.get("missing")
        r.append("str", "abc")
        with self.assertRaises(Exception):
            r.execute_command("INCR", "str")
        r.execute_command("FS.ENTITY.CREATE", "driver", "TYPE", "INT64")
        r.execute_command("FS.VIEW.CREATE", "stats", "ENTITIES", 1, "driver", "SCHEMA",
                          "rate", "FLOAT64")
        for i in range(4):
            r.execute_command("FS.PUSH", "stats", i, 1000 + i, "FIELDS", "rate", i / 2)
        r.execute_command("FT.CREATE", "idx", "PREFIX", 1, "doc:", "SCHEMA", "v", "VECTOR",
                          "FLAT", 6, "TYPE", "FLOAT32", "DIM", 2, "DISTANCE_METRIC", "L2")
        for i in range(6):
            r.hset("doc:%d" % i, "v", struct.pack("2f", i, i))
        r.execute_command("FT.SEARCH", "idx", "*=>[KNN 2 @v $q]", "PARAMS", 2, "q",
                          struct.pack("2f", 0, 0), "DIALECT", 2)
        wait_for(lambda: r.info("vector")["vector_documents"] == 6, "the FT index to fill")

        after = self.scrape(s)
        for name in LEADER_METRICS:
            self.assertIn("quiver_" + name, after, name)
        info = r.info("everything")
        self.assertGreater(value(after, "commands_processed_total"),
                           value(before, "commands_processed_total"))
        self.assertEqual(value(after, "db_keys", db="db0"), r.dbsize())
        self.assertEqual(value(after, "db_keys", db="db0"), 20 + 5 + 6 + 1)
        self.assertEqual(value(after, "db_keys_expiring", db="db0"), 5)
        self.assertEqual(value(after, "db_keys", db="db3"), 7)
        self.assertEqual(value(after, "command_calls_total", cmd="set"), 32)
        self.assertEqual(value(after, "command_calls_total", cmd="set"),
                         info["cmdstat_set"]["calls"])
        self.assertEqual(value(after, "command_failed_calls_total", cmd="incr"), 1)
        self.assertEqual(value(after, "command_latency_seconds_count", cmd="set"), 32)
        self.assertEqual(value(after, "command_latency_seconds_bucket", cmd="set", le="+Inf"), 32)
        self.assertAlmostEqual(value(after, "command_duration_seconds_total", cmd="set"),
                               info["cmdstat_set"]["usec"] / 1e6)
        self.assertEqual(value(after, "keyspace_hits_total"), info["keyspace_hits"])
        self.assertEqual(value(after, "keyspace_misses_total"), info["keyspace_misses"])
        self.assertEqual(value(after, "fs_entities"), 1)
        self.assertEqual(value(after, "fs_views"), 1)
        self.assertEqual(value(after, "fs_pushes_total"), 4)
        self.assertEqual(value(after, "vector_indexes"), 1)
        self.assertEqual(value(after, "vector_documents"), 6)
        self.assertEqual(value(after, "command_calls_total", cmd="ft.search"), 1)
        self.assertEqual(value(after, "replication_role", role="master"), 1)
        self.assertEqual(value(after, "replication_offset_bytes"), info["master_repl_offset"])
        self.assertEqual(value(after, "build_info", version=info["quiver_version"]), 1)
        self.assertGreater(value(after, "net_input_bytes_total"),
                           value(before, "net_input_bytes_total"))

    def test_replication_metrics_on_leader_and_replica(self):
        # No stream PINGs during the test: they would move the offset between the catch-up
        # and the scrapes compared with it.
        leader = self.metrics_server(repl_ping_replica_period=3600)
        replica = self.metrics_server(replicaof="127.0.0.1 %d" % leader.port)
        lr, rr = leader.client(), replica.client()
        for i in range(50):
            lr.set("k%d" % i, "v" * i)

        def caught_up():
            ri = rr.info("replication")
            return (ri.get("master_link_status") == "up" and
                    ri.get("slave_repl_offset") == lr.info("replication")["master_repl_offset"]
                    and lr.info("replication").get("slave0", {}).get("offset") ==
                    lr.info("replication")["master_repl_offset"])
        wait_for(caught_up, "the replica to catch up and acknowledge")

        lm, rm = self.scrape(leader), self.scrape(replica)
        for name in LEADER_WITH_REPLICA_METRICS:
            self.assertIn("quiver_" + name, lm, name)
        for name in REPLICA_METRICS:
            self.assertIn("quiver_" + name, rm, name)
        offset = lr.info("replication")["master_repl_offset"]
        self.assertEqual(value(lm, "replication_connected_replicas"), 1)
        self.assertEqual(value(lm, "replication_replica_offset_bytes", ip="127.0.0.1",
                               port=str(replica.port), state="online"), offset)
        self.assertGreaterEqual(value(lm, "replication_replica_lag_seconds"), 0)
        self.assertEqual(value(lm, "replication_sync_full_total"), 1)
        self.assertEqual(value(rm, "replication_role", role="slave"), 1)
        self.assertEqual(value(rm, "replication_master_link_up"), 1)
        self.assertEqual(value(rm, "replication_offset_bytes"), offset)
        self.assertEqual(value(rm, "db_keys", db="db0"), 50)

        leader.stop()
        wait_for(lambda: value(self.scrape(replica), "replication_master_link_up") == 0,
                 "the replica to see its link down")
        self.assertIn("quiver_replication_master_link_down_seconds", self.scrape(replica))


class TestHttp(Base):
    def test_other_paths_and_methods(self):
        s = self.metrics_server()
        status, headers, body = self.request(s, "GET", "/nope")
        self.assertEqual(status, 404)
        status, headers, body = self.request(s, "GET", "/metricsx")
        self.assertEqual(status, 404)
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            status, headers, body = self.request(s, method, "/metrics")
            self.assertEqual(status, 405, method)
            self.assertEqual(headers.get("Allow"), "GET, HEAD", method)
        status, headers, body = self.request(s, "HEAD", "/metrics")
        self.assertEqual((status, body), (200, b""))
        status, headers, body = self.request(s, "GET", "/metrics?name=x")
        self.assertEqual(status, 200)
        parse(body.decode())
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen("http://127.0.0.1:%d/" % s.metrics_port, timeout=10)
        self.assertEqual(e.exception.code, 404)

    def exchange(self, s, data):
        """Sends data, then reads until the server closes; returns what it answered."""
        with socket.create_connection(("127.0.0.1", s.metrics_port), timeout=10) as c:
            try:
                c.sendall(data)
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # closed while we were still sending: that is an answer too
            got = b""
            try:
                while True:
                    chunk = c.recv(65536)
                    if not chunk:
                        return got
                    got += chunk
            except ConnectionResetError:
                return got

    def test_bad_and_huge_requests_are_closed_and_harm_nothing(self):
        s = self.metrics_server()
        r = s.client()
        r.set("a", "1")
        cases = [
            b"\x00\x01\x02 garbage\r\n\r\n",
            b"*1\r\n$4\r\nPING\r\n",
            b"GET /metrics HTTP/9.9\r\n\r\n",
            b"GET " + b"/" * (1 << 20) + b" HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nX: " + b"y" * (1 << 20) + b"\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\n" + b"H: v\r\n" * 20000 + b"\r\n",
            b"POST /metrics HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n" + b"z" * 100000,
            b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\n",
        ]
        for data in cases:
            got = self.exchange(s, data)
            # a 4xx, or closed without a word (a send cut short can lose the answer)
            self.assertRegex(got, rb"^(HTTP/1\.1 4\d\d |$)", data[:40])
            self.assertEqual(r.ping(), True)
        self.assertEqual(r.get("a"), b"1")
        fams = self.scrape(s)
        self.assertEqual(value(fams, "db_keys", db="db0"), 1)
        # a client that sends half a request and waits does not hold up the others
        with socket.create_connection(("127.0.0.1", s.metrics_port), timeout=10) as c:
            c.sendall(b"GET /metr")
            self.scrape(s)
            self.assertEqual(r.ping(), True)


class TestStartup(Base):
    def test_metrics_port_zero_listens_on_nothing_more(self):
        plain = self.server()
        self.assertEqual(plain.client().config_get("metrics-port"), {"metrics-port": "0"})
        self.assertEqual(listening_ports(plain.proc.pid), {plain.port})
        s = self.metrics_server()
        self.assertEqual(listening_ports(s.proc.pid), {s.port, s.metrics_port})
        self.assertEqual(s.client().config_get("metrics-port"),
                         {"metrics-port": str(s.metrics_port)})

    def test_metrics_port_in_use_stops_the_start(self):
        s = harness.Server()
        s.options["metrics_port"] = s.port  # the RESP port takes it first
        with self.assertRaises(RuntimeError) as e:
            s.__enter__()
        self.addCleanup(s.__exit__, None, None, None)
        self.assertIn("cannot listen on 127.0.0.1:%d" % s.port, str(e.exception))

    def test_metrics_port_is_not_settable_at_run_time(self):
        s = self.server()
        with self.assertRaises(Exception):
            s.client().config_set("metrics-port", harness.free_port())


if __name__ == "__main__":
    unittest.main()
