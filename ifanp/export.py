"""``python -m ifanp export``: copy a finished run's weights into the package's registry.

The registry entry records the run's command, wall and CPU time, its training log (epoch and eval rows,
read with :func:`ifanp.runlog.read_log`) and the 40 % PSNR of the first 1,000 evaluation images in fp32
and fp16 (fp16 is stored when the two agree within 0.05 dB).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from .data.splits import load_eval_images
from .evaluate import quick_psnr
from .pretrained import WEIGHTS_DIR, check_name, load_weights, read_metadata, register_weights, save_weights
from .runlog import read_log


def add_export_arguments(parser) -> None:
    """Arguments of ``python -m ifanp export``."""
    parser.add_argument("run", help="a finished run folder (with model.safetensors, config.json and log.jsonl)")
    parser.add_argument("--name", required=True, help="registry name, e.g. mnist-ifanp or mnist-ifanp-s1")
    parser.add_argument("--fp32", action="store_true", help="store fp32 even when fp16 evaluates the same")
    parser.add_argument("--force", action="store_true", help="replace the weights already registered under --name")


def run_export(args) -> int:
    """Copy a run's final weights into the package (fp16 when it changes the 40 % PSNR by < 0.05 dB)."""
    check_name(args.name, force=args.force)  # before anything is evaluated or written
    run = Path(args.run)
    final, config_file = run / "model.safetensors", run / "config.json"
    if not final.is_file() or not config_file.is_file():
        raise ValueError(f"{run} is not a finished run (no model.safetensors/config.json); finish it with --resume.")
    from .train import _is_our_run

    if not _is_our_run(run):
        raise ValueError(f"{config_file} was not written by `python -m ifanp train`; export takes a finished run of it.")
    cfg = json.loads(config_file.read_text())
    log = read_log(run)
    epochs = [r for r in log if r["kind"] == "epoch"]
    evals = [r for r in log if r["kind"] == "eval"]
    model = load_weights(final)
    images, indices = load_eval_images(cfg["dataset"])
    images, indices = images[:1000], indices[:1000]
    p32 = quick_psnr(model, images, indices)
    half = False
    p16 = None
    if not args.fp32:
        tmp = WEIGHTS_DIR / f".{args.name}.tmp.safetensors"
        save_weights(model, tmp, half=True)
        p16 = quick_psnr(load_weights(tmp), images, indices)
        tmp.unlink()
        half = abs(p16 - p32) < 0.05
    meta = read_metadata(final)["meta"]
    info = {
        "command": cfg["command"],
        "wall_time_s": round(float(meta.get("elapsed_s", epochs[-1]["elapsed_s"] if epochs else math.nan)), 1),
        "cpu_time_s": round(float(meta.get("cpu_s", math.nan)), 1),
        "threads": cfg.get("threads"),
        "machines": cfg.get("machines"),  # what it trained on (config.json; None for runs before it was recorded)
        "steps": int(meta.get("steps", cfg.get("total_steps", 0))),
        "dataset": cfg["dataset"],
        "seed": cfg["seed"],
        "psnr40_first1000_fp32": round(p32, 4),
        "psnr40_first1000_fp16": None if p16 is None else round(p16, 4),
        "history": [{k: r.get(k) for k in ("epoch", "step", "elapsed_s", "cpu_s", "loss", "nll", "kl", "mse")}
                    for r in epochs],
        "evals": [{k: r.get(k) for k in ("step", "elapsed_s", "cpu_s", "psnr40")} for r in evals],
    }
    entry = register_weights(args.name, model, half=half, **info)
    size = entry["bytes"] / 2**20
    print(f"registered {args.name}: {entry['file']} ({size:.2f} MB, {'fp16' if half else 'fp32'}), sha256 {entry['sha256']}")
    print(f"PSNR at 40% on the first 1,000 eval images: fp32 {p32:.3f} dB" + (f", fp16 {p16:.3f} dB" if p16 else ""))
    return 0
