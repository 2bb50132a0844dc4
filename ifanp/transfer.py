"""Whether the conclusions drawn on one dataset carry over to another: two tables of ``python -m ifanp
reproduce`` (``results/<dataset>/table.json``), compared model by model.

* :func:`load_table` reads a committed table (None where it is not there, e.g. in an installed package),
  :func:`merge_tables` joins tables of one dataset (MNIST's models and its rules without learning are in two);
* :func:`psnr_rows` gives each model's metric per context ratio;
* :func:`compare_orders` compares the order of the models shared by two tables at every ratio: the pairs
  that swap, Kendall's tau, the best model of each table, how much lower or higher the second table's
  numbers are, and the margin of the best trained model over the best rule without learning;
* :func:`budget_differences` names the models trained for a different number of steps in the two tables.

The sentences that report the comparison are written by :func:`ifanp.reporting.transfer_summary`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from .baselines import BASELINES
from .pretrained import registry

#: The repository's results folder (present in a checkout, not in an installed wheel).
RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"


def load_table(name: str, results: str | Path | None = None) -> dict[str, Any] | None:
    """``<results>/<name>/table.json`` (``results`` defaults to :data:`RESULTS_DIR`), or None when missing."""
    path = Path(results if results is not None else RESULTS_DIR) / name / "table.json"
    return json.loads(path.read_text()) if path.is_file() else None


def merge_tables(*tables: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The rows of several tables of the same dataset as one table (the first table's row wins for a model
    in several); None when no table is given. ValueError for tables of different datasets."""
    tables = [t for t in tables if t is not None]
    if not tables:
        return None
    datasets = {t["dataset"] for t in tables}
    if len(datasets) > 1:
        raise ValueError(f"merge_tables: tables of different datasets {sorted(datasets)}")
    rows, seen = [], set()
    for t in tables:
        for row in t["rows"]:
            if row["model"] not in seen:
                rows.append(row)
                seen.add(row["model"])
    return {**tables[0], "rows": rows}


def psnr_rows(table: Mapping[str, Any], metric: str = "psnr_whole",
              models: Sequence[str] | None = None) -> dict[str, list[float]]:
    """model -> the metric at each ratio of the table (in the table's order, or that of ``models``)."""
    by_model = {row["model"]: row for row in table["rows"]}
    names = [m for m in (models if models is not None else by_model) if m in by_model]
    return {m: [by_model[m]["ratios"][r][metric] for r in ratios(table)] for m in names}


def ratios(table: Mapping[str, Any]) -> list[str]:
    """The context ratios of a table's rows ("0.2", ...)."""
    return list(table["rows"][0]["ratios"]) if table["rows"] else []


def is_rule(model: str) -> bool:
    """Whether ``model`` is a completion rule without learning (:data:`ifanp.baselines.BASELINES`)."""
    return model in BASELINES


def _order(values: Mapping[str, Sequence[float]], i: int) -> list[str]:
    return sorted(values, key=lambda m: -values[m][i])


def compare_orders(ref: Mapping[str, Any], other: Mapping[str, Any], metric: str = "psnr_whole") -> dict[str, Any]:
    """Compare the models that ``ref`` and ``other`` share (higher ``metric`` is better) at every shared ratio.

    Returns ``models`` (shared, in ``ref``'s order), ``ratios``, ``per_ratio`` (ratio -> ``ref_order`` and
    ``other_order``, best first; ``same`` (the two orders are equal); ``tau`` (Kendall's tau between them, 1 =
    same order); ``swaps``: the pairs (a, b) with a above b in ``ref`` and below it in ``other``, with the two
    differences in dB), ``same_everywhere``, ``best`` (ratio -> the best model of each table), ``shift``
    (model -> other - ref per ratio) and ``mean_shift`` (over models and ratios), and ``learned_margin``
    (table -> ratio -> the best trained model's value minus the best rule's, None without both kinds)."""
    rs = [r for r in ratios(ref) if r in ratios(other)]
    a_all, b_all = psnr_rows(ref, metric), psnr_rows(other, metric)
    models = [m for m in a_all if m in b_all]
    ia, ib = [ratios(ref).index(r) for r in rs], [ratios(other).index(r) for r in rs]
    a = {m: [a_all[m][i] for i in ia] for m in models}
    b = {m: [b_all[m][i] for i in ib] for m in models}
    per_ratio = {}
    for k, r in enumerate(rs):
        pairs = list(combinations(models, 2))
        swaps, concordant = [], 0
        for m1, m2 in pairs:
            da, db = a[m1][k] - a[m2][k], b[m1][k] - b[m2][k]
            if da * db > 0:
                concordant += 1
            elif da * db < 0:
                hi, lo = (m1, m2) if da > 0 else (m2, m1)
                swaps.append({"above_in_ref": hi, "below_in_ref": lo, "ref_db": abs(da), "other_db": -abs(db)})
        tau = (concordant - len(swaps)) / len(pairs) if pairs else None
        per_ratio[r] = {"ref_order": _order(a, k), "other_order": _order(b, k), "swaps": swaps, "tau": tau,
                        "same": _order(a, k) == _order(b, k)}
    shift = {m: [b[m][k] - a[m][k] for k in range(len(rs))] for m in models}
    flat = [v for vs in shift.values() for v in vs]

    def margin(values: Mapping[str, Sequence[float]], k: int) -> float | None:
        learned = [v[k] for m, v in values.items() if not is_rule(m)]
        rules = [v[k] for m, v in values.items() if is_rule(m)]
        return max(learned) - max(rules) if learned and rules else None

    return {
        "models": models, "ratios": rs, "per_ratio": per_ratio,
        "same_everywhere": bool(models) and all(p["same"] for p in per_ratio.values()),
        "best": {r: {"ref": per_ratio[r]["ref_order"][0], "other": per_ratio[r]["other_order"][0]}
                 for r in rs if models},
        "shift": shift, "mean_shift": sum(flat) / len(flat) if flat else None,
        "learned_margin": {"ref": {r: margin(a, k) for k, r in enumerate(rs)},
                           "other": {r: margin(b, k) for k, r in enumerate(rs)}},
    }


def budget_differences(ref: Mapping[str, Any], other: Mapping[str, Any],
                       reg: Mapping[str, Any] | None = None) -> dict[str, tuple[int | None, int | None]]:
    """The trained models of both tables whose training steps differ: model -> (steps in ``ref``, steps in
    ``other``), read from the registry entry each row was evaluated from (its ``source``)."""
    reg = registry() if reg is None else reg

    def steps(table):
        return {row["model"]: reg.get(str(row.get("source")), {}).get("steps") for row in table["rows"]
                if not is_rule(row["model"])}

    a, b = steps(ref), steps(other)
    return {m: (a[m], b[m]) for m in a if m in b and a[m] != b[m]}
