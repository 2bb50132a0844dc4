"""Training and evaluation of the set-based neural processes on 1-D function tasks.

``train_1d(model, sampler, steps)`` draws a fresh batch of tasks every step from a sampler with the
interface of :class:`ifanp.data.functions.GPFunctionSampler` (``sampler.sample(batch_size,
generator=, device=)`` returning ``x_context, y_context, x_target, y_target``) and minimises the
model's loss (Eq. 6 for latent models, -log p for the CNP) with Adam. ``evaluate_1d`` reports the
mean predictive log-likelihood per target point on a fixed list of tasks.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from tqdm.auto import tqdm

from .models.setnp import SetNP

__all__ = ["evaluate_1d", "train_1d"]


def _unpack(batch: Any) -> tuple:
    """(xc, yc, xt, yt) from a :class:`~ifanp.data.functions.FunctionBatch`-like object or a 4-tuple."""
    if hasattr(batch, "x_context"):
        return batch.x_context, batch.y_context, batch.x_target, batch.y_target
    xc, yc, xt, yt = batch
    return xc, yc, xt, yt


def train_1d(
    model: SetNP,
    sampler: Any,
    steps: int,
    batch_size: int = 16,
    lr: float = 5e-4,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    callback: Callable[[int, SetNP, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` for ``steps`` Adam steps on batches drawn from ``sampler``; return the history.

    Each step draws ``batch_size`` new tasks with a generator seeded by ``seed`` (so a rerun sees
    the same tasks), computes ``model.loss`` and takes one Adam step with learning rate ``lr``
    (5e-4 by default; attentive models can be unstable at 1e-3). The z samples of latent models use
    torch's global generator, seeded with ``seed`` here. ``history`` has one dict per step: ``step``,
    ``loss``, ``nll``, ``kl``, ``mse`` (batch means, per task) and ``time`` (seconds since the start).
    ``callback(step, model, record)`` is called after every step (e.g. to evaluate or plot). With
    ``progress`` a ``tqdm.auto`` bar shows the loss and steps/s, and one summary line is printed at
    the end. A non-finite loss stops the run with a ``FloatingPointError``.
    """
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    device = torch.device(device)
    model.to(device).train()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=f"train {_model_name(model)}", disable=not progress, leave=False)
    for step in bar:
        batch = sampler.sample(batch_size, generator=generator, device=device)
        xc, yc, xt, yt = (t.to(device) for t in _unpack(batch))
        out = model.loss(xc, yc, xt, yt)
        if not torch.isfinite(out.loss):
            raise FloatingPointError(f"the loss became {float(out.loss)} at step {step + 1}; lower lr.")
        optimiser.zero_grad(set_to_none=True)
        out.loss.backward()
        optimiser.step()
        record = {"step": step + 1, **out.as_floats(), "time": time.perf_counter() - start}
        history.append(record)
        if progress and (step % 10 == 0 or step == steps - 1):
            bar.set_postfix(loss=f"{record['loss']:.3g}", steps_s=f"{(step + 1) / record['time']:.1f}", refresh=False)
        if callback is not None:
            callback(step + 1, model, record)
    bar.close()
    if progress and history:
        elapsed = history[-1]["time"]
        tail = history[-min(50, len(history)):]
        mean_loss = sum(r["loss"] for r in tail) / len(tail)
        print(f"train {_model_name(model)}: {steps} steps in {elapsed:.1f} s ({steps / elapsed:.1f} steps/s), "
              f"loss over the last {len(tail)} steps {mean_loss:.3f}")
    return history


@torch.no_grad()
def evaluate_1d(model: SetNP, tasks: Iterable[Any], samples: int = 32) -> float:
    """Mean predictive log-likelihood per target point over ``tasks``.

    ``tasks``: batches (``FunctionBatch`` or ``(xc, yc, xt, yt)`` tuples), e.g.
    ``sampler.fixed_eval_set(100)``. The sum of ``model.log_likelihood`` (exact for the CNP,
    importance-sampled with ``samples`` draws for latent models) over all tasks, divided by the
    total number of target points. Higher is better; the model is put in eval mode.
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for batch in tasks:
            xc, yc, xt, yt = _unpack(batch)
            ll = model.log_likelihood(xc, yc, xt, yt, samples=samples)
            total += float(ll.sum())
            count += xt.shape[0] * xt.shape[1]
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate_1d got no tasks.")
    return total / count


def _model_name(model: SetNP) -> str:
    config = getattr(model, "config", None)
    return config.get("name", "model") if isinstance(config, dict) else type(model).__name__
