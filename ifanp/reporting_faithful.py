"""The generated sentences about the faithful configurations (issue 12): each one's row against the paper's
(:func:`faithful_summary`), whether its learning curves still rose when the budget ran out (:func:`curve_tails`),
the measured evidence for the "LPA on top of GCA" check (:func:`resolution_evidence`, :func:`faithful_evidence`),
and what a longer budget bought (:func:`budget_groups` sorts the labelled curves of
``ifanp/experiments/mnist-faithful-budget.json``; :func:`budget_summary`, :func:`budget_seed_note`,
:func:`budget_versus`).

Like :mod:`ifanp.reporting`, nothing here evaluates a model or reads a file: the sentences are chosen by the
numbers they are given, and the tests check those choices.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .reporting import model_label, percent
from .reproduce import FAITHFUL, PAPER_TABLE1, seed_spread


def resolution_evidence(curves: Mapping[str, Any]) -> str:
    """The measured sentence of the full-resolution experiment (``ifanp/experiments/mnist-resolution.json``,
    ``tools/resolution_experiment.py``) for the "LPA on top of GCA" check: at the step where every
    full-resolution run has a value, IFANP at 28x28 against IFANP at 14x14 (mean over its seeds) and
    IFANP(GCA) at 14x14 (and at 28x28 when that run exists), and what that says about the hypothesis."""
    step = curves["compare_step"]

    def at(model: str, down: int) -> list[float]:
        return [e["psnr40"] for r in curves["runs"] if r["model"] == model and r["down"] == down
                for e in r["evals"] if e["step"] == step]

    full, half, gca_half, gca_full = at("ifanp", 1), at("ifanp", 2), at("ifanp-gca", 2), at("ifanp-gca", 1)
    if not full or not half or not gca_half:
        return ""
    mean_half = sum(half) / len(half)
    spread = (f" ± {(sum((v - mean_half) ** 2 for v in half) / (len(half) - 1)) ** 0.5:.2f} dB over {len(half)} seeds"
              if len(half) > 1 else " (one seed)")
    text = (f"Measured (python tools/resolution_experiment.py, recorded in ifanp/experiments/mnist-resolution.json): "
            f"at step {step:,} of the "
            f"same 3,000-step schedule, IFANP with every map at 28x28 reaches {full[0]:.2f} dB at 40 % context "
            f"(the first 1,000 evaluation images), IFANP at 14x14 {mean_half:.2f} dB{spread}, IFANP(GCA) at 14x14 "
            f"{gca_half[0]:.2f} dB")
    text += f" and at 28x28 {gca_full[0]:.2f} dB." if gca_full else "."
    gain = full[0] - mean_half
    if gca_full:
        verdict = ("At full resolution LPA on top of GCA helps" if full[0] > gca_full[0] else
                   "At full resolution LPA on top of GCA still does not help")
        text += f" {verdict} at this step ({full[0] - gca_full[0]:+.2f} dB), "
        text += ("which supports the hypothesis." if full[0] > gca_full[0] else "which speaks against the hypothesis.")
    elif full[0] >= gca_half[0]:
        text += (f" Full resolution moves IFANP by {gain:+.2f} dB and past IFANP(GCA) at 14x14, which supports the "
                 "hypothesis; IFANP(GCA) at 28x28 (not run yet) would make it a clean test.")
    else:
        text += (f" At this step full resolution puts IFANP {abs(gain):.2f} dB {'above' if gain > 0 else 'below'} its "
                 "14x14 runs and still below IFANP(GCA) at 14x14, so the 14x14 resolution does not explain the gap "
                 "at this step; IFANP(GCA) at 28x28 is not run yet.")
    return text + " The runs stop early for the CPU's sake; later steps may differ."


def faithful_evidence(table: Mapping[str, Any], ratio: str = "0.4") -> str:
    """The measured sentence that the faithful rows add to the "LPA on top of GCA" check: IFANP faithful against
    IFANP(GCA) faithful (every map at 28x28, their whole budget; means over their seeds) at ``ratio``; "" when
    either row is missing."""
    rows = {r["model"]: r for r in table["rows"]}
    full, gca = rows.get("ifanp-full"), rows.get("ifanp-gca-full")
    if full is None or gca is None or ratio not in full["ratios"]:
        return ""
    a, b = seed_spread(full)[ratio], seed_spread(gca)[ratio]

    def seeds(s):
        return f"{s['n']} seeds" if s["n"] > 1 else "1 seed"

    helps = a["mean"] > b["mean"]
    return (f"Measured on the faithful rows (every map at 28x28, their whole training budget): at {percent(ratio)} "
            f"context {full['label']} reaches {a['mean']:.2f} dB ({seeds(a)}) and {gca['label']} {b['mean']:.2f} dB "
            f"({seeds(b)}): at full resolution LPA on top of GCA {'helps' if helps else 'does not help'} "
            f"({a['mean'] - b['mean']:+.2f} dB), which "
            f"{'supports' if helps else 'speaks against'} the hypothesis that the 14x14 resolution is the cause.")


def faithful_summary(table: Mapping[str, Any], tolerance_db: float = 0.5) -> str:
    """One generated line per faithful configuration of ``table`` (:data:`ifanp.reproduce.FAITHFUL`): its
    whole-image PSNR (the mean over its seeds) beside the paper's row of the model it configures, and whether it
    is at or above the paper's number minus ``tolerance_db`` at every ratio (issue 12's goal)."""
    lines = []
    for row in table["rows"]:
        base = FAITHFUL.get(row["model"])
        if base is None or base not in PAPER_TABLE1:
            continue
        ratios = list(row["ratios"])
        spread = seed_spread(row)
        ours = [spread[r]["mean"] for r in ratios]
        paper = list(PAPER_TABLE1[base]["psnr"])[: len(ratios)]
        gaps = [o - p for o, p in zip(ours, paper)]
        seeds = len(row.get("seeds", [0]))
        verdict = (f"at or above the paper's number minus {tolerance_db:g} dB at every ratio"
                   if min(gaps) >= -tolerance_db else
                   f"more than {tolerance_db:g} dB below the paper's number at "
                   + ", ".join(percent(r) for r, g in zip(ratios, gaps) if g < -tolerance_db))
        lines.append(f"- {row['label']} ({seeds} seed{'s' if seeds > 1 else ''}): "
                     + " / ".join(f"{o:.2f}" for o in ours) + " dB against the paper's "
                     + " / ".join(f"{p:.2f}" for p in paper) + f" at {' / '.join(percent(r) for r in ratios)}; "
                     + verdict + ".")
    return "\n".join(lines)


def curve_tails(curves: Mapping[str, Sequence[Sequence[Mapping[str, float]]]], last: int = 3) -> str:
    """One generated line per model of ``curves`` (model -> one list of eval rows per seed, as
    :func:`ifanp.plotting.charts.plot_eval_curves` takes them): the held-out PSNR at 40 % at its last check
    (mean over the seeds) and its change over each of the last ``last`` checks, and whether every one of those
    changes is a gain (then the model was still improving when its budget ran out)."""
    lines = []
    for model, seeds in curves.items():
        runs = [[r["psnr40"] for r in rows if r.get("psnr40") is not None] for rows in seeds]
        runs = [r for r in runs if len(r) > last]
        if not runs:
            continue
        n = min(len(r) for r in runs)
        mean = [sum(r[i] for r in runs) / len(runs) for i in range(n)]
        gains = [b - a for a, b in zip(mean[-last - 1:], mean[-last:])]
        steps = [r["step"] for r in seeds[0] if r.get("psnr40") is not None]
        every = steps[-1] - steps[-2] if len(steps) > 1 else None
        lines.append(f"- {model_label(model)}: {mean[-1]:.2f} dB at its last check (mean over {len(runs)} "
                     f"seed{'s' if len(runs) > 1 else ''}); over its last {last} checks"
                     + (f" ({every:,} steps apart)" if every else "") + ": "
                     + ", ".join(f"{g:+.2f}" for g in gains) + " dB, "
                     + ("still rising when the budget ran out." if all(g > 0 for g in gains) else
                        "not rising at every check."))
    return "\n".join(lines)


def budget_summary(runs: Mapping[str, Sequence[Mapping[str, float]]], paper: Sequence[float],
                   ratios: Sequence[str] = ("0.2", "0.4", "0.6"), margin_db: float = 0.5) -> str:
    """Generated lines on one model trained under several budgets (as
    :func:`ifanp.plotting.charts.plot_budget_curves` takes them): each run's PSNR at its last checkpoint; then,
    comparing the longest run with the shortest, the gain from the extra steps at each ratio and, at each ratio
    where the longest run is still below the goal (``paper - margin_db``), the budget a log-linear extrapolation
    of those two points would need (labelled as an extrapolation), or that more steps did not help there."""
    finals = {label: f for label, rows in runs.items() if (f := _finals(rows, ratios)) is not None}
    if not finals:
        return ""
    lines = [f"- {label}: " + " / ".join(f"{r[k]:.2f}" for k in ratios) + f" dB at step {r['step']:,} "
             f"({' / '.join(percent(k) for k in ratios)})." for label, r in finals.items()]
    short = min(finals.values(), key=lambda r: r["step"])
    long = max(finals.values(), key=lambda r: r["step"])
    if long["step"] <= short["step"]:
        return "\n".join(lines)
    factor = long["step"] / short["step"]
    lines.append(f"- From {short['step']:,} to {long['step']:,} steps ({factor:g} times the budget): "
                 + " / ".join(f"{long[k] - short[k]:+.2f}" for k in ratios) + " dB.")
    for k, level in zip(ratios, paper):
        goal = level - margin_db
        if long[k] >= goal:
            lines.append(f"- At {percent(k)} the {long['step']:,}-step run reaches the goal, the paper's {level:.2f} dB "
                         f"minus {margin_db:g} ({long[k]:.2f} against {goal:.2f} dB).")
            continue
        per_doubling = (long[k] - short[k]) / math.log2(factor)
        if per_doubling <= 0:
            lines.append(f"- At {percent(k)} the longer run is no better ({long[k]:.2f} dB, the goal {goal:.2f}): "
                         "more steps of this schedule did not close the gap.")
            continue
        need = long["step"] * 2 ** ((goal - long[k]) / per_doubling)
        lines.append(f"- At {percent(k)} the {long['step']:,}-step run is {goal - long[k]:.2f} dB below the goal "
                     f"({goal:.2f} dB); at the measured {per_doubling:+.2f} dB per doubling of the budget it would "
                     f"need about {_about(need):,} steps, an extrapolation from two budgets, not a measurement.")
    return "\n".join(lines)


def _about(n: float) -> int:
    """``n`` rounded to two significant figures (an extrapolated budget has no more)."""
    if n <= 0:
        return 0
    return int(round(n, 1 - math.floor(math.log10(n))))


def _finals(rows: Sequence[Mapping[str, float]], ratios: Sequence[str]) -> Mapping[str, float] | None:
    done = [r for r in rows if all(r.get(k) is not None for k in ratios)]
    return max(done, key=lambda r: r["step"]) if done else None


def budget_groups(runs: Mapping[str, Mapping[str, Any]], recipe_steps: int) -> dict[tuple[str, int], dict[str, list]]:
    """The labelled curves of ``ifanp/experiments/mnist-faithful-budget.json`` (``runs``: any key -> a run with its
    ``psnr_whole`` rows, as ``tools/eval_checkpoints.py --label`` stores them) grouped by (model, seed), each
    curve under a label made from its own rows: the model, its last step (``(the recipe)`` where that is
    ``recipe_steps``) and its seed, so that the labels say what was measured whatever the keys are."""
    groups: dict[tuple[str, int], dict[str, list]] = {}
    for run in runs.values():
        rows = sorted(run.get("psnr_whole", []), key=lambda r: r["step"])
        if not rows:
            continue
        model, seed, last = rows[0]["model"], int(rows[0]["seed"]), rows[-1]["step"]
        label = f"{model_label(model)}, {last:,} steps{' (the recipe)' if last == recipe_steps else ''}, seed {seed}"
        groups.setdefault((model, seed), {})[label] = rows
    return {k: dict(sorted(g.items(), key=lambda kv: kv[1][-1]["step"])) for k, g in sorted(groups.items())}


def budget_seed_note(groups: Mapping[Any, Mapping[str, Sequence[Mapping[str, float]]]],
                     per_seed: Mapping[Any, Mapping[str, float]], paper: Sequence[float],
                     ratios: Sequence[str] = ("0.2", "0.4", "0.6"), margin_db: float = 0.5) -> str:
    """Generated lines that put the budget runs among the shipped seeds of the short recipe.

    ``groups``: one entry per seed that ran under several budgets (label -> rows with ``step``, ``seed`` and
    one value per ratio, as :func:`budget_groups` gives them for one model); ``per_seed`` maps each shipped
    seed to its whole-image PSNR per ratio (the chapter's table). For each ratio at which the mean over the
    shipped seeds is below the goal: every seed's value, which seeds the budget runs are, the mean's distance
    to the goal and, at the budget runs' mean gain per doubling of the steps, the steps the mean would need
    (an extrapolation that assumes every seed gains as those did)."""
    seeds = {str(s): v for s, v in per_seed.items()}
    pairs = {}
    for runs in groups.values():
        finals = [f for f in (_finals(rows, ratios) for rows in runs.values()) if f is not None]
        if len(finals) < 2:
            continue
        short, long = min(finals, key=lambda r: r["step"]), max(finals, key=lambda r: r["step"])
        if long["step"] > short["step"] and str(long.get("seed")) == str(short.get("seed")):
            pairs[str(long["seed"])] = (short, long)
    if not pairs or len(seeds) < 2 or not set(pairs) <= set(seeds):
        return ""
    measured = ", ".join(sorted(pairs))
    lines = []
    for k, level in zip(ratios, paper):
        goal = level - margin_db
        values = {s: v[k] for s, v in seeds.items()}
        mean = sum(values.values()) / len(values)
        if mean >= goal:
            continue
        order = sorted(values, key=values.get, reverse=True)
        listed = ", ".join(f"seed {s}: {values[s]:.2f}" for s in order)
        text = (f"- At {percent(k)} the short recipe's {len(values)} shipped seeds reach {listed} dB on the images of "
                f"the table above (the budget runs are seed{'s' if len(pairs) > 1 else ''} {measured}); their mean, "
                f"{mean:.2f} dB, is {goal - mean:.2f} dB below the goal.")
        gains = [(lg[k] - sh[k]) / math.log2(lg["step"] / sh["step"]) for sh, lg in pairs.values()]
        per_doubling = sum(gains) / len(gains)
        steps = {sh["step"] for sh, _ in pairs.values()}
        if per_doubling > 0 and len(steps) == 1:
            need = steps.pop() * 2 ** ((goal - mean) / per_doubling)
            text += (f" At the {per_doubling:+.2f} dB per doubling of the steps that the budget runs gained"
                     + (" (their mean)" if len(pairs) > 1 else "")
                     + f", the mean would need about {_about(need):,} steps: an extrapolation from "
                     + (f"{len(pairs)} seeds" if len(pairs) > 1 else "one seed") + ", not a measurement.")
        lines.append(text)
    return "\n".join(lines)


def budget_versus(groups: Mapping[tuple[str, int], Mapping[str, Sequence[Mapping[str, float]]]], first: str,
                  second: str, ratios: Sequence[str] = ("0.2", "0.4", "0.6")) -> str:
    """Generated lines comparing two models of :func:`budget_groups` at every budget both ran with the same seed
    (their last checkpoints): ``first`` minus ``second`` per ratio, and at the longest such budget whether
    ``first`` is ahead at every ratio (the paper's claim when ``first`` is its full model)."""
    lines, longest = [], None
    for (model, seed), runs in groups.items():
        if model != first or (second, seed) not in groups:
            continue
        other = {f["step"]: f for f in (_finals(r, ratios) for r in groups[(second, seed)].values()) if f}
        for f in (_finals(r, ratios) for r in runs.values()):
            if f is None or f["step"] not in other:
                continue
            o = other[f["step"]]
            diff = [f[k] - o[k] for k in ratios]
            lines.append(f"- Seed {seed}, {f['step']:,} steps: {model_label(first)} minus {model_label(second)}, "
                         + " / ".join(f"{d:+.2f}" for d in diff) + f" dB ({' / '.join(percent(k) for k in ratios)}).")
            if longest is None or f["step"] > longest[0]:
                longest = (f["step"], seed, diff)
    if longest is None:
        return ""
    step, seed, diff = longest
    ahead = sum(d > 0 for d in diff)
    lines.append(f"- At {step:,} steps (seed {seed}) {model_label(first)} is ahead of {model_label(second)} at "
                 + ("every ratio." if ahead == len(diff) else f"{ahead} of the {len(diff)} ratios."))
    return "\n".join(lines)
