"""hetero-mix: the per-pixel mixture head of ifanp.models.hetero, its NPF log-likelihood, PIT and --init."""
from __future__ import annotations

import math

import pytest
import torch

from ifanp.calibration import gaussian_pit, model_pit
from ifanp.models import build
from ifanp.models.hetero import max_log_likelihood_per_pixel
from ifanp.npf import init_from, npf_log_likelihood
from ifanp.pretrained import save_weights

TINY = {"widths": [4, 8, 8], "blocks": [1, 1], "setconv_channels": 2, "setconv_kernel": 5}


def _batch(seed: int = 0, n: int = 3, size: int = 16):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size, size, generator=g)
    x[x < 0.5] = 0.0  # an MNIST-like share of exact zeros
    m = (torch.rand(n, 1, size, size, generator=g) < 0.25).float()
    return x, m


def _scrambled(seed: int = 0):
    torch.manual_seed(seed)
    model = build("hetero-mix", size=16, **TINY).eval()
    with torch.no_grad():  # spread components and weights far from their initialisation
        model.out.weight.normal_(0, 1.0)
        model.out.bias.normal_(0, 2.0)
    return model


def test_every_pixels_mixture_is_a_density_under_the_cap():
    model = _scrambled()
    x, m = _batch()
    logw, mu, sd = model.mixture(x, m)
    assert logw.shape == mu.shape == sd.shape == (3, 4, 1, 16, 16)
    assert torch.allclose(logw.exp().sum(1), torch.ones(3, 1, 16, 16), atol=1e-5)
    assert sd.min() >= 0.01 - 1e-7
    # component 0 is the context value at a context pixel and black elsewhere, at the floor
    assert torch.equal(mu[:, 0], x * m) and torch.all(sd[:, 0] == 0.01)
    # the density integrates to one over y (Riemann sum on a fine grid) and never exceeds N(0 | 0, 0.01^2)
    ys = torch.linspace(-60, 60, 240001)
    dy = float(ys[1] - ys[0])
    with torch.no_grad():
        for b, i, j in [(0, 0, 0), (1, 5, 7), (2, 15, 3)]:
            lw, mu_, sd_ = logw[b, :, 0, i, j], mu[b, :, 0, i, j], sd[b, :, 0, i, j]
            dens = model.mixture_log_density(ys.view(-1, 1, 1, 1), lw.view(1, 4, 1, 1, 1).expand(len(ys), 4, 1, 1, 1),
                                             mu_.view(1, 4, 1, 1, 1), sd_.view(1, 4, 1, 1, 1)).exp().flatten()
            assert abs(float(dens.sum()) * dy - 1) < 1e-3
            assert float(dens.max().log()) <= max_log_likelihood_per_pixel() + 1e-4


def test_npf_log_likelihood_is_the_sum_of_the_mixture_log_densities():
    model = _scrambled(1)
    x, m = _batch(1)
    ll = npf_log_likelihood(model, x, m)["ll"]
    logw, mu, sd = model.mixture(x, m)
    logp = torch.stack([torch.distributions.Normal(mu[:, k], sd[:, k]).log_prob(x) for k in range(4)], 1)
    ref = torch.logsumexp(logw + logp, 1).sum(dim=(1, 2, 3))
    assert torch.allclose(ll, ref, atol=1e-2)
    assert float(ll.max()) <= 256 * max_log_likelihood_per_pixel() + 1e-3


def test_a_model_with_a_floor_below_the_protocols_is_refused():
    model = build("hetero-mix", size=16, std_floor=0.001, **TINY).eval()
    x, m = _batch()
    with pytest.raises(ValueError, match="floor"):
        npf_log_likelihood(model, x, m)


