"""Figures of the Gaussian-process chapter: prior samples, posterior bands, the marginal-likelihood
landscape, and the cubic cost.

Every function takes arrays or tensors and returns a :class:`matplotlib.figure.Figure` built without
pyplot (so a notebook shows it exactly once, when it is the value of a cell, and nothing leaks into
pyplot's global state). Pass ``ax=`` to draw into an existing axes instead; the figure of that axes
is returned. :func:`plot_gp_fit` is also the callback of :mod:`ifanp.widgets.gp`.

Bands are drawn with standard deviations, never variances: the band of ``f`` is
``mean +- 2 sqrt(var_f)`` and the band of a new observation ``y`` is
``mean +- 2 sqrt(var_f + sigma_n^2)`` (tests/test_plotting_gp.py measures the half-widths).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Callable

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

from .. import gp as _gp
from ..analysis import loglog_slope
from ..analysis1d import _flat_x, gp_fit

__all__ = [
    "BAND_F_LABEL",
    "BAND_Y_LABEL",
    "KERNEL_LABELS",
    "draw_band",
    "plot_fit_history",
    "plot_gp_fit",
    "plot_kernel_functions",
    "plot_lml_landscape",
    "plot_posterior",
    "plot_prior_samples",
    "plot_scaling",
    "to_numpy",
]

KERNEL_LABELS = {
    "rbf": "RBF (squared exponential)",
    "matern12": "Matérn 1/2 (exponential)",
    "matern32": "Matérn 3/2",
    "matern52": "Matérn 5/2",
    "periodic": "Periodic",
}
BAND_F_LABEL = r"mean $\pm 2\sigma$ of $f$ (the function)"
BAND_Y_LABEL = r"mean $\pm 2\sigma$ of $y$ (a new noisy observation)"

_COLOR = "C0"


def to_numpy(x) -> np.ndarray:
    """A float numpy copy of a tensor (detached, on the CPU) or of anything array-like."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=float)


def _axes(ax: Axes | None, figsize=(7.0, 3.6)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots()


def draw_band(ax: Axes, x, mean, std, k: float = 2.0, **kwargs) -> PolyCollection:
    """Fill ``mean - k std`` to ``mean + k std``; ``std`` is a standard deviation (not a variance)."""
    x, mean, std = _flat_x(x), to_numpy(mean), to_numpy(std)
    if np.any(std < 0):
        raise ValueError("draw_band: std must be >= 0 (pass a standard deviation, not a variance).")
    return ax.fill_between(x, mean - k * std, mean + k * std, linewidth=0, **kwargs)


# ---- priors -----------------------------------------------------------------------------------


def plot_prior_samples(
    x, samples: Mapping[str, object], *, ncols: int = 3, sharey: bool = True, titles: Mapping[str, str] | None = None
) -> Figure:
    """One panel per kernel, each with the sampled functions ``samples[name]`` of shape (S, N) at ``x``.

    The dotted line is the prior mean (zero). Titles default to :data:`KERNEL_LABELS`.
    """
    if not samples:
        raise ValueError("plot_prior_samples needs at least one kernel's samples.")
    x = _flat_x(x)
    n = len(samples)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(2.8 * ncols, 2.2 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, sharey=sharey)).ravel()
    for ax, (name, f) in zip(axes, samples.items()):
        f = to_numpy(f)
        if f.ndim == 1:
            f = f[None]
        for i, row in enumerate(f):
            ax.plot(x, row, lw=1.2, color=f"C{i % 10}")
        ax.axhline(0.0, color="0.6", lw=0.8, ls=":")
        ax.set_title((titles or KERNEL_LABELS).get(name, name), fontsize=10)
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[(nrows - 1) * ncols :]:
        ax.set_xlabel("$x$")
    for ax in axes[::ncols]:
        ax.set_ylabel("$f(x)$")
    return fig


def plot_kernel_functions(r, values: Mapping[str, object], *, ax: Axes | None = None) -> Figure:
    """The covariance ``k(0, r)`` as a function of the distance ``r``, one line per kernel."""
    fig, ax = _axes(ax, figsize=(6.8, 3.2))
    r = _flat_x(r)
    for name, v in values.items():
        ax.plot(r, to_numpy(v), label=KERNEL_LABELS.get(name, name))
    ax.set_xlabel("distance $r = |x - x'|$")
    ax.set_ylabel("$k(x, x')$")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


# ---- posteriors --------------------------------------------------------------------------------


