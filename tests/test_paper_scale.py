"""tools/train_paper_scale.py: the GPU trainer's code path, on the CPU at a tiny size."""
import json

import torch

from ifanp.pretrained import load_weights


def test_paper_scale_trainer_writes_loadable_weights_logs_and_a_table(tmp_path, load_tool):
    tool = load_tool("train_paper_scale")
    g = torch.Generator().manual_seed(0)
    train = (torch.rand(64, 1, 28, 28, generator=g) * 255).to(torch.uint8)
    evals = (torch.rand(8, 1, 28, 28, generator=g) * 255).to(torch.uint8)
    tiny = {"hidden": 8, "stem": 8, "z_dim": 4, "gca_key_dim": 8}
    summary = tool.run(tmp_path, models=("ifnp-paper", "ifanp-paper"), steps=3, batch=4, device="cpu",
                       compile_model=False, overrides=tiny, train_images=train, eval_images=evals,
                       eval_indices=torch.arange(8), eval_limit=8)
    assert [r["training"]["steps"] for r in summary["results"]] == [3, 3]
    for name in ("ifnp-paper", "ifanp-paper"):
        model = load_weights(tmp_path / name / "model.safetensors")
        assert model.config["down"] == 1 and model.config["positions"] is True  # the faithful configuration
        rows = [json.loads(line) for line in (tmp_path / name / "log.jsonl").read_text().splitlines()]
        assert rows[-1]["step"] == 3 and all(k in rows[-1] for k in ("loss", "nll", "kl", "mse"))
    assert "ifanp-paper" in (tmp_path / "table.md").read_text()
    assert json.loads((tmp_path / "results.json").read_text())["device"] == "cpu"


def test_paper_scale_trainer_refuses_to_start_without_a_gpu_unless_told(capsys, monkeypatch, load_tool):
    tool = load_tool("train_paper_scale")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert tool.main(["--out", "unused"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().out


def test_time_budget_sets_the_schedule_from_the_measured_step_rate(tmp_path, load_tool):
    tool = load_tool("train_paper_scale")
    train = torch.zeros(32, 1, 28, 28, dtype=torch.uint8)
    _, info = tool.train_one("ifnp-paper", train, tmp_path, seconds=1.0, steps=None, batch=2, lr=1e-3,
                             device=torch.device("cpu"), compile_model=False,
                             overrides={"hidden": 4, "stem": 4, "z_dim": 2}, log_every=1000)
    assert info["steps"] > 40  # warm-up (20) and rate measurement (20) done, then the measured share
