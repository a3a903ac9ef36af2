"""The StatefulSet rehearsal, without a cluster: the chart rendered for 3 pods with auth,
and three quiver-servers started on 127.0.0.1 by the chart's own start script, with the
ConfigMap's config and the environment the StatefulSet gives pods 0, 1 and 2 (the password
from the rendered Secret). What differs from a cluster, and only that: each pod's volumes
are local directories, it listens on 127.0.0.1 on a port of its own rather than 0.0.0.0
on the shared containerPort, and pod 0's DNS name becomes "localhost" (QUIVER_LEADER_HOST:
still a name the replicas resolve at each connect), with pod 0's port in
QUIVER_LEADER_PORT, the one variable start.sh reads that the StatefulSet leaves unset.
Pods start together (podManagementPolicy Parallel), here the leader last, and are waited
for with the readiness probe script, run as the kubelet would.
Checked: leader + 2 replicas that converge; pod 1 deleted with its volume and started
empty full-syncs and does not lead; pod 0 restarted (SIGTERM) leads again with its data
and both replicas reconnect and converge; replicas stay alive (liveness) while pod 0 is
down; pod 0 back on an empty volume while still the leader is refused by both replicas,
which keep their data (replica-protect-data); pod 0 lost with its volume: a replica promoted by hand, then leaderOrdinal=1 rolled
out, leaves pod 1 leading and pod 0 back, empty, as its replica. A password full of quotes
and backslashes reaches the server intact. Every wait is bounded."""
import base64
import os
import random
import shutil
import subprocess
import unittest

import redis

import chart
import harness
from test_replication import caught_up, info, setup_schema, wait_for, write_load

LEADER_DNS = "q-quiver-%d.q-quiver-headless.ns.svc.cluster.local"


def setUpModule():
    chart.require_helm()


class PodServer(harness.Server):
    """One pod of the rendered StatefulSet, run by its start script (see the module doc)."""

    def __init__(self, manifest, ordinal, ports):
        super().__init__()
        self.external = None
        self.manifest, self.ordinal, self.ports = manifest, ordinal, ports
        self.host, self.port = "127.0.0.1", ports[ordinal]

    def start(self, timeout=30):
        self.pod = chart.Pod(self.manifest, self.ordinal, self.dir)
        bindir = os.path.join(self.dir, "bin")
        os.makedirs(bindir, exist_ok=True)
        if not os.path.exists(os.path.join(bindir, "quiver-server")):
            os.symlink(harness.BINARY, os.path.join(bindir, "quiver-server"))
        env = self.pod.env()
        leader = int(env["QUIVER_LEADER_ORDINAL"])
        assert env["QUIVER_LEADER_HOST"] == LEADER_DNS % leader, env["QUIVER_LEADER_HOST"]
        env.update(PATH=bindir + ":" + os.environ["PATH"], QUIVER_BIND="127.0.0.1",
                   QUIVER_PORT=str(self.port), QUIVER_LEADER_HOST="localhost",
                   QUIVER_LEADER_PORT=str(self.ports[leader]))
        self.env = env
        super().start(timeout)

    def args(self):
        return self.pod.command()

    def probe(self, kind):
        return subprocess.run(self.pod.probe(kind), env=self.env, capture_output=True,
                              timeout=30).returncode == 0

    def wait_ready(self):
        wait_for(lambda: self.probe("readinessProbe"), "pod %d to be ready" % self.ordinal)

    def delete_volumes(self):
        """What deleting the pod and its claim leaves: empty volumes."""
        for name in ("data", "run"):
            shutil.rmtree(os.path.join(self.dir, name))


