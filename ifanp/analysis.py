"""Numbers about trained image models that the book's figures and tables show (nothing here draws).

* the predictive distribution: :func:`eval_mode`, :func:`mixture_moments` (the one moment-matching formula
  of the mixture over draws of z), :func:`completion_mean` and :func:`predictive_moments`, and
  :func:`make_mask` (the mask of a figure by kind);
* one completion: :func:`psnr_pair`, :func:`explorer_panels` (what the exploration widget shows),
  :func:`response_maps` / :func:`response_locality` (how far the change of one context pixel reaches);
* completions under structured masks (:func:`structured_metrics`) and the calibration of the predictive
  sigma (:func:`coverage`);
* training logs: :func:`first_pass`, :func:`value_at`, :func:`time_to_quality` and :func:`late_gain`;
* comparisons with the paper: :func:`paper_mse`, :func:`goal_rows`, :func:`context_share`, and
  :func:`config_diff` (the options in which two models differ).

Models are :class:`ifanp.models.ImageModel` instances (or duck-typed completion rules, see
:mod:`ifanp.rules`); images are float tensors (N, C, H, W) in [0, 1] and masks (N, 1, H, W) of 0 and 1.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import calibration
from .data.masks import eval_mask, structured_mask
from .metrics import completion_metrics
from .reproduce import PAPER_TABLE1

__all__ = [
    "MASK_CHOICES",
    "PIXEL_GROUPS",
    "completion_mean",
    "config_diff",
    "context_share",
    "coverage",
    "eval_mode",
    "explorer_panels",
    "first_pass",
    "goal_rows",
    "head_to_head",
    "late_gain",
    "loglog_slope",
    "make_mask",
    "mixture_moments",
    "paper_mse",
    "pick_context_pixels",
    "predictive_moments",
    "psnr_pair",
    "response_locality",
    "response_maps",
    "settled_pass",
    "structured_metrics",
    "time_to_quality",
    "value_at",
]


# ---- the predictive distribution ---------------------------------------------------------------------------


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``with eval_mode(model):`` runs the block with the model in eval mode and puts back the mode it had."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def mixture_moments(means: Tensor, stds: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of the equal-weight mixture of N(mu_s, sigma_s^2) over the leading axis S:

        mean = (1/S) sum_s mu_s,     var = (1/S) sum_s sigma_s^2 + (1/S) sum_s (mu_s - mean)^2

    (the decoder's noise plus the spread of the decoded functions). With S = 1 it is that one Gaussian."""
    mean = means.mean(0)
    var = stds.pow(2).mean(0) + (means - mean).pow(2).mean(0)
    return mean, var.sqrt()


def _batch(x: Tensor) -> Tensor:
    """(C, H, W) -> (1, C, H, W); a batch passes through."""
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a torch tensor, got {type(x).__name__}.")
    if x.dim() == 3:
        return x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"expected an image (C, H, W) or a batch (B, C, H, W), got shape {tuple(x.shape)}.")
    return x


@torch.no_grad()
def completion_mean(model, images: Tensor, mask: Tensor, batch_size: int = 50) -> Tensor:
    """The completion ``(B, C, H, W)`` in [0, 1] of ``images`` from ``mask``, on the CPU.

    ``model`` is an :class:`ifanp.models.ImageModel` (its predictive mean with z at the mean of
    q(z | context), clipped to [0, 1] as in :func:`ifanp.evaluate.evaluate`) or any callable
    ``f(images, mask) -> (B, C, H, W)`` (a baseline such as "copy the context, fill in the mean image").
    Images go through the model ``batch_size`` at a time (the pixel-set ANP's attention matrices grow
    with the square of the number of pixels).
    """
    images, mask = _batch(images), _batch(mask)
    if mask.shape[0] == 1 and images.shape[0] > 1:
        mask = mask.expand(images.shape[0], -1, -1, -1)
    outs = []
    for i in range(0, images.shape[0], batch_size):
        x, m = images[i : i + batch_size], mask[i : i + batch_size]
        out = model.complete(x, m).mean if hasattr(model, "complete") else model(x, m)
        outs.append(out.detach().cpu())
    return torch.cat(outs).clamp(0, 1)


