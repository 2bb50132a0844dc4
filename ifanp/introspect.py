"""Looking inside the grid models for the book: the shapes of every part of one forward pass
(:func:`trace_shapes`), LPA's steps and reach (:func:`pooling_coefficients` with exact fractions for the
paper's Fig. 3, :func:`image_lpa_steps`, :func:`lpa_reach`, :func:`effective_neighbours`,
:func:`pick_channel`) and GCA's attention (:func:`attention_matrix`, :func:`attention_distances`).

These read a model's parts (hooks, its modules) without changing its forward pass; nothing here draws
(the figures are in :mod:`ifanp.plotting.attention` and :mod:`ifanp.plotting.completion`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .analysis import eval_mode
from .models.grid import GridNP
from .models.modules import LocalPooledAttention

__all__ = ["attention_distances", "attention_matrix", "cell_centres", "common_denominator", "effective_neighbours", "format_combination",
           "image_lpa_steps", "key_density", "lpa_reach", "pick_channel", "pooling_coefficients", "trace_shapes"]


@torch.no_grad()
def trace_shapes(model, images: Tensor, mask: Tensor, samples: int = 0) -> dict[str, tuple[int, ...]]:
    """Shapes of the tensors inside one ``model.predict(images, mask, samples)`` of a grid model.

    Keys (in the order of the forward pass; a part the model does not have is absent): ``input``
    (``concat(y * mask, mask)``), ``encoder1``, ``local`` (LPA or SE), ``encoder2`` (R_{M+}), ``gca``
    (R_pred), ``pooled`` (the masked global mean that enters ConvEncoder3, or with ``pool_window`` the map of
    masked local means and their density), ``encoder3`` (mean and raw
    std of q(z | context)), ``z`` (B, d_z) with ``samples=0``, else (S, B, d_z), ``decoder_input`` (``concat(R_pred, coords)``, before z is added),
    ``decoder``, ``up``, ``output`` (the predictive mean and std, each). Read with forward hooks, so
    they are the shapes of the model as built, not of a description of it.
    """
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
    # the aggregate: the masked global mean (B, c), or with a local pooling window the masked k x k means and
    # their density (B, c + 1, r/k, r/k) that ConvEncoder3's strided convolution reads
    pooled_at = getattr(model, "encoder3_map", None) or model.encoder3
    hooks.append(pooled_at.register_forward_pre_hook(before("pooled")))
    hooks.append(model.dec_in.register_forward_pre_hook(before("decoder_input")))
    hooks.append(model.dec_z.register_forward_pre_hook(before("z")))
    try:
        with eval_mode(model):
            means, _ = model.predict(images, mask, samples=samples)
    finally:
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



# ---- LPA -------------------------------------------------------------------------------------------------


def pooling_coefficients(size: int = 3, passes: int = 2, include_pad: bool = True) -> np.ndarray:
    """Exact coefficients of the inputs after ``passes`` 3x3 mean poolings (stride 1, zero padding 1).

    The input is a ``size`` x ``size`` grid of symbols x_1 .. x_{size^2}, numbered row by row. Returns an
    object array ``(size, size, size**2)`` of :class:`fractions.Fraction`: entry ``[i, j, k]`` is the
    multiple of x_{k+1} in cell (i, j). ``include_pad=True`` divides every window sum by 9 (the padding
    zeros count, ``count_include_pad=True``: the paper's zero padding); ``False`` divides by the number of
    cells of the window that lie inside the grid.
    """
    if size < 1 or passes < 0:
        raise ValueError(f"size must be >= 1 and passes >= 0, got size={size}, passes={passes}.")
    n = size * size
    cells = [[[Fraction(int(k == i * size + j)) for k in range(n)] for j in range(size)] for i in range(size)]
    for _ in range(passes):
        new = []
        for i in range(size):
            row = []
            for j in range(size):
                window = [(a, b) for a in (i - 1, i, i + 1) for b in (j - 1, j, j + 1)
                          if 0 <= a < size and 0 <= b < size]
                divisor = 9 if include_pad else len(window)
                row.append([sum((cells[a][b][k] for a, b in window), Fraction(0)) / divisor
                            for k in range(n)])
            new.append(row)
        cells = new
    out = np.empty((size, size, n), dtype=object)
    for i in range(size):
        for j in range(size):
            for k in range(n):
                out[i, j, k] = cells[i][j][k]
    return out



def common_denominator(values) -> int:
    den = 1
    for v in values:
        den = den * Fraction(v).denominator // math.gcd(den, Fraction(v).denominator)
    return den



def format_combination(coefficients: Sequence[Fraction], symbol: str = "x") -> str:
    """``(4 x1 + 6 x2 + ...) / 81``: a linear combination over its common denominator."""
    coefficients = [Fraction(c) for c in coefficients]
    den = common_denominator(coefficients)
    terms = [f"{int(c * den)} {symbol}{k + 1}" for k, c in enumerate(coefficients) if c]
    body = " + ".join(terms) if terms else "0"
    return f"({body}) / {den}" if den != 1 else body



@torch.no_grad()
def image_lpa_steps(images: Tensor, mask: Tensor, distance: str = "feature") -> dict[str, Tensor]:
    """LPA's steps applied to the context image itself, ``y * mask`` (B, C, H, W): the same dictionary as
    :meth:`ifanp.models.grid.GridNP.lpa_steps` returns for the ConvEncoder1 features (``input``,
    ``output1``, ``output2``, ``output`` as (B, C, H, W) and ``weights`` (B, 9, H, W))."""
    if images.dim() == 3:
        images = images[None]
    if mask.dim() == 3:
        mask = mask[None]
    lpa = LocalPooledAttention(distance)
    x = images.float() * mask.float()
    out1, out2 = lpa.pool_twice(x)
    _, weights = lpa.neighbour_weights(out2)
    b, _, h, w = x.shape
    return {"input": x, "output1": out1, "output2": out2, "output": lpa(x),
            "weights": weights.view(b, 9, h, w)}



@torch.no_grad()
def lpa_reach(mask: Tensor) -> dict[str, Tensor]:
    """Which cells hold information from the context after each LPA step: bool maps (B, 1, H, W) for
    ``input`` (the mask), ``output1`` and ``output2`` (3x3 and 5x5 around a context cell) and ``output``
    (7x7: the attention's 3x3 neighbourhood of Output2). Works on a pooled (fractional) mask too."""
    reached = mask.float() > 0
    out = {"input": reached}
    for key in ("output1", "output2", "output"):
        reached = F.max_pool2d(reached.float(), 3, stride=1, padding=1) > 0
        out[key] = reached
    return out



def effective_neighbours(weights: Tensor) -> Tensor:
    """exp(entropy) of the attention weights over the 9 neighbours, (B, 9, H, W) -> (B, H, W): 9 when a
    position averages its neighbourhood uniformly (a plain blur), 1 when it copies one neighbour."""
    w = weights.clamp_min(0)
    ent = -(w * torch.log(w.clamp_min(1e-30))).sum(1)
    return ent.exp()



def pick_channel(features: Tensor, density: Tensor) -> int:
    """The channel of ``features`` (C, h, w) whose values separate the cells with context (``density``
    (1, h, w) > 0) from those without most clearly (difference of the means over the pooled std), so
    that the holes show; the channel of largest variance when every cell or no cell holds context."""
    f = features.detach().float().cpu().reshape(features.shape[0], -1)
    has = density.detach().cpu().reshape(-1) > 0
    if has.all() or not has.any():
        return int(f.var(1).argmax())
    diff = (f[:, has].mean(1) - f[:, ~has].mean(1)).abs()
    spread = f.std(1).clamp_min(1e-8)
    return int((diff / spread).argmax())



# ---- GCA -------------------------------------------------------------------------------------------------


def key_density(model, mask: Tensor) -> Tensor:
    d = model.cfg["down"]
    mask = mask.float().to(model.device)
    return F.avg_pool2d(mask, d) if d > 1 else mask



@torch.no_grad()
def attention_matrix(model, mask: Tensor) -> Tensor:
    """GCA's attention weights of every target cell over every key cell, (B, heads, r*r, r*r), r = size/down.

    Row q is what :meth:`ifanp.models.grid.GridNP.attention_map` returns for a pixel in target cell q: the
    softmax of the (scaled) logits theta(P)^T phi(P') (plus the locality prior where the model has one)
    over the key cells that hold context; cells without context get weight 0.
    """
    gca = getattr(model, "gca", None)
    if gca is None:
        name = getattr(model, "name", "this model")
        raise ValueError(f"{name} has no GCA module; use ifanp-gca, ifanp or ifanp-plus.")
    if mask.dim() == 3:
        mask = mask[None]
    r = model.res
    logits = gca.attention_logits((r, r), (r, r), model.device)  # (heads, r*r, r*r)
    bias = gca.distance_logits((r, r), (r, r), model.device)
    if bias is not None:
        logits = logits + bias
    valid = (key_density(model, mask).flatten(1) > 0)[:, None, None, :]  # (B, 1, 1, r*r)
    w = torch.softmax(logits.unsqueeze(0).masked_fill(~valid, float("-inf")), dim=-1)
    return w.nan_to_num(0.0)



def cell_centres(size: int, down: int) -> Tensor:
    """Centres of the (size/down)^2 cells in pixel units (row, col), (r*r, 2), row by row."""
    r = size // down
    c = torch.arange(r, dtype=torch.float32) * down + (down - 1) / 2
    return torch.stack(torch.meshgrid(c, c, indexing="ij"), -1).reshape(-1, 2)



@torch.no_grad()
def attention_distances(model, mask: Tensor) -> dict[str, Tensor]:
    """How far from its target the attention looks, in pixels, for every target cell: (B, heads, r*r) each.

    ``attended``: the attention-weighted mean distance sum_j a_qj |p_q - p_j| from the target cell's
    centre to the key cells' centres; ``uniform``: the same with equal weights on every key cell with
    context (what an attention that ignores position would give); ``nearest``: the distance to the nearest
    key cell with context (what a purely local attention would give); ``target_has_context``: whether the
    target cell itself holds context (there ``nearest`` is 0).
    """
    w = attention_matrix(model, mask).cpu()
    centres = cell_centres(model.size, model.cfg["down"])
    dist = torch.cdist(centres, centres)  # (r*r, r*r)
    valid = (key_density(model, mask if mask.dim() == 4 else mask[None]).flatten(1) > 0).cpu()  # (B, r*r)
    attended = (w * dist).sum(-1)
    v = valid[:, None, None, :].float()
    uniform = (dist * v).sum(-1) / v.sum(-1).clamp_min(1)
    nearest = dist.masked_fill(~valid[:, None, None, :], float("inf")).amin(-1)
    heads = w.shape[1]
    return {"attended": attended, "uniform": uniform.expand(-1, heads, -1),
            "nearest": nearest.expand(-1, heads, -1),
            "target_has_context": valid[:, None, :].expand(-1, heads, -1)}
