"""The figures of the image chapters (ifanp.plotting.images) and their widgets (ifanp.widgets.images)."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from ifanp import analysis, metrics
from ifanp.data import eval_mask, structured_mask
from ifanp.models import build
from ifanp.plotting import images as plots

SIZE = 12


def _images(b: int = 3, channels: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, channels, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def ifnp():
    torch.manual_seed(0)
    return build("ifnp", size=SIZE, hidden=8, stem=8, z_dim=4).eval()


@pytest.fixture(scope="module")
def cnp():
    torch.manual_seed(0)
    return build("cnp", size=SIZE, hidden=16, r_dim=16, heads=2).eval()


def _titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def test_context_image_keeps_observed_pixels_and_paints_missing_ones():
    grey = _images(1)[0]
    mask = eval_mask([5], SIZE, 0.3)[0]
    pic = plots.context_image(grey, mask)
    assert pic.shape == (SIZE, SIZE, 3)
    m = mask[0].numpy().astype(bool)
    for c in range(3):  # an observed grey pixel becomes the same value in R, G and B
        np.testing.assert_allclose(pic[..., c][m], grey[0].numpy()[m])
    np.testing.assert_allclose(pic[~m], np.broadcast_to(plots.MISSING_COLOR, (int((~m).sum()), 3)))
    rgb = _images(1, channels=3)[0]
    pic = plots.context_image(rgb, mask)
    np.testing.assert_allclose(pic[m], rgb.permute(1, 2, 0).numpy()[m])
    # an observed black pixel and a missing one look different
    black = torch.zeros(1, SIZE, SIZE)
    pic = plots.context_image(black, mask)
    assert (np.abs(pic[m] - pic[~m][:1]).sum(-1) > 0.5).all()


def test_to_display_shapes_and_clipping():
    assert plots.to_display(torch.full((1, 4, 5), 2.0)).shape == (4, 5)
    assert plots.to_display(torch.full((1, 1, 4, 5), -1.0)).max() == 0.0
    assert plots.to_display(torch.rand(3, 4, 5)).shape == (4, 5, 3)
    with pytest.raises(ValueError, match="1 \\(grey\\) or 3"):
        plots.to_display(torch.rand(2, 4, 5))
    with pytest.raises(ValueError, match="one image"):
        plots.to_display(torch.rand(2, 1, 4, 5))


def test_make_mask_is_the_evaluation_mask_or_a_structured_mask():
    torch.testing.assert_close(analysis.make_mask("random", [3, 9], SIZE, 0.4), eval_mask([3, 9], SIZE, 0.4))
    torch.testing.assert_close(analysis.make_mask("random", 9, SIZE, 0.4), eval_mask([9], SIZE, 0.4))
    torch.testing.assert_close(analysis.make_mask("top", [3, 9], SIZE), structured_mask("top", 2, SIZE))
    a = analysis.make_mask("random_box", [1, 2], SIZE, seed=4)
    torch.testing.assert_close(a, analysis.make_mask("random_box", [1, 2], SIZE, seed=4))
    assert a.shape == (2, 1, SIZE, SIZE) and (a.sum(dim=(1, 2, 3)) < SIZE * SIZE).all()
    with pytest.raises(ValueError, match="unknown mask kind"):
        analysis.make_mask("bottom-left", 0, SIZE)


def test_completion_mean_of_a_model_and_of_a_rule(ifnp):
    x, m = _images(5), eval_mask(range(5), SIZE, 0.3)
    expected = ifnp.complete(x, m).mean.clamp(0, 1)
    torch.testing.assert_close(analysis.completion_mean(ifnp, x, m), expected)
    # batching does not change the result
    torch.testing.assert_close(analysis.completion_mean(ifnp, x, m, batch_size=2), expected)
    rule = lambda imgs, mask: imgs * mask + 2.0 * (1 - mask)
    out = analysis.completion_mean(rule, x, m)
    torch.testing.assert_close(out, x * m + (1 - m))  # clipped to [0, 1]
    # one mask for a whole batch is broadcast
    torch.testing.assert_close(analysis.completion_mean(rule, x, m[:1]), x * m[:1] + (1 - m[:1]))


def test_predictive_moments_are_those_of_the_mixture_over_z(ifnp, cnp):
    x, m = _images(2), eval_mask([0, 1], SIZE, 0.3)
    torch.manual_seed(5)
    mean, std = analysis.predictive_moments(ifnp, x, m, samples=7)
    torch.manual_seed(5)
    with torch.no_grad():
        mus, sigmas = ifnp.predict(x, m, samples=7)
    torch.testing.assert_close(mean, mus.mean(0))
    expected = (sigmas.pow(2).mean(0) + mus.var(0, unbiased=False)).sqrt()
    torch.testing.assert_close(std, expected)
    assert (std >= sigmas.min() - 1e-6).all()  # the spread of z only adds to the decoder's sigma
    # without a latent the predictive is the decoder's own Gaussian
    mean_c, std_c = analysis.predictive_moments(cnp, x, m, samples=7)
    with torch.no_grad():
        mu_c, sigma_c = cnp.predict(x, m, samples=0)
    torch.testing.assert_close(mean_c, mu_c[0])
    torch.testing.assert_close(std_c, sigma_c[0])


def test_completion_grid_layout_and_psnr_titles():
    truth, mask = _images(3), eval_mask([0, 1, 2], SIZE, 0.4)
    preds = {"a": truth.flip(-1), "b": torch.full_like(truth, 0.5)}
    fig = plots.plot_completion_grid(truth, mask, preds, column_titles=["x", "y", "z"], title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 4 * 3
    met = metrics.completion_metrics(preds["b"], truth, mask)
    # row-major axes: row 2 (the second prediction), column 1
    title = fig.axes[2 * 3 + 1].get_title()
    whole, target = (float(v) for v in re.findall(r"[-\d.]+", title)[:2])
    assert whole == pytest.approx(float(met["psnr_whole"][1]), abs=0.05)
    assert target == pytest.approx(float(met["psnr_target"][1]), abs=0.05)
    assert [fig.axes[i * 3].get_ylabel() for i in range(4)] == ["context", "a", "b", "truth"]


def test_contexts_figure_has_one_panel_per_image_and_mask():
    x = _images(2)
    fig = plots.plot_contexts(x, [eval_mask([0, 1], SIZE, 0.2), structured_mask("left", 1, SIZE)], ["r", "left"])
    assert len(fig.axes) == 4
    left = fig.axes[1].get_images()[0].get_array()  # image 0, "left" mask: the right half is missing
    np.testing.assert_allclose(np.asarray(left)[:, -1], np.broadcast_to(plots.MISSING_COLOR, (SIZE, 3)))
    with pytest.raises(ValueError, match="column titles"):
        plots.plot_contexts(x, [eval_mask([0, 1], SIZE, 0.2)], ["a", "b"])


def test_cost_scaling_reports_the_power_law_slope():
    pixels = [100, 400, 1600]
    fig = plots.plot_cost_scaling(pixels, {"quadratic": [p**2 * 1e-6 for p in pixels],
                                           "linear": [p * 1e-3 for p in pixels]}, mark={"MNIST": 784})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["quadratic (slope 2.00)", "linear (slope 1.00)"]


def test_psnr_distribution_marks_both_averages():
    mse = torch.tensor([0.001, 0.01, 0.1, 0.02])
    fig = plots.plot_psnr_distribution({"m": mse})
    xs = sorted(line.get_xdata()[0] for line in fig.axes[0].lines if len(line.get_xdata()) == 2)
    expected = sorted([float(metrics.mean_psnr(mse)), float(metrics.psnr_of_mean_mse(mse))])
    np.testing.assert_allclose(xs, expected, rtol=1e-6)
    assert xs[0] < xs[1]  # Jensen: the PSNR of the mean MSE is the smaller


def test_metric_vs_ratio_draws_the_values_and_the_papers_numbers():
    fig = plots.plot_metric_vs_ratio([0.2, 0.4], {"ours": [10.0, 11.0]}, paper={"paper": [15.0, 15.5]},
                                     styles={"ours": "--"})
    ours, paper = fig.axes[0].lines
    np.testing.assert_allclose(ours.get_xdata(), [20, 40])
    np.testing.assert_allclose(ours.get_ydata(), [10, 11])
    assert ours.get_linestyle() == "--"
    np.testing.assert_allclose(paper.get_ydata(), [15.0, 15.5])


def test_density_normalisation_figure():
    fig = plots.plot_density_normalisation([0.1, 0.5, 1.0], {"with": [0.7] * 3, "without": [0.07, 0.35, 0.7]},
                                           [0.2, 1.0], {"d": [0.3, 0.0]}, 0.7)
    left, right = fig.axes
    np.testing.assert_allclose(left.lines[1].get_ydata(), [0.07, 0.35, 0.7])
    np.testing.assert_allclose(right.lines[0].get_xdata(), [20, 100])


def test_ifnp_diagram_names_every_block_of_fig2():
    fig = plots.plot_ifnp_diagram()
    texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    for name in ("ConvEncoder1", "ConvEncoder3", "Mask +", "Avgpool", "Division", "DeconvDecoder", "KL (Eq. 6)"):
        assert name in texts
    assert texts.count("ConvEncoder1") == 3  # twice in training (one set of weights), once at test time


def test_elbo_gap_figure_error_bars_are_two_standard_errors():
    fig = plots.plot_elbo_gap([1, 4], [-10.0, -10.0], [-10.5, -9.0], [0.5, 0.5], [0.25, 0.25])
    ax = fig.axes[0]
    segments = ax.collections[0].get_segments()  # the ELBO's error bars
    assert segments[0][1][1] - segments[0][0][1] == pytest.approx(2.0)


def test_posterior_samples_share_one_sigma_scale(ifnp):
    x, m = _images(2), eval_mask([0, 1], SIZE, 0.3)
    comp = ifnp.complete(x, m, samples=3)
    _, std = analysis.predictive_moments(ifnp, x, m, samples=4)
    std = std.clone()
    std[1] *= 2  # the second row has larger values: both rows must use the same colour scale
    fig = plots.plot_posterior_samples(x, m, comp.samples, comp.mean, std)
    maps = [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name == "magma"]
    assert len(maps) == 2 and maps[0].get_clim() == maps[1].get_clim()
    assert maps[0].get_clim()[1] == pytest.approx(float(std.max()))


def test_explorer_figures_and_their_titles(ifnp, cnp):
    image = _images(1)[0]
    rule = lambda imgs, mask: imgs * mask
    fig = plots.plot_completion_explorer({"CNP": cnp, "rule": rule}, image, 7, kind="random", ratio=0.25)
    assert len(fig.axes) == 4
    assert fig.axes[0].get_title() == f"context: {round(0.25 * SIZE * SIZE)} pixels"
    pred = analysis.completion_mean(rule, image, eval_mask([7], SIZE, 0.25))
    met = metrics.completion_metrics(pred, image[None], eval_mask([7], SIZE, 0.25))
    assert f"{float(met['psnr_whole'][0]):.1f} / {float(met['psnr_target'][0]):.1f} dB" in fig.axes[2].get_title()
    fig = plots.plot_completion_explorer({"CNP": cnp}, image, 7, kind="top")
    assert fig.axes[0].get_title() == f"context: {SIZE // 2 * SIZE} pixels"

    a = plots.plot_ifnp_explorer(ifnp, image, 3, ratio=0.3, samples=2, seed=1)
    b = plots.plot_ifnp_explorer(ifnp, image, 3, ratio=0.3, samples=2, seed=1)
    c = plots.plot_ifnp_explorer(ifnp, image, 3, ratio=0.3, samples=2, seed=2)
    sample = lambda fig: np.asarray(fig.axes[2].get_images()[0].get_array())
    np.testing.assert_array_equal(sample(a), sample(b))  # the seed fixes the draws of z
    assert not np.array_equal(sample(a), sample(c))
    assert "σ" in _titles(a)[4] and len(a.axes) == 2 + 4 + 1  # 6 panels and the colour bar


def test_single_image_figures_refuse_the_wrong_channels():
    with pytest.raises(ValueError, match="grey"):
        plots.plot_image_as_function(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="RGB"):
        plots.plot_rgb_channels(torch.rand(1, 8, 8))
    fig = plots.plot_rgb_channels(torch.rand(3, 8, 8))
    assert len(fig.axes) == 5  # the picture, three channels, one colour bar
    fig = plots.plot_image_as_function(torch.rand(1, 8, 8))
    assert len(fig.axes) == 2


def test_widgets_wire_the_plotting_functions(ifnp, cnp):
    pytest.importorskip("ipywidgets")
    from ifanp.widgets.images import completion_explorer, ifnp_explorer

    images = _images(3)
    w = completion_explorer({"CNP": cnp}, images, [0, 1, 2], ratio=0.3)
    controls = {c.description: c for c in w.children[:-1]}
    assert controls["image"].max == 2 and controls["mask"].value == "random"
    assert controls["ratio (random)"].value == pytest.approx(0.3)
    w = ifnp_explorer(ifnp, images, [0, 1, 2], samples=2)
    controls = {c.description: c for c in w.children[:-1]}
    assert controls["z samples"].value == 2 and controls["seed"].value == 0
    with pytest.raises(ValueError, match="test indices"):
        ifnp_explorer(ifnp, images, [0, 1])
    assert math.isfinite(controls["ratio (random)"].value)
