"""The GP chapter's widget: move, add and remove observations, choose the kernel, the lengthscale and
the noise, and see the exact posterior.

Only wiring: the drawing is :func:`ifanp.plotting.gp.plot_gp_fit`, the function that draws the
chapter's static figure. Use it as ``GPPosteriorExplorer(x, y).display()`` or leave the explorer as
the value of a notebook cell.
"""
from __future__ import annotations

from typing import Callable

import ipywidgets as W
import numpy as np
from IPython.display import display

from ..gp import KERNEL_NAMES
from ..plotting.gp import KERNEL_LABELS, plot_gp_fit, to_numpy

__all__ = ["GPPosteriorExplorer"]


class GPPosteriorExplorer:
    """Controls + a live posterior figure.

    ``points`` holds the observations as a list of ``[x, y]``; ``figure`` is the last figure drawn.
    The controls: the kernel, the lengthscale and the noise std (log sliders), the selected point with
    its x and y (sliders), "add point" (in the middle of the widest gap, at y = 0) and "remove" (the
    selected point).
    """

    def __init__(
        self,
        x_train,
        y_train,
        *,
        kernel: str = "rbf",
        lengthscale: float = 1.0,
        noise_std: float = 0.1,
        x_range: tuple[float, float] = (-3.0, 3.0),
        y_range: tuple[float, float] = (-3.0, 3.0),
        f_true: Callable | None = None,
        period: float = 1.0,
    ):
        x, y = to_numpy(x_train).reshape(-1), to_numpy(y_train).reshape(-1)
        if x.shape != y.shape:
            raise ValueError(f"x_train and y_train must have the same length, got {x.shape} and {y.shape}.")
        self.points = [[float(a), float(b)] for a, b in zip(x, y)]
        self.x_range, self.y_range = tuple(x_range), tuple(y_range)
        self.f_true, self.period = f_true, period
        self.figure = None
        self._syncing = False

        style = {"description_width": "96px"}
        layout = W.Layout(width="310px")
        self.kernel = W.Dropdown(
            options=[(KERNEL_LABELS[k], k) for k in KERNEL_NAMES], value=kernel, description="kernel",
            style=style, layout=layout,
        )
        self.lengthscale = W.FloatLogSlider(
            value=lengthscale, base=10, min=-1.5, max=1.0, step=0.02, description="lengthscale ℓ",
            readout_format=".3f", style=style, layout=layout, continuous_update=False,
        )
        self.noise_std = W.FloatLogSlider(
            value=noise_std, base=10, min=-3, max=0, step=0.02, description="noise std σₙ",
            readout_format=".3f", style=style, layout=layout, continuous_update=False,
        )
        self.selected = W.Dropdown(description="point", style=style, layout=layout)
        self.x = W.FloatSlider(min=x_range[0], max=x_range[1], step=0.01, description="its x",
                               style=style, layout=layout, continuous_update=False)
        self.y = W.FloatSlider(min=y_range[0], max=y_range[1], step=0.01, description="its y",
                               style=style, layout=layout, continuous_update=False)
        self.add_button = W.Button(description="add point", icon="plus", layout=W.Layout(width="108px"))
        self.remove_button = W.Button(description="remove", icon="minus", layout=W.Layout(width="108px"))
        self.output = W.Output()

        for control in (self.kernel, self.lengthscale, self.noise_std):
            control.observe(lambda change: self.redraw(), names="value")
        self.selected.observe(self._on_select, names="value")
        self.x.observe(self._on_move, names="value")
        self.y.observe(self._on_move, names="value")
        self.add_button.on_click(lambda _: self.add_point())
        self.remove_button.on_click(lambda _: self.remove_point())

        left = W.VBox([self.kernel, self.lengthscale, self.noise_std])
        buttons = W.HBox([self.add_button, self.remove_button], layout=W.Layout(margin="0 0 0 98px"))
        right = W.VBox([self.selected, self.x, self.y, buttons])
        # two columns that wrap into one on a narrow page
        self.ui = W.VBox([W.HBox([left, right], layout=W.Layout(flex_flow="row wrap")), self.output])
        self._refresh_selector(0 if self.points else None)
        self.redraw()

    # ---- actions ----------------------------------------------------------------------------------
    def add_point(self, x: float | None = None, y: float | None = None) -> None:
        """Add an observation (by default at the middle of the widest gap, y = 0) and select it."""
        if x is None:
            xs = sorted([self.x_range[0]] + [p[0] for p in self.points] + [self.x_range[1]])
            gaps = np.diff(xs)
            k = int(np.argmax(gaps))
            x = xs[k] + gaps[k] / 2
        self.points.append([float(np.clip(x, *self.x_range)), float(np.clip(0.0 if y is None else y, *self.y_range))])
        self._refresh_selector(len(self.points) - 1)
        self.redraw()

    def remove_point(self) -> None:
        """Remove the selected observation (nothing happens when there is none)."""
        i = self.selected.value
        if i is None or not self.points:
            return
        del self.points[i]
        self._refresh_selector(min(i, len(self.points) - 1) if self.points else None)
        self.redraw()

    def redraw(self) -> None:
        """Draw the posterior for the current points and controls into the output area."""
        if self._syncing:
            return
        pts = np.array(self.points, dtype=float).reshape(-1, 2)
        fig = plot_gp_fit(
            pts[:, 0], pts[:, 1], kernel=self.kernel.value, lengthscale=self.lengthscale.value,
            noise_std=self.noise_std.value, period=self.period, x_range=self.x_range, f_true=self.f_true,
            highlight=self.selected.value,
        )
        self.figure = fig
        with self.output:
            self.output.clear_output(wait=True)
            display(fig)

    def display(self) -> None:
        display(self.ui)

    def _repr_mimebundle_(self, **kwargs):
        return self.ui._repr_mimebundle_(**kwargs)

    # ---- wiring ------------------------------------------------------------------------------------
    def _refresh_selector(self, index: int | None) -> None:
        self._syncing = True
        try:
            options = [(f"{i + 1}: ({p[0]:.2f}, {p[1]:.2f})", i) for i, p in enumerate(self.points)]
            self.selected.options = options or [("no points", None)]
            self.selected.value = index
            self._sync_sliders()
        finally:
            self._syncing = False

    def _sync_sliders(self) -> None:
        i = self.selected.value
        disabled = i is None
        for w in (self.x, self.y, self.remove_button):
            w.disabled = disabled
        if not disabled:
            self.x.value, self.y.value = self.points[i]

    def _on_select(self, change) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            self._sync_sliders()
        finally:
            self._syncing = False
        self.redraw()

    def _on_move(self, change) -> None:
        i = self.selected.value
        if self._syncing or i is None:
            return
        self.points[i] = [float(self.x.value), float(self.y.value)]
        self._refresh_selector(i)
        self.redraw()
