"""Properties of the image models built by ifanp.models.build (IFNP, IFANP and variants, VAE, set NPs)."""
import math

import pytest
import torch
from torch.distributions import Normal

from ifanp.evaluate import evaluate
from ifanp.losses import NPOutput, np_elbo_loss, predictive_log_likelihood
from ifanp.models import InputError, build, model_names
from ifanp.models.grid import VARIANTS, GridNP
from ifanp.pretrained import load_weights, save_weights

# The CPU-sized variants; the faithful full-resolution ones ("-full", "-paper": the same class with other
# sizes) are checked once each in test_faithful_variants_run, to keep the suite within its CI budget.
GRID = [n for n in VARIANTS if not n.endswith(("-full", "-paper"))]
FAITHFUL = [n for n in VARIANTS if n not in GRID]
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


@pytest.mark.parametrize("name", ALL)
def test_context_changes_the_prediction_but_hidden_pixels_do_not(name):
    """Pixels where mask = 0 must not reach the prediction, also through ifanp-plus's skip path and set
    convolution, which read the image at full resolution; the context pixels must."""
    torch.manual_seed(0)
    model = build(name).eval()
    x, m = _batch(2)
    base = model.complete(x, m, samples=0)
    hidden = x + (1 - m) * (torch.rand_like(x) - x)
    changed = model.complete(hidden, m)
    assert torch.equal(base.mean, changed.mean) and torch.equal(base.std, changed.std)
    torch.manual_seed(1)
    drawn = model(x, m, samples=3).mean
    torch.manual_seed(1)
    assert torch.equal(drawn, model(hidden, m, samples=3).mean)
    ctx_changed = model.complete((x + 0.5 * m).clamp(0, 1), m).mean
    assert (base.mean - ctx_changed).abs().max() > 1e-5


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


# ---- the one forward pass and what is derived from it ---------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_forward_with_fixed_eps_is_deterministic(name):
    """z = mean + std * eps: the output is a function of (images, mask, eps); eps = 0 is the mean of
    q(z | context), which is what samples=0 decodes; other eps give other completions."""
    torch.manual_seed(0)
    model = build(name).eval()
    x, m = _batch(3)
    d = model.z_dim or 1
    eps = torch.randn(4, 3, d, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        a, b = model(x, m, eps), model(x, m, eps.clone())
        assert a.mean.shape == a.std.shape == (4, 3, 1, 28, 28)
        assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std)
        at_mean = model(x, m)
        zero = model(x, m, torch.zeros(1, 3, d))
        torch.testing.assert_close(zero.mean, at_mean.mean, rtol=0, atol=1e-6)
        if model.z_dim is None:  # the CNP: one prediction, repeated for every row of eps
            assert torch.equal(a.mean, at_mean.mean.expand_as(a.mean))
        else:
            q = at_mean.q_context
            torch.testing.assert_close(a.z, q.mean + q.stddev * eps)
            assert (a.mean[0] - a.mean[1]).abs().max() > 1e-6
            # samples=S without eps draws eps ~ N(0, I) from the global generator: the same as passing it
            torch.manual_seed(7)
            drawn = model(x, m, samples=4)
            torch.manual_seed(7)
            torch.testing.assert_close(drawn.mean, model(x, m, torch.randn(4, 3, d)).mean)


@pytest.mark.parametrize("name", ALL)
def test_public_methods_are_the_forward_output(name):
    """complete, predict, kl, loss and evaluate() read the one forward pass (no second copy of the skeleton)."""
    torch.manual_seed(0)
    model = build(name).eval()
    x, m = _batch(3)
    with torch.no_grad():
        out = model(x, m, full=True)
        done = model.complete(x, m)
        assert torch.equal(done.mean, out.mean[0]) and torch.equal(done.std, out.std[0])
        assert torch.equal(model.predict(x, m)[0], out.mean)
        assert torch.equal(model.kl(x, m), out.kl)
        assert out.kl.shape == (3,) and (out.kl >= 0).all()
        assert (out.kl > 0).all() == model.latent  # only the Eq. 6 latent models have a KL
        images = (x * 255).round().to(torch.uint8)
        res = evaluate(model, images, torch.arange(3), ratios=(0.4,), nll_samples=0, progress=False)["ratios"]["0.4"]
        assert (res["kl"] is not None) == model.latent


