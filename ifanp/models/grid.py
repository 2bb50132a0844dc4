"""IFNP, IFANP and every ablation variant: one grid neural process with its parts chosen by configuration.

The skeleton (paper Fig. 2 and Section 3, SPEC sections 4-5):

* **ConvEncoder1** (shared by both paths) reads ``concat(y * mask, mask)``; the second of its three
  convolutions may use stride ``down`` (the first, the stem, stays at full resolution) so the rest of the
  network runs at ``size / down`` (our CPU-friendly default is 2; ``down=1`` is the paper's full resolution).
* **Latent path**: Mask + Avgpool + Division (a masked global mean, :func:`masked_avg_pool`) of the
  ConvEncoder1 features, then **ConvEncoder3** (1x1 convolutions) gives q(z | .) = N(mu, 0.1 + 0.9 sigmoid).
  With ``pool_window=k`` the mean is taken over k x k windows instead (SPEC 4.2's alternative) and ConvEncoder3
  starts with a strided convolution over that map, so the aggregate keeps where the context lies.
  Training draws z from q(z | full image) and pulls it towards q(z | context) (Eq. 6); prediction
  draws z from q(z | context).
* **Deterministic path** (IFANP variants): an optional local module (``local="lpa"`` or ``"se"``) ->
  **ConvEncoder2** -> R_{M+}; then either **GCA** (``gca=True``: every target position attends to the
  context cells) or a masked global mean tiled over the grid (the variants without GCA).
* **DeconvDecoder**: ``concat(R_pred, tile(z), coords)`` -> transposed convolutions -> Gaussian mean
  (linear; a sigmoid is an option) and sigma (fixed 0.1 by default, as Eq. 1's single homoscedastic sigma).
  With ``z_decoder="deconv"``, z is decoded into a small map and upsampled by stride-2 transposed
  convolutions (as a VAE decoder does) instead of being tiled.

Our additions, off in the faithful configurations: ``skip=True`` feeds the full-resolution context
``concat(y * mask, mask)`` and ConvEncoder1's full-resolution stem features into two decoder layers at
full resolution (a U-Net skip, so context pixels can be reproduced and fine detail interpolated);
``setconv=k`` adds a density-normalised k x k convolution of the context to the encoder input (ConvCNP's
set convolution, an interpolation the network starts from); ``gca_distance_bias`` adds a learned locality
prior to GCA's logits; ``local_residual`` feeds ``features + local(features)`` to ConvEncoder2 (a
residual connection around LPA or SE); ``sigma="learned"`` learns the one homoscedastic sigma of Eq. 1
instead of fixing it (``sigma="pixel"`` predicts one per pixel; in our first ifanp-plus run that made training unstable: its
PSNR collapsed midway, so the shipped ifanp-plus uses the learned scalar).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal

from ..losses import NPOutput, draw_latent
from .base import ImageModel, InputError
from .modules import (
    GlobalCrossAttention,
    LocalPooledAttention,
    SqueezeExcite,
    coordinate_grid,
    masked_avg_pool,
)
from .registry import register

DEFAULTS: dict[str, Any] = {
    "hidden": 64,  # channels c of the feature maps (SPEC: 128; 64 keeps CPU training practical)
    "stem": 32,  # channels of the full-resolution layers
    "z_dim": 64,  # latent size d_z
    "down": 2,  # ConvEncoder1's stride: the maps after it are size/down (1 = the paper's full resolution)
    "deterministic": False,  # add the deterministic path (all IFANP variants)
    "local": None,  # None, "lpa" or "se": the module after ConvEncoder1 on the deterministic path
    "local_residual": False,  # ours: features + local(features) instead of local(features) (off = the paper)
    "lpa_distance": "feature",  # LPA's d(x_i, x_j): "feature" or "spatial"
    "gca": False,  # global cross-attention from target positions to context cells
    "gca_heads": 1,
    "gca_key_dim": 64,
    "gca_masked": True,
    "gca_distance_bias": False,  # ours: a learned locality prior on the attention logits
    "decoder_layers": 3,  # transposed 3x3 convolutions at size/down
    "pool_window": 0,  # Avgpool's window: 0 = global (SPEC 4.2's default); k = a masked k x k mean (stride k) followed
    # by a stride-2 3x3 convolution and a flattening, SPEC 4.2's alternative (the aggregate keeps where the context is)
    "z_decoder": "tile",  # how z enters the DeconvDecoder: "tile" (the same vector at every position, SPEC 4.3's
    # reading) or "deconv" (z -> a c x size/(4 down) map -> stride-2 transposed convolutions up to size/down)
    "skip": False,  # ours: U-Net skip of the full-resolution context and stem features into the decoder head
    "setconv": 0,  # ours: odd kernel size of a density-normalised convolution added to the encoder input (0 = off)
    "positions": False,  # ConvEncoder1 also reads the context's locations M+: concat(y*m, m, row*m, col*m) (SPEC 2: h(x_i, y_i))
    "sigma": "fixed",  # "fixed" (sigma_value), "learned" (one scalar) or "pixel" (per pixel, per channel)
    "sigma_value": 0.1,
    "sigma_min": 0.01,  # floor for "learned" and "pixel"
    "mean_activation": "identity",  # "identity" or "sigmoid" (a sigmoid saturates early in training and stalls)
    "samples": 1,  # K in Eq. 5-6 during training
    "train_targets": "all",  # "all" pixels (NP convention) or "missing" (the non-context pixels)
}


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class GridNP(ImageModel):
    """The image-faced (attentive) neural process; see the module docstring for the parts."""

    latent = True

    def __init__(self, name: str, channels: int = 1, size: int = 28, **overrides: Any):
        unknown = set(overrides) - set(DEFAULTS)
        if unknown:
            raise InputError(f"unknown option(s) for {name}: {', '.join(sorted(unknown))}; known: {', '.join(DEFAULTS)}.")
        cfg = {**DEFAULTS, **overrides}
        super().__init__(name, channels, size, cfg)
        if cfg["down"] not in (1, 2, 4) or size % cfg["down"]:
            raise InputError(f"down must be 1, 2 or 4 and divide the image size {size}; got {cfg['down']}.")
        if cfg["local"] not in (None, "lpa", "se"):
            raise InputError(f"local must be None, 'lpa' or 'se'; got {cfg['local']!r}.")
        if cfg["sigma"] not in ("fixed", "learned", "pixel"):
            raise InputError(f"sigma must be 'fixed', 'learned' or 'pixel'; got {cfg['sigma']!r}.")
        if cfg["mean_activation"] not in ("identity", "sigmoid"):
            raise InputError(f"mean_activation must be 'identity' or 'sigmoid'; got {cfg['mean_activation']!r}.")
        if cfg["z_decoder"] not in ("tile", "deconv"):
            raise InputError(f"z_decoder must be 'tile' or 'deconv'; got {cfg['z_decoder']!r}.")
        if cfg["train_targets"] not in ("all", "missing"):
            raise InputError(f"train_targets must be 'all' or 'missing'; got {cfg['train_targets']!r}.")
        if cfg["local_residual"] and not cfg["local"]:
            raise InputError("local_residual adds a local module's output to its input: set local='lpa' or 'se'.")
        if (cfg["local"] or cfg["gca"]) and not cfg["deterministic"]:
            raise InputError("local modules and GCA live on the deterministic path: set deterministic=True.")
        self.cfg = cfg
        c, s, C, down = cfg["hidden"], cfg["stem"], channels, cfg["down"]
        self.res = size // down

        # ConvEncoder1: full resolution stem, then (optionally strided) to size/down.
        if cfg["setconv"] and cfg["setconv"] % 2 == 0:
            raise InputError(f"setconv must be 0 (off) or an odd kernel size; got {cfg['setconv']}.")
        cin = (C + 1) * (2 if cfg["setconv"] else 1) + (2 if cfg["positions"] else 0)
        self.encoder1 = nn.Sequential(_conv(cin, s), nn.ReLU(), _conv(s, c, stride=down), nn.ReLU(), _conv(c, c), nn.ReLU())
        # ConvEncoder3: 1x1 convolutions on the aggregate, i.e. an MLP on a vector; with a local pooling window,
        # first a strided convolution over the pooled map (its density as one more channel), then the MLP.
        k = cfg["pool_window"]
        if k:
            if k < 1 or self.res % k:
                raise InputError(f"pool_window must be 0 (global) or divide size/down = {self.res}; got {k}.")
            cells = -(-(self.res // k) // 2)  # after the stride-2 convolution
            self.encoder3_map = nn.Sequential(nn.Conv2d(c + 1, c, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten())
            agg = c * cells * cells
        else:
            agg = c
        self.encoder3 = nn.Sequential(nn.Linear(agg, c), nn.ReLU(), nn.Linear(c, 2 * cfg["z_dim"]))

        if cfg["deterministic"]:
            if cfg["local"] == "lpa":
                self.local = LocalPooledAttention(cfg["lpa_distance"])
            elif cfg["local"] == "se":
                self.local = SqueezeExcite(c)
            else:
                self.local = nn.Identity()
            self.encoder2 = nn.Sequential(_conv(c, c), nn.ReLU(), _conv(c, c), nn.ReLU())
            self.gca = (
                GlobalCrossAttention(c, cfg["gca_key_dim"], cfg["gca_heads"], cfg["gca_masked"],
                                     distance_bias=cfg["gca_distance_bias"]) if cfg["gca"] else None
            )
        # DeconvDecoder. The first layer is a 1x1 convolution of concat(R_pred, tile(z), coords), written
        # as conv(R_pred, coords) + linear(z) because z is the same at every position.
        self.dec_in = nn.Conv2d((c if cfg["deterministic"] else 0) + 2, c, 1)
        if cfg["z_decoder"] == "deconv":
            # A deconvolutional reading of DeconvDecoder: z is decoded into a small map and upsampled by
            # transposed convolutions, as a VAE decoder does, so that the latent path alone can place strokes.
            self.z_base, ups = self.res, 0
            while ups < 2 and self.z_base % 2 == 0 and self.z_base > 4:
                self.z_base, ups = self.z_base // 2, ups + 1
            self.dec_z = nn.Linear(cfg["z_dim"], c * self.z_base ** 2)
            self.dec_z_up = nn.Sequential(
                *[m for _ in range(ups)
                  for m in (nn.ReLU(), nn.ConvTranspose2d(c, c, 3, stride=2, padding=1, output_padding=1))]
            )
        else:
            self.dec_z = nn.Linear(cfg["z_dim"], c, bias=False)
        self.decoder = nn.Sequential(
            *[m for _ in range(cfg["decoder_layers"]) for m in (nn.ConvTranspose2d(c, c, 3, padding=1), nn.ReLU())]
        )
        if down > 1:
            self.up = nn.Sequential(
                nn.ConvTranspose2d(c, s, 3, stride=down, padding=1, output_padding=down - 1), nn.ReLU()
            )
        else:
            self.up = nn.Sequential(nn.ConvTranspose2d(c, s, 3, padding=1), nn.ReLU())
        if cfg["skip"]:
            self.head = nn.Sequential(_conv(2 * s + C + 1, s), nn.ReLU(), _conv(s, s), nn.ReLU())
        else:
            self.head = nn.Identity()
        self.out = nn.Conv2d(s, C * (2 if cfg["sigma"] == "pixel" else 1), 1)
        if cfg["sigma"] == "learned":
            self.log_sigma = nn.Parameter(torch.tensor(float(cfg["sigma_value"])).log())
        self.register_buffer("coords", coordinate_grid(self.res, self.res), persistent=False)

    # ---- the parts ---------------------------------------------------------------------------------
    def _density(self, mask: Tensor) -> Tensor:
        d = self.cfg["down"]
        return F.avg_pool2d(mask, d) if d > 1 else mask

    def encoder_input(self, images: Tensor, mask: Tensor) -> Tensor:
        """``concat(y * mask, mask)``, plus (with ``setconv``) the density-normalised convolution
        ``pool(y * mask) / pool(mask)`` and the density ``pool(mask)`` (ConvCNP's set convolution)."""
        parts = [images * mask, mask]
        if self.cfg["positions"]:
            # The context's locations as well as its values: the (row, column) coordinates in [-1, 1] of
            # every context pixel, 0 elsewhere, so each encoded context point is h(x_i, y_i) (SPEC 2).
            h, w = images.shape[-2:]
            parts.append(coordinate_grid(h, w, images.device, images.dtype) * mask)
        k = self.cfg["setconv"]
        if k:
            density = F.avg_pool2d(mask, k, 1, k // 2)
            signal = F.avg_pool2d(images * mask, k, 1, k // 2) / density.clamp_min(1e-6) * (density > 0)
            parts += [signal, density]
        return torch.cat(parts, dim=1)

    def encode(self, images: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """ConvEncoder1 features (size/down), the context density at size/down, and the stem features
        (the output of ConvEncoder1's first, full-resolution layer, used by ``skip``)."""
        stem = self.encoder1[:2](self.encoder_input(images, mask))
        return self.encoder1[2:](stem), self._density(mask), stem

    def latent_dist(self, features: Tensor, density: Tensor) -> Normal:
        """q(z | .) from ConvEncoder1 features: Mask + Avgpool + Division, then ConvEncoder3."""
        k = self.cfg["pool_window"]
        if k:
            local = masked_avg_pool(features, density, k)
            pooled = self.encoder3_map(torch.cat([local, F.avg_pool2d(density, k)], dim=1))
        else:
            pooled = masked_avg_pool(features, density)
        stats = self.encoder3(pooled)
        mu, raw = stats.chunk(2, dim=-1)
        return Normal(mu, 0.1 + 0.9 * torch.sigmoid(raw), validate_args=False)

    def full_latent_dist(self, images: Tensor, mask: Tensor) -> Normal:
        """q(z | full image): the latent path with every pixel observed."""
        return self.latent_dist(*self.encode(images, torch.ones_like(mask))[:2])

    def deterministic(self, features: Tensor, density: Tensor) -> Tensor | None:
        """R_pred (B, c, size/down, size/down) of the deterministic path, or None for IFNP."""
        if not self.cfg["deterministic"]:
            return None
        local = self.local(features)
        rep = self.encoder2(features + local if self.cfg["local_residual"] else local)
        if self.gca is not None:
            return self.gca(rep, density, (self.res, self.res))
        pooled = masked_avg_pool(rep, density)
        return pooled[:, :, None, None].expand(-1, -1, self.res, self.res)

    def decode(
        self, z: Tensor, rep: Tensor | None, images: Tensor, mask: Tensor, stem: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Decode z (K, B, d_z) with R_pred (B, c, r, r) into mean and sigma (K, B, C, H, W)."""
        k, b = z.shape[:2]
        coords = self.coords.expand(b, -1, -1, -1)
        x = self.dec_in(coords if rep is None else torch.cat([rep, coords], dim=1))  # (B, c, r, r)
        if self.cfg["z_decoder"] == "deconv":
            zmap = self.dec_z_up(self.dec_z(z).view(k * b, -1, self.z_base, self.z_base))
            x = (x.unsqueeze(0) + zmap.view(k, b, *zmap.shape[1:])).flatten(0, 1)  # (K*B, c, r, r)
        else:
            x = (x.unsqueeze(0) + self.dec_z(z)[..., None, None]).flatten(0, 1)  # (K*B, c, r, r)
        x = self.up(self.decoder(F.relu(x)))
        if self.cfg["skip"]:
            ctx = torch.cat([stem, images * mask, mask], dim=1).repeat(k, 1, 1, 1)
            x = self.head(torch.cat([x, ctx], dim=1))
        out = self.out(x)
        C = self.channels
        mean = torch.sigmoid(out[:, :C]) if self.cfg["mean_activation"] == "sigmoid" else out[:, :C]
        if self.cfg["sigma"] == "pixel":
            sigma = self.cfg["sigma_min"] + (1 - self.cfg["sigma_min"]) * F.softplus(out[:, C:])
        elif self.cfg["sigma"] == "learned":
            sigma = (self.cfg["sigma_min"] + self.log_sigma.exp()).expand_as(mean)
        else:
            sigma = torch.full_like(mean, self.cfg["sigma_value"])
        shape = (k, b, C, self.size, self.size)
        return mean.view(shape), sigma.reshape(shape)

    # ---- looking inside (for the book) ----------------------------------------------------------------
    @torch.no_grad()
    def attention_map(self, images: Tensor, mask: Tensor, row: int, col: int) -> Tensor:
        """GCA's attention weights of the target pixel (row, col) over the key cells: (B, heads, r, r).

        ``r = size / down``; the pixel is mapped to its cell at that resolution. Cells without context get 0.
        """
        if self.gca is None:
            raise InputError(f"{self.name} has no GCA module; use ifanp-gca, ifanp or ifanp-plus.")
        images, mask = self.check_inputs(images, mask)
        if not (0 <= row < self.size and 0 <= col < self.size):
            raise InputError(f"(row, col) must lie inside the {self.size}x{self.size} image; got ({row}, {col}).")
        r, d = self.res, self.cfg["down"]
        logits = self.gca.attention_logits((r, r), (r, r), images.device)  # (heads, r*r, r*r)
        bias = self.gca.distance_logits((r, r), (r, r), images.device)
        if bias is not None:
            logits = logits + bias
        q = (row // d) * r + col // d
        row_logits = logits[:, q, :].unsqueeze(0)  # (1, heads, r*r)
        valid = (self._density(mask).flatten(1) > 0).unsqueeze(1)  # (B, 1, r*r)
        weights = torch.softmax(row_logits.masked_fill(~valid, float("-inf")), dim=-1).nan_to_num(0.0)
        return weights.view(images.shape[0], -1, r, r)

    @torch.no_grad()
    def lpa_steps(self, images: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """The maps of LPA's steps on ConvEncoder1's features (Fig. 3): input, Output1, Output2, output,
        each (B, c, r, r), plus the 9 attention weights per position (B, 9, r, r)."""
        if not isinstance(getattr(self, "local", None), LocalPooledAttention):
            raise InputError(f"{self.name} has no LPA module; use ifanp-lpa, ifanp or ifanp-plus.")
        images, mask = self.check_inputs(images, mask)
        feats, _, _ = self.encode(images, mask)
        out1, out2 = self.local.pool_twice(feats)
        _, weights = self.local.neighbour_weights(out2)
        b, _c, h, w = feats.shape
        return {"input": feats, "output1": out1, "output2": out2, "output": self.local(feats),
                "weights": weights.view(b, 9, h, w)}

    # ---- the one forward pass ---------------------------------------------------------------------------
    @property
    def train_samples(self) -> int:
        return int(self.cfg["samples"])

    @property
    def z_dim(self) -> int:
        return int(self.cfg["z_dim"])

    def loss_targets(self, mask: Tensor, target_mask: Tensor | None) -> Tensor | None:
        if target_mask is not None:
            return target_mask
        return None if self.cfg["train_targets"] == "all" else 1 - mask

    def forward(self, images: Tensor, mask: Tensor, eps: Tensor | None = None, *, samples: int = 0,
                full: bool = False, z_from: str = "context", target_mask: Tensor | None = None) -> NPOutput:
        """Encode the context, aggregate (latent path; deterministic path for IFANP variants), decode.

        See :meth:`ifanp.models.base.ImageModel.forward` for the arguments; ``target_mask`` is not used
        (q(z | full) always reads the whole image).
        """
        if z_from not in ("context", "full"):
            raise InputError(f"z_from must be 'context' or 'full', got {z_from!r}.")
        feats, dens, stem = self.encode(images, mask)
        q_context = self.latent_dist(feats, dens)
        q_full = self.full_latent_dist(images, mask) if full or z_from == "full" else None
        z = draw_latent(q_full if z_from == "full" else q_context, samples, eps)
        mean, std = self.decode(z, self.deterministic(feats, dens), images, mask, stem)
        return NPOutput(mean, std, z, q_context, q_full)


#: The paper's models and our addition; every one is GridNP with other parts.
VARIANTS: dict[str, dict[str, Any]] = {
    "ifnp": {},
    "ifanp-lpa": {"deterministic": True, "local": "lpa"},
    "ifanp-se": {"deterministic": True, "local": "se"},
    "ifanp-gca": {"deterministic": True, "gca": True},
    "ifanp": {"deterministic": True, "local": "lpa", "gca": True},
    # Faithful configurations beside the CPU-friendly rows above (which keep the shipped weights'
    # configurations): ConvEncoder1 reads the context's values and locations (positions), every map
    # stays at full resolution (down=1), Avgpool uses SPEC 4.2's local window (4x4 cells, then a strided
    # ConvEncoder3) and DeconvDecoder upsamples z by transposed convolutions. With SPEC 4.2's global pool and
    # z tiled over the grid, the IFNP learned far more slowly (pilot runs with the recipe's options, recorded in
    # results/faithful-pilots/pilots.json). "-full" keeps the CPU widths (c = d_z = d_k = 64); "-paper" has the SPEC's widths
    # (SPEC 4.3 and 8: c = d_z = d_k = 128, stem 64), for tools/train_paper_scale.py.
    **{f"{n}{tag}": {**p, "down": 1, "positions": True, "pool_window": 4, "z_decoder": "deconv", **widths}
       for n, p in (("ifnp", {}), ("ifanp-lpa", {"deterministic": True, "local": "lpa"}),
                    ("ifanp-se", {"deterministic": True, "local": "se"}),
                    ("ifanp-gca", {"deterministic": True, "gca": True}),
                    ("ifanp", {"deterministic": True, "local": "lpa", "gca": True}))
       for tag, widths in (("-full", {}), ("-paper", {"hidden": 128, "stem": 64, "z_dim": 128, "gca_key_dim": 128}))},
    # Ours, beside the faithful model (never replacing it): full-resolution context skip into the
    # decoder, a density-normalised convolution of the context at the input, a locality prior in GCA,
    # and a learned (homoscedastic) sigma.
    "ifanp-plus": {"deterministic": True, "local": "lpa", "gca": True, "gca_distance_bias": True, "skip": True,
                   "setconv": 5, "sigma": "learned"},
}
# Ours, for time to quality (issue 14): IFANP+ at half the widths, with its latent and deterministic paths
# at 7x7 (down=4), so that one CPU thread trains about 30 steps of 16 images a second (ifanp.recipes).
VARIANTS["ifanp-fast"] = {**VARIANTS["ifanp-plus"], "down": 4, "hidden": 32, "stem": 16, "z_dim": 32,
                          "gca_key_dim": 32}


def _make_factory(name: str, preset: dict[str, Any]):
    def factory(channels: int = 1, size: int = 28, **overrides: Any) -> GridNP:
        return GridNP(name, channels, size, **{**preset, **overrides})

    factory.__doc__ = f"Build {name} (GridNP with {preset or 'the latent path only'})."
    return factory


for _name, _preset in VARIANTS.items():
    register(_name)(_make_factory(_name, _preset))
