"""A completion rule as a model: :class:`CompletionRule` wraps a function ``rule(images, mask) -> mean`` (and
an optional predictive standard deviation) so that everything that takes an image model takes it too:
:func:`ifanp.evaluate.evaluate` scores it (PSNR, SSIM, and the NLL of its Gaussian), ``complete`` and
:func:`ifanp.analysis.completion_mean` complete with it, the figures draw it.

The chapters use it for their baselines ("the mean image", "copy the context, fill in the mean image"), the
tests for fake models whose answer is known.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .models.base import ImageModel, InputError

Rule = Callable[[Tensor, Tensor], Tensor]


class CompletionRule(ImageModel):
    """``rule(images, mask) -> mean (B, C, H, W)`` as a deterministic image model (no latent, no parameters).

    ``std``: the predictive standard deviation, a number, a tensor that broadcasts to the images (e.g. a
    per-pixel map), or a function ``std(images, mask) -> (B, C, H, W)``; default 0.1 (the paper's fixed
    sigma of Eq. 1). The rule runs on the CPU; its inputs are checked like any model's. Everything else
    (the likelihood that evaluate() reports, ``complete``) is :class:`ImageModel`'s, derived from ``predict``.
    """

    latent = False

    def __init__(self, name: str, rule: Rule, std: float | Tensor | Rule = 0.1, channels: int = 1,
                 size: int = 28):
        super().__init__(name, channels, size, {"rule": name})
        self.rule, self.std = rule, std

    def predict(self, images: Tensor, mask: Tensor, samples: int = 0) -> tuple[Tensor, Tensor]:
        mean = self.rule(images.cpu(), mask.cpu())
        if mean.shape != images.shape:
            raise InputError(f"the rule {self.name!r} returned shape {tuple(mean.shape)} for images of shape "
                             f"{tuple(images.shape)}; a completion has the shape of the images.")
        std = self.std(images.cpu(), mask.cpu()) if callable(self.std) else torch.as_tensor(self.std)
        std = std.to(mean.dtype).expand_as(mean)
        s = max(int(samples), 1)
        return mean.expand(s, *mean.shape), std.expand(s, *std.shape)

    def loss(self, images: Tensor, mask: Tensor, target_mask: Tensor | None = None):
        raise InputError(f"{self.name!r} is a fixed completion rule: there is nothing to train.")
