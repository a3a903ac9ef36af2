"""Chart checks: helm lint --strict and helm template of helm/quiver with several value sets
(1 pod; 3 pods with auth; GPU; an existing Secret; persistence off; metrics with a
ServiceMonitor), assertions on the rendered objects, the start script run for each
ordinal (the replicaof it writes), the probe script against fake servers (PONG, LOADING,
nothing), and values the schema must refuse, each with Helm's error. Without Helm the
suite fails and says to run make deps."""
import base64
import os
import socket
import subprocess
import tempfile
import threading
import unittest

import chart
from chart import Pod, render, refusal

FULL = "q-quiver"
LEADER_HOST = "q-quiver-0.q-quiver-headless.ns.svc.cluster.local"

VALUE_SETS = {
    "one pod": {"replicaCount": 1, "auth": {"enabled": False}},
    "three pods with auth": {"replicaCount": 3, "auth": {"enabled": True, "password": "s3cret"}},
    "gpu": {"gpu": {"enabled": True, "count": 2}},
    "existing secret": {"auth": {"existingSecret": "creds", "existingSecretPasswordKey": "pw"}},
    "persistence off": {"persistence": {"enabled": False}},
    "metrics": {"metrics": {"enabled": True, "serviceMonitor": {"enabled": True}}},
}


def setUpModule():
    chart.require_helm()


