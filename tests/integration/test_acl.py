"""Access control (query/acl.h): the ACL command, AUTH/HELLO with users, NOPERM checks on
commands, categories and keys, the aclfile, and redis-cli --user/--pass.

AclCompat runs the same scripts against Debian's redis-server (7.0) and Quiver over raw
RESP2 and requires identical replies where the formats are Redis's: SETUSER/GETUSER/LIST/
USERS/WHOAMI/DELUSER, the errors of bad rules, NOPERM and WRONGPASS texts. (Redis 7.0
reorders some mixes of command rules, e.g. `+set +get` reads back `+get +set`: the scripts
use rule lists whose order Redis keeps.)

Run: PYTHONPATH=tests/integration /usr/bin/python3 -m unittest -v test_acl"""
import hashlib
import os
import shutil
import subprocess
import tempfile
import unittest

import redis

import harness
from harness import RespError
from test_compat import REDIS_SERVER, wait_port


def sha(pw):
    return hashlib.sha256(pw.encode()).hexdigest()


# Each line: a list of commands run on one new connection; replies compared one by one.
SCRIPTS = [
    [["ACL", "LIST"], ["ACL", "USERS"], ["ACL", "WHOAMI"], ["ACL", "GETUSER", "default"]],
    [["ACL", "SETUSER", "alice", "on", ">p1", "~app:*", "%R~ro:*", "+@hash", "-hdel"],
     ["ACL", "GETUSER", "alice"], ["ACL", "LIST"], ["ACL", "USERS"]],
    [["ACL", "SETUSER", "newu"], ["ACL", "GETUSER", "newu"], ["ACL", "GETUSER", "nosuch"]],
    [["ACL", "SETUSER", "c1", "&foo", "&bar", "~a", "allkeys"], ["ACL", "GETUSER", "c1"]],
    [["ACL", "SETUSER", "c2", "on", ">a", ">b", ">a"], ["ACL", "GETUSER", "c2"]],
    [["ACL", "SETUSER", "t", "reset", "+@all", "-get"], ["ACL", "GETUSER", "t"],
     ["ACL", "SETUSER", "t", "+get"], ["ACL", "GETUSER", "t"],
     ["ACL", "SETUSER", "t", "reset", "+get", "-get"], ["ACL", "GETUSER", "t"],
     ["ACL", "SETUSER", "t", "reset", "+get", "+@read"], ["ACL", "GETUSER", "t"],
     ["ACL", "SETUSER", "t", "reset", "+@all", "-@write", "+set"], ["ACL", "GETUSER", "t"],
     ["ACL", "SETUSER", "t", "reset", "%R~a", "%W~a", "%RW~b", "%W~c"], ["ACL", "GETUSER", "t"],
     ["ACL", "SETUSER", "t", "reset", ">x", "nopass"], ["ACL", "GETUSER", "t"],
     ["ACL", "SETUSER", "t", "reset", "off", ">a", ">b", "<a"], ["ACL", "LIST"]],
    # bad rules: Redis's reasons, and the user as it was
    [["ACL", "SETUSER", "bad", "on", "+get"],
     ["ACL", "SETUSER", "bad", "foo"],
     ["ACL", "SETUSER", "bad", "off", "+@nosuch"],
     ["ACL", "SETUSER", "bad", "+nosuchcmd"],
     ["ACL", "SETUSER", "bad", "#abc"],
     ["ACL", "SETUSER", "bad", "!abc"],
     ["ACL", "SETUSER", "bad", "<nope"],
     ["ACL", "SETUSER", "bad", "%X~a"],
     ["ACL", "SETUSER", "bad", "%Ra"],
     ["ACL", "SETUSER", "bad", "allkeys", "~c"],
     ["ACL", "SETUSER", "bad", "allchannels", "&c"],
     ["ACL", "SETUSER", "bad", "~a b"], ["ACL", "SETUSER", "bad", "resetchannels", "&a\tb"],
     ["ACL", "SETUSER", "bad", ">with space"],
     ["ACL", "SETUSER", "has space"],
     ["ACL", "SETUSER", "neverborn", "on", "bogus"],
     ["ACL", "GETUSER", "bad"], ["ACL", "GETUSER", "neverborn"]],
    [["ACL", "DELUSER", "default"], ["ACL", "DELUSER", "nosuch", "c1", "c2"],
     ["ACL", "DELUSER", "c1"], ["ACL", "USERS"],
     ["ACL"], ["ACL", "nosuchsub"], ["ACL", "WHOAMI", "x"], ["ACL", "USERS", "x"],
     ["ACL", "GETUSER"], ["ACL", "GENPASS", "0"], ["ACL", "GENPASS", "4097"],
     ["ACL", "GENPASS", "x"], ["ACL", "CAT", "nosuch"], ["ACL", "LOAD"], ["ACL", "SAVE"]],
    [["AUTH", "nosuch", "x"], ["AUTH", "x"], ["AUTH", "default", "whatever"],
     ["ACL", "SETUSER", "d", "off", ">pw", "+@all", "~*"], ["AUTH", "d", "pw"],
     ["ACL", "SETUSER", "u1", "reset", "on", ">pw", "~app:*", "+get", "+mset", "+multi",
      "+exec"],
     ["AUTH", "u1", "wrong"], ["AUTH", "u1", "pw"],
     ["GET", "other:1"], ["SET", "app:1", "x"], ["MSET", "app:1", "x", "other:2", "y"],
     ["MSET", "app:1", "x", "app:2", "y"], ["GET", "app:1"], ["PING"],
     ["MULTI"], ["SET", "app:1", "y"], ["GET", "other:3"], ["EXEC"],
     ["AUTH", "default", "x"], ["GET", "app:1"]],
]


