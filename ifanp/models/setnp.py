"""The set-based neural-process family: CNP, NP and ANP, on 1-D functions and on images as pixel sets.

One skeleton, :class:`SetNP`, fixes the forward pass once (as the Neural Process Family's base class
does); each model only chooses its parts::

    context (x_i, y_i) --MLP--> r_i --[self-attention]--> aggregate --> r*(x_t)       deterministic path
    context (x_i, y_i) --MLP--> s_i --[self-attention]--> masked mean --> q(z | C)      latent path
    (x_t, r*(x_t), z) --MLP--> mean, std of p(y_t | x_t, r*, z)                          decoder

The aggregate is a masked mean (CNP, NP) or a multi-head cross-attention from the target inputs to
the context inputs with values r_i (ANP). Sets are padded tensors ``(B, N, dim)`` with an optional
boolean mask ``(B, N)`` (True = a real point), so one batch can hold tasks with different numbers
of context points; padded points are never attended to and never averaged. Nothing loops over
points or tasks.

Models
    * **CNP** — Garnelo et al., *Conditional Neural Processes*, ICML 2018: deterministic path with a
      mean aggregator, no latent; trained by the exact conditional log-likelihood.
    * **NP** — Garnelo et al., *Neural Processes*, ICML-W 2018: a global latent z with
      q(z | set) = N(mu, sigma) from a mean of encodings; trained by the ELBO of Eq. 6 of the paper.
    * **ANP** — Kim et al., *Attentive Neural Processes*, ICLR 2019: the NP's latent path plus a
      deterministic path whose aggregator is multi-head cross-attention (optionally after
      self-attention over the context).

Entry points: :func:`build_1d` for functions (``x_dim``-dimensional inputs) and the image models
``"np"``, ``"anp"`` and ``"cnp"`` registered in :mod:`ifanp.models` (``build("anp", channels, size)``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal

from ..losses import NPOutput, draw_latent, np_elbo_loss, predictive_log_likelihood, squared_error
from .base import ImageModel, InputError, LossOutput
from .modules import coordinate_grid
from .registry import register

__all__ = [
    "MLP",
    "SET_MODEL_NAMES",
    "CrossAttention",
    "DeterministicPath",
    "GaussianDecoder",
    "LatentPath",
    "MultiHeadSelfAttention",
    "PixelSetModel",
    "SetNP",
    "build_1d",
    "masked_mean",
]

#: The presets of :func:`build_1d` and of the image models: which parts each model has.
_PRESETS: dict[str, dict[str, Any]] = {
    "cnp": {"deterministic": True, "latent": False, "aggregator": "mean", "self_attention": False},
    "np": {"deterministic": False, "latent": True, "aggregator": "mean", "self_attention": False},
    "anp": {"deterministic": True, "latent": True, "aggregator": "attention", "self_attention": False},
}
SET_MODEL_NAMES = tuple(_PRESETS)

#: Sizes shared by every preset (1-D defaults).
_COMMON: dict[str, Any] = {
    "hidden": 128,  # width of every hidden layer
    "r_dim": 128,  # size of the deterministic representation r_i
    "z_dim": 128,  # size of the global latent z
    "encoder_layers": 3,  # linear layers in each encoder MLP ((x, y) -> r_i and -> s_i)
    "decoder_layers": 3,  # linear layers in the decoder MLP (the last one outputs mean and std)
    "heads": 8,  # attention heads (cross- and self-attention)
    "min_std": 0.1,  # output std = min_std + (1 - min_std) * softplus(.)
    "fixed_std": None,  # a number: use this output std instead of a learned one
    "train_samples": 1,  # K of Eq. 6 (z samples per task in the training loss)
}

#: Image defaults that differ from the 1-D ones. SPEC section 6 asks for a Garnelo-style MLP with
#: 400-wide layers (encoder 3-400-400-128, decoder 4 x 400); that costs about 1 GFLOP per 28 x 28
#: image, too slow for a 2-core CPU, so the width is 128 by default (``hidden=400`` restores it).
_IMAGE_DEFAULTS: dict[str, Any] = {"decoder_layers": 5}

_ALLOWED = set(_COMMON) | {"deterministic", "latent", "aggregator", "self_attention"}


def _resolve(name: str, overrides: dict[str, Any], image: bool) -> dict[str, Any]:
    """Preset + defaults + overrides, with the unknown keys refused."""
    if name not in _PRESETS:
        raise ValueError(f"unknown set model {name!r}; choose one of: {', '.join(SET_MODEL_NAMES)}.")
    unknown = set(overrides) - _ALLOWED
    if unknown:
        raise ValueError(
            f"unknown option(s) {sorted(unknown)} for {name!r}; allowed: {', '.join(sorted(_ALLOWED))}."
        )
    hp = {**_COMMON, **(_IMAGE_DEFAULTS if image else {}), **_PRESETS[name], **overrides}
    if hp["fixed_std"] is not None:
        hp["fixed_std"] = float(hp["fixed_std"])
    return hp


# ---- parts ------------------------------------------------------------------------------------------


def masked_mean(h: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``h`` (B, N, d) over the points where ``mask`` (B, N) is True -> (B, d).

    A task with no point gets the zero vector (not 0/0 = NaN). Masked-out entries are excluded with
    ``where``, so even non-finite values there cannot leak into the mean.
    """
    if mask is None:
        return h.mean(dim=1) if h.shape[1] > 0 else h.new_zeros(h.shape[0], h.shape[-1])
    m = mask.unsqueeze(-1)
    total = torch.where(m, h, h.new_zeros(())).sum(dim=1)
    count = m.sum(dim=1).clamp(min=1).to(h.dtype)
    return total / count


