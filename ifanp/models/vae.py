"""The VAE baseline of the paper's Fig. 6 and Table 1 (SPEC section 6).

A convolutional VAE (Kingma & Welling 2014) that reads the context ``concat(y * mask, mask)`` and
reconstructs the whole image: q(z | context) = N(mu, sigma), prior N(0, I), Gaussian likelihood with
the same fixed sigma as IFNP. Completion decodes z = mu. It has no second posterior q(z | full image),
so the KL of the paper's Eq. 6 does not apply to it (``latent = False``: evaluation reports no KL).
Its predictive log-likelihood is the Monte-Carlo estimate log (1/K) sum_k p(y_T | z_k), z_k ~ q(z | context),
the same conditional-prior convention the neural processes use.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal

from ..losses import NPOutput, draw_latent
from .base import ImageModel, InputError
from .registry import register

DEFAULTS: dict[str, Any] = {"hidden": 64, "z_dim": 64, "sigma_value": 0.1, "beta": 1.0}


class ConvVAE(ImageModel):
    """Convolutional VAE on context-masked images; see the module docstring."""

    latent = False  # no Eq. 6 KL

    def __init__(self, name: str = "vae", channels: int = 1, size: int = 28, **overrides: Any):
        unknown = set(overrides) - set(DEFAULTS)
        if unknown:
            raise InputError(f"unknown option(s) for vae: {', '.join(sorted(unknown))}; known: {', '.join(DEFAULTS)}.")
        cfg = {**DEFAULTS, **overrides}
        super().__init__(name, channels, size, cfg)
        if size % 4:
            raise InputError(f"the VAE needs an image size divisible by 4, got {size}.")
        self.cfg = cfg
        c, C, r = cfg["hidden"], channels, size // 4
        self.r = r
        self.encoder = nn.Sequential(
            nn.Conv2d(C + 1, c // 2, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c // 2, c, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
            nn.Linear(c * r * r, 2 * cfg["z_dim"]),
        )
        self.from_z = nn.Linear(cfg["z_dim"], c * r * r)
        self.decoder = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c // 2, c // 2, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.Conv2d(c // 2, C, 3, padding=1),
        )

    def posterior(self, images: Tensor, mask: Tensor) -> Normal:
        mu, raw = self.encoder(torch.cat([images * mask, mask], 1)).chunk(2, dim=-1)
        return Normal(mu, F.softplus(raw) + 1e-4, validate_args=False)

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        k, b = z.shape[:2]
        x = self.from_z(z.flatten(0, 1)).view(k * b, -1, self.r, self.r)
        mean = torch.sigmoid(self.decoder(x)).view(k, b, self.channels, self.size, self.size)
        return mean, torch.full_like(mean, self.cfg["sigma_value"])

    @property
    def kl_weight(self) -> float:
        return float(self.cfg["beta"])

    @property
    def z_dim(self) -> int:
        return int(self.cfg["z_dim"])

    def forward(self, images: Tensor, mask: Tensor, eps: Tensor | None = None, *, samples: int = 0,
                full: bool = False, z_from: str = "context", target_mask: Tensor | None = None) -> NPOutput:
        """Encode the context into q(z | context), decode z = mu + sigma * eps.

        The VAE has no q(z | full image): ``full`` and ``z_from`` change nothing (training draws from
        q(z | context) too), and the output carries the prior N(0, I) that its training KL is against.
        """
        q = self.posterior(images, mask)
        z = draw_latent(q, samples, eps)
        mean, std = self.decode(z)
        prior = Normal(torch.zeros_like(q.loc), torch.ones_like(q.scale), validate_args=False)
        return NPOutput(mean, std, z, q_context=q, prior=prior)


@register("vae")
def build_vae(channels: int = 1, size: int = 28, **overrides: Any) -> ConvVAE:
    """Build the convolutional VAE baseline."""
    return ConvVAE("vae", channels, size, **overrides)
