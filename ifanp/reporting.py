"""Every table and every generated sentence of the book, from numbers computed elsewhere (nothing here
evaluates a model or reads a file).

* :func:`table_html`, the one HTML table writer, and the tables built on it: :func:`shipped_html`,
  :func:`comparison_html` (ours beside the paper), :func:`seed_spread_html`, :func:`metrics_html`,
  :func:`checks_html` (the paper's claims, each with the explanation of its outcome from
  :data:`CHECK_EXPLANATIONS`), :func:`goal_html`, :func:`time_to_quality_html`, :func:`structured_html`;
* generated text: :func:`shipped_commands`, :func:`checks_summary`, :func:`goal_summary`,
  :func:`time_to_quality_summary`, :func:`structured_summary`, :func:`calibration_summary`,
  :func:`decoder_sigma`, and :data:`PLUS_CHANGES` / :func:`explain_change` (what each option of ifanp-plus
  changes and why it should help);
* the faithful configurations' sentences (their summary, learning curves and budget runs) are in
  :mod:`ifanp.reporting_faithful`;
* the names of the metrics (:data:`METRIC_NAMES`) and how numbers are written (:func:`fmt_metric`).

The prose those sentences are chosen from (:data:`CHECK_EXPLANATIONS`, :data:`PLUS_CHANGES`) lives in
:mod:`ifanp.explanations` and is re-exported here.

The tables and sentences are chosen by the numbers they are given, so the text of the book follows the
results; the tests check those choices (which sentence for which outcome), not whole sentences.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from .analysis import first_pass, head_to_head_winner, settled_pass, value_at
from .baselines import BASELINES
from .explanations import CHECK_EXPLANATIONS, EXPLANATION_TAGS, PLUS_CHANGES  # noqa: F401 (re-exported)
from .reproduce import LABELS, PAPER_TABLE1, VERDICTS, seed_spread

METRIC_NAMES = {
    "psnr_whole": "PSNR, whole image (dB)", "psnr_target": "PSNR, missing pixels only (dB)",
    "mse_whole": "MSE, whole image", "mse_target": "MSE, missing pixels only", "ssim": "SSIM, whole image",
    "nll_per_pixel": "NLL per missing pixel (nats)", "kl": "KL of Eq. 6 (nats, diagnostic)",
}

#: Metrics where larger is better (the others: smaller is better).
HIGHER_IS_BETTER = {"psnr_whole", "psnr_target", "ssim"}

def percent(ratio: str | float) -> str:
    return f"{float(ratio) * 100:g} %"


def model_label(model: str) -> str:
    return LABELS.get(model, model)


def fmt_metric(metric: str, v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if metric.startswith("psnr"):
        return f"{v:.2f}"
    if metric.startswith("mse") or metric == "kl":
        return f"{v:.4g}"
    return f"{v:.3f}"



def table_html(header: Sequence[str], rows: Sequence[Sequence[object]], caption: str | None = None) -> str:
    """A small HTML table (for ``IPython.display.HTML``): it renders the same in Jupyter, Colab and the
    built book, where Markdown tables printed by a cell are not rendered. Cells are escaped; floats are
    shown as given (format them first)."""
    def row(cells, tag):
        return "<tr>" + "".join(f"<{tag}>{spec_links(escape(str(c)))}</{tag}>" for c in cells) + "</tr>"

    head = row(header, "th")
    body = "".join(row(r, "td") for r in rows)
    cap = f"<caption>{spec_links(escape(caption))}</caption>" if caption else ""
    return f"<table>{cap}<thead>{head}</thead><tbody>{body}</tbody></table>"


_SPEC_REF = re.compile(r"\bSPEC (?:section )?(\d+(?:\.\d+)?)((?:, \d+(?:\.\d+)?(?![\d%]))*)")


def spec_links(html: str, page: str = "spec.html") -> str:
    """Turn "SPEC 5.4" (and "SPEC 4.3, 8") in escaped HTML into links to the sections of the book's SPEC
    appendix (book/spec.md labels its sections spec-5-4, ...; the chapters sit beside it in book/)."""
    def link(num: str) -> str:
        return f'<a href="{page}#spec-{num.replace(".", "-")}">{num}</a>'

    def sub(m: re.Match) -> str:
        rest = re.sub(r"\d+(?:\.\d+)?", lambda k: link(k.group(0)), m.group(2))
        return f'<a href="{page}#spec-{m.group(1).replace(".", "-")}">SPEC {m.group(1)}</a>' + rest

    return _SPEC_REF.sub(sub, html)


# ---- the shipped weights ------------------------------------------------------------------------------------


def shipped_html(rows: Sequence[Mapping[str, Any]], caption: str | None = None) -> str:
    """The list of :func:`shipped_models` as an HTML table; the commands are left out (long lines: print
    them with :func:`shipped_commands`)."""
    def f(v, fmt):
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    body = []
    for r in rows:
        if r["present"]:
            body.append([r["name"], f(r["steps"], ","), f(r["epochs"], ".2f"), f(r["cpu_min"], ".1f"),
                         f(r["wall_min"], ".1f"), "installed"])
        else:
            body.append([r["name"], "", "", "", "", "missing"])
    return table_html(["weights", "steps", "epochs", "CPU min", "wall min", ""], body, caption=caption)



def shipped_commands(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per row of :func:`shipped_models`: the command that made the weights (as recorded), or, for
    missing weights, the command that makes them."""
    return "\n".join(f"{r['name']}: {'' if r['present'] else 'missing, train it with: '}{r['command']}"
                     for r in rows)



