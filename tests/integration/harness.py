"""Integration test harness: starts a real quiver-server on 127.0.0.1 with its own data
directory, or targets a running one when TEST_SERVER=host:port is set.

    from harness import Server
    with Server(durability="always") as s:
        r = s.client()          # redis.Redis (RESP2, decode_responses=False)
        s.kill()                # SIGKILL; s.start() restarts on the same dir and port

Also a minimal RESP3-capable raw client (RawClient) for what redis-py 4.3 cannot speak.
Run with Debian's /usr/bin/python3 (it has python3-redis)."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("QUIVER_BIN", os.path.join(ROOT, "quiver-server"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, what, timeout=30):
    """Polls pred until it holds; past timeout seconds the test fails, naming what."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def listening_ports(pid):
    """The TCP ports process pid listens on: its sockets in /proc/net/tcp{,6} in LISTEN."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.readlines()[1:]:
                cols = row.split()
                if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


class Server:
    def __init__(self, **options):
        self.options = {"durability": "everysec"}
        self.options.update(options)
        self.external = os.environ.get("TEST_SERVER")
        self.proc = None
        self.preexec = None  # run in the child before exec (resource limits)
        self.env = None  # the child's environment (None: this process's)
        self.dir = None
        if self.external:
            host, port = self.external.rsplit(":", 1)
            self.host, self.port = host, int(port)
        else:
            self.host, self.port = "127.0.0.1", free_port()

    def __enter__(self):
        if not self.external:
            self.dir = tempfile.mkdtemp(prefix="quiver-test-")
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def args(self):
        a = [BINARY, "--bind", "127.0.0.1", "--port", str(self.port),
             "--dir", os.path.join(self.dir, "data")]
        for k, v in self.options.items():
            a += ["--" + k.replace("_", "-"), str(v)]
        return a

    def start(self, timeout=10):
        self.log = open(os.path.join(self.dir, "server.log"), "ab")
        self.proc = subprocess.Popen(self.args(), stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=self.preexec, env=self.env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + self.read_log())
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("server did not start: " + self.read_log())

    def read_log(self):
        with open(os.path.join(self.dir, "server.log"), "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def kill(self):
        if self.proc:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None
            self.log.close()

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.log.close()

    def client(self, **kw):
        return redis.Redis(host=self.host, port=self.port, socket_timeout=10, **kw)

    def raw(self):
        return RawClient(self.host, self.port)


class RawClient:
    """Sends raw bytes and parses RESP2/RESP3 replies into Python values.
    Errors come back as RespError instances (not raised); maps as dicts; sets as sets of
    frozen values when hashable; verbatim strings as bytes without the format prefix."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def command(self, *args):
        self.send(encode(*args))
        return self.read()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest
        if t == b"-":
            return RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"=":
            return self._exact(int(rest))[4:]
        if t in (b"*", b"~", b">"):
            n = int(rest)
            if n < 0:
                return None
            items = [self.read() for _ in range(n)]
            return set(items) if t == b"~" else items
        if t == b"%":
            n = int(rest)
            return {self.read(): self.read() for _ in range(n)}
        if t == b"_":
            return None
        if t == b",":
            return float(rest)
        if t == b"#":
            return rest == b"t"
        raise ValueError("unknown reply type %r" % line)

    def closed(self, timeout=2):
        """True when the server closed the connection (reads EOF)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


class RespError(str):
    pass


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)
