"""Evaluation under the paper's protocol, and the ``python -m ifanp evaluate`` command.

For each context ratio (default 20 / 40 / 60 %), every evaluation image gets the reproducible mask
:func:`ifanp.data.masks.eval_mask` (it depends only on the image's index in the test split, the ratio
and the seed, so every model sees the same contexts). Reported per ratio:

* ``psnr_whole`` — the paper's protocol: PSNR with MAX = 1 over the whole image (context pixels
  included), the mean of per-image PSNR; ``psnr_whole_of_mean_mse`` — the PSNR of the mean MSE;
* ``psnr_target`` / ``mse_target`` — over the missing pixels only (the paper does not report these);
* ``mse_whole``; ``ssim`` (whole image);
* ``kl`` — the first term of Eq. 6, KL(q(z | full image) || q(z | context)), summed over latent
  dimensions, mean over images (``kl_per_dim`` divides by d_z); only for models with the Eq. 6 latent;
* ``nll_per_pixel`` — minus the (importance-sampled) predictive log-likelihood of the missing pixels,
  per pixel value, in nats, on the first ``nll_images`` images.

Completions use z = the mean of q(z | context) (the SPEC's deterministic evaluation).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .config import get_device
from .data.masks import TEST_RATIOS, eval_mask
from .data.splits import DATASETS, load_eval_images
from .metrics import completion_metrics, psnr, ssim
from .models.base import ImageModel
from .pretrained import WeightsError, available, load_pretrained, load_weights, write_text_atomic

METRIC_LABELS = {
    "psnr_whole": "PSNR whole (dB)",
    "psnr_target": "PSNR target (dB)",
    "mse_whole": "MSE whole",
    "mse_target": "MSE target",
    "ssim": "SSIM",
    "kl": "KL (Eq. 6)",
    "nll_per_pixel": "NLL/pixel (nats)",
}


def resolve_model(ref: str | Path | nn.Module, device: str | torch.device = "cpu") -> tuple[ImageModel, str]:
    """A model from a run folder, a ``.safetensors`` file, or a pretrained name; returns (model, label)."""
    if isinstance(ref, nn.Module):
        return ref.to(device).eval(), getattr(ref, "name", "model")
    path = Path(ref)
    if path.is_dir():
        final = path / "model.safetensors"
        if not final.is_file():
            raise WeightsError(f"{path} holds no model.safetensors: the run has not finished "
                               "(continue it with `python -m ifanp train ... --resume`).")
        return load_weights(final, device=device), str(path)
    if path.suffix == ".safetensors":
        return load_weights(path, device=device), str(path)
    if str(ref) in available():
        return load_pretrained(str(ref), device=device), str(ref)
    raise WeightsError(f"{ref!r} is neither a run folder, a .safetensors file nor a pretrained name "
                       f"({', '.join(available()) or 'none installed'}).")


@torch.no_grad()
def evaluate(
    model: ImageModel,
    images: torch.Tensor,
    indices: torch.Tensor,
    ratios: tuple[float, ...] = TEST_RATIOS,
    batch_size: int = 50,
    nll_images: int = 1000,
    nll_samples: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``model`` on uint8 ``images`` (N, C, H, W) whose test-split ``indices`` fix the masks."""
    for r in ratios:
        if not 0.0 <= r <= 1.0:
            raise ValueError(f"context ratios must lie in [0, 1]; got {r}.")
    model.eval()
    dev = model.device
    n = len(images)
    results: dict[str, Any] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n * len(ratios), desc=f"evaluate {model.name}", unit="img", leave=False)
    t0 = time.perf_counter()
    gen_state = torch.get_rng_state()
    torch.manual_seed(seed)
    for ratio in ratios:
        acc: dict[str, list[torch.Tensor]] = {k: [] for k in ("mse_whole", "mse_target", "psnr_whole", "psnr_target",
                                                               "ssim", "kl", "nll")}
        for i in range(0, n, batch_size):
            x = images[i : i + batch_size].to(dev).float().div(255)
            m = eval_mask(indices[i : i + batch_size], x.shape[-1], ratio).to(dev)
            if isinstance(model, ImageModel):  # one forward pass: the prediction and, for latent models, the KL
                out = model(x, m, full=model.latent)
                means, kl = out.mean, out.kl
            else:  # any object with predict (and kl when latent), e.g. a hand-written completion rule
                means, _ = model.predict(x, m, samples=0)
                kl = model.kl(x, m) if model.latent else None
            pred = means[0].clamp(0, 1)
            met = completion_metrics(pred, x, m)
            for k in ("mse_whole", "mse_target", "psnr_whole", "psnr_target"):
                acc[k].append(met[k].cpu())
            acc["ssim"].append(ssim(pred, x).cpu())
            if model.latent:
                acc["kl"].append(kl.cpu())
            if i < nll_images and nll_samples > 0 and ratio < 1.0:
                take = min(len(x), nll_images - i)
                xs, ms = x[:take], m[:take]
                target = 1 - ms
                ll = model.log_likelihood(xs, ms, target_mask=target, samples=nll_samples)
                count = target.sum(dim=(1, 2, 3)) * x.shape[1]
                acc["nll"].append((-ll / count).cpu())
            if bar is not None:
                bar.update(len(x))
        cat = {k: torch.cat(v) for k, v in acc.items() if v}
        mse_w = cat["mse_whole"]
        row = {
            "psnr_whole": float(cat["psnr_whole"].mean()),
            "psnr_whole_sd": float(cat["psnr_whole"].std()),
            "psnr_whole_of_mean_mse": float(10 * torch.log10(1.0 / mse_w.mean())),
            "psnr_target": float(cat["psnr_target"][torch.isfinite(cat["psnr_target"])].mean()),
            "mse_whole": float(mse_w.mean()),
            "mse_target": float(cat["mse_target"].mean()),
            "ssim": float(cat["ssim"].mean()),
            "kl": float(cat["kl"].mean()) if "kl" in cat else None,
            "kl_per_dim": float(cat["kl"].mean()) / model.config.get("z_dim", 1) if "kl" in cat else None,
            "nll_per_pixel": float(cat["nll"].mean()) if "nll" in cat else None,
            "nll_images": int(cat["nll"].numel()) if "nll" in cat else 0,
        }
        results[f"{ratio:g}"] = row
    torch.set_rng_state(gen_state)
    if bar is not None:
        bar.close()
    return {
        "model": model.name,
        "config": model.config,
        "parameters": model.num_parameters(),
        "images": n,
        "ratios": results,
        "protocol": {"mask": "eval_mask(test index, ratio, seed)", "seed": seed, "z": "mean of q(z|context)",
                     "max_val": 1.0, "nll_samples": nll_samples},
        "seconds": round(time.perf_counter() - t0, 1),
    }


