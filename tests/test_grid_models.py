"""Properties of the image models built by ifanp.models.build (IFNP, IFANP and variants, VAE, set NPs)."""
import pytest
import torch

from ifanp.models import InputError, build, model_names
from ifanp.models.grid import VARIANTS, GridNP
from ifanp.pretrained import load_weights, save_weights

GRID = list(VARIANTS)
ALL = ["vae", "np", "anp", "cnp", *GRID]


def _batch(b=4, c=1, s=28, ratio=0.4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, s, s, generator=g)
    m = (torch.rand(b, 1, s, s, generator=g) < ratio).float()
    return x, m


def test_registry_names():
    for name in ["vae", "np", "anp", "ifnp", "ifanp-lpa", "ifanp-se", "ifanp-gca", "ifanp"]:
        assert name in model_names()


def test_ablation_variants_are_one_class_with_other_parts():
    models = {n: build(n) for n in GRID}
    assert all(type(m) is GridNP for m in models.values())
    assert not hasattr(models["ifnp"], "encoder2")
    assert models["ifanp-lpa"].gca is None and type(models["ifanp-lpa"].local).__name__ == "LocalPooledAttention"
    assert type(models["ifanp-se"].local).__name__ == "SqueezeExcite"
    assert models["ifanp-gca"].gca is not None and type(models["ifanp-gca"].local).__name__ == "Identity"
    assert models["ifanp"].gca is not None and type(models["ifanp"].local).__name__ == "LocalPooledAttention"


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32), (1, 64)])
def test_complete_shapes_and_prior(name, channels, size):
    torch.manual_seed(0)
    model = build(name, channels=channels, size=size)
    x, m = _batch(1, channels, size)
    out = model.complete(x, m, samples=2)
    assert out.mean.shape == (1, channels, size, size) and out.std.shape == out.mean.shape
    assert out.samples.shape == (2, 1, channels, size, size)
    assert (out.std > 0).all()
    empty = model.complete(x, torch.zeros_like(m))  # no context: the prior prediction
    assert torch.isfinite(empty.mean).all() and torch.isfinite(empty.std).all()


@pytest.mark.parametrize("name", GRID)
def test_kl_is_zero_when_the_context_is_the_whole_image(name):
    torch.manual_seed(0)
    model = build(name)
    x, _ = _batch()
    with torch.no_grad():
        kl_full = model.kl(x, torch.ones(4, 1, 28, 28))
        kl_part = model.kl(x, _batch()[1])
    torch.testing.assert_close(kl_full, torch.zeros(4), atol=1e-6, rtol=0)
    assert (kl_part > 0).all()


@pytest.mark.parametrize("name", ["ifnp", "ifanp"])
def test_elbo_is_below_the_importance_sampled_log_likelihood(name):
    """E[log (1/K) sum w_k] >= ELBO (Jensen); checked with a statistical tolerance on a trained-a-little model."""
    torch.manual_seed(0)
    model = build(name, sigma="learned", sigma_value=0.3)
    x, m = _batch(8, ratio=0.3)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for _ in range(15):  # move away from the initialisation so that q(z|full) != q(z|context)
        loss = model.loss(x, m).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    target = 1 - m
    with torch.no_grad():
        elbos = torch.stack([model.elbo(x, m, target, samples=1) for _ in range(200)])  # (200, B)
        iwae = torch.stack([model.log_likelihood(x, m, target, samples=64) for _ in range(20)])
    elbo_mean, elbo_se = elbos.mean(0), elbos.std(0) / 200**0.5
    iwae_mean, iwae_se = iwae.mean(0), iwae.std(0) / 20**0.5
    assert (elbo_mean <= iwae_mean + 4 * (elbo_se + iwae_se) + 1e-3).all()
    # and the gap is real where the posteriors differ (the estimator is not just the ELBO again)
    assert (iwae_mean - elbo_mean).mean() > 0


@pytest.mark.parametrize("name", ALL)
def test_every_parameter_gets_a_gradient_and_a_step_lowers_the_loss(name):
    torch.manual_seed(0)
    model = build(name)
    x, m = _batch(8)

    def loss_at_fixed_noise():
        torch.manual_seed(123)  # the same z samples before and after the step
        return model.loss(x, m).loss

    loss = loss_at_fixed_noise()
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
               or p.grad.abs().sum() == 0]
    assert not no_grad, f"parameters without gradient: {no_grad}"
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    opt.step()
    with torch.no_grad():
        assert loss_at_fixed_noise() < loss


