"""Charts of the numbers of the chapters "Experiments" and "Beyond the paper": a metric against the context
ratio (:func:`plot_psnr_vs_ratio`), training curves (:func:`plot_fig8`, the paper's Fig. 8), MSE bars beside
the paper's (:func:`plot_fig9`), one metric for every model (:func:`plot_metric_bars`, the widget's callback),
quality against compute (:func:`plot_psnr_vs_cpu`) and the reliability of the predictive sigma
(:func:`plot_calibration`); the same rows on two datasets side by side (:func:`plot_psnr_panels`).

Colours: one per model (:data:`COLORS`), the same in every chart. Numbers that come from the paper are drawn
hatched or as open markers, ours solid. The charts only draw: the numbers come from
:mod:`ifanp.reproduce`, :mod:`ifanp.analysis` and the training logs (:mod:`ifanp.runlog`), the words of the
axes from :mod:`ifanp.reporting`. Every figure is a :class:`matplotlib.figure.Figure` built without pyplot.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..analysis import paper_mse
from ..reporting import HIGHER_IS_BETTER, METRIC_NAMES, fmt_metric, model_label, percent
from ..reproduce import ABLATION, FAITHFUL, PAPER_TABLE1, seed_spread
from ..runlog import TRAIN_BATCH, TRAIN_IMAGES

__all__ = ["COLORS", "plot_budget_curves", "plot_calibration", "plot_eval_curves", "plot_fig8", "plot_fig9", "plot_metric_bars",
           "plot_psnr_panels", "plot_psnr_vs_cpu", "plot_psnr_vs_ratio"]

#: One colour per model in every figure of the two chapters.
COLORS = {
    "vae": "0.55", "np": "tab:brown", "ifnp": "tab:blue", "ifanp-lpa": "tab:orange", "ifanp-se": "tab:green",
    "ifanp-gca": "tab:purple", "ifanp": "tab:red", "ifanp-plus": "black", "ifanp-fast": "tab:cyan",
}



def plot_psnr_vs_ratio(values: Mapping[str, Sequence[float]], ratios: Sequence[str] = ("0.2", "0.4", "0.6"),
                       paper: Mapping[str, Sequence[float]] | None = None, goal: Sequence[float] | None = None,
                       ylabel: str = "PSNR, whole image (dB)", title: str | None = None) -> Figure:
    """A metric against the context ratio: ours as solid lines with filled dots (``values`` maps a model name to
    one value per ratio), the paper's as dashed lines with open squares in the same colour (``paper``), and
    a goal as black stars on a dotted line (``goal``)."""
    fig = Figure(figsize=(7.2, 3.9), layout="constrained")
    ax = fig.add_subplot()
    x = [100 * float(r) for r in ratios]
    for model, ys in values.items():
        label = model_label(model)
        ax.plot(x, ys, "o-", color=COLORS.get(model), label=label if "ours" in label else f"{label}, ours")
    for model, ys in (paper or {}).items():
        ax.plot(x, ys, "s--", mfc="none", color=COLORS.get(model), label=f"{model_label(model)}, paper", lw=1)
    if goal is not None:
        ax.plot(x, goal, "*:", color="k", ms=10, label="our goal")
    ax.set_xticks(x, [percent(r) for r in ratios])
    ax.set_xlabel("context ratio")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    if title:
        ax.set_title(title, fontsize=10)
    return fig



def plot_fig8(histories: Mapping[str, Sequence[Mapping[str, float]]],
              evals: Mapping[str, Sequence[Mapping[str, float]]] | None = None,
              spe: Mapping[str, float] | None = None) -> Figure:
    """Fig. 8: the training MSE (predictive mean, all pixels, averaged over each epoch's batches) per epoch,
    one line per model (left); with ``evals``, the held-out whole-image PSNR at 40 % context on the first
    1,000 evaluation images, logged every few hundred steps, against the epoch (right).

    ``histories`` maps a model to its training-log rows (``epoch``, ``mse``); ``evals`` to its eval rows
    (``step``, ``psnr40``); ``spe`` gives each model's steps per epoch (default 60,000 / 64). The paper's
    Fig. 8 spans 0-300 epochs and MSE 0-0.06; the left panel keeps its MSE range when our values fit."""
    panels = 2 if evals else 1
    fig = Figure(figsize=(5.0 * panels + 0.6, 3.7), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, panels))
    ax = axes[0]
    top = 0.06
    for model, hist in histories.items():
        pts = [(h["epoch"], h["mse"]) for h in hist if h.get("mse") is not None]
        if not pts:
            continue
        x, y = zip(*pts)
        top = max(top, 1.05 * max(y))
        ax.plot(x, y, "o-", color=COLORS.get(model), label=model_label(model), ms=4)
    ax.set_xlim(left=0)
    ax.set_ylim(0, top)
    ax.set_xlabel("epoch (the paper's Fig. 8: 0-300)")
    ax.set_ylabel("training MSE (all pixels)")
    ax.set_title("Fig. 8, ours: training MSE per epoch", fontsize=10)
    ax.grid(True, alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7.5)
    if evals:
        ax = axes[1]
        for model, rows in evals.items():
            pts = [(r["step"] / (spe or {}).get(model, TRAIN_IMAGES / TRAIN_BATCH), r["psnr40"]) for r in rows
                   if r.get("psnr40") is not None]
            if pts:
                x, y = zip(*pts)
                ax.plot(x, y, "-", color=COLORS.get(model), label=model_label(model), lw=1.5)
        p = PAPER_TABLE1["ifanp"]["psnr"][1]
        ax.axhline(p, color="tab:red", ls=":", lw=1)
        ax.text(0.01, p, f" paper's IFANP at 40 %: {p:.2f} dB", color="tab:red", fontsize=7, va="bottom",
                transform=ax.get_yaxis_transform())
        ax.set_xlim(left=0)
        ax.set_xlabel("epoch")
        ax.set_ylabel("PSNR at 40 % context (dB)")
        ax.set_title("held-out PSNR during training\n(first 1,000 evaluation images)", fontsize=10)
        ax.grid(True, alpha=0.3)
        if ax.lines[:-1]:
            ax.legend(fontsize=7.5)
    return fig



def plot_eval_curves(curves: Mapping[str, Sequence[Sequence[Mapping[str, float]]]],
                     paper: Mapping[str, float] | None = None, title: str | None = None) -> Figure:
    """Held-out PSNR at 40 % context during training against the optimiser step, every seed of every model:
    ``curves`` maps a model to one list of eval rows (``step``, ``psnr40``) per seed, seed 0 first (a solid
    line; the other seeds thin); ``paper`` maps a model to the paper's 40 % value, drawn as a short dashed
    line at the right in the model's colour."""
    def color(model):  # a faithful configuration in the colour of the model it configures
        return COLORS.get(model, COLORS.get(FAITHFUL.get(model, "")))

    fig = Figure(figsize=(7.2, 3.9), layout="constrained")
    ax = fig.add_subplot()
    right = 0
    for model, seeds in curves.items():
        for i, rows in enumerate(seeds):
            pts = [(r["step"], r["psnr40"]) for r in rows if r.get("psnr40") is not None]
            if not pts:
                continue
            x, y = zip(*pts)
            right = max(right, max(x))
            ax.plot(x, y, "-", color=color(model), lw=1.8 if i == 0 else 0.8, alpha=1.0 if i == 0 else 0.6,
                    label=f"{model_label(model)} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''})" if i == 0
                    else None)
    for model, value in (paper or {}).items():
        ax.plot([0.9 * right, right], [value, value], "--", color=color(model), lw=1.2)
    ax.set_xlim(left=0)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("PSNR at 40 % context (dB)")
    ax.set_title(title or "held-out PSNR during training (first 1,000 evaluation images)", fontsize=10)
    ax.grid(True, alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def plot_fig9(fig9: Mapping[str, Mapping[str, float]], psnr: Mapping[str, Mapping[str, float]] | None = None,
              models: Sequence[str] = ABLATION) -> Figure:
    """Fig. 9: MSE at each context ratio as grouped bars, one bar per model; ours (left, solid, from ``fig9`` =
    :func:`ifanp.reproduce.reproduce`'s ``fig9``: the mean over images of the whole-image MSE) beside the
    paper's (right, hatched), which the paper gives only as PSNR: its bars are derived,
    MSE = 10^(-PSNR/10) (:func:`paper_mse`). With ``psnr`` (our mean PSNR per model and ratio) ours are also
    marked the same way (black dots), to compare like with like."""
    ratios = ["0.2", "0.4", "0.6"]
    fig = Figure(figsize=(10.0, 3.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    width = 0.8 / len(models)
    x = np.arange(len(ratios))
    dots = False
    for j, model in enumerate(models):
        off = x - 0.4 + width * (j + 0.5)
        if model in fig9:
            vals = [fig9[model].get(r, np.nan) for r in ratios]
            axes[0].bar(off, vals, width, color=COLORS.get(model), label=model_label(model))
            if psnr and model in psnr:
                axes[0].plot(off, paper_mse([psnr[model][r] for r in ratios]), "k.", ms=5,
                             label=None if dots else "ours, 10^(-PSNR/10)")
                dots = True
        else:
            axes[0].bar(off, [0] * len(ratios), width, color=COLORS.get(model), label=f"{model_label(model)} (missing)")
        if model in PAPER_TABLE1:
            axes[1].bar(off, paper_mse(PAPER_TABLE1[model]["psnr"]), width, color=COLORS.get(model), alpha=0.55,
                        hatch="///", edgecolor="white", label=model_label(model))
    top = max([b.get_height() for ax in axes for b in ax.patches] + [0.01])
    for ax, title in zip(axes, ("ours: mean whole-image MSE", "paper: derived from Table 1, MSE = 10^(-PSNR/10)")):
        ax.set_xticks(x, [percent(r) for r in ratios])
        ax.set_xlabel("context ratio")
        ax.set_title(title, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_ylim(0, 1.35 * top)
        ax.legend(fontsize=7, ncol=3, loc="upper center")
    axes[0].set_ylabel("MSE (MAX = 1)")
    return fig



def plot_metric_bars(table: Mapping[str, Any], metric: str = "psnr_whole", ratio: str = "0.4") -> Figure:
    """One metric at one context ratio for every model of the table (the widget's callback): a bar per model
    (seed 0), an error bar of +- 1 sd over the seeds where several are shipped, and the paper's Table 1
    value as an open diamond where it reports one (PSNR and KL only)."""
    rows = [r for r in table["rows"] if r["ratios"][ratio].get(metric) is not None]
    fig = Figure(figsize=(6.4, 0.42 * max(len(rows), 1) + 1.3), layout="constrained")
    ax = fig.add_subplot()
    paper_key = {"psnr_whole": "psnr", "kl": "kl"}.get(metric)
    y = np.arange(len(rows))[::-1]
    for yi, row in zip(y, rows):
        v = row["ratios"][ratio][metric]
        sp = seed_spread(row, metric).get(ratio) if len(row.get("seeds", [])) > 1 else None
        sd = sp["sd"] if sp and not math.isnan(sp["sd"]) else 0.0
        ax.barh(yi, v, color=COLORS.get(row["model"], "0.5"), xerr=sd or None, capsize=3)
        # the value right of the bar's end (of zero for a negative bar, clear of the model names)
        ax.text(v + sd if v >= 0 else 0.0, yi, f" {fmt_metric(metric, v)}" + (f" ± {fmt_metric(metric, sd)}" if sd else ""),
                va="center", ha="left", fontsize=7.5)
        if paper_key and row["model"] in PAPER_TABLE1 and ratio in ("0.2", "0.4", "0.6"):
            p = PAPER_TABLE1[row["model"]][paper_key][["0.2", "0.4", "0.6"].index(ratio)]
            ax.plot(p, yi, "D", mfc="none", mec="k", ms=7)
    if paper_key:
        ax.plot([], [], "D", mfc="none", mec="k", label="paper, Table 1")
        ax.legend(fontsize=7.5, loc="lower right")
    ax.set_yticks(y, [r["label"] for r in rows])
    better = "higher" if metric in HIGHER_IS_BETTER else "lower"
    ax.set_xlabel(f"{METRIC_NAMES.get(metric, metric)} ({better} is better)")
    ax.set_title(f"{METRIC_NAMES.get(metric, metric)} at {percent(ratio)} context, {table['images']:,} images",
                 fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    if metric == "kl":
        ax.set_xscale("symlog", linthresh=1e-5)
    return fig



def plot_psnr_vs_cpu(evals: Mapping[str, Sequence[Mapping[str, float]]], levels: Mapping[str, float],
                     log_x: bool | None = None) -> Figure:
    """Quality against compute: held-out whole-image PSNR at 40 % context (first 1,000 evaluation images)
    against the training process's CPU minutes, one line per model (``evals`` maps a model name to its
    registry ``evals`` rows); ``levels`` are drawn as dotted horizontal lines (e.g. the paper's IFANP).
    ``log_x=None`` draws the CPU minutes on a log axis when they span more than a decade."""
    fig = Figure(figsize=(6.6, 3.9), layout="constrained")
    ax = fig.add_subplot()
    xs: list[float] = []
    for model, rows in evals.items():
        pts = [(r["cpu_s"] / 60, r["psnr40"]) for r in rows if r.get("cpu_s") is not None]
        if pts:
            x, y = zip(*pts)
            xs += [v for v in x if v > 0]
            ax.plot(x, y, "o-", ms=3, color=COLORS.get(model), label=model_label(model))
    for i, (name, level) in enumerate(levels.items()):
        ax.axhline(level, color="0.3", ls=":" if i == 0 else "--", lw=1)
        ax.text(0.01, level, f" {name}: {level:.2f} dB", fontsize=7, va="bottom", color="0.25",
                transform=ax.get_yaxis_transform())
    if log_x is None:
        log_x = bool(xs) and max(xs) > 10 * min(xs)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("training CPU minutes (all threads of the training process)" + (", log scale" if log_x else ""))
    ax.set_ylabel("PSNR at 40 % context (dB)")
    ax.grid(True, alpha=0.3)
    if any(line.get_label()[:1] != "_" for line in ax.lines):
        ax.legend(fontsize=7.5, loc="lower right")
    ax.set_title("quality against compute", fontsize=10)
    return fig



def plot_calibration(ks: Sequence[float], observed: Mapping[str, Sequence[float]], title: str | None = None) -> Figure:
    """Reliability of the predictive sigma of y: the observed fraction of missing pixels inside mean +- k sigma
    (one line per model) against the fraction a calibrated Gaussian predicts, erf(k / sqrt 2) (the diagonal).
    Above the diagonal: sigma too large (under-confident); below: too small (over-confident)."""
    nominal = [math.erf(k / math.sqrt(2)) for k in ks]
    fig = Figure(figsize=(4.6, 4.7), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.5", ls=":", lw=1, label="calibrated")
    for k in (1, 2):
        ax.axvline(math.erf(k / math.sqrt(2)), color="0.75", lw=0.8)
        ax.text(math.erf(k / math.sqrt(2)), 0.02, f"±{k}σ ", fontsize=7, color="0.4", ha="right")
    for model, obs in observed.items():
        ax.plot(nominal, obs, "o-", ms=3, color=COLORS.get(model), label=model_label(model))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("nominal coverage of mean ± kσ, erf(k/√2)")
    ax.set_ylabel("observed fraction of missing pixels inside")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_psnr_panels(panels: Mapping[str, Mapping[str, Sequence[float]]],
                     ratios: Sequence[str] = ("0.2", "0.4", "0.6"), title: str | None = None,
                     ylabel: str = "PSNR, whole image (dB)") -> Figure:
    """One panel per dataset (``panels`` maps its name to ``{model: one value per ratio}``), side by side with
    a shared y axis, so that the order of the models can be compared across datasets: trained models as solid
    lines in their colour (:data:`COLORS`), rules without learning (names starting with ``baseline-``) in grey,
    dashed (with the context pasted back) or dotted."""
    fig = Figure(figsize=(3.6 * len(panels) + 1.8, 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
    x = [100 * float(r) for r in ratios]
    for ax, (name, values) in zip(axes, panels.items()):
        for model, ys in values.items():
            if model.startswith("baseline-"):
                ax.plot(x, ys, "--" if model.endswith("-paste") else ":", color="0.5", lw=1,
                        marker={"mean": "v", "nconv": "s", "gp": "D"}.get(model.split("-")[1], "."), ms=4,
                        label=model_label(model))
            else:
                ax.plot(x, ys, "o-", color=COLORS.get(model), label=model_label(model))
        ax.set_xticks(x, [percent(r) for r in ratios])
        ax.set_xlabel("context ratio")
        ax.set_title(name, fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(ylabel)
    handles = {h.get_label(): h for ax in axes for h in ax.get_lines()}
    axes[-1].legend(list(handles.values()), list(handles), fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    if title:
        fig.suptitle(title, fontsize=10)
    return fig



def plot_resolution_curves(curves: Mapping[str, Any], level: float | None = None) -> Figure:
    """The full-resolution experiment (``ifanp/experiments/mnist-resolution.json``): held-out PSNR at 40 % against
    the training step, one line per run; solid 28x28 (down = 1), dashed 14x14 (down = 2, the shipped runs, one
    line per seed); ``level`` as a dotted line (e.g. the paper's IFANP)."""
    fig = Figure(figsize=(6.6, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for r in curves["runs"]:
        if not r["evals"]:
            continue
        x = [e["step"] for e in r["evals"]]
        y = [e["psnr40"] for e in r["evals"]]
        full = r["down"] == 1
        label = f"{model_label(r['model'])}, {'28x28' if full else '14x14'}" + ("" if full else f", seed {r['seed']}")
        ax.plot(x, y, "o-" if full else "s--", ms=4 if full else 3, lw=2 if full else 1,
                color=COLORS.get(r["model"]), alpha=1 if full else 0.55, label=label)
    if level is not None:
        ax.axhline(level, color="0.3", ls=":", lw=1)
        ax.text(0.99, level, f"paper's IFANP at 40 %: {level:.2f} dB ", fontsize=7, va="bottom", ha="right",
                color="0.25", transform=ax.get_yaxis_transform())  # right: the legend sits at the upper left
    ax.axvline(curves["compare_step"], color="0.7", lw=0.8)
    ax.set_xlabel("training step (of the same 3,000-step schedule)")
    ax.set_ylabel("PSNR at 40 % context (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("LPA at 14x14 and at full resolution", fontsize=10)
    return fig


def plot_budget_curves(runs: Mapping[str, Sequence[Mapping[str, float]]], paper: Sequence[float],
                       ratios: Sequence[str] = ("0.2", "0.4", "0.6"), margin_db: float = 0.5,
                       title: str | None = None, groups: Sequence[Sequence[str]] | None = None) -> Figure:
    """Learning curves under several training budgets (``ifanp/experiments/mnist-faithful-budget.json``):
    one panel per context ratio, whole-image PSNR of each run's checkpoints (``runs`` maps a label to rows with
    ``step`` and one value per ratio) against the step; ``paper`` (one value per ratio) as a dashed line and the
    goal, ``paper - margin_db``, as a dotted one. ``groups`` (lists of labels, e.g. one model and seed under
    several budgets) share a colour, the longest run of each drawn thick with filled dots and the shorter
    ones thin with open dots; without it every run has its own colour and the longest of all is thick."""
    fig = Figure(figsize=(9.0, 3.2), layout="constrained")
    axes = fig.subplots(1, len(ratios), sharex=True)
    groups = [list(g) for g in groups] if groups else [[label] for label in runs]
    if len(groups) == len(runs) and all(len(g) == 1 for g in groups):
        groups_for_width = [list(runs)]  # one colour each, the longest of all stands out
    else:
        groups_for_width = groups
    last = {label: max((r["step"] for r in rows), default=0) for label, rows in runs.items()}
    thick = {max(g, key=lambda lab: last.get(lab, 0)) for g in groups_for_width if g}
    colour = {label: i for i, g in enumerate(groups) for label in g}
    colours = ["0.45", "tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange"]
    for ax, ratio, level in zip(axes, ratios, paper):
        for i, (label, rows) in enumerate(runs.items()):
            pts = sorted((r["step"], r[ratio]) for r in rows if r.get(ratio) is not None)
            if pts:
                x, y = zip(*pts)
                c = colours[colour.get(label, i) % len(colours)]
                ax.plot(x, y, "o-", ms=3 if label in thick else 4, lw=2.0 if label in thick else 1.0, color=c,
                        mfc=c if label in thick else "white", label=label)
        ax.axhline(level, color="0.2", ls="--", lw=1, label="the paper")
        ax.axhline(level - margin_db, color="0.2", ls=":", lw=1, label=f"the paper - {margin_db:g} dB (the goal)")
        ax.set_title(f"{percent(ratio)} context", fontsize=9)
        ax.set_xlabel("optimiser step")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("whole-image PSNR (dB)")
    handles, labels = axes[0].get_legend_handles_labels()
    wide = max((len(label) for label in labels), default=0) > 30
    fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncol=min(len(labels), 2 if wide else 4))
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
