"""Reading training logs: a run folder's ``log.jsonl`` (written by :func:`ifanp.train.train`) or the copy of
it that ``python -m ifanp export`` keeps in a registry entry (``history`` and ``evals``).

The one reader of ``log.jsonl`` in the package: :func:`read_log` (every row), :func:`training_log` (epoch
and eval rows of a run folder or a registry name) and :func:`steps_per_epoch`. :func:`shipped_experiment` reads
the recorded result of an experiment that ships with the package (``ifanp/experiments/<name>.json``, written by
a script in ``tools/`` that names its command).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .data.mnist import MNIST_COUNTS
from .pretrained import registry

EXPERIMENTS = Path(__file__).resolve().parent / "experiments"
TRAIN_BATCH = 64  # the batch size of every shipped run (python -m ifanp train's default)
TRAIN_IMAGES = MNIST_COUNTS["train"]  # MNIST's training split


def read_log(run: str | Path) -> list[dict[str, Any]]:
    """Every row of ``run/log.jsonl`` in order (``kind`` "epoch" or "eval"); [] when the run has no log."""
    log = Path(run) / "log.jsonl"
    if not log.is_file():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def shipped_experiment(name: str) -> dict[str, Any] | None:
    """The recorded result ``ifanp/experiments/{name}.json`` (None when this install has none)."""
    path = EXPERIMENTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def training_log(ref: str | Path, reg: Mapping[str, Any] | None = None) -> dict[str, list[dict[str, Any]]]:
    """The training log of a registry name (its ``history`` and ``evals``) or of a run folder (its
    ``log.jsonl``): ``{"history": epoch rows, "evals": eval rows}``; empty lists when there is none."""
    if reg is None:
        reg = registry()
    if str(ref) in reg:
        entry = reg[str(ref)]
        return {"history": list(entry.get("history") or []), "evals": list(entry.get("evals") or [])}
    rows = read_log(ref)
    return {"history": [r for r in rows if r.get("kind") == "epoch"],
            "evals": [r for r in rows if r.get("kind") == "eval"]}


def steps_per_epoch(entry: Mapping[str, Any] | None) -> float:
    """Optimiser steps per epoch of a registry entry's run (or of :func:`training_log`'s result), read from
    its training log (the last epoch row's step / epoch), else the shipped runs' 60,000 / 64."""
    hist = [h for h in (entry or {}).get("history", []) if h.get("epoch")]
    if hist:
        return hist[-1]["step"] / hist[-1]["epoch"]
    return TRAIN_IMAGES / TRAIN_BATCH
