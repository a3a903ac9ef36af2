"""quiver-load and quiver-join against a real quiver-server: Feast's driver_stats table loaded
through the CSV loader must land in history row for row (duplicated event times resolved by
`created`), a point-in-time join through quiver-join must give what FS.ASOF gives row by
row, and bad input (malformed CSV, unknown columns, refused rows, a refused connection) must
fail with a clear message and exit status 1.

The tools are looked for beside the server binary (QUIVER_BIN), or in QUIVER_TOOLS_DIR.
Run with Debian's /usr/bin/python3 (it has python3-redis)."""
import collections
import csv
import io
import os
import random
import socket
import subprocess
import tempfile
import unittest

import harness
from harness import Server

TOOLS = os.environ.get("QUIVER_TOOLS_DIR", os.path.dirname(os.path.abspath(harness.BINARY)))
LOAD = os.path.join(TOOLS, "quiver-load")
JOIN = os.path.join(TOOLS, "quiver-join")
DATA = os.path.join(harness.ROOT, "..", "shared", "data", "featurestore")
DRIVER_STATS = os.path.join(DATA, "driver_stats.csv")
DRIVER_FEATURES = os.path.join(DATA, "sdk_python_tests_data_driver_features.csv")
FIELDS = ["conv_rate", "acc_rate", "avg_daily_trips"]


def read_csv(path_or_text):
    if os.path.exists(path_or_text):
        with open(path_or_text, newline="") as f:
            return list(csv.reader(f))
    return list(csv.reader(io.StringIO(path_or_text, newline="")))