class AclCompat(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="quiver-acl-")
        cls.redis_port = harness.free_port()
        cls.redis_log = open(os.path.join(cls.tmp, "redis.log"), "wb")
        cls.redis_proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(cls.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", cls.tmp, "--daemonize", "no"],
            stdout=cls.redis_log, stderr=subprocess.STDOUT)
        cls.quiver = harness.Server()
        try:
            wait_port("127.0.0.1", cls.redis_port, cls.redis_proc)
            cls.quiver.__enter__()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.quiver.__exit__(None, None, None)
        if cls.redis_proc.poll() is None:
            cls.redis_proc.terminate()
            cls.redis_proc.wait(timeout=10)
        cls.redis_log.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_scripts_match_redis(self):
        for script in SCRIPTS:
            want_conn = harness.RawClient("127.0.0.1", self.redis_port)
            got_conn = self.quiver.raw()
            try:
                for cmd in script:
                    want, got = want_conn.command(*cmd), got_conn.command(*cmd)
                    self.assertEqual(got, want, "%r: Quiver %r, Redis %r" % (cmd, got, want))
            finally:
                want_conn.close()
                got_conn.close()

    def on_both(self, fn):
        """fn(connect) on Redis and on Quiver; the results must be equal."""
        results = []
        for port in (self.redis_port, self.quiver.port):
            conns = []

            def connect():
                conns.append(harness.RawClient("127.0.0.1", port))
                return conns[-1]
            try:
                results.append(fn(connect))
            finally:
                for conn in conns:
                    conn.close()
        self.assertEqual(results[1], results[0])
        return results[0]

    def test_rules_changed_before_exec(self):
        def script(connect):
            admin, user = connect(), connect()
            out = [admin.command("ACL", "SETUSER", "mx", "reset", "on", "nopass", "~*",
                                 "+@all")]
            out += [user.command(*c) for c in (["AUTH", "mx", "x"], ["MULTI"],
                                               ["SET", "k", "v"], ["GET", "k"], ["PING"])]
            out.append(admin.command("ACL", "SETUSER", "mx", "-set", "resetkeys", "~j*"))
            out.append(user.command("EXEC"))
            return out
        out = self.on_both(script)
        self.assertTrue(out[-1][0].startswith("NOPERM ACLs rules changed"))

    def test_genpass_sizes(self):
        r = self.quiver.client()
        for bits, chars in ((None, 64), (5, 2), (1, 1), (4096, 1024)):
            pw = r.execute_command("ACL", "GENPASS", *([bits] if bits else []))
            self.assertEqual(len(pw), chars)
            int(pw, 16)
        self.assertNotEqual(r.execute_command("ACL", "GENPASS"),
                            r.execute_command("ACL", "GENPASS"))


