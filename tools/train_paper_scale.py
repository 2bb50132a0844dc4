#!/usr/bin/env python
"""The paper's ablation at the paper's scale on one CUDA GPU, in one command (issue 12, item 4).

    python tools/train_paper_scale.py --out runs/paper-scale            # the whole ablation, ~9 min wall
    python tools/train_paper_scale.py --out runs/paper-scale --chapters  # then each chapter's TRAIN path

Trains the five faithful configurations ``ifnp-paper``, ``ifanp-lpa-paper``, ``ifanp-se-paper``,
``ifanp-gca-paper`` and ``ifanp-paper`` (full resolution, ConvEncoder1 reading the context's values and
locations, the SPEC's widths c = d_z = d_k = 128; see ``ifanp.models.grid.VARIANTS``) one after the other,
each for an equal share of ``--minutes`` of wall time (the steps are set from the step rate measured after
the warm-up, so that the cosine schedule ends when the share does), with bf16 autocast, large batches,
the training set on the GPU and ``torch.compile`` of the model's forward pass. Writes into ``--out``:

* ``<model>/model.safetensors`` (loadable with ``ifanp.pretrained.load_weights`` and ``python -m ifanp
  evaluate``), ``<model>/log.jsonl`` (one line per logged step: loss, NLL, KL, MSE, seconds);
* ``results.json`` / ``table.md``: each model evaluated with ``ifanp.evaluate.evaluate`` on the 5,000-image
  MNIST subset (or ``--eval-limit``) at 20/40/60 %, ready for ``python -m ifanp reproduce --run
  MODEL=<out>/<model>-paper``;
* ``chapters.json`` with ``--chapters``: every book chapter executed in the smoke profile with
  ``TRAIN = True`` (the Colab GPU route).

Not run in this session (no GPU was lent); its CPU test (tests/test_paper_scale.py) trains two steps of a
tiny configuration through the same code.
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ifanp.data.masks import TRAIN_RATIO_RANGE, random_mask
from ifanp.evaluate import evaluate, markdown_table
from ifanp.models import build
from ifanp.pretrained import save_weights

MODELS = ("ifnp-paper", "ifanp-lpa-paper", "ifanp-se-paper", "ifanp-gca-paper", "ifanp-paper")


def _loss(model, compiled, x, m):
    """The Eq. 6 objective through the public API: ``model.loss`` with the compiled module running the
    forward pass (``net=``), or the compiled ``loss`` itself where the model's loss takes no ``net``."""
    if isinstance(compiled, torch.nn.Module):
        return model.loss(x, m, net=compiled)
    return (compiled or model.loss)(x, m)


