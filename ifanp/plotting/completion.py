"""Figures of the chapter "IFANP": the full model's architecture with the tensor shapes of a real model,
completions side by side in the layout of the paper's Fig. 6, and the exploration widget's figure.

* :func:`trace_shapes` runs one completion through a :class:`~ifanp.models.grid.GridNP` with forward hooks
  and records the shape of the tensor that leaves (or enters) every part; :func:`plot_ifanp_diagram` draws
  the architecture (paper Section 3) with those shapes in its boxes.
* :func:`response_maps` changes one observed pixel and maps how the completion changes;
  :func:`response_locality` measures how much of the change stays near the changed pixel and
  :func:`plot_response_maps` draws the maps. A model whose context reaches the decoder only through
  global means (IFNP, and the variants without GCA) cannot keep the change local.
* :func:`plot_completion_columns` draws the paper's Fig. 6 layout: one row per test image, the columns
  context, one column per model, truth.
* :func:`explorer_panels` computes what the widget shows for one model (the completion from the mean of
  q(z | context), a few completions from draws of z, and the predictive standard deviation of y), and
  :func:`plot_explorer` draws it for several models as ONE image with PIL (a mosaic of the panels, with
  text), so that an update of the widget of :mod:`ifanp.widgets.explore` takes tens of milliseconds.

Conventions, as in :mod:`ifanp.plotting.images`: missing pixels are painted in
:data:`~ifanp.plotting.images.MISSING_COLOR`; grey images run from black (0) to white (1); maps of a
predictive standard deviation (never a variance) use the ``magma`` colour map with a colour bar in pixel
units. Every plotting function returns a :class:`matplotlib.figure.Figure` built without ``pyplot``, except
:func:`plot_explorer`, which returns a ``PIL.Image.Image`` (a notebook shows either as the value of a cell).
"""
from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps, font_manager
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from ..analysis import completion_mean, explorer_panels, make_mask, predictive_moments, psnr_pair
from ..data.masks import structured_mask
from ..metrics import completion_metrics
from .images import context_image, plot_completion_grid, to_display

__all__ = [
    "DIAGRAM_COLORS",
    "format_shape",
    "mosaic",
    "plot_completion_columns",
    "plot_explorer",
    "plot_ifanp_diagram",
    "plot_response_maps",
]

#: Box colours of the architecture diagram (the same meaning as in the IFNP chapter's diagram).
DIAGRAM_COLORS = {"data": "#dbe8fb", "network": "#eeeeee", "pooling": "#e4f3e0", "distribution": "#fde3c8",
                  "attention": "#eadcf5"}


# ---- the architecture ------------------------------------------------------------------------------------


def format_shape(shape: Sequence[int] | None) -> str:
    """``(4, 64, 14, 14)`` -> ``"4×64×14×14"``; ``None`` -> ``""``."""
    return "" if shape is None else "×".join(str(int(s)) for s in shape)


def _box(ax, x, y, text, color, shape="", width=0.105, height=0.15, dashed=False, fontsize=8):
    """A rounded box at (x, y) with ``text`` and, below it in smaller grey type, the ``shape`` of its output."""
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.008",
                                facecolor=color, edgecolor="0.3", linewidth=0.9,
                                linestyle="--" if dashed else "-"))
    dy = 0.014 if shape else 0.0
    ax.text(x, y + dy, text, ha="center", va="center", fontsize=fontsize, color="0.45" if dashed else "black")
    if shape:
        ax.text(x, y - height / 2 + 0.01, shape, ha="center", va="bottom", fontsize=7.5, color="0.25")
    return (x, y, width, height)


def _edge(box, towards):
    """The point where the line from the centre of ``box`` to ``towards`` leaves the box."""
    x, y, w, h = box
    dx, dy = towards[0] - x, towards[1] - y
    if dx == 0 and dy == 0:
        return x, y
    t = min(w / 2 / abs(dx) if dx else np.inf, h / 2 / abs(dy) if dy else np.inf)
    return x + t * dx, y + t * dy


def _link(ax, a, b, color="0.25"):
    ax.add_patch(FancyArrowPatch(_edge(a, b[:2]), _edge(b, a[:2]), arrowstyle="-|>", mutation_scale=10, color=color,
                                 linewidth=1.0, shrinkA=2, shrinkB=2))


def plot_ifanp_diagram(shapes: Mapping[str, Sequence[int]], local_label: str = "LPA", title: str | None = None) -> Figure:
    """The IFANP architecture (paper Section 3, SPEC section 5.1) with ``shapes`` from :func:`trace_shapes`.

    From the top: the context, ConvEncoder1 (shared); then two columns, the deterministic path
    (LPA -> ConvEncoder2 -> GCA = R_pred) on the left and the latent path (Mask + Avgpool + Division ->
    ConvEncoder3 -> q(z | context)) on the right; at the bottom the decoder, which reads
    concat(R_pred, tile(z), coords), and its output. Every box shows the shape of the tensor it outputs
    (batch first). A part missing from ``shapes`` (a variant without it) is drawn dashed and labelled
    "none"; a model without GCA gets the masked global mean of R_{M+}, tiled over the grid, in GCA's place
    (SPEC section 5.4).
    """
    c = DIAGRAM_COLORS
    fig = Figure(figsize=(6.6, 7.4), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    s = {k: format_shape(v) for k, v in shapes.items()}
    deterministic = "encoder2" in shapes
    has_local, has_gca = "local" in shapes, "gca" in shapes
    rp = shapes.get("gca")
    if deterministic and rp is None and "decoder_input" in shapes:  # tiled mean: decoder input minus 2 coords
        b, cc, h, w = shapes["decoder_input"]
        rp = (b, cc - 2, h, w)
    xl, xr, xm, bw, bh = 0.27, 0.73, 0.5, 0.36, 0.085
    fs = 9

    inp = _box(ax, xm, 0.945, "context $y \\odot \\mathbf{1}_{M^+}$ and mask $\\mathbf{1}_{M^+}$", c["data"],
               s.get("input", ""), width=0.5, height=bh, fontsize=fs)
    enc1 = _box(ax, xm, 0.815, "ConvEncoder1 (shared by both paths)", c["network"], s.get("encoder1", ""),
                width=0.5, height=bh, fontsize=fs)
    local = _box(ax, xl, 0.665, local_label if has_local else "local module: none", c["attention"],
                 s.get("local", ""), dashed=not has_local, width=bw, height=bh, fontsize=fs)
    enc2 = _box(ax, xl, 0.535, "ConvEncoder2 → $R_{M^+}$" if deterministic else "ConvEncoder2: none",
                c["network"], s.get("encoder2", ""), dashed=not deterministic, width=bw, height=bh, fontsize=fs)
    if has_gca or not deterministic:
        gca = _box(ax, xl, 0.385, "GCA → $R_{pred}$\nqueries: target coords\nkeys: context cells" if has_gca
                   else "GCA: none", c["attention"], format_shape(rp) if has_gca else "", dashed=not has_gca,
                   width=bw, height=0.125, fontsize=fs - 0.5)
    else:
        gca = _box(ax, xl, 0.385, "no GCA: Mask + Avgpool\n+ Division, tiled over\nthe grid → $R_{pred}$",
                   c["pooling"], format_shape(rp), width=bw, height=0.125, fontsize=fs - 0.5)
    pool = _box(ax, xr, 0.665, "Mask + Avgpool + Division", c["pooling"], s.get("pooled", ""), width=bw,
                height=bh, fontsize=fs)
    enc3 = _box(ax, xr, 0.535, "ConvEncoder3 → $\\mu$, raw $\\sigma$", c["network"], s.get("encoder3", ""),
                width=bw, height=bh, fontsize=fs)
    q = _box(ax, xr, 0.385, "$z \\sim q(z \\mid y_{M^+}, M^+)$", c["distribution"], s.get("z", ""), width=bw,
             height=0.125, fontsize=fs)
    up = f"{s['decoder']} → upsampled {s['up']}" if "decoder" in shapes and "up" in shapes else ""
    dec = _box(ax, xm, 0.225, "DeconvDecoder on concat($R_{pred}$, tile($z$), coords)", c["network"], up,
               width=0.62, height=bh, fontsize=fs)
    coords = _box(ax, 0.93, 0.225, "target\ncoords", c["data"], width=0.11, height=bh, fontsize=fs - 1)
    out = _box(ax, xm, 0.095, "mean $\\mu$ and std $\\sigma$ of every pixel $y_{ij}$", c["data"],
               s.get("output", ""), width=0.5, height=bh, fontsize=fs)
    for a, b in ((inp, enc1), (enc1, local), (local, enc2), (enc2, gca), (gca, dec), (enc1, pool), (pool, enc3),
                 (enc3, q), (q, dec), (coords, dec), (dec, out)):
        _link(ax, a, b)
    ax.text(0.035, 0.535, "deterministic path", rotation=90, ha="center", va="center", fontsize=fs, color="0.3")
    ax.text(0.965, 0.535, "latent path (as in IFNP)", rotation=90, ha="center", va="center", fontsize=fs,
            color="0.3")
    handles = [Patch(facecolor=c[k], edgecolor="0.3", label=lab) for k, lab in
               (("data", "data"), ("network", "convolutions"), ("attention", "attention / local module"),
                ("pooling", "masked mean (no weights)"), ("distribution", "distribution of z"))]
    ax.legend(handles=handles, loc="lower center", ncol=3, fontsize=7.5, frameon=False, bbox_to_anchor=(0.5, -0.07))
    if title:
        ax.set_title(title, fontsize=10)
    return fig


# ---- completions side by side (Fig. 6) -------------------------------------------------------------------------


def _show(ax, picture, title=None, fontsize=8.5):
    if isinstance(picture, Tensor):
        picture = to_display(picture)
    kw = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0} if picture.ndim == 2 else {}
    ax.imshow(picture, interpolation="nearest", **kw)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize)


def plot_completion_columns(truth: Tensor, masks: Tensor, predictions: Mapping[str, Tensor],
                            row_labels: Sequence[str] | None = None, title: str | None = None,
                            show_psnr: bool = True) -> Figure:
    """The paper's Fig. 6 layout: one row per test image; columns: the context, one column per entry of
    ``predictions`` (in its order), the truth.

    ``truth`` (B, C, H, W) in [0, 1], ``masks`` (B, 1, H, W), ``predictions`` maps a column title to
    completions (B, C, H, W). With ``show_psnr`` every completion carries "whole / missing" PSNR in dB
    below it (MAX = 1; whole image as in the paper, and the missing pixels only).
    """
    truth = truth.detach().cpu()
    masks = masks.detach().cpu()
    if truth.dim() != 4 or masks.dim() != 4 or masks.shape[0] != truth.shape[0]:
        raise ValueError(f"truth (B, C, H, W) and masks (B, 1, H, W) must match; got {tuple(truth.shape)} and "
                         f"{tuple(masks.shape)}.")
    for label, pred in predictions.items():
        if tuple(pred.shape) != tuple(truth.shape):
            raise ValueError(f"predictions[{label!r}] has shape {tuple(pred.shape)}; expected {tuple(truth.shape)}.")
    b = truth.shape[0]
    columns = ["context", *predictions, "truth"]
    n = len(columns)
    fig = Figure(figsize=(1.05 * n + 0.5, (1.18 if show_psnr else 1.05) * b + 0.45), layout="constrained")
    axes = np.asarray(fig.subplots(b, n, squeeze=False))
    for i in range(b):
        _show(axes[i, 0], context_image(truth[i], masks[i]), "context" if i == 0 else None)
        for j, (label, pred) in enumerate(predictions.items(), start=1):
            p = pred[i].detach().cpu().clamp(0, 1)
            _show(axes[i, j], p, label if i == 0 else None)
            if show_psnr:
                whole, missing = psnr_pair(p, truth[i], masks[i])
                axes[i, j].set_xlabel(f"{whole:.1f} / {missing:.1f}", fontsize=7, labelpad=1.5)
        _show(axes[i, -1], truth[i], "truth" if i == 0 else None)
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=8)
    if title:
        note = "\n(under each completion: PSNR of the whole image / of the missing pixels, dB)" if show_psnr else ""
        fig.suptitle(title + note, fontsize=9.5)
    return fig


# ---- how far the context reaches ----------------------------------------------------------------------------


def plot_response_maps(image: Tensor, mask: Tensor, pixels: Sequence[tuple[int, int]], maps: Mapping[str, Tensor],
                       locality: Mapping[str, Tensor] | None = None, title: str | None = None) -> Figure:
    """One row per model, one column per changed pixel: the map of :func:`response_maps` (``magma``, black =
    no change, each panel scaled to its own largest change), the changed pixel marked with a cyan circle.
    The first column is the context with all the changed pixels marked. ``locality`` (from
    :func:`response_locality`) goes under each panel."""
    image = image[0] if image.dim() == 4 else image
    mask = mask[0] if mask.dim() == 4 else mask
    p = len(pixels)
    fig = Figure(figsize=(1.35 * (p + 1) + 0.9, 1.4 * len(maps) + 0.5), layout="constrained")
    axes = np.asarray(fig.subplots(len(maps), p + 1, squeeze=False))
    for i, (label, m) in enumerate(maps.items()):
        _show(axes[i, 0], context_image(image, mask), "context" if i == 0 else None)
        for r, c in pixels:
            axes[i, 0].plot(c, r, "o", ms=6, mfc="none", mec="cyan", mew=1.3)
        axes[i, 0].set_ylabel(label, fontsize=8.5)
        for j, (r, c) in enumerate(pixels, start=1):
            arr = m[j - 1].numpy()
            axes[i, j].imshow(arr, cmap="magma", vmin=0, vmax=max(float(arr.max()), 1e-12), interpolation="nearest")
            axes[i, j].plot(c, r, "o", ms=6, mfc="none", mec="cyan", mew=1.3)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title(f"change pixel ({r}, {c})", fontsize=8)
            if locality is not None:
                axes[i, j].set_xlabel(f"locality {float(locality[label][j - 1]):.1f}", fontsize=7, labelpad=1.5)
    if title:
        fig.suptitle(title, fontsize=9.5)
    return fig


# ---- the exploration widget's figure -------------------------------------------------------------------------


def _rgb(picture: np.ndarray) -> np.ndarray:
    return np.repeat(picture[..., None], 3, axis=-1) if picture.ndim == 2 else picture


def mosaic(tiles: Sequence[Sequence[np.ndarray | None]], gap: int = 2, background: float = 1.0) -> np.ndarray:
    """Lay out RGB tiles (H, W, 3), all of one size, on a grid with ``gap`` pixels between them; ``None``
    leaves a tile empty. Returns one (rows * (H + gap) - gap, cols * (W + gap) - gap, 3) array."""
    first = next(t for row in tiles for t in row if t is not None)
    h, w = first.shape[:2]
    rows, cols = len(tiles), max(len(r) for r in tiles)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), background, dtype=np.float32)
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            if tile is not None:
                if tile.shape[:2] != (h, w):
                    raise ValueError(f"all tiles must be {h}x{w}; tile ({i}, {j}) is {tile.shape[0]}x{tile.shape[1]}.")
                out[i * (h + gap): i * (h + gap) + h, j * (w + gap): j * (w + gap) + w] = tile[..., :3]
    return out


@lru_cache(maxsize=8)
def _font(size: int):
    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


def plot_explorer(models: Mapping[str, object], image: Tensor, index: int, names: Sequence[str] | None = None,
                  kind: str = "random", ratio: float = 0.2, samples: int = 3, seed: int = 0, draws: int = 16,
                  sigma_max: float | None = None, scale: int = 3, cache: MutableMapping | None = None):
    """The widget's figure, as a PIL image: one test image (``index``, its index in the test split, fixes the
    random mask) completed by the models ``names`` (keys of ``models``; default all), one row per model.

    Columns: the context (mask ``kind``: ``"random"``, the evaluation mask of the image at ``ratio``, or a
    structured kind, see :func:`ifanp.plotting.images.make_mask`), the completion from the mean of
    q(z | context), ``samples`` completions from draws of z (``seed`` seeds the draws, not the mask), the
    predictive standard deviation of y over max(``samples``, ``draws``) draws (:func:`explorer_panels`;
    ``magma`` colours from 0 to ``sigma_max``, default the largest value shown, with a colour bar in pixel
    units), and the truth. Each row label carries the completion's PSNR (whole image / missing pixels).

    The figure is drawn with PIL, not matplotlib: the panels are one array (:func:`mosaic`) enlarged
    ``scale`` times, the labels are text on it. This keeps an update of the widget of
    :mod:`ifanp.widgets.explore` within a few tens of milliseconds; a Jupyter notebook shows the image
    as the value of a cell. ``cache`` (a dict) keeps the computed panels between calls, keyed by
    (model name, image, kind, ratio, samples, seed, draws).
    """
    names = list(models) if names is None else list(names)
    unknown = [n for n in names if n not in models]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {list(models)}.")
    if not names:
        raise ValueError("choose at least one model.")
    image = image[0] if image.dim() == 4 else image
    mask = make_mask(kind, int(index), image.shape[-1], ratio)[0]  # the evaluation mask: seed 0
    panels = {}
    for name in names:
        key = (name, int(index), kind, round(float(ratio), 4) if kind == "random" else None, int(samples), int(seed),
               int(draws), id(models[name]))
        if cache is not None and key in cache:
            panels[name] = cache[key]
            continue
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            panels[name] = explorer_panels(models[name], image, mask, samples=samples, draws=draws)
        if cache is not None:
            cache[key] = panels[name]
    stds = {n: (p["std"].mean(0) if p["std"].dim() == 3 else p["std"]).numpy() for n, p in panels.items()}
    vmax = float(sigma_max) if sigma_max is not None else max(float(v.max()) for v in stds.values())
    vmax = max(vmax, 1e-6)
    cmap = colormaps["magma"]
    context = context_image(image, mask)
    truth = _rgb(to_display(image))
    tiles = []
    for name in names:
        p = panels[name]
        row = [context, _rgb(to_display(p["mean"]))]
        row += [_rgb(to_display(t)) for t in p["samples"]]
        row += [cmap(np.clip(stds[name] / vmax, 0, 1))[..., :3], truth]
        tiles.append(row)
    gap = 2
    picture = mosaic(tiles, gap=gap)
    big = np.repeat(np.repeat(picture, scale, axis=0), scale, axis=1)

    # The canvas: a title line, column titles, row labels on the left, a colour bar on the right.
    h, w = image.shape[-2:]
    tile_h, tile_w, step_x, step_y = h * scale, w * scale, (w + gap) * scale, (h + gap) * scale
    font, small = _font(13), _font(11)
    left, top, right, bottom = 150, 46, 80, 8
    canvas = Image.new("RGB", (left + big.shape[1] + right, top + big.shape[0] + bottom), "white")
    canvas.paste(Image.fromarray((big * 255).round().astype(np.uint8)), (left, top))
    draw = ImageDraw.Draw(canvas)
    what = f"{100 * ratio:.0f} % random pixels" if kind == "random" else f"'{kind}' mask"
    draw.text((left, 4), f"test index {int(index)}, {what}: {int(mask.sum())} pixels observed; "
              f"σ over {max(samples, draws)} draws of z", fill="black", font=font)
    col_titles = ["context", "mean", *[f"z draw {k + 1}" for k in range(samples)], "σ of y", "truth"]
    for j, t in enumerate(col_titles):
        draw.text((left + j * step_x + tile_w / 2, top - 4), t, fill="black", font=font, anchor="md")
    for i, name in enumerate(names):
        whole, missing = psnr_pair(panels[name]["mean"], image, mask)
        y = top + i * step_y + tile_h / 2
        draw.text((left - 8, y - 9), name, fill="black", font=font, anchor="rm")
        draw.text((left - 8, y + 9), f"{whole:.1f} / {missing:.1f} dB", fill=(70, 70, 70), font=small,
                  anchor="rm")
    draw.text((left - 8, top - 4), "PSNR whole / missing", fill=(70, 70, 70), font=small, anchor="rd")
    # colour bar of sigma, from vmax (top) to 0 (bottom)
    bar_h = max(big.shape[0] - 12, 40)
    x0, y0 = left + big.shape[1] + 10, top + 6
    ramp = cmap(np.linspace(1, 0, bar_h))[:, :3]
    bar = np.repeat(ramp[:, None, :], 12, axis=1)
    canvas.paste(Image.fromarray((bar * 255).round().astype(np.uint8)), (x0, y0))
    draw.rectangle((x0, y0, x0 + 11, y0 + bar_h - 1), outline=(90, 90, 90))
    for v in np.linspace(0, vmax, 4 if bar_h > 120 else 2):
        y = y0 + (1 - v / vmax) * (bar_h - 1)
        draw.line((x0 + 12, y, x0 + 15, y), fill=(60, 60, 60))
        draw.text((x0 + 18, y), f"{v:.2f}", fill="black", font=small, anchor="lm")
    return canvas


