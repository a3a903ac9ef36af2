#!/usr/bin/env bash
# Runs every test suite: cmocka unit tests, fuzz-corpus replays, and the integration tests
# that drive a real quiver-server over 127.0.0.1 (Python with redis-py, and a hiredis client).
# Prints one closing line: "tests: N passed, M failed" (suites, not cases).
# TESTS (optional) runs a subset: words naming a kind (unit, fuzz, integration) or a suite
# (test_store, test_ft, resp, hiredis), shell globs allowed (TESTS="unit test_fs_*"); a
# word "suite:pattern" runs that cmocka suite with TEST_FILTER=pattern (for the suites
# that read it). The first word that matches a suite decides.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
PY=/usr/bin/python3
passed=0
failed=0
failures=()

pick() { # kind, name: whether TESTS selects the suite; sets FILTER
  FILTER=
  [ -n "${TESTS:-}" ] || return 0
  local w found=1
  set -f # the words are patterns, not file names
  for w in $TESTS; do
    if [[ $w == *:* ]]; then
      [[ $2 == ${w%%:*} ]] && { FILTER=${w#*:}; found=0; break; }
    elif [[ $1 == $w || $2 == $w ]]; then
      found=0
      break
    fi
  done
  set +f
  return $found
}

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
  [ -x "$t" ] && [ "${t%.d}" = "$t" ] && [ "$(basename "$t")" != test_client ] &&
    pick unit "$(basename "$t")" && run "unit $(basename "$t")" env ${FILTER:+TEST_FILTER="$FILTER"} "$t"
done
for r in "$BUILD"/tests/replay_*; do
  [ "${r%.d}" = "$r" ] || continue
  name=$(basename "$r" | sed 's/^replay_//')
  pick fuzz "$name" && run "fuzz corpus $name" "$r" "tests/fuzz/corpus/$name"
done
# The CUDA library's own tests (index/gpu/), as the Makefile names them in GPU_TESTS.
for t in ${GPU_TESTS:-}; do
  [ -x "$t" ] && pick unit "$(basename "$t")" && run "unit $(basename "$t")" "$t"
done
export QUIVER_BIN=${QUIVER_BIN:-$PWD/quiver-server}
[ -x "$BUILD/tests/test_client" ] && pick integration hiredis && run "integration hiredis client" \
  env PYTHONPATH=tests/integration $PY tests/integration/run_c_client.py "$BUILD/tests/test_client"
for t in tests/integration/test_*.py; do
  [ -f "$t" ] && pick integration "$(basename "$t" .py)" &&
    run "integration $(basename "$t" .py)" env PYTHONPATH=tests/integration $PY -m unittest -v "$(basename "$t" .py)" 2>&1
done
# The Helm chart's checks (helm/quiver), kind "chart": lint, rendered objects, rehearsal.
for t in tests/chart/test_*.py; do
  [ -f "$t" ] && pick chart "$(basename "$t" .py)" &&
    run "chart $(basename "$t" .py)" env PYTHONPATH=tests/chart:tests/integration $PY -m unittest -v "$(basename "$t" .py)" 2>&1
done

echo
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
