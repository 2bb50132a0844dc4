"""The tables, checks and figures of the chapters "Experiments" and "Beyond the paper"
(ifanp.plotting.charts, ifanp.reporting, ifanp.analysis, ifanp.recipes), and the helpers they use from
ifanp.reproduce."""
import math
from html import escape

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ifanp import analysis, pretrained, recipes, reporting, reporting_faithful, runlog
from ifanp.models import build
from ifanp.models.grid import DEFAULTS, VARIANTS
from ifanp.plotting import attention as attention_plots
from ifanp.plotting import charts as ex
from ifanp.plotting import completion as completion_plots
from ifanp.plotting import images as image_plots
from ifanp.reproduce import ABLATION, LABELS, PAPER_TABLE1, ablation_order_checks, reproduce, seed_spread
from ifanp.rules import CompletionRule

RATIOS = ("0.2", "0.4", "0.6")
TINY = {"hidden": 8, "stem": 8, "z_dim": 8, "gca_key_dim": 8}


def _row(model, psnr, seeds=(0,), **extra):
    ratios = {r: {"psnr_whole": p, "psnr_target": p - 1, "mse_whole": 10 ** (-p / 10), "mse_target": 0.02,
                  "ssim": 0.5, "kl": 0.1, "kl_per_dim": 0.001, "nll_per_pixel": -1.0} for r, p in zip(RATIOS, psnr)}
    return {"model": model, "label": LABELS.get(model, model), "source": f"mnist-{model}", "ratios": ratios,
            "seeds": list(seeds), **extra}


def _table(values):
    """A reproduce()-shaped table from {model: (psnr 20 %, 40 %, 60 %)}."""
    rows = [_row(m, v) for m, v in values.items()]
    return {"dataset": "mnist", "images": 10, "rows": rows, "fig8": {}, "fig9": {}, "missing": []}


PAPER_VALUES = {m: PAPER_TABLE1[m]["psnr"] for m in ABLATION}


# ---- ifanp.reproduce helpers ------------------------------------------------------------------------------


def test_checks_hold_on_the_papers_own_numbers():
    checks = ablation_order_checks(_table(PAPER_VALUES))
    assert {c["id"] for c in checks} >= {"lpa_over_ifnp", "se_over_ifnp", "lpa_se_tie", "gca_over_local",
                                          "full_over_gca", "full_best", "gca_gain_largest", "ifnp_flat",
                                          "context_gain", "abs_ifanp"}
    for c in checks:
        assert c["ours"] is True, c
        assert c["paper"] is (None if c["id"].startswith("abs_") else True), c
    gca = next(c for c in checks if c["id"] == "gca_gain_largest")
    assert "GCA +3.22, LPA +0.52, SENet +0.77" in gca["paper_detail"]  # 18.637 - 15.421 etc.


def test_checks_detect_a_broken_order_a_tie_and_missing_models():
    values = dict(PAPER_VALUES)
    values["ifanp"], values["ifanp-gca"] = values["ifanp-gca"], values["ifanp"]  # swap the two best rows
    values["ifanp-se"] = tuple(v + 1.0 for v in values["ifanp-lpa"])  # LPA and SENet 1 dB apart
    by_id = {c["id"]: c for c in ablation_order_checks(_table(values))}
    assert by_id["full_over_gca"]["ours"] is False and by_id["full_over_gca"]["margin"] < 0
    assert by_id["full_best"]["ours"] is False
    assert by_id["lpa_se_tie"]["ours"] is False
    assert by_id["gca_over_local"]["ours"] is True  # the swapped-in IFANP row is still above both
    assert by_id["abs_ifanp"]["ours"] is False and by_id["abs_ifanp-gca"]["ours"] is True
    del values["ifanp-se"]
    by_id = {c["id"]: c for c in ablation_order_checks(_table(values))}
    assert by_id["se_over_ifnp"]["ours"] is None and by_id["se_over_ifnp"]["missing"] == ["ifanp-se"]
    assert by_id["se_over_ifnp"]["paper"] is True  # the paper's verdict does not depend on our rows
    assert by_id["lpa_over_ifnp"]["ours"] is True


def test_flat_row_and_context_gain():
    values = dict(PAPER_VALUES)
    values["ifnp"] = (12.0, 13.0, 14.0)  # rises by 2 dB: not flat, and more than IFANP's 0.75 dB
    by_id = {c["id"]: c for c in ablation_order_checks(_table(values))}
    assert by_id["ifnp_flat"]["ours"] is False and by_id["ifnp_flat"]["ours_detail"] == "max - min = 2.00"
    assert by_id["context_gain"]["ours"] is False


def test_seed_spread_is_the_mean_and_sample_sd_over_seeds():
    row = _row("ifnp", (12, 13, 14), seeds=(0, 1, 2))
    row["per_seed"] = {str(s): {r: {"psnr_whole": 10.0 + s + i} for i, r in enumerate(RATIOS)} for s in (0, 1, 2)}
    sp = seed_spread(row)
    assert sp["0.2"] == {"mean": 11.0, "sd": 1.0, "n": 3} and sp["0.6"]["mean"] == 13.0
    single = seed_spread(_row("ifnp", (12, 13, 14)))
    assert single["0.4"]["n"] == 1 and math.isnan(single["0.4"]["sd"])


@pytest.fixture
def tiny_registry(tmp_path, monkeypatch):
    """A registry of two untrained tiny IFNPs (seeds 0 and 1) whose history rows, like export's, have no 'kind'."""
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(pretrained, "REGISTRY_FILE", tmp_path / "registry.json")
    history = [{"epoch": 1.0, "step": 937, "mse": 0.05}, {"epoch": 2.0, "step": 1874, "mse": 0.04}]
    for seed, name in ((0, "mnist-ifnp"), (1, "mnist-ifnp-s1")):
        torch.manual_seed(seed)
        pretrained.register_weights(name, build("ifnp", **TINY), half=False, command="test", steps=1874,
                                    cpu_time_s=60.0, history=history,
                                    evals=[{"step": 937, "cpu_s": 30.0, "psnr40": 11.0},
                                           {"step": 1874, "cpu_s": 60.0, "psnr40": 12.5}])
    return pretrained.registry()


