"""The IFANP chapter's computations and figures (ifanp.plotting.completion).

The traced shapes must be those of the model's parts (and only of the parts the variant has), the
explorer's numbers must be the predictive moments of the model, the mosaic and the pictures must put
every panel where its title says, and the response maps must show what one context pixel changes.
Models are untrained and small; no dataset is needed.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ifanp import analysis, introspect
from ifanp.analysis import make_mask
from ifanp.models import build
from ifanp.models.grid import VARIANTS
from ifanp.plotting import completion as plots
from ifanp.plotting.images import context_image
from ifanp.rules import CompletionRule

SMALL = {"hidden": 16, "stem": 8, "z_dim": 8, "gca_key_dim": 8}


def _small(name: str, **extra):
    torch.manual_seed(0)
    return build(name, **SMALL, **extra).eval()


def _batch(b=3, size=28, ratio=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(b, 1, size, size, generator=g)
    masks = (torch.rand(b, 1, size, size, generator=g) < ratio).float()
    return images, masks


BLUR = torch.arange(1.0, 10.0).view(1, 1, 3, 3) / 45


def blur():
    """A model with a known answer: the mean is a fixed 3x3 blur of the context, sigma 0.1."""
    return CompletionRule("blur", lambda x, m: F.conv2d(x * m, BLUR, padding=1))


def global_mean():
    """Every pixel predicts the mean of the context values."""
    def rule(x, m):
        return ((x * m).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3))).view(-1, 1, 1, 1).expand_as(x)

    return CompletionRule("global-mean", rule)


# ---- trace_shapes and the diagram ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VARIANTS))
def test_traced_shapes_are_those_of_the_parts_the_variant_has(name):
    model = _small(name)
    images, masks = _batch(b=2)
    shapes = introspect.trace_shapes(model, images, masks)
    cfg, r = model.cfg, 28 // model.cfg["down"]
    # (C + 1) channels, twice with setconv, + 2 coordinate channels with positions
    channels = 2 * (2 if cfg["setconv"] else 1) + (2 if cfg.get("positions") else 0)
    assert shapes["input"] == (2, channels, 28, 28)
    assert shapes["encoder1"] == (2, 16, r, r)
    assert ("local" in shapes) == (cfg["local"] is not None)
    assert ("encoder2" in shapes) == cfg["deterministic"]
    assert ("gca" in shapes) == cfg["gca"]
    if cfg["gca"]:
        assert shapes["gca"] == (2, 16, r, r)
    k = cfg["pool_window"]
    assert shapes["pooled"] == ((2, 16 + 1, r // k, r // k) if k else (2, 16))  # local means + density, or the mean
    assert shapes["encoder3"] == (2, 2 * 8)
    assert shapes["z"] == (2, 8)
    assert shapes["decoder_input"] == (2, (16 if cfg["deterministic"] else 0) + 2, r, r)
    assert shapes["output"] == (2, 1, 28, 28)
    # the hooks are gone afterwards
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_traced_z_has_a_sample_axis_when_sampling():
    shapes = introspect.trace_shapes(_small("ifanp"), *_batch(b=2), samples=3)
    assert shapes["z"] == (3, 2, 8)
    assert shapes["output"] == (3, 2, 1, 28, 28)


def test_trace_shapes_refuses_a_model_that_is_not_a_grid_np():
    with pytest.raises(TypeError, match="GridNP"):
        introspect.trace_shapes(build("vae"), *_batch(b=1))


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_the_diagram_writes_every_traced_shape():
    model = _small("ifanp")
    shapes = introspect.trace_shapes(model, *_batch(b=4))
    texts = "\n".join(_texts(plots.plot_ifanp_diagram(shapes)))
    for key in ("input", "encoder1", "local", "encoder2", "gca", "pooled", "encoder3", "z", "output", "up"):
        assert plots.format_shape(shapes[key]) in texts, key
    assert "none" not in texts


def test_the_diagram_of_a_variant_marks_its_missing_parts():
    lpa = "\n".join(_texts(plots.plot_ifanp_diagram(introspect.trace_shapes(_small("ifanp-lpa"), *_batch(b=1)))))
    assert "no GCA" in lpa and "tiled" in lpa
    ifnp = "\n".join(_texts(plots.plot_ifanp_diagram(introspect.trace_shapes(_small("ifnp"), *_batch(b=1)))))
    assert "GCA: none" in ifnp and "local module: none" in ifnp


# ---- Fig. 6 layout ----------------------------------------------------------------------------------------------


def test_completion_columns_put_context_models_and_truth_in_order():
    images, masks = _batch(b=3)
    preds = {"A": images.flip(-1), "B": torch.zeros_like(images)}
    fig = plots.plot_completion_columns(images, masks, preds, row_labels=["r0", "r1", "r2"])
    axes = np.asarray(fig.axes).reshape(3, 4)
    assert [ax.get_title() for ax in axes[0]] == ["context", "A", "B", "truth"]
    for i in range(3):
        np.testing.assert_allclose(axes[i, 0].images[0].get_array(), context_image(images[i], masks[i]), atol=1e-6)
        np.testing.assert_allclose(axes[i, 1].images[0].get_array(), images[i, 0].flip(-1).numpy(), atol=1e-6)
        np.testing.assert_allclose(axes[i, 3].images[0].get_array(), images[i, 0].numpy(), atol=1e-6)
        whole, missing = analysis.psnr_pair(preds["A"][i], images[i], masks[i])
        assert axes[i, 1].get_xlabel() == f"{whole:.1f} / {missing:.1f}"
        assert axes[i, 0].get_ylabel() == f"r{i}"


def test_completion_columns_refuse_predictions_of_another_shape():
    images, masks = _batch(b=2)
    with pytest.raises(ValueError, match="predictions"):
        plots.plot_completion_columns(images, masks, {"A": images[:1]})


def test_psnr_pair_is_whole_image_and_missing_pixels():
    truth = torch.zeros(1, 4, 4)
    mask = torch.zeros(1, 4, 4)
    mask[0, :2] = 1  # half observed
    pred = torch.zeros(1, 4, 4)
    pred[0, 2:] = 0.1  # error 0.1 on the missing half only
    whole, missing = analysis.psnr_pair(pred, truth, mask)
    assert missing == pytest.approx(20.0, abs=1e-4)  # MSE 0.01
    assert whole == pytest.approx(10 * np.log10(1 / 0.005), abs=1e-4)


# ---- the explorer ----------------------------------------------------------------------------------------------


def test_explorer_panels_are_the_moments_of_the_mixture_over_z():
    model = _small("ifanp")
    images, masks = _batch(b=1)
    torch.manual_seed(3)
    p = analysis.explorer_panels(model, images[0], masks[0], samples=2, draws=6)
    torch.manual_seed(3)
    with torch.no_grad():
        model.predict(images, masks, samples=0)  # the same random stream as inside explorer_panels
        mus, sigmas = model.predict(images, masks, samples=6)
    assert p["samples"].shape == (2, 1, 28, 28)
    torch.testing.assert_close(p["samples"], mus[:2, 0].clamp(0, 1))
    var = sigmas.pow(2).mean(0) + (mus - mus.mean(0)).pow(2).mean(0)
    torch.testing.assert_close(p["std"], var.sqrt()[0])
    assert (p["std"] >= 0.1 - 1e-6).all()  # the decoder's fixed sigma is a floor of the mixture's std
    torch.testing.assert_close(p["mean"], model.complete(images, masks).mean[0].clamp(0, 1))


def test_mosaic_places_every_tile():
    a, b = np.zeros((2, 3, 3)), np.ones((2, 3, 3))
    out = plots.mosaic([[a, b], [None, a]], gap=1)
    assert out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out[0:2, 4:7], 1)
    np.testing.assert_array_equal(out[0:2, 0:3], 0)
    np.testing.assert_array_equal(out[3:5, 0:3], 1)  # the empty tile shows the background
    np.testing.assert_array_equal(out[:, 3], 1)  # the gap
    with pytest.raises(ValueError, match="tiles"):
        plots.mosaic([[a, np.zeros((3, 3, 3))]])


def _tile(picture, row, col, scale=3, left=150, top=46, size=28, gap=2):
    arr = np.asarray(picture).astype(float) / 255
    y, x = top + row * (size + gap) * scale, left + col * (size + gap) * scale
    return arr[y:y + size * scale:scale, x:x + size * scale:scale]


def test_plot_explorer_draws_each_models_row_and_grows_with_the_settings():
    models = {"IFNP": _small("ifnp"), "IFANP": _small("ifanp")}
    images, _ = _batch(b=1)
    one = plots.plot_explorer(models, images[0], 7, names=["IFANP"], ratio=0.4, samples=2)
    two = plots.plot_explorer(models, images[0], 7, ratio=0.4, samples=2)
    more = plots.plot_explorer(models, images[0], 7, ratio=0.4, samples=4)
    assert two.height > one.height and two.width == one.width
    assert more.width > two.width and more.height == two.height
    # the first tile of every row is the context of the evaluation mask; the last is the truth
    mask = make_mask("random", 7, 28, 0.4)[0]
    for row in range(2):
        np.testing.assert_allclose(_tile(two, row, 0), context_image(images[0], mask), atol=1 / 255)
        np.testing.assert_allclose(_tile(two, row, 5)[..., 0], images[0, 0].numpy(), atol=1 / 255)
    # the second tile of the IFANP row is its completion
    mean = models["IFANP"].complete(images, mask[None]).mean[0, 0].clamp(0, 1).numpy()
    np.testing.assert_allclose(_tile(two, 1, 1)[..., 0], mean, atol=1 / 255)


def test_plot_explorer_uses_its_cache_and_the_mask_kind(monkeypatch):
    models = {"IFANP": _small("ifanp")}
    images, _ = _batch(b=1)
    calls = []
    real = analysis.explorer_panels

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(plots, "explorer_panels", counting)
    cache = {}
    first = plots.plot_explorer(models, images[0], 3, ratio=0.2, cache=cache)
    again = plots.plot_explorer(models, images[0], 3, ratio=0.2, cache=cache)
    assert len(calls) == 1 and np.array_equal(np.asarray(first), np.asarray(again))
    top = plots.plot_explorer(models, images[0], 3, kind="top", cache=cache)
    assert len(calls) == 2
    expected = context_image(images[0], make_mask("top", 3, 28)[0])
    np.testing.assert_allclose(_tile(top, 0, 0), expected, atol=1 / 255)
    with pytest.raises(ValueError, match="unknown model"):
        plots.plot_explorer(models, images[0], 3, names=["NP"])


# ---- response maps -------------------------------------------------------------------------------------------


def test_response_map_of_a_blur_is_its_kernel_around_the_pixel():
    model = blur()
    images, masks = _batch(b=1, ratio=1.0)
    images[0, 0, 10, 12] = 0.2
    maps = analysis.response_maps(model, images[0], masks[0], [(10, 12)])
    expected = torch.zeros(28, 28)
    # changing y by 1 - 2y = 0.6 changes every output whose 3x3 window holds the pixel, by weight x 0.6
    kernel = BLUR[0, 0].flip(0).flip(1)
    expected[9:12, 11:14] = 0.6 * kernel
    torch.testing.assert_close(maps[0], expected, atol=1e-6, rtol=1e-5)
    locality = analysis.response_locality(maps, [(10, 12)], radius=2.0)
    near = sum(1 for dr in range(-2, 3) for dc in range(-2, 3) if dr * dr + dc * dc <= 4)
    assert float(locality[0]) == pytest.approx(28 * 28 / near, rel=1e-5)  # all the change is near


def test_a_model_that_only_sees_the_context_mean_has_locality_one():
    # The extreme of a global model: every pixel predicts the mean of the context. Changing one pixel moves
    # the whole completion by the same amount, so no part of the image is favoured.
    model = global_mean()
    images, masks = _batch(b=1, ratio=0.3)
    pixels = analysis.pick_context_pixels(images[0], masks[0], count=3)
    maps = analysis.response_maps(model, images[0], masks[0], pixels)
    for m, (r, c) in zip(maps, pixels):
        expected = abs(1 - 2 * float(images[0, 0, r, c])) / float(masks.sum())
        torch.testing.assert_close(m, torch.full((28, 28), expected), atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(analysis.response_locality(maps, pixels), torch.ones(3), atol=1e-4, rtol=1e-4)


def test_response_maps_refuse_a_missing_pixel_and_pick_observed_ones():
    images, masks = _batch(b=1, ratio=0.3)
    pixels = analysis.pick_context_pixels(images[0], masks[0], count=3)
    assert len(pixels) == 3 and all(masks[0, 0, r, c] == 1 for r, c in pixels)
    assert all(images[0, 0, r, c] > 0.5 for r, c in pixels)
    r, c = map(int, (masks[0, 0] == 0).nonzero()[0])
    with pytest.raises(ValueError, match="not in the context"):
        analysis.response_maps(_small("ifnp"), images[0], masks[0], [(r, c)])


def test_response_figure_has_one_row_per_model():
    images, masks = _batch(b=1)
    pixels = analysis.pick_context_pixels(images[0], masks[0], count=2)
    maps = {k: analysis.response_maps(_small(k), images[0], masks[0], pixels) for k in ("ifnp", "ifanp")}
    loc = {k: analysis.response_locality(v, pixels) for k, v in maps.items()}
    fig = plots.plot_response_maps(images[0], masks[0], pixels, maps, loc)
    axes = np.asarray(fig.axes).reshape(2, 3)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["ifnp", "ifanp"]
    np.testing.assert_allclose(axes[1, 2].images[0].get_array(), maps["ifanp"][1].numpy())
    assert axes[0, 1].get_xlabel() == f"locality {float(loc['ifnp'][0]):.1f}"
