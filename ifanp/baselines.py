"""Completion rules without learning: what a trained model has to beat (issue 12; SPEC 9.7).

Three rules, each fitted on training images only and each available with the context pasted back
(``paste=True``: the observed pixels are returned as observed) or without:

* :class:`MeanImage` -- the mean training image (with ``paste``: "copy the context, fill in the mean image");
* :class:`NormalisedConvolution` -- ``blur(y * m) / blur(m)`` with a Gaussian blur whose bandwidth is chosen
  on training images (the on-grid density normalisation of ConvCNP, SPEC 4.2, with a fixed kernel);
  where no context pixel lies within the kernel's reach it falls back to the mean of the context;
* :class:`GPRegression` -- per-image Gaussian-process regression on the pixel coordinates with
  :mod:`ifanp.gp` (prior mean: the mean training image; kernel and noise fitted once, by maximum marginal
  likelihood on training images). One batched Cholesky per batch: the contexts are padded to the largest
  one with points so far away that their covariance with every pixel is exactly zero.

Each rule is an :class:`~ifanp.models.base.ImageModel` without a latent that implements ``predict`` (and an
exact ``log_likelihood``), so :func:`ifanp.evaluate.evaluate` and ``python -m ifanp reproduce`` score it like a
model. :func:`fit_baselines` fits all six from a dataset's training images in seconds.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from . import gp as gplib
from .data.masks import random_mask
from .models.base import ImageModel, InputError

#: The rules of Table 1 in ``reproduce``: key -> (class name, paste).
BASELINES = {
    "baseline-mean": ("mean", False),
    "baseline-mean-paste": ("mean", True),
    "baseline-nconv": ("nconv", False),
    "baseline-nconv-paste": ("nconv", True),
    "baseline-gp": ("gp", False),
    "baseline-gp-paste": ("gp", True),
}

LABELS = {
    "baseline-mean": "mean image",
    "baseline-mean-paste": "context + mean image",
    "baseline-nconv": "normalised convolution",
    "baseline-nconv-paste": "context + normalised convolution",
    "baseline-gp": "GP on pixel coordinates",
    "baseline-gp-paste": "context + GP on pixel coordinates",
}

#: Context ratios at which the rules' free parameters are chosen on training images (the test ratios).
FIT_RATIOS = (0.2, 0.4, 0.6)


class FittedRule(ImageModel):
    """A completion rule without learning: subclasses implement ``rule(images, mask) -> (mean, std)``."""

    latent = False

    def __init__(self, name: str, channels: int, size: int, paste: bool, config: dict[str, Any]):
        super().__init__(name, channels, size, {"paste": bool(paste), **config})
        self.paste = bool(paste)

    def rule(self, images: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    def predict(self, images: Tensor, mask: Tensor, samples: int = 0) -> tuple[Tensor, Tensor]:
        """The rule's mean and std (S, B, C, H, W), S = max(samples, 1) identical copies (no latent)."""
        if samples < 0:
            raise InputError(f"samples must be >= 0, got {samples}.")
        images, mask = self.check_inputs(images, mask)
        mean, std = self.rule(images, mask)
        if self.paste:
            mean = images * mask + mean * (1 - mask)
        s = max(samples, 1)
        return mean.unsqueeze(0).expand(s, *mean.shape), std.unsqueeze(0).expand(s, *std.shape)

    def kl(self, images: Tensor, mask: Tensor) -> Tensor:
        return images.new_zeros(images.shape[0])

    def log_likelihood(self, images: Tensor, mask: Tensor, target_mask: Tensor | None = None,
                       samples: int = 16) -> Tensor:
        """Exact Gaussian log p(y_T | context) of the rule's (mean, std), summed over the targets (B,)."""
        mean, std = self.predict(images, mask)
        images, _ = self.check_inputs(images, mask)
        logp = torch.distributions.Normal(mean[0], std[0]).log_prob(images)
        if target_mask is not None:
            logp = logp * target_mask.to(logp)
        return logp.sum(dim=(1, 2, 3))

    def loss(self, images: Tensor, mask: Tensor, target_mask: Tensor | None = None, **_: Any):
        raise InputError(f"{self.name} is a completion rule without learning; it is fitted, not trained.")


class MeanImage(FittedRule):
    """The mean training image; std: the per-pixel training std, floored at ``std_floor``."""

    def __init__(self, mean: Tensor, std: Tensor, paste: bool = False, std_floor: float = 0.1):
        c, h, _ = mean.shape[-3:]
        name = "baseline-mean-paste" if paste else "baseline-mean"
        super().__init__(name, c, h, paste, {"std_floor": std_floor})
        self.register_buffer("mean_image", mean.reshape(1, c, h, h).float())
        self.register_buffer("std_image", std.reshape(1, c, h, h).float().clamp_min(std_floor))

    def rule(self, images: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        return self.mean_image.expand_as(images), self.std_image.expand_as(images)


def gaussian_blur(x: Tensor, bandwidth: float) -> Tensor:
    """Separable Gaussian blur of (B, C, H, W) maps with std ``bandwidth`` pixels, zero padding, radius 3 std."""
    radius = max(1, math.ceil(3 * bandwidth))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / bandwidth) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, radius), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(radius, 0), groups=c)


