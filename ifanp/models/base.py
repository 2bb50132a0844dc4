"""The contract every image-completion model in the package fulfils.

An image model sees images ``(B, C, H, W)`` with values in [0, 1] and a context mask
``(B, 1, H, W)`` of zeros and ones (1 = observed pixel; the same mask for every channel).
Subclasses implement four methods; everything users call (``complete``, cost reports,
saving/loading) lives here so that the CLI, the book and the tests treat all models alike.

Subclasses implement
    ``loss(images, mask, target_mask=None)`` -> :class:`LossOutput` (training objective)
    ``predict(images, mask, samples)`` -> (means (S,B,C,H,W), stds (S,B,C,H,W)) where S = max(samples, 1);
        with ``samples == 0`` the single "sample" uses the mean of q(z | context)
    ``kl(images, mask)`` -> (B,) KL(q(z | full image) || q(z | context)); zeros for models with no latent
    ``log_likelihood(images, mask, target_mask, samples)`` -> (B,) estimate of log p(y_T | context)
        (exact for deterministic models, importance-sampled for latent ones)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class LossOutput:
    """What one training step reports. All values are means over the images of the batch."""

    loss: Tensor  # the objective to minimise (scalar, differentiable)
    nll: Tensor  # the reconstruction term: -(1/K) sum_k sum_targets log p(y | z_k) (scalar)
    kl: Tensor  # the KL term of Eq. 6 (scalar; 0 for deterministic models)
    mse: Tensor  # mean squared error of the predictive mean over all pixels (scalar, for logging / Fig. 8)

    def as_floats(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("loss", "nll", "kl", "mse")}


@dataclass
class Completion:
    """The result of :meth:`ImageModel.complete`.

    ``mean``/``std``: the predictive mean and standard deviation of every pixel, (B, C, H, W), computed
    with z at the mean of q(z | context) for latent models (the paper's deterministic evaluation).
    ``samples``: (S, B, C, H, W) decoder means for S draws z ~ q(z | context), or ``None`` when S = 0.
    """

    mean: Tensor
    std: Tensor
    samples: Tensor | None = None


class InputError(ValueError):
    """Raised for images or masks of the wrong shape, channel count or values."""


class ImageModel(nn.Module):
    """Base class of every image model (VAE, set-based NP/ANP, IFNP, IFANP and variants)."""

    #: True for models with a global latent z (their ``kl`` is not identically zero)
    latent: bool = False

    def __init__(self, name: str, channels: int, size: int, config: dict[str, Any] | None = None):
        super().__init__()
        if channels not in (1, 3):
            raise InputError(f"channels must be 1 (grey) or 3 (RGB), got {channels}.")
        if not isinstance(size, int) or size < 8:
            raise InputError(f"size must be an integer of at least 8 pixels, got {size!r}.")
        self.name = name
        self.channels = channels
        self.size = size
        # Everything needed to rebuild the model with ifanp.models.build(**config); JSON-serialisable.
        self.config: dict[str, Any] = {"name": name, "channels": channels, "size": size, **(config or {})}

    # ---- to be implemented by subclasses -------------------------------------------------------
    def loss(self, images: Tensor, mask: Tensor, target_mask: Tensor | None = None) -> LossOutput:
        raise NotImplementedError

    def predict(self, images: Tensor, mask: Tensor, samples: int = 0) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def kl(self, images: Tensor, mask: Tensor) -> Tensor:
        return images.new_zeros(images.shape[0])

    def log_likelihood(
        self, images: Tensor, mask: Tensor, target_mask: Tensor | None = None, samples: int = 16
    ) -> Tensor:
        raise NotImplementedError

    def predict_with_kl(self, images: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``predict(images, mask, samples=0)`` and ``kl(images, mask)`` together: (means, stds, kl).

        What ``ifanp.evaluate`` calls for every batch. Models whose two calls share work (the context
        encoding) override it to do that work once; the results must equal the two calls'.
        """
        means, stds = self.predict(images, mask, samples=0)
        return means, stds, self.kl(images, mask)

    def forward(self, images: Tensor, mask: Tensor, target_mask: Tensor | None = None) -> LossOutput:
        """The training objective (so that DistributedDataParallel can wrap the model): ``loss``."""
        return self.loss(images, mask, target_mask)

    # ---- shared ------------------------------------------------------------------------------
    def check_inputs(self, images: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Validate and return ``(images, mask)`` as float tensors on the model's device.

        Raises :class:`InputError` with the expected shapes when something does not fit.
        """
        expected = f"images (B, {self.channels}, {self.size}, {self.size}) and mask (B, 1, {self.size}, {self.size})"
        if not isinstance(images, Tensor) or not isinstance(mask, Tensor):
            raise InputError(f"images and mask must be torch tensors; expected {expected}.")
        if images.dim() == 3:
            raise InputError(
                f"images has shape {tuple(images.shape)} (3 dims): add the batch dimension, "
                f"e.g. images.unsqueeze(0); expected {expected}."
            )
        if images.dim() != 4 or images.shape[1:] != (self.channels, self.size, self.size):
            raise InputError(f"images has shape {tuple(images.shape)}; this model expects {expected}.")
        if mask.dim() == 3:
            mask = mask.unsqueeze(1)
        if mask.dim() != 4 or mask.shape[0] != images.shape[0] or mask.shape[1:] != (1, self.size, self.size):
            raise InputError(
                f"mask has shape {tuple(mask.shape)} for images of shape {tuple(images.shape)}; expected {expected} "
                "(one mask per image, shared by all channels)."
            )
        if images.shape[0] == 0:
            raise InputError("the batch is empty; pass at least one image.")
        mask = mask.float()
        if not torch.all((mask == 0) | (mask == 1)):
            raise InputError("mask values must be 0 (missing) or 1 (observed); threshold or round your mask first.")
        images = images.float()
        if not torch.isfinite(images).all():
            raise InputError("images contain NaN or infinite values.")
        if images.min() < -1e-3 or images.max() > 1 + 1e-3:
            raise InputError(
                f"image values must lie in [0, 1]; got [{float(images.min()):.3g}, {float(images.max()):.3g}]. "
                "Divide 8-bit images by 255."
            )
        device = self.device
        return images.to(device), mask.to(device)

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    @torch.no_grad()
    def complete(self, images: Tensor, mask: Tensor, samples: int = 0) -> Completion:
        """Complete ``images`` from the pixels where ``mask`` is 1.

        Returns the predictive mean and standard deviation (z at the mean of q(z | context)) and,
        when ``samples > 0``, that many completions from posterior draws of z.
        """
        if samples < 0:
            raise InputError(f"samples must be >= 0, got {samples}.")
        images, mask = self.check_inputs(images, mask)
        was_training = self.training
        self.eval()
        try:
            means, stds = self.predict(images, mask, samples=0)
            drawn = self.predict(images, mask, samples=samples)[0] if samples > 0 else None
        finally:
            self.train(was_training)
        return Completion(mean=means[0], std=stds[0], samples=drawn)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_image(self, batch: int = 4, training: bool = False) -> float:
        """FLOPs per image counted by ``torch.utils.flop_counter``: the completion forward pass, or with
        ``training=True`` one training step (loss forward and backward)."""
        from torch.utils.flop_counter import FlopCounterMode

        dev = self.device
        images = torch.rand(batch, self.channels, self.size, self.size, device=dev)
        mask = (torch.rand(batch, 1, self.size, self.size, device=dev) < 0.4).float()
        counter = FlopCounterMode(display=False)
        was_training = self.training
        self.train(training)
        try:
            with counter, torch.set_grad_enabled(training):
                if training:
                    self.loss(images, mask).loss.backward()
                else:
                    self.predict(images, mask, samples=0)
        finally:
            self.train(was_training)
            self.zero_grad(set_to_none=True)
        return counter.get_total_flops() / batch

    def describe(self) -> str:
        return f"{self.name}: {self.num_parameters():,} parameters, config {json.dumps(self.config, sort_keys=True)}"
