"""Context masks: exact sizes, uniformity, reproducibility, structured kinds, input checks."""

from __future__ import annotations

import pytest
import torch

from ifanp.data.masks import MASK_KINDS, TRAIN_RATIO_RANGE, eval_mask, random_mask, structured_mask


def _counts(mask):
    return mask.flatten(1).sum(1).long()


@pytest.mark.parametrize("ratio", [0.0, 0.05, 0.2, 0.4, 0.6, 1.0])
def test_random_mask_has_exactly_round_ratio_pixels(ratio):
    mask = random_mask(16, 28, ratio, torch.Generator().manual_seed(0))
    assert mask.shape == (16, 1, 28, 28) and mask.dtype == torch.float32
    assert torch.all((mask == 0) | (mask == 1))
    assert torch.all(_counts(mask) == round(ratio * 784))


def test_random_mask_is_uniform_over_pixels():
    # Each pixel is observed with probability ratio; a biased selection (e.g. the first k pixels) fails.
    n, ratio = 4000, 0.3
    freq = random_mask(n, 28, ratio, torch.Generator().manual_seed(1)).mean(0).flatten()
    sigma = (ratio * (1 - ratio) / n) ** 0.5
    assert (freq - ratio).abs().max() < 5 * sigma


def test_random_mask_ratio_range_is_drawn_per_image():
    low, high = TRAIN_RATIO_RANGE
    mask = random_mask(3000, (7, 9), generator=torch.Generator().manual_seed(2))
    counts = _counts(mask).double()
    assert mask.shape == (3000, 1, 7, 9)
    assert counts.min() >= round(low * 63) and counts.max() <= round(high * 63)
    assert abs(counts.mean() / 63 - 0.5) < 0.02 and counts.unique().numel() > 40
    fixed = random_mask(5, 10, torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]))
    assert _counts(fixed).tolist() == [0, 10, 50, 90, 100]


def test_random_mask_reproducible_with_a_generator():
    a = random_mask(4, 28, (0.1, 0.9), torch.Generator().manual_seed(3))
    b = random_mask(4, 28, (0.1, 0.9), torch.Generator().manual_seed(3))
    c = random_mask(4, 28, (0.1, 0.9), torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_eval_mask_depends_only_on_index_ratio_and_seed():
    batch = eval_mask([10, 11, 12, 13], 28, 0.4)
    alone = eval_mask([12], 28, 0.4)
    shuffled = eval_mask(torch.tensor([13, 12, 11, 10]), 28, 0.4)
    assert torch.equal(batch[2], alone[0]) and torch.equal(batch, shuffled.flip(0))
    assert torch.all(_counts(batch) == round(0.4 * 784))
    assert not torch.equal(batch[0], batch[1])
    assert not torch.equal(eval_mask([12], 28, 0.2), eval_mask([12], 28, 0.4))
    assert not torch.equal(alone, eval_mask([12], 28, 0.4, seed=1))


def test_eval_mask_is_pinned():
    # The evaluation protocol: changing the hash silently would change every reported number.
    mask = eval_mask([0, 1, 2], 28, 0.2)
    assert _counts(mask).tolist() == [157, 157, 157]
    assert torch.nonzero(mask[0].flatten()).flatten()[:8].tolist() == [0, 2, 6, 11, 15, 17, 20, 25]
    assert int(torch.nonzero(mask.flatten(1))[:, 1].sum()) == 190857


def test_eval_masks_are_uniform_and_independent():
    n, ratio = 3000, 0.3
    masks = eval_mask(torch.arange(n), 28, ratio).flatten(1)
    sigma = (ratio * (1 - ratio) / n) ** 0.5
    assert (masks.mean(0) - ratio).abs().max() < 5 * sigma
    # Two independent random subsets of k of P pixels share k^2/P pixels on average.
    k = round(ratio * 784)
    overlap = (masks[:-1] * masks[1:]).sum(1)
    expected = k * k / 784
    assert abs(overlap.mean() - expected) < 0.5  # std of the mean is about 0.13
    assert overlap.std() > 3  # correlated or identical masks would give no spread


def test_structured_halves_are_the_observed_part():
    top, bottom = structured_mask("top", 2, 28), structured_mask("bottom", 2, 28)
    left, right = structured_mask("left", 2, 28), structured_mask("right", 2, 28)
    assert top.shape == (2, 1, 28, 28)
    assert top[:, :, :14].eq(1).all() and top[:, :, 14:].eq(0).all()
    assert bottom[:, :, 14:].eq(1).all() and bottom[:, :, :14].eq(0).all()
    assert left[..., :14].eq(1).all() and left[..., 14:].eq(0).all()
    assert right[..., 14:].eq(1).all() and right[..., :14].eq(0).all()


def test_structured_boxes_are_missing():
    centre = structured_mask("centre", 1, 32)[0, 0]
    assert centre[8:24, 8:24].eq(0).all() and int(centre.sum()) == 32 * 32 - 16 * 16
    boxes = structured_mask("random_box", 200, 28, torch.Generator().manual_seed(0))[:, 0]
    for box in boxes[:20]:
        rows, cols = torch.nonzero(box == 0, as_tuple=True)
        h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert 7 <= h <= 14 and 7 <= w <= 14 and len(rows) == h * w  # one solid rectangle
    missing = (1 - boxes).flatten(1).sum(1)
    assert missing.unique().numel() > 10  # sizes vary
    again = structured_mask("random_box", 200, 28, torch.Generator().manual_seed(0))[:, 0]
    assert torch.equal(boxes, again)
    assert set(MASK_KINDS) == {"top", "bottom", "left", "right", "centre", "random_box"}


@pytest.mark.parametrize("ratio", [-0.1, 1.5, (0.9, 0.1), (-0.1, 0.5), (0.2, 1.2)])
def test_bad_ratios_are_rejected(ratio):
    with pytest.raises(ValueError, match=r"\[0, 1\]|low <= high"):
        random_mask(2, 8, ratio)


def test_other_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        eval_mask([0], 8, 2.0)
    with pytest.raises(ValueError, match="unknown mask kind 'middle'"):
        structured_mask("middle", 1, 8)
    with pytest.raises(ValueError, match="one per image"):
        random_mask(3, 8, torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="size must be"):
        random_mask(1, (8, 8, 3), 0.5)
