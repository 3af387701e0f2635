#!/usr/bin/env python3
"""Measures cellcount.dask on local worker processes (threads per worker 1).

  files: throughput of count_files (images/s) on 1 and 2 workers, runs interleaved (1, 2, 2, 1, 1, 2, ...),
         each into a fresh table; cluster start and the model load (WorkerPlugin) are outside the timing
  array: count_array of one large image in blocks against one library call on the whole image

  .venv/bin/python scripts/bench_dask.py files --model models/dcl-vgg --images /tmp/dask/synth --repeat 3
  .venv/bin/python scripts/bench_dask.py array --model models/dcl-vgg --image big.png --block 256 512
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

import cellcount
import cellcount.dask as ccd
from distributed import Client, LocalCluster


def bench_files(a) -> None:
    files, _ = ccd.expand_inputs([a.images])
    if a.limit:
        files = files[: a.limit]
    work = tempfile.mkdtemp(prefix="bench-dask-", dir=a.tmp)
    runs: dict[int, list[float]] = {w: [] for w in a.workers}
    order = []
    for r in range(a.repeat):
        order += a.workers if r % 2 == 0 else a.workers[::-1]
    print(f"{len(files)} images, model {a.model}, runs in order {order}", flush=True)
    for i, w in enumerate(order):
        with LocalCluster(n_workers=w, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            ccd.register_model(client, a.model, threads=1)  # load before the clock starts
            out = os.path.join(work, f"run{i}-w{w}.csv")
            t0 = time.perf_counter()
            rep = ccd.count_files(client, files, a.model, out=out)
            dt = time.perf_counter() - t0
        assert rep.written == len(files) and rep.ok, rep
        runs[w].append(len(files) / dt)
        print(f"run {i + 1}: {w} worker(s): {dt:.1f} s, {len(files) / dt:.2f} images/s", flush=True)
    print("\n| workers (threads 1 each) | runs | images/s (median) | min .. max | scaling vs 1 worker |")
    print("|---|---|---|---|---|")
    base = statistics.median(runs[a.workers[0]])
    for w in a.workers:
        med = statistics.median(runs[w])
        print(f"| {w} | {len(runs[w])} | {med:.2f} | {min(runs[w]):.2f} .. {max(runs[w]):.2f} | {med / base:.2f} |")


def bench_array(a) -> None:
    img = cellcount.read_image(a.image)[0]
    cellcount.set_num_threads(a.threads)
    with cellcount.Model(a.model) as m:
        t0 = time.perf_counter()
        whole = m.predict(img)
        t_whole = time.perf_counter() - t0
        halo = ccd._halo_of(m.info)
    print(f"{a.image}: {img.shape[1]}x{img.shape[0]}, model {a.model} (tile overlap {halo}); "
          f"one library call: count {whole.count:.2f}, {whole.n_points} points, {t_whole:.1f} s")
    print("\n| normalization | block | halo | blocks | count (blocks) | count (one call) | relative difference | "
          "points (blocks / one call) | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    with LocalCluster(n_workers=a.n_workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        for norm in a.normalization:
            for b in a.block:
                for h in (a.halo or [halo]):
                    got = ccd.count_array(client, img, a.model, block=b, halo=h, threads=a.threads,
                                          normalization=norm)
                    rel = (got.count - whole.count) / whole.count
                    print(f"| {norm} | {b} | {h} | {got.n_blocks} | {got.count:.2f} | {whole.count:.2f} | "
                          f"{100 * rel:+.2f} % | {len(got.xy)} / {whole.n_points} | {got.seconds:.1f} |", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("files")
    f.add_argument("--model", required=True)
    f.add_argument("--images", required=True)
    f.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    f.add_argument("--repeat", type=int, default=3)
    f.add_argument("--limit", type=int, default=0)
    f.add_argument("--tmp", default=None)
    g = sub.add_parser("array")
    g.add_argument("--model", required=True)
    g.add_argument("--image", required=True)
    g.add_argument("--block", type=int, nargs="+", default=[512])
    g.add_argument("--halo", type=int, nargs="*")
    g.add_argument("--n-workers", type=int, default=2)
    g.add_argument("--threads", type=int, default=1)
    g.add_argument("--normalization", nargs="+", default=["image", "block"], choices=["image", "block"])
    a = ap.parse_args()
    (bench_files if a.cmd == "files" else bench_array)(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