# ---- ours beside the paper -----------------------------------------------------------------------------------


def comparison_html(table: Mapping[str, Any], metric: str = "psnr_whole", caption: str | None = None) -> str:
    """One metric of :func:`ifanp.reproduce.reproduce`'s table at every ratio, one row per model, as HTML.

    For ``psnr_whole`` each cell reads "ours / paper (ours − paper)", for ``kl`` "ours / paper", with the
    paper's Table 1 value as printed; models the paper does not report get "—" for it, and other metrics
    show ours only. Seed 0's value is shown (mean ± sd over the seeds in :func:`seed_spread_html`)."""
    rows = table["rows"]
    ratios = list(rows[0]["ratios"]) if rows else []
    paper_key = {"psnr_whole": "psnr", "kl": "kl"}.get(metric)
    body = []
    for row in rows:
        cells = [row["label"]]
        paper = PAPER_TABLE1.get(row["model"], {}).get(paper_key) if paper_key else None
        for r in ratios:
            v = row["ratios"][r].get(metric)
            cell = fmt_metric(metric, v)
            if paper_key:
                p = paper[["0.2", "0.4", "0.6"].index(r)] if paper and r in ("0.2", "0.4", "0.6") else None
                cell += " / " + ("—" if p is None else (f"{p:.3f}" if metric == "psnr_whole" else f"{p:.2g}"))
                if metric == "psnr_whole" and p is not None and v is not None:
                    cell += f" ({v - p:+.2f})"
            cells.append(cell)
        body.append(cells)
    what = {"psnr_whole": " (ours / paper (ours − paper))", "kl": " (ours / paper)"}.get(metric, "")
    header = ["model"] + [f"{percent(r)}{what}" for r in ratios]
    return table_html(header, body, caption=caption)



def seed_spread_html(table: Mapping[str, Any], metrics: Sequence[str] = ("psnr_whole", "psnr_target", "ssim",
                                                                          "nll_per_pixel"),
                     caption: str | None = None) -> str:
    """Mean +- sample sd over the shipped seeds of every row that has more than one seed, per metric and ratio."""
    rows = [r for r in table["rows"] if len(r.get("seeds", [])) > 1]
    if not rows:
        return table_html(["model", "note"], [["—", "no model has more than one seed installed"]], caption=caption)
    ratios = list(rows[0]["ratios"])
    header = ["model", "seeds", "metric"] + [percent(r) for r in ratios]
    body = []
    for row in rows:
        for m in metrics:
            sp = seed_spread(row, m)
            if not sp:
                continue
            cells = [row["label"], ", ".join(map(str, row["seeds"])), METRIC_NAMES.get(m, m)]
            for r in ratios:
                s = sp.get(r)
                cells.append("—" if s is None else f"{fmt_metric(m, s['mean'])} ± {fmt_metric(m, s['sd'])}")
            body.append(cells)
    return table_html(header, body, caption=caption)



