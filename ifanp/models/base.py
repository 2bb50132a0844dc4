"""The contract every image-completion model in the package fulfils.

An image model sees images ``(B, C, H, W)`` with values in [0, 1] and a context mask
``(B, 1, H, W)`` of zeros and ones (1 = observed pixel; the same mask for every channel).

A model implements one method, ``forward``: it runs the skeleton once (encode the context, aggregate,
the optional latent path, the target-specific representation, decode) and returns an :class:`NPOutput`,
as the Neural Process Family's ``NeuralProcessFamily.forward`` does::

    out = model(images, mask, eps=None, samples=0, full=False, z_from="context", target_mask=None)
    out.mean, out.std      # (S, B, C, H, W): the decoder's Gaussian for each z_s
    out.z                  # (S, B, d_z), z_s = q.mean + q.stddev * eps_s (None without a latent)
    out.q_context          # q(z | context)
    out.q_full             # q(z | full image), when full=True or z_from="full" (training, KL, likelihood)

Everything else is derived from that output here, once for all models (the formulas are in
:mod:`ifanp.losses`): ``loss`` (Eq. 6), ``predict``, ``kl``, ``log_likelihood`` (importance-sampled),
``elbo`` and ``complete``. Those public entry points check their inputs (:meth:`ImageModel.check_inputs`);
``forward`` itself does not, so it runs on tensors directly and can be traced (``torch.onnx.export``,
``torch.export``). A completion rule without a latent (a baseline, a test fake) may implement
``predict(images, mask, samples)`` instead of ``forward``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..losses import NPOutput, np_elbo_loss, predictive_log_likelihood, squared_error


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

    #: True for models with the Eq. 6 latent: q(z | context) and q(z | full image) (their ``kl`` is not zero)
    latent: bool = False
    #: K of Eq. 6: latent draws per image in the training loss (models with a ``samples`` option override it)
    train_samples: int = 1
    #: weight of the training KL (the VAE's beta); 1 for Eq. 6
    kl_weight: float = 1.0

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

    # ---- the one forward pass (implemented by each model) -------------------------------------------
    def forward(self, images: Tensor, mask: Tensor, eps: Tensor | None = None, *, samples: int = 0,
                full: bool = False, z_from: str = "context", target_mask: Tensor | None = None) -> NPOutput:
        """Run the model once on checked tensors and return its :class:`NPOutput`.

        z = q.mean + q.stddev * eps with q = q(z | context) (``z_from="context"``, prediction) or
        q(z | full image) (``z_from="full"``, training and importance sampling; it implies ``full``).
        ``eps`` (S, B, d_z) fixes the noise, so the output is a deterministic function of (images, mask,
        eps); without it, ``samples=0`` decodes z = q.mean (S = 1) and ``samples=S`` draws eps ~ N(0, I).
        ``full=True`` also returns q(z | full image). ``target_mask`` matters only where q(z | full)
        is computed from the context and the targets (the pixel-set models).

        The base version wraps a completion rule that implements ``predict`` instead (no latent).
        """
        if type(self).predict is ImageModel.predict:
            raise NotImplementedError(f"{type(self).__name__} implements neither forward nor predict.")
        mean, std = self.predict(images, mask, samples=eps.shape[0] if eps is not None else samples)
        return NPOutput(mean, std)

    @property
    def z_dim(self) -> int | None:
        """Size of the latent z (the last dimension of ``eps``), or None for a model without z."""
        return None

    def noise(self, batch: int) -> Tensor | None:
        """Standard-normal ``eps`` (train_samples, batch, z_dim) for one training forward pass (None without z).

        The training loop draws it for the global batch and slices it per process (DistributedDataParallel),
        so N processes see the noise one process would; it is the stream ``forward`` draws itself.
        """
        d = self.z_dim
        return None if d is None else torch.randn((self.train_samples, batch, d), device=self.device)

    def loss_targets(self, mask: Tensor, target_mask: Tensor | None) -> Tensor | None:
        """The 0/1 weights of the pixels the training loss counts (None = all); the given ``target_mask``."""
        return target_mask

    # ---- everything else, derived from forward's output ---------------------------------------------
    def objective(self, out: NPOutput, images: Tensor, mask: Tensor, target_mask: Tensor | None = None) -> LossOutput:
        """The training objective of a forward output (``z_from="full"``, ``samples=train_samples``):
        Eq. 6, KL(q(z | full) || q(z | context)) - (1/K) sum_k sum_targets log N(y | mu_k, sigma_k^2),
        as a batch mean (deterministic models: the exact -log p; the VAE: its ELBO with weight beta)."""
        loss, nll, kl = np_elbo_loss(out, images, self.loss_targets(mask, target_mask), self.kl_weight)
        return LossOutput(loss.mean(), nll.mean(), kl.mean(), squared_error(out.mean, images).detach())

    def loss(self, images: Tensor, mask: Tensor, target_mask: Tensor | None = None, *,
             net: nn.Module | None = None, eps: Tensor | None = None) -> LossOutput:
        """The training objective (:meth:`objective`) of one forward pass with z ~ q(z | full image).

        ``net`` is the module whose forward runs: the model itself, or its DistributedDataParallel
        wrapper in training (DDP needs the loss computed from the wrapper's forward output). ``eps``
        (K, B, z_dim) fixes the noise of the K draws (default: drawn inside, K = ``train_samples``).
        """
        images, mask = self.check_inputs(images, mask)
        target_mask = self.check_target_mask(target_mask, mask)
        out = (net or self)(images, mask, eps, samples=self.train_samples, z_from="full", target_mask=target_mask)
        return self.objective(out, images, mask, target_mask)

    def predict(self, images: Tensor, mask: Tensor, samples: int = 0) -> tuple[Tensor, Tensor]:
        """Means and stds (S, B, C, H, W), S = max(samples, 1); with ``samples=0`` z = mean of q(z | context)."""
        self.check_samples(samples, 0)
        images, mask = self.check_inputs(images, mask)
        out = self(images, mask, samples=samples)
        return out.mean, out.std

    def kl(self, images: Tensor, mask: Tensor) -> Tensor:
        """(B,) KL(q(z | full image) || q(z | context)); zeros for models without the Eq. 6 latent."""
        images, mask = self.check_inputs(images, mask)
        return self(images, mask, full=True).kl

    def log_likelihood(
        self, images: Tensor, mask: Tensor, target_mask: Tensor | None = None, samples: int = 16
    ) -> Tensor:
        """(B,) estimate of log p(y_T | context), summed over the target pixels (all by default): exact for
        deterministic models, importance-sampled with ``samples`` draws from q(z | full) for latent ones
        (:func:`ifanp.losses.predictive_log_likelihood`)."""
        self.check_samples(samples, 1)
        images, mask = self.check_inputs(images, mask)
        target_mask = self.check_target_mask(target_mask, mask)
        out = self(images, mask, samples=samples, z_from="full", target_mask=target_mask)
        return predictive_log_likelihood(out, images, target_mask)

    def elbo(self, images: Tensor, mask: Tensor, target_mask: Tensor | None = None, samples: int = 16) -> Tensor:
        """(B,) the Eq. 5 lower bound with ``samples`` draws of z (minus the Eq. 6 loss without beta)."""
        self.check_samples(samples, 1)
        images, mask = self.check_inputs(images, mask)
        target_mask = self.check_target_mask(target_mask, mask)
        out = self(images, mask, samples=samples, z_from="full", target_mask=target_mask)
        return -np_elbo_loss(out, images, target_mask)[0]

    # ---- input checks (the one place) -----------------------------------------------------------------
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

    @staticmethod
    def check_target_mask(target_mask: Tensor | None, mask: Tensor) -> Tensor | None:
        """``target_mask`` (B, 1, H, W) (or (B, H, W)) of 0/1 as a float tensor beside the checked ``mask``."""
        if target_mask is None:
            return None
        if not isinstance(target_mask, Tensor):
            raise InputError(f"target_mask must be a tensor of the mask's shape {tuple(mask.shape)}.")
        tm = target_mask.unsqueeze(1) if target_mask.dim() == 3 else target_mask
        if tuple(tm.shape) != tuple(mask.shape):
            raise InputError(f"target_mask must have the mask's shape {tuple(mask.shape)}, got {tuple(target_mask.shape)}.")
        return tm.to(mask.device, mask.dtype)

    @staticmethod
    def check_samples(samples: int, minimum: int) -> None:
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < minimum:
            raise InputError(f"samples must be an integer >= {minimum}, got {samples!r}.")

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
        self.check_samples(samples, 0)
        images, mask = self.check_inputs(images, mask)
        was_training = self.training
        self.eval()
        try:
            out = self(images, mask)
            drawn = self(images, mask, samples=samples).mean if samples > 0 else None
        finally:
            self.train(was_training)
        return Completion(mean=out.mean[0], std=out.std[0], samples=drawn)

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
