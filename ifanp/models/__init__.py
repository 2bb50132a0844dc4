"""Image-completion models and the 1-D neural-process family.

``build(name, channels=1, size=28, **overrides)`` is the one public constructor for image models;
``MODEL_NAMES`` lists the names it accepts.
"""
from __future__ import annotations

from typing import Any, Callable

from .base import Completion, ImageModel, InputError, LossOutput

_REGISTRY: dict[str, Callable[..., ImageModel]] = {}


def register(name: str) -> Callable:
    """Decorator: register ``factory(channels=, size=, **overrides) -> ImageModel`` under ``name``."""

    def deco(factory: Callable[..., ImageModel]) -> Callable[..., ImageModel]:
        if name in _REGISTRY:
            raise RuntimeError(f"model name {name!r} registered twice")
        _REGISTRY[name] = factory
        return factory

    return deco


def build(name: str, channels: int = 1, size: int = 28, **overrides: Any) -> ImageModel:
    """Build the image model ``name`` for ``channels``-channel ``size`` x ``size`` images."""
    _load_all()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}.")
    return _REGISTRY[name](channels=channels, size=size, **overrides)


def model_names() -> list[str]:
    _load_all()
    return list(_REGISTRY)


def _load_all() -> None:
    # Importing the modules runs their @register decorators.
    from . import grid, setnp, vae  # noqa: F401


__all__ = ["Completion", "ImageModel", "InputError", "LossOutput", "build", "model_names", "register"]
