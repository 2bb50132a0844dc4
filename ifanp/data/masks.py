"""Context masks: which pixels of an image a model observes.

A mask is a float tensor ``(B, 1, H, W)`` of zeros and ones, 1 = observed (context) pixel, shared by
all channels of the image. The pixels to predict (targets) are usually ``1 - mask`` or the whole image.

* :func:`random_mask` — for training: a uniformly random subset of exactly ``round(ratio * H * W)``
  pixels per image, the ratio fixed or drawn per image from a range (default ``TRAIN_RATIO_RANGE``).
* :func:`eval_mask` — for evaluation: the same kind of subset, but fixed per (image index, ratio,
  seed), so that an image gets the same mask whatever batch it is evaluated in, on every machine.
* :func:`structured_mask` — half images and boxes (``MASK_KINDS``) for the figures.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

#: The default training distribution of the context ratio: U(0.05, 0.95) per image (SPEC section 6).
TRAIN_RATIO_RANGE = (0.05, 0.95)
#: The context ratios of the paper's test tables.
TEST_RATIOS = (0.2, 0.4, 0.6)
#: The kinds accepted by :func:`structured_mask`.
MASK_KINDS = ("top", "bottom", "left", "right", "centre", "random_box")

_M32 = 0xFFFFFFFF


def _hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        h = w = size
    else:
        try:
            h, w = (int(s) for s in size)
        except (TypeError, ValueError) as err:
            raise ValueError(f"size must be an int or (height, width); got {size!r}.") from err
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive; got {size!r}.")
    return h, w


def _check_batch(batch: int) -> None:
    if not isinstance(batch, int) or batch < 0:
        raise ValueError(f"batch must be a non-negative int; got {batch!r}.")


def _check_ratio(ratio: float, what: str = "ratio") -> float:
    ratio = float(ratio)
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(
            f"{what} must lie in [0, 1] (a fraction of the pixels, e.g. 0.2 for 20 %); got {ratio}."
        )
    return ratio


def _counts(ratios: Tensor, pixels: int) -> Tensor:
    """round(ratio * pixels) per image (round half to even, like Python's ``round``)."""
    return torch.round(ratios.double() * pixels).long()


def _mask_from_keys(keys: Tensor, counts: Tensor, h: int, w: int) -> Tensor:
    """Observe, in each row of ``keys`` (B, H*W), the ``counts[b]`` pixels with the smallest keys."""
    order = keys.argsort(dim=1)
    ranks = torch.empty_like(order).scatter_(
        1, order, torch.arange(keys.shape[1], device=keys.device).expand_as(order)
    )
    return (ranks < counts.to(keys.device).unsqueeze(1)).float().view(-1, 1, h, w)


def random_mask(
    batch: int,
    size: int | Sequence[int],
    ratio: float | Sequence[float] | Tensor = TRAIN_RATIO_RANGE,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
) -> Tensor:
    """Random context masks ``(batch, 1, H, W)`` with exactly ``round(ratio * H * W)`` observed pixels each.

    ``ratio`` is a float in [0, 1] (the same for every image), a ``(low, high)`` range from which one
    ratio per image is drawn uniformly (training; default ``TRAIN_RATIO_RANGE = (0.05, 0.95)``), or a
    1-D tensor of ``batch`` ratios. The observed pixels are a uniformly random subset (the ranks of
    uniform noise, for the whole batch at once). ``generator`` makes the masks reproducible; they are
    drawn on the generator's device (CPU by default) and returned on ``device``.
    """
    _check_batch(batch)
    h, w = _hw(size)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    if isinstance(ratio, Tensor):
        ratios = ratio.detach().double().reshape(-1).cpu()
        if ratios.numel() != batch:
            raise ValueError(f"a tensor of ratios needs one per image ({batch}); got {ratios.numel()}.")
        if ratios.numel() and (ratios.min() < 0 or ratios.max() > 1):
            raise ValueError(
                f"ratios must lie in [0, 1]; got values in [{ratios.min():.3g}, {ratios.max():.3g}]."
            )
    elif isinstance(ratio, (int, float)):
        ratios = torch.full((batch,), _check_ratio(ratio), dtype=torch.float64)
    else:
        try:
            low, high = (float(r) for r in ratio)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"ratio must be a float in [0, 1] or a (low, high) range; got {ratio!r}."
            ) from err
        _check_ratio(low, "the low end of the ratio range")
        _check_ratio(high, "the high end of the ratio range")
        if low > high:
            raise ValueError(f"the ratio range must be (low, high) with low <= high; got ({low}, {high}).")
        u = torch.rand(batch, generator=generator, device=gen_device, dtype=torch.float64).cpu()
        ratios = low + (high - low) * u
    noise = torch.rand(batch, h * w, generator=generator, device=gen_device)
    mask = _mask_from_keys(noise, _counts(ratios, h * w), h, w)
    return mask.to(device) if device is not None else mask


