"""CelebA at 32 x 32 RGB: centre crop 178 x 178 of the aligned 218 x 178 images, then an antialiased resize.

CelebA cannot be fetched without a Google-Drive download that often fails on quota, so it is read
from what the reader already has, in this order:

1. torchvision's layout under ``<root>/celeba/`` (``root`` defaults to ``$IFANP_DATA``): the folder
   ``img_align_celeba/`` plus the annotation files; the split comes from ``list_eval_partition.txt``.
   With ``download=True`` torchvision is asked to fetch it (needs the ``gdown`` package and internet).
2. a folder of aligned JPEGs named as in the official release (``000001.jpg`` ... ``202599.jpg``),
   either ``<root>/celeba/img_align_celeba/`` or any folder passed as ``image_dir``; the official
   split follows the file numbers: 1-162770 train, 162771-182637 valid, 182638-202599 test
   (a ``list_eval_partition.txt`` next to the images, or one folder up, takes precedence).

The first load of a split preprocesses its images once (about 1 ms per image) and caches them as a
``uint8`` safetensors file under ``<root>/celeba/cache/``; later loads read that file. The paper uses
the first 60,000 training images (``limit=PAPER_TRAIN_SIZE``) and 5,000 test images
(:func:`load_celeba_eval`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import socket
import sys
from pathlib import Path

import torch
from torch import Tensor

from ..config import data_root
from .common import EVAL_SEED, DataError, ImageDataset, eval_indices, say

#: Official partition by file number (inclusive ranges).
CELEBA_SPLITS = {"train": (1, 162770), "valid": (162771, 182637), "test": (182638, 202599)}
#: Side of the centre crop applied to the aligned 218 x 178 images before resizing.
CROP = 178
#: The paper's sizes: the first 60,000 training images and 5,000 test images.
PAPER_TRAIN_SIZE = 60_000
CELEBA_EVAL_SIZE = 5_000

_PARTITION_FILE = "list_eval_partition.txt"
_SPLIT_CODE = {"train": "0", "valid": "1", "test": "2"}


def celeba_dir(root: str | Path | None = None) -> Path:
    """``<root>/celeba`` (``root`` defaults to ``$IFANP_DATA``): torchvision's CelebA folder and the cache."""
    base = Path(root).expanduser() if root is not None else data_root()
    return base / "celeba"


def _missing_message(image_dir: Path, explicit: bool, extra: str = "") -> str:
    where = (
        f"the folder {image_dir} given as image_dir does not exist" if explicit else f"no folder {image_dir}"
    )
    return (
        f"CelebA not found: {where}.{extra} Provide it in one of two ways: (1) torchvision's layout, "
        f"{image_dir if not explicit else '<root>/celeba/img_align_celeba'}/ with the aligned JPEGs plus "
        "list_eval_partition.txt and the other annotation files one folder up (download=True / --download "
        "asks torchvision to fetch them from Google Drive: needs gdown and internet, often fails on quota); or "
        "(2) any folder of the aligned JPEGs 000001.jpg ... 202599.jpg passed as image_dir= (CLI: --image-dir), "
        "split by file number. root defaults to $IFANP_DATA."
    )


def _torchvision_download(root: Path, progress: bool) -> str | None:
    """Ask torchvision to download CelebA into ``root/celeba``; return ``None`` or why it failed."""
    try:
        import gdown  # noqa: F401 - torchvision needs it for Google Drive
    except ImportError:
        return "torchvision's CelebA download needs the gdown package (pip install gdown)"
    try:
        socket.create_connection(("drive.google.com", 443), timeout=3.0).close()
    except OSError:
        return "drive.google.com cannot be reached (no internet)"
    from torchvision.datasets import CelebA

    say("downloading CelebA (1.4 GB) from Google Drive with torchvision", progress)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60.0)
    try:
        with contextlib.redirect_stdout(sys.stderr if progress else io.StringIO()):
            CelebA(str(root), split="all", target_type=[], download=True)
    except Exception as err:  # noqa: BLE001 - report any failure in one line
        return f"torchvision's CelebA download failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
    finally:
        socket.setdefaulttimeout(old)
    return None


