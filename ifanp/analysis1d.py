"""Numbers about models of 1-D functions (the GP and neural-process chapters); nothing here draws.

* :func:`gp_fit`: the exact GP posterior of f on a grid from named kernel settings (the GP widget's numbers);
* :class:`GridTask` / :func:`grid_task`: one test function on a grid with a random context;
* :func:`predictive`: a neural process's predictive mean and std **of y** at the targets. For latent models
  (NP, ANP) the predictive is the mixture over z ~ q(z | context), moment-matched over ``samples`` draws
  (:func:`ifanp.analysis.mixture_moments`); :func:`gp_predictive`: the exact GP's, with the noise;
* :func:`split_rmse` and :func:`context_fit`: how well a predictive mean passes through its context.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from . import gp as _gp
from .analysis import eval_mode, mixture_moments
from .data.functions import GPFunctionSampler
from .gp import GPRegression, cholesky

__all__ = ["GridTask", "context_fit", "gp_fit", "gp_predictive", "grid_task", "predictive", "split_rmse"]


def to_numpy(x) -> np.ndarray:
    """A float numpy copy of a tensor (detached, on the CPU) or of anything array-like."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=float)


def _flat_x(x) -> np.ndarray:
    """Inputs ``(N,)`` or ``(N, 1)`` as a flat array (the chapter's figures are 1-D)."""
    x = to_numpy(x)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1:
        raise ValueError(f"expected 1-D inputs of shape (N,) or (N, 1), got {x.shape}.")
    return x