def metrics_html(table: Mapping[str, Any], metrics: Sequence[str] = ("psnr_target", "ssim", "nll_per_pixel"),
                 caption: str | None = None) -> str:
    """Several metrics of :func:`ifanp.reproduce.reproduce`'s table (seed 0) as one HTML table: one row per
    model, one column per (metric, ratio); "—" where a model does not have the metric."""
    rows = table["rows"]
    ratios = list(rows[0]["ratios"]) if rows else []
    header = ["model"] + [f"{METRIC_NAMES.get(m, m)}, {percent(r)}" for m in metrics for r in ratios]
    body = [[row["label"]] + [fmt_metric(m, row["ratios"][r].get(m)) for m in metrics for r in ratios] for row in rows]
    return table_html(header, body, caption=caption)



#: For every check of :func:`ifanp.reproduce.ablation_order_checks`: what it means when it holds and when it
#: fails, for our models (the text shown is chosen by the outcome computed at run time; "mixed": ours is above
#: the paper's number at some ratios and below it at others, followed by "mixed_steeper" or "mixed_flatter",
#: chosen by the sign of the last margin minus the first, and "mixed_end").
#: How sure each explanation is, as its first words: "By construction:" (follows from our wiring or the
#: check's definition), "Measured:" (a number of ours says it), "Hypothesis, untested here:" (nobody has
#: run the experiment that would decide it) or "Hypothesis (its test follows):" (the ``evidence`` sentence of
#: :func:`checks_html` gives the experiment's numbers). tests/test_resolution.py checks that every text has one.
def _verdict(v: bool | None) -> str:
    return VERDICTS[v]



def checks_html(checks: Sequence[Mapping[str, Any]], noise_db: float | None = None,
                explanations: Mapping[str, Mapping[str, str]] = CHECK_EXPLANATIONS,
                evidence: Mapping[str, str] | None = None) -> str:
    """The checks of :func:`ifanp.reproduce.ablation_order_checks` as an HTML table: the claim, its verdict on
    the paper's numbers and on ours (with the numbers), and the explanation of our outcome. With ``noise_db``
    (e.g. twice the largest seed sd), a check of single-seed models that holds by less than that is marked
    "within the seed noise"; a check of models with several seeds says instead for how many combinations of
    one seed per model it holds (within the seed noise when for some but not all).
    ``evidence``: check id -> a sentence of measurements (e.g. :func:`ifanp.reporting_faithful.resolution_evidence`) added to its
    explanation."""
    body = []
    for c in checks:
        seed_note = ""
        key = "abs" if c["id"].startswith("abs_") else c["id"]
        ours = _verdict(c["ours"])
        if c["ours"] is None:
            why = f"not checked: no weights for {', '.join(model_label(m) for m in c['missing'])}"
        else:
            outcome = "holds" if c["ours"] else "fails"
            margins = c.get("margins") or []
            if key == "abs" and not c["ours"] and any(v >= 0 for v in margins):
                outcome = "mixed"
            texts = explanations.get(key, {})
            why = texts.get(outcome, "")
            if outcome == "mixed":  # steeper or flatter than the paper's row, from the trend of the margins
                trend = margins[-1] - margins[0]
                shape = "mixed_steeper" if trend > 0 else "mixed_flatter" if trend < 0 else None
                why = " ".join(t for t in (why, texts.get(shape, ""), texts.get("mixed_end", "")) if t)
            n, k = c.get("seed_combinations", 1), c.get("seed_holds")
            if n > 1:  # decided on the seed means, then again for every choice of one seed per model
                seeds = ", ".join(f"{model_label(m)} {v}" for m, v in c["seeds"].items())
                seed_note = (f"{'holds' if k else 'fails'} for every one of the {n} combinations of one seed per "
                             f"model" if k in (0, n) else
                             f"within the seed noise: holds for {k} of the {n} combinations of one seed per model")
                seed_note = f"the numbers are means over the seeds ({seeds}); {seed_note}"
            elif c["ours"] and noise_db is not None and c["margin"] is not None and c["margin"] < noise_db \
                    and not key.startswith(("abs", "ifnp_flat", "lpa_se_tie")):
                ours += f" (by {c['margin']:.2f} dB, within the seed noise of {noise_db:.2f} dB)"
            if evidence and c["id"] in evidence:
                why = f"{why} {evidence[c['id']]}".strip()
        paper = _verdict(c["paper"]) + (f" ({c['paper_detail']})" if c["paper_detail"] else "")
        ours += f" ({c['ours_detail']})" if c["ours_detail"] else ""
        body.append([c["claim"], paper, ours + (f"; {seed_note}" if seed_note else ""), why])
    return table_html(["claim (at every ratio)", "paper's Table 1", "ours", "why"], body)



