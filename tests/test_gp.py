"""ifanp.gp against scikit-learn's GaussianProcessRegressor, plus the properties a GP must have."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF as SkRBF
from sklearn.gaussian_process.kernels import ConstantKernel as SkC
from sklearn.gaussian_process.kernels import ExpSineSquared as SkExpSine
from sklearn.gaussian_process.kernels import Matern as SkMatern
from sklearn.gaussian_process.kernels import WhiteKernel as SkWhite

from ifanp.gp import (
    KERNEL_NAMES,
    RBF,
    CholeskyError,
    GPRegression,
    Matern,
    Periodic,
    Product,
    Sum,
    WhiteNoise,
    cholesky,
    kernel_by_name,
    predictive_std,
)

# (name, our kernel, the same kernel in scikit-learn, input dimension)
KERNEL_PAIRS = [
    ("rbf", lambda: RBF(0.7, 1.3), lambda: SkC(1.3) * SkRBF(0.7), 1),
    ("rbf-ard-2d", lambda: RBF([0.5, 2.0], 0.8), lambda: SkC(0.8) * SkRBF([0.5, 2.0]), 2),
    ("matern12", lambda: Matern(0.5, 0.9, 1.7), lambda: SkC(1.7) * SkMatern(0.9, nu=0.5), 1),
    ("matern32", lambda: Matern(1.5, 0.4, 0.6), lambda: SkC(0.6) * SkMatern(0.4, nu=1.5), 1),
    ("matern52-2d", lambda: Matern(2.5, 1.6, 2.0), lambda: SkC(2.0) * SkMatern(1.6, nu=2.5), 2),
    ("periodic", lambda: Periodic(0.8, 1.3, 1.1), lambda: SkC(1.1) * SkExpSine(0.8, 1.3), 1),
    (
        "sum-rbf-periodic",
        lambda: RBF(2.0, 0.5) + Periodic(1.2, 0.9, 0.7),
        lambda: SkC(0.5) * SkRBF(2.0) + SkC(0.7) * SkExpSine(1.2, 0.9),
        1,
    ),
    (
        "sum-matern-white",
        lambda: Matern(1.5, 0.6, 1.0) + WhiteNoise(0.05),
        lambda: SkC(1.0) * SkMatern(0.6, nu=1.5) + SkWhite(0.05),
        1,
    ),
    (
        "product-locally-periodic",
        lambda: Periodic(1.0, 0.7, 1.5) * RBF(1.5),
        lambda: SkC(1.5) * SkExpSine(1.0, 0.7) * SkRBF(1.5),
        1,
    ),
]
IDS = [p[0] for p in KERNEL_PAIRS]


def _problem(seed: int, dim: int, n: int = 14, m: int = 9):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, size=(n, dim))
    y = np.sin(2.0 * x).sum(-1) + 0.3 * rng.standard_normal(n)
    xs = rng.uniform(-2.5, 2.5, size=(m, dim))
    return x, y, xs


@pytest.mark.parametrize("name, ours, theirs, dim", KERNEL_PAIRS, ids=IDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_posterior_and_lml_match_sklearn(name, ours, theirs, dim, seed):
    x, y, xs = _problem(seed, dim)
    noise = [0.01, 0.1, 0.5][seed]
    sk = GaussianProcessRegressor(theirs(), alpha=noise, optimizer=None).fit(x, y)
    sk_mean, sk_cov = sk.predict(xs, return_cov=True)
    _, sk_std = sk.predict(xs, return_std=True)

    gp = GPRegression(ours(), noise=noise)
    xt, yt, xst = (torch.from_numpy(a) for a in (x, y, xs))
    mean, cov = gp.posterior(xt, yt, xst)
    np.testing.assert_allclose(mean.detach().numpy(), sk_mean, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(cov.detach().numpy(), sk_cov, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(predictive_std(cov).detach().numpy(), sk_std, rtol=1e-6, atol=1e-8)
    # the diagonal-only path gives the same standard deviation
    mean_d, std_d = gp.predict(xt, yt, xst)
    np.testing.assert_allclose(mean_d.detach().numpy(), sk_mean, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(std_d.detach().numpy(), sk_std, rtol=1e-6, atol=1e-8)
    lml = gp.log_marginal_likelihood(xt, yt)
    assert lml.shape == ()
    np.testing.assert_allclose(lml.item(), sk.log_marginal_likelihood_value_, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("noise", [0.02, 0.3])
def test_std_of_y_matches_sklearn_white_kernel(noise):
    """With a WhiteKernel, sklearn's predictive std is that of y = f + eps: ours with include_noise=True."""
    x, y, xs = _problem(5, 1)
    sk = GaussianProcessRegressor(SkC(1.2) * SkRBF(0.6) + SkWhite(noise), alpha=0.0, optimizer=None).fit(x, y)
    sk_mean, sk_std = sk.predict(xs, return_std=True)
    gp = GPRegression(RBF(0.6, 1.2), noise=noise)
    mean, std_y = gp.predict(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(xs), include_noise=True)
    np.testing.assert_allclose(mean.detach().numpy(), sk_mean, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(std_y.detach().numpy(), sk_std, rtol=1e-6, atol=1e-8)
    _, std_f = gp.predict(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(xs))
    assert (std_f < std_y).all()
    np.testing.assert_allclose((std_y**2 - std_f**2).detach().numpy(), noise, rtol=1e-8)


def test_lml_gradient_matches_sklearn():
    """d LML / d log-hyperparameters from autograd equals sklearn's analytic gradient."""
    x, y, _ = _problem(3, 1, n=20)
    sk_kernel = SkC(1.3) * SkRBF(0.7) + SkWhite(0.1)  # theta = log [1.3, 0.7, 0.1]
    sk = GaussianProcessRegressor(sk_kernel, alpha=0.0, optimizer=None).fit(x, y)
    sk_lml, sk_grad = sk.log_marginal_likelihood(sk.kernel_.theta, eval_gradient=True)
    rbf, white = RBF(0.7, 1.3), WhiteNoise(0.1)
    gp = GPRegression(rbf + white, noise=1e-300)
    lml = gp.log_marginal_likelihood(torch.from_numpy(x), torch.from_numpy(y), noise=0.0)
    lml.backward()
    ours = [rbf.log_variance.grad.item(), rbf.log_lengthscale.grad.item(), white.log_variance.grad.item()]
    np.testing.assert_allclose(lml.item(), sk_lml, rtol=1e-10)
    np.testing.assert_allclose(ours, sk_grad, rtol=1e-6, atol=1e-9)


def test_squared_distance_is_divided_by_lengthscale_squared():
    """The past bug: dividing the squared distance by l instead of l^2. Closed-form values at d = l = 2."""
    x1, x2 = torch.zeros(1, 1, dtype=torch.float64), torch.full((1, 1), 2.0, dtype=torch.float64)
    r = 1.0  # d / l
    expected = {
        "rbf": math.exp(-0.5 * r**2),
        "matern12": math.exp(-r),
        "matern32": (1 + math.sqrt(3) * r) * math.exp(-math.sqrt(3) * r),
        "matern52": (1 + math.sqrt(5) * r + 5 / 3 * r**2) * math.exp(-math.sqrt(5) * r),
    }
    for name, value in expected.items():
        k = kernel_by_name(name, lengthscale=2.0, variance=3.0)
        assert k(x1, x2).item() == pytest.approx(3.0 * value, rel=1e-12), name
    # periodic: exp(-2 sin^2(pi d / p) / l^2) with d = 2, p = 8, l = 2 -> exp(-2 * 0.5 / 4)
    k = Periodic(lengthscale=2.0, period=8.0, variance=1.0)
    assert k(x1, x2).item() == pytest.approx(math.exp(-0.25), rel=1e-12)
    # ARD: each dimension scaled by its own lengthscale
    k = RBF([1.0, 4.0])
    a = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, 4.0]], dtype=torch.float64)
    assert k(a, b).item() == pytest.approx(math.exp(-1.0), rel=1e-12)