class AclServer(unittest.TestCase):
    """Quiver alone: categories of its own commands, clients of changed or deleted users,
    requirepass, HELLO AUTH, redis-cli."""

    def setUp(self):
        self.s = harness.Server()
        self.s.__enter__()
        self.admin = self.s.client()

    def tearDown(self):
        self.s.__exit__(None, None, None)

    def user(self, name, *rules):
        self.admin.execute_command("ACL", "SETUSER", name, "reset", "on", ">pw", *rules)
        return self.s.client(username=name, password="pw")

    def assert_noperm_cmd(self, r, cmd, *args):
        with self.assertRaises(redis.exceptions.NoPermissionError) as e:
            r.execute_command(cmd, *args)
        self.assertEqual(str(e.exception), "this user has no permissions to run the '%s' "
                         "command" % cmd.lower())

    def test_featurestore_category(self):
        self.admin.execute_command("FS.ENTITY.CREATE", "user")
        self.admin.execute_command("FS.VIEW.CREATE", "v", "ENTITIES", 1, "user",
                                   "SCHEMA", "x", "INT64")
        self.admin.execute_command("FS.PUSH", "v", "u1", 1000, "FIELDS", "x", 7)
        r = self.user("fs", "~*", "+@featurestore")
        self.assertEqual(r.execute_command("FS.GET", "v", "u1"), [7])
        self.assert_noperm_cmd(r, "SET", "k", "v")
        self.assert_noperm_cmd(r, "FT.SEARCH", "idx", "*")

    def test_vector_category(self):
        self.admin.execute_command("FT.CREATE", "idx", "ON", "HASH", "PREFIX", 1, "doc:",
                                   "SCHEMA", "t", "TAG")
        self.admin.hset("doc:1", "t", "a")
        for cat in ("@vector", "@search"):
            r = self.user("vec", "~*", "+" + cat)
            self.assertEqual(r.execute_command("FT.SEARCH", "idx", "*")[0], 1)
            self.assert_noperm_cmd(r, "FS.PUSH", "v", "e", 1, "FIELDS", "x", 1)
            self.assert_noperm_cmd(r, "HSET", "doc:2", "t", "b")

    def test_read_category_cannot_write(self):
        self.admin.set("k", "v")
        r = self.user("reader", "~*", "+@read")
        self.assertEqual(r.get("k"), b"v")
        self.assertEqual(r.hgetall("nohash"), {})
        self.assert_noperm_cmd(r, "SET", "k", "w")
        self.assert_noperm_cmd(r, "DEL", "k")
        self.assertEqual(self.admin.get("k"), b"v")
        cats = self.admin.execute_command("ACL", "CAT")
        self.assertIn(b"featurestore", cats)
        self.assertIn(b"vector", cats)
        read = self.admin.execute_command("ACL", "CAT", "read")
        self.assertIn(b"get", read)
        self.assertNotIn(b"set", read)
        self.assertIn(b"fs.get", self.admin.execute_command("ACL", "CAT", "featurestore"))
        self.assertIn(b"ft.search", self.admin.execute_command("ACL", "CAT", "search"))

    def test_key_patterns(self):
        r = self.user("app", "~app:*", "%R~ro:*", "+@all")
        r.set("app:1", "x")
        self.assertEqual(r.get("app:1"), b"x")
        self.admin.set("ro:1", "r")
        self.assertEqual(r.get("ro:1"), b"r")
        for cmd in (["GET", "other:1"], ["SET", "ro:1", "w"],
                    ["MSET", "app:2", "y", "other:2", "z"], ["RENAME", "app:1", "other:1"]):
            with self.assertRaises(redis.exceptions.NoPermissionError):
                r.execute_command(*cmd)
        self.assertIsNone(self.admin.get("app:2"))  # refused wholly: nothing written
        self.assertIsNone(self.admin.get("other:2"))
        self.assertEqual(self.admin.get("ro:1"), b"r")

    def test_auth_and_hello(self):
        self.admin.execute_command("ACL", "SETUSER", "bob", "on", ">bpw", "+@all", "~*")
        raw = self.s.raw()
        self.assertEqual(raw.command("AUTH", "bob", "nope"),
                         "WRONGPASS invalid username-password pair or user is disabled.")
        hello = raw.command("HELLO", "3", "AUTH", "bob", "bpw")
        self.assertEqual(hello[b"proto"], 3)
        self.assertEqual(raw.command("ACL", "WHOAMI"), b"bob")
        self.assertEqual(raw.command("HELLO", "2", "AUTH", "bob", "bad"),
                         "WRONGPASS invalid username-password pair or user is disabled.")
        self.assertEqual(raw.command("ACL", "WHOAMI"), b"bob")  # a failed AUTH changes nothing
        self.assertEqual(raw.command("RESET"), b"RESET")
        self.assertEqual(raw.command("ACL", "WHOAMI"), b"default")
        self.admin.execute_command("ACL", "SETUSER", "bob", "off")
        self.assertEqual(raw.command("AUTH", "bob", "bpw"),
                         "WRONGPASS invalid username-password pair or user is disabled.")
        raw.close()
        r = self.s.client(username="default", password="anything")  # default is nopass
        self.assertTrue(r.ping())

    def test_rule_changes_apply_to_connected_clients(self):
        r = self.user("live", "~*", "+@all")
        self.assertIsNone(r.get("k"))
        self.admin.execute_command("ACL", "SETUSER", "live", "-get")
        self.assert_noperm_cmd(r, "GET", "k")

    def test_deluser_disconnects_its_clients(self):
        self.admin.execute_command("ACL", "SETUSER", "gone", "on", ">pw", "+@all", "~*")
        victim, other = self.s.raw(), self.s.raw()
        self.assertEqual(victim.command("AUTH", "gone", "pw"), b"OK")
        self.assertEqual(self.admin.execute_command("ACL", "DELUSER", "gone"), 1)
        self.assertTrue(victim.closed())
        self.assertEqual(other.command("PING"), b"PONG")
        self.assertEqual(other.command("AUTH", "gone", "pw"),
                         "WRONGPASS invalid username-password pair or user is disabled.")
        # a user deleting itself gets its reply, then is disconnected
        self.assertEqual(other.command("ACL", "SETUSER", "me", "on", ">pw", "+@all", "~*"),
                         b"OK")
        self.assertEqual(other.command("AUTH", "me", "pw"), b"OK")
        self.assertEqual(other.command("ACL", "DELUSER", "me"), 1)
        self.assertTrue(other.closed())
        victim.close()
        other.close()
        self.assertEqual(self.admin.execute_command("ACL", "USERS"), [b"default"])

    def test_client_kill_user(self):
        self.admin.execute_command("ACL", "SETUSER", "k1", "on", ">pw", "+@all", "~*")
        victim, bystander = self.s.raw(), self.s.raw()
        self.assertEqual(victim.command("AUTH", "k1", "pw"), b"OK")
        self.assertIn(b" user=k1 ", victim.command("CLIENT", "INFO"))
        self.assertIn(b" user=default ", bystander.command("CLIENT", "INFO"))
        self.assertEqual(self.admin.execute_command("CLIENT", "KILL", "USER", "k1"), 1)
        self.assertTrue(victim.closed())
        self.assertEqual(bystander.command("PING"), b"PONG")
        self.assertEqual(bystander.command("CLIENT", "KILL", "USER", "nosuch"),
                         "ERR No such user 'nosuch'")
        victim.close()
        bystander.close()

    def test_redis_cli_user_pass(self):
        self.admin.execute_command("ACL", "SETUSER", "cli", "on", ">cpw", "~app:*", "+get",
                                   "+set")
        base = ["redis-cli", "-h", "127.0.0.1", "-p", str(self.s.port), "--no-auth-warning"]
        out = subprocess.run(base + ["--user", "cli", "--pass", "cpw", "SET", "app:1", "v"],
                             capture_output=True, text=True, timeout=20)
        self.assertEqual(out.stdout.strip(), "OK")
        out = subprocess.run(base + ["--user", "cli", "--pass", "cpw", "GET", "other"],
                             capture_output=True, text=True, timeout=20)
        self.assertIn("NOPERM", out.stdout + out.stderr)
        out = subprocess.run(base + ["--user", "cli", "--pass", "bad", "GET", "app:1"],
                             capture_output=True, text=True, timeout=20)
        self.assertIn("WRONGPASS", out.stdout + out.stderr)
        self.assertEqual(self.admin.get("app:1"), b"v")