def test_training_log_from_the_registry_or_a_run_folder(tiny_registry, tmp_path):
    log = runlog.training_log("mnist-ifnp", tiny_registry)
    assert len(log["history"]) == 2 and log["evals"][-1]["psnr40"] == 12.5
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text('{"kind": "epoch", "epoch": 1.0, "step": 10, "mse": 0.1}\n'
                                   '{"kind": "eval", "step": 10, "cpu_s": 5.0, "psnr40": 11.0}\n')
    log = runlog.training_log(str(run), tiny_registry)
    assert log["history"][0]["mse"] == 0.1 and log["evals"][0]["psnr40"] == 11.0
    assert runlog.training_log(str(tmp_path / "nothing"), tiny_registry) == {"history": [], "evals": []}


def test_reproduce_keeps_every_seed_and_the_training_curve(tiny_registry):
    table = reproduce(models=("ifnp", "ifanp"), seeds=(0, 1), limit=6, nll_images=2, nll_samples=1, progress=False)
    (row,) = table["rows"]
    assert table["missing"] == ["ifanp"] and row["seeds"] == [0, 1]
    assert set(row["per_seed"]) == {"0", "1"}
    sp = seed_spread(row, "psnr_target")["0.4"]
    vals = [row["per_seed"][s]["0.4"]["psnr_target"] for s in ("0", "1")]
    assert sp["n"] == 2 and sp["mean"] == pytest.approx(sum(vals) / 2)
    assert row["seed_spread"]["0.4"]["psnr_whole_mean"] == pytest.approx(seed_spread(row)["0.4"]["mean"])
    # registry history rows carry no "kind": Fig. 8 must still get them
    assert table["fig8"]["ifnp"] == [{"epoch": 1.0, "mse": 0.05}, {"epoch": 2.0, "mse": 0.04}]


def test_reproduce_update_evaluates_only_the_named_rows_and_refuses_stale_ones(tiny_registry, monkeypatch):
    from ifanp import reproduce as rp

    images, _ = rp.load_eval_images("mnist")
    monkeypatch.setattr(rp, "load_train_images", lambda dataset: images[:40])
    kw = dict(seeds=(0, 1), limit=6, nll_images=2, nll_samples=1, progress=False)
    first = reproduce(models=("baseline-mean", "ifnp"), **kw)
    assert [r["model"] for r in first["rows"]] == ["baseline-mean", "ifnp"]
    ifnp = first["rows"][1]
    assert ifnp["weights_sha256"] == {"0": tiny_registry["mnist-ifnp"]["sha256"],
                                      "1": tiny_registry["mnist-ifnp-s1"]["sha256"]}
    # the measurement an update reuses is repeatable: measured anew, the same numbers
    anew = reproduce(models=("ifnp",), **kw)["rows"][0]
    assert anew["per_seed"]["1"]["0.4"]["psnr_whole"] == pytest.approx(ifnp["per_seed"]["1"]["0.4"]["psnr_whole"])
    calls = []
    real_evaluate = rp.evaluate
    monkeypatch.setattr(rp, "evaluate", lambda *a, **k: calls.append(1) or real_evaluate(*a, **k))
    # ifnp named, its weights unchanged: nothing is measured again; the baseline row is kept as it was
    again = reproduce(models=("ifnp",), previous=first, **kw)
    assert [r["model"] for r in again["rows"]] == ["baseline-mean", "ifnp"] and again["updated_rows"] == ["ifnp"]
    assert again["rows"][0] == first["rows"][0] and again["rows"][1]["per_seed"] == ifnp["per_seed"] and not calls
    # keeping ifnp carries its curve and its budget into the table
    kept = reproduce(models=("baseline-mean",), previous=first, **kw)
    assert kept["rows"][1] == ifnp and kept["fig8"]["ifnp"] == first["fig8"]["ifnp"]
    assert kept["protocol_differences"][0] == first["protocol_differences"][0]
    # refused: other settings, a seed that is not installed any more, weights replaced since
    with pytest.raises(ValueError, match="images = 6, this run with 5"):
        reproduce(models=("baseline-mean",), previous=first, **{**kw, "limit": 5})
    with pytest.raises(ValueError, match=r"seeds \[0, 1\].*seeds \[0\] are installed"):
        reproduce(models=("baseline-mean",), previous=first, **{**kw, "seeds": (0,)})
    torch.manual_seed(7)
    pretrained.register_weights("mnist-ifnp-s1", build("ifnp", **TINY), half=False, command="test", steps=1874)
    with pytest.raises(ValueError, match="seed 1 was evaluated on weights"):
        reproduce(models=("baseline-mean",), previous=first, **kw)
    # named, the model is measured again for the seed whose weights changed, and only for it
    calls.clear()
    row = reproduce(models=("ifnp",), previous=first, **kw)["rows"][1]
    assert len(calls) == 1 and row["weights_sha256"]["1"] == pretrained.registry()["mnist-ifnp-s1"]["sha256"]
    assert row["per_seed"]["0"] == ifnp["per_seed"]["0"] and row["per_seed"]["1"] != ifnp["per_seed"]["1"]


# ---- the shipped weights ---------------------------------------------------------------------------------


def test_shipped_models_lists_present_and_missing_weights():
    reg = {"mnist-ifnp": {"steps": 1874, "cpu_time_s": 120.0, "wall_time_s": 240.0, "command": "cmd",
                          "history": [{"epoch": 2.0, "step": 1874}]}}
    rows = recipes.shipped_models(("ifnp", "ifanp-lpa"), reg=reg)
    assert [r["name"] for r in rows] == ["mnist-ifnp", "mnist-ifnp-s1", "mnist-ifnp-s2", "mnist-ifanp-lpa",
                                         "mnist-ifanp-lpa-s1", "mnist-ifanp-lpa-s2"]
    assert rows[0]["present"] and rows[0]["epochs"] == pytest.approx(2.0) and rows[0]["cpu_min"] == 2.0
    assert not rows[1]["present"] and rows[1]["command"] == recipes.train_command("ifnp", 1)
    assert reporting.shipped_html(rows).count("missing") == 5
    lines = reporting.shipped_commands(rows).splitlines()
    assert lines[0] == "mnist-ifnp: cmd" and lines[3] == "mnist-ifanp-lpa: missing, train it with: " + \
        recipes.train_command("ifanp-lpa")


# ---- tables ----------------------------------------------------------------------------------------------


