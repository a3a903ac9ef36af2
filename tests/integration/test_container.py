"""The Dockerfile, checked without docker (none on the machines this is written on): every
Debian package it names and every package of `make print-deps` (its build stage's list)
exists in the apt cache; the runtime stage's packages, with their dependencies, provide
every shared library quiver-server and the tools load (ldd, then dpkg -S for the owner);
and the image's contract: built from print-deps, non-root uid 1001, /data volume, ports
6379 and 9121, quiver-server as the entrypoint. .dockerignore keeps build output and .git
out of the context."""
import os
import re
import subprocess
import unittest

import harness

ROOT = harness.ROOT
DOCKERFILE = os.path.join(ROOT, "Dockerfile")
# Runtimes of the sanitizer builds that make test may run against: never in an image.
SANITIZER_LIBS = re.compile(r"lib(asan|ubsan|tsan|lsan)\.so")


def read(path):
    with open(path) as f:
        return f.read()


def stage(text, name):
    """The instructions of the stage `FROM ... AS name`, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    m = re.search(r"^FROM \S+ AS %s\n(.*?)(?=^FROM |\Z)" % name, joined, re.M | re.S)
    assert m, "no stage " + name
    return m.group(1)


def installed_by(instructions):
    """Package names given to apt-get install (not the ones built from variables)."""
    names = []
    for args in re.findall(r"apt-get install -y --no-install-recommends ([^&;]*)", instructions):
        names += [w for w in re.sub(r"\$\([^)]*\)", "", args).split() if "$" not in w]
    return names


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def apt_known(pkgs):
    """The ones of pkgs that the apt cache has."""
    out = run("apt-cache", "show", "--no-all-versions", *pkgs)
    return set(re.findall(r"(?m)^Package: (\S+)$", out.stdout))


def closure(pkgs):
    """The packages and everything they depend on (apt-cache depends --recurse)."""
    out = run("apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
              "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *pkgs)
    return {line.strip() for line in out.stdout.splitlines() if not line.startswith(" ")}


def owners(libs):
    """{lib: the installed package that holds it, or None}. With merged /usr, dpkg knows a
    file under the path its package gave, /lib/... or /usr/lib/..., so both are asked (and
    the path a symlink such as an alternative leads to), all in one dpkg -S."""
    def candidates(lib):
        out = []
        for p in (lib, os.path.realpath(lib)):
            out += [p, re.sub(r"^/usr/lib/", "/lib/", p), re.sub(r"^/lib/", "/usr/lib/", p)]
        return list(dict.fromkeys(out))
    paths = sorted({c for lib in libs for c in candidates(lib)})
    out = run("dpkg", "-S", *paths)  # exits 1 when some path is unknown: expected
    held = {}
    for line in out.stdout.splitlines():
        pkgs, _, path = line.partition(": ")
        held[path] = pkgs.split(",")[0].split(":")[0].strip()
    return {lib: next((held[c] for c in candidates(lib) if c in held), None) for lib in libs}


class TestDockerfile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.text = read(DOCKERFILE)
        cls.runtime = stage(cls.text, "runtime")
        cls.build = stage(cls.text, "build")

    def setUp(self):
        if not apt_known(["libc6"]):
            self.skipTest("no apt package lists on this machine (apt-get update)")

    def test_every_named_package_exists(self):
        deps = run("make", "-s", "-C", ROOT, "print-deps")
        self.assertEqual(deps.returncode, 0, deps.stderr)
        names = installed_by(self.runtime) + installed_by(self.build) + deps.stdout.split()
        self.assertIn("redis-tools", installed_by(self.runtime))  # the chart's probes
        self.assertIn("libevent-2.1-7", installed_by(self.runtime))
        self.assertEqual(set(names) - apt_known(set(names)), set())

    def test_runtime_packages_provide_every_library_loaded(self):
        binaries = [harness.BINARY]
        for tool in ("quiver-load", "quiver-join"):
            path = os.path.join(os.path.dirname(harness.BINARY), tool)
            if os.path.exists(path):
                binaries.append(path)
        have = closure(installed_by(self.runtime))
        self.assertIn("libc6", have)
        loaded = {}
        for binary in binaries:
            out = run("ldd", binary)
            self.assertEqual(out.returncode, 0, out.stderr)
            libs = re.findall(r"=> (/\S+)", out.stdout)
            self.assertTrue(libs, binary)
            for lib in libs:
                if not SANITIZER_LIBS.search(lib):
                    loaded.setdefault(lib, os.path.basename(binary))
        for lib, pkg in owners(loaded).items():
            self.assertIsNotNone(pkg, "no package holds " + lib)
            self.assertTrue(pkg in have, "%s loads %s from %s, which the runtime stage lacks"
                            % (loaded[lib], lib, pkg))

    def test_image_contract(self):
        self.assertIn("$(make -s print-deps)", self.build)
        self.assertRegex(self.text, r"(?m)^FROM debian:bookworm AS base$")
        self.assertRegex(self.runtime, r"(?m)^USER 1001:1001$")
        self.assertRegex(self.runtime, r"useradd [^\n]*--uid 1001")
        self.assertRegex(self.runtime, r"(?m)^VOLUME /data$")
        self.assertRegex(self.runtime, r"(?m)^EXPOSE 6379 9121$")
        self.assertRegex(self.runtime, r'(?m)^ENTRYPOINT \["quiver-server"\]$')
        for binary in ("quiver-server", "quiver-load", "quiver-join"):
            self.assertIn("/src/%s" % binary, self.runtime)
        ignored = read(os.path.join(ROOT, ".dockerignore")).split()
        for path in (".git", "build", "data", "quiver-server"):
            self.assertIn(path, ignored)


if __name__ == "__main__":
    unittest.main()
