"""Timing: :class:`Timer` (the wall-clock time of a block, for the chapters' "evaluated in N s" lines),
:func:`best_time` (the shortest of several runs, CUDA synchronised) and :func:`attention_cost` (global
attention's time and memory against the image size, the attention chapter's measurement)."""
from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from typing_extensions import Self

from .introspect import attention_matrix, key_density
from .models import build

__all__ = ["Timer", "attention_cost", "best_time"]


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds`` (wall clock, ``time.perf_counter``); while the block runs,
    ``t.seconds`` is the time so far. ``str(t)`` is e.g. ``"12 s"``."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.end: float | None = None

    def __enter__(self) -> Self:
        self.start, self.end = time.perf_counter(), None
        return self

    def __exit__(self, *exc: object) -> None:
        self.end = time.perf_counter()

    @property
    def seconds(self) -> float:
        if self.start is None:
            return 0.0
        return (self.end if self.end is not None else time.perf_counter()) - self.start

    def __str__(self) -> str:
        return f"{self.seconds:.0f} s"


def best_time(fn, repeats: int = 3, device: torch.device | str = "cpu", warmup: int = 1) -> float:
    """The shortest wall-clock time of ``repeats`` calls of ``fn`` in seconds (after ``warmup`` calls),
    synchronising CUDA around each call."""
    dev = torch.device(device)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)



@torch.no_grad()
def attention_cost(sizes: Sequence[int], downs: Sequence[int] = (1, 2),
                   config: Mapping[str, Any] | None = None, ratio: float = 0.4, batch: int = 1,
                   repeats: int = 3, device: str | torch.device = "cpu",
                   seed: int = 0) -> list[dict[str, float]]:
    """Measure global attention against image size.

    For every ``size`` and ``down``, build the model of ``config`` (default: ``ifanp``'s) at that size with
    ConvEncoder1's stride ``down`` (untrained: the cost does not depend on the weights), draw ``batch``
    random images and masks with ``ratio`` context, and record

    * ``gca_s``: the best time of one GCA forward over ``repeats`` (queries and keys on the (size/down)^2
      grid, as in the model);
    * ``model_s``: the best time of one completion forward of the whole model (``predict``), measured
      alternately with ``gca_s``;
    * ``attn_bytes``: the bytes of the attention matrix of the batch, measured on the tensor
      :func:`attention_matrix` materialises (B x heads x (size/down)^2 x (size/down)^2 floats);
    * ``pixels`` = size^2 and ``keys`` = (size/down)^2.
    """
    cfg = dict(config or {"name": "ifanp"})
    name = cfg.pop("name", "ifanp")
    for key in ("size", "down"):
        cfg.pop(key, None)
    dev = torch.device(device)
    records = []
    for size in sizes:
        for down in downs:
            if size % down:
                raise ValueError(f"size {size} is not divisible by down={down}.")
            torch.manual_seed(seed)
            model = build(name, **{**cfg, "size": int(size), "down": int(down)}).to(dev).eval()
            records.append(_measure(model, ratio, batch, repeats, dev, seed))
    return records



def _measure(model, ratio: float, batch: int, repeats: int, dev: torch.device, seed: int) -> dict[str, float]:
    size, down = model.size, model.cfg["down"]
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, model.channels, size, size, generator=g).to(dev)
    m = (torch.rand(batch, 1, size, size, generator=g) < ratio).float().to(dev)
    r = size // down
    values = torch.randn(batch, model.cfg["hidden"], r, r, generator=g).to(dev)
    density = key_density(model, m)

    def gca():
        return model.gca(values, density, (r, r))

    def whole():
        return model.predict(x, m)

    gca(), whole()  # warm-up
    # Interleaved, so that both see the same conditions on a shared machine; the best of each.
    gca_s = model_s = math.inf
    for _ in range(repeats):
        gca_s = min(gca_s, best_time(gca, 1, dev, warmup=0))
        model_s = min(model_s, best_time(whole, 1, dev, warmup=0))
    attn_bytes = attention_matrix(model, m).nbytes
    return {"size": int(size), "down": int(down), "pixels": int(size * size), "keys": int(r * r),
            "gca_s": gca_s, "model_s": model_s, "attn_bytes": int(attn_bytes)}