def rules_summary(table: Mapping[str, Any], metric: str = "psnr_whole") -> str:
    """One generated line per ratio: the best rule without learning of ``table`` (rows of
    :data:`ifanp.baselines.BASELINES`) and the trained models that it beats on ``metric``; "" without rule rows."""
    rows = table["rows"]
    rules = [r for r in rows if r["model"] in BASELINES]
    learned = [r for r in rows if r["model"] not in BASELINES]
    if not rules or not learned:
        return ""
    lines = []
    for ratio in rows[0]["ratios"]:
        best = max(rules, key=lambda r: r["ratios"][ratio][metric])
        value = best["ratios"][ratio][metric]
        below = [r["label"] for r in learned if r["ratios"][ratio][metric] < value]
        lines.append(f"- {percent(ratio)}: the best rule without learning, {best['label']} ({value:.2f} dB), is ahead of "
                     + (", ".join(below) if below else "none of the trained models") + ".")
    return "\n".join(lines)


def checks_summary(checks: Sequence[Mapping[str, Any]]) -> str:
    """One generated paragraph: how many of the paper's claims hold for our models, which fail, which could
    not be checked, and where our numbers stand against the paper's."""
    order = [c for c in checks if not c["id"].startswith("abs_")]
    absolute = [c for c in checks if c["id"].startswith("abs_") and c["ours"] is not None]
    held = [c["claim"] for c in order if c["ours"] is True]
    failed = [c["claim"] for c in order if c["ours"] is False]
    unknown = [c["claim"] for c in order if c["ours"] is None]
    parts = [f"Of the paper's {len(order)} claims about its ablation, {len(held)} "
             f"{'holds' if len(held) == 1 else 'hold'} for our models"
             + (f", {len(failed)} {'fails' if len(failed) == 1 else 'fail'} ({'; '.join(failed)})" if failed else "")
             + (f" and {len(unknown)} cannot be checked because weights are missing" if unknown else "") + "."]
    seeded = [c for c in order if c["ours"] is not None and c.get("seed_combinations", 1) > 1]
    noisy = [c for c in seeded if 0 < c["seed_holds"] < c["seed_combinations"]]
    if seeded:
        parts.append("Each is decided on the mean over the installed seeds; "
                     + (f"{len(noisy)} of these {len(seeded)} verdicts change with the choice of one seed per model "
                        f"and are within the seed noise ({'; '.join(c['claim'] for c in noisy)})." if noisy else
                        f"none of these {len(seeded)} verdicts changes with the choice of one seed per model."))
    groups = {"at or above the paper's number at every ratio": [], "below it at every ratio": [],
              "above it at some ratios and below at others": []}
    for c in absolute:
        margins = c.get("margins") or [c["margin"]]
        key = ("at or above the paper's number at every ratio" if min(margins) >= 0 else
               "below it at every ratio" if max(margins) < 0 else "above it at some ratios and below at others")
        groups[key].append(model_label(c["id"][4:]))
    said = [f"{', '.join(models)} {'is' if len(models) == 1 else 'are'} {what}"
            for what, models in groups.items() if models]
    if said:
        parts.append("Against the paper's absolute numbers, " + "; ".join(said) + ".")
    return " ".join(parts)



