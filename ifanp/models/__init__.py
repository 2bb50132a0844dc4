"""Image-completion models and the 1-D neural-process family.

``build(name, channels=1, size=28, **overrides)`` is the one public constructor for image models;
``MODEL_NAMES`` lists the names it accepts.
"""
from __future__ import annotations

from typing import Any

# Importing the model files runs their @register decorators.
from . import grid, hetero, setnp, vae  # noqa: F401
from .base import Completion, ImageModel, InputError, LossOutput
from .registry import REGISTRY as _REGISTRY
from .registry import register


def build(name: str, channels: int = 1, size: int = 28, **overrides: Any) -> ImageModel:
    """Build the image model ``name`` for ``channels``-channel ``size`` x ``size`` images."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}.")
    return _REGISTRY[name](channels=channels, size=size, **overrides)


def model_names() -> list[str]:
    return list(_REGISTRY)


__all__ = ["Completion", "ImageModel", "InputError", "LossOutput", "build", "model_names", "register"]
