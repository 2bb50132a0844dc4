"""The GP chapter's figures (ifanp.plotting.gp) and its widget (ifanp.widgets.gp).

The bands are the point: they must be drawn with standard deviations (2 sqrt(var)), never variances,
and the band of y must add the noise variance before the square root. The figures are built without
pyplot, so no backend is needed.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from ifanp import analysis, gp
from ifanp.plotting import gp as gplot


def _band(ax, label):
    found = [c for c in ax.collections if c.get_label() == label]
    assert len(found) == 1, f"expected one band labelled {label!r}, found {len(found)}"
    return found[0]


def _half_widths(band, x) -> np.ndarray:
    """Half the vertical extent of a fill_between polygon at each of the x positions."""
    v = band.get_paths()[0].vertices
    out = []
    for xi in x:
        ys = v[np.isclose(v[:, 0], xi, rtol=0, atol=1e-12), 1]
        out.append((ys.max() - ys.min()) / 2)
    return np.array(out)


def _line(ax, label):
    found = [ln for ln in ax.lines if ln.get_label() == label]
    assert len(found) == 1, f"expected one line labelled {label!r}"
    return found[0]


@pytest.fixture
def posterior_inputs():
    rng = np.random.default_rng(0)
    x = np.linspace(-2, 2, 25)
    mean = np.sin(x)
    var_f = rng.uniform(0.01, 0.6, size=x.shape)  # below 1, where var and std differ most
    return x, mean, var_f


def test_bands_are_two_standard_deviations_of_f_and_of_y(posterior_inputs):
    x, mean, var_f = posterior_inputs
    noise = 0.09
    fig = gplot.plot_posterior(x, mean, var_f, noise=noise)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    f_band, y_band = _band(ax, gplot.BAND_F_LABEL), _band(ax, gplot.BAND_Y_LABEL)
    np.testing.assert_allclose(_half_widths(f_band, x), 2 * np.sqrt(var_f), rtol=1e-10)
    np.testing.assert_allclose(_half_widths(y_band, x), 2 * np.sqrt(var_f + noise), rtol=1e-10)
    # both bands are centred on the mean line
    np.testing.assert_allclose(_line(ax, "posterior mean").get_ydata(), mean)
    v = f_band.get_paths()[0].vertices
    for xi, mi in zip(x, mean):
        ys = v[np.isclose(v[:, 0], xi, rtol=0, atol=1e-12), 1]
        assert np.isclose((ys.max() + ys.min()) / 2, mi)


def test_no_band_of_y_without_noise_and_tensors_are_accepted(posterior_inputs):
    x, mean, var_f = posterior_inputs
    fig = gplot.plot_posterior(torch.tensor(x)[:, None], torch.tensor(mean), torch.tensor(var_f, requires_grad=True))
    labels = [c.get_label() for c in fig.axes[0].collections]
    assert gplot.BAND_F_LABEL in labels and gplot.BAND_Y_LABEL not in labels


def test_observations_truth_samples_and_highlight_are_drawn(posterior_inputs):
    x, mean, var_f = posterior_inputs
    xt, yt = np.array([-1.0, 0.0, 1.0]), np.array([0.5, -0.5, 0.2])
    fig = gplot.plot_posterior(x, mean, var_f, noise=0.01, x_train=xt, y_train=yt, f_true=np.cos,
                               samples=np.zeros((4, len(x))), highlight=1)
    ax = fig.axes[0]
    obs = next(c for c in ax.collections if c.get_label() == "observations $y$")
    np.testing.assert_allclose(obs.get_offsets(), np.c_[xt, yt])
    sel = next(c for c in ax.collections if c.get_label() == "selected point")
    np.testing.assert_allclose(sel.get_offsets(), [[0.0, -0.5]])
    np.testing.assert_allclose(_line(ax, "true $f$").get_ydata(), np.cos(x))
    assert sum(ln.get_color() == "C2" for ln in ax.lines) == 4


def test_bad_inputs_are_refused(posterior_inputs):
    x, mean, var_f = posterior_inputs
    with pytest.raises(ValueError, match="shape"):
        gplot.plot_posterior(x, mean[:-1], var_f)
    with pytest.raises(ValueError, match="variance"):
        gplot.plot_posterior(x, mean, var_f, noise=-1.0)
    fig = Figure()
    with pytest.raises(ValueError, match="standard deviation"):
        gplot.draw_band(fig.subplots(), x, mean, -var_f)


def test_plot_gp_fit_draws_the_exact_posterior_of_the_gp_module():
    xt = np.array([-1.5, -0.3, 0.4, 1.8])
    yt = np.array([0.2, -0.7, 0.1, 1.1])
    ell, sn = 0.8, 0.3
    fig = gplot.plot_gp_fit(xt, yt, kernel="matern32", lengthscale=ell, noise_std=sn, x_range=(-3, 3), n_grid=50)
    ax = fig.axes[0]
    x = np.linspace(-3, 3, 50)
    model = gp.GPRegression(gp.Matern(nu=1.5, lengthscale=ell), noise=sn**2)
    with torch.no_grad():
        args = (torch.tensor(xt)[:, None], torch.tensor(yt), torch.tensor(x)[:, None])
        mean, std_f = model.predict(*args)
        _, std_y = model.predict(*args, include_noise=True)
        lml = float(model.log_marginal_likelihood(args[0], args[1]))
    np.testing.assert_allclose(_line(ax, "posterior mean").get_ydata(), mean.numpy(), rtol=1e-10)
    np.testing.assert_allclose(_half_widths(_band(ax, gplot.BAND_F_LABEL), x), 2 * std_f.numpy(), rtol=1e-8)
    np.testing.assert_allclose(_half_widths(_band(ax, gplot.BAND_Y_LABEL), x), 2 * std_y.numpy(), rtol=1e-8)
    assert f"{lml / 4:.3f}" in ax.get_title()


def test_plot_gp_fit_without_observations_draws_the_prior():
    fig = gplot.plot_gp_fit([], [], kernel="rbf", variance=2.0, noise_std=0.5, n_grid=20)
    ax = fig.axes[0]
    x = np.linspace(-3, 3, 20)
    np.testing.assert_allclose(_line(ax, "posterior mean").get_ydata(), 0.0)
    np.testing.assert_allclose(_half_widths(_band(ax, gplot.BAND_F_LABEL), x), 2 * np.sqrt(2.0))
    np.testing.assert_allclose(_half_widths(_band(ax, gplot.BAND_Y_LABEL), x), 2 * np.sqrt(2.0 + 0.25))
    assert "prior" in ax.get_title()


def test_plot_gp_fit_periodic_kernel_uses_the_period():
    xt, yt = np.array([0.0]), np.array([1.0])
    fig = gplot.plot_gp_fit(xt, yt, kernel="periodic", lengthscale=1.0, period=2.0, noise_std=0.01,
                            x_range=(-2, 2), n_grid=5)
    mean = _line(fig.axes[0], "posterior mean").get_ydata()  # x = -2, -1, 0, 1, 2
    assert mean[0] == pytest.approx(mean[2], rel=1e-6) and mean[4] == pytest.approx(mean[2], rel=1e-6)
    assert mean[1] < 0.5 * mean[2]


def test_prior_samples_one_panel_per_kernel():
    x = torch.linspace(-3, 3, 40, dtype=torch.float64)[:, None]
    samples = {name: gp.GPRegression(gp.kernel_by_name(name)).sample_prior(x, n_samples=3) for name in gp.KERNEL_NAMES}
    fig = gplot.plot_prior_samples(x, samples, ncols=3)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == len(gp.KERNEL_NAMES)
    for ax, name in zip(visible, gp.KERNEL_NAMES):
        assert ax.get_title() == gplot.KERNEL_LABELS[name]
        data = [ln for ln in ax.lines if len(ln.get_xdata()) == 40]
        assert len(data) == 3
        np.testing.assert_allclose(data[0].get_ydata(), samples[name][0].detach().numpy())


def test_kernel_functions_plot():
    r = np.linspace(0, 2, 30)
    fig = gplot.plot_kernel_functions(r, {"rbf": np.exp(-0.5 * r**2), "matern12": np.exp(-r)})
    assert [ln.get_label() for ln in fig.axes[0].lines] == [gplot.KERNEL_LABELS["rbf"], gplot.KERNEL_LABELS["matern12"]]


def test_lml_landscape_axes_and_marks():
    ls, ns = np.geomspace(0.1, 3, 7), np.geomspace(0.01, 1, 5)
    z = -((np.log(ls)[None, :] - 0.1) ** 2 + (np.log(ns)[:, None] + 2) ** 2)
    fig = gplot.plot_lml_landscape(ls, ns, z, path=[(2.0, 0.5), (1.0, 0.2)], truth=(1.1, 0.13))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    best = _line(ax, "grid maximum")
    i, j = np.unravel_index(z.argmax(), z.shape)
    assert (best.get_xdata()[0], best.get_ydata()[0]) == (ls[j], ns[i])
    np.testing.assert_allclose(_line(ax, "optimiser path").get_xdata(), [2.0, 1.0])
    with pytest.raises(ValueError, match="shape"):
        gplot.plot_lml_landscape(ls, ns, z.T)


def test_fit_history_plot():
    fig = gplot.plot_fit_history([-10.0, -5.0, -4.0])
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [-10, -5, -4])


def test_loglog_slope_recovers_a_power_law():
    n = np.array([100, 200, 400, 800])
    slope, intercept = analysis.loglog_slope(n, 3e-9 * n**2.7)
    assert slope == pytest.approx(2.7) and np.exp(intercept) == pytest.approx(3e-9)
    with pytest.raises(ValueError):
        analysis.loglog_slope([1, 2], [1.0, -1.0])


def test_plot_scaling_reports_the_fitted_slope():
    n = np.array([100, 200, 400, 800])
    fig = gplot.plot_scaling(n, {"cubic": 1e-9 * n**3.0, "square": 1e-7 * n**2.0}, fit_from=1)
    labels = [ln.get_label() for ln in fig.axes[0].lines]
    assert "cubic: slope 3.00" in labels and "square: slope 2.00" in labels
    fitted = _line(fig.axes[0], "cubic: slope 3.00")
    np.testing.assert_allclose(fitted.get_xdata(), n[1:])


# ---- the widget: wiring only ----------------------------------------------------------------------


def test_widget_moves_adds_and_removes_points_and_redraws():
    from ifanp.widgets.gp import GPPosteriorExplorer

    w = GPPosteriorExplorer(np.array([-1.0, 0.0, 1.0]), np.array([0.5, -0.2, 0.3]), lengthscale=0.7, noise_std=0.1)
    def obs():
        return next(c for c in w.figure.axes[0].collections if c.get_label() == "observations $y$").get_offsets()

    np.testing.assert_allclose(obs(), [[-1, 0.5], [0, -0.2], [1, 0.3]])

    w.selected.value = 1
    w.y.value = 1.5                      # move the selected point
    assert w.points[1] == [0.0, 1.5]
    np.testing.assert_allclose(obs()[1], [0.0, 1.5])

    w.add_point()                        # in the widest gap of [-3, 3]: between -3 and -1
    assert w.points[-1] == [-2.0, 0.0] and w.selected.value == 3
    assert len(obs()) == 4

    w.remove_point()
    assert len(w.points) == 3 and len(obs()) == 3

    w.kernel.value = "matern12"
    assert w.figure.axes[0].get_title().startswith("Matérn 1/2")
    w.lengthscale.value = 0.2
    w.noise_std.value = 0.05
    assert "0.2" in w.figure.axes[0].get_title() and "0.05" in w.figure.axes[0].get_title()

    for _ in range(5):                   # removing past the last point is harmless
        w.remove_point()
    assert w.points == [] and w.selected.value is None and w.x.disabled
    assert "prior" in w.figure.axes[0].get_title()


def test_widget_redraw_uses_the_plotting_function(monkeypatch):
    from ifanp.widgets import gp as wgp

    calls = []
    monkeypatch.setattr(wgp, "plot_gp_fit", lambda *a, **k: calls.append(k) or Figure())
    w = wgp.GPPosteriorExplorer([0.0], [1.0], kernel="rbf", lengthscale=0.5, noise_std=0.2)
    w.noise_std.value = 0.3
    assert calls[-1]["noise_std"] == pytest.approx(0.3) and calls[-1]["lengthscale"] == pytest.approx(0.5)
    assert calls[-1]["kernel"] == "rbf"
