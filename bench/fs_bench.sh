#!/usr/bin/env bash
# Feature-store benchmarks (run by `make bench` after redis_compare.sh): FS.GET beside
# redis-server's HMGET, FS.MGET latency, FS.JOIN beside pandas merge_asof, quiver-load ingest.
# The work is bench/fs_bench.py (its docstring lists the knobs); this wrapper checks the
# Python it needs, bounds the whole run in time, and keeps the report under build/bench/.
#   FS_BENCH_QUICK=1 (or BENCH_QUICK=1)   small settings, under 2 minutes on 2 cores
#   FS_BENCH_TIMEOUT_S=S                   cap for the whole run (default 1200; quick 300)
# Exit status: 0 when every step produced a figure, 1 when some did not, 2 on setup failure.
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 2
PY=/usr/bin/python3 # Debian's: it has python3-redis, python3-pandas, python3-numpy
if ! "$PY" -c 'import pandas, numpy, redis' 2> /dev/null; then
  echo "fs_bench: $PY lacks pandas, numpy or redis (Debian python3-pandas python3-numpy python3-redis; 'make deps')" >&2
  exit 2
fi
quick=0
[ "${FS_BENCH_QUICK:-${BENCH_QUICK:-0}}" = 1 ] && quick=1
limit=${FS_BENCH_TIMEOUT_S:-$([ $quick = 1 ] && echo 300 || echo 1200)}
case $limit in '' | *[!0-9]* | 0)
  echo "fs_bench: FS_BENCH_TIMEOUT_S must be a positive integer (got '$limit')" >&2
  exit 2
  ;;
esac
mkdir -p build/bench || exit 2
report=build/bench/fs_bench-$(date -u +%Y%m%dT%H%M%SZ).txt
# SIGTERM at the limit: fs_bench.py stops its servers and removes its directory on the way out.
timeout --kill-after=30 "$limit" "$PY" bench/fs_bench.py 2>&1 | tee "$report"
rc=${PIPESTATUS[0]}
[ "$rc" = 124 ] && echo "fs_bench: stopped at the ${limit}s limit" | tee -a "$report"
cp "$report" build/bench/fs_bench-latest.txt
echo "report: $report (copy: build/bench/fs_bench-latest.txt)"
[ "$rc" = 0 ] || [ "$rc" = 2 ] || rc=1
exit "$rc"