@torch.no_grad()
def quick_psnr(model: ImageModel, images: Tensor, indices: Tensor, ratio: float = 0.4, batch: int = 500) -> float:
    """Mean whole-image PSNR (MAX = 1) of the completions at ``ratio`` context (eval masks, z = mean)."""
    was = model.training
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        x = images[i : i + batch].float().div(255).to(model.device)
        m = eval_mask(indices[i : i + batch], x.shape[-1], ratio).to(model.device)
        mean, _ = model.predict(x, m, samples=0)
        out.append(psnr(mean[0].clamp(0, 1), x))
    model.train(was)
    return float(torch.cat(out).mean())


def markdown_table(results: list[dict[str, Any]], metrics: tuple[str, ...] = ("psnr_whole", "psnr_target", "mse_whole",
                                                                             "kl", "nll_per_pixel")) -> str:
    """One row per model, one column per (metric, ratio)."""
    ratios = list(results[0]["ratios"])
    head = ["model"] + [f"{METRIC_LABELS[m]} {float(r) * 100:g}%" for m in metrics for r in ratios]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for res in results:
        cells = [res.get("label", res["model"])]
        for m in metrics:
            for r in ratios:
                v = res["ratios"][r].get(m)
                cells.append("—" if v is None or (isinstance(v, float) and math.isnan(v)) else _fmt(m, v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(metric: str, v: float) -> str:
    if metric.startswith("psnr"):
        return f"{v:.2f}"
    if metric.startswith("mse") or metric == "kl":
        return f"{v:.4g}"
    return f"{v:.3f}"


# ---- python -m ifanp evaluate ------------------------------------------------------------------------


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a run folder, a .safetensors file, or a pretrained name (e.g. mnist-ifanp)")
    parser.add_argument("--dataset", choices=DATASETS, default="mnist")
    parser.add_argument("--ratios", type=float, nargs="+", default=list(TEST_RATIOS), help="context ratios")
    parser.add_argument("--full-test", action="store_true", help="all test images instead of the 5,000 subset")
    parser.add_argument("--limit", type=int, default=None, help="only the first N evaluation images (quick checks)")
    parser.add_argument("--nll-images", type=int, default=1000, help="images used for the NLL (default 1000)")
    parser.add_argument("--nll-samples", type=int, default=8, help="importance samples for the NLL (default 8)")
    parser.add_argument("--batch-size", type=int, default=50,
                        help="images per batch (default 50: the 8-sample NLL of larger CPU batches makes "
                             "tensors above glibc's mmap threshold, and the page faults cost more than "
                             "the batching saves; raise it on a GPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=None, help="folder for results.json and results.md "
                        "(default: the run folder, or results/<name>)")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--protocol", choices=["paper", "npf"], default="paper",
                        help="paper: PSNR at the context ratios (default); npf: the Neural Process Family's "
                             "log-likelihood per image (32x32 MNIST, 0-30%% context, all pixels targets; ifanp.npf)")
    parser.add_argument("--npf-samples", type=int, default=32,
                        help="z samples of the latent models' log-likelihood under --protocol npf (default 32)")


def run_evaluate(args: argparse.Namespace) -> int:
    if getattr(args, "protocol", "paper") == "npf":
        from .npf import run_npf_evaluate

        model, label = resolve_model(args.model, get_device(args.device))
        if not isinstance(model, ImageModel):
            raise ValueError(f"{label} is not an image model; --protocol npf evaluates image models.")
        return run_npf_evaluate(args, model, label)

    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be a positive number of images.")
    for flag, least in (("batch_size", 1), ("nll_images", 0), ("nll_samples", 0)):
        if getattr(args, flag) < least:
            raise ValueError(f"--{flag.replace('_', '-')} must be a whole number >= {least}, got {getattr(args, flag)}.")
    bad = [r for r in args.ratios if not 0.0 <= r < 1.0]
    if bad:
        raise ValueError(f"--ratios must lie in [0, 1) (at 1 no pixel is left to complete); got {bad[0]:g}.")
    out = args.out or (Path(args.model) if Path(args.model).is_dir() else None)
    if out is not None and out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; pass a folder for results.json and results.md.")
    model, label = resolve_model(args.model, get_device(args.device))
    if not isinstance(model, ImageModel):
        raise ValueError(  # noqa: TRY004 - a wrong name on the command line: exit status 2
            f"{label} is a 1-D model (python -m ifanp train1d evaluates those); evaluate takes image "
            "models: a run folder, a .safetensors file or a pretrained image model such as mnist-ifanp.")
    out = out or Path("results") / Path(label).stem
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; pass --out with a folder for results.json and results.md.")
    images, indices = load_eval_images(args.dataset, args.full_test)
    if images.shape[1:] != (model.channels, model.size, model.size):
        raise ValueError(f"{label} expects {model.channels}x{model.size}x{model.size} images but {args.dataset} has "
                         f"{'x'.join(map(str, images.shape[1:]))}; evaluate it on the dataset it was trained on.")
    if args.limit:
        images, indices = images[: args.limit], indices[: args.limit]
    res = evaluate(model, images, indices, tuple(args.ratios), args.batch_size, args.nll_images, args.nll_samples,
                   progress=not args.quiet)
    res.update(label=label, dataset=args.dataset, full_test=args.full_test)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "results.json", json.dumps(res, indent=2) + "\n")
    table = markdown_table([res])
    write_text_atomic(out / "results.md", f"# {label} on {args.dataset} ({res['images']:,} images)\n\n{table}")
    print(table, end="")
    print(f"wrote {out / 'results.json'} and {out / 'results.md'} ({res['seconds']:.0f} s)")
    return 0