def plot_posterior(
    x_test,
    mean,
    var_f,
    *,
    noise: float = 0.0,
    x_train=None,
    y_train=None,
    f_true: Callable | object | None = None,
    samples=None,
    highlight: int | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    legend: bool = True,
) -> Figure:
    """The GP posterior at ``x_test``: mean, +-2 sigma band of f and, if ``noise > 0``, of y.

    ``var_f`` is the posterior *variance* of f (the diagonal of Sigma_*); the bands use
    ``2 sqrt(var_f)`` (f) and ``2 sqrt(var_f + noise)`` (y), with ``noise`` the noise variance
    sigma_n^2. ``f_true`` is a callable or the values of the true function at ``x_test`` (dashed);
    ``samples`` (S, M) are posterior draws of f (thin lines); ``highlight`` circles one observation.
    """
    fig, ax = _axes(ax)
    x = _flat_x(x_test)
    mean = to_numpy(mean)
    var_f = to_numpy(var_f)
    if mean.shape != x.shape or var_f.shape != x.shape:
        raise ValueError(f"mean {mean.shape} and var_f {var_f.shape} must have the shape of x_test {x.shape}.")
    if noise < 0:
        raise ValueError(f"noise is a variance >= 0, got {noise!r}.")
    var_t = torch.as_tensor(var_f)
    std_f = to_numpy(_gp.predictive_std(var_t, 0.0))
    if noise > 0:
        std_y = to_numpy(_gp.predictive_std(var_t, noise))
        draw_band(ax, x, mean, std_y, color=_COLOR, alpha=0.15, label=BAND_Y_LABEL)
    draw_band(ax, x, mean, std_f, color=_COLOR, alpha=0.35, label=BAND_F_LABEL)
    if samples is not None:
        s = to_numpy(samples)
        for i, row in enumerate(np.atleast_2d(s)):
            ax.plot(x, row, color="C2", lw=0.8, alpha=0.8, label="posterior samples of $f$" if i == 0 else None)
    ax.plot(x, mean, color=_COLOR, lw=2.0, label="posterior mean")
    if f_true is not None:
        values = f_true(x) if callable(f_true) else to_numpy(f_true)
        ax.plot(x, to_numpy(values), color="k", lw=1.2, ls="--", label="true $f$")
    if x_train is not None and y_train is not None:
        xt, yt = _flat_x(x_train), to_numpy(y_train)
        ax.scatter(xt, yt, s=22, color="k", zorder=5, label="observations $y$")
        if highlight is not None and 0 <= highlight < len(xt):
            ax.scatter(xt[highlight], yt[highlight], s=140, facecolors="none", edgecolors="C3", lw=2,
                       zorder=6, label="selected point")
    ax.set_xlim(x.min(), x.max())
    ax.set_xlabel("$x$")
    ax.set_ylabel("$f(x)$, $y$")
    if title:
        ax.set_title(title, fontsize=10)
    if legend:
        ax.legend(fontsize=8, loc="upper left", framealpha=0.85)
    return fig


