"""LPA, GCA, SE and the density-normalised pooling against the paper's worked example and slow references."""
import math

import pytest
import torch
import torch.nn.functional as F

from ifanp.models.modules import (
    GlobalCrossAttention,
    LocalPooledAttention,
    SqueezeExcite,
    coordinate_grid,
    masked_avg_pool,
)


def test_lpa_fig3_centre_weights_are_over_81():
    """Two zero-padded 3x3 mean poolings give the centre weights (4,6,4; 6,9,6; 4,6,4)/81 (SPEC section 9.2)."""
    lpa = LocalPooledAttention()
    weights = torch.empty(9)
    for i in range(9):  # the response of Output2's centre to each input x_i alone
        x = torch.zeros(1, 1, 3, 3)
        x.view(-1)[i] = 1.0
        _, out2 = lpa.pool_twice(x)
        weights[i] = out2[0, 0, 1, 1]
    expected = torch.tensor([4, 6, 4, 6, 9, 6, 4, 6, 4], dtype=torch.float32) / 81
    torch.testing.assert_close(weights, expected)
    assert math.isclose(float(weights.sum()), 49 / 81, rel_tol=1e-6)


def _slow_pool(x):
    b, c, h, w = x.shape
    out = torch.zeros_like(x)
    for i in range(h):
        for j in range(w):
            total = torch.zeros(b, c)
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    if 0 <= i + di < h and 0 <= j + dj < w:
                        total += x[:, :, i + di, j + dj]
            out[:, :, i, j] = total / 9  # zero padding counts in the divisor
    return out


def _slow_lpa(x, distance="feature"):
    o2 = _slow_pool(_slow_pool(x))
    b, c, h, w = x.shape
    out = torch.zeros_like(x)
    for n in range(b):
        for i in range(h):
            for j in range(w):
                logits, vals = [], []
                for di in (-1, 0, 1):
                    for dj in (-1, 0, 1):
                        ii, jj = i + di, j + dj
                        if 0 <= ii < h and 0 <= jj < w:
                            if distance == "feature":
                                d = ((o2[n, :, i, j] - o2[n, :, ii, jj]) ** 2).sum() / c
                            else:
                                d = torch.tensor(math.hypot(di, dj))
                            logits.append(-d)
                            vals.append(o2[n, :, ii, jj])
                a = torch.softmax(torch.stack(logits), 0)
                out[n, :, i, j] = (a[:, None] * torch.stack(vals)).sum(0)
    return out


