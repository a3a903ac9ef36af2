"""TLS on client connections (tls-port and the tls-* options). A throwaway CA, a server
certificate for 127.0.0.1, a client certificate and a client certificate from another CA
are made with the openssl CLI. Checked: redis-py and redis-cli over TLS; a big pipeline and
multi-megabyte values round-trip; a big FS.JOIN streamed from a parked client; requests that
arrive with the handshake's last flight and a handshake sent a byte at a time;
tls-auth-clients yes/optional/no with no certificate or a foreign one; plaintext on the TLS
port closed while the plaintext port serves; port 0 serving TLS only; maxclients, the
unauthenticated limits and the output-buffer limit on TLS clients; bad certificate, key or
CA files refusing to start with a message naming the file.

Run: PYTHONPATH=tests/integration /usr/bin/python3 -m unittest -v test_tls"""
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import redis

import certs
import harness
from harness import listening_ports

CERTS = None


def path(name):
    return CERTS.path(name)


def setUpModule():
    global CERTS
    CERTS = certs.Certs()


def tearDownModule():
    CERTS.remove()


def tls_options(**extra):
    return CERTS.server_options(**extra)


def tls_client(server, cert="client", **kw):
    return CERTS.client(server, cert, **kw)


def ssl_context(cert="client"):
    ctx = ssl.create_default_context(cafile=path("ca.crt"))
    if cert:
        ctx.load_cert_chain(path(cert + ".crt"), path(cert + ".key"))
    return ctx


def read_to_end(sock):
    """Everything sent until the peer closed (a reset counts as closed)."""
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data