class MLP(nn.Module):
    """A ReLU MLP whose first layer takes several inputs: ``MLP([dx, dy], hidden, out, layers)(x, y)``.

    The first layer is ``W_1 x + W_2 y + b``, i.e. a linear layer on ``concat(x, y)``, but computed
    input by input and summed with broadcasting: an input shared by all tasks (pixel coordinates,
    shape (1, N, d)) or by all points of a task (a global z, shape (S, B, 1, d)) is multiplied once,
    not once per point. ``layers`` counts
    linear layers; the last one has no activation.
    """

    def __init__(self, in_dims: Sequence[int], hidden: int, out: int, layers: int):
        super().__init__()
        if layers < 1:
            raise ValueError(f"an MLP needs at least one layer, got layers={layers}.")
        first_out = hidden if layers > 1 else out
        self.first = nn.ModuleList(nn.Linear(d, first_out, bias=(i == 0)) for i, d in enumerate(in_dims))
        rest: list[nn.Module] = []
        for i in range(1, layers):
            rest += [nn.ReLU(), nn.Linear(hidden, hidden if i < layers - 1 else out)]
        self.rest = nn.Sequential(*rest)

    def forward(self, *inputs: Tensor) -> Tensor:
        """Apply the MLP to its inputs (in the order of ``in_dims``; leading dimensions broadcast)."""
        if len(inputs) != len(self.first):
            raise ValueError(f"this MLP takes {len(self.first)} inputs, got {len(inputs)}.")
        parts = [layer(x) for layer, x in zip(self.first, inputs)]
        h = parts[0]
        for p in parts[1:]:
            h = h + p
        return self.rest(h)


def _key_mask(mask: Tensor | None, batch: int) -> tuple[Tensor | None, Tensor | None]:
    """Boolean SDPA mask (B, 1, 1, N) and "has any key" (B, 1, 1, 1) from a (B, N) point mask.

    A task with no key would give a row of -inf logits (NaN after softmax); such tasks attend to
    every (padded, finite) key instead and their output is zeroed by the caller.
    """
    if mask is None:
        return None, None
    valid = mask.view(batch, 1, 1, -1)
    has_any = valid.any(dim=-1, keepdim=True)
    return valid | ~has_any, has_any


def _split_heads(t: Tensor, heads: int) -> Tensor:
    """(B, N, d) -> (B, heads, N, d / heads)."""
    b, n, d = t.shape
    return t.view(b, n, heads, d // heads).transpose(1, 2)


def _merge_heads(t: Tensor) -> Tensor:
    """(B, heads, N, dh) -> (B, N, heads * dh)."""
    b, h, n, dh = t.shape
    return t.transpose(1, 2).reshape(b, n, h * dh)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention over a (padded) set, with a residual connection and layer norm.

    ``h <- LayerNorm(h + W_o MHA(W_q h, W_k h, W_v h))``, keys restricted to the real points of each
    set (boolean mask in ``scaled_dot_product_attention``). As in the ANP (Kim et al. 2019), this
    lets the context points interact before they are aggregated.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"self-attention width {dim} must be divisible by heads={heads}.")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, h: Tensor, mask: Tensor | None) -> Tensor:
        """``h`` (B, N, dim), ``mask`` (B, N) or ``None`` -> (B, N, dim)."""
        q, k, v = (_split_heads(t, self.heads) for t in self.qkv(h).chunk(3, dim=-1))
        attn_mask, _ = _key_mask(mask, h.shape[0])
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.norm(h + self.out(_merge_heads(a)))