def _torchvision_files(root: Path, image_dir: Path, split: str) -> list[str] | None:
    """The split's file names from torchvision's ``CelebA`` when its annotation files pass its md5 check."""
    if image_dir != celeba_dir(root) / "img_align_celeba":
        return None
    try:
        from torchvision.datasets import CelebA

        return list(CelebA(str(root), split=split, target_type=[]).filename)
    except Exception:  # noqa: BLE001 - files absent or corrupt: fall back to the folder itself
        return None


def _split_files(image_dir: Path, split: str) -> tuple[list[str], str]:
    """The file names of ``split`` in ``image_dir`` (sorted) and how the split was decided."""
    for folder in (image_dir, image_dir.parent):
        partition = folder / _PARTITION_FILE
        if partition.is_file():
            names = []
            for line in partition.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == _SPLIT_CODE[split]:
                    names.append(parts[0])
            present = {p.name for p in image_dir.iterdir()}
            return [n for n in names if n in present], f"split from {partition}"
    jpgs = sorted(p.name for p in image_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if not jpgs:
        raise DataError(
            f"{image_dir} holds no .jpg files; point image_dir at the folder of aligned CelebA JPEGs."
        )
    numbered = [(int(Path(n).stem), n) for n in jpgs if Path(n).stem.isdigit()]
    if not numbered:
        raise DataError(
            f"the JPEGs in {image_dir} are not named like the official CelebA files (000001.jpg ... 202599.jpg), so "
            f"the official split cannot be recovered; add {_PARTITION_FILE} next to them."
        )
    lo, hi = CELEBA_SPLITS[split]
    return [n for k, n in sorted(numbered) if lo <= k <= hi], "split by file number"


def preprocess_image(path: Path, size: int = 32, crop: int = CROP) -> Tensor:
    """One image file -> ``uint8`` tensor ``(3, size, size)``: centre crop ``crop`` x ``crop`` (or the largest
    centred square when the image is smaller), then an antialiased bilinear resize with PIL."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        side = min(crop, w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
        if side != size:
            img = img.resize((size, size), Image.BILINEAR, reducing_gap=None)
        data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return data.view(size, size, 3).permute(2, 0, 1).contiguous()


def _cache_path(root: Path, image_dir: Path, split: str, size: int, count: int | None) -> Path:
    key = hashlib.sha256(str(image_dir.resolve()).encode()).hexdigest()[:10]
    return (
        celeba_dir(root) / "cache" / f"{split}-{size}px-{'all' if count is None else count}-{key}.safetensors"
    )


def _read_cache(root: Path, image_dir: Path, split: str, size: int, limit: int | None):
    """A cached tensor holding at least the requested images (sliced), with its metadata, or ``None``."""
    from safetensors import safe_open

    folder = celeba_dir(root) / "cache"
    key = _cache_path(root, image_dir, split, size, None).name.rsplit("-", 1)[1]
    if not folder.is_dir():
        return None
    stamp = str(image_dir.stat().st_mtime_ns)
    for path in sorted(folder.glob(f"{split}-{size}px-*-{key}")):
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                complete = meta.get("complete") == "1"
                usable = meta.get("image_dir_mtime") == stamp and (
                    complete if limit is None else (complete or int(meta.get("count", 0)) >= limit)
                )
                images = f.get_tensor("images") if usable else None
        except Exception as err:  # noqa: BLE001 - an unreadable cache is rebuilt
            say(f"ignoring the unreadable cache {path} ({err})")
            images = None
        if images is not None:
            return (images if limit is None else images[:limit]), meta
    return None


def load_celeba(
    split: str = "train",
    root: str | Path | None = None,
    size: int = 32,
    limit: int | None = None,
    image_dir: str | Path | None = None,
    download: bool = False,
    progress: bool = True,
) -> ImageDataset:
    """CelebA ``split`` (``"train"``, ``"valid"`` or ``"test"``) as ``uint8`` RGB images ``(N, 3, size, size)``.

    ``limit`` keeps the first ``limit`` images of the split in file order (the paper: the first
    ``PAPER_TRAIN_SIZE = 60000`` training images). ``image_dir`` points at a folder of aligned JPEGs
    (default ``<root>/celeba/img_align_celeba``). See the module docstring for the sources and the
    cache. Raises :class:`DataError` naming both ways to provide the data when none is found.
    CelebA has no published per-image checksums: ``dataset.verified`` is ``None``.
    """
    if split not in CELEBA_SPLITS:
        raise ValueError(f"split must be one of {', '.join(CELEBA_SPLITS)}; got {split!r}.")
    if not isinstance(size, int) or not 1 <= size <= CROP:
        raise ValueError(f"size must be an int between 1 and {CROP}; got {size!r}.")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int or None; got {limit!r}.")
    root = Path(root).expanduser() if root is not None else data_root()
    explicit = image_dir is not None
    image_dir = Path(image_dir).expanduser() if explicit else celeba_dir(root) / "img_align_celeba"
    if not image_dir.is_dir():
        if explicit or not download:
            raise DataError(_missing_message(image_dir, explicit))
        failure = _torchvision_download(root, progress)
        if failure is not None or not image_dir.is_dir():
            raise DataError(_missing_message(image_dir, explicit, f" The download was tried: {failure}."))

    cached = _read_cache(root, image_dir, split, size, limit)
    if cached is not None:
        images, meta = cached
        return ImageDataset(images, None, source=meta.get("source", "cache"), verified=None,
                            name=f"CelebA {split} {size}x{size}")  # fmt: skip

    files = _torchvision_files(root, image_dir, split)
    how = "torchvision CelebA files"
    if files is None:
        files, how = _split_files(image_dir, split)
        how = f"image folder ({how})"
    if not files:
        lo, hi = CELEBA_SPLITS[split]
        raise DataError(
            f"{image_dir} holds no image of the {split} partition (files {lo:06d}.jpg-{hi:06d}.jpg); "
            "check that the folder holds the complete aligned CelebA release."
        )
    complete = limit is None or limit >= len(files)
    files = files[:limit]
    from tqdm.auto import tqdm

    say(
        f"preprocessing {len(files):,} CelebA {split} images from {image_dir} (once; cached afterwards)",
        progress,
    )
    images = torch.empty(len(files), 3, size, size, dtype=torch.uint8)
    for i, name in enumerate(tqdm(files, desc=f"CelebA {split}", unit="img", disable=not progress)):
        try:
            images[i] = preprocess_image(image_dir / name, size)
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read {image_dir / name}: {err}. Replace or delete the file.") from err

    from safetensors.torch import save_file

    path = _cache_path(root, image_dir, split, size, None if complete else len(files))
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "source": how, "split": split, "size": str(size), "count": str(len(files)),
        "complete": "1" if complete else "0", "image_dir": str(image_dir.resolve()),
        "image_dir_mtime": str(image_dir.stat().st_mtime_ns), "first": files[0], "last": files[-1],
    }  # fmt: skip
    tmp = path.with_name(path.name + ".part")
    save_file({"images": images}, str(tmp), metadata=meta)
    tmp.replace(path)
    say(f"cached as {path}", progress)
    return ImageDataset(images, None, source=how, verified=None, name=f"CelebA {split} {size}x{size}")


def load_celeba_eval(
    root: str | Path | None = None,
    size: int = 32,
    n: int = CELEBA_EVAL_SIZE,
    seed: int = EVAL_SEED,
    image_dir: str | Path | None = None,
    progress: bool = True,
) -> ImageDataset:
    """The CelebA evaluation images: a fixed random ``n`` (default 5,000) of the test partition.

    The subset is ``torch.randperm(N_test, generator=torch.Generator().manual_seed(seed))[:n]``, sorted,
    with the published seed ``EVAL_SEED = 2023`` (the same rule as MNIST); all of the test partition
    is preprocessed (and cached) first. With fewer than ``n`` test images, all of them are used.
    """
    test = load_celeba("test", root=root, size=size, image_dir=image_dir, progress=progress)
    subset = test.subset(eval_indices(len(test), min(n, len(test)), seed))
    subset.name = f"CelebA test, evaluation subset of {len(subset):,} (seed {seed})"
    return subset
