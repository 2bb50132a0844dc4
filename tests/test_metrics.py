"""Metrics against hand-computed values, torch.distributions, Monte Carlo and a slow SSIM reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from ifanp.metrics import (
    MetricInputError,
    completion_metrics,
    gaussian_nll_per_pixel,
    kl_diag_gaussians,
    mean_psnr,
    mse,
    psnr,
    psnr_from_mse,
    psnr_of_mean_mse,
    ssim,
)


def test_mse_and_psnr_hand_values():
    target = torch.full((2, 1, 4, 4), 0.5)
    pred = target.clone()
    pred[0] += 0.1  # MSE 0.01 -> 10 log10(1 / 0.01) = 20 dB exactly (ln would give 46.05)
    pred[1, :, :2] += 0.2  # half the pixels off by 0.2 -> MSE 0.02
    torch.testing.assert_close(mse(pred, target), torch.tensor([0.01, 0.02]))
    torch.testing.assert_close(psnr(pred, target), torch.tensor([20.0, 10 * math.log10(50)]))
    # MAX enters squared: with MAX = 2 the PSNR rises by 20 log10(2) = 6.02 dB (not 3.01).
    torch.testing.assert_close(psnr(pred, target, max_val=2.0) - psnr(pred, target), torch.full((2,), 6.0206),
                               atol=1e-4, rtol=0)  # fmt: skip
    # Scale invariance: 8-bit images with MAX = 255 give the same PSNR.
    torch.testing.assert_close(psnr(255 * pred, 255 * target, max_val=255.0), psnr(pred, target))
    assert torch.isinf(psnr(target, target)).all()


def test_rgb_mse_averages_over_channels():
    target = torch.zeros(1, 3, 2, 2)
    pred = target.clone()
    pred[0, 0] = 1.0  # only the red channel is wrong
    torch.testing.assert_close(mse(pred, target), torch.tensor([1 / 3]))


def test_masked_mse_uses_only_the_selected_pixels_of_every_channel():
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.rand(3, 3, 5, 5, generator=gen), torch.rand(3, 3, 5, 5, generator=gen)
    mask = (torch.rand(3, 1, 5, 5, generator=gen) < 0.5).float()
    expected = torch.stack([
        ((pred[b] - target[b]) ** 2)[:, mask[b, 0] == 1].mean() for b in range(3)
    ])  # fmt: skip
    torch.testing.assert_close(mse(pred, target, mask), expected)
    torch.testing.assert_close(mse(pred, target, mask.expand(3, 3, 5, 5)), expected)


def test_whole_image_and_target_only_metrics():
    gen = torch.Generator().manual_seed(1)
    target = torch.rand(4, 1, 8, 8, generator=gen)
    context = torch.zeros(4, 1, 8, 8)
    context[:, :, :2] = 1  # 16 of 64 pixels observed
    pred = torch.where(context.bool(), target, target + 0.1)  # context copied, every target pixel off by 0.1
    out = completion_metrics(pred, target, context)
    torch.testing.assert_close(out["mse_target"], torch.full((4,), 0.01))
    torch.testing.assert_close(out["mse_whole"], torch.full((4,), 0.01 * 48 / 64))
    torch.testing.assert_close(out["psnr_target"], torch.full((4,), 20.0))
    assert torch.all(out["psnr_whole"] > out["psnr_target"])


def test_dataset_averages():
    values = torch.tensor([0.01, 0.0001])  # 20 dB and 40 dB
    torch.testing.assert_close(mean_psnr(values), torch.tensor(30.0))
    torch.testing.assert_close(psnr_of_mean_mse(values), torch.tensor(10 * math.log10(1 / 0.00505)))
    assert mean_psnr(values) > psnr_of_mean_mse(values)  # Jensen
    torch.testing.assert_close(psnr_from_mse(torch.tensor([0.04]), max_val=2.0), torch.tensor([20.0]))


def test_gaussian_nll_per_pixel_matches_torch_distributions():
    gen = torch.Generator().manual_seed(2)
    y, mean = torch.rand(2, 3, 4, 4, generator=gen), torch.rand(2, 3, 4, 4, generator=gen)
    std = 0.05 + torch.rand(2, 3, 4, 4, generator=gen)
    expected = -Normal(mean, std).log_prob(y).flatten(1).mean(1)
    torch.testing.assert_close(gaussian_nll_per_pixel(y, mean, std), expected)
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, 0, 0] = 1
    expected_masked = -Normal(mean, std).log_prob(y)[:, :, 0, 0].mean(1)
    torch.testing.assert_close(gaussian_nll_per_pixel(y, mean, std, mask), expected_masked)
    torch.testing.assert_close(  # a scalar std broadcasts
        gaussian_nll_per_pixel(y, mean, torch.tensor(0.3)), -Normal(mean, 0.3).log_prob(y).flatten(1).mean(1)
    )
    with pytest.raises(MetricInputError, match="strictly positive"):
        gaussian_nll_per_pixel(y, mean, torch.zeros_like(y))


def test_kl_matches_torch_distributions():
    gen = torch.Generator().manual_seed(3)
    mu_q, mu_p = torch.randn(5, 8, generator=gen), torch.randn(5, 8, generator=gen)
    std_q, std_p = 0.1 + torch.rand(5, 8, generator=gen) * 2, 0.1 + torch.rand(5, 8, generator=gen) * 2
    expected = kl_divergence(Normal(mu_q, std_q), Normal(mu_p, std_p)).sum(-1)
    torch.testing.assert_close(kl_diag_gaussians(mu_q, std_q, mu_p, std_p), expected)
    torch.testing.assert_close(kl_diag_gaussians(mu_q, std_q, mu_q, std_q), torch.zeros(5), atol=1e-6, rtol=0)


def test_kl_matches_monte_carlo():
    # KL(q||p) = E_q[log q(z) - log p(z)]. Standard deviations far from 1 so that a formula using
    # variances where it should use standard deviations (or the reverse KL) is off by many standard errors.
    mu_q, std_q = torch.tensor([0.3, -1.0, 0.5]), torch.tensor([0.5, 1.5, 0.8])
    mu_p, std_p = torch.tensor([0.0, 0.5, 1.0]), torch.tensor([2.0, 0.7, 1.0])
    q, p = Normal(mu_q.double(), std_q.double()), Normal(mu_p.double(), std_p.double())
    eps = torch.randn(200_000, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    z = mu_q.double() + std_q.double() * eps
    terms = (q.log_prob(z) - p.log_prob(z)).sum(-1)
    estimate, stderr = terms.mean(), terms.std() / math.sqrt(terms.numel())
    closed = kl_diag_gaussians(mu_q, std_q, mu_p, std_p).double()
    assert abs(closed - estimate) < 4 * stderr
    wrong = kl_diag_gaussians(mu_q, std_q**2, mu_p, std_p**2).double()  # variances passed as stds
    assert abs(wrong - estimate) > 20 * stderr
    reverse = kl_diag_gaussians(mu_p, std_p, mu_q, std_q).double()
    assert abs(reverse - estimate) > 20 * stderr


def _ssim_reference(
    x: np.ndarray, y: np.ndarray, win: int = 7, sigma: float = 1.5, max_val: float = 1.0
) -> float:
    """Slow, loop-based SSIM of one image (C, H, W): Gaussian-weighted statistics at every valid position."""
    coords = np.arange(win) - (win - 1) / 2
    g = np.exp(-(coords**2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    values = []
    for c in range(x.shape[0]):
        for i in range(x.shape[1] - win + 1):
            for j in range(x.shape[2] - win + 1):
                a, b = x[c, i : i + win, j : j + win], y[c, i : i + win, j : j + win]
                ma, mb = (w * a).sum(), (w * b).sum()
                va, vb = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum()
                cov = (w * (a - ma) * (b - mb)).sum()
                values.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_ssim_matches_a_slow_reference():
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(2, 3, 12, 12, generator=gen, dtype=torch.float64)
    y = (0.7 * x + 0.3 * torch.rand(2, 3, 12, 12, generator=gen, dtype=torch.float64)).clamp(0, 1)
    ours = ssim(x, y, window_size=7)
    for b in range(2):
        assert ours[b].item() == pytest.approx(_ssim_reference(x[b].numpy(), y[b].numpy()), abs=1e-9)


def test_ssim_properties():
    gen = torch.Generator().manual_seed(6)
    x = torch.rand(1, 1, 28, 28, generator=gen).clamp(0, 1)
    torch.testing.assert_close(ssim(x, x), torch.ones(1))
    scores = [
        float(ssim((x + s * torch.randn(x.shape, generator=gen)).clamp(0, 1), x)) for s in (0.02, 0.1, 0.3)
    ]
    assert scores[0] > scores[1] > scores[2] and scores[0] < 1
    y = (x + 0.1 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    torch.testing.assert_close(ssim(x, y), ssim(y, x))


def test_wrong_shapes_are_explained():
    grey, rgb = torch.rand(2, 1, 8, 8), torch.rand(2, 3, 8, 8)
    with pytest.raises(MetricInputError, match="channel counts differ: 3 vs 1"):
        mse(rgb, grey)
    with pytest.raises(MetricInputError, match="add the batch dimension"):
        psnr(grey[0], grey[0])
    with pytest.raises(MetricInputError, match=r"expected \(2, 1, 8, 8\)"):
        mse(grey, grey, torch.ones(2, 2, 8, 8))
    with pytest.raises(MetricInputError, match="selects no pixel in image"):
        mse(grey, grey, torch.zeros(2, 1, 8, 8))
    with pytest.raises(MetricInputError, match="smaller than the SSIM window"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(MetricInputError, match="max_val"):
        psnr(grey, grey, max_val=0)
    with pytest.raises(MetricInputError, match="strictly positive"):
        kl_diag_gaussians(torch.zeros(3), torch.ones(3), torch.zeros(3), -torch.ones(3))
    with pytest.raises(MetricInputError, match="only 0"):
        completion_metrics(grey, grey, torch.full((2, 1, 8, 8), 0.5))
