"""Benchmark of the image models: printed figures, not a pass/fail test.

For each model: parameters, FLOPs per image (completion forward pass, and one training step), training
throughput at batch 64 (images/s), completion latency at batch 1 (ms), peak memory of a training step,
and the achieved FLOP/s as a fraction of an fp32 matmul peak measured in the same run.

    python benchmarks/bench_models.py [--models ifanp ifnp ...] [--size 28] [--device auto] [--threads N]
                                      [--json results.json]

Timings depend on what else the machine is doing: run it on an idle machine and compare ratios
measured in one run rather than numbers from different runs.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import torch

from ifanp import get_device
from ifanp.models import build, model_names


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """Achieved fp32 FLOP/s of an n x n matmul (the reference peak)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    _sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - t)


def bench(name: str, device: torch.device, size: int, channels: int, batch: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = build(name, channels=channels, size=size).to(device)
    fwd_flops = model.flops_per_image()
    step_flops = model.flops_per_image(training=True)
    x = torch.rand(batch, channels, size, size, device=device)
    m = (torch.rand(batch, 1, size, size, device=device) < 0.4).float()
    opt = torch.optim.Adam(model.parameters(), 1e-4)

    def step():
        out = model.loss(x, m)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    train_s = (time.perf_counter() - t) / steps
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0, 0) * 1024)
    model.eval()
    x1, m1 = x[:1], m[:1]
    with torch.no_grad():
        for _ in range(5):
            model.complete(x1, m1)
        _sync(device)
        times = []
        for _ in range(30):
            t = time.perf_counter()
            model.complete(x1, m1)
            _sync(device)
            times.append(time.perf_counter() - t)
    times.sort()
    return {
        "model": name,
        "parameters": model.num_parameters(),
        "forward_mflop_per_image": fwd_flops / 1e6,
        "train_mflop_per_image": step_flops / 1e6,
        "train_images_per_s": batch / train_s,
        "train_gflop_per_s": step_flops * batch / train_s / 1e9,
        "latency_ms_batch1_median": 1e3 * times[len(times) // 2],
        "peak_memory_mb": peak / 2**20,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=None)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    names = args.models or model_names()
    peak = matmul_peak(device)
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else platform.processor() or 'cpu'}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"fp32 2048x2048 matmul: {peak / 1e9:.0f} GFLOP/s")
    print(f"{'model':12s} {'params':>9s} {'fwd MFLOP':>9s} {'step MFLOP':>10s} {'train img/s':>11s} "
          f"{'GFLOP/s':>8s} {'% peak':>6s} {'lat ms':>7s} {'peak MB':>8s}")
    rows = []
    for name in names:
        r = bench(name, device, args.size, args.channels, args.batch, args.steps)
        r["fraction_of_matmul_peak"] = r["train_gflop_per_s"] * 1e9 / peak
        rows.append(r)
        print(f"{name:12s} {r['parameters']:9,d} {r['forward_mflop_per_image']:9.1f} {r['train_mflop_per_image']:10.1f} "
              f"{r['train_images_per_s']:11.0f} {r['train_gflop_per_s']:8.1f} {100 * r['fraction_of_matmul_peak']:5.0f}% "
              f"{r['latency_ms_batch1_median']:7.2f} {r['peak_memory_mb']:8.0f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "threads": torch.get_num_threads(), "matmul_gflop_per_s": peak / 1e9,
                       "size": args.size, "batch": args.batch, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
