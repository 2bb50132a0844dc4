"""Figures of the image chapters ("Images as functions" and "IFNP"): pictures of contexts and
completions, the metrics against the context ratio, the cost of pixel-set models, the IFNP diagram
(paper Fig. 2), the density normalisation of the masked average pool, and posterior samples.

Conventions used in every figure:

* images are tensors ``(B, C, H, W)`` (or one image ``(C, H, W)``) with values in [0, 1]; grey images
  are drawn with the ``gray`` colour map from 0 (black) to 1 (white), RGB images as they are;
* a **context picture** shows the observed pixels as they are and paints every missing pixel in
  :data:`MISSING_COLOR` (a blue that a grey digit or a face never contains), so that an observed black
  pixel and a missing one look different;
* maps of a predictive **standard deviation** (never a variance) use the ``magma`` colour map with the
  scale in a colour bar.

Every function returns a :class:`matplotlib.figure.Figure` built without ``pyplot`` (a notebook shows
it once, as the value of a cell, and nothing leaks into pyplot's global state). The widgets of
:mod:`ifanp.widgets.images` only wire controls to :func:`plot_completion_explorer` and
:func:`plot_ifnp_explorer`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LinearSegmentedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from torch import Tensor

from ..analysis import _batch, completion_mean, make_mask, predictive_moments
from ..metrics import completion_metrics, mean_psnr, psnr_from_mse, psnr_of_mean_mse

__all__ = [
    "MISSING_COLOR",
    "context_image",
    "plot_completion_explorer",
    "plot_completion_grid",
    "plot_contexts",
    "plot_cost_scaling",
    "plot_density_normalisation",
    "plot_elbo_gap",
    "plot_ifnp_diagram",
    "plot_ifnp_explorer",
    "plot_image_as_function",
    "plot_metric_vs_ratio",
    "plot_posterior_samples",
    "plot_psnr_distribution",
    "plot_rgb_channels",
    "to_display",
]

#: The colour of the missing (unobserved) pixels in every context picture.
MISSING_COLOR = (0.24, 0.48, 0.85)


def to_display(image: Tensor) -> np.ndarray:
    """One image ``(C, H, W)`` -> an array for ``imshow``: ``(H, W)`` for grey, ``(H, W, 3)`` for RGB,
    clipped to [0, 1]."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"to_display takes one image, got a batch of {image.shape[0]}.")
        image = image[0]
    arr = image.detach().cpu().float().clamp(0, 1).numpy()
    if arr.shape[0] == 1:
        return arr[0]
    if arr.shape[0] == 3:
        return arr.transpose(1, 2, 0)
    raise ValueError(f"images must have 1 (grey) or 3 (RGB) channels, got {arr.shape[0]}.")


def context_image(image: Tensor, mask: Tensor, color: Sequence[float] = MISSING_COLOR) -> np.ndarray:
    """The context of one image as an RGB array ``(H, W, 3)``: observed pixels as they are (grey pixels
    repeated into three channels), missing pixels (mask 0) painted in ``color``."""
    arr = to_display(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    m = mask.detach().cpu().float().reshape(arr.shape[:2]).numpy()[..., None]
    return arr * m + np.asarray(color, dtype=arr.dtype)[None, None, :] * (1 - m)


def _show(ax, picture, title: str | None = None, fontsize: float = 8, **kw) -> None:
    if isinstance(picture, Tensor):
        picture = to_display(picture)
    if picture.ndim == 2:
        kw = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0, **kw}
    ax.imshow(picture, interpolation="nearest", **kw)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize)


def _psnr_line(pred: Tensor, truth: Tensor, mask: Tensor) -> str:
    m = completion_metrics(_batch(pred).float(), _batch(truth).float(), _batch(mask).float())
    target = float(m["psnr_target"][0]) if (1 - mask).sum() > 0 else float("nan")
    return f"{float(m['psnr_whole'][0]):.1f} / {target:.1f} dB"


# ---- chapter "Images as functions" ------------------------------------------------------------------------


