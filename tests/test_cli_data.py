"""``python -m ifanp data ...`` and the lazy subcommand registry."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from PIL import Image

from ifanp import cli
from ifanp.cli import main


def test_data_mnist_prints_a_summary(mnist_root, capsys):
    assert main(["data", "mnist", "--root", str(mnist_root), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "train: 60,000 images, 1x28x28" in out and "test: 10,000 images" in out
    assert "0: 5923  1: 6742  2: 5958" in out and "9: 1009" in out
    assert "checksum: verified" in out and "source: idx files" in out
    assert "5,000 of the test images (seed 2023)" in out


def test_missing_data_is_one_line_without_traceback(tmp_path, capsys):
    assert main(["data", "mnist", "--root", str(tmp_path), "--no-download"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ifanp data: error: MNIST not found") and err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["data", "fashion", "--root", "{root}"], "invalid choice: 'fashion'"),
        (["data"], "the following arguments are required: dataset"),
        (["data", "celeba", "--size", "0", "--root", "{root}"], "--size must be between 1 and 178"),
        (["data", "mnist", "--train-limit", "x"], "invalid int value: 'x'"),
        (["nonsense"], "invalid choice: 'nonsense'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, expected, tmp_path, capsys):
    assert main([a.format(root=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err


def test_root_that_is_a_file_is_rejected(tmp_path, capsys):
    file = tmp_path / "not-a-folder"
    file.write_text("")
    assert main(["data", "mnist", "--root", str(file)]) == 2
    assert "is a file; pass a folder" in capsys.readouterr().err


def test_help_and_no_command(capsys):
    assert main(["--help"]) == 0
    assert "data" in capsys.readouterr().out
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err


def test_data_celeba_on_generated_images(tmp_path, capsys):
    folder = tmp_path / "faces"
    folder.mkdir()
    for k in (1, 2, 3, 182638, 182639):
        Image.fromarray(torch.full((218, 178, 3), k % 200, dtype=torch.uint8).numpy()).save(
            folder / f"{k:06d}.jpg"
        )
    argv = ["data", "celeba", "--root", str(tmp_path / "data"), "--image-dir", str(folder), "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "train: 3 images (the first 60,000 of the partition)" in out
    assert "evaluation subset of 2 images" in out and "not verified" in out
    assert main(["data", "celeba", "--root", str(tmp_path / "empty"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "CelebA not found" in err and "--image-dir" in err and err.count("\n") == 1


def test_subcommands_are_imported_only_when_used(tmp_path, monkeypatch, capsys):
    module = tmp_path / "ifanp_fake_command.py"
    module.write_text(
        "def add(parser):\n    parser.add_argument('--n', type=int, default=1)\n"
        "def run(args):\n    print('ran', args.n)\n    return 0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(
        cli.SUBCOMMANDS, "fake", cli.Subcommand("fake", "ifanp_fake_command", "add", "run", "a test")
    )
    monkeypatch.delitem(sys.modules, "ifanp_fake_command", raising=False)
    assert main(["--help"]) == 0
    assert "fake" in capsys.readouterr().out and "ifanp_fake_command" not in sys.modules
    assert main(["fake", "--n", "3"]) == 0
    assert capsys.readouterr().out == "ran 3\n"
    monkeypatch.delitem(sys.modules, "ifanp_fake_command", raising=False)


def test_help_imports_no_subcommand_module():
    code = (
        "import sys; from ifanp.cli import main; main(['--help']); "
        "print(sorted(m for m in sys.modules if m.startswith(('ifanp.data', 'torchvision'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