@pytest.mark.parametrize("distance", ["feature", "spatial"])
def test_lpa_matches_loop_reference(distance):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6)
    torch.testing.assert_close(LocalPooledAttention(distance)(x), _slow_lpa(x, distance), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("distance", ["feature", "spatial"])
def test_lpa_forward_agrees_with_the_unfold_form_the_book_draws(distance):
    """forward (shifted views, conv pooling) and neighbour_weights (unfold, shown in the book) are one LPA,
    and the conv pooling equals avg_pool2d with zero padding, gradients included."""
    torch.manual_seed(1)
    lpa = LocalPooledAttention(distance)
    x = torch.randn(3, 4, 7, 9, requires_grad=True)
    _, out2 = lpa.pool_twice(x)
    torch.testing.assert_close(out2, F.avg_pool2d(F.avg_pool2d(x, 3, 1, 1), 3, 1, 1))
    neigh, weights = lpa.neighbour_weights(out2)
    via_unfold = (neigh * weights).sum(2).view_as(x)
    fast = lpa(x)
    torch.testing.assert_close(fast, via_unfold, atol=1e-6, rtol=1e-5)
    g_fast, = torch.autograd.grad(fast.square().sum(), x)
    g_unfold, = torch.autograd.grad(via_unfold.square().sum(), x)
    torch.testing.assert_close(g_fast, g_unfold, atol=1e-5, rtol=1e-4)


def test_lpa_fills_holes_of_sparse_context():
    x = torch.zeros(1, 1, 11, 11)
    x[0, 0, 5, 5] = 1.0
    out = LocalPooledAttention()(x)
    # two poolings and the 3x3 attention spread a single point exactly 3 pixels in each direction
    assert (out[0, 0, 2:9, 2:9] > 0).all()
    outside = torch.ones(11, 11, dtype=torch.bool)
    outside[2:9, 2:9] = False
    assert (out[0, 0][outside] == 0).all()


def _slow_gca(gca, values, key_mask, query_hw):
    b, c, hk, wk = values.shape
    heads, dh = gca.heads, gca.key_dim // gca.heads
    q = gca.theta(coordinate_grid(*query_hw))[0].reshape(gca.key_dim, -1)  # (dk, hw)
    k = gca.phi(coordinate_grid(hk, wk))[0].reshape(gca.key_dim, -1)  # (dk, h'w')
    out = torch.zeros(b, c, query_hw[0] * query_hw[1])
    for n in range(b):
        ctx = [j for j in range(hk * wk) if key_mask[n, 0].reshape(-1)[j] > 0]
        for h in range(heads):
            qs, ks = q[h * dh:(h + 1) * dh], k[h * dh:(h + 1) * dh]
            vs = values[n, h * (c // heads):(h + 1) * (c // heads)].reshape(c // heads, -1)
            for i in range(q.shape[1]):
                logits = torch.stack([qs[:, i] @ ks[:, j] / math.sqrt(dh) for j in ctx])
                a = torch.softmax(logits, 0)
                out[n, h * (c // heads):(h + 1) * (c // heads), i] = sum(a[t] * vs[:, j] for t, j in enumerate(ctx))
    return out.view(b, c, *query_hw)


@pytest.mark.parametrize("heads", [1, 2])
def test_gca_matches_loop_reference(heads):
    torch.manual_seed(1)
    gca = GlobalCrossAttention(channels=4, key_dim=8, heads=heads)
    values = torch.randn(2, 4, 3, 3)
    key_mask = (torch.rand(2, 1, 3, 3) < 0.5).float()
    key_mask[:, :, 0, 0] = 1  # at least one context key
    with torch.no_grad():
        fast = gca(values, key_mask, (4, 5))
        slow = _slow_gca(gca, values, key_mask, (4, 5))
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)


def test_masked_gca_ignores_values_at_non_context_keys():
    torch.manual_seed(2)
    gca = GlobalCrossAttention(channels=8, key_dim=16, heads=2)
    values = torch.randn(3, 8, 7, 7)
    key_mask = (torch.rand(3, 1, 7, 7) < 0.3).float()
    changed = values + 100 * torch.randn_like(values) * (1 - key_mask)
    with torch.no_grad():
        torch.testing.assert_close(gca(values, key_mask, (14, 14)), gca(changed, key_mask, (14, 14)))
        # ... while a change at a context key does change the output
        assert not torch.allclose(gca(values, key_mask, (14, 14)), gca(values + key_mask, key_mask, (14, 14)))


def test_gca_empty_context_gives_zeros_not_nan():
    gca = GlobalCrossAttention(channels=4, key_dim=8)
    out = gca(torch.randn(2, 4, 5, 5), torch.zeros(2, 1, 5, 5), (5, 5))
    assert torch.isfinite(out).all() and (out == 0).all()


@pytest.mark.parametrize("kernel", [None, 2, 4])
def test_density_normalised_pool_of_constant_image_is_the_constant(kernel):
    torch.manual_seed(3)
    for _ in range(5):
        value = float(torch.rand(()))
        image = torch.full((4, 3, 8, 8), value)
        mask = (torch.rand(4, 1, 8, 8) < torch.rand(4, 1, 1, 1)).float()
        mask[:, :, 0, 0] = 1  # non-empty context
        out = masked_avg_pool(image, mask, kernel)
        if kernel is None:
            torch.testing.assert_close(out, torch.full((4, 3), value))
        else:
            has = F.avg_pool2d(mask, kernel) > 0
            torch.testing.assert_close(out[has.expand_as(out)], torch.full_like(out, value)[has.expand_as(out)])
            assert (out[~has.expand_as(out)] == 0).all()


def test_masked_global_pool_is_the_mean_over_context_points():
    torch.manual_seed(4)
    feats = torch.randn(2, 5, 6, 6)
    mask = (torch.rand(2, 1, 6, 6) < 0.4).float()
    out = masked_avg_pool(feats, mask)
    for n in range(2):
        pts = feats[n].reshape(5, -1)[:, mask[n].reshape(-1) > 0]
        torch.testing.assert_close(out[n], pts.mean(1), atol=1e-5, rtol=1e-5)


def test_squeeze_excite_rescales_channels():
    torch.manual_seed(5)
    se = SqueezeExcite(32, reduction=16)
    x = torch.randn(2, 32, 4, 4)
    y = se(x)
    scale = y / x
    # one scale per (image, channel), in (0, 1)
    torch.testing.assert_close(scale, scale[:, :, :1, :1].expand_as(scale))
    assert ((scale > 0) & (scale < 1)).all()