class CrossAttention(nn.Module):
    """The ANP's deterministic aggregator: each target x attends to the context x's, values r_i.

    Queries and keys are an MLP embedding of the inputs (shared by both, as in the DeepMind ANP),
    projected per head; values are the context representations. Keys outside a task's context are
    masked; a task with an empty context gets r* = 0. Inputs may have batch size 1 when shared by
    all tasks (pixel coordinates): they are embedded once.
    """

    def __init__(self, x_dim: int, r_dim: int, hidden: int, heads: int):
        super().__init__()
        if hidden % heads or r_dim % heads:
            raise ValueError(f"hidden ({hidden}) and r_dim ({r_dim}) must be divisible by heads={heads}.")
        self.heads = heads
        self.embed = MLP([x_dim], hidden, hidden, 2)
        self.wq = nn.Linear(hidden, hidden, bias=False)
        self.wk = nn.Linear(hidden, hidden, bias=False)
        self.wv = nn.Linear(r_dim, r_dim, bias=False)
        self.out = nn.Linear(r_dim, r_dim)

    def forward(self, xt: Tensor, xc: Tensor, r: Tensor, mask: Tensor | None) -> Tensor:
        """Queries ``xt`` (B or 1, Nt, x_dim), keys ``xc`` (B or 1, Nc, x_dim), values ``r`` (B, Nc, r_dim),
        key ``mask`` (B, Nc) -> r*(x_t) (B, Nt, r_dim)."""
        b = r.shape[0]
        q = _split_heads(self.wq(self.embed(xt)), self.heads).expand(b, -1, -1, -1)
        k = _split_heads(self.wk(self.embed(xc)), self.heads).expand(b, -1, -1, -1)
        v = _split_heads(self.wv(r), self.heads)
        attn_mask, has_any = _key_mask(mask, b)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        if has_any is not None:
            a = a * has_any
        return self.out(_merge_heads(a))


class DeterministicPath(nn.Module):
    """Context -> r*(x_t): encode each pair, optionally self-attend, then aggregate.

    ``aggregator="mean"`` gives one r for all targets, shape (B, 1, r_dim) (CNP/NP);
    ``"attention"`` gives a target-specific r*(x_t), shape (B, Nt, r_dim) (ANP).
    """

    def __init__(self, x_dim: int, y_dim: int, hidden: int, r_dim: int, layers: int,
                 aggregator: str = "mean", self_attention: bool = False, heads: int = 8):
        super().__init__()
        if aggregator not in ("mean", "attention"):
            raise ValueError(f"aggregator must be 'mean' or 'attention', got {aggregator!r}.")
        self.encoder = MLP([x_dim, y_dim], hidden, r_dim, layers)
        self.self_attention = MultiHeadSelfAttention(r_dim, heads) if self_attention else None
        self.cross = CrossAttention(x_dim, r_dim, hidden, heads) if aggregator == "attention" else None

    def forward(self, xc: Tensor, yc: Tensor, mask: Tensor | None, xt: Tensor) -> Tensor:
        """The representation r*(x_t) of the context (xc, yc, mask) at the targets ``xt``."""
        r = self.encoder(xc, yc)
        if self.self_attention is not None:
            r = self.self_attention(r, mask)
        if self.cross is None:
            return masked_mean(r, mask).unsqueeze(1)
        return self.cross(xt, xc, r, mask)