PSD_KERNELS = [
    RBF(0.3),
    RBF([0.5, 1.0, 2.0]),
    Matern(0.5, 0.7),
    Matern(1.5, 0.2, 2.0),
    Matern(2.5, 1.1),
    Periodic(0.5, 0.8),
    RBF(1.0) + Periodic(1.0, 0.5),
    Periodic(1.0, 0.5) * Matern(1.5, 2.0),
    Matern(0.5, 0.5) + WhiteNoise(0.1),
]


@pytest.mark.parametrize("kernel", PSD_KERNELS, ids=lambda k: k.__class__.__name__)
def test_kernel_matrices_are_symmetric_psd(kernel):
    g = torch.Generator().manual_seed(0)
    x = 2.0 * torch.randn(4, 40, 3, generator=g, dtype=torch.float64)
    x[:, 5] = x[:, 0]  # a duplicated input makes K singular but still PSD
    k = kernel(x)
    assert k.shape == (4, 40, 40)
    torch.testing.assert_close(k, k.transpose(-1, -2), rtol=0, atol=1e-14)
    eig = torch.linalg.eigvalsh(k.detach())
    assert (eig >= -1e-10 * k.diagonal(dim1=-2, dim2=-1).max()).all(), eig.min()
    torch.testing.assert_close(kernel.diag(x), k.diagonal(dim1=-2, dim2=-1))