# ---- "Beyond the paper" -------------------------------------------------------------------------------------


def explain_change(option: str, value: Any) -> tuple[str, str] | None:
    """(what it does, why it should help) of setting ``option`` to ``value`` in ifanp-plus, from
    :data:`PLUS_CHANGES` (an entry ``"option=value"`` wins over ``"option"``), or None when unexplained."""
    return PLUS_CHANGES.get(f"{option}={value}") or PLUS_CHANGES.get(option)



def goal_html(goal: Sequence[Mapping[str, Any]], results: Mapping[str, Mapping[str, Mapping[str, float]]],
              ratios: Sequence[str] = ("0.2", "0.4", "0.6"), caption: str | None = None) -> str:
    """The rows of :func:`goal_rows` as an HTML table, one line per (model, ratio), with the missing-pixel
    PSNR from ``results`` beside the whole-image PSNR."""
    body = []
    for g in goal:
        m = g["model"]
        for i, r in enumerate(ratios):
            body.append([model_label(m), percent(r), f"{g['psnr'][i]:.2f}", f"{results[m][r]['psnr_target']:.2f}",
                         f"{g['goal'][i]:g}", "met" if g["met"][i] else f"not met ({g['to_goal'][i]:+.2f})",
                         f"{g['paper'][i]:.2f}", f"{g['to_paper'][i]:+.2f}"])
    return table_html(["model", "context", "PSNR whole (dB)", "PSNR missing pixels (dB)", "goal (dB)", "goal",
                       "paper's IFANP (dB)", "ours − paper"], body, caption=caption)



def goal_summary(goal: Sequence[Mapping[str, Any]]) -> str:
    """One generated sentence per model: at how many ratios it meets the goal and is above the paper."""
    out = []
    for g in goal:
        n, k = sum(g["met"]), len(g["met"])
        verdict = ("meets the goal at every ratio" if n == k else f"meets the goal at {n} of {k} ratios" if n
                   else "meets the goal at no ratio")
        above = sum(d > 0 for d in g["to_paper"])
        out.append(f"**{model_label(g['model'])}** {verdict} and is above the paper's IFANP at {above} of {k} ratios "
                   f"(ours − paper: {min(g['to_paper']):+.2f} to {max(g['to_paper']):+.2f} dB).")
    return " ".join(out) if out else "No model is installed: nothing to compare."



def time_to_quality_html(rows: Sequence[Mapping[str, Any]], level: float, caption: str | None = None) -> str:
    """The installed rows of :func:`time_to_quality` as an HTML table."""
    def f(v, fmt):
        return "—" if v is None else format(v, fmt)

    body = []
    for row in rows:
        if not row["present"]:
            continue
        model = row["name"].split("-", 1)[1]
        reached = (f"{row['cpu_min']:.{2 if row['cpu_min'] < 1 else 1}f} min (step {row['step']:,})"
                   if row["reached"] and row["cpu_min"] is not None
                   else "not reached" if row["evals"] else "no log")
        body.append([model_label(model), f(row["steps"], ","), f(row["total_cpu_min"], ".1f"), f(row["final_psnr40"], ".2f"),
                     reached])
    return table_html(["model", "training steps", "training CPU min", "final PSNR at 40 % (dB)",
                       f"first reached {level:.2f} dB at 40 %"], body, caption=caption)



