"""``python -m ifanp export-onnx``: every graph the live widgets use equals the PyTorch model.

Each export (the torch.export-based exporter, as the book build runs it; cached under a key of the
weights and the code, so a book build in the same session reuses it) is run by ``onnxruntime`` on
fixed inputs with other batch and sample counts than it was traced with, and compared with the
shipped PyTorch model: max abs difference at most 1e-4 for the mean and the std of every row of eps.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ifanp.cli import main
from ifanp.onnx_export import (
    ATTENTION_MODELS,
    NP1D_MODELS,
    WIDGET_MODELS,
    CompletionGraph,
    NP1DGraph,
    example_inputs,
    export_all,
    np1d_inputs,
)
from ifanp.pretrained import available, load_pretrained

ort = pytest.importorskip("onnxruntime", reason="pip install -r requirements-dev.txt (onnxruntime)")
pytestmark = [pytest.mark.slow]
TOL = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    return out, export_all(out, quiet=True)


def test_every_widget_model_is_exported(exported):
    out, manifest = exported
    names = [m["name"] for m in manifest["models"]]
    assert names == [n for n in WIDGET_MODELS if n in available()]
    assert set(WIDGET_MODELS) <= set(available()), "a model the widgets offer is not shipped"
    assert manifest["exporter"].startswith("torch.export")
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert [m["name"] for m in manifest["np1d"]] == list(NP1D_MODELS)
    for m in manifest["models"] + manifest["attention"] + manifest["np1d"]:
        assert (out / m["file"]).stat().st_size == m["bytes"] > 10_000


@pytest.mark.parametrize("name", WIDGET_MODELS)
def test_the_graph_equals_pytorch(exported, name):
    out, manifest = exported
    info = next(m for m in manifest["models"] if m["name"] == name)
    model = load_pretrained(name).float().eval()
    sess = ort.InferenceSession(str(out / info["file"]), providers=["CPUExecutionProvider"])
    for batch, samples, seed in ((1, 1, 3), (3, 4, 4)):  # not the (2, 2) the graph was traced with
        image, mask, eps = example_inputs(model, batch=batch, samples=samples, seed=seed)
        eps[0] = 0.0  # row 0: z at the mean of q(z | context), what model.complete reports
        got_mean, got_std = sess.run(None, {"image": image.numpy(), "mask": mask.numpy(), "eps": eps.numpy()})
        with torch.no_grad():
            mean, std = CompletionGraph(model)(image, mask, eps)
            completion = model.complete(image, mask)
        assert got_mean.shape == (samples, batch, 1, 28, 28)
        assert np.abs(got_mean - mean.numpy()).max() <= TOL
        assert np.abs(got_std - std.numpy()).max() <= TOL
        assert np.abs(got_mean[0] - completion.mean.numpy()).max() <= TOL
        assert np.abs(got_std[0] - completion.std.numpy()).max() <= TOL
        if info["latent"] and samples > 1:  # the noise reaches the output: draws differ from the mean
            assert np.abs(got_mean[1] - got_mean[0]).max() > 1e-3


@pytest.mark.parametrize("name", ATTENTION_MODELS)
def test_the_attention_graph_equals_the_models_maps(exported, name):
    out, manifest = exported
    info = next(m for m in manifest["attention"] if m["name"] == name)
    model = load_pretrained(name).float().eval()
    sess = ort.InferenceSession(str(out / info["file"]), providers=["CPUExecutionProvider"])
    image, mask, _ = example_inputs(model, batch=1, samples=1, seed=5)
    gca, lpa = sess.run(None, {"image": image.numpy(), "mask": mask.numpy()})
    r = info["res"]
    for row, col in ((0, 0), (13, 20), (27, 27)):
        ref = model.attention_map(image, mask, row, col)[0].reshape(info["heads"], -1).numpy()
        q = (row // (28 // r)) * r + col // (28 // r)
        assert np.abs(gca[0, :, q] - ref).max() <= TOL
    ref_lpa = model.lpa_steps(image, mask)["weights"].numpy()
    assert np.abs(lpa - ref_lpa).max() <= TOL
    assert np.allclose(gca.sum(-1), 1.0, atol=1e-5)  # every row is a softmax over the context cells


@pytest.mark.parametrize("name", NP1D_MODELS)
def test_the_1d_graph_equals_pytorch(exported, name):
    out, manifest = exported
    info = next(m for m in manifest["np1d"] if m["name"] == name)
    model = load_pretrained(name).float().eval()
    sess = ort.InferenceSession(str(out / info["file"]), providers=["CPUExecutionProvider"])
    for context, targets, samples in ((1, 201, 1), (12, 50, 4)):  # other sizes than the traced (7, 9, 2)
        xc, yc, xt, eps = np1d_inputs(model, batch=1, context=context, targets=targets, samples=samples, seed=6)
        eps[0] = 0.0
        got_mean, got_std = sess.run(None, {"xc": xc.numpy(), "yc": yc.numpy(), "xt": xt.numpy(), "eps": eps.numpy()})
        with torch.no_grad():
            mean, std = NP1DGraph(model)(xc, yc, xt, eps)
            ref_mean, ref_std = model.predict(xc, yc, xt)  # the package's prediction, z at the mean of q
        assert got_mean.shape == (samples, 1, targets, 1)
        assert np.abs(got_mean - mean.numpy()).max() <= TOL and np.abs(got_std - std.numpy()).max() <= TOL
        assert np.abs(got_mean[0] - ref_mean.numpy()).max() <= TOL
        assert np.abs(got_std[0] - ref_std.numpy()).max() <= TOL


def test_the_command_refuses_an_unknown_model_in_one_line(tmp_path, capsys):
    assert main(["export-onnx", "--out", str(tmp_path), "--models", "no-such-model"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ifanp export-onnx: error:") and "no-such-model" in err and "\n" not in err
