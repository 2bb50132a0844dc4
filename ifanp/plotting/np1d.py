"""Figures of the neural-process chapter: CNP, NP and ANP on 1-D functions, beside the exact GP.

Every band drawn here is **mean +- 2 standard deviations of y**, a new noisy observation at x, for the
neural processes and for the GP alike: the GP's std is sqrt(diag Sigma_* + sigma_n^2) (posterior
variance of f plus the noise variance), a neural process's is the std of its predictive distribution
of y. For latent models (NP, ANP) the predictive is a mixture over z ~ q(z | context);
:func:`ifanp.analysis1d.predictive` (where the numbers of these figures are computed) returns its mean and
std by moment matching over ``samples`` draws of z:

    mean(x) = (1/S) sum_s mu_s(x),     var(x) = (1/S) sum_s sigma_s(x)^2 + (1/S) sum_s (mu_s(x) - mean(x))^2

Every plotting function returns a :class:`matplotlib.figure.Figure` built without ``pyplot`` (nothing
global is opened, so a notebook cell shows it once and tests need no ``plt.close``). The widget of
:mod:`ifanp.widgets.np1d` only wires controls to :func:`plot_np_explorer`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from ..analysis1d import GridTask, gp_predictive, grid_task, predictive
from ..data.functions import GPFunctionSampler
from ..gp import GPRegression

__all__ = [
    "COLORS",
    "band",
    "plot_context_fit",
    "plot_function_samples",
    "plot_models_vs_gp",
    "plot_np_explorer",
    "plot_tasks",
    "plot_training_history",
]

#: One colour per model, the same in every figure of the chapter; the GP is black/grey.
COLORS = {"cnp": "tab:blue", "np": "tab:green", "anp": "tab:red", "gp": "black"}
LABELS = {"cnp": "CNP", "np": "NP", "anp": "ANP", "gp": "GP"}


# ---- figures -------------------------------------------------------------------------------------------


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().reshape(-1) if isinstance(t, Tensor) else np.asarray(t).reshape(-1)


def band(ax, x, mean, std, color: str, label: str | None = None, fill: bool = True, **line_kw):
    """Draw ``mean`` and the band mean +- 2 ``std`` on ``ax`` (a filled band, or dashed edges with
    ``fill=False``); returns the (lower, upper) arrays that were drawn."""
    x, mean, std = _np(x), _np(mean), _np(std)
    lower, upper = mean - 2 * std, mean + 2 * std
    ax.plot(x, mean, color=color, label=label, **line_kw)
    if fill:
        ax.fill_between(x, lower, upper, color=color, alpha=0.2, linewidth=0)
    else:
        ax.plot(x, lower, color=color, linestyle="--", linewidth=0.8)
        ax.plot(x, upper, color=color, linestyle="--", linewidth=0.8)
    return lower, upper


def _decorate(ax, task: GridTask, show_truth: bool = True) -> None:
    if show_truth:
        ax.plot(_np(task.x), _np(task.f), color="0.45", linestyle=":", linewidth=1.2, label="true f")
    ax.scatter(_np(task.xc), _np(task.yc), s=18, color="black", zorder=5, label="context")
    ax.set_xlim(float(task.x.min()), float(task.x.max()))
    ax.set_xlabel("x")


def plot_tasks(batch, n: int = 4, title: str | None = None) -> Figure:
    """Some training tasks of a :class:`~ifanp.data.functions.FunctionBatch`: the targets (a noisy
    function) as a line and the context points as dots, one panel per task."""
    xc, yc, xt, yt = batch
    n = min(n, xt.shape[0])
    fig = Figure(figsize=(3.0 * n, 2.6), layout="constrained")
    axes = fig.subplots(1, n, sharey=True, squeeze=False)[0]
    for i, ax in enumerate(axes):
        ax.plot(_np(xt[i]), _np(yt[i]), color="0.5", marker=".", markersize=3, linewidth=0.8, label="targets")
        ax.scatter(_np(xc[i]), _np(yc[i]), s=18, color="black", zorder=5, label="context")
        ax.set_title(f"{xc.shape[1]} context / {xt.shape[1]} targets", fontsize=9)
        ax.set_xlabel("x")
    axes[0].set_ylabel("y")
    axes[0].legend(fontsize=8, loc="lower left")
    if title:
        fig.suptitle(title)
    return fig


def plot_models_vs_gp(models: Mapping[str, object], task: GridTask, sampler, samples: int = 32,
                      seed: int = 0, title: str | None = None) -> Figure:
    """One panel per model: its predictive mean +- 2 std of y (coloured band) over the exact GP's
    (black line, dashed +- 2 std edges), with the context and the true function."""
    n = len(models)
    fig = Figure(figsize=(4.2 * n, 3.2), layout="constrained")
    axes = fig.subplots(1, n, sharey=True, squeeze=False)[0]
    gp_mean, gp_std = gp_predictive(sampler, task.xc, task.yc, task.x)
    for ax, (name, model) in zip(axes, models.items()):
        torch.manual_seed(seed)
        mean, std = predictive(model, task.xc, task.yc, task.x, samples=samples)
        key = name.lower()
        band(ax, task.x, gp_mean, gp_std, COLORS["gp"], "exact GP: mean, ± 2 std dashed", fill=False,
             linewidth=1.2)
        band(ax, task.x, mean, std, COLORS.get(key, "tab:purple"), LABELS.get(key, name), linewidth=1.8)
        _decorate(ax, task)
        ax.set_title(f"{LABELS.get(key, name)} vs GP, {len(task.xc)} context points", fontsize=10)
    axes[0].set_ylabel("y   (bands: mean ± 2 std of y)")
    axes[0].legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    return fig


def plot_function_samples(models: Mapping[str, object], task: GridTask, sampler, num_samples: int = 5,
                          seed: int = 0) -> Figure:
    """One panel per latent model: its decoder means for ``num_samples`` draws z ~ q(z | context) (one
    function per z); last panel: as many exact GP posterior samples of f. Grey band in every panel: the
    GP's mean +- 2 std of y."""
    n = len(models) + 1
    fig = Figure(figsize=(4.2 * n, 3.2), layout="constrained")
    axes = fig.subplots(1, n, sharey=True, squeeze=False)[0]
    gp_mean, gp_std = gp_predictive(sampler, task.xc, task.yc, task.x)
    with torch.no_grad():
        gp = GPRegression(sampler.kernel, noise=max(sampler.noise, 1e-12))
        g = torch.Generator().manual_seed(seed)
        fs = gp.sample_posterior(task.xc.double(), task.yc.double()[:, 0], task.x.double(), num_samples,
                                 generator=g, noise=sampler.noise)
    curves = {}
    for name, model in models.items():
        torch.manual_seed(seed)
        model.eval()
        with torch.no_grad():
            means, _ = model.predict(task.xc[None], task.yc[None], task.x[None], samples=num_samples)
        curves[name] = [means[s, 0] for s in range(num_samples)]
    curves["GP"] = list(fs)
    lo, hi = _np(gp_mean) - 2 * _np(gp_std), _np(gp_mean) + 2 * _np(gp_std)
    for ax, (name, fns) in zip(axes, curves.items()):
        key = name.lower()
        ax.fill_between(_np(task.x), lo, hi, color="0.85", linewidth=0, label="GP mean ± 2 std of y")
        for f in fns:
            ax.plot(_np(task.x), _np(f), color=COLORS.get(key, "tab:purple"), linewidth=1, alpha=0.8)
        _decorate(ax, task, show_truth=False)
        what = "posterior samples of f" if key == "gp" else "decoder means, one per draw of z"
        ax.set_title(f"{LABELS.get(key, name)}: {num_samples} {what}", fontsize=10)
    axes[0].set_ylabel("y")
    axes[-1].legend(fontsize=8, loc="best")
    return fig


