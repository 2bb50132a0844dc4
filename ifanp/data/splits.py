"""The training and evaluation images of a dataset by name, as every command reads them.

:func:`load_train_images` (uint8, the training split) and :func:`load_eval_images` (uint8, with the
test-split indices that fix each image's evaluation mask).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .celeba import PAPER_TRAIN_SIZE, load_celeba, load_celeba_eval
from .fashion import fashion_eval_indices, load_fashion
from .mnist import load_mnist, mnist_eval_indices

#: The image datasets every command accepts (``--dataset``).
DATASETS = ("mnist", "fashion-mnist", "celeba")


def load_train_images(dataset: str, limit: int | None = None) -> Tensor:
    """The training images as a uint8 tensor (N, C, H, W)."""
    if dataset == "mnist":
        images = load_mnist("train").images
    elif dataset == "fashion-mnist":
        images = load_fashion("train").images
    elif dataset == "celeba":
        images = load_celeba("train", limit=PAPER_TRAIN_SIZE).images
    else:
        raise ValueError(f"unknown dataset {dataset!r}; use one of {', '.join(DATASETS)}.")
    return images[:limit] if limit else images


def load_eval_images(dataset: str, full_test: bool = False) -> tuple[Tensor, Tensor]:
    """The evaluation images (uint8) and their indices in the test split (which fix their masks)."""
    if dataset == "mnist":
        test = load_mnist("test")
        idx = torch.arange(len(test)) if full_test else mnist_eval_indices()
        return test.images[idx], idx
    if dataset == "fashion-mnist":
        test = load_fashion("test")
        idx = torch.arange(len(test)) if full_test else fashion_eval_indices(total=len(test))
        return test.images[idx], idx
    if dataset == "celeba":
        ev = load_celeba_eval()
        return ev.images, torch.arange(len(ev))
    raise ValueError(f"unknown dataset {dataset!r}; use one of {', '.join(DATASETS)}.")
