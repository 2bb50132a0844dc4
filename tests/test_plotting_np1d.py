"""The figures of the neural-process chapter (ifanp.plotting.np1d) and its widget (ifanp.widgets.np1d)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from ifanp import analysis1d, reporting
from ifanp.cli_train1d import make_sampler
from ifanp.models.setnp import build_1d
from ifanp.plotting import np1d

SMALL = {"hidden": 32, "r_dim": 32, "z_dim": 16, "heads": 4}


def small(name: str):
    torch.manual_seed(0)
    return build_1d(name, **SMALL).eval()


@pytest.fixture(scope="module")
def models():
    return {name: small(name) for name in ("cnp", "np", "anp")}


def _band_edges(ax) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of the first filled band of ``ax`` (a fill_between polygon), in the order of x."""
    poly = next(c for c in ax.collections if isinstance(c, PolyCollection))
    verts = poly.get_paths()[0].vertices
    xs = np.unique(verts[:, 0])
    lower = np.array([verts[verts[:, 0] == x, 1].min() for x in xs])
    upper = np.array([verts[verts[:, 0] == x, 1].max() for x in xs])
    return lower, upper


def test_grid_task_is_reproducible_and_its_context_lies_on_the_grid():
    a, b = analysis1d.grid_task("matern52", 7, seed=3, num_points=60), analysis1d.grid_task("matern52", 7, seed=3, num_points=60)
    assert all(torch.equal(u, v) for u, v in zip(a[:5], b[:5]))
    assert a.x.shape == (60, 1) and a.f.shape == a.y.shape == (60,) and a.xc.shape == a.yc.shape == (7, 1)
    for xc, yc in zip(a.xc[:, 0], a.yc[:, 0]):
        i = int((a.x[:, 0] == xc).nonzero())
        assert a.y[i] == yc
    assert (a.y - a.f).abs().max() < 0.05  # noise std 0.01
    c = analysis1d.grid_task("matern52", 7, seed=4, num_points=60)
    assert not torch.equal(a.f, c.f)
    with pytest.raises(ValueError, match="num_context"):
        analysis1d.grid_task("rbf", 61, num_points=60)


def test_gp_predictive_is_the_std_of_y_not_of_f_nor_the_variance():
    sampler = make_sampler("rbf")
    xc, yc, xt = torch.tensor([[0.3]]), torch.tensor([[1.2]]), torch.tensor([[0.3], [1.0], [-1.5]])
    mean, std = analysis1d.gp_predictive(sampler, xc, yc, xt)
    k = sampler.kernel
    n = sampler.noise
    kxc = k(xt.double(), xc.double())[:, 0]
    var_f = 1.0 - kxc**2 / (1.0 + n)  # one context point, k(x, x) = 1
    torch.testing.assert_close(mean.double(), kxc * 1.2 / (1.0 + n), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(std.double(), (var_f + n).sqrt(), rtol=1e-5, atol=1e-6)
    # At the context point the std of y is ~ sqrt(2 noise), far from sqrt(noise) of f alone ... and from the variance.
    assert std[0] == pytest.approx(math.sqrt(n + n**2 / (1 + n) + n * 1 / (1 + n)), rel=1e-3)
    # An empty context gives the prior: mean 0, std sqrt(k(x, x) + noise).
    mean0, std0 = analysis1d.gp_predictive(sampler, xc[:0], yc[:0], xt)
    assert torch.equal(mean0, torch.zeros(3)) and torch.allclose(std0, torch.full((3,), math.sqrt(1 + n)))


def test_predictive_of_a_latent_model_is_the_moment_matched_mixture(models):
    model = models["np"]
    task = analysis1d.grid_task("rbf", 5, seed=1, num_points=30)
    torch.manual_seed(7)
    mean, std = analysis1d.predictive(model, task.xc, task.yc, task.x, samples=6)
    torch.manual_seed(7)
    with torch.no_grad():
        mus, sigmas = model.predict(task.xc[None], task.yc[None], task.x[None], samples=6)
    mus, sigmas = mus[:, 0, :, 0], sigmas[:, 0, :, 0]
    expected_var = (sigmas**2).mean(0) + mus.var(0, unbiased=False)
    torch.testing.assert_close(mean, mus.mean(0))
    torch.testing.assert_close(std, expected_var.sqrt())
    assert (std > sigmas.mean(0) - 1e-6).all()  # the spread of the means adds to the decoder's std
    # The CNP's predictive is its decoder's Gaussian.
    cnp = models["cnp"]
    with torch.no_grad():
        m, s = cnp.predict(task.xc[None], task.yc[None], task.x[None])
    m2, s2 = analysis1d.predictive(cnp, task.xc, task.yc, task.x)
    assert torch.equal(m2, m[0, :, 0]) and torch.equal(s2, s[0, :, 0])


def test_models_vs_gp_draws_mean_plus_minus_two_std(models):
    sampler = make_sampler("rbf")
    task = analysis1d.grid_task("rbf", 8, seed=2, num_points=40)
    fig = np1d.plot_models_vs_gp(models, task, sampler, samples=4, seed=5)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    for ax, (name, model) in zip(fig.axes, models.items()):
        torch.manual_seed(5)
        mean, std = analysis1d.predictive(model, task.xc, task.yc, task.x, samples=4)
        lower, upper = _band_edges(ax)
        np.testing.assert_allclose(lower, (mean - 2 * std).numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(upper, (mean + 2 * std).numpy(), rtol=1e-5, atol=1e-5)
        # The GP's band: dashed edges at its mean +- 2 std of y.
        gp_mean, gp_std = analysis1d.gp_predictive(sampler, task.xc, task.yc, task.x)
        dashed = [line.get_ydata() for line in ax.lines if line.get_linestyle() == "--"]
        np.testing.assert_allclose(dashed[0], (gp_mean - 2 * gp_std).numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dashed[1], (gp_mean + 2 * gp_std).numpy(), rtol=1e-5, atol=1e-5)
        assert name.upper() in ax.get_title()


def test_band_is_two_std_wide_not_one_or_the_variance():
    fig = Figure()
    ax = fig.subplots()
    x, mean, std = np.linspace(0, 1, 5), np.zeros(5), np.full(5, 0.5)
    lower, upper = np1d.band(ax, x, mean, std, "red")
    np.testing.assert_allclose(upper - lower, 4 * std)  # +-2 std; the variance would give 4 * 0.25
    lo, up = _band_edges(ax)
    np.testing.assert_allclose(lo, -1.0)
    np.testing.assert_allclose(up, 1.0)


def test_context_fit_gp_passes_through_its_context(models):
    fit = analysis1d.context_fit({"cnp": models["cnp"]}, make_sampler("rbf"), num_contexts=(3, 10), num_tasks=4,
                           num_points=30, samples=2)
    assert fit["num_context"] == [3, 10] and set(fit) == {"num_context", "cnp", "gp"}
    # Noise std 0.01: the exact GP's mean is within about the noise of its context observations.
    assert max(fit["gp"]["context"]) < 0.02
    assert min(fit["cnp"]["context"]) > 5 * max(fit["gp"]["context"])  # an untrained CNP does not
    fig = np1d.plot_context_fit(fit)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), fit["cnp"]["context"])


