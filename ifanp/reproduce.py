"""The paper's Table 1, Fig. 8 and Fig. 9 from our models: ``python -m ifanp reproduce --dataset mnist``.

Evaluates the completion rules without learning of :mod:`ifanp.baselines` (mean image, normalised
convolution, GP regression on pixel coordinates; each with the context pasted back and without), then VAE,
NP, IFNP, IFANP(LPA), IFANP(SENet), IFANP(GCA), IFANP (and our IFANP+) from the shipped weights (or from run folders given with ``--run NAME=FOLDER``, or after training them with
``--train``) and writes, into ``--out``:

* ``table.json`` / ``table.md`` — our whole-image PSNR and KL at 20/40/60 % beside the paper's Table 1,
  plus the metrics the paper lacks (target-only PSNR, NLL), the spread over seeds where several seeds
  are shipped, and the protocol differences;
* ``fig8.json`` — training MSE per epoch of each model (from its training log);
* ``fig9.json`` — MSE at 20/40/60 % context of each model.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path
from typing import Any

from . import baselines as bl
from .data.splits import DATASETS, load_eval_images, load_train_images
from .evaluate import evaluate, markdown_table, resolve_model
from .models import model_names
from .pretrained import available, pretrained_name, registry, sha256_of
from .runlog import read_log
from .train import TrainConfig, train

#: Table 1 of the paper (SPEC section 7), whole-image PSNR (dB) and KL at 20/40/60 % context.
#: The dataset of Table 1 is not named in the paper; the LPA/SENet rows may be swapped (SPEC section 9).
PAPER_TABLE1: dict[str, dict[str, tuple[float, float, float]]] = {
    "ifnp": {"psnr": (15.421, 15.447, 15.525), "kl": (0.006851, 0.006800, 0.006808)},
    "ifanp-lpa": {"psnr": (15.939, 16.059, 16.236), "kl": (0.004172, 0.004119, 0.004143)},
    "ifanp-se": {"psnr": (16.186, 16.231, 16.258), "kl": (0.000223, 0.000197, 0.000182)},
    "ifanp-gca": {"psnr": (18.637, 18.959, 19.039), "kl": (0.000057, 0.000027, 0.000024)},
    "ifanp": {"psnr": (19.391, 19.862, 20.138), "kl": (0.000037, 0.000012, 0.000010)},
}

#: Display names in the paper's notation.
LABELS = {
    "vae": "VAE", "np": "NP", "anp": "ANP", "cnp": "CNP", "ifnp": "IFNP", "ifanp-lpa": "IFANP(LPA)",
    "ifanp-se": "IFANP(SENet)", "ifanp-gca": "IFANP(GCA)", "ifanp": "IFANP", "ifanp-plus": "IFANP+ (ours)",
    "ifanp-fast": "IFANP-fast (ours)", **bl.LABELS,
}

#: The rows of the reproduction, in the paper's order, then ours.
TABLE_MODELS = ("vae", "np", "ifnp", "ifanp-lpa", "ifanp-se", "ifanp-gca", "ifanp", "ifanp-plus")

#: The faithful configurations of the ablation (``ifanp.models.grid.VARIANTS``, names ending in ``-full``: every map
#: at 28x28, ConvEncoder1 reading the context's locations, SPEC 4.2's local pooling window), each compared with
#: the paper's row of the model it configures.
FAITHFUL: dict[str, str] = {f"{m}-full": m for m in ("ifnp", "ifanp-lpa", "ifanp-se", "ifanp-gca", "ifanp")}
LABELS.update({f: f"{LABELS[m]} faithful" for f, m in FAITHFUL.items()})

#: The rows of ``python -m ifanp reproduce``: the completion rules without learning (:mod:`ifanp.baselines`),
#: then the models, then the faithful configurations. ``reproduce()`` adds a baseline row wherever its name is
#: in ``models``.
ALL_ROWS = (*bl.BASELINES, *TABLE_MODELS, *FAITHFUL)

#: The GP baseline is evaluated on the first this many evaluation images (one batched Cholesky of the
#: context per 50 images; the whole subset would take about an hour on one CPU core).
GP_IMAGES = 1000

#: The five models of the paper's ablation (Table 1, Fig. 8-9), in its order.
ABLATION = ("ifnp", "ifanp-lpa", "ifanp-se", "ifanp-gca", "ifanp")

#: The protocol differences that do not depend on the weights; :func:`protocol_differences` puts the training
#: budget, read from the registry or the run folders, in front of them.
PROTOCOL_DIFFERENCES = [
    ("Widths of the shipped ablation weights: c = 64, d_z = 64, GCA's d_k = 64 and a 32-channel full-resolution "
     "stem where the SPEC proposes c = d_z = d_k = 128 and a 64-channel first layer (SPEC 4.3, 8). "
     "ConvEncoder1's second (middle) convolution has stride 2 (down = 2; our variant of the SPEC 5.1 option, "
     "which strides ConvEncoder2 instead), so LPA, ConvEncoder2 and GCA run at 14x14 (the paper: 28x28)."),
    ("ConvEncoder1 of the shipped ablation weights reads concat(y*m, m), the context values and the mask, without "
     "their locations, and their Avgpool is global. The rows named faithful (model names ending in -full) also "
     "read concat(x-row*m, x-col*m), so each context point is encoded as h(x_i, y_i) (SPEC 2 and 4.1), keep "
     "every map at 28x28 (down = 1), use SPEC 4.2's local pooling window (a masked 4x4 mean, then a strided "
     "ConvEncoder3) and a DeconvDecoder that upsamples z with transposed convolutions (SPEC 4.3 tiles z over "
     "the grid); they keep the CPU widths and train with 16 images a step at lr 0.002 (100-step warm-up). "
     "The -paper configurations add the SPEC's widths, for one GPU (tools/train_paper_scale.py)."),
    ("Optimisation, all [I] in the SPEC and different from its defaults where marked: Adam, lr 1e-3 (SPEC: 1e-4) "
     "with a 200-step linear warm-up and a cosine decay to 5 %, gradient-norm clipping at 10 (SPEC: none), "
     "batch 64, K = 1, targets = all pixels, context ratio ~ U(0.05, 0.95)."),
    ("Decoder: a linear Gaussian mean (SPEC 4.3: a sigmoid mean; ours saturated and stalled early in training), "
     "fixed sigma = 0.1; the SPEC's four 128-channel transposed 3x3 convolutions and one to C channels become three "
     "c->c ones, one to the stem width (with the upsampling when down = 2) and a 1x1 convolution to "
     "C channels."),
    ("The no-learning rows (mean image, normalised convolution, GP on pixel coordinates) are fitted on "
     "training images only (the blur's bandwidth and the GP's kernel and noise); the GP rows use the first "
     f"{GP_IMAGES:,} evaluation images. They are not in the paper."),
    ("Evaluation: a fixed 5,000-image subset of the MNIST test split (seed 2023) with masks fixed per "
     "(image, ratio); z = mean of q(z | context). The paper's subset and masks are unknown."),
    ("KL: summed over the latent dimensions, mean over images; the paper's normalisation is unknown and its "
     "values (1e-5 .. 7e-3) are far smaller, so KL values are not comparable (SPEC section 9.5)."),
    "Table 1's dataset is not named in the paper; we compare it with MNIST.",
]

#: Our own model, outside the paper's step budget.
OURS = "ifanp-plus"

#: The datasets that the paper's Table 1 is compared with (its dataset is not named; SPEC section 9). Tables of
#: other datasets (Fashion-MNIST, CelebA) get no paper columns: the paper reports nothing for them.
PAPER_DATASETS = ("mnist",)
#: How the tables name each dataset.
DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "celeba": "CelebA"}


def run_budget(ref: str | Path) -> tuple[int | None, float | None]:
    """(steps, epochs) of a pretrained name (its registry entry) or of a run folder (its ``config.json``);
    the epochs come from the training log's last epoch row, None where unknown."""
    path = Path(ref)
    steps = None
    if path.is_dir() and (path / "config.json").is_file():
        cfg = json.loads((path / "config.json").read_text())
        steps = cfg.get("total_steps") or cfg.get("steps")
    else:
        steps = registry().get(str(ref), {}).get("steps")
    hist = [h for h in _history_from(ref) if h.get("kind", "epoch") == "epoch" and h.get("epoch") and h.get("step")]
    epochs = steps * hist[-1]["epoch"] / hist[-1]["step"] if steps and hist else None
    return steps, epochs


