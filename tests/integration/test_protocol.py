"""The wire protocol against the real server over raw sockets: malformed requests of every
kind get exactly one "-ERR Protocol error: ..." and the connection is closed, HTTP-looking
input is dropped silently, inline commands work, an unauthenticated client cannot make the
server hold much memory, and the pipelining, output-buffer and maxclients limits hold."""
import os
import socket
import time
import unittest

from harness import RawClient, RespError, Server, encode


def read_until_closed(raw, timeout=3):
    """Everything the server sends until it closes the connection (None if it never does).
    A reset after the server closed with our bytes unread also counts as closed."""
    raw.sock.settimeout(timeout)
    data = raw.buf
    try:
        while True:
            chunk = raw.sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        return data
    except socket.timeout:
        return None


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def wait_for(cond, timeout):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            return False
        time.sleep(0.05)
    return True


def info_field(raw, section, name):
    for line in raw.command("INFO", section).split(b"\r\n"):
        if line.startswith(name.encode() + b":"):
            return line.split(b":", 1)[1].decode()
    raise AssertionError("INFO %s has no %s" % (section, name))


OWN_PROCESS = unittest.skipIf(os.environ.get("TEST_SERVER"), "needs a server of its own")

# (what, bytes sent, the complete reply before the server closes)
PROTOCOL_ERRORS = [
    ("negative multibulk length", b"*-5\r\n", "invalid multibulk length"),
    ("huge multibulk length", b"*99999999999999999999\r\n", "invalid multibulk length"),
    ("multibulk over 1M args", b"*1048577\r\n", "invalid multibulk length"),
    ("non-numeric multibulk length", b"*abc\r\n", "invalid multibulk length"),
    ("empty multibulk length", b"*\r\n", "invalid multibulk length"),
    ("negative bulk length", b"*2\r\n$-3\r\n", "invalid bulk length"),
    ("bulk length -1", b"*1\r\n$-1\r\n", "invalid bulk length"),
    ("non-numeric bulk length", b"*1\r\n$abc\r\n", "invalid bulk length"),
    ("bulk length with junk", b"*1\r\n$3x\r\n", "invalid bulk length"),
    ("huge bulk length", b"*1\r\n$99999999999999\r\n", "invalid bulk length"),
    ("bulk length past 64 bits", b"*1\r\n$99999999999999999999999\r\n", "invalid bulk length"),
    ("missing CRLF after bulk", b"*1\r\n$3\r\nfooXY", "missing CRLF after bulk"),
    ("LF only after bulk", b"*1\r\n$4\r\nPING\n\n", "missing CRLF after bulk"),
    ("nested multibulk", b"*1\r\n*1\r\n", "expected '$', got '*'"),
    ("integer in place of bulk", b"*2\r\n$3\r\nGET\r\n:1\r\n", "expected '$', got ':'"),
    ("control byte in place of bulk", b"*1\r\n\x01\r\n", "expected '$', got '?'"),
    ("unbalanced double quote", b'SET a "b c\r\n', "unbalanced quotes in request"),
    ("unbalanced single quote", b"SET a 'b c\r\n", "unbalanced quotes in request"),
    ("text right after a closing quote", b"SET a 'b'c\r\n", "unbalanced quotes in request"),
    # one byte past the 64 KiB limit, so that the server has read everything when it fails
    ("inline line over 64 KiB", b"a" * 65537, "too big inline request"),
    ("multibulk count line over 64 KiB", b"*" + b"1" * 65536, "too big mbulk count string"),
    ("bulk count line over 64 KiB", b"*1\r\n$" + b"1" * 65536, "too big bulk count string"),
    ("error stops the pipeline", b"PING\r\n*1\r\n$-1\r\n*1\r\n$4\r\nPING\r\n",
     "invalid bulk length"),
]


