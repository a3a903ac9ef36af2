#!/usr/bin/env bash
# Quiver beside Debian's redis-server under redis-benchmark (run by `make bench`).
#
# Starts both servers on 127.0.0.1 (free ports, throw-away data dirs):
#   redis-server  --save "" --appendonly yes --appendfsync everysec
#   quiver-server --durability everysec
# loads the same data set into both, then for -P 1 and -P 16 (50 clients) runs
# GET, SET, HSET, HGET and MGET (10 keys), Redis then Quiver for each line, and prints
# ops/s, p50 and p99 per server and the Quiver/Redis ratios. See bench/README.md.
# With BENCH_TLS=1 both servers serve TLS only (port 0, tls-port, the same throw-away CA,
# server and client certificates, made with the openssl CLI) and every client uses --tls.
#
# Environment knobs:
#   BENCH_QUICK=1           smoke run (few requests)
#   BENCH_TLS=1             everything over TLS
#   BENCH_N_P1=N            requests per -P 1 run   (default 400000; quick 20000)
#   BENCH_N_P16=N           requests per -P 16 run  (default 2000000; quick 100000)
#   BENCH_CLIENTS=N         parallel connections    (default 50)
#   BENCH_KEYSPACE=N        -r keyspace, also the number of keys/fields loaded (default 100000)
#   BENCH_BUDGET_S=S        wall-clock budget for the measurements (default 200; quick 60)
#   BENCH_RUN_TIMEOUT_S=S   cap for one redis-benchmark run (default 60)
#   QUIVER_BIN, REDIS_SERVER_BIN, REDIS_BENCHMARK_BIN, REDIS_CLI_BIN   binaries to use
# Exit status: 0 when every run produced a number, 1 otherwise (the table is printed anyway).
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 2

HOST=127.0.0.1 # every byte of traffic stays on loopback
QUIVER_BIN=${QUIVER_BIN:-$PWD/quiver-server}
REDIS_SERVER_BIN=${REDIS_SERVER_BIN:-/usr/bin/redis-server}
REDIS_BENCHMARK_BIN=${REDIS_BENCHMARK_BIN:-/usr/bin/redis-benchmark}
REDIS_CLI_BIN=${REDIS_CLI_BIN:-/usr/bin/redis-cli}

if [ "${BENCH_QUICK:-0}" = 1 ]; then
  N_P1=${BENCH_N_P1:-20000}
  N_P16=${BENCH_N_P16:-100000}
  BUDGET=${BENCH_BUDGET_S:-60}
else
  N_P1=${BENCH_N_P1:-400000}
  N_P16=${BENCH_N_P16:-2000000}
  BUDGET=${BENCH_BUDGET_S:-200}
fi
CLIENTS=${BENCH_CLIENTS:-50}
KEYSPACE=${BENCH_KEYSPACE:-100000}
RUN_TIMEOUT=${BENCH_RUN_TIMEOUT_S:-60}
PIPELINES="1 16"
TESTS="GET SET HSET HGET MGET"

die() {
  echo "bench: $*" >&2
  exit 2
}

for v in N_P1 N_P16 CLIENTS KEYSPACE BUDGET RUN_TIMEOUT; do
  case ${!v} in '' | *[!0-9]* | 0) die "$v must be a positive integer (got '${!v}')" ;; esac
done
[ -x "$QUIVER_BIN" ] || die "no Quiver binary at $QUIVER_BIN (run 'make quiver-server')"
for b in "$REDIS_SERVER_BIN" "$REDIS_BENCHMARK_BIN" "$REDIS_CLI_BIN"; do
  [ -x "$b" ] || die "missing $b (Debian packages redis-server and redis-tools; 'make deps')"
done
command -v timeout > /dev/null || die "missing timeout(1) (coreutils)"

# ---- throw-away state, cleaned up whatever happens ---------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/quiver-bench.XXXXXX") || die "mktemp failed"
REDIS_PID=
QUIVER_PID=

# shellcheck disable=SC2317  # stop_server and cleanup run from the EXIT trap
stop_server() { # pid
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2> /dev/null || return 0
  kill -TERM "$pid" 2> /dev/null
  for _ in $(seq 50); do
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2> /dev/null && kill -KILL "$pid" 2> /dev/null
  wait "$pid" 2> /dev/null
  return 0
}