def time_to_quality_summary(logs: Mapping[str, Sequence[Mapping[str, float]]], level: float,
                            reference: str = "ifanp", challenger: str = "ifanp-plus") -> str:
    """Generated sentences from training logs (model -> eval rows): when each first reached ``level`` at 40 %,
    and, with both ``reference`` and ``challenger`` logged, the challenger's PSNR at the reference's total CPU
    time (the comparison at equal compute)."""
    out = []
    for model, ev in logs.items():
        hit = first_pass(ev, level)
        if not ev:
            out.append(f"{model_label(model)} has no training log.")
        elif hit:
            out.append(f"{model_label(model)} first reached {level:.2f} dB at 40 % after {hit['cpu_s'] / 60:.1f} CPU "
                       f"minutes (step {hit['step']:,}).")
        else:
            out.append(f"{model_label(model)} did not reach {level:.2f} dB at 40 % within its {ev[-1]['cpu_s'] / 60:.1f} "
                       f"CPU minutes (best {max(r['psnr40'] for r in ev):.2f} dB).")
    if logs.get(reference) and logs.get(challenger):
        budget = logs[reference][-1]["cpu_s"]
        at = value_at(logs[challenger], budget)
        if at:
            out.append(f"At the {budget / 60:.1f} CPU minutes that {model_label(reference)} trained in all, "
                       f"{model_label(challenger)} was at {at['psnr40']:.2f} dB against {model_label(reference)}'s final "
                       f"{logs[reference][-1]['psnr40']:.2f} dB: the comparison at equal compute.")
    return " ".join(out) or "No model is installed: no training log to read."



def time_to_goal_summary(row: Mapping[str, Any], evals: Sequence[Mapping[str, float]], level: float,
                         goal_cpu_min: float, reference: Mapping[str, Any] | None = None) -> str:
    """Generated sentences for one model's :func:`ifanp.analysis.time_to_quality` row and its eval rows: when it
    first reached ``level`` at 40 % (CPU and wall minutes, step), from which check on it stayed there, whether
    that meets the goal of at most ``goal_cpu_min`` CPU minutes, and ``reference``'s time (another row) beside it."""
    model = model_label(row["name"].split("-", 1)[1])
    if not row.get("present"):
        return f"{model} is not installed: nothing to compare with the goal."
    if not row["reached"] or row["cpu_min"] is None:
        text = (f"{model} did not reach {level:.2f} dB at 40 % within its {row['total_cpu_min']:.2f} CPU minutes: the "
                f"goal of at most {goal_cpu_min:g} CPU minute{'s' * (goal_cpu_min != 1)} is **not met**.")
    else:
        met = row["cpu_min"] <= goal_cpu_min
        wall = f", {row['wall_min']:.2f} wall minutes" if row.get("wall_min") is not None else ""
        text = (f"{model} first reached {level:.2f} dB at 40 % after **{row['cpu_min']:.2f} CPU minutes** of training "
                f"(step {row['step']:,}{wall}): the goal of at most {goal_cpu_min:g} CPU "
                f"minute{'s' * (goal_cpu_min != 1)} is **{'met' if met else 'not met'}**.")
        stay = settled_pass(evals, level)
        if stay is not None and stay["step"] != row["step"]:
            text += (f" It dipped below again and stayed at or above {level:.2f} dB from step {stay['step']:,} "
                     f"({stay['cpu_s'] / 60:.2f} CPU minutes) on.")
        elif stay is not None:
            text += " It stayed at or above it at every later check."
    if reference is not None and reference.get("present") and reference.get("reached"):
        text += (f" {model_label(reference['name'].split('-', 1)[1])} took {reference['cpu_min']:.2f} CPU minutes "
                 f"(step {reference['step']:,}).")
    if evals:
        text += (f" {model} ended at {evals[-1]['psnr40']:.2f} dB after {evals[-1]['cpu_s'] / 60:.2f} CPU minutes "
                 f"({evals[-1]['step']:,} steps).")
    return text


def structured_html(struct: Mapping[str, Mapping[str, Mapping[str, float]]], caption: str | None = None) -> str:
    """The result of :func:`structured_metrics` as an HTML table: one row per mask kind, the fraction observed,
    and each model's whole-image and missing-pixel PSNR."""
    kinds = list(struct)
    models = list(struct[kinds[0]]) if kinds else []
    header = ["mask", "observed"] + [f"{model_label(m)} {w} (dB)" for m in models for w in ("whole", "missing")]
    body = [[k, f"{next(iter(v.values()))['observed']:.0%}" if v else "—"]
            + [f"{v[m][key]:.2f}" for m in models for key in ("psnr_whole", "psnr_target")] for k, v in struct.items()]
    return table_html(header, body, caption=caption)