class NormalisedConvolution(FittedRule):
    """``blur(y * m) / blur(m)`` (the density-normalised convolution); the context mean where blur(m) ~ 0.

    ``sigma``: the homoscedastic predictive std (the RMS error on the missing pixels of training images).
    """

    def __init__(self, bandwidth: float, sigma: float, channels: int = 1, size: int = 28, paste: bool = False,
                 selection: dict[str, float] | None = None):
        if not bandwidth > 0:
            raise InputError(f"bandwidth must be positive, got {bandwidth}.")
        name = "baseline-nconv-paste" if paste else "baseline-nconv"
        super().__init__(name, channels, size, paste, {"bandwidth": float(bandwidth), "sigma": float(sigma),
                                                        "selection": selection or {}})
        self.bandwidth, self.sigma = float(bandwidth), float(sigma)

    def interpolate(self, images: Tensor, mask: Tensor) -> Tensor:
        x = images.double()
        m = mask.double().expand_as(x)
        num, den = gaussian_blur(x * m, self.bandwidth), gaussian_blur(m, self.bandwidth)
        count = m.sum(dim=(2, 3), keepdim=True)
        fallback = (x * m).sum(dim=(2, 3), keepdim=True) / count.clamp_min(1)  # 0 for an empty context
        out = torch.where(den > 1e-9, num / den.clamp_min(1e-300), fallback)
        return out.clamp(0, 1).to(images.dtype)

    def rule(self, images: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        return self.interpolate(images, mask), torch.full_like(images, self.sigma)


class GPRegression(FittedRule):
    """Per-image GP regression of ``y - mean image`` on the (row, column) pixel coordinates, in pixels.

    ``gp``: an :class:`ifanp.gp.GPRegression` with fitted kernel and noise (shared by all images).
    The mean is the posterior mean of f plus the mean image; the std that of a new observation y.
    """

    #: Padding points lie this far apart (in pixels) and from the grid: their covariance is exactly 0.
    FAR = 1e3

    def __init__(self, gp: gplib.GPRegression, mean: Tensor, paste: bool = False, extra: dict | None = None):
        c, h, _ = mean.shape[-3:]
        if c != 1:
            raise InputError("the GP baseline handles grey images (C = 1) only.")
        name = "baseline-gp-paste" if paste else "baseline-gp"
        kernel = gp.kernel
        cfg = {"kernel": "matern" if isinstance(kernel, gplib.Matern) else type(kernel).__name__.lower(),
               "nu": getattr(kernel, "nu", None),
               "lengthscale": float(kernel.lengthscale.detach()), "variance": float(kernel.variance.detach()),
               "noise": float(gp.noise.detach()), **(extra or {})}
        super().__init__(name, c, h, paste, cfg)
        self.gp = copy.deepcopy(gp).requires_grad_(False)
        self.gp.dtype = torch.float32  # fitted in float64; float32 predicts the same to ~1e-5 at a third of the time
        self.register_buffer("mean_image", mean.reshape(1, c, h, h).float())
        rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(h, dtype=torch.float64),
                                    indexing="ij")
        self.register_buffer("grid", torch.stack([rows.flatten(), cols.flatten()], dim=-1), persistent=False)

    def padded_context(self, images: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The contexts as (B, N, 2) coordinates and (B, N) residuals, padded to the largest N with far points."""
        b = images.shape[0]
        flat_m = mask.reshape(b, -1) > 0.5
        resid = (images - self.mean_image).reshape(b, -1).double()
        n = max(int(flat_m.sum(1).max()), 1)
        # Context pixels first (stable order), then the rest, which become padding.
        order = torch.argsort((~flat_m).to(torch.int8), dim=1, stable=True)[:, :n]
        keep = torch.gather(flat_m, 1, order)
        x = self.grid[order]  # (B, n, 2)
        far = self.FAR * (1 + torch.arange(n, dtype=torch.float64, device=x.device))
        pad = torch.stack([far, torch.full_like(far, -self.FAR)], dim=-1).expand(b, n, 2)
        x = torch.where(keep[..., None], x, pad)
        y = torch.where(keep, torch.gather(resid, 1, order), torch.zeros_like(keep, dtype=torch.float64))
        return x, y

    @torch.no_grad()
    def rule(self, images: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        b = images.shape[0]
        x, y = self.padded_context(images, mask)
        mean, std = self.gp.predict(x, y, self.grid, include_noise=True)
        shape = (b, 1, self.size, self.size)
        mean = (mean.view(shape).float() + self.mean_image).clamp(0, 1)
        return mean, std.view(shape).float()


class FastMatern(gplib.Matern):
    """:class:`ifanp.gp.Matern` with the squared distances from one matrix product,
    ``|a|^2 + |b|^2 - 2 a.b``, instead of a (..., N, M, D) difference tensor: the same kernel (a test ties
    them), a fraction of the memory and time on pixel grids."""

    def scaled_sqdist(self, x1: Tensor, x2: Tensor | None = None) -> Tensor:
        x2 = x1 if x2 is None else x2
        ell = self.lengthscale.to(x1)
        a, b = x1 / ell, x2 / ell
        sq = (a * a).sum(-1)[..., :, None] + (b * b).sum(-1)[..., None, :] - 2 * a @ b.transpose(-1, -2)
        return sq.clamp_min(0)


# ---- fitting on training images ----------------------------------------------------------------------


def _float_images(images: Tensor) -> Tensor:
    return images.float().div(255) if images.dtype == torch.uint8 else images.float()


def fit_mean_image(train: Tensor) -> tuple[Tensor, Tensor]:
    """The mean and std training image (1, C, H, W) of uint8 or [0, 1] float images, in chunks."""
    n = len(train)
    s = s2 = 0.0
    for i in range(0, n, 10000):
        x = _float_images(train[i : i + 10000]).double()
        s = s + x.sum(0, keepdim=True)
        s2 = s2 + (x * x).sum(0, keepdim=True)
    mean = s / n
    return mean.float(), (s2 / n - mean * mean).clamp_min(0).sqrt().float()


def _fit_masks(n: int, size: int, seed: int) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [random_mask(n, size, r, generator=g) for r in FIT_RATIOS]


def fit_normalised_convolution(train: Tensor, images: int = 500, seed: int = 0,
                               bandwidths: tuple[float, ...] = (0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0)
                               ) -> tuple[float, float, dict[str, float]]:
    """Choose the blur's bandwidth (pixels) on ``images`` training images: the smallest mean squared error on
    the missing pixels over random contexts at :data:`FIT_RATIOS`. Returns (bandwidth, sigma, {bw: mse})."""
    x = _float_images(train[:images])
    masks = _fit_masks(len(x), x.shape[-1], seed)
    scores = {}
    for bw in bandwidths:
        rule = NormalisedConvolution(bw, 1.0, x.shape[1], x.shape[-1])
        err = [(((rule.interpolate(x, m) - x) ** 2) * (1 - m)).sum() / ((1 - m).sum() * x.shape[1]) for m in masks]
        scores[f"{bw:g}"] = float(torch.stack(err).mean())
    best = min(scores, key=scores.get)
    return float(best), math.sqrt(scores[best]), scores


def fit_gp(train: Tensor, mean: Tensor, images: int = 16, points: int = 200, steps: int = 40, seed: int = 0
           ) -> gplib.GPRegression:
    """Fit the kernel (lengthscale, variance) and the noise once, by maximum marginal likelihood summed over
    ``images`` training images, each observed at ``points`` random pixels (residuals to the mean image)."""
    x = _float_images(train[:images])
    b, _, h, w = x.shape
    g = torch.Generator().manual_seed(seed)
    idx = torch.stack([torch.randperm(h * w, generator=g)[:points] for _ in range(b)])
    resid = (x - mean).reshape(b, -1).double()
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                                indexing="ij")
    grid = torch.stack([rows.flatten(), cols.flatten()], dim=-1)
    model = gplib.GPRegression(FastMatern(2.5, lengthscale=2.0, variance=0.1), noise=1e-2)
    model.fit(grid[idx], torch.gather(resid, 1, idx), steps=steps, lr=0.1)
    return model


def fit_baselines(train: Tensor, seed: int = 0, log=None) -> dict[str, FittedRule]:
    """All six rules of :data:`BASELINES`, fitted on the training images ``train`` (uint8 or [0, 1] float)."""
    t0 = time.perf_counter()
    mean, std = fit_mean_image(train)
    bw, sigma, scores = fit_normalised_convolution(train, seed=seed)
    gp = fit_gp(train, mean, seed=seed)
    c, h = train.shape[1], train.shape[-1]
    rules: dict[str, FittedRule] = {}
    for key, (kind, paste) in BASELINES.items():
        if kind == "mean":
            rules[key] = MeanImage(mean, std, paste)
        elif kind == "nconv":
            rules[key] = NormalisedConvolution(bw, sigma, c, h, paste, scores)
        elif c == 1:
            rules[key] = GPRegression(gp, mean, paste)
    if log:
        log(f"fitted the baselines on training images in {time.perf_counter() - t0:.1f} s: bandwidth {bw:g} px, "
            f"GP lengthscale {float(gp.kernel.lengthscale):.2f} px, noise std {float(gp.noise) ** 0.5:.3f}")
    return rules