class TestTLS(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = harness.Server(**tls_options(loglevel="verbose"))
        cls.server.__enter__()
        cls.plain = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def tls_port(self):
        return self.server.options["tls_port"]

    def test_redis_py_with_a_client_certificate(self):
        r = tls_client(self.server)
        self.assertTrue(r.set("tls:k", "v"))
        self.assertEqual(r.get("tls:k"), b"v")
        self.assertEqual(self.plain.get("tls:k"), b"v")  # one keyspace for both ports
        me = r.client_id()
        line = [c for c in self.plain.client_list() if int(c["id"]) == me][0]
        self.assertEqual(line["laddr"], "127.0.0.1:%d" % self.tls_port())
        self.assertGreaterEqual(self.plain.info("clients")["connected_clients"], 2)

    def test_redis_cli_over_tls(self):
        base = ["redis-cli", "-h", "127.0.0.1", "-p", str(self.tls_port()), "--tls",
                "--cacert", path("ca.crt"), "--cert", path("client.crt"),
                "--key", path("client.key")]
        out = subprocess.run(base + ["SET", "tls:cli", "hello"], capture_output=True,
                             text=True, timeout=30)
        self.assertEqual(out.stdout.strip(), "OK", out.stderr)
        out = subprocess.run(base + ["GET", "tls:cli"], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.stdout.strip(), "hello")

    def test_big_pipeline_round_trips(self):
        r = tls_client(self.server)
        n = 20000
        p = r.pipeline(transaction=False)
        for i in range(n):
            p.set("tls:p:%d" % i, "value-%d" % i)
        for i in range(n):
            p.get("tls:p:%d" % i)
        res = p.execute()
        self.assertEqual(res[:n], [True] * n)
        self.assertEqual(res[n:], [b"value-%d" % i for i in range(n)])

    def test_multi_megabyte_values_round_trip(self):
        r = tls_client(self.server)
        for size in (5 * 1024 * 1024 + 7, 9 * 1024 * 1024):
            value = os.urandom(size)
            self.assertTrue(r.set("tls:big", value))
            self.assertEqual(r.get("tls:big"), value)
            self.assertEqual(self.plain.strlen("tls:big"), size)

    def test_big_join_streams_over_tls(self):
        c = self.plain.execute_command
        c("FS.ENTITY.CREATE", "tlsuser", "TYPE", "STRING")
        c("FS.VIEW.CREATE", "tlswide", "ENTITIES", 1, "tlsuser", "SCHEMA", "blob", "BYTES")
        n = 3000
        p = self.plain.pipeline(transaction=False)
        for i in range(n):
            p.execute_command("FS.PUSH", "tlswide", "e%d" % i, 1000, "FIELDS", "blob",
                              (b"%05d" % i) * 200)
        p.execute()
        args = ["FS.JOIN", "FEATURES", 1, "tlswide:blob", "ROWS", n]
        for i in range(n):
            args += ["e%d" % i, 2000]
        r = tls_client(self.server)
        p = r.pipeline(transaction=False)  # commands after a parked join answer in order
        p.execute_command(*args)
        p.execute_command("ECHO", "after")
        joined, after = p.execute()
        self.assertEqual([row[0] for row in joined], [(b"%05d" % i) * 200 for i in range(n)])
        self.assertEqual(after, b"after")
        self.assertEqual(joined, self.plain.execute_command(*args))

    def test_requests_in_the_handshakes_last_flight(self):
        """TLS 1.3: the client's Finished and its first request leave in one write, so the
        request is already inside OpenSSL when the handshake completes."""
        sock = socket.create_connection(("127.0.0.1", self.tls_port()), timeout=30)
        self.addCleanup(sock.close)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ssl_context().wrap_bio(inc, out, server_hostname="127.0.0.1")
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                if out.pending:
                    sock.sendall(out.read())
                data = sock.recv(65536)
                self.assertTrue(data, "server closed during the handshake")
                inc.write(data)
        obj.write(harness.encode("SET", "tls:flight", "1") + harness.encode("GET", "tls:flight"))
        sock.sendall(out.read())  # Finished and both requests together
        got = b""
        while got.count(b"\r\n") < 3:
            try:
                got += obj.read(65536)
            except ssl.SSLWantReadError:
                data = sock.recv(65536)
                self.assertTrue(data, "server closed the connection")
                inc.write(data)
        self.assertEqual(got, b"+OK\r\n$1\r\n1\r\n")

    def test_handshake_and_request_sent_a_byte_at_a_time(self):
        raw = socket.create_connection(("127.0.0.1", self.tls_port()), timeout=30)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.addCleanup(raw.close)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ssl_context().wrap_bio(inc, out, server_hostname="127.0.0.1")

        def send_bytewise():
            data = out.read()
            for i in range(len(data)):
                raw.send(data[i:i + 1])
                if i % 64 == 0:
                    time.sleep(0.001)  # let some bytes arrive alone

        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                send_bytewise()
                inc.write(raw.recv(65536))
        obj.write(harness.encode("ECHO", "x" * 3000))
        send_bytewise()
        got = b""
        while not got.endswith(b"x\r\n"):
            try:
                got += obj.read(65536)
            except ssl.SSLWantReadError:
                data = raw.recv(65536)
                self.assertTrue(data, "server closed the connection")
                inc.write(data)
        self.assertEqual(got, b"$3000\r\n" + b"x" * 3000 + b"\r\n")

    def s_client(self, version, steps):
        """openssl s_client fed the given lines one by one (a pause after each, so that its
        interactive commands K and R act between requests); returns its output."""
        p = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.tls_port(),
                              "-CAfile", path("ca.crt"), "-cert", path("client.crt"),
                              "-key", path("client.key"), version],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        try:
            for line in steps:
                time.sleep(0.3)
                p.stdin.write(line)
                p.stdin.flush()
            time.sleep(0.5)
            p.stdin.close()
        except BrokenPipeError:  # it ended the session itself
            pass
        out = p.stdout.read()
        p.wait(timeout=30)
        return out

    def test_key_update_mid_connection(self):
        """TLS 1.3 KeyUpdate asking for ours: the server's read must answer it with a write."""
        out = self.s_client("-tls1_3", [b"PING\r\n", b"K\n", b"ECHO after-keyupdate\r\n",
                                        b"K\n", b"ECHO again\r\n"])
        self.assertIn(b"+PONG\r\n", out)
        self.assertIn(b"$15\r\nafter-keyupdate\r\n", out)
        self.assertIn(b"$5\r\nagain\r\n", out)

    def test_renegotiation_is_refused_and_the_server_unharmed(self):
        out = self.s_client("-tls1_2", [b"PING\r\n", b"R\n", b"ECHO after\r\n"])
        self.assertIn(b"+PONG\r\n", out)
        self.assertIn(b"no renegotiation", out)
        self.assertTrue(tls_client(self.server).ping())

    def test_no_client_certificate_is_refused(self):
        r = tls_client(self.server, cert=None)
        with self.assertRaises(redis.exceptions.ConnectionError):
            r.ping()
        self.assertTrue(tls_client(self.server).ping())

    def test_certificate_from_another_ca_is_refused(self):
        r = tls_client(self.server, cert="foreign")
        with self.assertRaises(redis.exceptions.ConnectionError):
            r.ping()
        self.assertTrue(tls_client(self.server).ping())

    def test_plaintext_on_the_tls_port_is_closed(self):
        sock = socket.create_connection(("127.0.0.1", self.tls_port()), timeout=30)
        self.addCleanup(sock.close)
        sock.sendall(harness.encode("SET", "tls:plain", "1") + harness.encode("PING"))
        self.assertNotIn(b"PONG", read_to_end(sock))
        self.assertTrue(self.plain.ping())
        self.assertIsNone(self.plain.get("tls:plain"))
        self.assertTrue(tls_client(self.server).ping())
        self.assertIn("TLS handshake with", self.server.read_log())

    def test_client_closing_mid_handshake_leaves_the_server_healthy(self):
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", self.tls_port()), timeout=30)
            sock.send(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello
            sock.close()
        self.assertTrue(tls_client(self.server).ping())


class TestClientAuthModes(unittest.TestCase):
    def test_optional_accepts_no_certificate_but_checks_one_given(self):
        with harness.Server(**tls_options(tls_auth_clients="optional")) as s:
            self.assertTrue(tls_client(s, cert=None).ping())
            self.assertTrue(tls_client(s).ping())
            with self.assertRaises(redis.exceptions.ConnectionError):
                tls_client(s, cert="foreign").ping()

    def test_no_needs_no_ca(self):
        opts = tls_options(tls_auth_clients="no")
        del opts["tls_ca_cert_file"]
        with harness.Server(**opts) as s:
            self.assertTrue(tls_client(s, cert=None).ping())
            self.assertEqual(s.client().config_get("tls-auth-clients"),
                             {"tls-auth-clients": "no"})

    def test_ca_cert_dir(self):
        opts = tls_options(tls_ca_cert_dir=path("cadir"))
        del opts["tls_ca_cert_file"]
        with harness.Server(**opts) as s:
            self.assertTrue(tls_client(s).ping())
            with self.assertRaises(redis.exceptions.ConnectionError):
                tls_client(s, cert=None).ping()

    def test_protocols(self):
        with harness.Server(**tls_options(tls_protocols="TLSv1.3")) as s:
            ctx = ssl_context()
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            sock = socket.create_connection(("127.0.0.1", s.options["tls_port"]), timeout=30)
            self.addCleanup(sock.close)
            with self.assertRaises(ssl.SSLError):
                ctx.wrap_socket(sock, server_hostname="127.0.0.1")
            self.assertTrue(tls_client(s).ping())


class TestLimitsOverTLS(unittest.TestCase):
    def test_unauthenticated_limits_and_auth(self):
        with harness.Server(**tls_options(requirepass="secret")) as s:
            r = tls_client(s)
            with self.assertRaises(redis.exceptions.AuthenticationError):
                r.get("k")
            big = tls_client(s)
            with self.assertRaises((redis.exceptions.ConnectionError,
                                    redis.exceptions.ResponseError)):
                big.execute_command("AUTH", "x" * 100000)
                big.ping()
            self.assertTrue(tls_client(s, password="secret").ping())

    def test_maxclients_closes_tls_clients_over_the_limit(self):
        with harness.Server(**tls_options()) as s:
            plain = s.client()
            plain.config_set("maxclients", 2)
            a = tls_client(s)
            self.assertTrue(a.ping())
            with self.assertRaises(redis.exceptions.ConnectionError):
                tls_client(s).ping()
            self.assertTrue(a.ping())
            self.assertTrue(plain.ping())

    def test_output_buffer_limit_closes_a_tls_client(self):
        with harness.Server(**tls_options()) as s:
            plain = s.client()
            plain.set("big", b"x" * (4 * 1024 * 1024))
            plain.config_set("client-output-buffer-limit", "normal 1mb 0 0")
            with self.assertRaises(redis.exceptions.ConnectionError):
                tls_client(s).get("big")
            self.assertTrue(plain.ping())
            self.assertTrue(tls_client(s).ping())


class TestStartup(unittest.TestCase):
    def test_port_0_serves_tls_only(self):
        opts = tls_options()
        s = certs.TLSOnlyServer(**opts)
        with s:
            self.assertTrue(tls_client(s).ping())
            self.assertEqual(listening_ports(s.proc.pid), {opts["tls_port"]})
            self.assertEqual(tls_client(s).config_get("port"), {"port": "0"})

    def start_fails(self, opts):
        d = tempfile.mkdtemp(prefix="quiver-tls-start-")
        self.addCleanup(shutil.rmtree, d, True)
        args = [harness.BINARY, "--bind", "127.0.0.1", "--port", str(harness.free_port()),
                "--dir", os.path.join(d, "data")]
        for k, v in opts.items():
            args += ["--" + k.replace("_", "-"), str(v)]
        p = subprocess.run(args, capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        return p.stdout + p.stderr

    def test_missing_certificate_file(self):
        missing = path("nope/server.crt")
        out = self.start_fails(tls_options(tls_cert_file=missing))
        self.assertIn("tls-cert-file '%s'" % missing, out)

    def test_key_not_matching_the_certificate(self):
        out = self.start_fails(tls_options(tls_key_file=path("client.key")))
        self.assertIn("cannot load tls-key-file '%s'" % path("client.key"), out)
        self.assertIn("key values mismatch", out)

    def test_garbage_key_file(self):
        out = self.start_fails(tls_options(tls_key_file=path("ca.srl")))
        self.assertIn("cannot load tls-key-file '%s'" % path("ca.srl"), out)

    def test_missing_ca_file(self):
        missing = path("nope/ca.crt")
        out = self.start_fails(tls_options(tls_ca_cert_file=missing))
        self.assertIn("tls-ca-cert-file '%s'" % missing, out)

    def test_client_auth_without_a_ca(self):
        opts = tls_options()
        del opts["tls_ca_cert_file"]
        self.assertIn("tls-auth-clients needs tls-ca-cert-file", self.start_fails(opts))

    def test_no_certificate_configured(self):
        opts = tls_options()
        del opts["tls_cert_file"]
        self.assertIn("tls-port needs tls-cert-file", self.start_fails(opts))

    def test_unknown_protocol(self):
        out = self.start_fails(tls_options(tls_protocols="TLSv1.2 SSLv3"))
        self.assertIn("unknown protocol 'SSLv3'", out)

    def test_bad_auth_clients_value(self):
        out = self.start_fails(tls_options(tls_auth_clients="maybe"))
        self.assertIn("tls-auth-clients", out)

    def test_tls_options_are_immutable(self):
        with harness.Server() as s:
            r = s.client()
            self.assertEqual(r.config_get("tls-port"), {"tls-port": "0"})
            with self.assertRaisesRegex(redis.exceptions.ResponseError, "immutable"):
                r.config_set("tls-port", 6380)


if __name__ == "__main__":
    unittest.main()
