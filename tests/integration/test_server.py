"""The server as an operator sees it: CONFIG GET/SET/REWRITE, INFO's sections and Redis field
names, the CLIENT subcommands, starting with defaults and with bad options, redis-cli,
active expiry, QUIT and SHUTDOWN."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import redis

from harness import BINARY, RespError, Server, free_port

def built_with_sanitizer(path):
    try:
        with open(path, "rb") as f:
            image = f.read()
        return b"__asan_init" in image or b"__ubsan_handle" in image or b"__tsan_init" in image
    except OSError:
        return False


SANITIZED = built_with_sanitizer(BINARY)
OWN_PROCESS = unittest.skipIf(os.environ.get("TEST_SERVER"), "needs a server of its own")


def wait_port(proc, port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError("server exited with %d" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise AssertionError("server did not start")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def config_get(r, *patterns):
    """CONFIG GET with several patterns (redis-py takes one) as a dict of str."""
    pairs = r.execute_command("CONFIG", "GET", *patterns)
    pairs = [x.decode() if isinstance(x, bytes) else x for x in pairs]
    return dict(zip(pairs[::2], pairs[1::2]))


def wait_until(cond, timeout=3, step=0.02):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            return False
        time.sleep(step)
    return True


@OWN_PROCESS
class Config(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def setUp(self):
        self.r = self.server.client()

    def tearDown(self):
        self.r.close()

    def test_get(self):
        r = self.r
        self.assertEqual(r.config_get("maxclients"), {"maxclients": "10000"})
        self.assertEqual(r.config_get("port"), {"port": str(self.server.port)})
        got = config_get(r, "durability", "*max*")
        self.assertEqual(got["durability"], "everysec")
        self.assertIn("maxclients", got)
        self.assertIn("proto-max-bulk-len", got)
        self.assertNotIn("port", got)
        self.assertEqual(r.config_get("no-such-option"), {})
        self.assertEqual(r.config_get("databases"), {"databases": "16"})

    def test_set_is_all_or_nothing(self):
        r = self.r
        self.assertTrue(r.config_set("maxclients", "50"))
        self.assertEqual(r.config_get("maxclients"), {"maxclients": "50"})
        with self.assertRaisesRegex(redis.ResponseError, "hz"):
            r.execute_command("CONFIG", "SET", "maxclients", "70", "hz", "abc")
        with self.assertRaisesRegex(redis.ResponseError, "no-such-option"):
            r.execute_command("CONFIG", "SET", "timeout", "5", "no-such-option", "1")
        with self.assertRaisesRegex(redis.ResponseError, "must be between"):
            r.execute_command("CONFIG", "SET", "timeout", "7", "hz", "100000")
        self.assertEqual(r.config_get("maxclients"), {"maxclients": "50"})
        self.assertEqual(r.config_get("timeout"), {"timeout": "0"})
        self.assertEqual(r.config_get("hz"), {"hz": "10"})
        self.assertTrue(r.execute_command("CONFIG", "SET", "maxclients", "80", "hz", "20"))
        self.assertEqual(config_get(r, "maxclients", "hz"), {"maxclients": "80", "hz": "20"})
        self.assertEqual(r.info("clients")["maxclients"], 80)
        self.assertEqual(r.info("server")["hz"], 20)
        with self.assertRaisesRegex(redis.ResponseError, "immutable"):
            r.config_set("port", "1234")
        with self.assertRaisesRegex(redis.ResponseError, "wrong number of arguments"):
            r.execute_command("CONFIG", "SET", "maxclients")
        self.assertTrue(r.execute_command("CONFIG", "SET", "maxclients", "10000", "hz", "10"))

    def test_set_multi_word_values(self):
        r = self.r
        self.assertTrue(r.config_set("client-output-buffer-limit", "normal 4mb 2mb 10"))
        self.assertTrue(r.config_get("client-output-buffer-limit")["client-output-buffer-limit"]
                        .startswith("normal 4194304 2097152 10 "))
        with self.assertRaises(redis.ResponseError):
            r.config_set("client-output-buffer-limit", "normal 4mb")
        with self.assertRaises(redis.ResponseError):
            r.config_set("client-output-buffer-limit", "bogus 1 2 3")
        self.assertTrue(r.config_get("client-output-buffer-limit")["client-output-buffer-limit"]
                        .startswith("normal 4194304 2097152 10 "))
        self.assertTrue(r.config_set("client-output-buffer-limit", "normal 0 0 0"))

    def test_durability_shows_in_info(self):
        r = self.r
        self.assertEqual(r.info("persistence")["durability"], "everysec")
        self.assertTrue(r.config_set("durability", "always"))
        try:
            info = r.info("persistence")
            self.assertEqual(info["durability"], "always")
            syncs = info["lmdb_syncs"]
            for i in range(5):
                r.set("dur%d" % i, "x")
            self.assertGreaterEqual(r.info("persistence")["lmdb_syncs"], syncs + 5,
                                    "durability always did not sync each commit")
            with self.assertRaisesRegex(redis.ResponseError, "no, everysec, always"):
                r.config_set("durability", "sometimes")
            self.assertEqual(r.info("persistence")["durability"], "always")
        finally:
            self.assertTrue(r.config_set("durability", "everysec"))
        self.assertEqual(r.info("persistence")["durability"], "everysec")

    def test_requirepass_at_run_time(self):
        r = self.r
        self.assertTrue(r.config_set("requirepass", "run-time-pw"))
        try:
            r.ping()  # this connection stays authenticated
            late = self.server.raw()
            self.assertEqual(late.command("GET", "k"), "NOAUTH Authentication required.")
            self.assertEqual(late.command("AUTH", "run-time-pw"), b"OK")
            self.assertEqual(late.command("CONFIG", "SET", "requirepass", ""), b"OK")
            late.close()
        finally:
            r.config_set("requirepass", "")
        fresh = self.server.raw()
        self.assertIsNone(fresh.command("GET", "no-such-key"))
        fresh.close()

    def test_rewrite_without_file(self):
        with self.assertRaisesRegex(redis.ResponseError,
                                    "^The server is running without a config file$"):
            self.r.execute_command("CONFIG", "REWRITE")


@OWN_PROCESS
class ConfigFile(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="quiver-test-")
        self.port = free_port()
        self.conf = os.path.join(self.tmp, "quiver.conf")
        with open(self.conf, "w") as f:
            f.write("# Quiver test configuration\n"
                    "port %d\n"
                    "bind 127.0.0.1\n"
                    "\n"
                    "# where the data lives\n"
                    "dir \"%s\"\n"
                    "durability everysec\n"
                    "# the end\n" % (self.port, os.path.join(self.tmp, "data")))
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            stop(p)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, *extra):
        log = open(os.path.join(self.tmp, "log"), "ab")
        p = subprocess.Popen([BINARY, self.conf] + list(extra), stdout=log,
                             stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(p)
        try:
            wait_port(p, self.port)
        except AssertionError:
            with open(os.path.join(self.tmp, "log"), "rb") as f:
                raise AssertionError("server did not start: %r" % f.read()[-2000:])
        return p, redis.Redis(port=self.port, socket_timeout=10, decode_responses=True)

    def test_rewrite_keeps_comments_and_is_read_back(self):
        p, r = self.start("--hz", "15")
        self.assertEqual(r.info("server")["config_file"], os.path.realpath(self.conf))
        self.assertEqual(r.config_get("hz"), {"hz": "15"})
        self.assertTrue(r.config_set("durability", "always"))
        self.assertTrue(r.config_set("maxclients", "123"))
        self.assertTrue(r.execute_command("CONFIG", "REWRITE"))
        with open(self.conf) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0], "# Quiver test configuration")
        self.assertIn("# where the data lives", lines)
        self.assertIn("# the end", lines)
        self.assertIn("durability always", lines)
        self.assertNotIn("durability everysec", lines)
        # the changed line stays where it was; new options are added after the old text
        self.assertLess(lines.index("durability always"), lines.index("# the end"))
        self.assertIn("maxclients 123", lines)
        self.assertIn("hz 15", lines)
        self.assertEqual(sum(1 for l in lines if l.startswith("durability")), 1)
        self.assertEqual(sum(1 for l in lines if l.startswith("port ")), 1)
        r.close()
        stop(p)
        self.assertEqual(p.returncode, 0)
        p, r = self.start()
        self.assertEqual(config_get(r, "durability", "maxclients", "hz"),
                         {"durability": "always", "maxclients": "123", "hz": "15"})
        self.assertEqual(r.info("persistence")["durability"], "always")
        r.close()

    def test_rewrite_escapes_awkward_strings(self):
        p, r = self.start()
        password = 'p"w\\x\ny\tz\'q #1'
        self.assertTrue(r.config_set("requirepass", password))
        self.assertTrue(r.execute_command("CONFIG", "REWRITE"))
        with open(self.conf) as f:
            text = f.read()
        self.assertEqual(sum(1 for l in text.splitlines() if l.startswith("requirepass ")), 1)
        r.close()
        stop(p)
        p, r = self.start()
        with self.assertRaisesRegex(redis.AuthenticationError, "Authentication required"):
            r.get("k")  # redis-py turns NOAUTH into this exception
        self.assertTrue(r.execute_command("AUTH", password))
        self.assertEqual(r.config_get("requirepass"), {"requirepass": password})
        r.close()

    def test_bad_directive_in_file(self):
        with open(self.conf, "a") as f:
            f.write("no-such-directive yes\n")
        out = subprocess.run([BINARY, self.conf], capture_output=True, timeout=10)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(b"no-such-directive", out.stderr)
        self.assertIn(b"quiver.conf:9:", out.stderr)


@OWN_PROCESS
class Startup(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="quiver-test-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_default_dir_is_data_in_cwd(self):
        port = free_port()
        p = subprocess.Popen([BINARY, "--bind", "127.0.0.1", "--port", str(port)], cwd=self.tmp,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(p, port)
            r = redis.Redis(port=port, socket_timeout=10)
            self.assertTrue(r.set("k", "v"))
            self.assertEqual(r.config_get("dir"), {"dir": "./data"})
            r.close()
        finally:
            stop(p)
        self.assertEqual(p.returncode, 0)
        data = os.path.join(self.tmp, "data")
        self.assertTrue(os.path.isdir(data))
        self.assertTrue(os.listdir(data), "nothing was stored in ./data")

    def test_bad_options_exit_with_a_message(self):
        cases = [
            (["--no-such-option", "1"], b"no-such-option"),
            (["--port", "99999"], b"between 0 and 65535"),
            (["--durability", "sometimes"], b"no, everysec, always"),
            (["--maxclients", "lots"], b"maxclients"),
            (["/no/such/quiver.conf"], b"/no/such/quiver.conf"),
            (["--port", "6379", "stray"], b"wrong number of arguments for 'port'"),
        ]
        for args, words in cases:
            with self.subTest(args=args):
                out = subprocess.run([BINARY] + args, cwd=self.tmp, capture_output=True,
                                     timeout=10)
                self.assertNotEqual(out.returncode, 0)
                self.assertIn(words, out.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "data")),
                         "a refused start created the data directory")

    def test_port_in_use(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            port = busy.getsockname()[1]
            out = subprocess.run([BINARY, "--bind", "127.0.0.1", "--port", str(port),
                                  "--dir", os.path.join(self.tmp, "d")],
                                 capture_output=True, timeout=10)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(str(port).encode(), out.stdout + out.stderr)

    def test_version(self):
        out = subprocess.run([BINARY, "--version"], capture_output=True, timeout=10)
        self.assertEqual(out.returncode, 0)
        self.assertTrue(out.stdout.startswith(b"quiver-server v="))


class Running(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def setUp(self):
        self.r = self.server.client()
        self.r.flushall()

    def tearDown(self):
        self.r.close()

    def test_instantaneous_ops_per_sec(self):
        """INFO's rate follows the load: non-zero while commands flow, back to 0 idle."""
        def rate():
            return int(self.r.info("stats")["instantaneous_ops_per_sec"])

        raw = self.server.raw()
        self.addCleanup(raw.close)
        busy = 0
        deadline = time.time() + 5
        while time.time() < deadline and busy == 0:
            raw.send(b"PING\r\n" * 2000)
            for _ in range(2000):
                self.assertEqual(raw.read(), b"PONG")
            busy = rate()
        self.assertGreater(busy, 0)
        deadline = time.time() + 5  # 16 samples at hz 10 drain in 1.6 s
        while time.time() < deadline and rate() > 10:
            time.sleep(0.2)
        self.assertLessEqual(rate(), 10)  # only the rate() calls themselves remain

    def test_info_sections_and_fields(self):
        r = self.r
        raw = self.server.raw()
        self.addCleanup(raw.close)
        text = raw.command("INFO").decode()
        for section in ("Server", "Clients", "Memory", "Persistence", "Stats", "Replication",
                        "Keyspace"):
            self.assertIn("# %s\r\n" % section, text)
        info = r.info()
        self.assertEqual(info["redis_version"], "7.2.0")
        self.assertEqual(info["tcp_port"], self.server.port)
        self.assertGreaterEqual(info["connected_clients"], 1)
        self.assertIsInstance(info["used_memory"], int)
        if not SANITIZED:  # the sanitizers' allocators report no mallinfo figures
            self.assertGreater(info["used_memory"], 0)
        self.assertGreater(info["used_memory_rss"], 0)
        self.assertEqual(info["role"], "master")
        self.assertGreater(info["total_commands_processed"], 0)
        self.assertNotIn("db0", info)
        only = raw.command("INFO", "clients").decode()
        self.assertTrue(only.startswith("# Clients\r\n"))
        self.assertNotIn("# Server", only)
        processed = r.info("stats")["total_commands_processed"]
        offset = r.info("replication")["master_repl_offset"]
        for i in range(5):
            r.set("k%d" % i, "v")
        r.set("e1", "v", ex=100)
        r.set("e2", "v", px=100000)
        r.hset("h", "f", "v")
        self.assertGreater(r.info("replication")["master_repl_offset"], offset)
        self.assertGreaterEqual(r.info("stats")["total_commands_processed"], processed + 8)
        self.assertIn(b"db0:keys=8,expires=2,",
                      raw.command("INFO", "keyspace").split(b"\r\n")[1])
        r3 = self.server.client(db=3)
        r3.set("x", "y")
        self.assertEqual(r.info("keyspace")["db3"]["keys"], 1)
        self.assertEqual(r.info("keyspace")["db0"], {"keys": 8, "expires": 2, "avg_ttl": 0})
        r3.close()
        offset = r.info("replication")["master_repl_offset"]
        r.get("k1")  # reads do not move the offset
        self.assertEqual(r.info("replication")["master_repl_offset"], offset)

    def test_client_commands(self):
        a = self.server.raw()
        b = self.server.raw()
        ida = a.command("CLIENT", "ID")
        idb = b.command("CLIENT", "ID")
        self.assertIsInstance(ida, int)
        self.assertGreater(idb, ida)
        self.assertIsNone(a.command("CLIENT", "GETNAME"))
        self.assertEqual(a.command("CLIENT", "SETNAME", "alpha"), b"OK")
        self.assertEqual(a.command("CLIENT", "GETNAME"), b"alpha")
        self.assertTrue(a.command("CLIENT", "SETNAME", "two words").startswith(
            "ERR Client names cannot contain spaces"))
        self.assertEqual(a.command("CLIENT", "SETINFO", "LIB-NAME", "qlib"), b"OK")
        self.assertEqual(a.command("CLIENT", "SETINFO", "LIB-VER", "1.2.3"), b"OK")
        self.assertIsInstance(a.command("CLIENT", "SETINFO", "COLOR", "red"), RespError)
        info = a.command("CLIENT", "INFO").decode()
        self.assertTrue(info.endswith("\n"))
        self.assertEqual(info.count("\n"), 1)
        fields = dict(kv.split("=", 1) for kv in info.split())
        self.assertEqual(fields["id"], str(ida))
        self.assertEqual(fields["name"], "alpha")
        self.assertEqual(fields["lib-name"], "qlib")
        self.assertEqual(fields["lib-ver"], "1.2.3")
        self.assertEqual(fields["cmd"], "client")
        self.assertEqual(fields["laddr"], "127.0.0.1:%d" % self.server.port)
        listing = b.command("CLIENT", "LIST").decode().splitlines()
        ids = {int(dict(kv.split("=", 1) for kv in line.split())["id"]) for line in listing}
        self.assertTrue({ida, idb} <= ids)
        only = b.command("CLIENT", "LIST", "ID", str(ida)).decode().splitlines()
        self.assertEqual(len(only), 1)
        self.assertIn("name=alpha", only[0])
        self.assertEqual(b.command("CLIENT", "KILL", "ID", str(ida)), 1)
        self.assertTrue(a.closed(), "killed client still connected")
        self.assertEqual(b.command("CLIENT", "KILL", "ID", str(ida)), 0)
        self.assertNotIn("id=%d " % ida, b.command("CLIENT", "LIST").decode())
        self.assertIsInstance(b.command("CLIENT", "KILL", "ID", "zero"), RespError)
        self.assertEqual(b.command("CLIENT", "KILL", "127.0.0.1:1"), "ERR No such client")
        # the old form, by address
        c = self.server.raw()
        addr = dict(kv.split("=", 1) for kv in c.command("CLIENT", "INFO").decode().split())["addr"]
        self.assertEqual(b.command("CLIENT", "KILL", addr), b"OK")
        self.assertTrue(c.closed())
        self.assertEqual(b.command("PING"), b"PONG")
        a.close()
        b.close()
        c.close()

    def test_redis_cli_ping(self):
        cli = shutil.which("redis-cli")
        if not cli:
            self.skipTest("redis-cli is not installed")
        out = subprocess.run([cli, "-h", self.server.host, "-p", str(self.server.port), "ping"],
                             capture_output=True, timeout=10)
        self.assertEqual(out.returncode, 0)
        self.assertEqual(out.stdout.strip(), b"PONG")
        out = subprocess.run([cli, "-h", self.server.host, "-p", str(self.server.port),
                              "set", "from-cli", "hello world"], capture_output=True, timeout=10)
        self.assertEqual(out.stdout.strip(), b"OK")
        self.assertEqual(self.r.get("from-cli"), b"hello world")

    def test_active_expiry(self):
        r = self.r
        expired = r.info("stats")["expired_keys"]
        pipe = r.pipeline(transaction=False)
        for i in range(2000):
            pipe.set("px:%d" % i, "v", px=100)
        pipe.set("stays", "v")
        self.assertTrue(all(pipe.execute()))
        self.assertEqual(r.dbsize(), 2001)
        # nothing touches the keys: only the cron's active cycle can remove them
        self.assertTrue(wait_until(lambda: r.dbsize() == 1, timeout=2.5),
                        "DBSIZE still %d" % r.dbsize())
        self.assertGreaterEqual(r.info("stats")["expired_keys"], expired + 2000)
        self.assertEqual(r.info("keyspace")["db0"]["expires"], 0)
        self.assertEqual(r.get("stays"), b"v")

    def test_quit(self):
        c = self.server.raw()
        c.send(b"QUIT\r\nPING\r\n")
        self.assertEqual(c.read(), b"OK")
        self.assertTrue(c.closed(), "QUIT left the connection open")
        c.close()
        self.assertEqual(self.r.ping(), True)


@OWN_PROCESS
class Shutdown(unittest.TestCase):
    def test_shutdown_exits_zero(self):
        with Server() as s:
            r = s.client()
            r.set("k", "v")
            other = s.raw()
            with self.assertRaises(redis.ConnectionError):
                r.execute_command("SHUTDOWN")
            self.assertEqual(s.proc.wait(10), 0)
            self.assertTrue(other.closed())
            other.close()
            s.proc = None
            s.log.close()
            s.start()
            self.assertEqual(s.client().get("k"), b"v")

    def test_shutdown_bad_argument(self):
        with Server() as s:
            r = s.client()
            with self.assertRaisesRegex(redis.ResponseError, "syntax error"):
                r.execute_command("SHUTDOWN", "SOMETIMES")
            with self.assertRaisesRegex(redis.ResponseError, "No shutdown in progress"):
                r.execute_command("SHUTDOWN", "ABORT")
            self.assertTrue(r.ping())
            self.assertIsNone(s.proc.poll())


if __name__ == "__main__":
    unittest.main()