def plot_context_fit(fit: Mapping, title: str | None = None) -> Figure:
    """The result of :func:`context_fit`: RMSE of the predictive mean at the context points (left) and
    at the other targets (right) against the number of context points, one line per model."""
    fig = Figure(figsize=(9.0, 3.2), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    nc = fit["num_context"]
    for key in [k for k in fit if k != "num_context"]:
        style = {"color": COLORS.get(key, "tab:purple"), "marker": "o", "markersize": 4,
                 "label": LABELS.get(key, key) + (" (exact, true kernel)" if key == "gp" else "")}
        if key == "gp":
            style["linestyle"] = "--"
        axes[0].plot(nc, fit[key]["context"], **style)
        axes[1].plot(nc, fit[key]["other"], **style)
    axes[0].set_title("RMSE of the mean AT the context points", fontsize=10)
    axes[1].set_title("RMSE of the mean at the other targets", fontsize=10)
    for ax in axes:
        ax.set_xlabel("number of context points")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("RMSE (log scale)")
    axes[1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_training_history(histories: Mapping[str, Sequence[Mapping[str, float]]], window: int = 50) -> Figure:
    """Training loss per task (a running mean over ``window`` steps) against the step, one line per model."""
    fig = Figure(figsize=(6.0, 3.0), layout="constrained")
    ax = fig.subplots()
    for name, history in histories.items():
        loss = np.array([r["loss"] for r in history], dtype=float)
        if len(loss) == 0:
            continue
        w = max(1, min(window, len(loss)))
        smooth = np.convolve(loss, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(w, len(loss) + 1), smooth, color=COLORS.get(name.lower(), None),
                label=LABELS.get(name.lower(), name))
    ax.set_xlabel("step")
    ax.set_ylabel(f"loss per task (mean of {window} steps)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_np_explorer(models: Mapping[tuple[str, str], object], model: str = "anp", kernel: str = "rbf",
                     num_context: int = 10, seed: int = 0, samples: int = 32, num_points: int = 200) -> Figure:
    """The widget's figure: one test function from the GP with ``kernel``, ``num_context`` context points,
    and the predictive mean +- 2 std of y of ``model`` beside the exact GP's.

    ``models`` maps (model name, training kernel) to a trained model. The model trained on ``kernel``
    is used when there is one, else the one trained on ``"rbf"`` (the title then says it is seeing
    functions of another kernel than its training functions).
    """
    trained_on = kernel if (model, kernel) in models else "rbf"
    if (model, trained_on) not in models:
        raise ValueError(f"no {model!r} model for kernel {kernel!r} or 'rbf'; have {sorted(models)}.")
    sampler = GPFunctionSampler(kernel)  # the training distribution of python -m ifanp train1d
    task = grid_task(kernel, num_context, seed=seed, num_points=num_points, sampler=sampler)
    fig = Figure(figsize=(7.5, 3.4), layout="constrained")
    ax = fig.subplots()
    gp_mean, gp_std = gp_predictive(sampler, task.xc, task.yc, task.x)
    torch.manual_seed(seed)
    mean, std = predictive(models[(model, trained_on)], task.xc, task.yc, task.x, samples=samples)
    band(ax, task.x, gp_mean, gp_std, COLORS["gp"], f"exact GP ({kernel}): mean, ± 2 std dashed", fill=False,
         linewidth=1.2)
    band(ax, task.x, mean, std, COLORS.get(model, "tab:purple"), LABELS.get(model, model), linewidth=1.8)
    _decorate(ax, task)
    note = "" if trained_on == kernel else " (trained on rbf functions: out of distribution)"
    ax.set_title(f"{LABELS.get(model, model)} on a {kernel} function, {num_context} context points{note}",
                 fontsize=10)
    ax.set_ylabel("y   (bands: mean ± 2 std of y)")
    ax.legend(fontsize=8, loc="best")
    return fig
