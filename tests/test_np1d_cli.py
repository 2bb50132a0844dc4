"""``python -m ifanp train1d`` (ifanp.cli_train1d), its registered weights, and the chapter's from-scratch CNP."""
from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ifanp import pretrained
from ifanp.cli import main
from ifanp.cli_train1d import gp_log_likelihood_1d, make_sampler
from ifanp.models.setnp import build_1d

TINY = ["--steps", "3", "--batch-size", "4", "--eval-tasks", "4", "--eval-samples", "2", "--threads", "1"]


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    """An empty weights folder in place of the package's, so that tests never touch the shipped files."""
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(pretrained, "REGISTRY_FILE", tmp_path / "registry.json")
    return tmp_path


@pytest.fixture
def captured(monkeypatch):
    """Records the models handed to ``register_weights`` (and still registers them)."""
    models = {}
    original = pretrained.register_weights

    def spy(name, model, **kw):
        models[name] = model
        return original(name, model, **kw)

    monkeypatch.setattr(pretrained, "register_weights", spy)
    return models


@pytest.mark.parametrize("model", ["cnp", "anp"])
def test_register_and_reload_give_identical_predictions(model, weights_dir, captured, capsys):
    name = f"test-{model}"
    assert main(["train1d", "--model", model, "--kernel", "matern52", *TINY, "--register", name]) == 0
    out = capsys.readouterr().out
    assert "held-out log-likelihood per target point" in out and f"registered {name}" in out

    entry = json.loads((weights_dir / "registry.json").read_text())[name]
    assert entry["file"] == f"{name}.safetensors" and entry["half"] is False and entry["family"] == "1d"
    assert entry["kernel"] == "matern52" and entry["steps"] == 3
    assert entry["wall_time_s"] >= 0 and math.isfinite(entry["eval_loglik"])
    assert entry["eval_loglik"] < entry["gp_eval_loglik"]  # the exact GP is the best predictor on average
    assert entry["sha256"] == pretrained.sha256_of(weights_dir / entry["file"])
    assert f"--register {name}" in entry["command"] and "--model " + model in entry["command"]

    trained = captured[name].eval()
    loaded = pretrained.load_pretrained(name)
    assert loaded.config == trained.config
    xc, yc, xt, _ = make_sampler("matern52").sample(3, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        for a, b in zip(trained.predict(xc, yc, xt), loaded.predict(xc, yc, xt)):
            assert torch.equal(a, b)
        torch.manual_seed(0)
        s1 = trained.predict(xc, yc, xt, samples=4)[0]
        torch.manual_seed(0)
        s2 = loaded.predict(xc, yc, xt, samples=4)[0]
    assert torch.equal(s1, s2)


def test_recorded_command_reproduces_the_run(weights_dir, captured, capsys):
    assert main(["train1d", "--model", "np", *TINY, "--seed", "3", "--register", "first"]) == 0
    first = json.loads((weights_dir / "registry.json").read_text())["first"]
    argv = shlex.split(first["command"])
    assert argv[:4] == ["python", "-m", "ifanp", "train1d"]
    # Rerun the recorded command (under another name): same weights, same evaluation number.
    argv[argv.index("--register") + 1] = "second"
    assert main(argv[3:]) == 0
    second = json.loads((weights_dir / "registry.json").read_text())["second"]
    assert second["eval_loglik"] == first["eval_loglik"]
    for (k, a), (_, b) in zip(captured["first"].state_dict().items(), captured["second"].state_dict().items()):
        assert torch.equal(a, b), k
    capsys.readouterr()


def test_without_register_nothing_is_written_and_threads_are_restored(weights_dir, capsys):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(["train1d", "--model", "cnp", *TINY, "--quiet"]) == 0  # TINY has --threads 1
        assert torch.get_num_threads() == 2  # the caller's setting is back
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "exact GP with the true kernel" in out and "1 thread(s)" in out
    assert list(weights_dir.iterdir()) == []


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--model", "gp"], "invalid choice: 'gp'"),
        (["--kernel", "matern32"], "invalid choice: 'matern32'"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--lr", "-1"], "--lr must be a positive number"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--register", "../evil"], "--register '../evil'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, expected, weights_dir, capsys):
    assert main(["train1d", *argv]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err


def test_gp_log_likelihood_is_the_exact_conditional_density():
    """The GP reference of the table: log N(y_T | posterior mean, posterior cov + noise), checked
    against the joint Gaussian of (context, fresh target observations) computed the long way."""
    sampler = make_sampler("rbf")
    batch = sampler.sample(2, generator=torch.Generator().manual_seed(0))
    xc, yc, xt, yt = (t.double() for t in batch)
    per_task = gp_log_likelihood_1d(sampler, [batch], per_task=True)
    k, n = sampler.kernel, sampler.noise
    for b in range(2):
        x = torch.cat([xc[b], xt[b]])
        cov = k(x) + n * torch.eye(len(x))
        nc = xc.shape[1]
        cov[:nc, nc:] = k(xc[b], xt[b])  # a target is a new observation: its noise is independent
        cov[nc:, :nc] = cov[:nc, nc:].T
        joint = torch.distributions.MultivariateNormal(torch.zeros(len(x), dtype=torch.float64), cov)
        marginal = torch.distributions.MultivariateNormal(torch.zeros(nc, dtype=torch.float64), cov[:nc, :nc])
        y = torch.cat([yc[b, :, 0], yt[b, :, 0]])
        expected = joint.log_prob(y) - marginal.log_prob(yc[b, :, 0])
        torch.testing.assert_close(per_task[b], expected, rtol=1e-6, atol=1e-6)
    # The per-point value is the sum over tasks divided by the number of target points.
    assert gp_log_likelihood_1d(sampler, [batch]) == pytest.approx(float(per_task.sum()) / yt[..., 0].numel())
    # The GP beats a model that ignores the context (prior predictive N(0, k(x,x) + noise) per point).
    prior = torch.distributions.Normal(0.0, math.sqrt(1.0 + n)).log_prob(yt).mean()
    assert gp_log_likelihood_1d(sampler, [batch]) > float(prior)


# ---- the chapter's from-scratch CNP ----------------------------------------------------------------------

NOTEBOOK = Path(__file__).resolve().parents[1] / "book" / "neural_processes.ipynb"


def _notebook_definitions() -> dict:
    """Run the notebook's cells that define ``TinyCNP``/``cnp_loss`` and ``tiny_to_package`` (and only
    those), so that the test checks the chapter's own code, not a copy of it."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    namespace = {"torch": torch, "nn": nn, "F": F}
    found = 0
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and ("class TinyCNP" in source or "def tiny_to_package" in source):
            exec(compile(source, str(NOTEBOOK), "exec"), namespace)  # noqa: S102 (the chapter's own cells)
            found += 1
    assert found == 2, "the chapter should define TinyCNP and tiny_to_package in two cells"
    return namespace


def test_from_scratch_cnp_equals_the_package_cnp():
    ns = _notebook_definitions()
    torch.manual_seed(0)
    tiny = ns["TinyCNP"]()
    package = ns["tiny_to_package"](tiny, build_1d("cnp")).eval()
    xc, yc, xt, yt = make_sampler("rbf").sample(3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        m1, s1 = tiny(xc, yc, xt)
        m2, s2 = package.predict(xc, yc, xt)
        torch.testing.assert_close(m1, m2, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(s1, s2, rtol=1e-5, atol=1e-5)
        # ... and so do the training losses: -sum_t log N(y_t | mean, std^2), averaged over the tasks.
        torch.testing.assert_close(ns["cnp_loss"](tiny, xc, yc, xt, yt), package.loss(xc, yc, xt, yt).loss,
                                   rtol=1e-5, atol=1e-4)
        # Another tiny network gives another package model: the copy is not vacuous.
        other = ns["tiny_to_package"](ns["TinyCNP"](), build_1d("cnp")).eval()
        assert (other.predict(xc, yc, xt)[0] - m2).abs().max() > 1e-3