class AclRequirepass(unittest.TestCase):
    def test_requirepass_is_the_default_password(self):
        with harness.Server(requirepass="rp") as s:
            raw = s.raw()
            self.assertEqual(raw.command("GET", "k"), "NOAUTH Authentication required.")
            self.assertEqual(raw.command("AUTH", "wrong"),
                             "WRONGPASS invalid username-password pair or user is disabled.")
            self.assertEqual(raw.command("AUTH", "rp"), b"OK")
            self.assertEqual(raw.command("ACL", "LIST"),
                             [("user default on #%s ~* &* +@all" % sha("rp")).encode()])
            self.assertEqual(raw.command("CONFIG", "SET", "requirepass", ""), b"OK")
            self.assertEqual(raw.command("ACL", "LIST"),
                             [b"user default on nopass ~* &* +@all"])
            fresh = s.raw()
            self.assertEqual(fresh.command("GET", "k"), None)  # no AUTH needed any more
            # ACL SETUSER default survives an unrelated CONFIG SET
            self.assertEqual(raw.command("ACL", "SETUSER", "default", ">np"), b"OK")
            self.assertEqual(raw.command("CONFIG", "SET", "hz", "11"), b"OK")
            fresh.close()
            fresh = s.raw()
            self.assertEqual(fresh.command("GET", "k"), "NOAUTH Authentication required.")
            fresh.close()
            raw.close()


