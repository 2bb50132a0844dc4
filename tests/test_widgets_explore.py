"""The wiring of the IFANP chapter's widget (ifanp.widgets.explore): every control redraws the picture
with its new value, and the picture is the one the plotting function draws for those settings.
Timings are not tested here (the chapter prints the measured update time)."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from ifanp.models import build
from ifanp.plotting import completion as plots
from ifanp.widgets.explore import completion_explorer

SMALL = {"hidden": 16, "stem": 8, "z_dim": 8, "gca_key_dim": 8}


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    models = {"IFNP": build("ifnp", **SMALL).eval(), "IFANP": build("ifanp", **SMALL).eval()}
    images = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return models, images, [11, 22, 33]


def _picture(explorer) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(explorer.view.value)).convert("RGB"))


def test_the_first_picture_is_the_static_figure_at_the_same_settings(setup):
    models, images, indices = setup
    ex = completion_explorer(models, images, indices, names=["IFANP"], image=1, ratio=0.4, samples=2)
    assert ex.updates == 1
    assert ex.settings == {"names": ["IFANP"], "kind": "random", "ratio": 0.4, "image": 1, "samples": 2}
    static = plots.plot_explorer(models, images[1], 22, names=["IFANP"], ratio=0.4, samples=2)
    np.testing.assert_array_equal(_picture(ex), np.asarray(static))


@pytest.mark.parametrize("control, value, key, expected", [
    ("ratio", 0.6, "ratio", 0.6),
    ("image", 2, "image", 2),
    ("samples", 4, "samples", 4),
    ("kind", "top", "kind", "top"),
    ("models", ("IFNP", "IFANP"), "names", ["IFNP", "IFANP"]),
])
def test_changing_a_control_redraws_with_the_new_setting(setup, control, value, key, expected):
    models, images, indices = setup
    ex = completion_explorer(models, images, indices, names=["IFANP"], ratio=0.2, samples=2)
    before = _picture(ex)
    ex.controls[control].value = value
    assert ex.updates == 2
    assert ex.settings[key] == expected
    after = _picture(ex)
    assert before.shape != after.shape or not np.array_equal(before, after)
    s = ex.settings
    static = plots.plot_explorer(models, images[s["image"]], indices[s["image"]], names=s["names"], kind=s["kind"],
                                 ratio=s["ratio"], samples=s["samples"])
    np.testing.assert_array_equal(after, np.asarray(static))


def test_more_models_add_rows_and_more_draws_add_columns(setup):
    models, images, indices = setup
    ex = completion_explorer(models, images, indices, names=["IFNP"], samples=2)
    h, w = _picture(ex).shape[:2]
    ex.controls["models"].value = ("IFNP", "IFANP")
    assert _picture(ex).shape[0] > h
    ex.controls["samples"].value = 3
    assert _picture(ex).shape[1] > w


def test_a_structured_mask_disables_the_ratio_and_no_model_keeps_the_picture(setup):
    models, images, indices = setup
    ex = completion_explorer(models, images, indices)
    ex.controls["kind"].value = "centre"
    assert ex.controls["ratio"].disabled
    ex.controls["kind"].value = "random"
    assert not ex.controls["ratio"].disabled
    shown, updates = ex.view.value, ex.updates
    ex.controls["models"].value = ()
    assert ex.view.value == shown and ex.updates == updates
    assert "at least one model" in ex.message.value
    ex.controls["models"].value = ("IFNP",)
    assert ex.updates == updates + 1 and ex.message.value == ""


def test_going_back_to_a_setting_reuses_the_cache(setup):
    models, images, indices = setup
    ex = completion_explorer(models, images, indices, names=["IFANP"], ratio=0.2)
    ex.controls["ratio"].value = 0.5
    size = len(ex.cache)
    ex.controls["ratio"].value = 0.2
    assert len(ex.cache) == size


def test_bad_arguments_are_refused(setup):
    models, images, indices = setup
    with pytest.raises(ValueError, match="indices"):
        completion_explorer(models, images, indices[:2])
    with pytest.raises(ValueError, match="unknown model"):
        completion_explorer(models, images, indices, names=["VAE"])
