"""The command line: ``python -m ifanp COMMAND ...`` (also installed as ``ifanp``).

Each subcommand lives in the module that owns its concept and is registered by one line in
``_REGISTRY``: ``(name, module_path, add_arguments_fn, run_fn, help)``. The module is imported only
when its subcommand is used, so ``python -m ifanp --help`` lists every command without importing any,
and running one command does not import the others. In the module:

* ``add_arguments_fn(parser)`` adds the command's arguments to an ``argparse`` parser;
* ``run_fn(args)`` does the work and returns an exit status (``None`` means 0).

``run_fn`` reports a bad user input by raising :class:`UsageError` or ``ValueError`` (exit status 2),
and data, weights, a run or a file that cannot be used by raising :class:`ifanp.data.DataError`,
:class:`ifanp.pretrained.WeightsError`, :class:`ifanp.train.TrainingError` or ``OSError`` (exit status 1);
either way the command prints one line ``ifanp COMMAND: error: ...`` to stderr that says what was wrong
and what to do, without a traceback (``--debug`` or ``IFANP_DEBUG=1`` adds it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

PROG = "python -m ifanp"


class UsageError(ValueError):
    """A command-line argument that does not make sense; the message says what to pass instead."""


@dataclass(frozen=True)
class Subcommand:
    """One ``python -m ifanp`` command, imported lazily from ``module``."""

    name: str
    module: str
    add_arguments: str
    run: str
    help: str

    def load(self):
        """Import the module; return its ``(add_arguments, run)`` functions."""
        module = importlib.import_module(self.module)
        return getattr(module, self.add_arguments), getattr(module, self.run)


# (name, module_path, add_arguments_fn, run_fn, help) -- add your command here, one line each.
_REGISTRY: list[tuple[str, str, str, str, str]] = [
    (
        "data",
        "ifanp.cli",
        "add_data_arguments",
        "run_data",
        "fetch/prepare a dataset (mnist, fashion-mnist, celeba) and summarise it",
    ),
    ("train", "ifanp.train", "add_train_arguments", "run_train", "train an image model (checkpoints, --resume, DDP)"),
    ("evaluate", "ifanp.evaluate", "add_evaluate_arguments", "run_evaluate",
     "evaluate a run or pretrained model under the paper's protocol (JSON + Markdown)"),
    ("reproduce", "ifanp.reproduce", "add_reproduce_arguments", "run_reproduce",
     "the paper's Table 1, Fig. 8 and Fig. 9 from the shipped weights (or runs), beside the paper's numbers"),
    ("export", "ifanp.export", "add_export_arguments", "run_export",
     "copy a finished run's weights into the package registry (sha256, command, wall time, training log)"),
    ("export-onnx", "ifanp.onnx_export", "add_export_onnx_arguments", "run_export_onnx",
     "ONNX graphs of the shipped models for the book's live widgets (image, mask, eps -> mean, std)"),
    (
        "train1d",
        "ifanp.cli_train1d",
        "add_train1d_arguments",
        "run_train1d",
        "train a CNP/NP/ANP on 1-D GP samples, evaluate it, optionally register the weights",
    ),
]

SUBCOMMANDS: dict[str, Subcommand] = {entry[0]: Subcommand(*entry) for entry in _REGISTRY}


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr and exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def _build_parser(command: str | None) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    from . import __version__

    parser = _Parser(
        prog=PROG, description="Image completion with neural processes: data, training, evaluation."
    )
    parser.add_argument("--version", action="version", version=f"ifanp {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="on an error, print the traceback too (also IFANP_DEBUG=1; allowed anywhere on the line)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    parsers = {}
    for name, spec in SUBCOMMANDS.items():
        parsers[name] = sub.add_parser(name, help=spec.help, description=spec.help)
    if command in SUBCOMMANDS:  # only the chosen command's module is imported
        add_arguments, _ = SUBCOMMANDS[command].load()
        add_arguments(parsers[command])
    return parser, parsers


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m ifanp`` with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    An error of the package (a bad value, missing data or weights, a run that cannot go on, a file that
    cannot be read or written) is printed as one line ``ifanp COMMAND: error: ...`` on stderr, with exit
    status 2 for a bad input and 1 for the rest; ``--debug`` (anywhere on the line) or ``IFANP_DEBUG=1``
    prints the traceback too. Any other exception is a bug and keeps its traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("IFANP_DEBUG", "").strip().lower() not in ("", "0", "false", "no")
    argv = [a for a in argv if a != "--debug"]
    command = next((a for a in argv if not a.startswith("-")), None)
    parser, _ = _build_parser(command)
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version and argument errors
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 2)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    prefix = f"ifanp {args.command}: error:"
    try:
        from .config import check_environment

        check_environment()
        _, run = SUBCOMMANDS[args.command].load()
        status = run(args)
    except KeyboardInterrupt:
        print(f"ifanp {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # sorted by error_status; anything else is re-raised
        code = error_status(err)
        if code is None:
            raise
        if debug:
            traceback.print_exc()
        print(f"{prefix} {error_line(err, debug)}", file=sys.stderr)
        return code
    return 0 if status is None else int(status)


def error_status(err: BaseException) -> int | None:
    """The exit status for an error of the package: 2 for a bad input (``ValueError``, :class:`UsageError`),
    1 for missing or broken data, weights, checkpoints and files; None for anything else (a bug)."""
    names = {cls.__name__ for cls in type(err).__mro__}
    if names & {"DataError", "WeightsError", "TrainingError"} or isinstance(err, OSError):
        return 1
    if isinstance(err, ValueError):
        return 2
    return None


def error_line(err: BaseException, debug: bool = False) -> str:
    """``err`` as one line: the first line of its message (an OSError as 'what: file')."""
    if isinstance(err, OSError) and err.strerror:
        where = f" {err.filename}" if err.filename else ""
        text = f"{err.strerror}:{where}. Check the path, that it is a folder where one is expected, and its permissions."
    else:
        text = str(err).strip() or type(err).__name__
    lines = text.splitlines()
    if len(lines) > 1:
        return lines[0].rstrip(":") + ("" if debug else " (run with --debug for the details)")
    return lines[0] if lines else text


# ---- python -m ifanp data ------------------------------------------------------------------------


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m ifanp data``."""
    from .data.celeba import PAPER_TRAIN_SIZE
    from .data.splits import DATASETS

    parser.add_argument("dataset", choices=DATASETS, help="which dataset to prepare")
    parser.add_argument("--root", type=Path, default=None,
                        help="data folder (default: $IFANP_DATA or ~/.cache/ifanp/data)")  # fmt: skip
    parser.add_argument("--no-download", action="store_true",
                        help="mnist, fashion-mnist: only check the files already there, fetch nothing")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    celeba = parser.add_argument_group("celeba")
    celeba.add_argument(
        "--image-dir",
        type=Path,
        default=None,
        help="folder of aligned JPEGs 000001.jpg ... (default: <root>/celeba/img_align_celeba)",
    )
    celeba.add_argument("--size", type=int, default=32, help="image side after crop and resize (default 32)")
    celeba.add_argument(
        "--train-limit",
        type=int,
        default=PAPER_TRAIN_SIZE,
        help=f"keep the first N training images (default {PAPER_TRAIN_SIZE:,}, as the paper; 0 = all)",
    )
    celeba.add_argument("--download", action="store_true",
                        help="try torchvision's Google-Drive download (needs gdown and internet)")  # fmt: skip


