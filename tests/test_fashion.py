"""Fashion-MNIST (``ifanp.data.fashion``): found in the cache or Debian's folder, sha256-checked, split like
MNIST, and usable by ``data``, ``train`` and ``evaluate``. The tests use small generated IDX .gz files (CI has
no Debian package); only the last one reads the real files, and it skips where they are not installed."""
from __future__ import annotations

import gzip
import hashlib
import json

import numpy as np
import pytest
import torch

from ifanp.cli import main
from ifanp.data import fashion
from ifanp.data.splits import DATASETS, load_eval_images, load_train_images
from ifanp.train import TrainConfig, train

COUNTS = {"train": 40, "test": 24}


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in COUNTS.items():
        images_file, labels_file = fashion.FASHION_FILES[split]
        out[images_file] = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        out[labels_file] = (np.arange(n) % 10).astype(np.uint8)
    return out


@pytest.fixture
def generated(tmp_path, monkeypatch):
    """A fake Debian folder of four generated IDX .gz files, pinned as the expected sha256, an empty data
    root and no internet. Returns (debian folder, data root, arrays)."""
    arrays = _arrays()
    system = tmp_path / "debian"
    system.mkdir()
    for name, array in arrays.items():
        blob = fashion.idx_gz_bytes(array)
        (system / f"{name}.gz").write_bytes(blob)
        monkeypatch.setitem(fashion.FASHION_SHA256, name, hashlib.sha256(gzip.decompress(blob)).hexdigest())
    root = tmp_path / "data"
    monkeypatch.setattr(fashion, "SYSTEM_DIR", system)
    monkeypatch.setenv("IFANP_DATA", str(root))
    monkeypatch.setattr(fashion, "_torchvision_download", lambda raw, progress: "no internet (test)")
    return system, root, arrays


def test_loader_gives_the_files_pixels_as_uint8_images(generated):
    system, _, arrays = generated
    for split in ("train", "test"):
        ds = fashion.load_fashion(split, progress=False)
        images_file, labels_file = fashion.FASHION_FILES[split]
        assert ds.images.dtype == torch.uint8 and ds.images.shape == (COUNTS[split], 1, 28, 28)
        assert torch.equal(ds.images[:, 0], torch.from_numpy(arrays[images_file]))
        assert torch.equal(ds.labels, torch.from_numpy(arrays[labels_file]).long())
        assert ds.verified is True and "debian package" in ds.source and str(system) in ds.source
    image, label = ds[3]
    assert image.dtype == torch.float32 and 0.0 <= float(image.min()) <= float(image.max()) <= 1.0
    assert abs(float(image[0, 0, 0]) - arrays["t10k-images-idx3-ubyte"][3, 0, 0] / 255) < 1e-6 and int(label) == 3


def test_cache_folder_wins_and_uncompressed_files_are_read(generated):
    """A torchvision-filled cache (<root>/FashionMNIST/raw, here uncompressed) is used before Debian's folder."""
    system, root, arrays = generated
    raw = fashion.fashion_raw_dir(root)
    raw.mkdir(parents=True)
    for name in arrays:
        (raw / name).write_bytes(gzip.decompress((system / f"{name}.gz").read_bytes()))
    ds = fashion.load_fashion("test", progress=False)
    assert ds.source.startswith("cache") and str(raw) in ds.source
    assert torch.equal(ds.images[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))


def test_a_changed_file_is_refused_in_one_line(generated):
    system, _, arrays = generated
    changed = arrays["train-images-idx3-ubyte"].copy()
    changed[5, 10, 10] ^= 1  # one bit of one pixel
    (system / "train-images-idx3-ubyte.gz").write_bytes(fashion.idx_gz_bytes(changed))
    with pytest.raises(fashion.DataError) as err:
        fashion.load_fashion("train", progress=False)
    message = str(err.value)
    assert "\n" not in message and "sha256" in message and "train-images-idx3-ubyte" in message
    fashion.load_fashion("test", progress=False)  # the test split's files are untouched: still loads


