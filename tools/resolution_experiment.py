"""Does LPA need full resolution? The experiment behind the "LPA on top of GCA" row of the claims table.

The shipped ablation runs LPA, ConvEncoder2 and GCA at 14x14 (ConvEncoder1's stride 2, ``down=2``); there
LPA's two 3x3 poolings reach 7x7 cells, half the image. The hypothesis (experiments chapter): that is why the
full IFANP falls below IFANP(GCA). The test: train the shipped recipe again with only ``--set down=1``
(every map at 28x28, the paper's resolution) and compare the held-out PSNR at 40 % context (the first 1,000
evaluation images, every 250 steps, as every shipped run logs it) with the shipped 14x14 runs at the same
step of the same 3,000-step schedule. Full resolution costs several times the CPU per step (four times the
pixels in every map after the stem), so the runs stop after ``--until`` steps (``--stop-after``, with a
checkpoint) and can be continued later with a larger ``--until``:

    IFANP_THREADS=1 python tools/resolution_experiment.py train [--models ifanp ifanp-gca] [--until 1000]
    python tools/resolution_experiment.py collect      # -> ifanp/experiments/mnist-resolution.json

``collect`` reads the runs' logs and the shipped runs' logs (registry ``evals``, up to the longest run's last
step) and writes one JSON file that the experiments chapter reads (:func:`ifanp.reporting_faithful.resolution_evidence`
compares the runs at the last step that every full-resolution run has reached).
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from ifanp.pretrained import pretrained_name, registry
from ifanp.recipes import recipe
from ifanp.runlog import read_log

RUNS = Path("runs/resolution")
OUT = Path("ifanp/experiments/mnist-resolution.json")  # ships with the package: the chapter reads it
MODELS = ("ifanp", "ifanp-gca")


def train_args(model: str, until: int) -> list[str]:
    """The shipped recipe of ``model`` (seed 0), with every map at full resolution, stopped after ``until``."""
    r = recipe(model, 0)
    if r is None:
        raise SystemExit(f"resolution_experiment: no shipped recipe for {model!r}")
    args = r.train_args()
    out = args.index("--out")
    args[out + 1] = str(RUNS / f"{model}-down1-s0")
    return [*args, "--set", "down=1", "--no-progress", "--stop-after", str(until)]


def train(models: list[str], until: int) -> int:
    for model in models:
        args = train_args(model, until)
        folder = Path(args[args.index("--out") + 1])
        cmd = [sys.executable, "-m", "ifanp", "train", *args] + (["--resume"] if (folder / "checkpoint.json").is_file() else [])
        print("+", shlex.join(cmd), flush=True)
        rc = subprocess.call(cmd)
        if rc:
            return rc
    return 0


def _evals(rows, until: int) -> list[dict]:
    return [{k: r[k] for k in ("step", "psnr40", "cpu_s")} for r in rows if r.get("kind", "eval") == "eval"
            and r.get("psnr40") is not None and r["step"] <= until]


def _last_step(evals: list[dict]) -> int:
    return max((e["step"] for e in evals), default=0)


def collect() -> int:
    reg = registry()
    # A run folder of an earlier session may be gone (runs/ is not committed): keep its recorded result then,
    # unless the folder here has got at least as far.
    recorded = {r["model"]: r for r in (json.loads(OUT.read_text())["runs"] if OUT.is_file() else [])
                if r.get("down") == 1}
    full = []
    for model in MODELS:
        folder = RUNS / f"{model}-down1-s0"
        evals = _evals(read_log(folder), 10**9)
        old = recorded.get(model)
        if old and _last_step(evals) < _last_step(old["evals"]):
            print(f"{model}: keeping the recorded full-resolution run (to step {_last_step(old['evals'])})")
            full.append(old)
        elif evals:
            command = "python -m ifanp train " + shlex.join(train_args(model, _last_step(evals)))
            full.append({"model": model, "down": 1, "seed": 0, "source": str(folder), "command": command,
                         "evals": evals})
    if not full:
        print(f"resolution_experiment: no full-resolution run under {RUNS}/ yet; run `train` first", file=sys.stderr)
        return 1
    step = min(_last_step(r["evals"]) for r in full)  # every full-resolution run has this step
    longest = max(_last_step(r["evals"]) for r in full)
    shipped = []
    for model in MODELS:
        for seed in (0, 1, 2):
            name = pretrained_name(model, "mnist", seed)
            if name in reg:
                shipped.append({"model": model, "down": 2, "seed": seed, "source": name,
                                "command": reg[name].get("command", "?"),
                                "evals": _evals(reg[name].get("evals", []), longest)})
    data = {"what": "held-out whole-image PSNR at 40 % context, first 1,000 evaluation images, by training step; "
                    "down=1: every map at 28x28, down=2: the shipped 14x14",
            "command": "IFANP_THREADS=1 python tools/resolution_experiment.py train --models MODEL --until STEP "
                       "(each run's own command below) && python tools/resolution_experiment.py collect",
            "compare_step": step, "runs": full + shipped}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {OUT}: {len(full)} full-resolution and {len(shipped)} shipped runs, compared at step {step}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train (or continue) the full-resolution runs")
    t.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    t.add_argument("--until", type=int, default=1000, help="stop after this step of the 3,000-step schedule")
    sub.add_parser("collect", help="write ifanp/experiments/mnist-resolution.json")
    args = p.parse_args()
    return train(args.models, args.until) if args.cmd == "train" else collect()


if __name__ == "__main__":
    raise SystemExit(main())