class AclFile(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="quiver-aclfile-")
        self.path = os.path.join(self.tmp, "users.acl")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, text):
        with open(self.path, "w") as f:
            f.write(text)

    def read(self):
        with open(self.path) as f:
            return f.read()

    def test_load_at_start_save_and_reload(self):
        self.write("# users\n\nuser alice on >apw ~app:* +@read\n")
        with harness.Server(aclfile=self.path, requirepass="rp") as s:
            r = s.client(password="rp")  # the file has no default: requirepass applies
            self.assertEqual(r.execute_command("ACL", "USERS"), [b"alice", b"default"])
            a = s.client(username="alice", password="apw")
            self.assertIsNone(a.get("app:1"))
            r.execute_command("ACL", "SETUSER", "bob", "on", ">bpw", "~*", "+@all")
            before = r.execute_command("ACL", "LIST")
            self.assertEqual(r.execute_command("ACL", "SAVE"), b"OK")
            self.assertEqual(self.read(), "".join(l.decode() + "\n" for l in before))
            self.assertFalse(os.path.exists(self.path + ".tmp"))
            # changes after the save are undone by LOAD; clients of dropped users go
            r.execute_command("ACL", "SETUSER", "carol", "on", ">cpw", "+@all")
            carol = s.raw()
            self.assertEqual(carol.command("AUTH", "carol", "cpw"), b"OK")
            r.execute_command("ACL", "SETUSER", "alice", "-@read")
            self.assertEqual(r.execute_command("ACL", "LOAD"), b"OK")
            self.assertEqual(r.execute_command("ACL", "LIST"), before)
            self.assertTrue(carol.closed())
            carol.close()
            self.assertIsNone(a.get("app:1"))  # alice's connection sees her restored rules

    def test_bad_file_on_load_changes_nothing(self):
        self.write("user alice on >apw ~* +@all\n")
        with harness.Server(aclfile=self.path) as s:
            r = s.client()
            before = r.execute_command("ACL", "LIST")
            for text, why in (("user alice on\nuser bob on bogus\n", ":2: Syntax error"),
                              ("user alice on\nuser alice off\n", ":2: Duplicate user 'alice'"),
                              ("user alice on\nnotuser x\n", ":2: should start with user"),
                              ("user alice +nosuch\n", ":1: Unknown command")):
                self.write(text)
                with self.assertRaises(redis.exceptions.ResponseError) as e:
                    r.execute_command("ACL", "LOAD")
                self.assertIn(self.path + why, str(e.exception))
                self.assertIn("no change to the previously active ACL rules", str(e.exception))
                self.assertEqual(r.execute_command("ACL", "LIST"), before)
            alice = s.client(username="alice", password="apw")
            self.assertTrue(alice.ping())

    def test_file_default_overrides_requirepass(self):
        self.write("user default on >fpw ~* &* +@all\n")
        with harness.Server(aclfile=self.path, requirepass="rp") as s:
            raw = s.raw()
            self.assertEqual(raw.command("AUTH", "rp"),
                             "WRONGPASS invalid username-password pair or user is disabled.")
            raw.close()
            self.assertTrue(s.client(password="fpw").ping())

    def test_bad_file_at_start_refuses_to_start(self):
        self.write("user alice on\nuser bob on >x bogus\n")
        s = harness.Server(aclfile=self.path)
        with self.assertRaises(RuntimeError) as e:
            s.__enter__()
        s.__exit__(None, None, None)
        self.assertIn(self.path + ":2: Syntax error", str(e.exception))
        missing = harness.Server(aclfile=os.path.join(self.tmp, "nope.acl"))
        with self.assertRaises(RuntimeError) as e:
            missing.__enter__()
        missing.__exit__(None, None, None)
        self.assertIn("nope.acl", str(e.exception))


if __name__ == "__main__":
    unittest.main()
