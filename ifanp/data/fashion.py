"""Fashion-MNIST: Zalando's 60,000 training and 10,000 test images of clothes, 1 x 28 x 28, loaded like MNIST.

The four IDX files (``train-images-idx3-ubyte`` ... ``t10k-labels-idx1-ubyte``, gzipped or not) are
read from the first of these folders that holds all four:

1. ``<root>/FashionMNIST/raw/`` (``root`` defaults to :func:`ifanp.config.data_root`, i.e. ``$IFANP_DATA``;
   torchvision's layout, so a folder that torchvision filled is used as it is);
2. ``/usr/share/datasets/fashion-mnist/`` (:data:`SYSTEM_DIR`), where Debian's package
   ``dataset-fashion-mnist`` installs them (``apt-get install dataset-fashion-mnist``, offline);
3. otherwise, with ``download=True``, torchvision's ``FashionMNIST(download=True)`` fills folder 1
   (where the internet works).

Every load checks the sha256 of the *uncompressed* bytes of the two files it reads against
:data:`FASHION_SHA256` and refuses files that differ (:class:`DataError`, one line). The check is on
the uncompressed bytes because Debian recompressed the files (its ``.gz`` files differ from the
upstream ones, :data:`UPSTREAM_GZ_MD5`, which torchvision checks after its download, while the images
are the same). The fixed evaluation subset is the MNIST one: 5,000 of the 10,000 test images drawn
with seed 2023 (:func:`fashion_eval_indices`).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import socket
import sys
from pathlib import Path

import numpy as np
from torch import Tensor

from ..config import data_root
from .common import EVAL_SEED, DataError, ImageDataset, eval_indices, say
from .mnist import MNIST_EVAL_SIZE, parse_idx

#: The four files per split: (images, labels), named as upstream and torchvision name them.
FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: Number of images per split.
FASHION_COUNTS = {"train": 60_000, "test": 10_000}
#: sha256 of the uncompressed IDX files, computed from Debian's dataset-fashion-mnist
#: 0.0~git20200523.55506a9-1 (``zcat FILE.gz | sha256sum``).
FASHION_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
#: md5 of the upstream ``.gz`` files (zalandoresearch/fashion-mnist README; torchvision checks them).
UPSTREAM_GZ_MD5 = {
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}
#: Where Debian's dataset-fashion-mnist installs the four .gz files.
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
#: The ten classes, in label order.
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
#: Size of the fixed evaluation subset of the test images (the same as MNIST's).
FASHION_EVAL_SIZE = MNIST_EVAL_SIZE

_PROBE_HOST = ("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80)  # torchvision's mirror
_DOWNLOAD_TIMEOUT_S = 20.0
_MISSING = ("Fashion-MNIST not found: install it with `apt-get install dataset-fashion-mnist` (offline, into "
            "{system}) or run `python -m ifanp data fashion-mnist` where the internet works (torchvision "
            "downloads it into {raw})")


def fashion_raw_dir(root: str | Path | None = None) -> Path:
    """The cache folder: ``<root>/FashionMNIST/raw`` (``root`` defaults to ``$IFANP_DATA``)."""
    base = Path(root).expanduser() if root is not None else data_root()
    return base / "FashionMNIST" / "raw"


def _file(folder: Path, name: str) -> Path | None:
    """The uncompressed file ``name`` in ``folder``, else its ``.gz``, else None."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def fashion_dir(root: str | Path | None = None, system_dir: str | Path | None = None) -> Path | None:
    """The first folder (the cache under ``root``, then ``system_dir``, default :data:`SYSTEM_DIR`) that
    holds all four files, gzipped or not; None when neither does."""
    for folder in (fashion_raw_dir(root), Path(system_dir) if system_dir is not None else SYSTEM_DIR):
        if all(_file(folder, name) for name in FASHION_SHA256):
            return folder
    return None