def gp_fit(
    x_train,
    y_train,
    x_test,
    *,
    kernel: str = "rbf",
    lengthscale: float = 1.0,
    noise_std: float = 0.1,
    variance: float = 1.0,
    period: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Exact posterior of f on ``x_test`` with the named kernel: ``(mean, var_f, lml)`` as numpy.

    With no observations it returns the prior (zero mean, the kernel's variance) and ``lml=None``.
    ``noise_std`` is the noise standard deviation sigma_n (its square is the model's noise variance).
    """
    params = {"lengthscale": lengthscale, "variance": variance}
    if kernel == "periodic":
        params["period"] = period
    model = _gp.GPRegression(_gp.kernel_by_name(kernel, **params), noise=noise_std**2)
    xs = torch.as_tensor(_flat_x(x_test), dtype=torch.float64)[:, None]
    xt = _flat_x(x_train) if x_train is not None else np.zeros(0)
    with torch.no_grad():
        if len(xt) == 0:
            return np.zeros(len(xs)), to_numpy(model.kernel.diag(xs)), None
        xt_t = torch.as_tensor(xt, dtype=torch.float64)[:, None]
        yt_t = torch.as_tensor(to_numpy(y_train), dtype=torch.float64)
        mean, var_f = model.posterior(xt_t, yt_t, xs, full_cov=False)
        lml = float(model.log_marginal_likelihood(xt_t, yt_t))
    return to_numpy(mean), to_numpy(var_f), lml


class GridTask(NamedTuple):
    """One test function on a grid: ``x`` (M, 1) sorted grid, ``f`` (M,) the noise-free function,
    ``y`` (M,) noisy observations of it, ``xc``/``yc`` (Nc, 1) the context (a random subset of the
    grid's (x, y) pairs), ``kernel`` the name of the GP kernel that drew ``f``."""

    x: Tensor
    f: Tensor
    y: Tensor
    xc: Tensor
    yc: Tensor
    kernel: str



def grid_task(kernel: str = "rbf", num_context: int = 10, seed: int = 0, num_points: int = 200,
              sampler=None) -> GridTask:
    """Draw f ~ GP(0, k) on a grid of ``num_points`` points of the sampler's ``x_range`` and observe it with
    the sampler's noise; the context is ``num_context`` grid points chosen at random. ``sampler``:
    default ``GPFunctionSampler(kernel)``, the training distribution of ``python -m ifanp train1d``."""
    if not isinstance(num_context, int) or not 0 <= num_context <= num_points:
        raise ValueError(f"num_context must be an integer in [0, {num_points}], got {num_context!r}.")
    sampler = GPFunctionSampler(kernel) if sampler is None else sampler
    g = torch.Generator().manual_seed(seed)
    lo, hi = sampler.x_range
    x = torch.linspace(lo, hi, num_points, dtype=torch.float64)[:, None]
    with torch.no_grad():
        f = (cholesky(sampler.kernel(x), jitter=1e-8) @ torch.randn(num_points, 1, generator=g,
                                                                     dtype=torch.float64))[:, 0]
    y = f + sampler.noise ** 0.5 * torch.randn(num_points, generator=g, dtype=torch.float64)
    idx = torch.randperm(num_points, generator=g)[:num_context]
    return GridTask(x.float(), f.float(), y.float(), x[idx].float(), y[idx, None].float(), kernel)



@torch.no_grad()
def predictive(model, xc: Tensor, yc: Tensor, xt: Tensor, samples: int = 32) -> tuple[Tensor, Tensor]:
    """Mean and std of the model's predictive distribution of y at ``xt``, each (B, Nt).

    Inputs are batched sets (B, N, 1) or single ones (N, 1). CNP: the decoder's Gaussian. NP/ANP: the
    moment-matched mixture over ``samples`` draws z ~ q(z | context) (see the module docstring).
    """
    single = xt.dim() == 2
    if single:
        xc, yc, xt = xc[None], yc[None], xt[None]
    with eval_mode(model):
        if getattr(model, "latent", False):
            mean, std = mixture_moments(*model.predict(xc, yc, xt, samples=samples))  # over (S, B, Nt, 1)
        else:
            mean, std = model.predict(xc, yc, xt)
    mean, std = mean[..., 0].cpu(), std[..., 0].cpu()
    return (mean[0], std[0]) if single else (mean, std)



@torch.no_grad()
def gp_predictive(sampler, xc: Tensor, yc: Tensor, xt: Tensor) -> tuple[Tensor, Tensor]:
    """The exact GP's predictive mean and std **of y** (posterior of f plus the noise) at ``xt``,
    with the sampler's kernel and noise; shapes as :func:`predictive`. An empty context gives the prior."""
    single = xt.dim() == 2
    if single:
        xc, yc, xt = xc[None], yc[None], xt[None]
    gp = GPRegression(sampler.kernel, noise=max(sampler.noise, 1e-12))
    xt64 = xt.double()
    if xc.shape[1] == 0:
        mean = xt64.new_zeros(xt64.shape[:2])
        std = (sampler.kernel.diag(xt64) + sampler.noise).sqrt()
    else:
        mean, std = gp.predict(xc.double(), yc.double()[..., 0], xt64, include_noise=True, noise=sampler.noise)
    mean, std = mean.float(), std.float()
    return (mean[0], std[0]) if single else (mean, std)



def _context_mask(xc: Tensor, xt: Tensor) -> Tensor:
    """(B, Nt) True where a target point is also a context point (same x; the sampler gathers them)."""
    return (xt[:, :, None, 0] == xc[:, None, :, 0]).any(-1)



@torch.no_grad()
def split_rmse(mean: Tensor, xc: Tensor, xt: Tensor, yt: Tensor) -> tuple[float, float, int, int]:
    """Squared-error sums of a predictive ``mean`` (B, Nt) at the targets that are context points and at
    the others: returns (sum at context, sum elsewhere, count at context, count elsewhere)."""
    at_c = _context_mask(xc, xt)
    sq = (mean - yt[..., 0]).pow(2)
    return float(sq[at_c].sum()), float(sq[~at_c].sum()), int(at_c.sum()), int((~at_c).sum())



@torch.no_grad()
def context_fit(models: Mapping[str, object], sampler, num_contexts: Sequence[int] = (3, 5, 10, 20, 40),
                num_tasks: int = 32, seed: int = 0, samples: int = 16, num_points: int = 100) -> dict:
    """How well each predictive mean passes through its context, as a function of the context size.

    For each Nc, ``num_tasks`` functions of the sampler's kernel (``num_points`` random targets, Nc of
    them context) -> RMSE of the predictive mean at the context points and at the other targets,
    for every model and for the exact GP (key ``"gp"``). Returns ``{"num_context": [...], name:
    {"context": [...], "other": [...]}}``.
    """
    out: dict = {"num_context": list(num_contexts)}
    names = [*models, "gp"]
    for name in names:
        out[name] = {"context": [], "other": []}
    for nc in num_contexts:
        s = GPFunctionSampler(sampler.kernel, x_range=sampler.x_range, num_points=num_points,
                              num_context=nc, noise=sampler.noise)
        tasks = s.fixed_eval_set(num_tasks, seed=seed, batch_size=num_tasks)
        for name in names:
            sums = np.zeros(4)
            for xc, yc, xt, yt in tasks:
                if name == "gp":
                    mean, _ = gp_predictive(sampler, xc, yc, xt)
                else:
                    torch.manual_seed(seed)
                    mean, _ = predictive(models[name], xc, yc, xt, samples=samples)
                sums += split_rmse(mean, xc, xt, yt)
            out[name]["context"].append(float(np.sqrt(sums[0] / max(sums[2], 1))))
            out[name]["other"].append(float(np.sqrt(sums[1] / max(sums[3], 1))))
    return out
