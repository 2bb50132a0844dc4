"""Figures and small computations of the chapter "Attention for images: LPA and GCA".

* **LPA** (paper Fig. 3, Eq. 7-8): :func:`pooling_coefficients` computes, with exact fractions, which
  multiple of every input pixel x_k ends up in every cell after one or two zero-padded 3x3 mean
  poolings; :func:`plot_lpa_worked_example` draws them. :func:`image_lpa_steps` runs LPA on a masked
  image (the same dictionary as :meth:`ifanp.models.grid.GridNP.lpa_steps` returns for the features),
  :func:`lpa_reach` says which pixels the context has reached after each step, and
  :func:`plot_lpa_steps` draws the steps side by side.
* **GCA** (Eq. 9-10 as cross-attention): :func:`attention_matrix` gives the attention weights of every
  target cell over the key cells (the rows :meth:`~ifanp.models.grid.GridNP.attention_map` returns one
  at a time), :func:`attention_distances` how far from its target the attention looks, and
  :func:`plot_attention_explorer` (also the widget's callback) one target pixel's map over its context.
* **Cost**: :func:`attention_cost` times one GCA forward and one whole-model forward for several image
  sizes and key resolutions and measures the attention matrix; :func:`plot_attention_cost` draws both
  on log-log axes with fitted slopes.

Conventions: a context picture paints missing pixels in :data:`ifanp.plotting.images.MISSING_COLOR`;
attention weights are drawn with the ``magma`` colour map (black = no weight); pixels that the context
has not reached are painted in the same blue as missing pixels. Every figure is a
:class:`matplotlib.figure.Figure` built without pyplot. The widget of :mod:`ifanp.widgets.attention`
only wires controls to :func:`plot_attention_explorer`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator
from torch import Tensor

from ..analysis import loglog_slope
from ..data.masks import eval_mask
from ..introspect import cell_centres, common_denominator, effective_neighbours
from ..reproduce import LABELS
from .images import MISSING_COLOR, context_image, to_display

__all__ = [
    "LPA_STEP_TITLES",
    "plot_attention_cost",
    "plot_attention_explorer",
    "plot_lpa_steps",
    "plot_lpa_worked_example",
    "plot_weight_grids",
]

#: Panel titles of the LPA steps, in the order of Fig. 3.
LPA_STEP_TITLES = {
    "input": "input",
    "output1": "Output1\n(1st 3x3 mean pool)",
    "output2": "Output2\n(2nd 3x3 mean pool)",
    "output": "LPA output\n(Eq. 7, weights of Eq. 8)",
}


# ---- LPA: the worked example of Fig. 3 ---------------------------------------------------------------


def _cell_text(v, den: int | None) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, Fraction):
        return f"{int(v * den)}" if den not in (None, 1) else str(v)
    return f"{float(v):.3f}"


def plot_weight_grids(panels: Mapping[str, Any], title: str | None = None, cmap: str = "Blues") -> Figure:
    """One small grid per panel with its numbers written in the cells and shaded by value (one colour
    scale for all panels, so that equal weights look equal).

    ``panels[label]`` is a 2-D array of :class:`~fractions.Fraction` (written as numerators over the panel's
    common denominator, which is added to the panel title with the sum of the weights), of floats (three
    decimals, the sum in the title) or of strings (labels only, no shading).
    """
    if not panels:
        raise ValueError("plot_weight_grids needs at least one panel.")
    n = len(panels)
    numbers = [float(v) for g in panels.values() for v in np.asarray(g, dtype=object).ravel()
               if not isinstance(v, str)]
    vmax = max(max(numbers, default=1.0), 1e-12) * 1.6
    fig = Figure(figsize=(2.35 * n, 2.75), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n))
    for ax, (label, grid) in zip(axes, panels.items()):
        grid = np.asarray(grid, dtype=object)
        if grid.ndim != 2:
            raise ValueError(f"panel {label!r} must be a 2-D grid, got shape {grid.shape}.")
        numeric = not isinstance(grid.flat[0], str)
        den = common_denominator(grid.ravel()) if numeric and isinstance(grid.flat[0], Fraction) else None
        if numeric:
            vals = np.array([[float(v) for v in row] for row in grid])
            ax.imshow(vals, cmap=cmap, vmin=0, vmax=vmax)
            total = sum(grid.ravel(), Fraction(0)) if den else float(vals.sum())
            extra = f"\n(x 1/{den}; sum {total})" if den else f"\n(sum {total:.3f})"
        else:
            ax.imshow(np.zeros(grid.shape), cmap="Greys", vmin=0, vmax=1)
            extra = ""
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, _cell_text(v, den), ha="center", va="center", fontsize=10)
        ax.set_xticks(np.arange(grid.shape[1] + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(grid.shape[0] + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="0.5", lw=0.8)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        ax.set_title(f"{label}{extra}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_lpa_worked_example(centre_weights: Mapping[str, Any]) -> Figure:
    """Fig. 3 as numbers: the 3x3 input x1..x9 inside its ring of zero padding, then for each entry of
    ``centre_weights`` (label -> 3x3 grid of fractions or floats) the multiple of every input in the
    centre cell of that output."""
    labels = np.array([[f"$x_{{{3 * i + j + 1}}}$" for j in range(3)] for i in range(3)], dtype=object)
    padded = np.full((5, 5), "0", dtype=object)
    padded[1:4, 1:4] = labels
    fig = plot_weight_grids({"input with zero padding": padded, **centre_weights})
    ax = fig.axes[0]
    ax.add_patch(Rectangle((0.5, 0.5), 3, 3, fill=False, ec="C3", lw=2))
    for (i, j), v in np.ndenumerate(padded):
        if v == "0":
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, color="0.85", zorder=0))
    return fig


# ---- LPA on a real context -------------------------------------------------------------------------------


def plot_lpa_steps(steps: Mapping[str, Tensor], index: int = 0, channel: int | str = 0,
                   reach: Mapping[str, Tensor] | None = None,
                   pictures: Mapping[str, np.ndarray] | None = None,
                   title: str | None = None, shared_scale: bool = True, ncols: int = 3) -> Figure:
    """The steps of LPA for image ``index``, ``ncols`` panels per row: the ``pictures`` (label -> an array
    for ``imshow``, e.g. the context picture), then input, Output1, Output2, output, and the effective
    number of neighbours of Eq. 8's weights (:func:`effective_neighbours`, 1 to 9).

    ``steps`` is the dictionary of :meth:`~ifanp.models.grid.GridNP.lpa_steps` or :func:`image_lpa_steps`.
    ``channel`` is a channel index or ``"norm"`` (the Euclidean norm over channels). With ``reach`` (from
    :func:`lpa_reach`) the cells that the context has not reached are painted in the missing-pixel blue and
    the titles give the fraction reached. ``shared_scale``: one grey scale for the four maps, so that the
    smoothing shows; otherwise each map is scaled from its own minimum (black) to its maximum (white).
    """
    keys = ("input", "output1", "output2", "output")
    pictures = dict(pictures or {})

    def pick(t: Tensor) -> np.ndarray:
        t = t[index].detach().cpu().float()
        t = t.norm(dim=0) if channel == "norm" else t[int(channel)]
        return t.numpy()

    maps = {k: pick(steps[k]) for k in keys}
    lo = min(m.min() for m in maps.values()) if shared_scale else None
    hi = max(m.max() for m in maps.values()) if shared_scale else None
    cmap = ListedColormap(np.asarray(_gray_colors())).with_extremes(bad=MISSING_COLOR)
    n = len(pictures) + len(keys) + 1
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(2.45 * ncols + 0.4, 2.55 * nrows + 0.3), layout="constrained")
    axes = list(np.asarray(fig.subplots(nrows, ncols, squeeze=False)).ravel())
    for ax in axes[n:]:
        ax.remove()
    for ax in axes[:n]:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax, (label, picture) in zip(axes, pictures.items()):
        kw = {"cmap": "gray", "vmin": 0, "vmax": 1} if np.ndim(picture) == 2 else {}
        ax.imshow(picture, interpolation="nearest", **kw)
        ax.set_title(label, fontsize=9)
    for ax, k in zip(axes[len(pictures):], keys):
        m = maps[k]
        subtitle = LPA_STEP_TITLES[k]
        if reach is not None:
            r = reach[k][index, 0].detach().cpu().numpy()
            m = np.ma.masked_array(m, mask=~r)
            subtitle += f"\n{r.mean():.1%} reached"
        vmin, vmax = (lo, hi) if shared_scale else (float(m.min()), float(m.max()))
        ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1e-6, interpolation="nearest")
        ax.set_title(subtitle, fontsize=9)
    ax = axes[n - 1]
    eff = effective_neighbours(steps["weights"][index:index + 1])[0].detach().cpu().numpy()
    im = ax.imshow(eff, cmap="viridis", vmin=1, vmax=9, interpolation="nearest")
    ax.set_title("Eq. 8: effective number\nof neighbours", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8, ticks=[1, 3, 5, 7, 9])
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _gray_colors(n: int = 256):
    g = np.linspace(0, 1, n)
    return np.stack([g, g, g, np.ones(n)], axis=1)


# ---- GCA: attention maps -----------------------------------------------------------------------------------


def _eval_context(image: Tensor, index: int, ratio: float) -> Tensor:
    return eval_mask([int(index)], image.shape[-1], float(ratio))


@torch.no_grad()
def plot_attention_explorer(model, image: Tensor, index: int, row: int, col: int, ratio: float = 0.2,
                            head: int = 0, mask: Tensor | None = None) -> Figure:
    """One target pixel's global cross-attention over its context (the chapter's widget figure).

    ``image`` (C, H, W) is a test image and ``index`` its index in the test split, which fixes the
    evaluation mask at ``ratio`` (:func:`ifanp.data.eval_mask`; pass ``mask`` (1, H, W) to use another).
    Four panels, two by two: the context (missing pixels blue) with the target pixel (cyan cross); the
    attention weights of the target's cell over the key cells, ``magma`` from black (no weight) to yellow,
    over the context picture (cells without context have weight 0 and stay blue); the model's completion; the
    weight of every context cell against its distance from the target, with the uniform weight
    1/(number of context cells) as a dotted line.
    """
    if image.dim() == 4:
        image = image[0]
    size = image.shape[-1]
    if not (0 <= row < size and 0 <= col < size):
        raise ValueError(f"(row, col) must lie inside the {size}x{size} image; got ({row}, {col}).")
    m = _eval_context(image, index, ratio) if mask is None else (mask[None] if mask.dim() == 3 else mask)
    m = m.float()
    x = image[None].float()
    weights = model.attention_map(x, m, row, col)[0, head].cpu()  # (r, r)
    d = model.cfg["down"]
    completion = model.complete(x, m).mean[0].cpu().clamp(0, 1)
    ctx = context_image(image, m[0])
    up = weights.repeat_interleave(d, 0).repeat_interleave(d, 1).numpy()

    fig = Figure(figsize=(8.0, 7.0), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    axes[0].imshow(ctx, interpolation="nearest")
    axes[0].set_title(f"context: {ratio:.0%} of the pixels\n(blue: missing)", fontsize=9)
    axes[1].imshow(ctx, interpolation="nearest")
    overlay = np.ma.masked_array(up, mask=up <= 0)
    im = axes[1].imshow(overlay, cmap="magma", vmin=0, vmax=max(float(up.max()), 1e-12), alpha=0.9,
                        interpolation="nearest")
    cbar = fig.colorbar(im, ax=axes[1], shrink=0.8)
    cbar.set_label("attention weight", fontsize=9)
    cbar.ax.tick_params(labelsize=7)
    r0, c0 = (row // d) * d, (col // d) * d
    axes[1].add_patch(Rectangle((c0 - 0.5, r0 - 0.5), d, d, fill=False, ec="cyan", lw=1.2))
    heads = model.cfg.get("gca_heads", 1)
    axes[1].set_title(f"GCA weights of the target's cell{f' (head {head})' if heads > 1 else ''}\n"
                      f"over the {int((weights > 0).sum())} context cells ({size // d}x{size // d})",
                      fontsize=9)
    axes[2].imshow(to_display(completion), cmap="gray", vmin=0, vmax=1, interpolation="nearest")

    name = getattr(model, "name", "model")
    axes[2].set_title(f"{LABELS.get(name, name)} completion", fontsize=9)
    for ax in axes[:3]:
        ax.plot(col, row, "+", color="cyan", ms=11, mew=2)
        ax.set_xticks([])
        ax.set_yticks([])
    centres = cell_centres(size, d)
    dist = (centres - torch.tensor([float(row), float(col)])).norm(dim=1).numpy()
    wflat = weights.reshape(-1).numpy()
    has = wflat > 0
    ax = axes[3]
    ax.scatter(dist[has], wflat[has], s=10, color="C3", alpha=0.8, label="context cells")
    if has.any():
        ax.axhline(1 / has.sum(), color="0.4", ls=":", lw=1, label="uniform weight")
        attended = float((dist * wflat).sum())
        uniform = float(dist[has].mean())
        ax.set_title(f"mean attended distance {attended:.1f} px\n"
                     f"(uniform over the context: {uniform:.1f} px)", fontsize=9)
    ax.set_xlabel("distance from the target pixel (pixels)", fontsize=9)
    ax.set_ylabel("attention weight", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    fig.suptitle(f"target pixel (row {row}, column {col})", fontsize=10)
    return fig


# ---- the cost of global attention ------------------------------------------------------------------------


def plot_attention_cost(records: Sequence[Mapping[str, float]], fit_from: int = 0,
                        title: str | None = None) -> Figure:
    """Two log-log panels against the number of pixels: the time of one GCA forward and of one whole-model
    forward (top), the memory of the attention matrix (bottom), one line per ``down`` with the fitted slope
    in the legend (slope 2: quadratic in the pixels). ``fit_from`` drops the smallest sizes from
    the fits of the times (fixed overheads dominate there); the memory, exact, is fitted on every size."""
    downs = sorted({int(r["down"]) for r in records})
    fig = Figure(figsize=(6.6, 7.4), layout="constrained")
    ax_t, ax_m = fig.subplots(2, 1)
    pixels_all = sorted({int(r["pixels"]) for r in records})
    for i, down in enumerate(downs):
        rec = sorted((r for r in records if int(r["down"]) == down), key=lambda r: r["pixels"])
        n = np.array([r["pixels"] for r in rec], dtype=float)
        where = "full resolution" if down == 1 else f"keys and queries at 1/{down}"
        series = [(ax_t, "gca_s", "-", "o", f"GCA, {where}"),
                  (ax_t, "model_s", "--", "s", f"whole model, {where}"),
                  (ax_m, "attn_bytes", "-", "o", f"attention matrix, {where}")]
        for ax, key, ls, marker, label in series:
            y = np.array([r[key] for r in rec], dtype=float)
            if key == "attn_bytes":
                y = y / 2**20
            color = f"C{i}"
            ax.plot(n, y, marker, color=color, ms=5)
            start = 0 if key == "attn_bytes" else fit_from  # the memory is exact: fit every size
            nf, yf = n[start:], y[start:]
            if len(nf) >= 2:
                slope, intercept = loglog_slope(nf, yf)
                ax.plot(nf, np.exp(intercept) * nf**slope, ls, color=color, lw=1.3,
                        label=f"{label}: slope {slope:.2f}")
            else:
                ax.plot(n, y, ls, color=color, lw=1.3, label=label)
    for ax, ylabel in ((ax_t, "seconds per forward pass"), (ax_m, "MiB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(FixedLocator(pixels_all))
        ax.xaxis.set_major_formatter(FixedFormatter([f"{math.isqrt(p)}²" for p in pixels_all]))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("image size (number of pixels h·w)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    ax_t.set_title("time (best of several runs)", fontsize=10)
    ax_m.set_title("attention matrix, one image, float32", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# ---- two models' attention side by side ----------------------------------------------------------------


@torch.no_grad()
def plot_attention_pair(models: Mapping[str, Any], image: Tensor, mask: Tensor, row: int, col: int) -> Figure:
    """GCA's attention weights of one target pixel (cyan cross) over the context cells, one panel per model
    (``magma``, each panel scaled to its own largest weight; blue: missing pixels), beside the context."""
    if image.dim() == 4:
        image = image[0]
    m = mask if mask.dim() == 4 else mask[None]
    x = image[None].float()
    ctx = context_image(image, m[0])
    fig = Figure(figsize=(2.6 * (len(models) + 1) + 0.6, 2.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(models) + 1))
    axes[0].imshow(ctx, interpolation="nearest")
    axes[0].set_title(f"context ({float(m.mean()):.0%}) and target", fontsize=8)
    for ax, (label, model) in zip(axes[1:], models.items()):
        w = model.attention_map(x, m, row, col)[0, 0].cpu()
        d = model.cfg["down"]
        up = w.repeat_interleave(d, 0).repeat_interleave(d, 1).numpy()
        ax.imshow(ctx, interpolation="nearest")
        im = ax.imshow(np.ma.masked_array(up, mask=up <= 0), cmap="magma", vmin=0, vmax=max(float(up.max()), 1e-12),
                       interpolation="nearest")
        fig.colorbar(im, ax=ax, shrink=0.75)
        ax.set_title(f"{label}: attention weights", fontsize=8)
    for ax in axes:
        ax.plot(col, row, "+", color="cyan", ms=11, mew=2)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig

