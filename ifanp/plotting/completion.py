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

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
from torch import Tensor

from .images import context_image, make_mask, to_display

__all__ = [
    "DIAGRAM_COLORS",
    "explorer_panels",
    "format_shape",
    "mosaic",
    "pick_context_pixels",
    "plot_completion_columns",
    "plot_explorer",
    "plot_ifanp_diagram",
    "plot_response_maps",
    "psnr_pair",
    "response_locality",
    "response_maps",
    "trace_shapes",
]

#: Box colours of the architecture diagram (the same meaning as in the IFNP chapter's diagram).
DIAGRAM_COLORS = {"data": "#dbe8fb", "network": "#eeeeee", "pooling": "#e4f3e0", "distribution": "#fde3c8",
                  "attention": "#eadcf5"}


# ---- the architecture ------------------------------------------------------------------------------------


@torch.no_grad()
def trace_shapes(model, images: Tensor, mask: Tensor, samples: int = 0) -> dict[str, tuple[int, ...]]:
    """Shapes of the tensors inside one ``model.predict(images, mask, samples)`` of a grid model.

    Keys (in the order of the forward pass; a part the model does not have is absent): ``input``
    (``concat(y * mask, mask)``), ``encoder1``, ``local`` (LPA or SE), ``encoder2`` (R_{M+}), ``gca``
    (R_pred), ``pooled`` (the masked global mean that enters ConvEncoder3), ``encoder3`` (mean and raw
    std of q(z | context)), ``z`` (B, d_z) with ``samples=0``, else (S, B, d_z), ``decoder_input`` (``concat(R_pred, coords)``, before z is added),
    ``decoder``, ``up``, ``output`` (the predictive mean and std, each). Read with forward hooks, so
    they are the shapes of the model as built, not of a description of it.
    """
    from ..models.grid import GridNP

    if not isinstance(model, GridNP):
        raise TypeError(f"trace_shapes reads the parts of a GridNP (IFNP, IFANP and variants); got {type(model).__name__}.")
    images, mask = model.check_inputs(images, mask)
    shapes: dict[str, tuple[int, ...]] = {"input": tuple(model.encoder_input(images, mask).shape)}
    hooks = []

    def after(name):
        def hook(_module, _inputs, output):
            shapes[name] = tuple(output.shape)
        return hook

    def before(name):
        def hook(_module, inputs):
            shapes[name] = tuple(inputs[0].shape)
        return hook

    # encode() runs ConvEncoder1 in two slices (the stem is kept for the skip option): hook its last layer.
    parts = {"encoder1": model.encoder1[-1], "local": getattr(model, "local", None),
             "encoder2": getattr(model, "encoder2", None), "gca": getattr(model, "gca", None),
             "encoder3": model.encoder3, "decoder": model.decoder, "up": model.up}
    for name, module in parts.items():
        if module is not None and not isinstance(module, torch.nn.Identity):
            hooks.append(module.register_forward_hook(after(name)))
    hooks.append(model.encoder3.register_forward_pre_hook(before("pooled")))
    hooks.append(model.dec_in.register_forward_pre_hook(before("decoder_input")))
    hooks.append(model.dec_z.register_forward_pre_hook(before("z")))
    was_training = model.training
    model.eval()
    try:
        means, _ = model.predict(images, mask, samples=samples)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    if samples == 0:  # one z per image (the mean of q): drop the leading sample axis of size 1
        shapes["z"] = shapes["z"][1:]
        shapes["output"] = tuple(means.shape[1:])
    else:
        shapes["output"] = tuple(means.shape)
    order = ["input", "encoder1", "local", "encoder2", "gca", "pooled", "encoder3", "z", "decoder_input",
             "decoder", "up", "output"]
    return {k: shapes[k] for k in order if k in shapes}


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


def psnr_pair(pred: Tensor, truth: Tensor, mask: Tensor) -> tuple[float, float]:
    """(whole-image PSNR, PSNR of the missing pixels) of one completion, in dB with MAX = 1."""
    from ..metrics import completion_metrics

    def batch(x):
        return x.unsqueeze(0) if x.dim() == 3 else x

    m = completion_metrics(batch(pred).float().cpu(), batch(truth).float().cpu(), batch(mask).float().cpu())
    target = float(m["psnr_target"][0]) if float((1 - batch(mask)).sum()) > 0 else float("nan")
    return float(m["psnr_whole"][0]), target


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
    was_training = model.training
    model.eval()
    try:
        mean, _ = model.predict(*model.check_inputs(batch, masks), samples=0)
    finally:
        model.train(was_training)
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
    was_training = model.training
    model.eval()
    try:
        mean, _ = model.predict(x, m, samples=0)
        k = max(int(samples), int(draws))
        mus, sigmas = model.predict(x, m, samples=k)  # (K, 1, C, H, W)
    finally:
        model.train(was_training)
    mix = mus.mean(0)
    var = sigmas.pow(2).mean(0) + (mus - mix).pow(2).mean(0)
    return {"mean": mean[0, 0].clamp(0, 1).cpu(), "samples": mus[:samples, 0].clamp(0, 1).cpu(),
            "std": var.sqrt()[0].cpu()}


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
    from matplotlib import font_manager
    from PIL import ImageFont

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
    from PIL import Image, ImageDraw

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
