"""The training loop: resume after interruption, clear failures, the CLI and DDP on CPU (gloo)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ifanp.cli import main
from ifanp.train import TrainConfig, TrainingError, load_checkpoint, train

TINY = {"hidden": 8, "stem": 8, "z_dim": 8, "gca_key_dim": 8, "decoder_layers": 1}
TINY_ARGS = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]


def _cfg(out, **kw):
    base = {"model": "ifanp", "out": str(out), "steps": 6, "batch_size": 8, "train_limit": 64, "overrides": TINY,
                "progress": False, "threads": 1, "checkpoint_every": 1000, "warmup": 2}
    return TrainConfig(**{**base, **kw})


def _weights(folder):
    return load_file(str(Path(folder) / "model.safetensors"))


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path):
    train(_cfg(tmp_path / "a"))
    res = train(_cfg(tmp_path / "b", stop_after=3))
    assert res["interrupted"] == "stop_after" and not (tmp_path / "b" / "model.safetensors").exists()
    assert load_checkpoint(tmp_path / "b")["step"] == 3
    train(_cfg(tmp_path / "b"), resume=True)
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    # and a different seed gives different weights (the comparison is not vacuous)
    train(_cfg(tmp_path / "c", seed=1))
    assert not _same(_weights(tmp_path / "a"), _weights(tmp_path / "c"))


def test_sigterm_saves_a_checkpoint_and_resume_finishes_identically(tmp_path):
    """Kill a real training process midway (SIGTERM), resume it, compare with an uninterrupted run."""
    common = ["train", "--model", "ifanp", "--steps", "300", "--batch-size", "8", "--train-limit", "64",
              "--threads", "1", "--no-progress", "--checkpoint-every", "100000", *TINY_ARGS]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "ifanp", *common, "--out", str(run)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not (run / "log.jsonl").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, output
    assert "Traceback" not in output and "--resume" in output
    step = load_checkpoint(run)["step"]
    assert 0 < step < 300
    assert main([*common, "--out", str(run), "--resume"]) == 0
    assert main([*common, "--out", str(tmp_path / "whole")]) == 0
    assert _same(_weights(run), _weights(tmp_path / "whole"))


def test_run_folder_holds_config_log_and_checkpoint(tmp_path):
    train(_cfg(tmp_path / "r", steps=16, checkpoint_every=5))
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["model"] == "ifanp" and cfg["overrides"] == TINY and cfg["total_steps"] == 16
    rows = [json.loads(x) for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert [r["step"] for r in epochs] == [8, 16]  # 64 images / batch 8 = 8 steps per epoch
    assert all(r["mse"] > 0 for r in epochs)
    assert load_checkpoint(tmp_path / "r")["step"] == 16


def test_keep_checkpoints_copies_each_scheduled_checkpoint_with_its_own_weights(tmp_path):
    """--keep-checkpoints keeps step-5, step-10 and the final step-12 of a 12-step run, each loadable and each with
    the weights of its step (the step-12 copy holds the final weights, the step-5 copy does not)."""
    run = tmp_path / "r"
    train(_cfg(run, steps=12, checkpoint_every=5, keep_checkpoints=True))
    kept = run / "checkpoints"
    assert sorted(p.name for p in kept.iterdir()) == ["step-10", "step-12", "step-5"]
    states = {n: load_checkpoint(kept / f"step-{n}") for n in (5, 10, 12)}
    assert [states[n]["step"] for n in (5, 10, 12)] == [5, 10, 12]
    final = _weights(run)
    last, first = states[12]["model"], states[5]["model"]
    assert all(torch.equal(last[k], final[k]) for k in final)
    assert not all(torch.equal(first[k], final[k]) for k in final)
    assert "--keep-checkpoints" in json.loads((run / "config.json").read_text())["command"]
    # without the option nothing is kept
    train(_cfg(tmp_path / "plain", steps=6, checkpoint_every=5))
    assert not (tmp_path / "plain" / "checkpoints").exists()


def test_config_records_every_machine_the_run_trained_on(tmp_path, monkeypatch):
    import ifanp.train as tr

    out = tmp_path / "r"
    train(_cfg(out, stop_after=2))
    first = json.loads((out / "config.json").read_text())["machines"]
    assert len(first) == 1 and first[0]["from_step"] == 0 and first[0]["cpu"] and first[0]["cores"] >= 1
    assert first[0]["torch"] == torch.__version__ and first[0]["accelerator"] is None
    train(_cfg(out, stop_after=4), resume=True)  # the same machine: nothing added
    assert json.loads((out / "config.json").read_text())["machines"] == first
    real = tr.machine_record
    monkeypatch.setattr(tr, "machine_record", lambda device=None: {**real(device), "cpu": "Another CPU"})
    train(_cfg(out), resume=True)  # resumed elsewhere: that machine and the step it took over from
    machines = json.loads((out / "config.json").read_text())["machines"]
    assert machines[0] == first[0] and machines[1]["cpu"] == "Another CPU" and machines[1]["from_step"] == 4


def test_resume_with_another_configuration_is_a_clear_error(tmp_path):
    train(_cfg(tmp_path / "r", stop_after=2))
    with pytest.raises(TrainingError, match="another configuration.*lr"):
        train(_cfg(tmp_path / "r", lr=5e-4), resume=True)
    with pytest.raises(TrainingError, match="already holds a run; pass --resume"):
        train(_cfg(tmp_path / "r"))


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    import ifanp.train as tr

    real_build = tr.build

    def poisoned(*args, **kwargs):
        model = real_build(*args, **kwargs)
        loss = model.loss
        calls = {"n": 0}

        def bad_loss(*a, **k):
            out = loss(*a, **k)
            calls["n"] += 1
            if calls["n"] > 4:
                out.loss = out.loss * float("nan")
            return out

        model.loss = bad_loss
        return model

    monkeypatch.setattr(tr, "build", poisoned)
    with pytest.raises(TrainingError, match=r"loss became nan at step 4; the last good checkpoint \(step 4\)"):
        train(_cfg(tmp_path / "r", steps=10, checkpoint_every=2))
    assert load_checkpoint(tmp_path / "r")["step"] == 4


def test_cli_reports_bad_arguments_without_traceback(capsys):
    assert main(["train", "--model", "nope", "--steps", "3"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert main(["train", "--model", "ifanp"]) == 2
    assert "--steps N or --epochs E" in capsys.readouterr().err
    assert main(["train", "--model", "ifanp", "--steps", "3", "--set", "hidden"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_ddp_with_two_cpu_processes_equals_one_process_on_the_global_batch(tmp_path):
    """The same command under torchrun trains with DistributedDataParallel (gloo backend): each process
    takes half of every batch (with the masks and latent noise one process would draw for it), and the
    averaged gradients give the weights of a single-process run of the same global batch."""
    out = tmp_path / "ddp"
    args = ["train", "--model", "ifanp", "--steps", "4", "--batch-size", "8", "--train-limit", "32",
            "--threads", "1", "--no-progress", "--device", "cpu", "--lr", "0.05", *TINY_ARGS]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
           "-m", "ifanp", *args, "--out", str(out)]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "model.safetensors").is_file() and load_checkpoint(out)["step"] == 4
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    assert main([*args, "--steps", "1", "--out", str(tmp_path / "short")]) == 0
    ddp, one, short = _weights(out), _weights(tmp_path / "one"), _weights(tmp_path / "short")
    assert ddp.keys() == one.keys()
    diff = max(float((ddp[k] - one[k]).abs().max()) for k in ddp)
    moved = max(float((one[k] - short[k]).abs().max()) for k in one)
    print(f"DDP vs one process: max |w| difference {diff:.2e}; 3 more steps move the weights by {moved:.2e}")
    for k in ddp:
        torch.testing.assert_close(ddp[k], one[k], rtol=1e-4, atol=1e-5, msg=k)
    assert moved > 100 * 1e-5  # the tolerance is far below what 3 training steps change
