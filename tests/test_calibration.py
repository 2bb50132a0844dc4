"""Coverage, reliability and calibration error of predictive distributions (ifanp.calibration)."""
from __future__ import annotations

import math

import pytest
import torch

from ifanp.calibration import (
    LEVELS,
    calibration_error,
    coverage,
    gaussian_pit,
    mixture_pit,
    model_pit,
    moment_matched_pit,
)


def test_samples_from_a_gaussian_have_nominal_coverage():
    g = torch.Generator().manual_seed(0)
    mean = torch.rand(200_000, generator=g)
    std = 0.01 + torch.rand(200_000, generator=g)
    y = mean + std * torch.randn(200_000, generator=g)
    cov = coverage(gaussian_pit(y, mean, std))
    for p in LEVELS:
        assert abs(cov[p] - p) < 0.005, (p, cov[p])
    assert calibration_error(gaussian_pit(y, mean, std)) < 0.005


def test_one_sigma_and_two_sigma_intervals():
    # |y - mu| = 0.99 sigma is inside the 68.3 % interval, 1.01 sigma outside; 2 sigma likewise for 95.4 %.
    mean, std = torch.zeros(4), torch.ones(4)
    y = torch.tensor([0.99, 1.01, 1.99, 2.01])
    cov = coverage(gaussian_pit(y, mean, std), (0.6827, 0.9545))
    assert cov[0.6827] == pytest.approx(0.25)
    assert cov[0.9545] == pytest.approx(0.75)


def test_samples_from_a_mixture_have_nominal_coverage_and_a_moment_matched_gaussian_does_not():
    # A bimodal mixture: y drawn from it is calibrated under the mixture, not under its moment-matched Gaussian.
    g = torch.Generator().manual_seed(1)
    n, k = 100_000, 2
    means = torch.stack([torch.full((n,), -1.0), torch.full((n,), 1.0)])
    stds = torch.full((k, n), 0.1)
    pick = torch.randint(0, k, (n,), generator=g)
    y = means[pick, torch.arange(n)] + 0.1 * torch.randn(n, generator=g)
    cov = coverage(mixture_pit(y, means, stds))
    for p in LEVELS:
        assert abs(cov[p] - p) < 0.01, (p, cov[p])
    mm = coverage(moment_matched_pit(y, means, stds))
    assert abs(mm[0.5] - 0.5) > 0.2  # the Gaussian's central half sits between the modes


def test_overconfident_predictions_undercover():
    g = torch.Generator().manual_seed(2)
    y = torch.randn(50_000, generator=g)
    cov = coverage(gaussian_pit(y, torch.zeros_like(y), 0.5 * torch.ones_like(y)))
    assert all(cov[p] < p - 0.1 for p in LEVELS)
    assert calibration_error(gaussian_pit(y, torch.zeros_like(y), 0.5 * torch.ones_like(y))) > 0.1


class _Fake:
    """A 'model' whose predictive is a known Gaussian: the data are drawn from it."""

    latent = False

    def __init__(self, mean, std):
        self.mean_, self.std_ = mean, std
        self.device = torch.device("cpu")

    def eval(self):
        return self

    def predict(self, x, m, samples=0):
        return self.mean_[: len(x)].unsqueeze(0), self.std_[: len(x)].unsqueeze(0)


def test_model_pit_counts_only_missing_pixels():
    g = torch.Generator().manual_seed(3)
    mean = torch.full((20, 1, 8, 8), 0.5)
    std = torch.full((20, 1, 8, 8), 0.1)
    x = (mean + std * torch.randn(mean.shape, generator=g)).clamp(0, 1)
    masks = (torch.rand(20, 1, 8, 8, generator=g) < 0.3).float()
    pits = model_pit(_Fake(mean, std), x, masks, batch_size=7)
    assert pits["pit"].numel() == int((masks == 0).sum())
    assert "moment_matched" not in pits
    assert math.isclose(model_pit(_Fake(mean, std), x, masks, targets="all")["pit"].numel(), x.numel())
