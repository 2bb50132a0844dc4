"""Gaussian-process regression in torch: kernels, exact posterior, marginal likelihood, samples.

Everything is batched. Inputs are ``(N, D)`` or ``(B, N, D)`` (``B`` independent problems, more
leading batch dimensions also work); targets are ``(N,)`` / ``(B, N)`` (a trailing singleton
dimension, ``(B, N, 1)``, is accepted too). The exact algebra runs in float64 by default.

The model (zero prior mean, Gaussian observation noise of variance :math:`\\sigma_n^2`)::

    f ~ GP(0, k),    y_i = f(x_i) + eps_i,    eps_i ~ N(0, sigma_n^2)

Notation used in the docstrings: ``K = k(X, X)`` (N x N), ``K_* = k(X, X_*)`` (N x M),
``K_** = k(X_*, X_*)`` (M x M), ``K_y = K + sigma_n^2 I`` and ``L`` its lower Cholesky factor.

Kernels keep their hyperparameters as log-parameters (``log_lengthscale`` ...), so gradient-based
fitting of the log marginal likelihood is unconstrained; the positive values are exposed as
properties (``kernel.lengthscale``) that can also be assigned.

The conventions match scikit-learn's ``sklearn.gaussian_process.kernels`` (tests/test_gp.py checks
posterior mean, covariance and log marginal likelihood against ``GaussianProcessRegressor``).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import Tensor, nn

__all__ = [
    "KERNEL_NAMES",
    "RBF",
    "CholeskyError",
    "GPRegression",
    "Kernel",
    "Matern",
    "Periodic",
    "Posterior",
    "Product",
    "Sum",
    "WhiteNoise",
    "cholesky",
    "kernel_by_name",
    "predictive_std",
]

_LOG_2PI = math.log(2.0 * math.pi)


class CholeskyError(torch.linalg.LinAlgError):
    """Raised when a matrix cannot be Cholesky-factorised even after adding the largest jitter."""


# ---- small helpers ------------------------------------------------------------------------------


def _log_positive(value, name: str, allow_vector: bool = False) -> Tensor:
    """``log(value)`` as a float64 tensor, after checking that ``value`` is finite and > 0."""
    try:
        t = torch.as_tensor(value, dtype=torch.float64).detach().clone()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be a positive number, got {value!r}.") from err
    if t.ndim > (1 if allow_vector else 0) or t.numel() == 0:
        shape = "a number or a 1-D tensor of one value per input dimension" if allow_vector else "a number"
        raise ValueError(f"{name} must be {shape}, got shape {tuple(t.shape)}.")
    if not torch.isfinite(t).all() or not (t > 0).all():
        raise ValueError(f"{name} must be positive and finite, got {value!r}.")
    return t.log()


def _set_log(param: Tensor, value, name: str, allow_vector: bool = False) -> None:
    new = _log_positive(value, name, allow_vector)
    if new.shape != param.shape:
        raise ValueError(f"{name}: cannot change shape from {tuple(param.shape)} to {tuple(new.shape)}.")
    with torch.no_grad():
        param.copy_(new)


def _fmt(t: Tensor) -> str:
    t = t.detach().cpu()
    if t.ndim == 0:
        return f"{t.item():.4g}"
    return "[" + ", ".join(f"{v:.4g}" for v in t.tolist()) + "]"


def _check_pair(x1: Tensor, x2: Tensor | None) -> tuple[Tensor, Tensor]:
    if not isinstance(x1, Tensor) or x1.ndim < 2:
        raise ValueError(
            f"kernel inputs must have shape (N, D) or (B, N, D), got {_shape(x1)}; "
            "for 1-D inputs use x[:, None]."
        )
    if x2 is None:
        return x1, x1
    if not isinstance(x2, Tensor) or x2.ndim < 2:
        raise ValueError(f"kernel inputs must have shape (M, D) or (B, M, D), got {_shape(x2)}.")
    if x1.shape[-1] != x2.shape[-1]:
        raise ValueError(
            f"kernel inputs have different dimensions D: {tuple(x1.shape)} and {tuple(x2.shape)}."
        )
    return x1, x2


def _shape(x) -> str:
    return str(tuple(x.shape)) if hasattr(x, "shape") else type(x).__name__


def _safe_sqrt(sq: Tensor) -> Tensor:
    """sqrt with a finite (zero) gradient at 0, where the plain sqrt's gradient is infinite."""
    positive = sq > 0
    return torch.where(positive, torch.where(positive, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


# ---- kernels ------------------------------------------------------------------------------------


class Kernel(nn.Module):
    """Base class of covariance functions ``k(x, x')``.

    ``kernel(x1, x2)`` with ``x1`` of shape ``(..., N, D)`` and ``x2`` of shape ``(..., M, D)``
    returns the matrix ``K[..., i, j] = k(x1_i, x2_j)`` of shape ``(..., N, M)`` (batch dimensions
    broadcast); ``kernel(x)`` means ``k(x, x)``. Hyperparameters are cast to the inputs' dtype and
    device. ``k1 + k2`` builds a :class:`Sum`, ``k1 * k2`` a :class:`Product`.
    """

    def forward(self, x1: Tensor, x2: Tensor | None = None) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def diag(self, x: Tensor) -> Tensor:
        """The diagonal ``k(x_i, x_i)`` of ``k(x, x)``, shape ``(..., N)``, without the full matrix."""
        return torch.diagonal(self(x), dim1=-2, dim2=-1)

    def __add__(self, other: Kernel) -> Sum:
        if not isinstance(other, Kernel):
            return NotImplemented
        return Sum(self, other)

    def __mul__(self, other: Kernel) -> Product:
        if not isinstance(other, Kernel):
            return NotImplemented
        return Product(self, other)


class _Stationary(Kernel):
    """A kernel of the scaled distance ``r = ||(x - x') / l||`` times a variance ``s^2``.

    ``lengthscale`` may be one number or one value per input dimension (ARD).
    """

    def __init__(self, lengthscale=1.0, variance: float = 1.0):
        super().__init__()
        self.log_lengthscale = nn.Parameter(_log_positive(lengthscale, "lengthscale", allow_vector=True))
        self.log_variance = nn.Parameter(_log_positive(variance, "variance"))

    @property
    def lengthscale(self) -> Tensor:
        return self.log_lengthscale.exp()

    @lengthscale.setter
    def lengthscale(self, value) -> None:
        _set_log(self.log_lengthscale, value, "lengthscale", allow_vector=True)

    @property
    def variance(self) -> Tensor:
        return self.log_variance.exp()

    @variance.setter
    def variance(self, value) -> None:
        _set_log(self.log_variance, value, "variance")

    def scaled_sqdist(self, x1: Tensor, x2: Tensor | None = None) -> Tensor:
        """``r^2 = sum_d (x1_d - x2_d)^2 / l_d^2`` -- the squared distance divided by l^2, not by l."""
        x1, x2 = _check_pair(x1, x2)
        ell = self.lengthscale.to(x1)
        if ell.ndim == 1 and ell.shape[0] != x1.shape[-1]:
            raise ValueError(
                f"this kernel has {ell.shape[0]} lengthscales but the inputs have D = {x1.shape[-1]}."
            )
        diff = (x1[..., :, None, :] - x2[..., None, :, :]) / ell
        return diff.pow(2).sum(-1)

    def diag(self, x: Tensor) -> Tensor:
        _check_pair(x, None)
        return self.variance.to(x).expand(x.shape[:-1])

    def extra_repr(self) -> str:
        return f"lengthscale={_fmt(self.lengthscale)}, variance={_fmt(self.variance)}"


class RBF(_Stationary):
    """Squared-exponential (RBF) kernel.

    k(x, x') = s^2 exp(-||x - x'||^2 / (2 l^2))

    Same as scikit-learn's ``ConstantKernel(s^2) * RBF(l)``.
    """

    def forward(self, x1: Tensor, x2: Tensor | None = None) -> Tensor:
        r2 = self.scaled_sqdist(x1, x2)
        return self.variance.to(r2) * torch.exp(-0.5 * r2)


class Matern(_Stationary):
    """Matérn kernel for ``nu`` in {1/2, 3/2, 5/2}, with ``r = ||x - x'|| / l``:

    nu = 1/2:  k = s^2 exp(-r)
    nu = 3/2:  k = s^2 (1 + sqrt(3) r) exp(-sqrt(3) r)
    nu = 5/2:  k = s^2 (1 + sqrt(5) r + 5 r^2 / 3) exp(-sqrt(5) r)

    Same as scikit-learn's ``ConstantKernel(s^2) * Matern(l, nu)``. ``nu`` is fixed (not fitted).
    """

    NUS = (0.5, 1.5, 2.5)

    def __init__(self, nu: float = 2.5, lengthscale=1.0, variance: float = 1.0):
        if nu not in self.NUS:
            raise ValueError(f"Matern: nu must be one of {self.NUS} (closed forms only), got {nu!r}.")
        super().__init__(lengthscale, variance)
        self.nu = float(nu)

    def forward(self, x1: Tensor, x2: Tensor | None = None) -> Tensor:
        r2 = self.scaled_sqdist(x1, x2)
        r = _safe_sqrt(r2)
        if self.nu == 0.5:
            k = torch.exp(-r)
        elif self.nu == 1.5:
            a = math.sqrt(3.0) * r
            k = (1.0 + a) * torch.exp(-a)
        else:
            a = math.sqrt(5.0) * r
            k = (1.0 + a + 5.0 / 3.0 * r2) * torch.exp(-a)
        return self.variance.to(r2) * k

    def extra_repr(self) -> str:
        return f"nu={self.nu}, " + super().extra_repr()


class Periodic(Kernel):
    """Periodic (exp-sine-squared) kernel:

    k(x, x') = s^2 exp(-2 sum_d sin^2(pi (x_d - x'_d) / p) / l^2)

    In 1-D this is scikit-learn's ``ConstantKernel(s^2) * ExpSineSquared(l, p)``, i.e.
    s^2 exp(-2 sin^2(pi |x - x'| / p) / l^2). In D > 1 we sum over dimensions (the product of 1-D
    periodic kernels, as in GPyTorch) rather than use the Euclidean distance as scikit-learn does:
    sin^2 of a Euclidean distance does not give a positive semi-definite kernel for D > 1
    (tests/test_gp.py finds negative eigenvalues of about -0.4 on random 3-D inputs).
    """

    def __init__(self, lengthscale: float = 1.0, period: float = 1.0, variance: float = 1.0):
        super().__init__()
        self.log_lengthscale = nn.Parameter(_log_positive(lengthscale, "lengthscale"))
        self.log_period = nn.Parameter(_log_positive(period, "period"))
        self.log_variance = nn.Parameter(_log_positive(variance, "variance"))

    lengthscale = _Stationary.lengthscale
    variance = _Stationary.variance

    @property
    def period(self) -> Tensor:
        return self.log_period.exp()

    @period.setter
    def period(self, value) -> None:
        _set_log(self.log_period, value, "period")

    def forward(self, x1: Tensor, x2: Tensor | None = None) -> Tensor:
        x1, x2 = _check_pair(x1, x2)
        diff = x1[..., :, None, :] - x2[..., None, :, :]
        ell, p, s2 = (t.to(diff) for t in (self.lengthscale, self.period, self.variance))
        sin2 = torch.sin(math.pi * diff / p).pow(2).sum(-1)
        return s2 * torch.exp(-2.0 * sin2 / ell.pow(2))

    def diag(self, x: Tensor) -> Tensor:
        _check_pair(x, None)
        return self.variance.to(x).expand(x.shape[:-1])

    def extra_repr(self) -> str:
        return (
            f"lengthscale={_fmt(self.lengthscale)}, period={_fmt(self.period)}, "
            f"variance={_fmt(self.variance)}"
        )


class WhiteNoise(Kernel):
    """White noise, with scikit-learn's ``WhiteKernel`` semantics:

    k(X, X)  = s^2 I        (``kernel(x)``, one set of points)
    k(X, X') = 0            (``kernel(x1, x2)``, two sets, even if they share points)

    Inside :class:`GPRegression` it adds ``s^2`` to the training diagonal *and* to the test
    covariance ``K_**``; for plain observation noise prefer ``GPRegression(noise=...)``.
    """

    def __init__(self, variance: float = 1.0):
        super().__init__()
        self.log_variance = nn.Parameter(_log_positive(variance, "variance"))

    variance = _Stationary.variance

    def forward(self, x1: Tensor, x2: Tensor | None = None) -> Tensor:
        same = x2 is None
        x1, x2 = _check_pair(x1, x2)
        shape = torch.broadcast_shapes(x1.shape[:-2], x2.shape[:-2]) + (x1.shape[-2], x2.shape[-2])
        if not same:
            return x1.new_zeros(shape)
        eye = torch.eye(x1.shape[-2], dtype=x1.dtype, device=x1.device)
        return (self.variance.to(x1) * eye).expand(shape)

    def diag(self, x: Tensor) -> Tensor:
        _check_pair(x, None)
        return self.variance.to(x).expand(x.shape[:-1])

    def extra_repr(self) -> str:
        return f"variance={_fmt(self.variance)}"


class Sum(Kernel):
    """Sum of two kernels: k(x, x') = k1(x, x') + k2(x, x'). Also written ``k1 + k2``."""

    def __init__(self, k1: Kernel, k2: Kernel):
        super().__init__()
        if not isinstance(k1, Kernel) or not isinstance(k2, Kernel):
            raise TypeError(f"Sum needs two Kernel modules, got {type(k1).__name__} and {type(k2).__name__}.")
        self.k1, self.k2 = k1, k2

    def forward(self, x1: Tensor, x2: Tensor | None = None) -> Tensor:
        return self.k1(x1, x2) + self.k2(x1, x2)

    def diag(self, x: Tensor) -> Tensor:
        return self.k1.diag(x) + self.k2.diag(x)


class Product(Kernel):
    """Product of two kernels: k(x, x') = k1(x, x') k2(x, x'). Also written ``k1 * k2``.

    ``Periodic() * RBF()`` is the "locally periodic" kernel.
    """

    def __init__(self, k1: Kernel, k2: Kernel):
        super().__init__()
        if not isinstance(k1, Kernel) or not isinstance(k2, Kernel):
            raise TypeError(
                f"Product needs two Kernel modules, got {type(k1).__name__} and {type(k2).__name__}."
            )
        self.k1, self.k2 = k1, k2

    def forward(self, x1: Tensor, x2: Tensor | None = None) -> Tensor:
        return self.k1(x1, x2) * self.k2(x1, x2)

    def diag(self, x: Tensor) -> Tensor:
        return self.k1.diag(x) * self.k2.diag(x)


_KERNELS: dict[str, Callable[..., Kernel]] = {
    "rbf": RBF,
    "matern12": lambda **p: Matern(nu=0.5, **p),
    "matern32": lambda **p: Matern(nu=1.5, **p),
    "matern52": lambda **p: Matern(nu=2.5, **p),
    "periodic": Periodic,
}
KERNEL_NAMES: tuple[str, ...] = tuple(_KERNELS)


def kernel_by_name(name: str, **params) -> Kernel:
    """Build a kernel from its name, e.g. ``kernel_by_name("matern32", lengthscale=0.5)``.

    Names: ``"rbf"`` (:class:`RBF`), ``"matern12"``, ``"matern32"``, ``"matern52"`` (:class:`Matern`
    with nu = 1/2, 3/2, 5/2) and ``"periodic"`` (:class:`Periodic`). ``params`` are the kernel's
    hyperparameters (``lengthscale``, ``variance``, and ``period`` for the periodic kernel).
    """
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    if key not in _KERNELS:
        raise ValueError(f"Unknown kernel {name!r}; use one of {', '.join(KERNEL_NAMES)}.")
    try:
        return _KERNELS[key](**params)
    except TypeError as err:
        raise ValueError(f"Bad parameters for kernel {name!r}: {err}") from err


# ---- linear algebra -----------------------------------------------------------------------------


def cholesky(matrix: Tensor, jitter: float = 0.0, max_tries: int = 8, min_jitter: float = 1e-10) -> Tensor:
    """Lower Cholesky factor ``L`` with ``L L^T = A + eps * mean(diag A) * I``, batched.

    The first attempt uses ``eps = jitter`` (relative to the mean of the diagonal). Every matrix of
    the batch whose factorisation fails is retried with ``eps = max(10 eps, min_jitter)``, up to
    ``max_tries`` times (so by default up to 1e-3 of the mean diagonal); matrices that succeeded keep
    their factor, so a batched call gives the same result as one call per matrix. Raises
    :class:`CholeskyError` if some matrix never factorises, and ``ValueError`` for NaN/inf entries.
    """
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2]:
        raise ValueError(f"cholesky needs square matrices (..., N, N), got {tuple(matrix.shape)}.")
    if not torch.isfinite(matrix).all():
        raise ValueError("cholesky: the matrix has NaN or infinite entries (check inputs and hyperparameters).")
    n = matrix.shape[-1]
    if n == 0:
        return matrix.clone()
    scale = torch.diagonal(matrix, dim1=-2, dim2=-1).abs().mean(-1).clamp_min(torch.finfo(matrix.dtype).tiny)
    eps = torch.full(matrix.shape[:-2], float(jitter), dtype=matrix.dtype, device=matrix.device)
    eye = torch.eye(n, dtype=matrix.dtype, device=matrix.device)
    for _ in range(max_tries + 1):
        shifted = matrix + (eps * scale)[..., None, None] * eye if bool((eps > 0).any()) else matrix
        factor, info = torch.linalg.cholesky_ex(shifted)
        failed = info > 0
        if not bool(failed.any()):
            return factor
        eps = torch.where(failed, (eps * 10).clamp_min(min_jitter), eps)
    worst = float((eps / 10).max())
    raise CholeskyError(
        f"Cholesky factorisation failed for {int(failed.sum())} of {failed.numel()} matrices of size "
        f"{n} x {n}, even with a jitter of {worst:.1e} x the mean diagonal: the matrix is not positive "
        "definite. Check the kernel hyperparameters (a very long lengthscale?), duplicated inputs with "
        "zero noise, or add observation noise."
    )


class Posterior(NamedTuple):
    """Posterior of f at the test inputs: ``mean`` (..., M) and ``cov`` (..., M, M).

    ``cov`` holds only the diagonal, shape (..., M), when the posterior was asked with ``full_cov=False``.
    Unpacks as a tuple: ``mean, cov = gp.posterior(...)``.
    """

    mean: Tensor
    cov: Tensor


def predictive_std(cov: Tensor, noise=0.0) -> Tensor:
    """Predictive standard deviation from a posterior covariance (or its diagonal).

    std of f: sqrt(diag Sigma_*)                 (``noise=0``)
    std of y: sqrt(diag Sigma_* + sigma_n^2)     (``noise=sigma_n^2``, a variance)

    ``cov`` is (..., M, M) or a diagonal (..., M) -- the ``cov`` field of a :class:`Posterior`
    computed with ``full_cov=False`` (a matrix with M = 1 must be passed in full). ``noise`` is a
    number or a tensor broadcastable to the batch shape. Tiny negative variances from round-off are
    clipped to 0. Note: the standard deviation, not the variance, is what a +-2 sigma band needs.
    """
    var = torch.diagonal(cov, dim1=-2, dim2=-1) if cov.ndim >= 2 and cov.shape[-1] == cov.shape[-2] else cov
    noise_t = torch.as_tensor(noise, dtype=var.dtype, device=var.device)
    if noise_t.ndim > 0:
        noise_t = noise_t[..., None]
    return (var.clamp_min(0.0) + noise_t).sqrt()


# ---- the regression model -----------------------------------------------------------------------


class GPRegression(nn.Module):
    """Exact GP regression with a kernel and Gaussian observation noise (a learnable log-parameter).

    ``GPRegression(kernel, noise=1e-2)``: ``noise`` is the noise *variance* sigma_n^2. The model does
    not store data: every method takes the training set, so one model serves a batch of ``B``
    independent problems ``x (B, N, D), y (B, N)`` sharing the hyperparameters. Inputs are converted
    to ``dtype`` (float64 by default) and the results come back in it. The prior mean is zero: centre
    ``y`` first if it is not. Results are differentiable with respect to the hyperparameters, so they
    carry a ``grad_fn``: call them under ``torch.no_grad()`` (or ``.detach()``) before plotting.
    """

    def __init__(self, kernel: Kernel | str = "rbf", noise: float = 1e-2, dtype: torch.dtype = torch.float64):
        super().__init__()
        if isinstance(kernel, str):
            kernel = kernel_by_name(kernel)
        if not isinstance(kernel, Kernel):
            raise TypeError(f"kernel must be a Kernel or a kernel name, got {type(kernel).__name__}.")
        try:
            _log_positive(noise, "noise")
        except ValueError as err:
            raise ValueError(
                f"{err} For noise-free interpolation use a tiny value such as 1e-10 "
                "(the Cholesky adds jitter when needed) or pass noise=0.0 to the methods."
            ) from None
        self.kernel = kernel
        self.log_noise = nn.Parameter(_log_positive(noise, "noise"))
        self.dtype = dtype

    @property
    def noise(self) -> Tensor:
        """Observation-noise variance sigma_n^2."""
        return self.log_noise.exp()

    @noise.setter
    def noise(self, value) -> None:
        _set_log(self.log_noise, value, "noise")

    def extra_repr(self) -> str:
        return f"noise={_fmt(self.noise)}"

    # ---- input checks ---------------------------------------------------------------------------
    def _inputs(self, x, name: str) -> Tensor:
        x = torch.as_tensor(x)
        if x.ndim < 2:
            raise ValueError(
                f"{name} must have shape (N, D) or (B, N, D), got {tuple(x.shape)}; for 1-D inputs use x[:, None]."
            )
        if x.shape[-2] == 0:
            raise ValueError(f"{name} has no points (shape {tuple(x.shape)}).")
        x = x.to(self.dtype)
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinite values.")
        return x

    def _targets(self, y, x: Tensor, name: str = "y_train") -> Tensor:
        y = torch.as_tensor(y)
        if y.shape == x.shape[:-1] + (1,):
            y = y[..., 0]
        if y.shape != x.shape[:-1]:
            raise ValueError(
                f"{name} must have shape {tuple(x.shape[:-1])} (or with a trailing 1) to match the inputs "
                f"{tuple(x.shape)}, got {tuple(y.shape)}."
            )
        y = y.to(device=x.device, dtype=self.dtype)
        if not torch.isfinite(y).all():
            raise ValueError(f"{name} contains NaN or infinite values.")
        return y

    def _noise(self, noise, batch_shape: torch.Size, like: Tensor) -> Tensor:
        if noise is None:
            return self.noise.to(like).expand(batch_shape)
        n = torch.as_tensor(noise, dtype=like.dtype, device=like.device)
        if not torch.isfinite(n).all() or bool((n < 0).any()):
            raise ValueError(f"noise must be a finite variance >= 0, got {noise!r}.")
        try:
            return n.expand(batch_shape)
        except RuntimeError as err:
            raise ValueError(
                f"noise must be a number or a tensor of shape {tuple(batch_shape)} (one variance per problem), "
                f"got shape {tuple(n.shape)}."
            ) from err

    def _train_factor(self, x: Tensor, noise, jitter: float) -> tuple[Tensor, Tensor]:
        """Returns (L, noise) with L L^T = K + sigma_n^2 I."""
        k = self.kernel(x)
        noise_t = self._noise(noise, k.shape[:-2], k)
        ky = k + noise_t[..., None, None] * torch.eye(k.shape[-1], dtype=k.dtype, device=k.device)
        return cholesky(ky, jitter=jitter), noise_t

    # ---- the exact algebra ----------------------------------------------------------------------
    def posterior(
        self, x_train, y_train, x_test, noise=None, full_cov: bool = True, jitter: float = 0.0
    ) -> Posterior:
        """Posterior of f at ``x_test`` given noisy observations ``(x_train, y_train)``.

        mean_*  = K_*^T (K + sigma_n^2 I)^{-1} y           = K_*^T alpha,  alpha = L^T \\ (L \\ y)
        Sigma_* = K_** - K_*^T (K + sigma_n^2 I)^{-1} K_*  = K_** - V^T V,  V = L \\ K_*

        Shapes: ``x_train (B, N, D)``, ``y_train (B, N)``, ``x_test (B, M, D)`` or ``(M, D)`` (one
        grid shared by all problems); unbatched ``(N, D)`` inputs give unbatched outputs. Returns
        ``Posterior(mean (B, M), cov (B, M, M))``; with ``full_cov=False`` ``cov`` is the diagonal
        (B, M), computed without forming ``K_**``. ``noise`` overrides the model's sigma_n^2 (a
        number >= 0 or one value per problem). The covariance is that of f (no observation noise):
        use :func:`predictive_std` with ``noise`` for the std of y.
        """
        xtr = self._inputs(x_train, "x_train")
        ytr = self._targets(y_train, xtr)
        xte = self._inputs(x_test, "x_test").to(xtr.device)
        if xte.shape[-1] != xtr.shape[-1]:
            raise ValueError(
                f"x_train and x_test have different dimensions D: {tuple(xtr.shape)} vs {tuple(xte.shape)}."
            )
        try:
            torch.broadcast_shapes(xtr.shape[:-2], xte.shape[:-2])
        except RuntimeError as err:
            raise ValueError(
                f"x_train {tuple(xtr.shape)} and x_test {tuple(xte.shape)} have incompatible batch shapes."
            ) from err
        chol, _ = self._train_factor(xtr, noise, jitter)
        k_star = self.kernel(xtr, xte)  # (B, N, M)
        alpha = torch.cholesky_solve(ytr[..., None], chol)  # (B, N, 1)
        mean = (k_star.transpose(-1, -2) @ alpha)[..., 0]
        chol = chol.expand(k_star.shape[:-2] + chol.shape[-2:])
        v = torch.linalg.solve_triangular(chol, k_star, upper=False)  # (B, N, M)
        if full_cov:
            cov = self.kernel(xte) - v.transpose(-1, -2) @ v
            cov = 0.5 * (cov + cov.transpose(-1, -2))
        else:
            cov = self.kernel.diag(xte) - v.pow(2).sum(-2)
        return Posterior(mean, cov)

    def predict(self, x_train, y_train, x_test, include_noise: bool = False, noise=None) -> tuple[Tensor, Tensor]:
        """Predictive mean and standard deviation at ``x_test`` (diagonal only; cheap for long grids).

        std of f: sqrt(diag Sigma_*); with ``include_noise=True`` the std of a new observation y,
        sqrt(diag Sigma_* + sigma_n^2). Returns ``(mean, std)``, each (B, M) or (M,).
        """
        post = self.posterior(x_train, y_train, x_test, noise=noise, full_cov=False)
        noise_t = self._noise(noise, post.mean.shape[:-1], post.mean) if include_noise else 0.0
        return post.mean, predictive_std(post.cov, noise_t)

    def log_marginal_likelihood(self, x, y, noise=None, jitter: float = 0.0) -> Tensor:
        """Log marginal likelihood log p(y | X, theta), one value per problem: shape (B,) or ().

        log p(y | X) = -1/2 y^T (K + sigma_n^2 I)^{-1} y - 1/2 log|K + sigma_n^2 I| - N/2 log(2 pi)
                     = -1/2 y^T alpha - sum_i log L_ii - N/2 log(2 pi)

        Differentiable with respect to the kernel's log-parameters and the log noise.
        """
        x = self._inputs(x, "x")
        y = self._targets(y, x, "y")
        chol, _ = self._train_factor(x, noise, jitter)
        alpha = torch.cholesky_solve(y[..., None], chol)[..., 0]
        n = y.shape[-1]
        logdet_half = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        return -0.5 * (y * alpha).sum(-1) - logdet_half - 0.5 * n * _LOG_2PI

    def fit(
        self,
        x,
        y,
        steps: int = 100,
        lr: float | None = None,
        optimizer: str = "adam",
        learn_noise: bool = True,
    ) -> list[float]:
        """Maximise the log marginal likelihood over the log-hyperparameters (type-II ML).

        theta* = argmax_theta  sum_b log p(y_b | X_b, theta),  theta = (log l, log s^2, ..., log sigma_n^2)

        The B problems share the hyperparameters, so their LMLs add up. ``optimizer`` is ``"adam"``
        (``lr`` default 0.05; one step per iteration) or ``"lbfgs"`` (``lr`` default 1.0, strong-Wolfe
        line search; one L-BFGS iteration per step). ``learn_noise=False`` keeps sigma_n^2 fixed.
        Returns the history of the summed LML: the value before the first step and after every step
        (``steps + 1`` floats).
        """
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}.")
        x = self._inputs(x, "x")
        y = self._targets(y, x, "y")
        params = list(self.kernel.parameters()) + ([self.log_noise] if learn_noise else [])
        if not params:
            raise ValueError("nothing to fit: the kernel has no parameters and learn_noise=False.")
        name = optimizer.lower()
        if name == "adam":
            opt = torch.optim.Adam(params, lr=0.05 if lr is None else lr)
        elif name == "lbfgs":
            # max_eval must be set: its default (max_iter * 5 // 4 = 1) stalls the line search.
            opt = torch.optim.LBFGS(
                params, lr=1.0 if lr is None else lr, max_iter=1, max_eval=25, line_search_fn="strong_wolfe"
            )
        else:
            raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {optimizer!r}.")
        n_points = y.numel()

        def closure() -> Tensor:
            opt.zero_grad()
            loss = -self.log_marginal_likelihood(x, y).sum() / n_points
            loss.backward()
            return loss

        history: list[float] = []
        with torch.no_grad():
            history.append(float(self.log_marginal_likelihood(x, y).sum()))
        for _ in range(steps):
            opt.step(closure)
            with torch.no_grad():
                history.append(float(self.log_marginal_likelihood(x, y).sum()))
        return history

    # ---- samples ----------------------------------------------------------------------------------
    @staticmethod
    def _normal(shape, like: Tensor, generator: torch.Generator | None) -> Tensor:
        """Standard normals drawn on the generator's device (reproducible across devices), moved to ``like``."""
        device = generator.device if generator is not None else like.device
        eps = torch.randn(shape, generator=generator, dtype=like.dtype, device=device)
        return eps.to(like.device)

    def sample_prior(
        self, x, n_samples: int = 1, generator: torch.Generator | None = None, jitter: float = 1e-8
    ) -> Tensor:
        """Draw functions from the prior f ~ GP(0, k) at ``x``: f = L eps, L L^T = K(x, x), eps ~ N(0, I).

        Returns (n_samples, B, N) or (n_samples, N) (noise-free f; ``jitter`` is relative to the mean
        of the diagonal and grows if the factorisation fails).
        """
        x = self._inputs(x, "x")
        if not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        chol = cholesky(self.kernel(x), jitter=jitter)
        eps = self._normal((n_samples,) + tuple(chol.shape[:-1]) + (1,), chol, generator)
        return (chol @ eps)[..., 0]

    def sample_posterior(
        self,
        x_train,
        y_train,
        x_test,
        n_samples: int = 1,
        generator: torch.Generator | None = None,
        noise=None,
        jitter: float = 1e-8,
    ) -> Tensor:
        """Draw functions from the posterior: f_* = mean_* + L_* eps, L_* L_*^T = Sigma_* (see :meth:`posterior`).

        Returns (n_samples, B, M) or (n_samples, M) (samples of f, without observation noise).
        """
        if not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        mean, cov = self.posterior(x_train, y_train, x_test, noise=noise, full_cov=True)
        chol = cholesky(cov, jitter=jitter)
        eps = self._normal((n_samples,) + tuple(chol.shape[:-1]) + (1,), chol, generator)
        return mean + (chol @ eps)[..., 0]

