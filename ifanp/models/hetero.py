"""A convolutional conditional neural process with a per-pixel (heteroscedastic) predictive std.

Built for the Neural Process Family's image protocol (``ifanp.npf``: 32 x 32 MNIST, 0-30 % context,
every pixel a target, log-likelihood in nats per image), where one homoscedastic sigma caps the
log-likelihood far below what a per-pixel std allows. The parts, top to bottom:

* **Set convolution** (ConvCNP, Gordon et al. 2020): ``k`` learned positive kernels applied to the
  context signal and to the mask; their ratio (signal / density) is a smooth interpolation of the
  context and the density says how much context each position has. Input = ``concat(y*m, m,
  signal, density)``.
* **U-Net**: a full-resolution stem, two strided stages (size/2 and size/4) of residual 3x3 blocks, and
  the way back up with skip connections (narrow at full resolution, where a CPU spends most of its time).
* **Context skip at full resolution**: the decoder head reads ``concat(features, y*m, m)``, so a context
  pixel can be reproduced with a std at the floor (log N(0 | 0, 0.01^2) = 3.686 nats per pixel; at most
  about 3,775 nats for 1,024 pixels).
* **Head**: a 1x1 convolution to the mean (linear) and ``std = floor + (1 - floor) * softplus(raw)``
  (NPF's parameterisation, floor 0.01).

**hetero-mix** (``components=4``) replaces the head's one Gaussian by a mixture per pixel: component 0
fixed at N(y*m, floor^2) (the context value at a context pixel, black elsewhere; only its weight is
learned) and K - 1 learned Gaussians, every std >= floor, so the per-pixel density cap is unchanged. One
Gaussian cannot say "black with probability 0.7, else a stroke near 0.9" and pays several nats at either
outcome; the mixture pays -log 0.7. ``fixed_component=False`` learns all K (the ablation: slower and far
less stable, its gradient norm spiking by orders of magnitude, as the book's NPF section shows).

Why a per-pixel std needs care (what made ``sigma="pixel"`` unstable in GridNP): the gradient of
``-log N(y | mu, sigma^2)`` is ``(mu - y) / sigma^2`` in the mean and ``1 - (y - mu)^2 / sigma^2`` in
``log sigma``. The background of MNIST is exactly 0, so within a few hundred steps most pixels reach
the floor; there the mean's gradient is 100x that of a pixel at sigma = 0.1 (1/sigma^2: 10^4 against
10^2), and a shared-weight update that moves the background mean by 0.05 costs 12.5 nats per pixel.
The loss then spikes and the optimiser chases the confident pixels. :meth:`HeteroCNP.loss` therefore
offers a *warm-up*: with ``warmup=w`` in ``(0, 1]``, the mean is trained against a fixed sigma of 0.1
(an MSE) while the std head learns from the NLL with the mean detached; ``warmup = 0`` is the exact NLL
(the objective the evaluation measures). The training script (``ifanp.npf``) ramps ``warmup`` from 1 to 0
and clips the gradient norm; its log records the gradient norm and the share of pixels at the floor.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses import NPOutput, gaussian_log_likelihood
from .base import ImageModel, InputError, LossOutput
from .registry import register

DEFAULTS: dict[str, Any] = {
    "widths": [16, 48, 64],  # channels at full resolution, size/2 and size/4
    "blocks": [1, 2],  # residual blocks at size/2 and size/4
    "setconv_channels": 8,  # learned positive kernels of the set convolution
    "setconv_kernel": 9,  # their (odd) size
    "std_floor": 0.01,  # NPF's min_std
    "fixed_sigma": 0.1,  # the sigma of the mean's warm-up objective
    "components": 1,  # 1: one Gaussian per pixel; K >= 2: a K-component mixture per pixel (see below)
    "fixed_component": True,  # with K >= 2: component 0 is N(y*m, floor^2), not learned (False: all K learned)
}


class _Res(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, padding=1)
        self.b = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.b(F.relu(self.a(F.relu(x))))


class HeteroCNP(ImageModel):
    """Deterministic ConvCNP-like U-Net with a context skip and a per-pixel std (see the module docstring)."""

    latent = False

    def __init__(self, name: str, channels: int = 1, size: int = 32, **overrides: Any):
        unknown = set(overrides) - set(DEFAULTS)
        if unknown:
            raise InputError(f"unknown option(s) for {name}: {', '.join(sorted(unknown))}; known: {', '.join(DEFAULTS)}.")
        cfg = {**DEFAULTS, **overrides}
        super().__init__(name, channels, size, cfg)
        if size % 4:
            raise InputError(f"{name} halves the image twice: size must be a multiple of 4, got {size}.")
        if cfg["setconv_kernel"] % 2 == 0:
            raise InputError(f"setconv_kernel must be odd, got {cfg['setconv_kernel']}.")
        if not 0 < cfg["std_floor"] < 1:
            raise InputError(f"std_floor must lie in (0, 1), got {cfg['std_floor']}.")
        self.cfg = cfg
        if len(cfg["widths"]) != 3 or len(cfg["blocks"]) != 2:
            raise InputError(f"widths needs 3 channel counts and blocks 2 counts; got {cfg['widths']}, {cfg['blocks']}.")
        C, k = channels, cfg["setconv_channels"]
        w0, w1, w2 = cfg["widths"]
        # Set convolution: k positive kernels (softplus of these), the same for signal and density.
        self.setconv_raw = nn.Parameter(torch.randn(k, 1, cfg["setconv_kernel"], cfg["setconv_kernel"]) * 0.5)
        cin = C + 2 + k * (C + 1)
        self.stem = nn.Sequential(nn.Conv2d(cin, w0, 3, padding=1), nn.ReLU(), nn.Conv2d(w0, w0, 3, padding=1))
        self.down1 = nn.Conv2d(w0, w1, 3, stride=2, padding=1)
        self.stage1 = nn.Sequential(*[_Res(w1) for _ in range(cfg["blocks"][0])])
        self.down2 = nn.Conv2d(w1, w2, 3, stride=2, padding=1)
        self.stage2 = nn.Sequential(*[_Res(w2) for _ in range(cfg["blocks"][1])])
        self.up2 = nn.ConvTranspose2d(w2, w1, 4, stride=2, padding=1)
        self.merge1 = nn.Conv2d(2 * w1, w1, 3, padding=1)
        self.up1 = nn.ConvTranspose2d(w1, w0, 4, stride=2, padding=1)
        self.head = nn.Sequential(
            nn.Conv2d(2 * w0 + C + 1, w0, 3, padding=1), nn.ReLU(), nn.Conv2d(w0, w0, 3, padding=1), nn.ReLU()
        )
        K = cfg["components"]
        if not isinstance(K, int) or K < 1:
            raise InputError(f"components must be a positive integer, got {K!r}.")
        # K = 1: mean and raw std; K >= 2: L = K - 1 (or K, without the fixed component) learned means and
        # raw stds, and K mixture logits
        L = self.learned = K - 1 if (K > 1 and cfg["fixed_component"]) else K
        self.out = nn.Conv2d(w0, C * (2 if K == 1 else 2 * L + K), 1)
        if K > 1:
            with torch.no_grad():  # learned components start spread over [0, 1] with std about 0.2
                self.out.weight.mul_(0.1)
                b = self.out.bias.view(-1, C)
                b[:L] = torch.linspace(0.1 if L < K else 0.0, 0.9, L).unsqueeze(1)
                b[L : 2 * L] = -1.5
                b[2 * L :] = 0.0

    # ---- the parts -------------------------------------------------------------------------------
    def set_convolution(self, images: Tensor, mask: Tensor) -> Tensor:
        """``concat(y*m, m, context fraction, signal_1..k, log1p(density_1..k))``: k density-normalised interpolations of the context."""
        C, b = self.channels, images.shape[0]
        kern = F.softplus(self.setconv_raw)
        pad = self.cfg["setconv_kernel"] // 2
        ym = images * mask
        # one depthwise pass over (y*m channels, m): every input channel convolved with every kernel
        stacked = torch.cat([ym, mask], dim=1).reshape(b * (C + 1), 1, self.size, self.size)
        conv = F.conv2d(stacked, kern, padding=pad).view(b, C + 1, -1, self.size, self.size)
        density = conv[:, C]  # (B, k, H, W)
        signal = conv[:, :C] / density.unsqueeze(1).clamp_min(1e-5)  # (B, C, k, H, W)
        frac = mask.mean((2, 3), keepdim=True).expand_as(mask)  # the context fraction, as a constant map
        return torch.cat([ym, mask, frac, signal.flatten(1, 2), torch.log1p(density)], dim=1)

    def head_output(self, images: Tensor, mask: Tensor) -> Tensor:
        """The U-Net and the 1x1 output convolution: the raw parameters of every pixel's predictive."""
        x0 = self.stem(self.set_convolution(images, mask))
        x1 = self.stage1(self.down1(F.relu(x0)))
        x2 = self.stage2(self.down2(F.relu(x1)))
        y1 = self.merge1(torch.cat([F.relu(self.up2(F.relu(x2))), x1], dim=1))
        y0 = self.up1(F.relu(y1))
        h = self.head(torch.cat([F.relu(y0), F.relu(x0), images * mask, mask], dim=1))
        return self.out(h)

    def decode(self, images: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and std (B, C, H, W) of every pixel given the context (for a mixture: its moments)."""
        out = self.head_output(images, mask)
        C, floor = self.channels, self.cfg["std_floor"]
        if self.cfg["components"] > 1:
            return self.moments(*self.mixture_from(out, images, mask))
        mean = out[:, :C]
        std = floor + (1 - floor) * F.softplus(out[:, C:])
        return mean, std

    def mixture_from(self, out: Tensor, images: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The K-component mixture of each pixel: log-weights, means, stds, each (B, K, C, H, W).

        Component 0 is fixed: N(y * m, floor^2), the context value at a context pixel and black elsewhere
        (no parameters: the network only decides its weight; ``fixed_component=False``: learned like the
        others, the ablation). Components 1..K-1 have learned means and
        stds ``floor + (1 - floor) * softplus(raw)``. Every component's std is at least the floor, so a
        pixel's density never exceeds N(0 | 0, floor^2) (the same cap as one Gaussian).
        """
        K, L, C, floor = self.cfg["components"], self.learned, self.channels, self.cfg["std_floor"]
        b, _, H, W = out.shape
        mu = out[:, : L * C].view(b, L, C, H, W)
        sd = floor + (1 - floor) * F.softplus(out[:, L * C : 2 * L * C].view(b, L, C, H, W))
        logw = torch.log_softmax(out[:, 2 * L * C :].view(b, K, C, H, W), dim=1)
        if L < K:  # the fixed component first
            mu = torch.cat([(images * mask).unsqueeze(1), mu], dim=1)
            sd = torch.cat([torch.full_like(sd[:, :1], floor), sd], dim=1)
        return logw, mu, sd

    def mixture(self, images: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Log-weights, means and stds (B, K, C, H, W) of every pixel's predictive mixture (K = 1: one Gaussian)."""
        images, mask = self.check_inputs(images, mask)
        if self.cfg["components"] == 1:
            mean, std = self.decode(images, mask)
            return torch.zeros_like(mean).unsqueeze(1), mean.unsqueeze(1), std.unsqueeze(1)
        return self.mixture_from(self.head_output(images, mask), images, mask)

    @staticmethod
    def moments(logw: Tensor, mu: Tensor, sd: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and std (B, C, H, W) of the mixture (what ``predict`` and the PSNR use)."""
        w = logw.exp()
        mean = (w * mu).sum(1)
        var = (w * (sd**2 + mu**2)).sum(1) - mean**2
        return mean, var.clamp_min(1e-12).sqrt()

    @staticmethod
    def mixture_log_density(y: Tensor, logw: Tensor, mu: Tensor, sd: Tensor) -> Tensor:
        """log sum_k w_k N(y | mu_k, sd_k^2), per pixel (B, C, H, W)."""
        logp = -0.5 * ((y.unsqueeze(1) - mu) / sd) ** 2 - sd.log() - 0.5 * math.log(2 * math.pi)
        return torch.logsumexp(logw + logp, dim=1)

    def pixel_log_density(self, images: Tensor, mask: Tensor) -> Tensor:
        """log p(y | context) of every pixel (B, C, H, W) under the model's own predictive (the NPF metric)."""
        return self.mixture_log_density(images, *self.mixture(images, mask))

    def pixel_cdf(self, images: Tensor, mask: Tensor) -> Tensor:
        """The predictive CDF at each pixel's value (its PIT, for :mod:`ifanp.calibration`), (B, C, H, W)."""
        logw, mu, sd = self.mixture(images, mask)
        u = 0.5 * (1 + torch.erf((images.unsqueeze(1) - mu) / (sd * math.sqrt(2))))
        return (logw.exp() * u).sum(1)

    # ---- the ImageModel contract -------------------------------------------------------------------
    def forward(self, images: Tensor, mask: Tensor, eps: Tensor | None = None, *, samples: int = 0,
                full: bool = False, z_from: str = "context", target_mask: Tensor | None = None) -> NPOutput:
        """The one pass (no latent: ``eps``, ``full`` and ``z_from`` change nothing): mean and std (S, B, C, H, W),
        the same for each of the S = ``eps.shape[0]`` or max(samples, 1) rows."""
        mean, std = self.decode(images, mask)
        s = eps.shape[0] if eps is not None else max(samples, 1)
        return NPOutput(mean.unsqueeze(0).expand(s, *mean.shape), std.unsqueeze(0).expand(s, *std.shape))

    def loss(self, images: Tensor, mask: Tensor, target_mask: Tensor | None = None, *, net: nn.Module | None = None,
             warmup: float = 0.0) -> LossOutput:
        """Minus the predictive log-likelihood of the targets (all pixels by default), mean over images.

        ``warmup`` in [0, 1] mixes in the stable objective of the module docstring: the mean against a
        fixed sigma and the std against the detached mean; 0 (the default) is the exact NLL.
        """
        images, mask = self.check_inputs(images, mask)
        target_mask = self.check_target_mask(target_mask, mask)
        if self.cfg["components"] > 1:
            return self._mixture_loss(images, mask, target_mask, warmup)
        out = (net or self)(images, mask)
        mean, std = out.mean[0], out.std[0]
        nll = -gaussian_log_likelihood(images, mean, std, target_mask)  # (B,)
        loss = nll
        if warmup > 0:
            fixed = torch.full_like(std, self.cfg["fixed_sigma"])
            mean_term = -gaussian_log_likelihood(images, mean, fixed, target_mask)
            std_term = -gaussian_log_likelihood(images, mean.detach(), std, target_mask)
            loss = (1 - warmup) * nll + warmup * (mean_term + std_term)
        mse = ((mean - images) ** 2).mean(dim=(1, 2, 3))
        zero = images.new_zeros(())
        return LossOutput(loss.mean(), nll.mean(), zero, mse.mean())

    def _mixture_loss(self, images: Tensor, mask: Tensor, target_mask: Tensor | None, warmup: float) -> LossOutput:
        """The mixture's NLL; with ``warmup`` w > 0 every component's std is widened to sqrt(sd^2 + (w sigma_0)^2)
        (sigma_0 = ``fixed_sigma``), which bounds the means' gradients early on; w = 0 is the exact NLL."""
        logw, mu, sd = self.mixture(images, mask)
        t = torch.ones_like(images) if target_mask is None else target_mask.expand_as(images)
        nll = -(self.mixture_log_density(images, logw, mu, sd) * t).flatten(1).sum(1)
        loss = nll
        if warmup > 0:
            wide = (sd**2 + (warmup * self.cfg["fixed_sigma"]) ** 2).sqrt()
            loss = -(self.mixture_log_density(images, logw, mu, wide) * t).flatten(1).sum(1)
        mean, _ = self.moments(logw, mu, sd)
        mse = ((mean - images) ** 2).mean(dim=(1, 2, 3))
        return LossOutput(loss.mean(), nll.mean(), images.new_zeros(()), mse.mean())



def max_log_likelihood_per_pixel(floor: float = 0.01) -> float:
    """The largest log-density a Gaussian with std >= ``floor`` gives a pixel: log N(0 | 0, floor^2)."""
    return -math.log(floor) - 0.5 * math.log(2 * math.pi)


@register("hetero-cnp")
def _hetero_cnp(channels: int = 1, size: int = 32, **overrides: Any) -> HeteroCNP:
    """Build hetero-cnp (HeteroCNP with the defaults of ``ifanp.models.hetero.DEFAULTS``)."""
    return HeteroCNP("hetero-cnp", channels, size, **overrides)


@register("hetero-mix")
def _hetero_mix(channels: int = 1, size: int = 32, **overrides: Any) -> HeteroCNP:
    """Build hetero-mix: hetero-cnp with a 4-component mixture per pixel (one fixed at the context value / black)."""
    return HeteroCNP("hetero-mix", channels, size, **{"components": 4, **overrides})
