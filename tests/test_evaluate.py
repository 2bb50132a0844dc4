"""The evaluate, export and reproduce commands, and the metrics they report."""
import json

import pytest
import torch

from ifanp import pretrained
from ifanp.cli import main
from ifanp.evaluate import evaluate, markdown_table
from ifanp.models.base import ImageModel
from ifanp.reproduce import PAPER_TABLE1, comparison_markdown, reproduce


class Offset(ImageModel):
    """A fake 'model' that predicts the true image plus a constant: its MSE is known exactly."""

    def __init__(self, offset):
        super().__init__("offset", 1, 28)
        self.offset = offset
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def predict(self, images, mask, samples=0):
        mean = (images + self.offset).unsqueeze(0)
        return mean, torch.full_like(mean, 0.1)

    def log_likelihood(self, images, mask, target_mask=None, samples=16):
        return torch.distributions.Normal(images + self.offset, 0.1).log_prob(images).mul(target_mask).sum((1, 2, 3))


def _images(n=20):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 1, 28, 28, generator=g) * 0.8 * 255).to(torch.uint8), torch.arange(n)


def test_metrics_of_a_known_error():
    images, idx = _images()
    res = evaluate(Offset(0.1), images, idx, ratios=(0.2, 0.6), nll_images=10, nll_samples=1, progress=False)
    for ratio in ("0.2", "0.6"):
        row = res["ratios"][ratio]
        assert row["mse_whole"] == pytest.approx(0.01, rel=1e-4)
        assert row["psnr_whole"] == pytest.approx(20.0, abs=1e-3)  # 10 log10(1 / 0.01)
        assert row["psnr_target"] == pytest.approx(20.0, abs=1e-3)
        # N(y | y + 0.1, 0.1^2): -log = log(0.1) + 0.5 + log(2 pi)/2 per pixel
        assert row["nll_per_pixel"] == pytest.approx(torch.tensor(0.1).log().item() + 0.5 + 0.9189385, abs=1e-4)
        assert row["kl"] is None and row["nll_images"] == 10
    assert "PSNR whole (dB) 20%" in markdown_table([res])


def test_whole_image_psnr_includes_the_context(monkeypatch):
    """A model that copies the context and predicts 0 elsewhere: whole-image MSE = (1 - ratio) x target MSE."""

    class CopyContext(Offset):
        def predict(self, images, mask, samples=0):
            return (images * mask).unsqueeze(0), torch.full_like(images, 0.1).unsqueeze(0)

    images, idx = _images()
    res = evaluate(CopyContext(0.0), images, idx, ratios=(0.4,), nll_samples=0, progress=False)
    row = res["ratios"]["0.4"]
    assert row["mse_whole"] == pytest.approx(0.6 * row["mse_target"], rel=1e-3)
    assert row["psnr_whole"] > row["psnr_target"] + 2


@pytest.fixture
def tiny_run(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--model", "ifanp", "--steps", "3", "--batch-size", "4", "--train-limit", "8",
                 "--threads", "1", "--no-progress", "--out", str(run), "--set", "hidden=8", "--set", "stem=8",
                 "--set", "z_dim=8", "--set", "gca_key_dim=8"]) == 0
    return run


def test_export_registers_verified_weights(tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path / "weights")
    monkeypatch.setattr(pretrained, "REGISTRY_FILE", tmp_path / "weights" / "registry.json")
    assert main(["export", str(tiny_run), "--name", "mnist-tiny"]) == 0
    entry = pretrained.registry()["mnist-tiny"]
    assert entry["command"].startswith("python -m ifanp train --model ifanp") and entry["steps"] == 3
    assert entry["history"] and entry["sha256"] == pretrained.sha256_of(tmp_path / "weights" / entry["file"])
    assert [m["from_step"] for m in entry["machines"]] == [0] and entry["machines"][0]["cpu"]  # what trained it
    model = pretrained.load_pretrained("mnist-tiny")
    x, m = torch.rand(2, 1, 28, 28), (torch.rand(2, 1, 28, 28) < 0.5).float()
    assert torch.isfinite(model.complete(x, m).mean).all()
    # a corrupted file is refused before anything is read from it
    path = tmp_path / "weights" / entry["file"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(pretrained.WeightsError, match="does not match the registry"):
        pretrained.load_pretrained("mnist-tiny")
    with pytest.raises(pretrained.WeightsError, match="no pretrained weights named 'nope'"):
        pretrained.load_pretrained("nope")


def test_reproduce_writes_the_table_beside_the_paper(tiny_run, tmp_path):
    table = reproduce(models=("ifanp", "ifnp"), runs={"ifanp": str(tiny_run)}, seeds=(), limit=20, nll_images=4,
                      nll_samples=2, progress=False)
    assert [r["model"] for r in table["rows"]] == ["ifanp"] and table["missing"] == ["ifnp"]
    row = table["rows"][0]
    assert row["paper"] == PAPER_TABLE1["ifanp"] and set(row["ratios"]) == {"0.2", "0.4", "0.6"}
    assert table["fig8"]["ifanp"] and table["fig9"]["ifanp"]["0.4"] == row["ratios"]["0.4"]["mse_whole"]
    md = comparison_markdown(table)
    assert "| IFANP |" in md and "19.39" in md  # the paper's value printed beside ours
    out = tmp_path / "res"
    assert main(["reproduce", "--models", "ifanp", "--run", f"ifanp={tiny_run}", "--limit", "10", "--nll-images", "2",
                 "--nll-samples", "2", "--quiet", "--out", str(out)]) == 0
    for name in ("table.md", "table.json", "fig8.json", "fig9.json"):
        assert (out / name).is_file()
    assert "Protocol differences" in (out / "table.md").read_text()
    assert json.loads((out / "table.json").read_text())["rows"][0]["model"] == "ifanp"