def start_script_output(manifest, ordinal, secrets=None):
    """The runtime config start.sh writes for that ordinal, as the quiver-server it execs
    gets it (a stand-in that copies its config file beside itself)."""
    with tempfile.TemporaryDirectory() as root:
        pod = Pod(manifest, ordinal, root, secrets)
        bindir = os.path.join(root, "bin")
        os.mkdir(bindir)
        with open(os.path.join(bindir, "quiver-server"), "w") as f:
            f.write('#!/bin/sh\ncp "$1" "$(dirname "$0")/got.conf"\n')
        os.chmod(os.path.join(bindir, "quiver-server"), 0o755)
        env = dict(pod.env(), PATH=bindir + ":" + os.environ["PATH"])
        p = subprocess.run(pod.command(), env=env, capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise AssertionError("start.sh failed: " + p.stderr)
        with open(os.path.join(bindir, "got.conf")) as f:
            return f.read()


def config_lines(text):
    return [l for l in text.splitlines() if l.strip() and not l.startswith("#")]


class Lint(unittest.TestCase):
    def test_lint_strict_with_every_value_set(self):
        for name, values in [("defaults", {})] + list(VALUE_SETS.items()):
            with self.subTest(name):
                p = chart.helm("lint", "--strict", chart.CHART, values=values)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                self.assertIn("0 chart(s) failed", p.stdout)


class Objects(unittest.TestCase):
    def test_kinds_and_names(self):
        m = render(VALUE_SETS["three pods with auth"])
        self.assertEqual(m.kinds(), sorted([
            ("ConfigMap", FULL), ("PodDisruptionBudget", FULL), ("Secret", FULL),
            ("Service", FULL), ("Service", FULL + "-headless"), ("Service", FULL + "-read"),
            ("ServiceAccount", FULL), ("StatefulSet", FULL)]))
        for d in m.docs:
            labels = d["metadata"]["labels"]
            self.assertEqual(labels["app.kubernetes.io/name"], "quiver", d["kind"])
            self.assertEqual(labels["app.kubernetes.io/instance"], "q")
            self.assertEqual(labels["app.kubernetes.io/managed-by"], "Helm")
            self.assertEqual(labels["helm.sh/chart"], "quiver-0.1.0")
            self.assertEqual(d["metadata"]["namespace"], "ns")

    def test_statefulset_and_services(self):
        m = render(VALUE_SETS["three pods with auth"])
        sts = m.get("StatefulSet", FULL)
        self.assertEqual(sts["spec"]["replicas"], 3)
        self.assertEqual(sts["spec"]["serviceName"], FULL + "-headless")
        # Replicas are re-created even while pod 0 is down (OrderedReady would wait for it).
        self.assertEqual(sts["spec"]["podManagementPolicy"], "Parallel")
        selector = sts["spec"]["selector"]["matchLabels"]
        pod_labels = sts["spec"]["template"]["metadata"]["labels"]
        self.assertLessEqual(selector.items(), pod_labels.items())
        headless = m.get("Service", FULL + "-headless")["spec"]
        self.assertEqual(headless["clusterIP"], "None")
        self.assertTrue(headless["publishNotReadyAddresses"])
        self.assertEqual(headless["selector"], selector)
        leader = m.get("Service", FULL)["spec"]
        self.assertEqual(leader["selector"], dict(selector, **{
            "statefulset.kubernetes.io/pod-name": FULL + "-0"}))
        self.assertEqual(m.get("Service", FULL + "-read")["spec"]["selector"], selector)
        for svc in (leader, m.get("Service", FULL + "-read")["spec"]):
            self.assertEqual(svc["ports"][0]["targetPort"], "quiver")
        self.assertEqual(m.container()["ports"][0], {"name": "quiver", "containerPort": 6379})
        pdb = m.get("PodDisruptionBudget", FULL)["spec"]
        self.assertEqual(pdb, {"maxUnavailable": 1, "selector": {"matchLabels": selector}})
        anti = sts["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        self.assertEqual(list(anti), ["preferredDuringSchedulingIgnoredDuringExecution"])

    def test_replicaof_target_by_ordinal(self):
        m = render(VALUE_SETS["three pods with auth"])
        leader = config_lines(start_script_output(m, 0))
        self.assertFalse([l for l in leader if l.startswith("replicaof")], leader)
        for ordinal in (1, 2):
            lines = config_lines(start_script_output(m, ordinal))
            self.assertIn("replicaof %s 6379" % LEADER_HOST, lines)
            self.assertIn("port 6379", lines)
            self.assertIn("bind 0.0.0.0", lines)
            self.assertTrue([l for l in lines if l.startswith('dir "/') and
                             l.endswith('/data"')], lines)  # the data volume
        two_digit = config_lines(start_script_output(render({"replicaCount": 12}), 11))
        self.assertIn("replicaof %s 6379" % LEADER_HOST, two_digit)
        other_port = config_lines(start_script_output(render({"containerPort": 7000}), 1))
        self.assertIn("replicaof %s 7000" % LEADER_HOST, other_port)
        self.assertIn("port 7000", other_port)

    def test_leader_ordinal_moves_the_leader(self):
        m = render({"replicaCount": 3, "leaderOrdinal": 1})
        leader_host = LEADER_HOST.replace("q-quiver-0.", "q-quiver-1.")
        self.assertFalse([l for l in config_lines(start_script_output(m, 1))
                          if l.startswith("replicaof")])
        for ordinal in (0, 2):
            self.assertIn("replicaof %s 6379" % leader_host,
                          config_lines(start_script_output(m, ordinal)))
        selector = m.get("Service", FULL)["spec"]["selector"]
        self.assertEqual(selector["statefulset.kubernetes.io/pod-name"], FULL + "-1")

    def test_password_from_the_secret_only(self):
        m = render(VALUE_SETS["three pods with auth"])
        secret = m.get("Secret", FULL)
        self.assertEqual(list(secret["data"]), ["quiver-password"])
        env = {e["name"]: e for e in m.container()["env"]}
        self.assertEqual(env["QUIVER_PASSWORD"]["valueFrom"]["secretKeyRef"],
                         {"name": FULL, "key": "quiver-password"})
        # Not in the ConfigMap, the command line or the probes.
        rendered = str(m.get("ConfigMap", FULL)) + str(m.container()["command"])
        rendered += str([m.container()[p] for p in ("readinessProbe", "livenessProbe")])
        self.assertNotIn("s3cret", rendered)
        lines = config_lines(start_script_output(m, 1))
        self.assertIn('requirepass "s3cret"', lines)
        self.assertIn('masterauth "s3cret"', lines)

    def test_generated_password_when_none_is_given(self):
        m = render({"auth": {"enabled": True}})
        pw = base64.b64decode(m.get("Secret", FULL)["data"]["quiver-password"]).decode()
        self.assertGreaterEqual(len(pw), 32)

    def test_no_auth_no_secret_no_password_lines(self):
        m = render(VALUE_SETS["one pod"])
        self.assertFalse(m.has("Secret"))
        self.assertNotIn("QUIVER_PASSWORD", [e["name"] for e in m.container()["env"]])
        self.assertEqual(m.get("StatefulSet")["spec"]["replicas"], 1)
        lines = config_lines(start_script_output(m, 0))
        self.assertFalse([l for l in lines if l.split()[0] in ("requirepass", "masterauth",
                                                                "replicaof")], lines)
        self.assertIn("protected-mode no", lines)

    def test_existing_secret(self):
        m = render(VALUE_SETS["existing secret"])
        self.assertFalse(m.has("Secret"))
        env = {e["name"]: e for e in m.container()["env"]}
        self.assertEqual(env["QUIVER_PASSWORD"]["valueFrom"]["secretKeyRef"],
                         {"name": "creds", "key": "pw"})
        lines = config_lines(start_script_output(m, 2, {"creds": {"pw": 'a "b" \\c'}}))
        self.assertIn(r'requirepass "a \"b\" \\c"', lines)

    def test_probes(self):
        c = render().container()
        self.assertEqual(c["readinessProbe"]["exec"]["command"][2:], ["ready", "2"])
        for kind in ("livenessProbe", "startupProbe"):
            probe = c[kind]
            self.assertEqual(probe["exec"]["command"][:3],
                             ["/bin/sh", "/opt/quiver/conf/ping.sh", "alive"])
            # A full sync may take minutes: a liveness probe that gives up sooner would
            # restart the replica into another full sync.
            self.assertGreaterEqual(probe["failureThreshold"] * probe["periodSeconds"], 120)
            self.assertEqual(probe["successThreshold"], 1)
        off = render({"readinessProbe": {"enabled": False}}).container()
        self.assertNotIn("readinessProbe", off)

    def test_volume_claims_and_persistence_off(self):
        m = render({"persistence": {"size": "20Gi", "storageClass": "fast"}})
        sts = m.get("StatefulSet")["spec"]
        claim = sts["volumeClaimTemplates"][0]
        self.assertEqual(claim["metadata"]["name"], "data")
        self.assertEqual(claim["spec"]["resources"]["requests"]["storage"], "20Gi")
        self.assertEqual(claim["spec"]["storageClassName"], "fast")
        self.assertEqual(claim["spec"]["accessModes"], ["ReadWriteOnce"])
        mounts = {v["name"]: v["mountPath"] for v in m.container()["volumeMounts"]}
        self.assertEqual(mounts["data"], "/data")
        env = {e["name"]: e.get("value") for e in m.container()["env"]}
        self.assertEqual(env["QUIVER_DATA_DIR"], "/data")
        self.assertNotIn("data", [v["name"] for v in sts["template"]["spec"]["volumes"]])

        off = render(VALUE_SETS["persistence off"]).get("StatefulSet")["spec"]
        self.assertNotIn("volumeClaimTemplates", off)
        volumes = {v["name"]: v for v in off["template"]["spec"]["volumes"]}
        self.assertEqual(volumes["data"], {"name": "data", "emptyDir": {}})

    def test_security_context(self):
        m = render()
        pod = m.get("StatefulSet")["spec"]["template"]["spec"]
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertNotEqual(pod["securityContext"]["runAsUser"], 0)
        sc = m.container()["securityContext"]
        self.assertTrue(sc["runAsNonRoot"])
        self.assertTrue(sc["readOnlyRootFilesystem"])
        self.assertFalse(sc["allowPrivilegeEscalation"])
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        # With a read-only root, everything the pod writes has a volume.
        env = {e["name"]: e.get("value") for e in m.container()["env"]}
        mounts = [v["mountPath"] for v in m.container()["volumeMounts"]]
        for path in (env["QUIVER_RUNTIME_DIR"], env["QUIVER_DATA_DIR"], "/tmp"):
            self.assertIn(path, mounts)
        self.assertFalse(pod["automountServiceAccountToken"])
        # No Docker-link variables: a release "quiver" has a Service "quiver", whose link variables would
        # include QUIVER_PORT=tcp://...
        self.assertIs(pod["enableServiceLinks"], False)

    def test_scheduling(self):
        def pod(values):
            return render(values).get("StatefulSet")["spec"]["template"]["spec"]
        hard = pod({"podAntiAffinityPreset": "hard"})["affinity"]["podAntiAffinity"]
        term = hard["requiredDuringSchedulingIgnoredDuringExecution"][0]
        self.assertEqual(term["topologyKey"], "kubernetes.io/hostname")
        self.assertEqual(term["labelSelector"]["matchLabels"],
                         {"app.kubernetes.io/name": "quiver", "app.kubernetes.io/instance": "q"})
        self.assertNotIn("affinity", pod({"podAntiAffinityPreset": ""}))
        own = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}}
        self.assertEqual(pod({"affinity": own})["affinity"], own)
        spread = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                   "whenUnsatisfiable": "ScheduleAnyway",
                   "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "quiver"}}}]
        self.assertEqual(pod({"topologySpreadConstraints": spread})["topologySpreadConstraints"],
                         spread)

    def test_gpu(self):
        m = render(VALUE_SETS["gpu"])
        pod = m.get("StatefulSet")["spec"]["template"]["spec"]
        self.assertEqual(m.container()["resources"]["limits"]["nvidia.com/gpu"], 2)
        self.assertEqual(pod["nodeSelector"], {"nvidia.com/gpu.present": "true"})
        self.assertIn({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                      pod["tolerations"])
        self.assertIn("gpu yes", config_lines(m.get("ConfigMap")["data"]["quiver.conf"]))
        plain = render()
        self.assertNotIn("resources", plain.container())
        self.assertNotIn("nodeSelector", plain.get("StatefulSet")["spec"]["template"]["spec"])
        self.assertFalse([l for l in config_lines(plain.get("ConfigMap")["data"]["quiver.conf"])
                          if l.startswith("gpu")])
        # GPU limits join the resources given, not replace them.
        both = render({"gpu": {"enabled": True},
                       "resources": {"limits": {"memory": "2Gi"}, "requests": {"cpu": "1"}}})
        self.assertEqual(both.container()["resources"],
                         {"limits": {"memory": "2Gi", "nvidia.com/gpu": 1},
                          "requests": {"cpu": "1"}})

    def test_metrics_and_service_monitor(self):
        m = render(VALUE_SETS["metrics"])
        self.assertIn("metrics-port 9121", config_lines(m.get("ConfigMap")["data"]["quiver.conf"]))
        self.assertIn({"name": "metrics", "containerPort": 9121}, m.container()["ports"])
        svc = m.get("Service", FULL + "-metrics")
        self.assertEqual(svc["spec"]["ports"][0]["targetPort"], "metrics")
        mon = m.get("ServiceMonitor", FULL)["spec"]
        self.assertLessEqual(mon["selector"]["matchLabels"].items(),
                             svc["metadata"]["labels"].items())
        for other in ("", "-headless", "-read"):  # scrapes only the metrics Service
            labels = m.get("Service", FULL + other)["metadata"]["labels"]
            self.assertFalse(mon["selector"]["matchLabels"].items() <= labels.items(), other)
        self.assertEqual(mon["endpoints"][0]["port"], "metrics")
        self.assertEqual(mon["endpoints"][0]["path"], "/metrics")
        plain = render()
        self.assertFalse(plain.has("ServiceMonitor"))
        self.assertNotIn("metrics-port", plain.get("ConfigMap")["data"]["quiver.conf"])

    def test_network_policy(self):
        m = render({"networkPolicy": {"enabled": True, "allowExternal": False}})
        np = m.get("NetworkPolicy", FULL)["spec"]
        rule = np["ingress"][0]
        self.assertEqual(rule["ports"], [{"port": 6379}])
        self.assertIn({"podSelector": {"matchLabels": {FULL + "-client": "true"}}}, rule["from"])
        self.assertFalse(render().has("NetworkPolicy"))

    def test_config_values_and_extra_config(self):
        m = render({"config": {"maxclients": 50, "latency-tracking": False,
                               "client-output-buffer-limit": "normal 1gb 0 0"},
                    "extraConfig": "slowlog-max-len 7\nhz 20\n"})
        lines = config_lines(m.get("ConfigMap")["data"]["quiver.conf"])
        self.assertEqual(lines, ["protected-mode no", "client-output-buffer-limit normal 1gb 0 0",
                                 "durability everysec", "latency-tracking no", "maxclients 50",
                                 "repl-backlog-size 64mb", "replica-protect-data yes",
                                 "slowlog-max-len 7", "hz 20"])

    def test_config_or_password_change_rolls_the_pods(self):
        def annotations(values):
            return render(values).get("StatefulSet")["spec"]["template"]["metadata"][
                "annotations"]
        before = annotations({"auth": {"password": "one"}})
        self.assertEqual(annotations({"auth": {"password": "one"}}), before)
        self.assertNotEqual(annotations({"auth": {"password": "one"}, "config": {"hz": 20}}),
                            before)
        self.assertNotEqual(annotations({"auth": {"password": "two"}}), before)

    def test_notes_show_how_to_connect(self):
        p = chart.helm("install", "q", chart.CHART, "--namespace", "ns", "--dry-run=client",
                       values={})
        self.assertEqual(p.returncode, 0, p.stderr)
        notes = p.stdout[p.stdout.index("NOTES:"):]
        self.assertIn("kubectl get secret --namespace ns q-quiver -o jsonpath="
                      "\"{.data.quiver-password}\" | base64 -d", notes)
        self.assertIn('REDISCLI_AUTH="$QUIVER_PASSWORD" redis-cli -h 127.0.0.1 -p 6379', notes)
        self.assertIn("kubectl port-forward --namespace ns svc/q-quiver 6379:6379", notes)


class Schema(unittest.TestCase):
    REFUSED = [
        ({"replicaCount": 0}, "at '/replicaCount': minimum: got 0, want 1"),
        ({"replicaCount": "3"}, "at '/replicaCount': got string, want integer"),
        ({"leaderOrdinal": -1}, "at '/leaderOrdinal': minimum: got -1, want 0"),
        ({"replicaCount": 3, "leaderOrdinal": 3}, "leaderOrdinal must name one of the pods"),
        ({"containerPort": 70000}, "at '/containerPort': maximum: got 70,000, want 65,535"),
        ({"service": {"port": 0}}, "at '/service/port': minimum: got 0, want 1"),
        ({"metrics": {"port": -1}}, "at '/metrics/port': minimum: got -1, want 1"),
        ({"replicas": 3}, "additional properties 'replicas' not allowed"),
        ({"auth": {"passwd": "x"}}, "additional properties 'passwd' not allowed"),
        ({"auth": {"password": "a\nb"}}, "at '/auth/password': 'a\\nb' does not match pattern"),
        ({"config": {"replicaof": "x 1"}}, "invalid propertyName 'replicaof'"),
        ({"config": {"requirepass": "x"}}, "invalid propertyName 'requirepass'"),
        ({"config": {"Port": 1}}, "invalid propertyName 'Port'"),
        ({"config": {"hz": [1]}}, "at '/config/hz': got array, want boolean or number or integer or string"),
        ({"persistence": {"size": "lots"}}, "at '/persistence/size': 'lots' does not match pattern"),
        ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy': value must be one of"),
        ({"podAntiAffinityPreset": "always"}, "at '/podAntiAffinityPreset': value must be one of"),
        ({"livenessProbe": {"successThreshold": 2}}, "at '/livenessProbe/successThreshold': value must be 1"),
        ({"gpu": {"enabled": True, "count": 0}}, "at '/gpu/count': minimum: got 0, want 1"),
        ({"metrics": {"serviceMonitor": {"enabled": True}}}, "at '/metrics/enabled': value must be true"),
        ({"metrics": {"enabled": True, "port": 6379}}, "metrics.port must differ from containerPort"),
    ]

    def test_bad_values_are_refused(self):
        for values, error in self.REFUSED:
            with self.subTest(values=values):
                self.assertIn(error, refusal(values))


class FakeServer:
    """Answers every command with the given replies in turn (the last one repeats)."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                replies = list(self.replies)
                try:
                    while conn.recv(4096):
                        conn.sendall(replies.pop(0) if len(replies) > 1 else replies[0])
                except OSError:
                    pass

    def close(self):
        self.sock.close()


class Probes(unittest.TestCase):
    LOADING = b"-LOADING Quiver is loading the dataset in memory\r\n"

    def probe(self, kind, port, password=None):
        m = render({"auth": {"enabled": password is not None, "password": password or ""}})
        with tempfile.TemporaryDirectory() as root:
            pod = Pod(m, 1, root)
            env = dict(pod.env(), PATH=os.environ["PATH"], QUIVER_PORT=str(port))
            return subprocess.run(pod.probe(kind), env=env, capture_output=True, text=True,
                                  timeout=30).returncode

    def check(self, replies, ready, alive, password=None):
        srv = FakeServer(*replies)
        self.addCleanup(srv.close)
        self.assertEqual(self.probe("readinessProbe", srv.port, password) == 0, ready)
        self.assertEqual(self.probe("livenessProbe", srv.port, password) == 0, alive)
        self.assertEqual(self.probe("startupProbe", srv.port, password) == 0, alive)

    def test_pong_is_ready_and_alive(self):
        self.check([b"+PONG\r\n"], True, True)
        self.check([b"+OK\r\n", b"+PONG\r\n"], True, True, password="pw")

    def test_loading_is_alive_but_not_ready(self):
        self.check([self.LOADING], False, True)
        self.check([b"+OK\r\n", self.LOADING], False, True, password="pw")
        self.check([self.LOADING], False, True, password="pw")  # AUTH met the load too

    def test_errors_and_silence_fail_both(self):
        self.check([b"-ERR something else\r\n"], False, False)
        self.check([b"-WRONGPASS invalid username-password pair\r\n",
                    b"-NOAUTH Authentication required.\r\n"], False, False, password="pw")
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.assertNotEqual(self.probe("readinessProbe", port), 0)
        self.assertNotEqual(self.probe("livenessProbe", port), 0)


if __name__ == "__main__":
    unittest.main()
