"""Random 1-D functions drawn from GP priors: the training tasks of the neural-process chapter.

One *task* is a function ``f ~ GP(0, k)`` observed with noise at ``Nt`` random points of ``x_range``::

    x_1..x_Nt ~ U(x_range),     y = f(x) + eps,    eps ~ N(0, sigma_n^2 I)
    =>  y ~ N(0, K(x, x) + sigma_n^2 I)

A random subset of ``Nc`` of those points is the context; the targets are *all* ``Nt`` points,
context included (the neural-process convention). ``Nt`` and ``Nc`` are drawn once per call, so
that the tasks of a batch stack into tensors.

* :class:`GPFunctionSampler` — ``sampler.sample(batch_size, generator)`` -> :class:`FunctionBatch`;
* :class:`GPFunctionDataset` — an ``IterableDataset`` of batches for a ``DataLoader(batch_size=None)``;
* ``sampler.fixed_eval_set(num_tasks, seed)`` — the same evaluation tasks on every machine.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from ..gp import Kernel, cholesky, kernel_by_name

__all__ = ["FunctionBatch", "GPFunctionDataset", "GPFunctionSampler"]

# Independent random streams derived from one seed: training batches and evaluation tasks.
_TRAIN_STREAM, _EVAL_STREAM = 0, 1


@dataclass
class FunctionBatch:
    """A batch of 1-D regression tasks (float32).

    ``x_context``, ``y_context``: (B, Nc, 1); ``x_target``, ``y_target``: (B, Nt, 1). The targets
    include the context points (every context pair is also a target pair), sorted by x; the context
    is in random order. Unpacks as ``xc, yc, xt, yt = batch``.
    """

    x_context: Tensor
    y_context: Tensor
    x_target: Tensor
    y_target: Tensor

    def __iter__(self):
        return iter((self.x_context, self.y_context, self.x_target, self.y_target))

    @property
    def batch_size(self) -> int:
        return self.x_target.shape[0]

    @property
    def num_context(self) -> int:
        return self.x_context.shape[1]

    @property
    def num_target(self) -> int:
        return self.x_target.shape[1]

    def to(self, device=None, dtype: torch.dtype | None = None) -> FunctionBatch:
        """A copy on ``device`` and/or in ``dtype``."""
        return FunctionBatch(*(t.to(device=device, dtype=dtype) for t in self))

    def pin_memory(self) -> FunctionBatch:
        """Used by ``DataLoader(pin_memory=True)``."""
        return FunctionBatch(*(t.pin_memory() for t in self))


def _int_range(value, name: str, minimum: int) -> tuple[int, int]:
    """``n`` or ``(lo, hi)`` (inclusive) -> ``(lo, hi)`` after checks."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    try:
        lo, hi = pair
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer or a (low, high) pair of integers, got {value!r}.") from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (lo, hi)):
        raise ValueError(f"{name} must be an integer or a (low, high) pair of integers, got {value!r}.")
    if lo < minimum or hi < lo:
        raise ValueError(f"{name} must satisfy {minimum} <= low <= high, got {value!r}.")
    return int(lo), int(hi)


