"""The 1-D GP function sampler of the neural-process chapter (ifanp.data.functions)."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from ifanp.data.functions import FunctionBatch, GPFunctionDataset, GPFunctionSampler
from ifanp.gp import RBF, Matern, cholesky


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shapes_dtypes_and_ranges():
    sampler = GPFunctionSampler("rbf", x_range=(-2, 2), num_points=(50, 100), num_context=(3, 50))
    g = _gen(0)
    for _ in range(5):
        batch = sampler.sample(8, generator=g)
        assert isinstance(batch, FunctionBatch)
        nc, nt = batch.num_context, batch.num_target
        assert 3 <= nc <= 50 and 50 <= nt <= 100 and batch.batch_size == 8
        assert batch.x_context.shape == batch.y_context.shape == (8, nc, 1)
        assert batch.x_target.shape == batch.y_target.shape == (8, nt, 1)
        assert all(t.dtype == torch.float32 for t in batch)
        assert batch.x_target.min() >= -2 and batch.x_target.max() <= 2
        assert (batch.x_target.diff(dim=1) >= 0).all()  # targets sorted by x


def test_sizes_cover_their_inclusive_ranges():
    sampler = GPFunctionSampler(num_points=(5, 7), num_context=(1, 3))
    g = _gen(1)
    seen = {(b.num_context, b.num_target) for b in (sampler.sample(2, generator=g) for _ in range(150))}
    assert {nc for nc, _ in seen} == {1, 2, 3}
    assert {nt for _, nt in seen} == {5, 6, 7}
    fixed = GPFunctionSampler(num_points=10, num_context=4).sample(3)
    assert (fixed.num_context, fixed.num_target) == (4, 10)


def test_context_is_a_subset_of_the_targets():
    batch = GPFunctionSampler("matern52", num_points=(20, 30), num_context=(5, 20)).sample(16, generator=_gen(2))
    # same_x[b, i, j]: context point i of task b has the x of target point j
    same_x = batch.x_context[:, :, None, 0] == batch.x_target[:, None, :, 0]
    same_y = batch.y_context[:, :, None, 0] == batch.y_target[:, None, :, 0]
    assert (same_x & same_y).any(-1).all()
    assert (same_x.sum(-1) == 1).all()  # each context point once: no point drawn twice
    # and the context is not simply the first targets
    assert not torch.equal(batch.x_context, batch.x_target[:, : batch.num_context])


def test_reproducible_with_a_seed_and_different_across_seeds():
    sampler = GPFunctionSampler("periodic")
    a, b, c = (sampler.sample(4, generator=_gen(s)) for s in (7, 7, 8))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert a.num_target != c.num_target or not torch.equal(a.y_target, c.y_target)
    torch.manual_seed(3)
    d = sampler.sample(4)
    torch.manual_seed(3)
    e = sampler.sample(4)
    assert all(torch.equal(u, v) for u, v in zip(d, e))


@pytest.mark.parametrize("variance, noise", [(1.0, 1e-4), (2.0, 0.1), (0.5, 1.0)])
def test_marginal_variance_is_kernel_variance_plus_noise(variance, noise):
    """y_i ~ N(0, s^2 + sigma_n^2): one point per task, so the 4000 values are independent."""
    n = 4000
    sampler = GPFunctionSampler("rbf", num_points=5, num_context=2, noise=noise,
                                kernel_params={"lengthscale": 0.5, "variance": variance})
    y = sampler.sample(n, generator=_gen(4)).y_target[:, 0, 0].double()
    expected = variance + noise
    assert abs(y.var().item() - expected) <= 5 * expected * (2 / n) ** 0.5
    assert abs(y.mean().item()) <= 5 * (expected / n) ** 0.5


@pytest.mark.parametrize(
    "kernel, params",
    [("rbf", {"lengthscale": 0.3}), ("matern32", {"lengthscale": 0.8, "variance": 0.5}),
     ("periodic", {"lengthscale": 0.9, "period": 1.5})],
)
def test_functions_have_the_kernel_covariance(kernel, params):
    """Whitening each task with its own K(x, x) + sigma_n^2 I gives i.i.d. N(0, 1) values (so E z^2 = 1)."""
    noise = 0.01
    sampler = GPFunctionSampler(kernel, num_points=8, num_context=3, noise=noise, kernel_params=params)
    batch = sampler.sample(600, generator=_gen(5))
    x, y = batch.x_target.double(), batch.y_target.double()
    k = sampler.kernel(x).detach() + noise * torch.eye(8, dtype=torch.float64)
    z = torch.linalg.solve_triangular(cholesky(k), y, upper=False)
    n = z.numel()
    assert abs(z.pow(2).mean().item() - 1.0) <= 5 * (2 / n) ** 0.5
    # the check has power: a sampler that ignored kernel_params (default lengthscale 0.6) would fail it
    if kernel == "rbf":
        k_wrong = RBF(0.6)(x).detach() + noise * torch.eye(8, dtype=torch.float64)
        z_wrong = torch.linalg.solve_triangular(cholesky(k_wrong), y, upper=False)
        assert abs(z_wrong.pow(2).mean().item() - 1.0) > 5 * (2 / n) ** 0.5


def test_kernel_instance_and_default_params():
    kernel = Matern(1.5, lengthscale=0.2)
    assert GPFunctionSampler(kernel).kernel is kernel
    assert GPFunctionSampler("rbf").kernel.lengthscale.item() == pytest.approx(0.6)
    assert GPFunctionSampler("periodic").kernel.period.item() == pytest.approx(1.0)


def test_dataset_with_dataloader_is_deterministic_and_worker_independent():
    sampler = GPFunctionSampler(num_points=(10, 20), num_context=(2, 8))
    ds = sampler.as_dataset(num_batches=6, batch_size=4, seed=11)
    assert isinstance(ds, GPFunctionDataset) and len(ds) == 6
    one = list(DataLoader(ds, batch_size=None))
    again = list(DataLoader(ds, batch_size=None))
    two_workers = list(DataLoader(ds, batch_size=None, num_workers=2))
    assert len(one) == len(two_workers) == 6 and all(isinstance(b, FunctionBatch) for b in one)
    assert all(torch.equal(a.y_target, b.y_target) for a, b in zip(one, again))

    def key(b):
        return b.y_target.sum().item()

    # the same batches whatever the number of workers (no duplicates, none missing)
    assert sorted(map(key, one)) == sorted(map(key, two_workers))
    assert len(set(map(key, one))) == 6
    unseeded = sampler.as_dataset(num_batches=2, batch_size=4)
    first, second = list(unseeded), list(unseeded)
    assert not torch.equal(first[0].x_target[:, :5], second[0].x_target[:, :5])


def test_fixed_eval_set_is_deterministic_and_separate_from_training():
    sampler = GPFunctionSampler(num_points=(10, 20), num_context=(2, 8))
    a = sampler.fixed_eval_set(12, seed=0)
    b = sampler.fixed_eval_set(12, seed=0)
    assert len(a) == 12 and all(t.batch_size == 1 for t in a)
    assert all(torch.equal(u.y_target, v.y_target) for u, v in zip(a, b))
    assert len({t.num_context for t in a}) > 1  # each task its own context size
    train = list(sampler.as_dataset(num_batches=3, batch_size=1, seed=0))
    assert not any(
        t.num_target == e.num_target and torch.equal(t.y_target, e.y_target) for t in train for e in a
    )
    grouped = sampler.fixed_eval_set(10, seed=0, batch_size=4)
    assert [t.batch_size for t in grouped] == [4, 4, 2]
    assert not torch.equal(sampler.fixed_eval_set(1, seed=1)[0].x_target, a[0].x_target)


def test_function_batch_helpers():
    batch = GPFunctionSampler(num_points=6, num_context=2).sample(3)
    xc, yc, xt, yt = batch
    assert xc is batch.x_context and yc is batch.y_context and yt is batch.y_target
    moved = batch.to(dtype=torch.float64)
    assert moved.x_target.dtype == torch.float64 and torch.equal(moved.x_target.float(), xt)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_points": (20, 30), "num_context": (3, 25)}, "may not exceed"),
        ({"num_context": (-1, 5)}, "num_context must satisfy"),
        ({"num_points": (10, 5)}, "num_points must satisfy"),
        ({"num_points": 2.5}, "num_points must be an integer"),
        ({"x_range": (2, -2)}, "x_range"),
        ({"x_range": (0, float("inf"))}, "x_range"),
        ({"noise": -0.1}, "noise"),
        ({"kernel": "cosine"}, "Unknown kernel"),
        ({"kernel": RBF(), "kernel_params": {"lengthscale": 1.0}}, "kernel_params"),
        ({"kernel": "rbf", "kernel_params": {"lengthscale": 0.0}}, "positive"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GPFunctionSampler(**kwargs)


def test_bad_call_arguments_raise_clear_errors():
    sampler = GPFunctionSampler()
    with pytest.raises(ValueError, match="batch_size"):
        sampler.sample(0)
    with pytest.raises(ValueError, match="num_batches"):
        sampler.as_dataset(0, 4)
    with pytest.raises(ValueError, match="seed"):
        sampler.as_dataset(2, 4, seed=-1)
    with pytest.raises(ValueError, match="num_tasks"):
        sampler.fixed_eval_set(0)
    with pytest.raises(TypeError, match="kernel"):
        GPFunctionSampler(kernel=3)
