#!/usr/bin/python3
"""gpu_bench.py: exact kNN on one GPU, index/gpu/ beside PyTorch (torch.mm + torch.topk) on the
same device, same data, same run.

For each data set (random 1M x 128, random 1M x 768, fashion-mnist 60k x 784) and batch size
(1, 16, 256, 4096) at k = 10 and 100: queries/s of both (host queries in, host results out,
for both), the share of our search spent in the top-k kernels (CUDA events), and whether our
ids match torch's. Then: the memory bandwidth our batch-1 search reaches against the device's
peak, and the GEMM throughput our largest batch reaches against a plain fp32 cuBLAS SGEMM of
the same shape (torch.mm with TF32 off). Prints tables; --json writes every figure.

Skips cleanly (exit 0, a SKIP line) where the library is not built or no device exists; runs
without the PyTorch columns (and says so) where torch is missing.

  /usr/bin/python3 bench/gpu_bench.py [--rows 1000000] [--sets random128,random768,fmnist]
      [--batches 1,16,256,4096] [--ks 10,100] [--seconds 0.3] [--json out.json]
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_lib  # noqa: E402


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the random sets")
    ap.add_argument("--sets", default="random128,random768,fmnist")
    ap.add_argument("--batches", default="1,16,256,4096")
    ap.add_argument("--ks", default="10,100")
    ap.add_argument("--seconds", type=float, default=0.3, help="time per measurement (at least 2 runs)")
    ap.add_argument("--data", default=os.environ.get("QUIVER_GPU_DATA", os.path.join(
        gpu_lib.ROOT, "..", "shared", "data", "vectors")))
    ap.add_argument("--json", help="write all figures here")
    return ap.parse_args()


def ints(s):
    return [int(x) for x in s.split(",") if x]


def import_torch():
    try:
        import torch
    except ImportError as e:
        print(f"torch not available ({e}): the PyTorch and cuBLAS columns are left out")
        return None
    if not torch.cuda.is_available():
        print("torch sees no CUDA device: the PyTorch and cuBLAS columns are left out")
        return None
    return torch


# ---- data ----

def read_vecs(path, dtype):
    """A texmex .fvecs / .bvecs file as a float32 [n, dim] array."""
    raw = np.fromfile(path, dtype=np.uint8)
    dim = int(raw[:4].view(np.int32)[0])
    width = 4 + dim * np.dtype(dtype).itemsize
    rows = raw.reshape(-1, width)[:, 4:]
    return np.ascontiguousarray(rows.view(dtype).astype(np.float32))


def random_set(rows, dim, torch, seed):
    """(base, queries) of uniform floats; drawn on the GPU when torch is there (fast)."""
    if torch is not None:
        g = torch.Generator(device="cuda").manual_seed(seed)
        base = torch.rand(rows, dim, device="cuda", generator=g).cpu().numpy()
        queries = torch.rand(gpu_lib.MAX_BATCH, dim, device="cuda", generator=g).cpu().numpy()
        return base, queries
    rng = np.random.default_rng(seed)
    return (rng.random((rows, dim), dtype=np.float32),
            rng.random((gpu_lib.MAX_BATCH, dim), dtype=np.float32))


def load_sets(args, torch):
    """Yields (name, base, queries); a missing data set is skipped with a line saying so."""
    for name in args.sets.split(","):
        if name == "random128":
            yield (f"random {args.rows}x128",) + random_set(args.rows, 128, torch, 1)
        elif name == "random768":
            yield (f"random {args.rows}x768",) + random_set(args.rows, 768, torch, 2)
        elif name == "fmnist":
            d = os.path.join(args.data, "fashion-mnist-784-euclidean")
            base_p = os.path.join(d, "fmnist_train_base.bvecs")
            query_p = os.path.join(d, "fmnist_test_query.bvecs")
            if not (os.path.exists(base_p) and os.path.exists(query_p)):
                print(f"SKIP data set fmnist: {base_p} not found")
                continue
            q = read_vecs(query_p, np.uint8)
            reps = -(-gpu_lib.MAX_BATCH // len(q))  # fewer queries than the largest batch
            yield "fashion-mnist 60000x784", read_vecs(base_p, np.uint8), np.tile(q, (reps, 1))
        else:
            sys.exit(f"unknown set {name}")


# ---- timing ----

def timed(fn, seconds):
    """Mean seconds of fn() over at least 2 runs and about `seconds`, after one warm-up."""
    fn()
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        spent = time.perf_counter() - start
        if runs >= 2 and spent >= seconds:
            return spent / runs


class TorchKnn:
    """torch.mm + torch.topk over the same rows, L2 by the same expansion as ours."""

    def __init__(self, torch, base):
        self.torch = torch
        self.x = torch.from_numpy(base).cuda()
        self.xn = (self.x * self.x).sum(1)

    def search(self, q_host, k, time_topk=False):
        t = self.torch
        q = t.from_numpy(q_host).cuda()
        d = self.xn[None, :] - 2.0 * t.mm(q, self.x.t()) + (q * q).sum(1, keepdim=True)
        if time_topk:
            t.cuda.synchronize()
            t0 = time.perf_counter()
        vals, ids = t.topk(d, k, dim=1, largest=False, sorted=True)
        if time_topk:
            t.cuda.synchronize()
            self.topk_s = time.perf_counter() - t0
        return ids.cpu().numpy(), vals.cpu().numpy()


def id_agreement(a, b):
    """Share of ids found in both results, row by row (1.0: same sets; ties can lower it)."""
    same = sum(len(np.intersect1d(x, y)) for x, y in zip(a, b))
    return same / a.size


# ---- measurements ----

def bench_set(name, base, queries, args, lib, info, torch):
    print(f"\n== {name}")
    idx = gpu_lib.Index(lib, base.shape[1])
    t0 = time.perf_counter()
    idx.add(np.arange(len(base), dtype=np.uint32), base)
    print(f"added {idx.count()} rows in {time.perf_counter() - t0:.2f} s, "
          f"{idx.device_bytes() / 2**30:.2f} GiB on the device")
    tk = None
    if torch is not None:
        try:
            tk = TorchKnn(torch, base)
        except RuntimeError as e:  # out of memory beside our copy
            print(f"torch: {e}")
    rows = []
    print(f"{'k':>5} {'batch':>6} {'ours q/s':>12} {'torch q/s':>12} {'x torch':>8} "
          f"{'ours top-k %':>12} {'torch top-k %':>13} {'same ids':>9}")
    for k in ints(args.ks):
        for nq in ints(args.batches):
            rows.append(bench_point(idx, tk, queries[:nq], k, args))
    r = {"set": name, "rows": len(base), "dim": base.shape[1], "points": rows}
    r.update(roofline(idx, tk, base, queries, args, info, torch))
    idx.close()
    del tk
    if torch is not None:
        torch.cuda.empty_cache()
    return r


def bench_point(idx, tk, q, k, args):
    nq = len(q)
    ours_s = timed(lambda: idx.search(q, k), args.seconds)
    total_ms, select_ms = idx.last_times()
    p = {"k": k, "batch": nq, "ours_qps": nq / ours_s, "ours_topk_share": select_ms / total_ms}
    line = f"{k:>5} {nq:>6} {p['ours_qps']:>12.0f}"
    if tk is not None:
        try:
            torch_s = timed(lambda: tk.search(q, k), args.seconds)
            tk.search(q, k, time_topk=True)
            ours_ids = idx.search(q, k)[0]
            p.update(torch_qps=nq / torch_s, torch_topk_share=tk.topk_s / torch_s,
                     same_ids=id_agreement(ours_ids, tk.search(q, k)[0]))
            line += (f" {p['torch_qps']:>12.0f} {p['ours_qps'] / p['torch_qps']:>8.2f}"
                     f" {100 * p['ours_topk_share']:>12.1f} {100 * p['torch_topk_share']:>13.1f}"
                     f" {p['same_ids']:>9.4f}")
        except RuntimeError as e:
            line += f"  torch: {str(e).splitlines()[0]}"
    else:
        line += f" {'-':>12} {'-':>8} {100 * p['ours_topk_share']:>12.1f}"
    print(line)
    return p


def roofline(idx, tk, base, queries, args, info, torch):
    """Bandwidth at batch 1 against the peak; GEMM TFLOP/s at the largest batch against
    torch.mm (cuBLAS SGEMM, TF32 off) of the same shape; our TF32 mode beside them."""
    n, dim = base.shape
    nq = max(ints(args.batches))
    s1 = timed(lambda: idx.search(queries[:1], 10), args.seconds)
    gbs = (n * dim * 4 + n * 4) / s1 / 1e9
    r = {"batch1_gbs": gbs, "peak_gbs": info.mem_bandwidth_gbs}
    print(f"batch 1: {gbs:.0f} GB/s read, {100 * gbs / info.mem_bandwidth_gbs:.1f}% of the "
          f"{info.mem_bandwidth_gbs:.0f} GB/s peak")
    flop = 2.0 * n * dim * nq
    sl = timed(lambda: idx.search(queries[:nq], 10), args.seconds)
    st = timed(lambda: idx.search(queries[:nq], 10, tf32=True), args.seconds)
    r.update(ours_tflops=flop / sl / 1e12, ours_tf32_tflops=flop / st / 1e12)
    line = (f"batch {nq}: ours {r['ours_tflops']:.1f} TFLOP/s fp32, "
            f"{r['ours_tf32_tflops']:.1f} TFLOP/s with TF32")
    if tk is not None:
        torch.backends.cuda.matmul.allow_tf32 = False
        q = torch.from_numpy(queries[:nq]).cuda()
        sg = timed(lambda: (torch.mm(q, tk.x.t()), torch.cuda.synchronize()), args.seconds)
        r["sgemm_tflops"] = flop / sg / 1e12
        line += (f"; cuBLAS SGEMM alone {r['sgemm_tflops']:.1f} TFLOP/s: ours reaches "
                 f"{100 * r['ours_tflops'] / r['sgemm_tflops']:.0f}%")
    print(line)
    return r


def main():
    args = parse_args()
    try:
        lib = gpu_lib.load()
    except OSError as e:
        print(f"SKIP: index/gpu library not built ({e}); run make gpu")
        return 0
    info, detail = gpu_lib.device_info(lib)
    if info is None:
        print(f"SKIP: no CUDA device ({detail})")
        return 0
    print(f"device: {info.name.decode()}, {info.sm_count} SMs, {info.total_mem / 2**30:.0f} GiB, "
          f"peak {info.mem_bandwidth_gbs:.0f} GB/s")
    torch = import_torch()
    if torch is not None:
        torch.backends.cuda.matmul.allow_tf32 = False
    results = [bench_set(name, base, q, args, lib, info, torch)
               for name, base, q in load_sets(args, torch)]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": info.name.decode(), "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