def plot_image_as_function(image: Tensor, title: str | None = None) -> Figure:
    """One grey image two ways: the picture with its pixel grid M (left) and the function f: M -> [0, 1]
    as a surface over the coordinates (right)."""
    arr = to_display(image)
    if arr.ndim != 2:
        raise ValueError("plot_image_as_function draws one grey image (1, H, W); show RGB with plot_rgb_channels.")
    h, w = arr.shape
    fig = Figure(figsize=(7.6, 3.4), layout="constrained")
    ax = fig.add_subplot(1, 2, 1)
    ax.imshow(arr, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(np.arange(-0.5, w, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, h, 1), minor=True)
    ax.grid(which="minor", color="0.35", linewidth=0.3)
    ax.tick_params(which="minor", length=0)
    ticks = [0, h // 2, h - 1]
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xlabel("column j")
    ax.set_ylabel("row i")
    ax.set_title(f"the grid: {h} x {w} locations $m_{{ij}}$", fontsize=9)
    ax3 = fig.add_subplot(1, 2, 2, projection="3d")
    rows, cols = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    ax3.plot_surface(cols, rows, arr, cmap="viridis", vmin=0, vmax=1, rstride=1, cstride=1, linewidth=0.15,
                     edgecolor="0.35", antialiased=False)
    ax3.set_xlabel("column", fontsize=8, labelpad=-6)
    ax3.set_ylabel("row", fontsize=8, labelpad=-6)
    ax3.set_zlabel("f(m)", fontsize=8, labelpad=-6)
    ax3.set_xticks([-1, 0, 1])
    ax3.set_yticks([-1, 0, 1])
    ax3.set_zticks([0, 0.5, 1])
    ax3.set_zlim(0, 1)
    ax3.invert_yaxis()  # row -1 (the top of the picture) at the back
    ax3.view_init(elev=50, azim=-105)
    ax3.tick_params(labelsize=7, pad=-2)
    ax3.set_title("the function: intensity over the coordinates", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_rgb_channels(image: Tensor, title: str | None = None) -> Figure:
    """An RGB image ``(3, H, W)`` and its three channels, each a function M -> [0, 1]; channel c is drawn
    from black (0) to its pure colour (1), which is how it contributes to the picture."""
    image = image[0] if image.dim() == 4 else image
    if image.shape[0] != 3:
        raise ValueError(f"plot_rgb_channels takes an RGB image (3, H, W), got {tuple(image.shape)}.")
    fig = Figure(figsize=(7.8, 2.5), layout="constrained")
    axes = fig.subplots(1, 4)
    h, w = image.shape[-2:]
    _show(axes[0], image, f"y: {h} x {w} x 3", fontsize=9)
    for ax, c, name, rgb in zip(axes[1:], range(3), ("red", "green", "blue"),
                                ((1, 0, 0), (0, 1, 0), (0, 0, 1))):
        cmap = LinearSegmentedColormap.from_list(name, [(0, 0, 0), rgb])
        ax.imshow(image[c].detach().cpu().numpy(), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"channel {c + 1}: {name}, $f_{c + 1}(m)$", fontsize=9)

    fig.colorbar(ScalarMappable(Normalize(0, 1), cmap="gray"), ax=axes[1:], shrink=0.8,
                 label="value: black 0, full colour 1")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_contexts(images: Tensor, masks: Sequence[Tensor], column_titles: Sequence[str],
                  title: str | None = None) -> Figure:
    """A grid of context pictures: one row per image, one column per mask set.

    ``images`` (B, C, H, W); ``masks`` a list of (B, 1, H, W) tensors, one per column (the same
    pattern for every image, or one per image). Missing pixels are painted in :data:`MISSING_COLOR`.
    """
    images = _batch(images)
    if len(masks) != len(column_titles):
        raise ValueError(f"got {len(masks)} mask sets but {len(column_titles)} column titles.")
    b, k = images.shape[0], len(masks)
    fig = Figure(figsize=(1.05 * k + 0.4, 1.05 * b + 0.5), layout="constrained")
    axes = np.asarray(fig.subplots(b, k, squeeze=False))
    for j, m in enumerate(masks):
        m = _batch(m)
        for i in range(b):
            mi = m[i if m.shape[0] > 1 else 0]
            _show(axes[i, j], context_image(images[i], mi), column_titles[j] if i == 0 else None)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_completion_grid(truth: Tensor, mask: Tensor, predictions: Mapping[str, Tensor],
                         column_titles: Sequence[str] | None = None, title: str | None = None,
                         show_psnr: bool = True) -> Figure:
    """Completions side by side: one column per (image, mask) pair, rows = the context, each model's
    prediction, and the truth.

    ``truth`` (B, C, H, W), ``mask`` (B, 1, H, W), ``predictions`` maps a row label to (B, C, H, W).
    With ``show_psnr`` every prediction is titled "whole / target PSNR" in dB: over all pixels (the
    paper's protocol) and over the missing pixels only.
    """
    truth, mask = _batch(truth).cpu(), _batch(mask).cpu()
    b = truth.shape[0]
    rows = ["context", *predictions, "truth"]
    fig = Figure(figsize=(1.2 * b + 0.9, 1.25 * len(rows) + 0.4), layout="constrained")
    axes = np.asarray(fig.subplots(len(rows), b, squeeze=False))
    for j in range(b):
        head = column_titles[j] if column_titles is not None else None
        _show(axes[0, j], context_image(truth[j], mask[j]), head)
        for i, (label, pred) in enumerate(predictions.items(), start=1):
            p = _batch(pred).cpu()[j]
            _show(axes[i, j], p, _psnr_line(p, truth[j], mask[j]) if show_psnr else None, fontsize=7)
        _show(axes[-1, j], truth[j])
    for i, label in enumerate(rows):
        axes[i, 0].set_ylabel(label, fontsize=9)
    if title:
        fig.suptitle(title + ("\n(titles: PSNR of the whole image / of the missing pixels)" if show_psnr else ""),
                     fontsize=10)
    return fig


def plot_cost_scaling(pixels: Sequence[int], costs: Mapping[str, Sequence[float]], ylabel: str = "GFLOP per image",
                      title: str | None = None, mark: Mapping[str, int] | None = None) -> Figure:
    """Cost against the number of pixels on log-log axes, one line per model, with the fitted slope in the
    legend (slope 1: linear in the pixels, slope 2: quadratic). ``mark`` names image sizes to draw as
    vertical lines, e.g. {"MNIST 28 x 28": 784}."""
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.asarray(pixels, dtype=float)
    for label, ys in costs.items():
        y = np.asarray(ys, dtype=float)
        slope = np.polyfit(np.log(x), np.log(y), 1)[0] if len(x) > 1 else float("nan")
        ax.loglog(x, y, "o-", label=f"{label} (slope {slope:.2f})")
    for name, n in (mark or {}).items():
        ax.axvline(n, color="0.6", linestyle=":", linewidth=1)
        ax.text(n, 0.97, f"{name} ", rotation=90, va="top", ha="right", fontsize=7, color="0.35",
                transform=ax.get_xaxis_transform())
    ax.set_xticks(list(x))
    ax.set_xticklabels([f"{int(v):,}" for v in x])
    ax.minorticks_off()
    ax.set_xlabel("pixels per image (H x W)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_metric_vs_ratio(ratios: Sequence[float], values: Mapping[str, Sequence[float]], ylabel: str = "PSNR (dB)",
                         title: str | None = None, paper: Mapping[str, Sequence[float]] | None = None,
                         styles: Mapping[str, str] | None = None, ax=None) -> Figure:
    """A metric against the context ratio, one line per entry of ``values``; ``paper`` adds the paper's
    numbers as open markers (same ratios); ``styles`` gives a line style per label ("--" for baselines)."""
    if ax is None:
        fig = Figure(figsize=(5.6, 3.5), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    r = 100 * np.asarray(ratios, dtype=float)
    for i, (label, ys) in enumerate(values.items()):
        ax.plot(r, np.asarray(ys, dtype=float), (styles or {}).get(label, "-"), marker="o", color=f"C{i}", label=label)
    for i, (label, ys) in enumerate((paper or {}).items()):
        ax.plot(r, np.asarray(ys, dtype=float), linestyle="none", marker="s", mfc="none", ms=8, color=f"C{i + 6}",
                label=label)
    ax.set_xlabel("context ratio (% of the pixels observed)")
    ax.set_ylabel(ylabel)
    ax.set_xticks(r)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7.5)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_psnr_distribution(mse_per_image: Mapping[str, Tensor], title: str | None = None) -> Figure:
    """Histograms of per-image PSNR, one per entry, each with two vertical lines: the mean of the
    per-image PSNR (solid) and the PSNR of the mean MSE (dashed), 10 log10(1 / mean MSE)."""
    fig = Figure(figsize=(6.6, 3.4), layout="constrained")
    ax = fig.add_subplot()
    for i, (label, mse) in enumerate(mse_per_image.items()):
        mse = torch.as_tensor(mse).flatten().double()
        p = psnr_from_mse(mse).numpy()
        ax.hist(p, bins=30, alpha=0.45, color=f"C{i}", label=label)
        ax.axvline(float(mean_psnr(mse)), color=f"C{i}", linewidth=2)
        ax.axvline(float(psnr_of_mean_mse(mse)), color=f"C{i}", linewidth=2, linestyle="--")
    ax.plot([], [], color="0.3", linewidth=2, label="mean of per-image PSNR")
    ax.plot([], [], color="0.3", linewidth=2, linestyle="--", label="PSNR of the mean MSE")
    ax.set_xlabel("PSNR of one image (dB)")
    ax.set_ylabel("images")
    ax.legend(fontsize=7.5)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_completion_explorer(models: Mapping[str, object], image: Tensor, index: int, kind: str = "random",
                             ratio: float = 0.2, seed: int = 0) -> Figure:
    """The widget figure of "Images as functions": one test image (its test-split ``index`` fixes the
    random mask), its context (:func:`make_mask`) and each model's completion, titled with the PSNR of
    the whole image and of the missing pixels. ``models`` maps a label to an image model or a callable
    ``f(images, mask)``."""
    image = _batch(image)
    mask = make_mask(kind, index, image.shape[-1], ratio, seed)
    observed = int(mask.sum())
    what = f"{100 * ratio:.0f} % random pixels" if kind == "random" else f"'{kind}' mask"
    n = len(models) + 2
    fig = Figure(figsize=(1.55 * n, 2.2), layout="constrained")
    axes = fig.subplots(1, n)
    _show(axes[0], context_image(image[0], mask[0]), f"context: {observed} pixels", fontsize=9)
    for ax, (label, model) in zip(axes[1:], models.items()):
        pred = completion_mean(model, image, mask)
        _show(ax, pred[0], f"{label}\n{_psnr_line(pred, image, mask)}", fontsize=9)
    _show(axes[-1], image[0], "truth", fontsize=9)
    fig.suptitle(f"test image {index}, {what} (titles: PSNR whole / missing pixels)", fontsize=10)
    return fig


# ---- chapter "IFNP" --------------------------------------------------------------------------------------


def _box(ax, xy, text, color="#e8eef7", width=0.118, height=0.22, fontsize=7.2):
    x, y = xy
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.008",
                                facecolor=color, edgecolor="0.3", linewidth=0.9))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)
    return (x, y, width, height)