def test_a_confident_context_copy_earns_the_cap_at_context_pixels():
    model = build("hetero-mix", size=16, **TINY).eval()
    with torch.no_grad():  # all weight on component 0: the context value (black elsewhere) at the floor
        model.out.weight.zero_()
        model.out.bias.zero_()
        model.out.bias[-4] = 50.0
    x, m = _batch(2)
    with torch.no_grad():
        logp = model.pixel_log_density(x, m)
    cap = max_log_likelihood_per_pixel()
    assert torch.allclose(logp[m.bool()], torch.full_like(logp[m.bool()], cap), atol=1e-4)
    black = (m == 0) & (x == 0)
    assert torch.allclose(logp[black], torch.full_like(logp[black], cap), atol=1e-4)
    assert float(logp[(m == 0) & (x > 0.5)].max()) < -40  # a stroke outside the context: only the e^-50 of the others


@torch.no_grad()
def test_moments_and_pit_agree_with_samples_from_the_mixture():
    model = _scrambled(3)
    x, m = _batch(3, n=1, size=16)
    logw, mu, sd = model.mixture(x, m)
    mean, std = model.predict(x, m)
    g = torch.Generator().manual_seed(0)
    n = 200_000
    k = torch.multinomial(logw[0, :, 0, 4, 4].exp().detach(), n, replacement=True, generator=g)
    draws = mu[0, k, 0, 4, 4].detach() + sd[0, k, 0, 4, 4].detach() * torch.randn(n, generator=g)
    assert abs(float(draws.mean()) - float(mean[0, 0, 0, 4, 4])) < 0.01
    assert abs(float(draws.std()) - float(std[0, 0, 0, 4, 4])) < 0.01
    u = model.pixel_cdf(x, m)
    assert abs(float((draws <= x[0, 0, 4, 4]).float().mean()) - float(u[0, 0, 4, 4])) < 0.01
    pits = model_pit(model, x, m, targets="all")["pit"]
    assert torch.allclose(pits, u.flatten(), atol=1e-6)


def test_one_component_is_the_gaussian_model():
    torch.manual_seed(4)
    model = build("hetero-cnp", size=16, **TINY).eval()
    x, m = _batch(4)
    mean, std = model.predict(x, m)
    ref = torch.distributions.Normal(mean[0], std[0]).log_prob(x)
    assert torch.allclose(model.pixel_log_density(x, m), ref, atol=1e-4)
    assert torch.allclose(model.pixel_cdf(x, m), gaussian_pit(x, mean[0], std[0]), atol=1e-6)


def test_mixture_training_lowers_the_exact_nll_and_warmup_zero_is_the_exact_nll():
    torch.manual_seed(5)
    model = build("hetero-mix", size=16, **TINY)
    x, m = _batch(5, n=8)
    out = model.loss(x, m)
    assert torch.allclose(out.loss, out.nll) and math.isclose(float(out.nll), -float(npf_log_likelihood(model.eval(), x, m)["ll"].mean()), rel_tol=1e-4)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    before = float(model.loss(x, m).nll)
    for step in range(20):
        opt.zero_grad()
        model.loss(x, m, warmup=max(0.0, 1 - step / 10)).loss.backward()
        opt.step()
    assert float(model.loss(x, m).nll) < before - 20


def test_init_copies_the_matching_tensors_and_leaves_the_head_fresh(tmp_path):
    torch.manual_seed(6)
    src = build("hetero-cnp", size=16, **TINY)
    save_weights(src, tmp_path / "src.safetensors")
    torch.manual_seed(7)
    dst = build("hetero-mix", size=16, **TINY)
    head = dst.out.weight.clone()
    info = init_from(dst, str(tmp_path / "src.safetensors"))
    assert info["fresh"] == ["out.weight", "out.bias"] and len(info["sha256"]) == 64
    for k in info["copied"]:
        assert torch.equal(dst.state_dict()[k], src.state_dict()[k]), k
    assert torch.equal(dst.out.weight, head)
    with pytest.raises(ValueError, match="no tensor"):
        init_from(build("cnp", size=16), str(tmp_path / "src.safetensors"))


