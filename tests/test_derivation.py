"""Eq. 4-5 checked both ways, through the public model API (``model.elbo``, ``model.log_likelihood`` and the
forward pass with fixed noise): on an IFNP with a one-dimensional latent, log p(y_T | context) =
log of the integral of q(z | context) p(y_T | z) dz is computed by quadrature, so every estimate has an exact
value to meet, not only a bound to stay under.

* the ELBO (Eq. 5) lies below the exact value, and its mean does not depend on K (K only lowers its variance);
* at K = 1 the importance-sampled estimate is the ELBO's integrand, so their means agree;
* the importance-sampled estimate rises with K (in the mean) and reaches the exact value.
"""
import math

import pytest
import torch

from ifanp.models import build

B = 2


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = build("ifnp", size=12, z_dim=1, hidden=8, stem=8).eval()
    with torch.no_grad():  # let z matter: a random decoder barely reads it
        model.dec_z.weight.mul_(3.0)
        model.encoder3[-1].weight.mul_(40.0)  # and q(z | context) differ from q(z | full image)
    g = torch.Generator().manual_seed(1)
    images = torch.rand(B, 1, 12, 12, generator=g)
    mask = (torch.rand(B, 1, 12, 12, generator=g) < 0.3).float()
    target = 1 - mask
    with torch.no_grad():
        eps = torch.linspace(-10, 10, 2001, dtype=torch.float64)
        logp = []
        for chunk in eps.split(500):
            e = chunk.float()[:, None, None].expand(-1, B, 1)
            out = model(images, mask, e, z_from="context")
            ll = torch.distributions.Normal(out.mean, out.std).log_prob(images) * target
            logp.append(ll.sum(dim=(2, 3, 4)).double())
        logp = torch.cat(logp)  # (S, B): log p(y_T | z(eps))
        log_w = logp + torch.distributions.Normal(0.0, 1.0).log_prob(eps)[:, None] + math.log(float(eps[1] - eps[0]))
        exact = torch.logsumexp(log_w, dim=0)  # (B,) log of the integral over z = mu_C + sigma_C eps
        # the integrand must have died out inside the grid, or the quadrature is not the integral
        assert float((log_w[[0, -1]] - exact).max()) < -20
    return model, images, mask, target, exact.float()


def _draws(fn, reps):
    torch.manual_seed(123)
    with torch.no_grad():
        return torch.stack([fn() for _ in range(reps)])  # (reps, B)


def _agree(a, b, k=4.0):
    """Means of two sets of independent draws (reps, B) agree within k standard errors, image by image."""
    se = (a.var(0) / len(a) + b.var(0) / len(b)).sqrt()
    return bool(((a.mean(0) - b.mean(0)).abs() <= k * se + 1e-4).all())


def test_elbo_lies_below_the_exact_log_likelihood(setup):
    model, x, m, t, exact = setup
    elbo = _draws(lambda: model.elbo(x, m, target_mask=t, samples=64), 5).mean(0)
    assert (elbo < exact).all()


def test_elbo_mean_does_not_depend_on_k(setup):
    model, x, m, t, _ = setup
    one = _draws(lambda: model.elbo(x, m, target_mask=t, samples=1), 400)
    many = _draws(lambda: model.elbo(x, m, target_mask=t, samples=64), 40)
    assert _agree(one, many)
    assert (many.std(0) < one.std(0)).all()  # K only lowers the variance


def test_importance_estimate_at_k1_is_the_elbo_in_the_mean(setup):
    model, x, m, t, _ = setup
    is1 = _draws(lambda: model.log_likelihood(x, m, target_mask=t, samples=1), 400)
    elbo = _draws(lambda: model.elbo(x, m, target_mask=t, samples=64), 40)
    assert _agree(is1, elbo)


def test_importance_estimate_rises_with_k_and_reaches_the_exact_value(setup):
    model, x, m, t, exact = setup
    means, ses = [], []
    for k, reps in ((1, 200), (16, 50), (256, 10), (4096, 3)):
        d = _draws(lambda k=k: model.log_likelihood(x, m, target_mask=t, samples=k), reps)
        means.append(d.mean(0))
        ses.append(d.std(0) / math.sqrt(reps))
    for lo, hi, s_lo, s_hi in zip(means, means[1:], ses, ses[1:]):
        assert (hi >= lo - 4 * (s_lo + s_hi) - 1e-4).all()  # the bound tightens with K, in the mean
    gap = exact - means[-1]
    assert (gap.abs() < 0.25 * (exact - means[0]).abs() + 0.1).all()  # K = 4096 meets the quadrature
    assert (exact - means[0] > 0.2).all()  # and the check has something to show: K = 1 is well below it
