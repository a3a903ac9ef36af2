#!/usr/bin/env bash
# index/gpu/stage_data.sh: copies the data sets test_gpu and gpu_bench.py read into
# data/gpu-vectors/ (ignored by git), bounded to ~58 MB so that a device run can carry them
# (the run tool carries at most 64 MiB of ignored paths): bigann10k and fmnist1k whole, and
# fashion-mnist's 60,000 base vectors with its first 256 queries and their ground truth.
set -eu
cd "$(dirname "$0")/../.."
src=${1:-../shared/data/vectors}
dst=data/gpu-vectors
rm -rf "$dst"
mkdir -p "$dst/bigann10k" "$dst/fmnist1k" "$dst/fashion-mnist-784-euclidean"
cp "$src"/bigann10k/bigann10k_{base,query}.fvecs "$dst/bigann10k/"
cp "$src"/fmnist1k/fmnist1k_{base,query}.fvecs "$dst/fmnist1k/"
f=fashion-mnist-784-euclidean
cp "$src/$f/fmnist_train_base.bvecs" "$dst/$f/"
# The first 256 records: a .bvecs record of 784 dims is 4 + 784 bytes, an .ivecs one of
# 100 ids is 4 + 400.
head -c $((256 * 788)) "$src/$f/fmnist_test_query.bvecs" > "$dst/$f/fmnist_test_query.bvecs"
head -c $((256 * 404)) "$src/$f/fmnist_groundtruth_l2_k100_sqdist.ivecs" \
  > "$dst/$f/fmnist_groundtruth_l2_k100_sqdist.ivecs"
# hnswlib's header (header-only, Debian's libhnswlib-dev) for gpu_graph_bench's comparison
# on a device machine that lacks it.
if [ -f /usr/include/hnswlib/hnswlib.h ]; then
  mkdir -p "$dst/include"
  cp -r /usr/include/hnswlib "$dst/include/"
fi
du -sh "$dst"