def test_paper_mse_inverts_the_psnr():
    assert analysis.paper_mse(20.0) == pytest.approx(0.01)
    # SPEC section 7: the implied MSE of IFANP is about 0.0115 / 0.0103 / 0.0097
    assert analysis.paper_mse(PAPER_TABLE1["ifanp"]["psnr"]) == pytest.approx([0.0115, 0.0103, 0.0097], abs=6e-5)


def test_comparison_table_puts_the_paper_beside_ours():
    table = _table({"ifnp": (12.0, 12.5, 13.0), "vae": (14.0, 15.0, 16.0)})
    html = reporting.comparison_html(table, "psnr_whole")
    assert "12.00 / 15.421 (-3.42)" in html and "12.50 / 15.447 (-2.95)" in html and "15.525" in html
    assert "14.00 / —" in html  # the VAE row, which the paper does not report
    kl = reporting.comparison_html(table, "kl")
    assert "0.1 / 0.0069" in kl and "ours − paper" not in kl


def test_checks_table_explains_the_outcome_that_happened():
    values = dict(PAPER_VALUES)
    values["ifanp"], values["ifanp-gca"] = values["ifanp-gca"], values["ifanp"]
    checks = ablation_order_checks(_table(values))
    html = reporting.checks_html(checks, noise_db=0.8)
    assert escape(reporting.CHECK_EXPLANATIONS["full_over_gca"]["fails"][:40]) in html
    assert escape(reporting.CHECK_EXPLANATIONS["lpa_over_ifnp"]["holds"][:40]) in html
    assert "within the seed noise of 0.80 dB" in html  # LPA beats IFNP by only 0.52 dB
    assert escape(reporting.CHECK_EXPLANATIONS["abs"]["fails"][:40]) in html  # the swapped-in IFANP row: below at every ratio
    texts = reporting.CHECK_EXPLANATIONS["abs"]
    values["ifanp"] = (19.0, 20.0, 21.0)  # below the paper at 20 %, above at 40 and 60 %: steeper than its row
    mixed = reporting.checks_html(ablation_order_checks(_table(values)))
    assert escape(" ".join((texts["mixed"], texts["mixed_steeper"], texts["mixed_end"]))) in mixed
    assert escape(texts["mixed_flatter"]) not in mixed
    values["ifanp"] = (19.6, 19.9, 20.0)  # above the paper at 20 and 40 %, below at 60 %: flatter than its row
    mixed = reporting.checks_html(ablation_order_checks(_table(values)))
    assert escape(" ".join((texts["mixed"], texts["mixed_flatter"], texts["mixed_end"]))) in mixed
    assert escape(texts["mixed_steeper"]) not in mixed
    # the summary counts what the checks found and names each failed claim; each model with an absolute
    # check is named once, in the group its margins put it in (the same group for the same margins)
    summary = reporting.checks_summary(checks)
    order = [c for c in checks if not c["id"].startswith("abs_")]
    n_fail = sum(c["ours"] is False for c in order)
    assert f"{len(order)} claims" in summary and f"{n_fail} fail" in summary
    assert all(c["claim"] in summary for c in order if c["ours"] is False)
    assert not any(c["claim"] in summary for c in order if c["ours"] is True)
    absolute = summary[summary.index("Against"):]
    groups = [g for g in absolute.rstrip(".").split("; ")]
    below = [g for g in groups if "IFANP is" in g or g.startswith("Against the paper's absolute numbers, IFANP is")]
    assert len(below) == 1 and "IFANP(GCA)" not in below[0]  # the swapped-in IFANP row is below the paper
    same = reporting.checks_summary(ablation_order_checks(_table(dict(values, ifanp=values["ifanp-gca"]))))
    assert same.count("IFANP(GCA)") >= 1


def _seeded_table(values, seeds):
    """A reproduce()-shaped table whose models in ``seeds`` have several seeds: {model: [psnr triples]}."""
    table = _table(values)
    for row in table["rows"]:
        if row["model"] in seeds:
            per = [_row(row["model"], v)["ratios"] for v in seeds[row["model"]]]
            row.update(seeds=list(range(len(per))), per_seed={str(i): p for i, p in enumerate(per)}, ratios=per[0])
    return table


def test_checks_are_decided_on_the_seed_means_and_say_when_the_seeds_disagree():
    p = PAPER_VALUES
    # IFANP: seed 0 at the paper's row, seed 1 1 dB above, seed 2 1.5 dB below. The paper's IFANP beats its
    # IFANP(GCA) by 0.75-1.10 dB; the mean (0.17 dB below the paper's row) still does, seed 2 does not.
    ifanp = [p["ifanp"], tuple(v + 1.0 for v in p["ifanp"]), tuple(v - 1.5 for v in p["ifanp"])]
    by_id = {c["id"]: c for c in ablation_order_checks(_seeded_table(p, {"ifanp": ifanp}))}
    c = by_id["full_over_gca"]
    means = [sum(s[i] for s in ifanp) / 3 for i in range(3)]
    assert c["margins"] == pytest.approx([m - g for m, g in zip(means, p["ifanp-gca"])])  # means, not seed 0
    assert c["ours"] is True and c["seeds"] == {"ifanp": 3, "ifanp-gca": 1}
    assert (c["seed_holds"], c["seed_combinations"]) == (2, 3)
    assert by_id["abs_ifanp"]["ours"] is False and by_id["abs_ifanp"]["seed_holds"] == 2  # seeds 0 and 1
    assert by_id["lpa_over_ifnp"]["seed_combinations"] == 1  # single-seed models: one combination
    html = reporting.checks_html(list(by_id.values()), noise_db=5.0)
    assert "within the seed noise: holds for 2 of the 3 combinations of one seed per model" in html
    assert "means over the seeds (IFANP 3, IFANP(GCA) 1)" in html
    assert "within the seed noise of 5.00 dB" in html  # single-seed checks keep the sd-based mark
    summary = reporting.checks_summary(list(by_id.values()))
    assert "verdicts change with the choice of one seed per model" in summary and c["claim"] in summary
    # every seed of IFANP above IFANP(GCA): decided, whichever seed is taken
    ifanp = [p["ifanp"], tuple(v + 1.0 for v in p["ifanp"]), tuple(v + 0.5 for v in p["ifanp"])]
    c = {c["id"]: c for c in ablation_order_checks(_seeded_table(p, {"ifanp": ifanp}))}["full_over_gca"]
    assert (c["seed_holds"], c["seed_combinations"]) == (3, 3)
    assert "holds for every one of the 3 combinations" in reporting.checks_html([c])


