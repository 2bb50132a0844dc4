"""The randomised PIT of 8-bit pixels (ifanp.calibration.censored_pit) and the std temperature fit."""
from __future__ import annotations

import math

import torch

from ifanp.calibration import LEVELS, censored_pit, coverage, fit_temperature, gaussian_pit, model_pit


def _eight_bit(y: torch.Tensor) -> torch.Tensor:
    return (y.clamp(0, 1) * 255).round() / 255


def _mnist_like(n: int, g: torch.Generator):
    """A per-element mixture that looks like MNIST pixels: black (N(0, 0.01^2)) with probability 0.7, else a
    stroke near 0.85; values drawn from it, clipped and rounded to 8 bits (so 0 is an atom)."""
    logw = torch.log(torch.tensor([0.7, 0.3])).view(1, 2).expand(n, 2).clone()
    mu = torch.stack([torch.zeros(n), 0.6 + 0.3 * torch.rand(n, generator=g)], 1)
    sd = torch.stack([torch.full((n,), 0.01), 0.05 + 0.2 * torch.rand(n, generator=g)], 1)
    k = (torch.rand(n, generator=g) < 0.3).long()
    y = _eight_bit(mu[torch.arange(n), k] + sd[torch.arange(n), k] * torch.randn(n, generator=g))
    return y, logw, mu, sd


def test_values_drawn_from_the_predictive_and_rounded_have_nominal_discrete_coverage():
    g = torch.Generator().manual_seed(0)
    y, logw, mu, sd = _mnist_like(200_000, g)
    assert float((y == 0).float().mean()) > 0.35  # the atom is there (0.7 * P(N(0, 0.01^2) < 1/510) = 0.40)
    u = censored_pit(y, logw, mu, sd, generator=g)
    assert 0 <= float(u.min()) and float(u.max()) <= 1
    for p, c in coverage(u).items():
        assert abs(c - p) < 0.01, (p, c)
    # the continuous PIT of the same calibrated predictive over-covers: the black pixels sit at u near 0.7/2
    cont = (logw.exp() * 0.5 * (1 + torch.erf((y.unsqueeze(1) - mu) / (sd * math.sqrt(2))))).sum(1)
    assert coverage(cont)[0.5] > 0.5 + 0.15


def test_a_too_narrow_predictive_undercovers_in_the_discrete_pit_too():
    g = torch.Generator().manual_seed(1)
    y, logw, mu, sd = _mnist_like(100_000, g)
    sd_narrow = sd.clone()
    sd_narrow[:, 1] = sd[:, 1] / 3  # the strokes' component three times too sure
    cov = coverage(censored_pit(y, logw, mu, sd_narrow, generator=g))
    assert cov[0.9] < 0.9 - 0.03


class _Gauss:
    """A deterministic 'model' predicting N(0.5, std^2) everywhere."""

    latent = False
    device = torch.device("cpu")

    def __init__(self, std: float):
        self.std = std

    def eval(self):
        return self

    def predict(self, x, m, samples=0):
        return torch.full_like(x, 0.5).unsqueeze(0), torch.full_like(x, self.std).unsqueeze(0)


def test_temperature_fit_recovers_the_missing_width():
    g = torch.Generator().manual_seed(2)
    y = _eight_bit(0.5 + 0.1 * torch.randn(400, 1, 8, 8, generator=g))
    images = (y * 255).round().to(torch.uint8)
    masks = (torch.rand(400, 1, 8, 8, generator=g) < 0.2).float()
    model = _Gauss(0.1 / 1.3)  # 1.3 times too narrow
    before = coverage(model_pit(model, images, masks)["discrete"])
    assert before[0.9] < 0.85
    fit = fit_temperature(model, images, masks)
    assert abs(fit["tau"] - 1.3) <= 0.051 and fit["max_gap"] < 0.02
    after = coverage(model_pit(model, images, masks, tau=fit["tau"])["discrete"])
    assert all(abs(c - p) < 0.02 for p, c in after.items())
    # at tau = 1 the discrete PIT of a Gaussian model agrees with the continuous PIT away from the ends
    cont = model_pit(model, images, masks)["pit"]
    disc = model_pit(model, images, masks)["discrete"]
    assert torch.allclose(cont, disc, atol=float(gaussian_pit(torch.tensor(1 / 510), torch.tensor(0.0), torch.tensor(model.std)) - 0.5) + 1e-6)
    assert set(LEVELS) == set(after)