def test_kernel_shapes_broadcast():
    k = RBF(0.5)
    x1 = torch.randn(3, 7, 2, dtype=torch.float64)
    x2 = torch.randn(5, 2, dtype=torch.float64)
    out = k(x1, x2)
    assert out.shape == (3, 7, 5)
    torch.testing.assert_close(out[1], k(x1[1], x2))
    assert k(x2).shape == (5, 5)
    assert WhiteNoise(0.5)(x1, x2).abs().max() == 0  # sklearn's WhiteKernel: zero between two sets


@pytest.mark.parametrize("kernel", [RBF(0.7, 1.5), Matern(1.5, 0.5, 0.8), Periodic(1.0, 1.7, 1.2)], ids=str)
def test_prior_samples_have_the_kernel_covariance(kernel):
    n = 20_000
    x = torch.tensor([[-1.0], [-0.6], [0.0], [0.3], [1.5]], dtype=torch.float64)
    gp = GPRegression(kernel, noise=0.1)
    f = gp.sample_prior(x, n_samples=n, generator=torch.Generator().manual_seed(1)).detach()
    assert f.shape == (n, 5)
    k = kernel(x).detach()
    sample_cov = torch.cov(f.T)
    # standard error of a sample covariance of Gaussians: sqrt((K_ii K_jj + K_ij^2) / n)
    se = ((k.diagonal()[:, None] * k.diagonal()[None, :] + k**2) / n).sqrt()
    assert ((sample_cov - k).abs() <= 5 * se).all(), (sample_cov - k) / se
    assert (f.mean(0).abs() <= 5 * (k.diagonal() / n).sqrt()).all()


def test_posterior_samples_have_the_posterior_moments():
    n = 20_000
    x, y, xs = (torch.from_numpy(a) for a in _problem(4, 1, n=6, m=4))
    gp = GPRegression(Matern(2.5, 0.8), noise=0.05)
    mean, cov = (t.detach() for t in gp.posterior(x, y, xs))
    f = gp.sample_posterior(x, y, xs, n_samples=n, generator=torch.Generator().manual_seed(2)).detach()
    assert f.shape == (n, 4)
    se_cov = ((cov.diagonal()[:, None] * cov.diagonal()[None, :] + cov**2) / n).sqrt()
    assert ((torch.cov(f.T) - cov).abs() <= 5 * se_cov + 1e-12).all()
    assert ((f.mean(0) - mean).abs() <= 5 * (cov.diagonal() / n).sqrt()).all()


