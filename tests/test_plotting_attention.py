"""The attention chapter's computations and figures (ifanp.plotting.attention) and its widget.

The exact pooling coefficients must agree with the package's LPA on every cell, the attention matrix
with GridNP.attention_map row by row, and the figures must draw what they say (unreached pixels masked,
the overlay equal to the attention map, one point per context cell). Models are untrained and small.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ifanp import introspect, timing
from ifanp.models import build
from ifanp.models.modules import LocalPooledAttention
from ifanp.plotting import attention as plots

CENTRE_81 = [4, 6, 4, 6, 9, 6, 4, 6, 4]


def _impulse_responses(size: int, pool) -> torch.Tensor:
    """(size, size, size^2): the response of every output cell to x_k = 1 alone."""
    out = torch.empty(size, size, size * size)
    for k in range(size * size):
        x = torch.zeros(1, 1, size, size)
        x.view(-1)[k] = 1.0
        out[:, :, k] = pool(x)[0, 0]
    return out


def test_pooling_coefficients_give_fig3_over_81_and_sum_49_81():
    c = introspect.pooling_coefficients(3, passes=2)
    assert [int(v * 81) for v in c[1, 1]] == CENTRE_81
    assert all(v * 81 == int(v * 81) for v in c[1, 1])
    assert sum(c[1, 1]) == Fraction(49, 81)
    expected = "(4 x1 + 6 x2 + 4 x3 + 6 x4 + 9 x5 + 6 x6 + 4 x7 + 6 x8 + 4 x9) / 81"
    assert introspect.format_combination(c[1, 1]) == expected
    assert introspect.format_combination(introspect.pooling_coefficients(3, passes=1)[1, 1]).endswith("/ 9")


@pytest.mark.parametrize("size", [3, 5])
def test_pooling_coefficients_match_the_package_in_every_cell(size):
    exact = introspect.pooling_coefficients(size, passes=2)
    numeric = _impulse_responses(size, lambda x: LocalPooledAttention().pool_twice(x)[1])
    torch.testing.assert_close(numeric, torch.tensor(exact.astype(float), dtype=torch.float32))


def test_pooling_without_padding_in_the_count_sums_to_one_and_matches_torch():
    exact = introspect.pooling_coefficients(4, passes=2, include_pad=False)

    def pool(x):
        once = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        return F.avg_pool2d(once, 3, 1, 1, count_include_pad=False)

    expected = torch.tensor(exact.astype(float), dtype=torch.float32)
    torch.testing.assert_close(_impulse_responses(4, pool), expected)
    for i in range(4):
        for j in range(4):
            assert sum(exact[i, j]) == 1
    centre3 = introspect.pooling_coefficients(3, passes=2, include_pad=False)[1, 1]
    assert [int(v * 324) for v in centre3] == [25, 40, 25, 40, 64, 40, 25, 40, 25]


def test_image_lpa_steps_is_the_module_on_the_masked_image():
    torch.manual_seed(0)
    images = torch.rand(2, 1, 9, 9)
    mask = (torch.rand(2, 1, 9, 9) < 0.3).float()
    steps = introspect.image_lpa_steps(images, mask)
    lpa = LocalPooledAttention()
    torch.testing.assert_close(steps["input"], images * mask)
    torch.testing.assert_close(steps["output"], lpa(images * mask))
    o1, o2 = lpa.pool_twice(images * mask)
    torch.testing.assert_close(steps["output1"], o1)
    torch.testing.assert_close(steps["output2"], o2)
    assert steps["weights"].shape == (2, 9, 9, 9)
    torch.testing.assert_close(steps["weights"].sum(1), torch.ones(2, 9, 9))
    # the same keys as GridNP.lpa_steps, so that one plotting function draws both
    model_steps = build("ifanp-lpa").lpa_steps(torch.rand(1, 1, 28, 28), torch.ones(1, 1, 28, 28))
    assert set(model_steps) == set(steps)
    one = introspect.image_lpa_steps(images[0], mask[0])  # one image without the batch dimension
    torch.testing.assert_close(one["output"], steps["output"][:1])


def test_lpa_reach_grows_by_one_pixel_per_step_and_matches_the_support_of_lpa():
    mask = torch.zeros(1, 1, 15, 15)
    mask[0, 0, 7, 7] = 1
    reach = introspect.lpa_reach(mask)
    assert [int(reach[k].sum()) for k in ("input", "output1", "output2", "output")] == [1, 9, 25, 49]
    torch.manual_seed(1)
    mask = (torch.rand(3, 1, 20, 20) < 0.05).float()
    support = LocalPooledAttention()(mask * (0.5 + torch.rand_like(mask))) > 0
    assert torch.equal(introspect.lpa_reach(mask)["output"], support)


def test_effective_neighbours_is_nine_for_uniform_and_one_for_one_hot():
    uniform = torch.full((1, 9, 2, 2), 1 / 9)
    torch.testing.assert_close(introspect.effective_neighbours(uniform), torch.full((1, 2, 2), 9.0))
    one_hot = torch.zeros(1, 9, 2, 2)
    one_hot[:, 4] = 1
    torch.testing.assert_close(introspect.effective_neighbours(one_hot), torch.ones(1, 2, 2))
    half = torch.zeros(1, 9, 1, 1)
    half[:, :2] = 0.5
    torch.testing.assert_close(introspect.effective_neighbours(half), torch.full((1, 1, 1), 2.0))


def test_pick_channel_finds_the_channel_that_shows_the_holes():
    torch.manual_seed(2)
    density = (torch.rand(1, 6, 6) < 0.5).float()
    feats = 0.1 * torch.randn(5, 6, 6)
    feats[3] += 2 * density[0]
    assert introspect.pick_channel(feats, density) == 3
    feats[1] *= 50  # with context everywhere: the channel of largest variance
    assert introspect.pick_channel(feats, torch.ones(1, 6, 6)) == 1


@pytest.mark.parametrize("overrides", [{}, {"down": 1, "gca_heads": 2, "gca_distance_bias": True}])
def test_attention_matrix_rows_are_the_attention_maps(overrides):
    size = 12
    torch.manual_seed(3)
    model = build("ifanp", size=size, **overrides).eval()
    images = torch.rand(2, 1, size, size)
    mask = (torch.rand(2, 1, size, size) < 0.3).float()
    w = introspect.attention_matrix(model, mask)
    r, d = model.res, model.cfg["down"]
    assert w.shape == (2, model.cfg["gca_heads"], r * r, r * r)
    for row, col in [(0, 0), (5, 7), (size - 1, 3)]:
        q = (row // d) * r + col // d
        torch.testing.assert_close(w[:, :, q].view(2, -1, r, r), model.attention_map(images, mask, row, col))
    density = F.avg_pool2d(mask, d) if d > 1 else mask
    valid = density.flatten(1) > 0
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
    assert (w.permute(0, 3, 1, 2)[~valid] == 0).all()  # no weight on cells without context


def test_attention_distances_against_a_direct_computation():
    size = 12
    torch.manual_seed(4)
    model = build("ifanp", size=size).eval()
    mask = (torch.rand(1, 1, size, size) < 0.2).float()
    out = introspect.attention_distances(model, mask)
    w = introspect.attention_matrix(model, mask)[0, 0]
    centres = introspect.cell_centres(size, 2)
    valid = F.avg_pool2d(mask, 2).flatten() > 0
    q = 7
    d = [math.dist(centres[q].tolist(), centres[k].tolist()) for k in range(len(centres))]
    ctx = [k for k in range(len(centres)) if valid[k]]
    assert out["attended"][0, 0, q] == pytest.approx(sum(float(w[q, k]) * d[k] for k in ctx), rel=1e-5)
    assert out["uniform"][0, 0, q] == pytest.approx(sum(d[k] for k in ctx) / len(ctx), rel=1e-5)
    assert out["nearest"][0, 0, q] == pytest.approx(min(d[k] for k in ctx), rel=1e-5)
    assert torch.equal(out["target_has_context"][0, 0], valid)
    # one context cell: every measure is the distance to it
    one = torch.zeros(1, 1, size, size)
    one[0, 0, 0, 0] = 1
    out = introspect.attention_distances(model, one)
    torch.testing.assert_close(out["attended"], out["uniform"])
    torch.testing.assert_close(out["attended"], out["nearest"])


def test_cell_centres_are_in_pixel_units():
    c = introspect.cell_centres(28, 2)
    assert c.shape == (196, 2)
    assert c[0].tolist() == [0.5, 0.5] and c[-1].tolist() == [26.5, 26.5] and c[1].tolist() == [0.5, 2.5]
    assert introspect.cell_centres(5, 1)[-1].tolist() == [4.0, 4.0]


def test_weight_grids_write_numerators_and_the_sum():
    c = introspect.pooling_coefficients(3, passes=2)[1, 1].reshape(3, 3)
    fig = plots.plot_lpa_worked_example({"Output2": c})
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax = fig.axes[1]
    assert "1/81" in ax.get_title() and "49/81" in ax.get_title()
    assert sorted(int(t.get_text()) for t in ax.texts) == sorted(CENTRE_81)
    assert len([t for t in fig.axes[0].texts if t.get_text() == "0"]) == 16  # the padding ring
    fig = plots.plot_weight_grids({"a": np.full((3, 3), 1 / 9)})
    assert "sum 1.000" in fig.axes[0].get_title()


def test_lpa_steps_figure_masks_the_unreached_pixels():
    torch.manual_seed(5)
    images = torch.rand(2, 1, 10, 10)
    mask = (torch.rand(2, 1, 10, 10) < 0.1).float()
    steps = introspect.image_lpa_steps(images, mask)
    reach = introspect.lpa_reach(mask)
    fig = plots.plot_lpa_steps(steps, index=1, channel=0, reach=reach)
    step_axes = fig.axes[:4]
    for ax, key in zip(step_axes, ("input", "output1", "output2", "output")):
        arr = ax.images[0].get_array()
        assert np.array_equal(np.ma.getmaskarray(arr), ~reach[key][1, 0].numpy())
        assert f"{reach[key][1].float().mean().item():.1%} reached" in ax.get_title()
    eff = fig.axes[4].images[0].get_array()
    np.testing.assert_allclose(eff, introspect.effective_neighbours(steps["weights"][1:2])[0].numpy(), rtol=1e-6)
    fig = plots.plot_lpa_steps(steps, channel="norm", pictures={"context": np.zeros((10, 10, 3))})
    assert len(fig.axes) == 7  # context, four maps, the effective neighbours and its colour bar


def test_attention_explorer_overlays_the_attention_map_of_the_target():
    torch.manual_seed(6)
    model = build("ifanp").eval()
    image = torch.rand(1, 28, 28)
    mask = (torch.rand(1, 28, 28) < 0.2).float()
    fig = plots.plot_attention_explorer(model, image, index=0, row=9, col=20, mask=mask)
    overlay = fig.axes[1].images[1].get_array()
    expected = model.attention_map(image[None], mask[None], 9, 20)[0, 0]
    expected = expected.repeat_interleave(2, 0).repeat_interleave(2, 1).numpy()
    np.testing.assert_allclose(np.ma.filled(overlay, 0.0), expected, rtol=1e-6)
    n_context = int((F.avg_pool2d(mask[None], 2) > 0).sum())
    scatter = fig.axes[3].collections[0]  # (fig.axes[-1] is the colour bar)
    assert len(scatter.get_offsets()) == n_context
    cells = expected[::2, ::2]
    np.testing.assert_allclose(sorted(scatter.get_offsets()[:, 1]), sorted(cells[cells > 0]), rtol=1e-6)
    marks = [line for line in fig.axes[0].lines if line.get_marker() == "+"]
    assert marks and marks[0].get_xdata()[0] == 20 and marks[0].get_ydata()[0] == 9
    # without a mask the evaluation mask of (index, ratio) is used
    from ifanp.data import eval_mask

    a = plots.plot_attention_explorer(model, image, index=3, row=9, col=20, ratio=0.4)
    b = plots.plot_attention_explorer(model, image, index=3, row=9, col=20, mask=eval_mask([3], 28, 0.4)[0])
    np.testing.assert_array_equal(np.ma.filled(a.axes[1].images[1].get_array(), 0),
                                  np.ma.filled(b.axes[1].images[1].get_array(), 0))
    with pytest.raises(ValueError, match="inside"):
        plots.plot_attention_explorer(model, image, 0, 28, 0, mask=mask)
    with pytest.raises(ValueError, match="no GCA"):
        introspect.attention_matrix(build("ifanp-lpa"), mask)


def test_attention_cost_records_the_sizes_and_the_exact_matrix_bytes():
    records = timing.attention_cost([8, 16], downs=(1, 2), repeats=1)
    assert [(r["size"], r["down"]) for r in records] == [(8, 1), (8, 2), (16, 1), (16, 2)]
    for r in records:
        keys = (r["size"] // r["down"]) ** 2
        assert r["keys"] == keys and r["pixels"] == r["size"] ** 2
        assert r["attn_bytes"] == 4 * keys * keys  # one image, one head, float32
        assert r["gca_s"] > 0 and r["model_s"] > 0
    with pytest.raises(ValueError, match="divisible"):
        timing.attention_cost([10], downs=(4,), repeats=1)


def test_cost_figure_fits_slope_two_to_quadratic_memory():
    records = [{"size": s, "down": d, "pixels": s * s, "keys": (s // d) ** 2, "gca_s": 1e-6 * s**4 / d**4,
                "model_s": 1e-4 * s**2, "attn_bytes": 4 * (s * s // d // d) ** 2}
               for s in (8, 16, 32) for d in (1, 2)]
    fig = plots.plot_attention_cost(records)
    ax_time, ax_mem = fig.axes
    mem_labels = [line.get_label() for line in ax_mem.lines if "slope" in line.get_label()]
    assert len(mem_labels) == 2 and all(label.endswith("slope 2.00") for label in mem_labels)
    time_labels = [line.get_label() for line in ax_time.lines if "slope" in line.get_label()]
    assert sum(label.endswith("slope 2.00") for label in time_labels) == 2  # GCA at both resolutions
    assert sum(label.endswith("slope 1.00") for label in time_labels) == 2  # the linear model time


def test_best_time_returns_the_shortest_run():
    calls = []
    t = timing.best_time(lambda: calls.append(1), repeats=4, warmup=2)
    assert len(calls) == 6 and t >= 0


def test_widget_wires_the_controls_to_the_plotting_function(monkeypatch):
    pytest.importorskip("ipywidgets")
    from ifanp.widgets import attention as widget

    calls = []
    monkeypatch.setattr(plots, "plot_attention_explorer", lambda *a, **kw: calls.append((a, kw)) or Figure())
    images = torch.rand(3, 1, 28, 28)
    ui = widget.attention_explorer("model", images, [10, 20, 30], row=5, col=6, ratio=0.2)
    controls = {c.description: c for c in ui.children[:-1]}
    assert set(controls) == {"row", "column", "context", "image"}
    assert controls["row"].max == 27 and controls["image"].max == 2
    controls["image"].value = 2
    controls["column"].value = 11
    args, kw = calls[-1]
    assert args[0] == "model" and args[2] == 30 and torch.equal(args[1], images[2])
    assert kw == {"row": 5, "col": 11, "ratio": 0.2}