def test_missing_data_names_the_debian_package_and_the_internet(generated, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fashion, "SYSTEM_DIR", tmp_path / "absent")
    for download in (True, False):
        with pytest.raises(fashion.DataError) as err:
            fashion.load_fashion("train", download=download, progress=False)
        message = str(err.value)
        assert "\n" not in message and "apt-get install dataset-fashion-mnist" in message and "internet" in message
    assert main(["data", "fashion-mnist", "--no-download"]) == 1
    line = capsys.readouterr().err
    assert line.startswith("ifanp data: error: Fashion-MNIST not found") and line.count("\n") == 1


def test_torchvision_download_fills_the_cache(generated, tmp_path, monkeypatch):
    system, root, arrays = generated
    monkeypatch.setattr(fashion, "SYSTEM_DIR", tmp_path / "absent")

    def fake_download(raw, progress):  # what torchvision leaves: the .gz files and their uncompressed copies
        raw.mkdir(parents=True)
        for name in arrays:
            (raw / f"{name}.gz").write_bytes((system / f"{name}.gz").read_bytes())

    monkeypatch.setattr(fashion, "_torchvision_download", fake_download)
    ds = fashion.load_fashion("train", progress=False)
    assert ds.source.startswith("torchvision download") and len(ds) == COUNTS["train"]
    folder, how = fashion.prepare_fashion(progress=False)  # a second load reads the cache, downloads nothing
    assert how == "cache" and folder == fashion.fashion_raw_dir(root)