def cell(v):
    """A reply value as quiver-join writes it: NULL empty, integers in decimal, bulk as is."""
    if v is None:
        return ""
    if isinstance(v, int):
        return str(v)
    return v.decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ToolsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool in (LOAD, JOIN):
            if not os.access(tool, os.X_OK):
                raise unittest.SkipTest("%s is not built (make quiver-load quiver-join)" % tool)
        if not os.path.exists(DRIVER_STATS):
            raise unittest.SkipTest("no shared data at " + DATA)
        cls.server = Server()
        cls.server.__enter__()
        cls.r = cls.server.client()
        cls.tmp = tempfile.mkdtemp(prefix="quiver-tools-")
        cls.r.execute_command("FS.ENTITY.CREATE", "driver_id", "TYPE", "INT64")
        cls.driver_view("driver_hourly_stats")
        cls.loaded = cls.tool(LOAD, "--view", "driver_hourly_stats", "--entity", "driver_id",
                              "--ts", "event_timestamp", "--created", "created", DRIVER_STATS)

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)
        subprocess.run(["rm", "-rf", cls.tmp])

    @classmethod
    def driver_view(cls, name):
        cls.r.execute_command("FS.VIEW.CREATE", name, "ENTITIES", 1, "driver_id", "SCHEMA",
                              "conv_rate", "FLOAT64", "acc_rate", "FLOAT64",
                              "avg_daily_trips", "INT64")

    @classmethod
    def tool(cls, binary, *args, stdin=None, port=None):
        conn = ["-h", cls.server.host, "-p", str(port or cls.server.port)]
        return subprocess.run([binary, *conn, *args], input=stdin, capture_output=True,
                              timeout=300)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w", newline="") as f:
            f.write(text)
        return path

    def history(self, view, key):
        return self.r.execute_command("FS.HISTORY", view, key, "COUNT", 1000000)

    def assert_fails(self, p, *needles):
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 1, err)
        for n in needles:
            self.assertIn(n, err)

    # ---- quiver-load ----

    def test_load_driver_stats(self):
        p = self.loaded
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("1,808 rows loaded", p.stderr.decode())
        with open(DRIVER_STATS, newline="") as f:
            rows = list(csv.DictReader(f))
        # one history row per distinct (driver, event, created): a repeated triple is the
        # same history key written again
        by_driver = collections.defaultdict(set)
        for row in rows:
            by_driver[row["driver_id"]].add((row["event_timestamp"], row["created"]))
        total = 0
        for driver, keys in by_driver.items():
            h = self.history("driver_hourly_stats", driver)
            self.assertEqual(len(h), len(keys), driver)
            total += len(h)
        self.assertEqual(total, len({(r["driver_id"], r["event_timestamp"], r["created"])
                                     for r in rows}))

    def test_duplicated_event_times_resolve_by_created(self):
        with open(DRIVER_STATS, newline="") as f:
            rows = list(csv.DictReader(f))
        groups = collections.defaultdict(list)
        for row in rows:
            groups[(row["driver_id"], row["event_timestamp"])].append(row)
        dups = {k: g for k, g in groups.items() if len(g) > 1}
        self.assertTrue(dups, "driver_stats.csv has duplicated (driver_id, event_timestamp)")
        for (driver, ts), g in dups.items():
            newest = max(r["created"] for r in g)
            # rows with the same created are the same history key: the last one pushed stays
            want = [r for r in g if r["created"] == newest][-1]
            got = self.r.execute_command("FS.ASOF", "driver_hourly_stats", driver, ts)
            self.assertEqual([float(got[0]), float(got[1]), got[2]],
                             [float(want["conv_rate"]), float(want["acc_rate"]),
                              int(want["avg_daily_trips"])])

    def test_created_breaks_ties_whatever_the_file_order(self):
        self.driver_view("ties")
        path = self.write("ties.csv",
                          "driver_id,event_timestamp,created,conv_rate,acc_rate,avg_daily_trips\r\n"
                          "7,2021-05-01T10:00:00Z,2021-05-02T00:00:00Z,0.9,0.9,9\r\n"
                          "7,2021-05-01T10:00:00Z,2021-05-01T00:00:00Z,0.1,0.1,1\r\n"
                          "7,2021-05-01T09:00:00Z,2021-05-01T09:00:00Z,0.5,0.5,5\r\n")
        p = self.tool(LOAD, "--view", "ties", "--entity", "driver_id", "--ts",
                      "event_timestamp", "--created", "created", path)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(len(self.history("ties", "7")), 3)
        self.assertEqual(self.r.execute_command("FS.ASOF", "ties", "7", "2021-05-01T10:00:00Z"),
                         [b"0.9", b"0.9", 9])
        self.assertEqual(self.r.execute_command("FS.GET", "ties", "7"), [b"0.9", b"0.9", 9])

    def test_null_cells_and_empty_strings(self):
        self.r.execute_command("FS.ENTITY.CREATE", "user", "TYPE", "STRING")
        self.r.execute_command("FS.VIEW.CREATE", "profile", "ENTITIES", 1, "user", "SCHEMA",
                               "name", "STRING", "age", "INT32", "score", "FLOAT32")
        path = self.write("profile.csv",
                          "user,ts,name,age,score\n"
                          "u1,1000,,7,\n"
                          "u2,1000,\"\",,1.5\n"
                          "u3,1000,\"Smith, \"\"J\"\"\nline two\",1,0\n")
        p = self.tool(LOAD, "--view", "profile", "--entity", "user", "--ts", "ts", path)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        get = lambda u: self.r.execute_command("FS.GET", "profile", u)
        self.assertEqual(get("u1"), [None, 7, None])
        self.assertEqual(get("u2"), [b"", None, b"1.5"])
        self.assertEqual(get("u3"), [b'Smith, "J"\nline two', 1, b"0"])

    def test_composite_keys_are_escaped(self):
        self.r.execute_command("FS.ENTITY.CREATE", "shop", "TYPE", "STRING")
        self.r.execute_command("FS.ENTITY.CREATE", "item", "TYPE", "STRING")
        self.r.execute_command("FS.VIEW.CREATE", "stock", "ENTITIES", 2, "shop", "item",
                               "SCHEMA", "qty", "INT64")
        path = self.write("stock.csv",
                          "item,qty,shop,ts\n"
                          "a:b,5,paris\\east,2021-01-01T00:00:00Z\n"
                          "c,6,x:,2021-01-01T00:00:00Z\n")
        p = self.tool(LOAD, "--view", "stock", "--entity", "shop,item", "--ts", "ts", path)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(self.r.execute_command("FS.GET", "stock", "paris\\\\east:a\\:b"), [5])
        self.assertEqual(self.r.execute_command("FS.GET", "stock", "x\\::c"), [6])

    def test_epoch_seconds(self):
        self.r.execute_command("FS.ENTITY.CREATE", "drivers", "TYPE", "INT64")
        self.r.execute_command("FS.VIEW.CREATE", "driver_features", "ENTITIES", 1, "drivers",
                               "SCHEMA", "completed", "INT64", "avg_distance_completed",
                               "FLOAT64", "avg_customer_distance_completed", "FLOAT64",
                               "avg_distance_cancelled", "FLOAT64")
        p = self.tool(LOAD, "--view", "driver_features", "--entity", "drivers", "--ts",
                      "datetime", "--ts-unit", "s", DRIVER_FEATURES)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        rows = read_csv(DRIVER_FEATURES)
        for row in rows[1:]:
            h = self.history("driver_features", row[0])
            self.assertEqual(len(h), 1)
            self.assertEqual(h[0][0], int(row[1]) * 1000)
            self.assertEqual(h[0][2][0], int(row[2]))
            self.assertEqual(float(h[0][2][1]), float(row[3]))

    def test_stdin_fields_and_to_online(self):
        self.driver_view("from_stdin")
        text = ("event_timestamp,driver_id,conv_rate,acc_rate,avg_daily_trips\r\n"
                "1700000000000,1,0.25,0.5,3\r\n"
                "1700000001000,2,0.75,0.5,4\r\n")
        p = self.tool(LOAD, "--view", "from_stdin", "--entity", "driver_id", "--ts",
                      "event_timestamp", "--fields", "avg_daily_trips,conv_rate", "--to",
                      "online", "-", stdin=text.encode())
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("2 rows loaded", p.stderr.decode())
        self.assertEqual(self.r.execute_command("FS.GET", "from_stdin", "2"), [b"0.75", None, 4])
        self.assertEqual(self.history("from_stdin", "2"), [])  # TO ONLINE: no history

    def test_refused_row_names_its_line(self):
        text = ("driver_id,event_timestamp,conv_rate,acc_rate,avg_daily_trips\n"
                "1,1000,0.5,0.5,1\n"
                "2,1000,not-a-number,0.5,1\n"
                "3,1000,0.5,0.5,1\n")
        path = self.write("refused.csv", text)
        for view, skip in (("refused", []), ("refused_skip", ["--skip-errors"])):
            self.driver_view(view)
            p = self.tool(LOAD, *skip, "--view", view, "--entity", "driver_id", "--ts",
                          "event_timestamp", path)
            err = p.stderr.decode()
            self.assertEqual(p.returncode, 0 if skip else 1, err)
            self.assertIn("line 3: ", err)
            self.assertIn("conv_rate", err)
            self.assertIn("1 refused" + (" (skipped)" if skip else ""), err)
            self.assertEqual(len(self.history(view, "1")), 1)
            self.assertEqual(len(self.history(view, "2")), 0)
        # rows after a refused one may have been sent already; --skip-errors sends them all
        self.assertEqual(len(self.history("refused_skip", "3")), 1)

    def test_unknown_view_is_the_servers_error(self):
        p = self.tool(LOAD, "--view", "no_such_view", "--entity", "driver_id", "--ts",
                      "event_timestamp", DRIVER_STATS)
        self.assert_fails(p, "line 2:", "no_such_view")

    def test_bad_csv_changes_nothing(self):
        self.driver_view("bad_csv")
        args = ["--view", "bad_csv", "--entity", "driver_id", "--ts", "event_timestamp"]
        cases = [
            ("driver_id,event_timestamp,conv_rate\n1,1000,0.5\n2,1000\n",
             ["line 3: 2 fields where the header has 3", "nothing was sent"]),
            ("driver_id,event_timestamp,conv_rate\n1,1000,0.5\n2,1000,\"open\n",
             ["line 3: quoted field not closed", "nothing was sent"]),
            ("driver_id,event_timestamp,conv_rate\n1,1000,0.5\n,1000,0.5\n3,,1\n",
             ["line 3: no value in the entity column 'driver_id'",
              "line 4: no timestamp in the column 'event_timestamp'", "nothing was sent"]),
        ]
        for text, needles in cases:
            p = self.tool(LOAD, *args, self.write("bad.csv", text))
            self.assert_fails(p, *needles)
            self.assertEqual(self.history("bad_csv", "1"), [])

    def test_unknown_columns(self):
        base = ["--view", "driver_hourly_stats", "--ts", "event_timestamp"]
        p = self.tool(LOAD, *base, "--entity", "driver", DRIVER_STATS)
        self.assert_fails(p, "--entity: no column 'driver' in the header (columns: "
                          "event_timestamp, driver_id,")
        p = self.tool(LOAD, *base, "--entity", "driver_id", "--fields", "conv_rate,nope",
                      DRIVER_STATS)
        self.assert_fails(p, "--fields: no column 'nope'")
        p = self.tool(LOAD, *base, "--entity", "driver_id", "--created", "made", DRIVER_STATS)
        self.assert_fails(p, "--created: no column 'made'")

    def test_usage_and_connection_errors(self):
        p = subprocess.run([LOAD, "--help"], capture_output=True)
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"Usage: quiver-load", p.stdout)
        p = subprocess.run([JOIN, "--help"], capture_output=True)
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"Usage: quiver-join", p.stdout)
        p = subprocess.run([LOAD, "--view", "v", "--ts", "t", DRIVER_STATS], capture_output=True)
        self.assert_fails(p, "--entity is required")
        p = subprocess.run([LOAD, "--view", "v", "--entity", "e", "--ts", "t", "--to", "nowhere",
                            DRIVER_STATS], capture_output=True)
        self.assert_fails(p, "--to must be online, offline or both")
        p = subprocess.run([JOIN, "--ts", "t", DRIVER_STATS], capture_output=True)
        self.assert_fails(p, "give either --service or --features")
        p = subprocess.run([JOIN, "--features", "v:f", "--ts", "t", "--batch", "0",
                            DRIVER_STATS], capture_output=True)
        self.assert_fails(p, "--batch wants an integer")
        port = free_port()
        p = self.tool(LOAD, "--view", "v", "--entity", "driver_id", "--ts", "event_timestamp",
                      DRIVER_STATS, port=port)
        self.assert_fails(p, "cannot connect to", "Connection refused")
        p = self.tool(JOIN, "--features", "v:f", "--ts", "event_timestamp", DRIVER_STATS,
                      port=port)
        self.assert_fails(p, "cannot connect to", "Connection refused")

    # ---- quiver-join ----

    def entity_csv(self):
        """An entity dataframe over driver_stats' drivers and times (and an unknown driver,
        times before any row, the exact duplicated times), with a column of awkward text."""
        with open(DRIVER_STATS, newline="") as f:
            rows = list(csv.DictReader(f))
        rnd = random.Random(7)
        notes = ["plain", "a, comma", 'a "quote"', "two\nlines", "", "x"]
        out = [["driver_id", "event_timestamp", "note"]]
        for i in range(300):
            row = rnd.choice(rows)
            driver = rnd.choice([row["driver_id"], row["driver_id"], "9999"])
            if i % 3 == 0:
                ts = row["event_timestamp"]
            elif i % 3 == 1:
                ts = str(1618200000000 + rnd.randrange(366 * 86400 * 1000))
            else:
                ts = "2020-01-01T00:00:00Z"
            out.append([driver, ts, notes[i % len(notes)]])
        buf = io.StringIO(newline="")
        csv.writer(buf, lineterminator="\n").writerows(out)
        return out, self.write("entities.csv", buf.getvalue())

    def test_join_matches_asof(self):
        rows, path = self.entity_csv()
        out = os.path.join(self.tmp, "joined.csv")
        feats = ",".join("driver_hourly_stats:" + f for f in FIELDS)
        p = self.tool(JOIN, "--features", feats, "--entity", "driver_id", "--ts",
                      "event_timestamp", "--batch", "7", "-o", out, path)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("300 rows joined", p.stderr.decode())
        got = read_csv(out)
        self.assertEqual(got[0], rows[0] + FIELDS)
        self.assertEqual(len(got), len(rows))
        for want_in, line in zip(rows[1:], got[1:]):
            self.assertEqual(line[:3], want_in)
            asof = self.r.execute_command("FS.ASOF", "driver_hourly_stats", want_in[0],
                                          want_in[1])
            self.assertEqual(line[3:], [cell(v) for v in asof], want_in)
        self.assertTrue(any(line[3] == "" for line in got[1:]))   # some NULLs
        self.assertTrue(any(line[3] != "" for line in got[1:]))   # some values

    def test_join_service_full_names_stdin_stdout(self):
        self.r.execute_command("FS.SERVICE.CREATE", "driver_service", "FEATURES", 1,
                               "driver_hourly_stats:*")
        rows, path = self.entity_csv()
        with open(path, "rb") as f:
            p = self.tool(JOIN, "--service", "driver_service", "--full-names", "--ts",
                          "event_timestamp", "-q", "-", stdin=f.read())
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(p.stderr, b"")
        got = read_csv(p.stdout.decode())
        self.assertEqual(got[0], rows[0] + ["driver_hourly_stats__" + f for f in FIELDS])
        self.assertEqual(len(got), len(rows))
        for want_in, line in zip(rows[1:], got[1:]):
            asof = self.r.execute_command("FS.ASOF", "driver_hourly_stats", want_in[0],
                                          want_in[1])
            self.assertEqual(line[3:], [cell(v) for v in asof])

    def test_join_entity_columns_must_match(self):
        self.r.execute_command("FS.ENTITY.CREATE", "customer_id", "TYPE", "INT64")
        self.r.execute_command("FS.VIEW.CREATE", "pairs", "ENTITIES", 2, "customer_id",
                               "driver_id", "SCHEMA", "trips", "INT64")
        self.r.execute_command("FS.PUSH", "pairs", "1001:8002", "2020-09-01T00:00:00Z",
                               "FIELDS", "trips", 4)
        path = self.write("pairs.csv", "driver_id,customer_id,ts,cust\n"
                                       "8002,1001,2020-09-02T00:00:00Z,1001\n")
        base = ["--features", "pairs:trips", "--ts", "ts"]
        p = self.tool(JOIN, *base, "--entity", "customer_id", path)
        self.assert_fails(p, "keyed by 2 entities (customer_id, driver_id)", "gave 1 (customer_id)")
        p = self.tool(JOIN, *base, "--entity", "driver_id,customer_id", path)
        self.assert_fails(p, "in the entities' order (customer_id, driver_id)")
        p = self.tool(JOIN, *base, path)  # columns named like the entities
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(read_csv(p.stdout.decode())[1][-1], "4")
        p = self.tool(JOIN, *base, "--entity", "cust,driver_id", path)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(read_csv(p.stdout.decode())[1][-1], "4")
        p = self.tool(JOIN, "--features", "pairs:trips,driver_hourly_stats:conv_rate", "--ts",
                      "ts", "--entity", "cust", path)
        self.assert_fails(p, "keyed by 2 entities")

    def test_join_output_file_and_link(self):
        path = self.write("one.csv", "driver_id,event_timestamp\n1001,2022-01-01T00:00:00Z\n")
        target = self.write("target.csv", "old contents\n")
        link = os.path.join(self.tmp, "link.csv")
        os.symlink(target, link)
        args = ["--features", "driver_hourly_stats:avg_daily_trips", "--ts", "event_timestamp"]
        p = self.tool(JOIN, *args, "-o", link, path)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertTrue(os.path.islink(link))  # written through, not replaced
        want = self.r.execute_command("FS.ASOF", "driver_hourly_stats", 1001,
                                      "2022-01-01T00:00:00Z")
        self.assertEqual(read_csv(target)[1], ["1001", "2022-01-01T00:00:00Z", cell(want[2])])
        p = self.tool(JOIN, *args, "-o", target, path)  # a regular file is replaced whole
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(len(read_csv(target)), 2)
        self.assertEqual(sorted(os.listdir(self.tmp)).count("target.csv"), 1)
        self.assertFalse([f for f in os.listdir(self.tmp) if ".tmp." in f])

    def test_join_errors(self):
        out = os.path.join(self.tmp, "never.csv")
        base = ["--ts", "event_timestamp", "-o", out]
        feats = ["--features", "driver_hourly_stats:conv_rate"]
        p = self.tool(JOIN, *feats, *base, self.write("e.csv", "driver_id,event_timestamp\n"
                                                               "1001,1000\n1002\n"))
        self.assert_fails(p, "line 3: 1 field where the header has 2")
        self.assertFalse(os.path.exists(out))
        p = self.tool(JOIN, *feats, *base, self.write("e.csv", "driver_id,event_timestamp\n"
                                                               "1001,\n"))
        self.assert_fails(p, "line 2: no timestamp in the column 'event_timestamp'")
        p = self.tool(JOIN, "--features", "driver_hourly_stats:nope", *base, DRIVER_STATS)
        self.assert_fails(p, "feature view 'driver_hourly_stats' has no field 'nope'")
        p = self.tool(JOIN, "--features", "nope:x", *base, DRIVER_STATS)
        self.assert_fails(p, "unknown feature view 'nope'")
        p = self.tool(JOIN, "--service", "nope", *base, DRIVER_STATS)
        self.assert_fails(p, "unknown feature service 'nope'")
        self.driver_view("twin")
        p = self.tool(JOIN, "--features", "twin:conv_rate,driver_hourly_stats:conv_rate",
                      *base, DRIVER_STATS)
        self.assert_fails(p, "use --full-names")
        p = self.tool(JOIN, *feats, "--ts", "when", DRIVER_STATS)
        self.assert_fails(p, "--ts: no column 'when'")
        p = self.tool(JOIN, *feats, *base, "--batch", "2",
                      self.write("e.csv", "driver_id,event_timestamp\n1001,1000\n1001,1000\n"
                                          "1001,1000\n1001,yesterday\n"))
        self.assert_fails(p, "line 5: ", "yesterday")
        self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    unittest.main()
