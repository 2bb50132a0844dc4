"""Training image models: the loop, checkpoints that survive interruption, resume, DDP.

A run lives in one folder (``--out``):

* ``config.json`` — everything needed to repeat the run exactly (model, overrides, data, optimiser, seed);
* ``checkpoint.safetensors`` + ``checkpoint.json`` — model, optimiser and RNG state and the step,
  written at intervals, at the end, and when the run is interrupted (Ctrl-C / SIGTERM). Tensors go to
  safetensors and everything else to JSON: nothing is ever unpickled;
* ``log.jsonl`` — one line per epoch (mean loss, NLL, KL, training MSE: the paper's Fig. 8) and one per
  evaluation (PSNR at 40 % context on held-out images); each with the training time so far, as wall
  seconds (``elapsed_s``) and as CPU seconds of the process (``cpu_s``, all threads; it does not grow
  while other programs hold the CPU, so it compares runs made on a busy machine);
* ``model.safetensors`` — the final weights (loadable with :func:`ifanp.pretrained.load_weights`).

Randomness is a function of (seed, step): the data order of epoch e is a permutation drawn from
``seed + e``, and the masks and z samples of step s come from generators seeded with (seed, s). So a run
that is interrupted and resumed reaches exactly the weights of an uninterrupted run.

Under ``torchrun --nproc_per_node=N`` the same code trains with DistributedDataParallel (gloo on CPU,
NCCL on CUDA): the batch is split across the processes and only rank 0 writes files.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import Tensor
from typing_extensions import Self

from .config import get_device
from .data.masks import TRAIN_RATIO_RANGE, random_mask
from .data.splits import load_eval_images, load_train_images
from .evaluate import quick_psnr
from .models import build
from .pretrained import save_weights

CHECKPOINT = "checkpoint"
FINAL = "model.safetensors"

# Fields that may differ when resuming (they only extend or redirect the run).
_RESUMABLE = {"steps", "epochs", "out", "device", "threads", "checkpoint_every", "eval_every", "progress",
              "stop_after"}


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


def save_checkpoint(folder: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (nested dicts/lists of tensors and plain values) atomically into ``folder``."""
    tensors: dict[str, Tensor] = {}
    structure = _flatten(state, tensors, "")
    tmp_t, tmp_j = folder / f"{CHECKPOINT}.safetensors.tmp", folder / f"{CHECKPOINT}.json.tmp"
    save_file(tensors, str(tmp_t))
    tmp_j.write_text(json.dumps(structure))
    os.replace(tmp_t, folder / f"{CHECKPOINT}.safetensors")
    os.replace(tmp_j, folder / f"{CHECKPOINT}.json")