# shellcheck disable=SC2317
cleanup() {
  stop_server "$REDIS_PID"
  stop_server "$QUIVER_PID"
  REDIS_PID=
  QUIVER_PID=
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM HUP

# ---- TLS: certificates, and the arguments servers and clients take ------------------------
SERVER_TLS=() # after --port <port>: replaced by TLS-only arguments
CLIENT_TLS=()
TLS_NOTE=
if [ "${BENCH_TLS:-0}" = 1 ]; then
  command -v openssl > /dev/null || die "missing openssl (Debian package openssl)"
  mkcert() { # name cn [ca]
    if [ -z "${3:-}" ]; then
      openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$2" \
        -keyout "$TMP/$1.key" -out "$TMP/$1.crt"
    else
      openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$TMP/$1.key" -out "$TMP/$1.csr" &&
        printf 'subjectAltName=IP:%s\n' "$HOST" > "$TMP/$1.ext" &&
        openssl x509 -req -days 2 -in "$TMP/$1.csr" -CA "$TMP/$3.crt" -CAkey "$TMP/$3.key" \
          -CAcreateserial -extfile "$TMP/$1.ext" -out "$TMP/$1.crt"
    fi
  }
  { mkcert ca "bench CA" && mkcert server "$HOST" ca && mkcert client client ca; } \
    > "$TMP/openssl.log" 2>&1 || die "openssl failed: $(tail -2 "$TMP/openssl.log")"
  SERVER_TLS=(--tls-cert-file "$TMP/server.crt" --tls-key-file "$TMP/server.key"
    --tls-ca-cert-file "$TMP/ca.crt")
  CLIENT_TLS=(--tls --cacert "$TMP/ca.crt" --cert "$TMP/client.crt" --key "$TMP/client.key")
  TLS_NOTE=", over TLS (client certificates, tls-auth-clients yes)"
fi
listen_args() { # port -> the server's port arguments
  if [ ${#SERVER_TLS[@]} -gt 0 ]; then
    echo --port 0 --tls-port "$1"
  else
    echo --port "$1"
  fi
}

# ---- free ports on 127.0.0.1 -------------------------------------------------------------
port_in_use() { # port: something accepts connections there
  (exec 3<> "/dev/tcp/$HOST/$1") 2> /dev/null
}

free_port() { # prints a port nobody listens on, different from $1
  local p
  if command -v python3 > /dev/null; then
    for _ in 1 2 3 4 5; do
      p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') || break
      [ "$p" != "${1:-}" ] && ! port_in_use "$p" && {
        echo "$p"
        return
      }
    done
  fi
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 30000))
    [ "$p" != "${1:-}" ] && ! port_in_use "$p" && {
      echo "$p"
      return
    }
  done
  die "could not find a free port on $HOST"
}

wait_ready() { # name pid port log
  local name=$1 pid=$2 port=$3 log=$4
  for _ in $(seq 200); do # 20 s at most
    if ! kill -0 "$pid" 2> /dev/null; then
      echo "bench: $name did not start (process exited). Last lines of its log:" >&2
      tail -20 "$log" | sed 's/^/    /' >&2
      exit 2
    fi
    if [ "$("$REDIS_CLI_BIN" -h "$HOST" -p "$port" "${CLIENT_TLS[@]}" PING 2> /dev/null)" = PONG ]; then
      kill -0 "$pid" 2> /dev/null && return 0 # PONG from our own process, not a squatter
    fi
    sleep 0.1
  done
  echo "bench: $name did not answer PING on $HOST:$port within 20 s. Last lines of its log:" >&2
  tail -20 "$log" | sed 's/^/    /' >&2
  exit 2
}

REDIS_PORT=$(free_port) || exit 2
QUIVER_PORT=$(free_port "$REDIS_PORT") || exit 2
mkdir -p "$TMP/redis" "$TMP/quiver"

# shellcheck disable=SC2046  # listen_args is split on purpose
"$REDIS_SERVER_BIN" --bind "$HOST" $(listen_args "$REDIS_PORT") "${SERVER_TLS[@]}" --save "" \
  --appendonly yes --appendfsync everysec --dir "$TMP/redis" --daemonize no --logfile "" \
  > "$TMP/redis.log" 2>&1 &
REDIS_PID=$!
# shellcheck disable=SC2046
"$QUIVER_BIN" --bind "$HOST" $(listen_args "$QUIVER_PORT") "${SERVER_TLS[@]}" \
  --durability everysec --dir "$TMP/quiver" > "$TMP/quiver.log" 2>&1 &
QUIVER_PID=$!
wait_ready "redis-server" "$REDIS_PID" "$REDIS_PORT" "$TMP/redis.log"
wait_ready "quiver-server" "$QUIVER_PID" "$QUIVER_PORT" "$TMP/quiver.log"

# ---- machine and versions ----------------------------------------------------------------
cpu_model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2> /dev/null | head -1)
[ -n "$cpu_model" ] || cpu_model=$(lscpu 2> /dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
git_rev=$(git rev-parse --short HEAD 2> /dev/null || echo unknown)
[ -n "$(git status --porcelain 2> /dev/null | head -1)" ] && git_rev="$git_rev (dirty tree)"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

OUTDIR=build/bench
mkdir -p "$OUTDIR" || die "cannot create $OUTDIR"
CSV=$OUTDIR/redis_compare-$STAMP.csv
TXT=$OUTDIR/redis_compare-$STAMP.txt
: > "$TXT"
say() { printf '%s\n' "$*" | tee -a "$TXT"; }

say "Quiver vs Redis: redis-benchmark on $HOST$TLS_NOTE ($(date -u '+%Y-%m-%d %H:%M:%S UTC'))"
say "machine : $(nproc) CPUs, ${cpu_model:-unknown CPU}, $(uname -sr), load avg $(cut -d' ' -f1-3 /proc/loadavg 2> /dev/null)"
say "quiver  : $("$QUIVER_BIN" --version 2> /dev/null | head -1), git $git_rev, --durability everysec, port $QUIVER_PORT"
say "redis   : $("$REDIS_SERVER_BIN" --version | head -1 | sed 's/ sha=.*//'), --appendonly yes --appendfsync everysec --save \"\", port $REDIS_PORT"
say "client  : $("$REDIS_BENCHMARK_BIN" --version | head -1), -c $CLIENTS, -r $KEYSPACE, 3-byte values, -n $N_P1 at -P 1 / $N_P16 at -P 16$([ "${BENCH_QUICK:-0}" = 1 ] && echo ' (BENCH_QUICK smoke run)')"

# ---- identical data set in both ------------------------------------------------------------
# key:000000000000..key:<KEYSPACE-1> = "xxx" and hash myhash with fields element:<same> = "xxx":
# exactly what redis-benchmark's __rand_int__ expands to, so every GET/HGET/MGET is a hit.
awk -v n="$KEYSPACE" 'BEGIN {
  for (i = 0; i < n; i++) {
    k = sprintf("key:%012d", i); f = sprintf("element:%012d", i)
    printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$3\r\nxxx\r\n", length(k), k
    printf "*4\r\n$4\r\nHSET\r\n$6\r\nmyhash\r\n$%d\r\n%s\r\n$3\r\nxxx\r\n", length(f), f
  }
}' > "$TMP/load.resp" || die "could not generate the load file"