def structured_summary(struct: Mapping[str, Mapping[str, Mapping[str, float]]], reference: str = "ifanp",
                       challenger: str = "ifanp-plus") -> str:
    """A generated sentence: under how many mask kinds the challenger beats the reference on the missing pixels,
    and the range of the difference ("" when one of them is missing)."""
    kinds = [k for k, v in struct.items() if reference in v and challenger in v]
    if not kinds:
        return ""
    gain = {k: struct[k][challenger]["psnr_target"] - struct[k][reference]["psnr_target"] for k in kinds}
    better = sum(g > 0 for g in gain.values())
    lo, hi = min(gain, key=gain.get), max(gain, key=gain.get)
    return (f"On the missing pixels, {model_label(challenger)} is better than {model_label(reference)} under {better} of the "
            f"{len(kinds)} mask kinds; the difference ranges from {gain[lo]:+.2f} dB ({lo}) to {gain[hi]:+.2f} dB "
            f"({hi}).")



def decoder_sigma(model) -> str:
    """The decoder's sigma of Eq. 1 in words: "fixed, 0.100", "learned, 0.043" or "per pixel"."""
    kind = model.cfg["sigma"]
    if kind == "fixed":
        return f"fixed, {model.cfg['sigma_value']:.3f}"
    if kind == "learned":
        return f"learned, {model.cfg['sigma_min'] + model.log_sigma.exp().item():.3f}"
    return "per pixel"



#: What each measure of :func:`ifanp.analysis.head_to_head` is, in the table's words, and which claim it tests.
HEAD_TO_HEAD_NAMES: dict[str, tuple[str, str]] = {
    "psnr_target_random": ("missing-pixel PSNR, 40 % random pixels (dB)", "quality"),
    "psnr_target_top": ("missing-pixel PSNR, top half observed (dB)", "any context set"),
    "psnr_target_centre": ("missing-pixel PSNR, centre box hidden (dB)", "any context set"),
    "ece_points": ("calibration error of the predictive, 40 % (points)", "calibrated uncertainty"),
    "coverage_68": ("coverage of the central 68.3 % interval (%)", "calibrated uncertainty"),
    "parameters": ("parameters", "cost"),
    "train_cpu_min": ("training CPU minutes of the shipped weights", "cost"),
    "ms_per_image": ("ms per completion (batch of 100)", "cost"),
}


def _fmt_h2h(measure: str, v: float | None) -> str:
    if v is None:
        return "—"
    if measure == "parameters":
        return f"{v:,.0f}"
    return f"{v:.2f}" if measure != "ms_per_image" else f"{v:.3f}"


def head_to_head_html(results: Mapping[str, Mapping[str, float | None]], caption: str | None = None) -> str:
    """The measures of :func:`ifanp.analysis.head_to_head` as a table: one row per measure, one column per
    model, and the claim it tests and which model is ahead."""
    labels = list(results)
    body = []
    for measure, (name, claim) in HEAD_TO_HEAD_NAMES.items():
        winner = head_to_head_winner(results, measure)
        body.append([name, claim, *[_fmt_h2h(measure, results[k][measure]) for k in labels], winner or "—"])
    return table_html(["measure", "claim", *labels, "ahead"], body, caption)


def head_to_head_summary(results: Mapping[str, Mapping[str, float | None]]) -> str:
    """One generated sentence per claim: which model is ahead on each of its measures."""
    claims: dict[str, list[str]] = {}
    for measure, (name, claim) in HEAD_TO_HEAD_NAMES.items():
        winner = head_to_head_winner(results, measure)
        claims.setdefault(claim, []).append(f"{winner} on the {name.split(' (')[0]}" if winner
                                            else f"neither on the {name.split(' (')[0]} (not measured or equal)")
    return "\n".join(f"- **{claim}**: ahead, " + "; ".join(parts) + "." for claim, parts in claims.items())