class TestStatefulSet(unittest.TestCase):
    def setUp(self):
        self.manifest = chart.render({"replicaCount": 3, "auth": {"enabled": True}})
        secret = self.manifest.get("Secret", "q-quiver")["data"]["quiver-password"]
        self.password = base64.b64decode(secret).decode()
        ports = [harness.free_port() for _ in range(3)]
        self.pods = [PodServer(self.manifest, ordinal, ports) for ordinal in range(3)]
        for pod in reversed(self.pods):  # the replicas must wait for the leader themselves
            pod.__enter__()
            self.addCleanup(pod.__exit__, None, None, None)
        for pod in self.pods:
            pod.wait_ready()

    def client(self, ordinal):
        return self.pods[ordinal].client(password=self.password)

    def others(self, ordinal):
        return [o for o in range(3) if o != ordinal]

    def assert_leader_with_replicas(self, leader=0):
        lr = self.client(leader)
        wait_for(lambda: info(lr, "replication")["connected_slaves"] == "2",
                 "both replicas to connect to pod %d" % leader)
        role = lr.execute_command("ROLE")
        self.assertEqual(role[0], b"master")
        self.assertEqual(sorted(int(r[1]) for r in role[2]),
                         sorted(self.pods[o].port for o in self.others(leader)))
        for replica in self.others(leader):
            r = self.client(replica)
            role = r.execute_command("ROLE")
            self.assertEqual(role[:3], [b"slave", b"localhost", self.pods[leader].port])
            caught_up(lr, r)

    def assert_converged(self, leader=0):
        digest = self.client(leader).execute_command("QUIVER.DIGEST")
        for replica in self.others(leader):
            caught_up(self.client(leader), self.client(replica))
            self.assertEqual(self.client(replica).execute_command("QUIVER.DIGEST"), digest)
        return digest

    def test_rehearsal(self):
        rng = random.Random(7)
        leader = self.client(0)
        self.assert_leader_with_replicas()
        setup_schema(leader)
        write_load(leader, rng, 300)
        self.assert_converged()
        with self.assertRaises(redis.exceptions.ReadOnlyError):
            self.client(1).set("k", "v")
        with self.assertRaises(redis.exceptions.AuthenticationError):
            self.pods[1].client().get("k")

        # Pod 1 is deleted with its volume claim; the StatefulSet starts it again, empty.
        full_syncs = int(info(leader, "stats")["sync_full"])
        self.pods[1].stop()
        write_load(leader, rng, 100, base=300)
        self.pods[1].delete_volumes()
        self.pods[1].start()
        self.pods[1].wait_ready()
        self.assert_leader_with_replicas()
        self.assertEqual(int(info(leader, "stats")["sync_full"]), full_syncs + 1)
        self.assertEqual(self.client(1).execute_command("ROLE")[0], b"slave")
        digest = self.assert_converged()

        # Pod 0 restarts (SIGTERM) on the same volume: it leads again with its data.
        self.pods[0].stop()
        for replica in (1, 2):
            wait_for(lambda: info(self.client(replica), "replication")["master_link_status"]
                     == "down", "pod %d to see pod 0 gone" % replica)
            self.assertTrue(self.pods[replica].probe("livenessProbe"),
                            "a replica must stay alive while its leader is down")
            self.assertEqual(self.client(replica).execute_command("QUIVER.DIGEST"), digest)
        self.pods[0].start()
        self.pods[0].wait_ready()
        leader = self.client(0)
        self.assertEqual(leader.execute_command("QUIVER.DIGEST"), digest)
        self.assert_leader_with_replicas()
        write_load(leader, rng, 100, base=400)
        self.assertNotEqual(self.assert_converged(), digest)

    def test_pod_0_back_empty_is_not_followed(self):
        """replica-protect-data (on in the chart): an empty pod 0 cannot wipe the replicas."""
        rng = random.Random(9)
        setup_schema(self.client(0))
        write_load(self.client(0), rng, 200)
        digest = self.assert_converged()
        self.pods[0].kill()
        self.pods[0].delete_volumes()
        self.pods[0].start()
        self.pods[0].wait_ready()
        for replica in (1, 2):
            r = self.client(replica)
            wait_for(lambda: "master_sync_refused" in info(r, "replication"),
                     "pod %d to refuse the empty leader" % replica)
            self.assertEqual(info(r, "replication")["master_link_status"], "down")
            self.assertEqual(r.execute_command("QUIVER.DIGEST"), digest)
        self.assertEqual(self.client(0).dbsize(), 0)

    def test_pod_0_lost_with_its_volume_and_a_replica_promoted(self):
        """The README's procedure: REPLICAOF NO ONE on a replica, then leaderOrdinal."""
        rng = random.Random(8)
        setup_schema(self.client(0))
        write_load(self.client(0), rng, 200)
        self.assert_converged()
        self.pods[0].kill()  # its node is gone, and its volume with it
        self.pods[0].delete_volumes()

        # By hand: pod 1 leads at once, pod 2 follows it.
        self.client(1).execute_command("REPLICAOF", "NO", "ONE")
        self.client(2).execute_command("REPLICAOF", "localhost", self.pods[1].port)
        write_load(self.client(1), rng, 50, base=200)

        # helm upgrade --set leaderOrdinal=1: the pods roll, the last one first. (An upgrade
        # keeps a generated password by reading its Secret back; helm template cannot.)
        upgraded = chart.render({"replicaCount": 3, "auth": {"enabled": True,
                                                             "password": self.password},
                                 "leaderOrdinal": 1})
        self.assertEqual(upgraded.get("Service", "q-quiver")["spec"]["selector"][
            "statefulset.kubernetes.io/pod-name"], "q-quiver-1")
        full_syncs = int(info(self.client(1), "stats")["sync_full"])
        for ordinal in (2, 1, 0):
            pod = self.pods[ordinal]
            pod.stop()
            pod.manifest = upgraded
            pod.start()
            pod.wait_ready()
        self.assert_leader_with_replicas(leader=1)
        self.assertGreater(int(info(self.client(1), "stats")["sync_full"]), full_syncs)
        write_load(self.client(1), rng, 50, base=250)
        digest = self.assert_converged(leader=1)
        self.assertEqual(self.client(0).execute_command("QUIVER.DIGEST"), digest)


class TestStartScript(unittest.TestCase):
    def test_password_with_quotes_and_backslashes_reaches_the_server(self):
        password = 'a "quoted" \\x41 $HOME \' pass\\'
        m = chart.render({"replicaCount": 1, "auth": {"enabled": True, "password": password}})
        with PodServer(m, 0, [harness.free_port()]) as pod:
            pod.wait_ready()
            r = pod.client(password=password)
            self.assertEqual(r.config_get("requirepass"), {"requirepass": password})
            self.assertEqual(r.config_get("masterauth"), {"masterauth": password})
            with open(os.path.join(pod.dir, "run", "quiver.conf"), "rb") as f:
                self.assertIn(b"requirepass ", f.read())
            self.assertEqual(os.stat(os.path.join(pod.dir, "run", "quiver.conf")).st_mode & 0o077, 0)


if __name__ == "__main__":
    unittest.main()
