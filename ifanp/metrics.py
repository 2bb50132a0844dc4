"""Evaluation metrics: MSE, PSNR, SSIM, per-pixel Gaussian NLL and the KL between diagonal Gaussians.

Images are ``(B, C, H, W)`` tensors with values in [0, max_val] (the package uses [0, 1], so PSNR
uses MAX = 1). Every per-image metric returns one value per image, shape ``(B,)``; the caller
averages over a dataset. A ``mask`` is a 0/1 (or non-negative weight) tensor ``(B, 1, H, W)``, shared
by all channels, or ``(B, C, H, W)``; masked metrics average over the selected pixels only.

The paper (SPEC section 6) measures MSE over the whole image, context pixels included, averaged over
channels: :func:`mse` without a mask. :func:`completion_metrics` also gives the target-only numbers
(pixels outside the context, ``1 - context_mask``), which do not reward copying the context.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


class MetricInputError(ValueError):
    """Raised for images, masks or parameters of the wrong shape or value."""


def _check_images(pred: Tensor, target: Tensor, what: tuple[str, str] = ("pred", "target")) -> None:
    for name, x in zip(what, (pred, target)):
        if not isinstance(x, Tensor):
            raise MetricInputError(f"{name} must be a torch tensor (B, C, H, W); got {type(x).__name__}.")
        if x.dim() == 3:
            raise MetricInputError(
                f"{name} has shape {tuple(x.shape)}: add the batch dimension (x.unsqueeze(0)); "
                "images must be (B, C, H, W)."
            )
        if x.dim() != 4:
            raise MetricInputError(f"{name} has shape {tuple(x.shape)}; images must be (B, C, H, W).")
    if pred.shape != target.shape:
        hint = ""
        if pred.shape[0] == target.shape[0] and pred.shape[2:] == target.shape[2:]:
            hint = f" (channel counts differ: {pred.shape[1]} vs {target.shape[1]}; grey is 1, RGB is 3)"
        raise MetricInputError(
            f"{what[0]} {tuple(pred.shape)} and {what[1]} {tuple(target.shape)} must have the same shape{hint}."
        )


def _check_mask(mask: Tensor, images: Tensor) -> Tensor:
    b, c, h, w = images.shape
    if not isinstance(mask, Tensor):
        raise MetricInputError(f"mask must be a torch tensor (B, 1, H, W); got {type(mask).__name__}.")
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    if mask.dim() != 4 or mask.shape[0] != b or mask.shape[2:] != (h, w) or mask.shape[1] not in (1, c):
        raise MetricInputError(
            f"mask has shape {tuple(mask.shape)} for images {tuple(images.shape)}; expected ({b}, 1, {h}, {w}) "
            f"(one mask per image, shared by the channels) or ({b}, {c}, {h}, {w})."
        )
    if (mask < 0).any():
        raise MetricInputError("mask values must be non-negative weights (1 = pixel counted, 0 = ignored).")
    return mask.to(images.dtype)


def _masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over (C, H, W) per image; with ``mask``, the weighted mean over the selected pixels and channels."""
    if mask is None:
        return values.flatten(1).mean(1)
    weights = mask.expand_as(values)
    total = weights.flatten(1).sum(1)
    if (total == 0).any():
        empty = torch.nonzero(total == 0).flatten().tolist()
        raise MetricInputError(
            f"the mask selects no pixel in image(s) {empty[:10]} of the batch; the metric is undefined there "
            "(e.g. target-only metrics with a context ratio of 1)."
        )
    return (values * weights).flatten(1).sum(1) / total