def calibration_summary(ks: Sequence[float], observed: Mapping[str, Sequence[float]], k: float = 2.0,
                        tolerance: float = 0.02) -> str:
    """A generated sentence per model: the fraction inside mean +- k sigma against erf(k / sqrt 2), called
    about right within ``tolerance``, else too wide (under-confident) or too narrow (over-confident)."""
    nominal = math.erf(k / math.sqrt(2))
    out = []
    for model, obs in observed.items():
        v = obs[list(ks).index(k)]
        tone = ("too wide (under-confident)" if v > nominal + tolerance else
                "too narrow (over-confident)" if v < nominal - tolerance else "about right")
        out.append(f"{model_label(model)}: mean ± {k:g}σ holds {v:.1%} of the missing pixels (calibrated: "
                   f"{nominal:.1%}), {tone}.")
    return " ".join(out) or "No model is installed: nothing to calibrate."


def transfer_summary(cmp: Mapping[str, Any], ref_name: str = "MNIST", other_name: str = "Fashion-MNIST",
                     budgets: Mapping[str, tuple[int | None, int | None]] | None = None) -> str:
    """What :func:`ifanp.transfer.compare_orders` found, as Markdown: whether the shared models keep their
    order at every ratio (else which pairs swap, by how much), which model is best on each dataset, how far
    the second dataset's numbers lie from the first's, and the margin of the best trained model over the
    best rule without learning on each. ``budgets`` (:func:`ifanp.transfer.budget_differences`): the models
    trained for a different number of steps on the two datasets, named so that their moves are read as such."""
    models, rs = cmp["models"], cmp["ratios"]
    if len(models) < 2 or not rs:
        return f"Fewer than two models have a row in both the {ref_name} and the {other_name} table."
    out = []
    if cmp["same_everywhere"]:
        order = " > ".join(model_label(m) for m in cmp["per_ratio"][rs[0]]["ref_order"])
        out.append(f"The {len(models)} models of both tables keep their order at every context ratio: {order}.")
    else:
        parts = []
        for r in rs:
            p = cmp["per_ratio"][r]
            if p["swaps"]:
                swaps = "; ".join(
                    f"{model_label(s['above_in_ref'])} minus {model_label(s['below_in_ref'])}: {s['ref_db']:+.2f} dB on "
                    f"{ref_name}, {s['other_db']:+.2f} dB on {other_name}" for s in p["swaps"])
                parts.append(f"at {percent(r)} (Kendall's tau {p['tau']:.2f}; {swaps})")
        same = [percent(r) for r in rs if cmp["per_ratio"][r]["same"]]
        out.append(f"The order of the {len(models)} models of both tables changes " + " and ".join(parts) + "."
                   + (f" At {', '.join(same)} it is the same." if same else ""))
    best = cmp["best"]
    if all(b["ref"] == b["other"] for b in best.values()):
        winners = {}
        for r, b in best.items():
            winners.setdefault(b["ref"], []).append(percent(r))
        where = "; ".join(f"{model_label(m)} at {', '.join(at)}" for m, at in winners.items())
        out.append(f"The best of them is the same on both datasets at each ratio: {where}.")
    else:
        out.append("The best of them: " + "; ".join(
            f"{percent(r)}: {model_label(b['ref'])} on {ref_name}, {model_label(b['other'])} on {other_name}"
            for r, b in best.items()) + ".")
    shift = cmp["mean_shift"]
    out.append(f"On average over these models and ratios, {other_name}'s whole-image PSNR is {abs(shift):.1f} dB "
               f"{'lower' if shift < 0 else 'higher'} than {ref_name}'s.")
    margins = cmp["learned_margin"]
    if all(v is not None for t in margins.values() for v in t.values()):
        def side(t):
            return " / ".join(f"{v:+.2f}" for v in margins[t].values())
        out.append(f"The best trained model minus the best rule without learning, at {' / '.join(map(percent, rs))}: "
                   f"{side('ref')} dB on {ref_name}, {side('other')} dB on {other_name}.")
    if budgets:
        def n(v):
            return "?" if v is None else f"{v:,}"
        which = "; ".join(f"{model_label(m)}: {n(a)} steps on {ref_name}, {n(b)} on {other_name}"
                          for m, (a, b) in budgets.items())
        out.append(f"Not a like-for-like comparison for the models trained for different budgets ({which}): "
                   "their moves may come from the budget, not from the data.")
    return " ".join(out)
