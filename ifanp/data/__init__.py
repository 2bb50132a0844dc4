"""Datasets and context masks.

* :mod:`ifanp.data.mnist` — the official MNIST splits (:func:`load_mnist`) and the fixed 5,000-image
  evaluation subset (:func:`load_mnist_eval`, seed ``EVAL_SEED = 2023``).
* :mod:`ifanp.data.fashion` — Fashion-MNIST, loaded like MNIST (:func:`load_fashion`, :func:`load_fashion_eval`),
  from Debian's ``dataset-fashion-mnist`` or torchvision, with the sha256 of the files pinned.
* :mod:`ifanp.data.celeba` — CelebA at 32 x 32 from torchvision's files or a folder of aligned JPEGs.
* :mod:`ifanp.data.masks` — random, evaluation and structured context masks ``(B, 1, H, W)``.
* :mod:`ifanp.data.common` — :class:`ImageDataset` and :class:`DataError`.

* :mod:`ifanp.data.functions` — batched 1-D functions from GP priors for the neural-process chapter.
"""

from .celeba import CELEBA_EVAL_SIZE, PAPER_TRAIN_SIZE, load_celeba, load_celeba_eval
from .common import EVAL_SEED, DataError, ImageDataset, eval_indices
from .fashion import load_fashion, load_fashion_eval
from .functions import FunctionBatch, GPFunctionDataset, GPFunctionSampler
from .masks import MASK_KINDS, TEST_RATIOS, TRAIN_RATIO_RANGE, eval_mask, random_mask, structured_mask
from .mnist import MNIST_EVAL_SIZE, load_mnist, load_mnist_eval, mnist_eval_indices, prepare_mnist

__all__ = [
    "CELEBA_EVAL_SIZE",
    "EVAL_SEED",
    "MASK_KINDS",
    "MNIST_EVAL_SIZE",
    "PAPER_TRAIN_SIZE",
    "TEST_RATIOS",
    "TRAIN_RATIO_RANGE",
    "DataError",
    "FunctionBatch",
    "GPFunctionDataset",
    "GPFunctionSampler",
    "ImageDataset",
    "eval_indices",
    "eval_mask",
    "load_celeba",
    "load_celeba_eval",
    "load_fashion",
    "load_fashion_eval",
    "load_mnist",
    "load_mnist_eval",
    "mnist_eval_indices",
    "prepare_mnist",
    "random_mask",
    "structured_mask",
]
