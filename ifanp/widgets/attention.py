"""The widget of the attention chapter: only wiring. The figure is drawn by
:func:`ifanp.plotting.attention.plot_attention_explorer`, the same function that draws the static figure."""
from __future__ import annotations

import ipywidgets as w
from IPython.display import display
from torch import Tensor

from ..plotting import attention as plots

__all__ = ["attention_explorer"]


def attention_explorer(model, images: Tensor, indices, row: int = 14, col: int = 14, ratio: float = 0.2,
                       image: int = 0):
    """Sliders for the target pixel (row, column), the context ratio and the test image.

    ``images`` (N, C, H, W) are test images and ``indices`` their indices in the test split (they fix the
    evaluation masks); ``model`` is an image model with GCA (ifanp-gca, ifanp, ifanp-plus). Returns an
    ``ipywidgets.interactive`` (display it, or make it the last line of a cell).
    """
    size = images.shape[-1]

    def show(row: int, col: int, ratio: float, image: int) -> None:
        display(plots.plot_attention_explorer(model, images[image], int(indices[image]), row=row, col=col,
                                              ratio=ratio))

    return w.interactive(
        show,
        row=w.IntSlider(value=row, min=0, max=size - 1, step=1, description="row", continuous_update=False),
        col=w.IntSlider(value=col, min=0, max=size - 1, step=1, description="column",
                        continuous_update=False),
        ratio=w.FloatSlider(value=ratio, min=0.05, max=0.95, step=0.05, description="context",
                            readout_format=".0%", continuous_update=False),
        image=w.IntSlider(value=image, min=0, max=len(images) - 1, step=1, description="image",
                          continuous_update=False),
    )