def _class_line(counts: list[int]) -> str:
    return "  ".join(f"{digit}: {n}" for digit, n in enumerate(counts))


def _data_fashion(args: argparse.Namespace, progress: bool) -> int:
    """``python -m ifanp data fashion-mnist``: find (or download) the files, check them, print a summary."""
    from .data.common import EVAL_SEED
    from .data.fashion import FASHION_CLASSES, fashion_eval_indices, load_fashion

    download = not args.no_download
    train = load_fashion("train", root=args.root, download=download, progress=progress)
    test = load_fashion("test", root=args.root, download=download, progress=progress)
    print(f"Fashion-MNIST from {train.source}")
    print("checksum: verified (the sha256 of the four uncompressed files match the pinned ones)")
    for part in (train, test):
        split = part.name.split()[-1]
        print(f"{split}: {len(part):,} images, {'x'.join(map(str, part.images.shape[1:]))}")
        print(f"  per class  {_class_line(part.class_counts())}")
    print("classes: " + ", ".join(f"{i}: {c}" for i, c in enumerate(FASHION_CLASSES)))
    n = len(fashion_eval_indices(total=len(test)))
    print(f"evaluation subset: {n:,} of the test images (seed {EVAL_SEED})")
    return 0


def _check_text(verified: bool | None) -> str:
    return {
        True: "verified (sha256 matches the official files)",
        False: "MISMATCH (the files differ from the official ones; delete the folder to refetch)",
        None: "not verified (no published checksum)",
    }[verified]


def run_data(args: argparse.Namespace) -> int:
    """``python -m ifanp data mnist|fashion-mnist|celeba``: prepare the dataset and print a summary to stdout."""
    if args.root is not None and args.root.exists() and not args.root.is_dir():
        raise UsageError(f"--root {args.root} is a file; pass a folder (it is created when missing).")
    progress = not args.quiet
    if args.dataset == "fashion-mnist":
        return _data_fashion(args, progress)
    if args.dataset == "mnist":
        from .data.common import EVAL_SEED
        from .data.mnist import load_mnist, mnist_eval_indices, mnist_raw_dir

        download = not args.no_download
        train = load_mnist("train", root=args.root, download=download, progress=progress)
        test = load_mnist("test", root=args.root, download=download, progress=progress)
        print(f"MNIST in {mnist_raw_dir(args.root)}")
        print(f"source: {train.source}")
        print(f"checksum: {_check_text(train.verified and test.verified)}")
        for part in (train, test):
            split = part.name.split()[-1]
            print(f"{split}: {len(part):,} images, {'x'.join(map(str, part.images.shape[1:]))}")
            print(f"  per class  {_class_line(part.class_counts())}")
        print(f"evaluation subset: {len(mnist_eval_indices()):,} of the test images (seed {EVAL_SEED})")
        return 0

    from .data.celeba import CELEBA_EVAL_SIZE, celeba_dir, load_celeba, load_celeba_eval
    from .data.common import EVAL_SEED

    if not 1 <= args.size <= 178:
        raise UsageError(f"--size must be between 1 and 178 pixels; got {args.size}.")
    if args.train_limit < 0:
        raise UsageError(f"--train-limit must be >= 0 (0 = all training images); got {args.train_limit}.")
    limit = args.train_limit or None
    kwargs = {"root": args.root, "size": args.size, "image_dir": args.image_dir, "progress": progress}
    train = load_celeba("train", limit=limit, download=args.download, **kwargs)
    evaluation = load_celeba_eval(**kwargs)
    where = args.image_dir if args.image_dir is not None else celeba_dir(args.root) / "img_align_celeba"
    print(f"CelebA {args.size}x{args.size} from {where}")
    print(f"source: {train.source}")
    print(f"checksum: {_check_text(None)}")
    print(f"train: {len(train):,} images" + (f" (the first {limit:,} of the partition)" if limit else ""))
    print(
        f"test: evaluation subset of {len(evaluation):,} images (target {CELEBA_EVAL_SIZE:,}, seed {EVAL_SEED})"
    )
    return 0