def _mul32(x: Tensor, c: int) -> Tensor:
    """(x * c) mod 2**32 for x in [0, 2**32) stored as int64, without int64 overflow."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _M32


def _mix32(x: Tensor) -> Tensor:
    """A 32-bit integer hash with good avalanche (the "lowbias32" mixer), elementwise on int64 tensors."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _image_keys(indices: Tensor, permille: int, seed: int) -> Tensor:
    """One 32-bit key per image from (index, round(ratio * 1000), seed)."""
    base = _mix32(torch.tensor([seed & _M32], dtype=torch.int64))
    base = _mix32(base ^ ((seed >> 32) & _M32))
    base = _mix32(base ^ (permille & _M32))
    k = _mix32(base.to(indices.device) ^ (indices & _M32))
    return _mix32(k ^ ((indices >> 32) & _M32))


def eval_mask(
    indices: Sequence[int] | Tensor,
    size: int | Sequence[int],
    ratio: float,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> Tensor:
    """Reproducible evaluation masks ``(len(indices), 1, H, W)``, one per dataset index.

    Image ``indices[b]`` observes exactly ``round(ratio * H * W)`` pixels: those with the smallest
    values of a 32-bit hash of (index, ``round(ratio * 1000)``, ``seed``, pixel position). The hash is
    integer arithmetic in torch, so the mask of an image depends only on these numbers: not on the
    batch it is in, the order of the batch, the device, or torch's random number generator. The whole
    batch is computed at once.
    """
    ratio = _check_ratio(ratio)
    h, w = _hw(size)
    idx = torch.as_tensor(indices, dtype=torch.int64, device=device).reshape(-1)
    if idx.numel() and idx.min() < 0:
        raise ValueError("indices must be non-negative dataset indices.")
    keys = _image_keys(idx, round(ratio * 1000), int(seed))  # (B,)
    pixel = torch.arange(h * w, dtype=torch.int64, device=idx.device)
    counter = (keys.unsqueeze(1) + _mul32(pixel, 0x9E3779B9).unsqueeze(0)) & _M32
    hashed = _mix32(_mix32(counter))
    # Ties are impossible: the pixel position breaks them (keys < 2**52).
    sort_keys = (hashed << 20) + pixel if h * w <= 1 << 20 else hashed * (h * w) + pixel
    counts = torch.full((idx.numel(),), round(ratio * h * w), dtype=torch.int64)
    return _mask_from_keys(sort_keys, counts, h, w)


def structured_mask(
    kind: str,
    batch: int,
    size: int | Sequence[int],
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
) -> Tensor:
    """Structured context masks ``(batch, 1, H, W)``; 1 = observed.

    ``kind`` (see ``MASK_KINDS``):

    * ``"top"``, ``"bottom"``, ``"left"``, ``"right"`` — the named half is OBSERVED (``H // 2`` rows or
      ``W // 2`` columns), the model completes the other half;
    * ``"centre"`` — everything observed except a centred box of ``H // 2`` x ``W // 2`` pixels;
    * ``"random_box"`` — everything observed except one box per image, its height and width drawn
      uniformly from ``[H // 4, H // 2]`` (resp. W) and its position uniformly inside the image
      (reproducible with ``generator``).
    """
    _check_batch(batch)
    h, w = _hw(size)
    if kind == "center":
        kind = "centre"
    if kind not in MASK_KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; use one of {', '.join(MASK_KINDS)}.")
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    if kind == "top":
        mask = (rows < h // 2).expand(batch, h, w)
    elif kind == "bottom":
        mask = (rows >= h - h // 2).expand(batch, h, w)
    elif kind == "left":
        mask = (cols < w // 2).expand(batch, h, w)
    elif kind == "right":
        mask = (cols >= w - w // 2).expand(batch, h, w)
    elif kind == "centre":
        bh, bw = h // 2, w // 2
        r0, c0 = (h - bh) // 2, (w - bw) // 2
        box = (rows >= r0) & (rows < r0 + bh) & (cols >= c0) & (cols < c0 + bw)
        mask = (~box).expand(batch, h, w)
    else:  # random_box
        gen_device = generator.device if generator is not None else torch.device("cpu")
        u = torch.rand(batch, 4, generator=generator, device=gen_device).cpu()
        lo_h, lo_w = max(h // 4, 1), max(w // 4, 1)
        bh = lo_h + (u[:, 0] * (max(h // 2, lo_h) - lo_h + 1)).long()
        bw = lo_w + (u[:, 1] * (max(w // 2, lo_w) - lo_w + 1)).long()
        r0 = (u[:, 2] * (h - bh + 1)).long().view(-1, 1, 1)
        c0 = (u[:, 3] * (w - bw + 1)).long().view(-1, 1, 1)
        box = (rows >= r0) & (rows < r0 + bh.view(-1, 1, 1)) & (cols >= c0) & (cols < c0 + bw.view(-1, 1, 1))
        mask = ~box
    mask = mask.float().unsqueeze(1).contiguous()
    return mask.to(device) if device is not None else mask