load() { # name port
  local out
  if ! out=$("$REDIS_CLI_BIN" -h "$HOST" -p "$2" "${CLIENT_TLS[@]}" --pipe < "$TMP/load.resp" 2>&1); then
    die "loading $1 failed: $(printf '%s' "$out" | tail -3 | tr '\n' ' ')"
  fi
  local dbsize hlen
  dbsize=$("$REDIS_CLI_BIN" -h "$HOST" -p "$2" "${CLIENT_TLS[@]}" DBSIZE)
  hlen=$("$REDIS_CLI_BIN" -h "$HOST" -p "$2" "${CLIENT_TLS[@]}" HLEN myhash)
  if [ "$dbsize" != $((KEYSPACE + 1)) ] || [ "$hlen" != "$KEYSPACE" ]; then
    die "$1 after loading: DBSIZE $dbsize (want $((KEYSPACE + 1))), HLEN myhash $hlen (want $KEYSPACE)"
  fi
}
load redis "$REDIS_PORT"
load quiver "$QUIVER_PORT"
say "data    : $KEYSPACE string keys + 1 hash of $KEYSPACE fields loaded into both (redis-cli --pipe)"

# ---- measurements --------------------------------------------------------------------------
MGET_ARGS=()
for _ in $(seq 10); do MGET_ARGS+=("key:__rand_int__"); done

bench_args() { # test -> redis-benchmark arguments after the common ones
  case $1 in
    GET) echo "-t get" ;;
    SET) echo "-t set" ;;
    HSET) echo "-t hset" ;; # HSET myhash element:__rand_int__ xxx
    HGET) echo "hget myhash element:__rand_int__" ;;
    MGET) echo "mget ${MGET_ARGS[*]}" ;;
  esac
}

echo '"server","pipeline","clients","requests","test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"' > "$CSV"
declare -A RPS P50 P99
START=$(date +%s)
failures=0