def test_table_md_lists_the_checks_with_their_seed_combinations(tmp_path):
    from ifanp.reproduce import write_outputs

    p = PAPER_VALUES
    ifanp = [p["ifanp"], tuple(v + 1.0 for v in p["ifanp"]), tuple(v - 1.5 for v in p["ifanp"])]
    table = _seeded_table(p, {"ifanp": ifanp})
    table["protocol_differences"] = ["one difference"]
    write_outputs(table, tmp_path)
    md = (tmp_path / "table.md").read_text()
    section = md[md.index("## The paper's claims"):]
    checks = ablation_order_checks(table)
    assert section.count("\n| ") == len(checks) + 1  # the header and one row per check
    row = next(line for line in section.splitlines() if line.startswith("| IFANP > IFANP(GCA)"))
    assert row.endswith("| 2 of 3 (within the seed noise) |") and "| holds | holds (" in row
    del table["rows"][0]  # a model of the ablation missing: no verdicts to write
    write_outputs(table, tmp_path)
    assert "## The paper's claims" not in (tmp_path / "table.md").read_text()


def test_seed_spread_table_shows_mean_and_sd():
    table = _table({"ifnp": (12.0, 12.5, 13.0)})
    table["rows"][0]["seeds"] = [0, 1]
    table["rows"][0]["per_seed"] = {"0": table["rows"][0]["ratios"],
                                    "1": {r: {**v, "psnr_whole": v["psnr_whole"] + 2} for r, v in
                                          table["rows"][0]["ratios"].items()}}
    assert "13.00 ± 1.41" in reporting.seed_spread_html(table)


# ---- time to quality -------------------------------------------------------------------------------------


def test_first_pass_value_at_and_time_to_quality():
    evals = [{"step": 250, "cpu_s": 60.0, "psnr40": 15.0}, {"step": 500, "cpu_s": 120.0, "psnr40": 20.0},
             {"step": 750, "cpu_s": 180.0, "psnr40": 19.0}]
    assert analysis.first_pass(evals, 19.86)["step"] == 500 and analysis.first_pass(evals, 21.0) is None
    assert analysis.value_at(evals, 150.0)["psnr40"] == 20.0 and analysis.value_at(evals, 10.0) is None
    reg = {"a": {"evals": evals, "cpu_time_s": 200.0, "steps": 750}, "b": {"evals": evals[:1], "steps": 250}}
    rows = {r["name"]: r for r in analysis.time_to_quality(reg, ["a", "b", "c"], 19.86)}
    assert rows["a"]["reached"] and rows["a"]["cpu_min"] == 2.0 and rows["a"]["final_psnr40"] == 19.0
    assert not rows["b"]["reached"] and rows["b"]["cpu_min"] is None and not rows["c"]["present"]


def test_goal_rows():
    res = {"ifanp-plus": {r: {"psnr_whole": p} for r, p in zip(RATIOS, (22.0, 24.0, 29.0))}}
    (row,) = analysis.goal_rows(res, (21.0, 25.0, 28.0))
    assert row["met"] == [True, False, True] and row["to_goal"] == [1.0, -1.0, 1.0]
    assert row["to_paper"][1] == pytest.approx(24.0 - 19.862)


# ---- what ifanp-plus changes -----------------------------------------------------------------------------