def _host_reachable(host: tuple[str, int], timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection(host, timeout=timeout):
            return True
    except OSError:
        return False


def _torchvision_download(raw: Path, progress: bool) -> str | None:
    """Try torchvision's FashionMNIST download into ``raw``; None on success, else why it failed."""
    if not _host_reachable(_PROBE_HOST):
        return "no internet"
    from torchvision.datasets import FashionMNIST

    say("downloading Fashion-MNIST with torchvision", progress)
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        with contextlib.redirect_stdout(sys.stderr if progress else io.StringIO()):
            FashionMNIST(str(raw.parent.parent), train=True, download=True)
    except Exception as err:  # noqa: BLE001 - any failure ends in the one-line message below
        return f"torchvision's download failed: {err}".splitlines()[0]
    finally:
        socket.setdefaulttimeout(old_timeout)
    return None


def prepare_fashion(root: str | Path | None = None, download: bool = True, progress: bool = True,
                    system_dir: str | Path | None = None) -> tuple[Path, str]:
    """The folder holding the four files and how it was found: ``"cache"`` (``<root>/FashionMNIST/raw``),
    ``"debian package"`` (:data:`SYSTEM_DIR`) or ``"torchvision download"``. Raises :class:`DataError`
    (one line: the apt-get command, or the internet) when none of them has the data."""
    raw = fashion_raw_dir(root)
    folder = fashion_dir(root, system_dir)
    if folder is not None:
        return folder, "cache" if folder == raw else "debian package"
    why = "download=False"
    if download:
        failure = _torchvision_download(raw, progress)
        if failure is None and fashion_dir(root, system_dir) == raw:
            return raw, "torchvision download"
        why = failure or "torchvision's download is incomplete"
    system = Path(system_dir) if system_dir is not None else SYSTEM_DIR
    raise DataError(_MISSING.format(raw=raw, system=system) + f" ({why}).")


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise DataError(f"{path} is not a readable gzip file ({err}); reinstall dataset-fashion-mnist "
                            "or delete it to fetch it again.") from err
    return data


def _checked(folder: Path, name: str) -> Tensor:
    """The IDX file ``name`` of ``folder`` as a uint8 tensor, after its sha256 matched :data:`FASHION_SHA256`."""
    path = _file(folder, name)
    if path is None:
        raise DataError(f"{name} is missing in {folder}; reinstall dataset-fashion-mnist or delete the folder.")
    data = _read(path)
    digest = hashlib.sha256(data).hexdigest()
    if digest != FASHION_SHA256[name]:
        raise DataError(f"{path} is not the Fashion-MNIST file {name} (sha256 {digest[:12]}..., expected "
                        f"{FASHION_SHA256[name][:12]}...); delete it or reinstall dataset-fashion-mnist.")
    return parse_idx(data, path)


def load_fashion(split: str = "train", root: str | Path | None = None, download: bool = True,
                 progress: bool = True, system_dir: str | Path | None = None) -> ImageDataset:
    """The Fashion-MNIST ``split`` (``"train"``: 60,000 images, ``"test"``: 10,000) as an :class:`ImageDataset`
    of ``uint8`` images ``(N, 1, 28, 28)`` and labels 0..9 (:data:`FASHION_CLASSES`). Files whose sha256
    differs from the pinned one are refused; ``dataset.source`` says which folder they came from."""
    if split not in FASHION_FILES:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}.")
    folder, how = prepare_fashion(root, download=download, progress=progress, system_dir=system_dir)
    images_file, labels_file = FASHION_FILES[split]
    images, labels = _checked(folder, images_file), _checked(folder, labels_file)
    if images.dim() != 3 or tuple(images.shape[1:]) != (28, 28) or labels.shape != images.shape[:1]:
        raise DataError(f"{folder} holds {tuple(images.shape)} images and {tuple(labels.shape)} labels for the "
                        f"{split} split; expected N of 28x28 and N labels.")
    return ImageDataset(images.unsqueeze(1), labels.long(), source=f"{how} ({folder})", verified=True,
                        name=f"Fashion-MNIST {split}")


def fashion_eval_indices(n: int = FASHION_EVAL_SIZE, seed: int = EVAL_SEED, total: int | None = None) -> Tensor:
    """Indices of the fixed evaluation subset: ``n`` of the 10,000 test images, drawn as MNIST's
    (``torch.randperm(total, generator=torch.Generator().manual_seed(2023))[:n]``, sorted)."""
    total = FASHION_COUNTS["test"] if total is None else total
    return eval_indices(total, min(n, total), seed)


def load_fashion_eval(full_test: bool = False, root: str | Path | None = None, download: bool = True,
                      progress: bool = True, system_dir: str | Path | None = None) -> ImageDataset:
    """The Fashion-MNIST evaluation images: the fixed 5,000-image subset of the test split, or all of it."""
    test = load_fashion("test", root=root, download=download, progress=progress, system_dir=system_dir)
    if full_test:
        return test
    subset = test.subset(fashion_eval_indices(total=len(test)))
    subset.name = f"Fashion-MNIST test, evaluation subset of {len(subset):,} (seed {EVAL_SEED})"
    return subset


def idx_gz_bytes(array: np.ndarray) -> bytes:
    """A uint8 array (N,) or (N, H, W) as the gzipped IDX bytes of the upstream files (for tests and tools)."""
    magic = 0x0801 if array.ndim == 1 else 0x0803
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    return gzip.compress(header + np.ascontiguousarray(array, np.uint8).tobytes(), mtime=0)