run_one() { # server port test pipeline requests
  local server=$1 port=$2 test=$3 P=$4 n=$5 left limit out rc row
  left=$((BUDGET - ($(date +%s) - START)))
  if [ "$left" -le 1 ]; then
    RPS[$server,$test,$P]=skipped
    failures=$((failures + 1))
    return
  fi
  limit=$((left < RUN_TIMEOUT ? left : RUN_TIMEOUT))
  # shellcheck disable=SC2046  # word splitting of bench_args is intended
  out=$(timeout "$limit" "$REDIS_BENCHMARK_BIN" -h "$HOST" -p "$port" "${CLIENT_TLS[@]}" -c "$CLIENTS" -n "$n" \
    -r "$KEYSPACE" -P "$P" --csv $(bench_args "$test") 2> "$TMP/bench.err")
  rc=$?
  row=$(printf '%s\n' "$out" | grep -v '^"test"' | tail -1)
  if [ $rc -ne 0 ] || [ -z "$row" ]; then
    if [ $rc -eq 124 ]; then RPS[$server,$test,$P]=timeout; else RPS[$server,$test,$P]=error; fi
    failures=$((failures + 1))
    echo "bench: $server $test -P $P: redis-benchmark exit $rc: $(grep -v 'Could not fetch server CONFIG' "$TMP/bench.err" | tail -2 | tr '\n' ' ')" >&2
    return
  fi
  # "TEST","rps","avg","min","p50","p95","p99","max"; the test name is replaced by ours.
  row=$(printf '%s' "$row" | sed 's/^"[^"]*",//')
  echo "\"$server\",\"$P\",\"$CLIENTS\",\"$n\",\"$test\",$row" >> "$CSV"
  IFS=, read -r rps _ _ p50 _ p99 _ <<< "$(printf '%s' "$row" | tr -d '"')"
  RPS[$server,$test,$P]=$rps
  P50[$server,$test,$P]=$p50
  P99[$server,$test,$P]=$p99
}

for P in $PIPELINES; do
  n=$N_P1
  [ "$P" = 1 ] || n=$N_P16
  for t in $TESTS; do
    if [ -t 2 ]; then printf '  running %-4s -P %-2s ...\r' "$t" "$P" >&2; fi
    run_one redis "$REDIS_PORT" "$t" "$P" "$n"
    run_one quiver "$QUIVER_PORT" "$t" "$P" "$n"
  done
done
if [ -t 2 ]; then printf '%40s\r' '' >&2; fi
ELAPSED=$(($(date +%s) - START))

# Both servers must still be up: a crash mid-run would otherwise look like a slow line.
for s in "redis-server:$REDIS_PID" "quiver-server:$QUIVER_PID"; do
  kill -0 "${s#*:}" 2> /dev/null || {
    echo "bench: ${s%%:*} died during the run" >&2
    failures=$((failures + 1))
  }
done

# ---- table ---------------------------------------------------------------------------------
say ""
say "ops/s = commands per second (one MGET of 10 keys counts as one); latencies in ms, per command."
say "ratio = quiver ops/s / redis ops/s (>1: Quiver faster); p99 ratio = quiver p99 / redis p99 (<1: Quiver better)."
say ""
hdr=$(printf '%-5s %3s | %11s %12s %6s | %7s %7s | %7s %7s | %9s' \
  test P "redis ops/s" "quiver ops/s" ratio "r p50" "r p99" "q p50" "q p99" "p99 ratio")
say "$hdr"
say "$(printf '%s' "$hdr" | tr -c '|\n' '-' | tr '|' '+')"
num() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
for P in $PIPELINES; do
  for t in $TESTS; do
    rr=${RPS[redis,$t,$P]:-?} qr=${RPS[quiver,$t,$P]:-?}
    r50=${P50[redis,$t,$P]:--} r99=${P99[redis,$t,$P]:--}
    q50=${P50[quiver,$t,$P]:--} q99=${P99[quiver,$t,$P]:--}
    ratio=- p99x=-
    num "$rr" && num "$qr" && ratio=$(div "$qr" "$rr")
    num "$r99" && num "$q99" && p99x=$(div "$q99" "$r99")
    num "$rr" && rr=$(printf '%.0f' "$rr")
    num "$qr" && qr=$(printf '%.0f' "$qr")
    say "$(printf '%-5s %3s | %11s %12s %6s | %7s %7s | %7s %7s | %9s' \
      "$t" "$P" "$rr" "$qr" "$ratio" "$r50" "$r99" "$q50" "$q99" "$p99x")"
  done
done
say ""
say "r = redis-server, q = quiver-server. Measured in ${ELAPSED}s."
say "raw CSV: $CSV; this table: $TXT (copies: $OUTDIR/redis_compare-latest.{csv,txt})"
[ "$failures" -gt 0 ] &&
  say "bench: $failures run(s) produced no number (error, timeout, over the ${BUDGET}s budget, or a server died)"
cp "$CSV" "$OUTDIR/redis_compare-latest.csv"
cp "$TXT" "$OUTDIR/redis_compare-latest.txt"
[ "$failures" -eq 0 ]