def test_every_option_that_ifanp_plus_changes_is_explained():
    diff = analysis.config_diff({**DEFAULTS, **VARIANTS["ifanp"]}, {**DEFAULTS, **VARIANTS["ifanp-plus"]})
    assert diff and all(reporting.explain_change(k, new) is not None for k, _, new in diff)
    assert reporting.explain_change("sigma", "pixel") != reporting.explain_change("sigma", "learned")
    assert reporting.explain_change("sigma", "fixed") is None and reporting.explain_change("skip", True) == reporting.PLUS_CHANGES["skip"]
    assert analysis.config_diff({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == [("b", 2, 3), ("c", None, 4)]


def test_setconv_input_of_a_constant_image_is_the_constant():
    """ConvCNP's density normalisation: from any non-empty context of a constant image, the signal channel of
    ifanp-plus's encoder input is that constant wherever the context reaches, and 0 elsewhere."""
    model = build("ifanp-plus", **TINY)
    k = model.cfg["setconv"]
    torch.manual_seed(0)
    for _ in range(5):
        value = float(torch.rand(()))
        images = torch.full((3, 1, 28, 28), value)
        mask = (torch.rand(3, 1, 28, 28) < torch.rand(3, 1, 1, 1) * 0.3).float()
        mask[:, :, 5, 5] = 1
        inp = model.encoder_input(images, mask)
        signal, density = inp[:, 2:3], inp[:, 3:4]
        torch.testing.assert_close(density, F.avg_pool2d(mask, k, 1, k // 2))
        reach = density > 0
        torch.testing.assert_close(signal[reach], torch.full_like(signal[reach], value))
        assert (signal[~reach] == 0).all()


# ---- structured masks and calibration ---------------------------------------------------------------------


def fixed(miss=0.3, sigma=0.1):
    """A fake model: the truth at context pixels, truth + ``miss`` at the others, sigma ``sigma`` everywhere."""
    return CompletionRule("fixed", lambda x, m: x + miss * (1 - m), sigma)


def test_coverage_counts_only_the_missing_pixels():
    images = torch.rand(4, 1, 28, 28) * 0.5
    mask = (torch.rand(4, 1, 28, 28) < 0.4).float()
    # every missing pixel is off by exactly 3 sigma; the context pixels are exact
    cov = analysis.coverage(fixed(miss=0.3, sigma=0.1), images, mask, ks=(1.0, 2.9, 3.1), samples=2, batch_size=3)
    assert cov["all"].tolist() == [0.0, 0.0, 1.0]


def test_coverage_by_pixel_group():
    images = torch.zeros(2, 1, 28, 28)
    images[:, :, 10:18, 10:18] = 0.9  # strokes
    mask = torch.zeros(2, 1, 28, 28)

    stroke_miss = CompletionRule("stroke-miss", lambda x, m: x + 0.3 * (x > 0.5))  # 3 sigma off on the strokes

    cov = analysis.coverage(stroke_miss, images, mask, (2.0,), groups=("all", "background", "stroke"), batch_size=1)
    assert cov["background"].tolist() == [1.0] and cov["stroke"].tolist() == [0.0]
    assert cov["all"][0] == pytest.approx(1 - 64 / 784)
    with pytest.raises(ValueError):
        analysis.coverage(stroke_miss, images, mask, (2.0,), groups=("edges",))


def test_structured_metrics_of_a_model_that_copies_the_context():
    images = torch.rand(5, 1, 28, 28)
    out = analysis.structured_metrics({"copy": fixed(miss=0.0)}, images, ("top", "centre"))
    assert out["top"]["copy"]["observed"] == pytest.approx(0.5)
    assert out["centre"]["copy"]["observed"] == pytest.approx(1 - 14 * 14 / 784)
    zero = analysis.structured_metrics({"zero": lambda x, m: x * m}, images, ("top",))
    # whole-image MSE = (1 - observed) x MSE of the missing pixels, as eq. (exp-split) says
    mse_half = float(images[:, :, 14:].pow(2).mean())
    assert zero["top"]["zero"]["mse_whole"] == pytest.approx(0.5 * mse_half, rel=1e-5)


# ---- figures ---------------------------------------------------------------------------------------------


def test_fig9_derives_the_papers_bars_from_its_psnr():
    fig9 = {m: {r: 0.02 for r in RATIOS} for m in ("ifnp", "ifanp")}
    fig = ex.plot_fig9(fig9, {m: {r: 17.0 for r in RATIOS} for m in fig9})
    ours, paper = fig.axes[0], fig.axes[1]
    heights = sorted(round(p.get_height(), 6) for p in paper.patches)
    expected = sorted(round(v, 6) for m in ABLATION for v in analysis.paper_mse(PAPER_TABLE1[m]["psnr"]))
    assert heights == expected
    assert sorted({round(p.get_height(), 6) for p in ours.patches}) == [0.0, 0.02]  # 3 missing models drawn flat
    dots = [line for line in ours.lines if line.get_marker() == "."]
    assert len(dots) == 2 and dots[0].get_ydata() == pytest.approx([10 ** -1.7] * 3)


def test_metric_bars_show_our_values_and_the_papers():
    table = _table({"ifnp": (12.0, 12.5, 13.0), "ifanp": (15.0, 17.0, 18.0), "vae": (14.0, 15.0, 16.0)})
    fig = ex.plot_metric_bars(table, "psnr_whole", "0.4")
    ax = fig.axes[0]
    assert sorted(p.get_width() for p in ax.patches) == [12.5, 15.0, 17.0]
    diamonds = sorted(float(line.get_xdata()[0]) for line in ax.lines if line.get_marker() == "D" and len(line.get_xdata()))
    assert diamonds == [PAPER_TABLE1["ifnp"]["psnr"][1], PAPER_TABLE1["ifanp"]["psnr"][1]]
    assert isinstance(ex.plot_metric_bars(table, "kl", "0.2"), Figure)


def test_fig8_and_the_compute_curves():
    hist = {"ifnp": [{"epoch": 1.0, "mse": 0.05}, {"epoch": 2.0, "mse": 0.04}], "ifanp": []}
    evals = {"ifnp": [{"step": 937, "cpu_s": 60.0, "psnr40": 12.0}, {"step": 1874, "cpu_s": 120.0, "psnr40": 13.0}]}
    fig = ex.plot_fig8(hist, evals, {"ifnp": 937.0})
    left, right = fig.axes
    assert list(left.lines[0].get_xdata()) == [1.0, 2.0] and left.get_ylim() == (0.0, 0.06)
    assert list(right.lines[0].get_xdata()) == [1.0, 2.0]  # steps / steps per epoch
    assert len(ex.plot_fig8(hist).axes) == 1
    fig = ex.plot_psnr_vs_cpu(evals, {"paper": 19.862})
    assert list(fig.axes[0].lines[0].get_xdata()) == [1.0, 2.0]  # CPU minutes


def test_image_figures_run_on_untrained_models():
    torch.manual_seed(0)
    models = {"IFANP": build("ifanp", **TINY).eval(), "IFANP+": build("ifanp-plus", **TINY).eval()}
    image = torch.rand(1, 28, 28)
    mask = (torch.rand(1, 1, 28, 28) < 0.3).float()
    figs = [
        completion_plots.plot_structured(models, image, ("top", "random_box")),
        completion_plots.plot_mask_explorer(models, image, 7, kind="random", ratio=0.3, samples=2),
        completion_plots.plot_mask_explorer(models, image, 7, kind="left", samples=2),
        attention_plots.plot_attention_pair(models, image, mask, 10, 12),
        ex.plot_calibration((1.0, 2.0), {"ifanp": [0.5, 0.8]}),
        ex.plot_psnr_vs_ratio({"ifanp": [12, 13, 14]}, paper={"ifanp": PAPER_TABLE1["ifanp"]["psnr"]},
                              goal=(21, 25, 28)),
    ]
    x = image[None]
    density = F.avg_pool2d(mask, 5, 1, 2)
    figs.append(image_plots.plot_setconv(x, mask, F.avg_pool2d(x * mask, 5, 1, 2) / density.clamp_min(1e-6), density, 5))
    assert all(isinstance(f, Figure) for f in figs)
    with pytest.raises(ValueError):
        completion_plots.plot_mask_explorer(models, image, 7, kind="diagonal")


# ---- the generated sentences of "Beyond the paper" ---------------------------------------------------------


def test_goal_and_time_to_quality_sentences_follow_the_numbers():
    def goal_of(psnr):
        res = {"ifanp-plus": {r: {"psnr_whole": p, "psnr_target": p - 1} for r, p in zip(RATIOS, psnr)}}
        return res, analysis.goal_rows(res, (21.0, 25.0, 28.0))

    res, goal = goal_of((22.0, 24.0, 29.0))
    assert goal[0]["met"] == [True, False, True]
    text = reporting.goal_summary(goal)
    assert text.count("IFANP+ (ours)") == 1 and "2 of 3" in text  # one sentence per model, its count of ratios
    lo, hi = min(goal[0]["to_paper"]), max(goal[0]["to_paper"])
    assert f"{lo:+.2f}" in text and f"{hi:+.2f}" in text
    every, none = (reporting.goal_summary(goal_of(p)[1]) for p in ((30.0, 30.0, 30.0), (10.0, 10.0, 10.0)))
    assert len({text, every, none}) == 3 and "of 3 ratios" not in every.split(" and ")[0]
    assert "not met (-1.00)" in reporting.goal_html(goal, res)  # 24 dB against the goal of 25 at 40 %
    logs = {"ifanp": [{"step": 250, "cpu_s": 60.0, "psnr40": 15.0}, {"step": 500, "cpu_s": 120.0, "psnr40": 19.0}],
            "ifanp-plus": [{"step": 250, "cpu_s": 90.0, "psnr40": 20.0}, {"step": 500, "cpu_s": 180.0, "psnr40": 23.0}]}
    text = reporting.time_to_quality_summary(logs, 19.862)
    ifanp_part, plus_part = text.split("IFANP+ (ours)", 1)
    assert "19.86" in ifanp_part and "19.00" in ifanp_part and "2.0" in ifanp_part  # not reached: its best, its budget
    assert "1.5" in plus_part and "250" in plus_part  # reached after 90 CPU s, at step 250
    # at equal compute: the challenger's value at the reference's 120 CPU s (the row at 90 s: 20.00 dB)
    assert "20.00" in text and "20.00" not in reporting.time_to_quality_summary({"ifanp-plus": logs["ifanp-plus"]},
                                                                                19.862)
    reached = reporting.time_to_quality_summary({"ifanp": logs["ifanp"]}, 15.0)
    assert "19.00" not in reached and "1.0" in reached  # reached at the first row, after 60 CPU s


def test_late_gain_and_context_share():
    evals = [{"step": 250 * i, "cpu_s": 60.0 * i, "psnr40": 10.0 + i} for i in range(1, 9)]
    late = analysis.late_gain(evals)  # the last quarter: from row 6 (16 dB, 360 s) to row 8 (18 dB, 480 s)
    assert late == {"gain": 2.0, "cpu_min": 2.0, "per_cpu_min": 1.0, "final": 18.0}
    assert analysis.late_gain(evals[:3]) is None
    # a model exact on the context: MSE whole = (1 - rho) MSE missing
    rho = round(0.4 * 784) / 784
    split = analysis.context_share((1 - rho) * 0.02, 0.02, 0.4)
    assert split["mse_context"] == pytest.approx(0.0, abs=1e-12) and split["share"] == pytest.approx(0.0, abs=1e-9)
    split = analysis.context_share(rho * 0.01 + (1 - rho) * 0.02, 0.02, 0.4)
    assert split["mse_context"] == pytest.approx(0.01) and split["share"] == pytest.approx(rho * 0.01 / (rho * 0.01 + (1 - rho) * 0.02))


def test_structured_calibration_and_sigma_sentences_follow_the_numbers():
    struct = {k: {"ifanp": {"psnr_whole": 14.0, "psnr_target": 11.0, "observed": 0.5},
                  "ifanp-plus": {"psnr_whole": 15.0, "psnr_target": 11.0 + d, "observed": 0.5}}
              for k, d in (("top", 1.5), ("left", -0.5))}
    text = reporting.structured_summary(struct)
    assert "1 of the 2" in text and "-0.50 dB (left)" in text and "+1.50 dB (top)" in text
    swapped = reporting.structured_summary(struct, reference="ifanp-plus", challenger="ifanp")
    assert "1 of the 2" in swapped and "+0.50 dB (left)" in swapped and "-1.50 dB (top)" in swapped
    assert reporting.structured_summary({"top": {"ifanp": struct["top"]["ifanp"]}}) == ""
    assert "IFANP+ (ours) missing (dB)" in reporting.structured_html(struct)
    # calibration: each model's observed fraction beside erf(2 / sqrt 2); one verdict per outcome
    nominal = f"{math.erf(2 / math.sqrt(2)):.1%}"
    cases = {"narrow": 0.80, "right": 0.96, "wide": 0.999}
    verdicts = {}
    for case, v in cases.items():
        text = reporting.calibration_summary((1.0, 2.0), {"ifanp": [0.5, v]})
        assert f"{v:.1%}" in text and nominal in text and text.count("IFANP") == 1
        verdicts[case] = text.rsplit(",", 1)[-1]
    assert len(set(verdicts.values())) == 3  # too narrow, about right, too wide: three different words
    both = reporting.calibration_summary((1.0, 2.0), {"ifanp": [0.5, 0.80], "ifanp-plus": [0.7, 0.81]})
    assert both.count(verdicts["narrow"].strip()) == 2  # the same outcome, the same verdict
    assert reporting.decoder_sigma(build("ifanp", **TINY)) == "fixed, 0.100"
    assert reporting.decoder_sigma(build("ifanp", sigma="pixel", **TINY)) == "per pixel"
    learned = build("ifanp", sigma="learned", **TINY)
    assert reporting.decoder_sigma(learned) == f"learned, {0.01 + 0.1:.3f}"


def test_the_claims_are_checked_on_the_faithful_rows_when_all_five_are_there(tmp_path):
    """faithful_view puts the faithful rows in the ablation's place: the checks then read their numbers, not the
    shipped rows', and table.md gets a second checks section only when all five faithful rows exist."""
    from ifanp.reproduce import FAITHFUL, faithful_view, has_faithful, write_outputs

    shipped = dict(PAPER_VALUES)
    shipped["ifanp"], shipped["ifanp-gca"] = shipped["ifanp-gca"], shipped["ifanp"]  # full_over_gca fails here
    table = _table({**shipped, **{f: PAPER_VALUES[m] for f, m in FAITHFUL.items()}})  # and holds here
    table["protocol_differences"] = ["one difference"]
    assert has_faithful(table)
    view = faithful_view(table)
    assert sorted(r["model"] for r in view["rows"]) == sorted(ABLATION)
    assert {r["source"] for r in view["rows"]} == {f"mnist-{f}" for f in FAITHFUL}  # the faithful rows themselves
    shipped_checks = {c["id"]: c["ours"] for c in ablation_order_checks(table)}
    faithful_checks = {c["id"]: c["ours"] for c in ablation_order_checks(view)}
    assert shipped_checks["full_over_gca"] is False and faithful_checks["full_over_gca"] is True
    write_outputs(table, tmp_path)
    md = (tmp_path / "table.md").read_text()
    section = md[md.index("## The same claims checked on the faithful configurations"):]
    row = next(ln for ln in section.splitlines() if ln.startswith("| IFANP > IFANP(GCA)"))
    assert row.split(" | ")[2].startswith("holds (")
    table["rows"] = [r for r in table["rows"] if r["model"] != "ifnp-full"]
    assert not has_faithful(table)
    write_outputs(table, tmp_path)
    assert "faithful configurations" not in (tmp_path / "table.md").read_text()


def test_faithful_summary_follows_the_numbers():
    from ifanp.reporting_faithful import faithful_summary

    p = PAPER_TABLE1
    near = tuple(v - 0.4 for v in p["ifnp"]["psnr"])  # within 0.5 dB everywhere
    low = (p["ifanp"]["psnr"][0] - 0.6, p["ifanp"]["psnr"][1], p["ifanp"]["psnr"][2] + 1)  # too low at 20 % only
    text = faithful_summary(_table({"ifnp-full": near, "ifanp-full": low, "ifanp": low}))
    lines = text.splitlines()
    assert len(lines) == 2  # one per faithful row, none for the shipped IFANP
    assert lines[0].startswith("- IFNP faithful (1 seed)") and "at or above the paper's number minus 0.5 dB" in lines[0]
    assert f"{near[0]:.2f} / {near[1]:.2f} / {near[2]:.2f} dB against the paper's 15.42 / 15.45 / 15.53" in lines[0]
    assert lines[1].endswith("more than 0.5 dB below the paper's number at 20 %.")


def test_faithful_evidence_says_whether_lpa_helps_at_full_resolution():
    from ifanp.reporting_faithful import faithful_evidence

    below = faithful_evidence(_table({"ifanp-full": (18, 19, 20), "ifanp-gca-full": (19, 20.5, 21)}))
    assert "does not help (-1.50 dB)" in below and "speaks against" in below and "1 seed" in below
    above = faithful_evidence(_table({"ifanp-full": (19, 21, 22), "ifanp-gca-full": (19, 20.5, 21)}))
    assert "LPA on top of GCA helps (+0.50 dB)" in above and "supports" in above
    assert faithful_evidence(_table({"ifanp-full": (19, 21, 22)})) == ""


def _evals(values, every=250):
    return [{"step": every * (i + 1), "psnr40": v} for i, v in enumerate(values)]


def test_curve_tails_averages_the_seeds_and_says_whether_the_curve_still_rises():
    from ifanp.reporting_faithful import curve_tails

    text = curve_tails({"ifanp": [_evals([10, 12, 13, 13.5]), _evals([10, 11, 12.5, 13.5])],
                        "ifnp": [_evals([10, 11, 11.2, 11.1])]})
    rising, flat = text.splitlines()
    # means 10, 11.5, 12.75, 13.5: the last three changes +1.50, +1.25, +0.75
    assert rising.startswith("- IFANP: 13.50 dB at its last check (mean over 2 seeds)")
    assert "(250 steps apart): +1.50, +1.25, +0.75 dB, still rising" in rising
    assert "+1.00, +0.20, -0.10 dB, not rising at every check" in flat and "(mean over 1 seed)" in flat
    assert curve_tails({"ifnp": [_evals([10, 11])]}) == ""  # too short a curve says nothing


def test_plot_eval_curves_draws_every_seed_and_the_papers_level():
    from ifanp.plotting.charts import COLORS, plot_eval_curves

    fig = plot_eval_curves({"ifanp": [_evals([10, 12, 13]), _evals([9, 11, 12])], "ifnp": [_evals([8, 9, 9.5])]},
                           paper={"ifanp": 19.86})
    ax = fig.axes[0]
    seed_lines = [ln for ln in ax.lines if ln.get_linestyle() == "-"]
    assert len(seed_lines) == 3 and [ln.get_color() for ln in seed_lines[:2]] == [COLORS["ifanp"]] * 2
    assert seed_lines[0].get_linewidth() > seed_lines[1].get_linewidth()  # seed 0 stands out
    (paper,) = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert list(paper.get_ydata()) == [19.86, 19.86] and max(paper.get_xdata()) == 750
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["IFANP (2 seeds)", "IFNP (1 seed)"]
    faithful = plot_eval_curves({"ifanp-full": [_evals([10, 12, 13])]}).axes[0]
    assert faithful.lines[0].get_color() == COLORS["ifanp"]  # a faithful row in its model's colour
    assert faithful.get_legend().get_texts()[0].get_text() == "IFANP faithful (1 seed)"


def _budget_rows(steps, values):
    return [{"step": s, "0.2": v, "0.4": v + 3, "0.6": v + 5} for s, v in zip(steps, values)]


def test_budget_summary_compares_the_last_checkpoints_and_extrapolates_only_below_the_goal():
    runs = {"3,000 steps": _budget_rows([1500, 3000], [16.0, 17.0]),
            "6,000 steps": _budget_rows([3000, 6000], [17.2, 18.0])}
    paper = (19.39, 19.86, 20.14)
    text = reporting_faithful.budget_summary(runs, paper)
    lines = text.splitlines()
    assert "17.00 / 20.00 / 22.00 dB at step 3,000" in lines[0]
    assert "18.00 / 21.00 / 23.00 dB at step 6,000" in lines[1]
    assert "+1.00 / +1.00 / +1.00 dB" in lines[2]  # the last checkpoints, not the 3,000-step point of the long run
    # 20 %: 0.89 dB below 18.89 at +1.00 dB per doubling -> 6,000 * 2 ** 0.89 steps
    assert "about 11,000 steps" in lines[3] and "extrapolation" in lines[3]  # 11,113 to two figures
    assert "reaches the goal" in lines[4] and "reaches the goal" in lines[5]  # 21 >= 19.36, 23 >= 19.64
    # a longer run that is no better is not extrapolated into a budget
    flat = {"a": _budget_rows([3000], [17.0]), "b": _budget_rows([6000], [16.9])}
    assert "did not close the gap" in reporting_faithful.budget_summary(flat, paper).splitlines()[3]
    assert "extrapolation" not in reporting_faithful.budget_summary(flat, paper)
    # one run: its line only
    assert len(reporting_faithful.budget_summary({"a": _budget_rows([3000], [17.0])}, paper).splitlines()) == 1


def test_budget_groups_label_each_curve_from_its_rows():
    runs = {"x": {"psnr_whole": [{**r, "model": "ifanp-full", "seed": 1} for r in _budget_rows([3000, 1500], [17, 16])]},
            "y": {"psnr_whole": [{**r, "model": "ifanp-full", "seed": 1} for r in _budget_rows([6000], [18])]},
            "z": {"psnr_whole": [{**r, "model": "ifanp-gca-full", "seed": 0} for r in _budget_rows([6000], [19])]}}
    groups = reporting_faithful.budget_groups(runs, recipe_steps=3000)
    assert set(groups) == {("ifanp-full", 1), ("ifanp-gca-full", 0)}
    assert list(groups[("ifanp-full", 1)]) == ["IFANP faithful, 3,000 steps (the recipe), seed 1",
                                               "IFANP faithful, 6,000 steps, seed 1"]
    assert [r["step"] for r in groups[("ifanp-full", 1)]["IFANP faithful, 3,000 steps (the recipe), seed 1"]] == [1500, 3000]
    assert list(groups[("ifanp-gca-full", 0)]) == ["IFANP(GCA) faithful, 6,000 steps, seed 0"]


def test_budget_seed_note_lists_the_seeds_and_extrapolates_the_mean_of_the_seeds():
    def group(seed, v3k, v6k):
        return {"short": [{**r, "seed": seed} for r in _budget_rows([1500, 3000], [v3k - 1, v3k])],
                "long": [{**r, "seed": seed} for r in _budget_rows([3000, 6000], [v3k, v6k])]}
    paper = (19.39, 19.86, 20.14)
    # the mean at 20 %, 16.0, is 2.89 dB below 18.89; 40 % and 60 % means reach their goals
    per_seed = {0: {"0.2": 15.5, "0.4": 21.0, "0.6": 23.0}, 1: {"0.2": 17.0, "0.4": 21.0, "0.6": 23.0},
                2: {"0.2": 15.5, "0.4": 21.0, "0.6": 23.0}}
    lines = reporting_faithful.budget_seed_note({1: group(1, 17.0, 18.0)}, per_seed, paper).splitlines()
    assert len(lines) == 1 and "At 20 %" in lines[0]
    assert "seed 1: 17.00, seed 0: 15.50" in lines[0] and "16.00 dB, is 2.89 dB below" in lines[0]
    # +1.00 dB per doubling from the 3,000-step recipe: 3,000 * 2 ** 2.89 = 22,233 -> 22,000
    assert "about 22,000 steps" in lines[0] and "one seed" in lines[0]
    # two seeds measured: their mean gain, (1.0 + 2.0) / 2 = 1.5 dB per doubling -> 3,000 * 2 ** (2.89 / 1.5)
    both = reporting_faithful.budget_seed_note({1: group(1, 17.0, 18.0), 0: group(0, 15.5, 17.5)}, per_seed, paper)
    assert "+1.50 dB" in both and f"about {round(3000 * 2 ** (2.89 / 1.5), -3):,.0f} steps" in both
    assert "seeds 0, 1" in both and "2 seeds" in both
    # a budget run of a seed that is not shipped, or a single budget, says nothing
    assert reporting_faithful.budget_seed_note({1: group(1, 17.0, 18.0)}, {0: per_seed[0], 2: per_seed[2]}, paper) == ""
    assert reporting_faithful.budget_seed_note({1: {"long": group(1, 17.0, 18.0)["long"]}}, per_seed, paper) == ""


def test_budget_versus_compares_two_models_at_each_shared_budget():
    def rows(model, steps, v20):
        return [{**r, "model": model, "seed": 1} for r in _budget_rows(steps, v20)]
    groups = {("ifanp-full", 1): {"a": rows("ifanp-full", [3000], [17.0]), "b": rows("ifanp-full", [6000], [19.0])},
              ("ifanp-gca-full", 1): {"c": rows("ifanp-gca-full", [3000], [18.0]),
                                      "d": rows("ifanp-gca-full", [6000], [18.5])}}
    lines = reporting_faithful.budget_versus(groups, "ifanp-full", "ifanp-gca-full").splitlines()
    assert "3,000 steps" in lines[0] and "-1.00 / -1.00 / -1.00" in lines[0]
    assert "6,000 steps" in lines[1] and "+0.50 / +0.50 / +0.50" in lines[1]
    assert "ahead of IFANP(GCA) faithful at every ratio" in lines[2]
    groups[("ifanp-gca-full", 1)]["d"] = rows("ifanp-gca-full", [6000], [19.5])
    assert "0 of the 3 ratios" in reporting_faithful.budget_versus(groups, "ifanp-full", "ifanp-gca-full")
    # no budget in common: nothing
    del groups[("ifanp-gca-full", 1)]
    assert reporting_faithful.budget_versus(groups, "ifanp-full", "ifanp-gca-full") == ""


def test_plot_budget_curves_draws_each_run_at_each_ratio_with_the_paper_and_the_goal():
    runs = {"short": _budget_rows([1500, 3000], [16.0, 17.0]), "long": _budget_rows([3000, 6000], [17.2, 18.0])}
    fig = ex.plot_budget_curves(runs, (19.39, 19.86, 20.14))
    axes = fig.axes
    assert len(axes) == 3
    for ax, paper in zip(axes, (19.39, 19.86, 20.14)):
        ys = sorted(tuple(line.get_ydata()) for line in ax.lines)
        assert (paper, paper) in ys and (paper - 0.5, paper - 0.5) in ys
    widths = {line.get_label(): line.get_linewidth() for line in axes[0].lines}
    assert widths["long"] > widths["short"]  # the longest run stands out
    assert list(axes[2].lines[1].get_ydata()) == [22.2, 23.0]  # the 60 % panel reads the 60 % values
    # groups share a colour; within a group the longest run is the thick one
    runs["other"] = _budget_rows([3000], [16.5])
    fig = ex.plot_budget_curves(runs, (19.39, 19.86, 20.14), groups=[["short", "long"], ["other"]])
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    assert lines["short"].get_color() == lines["long"].get_color() != lines["other"].get_color()
    assert lines["long"].get_linewidth() > lines["short"].get_linewidth()
    assert lines["other"].get_linewidth() == lines["long"].get_linewidth()  # alone in its group: its longest