def _derived_seed(seed: int, stream: int, index: int) -> int:
    """A 63-bit seed for batch ``index`` of ``stream``, independent of how batches are split between workers."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1, np.uint64)[0] >> np.uint64(1))


class GPFunctionSampler:
    """Draws batches of noisy functions from a GP prior on an interval.

    Parameters
    ----------
    kernel : str or Kernel
        ``"rbf"``, ``"matern12"``, ``"matern32"``, ``"matern52"``, ``"periodic"`` (see
        :func:`ifanp.gp.kernel_by_name`) or a :class:`ifanp.gp.Kernel` instance.
    x_range : (float, float)
        Inputs are uniform on this interval.
    num_points : int or (int, int)
        Total number of points per task, ``Nt`` (targets), drawn uniformly from the inclusive range per call.
    num_context : int or (int, int)
        Number of context points ``Nc`` (a random subset of the targets), drawn per call; its upper
        end may not exceed the lower end of ``num_points``.
    noise : float
        Observation-noise *variance* sigma_n^2 (same convention as ``GPRegression(noise=...)``);
        so ``Var(y_i) = k(x_i, x_i) + noise``.
    kernel_params : dict, optional
        Hyperparameters for a kernel given by name. Default: :attr:`DEFAULT_KERNEL_PARAMS`
        (lengthscale 0.6 for RBF/Matérn, as in the DeepMind NP experiments; variance 1).
    jitter : float
        Initial Cholesky jitter, relative to the mean of the diagonal (grows if needed).

    One call draws ``x`` (B, Nt, 1) and computes ``y = L eps`` with ``L L^T = K(x, x) + sigma_n^2 I``
    by one batched Cholesky in float64; the output is float32.
    """

    DEFAULT_KERNEL_PARAMS: Mapping[str, Mapping[str, float]] = {
        "rbf": {"lengthscale": 0.6, "variance": 1.0},
        "matern12": {"lengthscale": 0.6, "variance": 1.0},
        "matern32": {"lengthscale": 0.6, "variance": 1.0},
        "matern52": {"lengthscale": 0.6, "variance": 1.0},
        "periodic": {"lengthscale": 1.0, "period": 1.0, "variance": 1.0},
    }

    def __init__(
        self,
        kernel: str | Kernel = "rbf",
        x_range: tuple[float, float] = (-2.0, 2.0),
        num_points: int | tuple[int, int] = (50, 100),
        num_context: int | tuple[int, int] = (3, 50),
        noise: float = 1e-4,
        kernel_params: Mapping[str, float] | None = None,
        jitter: float = 1e-8,
    ):
        if isinstance(kernel, str):
            key = kernel.strip().lower()
            params = dict(self.DEFAULT_KERNEL_PARAMS.get(key, {}) if kernel_params is None else kernel_params)
            kernel = kernel_by_name(key, **params)
        elif isinstance(kernel, Kernel):
            if kernel_params is not None:
                raise ValueError("kernel_params is only used with a kernel name, not with a Kernel instance.")
        else:
            raise TypeError(f"kernel must be a kernel name or a Kernel, got {type(kernel).__name__}.")
        self.kernel = kernel
        try:
            lo, hi = (float(v) for v in x_range)
        except (TypeError, ValueError):
            raise ValueError(f"x_range must be a (low, high) pair of numbers, got {x_range!r}.") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"x_range must be finite with low < high, got {x_range!r}.")
        self.x_range = (lo, hi)
        self.num_points = _int_range(num_points, "num_points", 1)
        self.num_context = _int_range(num_context, "num_context", 0)
        if self.num_context[1] > self.num_points[0]:
            raise ValueError(
                f"num_context {self.num_context} may not exceed num_points {self.num_points}: the context is a "
                "subset of the targets, so the largest context must fit in the smallest set of points."
            )
        noise = float(noise)
        if not (math.isfinite(noise) and noise >= 0):
            raise ValueError(f"noise must be a finite variance >= 0, got {noise!r}.")
        self.noise = noise
        self.jitter = float(jitter)

    def __repr__(self) -> str:
        return (
            f"GPFunctionSampler(kernel={self.kernel!r}, x_range={self.x_range}, num_points={self.num_points}, "
            f"num_context={self.num_context}, noise={self.noise})"
        )

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, device=None
    ) -> FunctionBatch:
        """Draw ``batch_size`` tasks sharing one ``Nc`` and one ``Nt`` (both drawn in this call).

        Nt ~ U{num_points}, Nc ~ U{num_context}; x ~ U(x_range)^(B x Nt), sorted;
        y = L eps, L L^T = K(x, x) + sigma_n^2 I, eps ~ N(0, I);  context = a random subset of Nc of the (x, y).

        All random numbers come from ``generator`` (or torch's global generator), drawn on the
        generator's device, so a seeded CPU generator gives the same tasks whatever ``device`` is.
        Returns a float32 :class:`FunctionBatch` on ``device`` (default CPU).
        """
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        gdev = generator.device if generator is not None else torch.device("cpu")
        device = torch.device(device) if device is not None else torch.device("cpu")
        kw = {"generator": generator, "device": gdev}
        nt = int(torch.randint(self.num_points[0], self.num_points[1] + 1, (1,), **kw))
        nc = int(torch.randint(self.num_context[0], min(self.num_context[1], nt) + 1, (1,), **kw))
        lo, hi = self.x_range
        x = lo + (hi - lo) * torch.rand(batch_size, nt, 1, dtype=torch.float64, **kw)
        x = x.sort(dim=1).values
        context_idx = torch.rand(batch_size, nt, **kw).argsort(dim=1)[:, :nc]
        eps = torch.randn(batch_size, nt, 1, dtype=torch.float64, **kw)
        x, context_idx, eps = x.to(device), context_idx.to(device), eps.to(device)

        with torch.no_grad():
            k = self.kernel(x) + self.noise * torch.eye(nt, dtype=x.dtype, device=x.device)
            y = cholesky(k, jitter=self.jitter) @ eps  # (B, Nt, 1)
        idx = context_idx[..., None]
        x_c, y_c = torch.gather(x, 1, idx), torch.gather(y, 1, idx)
        return FunctionBatch(*(t.to(torch.float32) for t in (x_c, y_c, x, y)))

    def as_dataset(self, num_batches: int, batch_size: int, seed: int | None = None) -> GPFunctionDataset:
        """An ``IterableDataset`` of ``num_batches`` batches; use it with ``DataLoader(ds, batch_size=None)``."""
        return GPFunctionDataset(self, num_batches, batch_size, seed)

    def fixed_eval_set(
        self, num_tasks: int, seed: int = 0, batch_size: int = 1, device=None
    ) -> list[FunctionBatch]:
        """A deterministic list of evaluation tasks: the same for the same arguments, on every machine.

        ``batch_size=1`` (default) gives ``num_tasks`` batches, each task with its own ``Nc`` and
        ``Nt``; a larger ``batch_size`` groups the tasks (the last batch may be smaller). The random
        stream is separate from that of :meth:`as_dataset` with the same seed, so evaluation
        tasks are not training tasks.
        """
        if not isinstance(num_tasks, int) or num_tasks < 1:
            raise ValueError(f"num_tasks must be a positive integer, got {num_tasks!r}.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        batches = []
        for i, start in enumerate(range(0, num_tasks, batch_size)):
            g = torch.Generator().manual_seed(_derived_seed(seed, _EVAL_STREAM, i))
            batches.append(self.sample(min(batch_size, num_tasks - start), generator=g, device=device))
        return batches


class GPFunctionDataset(IterableDataset):
    """``num_batches`` ready-made :class:`FunctionBatch` es from a :class:`GPFunctionSampler`.

    Use ``DataLoader(dataset, batch_size=None)`` (the items are already batches). Batch ``i`` is drawn
    from a generator seeded from ``(seed, i)``, so with a seed the batches are the same whatever the
    number of DataLoader workers (worker ``w`` of ``W`` makes batches ``w, w + W, ...``; the loader
    may interleave them in another order). With ``seed=None`` every pass draws new batches from a base
    seed taken from torch's global generator.
    """

    def __init__(self, sampler: GPFunctionSampler, num_batches: int, batch_size: int, seed: int | None = None):
        if not isinstance(num_batches, int) or num_batches < 1:
            raise ValueError(f"num_batches must be a positive integer, got {num_batches!r}.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        if seed is not None and (not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}.")
        self.sampler = sampler
        self.num_batches = num_batches
        self.batch_size = batch_size
        self.seed = seed

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        seed = self.seed if self.seed is not None else int(torch.randint(0, 2**62, (1,)))
        for i in range(worker, self.num_batches, workers):
            g = torch.Generator().manual_seed(_derived_seed(seed, _TRAIN_STREAM, i))
            yield self.sampler.sample(self.batch_size, generator=g)
