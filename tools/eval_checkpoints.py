#!/usr/bin/env python
"""Whole-image PSNR at 20/40/60 % context of training checkpoints, on the first N evaluation images.

    python tools/eval_checkpoints.py COPY_500 COPY_1000 ... RUN_FOLDER --out results/faithful-pilots/x.json

Each argument is a folder holding a ``checkpoint.safetensors`` / ``checkpoint.json`` pair written by
``python -m ifanp train`` (a run folder, or a copy of one taken while the run trained: training keeps only its
latest checkpoint, every ``--checkpoint-every`` steps). Used for the learning curve at 20 % context of the
faithful IFANP, seed 1 (issue 12): the copies were taken with a shell loop that copied the run's checkpoint
files each time ``checkpoint.json`` named a new step, while ``tools/train_pretrained.sh ifanp-full-s1`` ran.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ifanp.data.splits import load_eval_images  # noqa: E402
from ifanp.evaluate import evaluate  # noqa: E402
from ifanp.models import build  # noqa: E402
from ifanp.train import TrainConfig, load_checkpoint  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--images", type=int, default=1000, help="first N evaluation images (default 1000)")
    parser.add_argument("--out", type=Path, default=None, help="write the curve here as JSON")
    args = parser.parse_args(argv)
    images, idx = load_eval_images("mnist")
    images, idx = images[: args.images], idx[: args.images]
    rows = []
    for folder in args.folders:
        state = load_checkpoint(folder)
        if state is None:
            parser.error(f"{folder} holds no checkpoint.json / checkpoint.safetensors")
        cfg = TrainConfig.from_json(state["config"])
        model = build(cfg.model, channels=images.shape[1], size=images.shape[-1], **cfg.overrides)
        model.load_state_dict(state["model"])
        model.eval()
        res = evaluate(model, images, idx, ratios=(0.2, 0.4, 0.6), nll_images=0, progress=False)
        row = {"step": int(state["step"]), "model": cfg.model, "seed": cfg.seed,
               **{r: round(v["psnr_whole"], 4) for r, v in res["ratios"].items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"command": "python tools/eval_checkpoints.py " + " ".join(
            str(a) for a in (argv if argv is not None else sys.argv[1:])), "images": args.images,
            "psnr_whole": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