def mse(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared error per image, shape ``(B,)``.

    Without ``mask``: the mean over channels and all pixels, (1 / CHW) sum (y - y_hat)^2.
    With ``mask`` (B, 1, H, W): the mean over the channels of the pixels where ``mask`` is 1.
    """
    _check_images(pred, target)
    weights = _check_mask(mask, target) if mask is not None else None
    return _masked_mean((pred - target).pow(2), weights)


def psnr_from_mse(mse_values: Tensor, max_val: float = 1.0) -> Tensor:
    """PSNR in dB of each MSE value: 10 log10(MAX^2 / MSE) (``inf`` where MSE is 0)."""
    if max_val <= 0:
        raise MetricInputError(f"max_val (the largest possible pixel value) must be positive; got {max_val}.")
    mse_values = torch.as_tensor(mse_values)
    return 10.0 * torch.log10(max_val**2 / mse_values)


def psnr(pred: Tensor, target: Tensor, mask: Tensor | None = None, max_val: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio per image in dB, shape ``(B,)``: 10 log10(MAX^2 / MSE).

    ``max_val`` is MAX, the largest possible pixel value (1 for images in [0, 1], 255 for bytes);
    the MSE is :func:`mse` (whole image, or the pixels selected by ``mask``).
    """
    return psnr_from_mse(mse(pred, target, mask), max_val)


def mean_psnr(mse_values: Tensor, max_val: float = 1.0) -> Tensor:
    """The mean over images of the per-image PSNR (a scalar tensor).

    By Jensen's inequality this is at least :func:`psnr_of_mean_mse`; say which one a table reports.
    """
    return psnr_from_mse(torch.as_tensor(mse_values).flatten(), max_val).mean()


def psnr_of_mean_mse(mse_values: Tensor, max_val: float = 1.0) -> Tensor:
    """The PSNR of the dataset's mean MSE, 10 log10(MAX^2 / mean_i MSE_i) (a scalar tensor)."""
    return psnr_from_mse(torch.as_tensor(mse_values).flatten().mean(), max_val)


def completion_metrics(
    pred: Tensor, target: Tensor, context_mask: Tensor, max_val: float = 1.0
) -> dict[str, Tensor]:
    """Whole-image and target-only MSE and PSNR per image for a completion from ``context_mask``.

    Returns a dict of ``(B,)`` tensors: ``mse_whole``, ``psnr_whole`` (all pixels, the paper's protocol)
    and ``mse_target``, ``psnr_target`` (only the pixels outside the context, ``1 - context_mask``).
    """
    _check_images(pred, target)
    context = _check_mask(context_mask, target)
    if not torch.all((context == 0) | (context == 1)):
        raise MetricInputError("context_mask must hold only 0 (missing) and 1 (observed).")
    whole = mse(pred, target)
    target_only = mse(pred, target, 1.0 - context)
    return {
        "mse_whole": whole,
        "psnr_whole": psnr_from_mse(whole, max_val),
        "mse_target": target_only,
        "psnr_target": psnr_from_mse(target_only, max_val),
    }


def gaussian_nll_per_pixel(y: Tensor, mean: Tensor, std: Tensor, mask: Tensor | None = None) -> Tensor:
    """Negative log-likelihood per pixel value under N(mean, std^2), averaged per image, shape ``(B,)``.

    -log N(y | mu, sigma^2) = log sigma + (y - mu)^2 / (2 sigma^2) + log(2 pi) / 2, in nats, averaged over
    channels and pixels (or over the pixels selected by ``mask``). ``std`` must be positive and
    broadcastable to ``y``.
    """
    _check_images(y, mean, ("y", "mean"))
    if not isinstance(std, Tensor):
        std = torch.as_tensor(std, dtype=y.dtype, device=y.device)
    try:
        std = std.expand_as(y)
    except RuntimeError as err:
        raise MetricInputError(
            f"std of shape {tuple(std.shape)} does not broadcast to y {tuple(y.shape)}."
        ) from err
    if (std <= 0).any():
        raise MetricInputError(
            "std must be strictly positive (a standard deviation, not a log or a variance)."
        )
    weights = _check_mask(mask, y) if mask is not None else None
    nll = torch.log(std) + 0.5 * ((y - mean) / std).pow(2) + 0.5 * math.log(2 * math.pi)
    return _masked_mean(nll, weights)


def kl_diag_gaussians(mu_q: Tensor, std_q: Tensor, mu_p: Tensor, std_p: Tensor) -> Tensor:
    """KL(q || p) between diagonal Gaussians q = N(mu_q, std_q^2), p = N(mu_p, std_p^2), summed over the last dim.

    Closed form per dimension: log(std_p / std_q) + (std_q^2 + (mu_q - mu_p)^2) / (2 std_p^2) - 1/2.
    Arguments are standard deviations (not variances) and broadcast against each other.
    """
    tensors = [torch.as_tensor(t) for t in (mu_q, std_q, mu_p, std_p)]
    try:
        mu_q, std_q, mu_p, std_p = torch.broadcast_tensors(*tensors)
    except RuntimeError as err:
        shapes = [tuple(t.shape) for t in tensors]
        raise MetricInputError(
            f"mu_q, std_q, mu_p, std_p of shapes {shapes} do not broadcast together."
        ) from err
    if mu_q.dim() == 0:
        raise MetricInputError(
            "kl_diag_gaussians needs at least one dimension (the latent dimension, summed)."
        )
    if (std_q <= 0).any() or (std_p <= 0).any():
        raise MetricInputError("std_q and std_p must be strictly positive standard deviations.")
    var_ratio = (std_q / std_p).pow(2)
    kl = 0.5 * (var_ratio + ((mu_q - mu_p) / std_p).pow(2) - 1.0 - torch.log(var_ratio))
    return kl.sum(-1)


def _gaussian_window(
    size: int, sigma: float, channels: int, dtype: torch.dtype, device: torch.device
) -> Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(
    pred: Tensor,
    target: Tensor,
    max_val: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    """Structural similarity per image (Wang et al. 2004), shape ``(B,)``.

    Local means, variances and covariance are taken with a normalised Gaussian window
    (``window_size`` x ``window_size``, std ``sigma``; 11 and 1.5 as in the paper) over every position
    where the window fits (no padding). SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) /
    ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)) with C1 = (k1 MAX)^2, C2 = (k2 MAX)^2, averaged over
    positions and channels. 1 for identical images.
    """
    _check_images(pred, target)
    _, c, h, w = target.shape
    if window_size % 2 == 0 or window_size < 1:
        raise MetricInputError(f"window_size must be a positive odd number; got {window_size}.")
    if h < window_size or w < window_size:
        raise MetricInputError(
            f"images of {h}x{w} pixels are smaller than the SSIM window ({window_size}); pass a smaller window_size."
        )
    x, y = pred.to(torch.float64), target.to(torch.float64)
    win = _gaussian_window(window_size, sigma, c, x.dtype, x.device)
    stats = F.conv2d(torch.cat([x, y, x * x, y * y, x * y], dim=1), win.repeat(5, 1, 1, 1), groups=5 * c)
    mu_x, mu_y, e_xx, e_yy, e_xy = stats.split(c, dim=1)
    var_x, var_y, cov = e_xx - mu_x**2, e_yy - mu_y**2, e_xy - mu_x * mu_y
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1).to(pred.dtype)
