"""The widget of the neural-process chapter: only wiring. The figure is drawn by
:func:`ifanp.plotting.np1d.plot_np_explorer`, the same function that draws the static figure."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets as w
from IPython.display import display

from ..plotting import np1d as plots

__all__ = ["np_explorer"]


def np_explorer(models: Mapping[tuple[str, str], object], kernels: Sequence[str] = ("rbf", "matern52", "periodic"),
                num_context: int = 10, max_context: int = 50, kernel: str = "rbf", model: str = "anp",
                seed: int = 0, samples: int = 32, num_points: int = 200):
    """Sliders and menus for the number of context points, the kernel of the test function and the model.

    ``models`` maps (model name, training kernel) to a model, as :func:`~ifanp.plotting.np1d.plot_np_explorer`
    expects. Returns an ``ipywidgets.interactive`` (display it, or make it the last line of a cell).
    """
    order = ("cnp", "np", "anp")
    names = sorted({m for m, _ in models}, key=lambda m: (order.index(m) if m in order else len(order), m))
    def show(num_context: int, kernel: str, model: str) -> None:
        display(plots.plot_np_explorer(models, model=model, kernel=kernel, num_context=num_context, seed=seed,
                                 samples=samples, num_points=num_points))

    return w.interactive(
        show,
        num_context=w.IntSlider(value=num_context, min=0, max=max_context, step=1, description="context",
                                continuous_update=False),
        kernel=w.Dropdown(options=list(kernels), value=kernel, description="kernel"),
        model=w.Dropdown(options=[(plots.LABELS.get(m, m), m) for m in names], value=model, description="model"),
    )