def plot_gp_fit(
    x_train,
    y_train,
    *,
    kernel: str = "rbf",
    lengthscale: float = 1.0,
    noise_std: float = 0.1,
    variance: float = 1.0,
    period: float = 1.0,
    x_range: tuple[float, float] = (-3.0, 3.0),
    n_grid: int = 300,
    f_true: Callable | None = None,
    highlight: int | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Fit the exact GP with the given kernel and hyperparameters, and draw its posterior.

    The callback of the chapter's widget: the title reports the kernel, the hyperparameters and the
    log marginal likelihood of the observations under them (per point, so that sets of different
    sizes compare). No observations: the prior is drawn.
    """
    x = np.linspace(*x_range, n_grid)
    mean, var_f, lml = gp_fit(
        x_train, y_train, x, kernel=kernel, lengthscale=lengthscale, noise_std=noise_std,
        variance=variance, period=period,
    )
    n = 0 if x_train is None else len(_flat_x(x_train))
    name = KERNEL_LABELS.get(kernel, kernel).split(" (")[0]
    title = f"{name}, $\\ell$ = {lengthscale:.3g}, $\\sigma_n$ = {noise_std:.3g}"
    title += f"; n = {n}, log p(y)/n = {lml / n:.3f}" if lml is not None else "; no observations: the prior"
    return plot_posterior(
        x, mean, var_f, noise=noise_std**2, x_train=x_train if n else None, y_train=y_train if n else None,
        f_true=f_true, highlight=highlight, ax=ax, title=title,
    )


# ---- hyperparameters ---------------------------------------------------------------------------


def plot_lml_landscape(
    lengthscales,
    noise_stds,
    lml,
    *,
    path: Sequence[tuple[float, float]] | None = None,
    truth: tuple[float, float] | None = None,
    ax: Axes | None = None,
    span: float = 40.0,
    levels: int = 20,
) -> Figure:
    """Contours of the log marginal likelihood over (lengthscale, noise std), both on log axes.

    ``lml`` has shape ``(len(noise_stds), len(lengthscales))``. ``path`` is the optimiser's
    trajectory as (lengthscale, noise_std) pairs (white line from a white square to a red dot);
    ``truth`` the values that generated the data (orange star); the grid maximum is a white cross.
    The colours cover the ``span`` nats below the maximum (lower values share the darkest colour), the
    region where the plausible hyperparameters lie.
    """
    fig, ax = _axes(ax, figsize=(5.2, 4.0))
    ls, ns, z = to_numpy(lengthscales), to_numpy(noise_stds), to_numpy(lml)
    if z.shape != (len(ns), len(ls)):
        raise ValueError(
            f"lml must have shape (len(noise_stds), len(lengthscales)) = {(len(ns), len(ls))}, got {z.shape}."
        )
    zmax = float(np.nanmax(z))
    bounds = np.linspace(zmax - span, zmax, levels + 1)
    cs = ax.contourf(ls, ns, np.clip(z, zmax - span, None), levels=bounds, cmap="viridis")
    ax.contour(ls, ns, z, levels=bounds[::4], colors="k", linewidths=0.4, alpha=0.5)
    fig.colorbar(cs, ax=ax, label=r"$\log p(\mathbf{y} \mid X, \theta)$")
    i, j = np.unravel_index(np.nanargmax(z), z.shape)
    if path is not None and len(path):
        p = to_numpy(path)
        ax.plot(p[:, 0], p[:, 1], "-", color="w", lw=1.5, label="optimiser path")
        ax.plot(p[0, 0], p[0, 1], "s", color="w", mec="k", ms=7)
        ax.plot(p[-1, 0], p[-1, 1], "o", color="C3", mec="w", ms=9, label="fitted")
    if truth is not None:
        ax.plot(*truth, "*", color="C1", ms=13, mec="k", label="true values")
    # drawn last and thin, so that it stays visible on top of a fitted dot at the same place
    ax.plot(ls[j], ns[i], "x", color="k", ms=7, mew=1.5, zorder=5, label="grid maximum")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"lengthscale $\ell$")
    ax.set_ylabel(r"noise std $\sigma_n$")
    ax.legend(fontsize=8, loc="lower left", framealpha=0.85)
    return fig


def plot_fit_history(history, *, ax: Axes | None = None, label: str | None = None) -> Figure:
    """The log marginal likelihood after every optimiser step (``GPRegression.fit``'s history)."""
    fig, ax = _axes(ax, figsize=(4.5, 3.2))
    h = to_numpy(history)
    ax.plot(np.arange(len(h)), h, color=_COLOR, label=label)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(r"$\log p(\mathbf{y} \mid X, \theta)$")
    if label:
        ax.legend(fontsize=8)
    return fig


# ---- cost --------------------------------------------------------------------------------------


def plot_scaling(
    n, times: Mapping[str, object], *, fit_from: int = 0, reference: float | None = 3.0, ax: Axes | None = None
) -> Figure:
    """Wall-clock time against problem size on log-log axes, with a fitted line per series.

    ``times[label]`` are seconds for each size in ``n``; the line is fitted to the sizes from index
    ``fit_from`` on (the small sizes are dominated by fixed overheads) and its slope is in the
    legend. ``reference`` draws a grey line of that slope through the last point of the first series.
    """
    fig, ax = _axes(ax, figsize=(5.5, 3.8))
    n = to_numpy(n)
    for i, (label, t) in enumerate(times.items()):
        t = to_numpy(t)
        slope, intercept = loglog_slope(n[fit_from:], t[fit_from:])
        color = f"C{i}"
        ax.plot(n, t, "o", color=color)
        nn = n[fit_from:]
        ax.plot(nn, np.exp(intercept) * nn**slope, "-", color=color, label=f"{label}: slope {slope:.2f}")
        if i == 0 and reference is not None:
            ax.plot(n, t[-1] * (n / n[-1]) ** reference, ":", color="0.5", label=f"$\\propto n^{{{reference:g}}}$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(FixedLocator(n))
    ax.xaxis.set_major_formatter(FixedFormatter([f"{v:g}" for v in n]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("number of observations $n$")
    ax.set_ylabel("seconds")
    ax.legend(fontsize=8)
    return fig