@pytest.mark.parametrize("name", ["ifnp", "ifanp-plus", "np", "vae", "cnp"])
def test_loss_is_eq6_of_the_forward_output(name):
    """loss = KL(q(z|full) || q(z|context)) + (1/K) sum_k sum_pixels [log(sigma sqrt(2 pi)) + (y - mu_k)^2 / (2 sigma^2)]
    with z_k ~ q(z | full image), written out here with the Gaussian densities by hand."""
    torch.manual_seed(0)
    model = build(name, **({"samples": 3} if name.startswith("ifnp") else {}))
    x, m = _batch(2)
    torch.manual_seed(11)
    got = model.loss(x, m)
    torch.manual_seed(11)
    out = model(x, m, samples=model.train_samples, z_from="full")
    mu, sd = out.mean, out.std
    nll = (torch.log(sd * math.sqrt(2 * math.pi)) + (x - mu) ** 2 / (2 * sd**2)).sum((2, 3, 4)).mean(0)
    if model.latent:
        qf, qc = out.q_full, out.q_context
        kl = (torch.log(qc.scale / qf.scale) + (qf.scale**2 + (qf.loc - qc.loc) ** 2) / (2 * qc.scale**2) - 0.5).sum(-1)
        # the training z are draws from q(z | full image), not from q(z | context)
        with torch.no_grad():
            zero = model(x, m, torch.zeros(1, 2, model.z_dim), z_from="full")
        torch.testing.assert_close(zero.z[0], qf.loc)
        assert not torch.allclose(qf.loc, qc.loc)
    elif out.prior is not None:  # the VAE: KL(q(z | context) || N(0, I)), weight beta = 1
        q = out.q_context
        kl = (-torch.log(q.scale) + (q.scale**2 + q.loc**2) / 2 - 0.5).sum(-1)
    else:
        kl = torch.zeros(2)
    torch.testing.assert_close(got.nll, nll.mean())
    torch.testing.assert_close(got.kl, kl.mean())
    torch.testing.assert_close(got.loss, (nll + kl).mean())
    if isinstance(model, GridNP):  # train_targets="missing": only the pixels outside the context count
        model.cfg["train_targets"] = "missing"
        torch.manual_seed(11)
        missing = model.loss(x, m)
        per_pixel = torch.log(sd * math.sqrt(2 * math.pi)) + (x - mu) ** 2 / (2 * sd**2)
        torch.testing.assert_close(missing.nll, (per_pixel * (1 - m)).sum((2, 3, 4)).mean(0).mean())


def test_eq6_on_a_hand_computed_case():
    """Two pixels, one latent dimension, K = 2, numbers worked out on paper:
    KL(N(1, 1) || N(0, 2^2)) = log 2 + (1 + 1) / 8 - 1/2; each pixel's -log N(y | mu, 0.5^2) =
    log(0.5 sqrt(2 pi)) + (y - mu)^2 / 0.5."""
    y = torch.tensor([[[[0.0, 1.0]]]])  # (B=1, C=1, H=1, W=2)
    mean = torch.tensor([[[[[0.0, 0.0]]]], [[[[1.0, 1.0]]]]])  # K=2 rows: errors (0, 1) and (1, 0)
    std = torch.full_like(mean, 0.5)
    out = NPOutput(mean, std, z=torch.zeros(2, 1, 1), q_context=Normal(torch.zeros(1, 1), torch.full((1, 1), 2.0)),
                   q_full=Normal(torch.ones(1, 1), torch.ones(1, 1)))
    per_pixel = math.log(0.5 * math.sqrt(2 * math.pi))
    nll = 2 * per_pixel + 1 / 0.5  # each row: one exact pixel and one off by 1; the mean of the 2 rows
    kl = math.log(2) + 2 / 8 - 0.5
    loss, got_nll, got_kl = np_elbo_loss(out, y)
    assert float(got_nll) == pytest.approx(nll, abs=1e-6)
    assert float(got_kl) == pytest.approx(kl, abs=1e-6)
    assert float(loss) == pytest.approx(nll + kl, abs=1e-6)
    # only the first pixel as target: -log N(0 | 0, .) and -log N(0 | 1, .), averaged
    targets = torch.tensor([[[[1.0, 0.0]]]])
    assert float(np_elbo_loss(out, y, targets)[1]) == pytest.approx(per_pixel + 0.5 / 0.5, abs=1e-6)
    # without a latent the loss is the exact -log p, and the predictive log-likelihood its negative
    det = NPOutput(mean[:1], std[:1])
    assert float(np_elbo_loss(det, y)[0]) == pytest.approx(2 * per_pixel + 2.0, abs=1e-6)
    assert float(predictive_log_likelihood(det, y)) == pytest.approx(-(2 * per_pixel + 2.0), abs=1e-6)