def test_split_rmse_separates_context_from_other_targets():
    xt = torch.tensor([[[0.0], [1.0], [2.0]]])
    xc = torch.tensor([[[1.0]]])
    yt = torch.tensor([[[0.0], [0.0], [0.0]]])
    mean = torch.tensor([[3.0, 2.0, 4.0]])
    assert analysis1d.split_rmse(mean, xc, xt, yt) == (4.0, 25.0, 1, 2)


def test_function_samples_tasks_history_figures(models):
    sampler = make_sampler("periodic")
    task = analysis1d.grid_task("periodic", 6, seed=0, num_points=30)
    fig = np1d.plot_function_samples({"NP": models["np"], "ANP": models["anp"]}, task, sampler, num_samples=3)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert len([line for line in fig.axes[1].lines if line.get_color() == "tab:red"]) == 3
    assert len([line for line in fig.axes[2].lines if line.get_color() == "black"]) == 3
    batch = sampler.sample(5, generator=torch.Generator().manual_seed(0))
    assert len(np1d.plot_tasks(batch, n=3).axes) == 3
    history = [{"loss": float(10 - i)} for i in range(20)]
    fig = np1d.plot_training_history({"cnp": history}, window=5)
    assert len(fig.axes[0].lines[0].get_ydata()) == 16


def test_explorer_uses_the_matching_kernel_or_says_it_falls_back(models):
    table = {("cnp", "rbf"): models["cnp"], ("anp", "rbf"): models["anp"], ("anp", "periodic"): models["anp"]}
    fig = np1d.plot_np_explorer(table, "cnp", "matern52", num_context=4, num_points=30, samples=2)
    assert "out of distribution" in fig.axes[0].get_title()
    fig = np1d.plot_np_explorer(table, "anp", "periodic", num_context=0, num_points=30, samples=2)
    assert "out of distribution" not in fig.axes[0].get_title() and "0 context" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="no 'np' model"):
        np1d.plot_np_explorer(table, "np", "rbf")


def test_widget_wires_the_three_controls_to_the_plotting_function(models, monkeypatch):
    pytest.importorskip("ipywidgets")
    from ifanp.widgets import np1d as widget

    calls = []
    monkeypatch.setattr(np1d, "plot_np_explorer", lambda models, **kw: calls.append(kw) or Figure())
    table = {("cnp", "rbf"): models["cnp"], ("anp", "rbf"): models["anp"]}
    ui = widget.np_explorer(table, num_context=5, num_points=30)
    controls = {c.description: c for c in ui.children[:-1]}
    assert set(controls) == {"context", "kernel", "model"}
    assert [v for _, v in controls["model"].options] == ["cnp", "anp"]
    controls["context"].value = 12
    assert calls[-1]["num_context"] == 12 and calls[-1]["kernel"] == "rbf" and calls[-1]["model"] == "anp"


def test_table_html_escapes_and_keeps_the_order():
    html = reporting.table_html(["model", "log-lik."], [["GP <exact>", "3.100"], ["CNP", "0.600"]], caption="a & b")
    assert html.startswith("<table><caption>a &amp; b</caption><thead><tr><th>model</th>")
    assert "<td>GP &lt;exact&gt;</td><td>3.100</td>" in html
    assert html.index("GP &lt;exact&gt;") < html.index("CNP") and html.count("<tr>") == 3
