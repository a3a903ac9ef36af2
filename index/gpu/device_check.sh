#!/usr/bin/env bash
# index/gpu/device_check.sh: the ONE script a session with a GPU runs on the device machine
# (repository root copied there; needs CUDA's nvcc and a python3 with numpy, torch optional).
# It builds index/gpu/, runs test_gpu_select and test_gpu, then bench/gpu_bench.py and
# bench/gpu_graph_bench.c with bounded sizes, and writes every output under $OUT (default
# build/gpu/device-check):
#   device_check.log   all of it, with the time of each step
#   env.txt            nvidia-smi, nvcc, torch versions
#   build.txt test_gpu_select.txt test_gpu.txt gpu_bench.txt gpu_bench.json
#   graph_bench.txt graph_bench.json
# Every step has its own timeout; the whole run takes ~4-7 minutes. The data sets are
# read from $QUIVER_GPU_DATA, else ../shared/data/vectors, else data/gpu-vectors (what
# index/gpu/stage_data.sh copies there to be carried). Exit status: the number of failed steps.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-build/gpu/device-check}
mkdir -p "$OUT"
exec > >(tee "$OUT/device_check.log") 2>&1
PY=${PYTHON:-python3}
failed=0
step() { # name, timeout seconds, command...: runs it, its output into $OUT/name.txt
  local name=$1 limit=$2
  shift 2
  echo "== $(date -u +%T) $name (at most ${limit}s)"
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  tail -n 40 "$OUT/$name.txt"
  [ $rc -eq 0 ] || { echo "== $name FAILED (exit $rc; 124: timed out)"; failed=$((failed + 1)); }
  return $rc
}

NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$NVCC")")}
# Build for the device present (compute capability 9.0 -> sm_90), PTX beside it.
cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')
cc=${cc:-90}
GPU_ARCH="-gencode arch=compute_$cc,code=sm_$cc -gencode arch=compute_$cc,code=compute_$cc"
# cuBLAS: the toolkit's, else the one a pip wheel brought with torch (nvidia-cublas-*).
CUBLAS_INC= CUBLAS_LIB=
if ! ls "$CUDA_HOME"/lib64/libcublas.so* > /dev/null 2>&1; then
  wheel=$("$PY" -c 'import nvidia.cublas as m; print(list(m.__path__)[0])' 2>/dev/null)
  lib=$(ls "$wheel"/lib/libcublas.so* 2>/dev/null | head -1)
  if [ -n "$lib" ]; then
    CUBLAS_INC="-I$wheel/include"
    CUBLAS_LIB="-L$wheel/lib -Xlinker -rpath=$wheel/lib -l:$(basename "$lib")"
  fi
fi
if [ -z "${QUIVER_GPU_DATA:-}" ]; then
  QUIVER_GPU_DATA=../shared/data/vectors
  [ -d "$QUIVER_GPU_DATA" ] || QUIVER_GPU_DATA=data/gpu-vectors
fi
export QUIVER_GPU_DATA
# hnswlib's header for gpu_graph_bench's comparison: the system's, else the copy stage_data.sh
# put beside the data; without either the benchmark leaves hnswlib out and says so.
HNSWLIB_INC=/usr/include
[ -f "$HNSWLIB_INC/hnswlib/hnswlib.h" ] || HNSWLIB_INC=$(cd "$QUIVER_GPU_DATA" 2>/dev/null && pwd)/include

{ nvidia-smi; "$NVCC" --version; echo "CUDA_HOME=$CUDA_HOME GPU_ARCH=$GPU_ARCH";
  echo "CUBLAS_INC=$CUBLAS_INC CUBLAS_LIB=${CUBLAS_LIB:-the toolkit default}";
  echo "QUIVER_GPU_DATA=$QUIVER_GPU_DATA HNSWLIB_INC=$HNSWLIB_INC"; ls -l "$QUIVER_GPU_DATA"/* 2>&1;
  "$PY" -c 'import numpy, torch; print("numpy", numpy.__version__, "torch", torch.__version__,
            "cuda", torch.version.cuda)'; } > "$OUT/env.txt" 2>&1
head -n 20 "$OUT/env.txt"

# Warnings do not stop this build (GPU_WERROR=0): they are in build.txt; here they compile as
# errors. The caps add up to under 600 s, one device call, even if every step hangs.
if step build 120 make -C index/gpu -j"$(nproc)" CUDA_HOME="$CUDA_HOME" NVCC="$NVCC" \
     GPU_ARCH="$GPU_ARCH" GPU_WERROR=0 OUT="$PWD/build/gpu" CUBLAS_INC="$CUBLAS_INC" \
     ${CUBLAS_LIB:+CUBLAS_LIB="$CUBLAS_LIB"} HNSWLIB_INC="$HNSWLIB_INC" all; then
  step test_gpu_select 30 build/gpu/test_gpu_select
  step test_gpu 150 build/gpu/test_gpu
  rc=$?
  # On this machine a SKIP is a failure: the device is there but the runtime cannot use it
  # (a driver older than the toolkit's minor version? env.txt has both).
  if grep -q '^SKIP: no CUDA device' "$OUT/test_gpu.txt" && nvidia-smi -L > /dev/null 2>&1; then
    echo "== test_gpu SKIPPED on a machine with a GPU: FAILED"
    failed=$((failed + 1))
  fi
  if [ $rc -eq 124 ]; then
    echo "== test_gpu timed out (a kernel that never ends?): the benchmark would too, skipped"
  else
    # Bounded: 1M rows for the random sets, 0.2 s per point (about two minutes in all).
    step gpu_bench 170 "$PY" bench/gpu_bench.py --rows "${BENCH_ROWS:-1000000}" --seconds 0.2 \
      --json "$OUT/gpu_bench.json"
    # Graph builds: fashion-mnist whole (GPU kNN + prune, our incremental build for the same
    # recall at the same M and ef, hnswlib where built; exact CPU lists cost n^2: left out),
    # then random 1M x 128 (GPU kNN + prune; the CPU builds on 50,000 / 200,000 rows at
    # most, their time only: whole they would take far longer than the cap).
    step graph_bench 120 bash -c "build/gpu/gpu_graph_bench --set fmnist --rows 60000 \
      --cpu-knn-rows 20000 --json $OUT/graph_bench.json && build/gpu/gpu_graph_bench \
      --set random --rows ${GRAPH_ROWS:-1000000} --dim 128 --cpu-knn-rows 20000 \
      --incr-rows 50000 --hnswlib-rows 200000 --json $OUT/graph_bench.json"
  fi
fi
echo "== $(date -u +%T) done: $failed step(s) failed; outputs in $OUT"
exit $failed
