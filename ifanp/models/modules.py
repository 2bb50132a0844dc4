"""Building blocks of the grid models: density-normalised masked pooling (the paper's
Mask + Avgpool + Division), local pooled attention (LPA, Eq. 7-8), global cross-attention
(GCA, Eq. 9-10 as cross-attention) and the squeeze-and-excitation block (Hu et al. 2018).

Every block works on batched feature maps ``(B, c, h, w)``; nothing loops over pixels.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def coordinate_grid(height: int, width: int, device=None, dtype=torch.float32) -> Tensor:
    """Pixel-centre coordinates in [-1, 1]^2 as a (1, 2, height, width) map (row, column)."""
    rows = torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype)
    cols = torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=0)
    return grid.unsqueeze(0)


def masked_avg_pool(features: Tensor, mask: Tensor, kernel: int | None = None, eps: float = 1e-6) -> Tensor:
    """Mask + Avgpool + Division: the mean of ``features`` over the positions where ``mask`` is 1.

        r = AvgPool(H * 1_{M+}) / (AvgPool(1_{M+}) + eps)

    With ``kernel=None`` the pool is global and the result is (B, c): exactly the neural-process mean
    aggregator over context points (SPEC section 4.2). With an integer ``kernel`` the pool is local
    (window = stride = kernel) and the result is a (B, c, h/kernel, w/kernel) map: the on-grid
    density normalisation of ConvCNP (Gordon et al. 2020). Cells without any context get 0.
    ``mask`` is (B, 1, h, w) and may hold fractional weights (a pooled mask).
    """
    if kernel is None:
        num = (features * mask).sum(dim=(-2, -1))
        den = mask.sum(dim=(-2, -1))
    else:
        num = F.avg_pool2d(features * mask, kernel)
        den = F.avg_pool2d(mask, kernel)
    return num / (den + eps) * (den > 0)


class LocalPooledAttention(nn.Module):
    """LPA (SPEC section 5.2, paper Fig. 3 and Eq. 7-8).

    Two zero-padded 3x3 mean poolings spread the sparse context features into the holes around them
    (Output1, Output2); then each position takes a softmax-weighted sum of its 3x3 neighbourhood of
    Output2, with weights a_ij = softmax_j(-d(x_i, x_j)) over the 9 neighbours (Eq. 8). The default
    distance is the content distance ||O2(i) - O2(j)||^2 / c (a bilateral-filter-like attention);
    ``distance="spatial"`` uses the distance between positions instead (a fixed blur).
    Neighbours outside the image get zero weight. The module has no learnable parameters.

    Speed: the poolings are depthwise 3x3 convolutions with weights 1/9 (the same numbers as a
    zero-padded ``avg_pool2d``, several times faster on a CPU), and the neighbourhood is read as nine
    shifted views of the zero-padded Output2 instead of an ``unfold`` copy; this halves the cost of a
    training step's LPA (``benchmarks/bench_models.py``). ``neighbour_weights`` keeps the ``unfold``
    form for the book's pictures; a test checks that the two agree.
    """

    OFFSETS = tuple((di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1))  # row-major, as unfold orders them

    def __init__(self, distance: str = "feature"):
        super().__init__()
        if distance not in ("feature", "spatial"):
            raise ValueError(f"LPA distance must be 'feature' or 'spatial', got {distance!r}.")
        self.distance = distance
        offsets = torch.tensor([self.OFFSETS], dtype=torch.float32)
        self.register_buffer("spatial_logits", -offsets.norm(dim=-1).view(1, 1, 9, 1), persistent=False)

    @staticmethod
    def pool(x: Tensor) -> Tensor:
        """One zero-padded 3x3 mean pooling (``avg_pool2d(x, 3, 1, 1)`` with ``count_include_pad``)."""
        c = x.shape[1]
        return F.conv2d(x, x.new_full((c, 1, 3, 3), 1.0 / 9.0), padding=1, groups=c)

    def pool_twice(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Output1 and Output2 of Fig. 3: two 3x3 zero-padded mean poolings."""
        out1 = self.pool(x)
        return out1, self.pool(out1)

    def _inside(self, h: int, w: int, like: Tensor) -> Tensor:
        """(1, 9, h, w): True where the neighbour at each offset lies inside the image."""
        pad = F.pad(like.new_ones(1, 1, h, w), (1, 1, 1, 1))
        return torch.cat([pad[:, :, 1 + di:1 + di + h, 1 + dj:1 + dj + w] for di, dj in self.OFFSETS], 1) > 0

    def neighbour_weights(self, out2: Tensor) -> tuple[Tensor, Tensor]:
        """The 3x3 neighbourhoods of ``out2`` (B, c, 9, h*w) and their attention weights (B, 1, 9, h*w)."""
        b, c, h, w = out2.shape
        neigh = F.unfold(out2, kernel_size=3, padding=1).view(b, c, 9, h * w)
        inside = self._inside(h, w, out2).view(1, 1, 9, h * w)
        if self.distance == "feature":
            centre = out2.reshape(b, c, 1, h * w)
            logits = -((neigh - centre) ** 2).sum(1, keepdim=True) / c
        else:
            logits = self.spatial_logits.expand(b, 1, 9, h * w)
        logits = logits.masked_fill(~inside, float("-inf"))
        return neigh, torch.softmax(logits, dim=2)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        _, out2 = self.pool_twice(x)
        padded = F.pad(out2, (1, 1, 1, 1))
        shifted = [padded[:, :, 1 + di:1 + di + h, 1 + dj:1 + dj + w] for di, dj in self.OFFSETS]
        if self.distance == "feature":
            logits = torch.cat([-((s - out2) ** 2).sum(1, keepdim=True) for s in shifted], 1) / c
        else:
            logits = self.spatial_logits.view(1, 9, 1, 1).to(x.dtype).expand(b, 9, h, w)
        weights = torch.softmax(logits.masked_fill(~self._inside(h, w, x), float("-inf")), dim=1)  # (B, 9, h, w)
        out = shifted[0] * weights[:, :1]
        for k in range(1, 9):
            out = out + shifted[k] * weights[:, k:k + 1]
        return out


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation block (Hu et al. 2018): s = sigmoid(W2 ReLU(W1 GAP(U))), U_c <- s_c U_c."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(-2, -1))))))
        return x * s[:, :, None, None]