def registry_budgets(models: tuple[str, ...] = TABLE_MODELS, dataset: str = "mnist",
                     seeds: tuple[int, ...] = (0, 1, 2)) -> dict[str, list[tuple[int | None, float | None]]]:
    """:func:`run_budget` of every installed seed of every model: model -> [(steps, epochs), ...]."""
    have = set(available())
    out = {}
    for model in models:
        names = [pretrained_name(model, dataset, s) for s in seeds if pretrained_name(model, dataset, s) in have]
        if names:
            out[model] = [run_budget(name) for name in names]
    return out


def _steps_text(budget: list[tuple[int | None, float | None]]) -> str:
    steps = sorted({s for s, _ in budget if s})
    epochs = [e for s, e in budget if e]
    text = " / ".join(f"{s:,}" for s in steps) + " steps" if steps else "an unknown number of steps"
    if epochs:
        lo, hi = min(epochs), max(epochs)
        text += f" ({lo:.1f} epochs)" if f"{lo:.1f}" == f"{hi:.1f}" else f" ({lo:.1f} to {hi:.1f} epochs)"
    return text


def training_budget(budgets: dict[str, list[tuple[int | None, float | None]]]) -> str:
    """The training-budget line of the protocol differences, from the (steps, epochs) of every evaluated run
    (model -> one pair per seed, as :func:`registry_budgets` gives them)."""
    shared = [m for m in budgets if m != OURS and m not in FAITHFUL]
    steps = {s for m in shared for s, _ in budgets[m]}
    one = next(iter(steps)) if len(steps) == 1 and None not in steps else None
    parts = []
    if one is not None:
        groups = [(", ".join(LABELS.get(m, m) for m in shared if m in ABLATION), "the ablation"),
                  (", ".join(LABELS.get(m, m) for m in shared if m not in ABLATION), "the baselines")]
        who = " and ".join(f"{names} ({what})" for names, what in groups if names)
        parts.append(f"{who} share one budget, {_steps_text([b for m in shared for b in budgets[m]])} each")
    elif shared:
        parts.append("the budgets differ between the models: "
                     + ", ".join(f"{LABELS.get(m, m)} {_steps_text(budgets[m])}" for m in shared))
    if OURS in budgets:
        mine = {s for s, _ in budgets[OURS]}
        longer = one is not None and len(mine) == 1 and None not in mine and next(iter(mine)) > one
        parts.append(f"{LABELS[OURS]} {'trains longer, ' if longer else ''}{_steps_text(budgets[OURS])}")
    faithful = [m for m in FAITHFUL if m in budgets]  # in the table's order, whichever rows were measured first
    if faithful:
        runs = [b for m in faithful for b in budgets[m]]
        same = len({st for st, _ in runs}) == 1
        parts.append(f"the faithful configurations ({', '.join(LABELS[m] for m in faithful)}) "
                     + (f"share one budget of their own, {_steps_text(runs)} each" if same else
                        "have budgets of their own: " + ", ".join(f"{LABELS[m]} {_steps_text(budgets[m])}"
                                                                   for m in faithful)))
    if not parts:
        return "Training budget: no trained model in this table (none installed, or only the rules without learning)."
    return ("Training budget: " + "; ".join(parts) + " (each model's registry entry records the command, the "
            "threads and the time); the paper trains for ~300 epochs (Fig. 8).")