class LatentPath(nn.Module):
    """A set -> q(z | set) = N(mu, sigma), sigma = 0.1 + 0.9 sigmoid(.) (DeepMind ANP code).

    Encode each pair, optionally self-attend, take the masked mean, then a small MLP gives mu and
    sigma. An empty set gives the mean 0 and thus a fixed, learned "prior" q(z | {}).
    """

    def __init__(self, x_dim: int, y_dim: int, hidden: int, z_dim: int, layers: int,
                 self_attention: bool = False, heads: int = 8):
        super().__init__()
        self.encoder = MLP([x_dim, y_dim], hidden, hidden, layers)
        self.self_attention = MultiHeadSelfAttention(hidden, heads) if self_attention else None
        self.head = MLP([hidden], hidden, 2 * z_dim, 2)

    def encode(self, x: Tensor, y: Tensor) -> Tensor:
        """Per-point encodings s_i (B, N, hidden) (before self-attention, which needs the mask)."""
        return self.encoder(x, y)

    def pool(self, s: Tensor, mask: Tensor | None) -> Normal:
        """q(z | the points of ``s`` where ``mask`` is True)."""
        if self.self_attention is not None:
            s = self.self_attention(s, mask)
        mu, raw = self.head(masked_mean(s, mask)).chunk(2, dim=-1)
        return Normal(mu, 0.1 + 0.9 * torch.sigmoid(raw), validate_args=False)

    def forward(self, x: Tensor, y: Tensor, mask: Tensor | None) -> Normal:
        """q(z | the points of (x, y) where ``mask`` is True)."""
        return self.pool(self.encode(x, y), mask)


class GaussianDecoder(nn.Module):
    """(x_t, r*, z) -> mean and std of p(y_t | ...), each (S, B, Nt, y_dim).

    std = min_std + (1 - min_std) softplus(.) (DeepMind NP code, ``min_std=0.1``), or the constant
    ``fixed_std``. ``r`` (B, Nt or 1, r_dim) and ``z`` (S, B, z_dim) may each be absent (build with
    ``r_dim=0`` / ``z_dim=0`` for a model without that path).
    """

    def __init__(self, x_dim: int, y_dim: int, r_dim: int, z_dim: int, hidden: int, layers: int,
                 min_std: float = 0.1, fixed_std: float | None = None):
        super().__init__()
        if fixed_std is not None and not fixed_std > 0:
            raise ValueError(f"fixed_std must be positive, got {fixed_std}.")
        if not 0 <= min_std < 1:
            raise ValueError(f"min_std must lie in [0, 1), got {min_std}.")
        self.y_dim, self.min_std, self.fixed_std = y_dim, min_std, fixed_std
        out = y_dim if fixed_std is not None else 2 * y_dim
        self.uses_r, self.uses_z = r_dim > 0, z_dim > 0
        dims = [x_dim] + [r_dim] * self.uses_r + [z_dim] * self.uses_z
        self.mlp = MLP(dims, hidden, out, layers)

    def forward(self, xt: Tensor, r: Tensor | None, z: Tensor | None) -> tuple[Tensor, Tensor]:
        """Mean and std at the targets ``xt`` (B or 1, Nt, x_dim), (S, B, Nt, y_dim) each (S = 1 without z)."""
        if (r is not None) != self.uses_r or (z is not None) != self.uses_z:
            raise ValueError("the decoder was built for other inputs (r and/or z) than it was given.")
        inputs = [xt]
        if r is not None:
            inputs.append(r)
        if z is not None:
            inputs.append(z.unsqueeze(-2))  # (S, B, 1, z_dim): one z per task, shared by its points
        out = self.mlp(*inputs)
        if out.dim() == 3:
            out = out.unsqueeze(0)
        if self.fixed_std is not None:
            return out, torch.full_like(out, self.fixed_std)
        mean, raw = out.split(self.y_dim, dim=-1)
        return mean, self.min_std + (1 - self.min_std) * F.softplus(raw)


# ---- the skeleton -------------------------------------------------------------------------------------


