"""Helpers for the chart checks: render helm/quiver with Helm (build/tools/bin/helm, which
`make deps` installs, or $HELM), parse the manifests, and lay out a "pod" on this machine:
the environment and files the StatefulSet would give the pod of a given ordinal, with the
volumes mapped to local directories. Used by test_chart.py and test_statefulset.py.
Run with Debian's /usr/bin/python3 (it has python3-yaml)."""
import base64
import os
import subprocess
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(ROOT, "helm", "quiver")
HELM = os.environ.get("HELM") or os.path.join(ROOT, "build", "tools", "bin", "helm")
RELEASE = "q"
NAMESPACE = "ns"


def require_helm():
    """Fails (never skips) without Helm: CI runs `make deps` first."""
    if not os.access(HELM, os.X_OK):
        raise RuntimeError("helm not found at %s: run make deps" % HELM)


def helm(*args, values=None):
    """Runs helm with the values (a dict) in a file; returns the CompletedProcess."""
    require_helm()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump(values or {}, f)
        f.flush()
        return subprocess.run([HELM, *args, "-f", f.name], capture_output=True, text=True,
                              timeout=60)


def render(values=None):
    """helm template of the chart as release q in namespace ns: a Manifest."""
    p = helm("template", RELEASE, CHART, "--namespace", NAMESPACE, values=values)
    if p.returncode != 0:
        raise AssertionError("helm template failed: " + p.stderr)
    return Manifest([d for d in yaml.safe_load_all(p.stdout) if d])


def refusal(values):
    """helm template's error for values it must refuse (fails if it renders them)."""
    p = helm("template", RELEASE, CHART, "--namespace", NAMESPACE, values=values)
    if p.returncode == 0:
        raise AssertionError("helm rendered values it should refuse: %r" % (values,))
    return p.stderr


class Manifest:
    def __init__(self, docs):
        self.docs = docs

    def kinds(self):
        return sorted((d["kind"], d["metadata"]["name"]) for d in self.docs)

    def get(self, kind, name=None):
        """The one object of that kind (and name)."""
        found = [d for d in self.docs if d["kind"] == kind and
                 (name is None or d["metadata"]["name"] == name)]
        if len(found) != 1:
            raise AssertionError("%d %s named %s in %r" % (len(found), kind, name, self.kinds()))
        return found[0]

    def has(self, kind, name=None):
        return any(d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
                   for d in self.docs)

    def container(self):
        return self.get("StatefulSet")["spec"]["template"]["spec"]["containers"][0]


class Pod:
    """The pod of one ordinal laid out under a directory: each volume the container mounts
    becomes a directory (the ConfigMap's files written into its own), and env() gives the
    container's environment with paths under mount points mapped to those directories and
    valueFrom resolved (metadata.name, secretKeyRef from the rendered or the given Secret)."""

    def __init__(self, manifest, ordinal, root, secrets=None):
        self.manifest = manifest
        sts = manifest.get("StatefulSet")
        self.name = "%s-%d" % (sts["metadata"]["name"], ordinal)
        self.root = root
        self.secrets = secrets or {}
        spec = sts["spec"]["template"]["spec"]
        self.mounts = {}
        for m in self.container()["volumeMounts"]:
            local = os.path.join(root, m["name"])
            os.makedirs(local, exist_ok=True)
            self.mounts[m["mountPath"]] = local
        for v in spec["volumes"]:
            if "configMap" in v:
                cm = manifest.get("ConfigMap", v["configMap"]["name"])
                for key, text in cm["data"].items():
                    with open(os.path.join(root, v["name"], key), "w") as f:
                        f.write(text)

    def container(self):
        return self.manifest.container()

    def path(self, p):
        """A path inside the pod mapped to this machine."""
        for mount, local in self.mounts.items():
            if p == mount or p.startswith(mount + "/"):
                return local + p[len(mount):]
        return p

    def secret(self, name, key):
        if name in self.secrets:
            return self.secrets[name][key]
        s = self.manifest.get("Secret", name)
        return base64.b64decode(s["data"][key]).decode()

    def env(self):
        out = {}
        for e in self.container()["env"]:
            if "value" in e:
                out[e["name"]] = self.path(e["value"])
            elif e["valueFrom"].get("fieldRef", {}).get("fieldPath") == "metadata.name":
                out[e["name"]] = self.name
            elif "secretKeyRef" in e["valueFrom"]:
                ref = e["valueFrom"]["secretKeyRef"]
                out[e["name"]] = self.secret(ref["name"], ref["key"])
            else:
                raise AssertionError("env %s: a source Pod does not know" % e["name"])
        return out

    def command(self):
        """The container's command with its paths mapped."""
        return [self.path(a) for a in self.container()["command"]]

    def probe(self, kind):
        return [self.path(a) for a in self.container()[kind]["exec"]["command"]]
