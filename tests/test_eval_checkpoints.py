"""tools/eval_checkpoints.py: the learning curve at 20/40/60 % context of the checkpoints that
``--keep-checkpoints`` keeps, stored under a label beside other runs' curves."""
import json

import pytest

from ifanp.train import TrainConfig, train

TINY = {"hidden": 8, "stem": 8, "z_dim": 8, "gca_key_dim": 8, "decoder_layers": 1}


def _run(out, seed=0):
    train(TrainConfig(model="ifanp", out=str(out), steps=6, batch_size=8, train_limit=64, overrides=TINY,
                      progress=False, threads=1, checkpoint_every=3, warmup=2, seed=seed, keep_checkpoints=True))
    return sorted((out / "checkpoints").iterdir())


def test_labelled_curves_sit_side_by_side_and_a_label_is_replaced(tmp_path, load_tool):
    tool = load_tool("eval_checkpoints")
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b", seed=1)
    out = tmp_path / "curves.json"
    assert tool.main([*map(str, a), "--images", "8", "--label", "a", "--out", str(out)]) == 0
    assert tool.main([*map(str, b), "--images", "8", "--label", "b", "--out", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert set(runs) == {"a", "b"}
    assert [r["step"] for r in runs["a"]["psnr_whole"]] == [3, 6]
    assert "--seed 1" in runs["b"]["train_command"] and "--seed 0" in runs["a"]["train_command"]
    assert all(0 < r[k] < 60 for r in runs["a"]["psnr_whole"] for k in ("0.2", "0.4", "0.6"))
    # the two steps of one run differ (the curve is not one checkpoint read twice)
    first, last = runs["a"]["psnr_whole"]
    assert first["0.4"] != last["0.4"]
    # the same label again replaces that run's curve only
    assert tool.main([str(a[-1]), "--images", "8", "--label", "a", "--out", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert [r["step"] for r in runs["a"]["psnr_whole"]] == [6] and len(runs["b"]["psnr_whole"]) == 2


def test_refusals_are_one_line_and_leave_the_file(tmp_path, load_tool, capsys):
    tool = load_tool("eval_checkpoints")
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b", seed=1)
    out = tmp_path / "curves.json"
    with pytest.raises(SystemExit):  # two runs under one label
        tool.main([str(a[0]), str(b[0]), "--images", "8", "--label", "x", "--out", str(out)])
    assert "one run" in capsys.readouterr().err and not out.exists()
    assert tool.main([str(a[0]), "--images", "8", "--label", "a", "--out", str(out)]) == 0
    before = out.read_text()
    with pytest.raises(SystemExit):  # other images than the curves already there
        tool.main([str(b[0]), "--images", "4", "--label", "b", "--out", str(out)])
    assert "same --images" in capsys.readouterr().err and out.read_text() == before
    with pytest.raises(SystemExit):
        tool.main([str(a[0]), "--label", "a"])
    assert "--label needs --out" in capsys.readouterr().err
    # a damaged checkpoint: one line that names it, not a traceback
    tensors = a[1] / "checkpoint.safetensors"
    data = tensors.read_bytes()
    tensors.write_bytes(data[:-8] + bytes(b ^ 0xFF for b in data[-8:]))
    with pytest.raises(SystemExit):
        tool.main([str(a[1]), "--images", "8"])
    assert "does not match" in capsys.readouterr().err


def test_shipped_weights_count_as_the_last_checkpoint_of_their_run(tmp_path, load_tool, capsys):
    tool = load_tool("eval_checkpoints")
    out = tmp_path / "curves.json"
    assert tool.main(["mnist-ifanp-full", "--images", "8", "--label", "recipe", "--out", str(out)]) == 0
    run = json.loads(out.read_text())["runs"]["recipe"]
    (row,) = run["psnr_whole"]
    from ifanp.pretrained import registry
    entry = registry()["mnist-ifanp-full"]
    assert (row["step"], row["model"], row["seed"]) == (entry["steps"], "ifanp-full", entry["seed"])
    assert run["train_command"] == entry["command"]
    assert all(5 < row[k] < 60 for k in ("0.2", "0.4", "0.6"))
    # a name that is neither a folder nor shipped weights: one line
    with pytest.raises(SystemExit):
        tool.main(["mnist-no-such-model", "--images", "8"])
    assert "not the name of shipped weights" in capsys.readouterr().err
