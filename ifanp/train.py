"""Training image models: the loop, checkpoints that survive interruption, resume, DDP.

A run lives in one folder (``--out``):

* ``config.json`` — everything needed to repeat the run exactly (model, overrides, data, optimiser, seed),
  and the machines it trained on (CPU model, cores, accelerator, torch version: :func:`machine_record`);
* ``checkpoint.safetensors`` + ``checkpoint.json`` — model, optimiser and RNG state, the step, the
  schedule's length and the epoch's running totals, written at intervals, at the end, and when the run is
  interrupted (Ctrl-C / SIGTERM). Tensors go to safetensors and everything else to JSON: nothing is ever
  unpickled. The JSON, written last, records the sha256 of the tensor file; resume refuses a pair that
  does not match (and says which files to delete);
* ``log.jsonl`` — one line per epoch (mean loss, NLL, KL, training MSE: the paper's Fig. 8) and one per
  evaluation (PSNR at 40 % context on held-out images); each with the training time so far, as wall
  seconds (``elapsed_s``) and as CPU seconds of the process (``cpu_s``, all threads; it does not grow
  while other programs hold the CPU, so it compares runs made on a busy machine);
* ``model.safetensors`` — the final weights (loadable with :func:`ifanp.pretrained.load_weights`);
* ``checkpoints/step-N/`` — with ``--keep-checkpoints``, a copy of every scheduled checkpoint (each a
  ``checkpoint.safetensors`` + ``checkpoint.json`` pair that :func:`load_checkpoint` reads), so that a
  learning curve at any context ratio can be measured afterwards (``tools/eval_checkpoints.py``).

Every file is written through a temporary file and ``os.replace`` (``log.jsonl`` is appended to, and
rewritten from the checkpoint on resume), so a kill never leaves half a file. A non-empty ``--out`` must be
a run of ours (its ``config.json`` says so) and one holding a run needs ``--resume``; resume continues the
recorded schedule (fewer steps, or a longer cosine schedule, are refused before anything is written; a
constant schedule may be extended, which ``config.json`` records under ``extended``).

Randomness is a function of (seed, step): the data order of epoch e is a permutation drawn from
``seed + e``, and the masks and z samples of step s come from generators seeded with (seed, s). So a run
that is interrupted and resumed reaches exactly the weights, and writes exactly the log rows (timings
aside), of an uninterrupted run.

Under ``torchrun --nproc_per_node=N`` the same code trains with DistributedDataParallel (gloo on CPU,
NCCL on CUDA): the batch is split across the processes and only rank 0 writes files.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import Tensor
from typing_extensions import Self

from .config import get_device
from .data.masks import TRAIN_RATIO_RANGE, random_mask
from .data.splits import DATASETS, load_eval_images, load_train_images
from .evaluate import quick_psnr
from .models import build
from .options import check_overrides, parse_overrides
from .pretrained import atomic_path, save_weights, sha256_of, write_text_atomic

CHECKPOINT = "checkpoint"
FINAL = "model.safetensors"

# Fields that may differ when resuming (they only extend or redirect the run).
_RESUMABLE = {"steps", "epochs", "out", "device", "threads", "checkpoint_every", "eval_every", "progress",
              "stop_after", "keep_checkpoints"}
KEPT = "checkpoints"  # the subfolder of --keep-checkpoints


class TrainingError(RuntimeError):
    """A run cannot go on (non-finite loss, a checkpoint from another configuration, ...)."""


@dataclass
class TrainConfig:
    """One training run. ``steps`` wins over ``epochs`` when both are given."""

    model: str
    dataset: str = "mnist"
    out: str = "runs/run"
    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 64
    lr: float = 1e-3
    schedule: str = "cosine"  # "constant" or "cosine" (with a linear warm-up of `warmup` steps)
    warmup: int = 200
    grad_clip: float = 10.0
    seed: int = 0
    ratio_range: tuple[float, float] = TRAIN_RATIO_RANGE
    train_limit: int | None = None  # use only the first N training images (smoke runs)
    overrides: dict[str, Any] = field(default_factory=dict)  # model options, see ifanp.models.grid.DEFAULTS
    device: str = "auto"
    threads: int | None = None
    checkpoint_every: int = 500  # steps
    eval_every: int = 0  # steps; 0 = only at the end
    eval_images: int = 1000  # held-out images for the periodic PSNR check (the first of the eval subset)
    progress: bool = True
    keep_checkpoints: bool = False  # also copy every scheduled checkpoint into checkpoints/step-N/
    stop_after: int | None = None  # stop (with a checkpoint, as if interrupted) after this step: for tests

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio_range"] = list(self.ratio_range)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        d["ratio_range"] = tuple(d.get("ratio_range", TRAIN_RATIO_RANGE))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


# ---- data ---------------------------------------------------------------------------------------


def step_generator(seed: int, step: int, salt: int = 0) -> torch.Generator:
    """A CPU generator that depends only on (seed, step, salt)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 7_919 + salt * 104_729) % (2**63 - 1))


