"""The completion rules without learning (ifanp.baselines): properties that catch wrong formulas."""
import math

import pytest
import torch

from ifanp import baselines as bl
from ifanp import gp as gplib
from ifanp.data.masks import random_mask
from ifanp.evaluate import evaluate
from ifanp.metrics import psnr


def _digits(n=12, seed=0):
    """Smooth random 'images' in [0, 1]: blurred noise, so interpolation has something to find."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g)
    return bl.gaussian_blur(x, 2.0).sub(0.3).mul(3).clamp(0, 1)


def _gp_rule(noise=1e-3, paste=False, mean=None):
    gp = gplib.GPRegression(bl.FastMatern(2.5, lengthscale=2.0, variance=0.1), noise=noise)
    return bl.GPRegression(gp, torch.zeros(1, 1, 28, 28) if mean is None else mean, paste=paste)


@pytest.mark.parametrize("ratio", [0.01, 0.05, 0.3])
def test_normalised_convolution_returns_a_constant_image_from_any_context_of_one(ratio):
    rule = bl.NormalisedConvolution(bandwidth=0.7, sigma=0.1)
    values = torch.linspace(0.1, 0.9, 6)[:, None, None, None].expand(6, 1, 28, 28)
    mask = random_mask(6, 28, ratio, generator=torch.Generator().manual_seed(1))
    mean = rule.predict(values, mask)[0][0]
    assert torch.allclose(mean, values, atol=1e-6)  # also far from every context pixel (the context-mean fallback)


def test_normalised_convolution_weights_are_a_normalised_gaussian():
    # One context pixel at (10, 10) and one at (10, 12): the pixel between them gets their average, a
    # pixel next to the first leans towards it by the Gaussian weights exp(-d^2 / 2 bw^2).
    bw = 1.0
    rule = bl.NormalisedConvolution(bandwidth=bw, sigma=0.1)
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 10, 10], x[0, 0, 10, 12] = 0.2, 0.8
    m = (x > 0).float()
    out = rule.interpolate(x, m)[0, 0]
    assert float(out[10, 11]) == pytest.approx(0.5, abs=1e-6)
    w1, w3 = math.exp(-1 / (2 * bw**2)), math.exp(-9 / (2 * bw**2))
    assert float(out[10, 9]) == pytest.approx((0.2 * w1 + 0.8 * w3) / (w1 + w3), abs=1e-5)


def test_gp_baseline_interpolates_its_context_as_the_noise_vanishes():
    x = _digits(4)
    m = random_mask(4, 28, 0.3, generator=torch.Generator().manual_seed(2))
    gaps = []
    for noise in (1e-2, 1e-4, 1e-7):
        mean = _gp_rule(noise).predict(x, m)[0][0]
        gaps.append(float(((mean - x).abs() * m).max()))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-3


def test_gp_baseline_equals_one_gp_per_image_with_the_package_gp():
    # The padded batch (contexts of different sizes in one Cholesky) must equal one exact GP per image.
    x = _digits(3)
    m = torch.cat([random_mask(1, 28, r, generator=torch.Generator().manual_seed(3)) for r in (0.05, 0.2, 0.5)])
    rule = _gp_rule(1e-3, mean=torch.full((1, 1, 28, 28), 0.2))
    rule.gp.dtype = torch.float64
    mean, std = rule.predict(x, m)
    gp = gplib.GPRegression(gplib.Matern(2.5, lengthscale=2.0, variance=0.1), noise=1e-3)
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    grid = torch.stack([rows.flatten(), cols.flatten()], -1).double()
    for b in range(3):
        keep = m[b].flatten() > 0
        mu, sd = gp.predict(grid[keep], (x[b].flatten() - 0.2)[keep], grid, include_noise=True)
        assert torch.allclose(mean[0, b].flatten(), (mu + 0.2).clamp(0, 1).float(), atol=1e-5)
        assert torch.allclose(std[0, b].flatten(), sd.float(), atol=1e-5)


def test_fast_matern_is_the_package_matern():
    a, b = torch.rand(2, 30, 2, dtype=torch.float64) * 28, torch.rand(2, 40, 2, dtype=torch.float64) * 28
    fast, ref = bl.FastMatern(2.5, lengthscale=1.7, variance=0.3), gplib.Matern(2.5, lengthscale=1.7, variance=0.3)
    assert torch.allclose(fast(a, b), ref(a, b), atol=1e-10)


def test_an_empty_context_gives_the_prior_mean():
    mean = _digits(1, seed=5)
    rule = _gp_rule(1e-3, mean=mean)
    out = rule.predict(_digits(2, seed=6), torch.zeros(2, 1, 28, 28))[0][0]
    assert torch.allclose(out, mean.expand(2, -1, -1, -1), atol=1e-6)


def test_pasting_the_context_never_lowers_whole_image_psnr_and_leaves_the_targets_alone():
    x = _digits(8)
    m = random_mask(8, 28, 0.3, generator=torch.Generator().manual_seed(4))
    mean_img, std_img = bl.fit_mean_image(x)
    pairs = [(bl.MeanImage(mean_img, std_img), bl.MeanImage(mean_img, std_img, paste=True)),
             (bl.NormalisedConvolution(0.7, 0.1), bl.NormalisedConvolution(0.7, 0.1, paste=True)),
             (_gp_rule(1e-2), _gp_rule(1e-2, paste=True))]
    for plain, pasted in pairs:
        a, b = plain.predict(x, m)[0][0], pasted.predict(x, m)[0][0]
        assert (psnr(b, x) >= psnr(a, x) - 1e-6).all()
        assert torch.equal(a * (1 - m), b * (1 - m))  # target pixels: identical
        assert torch.equal(b * m, x * m)  # context pixels: the observed values


def test_bandwidth_selection_uses_the_training_images_and_picks_the_best_score():
    bw, sigma, scores = bl.fit_normalised_convolution(_digits(40), images=40, bandwidths=(0.5, 1.0, 3.0))
    assert scores[f"{bw:g}"] == min(scores.values()) and sigma == pytest.approx(math.sqrt(min(scores.values())))


def test_evaluate_scores_the_rules_like_models():
    x = (_digits(6) * 255).round().to(torch.uint8)
    idx = torch.arange(6)
    rules = bl.fit_baselines(x)
    assert set(rules) == set(bl.BASELINES)
    for key, rule in rules.items():
        res = evaluate(rule, x, idx, ratios=(0.2, 0.6), nll_images=6, nll_samples=1, progress=False)
        lo, hi = res["ratios"]["0.2"], res["ratios"]["0.6"]
        assert lo["kl"] is None and math.isfinite(lo["nll_per_pixel"])
        if bl.BASELINES[key][1]:  # pasted: the whole-image PSNR includes the copy bonus
            assert lo["psnr_whole"] >= lo["psnr_target"] - 1e-6
        if key == "baseline-mean":  # ignores the context: target-only PSNR cannot depend much on the ratio
            assert abs(lo["psnr_target"] - hi["psnr_target"]) < 1.0


def test_reproduce_puts_the_fitted_rules_in_table_1(monkeypatch, tmp_path):
    from ifanp import reproduce as rp

    x = (_digits(40) * 255).round().to(torch.uint8)
    monkeypatch.setattr(rp, "load_train_images", lambda dataset: x)
    monkeypatch.setattr(rp, "load_eval_images", lambda dataset, full_test=False: (x[:6], torch.arange(6)))
    table = rp.reproduce(models=("baseline-mean-paste", "baseline-gp"), seeds=(), nll_images=2, nll_samples=1,
                         progress=False, gp_images=4)
    rows = {r["model"]: r for r in table["rows"]}
    assert rows["baseline-mean-paste"]["images"] == 6 and rows["baseline-gp"]["images"] == 4
    assert "first 4 images" in rows["baseline-gp"]["label"] and not table["missing"]
    assert all(r["parameters"] == 0 and "paper" not in r for r in table["rows"])
    rp.write_outputs(table, tmp_path)
    md = (tmp_path / "table.md").read_text()
    assert "context + mean image" in md and "fitted on training images only" in md
