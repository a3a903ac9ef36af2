#!/usr/bin/env bash
# Runs every test suite: cmocka unit tests, fuzz-corpus replays, and the integration tests
# that drive a real quiver-server over 127.0.0.1 (Python with redis-py, and a hiredis client).
# Prints one closing line: "tests: N passed, M failed" (suites, not cases).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
PY=/usr/bin/python3
passed=0
failed=0
failures=()

run() { # name, command...
  local name=$1
  shift
  echo "== $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] && [ "${t%.d}" = "$t" ] && [ "$(basename "$t")" != test_client ] && run "unit $(basename "$t")" "$t"
done
for r in "$BUILD"/tests/replay_*; do
  [ "${r%.d}" = "$r" ] || continue
  name=$(basename "$r" | sed 's/^replay_//')
  run "fuzz corpus $name" "$r" "tests/fuzz/corpus/$name"
done
export QUIVER_BIN=${QUIVER_BIN:-$PWD/quiver-server}
[ -x "$BUILD/tests/test_client" ] && run "integration hiredis client" \
  env PYTHONPATH=tests/integration $PY tests/integration/run_c_client.py "$BUILD/tests/test_client"
for t in tests/integration/test_*.py; do
  [ -f "$t" ] && run "integration $(basename "$t" .py)" env PYTHONPATH=tests/integration $PY -m unittest -v "$(basename "$t" .py)" 2>&1
done

echo
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
