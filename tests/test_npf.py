"""The Neural Process Family protocol (ifanp.npf) and the heteroscedastic 32x32 model (ifanp.models.hetero)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from ifanp.models import build
from ifanp.models.hetero import max_log_likelihood_per_pixel
from ifanp.npf import (
    NPF_ANCHORS,
    evaluate_npf,
    npf_log_likelihood,
    npf_masks,
    npf_table,
    resize_like_npf,
    warmup_weight,
)
from ifanp.pretrained import load_weights, save_weights

TINY = {"widths": [4, 8, 8], "blocks": [1, 1], "setconv_channels": 2, "setconv_kernel": 5}


def test_context_counts_are_uniform_in_range_and_reproducible():
    m = npf_masks(4000, 32, seed=5)
    counts = m.sum(dim=(1, 2, 3))
    assert counts.min() >= 0 and counts.max() <= int(0.3 * 1024)
    assert counts.max() >= 300 and counts.min() <= 5  # the whole range is used
    assert abs(float(counts.mean()) - 0.3 * 1024 / 2) < 6  # the mean of a uniform on 0..307
    assert torch.equal(m, npf_masks(4000, 32, seed=5))
    assert not torch.equal(m, npf_masks(4000, 32, seed=6))
    assert torch.equal(npf_masks(10, 32, seed=5), m[:10])  # an image's context does not depend on how many follow


def test_resize_is_pils_bilinear_to_32():
    g = torch.Generator().manual_seed(0)
    imgs = (torch.rand(3, 1, 28, 28, generator=g) * 255).to(torch.uint8)
    out = resize_like_npf(imgs)
    assert out.shape == (3, 1, 32, 32) and out.dtype == torch.uint8
    for i in range(3):
        ref = np.asarray(Image.fromarray(imgs[i, 0].numpy(), mode="L").resize((32, 32), Image.BILINEAR))
        assert np.array_equal(out[i, 0].numpy(), ref)
    flat = resize_like_npf(torch.full((1, 1, 28, 28), 77, dtype=torch.uint8))
    assert torch.all(flat == 77)


def test_log_likelihood_is_the_gaussian_sum_with_the_floor():
    model = build("hetero-cnp", size=16, **TINY).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1, 16, 16, generator=g)
    m = (torch.rand(3, 1, 16, 16, generator=g) < 0.2).float()
    ll = npf_log_likelihood(model, x, m)["ll"]
    mean, std = model.predict(x, m)
    ref = torch.distributions.Normal(mean[0], std[0].clamp_min(0.01)).log_prob(x).sum(dim=(1, 2, 3))
    assert torch.allclose(ll, ref, atol=1e-3)
    assert float(ll.max()) <= 256 * max_log_likelihood_per_pixel() + 1e-3


def test_latent_models_get_the_mixture_and_the_importance_sampled_estimate():
    model = build("ifnp", size=16, hidden=8, stem=8, z_dim=4, decoder_layers=1).eval()
    x = torch.rand(2, 1, 16, 16)
    m = (torch.rand(2, 1, 16, 16) < 0.3).float()
    torch.manual_seed(0)
    out = npf_log_likelihood(model, x, m, samples=8)
    assert set(out) == {"ll", "ll_is"} and out["ll"].shape == (2,)
    # one sample: the mixture is the Gaussian log-likelihood of that draw
    torch.manual_seed(1)
    means, stds = model.predict(x, m, samples=1)
    torch.manual_seed(1)
    one = npf_log_likelihood(model, x, m, samples=1)["ll"]
    ref = torch.distributions.Normal(means[0], stds[0].clamp_min(0.01)).log_prob(x).sum(dim=(1, 2, 3))
    assert torch.allclose(one, ref, atol=1e-3)


def test_evaluate_npf_and_table():
    model = build("hetero-cnp", size=16, **TINY)
    imgs = (torch.rand(7, 1, 16, 16) * 255).to(torch.uint8)
    res = evaluate_npf(model, imgs, batch_size=3)
    assert res["images"] == 7 and math.isfinite(res["ll_per_image"])
    assert res == {**res, "ll_is_per_image": None}
    table = npf_table([res])
    for name, v in NPF_ANCHORS.items():
        assert name in table and f"{v:.1f}" in table
    with pytest.raises(ValueError):
        evaluate_npf(model, (torch.rand(2, 1, 20, 20) * 255).to(torch.uint8))


def test_std_is_at_least_the_floor():
    model = build("hetero-cnp", size=16, **TINY)
    with torch.no_grad():
        model.out.bias[1] = -50.0  # push the std head far below zero
    c = model.complete(torch.rand(2, 1, 16, 16), (torch.rand(2, 1, 16, 16) < 0.3).float())
    assert c.std.min() >= 0.01 - 1e-7
    assert c.mean.shape == c.std.shape == (2, 1, 16, 16)


def test_a_training_step_lowers_the_loss_with_and_without_warmup():
    for warm in (1.0, 0.0):
        torch.manual_seed(0)
        model = build("hetero-cnp", size=16, **TINY)
        x = torch.rand(8, 1, 16, 16)
        m = (torch.rand(8, 1, 16, 16) < 0.3).float()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        before = float(model.loss(x, m, warmup=warm).loss)
        for _ in range(5):
            opt.zero_grad()
            model.loss(x, m, warmup=warm).loss.backward()
            opt.step()
        assert float(model.loss(x, m, warmup=warm).loss) < before


def test_warmup_keeps_the_std_out_of_the_means_gradient():
    # At warmup=1 the mean learns against a fixed sigma: its gradient is (mu - y) / 0.1^2 whatever the std head says.
    torch.manual_seed(0)
    model = build("hetero-cnp", size=16, **TINY)
    x = torch.rand(2, 1, 16, 16)
    m = (torch.rand(2, 1, 16, 16) < 0.3).float()
    grads = []
    for bias in (0.0, -8.0):
        with torch.no_grad():
            model.out.bias[1] = bias
        model.zero_grad()
        model.loss(x, m, warmup=1.0).loss.backward()
        grads.append(model.out.weight.grad[0].clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-5)
    assert warmup_weight(0, 10, 10) == 1.0 and warmup_weight(15, 10, 10) == 0.5 and warmup_weight(30, 10, 10) == 0.0


def test_saved_and_reloaded_model_gives_identical_outputs(tmp_path):
    model = build("hetero-cnp", size=16, **TINY).eval()
    x = torch.rand(2, 1, 16, 16)
    m = (torch.rand(2, 1, 16, 16) < 0.3).float()
    save_weights(model, tmp_path / "m.safetensors")
    again = load_weights(tmp_path / "m.safetensors")
    a, b = model.complete(x, m), again.complete(x, m)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std)
    assert again.config == model.config


def test_at_size_keeps_the_weights_of_a_convolutional_model():
    from ifanp.npf import at_size

    model = build("hetero-cnp", size=16, **TINY).eval()
    small = at_size(model, 12)
    assert small.size == 12 and small.config["widths"] == TINY["widths"]
    for (k, a), (_, b) in zip(model.state_dict().items(), small.state_dict().items()):
        assert torch.equal(a, b), k
    assert small.complete(torch.rand(1, 1, 12, 12), torch.ones(1, 1, 12, 12)).mean.shape == (1, 1, 12, 12)