def train_one(name: str, images: torch.Tensor, out: Path, seconds: float | None, steps: int | None, batch: int,
              lr: float, device: torch.device, compile_model: bool, overrides: dict, seed: int = 0,
              log_every: int = 50) -> tuple[torch.nn.Module, dict]:
    """Train model ``name`` on uint8 ``images`` (already on ``device``) for ``steps`` or ``seconds``."""
    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    model = build(name, channels=images.shape[1], size=images.shape[-1], **overrides).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, fused=device.type == "cuda")
    compiled = None
    if compile_model:
        compiled = torch.compile(model) if "net" in inspect.signature(model.loss).parameters else torch.compile(model.loss)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    log = (folder / "log.jsonl").open("w")
    n, size = len(images), images.shape[-1]
    warm, total, step, t0 = 20, steps, 0, time.perf_counter()
    t_warm = None
    while True:
        if total is None and step == warm:  # set the schedule's length from the measured step rate
            if device.type == "cuda":
                torch.cuda.synchronize()
            t_warm = time.perf_counter()
        if total is None and step == 2 * warm:
            if device.type == "cuda":
                torch.cuda.synchronize()
            rate = warm / (time.perf_counter() - t_warm)
            total = max(2 * warm + 1, int(2 * warm + rate * (seconds - (time.perf_counter() - t0))))
        if total is not None and step >= total:
            break
        frac = step / total if total else 0.0
        for g in opt.param_groups:  # linear warm-up, cosine decay to 5 %
            g["lr"] = lr * min(1.0, (step + 1) / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        idx = torch.randint(n, (batch,), device=device, generator=gen)
        x = images[idx].float().div_(255)
        m = random_mask(batch, size, TRAIN_RATIO_RANGE, generator=gen, device=device)
        with amp:
            out_ = _loss(model, compiled, x, m)
        opt.zero_grad(set_to_none=True)
        out_.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        step += 1
        if step % log_every == 0 or step == total:
            row = {"step": step, "total_steps": total, "elapsed_s": round(time.perf_counter() - t0, 2),
                   **{k: round(float(getattr(out_, k).detach()), 6) for k in ("loss", "nll", "kl", "mse")}}
            log.write(json.dumps(row) + "\n")
            log.flush()
    log.close()
    model.eval()
    info = {"model": name, "steps": step, "batch": batch, "lr": lr, "epochs": round(step * batch / n, 2),
            "wall_s": round(time.perf_counter() - t0, 1), "device": str(device), "overrides": overrides,
            "command": " ".join(sys.argv)}
    save_weights(model, folder / "model.safetensors", meta=info)
    (folder / "config.json").write_text(json.dumps({**info, "config": model.config}, indent=2) + "\n")
    return model, info


def run_chapters(out: Path, timeout: int = 600) -> list[dict]:
    """Execute every chapter in the smoke profile with ``TRAIN = True`` (its training path, a few steps)."""
    import os

    import nbformat
    from nbclient import NotebookClient

    os.environ["IFANP_PROFILE"] = "smoke"
    report = []
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.source = cell.source.replace("TRAIN = False", "TRAIN = True")
        t0 = time.perf_counter()
        try:
            NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "book")}}).execute()
            ok, err = True, ""
        except Exception as e:  # noqa: BLE001 -- report every chapter, then fail at the end
            ok, err = False, str(e).splitlines()[-1][:500] if str(e) else type(e).__name__
        report.append({"chapter": path.name, "ok": ok, "seconds": round(time.perf_counter() - t0, 1), "error": err})
        print(f"{path.name}: {'ok' if ok else 'FAILED ' + err} ({report[-1]['seconds']} s)", flush=True)
    (out / "chapters.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def run(out: Path, models=MODELS, minutes: float | None = 9.0, steps: int | None = None, batch: int = 256,
        lr: float = 5e-4, device: str = "auto", compile_model: bool = True, overrides: dict | None = None,
        train_images: torch.Tensor | None = None, eval_images: torch.Tensor | None = None,
        eval_indices: torch.Tensor | None = None, eval_limit: int | None = None) -> dict:
    """Train ``models`` and evaluate them; see the module docstring. Returns the results dict."""
    from ifanp.data.splits import load_eval_images, load_train_images

    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    train = (load_train_images("mnist") if train_images is None else train_images).to(dev)
    if eval_images is None:
        eval_images, eval_indices = load_eval_images("mnist")
    if eval_limit:
        eval_images, eval_indices = eval_images[:eval_limit], eval_indices[:eval_limit]
    # Keep ~12 % of the wall time for evaluation and saving.
    share = None if steps else minutes * 60 * 0.88 / len(models)
    results = []
    for name in models:
        model, info = train_one(name, train, out, share, steps, batch, lr, dev, compile_model, overrides or {})
        res = evaluate(model, eval_images, eval_indices, batch_size=500 if dev.type == "cuda" else 50,
                       nll_images=1000 if eval_limit is None else min(eval_limit, 1000), nll_samples=8,
                       progress=False)
        res["label"] = name
        res["training"] = info
        results.append(res)
        print(f"{name}: {info['steps']} steps ({info['epochs']} epochs) in {info['wall_s']} s; PSNR whole "
              + ", ".join(f"{float(r) * 100:g}%: {v['psnr_whole']:.2f}" for r, v in res["ratios"].items()), flush=True)
    summary = {"device": str(dev), "wall_s": round(time.perf_counter() - t_all, 1), "results": results,
               "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "table.md").write_text(f"# Paper-scale ablation ({summary['gpu'] or dev}, {summary['wall_s']} s wall)\n\n"
                                  + markdown_table(results))
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/paper-scale"))
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--minutes", type=float, default=9.0, help="wall time for training all models (default 9)")
    p.add_argument("--steps", type=int, default=None, help="fixed steps per model instead of a time budget")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model option (JSON value)")
    p.add_argument("--eval-limit", type=int, default=None)
    p.add_argument("--chapters", action="store_true", help="then run every chapter's TRAIN = True path (smoke)")
    a = p.parse_args(argv)
    if a.device == "auto" and not torch.cuda.is_available():
        print("no CUDA GPU found: this script is meant for one (pass --device cpu for a tiny check).")
        return 2
    overrides = {}
    for item in a.set:
        if "=" not in item:
            print(f"--set expects KEY=VALUE, got {item!r}.")
            return 2
        k, v = item.split("=", 1)
        try:
            overrides[k] = json.loads(v)
        except json.JSONDecodeError:
            overrides[k] = v
    run(a.out, a.models, a.minutes, a.steps, a.batch, a.lr, a.device, not a.no_compile, overrides,
        eval_limit=a.eval_limit)
    if a.chapters:
        bad = [r for r in run_chapters(a.out) if not r["ok"]]
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
