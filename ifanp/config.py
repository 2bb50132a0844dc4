"""Settings read from the environment, in one place.

* ``IFANP_PROFILE`` — ``smoke`` (seconds per notebook, used by the notebook tests),
  ``default`` (what the book build executes on a 2-core CPU) or ``full`` (paper-scale runs, for a GPU).
  Every profile runs the same code; only sizes change.
* ``IFANP_DATA`` — where datasets live (default ``~/.cache/ifanp/data``, outside the repository).
* ``IFANP_THREADS`` — torch's CPU threads, set when the package is imported (default: torch's own
  choice). Use 1 when several processes share a small machine (tests run in parallel, notebooks next to
  a training run): torch's threads spin while they wait, so two 2-thread processes on 2 cores can run
  ten times slower than two 1-thread processes.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

PROFILES = ("smoke", "default", "full")


def get_profile() -> str:
    """The run profile named by ``IFANP_PROFILE`` (``default`` when unset)."""
    profile = os.environ.get("IFANP_PROFILE", "default").strip().lower() or "default"
    if profile not in PROFILES:
        raise ValueError(
            f"IFANP_PROFILE={profile!r} is not a known profile; use one of {', '.join(PROFILES)}."
        )
    return profile


def profile_value(smoke: Any, default: Any, full: Any) -> Any:
    """Pick the value for the current profile: ``profile_value(smoke=.., default=.., full=..)``."""
    return {"smoke": smoke, "default": default, "full": full}[get_profile()]


def data_root() -> Path:
    """The data folder: ``$IFANP_DATA`` or ``~/.cache/ifanp/data``."""
    root = os.environ.get("IFANP_DATA")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "ifanp" / "data"
    if path.exists() and not path.is_dir():
        raise ValueError(f"IFANP_DATA={root} is a file; point it at a folder (it is created when missing).")
    return path


def get_device(device: str | torch.device | None = "auto") -> torch.device:
    """Resolve ``"auto"`` to CUDA, then Apple MPS, then CPU; pass anything else through ``torch.device``."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"Unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:0' or 'mps'.") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was requested but torch sees no CUDA device; use --device cpu or auto.")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError("MPS was requested but torch sees no MPS device (Apple silicon only); "
                             "use --device cpu or auto.")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {device!r} is not supported; use 'auto', 'cpu', 'cuda', 'cuda:0' or 'mps'.")
    return dev


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU ``torch.Generator`` seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


#: The problem with ``IFANP_THREADS`` found when the package was imported (None: none). The import does not
#: fail on it (``python -m ifanp --help`` still works); the command line reports it as one line, and
#: :func:`check_environment` raises it.
THREADS_ERROR: ValueError | None = None


def threads_from_env() -> int | None:
    """``IFANP_THREADS`` as a number of threads (None when unset); ValueError when it is not a whole number >= 1."""
    value = os.environ.get("IFANP_THREADS", "").strip()
    if not value:
        return None
    try:
        threads = int(value)
    except ValueError:
        raise ValueError(f"IFANP_THREADS={value!r} is not a whole number of threads; "
                         "set it to 1, 2, ... or unset it.") from None
    if threads < 1:
        raise ValueError(f"IFANP_THREADS must be at least 1, got {threads}; set it to 1, 2, ... or unset it.")
    return threads


def apply_threads(strict: bool = False) -> None:
    """Apply ``IFANP_THREADS`` (if set) to torch; called when :mod:`ifanp` is imported.

    A bad value is kept in :data:`THREADS_ERROR` and torch's own choice stays (with a warning, except
    under the command line, which reports it as an error); ``strict`` raises it instead.
    """
    global THREADS_ERROR
    try:
        threads = threads_from_env()
    except ValueError as err:
        THREADS_ERROR = err
        if strict:
            raise
        if not _running_the_cli():
            import warnings

            warnings.warn(f"{err} (torch's default number of threads is used)", stacklevel=3)
        return
    THREADS_ERROR = None
    if threads is not None:
        torch.set_num_threads(threads)


def _running_the_cli() -> bool:
    import sys

    first = sys.argv[0] if sys.argv else ""
    return first == "-m" or Path(first).name in ("ifanp", "__main__.py")


def check_environment() -> None:
    """Raise ValueError naming the first bad ``IFANP_*`` variable (threads, profile, data folder)."""
    threads_from_env()
    get_profile()
    data_root()
