"""The train / evaluate / reproduce commands on CelebA-shaped data (3x32x32), with generated JPEGs.

No real CelebA is available offline; these tests check that the same commands work end to end on
RGB faces laid out like aligned CelebA. They make no claim about CelebA quality.
"""
import json

import pytest
import torch
from PIL import Image

from ifanp.cli import main

TINY = ["--set", "hidden=8", "--set", "stem=8", "--set", "z_dim=8", "--set", "gca_key_dim=8", "--set", "decoder_layers=1"]


@pytest.fixture
def celeba_root(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    for k in [*range(1, 9), *range(182638, 182644)]:  # 8 training and 6 test images by the official numbering
        pixels = torch.randint(0, 256, (218, 178, 3), generator=gen, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{k:06d}.jpg", quality=90)
    monkeypatch.setenv("IFANP_DATA", str(tmp_path / "data"))
    return tmp_path


def test_train_and_evaluate_on_celeba_shaped_data(celeba_root, capsys):
    run = celeba_root / "run"
    assert main(["train", "--model", "ifanp", "--dataset", "celeba", "--steps", "3", "--batch-size", "4",
                 "--threads", "1", "--no-progress", "--out", str(run), *TINY]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["dataset"] == "celeba"
    out = celeba_root / "eval"
    assert main(["evaluate", str(run), "--dataset", "celeba", "--nll-images", "2", "--nll-samples", "2",
                 "--quiet", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["images"] == 6 and res["config"]["channels"] == 3 and res["config"]["size"] == 32
    assert set(res["ratios"]) == {"0.2", "0.4", "0.6"}
    # an MNIST model cannot be evaluated on CelebA: a clear error, not a traceback
    mnist_run = celeba_root / "mnist-run"
    assert main(["train", "--model", "ifnp", "--steps", "1", "--batch-size", "4", "--train-limit", "8",
                 "--threads", "1", "--no-progress", "--out", str(mnist_run), "--set", "hidden=8", "--set", "stem=8",
                 "--set", "z_dim=8"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(mnist_run), "--dataset", "celeba", "--quiet"]) == 2
    assert "expects 1x28x28 images but celeba has 3x32x32" in capsys.readouterr().err


def test_missing_celeba_names_both_ways_to_provide_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IFANP_DATA", str(tmp_path / "empty"))
    assert main(["train", "--model", "ifanp", "--dataset", "celeba", "--steps", "1", "--no-progress",
                 "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "img_align_celeba" in err and "error" in err and "Traceback" not in err
