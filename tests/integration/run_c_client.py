"""Starts a quiver-server (or uses TEST_SERVER) and runs the hiredis test client against it.
Usage: run_c_client.py <path-to-test_client>. Exits with the client's status, non-zero
also when the server died during the run."""
import subprocess
import sys

from harness import Server


def main():
    if len(sys.argv) != 2:
        print("usage: run_c_client.py <path-to-test_client>", file=sys.stderr)
        return 2
    with Server() as s:
        try:
            rc = subprocess.run([sys.argv[1], s.host, str(s.port)], timeout=120).returncode
        except subprocess.TimeoutExpired:
            print("run_c_client: test_client timed out", file=sys.stderr)
            rc = 1
        if s.proc is not None and s.proc.poll() is not None:
            print("run_c_client: the server died:\n" + s.read_log(), file=sys.stderr)
            rc = rc or 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