# ---- checkpoints (safetensors + JSON; no pickle) ------------------------------------------------------


def _flatten(obj: Any, tensors: dict[str, Tensor], prefix: str) -> Any:
    if isinstance(obj, Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[_flatten(k, tensors, prefix), _flatten(v, tensors, prefix)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [_flatten(v, tensors, prefix) for v in obj], "tuple": isinstance(obj, tuple)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


def _unflatten(obj: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            items = [_unflatten(v, tensors) for v in obj["__list__"]]
            return tuple(items) if obj.get("tuple") else items
    return obj


CHECKPOINT_FORMAT = "ifanp-checkpoint/2"


def save_checkpoint(folder: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (nested dicts/lists of tensors and plain values) into ``folder`` as one consistent unit.

    The tensors go to ``checkpoint.safetensors`` (through a temporary file and ``os.replace``); then
    ``checkpoint.json`` — the structure, the step and the sha256 of the tensor file — is written last, the
    same way. A kill at any moment leaves either the previous checkpoint or the new one, or (between the
    two renames) a tensor file that no longer matches the JSON's hash, which :func:`load_checkpoint` refuses.
    """
    tensors: dict[str, Tensor] = {}
    structure = _flatten(state, tensors, "")
    tensor_file = folder / f"{CHECKPOINT}.safetensors"
    with atomic_path(tensor_file) as tmp:
        save_file(tensors, str(tmp), metadata={"step": str(state.get("step"))})
        digest = sha256_of(tmp)
    record = {"format": CHECKPOINT_FORMAT, "step": state.get("step"), "total_steps": state.get("total_steps"),
              "tensors": tensor_file.name, "sha256": digest, "state": structure}
    write_text_atomic(folder / f"{CHECKPOINT}.json", json.dumps(record))


def keep_checkpoint(out: Path) -> Path:
    """Copy the checkpoint pair of run folder ``out`` into ``out/checkpoints/step-N/`` (N: its step) and
    return that folder. The copy is made in a temporary folder and renamed, so a kill leaves no half copy."""
    record = json.loads((out / f"{CHECKPOINT}.json").read_text())
    dest = out / KEPT / f"step-{record['step']}"
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for suffix in (".safetensors", ".json"):
        shutil.copy2(out / f"{CHECKPOINT}{suffix}", tmp / f"{CHECKPOINT}{suffix}")
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def load_checkpoint(folder: Path) -> dict[str, Any] | None:
    """The state saved by :func:`save_checkpoint`, or None when the folder has no checkpoint file at all.

    Raises :class:`TrainingError`, naming the file to delete, when only one of the two files is there, when
    ``checkpoint.json`` is not a checkpoint, or when the tensor file's sha256 or step differ from the JSON's
    (the run was killed while saving, or a file was changed).
    """
    folder = Path(folder)
    tj, tt = folder / f"{CHECKPOINT}.json", folder / f"{CHECKPOINT}.safetensors"
    restart = f"delete {tj} and {tt} to start the run again from step 0, or train into another --out"
    if not tj.exists() and not tt.exists():
        return None
    if not tt.is_file():
        raise TrainingError(f"{tj} is there but {tt.name} is missing, so the run cannot be resumed; {restart}.")
    if not tj.is_file():
        raise TrainingError(f"{tt} is there but {tj.name} is missing (the run was stopped while writing its first "
                            f"checkpoint?); {restart}.")
    try:
        record = json.loads(tj.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TrainingError(f"{tj} is not readable JSON ({err}); {restart}.") from err
    legacy = isinstance(record, dict) and "__dict__" in record  # written before checkpoints carried a hash
    if not legacy:
        if not (isinstance(record, dict) and record.get("format") == CHECKPOINT_FORMAT
                and isinstance(record.get("step"), int) and isinstance(record.get("sha256"), str)
                and isinstance(record.get("state"), dict)):
            raise TrainingError(f"{tj} is not an ifanp checkpoint (it needs format, step, sha256 and state); {restart}.")
        actual = sha256_of(tt)
        if actual != record["sha256"]:
            raise TrainingError(f"{tt.name} does not match {tj.name} in {folder} (sha256 {actual[:12]}... but "
                                f"{record['sha256'][:12]}... recorded at step {record['step']:,}): the run was killed "
                                f"while saving, or a file was changed. The checkpoint cannot be trusted; {restart}.")
    try:
        state = _unflatten(record if legacy else record["state"], load_file(str(tt)))
    except Exception as err:  # safetensors' own error types, a missing tensor key, ...
        raise TrainingError(f"the checkpoint in {folder} is unreadable ({err}); {restart}.") from err
    needed = {"config": dict, "model": dict, "optimizer": dict, "rng": Tensor, "step": int, "history": list}
    wrong = [k for k, kind in needed.items() if not isinstance(state, dict) or not isinstance(state.get(k), kind)]
    if wrong:
        raise TrainingError(f"{tj} does not hold a training state (missing or wrong: {', '.join(wrong)}); {restart}.")
    if not legacy and state["step"] != record["step"]:
        raise TrainingError(f"{tj} records step {record['step']:,} but its state is at step {state['step']:,}; {restart}.")
    return state


def _is_our_run(folder: Path) -> bool:
    """Whether ``folder/config.json`` was written by :func:`train` (so the folder is a run of ours)."""
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return (isinstance(cfg, dict) and isinstance(cfg.get("model"), str)
            and str(cfg.get("command", "")).startswith("python -m ifanp train "))


def check_out_folder(out: Path, resume: bool) -> None:
    """Refuse an ``--out`` that is a file, that holds files which are not a run of ours (they would be
    overwritten), or that holds a run (a checkpoint or final weights) when ``resume`` is false."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; pass a folder (it is created when missing).")
    if not out.is_dir():
        return
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    if not names:
        return
    if not _is_our_run(out):
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise ValueError(f"--out {out} is not empty ({shown}) and is not a run of `python -m ifanp train` (its "
                         "config.json would say so); choose a new or empty folder so that none of these files is "
                         "overwritten.")
    if not resume and any((out / f).exists() for f in (f"{CHECKPOINT}.json", f"{CHECKPOINT}.safetensors", FINAL)):
        raise TrainingError(f"{out} already holds a run; pass --resume to continue it or choose another --out.")


# ---- the loop ---------------------------------------------------------------------------------------


class _Stop:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each step."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Self:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    warm = min(1.0, (step + 1) / max(cfg.warmup, 1))
    if cfg.schedule == "constant":
        return cfg.lr * warm
    progress = min(step / max(total, 1), 1.0)
    return cfg.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank, world


def command_for(cfg: TrainConfig) -> str:
    """The ``python -m ifanp train`` command line that repeats ``cfg`` exactly."""
    parts = ["python -m ifanp train", f"--model {cfg.model}", f"--dataset {cfg.dataset}"]
    parts.append(f"--steps {cfg.steps}" if cfg.steps is not None else f"--epochs {cfg.epochs:g}")
    parts += [f"--batch-size {cfg.batch_size}", f"--lr {cfg.lr:g}", f"--schedule {cfg.schedule}", f"--seed {cfg.seed}"]
    if cfg.warmup != TrainConfig.warmup:
        parts.append(f"--warmup {cfg.warmup}")
    if cfg.train_limit:
        parts.append(f"--train-limit {cfg.train_limit}")
    parts += [f"--set {k}={json.dumps(v)}" for k, v in sorted(cfg.overrides.items())]
    if cfg.eval_every:
        parts.append(f"--eval-every {cfg.eval_every}")
    if cfg.threads:
        parts.append(f"--threads {cfg.threads}")
    if cfg.keep_checkpoints:
        parts.append("--keep-checkpoints")
    parts.append(f"--out {cfg.out}")
    return " ".join(parts)


def check_settings(cfg: TrainConfig) -> None:
    """ValueError naming the first setting of ``cfg`` that cannot give a sensible run."""
    def whole(name: str, value: Any, least: int = 1) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise ValueError(f"--{name} must be a whole number >= {least}, got {value!r}.")

    for name, least in (("steps", 1), ("batch_size", 1), ("threads", 1), ("train_limit", 1),
                        ("checkpoint_every", 1), ("eval_every", 0), ("eval_images", 1), ("warmup", 0)):
        whole(name.replace("_", "-"), getattr(cfg, name), least)
    if cfg.steps is None and cfg.epochs is None:
        raise ValueError("give --steps N or --epochs E.")
    if cfg.epochs is not None and not (math.isfinite(cfg.epochs) and cfg.epochs > 0):
        raise ValueError(f"--epochs must be a finite number > 0, got {cfg.epochs}.")
    for name in ("lr", "grad_clip"):
        v = getattr(cfg, name)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0) or (name == "lr" and v == 0):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number > 0, got {v}.")
    if cfg.schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {cfg.schedule!r}.")
    lo, hi = cfg.ratio_range
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"ratio_range must satisfy 0 < low <= high <= 1, got {cfg.ratio_range}.")


def _planned_steps(state: dict[str, Any], out: Path, default: int) -> int:
    """The schedule length a checkpoint was made with (its record, else the run's config.json)."""
    if isinstance(state.get("total_steps"), int):
        return state["total_steps"]
    try:
        return int(json.loads((out / "config.json").read_text())["total_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return default


def _recorded_list(config_file: Path, key: str) -> list[dict[str, Any]]:
    """The list under ``key`` in a run's config.json (``extended``, ``machines``; [] when there is none)."""
    try:
        return list(json.loads(config_file.read_text()).get(key) or [])
    except (OSError, ValueError, AttributeError, TypeError):
        return []


def machine_record(device: torch.device | str | None = None) -> dict[str, Any]:
    """What a run trains on, for its ``config.json``: the CPU model, the number of cores, the accelerator
    (None on a CPU) and the torch version (timings from two machines are not comparable without it)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    dev = torch.device(device) if device is not None else torch.device("cpu")
    accel = torch.cuda.get_device_name(dev) if dev.type == "cuda" and torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "accelerator": accel, "torch": torch.__version__}


def _step_failed(err: Exception, step: int, model: torch.nn.Module, out: Path) -> TrainingError:
    """The one-line error for a training step that raised (the model or torch.distributions refused a value)."""
    first = str(err).strip().splitlines()[0].rstrip(":") if str(err).strip() else type(err).__name__
    if len(first) > 240:
        first = first[:240] + "..."
    kept = (f"the last good checkpoint is kept in {out}" if (out / f"{CHECKPOINT}.json").is_file()
            else "no checkpoint had been written yet")
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        return TrainingError(f"the weights became non-finite before step {step:,} ({first}); {kept}. "
                             "Try a lower --lr or a smaller --grad-clip.")
    return TrainingError(f"step {step:,} failed: {first}; {kept}. Check the model options (--set), "
                         "e.g. sigma_value must be > 0.")


def train(cfg: TrainConfig, resume: bool = False, log=print) -> dict[str, Any]:
    """Train ``cfg.model``; return a summary dict. See the module docstring for the run folder."""
    rank, world = _distributed()
    device = get_device(cfg.device)
    if world > 1:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
    check_settings(cfg)
    cfg = replace(cfg, overrides=check_overrides(cfg.model, cfg.overrides))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.batch_size % world:
        raise ValueError(f"--batch-size {cfg.batch_size} must be divisible by the number of processes ({world}).")
    out = Path(cfg.out)
    main_proc = rank == 0
    check_out_folder(out, resume)  # before anything is written

    images = load_train_images(cfg.dataset, cfg.train_limit)
    n, C, H, W = images.shape
    if H != W:
        raise ValueError(f"training images must be square, got {H}x{W}.")
    torch.manual_seed(cfg.seed)  # the initial weights depend on the seed only
    try:
        model = build(cfg.model, channels=C, size=H, **cfg.overrides).to(device)
    except (RuntimeError, TypeError, ZeroDivisionError) as err:  # e.g. torch refusing a layer size
        raise ValueError(f"cannot build {cfg.model} with the options {cfg.overrides}: "
                         f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from err
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps_per_epoch = max(n // cfg.batch_size, 1)
    if cfg.steps is not None:
        total = int(cfg.steps)
    elif cfg.epochs is not None:
        total = max(round(cfg.epochs * steps_per_epoch), 1)
    else:
        raise ValueError("give --steps or --epochs.")
    if total < 1:
        raise ValueError(f"the number of steps must be positive, got {total}.")

    # Resume or start afresh (every check before the first file is written).
    step, elapsed, cpu, history, epoch_acc = 0, 0.0, 0.0, [], {}
    config_file = out / "config.json"
    state = load_checkpoint(out) if resume else None
    resumed_from: list[dict[str, int]] = []
    if resume and state is None:
        if (out / FINAL).is_file():
            raise TrainingError(f"{out} holds final weights ({FINAL}) but no checkpoint to continue from; "
                                "evaluate or export it, or train into another --out.")
        if main_proc:
            log(f"no checkpoint in {out}; starting a new run")
    done_already = False
    if state is not None:
        saved = TrainConfig.from_json(state["config"]).to_json()
        mine = cfg.to_json()
        diff = {k: (saved[k], mine[k]) for k in mine if k not in _RESUMABLE and saved.get(k) != mine[k]}
        if diff:
            detail = "; ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in diff.items())
            raise TrainingError(f"cannot resume {out}: the checkpoint was made with another configuration ({detail}). "
                                "Use the same options, or a new --out folder.")
        reached = int(state["step"])
        planned = _planned_steps(state, out, total)
        if total < reached:
            raise ValueError(f"--steps {total:,} is below step {reached:,}, which the run in {out} has reached; resume "
                             f"with --steps {planned:,} (its schedule), or train a new run into another --out.")
        if total != planned and cfg.schedule != "constant":
            raise ValueError(f"{out} follows a cosine schedule over {planned:,} steps; resuming it with {total:,} steps "
                             f"would change the learning rate of the steps after {reached:,}, and no single command "
                             f"could repeat the run. Resume with --steps {planned:,}, or train a new run into another "
                             "--out (the constant schedule can be extended).")
        resumed_from = _recorded_list(config_file, "extended")
        if total != planned:  # constant schedule: the same weights as a run of `total` steps; say so in config.json
            resumed_from.append({"step": reached, "total_steps_before": planned})
        done_already = reached == total and (out / FINAL).is_file()
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        step, elapsed, history = reached, float(state["elapsed"]), list(state["history"])
        cpu = float(state.get("cpu", 0.0))
        epoch_acc = dict(state.get("epoch_acc") or {})  # the running totals of the epoch under way
        if main_proc:
            log(f"{out} has finished its {total:,} steps already; nothing to train (evaluate or export it)"
                if done_already else f"resumed {out} at step {step:,} ({elapsed / 60:.1f} min of training so far)")
    if main_proc and not done_already:
        out.mkdir(parents=True, exist_ok=True)
        record = {**cfg.to_json(), "total_steps": total, "command": command_for(cfg)}
        if resumed_from:
            record["extended"] = resumed_from
        # Every machine the run has trained on, in order (a resumed run keeps the earlier ones).
        machines = _recorded_list(config_file, "machines") if state is not None else []
        here = machine_record(device)
        if not machines or {k: v for k, v in machines[-1].items() if k != "from_step"} != here:
            machines.append({"from_step": step, **here})
        record["machines"] = machines
        write_text_atomic(config_file, json.dumps(record, indent=2) + "\n")
        # The log holds exactly the rows of the state we continue from (none for a new run): rows written
        # after the last checkpoint by a killed process are not repeated.
        write_text_atomic(out / "log.jsonl", "".join(json.dumps(row) + "\n" for row in history))

    ddp = None
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    net = ddp if ddp is not None else model
    eval_x, eval_idx = (None, None)
    if cfg.eval_every and main_proc:
        ex, ei = load_eval_images(cfg.dataset)
        eval_x, eval_idx = ex[: cfg.eval_images], ei[: cfg.eval_images]

    def snapshot() -> dict[str, Any]:
        return {"config": cfg.to_json(), "model": model.state_dict(), "optimizer": opt.state_dict(),
                "rng": torch.get_rng_state(), "step": step, "total_steps": total, "elapsed": elapsed, "cpu": cpu,
                "history": history, "epoch_acc": dict(epoch_acc)}

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    local_batch = cfg.batch_size // world
    bar = None
    if cfg.progress and main_proc:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=step, desc=cfg.model, unit="step", dynamic_ncols=True, leave=False)
    model.train()
    stopped = None
    perm, perm_epoch = None, -1
    t_last, c_last = time.perf_counter(), time.process_time()
    with _Stop() as stop:
        while step < total and not done_already:
            epoch = step // steps_per_epoch
            if epoch != perm_epoch:
                perm, perm_epoch = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + epoch)), epoch
            pos = (step % steps_per_epoch) * cfg.batch_size + rank * local_batch
            idx = perm[pos : pos + local_batch]
            # Masks and latent noise are drawn for the global batch (the same on every process) and sliced,
            # so that N processes compute the gradient one process computes for the whole batch.
            gen = step_generator(cfg.seed, step)
            x = images[idx].to(device, non_blocking=True).float().div_(255)
            part = slice(rank * len(idx), (rank + 1) * len(idx))
            mask = random_mask(len(idx) * world, H, cfg.ratio_range, generator=gen)[part].to(device)
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
            eps = model.noise(len(idx) * world)
            eps = None if eps is None else eps[:, part]
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, step, total)
            try:
                with autocast if autocast is not None else contextlib.nullcontext():
                    out_ = model.loss(x, mask, net=net, eps=eps)  # the forward runs through DDP's wrapper
            except ValueError as err:  # e.g. torch.distributions refusing a scale that is 0 or not finite
                if bar is not None:
                    bar.close()
                raise _step_failed(err, step, model, out) from err
            loss = out_.loss
            if not torch.isfinite(loss):
                if bar is not None:
                    bar.close()
                kept = f"the last good checkpoint (step {load_checkpoint(out)['step']:,}) is kept in {out}" if (
                    out / f"{CHECKPOINT}.json").is_file() else "no checkpoint had been written yet"
                raise TrainingError(f"the loss became {float(loss.detach())} at step {step:,}; {kept}. "
                                    "Try a lower --lr or a smaller --grad-clip.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            now = time.perf_counter()
            elapsed += now - t_last
            cpu += time.process_time() - c_last
            t_last, c_last = now, time.process_time()
            vals = out_.as_floats()
            for k, v in vals.items():
                epoch_acc[k] = epoch_acc.get(k, 0.0) + v
            epoch_acc["n"] = epoch_acc.get("n", 0) + 1
            if bar is not None:
                bar.update(1)
                if step % 10 == 0:
                    rate = bar.format_dict.get("rate") or 0.0
                    bar.set_postfix(loss=f"{vals['loss']:.1f}", mse=f"{vals['mse']:.4f}",
                                    img_s=f"{rate * cfg.batch_size:.0f}")
            end_of_epoch = step % steps_per_epoch == 0 or step == total
            if end_of_epoch and main_proc:
                k = epoch_acc.pop("n")
                row = {"kind": "epoch", "epoch": round(step / steps_per_epoch, 4), "step": step,
                       "elapsed_s": round(elapsed, 2), "cpu_s": round(cpu, 2),
                       **{key: v / k for key, v in epoch_acc.items()}}
                history.append(row)
                line = (f"epoch {row['epoch']:g} step {step:,}/{total:,}  loss {row['loss']:.2f}  nll {row['nll']:.2f}  "
                        f"kl {row['kl']:.3g}  mse {row['mse']:.5f}  {step * cfg.batch_size / max(elapsed, 1e-9):.0f} img/s")
                (bar.write if bar is not None else log)(line)
                with open(out / "log.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
                epoch_acc = {}
            if cfg.eval_every and main_proc and (step % cfg.eval_every == 0 or step == total):
                p = quick_psnr(model, eval_x, eval_idx)
                row = {"kind": "eval", "step": step, "elapsed_s": round(elapsed, 2), "cpu_s": round(cpu, 2), "psnr40": p}
                history.append(row)
                with open(out / "log.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
                t_last, c_last = time.perf_counter(), time.process_time()  # evaluation is not training time
            if main_proc and (step % cfg.checkpoint_every == 0 or step == total):
                save_checkpoint(out, snapshot())
                if cfg.keep_checkpoints:
                    keep_checkpoint(out)
            if cfg.stop_after is not None and step >= cfg.stop_after and step < total:
                stopped = "stop_after"
            if stop.signal is not None:
                stopped = signal.Signals(stop.signal).name
            if stopped:
                if main_proc:
                    save_checkpoint(out, snapshot())
                break
    if bar is not None:
        bar.close()
    summary = {"out": str(out), "model": cfg.model, "step": step, "total_steps": total,
               "elapsed_s": round(elapsed, 1), "cpu_s": round(cpu, 1), "interrupted": stopped,
               "images_per_s": round(step * cfg.batch_size / max(elapsed, 1e-9), 1) if step else 0.0}
    if main_proc and not done_already:
        if stopped:
            log(f"stopped ({stopped}) at step {step:,}/{total:,}; checkpoint saved in {out}. "
                f"Continue with the same command and --resume.")
        else:
            save_weights(model, out / FINAL, meta={"run": cfg.to_json(), "steps": step, "elapsed_s": elapsed,
                                                   "cpu_s": cpu})
            last = [h["mse"] for h in history if h["kind"] == "epoch"] or [math.nan]
            log(f"done: {cfg.model} {step:,} steps in {elapsed / 60:.1f} min ({summary['images_per_s']:.0f} img/s), "
                f"final training mse {last[-1]:.5f}; weights in {out / FINAL}")
    if world > 1:
        dist.barrier()
    model.train_summary = summary
    return {**summary, "model_obj": model}


# ---- python -m ifanp train ----------------------------------------------------------------------------


def add_train_arguments(parser) -> None:
    """Arguments of ``python -m ifanp train``."""
    parser.add_argument("--model", required=True, help="model name (see ifanp.models.model_names())")
    parser.add_argument("--dataset", choices=DATASETS, default="mnist")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (wins over --epochs)")
    parser.add_argument("--epochs", type=float, default=None, help="epochs over the training set")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--schedule", choices=["cosine", "constant"], default="cosine")
    parser.add_argument("--warmup", type=int, default=TrainConfig.warmup,
                        help="steps of the linear learning-rate warm-up (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--out", default=None, help="run folder (default runs/<model>-<dataset>-s<seed>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="model option, e.g. --set hidden=96 --set skip=true --set local=none (each value is read as the "
                             "type of the option's default: true/false/1/0/yes/no, a whole number, a number, a word, "
                             "none/null)")
    parser.add_argument("--train-limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints")
    parser.add_argument("--eval-every", type=int, default=0,
                        help="steps between PSNR checks at 40%% context on 1,000 held-out images (0: off)")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="also keep a copy of every checkpoint in <out>/checkpoints/step-N/ (for learning curves "
                             "at any context ratio: tools/eval_checkpoints.py)")
    parser.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (epoch lines only)")


def run_train(args) -> int:
    from .models import model_names

    if args.model not in model_names():
        raise ValueError(f"unknown model {args.model!r}; choose one of: {', '.join(model_names())}.")
    if args.steps is None and args.epochs is None:
        raise ValueError("give --steps N or --epochs E.")
    cfg = TrainConfig(
        model=args.model, dataset=args.dataset, out=args.out or f"runs/{args.model}-{args.dataset}-s{args.seed}",
        steps=args.steps, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, schedule=args.schedule,
        warmup=args.warmup, seed=args.seed, device=args.device, threads=args.threads,
        overrides=parse_overrides(args.set, args.model),
        train_limit=args.train_limit, checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
        progress=not args.no_progress, stop_after=args.stop_after, keep_checkpoints=args.keep_checkpoints,
    )
    check_settings(cfg)
    get_device(cfg.device)  # a device that is not there: one line before any data is read
    result = train(cfg, resume=args.resume)  # its errors become one line in ifanp.cli.main
    if result["interrupted"] == "SIGINT":
        return 130
    if result["interrupted"] == "SIGTERM":
        return 143
    return 0
