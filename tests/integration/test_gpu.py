"""The `gpu yes|no|auto` option and INFO's gpu section (index/gpu_probe.c). On a machine
without a CUDA device (or without the library) the server must start exactly as before under
`auto` and `no`, say why the GPU is off, and refuse to start under `yes` with the reason.
Where a device exists the same tests check the other side (enabled, a device name).
Run: PYTHONPATH=tests/integration /usr/bin/python3 -m unittest -v test_gpu"""
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import BINARY, Server, free_port

OWN_PROCESS = unittest.skipIf(os.environ.get("TEST_SERVER"), "needs a server of its own")


class InstalledServer(Server):
    """A Server run from a copy of the binary somewhere else."""

    def __init__(self, binary, **options):
        super().__init__(**options)
        self.binary = binary

    def args(self):
        return [self.binary] + super().args()[1:]


def gpu_info(r):
    """INFO gpu as a dict of str -> str."""
    return {k: str(v) for k, v in r.info("gpu").items()}


@OWN_PROCESS
class GpuOption(unittest.TestCase):
    def test_auto_is_the_default_and_says_why_when_off(self):
        with Server() as s:
            r = s.client()
            self.assertEqual(r.config_get("gpu"), {"gpu": "auto"})
            g = gpu_info(r)
            self.assertEqual(g["gpu_mode"], "auto")
            if g["gpu_enabled"] == "1":
                self.assertTrue(g["gpu_device"])
                self.assertGreater(int(g["gpu_memory_total"]), 0)
            else:
                self.assertTrue(g["gpu_disabled_reason"])
                self.assertNotIn("gpu_device", g)
            # The section is part of plain INFO.
            self.assertIn("gpu_enabled", r.info())
            r.set("k", "v")  # and the server serves
            self.assertEqual(r.get("k"), b"v")

    def test_no(self):
        with Server(gpu="no") as s:
            g = gpu_info(s.client())
            self.assertEqual(g["gpu_mode"], "no")
            self.assertEqual(g["gpu_enabled"], "0")
            self.assertEqual(g["gpu_disabled_reason"], "gpu no")

    def test_yes_refuses_to_start_without_a_device(self):
        with Server() as s:
            enabled = gpu_info(s.client())["gpu_enabled"] == "1"
        if enabled:
            with Server(gpu="yes") as s:
                self.assertEqual(gpu_info(s.client())["gpu_enabled"], "1")
            return
        with tempfile.TemporaryDirectory(prefix="quiver-test-") as d:
            out = subprocess.run([BINARY, "--port", str(free_port()), "--bind", "127.0.0.1",
                                  "--dir", os.path.join(d, "data"), "--gpu", "yes"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(b"cannot start: gpu yes: ", out.stdout)

    def test_unknown_value_is_a_config_error(self):
        out = subprocess.run([BINARY, "--port", "0", "--gpu", "maybe"], capture_output=True,
                             timeout=10)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(b"must be one of the following: no, yes, auto", out.stderr)

    def test_immutable(self):
        with Server() as s:
            r = s.client()
            with self.assertRaises(Exception) as e:
                r.config_set("gpu", "no")
            self.assertIn("immutable", str(e.exception))
            self.assertEqual(r.config_get("gpu"), {"gpu": "auto"})

    def test_missing_library_leaves_the_gpu_off(self):
        saved = os.environ.get("QUIVER_GPU_LIB")
        os.environ["QUIVER_GPU_LIB"] = "/nonexistent/libquivergpu.so"
        try:
            with Server() as s:
                g = gpu_info(s.client())
        finally:
            if saved is None:
                del os.environ["QUIVER_GPU_LIB"]
            else:
                os.environ["QUIVER_GPU_LIB"] = saved
        self.assertEqual(g["gpu_enabled"], "0")
        self.assertEqual(g["gpu_library"], "/nonexistent/libquivergpu.so")
        self.assertIn("cannot load /nonexistent/libquivergpu.so", g["gpu_disabled_reason"])

    def test_library_beside_the_executable_comes_first(self):
        """An installed server (the CUDA image) finds the library in its own directory."""
        with Server() as s:
            built = gpu_info(s.client())["gpu_library"]
        if not built:
            self.skipTest("this build has no index/gpu library (no nvcc, or GPU=0)")
        with tempfile.TemporaryDirectory(prefix="quiver-test-") as d:
            shutil.copy(BINARY, os.path.join(d, "quiver-server"))
            os.symlink(built, os.path.join(d, "libquivergpu.so"))
            with InstalledServer(os.path.join(d, "quiver-server")) as s:
                g = gpu_info(s.client())
        self.assertEqual(g["gpu_library"], os.path.join(d, "libquivergpu.so"))


if __name__ == "__main__":
    unittest.main()