def _arrow(ax, a, b, text=None, color="0.25", style="-|>", fontsize=7.5):
    """An arrow from the edge of box ``a`` to the edge of box ``b`` (boxes as returned by :func:`_box`),
    horizontal or vertical, with an optional label above (or beside) it."""
    (xa, ya, wa, ha), (xb, yb, wb, hb) = a, b
    dx, dy = xb - xa, yb - ya
    horizontal = abs(dy) < 1e-9
    if horizontal:
        start, end = (xa + np.sign(dx) * (wa / 2 + 0.008), ya), (xb - np.sign(dx) * (wb / 2 + 0.008), yb)
    else:
        start, end = (xa, ya + np.sign(dy) * (ha / 2 + 0.02)), (xb, yb - np.sign(dy) * (hb / 2 + 0.02))
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=10, color=color, linewidth=1.1))
    if text:
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        if horizontal:
            ax.text(mx, my + 0.04, text, ha="center", va="bottom", fontsize=fontsize, color=color)
        else:
            ax.text(mx + 0.008, my, text, ha="left", va="center", fontsize=fontsize, color=color)


def plot_ifnp_diagram() -> Figure:
    """IFNP's training path and test path (the paper's Fig. 2), drawn with boxes and arrows.

    Blue boxes hold data, grey boxes networks (the same weights wherever a name repeats), green boxes the
    weight-free masked pooling, orange boxes distributions of z; the red arrow is the KL term of Eq. 6,
    which exists only in training.
    """
    data, net, dist, pool = "#dbe8fb", "#eeeeee", "#fde3c8", "#e4f3e0"
    xs = [0.058, 0.196, 0.334, 0.472, 0.61, 0.78, 0.94]
    fig = Figure(figsize=(7.2, 5.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=[1.3, 0.9])
    for ax in (top, bottom):
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(0, 1)
        ax.axis("off")
    # training
    t = top
    t.set_title("training: the full image and its context are both encoded; z comes from q(z | full image)",
                fontsize=8.5)
    y1, y2 = 0.80, 0.20
    full = _box(t, (xs[0], y1), "full image\n$(y_M, M)$", data)
    ctx = _box(t, (xs[0], y2), "context\n$(y_{M^+}, M^+)$", data)
    e1a = _box(t, (xs[1], y1), "ConvEncoder1", net)
    e1b = _box(t, (xs[1], y2), "ConvEncoder1", net)
    pa = _box(t, (xs[2], y1), "Avgpool\n(mask of\nones)", pool)
    pb = _box(t, (xs[2], y2), "Mask +\nAvgpool +\nDivision", pool)
    e3a = _box(t, (xs[3], y1), "ConvEncoder3", net)
    e3b = _box(t, (xs[3], y2), "ConvEncoder3", net)
    qa = _box(t, (xs[4], y1), "$q(z \\mid y_M, M)$", dist)
    qb = _box(t, (xs[4], y2), "$q(z \\mid y_{M^+}, M^+)$", dist)
    dec = _box(t, (xs[5], y1), "DeconvDecoder\n$g(M^-, z)$", net)
    out = _box(t, (xs[6], y1), "prediction\n$\\mu(m_{ij}), \\sigma$", data)
    coords = _box(t, (xs[5], 0.42), "target\nlocations $M^-$", data)
    for a, b in ((full, e1a), (e1a, pa), (pa, e3a), (e3a, qa), (ctx, e1b), (e1b, pb), (pb, e3b), (e3b, qb),
                 (dec, out), (coords, dec)):
        _arrow(t, a, b)
    _arrow(t, qa, dec, "$z_k$")
    _arrow(t, qa, qb, "KL (Eq. 6)", color="tab:red", style="<|-|>", fontsize=8.5)
    t.text(xs[6], 0.56, "loss (Eq. 6):\nKL $-\\sum_{M^-} \\ln \\mathcal{N}(y_{ij} \\mid \\mu, \\sigma^2)$",
           ha="center", va="center", fontsize=7.5)
    # test
    s = bottom
    s.set_title("test: only the context is known; z comes from q(z | context)", fontsize=8.5)
    y = 0.62
    boxes = [_box(s, (xs[0], y), "context\n$(y_{M^+}, M^+)$", data, height=0.24),
             _box(s, (xs[1], y), "ConvEncoder1", net, height=0.24),
             _box(s, (xs[2], y), "Mask +\nAvgpool +\nDivision", pool, height=0.24),
             _box(s, (xs[3], y), "ConvEncoder3", net, height=0.24),
             _box(s, (xs[4], y), "$q(z \\mid y_{M^+}, M^+)$", dist, height=0.24),
             _box(s, (xs[5], y), "DeconvDecoder", net, height=0.24),
             _box(s, (xs[6], y), "completion", data, height=0.24)]
    for a, b in zip(boxes[:-1], boxes[1:]):
        _arrow(s, a, b, "z" if a is boxes[4] else None)
    coords2 = _box(s, (xs[5], 0.2), "target\nlocations $M^-$", data, height=0.24)
    _arrow(s, coords2, boxes[5])
    handles = [FancyBboxPatch((0, 0), 1, 1, facecolor=c, edgecolor="0.3") for c in (data, net, pool, dist)]
    s.legend(handles, ["data", "network (one set of weights per name)", "masked pooling (no weights)",
                       "distribution of z"], loc="lower left", ncol=2, fontsize=7.5, frameon=False,
             bbox_to_anchor=(0.0, -0.02))
    return fig


def plot_density_normalisation(ratios: Sequence[float], constant: Mapping[str, Sequence[float]],
                               feature_ratios: Sequence[float], features: Mapping[str, Sequence[float]],
                               value: float) -> Figure:
    """Two panels against the context ratio. Left: the pooled value of a constant image of ``value`` with
    and without the Division (the mask normalisation), one curve per entry of ``constant`` (at ``ratios``).
    Right: how far the pooled representation of a context lies from that of the full image (relative
    distance), one curve per entry of ``features`` (at ``feature_ratios``)."""
    fig = Figure(figsize=(7.6, 3.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    r = 100 * np.asarray(ratios, dtype=float)
    for i, (label, ys) in enumerate(constant.items()):
        left.plot(r, ys, "o-", color=f"C{i}", label=label, ms=4)
    left.axhline(value, color="0.4", linestyle=":", linewidth=1)
    left.text(r[0], value * 1.04, f"the constant {value:g}", va="bottom", fontsize=7.5, color="0.3")
    left.set_xlabel("context ratio (%)")
    left.set_ylabel("pooled value")
    left.set_title("a constant image, pooled over its context", fontsize=9.5)
    left.legend(fontsize=7.5)
    left.set_ylim(0, value * 1.25)
    rf = 100 * np.asarray(feature_ratios, dtype=float)
    for i, (label, ys) in enumerate(features.items()):
        right.plot(rf, ys, "o-", color=f"C{i}", label=label, ms=4)
    right.set_xlabel("context ratio (%)")
    right.set_ylabel(r"$\|r(M^+) - r(M)\| \,/\, \|r(M)\|$")
    right.set_title("ConvEncoder1 features of digits: context vs full image", fontsize=9.5)
    right.set_ylim(bottom=0)
    right.legend(fontsize=7.5)
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
    return fig


def plot_elbo_gap(ks: Sequence[int], elbo: Sequence[float], iw: Sequence[float], elbo_se: Sequence[float] | None = None,
                  iw_se: Sequence[float] | None = None, title: str | None = None) -> Figure:
    """The ELBO (Eq. 5) and the importance-sampled log-likelihood against the number of samples K, with
    error bars of two standard errors when given. The ELBO's expectation does not depend on K; the
    importance-sampled estimate rises towards log p as K grows."""
    fig = Figure(figsize=(5.6, 3.4), layout="constrained")
    ax = fig.add_subplot()
    k = np.asarray(ks, dtype=float)
    for ys, se, label, color in ((elbo, elbo_se, "ELBO, Eq. 5 (K samples)", "C0"),
                                 (iw, iw_se, "importance-sampled log p (K samples)", "C3")):
        ys = np.asarray(ys, dtype=float)
        if se is not None:
            ax.errorbar(k, ys, yerr=2 * np.asarray(se, dtype=float), fmt="o-", color=color, label=label, capsize=3)
        else:
            ax.plot(k, ys, "o-", color=color, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(k)
    ax.set_xticklabels([f"{int(v)}" for v in k])
    ax.set_xlabel("samples K")
    ax.set_ylabel("nats per image (missing pixels)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def _sigma_map(std: Tensor) -> Tensor:
    """(C, H, W) or (H, W) standard deviations -> (H, W); RGB: the mean over the channels."""
    arr = std.detach().cpu().float()
    return arr.mean(0) if arr.dim() == 3 else arr


def _sigma_panel(fig, ax, std: Tensor, title: str, vmin: float | None = None, vmax: float | None = None):
    """A map of standard deviations with its colour bar; the scale runs from ``vmin`` to ``vmax`` (default:
    the map's own range), so that small differences above a floor (a fixed decoder sigma) stay visible."""
    arr = _sigma_map(std)
    lo = float(arr.min()) if vmin is None else vmin
    hi = float(arr.max()) if vmax is None else vmax
    im = ax.imshow(arr.numpy(), cmap="magma", vmin=lo, vmax=max(hi, lo + 1e-6), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.75, pad=0.02)


def plot_posterior_samples(truth: Tensor, mask: Tensor, samples: Tensor, mean: Tensor, std: Tensor,
                           row_titles: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """One row per image: its context, S completions from draws z ~ q(z | context), the predictive mean
    (z at the mean of q), the predictive standard deviation of y (a map, colour bar in pixel units) and
    the truth.

    ``truth`` (B, C, H, W), ``mask`` (B, 1, H, W), ``samples`` (S, B, C, H, W), ``mean``/``std`` (B, C, H, W).
    """
    truth, mask = _batch(truth).cpu(), _batch(mask).cpu()
    s, b = samples.shape[:2]
    n = s + 4
    fig = Figure(figsize=(1.12 * n + 0.6, 1.15 * b + 0.5), layout="constrained")
    axes = np.asarray(fig.subplots(b, n, squeeze=False))
    maps = torch.stack([_sigma_map(std[i]) for i in range(b)])
    lo, hi = float(maps.min()), float(maps.max())  # one colour scale for every row
    for i in range(b):
        _show(axes[i, 0], context_image(truth[i], mask[i]), "context" if i == 0 else None)
        if row_titles is not None:
            axes[i, 0].set_ylabel(row_titles[i], fontsize=8)
        for k in range(s):
            _show(axes[i, 1 + k], samples[k, i].cpu().clamp(0, 1), f"z sample {k + 1}" if i == 0 else None)
        _show(axes[i, s + 1], mean[i].cpu().clamp(0, 1), "mean (z = mean of q)" if i == 0 else None)
        _sigma_panel(fig, axes[i, s + 2], std[i], "predictive σ of y" if i == 0 else "", lo, hi)
        _show(axes[i, s + 3], truth[i], "truth" if i == 0 else None)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_ifnp_explorer(model, image: Tensor, index: int, ratio: float = 0.2, samples: int = 3, kind: str = "random",
                       seed: int = 0) -> Figure:
    """The widget figure of the IFNP chapter: one test image at a context ``ratio`` (the evaluation mask of
    its test ``index``, or a structured ``kind``), the completion from the mean of q(z | context) with its
    PSNR (whole / missing pixels), ``samples`` completions from draws of z (seeded by ``seed``), and the
    predictive standard deviation of y (the mixture over 16 draws of z)."""
    image = _batch(image)
    mask = make_mask(kind, index, image.shape[-1], ratio, seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        comp = model.complete(image, mask, samples=samples)
        _, std = predictive_moments(model, image, mask, samples=16)
    n = samples + 4
    fig = Figure(figsize=(1.25 * n + 0.5, 2.1), layout="constrained")
    axes = fig.subplots(1, n)
    what = f"{100 * ratio:.0f} % random pixels" if kind == "random" else f"'{kind}' mask"
    _show(axes[0], context_image(image[0], mask[0]), f"context: {int(mask.sum())} px", fontsize=9)
    mean = comp.mean.cpu().clamp(0, 1)
    _show(axes[1], mean[0], f"mean\n{_psnr_line(mean, image, mask)}", fontsize=8)
    for k in range(samples):
        _show(axes[2 + k], comp.samples[k, 0].cpu().clamp(0, 1), f"z sample {k + 1}", fontsize=9)
    _sigma_panel(fig, axes[samples + 2], std[0], "predictive σ of y")
    _show(axes[-1], image[0], "truth", fontsize=9)
    fig.suptitle(f"{getattr(model, 'name', 'model')}: test image {index}, {what}", fontsize=10)
    return fig


# ---- the set convolution ("Beyond the paper") --------------------------------------------------------------


def plot_setconv(image: Tensor, mask: Tensor, signal: Tensor, density: Tensor, k: int) -> Figure:
    """ConvCNP's set convolution of one context, four panels: the context (missing pixels blue), the
    density pool(mask) (the fraction of a k x k window that is observed), the normalised signal
    pool(y * mask) / pool(mask) (an interpolation of the context; blue where no context is within reach), and
    the truth."""
    if image.dim() == 4:
        image, mask, signal, density = image[0], mask[0], signal[0], density[0]
    fig = Figure(figsize=(8.4, 2.5), layout="constrained")
    axes = fig.subplots(1, 4)
    axes[0].imshow(context_image(image, mask), interpolation="nearest")
    axes[0].set_title(f"context ({float(mask.mean()):.0%} of the pixels)", fontsize=8)
    im = axes[1].imshow(density[0].numpy(), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(im, ax=axes[1], shrink=0.8)
    axes[1].set_title(f"density: pool{k}(mask)", fontsize=8)
    sig = np.repeat(to_display(signal.clamp(0, 1))[..., None], 3, -1) if signal.shape[0] == 1 else to_display(signal)
    reach = (density[0] > 0).numpy()[..., None]
    axes[2].imshow(sig * reach + np.asarray(MISSING_COLOR)[None, None] * (1 - reach), interpolation="nearest")
    axes[2].set_title(f"signal: pool{k}(y·mask) / pool{k}(mask)", fontsize=8)
    axes[3].imshow(to_display(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes[3].set_title("truth", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig

