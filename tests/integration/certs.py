"""Test certificates, made with the openssl CLI in a temporary directory (for test_tls and
test_replication): a CA "ca", another CA "other-ca", "server" for 127.0.0.1 (and localhost)
signed by ca, "client" signed by ca, "foreign" (a client certificate signed by other-ca), and
"cadir": a tls-ca-cert-dir holding ca under its subject hash name. Each as name.crt and
name.key.

    c = certs.Certs()   # makes them all
    c.path("ca.crt")
    c.server_options()  # tls-port and the server's files, for harness.Server
    c.client(server)    # redis-py over TLS with the client certificate
    c.remove()
Also TLSOnlyServer: a harness.Server with port 0."""
import os
import shutil
import subprocess
import tempfile

import redis

import harness


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True)


class Certs:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="quiver-tls-")
        self.make("ca", "Quiver Test CA")
        self.make("other-ca", "Another CA")
        self.make("server", "127.0.0.1", ca="ca", san="IP:127.0.0.1,DNS:localhost")
        self.make("client", "client", ca="ca")
        self.make("foreign", "client", ca="other-ca")
        os.mkdir(self.path("cadir"))
        h = subprocess.run(["openssl", "x509", "-noout", "-subject_hash", "-in",
                            self.path("ca.crt")],
                           check=True, capture_output=True, text=True).stdout.strip()
        shutil.copy(self.path("ca.crt"), os.path.join(self.path("cadir"), h + ".0"))

    def path(self, name):
        return os.path.join(self.dir, name)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def make(self, name, cn, ca=None, san=None):
        """name.key and name.crt: self-signed when ca is None, else signed by ca."""
        p = self.path
        if ca is None:
            openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=" + cn, "-keyout", p(name + ".key"), "-out", p(name + ".crt"))
            return
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn,
                "-keyout", p(name + ".key"), "-out", p(name + ".csr"))
        ext = p(name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\n" % san if san else "basicConstraints=CA:FALSE\n")
        openssl("x509", "-req", "-days", "2", "-in", p(name + ".csr"), "-CA", p(ca + ".crt"),
                "-CAkey", p(ca + ".key"), "-CAcreateserial", "-extfile", ext,
                "-out", p(name + ".crt"))

    def server_options(self, **extra):
        opts = {"tls_port": harness.free_port(), "tls_cert_file": self.path("server.crt"),
                "tls_key_file": self.path("server.key"), "tls_ca_cert_file": self.path("ca.crt")}
        opts.update(extra)
        return opts

    def client(self, server, cert="client", **kw):
        """redis-py over TLS, verifying the server against ca (and its name, 127.0.0.1)."""
        args = dict(host=server.host, port=server.options["tls_port"], ssl=True,
                    ssl_ca_certs=self.path("ca.crt"), ssl_cert_reqs="required",
                    ssl_check_hostname=True, socket_timeout=30)
        if cert:
            args.update(ssl_certfile=self.path(cert + ".crt"),
                        ssl_keyfile=self.path(cert + ".key"))
        args.update(kw)
        return redis.Redis(**args)


class TLSOnlyServer(harness.Server):
    """port 0: the harness waits on the TLS port instead."""

    def __init__(self, **options):
        super().__init__(**options)
        self.port = options["tls_port"]

    def args(self):
        a = super().args()
        a[a.index("--port") + 1] = "0"
        return a