class SetNP(nn.Module):
    """The one skeleton of the set-based neural processes (CNP, NP, ANP); the parts are passed in.

    ``deterministic`` (a :class:`DeterministicPath` or ``None``) and ``latent`` (a :class:`LatentPath`
    or ``None``) are the two encoders; ``decoder`` is a :class:`GaussianDecoder`. Build the standard
    models with :func:`build_1d`, which also sets :attr:`config` (so ``build_1d(**model.config)``
    rebuilds the model).

    Sets are padded tensors: ``xc`` (B, Nc, x_dim), ``yc`` (B, Nc, y_dim), ``xt`` (B, Nt, x_dim),
    ``yt`` (B, Nt, y_dim) and optional boolean masks ``context_mask`` (B, Nc) and ``target_mask``
    (B, Nt) (True = real point). Padded entries must be finite; their values are ignored. The targets
    are assumed to include the context (the NP convention); q(z | context + targets) is computed
    from the target set.
    """

    def __init__(self, x_dim: int, y_dim: int, decoder: GaussianDecoder,
                 deterministic: DeterministicPath | None = None, latent: LatentPath | None = None,
                 train_samples: int = 1, config: dict[str, Any] | None = None):
        super().__init__()
        if deterministic is None and latent is None:
            raise ValueError("a neural process needs a deterministic path, a latent path, or both.")
        self.x_dim, self.y_dim = x_dim, y_dim
        self.deterministic = deterministic
        self.latent_path = latent
        self.decoder = decoder
        self.train_samples = int(train_samples)
        self.config: dict[str, Any] | None = config

    @property
    def latent(self) -> bool:
        """True when the model has a global latent z."""
        return self.latent_path is not None

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters."""
        return next(self.parameters()).device

    # ---- the parts -----------------------------------------------------------------------------------
    def represent(self, xc: Tensor, yc: Tensor, cmask: Tensor | None, xt: Tensor) -> Tensor | None:
        """The deterministic representation r*(x_t), (B, Nt or 1, r_dim), or ``None`` without that path."""
        if self.deterministic is None:
            return None
        return self.deterministic(xc, yc, cmask, xt)

    def latent_distributions(self, x: Tensor, y: Tensor, masks: Sequence[Tensor | None]) -> list[Normal]:
        """q(z | points of (x, y) selected by each mask); the encodings are computed once."""
        s = self.latent_path.encode(x, y)
        return [self.latent_path.pool(s, m) for m in masks]

    def decode(self, xt: Tensor, r: Tensor | None, z: Tensor | None) -> tuple[Tensor, Tensor]:
        """Mean and std, (S, B, Nt, y_dim), for ``z`` (S, B, z_dim) or ``None``."""
        mean, std = self.decoder(xt, r, z)
        batch = r.shape[0] if r is not None else z.shape[1]
        shape = (mean.shape[0], batch, xt.shape[1], self.y_dim)
        return mean.expand(shape), std.expand(shape)

    # ---- the one forward pass (tensors already checked; x may have batch size 1 when shared) ----------
    def forward(self, xc: Tensor, yc: Tensor, xt: Tensor, yt: Tensor | None = None,
                context_mask: Tensor | None = None, target_mask: Tensor | None = None, *,
                eps: Tensor | None = None, samples: int = 0, z_from: str = "context",
                full: tuple[Tensor, Tensor, Tensor | None] | None = None) -> NPOutput:
        """Encode the context, aggregate, draw z, decode at ``xt``: an :class:`~ifanp.losses.NPOutput`
        with mean and std (S, B, Nt, y_dim).

        Masks are boolean (True = a real point). q(z | full) is computed from ``full`` = (x, y, mask)
        (default: the targets (xt, yt, target_mask) when ``yt`` is given); when ``full`` shares its
        points with the context (an image's pixel set) the latent encodings are computed once.
        z = q.mean + q.stddev * eps, q = q(z | context) or, with ``z_from="full"``, q(z | full)
        (training, importance sampling); ``eps`` None: the mean if ``samples=0``, else ``samples``
        draws. A model without z repeats its one prediction S times.
        """
        if z_from not in ("context", "full"):
            raise InputError(f"z_from must be 'context' or 'full', got {z_from!r}.")
        r = self.represent(xc, yc, context_mask, xt)
        z = q_c = q_full = None
        if self.latent:
            if full is None and yt is not None:
                full = (xt, yt, target_mask)
            if full is None:
                if z_from == "full":
                    raise InputError("z_from='full' needs the targets (yt) or the full set.")
                (q_c,) = self.latent_distributions(xc, yc, [context_mask])
            elif full[0] is xc and full[1] is yc:
                q_c, q_full = self.latent_distributions(xc, yc, [context_mask, full[2]])
            else:
                (q_c,) = self.latent_distributions(xc, yc, [context_mask])
                (q_full,) = self.latent_distributions(*full[:2], [full[2]])
            z = draw_latent(q_full if z_from == "full" else q_c, samples, eps)
        mean, std = self.decode(xt, r, z)
        s = eps.shape[0] if eps is not None else samples
        if z is None and s > 1:  # deterministic model: the same prediction S times
            mean, std = mean.expand(s, *mean.shape[1:]), std.expand(s, *std.shape[1:])
        return NPOutput(mean, std, z, q_c, q_full)

    # ---- the checked set API, derived from forward ---------------------------------------------------
    def loss(self, xc: Tensor, yc: Tensor, xt: Tensor, yt: Tensor, context_mask: Tensor | None = None,
             target_mask: Tensor | None = None, samples: int | None = None) -> LossOutput:
        """The training objective, averaged over the tasks of the batch (Eq. 6; CNP: -log p).

        ``samples`` = K of Eq. 6 (default :attr:`train_samples`). ``mse`` is that of the decoded means
        over the target points.
        """
        xc, yc, xt, yt, cm, tm = self._check(xc, yc, xt, yt, context_mask, target_mask)
        k = self.train_samples if samples is None else samples
        out = self(xc, yc, xt, yt, cm, tm, samples=k, z_from="full" if self.latent else "context")
        weights = self._weights(tm)
        loss, nll, kl = np_elbo_loss(out, yt, weights)
        return LossOutput(loss=loss.mean(), nll=nll.mean(), kl=kl.mean(),
                          mse=squared_error(out.mean, yt, weights).detach())

    def predict(self, xc: Tensor, yc: Tensor, xt: Tensor, samples: int = 0,
                context_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Predictive mean and std at ``xt``.

        ``samples=0``: z = mean of q(z | context), returns (B, Nt, y_dim) each. ``samples=S > 0``: one
        prediction per z ~ q(z | context), (S, B, Nt, y_dim) each. An empty context (Nc = 0 or an
        all-False mask) gives the model's prior prediction.
        """
        ImageModel.check_samples(samples, 0)
        xc, yc, xt, _, cm, _ = self._check(xc, yc, xt, None, context_mask, None)
        out = self(xc, yc, xt, context_mask=cm, samples=samples)
        return (out.mean[0], out.std[0]) if samples == 0 else (out.mean, out.std)

    def log_likelihood(self, xc: Tensor, yc: Tensor, xt: Tensor, yt: Tensor, samples: int = 16,
                       context_mask: Tensor | None = None, target_mask: Tensor | None = None) -> Tensor:
        """log p(y_T | context) per task, shape (B,), summed over the target points.

        Exact for the CNP; for latent models the importance-sampled estimate with ``samples`` draws
        from q(z | targets) (a stochastic lower bound that tightens as ``samples`` grows).
        """
        ImageModel.check_samples(samples, 1)
        xc, yc, xt, yt, cm, tm = self._check(xc, yc, xt, yt, context_mask, target_mask)
        out = self(xc, yc, xt, yt, cm, tm, samples=samples, z_from="full" if self.latent else "context")
        return predictive_log_likelihood(out, yt, self._weights(tm))

    def elbo(self, xc: Tensor, yc: Tensor, xt: Tensor, yt: Tensor, samples: int = 16,
             context_mask: Tensor | None = None, target_mask: Tensor | None = None) -> Tensor:
        """The Eq. 5 lower bound per task (B,) with ``samples`` draws of z ~ q(z | targets)."""
        ImageModel.check_samples(samples, 1)
        xc, yc, xt, yt, cm, tm = self._check(xc, yc, xt, yt, context_mask, target_mask)
        out = self(xc, yc, xt, yt, cm, tm, samples=samples, z_from="full" if self.latent else "context")
        return -np_elbo_loss(out, yt, self._weights(tm))[0]

    def kl(self, xc: Tensor, yc: Tensor, xt: Tensor, yt: Tensor, context_mask: Tensor | None = None,
           target_mask: Tensor | None = None) -> Tensor:
        """KL(q(z | targets) || q(z | context)) per task (B,); zeros for the CNP."""
        xc, yc, xt, yt, cm, tm = self._check(xc, yc, xt, yt, context_mask, target_mask)
        return self(xc, yc, xt, yt, cm, tm).kl

    @staticmethod
    def _weights(tmask: Tensor | None) -> Tensor | None:
        return None if tmask is None else tmask.unsqueeze(-1).float()

    def _check(self, xc, yc, xt, yt, cmask, tmask):
        """Validate shapes; return float tensors (and boolean masks) on the model's device."""
        names = {"xc": (xc, self.x_dim), "yc": (yc, self.y_dim), "xt": (xt, self.x_dim)}
        if yt is not None:
            names["yt"] = (yt, self.y_dim)
        expected = (f"xc (B, Nc, {self.x_dim}), yc (B, Nc, {self.y_dim}), xt (B, Nt, {self.x_dim}), "
                    f"yt (B, Nt, {self.y_dim})")
        for key, (t, dim) in names.items():
            if not isinstance(t, Tensor):
                raise InputError(f"{key} must be a torch tensor; expected {expected}.")
            if t.dim() == 2 and dim == 1:
                raise InputError(f"{key} has shape {tuple(t.shape)}: add the feature dimension, "
                                 f"e.g. {key}.unsqueeze(-1); expected {expected}.")
            if t.dim() != 3 or t.shape[-1] != dim:
                raise InputError(f"{key} has shape {tuple(t.shape)}; expected {expected}.")
        shapes = {k: tuple(t.shape) for k, (t, _) in names.items()}
        if len({t.shape[0] for t, _ in names.values()}) != 1:
            raise InputError(f"the batch sizes differ: {shapes}; every tensor needs the same B.")
        if xc.shape[1] != yc.shape[1]:
            raise InputError(f"xc and yc hold different numbers of points: {shapes}.")
        if yt is not None and xt.shape[1] != yt.shape[1]:
            raise InputError(f"xt and yt hold different numbers of points: {shapes}.")
        if xt.shape[1] == 0:
            raise InputError("there are no target points (Nt = 0).")
        b = xt.shape[0]
        dev = self.device
        masks = []
        for key, m, n in (("context_mask", cmask, xc.shape[1]), ("target_mask", tmask, xt.shape[1])):
            if m is not None:
                if not isinstance(m, Tensor) or tuple(m.shape) != (b, n):
                    got = tuple(m.shape) if isinstance(m, Tensor) else type(m).__name__
                    raise InputError(f"{key} must be a (B, N) = ({b}, {n}) tensor, got {got}.")
                if m.dtype != torch.bool:
                    if not torch.all((m == 0) | (m == 1)):
                        raise InputError(f"{key} must hold booleans or 0/1 values.")
                    m = m != 0
                m = m.to(dev)
            masks.append(m)
        out = [t.to(dev, torch.float32) for t in (xc, yc, xt)]
        out.append(None if yt is None else yt.to(dev, torch.float32))
        return (*out, *masks)


def _make_setnp(x_dim: int, y_dim: int, hp: dict[str, Any], config: dict[str, Any] | None) -> SetNP:
    """Assemble a :class:`SetNP` from resolved hyper-parameters."""
    det = lat = None
    if hp["deterministic"]:
        det = DeterministicPath(x_dim, y_dim, hp["hidden"], hp["r_dim"], hp["encoder_layers"],
                                hp["aggregator"], hp["self_attention"], hp["heads"])
    elif hp["aggregator"] != "mean":
        raise ValueError("aggregator='attention' needs the deterministic path (deterministic=True).")
    if hp["latent"]:
        lat = LatentPath(x_dim, y_dim, hp["hidden"], hp["z_dim"], hp["encoder_layers"],
                         hp["self_attention"], hp["heads"])
    dec = GaussianDecoder(x_dim, y_dim, hp["r_dim"] if det else 0, hp["z_dim"] if lat else 0,
                          hp["hidden"], hp["decoder_layers"], hp["min_std"], hp["fixed_std"])
    return SetNP(x_dim, y_dim, dec, det, lat, hp["train_samples"], config)


def build_1d(name: str = "cnp", x_dim: int = 1, y_dim: int = 1, **overrides: Any) -> SetNP:
    """Build the set model ``name`` ("cnp", "np" or "anp") for ``x_dim`` -> ``y_dim`` functions.

    ``overrides`` change the defaults: ``hidden``, ``r_dim``, ``z_dim``, ``encoder_layers``,
    ``decoder_layers``, ``heads``, ``min_std``, ``fixed_std``, ``train_samples``, and the parts:
    ``deterministic`` (bool), ``latent`` (bool), ``aggregator`` ("mean"/"attention"),
    ``self_attention`` (bool). E.g. ``build_1d("np", deterministic=True)`` is an NP with both paths,
    ``build_1d("anp", self_attention=True)`` the ANP with self-attention. ``model.config`` holds every
    value, so ``build_1d(**model.config)`` rebuilds the model.
    """
    if not (isinstance(x_dim, int) and x_dim >= 1 and isinstance(y_dim, int) and y_dim >= 1):
        raise ValueError(f"x_dim and y_dim must be positive integers, got {x_dim!r}, {y_dim!r}.")
    hp = _resolve(name, overrides, image=False)
    return _make_setnp(x_dim, y_dim, hp, {"name": name, "x_dim": x_dim, "y_dim": y_dim, **hp})


# ---- images as pixel sets -------------------------------------------------------------------------------


class PixelSetModel(ImageModel):
    """A set-based NP (CNP, NP or ANP) on an image seen as a set of pixels.

    Each pixel is a point x = (row, column) in [-1, 1]^2 with value y in R^C. The context is the set
    of pixels where the mask is 1; in training the targets are all pixels (the NP convention) or those
    of ``target_mask``, and q(z | full) is computed from context + targets. The coordinates are shared
    by all images, so everything that depends only on x (the attention queries and keys, the x-part
    of the first layers) is computed once per batch.
    """

    def __init__(self, name: str, channels: int, size: int, **overrides: Any):
        hp = _resolve(name, overrides, image=True)
        super().__init__(name, channels, size, config=hp)
        self.latent = bool(hp["latent"])
        self.net = _make_setnp(2, channels, hp, None)
        coords = coordinate_grid(size, size).flatten(2).transpose(1, 2).contiguous()  # (1, H*W, 2)
        self.register_buffer("coords", coords, persistent=False)

    @property
    def train_samples(self) -> int:
        return self.net.train_samples

    @property
    def z_dim(self) -> int | None:
        return int(self.config["z_dim"]) if self.latent else None

    def _sets(self, images: Tensor, mask: Tensor, target_mask: Tensor | None):
        """(coordinates (1, H*W, 2), values (B, H*W, C), context (B, H*W), targets (B, H*W) or None)."""
        b = images.shape[0]
        y = images.flatten(2).transpose(1, 2)  # (B, H*W, C)
        cmask = mask.reshape(b, -1) > 0
        tmask = None if target_mask is None else target_mask.reshape(b, -1) > 0
        return self.coords, y, cmask, tmask

    def _to_image(self, t: Tensor) -> Tensor:
        """(S, B, H*W, C) -> (S, B, C, H, W)."""
        s, b = t.shape[:2]
        return t.reshape(s, b, self.size, self.size, self.channels).permute(0, 1, 4, 2, 3)

    def forward(self, images: Tensor, mask: Tensor, eps: Tensor | None = None, *, samples: int = 0,
                full: bool = False, z_from: str = "context", target_mask: Tensor | None = None) -> NPOutput:
        """The set model's forward pass on the image's pixel set, with mean and std as images.

        q(z | full) is computed from the context and the targets (``target_mask``; all pixels by
        default). See :meth:`ifanp.models.base.ImageModel.forward` for the other arguments.
        """
        x, y, cm, tm = self._sets(images, mask, target_mask)
        whole = (x, y, None if tm is None else cm | tm) if (full or z_from == "full") and self.latent else None
        out = self.net(x, y, x, context_mask=cm, eps=eps, samples=samples,
                       z_from=z_from if self.latent else "context", full=whole)
        out.mean, out.std = self._to_image(out.mean), self._to_image(out.std)
        return out


@register("np")
def build_np_image(channels: int = 1, size: int = 28, **overrides: Any) -> PixelSetModel:
    """The NP baseline on pixel sets (Garnelo et al. 2018; SPEC section 6): an MLP encoder of
    (x, y) pixels, a mean, a global latent z and an MLP decoder of (x, z). Width ``hidden`` = 128 by
    default instead of the SPEC's 400 (about 1 GFLOP per 28 x 28 image, too slow on 2 CPU cores);
    ``hidden=400`` restores it."""
    return PixelSetModel("np", channels, size, **overrides)


@register("anp")
def build_anp_image(channels: int = 1, size: int = 28, **overrides: Any) -> PixelSetModel:
    """The attentive NP on pixel sets (Kim et al. 2019): the NP's latent path plus a deterministic
    path where each pixel attends to the context pixels (multi-head cross-attention; attention cost
    grows with the square of the number of pixels). ``self_attention=True`` adds self-attention."""
    return PixelSetModel("anp", channels, size, **overrides)


@register("cnp")
def build_cnp_image(channels: int = 1, size: int = 28, **overrides: Any) -> PixelSetModel:
    """The conditional NP on pixel sets (Garnelo et al. 2018): a deterministic mean of the context
    pixel encodings, decoded at every pixel; no latent, trained by the exact log-likelihood."""
    return PixelSetModel("cnp", channels, size, **overrides)