def test_cli_summary_counts_each_class(generated, capsys):
    assert main(["data", "fashion-mnist", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"train: {COUNTS['train']:,} images, 1x28x28" in out and f"test: {COUNTS['test']:,} images" in out
    assert "0: 4  1: 4" in out and "9: 2" in out  # labels are i % 10 over 24 test images
    assert "9: Ankle boot" in out and "checksum: verified" in out


def test_eval_subset_follows_the_mnist_rule(generated):
    """The same seeded draw as MNIST's subset: 5,000 of 10,000 with seed 2023 (here all 24 generated images)."""
    from ifanp.data.mnist import mnist_eval_indices

    assert torch.equal(fashion.fashion_eval_indices(), mnist_eval_indices())
    images, idx = load_eval_images("fashion-mnist")
    assert torch.equal(idx, torch.arange(COUNTS["test"])) and images.shape == (COUNTS["test"], 1, 28, 28)
    assert load_train_images("fashion-mnist", limit=16).shape == (16, 1, 28, 28)
    assert "fashion-mnist" in DATASETS


def test_train_and_evaluate_run_on_fashion(generated, tmp_path, capsys):
    """A few training steps on the generated Fashion-MNIST, then ``evaluate --dataset fashion-mnist``: the
    run records the dataset, and the evaluation reads the Fashion test images (not MNIST's)."""
    run = tmp_path / "run"
    tiny = {"hidden": 8, "stem": 8, "z_dim": 8, "gca_key_dim": 8, "decoder_layers": 1}
    train(TrainConfig(model="ifanp-gca", dataset="fashion-mnist", out=str(run), steps=3, batch_size=8,
                      overrides=tiny, progress=False, threads=1, checkpoint_every=1000, eval_every=3,
                      eval_images=8), log=lambda *_: None)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["dataset"] == "fashion-mnist"
    assert main(["evaluate", str(run), "--dataset", "fashion-mnist", "--limit", "6", "--nll-images", "2",
                 "--nll-samples", "2", "--quiet"]) == 0
    res = json.loads((run / "results.json").read_text())
    assert res["dataset"] == "fashion-mnist" and res["images"] == 6
    assert all(np.isfinite(v["psnr_whole"]) for v in res["ratios"].values())


@pytest.mark.skipif(not fashion.SYSTEM_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_the_real_files_match_the_pinned_sha256():
    train_set = fashion.load_fashion("train", root="/nonexistent-ifanp-root", download=False, progress=False)
    test_set = fashion.load_fashion("test", root="/nonexistent-ifanp-root", download=False, progress=False)
    assert train_set.class_counts() == [6000] * 10 and test_set.class_counts() == [1000] * 10
    assert train_set.images.shape == (60_000, 1, 28, 28)


def test_reproduce_on_fashion_has_no_paper_columns(generated, tmp_path, capsys):
    """The paper has no Fashion-MNIST numbers: the table carries none, says so, and names the right test split."""
    from ifanp.reproduce import PAPER_TABLE1, comparison_markdown, reproduce, write_outputs

    run = tmp_path / "run"
    tiny = {"hidden": 8, "stem": 8, "z_dim": 8, "gca_key_dim": 8, "decoder_layers": 1}
    train(TrainConfig(model="ifanp", dataset="fashion-mnist", out=str(run), steps=2, batch_size=8, overrides=tiny,
                      progress=False, threads=1, checkpoint_every=1000), log=lambda *_: None)
    table = reproduce("fashion-mnist", models=("baseline-mean", "ifanp"), runs={"ifanp": str(run)}, seeds=(),
                      limit=8, nll_images=2, nll_samples=2, progress=False)
    assert [r["model"] for r in table["rows"]] == ["baseline-mean", "ifanp"] and "ifanp" in PAPER_TABLE1
    assert all("paper" not in r for r in table["rows"])
    md = comparison_markdown(table)
    assert "paper" not in md.splitlines()[0] and "19.39" not in md
    assert md.splitlines()[0].count("|") == 1 + 7  # model, PSNR and KL at three ratios
    notes = " ".join(table["protocol_differences"])
    assert "Fashion-MNIST test split" in notes and "MNIST test split" not in notes.replace("Fashion-MNIST", "")
    assert "reports no Fashion-MNIST results" in notes and "we compare it with MNIST" not in notes
    write_outputs(table, tmp_path / "out")
    assert "the paper reports no Fashion-MNIST numbers" in (tmp_path / "out" / "table.md").read_text()


# ---- comparing the conclusions of two datasets (ifanp.transfer, reporting.transfer_summary) ----------------


def _table(dataset, values):
    """A table of ``reproduce``'s shape: model -> whole-image PSNR at 20/40/60 %."""
    return {"dataset": dataset, "images": 10, "rows": [
        {"model": m, "label": m, "ratios": {r: {"psnr_whole": v} for r, v in zip(("0.2", "0.4", "0.6"), vs)}}
        for m, vs in values.items()]}


def test_compare_orders_finds_the_swapped_pair_and_the_shift():
    from ifanp import reporting, transfer

    ref = _table("mnist", {"ifanp-plus": [21, 25, 28], "ifanp": [17, 20, 21], "baseline-gp": [18, 21, 24],
                           "vae": [18, 22, 23]})
    same = _table("fashion-mnist", {"ifanp-plus": [20, 24, 27], "ifanp": [16, 19, 20], "baseline-gp": [17, 20, 23]})
    cmp = transfer.compare_orders(ref, same)
    assert cmp["models"] == ["ifanp-plus", "ifanp", "baseline-gp"]  # vae has no Fashion row: left out
    assert cmp["same_everywhere"] and all(p["tau"] == 1.0 for p in cmp["per_ratio"].values())
    assert cmp["mean_shift"] == pytest.approx(-1.0)
    assert cmp["learned_margin"]["ref"] == {"0.2": 3, "0.4": 4, "0.6": 4}
    text = reporting.transfer_summary(cmp)
    assert "keep their order" in text and "1.0 dB lower" in text and "+3.00 / +4.00 / +4.00 dB on MNIST" in text
    assert "IFANP+ (ours) at 20 %, 40 %, 60 %" in text

    # at 20 % the GP rule falls below IFANP on the second dataset (on MNIST it is above, by 1 dB): one swapped pair
    swapped = _table("fashion-mnist", {"ifanp-plus": [20, 24, 27], "ifanp": [16, 19, 20], "baseline-gp": [15, 20, 23]})
    cmp = transfer.compare_orders(ref, swapped)
    assert not cmp["same_everywhere"] and cmp["per_ratio"]["0.4"]["same"] and cmp["per_ratio"]["0.6"]["same"]
    s = cmp["per_ratio"]["0.2"]["swaps"]
    assert s == [{"above_in_ref": "baseline-gp", "below_in_ref": "ifanp", "ref_db": 1.0, "other_db": -1.0}]
    assert cmp["per_ratio"]["0.2"]["tau"] == pytest.approx(1 / 3)
    text = reporting.transfer_summary(cmp)
    assert "changes at 20 %" in text and "+1.00 dB on MNIST, -1.00 dB on Fashion-MNIST" in text
    assert "At 40 %, 60 % it is the same" in text and "the same on both datasets at each ratio" in text


def test_merge_tables_and_missing_tables(tmp_path):
    from ifanp import transfer

    a, b = _table("mnist", {"ifanp": [1, 2, 3]}), _table("mnist", {"baseline-mean": [0, 0, 0], "ifanp": [9, 9, 9]})
    merged = transfer.merge_tables(a, None, b)
    assert [r["model"] for r in merged["rows"]] == ["ifanp", "baseline-mean"]
    assert transfer.psnr_rows(merged)["ifanp"] == [1, 2, 3]  # the first table's row wins
    with pytest.raises(ValueError, match="different datasets"):
        transfer.merge_tables(a, _table("fashion-mnist", {}))
    assert transfer.load_table("fashion-mnist", results=tmp_path) is None and transfer.merge_tables(None) is None
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "table.json").write_text(json.dumps(a))
    assert transfer.load_table("x", results=tmp_path) == a


def test_panels_draw_one_line_per_model_on_a_shared_axis():
    from ifanp.plotting.charts import plot_psnr_panels

    fig = plot_psnr_panels({"MNIST": {"ifanp": [1, 2, 3], "baseline-gp-paste": [2, 3, 4]},
                            "Fashion-MNIST": {"ifanp": [0, 1, 2]}})
    left, right = fig.axes[:2]
    assert len(left.get_lines()) == 2 and len(right.get_lines()) == 1
    assert left.get_shared_y_axes().joined(left, right)
    assert list(right.get_lines()[0].get_ydata()) == [0, 1, 2]


def test_budget_differences_are_named_in_the_summary():
    from ifanp import reporting, transfer

    ref = _table("mnist", {"ifanp-plus": [21, 25, 28], "ifanp": [17, 20, 21], "baseline-gp": [18, 21, 24]})
    other = _table("fashion-mnist", {"ifanp-plus": [16, 24, 27], "ifanp": [16, 19, 20], "baseline-gp": [15, 20, 23]})
    for table, prefix in ((ref, "mnist"), (other, "fashion-mnist")):
        for row in table["rows"]:
            row["source"] = f"{prefix}-{row['model']}" if not transfer.is_rule(row["model"]) else "fitted"
    reg = {"mnist-ifanp-plus": {"steps": 12000}, "fashion-mnist-ifanp-plus": {"steps": 600},
           "mnist-ifanp": {"steps": 3000}, "fashion-mnist-ifanp": {"steps": 3000}}
    budgets = transfer.budget_differences(ref, other, reg)
    assert budgets == {"ifanp-plus": (12000, 600)}  # the same budget (IFANP) and the rules are not named
    text = reporting.transfer_summary(transfer.compare_orders(ref, other), budgets=budgets)
    assert "IFANP+ (ours): 12,000 steps on MNIST, 600 on Fashion-MNIST" in text and "like-for-like" in text
    assert "like-for-like" not in reporting.transfer_summary(transfer.compare_orders(ref, other))