def load_checkpoint(folder: Path) -> dict[str, Any] | None:
    """The state saved by :func:`save_checkpoint`, or None when the folder has no checkpoint."""
    tj, tt = folder / f"{CHECKPOINT}.json", folder / f"{CHECKPOINT}.safetensors"
    if not tj.is_file() or not tt.is_file():
        return None
    try:
        return _unflatten(json.loads(tj.read_text()), load_file(str(tt)))
    except Exception as err:
        raise TrainingError(f"the checkpoint in {folder} is unreadable ({err}); delete it to start afresh.") from err


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
    if cfg.train_limit:
        parts.append(f"--train-limit {cfg.train_limit}")
    parts += [f"--set {k}={json.dumps(v)}" for k, v in sorted(cfg.overrides.items())]
    if cfg.eval_every:
        parts.append(f"--eval-every {cfg.eval_every}")
    if cfg.threads:
        parts.append(f"--threads {cfg.threads}")
    parts.append(f"--out {cfg.out}")
    return " ".join(parts)


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
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.batch_size % world:
        raise ValueError(f"--batch-size {cfg.batch_size} must be divisible by the number of processes ({world}).")
    if cfg.schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {cfg.schedule!r}.")
    out = Path(cfg.out)
    main_proc = rank == 0
    if main_proc:
        out.mkdir(parents=True, exist_ok=True)

    images = load_train_images(cfg.dataset, cfg.train_limit)
    n, C, H, W = images.shape
    if H != W:
        raise ValueError(f"training images must be square, got {H}x{W}.")
    torch.manual_seed(cfg.seed)  # the initial weights depend on the seed only
    model = build(cfg.model, channels=C, size=H, **cfg.overrides).to(device)
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

    # Resume or start afresh.
    step, elapsed, cpu, history = 0, 0.0, 0.0, []
    config_file = out / "config.json"
    state = load_checkpoint(out) if (resume and out.is_dir()) else None
    if resume and state is None and main_proc:
        log(f"no checkpoint in {out}; starting a new run")
    if state is not None:
        saved = TrainConfig.from_json(state["config"]).to_json()
        mine = cfg.to_json()
        diff = {k: (saved[k], mine[k]) for k in mine if k not in _RESUMABLE and saved.get(k) != mine[k]}
        if diff:
            detail = "; ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in diff.items())
            raise TrainingError(f"cannot resume {out}: the checkpoint was made with another configuration ({detail}). "
                                "Use the same options, or a new --out folder.")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        step, elapsed, history = int(state["step"]), float(state["elapsed"]), list(state["history"])
        cpu = float(state.get("cpu", 0.0))
        if main_proc:
            log(f"resumed {out} at step {step:,} ({elapsed / 60:.1f} min of training so far)")
    elif main_proc and not resume and (out / f"{CHECKPOINT}.json").is_file():
        raise TrainingError(f"{out} already holds a run; pass --resume to continue it or choose another --out.")
    if main_proc:
        config_file.write_text(json.dumps({**cfg.to_json(), "total_steps": total, "command": command_for(cfg)},
                                          indent=2) + "\n")

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
                "rng": torch.get_rng_state(), "step": step, "elapsed": elapsed, "cpu": cpu, "history": history}

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    local_batch = cfg.batch_size // world
    epoch_acc: dict[str, float] = {}
    bar = None
    if cfg.progress and main_proc:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=step, desc=cfg.model, unit="step", dynamic_ncols=True, leave=False)
    model.train()
    stopped = None
    perm, perm_epoch = None, -1
    t_last, c_last = time.perf_counter(), time.process_time()
    with _Stop() as stop:
        while step < total:
            epoch = step // steps_per_epoch
            if epoch != perm_epoch:
                perm, perm_epoch = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + epoch)), epoch
            pos = (step % steps_per_epoch) * cfg.batch_size + rank * local_batch
            idx = perm[pos : pos + local_batch]
            gen = step_generator(cfg.seed, step, rank)
            x = images[idx].to(device, non_blocking=True).float().div_(255)
            mask = random_mask(len(idx), H, cfg.ratio_range, generator=gen).to(device)
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, step, total)
            if autocast is not None:
                with autocast:
                    out_ = net(x, mask)
            else:
                out_ = net(x, mask)
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
    if main_proc:
        if stopped:
            log(f"stopped ({stopped}) at step {step:,}/{total:,}; checkpoint saved in {out}. "
                f"Continue with the same command and --resume.")
        else:
            save_weights(model, out / FINAL, meta={"run": cfg.to_json(), "steps": step, "elapsed_s": elapsed,
                                                   "cpu_s": cpu})
            last = [h for h in history if h["kind"] == "epoch"][-1]
            log(f"done: {cfg.model} {step:,} steps in {elapsed / 60:.1f} min ({summary['images_per_s']:.0f} img/s), "
                f"final training mse {last['mse']:.5f}; weights in {out / FINAL}")
    if world > 1:
        dist.barrier()
    model.train_summary = summary
    return {**summary, "model_obj": model}


# ---- python -m ifanp train ----------------------------------------------------------------------------


def add_train_arguments(parser) -> None:
    """Arguments of ``python -m ifanp train``."""
    parser.add_argument("--model", required=True, help="model name (see ifanp.models.model_names())")
    parser.add_argument("--dataset", choices=["mnist", "celeba"], default="mnist")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (wins over --epochs)")
    parser.add_argument("--epochs", type=float, default=None, help="epochs over the training set")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--schedule", choices=["cosine", "constant"], default="cosine")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--out", default=None, help="run folder (default runs/<model>-<dataset>-s<seed>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="model option, e.g. --set hidden=96 --set gca_heads=4 (JSON values)")
    parser.add_argument("--train-limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints")
    parser.add_argument("--eval-every", type=int, default=0,
                        help="steps between PSNR checks at 40%% context on 1,000 held-out images (0: off)")
    parser.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (epoch lines only)")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["hidden=96", "skip=true"]`` -> ``{"hidden": 96, "skip": True}`` (values parsed as JSON, else str)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}.")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def run_train(args) -> int:
    from .models import model_names

    if args.model not in model_names():
        raise ValueError(f"unknown model {args.model!r}; choose one of: {', '.join(model_names())}.")
    if args.steps is None and args.epochs is None:
        raise ValueError("give --steps N or --epochs E.")
    for flag in ("batch_size", "steps", "checkpoint_every"):
        v = getattr(args, flag)
        if v is not None and v < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be a positive integer, got {v}.")
    if args.lr <= 0:
        raise ValueError(f"--lr must be positive, got {args.lr}.")
    cfg = TrainConfig(
        model=args.model, dataset=args.dataset, out=args.out or f"runs/{args.model}-{args.dataset}-s{args.seed}",
        steps=args.steps, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, schedule=args.schedule,
        seed=args.seed, device=args.device, threads=args.threads, overrides=parse_overrides(args.set),
        train_limit=args.train_limit, checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
        progress=not args.no_progress, stop_after=args.stop_after,
    )
    from .models.base import InputError

    try:
        result = train(cfg, resume=args.resume)
    except InputError as err:
        raise ValueError(str(err)) from err
    except TrainingError as err:
        print(f"ifanp train: error: {err}", file=sys.stderr)
        return 1
    if result["interrupted"] == "SIGINT":
        return 130
    if result["interrupted"] == "SIGTERM":
        return 143
    return 0
