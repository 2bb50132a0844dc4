"""The full-resolution experiment: the recipe it runs and the sentence the claims table adds."""
import json

from ifanp import reporting, reporting_faithful
from ifanp.recipes import recipe


def test_the_runs_are_the_shipped_recipe_at_full_resolution(load_tool):
    tool = load_tool("resolution_experiment")
    args = tool.train_args("ifanp", 750)
    shipped = recipe("ifanp", 0).train_args()
    out = shipped.index("--out")
    assert args[: out + 1] == shipped[: out + 1]  # the same model, steps (schedule), seed, threads, eval cadence
    assert args[out + 1] == "runs/resolution/ifanp-down1-s0"
    assert args[out + 2 :] == ["--set", "down=1", "--no-progress", "--stop-after", "750"]


def _curves(full, half, gca_half, gca_full=None, step=1000):
    runs = [{"model": "ifanp", "down": 1, "seed": 0, "evals": [{"step": 500, "psnr40": 12.0}, {"step": step, "psnr40": full}]}]
    runs += [{"model": "ifanp", "down": 2, "seed": s, "evals": [{"step": step, "psnr40": v}]} for s, v in enumerate(half)]
    runs.append({"model": "ifanp-gca", "down": 2, "seed": 0, "evals": [{"step": step, "psnr40": gca_half}]})
    if gca_full is not None:
        runs.append({"model": "ifanp-gca", "down": 1, "seed": 0, "evals": [{"step": step, "psnr40": gca_full}]})
    return {"compare_step": step, "runs": runs}


def test_evidence_reports_the_numbers_at_the_compared_step_and_the_right_verdict():
    text = reporting_faithful.resolution_evidence(_curves(17.0, [16.0, 16.5, 17.5], 18.0))
    assert text.startswith("Measured") and "17.00 dB" in text and "16.67 dB ± 0.76 dB over 3 seeds" in text
    assert "0.33 dB above its 14x14 runs and still below IFANP(GCA)" in text
    assert "supports the hypothesis" in reporting_faithful.resolution_evidence(_curves(18.5, [16.0, 16.5], 18.0))
    both = reporting_faithful.resolution_evidence(_curves(18.5, [16.0], 18.0, gca_full=19.0))
    assert "still does not help" in both and "-0.50 dB" in both and "against the hypothesis" in both
    assert reporting_faithful.resolution_evidence(_curves(17.0, [], 18.0)) == ""  # nothing to compare with


def test_every_explanation_of_the_claims_table_says_how_sure_it_is():
    for key, texts in reporting.CHECK_EXPLANATIONS.items():
        for outcome, text in texts.items():
            if outcome in ("mixed_steeper", "mixed_flatter"):  # continue the "mixed" sentence, measured
                continue
            assert text.startswith(reporting.EXPLANATION_TAGS), (key, outcome)


def test_rules_summary_names_the_trained_models_below_the_best_rule():
    def row(model, label, values):
        return {"model": model, "label": label,
                "ratios": {r: {"psnr_whole": v} for r, v in zip(("0.2", "0.4"), values)}}
    table = {"rows": [row("baseline-mean", "mean image", (11.0, 11.0)), row("baseline-gp", "GP", (16.0, 21.0)),
                      row("ifnp", "IFNP", (12.0, 13.0)), row("ifanp", "IFANP", (17.0, 19.8))]}
    lines = reporting.rules_summary(table).splitlines()
    assert lines[0] == "- 20 %: the best rule without learning, GP (16.00 dB), is ahead of IFNP."
    assert lines[1] == "- 40 %: the best rule without learning, GP (21.00 dB), is ahead of IFNP, IFANP."
    assert reporting.rules_summary({"rows": table["rows"][2:]}) == ""  # no rule rows, no line


def test_collect_keeps_a_recorded_run_whose_folder_is_gone(tmp_path, monkeypatch, load_tool):
    tool = load_tool("resolution_experiment")
    out = tmp_path / "mnist-resolution.json"
    old = {"model": "ifanp", "down": 1, "seed": 0, "source": "runs/resolution/ifanp-down1-s0", "command": "c",
           "evals": [{"step": 250, "psnr40": 11.9, "cpu_s": 500.0}, {"step": 500, "psnr40": 12.4, "cpu_s": 1000.0}]}
    out.write_text(json.dumps({"runs": [old]}))
    monkeypatch.setattr(tool, "OUT", out)
    monkeypatch.setattr(tool, "RUNS", tmp_path / "runs")  # no run folders here
    assert tool.collect() == 0
    data = json.loads(out.read_text())
    full = [r for r in data["runs"] if r["down"] == 1]
    assert full == [old] and data["compare_step"] == 500
    assert any(r["down"] == 2 for r in data["runs"])  # the shipped 14x14 runs, read from the registry
