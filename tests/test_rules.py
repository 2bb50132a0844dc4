"""A completion rule wrapped as a model (ifanp.rules.CompletionRule) is scored, completed and drawn like any
image model: the numbers evaluate() reports for it are those of its formula."""
import math

import pytest
import torch

from ifanp.analysis import completion_mean, predictive_moments
from ifanp.evaluate import evaluate
from ifanp.models.base import InputError
from ifanp.rules import CompletionRule


def _images(n=12):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 1, 28, 28, generator=g) * 0.8 * 255).to(torch.uint8), torch.arange(n)


def test_evaluate_scores_a_rule_by_its_formula():
    images, idx = _images()
    offset = CompletionRule("offset", lambda x, m: x + 0.1, std=0.1)
    res = evaluate(offset, images, idx, ratios=(0.2, 0.6), nll_images=6, nll_samples=1, progress=False)
    for row in res["ratios"].values():
        assert row["psnr_whole"] == pytest.approx(20.0, abs=1e-3)  # MSE 0.01 everywhere
        # -log N(y | y + 0.1, 0.1^2) per pixel = log 0.1 + 0.5 + log(2 pi) / 2
        assert row["nll_per_pixel"] == pytest.approx(math.log(0.1) + 0.5 + 0.5 * math.log(2 * math.pi), abs=1e-4)
        assert row["kl"] is None
    assert res["parameters"] == 0


def test_copying_the_context_is_exact_on_it_and_the_std_map_is_used():
    images, idx = _images(4)
    x = images.float() / 255
    mask = (torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    std = torch.linspace(0.05, 0.5, 28).view(1, 1, 1, 28)
    rule = CompletionRule("copy", lambda y, m: y * m, std=std)
    pred = completion_mean(rule, x, mask)
    assert torch.equal(pred * mask, x * mask) and torch.equal(pred * (1 - mask), torch.zeros_like(x))
    _, s = predictive_moments(rule, x, mask, samples=5)  # no latent: the rule's own Gaussian
    torch.testing.assert_close(s, std.expand_as(x))
    means, stds = rule.predict(x, mask, samples=3)
    assert means.shape == (3, 4, 1, 28, 28) and torch.equal(means[0], means[2])


def test_a_rule_of_the_wrong_shape_or_training_it_is_one_clear_error():
    x, m = torch.rand(2, 1, 28, 28), torch.ones(2, 1, 28, 28)
    with pytest.raises(InputError, match="shape"):
        CompletionRule("bad", lambda y, mm: y[:, :, :10]).predict(x, m)
    with pytest.raises(InputError, match="nothing to train"):
        CompletionRule("mean", lambda y, mm: y).loss(x, m)