def test_breakdown_groups_add_up_to_the_image_log_likelihood():
    from ifanp.npf import evaluate_npf, ll_breakdown

    for name in ("hetero-mix", "hetero-cnp"):
        torch.manual_seed(8)
        model = build(name, size=16, **TINY).eval()
        imgs = (torch.rand(5, 1, 16, 16) * 255).to(torch.uint8)
        imgs[imgs < 128] = 0
        res = ll_breakdown(model, imgs, batch_size=2)
        g = res["groups"]
        assert math.isclose(sum(v["pixels_per_image"] for v in g.values()), 256)
        assert math.isclose(sum(v["nats_per_image"] for v in g.values()), res["ll_per_image"], rel_tol=1e-4)
        assert math.isclose(res["ll_per_image"], evaluate_npf(model, imgs)["ll_per_image"], rel_tol=1e-4)
        for v in g.values():
            assert v["lost_per_image"] >= -1e-3  # no pixel beats the cap


def test_without_the_fixed_component_every_component_is_learned():
    torch.manual_seed(9)
    model = build("hetero-mix", size=16, fixed_component=False, **TINY).eval()
    assert model.out.out_channels == 3 * 4
    x, m = _batch(9)
    with torch.no_grad():
        logw, mu, sd = model.mixture(x, m)
        assert logw.shape == mu.shape == (3, 4, 1, 16, 16) and sd.min() >= 0.01 - 1e-7
        assert not torch.equal(mu[:, 0], x * m)  # no component pinned to the context
        ll = npf_log_likelihood(model, x, m)["ll"]
    assert torch.allclose(ll, model.mixture_log_density(x, logw, mu, sd).sum(dim=(1, 2, 3)), atol=1e-3)


def test_evaluation_keeps_the_means_of_its_first_images_for_a_quick_recheck():
    from ifanp.npf import evaluate_npf

    model = build("hetero-mix", size=16, **TINY)
    imgs = (torch.rand(120, 1, 16, 16) * 255).to(torch.uint8)
    full = evaluate_npf(model, imgs, batch_size=50)
    first = full["ll_per_image_first"]
    assert set(first) == {"16", "100"}
    assert math.isclose(first["100"], evaluate_npf(model, imgs[:100])["ll_per_image"], rel_tol=1e-5)
    assert math.isclose(first["16"], evaluate_npf(model, imgs[:16], batch_size=7)["ll_per_image"], rel_tol=1e-5)


def test_record_writes_the_whole_split_number_and_the_temperature_into_the_entry(tmp_path, monkeypatch):
    import json

    import ifanp.pretrained as pre
    from ifanp import npf

    monkeypatch.setattr(pre, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(pre, "REGISTRY_FILE", tmp_path / "registry.json")
    g = torch.Generator().manual_seed(10)
    data = {s: (torch.rand(n, 1, 16, 16, generator=g) * 255).to(torch.uint8) for s, n in (("test", 30), ("train", 20))}
    for v in data.values():
        v[v < 140] = 0
    monkeypatch.setattr(npf, "load_mnist32", lambda split="test": data[split])
    torch.manual_seed(10)
    model = build("hetero-mix", size=16, **TINY).eval()
    pre.register_weights("mnist32-tiny", model, half=False, command="test")
    out = npf.record("mnist32-tiny", calib_images=10)
    entry = json.loads((tmp_path / "registry.json").read_text())["mnist32-tiny"]
    assert entry["command"] == "test" and entry["npf_test"]["images"] == 30
    assert math.isclose(entry["npf_test"]["ll_per_image"], npf.evaluate_npf(model, data["test"])["ll_per_image"], rel_tol=1e-5)
    assert entry["temperature"]["images"] == 10 and 0.3 <= entry["temperature"]["tau"] <= 1.5
    assert out["npf_test"] == entry["npf_test"]
    with pytest.raises(ValueError, match="not in the registry"):
        npf.record("mnist32-absent", model=model, calib_images=10)