class ProtocolErrors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def assert_alive(self):
        r = self.server.raw()
        self.assertEqual(r.command("PING"), b"PONG")
        r.close()

    def test_error_table(self):
        for what, data, msg in PROTOCOL_ERRORS:
            with self.subTest(what):
                r = self.server.raw()
                r.send(data)
                got = read_until_closed(r)
                self.assertIsNotNone(got, "connection was left open")
                want = b"-ERR Protocol error: " + msg.encode() + b"\r\n"
                if data.startswith(b"PING\r\n"):
                    want = b"+PONG\r\n" + want  # commands before the error still run
                self.assertEqual(got, want)
                r.close()
                self.assert_alive()

    def test_error_codes(self):
        """Only Redis's error codes replace ERR; other capitalised first words do not."""
        r = self.server.raw()
        cases = [
            (("SELECT", "99"), "ERR DB index is out of range"),
            (("EXEC",), "ERR EXEC without MULTI"),
            (("DISCARD",), "ERR DISCARD without MULTI"),
            (("EXPIRE", "a", "10", "GT", "LT"),
             "ERR GT and LT options at the same time are not compatible"),
            (("EXPIRE", "a", "10", "NX", "XX"),
             "ERR NX and XX, GT or LT options at the same time are not compatible"),
            (("CONFIG", "SET", "port", "1"), "ERR CONFIG SET failed (possibly related to "
                                             "argument 'port') - can't set immutable config"),
            (("AUTH", "pw"), "ERR AUTH <password> called without any password configured "
                             "for the default user. Are you sure your configuration is "
                             "correct?"),
            (("HELLO", "4"), "NOPROTO unsupported protocol version"),
            (("NOSUCHCMD", "x"),
             "ERR unknown command 'NOSUCHCMD', with args beginning with: 'x' "),
            (("GET",), "ERR wrong number of arguments for 'get' command"),
            (("HSET", "a", "f", "v"), None),
            (("GET", "a"), "WRONGTYPE Operation against a key holding the wrong kind of value"),
            (("MULTI",), None),
            (("MULTI",), "ERR MULTI calls can not be nested"),
            (("WATCH", "a"), "ERR WATCH inside MULTI is not allowed"),
            (("EXEC",), None),  # as Redis: those two errors do not abort the transaction
            (("MULTI",), None),
            (("NOSUCHCMD",), "ERR unknown command 'NOSUCHCMD', with args beginning with: "),
            (("EXEC",), "EXECABORT Transaction discarded because of previous errors."),
        ]
        for args, want in cases:
            got = r.command(*args)
            if want is None:
                self.assertNotIsInstance(got, RespError, args)
            else:
                self.assertIsInstance(got, RespError, args)
                self.assertEqual(got, want)
        r.command("DEL", "a")
        r.close()

    def test_http_is_closed_without_reply(self):
        for data in (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", b"Host: evil.example\r\n",
                     b"GET a\r\nPOST /x HTTP/1.1\r\n"):
            with self.subTest(data=data):
                r = self.server.raw()
                r.send(data)
                got = read_until_closed(r)
                self.assertIsNotNone(got, "connection was left open")
                # nothing is answered after the HTTP line (the GET before it may be)
                self.assertIn(got, (b"", b"$-1\r\n") if data.startswith(b"GET") else (b"",))
                r.close()
                self.assert_alive()

    def test_inline_commands(self):
        r = self.server.raw()
        r.send(b'PING\r\nSET a "b c"\r\nGET a\n')
        self.assertEqual([r.read(), r.read(), r.read()], [b"PONG", b"OK", b"b c"])
        r.send(b"SET q 'it\\'s'\r\nGET q\r\n")
        self.assertEqual([r.read(), r.read()], [b"OK", b"it's"])
        r.send(b'SET e "\\x41\\n\\t\\"z"\r\nGET e\r\n')
        self.assertEqual([r.read(), r.read()], [b"OK", b'A\n\t"z'])
        r.send(b"   \r\n\r\n  ping  \r\nECHO   spaced\t out\r\n")  # blank lines are skipped
        self.assertEqual(r.read(), b"PONG")
        self.assertIsInstance(r.read(), RespError)  # ECHO with 2 args: arity error
        r.send(b'SET "" "" \r\nGET ""\r\n')
        self.assertEqual([r.read(), r.read()], [b"OK", b""])
        r.close()

    def test_empty_multibulk_is_skipped(self):
        r = self.server.raw()
        r.send(b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n")
        self.assertEqual(r.read(), b"PONG")
        r.close()

    def test_command_split_byte_by_byte(self):
        r = self.server.raw()
        r.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = encode("SET", "split", "x" * 100) + encode("GET", "split")
        for i in range(len(data)):
            r.send(data[i:i + 1])
            if i % 16 == 0:
                time.sleep(0.001)
        self.assertEqual([r.read(), r.read()], [b"OK", b"x" * 100])
        r.close()

    def test_half_command_then_disconnect(self):
        r = self.server.raw()
        r.send(b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$10\r\nabc")
        r.close()
        time.sleep(0.05)
        c = self.server.raw()
        self.assertIsNone(c.command("GET", "half"))
        c.close()

    def test_pipeline_5000_pings(self):
        r = self.server.raw()
        n = 5000
        r.send(b"".join(encode("PING", str(i)) for i in range(n)) + b"PING\r\n" * n)
        got = [r.read() for _ in range(2 * n)]
        self.assertEqual(got[:n], [str(i).encode() for i in range(n)])
        self.assertEqual(got[n:], [b"PONG"] * n)
        r.close()


@OWN_PROCESS
class Authentication(unittest.TestCase):
    PASSWORD = "s3cret-pw"

    @classmethod
    def setUpClass(cls):
        cls.server = Server(requirepass=cls.PASSWORD, proto_max_bulk_len="1mb").__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def authed(self):
        r = self.server.raw()
        self.assertEqual(r.command("AUTH", self.PASSWORD), b"OK")
        return r

    def assert_alive(self):
        r = self.authed()
        self.assertEqual(r.command("PING"), b"PONG")
        r.close()

    def test_noauth_wrongpass_and_auth(self):
        r = self.server.raw()
        self.assertEqual(r.command("GET", "a"), "NOAUTH Authentication required.")
        self.assertEqual(r.command("SET", "a", "b"), "NOAUTH Authentication required.")
        self.assertEqual(r.command("AUTH", "wrong"),
                         "WRONGPASS invalid username-password pair or user is disabled.")
        self.assertEqual(r.command("AUTH", "nobody", self.PASSWORD),
                         "WRONGPASS invalid username-password pair or user is disabled.")
        self.assertTrue(r.command("HELLO", "3").startswith("NOAUTH"))
        self.assertEqual(r.command("INCR", "n"), "NOAUTH Authentication required.")
        self.assertEqual(r.command("AUTH", "default", self.PASSWORD), b"OK")
        self.assertEqual(r.command("SET", "a", "b"), b"OK")
        self.assertEqual(r.command("GET", "a"), b"b")
        r.close()

    def test_hello_auth(self):
        r = self.server.raw()
        self.assertTrue(r.command("HELLO", "3", "AUTH", "default", "bad").startswith("WRONGPASS"))
        hello = r.command("HELLO", "3", "AUTH", "default", self.PASSWORD, "SETNAME", "me")
        self.assertIsInstance(hello, dict)
        self.assertEqual(hello[b"proto"], 3)
        self.assertEqual(r.command("CLIENT", "GETNAME"), b"me")
        self.assertIsNone(r.command("GET", "no-such-key"))  # RESP3 null
        r.close()

    def test_unauthenticated_limits(self):
        cases = [
            ("1 GB bulk", b"*1\r\n$1073741824\r\n", "unauthenticated bulk length"),
            ("11 arguments", encode(*["SET"] + ["x"] * 10), "unauthenticated multibulk length"),
            ("11 inline words", b"a b c d e f g h i j k\r\n", "unauthenticated multibulk length"),
        ]
        for what, data, msg in cases:
            with self.subTest(what):
                r = self.server.raw()
                r.send(data)
                self.assertEqual(read_until_closed(r),
                                 b"-ERR Protocol error: " + msg.encode() + b"\r\n")
                r.close()
                self.assert_alive()
        # ten arguments are allowed (and refused for want of AUTH, connection kept)
        r = self.server.raw()
        self.assertEqual(r.command(*["SET"] + ["x"] * 9), "NOAUTH Authentication required.")
        self.assertEqual(r.command("AUTH", self.PASSWORD), b"OK")
        r.close()

    def test_authenticated_bulk_over_max(self):
        r = self.authed()
        r.send(b"*2\r\n$4\r\nECHO\r\n$%d\r\n" % (1024 * 1024 + 1))
        self.assertEqual(read_until_closed(r), b"-ERR Protocol error: invalid bulk length\r\n")
        r.close()
        r = self.authed()  # exactly the limit is fine
        self.assertEqual(len(r.command("ECHO", "y" * 1024 * 1024)), 1024 * 1024)
        r.close()

    def test_hostile_clients_memory_is_bounded(self):
        pid = self.server.proc.pid
        before = vm_rss_kb(pid)
        hostile = []
        garbage = b"x" * (900 * 1024)
        # nine of ten 16 KB arguments: a legal, incomplete command the server must hold
        big_args = b"*10\r\n" + (b"$16000\r\n" + b"z" * 16000 + b"\r\n") * 9
        for i in range(20):
            r = self.server.raw()
            kind = i % 4
            try:
                if kind == 0:
                    r.send(b"*1\r\n$1073741824\r\n")
                elif kind == 1:
                    r.send(encode(*["x"] * 11))
                elif kind == 2:
                    r.send(garbage)  # no CRLF anywhere
                else:
                    r.send(big_args)
            except (ConnectionResetError, BrokenPipeError):
                pass
            hostile.append((kind, r))
        time.sleep(0.3)
        grown = vm_rss_kb(pid) - before
        self.assertLess(grown, 100 * 1024, "RSS grew by %d KiB" % grown)
        for kind, r in hostile:
            if kind == 3:
                self.assertIsNone(read_until_closed(r, timeout=0.2), "idle client was closed")
            else:
                got = read_until_closed(r)
                self.assertIsNotNone(got, "hostile client kind %d left open" % kind)
                if got:  # a reset may beat the reply when our bytes were left unread
                    self.assertTrue(got.startswith(b"-ERR Protocol error: "), got)
            r.close()
        self.assert_alive()
        self.assertLess(vm_rss_kb(pid) - before, 100 * 1024)


@OWN_PROCESS
class Limits(unittest.TestCase):
    def test_output_buffer_limit(self):
        with Server(client_output_buffer_limit="normal 1mb 0 0") as s:
            r = s.raw()
            self.assertEqual(r.command("SET", "big", "v" * 100 * 1024), b"OK")
            greedy = s.raw()
            greedy.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            try:
                greedy.send(encode("GET", "big") * 2000)
            except (ConnectionResetError, BrokenPipeError):
                pass
            time.sleep(0.3)
            self.assertTrue(greedy.closed(timeout=3), "greedy client was not disconnected")
            greedy.close()
            self.assertGreaterEqual(
                int(info_field(r, "stats", "client_output_buffer_limit_disconnections")), 1)
            self.assertEqual(r.command("PING"), b"PONG")
            # a client under the limit is served in full
            self.assertEqual(len(r.command("GET", "big")), 100 * 1024)
            r.close()

    def client_ids(self, raw):
        return {int(line.split()[0][3:]) for line in
                raw.command("CLIENT", "LIST").decode().splitlines()}

    def test_soft_output_limit(self):
        with Server(client_output_buffer_limit="normal 0 200kb 1") as s:
            r = s.raw()
            self.assertEqual(r.command("SET", "big", "v" * 100 * 1024), b"OK")
            slow = s.raw()
            slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow_id = slow.command("CLIENT", "ID")
            slow.send(encode("GET", "big") * 100)  # 10 MB of replies, never read
            time.sleep(0.3)
            self.assertIn(slow_id, self.client_ids(r), "closed before the soft limit's grace")
            self.assertTrue(wait_for(lambda: slow_id not in self.client_ids(r), 4),
                            "client over the soft limit for over 1 s was not closed")
            self.assertEqual(
                int(info_field(r, "stats", "client_output_buffer_limit_disconnections")), 1)
            slow.close()
            r.close()

    def test_idle_timeout(self):
        with Server(timeout=1) as s:
            idle, busy = s.raw(), s.raw()
            idle_id = idle.command("CLIENT", "ID")
            start = time.time()
            while time.time() - start < 3:
                self.assertEqual(busy.command("PING"), b"PONG")
                if idle_id not in self.client_ids(busy):
                    break
                time.sleep(0.1)
            self.assertNotIn(idle_id, self.client_ids(busy), "idle client was not closed")
            self.assertGreater(time.time() - start, 0.9, "idle client closed too early")
            self.assertTrue(idle.closed())
            idle.close()
            busy.close()

    def test_protected_mode(self):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.connect(("192.0.2.1", 9))  # picks the outgoing address; sends nothing
                addr = u.getsockname()[0]
        except OSError:
            addr = None
        if not addr or addr.startswith("127."):
            self.skipTest("no non-loopback IPv4 address")
        with Server(bind="127.0.0.1 " + addr) as s:
            outside = RawClient(addr, s.port)
            got = read_until_closed(outside)
            self.assertIsNotNone(got)
            self.assertTrue(got.startswith(b"-DENIED Quiver is running in protected mode"), got)
            outside.close()
            r = s.raw()
            self.assertEqual(r.command("CONFIG", "SET", "requirepass", "pw"), b"OK")
            outside = RawClient(addr, s.port)
            self.assertEqual(outside.command("GET", "x"), "NOAUTH Authentication required.")
            self.assertEqual(outside.command("AUTH", "pw"), b"OK")
            self.assertEqual(outside.command("PING"), b"PONG")
            outside.close()
            r.close()

    def test_maxclients(self):
        with Server(maxclients=2) as s:
            a = s.raw()
            self.assertEqual(a.command("PING"), b"PONG")
            # the harness's readiness probe may still count: wait until it is gone
            deadline = time.time() + 3
            while info_field(a, "clients", "connected_clients") != "1":
                self.assertLess(time.time(), deadline)
                time.sleep(0.02)
            b = s.raw()
            self.assertEqual(b.command("PING"), b"PONG")
            c = s.raw()
            self.assertEqual(read_until_closed(c), b"-ERR max number of clients reached\r\n")
            c.close()
            self.assertGreaterEqual(int(info_field(a, "stats", "rejected_connections")), 1)
            b.close()
            deadline = time.time() + 3
            while info_field(a, "clients", "connected_clients") != "1":
                self.assertLess(time.time(), deadline)
                time.sleep(0.02)
            d = s.raw()
            self.assertEqual(d.command("PING"), b"PONG")
            a.close()
            d.close()


if __name__ == "__main__":
    unittest.main()
