#!/usr/bin/env python
"""Whole-image PSNR at 20/40/60 % context of training checkpoints, on the first N evaluation images.

    python tools/eval_checkpoints.py COPY_500 COPY_1000 ... RUN_FOLDER --out results/faithful-pilots/x.json
    python tools/eval_checkpoints.py RUN/checkpoints/step-* --label "6,000 steps" --out ifanp/experiments/x.json

With ``--label`` the curve is stored under ``runs[LABEL]`` of the ``--out`` file, beside the runs already there
(one with the same label is replaced), with the training command of the checkpoints' run.

Each argument is a folder holding a ``checkpoint.safetensors`` / ``checkpoint.json`` pair written by
``python -m ifanp train`` (a run folder, or a copy of one: ``--keep-checkpoints`` keeps every scheduled
checkpoint in ``<out>/checkpoints/step-N/``; without it training keeps only its latest), or the name of shipped
weights (``mnist-ifanp-full``: its last step, its registry command; sha256-checked like every load). Used for the learning
curves at 20 % context of the faithful IFANP (issue 12) in ``ifanp/experiments/mnist-faithful-budget.json``, which the experiments chapter
plots: seed 1 of its 3,000-step recipe (copies taken with a shell loop while
``tools/train_pretrained.sh ifanp-full-s1`` ran, before ``--keep-checkpoints`` existed), the same recipe
with 6,000 steps, and the other runs that file names.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ifanp.data.splits import load_eval_images  # noqa: E402
from ifanp.evaluate import evaluate  # noqa: E402
from ifanp.models import build  # noqa: E402
from ifanp.pretrained import WeightsError, load_pretrained, registry  # noqa: E402
from ifanp.train import TrainConfig, TrainingError, command_for, load_checkpoint  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("folders", nargs="+", help="checkpoint folders, or names of shipped weights")
    parser.add_argument("--images", type=int, default=1000, help="first N evaluation images (default 1000)")
    parser.add_argument("--out", type=Path, default=None, help="write the curve here as JSON")
    parser.add_argument("--label", default=None, help="store the curve under runs[LABEL] of --out, beside others")
    args = parser.parse_args(argv)
    if args.label is not None and args.out is None:
        parser.error("--label needs --out (the file that holds the labelled curves)")
    existing = {}
    if args.label is not None and args.out.is_file():
        try:
            existing = json.loads(args.out.read_text())
        except json.JSONDecodeError as err:
            parser.error(f"{args.out} is not JSON ({err}); move it away or choose another --out")
        if not isinstance(existing, dict) or not isinstance(existing.get("runs"), dict):
            parser.error(f"{args.out} holds no labelled curves (no 'runs'); choose another --out")
        if existing.get("images") != args.images:
            parser.error(f"{args.out} holds curves on {existing.get('images')} images, not {args.images}; "
                         "give the same --images")
    images, idx = load_eval_images("mnist")
    images, idx = images[: args.images], idx[: args.images]
    rows, commands = [], set()
    shipped = registry()
    for folder in args.folders:
        try:
            model, step, name, seed, command = _load(folder, shipped, images, parser)
        except (TrainingError, WeightsError) as err:  # a damaged checkpoint or weights file: one line
            parser.error(str(err))
        commands.add(command)
        model.eval()
        res = evaluate(model, images, idx, ratios=(0.2, 0.4, 0.6), nll_images=0, progress=False)
        row = {"step": step, "model": name, "seed": seed,
               **{r: round(v["psnr_whole"], 4) for r, v in res["ratios"].items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    command = "python tools/eval_checkpoints.py " + " ".join(
        str(a) for a in (argv if argv is not None else sys.argv[1:]))
    rows.sort(key=lambda r: r["step"])
    if args.label is not None:
        if len(commands) != 1:
            parser.error("with --label every folder must be a checkpoint of one run (their training commands differ)")
        runs = dict(existing.get("runs", {}))
        runs[args.label] = {"command": command, "train_command": commands.pop(), "psnr_whole": rows}
        data = {"what": existing.get("what", "whole-image PSNR at 20/40/60 % context of training checkpoints, "
                                             f"first {args.images:,} evaluation images"),
                "images": args.images, "runs": runs}
    else:
        data = {"command": command, "images": args.images, "psnr_whole": rows}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data, indent=1) + "\n")
    return 0


def _load(folder: str, shipped: dict, images, parser: argparse.ArgumentParser):
    """(model, step, model name, seed, training command) of a checkpoint folder or of shipped weights."""
    if not Path(folder).is_dir() and folder in shipped:
        return _shipped(folder, shipped[folder], parser)
    state = load_checkpoint(Path(folder))
    if state is None:
        parser.error(f"{folder} holds no checkpoint.json / checkpoint.safetensors, and it is not the name of "
                     "shipped weights (ifanp/weights/registry.json lists them)")
    cfg = TrainConfig.from_json(state["config"])
    model = build(cfg.model, channels=images.shape[1], size=images.shape[-1], **cfg.overrides)
    model.load_state_dict(state["model"])
    return model, int(state["step"]), cfg.model, cfg.seed, command_for(cfg)


def _shipped(name: str, entry: dict, parser: argparse.ArgumentParser):
    """(model, step, model name, seed, training command) of shipped weights from their registry entry."""
    command = entry.get("command", "")
    found = re.search(r"--model (\S+)", command)
    if found is None or "steps" not in entry or "seed" not in entry:
        parser.error(f"{name} records no training command with --model, steps and seed; evaluate a checkpoint instead")
    if entry.get("dataset") != "mnist":
        parser.error(f"{name} is a {entry.get('dataset')} model; the curves are on MNIST's evaluation images")
    return load_pretrained(name), int(entry["steps"]), found.group(1), int(entry["seed"]), command


if __name__ == "__main__":
    sys.exit(main())