def test_samples_are_reproducible_with_a_generator():
    gp = GPRegression(RBF(0.5))
    x = torch.linspace(-2, 2, 30, dtype=torch.float64)[:, None]
    a = gp.sample_prior(x, 3, generator=torch.Generator().manual_seed(7))
    b = gp.sample_prior(x, 3, generator=torch.Generator().manual_seed(7))
    c = gp.sample_prior(x, 3, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def _data_from_known_kernel(lengthscale: float, noise: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(8, 40, 1, generator=g, dtype=torch.float64) * 6 - 3
    truth = GPRegression(RBF(lengthscale, 1.0), noise=noise)
    f = truth.sample_prior(x, 1, generator=g)[0].detach()
    y = f + noise**0.5 * torch.randn(f.shape, generator=g, dtype=torch.float64)
    return x, y


@pytest.mark.parametrize("optimizer, steps", [("adam", 150), ("lbfgs", 40)])
def test_fit_increases_lml_and_recovers_the_lengthscale(optimizer, steps):
    x, y = _data_from_known_kernel(lengthscale=0.5, noise=0.01)
    gp = GPRegression(RBF(lengthscale=1.5, variance=0.5), noise=0.1)
    history = gp.fit(x, y, steps=steps, optimizer=optimizer)
    assert len(history) == steps + 1
    assert history[-1] > history[0] + 10.0
    with torch.no_grad():
        assert history[-1] == pytest.approx(gp.log_marginal_likelihood(x, y).sum().item())
    assert 0.5 / 1.3 < gp.kernel.lengthscale.item() < 0.5 * 1.3
    assert 0.01 / 3 < gp.noise.item() < 0.01 * 3
    if optimizer == "lbfgs":  # the line search never accepts a worse point
        assert all(b >= a - 1e-9 for a, b in zip(history, history[1:]))


def test_fit_with_fixed_noise_leaves_the_noise_alone():
    x, y = _data_from_known_kernel(lengthscale=0.5, noise=0.01, seed=3)
    gp = GPRegression(RBF(1.0), noise=0.2)
    gp.fit(x, y, steps=5, learn_noise=False)
    assert gp.noise.item() == pytest.approx(0.2, rel=1e-12)


def test_batched_results_equal_per_problem_results():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 12, 2, generator=g, dtype=torch.float64)
    y = torch.randn(4, 12, generator=g, dtype=torch.float64)
    xs = torch.randn(4, 6, 2, generator=g, dtype=torch.float64)
    grid = torch.randn(6, 2, generator=g, dtype=torch.float64)
    noise = torch.tensor([0.01, 0.1, 0.2, 1.0], dtype=torch.float64)
    gp = GPRegression(Matern(1.5, [0.6, 1.2], 1.3) + Periodic(0.9, 1.1, 0.4), noise=0.3)
    mean, cov = gp.posterior(x, y, xs, noise=noise)
    mean_g, cov_g = gp.posterior(x, y, grid, noise=noise)  # one test grid shared by all problems
    lml = gp.log_marginal_likelihood(x, y, noise=noise)
    _, std_y = gp.predict(x, y, xs, include_noise=True, noise=noise)
    assert mean.shape == (4, 6) and cov.shape == (4, 6, 6) and lml.shape == (4,)
    for b in range(4):
        m_b, c_b = gp.posterior(x[b], y[b], xs[b], noise=noise[b])
        torch.testing.assert_close(mean[b], m_b, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(cov[b], c_b, rtol=1e-12, atol=1e-12)
        m_b, c_b = gp.posterior(x[b], y[b], grid, noise=noise[b])
        torch.testing.assert_close(mean_g[b], m_b, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(cov_g[b], c_b, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(lml[b], gp.log_marginal_likelihood(x[b], y[b], noise=noise[b]))
        _, s_b = gp.predict(x[b], y[b], xs[b], include_noise=True, noise=noise[b])
        torch.testing.assert_close(std_y[b], s_b, rtol=1e-12, atol=1e-12)


def test_targets_with_trailing_singleton_and_float32_inputs():
    x = torch.linspace(-1, 1, 10)[:, None]  # float32
    y = torch.sin(3 * x)  # (N, 1)
    gp = GPRegression(RBF(0.5), noise=0.01)
    mean, cov = gp.posterior(x, y, x)
    assert mean.dtype == torch.float64 and mean.shape == (10,) and cov.shape == (10, 10)
    torch.testing.assert_close(mean, gp.posterior(x, y[:, 0], x).mean)


def test_cholesky_adds_jitter_only_where_needed():
    a = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    singular = torch.ones(2, 2, dtype=torch.float64)  # rank 1: plain Cholesky fails
    with pytest.raises(torch.linalg.LinAlgError):
        torch.linalg.cholesky(singular)
    factors = cholesky(torch.stack([a, singular]))
    assert torch.equal(factors[0], torch.linalg.cholesky(a))  # untouched by the other matrix's jitter
    torch.testing.assert_close(factors[1] @ factors[1].T, singular, rtol=0, atol=1e-8)


def test_noise_free_interpolation_with_duplicate_inputs():
    x = torch.tensor([[0.0], [0.5], [0.5], [1.0]], dtype=torch.float64)
    y = torch.tensor([0.0, 1.0, 1.0, 0.5], dtype=torch.float64)
    gp = GPRegression(RBF(0.4), noise=1e-6)
    mean, cov = gp.posterior(x, y, x, noise=0.0)
    torch.testing.assert_close(mean, y, rtol=0, atol=1e-4)
    assert torch.isfinite(cov).all()


def test_cholesky_errors_are_clear():
    with pytest.raises(CholeskyError, match="not positive definite"):
        cholesky(-torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN"):
        cholesky(torch.full((2, 2), float("nan"), dtype=torch.float64))


@pytest.mark.parametrize(
    "make",
    [
        lambda: RBF(lengthscale=0.0),
        lambda: RBF(lengthscale=-1.0),
        lambda: RBF(variance=float("nan")),
        lambda: RBF(lengthscale=[1.0, -2.0]),
        lambda: Matern(1.5, variance=0.0),
        lambda: Periodic(period=0.0),
        lambda: Periodic(lengthscale=float("inf")),
        lambda: WhiteNoise(-0.1),
        lambda: GPRegression(RBF(), noise=0.0),
    ],
)
def test_non_positive_hyperparameters_are_refused(make):
    with pytest.raises(ValueError, match="positive"):
        make()


def test_setters_validate_and_update():
    k = RBF(1.0)
    k.lengthscale = 0.25
    assert k.lengthscale.item() == pytest.approx(0.25)
    assert k.log_lengthscale.item() == pytest.approx(math.log(0.25))
    with pytest.raises(ValueError, match="positive"):
        k.lengthscale = -1.0


def test_bad_inputs_raise_clear_errors():
    gp = GPRegression(RBF(0.5), noise=0.1)
    x = torch.randn(3, 10, 1)
    y = torch.randn(3, 10)
    with pytest.raises(ValueError, match=r"x\[:, None\]"):
        gp.posterior(torch.randn(10), torch.randn(10), torch.randn(5, 1))
    with pytest.raises(ValueError, match="y_train must have shape"):
        gp.posterior(x, torch.randn(3, 9), x)
    with pytest.raises(ValueError, match="different dimensions"):
        gp.posterior(x, y, torch.randn(3, 5, 2))
    with pytest.raises(ValueError, match="batch shapes"):
        gp.posterior(x, y, torch.randn(2, 5, 1))
    bad = x.clone()
    bad[0, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        gp.posterior(bad, y, x)
    bad = y.clone()
    bad[1, 2] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        gp.log_marginal_likelihood(x, bad)
    with pytest.raises(ValueError, match="noise"):
        gp.posterior(x, y, x, noise=-1.0)
    with pytest.raises(ValueError, match="one variance per problem"):
        gp.posterior(x, y, x, noise=torch.ones(2))
    with pytest.raises(ValueError, match="lengthscales"):
        RBF([1.0, 2.0])(x)
    with pytest.raises(ValueError, match="n_samples"):
        gp.sample_prior(x, n_samples=0)
    with pytest.raises(ValueError, match="optimizer"):
        gp.fit(x, y, steps=1, optimizer="sgd")


def test_kernel_by_name():
    assert set(KERNEL_NAMES) == {"rbf", "matern12", "matern32", "matern52", "periodic"}
    assert isinstance(kernel_by_name("rbf"), RBF)
    for name, nu in [("matern12", 0.5), ("matern32", 1.5), ("Matern52", 2.5)]:
        k = kernel_by_name(name, lengthscale=0.3)
        assert isinstance(k, Matern) and k.nu == nu and k.lengthscale.item() == pytest.approx(0.3)
    assert kernel_by_name("periodic", period=2.0).period.item() == pytest.approx(2.0)
    assert isinstance(RBF() + Periodic(), Sum) and isinstance(RBF() * Periodic(), Product)
    with pytest.raises(ValueError, match="Unknown kernel"):
        kernel_by_name("cosine")
    with pytest.raises(ValueError, match="Bad parameters"):
        kernel_by_name("rbf", period=1.0)
    with pytest.raises(ValueError, match="nu must be one of"):
        Matern(nu=2.0)