@torch.no_grad()
def predictive_moments(model, images: Tensor, mask: Tensor, samples: int = 16) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation ``(B, C, H, W)`` of a model's predictive distribution of y: the mixture
    over ``samples`` draws z_s ~ q(z | context) of N(mu_s, sigma_s^2), moment-matched
    (:func:`mixture_moments`). For a model without a latent it is the decoder's own Gaussian. The model's
    train/eval mode is left as it was."""
    images, mask = model.check_inputs(_batch(images), _batch(mask))
    with eval_mode(model):
        means, stds = model.predict(images, mask, samples=max(int(samples), 1) if model.latent else 0)
    mean, std = mixture_moments(means, stds)
    return mean.cpu(), std.cpu()


#: Mask kinds understood by :func:`make_mask`: ``"random"`` (a ratio) and the structured kinds.
MASK_CHOICES = ("random", "top", "bottom", "left", "right", "centre", "random_box")


def make_mask(kind: str, index: int | Sequence[int], size: int, ratio: float = 0.4, seed: int = 0) -> Tensor:
    """Context masks ``(B, 1, size, size)`` for the test images ``index``.

    ``kind="random"``: the reproducible evaluation mask of each test index at ``ratio``
    (:func:`ifanp.data.eval_mask`, the masks of the paper's protocol); any other kind is a structured mask
    (:func:`ifanp.data.structured_mask`; ``random_box`` is drawn from ``seed``), ``ratio`` is then ignored.
    """
    indices = [int(index)] if isinstance(index, (int, np.integer)) else [int(i) for i in index]
    if kind == "random":
        return eval_mask(indices, size, ratio, seed=seed)
    if kind not in MASK_CHOICES:
        raise ValueError(f"unknown mask kind {kind!r}; use one of {', '.join(MASK_CHOICES)}.")
    return structured_mask(kind, len(indices), size, generator=torch.Generator().manual_seed(seed))


# ---- one completion, and how it answers a change of the context ---------------------------------------------


def psnr_pair(pred: Tensor, truth: Tensor, mask: Tensor) -> tuple[float, float]:
    """(whole-image PSNR, PSNR of the missing pixels) of one completion, in dB with MAX = 1."""
    def batch(x):
        return x.unsqueeze(0) if x.dim() == 3 else x

    m = completion_metrics(batch(pred).float().cpu(), batch(truth).float().cpu(), batch(mask).float().cpu())
    target = float(m["psnr_target"][0]) if float((1 - batch(mask)).sum()) > 0 else float("nan")
    return float(m["psnr_whole"][0]), target



@torch.no_grad()
def explorer_panels(model, image: Tensor, mask: Tensor, samples: int = 3, draws: int = 16) -> dict[str, Tensor]:
    """What the widget shows for one model, one image (C, H, W) and its mask (1, H, W):

    * ``mean`` (C, H, W): the completion with z at the mean of q(z | context), clipped to [0, 1];
    * ``samples`` (S, C, H, W): the decoder's means for the first S of the draws z ~ q(z | context);
    * ``std`` (C, H, W): the standard deviation of the predictive distribution of y, the mixture over
      K = max(S, ``draws``) draws of z: var = (1/K) sum_k sigma_k^2 + (1/K) sum_k (mu_k - mean_k mu_k)^2
      (the decoder's noise plus the spread of the decoded images).

    Two forward passes in all (one for the mean, one batched over the K draws), on the model's device,
    without gradients; seed torch's generator before the call for reproducible draws.
    """
    if samples < 0 or draws < 1:
        raise ValueError(f"samples must be >= 0 and draws >= 1; got samples={samples}, draws={draws}.")
    x, m = model.check_inputs(image.unsqueeze(0), mask.unsqueeze(0))
    with eval_mode(model):
        mean, _ = model.predict(x, m, samples=0)
        k = max(int(samples), int(draws))
        mus, sigmas = model.predict(x, m, samples=k)  # (K, 1, C, H, W)
    _, std = mixture_moments(mus, sigmas)
    return {"mean": mean[0, 0].clamp(0, 1).cpu(), "samples": mus[:samples, 0].clamp(0, 1).cpu(),
            "std": std[0].cpu()}



def pick_context_pixels(image: Tensor, mask: Tensor, count: int = 3, threshold: float = 0.5) -> list[tuple[int, int]]:
    """``count`` observed pixels on the stroke (value above ``threshold``; all observed pixels if there are
    too few), spread out: every k-th of them in reading order. Returns (row, column) pairs."""
    image = image[0] if image.dim() == 4 else image
    m = (mask.reshape(image.shape[-2:]) > 0)
    stroke = m & (image.mean(0) > threshold)
    pool = stroke if int(stroke.sum()) >= count else m
    where = pool.flatten().nonzero().flatten()
    if len(where) == 0:
        raise ValueError("the mask observes no pixel.")
    chosen = where[torch.linspace(0, len(where) - 1, min(count, len(where))).round().long()]
    w = image.shape[-1]
    return [(int(k) // w, int(k) % w) for k in chosen]



@torch.no_grad()
def response_maps(model, image: Tensor, mask: Tensor, pixels: Sequence[tuple[int, int]]) -> Tensor:
    """How the completion changes when ONE observed pixel changes: for each (row, column) in ``pixels`` (each
    must be observed), the pixel's value y is replaced by 1 - y (black <-> white, every channel) and the
    map |mu' - mu| (summed over channels) of the change of the predicted mean (z at the mean of
    q(z | context)) is returned: (P, H, W). One batched forward pass."""
    image = image[0] if image.dim() == 4 else image
    mask = mask[0] if mask.dim() == 4 else mask
    for r, c in pixels:
        if mask[0, r, c] <= 0:
            raise ValueError(f"pixel ({r}, {c}) is not in the context; only observed pixels can be changed.")
    p = len(pixels)
    batch = image.unsqueeze(0).repeat(p + 1, 1, 1, 1)
    for i, (r, c) in enumerate(pixels, start=1):
        batch[i, :, r, c] = 1 - batch[i, :, r, c]
    masks = mask.unsqueeze(0).expand(p + 1, -1, -1, -1)
    with eval_mode(model):
        mean, _ = model.predict(*model.check_inputs(batch, masks), samples=0)
    mean = mean[0].cpu()
    return (mean[1:] - mean[:1]).abs().sum(1)



def response_locality(maps: Tensor, pixels: Sequence[tuple[int, int]], radius: float = 3.0) -> Tensor:
    """For each response map (P, H, W) of :func:`response_maps`: the share of the total change that falls
    within ``radius`` pixels of the changed pixel, divided by the share of the image's pixels that lie
    there. 1: the change is spread as if distance did not matter; much more than 1: the change stays
    near the pixel that caused it. Maps without any change give nan."""
    h, w = maps.shape[-2:]
    rows = torch.arange(h).view(h, 1).float()
    cols = torch.arange(w).view(1, w).float()
    out = []
    for m, (r, c) in zip(maps, pixels):
        near = ((rows - r) ** 2 + (cols - c) ** 2) <= radius**2
        total = float(m.sum())
        out.append(float(m[near].sum()) / total / float(near.float().mean()) if total > 0 else float("nan"))
    return torch.tensor(out)



# ---- structured masks and calibration ------------------------------------------------------------------------


@torch.no_grad()
def structured_metrics(models: Mapping[str, Any], images: Tensor, kinds: Sequence[str], seed: int = 0,
                       batch_size: int = 250) -> dict[str, dict[str, dict[str, float]]]:
    """Mean whole-image and missing-pixel PSNR (and the mean whole-image MSE) of every model under each
    structured mask kind, on float ``images`` (N, C, H, W) in [0, 1]: ``{kind: {label: {...}}}``.
    ``random_box`` draws one box per image from ``seed``."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for kind in kinds:
        mask = structured_mask(kind, len(images), images.shape[-1], generator=torch.Generator().manual_seed(seed))
        out[kind] = {}
        for label, model in models.items():
            pred = completion_mean(model, images, mask, batch_size=batch_size)
            m = completion_metrics(pred, images, mask)
            out[kind][label] = {"psnr_whole": float(m["psnr_whole"].mean()),
                                "psnr_target": float(m["psnr_target"].mean()),
                                "mse_whole": float(m["mse_whole"].mean()), "observed": float(mask.mean())}
    return out


#: Pixel groups for :func:`coverage`, by the true value: all, background (below 0.05), stroke (above 0.5).
PIXEL_GROUPS = {"all": (-1.0, 2.0), "background": (-1.0, 0.05), "stroke": (0.5, 2.0)}


@torch.no_grad()
def coverage(model, images: Tensor, mask: Tensor, ks: Sequence[float], samples: int = 8,
             batch_size: int = 100, seed: int = 0, groups: Sequence[str] = ("all",)) -> dict[str, np.ndarray]:
    """The fraction of missing pixels whose true value lies inside mean +- k sigma of the model's predictive
    distribution of y, for each k in ``ks`` and each group of :data:`PIXEL_GROUPS` in ``groups`` (pixels
    selected by their true value): ``{group: array over ks}``. The predictive is the mixture over ``samples``
    draws z ~ q(z | context), moment-matched (:func:`predictive_moments`): sigma includes the decoder's
    sigma and the spread of the decoded means. A calibrated Gaussian predictive covers erf(k / sqrt 2) of
    them (68.3 % at k = 1, 95.4 % at k = 2)."""
    unknown = [g for g in groups if g not in PIXEL_GROUPS]
    if unknown:
        raise ValueError(f"groups must be among {', '.join(PIXEL_GROUPS)}; got {unknown}.")
    torch.manual_seed(seed)
    ks_t = torch.as_tensor(list(ks), dtype=torch.float32)
    inside = {g: torch.zeros(len(ks_t), dtype=torch.float64) for g in groups}
    count = dict.fromkeys(groups, 0.0)
    for i in range(0, len(images), batch_size):
        x, m = images[i : i + batch_size], mask[i : i + batch_size]
        mean, std = predictive_moments(model, x, m, samples=samples)
        z = ((x - mean).abs() / std).flatten()  # standardised error of every pixel value
        missing, truth = (1 - m).expand_as(x).flatten() > 0, x.flatten()
        for g in groups:
            lo, hi = PIXEL_GROUPS[g]
            zg = z[missing & (truth > lo) & (truth < hi)]
            inside[g] += (zg[None, :] <= ks_t[:, None]).sum(1).double()
            count[g] += float(zg.numel())
    return {g: (inside[g] / max(count[g], 1.0)).numpy() for g in groups}


#: The measures of :func:`head_to_head`, each with whether larger is better.
HEAD_TO_HEAD_MEASURES: dict[str, bool | None] = {
    "psnr_target_random": True, "psnr_target_top": True, "psnr_target_centre": True,
    "ece_points": False, "coverage_68": None,  # coverage: closest to 68.3 % is better
    "parameters": False, "train_cpu_min": False, "ms_per_image": False,
}


@torch.no_grad()
def head_to_head(models: Mapping[str, Any], images: Tensor, indices: Sequence[int] | Tensor, ratio: float = 0.4,
                 samples: int = 8, reg: Mapping[str, Any] | None = None, names: Mapping[str, str] | None = None,
                 timing_batch: int = 100) -> dict[str, dict[str, float | None]]:
    """What a neural process claims to give over a VAE, measured for each of ``models`` (label -> model) on
    float ``images`` (N, C, H, W) in [0, 1] with evaluation indices ``indices``:

    * ``psnr_target_random`` / ``_top`` / ``_centre``: missing-pixel PSNR from ``ratio`` random pixels, from the
      top half, and with the centre box hidden (any context set: the structured masks of
      :func:`structured_metrics`);
    * ``ece_points`` and ``coverage_68``: the calibration of the predictive distribution on the missing pixels
      at ``ratio`` (its own distribution, the mixture over ``samples`` draws of z; :mod:`ifanp.calibration`),
      in percentage points;
    * ``parameters``, ``train_cpu_min`` (from the registry entry ``names[label]`` of ``reg``; None without
      it) and ``ms_per_image`` (the predictive mean of a batch of ``timing_batch`` images, best of 3, in the
      calling process's threads).
    """
    import time

    mask = eval_mask(indices, images.shape[-1], ratio)
    struct = structured_metrics(models, images, ("top", "centre"))
    out: dict[str, dict[str, float | None]] = {}
    for label, model in models.items():
        with eval_mode(model):
            truth = completion_metrics(completion_mean(model, images, mask), images, mask)
            pit = calibration.model_pit(model, images, mask, samples=samples)["pit"]
            cov = calibration.coverage(pit)
            x, m = images[:timing_batch], mask[:timing_batch]
            best = math.inf
            for _ in range(3):
                t0 = time.perf_counter()
                model.complete(x, m)
                best = min(best, time.perf_counter() - t0)
        entry = (reg or {}).get((names or {}).get(label, ""), {})
        cpu = entry.get("cpu_time_s")
        out[label] = {
            "psnr_target_random": float(truth["psnr_target"].mean()),
            "psnr_target_top": struct["top"][label]["psnr_target"],
            "psnr_target_centre": struct["centre"][label]["psnr_target"],
            "ece_points": 100 * calibration.calibration_error(pit),
            "coverage_68": 100 * cov[0.683],
            "parameters": float(sum(p.numel() for p in model.parameters())),
            "train_cpu_min": cpu / 60 if cpu is not None and not math.isnan(cpu) else None,
            "ms_per_image": 1000 * best / len(x),
        }
    return out


def head_to_head_winner(results: Mapping[str, Mapping[str, float | None]], measure: str) -> str | None:
    """The label that is ahead on ``measure`` (:data:`HEAD_TO_HEAD_MEASURES`; coverage: nearest 68.3 %), or
    None when a value is missing or all are equal."""
    values = {k: v[measure] for k, v in results.items()}
    if any(v is None for v in values.values()) or len(set(values.values())) < 2:
        return None
    higher = HEAD_TO_HEAD_MEASURES[measure]
    if higher is None:
        return min(values, key=lambda k: abs(values[k] - 68.3))
    return (max if higher else min)(values, key=values.get)


# ---- training logs: time to quality ------------------------------------------------------------------------


def first_pass(evals: Sequence[Mapping[str, float]], level: float, key: str = "psnr40") -> dict[str, float] | None:
    """The first eval row whose ``key`` reaches ``level`` (the registry's ``evals``, in training order), or None."""
    for row in evals:
        if row.get(key) is not None and row[key] >= level:
            return dict(row)
    return None


def settled_pass(evals: Sequence[Mapping[str, float]], level: float, key: str = "psnr40") -> dict[str, float] | None:
    """The first eval row from which every later row also reaches ``level``: where a noisy curve passes it for
    good (at or after :func:`first_pass`); None when the last row is below ``level``."""
    out = None
    for row in evals:
        if row.get(key) is not None and row[key] >= level:
            out = out or dict(row)
        else:
            out = None
    return out


def value_at(evals: Sequence[Mapping[str, float]], cpu_s: float, key: str = "psnr40") -> dict[str, float] | None:
    """The last eval row logged at or before ``cpu_s`` CPU seconds of training (None if there is none)."""
    rows = [r for r in evals if r.get("cpu_s") is not None and r["cpu_s"] <= cpu_s and r.get(key) is not None]
    return dict(rows[-1]) if rows else None


def time_to_quality(reg: Mapping[str, Any], names: Sequence[str], level: float) -> list[dict[str, Any]]:
    """For every registry name: the training CPU minutes, wall minutes and steps at which its held-out PSNR at
    40 % first reached ``level`` (None when it never did), the final value and the run's total CPU minutes."""
    out = []
    for name in names:
        entry = reg.get(name)
        if entry is None:
            out.append({"name": name, "present": False})
            continue
        ev = entry.get("evals") or []
        hit = first_pass(ev, level)
        cpu = entry.get("cpu_time_s")
        out.append({"name": name, "present": True, "evals": len(ev), "reached": hit is not None,
                    "cpu_min": hit["cpu_s"] / 60 if hit and hit.get("cpu_s") is not None else None,
                    "wall_min": hit["elapsed_s"] / 60 if hit and hit.get("elapsed_s") is not None else None,
                    "step": hit["step"] if hit else None,
                    "final_psnr40": ev[-1]["psnr40"] if ev else entry.get("psnr40_first1000_fp32"),
                    "total_cpu_min": cpu / 60 if cpu is not None and not math.isnan(cpu) else None,
                    "steps": entry.get("steps")})
    return out


def late_gain(evals: Sequence[Mapping[str, float]], fraction: float = 0.25) -> dict[str, float] | None:
    """The held-out PSNR gained over the last ``fraction`` of a training log: ``gain`` (dB), ``cpu_min`` spent,
    ``per_cpu_min`` and the ``final`` value; None for logs shorter than 4 rows."""
    if len(evals) < 4:
        return None
    start = evals[max(round(len(evals) * (1 - fraction)) - 1, 0)]
    gain = evals[-1]["psnr40"] - start["psnr40"]
    minutes = (evals[-1]["cpu_s"] - start["cpu_s"]) / 60
    return {"gain": gain, "cpu_min": minutes, "per_cpu_min": gain / max(minutes, 1e-9), "final": evals[-1]["psnr40"]}


# ---- comparisons with the paper ------------------------------------------------------------------------------


def paper_mse(psnr_db: float | Sequence[float]) -> float | list[float]:
    """The MSE implied by a PSNR at MAX = 1: 10^(-PSNR / 10) (exact for the PSNR of a mean MSE; for a mean of
    per-image PSNRs it is the geometric mean of the per-image MSEs, which is smaller than their mean)."""
    if isinstance(psnr_db, (int, float)):
        return 10 ** (-psnr_db / 10)
    return [10 ** (-p / 10) for p in psnr_db]


def goal_rows(results: Mapping[str, Mapping[str, Mapping[str, float]]], goal: Sequence[float],
              ratios: Sequence[str] = ("0.2", "0.4", "0.6")) -> list[dict[str, Any]]:
    """For each model's per-ratio results (``evaluate(...)["ratios"]``): its whole-image PSNR, the goal, the
    paper's IFANP, the differences, and whether the goal is met at every ratio (``met``)."""
    paper = PAPER_TABLE1["ifanp"]["psnr"]
    out = []
    for model, res in results.items():
        vals = [res[r]["psnr_whole"] for r in ratios]
        out.append({"model": model, "psnr": vals, "goal": list(goal), "paper": list(paper),
                    "to_goal": [v - g for v, g in zip(vals, goal)], "to_paper": [v - p for v, p in zip(vals, paper)],
                    "met": [v >= g for v, g in zip(vals, goal)]})
    return out


def context_share(mse_whole: float, mse_target: float, ratio: float, pixels: int = 784) -> dict[str, float]:
    """Split a mean whole-image MSE into its context and missing-pixel parts with eq. (exp-split),
    MSE = rho MSE_context + (1 - rho) MSE_missing, rho = round(ratio * pixels) / pixels (exact per image,
    hence for the means): the mean MSE on the context pixels and their ``share`` of the whole-image MSE."""
    rho = round(ratio * pixels) / pixels
    context = max((mse_whole - (1 - rho) * mse_target) / rho, 0.0)
    return {"rho": rho, "mse_context": context, "share": rho * context / mse_whole if mse_whole > 0 else 0.0}


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """The options (name, value in a, value in b) in which two model configurations differ, in a's order."""
    keys = list(a) + [k for k in b if k not in a]
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]


# ---- scaling -------------------------------------------------------------------------------------------------


def loglog_slope(n, t) -> tuple[float, float]:
    """Least-squares line through ``(log n, log t)``: returns ``(slope, intercept)``, t ~ e^b n^slope."""
    n, t = (np.asarray(v.detach().cpu() if isinstance(v, Tensor) else v, dtype=float) for v in (n, t))
    if n.shape != t.shape or n.ndim != 1 or len(n) < 2:
        raise ValueError(f"loglog_slope needs two 1-D arrays of equal length >= 2, got {n.shape} and {t.shape}.")
    if np.any(n <= 0) or np.any(t <= 0):
        raise ValueError("loglog_slope needs positive sizes and times.")
    slope, intercept = np.polyfit(np.log(n), np.log(t), 1)
    return float(slope), float(intercept)