# ---- completions under structured masks ("Beyond the paper") --------------------------------------------


@torch.no_grad()
def plot_structured(models: Mapping[str, Any], image: Tensor, kinds: Sequence[str], seed: int = 0,
                    title: str | None = None) -> Figure:
    """One image under every structured mask kind (columns): its context (missing pixels blue), each model's
    completion titled with the PSNR of the whole image / of the missing pixels, and the truth (rows)."""
    if image.dim() == 4:
        image = image[0]
    masks = torch.cat([structured_mask(k, 1, image.shape[-1], generator=torch.Generator().manual_seed(seed))
                       for k in kinds])
    truth = image[None].expand(len(kinds), -1, -1, -1).float()
    preds = {label: completion_mean(model, truth, masks) for label, model in models.items()}
    return plot_completion_grid(truth, masks, preds, column_titles=list(kinds), title=title)



@torch.no_grad()
def plot_mask_explorer(models: Mapping[str, Any], image: Tensor, index: int, kind: str = "top",
                       ratio: float = 0.2, seed: int = 0, samples: int = 8) -> Figure:
    """The widget figure of "Beyond the paper": one test image under one mask (``kind`` "random" uses the
    evaluation mask of test index ``index`` at ``ratio``; the structured kinds ignore ``ratio``).

    Columns: the context (missing pixels blue), one per model, the truth. Rows: the completion (titled with
    the PSNR of the whole image / of the missing pixels); its absolute error; the model's predictive
    standard deviation of y (the moment-matched mixture over ``samples`` draws z ~ q(z | context), the
    decoder's sigma included). Errors and sigmas share one ``magma`` scale, so a calibrated sigma looks
    like the error it predicts."""
    if image.dim() == 4:
        image = image[0]
    x = image[None].float()
    mask = make_mask(kind, index, image.shape[-1], ratio, seed)
    stats = {}
    for label, model in models.items():
        torch.manual_seed(seed)
        mean, std = predictive_moments(model, x, mask, samples=samples)
        mean = mean[0].clamp(0, 1)
        stats[label] = (mean, (mean - image).abs().mean(0), std[0].mean(0))
    vmax = max([max(float(e.max()), float(s.max())) for _, e, s in stats.values()] + [1e-6])
    n = len(models)
    fig = Figure(figsize=(1.85 * (n + 2) + 0.9, 6.0), layout="constrained")
    axes = fig.subplots(3, n + 2, squeeze=False)
    axes[0, 0].imshow(context_image(image, mask[0]), interpolation="nearest")
    axes[0, 0].set_title(f"context ({int(mask.sum())} pixels)", fontsize=8)
    axes[0, -1].imshow(to_display(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes[0, -1].set_title("truth", fontsize=8)
    im = None
    for j, (label, (mean, err, std)) in enumerate(stats.items(), start=1):
        met = completion_metrics(mean[None], x, mask)
        axes[0, j].imshow(to_display(mean), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[0, j].set_title(f"{label}\n{float(met['psnr_whole'][0]):.1f} / {float(met['psnr_target'][0]):.1f} dB",
                             fontsize=8)
        axes[1, j].imshow(err.numpy(), cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
        axes[1, j].set_title(f"|error| (mean {float(err.mean()):.3f})", fontsize=8)
        im = axes[2, j].imshow(std.numpy(), cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
        axes[2, j].set_title(f"sigma of y (mean {float(std.mean()):.3f})", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in (axes[1, 0], axes[2, 0], axes[1, -1], axes[2, -1]):
        ax.axis("off")
    if im is not None:
        fig.colorbar(im, ax=axes[1:, -1], fraction=0.5, label="|error| and sigma of y")
    what = f"{ratio:.0%} random pixels" if kind == "random" else f"'{kind}' mask"
    fig.suptitle(f"test image {index}, {what}", fontsize=9)
    return fig

