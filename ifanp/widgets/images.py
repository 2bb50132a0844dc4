"""The widgets of the image chapters: only wiring. The figures are drawn by
:func:`ifanp.plotting.images.plot_completion_explorer` and :func:`ifanp.plotting.images.plot_ifnp_explorer`,
the functions that draw the chapters' static figures."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets as w
import torch
from IPython.display import display

from ..analysis import MASK_CHOICES
from ..plotting.images import plot_completion_explorer, plot_ifnp_explorer

__all__ = ["completion_explorer", "ifnp_explorer"]


def _image_picker(images: torch.Tensor, indices: Sequence[int]):
    if len(images) != len(indices):
        raise ValueError(f"got {len(images)} images but {len(indices)} test indices.")
    if len(images) == 0:
        raise ValueError("give at least one image.")


def completion_explorer(models: Mapping[str, object], images: torch.Tensor, indices: Sequence[int], image: int = 0,
                        kind: str = "random", ratio: float = 0.2, seed: int = 0):
    """Choose a test image, the kind of mask and the context ratio; see every model's completion.

    ``images`` (N, C, H, W) floats in [0, 1] with their test-split ``indices`` (which fix the random masks);
    ``models`` as :func:`~ifanp.plotting.images.plot_completion_explorer` takes them. Returns an
    ``ipywidgets.interactive`` (display it, or make it the last line of a cell).
    """
    _image_picker(images, indices)

    def show(image: int, kind: str, ratio: float) -> None:
        display(plot_completion_explorer(models, images[image], int(indices[image]), kind=kind, ratio=ratio,
                                         seed=seed))

    return w.interactive(
        show,
        image=w.IntSlider(value=image, min=0, max=len(images) - 1, description="image", continuous_update=False),
        kind=w.Dropdown(options=list(MASK_CHOICES), value=kind, description="mask"),
        ratio=w.FloatSlider(value=ratio, min=0.02, max=0.98, step=0.02, description="ratio (random)",
                            readout_format=".0%", continuous_update=False, style={"description_width": "100px"}),
    )


def ifnp_explorer(model, images: torch.Tensor, indices: Sequence[int], image: int = 0, ratio: float = 0.2,
                  samples: int = 3, kind: str = "random", seed: int = 0):
    """Choose a test image, the context ratio (or a structured mask), the number of z samples and their
    seed; see the completion, the samples and the predictive standard deviation
    (:func:`~ifanp.plotting.images.plot_ifnp_explorer`). Returns an ``ipywidgets.interactive``."""
    _image_picker(images, indices)

    def show(image: int, ratio: float, kind: str, samples: int, seed: int) -> None:
        display(plot_ifnp_explorer(model, images[image], int(indices[image]), ratio=ratio, samples=samples,
                                   kind=kind, seed=seed))

    return w.interactive(
        show,
        image=w.IntSlider(value=image, min=0, max=len(images) - 1, description="image", continuous_update=False),
        ratio=w.FloatSlider(value=ratio, min=0.02, max=0.98, step=0.02, description="ratio (random)",
                            readout_format=".0%", continuous_update=False, style={"description_width": "100px"}),
        kind=w.Dropdown(options=list(MASK_CHOICES), value=kind, description="mask"),
        samples=w.IntSlider(value=samples, min=1, max=6, description="z samples", continuous_update=False),
        seed=w.IntSlider(value=seed, min=0, max=20, description="seed", continuous_update=False),
    )
