"""The table of shipped runs (ifanp.recipes) is the one place their budgets live: the registry's recorded
commands agree with it, the book's budgets and the training script are read from it."""
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ifanp import recipes
from ifanp.pretrained import registry
from ifanp.reproduce import ABLATION, TABLE_MODELS

ROOT = Path(__file__).resolve().parents[1]


def _options(command: str) -> dict[str, str]:
    """``--key value`` pairs of the ``python -m ifanp train`` part of a command line."""
    words = shlex.split(command.split("&&")[0])
    return {w[2:]: v for w, v in zip(words, words[1:]) if w.startswith("--") and not v.startswith("--")}


def test_every_installed_weight_was_made_by_its_recipe():
    reg = registry()
    checked = 0
    for r in recipes.RECIPES:
        entry = reg.get(r.registry_name)
        if entry is None:
            continue
        recorded, ours = _options(entry["command"]), _options(r.command())
        for key in ("model", "dataset", "steps", "seed", "eval-every", "out"):
            assert recorded.get(key) == ours.get(key), (r.run, key, recorded.get(key), ours.get(key))
        assert entry["steps"] == r.steps
        checked += 1
    assert checked >= 1 or not reg


def test_the_budgets_of_the_book_come_from_the_table():
    mnist = [r for r in recipes.RECIPES if r.dataset == "mnist"]  # the book's budgets are MNIST's
    steps = {r.model: r.steps for r in mnist}
    assert {steps[m] for m in TABLE_MODELS if m != "ifanp-plus"} == {recipes.ABLATION_STEPS}
    assert recipes.PLUS_STEPS == steps["ifanp-plus"] > recipes.ABLATION_STEPS
    for model in ABLATION + ("vae", "np", "ifanp-plus"):
        seeds = tuple(sorted(r.seed for r in mnist if r.model == model))
        assert seeds == recipes.SHIPPED_SEEDS.get(model, (0,)) == recipes.shipped_seeds(model), model
    # a second dataset's runs change none of them, and list only their own seeds
    other = {r.dataset for r in recipes.RECIPES} - {"mnist"}
    for dataset in other:
        for r in (r for r in recipes.RECIPES if r.dataset == dataset):
            assert recipes.shipped_seeds(r.model, dataset) == tuple(
                sorted(q.seed for q in recipes.RECIPES if (q.model, q.dataset) == (r.model, dataset)))
            assert r.registry_name.startswith(f"{dataset}-") and recipes.recipe(r.model, r.seed, dataset) == r
    assert len({r.run for r in recipes.RECIPES}) == len(recipes.RECIPES)  # one folder per run
    assert len({r.registry_name for r in recipes.RECIPES}) == len(recipes.RECIPES)


def test_train_command_is_the_recipe_of_that_model_and_seed():
    cmd = recipes.train_command("ifanp", 2)
    assert _options(cmd)["seed"] == "2" and cmd.endswith("--name mnist-ifanp-s2")
    plus = _options(recipes.train_command("ifanp-plus"))
    assert plus["steps"] == str(recipes.PLUS_STEPS) and plus["out"] == recipes.recipe("ifanp-plus").out
    # a model the script does not make gets the ablation budget and a folder of its own
    other = _options(recipes.train_command("ifanp-gca", 5))
    assert other["steps"] == str(recipes.ABLATION_STEPS) and other["out"].endswith("ifanp-gca-s5")


def test_the_training_script_reads_the_table():
    out = subprocess.run([sys.executable, "-m", "ifanp.recipes"], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout.splitlines()
    assert len(out) == len(recipes.RECIPES)
    for line, r in zip(out, recipes.RECIPES):
        folder, name, *args = line.split()
        assert (folder, name) == (r.out, r.registry_name) and args == r.train_args()
    script = (ROOT / "tools" / "train_pretrained.sh").read_text()
    assert "python -m ifanp.recipes" in script or "-m ifanp.recipes" in script
    assert "--steps" not in script and "3000" not in script  # no second copy of a budget
    bad = subprocess.run([sys.executable, "-m", "ifanp.recipes", "no-such-run"], capture_output=True, text=True,
                         cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_load_or_train_without_weights_names_the_command(monkeypatch):
    monkeypatch.setattr(recipes, "registry", lambda: {})
    missing = recipes.load_or_train("ifanp-lpa", required=False)
    assert missing.model is None and recipes.train_command("ifanp-lpa") in missing.how
    with pytest.raises(recipes.WeightsError, match="train it with"):
        recipes.load_or_train("ifanp-lpa")
    with pytest.raises(ValueError, match="steps"):
        recipes.load_or_train("ifanp-lpa", train_here=True)


def test_load_or_train_trains_and_reloads_the_run(tmp_path):
    loaded = recipes.load_or_train("ifnp", train_here=True, steps=2, out=tmp_path / "run", batch_size=4,
                                   train_limit=8, overrides={"hidden": 8, "stem": 8, "z_dim": 8})
    assert loaded.source == str(tmp_path / "run") and not loaded.model.training
    assert (tmp_path / "run" / "log.jsonl").is_file() and loaded.how == "trained here, 2 steps"