class GlobalCrossAttention(nn.Module):
    """GCA (SPEC section 5.3): every target position attends to the context positions.

    Queries theta(P) come from the target coordinates (h x w), keys phi(P') from the coordinates of the
    key cells (h' x w'), values are the context representation R_{M+} (B, c, h', w'). Keys that hold no
    context are masked out (``masked=True``), so the output is a learned, normalised kernel smoother
    of the context representation: a cross-attention on the grid, as in the attentive NP (Kim et al.
    2019). Computed with ``scaled_dot_product_attention`` (fast kernels on GPU); ``heads`` > 1 gives
    multi-head attention. Images with an empty context get a zero representation.
    """

    def __init__(self, channels: int, key_dim: int = 64, heads: int = 1, masked: bool = True, scaled: bool = True,
                 distance_bias: bool = False):
        super().__init__()
        if key_dim % heads:
            raise ValueError(f"key_dim ({key_dim}) must be divisible by heads ({heads}).")
        self.heads, self.key_dim, self.masked, self.scaled = heads, key_dim, masked, scaled
        # Ours (off in the paper's model): a learned locality prior -||p - p'||^2 / (2 l_h^2) added to each
        # head's logits, so attention starts local (l = 0.2 in the [-1, 1] coordinates) instead of uniform.
        self.log_lengthscale = nn.Parameter(torch.full((heads,), math.log(0.2))) if distance_bias else None
        self.theta = nn.Sequential(nn.Conv2d(2, key_dim, 1), nn.ReLU(), nn.Conv2d(key_dim, key_dim, 1))
        self.phi = nn.Sequential(nn.Conv2d(2, key_dim, 1), nn.ReLU(), nn.Conv2d(key_dim, key_dim, 1))

    def attention_logits(self, query_hw: tuple[int, int], key_hw: tuple[int, int], device=None) -> Tensor:
        """The (heads, h*w, h'*w') similarity theta(P)^T phi(P') (scaled), before masking and softmax."""
        q, k = self._qk(query_hw, key_hw, device)
        scale = 1.0 / math.sqrt(self.key_dim // self.heads) if self.scaled else 1.0
        return (q @ k.transpose(-1, -2)).squeeze(0) * scale

    def distance_logits(self, query_hw, key_hw, device=None, dtype=torch.float32) -> Tensor | None:
        """The locality prior -||p_i - p'_j||^2 / (2 l_h^2), (heads, h*w, h'*w'), or None when off."""
        if self.log_lengthscale is None:
            return None
        pq = coordinate_grid(*query_hw, device=device, dtype=dtype).flatten(2)[0].T  # (hw, 2)
        pk = coordinate_grid(*key_hw, device=device, dtype=dtype).flatten(2)[0].T  # (h'w', 2)
        d2 = torch.cdist(pq, pk).pow(2)
        return -d2.unsqueeze(0) / (2 * self.log_lengthscale.exp().pow(2).to(dtype)[:, None, None])

    def _qk(self, query_hw, key_hw, device) -> tuple[Tensor, Tensor]:
        dh = self.key_dim // self.heads
        pq = coordinate_grid(*query_hw, device=device)
        pk = coordinate_grid(*key_hw, device=device)
        q = self.theta(pq).view(1, self.heads, dh, -1).transpose(-1, -2)  # (1, heads, hw, dh)
        k = self.phi(pk).view(1, self.heads, dh, -1).transpose(-1, -2)  # (1, heads, h'w', dh)
        return q, k

    def forward(self, values: Tensor, key_mask: Tensor, query_hw: tuple[int, int]) -> Tensor:
        """values (B, c, h', w'), key_mask (B, 1, h', w') > 0 where a key cell holds context."""
        b, c, hk, wk = values.shape
        q, k = self._qk(query_hw, (hk, wk), values.device)
        q, k = q.to(values.dtype), k.to(values.dtype)
        if c % self.heads:
            raise ValueError(f"value channels ({c}) must be divisible by heads ({self.heads}).")
        v = values.view(b, self.heads, c // self.heads, hk * wk).transpose(-1, -2)  # (B, heads, h'w', c/heads)
        scale = None if self.scaled else 1.0
        bias = self.distance_logits(query_hw, (hk, wk), values.device, values.dtype)  # (heads, hw, h'w') or None
        mask = None
        has_context = None
        if self.masked:
            valid = key_mask.reshape(b, 1, 1, hk * wk) > 0
            has_context = valid.any(dim=-1, keepdim=True)  # (B, 1, 1, 1)
            mask = valid | ~has_context  # an empty context attends everywhere, then is zeroed below
            if bias is not None:
                mask = bias.unsqueeze(0).masked_fill(~mask, float("-inf"))
        elif bias is not None:
            mask = bias.unsqueeze(0)
        out = F.scaled_dot_product_attention(q.expand(b, -1, -1, -1), k.expand(b, -1, -1, -1), v,
                                             attn_mask=mask, scale=scale)
        if has_context is not None:
            out = out * has_context
        return out.transpose(-1, -2).reshape(b, c, *query_hw)
