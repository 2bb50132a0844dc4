"""The table of image-model names: each model file registers its factories with :func:`register`, and
:func:`ifanp.models.build` looks them up. A module of its own so that the model files import it and the
package ``__init__`` imports the model files, without a cycle."""
from __future__ import annotations

from typing import Callable

from .base import ImageModel

REGISTRY: dict[str, Callable[..., ImageModel]] = {}


def register(name: str) -> Callable:
    """Decorator: register ``factory(channels=, size=, **overrides) -> ImageModel`` under ``name``."""

    def deco(factory: Callable[..., ImageModel]) -> Callable[..., ImageModel]:
        if name in REGISTRY:
            raise RuntimeError(f"model name {name!r} registered twice")
        REGISTRY[name] = factory
        return factory

    return deco