def protocol_differences(budgets: dict[str, list[tuple[int | None, float | None]]] | None = None,
                         dataset: str = "mnist") -> list[str]:
    """How our protocol differs from the paper's: the training budget of ``budgets`` (default: the installed
    weights of every model of the table, :func:`registry_budgets`), then :data:`PROTOCOL_DIFFERENCES`."""
    if budgets is None:
        budgets = registry_budgets(TABLE_MODELS, dataset)
    lines = list(PROTOCOL_DIFFERENCES)
    if dataset not in PAPER_DATASETS:
        name = DATASET_NAMES.get(dataset, dataset)
        lines = [d.replace("the MNIST test split", f"the {name} test split") for d in lines
                 if not d.startswith("Table 1's dataset is not named")]
        lines.append(f"The paper reports no {name} results: this table has no paper columns, and its rows are "
                     "compared with our MNIST rows, not with the paper's Table 1.")
    return [training_budget(budgets)] + lines


def _history_from(ref: str | Path) -> list[dict[str, Any]]:
    """Training-log rows of a run folder or a pretrained model (empty when unknown)."""
    path = Path(ref)
    if path.is_dir() and (path / "log.jsonl").is_file():
        return read_log(path)
    return list(registry().get(str(ref), {}).get("history", []))


def reproduce(
    dataset: str = "mnist",
    models: tuple[str, ...] = TABLE_MODELS,
    runs: dict[str, str] | None = None,
    seeds: tuple[int, ...] = (0, 1, 2),
    limit: int | None = None,
    nll_images: int = 1000,
    nll_samples: int = 8,
    full_test: bool = False,
    progress: bool = True,
    log=print,
    gp_images: int | None = GP_IMAGES,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate every model of the table; see the module docstring. Returns the table as a dict.

    With ``previous`` (a table this function returned before, e.g. the ``table.json`` of ``--out``), only
    ``models`` are evaluated and every other row of ``previous`` is kept (see :func:`kept_rows`); a seed of
    ``models`` whose weights have the sha256 that ``previous`` records for it is not measured again."""
    runs = dict(runs or {})
    images, indices = load_eval_images(dataset, full_test)
    if limit:
        images, indices = images[:limit], indices[:limit]
    settings = {"images": len(images), "full_test": full_test, "nll_images": nll_images, "nll_samples": nll_samples,
                "gp_images": gp_images}
    reusable: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}  # model -> seed -> (sha256, result)
    if previous is not None:  # checked before anything is evaluated: a refused update costs nothing
        kept = kept_rows(previous, models, dataset, settings, seeds)
        for row in previous.get("rows", []):  # seeds of the models named whose weights are the ones measured
            if row["model"] in models and row.get("weights_sha256"):
                reusable[row["model"]] = {
                    s: (sha, {"ratios": row["per_seed"][s], "parameters": row["parameters"], "images": row["images"]})
                    for s, sha in row["weights_sha256"].items() if sha and s in row.get("per_seed", {})}
    rows, fig8, missing, budgets = [], {}, [], {}
    rules: dict[str, bl.FittedRule] = {}
    for model in models:
        if model in bl.BASELINES:
            if not rules:
                rules = bl.fit_baselines(load_train_images(dataset), log=log if progress else None)
            if model not in rules:
                missing.append(model)
                continue
            n = min(len(images), gp_images) if gp_images and bl.BASELINES[model][0] == "gp" else len(images)
            res = evaluate(rules[model], images[:n], indices[:n], nll_images=nll_images, nll_samples=nll_samples,
                           progress=progress)
            if progress:
                log(f"{LABELS[model]}: " + "  ".join(
                    f"{float(r) * 100:g}%: {v['psnr_whole']:.2f} dB" for r, v in res["ratios"].items()))
            label = LABELS[model] + (f" (first {n:,} images)" if n < len(images) else "")
            rows.append({"model": model, "label": label, "source": "fitted on training images",
                         "fitted": rules[model].config, "ratios": res["ratios"], "parameters": 0, "images": n,
                         "seeds": [0], "per_seed": {"0": res["ratios"]}})
            continue
        refs = {}
        have = set(available())  # read again per model: weights exported while the table is being made count
        if model in runs:
            refs[0] = runs[model]
        else:
            for seed in seeds:
                name = pretrained_name(model, dataset, seed)
                if name in have:
                    refs[seed] = name
        if not refs:
            missing.append(model)
            continue
        budgets[model] = [run_budget(ref) for ref in refs.values()]
        shas = {str(seed): _weights_sha256(ref) for seed, ref in refs.items()}
        per_seed = {}
        before = reusable.get(model, {})
        for seed, ref in refs.items():
            if shas[str(seed)] is not None and before.get(str(seed), (None,))[0] == shas[str(seed)]:
                per_seed[seed] = before[str(seed)][1]  # the same weights, measured the same way before
                label = "unchanged since the table in --out"
            else:
                net, label = resolve_model(ref)
                per_seed[seed] = evaluate(net, images, indices, nll_images=nll_images, nll_samples=nll_samples,
                                          progress=progress)
            if progress:
                log(f"{LABELS.get(model, model)} ({label}): " + "  ".join(
                    f"{float(r) * 100:g}%: {v['psnr_whole']:.2f} dB" for r, v in per_seed[seed]["ratios"].items()))
        main = per_seed[min(per_seed)]
        row = {"model": model, "label": LABELS.get(model, model), "source": refs[min(refs)], "ratios": main["ratios"],
               "parameters": main["parameters"], "images": main["images"], "seeds": sorted(per_seed)}
        row["per_seed"] = {str(seed): res["ratios"] for seed, res in per_seed.items()}  # every metric, every seed
        row["weights_sha256"] = shas  # what each seed's numbers were measured on (an update checks it)
        if len(per_seed) > 1:
            row["seed_spread"] = {
                r: {"psnr_whole_mean": statistics.mean(p["ratios"][r]["psnr_whole"] for p in per_seed.values()),
                    "psnr_whole_sd": statistics.stdev(p["ratios"][r]["psnr_whole"] for p in per_seed.values())}
                for r in main["ratios"]
            }
        paper_row = FAITHFUL.get(model, model)  # a faithful configuration is compared with its base model's row
        if paper_row in PAPER_TABLE1 and dataset in PAPER_DATASETS:
            row["paper"] = PAPER_TABLE1[paper_row]
        rows.append(row)
        hist = [h for h in _history_from(refs[min(refs)]) if h.get("kind", "epoch") == "epoch"]  # registry rows carry no kind
        fig8[model] = [{"epoch": h["epoch"], "mse": h["mse"]} for h in hist]
    evaluated = [row["model"] for row in rows]
    if previous is not None:
        order = {m: i for i, m in enumerate(dict.fromkeys((*ALL_ROWS, *models)))}
        for row in kept:
            model = row["model"]
            if model not in bl.BASELINES:
                budgets[model] = [run_budget(pretrained_name(model, dataset, int(s))) for s in row["per_seed"]]
            fig8.update({model: previous["fig8"][model]} if model in previous.get("fig8", {}) else {})
        rows = sorted([*rows, *kept], key=lambda r: order.get(r["model"], len(order)))
        missing = [m for m in dict.fromkeys([*previous.get("missing", []), *missing])
                   if m not in {r["model"] for r in rows}]
    fig9 = {row["model"]: {r: v["mse_whole"] for r, v in row["ratios"].items()} for row in rows}
    table = {"dataset": dataset, "images": len(images), "settings": settings, "rows": rows, "fig8": fig8,
             "fig9": fig9, "missing": missing, "protocol_differences": protocol_differences(budgets, dataset)}
    if previous is not None:
        table["updated_rows"] = evaluated
    return table


def _weights_sha256(ref: str | Path) -> str | None:
    """The sha256 of the weights a pretrained name or a run folder evaluates (None when there are none)."""
    entry = registry().get(str(ref))
    if entry is not None:
        return entry["sha256"]
    path = Path(ref) / "model.safetensors"
    return sha256_of(path) if path.is_file() else None


def kept_rows(previous: dict[str, Any], models: tuple[str, ...], dataset: str, settings: dict[str, Any],
              seeds: tuple[int, ...] = (0, 1, 2)) -> list[dict[str, Any]]:
    """The rows of ``previous`` that an update evaluating only ``models`` keeps, after checking that each
    still describes what is installed; raises ValueError (with what to do) where one does not.

    Kept are the rows of every model not in ``models``. Refused: a table of another dataset, image count or
    evaluation setting; a model's row whose weights' sha256 (recorded per seed) differs from the registry's
    now; a row whose seeds are not the seeds installed now (a seed exported since must be evaluated); a row
    measured on a run folder (``--run``), which cannot be checked. A rule without learning has no weights and
    is kept as it is. A row written before tables recorded the sha256 (no ``weights_sha256``) is checked by
    its name and seeds only."""
    def refuse(why: str) -> ValueError:
        return ValueError(f"--update: {why}; evaluate everything (leave --update out) or add that row to --models.")

    if previous.get("dataset") != dataset:
        raise refuse(f"the table in --out is of {previous.get('dataset')!r}, not {dataset!r}")
    before = previous.get("settings", {"images": previous.get("images")})
    for key, value in before.items():
        if settings.get(key) != value:
            raise refuse(f"the table in --out was evaluated with {key} = {value}, this run with {settings.get(key)}")
    have = set(available())
    reg = registry()
    kept = []
    for row in previous.get("rows", []):
        model = row["model"]
        if model in models:
            continue
        if model not in bl.BASELINES:
            installed = [s for s in seeds if pretrained_name(model, dataset, s) in have]
            if sorted(int(s) for s in row.get("per_seed", {"0": None})) != installed:
                raise refuse(f"{model}'s row was evaluated for seeds {row.get('seeds')}, and seeds {installed} are "
                             "installed now")
            if reg.get(str(row.get("source")), {}).get("sha256") is None:
                raise refuse(f"{model}'s row was measured on {row.get('source')}, which is not a shipped model")
            for seed, sha in row.get("weights_sha256", {}).items():
                now = reg[pretrained_name(model, dataset, int(seed))]["sha256"]
                if sha != now:
                    raise refuse(f"{model}'s seed {seed} was evaluated on weights {sha[:12]}, the registry now "
                                 f"has {now[:12]}")
        kept.append(row)
    return kept


def comparison_markdown(table: dict[str, Any]) -> str:
    """Table 1 beside ours: whole-image PSNR at each ratio, ours / paper, and the seed spread."""
    rows = table["rows"]
    if not rows:
        return "No models to show.\n"
    ratios = list(rows[0]["ratios"])
    with_paper = table.get("dataset", "mnist") in PAPER_DATASETS  # no paper columns where the paper has no numbers
    head = ["model"] + [f"PSNR {float(r) * 100:g}% ours" for r in ratios]
    head += [f"paper {float(r) * 100:g}%" for r in ratios] * with_paper + [f"KL {float(r) * 100:g}% ours" for r in ratios]
    head += [f"paper KL {float(r) * 100:g}%" for r in ratios] * with_paper
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["label"]]
        for r in ratios:
            v = f"{row['ratios'][r]['psnr_whole']:.2f}"
            if "seed_spread" in row:
                s = row["seed_spread"][r]
                v += f" ({s['psnr_whole_mean']:.2f} ± {s['psnr_whole_sd']:.2f}, {len(row['seeds'])} seeds)"
            cells.append(v)
        paper = row.get("paper")
        cells += [f"{paper['psnr'][i]:.2f}" if paper and i < 3 else "—" for i in range(len(ratios))] * with_paper
        cells += [f"{row['ratios'][r]['kl']:.4g}" if row["ratios"][r]["kl"] is not None else "—" for r in ratios]
        cells += [f"{paper['kl'][i]:.2g}" if paper and i < 3 else "—" for i in range(len(ratios))] * with_paper
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _seed_values(row: dict[str, Any], ratios: list[str], metric: str) -> list[list[float]]:
    """``metric`` at each of ``ratios`` for every installed seed of one row (seed 0 first)."""
    per_seed = row.get("per_seed") or {str(row["seeds"][0]): row["ratios"]}
    return [[per_seed[s][r][metric] for r in ratios] for s in sorted(per_seed, key=int)]


def seed_spread(row: dict[str, Any], metric: str = "psnr_whole") -> dict[str, dict[str, float]]:
    """Mean, sample sd and count of ``metric`` over the seeds of one row of :func:`reproduce`, per ratio
    (sd is nan for a single seed; ratios where the metric is None are left out)."""
    per_seed = row.get("per_seed") or {str(row["seeds"][0]): row["ratios"]}
    out = {}
    for r in row["ratios"]:
        vals = [p[r][metric] for p in per_seed.values() if p[r].get(metric) is not None]
        if vals:
            out[r] = {"mean": statistics.mean(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else float("nan"),
                      "n": len(vals)}
    return out


def faithful_view(table: dict[str, Any]) -> dict[str, Any]:
    """``table`` with the rows of the faithful configurations standing in for the ablation's models (renamed to
    them) and the shipped ablation rows left out, so that :func:`ablation_order_checks` checks the paper's claims
    on the faithful configurations."""
    rows = [r for r in table["rows"] if r["model"] not in ABLATION]
    rows = [{**r, "model": FAITHFUL.get(r["model"], r["model"])} for r in rows]
    return {**table, "rows": rows}


def has_faithful(table: dict[str, Any]) -> bool:
    """Whether every faithful configuration has a row in ``table``."""
    return all(m in {r["model"] for r in table["rows"]} for m in FAITHFUL)


def ablation_order_checks(table: dict[str, Any], metric: str = "psnr_whole", tie_db: float = 0.5,
                          flat_db: float = 0.5, gain_factor: float = 2.0) -> list[dict[str, Any]]:
    """The paper's claims about its ablation (SPEC section 7), checked on the paper's Table 1 and on ours.

    The order IFNP < IFANP(LPA) ~ IFANP(SENet) < IFANP(GCA) < IFANP becomes separate checks, each required
    at every ratio of the table: a strict ``>`` for "<" and ``|a - b| <= tie_db`` for "~"; then IFANP best
    of the five; GCA's gain over IFNP at least ``gain_factor`` times the larger of the LPA and SENet gains;
    IFNP's row flat (max - min over the ratios <= ``flat_db``); IFANP gaining more than IFNP from the
    lowest to the highest ratio; and, per model, ours >= the paper's number.

    Each check is a dict: ``id``, ``claim``, ``paper`` and ``ours`` (True / False, or None when a model has
    no row; ``paper`` is None for the comparisons with the paper itself), ``paper_detail`` and
    ``ours_detail`` (the numbers behind the verdict, in dB), ``margin`` (ours: the smallest margin by which
    the check holds over the ratios, negative when it fails), ``margins`` (ours, per ratio for the checks made
    at every ratio) and ``missing`` (the models without a row).
    ``metric`` is a per-ratio key of the rows; the paper's numbers are used only for ``psnr_whole``.

    Ours are decided on the mean over each model's installed seeds (its row's ``per_seed``), and then
    again for every combination of one seed per model of the check: ``seed_combinations`` counts them and
    ``seed_holds`` how many of them the check holds for, so a verdict that changes with the choice of
    seeds (0 < seed_holds < seed_combinations) can be told from one that does not; ``seeds`` gives the
    number of seeds of each model of the check.
    """
    ours_rows = {row["model"]: row for row in table["rows"]}
    ratios = list(table["rows"][0]["ratios"]) if table["rows"] else ["0.2", "0.4", "0.6"]
    by_seed = {m: _seed_values(ours_rows[m], ratios, metric) for m in ABLATION if m in ours_rows}
    ours = {m: [statistics.mean(v[i] for v in vals) for i in range(len(ratios))] for m, vals in by_seed.items()}
    paper_ratios = ["0.2", "0.4", "0.6"]
    paper = {}
    if metric == "psnr_whole" and all(r in paper_ratios for r in ratios):
        paper = {m: [PAPER_TABLE1[m]["psnr"][paper_ratios.index(r)] for r in ratios] for m in ABLATION}
    pct = [f"{float(r) * 100:g}%" for r in ratios]
    lab = LABELS

    def per_ratio(values, models, fn, show):
        """(verdict, smallest margin, detail) of a check that must hold at every ratio: ``fn`` gives the
        margin (> 0: holds), ``show`` the numbers to print."""
        if not values or any(m not in values for m in models):
            return None, None, "", []
        at = [[values[m][i] for m in models] for i in range(len(ratios))]
        ms = [fn(*v) for v in at]
        return min(ms) > 0, min(ms), ", ".join(f"{p}: {show(*v)}" for p, v in zip(pct, at)), ms

    def flat(values):
        if "ifnp" not in values:
            return None, None, "", []
        spread = max(values["ifnp"]) - min(values["ifnp"])
        return spread <= flat_db, flat_db - spread, f"max - min = {spread:.2f}", [flat_db - spread]

    def context_gain(values):
        if "ifnp" not in values or "ifanp" not in values:
            return None, None, "", []
        g_full = values["ifanp"][-1] - values["ifanp"][0]
        g_ifnp = values["ifnp"][-1] - values["ifnp"][0]
        detail = f"{pct[0]} to {pct[-1]}: IFANP {g_full:+.2f}, IFNP {g_ifnp:+.2f}"
        return g_full > g_ifnp, g_full - g_ifnp, detail, [g_full - g_ifnp]

    def gap(fn, show=lambda a, b: f"{a - b:+.2f}"):
        return lambda values, models: per_ratio(values, models, fn, show)

    def gains(g, a, b, n):
        return f"GCA {g - n:+.2f}, LPA {a - n:+.2f}, SENet {b - n:+.2f}"

    specs = [
        ("lpa_over_ifnp", f"{lab['ifanp-lpa']} > {lab['ifnp']}", ("ifanp-lpa", "ifnp"), gap(lambda a, b: a - b)),
        ("se_over_ifnp", f"{lab['ifanp-se']} > {lab['ifnp']}", ("ifanp-se", "ifnp"), gap(lambda a, b: a - b)),
        ("lpa_se_tie", f"{lab['ifanp-lpa']} ~ {lab['ifanp-se']} (within {tie_db:g} dB)", ("ifanp-lpa", "ifanp-se"),
         gap(lambda a, b: tie_db - abs(a - b))),
        ("gca_over_local", f"{lab['ifanp-gca']} > {lab['ifanp-lpa']} and {lab['ifanp-se']}",
         ("ifanp-gca", "ifanp-lpa", "ifanp-se"), gap(lambda g, a, b: g - max(a, b), lambda g, a, b: f"{g - max(a, b):+.2f}")),
        ("full_over_gca", f"{lab['ifanp']} > {lab['ifanp-gca']}", ("ifanp", "ifanp-gca"), gap(lambda a, b: a - b)),
        ("full_best", f"{lab['ifanp']} best of the five", ("ifanp", "ifnp", "ifanp-lpa", "ifanp-se", "ifanp-gca"),
         gap(lambda f, *others: f - max(others), lambda f, *others: f"{f - max(others):+.2f}")),
        ("gca_gain_largest", f"GCA's gain over {lab['ifnp']} >= {gain_factor:g} x the larger of LPA's and SENet's",
         ("ifanp-gca", "ifanp-lpa", "ifanp-se", "ifnp"),
         gap(lambda g, a, b, n: (g - n) - gain_factor * max(a - n, b - n, 0.0), gains)),
        ("ifnp_flat", f"{lab['ifnp']}'s row is flat (max - min over the ratios <= {flat_db:g} dB)", ("ifnp",),
         lambda values, models: flat(values)),
        ("context_gain", f"{lab['ifanp']} gains more than {lab['ifnp']} from more context", ("ifanp", "ifnp"),
         lambda values, models: context_gain(values)),
    ]
    def over_seeds(models, verdict):
        """How many combinations of one seed per model there are, and for how many ``verdict`` holds."""
        if any(m not in by_seed for m in models):
            return {}
        combos = list(itertools.product(*(range(len(by_seed[m])) for m in models)))
        held = sum(bool(verdict({m: by_seed[m][i] for m, i in zip(models, combo)})) for combo in combos)
        return {"seeds": {m: len(by_seed[m]) for m in models}, "seed_combinations": len(combos), "seed_holds": held}

    checks = []
    for cid, claim, models, fn in specs:
        p_ok, _, p_detail, _ = fn(paper, models) if paper else (None, None, "", [])
        o_ok, o_margin, o_detail, o_margins = fn(ours, models)
        checks.append({"id": cid, "claim": claim, "paper": p_ok, "ours": o_ok, "paper_detail": p_detail,
                       "ours_detail": o_detail, "margin": o_margin, "margins": o_margins,
                       "missing": [m for m in models if m not in ours],
                       **over_seeds(models, lambda values, fn=fn, models=models: fn(values, models)[0])})
    if paper:  # ours against the paper's absolute numbers
        for m in ABLATION:
            ok, margin, detail, diffs = None, None, "", []
            if m in ours:
                diffs = [o - p for o, p in zip(ours[m], paper[m])]
                ok, margin = min(diffs) >= 0, min(diffs)
                detail = "ours - paper: " + ", ".join(f"{p}: {d:+.2f}" for p, d in zip(pct, diffs))
            checks.append({"id": f"abs_{m}", "claim": f"ours >= the paper's number for {lab[m]}", "paper": None,
                           "ours": ok, "paper_detail": "", "ours_detail": detail, "margin": margin,
                           "margins": diffs, "missing": [] if m in ours else [m],
                           **over_seeds((m,), lambda values, m=m: all(o >= p for o, p in zip(values[m], paper[m])))})
    return checks


#: How a check's verdict is written (None: not checked).
VERDICTS = {True: "holds", False: "fails", None: "—"}


def checks_markdown(checks: list[dict[str, Any]]) -> str:
    """The checks of :func:`ablation_order_checks` as a markdown table: the claim, the verdict on the paper's
    Table 1 and on ours (decided on the seed means, with the numbers), and for how many combinations of one
    seed per model ours holds."""
    lines = ["| claim (at every ratio) | paper's Table 1 | ours (mean over the seeds) | seed combinations it holds for |",
             "|---|---|---|---|"]
    for c in checks:
        ours = VERDICTS[c["ours"]] + (f" ({c['ours_detail']})" if c["ours_detail"] else "")
        if c["ours"] is None:
            ours += f": no weights for {', '.join(LABELS.get(m, m) for m in c['missing'])}"
        n = c.get("seed_combinations")
        combos = f"{c['seed_holds']} of {n}" + (" (within the seed noise)" if 0 < c["seed_holds"] < n else "") \
            if n else "—"
        lines.append(f"| {c['claim']} | {VERDICTS[c['paper']]} | {ours} | {combos} |")
    return "\n".join(lines) + "\n"


def write_outputs(table: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.json").write_text(json.dumps(table, indent=2) + "\n")
    (out / "fig8.json").write_text(json.dumps(table["fig8"], indent=2) + "\n")
    (out / "fig9.json").write_text(json.dumps(table["fig9"], indent=2) + "\n")
    if table["dataset"] in PAPER_DATASETS:
        title = f"# Reproduction of Table 1 on {table['dataset']} ({table['images']:,} evaluation images)\n"
        sub = "## Whole-image PSNR (the paper's protocol) and KL, ours beside the paper\n"
    else:
        name = DATASET_NAMES.get(table["dataset"], table["dataset"])
        title = (f"# Table 1's protocol on {name} ({table['images']:,} evaluation images; the paper reports no "
                 f"{name} numbers)\n")
        sub = "## Whole-image PSNR (the paper's protocol) and KL, ours only\n"
    md = [title, sub, comparison_markdown(table),
          "\n## All metrics (seed 0)\n", markdown_table(table["rows"]) if table["rows"] else "",
          "\n## Protocol differences\n", *[f"- {d}\n" for d in table["protocol_differences"]]]
    if table["dataset"] in PAPER_DATASETS and all(m in {r["model"] for r in table["rows"]} for m in ABLATION):
        md += ["\n## The paper's claims about its ablation, checked (SPEC 7)\n",
               ("Ours are decided on the mean over each model's seeds, then again for every combination of one "
                "seed per model.\n\n"), checks_markdown(ablation_order_checks(table))]
    if table["dataset"] in PAPER_DATASETS and has_faithful(table):
        md += ["\n## The same claims checked on the faithful configurations\n",
               ("The rows named faithful stand in for the five models (every map at 28x28, ConvEncoder1 reading the "
                "context's locations; see the protocol differences).\n\n"),
               checks_markdown(ablation_order_checks(faithful_view(table)))]
    if table["missing"]:
        md.append(f"\nNot evaluated (no weights or run): {', '.join(table['missing'])}\n")
    (out / "table.md").write_text("".join(md))


# ---- python -m ifanp reproduce ------------------------------------------------------------------------


def add_reproduce_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=DATASETS, default="mnist")
    parser.add_argument("--models", nargs="+", default=list(ALL_ROWS),
                        help=f"rows of the table (default: all: {' '.join(ALL_ROWS)})")
    parser.add_argument("--run", action="append", default=[], metavar="MODEL=FOLDER",
                        help="use this run folder for MODEL instead of the shipped weights")
    parser.add_argument("--train", action="store_true",
                        help="train every model first (python -m ifanp train with --steps) and evaluate those runs")
    parser.add_argument("--steps", type=int, default=6000, help="with --train: steps per model (default 6000)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds to look for in the registry")
    parser.add_argument("--limit", type=int, default=None, help="only the first N evaluation images")
    parser.add_argument("--full-test", action="store_true")
    parser.add_argument("--nll-images", type=int, default=1000)
    parser.add_argument("--nll-samples", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default results/<dataset>)")
    parser.add_argument("--update", action="store_true",
                        help="evaluate only --models, and of those only the seeds whose weights changed, and keep "
                             "every other row of the table already in --out (refused where a kept row's weights, "
                             "seeds or evaluation settings differ from now)")
    parser.add_argument("--quiet", action="store_true")


def run_reproduce(args: argparse.Namespace) -> int:
    unknown = [m for m in args.models if m not in model_names() and m not in bl.BASELINES]
    if unknown:
        raise ValueError(f"--models: unknown model {unknown[0]!r}; the table's rows are {', '.join(TABLE_MODELS)} "
                         f"(any of {', '.join(model_names())}).")
    for flag, least in (("limit", 1), ("steps", 1), ("nll_images", 0), ("nll_samples", 0)):
        value = getattr(args, flag)
        if value is not None and value < least:
            raise ValueError(f"--{flag.replace('_', '-')} must be a whole number >= {least}, got {value}.")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; pass a folder for the tables and figures' data.")
    out = args.out or Path("results") / args.dataset
    previous = None
    if args.update:
        if not (out / "table.json").is_file():
            raise ValueError(f"--update: there is no {out / 'table.json'} to update; leave --update out to make one.")
        try:
            previous = json.loads((out / "table.json").read_text())
            assert isinstance(previous, dict) and isinstance(previous.get("rows"), list)
        except (ValueError, AssertionError):
            raise ValueError(f"--update: {out / 'table.json'} is not a table that reproduce wrote; leave --update "
                             "out to make a new one.") from None
    runs = {}
    for item in args.run:
        if "=" not in item:
            raise ValueError(f"--run expects MODEL=FOLDER, got {item!r}.")
        k, v = item.split("=", 1)
        runs[k] = v
    if args.train:
        for model in args.models:
            if model in runs or model in bl.BASELINES:
                continue
            folder = f"runs/reproduce-{args.dataset}-{model}"
            train(TrainConfig(model=model, dataset=args.dataset, steps=args.steps, out=folder), resume=True)
            runs[model] = folder
    table = reproduce(args.dataset, tuple(args.models), runs, tuple(args.seeds), args.limit, args.nll_images,
                      args.nll_samples, args.full_test, progress=not args.quiet, previous=previous)
    write_outputs(table, out)
    print(comparison_markdown(table), end="")
    if table["missing"]:
        print(f"not evaluated (no weights or run): {', '.join(table['missing'])}")
    print(f"wrote {out}/table.md, table.json, fig8.json, fig9.json")
    return 0
