"""The widget of the IFANP chapter: only wiring. Every picture is drawn by
:func:`ifanp.plotting.completion.plot_explorer`, the function that draws the chapter's static figure.

Speed: the models are loaded once by the caller and passed in; every update computes only the chosen
models on the chosen image (two forward passes per model, without gradients), remembers the result in a
cache (going back to an earlier setting costs nothing), and draws one PIL image into an
``ipywidgets.Image`` (no matplotlib figure, no layout engine).
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import ipywidgets as w
import torch
from IPython.display import display

from ..analysis import MASK_CHOICES
from ..plotting import completion

__all__ = ["CompletionExplorer", "completion_explorer"]


class CompletionExplorer:
    """Controls (``self.controls``: models, mask, ratio, image, samples) above the picture (``self.view``).

    Changing a control redraws the picture with the new setting; ``self.settings`` holds the settings of
    the picture on show and ``self.updates`` counts the redraws. Display the object itself (or
    ``self.widget``) in a notebook.
    """

    def __init__(self, models: Mapping[str, object], images: torch.Tensor, indices: Sequence[int],
                 names: Sequence[str] | None = None, image: int = 0, kind: str = "random", ratio: float = 0.2,
                 samples: int = 3, draws: int = 16, seed: int = 0, max_samples: int = 6):
        if len(images) != len(indices):
            raise ValueError(f"got {len(images)} images but {len(indices)} test indices.")
        if len(images) == 0 or not models:
            raise ValueError("give at least one image and one model.")
        names = list(models) if names is None else list(names)
        unknown = [n for n in names if n not in models]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; choose from {list(models)}.")
        self.models, self.images, self.indices = models, images, [int(i) for i in indices]
        self.draws, self.seed = draws, seed
        self.cache: dict = {}
        self.settings: dict = {}
        self.updates = 0
        wide = {"description_width": "70px"}
        self.controls = {
            "models": w.SelectMultiple(options=list(models), value=tuple(names), rows=min(len(models), 6),
                                       description="models", style=wide),
            "kind": w.Dropdown(options=[("random pixels" if k == "random" else k, k) for k in MASK_CHOICES],
                               value=kind, description="mask", style=wide),
            "ratio": w.FloatSlider(value=ratio, min=0.05, max=0.95, step=0.05, description="context",
                                   readout_format=".0%", continuous_update=False, style=wide),
            "image": w.IntSlider(value=image, min=0, max=len(images) - 1, description="image",
                                 continuous_update=False, style=wide),
            "samples": w.IntSlider(value=samples, min=1, max=max(max_samples, samples), description="z draws",
                                   continuous_update=False, style=wide),
        }
        self.view = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto"))
        self.message = w.HTML()
        for control in self.controls.values():
            control.observe(self._changed, names="value")
        left = w.VBox([self.controls["models"], self.controls["kind"]])
        right = w.VBox([self.controls["ratio"], self.controls["image"], self.controls["samples"]])
        self.widget = w.VBox([w.HBox([left, right]), self.message, self.view])
        self.redraw()

    def _changed(self, _change) -> None:
        self.redraw()

    def redraw(self) -> None:
        """Draw the picture for the current values of the controls."""
        c = self.controls
        names = list(c["models"].value)
        c["ratio"].disabled = c["kind"].value != "random"
        if not names:
            self.message.value = "<i>Choose at least one model (ctrl- or shift-click).</i>"
            return
        self.message.value = ""
        settings = {"names": names, "kind": c["kind"].value, "ratio": float(c["ratio"].value),
                    "image": int(c["image"].value), "samples": int(c["samples"].value)}
        picture = completion.plot_explorer(
            self.models, self.images[settings["image"]], self.indices[settings["image"]], names=names,
            kind=settings["kind"], ratio=settings["ratio"], samples=settings["samples"], seed=self.seed,
            draws=self.draws, cache=self.cache)
        buffer = io.BytesIO()
        picture.save(buffer, format="png", compress_level=1)
        self.view.value = buffer.getvalue()
        self.settings = settings
        self.updates += 1

    def _ipython_display_(self) -> None:
        display(self.widget)


def completion_explorer(models: Mapping[str, object], images: torch.Tensor, indices: Sequence[int],
                        names: Sequence[str] | None = None, image: int = 0, kind: str = "random", ratio: float = 0.2,
                        samples: int = 3, draws: int = 16, seed: int = 0) -> CompletionExplorer:
    """Choose the models, the mask (random pixels at a context ratio, or a structured mask), the test image
    and the number of z draws; see each model's context, mean completion, completions from draws of z,
    predictive standard deviation of y and the truth (:func:`~ifanp.plotting.completion.plot_explorer`).

    ``models`` maps a label to a loaded image model; ``images`` (N, C, H, W) floats in [0, 1] with their
    test-split ``indices`` (they fix the random masks); ``names`` the models shown first (default all).
    """
    return CompletionExplorer(models, images, indices, names=names, image=image, kind=kind, ratio=ratio,
                              samples=samples, draws=draws, seed=seed)