@pytest.mark.parametrize("name", ALL)
def test_saved_and_reloaded_model_gives_identical_outputs(name, tmp_path):
    torch.manual_seed(0)
    model = build(name, channels=3, size=32).eval()
    x, m = _batch(2, 3, 32)
    save_weights(model, tmp_path / "w.safetensors")
    again = load_weights(tmp_path / "w.safetensors")
    a, b = model.complete(x, m), again.complete(x, m)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std)
    assert again.config == model.config


def test_context_changes_the_prediction_but_hidden_pixels_do_not():
    torch.manual_seed(0)
    model = build("ifanp").eval()
    x, m = _batch(2)
    base = model.complete(x, m).mean
    hidden_changed = model.complete(x + (1 - m) * (torch.rand_like(x) - x), m).mean
    torch.testing.assert_close(base, hidden_changed)
    ctx_changed = model.complete((x + 0.5 * m).clamp(0, 1), m).mean
    assert not torch.allclose(base, ctx_changed)


@pytest.mark.parametrize("bad,match", [
    (lambda: (torch.rand(1, 28, 28), torch.ones(1, 1, 28, 28)), "add the batch dimension"),
    (lambda: (torch.rand(2, 3, 28, 28), torch.ones(2, 1, 28, 28)), r"expects images \(B, 1, 28, 28\)"),
    (lambda: (torch.rand(2, 1, 32, 32), torch.ones(2, 1, 32, 32)), r"expects images \(B, 1, 28, 28\)"),
    (lambda: (torch.rand(2, 1, 28, 28), torch.ones(3, 1, 28, 28)), "one mask per image"),
    (lambda: (torch.rand(2, 1, 28, 28), torch.full((2, 1, 28, 28), 0.5)), "0 .missing. or 1"),
    (lambda: (torch.rand(2, 1, 28, 28) * 255, torch.ones(2, 1, 28, 28)), "Divide 8-bit images by 255"),
])
def test_bad_input_gives_a_clear_error(bad, match):
    model = build("ifanp")
    images, mask = bad()
    with pytest.raises(InputError, match=match):
        model.complete(images, mask)


def test_bad_names_and_options():
    with pytest.raises(ValueError, match="unknown model 'ifanpp'; choose one of"):
        build("ifanpp")
    with pytest.raises(InputError, match="unknown option"):
        build("ifanp", hiden=3)
    with pytest.raises(InputError, match="channels must be 1"):
        build("ifanp", channels=2)
    with pytest.raises(InputError, match="deterministic=True"):
        build("ifnp", gca=True)


@pytest.mark.parametrize("name", ["ifnp", "ifanp", "np", "vae"])
def test_cost_report(name):
    model = build(name)
    assert model.num_parameters() == sum(p.numel() for p in model.parameters()) > 0
    fwd, step = model.flops_per_image(), model.flops_per_image(training=True)
    assert 1e6 < fwd < step  # a training step (forward + backward) costs more than a forward pass


def test_local_residual_adds_the_local_module_to_its_input():
    """local_residual=True feeds features + local(features) to ConvEncoder2; off, only local(features)."""
    torch.manual_seed(0)
    plain = build("ifanp-se")
    residual = build("ifanp-se", local_residual=True)
    residual.load_state_dict(plain.state_dict())
    x, m = _batch()
    with torch.no_grad():
        feats, dens, _ = plain.encode(x, m)
        expected = plain.encoder2(feats + plain.local(feats))
        got = residual.deterministic(feats, dens)
        torch.testing.assert_close(got, masked_mean_tiled(expected, dens))
        assert not torch.allclose(got, plain.deterministic(feats, dens))
    with pytest.raises(InputError, match="local_residual"):
        build("ifanp-gca", local_residual=True)


def masked_mean_tiled(rep, density):
    from ifanp.models.modules import masked_avg_pool

    pooled = masked_avg_pool(rep, density)
    return pooled[:, :, None, None].expand_as(rep)


@pytest.mark.parametrize("name", ALL)
def test_predict_with_kl_equals_predict_and_kl(name):
    """evaluate() calls predict_with_kl; it must give what predict(samples=0) and kl give separately."""
    torch.manual_seed(0)
    model = build(name).eval()
    x, m = _batch(3)
    with torch.no_grad():
        means, stds = model.predict(x, m, samples=0)
        kl = model.kl(x, m)
        got_means, got_stds, got_kl = model.predict_with_kl(x, m)
    torch.testing.assert_close(got_means, means)
    torch.testing.assert_close(got_stds, stds)
    torch.testing.assert_close(got_kl, kl)