@pytest.mark.parametrize("name", ["ifnp", "ifanp", "ifanp-plus", "np", "anp"])
def test_kl_closed_form_equals_monte_carlo(name):
    """The KL that evaluate() reports, KL(q(z|full) || q(z|context)) in closed form, equals the Monte-Carlo
    mean of log q(z|full) - log q(z|context) over z ~ q(z|full) (the other direction would not)."""
    torch.manual_seed(0)
    model = build(name).eval()
    x, _ = _batch(2)
    m = torch.zeros(2, 1, 28, 28)
    m[..., :4] = 1  # the context: the four left columns, unlike the whole image
    with torch.no_grad():  # sharpen q(z | .) so that the two posteriors differ clearly (KL of a nat or more)
        last = model.encoder3[-1] if isinstance(model, GridNP) else model.net.latent_path.head.rest[-1]
        last.weight.mul_(20.0)
        out = model(x, m, full=True)
        z = out.q_full.mean + out.q_full.stddev * torch.randn(20000, *out.q_full.mean.shape)
        log_ratio = (out.q_full.log_prob(z) - out.q_context.log_prob(z)).sum(-1)  # (S, B)
    mc, se = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(log_ratio.shape[0])
    assert (out.kl > 0.5).all(), out.kl
    assert ((mc - out.kl).abs() < 5 * se + 1e-4).all(), (mc, out.kl, se)


@pytest.mark.parametrize("name", FAITHFUL)
def test_faithful_variants_run(name):
    """The full-resolution configurations are GridNP too: one completion and one loss, finite, right shapes."""
    torch.manual_seed(0)
    model = build(name)
    assert type(model) is GridNP and model.cfg["down"] == 1
    x, m = _batch(1)
    out = model.complete(x, m, samples=1)
    assert out.mean.shape == (1, 1, 28, 28) and out.samples.shape == (1, 1, 1, 28, 28)
    loss = model.loss(x, m).loss
    assert torch.isfinite(loss)
    loss.backward()  # the local pooling window and the deconvolutional z path are used, not just built
    assert not [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    hidden = x + (1 - m) * (torch.rand_like(x) - x)  # the local pool and the positions read context pixels only
    assert torch.equal(model.complete(hidden, m).mean, out.mean)


@pytest.mark.parametrize("size,down", [(28, 1), (28, 2), (28, 4), (32, 1), (32, 2), (64, 1)])
def test_pool_window_and_deconv_decoder_fit_every_size(size, down):
    """SPEC 4.2's local window and the deconvolutional z path at every resolution the package builds."""
    torch.manual_seed(0)
    res = size // down
    window = 4 if res % 4 == 0 else 2 if res % 2 == 0 else 1
    model = build("ifanp", size=size, down=down, pool_window=window, z_decoder="deconv")
    x, m = _batch(2, 1, size)
    out = model(x, m, samples=2, full=True)
    assert out.mean.shape == (2, 2, 1, size, size) and torch.isfinite(out.mean).all()
    # two draws of z give two different completions: z reaches the output through the upsampling path
    assert (out.mean[0] - out.mean[1]).abs().max() > 1e-6


def test_pool_window_keeps_where_the_context_is():
    """With the global mean of SPEC 4.2 and no positions, the latent path of a context and of the same context
    mirrored left-right differ only through the borders' zero padding, a little; with the local window they
    differ as much as the features do."""
    torch.manual_seed(0)
    x, m = _batch(4)
    x, m = x * (torch.arange(28) < 10), m * (torch.arange(28) < 10)  # context on the left
    flip = (x.flip(-1), m.flip(-1))
    gaps = {}
    for window in (0, 4):
        torch.manual_seed(0)
        model = build("ifnp", down=1, pool_window=window).eval()
        with torch.no_grad():
            a, b = model(x, m).q_context.loc, model(*flip).q_context.loc
        gaps[window] = float((a - b).abs().mean() / a.abs().mean())
    assert gaps[4] > 3 * gaps[0], gaps


def test_bad_pool_window_and_z_decoder():
    with pytest.raises(InputError, match="pool_window must be 0"):
        build("ifnp", down=1, pool_window=3)
    with pytest.raises(InputError, match="z_decoder must be"):
        build("ifnp", z_decoder="mlp")
